//! Projective (affine) image transforms on NHWC data, forward and the image gradient.
//!
//! The convention is TensorFlow's `ImageProjectiveTransformV3`, which Keras 3's
//! `keras.ops.image.affine_transform` calls on its TensorFlow backend (and which its
//! `RandomRotation`, `RandomZoom` and `RandomTranslation` layers use): a transform row
//! `[a0, a1, a2, b0, b1, b2, c0, c1]` maps an *output* pixel `(x, y)` (column, row) to the
//! *input* point `((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)`, `k = c0 x + c1 y + 1`
//! (`k == 0` gives the fill value). An input coordinate outside `[0, len - 1]` is first
//! mapped by the [`FillMode`] (TensorFlow's `MapCoordinate`, see
//! `tensorflow/core/kernels/image/image_ops.h`), then sampled: `nearest` rounds half away
//! from zero, `bilinear` mixes the four neighbours with TensorFlow's formula; a neighbour
//! outside the image reads the fill value (so `constant` mode mixes it in at the border,
//! and the other modes, whose mapped coordinate is clamped to the image, give it weight 0).
//! F32/F16/BF16 compute in f32 (half types round once on the store), F64 in f64.
//!
//! The gradient with respect to the image ([`Tensor::affine_transform_grad`]) is the exact
//! transpose: each output gradient is added to the input pixels its sample read, with the
//! interpolation weights; fill-value reads contribute nothing. On the CPU it is
//! deterministic (images in parallel, each image's sums in output order); on CUDA it adds
//! with `atomicAdd`, so its F32/F64 bits may vary from run to run in the last place.

use crate::storage::{dispatch2, BackendStorage};
use crate::{CpuStorage, DType, Error, Result, Shape, Tensor};

/// How a sample between pixels is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageInterpolation {
    /// The nearest pixel (coordinates rounded half away from zero).
    Nearest,
    /// The four neighbours, weighted by their distances.
    Bilinear,
}

impl ImageInterpolation {
    /// From Keras's name (`"nearest"`, `"bilinear"`).
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "nearest" => Ok(ImageInterpolation::Nearest),
            "bilinear" => Ok(ImageInterpolation::Bilinear),
            other => Err(Error::invalid(
                "affine_transform",
                format!("interpolation must be \"nearest\" or \"bilinear\", got \"{other}\""),
            )),
        }
    }

    /// Keras's name.
    pub fn name(self) -> &'static str {
        match self {
            ImageInterpolation::Nearest => "nearest",
            ImageInterpolation::Bilinear => "bilinear",
        }
    }

    /// The code the CUDA kernels take.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn code(self) -> i32 {
        match self {
            ImageInterpolation::Nearest => 0,
            ImageInterpolation::Bilinear => 1,
        }
    }
}

/// How an input coordinate outside the image is mapped back into it (TensorFlow's rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FillMode {
    /// `dcba|abcd|dcba`: reflected about the edge of the last pixel (Keras's default).
    Reflect,
    /// `abcd|abcd|abcd`: wrapped around (TensorFlow's arithmetic, with its quirks at the seam).
    Wrap,
    /// Points outside the image read the fill value.
    Constant,
    /// `aaaa|abcd|dddd`: clamped to the edge pixel.
    Nearest,
}

impl FillMode {
    /// From Keras's name (`"reflect"`, `"wrap"`, `"constant"`, `"nearest"`).
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "reflect" => Ok(FillMode::Reflect),
            "wrap" => Ok(FillMode::Wrap),
            "constant" => Ok(FillMode::Constant),
            "nearest" => Ok(FillMode::Nearest),
            other => Err(Error::invalid(
                "affine_transform",
                format!("fill_mode must be \"reflect\", \"wrap\", \"constant\" or \"nearest\", got \"{other}\""),
            )),
        }
    }

    /// Keras's name.
    pub fn name(self) -> &'static str {
        match self {
            FillMode::Reflect => "reflect",
            FillMode::Wrap => "wrap",
            FillMode::Constant => "constant",
            FillMode::Nearest => "nearest",
        }
    }

    /// The code the CUDA kernels take.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn code(self) -> i32 {
        match self {
            FillMode::Reflect => 0,
            FillMode::Wrap => 1,
            FillMode::Constant => 2,
            FillMode::Nearest => 3,
        }
    }
}

/// The geometry and sampling rules of one affine transform of `[n, h, w, c]` images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AffineParams {
    /// Batch size.
    pub n: usize,
    /// Image height.
    pub h: usize,
    /// Image width.
    pub w: usize,
    /// Channels.
    pub c: usize,
    /// Rows of the transforms: 1 (shared by every image) or `n`.
    pub rows: usize,
    /// How samples are read.
    pub interpolation: ImageInterpolation,
    /// How out-of-image coordinates are mapped.
    pub fill_mode: FillMode,
    /// The value read outside the image (already rounded to the image dtype).
    pub fill_value: f64,
}

impl AffineParams {
    /// Check an image shape `[n, h, w, c]` against a transforms shape `[n, 8]`, `[1, 8]` or `[8]`.
    pub fn new(
        op: &'static str,
        image: &Shape,
        transforms: &Shape,
        interpolation: ImageInterpolation,
        fill_mode: FillMode,
        fill_value: f64,
    ) -> Result<Self> {
        let x = image.dims();
        if x.len() != 4 {
            return Err(Error::InvalidShape { op, shape: image.clone(), msg: "need NHWC images (rank 4)".into() });
        }
        let rows = match transforms.dims() {
            [8] => 1,
            [r, 8] if *r == 1 || *r == x[0] => *r,
            _ => {
                return Err(Error::InvalidShape {
                    op,
                    shape: transforms.clone(),
                    msg: format!("transforms must be [{}, 8], [1, 8] or [8]", x[0]),
                })
            }
        };
        Ok(AffineParams { n: x[0], h: x[1], w: x[2], c: x[3], rows, interpolation, fill_mode, fill_value })
    }

    /// The image shape `[n, h, w, c]` (input and output).
    pub fn shape(&self) -> Shape {
        Shape::from([self.n, self.h, self.w, self.c])
    }

    /// The number of image elements.
    pub fn len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }

    /// True when the images hold no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Tensor {
    /// Resample NHWC images `[n, h, w, c]` through projective transforms `[n, 8]` (or `[1, 8]`
    /// / `[8]`, shared), TensorFlow/Keras's convention (see [the module](self)): output pixel
    /// `(x, y)` reads input point `((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)`,
    /// `k = c0 x + c1 y + 1`. The output has the input's shape and dtype (a float dtype).
    pub fn affine_transform(
        &self,
        transforms: &Tensor,
        interpolation: ImageInterpolation,
        fill_mode: FillMode,
        fill_value: f64,
    ) -> Result<Tensor> {
        const OP: &str = "affine_transform";
        float_only(OP, self)?;
        let fill = round_to(fill_value, self.dtype());
        let p = AffineParams::new(OP, self.shape(), transforms.shape(), interpolation, fill_mode, fill)?;
        let t = transforms_for(OP, transforms, self.dtype())?;
        let x = self.contiguous()?;
        let (sx, st) = (x.storage(), t.storage());
        let out = dispatch2!(OP, &*sx, &*st, |a, b| a.affine_transform(x.layout(), b, t.layout(), &p))?;
        Ok(Tensor::from_storage(out, p.shape()))
    }

    /// The gradient of [`Tensor::affine_transform`] with respect to its images: `self` is the
    /// output gradient `[n, h, w, c]`, `transforms` and `p` those of the forward pass (the
    /// transpose of the sampling; no gradient reaches the transforms).
    pub fn affine_transform_grad(&self, transforms: &Tensor, p: &AffineParams) -> Result<Tensor> {
        const OP: &str = "affine_transform_grad";
        float_only(OP, self)?;
        crate::ops::conv::check_shape(OP, self, &p.shape())?;
        let q = AffineParams::new(OP, self.shape(), transforms.shape(), p.interpolation, p.fill_mode, p.fill_value)?;
        let t = transforms_for(OP, transforms, self.dtype())?;
        let dy = self.contiguous()?;
        let (sd, st) = (dy.storage(), t.storage());
        let out = dispatch2!(OP, &*sd, &*st, |a, b| a.affine_transform_grad(dy.layout(), b, t.layout(), &q))?;
        Ok(Tensor::from_storage(out, q.shape()))
    }
}

/// `v` rounded to `dtype` (the fill value as the image type holds it, as TensorFlow's `T`).
fn round_to(v: f64, dtype: DType) -> f64 {
    match dtype {
        DType::F64 => v,
        _ => CpuStorage::from_f64_iter(std::iter::once(v), dtype).get_f64(0).unwrap_or(v),
    }
}

/// The transforms as the kernels read them: contiguous, F64 for F64 images, else F32.
fn transforms_for(op: &'static str, t: &Tensor, image: DType) -> Result<Tensor> {
    if !t.dtype().is_float() {
        return Err(Error::UnsupportedDType { op, dtype: t.dtype(), hint: "transforms must be a float dtype" });
    }
    let want = if image == DType::F64 { DType::F64 } else { DType::F32 };
    t.to_dtype(want)?.contiguous()
}

fn float_only(op: &'static str, t: &Tensor) -> Result<()> {
    if !t.dtype().is_float() {
        return Err(Error::UnsupportedDType { op, dtype: t.dtype(), hint: "cast to a float dtype first" });
    }
    Ok(())
}

#[cfg(feature = "cpu")]
pub(crate) mod cpu {
    use super::{AffineParams, FillMode, ImageInterpolation};
    use crate::{CpuStorage, Error, Layout, Result};
    use rayon::prelude::*;
    use std::ops::{Add, Div, Mul, Neg, Sub};

    /// The compute type: f32 (F32, F16, BF16 images) or f64 (F64 images).
    pub(crate) trait Real:
        Copy
        + Send
        + Sync
        + Default
        + PartialOrd
        + Add<Output = Self>
        + Sub<Output = Self>
        + Mul<Output = Self>
        + Div<Output = Self>
        + Neg<Output = Self>
    {
        fn of_f64(v: f64) -> Self;
        fn of_i64(v: i64) -> Self;
        fn floor(self) -> Self;
        fn round(self) -> Self;
        /// Truncated toward zero, saturating (C's `static_cast<int64>` on sane values).
        fn trunc_i64(self) -> i64;
    }

    macro_rules! real {
        ($t:ty) => {
            impl Real for $t {
                fn of_f64(v: f64) -> Self {
                    v as $t
                }
                fn of_i64(v: i64) -> Self {
                    v as $t
                }
                fn floor(self) -> Self {
                    <$t>::floor(self)
                }
                fn round(self) -> Self {
                    <$t>::round(self)
                }
                fn trunc_i64(self) -> i64 {
                    self as i64
                }
            }
        };
    }
    real!(f32);
    real!(f64);

    fn clamp<A: Real>(v: A, len: i64) -> A {
        let hi = A::of_i64(len - 1);
        let lo = A::default();
        let v = if v < lo { lo } else { v };
        if v > hi {
            hi
        } else {
            v
        }
    }

    /// TensorFlow's `MapCoordinate` (image_ops.h) for one axis of length `len`.
    pub(crate) fn map_coord<A: Real>(c: A, len: i64, mode: FillMode) -> A {
        let lenf = A::of_i64(len);
        let one = A::of_i64(1);
        let zero = A::default();
        match mode {
            FillMode::Constant => c,
            FillMode::Nearest => clamp(c, len),
            FillMode::Reflect => {
                let mut v = c;
                if v < zero {
                    if len <= 1 {
                        v = zero;
                    } else {
                        let sz2 = 2 * len;
                        let sz2f = A::of_i64(sz2);
                        if v < sz2f {
                            v = A::of_i64(sz2.saturating_mul((-v / sz2f).trunc_i64())) + v;
                        }
                        v = if v < -lenf { v + sz2f } else { -v - one };
                    }
                } else if v > lenf - one {
                    if len <= 1 {
                        v = zero;
                    } else {
                        let sz2 = 2 * len;
                        let sz2f = A::of_i64(sz2);
                        v = v - A::of_i64(sz2.saturating_mul((v / sz2f).trunc_i64()));
                        if v >= lenf {
                            v = sz2f - v - one;
                        }
                    }
                }
                clamp(v, len)
            }
            FillMode::Wrap => {
                let mut v = c;
                if v < zero {
                    if len <= 1 {
                        v = zero;
                    } else {
                        let szf = A::of_i64(len - 1);
                        v = v + A::of_i64(len.saturating_mul((-v / szf).trunc_i64().saturating_add(1)));
                    }
                } else if v > lenf - one {
                    if len <= 1 {
                        v = zero;
                    } else {
                        let szf = A::of_i64(len - 1);
                        v = v - A::of_i64(len.saturating_mul((v / szf).trunc_i64()));
                    }
                }
                clamp(v, len)
            }
        }
    }

    /// Where output pixel `(ox, oy)` samples the input: the mapped `(x, y)`, or `None` when
    /// the projection is 0 (the whole pixel is the fill value).
    pub(crate) fn sample_point<A: Real>(m: &[A], ox: usize, oy: usize, p: &AffineParams) -> Option<(A, A)> {
        let (x, y) = (A::of_i64(ox as i64), A::of_i64(oy as i64));
        let k = m[6] * x + m[7] * y + A::of_i64(1);
        if k == A::default() {
            return None;
        }
        let ix = (m[0] * x + m[1] * y + m[2]) / k;
        let iy = (m[3] * x + m[4] * y + m[5]) / k;
        Some((map_coord(ix, p.w as i64, p.fill_mode), map_coord(iy, p.h as i64, p.fill_mode)))
    }

    /// The in-image pixel `(row, col)` at float coordinates already integral, if any.
    fn pixel<A: Real>(y: A, x: A, p: &AffineParams) -> Option<usize> {
        let (yi, xi) = (y.trunc_i64(), x.trunc_i64());
        if (0..p.h as i64).contains(&yi) && (0..p.w as i64).contains(&xi) {
            Some(yi as usize * p.w + xi as usize)
        } else {
            None
        }
    }

    /// The pixels a sample at `(x, y)` reads and their weights (in-image ones only; up to 4).
    pub(crate) fn taps<A: Real>(x: A, y: A, p: &AffineParams) -> ([(usize, A, A); 4], usize) {
        let one = A::of_i64(1);
        let mut out = [(0usize, A::default(), A::default()); 4];
        let mut n = 0;
        match p.interpolation {
            ImageInterpolation::Nearest => {
                if let Some(i) = pixel(y.round(), x.round(), p) {
                    out[0] = (i, one, one);
                    n = 1;
                }
            }
            ImageInterpolation::Bilinear => {
                let (yf, xf) = (y.floor(), x.floor());
                let (yc, xc) = (yf + one, xf + one);
                for (py, wy) in [(yf, yc - y), (yc, y - yf)] {
                    for (px, wx) in [(xf, xc - x), (xc, x - xf)] {
                        if let Some(i) = pixel(py, px, p) {
                            out[n] = (i, wy, wx);
                            n += 1;
                        }
                    }
                }
            }
        }
        (out, n)
    }

    /// The forward pass over one image type already in the compute type `A`.
    fn forward_typed<A: Real>(x: &[A], t: &[A], p: &AffineParams) -> Vec<A> {
        let (c, row) = (p.c, p.w * p.c);
        let fill = A::of_f64(p.fill_value);
        let one = A::of_i64(1);
        let mut out = vec![A::default(); p.len()];
        if out.is_empty() {
            return out;
        }
        out.par_chunks_mut(row).enumerate().for_each(|(r, orow)| {
            let (b, oy) = (r / p.h, r % p.h);
            let m = &t[if p.rows == 1 { 0 } else { b * 8 }..][..8];
            let img = &x[b * p.h * row..][..p.h * row];
            let read = |yv: A, xv: A, ch: usize| match pixel(yv, xv, p) {
                Some(i) => img[i * c + ch],
                None => fill,
            };
            for ox in 0..p.w {
                let cell = &mut orow[ox * c..(ox + 1) * c];
                let Some((sx, sy)) = sample_point(m, ox, oy, p) else {
                    cell.iter_mut().for_each(|v| *v = fill);
                    continue;
                };
                match p.interpolation {
                    ImageInterpolation::Nearest => {
                        let (ry, rx) = (sy.round(), sx.round());
                        for (ch, v) in cell.iter_mut().enumerate() {
                            *v = read(ry, rx, ch);
                        }
                    }
                    ImageInterpolation::Bilinear => {
                        // TensorFlow's bilinear_interpolation, in its order
                        let (yf, xf) = (sy.floor(), sx.floor());
                        let (yc, xc) = (yf + one, xf + one);
                        for (ch, v) in cell.iter_mut().enumerate() {
                            let top = (xc - sx) * read(yf, xf, ch) + (sx - xf) * read(yf, xc, ch);
                            let bottom = (xc - sx) * read(yc, xf, ch) + (sx - xf) * read(yc, xc, ch);
                            *v = (yc - sy) * top + (sy - yf) * bottom;
                        }
                    }
                }
            }
        });
        out
    }

    /// The image gradient over one type already in the compute type `A`: images in
    /// parallel, each image's contributions added in output order (deterministic).
    fn backward_typed<A: Real>(g: &[A], t: &[A], p: &AffineParams) -> Vec<A> {
        let (c, img) = (p.c, p.h * p.w * p.c);
        let mut dx = vec![A::default(); p.len()];
        if dx.is_empty() {
            return dx;
        }
        dx.par_chunks_mut(img).enumerate().for_each(|(b, dimg)| {
            let m = &t[if p.rows == 1 { 0 } else { b * 8 }..][..8];
            let gimg = &g[b * img..][..img];
            for oy in 0..p.h {
                for ox in 0..p.w {
                    let Some((sx, sy)) = sample_point(m, ox, oy, p) else { continue };
                    let (taps, n) = taps(sx, sy, p);
                    let go = &gimg[(oy * p.w + ox) * c..][..c];
                    for &(i, wy, wx) in &taps[..n] {
                        let d = &mut dimg[i * c..][..c];
                        for (dv, &gv) in d.iter_mut().zip(go) {
                            *dv = *dv + gv * wy * wx;
                        }
                    }
                }
            }
        });
        dx
    }

    /// The transforms as the compute type's values.
    fn transforms_f32(t: &CpuStorage, tl: &Layout) -> Result<Vec<f32>> {
        let c = t.copy_strided(tl)?;
        Ok((0..c.len()).filter_map(|i| c.get_f64(i)).map(|v| v as f32).collect())
    }

    fn transforms_f64(t: &CpuStorage, tl: &Layout) -> Result<Vec<f64>> {
        let c = t.copy_strided(tl)?;
        Ok((0..c.len()).filter_map(|i| c.get_f64(i)).collect())
    }

    /// Run `f` in the image's compute type: F32 and F64 read in place, half types widened.
    fn run(
        op: &'static str,
        s: &CpuStorage,
        l: &Layout,
        t: &CpuStorage,
        tl: &Layout,
        f32_fn: impl Fn(&[f32], &[f32]) -> Vec<f32>,
        f64_fn: impl Fn(&[f64], &[f64]) -> Vec<f64>,
    ) -> Result<CpuStorage> {
        match (s, l.contiguous_range()) {
            (CpuStorage::F32(v), Some((a, e))) => {
                return Ok(CpuStorage::F32(f32_fn(&v[a..e], &transforms_f32(t, tl)?)))
            }
            (CpuStorage::F64(v), Some((a, e))) => {
                return Ok(CpuStorage::F64(f64_fn(&v[a..e], &transforms_f64(t, tl)?)))
            }
            _ => {}
        }
        match s.copy_strided(l)? {
            CpuStorage::F32(v) => Ok(CpuStorage::F32(f32_fn(&v, &transforms_f32(t, tl)?))),
            CpuStorage::F64(v) => Ok(CpuStorage::F64(f64_fn(&v, &transforms_f64(t, tl)?))),
            other @ (CpuStorage::F16(_) | CpuStorage::BF16(_)) => {
                let wide: Vec<f32> = (0..other.len()).filter_map(|i| other.get_f64(i)).map(|v| v as f32).collect();
                let out = f32_fn(&wide, &transforms_f32(t, tl)?);
                Ok(CpuStorage::from_f64_iter(out.into_iter().map(f64::from), other.dtype()))
            }
            other => Err(Error::UnsupportedDType { op, dtype: other.dtype(), hint: "cast to a float dtype first" }),
        }
    }

    pub(crate) fn affine_transform(
        s: &CpuStorage,
        l: &Layout,
        t: &CpuStorage,
        tl: &Layout,
        p: &AffineParams,
    ) -> Result<CpuStorage> {
        run("affine_transform", s, l, t, tl, |x, m| forward_typed(x, m, p), |x, m| forward_typed(x, m, p))
    }

    pub(crate) fn affine_transform_grad(
        dy: &CpuStorage,
        l: &Layout,
        t: &CpuStorage,
        tl: &Layout,
        p: &AffineParams,
    ) -> Result<CpuStorage> {
        run("affine_transform_grad", dy, l, t, tl, |g, m| backward_typed(g, m, p), |g, m| backward_typed(g, m, p))
    }
}
