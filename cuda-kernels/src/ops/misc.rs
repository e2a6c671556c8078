//! fill, arange, cast (one tensor or many), where/select and strided copy (`kernels/misc.cu`).

use cudarc::driver::{CudaView, CudaViewMut, DeviceRepr};

use crate::device::{bytes_suffix, check_len, check_min_len, to_i64, CudaDevice, DType};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::ops::multi::tile_starts;
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

/// Tensors one launch of [`cast_multi`] casts (`KEEL_CAST_MULTI_MAX` in misc.cu).
pub const CAST_MULTI_MAX: usize = 64;

/// The multi-tensor cast's tensor list, passed by value in the kernel parameter space
/// (2,064 bytes). Mirrors `struct CastList` in misc.cu.
#[repr(C)]
#[derive(Clone, Copy)]
struct CastList {
    inp: [u64; CAST_MULTI_MAX],
    out: [u64; CAST_MULTI_MAX],
    n: [i64; CAST_MULTI_MAX],
    tile_start: [i64; CAST_MULTI_MAX + 1],
    count: i64,
}

// SAFETY: plain old data with the C struct's layout (8-byte fields only: no padding).
unsafe impl DeviceRepr for CastList {}

/// [`cast`] of many contiguous tensors (`srcs[k]` into `dsts[k]`) in one launch per
/// [`CAST_MULTI_MAX`] non-empty ones: f32 to f16 or bf16, or f16 or bf16 to f32 (what
/// mixed precision casts: the weights to the compute dtype, their gradients back). The
/// same bits as [`cast`].
pub fn cast_multi<S: DType, D: DType>(
    dev: &CudaDevice,
    srcs: &[CudaView<'_, S>],
    dsts: &mut [CudaViewMut<'_, D>],
) -> Result<()> {
    const OP: &str = "cast_multi";
    check_len(OP, "outputs", dsts.len(), srcs.len())?;
    let name = format!("cast_multi_{}_{}", S::NAME, D::NAME);
    if !matches!((S::NAME, D::NAME), ("f32", "f16" | "bf16") | ("f16" | "bf16", "f32")) {
        return Err(Error::arg(OP, format!("no multi-tensor cast from {} to {}: use cast", S::NAME, D::NAME)));
    }
    let mut live = Vec::with_capacity(srcs.len());
    for (k, (src, dst)) in srcs.iter().zip(dsts.iter_mut()).enumerate() {
        check_len(OP, &format!("output {k}"), dst.len(), src.len())?;
        if !src.is_empty() {
            live.push((src.len(), dev.addr(src), dev.addr_mut(dst)));
        }
    }
    for chunk in live.chunks(CAST_MULTI_MAX) {
        let mut l = CastList {
            inp: [0; CAST_MULTI_MAX],
            out: [0; CAST_MULTI_MAX],
            n: [0; CAST_MULTI_MAX],
            tile_start: [0; CAST_MULTI_MAX + 1],
            count: chunk.len() as i64,
        };
        for (k, &(n, src, dst)) in chunk.iter().enumerate() {
            (l.inp[k], l.out[k], l.n[k]) = (src, dst, to_i64(OP, n)?);
        }
        let tiles = tile_starts(OP, chunk.iter().map(|e| e.0), &mut l.tile_start)?;
        launch!(dev, programs::misc(), name, dev.cfg_1d(tiles * 256), [&l])?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    #[test]
    fn cast_list_layout() {
        assert_eq!(std::mem::size_of::<super::CastList>(), 2064);
    }
}
