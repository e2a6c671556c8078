//! The CPU backend: strided iteration helpers and the [`BackendStorage`] impl for
//! [`CpuStorage`]. The kernels themselves live with their op family in `ops/`.

use crate::{CpuStorage, Layout};
#[cfg(feature = "cpu")]
use rayon::prelude::*;
#[cfg(feature = "cpu")]
use std::mem::MaybeUninit;

/// Defines `fn $name` twice over one body: a copy compiled with AVX2 + FMA,
/// taken when the running CPU has them, and the portable build. The hot loops
/// of the CPU kernels vectorize 8 floats wide that way without a
/// `-C target-cpu` flag; closures inside the body (rayon tasks) inherit the
/// features. Rust never fuses `a * b + c` on its own, so both copies give the
/// same bits. Generic parameters go in brackets, then their names again (for
/// the turbofish): `simd_fn! { fn f[T: Copy, const N: usize][T, N](x: &[T]) -> T { .. } }`.
#[cfg(feature = "cpu")]
macro_rules! simd_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident [$($g:tt)*] [$($gn:ident),*] ($($arg:ident : $ty:ty),* $(,)?) -> $ret:ty $body:block) => {
        $(#[$m])*
        $vis fn $name<$($g)*>($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn fast<$($g)*>($($arg: $ty),*) -> $ret $body
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU was just checked for the features `fast` is compiled with.
                    return unsafe { fast::<$($gn),*>($($arg),*) };
                }
            }
            fn portable<$($g)*>($($arg: $ty),*) -> $ret $body
            portable::<$($gn),*>($($arg),*)
        }
    };
}
#[cfg(feature = "cpu")]
pub(crate) use simd_fn;

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

#[cfg(feature = "cpu")]
/// One operand of a row kernel: a contiguous run of elements, or one element
/// repeated over the whole run (a broadcast along the innermost dims).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Run<'a, T> {
    /// `len` consecutive elements.
    Slice(&'a [T]),
    /// One element standing for every position of the run.
    Splat(T),
}

#[cfg(feature = "cpu")]
/// How to walk `K` same-shaped views as rows: trailing dims that every view
/// can merge form one inner dim, over which each view has stride 0 or 1; the
/// other dims are walked as rows.
struct RowPlan<const K: usize> {
    inner: usize,
    inner_unit: [bool; K],
    outer_dims: Vec<usize>,
    outer_strides: [Vec<usize>; K],
    offsets: [usize; K],
}

#[cfg(feature = "cpu")]
impl<const K: usize> RowPlan<K> {
    /// `None` when some view's innermost merged stride is neither 0 nor 1.
    fn new(layouts: [&Layout; K]) -> Option<Self> {
        let dims = layouts[0].dims();
        // size-1 dims never move an offset: drop them
        let live: Vec<usize> = (0..dims.len()).filter(|&d| dims[d] != 1).collect();
        let offsets = std::array::from_fn(|k| layouts[k].offset());
        let Some(&last) = live.last() else {
            return Some(RowPlan {
                inner: 1,
                inner_unit: [true; K],
                outer_dims: vec![],
                outer_strides: std::array::from_fn(|_| vec![]),
                offsets,
            });
        };
        let strides = |k: usize, d: usize| layouts[k].strides()[d];
        let mut inner = dims[last];
        let inner_stride: [usize; K] = std::array::from_fn(|k| strides(k, last));
        if inner_stride.iter().any(|&s| s > 1) {
            return None;
        }
        let mut split = live.len() - 1;
        // merge dim `d` into the inner run while every view steps through it as one run
        while split > 0 {
            let d = live[split - 1];
            if (0..K).all(|k| strides(k, d) == inner_stride[k] * inner) {
                inner *= dims[d];
                split -= 1;
            } else {
                break;
            }
        }
        let outer = &live[..split];
        Some(RowPlan {
            inner,
            inner_unit: std::array::from_fn(|k| inner_stride[k] == 1),
            outer_dims: outer.iter().map(|&d| dims[d]).collect(),
            outer_strides: std::array::from_fn(|k| outer.iter().map(|&d| strides(k, d)).collect()),
            offsets,
        })
    }

    /// Storage offsets of the first element of row `r`.
    #[inline]
    fn row_offsets(&self, mut r: usize) -> [usize; K] {
        let mut o = self.offsets;
        for d in (0..self.outer_dims.len()).rev() {
            let n = self.outer_dims[d];
            let i = r % n;
            r /= n;
            for (k, off) in o.iter_mut().enumerate() {
                *off += i * self.outer_strides[k][d];
            }
        }
        o
    }

    /// Call `f(offsets, inner_start, len, out_part)` for the runs covering output
    /// positions `start..start + out.len()` (row offsets advance incrementally).
    #[inline]
    fn for_runs<U>(&self, start: usize, out: &mut [U], mut f: impl FnMut([usize; K], usize, &mut [U])) {
        if out.is_empty() {
            return;
        }
        let (row, mut col) = (start / self.inner, start % self.inner);
        let mut offs = self.row_offsets(row);
        let rank = self.outer_dims.len();
        let mut idx = vec![0usize; rank];
        let mut r = row;
        for d in (0..rank).rev() {
            idx[d] = r % self.outer_dims[d];
            r /= self.outer_dims[d];
        }
        let mut rest = out;
        loop {
            let len = (self.inner - col).min(rest.len());
            let (head, tail) = rest.split_at_mut(len);
            f(offs, col, head);
            rest = tail;
            if rest.is_empty() {
                return;
            }
            // next row: bump the outer multi-index
            col = 0;
            for d in (0..rank).rev() {
                idx[d] += 1;
                for (k, o) in offs.iter_mut().enumerate() {
                    *o += self.outer_strides[k][d];
                }
                if idx[d] < self.outer_dims[d] {
                    break;
                }
                for (k, o) in offs.iter_mut().enumerate() {
                    *o -= self.outer_strides[k][d] * self.outer_dims[d];
                }
                idx[d] = 0;
            }
        }
    }
}

#[cfg(feature = "cpu")]
#[inline]
fn run_of<T: Copy>(v: &[T], unit: bool, off: usize, col: usize, len: usize) -> Run<'_, T> {
    if unit {
        Run::Slice(&v[off + col..off + col + len])
    } else {
        Run::Splat(v[off])
    }
}

/// Output elements per parallel task of the row kernels.
#[cfg(feature = "cpu")]
const PAR_CHUNK: usize = 1 << 14;

#[cfg(feature = "cpu")]
/// Split `out` into fixed chunks (in parallel when large) and call `f(start, chunk)`.
fn chunked<U: Send>(out: &mut [U], f: impl Fn(usize, &mut [U]) + Sync + Send) {
    if out.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(PAR_CHUNK).enumerate().for_each(|(i, c)| f(i * PAR_CHUNK, c));
        return;
    }
    f(0, out)
}

#[cfg(feature = "cpu")]
/// Row kernel over one view: `f(run, out)` writes `out.len()` results from the
/// run. `None` when the view cannot be walked as runs (then use [`map1`]).
pub(crate) fn rows1<A: Copy + Send + Sync, U: Copy + Send>(
    a: &[A],
    al: &Layout,
    f: impl Fn(Run<'_, A>, &mut [MaybeUninit<U>]) + Sync + Send,
) -> Option<Vec<U>> {
    let plan = RowPlan::new([al])?;
    let n = al.shape().elem_count();
    let mut out = Vec::with_capacity(n);
    chunked(&mut out.spare_capacity_mut()[..n], |start, chunk| {
        plan.for_runs(start, chunk, |[o], col, part| f(run_of(a, plan.inner_unit[0], o, col, part.len()), part))
    });
    // SAFETY: the runs cover every output position and `f` writes its whole part.
    unsafe { out.set_len(n) };
    Some(out)
}

#[cfg(feature = "cpu")]
/// Row kernel over two same-shaped views (e.g. a tensor and a broadcast bias or
/// scalar). `None` when the views cannot be walked as runs (then use [`map2`]).
pub(crate) fn rows2<A: Copy + Send + Sync, B: Copy + Send + Sync, U: Copy + Send>(
    a: &[A],
    al: &Layout,
    b: &[B],
    bl: &Layout,
    f: impl Fn(Run<'_, A>, Run<'_, B>, &mut [MaybeUninit<U>]) + Sync + Send,
) -> Option<Vec<U>> {
    let plan = RowPlan::new([al, bl])?;
    let n = al.shape().elem_count();
    let mut out = Vec::with_capacity(n);
    chunked(&mut out.spare_capacity_mut()[..n], |start, chunk| {
        plan.for_runs(start, chunk, |[i, j], col, part| {
            let n = part.len();
            f(run_of(a, plan.inner_unit[0], i, col, n), run_of(b, plan.inner_unit[1], j, col, n), part)
        })
    });
    // SAFETY: the runs cover every output position and `f` writes its whole part.
    unsafe { out.set_len(n) };
    Some(out)
}

/// `f` over every element of `src` viewed through `l`, into a new row-major vector.
#[cfg_attr(not(feature = "cpu"), allow(dead_code))]
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
#[cfg_attr(not(feature = "cpu"), allow(dead_code))]
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
#[cfg_attr(not(feature = "cpu"), allow(dead_code))]
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
    use crate::ops::{self, BinaryOp, CmpOp, Conv2dParams, DepthwiseConv2dParams, Pool2dParams, ReduceOp, UnaryOp};
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
        fn conv2d_bias_relu(
            &self,
            l: &Layout,
            k: &Self,
            kl: &Layout,
            b: &Self,
            bl: &Layout,
            p: &Conv2dParams,
        ) -> Result<Option<Self>> {
            ops::conv::cpu::conv2d_bias_relu(self, l, k, kl, b, bl, p)
        }
        fn conv2d_grad_input(&self, l: &Layout, k: &Self, kl: &Layout, p: &Conv2dParams) -> Result<Self> {
            ops::conv::cpu::conv2d_grad_input(self, l, k, kl, p)
        }
        fn conv2d_grad_kernel(&self, l: &Layout, dy: &Self, dyl: &Layout, p: &Conv2dParams) -> Result<Self> {
            ops::conv::cpu::conv2d_grad_kernel(self, l, dy, dyl, p)
        }
        fn depthwise_conv2d(&self, l: &Layout, k: &Self, kl: &Layout, p: &DepthwiseConv2dParams) -> Result<Self> {
            ops::depthwise::cpu::depthwise_conv2d(self, l, k, kl, p)
        }
        fn depthwise_conv2d_grad_input(
            &self,
            l: &Layout,
            k: &Self,
            kl: &Layout,
            p: &DepthwiseConv2dParams,
        ) -> Result<Self> {
            ops::depthwise::cpu::depthwise_conv2d_grad_input(self, l, k, kl, p)
        }
        fn depthwise_conv2d_grad_kernel(
            &self,
            l: &Layout,
            dy: &Self,
            dyl: &Layout,
            p: &DepthwiseConv2dParams,
        ) -> Result<Self> {
            ops::depthwise::cpu::depthwise_conv2d_grad_kernel(self, l, dy, dyl, p)
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
        fn check_indices(&self, l: &Layout, size: usize, op: &'static str) -> Result<()> {
            ops::index::cpu::indices(op, self, l, size).map(|_| ())
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
        fn affine_transform(&self, l: &Layout, t: &Self, tl: &Layout, p: &ops::image::AffineParams) -> Result<Self> {
            ops::image::cpu::affine_transform(self, l, t, tl, p)
        }
        fn affine_transform_grad(
            &self,
            l: &Layout,
            t: &Self,
            tl: &Layout,
            p: &ops::image::AffineParams,
        ) -> Result<Self> {
            ops::image::cpu::affine_transform_grad(self, l, t, tl, p)
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
