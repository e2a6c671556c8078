//! The IDX file format (MNIST, Fashion-MNIST, EMNIST), raw or gzip-compressed.
//!
//! An IDX file is a big-endian header — two zero bytes, a type code, the number
//! of dimensions `d`, then `d` u32 sizes — followed by the elements in
//! row-major order. Gzip is detected by its magic bytes (`1f 8b`), so the
//! same functions read `train-images-idx3-ubyte` and `train-images-idx3-ubyte.gz`.
//!
//! Element types map to tensor dtypes: `0x08` u8 -> U8, `0x09` i8 / `0x0B` i16 /
//! `0x0C` i32 -> I64, `0x0D` f32 -> F32, `0x0E` f64 -> F64.

use crate::{Error, Result};
use keel_tensor::Tensor;
use std::io::Read;
use std::path::Path;

/// Largest decompressed size accepted (guards against gzip bombs): 4 GiB.
const MAX_DECOMPRESSED: u64 = 4 << 30;

/// True when `bytes` start with the gzip magic number.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
}

/// Decompress `bytes` if they are gzip, else return them unchanged; `name` labels errors.
pub fn maybe_gunzip<'a>(bytes: &'a [u8], name: &str) -> Result<std::borrow::Cow<'a, [u8]>> {
    if !is_gzip(bytes) {
        return Ok(std::borrow::Cow::Borrowed(bytes));
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes).take(MAX_DECOMPRESSED).read_to_end(&mut out).map_err(|e| {
        Error::format(name, format!("the gzip stream is corrupt or truncated ({e}); download the file again"))
    })?;
    Ok(std::borrow::Cow::Owned(out))
}

/// Decode an IDX file held in memory (raw or gzip); `name` labels errors.
pub fn decode(bytes: &[u8], name: &str) -> Result<Tensor> {
    let bytes = maybe_gunzip(bytes, name)?;
    let b: &[u8] = &bytes;
    let bad = |msg: String| Error::format(name, msg);
    if b.len() < 4 {
        return Err(bad(format!(
            "file is {} bytes, too short for an IDX header (4 bytes of magic number); \
             is it truncated?",
            b.len()
        )));
    }
    if b[0] != 0 || b[1] != 0 {
        return Err(bad(format!(
            "wrong magic number {:02x} {:02x} {:02x} {:02x}: an IDX file starts with \
             00 00 <type> <ndims>; is this an IDX (MNIST-style) file?",
            b[0], b[1], b[2], b[3]
        )));
    }
    let (code, ndim) = (b[2], b[3] as usize);
    let elem_size = match code {
        0x08 | 0x09 => 1,
        0x0B => 2,
        0x0C | 0x0D => 4,
        0x0E => 8,
        _ => {
            return Err(bad(format!(
                "unknown IDX element type code 0x{code:02x} (known: 0x08 u8, 0x09 i8, \
                 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64); the header is corrupt"
            )))
        }
    };
    if ndim == 0 {
        return Err(bad("the header declares 0 dimensions; the file is corrupt".into()));
    }
    let header = 4 + 4 * ndim;
    if b.len() < header {
        return Err(bad(format!(
            "truncated header: {ndim} dimensions need {header} header bytes but the file has {}",
            b.len()
        )));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as usize
        })
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_mul(elem_size))
        .ok_or_else(|| bad(format!("dimensions {dims:?} overflow; the header is corrupt")))?;
    let data = &b[header..];
    if data.len() < count {
        return Err(bad(format!(
            "truncated: dimensions {dims:?} need {count} data bytes but only {} are present; \
             download the file again",
            data.len()
        )));
    }
    if data.len() > count {
        return Err(bad(format!(
            "{} bytes follow the {count} data bytes that dimensions {dims:?} describe; \
             the header disagrees with the file size",
            data.len() - count
        )));
    }
    let t = match code {
        0x08 => Tensor::from_vec(data.to_vec(), dims)?,
        0x09 => Tensor::from_vec(data.iter().map(|&x| x as i8 as i64).collect(), dims)?,
        0x0B => {
            Tensor::from_vec(data.chunks_exact(2).map(|c| i16::from_be_bytes([c[0], c[1]]) as i64).collect(), dims)?
        }
        0x0C => Tensor::from_vec(
            data.chunks_exact(4).map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]) as i64).collect(),
            dims,
        )?,
        0x0D => Tensor::from_vec(
            data.chunks_exact(4).map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect(),
            dims,
        )?,
        _ => Tensor::from_vec(
            data.chunks_exact(8)
                .map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    f64::from_be_bytes(a)
                })
                .collect(),
            dims,
        )?,
    };
    Ok(t)
}

/// Read an IDX file (raw or gzip) from disk.
pub fn read(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode(&bytes, &path.display().to_string())
}

/// Encode a U8 tensor as a raw (uncompressed) IDX file (type code 0x08).
pub fn encode_u8(t: &Tensor) -> Result<Vec<u8>> {
    let data = t.to_vec::<u8>()?;
    if t.rank() == 0 || t.rank() > 255 {
        return Err(Error::invalid("idx::encode_u8", format!("IDX needs rank 1..=255, got shape {:?}", t.dims())));
    }
    let mut out = vec![0u8, 0, 0x08, t.rank() as u8];
    for &d in t.dims() {
        let d = u32::try_from(d).map_err(|_| Error::invalid("idx::encode_u8", format!("dimension {d} exceeds u32")))?;
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(&data);
    Ok(out)
}
