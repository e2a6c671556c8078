//! Model files (`model.save` / [`load_model`]): the config and the weights in one
//! safetensors-layout file, plus the checks shared with checkpoints.
//!
//! A model file is a valid safetensors file: every weight under its stable
//! name (`"dense_1/kernel"`), and in the header's `__metadata__` the entries
//! `format = "keel"`, `keel_file = "model"`, `keel_version` and `keel_config`
//! (the model's JSON config, from [`keel_nn::Network::config`]). PyTorch and
//! Hugging Face tools read the weights directly; [`load_model`] rebuilds the
//! model from the config ([`crate::registry`]) and loads the weights, so the
//! loaded model predicts bit for bit what the saved one did.

use crate::atomic::{read_file, write_atomic};
use crate::registry::FromConfig;
use crate::{Checkpoint, Error, KerasModel, Result, Sequential};
use keel_nn::Network;
use keel_tensor::Tensor;
use std::collections::BTreeMap;
use std::path::Path;

/// The `keel_version` written into model files.
pub const MODEL_FORMAT_VERSION: u32 = 1;

/// A parsed safetensors file: its metadata and tensors.
pub(crate) struct SafeFile {
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) tensors: BTreeMap<String, Tensor>,
}

/// The safetensors bytes of `tensors` with `metadata` in the header.
pub(crate) fn safetensors_bytes(
    tensors: &BTreeMap<String, Tensor>,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let plain = keel_nn::weights::to_safetensors_bytes(tensors)?;
    // swap the header's __metadata__ for ours; data offsets are relative to the data section
    let bad = |m: &str| Error::invalid("save", format!("internal: {m}"));
    let n = u64::from_le_bytes(plain.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(|| bad("short"))?) as usize;
    let header = plain.get(8..8 + n).ok_or_else(|| bad("header"))?;
    let mut h: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| bad(&e.to_string()))?;
    h.insert("__metadata__".into(), serde_json::to_value(metadata).map_err(|e| bad(&e.to_string()))?);
    let mut hb = serde_json::to_vec(&h).map_err(|e| bad(&e.to_string()))?;
    while hb.len() % 8 != 0 {
        hb.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + hb.len() + plain.len() - 8 - n);
    out.extend_from_slice(&(hb.len() as u64).to_le_bytes());
    out.extend_from_slice(&hb);
    out.extend_from_slice(&plain[8 + n..]);
    Ok(out)
}

/// Parse safetensors bytes with every length and offset checked (F32/F64 tensors only).
pub(crate) fn parse_safetensors(path: &Path, bytes: &[u8]) -> Result<SafeFile> {
    let bad = |m: String| Error::bad_file(path, format!("not a valid safetensors file: {m}"));
    let len8: [u8; 8] =
        bytes.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(|| bad("shorter than 8 bytes".into()))?;
    let n = usize::try_from(u64::from_le_bytes(len8)).map_err(|_| bad("header length too large".into()))?;
    let end = 8usize.checked_add(n).filter(|&e| e <= bytes.len()).ok_or_else(|| {
        bad(format!("the header says {n} bytes but the file has {} (truncated?)", bytes.len().saturating_sub(8)))
    })?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..end]).map_err(|e| bad(format!("header is not a JSON object: {e}")))?;
    let data = &bytes[end..];
    let mut metadata = BTreeMap::new();
    let mut tensors = BTreeMap::new();
    let mut ranges = Vec::with_capacity(header.len());
    for (name, info) in &header {
        if name == "__metadata__" {
            let m = info.as_object().ok_or_else(|| bad("__metadata__ is not an object".into()))?;
            for (k, v) in m {
                let v = v.as_str().ok_or_else(|| bad(format!("__metadata__ \"{k}\" is not a string")))?;
                metadata.insert(k.clone(), v.to_string());
            }
            continue;
        }
        let dtype =
            info.get("dtype").and_then(|d| d.as_str()).ok_or_else(|| bad(format!("\"{name}\" has no dtype")))?;
        let shape: Vec<usize> = info
            .get("shape")
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .ok_or_else(|| bad(format!("\"{name}\" has no valid shape")))?;
        let offs: [usize; 2] = info
            .get("data_offsets")
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .ok_or_else(|| bad(format!("\"{name}\" has no valid data_offsets")))?;
        let width = match dtype {
            "F32" => 4usize,
            "F64" => 8,
            other => {
                return Err(Error::bad_file(
                    path,
                    format!("weight \"{name}\" has dtype {other}; keel model weights are F32 or F64"),
                ))
            }
        };
        let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let want =
            count.and_then(|c| c.checked_mul(width)).ok_or_else(|| bad(format!("\"{name}\": shape overflows")))?;
        if offs[0] > offs[1] || offs[1] > data.len() {
            return Err(bad(format!(
                "\"{name}\" lies at bytes {}..{} but the data section has {} bytes (truncated?)",
                offs[0],
                offs[1],
                data.len()
            )));
        }
        let raw = &data[offs[0]..offs[1]];
        if raw.len() != want {
            return Err(bad(format!("\"{name}\" has {} bytes, its shape {shape:?} needs {want}", raw.len())));
        }
        ranges.push((offs[0], offs[1], name.clone()));
        let t = if width == 4 {
            let v: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            Tensor::from_vec(v, shape)?
        } else {
            let v: Vec<f64> = raw
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            Tensor::from_vec(v, shape)?
        };
        tensors.insert(name.clone(), t);
    }
    keel_nn::weights::check_data_layout(&mut ranges, data.len()).map_err(bad)?;
    Ok(SafeFile { metadata, tensors })
}

/// Check that `weights` has exactly the network's weight names, shapes and dtypes.
pub(crate) fn check_weights(net: &dyn Network, weights: &BTreeMap<String, Tensor>, path: &Path) -> Result<()> {
    let mine = net.named_weights();
    if !net.is_built() {
        return Err(Error::bad_file(
            path,
            "the model is not built yet: give its first layer an input_shape (or call model.build(&[vec![..per-sample dims..]])) before loading weights",
        ));
    }
    for w in &mine {
        let Some(t) = weights.get(&w.name) else {
            return Err(Error::bad_file(
                path,
                format!(
                    "the file has no weight \"{}\" of model \"{}\" (was it saved from another architecture? the file has: {})",
                    w.name,
                    net.name(),
                    weights.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        let shape = w.param.shape();
        if t.dims() != shape.dims() {
            return Err(Error::bad_file(
                path,
                format!("weight \"{}\" has shape {} in the file but {} in the model", w.name, t.shape(), shape),
            ));
        }
        if t.dtype() != w.param.dtype() {
            return Err(Error::bad_file(
                path,
                format!("weight \"{}\" is {:?} in the file but {:?} in the model", w.name, t.dtype(), w.param.dtype()),
            ));
        }
    }
    if let Some(extra) = weights.keys().find(|k| !mine.iter().any(|w| &w.name == *k)) {
        return Err(Error::bad_file(
            path,
            format!("the file has a weight \"{extra}\" that model \"{}\" does not (another architecture?)", net.name()),
        ));
    }
    Ok(())
}

/// Check then load `weights` into the network (all or nothing).
pub(crate) fn load_checked(net: &dyn Network, weights: &BTreeMap<String, Tensor>, path: &Path) -> Result<()> {
    check_weights(net, weights, path)?;
    Ok(net.load_state_dict(weights)?)
}

/// Write the model file of `net` (atomic).
pub(crate) fn save_model_file(net: &dyn Network, path: &Path) -> Result<()> {
    if !net.is_built() {
        return Err(Error::invalid(
            "save",
            "the model is not built yet; build it (model.build(&[vec![..per-sample dims..]])) or fit it before saving",
        ));
    }
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "keel".to_string());
    meta.insert("keel_file".to_string(), "model".to_string());
    meta.insert("keel_version".to_string(), MODEL_FORMAT_VERSION.to_string());
    meta.insert("keel_config".to_string(), net.config().to_string());
    write_atomic(path, &safetensors_bytes(&net.state_dict(), &meta)?)
}

/// Write the weights of `net` alone in safetensors layout (atomic).
pub(crate) fn save_weights_file(net: &dyn Network, path: &Path) -> Result<()> {
    if !net.is_built() {
        return Err(Error::invalid("save_weights", "the model is not built yet, so it has no weights to save"));
    }
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "keel".to_string());
    write_atomic(path, &safetensors_bytes(&net.state_dict(), &meta)?)
}

/// The config and weights held by a model file or a training checkpoint.
pub(crate) fn read_model_parts(path: &Path) -> Result<(serde_json::Value, BTreeMap<String, Tensor>)> {
    let bytes = read_file(path)?;
    if Checkpoint::is_checkpoint(&bytes) {
        let ck = Checkpoint::from_bytes(path, &bytes)?;
        return Ok((ck.config_json(path)?, ck.weights_map(path)?));
    }
    let file = parse_safetensors(path, &bytes)?;
    let cfg = file.metadata.get("keel_config").ok_or_else(|| {
        Error::bad_file(path, "no model config in the file (a weights-only file? load it with load_weights)")
    })?;
    let cfg: serde_json::Value = serde_json::from_str(cfg)
        .map_err(|e| Error::bad_file(path, format!("the model config is not valid JSON: {e}")))?;
    Ok((cfg, file.tensors))
}

impl<N: Network> KerasModel<N> {
    /// Save the model (config + weights, one safetensors-layout file) to `path`, atomically.
    ///
    /// [`load_model`] (or `KerasModel::<N>::load`) rebuilds it; the compiled
    /// optimizer and loss are not saved (compile the loaded model to train it;
    /// use a [`Checkpoint`] to resume training).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_model_file(self.network(), path.as_ref())
    }

    /// Save only the weights (safetensors layout), atomically (Keras `save_weights`).
    pub fn save_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        save_weights_file(self.network(), path.as_ref())
    }

    /// Load weights saved by [`KerasModel::save_weights`] (or a model file or checkpoint).
    ///
    /// Names, shapes and dtypes must match the model exactly; on any mismatch
    /// nothing is changed and the error says what differs.
    pub fn load_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = read_file(path)?;
        let weights = if Checkpoint::is_checkpoint(&bytes) {
            Checkpoint::from_bytes(path, &bytes)?.weights_map(path)?
        } else {
            parse_safetensors(path, &bytes)?.tensors
        };
        load_checked(self.network(), &weights, path)
    }
}

impl<N: FromConfig> KerasModel<N> {
    /// Rebuild a model saved with [`KerasModel::save`] (or from a training checkpoint).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let (cfg, weights) = read_model_parts(path)?;
        let net = N::from_config(&cfg).map_err(|e| Error::bad_file(path, format!("cannot rebuild the model: {e}")))?;
        load_checked(&net, &weights, path)?;
        Ok(KerasModel::from_network(net))
    }
}

/// Load a Sequential model saved with [`KerasModel::save`] or held in a
/// training [`Checkpoint`] (Keras `load_model`). Its predictions are bit-identical.
pub fn load_model(path: impl AsRef<Path>) -> Result<Sequential> {
    Sequential::load(path)
}
