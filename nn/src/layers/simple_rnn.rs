//! [`SimpleRNN`]: the fully connected recurrent layer `h_t = activation(x_t W + h_{t-1} U + b)`.

use super::recurrent::{Cell, Recurrent, StepWeights};
use crate::Result;
use keel_autograd::Var;
use serde::{Deserialize, Serialize};

/// The cell of [`SimpleRNN`] (no settings of its own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimpleRNNCell {}

/// Keras's `SimpleRNN(units)`: kernel `[in, units]`, recurrent kernel
/// `[units, units]`, bias `[units]` (`units * (in + units + 1)` parameters).
pub type SimpleRNN = Recurrent<SimpleRNNCell>;

impl Cell for SimpleRNNCell {
    fn class_name(&self) -> &'static str {
        "SimpleRNN"
    }

    fn gates(&self) -> usize {
        1
    }

    fn step(&self, w: &StepWeights<'_>, x_proj: &Var, states: &[Var]) -> Result<Vec<Var>> {
        let h = w.activation.apply(&x_proj.add(&w.recurrent_proj(&states[0])?)?)?;
        Ok(vec![h])
    }
}
