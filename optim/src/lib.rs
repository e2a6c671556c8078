//! `keel-optim`: the optimizers that turn gradients into parameter updates —
//! [`Sgd`], [`Adam`], [`AdamW`], [`RMSprop`], [`Adagrad`], [`Nadam`], [`Adamax`],
//! [`Adadelta`], [`Lion`], [`Ftrl`], and [`LossScaleOptimizer`] around any of them —
//! with Keras's exact
//! update formulas and defaults, gradient clipping (`clipnorm`,
//! `global_clipnorm`, `clipvalue`), decoupled weight decay, learning-rate
//! [`schedule`]s, and checkpointable [`OptimizerState`].
//!
//! ```
//! use keel_autograd::{Param, Tape};
//! use keel_optim::{Adam, Optimizer};
//! use keel_tensor::Tensor;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let w = Param::new(Tensor::from_vec(vec![1.0f32, -2.0], 2)?);
//! let tape = Tape::new();
//! let loss = tape.param(&w).square()?.sum_all()?; // sum(w^2), gradient 2w
//! let grads = tape.backward(&loss)?;
//!
//! let mut opt = Adam::new(0.1);
//! opt.step(&[w.clone()], &grads)?;
//! // Adam's first step moves each weight by about lr against its gradient's sign.
//! let v = w.value().to_vec::<f32>()?;
//! assert!((v[0] - 0.9).abs() < 1e-5 && (v[1] + 1.9).abs() < 1e-5);
//! assert_eq!(opt.iterations(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! - Every optimizer is built the same way: `Adam::default()` (Keras defaults)
//!   or `Adam::new(lr)`, where `lr` is an `f64` or a schedule such as
//!   [`schedule::ExponentialDecay`], then builder options (`.beta_1(..)`,
//!   `.amsgrad(true)`, `.clipnorm(1.0)`, `.weight_decay(1e-4)`, ...).
//! - One [`Optimizer::step`] = Keras `apply`: clip, weight-decay, update, count.
//!   Parameters without a gradient are skipped. Updates run in f32 (f64 for
//!   f64 parameters) with ordinary tensor ops, so they run on the parameters'
//!   device, and are written back with [`keel_autograd::Param::assign`].
//! - Weight decay is decoupled in every optimizer, as in Keras
//!   (`p -= p * weight_decay * lr` before the update), not an L2 term added to
//!   the gradient as in PyTorch's `SGD`/`Adam`.
//! - State save/load maps slots by parameter *position*, because
//!   [`keel_autograd::ParamId`]s are process-local: see [`state`].

mod adadelta;
mod adagrad;
mod adam;
mod adamax;
mod adamw;
mod base;
pub mod clip;
mod error;
mod ftrl;
mod lion;
mod loss_scale;
mod nadam;
mod optimizer;
mod rmsprop;
pub mod schedule;
mod sgd;
pub mod state;

pub use adadelta::Adadelta;
pub use adagrad::Adagrad;
pub use adam::Adam;
pub use adamax::Adamax;
pub use adamw::AdamW;
pub use clip::Clipping;
pub use error::{Error, Result};
pub use ftrl::Ftrl;
pub use lion::Lion;
pub use loss_scale::LossScaleOptimizer;
pub use nadam::Nadam;
pub use optimizer::{Optimizer, StateLayout};
pub use rmsprop::RMSprop;
pub use schedule::{LearningRate, LearningRateSchedule};
pub use sgd::{Sgd, SGD};
pub use state::OptimizerState;
