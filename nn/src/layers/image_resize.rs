//! Shared code of the image layers that change an image's size ([`Resizing`](crate::Resizing),
//! [`CenterCrop`](crate::CenterCrop), [`RandomCrop`](crate::RandomCrop), and
//! [`UpSampling2D`](crate::UpSampling2D)'s bilinear mode) on NHWC batches: TensorFlow's resize
//! (what Keras 3's `ops.image.resize` runs, without antialiasing), Keras's boxes for
//! `crop_to_aspect_ratio` and `pad_to_aspect_ratio`, and `keras.utils.smart_resize`.
//!
//! Followed: `tensorflow/core/kernels/image/resize_bilinear_op.cc` and
//! `resize_nearest_neighbor_op.cc` with `half_pixel_centers=True` (`tf.image.resize`'s v2
//! kernels), and `keras/src/backend/tensorflow/image.py` (`resize`) and
//! `keras/src/utils/image_utils.py` (`smart_resize`). The sample positions are computed on
//! the host in f32, as TensorFlow computes them, so the pixels picked (and the bilinear
//! weights) are TensorFlow's bit for bit; the images are then gathered with `index_select`
//! and blended with elementwise ops, so the resize runs on the images' device and has the
//! exact gradient.

use crate::layer::{describe, Layer};
use crate::layers::augment::check_image;
use crate::layers::spatial::pad_axis;
use crate::layers::up_sampling2d::Interpolation;
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::{DType, Device, Tensor};

/// A `(top, left, height, width)` window of an image.
pub(crate) type Window = (usize, usize, usize, usize);

/// The per-sample output shape `[height, width, c]` of `layer`, which resizes or crops
/// images to `target` `(height, width)`, for the per-sample `input` `[h, w, c]`: the target
/// must be at least 1 x 1 (a config error otherwise) and so must the input (an input error).
pub(crate) fn resized_shape(input: &[usize], target: (usize, usize), layer: &dyn Layer) -> Result<Vec<usize>> {
    if target.0 == 0 || target.1 == 0 {
        return Err(Error::config(
            describe(layer),
            format!("height and width must be at least 1, got ({}, {})", target.0, target.1),
        ));
    }
    check_image(input, layer)?;
    if input[0] == 0 || input[1] == 0 {
        return Err(Error::IncompatibleInput {
            layer: layer.name().to_string(),
            class: layer.class_name(),
            expected: "images of at least 1 x 1 pixels".into(),
            got: input.to_vec(),
        });
    }
    Ok(vec![target.0, target.1, input[2]])
}

/// The batch `x` (`[n, h, w, c]`, `h, w > 0`) resized to `height x width` as
/// `tf.image.resize(x, (height, width), method, antialias=False)`: each output pixel samples
/// the input at `(i + 0.5) * in / out - 0.5` (bilinear: the four neighbours, edges clamped,
/// blended along the width first, as TensorFlow) or takes the pixel
/// `floor((i + 0.5) * in / out)` (nearest). An axis whose size does not change is left as it
/// is. F32 and F64 images are resized in their dtype, F16/BF16 ones in F32 and rounded back;
/// integer images come out bilinearly resized as F32 (nearest keeps their dtype).
pub(crate) fn resize(x: &Var, height: usize, width: usize, interpolation: Interpolation) -> Result<Var> {
    check_output_size(x, height, width)?;
    match interpolation {
        Interpolation::Nearest => {
            let y = nearest_axis(x, 2, width)?;
            nearest_axis(&y, 1, height)
        }
        Interpolation::Bilinear => {
            let dtype = x.dtype();
            let work = match dtype {
                DType::F32 | DType::F64 => x.clone(),
                _ => x.to_dtype(DType::F32)?,
            };
            let y = bilinear_axis(&work, 2, width)?;
            let y = bilinear_axis(&y, 1, height)?;
            match dtype {
                DType::F16 | DType::BF16 => Ok(y.to_dtype(dtype)?),
                _ => Ok(y),
            }
        }
    }
}

/// An error (not an abort in the allocator) when `x` resized to `height x width` has more
/// bytes than memory can address.
fn check_output_size(x: &Var, height: usize, width: usize) -> Result<()> {
    let d = x.dims();
    let bytes = [d[0], height, width, d[3], DType::F32.size_in_bytes().max(x.dtype().size_in_bytes())]
        .iter()
        .try_fold(1usize, |acc, &k| acc.checked_mul(k))
        .filter(|&b| b <= isize::MAX as usize);
    match bytes {
        Some(_) => Ok(()),
        None => Err(Error::Tensor(keel_tensor::Error::InvalidShape {
            op: "resize",
            shape: x.shape().clone(),
            msg: format!("resized to {height} x {width} it has more elements than memory can address"),
        })),
    }
}

/// TensorFlow's scale of a half-pixel resize from `n_in` to `n_out` samples, in f32.
fn scale(n_in: usize, n_out: usize) -> f32 {
    n_in as f32 / n_out as f32
}

/// The input index each of `n_out` outputs reads with nearest interpolation:
/// `min(floor((i + 0.5) * scale), n_in - 1)` in f32 (`HalfPixelScalerForNN`), so the ties
/// fall where TensorFlow's do.
fn nearest_taps(n_in: usize, n_out: usize) -> Vec<i64> {
    let s = scale(n_in, n_out);
    (0..n_out).map(|i| (((i as f32 + 0.5) * s).floor().max(0.0) as usize).min(n_in - 1) as i64).collect()
}

/// The `(lower, upper, lerp)` of each of `n_out` bilinear outputs: TensorFlow's
/// `compute_interpolation_weights` with `HalfPixelScaler` (`(i + 0.5) * scale - 0.5` in f32,
/// neighbours clamped to the image).
fn bilinear_taps(n_in: usize, n_out: usize) -> (Vec<i64>, Vec<i64>, Vec<f32>) {
    let s = scale(n_in, n_out);
    let last = n_in as f32 - 1.0;
    let (mut lo, mut hi, mut lerp) = (Vec::with_capacity(n_out), Vec::with_capacity(n_out), Vec::with_capacity(n_out));
    for i in 0..n_out {
        let p = (i as f32 + 0.5) * s - 0.5;
        let f = p.floor();
        lo.push(f.clamp(0.0, last) as i64);
        hi.push(p.ceil().clamp(0.0, last) as i64);
        lerp.push(p - f);
    }
    (lo, hi, lerp)
}

/// An I64 index tensor on `device`.
fn indices(v: Vec<i64>, device: &Device) -> Result<Tensor> {
    let n = v.len();
    Ok(Tensor::from_vec(v, n)?.to_device(device)?)
}

/// `x` resampled along `axis` to `n_out` entries with nearest interpolation (a gather).
fn nearest_axis(x: &Var, axis: usize, n_out: usize) -> Result<Var> {
    let n_in = x.dims()[axis];
    if n_in == n_out {
        return Ok(x.clone());
    }
    Ok(x.index_select(&indices(nearest_taps(n_in, n_out), &x.device())?, axis as isize)?)
}

/// `x` (F32 or F64) resampled along `axis` to `n_out` entries with bilinear interpolation:
/// `a + (b - a) * lerp` with `a`, `b` the gathered lower and upper neighbours (TensorFlow's
/// formula and order of operations).
fn bilinear_axis(x: &Var, axis: usize, n_out: usize) -> Result<Var> {
    let n_in = x.dims()[axis];
    if n_in == n_out {
        return Ok(x.clone());
    }
    let (lo, hi, lerp) = bilinear_taps(n_in, n_out);
    let device = x.device();
    let a = x.index_select(&indices(lo, &device)?, axis as isize)?;
    let b = x.index_select(&indices(hi, &device)?, axis as isize)?;
    let mut shape = vec![1; x.rank()];
    shape[axis] = n_out;
    let w = Tensor::from_vec(lerp, shape)?.to_dtype(x.dtype())?.to_device(&device)?;
    Ok(a.add(&b.sub(&a)?.mul(&Var::constant(w))?)?)
}

/// Keras's crop for `crop_to_aspect_ratio` and `smart_resize`: the largest window of an
/// `h x w` image with the aspect ratio of `target` `(height, width)`, centred (its offsets
/// rounded down): height `max(min(h, w * th / tw), 1)`, width `max(min(w, h * tw / th), 1)`,
/// the quotients rounded down.
pub(crate) fn aspect_crop_window(h: usize, w: usize, target: (usize, usize)) -> Window {
    let (th, tw) = (target.0.max(1) as u128, target.1.max(1) as u128);
    let ch = ((w as u128 * th / tw) as usize).min(h).max(1);
    let cw = ((h as u128 * tw / th) as usize).min(w).max(1);
    (h.saturating_sub(ch) / 2, w.saturating_sub(cw) / 2, ch, cw)
}

/// Keras's padding for `pad_to_aspect_ratio`: the rows added above and below (each) and the
/// columns added left and right (each) of an `h x w` image, half the shortfall of the
/// side that is short for the aspect ratio of `target`, rounded down (so an odd shortfall
/// leaves the padded image one pixel short of the ratio, as Keras's).
pub(crate) fn aspect_padding(h: usize, w: usize, target: (usize, usize)) -> (usize, usize) {
    let (th, tw) = (target.0.max(1) as u128, target.1.max(1) as u128);
    let ph = ((w as u128 * th / tw) as usize).max(h);
    let pw = ((h as u128 * tw / th) as usize).max(w);
    ((ph - h) / 2, (pw - w) / 2)
}

/// The window `(top, left, height, width)` of the batch `x` (a slice on the height and
/// width axes; the gradient is zero outside it).
pub(crate) fn crop(x: &Var, (top, left, height, width): Window) -> Result<Var> {
    Ok(x.narrow(1, top, height)?.narrow(2, left, width)?)
}

/// The batch `x` with `rows` rows of `value` above and below and `cols` columns left and
/// right.
pub(crate) fn pad(x: &Var, rows: usize, cols: usize, value: f64) -> Result<Var> {
    let y = pad_axis(x, 1, rows, rows, value)?;
    pad_axis(&y, 2, cols, cols, value)
}

/// `keras.utils.smart_resize(x, target)`: the [aspect-ratio window](aspect_crop_window)
/// of each image, resized bilinearly to `target` `(height, width)`.
pub(crate) fn smart_resize(x: &Var, target: (usize, usize)) -> Result<Var> {
    let d = x.dims();
    let y = crop(x, aspect_crop_window(d[1], d[2], target))?;
    resize(&y, target.0, target.1, Interpolation::Bilinear)
}
