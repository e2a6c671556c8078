//! Per-batch results of `fit` and `evaluate`: [`EpochLogs`] (the running loss mean and
//! the streaming metrics) and [`StepQueue`], which holds a few batches' results on the
//! model's device and reads them back together.
//!
//! Reading a value from a GPU makes the host wait until the GPU's queue is empty; the
//! GPU then idles until the host queues the next step. Reading once per `n` steps
//! (Keras's `steps_per_execution`) lets the host run ahead. The results are folded into
//! the logs in batch order, so the logs are the same for every `n`.

use crate::spec::NamedMetric;
use crate::Result;
use keel_metrics::Metric;
use keel_nn::LossFn;
use keel_tensor::{DType, Device, Tensor};

/// Running per-epoch state: mean loss (weighted by batch size) and metrics.
pub(crate) struct EpochLogs {
    loss_sum: f64,
    seen: f64,
    /// Log name (as given to `compile`, e.g. "accuracy") and the streaming metric.
    metrics: Vec<(String, Box<dyn Metric + Send>)>,
}

impl EpochLogs {
    /// Fresh logs for the compiled metrics (an unknown name or combination is an error).
    pub(crate) fn new(specs: &[NamedMetric], loss: &LossFn) -> Result<Self> {
        let metrics =
            specs.iter().map(|s| Ok((s.name().to_string(), s.build(loss.loss.name())?))).collect::<Result<Vec<_>>>()?;
        Ok(EpochLogs { loss_sum: 0.0, seen: 0.0, metrics })
    }

    /// Fold in one batch (host tensors). The metrics are unweighted, as Keras's compiled
    /// metrics are: `class_weight`/`sample_weight` weight the loss only.
    fn update(&mut self, loss: f64, batch: usize, y_true: &Tensor, y_pred: &Tensor) -> Result<()> {
        self.loss_sum += loss * batch as f64;
        self.seen += batch as f64;
        for (_, m) in &mut self.metrics {
            m.update_state(y_true, y_pred, None)?;
        }
        Ok(())
    }

    /// The logs so far, each name prefixed (`""` or `"val_"`).
    pub(crate) fn logs(&self, prefix: &str) -> Vec<(String, f64)> {
        let mut out = vec![(format!("{prefix}loss"), self.loss_sum / self.seen.max(1.0))];
        for (name, m) in &self.metrics {
            out.push((format!("{prefix}{name}"), m.result()));
        }
        out
    }
}

/// A batch's loss: read already, or still a 0-d tensor on the device.
pub(crate) enum BatchLoss {
    /// The value, read right after the step (`steps_per_execution` 1).
    Read(f64),
    /// The 0-d loss tensor, read when the queue is flushed.
    Unread(Tensor),
}

/// One batch's results, possibly still on the device.
struct StepResult {
    loss: BatchLoss,
    batch: usize,
    y_true: Tensor,
    y_pred: Tensor,
}

/// Batch results waiting to be read back, at most `capacity` of them.
pub(crate) struct StepQueue {
    capacity: usize,
    /// Whether predictions and targets are needed (only for metrics).
    keep_predictions: bool,
    steps: Vec<StepResult>,
}

impl StepQueue {
    /// A queue that [`StepQueue::is_full`] after `capacity` batches (at least 1).
    pub(crate) fn new(capacity: usize, logs: &EpochLogs) -> Self {
        StepQueue { capacity: capacity.max(1), keep_predictions: !logs.metrics.is_empty(), steps: Vec::new() }
    }

    /// Queue a batch: its loss and, for the metrics, its targets and predictions (on any
    /// device).
    pub(crate) fn push(&mut self, loss: BatchLoss, batch: usize, y_true: &Tensor, y_pred: &Tensor) {
        let keep = |t: &Tensor| if self.keep_predictions { t.clone() } else { Tensor::scalar(0.0f32) };
        self.steps.push(StepResult { loss, batch, y_true: keep(y_true), y_pred: keep(y_pred) });
    }

    /// True when `capacity` batches wait.
    pub(crate) fn is_full(&self) -> bool {
        self.steps.len() >= self.capacity
    }

    /// Read everything back (one device-to-host copy per kind of value) and fold it into
    /// `logs` in batch order.
    pub(crate) fn flush(&mut self, logs: &mut EpochLogs) -> Result<()> {
        let steps = std::mem::take(&mut self.steps);
        if steps.is_empty() {
            return Ok(());
        }
        let unread = steps.iter().filter_map(|s| match &s.loss {
            BatchLoss::Unread(t) => Some(t.clone()),
            BatchLoss::Read(_) => None,
        });
        let mut values = to_host_all(&unread.collect::<Vec<_>>())?.into_iter();
        let mut losses = Vec::with_capacity(steps.len());
        for s in &steps {
            losses.push(match &s.loss {
                BatchLoss::Read(v) => *v,
                BatchLoss::Unread(_) => {
                    let t = values.next().ok_or_else(|| lost("a loss"))?;
                    t.to_dtype(DType::F64)?.to_scalar::<f64>()?
                }
            });
        }
        if !self.keep_predictions {
            for (s, loss) in steps.iter().zip(losses) {
                logs.update(loss, s.batch, &s.y_true, &s.y_pred)?;
            }
            return Ok(());
        }
        let column = |f: fn(&StepResult) -> &Tensor| -> Result<Vec<Tensor>> {
            to_host_all(&steps.iter().map(|s| f(s).clone()).collect::<Vec<_>>())
        };
        let (y_true, y_pred) = (column(|s| &s.y_true)?, column(|s| &s.y_pred)?);
        if y_true.len() != steps.len() || y_pred.len() != steps.len() {
            return Err(lost("a prediction"));
        }
        for (i, s) in steps.iter().enumerate() {
            logs.update(losses[i], s.batch, &y_true[i], &y_pred[i])?;
        }
        Ok(())
    }
}

/// Host copies of `ts`, which share a dtype (any shapes): the tensors on a device are
/// flattened and joined there, copied back in one transfer, then cut and reshaped.
fn to_host_all(ts: &[Tensor]) -> Result<Vec<Tensor>> {
    let flat: Vec<Tensor> = ts
        .iter()
        .filter(|t| t.device() != Device::Cpu)
        .map(|t| t.reshape([t.elem_count()]))
        .collect::<std::result::Result<_, _>>()?;
    let joined = match flat.as_slice() {
        [] => None,
        [one] => Some(one.to_device(&Device::Cpu)?),
        many => Some(Tensor::concat(many, 0)?.to_device(&Device::Cpu)?),
    };
    let mut start = 0;
    ts.iter()
        .map(|t| {
            let Some(j) = joined.as_ref().filter(|_| t.device() != Device::Cpu) else { return Ok(t.clone()) };
            let n = t.elem_count();
            let part = j.narrow(0, start, n)?.reshape(t.shape().clone())?;
            start += n;
            Ok(part)
        })
        .collect()
}

/// A 0-d loss as f64 on the host (one device-to-host copy for a GPU loss).
pub(crate) fn host_scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// The error for a queued result that did not come back (a bug in this module, not the input).
fn lost(what: &str) -> crate::Error {
    crate::Error::invalid("fit", format!("internal error: {what} queued on the device was not read back"))
}
