//! NHWC depthwise 2-D convolution (`kernels/depthwise.cu`): forward, grad-input (gather)
//! and grad-kernel (one block per tap and 32 output channels, a fixed in-block reduction),
//! all deterministic, on F32, F16 or BF16 storage computed in f32 and rounded once on the
//! store, or on F64 storage computed in f64 (see [`FloatStorage`]).

use cudarc::driver::{CudaView, CudaViewMut, DeviceRepr, LaunchConfig};

use crate::device::{check_len, CudaDevice, FloatStorage};
use crate::error::{Error, Result};
use crate::sources::programs;

/// Depthwise convolution geometry: input `[n, h, w, c]`, kernel `[kh, kw, c, m]`, output
/// `[n, oh, ow, c * m]`. Tap `(ki, kj)` of output `(oy, ox)` reads input row
/// `oy * sh - pt + ki * dh` and column `ox * sw - pl + kj * dw`; positions outside the
/// input are skipped (padding).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthwiseConv2d {
    /// Batch.
    pub n: i64,
    /// Input height.
    pub h: i64,
    /// Input width.
    pub w: i64,
    /// Input channels.
    pub c: i64,
    /// Depth multiplier (output channels per input channel).
    pub m: i64,
    /// Output height.
    pub oh: i64,
    /// Output width.
    pub ow: i64,
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

// SAFETY: #[repr(C)] plain data matching `struct DepthwiseConv2d` in depthwise.cu.
unsafe impl DeviceRepr for DepthwiseConv2d {}

/// Output channels per block of the kernel gradient (`KEEL_DW_LANES`).
const LANES: usize = 32;
/// Threads per block of the kernel gradient (`KEEL_DW_LANES * KEEL_DW_ROWS`).
const GRAD_KERNEL_THREADS: u32 = 256;

impl DepthwiseConv2d {
    fn dims(&self) -> Result<[usize; 7]> {
        let d = [self.n, self.h, self.w, self.c, self.m, self.oh, self.ow];
        let ok = [self.kh, self.kw, self.sh, self.sw, self.dh, self.dw].iter().all(|&v| v > 0)
            && self.pt >= 0
            && self.pl >= 0;
        let mut out = [0usize; 7];
        for (o, &v) in out.iter_mut().zip(&d) {
            *o = usize::try_from(v).ok().filter(|_| ok).ok_or_else(|| Self::invalid(self))?;
        }
        Ok(out)
    }
    fn invalid(&self) -> Error {
        Error::arg("depthwise_conv2d", format!("invalid geometry {self:?}"))
    }
    fn len(&self, dims: &[usize]) -> Result<usize> {
        dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| self.invalid())
    }
    /// Element counts of the input, kernel and output.
    fn lens(&self) -> Result<(usize, usize, usize)> {
        let [n, h, w, c, m, oh, ow] = self.dims()?;
        let (kh, kw) = (self.kh as usize, self.kw as usize);
        Ok((self.len(&[n, h, w, c])?, self.len(&[kh, kw, c, m])?, self.len(&[n, oh, ow, c, m])?))
    }
}

/// Forward: `y` `[n, oh, ow, c * m]` (fully written) from `x` and the kernel `k`.
pub fn depthwise_conv2d<T: FloatStorage>(
    dev: &CudaDevice,
    p: &DepthwiseConv2d,
    x: &CudaView<'_, T>,
    k: &CudaView<'_, T>,
    y: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    const OP: &str = "depthwise_conv2d";
    let (xl, kl, yl) = p.lens()?;
    check_len(OP, "x", x.len(), xl)?;
    check_len(OP, "k", k.len(), kl)?;
    check_len(OP, "y", y.len(), yl)?;
    if yl == 0 {
        return Ok(());
    }
    launch!(dev, programs::depthwise(), &format!("depthwise_conv2d_fwd_{}", T::KERNEL), dev.cfg_1d(yl), [x, k, y, p])
}

/// Gradient wrt the input: `gx` `[n, h, w, c]` (fully written; zeros where no tap reaches)
/// from the output gradient `gy` and the kernel `k`.
pub fn depthwise_conv2d_backward_input<T: FloatStorage>(
    dev: &CudaDevice,
    p: &DepthwiseConv2d,
    gy: &CudaView<'_, T>,
    k: &CudaView<'_, T>,
    gx: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    const OP: &str = "depthwise_conv2d_backward_input";
    let (xl, kl, yl) = p.lens()?;
    check_len(OP, "gy", gy.len(), yl)?;
    check_len(OP, "k", k.len(), kl)?;
    check_len(OP, "gx", gx.len(), xl)?;
    if xl == 0 {
        return Ok(());
    }
    let name = format!("depthwise_conv2d_bwd_input_{}", T::KERNEL);
    launch!(dev, programs::depthwise(), &name, dev.cfg_1d(xl), [gy, k, gx, p])
}

/// Gradient wrt the kernel: `gk` `[kh, kw, c, m]` (fully written; zeros when there are no
/// output pixels) from the input `x` and the output gradient `gy`.
pub fn depthwise_conv2d_backward_kernel<T: FloatStorage>(
    dev: &CudaDevice,
    p: &DepthwiseConv2d,
    x: &CudaView<'_, T>,
    gy: &CudaView<'_, T>,
    gk: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    const OP: &str = "depthwise_conv2d_backward_kernel";
    let (xl, kl, yl) = p.lens()?;
    check_len(OP, "x", x.len(), xl)?;
    check_len(OP, "gy", gy.len(), yl)?;
    check_len(OP, "gk", gk.len(), kl)?;
    if kl == 0 {
        return Ok(());
    }
    let [_, _, _, c, m, _, _] = p.dims()?;
    let tiles = (c * m).div_ceil(LANES);
    let blocks = (p.kh as usize * p.kw as usize).saturating_mul(tiles);
    // grid-strided over the blocks; a fixed grid cap keeps every block's work the same on any GPU
    let grid = u32::try_from(blocks.min(1 << 16)).map_err(|_| p.invalid())?;
    let cfg = LaunchConfig { grid_dim: (grid, 1, 1), block_dim: (GRAD_KERNEL_THREADS, 1, 1), shared_mem_bytes: 0 };
    let name = format!("depthwise_conv2d_bwd_kernel_{}", T::KERNEL);
    launch!(dev, programs::depthwise(), &name, cfg, [x, gy, gk, p])
}
