//! [`ReduceLROnPlateau`]: lower the learning rate when a monitored value stalls.

use super::{Callback, CallbackContext, Logs, Mode};
use crate::{Error, Result};

/// Multiply the learning rate by `factor` when `monitor` has not improved
/// (by more than `min_delta`) for `patience` epochs, then wait `cooldown`
/// epochs before watching again; never go below `min_lr`. Logs the rate as
/// `learning_rate`. Keras's defaults: factor 0.1, patience 10, min_delta 1e-4.
pub struct ReduceLROnPlateau {
    monitor: String,
    factor: f64,
    patience: usize,
    mode: Mode,
    min_delta: f64,
    cooldown: usize,
    min_lr: f64,
    verbose: bool,
    // state
    maximize: bool,
    best: f64,
    wait: usize,
    cooldown_counter: usize,
}

impl ReduceLROnPlateau {
    /// Watch `monitor` (e.g. `"val_loss"`) with Keras's defaults.
    pub fn new(monitor: impl Into<String>) -> Self {
        ReduceLROnPlateau {
            monitor: monitor.into(),
            factor: 0.1,
            patience: 10,
            mode: Mode::Auto,
            min_delta: 1e-4,
            cooldown: 0,
            min_lr: 0.0,
            verbose: false,
            maximize: false,
            best: f64::INFINITY,
            wait: 0,
            cooldown_counter: 0,
        }
    }

    /// The factor the rate is multiplied by (must be < 1).
    pub fn factor(mut self, f: f64) -> Self {
        self.factor = f;
        self
    }

    /// Epochs without improvement before lowering the rate.
    pub fn patience(mut self, n: usize) -> Self {
        self.patience = n;
        self
    }

    /// Whether lower or higher is better.
    pub fn mode(mut self, m: Mode) -> Self {
        self.mode = m;
        self
    }

    /// The smallest change that counts as an improvement.
    pub fn min_delta(mut self, d: f64) -> Self {
        self.min_delta = d.abs();
        self
    }

    /// Epochs to wait after a reduction before watching again.
    pub fn cooldown(mut self, n: usize) -> Self {
        self.cooldown = n;
        self
    }

    /// The lowest rate.
    pub fn min_lr(mut self, lr: f64) -> Self {
        self.min_lr = lr;
        self
    }

    /// Print a line at each reduction.
    pub fn verbose(mut self, yes: bool) -> Self {
        self.verbose = yes;
        self
    }

    fn improved(&self, current: f64) -> bool {
        if self.maximize {
            current > self.best + self.min_delta
        } else {
            current < self.best - self.min_delta
        }
    }
}

impl Callback for ReduceLROnPlateau {
    fn on_train_begin(&mut self, _ctx: &mut CallbackContext<'_>) -> Result<()> {
        if !(self.factor < 1.0 && self.factor >= 0.0) {
            return Err(Error::invalid(
                "ReduceLROnPlateau",
                format!("factor must be in [0, 1) (it multiplies the rate), got {}", self.factor),
            ));
        }
        self.maximize = self.mode.maximizes(&self.monitor);
        self.best = if self.maximize { f64::NEG_INFINITY } else { f64::INFINITY };
        self.wait = 0;
        self.cooldown_counter = 0;
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, ctx: &mut CallbackContext<'_>) -> Result<()> {
        logs.insert("learning_rate", ctx.learning_rate());
        let Some(current) = logs.get(&self.monitor) else {
            eprintln!("ReduceLROnPlateau: \"{}\" is not in the logs; skipping", self.monitor);
            return Ok(());
        };
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.wait = 0;
        }
        if self.improved(current) {
            self.best = current;
            self.wait = 0;
        } else if self.cooldown_counter == 0 {
            self.wait += 1;
            if self.wait >= self.patience {
                let old = ctx.learning_rate();
                if old > self.min_lr {
                    let new = (old * self.factor).max(self.min_lr);
                    ctx.set_learning_rate(new)?;
                    if self.verbose {
                        println!("Epoch {}: ReduceLROnPlateau reducing learning rate to {new}.", epoch + 1);
                    }
                    self.cooldown_counter = self.cooldown;
                    self.wait = 0;
                }
            }
        }
        Ok(())
    }
}
