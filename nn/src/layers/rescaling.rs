//! [`Rescaling`]: `x * scale + offset` (Keras's preprocessing layer, e.g. pixels to [0, 1]).

use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer};
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::rng::Rng;

/// `x * scale + offset`, elementwise (Keras's `Rescaling(1.0 / 255)` puts U8 pixels in
/// [0, 1]; `Rescaling(1.0 / 127.5, -1.0)` in [-1, 1]). No weights.
pub struct Rescaling {
    name: String,
    input_shape: Option<Vec<usize>>,
    scale: f64,
    offset: f64,
    built: bool,
}

common_builders!(Rescaling);

impl Rescaling {
    /// Multiply by `scale` (offset 0).
    pub fn new(scale: f64) -> Self {
        Rescaling { name: String::new(), input_shape: None, scale, offset: 0.0, built: false }
    }

    /// Then add `offset`.
    pub fn offset(mut self, offset: f64) -> Self {
        self.offset = offset;
        self
    }
}

impl Layer for Rescaling {
    layer_common!("Rescaling");

    fn build(&mut self, _input_shape: &[usize], _rng: &mut Rng) -> Result<()> {
        if !self.scale.is_finite() || !self.offset.is_finite() {
            return Err(Error::config(
                format!("layer \"{}\" (Rescaling)", self.name),
                format!("scale and offset must be finite, got {} and {}", self.scale, self.offset),
            ));
        }
        self.built = true;
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.built
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(input_shape.to_vec())
    }

    fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
        let y = if self.scale == 1.0 { x.clone() } else { x.mul_scalar(self.scale)? };
        Ok(if self.offset == 0.0 { y } else { y.add_scalar(self.offset)? })
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "scale": self.scale, "offset": self.offset }))
    }
}
