//! The elementwise families: every [`UnaryOp`] through one rule built on
//! `unary_grad`, every [`BinaryOp`] (with broadcasting) through one rule built
//! on `binary_grad` + [`reduce_to_shape`], their scalar forms, `clamp` and
//! `where_cond`.

use super::reduce_to_shape;
use crate::{Result, Var};
use keel_tensor::{BinaryOp, Tensor, UnaryOp};

impl Var {
    /// Apply a unary op with scalar parameter `param` (the slope of leaky_relu,
    /// the alpha of elu). The gradient is `grad * op'(x)` from the op table.
    pub fn unary(&self, op: UnaryOp, param: f64) -> Result<Var> {
        let out = self.value().unary(op, param)?;
        Var::record(op.name(), &[self], out, |_| {
            let x = self.value().clone();
            move |g: &Tensor| Ok(vec![Some(x.unary_grad(g, op, param)?)])
        })
    }

    /// Apply a binary op with NumPy broadcasting. Each operand's gradient is
    /// `grad * d op / d operand`, summed over the dims it was broadcast along.
    pub fn binary(&self, rhs: &Var, op: BinaryOp) -> Result<Var> {
        let out = self.value().binary(rhs.value(), op)?;
        Var::record(op.name(), &[self, rhs], out, |needs| {
            let (need_a, need_b) = (needs[0], needs[1]);
            let (sa, sb) = (self.shape().clone(), rhs.shape().clone());
            // What each rule needs: Add and Sub nothing, Mul only the other
            // operand (and only if this one wants a gradient), the rest both.
            let (a, b) = match op {
                BinaryOp::Add | BinaryOp::Sub => (None, None),
                BinaryOp::Mul => (need_b.then(|| self.value().clone()), need_a.then(|| rhs.value().clone())),
                _ => (Some(self.value().clone()), Some(rhs.value().clone())),
            };
            move |g: &Tensor| {
                let side = |wrt_rhs: bool| -> Result<Tensor> {
                    let full = match (op, &a, &b) {
                        (BinaryOp::Add, _, _) => g.clone(),
                        (BinaryOp::Sub, _, _) if wrt_rhs => g.neg()?,
                        (BinaryOp::Sub, _, _) => g.clone(),
                        (BinaryOp::Mul, Some(a), _) if wrt_rhs => g.mul(a)?,
                        (BinaryOp::Mul, _, Some(b)) if !wrt_rhs => g.mul(b)?,
                        (_, Some(a), Some(b)) => a.binary_grad(b, g, op, wrt_rhs)?,
                        _ => return Err(crate::Error::invalid(op.name(), "internal: operand not saved")),
                    };
                    Ok(reduce_to_shape(&full, if wrt_rhs { &sb } else { &sa })?)
                };
                let ga = if need_a { Some(side(false)?) } else { None };
                let gb = if need_b { Some(side(true)?) } else { None };
                Ok(vec![ga, gb])
            }
        })
    }

    /// `relu(self + rhs)` (broadcasting, e.g. a bias) in one fused pass, with
    /// the same values and gradients as `add` then `relu`. The rule saves only
    /// the output: `relu'(z) = relu'(relu(z))`.
    pub fn add_relu(&self, rhs: &Var) -> Result<Var> {
        let out = self.value().binary_unary(rhs.value(), BinaryOp::Add, UnaryOp::Relu, 0.0)?;
        Var::record("add_relu", &[self, rhs], out.clone(), |needs| {
            let (need_a, need_b) = (needs[0], needs[1]);
            let (sa, sb) = (self.shape().clone(), rhs.shape().clone());
            move |g: &Tensor| {
                // a per-channel rhs (a bias) takes its gradient from the ReLU's backward pass
                let (gz, gb) = super::relu_bias_grads(&out, g, need_b.then_some(&sb))?;
                let ga = if need_a { Some(reduce_to_shape(&gz, &sa)?) } else { None };
                Ok(vec![ga, gb])
            }
        })
    }

    /// `self op scalar`, the scalar taken in this Var's dtype.
    pub fn binary_scalar(&self, rhs: f64, op: BinaryOp) -> Result<Var> {
        let s = Var::constant(self.value().scalar_like(rhs)?);
        self.binary(&s, op)
    }

    /// `scalar op self`, the scalar taken in this Var's dtype.
    pub fn scalar_binary(&self, lhs: f64, op: BinaryOp) -> Result<Var> {
        let s = Var::constant(self.value().scalar_like(lhs)?);
        s.binary(self, op)
    }

    /// Elementwise `self + rhs` (broadcasting).
    pub fn add(&self, rhs: &Var) -> Result<Var> {
        self.binary(rhs, BinaryOp::Add)
    }

    /// Elementwise `self - rhs` (broadcasting).
    pub fn sub(&self, rhs: &Var) -> Result<Var> {
        self.binary(rhs, BinaryOp::Sub)
    }

    /// Elementwise `self * rhs` (broadcasting).
    pub fn mul(&self, rhs: &Var) -> Result<Var> {
        self.binary(rhs, BinaryOp::Mul)
    }

    /// Elementwise `self / rhs` (broadcasting).
    pub fn div(&self, rhs: &Var) -> Result<Var> {
        self.binary(rhs, BinaryOp::Div)
    }

    /// Elementwise `self ^ rhs` (broadcasting; gradient wrt `rhs` is 0 where `self <= 0`).
    pub fn pow(&self, rhs: &Var) -> Result<Var> {
        self.binary(rhs, BinaryOp::Pow)
    }

    /// Elementwise maximum (ties split the gradient evenly).
    pub fn maximum(&self, rhs: &Var) -> Result<Var> {
        self.binary(rhs, BinaryOp::Maximum)
    }

    /// Elementwise minimum (ties split the gradient evenly).
    pub fn minimum(&self, rhs: &Var) -> Result<Var> {
        self.binary(rhs, BinaryOp::Minimum)
    }

    /// `self + s`.
    pub fn add_scalar(&self, s: f64) -> Result<Var> {
        self.binary_scalar(s, BinaryOp::Add)
    }

    /// `self - s`.
    pub fn sub_scalar(&self, s: f64) -> Result<Var> {
        self.binary_scalar(s, BinaryOp::Sub)
    }

    /// `self * s`.
    pub fn mul_scalar(&self, s: f64) -> Result<Var> {
        self.binary_scalar(s, BinaryOp::Mul)
    }

    /// `self / s`.
    pub fn div_scalar(&self, s: f64) -> Result<Var> {
        self.binary_scalar(s, BinaryOp::Div)
    }

    /// `self ^ s`.
    pub fn pow_scalar(&self, s: f64) -> Result<Var> {
        self.binary_scalar(s, BinaryOp::Pow)
    }

    /// `max(self, s)`.
    pub fn maximum_scalar(&self, s: f64) -> Result<Var> {
        self.binary_scalar(s, BinaryOp::Maximum)
    }

    /// `min(self, s)`.
    pub fn minimum_scalar(&self, s: f64) -> Result<Var> {
        self.binary_scalar(s, BinaryOp::Minimum)
    }

    /// Limit every element to `[min, max]`; the gradient passes where `min <= x <= max`.
    pub fn clamp(&self, min: f64, max: f64) -> Result<Var> {
        let out = self.value().clamp(min, max)?;
        Var::record("clamp", &[self], out, |_| {
            let x = self.value().clone();
            move |g: &Tensor| {
                let zero = g.scalar_like(0.0)?;
                let inside_lo = x.ge(&x.scalar_like(min)?)?;
                let inside_hi = x.le(&x.scalar_like(max)?)?;
                let g = Tensor::where_cond(&inside_lo, g, &zero)?;
                Ok(vec![Some(Tensor::where_cond(&inside_hi, &g, &zero)?)])
            }
        })
    }

    /// `on_true` where `mask != 0`, else `on_false` (all three broadcast); the
    /// gradient flows to the branch each element was taken from.
    pub fn where_cond(mask: &Tensor, on_true: &Var, on_false: &Var) -> Result<Var> {
        let out = Tensor::where_cond(mask, on_true.value(), on_false.value())?;
        Var::record("where_cond", &[on_true, on_false], out, |needs| {
            let (need_t, need_f) = (needs[0], needs[1]);
            let mask = mask.clone();
            let (st, sf) = (on_true.shape().clone(), on_false.shape().clone());
            move |g: &Tensor| {
                let zero = g.scalar_like(0.0)?;
                let gt = if need_t { Some(reduce_to_shape(&Tensor::where_cond(&mask, g, &zero)?, &st)?) } else { None };
                let gf = if need_f { Some(reduce_to_shape(&Tensor::where_cond(&mask, &zero, g)?, &sf)?) } else { None };
                Ok(vec![gt, gf])
            }
        })
    }
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $fn:ident => $op:ident;)*) => {
        impl Var {
            $( $(#[$doc])* pub fn $fn(&self) -> Result<Var> { self.unary(UnaryOp::$op, 0.0) } )*
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
    /// Elementwise GELU (exact).
    gelu => Gelu;
    /// Elementwise SiLU (swish).
    silu => Silu;
    /// Elementwise softplus.
    softplus => Softplus;
    /// Elementwise sign (its gradient is 0).
    sign => Sign;
}

impl Var {
    /// Elementwise leaky ReLU with negative slope `alpha`.
    pub fn leaky_relu(&self, alpha: f64) -> Result<Var> {
        self.unary(UnaryOp::LeakyRelu, alpha)
    }

    /// Elementwise ELU with parameter `alpha`.
    pub fn elu(&self, alpha: f64) -> Result<Var> {
        self.unary(UnaryOp::Elu, alpha)
    }
}
