//! What `compile` accepts: the losses ([`Losses`]: one, or one per output, with
//! `loss_weights`) and the metrics (keel-metrics' [`MetricSpec`] values or Keras names,
//! for every output or for one named output).

use crate::{Error, Result};
pub use keel_metrics::MetricSpec;
use keel_metrics::{LossKind, Metric, MetricsError};
use keel_nn::{Loss, LossFn};
use std::str::FromStr;

/// The `loss` of [`crate::KerasModel::compile`]: one loss for every output (a [`Loss`] or
/// [`LossFn`]), or one per output in the model's output order (`[Loss::Mse,
/// Loss::BinaryCrossentropy]`), with optional Keras `loss_weights`. The training loss is
/// `sum(weight_i * loss_i)` plus the weight penalties.
///
/// ```
/// use keel_nn::Loss;
/// use keel_train::Losses;
/// let one = Losses::from(Loss::MeanSquaredError);
/// let two = Losses::from([Loss::SparseCategoricalCrossentropy, Loss::MeanSquaredError]).loss_weights([1.0, 0.2]);
/// assert_eq!((one.len(), two.len()), (1, 2));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Losses {
    losses: Vec<LossFn>,
    weights: Option<Vec<f64>>,
}

impl Losses {
    /// Weight each output's loss (Keras's `loss_weights`, one per output in order;
    /// default 1 each).
    pub fn loss_weights(mut self, weights: impl Into<Vec<f64>>) -> Self {
        self.weights = Some(weights.into());
        self
    }

    /// How many losses were given (1 for one loss shared by every output).
    pub fn len(&self) -> usize {
        self.losses.len()
    }

    /// True when none was given (an error at compile).
    pub fn is_empty(&self) -> bool {
        self.losses.is_empty()
    }

    /// The loss and weight of each of `outputs` outputs; a count that does not match,
    /// a bad option or a weight that is not finite and >= 0 is an error.
    pub(crate) fn resolve(&self, outputs: usize) -> Result<Vec<(LossFn, f64)>> {
        let losses = match self.losses.len() {
            1 => vec![self.losses[0]; outputs],
            n if n == outputs => self.losses.clone(),
            n => {
                return Err(Error::invalid(
                    "compile",
                    format!(
                        "{n} losses were given for a model with {outputs} output(s); give one loss, or one per output"
                    ),
                ))
            }
        };
        let weights = self.weights.clone().unwrap_or_else(|| vec![1.0; outputs]);
        if weights.len() != outputs {
            return Err(Error::invalid(
                "compile",
                format!("{} loss_weights were given for a model with {outputs} output(s)", weights.len()),
            ));
        }
        if let Some(w) = weights.iter().find(|w| !w.is_finite() || **w < 0.0) {
            return Err(Error::invalid("compile", format!("loss_weights must be finite and >= 0, got {w}")));
        }
        for l in &losses {
            l.validate()?;
        }
        Ok(losses.into_iter().zip(weights).collect())
    }
}

/// One output as compiled: its name (for the logs), loss and loss weight.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CompiledOutput {
    pub(crate) name: String,
    pub(crate) loss: LossFn,
    pub(crate) weight: f64,
}

impl From<Loss> for Losses {
    fn from(l: Loss) -> Self {
        Losses { losses: vec![l.into()], weights: None }
    }
}

impl From<LossFn> for Losses {
    fn from(l: LossFn) -> Self {
        Losses { losses: vec![l], weights: None }
    }
}

impl<L: Into<LossFn>, const N: usize> From<[L; N]> for Losses {
    fn from(ls: [L; N]) -> Self {
        Losses { losses: ls.into_iter().map(Into::into).collect(), weights: None }
    }
}

impl<L: Into<LossFn>> From<Vec<L>> for Losses {
    fn from(ls: Vec<L>) -> Self {
        Losses { losses: ls.into_iter().map(Into::into).collect(), weights: None }
    }
}

/// A metric as given to [`crate::KerasModel::compile`]: a [`MetricSpec`]
/// (logged under its Keras name, e.g. `MetricSpec::Mae` as `"mean_absolute_error"`)
/// or a Keras name (`"accuracy"`, `"auc"`, `"mae"`, ..., logged under the name given, as Keras does).
///
/// On a model with several outputs a metric is computed on every output (logged as
/// `<output>_<name>`, as tf.keras does), or on one output when paired with the output's
/// name: `&[("class", "accuracy"), ("value", "mae")]` (Keras's metrics dict).
pub trait CompileMetric {
    /// The log name and the spec; an unknown name is an error.
    fn to_spec(&self) -> std::result::Result<(String, MetricSpec), MetricsError>;

    /// The name of the one output this metric is for (`None`: every output).
    fn output(&self) -> Option<&str> {
        None
    }
}

impl<M: CompileMetric> CompileMetric for (&str, M) {
    fn to_spec(&self) -> std::result::Result<(String, MetricSpec), MetricsError> {
        self.1.to_spec()
    }

    fn output(&self) -> Option<&str> {
        Some(self.0)
    }
}

impl CompileMetric for MetricSpec {
    fn to_spec(&self) -> std::result::Result<(String, MetricSpec), MetricsError> {
        Ok((self.name().to_string(), *self))
    }
}

impl CompileMetric for &str {
    fn to_spec(&self) -> std::result::Result<(String, MetricSpec), MetricsError> {
        // logged as written, as Keras logs `metrics=["AUC"]` under "AUC"
        Ok((self.to_string(), MetricSpec::from_str(self)?))
    }
}

impl CompileMetric for String {
    fn to_spec(&self) -> std::result::Result<(String, MetricSpec), MetricsError> {
        self.as_str().to_spec()
    }
}

/// A compiled metric: its log name, spec and the output it reads.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NamedMetric {
    name: String,
    spec: MetricSpec,
    output: usize,
    /// Keras's `weighted_metrics`: updated with the batch's sample weights.
    weighted: bool,
}

/// A compiled metric before it is bound to outputs: log name, metric, output (if one).
type MetricEntry = (String, MetricSpec, Option<usize>);

impl NamedMetric {
    /// The compiled metrics of a model whose outputs are named `outputs`: each metric of
    /// `given` on its named output or on every output, grouped by output; with several
    /// outputs each name is prefixed by its output's (`value_mae`). Repeated names get
    /// suffixes ([`NamedMetric::uniquify`]). Keras's `weighted_metrics` come after the plain
    /// ones of each output; one whose name a plain one has is logged as `weighted_<name>`
    /// (tf.keras's rule).
    pub(crate) fn resolve<M: CompileMetric, W: CompileMetric>(
        given: &[M],
        weighted: &[W],
        outputs: &[String],
    ) -> Result<Vec<NamedMetric>> {
        let plain = NamedMetric::entries(given, outputs)?;
        let mut weighted = NamedMetric::entries(weighted, outputs)?;
        for w in &mut weighted {
            if plain.iter().any(|p| p.0 == w.0) {
                w.0 = format!("weighted_{}", w.0);
            }
        }
        let mut metrics = Vec::new();
        for (i, out) in outputs.iter().enumerate() {
            for (is_weighted, list) in [(false, &plain), (true, &weighted)] {
                for (name, spec, o) in list {
                    if o.is_none_or(|o| o == i) {
                        let name = if outputs.len() > 1 { format!("{out}_{name}") } else { name.clone() };
                        metrics.push(NamedMetric { name, spec: *spec, output: i, weighted: is_weighted });
                    }
                }
            }
        }
        NamedMetric::uniquify(&mut metrics);
        Ok(metrics)
    }

    /// Each metric of `given` with its log name and the output it names, if any.
    fn entries<M: CompileMetric>(given: &[M], outputs: &[String]) -> Result<Vec<MetricEntry>> {
        let mut specs = Vec::with_capacity(given.len());
        for m in given {
            let (name, spec) = m.to_spec()?;
            let output = match m.output() {
                None => None,
                Some(o) => Some(outputs.iter().position(|n| n == o).ok_or_else(|| {
                    Error::invalid(
                        "compile",
                        format!("metric {name:?} is for output {o:?}, but the model's outputs are {outputs:?}"),
                    )
                })?),
            };
            specs.push((name, spec, output));
        }
        Ok(specs)
    }

    /// The log name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The index of the output it reads.
    pub(crate) fn output(&self) -> usize {
        self.output
    }

    /// True for Keras's `weighted_metrics` (updated with the sample weights).
    pub(crate) fn weighted(&self) -> bool {
        self.weighted
    }

    /// Give repeated log names Keras's suffixes (`accuracy`, `accuracy_1`, ...), so each
    /// metric keeps its own History entry.
    fn uniquify(metrics: &mut [NamedMetric]) {
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
    pub(crate) fn build(&self, loss: &str) -> std::result::Result<Box<dyn Metric + Send>, MetricsError> {
        Ok(self.spec.build(LossKind::from_keras_name(loss)))
    }
}

/// No metrics: `model.compile(optimizer, loss, NO_METRICS)` (a bare `&[]` has no element type to infer).
pub const NO_METRICS: &[MetricSpec] = &[];
