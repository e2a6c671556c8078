//! Depthwise 2-D convolution (TensorFlow's `depthwise_conv2d`, Keras's `DepthwiseConv2D`):
//! NHWC input `[n, h, w, c]`, kernel `[kh, kw, c, m]` (`m` the depth multiplier), output
//! `[n, oh, ow, c * m]` whose channel `ci * m + j` is input channel `ci` convolved with
//! `kernel[.., .., ci, j]` (TensorFlow's order). Stride, `valid`/`same` padding and dilation
//! as [`Tensor::conv2d`] (the same [`conv_out_dim`]). Plus the two backward primitives.
//!
//! The CPU kernels are direct loops (no im2col: each output reads `kh * kw` inputs): the
//! forward and the input gradient run output/input rows in parallel, each element summing
//! its taps in order; the kernel gradient sums fixed blocks of output rows in parallel and
//! adds the blocks' partial sums in order, so the bits never depend on the thread count.

use super::conv::{check_same_dtype, check_shape, conv_out_dim, Conv2dParams, Padding};
use crate::storage::{dispatch2, BackendStorage};
use crate::{Error, Result, Shape, Tensor};

/// The geometry of one depthwise 2-D convolution over NHWC data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DepthwiseConv2dParams {
    /// The convolution's geometry; its `o` is the output channel count `c * m`.
    pub conv: Conv2dParams,
    /// The depth multiplier: output channels per input channel.
    pub m: usize,
}

impl DepthwiseConv2dParams {
    /// Geometry for input `[n, h, w, c]` and kernel `[kh, kw, c, m]`; an error naming `op`
    /// and both shapes when they do not fit, or when the output's size overflows.
    pub fn new(
        op: &'static str,
        input: &Shape,
        kernel: &Shape,
        strides: (usize, usize),
        padding: Padding,
        dilation: (usize, usize),
    ) -> Result<Self> {
        let (x, k) = (input.dims(), kernel.dims());
        if x.len() != 4 || k.len() != 4 {
            return Err(Error::shape_mismatch(
                op,
                input,
                kernel,
                "need NHWC input and [kh, kw, channels, depth_multiplier] kernel (rank 4 each)",
            ));
        }
        if x[3] != k[2] {
            return Err(Error::shape_mismatch(
                op,
                input,
                kernel,
                format!("input has {} channels but the kernel expects {}", x[3], k[2]),
            ));
        }
        let o = x[3]
            .checked_mul(k[3])
            .ok_or_else(|| Error::shape_mismatch(op, input, kernel, "channels x depth_multiplier overflows"))?;
        let (oh, pt) = conv_out_dim(op, x[1], k[0], strides.0, dilation.0, padding)?;
        let (ow, pl) = conv_out_dim(op, x[2], k[1], strides.1, dilation.1, padding)?;
        let out = Shape::from([x[0], oh, ow, o]);
        if out.checked_elem_count().is_none() {
            return Err(Error::InvalidShape {
                op,
                shape: out,
                msg: "has more elements than memory can address".into(),
            });
        }
        let conv = Conv2dParams {
            n: x[0],
            h: x[1],
            w: x[2],
            c: x[3],
            kh: k[0],
            kw: k[1],
            o,
            sh: strides.0,
            sw: strides.1,
            dh: dilation.0,
            dw: dilation.1,
            pt,
            pl,
            oh,
            ow,
        };
        Ok(DepthwiseConv2dParams { conv, m: k[3] })
    }

    /// The output shape `[n, oh, ow, c * m]`.
    pub fn out_shape(&self) -> Shape {
        self.conv.out_shape()
    }

    /// The input shape `[n, h, w, c]`.
    pub fn in_shape(&self) -> Shape {
        self.conv.in_shape()
    }

    /// The kernel shape `[kh, kw, c, m]`.
    pub fn kernel_shape(&self) -> Shape {
        Shape::from([self.conv.kh, self.conv.kw, self.conv.c, self.m])
    }
}

impl Tensor {
    /// Depthwise 2-D convolution: `self` is NHWC `[n, h, w, c]`, `kernel` is
    /// `[kh, kw, c, m]`; the output `[n, oh, ow, c * m]` has channel `ci * m + j` from input
    /// channel `ci` and `kernel[.., .., ci, j]` (TensorFlow's `depthwise_conv2d`).
    pub fn depthwise_conv2d(
        &self,
        kernel: &Tensor,
        strides: (usize, usize),
        padding: Padding,
        dilation: (usize, usize),
    ) -> Result<Tensor> {
        let p =
            DepthwiseConv2dParams::new("depthwise_conv2d", self.shape(), kernel.shape(), strides, padding, dilation)?;
        self.depthwise_conv2d_with(kernel, &p)
    }

    /// Depthwise 2-D convolution with precomputed geometry.
    pub fn depthwise_conv2d_with(&self, kernel: &Tensor, p: &DepthwiseConv2dParams) -> Result<Tensor> {
        const OP: &str = "depthwise_conv2d";
        check_same_dtype(OP, self, kernel)?;
        check_shape(OP, self, &p.in_shape())?;
        check_shape(OP, kernel, &p.kernel_shape())?;
        crate::ops::creation::checked_len(OP, &p.out_shape(), self.dtype(), &self.device())?;
        let (x, k) = (self.contiguous()?, kernel.contiguous()?);
        let (sx, sk) = (x.storage(), k.storage());
        let out = dispatch2!(OP, &*sx, &*sk, |a, b| a.depthwise_conv2d(x.layout(), b, k.layout(), p))?;
        Ok(Tensor::from_storage(out, p.out_shape()))
    }

    /// Gradient of a depthwise convolution wrt its input: `self` is the output gradient
    /// `[n, oh, ow, c * m]`, the result `[n, h, w, c]`.
    pub fn depthwise_conv2d_grad_input(&self, kernel: &Tensor, p: &DepthwiseConv2dParams) -> Result<Tensor> {
        const OP: &str = "depthwise_conv2d_grad_input";
        check_same_dtype(OP, self, kernel)?;
        check_shape(OP, self, &p.out_shape())?;
        check_shape(OP, kernel, &p.kernel_shape())?;
        crate::ops::creation::checked_len(OP, &p.in_shape(), self.dtype(), &self.device())?;
        let (dy, k) = (self.contiguous()?, kernel.contiguous()?);
        let (sd, sk) = (dy.storage(), k.storage());
        let out = dispatch2!(OP, &*sd, &*sk, |a, b| a.depthwise_conv2d_grad_input(dy.layout(), b, k.layout(), p))?;
        Ok(Tensor::from_storage(out, p.in_shape()))
    }

    /// Gradient of a depthwise convolution wrt its kernel: `self` is the input, `dy` the
    /// output gradient; the result `[kh, kw, c, m]`.
    pub fn depthwise_conv2d_grad_kernel(&self, dy: &Tensor, p: &DepthwiseConv2dParams) -> Result<Tensor> {
        const OP: &str = "depthwise_conv2d_grad_kernel";
        check_same_dtype(OP, self, dy)?;
        check_shape(OP, self, &p.in_shape())?;
        check_shape(OP, dy, &p.out_shape())?;
        let (x, dy) = (self.contiguous()?, dy.contiguous()?);
        let (sx, sd) = (x.storage(), dy.storage());
        let out = dispatch2!(OP, &*sx, &*sd, |a, b| a.depthwise_conv2d_grad_kernel(x.layout(), b, dy.layout(), p))?;
        Ok(Tensor::from_storage(out, p.kernel_shape()))
    }
}

#[cfg(feature = "cpu")]
pub(crate) mod cpu {
    use super::DepthwiseConv2dParams;
    use crate::ops::conv::cpu::{contiguous, float_pair, src_pos, Elem};
    use crate::{CpuStorage, Error, Layout, Result};
    use half::{bf16, f16};
    use rayon::prelude::*;

    /// The output position along one dim that tap `k` reads input `i` from, if any:
    /// `o * stride + k * dil - pad == i` with `o < out`.
    #[inline]
    fn dst_pos(i: usize, k: usize, stride: usize, dil: usize, pad: usize, out: usize) -> Option<usize> {
        let t = (i + pad).checked_sub(k * dil)?;
        (t % stride == 0 && t / stride < out).then_some(t / stride)
    }

    /// Output pixels per block of the kernel gradient's partial sums (at least; fixed by the
    /// geometry, so the sums' order never depends on the thread count).
    const GRAD_KERNEL_PIXELS: usize = 256;
    /// At most this many partial sums of the kernel gradient.
    const GRAD_KERNEL_PARTS: usize = 64;

    crate::cpu::simd_fn! {
        /// Forward: output rows `(b, oy)` in parallel; each output adds its taps in
        /// order `(ki, kj)` from zero.
        fn fwd[T: Elem][T](x: &[T], k: &[T], p: &DepthwiseConv2dParams) -> Vec<T> {
            let (q, m) = (&p.conv, p.m);
            let (c, o) = (q.c, q.o);
            let mut out = vec![T::ZERO; q.n * q.oh * q.ow * o];
            out.par_chunks_mut((q.ow * o).max(1)).enumerate().for_each(|(row, dst)| {
                let (b, oy) = (row / q.oh, row % q.oh);
                let img = &x[b * q.h * q.w * c..];
                for ki in 0..q.kh {
                    let Some(iy) = src_pos(oy, ki, q.sh, q.dh, q.pt, q.h) else { continue };
                    for kj in 0..q.kw {
                        let kt = &k[(ki * q.kw + kj) * o..][..o];
                        for ox in 0..q.ow {
                            let Some(ix) = src_pos(ox, kj, q.sw, q.dw, q.pl, q.w) else { continue };
                            let xs = &img[(iy * q.w + ix) * c..][..c];
                            let acc = &mut dst[ox * o..][..o];
                            if m == 1 {
                                for ((a, &xv), &kv) in acc.iter_mut().zip(xs).zip(kt) {
                                    *a += xv * kv;
                                }
                            } else {
                                for ((a, kv), &xv) in acc.chunks_exact_mut(m).zip(kt.chunks_exact(m)).zip(xs) {
                                    for (a, &kv) in a.iter_mut().zip(kv) {
                                        *a += xv * kv;
                                    }
                                }
                            }
                        }
                    }
                }
            });
            out
        }
    }

    crate::cpu::simd_fn! {
        /// Input gradient (gather): input rows `(b, iy)` in parallel; each input element adds,
        /// per tap `(ki, kj)` that reaches it in order, the sum over `j` of `dy * k`.
        fn grad_input[T: Elem][T](dy: &[T], k: &[T], p: &DepthwiseConv2dParams) -> Vec<T> {
            let (q, m) = (&p.conv, p.m);
            let (c, o) = (q.c, q.o);
            let mut dx = vec![T::ZERO; q.n * q.h * q.w * c];
            dx.par_chunks_mut((q.w * c).max(1)).enumerate().for_each(|(row, dst)| {
                let (b, iy) = (row / q.h, row % q.h);
                for ki in 0..q.kh {
                    let Some(oy) = dst_pos(iy, ki, q.sh, q.dh, q.pt, q.oh) else { continue };
                    let grow = &dy[(b * q.oh + oy) * q.ow * o..];
                    for kj in 0..q.kw {
                        let kt = &k[(ki * q.kw + kj) * o..][..o];
                        for ix in 0..q.w {
                            let Some(ox) = dst_pos(ix, kj, q.sw, q.dw, q.pl, q.ow) else { continue };
                            let g = &grow[ox * o..][..o];
                            let acc = &mut dst[ix * c..][..c];
                            if m == 1 {
                                for ((a, &gv), &kv) in acc.iter_mut().zip(g).zip(kt) {
                                    *a += gv * kv;
                                }
                            } else {
                                for ((a, gv), kv) in acc.iter_mut().zip(g.chunks_exact(m)).zip(kt.chunks_exact(m)) {
                                    let mut s = T::ZERO;
                                    for (&gv, &kv) in gv.iter().zip(kv) {
                                        s += gv * kv;
                                    }
                                    *a += s;
                                }
                            }
                        }
                    }
                }
            });
            dx
        }
    }

    crate::cpu::simd_fn! {
        /// Kernel gradient: fixed blocks of output rows in parallel, each summing its pixels in
        /// order into a partial `[kh, kw, c * m]`; the partials are then added in order.
        fn grad_kernel[T: Elem][T](x: &[T], dy: &[T], p: &DepthwiseConv2dParams) -> Vec<T> {
            let (q, m) = (&p.conv, p.m);
            let (c, o) = (q.c, q.o);
            let klen = q.kh * q.kw * o;
            let rows = q.n * q.oh;
            let per = GRAD_KERNEL_PIXELS.div_ceil(q.ow.max(1)).max(rows.div_ceil(GRAD_KERNEL_PARTS)).max(1);
            let parts: Vec<Vec<T>> = (0..rows.div_ceil(per))
                .into_par_iter()
                .map(|part| {
                    let mut dk = vec![T::ZERO; klen];
                    for row in part * per..((part + 1) * per).min(rows) {
                        let (b, oy) = (row / q.oh, row % q.oh);
                        let img = &x[b * q.h * q.w * c..];
                        let grow = &dy[row * q.ow * o..];
                        for ki in 0..q.kh {
                            let Some(iy) = src_pos(oy, ki, q.sh, q.dh, q.pt, q.h) else { continue };
                            for kj in 0..q.kw {
                                let dkt = &mut dk[(ki * q.kw + kj) * o..][..o];
                                for ox in 0..q.ow {
                                    let Some(ix) = src_pos(ox, kj, q.sw, q.dw, q.pl, q.w) else { continue };
                                    let xs = &img[(iy * q.w + ix) * c..][..c];
                                    let g = &grow[ox * o..][..o];
                                    if m == 1 {
                                        for ((d, &xv), &gv) in dkt.iter_mut().zip(xs).zip(g) {
                                            *d += xv * gv;
                                        }
                                    } else {
                                        for ((d, gv), &xv) in dkt.chunks_exact_mut(m).zip(g.chunks_exact(m)).zip(xs) {
                                            for (d, &gv) in d.iter_mut().zip(gv) {
                                                *d += xv * gv;
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    dk
                })
                .collect();
            let mut dk = vec![T::ZERO; klen];
            for part in parts {
                for (d, v) in dk.iter_mut().zip(part) {
                    *d += v;
                }
            }
            dk
        }
    }

    pub(crate) fn depthwise_conv2d(
        x: &CpuStorage,
        xl: &Layout,
        k: &CpuStorage,
        kl: &Layout,
        p: &DepthwiseConv2dParams,
    ) -> Result<CpuStorage> {
        Ok(float_pair!("depthwise_conv2d", x, xl, k, kl, |a, b| Ok::<_, Error>(fwd(&a, &b, p))))
    }

    pub(crate) fn depthwise_conv2d_grad_input(
        dy: &CpuStorage,
        dyl: &Layout,
        k: &CpuStorage,
        kl: &Layout,
        p: &DepthwiseConv2dParams,
    ) -> Result<CpuStorage> {
        Ok(float_pair!("depthwise_conv2d_grad_input", dy, dyl, k, kl, |a, b| Ok::<_, Error>(grad_input(&a, &b, p))))
    }

    pub(crate) fn depthwise_conv2d_grad_kernel(
        x: &CpuStorage,
        xl: &Layout,
        dy: &CpuStorage,
        dyl: &Layout,
        p: &DepthwiseConv2dParams,
    ) -> Result<CpuStorage> {
        Ok(float_pair!("depthwise_conv2d_grad_kernel", x, xl, dy, dyl, |a, b| Ok::<_, Error>(grad_kernel(&a, &b, p))))
    }
}
