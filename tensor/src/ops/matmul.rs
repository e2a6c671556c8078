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
        let (sa, sb) = (a3.storage(), b3.storage());
        let out = dispatch2!("matmul", &*sa, &*sb, |x, y| x.matmul(a3.layout(), y, b3.layout()))?;
        let mut out_dims = batch.dims().to_vec();
        out_dims.extend([m, n]);
        Ok(Tensor::from_storage(out, out_dims))
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

    /// `dst (m x n, row-major, contiguous) = (accumulate ? dst : 0) + a (m x k) * b (k x n)`.
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
        if dst.len() < m * n
            || (m > 0 && k > 0 && a.max_index(m, k) >= a.data.len())
            || (k > 0 && n > 0 && b.max_index(k, n) >= b.data.len())
        {
            return Err(Error::invalid("matmul", "operand view exceeds its storage"));
        }
        if m == 0 || n == 0 {
            return Ok(());
        }
        if k == 0 {
            if !accumulate {
                dst[..m * n].iter_mut().for_each(|x| *x = T::ZERO);
            }
            return Ok(());
        }
        let par =
            if threads && m * n * k >= 64 * 64 * 64 { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
        // SAFETY: every index the kernel reads is bounded by `max_index`, checked
        // above against the slice lengths; dst holds m*n contiguous elements and
        // is exclusively borrowed.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst.as_mut_ptr(),
                1,
                n as isize,
                accumulate,
                a.data.as_ptr().add(a.offset),
                a.cs as isize,
                a.rs as isize,
                b.data.as_ptr().add(b.offset),
                b.cs as isize,
                b.rs as isize,
                T::ONE,
                T::ONE,
                false,
                false,
                false,
                par,
            );
        }
        Ok(())
    }

    fn batched<T: GemmElem>(a: &[T], al: &Layout, b: &[T], bl: &Layout) -> Result<Vec<T>> {
        let (bs, m, k) = (al.dims()[0], al.dims()[1], al.dims()[2]);
        let n = bl.dims()[2];
        let mut out = vec![T::ZERO; bs * m * n];
        if m * n == 0 {
            return Ok(out);
        }
        let op = |i: usize, dst: &mut [T], threads: bool| {
            let ma =
                MatRef { data: a, offset: al.offset() + i * al.strides()[0], rs: al.strides()[1], cs: al.strides()[2] };
            let mb =
                MatRef { data: b, offset: bl.offset() + i * bl.strides()[0], rs: bl.strides()[1], cs: bl.strides()[2] };
            gemm_into(dst, ma, mb, m, n, k, false, threads)
        };
        if bs > 1 && m * n * k < 256 * 256 * 256 {
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
