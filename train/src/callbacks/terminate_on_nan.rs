//! [`TerminateOnNaN`]: stop as soon as the loss is NaN or infinite.

use super::{Callback, CallbackContext, Logs};
use crate::Result;

/// Stop training at the first batch whose (running) loss is not finite.
#[derive(Debug, Clone, Default)]
pub struct TerminateOnNaN {
    stopped_batch: Option<(usize, usize)>,
    epoch: usize,
}

impl TerminateOnNaN {
    /// A new callback.
    pub fn new() -> Self {
        Self::default()
    }

    /// `(epoch, batch)` where training was terminated, if it was.
    pub fn terminated_at(&self) -> Option<(usize, usize)> {
        self.stopped_batch
    }
}

impl Callback for TerminateOnNaN {
    fn on_epoch_begin(&mut self, epoch: usize, _ctx: &mut CallbackContext<'_>) -> Result<()> {
        self.epoch = epoch;
        Ok(())
    }

    fn on_train_batch_end(&mut self, batch: usize, logs: &Logs, ctx: &mut CallbackContext<'_>) -> Result<()> {
        if let Some(loss) = logs.get("loss") {
            if !loss.is_finite() {
                if ctx.params().verbose > 0 {
                    println!("Batch {batch}: Invalid loss, terminating training");
                }
                self.stopped_batch = Some((self.epoch, batch));
                ctx.stop_training();
            }
        }
        Ok(())
    }
}
