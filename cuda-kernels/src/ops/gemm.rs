//! Batched GEMM: tiled SIMT f32 (`kernels/gemm.cu`) and tensor-core TF32/F16/BF16
//! (`kernels/gemm_tc.cu`).
//!
//! Row-major: `C[b] = act(alpha * op(A[b]) @ op(B[b]) + beta * C[b] + bias)` with
//! `op(A)` `[m, k]` (A stored `[m, k]`, or `[k, m]` when `trans_a`), `op(B)` `[k, n]`
//! (B stored `[k, n]`, or `[n, k]` when `trans_b`), `C` `[m, n]`, `bias` `[n]`.
//! All four forms (NN, NT, TN, TT) exist for every precision; C is never read when
//! `beta == 0`. Output and accumulation are f32.

use cudarc::driver::{CudaView, CudaViewMut, DeviceRepr, LaunchConfig};

use crate::device::{check_min_len, to_i64, CudaDevice, DType};
use crate::error::{Error, Result};
use crate::sources::{program_part, programs};

/// Epilogue activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// Identity.
    #[default]
    None,
    /// `max(x, 0)`.
    Relu,
}

impl Activation {
    pub(crate) fn code(self) -> i32 {
        match self {
            Activation::None => 0,
            Activation::Relu => 1,
        }
    }
}

/// The bias `[n]` a GEMM's (or a convolution's, `[o]`) epilogue adds; `O` is C's storage type.
#[derive(Debug, Clone, Copy)]
pub enum Bias<'a, 'b, O: DType> {
    /// f32, added to the f32 result before the one rounding to C's type.
    F32(&'a CudaView<'b, f32>),
    /// C's own type, added to the result rounded to that type, the sum rounded again before
    /// the activation: the bits of a GEMM writing C followed by separate add (and relu)
    /// kernels on C's type, which is what F16/BF16 layers compute. For f32 C, as `F32`.
    Rounded(&'a CudaView<'b, O>),
}

impl<O: DType> Bias<'_, '_, O> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Bias::F32(b) => b.len(),
            Bias::Rounded(b) => b.len(),
        }
    }

    /// True when it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The epilogue's `act` code for activation `act` and `bias`: the activation, with
/// `KEEL_EPI_BIAS_ROUNDED` (gemm_core.cuh) for a [`Bias::Rounded`] bias.
pub(crate) fn epilogue_code<O: DType>(act: Activation, bias: Option<&Bias<'_, '_, O>>) -> i32 {
    act.code() | if matches!(bias, Some(Bias::Rounded(_))) { 256 } else { 0 }
}

/// Launches `$launch` with `$b` bound to `$bias`'s kernel argument: the bias view, or a null
/// pointer for `None` (the kernels test `bias` for null).
macro_rules! with_bias {
    ($bias:expr, |$b:ident| $launch:expr) => {
        match $bias {
            Some($crate::ops::gemm::Bias::F32($b)) => $launch,
            Some($crate::ops::gemm::Bias::Rounded($b)) => $launch,
            None => {
                let $b = &0u64;
                $launch
            }
        }
    };
}
pub(crate) use with_bias;

/// Shape, layout and epilogue of one (batched) GEMM.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GemmArgs {
    /// Rows of op(A) and C.
    pub m: usize,
    /// Columns of op(B) and C.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// A is stored `[k, m]`.
    pub trans_a: bool,
    /// B is stored `[n, k]`.
    pub trans_b: bool,
    /// Leading dimension of A as stored (elements between rows).
    pub lda: usize,
    /// Leading dimension of B as stored.
    pub ldb: usize,
    /// Leading dimension of C.
    pub ldc: usize,
    /// Number of matrices.
    pub batch: usize,
    /// Elements between consecutive A matrices (0 broadcasts one A).
    pub stride_a: usize,
    /// Elements between consecutive B matrices (0 broadcasts one B).
    pub stride_b: usize,
    /// Elements between consecutive C matrices.
    pub stride_c: usize,
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of the existing C (0: C is write-only).
    pub beta: f32,
    /// Activation applied last.
    pub act: Activation,
}

impl GemmArgs {
    /// A single contiguous NN GEMM `[m, k] @ [k, n]`, alpha 1, beta 0, no activation.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        Self {
            m,
            n,
            k,
            trans_a: false,
            trans_b: false,
            lda: k,
            ldb: n,
            ldc: n,
            batch: 1,
            stride_a: m * k,
            stride_b: k * n,
            stride_c: m * n,
            alpha: 1.0,
            beta: 0.0,
            act: Activation::None,
        }
    }

    /// Sets the transpose flags and resets lda/ldb to the contiguous values.
    pub fn transpose(mut self, trans_a: bool, trans_b: bool) -> Self {
        self.trans_a = trans_a;
        self.trans_b = trans_b;
        self.lda = if trans_a { self.m } else { self.k };
        self.ldb = if trans_b { self.k } else { self.n };
        self
    }

    /// Makes it a batch of `batch` contiguous matrices (strides m*k, k*n, m*n).
    pub fn batched(mut self, batch: usize) -> Self {
        self.batch = batch;
        self.stride_a = self.m * self.k;
        self.stride_b = self.k * self.n;
        self.stride_c = self.m * self.n;
        self
    }

    /// Sets alpha and beta.
    pub fn scale(mut self, alpha: f32, beta: f32) -> Self {
        self.alpha = alpha;
        self.beta = beta;
        self
    }

    /// Sets the epilogue activation.
    pub fn activation(mut self, act: Activation) -> Self {
        self.act = act;
        self
    }

    fn validate(&self, a: usize, b: usize, c: usize, bias: Option<usize>) -> Result<()> {
        let (ar, ac) = if self.trans_a { (self.k, self.m) } else { (self.m, self.k) };
        let (br, bc) = if self.trans_b { (self.n, self.k) } else { (self.k, self.n) };
        let need = |rows: usize, cols: usize, ld: usize, stride: usize, what: &str| -> Result<usize> {
            if cols > ld && rows > 1 {
                return Err(Error::arg("gemm", format!("leading dimension of {what} ({ld}) < columns ({cols})")));
            }
            if rows == 0 || cols == 0 || self.batch == 0 {
                return Ok(0);
            }
            Ok((self.batch - 1) * stride + (rows - 1) * ld + cols)
        };
        check_min_len("gemm", "A", a, need(ar, ac, self.lda, self.stride_a, "A")?)?;
        check_min_len("gemm", "B", b, need(br, bc, self.ldb, self.stride_b, "B")?)?;
        check_min_len("gemm", "C", c, need(self.m, self.n, self.ldc, self.stride_c, "C")?)?;
        if let Some(l) = bias {
            check_min_len("gemm", "bias", l, self.n)?;
        }
        // M tiles run along grid x (up to 2^31 - 1 blocks), N tiles along grid y (65535).
        if self.n.div_ceil(128) > 65535 {
            return Err(Error::arg("gemm", format!("n = {} too large for one launch (max {})", self.n, 65535 * 128)));
        }
        if self.m.div_ceil(128) > i32::MAX as usize {
            return Err(Error::arg("gemm", format!("m = {} too large for one launch", self.m)));
        }
        Ok(())
    }

    fn params(&self) -> Result<GemmParams> {
        let i = |v: usize| to_i64("gemm", v);
        Ok(GemmParams {
            m: i(self.m)?,
            n: i(self.n)?,
            k: i(self.k)?,
            lda: i(self.lda)?,
            ldb: i(self.ldb)?,
            ldc: i(self.ldc)?,
            stride_a: i(self.stride_a)?,
            stride_b: i(self.stride_b)?,
            stride_c: i(self.stride_c)?,
            batch: i(self.batch)?,
            alpha: self.alpha,
            beta: self.beta,
            act: self.act.code(),
            out: 0,
        })
    }

    fn form(&self) -> &'static str {
        match (self.trans_a, self.trans_b) {
            (false, false) => "nn",
            (false, true) => "nt",
            (true, false) => "tn",
            (true, true) => "tt",
        }
    }

    fn cfg(&self) -> LaunchConfig {
        self.cfg_n(128)
    }

    /// The launch of 128 x `n_tile` block tiles (256 threads), one batch matrix per z.
    fn cfg_n(&self, n_tile: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (
                self.m.div_ceil(128) as u32,
                self.n.div_ceil(n_tile) as u32,
                self.batch.min(grid_z_limit()) as u32,
            ),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        }
    }
}

/// Most blocks along z (batch matrices in flight); each block loops over the batch matrices
/// `z, z + grid_z, ...`, so any limit gives the same results.
static GRID_Z_LIMIT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(65535);

fn grid_z_limit() -> usize {
    GRID_Z_LIMIT.load(std::sync::atomic::Ordering::Relaxed)
}

/// Lowers the grid's z extent (CUDA's limit is 65535) so that tests reach the kernels'
/// batch loop with a few small matrices. Results do not depend on it.
#[doc(hidden)]
pub fn set_grid_z_limit(limit: usize) {
    GRID_Z_LIMIT.store(limit.clamp(1, 65535), std::sync::atomic::Ordering::Relaxed);
}

/// Mirrors `struct GemmParams` in gemm_core.cuh.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct GemmParams {
    m: i64,
    n: i64,
    k: i64,
    lda: i64,
    ldb: i64,
    ldc: i64,
    stride_a: i64,
    stride_b: i64,
    stride_c: i64,
    batch: i64,
    alpha: f32,
    beta: f32,
    act: i32,
    /// C's storage (`GemmOut::CODE`): read by the tensor-core kernels only.
    out: i32,
}
// SAFETY: #[repr(C)] plain data with the layout of the CUDA struct.
unsafe impl DeviceRepr for GemmParams {}

/// The storage of a GEMM's output C: f32 for every kernel, f16 and bf16 for the
/// tensor-core ones (the epilogue rounds the f32 result once).
pub trait GemmOut: DType {
    /// `GemmParams::out` in gemm_core.cuh.
    const CODE: i32;
}
impl GemmOut for f32 {
    const CODE: i32 = 0;
}
impl GemmOut for half::f16 {
    const CODE: i32 = 1;
}
impl GemmOut for half::bf16 {
    const CODE: i32 = 2;
}

#[allow(clippy::too_many_arguments)]
fn launch_gemm<T: DType, O: GemmOut>(
    dev: &CudaDevice,
    program: &crate::Program,
    kernel: String,
    (smem_bytes, n_tile): (usize, usize),
    args: &GemmArgs,
    a: &CudaView<'_, T>,
    b: &CudaView<'_, T>,
    c: &mut CudaViewMut<'_, O>,
    bias: Option<Bias<'_, '_, O>>,
) -> Result<()> {
    let Some(p) = kernel_params(args, a, b, c, bias.as_ref())? else { return Ok(()) };
    let cfg = args.cfg_n(n_tile);
    with_bias!(bias, |bias| launch!(dev, program, kernel, cfg, smem = smem_bytes, [a, b, c, bias, &p]))
}

/// The kernel's `GemmParams` for `args` (C's type, the epilogue code) after checking the
/// buffers, or `None` when there is nothing to compute.
fn kernel_params<T: DType, O: GemmOut>(
    args: &GemmArgs,
    a: &CudaView<'_, T>,
    b: &CudaView<'_, T>,
    c: &CudaViewMut<'_, O>,
    bias: Option<&Bias<'_, '_, O>>,
) -> Result<Option<GemmParams>> {
    args.validate(a.len(), b.len(), c.len(), bias.map(Bias::len))?;
    if args.m == 0 || args.n == 0 || args.batch == 0 {
        return Ok(None);
    }
    let mut p = args.params()?;
    p.out = O::CODE;
    p.act = epilogue_code(args.act, bias);
    Ok(Some(p))
}

/// Which SIMT f32 kernel runs a GEMM (see [`gemm_f32_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SimtKernel {
    /// 16-byte loads when the operands allow them (leading dims and batch strides multiples
    /// of 4, 16-byte aligned A and B), else element loads; no register cap (one block per SM).
    #[default]
    Auto,
    /// The 16-byte-load kernel capped at 128 registers, two blocks per SM (`_vec4_2b`): a
    /// tuning candidate that gpu_bench times beside `Auto` until a GPU run picks one.
    TwoBlocksPerSm,
    /// The same tile with two shared-memory buffers (`_db`, `_vec4_db`): one barrier per
    /// k-tile instead of two, fragments loaded a step ahead; 16-byte loads when the operands
    /// allow them, as `Auto`. The same bits as `Auto`. A tuning candidate (gpu_bench `f32/db`).
    DoubleBuffered,
}

/// SIMT f32 GEMM (exact f32 FMA accumulation). Uses 16-byte loads when lda/ldb/strides
/// are multiples of 4 and A/B are 16-byte aligned.
pub fn gemm_f32(
    dev: &CudaDevice,
    args: &GemmArgs,
    a: &CudaView<'_, f32>,
    b: &CudaView<'_, f32>,
    c: &mut CudaViewMut<'_, f32>,
    bias: Option<Bias<'_, '_, f32>>,
) -> Result<()> {
    gemm_f32_with(dev, args, a, b, c, bias, SimtKernel::Auto)
}

/// [`gemm_f32`] on a chosen kernel; `TwoBlocksPerSm` on operands that do not allow 16-byte
/// loads is an error.
pub fn gemm_f32_with(
    dev: &CudaDevice,
    args: &GemmArgs,
    a: &CudaView<'_, f32>,
    b: &CudaView<'_, f32>,
    c: &mut CudaViewMut<'_, f32>,
    bias: Option<Bias<'_, '_, f32>>,
    kernel: SimtKernel,
) -> Result<()> {
    let vec = aligned16(dev, args, a, b);
    // (kernel-name suffix, part of the GEMM source holding it)
    let (suffix, part) = match (kernel, vec) {
        (SimtKernel::Auto, true) => ("_vec4", 2),
        (SimtKernel::Auto, false) => ("", 1),
        (SimtKernel::TwoBlocksPerSm, true) => ("_vec4_2b", 3),
        (SimtKernel::DoubleBuffered, true) => ("_vec4_db", 5),
        (SimtKernel::DoubleBuffered, false) => ("_db", 4),
        (SimtKernel::TwoBlocksPerSm, false) => {
            return Err(Error::arg(
                "gemm",
                "SimtKernel::TwoBlocksPerSm needs lda, ldb and batch strides that are multiples of 4 and 16-byte \
                 aligned A and B",
            ))
        }
    };
    let kernel = format!("gemm_f32_{}{suffix}", args.form());
    let program = program_part(programs::gemm(), part);
    launch_gemm_split(dev, program, kernel, 0, (8, 128), args, a, b, c, bias)
}

/// Launches a GEMM kernel that can split k (`gemm_f32_*`, `gemm_tc_*_pipe`: the arguments
/// of [`launch_gemm`], then `k_split`, the f32 workspace and the tile tickets), split as
/// [`split_k`] says for `(k-tile, least k per block)`, or whole.
#[allow(clippy::too_many_arguments)]
fn launch_gemm_split<T: DType, O: GemmOut>(
    dev: &CudaDevice,
    program: &crate::Program,
    kernel: String,
    smem: usize,
    (k_tile, min_k): (usize, usize),
    args: &GemmArgs,
    a: &CudaView<'_, T>,
    b: &CudaView<'_, T>,
    c: &mut CudaViewMut<'_, O>,
    bias: Option<Bias<'_, '_, O>>,
) -> Result<()> {
    let Some(p) = kernel_params(args, a, b, c, bias.as_ref())? else { return Ok(()) };
    let Some(k_split) = split_k(args, k_tile, min_k) else {
        let (cfg, none, null) = (args.cfg(), 0i64, &0u64);
        return with_bias!(bias, |bias| {
            launch!(dev, program, kernel, cfg, smem = smem, [a, b, c, bias, &p, &none, null, null])
        });
    };
    let splits = args.k.div_ceil(k_split);
    let mut ws = dev.alloc::<f32>(splits * args.m * args.n)?;
    let grid_dim = (args.m.div_ceil(128) as u32, args.n.div_ceil(128) as u32, splits as u32);
    let cfg = LaunchConfig { grid_dim, ..args.cfg() };
    let ks = to_i64("gemm", k_split)?;
    dev.with_reduce_scratch(|scratch| {
        let tickets = &mut scratch.tickets;
        with_bias!(bias, |bias| {
            launch!(dev, program, kernel, cfg, smem = smem, [a, b, c, bias, &p, &ks, &mut ws, tickets])
        })
    })
}

/// The blocks a split-K GEMM aims at: about one wave of the SIMT kernel (one 256-thread
/// block per SM) on an H100/H200, fixed so that a result does not depend on the GPU.
const SPLIT_K_TARGET_BLOCKS: usize = 128;

/// The k per block of a GEMM on 128x128 tiles split along k (a multiple of `k_tile`, the
/// kernel's k-tile), or `None` to run it whole: split when a single matrix (batch 1) has
/// few output tiles (at most half of [`SPLIT_K_TARGET_BLOCKS`]) and a long k, each block
/// keeping at least `min_k` of k (SIMT f32: 8 and 128; pipelined tensor cores: 32 and 256;
/// the other tensor-core kernels, TF32 among them: 32 and 128).
/// A Dense layer's forward pass on a batch of 128 (128 x 128 outputs, k = 1,600) runs on 12
/// SIMT blocks instead of one, or 6 tensor-core ones.
fn split_k(args: &GemmArgs, k_tile: usize, min_k: usize) -> Option<usize> {
    let tiles = args.m.div_ceil(128) * args.n.div_ceil(128);
    if args.batch != 1 || 2 * tiles > SPLIT_K_TARGET_BLOCKS || tiles > crate::device::ReduceScratch::TICKETS {
        return None;
    }
    let splits = (SPLIT_K_TARGET_BLOCKS / tiles).min(args.k / min_k);
    if splits < 2 {
        return None;
    }
    let k_split = args.k.div_ceil(splits).div_ceil(k_tile) * k_tile;
    (k_split < args.k).then_some(k_split)
}

/// F64 GEMM (`gemm_f64_{form}`, a plain 64x64 SIMT tile with f64 FMA accumulation): for
/// matmuls in double on the GPU (gradient checks, references), not tuned for speed. The
/// operands are F64 values held in `i64` buffers (their bits, as keel-tensor stores F64).
/// Takes `alpha` and `beta`; no bias or activation (an error if asked for one).
pub fn gemm_f64(
    dev: &CudaDevice,
    args: &GemmArgs,
    a: &CudaView<'_, i64>,
    b: &CudaView<'_, i64>,
    c: &mut CudaViewMut<'_, i64>,
    bias: Option<Bias<'_, '_, i64>>,
) -> Result<()> {
    if args.act != Activation::None || bias.is_some() {
        return Err(Error::arg("gemm", "the F64 GEMM has no bias or activation epilogue"));
    }
    args.validate(a.len(), b.len(), c.len(), None)?;
    if args.n.div_ceil(64) > 65535 {
        return Err(Error::arg("gemm", format!("n = {} too large for one F64 launch (max {})", args.n, 65535 * 64)));
    }
    if args.m == 0 || args.n == 0 || args.batch == 0 {
        return Ok(());
    }
    let p = args.params()?;
    let cfg = LaunchConfig {
        grid_dim: (args.m.div_ceil(64) as u32, args.n.div_ceil(64) as u32, args.batch.min(grid_z_limit()) as u32),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let kernel = format!("gemm_f64_{}", args.form());
    launch!(dev, program_part(programs::gemm(), 6), kernel, cfg, [a, b, c, &p])
}

/// Which tensor-core kernel runs a TF32/F16/BF16 GEMM (see [`gemm_tc`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcKernel {
    /// The fastest one the operands allow: `Pipelined` for aligned F16/BF16, else `Vec` when
    /// aligned, else `Element`. `KEEL_GEMM_TC=element|vec` caps the choice (a tuning switch
    /// for comparing the kernels inside a whole program).
    #[default]
    Auto,
    /// One k-tile at a time with element loads: any strides, any alignment.
    Element,
    /// One k-tile at a time with 16-byte loads: leading dims and batch strides a multiple of
    /// 16 bytes' worth of elements, 16-byte aligned A and B.
    Vec,
    /// cp.async pipeline of 4 k-tiles with ldmatrix fragments (`gemm_tc_pipe.cu`): F16/BF16
    /// only, the alignment of `Vec`, and 80 KiB of shared memory per block.
    Pipelined,
    /// `Pipelined` on 128x256 block tiles (`_pipe_w`: 64x64 per warp, one block per SM, 120
    /// KiB of shared memory), without split-K: a tuning candidate for large GEMMs that
    /// gpu_bench times beside `Pipelined` (row `bf16/w`) until a GPU run picks one.
    /// `KEEL_GEMM_TC=wide` makes `Auto` take it wherever it would take `Pipelined`.
    PipelinedWide,
}

/// Dynamic shared memory of the pipelined kernels: 4 stages of a 128x32 A tile and a
/// 128x32 B tile, each padded to 128 x 40 bf16 (`pipe_smem_bytes<128>` in gemm_tc_pipe.cu).
pub const PIPE_SMEM_BYTES: usize = 4 * 2 * 128 * (32 + 8) * 2;

/// Dynamic shared memory of [`TcKernel::PipelinedWide`]: 4 stages of a 128x32 A tile and a
/// 256x32 B tile, padded to 40 elements a row (`pipe_smem_bytes<256>` in gemm_tc_pipe.cu).
pub const PIPE_WIDE_SMEM_BYTES: usize = 4 * (128 + 256) * (32 + 8) * 2;

/// An input type of the tensor-core GEMM.
pub trait TcInput: DType {
    /// Kernel-name infix (`tf32`, `f16`, `bf16`).
    const TC_NAME: &'static str;
    /// Whether the pipelined kernels exist for this type.
    const PIPELINED: bool;
}
impl TcInput for f32 {
    const TC_NAME: &'static str = "tf32";
    const PIPELINED: bool = false;
}
impl TcInput for half::f16 {
    const TC_NAME: &'static str = "f16";
    const PIPELINED: bool = true;
}
impl TcInput for half::bf16 {
    const TC_NAME: &'static str = "bf16";
    const PIPELINED: bool = true;
}

/// `KEEL_GEMM_TC`: the most capable kernel `Auto` may pick.
fn auto_cap() -> TcKernel {
    static CAP: std::sync::OnceLock<TcKernel> = std::sync::OnceLock::new();
    *CAP.get_or_init(|| match std::env::var("KEEL_GEMM_TC").as_deref() {
        Ok("element") => TcKernel::Element,
        Ok("vec") => TcKernel::Vec,
        Ok("wide") => TcKernel::PipelinedWide,
        _ => TcKernel::Pipelined,
    })
}

/// Whether A and B allow 16-byte loads: leading dims and batch strides a multiple of
/// 16 bytes' worth of elements, and both bases 16-byte aligned (SIMT and tensor-core kernels).
fn aligned16<T>(dev: &CudaDevice, args: &GemmArgs, a: &CudaView<'_, T>, b: &CudaView<'_, T>) -> bool {
    let v = 16 / std::mem::size_of::<T>();
    [args.lda, args.ldb, args.stride_a, args.stride_b].iter().all(|&x| x % v == 0)
        && (a.is_empty() || dev.addr(a) % 16 == 0)
        && (b.is_empty() || dev.addr(b) % 16 == 0)
}

/// The kernel that `kernel` resolves to for these operands, or why it cannot run them.
fn resolve_tc<T: TcInput>(
    dev: &CudaDevice,
    args: &GemmArgs,
    a: &CudaView<'_, T>,
    b: &CudaView<'_, T>,
    kernel: TcKernel,
) -> Result<TcKernel> {
    let aligned = aligned16(dev, args, a, b);
    let smem = |k: TcKernel| if k == TcKernel::PipelinedWide { PIPE_WIDE_SMEM_BYTES } else { PIPE_SMEM_BYTES };
    let pipe_ok = |k: TcKernel| {
        T::PIPELINED && aligned && dev.compute_capability().0 >= 8 && dev.max_shared_memory_per_block_optin() >= smem(k)
    };
    let pipelined = |k: TcKernel| matches!(k, TcKernel::Pipelined | TcKernel::PipelinedWide);
    match kernel {
        TcKernel::Auto => Ok(match auto_cap() {
            k if pipelined(k) && pipe_ok(k) => k,
            TcKernel::PipelinedWide if pipe_ok(TcKernel::Pipelined) => TcKernel::Pipelined,
            TcKernel::Pipelined | TcKernel::PipelinedWide | TcKernel::Vec if aligned => TcKernel::Vec,
            _ => TcKernel::Element,
        }),
        TcKernel::Element => Ok(TcKernel::Element),
        TcKernel::Vec if aligned => Ok(TcKernel::Vec),
        k if pipelined(k) && pipe_ok(k) => Ok(k),
        k if pipelined(k) && !T::PIPELINED => {
            Err(Error::arg("gemm", format!("the pipelined tensor-core kernels take F16 or BF16, not {}", T::TC_NAME)))
        }
        k if pipelined(k) && aligned => Err(Error::arg(
            "gemm",
            format!(
                "{k:?} needs sm_80+ and {} bytes of shared memory per block (this device: {}, {} bytes)",
                smem(k),
                dev.arch(),
                dev.max_shared_memory_per_block_optin()
            ),
        )),
        _ => Err(Error::arg(
            "gemm",
            format!(
                "{kernel:?} needs lda, ldb and batch strides that are multiples of {} elements and 16-byte aligned A \
                 and B (got lda {}, ldb {}); use TcKernel::Auto",
                16 / std::mem::size_of::<T>(),
                args.lda,
                args.ldb
            ),
        )),
    }
}

/// Tensor-core GEMM (`mma.sync`, f32 accumulation) with inputs of type `T`: f32 rounded to
/// TF32 (10-bit mantissa), f16 or bf16; output C of type `O` (f32, f16 or bf16, the f32
/// result rounded once; with `beta != 0` C is read in that type); `kernel` picks the implementation
/// ([`TcKernel::Auto`] is what [`gemm_tf32`], [`gemm_f16`] and [`gemm_bf16`] use). An explicit
/// kernel the operands or the device do not allow is an error, never a silent substitute.
pub fn gemm_tc<T: TcInput, O: GemmOut>(
    dev: &CudaDevice,
    args: &GemmArgs,
    a: &CudaView<'_, T>,
    b: &CudaView<'_, T>,
    c: &mut CudaViewMut<'_, O>,
    bias: Option<Bias<'_, '_, O>>,
    kernel: TcKernel,
) -> Result<()> {
    let resolved = resolve_tc(dev, args, a, b, kernel)?;
    let (suffix, smem, n_tile) = match resolved {
        TcKernel::Pipelined => ("_pipe", PIPE_SMEM_BYTES, 128),
        TcKernel::PipelinedWide => ("_pipe_w", PIPE_WIDE_SMEM_BYTES, 256),
        TcKernel::Vec => ("_vec", 0, 128),
        _ => ("", 0, 128),
    };
    let name = format!("gemm_tc_{}_{}{suffix}", T::TC_NAME, args.form());
    let program = program_part(programs::gemm_tc(), tc_part(T::TC_NAME, resolved));
    match resolved {
        // 32-deep k-tiles; at least 8 of them per block, for the 4-stage pipeline's prologue
        TcKernel::Pipelined => launch_gemm_split(dev, program, name, smem, (32, 256), args, a, b, c, bias),
        TcKernel::PipelinedWide => launch_gemm(dev, program, name, (smem, n_tile), args, a, b, c, bias),
        // one 32-deep k-tile at a time; at least 4 per block
        _ => launch_gemm_split(dev, program, name, smem, (32, 128), args, a, b, c, bias),
    }
}

/// The part of the tensor-core source ([`crate::sources::GEMM_TC`]) holding the GEMM
/// kernels of input type `tc_name` (`tf32`, `f16`, `bf16`) that `kernel` (resolved) runs.
fn tc_part(tc_name: &str, kernel: TcKernel) -> u32 {
    match (tc_name, kernel) {
        ("tf32", _) => 1,
        (_, TcKernel::PipelinedWide) => 8,
        ("f16", TcKernel::Pipelined) => 4,
        ("bf16", TcKernel::Pipelined) => 5,
        ("f16", _) => 2,
        _ => 3,
    }
}

/// The part of the tensor-core source holding the convolutions of input type `tc_name`
/// (`f16` or `bf16`).
pub(crate) fn conv_tc_part(tc_name: &str) -> u32 {
    if tc_name == "f16" {
        6
    } else {
        7
    }
}

/// Tensor-core GEMM with f32 inputs rounded to TF32 (10-bit mantissa), f32 accumulation.
pub fn gemm_tf32(
    dev: &CudaDevice,
    args: &GemmArgs,
    a: &CudaView<'_, f32>,
    b: &CudaView<'_, f32>,
    c: &mut CudaViewMut<'_, f32>,
    bias: Option<Bias<'_, '_, f32>>,
) -> Result<()> {
    gemm_tc(dev, args, a, b, c, bias, TcKernel::Auto)
}

/// Tensor-core GEMM with f16 inputs, f32 accumulation and f32 or f16 output.
pub fn gemm_f16<O: GemmOut>(
    dev: &CudaDevice,
    args: &GemmArgs,
    a: &CudaView<'_, half::f16>,
    b: &CudaView<'_, half::f16>,
    c: &mut CudaViewMut<'_, O>,
    bias: Option<Bias<'_, '_, O>>,
) -> Result<()> {
    gemm_tc(dev, args, a, b, c, bias, TcKernel::Auto)
}

/// Tensor-core GEMM with bf16 inputs, f32 accumulation and f32 or bf16 output.
pub fn gemm_bf16<O: GemmOut>(
    dev: &CudaDevice,
    args: &GemmArgs,
    a: &CudaView<'_, half::bf16>,
    b: &CudaView<'_, half::bf16>,
    c: &mut CudaViewMut<'_, O>,
    bias: Option<Bias<'_, '_, O>>,
) -> Result<()> {
    gemm_tc(dev, args, a, b, c, bias, TcKernel::Auto)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_k_only_for_few_tiles_and_a_long_k() {
        let splits = |g: GemmArgs| split_k(&g, 8, 128).map(|ks| (ks, g.k.div_ceil(ks)));
        // the seed CNN's dense layer, forward (batch 128): 12 blocks of 136
        assert_eq!(splits(GemmArgs::new(128, 128, 1600)), Some((136, 12)));
        // its backward passes (k = the batch) and its second layer: whole
        assert_eq!(splits(GemmArgs::new(1600, 128, 128).transpose(true, false)), None);
        assert_eq!(splits(GemmArgs::new(128, 1600, 128).transpose(false, true)), None);
        assert_eq!(splits(GemmArgs::new(128, 10, 128)), None);
        // gpu_bench's 1024 (64 tiles): two splits; 2048 and up, and batched GEMMs: whole
        assert_eq!(splits(GemmArgs::new(1024, 1024, 1024)), Some((512, 2)));
        assert_eq!(splits(GemmArgs::new(2048, 2048, 2048)), None);
        assert_eq!(splits(GemmArgs::new(128, 128, 1600).batched(2)), None);
        // a long k on one tile: 128 blocks
        assert_eq!(splits(GemmArgs::new(64, 64, 1 << 20)), Some((8192, 128)));
        // the pipelined tensor-core kernels: 32-deep k-tiles, 256 of k at least
        assert_eq!(split_k(&GemmArgs::new(128, 128, 1600), 32, 256), Some(288));
        assert_eq!(split_k(&GemmArgs::new(128, 128, 500), 32, 256), None);
        for (m, n, k) in [(130, 70, 1100), (1, 1, 257), (500, 500, 100_000), (33, 2000, 4097)] {
            if let Some((ks, s)) = splits(GemmArgs::new(m, n, k)) {
                assert!(ks % 8 == 0 && s >= 2 && ks < k, "{m} {n} {k}");
                assert!(m.div_ceil(128) * n.div_ceil(128) * s <= SPLIT_K_TARGET_BLOCKS, "{m} {n} {k}");
            }
        }
    }

    #[test]
    fn params_layout() {
        assert_eq!(std::mem::size_of::<GemmParams>(), 96);
    }

    #[test]
    fn validation() {
        let g = GemmArgs::new(3, 4, 5);
        assert!(g.validate(15, 20, 12, Some(4)).is_ok());
        assert!(g.validate(14, 20, 12, None).is_err());
        assert!(g.validate(15, 20, 12, Some(3)).is_err());
        let t = GemmArgs::new(3, 4, 5).transpose(true, true).batched(2);
        assert_eq!((t.lda, t.ldb), (3, 5));
        assert!(t.validate(30, 40, 24, None).is_ok());
        assert!(t.validate(30, 40, 23, None).is_err());
    }

    /// M tiles run along grid x, so a GEMM over more than 65535 * 128 rows (a Dense layer on
    /// 10M rows) launches; only N is bounded by grid y.
    #[test]
    fn tall_gemms_fit_the_grid() {
        let g = GemmArgs::new(10_000_000, 64, 8);
        assert_eq!(g.cfg().grid_dim, (78_125, 1, 1));
        assert!(g.validate(80_000_000, 512, 640_000_000, None).is_ok());
        let wide = GemmArgs::new(8, 65_535 * 128 + 1, 1);
        let err = wide.validate(8, wide.n, 8 * wide.n, None).unwrap_err().to_string();
        assert!(err.contains("too large"), "{err}");
    }
}
