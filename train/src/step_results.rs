//! Per-batch results of `fit` and `evaluate`: [`EpochLogs`] (the running loss mean and
//! the streaming metrics) and [`StepQueue`], which holds a few batches' results on the
//! model's device and reads them back together.
//!
//! Reading a value from a GPU makes the host wait until the GPU's queue is empty; the
//! GPU then idles until the host queues the next step. Reading once per `n` steps
//! (Keras's `steps_per_execution`) lets the host run ahead. The results are folded into
//! the logs in batch order, so the logs are the same for every `n`.

use crate::spec::{CompiledOutput, NamedMetric};
use crate::Result;
use keel_metrics::Metric;
use keel_tensor::{DType, Device, Tensor};

/// Running per-epoch state: mean loss (weighted by batch size), each output's mean loss
/// (models with several outputs) and the metrics.
pub(crate) struct EpochLogs {
    /// Sum of batch-size-weighted losses: the total, then each output's (several outputs).
    loss_sums: Vec<f64>,
    seen: f64,
    /// The log names of `loss_sums` after the first (`<output>_loss`).
    output_losses: Vec<String>,
    /// Log name (as given to `compile`, e.g. "accuracy"), the output it reads, the metric,
    /// and whether it takes the sample weights (Keras's `weighted_metrics`).
    metrics: Vec<(String, usize, Box<dyn Metric + Send>, bool)>,
    /// Per metric: a batch's predictions held NaN (a diverged model), so the metric's
    /// result for this epoch is NaN; training goes on (TerminateOnNaN stops it).
    poisoned: Vec<bool>,
}

impl EpochLogs {
    /// Fresh logs for the compiled outputs and metrics (an unknown name or combination is
    /// an error).
    pub(crate) fn new(specs: &[NamedMetric], outputs: &[CompiledOutput]) -> Result<Self> {
        let metrics = specs
            .iter()
            .map(|s| {
                let loss = outputs.get(s.output()).map(|o| o.loss.loss.name()).unwrap_or("");
                Ok((s.name().to_string(), s.output(), s.build(loss)?, s.weighted()))
            })
            .collect::<Result<Vec<_>>>()?;
        let output_losses: Vec<String> =
            if outputs.len() > 1 { outputs.iter().map(|o| format!("{}_loss", o.name)).collect() } else { Vec::new() };
        let poisoned = vec![false; metrics.len()];
        Ok(EpochLogs { loss_sums: vec![0.0; 1 + output_losses.len()], seen: 0.0, output_losses, metrics, poisoned })
    }

    /// Fold in one batch (host tensors, one per output, and the batch's sample weights if
    /// any). The metrics are unweighted, as Keras's `metrics=` are (`class_weight` and
    /// `sample_weight` weight the loss), except the `weighted_metrics`.
    fn update(
        &mut self,
        losses: &[f64],
        batch: usize,
        (y_true, y_pred, masks): (&[Tensor], &[Tensor], &[Option<Tensor>]),
        weights: Option<&Tensor>,
    ) -> Result<()> {
        for (sum, l) in self.loss_sums.iter_mut().zip(losses) {
            *sum += l * batch as f64;
        }
        self.seen += batch as f64;
        // keel-metrics refuses NaN scores; a model that diverged gives NaN predictions and
        // its metrics are then NaN for the epoch, as its loss is, rather than ending `fit`
        let mut nan_in: Vec<Option<bool>> = vec![None; y_pred.len()];
        for ((_, o, m, weighted), poisoned) in self.metrics.iter_mut().zip(&mut self.poisoned) {
            let (Some(t), Some(p)) = (y_true.get(*o), y_pred.get(*o)) else { return Err(lost("a prediction")) };
            let nan = match nan_in[*o] {
                Some(nan) => nan,
                None => {
                    let nan = p.dtype().is_float() && p.to_vec_f64()?.iter().any(|v| v.is_nan());
                    nan_in[*o] = Some(nan);
                    nan
                }
            };
            *poisoned |= nan;
            if !*poisoned {
                let w = if *weighted { weights } else { None };
                match masks.get(*o).and_then(|m| masked(t, p, m.as_ref(), w).transpose()) {
                    Some(flat) => {
                        let (t, p, w) = flat?;
                        m.update_state(&t, &p, Some(&w))?;
                    }
                    None => m.update_state(t, p, w)?,
                }
            }
        }
        Ok(())
    }

    /// The logs so far, each name prefixed (`""` or `"val_"`): `loss`, each output's
    /// `<output>_loss` (several outputs), then the metrics.
    pub(crate) fn logs(&self, prefix: &str) -> Vec<(String, f64)> {
        let mean = |sum: f64| sum / self.seen.max(1.0);
        let mut out = vec![(format!("{prefix}loss"), mean(self.loss_sums[0]))];
        for (name, sum) in self.output_losses.iter().zip(&self.loss_sums[1..]) {
            out.push((format!("{prefix}{name}"), mean(*sum)));
        }
        for ((name, _, m, _), poisoned) in self.metrics.iter().zip(&self.poisoned) {
            out.push((format!("{prefix}{name}"), if *poisoned { f64::NAN } else { m.result() }));
        }
        out
    }
}

/// The targets, predictions and weights of a masked output as one sample per position, for
/// a metric (Keras's metrics count only the unmasked positions): predictions `[B, T, .., k]`
/// become `[B*T*.., k]`, targets likewise (dense ones) or `[B*T*..]` (sparse ones), and the
/// weights the mask (0/1) times the sample weights (also `[B, k]` with a mask `[B]`, e.g.
/// after `Masking` on `[B, features]`). `None` when there is no mask or it does
/// not have the predictions' leading axes.
fn masked(
    y_true: &Tensor,
    y_pred: &Tensor,
    mask: Option<&Tensor>,
    weights: Option<&Tensor>,
) -> Result<Option<(Tensor, Tensor, Tensor)>> {
    let Some(mask) = mask else { return Ok(None) };
    let lead = &y_pred.dims()[..y_pred.rank().saturating_sub(1)];
    if y_pred.rank() < 2 || mask.dims() != lead {
        return Ok(None);
    }
    let positions = mask.elem_count();
    let k = y_pred.elem_count() / positions.max(1);
    let p = y_pred.reshape([positions, k])?;
    let t =
        if y_true.elem_count() == positions { y_true.reshape([positions])? } else { y_true.reshape([positions, k])? };
    let mut w = mask.ne(&mask.scalar_like(0.0)?)?.to_dtype(DType::F64)?;
    if let Some(sw) = weights {
        let mut shape = vec![sw.elem_count()];
        shape.resize(lead.len(), 1);
        w = w.mul(&sw.to_dtype(DType::F64)?.reshape(shape)?)?;
    }
    Ok(Some((t, p, w.reshape([positions])?)))
}

/// A batch's losses (the total, then each output's when several): read already, or still
/// 0-d tensors on the device.
pub(crate) enum BatchLoss {
    /// The values, read right after the step (`steps_per_execution` 1).
    Read(Vec<f64>),
    /// The 0-d loss tensors, read when the queue is flushed.
    Unread(Vec<Tensor>),
}

impl BatchLoss {
    /// Read `losses` (0-d, any device) back now, in one copy.
    pub(crate) fn read(losses: &[Tensor]) -> Result<Vec<f64>> {
        to_host_all(losses)?.iter().map(|t| Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)).collect()
    }
}

/// One batch's results, possibly still on the device.
struct StepResult {
    loss: BatchLoss,
    batch: usize,
    /// Targets and predictions, one per output.
    y_true: Vec<Tensor>,
    y_pred: Vec<Tensor>,
    /// The sample weights, kept for the weighted metrics.
    weights: Option<Tensor>,
    /// The outputs' masks (Keras's mask propagation), for the metrics.
    masks: Vec<Option<Tensor>>,
}

/// Batch results waiting to be read back, at most `capacity` of them.
pub(crate) struct StepQueue {
    capacity: usize,
    /// Whether predictions and targets are needed (only for metrics).
    keep_predictions: bool,
    /// Whether sample weights are needed (only for weighted metrics).
    keep_weights: bool,
    steps: Vec<StepResult>,
}

impl StepQueue {
    /// A queue that [`StepQueue::is_full`] after `capacity` batches (at least 1).
    pub(crate) fn new(capacity: usize, logs: &EpochLogs) -> Self {
        StepQueue {
            capacity: capacity.max(1),
            keep_predictions: !logs.metrics.is_empty(),
            keep_weights: logs.metrics.iter().any(|m| m.3),
            steps: Vec::new(),
        }
    }

    /// Queue a batch: its losses and, for the metrics, its targets and predictions (one
    /// per output, on any device) and its sample weights (`[batch]`, any device).
    pub(crate) fn push(
        &mut self,
        loss: BatchLoss,
        batch: usize,
        (y_true, y_pred, masks): (&[Tensor], &[Tensor], &[Option<Tensor>]),
        weights: Option<&Tensor>,
    ) {
        let keep = |ts: &[Tensor]| if self.keep_predictions { ts.to_vec() } else { Vec::new() };
        let weights = weights.filter(|_| self.keep_weights).cloned();
        let masks = if self.keep_predictions { masks.to_vec() } else { Vec::new() };
        self.steps.push(StepResult { loss, batch, y_true: keep(y_true), y_pred: keep(y_pred), weights, masks });
    }

    /// True when `capacity` batches wait.
    pub(crate) fn is_full(&self) -> bool {
        self.steps.len() >= self.capacity
    }

    /// Read everything back (one device-to-host copy per kind of value: the losses, then
    /// each output's targets and predictions) and fold it into `logs` in batch order.
    pub(crate) fn flush(&mut self, logs: &mut EpochLogs) -> Result<()> {
        let steps = std::mem::take(&mut self.steps);
        if steps.is_empty() {
            return Ok(());
        }
        let unread: Vec<Tensor> = steps
            .iter()
            .flat_map(|s| match &s.loss {
                BatchLoss::Unread(ts) => ts.clone(),
                BatchLoss::Read(_) => Vec::new(),
            })
            .collect();
        let mut values = BatchLoss::read(&unread)?.into_iter();
        let mut losses = Vec::with_capacity(steps.len());
        for s in &steps {
            losses.push(match &s.loss {
                BatchLoss::Read(v) => v.clone(),
                BatchLoss::Unread(ts) => {
                    let v: Vec<f64> = values.by_ref().take(ts.len()).collect();
                    if v.len() != ts.len() {
                        return Err(lost("a loss"));
                    }
                    v
                }
            });
        }
        if !self.keep_predictions {
            for (s, loss) in steps.iter().zip(losses) {
                logs.update(&loss, s.batch, (&[], &[], &[]), None)?;
            }
            return Ok(());
        }
        let outputs = steps[0].y_true.len();
        // per output, every step's tensor (they share a dtype), read back in one copy
        let column = |f: fn(&StepResult) -> &[Tensor], o: usize| -> Result<Vec<Tensor>> {
            let ts = steps.iter().map(|s| f(s).get(o).cloned().ok_or_else(|| lost("a prediction")));
            let host = to_host_all(&ts.collect::<Result<Vec<_>>>()?)?;
            if host.len() != steps.len() {
                return Err(lost("a prediction"));
            }
            Ok(host)
        };
        let mut y_true = Vec::with_capacity(outputs);
        let mut y_pred = Vec::with_capacity(outputs);
        for o in 0..outputs {
            y_true.push(column(|s| &s.y_true, o)?);
            y_pred.push(column(|s| &s.y_pred, o)?);
        }
        // the weights, where every step has them, in one copy too
        let weights: Vec<Option<Tensor>> = match steps.iter().map(|s| s.weights.clone()).collect::<Option<Vec<_>>>() {
            Some(ws) => {
                let host = to_host_all(&ws)?;
                if host.len() != steps.len() {
                    return Err(lost("a sample weight"));
                }
                host.into_iter().map(Some).collect()
            }
            None => steps
                .iter()
                .map(|s| s.weights.as_ref().map(|w| w.to_device(&Device::Cpu)).transpose())
                .collect::<std::result::Result<_, _>>()?,
        };
        // per output, every step's mask (a masked output has one at every step), in one copy
        let mut masks: Vec<Vec<Option<Tensor>>> = Vec::with_capacity(outputs);
        for o in 0..outputs {
            let column: Option<Vec<Tensor>> = steps.iter().map(|s| s.masks.get(o).cloned().flatten()).collect();
            masks.push(match column {
                Some(ms) => {
                    let host = to_host_all(&ms)?;
                    if host.len() != steps.len() {
                        return Err(lost("a mask"));
                    }
                    host.into_iter().map(Some).collect()
                }
                None => steps
                    .iter()
                    .map(|s| s.masks.get(o).cloned().flatten().map(|m| m.to_device(&Device::Cpu)).transpose())
                    .collect::<std::result::Result<_, _>>()?,
            });
        }
        for (i, s) in steps.iter().enumerate() {
            let t: Vec<Tensor> = y_true.iter().map(|c| c[i].clone()).collect();
            let p: Vec<Tensor> = y_pred.iter().map(|c| c[i].clone()).collect();
            let m: Vec<Option<Tensor>> = masks.iter().map(|c| c[i].clone()).collect();
            logs.update(&losses[i], s.batch, (&t, &p, &m), weights[i].as_ref())?;
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

/// The error for a queued result that did not come back (a bug in this module, not the input).
fn lost(what: &str) -> crate::Error {
    crate::Error::invalid("fit", format!("internal error: {what} queued on the device was not read back"))
}
