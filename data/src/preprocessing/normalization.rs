//! Keras's `Normalization` preprocessing layer.

use super::{from_f64, out_dtype};
use crate::{Error, Result};
use keel_tensor::Tensor;

/// Keras `layers.Normalization(axis=-1)`: learns per-feature (last axis) mean and
/// variance with [`adapt`](Self::adapt), then maps `x -> (x - mean) / max(sqrt(var), 1e-7)`.
///
/// Works for any rank >= 1: for images `[N, H, W, C]` the statistics are per
/// channel. [`invert`](Self::invert) builds the inverse mapping, as Keras's
/// `invert=True` does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Normalization {
    /// Per-feature mean (empty until adapted).
    pub mean: Vec<f64>,
    /// Per-feature population variance.
    pub variance: Vec<f64>,
    /// True to apply the inverse mapping `x * max(sqrt(var), eps) + mean`.
    pub invert: bool,
}

/// Keras's `backend.epsilon()`.
const EPSILON: f64 = 1e-7;

impl Normalization {
    /// An un-adapted layer (call [`adapt`](Self::adapt)).
    pub fn new() -> Self {
        Self::default()
    }

    /// A layer with known statistics (Keras's `mean=`, `variance=` arguments).
    pub fn with_stats(mean: Vec<f64>, variance: Vec<f64>) -> Result<Self> {
        if mean.len() != variance.len() || mean.is_empty() {
            return Err(Error::invalid(
                "Normalization::with_stats",
                format!("mean ({}) and variance ({}) need the same non-zero length", mean.len(), variance.len()),
            ));
        }
        if let Some(v) = variance.iter().find(|v| v.is_nan() || **v < 0.0) {
            return Err(Error::invalid("Normalization::with_stats", format!("variances must be >= 0, got {v}")));
        }
        Ok(Normalization { mean, variance, invert: false })
    }

    /// The same statistics, applying the inverse mapping (de-normalization).
    pub fn invert(mut self) -> Self {
        self.invert = !self.invert;
        self
    }

    /// Compute mean and variance of `data` over every axis but the last.
    pub fn adapt(&mut self, data: &Tensor) -> Result<&mut Self> {
        let f =
            *data.dims().last().ok_or_else(|| Error::invalid("Normalization::adapt", "data must have rank >= 1"))?;
        let v = data.to_vec_f64()?;
        if f == 0 || v.is_empty() {
            return Err(Error::invalid(
                "Normalization::adapt",
                format!("data of shape {:?} has no elements", data.dims()),
            ));
        }
        let n = (v.len() / f) as f64;
        let mut mean = vec![0.0; f];
        for r in v.chunks_exact(f) {
            for j in 0..f {
                mean[j] += r[j];
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0; f];
        for r in v.chunks_exact(f) {
            for j in 0..f {
                var[j] += (r[j] - mean[j]).powi(2);
            }
        }
        var.iter_mut().for_each(|s| *s /= n);
        self.mean = mean;
        self.variance = var;
        Ok(self)
    }

    /// Apply the layer to `x` (last axis = features).
    pub fn call(&self, x: &Tensor) -> Result<Tensor> {
        let f = self.mean.len();
        if f == 0 {
            return Err(Error::invalid(
                "Normalization::call",
                "not adapted; call adapt(&data) or build it with with_stats",
            ));
        }
        if x.dims().last() != Some(&f) {
            return Err(Error::invalid(
                "Normalization::call",
                format!("adapted on {f} features but x has shape {:?}", x.dims()),
            ));
        }
        let std: Vec<f64> = self.variance.iter().map(|v| v.sqrt().max(EPSILON)).collect();
        let out: Vec<f64> = x
            .to_vec_f64()?
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                let j = i % f;
                if self.invert {
                    a * std[j] + self.mean[j]
                } else {
                    (a - self.mean[j]) / std[j]
                }
            })
            .collect();
        from_f64(out, x.dims(), out_dtype(x))
    }
}
