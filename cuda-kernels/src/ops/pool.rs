//! NHWC 2-D pooling (`kernels/pool.cu`) on F32, F16 or BF16 storage, computed in f32 and
//! rounded once on the store, or on F64 storage, computed in f64 (see [`FloatStorage`]).

use cudarc::driver::{CudaView, CudaViewMut, DeviceRepr};

use crate::device::{check_len, CudaDevice, FloatStorage};
use crate::error::{Error, Result};
use crate::sources::programs;

/// Pooling geometry. Window `(oh, ow)` covers input rows `oh * sh - pt ..+ kh` and columns
/// `ow * sw - pl ..+ kw`; positions outside the input are skipped (padding).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2d {
    /// Batch.
    pub n: i64,
    /// Input height.
    pub h: i64,
    /// Input width.
    pub w: i64,
    /// Channels.
    pub c: i64,
    /// Output height.
    pub oh: i64,
    /// Output width.
    pub ow: i64,
    /// Window height.
    pub kh: i32,
    /// Window width.
    pub kw: i32,
    /// Stride along height.
    pub sh: i32,
    /// Stride along width.
    pub sw: i32,
    /// Top padding.
    pub pt: i32,
    /// Left padding.
    pub pl: i32,
}

// SAFETY: #[repr(C)] plain data matching `struct Pool2d` in pool.cu.
unsafe impl DeviceRepr for Pool2d {}

impl Pool2d {
    /// Geometry with Keras 'valid' (`same = false`) or 'same' padding.
    pub fn new(
        n: usize,
        h: usize,
        w: usize,
        c: usize,
        k: (usize, usize),
        s: (usize, usize),
        same: bool,
    ) -> Result<Self> {
        if k.0 == 0 || k.1 == 0 || s.0 == 0 || s.1 == 0 {
            return Err(Error::arg("pool2d", "window and stride must be positive"));
        }
        let (oh, ow, pt, pl) = if same {
            let oh = h.div_ceil(s.0);
            let ow = w.div_ceil(s.1);
            let ph = (oh.saturating_sub(1) * s.0 + k.0).saturating_sub(h);
            let pw = (ow.saturating_sub(1) * s.1 + k.1).saturating_sub(w);
            (oh, ow, ph / 2, pw / 2)
        } else {
            if h < k.0 || w < k.1 {
                return Err(Error::arg("pool2d", format!("window {k:?} larger than input {h}x{w}")));
            }
            ((h - k.0) / s.0 + 1, (w - k.1) / s.1 + 1, 0, 0)
        };
        let i = |v: usize| v as i64;
        let i32c = |v: usize| i32::try_from(v).map_err(|_| Error::arg("pool2d", "window/stride too large"));
        Ok(Self {
            n: i(n),
            h: i(h),
            w: i(w),
            c: i(c),
            oh: i(oh),
            ow: i(ow),
            kh: i32c(k.0)?,
            kw: i32c(k.1)?,
            sh: i32c(s.0)?,
            sw: i32c(s.1)?,
            pt: i32c(pt)?,
            pl: i32c(pl)?,
        })
    }
    fn in_len(&self) -> usize {
        (self.n * self.h * self.w * self.c) as usize
    }
    fn out_len(&self) -> usize {
        (self.n * self.oh * self.ow * self.c) as usize
    }
    fn validate(&self) -> Result<()> {
        let dims = [self.n, self.h, self.w, self.c, self.oh, self.ow];
        if dims.iter().any(|&d| d < 0)
            || [self.kh, self.kw, self.sh, self.sw].iter().any(|&d| d <= 0)
            || self.pt < 0
            || self.pl < 0
        {
            return Err(Error::arg("pool2d", format!("invalid geometry {self:?}")));
        }
        Ok(())
    }
}

/// Max pooling: `y` and the flat NHWC input index of each maximum (`idx`).
pub fn max_pool2d<T: FloatStorage>(
    dev: &CudaDevice,
    p: &Pool2d,
    x: &CudaView<'_, T>,
    y: &mut CudaViewMut<'_, T>,
    idx: &mut CudaViewMut<'_, i64>,
) -> Result<()> {
    p.validate()?;
    check_len("max_pool2d", "x", x.len(), p.in_len())?;
    check_len("max_pool2d", "y", y.len(), p.out_len())?;
    check_len("max_pool2d", "idx", idx.len(), p.out_len())?;
    if y.is_empty() {
        return Ok(());
    }
    launch!(dev, programs::pool(), &format!("max_pool2d_fwd_{}", T::KERNEL), dev.cfg_1d(p.out_len()), [x, y, idx, p])
}

/// Backward of max pooling: `gx` (fully written) from `gy` and the saved indices.
pub fn max_pool2d_backward<T: FloatStorage>(
    dev: &CudaDevice,
    p: &Pool2d,
    gy: &CudaView<'_, T>,
    idx: &CudaView<'_, i64>,
    gx: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    p.validate()?;
    check_len("max_pool2d_backward", "gy", gy.len(), p.out_len())?;
    check_len("max_pool2d_backward", "idx", idx.len(), p.out_len())?;
    check_len("max_pool2d_backward", "gx", gx.len(), p.in_len())?;
    if gx.is_empty() {
        return Ok(());
    }
    launch!(dev, programs::pool(), &format!("max_pool2d_bwd_{}", T::KERNEL), dev.cfg_1d(p.in_len()), [gy, idx, gx, p])
}

/// Average pooling; padding is excluded from the count unless `include_pad`.
pub fn avg_pool2d<T: FloatStorage>(
    dev: &CudaDevice,
    p: &Pool2d,
    x: &CudaView<'_, T>,
    y: &mut CudaViewMut<'_, T>,
    include_pad: bool,
) -> Result<()> {
    p.validate()?;
    check_len("avg_pool2d", "x", x.len(), p.in_len())?;
    check_len("avg_pool2d", "y", y.len(), p.out_len())?;
    if y.is_empty() {
        return Ok(());
    }
    let inc = i32::from(include_pad);
    launch!(dev, programs::pool(), &format!("avg_pool2d_fwd_{}", T::KERNEL), dev.cfg_1d(p.out_len()), [x, y, p, &inc])
}

/// Backward of average pooling (deterministic gather form).
pub fn avg_pool2d_backward<T: FloatStorage>(
    dev: &CudaDevice,
    p: &Pool2d,
    gy: &CudaView<'_, T>,
    gx: &mut CudaViewMut<'_, T>,
    include_pad: bool,
) -> Result<()> {
    p.validate()?;
    check_len("avg_pool2d_backward", "gy", gy.len(), p.out_len())?;
    check_len("avg_pool2d_backward", "gx", gx.len(), p.in_len())?;
    if gx.is_empty() {
        return Ok(());
    }
    let inc = i32::from(include_pad);
    launch!(dev, programs::pool(), &format!("avg_pool2d_bwd_{}", T::KERNEL), dev.cfg_1d(p.in_len()), [gy, gx, p, &inc])
}
