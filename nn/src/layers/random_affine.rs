//! [`RandomRotation`], [`RandomZoom`], [`RandomTranslation`] and [`RandomShear`]: per-image
//! random affine transforms of NHWC images during training, sharing one sampling definition
//! ([`Tensor::affine_transform`](keel_tensor::Tensor::affine_transform), TensorFlow/Keras's
//! projective convention and fill modes).
//!
//! Followed: Keras 3's `keras/src/layers/preprocessing/image_preprocessing/random_rotation.py`,
//! `random_zoom.py`, `random_translation.py`, `random_shear.py` and
//! `base_image_preprocessing_layer.py` (the factor ranges, the matrices built around the image
//! centre, the shear's about the corner, identity in inference) and
//! `keras/src/backend/tensorflow/image.py` (`affine_transform` = TensorFlow's
//! `ImageProjectiveTransformV3`). Checked against real Keras 3.15 (TensorFlow backend) with
//! fixed factors in `train/tests/keras_conv_affine.rs` (RandomShear: with fixed per-image factors
//! in `nn/tests/augment_more.rs`). The matrices are computed in f64 and
//! rounded once to the images' f32: Keras builds them in float32, so where its rounding
//! (`cos(π/2) = -4.4e-8`) moves a sample across an image edge, TensorFlow's `wrap` seam
//! reads the opposite edge in Keras and not here.

use crate::layer::{common_builders, layer_common, shape_preserving_layer, with_name, Ctx, Layer};
use crate::layers::augment::{check_image, image_input};
use crate::layers::random_color::Factor;
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, FillMode, ImageInterpolation, Tensor};

/// The sampling options the three layers share (Keras's keyword arguments).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sampling {
    fill_mode: FillMode,
    interpolation: ImageInterpolation,
    seed: Option<u64>,
    fill_value: f64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            fill_mode: FillMode::Reflect,
            interpolation: ImageInterpolation::Bilinear,
            seed: None,
            fill_value: 0.0,
        }
    }
}

impl Sampling {
    /// The options as Keras writes them in a config.
    fn config(&self) -> serde_json::Value {
        serde_json::json!({
            "fill_mode": self.fill_mode.name(),
            "interpolation": self.interpolation.name(),
            "seed": self.seed,
            "fill_value": self.fill_value,
        })
    }

    /// `x` (`[n, h, w, c]`) resampled through the `n * 8` transform values `rows`.
    fn apply(&self, x: &Var, rows: Vec<f64>) -> Result<Var> {
        let n = x.dims()[0];
        let t = transforms_tensor(rows, n, x.dtype(), &x.device())?;
        Ok(x.affine_transform(&t, self.interpolation, self.fill_mode, self.fill_value)?)
    }
}

/// Which factors a layer accepts: each of Keras 3's four layers checks its own way.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Bounds {
    /// `RandomRotation` (`BaseImagePreprocessingLayer._set_factor`): one number in `[-1, 1]`;
    /// a pair is refused only when its first number is above 1 or its second below -1 (so
    /// `(0.5, 1.5)`, up to one and a half turns, is accepted, as in Keras).
    Rotation,
    /// `RandomZoom`: every number in `(-1, 1]` (a zoom of `1 + (-1) = 0` is refused).
    Zoom,
    /// `RandomTranslation`: every number in `[-1, 1]`.
    Translation,
    /// `RandomShear`: one number in `[0, 1]`; a pair's numbers in `[-1, 1]` (Keras's
    /// constructor wants them in `[0, 1]`, but its config writes `f` as `[-f, f]`: keel loads that).
    Shear,
}

/// A factor read as Keras 3's `_set_factor` (rotation, zoom, translation, shear): one number `f` is
/// `[-|f|, |f|]`, a pair is sorted; `bounds` says which numbers are accepted (finite ones only).
fn symmetric_range(factor: Factor, what: &str, bounds: Bounds) -> std::result::Result<(f64, f64), String> {
    let one = |v: f64| match bounds {
        Bounds::Zoom => v > -1.0 && v <= 1.0,
        Bounds::Rotation | Bounds::Translation | Bounds::Shear => (-1.0..=1.0).contains(&v),
    };
    let ok = match factor {
        Factor::Single(f) if bounds == Bounds::Shear => (0.0..=1.0).contains(&f),
        Factor::Single(f) => one(f),
        Factor::Range(a, b) if !(a.is_finite() && b.is_finite()) => false,
        Factor::Range(a, b) if bounds == Bounds::Rotation => !(a > 1.0 || b < -1.0),
        Factor::Range(a, b) => one(a) && one(b),
    };
    if !ok {
        let range = match bounds {
            Bounds::Rotation => "a number in [-1, 1] or a pair [lower, upper] with lower <= 1 and upper >= -1",
            Bounds::Zoom => "a number or a pair of numbers in (-1, 1]",
            Bounds::Translation => "a number or a pair of numbers in [-1, 1]",
            Bounds::Shear => "a number in [0, 1] or a pair of numbers in [-1, 1]",
        };
        return Err(format!("{what} must be {range}, got {factor:?}"));
    }
    Ok(match factor {
        Factor::Single(f) => (-f.abs(), f.abs()),
        Factor::Range(a, b) => (a.min(b), a.max(b)),
    })
}

/// Keras's rotation matrix about the image centre for `angle` radians (the output pixel
/// `(x, y)` reads the input at the point rotated by `angle` about `((w - 1) / 2, (h - 1) / 2)`).
pub(crate) fn rotation_matrix(angle: f64, h: usize, w: usize) -> [f64; 8] {
    let (sin, cos) = angle.sin_cos();
    let (h1, w1) = (h as f64 - 1.0, w as f64 - 1.0);
    let x_offset = (w1 - (cos * w1 - sin * h1)) / 2.0;
    let y_offset = (h1 - (sin * w1 + cos * h1)) / 2.0;
    [cos, -sin, x_offset, sin, cos, y_offset, 0.0, 0.0]
}

/// Keras's zoom matrix: zoom `zx` (width) and `zy` (height) about the image centre; a zoom
/// above 1 samples a larger area (zooms out).
pub(crate) fn zoom_matrix(zx: f64, zy: f64, h: usize, w: usize) -> [f64; 8] {
    let x_offset = (w as f64 - 1.0) / 2.0 * (1.0 - zx);
    let y_offset = (h as f64 - 1.0) / 2.0 * (1.0 - zy);
    [zx, 0.0, x_offset, 0.0, zy, y_offset, 0.0, 0.0]
}

/// Keras's translation matrix: the image moves `dx` pixels right and `dy` down.
pub(crate) fn translation_matrix(dx: f64, dy: f64) -> [f64; 8] {
    [1.0, 0.0, -dx, 0.0, 1.0, -dy, 0.0, 0.0]
}

/// Keras's shear matrix (not about the centre): the output pixel `(x, y)` reads the input at
/// `(x + sx * y, sy * x + y)`, i.e. `[1, sx, 0, sy, 1, 0, 0, 0]`.
pub(crate) fn shear_matrix(sx: f64, sy: f64) -> [f64; 8] {
    [1.0, sx, 0.0, sy, 1.0, 0.0, 0.0, 0.0]
}

/// The `[n, 8]` transforms tensor for images of `dtype` on `device` (F64 for F64 images, else F32).
fn transforms_tensor(rows: Vec<f64>, n: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let t = if dtype == DType::F64 {
        Tensor::from_vec(rows, (n, 8))?
    } else {
        Tensor::from_vec(rows.into_iter().map(|v| v as f32).collect::<Vec<f32>>(), (n, 8))?
    };
    Ok(t.to_device(device)?)
}

/// Define one of the layers: the struct's common parts, the shared builders, and the
/// `Layer` impl. The layer type provides `bounds(&self) -> Result<..>` (validated ranges),
/// `is_identity(&self)`, `draw(&self, rng, n, h, w) -> Result<Vec<f64>>` (the `n * 8` transform
/// values) and `factor_config(&self)` (the config's factor keys).
macro_rules! affine_layer {
    ($name:ident, $class:literal) => {
        common_builders!($name);

        impl $name {
            /// How points outside the image are filled: Keras's `fill_mode` (default `Reflect`).
            pub fn fill_mode(mut self, mode: FillMode) -> Self {
                self.sampling.fill_mode = mode;
                self
            }

            /// How samples between pixels are read: Keras's `interpolation` (default `Bilinear`).
            pub fn interpolation(mut self, interpolation: ImageInterpolation) -> Self {
                self.sampling.interpolation = interpolation;
                self
            }

            /// Keras's `seed`: kept in the config; the draws come from the `Ctx`'s rng (seeded
            /// by `Fit::seed`), as keel's other augmentation layers'.
            pub fn seed(mut self, seed: Option<u64>) -> Self {
                self.sampling.seed = seed;
                self
            }

            /// The value of points outside the image with `FillMode::Constant` (default 0).
            pub fn fill_value(mut self, value: f64) -> Self {
                self.sampling.fill_value = value;
                self
            }

            /// The fill mode.
            pub fn get_fill_mode(&self) -> FillMode {
                self.sampling.fill_mode
            }

            /// The interpolation.
            pub fn get_interpolation(&self) -> ImageInterpolation {
                self.sampling.interpolation
            }

            fn check(&self, input_shape: &[usize]) -> Result<()> {
                self.bounds()?;
                check_image(input_shape, self)
            }

            /// A config error naming the layer.
            fn config_error(&self, msg: String) -> Error {
                Error::config(format!("{} \"{}\"", $class, self.name), msg)
            }
        }

        impl Layer for $name {
            layer_common!($class);
            shape_preserving_layer!();

            fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
                self.bounds()?;
                let x = image_input(x, ctx, self)?;
                if !ctx.training || self.is_identity() {
                    return Ok(x);
                }
                let dims = x.dims().to_vec();
                let (n, h, w) = (dims[0], dims[1], dims[2]);
                // one seed from the Ctx's rng per call, then the per-image draws on the host
                let mut rng = Rng::new(ctx.rng_for(&self.name)?.fork_seed());
                let rows = self.draw(&mut rng, n, h, w)?;
                self.sampling.apply(&x, rows)
            }

            fn config(&self) -> serde_json::Value {
                let mut cfg = self.factor_config();
                if let (Some(c), serde_json::Value::Object(s)) = (cfg.as_object_mut(), self.sampling.config()) {
                    c.extend(s);
                }
                with_name(&self.name, cfg)
            }
        }
    };
}

/// Keras 3's `RandomRotation` on NHWC images: in training each image is rotated about its
/// centre by an angle drawn uniformly from `[lower, upper] * 2π` (positive: counter-clockwise
/// as displayed), resampled with the fill mode and interpolation; in inference the identity.
/// `factor` is `f` in `[-1, 1]` (`[-|f|, |f|]`) or `(lower, upper)` (sorted; refused, as in
/// Keras, only when `lower > 1` or `upper < -1`). Integer pixels
/// come out as floats.
pub struct RandomRotation {
    name: String,
    input_shape: Option<Vec<usize>>,
    factor: Factor,
    sampling: Sampling,
    built: bool,
}

impl RandomRotation {
    /// Rotations by `factor` of a full turn (`0.1`: up to ±36°).
    pub fn new(factor: impl Into<Factor>) -> Self {
        RandomRotation {
            name: String::new(),
            input_shape: None,
            factor: factor.into(),
            sampling: Sampling::default(),
            built: false,
        }
    }

    /// The factor as given.
    pub fn factor(&self) -> Factor {
        self.factor
    }

    fn bounds(&self) -> Result<(f64, f64)> {
        symmetric_range(self.factor, "factor", Bounds::Rotation).map_err(|m| self.config_error(m))
    }

    fn is_identity(&self) -> bool {
        self.bounds().is_ok_and(|b| b == (0.0, 0.0))
    }

    fn draw(&self, rng: &mut Rng, n: usize, h: usize, w: usize) -> Result<Vec<f64>> {
        let (lo, hi) = self.bounds()?;
        let tau = 2.0 * std::f64::consts::PI;
        Ok((0..n).flat_map(|_| rotation_matrix(rng.uniform(lo * tau, hi * tau), h, w)).collect())
    }

    fn factor_config(&self) -> serde_json::Value {
        serde_json::json!({ "factor": self.factor })
    }
}

affine_layer!(RandomRotation, "RandomRotation");

/// Keras 3's `RandomZoom` on NHWC images: in training each image is zoomed about its centre by
/// `1 + u`, `u` drawn uniformly from the height factor's range (and, separately, from the width
/// factor's when given; else the height's zoom keeps the aspect ratio). A positive factor zooms
/// out (samples a larger area), a negative one zooms in. A factor is `f` (`[-|f|, |f|]`) or
/// `(lower, upper)`, each in `(-1, 1]` (as Keras: no zoom of 0). In inference the identity; integer pixels come out as
/// floats.
pub struct RandomZoom {
    name: String,
    input_shape: Option<Vec<usize>>,
    height_factor: Factor,
    width_factor: Option<Factor>,
    sampling: Sampling,
    built: bool,
}

impl RandomZoom {
    /// Zooms by `1 + u`, `u` from `height_factor` (both axes; see [`RandomZoom::width_factor`]).
    pub fn new(height_factor: impl Into<Factor>) -> Self {
        RandomZoom {
            name: String::new(),
            input_shape: None,
            height_factor: height_factor.into(),
            width_factor: None,
            sampling: Sampling::default(),
            built: false,
        }
    }

    /// Draw the width's zoom from its own factor (Keras's `width_factor`; `None` keeps the
    /// aspect ratio, the default).
    pub fn width_factor(mut self, factor: Option<Factor>) -> Self {
        self.width_factor = factor;
        self
    }

    /// The height factor as given.
    pub fn height_factor(&self) -> Factor {
        self.height_factor
    }

    /// The ranges of `u` for the height and, when given, the width.
    fn bounds(&self) -> Result<((f64, f64), Option<(f64, f64)>)> {
        let h = symmetric_range(self.height_factor, "height_factor", Bounds::Zoom).map_err(|m| self.config_error(m))?;
        let w = match self.width_factor {
            Some(f) => Some(symmetric_range(f, "width_factor", Bounds::Zoom).map_err(|m| self.config_error(m))?),
            None => None,
        };
        Ok((h, w))
    }

    fn is_identity(&self) -> bool {
        self.bounds().is_ok_and(|(h, w)| h == (0.0, 0.0) && w.is_none_or(|w| w == (0.0, 0.0)))
    }

    fn draw(&self, rng: &mut Rng, n: usize, h: usize, w: usize) -> Result<Vec<f64>> {
        let ((hl, hu), wb) = self.bounds()?;
        // Keras draws the batch's height zooms, then its width zooms
        let zy: Vec<f64> = (0..n).map(|_| rng.uniform(1.0 + hl, 1.0 + hu)).collect();
        let zx: Vec<f64> = match wb {
            Some((wl, wu)) => (0..n).map(|_| rng.uniform(1.0 + wl, 1.0 + wu)).collect(),
            None => zy.clone(),
        };
        Ok(zx.iter().zip(&zy).flat_map(|(&zx, &zy)| zoom_matrix(zx, zy, h, w)).collect())
    }

    fn factor_config(&self) -> serde_json::Value {
        serde_json::json!({ "height_factor": self.height_factor, "width_factor": self.width_factor })
    }
}

affine_layer!(RandomZoom, "RandomZoom");

/// Keras 3's `RandomTranslation` on NHWC images: in training each image moves by
/// `u_h * height` pixels down and `u_w * width` right, `u_h`, `u_w` drawn uniformly from the
/// factors' ranges (negative: up / left), resampled with the fill mode and interpolation; in
/// inference the identity. A factor is `f` (`[-|f|, |f|]`) or `(lower, upper)`, each in
/// `[-1, 1]`. Integer pixels come out as floats.
pub struct RandomTranslation {
    name: String,
    input_shape: Option<Vec<usize>>,
    height_factor: Factor,
    width_factor: Factor,
    sampling: Sampling,
    built: bool,
}

impl RandomTranslation {
    /// Shifts by fractions of the height (`height_factor`) and width (`width_factor`).
    pub fn new(height_factor: impl Into<Factor>, width_factor: impl Into<Factor>) -> Self {
        RandomTranslation {
            name: String::new(),
            input_shape: None,
            height_factor: height_factor.into(),
            width_factor: width_factor.into(),
            sampling: Sampling::default(),
            built: false,
        }
    }

    /// The height and width factors as given.
    pub fn factors(&self) -> (Factor, Factor) {
        (self.height_factor, self.width_factor)
    }

    fn bounds(&self) -> Result<((f64, f64), (f64, f64))> {
        let h = symmetric_range(self.height_factor, "height_factor", Bounds::Translation)
            .map_err(|m| self.config_error(m))?;
        let w = symmetric_range(self.width_factor, "width_factor", Bounds::Translation)
            .map_err(|m| self.config_error(m))?;
        Ok((h, w))
    }

    fn is_identity(&self) -> bool {
        self.bounds().is_ok_and(|b| b == ((0.0, 0.0), (0.0, 0.0)))
    }

    fn draw(&self, rng: &mut Rng, n: usize, h: usize, w: usize) -> Result<Vec<f64>> {
        let ((hl, hu), (wl, wu)) = self.bounds()?;
        // Keras draws the batch's height shifts, then its width shifts
        let dy: Vec<f64> = (0..n).map(|_| rng.uniform(hl, hu) * h as f64).collect();
        let dx: Vec<f64> = (0..n).map(|_| rng.uniform(wl, wu) * w as f64).collect();
        Ok(dx.iter().zip(&dy).flat_map(|(&dx, &dy)| translation_matrix(dx, dy)).collect())
    }

    fn factor_config(&self) -> serde_json::Value {
        serde_json::json!({ "height_factor": self.height_factor, "width_factor": self.width_factor })
    }
}

affine_layer!(RandomTranslation, "RandomTranslation");

/// Keras 3's `RandomShear` on NHWC images: in training each image is sheared by
/// `[1, sx, 0, sy, 1, 0, 0, 0]` (the output pixel `(x, y)` reads the input at
/// `(x + sx * y, sy * x + y)`, about the top-left corner as Keras), `sx` and `sy` drawn
/// uniformly from the factors' ranges and both negated together with probability 0.5 (one
/// draw each per image, as Keras), resampled with the fill mode and interpolation; in inference the
/// identity. A factor is `f` in `[0, 1]` (`[-f, f]`) or `(lower, upper)` (sorted). Integer
/// pixels come out as floats.
pub struct RandomShear {
    name: String,
    input_shape: Option<Vec<usize>>,
    x_factor: Factor,
    y_factor: Factor,
    sampling: Sampling,
    built: bool,
}

impl RandomShear {
    /// Shears with `sx` from `x_factor` (along the width) and `sy` from `y_factor` (along the
    /// height); Keras's defaults are `0.0` for both (no shear).
    pub fn new(x_factor: impl Into<Factor>, y_factor: impl Into<Factor>) -> Self {
        RandomShear {
            name: String::new(),
            input_shape: None,
            x_factor: x_factor.into(),
            y_factor: y_factor.into(),
            sampling: Sampling::default(),
            built: false,
        }
    }

    /// The x and y factors as given.
    pub fn factors(&self) -> (Factor, Factor) {
        (self.x_factor, self.y_factor)
    }

    /// The ranges of `sx` and `sy`.
    fn bounds(&self) -> Result<((f64, f64), (f64, f64))> {
        let x = symmetric_range(self.x_factor, "x_factor", Bounds::Shear).map_err(|m| self.config_error(m))?;
        let y = symmetric_range(self.y_factor, "y_factor", Bounds::Shear).map_err(|m| self.config_error(m))?;
        Ok((x, y))
    }

    fn is_identity(&self) -> bool {
        self.bounds().is_ok_and(|b| b == ((0.0, 0.0), (0.0, 0.0)))
    }

    fn draw(&self, rng: &mut Rng, n: usize, _h: usize, _w: usize) -> Result<Vec<f64>> {
        let ((xl, xu), (yl, yu)) = self.bounds()?;
        // Keras draws the batch's signs (-1 where u > 0.5), then the y shears, then the x shears
        let sign: Vec<f64> = (0..n).map(|_| if rng.uniform(0.0, 1.0) > 0.5 { -1.0 } else { 1.0 }).collect();
        let sy: Vec<f64> = (0..n).map(|_| rng.uniform(yl, yu)).collect();
        let sx: Vec<f64> = (0..n).map(|_| rng.uniform(xl, xu)).collect();
        Ok((0..n).flat_map(|i| shear_matrix(sign[i] * sx[i], sign[i] * sy[i])).collect())
    }

    /// The shear with the given per-image factors `(sx, sy)` (signs included; one pair per
    /// image of `x`, `[n, h, w, c]`), whatever the mode: Keras's `transform_images` with a
    /// `shear_factor` of those pairs. For tests and for callers that draw their own factors.
    pub fn transform_with(&self, x: &Var, shear: &[(f64, f64)]) -> Result<Var> {
        if x.rank() != 4 || x.dims()[0] != shear.len() {
            return Err(self.config_error(format!(
                "transform_with needs one (sx, sy) pair per image of an [n, h, w, c] batch, got {} pairs for shape {:?}",
                shear.len(),
                x.dims()
            )));
        }
        self.sampling.apply(x, shear.iter().flat_map(|&(sx, sy)| shear_matrix(sx, sy)).collect())
    }

    fn factor_config(&self) -> serde_json::Value {
        // Keras writes each factor as its range [lower, upper]
        let pair = |f: Factor| match symmetric_range(f, "", Bounds::Shear) {
            Ok((l, u)) => serde_json::json!([l, u]),
            Err(_) => serde_json::json!(f),
        };
        serde_json::json!({ "x_factor": pair(self.x_factor), "y_factor": pair(self.y_factor) })
    }
}

affine_layer!(RandomShear, "RandomShear");
