//! Weight files in the safetensors layout (readable by PyTorch / Hugging Face tools).
//!
//! Layout: an 8-byte little-endian header length, a JSON header mapping each
//! tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}` (padded
//! with spaces to a multiple of 8 bytes), then the raw little-endian data,
//! tensors back to back in name order. Only F32 and F64 are written/read here
//! (model weights are F32). Files are written to a temporary name, fsynced and
//! renamed, so a crash never leaves a half-written file under the real name.

use crate::{Error, Result};
use keel_tensor::{DType, Tensor};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Io { path: path.display().to_string(), msg: e.to_string() }
}

/// The bytes of a safetensors file holding `tensors`.
pub fn to_safetensors_bytes(tensors: &BTreeMap<String, Tensor>) -> Result<Vec<u8>> {
    let mut header = serde_json::Map::new();
    let mut data: Vec<u8> = Vec::new();
    for (name, t) in tensors {
        let (dtype, bytes) = match t.dtype() {
            DType::F64 => ("F64", t.to_vec::<f64>()?.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()),
            _ => ("F32", t.to_dtype(DType::F32)?.to_vec::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        };
        let begin = data.len();
        data.extend_from_slice(&bytes);
        header.insert(
            name.clone(),
            serde_json::json!({ "dtype": dtype, "shape": t.dims(), "data_offsets": [begin, data.len()] }),
        );
    }
    header.insert("__metadata__".into(), serde_json::json!({ "format": "keel" }));
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header)).map_err(|e| Error::Weights(e.to_string()))?;
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + data.len());
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&data);
    Ok(out)
}

/// Check that the tensors' byte ranges (`(start, end, name)`) tile a data section of
/// `data_len` bytes exactly, as the safetensors format requires: no hole, no overlap,
/// nothing after the last tensor. The error says what is wrong, in words.
pub fn check_data_layout(ranges: &mut [(usize, usize, String)], data_len: usize) -> std::result::Result<(), String> {
    ranges.sort();
    let mut at = 0usize;
    for (start, end, name) in ranges.iter() {
        if *start != at {
            return Err(if *start > at {
                format!("bytes {at}..{start} of the data section belong to no tensor (before \"{name}\")")
            } else {
                format!("\"{name}\" (bytes {start}..{end}) overlaps the tensor before it")
            });
        }
        at = *end;
    }
    if at != data_len {
        return Err(format!("{} bytes after the last tensor", data_len.saturating_sub(at)));
    }
    Ok(())
}

/// Parse the bytes of a safetensors file (F32 / F64 tensors).
pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<BTreeMap<String, Tensor>> {
    let bad = |m: &str| Error::Weights(format!("not a valid safetensors file: {m}"));
    let len_bytes: [u8; 8] = bytes.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(|| bad("too short"))?;
    let n = u64::from_le_bytes(len_bytes) as usize;
    let header = bytes.get(8..8usize.saturating_add(n)).ok_or_else(|| bad("header past the end"))?;
    let data = &bytes[8 + n..];
    let v: serde_json::Value = serde_json::from_slice(header).map_err(|e| bad(&e.to_string()))?;
    let obj = v.as_object().ok_or_else(|| bad("header is not an object"))?;
    let mut out = BTreeMap::new();
    let mut ranges = Vec::with_capacity(obj.len());
    for (name, info) in obj {
        if name == "__metadata__" {
            if !info.as_object().is_some_and(|m| m.values().all(|v| v.is_string())) {
                return Err(bad("__metadata__ must map names to strings"));
            }
            continue;
        }
        let dtype = info["dtype"].as_str().ok_or_else(|| bad("missing dtype"))?;
        let shape: Vec<usize> = serde_json::from_value(info["shape"].clone()).map_err(|e| bad(&e.to_string()))?;
        let offs: [usize; 2] = serde_json::from_value(info["data_offsets"].clone()).map_err(|e| bad(&e.to_string()))?;
        let raw = data.get(offs[0]..offs[1]).ok_or_else(|| bad("data offsets past the end"))?;
        ranges.push((offs[0], offs[1], name.clone()));
        let count = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|c| c.checked_mul(8).is_some())
            .ok_or_else(|| bad(&format!("\"{name}\": shape {shape:?} overflows")))?;
        let t = match dtype {
            "F32" if raw.len() == 4 * count => Tensor::from_vec(
                raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<f32>>(),
                shape,
            )?,
            "F64" if raw.len() == 8 * count => Tensor::from_vec(
                raw.chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect::<Vec<f64>>(),
                shape,
            )?,
            "F32" | "F64" => return Err(bad(&format!("\"{name}\" has the wrong number of bytes"))),
            other => return Err(Error::Weights(format!("\"{name}\": dtype {other} is not supported yet"))),
        };
        out.insert(name.clone(), t);
    }
    check_data_layout(&mut ranges, data.len()).map_err(|m| bad(&m))?;
    Ok(out)
}

/// Write `tensors` to `path` (temp file, fsync, rename).
pub fn save_safetensors(tensors: &BTreeMap<String, Tensor>, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let bytes = to_safetensors_bytes(tensors)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        f.write_all(&bytes).map_err(|e| io_err(&tmp, e))?;
        f.sync_all().map_err(|e| io_err(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

/// Read every tensor of the safetensors file at `path`.
pub fn load_safetensors(path: impl AsRef<Path>) -> Result<BTreeMap<String, Tensor>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    from_safetensors_bytes(&bytes)
}
