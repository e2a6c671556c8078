//! Fused optimizer updates (`kernels/optim.cu`): f32, out of place, bit-identical to
//! keel-tensor's CPU `sgd_update` / `adam_update`.

use cudarc::driver::{CudaView, CudaViewMut};

use crate::device::{check_len, to_i64, CudaDevice};
use crate::error::Result;
use crate::sources::programs;

/// The scalars of one Keras SGD step for [`sgd_step_f32`] (keel-tensor's `SgdStep`, in f32).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdStep {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor (used only with a momentum buffer).
    pub momentum: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// One Keras SGD step out of place, in the same f32 operation order as keel-tensor's CPU
/// `sgd_update` (no FMA contraction): `lr_g = g lr`; without momentum (`m` and `out_m`
/// `None`) `p' = p - lr_g`; with it `m' = m momentum - lr_g`,
/// `p' = p + (nesterov ? m' momentum - lr_g : m')`.
pub fn sgd_step_f32(
    dev: &CudaDevice,
    h: &SgdStep,
    p: &CudaView<'_, f32>,
    grad: &CudaView<'_, f32>,
    m: Option<&CudaView<'_, f32>>,
    out_p: &mut CudaViewMut<'_, f32>,
    out_m: Option<&mut CudaViewMut<'_, f32>>,
) -> Result<()> {
    const OP: &str = "sgd_step";
    let n = p.len();
    check_len(OP, "grad", grad.len(), n)?;
    check_len(OP, "out p", out_p.len(), n)?;
    if n == 0 {
        return Ok(());
    }
    let nn = to_i64(OP, n)?;
    let nesterov = i32::from(h.nesterov);
    let cfg = dev.cfg_1d(n);
    // An absent momentum buffer goes as null: the kernel tests `m` and then never touches `out_m`.
    let (m, om) = match (m, out_m) {
        (Some(m), Some(om)) => {
            check_len(OP, "m", m.len(), n)?;
            check_len(OP, "out m", om.len(), n)?;
            (dev.addr(m), dev.addr_mut(om))
        }
        (None, None) => (0u64, 0u64),
        _ => return Err(crate::Error::arg(OP, "m must be given for both the inputs and the outputs, or for neither")),
    };
    launch!(
        dev,
        programs::optim(),
        "sgd_step_f32",
        cfg,
        [p, grad, &m, &mut *out_p, &om, &nn, &h.lr, &h.momentum, &nesterov]
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
    // Optional AMSGrad buffers go as raw addresses: the kernel tests `vh` for null and
    // then never touches `out_vh`.
    let (vh, ovh) = match (x.v_hat, out.v_hat.as_mut()) {
        (Some(vh), Some(ovh)) => {
            check_len(OP, "v_hat", vh.len(), n)?;
            check_len(OP, "out v_hat", ovh.len(), n)?;
            (dev.addr(vh), dev.addr_mut(ovh))
        }
        (None, None) => (0u64, 0u64),
        _ => {
            return Err(crate::Error::arg(
                OP,
                "v_hat must be given for both the inputs and the outputs, or for neither",
            ))
        }
    };
    launch!(
        dev,
        programs::optim(),
        "adam_step_f32",
        cfg,
        [x.p, x.grad, x.m, x.v, &vh, &mut *out.p, &mut *out.m, &mut *out.v, &ovh, &nn, &h.alpha, &h.c1, &h.c2, &h.eps]
    )
}
