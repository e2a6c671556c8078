//! A running weighted mean of scalars (Keras `Mean`), used for the loss.

use crate::error::{MetricsError, Result};
use crate::input::sample_weights_of;
use crate::metric::{ArrayRef, Metric};

/// Keras `Mean`: the weighted running mean of the values it is given (e.g. batch losses).
///
/// Through the [`Metric`] trait the values are `y_pred` (all its elements) and `y_true`
/// is ignored; most callers use [`update`](Mean::update) with a scalar instead.
#[derive(Debug, Clone)]
pub struct Mean {
    name: String,
    total: f64,
    count: f64,
}

impl Default for Mean {
    fn default() -> Self {
        Self::new("mean")
    }
}

impl Mean {
    /// A new running mean with this log name (e.g. `"loss"`).
    pub fn new(name: impl Into<String>) -> Self {
        Mean { name: name.into(), total: 0.0, count: 0.0 }
    }

    /// Add one value with weight 1.
    pub fn update(&mut self, value: f64) {
        self.update_weighted(value, 1.0);
    }

    /// Add one value with a weight (Keras weights a batch loss by the batch size).
    pub fn update_weighted(&mut self, value: f64, weight: f64) {
        self.total += value * weight;
        self.count += weight;
    }

    /// Add several values, optionally weighted (one weight per value, or one for all).
    pub fn update_values(&mut self, values: &[f64], weights: Option<&[f64]>) -> Result<()> {
        let w = sample_weights_of(&self.name, &["values", "sample_weight"], weights, values.len(), &[values.len()])?;
        for (i, &v) in values.iter().enumerate() {
            self.update_weighted(v, w.as_ref().map_or(1.0, |w| w[i]));
        }
        Ok(())
    }

    /// Sum of weighted values seen so far.
    pub fn total(&self) -> f64 {
        self.total
    }

    /// Sum of weights seen so far.
    pub fn count(&self) -> f64 {
        self.count
    }
}

impl Metric for Mean {
    fn name(&self) -> &str {
        &self.name
    }

    fn update_arrays(
        &mut self,
        _y_true: ArrayRef<'_>,
        y_pred: ArrayRef<'_>,
        sample_weight: Option<&[f64]>,
    ) -> Result<()> {
        let n = y_pred.n_samples();
        let w = sample_weights_of(&self.name, &["y_pred", "sample_weight"], sample_weight, n, y_pred.dims())?;
        if n == 0 {
            return Ok(());
        }
        let per = y_pred.data().len() / n;
        if per == 0 || per * n != y_pred.data().len() {
            return Err(MetricsError::input(&self.name, format!(
                "{} values in y_pred of shape {:?} do not split into {n} non-empty samples: pass at least one value per sample",
                y_pred.data().len(),
                y_pred.dims()
            )));
        }
        for (i, chunk) in y_pred.data().chunks(per).enumerate() {
            let wi = w.as_ref().map_or(1.0, |w| w[i]);
            self.update_weighted(chunk.iter().sum::<f64>() / per as f64, wi);
        }
        Ok(())
    }

    /// `total / count`, or 0.0 before any weight was seen.
    fn result(&self) -> f64 {
        if self.count == 0.0 {
            0.0
        } else {
            self.total / self.count
        }
    }

    fn reset_state(&mut self) {
        self.total = 0.0;
        self.count = 0.0;
    }
}
