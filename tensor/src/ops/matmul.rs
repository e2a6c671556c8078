//! Matrix multiplication: 2-D and batched, with NumPy broadcasting of the batch
//! dimensions. The CPU path is a blocked, multi-threaded GEMM (the `gemm` crate)
//! that reads strided (e.g. transposed) operands without copying them; F16/BF16
//! operands are widened to f32, multiplied with f32 accumulation, and narrowed back.

use crate::storage::{dispatch2, BackendStorage};
use crate::{Error, Layout, Result, Shape, Tensor};

impl Tensor {
    /// Matrix product of the last two dims; leading (batch) dims broadcast.
    ///
    /// `[m, k] x [k, n] -> [m, n]`, `[b, m, k] x [k, n] -> [b, m, n]`,
    /// `[b, m, k] x [b, k, n] -> [b, m, n]`, and so on for higher ranks.
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        let (a3, b3, out_dims) = self.matmul_operands(rhs)?;
        let (sa, sb) = (a3.storage(), b3.storage());
        let out = dispatch2!("matmul", &*sa, &*sb, |x, y| x.matmul(a3.layout(), y, b3.layout()))?;
        Ok(Tensor::from_storage(out, out_dims))
    }

    /// `self.matmul(rhs) + bias` (a Dense layer's logits) with `bias` `[n]`: the
    /// same bits as the two ops, which is what runs where no fused kernel
    /// exists (the CPU). CUDA adds the bias in the GEMM's epilogue (one launch,
    /// no intermediate tensor; F16/BF16 to the product rounded to their type).
    pub fn matmul_bias(&self, rhs: &Tensor, bias: &Tensor) -> Result<Tensor> {
        self.matmul_bias_act(rhs, bias, false)
    }

    /// `relu(self.matmul(rhs) + bias)` (a Dense layer with ReLU) with `bias`
    /// `[n]`: the same bits as [`Tensor::matmul`] then [`Tensor::binary_unary`]
    /// (add, relu), which is what runs where no fused kernel exists (the CPU,
    /// in one pass after the matmul). CUDA applies bias and ReLU in the GEMM's
    /// epilogue.
    pub fn matmul_bias_relu(&self, rhs: &Tensor, bias: &Tensor) -> Result<Tensor> {
        self.matmul_bias_act(rhs, bias, true)
    }

    fn matmul_bias_act(&self, rhs: &Tensor, bias: &Tensor, relu: bool) -> Result<Tensor> {
        let op = if relu { "matmul_bias_relu" } else { "matmul_bias" };
        let (a3, b3, out_dims) = self.matmul_operands(rhs)?;
        let n = out_dims[out_dims.len() - 1];
        if bias.dims() != [n] {
            return Err(Error::shape_mismatch(op, rhs.shape(), bias.shape(), format!("the bias must be [{n}]")));
        }
        if bias.dtype() != self.dtype() {
            return Err(Error::DTypeMismatch { op, lhs: self.dtype(), rhs: bias.dtype() });
        }
        let fused = {
            let (sa, sb, sc) = (a3.storage(), b3.storage(), bias.storage());
            match (&*sa, &*sb, &*sc) {
                #[cfg(feature = "cuda")]
                (crate::Storage::Cuda(x), crate::Storage::Cuda(y), crate::Storage::Cuda(c)) => {
                    crate::cuda::matmul::matmul_bias(x, a3.layout(), y, b3.layout(), (c, bias.layout()), relu)?
                        .map(crate::Storage::Cuda)
                }
                _ => None,
            }
        };
        if let Some(out) = fused {
            return Ok(Tensor::from_storage(out, out_dims));
        }
        let y = self.matmul(rhs)?;
        match relu {
            true => y.binary_unary(bias, crate::BinaryOp::Add, crate::UnaryOp::Relu, 0.0),
            false => y.add(bias),
        }
    }

    /// The checked operands of `self.matmul(rhs)` as `[b, m, k]` and `[b, k, n]`
    /// views, and the output's dims.
    fn matmul_operands(&self, rhs: &Tensor) -> Result<(Tensor, Tensor, Vec<usize>)> {
        if self.dtype() != rhs.dtype() {
            return Err(Error::DTypeMismatch { op: "matmul", lhs: self.dtype(), rhs: rhs.dtype() });
        }
        if self.rank() < 2 || rhs.rank() < 2 {
            return Err(Error::shape_mismatch("matmul", self.shape(), rhs.shape(), "both operands need rank >= 2"));
        }
        let (ad, bd) = (self.dims(), rhs.dims());
        let (m, k) = (ad[ad.len() - 2], ad[ad.len() - 1]);
        let (k2, n) = (bd[bd.len() - 2], bd[bd.len() - 1]);
        if k != k2 {
            return Err(Error::shape_mismatch("matmul", self.shape(), rhs.shape(), format!("inner dims {k} != {k2}")));
        }
        let batch_a = Shape::from(&ad[..ad.len() - 2]);
        let batch_b = Shape::from(&bd[..bd.len() - 2]);
        let batch = Shape::broadcast("matmul", &batch_a, &batch_b)
            .map_err(|_| Error::shape_mismatch("matmul", self.shape(), rhs.shape(), "batch dims do not broadcast"))?;
        let b: usize = batch.elem_count();
        let mut a_full = batch.dims().to_vec();
        a_full.extend([m, k]);
        let mut b_full = batch.dims().to_vec();
        b_full.extend([k, n]);
        let a3 = to_batched(&self.broadcast_to(a_full)?, b, m, k)?;
        let b3 = to_batched(&rhs.broadcast_to(b_full)?, b, k, n)?;
        let mut out_dims = batch.dims().to_vec();
        out_dims.extend([m, n]);
        Ok((a3, b3, out_dims))
    }
}

/// View `t` (shape `[batch..., r, c]`) as `[b, r, c]`, copying only when the batch
/// dims cannot be merged into one stride.
fn to_batched(t: &Tensor, b: usize, r: usize, c: usize) -> Result<Tensor> {
    let l = t.layout();
    let rank = l.dims().len();
    let (rs, cs) = (l.strides()[rank - 2], l.strides()[rank - 1]);
    let bdims = &l.dims()[..rank - 2];
    let bstrides = &l.strides()[..rank - 2];
    // batch dims merge when each stride equals the next stride times the next dim (ignoring size-1 dims)
    let live: Vec<(usize, usize)> =
        bdims.iter().zip(bstrides).filter(|(&d, _)| d != 1).map(|(&d, &s)| (d, s)).collect();
    let mergeable = live.windows(2).all(|w| w[0].1 == w[1].1 * w[1].0);
    if mergeable {
        let bstride = live.last().map(|&(_, s)| s).unwrap_or(0);
        return Ok(t.with_layout(Layout::new(Shape::from([b, r, c]), vec![bstride, rs, cs], l.offset())));
    }
    t.contiguous()?.reshape([b, r, c])
}

#[cfg(feature = "cpu")]
pub(crate) mod cpu {
    use crate::{CpuStorage, Error, Layout, Result};
    use half::{bf16, f16};
    use rayon::prelude::*;

    /// Element types the blocked GEMM handles natively.
    pub(crate) trait GemmElem: Copy + Send + Sync + std::ops::AddAssign + 'static {
        const ZERO: Self;
        const ONE: Self;
    }
    impl GemmElem for f32 {
        const ZERO: f32 = 0.0;
        const ONE: f32 = 1.0;
    }
    impl GemmElem for f64 {
        const ZERO: f64 = 0.0;
        const ONE: f64 = 1.0;
    }

    /// One strided matrix operand: base slice, offset of element (0, 0), row and column strides.
    #[derive(Clone, Copy)]
    pub(crate) struct MatRef<'a, T> {
        pub data: &'a [T],
        pub offset: usize,
        pub rs: usize,
        pub cs: usize,
    }

    impl<T> MatRef<'_, T> {
        /// The largest storage index this `rows x cols` view touches, if any.
        fn max_index(&self, rows: usize, cols: usize) -> usize {
            self.offset + rows.saturating_sub(1) * self.rs + cols.saturating_sub(1) * self.cs
        }
    }

    /// Below this many multiply-adds a GEMM runs on the calling thread.
    const PAR_MIN_FMAS: usize = 1 << 18;
    /// Target number of blocks a threaded GEMM is cut into (fixed, so the
    /// blocks — and the bits of every result — do not depend on the thread count).
    const PAR_BLOCKS: usize = 16;

    /// The block length when splitting `len` into about [`PAR_BLOCKS`] pieces of
    /// at least `min`, rounded up to a multiple of `align`.
    fn block_len(len: usize, min: usize, align: usize) -> usize {
        len.div_ceil(PAR_BLOCKS).max(min).div_ceil(align) * align
    }

    /// A raw output pointer that rayon tasks may share; each task writes a disjoint block.
    #[derive(Clone, Copy)]
    struct SendPtr<T>(*mut T);
    // SAFETY: used only to hand disjoint output blocks to rayon tasks (see `gemm_into`).
    unsafe impl<T> Send for SendPtr<T> {}
    unsafe impl<T> Sync for SendPtr<T> {}

    impl<T> SendPtr<T> {
        /// The pointer (a method, so closures capture the whole `Send` wrapper).
        #[inline]
        fn get(self) -> *mut T {
            self.0
        }
    }

    /// One single-threaded `gemm` call on raw operands.
    ///
    /// # Safety
    /// `dst` must be valid for writes of an `m x n` block with row stride `dst_rs`
    /// (column stride 1), and `a`/`b` for reads of their `m x k` / `k x n` views.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw<T: GemmElem>(
        dst: *mut T,
        dst_rs: usize,
        a: *const T,
        a_rs: usize,
        a_cs: usize,
        b: *const T,
        b_rs: usize,
        b_cs: usize,
        m: usize,
        n: usize,
        k: usize,
        accumulate: bool,
    ) {
        // SAFETY: the caller guarantees the views are in bounds (see above).
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst,
                1,
                dst_rs as isize,
                accumulate,
                a,
                a_cs as isize,
                a_rs as isize,
                b,
                b_cs as isize,
                b_rs as isize,
                T::ONE,
                T::ONE,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        };
    }

    /// `dst (m x n, row-major, contiguous) = (accumulate ? dst : 0) + a (m x k) * b (k x n)`.
    ///
    /// With `threads`, a large product is cut into fixed blocks run on rayon:
    /// row blocks when `m` is large, column blocks when `n` is, else blocks of
    /// the inner dim `k` whose partial products are added in block order. The
    /// cut depends only on the shape, so the result is the same bits on any
    /// number of threads.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn gemm_into<T: GemmElem>(
        dst: &mut [T],
        a: MatRef<'_, T>,
        b: MatRef<'_, T>,
        m: usize,
        n: usize,
        k: usize,
        accumulate: bool,
        threads: bool,
    ) -> Result<()> {
        if dst.len() < m * n {
            return Err(Error::invalid("matmul", "output buffer too small"));
        }
        check_views(&a, &b, m, n, k)?;
        // SAFETY: dst holds m*n initialized elements, exclusively borrowed; views checked.
        unsafe { gemm_ptr(dst.as_mut_ptr(), a, b, m, n, k, accumulate, threads) };
        Ok(())
    }

    /// A new row-major `m x n` vector `a * b`, written in place by the GEMM
    /// (no zero-fill first). `threads` as in [`gemm_into`].
    pub(crate) fn gemm_new<T: GemmElem>(
        a: MatRef<'_, T>,
        b: MatRef<'_, T>,
        m: usize,
        n: usize,
        k: usize,
        threads: bool,
    ) -> Result<Vec<T>> {
        check_views(&a, &b, m, n, k)?;
        let mut out = Vec::with_capacity(m * n);
        // SAFETY: the spare capacity holds m*n elements; `gemm_ptr` with
        // `accumulate = false` writes every one of them before `set_len`.
        unsafe {
            gemm_ptr(out.spare_capacity_mut().as_mut_ptr().cast::<T>(), a, b, m, n, k, false, threads);
            out.set_len(m * n);
        }
        Ok(out)
    }

    fn check_views<T>(a: &MatRef<'_, T>, b: &MatRef<'_, T>, m: usize, n: usize, k: usize) -> Result<()> {
        if (m > 0 && k > 0 && a.max_index(m, k) >= a.data.len())
            || (k > 0 && n > 0 && b.max_index(k, n) >= b.data.len())
        {
            return Err(Error::invalid("matmul", "operand view exceeds its storage"));
        }
        Ok(())
    }

    /// The body of [`gemm_into`] on a raw output pointer.
    ///
    /// # Safety
    /// `dst` must be valid for writes of `m * n` elements (and initialized when
    /// `accumulate`); the operand views must be in bounds ([`check_views`]).
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_ptr<T: GemmElem>(
        dst: *mut T,
        a: MatRef<'_, T>,
        b: MatRef<'_, T>,
        m: usize,
        n: usize,
        k: usize,
        accumulate: bool,
        threads: bool,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            if !accumulate {
                for i in 0..m * n {
                    // SAFETY: i < m*n, inside the caller's buffer.
                    unsafe { dst.add(i).write(T::ZERO) };
                }
            }
            return;
        }
        let (pa, pb) = (a.data.as_ptr().wrapping_add(a.offset), b.data.as_ptr().wrapping_add(b.offset));
        let (pa, pb) = (SendPtr(pa as *mut T), SendPtr(pb as *mut T));
        let out = SendPtr(dst);
        let serial = !threads || m * n * k < PAR_MIN_FMAS;
        // SAFETY (every call below): the operand views were bounds-checked
        // against their slices above; each block reads a sub-view of them and
        // writes its own disjoint block of `dst` (m*n contiguous elements,
        // exclusively borrowed), or its own partial buffer.
        if serial {
            unsafe { gemm_raw(out.get(), n, pa.get(), a.rs, a.cs, pb.get(), b.rs, b.cs, m, n, k, accumulate) };
        } else if m >= 64 && m >= n {
            let rows = block_len(m, 32, 16);
            (0..m.div_ceil(rows)).into_par_iter().for_each(|i| {
                let (r0, r) = (i * rows, rows.min(m - i * rows));
                let (out, pa) = (out, pa);
                unsafe {
                    gemm_raw(
                        out.get().add(r0 * n),
                        n,
                        pa.get().add(r0 * a.rs),
                        a.rs,
                        a.cs,
                        pb.get(),
                        b.rs,
                        b.cs,
                        r,
                        n,
                        k,
                        accumulate,
                    )
                };
            });
        } else if n >= 64 {
            let cols = block_len(n, 32, 16);
            (0..n.div_ceil(cols)).into_par_iter().for_each(|j| {
                let (c0, c) = (j * cols, cols.min(n - j * cols));
                let (out, pb) = (out, pb);
                unsafe {
                    gemm_raw(
                        out.get().add(c0),
                        n,
                        pa.get(),
                        a.rs,
                        a.cs,
                        pb.get().add(c0 * b.cs),
                        b.rs,
                        b.cs,
                        m,
                        c,
                        k,
                        accumulate,
                    )
                };
            });
        } else if k >= 2048 {
            let depth = block_len(k, 1024, 64);
            let parts: Vec<Vec<T>> = (0..k.div_ceil(depth))
                .into_par_iter()
                .map(|p| {
                    let (k0, kk) = (p * depth, depth.min(k - p * depth));
                    let mut part = vec![T::ZERO; m * n];
                    let (pa, pb) = (pa, pb);
                    unsafe {
                        gemm_raw(
                            part.as_mut_ptr(),
                            n,
                            pa.get().add(k0 * a.cs),
                            a.rs,
                            a.cs,
                            pb.get().add(k0 * b.rs),
                            b.rs,
                            b.cs,
                            m,
                            n,
                            kk,
                            false,
                        )
                    };
                    part
                })
                .collect();
            for (i, part) in parts.iter().enumerate() {
                if i == 0 && !accumulate {
                    // SAFETY: part has m*n elements; dst is valid for m*n writes.
                    unsafe { std::ptr::copy_nonoverlapping(part.as_ptr(), dst, m * n) };
                    continue;
                }
                // SAFETY: dst now holds m*n initialized elements.
                let d = unsafe { std::slice::from_raw_parts_mut(dst, m * n) };
                for (d, &p) in d.iter_mut().zip(part) {
                    *d += p;
                }
            }
        } else {
            unsafe { gemm_raw(out.get(), n, pa.get(), a.rs, a.cs, pb.get(), b.rs, b.cs, m, n, k, accumulate) };
        }
    }

    fn batched<T: GemmElem>(a: &[T], al: &Layout, b: &[T], bl: &Layout) -> Result<Vec<T>> {
        let (bs, m, k) = (al.dims()[0], al.dims()[1], al.dims()[2]);
        let n = bl.dims()[2];
        let mat = |i: usize| {
            let ma =
                MatRef { data: a, offset: al.offset() + i * al.strides()[0], rs: al.strides()[1], cs: al.strides()[2] };
            let mb =
                MatRef { data: b, offset: bl.offset() + i * bl.strides()[0], rs: bl.strides()[1], cs: bl.strides()[2] };
            (ma, mb)
        };
        if bs == 1 {
            let (ma, mb) = mat(0);
            return gemm_new(ma, mb, m, n, k, true);
        }
        let mut out = vec![T::ZERO; bs * m * n];
        if m * n == 0 {
            return Ok(out);
        }
        let op = |i: usize, dst: &mut [T], threads: bool| {
            let (ma, mb) = mat(i);
            gemm_into(dst, ma, mb, m, n, k, false, threads)
        };
        if m * n * k < 256 * 256 * 256 {
            out.par_chunks_mut(m * n).enumerate().try_for_each(|(i, dst)| op(i, dst, false))?;
        } else {
            for (i, dst) in out.chunks_mut(m * n).enumerate() {
                op(i, dst, true)?;
            }
        }
        Ok(out)
    }

    pub(crate) fn matmul(a: &CpuStorage, al: &Layout, b: &CpuStorage, bl: &Layout) -> Result<CpuStorage> {
        Ok(match (a, b) {
            (CpuStorage::F32(x), CpuStorage::F32(y)) => CpuStorage::F32(batched(x, al, y, bl)?),
            (CpuStorage::F64(x), CpuStorage::F64(y)) => CpuStorage::F64(batched(x, al, y, bl)?),
            (CpuStorage::F16(x), CpuStorage::F16(y)) => {
                let (x, y) = (widen(x, |v| v.to_f32()), widen(y, |v| v.to_f32()));
                CpuStorage::F16(batched(&x, al, &y, bl)?.into_iter().map(f16::from_f32).collect())
            }
            (CpuStorage::BF16(x), CpuStorage::BF16(y)) => {
                let (x, y) = (widen(x, |v| v.to_f32()), widen(y, |v| v.to_f32()));
                CpuStorage::BF16(batched(&x, al, &y, bl)?.into_iter().map(bf16::from_f32).collect())
            }
            (x, _) => {
                return Err(Error::UnsupportedDType {
                    op: "matmul",
                    dtype: x.dtype(),
                    hint: "cast to a float dtype first",
                })
            }
        })
    }

    fn widen<T: Copy + Sync>(v: &[T], f: impl Fn(T) -> f32 + Sync + Send) -> Vec<f32> {
        v.par_iter().map(|&x| f(x)).collect()
    }
}
