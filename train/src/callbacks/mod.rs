//! Keras callbacks: hooks `fit` calls at the start and end of training, of
//! every epoch and of every batch.
//!
//! A [`Callback`] gets a [`CallbackContext`] in every hook: through it it can
//! read and overwrite the model's weights, read and set the optimizer's
//! learning rate, save the model or a training checkpoint, and ask `fit` to
//! stop (Keras's `model.stop_training = True`). Pass callbacks to `fit` with
//! [`crate::Fit::callback`] (borrowed, so you can inspect them afterwards, or
//! owned) or [`crate::Fit::callbacks`]:
//!
//! ```
//! use keel_train::callbacks::{CSVLogger, EarlyStopping};
//! use keel_train::Fit;
//! let mut early = EarlyStopping::new("val_loss").patience(3).restore_best_weights(true);
//! let cfg = Fit::new().epochs(100).callback(&mut early).callback(CSVLogger::new("log.csv"));
//! # drop(cfg);
//! ```
//!
//! Order: callbacks run in the order given. Epoch logs pass through every
//! callback's `on_epoch_end` (which may add entries, as ReduceLROnPlateau adds
//! `learning_rate`) before they are recorded in the [`History`].

mod backup_and_restore;
mod csv_logger;
mod early_stopping;
mod lambda;
mod lr_scheduler;
mod model_checkpoint;
mod reduce_lr;
mod terminate_on_nan;

pub use backup_and_restore::BackupAndRestore;
pub use csv_logger::CSVLogger;
pub use early_stopping::EarlyStopping;
pub use lambda::LambdaCallback;
pub use lr_scheduler::LearningRateScheduler;
pub use model_checkpoint::ModelCheckpoint;
pub use reduce_lr::ReduceLROnPlateau;
pub use terminate_on_nan::TerminateOnNaN;

use crate::{Checkpoint, History, Result};
use keel_nn::Network;
use keel_optim::Optimizer;
use keel_tensor::Tensor;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Named values of one batch or epoch (`"loss"`, `"accuracy"`, `"val_loss"`, ...), in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Logs {
    entries: Vec<(String, f64)>,
}

impl Logs {
    /// Empty logs.
    pub fn new() -> Logs {
        Logs::default()
    }

    /// The value of `name`, if logged.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.entries.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    /// Set `name` (replacing its value, or appending it).
    pub fn insert(&mut self, name: impl Into<String>, value: f64) {
        let name = name.into();
        match self.entries.iter_mut().find(|(k, _)| *k == name) {
            Some(e) => e.1 = value,
            None => self.entries.push((name, value)),
        }
    }

    /// `(name, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// The pairs as a slice.
    pub fn as_slice(&self) -> &[(String, f64)] {
        &self.entries
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is logged.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl From<Vec<(String, f64)>> for Logs {
    fn from(entries: Vec<(String, f64)>) -> Logs {
        Logs { entries }
    }
}

/// What `fit` was asked to do (Keras's `callback.params`).
#[derive(Debug, Clone, PartialEq)]
pub struct FitParams {
    /// The epoch to stop at (exclusive).
    pub epochs: usize,
    /// The first epoch run (from `Fit::initial_epoch`).
    pub initial_epoch: usize,
    /// Batches per epoch.
    pub steps: usize,
    /// Verbosity (0, 1, 2).
    pub verbose: u8,
    /// The seed of shuffling and dropout.
    pub seed: u64,
}

/// The model, optimizer and run state a hook may look at or change.
pub struct CallbackContext<'a> {
    pub(crate) network: &'a dyn Network,
    pub(crate) optimizer: &'a mut dyn Optimizer,
    /// The history of the run this `fit` resumes (`Fit::resume_from`), if any.
    pub(crate) earlier: Option<&'a History>,
    pub(crate) history: &'a History,
    pub(crate) params: &'a FitParams,
    pub(crate) stop: &'a mut bool,
}

impl<'a> CallbackContext<'a> {
    /// The network being trained (its weights are shared handles: see [`CallbackContext::set_weights`]).
    pub fn network(&self) -> &dyn Network {
        self.network
    }

    /// The optimizer.
    pub fn optimizer(&mut self) -> &mut dyn Optimizer {
        self.optimizer
    }

    /// The learning rate the next step will use.
    pub fn learning_rate(&self) -> f64 {
        self.optimizer.learning_rate()
    }

    /// Use the constant learning rate `lr` from now on.
    ///
    /// An error when the optimizer was made with a learning-rate schedule (as Keras
    /// raises): setting a constant would silently drop the schedule. Use a constant
    /// rate with `ReduceLROnPlateau` / `LearningRateScheduler`, or the schedule alone.
    pub fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        if self.optimizer.learning_rate_is_scheduled() {
            return Err(crate::Error::invalid(
                "set_learning_rate",
                format!(
                    "the {} optimizer was created with a learning-rate schedule, so its learning rate is not \
                     settable by a callback (it would replace the schedule); give it a constant learning rate \
                     to use this callback",
                    self.optimizer.name()
                ),
            ));
        }
        self.optimizer.set_learning_rate(lr);
        Ok(())
    }

    /// Ask `fit` to stop after the current batch/epoch (Keras `model.stop_training = True`).
    pub fn stop_training(&mut self) {
        *self.stop = true;
    }

    /// True once a callback asked to stop.
    pub fn stop_requested(&self) -> bool {
        *self.stop
    }

    /// The epochs recorded so far in this `fit` call (the current epoch is added after `on_epoch_end`).
    pub fn history(&self) -> &History {
        self.history
    }

    /// What `fit` was asked to do.
    pub fn params(&self) -> &FitParams {
        self.params
    }

    /// A copy of every weight by name (Keras `get_weights`).
    pub fn weights(&self) -> Result<BTreeMap<String, Tensor>> {
        // copy: the map must not follow later in-place updates
        self.network.state_dict().into_iter().map(|(k, t)| Ok((k, t.copy()?))).collect()
    }

    /// Overwrite every weight (Keras `set_weights`); names and shapes must match.
    pub fn set_weights(&self, weights: &BTreeMap<String, Tensor>) -> Result<()> {
        Ok(self.network.load_state_dict(weights)?)
    }

    /// Save the weights alone (safetensors, atomic).
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        crate::saving::save_weights_file(self.network, path)
    }

    /// Save the model (config + weights) as [`crate::KerasModel::save`] does.
    pub fn save_model(&self, path: &Path) -> Result<()> {
        crate::saving::save_model_file(self.network, path)
    }

    /// Save a full training checkpoint after `epoch` (0-based, completed) with its `logs`.
    pub fn save_checkpoint(&self, path: &Path, epoch: usize, logs: &Logs) -> Result<()> {
        // a resumed run's checkpoint holds every epoch done, the earlier run's first
        let mut history = self.earlier.cloned().unwrap_or_default();
        history.extend(self.history);
        history.push(epoch, logs.as_slice());
        let ck = Checkpoint::capture(self.network, &*self.optimizer, epoch + 1, self.params.seed, history)?;
        ck.save(path)
    }
}

/// A Keras callback: every hook has a default that does nothing.
///
/// Epochs and batches are numbered from 0, as in Keras; returning an error
/// from a hook aborts `fit` with that error.
pub trait Callback {
    /// Before `fit` does anything else: a training checkpoint (and the file it came from)
    /// to resume from, as [`BackupAndRestore`] offers after an interrupted run. `fit`
    /// restores the first one offered and starts at its epoch. The default offers none.
    fn restore_point(&mut self) -> Result<Option<(Checkpoint, PathBuf)>> {
        Ok(None)
    }

    /// Before the first epoch.
    fn on_train_begin(&mut self, ctx: &mut CallbackContext<'_>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// After the last epoch (also after an early stop).
    fn on_train_end(&mut self, ctx: &mut CallbackContext<'_>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Before each epoch.
    fn on_epoch_begin(&mut self, epoch: usize, ctx: &mut CallbackContext<'_>) -> Result<()> {
        let _ = (epoch, ctx);
        Ok(())
    }

    /// After each epoch, with the epoch's train and validation logs (which the hook may extend).
    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, ctx: &mut CallbackContext<'_>) -> Result<()> {
        let _ = (epoch, logs, ctx);
        Ok(())
    }

    /// After each training batch, with the running means of the epoch so far.
    fn on_train_batch_end(&mut self, batch: usize, logs: &Logs, ctx: &mut CallbackContext<'_>) -> Result<()> {
        let _ = (batch, logs, ctx);
        Ok(())
    }
}

impl<C: Callback + ?Sized> Callback for &mut C {
    fn restore_point(&mut self) -> Result<Option<(Checkpoint, PathBuf)>> {
        (**self).restore_point()
    }
    fn on_train_begin(&mut self, ctx: &mut CallbackContext<'_>) -> Result<()> {
        (**self).on_train_begin(ctx)
    }
    fn on_train_end(&mut self, ctx: &mut CallbackContext<'_>) -> Result<()> {
        (**self).on_train_end(ctx)
    }
    fn on_epoch_begin(&mut self, epoch: usize, ctx: &mut CallbackContext<'_>) -> Result<()> {
        (**self).on_epoch_begin(epoch, ctx)
    }
    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, ctx: &mut CallbackContext<'_>) -> Result<()> {
        (**self).on_epoch_end(epoch, logs, ctx)
    }
    fn on_train_batch_end(&mut self, batch: usize, logs: &Logs, ctx: &mut CallbackContext<'_>) -> Result<()> {
        (**self).on_train_batch_end(batch, logs, ctx)
    }
}

impl<C: Callback + ?Sized> Callback for Box<C> {
    fn restore_point(&mut self) -> Result<Option<(Checkpoint, PathBuf)>> {
        (**self).restore_point()
    }
    fn on_train_begin(&mut self, ctx: &mut CallbackContext<'_>) -> Result<()> {
        (**self).on_train_begin(ctx)
    }
    fn on_train_end(&mut self, ctx: &mut CallbackContext<'_>) -> Result<()> {
        (**self).on_train_end(ctx)
    }
    fn on_epoch_begin(&mut self, epoch: usize, ctx: &mut CallbackContext<'_>) -> Result<()> {
        (**self).on_epoch_begin(epoch, ctx)
    }
    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, ctx: &mut CallbackContext<'_>) -> Result<()> {
        (**self).on_epoch_end(epoch, logs, ctx)
    }
    fn on_train_batch_end(&mut self, batch: usize, logs: &Logs, ctx: &mut CallbackContext<'_>) -> Result<()> {
        (**self).on_train_batch_end(batch, logs, ctx)
    }
}

/// Whether a smaller or a larger monitored value is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// From the name: a log ending in an accuracy, AUC, precision, recall, F1 or R² metric's
    /// name is maximised, everything else minimised.
    #[default]
    Auto,
    /// Lower is better (losses, errors).
    Min,
    /// Higher is better (accuracy, AUC, ...).
    Max,
}

impl Mode {
    /// True when higher is better for `monitor` under this mode.
    pub fn maximizes(self, monitor: &str) -> bool {
        match self {
            Mode::Min => false,
            Mode::Max => true,
            Mode::Auto => {
                // the metric's own name ends the log name (`val_`, an output's name and
                // `_`, before it; a repeat's `_1` after it): `class_accuracy`, `auc_1`,
                // but `decoder2_mean_absolute_error` and `recall_head_mse` are minimised
                // a metric compiled by name is logged as written (`"AUC"`, as Keras logs it)
                let lower = monitor.to_ascii_lowercase();
                let m = lower.strip_prefix("val_").unwrap_or(&lower);
                let m = match m.rsplit_once('_') {
                    Some((head, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => head,
                    _ => m,
                };
                // Keras's metrics with direction "up" (the suffix rule covers `recall_at_precision`,
                // `precision_at_recall` and every `*_io_u`)
                const HIGHER_IS_BETTER: [&str; 15] = [
                    "acc",
                    "accuracy",
                    "auc",
                    "precision",
                    "recall",
                    "f1",
                    "f1_score",
                    "fbeta_score",
                    "fmeasure",
                    "r2",
                    "r2_score",
                    "cosine_similarity",
                    "io_u",
                    "sensitivity_at_specificity",
                    "specificity_at_sensitivity",
                ];
                HIGHER_IS_BETTER.iter().any(|k| m == *k || m.strip_suffix(k).is_some_and(|h| h.ends_with('_')))
            }
        }
    }

    /// Parse Keras's `"auto"`, `"min"`, `"max"`.
    pub fn from_name(name: &str) -> Result<Mode> {
        match name.to_ascii_lowercase().as_str() {
            "auto" => Ok(Mode::Auto),
            "min" => Ok(Mode::Min),
            "max" => Ok(Mode::Max),
            other => Err(crate::Error::invalid("callback", format!("mode must be auto, min or max, got \"{other}\""))),
        }
    }
}

/// Every user callback, run in order.
pub(crate) struct CallbackList<'c> {
    pub(crate) list: Vec<Box<dyn Callback + 'c>>,
}

impl CallbackList<'_> {
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}
