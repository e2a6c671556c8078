//! Shared input checks and conversions (crate-private).

use crate::error::{MetricsError, Result};
use crate::metric::ArrayRef;

/// Per-sample weights: `None` stays `None`; a single weight broadcasts; otherwise one per sample.
pub(crate) fn sample_weights(metric: &str, w: Option<&[f64]>, n: usize, dims: &[usize]) -> Result<Option<Vec<f64>>> {
    match w {
        None => Ok(None),
        Some(w) if w.len() == n => Ok(Some(w.to_vec())),
        Some(w) if w.len() == 1 => Ok(Some(vec![w[0]; n])),
        Some(w) => Err(MetricsError::shape(
            metric,
            dims,
            &[w.len()],
            format!("sample_weight needs one weight per sample ({n}) or a single weight"),
        )),
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

/// Index of the first maximum of each row of `cols` values (NumPy's argmax); errors on NaN.
pub(crate) fn argmax_rows(metric: &str, data: &[f64], cols: usize) -> Result<Vec<usize>> {
    if cols == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(data.len() / cols);
    for row in data.chunks(cols) {
        let mut best = 0;
        for (j, &v) in row.iter().enumerate() {
            if v.is_nan() {
                return Err(MetricsError::input(metric, "NaN score in y_pred"));
            }
            if v > row[best] {
                best = j;
            }
        }
        out.push(best);
    }
    Ok(out)
}

/// A value that must be a class label in `0..num_classes`.
pub(crate) fn to_label(metric: &str, v: f64, num_classes: usize) -> Result<usize> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && (v as usize) < num_classes {
        Ok(v as usize)
    } else {
        Err(MetricsError::input(metric, format!("label {v} is not an integer in 0..{num_classes}")))
    }
}

/// Class labels from `arr`: the argmax of the last axis when it holds scores or one-hot rows
/// (rank >= 2 and last dimension > 1), else the values themselves as labels.
pub(crate) fn labels_of(metric: &str, arr: &ArrayRef<'_>, num_classes: usize) -> Result<Vec<usize>> {
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
        argmax_rows(metric, arr.data(), num_classes)
    } else {
        arr.data().iter().map(|&v| to_label(metric, v, num_classes)).collect()
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
    pub(crate) fn add_samples(&mut self, values: &[f64], n: usize, w: &Option<Vec<f64>>) {
        if n == 0 || values.is_empty() {
            return;
        }
        let per = values.len() / n;
        if per == 0 {
            return;
        }
        for (i, chunk) in values.chunks(per).enumerate().take(n) {
            let wi = weight_of(w, i);
            // Keras: mean over the sample's elements, then a weighted mean over samples.
            let m = chunk.iter().sum::<f64>() / per as f64;
            self.total += wi * m;
            self.count += wi;
        }
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
