//! Reductions along one axis (`kernels/reduce.cu`).
//!
//! The input is contiguous and viewed as `[outer, reduce, inner]` (reduce the middle axis);
//! the output is `[outer, inner]`. `inner == 1` uses one block per row with warp shuffles,
//! `inner > 1` a 32x8 block per 32 columns (coalesced); with few outputs and a long axis,
//! several blocks per output, each reducing a chunk of the axis, the last to finish
//! combining their partials in chunk order (deterministic; see `split_chunk`). The input
//! is F32, F16 or BF16 storage, accumulated in f32 ([`reduce`], [`arg_reduce`]), or F64 or I64 storage,
//! accumulated in f64 or i64 as the CPU does ([`reduce_wide`], [`arg_reduce_wide`]; I64
//! exact, the sum wrapping); sum/max/min write the input's type (floats rounded once).

use cudarc::driver::{CudaView, CudaViewMut, DeviceRepr, LaunchConfig};

use crate::device::{check_len, to_i64, CudaDevice, DType, FloatDType, ReduceScratch};
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

/// Launches reduction kernel `$name` with `$args` followed by the split reductions'
/// scratch (`part`, `tickets`): the device's, under its lock, when `$split`, else nulls.
macro_rules! launch_split {
    ($dev:expr, $name:expr, $cfg:expr, $split:expr, [$($arg:expr),*]) => {
        if $split {
            $dev.with_reduce_scratch(|scratch| {
                let (part, tickets) = (&mut scratch.part, &mut scratch.tickets);
                launch!($dev, programs::reduce(), $name, $cfg, [$($arg,)* part, tickets])
            })
        } else {
            let null = &0u64;
            launch!($dev, programs::reduce(), $name, $cfg, [$($arg,)* null, null])
        }
    };
}

/// The blocks a reduction should reach before its axis is split (a fixed number, not the
/// device's SM count, so that a result does not depend on the GPU it ran on).
const SPLIT_TARGET_BLOCKS: usize = 256;

/// The elements of the reduced axis each block reduces: the whole axis, or for few outputs
/// (under half of [`SPLIT_TARGET_BLOCKS`] blocks) and a long axis a chunk of it, so that
/// about that many blocks share the work, each thread still reading at least 16 elements
/// (`_rows`: 4096 per chunk) or 64 (`_cols`: 512, eight threads per column), and the
/// partial accumulators (`acc_bytes` each) fit the device's scratch.
fn split_chunk(s: &ReduceShape, acc_bytes: usize) -> usize {
    let r = s.reduce;
    // blocks without a split, the least a chunk should hold, outputs per block
    let (blocks, min_chunk, per_block) =
        if s.inner == 1 { (s.outer, 4096, 1) } else { (s.outer * s.inner.div_ceil(32), 512, 32) };
    if blocks == 0 || 2 * blocks > SPLIT_TARGET_BLOCKS || blocks > ReduceScratch::TICKETS || r < 2 * min_chunk {
        return r.max(1);
    }
    let splits = (SPLIT_TARGET_BLOCKS / blocks)
        .min(r / min_chunk)
        .min(ReduceScratch::PART_BYTES / (blocks * per_block * acc_bytes));
    if splits < 2 {
        return r;
    }
    r.div_ceil(splits)
}

fn launch_cfg(s: &ReduceShape, chunk: usize) -> LaunchConfig {
    let work = s.outer * s.reduce.max(1).div_ceil(chunk).max(1);
    if s.inner == 1 {
        LaunchConfig { grid_dim: (work.clamp(1, 65535 * 16) as u32, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 }
    } else {
        LaunchConfig {
            grid_dim: (s.inner.div_ceil(32) as u32, work.clamp(1, 65535) as u32, 1),
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
    // the kernel's accumulator: a value and an index for arg ops, else P's width
    let acc_bytes = if op.starts_with("arg") { 16 } else { std::mem::size_of::<P>() };
    let chunk = split_chunk(&shape, acc_bytes);
    let cfg = launch_cfg(&shape, chunk);
    let c = to_i64(what, chunk)?;
    launch_split!(dev, name, cfg, chunk < shape.reduce, [x, out, &o, &r, &i, &c, &p])
}

/// For a ReLU's output `y` and the gradient `g` reaching it, both `[rows, cols]` with
/// `cols > 1`: `gz = g * relu'(y)`, computed as the `unary_bwd_relu_*` kernels compute it,
/// and `bias` = `gz` summed over the rows, with the bits [`reduce`] gives, in one launch
/// (`relu_bwd_sum_*`) that reads each element once: the backward of a fused bias + ReLU
/// layer (the gradient it passes on, and its bias gradient).
#[allow(clippy::too_many_arguments)]
pub fn relu_backward_sum<T: FloatDType>(
    dev: &CudaDevice,
    rows: usize,
    cols: usize,
    y: &CudaView<'_, T>,
    g: &CudaView<'_, T>,
    gz: &mut CudaViewMut<'_, T>,
    bias: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    const OP: &str = "relu_backward_sum";
    if cols < 2 {
        return Err(Error::arg(OP, "needs two or more columns (one column is a row sum: use reduce)"));
    }
    for (what, len) in [("y", y.len()), ("g", g.len()), ("gz", gz.len())] {
        check_len(OP, what, len, rows * cols)?;
    }
    check_len(OP, "bias", bias.len(), cols)?;
    let shape = ReduceShape { outer: 1, reduce: rows, inner: cols };
    check(OP, &shape, rows * cols, cols)?;
    let chunk = split_chunk(&shape, 4);
    let cfg = launch_cfg(&shape, chunk);
    let (r, i, c) = (to_i64(OP, rows)?, to_i64(OP, cols)?, to_i64(OP, chunk)?);
    let name = format!("relu_bwd_sum_{}", T::NAME);
    launch_split!(dev, name, cfg, chunk < rows, [y, g, gz, bias, &r, &i, &c])
}

/// The 8-byte dtypes, both held in `i64` buffers (an F64 buffer holds the bits of its
/// values): F64 accumulates in f64, I64 in i64 (exact).
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

/// `out[o, i] = op_k(x[o, k, i])` for F64 storage, accumulated in f64, or I64 storage,
/// accumulated in i64 (the sum wraps); `Sum` is divided by `div` (1 for the sum, the axis
/// length for the mean: the CPU's `sum / n`; I64 in integers, truncated). Max/Min need
/// `reduce > 0`.
pub fn reduce_wide(
    dev: &CudaDevice,
    op: ReduceOp,
    dtype: Wide,
    shape: ReduceShape,
    x: &CudaView<'_, i64>,
    out: &mut CudaViewMut<'_, i64>,
    div: f64,
) -> Result<()> {
    let what = (op.name(), dtype.name());
    match dtype {
        Wide::F64 => launch_reduce(dev, "reduce", what, shape, x, out, div, op != ReduceOp::Sum),
        Wide::I64 => launch_reduce(dev, "reduce", what, shape, x, out, div as i64, op != ReduceOp::Sum),
    }
}

/// [`arg_reduce`] for F64 or I64 storage (compared in f64 or i64, as the CPU does).
pub fn arg_reduce_wide(
    dev: &CudaDevice,
    max: bool,
    dtype: Wide,
    shape: ReduceShape,
    x: &CudaView<'_, i64>,
    out: &mut CudaViewMut<'_, i64>,
) -> Result<()> {
    let what = (arg_name(max), dtype.name());
    match dtype {
        Wide::F64 => launch_reduce(dev, "arg_reduce", what, shape, x, out, 1.0f64, true),
        Wide::I64 => launch_reduce(dev, "arg_reduce", what, shape, x, out, 1i64, true),
    }
}

#[cfg(test)]
mod tests {
    use super::{split_chunk, ReduceScratch, ReduceShape, SPLIT_TARGET_BLOCKS};

    fn splits(outer: usize, reduce: usize, inner: usize, acc: usize) -> usize {
        reduce.max(1).div_ceil(split_chunk(&ReduceShape { outer, reduce, inner }, acc))
    }

    #[test]
    fn long_axes_with_few_outputs_split() {
        // the seed CNN's conv bias gradients (NHWC, batch 128): 169 and 30 chunks
        assert_eq!(splits(1, 128 * 26 * 26, 32, 4), 169);
        assert_eq!(splits(1, 128 * 11 * 11, 64, 4), 30);
        // a Dense bias gradient and a loss mean over 128 samples: short, one block each
        assert_eq!(splits(1, 128, 128, 4), 1);
        assert_eq!(splits(1, 128, 1, 4), 1);
        // a whole tensor's sum: 256 blocks
        assert_eq!(splits(1, 10_000_000, 1, 4), SPLIT_TARGET_BLOCKS);
        // many outputs already fill the GPU
        assert_eq!(splits(1000, 100_000, 1, 4), 1);
        assert_eq!(splits(1, 100_000, 32 * 200, 4), 1);
        // empty and tiny axes
        assert_eq!(splits(1, 0, 1, 4), 1);
        assert_eq!(splits(0, 100_000, 1, 4), 1);
    }

    #[test]
    fn splits_fit_the_scratch() {
        for outer in [1, 2, 3, 7, 64, 127, 128, 129] {
            for reduce in [1, 1000, 8191, 8192, 100_000, 10_000_000] {
                for inner in [1, 2, 31, 33, 64, 1000, 4096] {
                    for acc in [4, 8, 16] {
                        let n = splits(outer, reduce, inner, acc);
                        if n == 1 {
                            continue;
                        }
                        let (blocks, per_block) =
                            if inner == 1 { (outer, 1) } else { (outer * inner.div_ceil(32), 32) };
                        assert!(blocks <= ReduceScratch::TICKETS, "{outer} {reduce} {inner}");
                        assert!(
                            blocks * n * per_block * acc <= ReduceScratch::PART_BYTES,
                            "{outer} {reduce} {inner} {acc}"
                        );
                        assert!(blocks * n <= SPLIT_TARGET_BLOCKS, "{outer} {reduce} {inner}");
                    }
                }
            }
        }
    }
}
