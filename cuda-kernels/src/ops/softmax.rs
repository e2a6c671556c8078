//! Softmax family along the last axis of a contiguous `[rows, cols]` tensor
//! (`kernels/softmax.cu`).

use cudarc::driver::{CudaView, CudaViewMut, LaunchConfig};

use crate::device::{check_len, to_i64, CudaDevice};
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

/// The targets of a fused softmax cross-entropy ([`softmax_xent_f32`]).
#[derive(Clone, Copy)]
pub enum XentTargets<'a, 'b> {
    /// One class index per row. An out-of-range index counts as a row of zeros (loss 0,
    /// gradient 0: one_hot's row for it); check the labels with
    /// [`crate::ops::index::check_index_range`] to have it reported.
    Classes(&'a CudaView<'b, i64>),
    /// Rows of probabilities (or one-hot rows), the logits' shape.
    Probs(&'a CudaView<'b, f32>),
}

/// The outputs of a fused softmax cross-entropy ([`softmax_xent_f32`]).
pub struct XentOutputs<'a, 'b> {
    /// The per-row losses (`rows`).
    pub loss: &'a mut CudaViewMut<'b, f32>,
    /// The gradient of `scale * loss` with respect to the logits, with its `scale`.
    pub grad: Option<(&'a mut CudaViewMut<'b, f32>, f32)>,
    /// `softmax(logits)`, the same values [`softmax_f32`] gives.
    pub probs: Option<&'a mut CudaViewMut<'b, f32>>,
}

/// Fused softmax cross-entropy of `rows` rows of `cols` logits, in one launch:
/// `loss = sum_c t_c (lse - x_c)` per row (`lse - x_label` for class indices), and on
/// request `grad = scale * (softmax(x) * sum(t) - t)` and the probabilities `softmax(x)`.
pub fn softmax_xent_f32(
    dev: &CudaDevice,
    rows: usize,
    cols: usize,
    logits: &CudaView<'_, f32>,
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
    let (r, c) = dims(OP, rows, cols)?;
    if rows == 0 {
        return Ok(());
    }
    let loss = out.loss;
    let scale = out.grad.as_ref().map_or(0.0, |g| g.1);
    // a missing output is a null pointer, which the kernel tests for
    let null = &0u64;
    macro_rules! go {
        ($name:literal, $t:expr) => {
            match (out.grad, out.probs) {
                (Some((g, _)), Some(p)) => {
                    launch!(dev, programs::softmax(), $name, cfg(rows, cols), [logits, $t, loss, g, p, &r, &c, &scale])
                }
                (Some((g, _)), None) => {
                    launch!(
                        dev,
                        programs::softmax(),
                        $name,
                        cfg(rows, cols),
                        [logits, $t, loss, g, null, &r, &c, &scale]
                    )
                }
                (None, Some(p)) => {
                    launch!(
                        dev,
                        programs::softmax(),
                        $name,
                        cfg(rows, cols),
                        [logits, $t, loss, null, p, &r, &c, &scale]
                    )
                }
                (None, None) => {
                    launch!(
                        dev,
                        programs::softmax(),
                        $name,
                        cfg(rows, cols),
                        [logits, $t, loss, null, null, &r, &c, &scale]
                    )
                }
            }
        };
    }
    match targets {
        XentTargets::Classes(labels) => go!("softmax_xent_sparse_f32", labels),
        XentTargets::Probs(t) => go!("softmax_xent_dense_f32", t),
    }
}
