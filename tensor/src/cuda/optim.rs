//! Fused optimizer updates on CUDA: the CUDA arm of [`Tensor::adam_update`](crate::Tensor::adam_update).
//!
//! F32 only (F64 arithmetic has no CUDA kernels). The kernel repeats the CPU's f32
//! operation order without FMA contraction, so both devices give the same bits.

use super::*;
use crate::ops::AdamStep;
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
    let mut inputs = Vec::with_capacity(ops.len());
    for &(s, l) in ops {
        p.same_device(OP, s)?;
        match &s.data {
            Data::F32(x) => inputs.push(contig(dev, x, l, f32::NAN)?),
            Data::F64(_) => return Err(no_f64(OP)),
            _ => return Err(Error::NotImplemented { op: OP, backend: "cuda" }),
        }
    }
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
