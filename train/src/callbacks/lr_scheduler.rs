//! [`LearningRateScheduler`]: set the learning rate from a function of the epoch.

use super::{Callback, CallbackContext, Logs};
use crate::{Error, Result};

/// At the start of every epoch, set the learning rate to `schedule(epoch, current_lr)`.
///
/// The rate used is logged as `learning_rate` at the end of the epoch, as in Keras.
pub struct LearningRateScheduler {
    schedule: Box<dyn FnMut(usize, f64) -> f64>,
    verbose: bool,
}

impl LearningRateScheduler {
    /// Use `schedule(epoch, lr) -> new lr` (epochs from 0).
    pub fn new(schedule: impl FnMut(usize, f64) -> f64 + 'static) -> Self {
        LearningRateScheduler { schedule: Box::new(schedule), verbose: false }
    }

    /// Print the rate set at each epoch.
    pub fn verbose(mut self, yes: bool) -> Self {
        self.verbose = yes;
        self
    }
}

impl Callback for LearningRateScheduler {
    fn on_epoch_begin(&mut self, epoch: usize, ctx: &mut CallbackContext<'_>) -> Result<()> {
        let lr = (self.schedule)(epoch, ctx.learning_rate());
        if !lr.is_finite() || lr < 0.0 {
            return Err(Error::invalid(
                "LearningRateScheduler",
                format!("the schedule returned {lr} for epoch {epoch}; a learning rate must be finite and >= 0"),
            ));
        }
        ctx.set_learning_rate(lr)?;
        if self.verbose {
            println!("Epoch {}: LearningRateScheduler setting learning rate to {lr}.", epoch + 1);
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, _epoch: usize, logs: &mut Logs, ctx: &mut CallbackContext<'_>) -> Result<()> {
        logs.insert("learning_rate", ctx.learning_rate());
        Ok(())
    }
}
