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
use kk::cudarc::driver::{CudaSlice, CudaView};
use kk::ops::optim as ko;

/// New parameter, first and second moment, and (AMSGrad) running maximum.
pub(crate) type AdamOut = (CudaStorage, CudaStorage, CudaStorage, Option<CudaStorage>);

/// The operands of one parameter: parameter first, all of its shape (checked by the caller).
pub(crate) type Operands<'a> = Vec<(&'a CudaStorage, &'a Layout)>;

/// One Keras Adam step per parameter; each `ops[k]` = parameter, gradient, `m`, `v` and
/// optionally `v_hat`; `decays[k]` the parameter's weight decay, applied first.
pub(crate) fn adam_update_many(ops: &[Operands<'_>], decays: &[Option<f64>], h: &AdamStep) -> Result<Vec<AdamOut>> {
    const OP: &str = "adam_update";
    let Some(first) = first_param(OP, ops)? else { return Ok(Vec::new()) };
    let dev = &*first.dev;
    let inputs = ops.iter().map(|o| f32_operands(OP, first, o, 4..=5)).collect::<Result<Vec<_>>>()?;
    let views: Vec<Vec<CudaView<'_, f32>>> = inputs.iter().map(|c| c.iter().map(|x| x.view()).collect()).collect();
    // Fresh outputs: parameter, m, v, and v_hat where the input has one.
    let mut bufs = Vec::with_capacity(ops.len());
    for (o, v) in ops.iter().zip(&views) {
        let n = o[0].1.shape().elem_count();
        bufs.push((n, new_f32(dev, n, 3 + usize::from(v.len() == 5))?));
    }
    // the same f32 constants as the CPU kernel
    let k = ko::AdamStep {
        alpha: h.alpha as f32,
        c1: (1.0 - h.beta_1) as f32,
        c2: (1.0 - h.beta_2) as f32,
        eps: h.epsilon as f32,
    };
    {
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
        let mut out_views: Vec<Vec<_>> =
            bufs.iter_mut().map(|(n, b)| b.iter_mut().map(|x| head_mut(x, *n)).collect()).collect();
        let mut outs: Vec<ko::AdamOutputs<'_, '_>> = out_views
            .iter_mut()
            .map(|o| match o.as_mut_slice() {
                [p, m, v, rest @ ..] => Ok(ko::AdamOutputs { p, m, v, v_hat: rest.first_mut() }),
                _ => Err(Error::invalid(OP, "internal: missing outputs")),
            })
            .collect::<Result<_>>()?;
        ko::adam_multi_f32(dev, &k, &xs, &mut outs).ctx(OP)?;
    }
    ops.iter()
        .zip(bufs)
        .map(|(o, (n, b))| {
            let mut w = b.into_iter().map(|x| o[0].0.like(Data::F32(x), n));
            let (p, m, v) = (w.next(), w.next(), w.next());
            match (p, m, v) {
                (Some(p), Some(m), Some(v)) => Ok((p, m, v, w.next())),
                _ => Err(Error::invalid(OP, "internal: missing outputs")),
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
    let Some(first) = first_param(OP, ops)? else { return Ok(Vec::new()) };
    let dev = &*first.dev;
    let inputs = ops.iter().map(|o| f32_operands(OP, first, o, 2..=3)).collect::<Result<Vec<_>>>()?;
    let views: Vec<Vec<CudaView<'_, f32>>> = inputs.iter().map(|c| c.iter().map(|x| x.view()).collect()).collect();
    // Fresh outputs: parameter, and momentum where the input has one.
    let mut bufs = Vec::with_capacity(ops.len());
    for (o, v) in ops.iter().zip(&views) {
        let n = o[0].1.shape().elem_count();
        bufs.push((n, new_f32(dev, n, 1 + usize::from(v.len() == 3))?));
    }
    // the same f32 constants as the CPU kernel
    let k = ko::SgdStep { lr: h.learning_rate as f32, momentum: h.momentum as f32, nesterov: h.nesterov };
    {
        let xs: Vec<ko::SgdInputs<'_, '_>> = views
            .iter()
            .zip(decays)
            .map(|(v, d)| ko::SgdInputs { p: &v[0], decay: d.map(|d| d as f32), grad: &v[1], m: v.get(2) })
            .collect();
        let mut out_views: Vec<Vec<_>> =
            bufs.iter_mut().map(|(n, b)| b.iter_mut().map(|x| head_mut(x, *n)).collect()).collect();
        let mut outs: Vec<ko::SgdOutputs<'_, '_>> = out_views
            .iter_mut()
            .map(|o| match o.as_mut_slice() {
                [p, rest @ ..] => Ok(ko::SgdOutputs { p, m: rest.first_mut() }),
                _ => Err(Error::invalid(OP, "internal: missing outputs")),
            })
            .collect::<Result<_>>()?;
        ko::sgd_multi_f32(dev, &k, &xs, &mut outs).ctx(OP)?;
    }
    ops.iter()
        .zip(bufs)
        .map(|(o, (n, b))| {
            let mut w = b.into_iter().map(|x| o[0].0.like(Data::F32(x), n));
            let p = w.next().ok_or_else(|| Error::invalid(OP, "internal: missing outputs"))?;
            Ok((p, w.next()))
        })
        .collect()
}

/// The first parameter's storage (`None` for an empty list): every operand must share its
/// GPU. Every list must be non-empty.
fn first_param<'a>(op: &'static str, ops: &[Operands<'a>]) -> Result<Option<&'a CudaStorage>> {
    if ops.iter().any(|o| o.is_empty()) {
        return Err(Error::invalid(op, "internal: no operands"));
    }
    Ok(ops.first().map(|o| o[0].0))
}

/// `count` fresh F32 buffers of `n` elements each.
fn new_f32(dev: &kk::CudaDevice, n: usize, count: usize) -> Result<Vec<CudaSlice<f32>>> {
    (0..count).map(|_| alloc::<f32>(dev, n)).collect()
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
