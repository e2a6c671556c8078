//! [`LambdaCallback`]: a callback made of closures, for one-off hooks.

use super::{Callback, CallbackContext, Logs};
use crate::Result;

/// A hook on an epoch or a batch: its index and the logs.
type IndexHook<'a> = Box<dyn FnMut(usize, &Logs) + 'a>;
/// A hook at the start or the end of training.
type TrainHook<'a> = Box<dyn FnMut() + 'a>;

/// A callback built from closures (Keras's `LambdaCallback`): each hook is optional and
/// gets what Keras's gets (an epoch or batch index and the logs). For more (the weights,
/// the learning rate, stopping) implement [`Callback`], whose hooks also get a
/// [`CallbackContext`].
///
/// ```
/// use keel_train::callbacks::LambdaCallback;
/// use keel_train::Fit;
/// let mut losses = Vec::new();
/// let cb = LambdaCallback::new().on_epoch_end(|epoch, logs| {
///     losses.push((epoch, logs.get("loss")));
/// });
/// let cfg = Fit::new().epochs(3).callback(cb);
/// # drop(cfg);
/// ```
#[derive(Default)]
pub struct LambdaCallback<'a> {
    train_begin: Option<TrainHook<'a>>,
    train_end: Option<TrainHook<'a>>,
    epoch_begin: Option<Box<dyn FnMut(usize) + 'a>>,
    epoch_end: Option<IndexHook<'a>>,
    batch_end: Option<IndexHook<'a>>,
}

impl<'a> LambdaCallback<'a> {
    /// A callback with no hooks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Run `f()` before the first epoch.
    pub fn on_train_begin(mut self, f: impl FnMut() + 'a) -> Self {
        self.train_begin = Some(Box::new(f));
        self
    }

    /// Run `f()` after the last epoch.
    pub fn on_train_end(mut self, f: impl FnMut() + 'a) -> Self {
        self.train_end = Some(Box::new(f));
        self
    }

    /// Run `f(epoch)` before each epoch (numbered from 0).
    pub fn on_epoch_begin(mut self, f: impl FnMut(usize) + 'a) -> Self {
        self.epoch_begin = Some(Box::new(f));
        self
    }

    /// Run `f(epoch, logs)` after each epoch, with its train and validation logs.
    pub fn on_epoch_end(mut self, f: impl FnMut(usize, &Logs) + 'a) -> Self {
        self.epoch_end = Some(Box::new(f));
        self
    }

    /// Run `f(batch, logs)` after each training batch (each execution, with
    /// `steps_per_execution`), with the running means of the epoch so far.
    pub fn on_train_batch_end(mut self, f: impl FnMut(usize, &Logs) + 'a) -> Self {
        self.batch_end = Some(Box::new(f));
        self
    }
}

impl Callback for LambdaCallback<'_> {
    fn on_train_begin(&mut self, _ctx: &mut CallbackContext<'_>) -> Result<()> {
        if let Some(f) = &mut self.train_begin {
            f();
        }
        Ok(())
    }

    fn on_train_end(&mut self, _ctx: &mut CallbackContext<'_>) -> Result<()> {
        if let Some(f) = &mut self.train_end {
            f();
        }
        Ok(())
    }

    fn on_epoch_begin(&mut self, epoch: usize, _ctx: &mut CallbackContext<'_>) -> Result<()> {
        if let Some(f) = &mut self.epoch_begin {
            f(epoch);
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, _ctx: &mut CallbackContext<'_>) -> Result<()> {
        if let Some(f) = &mut self.epoch_end {
            f(epoch, logs);
        }
        Ok(())
    }

    fn on_train_batch_end(&mut self, batch: usize, logs: &Logs, _ctx: &mut CallbackContext<'_>) -> Result<()> {
        if let Some(f) = &mut self.batch_end {
            f(batch, logs);
        }
        Ok(())
    }
}
