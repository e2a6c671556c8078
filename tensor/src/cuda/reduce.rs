//! Reductions over trailing rows and softmax on CUDA.
//!
//! The tensor layer moves the reduced axes last, so every reduction here is over
//! `rows x size` in row-major order of the layout: the input is made contiguous
//! (and widened to f32 for F16/BF16/U8), reduced with the f32 kernels, and the
//! result is converted back to the input dtype. Sums accumulate in f32 (tree
//! order), the CPU in f64; variance is two-pass (mean, then mean of squares of
//! the centred values). I64 and F64 reductions return `NotImplemented`: f32
//! accumulation would silently lose their precision.

use super::*;
use crate::ops::{ReduceOp, UnaryOp};
use crate::storage::BackendStorage;
use crate::{DType, Error, Layout, Result};
use half::{bf16, f16};
use keel_cuda_kernels as kk;
use kk::cudarc::driver::CudaSlice;
use kk::ops::reduce::{self as kr, ReduceShape};
use kk::ops::softmax as ks;

/// The elements of `l` as a contiguous f32 view (borrowed for contiguous F32).
pub(crate) fn f32_input<'a>(op: &'static str, s: &'a CudaStorage, l: &Layout) -> Result<Contig<'a, f32>> {
    let dev = &s.dev;
    let n = l.shape().elem_count();
    Ok(match &s.data {
        Data::F32(x) => contig(dev, x, l, f32::NAN)?,
        Data::F16(x) => Contig::Owned(copy::cast_view::<f16, f32>(dev, &contig(dev, x, l, f16::NAN)?.view())?, n),
        Data::BF16(x) => Contig::Owned(copy::cast_view::<bf16, f32>(dev, &contig(dev, x, l, bf16::NAN)?.view())?, n),
        Data::U8(x) => Contig::Owned(copy::cast_view::<u8, f32>(dev, &contig(dev, x, l, 0xA5)?.view())?, n),
        Data::F64(_) => return Err(no_f64(op)),
        Data::I64(_) => return Err(Error::NotImplemented { op, backend: "cuda" }),
    })
}

/// Convert an f32 result of `n` elements to `dtype` (a no-op for F32).
pub(crate) fn f32_output(dev: &kk::CudaDevice, out: CudaSlice<f32>, n: usize, dtype: DType) -> Result<Data> {
    Ok(match dtype {
        DType::F32 => Data::F32(out),
        DType::F16 => Data::F16(copy::cast_view(dev, &out.slice(0..n))?),
        DType::BF16 => Data::BF16(copy::cast_view(dev, &out.slice(0..n))?),
        DType::U8 => Data::U8(copy::cast_view(dev, &out.slice(0..n))?),
        DType::I64 => Data::I64(copy::cast_view(dev, &out.slice(0..n))?),
        DType::F64 => return Err(no_f64("f32_output")),
    })
}

pub(super) fn reduce(s: &CudaStorage, l: &Layout, op: ReduceOp, size: usize) -> Result<CudaStorage> {
    let dev = &s.dev;
    let n = l.shape().elem_count();
    if size == 0 {
        return Err(Error::invalid(op.name(), "cannot reduce over an empty axis"));
    }
    let rows = n / size;
    let x = f32_input(op.name(), s, l)?;
    let xv = x.view();
    let shape = ReduceShape { outer: rows, reduce: size, inner: 1 };
    let name = op.name();
    let sum = |input: &kk::cudarc::driver::CudaView<'_, f32>, scale: f32| -> Result<CudaSlice<f32>> {
        let mut out = alloc::<f32>(dev, rows)?;
        if rows > 0 {
            kr::reduce_f32(dev, kr::ReduceOp::Sum, shape, input, &mut head_mut(&mut out, rows), scale).ctx(name)?;
        }
        Ok(out)
    };
    let result = match op {
        ReduceOp::Sum => sum(&xv, 1.0)?,
        ReduceOp::Mean => sum(&xv, 1.0 / size as f32)?,
        ReduceOp::Max | ReduceOp::Min => {
            let kop = if op == ReduceOp::Max { kr::ReduceOp::Max } else { kr::ReduceOp::Min };
            let mut out = alloc::<f32>(dev, rows)?;
            if rows > 0 {
                kr::reduce_f32(dev, kop, shape, &xv, &mut head_mut(&mut out, rows), 1.0).ctx(name)?;
            }
            out
        }
        ReduceOp::ArgMax | ReduceOp::ArgMin => {
            let mut out = alloc::<i64>(dev, rows)?;
            if rows > 0 {
                kr::arg_reduce_f32(dev, op == ReduceOp::ArgMax, shape, &xv, &mut head_mut(&mut out, rows)).ctx(name)?;
            }
            return Ok(s.like(Data::I64(out), rows));
        }
        ReduceOp::Var => {
            let mean = sum(&xv, 1.0 / size as f32)?;
            // centred = x - mean (the mean broadcast along each row), then the mean of its squares
            let prog = super::elementwise::program::<f32>();
            let kl =
                kk::Layout::<3>::new(&[rows, size], [&[size as isize, 1], &[1, 0], &[size as isize, 1]]).ctx(name)?;
            let mut centred = alloc::<f32>(dev, n)?;
            let mut sq = alloc::<f32>(dev, n)?;
            if n > 0 {
                let sub = crate::BinaryOp::Sub.name();
                kk::ops::elementwise::binary_strided(
                    dev,
                    prog,
                    sub,
                    &xv,
                    &mean.slice(0..rows),
                    &mut head_mut(&mut centred, n),
                    &kl,
                )
                .ctx(name)?;
                let square = UnaryOp::Square.name();
                kk::ops::elementwise::unary(dev, prog, square, &centred.slice(0..n), &mut head_mut(&mut sq, n), 0.0)
                    .ctx(name)?;
            }
            sum(&sq.slice(0..n), 1.0 / size as f32)?
        }
    };
    let out_dtype = crate::ops::reduce::reduce_out_dtype(op, s.dtype());
    Ok(s.like(f32_output(dev, result, rows, out_dtype)?, rows))
}

pub(super) fn softmax_last(s: &CudaStorage, l: &Layout, size: usize, log: bool) -> Result<CudaStorage> {
    let op = if log { "log_softmax" } else { "softmax" };
    if size == 0 {
        return super::copy::copy_strided(s, l);
    }
    if !s.dtype().is_float() {
        return Err(Error::UnsupportedDType { op, dtype: s.dtype(), hint: "cast to a float dtype first" });
    }
    let dev = &s.dev;
    let n = l.shape().elem_count();
    let rows = n / size;
    let x = f32_input(op, s, l)?;
    let mut out = alloc::<f32>(dev, n)?;
    if n > 0 {
        ks::softmax_f32(dev, log, rows, size, &x.view(), &mut head_mut(&mut out, n)).ctx(op)?;
    }
    Ok(s.like(f32_output(dev, out, n, s.dtype())?, n))
}
