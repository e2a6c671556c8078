//! NHWC projective (affine) image transforms (`kernels/image.cu`): the forward resampling
//! and its image gradient, TensorFlow's `ImageProjectiveTransformV3` convention (keel-tensor's
//! `ops::image` documents it). F32/F16/BF16 images compute in f32 (transforms F32), F64
//! images in f64 (transforms F64, stored as their bits in `i64` buffers, like the images).

use cudarc::driver::{CudaView, CudaViewMut, DeviceRepr};

use crate::device::{check_len, CudaDevice, DType, FloatStorage};
use crate::error::{Error, Result};
use crate::sources::programs;

/// The geometry and sampling rules of one transform of `[n, h, w, c]` images.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// Batch.
    pub n: i64,
    /// Image height.
    pub h: i64,
    /// Image width.
    pub w: i64,
    /// Channels.
    pub c: i64,
    /// Rows of the transforms: 1 (shared by every image) or `n`.
    pub rows: i64,
    /// 0 nearest, 1 bilinear.
    pub interp: i32,
    /// 0 reflect, 1 wrap, 2 constant, 3 nearest.
    pub mode: i32,
    /// The value read outside the image (rounded to the image dtype by the caller).
    pub fill: f64,
}

// SAFETY: #[repr(C)] plain data matching `struct Affine` in image.cu.
unsafe impl DeviceRepr for Affine {}

impl Affine {
    fn len(&self) -> usize {
        (self.n * self.h * self.w * self.c) as usize
    }
    fn validate(&self, op: &'static str) -> Result<()> {
        if [self.n, self.h, self.w, self.c].iter().any(|&d| d < 0)
            || !(self.rows == 1 || self.rows == self.n)
            || !(0..=1).contains(&self.interp)
            || !(0..=3).contains(&self.mode)
        {
            return Err(Error::arg(op, format!("invalid geometry {self:?}")));
        }
        Ok(())
    }
}

/// Image storage types with the element type of their transforms and gradient accumulator:
/// `f32` for F32/F16/BF16 images, `i64` (f64 bits) for F64 images.
pub trait AffineFloat: FloatStorage {
    /// The compute type's storage.
    type Acc: DType;
}
impl AffineFloat for f32 {
    type Acc = f32;
}
impl AffineFloat for half::f16 {
    type Acc = f32;
}
impl AffineFloat for half::bf16 {
    type Acc = f32;
}
impl AffineFloat for i64 {
    type Acc = i64;
}

/// `y` = the images `x` resampled through `tr` (`[rows, 8]`), one thread per output element.
pub fn affine_transform<T: AffineFloat>(
    dev: &CudaDevice,
    p: &Affine,
    x: &CudaView<'_, T>,
    tr: &CudaView<'_, T::Acc>,
    y: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    const OP: &str = "affine_transform";
    p.validate(OP)?;
    check_len(OP, "x", x.len(), p.len())?;
    check_len(OP, "transforms", tr.len(), (p.rows * 8) as usize)?;
    check_len(OP, "y", y.len(), p.len())?;
    if y.is_empty() {
        return Ok(());
    }
    launch!(dev, programs::image(), &format!("affine_fwd_{}", T::KERNEL), dev.cfg_1d(p.len()), [x, tr, y, p])
}

/// Adds the image gradient of [`affine_transform`] from `gy` into `gx`, which the caller
/// zeroes first (in the compute type: F32 for F32/F16/BF16 images, F64 bits for F64). The
/// kernel uses `atomicAdd`, so the order of the additions, and the last bits, may vary.
pub fn affine_transform_backward<T: AffineFloat>(
    dev: &CudaDevice,
    p: &Affine,
    gy: &CudaView<'_, T>,
    tr: &CudaView<'_, T::Acc>,
    gx: &mut CudaViewMut<'_, T::Acc>,
) -> Result<()> {
    const OP: &str = "affine_transform_backward";
    p.validate(OP)?;
    check_len(OP, "gy", gy.len(), p.len())?;
    check_len(OP, "transforms", tr.len(), (p.rows * 8) as usize)?;
    check_len(OP, "gx", gx.len(), p.len())?;
    if gy.is_empty() {
        return Ok(());
    }
    launch!(dev, programs::image(), &format!("affine_bwd_{}", T::KERNEL), dev.cfg_1d(p.len()), [gy, tr, gx, p])
}
