//! Softmax family along the last axis of a contiguous `[rows, cols]` tensor
//! (`kernels/softmax.cu`).

use cudarc::driver::{CudaView, CudaViewMut, LaunchConfig};

use crate::device::{check_len, to_i64, CudaDevice, FloatDType};
use crate::error::{Error, Result};
use crate::sources::programs;

fn cfg(rows: usize, cols: usize) -> LaunchConfig {
    let threads = if cols >= 1024 {
        512
    } else if cols >= 256 {
        256
    } else {
        128
    };
    LaunchConfig { grid_dim: (rows.clamp(1, 65535 * 16) as u32, 1, 1), block_dim: (threads, 1, 1), shared_mem_bytes: 0 }
}

fn dims(op: &'static str, rows: usize, cols: usize) -> Result<(i64, i64)> {
    if cols == 0 {
        return Err(Error::arg(op, "softmax over an empty axis"));
    }
    Ok((to_i64(op, rows)?, to_i64(op, cols)?))
}

/// `y = softmax(x)` (or `log_softmax` when `log`) over the last axis.
pub fn softmax_f32(
    dev: &CudaDevice,
    log: bool,
    rows: usize,
    cols: usize,
    x: &CudaView<'_, f32>,
    y: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    check_len("softmax", "x", x.len(), rows * cols)?;
    check_len("softmax", "y", y.len(), rows * cols)?;
    let (r, c) = dims("softmax", rows, cols)?;
    if rows == 0 {
        return Ok(());
    }
    let name = if log { "log_softmax_f32" } else { "softmax_f32" };
    launch!(dev, programs::softmax(), name, cfg(rows, cols), [x, y, &r, &c])
}

/// Backward of softmax (`log == false`, `y` = softmax output) or log_softmax
/// (`log == true`, `y` = log_softmax output): `gx` from `gy`.
pub fn softmax_backward_f32(
    dev: &CudaDevice,
    log: bool,
    rows: usize,
    cols: usize,
    y: &CudaView<'_, f32>,
    gy: &CudaView<'_, f32>,
    gx: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    for (what, len) in [("y", y.len()), ("gy", gy.len()), ("gx", gx.len())] {
        check_len("softmax_backward", what, len, rows * cols)?;
    }
    let (r, c) = dims("softmax_backward", rows, cols)?;
    if rows == 0 {
        return Ok(());
    }
    let name = if log { "log_softmax_bwd_f32" } else { "softmax_bwd_f32" };
    launch!(dev, programs::softmax(), name, cfg(rows, cols), [y, gy, gx, &r, &c])
}

/// The targets of a fused softmax cross-entropy ([`softmax_xent`]).
#[derive(Clone, Copy)]
pub enum XentTargets<'a, 'b> {
    /// One class index per row. An out-of-range index counts as a row of zeros (loss 0,
    /// gradient 0: one_hot's row for it); check the labels with
    /// [`crate::ops::index::check_index_range`] to have it reported.
    Classes(&'a CudaView<'b, i64>),
    /// Rows of probabilities (or one-hot rows), the logits' shape.
    Probs(&'a CudaView<'b, f32>),
}

/// The outputs of a fused softmax cross-entropy ([`softmax_xent`]).
pub struct XentOutputs<'a, 'b> {
    /// The per-row losses (`rows`).
    pub loss: &'a mut CudaViewMut<'b, f32>,
    /// The gradient of `scale * loss` with respect to the logits, with its `scale`.
    pub grad: Option<(&'a mut CudaViewMut<'b, f32>, f32)>,
    /// `softmax(logits)`, the same values [`softmax_f32`] gives.
    pub probs: Option<&'a mut CudaViewMut<'b, f32>>,
    /// The mean of the per-row losses (one element), added in a fixed order by the launch's
    /// last block (at most [`XENT_MEAN_MAX_ROWS`] rows).
    pub mean: Option<&'a mut CudaViewMut<'b, f32>>,
}

/// The most rows whose loss mean [`softmax_xent`] computes in its own launch (one block
/// adds them; beyond this a reduction launch over many blocks is faster).
pub const XENT_MEAN_MAX_ROWS: usize = 1 << 16;

/// Fused softmax cross-entropy of `rows` rows of `cols` logits, in one launch:
/// `loss = sum_c t_c (lse - x_c)` per row (`lse - x_label` for class indices), and on
/// request `grad = scale * (softmax(x) * sum(t) - t)`, the probabilities `softmax(x)` and
/// the mean of the losses. F16/BF16 logits are read as f32: every output is f32 and is
/// what their f32 values give (a mixed-precision model's logits need no cast first).
pub fn softmax_xent<T: FloatDType>(
    dev: &CudaDevice,
    rows: usize,
    cols: usize,
    logits: &CudaView<'_, T>,
    targets: XentTargets<'_, '_>,
    out: XentOutputs<'_, '_>,
) -> Result<()> {
    const OP: &str = "softmax_xent";
    check_len(OP, "logits", logits.len(), rows * cols)?;
    match targets {
        XentTargets::Classes(l) => check_len(OP, "labels", l.len(), rows)?,
        XentTargets::Probs(t) => check_len(OP, "targets", t.len(), rows * cols)?,
    }
    check_len(OP, "loss", out.loss.len(), rows)?;
    if let Some((g, _)) = &out.grad {
        check_len(OP, "grad", g.len(), rows * cols)?;
    }
    if let Some(p) = &out.probs {
        check_len(OP, "probs", p.len(), rows * cols)?;
    }
    if let Some(m) = &out.mean {
        check_len(OP, "mean", m.len(), 1)?;
        if rows > XENT_MEAN_MAX_ROWS {
            return Err(Error::arg(OP, format!("the loss mean of {rows} rows (at most {XENT_MEAN_MAX_ROWS})")));
        }
    }
    let (r, c) = dims(OP, rows, cols)?;
    if rows == 0 {
        return Ok(());
    }
    let loss = out.loss;
    let scale = out.grad.as_ref().map_or(0.0, |g| g.1);
    // a missing output is a null pointer, which the kernel tests for
    let grad = out.grad.map_or(0, |(g, _)| dev.addr_mut(g));
    let probs = out.probs.map_or(0, |p| dev.addr_mut(p));
    let mean = out.mean.map_or(0, |m| dev.addr_mut(m));
    let (form, t) = match targets {
        XentTargets::Classes(labels) => ("sparse", dev.addr(labels)),
        XentTargets::Probs(t) => ("dense", dev.addr(t)),
    };
    let name = format!("softmax_xent_{form}_{}", T::NAME);
    let cfg = cfg(rows, cols);
    if mean == 0 {
        let null = &0u64;
        return launch!(
            dev,
            programs::softmax(),
            name,
            cfg,
            [logits, &t, loss, &grad, &probs, null, null, &r, &c, &scale]
        );
    }
    dev.with_reduce_scratch(|scratch| {
        let ticket = &mut scratch.tickets;
        launch!(dev, programs::softmax(), name, cfg, [logits, &t, loss, &grad, &probs, &mean, ticket, &r, &c, &scale])
    })
}
