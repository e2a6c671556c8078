//! Elementwise binary ops with NumPy broadcasting, comparisons, `where_cond`
//! and `clamp`. Like the unary family, each op is one table row: the value, the
//! partial derivatives wrt each operand, and the CUDA C expressions.
//!
//! Tensor-scalar forms (`add_scalar`, ...) broadcast a 0-d tensor, so they reuse
//! the same kernels.
//!
//! I64 computes in i64 (the row's `int` column), as PyTorch does: add, sub and mul
//! wrap; div truncates toward zero and saturates (`x / 0` is `i64::MAX` for `x > 0`,
//! `i64::MIN` for `x < 0`, 0 for `0 / 0`; `i64::MIN / -1` is `i64::MAX`), as the f64
//! quotient converted by Rust's `as` would; pow saturates, and a negative exponent gives
//! the truncated real power (0 for `|x| > 1`, `i64::MAX` for `0 ^ -n`). U8 computes in
//! f64 (exact for 8-bit operands) and saturates to `0..=255`.

use crate::storage::{dispatch2, dispatch3, BackendStorage};
use crate::{Error, Result, Shape, Tensor, UnaryOp};

macro_rules! binary_ops {
    ($( $(#[$doc:meta])* $name:ident $str:literal |$x:ident, $y:ident| $f:expr,
        dx: $dx:expr, dy: $dy:expr, int: $int:expr, $cuda:literal, $cuda_dx:literal, $cuda_dy:literal,
        $cuda_int:literal; )*) => {
        /// An elementwise binary op (see the table in this module).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum BinaryOp {
            $( $(#[$doc])* $name, )*
        }

        impl BinaryOp {
            /// Every binary op, in table order.
            pub const ALL: &'static [BinaryOp] = &[$(BinaryOp::$name),*];

            /// The op's name as used in errors and kernel names.
            pub fn name(self) -> &'static str {
                match self { $(BinaryOp::$name => $str,)* }
            }

            /// The value in f32.
            #[inline]
            pub fn eval_f32(self, x_: f32, y_: f32) -> f32 {
                match self { $(BinaryOp::$name => { let ($x, $y) = (x_, y_); $f },)* }
            }

            /// The value in f64.
            #[inline]
            pub fn eval_f64(self, x_: f64, y_: f64) -> f64 {
                match self { $(BinaryOp::$name => { let ($x, $y) = (x_, y_); $f },)* }
            }

            /// The value in i64 (exact; see the module docs for overflow and division).
            #[inline]
            pub fn eval_i64(self, x_: i64, y_: i64) -> i64 {
                match self { $(BinaryOp::$name => { let ($x, $y) = (x_, y_); $int },)* }
            }

            /// The partial derivative wrt `x` (`wrt_rhs = false`) or `y`, in f32.
            #[allow(unused_variables)]
            #[inline]
            pub fn deriv_f32(self, x_: f32, y_: f32, wrt_rhs: bool) -> f32 {
                match self { $(BinaryOp::$name => { let ($x, $y) = (x_, y_); if wrt_rhs { $dy } else { $dx } },)* }
            }

            /// The partial derivative wrt `x` (`wrt_rhs = false`) or `y`, in f64.
            #[allow(unused_variables)]
            #[inline]
            pub fn deriv_f64(self, x_: f64, y_: f64, wrt_rhs: bool) -> f64 {
                match self { $(BinaryOp::$name => { let ($x, $y) = (x_, y_); if wrt_rhs { $dy } else { $dx } },)* }
            }

            /// `out[i] = op(x[i], y[i])` over one run, in f32: one loop per op and
            /// operand form (run or broadcast value), so each vectorizes.
            #[cfg(feature = "cpu")]
            #[inline(always)]
            pub(crate) fn run_f32(self, x: crate::cpu::Run<'_, f32>, y: crate::cpu::Run<'_, f32>, out: &mut [std::mem::MaybeUninit<f32>]) {
                use crate::cpu::Run;
                match self { $(BinaryOp::$name => match (x, y) {
                    (Run::Slice(xs), Run::Slice(ys)) => for ((o, &$x), &$y) in out.iter_mut().zip(xs).zip(ys) { o.write($f); },
                    (Run::Slice(xs), Run::Splat($y)) => for (o, &$x) in out.iter_mut().zip(xs) { o.write($f); },
                    (Run::Splat($x), Run::Slice(ys)) => for (o, &$y) in out.iter_mut().zip(ys) { o.write($f); },
                    (Run::Splat($x), Run::Splat($y)) => { let v: f32 = $f; out.iter_mut().for_each(|o| { o.write(v); }); }
                },)* }
            }

            /// `out[i] = op(x[i], y[i])` over one run, in f64.
            #[cfg(feature = "cpu")]
            pub(crate) fn run_f64(self, x: crate::cpu::Run<'_, f64>, y: crate::cpu::Run<'_, f64>, out: &mut [std::mem::MaybeUninit<f64>]) {
                use crate::cpu::Run;
                match self { $(BinaryOp::$name => match (x, y) {
                    (Run::Slice(xs), Run::Slice(ys)) => for ((o, &$x), &$y) in out.iter_mut().zip(xs).zip(ys) { o.write($f); },
                    (Run::Slice(xs), Run::Splat($y)) => for (o, &$x) in out.iter_mut().zip(xs) { o.write($f); },
                    (Run::Splat($x), Run::Slice(ys)) => for (o, &$y) in out.iter_mut().zip(ys) { o.write($f); },
                    (Run::Splat($x), Run::Splat($y)) => { let v: f64 = $f; out.iter_mut().for_each(|o| { o.write(v); }); }
                },)* }
            }

            /// The CUDA C expression (of `float x`, `float y`) computing the value.
            pub fn cuda_expr(self) -> &'static str {
                match self { $(BinaryOp::$name => $cuda,)* }
            }

            /// The CUDA C expressions of the partial derivatives wrt `x` and `y`.
            pub fn cuda_deriv_exprs(self) -> (&'static str, &'static str) {
                match self { $(BinaryOp::$name => ($cuda_dx, $cuda_dy),)* }
            }

            /// The CUDA C expression (of `i64 x`, `i64 y`) computing the I64 value as
            /// [`BinaryOp::eval_i64`] does (helpers `keel_int_div`, `keel_int_pow`:
            /// [`INT_CUDA_HELPERS`]).
            pub fn cuda_int_expr(self) -> &'static str {
                match self { $(BinaryOp::$name => $cuda_int,)* }
            }
        }
    };
}

binary_ops! {
    /// `x + y`
    Add "add" |x, y| x + y, dx: 1.0, dy: 1.0, int: x.wrapping_add(y), "x + y", "1.f", "1.f",
        "(i64)((u64)x + (u64)y)";
    /// `x - y`
    Sub "sub" |x, y| x - y, dx: 1.0, dy: -1.0, int: x.wrapping_sub(y), "x - y", "1.f", "-1.f",
        "(i64)((u64)x - (u64)y)";
    /// `x * y`
    Mul "mul" |x, y| x * y, dx: y, dy: x, int: x.wrapping_mul(y), "x * y", "y", "x",
        "(i64)((u64)x * (u64)y)";
    /// `x / y`
    Div "div" |x, y| x / y, dx: 1.0 / y, dy: -x / (y * y), int: int::div(x, y), "x / y", "1.f / y", "-x / (y * y)",
        "keel_int_div(x, y)";
    /// `x ^ y` (the gradient wrt `x` is 0 where `y == 0`, as PyTorch's, also at `x = 0`;
    /// the gradient wrt `y` is taken as 0 where `x <= 0`)
    Pow "pow" |x, y| x.powf(y), dx: if y == 0.0 { 0.0 } else { y * x.powf(y - 1.0) },
        dy: if x > 0.0 { x.powf(y) * x.ln() } else { 0.0 }, int: int::pow(x, y),
        "powf(x, y)", "(y == 0.f ? 0.f : y * powf(x, y - 1.f))", "(x > 0.f ? powf(x, y) * logf(x) : 0.f)",
        "keel_int_pow(x, y)";
    /// `max(x, y)`; NaN if either is NaN (as NumPy and PyTorch); ties split the gradient
    /// evenly, as PyTorch does
    Maximum "maximum" |x, y| if x >= y || x.is_nan() { x } else { y },
        dx: if x > y { 1.0 } else if x == y { 0.5 } else { 0.0 },
        dy: if y > x { 1.0 } else if x == y { 0.5 } else { 0.0 },
        int: x.max(y),
        "((x >= y || x != x) ? x : y)", "(x > y ? 1.f : (x == y ? 0.5f : 0.f))", "(y > x ? 1.f : (x == y ? 0.5f : 0.f))",
        "(x >= y ? x : y)";
    /// `min(x, y)`; NaN if either is NaN; ties split the gradient evenly
    Minimum "minimum" |x, y| if x <= y || x.is_nan() { x } else { y },
        dx: if x < y { 1.0 } else if x == y { 0.5 } else { 0.0 },
        dy: if y < x { 1.0 } else if x == y { 0.5 } else { 0.0 },
        int: x.min(y),
        "((x <= y || x != x) ? x : y)", "(x < y ? 1.f : (x == y ? 0.5f : 0.f))", "(y < x ? 1.f : (x == y ? 0.5f : 0.f))",
        "(x <= y ? x : y)";
}

/// The I64 division and power of the table's `int` column.
mod int {
    /// `x / y` truncated toward zero; what overflows or divides by zero saturates as the
    /// real quotient would (`x / 0` is `i64::MAX`, `i64::MIN` or 0 by the sign of `x`).
    pub(super) fn div(x: i64, y: i64) -> i64 {
        match (x.checked_div(y), y) {
            (Some(q), _) => q,
            (None, 0) => match x.signum() {
                1 => i64::MAX,
                -1 => i64::MIN,
                _ => 0,
            },
            (None, _) => i64::MAX, // i64::MIN / -1
        }
    }

    /// `x ^ y`, saturating; a negative exponent gives the real power truncated toward zero
    /// (`i64::MAX` for `0 ^ -n`, the real power's infinity saturated).
    pub(super) fn pow(x: i64, y: i64) -> i64 {
        let odd = y & 1 == 1;
        match x {
            0 if y < 0 => i64::MAX,
            0 => (y == 0) as i64,
            1 => 1,
            -1 => 1 - 2 * odd as i64,
            _ if y < 0 => 0,
            // |x| >= 2: x^64 saturates already; keep the exponent's parity (the sign)
            _ => x.saturating_pow(if y > 64 { 64 + odd as u32 } else { y as u32 }),
        }
    }
}

/// CUDA C helpers the `cuda_int_expr` expressions call, computing as `eval_i64` does.
pub const INT_CUDA_HELPERS: &str = r#"
__device__ __forceinline__ i64 keel_int_div(i64 x, i64 y) {
    if (y == 0) return x > 0 ? (i64)0x7fffffffffffffffLL : (x < 0 ? (i64)(-0x7fffffffffffffffLL - 1) : 0);
    if (y == -1 && x == (i64)(-0x7fffffffffffffffLL - 1)) return (i64)0x7fffffffffffffffLL;
    return x / y;
}
__device__ __forceinline__ i64 keel_int_pow(i64 x, i64 y) {
    const bool odd = (y & 1) != 0;
    if (x == 0) return y < 0 ? (i64)0x7fffffffffffffffLL : (y == 0 ? 1 : 0);
    if (x == 1) return 1;
    if (x == -1) return odd ? -1 : 1;
    if (y < 0) return 0;
    const i64 e = y > 64 ? 64 + (odd ? 1 : 0) : y;
    const bool neg = x < 0 && (e & 1) != 0;
    const u64 b = x < 0 ? (u64)0 - (u64)x : (u64)x;
    const u64 limit = neg ? (u64)1 << 63 : ((u64)1 << 63) - 1;
    u64 r = 1;
    for (i64 k = 0; k < e; ++k) {
        if (r > limit / b) return neg ? (i64)(-0x7fffffffffffffffLL - 1) : (i64)0x7fffffffffffffffLL;
        r *= b;
    }
    return neg ? (i64)((u64)0 - r) : (i64)r;
}
"#;

macro_rules! cmp_ops {
    ($( $(#[$doc:meta])* $name:ident $str:literal $method:ident $cuda:literal; )*) => {
        /// An elementwise comparison; the result is U8 (1 where true, 0 where false).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum CmpOp {
            $( $(#[$doc])* $name, )*
        }

        impl CmpOp {
            /// Every comparison, in table order.
            pub const ALL: &'static [CmpOp] = &[$(CmpOp::$name),*];

            /// The op's name as used in errors and kernel names.
            pub fn name(self) -> &'static str {
                match self { $(CmpOp::$name => $str,)* }
            }

            /// Evaluate the comparison.
            #[inline]
            pub fn eval<T: PartialOrd>(self, x: T, y: T) -> bool {
                match self { $(CmpOp::$name => x.$method(&y),)* }
            }

            /// The CUDA C expression (of `x`, `y`).
            pub fn cuda_expr(self) -> &'static str {
                match self { $(CmpOp::$name => $cuda,)* }
            }
        }

        impl Tensor {
            $(
                $(#[$doc])*
                ///
                /// Broadcasts like NumPy; the result is U8 (1 where true).
                pub fn $method(&self, rhs: &Tensor) -> Result<Tensor> {
                    self.cmp(rhs, CmpOp::$name)
                }
            )*
        }
    };
}

cmp_ops! {
    /// `x == y`
    Eq "eq" eq "x == y";
    /// `x != y`
    Ne "ne" ne "x != y";
    /// `x < y`
    Lt "lt" lt "x < y";
    /// `x <= y`
    Le "le" le "x <= y";
    /// `x > y`
    Gt "gt" gt "x > y";
    /// `x >= y`
    Ge "ge" ge "x >= y";
}

/// Broadcast two tensors to their common shape (views, no copies).
pub fn broadcast_pair(op: &'static str, a: &Tensor, b: &Tensor) -> Result<(Tensor, Tensor)> {
    if a.dtype() != b.dtype() {
        return Err(Error::DTypeMismatch { op, lhs: a.dtype(), rhs: b.dtype() });
    }
    if a.shape() == b.shape() {
        return Ok((a.clone(), b.clone()));
    }
    let shape = Shape::broadcast(op, a.shape(), b.shape())?;
    Ok((a.broadcast_to(&shape)?, b.broadcast_to(&shape)?))
}

impl Tensor {
    /// Apply a binary op with NumPy broadcasting; both operands must have the same dtype.
    pub fn binary(&self, rhs: &Tensor, op: BinaryOp) -> Result<Tensor> {
        let (a, b) = broadcast_pair(op.name(), self, rhs)?;
        let (sa, sb) = (a.storage(), b.storage());
        let out = dispatch2!(op.name(), &*sa, &*sb, |x, y| x.binary(a.layout(), y, b.layout(), op))?;
        Ok(Tensor::from_storage(out, a.shape().clone()))
    }

    /// `uop(bop(self, rhs))` in one pass (e.g. a bias add and its ReLU), with
    /// the same values as the two ops one after the other. CPU F32/F64 tensors
    /// are fused, and on CUDA the pairs Dense and Conv2D use (add + relu) for
    /// F32/F16/BF16; anything else runs the two ops.
    pub fn binary_unary(&self, rhs: &Tensor, bop: BinaryOp, uop: UnaryOp, param: f64) -> Result<Tensor> {
        let (a, b) = broadcast_pair(bop.name(), self, rhs)?;
        let fused = {
            let (sa, sb) = (a.storage(), b.storage());
            match (&*sa, &*sb) {
                #[cfg(feature = "cpu")]
                (crate::Storage::Cpu(x), crate::Storage::Cpu(y)) => {
                    cpu::binary_unary(x, a.layout(), y, b.layout(), bop, uop, param).map(crate::Storage::Cpu)
                }
                #[cfg(feature = "cuda")]
                (crate::Storage::Cuda(x), crate::Storage::Cuda(y)) => {
                    crate::cuda::elementwise::binary_unary(x, a.layout(), y, b.layout(), (bop, uop), param)?
                        .map(crate::Storage::Cuda)
                }
                _ => None,
            }
        };
        match fused {
            Some(out) => Ok(Tensor::from_storage(out, a.shape().clone())),
            None => self.binary(rhs, bop)?.unary(uop, param),
        }
    }

    /// `grad * d op(self, rhs) / d(self or rhs)` over the broadcast output shape;
    /// the backward of [`Tensor::binary`] before reduction to the operand's shape.
    pub fn binary_grad(&self, rhs: &Tensor, grad: &Tensor, op: BinaryOp, wrt_rhs: bool) -> Result<Tensor> {
        let (a, b) = broadcast_pair(op.name(), self, rhs)?;
        if grad.shape() != a.shape() {
            return Err(Error::shape_mismatch(
                "binary_grad",
                a.shape(),
                grad.shape(),
                "grad must have the output shape",
            ));
        }
        let (sa, sb, sg) = (a.storage(), b.storage(), grad.storage());
        let out = dispatch3!(op.name(), &*sa, &*sb, &*sg, |x, y, g| x.binary_grad(
            a.layout(),
            y,
            b.layout(),
            g,
            grad.layout(),
            op,
            wrt_rhs
        ))?;
        Ok(Tensor::from_storage(out, a.shape().clone()))
    }

    /// Elementwise comparison with broadcasting; U8 result.
    pub fn cmp(&self, rhs: &Tensor, op: CmpOp) -> Result<Tensor> {
        let (a, b) = broadcast_pair(op.name(), self, rhs)?;
        let (sa, sb) = (a.storage(), b.storage());
        let out = dispatch2!(op.name(), &*sa, &*sb, |x, y| x.cmp(a.layout(), y, b.layout(), op))?;
        Ok(Tensor::from_storage(out, a.shape().clone()))
    }

    /// A 0-d tensor holding `value` in this tensor's dtype, on its device.
    pub fn scalar_like(&self, value: f64) -> Result<Tensor> {
        Tensor::full(value, (), self.dtype(), &self.device())
    }

    /// `self` where `mask != 0`, else `other` (all three broadcast together).
    pub fn where_cond(mask: &Tensor, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        if on_true.dtype() != on_false.dtype() {
            return Err(Error::DTypeMismatch { op: "where_cond", lhs: on_true.dtype(), rhs: on_false.dtype() });
        }
        let s1 = Shape::broadcast("where_cond", mask.shape(), on_true.shape())?;
        let shape = Shape::broadcast("where_cond", &s1, on_false.shape())?;
        let (m, t, f) = (mask.broadcast_to(&shape)?, on_true.broadcast_to(&shape)?, on_false.broadcast_to(&shape)?);
        let (sm, st, sf) = (m.storage(), t.storage(), f.storage());
        let out = dispatch3!("where_cond", &*sm, &*st, &*sf, |a, b, c| a.where_cond(
            m.layout(),
            b,
            t.layout(),
            c,
            f.layout()
        ))?;
        Ok(Tensor::from_storage(out, shape))
    }

    /// `self op value` in one CUDA launch for a contiguous float tensor on a GPU (the same
    /// bits as the broadcast of [`Tensor::scalar_like`], without filling it); `None` elsewhere.
    fn binary_scalar_fused(&self, op: BinaryOp, value: f64) -> Result<Option<Tensor>> {
        #[cfg(feature = "cuda")]
        if let crate::Storage::Cuda(c) = &*self.storage() {
            let out = crate::cuda::elementwise::binary_scalar(c, self.layout(), op, value)?;
            return Ok(out.map(|s| Tensor::from_storage(crate::Storage::Cuda(s), self.shape().clone())));
        }
        let _ = (op, value);
        Ok(None)
    }

    /// Limit every element to `[min, max]` (a NaN element stays NaN; NaN bounds are an error).
    pub fn clamp(&self, min: f64, max: f64) -> Result<Tensor> {
        if min.is_nan() || max.is_nan() || min > max {
            return Err(Error::invalid("clamp", format!("need min <= max (not NaN), got min {min} and max {max}")));
        }
        self.maximum_scalar(min)?.minimum_scalar(max)
    }
}

macro_rules! binary_methods {
    ($($(#[$doc:meta])* $fn:ident, $sfn:ident => $op:ident;)*) => {
        impl Tensor {
            $(
                $(#[$doc])*
                ///
                /// Broadcasts like NumPy; both operands must have the same dtype.
                pub fn $fn(&self, rhs: &Tensor) -> Result<Tensor> {
                    self.binary(rhs, BinaryOp::$op)
                }

                $(#[$doc])*
                ///
                /// Tensor-scalar form: the scalar is converted to this tensor's dtype.
                pub fn $sfn(&self, rhs: f64) -> Result<Tensor> {
                    if let Some(t) = self.binary_scalar_fused(BinaryOp::$op, rhs)? {
                        return Ok(t);
                    }
                    self.binary(&self.scalar_like(rhs)?, BinaryOp::$op)
                }
            )*
        }
    };
}

binary_methods! {
    /// Elementwise `self + rhs`.
    add, add_scalar => Add;
    /// Elementwise `self - rhs`.
    sub, sub_scalar => Sub;
    /// Elementwise `self * rhs`.
    mul, mul_scalar => Mul;
    /// Elementwise `self / rhs`.
    div, div_scalar => Div;
    /// Elementwise `self ^ rhs`.
    pow, pow_scalar => Pow;
    /// Elementwise maximum.
    maximum, maximum_scalar => Maximum;
    /// Elementwise minimum.
    minimum, minimum_scalar => Minimum;
}

#[cfg(feature = "cpu")]
pub(crate) mod cpu {
    use super::{BinaryOp, CmpOp};
    use crate::cpu::{map2, map3, rows2};
    use crate::{CpuStorage, Error, Layout, Result, WithDType};
    use half::{bf16, f16};

    fn mismatch(op: &'static str, a: &CpuStorage, b: &CpuStorage) -> Error {
        Error::DTypeMismatch { op, lhs: a.dtype(), rhs: b.dtype() }
    }

    pub(crate) fn binary(a: &CpuStorage, al: &Layout, b: &CpuStorage, bl: &Layout, op: BinaryOp) -> Result<CpuStorage> {
        Ok(match (a, b) {
            (CpuStorage::F32(x), CpuStorage::F32(y)) => CpuStorage::F32(
                rows2(x, al, y, bl, |x, y, out| op.run_f32(x, y, out))
                    .unwrap_or_else(|| map2(x, al, y, bl, |x, y| op.eval_f32(x, y))),
            ),
            (CpuStorage::F64(x), CpuStorage::F64(y)) => CpuStorage::F64(
                rows2(x, al, y, bl, |x, y, out| op.run_f64(x, y, out))
                    .unwrap_or_else(|| map2(x, al, y, bl, |x, y| op.eval_f64(x, y))),
            ),
            (CpuStorage::F16(x), CpuStorage::F16(y)) => {
                CpuStorage::F16(map2(x, al, y, bl, |x, y| f16::from_f32(op.eval_f32(x.to_f32(), y.to_f32()))))
            }
            (CpuStorage::BF16(x), CpuStorage::BF16(y)) => {
                CpuStorage::BF16(map2(x, al, y, bl, |x, y| bf16::from_f32(op.eval_f32(x.to_f32(), y.to_f32()))))
            }
            (CpuStorage::I64(x), CpuStorage::I64(y)) => CpuStorage::I64(map2(x, al, y, bl, |x, y| op.eval_i64(x, y))),
            (CpuStorage::U8(x), CpuStorage::U8(y)) => {
                CpuStorage::U8(map2(x, al, y, bl, |x, y| u8::from_f64(op.eval_f64(x as f64, y as f64))))
            }
            (a, b) => return Err(mismatch(op.name(), a, b)),
        })
    }

    /// View a fully written run as initialized.
    fn init<T>(part: &mut [std::mem::MaybeUninit<T>]) -> &mut [T] {
        // SAFETY: called right after `run_f*` wrote every element of `part`.
        unsafe { &mut *(part as *mut [std::mem::MaybeUninit<T>] as *mut [T]) }
    }

    crate::cpu::simd_fn! {
        /// `binary_unary` in F32 (AVX2 where the CPU has it, so the activation's exp or
        /// tanh vectorizes too).
        fn binary_unary_f32[][](
            x: &[f32], al: &Layout, y: &[f32], bl: &Layout, bop: BinaryOp, uop: crate::UnaryOp, p: f32,
        ) -> Option<Vec<f32>> {
            rows2(x, al, y, bl, |x, y, out| {
                bop.run_f32(x, y, out);
                uop.apply_f32(p, init(out));
            })
        }
    }

    /// The fused `uop(bop(x, y))` for F32/F64 views that walk as runs; `None` otherwise.
    pub(crate) fn binary_unary(
        a: &CpuStorage,
        al: &Layout,
        b: &CpuStorage,
        bl: &Layout,
        bop: BinaryOp,
        uop: crate::UnaryOp,
        param: f64,
    ) -> Option<CpuStorage> {
        match (a, b) {
            (CpuStorage::F32(x), CpuStorage::F32(y)) => {
                binary_unary_f32(x, al, y, bl, bop, uop, param as f32).map(CpuStorage::F32)
            }
            (CpuStorage::F64(x), CpuStorage::F64(y)) => rows2(x, al, y, bl, |x, y, out| {
                bop.run_f64(x, y, out);
                uop.apply_f64(param, init(out));
            })
            .map(CpuStorage::F64),
            _ => None,
        }
    }

    pub(crate) fn binary_grad(
        a: &CpuStorage,
        al: &Layout,
        b: &CpuStorage,
        bl: &Layout,
        g: &CpuStorage,
        gl: &Layout,
        op: BinaryOp,
        wrt_rhs: bool,
    ) -> Result<CpuStorage> {
        Ok(match (a, b, g) {
            (CpuStorage::F32(x), CpuStorage::F32(y), CpuStorage::F32(g)) => {
                CpuStorage::F32(map3(x, al, y, bl, g, gl, |x, y, g| g * op.deriv_f32(x, y, wrt_rhs)))
            }
            (CpuStorage::F64(x), CpuStorage::F64(y), CpuStorage::F64(g)) => {
                CpuStorage::F64(map3(x, al, y, bl, g, gl, |x, y, g| g * op.deriv_f64(x, y, wrt_rhs)))
            }
            (CpuStorage::F16(x), CpuStorage::F16(y), CpuStorage::F16(g)) => {
                CpuStorage::F16(map3(x, al, y, bl, g, gl, |x, y, g| {
                    f16::from_f32(g.to_f32() * op.deriv_f32(x.to_f32(), y.to_f32(), wrt_rhs))
                }))
            }
            (CpuStorage::BF16(x), CpuStorage::BF16(y), CpuStorage::BF16(g)) => {
                CpuStorage::BF16(map3(x, al, y, bl, g, gl, |x, y, g| {
                    bf16::from_f32(g.to_f32() * op.deriv_f32(x.to_f32(), y.to_f32(), wrt_rhs))
                }))
            }
            (a, _, g) => {
                return Err(Error::UnsupportedDType {
                    op: "binary_grad",
                    dtype: if a.dtype().is_float() { g.dtype() } else { a.dtype() },
                    hint: "gradients need a float dtype and operands of one dtype",
                })
            }
        })
    }

    pub(crate) fn cmp(a: &CpuStorage, al: &Layout, b: &CpuStorage, bl: &Layout, op: CmpOp) -> Result<CpuStorage> {
        let f = |x: bool| x as u8;
        Ok(CpuStorage::U8(match (a, b) {
            (CpuStorage::F32(x), CpuStorage::F32(y)) => map2(x, al, y, bl, |x, y| f(op.eval(x, y))),
            (CpuStorage::F64(x), CpuStorage::F64(y)) => map2(x, al, y, bl, |x, y| f(op.eval(x, y))),
            (CpuStorage::F16(x), CpuStorage::F16(y)) => map2(x, al, y, bl, |x, y| f(op.eval(x, y))),
            (CpuStorage::BF16(x), CpuStorage::BF16(y)) => map2(x, al, y, bl, |x, y| f(op.eval(x, y))),
            (CpuStorage::I64(x), CpuStorage::I64(y)) => map2(x, al, y, bl, |x, y| f(op.eval(x, y))),
            (CpuStorage::U8(x), CpuStorage::U8(y)) => map2(x, al, y, bl, |x, y| f(op.eval(x, y))),
            (a, b) => return Err(mismatch(op.name(), a, b)),
        }))
    }

    pub(crate) fn where_cond(
        m: &CpuStorage,
        ml: &Layout,
        t: &CpuStorage,
        tl: &Layout,
        f: &CpuStorage,
        fl: &Layout,
    ) -> Result<CpuStorage> {
        // The mask may be any dtype: nonzero means true.
        let mask: Vec<bool> = match m {
            CpuStorage::U8(v) => crate::cpu::map1(v, ml, |x| x != 0),
            other => {
                let v = other.copy_strided(ml)?;
                (0..v.len()).map(|i| v.get_f64(i).is_some_and(|x| x != 0.0)).collect()
            }
        };
        let ml = Layout::contiguous(ml.shape().clone());
        Ok(crate::map_cpu_storage!(t, tv => {
            let fv = <_ as WithDTypeSlice>::slice_of(f).ok_or_else(|| mismatch("where_cond", t, f))?;
            map3(&mask, &ml, tv, tl, fv, fl, |c, x, y| if c { x } else { y })
        }))
    }

    /// Borrow the same-typed slice out of another storage (for ops over several operands).
    trait WithDTypeSlice: Sized {
        fn slice_of(s: &CpuStorage) -> Option<&[Self]>;
    }

    impl<T: WithDType> WithDTypeSlice for T {
        fn slice_of(s: &CpuStorage) -> Option<&[T]> {
            T::cpu_slice(s)
        }
    }
}
