//! Reductions along one axis (`kernels/reduce.cu`).
//!
//! The input is contiguous and viewed as `[outer, reduce, inner]` (reduce the middle axis);
//! the output is `[outer, inner]`. `inner == 1` uses one block per row with warp shuffles,
//! `inner > 1` a 32x8 block per 32 columns (coalesced). The input is F32, F16 or BF16
//! storage, accumulated in f32; sum/max/min write the input's type (rounded once).

use cudarc::driver::{CudaView, CudaViewMut, LaunchConfig};

use crate::device::{check_len, to_i64, CudaDevice, FloatDType};
use crate::error::{Error, Result};
use crate::sources::programs;

/// Which reduction to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    /// Sum (times `scale`, so `scale = 1/n` gives the mean).
    Sum,
    /// Maximum (NaN propagates).
    Max,
    /// Minimum (NaN propagates).
    Min,
}

impl ReduceOp {
    fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
        }
    }
}

/// The `[outer, reduce, inner]` view of a reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReduceShape {
    /// Product of the dimensions before the axis.
    pub outer: usize,
    /// Length of the reduced axis.
    pub reduce: usize,
    /// Product of the dimensions after the axis.
    pub inner: usize,
}

impl ReduceShape {
    /// Splits `shape` around `axis`.
    pub fn new(shape: &[usize], axis: usize) -> Result<Self> {
        if axis >= shape.len() {
            return Err(Error::arg("reduce", format!("axis {axis} out of range for shape {shape:?}")));
        }
        Ok(Self {
            outer: shape[..axis].iter().product(),
            reduce: shape[axis],
            inner: shape[axis + 1..].iter().product(),
        })
    }
}

fn launch_cfg(dev: &CudaDevice, s: &ReduceShape) -> LaunchConfig {
    if s.inner == 1 {
        LaunchConfig {
            grid_dim: (s.outer.clamp(1, 65535 * 16) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        }
    } else {
        let _ = dev;
        LaunchConfig {
            grid_dim: (s.inner.div_ceil(32) as u32, s.outer.clamp(1, 65535) as u32, 1),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        }
    }
}

fn check(op: &'static str, s: &ReduceShape, input: usize, output: usize) -> Result<()> {
    check_len(op, "input", input, s.outer * s.reduce * s.inner)?;
    check_len(op, "output", output, s.outer * s.inner)?;
    if s.inner.div_ceil(32) > u32::MAX as usize {
        return Err(Error::arg(op, "inner extent too large"));
    }
    Ok(())
}

/// `out[o, i] = op_k(x[o, k, i])` (`Sum` is multiplied by `scale`). Max/Min need `reduce > 0`.
pub fn reduce<T: FloatDType>(
    dev: &CudaDevice,
    op: ReduceOp,
    shape: ReduceShape,
    x: &CudaView<'_, T>,
    out: &mut CudaViewMut<'_, T>,
    scale: f32,
) -> Result<()> {
    check("reduce", &shape, x.len(), out.len())?;
    if shape.reduce == 0 && op != ReduceOp::Sum {
        return Err(Error::arg("reduce", "max/min over an empty axis"));
    }
    if out.is_empty() {
        return Ok(());
    }
    let kind = if shape.inner == 1 { "rows" } else { "cols" };
    let name = format!("reduce_{}_{}_{kind}", op.name(), T::NAME);
    let (o, r, i) = (to_i64("reduce", shape.outer)?, to_i64("reduce", shape.reduce)?, to_i64("reduce", shape.inner)?);
    launch!(dev, programs::reduce(), name, launch_cfg(dev, &shape), [x, out, &o, &r, &i, &scale])
}

/// Index (along the axis) of the max (`max = true`) or min; ties give the first index,
/// NaN counts as the extreme. Needs `reduce > 0`.
pub fn arg_reduce<T: FloatDType>(
    dev: &CudaDevice,
    max: bool,
    shape: ReduceShape,
    x: &CudaView<'_, T>,
    out: &mut CudaViewMut<'_, i64>,
) -> Result<()> {
    check("arg_reduce", &shape, x.len(), out.len())?;
    if shape.reduce == 0 {
        return Err(Error::arg("arg_reduce", "argmax/argmin over an empty axis"));
    }
    if out.is_empty() {
        return Ok(());
    }
    let kind = if shape.inner == 1 { "rows" } else { "cols" };
    let name = format!("reduce_{}_{}_{kind}", if max { "argmax" } else { "argmin" }, T::NAME);
    let (o, r, i) = (to_i64("reduce", shape.outer)?, to_i64("reduce", shape.reduce)?, to_i64("reduce", shape.inner)?);
    let scale = 1.0f32;
    launch!(dev, programs::reduce(), name, launch_cfg(dev, &shape), [x, out, &o, &r, &i, &scale])
}
