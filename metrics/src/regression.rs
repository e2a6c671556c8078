//! Regression metrics: [`MeanSquaredError`], [`RootMeanSquaredError`], [`MeanAbsoluteError`],
//! [`R2Score`] and their one-shot functions.

use crate::error::{MetricsError, Result};
use crate::input::{same_size, sample_weights, weight_of, MeanAcc};
use crate::metric::{ArrayRef, Metric};

/// Per-sample mean of `f(t - p)` over a sample's elements (Keras reduces the last axes by the mean).
fn error_mean(
    name: &str,
    acc: &mut MeanAcc,
    y_true: &ArrayRef<'_>,
    y_pred: &ArrayRef<'_>,
    sample_weight: Option<&[f64]>,
    f: fn(f64) -> f64,
) -> Result<()> {
    same_size(name, y_true, y_pred)?;
    let n = y_true.n_samples();
    let w = sample_weights(name, sample_weight, n, y_true.dims())?;
    let v: Vec<f64> = y_true.data().iter().zip(y_pred.data()).map(|(a, b)| f(a - b)).collect();
    acc.add_samples(name, &v, n, &w)
}

macro_rules! error_metric {
    ($(#[$doc:meta])* $t:ident, $name:literal, $f:expr, $post:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $t {
            name: String,
            acc: MeanAcc,
        }

        impl Default for $t {
            fn default() -> Self {
                Self::new()
            }
        }

        impl $t {
            /// A new, empty metric with its Keras name.
            pub fn new() -> Self {
                $t { name: $name.into(), acc: MeanAcc::default() }
            }

            /// Rename the metric (its log key).
            pub fn with_name(mut self, name: impl Into<String>) -> Self {
                self.name = name.into();
                self
            }
        }

        impl Metric for $t {
            fn name(&self) -> &str {
                &self.name
            }
            fn update_arrays(
                &mut self,
                y_true: ArrayRef<'_>,
                y_pred: ArrayRef<'_>,
                sample_weight: Option<&[f64]>,
            ) -> Result<()> {
                error_mean(&self.name, &mut self.acc, &y_true, &y_pred, sample_weight, $f)
            }
            fn result(&self) -> f64 {
                let post: fn(f64) -> f64 = $post;
                post(self.acc.value())
            }
            fn reset_state(&mut self) {
                self.acc = MeanAcc::default();
            }
        }
    };
}

error_metric!(
    /// Keras `MeanSquaredError`: weighted mean over samples of the mean squared error (0.0 when empty).
    MeanSquaredError,
    "mean_squared_error",
    |d| d * d,
    |v| v
);
error_metric!(
    /// Keras `MeanAbsoluteError`: weighted mean over samples of the mean absolute error (0.0 when empty).
    MeanAbsoluteError,
    "mean_absolute_error",
    f64::abs,
    |v| v
);
error_metric!(
    /// Keras `RootMeanSquaredError`: the square root of the streaming MSE (0.0 when empty).
    RootMeanSquaredError,
    "root_mean_squared_error",
    |d| d * d,
    f64::sqrt
);

/// Streaming per-output statistics of one R² column.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct R2Col {
    /// Sum of weights.
    w: f64,
    /// Weighted mean of `y_true`.
    mean: f64,
    /// Weighted sum of squared deviations of `y_true` from its mean.
    m2: f64,
    /// Weighted sum of squared residuals.
    sse: f64,
}

/// Keras / scikit-learn `R2Score` (coefficient of determination), averaged uniformly over outputs.
///
/// Inputs are `[batch]` (one output) or `[batch, outputs]`. Statistics are merged batch by
/// batch (Chan's parallel mean/variance update), so streaming equals one batch up to rounding.
/// As scikit-learn (`force_finite=True`): a constant `y_true` scores 1.0 when predicted
/// exactly, else 0.0; with fewer than two samples, or a zero total sample weight, the score
/// is NaN (undefined; Keras gives NaN, scikit-learn raises). A failed update changes nothing.
#[derive(Debug, Clone)]
pub struct R2Score {
    name: String,
    cols: Vec<R2Col>,
    samples: usize,
}

impl Default for R2Score {
    fn default() -> Self {
        Self::new()
    }
}

impl R2Score {
    /// A new, empty metric named `"r2_score"`.
    pub fn new() -> Self {
        R2Score { name: "r2_score".into(), cols: Vec::new(), samples: 0 }
    }

    /// Rename the metric (its log key).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The score of each output (empty before any update).
    pub fn per_output(&self) -> Vec<f64> {
        self.cols
            .iter()
            .map(|c| {
                if self.samples < 2 || c.w == 0.0 {
                    f64::NAN
                } else if c.m2 == 0.0 {
                    if c.sse == 0.0 {
                        1.0
                    } else {
                        0.0
                    }
                } else {
                    1.0 - c.sse / c.m2
                }
            })
            .collect()
    }
}

impl Metric for R2Score {
    fn name(&self) -> &str {
        &self.name
    }

    fn update_arrays(
        &mut self,
        y_true: ArrayRef<'_>,
        y_pred: ArrayRef<'_>,
        sample_weight: Option<&[f64]>,
    ) -> Result<()> {
        same_size(&self.name, &y_true, &y_pred)?;
        let outputs = if y_true.rank() >= 2 { y_true.last_dim() } else { 1 };
        if y_true.dims() != y_pred.dims() && y_true.rank() >= 2 {
            return Err(MetricsError::shape(&self.name, y_true.dims(), y_pred.dims(), "expected equal shapes"));
        }
        let n = y_true.n_samples();
        let w = sample_weights(&self.name, sample_weight, n, y_true.dims())?;
        if outputs == 0 || y_true.data().is_empty() {
            return Ok(());
        }
        if !self.cols.is_empty() && self.cols.len() != outputs {
            return Err(MetricsError::input(
                &self.name,
                format!(
                    "{outputs} outputs in this batch but {} before: keep the output width, or reset_state first",
                    self.cols.len()
                ),
            ));
        }
        // Every check has passed: from here on the update cannot fail.
        if self.cols.is_empty() {
            self.cols = vec![R2Col::default(); outputs];
        }
        let rows = y_true.data().len() / outputs;
        let per = (rows / n.max(1)).max(1);
        let (t, p) = (y_true.data(), y_pred.data());
        for (j, col) in self.cols.iter_mut().enumerate() {
            let mut b = R2Col::default();
            for r in 0..rows {
                let wi = weight_of(&w, r / per);
                b.w += wi;
                b.mean += wi * t[r * outputs + j];
            }
            if b.w == 0.0 {
                continue;
            }
            b.mean /= b.w;
            for r in 0..rows {
                let wi = weight_of(&w, r / per);
                let (y, yh) = (t[r * outputs + j], p[r * outputs + j]);
                b.m2 += wi * (y - b.mean) * (y - b.mean);
                b.sse += wi * (y - yh) * (y - yh);
            }
            let total = col.w + b.w;
            let delta = b.mean - col.mean;
            col.mean += delta * b.w / total;
            col.m2 += b.m2 + delta * delta * col.w * b.w / total;
            col.sse += b.sse;
            col.w = total;
        }
        self.samples += rows;
        Ok(())
    }

    /// Mean of the per-output scores (NaN with fewer than two samples or zero total weight).
    fn result(&self) -> f64 {
        let v = self.per_output();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    }

    fn reset_state(&mut self) {
        self.cols.clear();
        self.samples = 0;
    }
}

fn one_shot(m: &mut dyn Metric, y_true: &[f64], y_pred: &[f64], sample_weight: Option<&[f64]>) -> Result<f64> {
    m.update_arrays(ArrayRef::vector(y_true), ArrayRef::vector(y_pred), sample_weight)?;
    Ok(m.result())
}

/// Mean squared error of two slices (scikit-learn's `mean_squared_error`).
pub fn mean_squared_error(y_true: &[f64], y_pred: &[f64], sample_weight: Option<&[f64]>) -> Result<f64> {
    one_shot(&mut MeanSquaredError::new(), y_true, y_pred, sample_weight)
}

/// Mean absolute error of two slices (scikit-learn's `mean_absolute_error`).
pub fn mean_absolute_error(y_true: &[f64], y_pred: &[f64], sample_weight: Option<&[f64]>) -> Result<f64> {
    one_shot(&mut MeanAbsoluteError::new(), y_true, y_pred, sample_weight)
}

/// R² of two slices (scikit-learn's `r2_score`, `force_finite=True`; NaN with fewer than 2 samples
/// or when the sample weights sum to zero).
pub fn r2_score(y_true: &[f64], y_pred: &[f64], sample_weight: Option<&[f64]>) -> Result<f64> {
    one_shot(&mut R2Score::new(), y_true, y_pred, sample_weight)
}
