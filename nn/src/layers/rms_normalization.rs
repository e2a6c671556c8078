//! [`RMSNormalization`]: Keras's `layers.RMSNormalization(axis=-1, epsilon=1e-6)`, scale
//! each sample by the inverse root mean square of its values, times a learned `scale`.

use crate::layer::{common_builders, layer_common, resolve_axes, with_name, Ctx, Layer, Weight};
use crate::layers::norm_common::{statistics_dtype, weight_as, NormAxes};
use crate::Result;
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};

/// Root mean square normalization (Keras `RMSNormalization`, Zhang & Sennrich 2019):
/// `y = x * rsqrt(mean(x², axes) + epsilon) * scale`, with no centering and no offset.
///
/// The mean is over the last axis by default ([`RMSNormalization::over`] picks others, as
/// Keras's `axis=[..]`), and the learned `scale` (ones at first) has the sizes of those
/// axes. Under mixed precision the statistics are computed in F32 and the result goes back
/// to the input's dtype; `scale` is read in the compute dtype first, as Keras autocasts it.
///
/// ```
/// use keel_nn::prelude::*;
/// use keel_autograd::Var;
/// use keel_tensor::{rng::Rng, Tensor};
/// let mut norm = RMSNormalization::new();
/// norm.build(&[2], &mut Rng::new(0))?;
/// let x = Var::constant(Tensor::from_vec(vec![3.0f32, 4.0], (1, 2))?);
/// let y = norm.forward(&x, &mut Ctx::inference())?;
/// // rms of [3, 4] is sqrt(12.5)
/// let got = y.value().to_vec::<f32>()?;
/// assert!((got[0] - 3.0 / 12.5f32.sqrt()).abs() < 1e-5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RMSNormalization {
    name: String,
    input_shape: Option<Vec<usize>>,
    epsilon: f64,
    axes: NormAxes,
    scale: Option<Param>,
}

common_builders!(RMSNormalization);

impl Default for RMSNormalization {
    fn default() -> Self {
        RMSNormalization::new()
    }
}

impl RMSNormalization {
    /// Keras defaults: the last axis, epsilon 1e-6.
    pub fn new() -> Self {
        RMSNormalization {
            name: String::new(),
            input_shape: None,
            epsilon: 1e-6,
            axes: NormAxes::new(vec![-1]),
            scale: None,
        }
    }

    /// Normalize over `axis` (1 is the first per-sample axis; negative counts from the end).
    pub fn axis(self, axis: isize) -> Self {
        self.over(vec![axis])
    }

    /// Normalize over several axes (Keras's `axis=[1, 2]`).
    pub fn over(mut self, axes: impl Into<Vec<isize>>) -> Self {
        self.axes = NormAxes::new(axes.into());
        self
    }

    /// Set epsilon (added to the mean square).
    pub fn epsilon(mut self, e: f64) -> Self {
        self.epsilon = e;
        self
    }

    /// The axes as given.
    pub fn axes(&self) -> &[isize] {
        &self.axes.axes
    }
}

impl Layer for RMSNormalization {
    layer_common!("RMSNormalization");

    fn supports_masking(&self) -> bool {
        true
    }

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<()> {
        let mut axes = self.axes.clone();
        let Some(sizes) = axes.build(self, input_shape, self.epsilon)? else {
            return Ok(());
        };
        self.scale = Some(Param::new(Tensor::ones(sizes, DType::F32, &Device::Cpu)?));
        self.axes = axes;
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.axes.built.is_some()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        resolve_axes(self, &self.axes.axes, input_shape)?;
        Ok(input_shape.to_vec())
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let (axes, broadcast) = self.axes.for_input(self, x)?;
        let in_dtype = x.dtype();
        let xf = statistics_dtype(x)?;
        let normed = xf.mul(&xf.square()?.mean(&axes, true)?.add_scalar(self.epsilon)?.rsqrt()?)?;
        let y = match &self.scale {
            Some(s) => normed.mul(&weight_as(ctx.param(s)?, &normed, broadcast.as_deref())?)?,
            None => normed,
        };
        Ok(if y.dtype() != in_dtype && in_dtype.is_float() { y.to_dtype(in_dtype)? } else { y })
    }

    fn weights(&self) -> Vec<Weight> {
        self.scale.iter().map(|s| Weight::trainable("scale", s)).collect()
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "axis": self.axes.config(), "epsilon": self.epsilon }))
    }
}
