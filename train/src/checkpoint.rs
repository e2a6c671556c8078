//! [`Checkpoint`]: everything needed to resume training exactly — config,
//! weights, optimizer state, the next epoch, the seed and the history so far.
//!
//! File layout: the magic `KEELCKPT`, a little-endian `u32` format version, a
//! `u64` payload length, a `u64` FNV-1a checksum of the payload, then the
//! payload: the [`Checkpoint`] encoded with bincode 2 (serde, standard
//! config). A truncated or corrupted file fails the length or checksum test
//! with a clear error before anything is decoded. Files are written
//! atomically (temp file, fsync, rename).
//!
//! Resuming is bit-exact on the CPU because `fit`'s shuffle order and dropout
//! masks are pure functions of `(seed, epoch)`, the optimizer state (slots,
//! iteration count, learning rate) is restored, and batch-norm statistics are
//! weights.

use crate::atomic::{read_file, write_atomic};
use crate::saving::{check_weights, load_checked};
use crate::{Error, History, KerasModel, Result};
use keel_nn::Network;
use keel_optim::state::SlotTensor;
use keel_optim::{Optimizer, OptimizerState};
use keel_tensor::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

const MAGIC: &[u8; 8] = b"KEELCKPT";
/// The format version written into checkpoint files (2 since the history records the
/// epochs of each log, for `validation_freq`; version 1 files still load).
pub const CHECKPOINT_FORMAT_VERSION: u32 = 2;
const HEADER: usize = 8 + 4 + 8 + 8;

/// A full training checkpoint (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The model's JSON config ([`keel_nn::Network::config`]), as text.
    pub config: String,
    /// Every weight by stable name.
    pub weights: Vec<(String, SlotTensor)>,
    /// The optimizer's state (slots by parameter position, iterations, learning rate).
    pub optimizer: OptimizerState,
    /// The next epoch to run (= the number of epochs done); pass it as `Fit::initial_epoch`.
    pub epoch: usize,
    /// The seed of the run (shuffles and dropout); pass it as `Fit::seed`.
    pub seed: u64,
    /// The history of the epochs done.
    pub history: History,
}

/// Decode a checkpoint payload with bincode's allocation limit set to a few times its
/// size: a length prefix claiming more (a corrupt file whose checksum still matches, or a
/// crafted one) is an error instead of an allocation that aborts the process. The limit
/// is a type parameter, so it comes in powers of two, 16x to 256x the payload.
fn decode_limited<T: serde::de::DeserializeOwned>(
    payload: &[u8],
) -> std::result::Result<(T, usize), bincode::error::DecodeError> {
    macro_rules! tiers {
        ($($bits:literal)*) => {$(
            if payload.len() <= 1usize << ($bits - 4) {
                let cfg = bincode::config::standard().with_limit::<{ 1usize << $bits }>();
                return bincode::serde::decode_from_slice(payload, cfg);
            }
        )*};
    }
    tiers!(24 28 32 36 40 44 48 52 56 60);
    bincode::serde::decode_from_slice(payload, bincode::config::standard())
}

/// A version-1 checkpoint: the history had no per-log epochs.
#[derive(Serialize, Deserialize)]
struct CheckpointV1 {
    config: String,
    weights: Vec<(String, SlotTensor)>,
    optimizer: OptimizerState,
    epoch: usize,
    seed: u64,
    history_epoch: Vec<usize>,
    history: BTreeMap<String, Vec<f64>>,
}

impl From<CheckpointV1> for Checkpoint {
    fn from(v1: CheckpointV1) -> Checkpoint {
        Checkpoint {
            config: v1.config,
            weights: v1.weights,
            optimizer: v1.optimizer,
            epoch: v1.epoch,
            seed: v1.seed,
            history: History::from_parts(v1.history_epoch, v1.history),
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Checkpoint {
    /// Snapshot a network and its optimizer; `epoch` is the next epoch to run.
    pub fn capture(
        net: &dyn Network,
        optimizer: &dyn Optimizer,
        epoch: usize,
        seed: u64,
        history: History,
    ) -> Result<Checkpoint> {
        if !net.is_built() {
            return Err(Error::invalid("checkpoint", "the model is not built yet"));
        }
        let weights = net
            .state_dict()
            .into_iter()
            .map(|(k, t)| Ok((k, SlotTensor::from_tensor(&t)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Checkpoint {
            config: net.config().to_string(),
            weights,
            optimizer: optimizer.state()?,
            epoch,
            seed,
            history,
        })
    }

    /// True when `bytes` start like a checkpoint file.
    pub fn is_checkpoint(bytes: &[u8]) -> bool {
        bytes.starts_with(MAGIC)
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let payload = bincode::serde::encode_to_vec(self, bincode::config::standard())
            .map_err(|e| Error::invalid("checkpoint", format!("encoding failed: {e}")))?;
        let mut out = Vec::with_capacity(HEADER + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&CHECKPOINT_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&fnv1a(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Parse a file's bytes (`path` only names the file in errors).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Checkpoint> {
        let bad = |m: String| Error::bad_file(path, m);
        if !Self::is_checkpoint(bytes) {
            return Err(bad("not a keel checkpoint (no KEELCKPT magic)".into()));
        }
        if bytes.len() < HEADER {
            return Err(bad(format!("truncated: {} bytes, the header alone is {HEADER}", bytes.len())));
        }
        let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let version = u32_at(8);
        if !(1..=CHECKPOINT_FORMAT_VERSION).contains(&version) {
            return Err(bad(format!(
                "checkpoint format version {version}; this keel reads versions 1 to {CHECKPOINT_FORMAT_VERSION} \
                 (a newer keel wrote it: load it with that version)"
            )));
        }
        let len = u64_at(12);
        let payload = &bytes[HEADER..];
        if payload.len() as u64 != len {
            return Err(bad(format!(
                "truncated or padded: the payload should be {len} bytes, found {}",
                payload.len()
            )));
        }
        if fnv1a(payload) != u64_at(20) {
            return Err(bad("corrupted: the payload checksum does not match".into()));
        }
        let decoded = if version == 1 {
            decode_limited::<CheckpointV1>(payload).map(|(ck, used)| (ck.into(), used))
        } else {
            decode_limited::<Checkpoint>(payload)
        };
        let (ck, used) = decoded.map_err(|e| bad(format!("cannot decode the checkpoint: {e}")))?;
        if used != payload.len() {
            return Err(bad("trailing bytes after the checkpoint".into()));
        }
        Ok(ck)
    }

    /// Write to `path` atomically (temp file, fsync, rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_bytes()?)
    }

    /// Read a checkpoint file.
    pub fn load(path: impl AsRef<Path>) -> Result<Checkpoint> {
        let path = path.as_ref();
        Self::from_bytes(path, &read_file(path)?)
    }

    /// The model config as JSON.
    pub fn config_json(&self, path: &Path) -> Result<serde_json::Value> {
        serde_json::from_str(&self.config)
            .map_err(|e| Error::bad_file(path, format!("the model config is not valid JSON: {e}")))
    }

    /// The weights as tensors by name.
    pub fn weights_map(&self, path: &Path) -> Result<BTreeMap<String, Tensor>> {
        let mut out = BTreeMap::new();
        for (name, s) in &self.weights {
            let n = s.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if n != Some(s.len()) {
                return Err(Error::bad_file(
                    path,
                    format!("weight \"{name}\": shape {:?} but {} values", s.shape, s.len()),
                ));
            }
            let dtype = match s.data {
                keel_optim::state::SlotData::F32(_) => DType::F32,
                keel_optim::state::SlotData::F64(_) => DType::F64,
            };
            out.insert(name.clone(), s.to_tensor(dtype, &Device::Cpu)?);
        }
        Ok(out)
    }

    /// Check that the optimizer state fits `net`'s trainable parameters (count and shapes by position).
    fn check_optimizer(&self, net: &dyn Network, optimizer: &dyn Optimizer, path: &Path) -> Result<()> {
        let st = &self.optimizer;
        let layout = optimizer.state_layout();
        if st.optimizer != layout.name {
            return Err(Error::bad_file(
                path,
                format!(
                    "the checkpoint's optimizer is {} but the model is compiled with {}",
                    st.optimizer, layout.name
                ),
            ));
        }
        // a LossScaleOptimizer's own variables come first: they are no parameter's
        let entries = st.params.get(layout.own_entries..).unwrap_or_default();
        if entries.is_empty() {
            return Ok(());
        }
        let params = net.trainable_params();
        if entries.len() != params.len() {
            return Err(Error::bad_file(
                path,
                format!("the optimizer state has {} parameters, the model {}", entries.len(), params.len()),
            ));
        }
        for (i, (entry, p)) in entries.iter().zip(&params).enumerate() {
            for (slot, t) in &entry.slots {
                if t.shape.as_slice() != p.shape().dims() {
                    return Err(Error::bad_file(
                        path,
                        format!(
                            "optimizer slot {slot:?} of parameter #{i} has shape {:?}, the parameter {}",
                            t.shape,
                            p.shape()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl<N: Network> KerasModel<N> {
    /// A checkpoint of this model and its compiled optimizer; `epoch` is the
    /// next epoch to run (the number done), `seed` the run's `Fit::seed`.
    pub fn checkpoint(&self, epoch: usize, seed: u64, history: &History) -> Result<Checkpoint> {
        let opt = self.optimizer_ref().ok_or(Error::NotCompiled("checkpoint"))?;
        Checkpoint::capture(self.network(), opt, epoch, seed, history.clone())
    }

    /// Save a training checkpoint to `path` atomically (see [`KerasModel::checkpoint`]).
    pub fn save_checkpoint(&self, path: impl AsRef<Path>, epoch: usize, seed: u64, history: &History) -> Result<()> {
        self.checkpoint(epoch, seed, history)?.save(path)
    }

    /// Put a checkpoint's weights and optimizer state into this (compiled) model.
    ///
    /// Everything is checked first (weight names, shapes and dtypes, the
    /// optimizer's name and slot shapes): on a mismatch nothing changes.
    pub fn restore_checkpoint(&mut self, ckpt: &Checkpoint, path: &Path) -> Result<()> {
        let weights = ckpt.weights_map(path)?;
        check_weights(self.network(), &weights, path)?;
        let opt = self.optimizer_ref().ok_or(Error::NotCompiled("restore_checkpoint"))?;
        ckpt.check_optimizer(self.network(), opt, path)?;
        // the optimizer state first: it checks its slots (names included) before taking
        // anything, so a mismatch leaves the weights untouched too (they were checked above)
        self.optimizer_mut()?.load_state(ckpt.optimizer.clone())?;
        load_checked(self.network(), &weights, path)?;
        Ok(())
    }

    /// Read a checkpoint file and restore it into this compiled model; returns
    /// it, so `Fit::new().resume_from(&ckpt)` continues where it stopped.
    pub fn load_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<Checkpoint> {
        let path = path.as_ref();
        let ck = Checkpoint::load(path)?;
        self.restore_checkpoint(&ck, path)?;
        Ok(ck)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(version: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&fnv1a(payload).to_le_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn version_1_files_load_with_dense_histories() -> std::result::Result<(), Box<dyn std::error::Error>> {
        let v1 = CheckpointV1 {
            config: "{}".into(),
            weights: Vec::new(),
            optimizer: OptimizerState {
                optimizer: "SGD".into(),
                iterations: 3,
                learning_rate: Some(0.1),
                params: Vec::new(),
            },
            epoch: 2,
            seed: 9,
            history_epoch: vec![0, 1],
            history: [("loss".to_string(), vec![1.0, 0.5]), ("val_loss".to_string(), vec![1.5, 0.75])].into(),
        };
        let payload = bincode::serde::encode_to_vec(&v1, bincode::config::standard())?;
        let ck = Checkpoint::from_bytes(Path::new("v1.ckpt"), &header(1, &payload))?;
        assert_eq!((ck.epoch, ck.seed, ck.optimizer.iterations), (2, 9, 3));
        assert_eq!(ck.history.epochs_of("val_loss"), Some(vec![0, 1]));
        assert_eq!(ck.history.get("loss"), Some(&[1.0, 0.5][..]));
        // today's files are version 2 and round-trip a sparse history
        let mut ck2 = ck.clone();
        ck2.history = History::new();
        ck2.history.push(0, &[("loss".to_string(), 1.0)]);
        ck2.history.push(1, &[("loss".to_string(), 0.5), ("val_loss".to_string(), 0.7)]);
        let bytes = ck2.to_bytes()?;
        assert_eq!(u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]), 2);
        let back = Checkpoint::from_bytes(Path::new("v2.ckpt"), &bytes)?;
        assert_eq!(back, ck2);
        assert_eq!(back.history.epochs_of("val_loss"), Some(vec![1]));
        // a version from the future is refused with what to do
        let err = Checkpoint::from_bytes(Path::new("v3.ckpt"), &header(3, &payload)).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("version 3") && err.contains("newer keel"), "{err}");
        Ok(())
    }
}
