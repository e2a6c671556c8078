//! [`Permute`]: the per-sample axes reordered.

use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer};
use crate::layers::spatial::{incompatible, per_sample};
use crate::{Error, Result};
use keel_autograd::Var;

/// Keras's `Permute(dims)`: output axis `i` is input axis `dims[i]`, counted from 1 over the
/// per-sample axes (the batch axis stays first), so `Permute::new([2, 1])` swaps the two
/// axes of a `[steps, features]` input. `dims` must be a permutation of `1..=rank`. No weights.
pub struct Permute {
    name: String,
    input_shape: Option<Vec<usize>>,
    dims: Vec<usize>,
    built: bool,
}

common_builders!(Permute);

impl Permute {
    /// Reorder the per-sample axes by `dims` (1-based).
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Permute { name: String::new(), input_shape: None, dims: dims.into(), built: false }
    }

    /// The 1-based order of the per-sample axes.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }
}

impl Layer for Permute {
    layer_common!("Permute");

    crate::layer::weightless_build!();

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let mut sorted = self.dims.clone();
        sorted.sort_unstable();
        if !sorted.iter().copied().eq(1..=self.dims.len()) {
            return Err(Error::config(
                format!("layer \"{}\" (Permute)", self.name),
                format!(
                    "dims must be a permutation of 1..={} (the per-sample axes, counted from 1), got {:?}",
                    self.dims.len(),
                    self.dims
                ),
            ));
        }
        if input_shape.len() != self.dims.len() {
            let expected = format!("rank {} (one axis per entry of dims {:?})", self.dims.len(), self.dims);
            return Err(incompatible(&self.name, "Permute", expected, input_shape));
        }
        Ok(self.dims.iter().map(|&d| input_shape[d - 1]).collect())
    }

    fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
        self.output_shape(per_sample(x))?;
        let perm: Vec<usize> = std::iter::once(0).chain(self.dims.iter().copied()).collect();
        Ok(x.permute(&perm)?)
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "dims": self.dims }))
    }
}
