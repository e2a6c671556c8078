//! Fused optimizer updates on CUDA: the CUDA arms of [`adam_update_many`](crate::ops::adam_update_many)
//! and [`sgd_update_many`](crate::ops::sgd_update_many) (and so of the single-tensor
//! [`Tensor::adam_update`](crate::Tensor::adam_update) and [`Tensor::sgd_update`](crate::Tensor::sgd_update)).
//!
//! F32 only (F64 arithmetic has no CUDA kernels). The kernels repeat the CPU's f32
//! operation order without FMA contraction, so both devices give the same bits; they are
//! multi-tensor, one launch per 24 parameters.

use super::*;
use crate::ops::{AdamStep, SgdStep};
use crate::{Error, Layout, Result};
use keel_cuda_kernels as kk;
use kk::cudarc::driver::{CudaView, CudaViewMut};
use kk::ops::optim as ko;

/// New parameter, first and second moment, and (AMSGrad) running maximum.
pub(crate) type AdamOut = (CudaStorage, CudaStorage, CudaStorage, Option<CudaStorage>);

/// The operands of one parameter: parameter first, all of its shape (checked by the caller).
pub(crate) type Operands<'a> = Vec<(&'a CudaStorage, &'a Layout)>;

/// One Keras Adam step per parameter; each `ops[k]` = parameter, gradient, `m`, `v` and
/// optionally `v_hat`; `decays[k]` the parameter's weight decay, applied first.
pub(crate) fn adam_update_many(ops: &[Operands<'_>], decays: &[Option<f64>], h: &AdamStep) -> Result<Vec<AdamOut>> {
    const OP: &str = "adam_update";
    // the same f32 constants as the CPU kernel
    let k = ko::AdamStep {
        alpha: h.alpha as f32,
        c1: (1.0 - h.beta_1) as f32,
        c2: (1.0 - h.beta_2) as f32,
        eps: h.epsilon as f32,
    };
    let outs = multi_update(OP, ops, 4..=5, |dev, views, out_views| {
        let xs: Vec<ko::AdamInputs<'_, '_>> = views
            .iter()
            .zip(decays)
            .map(|(v, d)| ko::AdamInputs {
                p: &v[0],
                decay: d.map(|d| d as f32),
                grad: &v[1],
                m: &v[2],
                v: &v[3],
                v_hat: v.get(4),
            })
            .collect();
        let mut outs: Vec<ko::AdamOutputs<'_, '_>> = out_views
            .iter_mut()
            .map(|o| match o.as_mut_slice() {
                [p, m, v, rest @ ..] => Ok(ko::AdamOutputs { p, m, v, v_hat: rest.first_mut() }),
                _ => Err(missing_outputs(OP)),
            })
            .collect::<Result<_>>()?;
        ko::adam_multi_f32(dev, &k, &xs, &mut outs).ctx(OP)
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
    const OP: &str = "sgd_update";
    // the same f32 constants as the CPU kernel
    let k = ko::SgdStep { lr: h.learning_rate as f32, momentum: h.momentum as f32, nesterov: h.nesterov };
    let outs = multi_update(OP, ops, 2..=3, |dev, views, out_views| {
        let xs: Vec<ko::SgdInputs<'_, '_>> = views
            .iter()
            .zip(decays)
            .map(|(v, d)| ko::SgdInputs { p: &v[0], decay: d.map(|d| d as f32), grad: &v[1], m: v.get(2) })
            .collect();
        let mut outs: Vec<ko::SgdOutputs<'_, '_>> = out_views
            .iter_mut()
            .map(|o| match o.as_mut_slice() {
                [p, rest @ ..] => Ok(ko::SgdOutputs { p, m: rest.first_mut() }),
                _ => Err(missing_outputs(OP)),
            })
            .collect::<Result<_>>()?;
        ko::sgd_multi_f32(dev, &k, &xs, &mut outs).ctx(OP)
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
/// count in `arity`, parameter first, gradient second), allocates a fresh F32 buffer for
/// every operand but the gradient, hands both to `launch`, and returns each parameter's
/// new storages in operand order.
fn multi_update(
    op: &'static str,
    ops: &[Operands<'_>],
    arity: std::ops::RangeInclusive<usize>,
    launch: impl FnOnce(&kk::CudaDevice, &[Vec<CudaView<'_, f32>>], &mut [Vec<CudaViewMut<'_, f32>>]) -> Result<()>,
) -> Result<Vec<Vec<CudaStorage>>> {
    let Some(first) = first_param(op, ops)? else { return Ok(Vec::new()) };
    let dev = &*first.dev;
    let inputs = ops.iter().map(|o| f32_operands(op, first, o, arity.clone())).collect::<Result<Vec<_>>>()?;
    let views: Vec<Vec<CudaView<'_, f32>>> = inputs.iter().map(|c| c.iter().map(|x| x.view()).collect()).collect();
    let mut bufs = Vec::with_capacity(ops.len());
    for (o, v) in ops.iter().zip(&views) {
        let n = o[0].1.shape().elem_count();
        bufs.push((n, (1..v.len()).map(|_| alloc::<f32>(dev, n)).collect::<Result<Vec<_>>>()?));
    }
    {
        let mut out_views: Vec<Vec<_>> =
            bufs.iter_mut().map(|(n, b)| b.iter_mut().map(|x| head_mut(x, *n)).collect()).collect();
        launch(dev, &views, &mut out_views)?;
    }
    Ok(ops.iter().zip(bufs).map(|(o, (n, b))| b.into_iter().map(|x| o[0].0.like(Data::F32(x), n)).collect()).collect())
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

/// F32 views of one parameter's operands (`ops[0]` is the parameter), checked to be a
/// count in `arity` and to live on `first`'s GPU.
fn f32_operands<'a>(
    op: &'static str,
    first: &CudaStorage,
    ops: &[(&'a CudaStorage, &Layout)],
    arity: std::ops::RangeInclusive<usize>,
) -> Result<Vec<Contig<'a, f32>>> {
    if !arity.contains(&ops.len()) {
        return Err(Error::invalid(op, "internal: wrong number of operands"));
    }
    let mut inputs = Vec::with_capacity(ops.len());
    for &(s, l) in ops {
        first.same_device(op, s)?;
        match &s.data {
            Data::F32(x) => inputs.push(contig(&s.dev, x, l, f32::NAN)?),
            Data::F64(_) => return Err(no_f64(op)),
            _ => return Err(Error::NotImplemented { op, backend: "cuda" }),
        }
    }
    Ok(inputs)
}
