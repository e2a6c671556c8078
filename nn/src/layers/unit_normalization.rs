//! [`UnitNormalization`]: Keras's `layers.UnitNormalization(axis=-1)`, scale each sample to
//! unit L2 norm.

use crate::layer::{axes_config, common_builders, layer_common, resolve_axes, shape_preserving_layer, with_name};
use crate::layer::{Ctx, Layer};
use crate::layers::norm_common::statistics_dtype;
use crate::Result;
use keel_autograd::Var;

/// Keras's `ops.normalize` floor: the inverse norm is at most `1 / 1e-12`, so an all-zero
/// slice stays zero instead of becoming NaN (`rsqrt(max(s, 1e-24)) == min(rsqrt(s), 1e12)`).
const MIN_SQUARE_SUM: f64 = 1e-24;

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
        let in_dtype = x.dtype();
        let x = statistics_dtype(x)?;
        let inv_norm = x.square()?.sum(&axes, true)?.maximum_scalar(MIN_SQUARE_SUM)?.rsqrt()?;
        let y = x.mul(&inv_norm)?;
        Ok(if y.dtype() != in_dtype && in_dtype.is_float() { y.to_dtype(in_dtype)? } else { y })
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "axis": axes_config(&self.axes) }))
    }
}
