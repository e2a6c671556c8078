//! [`Reshape`]: a new per-sample shape (one entry may be `-1`).

use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer};
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::rng::Rng;

/// Reshape each sample to `target_shape` (at most one `-1`, inferred).
pub struct Reshape {
    name: String,
    input_shape: Option<Vec<usize>>,
    target_shape: Vec<isize>,
    built: bool,
}

common_builders!(Reshape);

impl Reshape {
    /// Reshape each sample to `target_shape` (e.g. `[7, 7, -1]`).
    pub fn new(target_shape: impl Into<Vec<isize>>) -> Self {
        Reshape { name: String::new(), input_shape: None, target_shape: target_shape.into(), built: false }
    }

    fn resolve(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let n: usize = input_shape.iter().product();
        let bad = |msg: String| Error::IncompatibleInput {
            layer: self.name.clone(),
            class: "Reshape",
            expected: format!("a shape with as many elements as {:?} ({msg})", self.target_shape),
            got: input_shape.to_vec(),
        };
        let unknown = self.target_shape.iter().filter(|&&d| d == -1).count();
        if unknown > 1 || self.target_shape.iter().any(|&d| d < -1 || d == 0) {
            return Err(bad("entries must be >= 1, at most one -1".into()));
        }
        let known: usize = self.target_shape.iter().filter(|&&d| d > 0).map(|&d| d as usize).product();
        let fill = if unknown == 1 {
            if known == 0 || n % known != 0 {
                return Err(bad(format!("{n} elements do not divide by {known}")));
            }
            n / known
        } else {
            if known != n {
                return Err(bad(format!("{n} elements, target has {known}")));
            }
            1
        };
        Ok(self.target_shape.iter().map(|&d| if d == -1 { fill } else { d as usize }).collect())
    }
}

impl Layer for Reshape {
    layer_common!("Reshape");

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<()> {
        self.resolve(input_shape)?;
        self.built = true;
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.built
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        self.resolve(input_shape)
    }

    fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
        let per = self.resolve(x.dims().get(1..).unwrap_or(&[]))?;
        let mut dims = vec![x.dims().first().copied().unwrap_or(1)];
        dims.extend(per);
        Ok(x.reshape(dims)?)
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "target_shape": self.target_shape }))
    }
}
