//! [`Dropout`]: randomly zero a fraction of the inputs during training, and the inverted
//! dropout core it shares with the spatial dropouts (one draw per element of a noise shape).

use crate::layer::{common_builders, layer_common, shape_preserving_layer, with_name, Ctx, Layer};
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::{DType, Device, Tensor};

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

    fn check(&self, _input_shape: &[usize]) -> Result<()> {
        check_rate("Dropout", &self.name, self.rate)
    }
}

/// A drop `rate` of layer `name` (of class `class`) must be in `[0, 1)`: else a config error
/// naming the layer.
pub(crate) fn check_rate(class: &str, name: &str, rate: f64) -> Result<()> {
    if !(0.0..1.0).contains(&rate) {
        return Err(Error::config(format!("{class} \"{name}\""), format!("rate must be in [0, 1), got {rate}")));
    }
    Ok(())
}

/// Inverted dropout of `x` for layer `layer`: in training, one keep/drop draw per element of
/// `noise_shape` (which broadcasts against `x`: a 1 shares a draw along that axis), kept
/// values scaled by `1 / (1 - rate)`; `x` itself in inference or at rate 0. The draw is a
/// uniform tensor from one seed forked off the [`Ctx`]'s rng.
pub(crate) fn dropout(x: &Var, rate: f64, noise_shape: &[usize], layer: &str, ctx: &mut Ctx<'_>) -> Result<Var> {
    if !ctx.training || rate == 0.0 {
        return Ok(x.clone());
    }
    let mask = dropout_mask(noise_shape, rate, x.dtype(), &x.device(), layer, ctx)?;
    Ok(x.mul(&Var::constant(mask))?)
}

/// An inverted-dropout mask of `shape` for layer `layer`: each element 0 with probability
/// `rate`, else `1 / (1 - rate)`; a uniform tensor from one seed forked off the [`Ctx`]'s rng
/// (shared by [`dropout`] and the recurrent layers' `dropout` / `recurrent_dropout`).
pub(crate) fn dropout_mask(
    shape: &[usize],
    rate: f64,
    dtype: DType,
    device: &Device,
    layer: &str,
    ctx: &mut Ctx<'_>,
) -> Result<Tensor> {
    let seed = ctx.rng_for(layer)?.fork_seed();
    let u = Tensor::rand_uniform(seed, 0.0, 1.0, shape, dtype, device)?;
    let keep = u.ge(&u.scalar_like(rate)?)?.to_dtype(dtype)?;
    Ok(keep.mul_scalar(1.0 / (1.0 - rate))?)
}

impl Layer for Dropout {
    layer_common!("Dropout");
    shape_preserving_layer!();

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        self.check(x.dims())?;
        dropout(x, self.rate, x.dims(), &self.name, ctx)
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "rate": self.rate }))
    }
}
