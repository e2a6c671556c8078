//! Fused optimizer updates (`kernels/optim.cu`): f32 or f64, out of place, bit-identical to
//! keel-tensor's CPU `sgd_update` / `adam_update` in the same type.
//!
//! The kernels are multi-tensor: [`adam_multi`] and [`sgd_multi`] update many
//! parameters with one launch per [`MULTI_MAX`] of them (an optimizer step over a model's
//! parameters then costs a few launches instead of one per parameter); the single-tensor
//! [`adam_step`] and [`sgd_step`] are the same kernels with a list of one.

use cudarc::driver::{CudaView, CudaViewMut, DeviceRepr};

use crate::device::{check_len, to_i64, CudaDevice, DType};
use crate::error::{Error, Result};
use crate::ops::multi::tile_starts;
use crate::sources::programs;

/// Parameters one launch of a multi-tensor kernel updates (`KEEL_MULTI_MAX` in optim.cu).
pub const MULTI_MAX: usize = 24;

/// Storage the updates take, computed in its own precision: `f32`, and `i64` buffers
/// holding F64 bit patterns (keel-tensor's F64 storage), updated in double.
pub trait UpdateDType: DType {
    /// The type of the step's scalars (`f32`, or `f64` for F64 storage).
    type Scalar: DeviceRepr + Copy + std::fmt::Debug + PartialEq;
    /// Kernel-name suffix (`f32`, `f64`).
    const KERNEL: &'static str;
    /// A weight decay as the list holds it (f64; NaN = none), exact for an f32 decay.
    fn decay(d: Option<Self::Scalar>) -> f64;
}
impl UpdateDType for f32 {
    type Scalar = f32;
    const KERNEL: &'static str = "f32";
    fn decay(d: Option<f32>) -> f64 {
        d.map_or(f64::NAN, f64::from)
    }
}
impl UpdateDType for i64 {
    type Scalar = f64;
    const KERNEL: &'static str = "f64";
    fn decay(d: Option<f64>) -> f64 {
        d.unwrap_or(f64::NAN)
    }
}

/// The kernels' tensor list, passed by value in the kernel parameter space (2,320 bytes,
/// under the 4 KiB every architecture allows). Mirrors `struct MultiList` in optim.cu.
#[repr(C)]
#[derive(Clone, Copy)]
struct MultiList {
    inp: [[u64; MULTI_MAX]; 5],
    out: [[u64; MULTI_MAX]; 4],
    n: [i64; MULTI_MAX],
    tile_start: [i64; MULTI_MAX + 1],
    decay: [f64; MULTI_MAX],
    count: i64,
}

// SAFETY: plain old data with the C struct's layout (8-byte fields only: no padding).
unsafe impl DeviceRepr for MultiList {}

/// One tensor of a multi-tensor launch: element count, buffer addresses (0 = absent) and
/// weight decay (NaN = none).
struct Entry {
    n: usize,
    inp: [u64; 5],
    out: [u64; 4],
    decay: f64,
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
            decay: [f64::NAN; MULTI_MAX],
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
fn optional_pair<T: DType>(
    dev: &CudaDevice,
    op: &'static str,
    what: &str,
    n: usize,
    x: Option<&CudaView<'_, T>>,
    out: Option<&mut CudaViewMut<'_, T>>,
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

/// The scalars of one Keras SGD step for [`sgd_step`] (keel-tensor's `SgdStep`, in the
/// update's type `S`: f32, or f64 for F64 storage).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdStep<S = f32> {
    /// Learning rate.
    pub lr: S,
    /// Momentum factor (used only with a momentum buffer).
    pub momentum: S,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// The inputs of one SGD update: parameter, gradient and (with momentum) the momentum buffer.
pub struct SgdInputs<'a, 'b, T: UpdateDType = f32> {
    /// The parameter.
    pub p: &'a CudaView<'b, T>,
    /// Decoupled weight decay applied to the parameter first, `p - p * decay` (two
    /// roundings, as keel-optim's op chain), or none.
    pub decay: Option<T::Scalar>,
    /// Its gradient.
    pub grad: &'a CudaView<'b, T>,
    /// Momentum buffer (momentum SGD only).
    pub m: Option<&'a CudaView<'b, T>>,
}

/// The outputs of one SGD update (fresh buffers; `m` exactly when the input has one).
pub struct SgdOutputs<'a, 'b, T = f32> {
    /// New parameter.
    pub p: &'a mut CudaViewMut<'b, T>,
    /// New momentum buffer.
    pub m: Option<&'a mut CudaViewMut<'b, T>>,
}

/// One Keras SGD step out of place, in the same operation order as keel-tensor's CPU
/// `sgd_update` in the storage's type (no FMA contraction): `lr_g = g lr`; without
/// momentum (`x.m` and `out.m` `None`) `p' = p - lr_g`; with it `m' = m momentum - lr_g`,
/// `p' = p + (nesterov ? m' momentum - lr_g : m')`.
pub fn sgd_step<T: UpdateDType>(
    dev: &CudaDevice,
    h: &SgdStep<T::Scalar>,
    x: &SgdInputs<'_, '_, T>,
    out: &mut SgdOutputs<'_, '_, T>,
) -> Result<()> {
    sgd_multi(dev, h, std::slice::from_ref(x), std::slice::from_mut(out))
}

/// [`sgd_step`] on many parameters (`xs[k]` into `outs[k]`), one launch per
/// [`MULTI_MAX`] non-empty ones; each may have a momentum buffer or not.
pub fn sgd_multi<T: UpdateDType>(
    dev: &CudaDevice,
    h: &SgdStep<T::Scalar>,
    xs: &[SgdInputs<'_, '_, T>],
    outs: &mut [SgdOutputs<'_, '_, T>],
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
            decay: T::decay(x.decay),
        });
    }
    let nesterov = i32::from(h.nesterov);
    let kernel = format!("sgd_multi_{}", T::KERNEL);
    for (list, tiles) in multi_lists(OP, &entries)? {
        launch!(dev, programs::optim(), &kernel, dev.cfg_1d(tiles * 256), [&list, &h.lr, &h.momentum, &nesterov])?;
    }
    Ok(())
}

/// The scalars of one Keras Adam step for [`adam_step`] (keel-tensor's `AdamStep`, in the
/// update's type `S`: f32, or f64 for F64 storage).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep<S = f32> {
    /// Step size with both bias corrections folded in: `lr sqrt(1 - beta2^t) / (1 - beta1^t)`.
    pub alpha: S,
    /// `1 - beta1`.
    pub c1: S,
    /// `1 - beta2`.
    pub c2: S,
    /// Added to `sqrt(v)` in the denominator.
    pub eps: S,
}

/// The inputs of one [`adam_step`]: parameter, gradient, moments and the AMSGrad maximum.
pub struct AdamInputs<'a, 'b, T: UpdateDType = f32> {
    /// The parameter.
    pub p: &'a CudaView<'b, T>,
    /// Decoupled weight decay applied to the parameter first, `p - p * decay` (two
    /// roundings, as keel-optim's op chain), or none.
    pub decay: Option<T::Scalar>,
    /// Its gradient.
    pub grad: &'a CudaView<'b, T>,
    /// First moment.
    pub m: &'a CudaView<'b, T>,
    /// Second moment.
    pub v: &'a CudaView<'b, T>,
    /// Running maximum of `v` (AMSGrad only).
    pub v_hat: Option<&'a CudaView<'b, T>>,
}

/// The outputs of one [`adam_step`] (fresh buffers; `v_hat` exactly when the input has one).
pub struct AdamOutputs<'a, 'b, T = f32> {
    /// New parameter.
    pub p: &'a mut CudaViewMut<'b, T>,
    /// New first moment.
    pub m: &'a mut CudaViewMut<'b, T>,
    /// New second moment.
    pub v: &'a mut CudaViewMut<'b, T>,
    /// New running maximum of `v` (AMSGrad only).
    pub v_hat: Option<&'a mut CudaViewMut<'b, T>>,
}

/// One Keras Adam step out of place, in the same operation order as keel-tensor's CPU
/// `adam_update` in the storage's type (no FMA contraction, so the results agree bit for
/// bit): `m' = m + (g - m) c1`, `v' = v + (g² - v) c2`, `v̂' = max(v̂, v')`,
/// `p' = p - (m' alpha) / (sqrt(v̂' or v') + eps)`.
pub fn adam_step<T: UpdateDType>(
    dev: &CudaDevice,
    h: &AdamStep<T::Scalar>,
    x: &AdamInputs<'_, '_, T>,
    out: &mut AdamOutputs<'_, '_, T>,
) -> Result<()> {
    adam_multi(dev, h, std::slice::from_ref(x), std::slice::from_mut(out))
}

/// [`adam_step`] on many parameters (`xs[k]` into `outs[k]`), one launch per
/// [`MULTI_MAX`] non-empty ones; each may have an AMSGrad maximum or not.
pub fn adam_multi<T: UpdateDType>(
    dev: &CudaDevice,
    h: &AdamStep<T::Scalar>,
    xs: &[AdamInputs<'_, '_, T>],
    outs: &mut [AdamOutputs<'_, '_, T>],
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
            decay: T::decay(x.decay),
        });
    }
    let kernel = format!("adam_multi_{}", T::KERNEL);
    for (list, tiles) in multi_lists(OP, &entries)? {
        launch!(dev, programs::optim(), &kernel, dev.cfg_1d(tiles * 256), [&list, &h.alpha, &h.c1, &h.c2, &h.eps])?;
    }
    Ok(())
}
