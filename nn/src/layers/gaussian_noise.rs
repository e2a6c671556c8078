//! [`GaussianNoise`] and [`GaussianDropout`]: additive and multiplicative Gaussian noise
//! during training (regularization; the identity in inference).

use crate::layer::{common_builders, layer_common, shape_preserving_layer, with_name, Ctx, Layer};
use crate::layers::dropout::check_rate;
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::Tensor;

/// Normal samples with `mean` and `std`, of `x`'s shape, dtype and device, as a constant
/// drawn from one seed forked off the [`Ctx`]'s rng (the same bits on every device).
fn normal_like(x: &Var, mean: f64, std: f64, layer: &str, ctx: &mut Ctx<'_>) -> Result<Var> {
    let seed = ctx.rng_for(layer)?.fork_seed();
    Ok(Var::constant(Tensor::rand_normal(seed, mean, std, x.shape(), x.dtype(), &x.device())?))
}

/// Additive zero-centred Gaussian noise: in training `x + N(0, stddev)` (a fresh draw per
/// element and per call); in inference the identity.
pub struct GaussianNoise {
    name: String,
    input_shape: Option<Vec<usize>>,
    stddev: f64,
    built: bool,
}

common_builders!(GaussianNoise);

impl GaussianNoise {
    /// Add noise of standard deviation `stddev` (finite, `>= 0`) in training.
    pub fn new(stddev: f64) -> Self {
        GaussianNoise { name: String::new(), input_shape: None, stddev, built: false }
    }

    /// The standard deviation of the noise.
    pub fn stddev(&self) -> f64 {
        self.stddev
    }

    fn check(&self, _input_shape: &[usize]) -> Result<()> {
        if !(self.stddev.is_finite() && self.stddev >= 0.0) {
            return Err(Error::config(
                format!("GaussianNoise \"{}\"", self.name),
                format!("stddev must be finite and >= 0, got {}", self.stddev),
            ));
        }
        Ok(())
    }
}

impl Layer for GaussianNoise {
    layer_common!("GaussianNoise");
    shape_preserving_layer!();

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        self.check(x.dims())?;
        if !ctx.training || self.stddev == 0.0 {
            return Ok(x.clone());
        }
        Ok(x.add(&normal_like(x, 0.0, self.stddev, &self.name, ctx)?)?)
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "stddev": self.stddev }))
    }
}

/// Multiplicative one-centred Gaussian noise: in training `x * N(1, sqrt(rate / (1 - rate)))`
/// (the variance of inverted dropout at `rate`, a fresh draw per element and per call); in
/// inference the identity.
pub struct GaussianDropout {
    name: String,
    input_shape: Option<Vec<usize>>,
    rate: f64,
    built: bool,
}

common_builders!(GaussianDropout);

impl GaussianDropout {
    /// Multiplicative noise of standard deviation `sqrt(rate / (1 - rate))`, `rate` in `[0, 1)`.
    pub fn new(rate: f64) -> Self {
        GaussianDropout { name: String::new(), input_shape: None, rate, built: false }
    }

    /// The drop rate the noise's variance matches.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    fn check(&self, _input_shape: &[usize]) -> Result<()> {
        check_rate("GaussianDropout", &self.name, self.rate)
    }
}

impl Layer for GaussianDropout {
    layer_common!("GaussianDropout");
    shape_preserving_layer!();

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        self.check(x.dims())?;
        if !ctx.training || self.rate == 0.0 {
            return Ok(x.clone());
        }
        let std = (self.rate / (1.0 - self.rate)).sqrt();
        Ok(x.mul(&normal_like(x, 1.0, std, &self.name, ctx)?)?)
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "rate": self.rate }))
    }
}
