//! `StandardScaler` and `MinMaxScaler`, with scikit-learn's semantics.

use super::{from_f64, handle_zero_scale, is_constant_feature, matrix, out_dtype};
use crate::{Error, Result};
use keel_tensor::Tensor;

fn check_fitted(cols: usize, x_cols: usize, op: &'static str) -> Result<()> {
    if cols == 0 {
        return Err(Error::invalid(op, "the scaler is not fitted; call fit(&x) first"));
    }
    if cols != x_cols {
        return Err(Error::invalid(op, format!("the scaler was fitted on {cols} features but x has {x_cols}")));
    }
    Ok(())
}

fn apply(x: &Tensor, op: &'static str, n_feat: usize, f: impl Fn(usize, f64) -> f64) -> Result<Tensor> {
    let (v, rows, cols) = matrix(x, op)?;
    check_fitted(n_feat, cols, op)?;
    let out: Vec<f64> = v.iter().enumerate().map(|(i, &a)| f(i % cols, a)).collect();
    from_f64(out, &[rows, cols], out_dtype(x))
}

/// Standardize features to zero mean and unit variance: `(x - mean) / scale`.
///
/// Like scikit-learn: the variance is the population variance (divide by N);
/// NaNs are ignored in [`fit`](Self::fit) (each feature's statistics use its
/// non-NaN values) and stay NaN in [`transform`](Self::transform); and a
/// feature whose variance is within rounding error of zero (scikit-learn's
/// `_is_constant_feature`: `var <= n*eps*var + (n*mean*eps)^2`) gets
/// `scale = 1` (it is only centred). A feature with no non-NaN values gets
/// mean and variance NaN and scale 1, so it transforms to NaN.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StandardScaler {
    /// Per-feature mean of the non-NaN values (empty until fitted).
    pub mean: Vec<f64>,
    /// Per-feature population variance of the non-NaN values.
    pub var: Vec<f64>,
    /// Per-feature scale: `sqrt(var)`, or 1 where the feature is constant (or all NaN).
    pub scale: Vec<f64>,
    /// Per-feature count of non-NaN values seen in fit (scikit-learn's `n_samples_seen_`).
    pub n_samples_seen: Vec<usize>,
}

impl StandardScaler {
    /// An unfitted scaler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Learn mean and scale from `x` `[samples, features]`, ignoring NaNs.
    pub fn fit(&mut self, x: &Tensor) -> Result<&mut Self> {
        let (v, rows, cols) = matrix(x, "StandardScaler::fit")?;
        if rows == 0 {
            return Err(Error::invalid("StandardScaler::fit", "x has no rows"));
        }
        let mut count = vec![0usize; cols];
        let mut mean = vec![0.0; cols];
        for r in v.chunks_exact(cols) {
            for j in 0..cols {
                if !r[j].is_nan() {
                    mean[j] += r[j];
                    count[j] += 1;
                }
            }
        }
        // 0 / 0 = NaN for an all-NaN feature
        mean.iter_mut().zip(&count).for_each(|(m, &c)| *m /= c as f64);
        // scikit-learn's corrected two-pass variance: (sum d^2 - (sum d)^2 / n) / n, d = x - mean
        let mut sq = vec![0.0; cols];
        let mut corr = vec![0.0; cols];
        for r in v.chunks_exact(cols) {
            for j in 0..cols {
                if !r[j].is_nan() {
                    let d = r[j] - mean[j];
                    sq[j] += d * d;
                    corr[j] += d;
                }
            }
        }
        let var: Vec<f64> = (0..cols)
            .map(|j| {
                let n = count[j] as f64;
                let v = (sq[j] - corr[j] * corr[j] / n) / n;
                // clamp rounding below zero; NaN (no values) stays NaN
                if v < 0.0 {
                    0.0
                } else {
                    v
                }
            })
            .collect();
        self.scale = (0..cols)
            .map(|j| {
                if var[j].is_nan() || is_constant_feature(var[j], mean[j], count[j] as f64) {
                    1.0
                } else {
                    var[j].sqrt()
                }
            })
            .collect();
        self.mean = mean;
        self.var = var;
        self.n_samples_seen = count;
        Ok(self)
    }

    /// `(x - mean) / scale`.
    pub fn transform(&self, x: &Tensor) -> Result<Tensor> {
        apply(x, "StandardScaler::transform", self.mean.len(), |j, a| (a - self.mean[j]) / self.scale[j])
    }

    /// [`fit`](Self::fit) then [`transform`](Self::transform).
    pub fn fit_transform(&mut self, x: &Tensor) -> Result<Tensor> {
        self.fit(x)?;
        self.transform(x)
    }

    /// `x * scale + mean` (undo [`transform`](Self::transform)).
    pub fn inverse_transform(&self, x: &Tensor) -> Result<Tensor> {
        apply(x, "StandardScaler::inverse_transform", self.mean.len(), |j, a| a * self.scale[j] + self.mean[j])
    }
}

/// Scale each feature to `feature_range` (default `(0, 1)`): `x * scale + min`.
///
/// Like scikit-learn: `scale = (hi - lo) / (data_max - data_min)` with a data
/// range below `10 * f64::EPSILON` treated as 1, and `min = lo - data_min * scale`.
/// NaNs are ignored in [`fit`](Self::fit) and stay NaN in
/// [`transform`](Self::transform); an all-NaN feature gets NaN statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct MinMaxScaler {
    /// The target range `(lo, hi)`.
    pub feature_range: (f64, f64),
    /// Per-feature minimum seen in fit (NaN for an all-NaN feature).
    pub data_min: Vec<f64>,
    /// Per-feature maximum seen in fit (NaN for an all-NaN feature).
    pub data_max: Vec<f64>,
    /// Per-feature multiplier.
    pub scale: Vec<f64>,
    /// Per-feature offset added after scaling.
    pub min: Vec<f64>,
}

impl Default for MinMaxScaler {
    fn default() -> Self {
        MinMaxScaler { feature_range: (0.0, 1.0), data_min: vec![], data_max: vec![], scale: vec![], min: vec![] }
    }
}

impl MinMaxScaler {
    /// An unfitted scaler to `[0, 1]`.
    pub fn new() -> Self {
        Self::default()
    }

    /// An unfitted scaler to `[lo, hi]` (`lo < hi`).
    pub fn with_range(lo: f64, hi: f64) -> Result<Self> {
        if lo >= hi || !lo.is_finite() || !hi.is_finite() {
            return Err(Error::invalid("MinMaxScaler::with_range", format!("need finite lo < hi, got ({lo}, {hi})")));
        }
        Ok(MinMaxScaler { feature_range: (lo, hi), ..Self::default() })
    }

    /// Learn per-feature min and max from `x` `[samples, features]`, ignoring NaNs.
    pub fn fit(&mut self, x: &Tensor) -> Result<&mut Self> {
        let (v, rows, cols) = matrix(x, "MinMaxScaler::fit")?;
        if rows == 0 {
            return Err(Error::invalid("MinMaxScaler::fit", "x has no rows"));
        }
        let mut lo = vec![f64::NAN; cols];
        let mut hi = vec![f64::NAN; cols];
        // f64::min/max skip a NaN operand, like numpy's nanmin/nanmax; an all-NaN feature stays NaN
        for r in v.chunks_exact(cols) {
            for j in 0..cols {
                lo[j] = lo[j].min(r[j]);
                hi[j] = hi[j].max(r[j]);
            }
        }
        let (a, b) = self.feature_range;
        self.scale = (0..cols).map(|j| (b - a) / handle_zero_scale(hi[j] - lo[j])).collect();
        self.min = (0..cols).map(|j| a - lo[j] * self.scale[j]).collect();
        self.data_min = lo;
        self.data_max = hi;
        Ok(self)
    }

    /// `x * scale + min`.
    pub fn transform(&self, x: &Tensor) -> Result<Tensor> {
        apply(x, "MinMaxScaler::transform", self.scale.len(), |j, a| a * self.scale[j] + self.min[j])
    }

    /// [`fit`](Self::fit) then [`transform`](Self::transform).
    pub fn fit_transform(&mut self, x: &Tensor) -> Result<Tensor> {
        self.fit(x)?;
        self.transform(x)
    }

    /// `(x - min) / scale` (undo [`transform`](Self::transform)).
    pub fn inverse_transform(&self, x: &Tensor) -> Result<Tensor> {
        apply(x, "MinMaxScaler::inverse_transform", self.scale.len(), |j, a| (a - self.min[j]) / self.scale[j])
    }
}
