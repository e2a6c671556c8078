//! [`UpSampling2D`]: an NHWC image enlarged by integer factors (nearest or bilinear).

use crate::layer::{common_builders, layer_common, with_name, Ctx, IntoPair, Layer};
use crate::layers::image_resize::resize;
use crate::layers::spatial::{per_sample, repeat_axes, repeated_shape};
use crate::{Error, Result};
use keel_autograd::Var;

/// How [`UpSampling2D`] and [`Resizing`](crate::Resizing) sample the input (Keras's
/// `interpolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interpolation {
    /// The nearest pixel (`UpSampling2D`: each pixel repeated, its default).
    #[default]
    Nearest,
    /// Bilinear, as Keras's `ops.image.resize`: half-pixel centres, edges clamped
    /// (`Resizing`'s default).
    Bilinear,
}

impl Interpolation {
    /// Keras's name: `"nearest"` or `"bilinear"`.
    pub fn name(self) -> &'static str {
        match self {
            Interpolation::Nearest => "nearest",
            Interpolation::Bilinear => "bilinear",
        }
    }

    /// From Keras's name; another of Keras's (`"bicubic"`, `"lanczos3"`, ...) is a config error.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "nearest" => Ok(Interpolation::Nearest),
            "bilinear" => Ok(Interpolation::Bilinear),
            other => Err(Error::config(
                "interpolation",
                format!("unknown interpolation \"{other}\": the supported ones are \"nearest\" and \"bilinear\""),
            )),
        }
    }
}

/// Keras's `UpSampling2D(size=(2, 2), interpolation="nearest")`:
/// `[h, w, c] -> [h * size_h, w * size_w, c]`, each pixel repeated (`nearest`) or
/// interpolated (`bilinear`). No weights.
pub struct UpSampling2D {
    name: String,
    input_shape: Option<Vec<usize>>,
    size: (usize, usize),
    interpolation: Interpolation,
    built: bool,
}

common_builders!(UpSampling2D);

impl UpSampling2D {
    /// Enlarge by `size` (`2` or `(rows, cols)`, each at least 1), nearest interpolation.
    pub fn new(size: impl IntoPair) -> Self {
        UpSampling2D {
            name: String::new(),
            input_shape: None,
            size: size.into_pair(),
            interpolation: Interpolation::Nearest,
            built: false,
        }
    }

    /// Set the interpolation.
    pub fn interpolation(mut self, i: Interpolation) -> Self {
        self.interpolation = i;
        self
    }

    /// The `(rows, cols)` factors.
    pub fn size(&self) -> (usize, usize) {
        self.size
    }

    fn factors(&self) -> [usize; 2] {
        [self.size.0, self.size.1]
    }
}

impl Default for UpSampling2D {
    fn default() -> Self {
        UpSampling2D::new(2)
    }
}

impl Layer for UpSampling2D {
    layer_common!("UpSampling2D");

    crate::layer::weightless_build!();

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        repeated_shape(&self.factors(), &self.name, "UpSampling2D", input_shape)
    }

    fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
        self.output_shape(per_sample(x))?;
        match self.interpolation {
            Interpolation::Nearest => repeat_axes(x, &self.factors()),
            Interpolation::Bilinear => {
                let d = x.dims();
                resize(x, d[1] * self.size.0, d[2] * self.size.1, Interpolation::Bilinear)
            }
        }
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "size": self.size, "interpolation": self.interpolation.name() }))
    }
}
