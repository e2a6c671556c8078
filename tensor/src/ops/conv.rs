//! 2-D convolution on NHWC input with an HWIO kernel (Keras `channels_last`),
//! with stride, `valid`/`same` padding and dilation, plus its two backward
//! primitives (gradient wrt the input and wrt the kernel).
//!
//! The CPU path lowers to GEMM: the patches of all images form a matrix
//! `[N*OH*OW, KH*KW*C]`, multiplied by the kernel viewed as `[KH*KW*C, O]`,
//! which yields NHWC output directly.

use crate::storage::{dispatch2, BackendStorage};
use crate::{Error, Result, Shape, Storage, Tensor};
use serde::{Deserialize, Serialize};

/// Padding mode, as in Keras.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Padding {
    /// No padding: the output shrinks by the (dilated) kernel size minus one.
    #[default]
    Valid,
    /// Zero padding so that `out = ceil(in / stride)`; an odd total puts the extra
    /// row/column at the bottom/right (TensorFlow's rule).
    Same,
}

/// The geometry of one 2-D convolution or pooling window over NHWC data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
    /// Batch size.
    pub n: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Input channels.
    pub c: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Output channels (filters).
    pub o: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Vertical dilation.
    pub dh: usize,
    /// Horizontal dilation.
    pub dw: usize,
    /// Zero rows added at the top.
    pub pt: usize,
    /// Zero columns added at the left.
    pub pl: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

/// Output size and leading pad of one spatial dim: `(out, pad_before)`.
pub fn conv_out_dim(
    op: &'static str,
    input: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    padding: Padding,
) -> Result<(usize, usize)> {
    if k == 0 || stride == 0 || dilation == 0 {
        return Err(Error::invalid(op, "kernel size, stride and dilation must be >= 1"));
    }
    let eff = dilation
        .checked_mul(k - 1)
        .and_then(|e| e.checked_add(1))
        .filter(|&e| e <= isize::MAX as usize)
        .ok_or_else(|| Error::invalid(op, format!("dilation {dilation} x window {k} is too large")))?;
    match padding {
        Padding::Valid => {
            if input < eff {
                return Err(Error::invalid(
                    op,
                    format!("input size {input} is smaller than the (dilated) window {eff} with padding 'valid'"),
                ));
            }
            Ok(((input - eff) / stride + 1, 0))
        }
        Padding::Same => {
            if input == 0 {
                // (out - 1) below would wrap; TF gives an empty output, PyTorch an error
                return Err(Error::invalid(
                    op,
                    "input size 0 along a spatial axis: there is nothing to convolve or pool (check the input shape)",
                ));
            }
            let out = input.div_ceil(stride);
            let total = ((out - 1) * stride + eff).saturating_sub(input);
            Ok((out, total / 2))
        }
    }
}

/// An NHWC input and a rank-4 `layout` kernel whose axis `channels_axis` is the input's
/// channel count: their dims, or an error naming `op` and both shapes.
fn check_operands<'a>(
    op: &'static str,
    input: &'a Shape,
    kernel: &'a Shape,
    channels_axis: usize,
    layout: &str,
) -> Result<(&'a [usize], &'a [usize])> {
    let (x, k) = (input.dims(), kernel.dims());
    if x.len() != 4 || k.len() != 4 {
        return Err(Error::shape_mismatch(
            op,
            input,
            kernel,
            format!("need NHWC input and {layout} kernel (rank 4 each)"),
        ));
    }
    if x[3] != k[channels_axis] {
        return Err(Error::shape_mismatch(
            op,
            input,
            kernel,
            format!("input has {} channels but the kernel expects {}", x[3], k[channels_axis]),
        ));
    }
    Ok((x, k))
}

impl Conv2dParams {
    /// Geometry for input `[n, h, w, c]` and kernel `[kh, kw, c, o]`.
    pub fn new(
        op: &'static str,
        input: &Shape,
        kernel: &Shape,
        strides: (usize, usize),
        padding: Padding,
        dilation: (usize, usize),
    ) -> Result<Self> {
        let (x, k) = check_operands(op, input, kernel, 2, "HWIO")?;
        let (oh, pt) = conv_out_dim(op, x[1], k[0], strides.0, dilation.0, padding)?;
        let (ow, pl) = conv_out_dim(op, x[2], k[1], strides.1, dilation.1, padding)?;
        Ok(Conv2dParams {
            n: x[0],
            h: x[1],
            w: x[2],
            c: x[3],
            kh: k[0],
            kw: k[1],
            o: k[3],
            sh: strides.0,
            sw: strides.1,
            dh: dilation.0,
            dw: dilation.1,
            pt,
            pl,
            oh,
            ow,
        })
    }

    /// Geometry of a transposed convolution with input `[n, h, w, c]`, kernel
    /// `[kh, kw, o, c]` and output `(height, width)` `out_hw`: the forward
    /// convolution from `[n, out_hw.0, out_hw.1, o]` that lands on `[n, h, w, c]`
    /// (its padding chosen from `out_hw` as [`conv_out_dim`] does, as
    /// TensorFlow's `conv2d_transpose`). An error when that convolution does not
    /// give back `h` x `w`.
    pub fn transposed(
        op: &'static str,
        input: &Shape,
        kernel: &Shape,
        out_hw: (usize, usize),
        strides: (usize, usize),
        padding: Padding,
        dilation: (usize, usize),
    ) -> Result<Self> {
        let (x, k) = check_operands(op, input, kernel, 3, "HWOI")?;
        let full = Shape::from([x[0], out_hw.0, out_hw.1, k[2]]);
        if full.checked_elem_count().is_none() {
            return Err(Error::InvalidShape {
                op,
                shape: full,
                msg: "has more elements than memory can address".into(),
            });
        }
        let p = Conv2dParams::new(op, &full, kernel, strides, padding, dilation)?;
        if (p.oh, p.ow) != (x[1], x[2]) {
            return Err(Error::invalid(
                op,
                format!(
                    "an output of {}x{} convolves back to {}x{}, not the input's {}x{}",
                    out_hw.0, out_hw.1, p.oh, p.ow, x[1], x[2]
                ),
            ));
        }
        Ok(p)
    }

    /// The output shape `[n, oh, ow, o]`.
    pub fn out_shape(&self) -> Shape {
        Shape::from([self.n, self.oh, self.ow, self.o])
    }

    /// The input shape `[n, h, w, c]`.
    pub fn in_shape(&self) -> Shape {
        Shape::from([self.n, self.h, self.w, self.c])
    }

    /// The kernel shape `[kh, kw, c, o]`.
    pub fn kernel_shape(&self) -> Shape {
        Shape::from([self.kh, self.kw, self.c, self.o])
    }
}

impl Tensor {
    /// 2-D convolution: `self` is NHWC `[n, h, w, c]`, `kernel` is HWIO `[kh, kw, c, o]`.
    pub fn conv2d(
        &self,
        kernel: &Tensor,
        strides: (usize, usize),
        padding: Padding,
        dilation: (usize, usize),
    ) -> Result<Tensor> {
        let p = Conv2dParams::new("conv2d", self.shape(), kernel.shape(), strides, padding, dilation)?;
        self.conv2d_with(kernel, &p)
    }

    /// 2-D convolution with precomputed geometry.
    pub fn conv2d_with(&self, kernel: &Tensor, p: &Conv2dParams) -> Result<Tensor> {
        check_same_dtype("conv2d", self, kernel)?;
        check_shape("conv2d", self, &p.in_shape())?;
        check_shape("conv2d", kernel, &p.kernel_shape())?;
        let (x, k) = (self.contiguous()?, kernel.contiguous()?);
        let (sx, sk) = (x.storage(), k.storage());
        let out = dispatch2!("conv2d", &*sx, &*sk, |a, b| a.conv2d(x.layout(), b, k.layout(), p))?;
        Ok(Tensor::from_storage(out, p.out_shape()))
    }

    /// `relu(conv2d(self, kernel) + bias)` with `bias` `[o]`: the same bits as
    /// [`Tensor::conv2d_with`] then [`Tensor::binary_unary`] (add, relu), which
    /// is what backends without a fused kernel run. On the CPU the bias and
    /// ReLU are applied in the convolution's registers (short patches) or in
    /// one in-place pass over its output, never as a separate tensor.
    pub fn conv2d_bias_relu(&self, kernel: &Tensor, bias: &Tensor, p: &Conv2dParams) -> Result<Tensor> {
        check_same_dtype("conv2d", self, kernel)?;
        check_same_dtype("conv2d", self, bias)?;
        check_shape("conv2d", self, &p.in_shape())?;
        check_shape("conv2d", kernel, &p.kernel_shape())?;
        check_shape("conv2d", bias, &Shape::from([p.o]))?;
        let fused = {
            let (sx, sk, sb) = (self.storage(), kernel.storage(), bias.storage());
            let (xl, kl, bl) = (self.layout(), kernel.layout(), bias.layout());
            match (&*sx, &*sk, &*sb) {
                (Storage::Cpu(x), Storage::Cpu(k), Storage::Cpu(b)) => {
                    x.conv2d_bias_relu(xl, k, kl, b, bl, p)?.map(Storage::Cpu)
                }
                (Storage::Cuda(x), Storage::Cuda(k), Storage::Cuda(b)) => {
                    x.conv2d_bias_relu(xl, k, kl, b, bl, p)?.map(Storage::Cuda)
                }
                _ => None, // operands on different devices: the unfused ops report it
            }
        };
        if let Some(out) = fused {
            return Ok(Tensor::from_storage(out, p.out_shape()));
        }
        self.conv2d_with(kernel, p)?.binary_unary(bias, crate::BinaryOp::Add, crate::UnaryOp::Relu, 0.0)
    }

    /// Gradient of a convolution wrt its input: `self` is the output gradient `[n, oh, ow, o]`.
    pub fn conv2d_grad_input(&self, kernel: &Tensor, p: &Conv2dParams) -> Result<Tensor> {
        check_same_dtype("conv2d_grad_input", self, kernel)?;
        // a transposed convolution's output can be far larger than its input: checked
        crate::ops::creation::checked_len("conv2d_grad_input", &p.in_shape(), self.dtype(), &self.device())?;
        check_shape("conv2d_grad_input", self, &p.out_shape())?;
        check_shape("conv2d_grad_input", kernel, &p.kernel_shape())?;
        let (dy, k) = (self.contiguous()?, kernel.contiguous()?);
        let (sd, sk) = (dy.storage(), k.storage());
        let out =
            dispatch2!("conv2d_grad_input", &*sd, &*sk, |a, b| a.conv2d_grad_input(dy.layout(), b, k.layout(), p))?;
        Ok(Tensor::from_storage(out, p.in_shape()))
    }

    /// Gradient of a convolution wrt its kernel: `self` is the input, `dy` the output gradient.
    pub fn conv2d_grad_kernel(&self, dy: &Tensor, p: &Conv2dParams) -> Result<Tensor> {
        check_same_dtype("conv2d_grad_kernel", self, dy)?;
        check_shape("conv2d_grad_kernel", self, &p.in_shape())?;
        check_shape("conv2d_grad_kernel", dy, &p.out_shape())?;
        let (x, dy) = (self.contiguous()?, dy.contiguous()?);
        let (sx, sd) = (x.storage(), dy.storage());
        let out =
            dispatch2!("conv2d_grad_kernel", &*sx, &*sd, |a, b| a.conv2d_grad_kernel(x.layout(), b, dy.layout(), p))?;
        Ok(Tensor::from_storage(out, p.kernel_shape()))
    }
}

pub(crate) fn check_same_dtype(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dtype() != b.dtype() {
        return Err(Error::DTypeMismatch { op, lhs: a.dtype(), rhs: b.dtype() });
    }
    if !a.dtype().is_float() {
        return Err(Error::UnsupportedDType { op, dtype: a.dtype(), hint: "cast to a float dtype first" });
    }
    Ok(())
}

pub(crate) fn check_shape(op: &'static str, t: &Tensor, want: &Shape) -> Result<()> {
    if t.shape() != want {
        return Err(Error::shape_mismatch(op, t.shape(), want, "operand does not have the expected shape"));
    }
    Ok(())
}

#[cfg(feature = "cpu")]
pub(crate) mod cpu {
    use super::Conv2dParams;
    use crate::ops::matmul::cpu::{gemm_new, GemmElem, MatRef};
    use crate::{CpuStorage, Error, Layout, Result};
    use half::{bf16, f16};
    use rayon::prelude::*;
    use std::mem::MaybeUninit;

    pub(crate) fn contiguous<'a, T: Copy>(v: &'a [T], l: &Layout) -> std::borrow::Cow<'a, [T]> {
        match l.contiguous_range() {
            Some((s, e)) => std::borrow::Cow::Borrowed(&v[s..e]),
            None => std::borrow::Cow::Owned(l.offsets().into_iter().map(|o| v[o]).collect()),
        }
    }

    /// Input position for output `o` and kernel tap `k` along one dim, if inside the image.
    #[inline]
    pub(crate) fn src_pos(o: usize, k: usize, stride: usize, dil: usize, pad: usize, size: usize) -> Option<usize> {
        let p = (o * stride + k * dil).checked_sub(pad)?;
        (p < size).then_some(p)
    }

    /// Write `src` into the uninitialized `dst` (same length).
    #[inline]
    fn put<T: Copy>(dst: &mut [MaybeUninit<T>], src: &[T]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            d.write(s);
        }
    }

    /// One patch row `[kh * kw * c]` for output pixel `(b, oy, ox)`, zeros where
    /// the window leaves the image; a kernel row that lies inside the image
    /// (dilation 1) is copied as one run.
    #[inline]
    fn patch_into<T: GemmElem>(
        x: &[T],
        p: &Conv2dParams,
        b: usize,
        oy: usize,
        ox: usize,
        patch: &mut [MaybeUninit<T>],
    ) {
        let img = &x[b * p.h * p.w * p.c..(b + 1) * p.h * p.w * p.c];
        let row_len = p.kw * p.c;
        let x0 = (ox * p.sw).checked_sub(p.pl);
        for ki in 0..p.kh {
            let dst = &mut patch[ki * row_len..(ki + 1) * row_len];
            let Some(iy) = src_pos(oy, ki, p.sh, p.dh, p.pt, p.h) else {
                dst.iter_mut().for_each(|d| {
                    d.write(T::ZERO);
                });
                continue;
            };
            if let Some(x0) = x0.filter(|&x0| p.dw == 1 && x0 + p.kw <= p.w) {
                put(dst, &img[(iy * p.w + x0) * p.c..(iy * p.w + x0 + p.kw) * p.c]);
                continue;
            }
            for kj in 0..p.kw {
                let d = &mut dst[kj * p.c..(kj + 1) * p.c];
                match src_pos(ox, kj, p.sw, p.dw, p.pl, p.w) {
                    Some(ix) => put(d, &img[(iy * p.w + ix) * p.c..(iy * p.w + ix + 1) * p.c]),
                    None => d.iter_mut().for_each(|d| {
                        d.write(T::ZERO);
                    }),
                }
            }
        }
    }

    /// Patches of every image: `[n * oh * ow, kh * kw * c]`.
    fn im2col<T: GemmElem>(x: &[T], p: &Conv2dParams) -> Vec<T> {
        let kk = p.kh * p.kw * p.c;
        let len = p.n * p.oh * p.ow * kk;
        let mut col = Vec::with_capacity(len);
        col.spare_capacity_mut()[..len].par_chunks_mut((p.ow * kk).max(1)).enumerate().for_each(|(row, chunk)| {
            let (b, oy) = (row / p.oh, row % p.oh);
            for ox in 0..p.ow {
                patch_into(x, p, b, oy, ox, &mut chunk[ox * kk..(ox + 1) * kk]);
            }
        });
        // SAFETY: `patch_into` wrote every element of every patch.
        unsafe { col.set_len(len) };
        col
    }

    /// Patch length up to which a convolution skips im2col + GEMM and runs a
    /// direct kernel (e.g. a first layer with one input channel: 3x3x1 = 9).
    const DIRECT_MAX_KK: usize = 32;

    /// Output pixels per task of the direct kernels (fixed, so partial sums and
    /// hence results do not depend on the thread count).
    const DIRECT_PIXELS: usize = 512;

    /// Output channels per vector step of the direct kernels.
    const LANES: usize = 8;

    /// The patches of output pixels `first..first + count` as rows of `KK`
    /// values, zero outside the image and past the patch length `kk <= KK`.
    /// A window inside the image is gathered through `rel` (each tap's offset
    /// from the window's first value), unrolled over the `KK` taps; windows
    /// that cross the border take the per-tap path.
    #[inline(always)]
    fn patch_block<T: GemmElem, const KK: usize>(
        x: &[T],
        p: &Conv2dParams,
        first: usize,
        count: usize,
    ) -> Vec<[T; KK]> {
        let kk = p.kh * p.kw * p.c;
        let mut rel = [0usize; KK];
        for (t, r) in rel.iter_mut().enumerate().take(kk) {
            let (ki, kj, ch) = (t / (p.kw * p.c), t / p.c % p.kw, t % p.c);
            *r = (ki * p.dh * p.w + kj * p.dw) * p.c + ch;
        }
        let (span_h, span_w) = ((p.kh - 1) * p.dh, (p.kw - 1) * p.dw);
        let mut rows = vec![[T::ZERO; KK]; count];
        let (mut b, mut oy, mut ox) = (first / (p.oh * p.ow), first / p.ow % p.oh, first % p.ow);
        for row in rows.iter_mut() {
            let img = &x[b * p.h * p.w * p.c..(b + 1) * p.h * p.w * p.c];
            let (iy0, ix0) = ((oy * p.sh).wrapping_sub(p.pt), (ox * p.sw).wrapping_sub(p.pl));
            if iy0 < p.h && iy0 + span_h < p.h && ix0 < p.w && ix0 + span_w < p.w {
                let win = &img[(iy0 * p.w + ix0) * p.c..];
                for t in 0..KK {
                    row[t] = if t < kk { win[rel[t]] } else { T::ZERO };
                }
            } else {
                let mut t = 0;
                for ki in 0..p.kh {
                    let iy = src_pos(oy, ki, p.sh, p.dh, p.pt, p.h);
                    for kj in 0..p.kw {
                        if let (Some(iy), Some(ix)) = (iy, src_pos(ox, kj, p.sw, p.dw, p.pl, p.w)) {
                            let src = &img[(iy * p.w + ix) * p.c..(iy * p.w + ix + 1) * p.c];
                            row[t..t + p.c].copy_from_slice(src);
                        }
                        t += p.c;
                    }
                }
            }
            ox += 1;
            if ox == p.ow {
                ox = 0;
                oy += 1;
                if oy == p.oh {
                    oy = 0;
                    b += 1;
                }
            }
        }
        rows
    }

    /// `k` `[kk, o]` as `KK` rows (zero rows past `kk`).
    fn pad_rows<T: GemmElem>(k: &[T], kk: usize, rows: usize, o: usize) -> Vec<T> {
        let mut out = vec![T::ZERO; rows * o];
        out[..kk * o].copy_from_slice(&k[..kk * o]);
        out
    }

    /// Direct forward for short patches: `out[pixel, :] = sum_t patch[t] * k[t, :]`.
    fn fwd_direct<T: Elem>(x: &[T], k: &[T], p: &Conv2dParams, bias: Option<&[T]>) -> Vec<T> {
        match p.kh * p.kw * p.c {
            0..=9 => fwd_direct_kk::<T, 9>(x, k, p, bias),
            10..=16 => fwd_direct_kk::<T, 16>(x, k, p, bias),
            _ => fwd_direct_kk::<T, DIRECT_MAX_KK>(x, k, p, bias),
        }
    }

    /// The float types of the CPU conv kernels (f32, f64).
    pub(crate) trait Elem: GemmElem + std::ops::Mul<Output = Self> + PartialOrd {}
    impl<T: GemmElem + std::ops::Mul<Output = T> + PartialOrd> Elem for T {}

    /// `relu(v + b)` with the table's ReLU (`v <= 0 ? 0 : v`, so NaN stays NaN), in `T`.
    #[inline(always)]
    fn bias_relu<T: Elem>(v: T, b: T) -> T {
        let mut z = v;
        z += b;
        if z <= T::ZERO {
            T::ZERO
        } else {
            z
        }
    }

    crate::cpu::simd_fn! {
        /// `out[r, j] = relu(out[r, j] + bias[j])` in place, fixed row chunks in parallel.
        fn bias_relu_in_place[T: Elem][T](out: &mut [T], bias: &[T]) -> () {
            let o = bias.len().max(1);
            out.par_chunks_mut(DIRECT_PIXELS * o).for_each(|rows| {
                for row in rows.chunks_exact_mut(o) {
                    for (v, &b) in row.iter_mut().zip(bias) {
                        *v = bias_relu(*v, b);
                    }
                }
            });
        }
    }

    crate::cpu::simd_fn! {
        /// [`fwd_direct`] with patches padded to `KK` taps: per block of pixels and
        /// group of 8 output channels, the `KK x 8` kernel slice and the 8 sums stay
        /// in registers. Each output adds its taps in order from zero, as a naive loop.
        fn fwd_direct_kk[T: Elem, const KK: usize][T, KK](
            x: &[T],
            k: &[T],
            p: &Conv2dParams,
            bias: Option<&[T]>,
        ) -> Vec<T> {
            let (kk, o) = (p.kh * p.kw * p.c, p.o);
            let kp = pad_rows(k, kk, KK, o);
            let pixels = p.n * p.oh * p.ow;
            let mut out = Vec::with_capacity(pixels * o);
            out.spare_capacity_mut()[..pixels * o].par_chunks_mut(DIRECT_PIXELS * o).enumerate().for_each(|(chunk, dst)| {
                let patches = patch_block::<T, KK>(x, p, chunk * DIRECT_PIXELS, dst.len() / o);
                let full = o / LANES * LANES;
                for ob in (0..full).step_by(LANES) {
                    let mut kr = [[T::ZERO; LANES]; KK];
                    for (t, r) in kr.iter_mut().enumerate() {
                        r.copy_from_slice(&kp[t * o + ob..t * o + ob + LANES]);
                    }
                    for (patch, acc_out) in patches.iter().zip(dst.chunks_exact_mut(o)) {
                        let mut acc = [T::ZERO; LANES];
                        for t in 0..KK {
                            for j in 0..LANES {
                                acc[j] += patch[t] * kr[t][j];
                            }
                        }
                        match bias {
                            Some(bias) => {
                                let bias = &bias[ob..ob + LANES];
                                for ((d, a), &b) in acc_out[ob..ob + LANES].iter_mut().zip(acc).zip(bias) {
                                    d.write(bias_relu(a, b));
                                }
                            }
                            None => {
                                for (d, a) in acc_out[ob..ob + LANES].iter_mut().zip(acc) {
                                    d.write(a);
                                }
                            }
                        }
                    }
                }
                for (patch, acc_out) in patches.iter().zip(dst.chunks_exact_mut(o)) {
                    for (j, d) in acc_out.iter_mut().enumerate().skip(full) {
                        let mut a = T::ZERO;
                        for t in 0..KK {
                            a += patch[t] * kp[t * o + j];
                        }
                        d.write(match bias {
                            Some(bias) => bias_relu(a, bias[j]),
                            None => a,
                        });
                    }
                }
            });
            // SAFETY: every output position was written above (channel groups, then the tail).
            unsafe { out.set_len(pixels * o) };
            out
        }
    }

    /// Direct kernel gradient for short patches: `dk[t, :] = sum_pixels patch[t] * dy[pixel, :]`,
    /// summed per fixed block of pixels, then the block sums in order.
    fn grad_kernel_direct<T: Elem>(x: &[T], dy: &[T], p: &Conv2dParams) -> Vec<T> {
        match p.kh * p.kw * p.c {
            0..=9 => grad_kernel_direct_kk::<T, 9>(x, dy, p),
            10..=16 => grad_kernel_direct_kk::<T, 16>(x, dy, p),
            _ => grad_kernel_direct_kk::<T, DIRECT_MAX_KK>(x, dy, p),
        }
    }

    crate::cpu::simd_fn! {
        /// [`grad_kernel_direct`] with patches padded to `KK` taps: per block of
        /// pixels and group of 8 output channels, the `KK x 8` partial sums stay
        /// in registers while the block's pixels stream past in order.
        fn grad_kernel_direct_kk[T: Elem, const KK: usize][T, KK](
            x: &[T],
            dy: &[T],
            p: &Conv2dParams,
        ) -> Vec<T> {
            let (kk, o) = (p.kh * p.kw * p.c, p.o);
            let pixels = p.n * p.oh * p.ow;
            let parts: Vec<Vec<T>> = dy[..pixels * o]
                .par_chunks(DIRECT_PIXELS * o)
                .enumerate()
                .map(|(chunk, g)| {
                    let patches = patch_block::<T, KK>(x, p, chunk * DIRECT_PIXELS, g.len() / o);
                    let mut dk = vec![T::ZERO; kk * o];
                    let full = o / LANES * LANES;
                    for ob in (0..full).step_by(LANES) {
                        let mut acc = [[T::ZERO; LANES]; KK];
                        for (patch, gp) in patches.iter().zip(g.chunks_exact(o)) {
                            let gv = &gp[ob..ob + LANES];
                            for t in 0..KK {
                                for j in 0..LANES {
                                    acc[t][j] += patch[t] * gv[j];
                                }
                            }
                        }
                        for t in 0..kk {
                            dk[t * o + ob..t * o + ob + LANES].copy_from_slice(&acc[t]);
                        }
                    }
                    for j in full..o {
                        for (patch, gp) in patches.iter().zip(g.chunks_exact(o)) {
                            for t in 0..kk {
                                dk[t * o + j] += patch[t] * gp[j];
                            }
                        }
                    }
                    dk
                })
                .collect();
            let mut dk = vec![T::ZERO; kk * o];
            for part in parts {
                for (d, v) in dk.iter_mut().zip(part) {
                    *d += v;
                }
            }
            dk
        }
    }

    /// Forward convolution; with `bias`, `relu(conv + bias)` fused into the
    /// direct kernel's registers or one in-place pass over the GEMM's output.
    fn fwd<T: Elem>(x: &[T], k: &[T], p: &Conv2dParams, bias: Option<&[T]>) -> Result<Vec<T>> {
        let kk = p.kh * p.kw * p.c;
        let rows = p.n * p.oh * p.ow;
        let kmat = MatRef { data: k, offset: 0, rs: p.o, cs: 1 };
        let mut out = if p.kh == 1 && p.kw == 1 && p.sh == 1 && p.sw == 1 && p.pt == 0 && p.pl == 0 {
            // pointwise convolution: the input already is the patch matrix
            gemm_new(MatRef { data: x, offset: 0, rs: kk, cs: 1 }, kmat, rows, p.o, kk, true)?
        } else if kk <= DIRECT_MAX_KK {
            return Ok(fwd_direct(x, k, p, bias));
        } else {
            let col = im2col(x, p);
            gemm_new(MatRef { data: &col, offset: 0, rs: kk, cs: 1 }, kmat, rows, p.o, kk, true)?
        };
        if let Some(bias) = bias {
            bias_relu_in_place(&mut out, bias);
        }
        Ok(out)
    }

    fn grad_input<T: GemmElem>(dy: &[T], k: &[T], p: &Conv2dParams) -> Result<Vec<T>> {
        let kk = p.kh * p.kw * p.c;
        let rows = p.n * p.oh * p.ow;
        // dcol = dy [rows, o] x k^T [o, kk]
        let kt = MatRef { data: k, offset: 0, rs: 1, cs: p.o };
        let dcol = gemm_new(MatRef { data: dy, offset: 0, rs: p.o, cs: 1 }, kt, rows, kk, p.o, true)?;
        // col2im: scatter-add every patch back into its image (images in parallel)
        let img_len = p.h * p.w * p.c;
        let mut dx = vec![T::ZERO; p.n * img_len];
        dx.par_chunks_mut(img_len.max(1)).enumerate().for_each(|(b, img)| {
            for oy in 0..p.oh {
                for ox in 0..p.ow {
                    let patch = &dcol[((b * p.oh + oy) * p.ow + ox) * kk..][..kk];
                    for ki in 0..p.kh {
                        let Some(iy) = src_pos(oy, ki, p.sh, p.dh, p.pt, p.h) else {
                            continue;
                        };
                        for kj in 0..p.kw {
                            let Some(ix) = src_pos(ox, kj, p.sw, p.dw, p.pl, p.w) else {
                                continue;
                            };
                            let dst = &mut img[(iy * p.w + ix) * p.c..][..p.c];
                            let src = &patch[(ki * p.kw + kj) * p.c..][..p.c];
                            for (d, &s) in dst.iter_mut().zip(src) {
                                *d += s;
                            }
                        }
                    }
                }
            }
        });
        Ok(dx)
    }

    fn grad_kernel<T: Elem>(x: &[T], dy: &[T], p: &Conv2dParams) -> Result<Vec<T>> {
        let kk = p.kh * p.kw * p.c;
        let rows = p.n * p.oh * p.ow;
        if kk <= DIRECT_MAX_KK {
            return Ok(grad_kernel_direct(x, dy, p));
        }
        let col = im2col(x, p);
        // dk [kk, o] = col^T [kk, rows] x dy [rows, o]
        let colt = MatRef { data: &col, offset: 0, rs: 1, cs: kk };
        gemm_new(colt, MatRef { data: dy, offset: 0, rs: p.o, cs: 1 }, kk, p.o, rows, true)
    }

    /// Run `f` on f32/f64 storages directly and on f16/bf16 widened to f32.
    macro_rules! float_pair {
        ($op:expr, $a:expr, $al:expr, $b:expr, $bl:expr, |$x:ident, $y:ident| $f:expr) => {
            match ($a, $b) {
                (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                    let ($x, $y) = (contiguous(a, $al), contiguous(b, $bl));
                    CpuStorage::F32($f?)
                }
                (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                    let ($x, $y) = (contiguous(a, $al), contiguous(b, $bl));
                    CpuStorage::F64($f?)
                }
                (CpuStorage::F16(a), CpuStorage::F16(b)) => {
                    let $x: Vec<f32> = contiguous(a, $al).iter().map(|v| v.to_f32()).collect();
                    let $y: Vec<f32> = contiguous(b, $bl).iter().map(|v| v.to_f32()).collect();
                    CpuStorage::F16($f?.into_iter().map(f16::from_f32).collect())
                }
                (CpuStorage::BF16(a), CpuStorage::BF16(b)) => {
                    let $x: Vec<f32> = contiguous(a, $al).iter().map(|v| v.to_f32()).collect();
                    let $y: Vec<f32> = contiguous(b, $bl).iter().map(|v| v.to_f32()).collect();
                    CpuStorage::BF16($f?.into_iter().map(bf16::from_f32).collect())
                }
                (a, b) => return Err(Error::DTypeMismatch { op: $op, lhs: a.dtype(), rhs: b.dtype() }),
            }
        };
    }
    pub(crate) use float_pair;

    pub(crate) fn conv2d(
        x: &CpuStorage,
        xl: &Layout,
        k: &CpuStorage,
        kl: &Layout,
        p: &Conv2dParams,
    ) -> Result<CpuStorage> {
        Ok(float_pair!("conv2d", x, xl, k, kl, |a, b| fwd(&a, &b, p, None)))
    }

    /// `relu(conv2d + bias)` for f32/f64 (contiguous bias `[o]`); `None` for
    /// other dtypes, which take the unfused ops.
    pub(crate) fn conv2d_bias_relu(
        x: &CpuStorage,
        xl: &Layout,
        k: &CpuStorage,
        kl: &Layout,
        b: &CpuStorage,
        bl: &Layout,
        p: &Conv2dParams,
    ) -> Result<Option<CpuStorage>> {
        Ok(match (x, k, b) {
            (CpuStorage::F32(x), CpuStorage::F32(k), CpuStorage::F32(b)) => {
                Some(CpuStorage::F32(fwd(&contiguous(x, xl), &contiguous(k, kl), p, Some(&contiguous(b, bl)))?))
            }
            (CpuStorage::F64(x), CpuStorage::F64(k), CpuStorage::F64(b)) => {
                Some(CpuStorage::F64(fwd(&contiguous(x, xl), &contiguous(k, kl), p, Some(&contiguous(b, bl)))?))
            }
            _ => None,
        })
    }

    pub(crate) fn conv2d_grad_input(
        dy: &CpuStorage,
        dyl: &Layout,
        k: &CpuStorage,
        kl: &Layout,
        p: &Conv2dParams,
    ) -> Result<CpuStorage> {
        Ok(float_pair!("conv2d_grad_input", dy, dyl, k, kl, |a, b| { grad_input(&a, &b, p) }))
    }

    pub(crate) fn conv2d_grad_kernel(
        x: &CpuStorage,
        xl: &Layout,
        dy: &CpuStorage,
        dyl: &Layout,
        p: &Conv2dParams,
    ) -> Result<CpuStorage> {
        Ok(float_pair!("conv2d_grad_kernel", x, xl, dy, dyl, |a, b| { grad_kernel(&a, &b, p) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_axis_is_an_error_with_either_padding() {
        for padding in [Padding::Same, Padding::Valid] {
            let err = conv_out_dim("conv2d", 0, 3, 1, 1, padding).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("conv2d") && err.contains("0"), "{padding:?}: {err}");
        }
        assert_eq!(conv_out_dim("conv2d", 5, 3, 2, 1, Padding::Same).ok(), Some((3, 1)));
    }
}
