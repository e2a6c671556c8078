//! [`UpSampling1D`]: each step of a `[steps, channels]` sequence repeated.

use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer};
use crate::layers::spatial::{per_sample, repeat_axes, repeated_shape};
use crate::Result;
use keel_autograd::Var;

/// Keras's `UpSampling1D(size=2)`: `[steps, channels] -> [steps * size, channels]`, each
/// step repeated `size` times in place. No weights.
pub struct UpSampling1D {
    name: String,
    input_shape: Option<Vec<usize>>,
    size: usize,
    built: bool,
}

common_builders!(UpSampling1D);

impl UpSampling1D {
    /// Repeat each step `size` (at least 1) times.
    pub fn new(size: usize) -> Self {
        UpSampling1D { name: String::new(), input_shape: None, size, built: false }
    }

    /// The repeat factor.
    pub fn size(&self) -> usize {
        self.size
    }
}

impl Default for UpSampling1D {
    fn default() -> Self {
        UpSampling1D::new(2)
    }
}

impl Layer for UpSampling1D {
    layer_common!("UpSampling1D");

    crate::layer::weightless_build!();

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        repeated_shape(&[self.size], &self.name, "UpSampling1D", input_shape)
    }

    fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
        self.output_shape(per_sample(x))?;
        repeat_axes(x, &[self.size])
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "size": self.size }))
    }
}
