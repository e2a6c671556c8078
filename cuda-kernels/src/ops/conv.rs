//! 2-D convolution as implicit GEMM on NHWC input and HWIO kernels (`kernels/conv.cu`):
//! forward, grad-input and grad-kernel, with no im2col buffer; F32 and F16/BF16 on the
//! SIMT core or the tensor cores, F64 on a plain double tile ([`conv2d_f64`]).

use cudarc::driver::{CudaView, CudaViewMut, DeviceRepr, LaunchConfig};

use crate::device::{check_len, CudaDevice, FloatDType};
use crate::error::{Error, Result};
use crate::ops::gemm::{self, Activation, Bias};
use crate::sources::{program_part, programs};

/// Padding mode for [`Conv2d::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// No padding (Keras 'valid').
    Valid,
    /// Output = ceil(input / stride), extra padding at the bottom/right (Keras 'same').
    Same,
    /// Explicit `(top, bottom, left, right)` padding.
    Explicit(usize, usize, usize, usize),
}

/// Convolution geometry. x `[n, h, w, c]`, kernel `[kh, kw, c, o]`, y `[n, oh, ow, o]`;
/// output `(oh, ow)`, tap `(i, j)` reads input `(oh * sh - pt + i * dh, ow * sw - pl + j * dw)`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2d {
    /// Batch.
    pub n: i64,
    /// Input height.
    pub h: i64,
    /// Input width.
    pub w: i64,
    /// Input channels.
    pub c: i64,
    /// Output height.
    pub oh: i64,
    /// Output width.
    pub ow: i64,
    /// Output channels.
    pub o: i64,
    /// Kernel height.
    pub kh: i32,
    /// Kernel width.
    pub kw: i32,
    /// Stride along height.
    pub sh: i32,
    /// Stride along width.
    pub sw: i32,
    /// Top padding.
    pub pt: i32,
    /// Left padding.
    pub pl: i32,
    /// Dilation along height.
    pub dh: i32,
    /// Dilation along width.
    pub dw: i32,
}

// SAFETY: #[repr(C)] plain data matching `struct ConvParams` in conv.cu.
unsafe impl DeviceRepr for Conv2d {}

fn out_dim(
    op: &'static str,
    input: usize,
    k: usize,
    s: usize,
    d: usize,
    pad: Padding,
    vertical: bool,
) -> Result<(usize, usize)> {
    let ek = (k - 1) * d + 1;
    match pad {
        Padding::Valid => {
            if input < ek {
                return Err(Error::arg(op, format!("kernel extent {ek} larger than input {input}")));
            }
            Ok(((input - ek) / s + 1, 0))
        }
        Padding::Same => {
            let out = input.div_ceil(s);
            let total = (out.saturating_sub(1) * s + ek).saturating_sub(input);
            Ok((out, total / 2))
        }
        Padding::Explicit(t, b, l, r) => {
            let (p0, p1) = if vertical { (t, b) } else { (l, r) };
            let padded = input + p0 + p1;
            if padded < ek {
                return Err(Error::arg(op, format!("kernel extent {ek} larger than padded input {padded}")));
            }
            Ok(((padded - ek) / s + 1, p0))
        }
    }
}

impl Conv2d {
    /// Geometry for input `[n, h, w, c]`, `o` filters of size `k`, stride `s`, dilation `d`.
    pub fn new(
        n: usize,
        h: usize,
        w: usize,
        c: usize,
        o: usize,
        k: (usize, usize),
        s: (usize, usize),
        d: (usize, usize),
        padding: Padding,
    ) -> Result<Self> {
        if [k.0, k.1, s.0, s.1, d.0, d.1].contains(&0) {
            return Err(Error::arg("conv2d", "kernel, stride and dilation must be positive"));
        }
        let (oh, pt) = out_dim("conv2d", h, k.0, s.0, d.0, padding, true)?;
        let (ow, pl) = out_dim("conv2d", w, k.1, s.1, d.1, padding, false)?;
        let i32c = |v: usize| i32::try_from(v).map_err(|_| Error::arg("conv2d", "kernel/stride/pad too large"));
        let i = |v: usize| v as i64;
        Ok(Self {
            n: i(n),
            h: i(h),
            w: i(w),
            c: i(c),
            oh: i(oh),
            ow: i(ow),
            o: i(o),
            kh: i32c(k.0)?,
            kw: i32c(k.1)?,
            sh: i32c(s.0)?,
            sw: i32c(s.1)?,
            pt: i32c(pt)?,
            pl: i32c(pl)?,
            dh: i32c(d.0)?,
            dw: i32c(d.1)?,
        })
    }

    fn validate(&self) -> Result<()> {
        let dims = [self.n, self.h, self.w, self.c, self.oh, self.ow, self.o];
        let ints = [self.kh, self.kw, self.sh, self.sw, self.dh, self.dw];
        if dims.iter().any(|&v| v < 0) || ints.iter().any(|&v| v <= 0) || self.pt < 0 || self.pl < 0 {
            return Err(Error::arg("conv2d", format!("invalid geometry {self:?}")));
        }
        Ok(())
    }
    /// Elements of x.
    pub fn x_len(&self) -> usize {
        (self.n * self.h * self.w * self.c) as usize
    }
    /// Elements of the kernel.
    pub fn w_len(&self) -> usize {
        (self.kh as i64 * self.kw as i64 * self.c * self.o) as usize
    }
    /// Elements of y.
    pub fn y_len(&self) -> usize {
        (self.n * self.oh * self.ow * self.o) as usize
    }
}

/// The launch grid of an implicit GEMM with `m` rows (pixels) and `n` columns (channels):
/// M tiles along x (up to 2^31 - 1 blocks, so any batch and image size), N tiles along y.
fn grid(m: i64, n: i64, z: usize) -> Result<LaunchConfig> {
    grid_of(m, n, z, 128)
}

/// [`grid`] for tiles of `tile` x `tile` outputs.
fn grid_of(m: i64, n: i64, z: usize, tile: usize) -> Result<LaunchConfig> {
    let gx = (m as usize).div_ceil(tile);
    let gy = (n as usize).div_ceil(tile);
    if gx > i32::MAX as usize || gy > 65535 {
        return Err(Error::arg("conv2d", format!("implicit GEMM of {m} x {n} too large for one launch")));
    }
    Ok(LaunchConfig { grid_dim: (gx as u32, gy as u32, z as u32), block_dim: (256, 1, 1), shared_mem_bytes: 0 })
}

/// Checks the forward pass's buffer lengths (and the geometry); `false`: nothing to compute.
fn check_forward(p: &Conv2d, x: usize, w: usize, y: usize, bias: Option<usize>) -> Result<bool> {
    const OP: &str = "conv2d_forward";
    p.validate()?;
    check_len(OP, "x", x, p.x_len())?;
    check_len(OP, "w", w, p.w_len())?;
    check_len(OP, "y", y, p.y_len())?;
    if let Some(b) = bias {
        check_len(OP, "bias", b, p.o as usize)?;
    }
    Ok(y > 0)
}

/// [`check_forward`] for the grad-input pass.
fn check_backward_input(p: &Conv2d, dy: usize, w: usize, dx: usize) -> Result<bool> {
    const OP: &str = "conv2d_backward_input";
    p.validate()?;
    check_len(OP, "dy", dy, p.y_len())?;
    check_len(OP, "w", w, p.w_len())?;
    check_len(OP, "dx", dx, p.x_len())?;
    Ok(dx > 0)
}

/// [`check_forward`] for the grad-kernel pass.
fn check_backward_kernel(p: &Conv2d, x: usize, dy: usize, dw: usize) -> Result<bool> {
    const OP: &str = "conv2d_backward_kernel";
    p.validate()?;
    check_len(OP, "x", x, p.x_len())?;
    check_len(OP, "dy", dy, p.y_len())?;
    check_len(OP, "dw", dw, p.w_len())?;
    Ok(dw > 0)
}

/// Which pass of a convolution [`conv2d_f64`] runs, naming its operands `(a, b)` and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvPass {
    /// `y = conv(x, w)`: `a` = x, `b` = w, output y.
    Forward,
    /// The gradient w.r.t. the input: `a` = dy, `b` = w, output dx.
    GradInput,
    /// The gradient w.r.t. the kernel: `a` = x, `b` = dy, output dw.
    GradKernel,
}

/// One pass of an F64 convolution (`conv2d_{fwd,dgrad,wgrad}_f64`): the implicit GEMM on
/// the plain 64x64 SIMT f64 tile of the F64 GEMM, double FMA accumulation. For convolutions
/// in f64 on the GPU (gradient checks, references), not tuned for speed. Operands and output
/// are F64 values held in `i64` buffers (their bits, as keel-tensor stores F64); the output
/// is written whole (0 where no tap reaches it).
pub fn conv2d_f64(
    dev: &CudaDevice,
    p: &Conv2d,
    pass: ConvPass,
    a: &CudaView<'_, i64>,
    b: &CudaView<'_, i64>,
    out: &mut CudaViewMut<'_, i64>,
) -> Result<()> {
    let (live, name, m, n) = match pass {
        ConvPass::Forward => (check_forward(p, a.len(), b.len(), out.len(), None)?, "fwd", p.n * p.oh * p.ow, p.o),
        ConvPass::GradInput => (check_backward_input(p, a.len(), b.len(), out.len())?, "dgrad", p.n * p.h * p.w, p.c),
        ConvPass::GradKernel => (
            check_backward_kernel(p, a.len(), b.len(), out.len())?,
            "wgrad",
            i64::from(p.kh) * i64::from(p.kw) * p.c,
            p.o,
        ),
    };
    if !live {
        return Ok(());
    }
    let cfg = grid_of(m, n, 1, 64)?;
    launch!(dev, programs::conv(), &format!("conv2d_{name}_f64"), cfg, [a, b, out, p])
}

fn aligned<T>(dev: &CudaDevice, v: &CudaView<'_, T>) -> bool {
    v.is_empty() || dev.addr(v) % 16 == 0
}

/// The SIMT kernel `conv2d_<pass>_<dtype>`, the `_vec4` one (16-byte loads, f32 only) when
/// `vec` holds.
fn simt_kernel<T: FloatDType>(pass: &str, vec: bool) -> String {
    let vec = vec && T::NAME == <f32 as crate::device::DType>::NAME;
    format!("conv2d_{pass}_{}{}", T::NAME, if vec { "_vec4" } else { "" })
}

/// `y = act(alpha * conv(x, w) + beta * y + bias)` on the SIMT core; `bias` has `o` elements.
///
/// Any channel count, alignment and compute capability. F16/BF16 elements are widened to
/// f32 on load and summed as for f32 (F16/BF16 `y` gets the f32 kernel's result on the
/// widened inputs, rounded once); the tensor-core [`conv2d_forward_tc`] is faster for them
/// where [`tc_unsupported`] allows it.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_simt<T: FloatDType>(
    dev: &CudaDevice,
    p: &Conv2d,
    x: &CudaView<'_, T>,
    w: &CudaView<'_, T>,
    y: &mut CudaViewMut<'_, T>,
    bias: Option<Bias<'_, '_, T>>,
    alpha: f32,
    beta: f32,
    act: Activation,
) -> Result<()> {
    if !check_forward(p, x.len(), w.len(), y.len(), bias.as_ref().map(Bias::len))? {
        return Ok(());
    }
    let name = simt_kernel::<T>("fwd", p.c % 4 == 0 && p.o % 4 == 0 && aligned(dev, x) && aligned(dev, w));
    let cfg = grid(p.n * p.oh * p.ow, p.o, 1)?;
    let a = gemm::epilogue_code(act, bias.as_ref());
    gemm::with_bias!(bias, |b| launch!(dev, programs::conv(), name, cfg, [x, w, y, b, p, &alpha, &beta, &a]))
}

/// Gradient w.r.t. the input on the SIMT core: `dx = alpha * conv_transpose(dy, w) + beta * dx`
/// (F16/BF16 as in [`conv2d_forward_simt`]).
pub fn conv2d_backward_input_simt<T: FloatDType>(
    dev: &CudaDevice,
    p: &Conv2d,
    dy: &CudaView<'_, T>,
    w: &CudaView<'_, T>,
    dx: &mut CudaViewMut<'_, T>,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    if !check_backward_input(p, dy.len(), w.len(), dx.len())? {
        return Ok(());
    }
    let name = simt_kernel::<T>("dgrad", p.o % 4 == 0 && aligned(dev, dy) && aligned(dev, w));
    let cfg = grid(p.n * p.h * p.w, p.c, 1)?;
    launch!(dev, programs::conv(), name, cfg, [dy, w, dx, p, &alpha, &beta])
}

/// Blocks the grad-kernel's split reduction aims at (about two per SM of an H100/H200). A
/// constant, not the device's SM count, so that the split, and with it the rounding of the
/// sum, is the same on every GPU (and on the emulator).
const WGRAD_TARGET_BLOCKS: usize = 256;

/// The most splits of the grad-kernel reduction (each split is a partial `dw` in the
/// workspace).
const WGRAD_MAX_SPLITS: usize = 32;

/// How to split the grad-kernel reduction over `kdim = n * oh * ow` for an `m x o` output:
/// `(splits, k per split)`, the latter a multiple of `align` and at least 512.
fn wgrad_splits(kdim: usize, m: usize, o: usize, align: usize) -> (usize, usize) {
    let tiles = m.div_ceil(128) * o.div_ceil(128);
    if tiles > crate::device::ReduceScratch::TICKETS {
        return (1, kdim.max(1)); // the combine has a ticket per tile
    }
    let want = WGRAD_TARGET_BLOCKS.div_ceil(tiles).clamp(1, WGRAD_MAX_SPLITS);
    let k_per_split = kdim.div_ceil(want).max(512).div_ceil(align) * align;
    (kdim.div_ceil(k_per_split).max(1), k_per_split)
}

/// Gradient w.r.t. the kernel on the SIMT core: `dw = alpha * sum_batch x (*) dy + beta * dw`
/// (F16/BF16 inputs as in [`conv2d_forward_simt`]; `dw` is f32 or the input type).
///
/// The reduction over `n * oh * ow` is split across blocks when the output is small; the
/// partial sums go to a temporary buffer and are added in a fixed order (deterministic).
/// The kernels write f32, so an F16/BF16 `dw` always takes that buffer and the reduction
/// (one extra small launch when the reduction is not split), which rounds it once.
pub fn conv2d_backward_kernel_simt<T: FloatDType, O: gemm::GemmOut>(
    dev: &CudaDevice,
    p: &Conv2d,
    x: &CudaView<'_, T>,
    dy: &CudaView<'_, T>,
    dw: &mut CudaViewMut<'_, O>,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    if !check_backward_kernel(p, x.len(), dy.len(), dw.len())? {
        return Ok(());
    }
    let vec = p.c % 4 == 0 && p.o % 4 == 0 && aligned(dev, x) && aligned(dev, dy);
    let name = simt_kernel::<T>("wgrad", vec);
    launch_wgrad(dev, (programs::conv(), &name, 0, false), p, 8, x, dy, dw, alpha, beta)
}

/// Mirrors `struct SplitOut` in gemm_core.cuh: where the grad-kernel's last block of each
/// tile adds the split partial sums (`tickets` 0: not split).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct SplitOut {
    dw: u64,
    tickets: u64,
    alpha: f32,
    beta: f32,
    out: i32,
    pad: i32,
}
// SAFETY: #[repr(C)] plain data with the layout of the CUDA struct.
unsafe impl DeviceRepr for SplitOut {}

/// Launches grad-kernel `kernel` = (program, name, dynamic shared memory) with the reduction
/// over `n * oh * ow` split across blocks (splits of a multiple of `align`): one split writes
/// `dw` directly; several write partial sums to an f32 workspace, and the last block of each
/// output tile to finish adds them in split order into `dw`'s type (`splitk_combine`,
/// deterministic, in the same launch). `tc`: the tensor-core kernels, which take the output
/// type (`GemmOut::CODE`) of their direct write; the SIMT ones write f32 only, so an F16/BF16
/// `dw` always goes through the workspace (one split: the combine only rounds it).
#[allow(clippy::too_many_arguments)]
fn launch_wgrad<T: crate::device::DType, O: gemm::GemmOut>(
    dev: &CudaDevice,
    (program, name, smem, tc): (&crate::Program, &str, usize, bool),
    p: &Conv2d,
    align: usize,
    x: &CudaView<'_, T>,
    dy: &CudaView<'_, T>,
    dw: &mut CudaViewMut<'_, O>,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    let m = p.kh as i64 * p.kw as i64 * p.c;
    let kdim = (p.n * p.oh * p.ow) as usize;
    let (splits, k_per_split) = wgrad_splits(kdim, m as usize, p.o as usize, align);
    let cfg = grid(m, p.o, splits)?;
    let kps = k_per_split as i64;
    if splits == 1 && (tc || O::CODE == 0) {
        let (stride, out) = (0i64, O::CODE);
        let direct = SplitOut { dw: 0, tickets: 0, alpha, beta, out, pad: 0 };
        return if tc {
            launch!(dev, program, name, cfg, smem = smem, [x, dy, dw, p, &alpha, &beta, &kps, &stride, &out, &direct])
        } else {
            launch!(dev, program, name, cfg, smem = smem, [x, dy, dw, p, &alpha, &beta, &kps, &stride, &direct])
        };
    }
    let mn = dw.len();
    let mut ws = dev.alloc::<f32>(splits * mn)?;
    let (one, zero, stride, f32_out) = (1.0f32, 0.0f32, mn as i64, 0i32);
    let dw_addr = dev.addr_mut(dw);
    dev.with_reduce_scratch(|scratch| {
        let tickets = dev.addr_mut(&mut scratch.tickets.as_view_mut());
        let split = SplitOut { dw: dw_addr, tickets, alpha, beta, out: O::CODE, pad: 0 };
        if tc {
            launch!(
                dev,
                program,
                name,
                cfg,
                smem = smem,
                [x, dy, &mut ws, p, &one, &zero, &kps, &stride, &f32_out, &split]
            )
        } else {
            launch!(dev, program, name, cfg, smem = smem, [x, dy, &mut ws, p, &one, &zero, &kps, &stride, &split])
        }
    })
}

/// Why the tensor-core convolutions cannot run `p` on this device with these operands
/// (`None`: they can). They need F16/BF16 data, `c % 8 == 0` and `o % 8 == 0`, 16-byte
/// aligned operands, every tensor index below 2^31, and the pipelined GEMM's shared memory.
pub fn tc_unsupported<T>(dev: &CudaDevice, p: &Conv2d, operands: &[&CudaView<'_, T>]) -> Option<String> {
    if p.c % 8 != 0 || p.o % 8 != 0 {
        return Some(format!("channels {} -> {} are not multiples of 8", p.c, p.o));
    }
    if operands.iter().any(|v| !v.is_empty() && dev.addr(v) % 16 != 0) {
        return Some("an operand is not 16-byte aligned".into());
    }
    let fits = |v: i64| v < i32::MAX as i64;
    // (rows n * oh * ow and n * h * w, k = kh * kw * c, are below these products)
    if !(fits(p.n * p.h * p.w * p.c) && fits(p.n * p.oh * p.ow * p.o) && fits(p.kh as i64 * p.kw as i64 * p.c * p.o)) {
        return Some("a tensor has 2^31 elements or more".into());
    }
    if dev.compute_capability().0 < 8 || dev.max_shared_memory_per_block_optin() < gemm::PIPE_SMEM_BYTES {
        return Some(format!(
            "{} lacks cp.async or {} bytes of shared memory per block",
            dev.arch(),
            gemm::PIPE_SMEM_BYTES
        ));
    }
    None
}

fn tc_check<T: gemm::TcInput>(
    dev: &CudaDevice,
    p: &Conv2d,
    op: &'static str,
    operands: &[&CudaView<'_, T>],
) -> Result<()> {
    p.validate()?;
    if !T::PIPELINED {
        return Err(Error::arg(op, format!("the tensor-core convolution takes F16 or BF16, not {}", T::TC_NAME)));
    }
    match tc_unsupported(dev, p, operands) {
        Some(why) => Err(Error::arg(op, format!("no tensor-core convolution here: {why}"))),
        None => Ok(()),
    }
}

/// [`conv2d_forward_simt`] on tensor cores: F16/BF16 `x` and `w`, f32 accumulation, and
/// `y` in f32 or the input type, rounded once (see [`tc_unsupported`] for what it needs).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_tc<T: gemm::TcInput, O: gemm::GemmOut>(
    dev: &CudaDevice,
    p: &Conv2d,
    x: &CudaView<'_, T>,
    w: &CudaView<'_, T>,
    y: &mut CudaViewMut<'_, O>,
    bias: Option<Bias<'_, '_, O>>,
    alpha: f32,
    beta: f32,
    act: Activation,
) -> Result<()> {
    const OP: &str = "conv2d_forward";
    tc_check(dev, p, OP, &[x, w])?;
    if !check_forward(p, x.len(), w.len(), y.len(), bias.as_ref().map(Bias::len))? {
        return Ok(());
    }
    let name = format!("conv2d_fwd_tc_{}", T::TC_NAME);
    let cfg = grid(p.n * p.oh * p.ow, p.o, 1)?;
    let (a, smem, out) = (gemm::epilogue_code(act, bias.as_ref()), gemm::PIPE_SMEM_BYTES, O::CODE);
    let program = program_part(programs::gemm_tc(), gemm::conv_tc_part(T::TC_NAME));
    gemm::with_bias!(bias, |b| launch!(dev, program, name, cfg, smem = smem, [x, w, y, b, p, &alpha, &beta, &a, &out]))
}

/// [`conv2d_backward_input_simt`] on tensor cores (F16/BF16 `dy` and `w`; `dx` in f32 or the
/// input type).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_input_tc<T: gemm::TcInput, O: gemm::GemmOut>(
    dev: &CudaDevice,
    p: &Conv2d,
    dy: &CudaView<'_, T>,
    w: &CudaView<'_, T>,
    dx: &mut CudaViewMut<'_, O>,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    const OP: &str = "conv2d_backward_input";
    tc_check(dev, p, OP, &[dy, w])?;
    if !check_backward_input(p, dy.len(), w.len(), dx.len())? {
        return Ok(());
    }
    let name = format!("conv2d_dgrad_tc_{}", T::TC_NAME);
    let cfg = grid(p.n * p.h * p.w, p.c, 1)?;
    let program = program_part(programs::gemm_tc(), gemm::conv_tc_part(T::TC_NAME));
    let out = O::CODE;
    launch!(dev, program, name, cfg, smem = gemm::PIPE_SMEM_BYTES, [dy, w, dx, p, &alpha, &beta, &out])
}

/// [`conv2d_backward_kernel_simt`] on tensor cores (F16/BF16 `x` and `dy`; `dw` in f32 or the
/// input type), with the same deterministic split of the reduction.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_kernel_tc<T: gemm::TcInput, O: gemm::GemmOut>(
    dev: &CudaDevice,
    p: &Conv2d,
    x: &CudaView<'_, T>,
    dy: &CudaView<'_, T>,
    dw: &mut CudaViewMut<'_, O>,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    const OP: &str = "conv2d_backward_kernel";
    tc_check(dev, p, OP, &[x, dy])?;
    if !check_backward_kernel(p, x.len(), dy.len(), dw.len())? {
        return Ok(());
    }
    let name = format!("conv2d_wgrad_tc_{}", T::TC_NAME);
    // splits of whole 32-deep k-tiles, so that no tile straddles two splits
    let program = program_part(programs::gemm_tc(), gemm::conv_tc_part(T::TC_NAME));
    launch_wgrad(dev, (program, &name, gemm::PIPE_SMEM_BYTES, true), p, 32, x, dy, dw, alpha, beta)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batch 128 of 256x256 images is M = 8.4M output pixels: past what grid y allows, within
    /// grid x, where the M tiles run.
    #[test]
    fn large_images_fit_the_grid() {
        let m = 128 * 256 * 256;
        assert_eq!(grid(m, 64, 1).expect("grid").grid_dim, (65_536, 1, 1));
        assert!(grid(8, 65_535 * 128 + 1, 1).is_err());
    }

    /// The grad-kernel split depends on the shapes only: splits of at least 512 (a multiple
    /// of `align`) covering k, at most 32 of them, about 256 blocks in all, none without work.
    #[test]
    fn wgrad_splits_cover_k_and_depend_on_shapes_only() {
        // the seed CNN at batch 128: conv 1 (3*3*1 x 32 over 128*26*26), conv 2 (3*3*32 x 64)
        assert_eq!(wgrad_splits(128 * 26 * 26, 9, 32, 8), (32, 2_704));
        assert_eq!(wgrad_splits(128 * 11 * 11, 288, 64, 8), (31, 512));
        assert_eq!(wgrad_splits(100, 9, 32, 8), (1, 512));
        for kdim in [0, 1, 511, 512, 513, 4_096, 86_528, 1 << 22] {
            for (m, o) in [(9, 32), (288, 64), (1_152, 512), (4_608, 4_608), (128 * 128, 128 * 80)] {
                for align in [1, 8, 32] {
                    let (splits, kps) = wgrad_splits(kdim, m, o, align);
                    let tiles = m.div_ceil(128) * o.div_ceil(128);
                    assert!((1..=WGRAD_MAX_SPLITS).contains(&splits), "{kdim} {m} {o}");
                    if splits > 1 {
                        assert!(kps % align == 0 && kps >= 512, "{kdim} {m} {o} {align}");
                        assert!(tiles * splits <= WGRAD_TARGET_BLOCKS + tiles, "{kdim} {m} {o}");
                        assert!(kps * (splits - 1) < kdim && kps * splits >= kdim, "{kdim} {m} {o} {align}");
                    } else {
                        assert!(kps >= kdim, "{kdim} {m} {o} {align}");
                    }
                }
            }
        }
    }
}
