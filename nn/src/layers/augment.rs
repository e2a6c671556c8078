//! Shared code of the image-augmentation layers ([`RandomFlip`](crate::RandomFlip),
//! [`RandomContrast`](crate::RandomContrast), [`RandomBrightness`](crate::RandomBrightness),
//! the affine layers and the colour layers of `image_color.rs`):
//! the NHWC input checks, the float input, and one random draw per sample.

use crate::layer::{check_batch_rank, check_sample_rank, Ctx, Layer};
use crate::Result;
use keel_autograd::Var;
use keel_tensor::{DType, Tensor};

/// The per-sample layout the image layers take.
const IMAGE: &str = "[height, width, channels] (NHWC)";

/// Check that a per-sample shape is an image `[height, width, channels]`.
pub(crate) fn check_image(input_shape: &[usize], layer: &dyn Layer) -> Result<()> {
    check_sample_rank(input_shape, 3, IMAGE, layer)
}

/// The batch `x` as an image layer computes on it, after checking it is `[n, h, w, c]`:
/// float pixels as they are, integer ones cast to the compute dtype (F32 without a
/// mixed-precision policy), as Keras casts them, in inference as in training.
pub(crate) fn image_input(x: &Var, ctx: &Ctx<'_>, layer: &dyn Layer) -> Result<Var> {
    check_batch_rank(x, 3, layer)?;
    if x.dtype().is_float() {
        return Ok(x.clone());
    }
    Ok(x.to_dtype(ctx.compute_dtype.unwrap_or(DType::F32))?)
}

/// One uniform draw in `[lo, hi)` per sample of the batch `x`, shaped `[n, 1, 1, 1]` (so it
/// broadcasts over each image) in `dtype` on `x`'s device, from one seed forked off the
/// [`Ctx`]'s rng; `lo` everywhere, with nothing drawn, when `lo == hi`.
pub(crate) fn per_sample_uniform(
    x: &Var,
    lo: f64,
    hi: f64,
    dtype: DType,
    layer: &str,
    ctx: &mut Ctx<'_>,
) -> Result<Tensor> {
    let shape = [x.dims().first().copied().unwrap_or(1), 1, 1, 1];
    if lo == hi {
        return Ok(Tensor::full(lo, shape, dtype, &x.device())?);
    }
    let seed = ctx.rng_for(layer)?.fork_seed();
    Ok(Tensor::rand_uniform(seed, lo, hi, shape, dtype, &x.device())?)
}
