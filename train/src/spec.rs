//! The metrics `compile` accepts: keel-metrics' [`MetricSpec`] values or Keras names.

pub use keel_metrics::MetricSpec;
use keel_metrics::{LossKind, Metric, MetricsError};
use std::str::FromStr;

/// A metric as given to [`crate::KerasModel::compile`]: a [`MetricSpec`]
/// (logged under its Keras name, e.g. `MetricSpec::Mae` as `"mean_absolute_error"`)
/// or a Keras name (`"accuracy"`, `"auc"`, `"mae"`, ..., logged under the name given, as Keras does).
pub trait CompileMetric {
    /// The log name and the spec; an unknown name is an error.
    fn to_spec(&self) -> Result<(String, MetricSpec), MetricsError>;
}

impl CompileMetric for MetricSpec {
    fn to_spec(&self) -> Result<(String, MetricSpec), MetricsError> {
        Ok((self.name().to_string(), *self))
    }
}

impl CompileMetric for &str {
    fn to_spec(&self) -> Result<(String, MetricSpec), MetricsError> {
        Ok((self.to_ascii_lowercase(), MetricSpec::from_str(self)?))
    }
}

impl CompileMetric for String {
    fn to_spec(&self) -> Result<(String, MetricSpec), MetricsError> {
        self.as_str().to_spec()
    }
}

/// A compiled metric: its log name and spec.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NamedMetric {
    name: String,
    spec: MetricSpec,
}

impl NamedMetric {
    pub(crate) fn new(m: &impl CompileMetric) -> Result<Self, MetricsError> {
        let (name, spec) = m.to_spec()?;
        Ok(NamedMetric { name, spec })
    }

    /// The log name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Give repeated log names Keras's suffixes (`accuracy`, `accuracy_1`, ...), so each
    /// metric keeps its own History entry.
    pub(crate) fn uniquify(metrics: &mut [NamedMetric]) {
        let mut seen = std::collections::HashSet::new();
        for m in metrics.iter_mut() {
            let base = m.name.clone();
            let mut i = 0;
            while !seen.insert(m.name.clone()) {
                i += 1;
                m.name = format!("{base}_{i}");
            }
        }
    }

    /// Build the streaming metric for a model trained with the loss named `loss`.
    pub(crate) fn build(&self, loss: &str) -> Result<Box<dyn Metric + Send>, MetricsError> {
        Ok(self.spec.build(LossKind::from_keras_name(loss)))
    }
}

/// No metrics: `model.compile(optimizer, loss, NO_METRICS)` (a bare `&[]` has no element type to infer).
pub const NO_METRICS: &[MetricSpec] = &[];
