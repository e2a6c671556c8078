//! Fused optimizer updates: one pass over a parameter and its state instead of
//! a chain of elementwise ops (each of which would read and write every element).
//!
//! The arithmetic is exactly the op chain it replaces, in the tensor's dtype and
//! in the same order, so a fused step gives the same bits as the unfused one.

use crate::{DType, Error, Result, Storage, Tensor};

/// Elements `[offset, offset + n)` of operand `i` of a [`cpu_operands`] list, whose host
/// storage must be the `$variant` arm.
macro_rules! cpu_slice {
    ($slices:expr, $i:expr, $n:expr, $variant:ident, $op:expr) => {
        match $slices.get($i) {
            Some((crate::CpuStorage::$variant(v), off)) => Ok(&v[*off..*off + $n]),
            _ => Err(Error::invalid($op, "internal: operand storage")),
        }
    };
}

/// The scalars of one Adam step (Keras formulas): `alpha` already folds in the
/// bias corrections, `alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    /// Step size with both bias corrections folded in.
    pub alpha: f64,
    /// Decay of the first moment.
    pub beta_1: f64,
    /// Decay of the second moment.
    pub beta_2: f64,
    /// Added to `sqrt(v)` in the denominator.
    pub epsilon: f64,
}

/// The result of [`Tensor::adam_update`]: new parameter, moments and (AMSGrad) maximum.
#[derive(Debug, Clone)]
pub struct AdamUpdate {
    /// The new parameter value.
    pub param: Tensor,
    /// The new first moment `m`.
    pub m: Tensor,
    /// The new second moment `v`.
    pub v: Tensor,
    /// The new running maximum of `v` (only with AMSGrad).
    pub v_hat: Option<Tensor>,
}

impl Tensor {
    /// One fused Adam step on parameter `self` with gradient `g` and state
    /// `m`, `v` (and `v_hat` for AMSGrad), all of one shape and float dtype:
    ///
    /// `m' = m + (g - m)(1 - beta_1)`, `v' = v + (g² - v)(1 - beta_2)`,
    /// `v̂' = max(v̂, v')`, `p' = p - alpha m' / (sqrt(v̂' or v') + epsilon)`,
    /// with every scalar taken in the tensor's dtype. F32 or F64, on the CPU or CUDA (the same
    /// bits on both: the CUDA kernel keeps the CPU's operation order in the tensor's type).
    pub fn adam_update(
        &self,
        g: &Tensor,
        m: &Tensor,
        v: &Tensor,
        v_hat: Option<&Tensor>,
        h: &AdamStep,
    ) -> Result<AdamUpdate> {
        const OP: &str = "adam_update";
        if self.device().is_cuda() {
            let one = AdamOperands { param: self, weight_decay: None, grad: g, m, v, v_hat };
            return adam_cuda_many(&[one], h)?.pop().ok_or_else(|| Error::invalid(OP, "internal: no result"));
        }
        let mut all = vec![self, g, m, v];
        all.extend(v_hat);
        check_operands(OP, &all)?;
        let cont = all.iter().map(|t| t.contiguous()).collect::<Result<Vec<_>>>()?;
        let guards: Vec<_> = cont.iter().map(|t| t.storage()).collect();
        let slices = cpu_operands(OP, &cont, &guards)?;
        let n = self.elem_count();
        let shape = self.shape().clone();
        let wrap = |s: crate::CpuStorage| Tensor::from_storage(Storage::Cpu(s), shape.clone());
        macro_rules! run {
            ($variant:ident, $t:ty) => {{
                let get = |i: usize| -> Result<&[$t]> { cpu_slice!(slices, i, n, $variant, OP) };
                let (p, g, m, v) = (get(0)?, get(1)?, get(2)?, get(3)?);
                let vh = if v_hat.is_some() { Some(get(4)?) } else { None };
                let k = cpu::Consts::<$t> {
                    alpha: h.alpha as $t,
                    c1: (1.0 - h.beta_1) as $t,
                    c2: (1.0 - h.beta_2) as $t,
                    eps: h.epsilon as $t,
                };
                let (np, nm, nv, nvh) = cpu::adam(p, g, m, v, vh, &k)?;
                AdamUpdate {
                    param: wrap(crate::CpuStorage::$variant(np)),
                    m: wrap(crate::CpuStorage::$variant(nm)),
                    v: wrap(crate::CpuStorage::$variant(nv)),
                    v_hat: nvh.map(|x| wrap(crate::CpuStorage::$variant(x))),
                }
            }};
        }
        Ok(match self.dtype() {
            DType::F32 => run!(F32, f32),
            _ => run!(F64, f64),
        })
    }
}

/// The host storage and element offset of each (contiguous) operand.
fn cpu_operands<'a>(
    op: &'static str,
    cont: &[Tensor],
    guards: &'a [std::sync::RwLockReadGuard<'_, Storage>],
) -> Result<Vec<(&'a crate::CpuStorage, usize)>> {
    cont.iter()
        .zip(guards)
        .map(|(t, s)| match &**s {
            Storage::Cpu(c) => Ok((c, t.layout().offset())),
            Storage::Cuda(_) => Err(Error::NotImplemented { op, backend: "cuda" }),
        })
        .collect()
}

/// Every operand has the parameter's (`all[0]`) shape, dtype and device; F32 or F64.
fn check_operands(op: &'static str, all: &[&Tensor]) -> Result<()> {
    let p = all[0];
    for t in &all[1..] {
        if t.shape() != p.shape() {
            return Err(Error::shape_mismatch(op, p.shape(), t.shape(), "every operand needs the parameter's shape"));
        }
        if t.dtype() != p.dtype() {
            return Err(Error::DTypeMismatch { op, lhs: p.dtype(), rhs: t.dtype() });
        }
    }
    if let Some(t) = all[1..].iter().find(|t| t.device() != p.device()) {
        return Err(Error::DeviceMismatch { op, lhs: p.device().to_string(), rhs: t.device().to_string() });
    }
    if !matches!(p.dtype(), DType::F32 | DType::F64) {
        return Err(Error::UnsupportedDType { op, dtype: p.dtype(), hint: "F32 or F64 only" });
    }
    Ok(())
}

/// The scalars of one SGD step (Keras formulas).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdStep {
    /// Learning rate.
    pub learning_rate: f64,
    /// Momentum factor (used when a momentum buffer is given).
    pub momentum: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// The result of [`Tensor::sgd_update`]: new parameter and (with momentum) new buffer.
#[derive(Debug, Clone)]
pub struct SgdUpdate {
    /// The new parameter value.
    pub param: Tensor,
    /// The new momentum buffer (exactly when one was given).
    pub momentum: Option<Tensor>,
}

impl Tensor {
    /// One fused SGD step on parameter `self` with gradient `g` and optional momentum
    /// buffer `m`, all of one shape and float dtype, with the scalars in the tensor's dtype:
    ///
    /// `lr_g = g lr`; without `m`: `p' = p - lr_g`; with it `m' = m momentum - lr_g` and
    /// `p' = p + m'`, or with Nesterov `p' = p + (m' momentum - lr_g)`.
    /// The same bits as that op chain; F32 or F64, on the CPU or CUDA (same bits too).
    pub fn sgd_update(&self, g: &Tensor, m: Option<&Tensor>, h: &SgdStep) -> Result<SgdUpdate> {
        const OP: &str = "sgd_update";
        if self.device().is_cuda() {
            let one = SgdOperands { param: self, weight_decay: None, grad: g, momentum: m };
            return sgd_cuda_many(&[one], h)?.pop().ok_or_else(|| Error::invalid(OP, "internal: no result"));
        }
        let mut all = vec![self, g];
        all.extend(m);
        check_operands(OP, &all)?;
        let cont = all.iter().map(|t| t.contiguous()).collect::<Result<Vec<_>>>()?;
        let guards: Vec<_> = cont.iter().map(|t| t.storage()).collect();
        let shape = self.shape().clone();
        let n = self.elem_count();
        let slices = cpu_operands(OP, &cont, &guards)?;
        let wrap = |s: crate::CpuStorage| Tensor::from_storage(Storage::Cpu(s), shape.clone());
        macro_rules! run {
            ($variant:ident, $t:ty) => {{
                let get = |i: usize| -> Result<&[$t]> { cpu_slice!(slices, i, n, $variant, OP) };
                let mm = if m.is_some() { Some(get(2)?) } else { None };
                let k = (h.learning_rate as $t, h.momentum as $t, h.nesterov);
                let (np, nm) = cpu::sgd(get(0)?, get(1)?, mm, k)?;
                SgdUpdate {
                    param: wrap(crate::CpuStorage::$variant(np)),
                    momentum: nm.map(|x| wrap(crate::CpuStorage::$variant(x))),
                }
            }};
        }
        Ok(match self.dtype() {
            DType::F32 => run!(F32, f32),
            _ => run!(F64, f64),
        })
    }
}

/// The operands of one parameter's Adam step, for [`adam_update_many`].
#[derive(Debug, Clone, Copy)]
pub struct AdamOperands<'a> {
    /// The parameter.
    pub param: &'a Tensor,
    /// Decoupled weight decay applied to the parameter before the step, `p - p * d` in its
    /// dtype (keel-optim passes `weight_decay * lr`), or none.
    pub weight_decay: Option<f64>,
    /// Its gradient.
    pub grad: &'a Tensor,
    /// First moment.
    pub m: &'a Tensor,
    /// Second moment.
    pub v: &'a Tensor,
    /// Running maximum of `v` (AMSGrad only).
    pub v_hat: Option<&'a Tensor>,
}

/// [`Tensor::adam_update`] on many parameters with one step's scalars, as an optimizer
/// step over a model does: the same results, bit for bit, as applying each one's weight
/// decay (`p.sub(&p.mul_scalar(d)?)`) and calling it. When every parameter is on one GPU
/// the update, decay included, is multi-tensor: one kernel launch per 24 parameters
/// instead of three or four per parameter; otherwise a loop.
pub fn adam_update_many(items: &[AdamOperands<'_>], h: &AdamStep) -> Result<Vec<AdamUpdate>> {
    if on_one_gpu(items.iter().map(|i| i.param)) {
        return adam_cuda_many(items, h);
    }
    items.iter().map(|i| decayed(i.param, i.weight_decay)?.adam_update(i.grad, i.m, i.v, i.v_hat, h)).collect()
}

/// The operands of one parameter's SGD step, for [`sgd_update_many`].
#[derive(Debug, Clone, Copy)]
pub struct SgdOperands<'a> {
    /// The parameter.
    pub param: &'a Tensor,
    /// Decoupled weight decay applied to the parameter before the step, `p - p * d` in its
    /// dtype, or none.
    pub weight_decay: Option<f64>,
    /// Its gradient.
    pub grad: &'a Tensor,
    /// The momentum buffer (momentum SGD only).
    pub momentum: Option<&'a Tensor>,
}

/// [`Tensor::sgd_update`] on many parameters with one step's scalars: the same results,
/// bit for bit, as applying each one's weight decay and calling it; multi-tensor (one
/// launch per 24 parameters, decay included) when every parameter is on one GPU,
/// otherwise a loop.
pub fn sgd_update_many(items: &[SgdOperands<'_>], h: &SgdStep) -> Result<Vec<SgdUpdate>> {
    if on_one_gpu(items.iter().map(|i| i.param)) {
        return sgd_cuda_many(items, h);
    }
    items.iter().map(|i| decayed(i.param, i.weight_decay)?.sgd_update(i.grad, i.momentum, h)).collect()
}

/// `p - p * d` (decoupled weight decay), or `p` itself without one.
fn decayed(p: &Tensor, weight_decay: Option<f64>) -> Result<Tensor> {
    match weight_decay {
        Some(d) => p.sub(&p.mul_scalar(d)?),
        None => Ok(p.clone()),
    }
}

/// Every parameter on the same GPU (and at least one).
fn on_one_gpu<'a>(mut params: impl Iterator<Item = &'a Tensor>) -> bool {
    let Some(first) = params.next() else { return false };
    let dev = first.device();
    dev.is_cuda() && params.all(|p| p.device() == dev)
}

/// Checks each parameter's operand list (parameter first), makes every operand
/// contiguous and hands their device storages to `run`, one list per parameter.
#[cfg(feature = "cuda")]
fn cuda_many<R>(
    op: &'static str,
    lists: &[Vec<&Tensor>],
    run: impl FnOnce(&[crate::cuda::optim::Operands<'_>]) -> Result<Vec<R>>,
) -> Result<Vec<R>> {
    for all in lists {
        check_operands(op, all)?;
    }
    let cont = lists
        .iter()
        .map(|all| all.iter().map(|t| t.contiguous()).collect::<Result<Vec<_>>>())
        .collect::<Result<Vec<_>>>()?;
    let guards: Vec<Vec<_>> = cont.iter().map(|c| c.iter().map(|t| t.storage()).collect()).collect();
    let ops = cont
        .iter()
        .zip(&guards)
        .map(|(c, g)| {
            c.iter()
                .zip(g)
                .map(|(t, s)| match &**s {
                    Storage::Cuda(c) => Ok((c, t.layout())),
                    Storage::Cpu(_) => Err(Error::invalid(op, "internal: a CPU operand on a CUDA step")),
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    run(&ops)
}

/// The CUDA arm of [`adam_update_many`]: F32 and F64 parameters on one GPU.
#[cfg(feature = "cuda")]
fn adam_cuda_many(items: &[AdamOperands<'_>], h: &AdamStep) -> Result<Vec<AdamUpdate>> {
    let lists: Vec<Vec<&Tensor>> =
        items.iter().map(|i| [i.param, i.grad, i.m, i.v].into_iter().chain(i.v_hat).collect()).collect();
    let decays: Vec<Option<f64>> = items.iter().map(|i| i.weight_decay).collect();
    let outs = cuda_many("adam_update", &lists, |ops| crate::cuda::optim::adam_update_many(ops, &decays, h))?;
    Ok(items
        .iter()
        .zip(outs)
        .map(|(i, (p, m, v, v_hat))| {
            let wrap = |s| Tensor::from_storage(Storage::Cuda(s), i.param.shape().clone());
            AdamUpdate { param: wrap(p), m: wrap(m), v: wrap(v), v_hat: v_hat.map(wrap) }
        })
        .collect())
}

/// The CUDA arm of [`sgd_update_many`]: F32 and F64 parameters on one GPU.
#[cfg(feature = "cuda")]
fn sgd_cuda_many(items: &[SgdOperands<'_>], h: &SgdStep) -> Result<Vec<SgdUpdate>> {
    let lists: Vec<Vec<&Tensor>> =
        items.iter().map(|i| [i.param, i.grad].into_iter().chain(i.momentum).collect()).collect();
    let decays: Vec<Option<f64>> = items.iter().map(|i| i.weight_decay).collect();
    let outs = cuda_many("sgd_update", &lists, |ops| crate::cuda::optim::sgd_update_many(ops, &decays, h))?;
    Ok(items
        .iter()
        .zip(outs)
        .map(|(i, (p, m))| {
            let wrap = |s| Tensor::from_storage(Storage::Cuda(s), i.param.shape().clone());
            SgdUpdate { param: wrap(p), momentum: m.map(wrap) }
        })
        .collect())
}

/// Without the `cuda` feature no tensor lives on a GPU; this only keeps the dispatch uniform.
#[cfg(not(feature = "cuda"))]
fn adam_cuda_many(_: &[AdamOperands<'_>], _: &AdamStep) -> Result<Vec<AdamUpdate>> {
    Err(Error::BackendNotCompiled { op: "adam_update", backend: "cuda" })
}

/// Without the `cuda` feature no tensor lives on a GPU; this only keeps the dispatch uniform.
#[cfg(not(feature = "cuda"))]
fn sgd_cuda_many(_: &[SgdOperands<'_>], _: &SgdStep) -> Result<Vec<SgdUpdate>> {
    Err(Error::BackendNotCompiled { op: "sgd_update", backend: "cuda" })
}

#[cfg(not(feature = "cpu"))]
mod cpu {
    // Without the `cpu` kernels the values are never read.
    #[allow(dead_code)]
    pub(crate) struct Consts<T> {
        pub alpha: T,
        pub c1: T,
        pub c2: T,
        pub eps: T,
    }
    type Out<T> = (Vec<T>, Vec<T>, Vec<T>, Option<Vec<T>>);
    pub(crate) fn adam<T>(_: &[T], _: &[T], _: &[T], _: &[T], _: Option<&[T]>, _: &Consts<T>) -> crate::Result<Out<T>> {
        Err(crate::Error::BackendNotCompiled { op: "adam_update", backend: "cpu" })
    }
    pub(crate) fn sgd<T>(
        _: &[T],
        _: &[T],
        _: Option<&[T]>,
        _: (T, T, bool),
    ) -> crate::Result<(Vec<T>, Option<Vec<T>>)> {
        Err(crate::Error::BackendNotCompiled { op: "sgd_update", backend: "cpu" })
    }
}

#[cfg(feature = "cpu")]
mod cpu {
    use rayon::prelude::*;

    /// The step's scalars in the element type.
    pub(crate) struct Consts<T> {
        pub alpha: T,
        pub c1: T,
        pub c2: T,
        pub eps: T,
    }

    pub(crate) trait Float:
        Copy
        + Send
        + Sync
        + Default
        + PartialOrd
        + std::ops::Add<Output = Self>
        + std::ops::Sub<Output = Self>
        + std::ops::Mul<Output = Self>
        + std::ops::Div<Output = Self>
    {
        fn sqrt(self) -> Self;
    }
    impl Float for f32 {
        #[inline]
        fn sqrt(self) -> f32 {
            f32::sqrt(self)
        }
    }
    impl Float for f64 {
        #[inline]
        fn sqrt(self) -> f64 {
            f64::sqrt(self)
        }
    }

    /// Elements per parallel task (fixed; elementwise, so the split never changes a bit).
    const CHUNK: usize = 1 << 14;

    type Out<T> = (Vec<T>, Vec<T>, Vec<T>, Option<Vec<T>>);

    pub(crate) fn adam<T: Float>(
        p: &[T],
        g: &[T],
        m: &[T],
        v: &[T],
        vh: Option<&[T]>,
        k: &Consts<T>,
    ) -> crate::Result<Out<T>> {
        let n = p.len();
        let (mut np, mut nm, mut nv) = (vec![T::default(); n], vec![T::default(); n], vec![T::default(); n]);
        let mut nvh = vh.map(|_| vec![T::default(); n]);
        let chunk = |c: usize, (np, nm, nv): (&mut [T], &mut [T], &mut [T]), nvh: Option<&mut [T]>| {
            let s = c * CHUNK;
            let e = s + np.len();
            let (p, g, m, v) = (&p[s..e], &g[s..e], &m[s..e], &v[s..e]);
            match (nvh, vh) {
                (Some(nvh), Some(vh)) => {
                    let vh = &vh[s..e];
                    for i in 0..np.len() {
                        let gi = g[i];
                        let mi = m[i] + (gi - m[i]) * k.c1;
                        let vi = v[i] + (gi * gi - v[i]) * k.c2;
                        // `maximum`: ties and NaN follow `if x >= y { x } else { y }`
                        let hi = if vh[i] >= vi { vh[i] } else { vi };
                        nm[i] = mi;
                        nv[i] = vi;
                        nvh[i] = hi;
                        np[i] = p[i] - (mi * k.alpha) / (hi.sqrt() + k.eps);
                    }
                }
                _ => {
                    for i in 0..np.len() {
                        let gi = g[i];
                        let mi = m[i] + (gi - m[i]) * k.c1;
                        let vi = v[i] + (gi * gi - v[i]) * k.c2;
                        nm[i] = mi;
                        nv[i] = vi;
                        np[i] = p[i] - (mi * k.alpha) / (vi.sqrt() + k.eps);
                    }
                }
            }
        };
        let parts = np.par_chunks_mut(CHUNK).zip(nm.par_chunks_mut(CHUNK)).zip(nv.par_chunks_mut(CHUNK));
        match nvh.as_mut() {
            Some(h) => parts
                .zip(h.par_chunks_mut(CHUNK))
                .enumerate()
                .for_each(|(c, (((a, b), d), h))| chunk(c, (a, b, d), Some(h))),
            None => parts.enumerate().for_each(|(c, ((a, b), d))| chunk(c, (a, b, d), None)),
        }
        Ok((np, nm, nv, nvh))
    }

    /// Keras SGD in `T`, the op chain's order: `lr_g = g lr`, `m' = m momentum - lr_g`,
    /// `p' = p - lr_g` / `p + m'` / `p + (m' momentum - lr_g)`.
    pub(crate) fn sgd<T: Float>(
        p: &[T],
        g: &[T],
        m: Option<&[T]>,
        (lr, momentum, nesterov): (T, T, bool),
    ) -> crate::Result<(Vec<T>, Option<Vec<T>>)> {
        let n = p.len();
        let mut np = vec![T::default(); n];
        let Some(m) = m else {
            np.par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
                let s = c * CHUNK;
                for (i, o) in out.iter_mut().enumerate() {
                    *o = p[s + i] - g[s + i] * lr;
                }
            });
            return Ok((np, None));
        };
        let mut nm = vec![T::default(); n];
        np.par_chunks_mut(CHUNK).zip(nm.par_chunks_mut(CHUNK)).enumerate().for_each(|(c, (op, om))| {
            let s = c * CHUNK;
            for i in 0..op.len() {
                let lr_g = g[s + i] * lr;
                let mi = m[s + i] * momentum - lr_g;
                om[i] = mi;
                op[i] = p[s + i] + if nesterov { mi * momentum - lr_g } else { mi };
            }
        });
        Ok((np, Some(nm)))
    }
}
