//! Fused recurrent cells (`kernels/rnn.cu`): one LSTM step's gate math in one launch
//! ([`lstm_cell`]) and its backward in one more ([`lstm_cell_backward`]); the same for a GRU
//! step ([`gru_cell`], [`gru_cell_backward`]). `z` holds the LSTM's gate pre-activations
//! `[batch, 4 * units]` (Keras's order i, f, c, o) and `gates` the activations (the
//! forward's workspace for the backward, as in PyTorch's fused cell); the states are
//! `[batch, units]`. The input projections and the gradients reaching `h` are [`Rows`]
//! (read in place with a row stride: a timestep of a `[batch, time, n]` tensor);
//! everything else is contiguous.

use cudarc::driver::{CudaView, CudaViewMut};

use crate::device::{check_len, to_i64, CudaDevice, FloatStorage};
use crate::error::{Error, Result};
use crate::sources::programs;

/// A `[batch, n]` operand read in place as rows `ld` apart: the view from its first element
/// to its last (`(batch - 1) * ld + n` elements) and `ld`.
pub type Rows<'a, 'b, T> = (&'a CudaView<'b, T>, usize);

/// The most terms a backward sums into the gradient reaching `h` (the next step's
/// recurrent matmul's gradient, a timestep of the output sequence's, GRU's direct path).
pub const DH_TERMS: usize = 3;

/// Checks a row operand's stride and length; its stride as the kernel's arg.
fn rows_arg<T>(op: &'static str, what: &str, (v, ld): Rows<'_, '_, T>, batch: usize, cols: usize) -> Result<i64> {
    let want = if batch == 0 || cols == 0 { 0 } else { (batch - 1) * ld + cols };
    check_len(op, what, v.len(), want)?;
    to_i64(op, ld)
}

/// The kernel args of the `dh` terms (`[batch, units]` row operands): an address and a row
/// stride each, a null address for a missing one (the kernel reads zeros).
fn dh_args<T>(
    dev: &CudaDevice,
    op: &'static str,
    dh: &[Rows<'_, '_, T>],
    batch: usize,
    units: usize,
) -> Result<[(u64, i64); DH_TERMS]> {
    if dh.len() > DH_TERMS {
        return Err(Error::arg(op, format!("{} gradient terms for h, at most {DH_TERMS}", dh.len())));
    }
    let mut args = [(0u64, 0i64); DH_TERMS];
    for (a, &t) in args.iter_mut().zip(dh) {
        *a = (dev.addr(t.0), rows_arg(op, "dh", t, batch, units)?);
    }
    Ok(args)
}

/// `z = x + p` (`x` the input projection, `p` the recurrent one `h_prev U`,
/// `[batch, 4 * units]`; `None`: `z = x`), then `c = σ(z_f) c_prev + σ(z_i) tanh(z_c)`,
/// `h = σ(z_o) tanh(c)` and the gate activations `gates`, one launch. F32/F16/BF16
/// computed in f32 (rounded once on the store), F64 in double; an F32 step has the composed
/// elementwise ops' values.
#[allow(clippy::too_many_arguments)]
pub fn lstm_cell<T: FloatStorage>(
    dev: &CudaDevice,
    batch: usize,
    units: usize,
    x: Rows<'_, '_, T>,
    p: Option<&CudaView<'_, T>>,
    c_prev: &CudaView<'_, T>,
    h: &mut CudaViewMut<'_, T>,
    c: &mut CudaViewMut<'_, T>,
    gates: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    const OP: &str = "lstm_cell";
    let ldx = rows_arg(OP, "x", x, batch, 4 * units)?;
    for (what, len) in p.iter().map(|p| ("p", p.len())).chain([("gates", gates.len())]) {
        check_len(OP, what, len, batch * 4 * units)?;
    }
    for (what, len) in [("c_prev", c_prev.len()), ("h", h.len()), ("c", c.len())] {
        check_len(OP, what, len, batch * units)?;
    }
    if h.is_empty() {
        return Ok(());
    }
    let [b, u] = [to_i64(OP, batch)?, to_i64(OP, units)?];
    let p = p.map_or(0, |v| dev.addr(v));
    let name = format!("lstm_cell_fwd_{}", T::KERNEL);
    launch!(dev, programs::rnn(), name, dev.cfg_1d(batch * units), [x.0, &ldx, &p, c_prev, h, c, gates, &b, &u])
}

/// The backward of [`lstm_cell`] from its `gates`, `c_prev` and `c`: from the gradient
/// reaching `h` (the sum of the row operands `dh`, at most [`DH_TERMS`]; none: zero) and
/// the one reaching `c` (`None`: zero), `dz` and `dc_prev`, one launch.
#[allow(clippy::too_many_arguments)]
pub fn lstm_cell_backward<T: FloatStorage>(
    dev: &CudaDevice,
    batch: usize,
    units: usize,
    gates: &CudaView<'_, T>,
    c_prev: &CudaView<'_, T>,
    c: &CudaView<'_, T>,
    dh: &[Rows<'_, '_, T>],
    dc: Option<&CudaView<'_, T>>,
    dz: &mut CudaViewMut<'_, T>,
    dc_prev: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    const OP: &str = "lstm_cell_backward";
    let states = [("c_prev", c_prev.len()), ("c", c.len()), ("dc_prev", dc_prev.len())];
    for (what, len) in states.into_iter().chain(dc.map(|v| ("dc", v.len()))) {
        check_len(OP, what, len, batch * units)?;
    }
    for (what, len) in [("gates", gates.len()), ("dz", dz.len())] {
        check_len(OP, what, len, batch * 4 * units)?;
    }
    let [(d0, l0), (d1, l1), (d2, l2)] = dh_args(dev, OP, dh, batch, units)?;
    if dc_prev.is_empty() {
        return Ok(());
    }
    let [b, u] = [to_i64(OP, batch)?, to_i64(OP, units)?];
    let dc = dc.map_or(0, |v| dev.addr(v));
    let name = format!("lstm_cell_bwd_{}", T::KERNEL);
    let cfg = dev.cfg_1d(batch * units);
    launch!(dev, programs::rnn(), name, cfg, [gates, c_prev, c, &d0, &l0, &d1, &l1, &d2, &l2, &dc, dz, dc_prev, &b, &u])
}

/// One GRU step (Keras's `reset_after=True`, gate order z, r, h) from the input projection
/// `x` and the recurrent projection `p` (row operands) and `h_prev`: `h` and the gate
/// activations `gates` (`[z, r, n]`, `[batch, 3 * units]`), one launch. F32 has the composed
/// elementwise ops' values.
#[allow(clippy::too_many_arguments)]
pub fn gru_cell<T: FloatStorage>(
    dev: &CudaDevice,
    batch: usize,
    units: usize,
    x: Rows<'_, '_, T>,
    p: Rows<'_, '_, T>,
    h_prev: &CudaView<'_, T>,
    h: &mut CudaViewMut<'_, T>,
    gates: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    const OP: &str = "gru_cell";
    let (ldx, ldp) = (rows_arg(OP, "x", x, batch, 3 * units)?, rows_arg(OP, "p", p, batch, 3 * units)?);
    check_len(OP, "h_prev", h_prev.len(), batch * units)?;
    check_len(OP, "h", h.len(), batch * units)?;
    check_len(OP, "gates", gates.len(), batch * 3 * units)?;
    if h.is_empty() {
        return Ok(());
    }
    let [b, u] = [to_i64(OP, batch)?, to_i64(OP, units)?];
    let name = format!("gru_cell_fwd_{}", T::KERNEL);
    launch!(dev, programs::rnn(), name, dev.cfg_1d(batch * units), [x.0, &ldx, p.0, &ldp, h_prev, h, gates, &b, &u])
}

/// The backward of [`gru_cell`] from its `gates`, `p` and `h_prev`: from the gradient
/// reaching `h` (the sum of the row operands `dh`, at most [`DH_TERMS`]; none: zero), the
/// gradients of the input projection `dx`, of the recurrent projection `dp` (both
/// `[batch, 3 * units]`) and of `h_prev` (its direct path, `dh z`), one launch.
#[allow(clippy::too_many_arguments)]
pub fn gru_cell_backward<T: FloatStorage>(
    dev: &CudaDevice,
    batch: usize,
    units: usize,
    gates: &CudaView<'_, T>,
    p: Rows<'_, '_, T>,
    h_prev: &CudaView<'_, T>,
    dh: &[Rows<'_, '_, T>],
    dx: &mut CudaViewMut<'_, T>,
    dp: &mut CudaViewMut<'_, T>,
    dh_prev: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    const OP: &str = "gru_cell_backward";
    let ldp = rows_arg(OP, "p", p, batch, 3 * units)?;
    for (what, len) in [("gates", gates.len()), ("dx", dx.len()), ("dp", dp.len())] {
        check_len(OP, what, len, batch * 3 * units)?;
    }
    for (what, len) in [("h_prev", h_prev.len()), ("dh_prev", dh_prev.len())] {
        check_len(OP, what, len, batch * units)?;
    }
    let [(d0, l0), (d1, l1), (d2, l2)] = dh_args(dev, OP, dh, batch, units)?;
    if dh_prev.is_empty() {
        return Ok(());
    }
    let [b, u] = [to_i64(OP, batch)?, to_i64(OP, units)?];
    let name = format!("gru_cell_bwd_{}", T::KERNEL);
    let cfg = dev.cfg_1d(batch * units);
    launch!(
        dev,
        programs::rnn(),
        name,
        cfg,
        [gates, p.0, &ldp, h_prev, &d0, &l0, &d1, &l1, &d2, &l2, dx, dp, dh_prev, &b, &u]
    )
}
