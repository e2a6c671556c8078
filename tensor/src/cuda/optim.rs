//! Fused optimizer updates on CUDA: the CUDA arms of [`Tensor::adam_update`](crate::Tensor::adam_update)
//! and [`Tensor::sgd_update`](crate::Tensor::sgd_update).
//!
//! F32 only (F64 arithmetic has no CUDA kernels). The kernel repeats the CPU's f32
//! operation order without FMA contraction, so both devices give the same bits.

use super::*;
use crate::ops::{AdamStep, SgdStep};
use crate::{Error, Layout, Result};
use keel_cuda_kernels as kk;
use kk::cudarc::driver::CudaView;
use kk::ops::optim as ko;

/// New parameter, first and second moment, and (AMSGrad) running maximum.
pub(crate) type AdamOut = (CudaStorage, CudaStorage, CudaStorage, Option<CudaStorage>);

/// One Keras Adam step; `ops` = parameter, gradient, `m`, `v` and optionally `v_hat`,
/// all of one shape (checked by the caller).
pub(crate) fn adam_update(ops: &[(&CudaStorage, &Layout)], h: &AdamStep) -> Result<AdamOut> {
    const OP: &str = "adam_update";
    let Some(&(p, pl)) = ops.first() else { return Err(Error::invalid(OP, "internal: no operands")) };
    if !(4..=5).contains(&ops.len()) {
        return Err(Error::invalid(OP, "internal: expected 4 or 5 operands"));
    }
    let dev = &p.dev;
    let n = pl.shape().elem_count();
    let inputs = f32_operands(OP, ops)?;
    let v: Vec<CudaView<'_, f32>> = inputs.iter().map(|c| c.view()).collect();
    let mut np = alloc::<f32>(dev, n)?;
    let mut nm = alloc::<f32>(dev, n)?;
    let mut nv = alloc::<f32>(dev, n)?;
    let mut nvh = if v.len() == 5 { Some(alloc::<f32>(dev, n)?) } else { None };
    // the same f32 constants as the CPU kernel
    let k = ko::AdamStep {
        alpha: h.alpha as f32,
        c1: (1.0 - h.beta_1) as f32,
        c2: (1.0 - h.beta_2) as f32,
        eps: h.epsilon as f32,
    };
    {
        let x = ko::AdamInputs { p: &v[0], grad: &v[1], m: &v[2], v: &v[3], v_hat: v.get(4) };
        let mut vp = head_mut(&mut np, n);
        let mut vm = head_mut(&mut nm, n);
        let mut vv = head_mut(&mut nv, n);
        let mut vvh = nvh.as_mut().map(|b| head_mut(b, n));
        let mut out = ko::AdamOutputs { p: &mut vp, m: &mut vm, v: &mut vv, v_hat: vvh.as_mut() };
        ko::adam_step_f32(dev, &k, &x, &mut out).ctx(OP)?;
    }
    let wrap = |b| p.like(Data::F32(b), n);
    Ok((wrap(np), wrap(nm), wrap(nv), nvh.map(wrap)))
}

/// F32 views of every operand (`ops[0]` is the parameter), checked to share its device.
fn f32_operands<'a>(op: &'static str, ops: &[(&'a CudaStorage, &Layout)]) -> Result<Vec<Contig<'a, f32>>> {
    let Some(&(p, _)) = ops.first() else { return Err(Error::invalid(op, "internal: no operands")) };
    let mut inputs = Vec::with_capacity(ops.len());
    for &(s, l) in ops {
        p.same_device(op, s)?;
        match &s.data {
            Data::F32(x) => inputs.push(contig(&p.dev, x, l, f32::NAN)?),
            Data::F64(_) => return Err(no_f64(op)),
            _ => return Err(Error::NotImplemented { op, backend: "cuda" }),
        }
    }
    Ok(inputs)
}

/// One Keras SGD step; `ops` = parameter, gradient and optionally the momentum buffer.
pub(crate) fn sgd_update(ops: &[(&CudaStorage, &Layout)], h: &SgdStep) -> Result<(CudaStorage, Option<CudaStorage>)> {
    const OP: &str = "sgd_update";
    if !(2..=3).contains(&ops.len()) {
        return Err(Error::invalid(OP, "internal: expected 2 or 3 operands"));
    }
    let inputs = f32_operands(OP, ops)?;
    let (p, pl) = ops[0];
    let dev = &p.dev;
    let n = pl.shape().elem_count();
    let v: Vec<CudaView<'_, f32>> = inputs.iter().map(|c| c.view()).collect();
    let mut np = alloc::<f32>(dev, n)?;
    let mut nm = if v.len() == 3 { Some(alloc::<f32>(dev, n)?) } else { None };
    // the same f32 constants as the CPU kernel
    let k = ko::SgdStep { lr: h.learning_rate as f32, momentum: h.momentum as f32, nesterov: h.nesterov };
    {
        let mut vp = head_mut(&mut np, n);
        let mut vm = nm.as_mut().map(|b| head_mut(b, n));
        ko::sgd_step_f32(dev, &k, &v[0], &v[1], v.get(2), &mut vp, vm.as_mut()).ctx(OP)?;
    }
    let wrap = |b| p.like(Data::F32(b), n);
    Ok((wrap(np), nm.map(wrap)))
}
