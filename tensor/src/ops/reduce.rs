//! Reductions over any set of axes (sum, mean, max, min, argmax, argmin,
//! variance) and softmax / log-softmax along an axis.
//!
//! The tensor-level code moves the reduced axes last (a view), so a backend only
//! reduces trailing rows of a row-major walk. Integer reductions are exact (in i64; the
//! sum wraps, as PyTorch's), and a U8 sum is I64 ([`reduce_out_dtype`]).

use crate::storage::{dispatch1, BackendStorage};
use crate::{DType, Error, Result, Tensor};

/// A reduction over trailing elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Sum.
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Maximum (NaN propagates).
    Max,
    /// Minimum (NaN propagates).
    Min,
    /// Index of the first maximum (I64).
    ArgMax,
    /// Index of the first minimum (I64).
    ArgMin,
    /// Population variance (divide by N, as NumPy and Keras do).
    Var,
}

impl ReduceOp {
    /// The op's name as used in errors.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
            ReduceOp::ArgMax => "argmax",
            ReduceOp::ArgMin => "argmin",
            ReduceOp::Var => "var",
        }
    }
}

impl Tensor {
    /// Reduce over `axes` (empty = all axes; negative axes count from the end),
    /// keeping them as size-1 dims when `keepdim`.
    pub fn reduce(&self, op: ReduceOp, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let needs_float = matches!(op, ReduceOp::Mean | ReduceOp::Var);
        if needs_float && !self.dtype().is_float() {
            return Err(Error::UnsupportedDType {
                op: op.name(),
                dtype: self.dtype(),
                hint: "cast to a float dtype first",
            });
        }
        if matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin) && axes.len() != 1 && self.rank() > 1 {
            return Err(Error::invalid(op.name(), "argmax/argmin take exactly one axis"));
        }
        let axes = self.shape().axes(op.name(), axes)?;
        let size: usize = axes.iter().map(|&a| self.dims()[a]).product();
        if size == 0 && !matches!(op, ReduceOp::Sum) {
            return Err(Error::InvalidShape {
                op: op.name(),
                shape: self.shape().clone(),
                msg: "cannot reduce over an empty axis".into(),
            });
        }
        let keep: Vec<usize> = (0..self.rank()).filter(|a| !axes.contains(a)).collect();
        let perm: Vec<usize> = keep.iter().chain(axes.iter()).copied().collect();
        let moved = self.permute(&perm)?;
        let out_dims: Vec<usize> = if keepdim {
            (0..self.rank()).map(|a| if axes.contains(&a) { 1 } else { self.dims()[a] }).collect()
        } else {
            keep.iter().map(|&a| self.dims()[a]).collect()
        };
        if size == 0 {
            // the sum over an empty axis is 0, as in NumPy
            return Tensor::zeros(out_dims, reduce_out_dtype(op, self.dtype()), &self.device());
        }
        let s = moved.storage();
        let out = dispatch1!(&*s, |b| b.reduce(moved.layout(), op, size))?;
        Ok(Tensor::from_storage(out, out_dims))
    }

    /// Sum over `axes` (empty = all); U8 sums to I64 (as PyTorch sums bool and uint8 to int64).
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Sum, axes, keepdim)
    }

    /// Sum of every element as a 0-d tensor (U8 sums to I64).
    pub fn sum_all(&self) -> Result<Tensor> {
        self.reduce(ReduceOp::Sum, &[], false)
    }

    /// Mean over `axes` (empty = all).
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Mean, axes, keepdim)
    }

    /// Mean of every element as a 0-d tensor.
    pub fn mean_all(&self) -> Result<Tensor> {
        self.reduce(ReduceOp::Mean, &[], false)
    }

    /// Maximum over `axes` (empty = all).
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Max, axes, keepdim)
    }

    /// Minimum over `axes` (empty = all).
    pub fn min(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Min, axes, keepdim)
    }

    /// Index (I64) of the first maximum along `axis`.
    pub fn argmax(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::ArgMax, &[axis], keepdim)
    }

    /// Index (I64) of the first minimum along `axis`.
    pub fn argmin(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::ArgMin, &[axis], keepdim)
    }

    /// Population variance (divide by N) over `axes` (empty = all).
    pub fn var(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Var, axes, keepdim)
    }

    fn softmax_impl(&self, axis: isize, log: bool) -> Result<Tensor> {
        let op = if log { "log_softmax" } else { "softmax" };
        if !self.dtype().is_float() {
            return Err(Error::UnsupportedDType { op, dtype: self.dtype(), hint: "cast to a float dtype first" });
        }
        let a = self.shape().axis(op, axis)?;
        let last = self.rank() - 1;
        let moved = if a == last { self.clone() } else { self.transpose(a as isize, last as isize)? };
        let size = self.dims()[a];
        let s = moved.storage();
        let out = dispatch1!(&*s, |b| b.softmax_last(moved.layout(), size, log))?;
        let out = Tensor::from_storage(out, moved.shape().clone());
        if a == last {
            Ok(out)
        } else {
            out.transpose(a as isize, last as isize)?.contiguous()
        }
    }

    /// Softmax along `axis`, computed stably (max subtracted first).
    pub fn softmax(&self, axis: isize) -> Result<Tensor> {
        self.softmax_impl(axis, false)
    }

    /// Log-softmax along `axis`, computed stably (log-sum-exp).
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor> {
        self.softmax_impl(axis, true)
    }
}

/// The dtype a reduction produces for an input dtype: I64 for argmax/argmin and for the
/// sum (and integer mean) of U8, as PyTorch sums bool and uint8 to int64; else the input's.
pub fn reduce_out_dtype(op: ReduceOp, dtype: DType) -> DType {
    match (op, dtype) {
        (ReduceOp::ArgMax | ReduceOp::ArgMin, _) | (ReduceOp::Sum | ReduceOp::Mean, DType::U8) => DType::I64,
        _ => dtype,
    }
}

/// How a backend can read a reduction in place: the tensor layer hands over `l` with the
/// kept dims first and the reduced dims (product `size`) last; when the buffer holds those
/// elements contiguously from `l.offset()` with the reduced dims consecutive (some leading
/// kept dims, the reduced ones, the other kept dims, in row-major order), the reduction is
/// over the middle axis of an `[outer, size, inner]` block: `Some((outer, inner))`.
#[cfg(any(feature = "cpu", feature = "cuda"))]
pub(crate) fn reduce_view(l: &crate::Layout, size: usize) -> Option<(usize, usize)> {
    let (dims, strides) = (l.dims(), l.strides());
    if size == 0 || dims.contains(&0) {
        return None;
    }
    // the trailing dims whose product is `size` are the reduced ones
    let mut split = dims.len();
    let mut prod = 1;
    while split > 0 && prod < size {
        split -= 1;
        prod *= dims[split];
    }
    if prod != size {
        return None;
    }
    let row_major = |order: &mut dyn Iterator<Item = usize>| {
        let mut want = 1;
        for d in order {
            if dims[d] != 1 && strides[d] != want {
                return false;
            }
            want *= dims[d];
        }
        true
    };
    let k = split;
    (0..=k).find_map(|j| {
        // innermost first: the kept dims after the reduced ones, the reduced, the leading kept
        let mut order = (j..k).rev().chain((k..dims.len()).rev()).chain((0..j).rev());
        row_major(&mut order).then(|| (dims[..j].iter().product(), dims[j..k].iter().product()))
    })
}

#[cfg(feature = "cpu")]
pub(crate) mod cpu {
    use super::ReduceOp;
    use crate::{CpuStorage, Layout, Result, WithDType};
    use rayon::prelude::*;

    /// Rows of `size` elements in row-major order of `l`, as a contiguous buffer.
    fn rows<'a, T: Copy>(v: &'a [T], l: &Layout) -> std::borrow::Cow<'a, [T]> {
        match l.contiguous_range() {
            Some((s, e)) => std::borrow::Cow::Borrowed(&v[s..e]),
            None => {
                let mut out = Vec::with_capacity(l.shape().elem_count());
                crate::cpu::walk([l], |[o]| out.push(v[o]));
                std::borrow::Cow::Owned(out)
            }
        }
    }

    fn reduce_row<T: WithDType>(row: &[T], op: ReduceOp) -> f64 {
        match op {
            ReduceOp::Sum => row.iter().map(|x| x.to_f64()).sum(),
            ReduceOp::Mean => row.iter().map(|x| x.to_f64()).sum::<f64>() / row.len() as f64,
            ReduceOp::Var => {
                let n = row.len() as f64;
                let m = row.iter().map(|x| x.to_f64()).sum::<f64>() / n;
                row.iter().map(|x| (x.to_f64() - m).powi(2)).sum::<f64>() / n
            }
            ReduceOp::Max | ReduceOp::Min | ReduceOp::ArgMax | ReduceOp::ArgMin => {
                let want_max = matches!(op, ReduceOp::Max | ReduceOp::ArgMax);
                let (mut best, mut best_i) = (row[0].to_f64(), 0usize);
                for (i, x) in row.iter().enumerate().skip(1) {
                    let x = x.to_f64();
                    if best.is_nan() {
                        break;
                    }
                    if x.is_nan() || (want_max && x > best) || (!want_max && x < best) {
                        best = x;
                        best_i = i;
                    }
                }
                if matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin) {
                    best_i as f64
                } else {
                    best
                }
            }
        }
    }

    /// `f` of each row of `size` elements (in parallel for large inputs).
    fn map_rows<T: Copy + Sync, R: Send>(
        v: &[T],
        l: &Layout,
        size: usize,
        f: impl Fn(&[T]) -> R + Sync + Send,
    ) -> Vec<R> {
        let data = rows(v, l);
        if data.len() >= 1 << 15 {
            data.par_chunks(size).map(f).collect()
        } else {
            data.chunks(size).map(f).collect()
        }
    }

    fn reduce_typed<T: WithDType>(v: &[T], l: &Layout, op: ReduceOp, size: usize) -> Vec<f64> {
        map_rows(v, l, size, |r| reduce_row(r, op))
    }

    /// One row of an integer reduction, exact in i64: the sum wraps (as PyTorch's), the mean
    /// is the sum divided by the length (truncated), the extremes are the first ones.
    fn reduce_row_int<T: Copy + Into<i64>>(row: &[T], op: ReduceOp) -> i64 {
        let sum = || row.iter().fold(0i64, |a, &x| a.wrapping_add(x.into()));
        match op {
            ReduceOp::Sum => sum(),
            ReduceOp::Mean | ReduceOp::Var => sum() / row.len().max(1) as i64,
            ReduceOp::Max | ReduceOp::Min | ReduceOp::ArgMax | ReduceOp::ArgMin => {
                let want_max = matches!(op, ReduceOp::Max | ReduceOp::ArgMax);
                let mut best = (0usize, row.first().map_or(0, |&x| x.into()));
                for (i, &x) in row.iter().enumerate().skip(1) {
                    let x: i64 = x.into();
                    if (want_max && x > best.1) || (!want_max && x < best.1) {
                        best = (i, x);
                    }
                }
                if matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin) {
                    best.0 as i64
                } else {
                    best.1
                }
            }
        }
    }

    /// An I64 or U8 reduction in i64 (no f64 rounding above 2^53); variance is not one
    /// (`None`: the float path, which the tensor layer refuses for integers anyway).
    fn reduce_int<T: Copy + Into<i64> + Sync>(
        v: &[T],
        l: &Layout,
        op: ReduceOp,
        size: usize,
        dtype: crate::DType,
    ) -> Option<CpuStorage> {
        if op == ReduceOp::Var {
            return None;
        }
        let vals = map_rows(v, l, size, |r| reduce_row_int(r, op));
        Some(match super::reduce_out_dtype(op, dtype) {
            // the max or min of U8 values is a U8 value
            crate::DType::U8 => CpuStorage::U8(vals.into_iter().map(|x| x.clamp(0, 255) as u8).collect()),
            _ => CpuStorage::I64(vals),
        })
    }

    /// When the reduced (trailing) dims of `l` are the *leading* dims of a
    /// row-major block (e.g. a bias gradient: `[n, h, w, c]` summed to `[c]`),
    /// the block's storage range and its column count: the reduction is then
    /// a column sum of a `[size, cols]` matrix, read in order.
    fn leading_block(l: &Layout, size: usize) -> Option<(usize, usize)> {
        match super::reduce_view(l, size)? {
            (1, cols) => Some((l.offset(), cols)),
            _ => None,
        }
    }

    /// Rows per parallel task of the column sums (fixed, so the result does not
    /// depend on the thread count).
    const COL_SUM_ROWS: usize = 256;

    /// Column sums (f64 accumulation) of the `[rows, cols]` matrix `m`: fixed
    /// chunks of rows are summed in parallel, then the chunk sums in order.
    fn column_sums<T: WithDType>(m: &[T], rows: usize, cols: usize) -> Vec<f64> {
        let sum_rows = |chunk: &[T]| {
            let mut acc = vec![0f64; cols];
            for row in chunk.chunks_exact(cols) {
                for (a, x) in acc.iter_mut().zip(row) {
                    *a += x.to_f64();
                }
            }
            acc
        };
        let step = COL_SUM_ROWS * cols;
        let parts: Vec<Vec<f64>> = if rows * cols >= 1 << 15 {
            m[..rows * cols].par_chunks(step).map(sum_rows).collect()
        } else {
            m[..rows * cols].chunks(step).map(sum_rows).collect()
        };
        let mut total = vec![0f64; cols];
        for p in parts {
            for (t, x) in total.iter_mut().zip(p) {
                *t += x;
            }
        }
        total
    }

    /// The float types of [`relu_grad_column_sums`] (f32, f64).
    pub(crate) trait ReluGradElem: WithDType + PartialOrd + std::ops::Mul<Output = Self> + Send + Sync {}
    impl ReluGradElem for f32 {}
    impl ReluGradElem for f64 {}

    crate::cpu::simd_fn! {
        /// One chunk of [`relu_grad_column_sums`]: `gz = g * relu'(y)` written out and its
        /// column sums (f64, rows in order) returned.
        fn relu_grad_chunk[T: ReluGradElem][T](
            y: &[T],
            g: &[T],
            gz: &mut [std::mem::MaybeUninit<T>],
            cols: usize,
        ) -> Vec<f64> {
            let (zero, one) = (T::from_f64(0.0), T::from_f64(1.0));
            let mut acc = vec![0f64; cols];
            for ((yr, gr), zr) in y.chunks_exact(cols).zip(g.chunks_exact(cols)).zip(gz.chunks_exact_mut(cols)) {
                let acc = &mut acc[..yr.len()];
                for (((a, &y), &g), z) in acc.iter_mut().zip(yr).zip(gr).zip(zr.iter_mut()) {
                    // the ReLU's derivative as the unary table has it: g * (y > 0 ? 1 : 0)
                    let d = if y > zero { one } else { zero };
                    let v = g * d;
                    z.write(v);
                    *a += v.to_f64();
                }
            }
            acc
        }
    }

    /// The ReLU's input gradient and its bias gradient in one pass over a `[rows, cols]`
    /// matrix (`y` the ReLU's output, `g` the gradient reaching it): `gz = g * relu'(y)` and
    /// `gz`'s column sums, with the same bits as `unary_grad` then the column-sum
    /// reduction (same derivative, same chunks of rows, same order of additions).
    pub(crate) fn relu_grad_column_sums<T: ReluGradElem>(y: &[T], g: &[T], cols: usize) -> (Vec<T>, Vec<f64>) {
        let mut gz: Vec<T> = Vec::with_capacity(y.len());
        let step = COL_SUM_ROWS * cols.max(1);
        let work = |((y, g), z): ((&[T], &[T]), &mut [std::mem::MaybeUninit<T>])| relu_grad_chunk(y, g, z, cols);
        let out = &mut gz.spare_capacity_mut()[..y.len()];
        let parts: Vec<Vec<f64>> = if y.len() >= 1 << 15 {
            y.par_chunks(step).zip(g.par_chunks(step)).zip(out.par_chunks_mut(step)).map(work).collect()
        } else {
            y.chunks(step).zip(g.chunks(step)).zip(out.chunks_mut(step)).map(work).collect()
        };
        // SAFETY: the chunks cover all `y.len()` elements and `relu_grad_chunk` writes each
        // one (`y`, `g` and the output have the same length, a multiple of `cols`).
        unsafe { gz.set_len(y.len()) };
        let mut total = vec![0f64; cols];
        for p in parts {
            for (t, x) in total.iter_mut().zip(p) {
                *t += x;
            }
        }
        (gz, total)
    }

    fn reduce_leading<T: WithDType>(v: &[T], l: &Layout, op: ReduceOp, size: usize) -> Option<Vec<f64>> {
        if !matches!(op, ReduceOp::Sum | ReduceOp::Mean) {
            return None;
        }
        let (start, cols) = leading_block(l, size)?;
        let mut out = column_sums(&v[start..], size, cols);
        if op == ReduceOp::Mean {
            out.iter_mut().for_each(|x| *x /= size as f64);
        }
        Some(out)
    }

    pub(crate) fn reduce(s: &CpuStorage, l: &Layout, op: ReduceOp, size: usize) -> Result<CpuStorage> {
        let int = match s {
            CpuStorage::I64(v) => reduce_int(v, l, op, size, s.dtype()),
            CpuStorage::U8(v) => reduce_int(v, l, op, size, s.dtype()),
            _ => None,
        };
        if let Some(out) = int {
            return Ok(out);
        }
        let fast = match s {
            CpuStorage::F32(v) => reduce_leading(v, l, op, size),
            CpuStorage::F64(v) => reduce_leading(v, l, op, size),
            _ => None,
        };
        if let Some(vals) = fast {
            return Ok(CpuStorage::from_f64_iter(vals.into_iter(), super::reduce_out_dtype(op, s.dtype())));
        }
        let vals = match s {
            CpuStorage::F32(v) => reduce_typed(v, l, op, size),
            CpuStorage::F64(v) => reduce_typed(v, l, op, size),
            CpuStorage::F16(v) => reduce_typed(v, l, op, size),
            CpuStorage::BF16(v) => reduce_typed(v, l, op, size),
            CpuStorage::I64(v) => reduce_typed(v, l, op, size),
            CpuStorage::U8(v) => reduce_typed(v, l, op, size),
        };
        Ok(CpuStorage::from_f64_iter(vals.into_iter(), super::reduce_out_dtype(op, s.dtype())))
    }

    fn softmax_row_f64(row: &[f64], out: &mut [f64], log: bool) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|x| (x - m).exp()).sum();
        for (o, x) in out.iter_mut().zip(row) {
            *o = if log { x - m - sum.ln() } else { (x - m).exp() / sum };
        }
    }

    /// One row of softmax in F32: the exps in one loop (it vectorizes), then their sum
    /// in order.
    #[inline(always)]
    fn softmax_row_f32(row: &[f32], out: &mut [f32], log: bool) {
        let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        for (o, &x) in out.iter_mut().zip(row) {
            *o = crate::ops::vmath::exp_f32(x - m);
        }
        let sum = out.iter().fold(0.0f32, |s, &e| s + e);
        if log {
            let ls = sum.ln();
            for (o, &x) in out.iter_mut().zip(row) {
                *o = x - m - ls;
            }
        } else {
            let inv = 1.0 / sum;
            out.iter_mut().for_each(|o| *o *= inv);
        }
    }

    crate::cpu::simd_fn! {
        /// Softmax over rows of `size` in F32 (AVX2 where the CPU has it).
        fn softmax_f32[][](data: &[f32], size: usize, log: bool) -> Vec<f32> {
            let mut out = vec![0f32; data.len()];
            out.par_chunks_mut(size).zip(data.par_chunks(size)).for_each(|(o, r)| softmax_row_f32(r, o, log));
            out
        }
    }

    pub(crate) fn softmax_last(s: &CpuStorage, l: &Layout, size: usize, log: bool) -> Result<CpuStorage> {
        if size == 0 {
            return s.copy_strided(l);
        }
        Ok(match s {
            CpuStorage::F32(v) => CpuStorage::F32(softmax_f32(&rows(v, l), size, log)),
            CpuStorage::F64(v) => {
                let data = rows(v, l);
                let mut out = vec![0f64; data.len()];
                out.par_chunks_mut(size).zip(data.par_chunks(size)).for_each(|(o, r)| softmax_row_f64(r, o, log));
                CpuStorage::F64(out)
            }
            other => {
                let dtype = other.dtype();
                let f = crate::ops::cast::cpu_to_dtype(other, l, crate::DType::F32)?;
                let out = softmax_last(&f, &Layout::contiguous(l.shape().clone()), size, log)?;
                crate::ops::cast::cpu_to_dtype(&out, &Layout::contiguous(l.shape().clone()), dtype)?
            }
        })
    }
}
