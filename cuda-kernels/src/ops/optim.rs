//! Fused optimizer updates (`kernels/optim.cu`): f32, out of place, bit-identical to
//! keel-tensor's CPU `sgd_update` / `adam_update`.
//!
//! The kernels are multi-tensor: [`adam_multi_f32`] and [`sgd_multi_f32`] update many
//! parameters with one launch per [`MULTI_MAX`] of them (an optimizer step over a model's
//! parameters then costs a few launches instead of one per parameter); the single-tensor
//! [`adam_step_f32`] and [`sgd_step_f32`] are the same kernels with a list of one.

use cudarc::driver::{CudaView, CudaViewMut, DeviceRepr};

use crate::device::{check_len, to_i64, CudaDevice};
use crate::error::{Error, Result};
use crate::ops::multi::tile_starts;
use crate::sources::programs;

/// Parameters one launch of a multi-tensor kernel updates (`KEEL_MULTI_MAX` in optim.cu).
pub const MULTI_MAX: usize = 24;

/// The kernels' tensor list, passed by value in the kernel parameter space (2,224 bytes,
/// under the 4 KiB every architecture allows). Mirrors `struct MultiList` in optim.cu.
#[repr(C)]
#[derive(Clone, Copy)]
struct MultiList {
    inp: [[u64; MULTI_MAX]; 5],
    out: [[u64; MULTI_MAX]; 4],
    n: [i64; MULTI_MAX],
    tile_start: [i64; MULTI_MAX + 1],
    decay: [f32; MULTI_MAX],
    count: i64,
}

// SAFETY: plain old data with the C struct's layout (8-byte fields around one f32 array of
// 96 bytes: no padding).
unsafe impl DeviceRepr for MultiList {}

/// One tensor of a multi-tensor launch: element count, buffer addresses (0 = absent) and
/// weight decay (NaN = none).
struct Entry {
    n: usize,
    inp: [u64; 5],
    out: [u64; 4],
    decay: f32,
}

/// The launches for `entries`: one list per [`MULTI_MAX`] non-empty tensors, with its tile
/// count (the kernels' block-tile prefix sums are filled in here).
fn multi_lists(op: &'static str, entries: &[Entry]) -> Result<Vec<(MultiList, usize)>> {
    let mut lists = Vec::new();
    let live: Vec<&Entry> = entries.iter().filter(|e| e.n > 0).collect();
    for chunk in live.chunks(MULTI_MAX) {
        let mut l = MultiList {
            inp: [[0; MULTI_MAX]; 5],
            out: [[0; MULTI_MAX]; 4],
            n: [0; MULTI_MAX],
            tile_start: [0; MULTI_MAX + 1],
            decay: [f32::NAN; MULTI_MAX],
            count: chunk.len() as i64,
        };
        for (k, e) in chunk.iter().enumerate() {
            for (a, &addr) in e.inp.iter().enumerate() {
                l.inp[a][k] = addr;
            }
            for (a, &addr) in e.out.iter().enumerate() {
                l.out[a][k] = addr;
            }
            l.n[k] = to_i64(op, e.n)?;
            l.decay[k] = e.decay;
        }
        let tiles = tile_starts(op, chunk.iter().map(|e| e.n), &mut l.tile_start)?;
        lists.push((l, tiles));
    }
    Ok(lists)
}

/// Address of an optional input/output pair, both present or both absent (0 = absent).
fn optional_pair(
    dev: &CudaDevice,
    op: &'static str,
    what: &str,
    n: usize,
    x: Option<&CudaView<'_, f32>>,
    out: Option<&mut CudaViewMut<'_, f32>>,
) -> Result<(u64, u64)> {
    match (x, out) {
        (Some(x), Some(o)) => {
            check_len(op, what, x.len(), n)?;
            check_len(op, &format!("out {what}"), o.len(), n)?;
            Ok((dev.addr(x), dev.addr_mut(o)))
        }
        (None, None) => Ok((0, 0)),
        _ => Err(Error::arg(op, format!("{what} must be given for both the inputs and the outputs, or for neither"))),
    }
}

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

/// The inputs of one SGD update: parameter, gradient and (with momentum) the momentum buffer.
pub struct SgdInputs<'a, 'b> {
    /// The parameter.
    pub p: &'a CudaView<'b, f32>,
    /// Decoupled weight decay applied to the parameter first, `p - p * decay` (two
    /// roundings, as keel-optim's op chain), or none.
    pub decay: Option<f32>,
    /// Its gradient.
    pub grad: &'a CudaView<'b, f32>,
    /// Momentum buffer (momentum SGD only).
    pub m: Option<&'a CudaView<'b, f32>>,
}

/// The outputs of one SGD update (fresh buffers; `m` exactly when the input has one).
pub struct SgdOutputs<'a, 'b> {
    /// New parameter.
    pub p: &'a mut CudaViewMut<'b, f32>,
    /// New momentum buffer.
    pub m: Option<&'a mut CudaViewMut<'b, f32>>,
}

/// One Keras SGD step out of place, in the same f32 operation order as keel-tensor's CPU
/// `sgd_update` (no FMA contraction): `lr_g = g lr`; without momentum (`x.m` and `out.m`
/// `None`) `p' = p - lr_g`; with it `m' = m momentum - lr_g`,
/// `p' = p + (nesterov ? m' momentum - lr_g : m')`.
pub fn sgd_step_f32(dev: &CudaDevice, h: &SgdStep, x: &SgdInputs<'_, '_>, out: &mut SgdOutputs<'_, '_>) -> Result<()> {
    sgd_multi_f32(dev, h, std::slice::from_ref(x), std::slice::from_mut(out))
}

/// [`sgd_step_f32`] on many parameters (`xs[k]` into `outs[k]`), one launch per
/// [`MULTI_MAX`] non-empty ones; each may have a momentum buffer or not.
pub fn sgd_multi_f32(
    dev: &CudaDevice,
    h: &SgdStep,
    xs: &[SgdInputs<'_, '_>],
    outs: &mut [SgdOutputs<'_, '_>],
) -> Result<()> {
    const OP: &str = "sgd_step";
    check_len(OP, "outputs", outs.len(), xs.len())?;
    let mut entries = Vec::with_capacity(xs.len());
    for (x, out) in xs.iter().zip(outs.iter_mut()) {
        let n = x.p.len();
        check_len(OP, "grad", x.grad.len(), n)?;
        check_len(OP, "out p", out.p.len(), n)?;
        let (m, om) = optional_pair(dev, OP, "m", n, x.m, out.m.as_deref_mut())?;
        entries.push(Entry {
            n,
            inp: [dev.addr(x.p), dev.addr(x.grad), m, 0, 0],
            out: [dev.addr_mut(out.p), om, 0, 0],
            decay: x.decay.unwrap_or(f32::NAN),
        });
    }
    let nesterov = i32::from(h.nesterov);
    for (list, tiles) in multi_lists(OP, &entries)? {
        launch!(
            dev,
            programs::optim(),
            "sgd_multi_f32",
            dev.cfg_1d(tiles * 256),
            [&list, &h.lr, &h.momentum, &nesterov]
        )?;
    }
    Ok(())
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
    /// Decoupled weight decay applied to the parameter first, `p - p * decay` (two
    /// roundings, as keel-optim's op chain), or none.
    pub decay: Option<f32>,
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
    adam_multi_f32(dev, h, std::slice::from_ref(x), std::slice::from_mut(out))
}

/// [`adam_step_f32`] on many parameters (`xs[k]` into `outs[k]`), one launch per
/// [`MULTI_MAX`] non-empty ones; each may have an AMSGrad maximum or not.
pub fn adam_multi_f32(
    dev: &CudaDevice,
    h: &AdamStep,
    xs: &[AdamInputs<'_, '_>],
    outs: &mut [AdamOutputs<'_, '_>],
) -> Result<()> {
    const OP: &str = "adam_step";
    check_len(OP, "outputs", outs.len(), xs.len())?;
    let mut entries = Vec::with_capacity(xs.len());
    for (x, out) in xs.iter().zip(outs.iter_mut()) {
        let n = x.p.len();
        for (what, len) in [("grad", x.grad.len()), ("m", x.m.len()), ("v", x.v.len())] {
            check_len(OP, what, len, n)?;
        }
        for (what, len) in [("out p", out.p.len()), ("out m", out.m.len()), ("out v", out.v.len())] {
            check_len(OP, what, len, n)?;
        }
        let (vh, ovh) = optional_pair(dev, OP, "v_hat", n, x.v_hat, out.v_hat.as_deref_mut())?;
        entries.push(Entry {
            n,
            inp: [dev.addr(x.p), dev.addr(x.grad), dev.addr(x.m), dev.addr(x.v), vh],
            out: [dev.addr_mut(out.p), dev.addr_mut(out.m), dev.addr_mut(out.v), ovh],
            decay: x.decay.unwrap_or(f32::NAN),
        });
    }
    for (list, tiles) in multi_lists(OP, &entries)? {
        launch!(
            dev,
            programs::optim(),
            "adam_multi_f32",
            dev.cfg_1d(tiles * 256),
            [&list, &h.alpha, &h.c1, &h.c2, &h.eps]
        )?;
    }
    Ok(())
}
