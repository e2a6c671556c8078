//! [`Softmax`]: Keras's `layers.Softmax(axis=-1)`, over one axis or several.

use crate::layer::{
    axes_config, common_builders, layer_common, resolve_axes, shape_preserving_layer, with_name, Ctx, Layer,
};
use crate::{Activation, Result};
use keel_autograd::Var;

/// Keras's `layers.Softmax(axis=-1)`: `exp(x) / sum(exp(x))` along `axis`, which counts the
/// batch axis as Keras does (`1` is the first per-sample axis; a negative axis counts from
/// the end). Several axes (Keras's list form) normalize over all of them together.
///
/// An axis outside the input's rank, the batch axis (0), a repeated axis or an empty list
/// is a config error naming the layer. With the default `axis = -1` the layer reports the
/// softmax as its [`Layer::output_activation`], so a last layer feeds a cross-entropy its
/// logits, as an `Activation("softmax")` does.
pub struct Softmax {
    name: String,
    input_shape: Option<Vec<usize>>,
    axes: Vec<isize>,
    built: bool,
}

common_builders!(Softmax);

impl Default for Softmax {
    fn default() -> Self {
        Softmax::new(-1)
    }
}

impl Softmax {
    /// Softmax along `axis` (counting the batch axis, as Keras).
    pub fn new(axis: isize) -> Self {
        Softmax::over(vec![axis])
    }

    /// Softmax over all of `axes` together (Keras's `axis=[..]`).
    pub fn over(axes: impl Into<Vec<isize>>) -> Self {
        Softmax { name: String::new(), input_shape: None, axes: axes.into(), built: false }
    }

    /// The axes, as given.
    pub fn axes(&self) -> &[isize] {
        &self.axes
    }

    /// The axes resolved against a batch of per-sample shape `input_shape`, ascending.
    fn resolve(&self, input_shape: &[usize]) -> Result<Vec<isize>> {
        resolve_axes(self, &self.axes, input_shape)
    }

    fn check(&self, input_shape: &[usize]) -> Result<()> {
        self.resolve(input_shape).map(|_| ())
    }

    /// True when the layer is the [`Activation::Softmax`] of the last axis.
    fn is_last_axis(&self) -> bool {
        self.axes == [-1]
    }
}

impl Layer for Softmax {
    layer_common!("Softmax");
    shape_preserving_layer!();

    fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
        let axes = self.resolve(x.dims().get(1..).unwrap_or(&[]))?;
        if self.is_last_axis() {
            return Ok(x.clone());
        }
        if let [a] = axes[..] {
            return Ok(x.softmax(a)?);
        }
        // exp(x - m) / sum(exp(x - m)) over all the axes; the result does not depend on m
        let m = x.max(&axes, true)?.detach();
        let e = x.sub(&m)?.exp()?;
        Ok(e.div(&e.sum(&axes, true)?)?)
    }

    fn output_activation(&self) -> Option<Activation> {
        self.is_last_axis().then_some(Activation::Softmax)
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "axis": axes_config(&self.axes) }))
    }
}
