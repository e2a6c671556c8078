//! [`RandomFlip`]: flip each image left-right and/or top-bottom at random during training.

use crate::layer::{common_builders, layer_common, shape_preserving_layer, with_name, Ctx, Layer};
use crate::layers::augment::{check_image, image_input, per_sample_uniform};
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::{DType, Tensor};

/// The modes and the batch axes (NHWC) each flips, width (left-right) before height.
const MODES: [(&str, &[usize]); 3] = [("horizontal", &[2]), ("vertical", &[1]), ("horizontal_and_vertical", &[2, 1])];

/// Keras's `RandomFlip` on NHWC images: in training each image is flipped left-right
/// (`"horizontal"`), top-bottom (`"vertical"`) or both (`"horizontal_and_vertical"`, the
/// default: one draw for both axes, as Keras 3), with probability 0.5 per sample;
/// in inference it is the identity. Integer pixels come out as floats.
pub struct RandomFlip {
    name: String,
    input_shape: Option<Vec<usize>>,
    mode: String,
    built: bool,
}

common_builders!(RandomFlip);

impl Default for RandomFlip {
    fn default() -> Self {
        RandomFlip::new("horizontal_and_vertical")
    }
}

impl RandomFlip {
    /// Flip in `mode`: `"horizontal"`, `"vertical"` or `"horizontal_and_vertical"`.
    pub fn new(mode: impl Into<String>) -> Self {
        RandomFlip { name: String::new(), input_shape: None, mode: mode.into(), built: false }
    }

    /// The flip mode.
    pub fn mode(&self) -> &str {
        &self.mode
    }

    /// The batch axes the mode flips, or a config error naming the layer.
    fn axes(&self) -> Result<&'static [usize]> {
        match MODES.iter().find(|(m, _)| *m == self.mode) {
            Some((_, axes)) => Ok(axes),
            None => Err(Error::config(
                format!("RandomFlip \"{}\"", self.name),
                format!(
                    "mode must be \"horizontal\", \"vertical\" or \"horizontal_and_vertical\", got \"{}\"",
                    self.mode
                ),
            )),
        }
    }

    fn check(&self, input_shape: &[usize]) -> Result<()> {
        self.axes()?;
        check_image(input_shape, self)
    }
}

/// `x` reversed along `axis` (an `index_select` of the reversed indices).
fn reversed(x: &Var, axis: usize) -> Result<Var> {
    let len = x.dims()[axis] as f64;
    let rev = Tensor::arange(len - 1.0, -1.0, -1.0, DType::I64, &x.device())?;
    Ok(x.index_select(&rev, axis as isize)?)
}

impl Layer for RandomFlip {
    layer_common!("RandomFlip");
    shape_preserving_layer!();

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let axes = self.axes()?;
        let mut y = image_input(x, ctx, self)?;
        if !ctx.training {
            return Ok(y);
        }
        // one draw per sample, as Keras 3: flip where u <= 0.5, along every axis of the
        // mode (so "horizontal_and_vertical" leaves an image or turns it 180 degrees); the
        // gradient follows the pixels
        let u = per_sample_uniform(&y, 0.0, 1.0, DType::F32, &self.name, ctx)?;
        let flip = u.le(&u.scalar_like(0.5)?)?;
        let mut flipped = y.clone();
        for &axis in axes {
            flipped = reversed(&flipped, axis)?;
        }
        y = Var::where_cond(&flip, &flipped, &y)?;
        Ok(y)
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "mode": self.mode }))
    }
}
