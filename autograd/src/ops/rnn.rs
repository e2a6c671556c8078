//! Fused recurrent cells: [`Var::lstm_cell`] and [`Var::gru_cell`], one LSTM or GRU step as
//! one op on the tape (one kernel launch forward and one backward on CUDA, where the
//! composed gate math records about a dozen ops).

use crate::{Error, Result, Var};
use keel_tensor::Tensor;

impl Var {
    /// One LSTM step from the gate pre-activations `self` (`[batch, 4 * units]`, Keras's
    /// order i, f, c, o) and the previous cell state `c_prev` (`[batch, units]`):
    /// `(h, c)` with sigmoid gates and tanh activations ([`Tensor::lstm_cell`]). One op on
    /// the tape; it saves the gate activations, `c_prev` and `c` for its backward
    /// ([`Tensor::lstm_cell_grad`]), as PyTorch's fused cell does.
    pub fn lstm_cell(&self, c_prev: &Var) -> Result<(Var, Var)> {
        let (h, c, gates) = self.value().lstm_cell(c_prev.value())?;
        let c_saved = c.clone();
        let vars = Var::record_multi("lstm_cell", &[self, c_prev], vec![h, c], |needs| {
            let c0 = c_prev.value().clone();
            let needs = needs.to_vec();
            move |gs: &[Option<Tensor>]| {
                let (dh, dc) = match gs {
                    [dh, dc] => (dh.as_ref(), dc.as_ref()),
                    _ => return Err(Error::invalid("lstm_cell", "internal: two output gradients expected")),
                };
                let (dz, dc0) = gates.lstm_cell_grad(&c0, &c_saved, dh, dc)?;
                Ok(vec![needs[0].then_some(dz), needs[1].then_some(dc0)])
            }
        })?;
        match <[Var; 2]>::try_from(vars) {
            Ok([h, c]) => Ok((h, c)),
            Err(_) => Err(Error::invalid("lstm_cell", "internal: two outputs expected")),
        }
    }

    /// One GRU step (Keras's `reset_after=True`) from the input projection `self`
    /// (`x_t W + b`, `[batch, 3 * units]`, Keras's gate order z, r, h), the recurrent
    /// projection `hp` (`h_prev U + b'`, the same shape) and `h_prev` (`[batch, units]`):
    /// `h` with sigmoid gates and a tanh candidate ([`Tensor::gru_cell`]). One op on the
    /// tape; it saves the gate activations, `hp` and `h_prev` for its backward
    /// ([`Tensor::gru_cell_grad`]).
    pub fn gru_cell(&self, hp: &Var, h_prev: &Var) -> Result<Var> {
        let (h, gates) = self.value().gru_cell(hp.value(), h_prev.value())?;
        Var::record("gru_cell", &[self, hp, h_prev], h, |needs| {
            let (p, h0) = (hp.value().clone(), h_prev.value().clone());
            let needs = needs.to_vec();
            move |dh: &Tensor| {
                let (dx, dp, dh0) = gates.gru_cell_grad(&p, &h0, dh)?;
                Ok(vec![needs[0].then_some(dx), needs[1].then_some(dp), needs[2].then_some(dh0)])
            }
        })
    }
}
