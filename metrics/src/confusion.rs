//! Confusion matrix: streaming ([`ConfusionMatrix`]) and one-shot ([`confusion_matrix`]).

use crate::error::{MetricsError, Result};
use crate::input::{labels_of, per_sample, sample_weights, weight_of};
use crate::metric::{ArrayRef, Matrix, Metric, MetricValue};

/// Decode a batch into per-row (true label, predicted label, weight) for `num_classes` classes.
///
/// Each side is either integer labels or rows of scores / one-hot values over the last axis
/// (argmax). Sample weights broadcast over the rows of a sample.
pub(crate) fn decode_labels(
    metric: &str,
    y_true: &ArrayRef<'_>,
    y_pred: &ArrayRef<'_>,
    sample_weight: Option<&[f64]>,
    num_classes: usize,
) -> Result<(Vec<usize>, Vec<usize>, Vec<f64>)> {
    let t = labels_of(metric, "y_true", y_true, num_classes)?;
    let p = labels_of(metric, "y_pred", y_pred, num_classes)?;
    let n = y_true.n_samples();
    if t.len() != p.len() || n != y_pred.n_samples() {
        return Err(MetricsError::shape(
            metric,
            y_true.dims(),
            y_pred.dims(),
            "y_true and y_pred must give one label per row (labels, or scores over the last axis)",
        ));
    }
    let w = sample_weights(metric, sample_weight, n, y_true.dims())?;
    let per = per_sample(t.len(), n);
    let wr = (0..t.len()).map(|r| weight_of(&w, r / per)).collect();
    Ok((t, p, wr))
}

/// Streaming confusion matrix over `num_classes` classes: rows are true labels, columns predictions
/// (scikit-learn's layout); entries are summed sample weights.
///
/// Inputs are integer labels or score rows (argmax over the last axis). [`Metric::result`] is the
/// accuracy `trace / total` (0.0 when empty); [`Metric::value`] is the matrix.
#[derive(Debug, Clone)]
pub struct ConfusionMatrix {
    name: String,
    num_classes: usize,
    m: Matrix,
}

impl ConfusionMatrix {
    /// A new, empty `num_classes x num_classes` matrix named `"confusion_matrix"`.
    pub fn new(num_classes: usize) -> Self {
        ConfusionMatrix { name: "confusion_matrix".into(), num_classes, m: Matrix::zeros(num_classes, num_classes) }
    }

    /// Rename the metric (its log key).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The accumulated matrix.
    pub fn matrix(&self) -> &Matrix {
        &self.m
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }
}

impl Metric for ConfusionMatrix {
    fn name(&self) -> &str {
        &self.name
    }

    fn update_arrays(
        &mut self,
        y_true: ArrayRef<'_>,
        y_pred: ArrayRef<'_>,
        sample_weight: Option<&[f64]>,
    ) -> Result<()> {
        let c = self.num_classes;
        let (t, p, w) = decode_labels(&self.name, &y_true, &y_pred, sample_weight, c)?;
        for ((a, b), wi) in t.iter().zip(&p).zip(&w) {
            self.m.data[a * c + b] += wi;
        }
        Ok(())
    }

    /// The accuracy `trace / total` (0.0 when empty); the matrix itself is [`Metric::value`].
    fn result(&self) -> f64 {
        let total: f64 = self.m.data.iter().sum();
        let diag: f64 = (0..self.num_classes).map(|i| self.m.data[i * self.num_classes + i]).sum();
        if total == 0.0 {
            0.0
        } else {
            diag / total
        }
    }

    fn value(&self) -> MetricValue {
        MetricValue::Matrix(self.m.clone())
    }

    fn reset_state(&mut self) {
        self.m = Matrix::zeros(self.num_classes, self.num_classes);
    }
}

/// The sorted union of the labels in two slices (scikit-learn's `unique_labels`).
pub fn unique_labels(y_true: &[i64], y_pred: &[i64]) -> Vec<i64> {
    let mut l: Vec<i64> = y_true.iter().chain(y_pred).copied().collect();
    l.sort_unstable();
    l.dedup();
    l
}

/// One-shot confusion matrix of label slices (scikit-learn's `confusion_matrix`).
///
/// `labels` picks and orders the classes (default: the sorted union of both slices); pairs
/// whose labels are not listed are dropped. Entry (i, j) counts true `labels[i]` predicted `labels[j]`,
/// weighted by `sample_weight` when given. As in scikit-learn, an empty `labels` is an error, and
/// so is a `labels` none of which occurs in a non-empty `y_true`.
pub fn confusion_matrix(
    y_true: &[i64],
    y_pred: &[i64],
    labels: Option<&[i64]>,
    sample_weight: Option<&[f64]>,
) -> Result<Matrix> {
    let name = "confusion_matrix";
    if y_true.len() != y_pred.len() {
        return Err(MetricsError::shape(name, &[y_true.len()], &[y_pred.len()], "label slices differ in length"));
    }
    let w = sample_weights(name, sample_weight, y_true.len(), &[y_true.len()])?;
    if let Some(l) = labels {
        if l.is_empty() {
            return Err(MetricsError::arg(name, "labels is empty: pass at least one label, or None for all labels"));
        }
        if !y_true.is_empty() && !l.iter().any(|v| y_true.contains(v)) {
            return Err(MetricsError::arg(
                name,
                format!("none of the labels {l:?} is in y_true: pass at least one label that occurs in y_true"),
            ));
        }
    }
    let labels = labels.map_or_else(|| unique_labels(y_true, y_pred), <[i64]>::to_vec);
    let c = labels.len();
    let idx = |v: i64| labels.iter().position(|&l| l == v);
    let mut m = Matrix::zeros(c, c);
    for (i, (&a, &b)) in y_true.iter().zip(y_pred).enumerate() {
        if let (Some(r), Some(col)) = (idx(a), idx(b)) {
            m.data[r * c + col] += weight_of(&w, i);
        }
    }
    Ok(m)
}
