//! Fused recurrent cells: [`Var::lstm_cell`], one LSTM step as one op on the tape (one
//! kernel launch forward and one backward on CUDA, where the composed gate math records
//! about a dozen ops).

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
}
