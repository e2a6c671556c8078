//! NumPy `.npy` files (format versions 1.0, 2.0 and 3.0), C or Fortran order.
//!
//! Reads `float32`, `float64`, `int64`, `int32` (as I64), `uint8` and `bool`
//! (as U8), little- or big-endian. Writes F32 / F64 / I64 / U8 tensors as
//! little-endian, C-order version 1.0 files (2.0 when the header needs it),
//! via a temporary file synced to disk and renamed into place.
//!
//! With the `npz` feature (on by default), [`read_npz`] / [`write_npz`] handle
//! `.npz` archives as `numpy.savez` and `numpy.savez_compressed` write them.

use crate::{Error, Result};
use keel_tensor::{DType, Tensor};
use std::path::Path;

#[cfg(feature = "npz")]
mod npz;
#[cfg(feature = "npz")]
pub use npz::{decode_npz, encode_npz, read_npz, write_npz};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Read a `.npy` file into a tensor.
pub fn read_npy(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let b = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_npy(&b, &path.display().to_string())
}

/// Write `t` as a `.npy` file (temp file + fsync + rename, so a crash leaves no half-written file).
pub fn write_npy(path: impl AsRef<Path>, t: &Tensor) -> Result<()> {
    let path = path.as_ref();
    let bytes = encode_npy(t)?;
    crate::fsio::atomic_write(path, &bytes)
}

/// The bytes of a `.npy` file holding `t`.
pub fn encode_npy(t: &Tensor) -> Result<Vec<u8>> {
    let (descr, data): (&str, Vec<u8>) = match t.dtype() {
        DType::F32 => ("<f4", t.to_vec::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::F64 => ("<f8", t.to_vec::<f64>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::I64 => ("<i8", t.to_vec::<i64>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::U8 => ("|u1", t.to_vec::<u8>()?),
        d => {
            return Err(Error::invalid(
                "write_npy",
                format!("dtype {d} is not supported; convert with .to_dtype(DType::F32) first"),
            ))
        }
    };
    let shape = match t.dims() {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        d => format!("({})", d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let v1 = header.len() + 75 <= 65535;
    let prefix = if v1 { 10 } else { 12 };
    let pad = (64 - (prefix + header.len() + 1) % 64) % 64;
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    let mut out = Vec::with_capacity(prefix + header.len() + data.len());
    out.extend_from_slice(MAGIC);
    if v1 {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    Ok(out)
}

/// The text after `'key':` in a header dict (`None` if the key or its `:` is absent).
fn dict_value<'a>(h: &'a str, key: &str) -> Option<&'a str> {
    let rest = &h[h.find(&format!("'{key}'"))? + key.len() + 2..];
    Some(rest.trim_start().strip_prefix(':')?.trim_start())
}

/// The quoted string after `'key':` in a header dict.
fn dict_str<'a>(h: &'a str, key: &str) -> Option<&'a str> {
    let rest = dict_value(h, key)?;
    let q = rest.chars().next()?;
    if q != '\'' && q != '"' {
        return None;
    }
    let body = &rest[1..];
    Some(&body[..body.find(q)?])
}

/// The raw text after `'key':` up to the next `,`/`}` (or the closing `)` for tuples).
fn dict_raw<'a>(h: &'a str, key: &str) -> Option<&'a str> {
    let rest = dict_value(h, key)?;
    if rest.starts_with('(') {
        Some(&rest[..rest.find(')')? + 1])
    } else {
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim())
    }
}

/// Parse the bytes of a `.npy` file; `name` labels errors.
pub fn decode_npy(b: &[u8], name: &str) -> Result<Tensor> {
    let bad = |m: String| Error::format(name, m);
    if b.len() < 10 || &b[..6] != MAGIC {
        return Err(bad("not a .npy file: it does not start with the magic bytes \\x93NUMPY".into()));
    }
    let (hlen, start): (usize, usize) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        v @ (2 | 3) if b.len() < 12 => {
            return Err(bad(format!(
                "the file is truncated: {} bytes, shorter than the 12-byte preamble of a version {v}.{} \
                 .npy file",
                b.len(),
                b[7]
            )))
        }
        2 | 3 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        v => return Err(bad(format!("unsupported .npy format version {v}.{} (known: 1.0, 2.0, 3.0)", b[7]))),
    };
    let end = start
        .checked_add(hlen)
        .filter(|&e| e <= b.len())
        .ok_or_else(|| bad(format!("truncated header: {hlen} header bytes declared")))?;
    let h =
        std::str::from_utf8(&b[start..end]).map_err(|_| bad("the header is not text; the file is corrupt".into()))?;
    let descr = dict_str(h, "descr").ok_or_else(|| {
        bad(match dict_value(h, "descr") {
            None if !h.contains("'descr'") => format!("header has no 'descr' entry: {h:?}"),
            Some(v) if v.starts_with('[') => "structured dtypes (a 'descr' list of named fields) are not \
                                              supported; save each field as its own array"
                .into(),
            _ => format!("malformed 'descr' entry in header (expected a quoted dtype such as '<f4'): {h:?}"),
        })
    })?;
    let fortran = match dict_raw(h, "fortran_order") {
        Some("True") => true,
        Some("False") => false,
        other => return Err(bad(format!("bad 'fortran_order' in header: {other:?}"))),
    };
    let shape_s = dict_raw(h, "shape").ok_or_else(|| {
        bad(if h.contains("'shape'") {
            format!("malformed 'shape' entry in header (expected a tuple such as (2, 3)): {h:?}")
        } else {
            format!("header has no 'shape' entry: {h:?}")
        })
    })?;
    let dims: Vec<usize> = shape_s
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad(format!("bad shape {shape_s} in header")))?;
    // `get` rather than `split_at`: a non-ASCII first character is an error, not a panic
    let (order, kind) = match (descr.get(..1), descr.get(1..)) {
        (Some(o), Some(k)) => (o, k),
        _ => return Err(bad(format!("unsupported dtype descr '{descr}'"))),
    };
    let big = match order {
        "<" | "|" | "=" => false,
        ">" => true,
        _ => return Err(bad(format!("unsupported dtype descr '{descr}'"))),
    };
    let size = match kind {
        "f4" | "i4" => 4,
        "f8" | "i8" => 8,
        "u1" | "b1" => 1,
        _ => {
            return Err(bad(format!(
                "unsupported dtype '{descr}' (supported: float32, float64, int64, int32, uint8, \
                 bool); convert the array with .astype(...) in NumPy"
            )))
        }
    };
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|n| n.checked_mul(size))
        .ok_or_else(|| bad(format!("shape {dims:?} overflows")))?;
    let data = &b[end..];
    if data.len() != count {
        return Err(bad(format!(
            "shape {dims:?} of '{descr}' needs {count} data bytes but the file has {} \
             (truncated or corrupt)",
            data.len()
        )));
    }
    let word = |c: &[u8]| -> [u8; 8] {
        let mut a = [0u8; 8];
        a[..c.len()].copy_from_slice(c);
        if big {
            a[..c.len()].reverse();
        }
        a
    };
    let tdims = if fortran { dims.iter().rev().copied().collect::<Vec<_>>() } else { dims.clone() };
    let t = match kind {
        "f4" => Tensor::from_vec(
            data.chunks_exact(4)
                .map(|c| {
                    let a = word(c);
                    f32::from_le_bytes([a[0], a[1], a[2], a[3]])
                })
                .collect(),
            tdims,
        )?,
        "f8" => Tensor::from_vec(data.chunks_exact(8).map(|c| f64::from_le_bytes(word(c))).collect(), tdims)?,
        "i8" => Tensor::from_vec(data.chunks_exact(8).map(|c| i64::from_le_bytes(word(c))).collect(), tdims)?,
        "i4" => Tensor::from_vec(
            data.chunks_exact(4)
                .map(|c| {
                    let a = word(c);
                    i32::from_le_bytes([a[0], a[1], a[2], a[3]]) as i64
                })
                .collect(),
            tdims,
        )?,
        _ => Tensor::from_vec(data.to_vec(), tdims)?,
    };
    if fortran && dims.len() > 1 {
        let perm: Vec<usize> = (0..dims.len()).rev().collect();
        return Ok(t.permute(&perm)?.copy()?);
    }
    Ok(t)
}
