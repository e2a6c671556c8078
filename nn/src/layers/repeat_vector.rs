//! [`RepeatVector`]: a feature vector repeated into a sequence.

use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer};
use crate::layers::spatial::{incompatible, per_sample, repeat_axes};
use crate::{Error, Result};
use keel_autograd::Var;

/// Keras's `RepeatVector(n)`: `[features] -> [n, features]`, the vector repeated `n` times
/// (e.g. an encoding fed to every step of a decoder RNN). No weights.
pub struct RepeatVector {
    name: String,
    input_shape: Option<Vec<usize>>,
    n: usize,
    built: bool,
}

common_builders!(RepeatVector);

impl RepeatVector {
    /// Repeat the input `n` (at least 1) times.
    pub fn new(n: usize) -> Self {
        RepeatVector { name: String::new(), input_shape: None, n, built: false }
    }

    /// The number of repetitions.
    pub fn n(&self) -> usize {
        self.n
    }
}

impl Layer for RepeatVector {
    layer_common!("RepeatVector");

    crate::layer::weightless_build!();

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        if self.n == 0 {
            return Err(Error::config(format!("layer \"{}\" (RepeatVector)", self.name), "n must be at least 1"));
        }
        match input_shape {
            [features] => Ok(vec![self.n, *features]),
            _ => Err(incompatible(&self.name, "RepeatVector", "[features] (rank 1)".into(), input_shape)),
        }
    }

    fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
        let out = self.output_shape(per_sample(x))?;
        repeat_axes(&x.reshape(vec![x.dims()[0], 1, out[1]])?, &[self.n])
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "n": self.n }))
    }
}
