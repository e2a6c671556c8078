//! [`Resizing`]: NHWC images resized to a fixed height and width (Keras 3's
//! `keras/src/layers/preprocessing/image_preprocessing/resizing.py`).

use crate::layer::{check_batch_rank, check_scalar, common_builders, describe, layer_common, with_name, Ctx, Layer};
use crate::layers::image_resize::{aspect_crop_window, aspect_padding, crop, pad, resize, resized_shape};
use crate::layers::spatial::per_sample;
use crate::layers::up_sampling2d::Interpolation;
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::{FillMode, Tensor};

/// Keras 3's `Resizing(height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
/// pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0)` on NHWC images:
/// `[h, w, c] -> [height, width, c]`, as `tf.image.resize` without antialiasing (half-pixel
/// centres; `nearest` or `bilinear`). With `crop_to_aspect_ratio` each image is first cut to
/// its largest centred window with the target's aspect ratio; with `pad_to_aspect_ratio` it
/// is first padded evenly on its short side with `fill_value` (the only `fill_mode` is
/// `constant`, as in Keras). In training and inference alike; differentiable (the bilinear
/// weights are constants). Float images keep their dtype (F16/BF16 are resized in F32);
/// integer images come back in their dtype, rounded half to even and saturated, as Keras's
/// (a host round trip).
pub struct Resizing {
    name: String,
    input_shape: Option<Vec<usize>>,
    height: usize,
    width: usize,
    interpolation: Interpolation,
    crop_to_aspect_ratio: bool,
    pad_to_aspect_ratio: bool,
    fill_mode: FillMode,
    fill_value: f64,
    built: bool,
}

common_builders!(Resizing);

impl Resizing {
    /// Resize to `height x width`, bilinearly, stretching the aspect ratio.
    pub fn new(height: usize, width: usize) -> Self {
        Resizing {
            name: String::new(),
            input_shape: None,
            height,
            width,
            interpolation: Interpolation::Bilinear,
            crop_to_aspect_ratio: false,
            pad_to_aspect_ratio: false,
            fill_mode: FillMode::Constant,
            fill_value: 0.0,
            built: false,
        }
    }

    /// Keras's `interpolation` (default `Bilinear`).
    pub fn interpolation(mut self, interpolation: Interpolation) -> Self {
        self.interpolation = interpolation;
        self
    }

    /// Keras's `crop_to_aspect_ratio`: cut each image to its largest centred window with the
    /// target's aspect ratio before resizing (default false).
    pub fn crop_to_aspect_ratio(mut self, on: bool) -> Self {
        self.crop_to_aspect_ratio = on;
        self
    }

    /// Keras's `pad_to_aspect_ratio`: pad each image evenly on its short side to the
    /// target's aspect ratio before resizing (default false).
    pub fn pad_to_aspect_ratio(mut self, on: bool) -> Self {
        self.pad_to_aspect_ratio = on;
        self
    }

    /// Keras's `fill_mode` of the padding: only `FillMode::Constant` (the default) is valid.
    pub fn fill_mode(mut self, mode: FillMode) -> Self {
        self.fill_mode = mode;
        self
    }

    /// The value of the padding with `pad_to_aspect_ratio` (default 0).
    pub fn fill_value(mut self, value: f64) -> Self {
        self.fill_value = value;
        self
    }

    /// The target `(height, width)`.
    pub fn size(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    /// The interpolation.
    pub fn get_interpolation(&self) -> Interpolation {
        self.interpolation
    }

    fn check_config(&self) -> Result<()> {
        if self.crop_to_aspect_ratio && self.pad_to_aspect_ratio {
            return Err(Error::config(
                describe(self),
                "only one of crop_to_aspect_ratio and pad_to_aspect_ratio can be true",
            ));
        }
        if self.fill_mode != FillMode::Constant {
            return Err(Error::config(
                describe(self),
                format!(
                    "fill_mode must be \"constant\" (the only one Keras supports), got \"{}\"",
                    self.fill_mode.name()
                ),
            ));
        }
        check_scalar(self, "fill_value", self.fill_value, false)
    }
}

/// The bilinear resize `y` (F32) of integer images back in their `dtype`: rounded half to
/// even and saturated, as Keras's `Resizing` (`round`, then `saturate_cast`). No gradient
/// (integer images have none).
fn back_to_integers(y: &Var, dtype: keel_tensor::DType) -> Result<Var> {
    let t = y.value();
    let v: Vec<f64> = t.to_vec_f64()?.into_iter().map(f64::round_ties_even).collect();
    Ok(Var::constant(Tensor::from_vec(v, t.dims())?.to_dtype(dtype)?.to_device(&t.device())?))
}

impl Layer for Resizing {
    layer_common!("Resizing");

    crate::layer::weightless_build!();

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        self.check_config()?;
        resized_shape(input_shape, self.size(), self)
    }

    fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
        check_batch_rank(x, 3, self)?;
        self.output_shape(per_sample(x))?;
        let d = x.dims();
        let y = if self.crop_to_aspect_ratio {
            crop(x, aspect_crop_window(d[1], d[2], self.size()))?
        } else if self.pad_to_aspect_ratio {
            let (rows, cols) = aspect_padding(d[1], d[2], self.size());
            pad(x, rows, cols, self.fill_value)?
        } else {
            x.clone()
        };
        let y = resize(&y, self.height, self.width, self.interpolation)?;
        if y.dtype() != x.dtype() && !x.dtype().is_float() {
            return back_to_integers(&y, x.dtype());
        }
        Ok(y)
    }

    fn config(&self) -> serde_json::Value {
        with_name(
            &self.name,
            serde_json::json!({
                "height": self.height,
                "width": self.width,
                "interpolation": self.interpolation.name(),
                "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                "pad_to_aspect_ratio": self.pad_to_aspect_ratio,
                "fill_mode": self.fill_mode.name(),
                "fill_value": self.fill_value,
                "antialias": false,
                "data_format": "channels_last",
            }),
        )
    }
}
