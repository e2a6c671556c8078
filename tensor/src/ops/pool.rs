//! 2-D max and average pooling on NHWC data, forward and backward.
//!
//! Max pooling returns, with its output, the I64 flat index (into the
//! contiguous input) of each window's first maximum; its backward scatters the
//! output gradient to those positions. Average pooling with `same` padding
//! divides by the number of in-image positions in each window (Keras's rule).

use crate::ops::conv::{conv_out_dim, Padding};
use crate::storage::{dispatch1, dispatch2, BackendStorage};
use crate::{DType, Error, Result, Shape, Tensor};

/// The geometry of a 2-D pooling window over NHWC data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pool2dParams {
    /// Batch size.
    pub n: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Channels.
    pub c: usize,
    /// Window height.
    pub kh: usize,
    /// Window width.
    pub kw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Padding rows at the top.
    pub pt: usize,
    /// Padding columns at the left.
    pub pl: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

impl Pool2dParams {
    /// Geometry for input `[n, h, w, c]`, window `pool` and `strides`.
    pub fn new(
        op: &'static str,
        input: &Shape,
        pool: (usize, usize),
        strides: (usize, usize),
        padding: Padding,
    ) -> Result<Self> {
        let x = input.dims();
        if x.len() != 4 {
            return Err(Error::InvalidShape { op, shape: input.clone(), msg: "need NHWC input (rank 4)".into() });
        }
        let (oh, pt) = conv_out_dim(op, x[1], pool.0, strides.0, 1, padding)?;
        let (ow, pl) = conv_out_dim(op, x[2], pool.1, strides.1, 1, padding)?;
        Ok(Pool2dParams {
            n: x[0],
            h: x[1],
            w: x[2],
            c: x[3],
            kh: pool.0,
            kw: pool.1,
            sh: strides.0,
            sw: strides.1,
            pt,
            pl,
            oh,
            ow,
        })
    }

    /// The input shape `[n, h, w, c]`.
    pub fn in_shape(&self) -> Shape {
        Shape::from([self.n, self.h, self.w, self.c])
    }

    /// The output shape `[n, oh, ow, c]`.
    pub fn out_shape(&self) -> Shape {
        Shape::from([self.n, self.oh, self.ow, self.c])
    }

    /// The in-image input rows and columns under output position `(oy, ox)`.
    pub fn window(&self, oy: usize, ox: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let y0 = (oy * self.sh) as isize - self.pt as isize;
        let x0 = (ox * self.sw) as isize - self.pl as isize;
        let ys = y0.max(0) as usize..((y0 + self.kh as isize).max(0) as usize).min(self.h);
        let xs = x0.max(0) as usize..((x0 + self.kw as isize).max(0) as usize).min(self.w);
        (ys, xs)
    }
}

impl Tensor {
    /// Max pooling; returns `(output, argmax)` with `argmax` the I64 flat input index of each max.
    pub fn max_pool2d(
        &self,
        pool: (usize, usize),
        strides: (usize, usize),
        padding: Padding,
    ) -> Result<(Tensor, Tensor)> {
        let p = Pool2dParams::new("max_pool2d", self.shape(), pool, strides, padding)?;
        float_only("max_pool2d", self)?;
        let x = self.contiguous()?;
        let s = x.storage();
        let (out, idx) = match &*s {
            crate::Storage::Cpu(b) => {
                let (o, i) = b.max_pool2d(x.layout(), &p)?;
                (crate::Storage::Cpu(o), crate::Storage::Cpu(i))
            }
            crate::Storage::Cuda(b) => {
                let (o, i) = b.max_pool2d(x.layout(), &p)?;
                (crate::Storage::Cuda(o), crate::Storage::Cuda(i))
            }
        };
        Ok((Tensor::from_storage(out, p.out_shape()), Tensor::from_storage(idx, p.out_shape())))
    }

    /// Backward of max pooling: scatter `self` (the output gradient) to `argmax` positions.
    pub fn max_pool2d_grad(&self, argmax: &Tensor, p: &Pool2dParams) -> Result<Tensor> {
        float_only("max_pool2d_grad", self)?;
        if argmax.dtype() != DType::I64 {
            return Err(Error::UnsupportedDType {
                op: "max_pool2d_grad",
                dtype: argmax.dtype(),
                hint: "argmax must be I64",
            });
        }
        crate::ops::conv::check_shape("max_pool2d_grad", self, &p.out_shape())?;
        crate::ops::conv::check_shape("max_pool2d_grad", argmax, &p.out_shape())?;
        let (dy, idx) = (self.contiguous()?, argmax.contiguous()?);
        let (sd, si) = (dy.storage(), idx.storage());
        let out = dispatch2!("max_pool2d_grad", &*sd, &*si, |a, b| a.max_pool2d_grad(dy.layout(), b, idx.layout(), p))?;
        Ok(Tensor::from_storage(out, p.in_shape()))
    }

    /// Average pooling (padding excluded from each window's count).
    pub fn avg_pool2d(&self, pool: (usize, usize), strides: (usize, usize), padding: Padding) -> Result<Tensor> {
        let p = Pool2dParams::new("avg_pool2d", self.shape(), pool, strides, padding)?;
        float_only("avg_pool2d", self)?;
        let x = self.contiguous()?;
        let s = x.storage();
        let out = dispatch1!(&*s, |b| b.avg_pool2d(x.layout(), &p))?;
        Ok(Tensor::from_storage(out, p.out_shape()))
    }

    /// Backward of average pooling: `self` is the output gradient.
    pub fn avg_pool2d_grad(&self, p: &Pool2dParams) -> Result<Tensor> {
        float_only("avg_pool2d_grad", self)?;
        crate::ops::conv::check_shape("avg_pool2d_grad", self, &p.out_shape())?;
        let dy = self.contiguous()?;
        let s = dy.storage();
        let out = dispatch1!(&*s, |b| b.avg_pool2d_grad(dy.layout(), p))?;
        Ok(Tensor::from_storage(out, p.in_shape()))
    }
}

fn float_only(op: &'static str, t: &Tensor) -> Result<()> {
    if !t.dtype().is_float() {
        return Err(Error::UnsupportedDType { op, dtype: t.dtype(), hint: "cast to a float dtype first" });
    }
    Ok(())
}

#[cfg(feature = "cpu")]
pub(crate) mod cpu {
    use super::Pool2dParams;
    use crate::{CpuStorage, DType, Layout, Result};
    use rayon::prelude::*;
    use std::mem::MaybeUninit;

    fn as_f64(s: &CpuStorage, l: &Layout) -> Result<Vec<f64>> {
        let c = s.copy_strided(l)?;
        Ok((0..c.len()).filter_map(|i| c.get_f64(i)).collect())
    }

    fn out_of(v: Vec<f64>, dtype: DType) -> CpuStorage {
        CpuStorage::from_f64_iter(v.into_iter(), dtype)
    }

    /// Run `f` over every (image, output row) pair in parallel, each writing one output row.
    fn per_row<T: Send>(
        p: &Pool2dParams,
        width: usize,
        f: impl Fn(usize, usize, &mut [T]) + Sync + Send,
        out: &mut [T],
    ) {
        out.par_chunks_mut((p.ow * width).max(1))
            .enumerate()
            .for_each(|(r, chunk)| f(r / p.oh.max(1), r % p.oh.max(1), chunk));
    }

    /// Channels per vector step of the max-pool kernel.
    const LANES: usize = 8;

    /// Channels `ch..ch + L` of one max-pool window whose in-image pixels start
    /// at `bases` (flat offsets of channel 0): the first maximum (first NaN
    /// wins) and its flat index. The value and the winning pixel's offset are
    /// both chosen by branch-free selects, so the loop vectorizes.
    #[inline(always)]
    fn max_step<T: Copy + PartialOrd + Default, const L: usize>(
        x: &[T],
        bases: &[usize],
        ch: usize,
        cell: &mut [MaybeUninit<T>],
        icell: &mut [MaybeUninit<i64>],
    ) {
        let mut best = [T::default(); L];
        let mut at = [bases[0] as i64; L];
        best.copy_from_slice(&x[bases[0] + ch..bases[0] + ch + L]);
        for &base in &bases[1..] {
            let src = &x[base + ch..base + ch + L];
            for j in 0..L {
                let (v, cur) = (src[j], best[j]);
                #[allow(clippy::eq_op)]
                let take = (v > cur) | ((v != v) & (cur == cur));
                best[j] = if take { v } else { cur };
                at[j] = if take { base as i64 } else { at[j] };
            }
        }
        for j in 0..L {
            cell[j].write(best[j]);
            icell[j].write(at[j] + (ch + j) as i64);
        }
    }

    crate::cpu::simd_fn! {
        /// Max pooling over one float type; NaN wins (propagates), ties keep the first.
        ///
        /// Output rows in parallel; within a window, channels go 8 at a time
        /// ([`max_step`]); outputs are written once, never zero-filled first.
        fn max_typed[T: Copy + PartialOrd + Send + Sync + Default][T](x: &[T], p: &Pool2dParams) -> (Vec<T>, Vec<i64>) {
            let n_out = p.n * p.oh * p.ow * p.c;
            let (mut out, mut idx) = (Vec::with_capacity(n_out), Vec::with_capacity(n_out));
            let row = (p.ow * p.c).max(1);
            let (ospare, ispare) = (&mut out.spare_capacity_mut()[..n_out], &mut idx.spare_capacity_mut()[..n_out]);
            ospare.par_chunks_mut(row).zip(ispare.par_chunks_mut(row)).enumerate().for_each(|(r, (orow, irow))| {
                let (b, oy) = (r / p.oh.max(1), r % p.oh.max(1));
                let mut bases = Vec::with_capacity(p.kh * p.kw);
                for ox in 0..p.ow {
                    let (ys, xs) = p.window(oy, ox);
                    bases.clear();
                    for iy in ys {
                        bases.extend(xs.clone().map(|ix| ((b * p.h + iy) * p.w + ix) * p.c));
                    }
                    let cell = &mut orow[ox * p.c..(ox + 1) * p.c];
                    let icell = &mut irow[ox * p.c..(ox + 1) * p.c];
                    if bases.is_empty() {
                        cell.iter_mut().for_each(|v| {
                            v.write(T::default());
                        });
                        icell.iter_mut().for_each(|v| {
                            v.write(0);
                        });
                        continue;
                    }
                    let full = p.c / LANES * LANES;
                    for ch in (0..full).step_by(LANES) {
                        max_step::<T, LANES>(x, &bases, ch, &mut cell[ch..ch + LANES], &mut icell[ch..ch + LANES]);
                    }
                    for ch in full..p.c {
                        max_step::<T, 1>(x, &bases, ch, &mut cell[ch..ch + 1], &mut icell[ch..ch + 1]);
                    }
                }
            });
            // SAFETY: every output row's cells were written above (window or empty-window default).
            unsafe {
                out.set_len(n_out);
                idx.set_len(n_out);
            }
            (out, idx)
        }
    }

    pub(crate) fn max_pool2d(s: &CpuStorage, l: &Layout, p: &Pool2dParams) -> Result<(CpuStorage, CpuStorage)> {
        let (out, idx) = match (s, l.contiguous_range()) {
            (CpuStorage::F32(v), Some((a, e))) => {
                let (o, i) = max_typed(&v[a..e], p);
                (CpuStorage::F32(o), i)
            }
            (CpuStorage::F64(v), Some((a, e))) => {
                let (o, i) = max_typed(&v[a..e], p);
                (CpuStorage::F64(o), i)
            }
            _ => match s.copy_strided(l)? {
                CpuStorage::F32(v) => {
                    let (o, i) = max_typed(&v, p);
                    (CpuStorage::F32(o), i)
                }
                CpuStorage::F64(v) => {
                    let (o, i) = max_typed(&v, p);
                    (CpuStorage::F64(o), i)
                }
                other => {
                    // f16 / bf16: pool the widened values; the max is exactly representable again
                    let wide: Vec<f32> =
                        as_f64(&other, &Layout::contiguous(p.in_shape()))?.into_iter().map(|v| v as f32).collect();
                    let (o, i) = max_typed(&wide, p);
                    (CpuStorage::from_f64_iter(o.into_iter().map(|v| v as f64), other.dtype()), i)
                }
            },
        };
        Ok((out, CpuStorage::I64(idx)))
    }

    crate::cpu::simd_fn! {
        /// Max-pool backward for windows that do not overlap (stride >= window,
        /// the usual 2x2/2): every input value is written once, in order, as
        /// `g` of its window's output where that output's index points at it and
        /// 0 elsewhere; no zero-fill and scatter. `None` unless every index lies
        /// in its own window (counted while writing), so other index tensors
        /// keep the scatter's meaning and errors.
        fn gather_typed[T: Copy + Default + Send + Sync + std::ops::AddAssign][T](
            g: &[T],
            idx: &[i64],
            p: &Pool2dParams,
        ) -> Option<Vec<T>> {
            if p.sh < p.kh || p.sw < p.kw || idx.len() != p.n * p.oh * p.ow * p.c || g.len() != idx.len() {
                return None;
            }
            // the output row / column whose window covers each input row / column
            let cover = |size: usize, out: usize, window: &dyn Fn(usize) -> std::ops::Range<usize>| {
                let mut of = vec![usize::MAX; size];
                for o in 0..out {
                    for i in window(o) {
                        of[i] = o;
                    }
                }
                of
            };
            let oy_of = cover(p.h, p.oh, &|oy| p.window(oy, 0).0);
            let ox_of = cover(p.w, p.ow, &|ox| p.window(0, ox).1);
            let (img_in, img_out, c) = (p.h * p.w * p.c, p.oh * p.ow * p.c, p.c);
            let mut dx = Vec::with_capacity(p.n * img_in);
            let matched: usize = dx.spare_capacity_mut()[..p.n * img_in]
                .par_chunks_mut(img_in.max(1))
                .enumerate()
                .map(|(b, dimg)| {
                    let mut hits = 0usize;
                    for (iy, drow) in dimg.chunks_exact_mut(p.w * c).enumerate() {
                        for (ix, dpx) in drow.chunks_exact_mut(c).enumerate() {
                            let (oy, ox) = (oy_of[iy], ox_of[ix]);
                            if oy == usize::MAX || ox == usize::MAX {
                                dpx.iter_mut().for_each(|d| {
                                    d.write(T::default());
                                });
                                continue;
                            }
                            let o = b * img_out + (oy * p.ow + ox) * c;
                            let q = (b * img_in + (iy * p.w + ix) * c) as i64;
                            let mut n = 0u32;
                            for (((d, &id), &gv), want) in dpx.iter_mut().zip(&idx[o..o + c]).zip(&g[o..o + c]).zip(q..) {
                                let hit = id == want;
                                let mut v = T::default();
                                v += if hit { gv } else { T::default() };
                                d.write(v);
                                n += hit as u32;
                            }
                            hits += n as usize;
                        }
                    }
                    hits
                })
                .sum();
            if matched != idx.len() {
                return None;
            }
            // SAFETY: every input position of every image was written above.
            unsafe { dx.set_len(p.n * img_in) };
            Some(dx)
        }
    }

    /// `dx[idx[i]] += g[i]` in the gradient's own float type, images in
    /// parallel when every index lies in its own image (as pooling's do);
    /// each element still receives its contributions in order.
    fn scatter_typed<T: Copy + Default + Send + Sync + std::ops::AddAssign>(
        g: &[T],
        idx: &[i64],
        p: &Pool2dParams,
    ) -> Result<Vec<T>> {
        if let Some(dx) = gather_typed(g, idx, p) {
            return Ok(dx);
        }
        let n_in = p.n * p.h * p.w * p.c;
        let (img_in, img_out) = (p.h * p.w * p.c, p.oh * p.ow * p.c);
        if img_in > 0 && img_out > 0 && idx.len() == p.n * img_out {
            let mut dx = vec![T::default(); n_in];
            let ok = dx.par_chunks_mut(img_in).zip(idx.par_chunks(img_out)).zip(g.par_chunks(img_out)).enumerate().all(
                |(b, ((dimg, ids), gs))| {
                    let base = (b * img_in) as i64;
                    for (&i, &v) in ids.iter().zip(gs) {
                        match i.checked_sub(base).and_then(|d| usize::try_from(d).ok()).filter(|&j| j < img_in) {
                            Some(j) => dimg[j] += v,
                            None => return false,
                        }
                    }
                    true
                },
            );
            if ok {
                return Ok(dx);
            }
        }
        serial_scatter(g, idx, n_in)
    }

    fn serial_scatter<T: Copy + Default + std::ops::AddAssign>(g: &[T], idx: &[i64], n_in: usize) -> Result<Vec<T>> {
        let mut dx = vec![T::default(); n_in];
        for (&i, &v) in idx.iter().zip(g) {
            let i = usize::try_from(i).ok().filter(|&i| i < n_in).ok_or(crate::Error::IndexOutOfRange {
                op: "max_pool2d_grad",
                index: i,
                size: n_in,
            })?;
            dx[i] += v;
        }
        Ok(dx)
    }

    pub(crate) fn max_pool2d_grad(
        dy: &CpuStorage,
        dyl: &Layout,
        idx: &CpuStorage,
        il: &Layout,
        p: &Pool2dParams,
    ) -> Result<CpuStorage> {
        let idx_owned;
        let idx: &[i64] = match (idx, il.contiguous_range()) {
            (CpuStorage::I64(v), Some((a, e))) => &v[a..e],
            _ => match idx.copy_strided(il)? {
                CpuStorage::I64(v) => {
                    idx_owned = v;
                    &idx_owned
                }
                other => {
                    return Err(crate::Error::UnsupportedDType {
                        op: "max_pool2d_grad",
                        dtype: other.dtype(),
                        hint: "argmax must be I64",
                    })
                }
            },
        };
        match (dy, dyl.contiguous_range()) {
            (CpuStorage::F32(v), Some((a, e))) => return Ok(CpuStorage::F32(scatter_typed(&v[a..e], idx, p)?)),
            (CpuStorage::F64(v), Some((a, e))) => return Ok(CpuStorage::F64(scatter_typed(&v[a..e], idx, p)?)),
            _ => {}
        }
        let g = as_f64(dy, dyl)?;
        Ok(out_of(scatter_typed(&g, idx, p)?, dy.dtype()))
    }

    pub(crate) fn avg_pool2d(s: &CpuStorage, l: &Layout, p: &Pool2dParams) -> Result<CpuStorage> {
        let x = as_f64(s, l)?;
        let mut out = vec![0.0f64; p.n * p.oh * p.ow * p.c];
        per_row(
            p,
            p.c,
            |b, oy, row| {
                for ox in 0..p.ow {
                    let (ys, xs) = p.window(oy, ox);
                    let count = (ys.len() * xs.len()).max(1) as f64;
                    let cell = &mut row[ox * p.c..(ox + 1) * p.c];
                    for iy in ys.clone() {
                        for ix in xs.clone() {
                            let base = ((b * p.h + iy) * p.w + ix) * p.c;
                            for (ch, o) in cell.iter_mut().enumerate() {
                                *o += x[base + ch];
                            }
                        }
                    }
                    cell.iter_mut().for_each(|o| *o /= count);
                }
            },
            &mut out,
        );
        Ok(out_of(out, s.dtype()))
    }

    pub(crate) fn avg_pool2d_grad(dy: &CpuStorage, dyl: &Layout, p: &Pool2dParams) -> Result<CpuStorage> {
        let g = as_f64(dy, dyl)?;
        let img = p.h * p.w * p.c;
        let mut dx = vec![0.0f64; p.n * img];
        dx.par_chunks_mut(img.max(1)).enumerate().for_each(|(b, dimg)| {
            for oy in 0..p.oh {
                for ox in 0..p.ow {
                    let (ys, xs) = p.window(oy, ox);
                    let count = (ys.len() * xs.len()).max(1) as f64;
                    let go = &g[((b * p.oh + oy) * p.ow + ox) * p.c..][..p.c];
                    for iy in ys.clone() {
                        for ix in xs.clone() {
                            let d = &mut dimg[(iy * p.w + ix) * p.c..][..p.c];
                            for (dv, &gv) in d.iter_mut().zip(go) {
                                *dv += gv / count;
                            }
                        }
                    }
                }
            }
        });
        Ok(out_of(dx, dy.dtype()))
    }
}
