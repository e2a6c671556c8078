//! Metric specifications accepted by `compile` (temporary until keel-metrics' registry lands).

use keel_metrics::{BinaryAccuracy, CategoricalAccuracy, Metric, SparseCategoricalAccuracy};

/// A metric named in `compile`, built into a streaming metric for the compiled loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricSpec {
    /// Accuracy: binary, categorical or sparse categorical according to the loss (as Keras).
    Accuracy,
}

impl MetricSpec {
    /// The log name, as Keras prints it.
    pub fn name(self) -> &'static str {
        match self {
            MetricSpec::Accuracy => "accuracy",
        }
    }

    /// Build the metric for a model trained with the loss named `loss`.
    pub fn build(self, loss: &str) -> Result<Box<dyn Metric + Send>, keel_metrics::MetricsError> {
        Ok(match (self, loss) {
            (MetricSpec::Accuracy, "binary_crossentropy") => Box::new(BinaryAccuracy::new()),
            (MetricSpec::Accuracy, "sparse_categorical_crossentropy") => Box::new(SparseCategoricalAccuracy::new()),
            (MetricSpec::Accuracy, _) => Box::new(CategoricalAccuracy::new()),
        })
    }
}
