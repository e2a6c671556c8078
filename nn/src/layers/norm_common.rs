//! What the normalization layers (Batch-, Layer- and GroupNormalization) share: the
//! per-channel `gamma`/`beta`, the statistics' dtype, the channel-axis checks and the
//! `epsilon`/`center`/`scale` builders and the `gamma`/`beta` constraints.

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
        Self::shaped(&[channels], scale, center)
    }

    /// As [`GammaBeta::new`] with weights of `shape` (the normalized axes' sizes).
    pub(crate) fn shaped(shape: &[usize], scale: bool, center: bool) -> Result<Self> {
        let dev = Device::Cpu;
        let gamma = scale.then(|| Tensor::ones(shape, DType::F32, &dev).map(Param::new)).transpose()?;
        let beta = center.then(|| Tensor::zeros(shape, DType::F32, &dev).map(Param::new)).transpose()?;
        Ok(GammaBeta { gamma, beta })
    }

    /// `gamma * normed + beta` (each when learned), back in the input's dtype `in_dtype`:
    /// the end of every normalization layer's forward pass. The weights (F32) take the
    /// statistics' dtype first, as Keras casts them (an F64 input stays F64).
    pub(crate) fn apply(&self, normed: Var, in_dtype: DType, ctx: &Ctx<'_>) -> Result<Var> {
        self.apply_broadcast(normed, in_dtype, ctx, None)
    }

    /// [`GammaBeta::apply`] with the weights reshaped to `broadcast` first (the input's
    /// rank, 1 on the axes not normalized) when given.
    pub(crate) fn apply_broadcast(
        &self,
        normed: Var,
        in_dtype: DType,
        ctx: &Ctx<'_>,
        broadcast: Option<&[usize]>,
    ) -> Result<Var> {
        let weight = |p: &Param| -> Result<Var> { weight_as(ctx.variable(p), &normed, broadcast) };
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

    /// The `(weight, constraint)` pairs of `gamma` and `beta` (those learned and constrained).
    pub(crate) fn constraints(
        &self,
        gamma: &Option<crate::Constraint>,
        beta: &Option<crate::Constraint>,
    ) -> Vec<(Param, crate::Constraint)> {
        crate::layer::constraint_pairs(&[(gamma, &self.gamma), (beta, &self.beta)])
    }

    /// `gamma` then `beta` (those learned), trainable, under Keras's names.
    pub(crate) fn weights(&self) -> Vec<Weight> {
        let gamma = self.gamma.iter().map(|g| Weight::trainable("gamma", g));
        gamma.chain(self.beta.iter().map(|b| Weight::trainable("beta", b))).collect()
    }
}

/// A normalization weight `v` ready to multiply or add to `normed`: in its dtype, and
/// reshaped to `broadcast` when given.
pub(crate) fn weight_as(v: Var, normed: &Var, broadcast: Option<&[usize]>) -> Result<Var> {
    let v = if v.dtype() != normed.dtype() { v.to_dtype(normed.dtype())? } else { v };
    Ok(match broadcast {
        Some(shape) => v.reshape(shape)?,
        None => v,
    })
}

/// The axes a layer normalizes over (Keras's `axis`, an int or a list) and, once built,
/// those axes resolved and their sizes (the shape of its weights).
#[derive(Debug, Clone)]
pub(crate) struct NormAxes {
    /// As given (`-1`, `[1, 2]`, ...).
    pub(crate) axes: Vec<isize>,
    /// The resolved axes (ascending, counting the batch axis as 0) and their sizes.
    pub(crate) built: Option<(Vec<isize>, Vec<usize>)>,
}

impl NormAxes {
    /// Normalize over `axes` (not yet built).
    pub(crate) fn new(axes: Vec<isize>) -> Self {
        NormAxes { axes, built: None }
    }

    /// The config form: a sorted list, as a built Keras layer writes it (`[-1]`, `[1, 2]`).
    pub(crate) fn config(&self) -> serde_json::Value {
        let mut axes = self.axes.clone();
        axes.sort_unstable();
        serde_json::json!(axes)
    }

    /// Build for per-sample `input_shape`: the weights' shape, or `None` when already
    /// built for these sizes (nothing to do). Built for other sizes is an error naming
    /// both; so is an axis out of range and a negative or NaN `epsilon`.
    pub(crate) fn build(
        &mut self,
        layer: &dyn Layer,
        input_shape: &[usize],
        epsilon: f64,
    ) -> Result<Option<Vec<usize>>> {
        check_epsilon(layer, epsilon)?;
        let resolved = crate::layer::resolve_axes(layer, &self.axes, input_shape)?;
        let sizes: Vec<usize> = resolved.iter().map(|&a| input_shape[a as usize - 1]).collect();
        match &self.built {
            Some((_, have)) if *have == sizes => Ok(None),
            Some((_, have)) => Err(Error::IncompatibleInput {
                layer: layer.name().to_string(),
                class: layer.class_name(),
                expected: format!("sizes {have:?} on axes {:?} (the layer is already built)", self.axes),
                got: input_shape.to_vec(),
            }),
            None => {
                self.built = Some((resolved, sizes.clone()));
                Ok(Some(sizes))
            }
        }
    }

    /// The resolved axes for batch `x` (checked against the built sizes), and the shape to
    /// reshape the weights to (`None` when the axes are the trailing ones, which
    /// broadcast as they are).
    pub(crate) fn for_input(&self, layer: &dyn Layer, x: &Var) -> Result<(Vec<isize>, Option<Vec<usize>>)> {
        let Some((axes, sizes)) = &self.built else {
            return Err(Error::NotBuilt { layer: layer.name().to_string(), class: layer.class_name() });
        };
        let dims = x.dims();
        let fits = dims.len() >= 2
            && axes.iter().zip(sizes).all(|(&a, &s)| dims.get(a as usize) == Some(&s))
            && crate::layer::resolve_axes(layer, &self.axes, &dims[1..]).ok().as_ref() == Some(axes);
        if !fits {
            return Err(Error::IncompatibleInput {
                layer: layer.name().to_string(),
                class: layer.class_name(),
                expected: format!("sizes {sizes:?} on axes {:?}", self.axes),
                got: dims.get(1..).unwrap_or(&[]).to_vec(),
            });
        }
        let rank = dims.len() as isize;
        let trailing = axes.iter().enumerate().all(|(i, &a)| a == rank - axes.len() as isize + i as isize);
        let broadcast = (!trailing).then(|| {
            let mut shape = vec![1usize; dims.len()];
            for (&a, &s) in axes.iter().zip(sizes) {
                shape[a as usize] = s;
            }
            shape
        });
        Ok((axes.clone(), broadcast))
    }
}

/// `epsilon` must not be negative or NaN (infinite is allowed, as Keras allows it).
pub(crate) fn check_epsilon(layer: &dyn Layer, epsilon: f64) -> Result<()> {
    if epsilon.is_nan() || epsilon < 0.0 {
        return Err(Error::config(describe(layer), format!("epsilon must be >= 0, got {epsilon}")));
    }
    Ok(())
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
    check_epsilon(layer, epsilon)?;
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

/// The `epsilon`, `center`, `scale`, `beta_constraint` and `gamma_constraint` builders of a
/// normalization layer whose config (`cfg`) has those fields.
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

            $crate::layer::constraint_builders!(
                methods: beta_constraint => "`beta`",
                gamma_constraint => "`gamma`",
            );
        }
    };
}
pub(crate) use epsilon_center_scale_builders;

/// [`Layer::constraints`] of a normalization layer with a `gamma_beta` field and
/// `gamma_constraint`/`beta_constraint` in its `cfg`. Use inside `impl Layer`.
macro_rules! gamma_beta_constraints {
    () => {
        fn constraints(&self) -> Vec<(keel_autograd::Param, $crate::Constraint)> {
            self.gamma_beta.constraints(&self.cfg.gamma_constraint, &self.cfg.beta_constraint)
        }
    };
}
pub(crate) use gamma_beta_constraints;
