//! [`RandomGrayscale`], [`Solarization`], [`AutoContrast`], [`RandomSaturation`] and
//! [`RandomHue`]: Keras 3's pixel-wise colour layers on NHWC images, composed of elementwise
//! ops, reductions and `where_cond` (so they run on any device; the HSV round trip is
//! TensorFlow's `rgb_to_hsv`/`hsv_to_rgb` kernels op by op).
//!
//! Followed: Keras 3's `keras/src/layers/preprocessing/image_preprocessing/random_grayscale.py`,
//! `solarization.py`, `auto_contrast.py`, `random_saturation.py`, `random_hue.py` and `base_image_preprocessing_layer.py`
//! (`_transform_value_range`), and `keras/src/backend/tensorflow/image.py`
//! (`rgb_to_grayscale`'s weights, `tf.image.rgb_to_hsv`/`hsv_to_rgb`). Checked against real Keras 3.15 (TensorFlow backend) with
//! fixed per-image draws in `nn/tests/augment_more.rs`.

use crate::layer::{common_builders, layer_common, shape_preserving_layer, with_name, Ctx, Layer};
use crate::layers::augment::{check_image, image_input, per_sample_uniform};
use crate::layers::random_color::Factor;
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::{DType, Tensor};

/// `rgb_to_grayscale`'s weights of red, green and blue (TensorFlow's and Keras's).
const GRAY_WEIGHTS: [f64; 3] = [0.2989, 0.5870, 0.1140];

/// A config error of the layer `class` named `name`.
fn config_error(class: &str, name: &str, msg: String) -> Error {
    Error::config(format!("{class} \"{name}\""), msg)
}

/// Check a `value_range` `[low, high]`: finite, `low < high`.
fn check_value_range((low, high): (f64, f64)) -> std::result::Result<(), String> {
    if low.is_finite() && high.is_finite() && low < high {
        Ok(())
    } else {
        Err(format!("value_range must be [low, high] with finite low < high, got [{low}, {high}]"))
    }
}

/// Keras's `_transform_value_range`: `x` from the range `from` to the range `to`
/// (`(x - from.0) / (from.1 - from.0) * (to.1 - to.0) + to.0`, op by op as Keras), `x` itself
/// when the ranges are equal.
fn rescale(x: &Var, from: (f64, f64), to: (f64, f64)) -> Result<Var> {
    if from == to {
        return Ok(x.clone());
    }
    Ok(x.sub_scalar(from.0)?.div_scalar(from.1 - from.0)?.mul_scalar(to.1 - to.0)?.add_scalar(to.0)?)
}

/// The per-image values `v` as an `[n, 1, 1, 1]` tensor in `x`'s dtype on its device, after
/// checking there is one per image of the `[n, h, w, c]` batch `x`.
fn per_image(x: &Var, v: &[f64], what: &str, layer: &str, name: &str) -> Result<Tensor> {
    if x.rank() != 4 || x.dims()[0] != v.len() {
        return Err(config_error(
            layer,
            name,
            format!(
                "transform_with needs one {what} per image of an [n, h, w, c] batch, got {} for shape {:?}",
                v.len(),
                x.dims()
            ),
        ));
    }
    let t = Tensor::from_vec(v.to_vec(), (v.len(), 1, 1, 1))?.to_dtype(x.dtype())?;
    Ok(t.to_device(&x.device())?)
}

/// Keras 3's `RandomGrayscale` on NHWC images: in training each image is, with probability
/// `factor` (one draw per image), turned to grayscale with `rgb_to_grayscale`'s weights
/// `0.2989 R + 0.5870 G + 0.1140 B`, replicated to its 3 channels; in inference the identity.
/// Images must have 3 channels (RGB) or 1 (left as they are, as Keras). Integer pixels come out
/// as floats.
pub struct RandomGrayscale {
    name: String,
    input_shape: Option<Vec<usize>>,
    factor: f64,
    seed: Option<u64>,
    built: bool,
}

common_builders!(RandomGrayscale);

impl Default for RandomGrayscale {
    /// Keras's default: `factor = 0.5`.
    fn default() -> Self {
        RandomGrayscale::new(0.5)
    }
}

impl RandomGrayscale {
    /// Grayscale each image with probability `factor` in `[0, 1]`.
    pub fn new(factor: f64) -> Self {
        RandomGrayscale { name: String::new(), input_shape: None, factor, seed: None, built: false }
    }

    /// Keras's `seed`: the draws come from the `Ctx`'s rng (seeded by `Fit::seed`), as keel's
    /// other augmentation layers'; like Keras 3.15, the config does not keep it.
    pub fn seed(mut self, seed: Option<u64>) -> Self {
        self.seed = seed;
        self
    }

    /// The seed given to [`RandomGrayscale::seed`].
    pub fn get_seed(&self) -> Option<u64> {
        self.seed
    }

    /// The probability of grayscaling an image.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    fn check_factor(&self) -> Result<()> {
        if (0.0..=1.0).contains(&self.factor) {
            return Ok(());
        }
        Err(config_error("RandomGrayscale", &self.name, format!("factor must be in [0, 1], got {}", self.factor)))
    }

    fn check(&self, input_shape: &[usize]) -> Result<()> {
        self.check_factor()?;
        check_image(input_shape, self)?;
        match input_shape.get(2) {
            Some(1 | 3) => Ok(()),
            c => Err(config_error(
                "RandomGrayscale",
                &self.name,
                format!(
                    "images must have 3 channels (RGB) or 1 (grayscale), got {} (shape {input_shape:?})",
                    c.copied().unwrap_or(0)
                ),
            )),
        }
    }

    /// The batch `x` (`[n, h, w, c]`, c = 1 or 3) with the images where `mask` is nonzero
    /// (`[n, 1, 1, 1]`) grayscaled.
    fn apply(&self, x: &Var, mask: &Tensor) -> Result<Var> {
        let c = x.dims().get(3).copied().unwrap_or(0);
        if c == 1 {
            return Ok(x.clone());
        }
        if c != 3 {
            return Err(config_error(
                "RandomGrayscale",
                &self.name,
                format!("images must have 3 channels (RGB) or 1 (grayscale), got shape {:?}", x.dims()),
            ));
        }
        let w = Tensor::from_vec(GRAY_WEIGHTS.to_vec(), (1, 1, 1, 3))?.to_dtype(x.dtype())?.to_device(&x.device())?;
        let gray = x.mul(&Var::constant(w))?.sum(&[3], true)?;
        Ok(Var::where_cond(mask, &gray, x)?)
    }

    /// The images of `x` (`[n, h, w, c]`) grayscaled where `apply` (one per image) is true,
    /// whatever the mode: Keras's `transform_images` with that mask. For tests and for callers
    /// that draw their own.
    pub fn transform_with(&self, x: &Var, apply: &[bool]) -> Result<Var> {
        let v: Vec<f64> = apply.iter().map(|&a| f64::from(u8::from(a))).collect();
        let mask = per_image(x, &v, "flag", "RandomGrayscale", &self.name)?;
        self.apply(x, &mask)
    }
}

impl Layer for RandomGrayscale {
    layer_common!("RandomGrayscale");
    shape_preserving_layer!();

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        self.check_factor()?;
        let x = image_input(x, ctx, self)?;
        if !ctx.training {
            return Ok(x);
        }
        // one draw per image, as Keras: grayscale where u < factor
        let u = per_sample_uniform(&x, 0.0, 1.0, DType::F32, &self.name, ctx)?;
        let mask = u.lt(&u.scalar_like(self.factor)?)?;
        self.apply(&x, &mask)
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "factor": self.factor }))
    }
}

/// Solarization's factor read as Keras's `_set_factor`: `f` is `[0, f]`, a pair is sorted; every
/// number in `[0, 1]`.
fn solarization_range(factor: Factor, what: &str) -> std::result::Result<(f64, f64), String> {
    let (lower, upper) = match factor {
        Factor::Single(f) => (0.0, f),
        Factor::Range(a, b) => (a.min(b), a.max(b)),
    };
    let ok = |v: f64| (0.0..=1.0).contains(&v);
    let all_ok = match factor {
        Factor::Single(f) => ok(f),
        Factor::Range(a, b) => ok(a) && ok(b),
    };
    if !all_ok {
        return Err(format!("{what} must be a number or a pair of numbers in [0, 1], got {factor:?}"));
    }
    Ok((lower, upper))
}

/// Keras 3's `Solarization` on NHWC images: in training the pixels are mapped from the value
/// range to `[0, 255]`, each image gets an addition `a` and a threshold `t` (one draw each per
/// image), each pixel becomes `p = clip(x + a, 0, 255)`, then `p` where `p < t`, else `255 - p`,
/// and the result is mapped back to the value range; in inference the identity.
///
/// A factor is `f` (`[0, f]`) or `(lower, upper)` (sorted), in `[0, 1]`; as Keras 3.15, `a` is
/// drawn from `[lower, upper * 255]` (only the upper bound is scaled to pixels), and so is `t`
/// from the threshold factor. Keras's defaults are `0.0` for both (no addition, threshold 0:
/// every pixel inverted). Integer pixels come out as floats.
pub struct Solarization {
    name: String,
    input_shape: Option<Vec<usize>>,
    addition_factor: Factor,
    threshold_factor: Factor,
    value_range: (f64, f64),
    seed: Option<u64>,
    built: bool,
}

common_builders!(Solarization);

impl Default for Solarization {
    /// Keras's defaults: both factors `0.0` (every pixel inverted), value range `[0, 255]`.
    fn default() -> Self {
        Solarization::new(0.0, 0.0)
    }
}

impl Solarization {
    /// Additions from `addition_factor` and thresholds from `threshold_factor` (see the type).
    pub fn new(addition_factor: impl Into<Factor>, threshold_factor: impl Into<Factor>) -> Self {
        Solarization {
            name: String::new(),
            input_shape: None,
            addition_factor: addition_factor.into(),
            threshold_factor: threshold_factor.into(),
            value_range: (0.0, 255.0),
            seed: None,
            built: false,
        }
    }

    /// The range `[low, high]` of the pixel values (default `[0, 255]`).
    pub fn value_range(mut self, low: f64, high: f64) -> Self {
        self.value_range = (low, high);
        self
    }

    /// Keras's `seed`: kept in the config; the draws come from the `Ctx`'s rng.
    pub fn seed(mut self, seed: Option<u64>) -> Self {
        self.seed = seed;
        self
    }

    /// The addition and threshold factors as given.
    pub fn factors(&self) -> (Factor, Factor) {
        (self.addition_factor, self.threshold_factor)
    }

    /// The draw ranges (in pixels of `[0, 255]`) of the additions and the thresholds.
    fn bounds(&self) -> Result<((f64, f64), (f64, f64))> {
        let err = |m: String| config_error("Solarization", &self.name, m);
        check_value_range(self.value_range).map_err(err)?;
        let (al, au) = solarization_range(self.addition_factor, "addition_factor").map_err(err)?;
        let (tl, tu) = solarization_range(self.threshold_factor, "threshold_factor").map_err(err)?;
        Ok(((al, au * 255.0), (tl, tu * 255.0)))
    }

    fn check(&self, input_shape: &[usize]) -> Result<()> {
        self.bounds()?;
        check_image(input_shape, self)
    }

    /// Solarize `x` with the per-image additions and thresholds (`[n, 1, 1, 1]`, in `[0, 255]` pixels).
    fn apply(&self, x: &Var, additions: &Tensor, thresholds: &Tensor) -> Result<Var> {
        let full = (0.0, 255.0);
        let p = rescale(x, self.value_range, full)?.add(&Var::constant(additions.clone()))?.clamp(0.0, 255.0)?;
        let below = p.value().lt(thresholds)?;
        let y = Var::where_cond(&below, &p, &p.scalar_binary(255.0, keel_tensor::BinaryOp::Sub)?)?;
        rescale(&y, full, self.value_range)
    }

    /// Solarize `x` (`[n, h, w, c]`) with the given per-image additions and thresholds (in
    /// `[0, 255]` pixels, one each per image), whatever the mode: Keras's `transform_images`
    /// with those `additions` and `thresholds`. For tests and for callers that draw their own.
    pub fn transform_with(&self, x: &Var, additions: &[f64], thresholds: &[f64]) -> Result<Var> {
        self.bounds()?;
        let a = per_image(x, additions, "addition", "Solarization", &self.name)?;
        let t = per_image(x, thresholds, "threshold", "Solarization", &self.name)?;
        self.apply(x, &a, &t)
    }
}

impl Layer for Solarization {
    layer_common!("Solarization");
    shape_preserving_layer!();

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let ((al, au), (tl, tu)) = self.bounds()?;
        let x = image_input(x, ctx, self)?;
        if !ctx.training {
            return Ok(x);
        }
        // Keras draws the additions, then the thresholds, one each per image (a pair
        // (lower, upper) with lower > upper * 255 draws from [upper * 255, lower], the same law)
        let a = per_sample_uniform(&x, al.min(au), al.max(au), x.dtype(), &self.name, ctx)?;
        let t = per_sample_uniform(&x, tl.min(tu), tl.max(tu), x.dtype(), &self.name, ctx)?;
        self.apply(&x, &a, &t)
    }

    fn config(&self) -> serde_json::Value {
        // Keras writes each factor as its range [lower, upper]
        let pair = |f: Factor, what: &str| match solarization_range(f, what) {
            Ok((l, u)) => serde_json::json!([l, u]),
            Err(_) => serde_json::json!(f),
        };
        let (low, high) = self.value_range;
        with_name(
            &self.name,
            serde_json::json!({
                "value_range": [low, high],
                "addition_factor": pair(self.addition_factor, "addition_factor"),
                "threshold_factor": pair(self.threshold_factor, "threshold_factor"),
                "seed": self.seed,
            }),
        )
    }
}

/// Keras 3's `AutoContrast` on NHWC images: each image's channels are stretched so that their
/// minimum maps to the value range's low end and their maximum to its high end (per image and
/// channel, over height and width), then clipped to the value range; a constant channel is left
/// as it is. Deterministic, and applied in inference as in training, as Keras. Integer pixels
/// come out as floats. The output is differentiable in the input (through the min and max too).
pub struct AutoContrast {
    name: String,
    input_shape: Option<Vec<usize>>,
    value_range: (f64, f64),
    built: bool,
}

common_builders!(AutoContrast);

impl Default for AutoContrast {
    /// Keras's default value range `[0, 255]`.
    fn default() -> Self {
        AutoContrast::new()
    }
}

impl AutoContrast {
    /// Auto-contrast pixels in `[0, 255]` (see [`AutoContrast::value_range`]).
    pub fn new() -> Self {
        AutoContrast { name: String::new(), input_shape: None, value_range: (0.0, 255.0), built: false }
    }

    /// The range `[low, high]` of the pixel values (default `[0, 255]`).
    pub fn value_range(mut self, low: f64, high: f64) -> Self {
        self.value_range = (low, high);
        self
    }

    fn check_range(&self) -> Result<()> {
        check_value_range(self.value_range).map_err(|m| config_error("AutoContrast", &self.name, m))
    }

    fn check(&self, input_shape: &[usize]) -> Result<()> {
        self.check_range()?;
        check_image(input_shape, self)
    }
}

impl Layer for AutoContrast {
    layer_common!("AutoContrast");
    shape_preserving_layer!();

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        self.check_range()?;
        let x = image_input(x, ctx, self)?;
        let full = (0.0, 255.0);
        let p = rescale(&x, self.value_range, full)?;
        let low = p.min(&[1, 2], true)?;
        let high = p.max(&[1, 2], true)?;
        // Keras: p * (255 / (high - low)) - low * scale, NaN (a constant channel) -> the input;
        // here the constant channels divide by 1 and are then replaced, so no NaN is made
        let span = high.sub(&low)?;
        let flat = span.value().le(&span.value().scalar_like(0.0)?)?;
        let safe = Var::where_cond(&flat, &Var::constant(span.value().ones_like()?), &span)?;
        let scale = safe.scalar_binary(255.0, keel_tensor::BinaryOp::Div)?;
        let offset = low.neg()?.mul(&scale)?;
        let y = p.mul(&scale)?.add(&offset)?.clamp(0.0, 255.0)?;
        let y = rescale(&y, full, self.value_range)?;
        Ok(Var::where_cond(&flat, &x, &y)?)
    }

    fn config(&self) -> serde_json::Value {
        let (low, high) = self.value_range;
        with_name(&self.name, serde_json::json!({ "value_range": [low, high] }))
    }
}

/// TensorFlow's `rgb_to_hsv` (`tf.image.rgb_to_hsv`, Keras's on its TensorFlow backend) of the
/// RGB batch `x` (`[n, h, w, 3]`), op by op as its kernel: `(h, s, v)`, each `[n, h, w, 1]`,
/// hue in `[0, 1)`. Safe denominators keep black and gray pixels free of NaN, in the values
/// and in the gradient.
fn rgb_to_hsv(x: &Var) -> Result<(Var, Var, Var)> {
    let (r, g, b) = (x.narrow(3, 0, 1)?, x.narrow(3, 1, 1)?, x.narrow(3, 2, 1)?);
    let v = x.max(&[3], true)?;
    let range = v.sub(&x.min(&[3], true)?)?;
    let zero = Var::constant(v.value().zeros_like()?);
    let one = Var::constant(v.value().ones_like()?);
    let v_pos = v.value().gt(&v.value().scalar_like(0.0)?)?;
    let s = Var::where_cond(&v_pos, &range.div(&Var::where_cond(&v_pos, &v, &one)?)?, &zero)?;
    let r_pos = range.value().gt(&range.value().scalar_like(0.0)?)?;
    let norm =
        Var::where_cond(&r_pos, &range, &one)?.scalar_binary(1.0, keel_tensor::BinaryOp::Div)?.mul_scalar(1.0 / 6.0)?;
    let hr = norm.mul(&g.sub(&b)?)?;
    let hg = norm.mul(&b.sub(&r)?)?.add_scalar(2.0 / 6.0)?;
    let hb = norm.mul(&r.sub(&g)?)?.add_scalar(4.0 / 6.0)?;
    let r_max = r.value().eq(v.value())?;
    let g_max = g.value().eq(v.value())?;
    let h = Var::where_cond(&r_max, &hr, &Var::where_cond(&g_max, &hg, &hb)?)?;
    let h = Var::where_cond(&r_pos, &h, &zero)?;
    let neg = h.value().lt(&h.value().scalar_like(0.0)?)?;
    let h = Var::where_cond(&neg, &h.add_scalar(1.0)?, &h)?;
    Ok((h, s, v))
}

/// TensorFlow's `hsv_to_rgb` of `(h, s, v)` (each `[n, h, w, 1]`), op by op as its kernel: the
/// `[n, h, w, 3]` RGB batch.
fn hsv_to_rgb(h: &Var, s: &Var, v: &Var) -> Result<Var> {
    let dh = h.mul_scalar(6.0)?;
    let dr = dh.sub_scalar(3.0)?.abs()?.sub_scalar(1.0)?.clamp(0.0, 1.0)?;
    let dg = dh.sub_scalar(2.0)?.abs()?.neg()?.add_scalar(2.0)?.clamp(0.0, 1.0)?;
    let db = dh.sub_scalar(4.0)?.abs()?.neg()?.add_scalar(2.0)?.clamp(0.0, 1.0)?;
    let one_s = s.neg()?.add_scalar(1.0)?;
    let channel = |d: &Var| -> Result<Var> { Ok(one_s.add(&s.mul(d)?)?.mul(v)?) };
    Ok(Var::concat(&[&channel(&dr)?, &channel(&dg)?, &channel(&db)?], 3)?)
}

/// Check that the images of `x` have 3 channels (RGB), for the HSV layers.
fn check_rgb(input_shape: &[usize], class: &str, name: &str) -> Result<()> {
    match input_shape.get(2) {
        Some(3) => Ok(()),
        c => Err(config_error(
            class,
            name,
            format!("images must have 3 channels (RGB), got {} (shape {input_shape:?})", c.copied().unwrap_or(0)),
        )),
    }
}

/// Keras's base `_set_factor` with the bounds `[lo, hi]`: `f` is `[max(-|f|, lo), |f|]` (`f`
/// itself in `[lo, hi]`), a pair is sorted and refused only when its first number is above `hi`
/// or its second below `lo`.
fn base_factor(factor: Factor, lo: f64, hi: f64) -> std::result::Result<(f64, f64), String> {
    match factor {
        Factor::Single(f) if f.is_finite() && (lo..=hi).contains(&f) => Ok(((-f.abs()).max(lo), f.abs())),
        Factor::Range(a, b) if a.is_finite() && b.is_finite() && !(a > hi || b < lo) => Ok((a.min(b), a.max(b))),
        _ => Err(format!(
            "factor must be a number in [{lo}, {hi}] or a pair [lower, upper] with lower <= {hi} and upper >= {lo}, \
             got {factor:?}"
        )),
    }
}

/// The definition the HSV layers ([`RandomSaturation`], [`RandomHue`]) share: the struct (a
/// factor, a value range, Keras's `seed`), `new`, the builders, the checked factor range
/// (`factor_range`: the factor's allowed numbers), the input check and the config.
macro_rules! hsv_layer {
    ($(#[$doc:meta])* $t:ident, $class:literal, $factor_range:expr, $new_doc:literal, $range_doc:literal) => {
        $(#[$doc])*
        pub struct $t {
            name: String,
            input_shape: Option<Vec<usize>>,
            factor: Factor,
            value_range: (f64, f64),
            seed: Option<u64>,
            built: bool,
        }

        common_builders!($t);

        impl $t {
            #[doc = $new_doc]
            pub fn new(factor: impl Into<Factor>) -> Self {
                $t {
                    name: String::new(),
                    input_shape: None,
                    factor: factor.into(),
                    value_range: (0.0, 255.0),
                    seed: None,
                    built: false,
                }
            }

            #[doc = $range_doc]
            pub fn value_range(mut self, low: f64, high: f64) -> Self {
                self.value_range = (low, high);
                self
            }

            /// Keras's `seed`: kept in the config; the draws come from the `Ctx`'s rng.
            pub fn seed(mut self, seed: Option<u64>) -> Self {
                self.seed = seed;
                self
            }

            /// The factor as given.
            pub fn factor(&self) -> Factor {
                self.factor
            }

            fn bounds(&self) -> Result<(f64, f64)> {
                let err = |m: String| config_error($class, &self.name, m);
                check_value_range(self.value_range).map_err(err)?;
                let (lo, hi) = $factor_range;
                base_factor(self.factor, lo, hi).map_err(err)
            }

            fn check(&self, input_shape: &[usize]) -> Result<()> {
                self.bounds()?;
                check_image(input_shape, self)?;
                check_rgb(input_shape, $class, &self.name)
            }

            /// Keras's config: the factor as the range it draws from, the value range, the seed.
            fn hsv_config(&self) -> serde_json::Value {
                let (low, high) = self.value_range;
                let (lo, hi) = $factor_range;
                let factor = match base_factor(self.factor, lo, hi) {
                    Ok((l, u)) => serde_json::json!([l, u]),
                    Err(_) => serde_json::json!(self.factor),
                };
                with_name(&self.name, serde_json::json!({ "factor": factor, "value_range": [low, high], "seed": self.seed }))
            }
        }
    };
}

hsv_layer!(
    /// Keras 3's `RandomSaturation` on NHWC RGB images: in training each image gets `u` drawn
    /// uniformly from the factor's range and a saturation multiplier `m = u / (1 - u + 1e-7)` (one per
    /// image: `u = 0.5` keeps the saturation, `u = 0` turns gray, `u -> 1` saturates fully); the
    /// pixels go through TensorFlow's `rgb_to_hsv`, the saturation becomes
    /// `clip(s * m, value_range)`, and back through `hsv_to_rgb`; in inference the identity.
    ///
    /// As Keras 3.15: the factor is a number `f` in `[-1, 1]` (`[-|f|, |f|]`: a negative `u` clips
    /// the saturation to the value range's low end) or a sorted pair (refused only when its first
    /// number is above 1 or its second below -1); the HSV round trip runs on the pixels as they are
    /// (not rescaled to `[0, 1]`), and the saturation is clipped to the value range (so, with the
    /// default `[0, 255]`, only from below). Integer pixels come out as floats.
    RandomSaturation,
    "RandomSaturation",
    (-1.0, 1.0),
    "Saturation draws from `factor` (see the type).",
    "The range `[low, high]` the saturation is clipped to (default `[0, 255]`, as Keras)."
);

impl RandomSaturation {
    /// `x` with each image's saturation multiplied by its `m` (`[n, 1, 1, 1]`) and clipped.
    fn apply(&self, x: &Var, m: &Tensor) -> Result<Var> {
        check_rgb(&x.dims()[1..], "RandomSaturation", &self.name)?;
        let (h, s, v) = rgb_to_hsv(x)?;
        let s = s.mul(&Var::constant(m.clone()))?.clamp(self.value_range.0, self.value_range.1)?;
        hsv_to_rgb(&h, &s, &v)
    }

    /// `x` (`[n, h, w, 3]`) with each image's saturation multiplied by the given `m` (one per
    /// image, after Keras's `u / (1 - u + 1e-7)`), whatever the mode: Keras's `transform_images`
    /// with that `factor`. For tests and for callers that draw their own.
    pub fn transform_with(&self, x: &Var, multipliers: &[f64]) -> Result<Var> {
        self.bounds()?;
        let m = per_image(x, multipliers, "multiplier", "RandomSaturation", &self.name)?;
        self.apply(x, &m)
    }
}

impl Layer for RandomSaturation {
    layer_common!("RandomSaturation");
    shape_preserving_layer!();

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let (lo, hi) = self.bounds()?;
        let x = image_input(x, ctx, self)?;
        if !ctx.training {
            return Ok(x);
        }
        // Keras: u / (1 - u + epsilon) in float32
        let u = per_sample_uniform(&x, lo, hi, DType::F32, &self.name, ctx)?;
        let m = u.div(&u.scalar_like(1.0)?.sub(&u)?.add(&u.scalar_like(1e-7)?)?)?.to_dtype(x.dtype())?;
        self.apply(&x, &m)
    }

    fn config(&self) -> serde_json::Value {
        self.hsv_config()
    }
}

hsv_layer!(
    /// Keras 3's `RandomHue` on NHWC RGB images: in training the pixels are mapped from the value
    /// range to `[0, 1]` and through TensorFlow's `rgb_to_hsv`; each image's hue is shifted by
    /// `±u / 2` (`u` drawn uniformly from the factor's range, the sign `-` with probability 0.5, one
    /// draw each per image) and wrapped into `[0, 1]`; then `hsv_to_rgb`, clipped to `[0, 1]` and
    /// mapped back to the value range. In inference the identity. The factor is `f` in `[0, 1]`
    /// (`[0, f]`) or a sorted pair (refused only when its first number is above 1 or its second
    /// below 0), as Keras 3.15. Integer pixels come out as floats.
    RandomHue,
    "RandomHue",
    (0.0, 1.0),
    "Hue shifts from `factor` (see the type).",
    "The range `[low, high]` of the pixel values (default `[0, 255]`)."
);

impl RandomHue {
    /// `x` with each image's hue shifted by its `delta` (`[n, 1, 1, 1]`, in turns).
    fn apply(&self, x: &Var, delta: &Tensor) -> Result<Var> {
        check_rgb(&x.dims()[1..], "RandomHue", &self.name)?;
        let unit = (0.0, 1.0);
        let (h, s, v) = rgb_to_hsv(&rescale(x, self.value_range, unit)?)?;
        let h = h.add(&Var::constant(delta.clone()))?;
        let over = h.value().gt(&h.value().scalar_like(1.0)?)?;
        let h = Var::where_cond(&over, &h.sub_scalar(1.0)?, &h)?;
        let under = h.value().lt(&h.value().scalar_like(0.0)?)?;
        let h = Var::where_cond(&under, &h.add_scalar(1.0)?, &h)?;
        let y = hsv_to_rgb(&h, &s, &v)?.clamp(0.0, 1.0)?;
        rescale(&y, unit, self.value_range)
    }

    /// `x` (`[n, h, w, 3]`) with each image's hue shifted by the given `delta` (one per image, in
    /// turns, sign included: Keras's `±u / 2`), whatever the mode: Keras's `transform_images`
    /// with that `factor`. For tests and for callers that draw their own.
    pub fn transform_with(&self, x: &Var, deltas: &[f64]) -> Result<Var> {
        self.bounds()?;
        let d = per_image(x, deltas, "delta", "RandomHue", &self.name)?;
        self.apply(x, &d)
    }
}

impl Layer for RandomHue {
    layer_common!("RandomHue");
    shape_preserving_layer!();

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let (lo, hi) = self.bounds()?;
        let x = image_input(x, ctx, self)?;
        if !ctx.training {
            return Ok(x);
        }
        // Keras draws the signs (-1 where u > 0.5), then the factors; delta = sign * u * 0.5
        let s = per_sample_uniform(&x, 0.0, 1.0, DType::F32, &self.name, ctx)?;
        let sign = Tensor::where_cond(&s.gt(&s.scalar_like(0.5)?)?, &s.scalar_like(-1.0)?, &s.scalar_like(1.0)?)?;
        let u = per_sample_uniform(&x, lo, hi, DType::F32, &self.name, ctx)?;
        let delta = sign.mul(&u)?.mul(&u.scalar_like(0.5)?)?.to_dtype(x.dtype())?;
        self.apply(&x, &delta)
    }

    fn config(&self) -> serde_json::Value {
        self.hsv_config()
    }
}
