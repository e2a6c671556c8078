//! [`RandomCrop`]: NHWC images cut to a fixed height and width at a random place during
//! training (Keras 3's `keras/src/layers/preprocessing/image_preprocessing/random_crop.py`).

use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer};
use crate::layers::augment::image_input;
use crate::layers::image_resize::{crop, resized_shape, smart_resize};
use crate::layers::spatial::per_sample;
use crate::Result;
use keel_autograd::Var;
use keel_tensor::rng::Rng;

/// Keras 3's `RandomCrop(height, width, seed=None)` on NHWC images:
/// `[h, w, c] -> [height, width, c]`. In training, when the images are larger than the
/// target on both axes (`h > height` and `w > width`, as Keras), the batch is cut to a
/// `height x width` window at a random place, one place for the whole batch (as Keras),
/// its offsets uniform in `0..=h - height` and `0..=w - width`, drawn from the `Ctx` rng.
/// Otherwise, and always in inference, the images are resized as `keras.utils.smart_resize`
/// does (their largest centred window with the target's aspect ratio, resized bilinearly to
/// the target), which is what Keras documents. Integer pixels come out as floats.
///
/// Keras's `seed` is kept in the config only; as keel's other augmentation layers, the
/// draws come from the `Ctx` rng (seeded by `Fit::seed`), so seeded runs repeat.
pub struct RandomCrop {
    name: String,
    input_shape: Option<Vec<usize>>,
    height: usize,
    width: usize,
    seed: Option<u64>,
    built: bool,
}

common_builders!(RandomCrop);

impl RandomCrop {
    /// Crop to `height x width`.
    pub fn new(height: usize, width: usize) -> Self {
        RandomCrop { name: String::new(), input_shape: None, height, width, seed: None, built: false }
    }

    /// Keras's `seed`: kept in the config; the draws come from the `Ctx`'s rng.
    pub fn seed(mut self, seed: Option<u64>) -> Self {
        self.seed = seed;
        self
    }

    /// The target `(height, width)`.
    pub fn size(&self) -> (usize, usize) {
        (self.height, self.width)
    }
}

impl Layer for RandomCrop {
    layer_common!("RandomCrop");

    crate::layer::weightless_build!();

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        resized_shape(input_shape, self.size(), self)
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let x = image_input(x, ctx, self)?;
        self.output_shape(per_sample(&x))?;
        let (h, w) = (x.dims()[1], x.dims()[2]);
        let (th, tw) = self.size();
        if ctx.training && h > th && w > tw {
            // one seed from the Ctx's rng per call, then the batch's offsets
            let mut rng = Rng::new(ctx.rng_for(&self.name)?.fork_seed());
            let top = rng.below(h - th + 1);
            let left = rng.below(w - tw + 1);
            crop(&x, (top, left, th, tw))
        } else {
            smart_resize(&x, (th, tw))
        }
    }

    fn config(&self) -> serde_json::Value {
        with_name(
            &self.name,
            serde_json::json!({
                "height": self.height,
                "width": self.width,
                "seed": self.seed,
                "data_format": "channels_last",
            }),
        )
    }
}
