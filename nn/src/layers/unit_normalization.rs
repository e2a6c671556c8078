//! [`UnitNormalization`]: Keras's `layers.UnitNormalization(axis=-1)`, scale each sample to
//! unit L2 norm.

use crate::layer::{axes_config, common_builders, layer_common, resolve_axes, shape_preserving_layer, with_name};
use crate::layer::{Ctx, Layer};
use crate::layers::norm_common::statistics_dtype;
use crate::Result;
use keel_autograd::Var;

/// Keras's `UnitNormalization` epsilon: the inverse norm is at most `1 / 1e-12`.
const EPSILON: f64 = 1e-12;

/// `x` L2-normalized over `axes` as Keras's `ops.normalize(x, order=2, epsilon)`:
/// `x * min(rsqrt(sum(x^2)), 1 / epsilon)`, computed as `x * rsqrt(max(sum(x^2), epsilon^2))`,
/// the same values with a finite gradient where a slice is all zero (the `min` form's
/// backward is `0 * inf = NaN` there, in TensorFlow too). F16/BF16 inputs are normalized in
/// F32 (epsilon squared is below their range) and come back in their dtype. Shared with
/// `Dot(normalize=True)`.
pub(crate) fn l2_normalize(x: &Var, axes: &[isize], epsilon: f64) -> Result<Var> {
    let xf = statistics_dtype(x)?;
    let inv_norm = xf.square()?.sum(axes, true)?.maximum_scalar(epsilon * epsilon)?.rsqrt()?;
    let y = xf.mul(&inv_norm)?;
    Ok(if y.dtype() != x.dtype() { y.to_dtype(x.dtype())? } else { y })
}

/// Keras's `layers.UnitNormalization(axis=-1)`: `x / ||x||₂` along `axis`, which counts the
/// batch axis as Keras does (several axes normalize over all of them together). As in
/// Keras, the inverse norm is capped at `1e12`, so a zero slice gives zeros, not NaN.
///
/// Computes in F32 under mixed precision and returns the input's dtype. Passes a mask on.
///
/// ```
/// use keel_nn::{Layer, UnitNormalization};
/// let mut layer = UnitNormalization::new(-1);
/// layer.build(&[4], &mut keel_tensor::rng::Rng::new(0))?;
/// assert_eq!(layer.output_shape(&[4])?, vec![4]);
/// # Ok::<(), keel_nn::Error>(())
/// ```
pub struct UnitNormalization {
    name: String,
    input_shape: Option<Vec<usize>>,
    axes: Vec<isize>,
    built: bool,
}

common_builders!(UnitNormalization);

impl Default for UnitNormalization {
    fn default() -> Self {
        UnitNormalization::new(-1)
    }
}

impl UnitNormalization {
    /// Normalize along `axis` (counting the batch axis, as Keras).
    pub fn new(axis: isize) -> Self {
        UnitNormalization::over(vec![axis])
    }

    /// Normalize over all of `axes` together (Keras's `axis=[..]`).
    pub fn over(axes: impl Into<Vec<isize>>) -> Self {
        UnitNormalization { name: String::new(), input_shape: None, axes: axes.into(), built: false }
    }

    /// The axes, as given.
    pub fn axes(&self) -> &[isize] {
        &self.axes
    }

    fn check(&self, input_shape: &[usize]) -> Result<()> {
        resolve_axes(self, &self.axes, input_shape).map(|_| ())
    }
}

impl Layer for UnitNormalization {
    layer_common!("UnitNormalization");
    shape_preserving_layer!();

    fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
        let axes = resolve_axes(self, &self.axes, x.dims().get(1..).unwrap_or(&[]))?;
        l2_normalize(x, &axes, EPSILON)
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "axis": axes_config(&self.axes) }))
    }
}
