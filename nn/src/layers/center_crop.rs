//! [`CenterCrop`]: the centre of NHWC images, cut to a fixed height and width (Keras 3's
//! `keras/src/layers/preprocessing/image_preprocessing/center_crop.py`).

use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer};
use crate::layers::augment::image_input;
use crate::layers::image_resize::{crop, resized_shape, smart_resize};
use crate::layers::spatial::per_sample;
use crate::Result;
use keel_autograd::Var;

/// Keras 3's `CenterCrop(height, width)` on NHWC images: `[h, w, c] -> [height, width, c]`.
/// An image at least as large as the target on both axes is cut to its central
/// `height x width` window (offsets `(h - height) / 2`, `(w - width) / 2`, rounded down; a
/// slice, no resampling); a smaller one is resized as `keras.utils.smart_resize` does (its
/// largest centred window with the target's aspect ratio, resized bilinearly to the target).
/// In training and inference alike; integer pixels come out as floats.
pub struct CenterCrop {
    name: String,
    input_shape: Option<Vec<usize>>,
    height: usize,
    width: usize,
    built: bool,
}

common_builders!(CenterCrop);

impl CenterCrop {
    /// Crop to `height x width`.
    pub fn new(height: usize, width: usize) -> Self {
        CenterCrop { name: String::new(), input_shape: None, height, width, built: false }
    }

    /// The target `(height, width)`.
    pub fn size(&self) -> (usize, usize) {
        (self.height, self.width)
    }
}

impl Layer for CenterCrop {
    layer_common!("CenterCrop");

    crate::layer::weightless_build!();

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        resized_shape(input_shape, self.size(), self)
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let x = image_input(x, ctx, self)?;
        self.output_shape(per_sample(&x))?;
        let (h, w) = (x.dims()[1], x.dims()[2]);
        let (th, tw) = self.size();
        if h >= th && w >= tw {
            crop(&x, ((h - th) / 2, (w - tw) / 2, th, tw))
        } else {
            smart_resize(&x, (th, tw))
        }
    }

    fn config(&self) -> serde_json::Value {
        with_name(
            &self.name,
            serde_json::json!({ "height": self.height, "width": self.width, "data_format": "channels_last" }),
        )
    }
}
