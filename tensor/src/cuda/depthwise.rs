//! Depthwise 2-D convolution on CUDA (`keel_cuda_kernels::ops::depthwise`): forward,
//! grad-input and grad-kernel read and write F32/F16/BF16 storage directly (f32 inside, one
//! rounding on the store) and F64 storage in f64. Deterministic: no atomics anywhere.

use super::*;
use crate::ops::DepthwiseConv2dParams;
use crate::storage::BackendStorage;
use crate::{Error, Layout, Result};
use keel_cuda_kernels as kk;
use kk::cudarc::driver::{CudaSlice, CudaView, CudaViewMut};
use kk::ops::depthwise::{self as kd, DepthwiseConv2d};

fn geom(op: &'static str, p: &DepthwiseConv2dParams) -> Result<DepthwiseConv2d> {
    let i64c = |v: usize| i64::try_from(v).map_err(|_| Error::invalid(op, format!("{v} does not fit in i64")));
    let i32c = |v: usize| {
        i32::try_from(v).map_err(|_| Error::invalid(op, format!("{v} does not fit the CUDA kernels' 32-bit geometry")))
    };
    let q = &p.conv;
    Ok(DepthwiseConv2d {
        n: i64c(q.n)?,
        h: i64c(q.h)?,
        w: i64c(q.w)?,
        c: i64c(q.c)?,
        m: i64c(p.m)?,
        oh: i64c(q.oh)?,
        ow: i64c(q.ow)?,
        kh: i32c(q.kh)?,
        kw: i32c(q.kw)?,
        sh: i32c(q.sh)?,
        sw: i32c(q.sw)?,
        pt: i32c(q.pt)?,
        pl: i32c(q.pl)?,
        dh: i32c(q.dh)?,
        dw: i32c(q.dw)?,
    })
}

/// A launch of one depthwise kernel: two inputs, one output of `n` elements.
type Pass<'f, T> =
    &'f dyn Fn(&CudaView<'_, T>, &CudaView<'_, T>, &mut CudaViewMut<'_, T>) -> keel_cuda_kernels::Result<()>;

/// `pass` on `a` and `b` (made contiguous) into a fresh `n`-element output (poisoned first
/// when outputs are poisoned; not launched when `n` is 0).
fn run<T: kk::DType>(
    op: &'static str,
    dev: &kk::CudaDevice,
    (a, al): (&CudaSlice<T>, &Layout),
    (b, bl): (&CudaSlice<T>, &Layout),
    n: usize,
    poison: T,
    pass: Pass<'_, T>,
) -> Result<CudaSlice<T>> {
    let (a, b) = (contig(dev, a, al, poison)?, contig(dev, b, bl, poison)?);
    let mut y = alloc_fill(dev, n, poison)?;
    if n > 0 {
        pass(&a.view(), &b.view(), &mut head_mut(&mut y, n)).ctx(op)?;
    }
    Ok(y)
}

/// Dispatches a depthwise pass over the operands' float dtype (F64 as its `i64` bits).
macro_rules! depthwise_pass {
    ($op:expr, $dev:expr, $a:expr, $al:expr, $b:expr, $bl:expr, $n:expr, $f:path, $g:expr) => {{
        $a.same_device($op, $b)?;
        let (dev, g, n) = ($dev, $g, $n);
        let data = match (&$a.data, &$b.data) {
            (Data::F32(a), Data::F32(b)) => {
                Data::F32(run($op, dev, (a, $al), (b, $bl), n, f32::NAN, &|a, b, y| $f(dev, &g, a, b, y))?)
            }
            (Data::F16(a), Data::F16(b)) => {
                Data::F16(run($op, dev, (a, $al), (b, $bl), n, half::f16::NAN, &|a, b, y| $f(dev, &g, a, b, y))?)
            }
            (Data::BF16(a), Data::BF16(b)) => {
                Data::BF16(run($op, dev, (a, $al), (b, $bl), n, half::bf16::NAN, &|a, b, y| $f(dev, &g, a, b, y))?)
            }
            (Data::F64(a), Data::F64(b)) => {
                Data::F64(run($op, dev, (a, $al), (b, $bl), n, F64_POISON, &|a, b, y| $f(dev, &g, a, b, y))?)
            }
            _ if $a.dtype() != $b.dtype() => {
                return Err(Error::DTypeMismatch { op: $op, lhs: $a.dtype(), rhs: $b.dtype() })
            }
            _ => {
                return Err(Error::UnsupportedDType { op: $op, dtype: $a.dtype(), hint: "cast to a float dtype first" })
            }
        };
        Ok($a.like(data, n))
    }};
}

pub(super) fn depthwise_conv2d(
    x: &CudaStorage,
    l: &Layout,
    k: &CudaStorage,
    kl: &Layout,
    p: &DepthwiseConv2dParams,
) -> Result<CudaStorage> {
    const OP: &str = "depthwise_conv2d";
    let n = p.out_shape().elem_count();
    depthwise_pass!(OP, &*x.dev, x, l, k, kl, n, kd::depthwise_conv2d, geom(OP, p)?)
}

pub(super) fn depthwise_conv2d_grad_input(
    dy: &CudaStorage,
    l: &Layout,
    k: &CudaStorage,
    kl: &Layout,
    p: &DepthwiseConv2dParams,
) -> Result<CudaStorage> {
    const OP: &str = "depthwise_conv2d_grad_input";
    let n = p.in_shape().elem_count();
    depthwise_pass!(OP, &*dy.dev, dy, l, k, kl, n, kd::depthwise_conv2d_backward_input, geom(OP, p)?)
}

pub(super) fn depthwise_conv2d_grad_kernel(
    x: &CudaStorage,
    l: &Layout,
    dy: &CudaStorage,
    dyl: &Layout,
    p: &DepthwiseConv2dParams,
) -> Result<CudaStorage> {
    const OP: &str = "depthwise_conv2d_grad_kernel";
    let n = p.kernel_shape().elem_count();
    depthwise_pass!(OP, &*x.dev, x, l, dy, dyl, n, kd::depthwise_conv2d_backward_kernel, geom(OP, p)?)
}
