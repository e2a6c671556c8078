//! [`BatchNormalization`]: normalize over the batch, per channel (last axis).

use crate::layer::{built, common_builders, describe, layer_common, with_name, Ctx, Layer, Weight};
use crate::layers::norm_common::{
    channels_of, channels_to_build, check_channels, epsilon_center_scale_builders, gamma_beta_constraints, GammaBeta,
};
use crate::{Error, Result};
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

/// The hyper-parameters of [`BatchNormalization`] (its Keras config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchNormalizationConfig {
    /// Moving-average momentum (Keras default 0.99).
    pub momentum: f64,
    /// Added to the variance (Keras default 1e-3).
    pub epsilon: f64,
    /// Learn an offset `beta`.
    pub center: bool,
    /// Learn a scale `gamma`.
    pub scale: bool,
    /// `beta` constraint, applied after every optimizer step (Keras's `beta_constraint`).
    #[serde(default)]
    pub beta_constraint: Option<crate::Constraint>,
    /// `gamma` constraint, applied after every optimizer step (Keras's `gamma_constraint`).
    #[serde(default)]
    pub gamma_constraint: Option<crate::Constraint>,
}

/// Batch normalization over the last axis (channels, NHWC).
///
/// In training (`ctx.training`, unless the layer is frozen: then it runs in inference
/// mode, as Keras's) it normalizes with the batch mean and
/// (population) variance over every other axis and updates the non-trainable
/// `moving_mean` / `moving_variance` in place:
/// `moving = moving * momentum + batch * (1 - momentum)`. In inference it
/// normalizes with the moving statistics. `y = gamma * (x - mean) / sqrt(var + eps) + beta`.
pub struct BatchNormalization {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: BatchNormalizationConfig,
    channels: Option<usize>,
    gamma_beta: GammaBeta,
    moving_mean: Option<Param>,
    moving_variance: Option<Param>,
}

common_builders!(BatchNormalization);
epsilon_center_scale_builders!(BatchNormalization);

impl Default for BatchNormalization {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchNormalization {
    /// Keras defaults: momentum 0.99, epsilon 1e-3, center and scale.
    pub fn new() -> Self {
        BatchNormalization::from_config(BatchNormalizationConfig {
            momentum: 0.99,
            epsilon: 1e-3,
            center: true,
            scale: true,
            beta_constraint: None,
            gamma_constraint: None,
        })
    }

    /// From a config.
    pub fn from_config(cfg: BatchNormalizationConfig) -> Self {
        BatchNormalization {
            name: String::new(),
            input_shape: None,
            cfg,
            channels: None,
            gamma_beta: GammaBeta::default(),
            moving_mean: None,
            moving_variance: None,
        }
    }

    /// Set the momentum.
    pub fn momentum(mut self, m: f64) -> Self {
        self.cfg.momentum = m;
        self
    }

    /// The moving mean, once built.
    pub fn moving_mean(&self) -> Option<&Param> {
        self.moving_mean.as_ref()
    }

    /// The moving variance, once built.
    pub fn moving_variance(&self) -> Option<&Param> {
        self.moving_variance.as_ref()
    }
}

impl BatchNormalization {
    /// The forward pass; in training the batch statistics are taken over the positions
    /// `mask` keeps (Keras's masked moments: `sum(m x) / (sum(m) + 1e-7)`), all without one.
    fn normalize(&self, x: &Var, mask: Option<&Tensor>, ctx: &mut Ctx<'_>) -> Result<Var> {
        let mm = built(&self.moving_mean, self)?;
        let mv = built(&self.moving_variance, self)?;
        check_channels(self, x, self.channels.unwrap_or(0))?;
        // Statistics in the moving averages' dtype (F32), also under mixed precision; the
        // result goes back to the input's dtype.
        let in_dtype = x.dtype();
        let x = if in_dtype.is_float() && in_dtype != mm.dtype() { x.to_dtype(mm.dtype())? } else { x.clone() };
        let eps = self.cfg.epsilon;
        // a frozen BatchNormalization runs in inference mode (Keras)
        let normed = if ctx.training && !ctx.frozen {
            let axes: Vec<isize> = (0..x.rank() as isize - 1).collect();
            let (mean, var) = match mask {
                None => (x.mean(&axes, false)?, x.var(&axes, false)?),
                Some(m) => masked_moments(&x, m, &axes, &self.name)?,
            };
            let m = self.cfg.momentum;
            let dt = mm.dtype();
            let new_mean = mm.value().mul_scalar(m)?.add(&mean.value().to_dtype(dt)?.mul_scalar(1.0 - m)?)?;
            let new_var = mv.value().mul_scalar(m)?.add(&var.value().to_dtype(dt)?.mul_scalar(1.0 - m)?)?;
            mm.assign(&new_mean)?;
            mv.assign(&new_var)?;
            x.sub(&mean)?.mul(&var.add_scalar(eps)?.rsqrt()?)?
        } else {
            let inv = Var::constant(mv.value().add_scalar(eps)?.rsqrt()?);
            x.sub(&Var::constant(mm.value()))?.mul(&inv)?
        };
        self.gamma_beta.apply(normed, in_dtype, ctx)
    }
}

/// The mean and (population) variance of `x` over `axes` counting only the positions `mask`
/// keeps (`mask` has `x`'s leading axes, all but the channels), as Keras 3's masked moments.
fn masked_moments(x: &Var, mask: &Tensor, axes: &[isize], layer: &str) -> Result<(Var, Var)> {
    let lead = &x.dims()[..x.rank() - 1];
    if mask.dims() != lead {
        return Err(Error::IncompatibleInput {
            layer: layer.to_string(),
            class: "BatchNormalization",
            expected: format!("a mask {lead:?} (the input's shape without its channels)"),
            got: mask.dims().to_vec(),
        });
    }
    let w = mask.ne(&mask.scalar_like(0.0)?)?.to_dtype(x.dtype())?.unsqueeze(-1)?;
    let count = Var::constant(w.sum(axes, false)?.add_scalar(1e-7)?);
    let w = Var::constant(w);
    let mean = x.mul(&w)?.sum(axes, false)?.div(&count)?;
    let var = x.sub(&mean)?.square()?.mul(&w)?.sum(axes, false)?.div(&count)?;
    Ok((mean, var))
}

impl Layer for BatchNormalization {
    /// Normalization computes in F32 under mixed precision: no weight is cast.
    fn compute_dtype_params(&self) -> Vec<Param> {
        Vec::new()
    }

    layer_common!("BatchNormalization");

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<()> {
        if !(0.0..=1.0).contains(&self.cfg.momentum) {
            return Err(Error::config(
                describe(self),
                format!("momentum must be in [0, 1], got {}", self.cfg.momentum),
            ));
        }
        let Some(c) = channels_to_build(self, self.channels, input_shape, self.cfg.epsilon)? else {
            return Ok(());
        };
        self.gamma_beta = GammaBeta::new(c, self.cfg.scale, self.cfg.center)?;
        let dev = Device::Cpu;
        self.moving_mean = Some(Param::new(Tensor::zeros(c, DType::F32, &dev)?));
        self.moving_variance = Some(Param::new(Tensor::ones(c, DType::F32, &dev)?));
        self.channels = Some(c);
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.channels.is_some()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        channels_of(self, input_shape)?;
        Ok(input_shape.to_vec())
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        self.normalize(x, None, ctx)
    }

    fn supports_masking(&self) -> bool {
        true
    }

    fn forward_logits_masked(&self, xs: &[Var], masks: &[Option<Tensor>], ctx: &mut Ctx<'_>) -> Result<Var> {
        let [x] = xs else { return self.forward_logits_multi(xs, ctx) };
        self.normalize(x, masks.first().and_then(Option::as_ref), ctx)
    }

    gamma_beta_constraints!();

    fn weights(&self) -> Vec<Weight> {
        let mut w = self.gamma_beta.weights();
        if let Some(m) = &self.moving_mean {
            w.push(Weight::frozen("moving_mean", m));
        }
        if let Some(v) = &self.moving_variance {
            w.push(Weight::frozen("moving_variance", v));
        }
        w
    }

    fn config(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.cfg).unwrap_or_default();
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("axis".into(), serde_json::json!(-1));
        }
        with_name(&self.name, v)
    }
}
