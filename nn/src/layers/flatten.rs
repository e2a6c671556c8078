//! [`Flatten`]: every per-sample axis into one.

use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer};
use crate::Result;
use keel_autograd::Var;
use keel_tensor::rng::Rng;

/// `[d1, d2, ...] -> [d1 * d2 * ...]` (the batch axis is kept).
#[derive(Default)]
pub struct Flatten {
    name: String,
    input_shape: Option<Vec<usize>>,
    built: bool,
}

common_builders!(Flatten);

impl Flatten {
    /// A new flatten layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Layer for Flatten {
    layer_common!("Flatten");

    fn build(&mut self, _input_shape: &[usize], _rng: &mut Rng) -> Result<()> {
        self.built = true;
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.built
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(vec![input_shape.iter().product()])
    }

    fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
        if x.rank() == 2 {
            return Ok(x.clone());
        }
        if x.rank() < 2 {
            return Ok(x.reshape_infer(&[-1, 1])?);
        }
        Ok(x.flatten_from(1)?)
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({}))
    }
}
