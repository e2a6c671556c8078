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
