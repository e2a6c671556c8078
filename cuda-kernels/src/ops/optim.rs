//! Fused optimizer updates (`kernels/optim.cu`), in place on f32 parameters.

use cudarc::driver::{CudaView, CudaViewMut};

use crate::device::{check_len, to_i64, CudaDevice};
use crate::error::Result;
use crate::sources::programs;

/// SGD hyper-parameters (Keras semantics, see [`sgd_f32`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f32,
    /// Momentum (0 disables the velocity buffer).
    pub momentum: f32,
    /// L2 penalty added to the gradient (`g + wd * p`).
    pub weight_decay: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// `g' = g + wd p`; without momentum `p -= lr g'`; with momentum
/// `v = momentum v - lr g'`, `p += nesterov ? momentum v - lr g' : v`.
/// `velocity` may be `None` only when `momentum == 0`.
pub fn sgd_f32(
    dev: &CudaDevice,
    h: &Sgd,
    param: &mut CudaViewMut<'_, f32>,
    grad: &CudaView<'_, f32>,
    velocity: Option<&mut CudaViewMut<'_, f32>>,
) -> Result<()> {
    check_len("sgd", "grad", grad.len(), param.len())?;
    if param.is_empty() {
        return Ok(());
    }
    let n = to_i64("sgd", param.len())?;
    let nesterov = i32::from(h.nesterov);
    let cfg = dev.cfg_1d(param.len());
    match velocity {
        Some(v) => {
            check_len("sgd", "velocity", v.len(), param.len())?;
            launch!(
                dev,
                programs::optim(),
                "sgd_f32",
                cfg,
                [param, grad, v, &n, &h.lr, &h.momentum, &h.weight_decay, &nesterov]
            )
        }
        None => {
            if h.momentum != 0.0 {
                return Err(crate::Error::arg("sgd", "momentum != 0 needs a velocity buffer"));
            }
            let null = 0u64; // never dereferenced when momentum == 0
            launch!(
                dev,
                programs::optim(),
                "sgd_f32",
                cfg,
                [param, grad, &null, &n, &h.lr, &h.momentum, &h.weight_decay, &nesterov]
            )
        }
    }
}

/// Adam / AdamW hyper-parameters for one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator epsilon.
    pub eps: f32,
    /// Weight decay (L2 for Adam, decoupled for AdamW).
    pub weight_decay: f32,
    /// `true` = AdamW (decoupled decay `p *= 1 - lr wd`).
    pub decoupled: bool,
    /// Step number `t >= 1` (for the bias corrections `1 - beta^t`).
    pub step: u64,
}

/// One fused Adam/AdamW step on `param` with moment buffers `m`, `v`.
pub fn adam_f32(
    dev: &CudaDevice,
    h: &Adam,
    param: &mut CudaViewMut<'_, f32>,
    grad: &CudaView<'_, f32>,
    m: &mut CudaViewMut<'_, f32>,
    v: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    check_len("adam", "grad", grad.len(), param.len())?;
    check_len("adam", "m", m.len(), param.len())?;
    check_len("adam", "v", v.len(), param.len())?;
    if h.step == 0 {
        return Err(crate::Error::arg("adam", "step must start at 1"));
    }
    if param.is_empty() {
        return Ok(());
    }
    let n = to_i64("adam", param.len())?;
    let t = h.step.min(i32::MAX as u64) as i32;
    let bc1 = (1.0 - f64::from(h.beta1).powi(t)) as f32;
    let bc2 = (1.0 - f64::from(h.beta2).powi(t)) as f32;
    let decoupled = i32::from(h.decoupled);
    launch!(
        dev,
        programs::optim(),
        "adam_f32",
        dev.cfg_1d(param.len()),
        [param, grad, m, v, &n, &h.lr, &h.beta1, &h.beta2, &h.eps, &h.weight_decay, &bc1, &bc2, &decoupled]
    )
}

/// The scalars of one Keras Adam step for [`adam_step_f32`] (keel-tensor's `AdamStep`, in f32).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    /// Step size with both bias corrections folded in: `lr sqrt(1 - beta2^t) / (1 - beta1^t)`.
    pub alpha: f32,
    /// `1 - beta1`.
    pub c1: f32,
    /// `1 - beta2`.
    pub c2: f32,
    /// Added to `sqrt(v)` in the denominator.
    pub eps: f32,
}

/// The inputs of one [`adam_step_f32`]: parameter, gradient, moments and the AMSGrad maximum.
pub struct AdamInputs<'a, 'b> {
    /// The parameter.
    pub p: &'a CudaView<'b, f32>,
    /// Its gradient.
    pub grad: &'a CudaView<'b, f32>,
    /// First moment.
    pub m: &'a CudaView<'b, f32>,
    /// Second moment.
    pub v: &'a CudaView<'b, f32>,
    /// Running maximum of `v` (AMSGrad only).
    pub v_hat: Option<&'a CudaView<'b, f32>>,
}

/// The outputs of one [`adam_step_f32`] (fresh buffers; `v_hat` exactly when the input has one).
pub struct AdamOutputs<'a, 'b> {
    /// New parameter.
    pub p: &'a mut CudaViewMut<'b, f32>,
    /// New first moment.
    pub m: &'a mut CudaViewMut<'b, f32>,
    /// New second moment.
    pub v: &'a mut CudaViewMut<'b, f32>,
    /// New running maximum of `v` (AMSGrad only).
    pub v_hat: Option<&'a mut CudaViewMut<'b, f32>>,
}

/// One Keras Adam step out of place, in the same f32 operation order as keel-tensor's CPU
/// `adam_update` (no FMA contraction, so the results agree bit for bit):
/// `m' = m + (g - m) c1`, `v' = v + (g² - v) c2`, `v̂' = max(v̂, v')`,
/// `p' = p - (m' alpha) / (sqrt(v̂' or v') + eps)`.
pub fn adam_step_f32(
    dev: &CudaDevice,
    h: &AdamStep,
    x: &AdamInputs<'_, '_>,
    out: &mut AdamOutputs<'_, '_>,
) -> Result<()> {
    const OP: &str = "adam_step";
    let n = x.p.len();
    for (what, len) in [("grad", x.grad.len()), ("m", x.m.len()), ("v", x.v.len())] {
        check_len(OP, what, len, n)?;
    }
    for (what, len) in [("out p", out.p.len()), ("out m", out.m.len()), ("out v", out.v.len())] {
        check_len(OP, what, len, n)?;
    }
    if n == 0 {
        return Ok(());
    }
    let nn = to_i64(OP, n)?;
    let cfg = dev.cfg_1d(n);
    match (x.v_hat, out.v_hat.as_mut()) {
        (Some(vh), Some(ovh)) => {
            check_len(OP, "v_hat", vh.len(), n)?;
            check_len(OP, "out v_hat", ovh.len(), n)?;
            launch!(
                dev,
                programs::optim(),
                "adam_step_f32",
                cfg,
                [
                    x.p,
                    x.grad,
                    x.m,
                    x.v,
                    vh,
                    &mut *out.p,
                    &mut *out.m,
                    &mut *out.v,
                    &mut **ovh,
                    &nn,
                    &h.alpha,
                    &h.c1,
                    &h.c2,
                    &h.eps
                ]
            )
        }
        (None, None) => {
            let null = 0u64; // the kernel tests `vh` for null and then never touches `out_vh`
            launch!(
                dev,
                programs::optim(),
                "adam_step_f32",
                cfg,
                [
                    x.p,
                    x.grad,
                    x.m,
                    x.v,
                    &null,
                    &mut *out.p,
                    &mut *out.m,
                    &mut *out.v,
                    &null,
                    &nn,
                    &h.alpha,
                    &h.c1,
                    &h.c2,
                    &h.eps
                ]
            )
        }
        _ => Err(crate::Error::arg(OP, "v_hat must be given for both the inputs and the outputs, or for neither")),
    }
}
