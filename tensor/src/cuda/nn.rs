//! Convolution (implicit GEMM: forward, grad-input, grad-kernel) and 2-D pooling
//! on CUDA, NHWC input and HWIO kernels as on the CPU.
//!
//! F16/BF16 convolutions run on the tensor-core kernels when the channels are multiples
//! of 8 (`kc::tc_unsupported` says what else they need), otherwise (an image's first
//! convolution, C = 1 or 3) on the SIMT kernels reading F16/BF16 directly; either way with
//! f32 accumulation and the result written in the input dtype by the epilogue, rounded
//! once, with no cast launches around the pass. F32 runs on the f32 implicit-GEMM kernels.
//! Pooling reads and writes F32, F16 or BF16 storage directly (f32 inside, one rounding on
//! the store, so no cast launches around it), and F64 storage in f64 (the CPU's arithmetic
//! in its order). Geometry comes straight from keel-tensor's
//! `Conv2dParams` / `Pool2dParams` (TensorFlow `same` padding: extra row/column at the bottom/right,
//! which the kernels skip as out of the image). Average pooling excludes padding
//! from the count (Keras). `max_pool2d_grad` routes each output gradient to the
//! saved index of its window (indices from `max_pool2d` are always in their window;
//! an index outside its window contributes nothing, where the CPU would still add it).

use super::reduce::{f32_input, f32_output};
use super::*;
use crate::ops::{Conv2dParams, Pool2dParams};
use crate::storage::BackendStorage;
use crate::{Error, Layout, Result};
use keel_cuda_kernels as kk;
use kk::cudarc::driver::{CudaSlice, CudaView, CudaViewMut};
use kk::ops::conv::{self as kc, Conv2d};
use kk::ops::gemm::{Activation, Bias};
use kk::ops::pool::{self as kp, Pool2d};

fn i32c(op: &'static str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::invalid(op, format!("{v} does not fit the CUDA kernels' 32-bit geometry")))
}

fn i64c(op: &'static str, v: usize) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::invalid(op, format!("{v} does not fit in i64")))
}

fn conv_geom(op: &'static str, p: &Conv2dParams) -> Result<Conv2d> {
    Ok(Conv2d {
        n: i64c(op, p.n)?,
        h: i64c(op, p.h)?,
        w: i64c(op, p.w)?,
        c: i64c(op, p.c)?,
        oh: i64c(op, p.oh)?,
        ow: i64c(op, p.ow)?,
        o: i64c(op, p.o)?,
        kh: i32c(op, p.kh)?,
        kw: i32c(op, p.kw)?,
        sh: i32c(op, p.sh)?,
        sw: i32c(op, p.sw)?,
        pt: i32c(op, p.pt)?,
        pl: i32c(op, p.pl)?,
        dh: i32c(op, p.dh)?,
        dw: i32c(op, p.dw)?,
    })
}

fn pool_geom(op: &'static str, p: &Pool2dParams) -> Result<Pool2d> {
    Ok(Pool2d {
        n: i64c(op, p.n)?,
        h: i64c(op, p.h)?,
        w: i64c(op, p.w)?,
        c: i64c(op, p.c)?,
        oh: i64c(op, p.oh)?,
        ow: i64c(op, p.ow)?,
        kh: i32c(op, p.kh)?,
        kw: i32c(op, p.kw)?,
        sh: i32c(op, p.sh)?,
        sw: i32c(op, p.sw)?,
        pt: i32c(op, p.pt)?,
        pl: i32c(op, p.pl)?,
    })
}

/// `relu(conv2d(x, k) + b)` in one kernel (the conv's bias + ReLU epilogue), bit-identical to
/// the unfused ops: F32 computes `1 * acc + b`, then `max(., 0)`; F16/BF16 add the bias (of
/// their type) to the output rounded to it and round the sum before the ReLU
/// ([`Bias::Rounded`]), as the separate add + relu kernel does. `None` for other
/// dtypes.
pub(super) fn conv2d_bias_relu(
    s: &CudaStorage,
    l: &Layout,
    k: &CudaStorage,
    kl: &Layout,
    b: &CudaStorage,
    bl: &Layout,
    p: &Conv2dParams,
) -> Result<Option<CudaStorage>> {
    use crate::DType::{BF16, F16, F32};
    if [s, k, b].iter().any(|t| !matches!(t.dtype(), F32 | F16 | BF16) || t.dtype() != s.dtype()) {
        return Ok(None);
    }
    s.same_device("conv2d", b)?;
    conv_forward(s, l, k, kl, Some((b, bl)), Activation::Relu, p).map(Some)
}

/// Runs a convolution pass on two F16/BF16 operands (made contiguous) into a fresh
/// `n`-element output of their type (the epilogue rounds once). `pass` gets the bias (of their
/// type, for the forward pass's epilogue) and `tc`: whether the tensor-core kernels take this
/// geometry and these operands (else the SIMT F16/BF16 kernels run it: channels that are not
/// multiples of 8, like an image's first convolution).
fn half_pass<T: Elem>(
    dev: &kk::CudaDevice,
    g: &Conv2d,
    (a, al): (&CudaSlice<T>, &Layout),
    (b, bl): (&CudaSlice<T>, &Layout),
    n: usize,
    bias: Option<(&CudaStorage, &Layout)>,
    pass: impl FnOnce(
        &CudaView<'_, T>,
        &CudaView<'_, T>,
        &mut CudaViewMut<'_, T>,
        Option<Bias<'_, '_, T>>,
        bool,
    ) -> kk::Result<()>,
) -> Result<CudaSlice<T>> {
    const OP: &str = "conv2d";
    let (ac, bc) = (contig(dev, a, al, T::poison())?, contig(dev, b, bl, T::poison())?);
    let (av, bv) = (ac.view(), bc.view());
    let bias = match bias {
        Some((s, l)) => {
            let data = T::slice(&s.data).ok_or(Error::DTypeMismatch { op: OP, lhs: T::DTYPE, rhs: s.dtype() })?;
            Some(contig(dev, data, l, T::poison())?)
        }
        None => None,
    };
    let bias_view = bias.as_ref().map(|b| b.view());
    let tc = kc::tc_unsupported(dev, g, &[&av, &bv]).is_none();
    let mut out = alloc::<T>(dev, n)?;
    if n > 0 {
        pass(&av, &bv, &mut head_mut(&mut out, n), bias_view.as_ref().map(Bias::Rounded), tc).ctx(OP)?;
    }
    Ok(out)
}

/// The F16 and BF16 cases of a convolution pass on operands `$a` and `$b` (`Data`, layout)
/// with `$bias` (`Option<(&CudaStorage, &Layout)>`): `Some(output data)` from [`half_pass`]
/// running the closure `$pass` (expanded once per type), `None` for other dtypes.
macro_rules! half_conv {
    ($dev:expr, $g:expr, ($a:expr, $al:expr), ($b:expr, $bl:expr), $n:expr, $bias:expr, $pass:expr) => {
        match ($a, $b) {
            (Data::F16(a), Data::F16(b)) => Some(Data::F16(half_pass($dev, $g, (a, $al), (b, $bl), $n, $bias, $pass)?)),
            (Data::BF16(a), Data::BF16(b)) => {
                Some(Data::BF16(half_pass($dev, $g, (a, $al), (b, $bl), $n, $bias, $pass)?))
            }
            _ => None,
        }
    };
}

/// An F64 convolution pass (`pass` on operands `a`, `b`, both F64, made contiguous) into a
/// fresh `n`-element F64 output; `None` unless both are F64.
fn f64_conv(
    op: &'static str,
    dev: &kk::CudaDevice,
    g: &Conv2d,
    pass: kc::ConvPass,
    (a, al): (&CudaStorage, &Layout),
    (b, bl): (&CudaStorage, &Layout),
    n: usize,
) -> Result<Option<CudaStorage>> {
    let (Data::F64(x), Data::F64(y)) = (&a.data, &b.data) else { return Ok(None) };
    let (x, y) = (contig(dev, x, al, F64_POISON)?, contig(dev, y, bl, F64_POISON)?);
    let mut out = alloc_fill(dev, n, F64_POISON)?;
    if n > 0 {
        kc::conv2d_f64(dev, g, pass, &x.view(), &y.view(), &mut head_mut(&mut out, n)).ctx(op)?;
    }
    Ok(Some(a.like(Data::F64(out), n)))
}

fn same_float(op: &'static str, a: &CudaStorage, b: &CudaStorage) -> Result<()> {
    a.same_device(op, b)?;
    if a.dtype() != b.dtype() {
        return Err(Error::DTypeMismatch { op, lhs: a.dtype(), rhs: b.dtype() });
    }
    match a.dtype() {
        crate::DType::F32 | crate::DType::F16 | crate::DType::BF16 | crate::DType::F64 => Ok(()),
        dtype => Err(Error::UnsupportedDType { op, dtype, hint: "cast to a float dtype first" }),
    }
}

pub(super) fn conv2d(
    s: &CudaStorage,
    l: &Layout,
    k: &CudaStorage,
    kl: &Layout,
    p: &Conv2dParams,
) -> Result<CudaStorage> {
    conv_forward(s, l, k, kl, None, Activation::None, p)
}

/// `act(conv2d(x, k) + bias)` through the implicit-GEMM forward kernel.
fn conv_forward(
    s: &CudaStorage,
    l: &Layout,
    k: &CudaStorage,
    kl: &Layout,
    bias: Option<(&CudaStorage, &Layout)>,
    act: Activation,
    p: &Conv2dParams,
) -> Result<CudaStorage> {
    const OP: &str = "conv2d";
    same_float(OP, s, k)?;
    let dev = &s.dev;
    let g = conv_geom(OP, p)?;
    let n = g.y_len();
    let half = half_conv!(dev, &g, (&s.data, l), (&k.data, kl), n, bias, |x, w, y, b, tc| {
        if tc {
            kc::conv2d_forward_tc(dev, &g, x, w, y, b, 1.0, 0.0, act)
        } else {
            kc::conv2d_forward_simt(dev, &g, x, w, y, b, 1.0, 0.0, act)
        }
    });
    if let Some(y) = half {
        return Ok(s.like(y, n));
    }
    if bias.is_none() && act == Activation::None {
        if let Some(y) = f64_conv(OP, dev, &g, kc::ConvPass::Forward, (s, l), (k, kl), n)? {
            return Ok(y);
        }
    }
    let (x, w) = (f32_input(OP, s, l)?, f32_input(OP, k, kl)?);
    let bias = bias.map(|(b, bl)| f32_input(OP, b, bl)).transpose()?;
    let bias_view = bias.as_ref().map(|b| b.view());
    let mut y = alloc::<f32>(dev, n)?;
    if n > 0 {
        let (x, w, y) = (&x.view(), &w.view(), &mut head_mut(&mut y, n));
        kc::conv2d_forward_simt(dev, &g, x, w, y, bias_view.as_ref().map(Bias::F32), 1.0, 0.0, act).ctx(OP)?;
    }
    Ok(s.like(f32_output(dev, y, n, s.dtype())?, n))
}

pub(super) fn conv2d_grad_input(
    dy: &CudaStorage,
    l: &Layout,
    k: &CudaStorage,
    kl: &Layout,
    p: &Conv2dParams,
) -> Result<CudaStorage> {
    const OP: &str = "conv2d_grad_input";
    same_float(OP, dy, k)?;
    let dev = &dy.dev;
    let g = conv_geom(OP, p)?;
    let n = g.x_len();
    let half = half_conv!(dev, &g, (&dy.data, l), (&k.data, kl), n, None, |gy, w, dx, _, tc| {
        if tc {
            kc::conv2d_backward_input_tc(dev, &g, gy, w, dx, 1.0, 0.0)
        } else {
            kc::conv2d_backward_input_simt(dev, &g, gy, w, dx, 1.0, 0.0)
        }
    });
    if let Some(dx) = half {
        return Ok(dy.like(dx, n));
    }
    if let Some(dx) = f64_conv(OP, dev, &g, kc::ConvPass::GradInput, (dy, l), (k, kl), n)? {
        return Ok(dx);
    }
    let (gy, w) = (f32_input(OP, dy, l)?, f32_input(OP, k, kl)?);
    let mut dx = alloc::<f32>(dev, n)?;
    if n > 0 {
        if g.y_len() == 0 {
            dev.stream().memset_zeros(&mut head_mut(&mut dx, n)).ctx(OP)?;
        } else {
            kc::conv2d_backward_input_simt(dev, &g, &gy.view(), &w.view(), &mut head_mut(&mut dx, n), 1.0, 0.0)
                .ctx(OP)?;
        }
    }
    Ok(dy.like(f32_output(dev, dx, n, dy.dtype())?, n))
}

pub(super) fn conv2d_grad_kernel(
    x: &CudaStorage,
    l: &Layout,
    dy: &CudaStorage,
    dyl: &Layout,
    p: &Conv2dParams,
) -> Result<CudaStorage> {
    const OP: &str = "conv2d_grad_kernel";
    same_float(OP, x, dy)?;
    let dev = &x.dev;
    let g = conv_geom(OP, p)?;
    let n = g.w_len();
    let half = half_conv!(dev, &g, (&x.data, l), (&dy.data, dyl), n, None, |xs, gy, dw, _, tc| {
        if tc {
            kc::conv2d_backward_kernel_tc(dev, &g, xs, gy, dw, 1.0, 0.0)
        } else {
            kc::conv2d_backward_kernel_simt(dev, &g, xs, gy, dw, 1.0, 0.0)
        }
    });
    if let Some(dw) = half {
        return Ok(x.like(dw, n));
    }
    if let Some(dw) = f64_conv(OP, dev, &g, kc::ConvPass::GradKernel, (x, l), (dy, dyl), n)? {
        return Ok(dw);
    }
    let (xi, gy) = (f32_input(OP, x, l)?, f32_input(OP, dy, dyl)?);
    let mut dw = alloc::<f32>(dev, n)?;
    if n > 0 {
        if g.y_len() == 0 {
            dev.stream().memset_zeros(&mut head_mut(&mut dw, n)).ctx(OP)?;
        } else {
            kc::conv2d_backward_kernel_simt(dev, &g, &xi.view(), &gy.view(), &mut head_mut(&mut dw, n), 1.0, 0.0)
                .ctx(OP)?;
        }
    }
    Ok(x.like(f32_output(dev, dw, n, x.dtype())?, n))
}

/// The float storage of a pooling operand, typed: `$body` runs with `$x` bound to the
/// `CudaSlice<T>` (F64: its `i64` bit buffer) and `$poison` to the value fresh buffers of `T`
/// are poisoned with, and the result is wrapped back into the same `Data` variant.
macro_rules! float_pool_data {
    ($op:expr, $s:expr, |$x:ident, $poison:ident| $body:expr) => {
        match &$s.data {
            Data::F32($x) => {
                let $poison = f32::NAN;
                Data::F32($body)
            }
            Data::F16($x) => {
                let $poison = half::f16::NAN;
                Data::F16($body)
            }
            Data::BF16($x) => {
                let $poison = half::bf16::NAN;
                Data::BF16($body)
            }
            Data::F64($x) => {
                let $poison = F64_POISON;
                Data::F64($body)
            }
            _ => {
                return Err(Error::UnsupportedDType { op: $op, dtype: $s.dtype(), hint: "cast to a float dtype first" })
            }
        }
    };
}

/// `pass` from operand `x` (layout `l`, made contiguous) into a fresh `n`-element output
/// of its dtype (not launched when `n` is 0); `poison` marks unwritten elements.
fn pool_pass<T: kk::DType>(
    op: &'static str,
    dev: &kk::CudaDevice,
    (x, l): (&CudaSlice<T>, &Layout),
    n: usize,
    poison: T,
    pass: impl FnOnce(&CudaView<'_, T>, &mut CudaViewMut<'_, T>) -> kk::Result<()>,
) -> Result<CudaSlice<T>> {
    let x = contig(dev, x, l, poison)?;
    let mut y = alloc_fill(dev, n, poison)?;
    if n > 0 {
        pass(&x.view(), &mut head_mut(&mut y, n)).ctx(op)?;
    }
    Ok(y)
}

pub(super) fn max_pool2d(s: &CudaStorage, l: &Layout, p: &Pool2dParams) -> Result<(CudaStorage, CudaStorage)> {
    const OP: &str = "max_pool2d";
    let (dev, g) = (&*s.dev, pool_geom(OP, p)?);
    let n = p.n * p.oh * p.ow * p.c;
    let mut idx = alloc::<i64>(dev, n)?;
    let y = float_pool_data!(OP, s, |x, poison| pool_pass(OP, dev, (x, l), n, poison, |x, y| {
        kp::max_pool2d(dev, &g, x, y, &mut head_mut(&mut idx, n))
    })?);
    Ok((s.like(y, n), s.like(Data::I64(idx), n)))
}

pub(super) fn max_pool2d_grad(
    dy: &CudaStorage,
    l: &Layout,
    idx: &CudaStorage,
    il: &Layout,
    p: &Pool2dParams,
) -> Result<CudaStorage> {
    const OP: &str = "max_pool2d_grad";
    dy.same_device(OP, idx)?;
    let (dev, g) = (&*dy.dev, pool_geom(OP, p)?);
    let Data::I64(ix) = &idx.data else {
        return Err(Error::UnsupportedDType { op: OP, dtype: idx.dtype(), hint: "argmax must be I64" });
    };
    let ix = contig(dev, ix, il, i64::MIN)?;
    let n = p.n * p.h * p.w * p.c;
    let dx = float_pool_data!(OP, dy, |x, poison| pool_pass(OP, dev, (x, l), n, poison, |gy, dx| {
        kp::max_pool2d_backward(dev, &g, gy, &ix.view(), dx)
    })?);
    Ok(dy.like(dx, n))
}

pub(super) fn avg_pool2d(s: &CudaStorage, l: &Layout, p: &Pool2dParams) -> Result<CudaStorage> {
    const OP: &str = "avg_pool2d";
    let (dev, g) = (&*s.dev, pool_geom(OP, p)?);
    let n = p.n * p.oh * p.ow * p.c;
    let y = float_pool_data!(OP, s, |x, poison| pool_pass(OP, dev, (x, l), n, poison, |x, y| {
        kp::avg_pool2d(dev, &g, x, y, false)
    })?);
    Ok(s.like(y, n))
}

pub(super) fn avg_pool2d_grad(dy: &CudaStorage, l: &Layout, p: &Pool2dParams) -> Result<CudaStorage> {
    const OP: &str = "avg_pool2d_grad";
    let (dev, g) = (&*dy.dev, pool_geom(OP, p)?);
    let n = p.n * p.h * p.w * p.c;
    let dx = float_pool_data!(OP, dy, |x, poison| pool_pass(OP, dev, (x, l), n, poison, |gy, dx| {
        kp::avg_pool2d_backward(dev, &g, gy, dx, false)
    })?);
    Ok(dy.like(dx, n))
}
