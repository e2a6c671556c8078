//! [`RandomContrast`] and [`RandomBrightness`]: per-image random colour adjustments during
//! training, clipped to the pixels' value range, sharing one layer definition.

use crate::layer::{common_builders, layer_common, shape_preserving_layer, with_name, Ctx, Layer};
use crate::layers::augment::{check_image, image_input, per_sample_uniform};
use crate::{Error, Result};
use keel_autograd::Var;
use serde::{Deserialize, Serialize};

/// A Keras augmentation `factor`: one number or a `[lower, upper]` pair (each layer says
/// how it reads them). Serialized as Keras writes it: a number or a two-element list.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Factor {
    /// One number.
    Single(f64),
    /// `[lower, upper]`.
    Range(f64, f64),
}

impl From<f64> for Factor {
    fn from(f: f64) -> Self {
        Factor::Single(f)
    }
}

impl From<(f64, f64)> for Factor {
    fn from((lower, upper): (f64, f64)) -> Self {
        Factor::Range(lower, upper)
    }
}

impl From<[f64; 2]> for Factor {
    fn from([lower, upper]: [f64; 2]) -> Self {
        Factor::Range(lower, upper)
    }
}

/// RandomContrast's draw: the contrast factor in `[1 - lower, 1 + upper]`, a single number
/// `f` meaning `lower = upper = f`; `lower` in `[0, 1]`, `upper` finite and `>= 0`.
fn contrast_bounds(factor: Factor, _width: f64) -> std::result::Result<(f64, f64), String> {
    let (lower, upper) = match factor {
        Factor::Single(f) => (f, f),
        Factor::Range(l, u) => (l, u),
    };
    if !((0.0..=1.0).contains(&lower) && upper.is_finite() && upper >= 0.0) {
        return Err(format!("factor needs lower in [0, 1] and upper >= 0 (finite), got [{lower}, {upper}]"));
    }
    Ok((1.0 - lower, 1.0 + upper))
}

/// `(x - mean) * f + mean`, the mean per image and channel (over height and width).
fn adjust_contrast(x: &Var, f: &Var) -> Result<Var> {
    let mean = x.mean(&[1, 2], true)?;
    Ok(x.sub(&mean)?.mul(f)?.add(&mean)?)
}

/// RandomBrightness's draw: the shift in `[lower, upper] * width` (the value range's
/// width), a single number `f` meaning `[-|f|, |f|]`, a pair taken in order; both in `[-1, 1]`.
fn brightness_bounds(factor: Factor, width: f64) -> std::result::Result<(f64, f64), String> {
    let ok = |v: f64| (-1.0..=1.0).contains(&v);
    let (lower, upper) = match factor {
        Factor::Single(f) if ok(f) => (-f.abs(), f.abs()),
        Factor::Range(a, b) if ok(a) && ok(b) => (a.min(b), a.max(b)),
        _ => return Err(format!("factor must be a number or a pair in [-1, 1], got {factor:?}")),
    };
    Ok((lower * width, upper * width))
}

/// `x + delta`.
fn adjust_brightness(x: &Var, delta: &Var) -> Result<Var> {
    Ok(x.add(delta)?)
}

/// Define a colour-adjustment layer: name, Keras class name, the constructor's doc, the
/// draw's bounds from the factor and the value range's width, and the adjustment of a
/// batch by the per-image draw.
macro_rules! color_layer {
    ($(#[$doc:meta])* $name:ident, $class:literal, $new_doc:literal, $bounds:path, $adjust:path) => {
        $(#[$doc])*
        pub struct $name {
            name: String,
            input_shape: Option<Vec<usize>>,
            factor: Factor,
            value_range: (f64, f64),
            built: bool,
        }

        common_builders!($name);

        impl $name {
            #[doc = $new_doc]
            pub fn new(factor: impl Into<Factor>) -> Self {
                $name { name: String::new(), input_shape: None, factor: factor.into(), value_range: (0.0, 255.0), built: false }
            }

            /// The range `[low, high]` of the pixel values (default `[0, 255]`); training
            /// outputs are clipped to it.
            pub fn value_range(mut self, low: f64, high: f64) -> Self {
                self.value_range = (low, high);
                self
            }

            /// The factor as given.
            pub fn factor(&self) -> Factor {
                self.factor
            }

            /// The bounds of the per-image draw, or a config error naming the layer.
            fn draw_bounds(&self) -> Result<(f64, f64)> {
                let what = || format!("{} \"{}\"", $class, self.name);
                let (low, high) = self.value_range;
                if !(low.is_finite() && high.is_finite() && low < high) {
                    return Err(Error::config(
                        what(),
                        format!("value_range must be [low, high] with finite low < high, got [{low}, {high}]"),
                    ));
                }
                $bounds(self.factor, high - low).map_err(|msg| Error::config(what(), msg))
            }

            fn check(&self, input_shape: &[usize]) -> Result<()> {
                self.draw_bounds()?;
                check_image(input_shape, self)
            }
        }

        impl Layer for $name {
            layer_common!($class);
            shape_preserving_layer!();

            fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
                let (lo, hi) = self.draw_bounds()?;
                let x = image_input(x, ctx, self)?;
                if !ctx.training {
                    return Ok(x);
                }
                let draw = Var::constant(per_sample_uniform(&x, lo, hi, x.dtype(), &self.name, ctx)?);
                Ok($adjust(&x, &draw)?.clamp(self.value_range.0, self.value_range.1)?)
            }

            fn config(&self) -> serde_json::Value {
                let (low, high) = self.value_range;
                with_name(&self.name, serde_json::json!({ "factor": self.factor, "value_range": [low, high] }))
            }
        }
    };
}

color_layer!(
    /// Keras's `RandomContrast` on NHWC images: in training each image gets a contrast
    /// factor `f` drawn uniformly from `[1 - lower, 1 + upper]` (one per image, shared by its
    /// channels), each channel becomes `(x - mean) * f + mean` with the channel's mean over
    /// the image, and the result is clipped to the value range; in inference the identity.
    /// Integer pixels come out as floats.
    RandomContrast,
    "RandomContrast",
    "Contrast factors in `[1 - lower, 1 + upper]`: `factor` is `f` (`lower = upper = f`) or \
     `(lower, upper)`, `lower` in `[0, 1]`, `upper >= 0`.",
    contrast_bounds,
    adjust_contrast
);

color_layer!(
    /// Keras's `RandomBrightness` on NHWC images: in training each image gets a shift drawn
    /// uniformly from `[lower, upper]` times the value range's width (one per image, added to
    /// every pixel and channel), and the result is clipped to the value range; in inference
    /// the identity. Integer pixels come out as floats.
    RandomBrightness,
    "RandomBrightness",
    "Shifts in `[lower, upper]` of the value range's width: `factor` is `f` (`[-|f|, |f|]`) \
     or `(lower, upper)`, both in `[-1, 1]`.",
    brightness_bounds,
    adjust_brightness
);
