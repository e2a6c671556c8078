//! Fused recurrent cells (`kernels/rnn.cu`): one LSTM step's gate math in one launch
//! ([`lstm_cell`]) and its backward in one more ([`lstm_cell_backward`]); the same for a GRU
//! step ([`gru_cell`], [`gru_cell_backward`]). `z` holds the
//! gate pre-activations `[batch, 4 * units]` (Keras's order i, f, c, o) and `gates` their
//! activations in the same layout (the forward's workspace for the backward, as in
//! PyTorch's fused cell); the states are `[batch, units]`; all contiguous.

use cudarc::driver::{CudaView, CudaViewMut};

use crate::device::{check_len, to_i64, CudaDevice, FloatStorage};
use crate::error::Result;
use crate::sources::programs;

/// Checks the lengths of `z` (or `gates`) and of the `[batch, units]` buffers; the kernel's
/// size args.
fn dims<T>(
    op: &'static str,
    batch: usize,
    units: usize,
    z: &CudaView<'_, T>,
    states: &[(&str, usize)],
) -> Result<[i64; 2]> {
    check_len(op, "z", z.len(), batch * 4 * units)?;
    for &(name, len) in states {
        check_len(op, name, len, batch * units)?;
    }
    Ok([to_i64(op, batch)?, to_i64(op, units)?])
}

/// `c = σ(z_f) c_prev + σ(z_i) tanh(z_c)`, `h = σ(z_o) tanh(c)` and the gate activations
/// `gates`, one launch. F32/F16/BF16 computed in f32 (rounded once on the store), F64 in
/// double; an F32 step has the composed elementwise ops' values.
#[allow(clippy::too_many_arguments)]
pub fn lstm_cell<T: FloatStorage>(
    dev: &CudaDevice,
    batch: usize,
    units: usize,
    z: &CudaView<'_, T>,
    c_prev: &CudaView<'_, T>,
    h: &mut CudaViewMut<'_, T>,
    c: &mut CudaViewMut<'_, T>,
    gates: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    const OP: &str = "lstm_cell";
    let [b, u] = dims(OP, batch, units, z, &[("c_prev", c_prev.len()), ("h", h.len()), ("c", c.len())])?;
    check_len(OP, "gates", gates.len(), batch * 4 * units)?;
    if h.is_empty() {
        return Ok(());
    }
    let name = format!("lstm_cell_fwd_{}", T::KERNEL);
    launch!(dev, programs::rnn(), name, dev.cfg_1d(batch * units), [z, c_prev, h, c, gates, &b, &u])
}

/// The backward of [`lstm_cell`] from its `gates`, `c_prev` and `c`: from the gradients
/// reaching `h` and `c` (`None`: none), `dz` and `dc_prev`, one launch.
#[allow(clippy::too_many_arguments)]
pub fn lstm_cell_backward<T: FloatStorage>(
    dev: &CudaDevice,
    batch: usize,
    units: usize,
    gates: &CudaView<'_, T>,
    c_prev: &CudaView<'_, T>,
    c: &CudaView<'_, T>,
    dh: Option<&CudaView<'_, T>>,
    dc: Option<&CudaView<'_, T>>,
    dz: &mut CudaViewMut<'_, T>,
    dc_prev: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    const OP: &str = "lstm_cell_backward";
    let mut states = vec![("c_prev", c_prev.len()), ("c", c.len()), ("dc_prev", dc_prev.len())];
    states.extend(dh.map(|v| ("dh", v.len())));
    states.extend(dc.map(|v| ("dc", v.len())));
    let [b, u] = dims(OP, batch, units, gates, &states)?;
    check_len(OP, "dz", dz.len(), batch * 4 * units)?;
    if dc_prev.is_empty() {
        return Ok(());
    }
    // a missing gradient is a null pointer (the kernel reads it as zeros)
    let (dh, dc) = (dh.map_or(0, |v| dev.addr(v)), dc.map_or(0, |v| dev.addr(v)));
    let name = format!("lstm_cell_bwd_{}", T::KERNEL);
    launch!(dev, programs::rnn(), name, dev.cfg_1d(batch * units), [gates, c_prev, c, &dh, &dc, dz, dc_prev, &b, &u])
}

/// A `[batch, 3 * units]` operand read in place as rows `ld` apart: the view from its first
/// element to its last (`(batch - 1) * ld + 3 * units` elements) and `ld`.
pub type Rows<'a, 'b, T> = (&'a CudaView<'b, T>, usize);

/// Checks a row operand's stride and length; its stride as the kernel's arg.
fn rows_arg<T>(op: &'static str, what: &str, (v, ld): Rows<'_, '_, T>, batch: usize, cols: usize) -> Result<i64> {
    let want = if batch == 0 || cols == 0 { 0 } else { (batch - 1) * ld + cols };
    check_len(op, what, v.len(), want)?;
    to_i64(op, ld)
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

/// The backward of [`gru_cell`] from its `gates`, `p` and `h_prev`: from the gradient `dh`
/// reaching `h`, the gradients of the input projection `dx`, of the recurrent projection
/// `dp` (both `[batch, 3 * units]`) and of `h_prev`, one launch.
#[allow(clippy::too_many_arguments)]
pub fn gru_cell_backward<T: FloatStorage>(
    dev: &CudaDevice,
    batch: usize,
    units: usize,
    gates: &CudaView<'_, T>,
    p: Rows<'_, '_, T>,
    h_prev: &CudaView<'_, T>,
    dh: &CudaView<'_, T>,
    dx: &mut CudaViewMut<'_, T>,
    dp: &mut CudaViewMut<'_, T>,
    dh_prev: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    const OP: &str = "gru_cell_backward";
    let ldp = rows_arg(OP, "p", p, batch, 3 * units)?;
    for (what, len) in [("gates", gates.len()), ("dx", dx.len()), ("dp", dp.len())] {
        check_len(OP, what, len, batch * 3 * units)?;
    }
    for (what, len) in [("h_prev", h_prev.len()), ("dh", dh.len()), ("dh_prev", dh_prev.len())] {
        check_len(OP, what, len, batch * units)?;
    }
    if dh_prev.is_empty() {
        return Ok(());
    }
    let [b, u] = [to_i64(OP, batch)?, to_i64(OP, units)?];
    let name = format!("gru_cell_bwd_{}", T::KERNEL);
    launch!(
        dev,
        programs::rnn(),
        name,
        dev.cfg_1d(batch * units),
        [gates, p.0, &ldp, h_prev, dh, dx, dp, dh_prev, &b, &u]
    )
}
