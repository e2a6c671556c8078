//! Indexing on CUDA: index_select / index_add, gather / scatter_add, concat.
//!
//! The kernels read out-of-range indices as zero (or skip them) instead of
//! failing. Every op here queues a device-side check of its I64 indices first, so the
//! host never waits for the GPU to validate indices: a bad index comes back as
//! `IndexOutOfRange` from the next read-back (`to_vec`, `to_device(&Device::Cpu)`),
//! like PyTorch's device-side asserts but recoverable.
//! Selects, gathers and concat move raw elements, so they serve every dtype
//! (F64 included); the accumulating backwards (index_add, scatter_add) add in f32
//! (F16/BF16/U8 widened, accumulated in f32 and rounded once), f64 or i64 (exact; the CPU
//! adds in f64, the same below 2^53), in a fixed order without atomics (a sort of the
//! targets, then each target's contributions in source order: the CPU's bits for F32, F64
//! and I64 up to 256 contributions to one element, and the same bits on every run).

use super::reduce::{f32_input, f32_output};
use super::*;
use crate::storage::BackendStorage;
use crate::{Error, Layout, Result};
use half::{bf16, f16};
use keel_cuda_kernels as kk;
use kk::cudarc::driver::{CudaSlice, CudaView};
use kk::ops::index::{self as ki, IndexShape};

/// `(outer, axis, inner)` sizes of `dims` around `axis`.
fn split3(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (dims[..axis].iter().product(), dims[axis], dims[axis + 1..].iter().product())
}

/// The indices as a contiguous device view, with a device-side check that each lies in
/// `0..size` queued before the op: a bad index is reported by the next read-back.
fn checked_indices<'a>(op: &'static str, idx: &'a CudaStorage, il: &Layout, size: usize) -> Result<Contig<'a, i64>> {
    let ids = indices(op, idx, il)?;
    ki::check_index_range(&idx.dev, &ids.view(), size, op).ctx(op)?;
    Ok(ids)
}

/// Queue the device-side check that every index of `idx` lies in `0..size` (see [`checked_indices`]).
pub(super) fn check_indices(idx: &CudaStorage, il: &Layout, size: usize, op: &'static str) -> Result<()> {
    checked_indices(op, idx, il, size).map(|_| ())
}

/// The indices as a contiguous device view.
fn indices<'a>(op: &'static str, idx: &'a CudaStorage, il: &Layout) -> Result<Contig<'a, i64>> {
    match &idx.data {
        Data::I64(x) => contig(&idx.dev, x, il, i64::MIN),
        _ => Err(Error::UnsupportedDType { op, dtype: idx.dtype(), hint: "indices must be I64" }),
    }
}

/// Apply a raw-element op to whichever buffer `$s` holds; `$p` is the poison value.
macro_rules! raw {
    ($s:expr, |$x:ident, $p:ident| $body:expr) => {
        match &$s.data {
            Data::F32($x) => {
                let $p = f32::NAN;
                Data::F32($body)
            }
            Data::F64($x) => {
                let $p = F64_POISON;
                Data::F64($body)
            }
            Data::F16($x) => {
                let $p = f16::NAN;
                Data::F16($body)
            }
            Data::BF16($x) => {
                let $p = bf16::NAN;
                Data::BF16($body)
            }
            Data::I64($x) => {
                let $p = i64::MIN;
                Data::I64($body)
            }
            Data::U8($x) => {
                let $p = 0xA5u8;
                Data::U8($body)
            }
        }
    };
}

#[derive(Clone, Copy)]
enum Kind {
    Select,
    Gather,
}

/// The gather or index_select of `x` by `ids` (not yet checked) into a fresh output. The
/// kernel itself records an index outside `0..shape.n_in` in the device's index report, so
/// the check costs no launch; an empty output reads no index, so then the indices are
/// checked on their own.
fn select_t<T: kk::DType>(
    dev: &kk::CudaDevice,
    x: &CudaSlice<T>,
    l: &Layout,
    ids: &CudaView<'_, i64>,
    shape: IndexShape,
    kind: Kind,
    poison: T,
) -> Result<CudaSlice<T>> {
    let op = match kind {
        Kind::Select => "index_select",
        Kind::Gather => "gather",
    };
    let total = shape.outer * shape.n_idx * shape.inner;
    let mut out = alloc_fill(dev, total, poison)?;
    if total == 0 {
        ki::check_index_range(dev, ids, shape.n_in, op).ctx(op)?;
        return Ok(out);
    }
    let xc = contig(dev, x, l, poison)?;
    {
        let mut ov = head_mut(&mut out, total);
        match kind {
            Kind::Select => ki::index_select(dev, shape, &xc.view(), ids, &mut ov, Some(op)),
            Kind::Gather => ki::gather(dev, shape, &xc.view(), ids, &mut ov, Some(op)),
        }
        .ctx(op)?;
    }
    Ok(out)
}

pub(super) fn index_select(
    s: &CudaStorage,
    l: &Layout,
    idx: &CudaStorage,
    il: &Layout,
    axis: usize,
) -> Result<CudaStorage> {
    const OP: &str = "index_select";
    s.same_device(OP, idx)?;
    let (outer, size, inner) = split3(l.dims(), axis);
    let ids = indices(OP, idx, il)?; // checked by the kernel (select_t)
    let n_idx = il.shape().elem_count();
    let shape = IndexShape { outer, n_in: size, n_idx, inner };
    let dev = &s.dev;
    let data = raw!(s, |x, p| select_t(dev, x, l, &ids.view(), shape, Kind::Select, p)?);
    Ok(s.like(data, outer * n_idx * inner))
}

pub(super) fn gather(s: &CudaStorage, l: &Layout, idx: &CudaStorage, il: &Layout, axis: usize) -> Result<CudaStorage> {
    const OP: &str = "gather";
    s.same_device(OP, idx)?;
    let size = l.dims()[axis];
    let ids = indices(OP, idx, il)?; // checked by the kernel (select_t)
                                     // the source restricted to the index's extent outside the axis
    let idims = il.dims();
    let mut xl = l.clone();
    for d in 0..idims.len() {
        if d != axis && idims[d] != l.dims()[d] {
            xl = xl.narrow(d, 0, idims[d])?;
        }
    }
    let (outer, n_idx, inner) = split3(idims, axis);
    let shape = IndexShape { outer, n_in: size, n_idx, inner };
    let dev = &s.dev;
    let data = raw!(s, |x, p| select_t(dev, x, &xl, &ids.view(), shape, Kind::Gather, p)?);
    Ok(s.like(data, il.shape().elem_count()))
}

pub(super) fn index_add(
    s: &CudaStorage,
    l: &Layout,
    idx: &CudaStorage,
    il: &Layout,
    axis: usize,
    dims: &[usize],
) -> Result<CudaStorage> {
    const OP: &str = "index_add";
    s.same_device(OP, idx)?;
    let (outer, n, inner) = split3(l.dims(), axis);
    let size = dims[axis];
    let n_idx = il.shape().elem_count();
    if n_idx != n {
        return Err(Error::invalid(OP, format!("{n_idx} indices for an axis of size {n}")));
    }
    let ids = checked_indices(OP, idx, il, size)?;
    let dev = &s.dev;
    let total = outer * size * inner;
    let shape = IndexShape { outer, n_in: size, n_idx: n, inner };
    let run = (&ids, shape, total);
    let data = match &s.data {
        Data::F64(x) => Data::F64(index_add_t(dev, ki::Accum::F64, &contig(dev, x, l, F64_POISON)?.view(), run)?),
        Data::I64(x) => Data::I64(index_add_t(dev, ki::Accum::I64, &contig(dev, x, l, i64::poison())?.view(), run)?),
        _ => f32_output(dev, index_add_t(dev, ki::Accum::F32, &f32_input(OP, s, l)?.view(), run)?, total, s.dtype())?,
    };
    Ok(s.like(data, total))
}

/// `index_add` in `acc`'s type into a fresh buffer of `total` elements.
fn index_add_t<T: kk::DType + Elem>(
    dev: &kk::CudaDevice,
    acc: ki::Accum,
    g: &CudaView<'_, T>,
    (ids, shape, total): (&Contig<'_, i64>, IndexShape, usize),
) -> Result<CudaSlice<T>> {
    let mut out = alloc::<T>(dev, total)?;
    if total > 0 {
        ki::index_select_backward(dev, acc, shape, g, &ids.view(), &mut head_mut(&mut out, total)).ctx("index_add")?;
    }
    Ok(out)
}

pub(super) fn scatter_add(
    s: &CudaStorage,
    l: &Layout,
    idx: &CudaStorage,
    il: &Layout,
    axis: usize,
    dims: &[usize],
) -> Result<CudaStorage> {
    const OP: &str = "scatter_add";
    s.same_device(OP, idx)?;
    let sdims = l.dims();
    for d in 0..sdims.len() {
        if d != axis && sdims[d] > dims[d] {
            return Err(Error::invalid(OP, "source is larger than the output outside the axis"));
        }
    }
    let size = dims[axis];
    let ids = checked_indices(OP, idx, il, size)?;
    let dev = &s.dev;
    let (outer, n, inner) = split3(sdims, axis);
    let shape = IndexShape { outer, n_in: size, n_idx: n, inner };
    let total: usize = dims.iter().product();
    let data = match &s.data {
        Data::F64(x) => Data::F64(scatter_add_t(
            dev,
            ki::Accum::F64,
            &contig(dev, x, l, F64_POISON)?.view(),
            &ids,
            shape,
            (sdims, axis, dims),
        )?),
        Data::I64(x) => Data::I64(scatter_add_t(
            dev,
            ki::Accum::I64,
            &contig(dev, x, l, i64::poison())?.view(),
            &ids,
            shape,
            (sdims, axis, dims),
        )?),
        _ => {
            let g = f32_input(OP, s, l)?;
            let out = scatter_add_t(dev, ki::Accum::F32, &g.view(), &ids, shape, (sdims, axis, dims))?;
            f32_output(dev, out, total, s.dtype())?
        }
    };
    Ok(s.like(data, total))
}

/// `scatter_add` in `acc`'s type: into the source's extent outside the axis first, then that
/// box placed at the origin of a zeroed output of `dims`.
fn scatter_add_t<T: kk::DType + Elem>(
    dev: &kk::CudaDevice,
    acc: ki::Accum,
    g: &CudaView<'_, T>,
    ids: &Contig<'_, i64>,
    shape: IndexShape,
    (sdims, axis, dims): (&[usize], usize, &[usize]),
) -> Result<CudaSlice<T>> {
    const OP: &str = "scatter_add";
    let mut tdims = sdims.to_vec();
    tdims[axis] = dims[axis];
    let tmp_total: usize = tdims.iter().product();
    let mut tmp = alloc::<T>(dev, tmp_total)?;
    if tmp_total > 0 {
        ki::gather_backward(dev, acc, shape, g, &ids.view(), &mut head_mut(&mut tmp, tmp_total)).ctx(OP)?;
    }
    if tdims == dims {
        return Ok(tmp);
    }
    let total: usize = dims.iter().product();
    let mut out = alloc_zeros::<T>(dev, total)?;
    if tmp_total > 0 {
        let tl = Layout::contiguous(tdims.clone());
        let ostr = crate::Shape::from(dims).contiguous_strides();
        let kl = kernel_layout(OP, &tdims, [tl.strides(), &ostr])?;
        kk::ops::misc::copy_strided(dev, &tmp.slice(0..tmp_total), &mut head_mut(&mut out, total), &kl).ctx(OP)?;
    }
    Ok(out)
}

fn concat_t<T: kk::DType>(
    dev: &kk::CudaDevice,
    parts: &[(&CudaSlice<T>, &Layout)],
    axis: usize,
    dims: &[usize],
    poison: T,
) -> Result<CudaSlice<T>> {
    let total: usize = dims.iter().product();
    let mut out = alloc_fill(dev, total, poison)?;
    if total == 0 {
        return Ok(out);
    }
    let (outer, _, inner) = split3(dims, axis);
    // strided pieces are copied to contiguous first; then one launch copies them all
    let contigs = parts.iter().map(|(x, l)| contig(dev, x, l, poison)).collect::<Result<Vec<_>>>()?;
    let pieces: Vec<_> = contigs.iter().zip(parts).map(|(c, (_, l))| (c.view(), l.dims()[axis])).collect();
    ki::concat(dev, &pieces, &mut head_mut(&mut out, total), outer, inner).ctx("concat")?;
    Ok(out)
}

pub(super) fn concat(parts: &[(&CudaStorage, &Layout)], axis: usize) -> Result<CudaStorage> {
    let (first, fl) = *parts.first().ok_or_else(|| Error::invalid("concat", "need at least one tensor"))?;
    let mut dims = fl.dims().to_vec();
    dims[axis] = parts.iter().map(|(_, l)| l.dims()[axis]).sum();
    for (s, _) in parts {
        first.same_device("concat", s)?;
    }
    let dev = &first.dev;
    macro_rules! join {
        ($variant:ident, $poison:expr) => {{
            let typed = parts
                .iter()
                .map(|(s, l)| match &s.data {
                    Data::$variant(x) => Ok((x, *l)),
                    _ => Err(Error::DTypeMismatch { op: "concat", lhs: first.dtype(), rhs: s.dtype() }),
                })
                .collect::<Result<Vec<_>>>()?;
            Data::$variant(concat_t(dev, &typed, axis, &dims, $poison)?)
        }};
    }
    let data = match &first.data {
        Data::F32(_) => join!(F32, f32::NAN),
        Data::F64(_) => join!(F64, F64_POISON),
        Data::F16(_) => join!(F16, f16::NAN),
        Data::BF16(_) => join!(BF16, bf16::NAN),
        Data::I64(_) => join!(I64, i64::MIN),
        Data::U8(_) => join!(U8, 0xA5u8),
    };
    Ok(first.like(data, dims.iter().product()))
}
