//! [`EarlyStopping`]: stop when a monitored value stops improving (Keras 3 semantics).

use super::{Callback, CallbackContext, Logs, Mode};
use crate::Result;
use keel_tensor::Tensor;
use std::collections::BTreeMap;

/// Stop training when `monitor` has not improved for `patience` epochs.
///
/// An epoch improves on the best so far when it is better by more than
/// `min_delta`. With a `baseline`, the patience counter only restarts on
/// epochs that also beat the baseline. With `restore_best_weights`, the
/// weights of the best epoch are put back when training ends (as Keras 3 does,
/// also when training ran to the last epoch).
pub struct EarlyStopping {
    monitor: String,
    min_delta: f64,
    patience: usize,
    mode: Mode,
    baseline: Option<f64>,
    restore_best_weights: bool,
    start_from_epoch: usize,
    verbose: bool,
    // state
    maximize: bool,
    wait: usize,
    best: f64,
    best_epoch: Option<usize>,
    best_weights: Option<BTreeMap<String, Tensor>>,
    stopped_epoch: Option<usize>,
}

impl EarlyStopping {
    /// Watch `monitor` (e.g. `"val_loss"`) with Keras's defaults: min_delta 0, patience 0, mode auto.
    pub fn new(monitor: impl Into<String>) -> Self {
        EarlyStopping {
            monitor: monitor.into(),
            min_delta: 0.0,
            patience: 0,
            mode: Mode::Auto,
            baseline: None,
            restore_best_weights: false,
            start_from_epoch: 0,
            verbose: false,
            maximize: false,
            wait: 0,
            best: f64::INFINITY,
            best_epoch: None,
            best_weights: None,
            stopped_epoch: None,
        }
    }

    /// The smallest change that counts as an improvement.
    pub fn min_delta(mut self, d: f64) -> Self {
        self.min_delta = d.abs();
        self
    }

    /// Epochs without improvement before stopping.
    pub fn patience(mut self, n: usize) -> Self {
        self.patience = n;
        self
    }

    /// Whether lower or higher is better.
    pub fn mode(mut self, m: Mode) -> Self {
        self.mode = m;
        self
    }

    /// A value the monitored quantity must beat for the patience counter to restart.
    pub fn baseline(mut self, b: f64) -> Self {
        self.baseline = Some(b);
        self
    }

    /// Put the best epoch's weights back when training ends.
    pub fn restore_best_weights(mut self, yes: bool) -> Self {
        self.restore_best_weights = yes;
        self
    }

    /// Ignore the epochs before this one (warm-up).
    pub fn start_from_epoch(mut self, e: usize) -> Self {
        self.start_from_epoch = e;
        self
    }

    /// Print a line when stopping and when restoring weights.
    pub fn verbose(mut self, yes: bool) -> Self {
        self.verbose = yes;
        self
    }

    /// The epoch (0-based) at which training was stopped, if it was.
    pub fn stopped_epoch(&self) -> Option<usize> {
        self.stopped_epoch
    }

    /// The best epoch (0-based) seen, if any.
    pub fn best_epoch(&self) -> Option<usize> {
        self.best_epoch
    }

    /// The best monitored value seen (±inf before any).
    pub fn best(&self) -> f64 {
        self.best
    }

    fn is_improvement(&self, value: f64, reference: f64) -> bool {
        if self.maximize {
            value - self.min_delta > reference
        } else {
            value + self.min_delta < reference
        }
    }
}

impl Callback for EarlyStopping {
    fn on_train_begin(&mut self, _ctx: &mut CallbackContext<'_>) -> Result<()> {
        self.maximize = self.mode.maximizes(&self.monitor);
        self.wait = 0;
        self.best = if self.maximize { f64::NEG_INFINITY } else { f64::INFINITY };
        self.best_epoch = None;
        self.best_weights = None;
        self.stopped_epoch = None;
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, ctx: &mut CallbackContext<'_>) -> Result<()> {
        let Some(current) = logs.get(&self.monitor) else {
            eprintln!(
                "EarlyStopping: \"{}\" is not in the logs (available: {}); skipping",
                self.monitor,
                logs.iter().map(|(k, _)| k).collect::<Vec<_>>().join(", ")
            );
            return Ok(());
        };
        if epoch < self.start_from_epoch {
            return Ok(());
        }
        if self.restore_best_weights && self.best_weights.is_none() {
            // until something improves, the first watched epoch is the best
            self.best_weights = Some(ctx.weights()?);
            self.best_epoch = Some(epoch);
        }
        self.wait += 1;
        if self.is_improvement(current, self.best) {
            self.best = current;
            self.best_epoch = Some(epoch);
            if self.restore_best_weights {
                self.best_weights = Some(ctx.weights()?);
            }
            if self.baseline.is_none_or(|b| self.is_improvement(current, b)) {
                self.wait = 0;
            }
            return Ok(());
        }
        if self.wait >= self.patience && epoch > 0 {
            self.stopped_epoch = Some(epoch);
            ctx.stop_training();
        }
        Ok(())
    }

    fn on_train_end(&mut self, ctx: &mut CallbackContext<'_>) -> Result<()> {
        if let (Some(e), true) = (self.stopped_epoch, self.verbose) {
            println!("Epoch {}: early stopping", e + 1);
        }
        if self.restore_best_weights {
            if let Some(w) = &self.best_weights {
                if self.verbose {
                    println!(
                        "Restoring model weights from the end of the best epoch: {}.",
                        self.best_epoch.map_or(0, |e| e + 1)
                    );
                }
                ctx.set_weights(w)?;
            }
        }
        Ok(())
    }
}
