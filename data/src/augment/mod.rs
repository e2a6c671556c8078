//! Keras's `ImageDataGenerator`: random affine transforms, flips, brightness
//! and channel shifts, plus feature/sample-wise standardization.
//!
//! ```
//! use keel_data::augment::ImageDataGenerator;
//! use keel_data::BatchSource;
//! use keel_tensor::Tensor;
//! # fn main() -> keel_data::Result<()> {
//! let x = Tensor::from_vec(vec![0u8; 4 * 28 * 28], (4, 28, 28, 1))?;
//! let y = Tensor::from_vec(vec![0i64, 1, 2, 3], 4)?;
//! let datagen = ImageDataGenerator::new()
//!     .rotation_range(10.0)
//!     .zoom_range(0.1)
//!     .width_shift_range(0.1)
//!     .height_shift_range(0.1)
//!     .rescale(1.0 / 255.0);
//! let mut flow = datagen.flow(&x, &y, 2)?.seed(42);
//! for batch in flow.batches(0) {
//!     let (xb, _yb) = batch?;
//!     assert_eq!(xb.dims(), &[2, 28, 28, 1]); // F32
//! }
//! # Ok(()) }
//! ```
//!
//! Semantics follow Keras 3's `keras.src.legacy.preprocessing.image` (checked
//! against it by `tests/fixtures/make_augment.py`): per image, one affine map
//! (see [`affine`]), then channel shift, horizontal then vertical flip, then
//! brightness; [`standardize`](ImageDataGenerator::standardize) (rescale,
//! sample-wise, then feature-wise) runs after the random transform, as in
//! `flow`. Randomness comes from keel's seeded generator, not NumPy's, so
//! the *draws* differ from Keras for the same seed while the transform for
//! given parameters is the same. Per-image seeds are derived from
//! `(seed, epoch, sample index)`, so results do not depend on the thread count.

pub mod affine;
mod flow;

pub use affine::FillMode;
pub use flow::ImageFlow;

use crate::seed::derive_seed;
use crate::{Error, Result};
use keel_tensor::rng::Rng;
use keel_tensor::Tensor;
use rayon::prelude::*;

/// A shift range: Keras's float (uniform in `[-r, r)`) or list of values (random choice and sign).
///
/// Values below 1 (the largest, for a list) are fractions of the image size;
/// otherwise pixels.
#[derive(Debug, Clone, PartialEq)]
pub enum ShiftRange {
    /// Uniform in `[-r, r)`.
    Uniform(f64),
    /// One of these values, with a random sign.
    Choices(Vec<f64>),
}

impl ShiftRange {
    fn is_active(&self) -> bool {
        match self {
            ShiftRange::Uniform(r) => *r != 0.0,
            ShiftRange::Choices(v) => !v.is_empty(),
        }
    }

    fn draw(&self, size: usize, rng: &mut Rng) -> f64 {
        let (v, max) = match self {
            ShiftRange::Uniform(r) => (rng.uniform(-r, *r), *r),
            ShiftRange::Choices(c) => {
                let v = c[rng.below(c.len())];
                let sign = if rng.below(2) == 0 { -1.0 } else { 1.0 };
                (v * sign, c.iter().cloned().fold(f64::NEG_INFINITY, f64::max))
            }
        };
        if max < 1.0 {
            v * size as f64
        } else {
            v
        }
    }
}

/// The random parameters of one image's transform (Keras's `transform_parameters`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransformParams {
    /// Rotation in degrees.
    pub theta: f64,
    /// Keras `tx`: drawn from `height_shift_range` (pixels); moves along the columns (see [`affine`]).
    pub tx: f64,
    /// Keras `ty`: drawn from `width_shift_range` (pixels); moves along the rows.
    pub ty: f64,
    /// Shear angle in degrees.
    pub shear: f64,
    /// Zoom factor `zx` (columns); > 1 zooms out.
    pub zx: f64,
    /// Zoom factor `zy` (rows).
    pub zy: f64,
    /// Mirror left-right.
    pub flip_horizontal: bool,
    /// Mirror top-bottom.
    pub flip_vertical: bool,
    /// Added to every channel, then clipped to the image's min/max.
    pub channel_shift_intensity: Option<f64>,
    /// Brightness factor (PIL `ImageEnhance.Brightness`).
    pub brightness: Option<f64>,
}

impl Default for TransformParams {
    fn default() -> Self {
        TransformParams {
            theta: 0.0,
            tx: 0.0,
            ty: 0.0,
            shear: 0.0,
            zx: 1.0,
            zy: 1.0,
            flip_horizontal: false,
            flip_vertical: false,
            channel_shift_intensity: None,
            brightness: None,
        }
    }
}

/// Keras's `ImageDataGenerator` for NHWC images; configure with the builder methods.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageDataGenerator {
    featurewise_center: bool,
    samplewise_center: bool,
    featurewise_std_normalization: bool,
    samplewise_std_normalization: bool,
    rotation_range: f64,
    width_shift_range: ShiftRange,
    height_shift_range: ShiftRange,
    brightness_range: Option<(f64, f64)>,
    shear_range: f64,
    zoom_range: (f64, f64),
    channel_shift_range: f64,
    fill_mode: FillMode,
    cval: f32,
    horizontal_flip: bool,
    vertical_flip: bool,
    rescale: Option<f32>,
    /// Per-channel mean learned by [`fit`](Self::fit).
    pub mean: Option<Vec<f32>>,
    /// Per-channel std learned by [`fit`](Self::fit).
    pub std: Option<Vec<f32>>,
}

impl Default for ImageDataGenerator {
    fn default() -> Self {
        Self::new()
    }
}

/// Check an image tensor is `[N, H, W, C]` and return its dims.
fn dims4(x: &Tensor, op: &'static str) -> Result<(usize, usize, usize, usize)> {
    match *x.dims() {
        [n, h, w, c] if h > 0 && w > 0 && c > 0 => Ok((n, h, w, c)),
        _ => Err(Error::invalid(
            op,
            format!(
                "expected images [N, height, width, channels] (NHWC), got shape {:?}; \
                 add a channel axis with .unsqueeze(-1) for grayscale",
                x.dims()
            ),
        )),
    }
}

/// An error naming the first non-finite value among `(name, value)` pairs.
fn check_finite<'a>(op: &'static str, values: impl IntoIterator<Item = (&'a str, f64)>) -> Result<()> {
    match values.into_iter().find(|(_, v)| !v.is_finite()) {
        Some((name, v)) => Err(Error::invalid(op, format!("{name} must be finite, got {v}"))),
        None => Ok(()),
    }
}

impl ImageDataGenerator {
    /// Refuse non-finite settings (a NaN range would turn every image into zeros).
    fn validate(&self, op: &'static str) -> Result<()> {
        let shifts = |name: &'static str, r: &ShiftRange| -> Vec<(&'static str, f64)> {
            match r {
                ShiftRange::Uniform(v) => vec![(name, *v)],
                ShiftRange::Choices(c) => c.iter().map(|&v| (name, v)).collect(),
            }
        };
        let (blo, bhi) = self.brightness_range.unwrap_or((1.0, 1.0));
        check_finite(
            op,
            [
                ("rotation_range", self.rotation_range),
                ("shear_range", self.shear_range),
                ("zoom_range", self.zoom_range.0),
                ("zoom_range", self.zoom_range.1),
                ("channel_shift_range", self.channel_shift_range),
                ("brightness_range", blo),
                ("brightness_range", bhi),
                ("cval", self.cval as f64),
                ("rescale", self.rescale.unwrap_or(1.0) as f64),
            ]
            .into_iter()
            .chain(shifts("width_shift_range", &self.width_shift_range))
            .chain(shifts("height_shift_range", &self.height_shift_range)),
        )
    }

    /// A generator that changes nothing (Keras's defaults).
    pub fn new() -> Self {
        ImageDataGenerator {
            featurewise_center: false,
            samplewise_center: false,
            featurewise_std_normalization: false,
            samplewise_std_normalization: false,
            rotation_range: 0.0,
            width_shift_range: ShiftRange::Uniform(0.0),
            height_shift_range: ShiftRange::Uniform(0.0),
            brightness_range: None,
            shear_range: 0.0,
            zoom_range: (1.0, 1.0),
            channel_shift_range: 0.0,
            fill_mode: FillMode::Nearest,
            cval: 0.0,
            horizontal_flip: false,
            vertical_flip: false,
            rescale: None,
            mean: None,
            std: None,
        }
    }

    /// Random rotation in `[-deg, deg)` degrees.
    pub fn rotation_range(mut self, deg: f64) -> Self {
        self.rotation_range = deg;
        self
    }

    /// Horizontal shift: a fraction of the width if < 1, else pixels, drawn uniformly in
    /// `[-r, r)` (Keras's float setting). Keras's *integer* setting `n` draws whole pixels
    /// from `{-(n-1), ..., n-1}`: use [`width_shift`](Self::width_shift) with
    /// `ShiftRange::Choices` for that.
    pub fn width_shift_range(mut self, r: f64) -> Self {
        self.width_shift_range = ShiftRange::Uniform(r);
        self
    }

    /// Vertical shift: a fraction of the height if < 1, else pixels, drawn uniformly in
    /// `[-r, r)` (Keras's float setting; for its integer setting see
    /// [`width_shift_range`](Self::width_shift_range)).
    pub fn height_shift_range(mut self, r: f64) -> Self {
        self.height_shift_range = ShiftRange::Uniform(r);
        self
    }

    /// Horizontal shift as a [`ShiftRange`] (e.g. a list of allowed values).
    pub fn width_shift(mut self, r: ShiftRange) -> Self {
        self.width_shift_range = r;
        self
    }

    /// Vertical shift as a [`ShiftRange`].
    pub fn height_shift(mut self, r: ShiftRange) -> Self {
        self.height_shift_range = r;
        self
    }

    /// Random shear in `[-deg, deg)` degrees (counter-clockwise).
    pub fn shear_range(mut self, deg: f64) -> Self {
        self.shear_range = deg;
        self
    }

    /// Random zoom in `[1 - z, 1 + z)` for each axis.
    pub fn zoom_range(mut self, z: f64) -> Self {
        self.zoom_range = (1.0 - z, 1.0 + z);
        self
    }

    /// Random zoom in `[lo, hi)` for each axis.
    pub fn zoom_range_bounds(mut self, lo: f64, hi: f64) -> Self {
        self.zoom_range = (lo, hi);
        self
    }

    /// Random channel shift in `[-r, r)`.
    pub fn channel_shift_range(mut self, r: f64) -> Self {
        self.channel_shift_range = r;
        self
    }

    /// Random brightness factor in `[lo, hi)`.
    pub fn brightness_range(mut self, lo: f64, hi: f64) -> Self {
        self.brightness_range = Some((lo, hi));
        self
    }

    /// How to fill points outside the image (default [`FillMode::Nearest`]).
    pub fn fill_mode(mut self, mode: FillMode) -> Self {
        self.fill_mode = mode;
        self
    }

    /// The constant for [`FillMode::Constant`].
    pub fn cval(mut self, v: f32) -> Self {
        self.cval = v;
        self
    }

    /// Randomly mirror left-right (p = 0.5).
    pub fn horizontal_flip(mut self, on: bool) -> Self {
        self.horizontal_flip = on;
        self
    }

    /// Randomly mirror top-bottom (p = 0.5).
    pub fn vertical_flip(mut self, on: bool) -> Self {
        self.vertical_flip = on;
        self
    }

    /// Multiply pixels by `factor` (after the random transform), e.g. `1.0 / 255.0`.
    pub fn rescale(mut self, factor: f32) -> Self {
        self.rescale = if factor == 0.0 { None } else { Some(factor) };
        self
    }

    /// Subtract the per-channel dataset mean (needs [`fit`](Self::fit)).
    pub fn featurewise_center(mut self, on: bool) -> Self {
        self.featurewise_center = on;
        self
    }

    /// Divide by the per-channel dataset std (+1e-6) (needs [`fit`](Self::fit)); implies
    /// [`featurewise_center`](Self::featurewise_center), as in Keras.
    pub fn featurewise_std_normalization(mut self, on: bool) -> Self {
        self.featurewise_std_normalization = on;
        self
    }

    /// Subtract each image's own mean.
    pub fn samplewise_center(mut self, on: bool) -> Self {
        self.samplewise_center = on;
        self
    }

    /// Divide each image by its own std (+1e-6); implies
    /// [`samplewise_center`](Self::samplewise_center), as in Keras.
    pub fn samplewise_std_normalization(mut self, on: bool) -> Self {
        self.samplewise_std_normalization = on;
        self
    }

    /// Learn the per-channel mean/std of `x` `[N, H, W, C]` (after `rescale`), as Keras's `fit`.
    pub fn fit(&mut self, x: &Tensor) -> Result<&mut Self> {
        let (n, h, w, c) = dims4(x, "ImageDataGenerator::fit")?;
        if n == 0 {
            return Err(Error::invalid("ImageDataGenerator::fit", "x has no images"));
        }
        let mut v = x.to_dtype(keel_tensor::DType::F32)?.to_vec::<f32>()?;
        if let Some(s) = self.rescale {
            v.iter_mut().for_each(|p| *p *= s);
        }
        let count = (n * h * w) as f64;
        let mut mean = vec![0f64; c];
        for px in v.chunks_exact(c) {
            for (m, &p) in mean.iter_mut().zip(px) {
                *m += p as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= count);
        let mut var = vec![0f64; c];
        for px in v.chunks_exact(c) {
            for k in 0..c {
                var[k] += (px[k] as f64 - mean[k]).powi(2);
            }
        }
        self.std = Some(var.iter().map(|s| (s / count).sqrt() as f32).collect());
        self.mean = Some(mean.iter().map(|&m| m as f32).collect());
        Ok(self)
    }

    /// Draw the random parameters for an `h x w` image from `rng` (Keras's `get_random_transform`).
    pub fn random_params(&self, h: usize, w: usize, rng: &mut Rng) -> TransformParams {
        let mut p = TransformParams::default();
        if self.rotation_range != 0.0 {
            p.theta = rng.uniform(-self.rotation_range, self.rotation_range);
        }
        if self.height_shift_range.is_active() {
            p.tx = self.height_shift_range.draw(h, rng);
        }
        if self.width_shift_range.is_active() {
            p.ty = self.width_shift_range.draw(w, rng);
        }
        if self.shear_range != 0.0 {
            p.shear = rng.uniform(-self.shear_range, self.shear_range);
        }
        let (lo, hi) = self.zoom_range;
        if !(lo == 1.0 && hi == 1.0) {
            p.zx = rng.uniform(lo, hi);
            p.zy = rng.uniform(lo, hi);
        }
        p.flip_horizontal = rng.next_f64() < 0.5 && self.horizontal_flip;
        p.flip_vertical = rng.next_f64() < 0.5 && self.vertical_flip;
        if self.channel_shift_range != 0.0 {
            p.channel_shift_intensity = Some(rng.uniform(-self.channel_shift_range, self.channel_shift_range));
        }
        if let Some((a, b)) = self.brightness_range {
            p.brightness = Some(rng.uniform(a, b));
        }
        p
    }

    /// Apply `p` to one `h x w x c` image (Keras's `apply_transform`), returning a new image.
    pub fn apply_params(&self, img: &[f32], h: usize, w: usize, c: usize, p: &TransformParams) -> Vec<f32> {
        let mut x = match affine::keras_affine_matrix(p.theta, p.tx, p.ty, p.shear, p.zx, p.zy, h, w) {
            Some(m) => affine::warp(img, h, w, c, &m, self.fill_mode, self.cval),
            None => img.to_vec(),
        };
        if let Some(s) = p.channel_shift_intensity {
            let (lo, hi) = min_max(&x);
            let s = s as f32;
            x.iter_mut().for_each(|v| *v = (*v + s).clamp(lo, hi));
        }
        if p.flip_horizontal {
            for row in x.chunks_exact_mut(w * c) {
                for j in 0..w / 2 {
                    for k in 0..c {
                        row.swap(j * c + k, (w - 1 - j) * c + k);
                    }
                }
            }
        }
        if p.flip_vertical {
            let rl = w * c;
            for i in 0..h / 2 {
                let (top, bottom) = x.split_at_mut((h - 1 - i) * rl);
                top[i * rl..(i + 1) * rl].swap_with_slice(&mut bottom[..rl]);
            }
        }
        if let Some(b) = p.brightness {
            brightness(&mut x, b as f32);
        }
        x
    }

    /// Apply `p` to one image tensor `[H, W, C]` (F32 result).
    pub fn apply_transform(&self, x: &Tensor, p: &TransformParams) -> Result<Tensor> {
        const OP: &str = "ImageDataGenerator::apply_transform";
        let (h, w, c) = dims3(x, OP)?;
        self.validate(OP)?;
        check_finite(
            OP,
            [
                ("theta", p.theta),
                ("tx", p.tx),
                ("ty", p.ty),
                ("shear", p.shear),
                ("zx", p.zx),
                ("zy", p.zy),
                ("channel_shift_intensity", p.channel_shift_intensity.unwrap_or(0.0)),
                ("brightness", p.brightness.unwrap_or(1.0)),
            ],
        )?;
        let v = x.to_dtype(keel_tensor::DType::F32)?.to_vec::<f32>()?;
        Ok(Tensor::from_vec(self.apply_params(&v, h, w, c, p), (h, w, c))?)
    }

    /// A random transform of one image `[H, W, C]` drawn from `seed` (no standardization, as in Keras).
    pub fn random_transform(&self, x: &Tensor, seed: u64) -> Result<Tensor> {
        let (h, w, _) = dims3(x, "ImageDataGenerator::random_transform")?;
        self.validate("ImageDataGenerator::random_transform")?;
        let p = self.random_params(h, w, &mut Rng::new(seed));
        self.apply_transform(x, &p)
    }

    /// Standardize one image in place: rescale, sample-wise, then feature-wise (Keras's order).
    pub fn standardize_image(&self, x: &mut [f32], c: usize) -> Result<()> {
        if let Some(s) = self.rescale {
            x.iter_mut().for_each(|v| *v *= s);
        }
        // std normalization implies centering, as Keras's constructor turns it on
        if self.samplewise_center || self.samplewise_std_normalization {
            let m = (x.iter().map(|&v| v as f64).sum::<f64>() / x.len().max(1) as f64) as f32;
            x.iter_mut().for_each(|v| *v -= m);
        }
        if self.samplewise_std_normalization {
            let n = x.len().max(1) as f64;
            let m = x.iter().map(|&v| v as f64).sum::<f64>() / n;
            let sd = (x.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n).sqrt() as f32;
            x.iter_mut().for_each(|v| *v /= sd + 1e-6);
        }
        let not_fit = |what: &str| {
            Error::invalid(
                "ImageDataGenerator::standardize",
                format!("{what} is on but the generator was not fitted; call fit(&x_train) first"),
            )
        };
        let check_len = |s: &Vec<f32>| -> Result<()> {
            if s.len() != c {
                return Err(Error::invalid(
                    "ImageDataGenerator::standardize",
                    format!("fitted on {} channels but the image has {c}", s.len()),
                ));
            }
            Ok(())
        };
        if self.featurewise_center || self.featurewise_std_normalization {
            let m = self.mean.as_ref().ok_or_else(|| not_fit("featurewise_center"))?;
            check_len(m)?;
            for px in x.chunks_exact_mut(c) {
                px.iter_mut().zip(m).for_each(|(v, m)| *v -= m);
            }
        }
        if self.featurewise_std_normalization {
            let s = self.std.as_ref().ok_or_else(|| not_fit("featurewise_std_normalization"))?;
            check_len(s)?;
            for px in x.chunks_exact_mut(c) {
                px.iter_mut().zip(s).for_each(|(v, s)| *v /= s + 1e-6);
            }
        }
        Ok(())
    }

    /// Standardize a batch `[N, H, W, C]` or one image `[H, W, C]` (F32 result).
    pub fn standardize(&self, x: &Tensor) -> Result<Tensor> {
        let c = *x.dims().last().unwrap_or(&0);
        if !(x.rank() == 3 || x.rank() == 4) || c == 0 {
            return Err(Error::invalid(
                "ImageDataGenerator::standardize",
                format!("expected [N, H, W, C] or [H, W, C], got {:?}", x.dims()),
            ));
        }
        self.validate("ImageDataGenerator::standardize")?;
        let mut v = x.to_dtype(keel_tensor::DType::F32)?.to_vec::<f32>()?;
        let per = if x.rank() == 4 { x.dims()[1..].iter().product::<usize>().max(1) } else { v.len().max(1) };
        for img in v.chunks_mut(per) {
            self.standardize_image(img, c)?;
        }
        Ok(Tensor::from_vec(v, x.dims().to_vec())?)
    }

    /// Random transform + standardize image `j` of a flat NHWC buffer, seeded by `(seed, epoch, j)`.
    pub(crate) fn augment_one(
        &self,
        data: &[f32],
        (h, w, c): (usize, usize, usize),
        j: usize,
        seed: u64,
        epoch: usize,
    ) -> Result<Vec<f32>> {
        let len = h * w * c;
        let img = &data[j * len..(j + 1) * len];
        let mut rng = Rng::new(derive_seed(seed, epoch as u64, j as u64));
        let p = self.random_params(h, w, &mut rng);
        let mut out = self.apply_params(img, h, w, c, &p);
        self.standardize_image(&mut out, c)?;
        Ok(out)
    }

    /// Augment + standardize every image of `x` `[N, H, W, C]` in parallel (rayon).
    ///
    /// Image `j` uses the seed derived from `(seed, epoch, j)`: the result is the
    /// same whatever the thread count, and equals what [`flow`](Self::flow) yields for it.
    pub fn augment_batch(&self, x: &Tensor, seed: u64, epoch: usize) -> Result<Tensor> {
        let (n, h, w, c) = dims4(x, "ImageDataGenerator::augment_batch")?;
        self.validate("ImageDataGenerator::augment_batch")?;
        let data = x.to_dtype(keel_tensor::DType::F32)?.to_vec::<f32>()?;
        let imgs: Vec<Vec<f32>> = (0..n)
            .into_par_iter()
            .map(|j| self.augment_one(&data, (h, w, c), j, seed, epoch))
            .collect::<Result<_>>()?;
        Ok(Tensor::from_vec(imgs.concat(), (n, h, w, c))?)
    }

    /// Keras's `flow(x, y, batch_size)`: an [`ImageFlow`] batch source over NHWC `x`
    /// and targets `y` (shuffled, seed 0 by default; see its builder methods).
    pub fn flow(&self, x: &Tensor, y: &Tensor, batch_size: usize) -> Result<ImageFlow> {
        ImageFlow::new(self.clone(), x, y, batch_size)
    }
}

fn dims3(x: &Tensor, op: &'static str) -> Result<(usize, usize, usize)> {
    match *x.dims() {
        [h, w, c] if h > 0 && w > 0 && c > 0 => Ok((h, w, c)),
        _ => Err(Error::invalid(op, format!("expected one image [height, width, channels], got shape {:?}", x.dims()))),
    }
}

fn min_max(x: &[f32]) -> (f32, f32) {
    x.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)))
}

/// PIL `ImageEnhance.Brightness` as Keras applies it (`scale=False`): images in
/// `[0, 255]` are truncated to 8 bits, multiplied by `b` (f32) and truncated
/// again with clipping; other ranges are first mapped to `[0, 255]` and back.
fn brightness(x: &mut [f32], b: f32) {
    let (lo, hi) = min_max(x);
    let local_scale = lo < 0.0 || hi > 255.0;
    let enhance = |u: f32| -> f32 {
        let t = b * u;
        if t <= 0.0 {
            0.0
        } else if t >= 255.0 {
            255.0
        } else {
            t.trunc()
        }
    };
    if local_scale {
        let range = hi - lo;
        x.iter_mut().for_each(|v| {
            let mut u = *v - lo;
            if range != 0.0 {
                u /= range;
            }
            let u8v = (u * 255.0).trunc().clamp(0.0, 255.0);
            *v = enhance(u8v) / 255.0 * (hi - lo) + lo;
        });
    } else {
        x.iter_mut().for_each(|v| *v = enhance(v.trunc().clamp(0.0, 255.0)));
    }
}
