//! Fused recurrent cells: [`Var::lstm_cell`] and [`Var::gru_cell`], one LSTM or GRU step as
//! one op on the tape (one kernel launch forward and one backward on CUDA, where the
//! composed gate math records about a dozen ops); and [`Var::lstm_sequence`] and
//! [`Var::gru_sequence`], a whole sequence as one op (cuDNN's design): two launches per
//! timestep forward (the recurrent matmul, the cell) and two backward (the cell's
//! gradient, the matmul to the previous step), with the recurrent kernel's gradient one
//! GEMM over all timesteps at the end instead of one GEMM and one add per timestep.

use crate::{Error, Result, Var};
use keel_tensor::Tensor;

impl Var {
    /// One LSTM step from the gate pre-activations `self` (`[batch, 4 * units]`, Keras's
    /// order i, f, c, o) and the previous cell state `c_prev` (`[batch, units]`):
    /// `(h, c)` with sigmoid gates and tanh activations ([`Tensor::lstm_cell`]). One op on
    /// the tape; it saves the gate activations, `c_prev` and `c` for its backward
    /// ([`Tensor::lstm_cell_grad`]), as PyTorch's fused cell does.
    pub fn lstm_cell(&self, c_prev: &Var) -> Result<(Var, Var)> {
        let (h, c, gates) = self.value().lstm_cell(None, c_prev.value())?;
        let c_saved = c.clone();
        let vars = Var::record_multi("lstm_cell", &[self, c_prev], vec![h, c], |needs| {
            let c0 = c_prev.value().clone();
            let needs = needs.to_vec();
            move |gs: &[Option<Tensor>]| {
                let (dh, dc) = match gs {
                    [dh, dc] => (dh.as_ref(), dc.as_ref()),
                    _ => return Err(Error::invalid("lstm_cell", "internal: two output gradients expected")),
                };
                let (dz, dc0) = gates.lstm_cell_grad(&c0, &c_saved, dh.as_slice(), dc)?;
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
                let (dx, dp, dh0) = gates.gru_cell_grad(&p, &h0, &[dh])?;
                Ok(vec![needs[0].then_some(dx), needs[1].then_some(dp), needs[2].then_some(dh0)])
            }
        })
    }

    /// An LSTM (sigmoid gates, tanh activations) over a whole sequence as one op:
    /// `self` holds every timestep's input projection `x_t W + b` (`[batch, time, 4 * units]`,
    /// Keras's gate order), `recurrent_kernel` is `U` (`[units, 4 * units]`) and `h0`, `c0`
    /// the initial states (`[batch, units]`). Runs the timesteps in order, or from the last
    /// with `go_backwards`; returns `(hs, h, c)`: every step's `h` (`[batch, time, units]`,
    /// in the order processed, as Keras's `return_sequences`) and the final states. The
    /// values are those of [`Var::lstm_cell`] steps on `z = x_t W + b + h U`; the backward
    /// runs the steps in reverse on tensors (no tape node per step) and computes the
    /// gradient of `U` as one matmul over all timesteps.
    pub fn lstm_sequence(
        &self,
        recurrent_kernel: &Var,
        h0: &Var,
        c0: &Var,
        go_backwards: bool,
    ) -> Result<(Var, Var, Var)> {
        const OP: &str = "lstm_sequence";
        let (_, t, _) = sequence_dims(OP, 4, self, recurrent_kernel, &[h0, c0])?;
        let (xp, uk) = (self.value().clone(), recurrent_kernel.value().clone());
        let order = time_order(t, go_backwards);
        // hs[i], cs[i], gates[i]: the states after step i and its gate activations
        let (mut hs, mut cs, mut gates) = (Vec::with_capacity(t), Vec::with_capacity(t), Vec::with_capacity(t));
        let (mut h, mut c) = (h0.value().clone(), c0.value().clone());
        for &ti in &order {
            let p = h.matmul(&uk)?;
            let (hn, cn, g) = xp.narrow(1, ti, 1)?.squeeze(1)?.lstm_cell(Some(&p), &c)?;
            (h, c) = (hn.clone(), cn.clone());
            hs.push(hn);
            cs.push(cn);
            gates.push(g);
        }
        let out = Tensor::stack(&hs, 1)?;
        let vars = Var::record_multi(OP, &[self, recurrent_kernel, h0, c0], vec![out, h, c], |needs| {
            let needs = needs.to_vec();
            let (h0, c0) = (h0.value().clone(), c0.value().clone());
            move |gs: &[Option<Tensor>]| {
                let [d_out, d_h, d_c] = gs else {
                    return Err(Error::invalid(OP, "internal: three output gradients expected"));
                };
                let ut = uk.transpose(0, 1)?;
                let (mut dmat, mut dc) = (None::<Tensor>, d_c.clone());
                let mut dz_by_x: Vec<Option<Tensor>> = vec![None; t];
                for i in (0..t).rev() {
                    let dout = d_out.as_ref().map(|d| d.narrow(1, i, 1)?.squeeze(1)).transpose()?;
                    let last = if i + 1 == t { d_h.as_ref() } else { None };
                    let terms: Vec<&Tensor> = last.into_iter().chain(dmat.as_ref()).chain(dout.as_ref()).collect();
                    let c_prev = if i == 0 { &c0 } else { &cs[i - 1] };
                    let (dz, dc_prev) = gates[i].lstm_cell_grad(c_prev, &cs[i], &terms, dc.as_ref())?;
                    dmat = if i > 0 || needs[2] { Some(dz.matmul(&ut)?) } else { None };
                    dc = Some(dc_prev);
                    dz_by_x[order[i]] = Some(dz);
                }
                // the stacked dz is both the projections' gradient and dU's right operand
                let dx = stack_steps(dz_by_x)?;
                let (du, _) = weight_grads(&dx, &hs, &h0, &order, [needs[1], false])?;
                let dh0 = if needs[2] { dmat } else { None };
                Ok(vec![needs[0].then_some(dx), du, dh0, if needs[3] { dc } else { None }])
            }
        })?;
        match <[Var; 3]>::try_from(vars) {
            Ok([hs, h, c]) => Ok((hs, h, c)),
            Err(_) => Err(Error::invalid(OP, "internal: three outputs expected")),
        }
    }

    /// A GRU (Keras's `reset_after=True`, sigmoid gates, tanh candidate) over a whole
    /// sequence as one op: `self` holds every timestep's input projection `x_t W + b`
    /// (`[batch, time, 3 * units]`, gate order z, r, h), `recurrent_kernel` is `U`
    /// (`[units, 3 * units]`), `recurrent_bias` `b'` (`[3 * units]`, Keras's second bias
    /// row) and `h0` the initial state. Runs the timesteps in order, or from the last with
    /// `go_backwards`; returns `(hs, h)` as [`Var::lstm_sequence`] does. The values are those
    /// of [`Var::gru_cell`] steps with `p = h U + b'`; the gradients of `U` and `b'` are one
    /// matmul and one sum over all timesteps.
    pub fn gru_sequence(
        &self,
        recurrent_kernel: &Var,
        recurrent_bias: Option<&Var>,
        h0: &Var,
        go_backwards: bool,
    ) -> Result<(Var, Var)> {
        const OP: &str = "gru_sequence";
        let (_, t, u) = sequence_dims(OP, 3, self, recurrent_kernel, &[h0])?;
        if let Some(bias) = recurrent_bias {
            if bias.dims() != [3 * u] || bias.dtype() != self.dtype() {
                let why = format!("the recurrent bias must be [{}] of the projections' dtype", 3 * u);
                return Err(keel_tensor::Error::shape_mismatch(OP, recurrent_kernel.shape(), bias.shape(), why).into());
            }
        }
        let (xp, uk) = (self.value().clone(), recurrent_kernel.value().clone());
        let bk = recurrent_bias.map(|v| v.value().clone());
        let order = time_order(t, go_backwards);
        // hs[i], ps[i], gates[i]: h after step i, its recurrent projection and gate activations
        let (mut hs, mut ps, mut gates) = (Vec::with_capacity(t), Vec::with_capacity(t), Vec::with_capacity(t));
        let mut h = h0.value().clone();
        for &ti in &order {
            let p = match &bk {
                Some(bias) => h.matmul_bias(&uk, bias)?,
                None => h.matmul(&uk)?,
            };
            let (hn, g) = xp.narrow(1, ti, 1)?.squeeze(1)?.gru_cell(&p, &h)?;
            h = hn.clone();
            hs.push(hn);
            ps.push(p);
            gates.push(g);
        }
        let out = Tensor::stack(&hs, 1)?;
        let mut inputs = vec![self, recurrent_kernel, h0];
        inputs.extend(recurrent_bias);
        let vars = Var::record_multi(OP, &inputs, vec![out, h], |needs| {
            let needs = needs.to_vec();
            let h0 = h0.value().clone();
            move |gs: &[Option<Tensor>]| {
                let [d_out, d_h] = gs else {
                    return Err(Error::invalid(OP, "internal: two output gradients expected"));
                };
                let ut = uk.transpose(0, 1)?;
                let (mut dmat, mut direct) = (None::<Tensor>, None::<Tensor>);
                let (mut dx_by_x, mut dp_by_x): (Vec<Option<Tensor>>, Vec<Option<Tensor>>) =
                    (vec![None; t], vec![None; t]);
                for i in (0..t).rev() {
                    let dout = d_out.as_ref().map(|d| d.narrow(1, i, 1)?.squeeze(1)).transpose()?;
                    let last = if i + 1 == t { d_h.as_ref() } else { None };
                    let terms: Vec<&Tensor> =
                        last.into_iter().chain(dmat.as_ref()).chain(direct.as_ref()).chain(dout.as_ref()).collect();
                    let h_prev = if i == 0 { &h0 } else { &hs[i - 1] };
                    let (dx, dp, dd) = gates[i].gru_cell_grad(&ps[i], h_prev, &terms)?;
                    (dmat, direct) = if i > 0 || needs[2] { (Some(dp.matmul(&ut)?), Some(dd)) } else { (None, None) };
                    dx_by_x[order[i]] = Some(dx);
                    dp_by_x[order[i]] = Some(dp);
                }
                let dx = needs[0].then(|| stack_steps(dx_by_x)).transpose()?;
                let wants = [needs[1], needs.get(3) == Some(&true)];
                let (du, db) = match wants {
                    [false, false] => (None, None),
                    _ => weight_grads(&stack_steps(dp_by_x)?, &hs, &h0, &order, wants)?,
                };
                let dh0 = match (dmat, direct) {
                    (Some(m), Some(d)) if needs[2] => Some(m.add(&d)?),
                    _ => None,
                };
                let mut grads = vec![dx, du, dh0];
                if needs.len() > 3 {
                    grads.push(db);
                }
                Ok(grads)
            }
        })?;
        match <[Var; 2]>::try_from(vars) {
            Ok([hs, h]) => Ok((hs, h)),
            Err(_) => Err(Error::invalid(OP, "internal: two outputs expected")),
        }
    }
}

/// The input index of each processing step: `0..t`, reversed with `go_backwards`.
fn time_order(t: usize, go_backwards: bool) -> Vec<usize> {
    if go_backwards {
        (0..t).rev().collect()
    } else {
        (0..t).collect()
    }
}

/// `[batch, time, n]` from the per-timestep `[batch, n]` gradients (in input order).
fn stack_steps(steps: Vec<Option<Tensor>>) -> Result<Tensor> {
    let steps: Option<Vec<Tensor>> = steps.into_iter().collect();
    let steps = steps.ok_or_else(|| Error::invalid("rnn sequence", "internal: a timestep without a gradient"))?;
    Ok(Tensor::stack(&steps, 1)?)
}

/// The gradients of the recurrent kernel `U` (`sum_t h_{t-1}^T dp_t`) and of GRU's
/// recurrent bias (the sum of every `dp_t`'s rows), where they are `wanted`, from `dp`, the
/// gradients of every step's recurrent projection `h_{t-1} U (+ b')` stacked in input
/// order (`[batch, time, k]`), and the state before each step (`h0`, then `hs` in
/// processing `order`): one matmul over all timesteps and one column sum, where adding up
/// per step takes a matmul and an add (and a sum) per timestep.
fn weight_grads(
    dp: &Tensor,
    hs: &[Tensor],
    h0: &Tensor,
    order: &[usize],
    [kernel, bias]: [bool; 2],
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let (&[b, t, k], u) = (dp.dims(), h0.dims()[1]) else {
        return Err(Error::invalid("rnn sequence", "internal: stacked gradients not [batch, time, k]"));
    };
    let dp = dp.reshape([b * t, k])?;
    let du = if kernel {
        let mut prev: Vec<Option<Tensor>> = vec![None; t];
        for (i, &ti) in order.iter().enumerate() {
            prev[ti] = Some(if i == 0 { h0.clone() } else { hs[i - 1].clone() });
        }
        Some(stack_steps(prev)?.reshape([b * t, u])?.transpose(0, 1)?.matmul(&dp)?)
    } else {
        None
    };
    let db = if bias { Some(dp.sum(&[0], false)?) } else { None };
    Ok((du, db))
}

/// `(batch, time, units)` of a fused sequence: the projections `[batch, time, k * units]`,
/// the recurrent kernel `[units, k * units]` and the `[batch, units]` states, one float dtype.
fn sequence_dims(op: &'static str, k: usize, xp: &Var, uk: &Var, states: &[&Var]) -> Result<(usize, usize, usize)> {
    let bad = |other: &Var, why: String| -> Error {
        keel_tensor::Error::shape_mismatch(op, xp.shape(), other.shape(), why).into()
    };
    let &[b, t, g] = xp.dims() else {
        return Err(bad(uk, format!("the projections must be [batch, time, {k} * units]")));
    };
    let u = g / k;
    if g % k != 0 || t == 0 || uk.dims() != [u, g] {
        return Err(bad(
            uk,
            format!(
                "the projections must be [batch, time >= 1, {k} * units] and the recurrent kernel [units, {k} * units]"
            ),
        ));
    }
    for v in std::iter::once(uk).chain(states.iter().copied()) {
        if v.dtype() != xp.dtype() {
            return Err(keel_tensor::Error::DTypeMismatch { op, lhs: xp.dtype(), rhs: v.dtype() }.into());
        }
    }
    for s in states {
        if s.dims() != [b, u] {
            return Err(bad(s, format!("the states must be [batch, units] = [{b}, {u}]")));
        }
    }
    Ok((b, t, u))
}
