//! What the normalization layers (Batch-, Layer- and GroupNormalization) share: the
//! per-channel `gamma`/`beta`, the statistics' dtype, the channel-axis checks and the
//! `epsilon`/`center`/`scale` builders.

use crate::layer::{describe, Ctx, Layer, Weight};
use crate::{Error, Result};
use keel_autograd::{Param, Var};
use keel_tensor::{DType, Device, Tensor};

/// A normalization layer's learned `gamma` (scale, ones) and `beta` (offset, zeros), each
/// present when the config asks for it.
#[derive(Default)]
pub(crate) struct GammaBeta {
    gamma: Option<Param>,
    beta: Option<Param>,
}

impl GammaBeta {
    /// Keras's initial values for `channels` channels: `gamma` ones when `scale`, `beta`
    /// zeros when `center`.
    pub(crate) fn new(channels: usize, scale: bool, center: bool) -> Result<Self> {
        let dev = Device::Cpu;
        let gamma = scale.then(|| Tensor::ones(channels, DType::F32, &dev).map(Param::new)).transpose()?;
        let beta = center.then(|| Tensor::zeros(channels, DType::F32, &dev).map(Param::new)).transpose()?;
        Ok(GammaBeta { gamma, beta })
    }

    /// `gamma * normed + beta` (each when learned), back in the input's dtype `in_dtype`:
    /// the end of every normalization layer's forward pass. The weights (F32) take the
    /// statistics' dtype first, as Keras casts them (an F64 input stays F64).
    pub(crate) fn apply(&self, normed: Var, in_dtype: DType, ctx: &Ctx<'_>) -> Result<Var> {
        let weight = |p: &Param| -> Result<Var> {
            let v = ctx.variable(p);
            Ok(if v.dtype() != normed.dtype() { v.to_dtype(normed.dtype())? } else { v })
        };
        let scaled = match &self.gamma {
            Some(g) => normed.mul(&weight(g)?)?,
            None => normed.clone(),
        };
        let y = match &self.beta {
            Some(b) => scaled.add(&weight(b)?)?,
            None => scaled,
        };
        Ok(if y.dtype() != in_dtype && in_dtype.is_float() { y.to_dtype(in_dtype)? } else { y })
    }

    /// `gamma` then `beta` (those learned), trainable, under Keras's names.
    pub(crate) fn weights(&self) -> Vec<Weight> {
        let gamma = self.gamma.iter().map(|g| Weight::trainable("gamma", g));
        gamma.chain(self.beta.iter().map(|b| Weight::trainable("beta", b))).collect()
    }
}

/// `x` in the dtype the normalization layers compute their statistics in: F16 and BF16
/// (mixed precision) go up to F32, as Keras's `result_type(dtype, "float32")`; F32 and F64
/// stay.
pub(crate) fn statistics_dtype(x: &Var) -> Result<Var> {
    Ok(match x.dtype() {
        DType::F16 | DType::BF16 => x.to_dtype(DType::F32)?,
        _ => x.clone(),
    })
}

/// The size of the last (channel) axis of per-sample shape `input_shape`, which must exist
/// and be non-zero.
pub(crate) fn channels_of(layer: &dyn Layer, input_shape: &[usize]) -> Result<usize> {
    match input_shape.last() {
        Some(&c) if c > 0 => Ok(c),
        _ => Err(Error::IncompatibleInput {
            layer: layer.name().to_string(),
            class: layer.class_name(),
            expected: "a per-sample shape of rank >= 1 (normalized per channel, channels last)".into(),
            got: input_shape.to_vec(),
        }),
    }
}

/// The start of a per-channel normalization layer's `build`: the channel count of
/// `input_shape` with `epsilon` checked (finite or not, it must not be negative or NaN),
/// or `None` when the layer is already built for that count (nothing to do). Built for
/// another count is an error naming both.
pub(crate) fn channels_to_build(
    layer: &dyn Layer,
    built: Option<usize>,
    input_shape: &[usize],
    epsilon: f64,
) -> Result<Option<usize>> {
    let channels = channels_of(layer, input_shape)?;
    if epsilon.is_nan() || epsilon < 0.0 {
        return Err(Error::config(describe(layer), format!("epsilon must be >= 0, got {epsilon}")));
    }
    match built {
        None => Ok(Some(channels)),
        Some(have) if have == channels => Ok(None),
        Some(have) => Err(Error::IncompatibleInput {
            layer: layer.name().to_string(),
            class: layer.class_name(),
            expected: format!("{have} channels on the last axis (the layer is already built)"),
            got: input_shape.to_vec(),
        }),
    }
}

/// A batch `x` must have `channels` channels on its last axis (and a batch axis).
pub(crate) fn check_channels(layer: &dyn Layer, x: &Var, channels: usize) -> Result<()> {
    if x.rank() < 2 || x.dims().last() != Some(&channels) {
        return Err(Error::IncompatibleInput {
            layer: layer.name().to_string(),
            class: layer.class_name(),
            expected: format!("{channels} channels on the last axis"),
            got: x.dims().get(1..).unwrap_or(&[]).to_vec(),
        });
    }
    Ok(())
}

/// The `epsilon`, `center` and `scale` builders of a normalization layer whose config
/// (`cfg`) has those fields.
macro_rules! epsilon_center_scale_builders {
    ($t:ty) => {
        impl $t {
            /// Set epsilon (added to the variance).
            pub fn epsilon(mut self, e: f64) -> Self {
                self.cfg.epsilon = e;
                self
            }

            /// Learn `beta` or not.
            pub fn center(mut self, yes: bool) -> Self {
                self.cfg.center = yes;
                self
            }

            /// Learn `gamma` or not.
            pub fn scale(mut self, yes: bool) -> Self {
                self.cfg.scale = yes;
                self
            }
        }
    };
}
pub(crate) use epsilon_center_scale_builders;
