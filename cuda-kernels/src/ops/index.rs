//! gather / index_select / one_hot / concat and the scatter-add backwards
//! (`kernels/index.cu`). Tensors are contiguous and viewed as `[outer, axis, inner]`.

use cudarc::driver::{CudaView, CudaViewMut};

use crate::device::{bytes_suffix, check_len, to_i64, CudaDevice, DType};
use crate::error::{Error, Result};
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
pub fn gather<T: DType>(
    dev: &CudaDevice,
    s: IndexShape,
    x: &CudaView<'_, T>,
    idx: &CudaView<'_, i64>,
    out: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    check_len("gather", "x", x.len(), s.outer * s.n_in * s.inner)?;
    check_len("gather", "idx", idx.len(), s.out_len())?;
    check_len("gather", "out", out.len(), s.out_len())?;
    if out.is_empty() {
        return Ok(());
    }
    let [o, ni, nj, inn] = s.args("gather")?;
    let name = format!("gather_{}", bytes_suffix::<T>()?);
    launch!(dev, programs::index(), name, dev.cfg_1d(s.out_len()), [x, idx, out, &o, &ni, &nj, &inn])
}

/// `out[o, j, i] = x[o, idx[j], i]` (embedding lookup when `outer == 1`, axis 0).
pub fn index_select<T: DType>(
    dev: &CudaDevice,
    s: IndexShape,
    x: &CudaView<'_, T>,
    idx: &CudaView<'_, i64>,
    out: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    check_len("index_select", "x", x.len(), s.outer * s.n_in * s.inner)?;
    check_len("index_select", "idx", idx.len(), s.n_idx)?;
    check_len("index_select", "out", out.len(), s.out_len())?;
    if out.is_empty() {
        return Ok(());
    }
    let [o, ni, nj, inn] = s.args("index_select")?;
    let name = format!("index_select_{}", bytes_suffix::<T>()?);
    launch!(dev, programs::index(), name, dev.cfg_1d(s.out_len()), [x, idx, out, &o, &ni, &nj, &inn])
}

/// Backward of [`gather`]: `grad_x[o, idx[o, j, i], i] += grad_out[o, j, i]`. `grad_x` is
/// zeroed first. Uses atomics (summation order is not deterministic).
pub fn gather_backward_f32(
    dev: &CudaDevice,
    s: IndexShape,
    grad_out: &CudaView<'_, f32>,
    idx: &CudaView<'_, i64>,
    grad_x: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    check_len("gather_backward", "grad_out", grad_out.len(), s.out_len())?;
    check_len("gather_backward", "idx", idx.len(), s.out_len())?;
    check_len("gather_backward", "grad_x", grad_x.len(), s.outer * s.n_in * s.inner)?;
    dev.stream().memset_zeros(grad_x)?;
    if grad_out.is_empty() {
        return Ok(());
    }
    let [o, ni, nj, inn] = s.args("gather_backward")?;
    launch!(
        dev,
        programs::index(),
        "scatter_add_f32",
        dev.cfg_1d(s.out_len()),
        [grad_out, idx, grad_x, &o, &ni, &nj, &inn]
    )
}

/// Backward of [`index_select`]: `grad_x[o, idx[j], i] += grad_out[o, j, i]`. `grad_x` is
/// zeroed first. Uses atomics.
pub fn index_select_backward_f32(
    dev: &CudaDevice,
    s: IndexShape,
    grad_out: &CudaView<'_, f32>,
    idx: &CudaView<'_, i64>,
    grad_x: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    check_len("index_select_backward", "grad_out", grad_out.len(), s.out_len())?;
    check_len("index_select_backward", "idx", idx.len(), s.n_idx)?;
    check_len("index_select_backward", "grad_x", grad_x.len(), s.outer * s.n_in * s.inner)?;
    dev.stream().memset_zeros(grad_x)?;
    if grad_out.is_empty() {
        return Ok(());
    }
    let [o, ni, nj, inn] = s.args("index_select_backward")?;
    launch!(
        dev,
        programs::index(),
        "index_add_f32",
        dev.cfg_1d(s.out_len()),
        [grad_out, idx, grad_x, &o, &ni, &nj, &inn]
    )
}

/// Queues a check that every index in `idx` lies in `0..size`, without waiting for it:
/// a bad index (one of them, if several) is reported as [`Error::IndexOutOfRange`] (naming `op`) by the
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

/// Copies `x` (`[outer, in_axis, inner]`) into `out` (`[outer, out_axis, inner]`) at
/// `offset` along the axis: one piece of a concat.
pub fn concat_into<T: DType>(
    dev: &CudaDevice,
    x: &CudaView<'_, T>,
    out: &mut CudaViewMut<'_, T>,
    outer: usize,
    in_axis: usize,
    inner: usize,
    out_axis: usize,
    offset: usize,
) -> Result<()> {
    if offset + in_axis > out_axis {
        return Err(Error::arg(
            "concat",
            format!("piece [{offset}, {}) exceeds output axis {out_axis}", offset + in_axis),
        ));
    }
    check_len("concat", "x", x.len(), outer * in_axis * inner)?;
    check_len("concat", "out", out.len(), outer * out_axis * inner)?;
    if x.is_empty() {
        return Ok(());
    }
    let a = [outer, in_axis, inner, out_axis, offset].map(|v| v as i64);
    let name = format!("concat_{}", bytes_suffix::<T>()?);
    launch!(dev, programs::index(), name, dev.cfg_1d(x.len()), [x, out, &a[0], &a[1], &a[2], &a[3], &a[4]])
}
