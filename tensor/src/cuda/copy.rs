//! Strided copies, dtype casts, host <-> device transfers and fills.
//!
//! Casts follow the CPU rules (`ops/cast.rs`): floats round to nearest, float to
//! integer truncates toward zero and saturates (NaN -> 0), I64 -> U8 clamps to
//! 0..=255 (done as I64 -> F32 -> U8, which clamps exactly). Casts from or to F64
//! go through the host, so they are exact.

use super::*;
use crate::storage::BackendStorage;
use crate::{CpuStorage, DType, Error, Layout, Result};
use half::{bf16, f16};
use keel_cuda_kernels as kk;
use kk::cudarc::driver::{CudaSlice, CudaView};
use kk::ops::misc;
use std::sync::Arc;

/// A fresh contiguous copy of the elements `l` selects.
pub(crate) fn copy_t<T: kk::DType>(
    dev: &kk::CudaDevice,
    x: &CudaSlice<T>,
    l: &Layout,
    poison: T,
) -> Result<CudaSlice<T>> {
    let n = l.shape().elem_count();
    let mut out = alloc_fill(dev, n, poison)?;
    if n == 0 {
        return Ok(out);
    }
    {
        let mut ov = head_mut(&mut out, n);
        if let Some((a, b)) = l.contiguous_range() {
            dev.dtod(&x.slice(a..b), &mut ov).ctx("copy")?;
        } else {
            let kl = kernel_layout("copy", l.dims(), [l.strides(), &out_strides(l)])?;
            misc::copy_strided(dev, &from_offset(x, l.offset()), &mut ov, &kl).ctx("copy")?;
        }
    }
    Ok(out)
}

pub(super) fn copy_strided(s: &CudaStorage, l: &Layout) -> Result<CudaStorage> {
    let dev = &s.dev;
    let data = match &s.data {
        Data::F32(x) => Data::F32(copy_t(dev, x, l, f32::NAN)?),
        Data::F64(x) => Data::F64(copy_t(dev, x, l, F64_POISON)?),
        Data::F16(x) => Data::F16(copy_t(dev, x, l, f16::NAN)?),
        Data::BF16(x) => Data::BF16(copy_t(dev, x, l, bf16::NAN)?),
        Data::I64(x) => Data::I64(copy_t(dev, x, l, i64::MIN)?),
        Data::U8(x) => Data::U8(copy_t(dev, x, l, 0xA5)?),
    };
    Ok(s.like(data, l.shape().elem_count()))
}

/// Cast a contiguous view into a fresh buffer of `D`.
pub(crate) fn cast_view<S: kk::DType, D: Elem>(dev: &kk::CudaDevice, x: &CudaView<'_, S>) -> Result<CudaSlice<D>> {
    let n = x.len();
    let mut out = alloc::<D>(dev, n)?;
    if n > 0 {
        misc::cast(dev, x, &mut head_mut(&mut out, n)).ctx("to_dtype")?;
    }
    Ok(out)
}

/// The mixed-precision casts among `tensors` to `dtype` (F32 to F16/BF16, F16/BF16 to F32,
/// of contiguous CUDA tensors) in one multi-tensor launch per device and source dtype, into
/// `out[k]`; entries it does not take stay `None` (the caller casts those one by one).
pub(crate) fn to_dtype_many(tensors: &[crate::Tensor], dtype: DType, out: &mut [Option<crate::Tensor>]) -> Result<()> {
    use DType::{BF16, F16, F32};
    let guards: Vec<_> = tensors.iter().map(|t| t.storage()).collect();
    // (device, source dtype) -> [(index, storage, contiguous range)]
    let mut groups: Vec<(&Arc<kk::CudaDevice>, DType, Vec<(usize, &CudaStorage, (usize, usize))>)> = Vec::new();
    for (k, (t, g)) in tensors.iter().zip(&guards).enumerate() {
        let (crate::Storage::Cuda(s), Some(range)) = (&**g, t.layout().contiguous_range()) else { continue };
        if !matches!((s.dtype(), dtype), (F32, F16 | BF16) | (F16 | BF16, F32)) {
            continue;
        }
        match groups.iter_mut().find(|(d, src, _)| Arc::ptr_eq(d, &s.dev) && *src == s.dtype()) {
            Some(group) => group.2.push((k, s, range)),
            None => groups.push((&s.dev, s.dtype(), vec![(k, s, range)])),
        }
    }
    for (_, src, items) in groups {
        let casts = match (src, dtype) {
            (F32, BF16) => cast_group::<f32, bf16>(&items)?,
            (F32, F16) => cast_group::<f32, f16>(&items)?,
            (BF16, F32) => cast_group::<bf16, f32>(&items)?,
            _ => cast_group::<f16, f32>(&items)?,
        };
        for ((k, s, (a, b)), data) in items.into_iter().zip(casts) {
            out[k] = Some(crate::Tensor::from_storage(
                crate::Storage::Cuda(s.like(data, b - a)),
                tensors[k].shape().clone(),
            ));
        }
    }
    Ok(())
}

/// One multi-tensor cast of `items` (contiguous `S` ranges on one device) to fresh `D` buffers.
fn cast_group<S: Elem, D: Elem>(items: &[(usize, &CudaStorage, (usize, usize))]) -> Result<Vec<Data>> {
    let Some(&(_, first, _)) = items.first() else { return Ok(Vec::new()) };
    let dev = &first.dev;
    let mut outs = Vec::with_capacity(items.len());
    let mut srcs = Vec::with_capacity(items.len());
    for &(_, s, (a, b)) in items {
        let x = S::slice(&s.data).ok_or_else(|| Error::invalid("to_dtype_many", "internal: grouped by dtype"))?;
        srcs.push(x.slice(a..b));
        outs.push(alloc::<D>(dev, b - a)?);
    }
    {
        let mut views: Vec<_> = outs.iter_mut().zip(&srcs).map(|(o, x)| head_mut(o, x.len())).collect();
        misc::cast_multi(dev, &srcs, &mut views).ctx("to_dtype")?;
    }
    Ok(outs.into_iter().map(D::data).collect())
}

/// Cast a contiguous view of any non-F64 dtype to `dtype` (not F64).
fn cast_any<S: kk::DType>(dev: &kk::CudaDevice, x: &CudaView<'_, S>, dtype: DType) -> Result<Data> {
    Ok(match dtype {
        DType::F32 => Data::F32(cast_view(dev, x)?),
        DType::F16 => Data::F16(cast_view(dev, x)?),
        DType::BF16 => Data::BF16(cast_view(dev, x)?),
        DType::I64 => Data::I64(cast_view(dev, x)?),
        DType::U8 => Data::U8(cast_view(dev, x)?),
        DType::F64 => return Err(Error::invalid("to_dtype", "internal: f64 casts go through the host")),
    })
}

pub(super) fn to_dtype(s: &CudaStorage, l: &Layout, dtype: DType) -> Result<CudaStorage> {
    let from = s.dtype();
    if from == dtype {
        return copy_strided(s, l);
    }
    let n = l.shape().elem_count();
    if from == DType::F64 || dtype == DType::F64 {
        // exact, through the host (the kernels have no f64 arithmetic)
        let host = s.to_cpu(l)?;
        let cast = crate::ops::cast::cpu_to_dtype(&host, &Layout::contiguous(l.shape().clone()), dtype)?;
        return CudaStorage::from_cpu(&cast, &Layout::contiguous(l.shape().clone()), s.ordinal());
    }
    let dev = &s.dev;
    let data = match &s.data {
        Data::F32(x) => cast_any(dev, &contig(dev, x, l, f32::NAN)?.view(), dtype)?,
        Data::F16(x) => cast_any(dev, &contig(dev, x, l, f16::NAN)?.view(), dtype)?,
        Data::BF16(x) => cast_any(dev, &contig(dev, x, l, bf16::NAN)?.view(), dtype)?,
        Data::U8(x) => cast_any(dev, &contig(dev, x, l, 0xA5)?.view(), dtype)?,
        Data::I64(x) => {
            let c = contig(dev, x, l, i64::MIN)?;
            if dtype == DType::U8 {
                // the kernel wraps i64 -> u8; the CPU clamps. Through f32 the kernel clamps too.
                let f = cast_view::<i64, f32>(dev, &c.view())?;
                cast_any(dev, &f.slice(0..n), DType::U8)?
            } else {
                cast_any(dev, &c.view(), dtype)?
            }
        }
        Data::F64(_) => return Err(Error::invalid("to_dtype", "internal: f64 casts go through the host")),
    };
    Ok(s.like(data, n))
}

/// Copy `src` to a new device buffer.
fn upload<T: Elem>(dev: &kk::CudaDevice, src: &[T]) -> Result<CudaSlice<T>> {
    let mut out = alloc::<T>(dev, src.len())?;
    if !src.is_empty() {
        dev.htod_into(src, &mut head_mut(&mut out, src.len())).ctx("to_device")?;
    }
    Ok(out)
}

impl CudaStorage {
    /// Copy the elements `l` selects from host storage to GPU `ordinal` (contiguous result).
    pub(crate) fn from_cpu(s: &CpuStorage, l: &Layout, ordinal: usize) -> Result<CudaStorage> {
        let owned;
        let (s, range) = match l.contiguous_range() {
            Some(r) => (s, r),
            None => {
                owned = s.copy_strided(l)?;
                (&owned, (0, owned.len()))
            }
        };
        let (a, b) = range;
        let dev = device(ordinal)?;
        let data = match s {
            CpuStorage::F32(v) => Data::F32(upload(&dev, &v[a..b])?),
            CpuStorage::F64(v) => {
                let bits: Vec<i64> = v[a..b].iter().map(|x| x.to_bits() as i64).collect();
                Data::F64(upload(&dev, &bits)?)
            }
            CpuStorage::F16(v) => Data::F16(upload(&dev, &v[a..b])?),
            CpuStorage::BF16(v) => Data::BF16(upload(&dev, &v[a..b])?),
            CpuStorage::I64(v) => Data::I64(upload(&dev, &v[a..b])?),
            CpuStorage::U8(v) => Data::U8(upload(&dev, &v[a..b])?),
        };
        Ok(CudaStorage::new(data, b - a, dev))
    }

    /// Host copy of the elements `l` selects, in row-major order (waits for the GPU; a
    /// bad index found by a device-side check since the last wait is the error).
    pub(crate) fn to_cpu(&self, l: &Layout) -> Result<CpuStorage> {
        let dev = &self.dev;
        fn down<T: kk::DType>(dev: &kk::CudaDevice, c: Contig<'_, T>) -> Result<Vec<T>> {
            let v = c.view();
            if v.is_empty() {
                return Ok(Vec::new());
            }
            dev.dtoh(&v).map_err(read_back_error)
        }
        Ok(match &self.data {
            Data::F32(x) => CpuStorage::F32(down(dev, contig(dev, x, l, f32::NAN)?)?),
            Data::F64(x) => CpuStorage::F64(
                down(dev, contig(dev, x, l, F64_POISON)?)?.into_iter().map(|b| f64::from_bits(b as u64)).collect(),
            ),
            Data::F16(x) => CpuStorage::F16(down(dev, contig(dev, x, l, f16::NAN)?)?),
            Data::BF16(x) => CpuStorage::BF16(down(dev, contig(dev, x, l, bf16::NAN)?)?),
            Data::I64(x) => CpuStorage::I64(down(dev, contig(dev, x, l, i64::MIN)?)?),
            Data::U8(x) => CpuStorage::U8(down(dev, contig(dev, x, l, 0xA5)?)?),
        })
    }

    /// `n` copies of `value` (converted to `dtype` as on the CPU) on GPU `ordinal`.
    /// `n` F32 uniform samples in `[lo, hi)` of Philox stream `seed`, drawn on the device:
    /// the kernel follows [`crate::rng`]'s spec, so the bits are the CPU's.
    pub(crate) fn rand_uniform_f32(seed: u64, n: usize, lo: f32, hi: f32, ordinal: usize) -> Result<CudaStorage> {
        let dev = device(ordinal)?;
        let mut out = alloc::<f32>(&dev, n)?;
        if n > 0 {
            kk::ops::rng::uniform_f32(&dev, &mut head_mut(&mut out, n), seed, 0, 0, lo, hi).ctx("rand_uniform")?;
        }
        Ok(CudaStorage::new(Data::F32(out), n, dev))
    }

    pub(crate) fn full(value: f64, n: usize, dtype: DType, ordinal: usize) -> Result<CudaStorage> {
        let dev = device(ordinal)?;
        fn filled<T: Elem>(dev: &kk::CudaDevice, n: usize, v: T) -> Result<CudaSlice<T>> {
            let mut out = alloc::<T>(dev, n)?;
            if n > 0 {
                misc::fill(dev, &mut head_mut(&mut out, n), v).ctx("full")?;
            }
            Ok(out)
        }
        // convert exactly as CpuStorage::full does
        let data = match CpuStorage::full(value, 1, dtype) {
            CpuStorage::F32(v) => Data::F32(filled(&dev, n, v[0])?),
            CpuStorage::F64(v) => {
                let mut out = alloc_fill::<i64>(&dev, n, F64_POISON)?;
                if n > 0 {
                    misc::fill(&dev, &mut head_mut(&mut out, n), v[0].to_bits() as i64).ctx("full")?;
                }
                Data::F64(out)
            }
            CpuStorage::F16(v) => Data::F16(filled(&dev, n, v[0])?),
            CpuStorage::BF16(v) => Data::BF16(filled(&dev, n, v[0])?),
            CpuStorage::I64(v) => Data::I64(filled(&dev, n, v[0])?),
            CpuStorage::U8(v) => Data::U8(filled(&dev, n, v[0])?),
        };
        Ok(CudaStorage::new(data, n, dev))
    }
}

/// The error of a read-back: a bad index that a device-side check found keeps its
/// `IndexOutOfRange` form, naming the op that was given it.
fn read_back_error(e: kk::Error) -> Error {
    match e {
        kk::Error::IndexOutOfRange { op, index, size } => Error::IndexOutOfRange { op, index, size },
        e => Error::Cuda(format!("to_cpu_storage: {e}")),
    }
}
