//! [`GRU`]: gated recurrent unit (Cho et al. 2014), as Keras computes it.
//!
//! Kernel columns are the Keras gate blocks `z, r, h`. With Keras 3's default
//! `reset_after = true` the bias is `[2, 3*units]`: row 0 is added to the
//! input projection, row 1 to the recurrent one, and the reset gate applies
//! after the recurrent matmul:
//! `z = σ(x W_z + b_z + h U_z + b'_z)`, `r = σ(x W_r + b_r + h U_r + b'_r)`,
//! `ĥ = tanh(x W_h + b_h + r (h U_h + b'_h))`, `h_t = z h + (1 - z) ĥ`.
//! With `reset_after = false` the bias is `[3*units]` and
//! `ĥ = tanh(x W_h + b_h + (r h) U_h)`.
//!
//! With `reset_after` and the default sigmoid/tanh, on CUDA the whole time loop is one
//! fused op ([`Var::gru_sequence`]: per timestep one recurrent matmul and one cell kernel
//! forward, one cell-gradient kernel and one matmul backward, reading the step's slice of
//! the input projection in place), and on the CPU each step's gate math is one fused op
//! ([`Var::gru_cell`]); the same forward values either way. Other settings compose the
//! ops per step.

use super::recurrent::{gate_blocks, Cell, Recurrent, StepWeights};
use crate::{Activation, Result};
use keel_autograd::Var;
use serde::{Deserialize, Serialize};

/// The cell of [`GRU`]: its own settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GRUCell {
    /// The gate activation (default sigmoid).
    pub recurrent_activation: Activation,
    /// Apply the reset gate after the recurrent matmul (Keras 3 default true; two bias rows).
    pub reset_after: bool,
}

impl Default for GRUCell {
    fn default() -> Self {
        GRUCell { recurrent_activation: Activation::Sigmoid, reset_after: true }
    }
}

/// Keras's `GRU(units)`: kernel `[in, 3*units]`, recurrent kernel
/// `[units, 3*units]`, bias `[2, 3*units]` (`reset_after`, default) or
/// `[3*units]`, gate order z, r, h (`3 * units * (in + units + 2)` parameters
/// with `reset_after`).
#[allow(clippy::upper_case_acronyms)]
pub type GRU = Recurrent<GRUCell>;

impl Recurrent<GRUCell> {
    /// Set the gate activation (default sigmoid).
    pub fn recurrent_activation(mut self, a: Activation) -> Self {
        self.config_mut().cell.recurrent_activation = a;
        self
    }

    /// Apply the reset gate after the recurrent matmul (default true, as Keras 3; false is the v1 form).
    pub fn reset_after(mut self, yes: bool) -> Self {
        self.config_mut().cell.reset_after = yes;
        self
    }
}

impl GRUCell {
    /// Whether the fused cell computes these activations (Keras's defaults).
    fn fused(&self, w: &StepWeights<'_>) -> bool {
        self.recurrent_activation == Activation::Sigmoid && w.activation == Activation::Tanh
    }
}

impl Cell for GRUCell {
    fn class_name(&self) -> &'static str {
        "GRU"
    }

    fn gates(&self) -> usize {
        3
    }

    fn bias_shape(&self, units: usize) -> Vec<usize> {
        if self.reset_after {
            vec![2, 3 * units]
        } else {
            vec![3 * units]
        }
    }

    fn input_bias(&self, bias: &Var) -> Result<Var> {
        if self.reset_after {
            Ok(bias.narrow(0, 0, 1)?.squeeze(0)?)
        } else {
            Ok(bias.clone())
        }
    }

    fn recurrent_bias(&self, bias: &Var) -> Result<Option<Var>> {
        if self.reset_after {
            Ok(Some(bias.narrow(0, 1, 1)?.squeeze(0)?))
        } else {
            Ok(None)
        }
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
        if !(self.reset_after && self.fused(w) && proj.value().device().is_cuda()) {
            return Ok(None);
        }
        let (hs, h) = proj.gru_sequence(w.recurrent_kernel, w.recurrent_bias, &states[0], go_backwards)?;
        Ok(Some((hs, vec![h])))
    }

    fn step(&self, w: &StepWeights<'_>, x_proj: &Var, states: &[Var]) -> Result<Vec<Var>> {
        let (h, u, ra) = (&states[0], w.units, self.recurrent_activation);
        let xg = gate_blocks(x_proj, 3, u)?;
        let hh = if self.reset_after {
            let inner = match (w.recurrent_bias, w.recurrent_masks.is_empty()) {
                (Some(b), true) => h.matmul_bias(w.recurrent_kernel, b)?,
                (Some(b), false) => w.recurrent_proj(h)?.add(b)?,
                (None, _) => w.recurrent_proj(h)?,
            };
            if self.fused(w) {
                return Ok(vec![x_proj.gru_cell(&inner, h)?]);
            }
            let rg = gate_blocks(&inner, 3, u)?;
            let z = ra.apply(&xg[0].add(&rg[0])?)?;
            let r = ra.apply(&xg[1].add(&rg[1])?)?;
            let cand = w.activation.apply(&xg[2].add(&r.mul(&rg[2])?)?)?;
            (z, cand)
        } else {
            let rk = gate_blocks(w.recurrent_kernel, 3, u)?;
            // with recurrent dropout each gate sees h times its own mask (Keras's implementation 1)
            let z = ra.apply(&xg[0].add(&w.masked_h(h, 0)?.matmul(&rk[0])?)?)?;
            let r = ra.apply(&xg[1].add(&w.masked_h(h, 1)?.matmul(&rk[1])?)?)?;
            let cand = w.activation.apply(&xg[2].add(&r.mul(&w.masked_h(h, 2)?)?.matmul(&rk[2])?)?)?;
            (z, cand)
        };
        let (z, cand) = hh;
        // h_t = z h + (1 - z) ĥ = ĥ + z (h - ĥ)
        let h_new = cand.add(&z.mul(&h.sub(&cand)?)?)?;
        Ok(vec![h_new])
    }
}
