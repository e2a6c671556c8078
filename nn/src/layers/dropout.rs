//! [`Dropout`]: randomly zero a fraction of the inputs during training, and the inverted
//! dropout core it shares with the spatial dropouts (one draw per element of a noise shape).

use crate::layer::{common_builders, layer_common, shape_preserving_layer, with_name, Ctx, Layer};
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::{DType, Device, Tensor};

/// Inverted dropout: in training each element is kept with probability
/// `1 - rate` and scaled by `1 / (1 - rate)`; in inference it is the identity.
/// The mask is drawn from the [`Ctx`]'s seeded rng (one seed per call), so a
/// seeded run is reproducible. With a [`Dropout::noise_shape`], one draw is shared along
/// each axis of size 1 (Keras's `noise_shape`).
pub struct Dropout {
    name: String,
    input_shape: Option<Vec<usize>>,
    rate: f64,
    noise_shape: Option<Vec<Option<usize>>>,
    built: bool,
}

common_builders!(Dropout);
noise_shape_builder!(Dropout);

impl Dropout {
    /// Drop a fraction `rate` (in `[0, 1)`) of the inputs in training.
    pub fn new(rate: f64) -> Self {
        Dropout { name: String::new(), input_shape: None, rate, noise_shape: None, built: false }
    }

    /// The drop rate.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    fn check(&self, input_shape: &[usize]) -> Result<()> {
        check_rate("Dropout", &self.name, self.rate)?;
        // build and output_shape see the per-sample shape, the forward pass the batch too
        noise_dims("Dropout", &self.name, self.noise_shape.as_deref(), input_shape, false).map(|_| ())
    }
}

/// The `noise_shape` builder and getter of a dropout layer with a `noise_shape` field.
macro_rules! noise_shape_builder {
    ($t:ty) => {
        impl $t {
            /// The shape of the keep/drop draw, one entry per input axis, batch first (Keras's
            /// `noise_shape`): `None` takes the input's size on that axis, `Some(1)` shares one
            /// draw along it (`[None, Some(1), None]` on `[batch, steps, features]` drops the
            /// same features at every step), any other size must be the input's.
            pub fn noise_shape(mut self, shape: impl IntoIterator<Item = Option<usize>>) -> Self {
                self.noise_shape = Some(shape.into_iter().collect());
                self
            }

            /// The noise shape set by the builder of that name (`None`: one draw per element).
            pub fn get_noise_shape(&self) -> Option<&[Option<usize>]> {
                self.noise_shape.as_deref()
            }
        }
    };
}
pub(crate) use noise_shape_builder;

/// The concrete shape of the draw of layer `name` (of class `class`) for an input of shape
/// `dims` (`batched`: batch first; else the per-sample shape, checked against the entries
/// after the batch's): the input's shape when `noise_shape` is `None`, else `noise_shape`
/// with each `None` taken from the input. Each size must be 1 or the input's: else a config
/// error naming the layer and both shapes.
pub(crate) fn noise_dims(
    class: &str,
    name: &str,
    noise_shape: Option<&[Option<usize>]>,
    dims: &[usize],
    batched: bool,
) -> Result<Vec<usize>> {
    let Some(noise) = noise_shape else { return Ok(dims.to_vec()) };
    let skip = usize::from(!batched);
    let bad = |why: String| {
        let shape = if batched { format!("{dims:?}") } else { format!("[batch, {}]", &format!("{dims:?}")[1..]) };
        let noise: Vec<String> = noise.iter().map(|d| d.map_or("None".to_string(), |d| d.to_string())).collect();
        Err(Error::config(
            format!("{class} \"{name}\""),
            format!("noise_shape [{}] does not fit an input of shape {shape}: {why}", noise.join(", ")),
        ))
    };
    if noise.len() != dims.len() + skip {
        return bad(format!(
            "give one entry per input axis, batch first ({}), None to take the input's size",
            dims.len() + skip
        ));
    }
    let mut out = Vec::with_capacity(dims.len());
    for (axis, (n, &d)) in noise[skip..].iter().zip(dims).enumerate() {
        match *n {
            None => out.push(d),
            Some(k) if k == 1 || k == d => out.push(k),
            Some(k) => {
                return bad(format!(
                    "axis {} has size {k}, which is neither 1 (one draw shared along the axis) nor the input's {d}",
                    axis + skip
                ))
            }
        }
    }
    Ok(out)
}

/// `config` with the layer's `noise_shape` added when it has one (Keras's key; `null` entries
/// take the input's size).
pub(crate) fn with_noise_shape(
    mut config: serde_json::Value,
    noise_shape: Option<&[Option<usize>]>,
) -> serde_json::Value {
    if let (Some(noise), Some(map)) = (noise_shape, config.as_object_mut()) {
        map.insert("noise_shape".into(), serde_json::json!(noise));
    }
    config
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
        check_rate("Dropout", &self.name, self.rate)?;
        let noise = noise_dims("Dropout", &self.name, self.noise_shape.as_deref(), x.dims(), true)?;
        dropout(x, self.rate, &noise, &self.name, ctx)
    }

    fn config(&self) -> serde_json::Value {
        with_noise_shape(with_name(&self.name, serde_json::json!({ "rate": self.rate })), self.noise_shape.as_deref())
    }
}
