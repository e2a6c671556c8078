//! [`TimeDistributed`]: apply one layer to every time step of a sequence.

use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer, Weight};
use crate::{Activation, Error, Result};
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
use keel_tensor::Tensor;

/// Keras's `TimeDistributed(layer)`: the wrapped layer runs on every time step of a
/// `[batch, timesteps, ..]` input with the same weights, giving `[batch, timesteps, ..out]`.
///
/// It runs once on the steps folded into the batch (`[batch * timesteps, ..]`, reshaped
/// back after), so a layer that mixes samples sees all the steps of the batch together:
/// `BatchNormalization` in training takes its statistics over `batch * timesteps` rows and
/// a dropout draws one mask for all of them (Keras 3 calls the layer once per step). Layers
/// that treat each sample on its own (Dense, Conv2D, the activations, ...) give the same
/// values either way.
///
/// The weights are the wrapped layer's, under its own short names (`kernel`, `bias`), so a
/// model names them `time_distributed/kernel`, ... The config stores the wrapped layer as
/// `{"class_name", "config"}` (like [`crate::Bidirectional`]). The wrapped layer keeps its
/// name (its class's snake-case name when it has none); its declared input shape is
/// ignored (declare the wrapper's, `[timesteps, ..]`).
///
/// Masks: a mask `[batch, timesteps, ..]` reaches the wrapped layer folded like the input
/// (`[batch * timesteps, ..]`), as Keras 3 gives each step its slice, so
/// `TimeDistributed(LSTM)` over the words of each sentence (a mask `[batch, sentences,
/// words]` from `Embedding(mask_zero)`) skips the padded words. The output's mask is the
/// wrapped layer's, unfolded; where the wrapped layer gives none (an `LSTM` without
/// `return_sequences`), it is the input mask reduced to `[batch, timesteps]` (a step counts
/// when any of its entries does), as Keras 2 did, so a later `LSTM` skips the padded
/// sentences. Keras 3 passes the `[batch, sentences, words]` mask on unchanged, which the
/// next recurrent layer then rejects.
pub struct TimeDistributed {
    name: String,
    input_shape: Option<Vec<usize>>,
    layer: Box<dyn Layer>,
}

common_builders!(TimeDistributed);

impl TimeDistributed {
    /// Wrap `layer`.
    pub fn new(layer: impl Layer + 'static) -> Self {
        TimeDistributed::from_boxed(Box::new(layer))
    }

    /// Wrap an already boxed layer (e.g. one rebuilt from its config).
    pub fn from_boxed(mut layer: Box<dyn Layer>) -> Self {
        if layer.name().is_empty() {
            let base = layer.base_name();
            layer.set_name(base);
        }
        TimeDistributed { name: String::new(), input_shape: None, layer }
    }

    /// The wrapped layer.
    pub fn layer(&self) -> &dyn Layer {
        self.layer.as_ref()
    }

    /// `[timesteps, ..step]` split off a per-sample shape, or an error naming the layer.
    fn split<'s>(&self, input_shape: &'s [usize]) -> Result<(usize, &'s [usize])> {
        match input_shape {
            [t, step @ ..] if !step.is_empty() => Ok((*t, step)),
            _ => Err(Error::IncompatibleInput {
                layer: self.name.clone(),
                class: "TimeDistributed",
                expected: "[timesteps, ..] with at least one axis per step (a batch of rank >= 3)".into(),
                got: input_shape.to_vec(),
            }),
        }
    }

    /// `x` `[batch, timesteps, ..step]` with the steps folded into the batch
    /// (`[batch * timesteps, ..step]`), and `(batch, timesteps)`.
    fn fold(&self, x: &Var) -> Result<(Var, usize, usize)> {
        let dims = x.dims();
        let (b, (t, step)) = match dims.split_first() {
            Some((&b, rest)) => (b, self.split(rest)?),
            None => (0, self.split(&[])?),
        };
        let folded: Vec<usize> = std::iter::once(b * t).chain(step.iter().copied()).collect();
        Ok((x.reshape(folded)?, b, t))
    }

    /// `f` (the wrapped layer's forward pass) on the steps of `x` folded into the batch,
    /// unfolded after.
    fn per_step(&self, x: &Var, f: impl FnOnce(&Var) -> Result<Var>) -> Result<Var> {
        let (folded, b, t) = self.fold(x)?;
        let y = f(&folded)?;
        let out: Vec<usize> = [b, t].into_iter().chain(y.dims().iter().skip(1).copied()).collect();
        Ok(y.reshape(out)?)
    }

    /// The mask `[batch, timesteps, ..]` of input `x` folded like it (`[batch * timesteps,
    /// ..]`), or an error when its leading axes are not `x`'s.
    fn fold_mask(&self, x: &Var, mask: &Tensor) -> Result<Tensor> {
        match (x.dims(), mask.dims()) {
            ([b, t, ..], [mb, mt, rest @ ..]) if (b, t) == (mb, mt) => {
                let folded: Vec<usize> = std::iter::once(b * t).chain(rest.iter().copied()).collect();
                Ok(mask.reshape(folded)?)
            }
            (xd, md) => Err(Error::IncompatibleInput {
                layer: self.name.clone(),
                class: "TimeDistributed",
                expected: format!(
                    "a mask whose first two axes (batch, timesteps) are the input's {:?}",
                    xd.get(..2).unwrap_or(xd)
                ),
                got: md.to_vec(),
            }),
        }
    }
}

impl Layer for TimeDistributed {
    layer_common!("TimeDistributed");

    fn supports_masking(&self) -> bool {
        true
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<()> {
        let (_, step) = self.split(input_shape)?;
        self.layer.build(step, rng)
    }

    fn is_built(&self) -> bool {
        self.layer.is_built()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let (t, step) = self.split(input_shape)?;
        let mut out = vec![t];
        out.extend(self.layer.output_shape(step)?);
        Ok(out)
    }

    fn forward(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        self.per_step(x, |s| self.layer.forward(s, ctx))
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        self.per_step(x, |s| self.layer.forward_logits(s, ctx))
    }

    fn forward_logits_masked(&self, xs: &[Var], masks: &[Option<Tensor>], ctx: &mut Ctx<'_>) -> Result<Var> {
        let [x] = xs else { return self.forward_logits_multi(xs, ctx) };
        let Some(mask) = masks.first().and_then(Option::as_ref) else { return self.forward_logits(x, ctx) };
        let folded = Some(self.fold_mask(x, mask)?);
        self.per_step(x, |s| self.layer.forward_logits_masked(std::slice::from_ref(s), &[folded], ctx))
    }

    fn compute_mask(&self, xs: &[Var], masks: &[Option<Tensor>]) -> Result<Option<Tensor>> {
        let ([x], Some(Some(mask))) = (xs, masks.first()) else { return Ok(None) };
        let (folded, b, t) = self.fold(x)?;
        match self.layer.compute_mask(&[folded], &[Some(self.fold_mask(x, mask)?)])? {
            Some(inner) => {
                let unfolded: Vec<usize> = [b, t].into_iter().chain(inner.dims().iter().skip(1).copied()).collect();
                Ok(Some(inner.reshape(unfolded)?))
            }
            None if mask.rank() > 2 => {
                let rest: Vec<isize> = (2..mask.rank() as isize).collect();
                Ok(Some(mask.max(&rest, false)?))
            }
            None => Ok(Some(mask.clone())),
        }
    }

    /// The wrapped layer's: its activations are elementwise or over the last axis, which
    /// unfolding the steps leaves in place.
    fn output_activation(&self) -> Option<Activation> {
        self.layer.output_activation()
    }

    fn autocast(&self) -> bool {
        self.layer.autocast()
    }

    fn compute_dtype_params(&self) -> Vec<Param> {
        self.layer.compute_dtype_params()
    }

    fn weights(&self) -> Vec<Weight> {
        self.layer.weights()
    }

    fn reset_state(&self) {
        self.layer.reset_state();
    }

    fn config(&self) -> serde_json::Value {
        with_name(
            &self.name,
            serde_json::json!({
                "layer": { "class_name": self.layer.class_name(), "config": self.layer.config() },
            }),
        )
    }

    fn regularization_loss(&self, ctx: &Ctx<'_>) -> Result<Option<Var>> {
        self.layer.regularization_loss(ctx)
    }

    fn constraints(&self) -> Vec<(keel_autograd::Param, crate::Constraint)> {
        self.layer.constraints()
    }
}
