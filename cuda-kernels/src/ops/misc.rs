//! fill, arange, cast, where/select and strided copy (`kernels/misc.cu`).

use cudarc::driver::{CudaView, CudaViewMut};

use crate::device::{bytes_suffix, check_len, check_min_len, to_i64, CudaDevice, DType};
use crate::error::Result;
use crate::layout::Layout;
use crate::sources::programs;

/// Sets every element of `out` to `value` (any dtype).
pub fn fill<T: DType>(dev: &CudaDevice, out: &mut CudaViewMut<'_, T>, value: T) -> Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let n = to_i64("fill", out.len())?;
    let name = format!("fill_{}", bytes_suffix::<T>()?);
    // The kernel takes the value as raw bits of the same size, which `T` is.
    launch!(dev, programs::misc(), name, dev.cfg_1d(out.len()), [out, &n, &value])
}

/// `out[i] = start + i * step` in f32 (computed in f64, then rounded).
pub fn arange_f32(dev: &CudaDevice, out: &mut CudaViewMut<'_, f32>, start: f64, step: f64) -> Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let n = to_i64("arange", out.len())?;
    launch!(dev, programs::misc(), "arange_f32", dev.cfg_1d(out.len()), [out, &n, &start, &step])
}

/// `out[i] = start + i * step` in i64.
pub fn arange_i64(dev: &CudaDevice, out: &mut CudaViewMut<'_, i64>, start: i64, step: i64) -> Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let n = to_i64("arange", out.len())?;
    launch!(dev, programs::misc(), "arange_i64", dev.cfg_1d(out.len()), [out, &n, &start, &step])
}

/// Converts between f32, f16, bf16, i64 and u8 (contiguous, equal length).
///
/// Float to integer truncates toward zero and saturates (NaN -> 0); i64 -> u8 wraps.
pub fn cast<S: DType, D: DType>(dev: &CudaDevice, src: &CudaView<'_, S>, dst: &mut CudaViewMut<'_, D>) -> Result<()> {
    check_len("cast", "dst", dst.len(), src.len())?;
    if src.is_empty() {
        return Ok(());
    }
    let n = to_i64("cast", src.len())?;
    let name = format!("cast_{}_{}", S::NAME, D::NAME);
    launch!(dev, programs::misc(), name, dev.cfg_1d(src.len()), [src, dst, &n])
}

/// `out[i] = cond[i] != 0 ? a[i] : b[i]` on contiguous buffers (any dtype).
pub fn where_select<T: DType>(
    dev: &CudaDevice,
    cond: &CudaView<'_, u8>,
    a: &CudaView<'_, T>,
    b: &CudaView<'_, T>,
    out: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    let n = cond.len();
    check_len("where", "a", a.len(), n)?;
    check_len("where", "b", b.len(), n)?;
    check_len("where", "out", out.len(), n)?;
    if n == 0 {
        return Ok(());
    }
    let ni = to_i64("where", n)?;
    let name = format!("where_{}", bytes_suffix::<T>()?);
    launch!(dev, programs::misc(), name, dev.cfg_1d(n), [cond, a, b, out, &ni])
}

/// Strided/broadcast where: operands of `layout` are `cond`, `a`, `b`, `out`.
pub fn where_select_strided<T: DType>(
    dev: &CudaDevice,
    cond: &CudaView<'_, u8>,
    a: &CudaView<'_, T>,
    b: &CudaView<'_, T>,
    out: &mut CudaViewMut<'_, T>,
    layout: &Layout<4>,
) -> Result<()> {
    check_min_len("where_strided", "cond", cond.len(), layout.required_len(0)?)?;
    check_min_len("where_strided", "a", a.len(), layout.required_len(1)?)?;
    check_min_len("where_strided", "b", b.len(), layout.required_len(2)?)?;
    check_min_len("where_strided", "out", out.len(), layout.required_len(3)?)?;
    let numel = layout.numel();
    if numel == 0 {
        return Ok(());
    }
    let n = to_i64("where_strided", numel)?;
    let name = format!("where_{}_strided", bytes_suffix::<T>()?);
    launch!(dev, programs::misc(), name, dev.cfg_1d(numel), [cond, a, b, out, &n, layout])
}

/// Strided copy: operand 0 of `layout` is `src`, operand 1 is `dst` (any dtype).
///
/// Makes a view contiguous, materializes a broadcast, or writes into a strided slice of
/// a larger tensor (e.g. one piece of a concat along any axis).
pub fn copy_strided<T: DType>(
    dev: &CudaDevice,
    src: &CudaView<'_, T>,
    dst: &mut CudaViewMut<'_, T>,
    layout: &Layout<2>,
) -> Result<()> {
    check_min_len("copy_strided", "src", src.len(), layout.required_len(0)?)?;
    check_min_len("copy_strided", "dst", dst.len(), layout.required_len(1)?)?;
    let numel = layout.numel();
    if numel == 0 {
        return Ok(());
    }
    let n = to_i64("copy_strided", numel)?;
    let name = format!("copy_strided_{}", bytes_suffix::<T>()?);
    launch!(dev, programs::misc(), name, dev.cfg_1d(numel), [src, dst, &n, layout])
}
