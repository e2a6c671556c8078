//! Exact ROC AUC: streaming ([`Auc`]) and one-shot ([`roc_auc_score`]).

use crate::error::{MetricsError, Result};
use crate::input::{per_sample, same_size, sample_weights, weight_of};
use crate::metric::{ArrayRef, Metric};

/// Exact area under the ROC curve of weighted (score, is_positive) pairs.
///
/// Scores are sorted descending and tied scores form one step, so a tie between a
/// positive and a negative contributes a diagonal segment (half credit), exactly as
/// scikit-learn's `roc_auc_score`. Fails when the positive or negative weight is zero.
fn roc_auc(metric: &str, scores: &[f64], positive: &[bool], weights: &[f64]) -> Result<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // ok: scores are checked for NaN on insertion, so total_cmp equals the numeric order.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut area) = (0.0f64, 0.0f64, 0.0f64);
    let (mut tp_prev, mut fp_prev) = (0.0f64, 0.0f64);
    let mut k = 0;
    while k < order.len() {
        let s = scores[order[k]];
        while k < order.len() && scores[order[k]] == s {
            let i = order[k];
            if positive[i] {
                tp += weights[i];
            } else {
                fp += weights[i];
            }
            k += 1;
        }
        area += (fp - fp_prev) * (tp + tp_prev) / 2.0;
        tp_prev = tp;
        fp_prev = fp;
    }
    if tp <= 0.0 || fp <= 0.0 {
        return Err(MetricsError::Undefined {
            metric: metric.to_string(),
            reason: "ROC AUC needs both positive and negative samples in y_true".into(),
        });
    }
    Ok(area / (tp * fp))
}

/// Keras `AUC` (ROC), computed exactly: the metric keeps every (score, label, weight) seen.
///
/// Inputs are flattened: every element of `y_pred` is a score, `y_true != 0` marks a
/// positive (multi-label inputs are pooled, as Keras with `multi_label=False`); sample
/// weights broadcast over a sample's elements. With only one class seen, [`Metric::result`]
/// is NaN and [`Metric::try_result`] an [`MetricsError::Undefined`] error (scikit-learn raises).
/// Memory grows with the number of elements seen.
#[derive(Debug, Clone)]
pub struct Auc {
    name: String,
    scores: Vec<f64>,
    positive: Vec<bool>,
    weights: Vec<f64>,
}

impl Default for Auc {
    fn default() -> Self {
        Self::new()
    }
}

impl Auc {
    /// A new, empty metric named `"auc"`.
    pub fn new() -> Self {
        Auc { name: "auc".into(), scores: Vec::new(), positive: Vec::new(), weights: Vec::new() }
    }

    /// Rename the metric (its log key).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Number of scores kept.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// True before any score was seen.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }
}

impl Metric for Auc {
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
        if y_pred.data().iter().any(|v| v.is_nan()) {
            return Err(MetricsError::input(&self.name, "NaN score in y_pred"));
        }
        let n = y_true.n_samples();
        let w = sample_weights(&self.name, sample_weight, n, y_true.dims())?;
        let per = per_sample(y_true.data().len(), n);
        for (k, (&t, &p)) in y_true.data().iter().zip(y_pred.data()).enumerate() {
            self.scores.push(p);
            self.positive.push(t != 0.0);
            self.weights.push(weight_of(&w, k / per));
        }
        Ok(())
    }

    /// The ROC AUC, or NaN when only one class was seen.
    fn result(&self) -> f64 {
        self.try_result().unwrap_or(f64::NAN)
    }

    fn try_result(&self) -> Result<f64> {
        roc_auc(&self.name, &self.scores, &self.positive, &self.weights)
    }

    fn reset_state(&mut self) {
        self.scores.clear();
        self.positive.clear();
        self.weights.clear();
    }
}

/// Exact ROC AUC of binary labels (`!= 0` is positive) and scores (scikit-learn's `roc_auc_score`);
/// an [`MetricsError::Undefined`] error when `y_true` holds one class only.
pub fn roc_auc_score(y_true: &[i64], y_score: &[f64], sample_weight: Option<&[f64]>) -> Result<f64> {
    let t: Vec<f64> = y_true.iter().map(|&v| v as f64).collect();
    let mut m = Auc::new().with_name("roc_auc_score");
    m.update_arrays(ArrayRef::vector(&t), ArrayRef::vector(y_score), sample_weight)?;
    m.try_result()
}
