//! The [`Optimizer`] trait.

use crate::{OptimizerState, Result};
use keel_autograd::{Gradients, Param, Var};

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

    /// The factor a training step multiplies the loss by before the backward pass: the
    /// current scale of a [`crate::LossScaleOptimizer`], `None` for every other optimizer.
    fn loss_scale(&self) -> Option<f64> {
        None
    }

    /// `loss` times [`Optimizer::loss_scale`] (Keras's `optimizer.scale_loss`): what a
    /// training step differentiates, so that [`Optimizer::step`] gets the gradients it
    /// expects. The loss itself when there is no scale.
    fn scale_loss(&self, loss: &Var) -> Result<Var> {
        Ok(match self.loss_scale() {
            Some(s) => loss.mul_scalar(s)?,
            None => loss.clone(),
        })
    }

    /// How a saved [`OptimizerState`] of this optimizer is laid out, so that a checkpoint
    /// can be checked against the model before anything loads.
    fn state_layout(&self) -> StateLayout {
        StateLayout { name: self.name().to_string(), own_entries: 0 }
    }

    /// Check the hyper-parameters (learning rate now, momentum, betas, epsilon, clipping,
    /// weight decay) without stepping, so `compile` reports a bad setting at once, as
    /// Keras does when the optimizer is made. [`Optimizer::step`] checks them too.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
}

/// The layout of an optimizer's saved state ([`Optimizer::state_layout`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateLayout {
    /// The name the state carries ([`OptimizerState::optimizer`]): the optimizer's name, or
    /// `LossScaleOptimizer(<inner>)` for a wrapper.
    pub name: String,
    /// How many leading entries of [`OptimizerState::params`] hold the optimizer's own
    /// variables (a [`crate::LossScaleOptimizer`]'s scale) rather than a parameter's slots.
    pub own_entries: usize,
}
