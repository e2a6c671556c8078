//! Fused optimizer updates on CUDA: the CUDA arms of [`adam_update_many`](crate::ops::adam_update_many)
//! and [`sgd_update_many`](crate::ops::sgd_update_many) (and so of the single-tensor
//! [`Tensor::adam_update`](crate::Tensor::adam_update) and [`Tensor::sgd_update`](crate::Tensor::sgd_update)).
//!
//! F32 and F64. The kernels repeat the CPU's operation order in the tensor's type without
//! FMA contraction, so both devices give the same bits; they are multi-tensor, one launch
//! per 24 parameters.

use super::*;
use crate::ops::{AdamStep, SgdStep};
use crate::storage::BackendStorage;
use crate::{DType, Error, Layout, Result};
use keel_cuda_kernels as kk;
use kk::cudarc::driver::{CudaSlice, CudaView, CudaViewMut};
use kk::ops::optim as ko;

/// New parameter, first and second moment, and (AMSGrad) running maximum.
pub(crate) type AdamOut = (CudaStorage, CudaStorage, CudaStorage, Option<CudaStorage>);

/// The operands of one parameter: parameter first, all of its shape (checked by the caller).
pub(crate) type Operands<'a> = Vec<(&'a CudaStorage, &'a Layout)>;

/// The buffers of an update's dtype: F32 in `f32` buffers, F64 as its bits in `i64` ones
/// (the kernels then compute in double).
trait Update: ko::UpdateDType {
    /// The value fresh outputs are poisoned with.
    const POISON: Self;
    /// `data`'s buffer if it holds this dtype.
    fn slice(data: &Data) -> Option<&CudaSlice<Self>>;
    /// The buffer as tensor data.
    fn data(buf: CudaSlice<Self>) -> Data;
    /// A step scalar in the update's type (the CPU kernel's `h.x as T`).
    fn scalar(v: f64) -> Self::Scalar;
}

impl Update for f32 {
    const POISON: f32 = f32::NAN;
    fn slice(data: &Data) -> Option<&CudaSlice<f32>> {
        match data {
            Data::F32(x) => Some(x),
            _ => None,
        }
    }
    fn data(buf: CudaSlice<f32>) -> Data {
        Data::F32(buf)
    }
    fn scalar(v: f64) -> f32 {
        v as f32
    }
}

impl Update for i64 {
    const POISON: i64 = F64_POISON;
    fn slice(data: &Data) -> Option<&CudaSlice<i64>> {
        match data {
            Data::F64(x) => Some(x),
            _ => None,
        }
    }
    fn data(buf: CudaSlice<i64>) -> Data {
        Data::F64(buf)
    }
    fn scalar(v: f64) -> f64 {
        v
    }
}

/// The results of `f32_run` on the F32 parameters and `f64_run` on the F64 ones (each one
/// multi-tensor run over its group), in the order of `ops`.
fn per_dtype<R>(
    op: &'static str,
    ops: &[Operands<'_>],
    decays: &[Option<f64>],
    f32_run: impl FnOnce(&[Operands<'_>], &[Option<f64>]) -> Result<Vec<R>>,
    f64_run: impl FnOnce(&[Operands<'_>], &[Option<f64>]) -> Result<Vec<R>>,
) -> Result<Vec<R>> {
    first_param(op, ops)?;
    // each group's positions in `ops`, operands and decays
    let group = |dtype: DType| {
        let idx: Vec<usize> = (0..ops.len()).filter(|&i| ops[i][0].0.dtype() == dtype).collect();
        let sub: Vec<Operands<'_>> = idx.iter().map(|&i| ops[i].clone()).collect();
        let dec: Vec<Option<f64>> = idx.iter().map(|&i| decays.get(i).copied().flatten()).collect();
        (idx, sub, dec)
    };
    let ((i32s, o32, d32), (i64s, o64, d64)) = (group(DType::F32), group(DType::F64));
    let r32 = if o32.is_empty() { Vec::new() } else { f32_run(&o32, &d32)? };
    let r64 = if o64.is_empty() { Vec::new() } else { f64_run(&o64, &d64)? };
    let mut out: Vec<Option<R>> = ops.iter().map(|_| None).collect();
    for (i, r) in i32s.into_iter().zip(r32).chain(i64s.into_iter().zip(r64)) {
        out[i] = Some(r);
    }
    ops.iter()
        .zip(out)
        .map(|(o, r)| r.ok_or(Error::UnsupportedDType { op, dtype: o[0].0.dtype(), hint: "F32 or F64 only" }))
        .collect()
}

/// One Keras Adam step per parameter; each `ops[k]` = parameter, gradient, `m`, `v` and
/// optionally `v_hat`; `decays[k]` the parameter's weight decay, applied first.
pub(crate) fn adam_update_many(ops: &[Operands<'_>], decays: &[Option<f64>], h: &AdamStep) -> Result<Vec<AdamOut>> {
    let op = "adam_update";
    per_dtype(op, ops, decays, |o, d| adam_typed::<f32>(o, d, h), |o, d| adam_typed::<i64>(o, d, h))
}

fn adam_typed<T: Update>(ops: &[Operands<'_>], decays: &[Option<f64>], h: &AdamStep) -> Result<Vec<AdamOut>> {
    const OP: &str = "adam_update";
    // the same constants as the CPU kernel, in the tensor's type
    let k = ko::AdamStep {
        alpha: T::scalar(h.alpha),
        c1: T::scalar(1.0 - h.beta_1),
        c2: T::scalar(1.0 - h.beta_2),
        eps: T::scalar(h.epsilon),
    };
    let outs = multi_update::<T>(OP, ops, 4..=5, |dev, views, out_views| {
        let xs: Vec<ko::AdamInputs<'_, '_, T>> = views
            .iter()
            .zip(decays)
            .map(|(v, d)| ko::AdamInputs {
                p: &v[0],
                decay: d.map(T::scalar),
                grad: &v[1],
                m: &v[2],
                v: &v[3],
                v_hat: v.get(4),
            })
            .collect();
        let mut outs: Vec<ko::AdamOutputs<'_, '_, T>> = out_views
            .iter_mut()
            .map(|o| match o.as_mut_slice() {
                [p, m, v, rest @ ..] => Ok(ko::AdamOutputs { p, m, v, v_hat: rest.first_mut() }),
                _ => Err(missing_outputs(OP)),
            })
            .collect::<Result<_>>()?;
        ko::adam_multi(dev, &k, &xs, &mut outs).ctx(OP)
    })?;
    outs.into_iter()
        .map(|o| {
            let mut w = o.into_iter();
            match (w.next(), w.next(), w.next()) {
                (Some(p), Some(m), Some(v)) => Ok((p, m, v, w.next())),
                _ => Err(missing_outputs(OP)),
            }
        })
        .collect()
}

/// One Keras SGD step per parameter; each `ops[k]` = parameter, gradient and optionally
/// the momentum buffer; `decays[k]` the parameter's weight decay, applied first.
pub(crate) fn sgd_update_many(
    ops: &[Operands<'_>],
    decays: &[Option<f64>],
    h: &SgdStep,
) -> Result<Vec<(CudaStorage, Option<CudaStorage>)>> {
    let op = "sgd_update";
    per_dtype(op, ops, decays, |o, d| sgd_typed::<f32>(o, d, h), |o, d| sgd_typed::<i64>(o, d, h))
}

fn sgd_typed<T: Update>(
    ops: &[Operands<'_>],
    decays: &[Option<f64>],
    h: &SgdStep,
) -> Result<Vec<(CudaStorage, Option<CudaStorage>)>> {
    const OP: &str = "sgd_update";
    // the same constants as the CPU kernel, in the tensor's type
    let k = ko::SgdStep { lr: T::scalar(h.learning_rate), momentum: T::scalar(h.momentum), nesterov: h.nesterov };
    let outs = multi_update::<T>(OP, ops, 2..=3, |dev, views, out_views| {
        let xs: Vec<ko::SgdInputs<'_, '_, T>> = views
            .iter()
            .zip(decays)
            .map(|(v, d)| ko::SgdInputs { p: &v[0], decay: d.map(T::scalar), grad: &v[1], m: v.get(2) })
            .collect();
        let mut outs: Vec<ko::SgdOutputs<'_, '_, T>> = out_views
            .iter_mut()
            .map(|o| match o.as_mut_slice() {
                [p, rest @ ..] => Ok(ko::SgdOutputs { p, m: rest.first_mut() }),
                _ => Err(missing_outputs(OP)),
            })
            .collect::<Result<_>>()?;
        ko::sgd_multi(dev, &k, &xs, &mut outs).ctx(OP)
    })?;
    outs.into_iter()
        .map(|o| {
            let mut w = o.into_iter();
            let p = w.next().ok_or_else(|| missing_outputs(OP))?;
            Ok((p, w.next()))
        })
        .collect()
}

/// What the multi-tensor updates share: checks and views each parameter's operands (a
/// count in `arity`, parameter first, gradient second), allocates a fresh buffer for
/// every operand but the gradient, hands both to `launch`, and returns each parameter's
/// new storages in operand order.
fn multi_update<T: Update>(
    op: &'static str,
    ops: &[Operands<'_>],
    arity: std::ops::RangeInclusive<usize>,
    launch: impl FnOnce(&kk::CudaDevice, &[Vec<CudaView<'_, T>>], &mut [Vec<CudaViewMut<'_, T>>]) -> Result<()>,
) -> Result<Vec<Vec<CudaStorage>>> {
    let Some(first) = first_param(op, ops)? else { return Ok(Vec::new()) };
    let dev = &*first.dev;
    let inputs = ops.iter().map(|o| operands::<T>(op, first, o, arity.clone())).collect::<Result<Vec<_>>>()?;
    let views: Vec<Vec<CudaView<'_, T>>> = inputs.iter().map(|c| c.iter().map(|x| x.view()).collect()).collect();
    let mut bufs = Vec::with_capacity(ops.len());
    for (o, v) in ops.iter().zip(&views) {
        let n = o[0].1.shape().elem_count();
        bufs.push((n, (1..v.len()).map(|_| alloc_fill(dev, n, T::POISON)).collect::<Result<Vec<_>>>()?));
    }
    {
        let mut out_views: Vec<Vec<_>> =
            bufs.iter_mut().map(|(n, b)| b.iter_mut().map(|x| head_mut(x, *n)).collect()).collect();
        launch(dev, &views, &mut out_views)?;
    }
    Ok(ops.iter().zip(bufs).map(|(o, (n, b))| b.into_iter().map(|x| o[0].0.like(T::data(x), n)).collect()).collect())
}

/// A broken invariant of the output lists (never the caller's input).
fn missing_outputs(op: &'static str) -> Error {
    Error::invalid(op, "internal: missing outputs")
}

/// The first parameter's storage (`None` for an empty list): every operand must share its
/// GPU. Every list must be non-empty.
fn first_param<'a>(op: &'static str, ops: &[Operands<'a>]) -> Result<Option<&'a CudaStorage>> {
    if ops.iter().any(|o| o.is_empty()) {
        return Err(Error::invalid(op, "internal: no operands"));
    }
    Ok(ops.first().map(|o| o[0].0))
}

/// Views of one parameter's operands (`ops[0]` is the parameter) in `T`'s dtype, checked to
/// be a count in `arity` and to live on `first`'s GPU.
fn operands<'a, T: Update>(
    op: &'static str,
    first: &CudaStorage,
    ops: &[(&'a CudaStorage, &Layout)],
    arity: std::ops::RangeInclusive<usize>,
) -> Result<Vec<Contig<'a, T>>> {
    if !arity.contains(&ops.len()) {
        return Err(Error::invalid(op, "internal: wrong number of operands"));
    }
    let mut inputs = Vec::with_capacity(ops.len());
    for &(s, l) in ops {
        first.same_device(op, s)?;
        match T::slice(&s.data) {
            Some(x) => inputs.push(contig(&s.dev, x, l, T::POISON)?),
            None => return Err(Error::DTypeMismatch { op, lhs: first.dtype(), rhs: s.dtype() }),
        }
    }
    Ok(inputs)
}
