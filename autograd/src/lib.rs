//! `keel-autograd`: tape-based reverse-mode automatic differentiation over
//! [`keel_tensor::Tensor`].
//!
//! A [`Tape`] records, in execution order, one node per op on a [`Var`] (its
//! inputs and a backward rule owning the tensors it saved). [`Tape::backward`]
//! walks the tape in reverse, sums the gradients of values used more than
//! once, frees each op's saved tensors as soon as its rule has run, and
//! returns [`Gradients`] keyed by [`Param`] id. Backward rules are written with
//! ordinary tensor ops, so they run wherever the data is. Ops on Vars that are
//! not on a live tape record nothing: inference costs only the forward ops.
//!
//! ```
//! use keel_autograd::{Param, Tape, Var};
//! use keel_tensor::Tensor;
//!
//! # fn main() -> keel_autograd::Result<()> {
//! let w = Param::new(Tensor::from_vec(vec![1.0f32, -2.0], (2, 1))?);
//! let x = Var::constant(Tensor::from_vec(vec![3.0f32, 4.0], (1, 2))?);
//!
//! let tape = Tape::new();
//! let y = tape.param(&w);
//! let loss = (x.matmul(&y)?.tanh()? * 2.0)?.sum_all()?; // 2 tanh(x w)
//! let grads = tape.backward(&loss)?;
//!
//! let g = grads.get(&w).unwrap().to_vec::<f32>()?; // 2 (1 - tanh²(-5)) xᵀ
//! let d = 2.0 * (1.0 - (-5.0f32).tanh().powi(2));
//! assert!((g[0] - 3.0 * d).abs() < 1e-6 && (g[1] - 4.0 * d).abs() < 1e-6);
//! # Ok(())
//! # }
//! ```
//!
//! - Ops: the [`keel_tensor::UnaryOp`] and [`keel_tensor::BinaryOp`] families
//!   (one generic rule each, broadcasting included), scalar forms, reductions,
//!   softmax/log-softmax, matmul, conv2d and pooling, views, indexing,
//!   joining/splitting, casts, `where_cond` and `clamp` (see [`ops`]); your own
//!   ops through [`Var::custom_op`].
//! - Operators `+ - * /` and unary `-` return `Result<Var>` rather than
//!   panicking on a shape or dtype mismatch; they also accept a `Result<Var>`
//!   on one side, so `(&x * &w + &b)?` works (see [`operators`]).
//! - Losses: fused, stable [`loss::softmax_cross_entropy`] and
//!   [`loss::sigmoid_binary_cross_entropy`] from logits.
//! - [`gradcheck()`]: finite-difference checks in float64 for any function of Vars.
//! - Errors are typed ([`Error`]): a non-scalar loss without a seed, a Var from
//!   another tape, a rule returning a gradient of the wrong shape, ...
//!
//! Semantics worth knowing:
//! - `backward` consumes the tape; so does dropping it (its saved tensors are
//!   freed either way). Vars of a consumed tape act as constants afterwards,
//!   so feeding one into a new tape is an implicit `detach`. Combining Vars of
//!   two live tapes is [`Error::ForeignVar`].
//! - Integer/boolean results (casts to I64, argmax, comparisons) are never
//!   tracked. A parameter the loss does not reach has no gradient entry
//!   (`None`), not zeros. Parameter gradients are contiguous and have the
//!   parameter's dtype; a parameter used several times gets the sum.
//! - `Var`, `Tape`, `Param` and `Gradients` are `Send + Sync`.

mod error;
pub mod gradcheck;
mod gradients;
pub mod loss;
pub mod operators;
pub mod ops;
mod param;
mod tape;
mod var;

pub use error::{Error, Result};
pub use gradcheck::{gradcheck, gradcheck_with, GradcheckConfig, GradcheckReport};
pub use gradients::Gradients;
pub use loss::{sigmoid_binary_cross_entropy, softmax_cross_entropy, softmax_cross_entropy_and_softmax};
pub use param::{Param, ParamId};
pub use tape::Tape;
pub use var::Var;
