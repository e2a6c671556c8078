//! The CPU backend: strided iteration helpers and the [`BackendStorage`] impl for
//! [`CpuStorage`]. The kernels themselves live with their op family in `ops/`.

use crate::{CpuStorage, Layout};
#[cfg(feature = "cpu")]
use rayon::prelude::*;

/// Above this many elements, elementwise CPU loops split across rayon threads.
#[cfg(feature = "cpu")]
const PAR_THRESHOLD: usize = 1 << 15;

/// Visit the storage offsets of `K` same-shaped layouts together, in row-major order.
pub(crate) fn walk<const K: usize>(layouts: [&Layout; K], mut f: impl FnMut([usize; K])) {
    let dims = layouts[0].dims();
    let n: usize = dims.iter().product();
    if n == 0 {
        return;
    }
    let rank = dims.len();
    let mut base: [usize; K] = std::array::from_fn(|i| layouts[i].offset());
    if rank == 0 {
        f(base);
        return;
    }
    let inner = dims[rank - 1];
    let inner_strides: [usize; K] = std::array::from_fn(|i| layouts[i].strides()[rank - 1]);
    let mut idx = vec![0usize; rank - 1];
    loop {
        let mut o = base;
        for _ in 0..inner {
            f(o);
            for i in 0..K {
                o[i] += inner_strides[i];
            }
        }
        let mut d = rank - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            for i in 0..K {
                base[i] += layouts[i].strides()[d];
            }
            if idx[d] < dims[d] {
                break;
            }
            for i in 0..K {
                base[i] -= layouts[i].strides()[d] * dims[d];
            }
            idx[d] = 0;
        }
    }
}

/// `f` over every element of `src` viewed through `l`, into a new row-major vector.
pub(crate) fn map1<T: Copy + Send + Sync, U: Send>(src: &[T], l: &Layout, f: impl Fn(T) -> U + Sync + Send) -> Vec<U> {
    if let Some((s, e)) = l.contiguous_range() {
        #[cfg(feature = "cpu")]
        if e - s >= PAR_THRESHOLD {
            return src[s..e].par_iter().map(|&x| f(x)).collect();
        }
        return src[s..e].iter().map(|&x| f(x)).collect();
    }
    let mut out = Vec::with_capacity(l.shape().elem_count());
    walk([l], |[o]| out.push(f(src[o])));
    out
}

/// `f` over pairs of elements of two same-shaped views, into a new row-major vector.
pub(crate) fn map2<A: Copy + Send + Sync, B: Copy + Send + Sync, U: Send>(
    a: &[A],
    al: &Layout,
    b: &[B],
    bl: &Layout,
    f: impl Fn(A, B) -> U + Sync + Send,
) -> Vec<U> {
    if let (Some((s1, e1)), Some((s2, e2))) = (al.contiguous_range(), bl.contiguous_range()) {
        let (a, b) = (&a[s1..e1], &b[s2..e2]);
        #[cfg(feature = "cpu")]
        if a.len() >= PAR_THRESHOLD {
            return a.par_iter().zip(b.par_iter()).map(|(&x, &y)| f(x, y)).collect();
        }
        return a.iter().zip(b.iter()).map(|(&x, &y)| f(x, y)).collect();
    }
    let mut out = Vec::with_capacity(al.shape().elem_count());
    walk([al, bl], |[i, j]| out.push(f(a[i], b[j])));
    out
}

/// `f` over triples of elements of three same-shaped views, into a new row-major vector.
pub(crate) fn map3<A: Copy, B: Copy, C: Copy, U>(
    a: &[A],
    al: &Layout,
    b: &[B],
    bl: &Layout,
    c: &[C],
    cl: &Layout,
    f: impl Fn(A, B, C) -> U,
) -> Vec<U> {
    let mut out = Vec::with_capacity(al.shape().elem_count());
    walk([al, bl, cl], |[i, j, k]| out.push(f(a[i], b[j], c[k])));
    out
}

/// Host-side copies work in every build (they need no compute kernels).
impl CpuStorage {
    /// A contiguous copy of the elements that `l` selects.
    pub fn copy_strided(&self, l: &Layout) -> crate::Result<CpuStorage> {
        Ok(crate::map_cpu_storage!(self, v => match l.contiguous_range() {
            Some((s, e)) => v[s..e].to_vec(),
            None => {
                let mut out = Vec::with_capacity(l.shape().elem_count());
                walk([l], |[o]| out.push(v[o]));
                out
            }
        }))
    }
}

#[cfg(feature = "cpu")]
mod backend {
    use crate::ops::{self, BinaryOp, CmpOp, Conv2dParams, Pool2dParams, ReduceOp, UnaryOp};
    use crate::storage::BackendStorage;
    use crate::{CpuStorage, DType, Device, Layout, Result};

    impl BackendStorage for CpuStorage {
        const BACKEND: &'static str = "cpu";

        fn dtype(&self) -> DType {
            CpuStorage::dtype(self)
        }
        fn device(&self) -> Device {
            Device::Cpu
        }
        fn unary(&self, l: &Layout, op: UnaryOp, param: f64) -> Result<Self> {
            ops::unary::cpu::unary(self, l, op, param)
        }
        fn unary_grad(&self, l: &Layout, g: &Self, gl: &Layout, op: UnaryOp, param: f64) -> Result<Self> {
            ops::unary::cpu::unary_grad(self, l, g, gl, op, param)
        }
        fn binary(&self, l: &Layout, rhs: &Self, rl: &Layout, op: BinaryOp) -> Result<Self> {
            ops::binary::cpu::binary(self, l, rhs, rl, op)
        }
        fn binary_grad(
            &self,
            l: &Layout,
            rhs: &Self,
            rl: &Layout,
            g: &Self,
            gl: &Layout,
            op: BinaryOp,
            wrt_rhs: bool,
        ) -> Result<Self> {
            ops::binary::cpu::binary_grad(self, l, rhs, rl, g, gl, op, wrt_rhs)
        }
        fn cmp(&self, l: &Layout, rhs: &Self, rl: &Layout, op: CmpOp) -> Result<Self> {
            ops::binary::cpu::cmp(self, l, rhs, rl, op)
        }
        fn where_cond(&self, l: &Layout, t: &Self, tl: &Layout, f: &Self, fl: &Layout) -> Result<Self> {
            ops::binary::cpu::where_cond(self, l, t, tl, f, fl)
        }
        fn reduce(&self, l: &Layout, op: ReduceOp, size: usize) -> Result<Self> {
            ops::reduce::cpu::reduce(self, l, op, size)
        }
        fn softmax_last(&self, l: &Layout, size: usize, log: bool) -> Result<Self> {
            ops::reduce::cpu::softmax_last(self, l, size, log)
        }
        fn matmul(&self, l: &Layout, rhs: &Self, rl: &Layout) -> Result<Self> {
            ops::matmul::cpu::matmul(self, l, rhs, rl)
        }
        fn conv2d(&self, l: &Layout, k: &Self, kl: &Layout, p: &Conv2dParams) -> Result<Self> {
            ops::conv::cpu::conv2d(self, l, k, kl, p)
        }
        fn conv2d_grad_input(&self, l: &Layout, k: &Self, kl: &Layout, p: &Conv2dParams) -> Result<Self> {
            ops::conv::cpu::conv2d_grad_input(self, l, k, kl, p)
        }
        fn conv2d_grad_kernel(&self, l: &Layout, dy: &Self, dyl: &Layout, p: &Conv2dParams) -> Result<Self> {
            ops::conv::cpu::conv2d_grad_kernel(self, l, dy, dyl, p)
        }
        fn max_pool2d(&self, l: &Layout, p: &Pool2dParams) -> Result<(Self, Self)> {
            ops::pool::cpu::max_pool2d(self, l, p)
        }
        fn max_pool2d_grad(&self, l: &Layout, idx: &Self, il: &Layout, p: &Pool2dParams) -> Result<Self> {
            ops::pool::cpu::max_pool2d_grad(self, l, idx, il, p)
        }
        fn avg_pool2d(&self, l: &Layout, p: &Pool2dParams) -> Result<Self> {
            ops::pool::cpu::avg_pool2d(self, l, p)
        }
        fn avg_pool2d_grad(&self, l: &Layout, p: &Pool2dParams) -> Result<Self> {
            ops::pool::cpu::avg_pool2d_grad(self, l, p)
        }
        fn index_select(&self, l: &Layout, idx: &Self, il: &Layout, axis: usize) -> Result<Self> {
            ops::index::cpu::index_select(self, l, idx, il, axis)
        }
        fn index_add(&self, l: &Layout, idx: &Self, il: &Layout, axis: usize, dims: &[usize]) -> Result<Self> {
            ops::index::cpu::index_add(self, l, idx, il, axis, dims)
        }
        fn gather(&self, l: &Layout, idx: &Self, il: &Layout, axis: usize) -> Result<Self> {
            ops::index::cpu::gather(self, l, idx, il, axis)
        }
        fn scatter_add(&self, l: &Layout, idx: &Self, il: &Layout, axis: usize, dims: &[usize]) -> Result<Self> {
            ops::index::cpu::scatter_add(self, l, idx, il, axis, dims)
        }
        fn concat(parts: &[(&Self, &Layout)], axis: usize) -> Result<Self> {
            CpuStorage::concat(parts, axis)
        }
        fn copy_strided(&self, l: &Layout) -> Result<Self> {
            CpuStorage::copy_strided(self, l)
        }
        fn to_dtype(&self, l: &Layout, dtype: DType) -> Result<Self> {
            ops::cast::cpu_to_dtype(self, l, dtype)
        }
    }
}

#[cfg(not(feature = "cpu"))]
impl crate::storage::BackendStorage for CpuStorage {
    const BACKEND: &'static str = "cpu";
    fn dtype(&self) -> crate::DType {
        CpuStorage::dtype(self)
    }
    fn device(&self) -> crate::Device {
        crate::Device::Cpu
    }
    fn copy_strided(&self, l: &Layout) -> crate::Result<Self> {
        CpuStorage::copy_strided(self, l)
    }
    fn to_dtype(&self, l: &Layout, dtype: crate::DType) -> crate::Result<Self> {
        crate::ops::cast::cpu_to_dtype(self, l, dtype)
    }
}
