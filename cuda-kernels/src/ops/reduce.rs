//! Reductions along one axis (`kernels/reduce.cu`).
//!
//! The input is contiguous and viewed as `[outer, reduce, inner]` (reduce the middle axis);
//! the output is `[outer, inner]`. `inner == 1` uses one block per row with warp shuffles,
//! `inner > 1` a 32x8 block per 32 columns (coalesced). The input is F32, F16 or BF16
//! storage, accumulated in f32 ([`reduce`], [`arg_reduce`]), or F64 or I64 storage,
//! accumulated in f64 as the CPU does ([`reduce_wide`], [`arg_reduce_wide`]); sum/max/min
//! write the input's type (rounded once; I64 truncated and saturated like Rust's `as`).

use cudarc::driver::{CudaView, CudaViewMut, DeviceRepr, LaunchConfig};

use crate::device::{check_len, to_i64, CudaDevice, DType, FloatDType};
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
    launch_reduce(dev, "reduce", (op.name(), T::NAME), shape, x, out, scale, op != ReduceOp::Sum)
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
    launch_reduce(dev, "arg_reduce", (arg_name(max), T::NAME), shape, x, out, 1.0f32, true)
}

fn arg_name(max: bool) -> &'static str {
    if max {
        "argmax"
    } else {
        "argmin"
    }
}

/// Launches `reduce_{op}_{dtype}_{rows|cols}` with its last parameter `p` (an f32 scale or an
/// f64 divisor, as the kernel declares it), after checking lengths (and, with
/// `needs_elements`, a non-empty axis).
#[allow(clippy::too_many_arguments)]
fn launch_reduce<T: DType, O: DType, P: DeviceRepr>(
    dev: &CudaDevice,
    what: &'static str,
    (op, dtype): (&str, &str),
    shape: ReduceShape,
    x: &CudaView<'_, T>,
    out: &mut CudaViewMut<'_, O>,
    p: P,
    needs_elements: bool,
) -> Result<()> {
    check(what, &shape, x.len(), out.len())?;
    if shape.reduce == 0 && needs_elements {
        return Err(Error::arg(what, format!("{op} over an empty axis")));
    }
    if out.is_empty() {
        return Ok(());
    }
    let kind = if shape.inner == 1 { "rows" } else { "cols" };
    let name = format!("reduce_{op}_{dtype}_{kind}");
    let (o, r, i) = (to_i64(what, shape.outer)?, to_i64(what, shape.reduce)?, to_i64(what, shape.inner)?);
    launch!(dev, programs::reduce(), name, launch_cfg(dev, &shape), [x, out, &o, &r, &i, &p])
}

/// The dtypes whose reductions accumulate in f64: both held in 8-byte buffers (`i64`
/// elements; an F64 buffer holds the bits of its values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wide {
    /// f64 values (bit patterns in an `i64` buffer).
    F64,
    /// i64 values.
    I64,
}

impl Wide {
    fn name(self) -> &'static str {
        match self {
            Wide::F64 => "f64",
            Wide::I64 => "i64",
        }
    }
}

/// `out[o, i] = op_k(x[o, k, i])` for F64 or I64 storage, accumulated in f64; `Sum` is divided
/// by `div` (1 for the sum, the axis length for the mean: the CPU's `sum / n`). I64 results
/// are truncated toward zero and saturated (Rust's `as`). Max/Min need `reduce > 0`.
pub fn reduce_wide(
    dev: &CudaDevice,
    op: ReduceOp,
    dtype: Wide,
    shape: ReduceShape,
    x: &CudaView<'_, i64>,
    out: &mut CudaViewMut<'_, i64>,
    div: f64,
) -> Result<()> {
    launch_reduce(dev, "reduce", (op.name(), dtype.name()), shape, x, out, div, op != ReduceOp::Sum)
}

/// [`arg_reduce`] for F64 or I64 storage (compared in f64, as the CPU does).
pub fn arg_reduce_wide(
    dev: &CudaDevice,
    max: bool,
    dtype: Wide,
    shape: ReduceShape,
    x: &CudaView<'_, i64>,
    out: &mut CudaViewMut<'_, i64>,
) -> Result<()> {
    launch_reduce(dev, "arg_reduce", (arg_name(max), dtype.name()), shape, x, out, 1.0f64, true)
}
