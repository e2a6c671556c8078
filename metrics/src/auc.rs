//! Exact ROC AUC: streaming ([`Auc`]) and one-shot ([`roc_auc_score`]).

use crate::confusion::unique_labels;
use crate::error::{MetricsError, Result};
use crate::input::{no_nan, per_sample, same_size, sample_weights, weight_of};
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
/// Inputs are flattened: every element of `y_pred` is a score, and `y_true` is read as Keras
/// reads it, as 0/1 labels: any non-zero label marks a positive (so `-1` is positive too; for
/// other binary label sets such as `{-1, 1}` or `{1, 2}` use [`roc_auc_score`], which takes the
/// larger label as positive). Multi-label inputs are pooled, as Keras with `multi_label=False`;
/// sample weights broadcast over a sample's elements. NaN labels and scores are errors. With
/// only one class seen, [`Metric::result`] is NaN and [`Metric::try_result`] an
/// [`MetricsError::Undefined`] error (scikit-learn raises). Memory grows with the number of
/// elements seen.
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
        no_nan(&self.name, "y_true", y_true.data())?;
        no_nan(&self.name, "y_pred", y_pred.data())?;
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

/// Exact ROC AUC of binary labels and scores (scikit-learn's binary `roc_auc_score`).
///
/// `y_true` may hold any two distinct labels; the larger one is the positive class (`{0, 1}`,
/// `{-1, 1}`, `{1, 2}`, ...). One class only is an [`MetricsError::Undefined`] error; more than
/// two is an [`MetricsError::InvalidInput`] error, since multi-class ROC AUC needs one score
/// column per class (scikit-learn's `multi_class="ovr"` / `"ovo"`), which this function does not take.
pub fn roc_auc_score(y_true: &[i64], y_score: &[f64], sample_weight: Option<&[f64]>) -> Result<f64> {
    let name = "roc_auc_score";
    if y_true.len() != y_score.len() {
        return Err(MetricsError::shape_named(
            name,
            &["y_true", "y_score"],
            &[y_true.len()],
            &[y_score.len()],
            "pass one score per label in y_true",
        ));
    }
    let classes = unique_labels(y_true, &[]);
    if classes.len() > 2 {
        return Err(MetricsError::input(
            name,
            format!(
                "y_true holds {} classes {classes:?}, but the scores are one per sample: pass binary labels \
                 (multi-class ROC AUC needs one score column per class, one-vs-rest)",
                classes.len()
            ),
        ));
    }
    // The larger of the (at most two) labels is positive, as scikit-learn's `pos_label`.
    let pos = classes.last().copied();
    let t: Vec<f64> = y_true.iter().map(|&v| f64::from(u8::from(Some(v) == pos))).collect();
    let mut m = Auc::new().with_name(name);
    m.update_arrays(ArrayRef::vector(&t), ArrayRef::vector(y_score), sample_weight)?;
    m.try_result()
}
