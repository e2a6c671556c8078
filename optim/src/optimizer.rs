//! The [`Optimizer`] trait.

use crate::{OptimizerState, Result};
use keel_autograd::{Gradients, Param};

/// Updates parameters from their gradients (Keras `optimizer.apply`).
///
/// One [`Optimizer::step`] is one Keras iteration: clip the gradients, apply
/// decoupled weight decay, run the update rule on every parameter that has a
/// gradient, then count the iteration.
pub trait Optimizer: Send {
    /// The optimizer's Keras name (`"SGD"`, `"Adam"`, `"AdamW"`, `"RMSprop"`, `"Adagrad"`,
    /// `"Nadam"`, `"Adamax"`, `"Adadelta"`, `"Lion"`, `"Ftrl"`).
    fn name(&self) -> &'static str;

    /// Apply one update to `params` from `grads`.
    ///
    /// Parameters without a gradient in `grads` are left untouched (and their
    /// slots too); a parameter listed twice is updated once. When no listed
    /// parameter has a gradient the call does nothing (the iteration count
    /// does not advance). Configuration errors, gradient shape/dtype errors and
    /// loaded-state mismatches are reported before any parameter changes.
    fn step(&mut self, params: &[Param], grads: &Gradients) -> Result<()>;

    /// The learning rate the next step will use (the schedule's value at [`Optimizer::iterations`]).
    fn learning_rate(&self) -> f64;

    /// Use the constant rate `lr` from now on (replaces a schedule, if one was set).
    fn set_learning_rate(&mut self, lr: f64);

    /// True when a schedule, not a constant, gives the learning rate (callbacks then may
    /// not set it, as in Keras).
    fn learning_rate_is_scheduled(&self) -> bool {
        false
    }

    /// The number of updates applied so far.
    fn iterations(&self) -> u64;

    /// The state to store in a checkpoint (slots by parameter position; see [`crate::state`]).
    fn state(&self) -> Result<OptimizerState>;

    /// Restore a saved state; slots bind to the next step's `params` by position (see [`crate::state`]).
    fn load_state(&mut self, state: OptimizerState) -> Result<()>;

    /// Check the hyper-parameters (learning rate now, momentum, betas, epsilon, clipping,
    /// weight decay) without stepping, so `compile` reports a bad setting at once, as
    /// Keras does when the optimizer is made. [`Optimizer::step`] checks them too.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
}
