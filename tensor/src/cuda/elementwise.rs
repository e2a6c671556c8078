//! Elementwise ops on CUDA: unary, binary, their gradients, comparisons and
//! `where_cond`.
//!
//! The CUDA source is generated from keel-tensor's own op tables, so a new table
//! row is a new kernel with no edit here:
//! * unary: `UnaryOp::ALL` with `cuda_expr()` -> `unary_{name}_{dtype}[_strided]`;
//! * unary grads: `cuda_deriv_expr()` -> `unary_bwd_{name}_{dtype}[_strided]`
//!   (`out = grad * d(x, a)`);
//! * binary: `BinaryOp::ALL` with `cuda_expr()` -> `binary_{name}_{dtype}[_strided]`;
//! * binary grads: `cuda_deriv_exprs()` -> `unary_bwd_{name}_dx|dy_{dtype}[_strided]`,
//!   the three-input backward kernels read as `out = grad * d(x, y)`;
//! * fused binary + unary: the pairs of [`FUSED`] -> `binary_unary_{b}_{u}_{dtype}[_strided]`
//!   (`Tensor::binary_unary` in one launch; other pairs run the two ops);
//! * comparisons: `CmpOp::ALL` with `cuda_expr()` -> `cmp_{name}_{dtype}[_strided]`
//!   for every dtype (U8 output), generated here since the kernel crate's
//!   elementwise templates are float-only.
//!
//! F32/F16/BF16 compute in f32 (half types round once on output, as on the CPU); F64,
//! and the binary ops on U8, in f64, and the binary ops on I64 in i64 (the table's
//! integer column, as the CPU's `eval_i64`), in the wide program ([`wide_source`]).
//! Contiguous operands take the vectorised contiguous kernels; anything else
//! (transposed, sliced, broadcast by stride 0) the strided ones.

use super::*;
use crate::ops::{BinaryOp, CmpOp, UnaryOp};
use crate::storage::BackendStorage;
use crate::{Error, Layout, Result};
use half::{bf16, f16};
use keel_cuda_kernels as kk;
use kk::cudarc::driver::{CudaSlice, CudaView, CudaViewMut, PushKernelArg};
use kk::ops::{elementwise as ew, misc};
use kk::Program;
use std::fmt::Write as _;
use std::sync::OnceLock;

/// Name of the backward kernel computing the partial derivative of a binary op.
fn binary_grad_name(op: BinaryOp, wrt_rhs: bool) -> String {
    format!("{}_{}", op.name(), if wrt_rhs { "dy" } else { "dx" })
}

/// The `(binary op, unary op)` pairs [`binary_unary`] runs in one launch: a bias add and
/// its ReLU (Dense and Conv2D with `activation="relu"`). A row here is a kernel per dtype.
pub(crate) const FUSED: [(BinaryOp, UnaryOp); 1] = [(BinaryOp::Add, UnaryOp::Relu)];

/// The CUDA source of every unary, unary-grad, binary, binary-grad and fused kernel.
pub(crate) fn elementwise_source() -> String {
    let unary: Vec<(&str, &str)> = UnaryOp::ALL.iter().map(|op| (op.name(), op.cuda_expr())).collect();
    let binary: Vec<(&str, &str)> = BinaryOp::ALL.iter().map(|op| (op.name(), op.cuda_expr())).collect();
    let bwd = backward_exprs();
    let bwd: Vec<(&str, &str)> = bwd.iter().map(|(n, e)| (n.as_str(), *e)).collect();
    let fused: Vec<(&str, &str)> = FUSED.iter().map(|(b, u)| (b.name(), u.name())).collect();
    ew::elementwise_source(&unary, &binary, &bwd) + &ew::binary_unary_source(&fused)
}

/// The backward kernels' `(name, derivative of x, y, a)`: each unary op's, and each binary
/// op's two partials (`{op}_dx`, `{op}_dy`, run by the same three-input kernels).
fn backward_exprs() -> Vec<(String, &'static str)> {
    let mut bwd: Vec<(String, &str)> =
        UnaryOp::ALL.iter().map(|op| (op.name().to_string(), op.cuda_deriv_expr())).collect();
    for op in BinaryOp::ALL {
        let (dx, dy) = op.cuda_deriv_exprs();
        bwd.push((binary_grad_name(*op, false), dx));
        bwd.push((binary_grad_name(*op, true), dy));
    }
    bwd
}

/// Kernel-name suffix and C type of every dtype, for the comparison kernels.
const CMP_TYPES: [(&str, &str); 6] =
    [("f32", "float"), ("f64", "double"), ("f16", "keel_f16"), ("bf16", "keel_bf16"), ("i64", "i64"), ("u8", "u8")];

/// The CUDA source of the comparison kernels (`out` is U8 0/1).
pub(crate) fn cmp_source() -> String {
    let mut s = String::with_capacity(16 * 1024);
    s.push_str(kk::sources::COMMON);
    s.push_str(
        "
// comparison operands: halves compare as f32 (exact), the rest natively
__device__ __forceinline__ float keel_cmp_load(float v) { return v; }
__device__ __forceinline__ double keel_cmp_load(double v) { return v; }
__device__ __forceinline__ float keel_cmp_load(keel_f16 v) { return to_f32(v); }
__device__ __forceinline__ float keel_cmp_load(keel_bf16 v) { return to_f32(v); }
__device__ __forceinline__ i64 keel_cmp_load(i64 v) { return v; }
__device__ __forceinline__ int keel_cmp_load(u8 v) { return (int)v; }
",
    );
    for op in CmpOp::ALL {
        let (name, expr) = (op.name(), op.cuda_expr());
        for (tn, ty) in CMP_TYPES {
            let _ = writeln!(
                s,
                "extern \"C\" __global__ void cmp_{name}_{tn}(const {ty}* __restrict__ xs, const {ty}* __restrict__ ys, \
                 u8* __restrict__ out, i64 n) {{
    KEEL_GRID_LOOP(i, n) {{ const auto x = keel_cmp_load(xs[i]); const auto y = keel_cmp_load(ys[i]); out[i] = ({expr}) ? 1 : 0; }}
}}
extern \"C\" __global__ void cmp_{name}_{tn}_strided(const {ty}* xs, const {ty}* ys, u8* out, i64 n, Layout<3> l) {{
    KEEL_GRID_LOOP(i, n) {{
        i64 off[3];
        layout_offsets<3>(l, i, off);
        const auto x = keel_cmp_load(xs[off[0]]); const auto y = keel_cmp_load(ys[off[1]]);
        out[off[2]] = ({expr}) ? 1 : 0;
    }}
}}"
            );
        }
    }
    s
}

/// Kernel-name suffix and C type of the dtypes whose binary ops compute in double (the
/// wide program).
const WIDE_TYPES: [(&str, &str); 2] = [("f64", "double"), ("u8", "u8")];

/// The CUDA source of the wide program: the binary ops on F64, I64 and U8
/// (`binary_{op}_{f64|i64|u8}[_strided]`; I64 in i64 from `BinaryOp::cuda_int_expr`, exact
/// and wrapping as the CPU's `eval_i64`), and the F64 unary ops and backward kernels
/// (`unary_{op}_f64[_strided]`, `unary_bwd_{name}_f64[_strided]`), from the same table rows
/// as the float kernels, their expressions widened to double
/// ([`kk::ops::elementwise::widen_expr`]): computed in f64 as the CPU computes them
/// (`BinaryOp::eval_f64`, ...), U8 results stored as Rust's `as` converts (truncated
/// toward zero, saturated; NaN becomes 0), so the results are the CPU's bits up to the math
/// library. An expression that cannot be widened gets no kernel (its launch reports an
/// unknown kernel; the compile test checks every row has one).
pub(crate) fn wide_source() -> String {
    let mut s = String::with_capacity(16 * 1024);
    s.push_str(kk::sources::COMMON);
    s.push_str(
        "
// wide binary ops: operands widened to double, the result narrowed like Rust's `as`
__device__ __forceinline__ double keel_wide_load(double v) { return v; }
__device__ __forceinline__ double keel_wide_load(u8 v) { return (double)v; }
__device__ __forceinline__ void keel_wide_store(double* o, double v) { *o = v; }
__device__ __forceinline__ void keel_wide_store(u8* o, double v) {
    if (!(v > 0.0)) *o = 0;  // also NaN
    else if (v >= 255.0) *o = 255;
    else *o = (u8)v;
}
// The table's powf: exact by squaring for an integer power (0..64) of an integer when the
// result is below 2^53 (the exact value a correctly rounded pow returns, as the CPU's does;
// CUDA's pow may be an ulp off, which truncation to an integer would turn into 1), else pow.
__device__ __forceinline__ double keel_wide_pow(double x, double y) {
    if (y >= 0.0 && y <= 64.0 && y == floor(y) && x == floor(x)) {
        double r = 1.0, b = x;
        for (int e = (int)y; e != 0; e >>= 1) {
            if (e & 1) r *= b;
            if (e > 1) b *= b;
        }
        if (fabs(r) < 9007199254740992.0) return r;
    }
    return pow(x, y);
}
// The table's rsqrtf: 1 / sqrt(x), both correctly rounded (the CPU's `1.0 / x.sqrt()`).
__device__ __forceinline__ double keel_wide_rsqrt(double x) { return 1.0 / sqrt(x); }
",
    );
    s.push_str(crate::ops::binary::INT_CUDA_HELPERS);
    for op in BinaryOp::ALL {
        let (name, int) = (op.name(), op.cuda_int_expr());
        let _ = writeln!(
            s,
            "struct keel_int_op_{name} {{ __device__ __forceinline__ i64 operator()(i64 x, i64 y) const {{ return ({int}); }} }};
extern \"C\" __global__ void binary_{name}_i64(const i64* __restrict__ xs, const i64* __restrict__ ys, i64* __restrict__ out, i64 n) {{
    KEEL_GRID_LOOP(i, n) out[i] = keel_int_op_{name}()(xs[i], ys[i]);
}}
extern \"C\" __global__ void binary_{name}_i64_strided(const i64* xs, const i64* ys, i64* out, i64 n, Layout<3> l) {{
    KEEL_GRID_LOOP(i, n) {{
        i64 off[3];
        layout_offsets<3>(l, i, off);
        out[off[2]] = keel_int_op_{name}()(xs[off[0]], ys[off[1]]);
    }}
}}"
        );
        let Ok(expr) = kk::ops::elementwise::widen_expr(op.cuda_expr()) else { continue };
        let _ = writeln!(
            s,
            "struct keel_wide_op_{name} {{ __device__ __forceinline__ double operator()(double x, double y) const {{ return ({expr}); }} }};"
        );
        for (tn, ty) in WIDE_TYPES {
            let _ = writeln!(
                s,
                "extern \"C\" __global__ void binary_{name}_{tn}(const {ty}* __restrict__ xs, const {ty}* __restrict__ ys, \
                 {ty}* __restrict__ out, i64 n) {{
    KEEL_GRID_LOOP(i, n) keel_wide_store(&out[i], keel_wide_op_{name}()(keel_wide_load(xs[i]), keel_wide_load(ys[i])));
}}
extern \"C\" __global__ void binary_{name}_{tn}_strided(const {ty}* xs, const {ty}* ys, {ty}* out, i64 n, Layout<3> l) {{
    KEEL_GRID_LOOP(i, n) {{
        i64 off[3];
        layout_offsets<3>(l, i, off);
        keel_wide_store(&out[off[2]], keel_wide_op_{name}()(keel_wide_load(xs[off[0]]), keel_wide_load(ys[off[1]])));
    }}
}}"
            );
        }
    }
    // F64 unary ops and the backward kernels (unary derivatives, binary partials), as the
    // float program has them (`out = g * d(x, y, a)`), in double
    let widen = |e: &str| kk::ops::elementwise::widen_expr(e).ok();
    for op in UnaryOp::ALL {
        let Some(expr) = widen(op.cuda_expr()) else { continue };
        let name = op.name();
        let _ = writeln!(
            s,
            "struct keel_wide_unary_{name} {{ __device__ __forceinline__ double operator()(double x, double a) const {{ (void)a; return ({expr}); }} }};
extern \"C\" __global__ void unary_{name}_f64(const double* __restrict__ x, double* __restrict__ out, i64 n, double a) {{
    KEEL_GRID_LOOP(i, n) out[i] = keel_wide_unary_{name}()(x[i], a);
}}
extern \"C\" __global__ void unary_{name}_f64_strided(const double* x, double* out, i64 n, double a, Layout<2> l) {{
    KEEL_GRID_LOOP(i, n) {{
        i64 off[2];
        layout_offsets<2>(l, i, off);
        out[off[1]] = keel_wide_unary_{name}()(x[off[0]], a);
    }}
}}"
        );
    }
    for (name, expr) in backward_exprs() {
        let Some(expr) = widen(expr) else { continue };
        let _ = writeln!(
            s,
            "struct keel_wide_bwd_{name} {{ __device__ __forceinline__ double operator()(double x, double y, double a) const {{ (void)x; (void)y; (void)a; return ({expr}); }} }};
extern \"C\" __global__ void unary_bwd_{name}_f64(const double* __restrict__ x, const double* __restrict__ y,
        const double* __restrict__ g, double* __restrict__ out, i64 n, double a) {{
    KEEL_GRID_LOOP(i, n) out[i] = g[i] * keel_wide_bwd_{name}()(x[i], y[i], a);
}}
extern \"C\" __global__ void unary_bwd_{name}_f64_strided(const double* x, const double* y, const double* g, double* out,
        i64 n, double a, Layout<4> l) {{
    KEEL_GRID_LOOP(i, n) {{
        i64 off[4];
        layout_offsets<4>(l, i, off);
        out[off[3]] = g[off[2]] * keel_wide_bwd_{name}()(x[off[0]], y[off[1]], a);
    }}
}}"
        );
    }
    s
}

fn wide_program() -> &'static Program {
    static P: OnceLock<Program> = OnceLock::new();
    P.get_or_init(|| Program::new("keel_tensor_wide", wide_source()))
}

/// The whole elementwise program (every kernel of every float dtype).
fn whole_program() -> &'static Program {
    static P: OnceLock<Program> = OnceLock::new();
    P.get_or_init(|| Program::new("keel_tensor_elementwise", elementwise_source()))
}

/// The programs generated from keel-tensor's op tables, as they are loaded: the elementwise
/// program a dtype part at a time, then the comparisons.
pub(crate) fn generated_programs() -> Vec<&'static Program> {
    let mut v: Vec<&'static Program> = (1..=3).map(|part| kk::sources::program_part(whole_program(), part)).collect();
    v.push(cmp_program());
    v.push(wide_program());
    v
}

/// The part of the elementwise program holding the kernels of dtype `T` (the templates'
/// parts: 1 f32, 2 f16, 3 bf16), so that a program computing in f32 compiles only those.
pub(super) fn program<T: kk::FloatDType>() -> &'static Program {
    let part = match T::NAME {
        "f32" => 1,
        "f16" => 2,
        _ => 3,
    };
    kk::sources::program_part(whole_program(), part)
}

fn cmp_program() -> &'static Program {
    static P: OnceLock<Program> = OnceLock::new();
    P.get_or_init(|| Program::new("keel_tensor_cmp", cmp_source()))
}

fn contiguous_all(ls: &[&Layout]) -> bool {
    ls.iter().all(|l| l.is_contiguous())
}

/// View of the contiguous elements of `l` (caller checked contiguity).
fn range<'a, T>(x: &'a CudaSlice<T>, l: &Layout) -> CudaView<'a, T> {
    let n = l.shape().elem_count();
    x.slice(l.offset()..l.offset() + n)
}

fn float_only(op: &'static str, s: &CudaStorage) -> Error {
    match s.dtype() {
        crate::DType::F64 => no_f64(op),
        dtype => Error::UnsupportedDType { op, dtype, hint: "cast to a float dtype first" },
    }
}

fn mismatch(op: &'static str, a: &CudaStorage, b: &CudaStorage) -> Error {
    Error::DTypeMismatch { op, lhs: a.dtype(), rhs: b.dtype() }
}

// ---------------------------------------------------------------- unary

fn unary_t<T: kk::FloatDType + Elem>(
    dev: &kk::CudaDevice,
    x: &CudaSlice<T>,
    l: &Layout,
    op: UnaryOp,
    p: f64,
) -> Result<CudaSlice<T>> {
    let n = l.shape().elem_count();
    let mut out = alloc::<T>(dev, n)?;
    if n == 0 {
        return Ok(out);
    }
    {
        let mut ov = head_mut(&mut out, n);
        if l.is_contiguous() {
            ew::unary(dev, program::<T>(), op.name(), &range(x, l), &mut ov, p as f32).ctx(op.name())?;
        } else {
            let kl = kernel_layout(op.name(), l.dims(), [l.strides(), &out_strides(l)])?;
            ew::unary_strided(dev, program::<T>(), op.name(), &from_offset(x, l.offset()), &mut ov, &kl, p as f32)
                .ctx(op.name())?;
        }
    }
    Ok(out)
}

pub(super) fn unary(s: &CudaStorage, l: &Layout, op: UnaryOp, p: f64) -> Result<CudaStorage> {
    let dev = &s.dev;
    let data = match &s.data {
        Data::F32(x) => Data::F32(unary_t(dev, x, l, op, p)?),
        Data::F16(x) => Data::F16(unary_t(dev, x, l, op, p)?),
        Data::BF16(x) => Data::BF16(unary_t(dev, x, l, op, p)?),
        Data::F64(x) => Data::F64(wide_unary_p(dev, op, (x, l), p)?),
        _ => return Err(float_only(op.name(), s)),
    };
    Ok(s.like(data, l.shape().elem_count()))
}

/// `op(x, p)` on F64 storage (bits in an `i64` buffer) in f64: the wide program's
/// `unary_{op}_f64[_strided]`.
fn wide_unary_p(dev: &kk::CudaDevice, op: UnaryOp, x: (&CudaSlice<i64>, &Layout), p: f64) -> Result<CudaSlice<i64>> {
    let name = format!("unary_{}_f64", op.name());
    launch_generated::<_, _, f64, 1, 2>(dev, wide_program(), (&name, op.name()), [x], Some(p))
}

/// [`wide_unary_p`] without a parameter, for ops composed on the device.
pub(super) fn wide_unary(dev: &kk::CudaDevice, op: UnaryOp, x: (&CudaSlice<i64>, &Layout)) -> Result<CudaSlice<i64>> {
    wide_unary_p(dev, op, x, 0.0)
}

/// `g * d(x, y, a)` in f64 with the wide program's backward kernel `unary_bwd_{name}_f64`.
fn wide_bwd(
    dev: &kk::CudaDevice,
    (name, op): (&str, &'static str),
    x: (&CudaSlice<i64>, &Layout),
    y: (&CudaSlice<i64>, &Layout),
    g: (&CudaSlice<i64>, &Layout),
    a: f64,
) -> Result<CudaSlice<i64>> {
    let kernel = format!("unary_bwd_{name}_f64");
    launch_generated::<_, _, f64, 3, 4>(dev, wide_program(), (&kernel, op), [x, y, g], Some(a))
}

/// `out = grad * f(x, y, a)` with the backward kernel `name` (`y` = second input).
fn bwd_t<T: kk::FloatDType + Elem>(
    dev: &kk::CudaDevice,
    name: &str,
    x: (&CudaSlice<T>, &Layout),
    y: (&CudaSlice<T>, &Layout),
    g: (&CudaSlice<T>, &Layout),
    a: f32,
) -> Result<CudaSlice<T>> {
    let l = g.1;
    let n = l.shape().elem_count();
    let mut out = alloc::<T>(dev, n)?;
    if n == 0 {
        return Ok(out);
    }
    {
        let mut ov = head_mut(&mut out, n);
        if contiguous_all(&[x.1, y.1, g.1]) {
            ew::unary_backward(
                dev,
                program::<T>(),
                name,
                &range(x.0, x.1),
                &range(y.0, y.1),
                &range(g.0, g.1),
                &mut ov,
                a,
            )
            .ctx(name)?;
        } else {
            let kl = kernel_layout(
                "elementwise grad",
                l.dims(),
                [x.1.strides(), y.1.strides(), g.1.strides(), &out_strides(l)],
            )?;
            ew::unary_backward_strided(
                dev,
                program::<T>(),
                name,
                &from_offset(x.0, x.1.offset()),
                &from_offset(y.0, y.1.offset()),
                &from_offset(g.0, g.1.offset()),
                &mut ov,
                &kl,
                a,
            )
            .ctx(name)?;
        }
    }
    Ok(out)
}

pub(super) fn unary_grad(
    s: &CudaStorage,
    l: &Layout,
    g: &CudaStorage,
    gl: &Layout,
    op: UnaryOp,
    p: f64,
) -> Result<CudaStorage> {
    s.same_device("unary_grad", g)?;
    let (dev, name, a) = (&s.dev, op.name(), p as f32);
    let data = match (&s.data, &g.data) {
        (Data::F32(x), Data::F32(gr)) => Data::F32(bwd_t(dev, name, (x, l), (x, l), (gr, gl), a)?),
        (Data::F16(x), Data::F16(gr)) => Data::F16(bwd_t(dev, name, (x, l), (x, l), (gr, gl), a)?),
        (Data::BF16(x), Data::BF16(gr)) => Data::BF16(bwd_t(dev, name, (x, l), (x, l), (gr, gl), a)?),
        (Data::F64(x), Data::F64(gr)) => Data::F64(wide_bwd(dev, (name, "unary_grad"), (x, l), (x, l), (gr, gl), p)?),
        _ if s.dtype() != g.dtype() => return Err(mismatch("unary_grad", s, g)),
        _ => return Err(float_only(op.name(), s)),
    };
    Ok(s.like(data, gl.shape().elem_count()))
}

// ---------------------------------------------------------------- binary

/// `op(x, y)`, or `then(op(x, y))` in the same launch when `then` is a fused unary op (a
/// pair of [`FUSED`]) with its parameter.
fn binary_t<T: kk::FloatDType + Elem>(
    dev: &kk::CudaDevice,
    (x, l): (&CudaSlice<T>, &Layout),
    (y, rl): (&CudaSlice<T>, &Layout),
    op: BinaryOp,
    then: Option<(UnaryOp, f32)>,
) -> Result<CudaSlice<T>> {
    let n = l.shape().elem_count();
    let mut out = alloc::<T>(dev, n)?;
    if n == 0 {
        return Ok(out);
    }
    let (prog, mut ov) = (program::<T>(), head_mut(&mut out, n));
    if contiguous_all(&[l, rl]) {
        let (xv, yv) = (range(x, l), range(y, rl));
        match then {
            None => ew::binary(dev, prog, op.name(), &xv, &yv, &mut ov),
            Some((u, a)) => ew::binary_unary(dev, prog, (op.name(), u.name()), &xv, &yv, &mut ov, a),
        }
        .ctx(op.name())?;
    } else {
        let kl = kernel_layout(op.name(), l.dims(), [l.strides(), rl.strides(), &out_strides(l)])?;
        let (xv, yv) = (from_offset(x, l.offset()), from_offset(y, rl.offset()));
        match then {
            None => ew::binary_strided(dev, prog, op.name(), &xv, &yv, &mut ov, &kl),
            Some((u, a)) => ew::binary_unary_strided(dev, prog, (op.name(), u.name()), &xv, &yv, &mut ov, &kl, a),
        }
        .ctx(op.name())?;
    }
    Ok(out)
}

pub(super) fn binary(s: &CudaStorage, l: &Layout, r: &CudaStorage, rl: &Layout, op: BinaryOp) -> Result<CudaStorage> {
    s.same_device(op.name(), r)?;
    let dev = &s.dev;
    let data = match (&s.data, &r.data) {
        (Data::F32(x), Data::F32(y)) => Data::F32(binary_t(dev, (x, l), (y, rl), op, None)?),
        (Data::F16(x), Data::F16(y)) => Data::F16(binary_t(dev, (x, l), (y, rl), op, None)?),
        (Data::BF16(x), Data::BF16(y)) => Data::BF16(binary_t(dev, (x, l), (y, rl), op, None)?),
        (Data::F64(x), Data::F64(y)) => Data::F64(wide_t(dev, "f64", (x, l), (y, rl), op)?),
        (Data::I64(x), Data::I64(y)) => Data::I64(wide_t(dev, "i64", (x, l), (y, rl), op)?),
        (Data::U8(x), Data::U8(y)) => Data::U8(wide_t(dev, "u8", (x, l), (y, rl), op)?),
        _ => return Err(mismatch(op.name(), s, r)),
    };
    Ok(s.like(data, l.shape().elem_count()))
}

/// `op(x, y)` on F64 storage (bits in `i64` buffers; layouts broadcast to the output shape),
/// in f64: the wide program's `binary_{op}_f64[_strided]`, for ops composed on the device.
pub(super) fn wide_binary(
    dev: &kk::CudaDevice,
    op: BinaryOp,
    x: (&CudaSlice<i64>, &Layout),
    y: (&CudaSlice<i64>, &Layout),
) -> Result<CudaSlice<i64>> {
    wide_t(dev, "f64", x, y, op)
}

/// `op(x, y)` on F64, I64 or U8 (`tn`): the wide program's `binary_{op}_{tn}[_strided]`.
fn wide_t<T: kk::DType + Elem>(
    dev: &kk::CudaDevice,
    tn: &str,
    x: (&CudaSlice<T>, &Layout),
    y: (&CudaSlice<T>, &Layout),
    op: BinaryOp,
) -> Result<CudaSlice<T>> {
    pair_t(dev, wide_program(), &format!("binary_{}_{tn}", op.name()), op.name(), x, y)
}

/// `uop(bop(x, y), p)` in one launch for a pair of [`FUSED`] on F32/F16/BF16 operands of one
/// dtype, the bits of the two ops one after the other; `None` for other pairs and dtypes,
/// which run the two ops. `l` and `rl` are broadcast to the output shape already.
pub(crate) fn binary_unary(
    s: &CudaStorage,
    l: &Layout,
    r: &CudaStorage,
    rl: &Layout,
    (bop, uop): (BinaryOp, UnaryOp),
    p: f64,
) -> Result<Option<CudaStorage>> {
    if !FUSED.contains(&(bop, uop)) {
        return Ok(None);
    }
    s.same_device(bop.name(), r)?;
    let (dev, then) = (&s.dev, Some((uop, p as f32)));
    let data = match (&s.data, &r.data) {
        (Data::F32(x), Data::F32(y)) => Data::F32(binary_t(dev, (x, l), (y, rl), bop, then)?),
        (Data::F16(x), Data::F16(y)) => Data::F16(binary_t(dev, (x, l), (y, rl), bop, then)?),
        (Data::BF16(x), Data::BF16(y)) => Data::BF16(binary_t(dev, (x, l), (y, rl), bop, then)?),
        _ => return Ok(None),
    };
    Ok(Some(s.like(data, l.shape().elem_count())))
}

/// `op(x, value)` with the scalar on the host, for contiguous F32/F16/BF16 `x`: one launch,
/// where `x.binary(&x.scalar_like(value))` fills a one-element tensor and broadcasts it.
/// `value` is rounded to the dtype exactly as that tensor would hold it. `None`: another
/// dtype or a strided `x`, which take the general path.
pub(crate) fn binary_scalar(s: &CudaStorage, l: &Layout, op: BinaryOp, value: f64) -> Result<Option<CudaStorage>> {
    if !l.is_contiguous() {
        return Ok(None);
    }
    fn run<T: kk::FloatDType + Elem>(
        dev: &kk::CudaDevice,
        x: &CudaSlice<T>,
        l: &Layout,
        op: BinaryOp,
        v: f32,
    ) -> Result<CudaSlice<T>> {
        let n = l.shape().elem_count();
        let mut out = alloc::<T>(dev, n)?;
        if n > 0 {
            ew::binary_scalar(dev, program::<T>(), op.name(), &range(x, l), v, &mut head_mut(&mut out, n))
                .ctx(op.name())?;
        }
        Ok(out)
    }
    let dev = &s.dev;
    // the one-element tensor `scalar_like` would make, widened to f32 (exact)
    let v = match crate::CpuStorage::full(value, 1, s.dtype()) {
        crate::CpuStorage::F32(v) => v[0],
        crate::CpuStorage::F16(v) => v[0].to_f32(),
        crate::CpuStorage::BF16(v) => v[0].to_f32(),
        _ => return Ok(None),
    };
    let data = match &s.data {
        Data::F32(x) => Data::F32(run(dev, x, l, op, v)?),
        Data::F16(x) => Data::F16(run(dev, x, l, op, v)?),
        Data::BF16(x) => Data::BF16(run(dev, x, l, op, v)?),
        _ => return Ok(None),
    };
    Ok(Some(s.like(data, l.shape().elem_count())))
}

pub(super) fn binary_grad(
    s: &CudaStorage,
    l: &Layout,
    r: &CudaStorage,
    rl: &Layout,
    g: &CudaStorage,
    gl: &Layout,
    op: BinaryOp,
    wrt_rhs: bool,
) -> Result<CudaStorage> {
    s.same_device(op.name(), r)?;
    s.same_device(op.name(), g)?;
    let dev = &s.dev;
    let name = binary_grad_name(op, wrt_rhs);
    let data = match (&s.data, &r.data, &g.data) {
        (Data::F32(x), Data::F32(y), Data::F32(gr)) => Data::F32(bwd_t(dev, &name, (x, l), (y, rl), (gr, gl), 0.0)?),
        (Data::F16(x), Data::F16(y), Data::F16(gr)) => Data::F16(bwd_t(dev, &name, (x, l), (y, rl), (gr, gl), 0.0)?),
        (Data::BF16(x), Data::BF16(y), Data::BF16(gr)) => {
            Data::BF16(bwd_t(dev, &name, (x, l), (y, rl), (gr, gl), 0.0)?)
        }
        (Data::F64(x), Data::F64(y), Data::F64(gr)) => {
            Data::F64(wide_bwd(dev, (&name, "binary_grad"), (x, l), (y, rl), (gr, gl), 0.0)?)
        }
        _ => {
            return Err(Error::UnsupportedDType {
                op: "binary_grad",
                dtype: if s.dtype().is_float() { g.dtype() } else { s.dtype() },
                hint: "CUDA gradients need float operands of one dtype",
            })
        }
    };
    Ok(s.like(data, gl.shape().elem_count()))
}

// ---------------------------------------------------------------- comparisons

/// Launch `cmp_{op}_{tn}[_strided]`; `x` and `y` are the operand bases.
fn cmp_t<T: kk::DType>(
    dev: &kk::CudaDevice,
    tn: &str,
    x: &CudaSlice<T>,
    l: &Layout,
    y: &CudaSlice<T>,
    rl: &Layout,
    op: CmpOp,
) -> Result<CudaSlice<u8>> {
    pair_t(dev, cmp_program(), &format!("cmp_{}_{tn}", op.name()), op.name(), (x, l), (y, rl))
}

/// Launch `{name}` of `prog` for contiguous operands, else `{name}_strided`: the kernels
/// of the generated programs with the signature `(const T* x, const T* y, O* out, i64 n)`
/// (`[, Layout<3>]`), comparisons and the wide binary ops. `x` and `y` are the operand
/// bases; `l` and `rl` are broadcast to the output shape already.
fn pair_t<T: kk::DType, O: kk::DType + Elem>(
    dev: &kk::CudaDevice,
    prog: &Program,
    name: &str,
    op: &'static str,
    x: (&CudaSlice<T>, &Layout),
    y: (&CudaSlice<T>, &Layout),
) -> Result<CudaSlice<O>> {
    launch_generated::<T, O, f64, 2, 3>(dev, prog, (name, op), [x, y], None)
}

/// Launch `{name}` of `prog` for contiguous operands, else `{name}_strided`, on the `N`
/// inputs `ins` (bases and layouts, all broadcast to the output's shape) into a fresh
/// contiguous `O` buffer: the kernels of the generated programs, with the signature
/// `(const T* in_0, .., const T* in_{N-1}, O* out, i64 n[, S s])`, `[.., Layout<K>]` for the
/// strided form (`K = N + 1`: the inputs' strides, then the output's).
fn launch_generated<
    T: kk::DType,
    O: kk::DType + Elem,
    S: kk::cudarc::driver::DeviceRepr,
    const N: usize,
    const K: usize,
>(
    dev: &kk::CudaDevice,
    prog: &Program,
    (name, op): (&str, &'static str),
    ins: [(&CudaSlice<T>, &Layout); N],
    scalar: Option<S>,
) -> Result<CudaSlice<O>> {
    debug_assert_eq!(K, N + 1);
    let l = ins[N - 1].1;
    let n = l.shape().elem_count();
    let mut out = alloc::<O>(dev, n)?;
    if n == 0 {
        return Ok(out);
    }
    let ni = n as i64;
    let layouts: Vec<&Layout> = ins.iter().map(|(_, l)| *l).collect();
    let contiguous = contiguous_all(&layouts);
    let views: [CudaView<'_, T>; N] = std::array::from_fn(|k| {
        if contiguous {
            range(ins[k].0, ins[k].1)
        } else {
            from_offset(ins[k].0, ins[k].1.offset())
        }
    });
    let out_s = out_strides(l);
    let kl = if contiguous {
        None
    } else {
        let strides: [&[usize]; K] = std::array::from_fn(|k| if k < N { ins[k].1.strides() } else { &out_s[..] });
        let kl = kernel_layout(op, l.dims(), strides)?;
        for (k, have) in views.iter().map(|v| v.len()).chain([n]).enumerate() {
            if kl.required_len(k).ctx(op)? > have {
                return Err(Error::invalid(op, "internal: strided view exceeds its CUDA buffer"));
            }
        }
        Some(kl)
    };
    let kernel: std::borrow::Cow<'_, str> = match kl {
        None => name.into(),
        Some(_) => format!("{name}_strided").into(),
    };
    let func = dev.function(prog, &kernel).ctx(op)?;
    let mut ov = head_mut(&mut out, n);
    let mut b = dev.stream().launch_builder(&func);
    for v in &views {
        b.arg(v);
    }
    b.arg(&mut ov);
    b.arg(&ni);
    if let Some(s) = &scalar {
        b.arg(s);
    }
    if let Some(kl) = &kl {
        b.arg(kl);
    }
    // SAFETY: the generated kernels take (N input pointers, the output pointer, i64 n, the
    // scalar where given, the layout in the strided form); every buffer holds n elements,
    // or the layout's reach was checked against it above.
    dev.launch_counted(&kernel, || unsafe { b.launch(dev.cfg_1d(n)) }).ctx(op)?;
    Ok(out)
}

pub(super) fn cmp(s: &CudaStorage, l: &Layout, r: &CudaStorage, rl: &Layout, op: CmpOp) -> Result<CudaStorage> {
    s.same_device(op.name(), r)?;
    let dev = &s.dev;
    let out = match (&s.data, &r.data) {
        (Data::F32(x), Data::F32(y)) => cmp_t(dev, "f32", x, l, y, rl, op)?,
        (Data::F64(x), Data::F64(y)) => cmp_t(dev, "f64", x, l, y, rl, op)?,
        (Data::F16(x), Data::F16(y)) => cmp_t(dev, "f16", x, l, y, rl, op)?,
        (Data::BF16(x), Data::BF16(y)) => cmp_t(dev, "bf16", x, l, y, rl, op)?,
        (Data::I64(x), Data::I64(y)) => cmp_t(dev, "i64", x, l, y, rl, op)?,
        (Data::U8(x), Data::U8(y)) => cmp_t(dev, "u8", x, l, y, rl, op)?,
        _ => return Err(mismatch(op.name(), s, r)),
    };
    Ok(s.like(Data::U8(out), l.shape().elem_count()))
}

/// `x != 0` as a contiguous U8 mask (a mask of any dtype: nonzero means true).
fn nonzero(s: &CudaStorage, l: &Layout) -> Result<CudaSlice<u8>> {
    let dev = &s.dev;
    let zl = Layout::new(l.shape().clone(), vec![0; l.dims().len()], 0);
    macro_rules! ne0 {
        ($x:expr, $t:ty, $tn:literal) => {{
            let zero = alloc_zeros::<$t>(dev, 1)?;
            cmp_t(dev, $tn, $x, l, &zero, &zl, CmpOp::Ne)
        }};
    }
    match &s.data {
        Data::F32(x) => ne0!(x, f32, "f32"),
        Data::F64(x) => ne0!(x, i64, "f64"),
        Data::F16(x) => ne0!(x, f16, "f16"),
        Data::BF16(x) => ne0!(x, bf16, "bf16"),
        Data::I64(x) => ne0!(x, i64, "i64"),
        Data::U8(x) => ne0!(x, u8, "u8"),
    }
}

// ---------------------------------------------------------------- where

fn where_t<T: kk::DType>(
    dev: &kk::CudaDevice,
    c: (&CudaSlice<u8>, &Layout),
    a: (&CudaSlice<T>, &Layout),
    b: (&CudaSlice<T>, &Layout),
    poison: T,
) -> Result<CudaSlice<T>> {
    let l = c.1;
    let n = l.shape().elem_count();
    let mut out = alloc_fill(dev, n, poison)?;
    if n == 0 {
        return Ok(out);
    }
    {
        let mut ov: CudaViewMut<'_, T> = head_mut(&mut out, n);
        if contiguous_all(&[c.1, a.1, b.1]) {
            misc::where_select(dev, &range(c.0, c.1), &range(a.0, a.1), &range(b.0, b.1), &mut ov).ctx("where_cond")?;
        } else {
            let kl =
                kernel_layout("where_cond", l.dims(), [c.1.strides(), a.1.strides(), b.1.strides(), &out_strides(l)])?;
            misc::where_select_strided(
                dev,
                &from_offset(c.0, c.1.offset()),
                &from_offset(a.0, a.1.offset()),
                &from_offset(b.0, b.1.offset()),
                &mut ov,
                &kl,
            )
            .ctx("where_cond")?;
        }
    }
    Ok(out)
}

pub(super) fn where_cond(
    m: &CudaStorage,
    ml: &Layout,
    t: &CudaStorage,
    tl: &Layout,
    f: &CudaStorage,
    fl: &Layout,
) -> Result<CudaStorage> {
    m.same_device("where_cond", t)?;
    m.same_device("where_cond", f)?;
    let dev = &m.dev;
    let owned;
    let contiguous_mask = Layout::contiguous(ml.shape().clone());
    let (mask, mlay) = match &m.data {
        Data::U8(x) => (x, ml),
        _ => {
            owned = nonzero(m, ml)?;
            (&owned, &contiguous_mask)
        }
    };
    let c = (mask, mlay);
    let data = match (&t.data, &f.data) {
        (Data::F32(a), Data::F32(b)) => Data::F32(where_t(dev, c, (a, tl), (b, fl), f32::NAN)?),
        (Data::F64(a), Data::F64(b)) => Data::F64(where_t(dev, c, (a, tl), (b, fl), F64_POISON)?),
        (Data::F16(a), Data::F16(b)) => Data::F16(where_t(dev, c, (a, tl), (b, fl), f16::NAN)?),
        (Data::BF16(a), Data::BF16(b)) => Data::BF16(where_t(dev, c, (a, tl), (b, fl), bf16::NAN)?),
        (Data::I64(a), Data::I64(b)) => Data::I64(where_t(dev, c, (a, tl), (b, fl), i64::MIN)?),
        (Data::U8(a), Data::U8(b)) => Data::U8(where_t(dev, c, (a, tl), (b, fl), 0xA5)?),
        _ => return Err(mismatch("where_cond", t, f)),
    };
    Ok(m.like(data, ml.shape().elem_count()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every generated program compiles with NVRTC for sm_80 and sm_90 and assembles to
    /// SASS, as it is loaded (the elementwise program a dtype part at a time); the parts
    /// hold exactly the whole program's kernels. No GPU needed; skipped with a message when
    /// NVRTC is not installed.
    #[test]
    fn generated_sources_compile() {
        if !kk::nvrtc_available() {
            if std::env::var("KEEL_REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
                panic!("NVRTC is required (KEEL_REQUIRE_NVRTC=1) but was not found");
            }
            eprintln!("skipping: NVRTC not found (run cuda-kernels/install-nvrtc.sh)");
            return;
        }
        // the whole elementwise program's PTX, then every (loaded program, arch) to SASS
        let mut jobs = vec![(whole_program(), "sm_90", kk::Stage::Ptx)];
        for p in generated_programs() {
            jobs.extend(["sm_80", "sm_90"].map(|arch| (p, arch, kk::Stage::Sass)));
        }
        let results = kk::compile_many(&jobs);
        let results: Vec<&kk::CompiledPtx> = jobs
            .iter()
            .zip(&results)
            .map(|((p, arch, _), r)| {
                let c = r.as_deref().unwrap_or_else(|e| panic!("{} for {arch}: {e}", p.name()));
                assert!(!c.log.to_lowercase().contains("warning"), "{} for {arch}: {}", p.name(), c.log);
                assert!(c.ptx.contains(".entry"), "{} for {arch}: no kernels", p.name());
                c
            })
            .collect();
        let (whole, assembled) = (results[0], &results[1..]);
        for op in UnaryOp::ALL {
            assert!(whole.ptx.contains(&format!("unary_{}_f32_strided", op.name())), "{}", op.name());
            assert!(whole.ptx.contains(&format!("unary_bwd_{}_bf16", op.name())), "{}", op.name());
        }
        for op in BinaryOp::ALL {
            assert!(whole.ptx.contains(&format!("binary_{}_f16_strided", op.name())), "{}", op.name());
            assert!(whole.ptx.contains(&format!("unary_bwd_{}_f32", binary_grad_name(*op, true))));
        }
        // the dtype parts (sm_90: every other result, from index 1) hold exactly the whole
        // program's kernels, each in one part
        let mut parts: Vec<String> = Vec::new();
        for (dtype, compiled) in ["f32", "f16", "bf16"].iter().zip(assembled.iter().skip(1).step_by(2)) {
            let names = compiled.entries();
            assert!(names.iter().all(|n| n.contains(&format!("_{dtype}"))), "the {dtype} part holds another dtype");
            parts.extend(names);
        }
        let mut whole = whole.entries();
        parts.sort();
        whole.sort();
        assert_eq!(parts, whole, "the dtype parts do not add up to the elementwise program");
        let cmp = assembled[6];
        for op in CmpOp::ALL {
            for (tn, _) in CMP_TYPES {
                assert!(cmp.ptx.contains(&format!("cmp_{}_{tn}_strided", op.name())));
            }
        }
        let wide = assembled[8];
        for op in BinaryOp::ALL {
            for tn in WIDE_TYPES.map(|(tn, _)| tn).into_iter().chain(["i64"]) {
                assert!(wide.ptx.contains(&format!("binary_{}_{tn}_strided", op.name())), "{} {tn}", op.name());
            }
        }
        for op in UnaryOp::ALL {
            assert!(wide.ptx.contains(&format!("unary_{}_f64_strided", op.name())), "{}", op.name());
        }
        for (name, _) in backward_exprs() {
            assert!(wide.ptx.contains(&format!("unary_bwd_{name}_f64_strided")), "{name}");
        }
    }

    #[test]
    fn kernel_layouts_merge_dims() {
        // contiguous [2, 3, 4] merges to one dim; a transposed operand keeps two
        let l = kernel_layout::<2>("t", &[2, 3, 4], [&[12, 4, 1], &[12, 4, 1]]).expect("ok");
        assert_eq!(l.numel(), 24);
        assert_eq!(l.required_len(0).ok(), Some(24));
        let b = kernel_layout::<2>("t", &[2, 3, 1, 4], [&[0, 4, 4, 1], &[12, 4, 4, 1]]).expect("ok");
        assert_eq!(b.required_len(0).ok(), Some(12));
        assert_eq!(b.required_len(1).ok(), Some(24));
        assert!(kernel_layout::<1>("t", &[2; 9], [&[256, 1, 128, 2, 64, 4, 32, 8, 16]]).is_err());
    }
}
