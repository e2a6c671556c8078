//! Keras 3's `FBetaScore` / `F1Score` ([`FBetaScore`]): multi-label / one-hot F-beta with
//! Keras's averages and epsilon.

use crate::error::{MetricsError, Result};
use crate::input::{no_nan, sample_weights, weight_of};
use crate::metric::{ArrayRef, Metric, MetricValue};
use crate::precision_recall::Average;

/// Keras's `backend.epsilon()`, as the f32 its tensors hold.
const EPS: f64 = 1e-7f32 as f64;

/// Keras 3's `FBetaScore` (and `F1Score` with [`FBetaScore::f1`]): inputs `[batch, classes]`,
/// one-hot or multi-label `y_true` and scores `y_pred`.
///
/// With a threshold, `y_pred > threshold` is positive; without one (Keras's default), the
/// largest score of each row is (every tied maximum, and only if non-zero). Per class (or
/// pooled for [`Average::Micro`]): `precision = tp / (tp + fp + eps)`, `recall = tp / (tp +
/// fn + eps)`, `F = (1 + b²) p r / (b² p + r + eps)`; [`Average::None`] keeps the per-class
/// vector ([`Metric::value`]; [`Metric::result`] is its mean), `Macro` averages it, `Weighted`
/// weights it by each class's (weighted) count in `y_true`. `y_true` values enter Keras's
/// products as they are (0/1 expected). [`Average::Binary`], `beta <= 0`, or a threshold
/// outside `(0, 1]` make the first update fail with [`MetricsError::InvalidArgument`].
///
/// keel's own [`F1Score`](crate::F1Score) (`"f1_score"` by name) is a different metric: binary
/// with threshold 0.5 by default, scikit-learn's zero division.
#[derive(Debug, Clone)]
pub struct FBetaScore {
    name: String,
    average: Average,
    beta: f64,
    threshold: Option<f64>,
    /// Per class (one entry for `Micro`): tp, fp, fn, weighted true count.
    tp: Vec<f64>,
    fp: Vec<f64>,
    fn_: Vec<f64>,
    support: Vec<f64>,
}

impl FBetaScore {
    /// Keras `FBetaScore(average, beta, threshold)`, logged as `"fbeta_score"`.
    pub fn new(average: Average, beta: f64, threshold: Option<f64>) -> Self {
        FBetaScore {
            name: "fbeta_score".into(),
            average,
            beta,
            threshold,
            tp: Vec::new(),
            fp: Vec::new(),
            fn_: Vec::new(),
            support: Vec::new(),
        }
    }

    /// Keras `F1Score(average, threshold)` (beta 1), logged as `"f1_score"`.
    pub fn f1(average: Average, threshold: Option<f64>) -> Self {
        FBetaScore::new(average, 1.0, threshold).with_name("f1_score")
    }

    /// Rename the metric (its log key).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    fn check(&self) -> Result<()> {
        if self.average == Average::Binary {
            return Err(MetricsError::arg(
                &self.name,
                "average Binary is not one of Keras's FBetaScore averages: use None, Micro, Macro or Weighted",
            ));
        }
        if !(self.beta > 0.0 && self.beta.is_finite()) {
            return Err(MetricsError::arg(&self.name, format!("beta must be > 0, got {}", self.beta)));
        }
        if let Some(t) = self.threshold {
            if !(t > 0.0 && t <= 1.0) {
                return Err(MetricsError::arg(
                    &self.name,
                    format!("threshold must satisfy 0 < threshold <= 1, got {t}"),
                ));
            }
        }
        Ok(())
    }

    /// The F-beta of each class (one value for `Micro`).
    fn scores(&self) -> Vec<f64> {
        let b2 = self.beta * self.beta;
        (0..self.tp.len())
            .map(|i| {
                let p = self.tp[i] / (self.tp[i] + self.fp[i] + EPS);
                let r = self.tp[i] / (self.tp[i] + self.fn_[i] + EPS);
                p * r / (b2 * p + r + EPS) * (1.0 + b2)
            })
            .collect()
    }
}

impl Metric for FBetaScore {
    fn name(&self) -> &str {
        &self.name
    }

    fn update_arrays(
        &mut self,
        y_true: ArrayRef<'_>,
        y_pred: ArrayRef<'_>,
        sample_weight: Option<&[f64]>,
    ) -> Result<()> {
        self.check()?;
        if y_true.rank() != 2 || y_pred.rank() != 2 || y_true.dims() != y_pred.dims() {
            return Err(MetricsError::shape(
                &self.name,
                y_true.dims(),
                y_pred.dims(),
                "FBetaScore expects equal 2D shapes [batch, classes]",
            ));
        }
        let (n, k) = (y_pred.n_samples(), y_pred.last_dim());
        let cols = if self.average == Average::Micro { 1 } else { k };
        if !self.tp.is_empty() && self.tp.len() != cols {
            return Err(MetricsError::shape(
                &self.name,
                y_true.dims(),
                y_pred.dims(),
                format!("the metric was built for {} classes: pass [batch, {}]", self.tp.len(), self.tp.len()),
            ));
        }
        no_nan(&self.name, "y_true", y_true.data())?;
        no_nan(&self.name, "y_pred", y_pred.data())?;
        let w = sample_weights(&self.name, sample_weight, n, y_true.dims())?;
        if self.tp.is_empty() {
            self.tp = vec![0.0; cols];
            self.fp = vec![0.0; cols];
            self.fn_ = vec![0.0; cols];
            self.support = vec![0.0; cols];
        }
        for (i, (t, p)) in y_true.data().chunks(k.max(1)).zip(y_pred.data().chunks(k.max(1))).enumerate() {
            let wi = weight_of(&w, i);
            let max = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            for (j, (&t, &p)) in t.iter().zip(p).enumerate() {
                let pos = match self.threshold {
                    Some(th) => p as f32 > th as f32,
                    None => p >= max && p.abs() > 1e-9,
                };
                let p = f64::from(u8::from(pos));
                let c = if cols == 1 { 0 } else { j };
                self.tp[c] += wi * p * t;
                self.fp[c] += wi * p * (1.0 - t);
                self.fn_[c] += wi * (1.0 - p) * t;
                self.support[c] += wi * t;
            }
        }
        Ok(())
    }

    /// The averaged score (the mean of the per-class scores for [`Average::None`]); 0.0 before any update.
    fn result(&self) -> f64 {
        let s = self.scores();
        if s.is_empty() {
            return 0.0;
        }
        match self.average {
            Average::Weighted => {
                let total: f64 = self.support.iter().sum::<f64>() + EPS;
                s.iter().zip(&self.support).map(|(f, w)| f * w / total).sum()
            }
            _ => s.iter().sum::<f64>() / s.len() as f64,
        }
    }

    fn value(&self) -> MetricValue {
        if self.average == Average::None {
            MetricValue::Vector(self.scores())
        } else {
            MetricValue::Scalar(self.result())
        }
    }

    fn reset_state(&mut self) {
        for v in [&mut self.tp, &mut self.fp, &mut self.fn_, &mut self.support] {
            v.iter_mut().for_each(|x| *x = 0.0);
        }
    }
}
