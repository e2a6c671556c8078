//! Projective (affine) image transforms on CUDA (`image.cu`): the forward pass reads and
//! writes the image dtype directly (F32/F16/BF16 computed in f32, F64 in f64: the CPU's
//! formulas with every operation rounded alone, so the CPU's bits); the image gradient adds
//! with `atomicAdd` into a zeroed buffer of the compute type (the output itself for F32 and
//! F64, an f32 buffer cast once for F16/BF16), so its last bits depend on the order in which
//! the additions land. Stream-ordered, no host wait.

use super::reduce::f32_output;
use super::*;
use crate::ops::image::AffineParams;
use crate::storage::BackendStorage;
use crate::{Error, Layout, Result};
use keel_cuda_kernels as kk;
use kk::cudarc::driver::CudaSlice;
use kk::ops::image::{self as ki, Affine};

fn geom(op: &'static str, p: &AffineParams) -> Result<Affine> {
    let i = |v: usize| i64::try_from(v).map_err(|_| Error::invalid(op, format!("{v} does not fit in i64")));
    Ok(Affine {
        n: i(p.n)?,
        h: i(p.h)?,
        w: i(p.w)?,
        c: i(p.c)?,
        rows: i(p.rows)?,
        interp: p.interpolation.code(),
        mode: p.fill_mode.code(),
        fill: p.fill_value,
    })
}

/// The transforms' buffer as the kernels for `dtype` images read it (F32, or F64 bits).
fn wrong_transforms(op: &'static str, t: &CudaStorage) -> Error {
    Error::UnsupportedDType { op, dtype: t.dtype(), hint: "transforms must be F32 (F64 for F64 images)" }
}

pub(super) fn affine_transform(
    s: &CudaStorage,
    l: &Layout,
    t: &CudaStorage,
    tl: &Layout,
    p: &AffineParams,
) -> Result<CudaStorage> {
    const OP: &str = "affine_transform";
    s.same_device(OP, t)?;
    let (dev, g) = (&*s.dev, geom(OP, p)?);
    let n = p.len();
    // Run the forward kernel over image buffer `$x` and transform buffer `$m`.
    macro_rules! fwd {
        ($x:expr, $m:expr, $poison:expr, $tpoison:expr) => {{
            let x = contig(dev, $x, l, $poison)?;
            let m = contig(dev, $m, tl, $tpoison)?;
            let mut y = alloc_fill(dev, n, $poison)?;
            if n > 0 {
                ki::affine_transform(dev, &g, &x.view(), &m.view(), &mut head_mut(&mut y, n)).ctx(OP)?;
            }
            y
        }};
    }
    let data = match (&s.data, &t.data) {
        (Data::F32(x), Data::F32(m)) => Data::F32(fwd!(x, m, f32::NAN, f32::NAN)),
        (Data::F16(x), Data::F32(m)) => Data::F16(fwd!(x, m, half::f16::NAN, f32::NAN)),
        (Data::BF16(x), Data::F32(m)) => Data::BF16(fwd!(x, m, half::bf16::NAN, f32::NAN)),
        (Data::F64(x), Data::F64(m)) => Data::F64(fwd!(x, m, F64_POISON, F64_POISON)),
        (Data::F32(_) | Data::F16(_) | Data::BF16(_) | Data::F64(_), _) => return Err(wrong_transforms(OP, t)),
        _ => return Err(Error::UnsupportedDType { op: OP, dtype: s.dtype(), hint: "cast to a float dtype first" }),
    };
    Ok(s.like(data, n))
}

pub(super) fn affine_transform_grad(
    dy: &CudaStorage,
    l: &Layout,
    t: &CudaStorage,
    tl: &Layout,
    p: &AffineParams,
) -> Result<CudaStorage> {
    const OP: &str = "affine_transform_grad";
    dy.same_device(OP, t)?;
    let (dev, g) = (&*dy.dev, geom(OP, p)?);
    let n = p.len();
    // Accumulate the gradient of storage `$gy` into a zeroed buffer of the compute type.
    macro_rules! bwd {
        ($gy:expr, $m:expr, $poison:expr, $tpoison:expr, $acc:ty) => {{
            let gy = contig(dev, $gy, l, $poison)?;
            let m = contig(dev, $m, tl, $tpoison)?;
            let mut dx: CudaSlice<$acc> = alloc_zeros(dev, n)?;
            if n > 0 {
                ki::affine_transform_backward(dev, &g, &gy.view(), &m.view(), &mut head_mut(&mut dx, n)).ctx(OP)?;
            }
            dx
        }};
    }
    let data = match (&dy.data, &t.data) {
        (Data::F32(x), Data::F32(m)) => Data::F32(bwd!(x, m, f32::NAN, f32::NAN, f32)),
        (Data::F16(x), Data::F32(m)) => f32_output(dev, bwd!(x, m, half::f16::NAN, f32::NAN, f32), n, dy.dtype())?,
        (Data::BF16(x), Data::F32(m)) => f32_output(dev, bwd!(x, m, half::bf16::NAN, f32::NAN, f32), n, dy.dtype())?,
        (Data::F64(x), Data::F64(m)) => Data::F64(bwd!(x, m, F64_POISON, F64_POISON, i64)),
        (Data::F32(_) | Data::F16(_) | Data::BF16(_) | Data::F64(_), _) => return Err(wrong_transforms(OP, t)),
        _ => return Err(Error::UnsupportedDType { op: OP, dtype: dy.dtype(), hint: "cast to a float dtype first" }),
    };
    Ok(dy.like(data, n))
}
