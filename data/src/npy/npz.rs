//! NumPy `.npz` archives: a zip of `.npy` members, as `numpy.savez` (stored)
//! and `numpy.savez_compressed` (deflate) write them.

use super::{decode_npy, encode_npy};
use crate::{Error, Result};
use keel_tensor::Tensor;
use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};
use std::path::Path;

/// Read a `.npz` archive: every `.npy` member, keyed by its name without the `.npy` suffix.
///
/// Reads what `numpy.savez` and `numpy.savez_compressed` write (stored or
/// deflate members, zip64 included). A truncated or corrupt archive, a member
/// whose checksum does not match or a member that is not a valid `.npy` is an
/// [`Error::Format`] naming the file (and the member).
pub fn read_npz(path: impl AsRef<Path>) -> Result<BTreeMap<String, Tensor>> {
    let path = path.as_ref();
    let b = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_npz(&b, &path.display().to_string())
}

/// Write `arrays` as a `.npz` archive (member `name.npy` per entry), atomically.
///
/// `compressed = false` stores the members like `numpy.savez`; `true`
/// deflates them like `numpy.savez_compressed`. The archive is written to a
/// temporary file, synced to disk and renamed into place, so a crash never
/// leaves a half-written archive. Names must be non-empty and distinct.
pub fn write_npz(path: impl AsRef<Path>, arrays: &[(&str, &Tensor)], compressed: bool) -> Result<()> {
    let path = path.as_ref();
    let bytes = encode_npz(arrays, compressed)?;
    crate::fsio::atomic_write(path, &bytes)
}

/// The bytes of a `.npz` archive holding `arrays` (see [`write_npz`]).
pub fn encode_npz(arrays: &[(&str, &Tensor)], compressed: bool) -> Result<Vec<u8>> {
    const OP: &str = "write_npz";
    let mut seen = std::collections::BTreeSet::new();
    for (name, _) in arrays {
        if name.is_empty() {
            return Err(Error::invalid(OP, "an array name is empty; give every array a name"));
        }
        if !seen.insert(*name) {
            return Err(Error::invalid(OP, format!("the name '{name}' is used twice; names must be distinct")));
        }
    }
    let method = if compressed { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let zerr = |name: &str, e: zip::result::ZipError| Error::invalid(OP, format!("member '{name}.npy': {e}"));
    for (name, t) in arrays {
        let npy = encode_npy(t).map_err(|e| match e {
            Error::InvalidArgument { msg, .. } => Error::invalid(OP, format!("array '{name}': {msg}")),
            e => e,
        })?;
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(method)
            .large_file(npy.len() as u64 >= u64::from(u32::MAX));
        w.start_file(format!("{name}.npy"), opts).map_err(|e| zerr(name, e))?;
        w.write_all(&npy).map_err(|e| zerr(name, e.into()))?;
    }
    let out = w.finish().map_err(|e| Error::invalid(OP, format!("finishing the archive: {e}")))?;
    Ok(out.into_inner())
}

/// Parse the bytes of a `.npz` archive; `name` labels errors.
pub fn decode_npz(b: &[u8], name: &str) -> Result<BTreeMap<String, Tensor>> {
    let mut zip = zip::ZipArchive::new(Cursor::new(b)).map_err(|e| {
        Error::format(name, format!("not a valid .npz (zip) archive: {e}; the file is truncated or corrupt"))
    })?;
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip
            .by_index(i)
            .map_err(|e| Error::format(name, format!("archive member #{i}: {e}; the file is truncated or corrupt")))?;
        if f.is_dir() {
            continue;
        }
        let member = f.name().to_string();
        let bad = |m: String| Error::format(format!("{name}: member '{member}'"), m);
        let declared = f.size();
        let mut data = Vec::new();
        // `take` bounds memory by the declared size even if the stream lies.
        (&mut f)
            .take(declared.saturating_add(1))
            .read_to_end(&mut data)
            .map_err(|e| bad(format!("{e}; the archive is truncated or corrupt")))?;
        if data.len() as u64 != declared {
            return Err(bad(format!("{} bytes decoded but {declared} declared; the archive is corrupt", data.len())));
        }
        let key = member.strip_suffix(".npy").unwrap_or(&member).to_string();
        let t = decode_npy(&data, &format!("{name}: member '{member}'"))?;
        if out.insert(key, t).is_some() {
            return Err(bad("this member name occurs twice; the archive is corrupt".into()));
        }
    }
    Ok(out)
}
