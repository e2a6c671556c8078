//! [`GaussianNoise`], [`GaussianDropout`] and [`AlphaDropout`]: additive and multiplicative
//! noise during training (regularization; the identity in inference).

use crate::layer::{common_builders, layer_common, shape_preserving_layer, with_name, Ctx, Layer};
use crate::layers::dropout::{check_rate, noise_dims, noise_shape_builder, with_noise_shape};
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

/// SELU's `-alpha * scale`: the value a dropped input takes in [`AlphaDropout`] before its
/// affine correction (SELU's limit at minus infinity).
const ALPHA_P: f64 = -1.673_263_242_354_377_3 * 1.050_700_987_355_480_5;

/// Dropout for self-normalizing networks (SELU activations, `lecun_normal` kernels): in
/// training each input is kept with probability `1 - rate`, a dropped one is set to SELU's
/// saturation value `alpha'`, and the result goes through the affine map `a * x + b` that
/// keeps a zero-mean, unit-variance input so (Keras's constants); in inference the identity.
pub struct AlphaDropout {
    name: String,
    input_shape: Option<Vec<usize>>,
    rate: f64,
    noise_shape: Option<Vec<Option<usize>>>,
    built: bool,
}

common_builders!(AlphaDropout);
noise_shape_builder!(AlphaDropout);

impl AlphaDropout {
    /// Drop a fraction `rate` (in `[0, 1)`) of the inputs in training.
    pub fn new(rate: f64) -> Self {
        AlphaDropout { name: String::new(), input_shape: None, rate, noise_shape: None, built: false }
    }

    /// The drop rate.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The affine correction `(a, b)` for `rate`: `y = a * x + b` for a kept input,
    /// `a * alpha' + b` for a dropped one.
    pub fn affine(rate: f64) -> (f64, f64) {
        let a = ((1.0 - rate) * (1.0 + rate * ALPHA_P * ALPHA_P)).powf(-0.5);
        (a, -a * ALPHA_P * rate)
    }

    fn check(&self, input_shape: &[usize]) -> Result<()> {
        check_rate("AlphaDropout", &self.name, self.rate)?;
        noise_dims("AlphaDropout", &self.name, self.noise_shape.as_deref(), input_shape, false).map(|_| ())
    }
}

impl Layer for AlphaDropout {
    layer_common!("AlphaDropout");
    shape_preserving_layer!();

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        check_rate("AlphaDropout", &self.name, self.rate)?;
        let noise = noise_dims("AlphaDropout", &self.name, self.noise_shape.as_deref(), x.dims(), true)?;
        if !ctx.training || self.rate == 0.0 {
            return Ok(x.clone());
        }
        let seed = ctx.rng_for(&self.name)?.fork_seed();
        let u = Tensor::rand_uniform(seed, 0.0, 1.0, noise.as_slice(), x.dtype(), &x.device())?;
        let keep = u.ge(&u.scalar_like(self.rate)?)?.to_dtype(x.dtype())?;
        // a * (x * keep + alpha' * (1 - keep)) + b = x * (a * keep) + (b + a * alpha' * (1 - keep))
        let (a, b) = AlphaDropout::affine(self.rate);
        let scale = keep.mul_scalar(a)?;
        let shift = keep.mul_scalar(-a * ALPHA_P)?.add_scalar(b + a * ALPHA_P)?;
        Ok(x.mul(&Var::constant(scale))?.add(&Var::constant(shift))?)
    }

    fn config(&self) -> serde_json::Value {
        with_noise_shape(with_name(&self.name, serde_json::json!({ "rate": self.rate })), self.noise_shape.as_deref())
    }
}
