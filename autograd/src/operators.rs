//! Operator overloading for [`Var`]: `+ - * /` and unary `-`.
//!
//! Ops can fail (shapes that do not broadcast, mixed dtypes), so every
//! operator returns `Result<Var>` instead of panicking. To keep expressions
//! short, the operators also accept a `Result<Var>` on either side (next to a
//! `Var` or `&Var`), so `(&x * &w + &b)?` works and an error anywhere in the
//! chain comes out at the `?`. Scalars (`f64`) work on either side of a `Var`.

use crate::{Result, Var};
use keel_tensor::BinaryOp;
use std::ops::{Add, Div, Mul, Neg, Sub};

macro_rules! bin_op {
    ($Trait:ident, $method:ident, $op:ident) => {
        impl $Trait<&Var> for &Var {
            type Output = Result<Var>;
            fn $method(self, rhs: &Var) -> Result<Var> {
                self.binary(rhs, BinaryOp::$op)
            }
        }
        impl $Trait<Var> for Var {
            type Output = Result<Var>;
            fn $method(self, rhs: Var) -> Result<Var> {
                self.binary(&rhs, BinaryOp::$op)
            }
        }
        impl $Trait<&Var> for Var {
            type Output = Result<Var>;
            fn $method(self, rhs: &Var) -> Result<Var> {
                self.binary(rhs, BinaryOp::$op)
            }
        }
        impl $Trait<Var> for &Var {
            type Output = Result<Var>;
            fn $method(self, rhs: Var) -> Result<Var> {
                self.binary(&rhs, BinaryOp::$op)
            }
        }
        impl $Trait<&Var> for Result<Var> {
            type Output = Result<Var>;
            fn $method(self, rhs: &Var) -> Result<Var> {
                self?.binary(rhs, BinaryOp::$op)
            }
        }
        impl $Trait<Var> for Result<Var> {
            type Output = Result<Var>;
            fn $method(self, rhs: Var) -> Result<Var> {
                self?.binary(&rhs, BinaryOp::$op)
            }
        }
        impl $Trait<Result<Var>> for &Var {
            type Output = Result<Var>;
            fn $method(self, rhs: Result<Var>) -> Result<Var> {
                self.binary(&rhs?, BinaryOp::$op)
            }
        }
        impl $Trait<Result<Var>> for Var {
            type Output = Result<Var>;
            fn $method(self, rhs: Result<Var>) -> Result<Var> {
                self.binary(&rhs?, BinaryOp::$op)
            }
        }
        impl $Trait<f64> for &Var {
            type Output = Result<Var>;
            fn $method(self, rhs: f64) -> Result<Var> {
                self.binary_scalar(rhs, BinaryOp::$op)
            }
        }
        impl $Trait<f64> for Var {
            type Output = Result<Var>;
            fn $method(self, rhs: f64) -> Result<Var> {
                self.binary_scalar(rhs, BinaryOp::$op)
            }
        }
        impl $Trait<&Var> for f64 {
            type Output = Result<Var>;
            fn $method(self, rhs: &Var) -> Result<Var> {
                rhs.scalar_binary(self, BinaryOp::$op)
            }
        }
        impl $Trait<Var> for f64 {
            type Output = Result<Var>;
            fn $method(self, rhs: Var) -> Result<Var> {
                rhs.scalar_binary(self, BinaryOp::$op)
            }
        }
    };
}

bin_op!(Add, add, Add);
bin_op!(Sub, sub, Sub);
bin_op!(Mul, mul, Mul);
bin_op!(Div, div, Div);

impl Neg for &Var {
    type Output = Result<Var>;
    fn neg(self) -> Result<Var> {
        Var::neg(self)
    }
}

impl Neg for Var {
    type Output = Result<Var>;
    fn neg(self) -> Result<Var> {
        Var::neg(&self)
    }
}
