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
use crate::sources::programs;

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
        if self.m.div_ceil(128) > 65535 {
            return Err(Error::arg("gemm", format!("m = {} too large (max {})", self.m, 65535 * 128)));
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
            _pad: 0,
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
        LaunchConfig {
            grid_dim: (self.n.div_ceil(128) as u32, self.m.div_ceil(128) as u32, self.batch.min(65535) as u32),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        }
    }
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
    _pad: i32,
}
// SAFETY: #[repr(C)] plain data with the layout of the CUDA struct.
unsafe impl DeviceRepr for GemmParams {}

fn launch_gemm<T: DType>(
    dev: &CudaDevice,
    program: &crate::Program,
    kernel: String,
    args: &GemmArgs,
    a: &CudaView<'_, T>,
    b: &CudaView<'_, T>,
    c: &mut CudaViewMut<'_, f32>,
    bias: Option<&CudaView<'_, f32>>,
) -> Result<()> {
    args.validate(a.len(), b.len(), c.len(), bias.map(|x| x.len()))?;
    if args.m == 0 || args.n == 0 || args.batch == 0 {
        return Ok(());
    }
    let p = args.params()?;
    let cfg = args.cfg();
    match bias {
        Some(bias) => launch!(dev, program, kernel, cfg, [a, b, c, bias, &p]),
        None => {
            let null = 0u64; // the kernels test `bias` for null
            launch!(dev, program, kernel, cfg, [a, b, c, &null, &p])
        }
    }
}

/// SIMT f32 GEMM (exact f32 FMA accumulation). Uses 16-byte loads when lda/ldb/strides
/// are multiples of 4 and A/B are 16-byte aligned.
pub fn gemm_f32(
    dev: &CudaDevice,
    args: &GemmArgs,
    a: &CudaView<'_, f32>,
    b: &CudaView<'_, f32>,
    c: &mut CudaViewMut<'_, f32>,
    bias: Option<&CudaView<'_, f32>>,
) -> Result<()> {
    let vec = args.lda % 4 == 0
        && args.ldb % 4 == 0
        && args.stride_a % 4 == 0
        && args.stride_b % 4 == 0
        && (a.is_empty() || dev.addr(a) % 16 == 0)
        && (b.is_empty() || dev.addr(b) % 16 == 0);
    let kernel = format!("gemm_f32_{}{}", args.form(), if vec { "_vec4" } else { "" });
    launch_gemm(dev, programs::gemm(), kernel, args, a, b, c, bias)
}

/// `"_vec"` (16-byte tile loads) when the leading dims and batch strides of A and B are
/// multiples of 16 bytes' worth of elements and both bases are 16-byte aligned, unless
/// `KEEL_GEMM_TC_VEC=0` (a tuning switch, to compare both loaders on a GPU).
fn tc_vec_suffix<T>(dev: &CudaDevice, args: &GemmArgs, a: &CudaView<'_, T>, b: &CudaView<'_, T>) -> &'static str {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let enabled = *ENABLED.get_or_init(|| std::env::var("KEEL_GEMM_TC_VEC").map_or(true, |v| v != "0"));
    let v = 16 / std::mem::size_of::<T>();
    let vec = enabled
        && [args.lda, args.ldb, args.stride_a, args.stride_b].iter().all(|&x| x % v == 0)
        && (a.is_empty() || dev.addr(a) % 16 == 0)
        && (b.is_empty() || dev.addr(b) % 16 == 0);
    if vec {
        "_vec"
    } else {
        ""
    }
}

/// Tensor-core GEMM with f32 inputs rounded to TF32 (10-bit mantissa), f32 accumulation.
pub fn gemm_tf32(
    dev: &CudaDevice,
    args: &GemmArgs,
    a: &CudaView<'_, f32>,
    b: &CudaView<'_, f32>,
    c: &mut CudaViewMut<'_, f32>,
    bias: Option<&CudaView<'_, f32>>,
) -> Result<()> {
    let kernel = format!("gemm_tc_tf32_{}{}", args.form(), tc_vec_suffix(dev, args, a, b));
    launch_gemm(dev, programs::gemm_tc(), kernel, args, a, b, c, bias)
}

/// Tensor-core GEMM with f16 inputs, f32 accumulation and f32 output.
pub fn gemm_f16(
    dev: &CudaDevice,
    args: &GemmArgs,
    a: &CudaView<'_, half::f16>,
    b: &CudaView<'_, half::f16>,
    c: &mut CudaViewMut<'_, f32>,
    bias: Option<&CudaView<'_, f32>>,
) -> Result<()> {
    let kernel = format!("gemm_tc_f16_{}{}", args.form(), tc_vec_suffix(dev, args, a, b));
    launch_gemm(dev, programs::gemm_tc(), kernel, args, a, b, c, bias)
}

/// Tensor-core GEMM with bf16 inputs, f32 accumulation and f32 output.
pub fn gemm_bf16(
    dev: &CudaDevice,
    args: &GemmArgs,
    a: &CudaView<'_, half::bf16>,
    b: &CudaView<'_, half::bf16>,
    c: &mut CudaViewMut<'_, f32>,
    bias: Option<&CudaView<'_, f32>>,
) -> Result<()> {
    let kernel = format!("gemm_tc_bf16_{}{}", args.form(), tc_vec_suffix(dev, args, a, b));
    launch_gemm(dev, programs::gemm_tc(), kernel, args, a, b, c, bias)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
