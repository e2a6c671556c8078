//! Elementwise unary ops: one table row per op (CPU scalar function, its
//! derivative, and the CUDA C expressions of both).
//!
//! A row reads `Name "name" |x, a| value, |x, a| derivative, "cuda value", "cuda derivative"`,
//! where `a` is the op's scalar parameter (the slope of `leaky_relu`, the alpha of
//! `elu`; ignored by the others). The Rust expressions are instantiated for f32 and
//! f64; the CUDA expressions are `float` C expressions of `x` and `a`.

use crate::storage::{dispatch1, dispatch2, BackendStorage};
use crate::{Error, Result, Tensor};

/// Extra float functions the table needs, for both f32 and f64. In f32, `exp_`, `tanh_`
/// and `sigmoid_` are the vectorizable versions of `super::vmath`; in f64 (the
/// reference dtype) `std`'s.
pub(crate) trait FloatExt: Copy {
    /// `e^x`.
    fn exp_(self) -> Self;
    /// `tanh(x)`.
    fn tanh_(self) -> Self;
    /// The logistic sigmoid, `1 / (1 + e^-x)`, as `e^x / (1 + e^x)` for negative `x`.
    fn sigmoid_(self) -> Self;
    /// GELU, `x * Phi(x)`.
    fn gelu_(self) -> Self;
    /// GELU's derivative.
    fn gelu_grad_(self) -> Self;
}

macro_rules! float_ext {
    ($t:ident, $erf:path, $exp:path, $tanh:path) => {
        impl FloatExt for $t {
            #[inline(always)]
            fn exp_(self) -> $t {
                $exp(self)
            }
            #[inline(always)]
            fn tanh_(self) -> $t {
                $tanh(self)
            }
            #[inline(always)]
            fn sigmoid_(self) -> $t {
                // one exp, of -|x|, and a select (no branch: loops over it vectorize)
                let e = (-self.abs()).exp_();
                let num = if self >= 0.0 { 1.0 } else { e };
                num / (1.0 + e)
            }
            fn gelu_(self) -> $t {
                0.5 * self * (1.0 + $erf(self * std::$t::consts::FRAC_1_SQRT_2))
            }
            fn gelu_grad_(self) -> $t {
                // Phi(x) + x * phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi)
                let inv_sqrt_2pi = std::$t::consts::FRAC_1_SQRT_2 * std::$t::consts::FRAC_2_SQRT_PI * 0.5;
                0.5 * (1.0 + $erf(self * std::$t::consts::FRAC_1_SQRT_2))
                    + self * (-0.5 * self * self).exp_() * inv_sqrt_2pi
            }
        }
    };
}
float_ext!(f32, libm::erff, super::vmath::exp_f32, super::vmath::tanh_f32);
float_ext!(f64, libm::erf, f64::exp, f64::tanh);

macro_rules! unary_ops {
    ($( $(#[$doc:meta])* $name:ident $str:literal |$x:ident, $a:ident| $f:expr, |$dx:ident, $da:ident| $d:expr, $cuda:literal, $cuda_d:literal; )*) => {
        /// An elementwise unary op (see the table in this module).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum UnaryOp {
            $( $(#[$doc])* $name, )*
        }

        impl UnaryOp {
            /// Every unary op, in table order.
            pub const ALL: &'static [UnaryOp] = &[$(UnaryOp::$name),*];

            /// The op's name as used in errors and kernel names.
            pub fn name(self) -> &'static str {
                match self { $(UnaryOp::$name => $str,)* }
            }

            /// The value in f32.
            #[allow(unused_variables)]
            #[inline]
            pub fn eval_f32(self, x_: f32, a_: f32) -> f32 {
                match self { $(UnaryOp::$name => { let ($x, $a) = (x_, a_); $f },)* }
            }

            /// The value in f64.
            #[allow(unused_variables)]
            #[inline]
            pub fn eval_f64(self, x_: f64, a_: f64) -> f64 {
                match self { $(UnaryOp::$name => { let ($x, $a) = (x_, a_); $f },)* }
            }

            /// The derivative d op(x) / dx in f32.
            #[allow(unused_variables)]
            #[inline]
            pub fn deriv_f32(self, x_: f32, a_: f32) -> f32 {
                match self { $(UnaryOp::$name => { let ($dx, $da) = (x_, a_); $d },)* }
            }

            /// The derivative d op(x) / dx in f64.
            #[allow(unused_variables)]
            #[inline]
            pub fn deriv_f64(self, x_: f64, a_: f64) -> f64 {
                match self { $(UnaryOp::$name => { let ($dx, $da) = (x_, a_); $d },)* }
            }

            /// `out[i] = op(x[i])` over one run, in f32: one loop per op, so each vectorizes.
            #[cfg(feature = "cpu")]
            #[inline(always)]
            #[allow(unused_variables)]
            pub(crate) fn run_f32(self, x: crate::cpu::Run<'_, f32>, a_: f32, out: &mut [std::mem::MaybeUninit<f32>]) {
                use crate::cpu::Run;
                match self { $(UnaryOp::$name => {
                    let $a = a_;
                    match x {
                        Run::Slice(xs) => for (o, &$x) in out.iter_mut().zip(xs) { o.write($f); },
                        Run::Splat($x) => { let v: f32 = $f; out.iter_mut().for_each(|o| { o.write(v); }); }
                    }
                },)* }
            }

            /// `out[i] = op(x[i])` over one run, in f64.
            #[cfg(feature = "cpu")]
            #[allow(unused_variables)]
            pub(crate) fn run_f64(self, x: crate::cpu::Run<'_, f64>, a_: f64, out: &mut [std::mem::MaybeUninit<f64>]) {
                use crate::cpu::Run;
                match self { $(UnaryOp::$name => {
                    let $a = a_;
                    match x {
                        Run::Slice(xs) => for (o, &$x) in out.iter_mut().zip(xs) { o.write($f); },
                        Run::Splat($x) => { let v: f64 = $f; out.iter_mut().for_each(|o| { o.write(v); }); }
                    }
                },)* }
            }

            /// `v = op(v)` in place over a slice, in f32.
            #[cfg(feature = "cpu")]
            #[inline(always)]
            #[allow(unused_variables)]
            pub(crate) fn apply_f32(self, a_: f32, data: &mut [f32]) {
                match self { $(UnaryOp::$name => {
                    let $a = a_;
                    for v in data.iter_mut() { let $x = *v; *v = $f; }
                },)* }
            }

            /// `v = op(v)` in place over a slice, in f64.
            #[cfg(feature = "cpu")]
            #[allow(unused_variables)]
            pub(crate) fn apply_f64(self, a_: f64, data: &mut [f64]) {
                match self { $(UnaryOp::$name => {
                    let $a = a_;
                    for v in data.iter_mut() { let $x = *v; *v = $f; }
                },)* }
            }

            /// `out[i] = g[i] * op'(x[i])` over one run, in f32.
            #[cfg(feature = "cpu")]
            #[inline(always)]
            #[allow(unused_variables)]
            pub(crate) fn grad_run_f32(
                self, x: crate::cpu::Run<'_, f32>, g: crate::cpu::Run<'_, f32>, a_: f32, out: &mut [std::mem::MaybeUninit<f32>],
            ) {
                use crate::cpu::Run;
                match self { $(UnaryOp::$name => {
                    let $da = a_;
                    match (x, g) {
                        (Run::Slice(xs), Run::Slice(gs)) => {
                            for ((o, &$dx), &g) in out.iter_mut().zip(xs).zip(gs) { let d: f32 = $d; o.write(g * d); }
                        }
                        (Run::Slice(xs), Run::Splat(g)) => for (o, &$dx) in out.iter_mut().zip(xs) { let d: f32 = $d; o.write(g * d); },
                        (Run::Splat($dx), Run::Slice(gs)) => { let d: f32 = $d; for (o, &g) in out.iter_mut().zip(gs) { o.write(g * d); } }
                        (Run::Splat($dx), Run::Splat(g)) => { let d: f32 = $d; let v = g * d; out.iter_mut().for_each(|o| { o.write(v); }); }
                    }
                },)* }
            }

            /// `out[i] = g[i] * op'(x[i])` over one run, in f64.
            #[cfg(feature = "cpu")]
            #[allow(unused_variables)]
            pub(crate) fn grad_run_f64(
                self, x: crate::cpu::Run<'_, f64>, g: crate::cpu::Run<'_, f64>, a_: f64, out: &mut [std::mem::MaybeUninit<f64>],
            ) {
                use crate::cpu::Run;
                match self { $(UnaryOp::$name => {
                    let $da = a_;
                    match (x, g) {
                        (Run::Slice(xs), Run::Slice(gs)) => {
                            for ((o, &$dx), &g) in out.iter_mut().zip(xs).zip(gs) { let d: f64 = $d; o.write(g * d); }
                        }
                        (Run::Slice(xs), Run::Splat(g)) => for (o, &$dx) in out.iter_mut().zip(xs) { let d: f64 = $d; o.write(g * d); },
                        (Run::Splat($dx), Run::Slice(gs)) => { let d: f64 = $d; for (o, &g) in out.iter_mut().zip(gs) { o.write(g * d); } }
                        (Run::Splat($dx), Run::Splat(g)) => { let d: f64 = $d; let v = g * d; out.iter_mut().for_each(|o| { o.write(v); }); }
                    }
                },)* }
            }

            /// The CUDA C expression (of `float x`, `float a`) computing the value.
            pub fn cuda_expr(self) -> &'static str {
                match self { $(UnaryOp::$name => $cuda,)* }
            }

            /// The CUDA C expression (of `float x`, `float a`) computing the derivative.
            pub fn cuda_deriv_expr(self) -> &'static str {
                match self { $(UnaryOp::$name => $cuda_d,)* }
            }
        }
    };
}

unary_ops! {
    /// `-x`
    Neg "neg" |x, a| -x, |x, a| -1.0, "-x", "-1.0f";
    /// `|x|`
    Abs "abs" |x, a| x.abs(), |x, a| if x > 0.0 { 1.0 } else if x < 0.0 { -1.0 } else { 0.0 },
        "fabsf(x)", "(float)((x > 0.f) - (x < 0.f))";
    /// `e^x`
    Exp "exp" |x, a| x.exp_(), |x, a| x.exp_(), "expf(x)", "expf(x)";
    /// natural logarithm
    Log "log" |x, a| x.ln(), |x, a| 1.0 / x, "logf(x)", "1.f / x";
    /// square root
    Sqrt "sqrt" |x, a| x.sqrt(), |x, a| 0.5 / x.sqrt(), "sqrtf(x)", "0.5f / sqrtf(x)";
    /// `1 / sqrt(x)`
    Rsqrt "rsqrt" |x, a| 1.0 / x.sqrt(), |x, a| -0.5 / (x * x.sqrt()), "rsqrtf(x)", "-0.5f * rsqrtf(x) / x";
    /// `x * x`
    Square "square" |x, a| x * x, |x, a| 2.0 * x, "x * x", "2.f * x";
    /// `1 / x`
    Recip "recip" |x, a| 1.0 / x, |x, a| -1.0 / (x * x), "1.f / x", "-1.f / (x * x)";
    /// sine
    Sin "sin" |x, a| x.sin(), |x, a| x.cos(), "sinf(x)", "cosf(x)";
    /// cosine
    Cos "cos" |x, a| x.cos(), |x, a| -x.sin(), "cosf(x)", "-sinf(x)";
    /// `max(x, 0)`; NaN stays NaN (as in TensorFlow and PyTorch), so a NaN reaches the loss
    Relu "relu" |x, a| if x <= 0.0 { 0.0 } else { x }, |x, a| if x > 0.0 { 1.0 } else { 0.0 },
        "(x <= 0.f ? 0.f : x)", "(x > 0.f ? 1.f : 0.f)";
    /// `x` if positive else `a * x`
    LeakyRelu "leaky_relu" |x, a| if x > 0.0 { x } else { a * x }, |x, a| if x > 0.0 { 1.0 } else { a },
        "(x > 0.f ? x : a * x)", "(x > 0.f ? 1.f : a)";
    /// `x` if positive else `a * (e^x - 1)`
    Elu "elu" |x, a| if x > 0.0 { x } else { a * x.exp_m1() }, |x, a| if x > 0.0 { 1.0 } else { a * x.exp_() },
        "(x > 0.f ? x : a * expm1f(x))", "(x > 0.f ? 1.f : a * expf(x))";
    /// logistic sigmoid `1 / (1 + e^-x)`, computed without overflow
    Sigmoid "sigmoid" |x, a| x.sigmoid_(), |x, a| { let s = x.sigmoid_(); s * (1.0 - s) },
        "(x >= 0.f ? 1.f / (1.f + expf(-x)) : expf(x) / (1.f + expf(x)))",
        "(x >= 0.f ? 1.f / (1.f + expf(-x)) : expf(x) / (1.f + expf(x))) * (1.f - (x >= 0.f ? 1.f / (1.f + expf(-x)) : expf(x) / (1.f + expf(x))))";
    /// hyperbolic tangent
    Tanh "tanh" |x, a| x.tanh_(), |x, a| { let t = x.tanh_(); 1.0 - t * t }, "tanhf(x)", "(1.f - tanhf(x) * tanhf(x))";
    /// GELU, exact form `x * Phi(x)` (Keras `approximate=False`, PyTorch default)
    Gelu "gelu" |x, a| x.gelu_(), |x, a| x.gelu_grad_(),
        "0.5f * x * (1.f + erff(x * 0.7071067811865476f))",
        "(0.5f * (1.f + erff(x * 0.7071067811865476f)) + x * expf(-0.5f * x * x) * 0.3989422804014327f)";
    /// SiLU / swish `x * sigmoid(x)`
    Silu "silu" |x, a| x * x.sigmoid_(), |x, a| { let s = x.sigmoid_(); s * (1.0 + x * (1.0 - s)) },
        "x / (1.f + expf(-x))",
        "(1.f / (1.f + expf(-x))) * (1.f + x * (1.f - 1.f / (1.f + expf(-x))))";
    /// softplus `ln(1 + e^x)`, computed without overflow
    Softplus "softplus" |x, a| (if x > 0.0 { x } else { 0.0 }) + (-x.abs()).exp_().ln_1p(), |x, a| x.sigmoid_(),
        "(fmaxf(x, 0.f) + log1pf(expf(-fabsf(x))))",
        "(x >= 0.f ? 1.f / (1.f + expf(-x)) : expf(x) / (1.f + expf(x)))";
    /// sign: -1, 0 or 1 (NaN stays NaN, as in NumPy)
    Sign "sign" |x, a| if x > 0.0 { 1.0 } else if x < 0.0 { -1.0 } else if x.is_nan() { x } else { 0.0 }, |x, a| 0.0,
        "(x != x ? x : (float)((x > 0.f) - (x < 0.f)))", "0.f";
}

impl Tensor {
    /// Apply a unary op with scalar parameter `param` (used by leaky_relu and elu).
    pub fn unary(&self, op: UnaryOp, param: f64) -> Result<Tensor> {
        if !self.dtype().is_float() {
            return Err(Error::UnsupportedDType {
                op: op.name(),
                dtype: self.dtype(),
                hint: "cast to a float dtype first",
            });
        }
        let s = self.storage();
        let out = dispatch1!(&*s, |b| b.unary(self.layout(), op, param))?;
        Ok(Tensor::from_storage(out, self.shape().clone()))
    }

    /// `grad * op'(self)`: the backward of [`Tensor::unary`] (`grad` has this tensor's shape).
    pub fn unary_grad(&self, grad: &Tensor, op: UnaryOp, param: f64) -> Result<Tensor> {
        if self.shape() != grad.shape() {
            return Err(Error::shape_mismatch("unary_grad", self.shape(), grad.shape(), ""));
        }
        if self.dtype() != grad.dtype() {
            return Err(Error::DTypeMismatch { op: "unary_grad", lhs: self.dtype(), rhs: grad.dtype() });
        }
        if !self.dtype().is_float() {
            return Err(Error::UnsupportedDType {
                op: op.name(),
                dtype: self.dtype(),
                hint: "cast to a float dtype first",
            });
        }
        let (s, g) = (self.storage(), grad.storage());
        let out = dispatch2!("unary_grad", &*s, &*g, |a, b| a.unary_grad(self.layout(), b, grad.layout(), op, param))?;
        Ok(Tensor::from_storage(out, self.shape().clone()))
    }

    /// The backward of a bias add followed by a ReLU whose output is `self` (a Dense or
    /// Conv2D layer with `activation="relu"`): `gz = grad * relu'(self)`
    /// ([`Tensor::unary_grad`]) and the bias gradient, `gz` summed over every axis but the
    /// last (shape `[C]`). One launch on CUDA for contiguous F32/F16/BF16 operands with
    /// `C > 1`, with the values and bits of the two ops, which run elsewhere.
    pub fn relu_grad_with_bias_grad(&self, grad: &Tensor) -> Result<(Tensor, Tensor)> {
        const OP: &str = "relu_grad_with_bias_grad";
        if self.rank() == 0 {
            return Err(Error::invalid(OP, "the ReLU's output needs a channel axis"));
        }
        #[cfg(feature = "cuda")]
        if let (Some(&c), true) = (self.dims().last(), self.shape() == grad.shape() && self.dtype() == grad.dtype()) {
            use crate::Storage;
            let fused = match (&*self.storage(), &*grad.storage()) {
                (Storage::Cuda(y), Storage::Cuda(g)) => {
                    crate::cuda::reduce::relu_backward_sum(y, self.layout(), g, grad.layout(), c)?
                }
                _ => None,
            };
            if let Some((gz, bias)) = fused {
                let gz = Tensor::from_storage(Storage::Cuda(gz), self.shape().clone());
                return Ok((gz, Tensor::from_storage(Storage::Cuda(bias), crate::Shape::from(vec![c]))));
            }
        }
        #[cfg(feature = "cpu")]
        if let Some(fused) = self.relu_grad_with_bias_grad_cpu(grad)? {
            return Ok(fused);
        }
        let gz = self.unary_grad(grad, UnaryOp::Relu, 0.0)?;
        if self.rank() == 1 {
            return Ok((gz.clone(), gz));
        }
        let lead: Vec<isize> = (0..self.rank() as isize - 1).collect();
        let bias = gz.sum(&lead, false)?;
        Ok((gz, bias))
    }
}

impl Tensor {
    /// The CPU's one-pass [`Tensor::relu_grad_with_bias_grad`] for contiguous F32/F64 `self`
    /// and `grad` of one shape (rank >= 2); `None` for anything else.
    #[cfg(feature = "cpu")]
    fn relu_grad_with_bias_grad_cpu(&self, grad: &Tensor) -> Result<Option<(Tensor, Tensor)>> {
        use crate::{CpuStorage, Storage};
        let (Some(&c), Some(ys), Some(gs)) =
            (self.dims().last(), self.layout().contiguous_range(), grad.layout().contiguous_range())
        else {
            return Ok(None);
        };
        if self.rank() < 2 || self.shape() != grad.shape() || c == 0 {
            return Ok(None);
        }
        let (sy, sg) = (self.storage(), grad.storage());
        let (gz, bias) = match (&*sy, &*sg) {
            (Storage::Cpu(CpuStorage::F32(y)), Storage::Cpu(CpuStorage::F32(g))) => {
                let (gz, b) = crate::ops::reduce::cpu::relu_grad_column_sums(&y[ys.0..ys.1], &g[gs.0..gs.1], c);
                (CpuStorage::F32(gz), CpuStorage::F32(b.into_iter().map(|v| v as f32).collect()))
            }
            (Storage::Cpu(CpuStorage::F64(y)), Storage::Cpu(CpuStorage::F64(g))) => {
                let (gz, b) = crate::ops::reduce::cpu::relu_grad_column_sums(&y[ys.0..ys.1], &g[gs.0..gs.1], c);
                (CpuStorage::F64(gz), CpuStorage::F64(b))
            }
            _ => return Ok(None),
        };
        Ok(Some((
            Tensor::from_storage(Storage::Cpu(gz), self.shape().clone()),
            Tensor::from_storage(Storage::Cpu(bias), crate::Shape::from(vec![c])),
        )))
    }
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $fn:ident => $op:ident;)*) => {
        impl Tensor {
            $( $(#[$doc])* pub fn $fn(&self) -> Result<Tensor> { self.unary(UnaryOp::$op, 0.0) } )*
        }
    };
}

unary_methods! {
    /// Elementwise `-x`.
    neg => Neg;
    /// Elementwise `|x|`.
    abs => Abs;
    /// Elementwise `e^x`.
    exp => Exp;
    /// Elementwise natural logarithm.
    log => Log;
    /// Elementwise square root.
    sqrt => Sqrt;
    /// Elementwise `1 / sqrt(x)`.
    rsqrt => Rsqrt;
    /// Elementwise `x * x`.
    square => Square;
    /// Elementwise `1 / x`.
    recip => Recip;
    /// Elementwise sine.
    sin => Sin;
    /// Elementwise cosine.
    cos => Cos;
    /// Elementwise `max(x, 0)`.
    relu => Relu;
    /// Elementwise logistic sigmoid.
    sigmoid => Sigmoid;
    /// Elementwise hyperbolic tangent.
    tanh => Tanh;
    /// Elementwise GELU (exact, erf-based).
    gelu => Gelu;
    /// Elementwise SiLU (swish).
    silu => Silu;
    /// Elementwise softplus.
    softplus => Softplus;
    /// Elementwise sign (-1, 0, 1; NaN stays NaN).
    sign => Sign;
}

impl Tensor {
    /// Elementwise leaky ReLU with negative slope `alpha`.
    pub fn leaky_relu(&self, alpha: f64) -> Result<Tensor> {
        self.unary(UnaryOp::LeakyRelu, alpha)
    }

    /// Elementwise ELU with parameter `alpha`.
    pub fn elu(&self, alpha: f64) -> Result<Tensor> {
        self.unary(UnaryOp::Elu, alpha)
    }
}

#[cfg(feature = "cpu")]
pub(crate) mod cpu {
    use super::UnaryOp;
    use crate::cpu::{map1, map2, rows1, rows2};
    use crate::{CpuStorage, Error, Layout, Result};
    use half::{bf16, f16};

    crate::cpu::simd_fn! {
        /// `unary` over F32 runs (AVX2 where the CPU has it: exp, tanh and sigmoid
        /// vectorize, see `super::super::vmath`). `None` when the view has no runs.
        fn rows_f32[][](v: &[f32], l: &Layout, op: UnaryOp, p: f32) -> Option<Vec<f32>> {
            rows1(v, l, |x, out| op.run_f32(x, p, out))
        }
    }

    crate::cpu::simd_fn! {
        /// `unary_grad` over F32 runs, compiled like [`rows_f32`].
        fn grad_rows_f32[][](x: &[f32], l: &Layout, g: &[f32], gl: &Layout, op: UnaryOp, p: f32) -> Option<Vec<f32>> {
            rows2(x, l, g, gl, |x, g, out| op.grad_run_f32(x, g, p, out))
        }
    }

    pub(crate) fn unary(s: &CpuStorage, l: &Layout, op: UnaryOp, p: f64) -> Result<CpuStorage> {
        let pf = p as f32;
        Ok(match s {
            CpuStorage::F32(v) => {
                CpuStorage::F32(rows_f32(v, l, op, pf).unwrap_or_else(|| map1(v, l, |x| op.eval_f32(x, pf))))
            }
            CpuStorage::F64(v) => CpuStorage::F64(
                rows1(v, l, |x, out| op.run_f64(x, p, out)).unwrap_or_else(|| map1(v, l, |x| op.eval_f64(x, p))),
            ),
            CpuStorage::F16(v) => CpuStorage::F16(map1(v, l, |x| f16::from_f32(op.eval_f32(x.to_f32(), pf)))),
            CpuStorage::BF16(v) => CpuStorage::BF16(map1(v, l, |x| bf16::from_f32(op.eval_f32(x.to_f32(), pf)))),
            other => {
                return Err(Error::UnsupportedDType {
                    op: op.name(),
                    dtype: other.dtype(),
                    hint: "cast to a float dtype first",
                })
            }
        })
    }

    pub(crate) fn unary_grad(
        s: &CpuStorage,
        l: &Layout,
        g: &CpuStorage,
        gl: &Layout,
        op: UnaryOp,
        p: f64,
    ) -> Result<CpuStorage> {
        let pf = p as f32;
        Ok(match (s, g) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => CpuStorage::F32(
                grad_rows_f32(x, l, g, gl, op, pf).unwrap_or_else(|| map2(x, l, g, gl, |x, g| g * op.deriv_f32(x, pf))),
            ),
            (CpuStorage::F64(x), CpuStorage::F64(g)) => CpuStorage::F64(
                rows2(x, l, g, gl, |x, g, out| op.grad_run_f64(x, g, p, out))
                    .unwrap_or_else(|| map2(x, l, g, gl, |x, g| g * op.deriv_f64(x, p))),
            ),
            (CpuStorage::F16(x), CpuStorage::F16(g)) => {
                CpuStorage::F16(map2(x, l, g, gl, |x, g| f16::from_f32(g.to_f32() * op.deriv_f32(x.to_f32(), pf))))
            }
            (CpuStorage::BF16(x), CpuStorage::BF16(g)) => {
                CpuStorage::BF16(map2(x, l, g, gl, |x, g| bf16::from_f32(g.to_f32() * op.deriv_f32(x.to_f32(), pf))))
            }
            (a, b) => return Err(Error::DTypeMismatch { op: "unary_grad", lhs: a.dtype(), rhs: b.dtype() }),
        })
    }
}
