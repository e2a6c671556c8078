//! gather / index_select / one_hot / concat and the scatter-add backwards
//! (`kernels/index.cu`). Tensors are contiguous and viewed as `[outer, axis, inner]`.

use cudarc::driver::{CudaView, CudaViewMut, DeviceRepr};

use crate::device::{bytes_suffix, check_len, to_i64, CudaDevice, DType};
use crate::error::{Error, Result};
use crate::ops::multi::tile_starts;
use crate::ops::sort::argsort_u32;
use crate::sources::programs;

/// `[outer, n_in, inner]` input, `n_idx` indices along the middle axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexShape {
    /// Product of the dimensions before the axis.
    pub outer: usize,
    /// Length of the input's indexed axis.
    pub n_in: usize,
    /// Length of the output's indexed axis (number of indices per slice).
    pub n_idx: usize,
    /// Product of the dimensions after the axis.
    pub inner: usize,
}

impl IndexShape {
    fn args(&self, op: &'static str) -> Result<[i64; 4]> {
        Ok([to_i64(op, self.outer)?, to_i64(op, self.n_in)?, to_i64(op, self.n_idx)?, to_i64(op, self.inner)?])
    }
    fn out_len(&self) -> usize {
        self.outer * self.n_idx * self.inner
    }
}

/// `out[o, j, i] = x[o, idx[o, j, i], i]` (torch.gather); out-of-range indices give 0.
/// With `check: Some(op)` they are also recorded in the device's index report, as
/// [`check_index_range`] does, by the gather itself (no launch of its own).
pub fn gather<T: DType>(
    dev: &CudaDevice,
    s: IndexShape,
    x: &CudaView<'_, T>,
    idx: &CudaView<'_, i64>,
    out: &mut CudaViewMut<'_, T>,
    check: Option<&'static str>,
) -> Result<()> {
    launch_gather(dev, "gather", s, s.out_len(), x, idx, out, check)
}

/// `out[o, j, i] = x[o, idx[j], i]` (embedding lookup when `outer == 1`, axis 0);
/// out-of-range indices give 0, and with `check: Some(op)` are recorded as by [`gather`].
/// An empty output reads no index, so checks none.
pub fn index_select<T: DType>(
    dev: &CudaDevice,
    s: IndexShape,
    x: &CudaView<'_, T>,
    idx: &CudaView<'_, i64>,
    out: &mut CudaViewMut<'_, T>,
    check: Option<&'static str>,
) -> Result<()> {
    launch_gather(dev, "index_select", s, s.n_idx, x, idx, out, check)
}

/// [`gather`] and [`index_select`] (`kernel`, whose index has `idx_len` elements).
#[allow(clippy::too_many_arguments)]
fn launch_gather<T: DType>(
    dev: &CudaDevice,
    kernel: &'static str,
    s: IndexShape,
    idx_len: usize,
    x: &CudaView<'_, T>,
    idx: &CudaView<'_, i64>,
    out: &mut CudaViewMut<'_, T>,
    check: Option<&'static str>,
) -> Result<()> {
    check_len(kernel, "x", x.len(), s.outer * s.n_in * s.inner)?;
    check_len(kernel, "idx", idx.len(), idx_len)?;
    check_len(kernel, "out", out.len(), s.out_len())?;
    if out.is_empty() {
        return Ok(());
    }
    let [o, ni, nj, inn] = s.args(kernel)?;
    let name = format!("{kernel}_{}", bytes_suffix::<T>()?);
    let cfg = dev.cfg_1d(s.out_len());
    match check {
        Some(op) => dev.with_index_report(op, |report, code| {
            launch!(dev, programs::index(), name, cfg, [x, idx, out, &o, &ni, &nj, &inn, report, &code])
        }),
        // a null report: nothing recorded
        None => launch!(dev, programs::index(), name, cfg, [x, idx, out, &o, &ni, &nj, &inn, &0u64, &0i64]),
    }
}

/// The element type of an accumulating backward ([`gather_backward`],
/// [`index_select_backward`]): f32, or an 8-byte type in an `i64` buffer (F64 as its bits).
/// Both add in a fixed order, without atomics: the same inputs give the same bits every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accum {
    /// f32 values (`CudaView<f32>`).
    F32,
    /// f64 values (their bits, `CudaView<i64>`).
    F64,
    /// i64 values (two's complement adds: exact, wrapping past i64's range).
    I64,
}

impl Accum {
    fn name(self) -> &'static str {
        match self {
            Accum::F32 => "f32",
            Accum::F64 => "f64",
            Accum::I64 => "i64",
        }
    }
}

/// Backward of [`gather`]: `grad_x[o, idx[o, j, i], i] += grad_out[o, j, i]`, in `dtype`
/// (`T` is f32 for `Accum::F32`, i64 otherwise). `grad_x` is zeroed first. Deterministic:
/// each element adds its contributions from 0 in `grad_out`'s order, which is the CPU's
/// sequential sum bit for bit up to 256 contributions (longer: 256 at a time, in order).
pub fn gather_backward<T: DType>(
    dev: &CudaDevice,
    dtype: Accum,
    s: IndexShape,
    grad_out: &CudaView<'_, T>,
    idx: &CudaView<'_, i64>,
    grad_x: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    check_len("gather_backward", "idx", idx.len(), s.out_len())?;
    accumulate(dev, dtype, ("gather_backward", Targets::Gather), s, grad_out, idx, grad_x)
}

/// Backward of [`index_select`]: `grad_x[o, idx[j], i] += grad_out[o, j, i]`, in `dtype` (as
/// [`gather_backward`]). `grad_x` is zeroed first. Deterministic: each element adds its
/// contributions in index order (an Embedding's gradient row sums its tokens in order).
pub fn index_select_backward<T: DType>(
    dev: &CudaDevice,
    dtype: Accum,
    s: IndexShape,
    grad_out: &CudaView<'_, T>,
    idx: &CudaView<'_, i64>,
    grad_x: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    check_len("index_select_backward", "idx", idx.len(), s.n_idx)?;
    accumulate(dev, dtype, ("index_select_backward", Targets::Index), s, grad_out, idx, grad_x)
}

/// Whose targets an accumulating backward sorts.
#[derive(Debug, Clone, Copy)]
enum Targets {
    /// Every element's own index (gather's): each contribution's flat target is a key.
    Gather,
    /// One index per slice along the axis (index_select's): the index is the key, for every
    /// `(outer, inner)` column at once.
    Index,
}

/// Contributions of a run one thread adds before the next piece's sum takes over
/// (`KEEL_SEGMENT_PIECE` in index.cu).
const SEGMENT_PIECE: usize = 256;

/// Zeroes `grad_x`, then adds the contributions in a fixed order (index.cu's note): their
/// targets as u32 keys, [`argsort_u32`] for their source positions in key order, and the
/// segment sums (`segment_piece_{dtype}` when a run can be longer than a piece, then
/// `segment_sum_{dtype}`). Launches: 2 + 3 per 8 bits of the largest target (+1 for more
/// than 256 contributions); an Embedding of 10,000 rows: 8 or 9.
fn accumulate<T: DType>(
    dev: &CudaDevice,
    dtype: Accum,
    (op, targets): (&'static str, Targets),
    s: IndexShape,
    grad_out: &CudaView<'_, T>,
    idx: &CudaView<'_, i64>,
    grad_x: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    let size = if dtype == Accum::F32 { 4 } else { 8 };
    if std::mem::size_of::<T>() != size {
        return Err(Error::arg(op, format!("{dtype:?} needs {size}-byte elements")));
    }
    check_len(op, "grad_out", grad_out.len(), s.out_len())?;
    check_len(op, "grad_x", grad_x.len(), s.outer * s.n_in * s.inner)?;
    dev.stream().memset_zeros(grad_x)?;
    if grad_out.is_empty() {
        return Ok(());
    }
    // the sorted contributions as [outer, n, inner] columns into [outer, n_out, inner]
    let (n, outer, n_out, inner) = match targets {
        Targets::Gather => (s.out_len(), 1, grad_x.len(), 1),
        Targets::Index => (s.n_idx, s.outer, s.n_in, s.inner),
    };
    // n_out is the key of an out-of-range index (skipped)
    let max_key = u32::try_from(n_out).map_err(|_| {
        Error::arg(op, format!("{n_out} targets: at most {} can be accumulated in a fixed order", u32::MAX))
    })?;
    let [o, ni, nj, inn] = s.args(op)?;
    let mut keys = dev.alloc::<u32>(n)?;
    match targets {
        Targets::Gather => launch!(
            dev,
            programs::index(),
            "accumulate_keys_gather",
            dev.cfg_1d(n),
            [idx, &mut keys, &o, &ni, &nj, &inn]
        )?,
        Targets::Index => {
            launch!(dev, programs::index(), "accumulate_keys_index", dev.cfg_1d(n), [idx, &mut keys, &nj, &ni])?
        }
    }
    let (keys, pos) = argsort_u32(dev, keys, max_key)?;
    let cols = outer * inner;
    let [n_, outer_, n_out_, inner_] = [to_i64(op, n)?, to_i64(op, outer)?, to_i64(op, n_out)?, to_i64(op, inner)?];
    let index = programs::index();
    // later pieces' sums (only a run longer than a piece has any)
    let chunks = if n > SEGMENT_PIECE { n.div_ceil(SEGMENT_PIECE) } else { 0 };
    let mut part = dev.alloc::<T>((chunks * cols).max(1))?;
    if chunks > 0 {
        let name = format!("segment_piece_{}", dtype.name());
        let cfg = dev.cfg_1d(chunks * cols);
        launch!(dev, index, name, cfg, [&keys, &pos, grad_out, &mut part, &n_, &outer_, &n_, &n_out_, &inner_])?;
    }
    let name = format!("segment_sum_{}", dtype.name());
    launch!(
        dev,
        index,
        name,
        dev.cfg_1d(n * cols),
        [&keys, &pos, grad_out, &part, grad_x, &n_, &outer_, &n_, &n_out_, &inner_]
    )
}

/// Queues a check that every index in `idx` lies in `0..size`, without waiting for it:
/// a bad index (one of them, if several) is reported as [`crate::Error::IndexOutOfRange`] (naming `op`) by the
/// next [`CudaDevice::synchronize`], so by the next read-back. The index kernels read an
/// out-of-range index as 0 (or skip it), so nothing outside a buffer is touched meanwhile.
pub fn check_index_range(dev: &CudaDevice, idx: &CudaView<'_, i64>, size: usize, op: &'static str) -> Result<()> {
    if idx.is_empty() {
        return Ok(());
    }
    let n = to_i64(op, idx.len())?;
    let size = to_i64(op, size)?;
    dev.with_index_report(op, |report, code| {
        launch!(dev, programs::index(), "check_index_range", dev.cfg_1d(idx.len()), [idx, &n, &size, report, &code])
    })
}

/// `out[r, c] = (c == labels[r]) ? on : off` for `[rows, classes]` output.
pub fn one_hot_f32(
    dev: &CudaDevice,
    labels: &CudaView<'_, i64>,
    classes: usize,
    out: &mut CudaViewMut<'_, f32>,
    on: f32,
    off: f32,
) -> Result<()> {
    check_len("one_hot", "out", out.len(), labels.len() * classes)?;
    if out.is_empty() {
        return Ok(());
    }
    let rows = to_i64("one_hot", labels.len())?;
    let c = to_i64("one_hot", classes)?;
    launch!(dev, programs::index(), "one_hot_f32", dev.cfg_1d(out.len()), [labels, out, &rows, &c, &on, &off])
}

/// Pieces one launch of [`concat()`] copies (`KEEL_CONCAT_MAX` in index.cu).
pub const CONCAT_MAX: usize = 64;

/// The concat kernel's piece list, passed by value in the kernel parameter space (2,600
/// bytes). Mirrors `struct ConcatList` in index.cu.
#[repr(C)]
#[derive(Clone, Copy)]
struct ConcatList {
    inp: [u64; CONCAT_MAX],
    in_axis: [i64; CONCAT_MAX],
    offset: [i64; CONCAT_MAX],
    n: [i64; CONCAT_MAX],
    tile_start: [i64; CONCAT_MAX + 1],
    count: i64,
    out: u64,
    inner: i64,
    out_axis: i64,
}

// SAFETY: plain old data with the C struct's layout (8-byte fields only: no padding).
unsafe impl DeviceRepr for ConcatList {}

/// Concatenates contiguous `pieces` (`[outer, in_axis, inner]` each, `in_axis` given with
/// the piece) along the middle axis into `out` (`[outer, sum of in_axis, inner]`), one
/// multi-tensor launch per [`CONCAT_MAX`] non-empty pieces (a sequence model's `T` timesteps
/// stacked: one launch, not `T`).
pub fn concat<T: DType>(
    dev: &CudaDevice,
    pieces: &[(CudaView<'_, T>, usize)],
    out: &mut CudaViewMut<'_, T>,
    outer: usize,
    inner: usize,
) -> Result<()> {
    const OP: &str = "concat";
    let out_axis: usize = pieces.iter().map(|p| p.1).sum();
    check_len(OP, "out", out.len(), outer * out_axis * inner)?;
    let mut live = Vec::with_capacity(pieces.len());
    let mut offset = 0;
    for (k, (x, in_axis)) in pieces.iter().enumerate() {
        check_len(OP, &format!("piece {k}"), x.len(), outer * in_axis * inner)?;
        if !x.is_empty() {
            live.push((dev.addr(x), x.len(), to_i64(OP, *in_axis)?, to_i64(OP, offset)?));
        }
        offset += in_axis;
    }
    let name = format!("concat_{}", bytes_suffix::<T>()?);
    let (out_addr, inner, out_axis) = (dev.addr_mut(out), to_i64(OP, inner)?, to_i64(OP, out_axis)?);
    for chunk in live.chunks(CONCAT_MAX) {
        let mut l = ConcatList {
            inp: [0; CONCAT_MAX],
            in_axis: [0; CONCAT_MAX],
            offset: [0; CONCAT_MAX],
            n: [0; CONCAT_MAX],
            tile_start: [0; CONCAT_MAX + 1],
            count: chunk.len() as i64,
            out: out_addr,
            inner,
            out_axis,
        };
        for (k, &(addr, n, in_axis, off)) in chunk.iter().enumerate() {
            (l.inp[k], l.n[k], l.in_axis[k], l.offset[k]) = (addr, to_i64(OP, n)?, in_axis, off);
        }
        let tiles = tile_starts(OP, chunk.iter().map(|p| p.1), &mut l.tile_start)?;
        launch!(dev, programs::index(), name, dev.cfg_1d(tiles * 256), [&l])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn concat_list_layout() {
        // Under the 4 KiB kernel parameter limit every supported architecture has.
        assert_eq!(std::mem::size_of::<super::ConcatList>(), 2600);
    }
}
