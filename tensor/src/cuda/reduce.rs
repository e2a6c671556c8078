//! Reductions over trailing rows, softmax and the fused softmax cross-entropy on CUDA.
//!
//! The tensor layer moves the reduced axes last, so every reduction here is over
//! `rows x size` in row-major order of the layout. When the buffer holds that as
//! `[outer, reduce, inner]` (the reduced axes consecutive in memory, e.g. a bias gradient's
//! sum over the batch axis), the kernels read it in place, column-wise when `inner > 1`;
//! otherwise the input is made contiguous first. F32, F16 and BF16 are read in their own
//! storage and accumulated in f32; sum/max/min round once to the input dtype. U8 max, min
//! and arg ops and variance go through f32 (widen, reduce, narrow: exact for U8); a U8 sum
//! is widened to I64 on the device and summed as I64 (the result is I64, as on the CPU).
//! Sums accumulate in f32 (tree order), the CPU in f64; variance is two-pass (mean, then
//! mean of squares of the centred values). F64 and I64 storage is read in place and
//! accumulated in f64 and i64, as on the CPU (I64 exact, the sum wrapping); F64 variance is
//! the CPU's two passes in f64 (I64 variance is refused on every device).

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

/// The `[outer, reduce, inner]` view of the buffer under `l` when the kernels can read the
/// reduction in place ([`crate::ops::reduce::reduce_view`]).
pub(crate) fn three_way(l: &Layout, size: usize) -> Option<ReduceShape> {
    let (outer, inner) = crate::ops::reduce::reduce_view(l, size)?;
    Some(ReduceShape { outer, reduce: size, inner })
}

/// The reduction's input as `[outer, reduce, inner]`: the buffer under `l` read in place
/// when [`three_way`] allows, else a contiguous copy (`rows x size`).
fn reduce_input<'a, T: Elem>(
    dev: &kk::CudaDevice,
    x: &'a CudaSlice<T>,
    l: &Layout,
    size: usize,
    poison: T,
) -> Result<(Contig<'a, T>, ReduceShape)> {
    let n = l.shape().elem_count();
    Ok(match three_way(l, size) {
        Some(shape) => (Contig::Borrowed(x.slice(l.offset()..l.offset() + n)), shape),
        None => (contig(dev, x, l, poison)?, ReduceShape { outer: n / size, reduce: size, inner: 1 }),
    })
}

/// Sum, mean, max, min, argmax or argmin of F32/F16/BF16 storage `x` (layout `l`) over
/// `size`-element groups, read in place when [`three_way`] allows, in the storage's own type.
fn reduce_typed<T: Elem + kk::FloatDType>(
    dev: &kk::CudaDevice,
    x: &CudaSlice<T>,
    l: &Layout,
    op: ReduceOp,
    size: usize,
    wrap: fn(CudaSlice<T>) -> Data,
) -> Result<Data> {
    let name = op.name();
    let rows = l.shape().elem_count() / size;
    let (input, shape) = reduce_input(dev, x, l, size, T::poison())?;
    let xv = input.view();
    if let ReduceOp::ArgMax | ReduceOp::ArgMin = op {
        let mut out = alloc::<i64>(dev, rows)?;
        if rows > 0 {
            kr::arg_reduce(dev, op == ReduceOp::ArgMax, shape, &xv, &mut head_mut(&mut out, rows)).ctx(name)?;
        }
        return Ok(Data::I64(out));
    }
    let (kop, scale) = match op {
        ReduceOp::Max => (kr::ReduceOp::Max, 1.0),
        ReduceOp::Min => (kr::ReduceOp::Min, 1.0),
        ReduceOp::Mean => (kr::ReduceOp::Sum, 1.0 / size as f32),
        _ => (kr::ReduceOp::Sum, 1.0),
    };
    let mut out = alloc::<T>(dev, rows)?;
    if rows > 0 {
        kr::reduce(dev, kop, shape, &xv, &mut head_mut(&mut out, rows), scale).ctx(name)?;
    }
    Ok(wrap(out))
}

/// Sum, mean, max, min, argmax or argmin of F64 or I64 storage (`wide`; both in `i64`
/// buffers), accumulated in f64 or i64 as the CPU does: the CPU's values (its `sum / n`
/// mean), up to the summation order for F64 (I64 is exact: wrapping sums in any order).
fn reduce_wide(
    dev: &kk::CudaDevice,
    x: &CudaSlice<i64>,
    l: &Layout,
    op: ReduceOp,
    size: usize,
    wide: kr::Wide,
) -> Result<Data> {
    let name = op.name();
    let rows = l.shape().elem_count() / size;
    let poison = if wide == kr::Wide::F64 { F64_POISON } else { i64::poison() };
    let (input, shape) = reduce_input(dev, x, l, size, poison)?;
    let xv = input.view();
    let mut out = alloc::<i64>(dev, rows)?;
    if rows > 0 {
        let ov = &mut head_mut(&mut out, rows);
        match op {
            ReduceOp::ArgMax | ReduceOp::ArgMin => {
                kr::arg_reduce_wide(dev, op == ReduceOp::ArgMax, wide, shape, &xv, ov).ctx(name)?;
                return Ok(Data::I64(out));
            }
            ReduceOp::Max => kr::reduce_wide(dev, kr::ReduceOp::Max, wide, shape, &xv, ov, 1.0),
            ReduceOp::Min => kr::reduce_wide(dev, kr::ReduceOp::Min, wide, shape, &xv, ov, 1.0),
            ReduceOp::Mean => kr::reduce_wide(dev, kr::ReduceOp::Sum, wide, shape, &xv, ov, size as f64),
            _ => kr::reduce_wide(dev, kr::ReduceOp::Sum, wide, shape, &xv, ov, 1.0),
        }
        .ctx(name)?;
    }
    Ok(if wide == kr::Wide::F64 { Data::F64(out) } else { Data::I64(out) })
}

/// The layout that broadcasts a contiguous vector of one value per row (`[rows]`, a
/// reduction's result) over `l`, whose trailing dims hold each row's `size` elements.
fn row_broadcast(l: &Layout, size: usize) -> Layout {
    let dims = l.dims();
    let (mut kept, mut reduced) = (dims.len(), 1);
    while kept > 0 && reduced < size {
        kept -= 1;
        reduced *= dims[kept];
    }
    let mut strides = l.shape().contiguous_strides();
    for (k, st) in strides.iter_mut().enumerate() {
        *st = if k < kept { *st / size } else { 0 };
    }
    Layout::new(l.shape().clone(), strides, 0)
}

/// softmax (or log_softmax) of F64 storage over its trailing `size` elements, in f64,
/// composed from the wide kernels with the CPU's formulas: `exp(x - max) / sum` and
/// `(x - max) - ln(sum)`, `sum` the row sum of `exp(x - max)`. The CPU's values up to the
/// summation order; six launches (F64 is the reference path, not the fast one).
fn softmax_f64(dev: &kk::CudaDevice, x: &CudaSlice<i64>, l: &Layout, size: usize, log: bool) -> Result<CudaSlice<i64>> {
    let op = if log { "log_softmax" } else { "softmax" };
    let n = l.shape().elem_count();
    let rows = n / size;
    let row_reduce =
        |kop: kr::ReduceOp, input: &kk::cudarc::driver::CudaView<'_, i64>, shape| -> Result<CudaSlice<i64>> {
            let mut out = alloc::<i64>(dev, rows)?;
            kr::reduce_wide(dev, kop, kr::Wide::F64, shape, input, &mut head_mut(&mut out, rows), 1.0).ctx(op)?;
            Ok(out)
        };
    let (input, shape) = reduce_input(dev, x, l, size, F64_POISON)?;
    let max = row_reduce(kr::ReduceOp::Max, &input.view(), shape)?;
    drop(input);
    let (bl, cl) = (row_broadcast(l, size), Layout::contiguous(l.shape().clone()));
    let ew = super::elementwise::wide_binary;
    let shifted = ew(dev, crate::BinaryOp::Sub, (x, l), (&max, &bl))?;
    let e = super::elementwise::wide_unary(dev, UnaryOp::Exp, (&shifted, &cl))?;
    let sum = row_reduce(kr::ReduceOp::Sum, &e.slice(0..n), ReduceShape { outer: rows, reduce: size, inner: 1 })?;
    if log {
        let log_sum = super::elementwise::wide_unary(dev, UnaryOp::Log, (&sum, &Layout::contiguous(rows)))?;
        ew(dev, crate::BinaryOp::Sub, (&shifted, &cl), (&log_sum, &bl))
    } else {
        ew(dev, crate::BinaryOp::Div, (&e, &cl), (&sum, &bl))
    }
}

/// The population variance of F64 storage over its trailing `size` elements, in f64 as the
/// CPU computes it: the mean (sum / n), the squared deviations `(x - m) * (x - m)` (the wide
/// program's sub and mul, the mean broadcast by stride 0), then their mean. Up to the
/// summation order, the CPU's values.
fn var_f64(dev: &kk::CudaDevice, x: &CudaSlice<i64>, l: &Layout, size: usize) -> Result<CudaSlice<i64>> {
    const OP: &str = "var";
    let n = l.shape().elem_count();
    let rows = n / size;
    let wide_sum = |input: &kk::cudarc::driver::CudaView<'_, i64>, shape: ReduceShape| -> Result<CudaSlice<i64>> {
        let mut out = alloc::<i64>(dev, rows)?;
        kr::reduce_wide(
            dev,
            kr::ReduceOp::Sum,
            kr::Wide::F64,
            shape,
            input,
            &mut head_mut(&mut out, rows),
            size as f64,
        )
        .ctx(OP)?;
        Ok(out)
    };
    let (input, shape) = reduce_input(dev, x, l, size, F64_POISON)?;
    let mean = wide_sum(&input.view(), shape)?;
    drop(input);
    let ml = row_broadcast(l, size);
    let centred = super::elementwise::wide_binary(dev, crate::BinaryOp::Sub, (x, l), (&mean, &ml))?;
    let cl = Layout::contiguous(l.shape().clone());
    let sq = super::elementwise::wide_binary(dev, crate::BinaryOp::Mul, (&centred, &cl), (&centred, &cl))?;
    wide_sum(&sq.slice(0..n), ReduceShape { outer: rows, reduce: size, inner: 1 })
}

pub(super) fn reduce(s: &CudaStorage, l: &Layout, op: ReduceOp, size: usize) -> Result<CudaStorage> {
    let dev = &s.dev;
    let n = l.shape().elem_count();
    if size == 0 {
        return Err(Error::invalid(op.name(), "cannot reduce over an empty axis"));
    }
    let rows = n / size;
    if let (ReduceOp::Var, Data::F64(x)) = (op, &s.data) {
        return Ok(s.like(Data::F64(var_f64(dev, x, l, size)?), rows));
    }
    if let (ReduceOp::Sum | ReduceOp::Mean, Data::U8(x)) = (op, &s.data) {
        // summed as I64 (exact; PyTorch sums uint8 to int64)
        let wide = copy::cast_view::<u8, i64>(dev, &contig(dev, x, l, 0xA5)?.view())?;
        let data = reduce_wide(dev, &wide, &Layout::contiguous(l.shape().clone()), op, size, kr::Wide::I64)?;
        return Ok(s.like(data, rows));
    }
    if op != ReduceOp::Var {
        let typed = match &s.data {
            Data::F32(x) => Some(reduce_typed(dev, x, l, op, size, Data::F32)?),
            Data::F16(x) => Some(reduce_typed(dev, x, l, op, size, Data::F16)?),
            Data::BF16(x) => Some(reduce_typed(dev, x, l, op, size, Data::BF16)?),
            Data::F64(x) => Some(reduce_wide(dev, x, l, op, size, kr::Wide::F64)?),
            Data::I64(x) => Some(reduce_wide(dev, x, l, op, size, kr::Wide::I64)?),
            Data::U8(_) => None,
        };
        if let Some(data) = typed {
            return Ok(s.like(data, rows));
        }
    }
    let x = f32_input(op.name(), s, l)?;
    let xv = x.view();
    let shape = ReduceShape { outer: rows, reduce: size, inner: 1 };
    let name = op.name();
    let sum = |input: &kk::cudarc::driver::CudaView<'_, f32>, scale: f32| -> Result<CudaSlice<f32>> {
        let mut out = alloc::<f32>(dev, rows)?;
        if rows > 0 {
            kr::reduce(dev, kr::ReduceOp::Sum, shape, input, &mut head_mut(&mut out, rows), scale).ctx(name)?;
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
                kr::reduce(dev, kop, shape, &xv, &mut head_mut(&mut out, rows), 1.0).ctx(name)?;
            }
            out
        }
        ReduceOp::ArgMax | ReduceOp::ArgMin => {
            let mut out = alloc::<i64>(dev, rows)?;
            if rows > 0 {
                kr::arg_reduce(dev, op == ReduceOp::ArgMax, shape, &xv, &mut head_mut(&mut out, rows)).ctx(name)?;
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
    if let Data::F64(x) = &s.data {
        return Ok(s.like(Data::F64(softmax_f64(dev, x, l, size, log)?), n));
    }
    let x = f32_input(op, s, l)?;
    let mut out = alloc::<f32>(dev, n)?;
    if n > 0 {
        ks::softmax_f32(dev, log, rows, size, &x.view(), &mut head_mut(&mut out, n)).ctx(op)?;
    }
    Ok(s.like(f32_output(dev, out, n, s.dtype())?, n))
}

/// `Tensor::relu_grad_with_bias_grad` for a ReLU's output `y` and the gradient `g`, both
/// contiguous `[rows, cols]` F32/F16/BF16 (`cols > 1`): `(g * relu'(y), its column sums)`
/// from one `relu_bwd_sum_*` launch, the bits of `unary_grad` and `sum`. `None` for other
/// dtypes and layouts (the caller runs the two ops).
pub(crate) fn relu_backward_sum(
    y: &CudaStorage,
    yl: &Layout,
    g: &CudaStorage,
    gl: &Layout,
    cols: usize,
) -> Result<Option<(CudaStorage, CudaStorage)>> {
    const OP: &str = "relu_grad_with_bias_grad";
    y.same_device(OP, g)?;
    let (Some(yr), Some(gr)) = (yl.contiguous_range(), gl.contiguous_range()) else { return Ok(None) };
    let n = yr.1 - yr.0;
    if cols < 2 || n == 0 || n % cols != 0 || gr.1 - gr.0 != n {
        return Ok(None);
    }
    fn go<T: Elem + kk::FloatDType>(
        dev: &kk::CudaDevice,
        (y, yr): (&CudaSlice<T>, (usize, usize)),
        (g, gr): (&CudaSlice<T>, (usize, usize)),
        cols: usize,
        wrap: fn(CudaSlice<T>) -> Data,
    ) -> Result<(Data, Data)> {
        let n = yr.1 - yr.0;
        let (mut gz, mut bias) = (alloc::<T>(dev, n)?, alloc::<T>(dev, cols)?);
        kr::relu_backward_sum(
            dev,
            n / cols,
            cols,
            &y.slice(yr.0..yr.1),
            &g.slice(gr.0..gr.1),
            &mut head_mut(&mut gz, n),
            &mut head_mut(&mut bias, cols),
        )
        .ctx(OP)?;
        Ok((wrap(gz), wrap(bias)))
    }
    let dev = &y.dev;
    let (gz, bias) = match (&y.data, &g.data) {
        (Data::F32(a), Data::F32(b)) => go(dev, (a, yr), (b, gr), cols, Data::F32)?,
        (Data::F16(a), Data::F16(b)) => go(dev, (a, yr), (b, gr), cols, Data::F16)?,
        (Data::BF16(a), Data::BF16(b)) => go(dev, (a, yr), (b, gr), cols, Data::BF16)?,
        _ => return Ok(None),
    };
    Ok(Some((y.like(gz, n), y.like(bias, cols))))
}

/// What [`softmax_cross_entropy`] returns: the per-row losses and, as asked or as the
/// kernel could, the gradient, the probabilities and the losses' mean (0-d).
pub(crate) struct FusedXent {
    /// The per-row losses.
    pub(crate) loss: CudaStorage,
    /// The gradient of `grad_scale * loss`, when asked for.
    pub(crate) grad: Option<CudaStorage>,
    /// `softmax(logits)`, when asked for.
    pub(crate) probs: Option<CudaStorage>,
    /// The mean of the losses (one element), for F32 logits of 1 to
    /// [`ks::XENT_MEAN_MAX_ROWS`] rows.
    pub(crate) mean: Option<CudaStorage>,
}

/// The fused softmax cross-entropy (`Tensor::softmax_cross_entropy_with`) of float logits
/// `s` (rows of `classes`) against I64 class indices or F32 probabilities `t`: one launch
/// of `softmax_xent_{sparse|dense}_{f32|f16|bf16}` for the per-row losses, the losses'
/// mean (up to `XENT_MEAN_MAX_ROWS` rows, where a loss would otherwise take it from a
/// reduction launch) and, as asked, the gradient and the probabilities. F16/BF16 logits
/// are read as f32 by the kernel (no cast launch); every output is F32. Class indices are
/// checked on the device by the caller; an out-of-range one counts as all-zero targets
/// (loss and gradient 0). `None` for F64 logits, which the caller runs as the op chain.
pub(crate) fn softmax_cross_entropy(
    s: &CudaStorage,
    l: &Layout,
    t: &CudaStorage,
    tl: &Layout,
    classes: usize,
    grad_scale: Option<f64>,
    probs: bool,
) -> Result<Option<FusedXent>> {
    const OP: &str = "softmax_cross_entropy";
    if !matches!(s.dtype(), DType::F32 | DType::F16 | DType::BF16) {
        return Ok(None); // no f64 kernel: the op chain runs (log_softmax, mul, sum in f64)
    }
    s.same_device(OP, t)?;
    let dev = &s.dev;
    let n = l.shape().elem_count();
    let rows = n / classes;
    let mut loss = alloc::<f32>(dev, rows)?;
    let mut grad = grad_scale.map(|_| alloc::<f32>(dev, n)).transpose()?;
    let mut p = if probs { Some(alloc::<f32>(dev, n)?) } else { None };
    let with_mean = (1..=ks::XENT_MEAN_MAX_ROWS).contains(&rows);
    let mut mean = if with_mean { Some(alloc::<f32>(dev, 1)?) } else { None };
    if n > 0 {
        let mut gv = grad.as_mut().map(|g| head_mut(g, n));
        let mut pv = p.as_mut().map(|p| head_mut(p, n));
        let mut mv = mean.as_mut().map(|m| head_mut(m, 1));
        let out = ks::XentOutputs {
            loss: &mut head_mut(&mut loss, rows),
            grad: gv.as_mut().map(|g| (g, grad_scale.unwrap_or(0.0) as f32)),
            probs: pv.as_mut(),
            mean: mv.as_mut(),
        };
        match &t.data {
            Data::I64(labels) => {
                let labels = contig(dev, labels, tl, -1)?;
                xent_launch(s, l, (rows, classes), ks::XentTargets::Classes(&labels.view()), out)
            }
            _ => {
                let targets = f32_input(OP, t, tl)?;
                xent_launch(s, l, (rows, classes), ks::XentTargets::Probs(&targets.view()), out)
            }
        }
        .ctx(OP)?;
    }
    let finish = |b: CudaSlice<f32>, len| s.like(Data::F32(b), len);
    Ok(Some(FusedXent {
        loss: finish(loss, rows),
        grad: grad.map(|g| finish(g, n)),
        probs: p.map(|p| finish(p, n)),
        mean: mean.map(|m| finish(m, 1)),
    }))
}

/// The `softmax_xent` launch of [`softmax_cross_entropy`] on the logits `s` as stored.
fn xent_launch(
    s: &CudaStorage,
    l: &Layout,
    (rows, classes): (usize, usize),
    targets: ks::XentTargets<'_, '_>,
    out: ks::XentOutputs<'_, '_>,
) -> Result<()> {
    fn typed<T: Elem + kk::FloatDType>(
        s: &CudaStorage,
        x: &CudaSlice<T>,
        l: &Layout,
        (rows, classes): (usize, usize),
        targets: ks::XentTargets<'_, '_>,
        out: ks::XentOutputs<'_, '_>,
    ) -> Result<()> {
        let x = contig(&s.dev, x, l, T::poison())?;
        ks::softmax_xent(&s.dev, rows, classes, &x.view(), targets, out).ctx("softmax_cross_entropy")
    }
    match &s.data {
        Data::F32(x) => typed(s, x, l, (rows, classes), targets, out),
        Data::F16(x) => typed(s, x, l, (rows, classes), targets, out),
        Data::BF16(x) => typed(s, x, l, (rows, classes), targets, out),
        _ => Err(Error::invalid("softmax_cross_entropy", "internal: logits of a dtype without a kernel")),
    }
}

#[cfg(test)]
mod tests {
    use super::three_way;
    use crate::Layout;
    use keel_cuda_kernels::ops::reduce::ReduceShape;

    /// The layout the tensor layer hands over: `dims` permuted to kept axes first, then `axes`.
    fn moved(dims: &[usize], axes: &[usize]) -> Layout {
        let keep = (0..dims.len()).filter(|a| !axes.contains(a));
        let perm: Vec<usize> = keep.chain(axes.iter().copied()).collect();
        Layout::contiguous(dims.to_vec()).permute(&perm).unwrap()
    }

    fn shape(outer: usize, reduce: usize, inner: usize) -> Option<ReduceShape> {
        Some(ReduceShape { outer, reduce, inner })
    }

    #[test]
    fn reductions_read_in_place_when_the_axes_are_consecutive() {
        // last axis: rows; a bias gradient (sum over the batch): columns
        assert_eq!(three_way(&moved(&[4, 5], &[1]), 5), shape(4, 5, 1));
        assert_eq!(three_way(&moved(&[128, 10], &[0]), 128), shape(1, 128, 10));
        // conv bias gradient: sum over N, H, W of NHWC
        assert_eq!(three_way(&moved(&[8, 6, 6, 32], &[0, 1, 2]), 288), shape(1, 288, 32));
        // a middle axis, and two consecutive middle axes
        assert_eq!(three_way(&moved(&[2, 3, 4], &[1]), 3), shape(2, 3, 4));
        assert_eq!(three_way(&moved(&[2, 3, 4, 5], &[1, 2]), 12), shape(2, 12, 5));
        // everything
        assert_eq!(three_way(&moved(&[3, 4], &[0, 1]), 12), shape(1, 12, 1));
        // size-1 dims anywhere do not matter
        assert_eq!(three_way(&moved(&[1, 7, 1, 3], &[1]), 7), shape(1, 7, 3));
        // a transposed input's last axis is the buffer's first: columns, no copy
        let t = Layout::contiguous(vec![4, 5]).permute(&[1, 0]).unwrap();
        assert_eq!(three_way(&t, 4), shape(1, 4, 5));
    }

    #[test]
    fn other_reductions_are_copied_first() {
        // axes 0 and 2 of [2, 3, 4] are not consecutive
        assert_eq!(three_way(&moved(&[2, 3, 4], &[0, 2]), 8), None);
        // kept axes out of memory order: the output's order would not be [outer, inner]
        let t = Layout::contiguous(vec![2, 3, 4]).permute(&[2, 0, 1]).unwrap();
        assert_eq!(three_way(&t, 3), None);
        // empty tensors take the copying path (which allocates nothing)
        assert_eq!(three_way(&moved(&[0, 5], &[1]), 5), None);
    }
}
