//! Batched matmul on CUDA with the hand-written GEMM kernels.
//!
//! The tensor layer hands over `[b, m, k] x [b, k, n]` views (batch stride 0 =
//! broadcast). Each operand's row/column strides map onto the GEMM's transpose
//! flag and leading dimension (a transposed view is read in place, as the CPU
//! path does); any other layout is copied to contiguous first. F32 runs the exact
//! SIMT kernel, or TF32 tensor cores when [`super::set_tf32`] / [`super::with_tf32`]
//! allow it; F16/BF16 run tensor cores with f32 accumulation and round once to the
//! output dtype (as the CPU does). F64 runs a plain SIMT f64 kernel (`gemm_f64_*`, f64
//! accumulation, no epilogue: its bias add is its own op).

use super::*;
use crate::storage::BackendStorage;
use crate::{Error, Layout, Result};
use half::{bf16, f16};
use keel_cuda_kernels as kk;
use kk::cudarc::driver::{CudaSlice, CudaView, CudaViewMut};
use kk::ops::gemm::{self, Activation, Bias, GemmArgs};

/// How the GEMM reads an `[r, c]` operand with row stride `rs` and column stride
/// `cs`: `(transposed, leading dimension)`, or `None` when it needs a copy.
pub(crate) fn gemm_view(r: usize, c: usize, rs: usize, cs: usize) -> Option<(bool, usize)> {
    // row-major: element (i, j) at i * ld + j
    if (c <= 1 || cs == 1) && (r <= 1 || rs >= c.max(1)) {
        return Some((false, if r <= 1 { c.max(1) } else { rs }));
    }
    // the transpose of a row-major [c, r]: element (i, j) at j * ld + i
    if (r <= 1 || rs == 1) && (c <= 1 || cs >= r.max(1)) {
        return Some((true, if c <= 1 { r.max(1) } else { cs }));
    }
    None
}

/// `(transposed, leading dimension, batch stride)` of a `[b, r, c]` operand view.
fn operand(l: &Layout) -> Option<(bool, usize, usize)> {
    let (d, st) = (l.dims(), l.strides());
    let (t, ld) = gemm_view(d[1], d[2], st[1], st[2])?;
    Some((t, ld, if d[0] <= 1 { 0 } else { st[0] }))
}

/// A GEMM with inputs `T` and output `O`.
type GemmFn<T, O> = for<'a, 'b> fn(
    &kk::CudaDevice,
    &GemmArgs,
    &CudaView<'_, T>,
    &CudaView<'_, T>,
    &mut CudaViewMut<'_, O>,
    Option<Bias<'a, 'b, O>>,
) -> kk::Result<()>;

/// The GEMM's epilogue: a bias `[n]` (storage and layout) and an activation.
type Epilogue<'a> = (Option<(&'a CudaStorage, &'a Layout)>, Activation);

#[allow(clippy::too_many_arguments)]
fn gemm_run<T: kk::DType, O: Elem>(
    dev: &kk::CudaDevice,
    a: &CudaSlice<T>,
    al: &Layout,
    b: &CudaSlice<T>,
    bl: &Layout,
    poison: T,
    f: GemmFn<T, O>,
    &(bias, act): &Epilogue<'_>,
) -> Result<CudaSlice<O>> {
    let (batch, m, k) = (al.dims()[0], al.dims()[1], al.dims()[2]);
    let n = bl.dims()[2];
    let total = batch * m * n;
    let mut out = alloc::<O>(dev, total)?;
    if total == 0 {
        return Ok(out);
    }
    if k == 0 {
        dev.stream().memset_zeros(&mut head_mut(&mut out, total)).ctx("matmul")?;
        return Ok(out);
    }
    let a_copy;
    let (av, trans_a, lda, stride_a) = match operand(al) {
        Some((t, ld, bs)) => (from_offset(a, al.offset()), t, ld, bs),
        None => {
            a_copy = copy::copy_t(dev, a, al, poison)?;
            (a_copy.slice(0..batch * m * k), false, k, m * k)
        }
    };
    let b_copy;
    let (bv, trans_b, ldb, stride_b) = match operand(bl) {
        Some((t, ld, bs)) => (from_offset(b, bl.offset()), t, ld, bs),
        None => {
            b_copy = copy::copy_t(dev, b, bl, poison)?;
            (b_copy.slice(0..batch * k * n), false, n, k * n)
        }
    };
    // the bias in the output's type, added to the rounded product (as a separate add would)
    let bias = match bias {
        Some((s, l)) => {
            let data = O::slice(&s.data).ok_or(Error::DTypeMismatch { op: "matmul", lhs: O::DTYPE, rhs: s.dtype() })?;
            Some(contig(dev, data, l, O::poison())?)
        }
        None => None,
    };
    let bias_view = bias.as_ref().map(|b| b.view());
    let mut args = GemmArgs::new(m, n, k).batched(batch).activation(act);
    args.trans_a = trans_a;
    args.trans_b = trans_b;
    args.lda = lda;
    args.ldb = ldb;
    args.stride_a = stride_a;
    args.stride_b = stride_b;
    f(dev, &args, &av, &bv, &mut head_mut(&mut out, total), bias_view.as_ref().map(Bias::Rounded)).ctx("matmul")?;
    Ok(out)
}

pub(super) fn matmul(s: &CudaStorage, l: &Layout, r: &CudaStorage, rl: &Layout) -> Result<CudaStorage> {
    gemm_dispatch(s, l, r, rl, &(None, Activation::None))
}

/// `act(matmul + bias)` with the bias (`[n]`, the operands' dtype) and ReLU in the GEMM's
/// epilogue: bit-identical to matmul, add and relu, since the epilogue adds the bias to the
/// product rounded to the output's dtype and rounds the sum before the ReLU (`1 * acc + b`
/// and `fmaxf(., 0)` for F32), as those kernels do. `None` for an empty inner dimension and
/// for F64 (the caller runs the ops one after the other).
pub(crate) fn matmul_bias(
    s: &CudaStorage,
    l: &Layout,
    r: &CudaStorage,
    rl: &Layout,
    bias: (&CudaStorage, &Layout),
    relu: bool,
) -> Result<Option<CudaStorage>> {
    if l.dims()[2] == 0 || s.dtype() == crate::DType::F64 {
        // an empty sum: no GEMM runs to add the bias; F64: its GEMM has no epilogue
        return Ok(None);
    }
    s.same_device("matmul", bias.0)?;
    let act = if relu { Activation::Relu } else { Activation::None };
    gemm_dispatch(s, l, r, rl, &(Some(bias), act)).map(Some)
}

fn gemm_dispatch(s: &CudaStorage, l: &Layout, r: &CudaStorage, rl: &Layout, epi: &Epilogue<'_>) -> Result<CudaStorage> {
    s.same_device("matmul", r)?;
    let dev = &s.dev;
    let total = l.dims()[0] * l.dims()[1] * rl.dims()[2];
    // F16/BF16: the tensor-core epilogue rounds the f32 result once into the output dtype
    let out = match (&s.data, &r.data) {
        (Data::F32(x), Data::F32(y)) => {
            let f: GemmFn<f32, f32> = if super::tf32_enabled() { gemm::gemm_tf32 } else { gemm::gemm_f32 };
            Data::F32(gemm_run(dev, x, l, y, rl, f32::NAN, f, epi)?)
        }
        (Data::F16(x), Data::F16(y)) => Data::F16(gemm_run(dev, x, l, y, rl, f16::NAN, gemm::gemm_f16::<f16>, epi)?),
        (Data::BF16(x), Data::BF16(y)) => {
            Data::BF16(gemm_run(dev, x, l, y, rl, bf16::NAN, gemm::gemm_bf16::<bf16>, epi)?)
        }
        (Data::F64(x), Data::F64(y)) => {
            if epi.0.is_some() || epi.1 != Activation::None {
                return Err(Error::invalid("matmul", "internal: the F64 GEMM takes no epilogue"));
            }
            Data::F64(gemm_run(dev, x, l, y, rl, F64_POISON, gemm::gemm_f64, epi)?)
        }
        _ if s.dtype() != r.dtype() => {
            return Err(Error::DTypeMismatch { op: "matmul", lhs: s.dtype(), rhs: r.dtype() })
        }
        _ => {
            return Err(Error::UnsupportedDType { op: "matmul", dtype: s.dtype(), hint: "cast to a float dtype first" })
        }
    };
    Ok(s.like(out, total))
}

#[cfg(test)]
mod tests {
    use super::gemm_view;

    #[test]
    fn operand_strides_map_to_transpose_flags() {
        assert_eq!(gemm_view(3, 4, 4, 1), Some((false, 4))); // row-major
        assert_eq!(gemm_view(3, 4, 6, 1), Some((false, 6))); // row-major, sliced columns
        assert_eq!(gemm_view(3, 4, 1, 3), Some((true, 3))); // transposed [4, 3]
        assert_eq!(gemm_view(3, 4, 1, 5), Some((true, 5))); // transposed, sliced
        assert_eq!(gemm_view(1, 4, 0, 1), Some((false, 4))); // single row, any row stride
        assert_eq!(gemm_view(3, 1, 1, 0), Some((false, 1))); // single column
        assert_eq!(gemm_view(3, 4, 0, 1), None); // broadcast rows
        assert_eq!(gemm_view(3, 4, 8, 2), None); // strided both ways
    }
}
