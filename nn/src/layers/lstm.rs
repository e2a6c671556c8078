//! [`LSTM`]: long short-term memory (Hochreiter & Schmidhuber 1997), as Keras computes it.
//!
//! With `z = x_t W + h_{t-1} U + b` split into the Keras gate blocks
//! `i, f, c, o` (kernel columns in that order):
//! `i = σ(z_i)`, `f = σ(z_f)`, `c_t = f c_{t-1} + i tanh(z_c)`, `o = σ(z_o)`,
//! `h_t = o tanh(c_t)` (σ the recurrent activation, sigmoid; tanh the activation).
//!
//! With those defaults, on CUDA the whole time loop is one fused op
//! ([`Var::lstm_sequence`]: per timestep one recurrent matmul and one cell kernel forward,
//! one cell-gradient kernel and one matmul backward, where the composed ops take about 27;
//! Keras likewise runs its cuDNN kernel on a GPU), and on the CPU each step's gate math is
//! one fused op ([`Var::lstm_cell`]); the same forward values either way. Other
//! activations compose the ops per step.

use super::recurrent::{gate_blocks, Cell, Recurrent, StepWeights};
use crate::{Activation, Initializer, Result};
use keel_autograd::Var;
use keel_tensor::rng::Rng;
use keel_tensor::Tensor;
use serde::{Deserialize, Serialize};

/// The cell of [`LSTM`]: its own settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LSTMCell {
    /// The gate activation (default sigmoid).
    pub recurrent_activation: Activation,
    /// Initialise the forget-gate bias to ones (Keras default true).
    pub unit_forget_bias: bool,
}

impl Default for LSTMCell {
    fn default() -> Self {
        LSTMCell { recurrent_activation: Activation::Sigmoid, unit_forget_bias: true }
    }
}

/// Keras's `LSTM(units)`: kernel `[in, 4*units]`, recurrent kernel
/// `[units, 4*units]`, bias `[4*units]`, gate order i, f, c, o
/// (`4 * units * (in + units + 1)` parameters); states `[h, c]`.
#[allow(clippy::upper_case_acronyms)]
pub type LSTM = Recurrent<LSTMCell>;

impl Recurrent<LSTMCell> {
    /// Set the gate activation (default sigmoid).
    pub fn recurrent_activation(mut self, a: Activation) -> Self {
        self.config_mut().cell.recurrent_activation = a;
        self
    }

    /// Initialise the forget-gate bias to ones (default true).
    pub fn unit_forget_bias(mut self, yes: bool) -> Self {
        self.config_mut().cell.unit_forget_bias = yes;
        self
    }
}

impl LSTMCell {
    /// Whether the fused cell computes these settings (Keras's default activations).
    fn fused(&self, w: &StepWeights<'_>) -> bool {
        self.recurrent_activation == Activation::Sigmoid && w.activation == Activation::Tanh
    }
}

impl Cell for LSTMCell {
    fn class_name(&self) -> &'static str {
        "LSTM"
    }

    fn gates(&self) -> usize {
        4
    }

    fn state_count(&self) -> usize {
        2
    }

    fn init_bias(&self, units: usize, init: &Initializer, rng: &mut Rng) -> Result<Tensor> {
        if !self.unit_forget_bias {
            return init.sample(&[4 * units], rng);
        }
        let i = init.sample(&[units], rng)?;
        let f = Tensor::ones([units], i.dtype(), &i.device())?;
        let rest = init.sample(&[2 * units], rng)?;
        Ok(Tensor::concat(&[i, f, rest], 0)?)
    }

    fn sequence(
        &self,
        w: &StepWeights<'_>,
        proj: &Var,
        states: &[Var],
        go_backwards: bool,
    ) -> Result<Option<(Var, Vec<Var>)>> {
        // on CUDA, as Keras runs its cuDNN kernel there: on the CPU the per-step ops measured
        // faster (no launches to save, and the sequence's stacked copies cost more)
        if !self.fused(w) || !proj.value().device().is_cuda() {
            return Ok(None);
        }
        let (hs, h, c) = proj.lstm_sequence(w.recurrent_kernel, &states[0], &states[1], go_backwards)?;
        Ok(Some((hs, vec![h, c])))
    }

    fn step(&self, w: &StepWeights<'_>, x_proj: &Var, states: &[Var]) -> Result<Vec<Var>> {
        let (h, c) = (&states[0], &states[1]);
        let z = x_proj.add(&w.recurrent_proj(h)?)?;
        if self.fused(w) {
            let (h, c) = z.lstm_cell(c)?;
            return Ok(vec![h, c]);
        }
        let g = gate_blocks(&z, 4, w.units)?;
        let ra = self.recurrent_activation;
        let i = ra.apply(&g[0])?;
        let f = ra.apply(&g[1])?;
        let c = f.mul(c)?.add(&i.mul(&w.activation.apply(&g[2])?)?)?;
        let o = ra.apply(&g[3])?;
        let h = o.mul(&w.activation.apply(&c)?)?;
        Ok(vec![h, c])
    }
}
