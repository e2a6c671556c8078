//! [`BackupAndRestore`]: survive an interrupted `fit` by resuming from the last epoch.

use super::{Callback, CallbackContext, Logs};
use crate::{Checkpoint, Error, Result};
use std::path::PathBuf;

/// Keras's `BackupAndRestore(backup_dir)`: back up the whole training state at the end of
/// every epoch, and when `fit` starts with a backup in `backup_dir` (the last run was
/// killed, preempted or failed), restore it and go on from the epoch after it.
///
/// The backup is a training [`Checkpoint`] (weights, optimizer state, epoch, seed and
/// history) written atomically to `backup_dir/backup.ckpt`, so a kill during the write
/// leaves the previous backup whole. A resumed run repeats the batches, shuffles and
/// dropout draws of an uninterrupted one (they derive from the seed and the epoch), so it
/// ends with the same weights bit for bit. When `fit` ends normally (an early stop
/// included) the backup is deleted, unless `delete_checkpoint(false)`; a `fit` that fails
/// leaves it for the next try. The epochs done before the interruption are not in the
/// `History` the resumed `fit` returns (as in Keras), but they are in its later backups and
/// checkpoints.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let (mut model, x, y) = (keel_train::Sequential::new(), keel_tensor::Tensor::zeros([1, 1], keel_tensor::DType::F32, &keel_tensor::Device::Cpu)?, keel_tensor::Tensor::zeros([1, 1], keel_tensor::DType::F32, &keel_tensor::Device::Cpu)?);
/// use keel_train::{callbacks::BackupAndRestore, Fit};
/// // run this again after a crash: it picks up after the last finished epoch
/// model.fit(&x, &y, Fit::new().epochs(50).callback(BackupAndRestore::new("backup")))?;
/// # Ok(())
/// # }
/// ```
///
/// Differences from Keras: backups are per epoch only (Keras's `save_freq=<batches>` would
/// need a restart inside an epoch), there is no `double_checkpoint` (the atomic write does
/// its job), other callbacks' state (EarlyStopping's patience count) is not backed up, and
/// a backup made by a run with a different `Fit::seed` is refused rather than resumed with
/// other shuffles.
#[derive(Debug, Clone)]
pub struct BackupAndRestore {
    dir: PathBuf,
    delete_checkpoint: bool,
}

impl BackupAndRestore {
    /// Back up into `backup_dir` (created when missing).
    pub fn new(backup_dir: impl Into<PathBuf>) -> Self {
        BackupAndRestore { dir: backup_dir.into(), delete_checkpoint: true }
    }

    /// Whether a `fit` that ends normally deletes its backup (default true, as Keras).
    pub fn delete_checkpoint(mut self, yes: bool) -> Self {
        self.delete_checkpoint = yes;
        self
    }

    /// The backup file: `backup_dir/backup.ckpt`.
    pub fn path(&self) -> PathBuf {
        self.dir.join("backup.ckpt")
    }
}

impl Callback for BackupAndRestore {
    fn restore_point(&mut self) -> Result<Option<(Checkpoint, PathBuf)>> {
        let path = self.path();
        if !path.exists() {
            return Ok(None);
        }
        match Checkpoint::load(&path) {
            Ok(ck) => Ok(Some((ck, path))),
            Err(Error::BadFile { path: p, msg }) => Err(Error::BadFile {
                path: p,
                msg: format!("{msg} (a damaged backup is not resumed; delete it to start training over)"),
            }),
            Err(e) => Err(e),
        }
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, ctx: &mut CallbackContext<'_>) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io(&self.dir, format!("creating the backup directory: {e}")))?;
        ctx.save_checkpoint(&self.path(), epoch, logs)
    }

    fn on_train_end(&mut self, _ctx: &mut CallbackContext<'_>) -> Result<()> {
        let path = self.path();
        if self.delete_checkpoint && path.exists() {
            std::fs::remove_file(&path)
                .map_err(|e| Error::io(&path, format!("deleting the finished run's backup: {e}")))?;
        }
        Ok(())
    }
}
