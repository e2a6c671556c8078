//! Elementwise kernels generated from the caller's op table.
//!
//! keel-tensor owns the op table (name, CPU function, CUDA expression, derivative); this
//! module turns the CUDA side of it into one source:
//!
//! * [`unary_source`]: ops `(name, expr)` where `expr` is a CUDA C `float` expression of
//!   `x` (the input) and `a` (a per-launch `float` parameter, e.g. the slope of
//!   leaky_relu). Generates `unary_{name}_{f32|f16|bf16}` (contiguous) and
//!   `unary_{name}_{dtype}_strided` (any strides, rank <= 8, see [`Layout`]).
//! * [`binary_source`]: ops `(name, expr of x, y)`. Generates `binary_{name}_{dtype}` and
//!   `binary_{name}_{dtype}_strided` (broadcast via stride 0).
//! * [`unary_backward_source`]: ops `(name, derivative expr of x, y, a)` where `y` is the
//!   forward output. Generates `unary_bwd_{name}_{dtype}[_strided]` computing
//!   `out = grad * derivative`.
//! * [`binary_unary_source`]: pairs `(binary name, unary name)` of ops defined by the
//!   tables above. Generates `binary_unary_{b}_{u}_{dtype}[_strided]` computing
//!   `out = u(b(x, y), a)` in one pass (a bias add and its activation), with the bits of
//!   the two ops run one after the other (f16/bf16 round the binary result first).
//!
//! f16/bf16 are loaded, converted to f32, computed in f32 and rounded back
//! (round-to-nearest-even). Op names must be C identifiers (`[A-Za-z_][A-Za-z0-9_]*`).
//! Compile the result once with [`Program::new`] and keep the `Program`.

use std::fmt::Write as _;

use cudarc::driver::{CudaView, CudaViewMut};

use crate::device::{check_len, check_min_len, to_i64, CudaDevice, FloatDType};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::sources::{Program, COMMON, ELEMENTWISE_TEMPLATES};

/// Whether `name` can be used as an op name (a C identifier).
pub fn is_valid_op_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn header(out: &mut String) {
    out.push_str(COMMON);
    out.push('\n');
    out.push_str(ELEMENTWISE_TEMPLATES);
    out.push('\n');
}

fn push_unary(out: &mut String, ops: &[(&str, &str)]) {
    for (name, expr) in ops {
        let _ = writeln!(
            out,
            "struct keel_unary_{name} {{ __device__ __forceinline__ float operator()(float x, float a) const {{ (void)a; return ({expr}); }} }};\nKEEL_UNARY_KERNELS({name})"
        );
    }
}

fn push_binary(out: &mut String, ops: &[(&str, &str)]) {
    for (name, expr) in ops {
        let _ = writeln!(
            out,
            "struct keel_binary_{name} {{ __device__ __forceinline__ float operator()(float x, float y) const {{ return ({expr}); }} }};\nKEEL_BINARY_KERNELS({name})"
        );
    }
}

fn push_unary_bwd(out: &mut String, ops: &[(&str, &str)]) {
    for (name, expr) in ops {
        let _ = writeln!(
            out,
            "struct keel_unary_bwd_{name} {{ __device__ __forceinline__ float operator()(float x, float y, float a) const {{ (void)x; (void)y; (void)a; return ({expr}); }} }};\nKEEL_UNARY_BWD_KERNELS({name})"
        );
    }
}

/// The fused kernels of every `(binary op, unary op)` pair, to append to an
/// [`elementwise_source`] whose tables define both ops.
pub fn binary_unary_source(pairs: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (b, u) in pairs {
        let _ = writeln!(s, "KEEL_BINARY_UNARY_KERNELS({b}, {u})");
    }
    s
}

/// CUDA source with contiguous + strided unary kernels for every `(name, expr(x, a))`.
pub fn unary_source(ops: &[(&str, &str)]) -> String {
    elementwise_source(ops, &[], &[])
}

/// CUDA source with contiguous + strided binary kernels for every `(name, expr(x, y))`.
pub fn binary_source(ops: &[(&str, &str)]) -> String {
    elementwise_source(&[], ops, &[])
}

/// CUDA source with unary-backward kernels for every `(name, derivative(x, y, a))`.
pub fn unary_backward_source(ops: &[(&str, &str)]) -> String {
    elementwise_source(&[], &[], ops)
}

/// One CUDA source holding the unary, binary and unary-backward kernels of all tables
/// (one module, one NVRTC compile).
pub fn elementwise_source(unary: &[(&str, &str)], binary: &[(&str, &str)], unary_backward: &[(&str, &str)]) -> String {
    let mut s = String::with_capacity(16 * 1024);
    header(&mut s);
    push_unary(&mut s, unary);
    push_binary(&mut s, binary);
    push_unary_bwd(&mut s, unary_backward);
    s
}

/// A reference op table (used by the tests and as an example for keel-tensor).
pub mod builtin {
    /// Unary ops: `(name, expr of x and a)`.
    pub const UNARY: &[(&str, &str)] = &[
        ("neg", "-x"),
        ("abs", "fabsf(x)"),
        ("exp", "expf(x)"),
        ("log", "logf(x)"),
        ("sqrt", "sqrtf(x)"),
        ("rsqrt", "rsqrtf(x)"),
        ("square", "x * x"),
        ("recip", "1.0f / x"),
        ("sin", "sinf(x)"),
        ("cos", "cosf(x)"),
        ("tanh", "tanhf(x)"),
        ("sigmoid", "1.0f / (1.0f + expf(-x))"),
        ("relu", "x <= 0.0f ? 0.0f : x"),
        ("leaky_relu", "x > 0.0f ? x : a * x"),
        ("elu", "x > 0.0f ? x : a * expm1f(x)"),
        ("gelu", "0.5f * x * (1.0f + erff(x * 0.70710678118654752f))"),
        ("softplus", "x > 20.0f ? x : log1pf(expf(x))"),
        ("silu", "x / (1.0f + expf(-x))"),
        ("add_scalar", "x + a"),
        ("mul_scalar", "x * a"),
        ("pow_scalar", "powf(x, a)"),
        ("clip_min", "fmaxf(x, a)"),
        ("clip_max", "fminf(x, a)"),
    ];
    /// Binary ops: `(name, expr of x and y)`.
    pub const BINARY: &[(&str, &str)] = &[
        ("add", "x + y"),
        ("sub", "x - y"),
        ("mul", "x * y"),
        ("div", "x / y"),
        ("maximum", "fmaxf(x, y)"),
        ("minimum", "fminf(x, y)"),
        ("pow", "powf(x, y)"),
        ("eq", "x == y ? 1.0f : 0.0f"),
        ("lt", "x < y ? 1.0f : 0.0f"),
        ("gt", "x > y ? 1.0f : 0.0f"),
    ];
    /// Fused `(binary op, unary op)` pairs: a bias add and its ReLU.
    pub const BINARY_UNARY: &[(&str, &str)] = &[("add", "relu")];
    /// Unary derivatives: `(name, d/dx as expr of x, y = f(x), a)`.
    pub const UNARY_BACKWARD: &[(&str, &str)] = &[
        ("exp", "y"),
        ("log", "1.0f / x"),
        ("sqrt", "0.5f / y"),
        ("tanh", "1.0f - y * y"),
        ("sigmoid", "y * (1.0f - y)"),
        ("relu", "x > 0.0f ? 1.0f : 0.0f"),
        ("leaky_relu", "x > 0.0f ? 1.0f : a"),
        ("elu", "x > 0.0f ? 1.0f : y + a"),
        ("gelu", "0.5f * (1.0f + erff(x * 0.70710678118654752f)) + x * 0.3989422804014327f * expf(-0.5f * x * x)"),
        ("softplus", "1.0f / (1.0f + expf(-x))"),
        ("square", "2.0f * x"),
    ];
}

/// The CUDA math functions an op expression may call, with the double-precision function
/// [`widen_expr`] puts in their place. Two are helpers a source using widened expressions
/// defines: `keel_wide_pow` (exact for integer powers, else `pow`) and `keel_wide_rsqrt`
/// (`1 / sqrt(x)`, correctly rounded twice, where CUDA's `rsqrt` is approximate).
pub const WIDE_MATH: &[(&str, &str)] = &[
    ("expf", "exp"),
    ("expm1f", "expm1"),
    ("logf", "log"),
    ("log1pf", "log1p"),
    ("sqrtf", "sqrt"),
    ("rsqrtf", "keel_wide_rsqrt"),
    ("powf", "keel_wide_pow"),
    ("fabsf", "fabs"),
    ("fmaxf", "fmax"),
    ("fminf", "fmin"),
    ("sinf", "sin"),
    ("cosf", "cos"),
    ("tanhf", "tanh"),
    ("erff", "erf"),
];

/// A `float` op expression rewritten to compute in `double` (for F64, I64 and U8 kernels,
/// which compute as the CPU does, in f64): each function of [`WIDE_MATH`] becomes its
/// double version and each `f`-suffixed literal (`0.5f`, `1.f`, `1e-3f`) loses its suffix,
/// so that a constant keeps the digits written. Errors on any other function name ending
/// in `f` followed by `(` (a float function this table does not know).
pub fn widen_expr(expr: &str) -> Result<String> {
    let b = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = String::with_capacity(expr.len() + 8);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && ident(b[i]) {
                i += 1;
            }
            let word = &expr[start..i];
            match WIDE_MATH.iter().find(|(f, _)| *f == word) {
                Some((_, d)) => out.push_str(d),
                None if word.ends_with('f') && expr[i..].trim_start().starts_with('(') => {
                    return Err(Error::arg("widen_expr", format!("`{word}` has no double version in WIDE_MATH")));
                }
                None => out.push_str(word),
            }
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            // a number: digits, one point, an exponent with its sign, then an optional `f`
            let start = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                i += 1;
                if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                    i += 1;
                }
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            out.push_str(&expr[start..i]);
            if i < b.len() && (b[i] == b'f' || b[i] == b'F') && !b.get(i + 1).is_some_and(|&n| ident(n)) {
                i += 1;
            }
        } else {
            out.push(c as char);
            i += 1;
        }
    }
    Ok(out)
}

fn check_ops(op: &str) -> Result<()> {
    if is_valid_op_name(op) {
        Ok(())
    } else {
        Err(Error::arg("elementwise", format!("invalid op name `{op}`")))
    }
}

/// `out[i] = op(x[i], a)` on contiguous buffers of equal length.
pub fn unary<T: FloatDType>(
    dev: &CudaDevice,
    program: &Program,
    op: &str,
    x: &CudaView<'_, T>,
    out: &mut CudaViewMut<'_, T>,
    a: f32,
) -> Result<()> {
    check_ops(op)?;
    check_len("unary", "out", out.len(), x.len())?;
    if x.is_empty() {
        return Ok(());
    }
    let n = to_i64("unary", x.len())?;
    let name = format!("unary_{op}_{}", T::NAME);
    launch!(dev, program, name, dev.cfg_1d(x.len()), [x, out, &n, &a])
}

/// Strided unary: operand 0 of `layout` is `x`, operand 1 is `out`.
pub fn unary_strided<T: FloatDType>(
    dev: &CudaDevice,
    program: &Program,
    op: &str,
    x: &CudaView<'_, T>,
    out: &mut CudaViewMut<'_, T>,
    layout: &Layout<2>,
    a: f32,
) -> Result<()> {
    check_ops(op)?;
    check_min_len("unary_strided", "x", x.len(), layout.required_len(0)?)?;
    check_min_len("unary_strided", "out", out.len(), layout.required_len(1)?)?;
    let numel = layout.numel();
    if numel == 0 {
        return Ok(());
    }
    let n = to_i64("unary_strided", numel)?;
    let name = format!("unary_{op}_{}_strided", T::NAME);
    launch!(dev, program, name, dev.cfg_1d(numel), [x, out, &n, &a, layout])
}

/// `out[i] = op(x[i], y[i])` on contiguous buffers of equal length.
pub fn binary<T: FloatDType>(
    dev: &CudaDevice,
    program: &Program,
    op: &str,
    x: &CudaView<'_, T>,
    y: &CudaView<'_, T>,
    out: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    check_ops(op)?;
    check_len("binary", "y", y.len(), x.len())?;
    check_len("binary", "out", out.len(), x.len())?;
    if x.is_empty() {
        return Ok(());
    }
    let n = to_i64("binary", x.len())?;
    let name = format!("binary_{op}_{}", T::NAME);
    launch!(dev, program, name, dev.cfg_1d(x.len()), [x, y, out, &n])
}

/// `out[i] = op(x[i], s)`: a binary op with a scalar right operand (the caller rounds `s` to
/// `T` first, as a one-element tensor of `T` would hold it); contiguous `x` and `out`.
pub fn binary_scalar<T: FloatDType>(
    dev: &CudaDevice,
    program: &Program,
    op: &str,
    x: &CudaView<'_, T>,
    s: f32,
    out: &mut CudaViewMut<'_, T>,
) -> Result<()> {
    check_ops(op)?;
    check_len("binary_scalar", "out", out.len(), x.len())?;
    if x.is_empty() {
        return Ok(());
    }
    let n = to_i64("binary_scalar", x.len())?;
    let name = format!("binary_{op}_{}_scalar", T::NAME);
    launch!(dev, program, name, dev.cfg_1d(x.len()), [x, &s, out, &n])
}

/// Strided/broadcast binary: operands of `layout` are `x`, `y`, `out`.
pub fn binary_strided<T: FloatDType>(
    dev: &CudaDevice,
    program: &Program,
    op: &str,
    x: &CudaView<'_, T>,
    y: &CudaView<'_, T>,
    out: &mut CudaViewMut<'_, T>,
    layout: &Layout<3>,
) -> Result<()> {
    check_ops(op)?;
    check_min_len("binary_strided", "x", x.len(), layout.required_len(0)?)?;
    check_min_len("binary_strided", "y", y.len(), layout.required_len(1)?)?;
    check_min_len("binary_strided", "out", out.len(), layout.required_len(2)?)?;
    let numel = layout.numel();
    if numel == 0 {
        return Ok(());
    }
    let n = to_i64("binary_strided", numel)?;
    let name = format!("binary_{op}_{}_strided", T::NAME);
    launch!(dev, program, name, dev.cfg_1d(numel), [x, y, out, &n, layout])
}

/// `out[i] = u(b(x[i], y[i]), a)` on contiguous buffers of equal length (a kernel of
/// [`binary_unary_source`]).
#[allow(clippy::too_many_arguments)]
pub fn binary_unary<T: FloatDType>(
    dev: &CudaDevice,
    program: &Program,
    (b, u): (&str, &str),
    x: &CudaView<'_, T>,
    y: &CudaView<'_, T>,
    out: &mut CudaViewMut<'_, T>,
    a: f32,
) -> Result<()> {
    check_ops(b)?;
    check_ops(u)?;
    check_len("binary_unary", "y", y.len(), x.len())?;
    check_len("binary_unary", "out", out.len(), x.len())?;
    if x.is_empty() {
        return Ok(());
    }
    let n = to_i64("binary_unary", x.len())?;
    let name = format!("binary_unary_{b}_{u}_{}", T::NAME);
    launch!(dev, program, name, dev.cfg_1d(x.len()), [x, y, out, &n, &a])
}

/// Strided/broadcast [`binary_unary`]: operands of `layout` are `x`, `y`, `out`.
#[allow(clippy::too_many_arguments)]
pub fn binary_unary_strided<T: FloatDType>(
    dev: &CudaDevice,
    program: &Program,
    (b, u): (&str, &str),
    x: &CudaView<'_, T>,
    y: &CudaView<'_, T>,
    out: &mut CudaViewMut<'_, T>,
    layout: &Layout<3>,
    a: f32,
) -> Result<()> {
    check_ops(b)?;
    check_ops(u)?;
    check_min_len("binary_unary_strided", "x", x.len(), layout.required_len(0)?)?;
    check_min_len("binary_unary_strided", "y", y.len(), layout.required_len(1)?)?;
    check_min_len("binary_unary_strided", "out", out.len(), layout.required_len(2)?)?;
    let numel = layout.numel();
    if numel == 0 {
        return Ok(());
    }
    let n = to_i64("binary_unary_strided", numel)?;
    let name = format!("binary_unary_{b}_{u}_{}_strided", T::NAME);
    launch!(dev, program, name, dev.cfg_1d(numel), [x, y, out, &n, &a, layout])
}

/// `out[i] = grad[i] * op'(x[i], y[i], a)`; `y` is the forward output (pass `x` again if
/// the derivative does not use it).
pub fn unary_backward<T: FloatDType>(
    dev: &CudaDevice,
    program: &Program,
    op: &str,
    x: &CudaView<'_, T>,
    y: &CudaView<'_, T>,
    grad: &CudaView<'_, T>,
    out: &mut CudaViewMut<'_, T>,
    a: f32,
) -> Result<()> {
    check_ops(op)?;
    check_len("unary_backward", "y", y.len(), x.len())?;
    check_len("unary_backward", "grad", grad.len(), x.len())?;
    check_len("unary_backward", "out", out.len(), x.len())?;
    if x.is_empty() {
        return Ok(());
    }
    let n = to_i64("unary_backward", x.len())?;
    let name = format!("unary_bwd_{op}_{}", T::NAME);
    launch!(dev, program, name, dev.cfg_1d(x.len()), [x, y, grad, out, &n, &a])
}

/// Strided unary backward: operands of `layout` are `x`, `y`, `grad`, `out`.
pub fn unary_backward_strided<T: FloatDType>(
    dev: &CudaDevice,
    program: &Program,
    op: &str,
    x: &CudaView<'_, T>,
    y: &CudaView<'_, T>,
    grad: &CudaView<'_, T>,
    out: &mut CudaViewMut<'_, T>,
    layout: &Layout<4>,
    a: f32,
) -> Result<()> {
    check_ops(op)?;
    check_min_len("unary_backward_strided", "x", x.len(), layout.required_len(0)?)?;
    check_min_len("unary_backward_strided", "y", y.len(), layout.required_len(1)?)?;
    check_min_len("unary_backward_strided", "grad", grad.len(), layout.required_len(2)?)?;
    check_min_len("unary_backward_strided", "out", out.len(), layout.required_len(3)?)?;
    let numel = layout.numel();
    if numel == 0 {
        return Ok(());
    }
    let n = to_i64("unary_backward_strided", numel)?;
    let name = format!("unary_bwd_{op}_{}_strided", T::NAME);
    launch!(dev, program, name, dev.cfg_1d(numel), [x, y, grad, out, &n, &a, layout])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_op_name("leaky_relu"));
        assert!(!is_valid_op_name("1x"));
        assert!(!is_valid_op_name("a-b"));
        assert!(!is_valid_op_name(""));
    }

    #[test]
    fn generated_source_mentions_every_op() {
        let s = elementwise_source(builtin::UNARY, builtin::BINARY, builtin::UNARY_BACKWARD);
        for (n, _) in builtin::UNARY {
            assert!(s.contains(&format!("KEEL_UNARY_KERNELS({n})")));
        }
        for (n, _) in builtin::BINARY {
            assert!(s.contains(&format!("KEEL_BINARY_KERNELS({n})")));
        }
        assert_eq!(binary_unary_source(builtin::BINARY_UNARY), "KEEL_BINARY_UNARY_KERNELS(add, relu)\n");
    }

    #[test]
    fn widened_expressions_compute_in_double() {
        let w = |e: &str| widen_expr(e).unwrap_or_else(|err| panic!("{e}: {err}"));
        assert_eq!(
            w("0.5f * x * (1.0f + erff(x * 0.70710678118654752f))"),
            "0.5 * x * (1.0 + erf(x * 0.70710678118654752))"
        );
        assert_eq!(w("x > 20.0f ? x : log1pf(expf(x))"), "x > 20.0 ? x : log1p(exp(x))");
        assert_eq!(w("powf(x, y) + 1.f + 2e-3f + .5f + 1e+2F"), "keel_wide_pow(x, y) + 1. + 2e-3 + .5 + 1e+2");
        assert_eq!(w("fmaxf(x, y) - x1f"), "fmax(x, y) - x1f", "identifiers keep their `f`");
        assert!(widen_expr("atan2f(x, y)").is_err(), "an unknown float function is an error");
        for (_, e) in builtin::UNARY.iter().chain(builtin::BINARY).chain(builtin::UNARY_BACKWARD) {
            let wide = w(e);
            assert!(WIDE_MATH.iter().all(|(f, _)| !wide.contains(&format!("{f}("))), "{e} -> {wide}");
        }
    }
}
