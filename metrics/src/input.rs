//! Shared input checks and conversions (crate-private).

use crate::error::{MetricsError, Result};
use crate::metric::ArrayRef;

/// Per-sample weights: `None` stays `None`; a single weight broadcasts; otherwise one per sample
/// of `y_true` (shape `dims`, `n` samples).
pub(crate) fn sample_weights(metric: &str, w: Option<&[f64]>, n: usize, dims: &[usize]) -> Result<Option<Vec<f64>>> {
    sample_weights_of(metric, &["y_true", "sample_weight"], w, n, dims)
}

/// [`sample_weights`] with other operand names in errors (e.g. `["values", "sample_weight"]`).
pub(crate) fn sample_weights_of(
    metric: &str,
    operands: &'static [&'static str; 2],
    w: Option<&[f64]>,
    n: usize,
    dims: &[usize],
) -> Result<Option<Vec<f64>>> {
    match w {
        None => Ok(None),
        Some(w) if w.len() == n => Ok(Some(w.to_vec())),
        Some(w) if w.len() == 1 => Ok(Some(vec![w[0]; n])),
        Some(w) => Err(MetricsError::weights(metric, operands, dims, w.len(), n)),
    }
}

/// The weight of sample `i` (1.0 without weights).
#[inline]
pub(crate) fn weight_of(w: &Option<Vec<f64>>, i: usize) -> f64 {
    match w {
        Some(w) => w[i],
        None => 1.0,
    }
}

/// Check that two arrays have the same number of samples and elements.
pub(crate) fn same_size(metric: &str, a: &ArrayRef<'_>, b: &ArrayRef<'_>) -> Result<()> {
    if a.data().len() != b.data().len() || a.n_samples() != b.n_samples() {
        return Err(MetricsError::shape(
            metric,
            a.dims(),
            b.dims(),
            "y_true and y_pred need the same number of samples and elements",
        ));
    }
    Ok(())
}

/// The error for a NaN in the operand `what` (a score in `y_pred`, a label in `y_true`).
pub(crate) fn nan_error(metric: &str, what: &str) -> MetricsError {
    let kind = if what == "y_pred" { "score" } else { "label" };
    MetricsError::input(metric, format!("NaN {kind} in {what}: remove or replace NaN values before updating"))
}

/// Error unless no value of `data` (the operand `what`) is NaN.
pub(crate) fn no_nan(metric: &str, what: &str, data: &[f64]) -> Result<()> {
    if data.iter().any(|v| v.is_nan()) {
        return Err(nan_error(metric, what));
    }
    Ok(())
}

/// Index of the first maximum of each row of `cols` values of the operand `what` (NumPy's
/// argmax); errors on NaN.
pub(crate) fn argmax_rows(metric: &str, what: &str, data: &[f64], cols: usize) -> Result<Vec<usize>> {
    if cols == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(data.len() / cols);
    for row in data.chunks(cols) {
        let mut best = 0;
        for (j, &v) in row.iter().enumerate() {
            if v.is_nan() {
                return Err(nan_error(metric, what));
            }
            if v > row[best] {
                best = j;
            }
        }
        out.push(best);
    }
    Ok(out)
}

/// A value of the operand `what` that must be a class label in `0..num_classes`.
pub(crate) fn to_label(metric: &str, what: &str, v: f64, num_classes: usize) -> Result<usize> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && (v as usize) < num_classes {
        Ok(v as usize)
    } else {
        Err(MetricsError::input(metric, format!("label {v} in {what} is not an integer in 0..{num_classes}")))
    }
}

/// Class labels from `arr` (the operand `what`): the argmax of the last axis when it holds scores
/// or one-hot rows (rank >= 2 and last dimension > 1), else the values themselves as labels.
pub(crate) fn labels_of(metric: &str, what: &str, arr: &ArrayRef<'_>, num_classes: usize) -> Result<Vec<usize>> {
    if arr.data().is_empty() && arr.n_samples() > 0 {
        return Err(MetricsError::input(
            metric,
            format!(
                "{what} of shape {:?} has samples but no values: pass labels [batch] or scores [batch, {num_classes}]",
                arr.dims()
            ),
        ));
    }
    if arr.rank() >= 2 && arr.last_dim() > 1 {
        if arr.last_dim() != num_classes {
            return Err(MetricsError::input(
                metric,
                format!(
                    "last dimension {} of shape {:?} is not num_classes = {num_classes}",
                    arr.last_dim(),
                    arr.dims()
                ),
            ));
        }
        argmax_rows(metric, what, arr.data(), num_classes)
    } else {
        arr.data().iter().map(|&v| to_label(metric, what, v, num_classes)).collect()
    }
}

/// Weighted mean accumulator shared by the mean-style metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct MeanAcc {
    pub total: f64,
    pub count: f64,
}

impl MeanAcc {
    /// Add `values` laid out as `n` samples of equal size, each weighted by its sample weight.
    ///
    /// Fails, changing nothing, unless the values split into `n` non-empty samples.
    pub(crate) fn add_samples(&mut self, metric: &str, values: &[f64], n: usize, w: &Option<Vec<f64>>) -> Result<()> {
        if n == 0 && values.is_empty() {
            return Ok(());
        }
        if n == 0 || values.is_empty() || values.len() % n != 0 {
            return Err(MetricsError::input(
                metric,
                format!(
                    "{} values do not split into {n} samples of at least one value each: \
                     pass inputs with a non-empty last axis",
                    values.len()
                ),
            ));
        }
        let per = values.len() / n;
        for (i, chunk) in values.chunks(per).enumerate() {
            let wi = weight_of(w, i);
            // Keras: mean over the sample's elements, then a weighted mean over samples.
            let m = chunk.iter().sum::<f64>() / per as f64;
            self.total += wi * m;
            self.count += wi;
        }
        Ok(())
    }

    /// total / count, or 0.0 when nothing (or zero total weight) was seen (Keras's `divide_no_nan`).
    pub(crate) fn value(&self) -> f64 {
        if self.count == 0.0 {
            0.0
        } else {
            self.total / self.count
        }
    }
}

/// Elements per sample of an array of `len` elements and `n` samples (at least 1).
pub(crate) fn per_sample(len: usize, n: usize) -> usize {
    len.checked_div(n).unwrap_or(0).max(1)
}
