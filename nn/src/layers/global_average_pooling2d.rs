//! [`GlobalAveragePooling2D`]: the mean over height and width, per channel.

use crate::layer::{check_batch_rank, common_builders, layer_common, with_name, Ctx, Layer};
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::rng::Rng;

/// `[h, w, c] -> [c]` by averaging over the spatial axes.
#[derive(Default)]
pub struct GlobalAveragePooling2D {
    name: String,
    input_shape: Option<Vec<usize>>,
    built: bool,
}

common_builders!(GlobalAveragePooling2D);

impl GlobalAveragePooling2D {
    /// A new global average pooling layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Layer for GlobalAveragePooling2D {
    layer_common!("GlobalAveragePooling2D");

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<()> {
        self.output_shape(input_shape)?;
        self.built = true;
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.built
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        if input_shape.len() != 3 {
            return Err(Error::IncompatibleInput {
                layer: self.name.clone(),
                class: "GlobalAveragePooling2D",
                expected: "[height, width, channels] (rank 3, NHWC)".into(),
                got: input_shape.to_vec(),
            });
        }
        Ok(vec![input_shape[2]])
    }

    fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
        check_batch_rank(x, 3, self)?;
        Ok(x.mean(&[1, 2], false)?)
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({}))
    }
}
