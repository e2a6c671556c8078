//! [`Dropout`]: randomly zero a fraction of the inputs during training.

use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer};
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::rng::Rng;
use keel_tensor::Tensor;

/// Inverted dropout: in training each element is kept with probability
/// `1 - rate` and scaled by `1 / (1 - rate)`; in inference it is the identity.
/// The mask is drawn from the [`Ctx`]'s seeded rng (one seed per call), so a
/// seeded run is reproducible.
pub struct Dropout {
    name: String,
    input_shape: Option<Vec<usize>>,
    rate: f64,
    built: bool,
}

common_builders!(Dropout);

impl Dropout {
    /// Drop a fraction `rate` (in `[0, 1)`) of the inputs in training.
    pub fn new(rate: f64) -> Self {
        Dropout { name: String::new(), input_shape: None, rate, built: false }
    }

    /// The drop rate.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    fn check(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.rate) {
            return Err(Error::config(
                format!("Dropout \"{}\"", self.name),
                format!("rate must be in [0, 1), got {}", self.rate),
            ));
        }
        Ok(())
    }
}

impl Layer for Dropout {
    layer_common!("Dropout");

    fn build(&mut self, _input_shape: &[usize], _rng: &mut Rng) -> Result<()> {
        self.check()?;
        self.built = true;
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.built
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        self.check()?;
        Ok(input_shape.to_vec())
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        self.check()?;
        if !ctx.training || self.rate == 0.0 {
            return Ok(x.clone());
        }
        let seed = ctx.rng_for(&self.name)?.fork_seed();
        let u = Tensor::rand_uniform(seed, 0.0, 1.0, x.shape(), x.dtype(), &x.device())?;
        let keep = u.ge(&u.scalar_like(self.rate)?)?.to_dtype(x.dtype())?;
        let mask = keep.mul_scalar(1.0 / (1.0 - self.rate))?;
        Ok(x.mul(&Var::constant(mask))?)
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "rate": self.rate }))
    }
}
