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

/// Fused softmax cross-entropy with integer labels: per-row `loss`, and when `grad` is
/// given `grad = grad_scale * (softmax(x) - one_hot(label))`. An out-of-range label counts
/// as a row of zeros (loss 0, gradient 0: one_hot's row for it); check the labels with
/// [`crate::ops::index::check_index_range`] to have it reported.
pub fn softmax_xent_sparse_f32(
    dev: &CudaDevice,
    rows: usize,
    cols: usize,
    logits: &CudaView<'_, f32>,
    labels: &CudaView<'_, i64>,
    loss: &mut CudaViewMut<'_, f32>,
    grad: Option<&mut CudaViewMut<'_, f32>>,
    grad_scale: f32,
) -> Result<()> {
    check_len("softmax_xent", "logits", logits.len(), rows * cols)?;
    check_len("softmax_xent", "labels", labels.len(), rows)?;
    check_len("softmax_xent", "loss", loss.len(), rows)?;
    let (r, c) = dims("softmax_xent", rows, cols)?;
    if rows == 0 {
        return Ok(());
    }
    match grad {
        Some(g) => {
            check_len("softmax_xent", "grad", g.len(), rows * cols)?;
            launch!(
                dev,
                programs::softmax(),
                "softmax_xent_sparse_f32",
                cfg(rows, cols),
                [logits, labels, loss, g, &r, &c, &grad_scale]
            )
        }
        None => launch!(
            dev,
            programs::softmax(),
            "softmax_xent_sparse_fwd_f32",
            cfg(rows, cols),
            [logits, labels, loss, &r, &c]
        ),
    }
}

/// Fused softmax cross-entropy with dense targets (one-hot or probabilities):
/// `loss = sum_c t_c (lse - x_c)`, `grad = grad_scale * (softmax(x) * sum(t) - t)`.
pub fn softmax_xent_dense_f32(
    dev: &CudaDevice,
    rows: usize,
    cols: usize,
    logits: &CudaView<'_, f32>,
    targets: &CudaView<'_, f32>,
    loss: &mut CudaViewMut<'_, f32>,
    grad: Option<&mut CudaViewMut<'_, f32>>,
    grad_scale: f32,
) -> Result<()> {
    check_len("softmax_xent", "logits", logits.len(), rows * cols)?;
    check_len("softmax_xent", "targets", targets.len(), rows * cols)?;
    check_len("softmax_xent", "loss", loss.len(), rows)?;
    let (r, c) = dims("softmax_xent", rows, cols)?;
    if rows == 0 {
        return Ok(());
    }
    match grad {
        Some(g) => {
            check_len("softmax_xent", "grad", g.len(), rows * cols)?;
            launch!(
                dev,
                programs::softmax(),
                "softmax_xent_dense_f32",
                cfg(rows, cols),
                [logits, targets, loss, g, &r, &c, &grad_scale]
            )
        }
        None => launch!(
            dev,
            programs::softmax(),
            "softmax_xent_dense_fwd_f32",
            cfg(rows, cols),
            [logits, targets, loss, &r, &c]
        ),
    }
}
