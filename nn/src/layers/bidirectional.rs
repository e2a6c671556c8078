//! [`Bidirectional`]: run a recurrent layer forwards and a copy of it backwards, and merge.

use super::recurrent::{Cell, Recurrent};
use crate::layer::{add_opt, with_name, Ctx, Layer, Weight};
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::rng::Rng;
use keel_tensor::Tensor;
use serde::{Deserialize, Serialize};

/// How [`Bidirectional`] merges the two directions (Keras `merge_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeMode {
    /// Concatenate on the last axis (Keras default): `2 * units` features.
    #[default]
    Concat,
    /// Elementwise sum.
    Sum,
    /// Elementwise product.
    Mul,
    /// Elementwise mean.
    Ave,
}

/// Keras's `Bidirectional(layer, merge_mode="concat")`: the wrapped layer runs
/// forwards and an unbuilt copy with `go_backwards` flipped runs with its own
/// weights; with `return_sequences` the backward outputs are reversed back to
/// input order before merging, as Keras does.
///
/// Weights are the forward layer's then the backward layer's, named
/// `forward/kernel`, ..., `backward/bias`. [`Bidirectional::forward_with_state`]
/// returns the merged output and the final states `forward ++ backward`.
pub struct Bidirectional<C: Cell> {
    name: String,
    input_shape: Option<Vec<usize>>,
    forward: Recurrent<C>,
    backward: Recurrent<C>,
    merge_mode: MergeMode,
}

impl<C: Cell> Bidirectional<C> {
    /// Wrap `layer` (its declared input shape moves to the wrapper), merging by concatenation.
    pub fn new(layer: Recurrent<C>) -> Self {
        let input_shape = layer.declared_input_shape();
        let mut backward = layer.unbuilt_copy();
        let back = !layer.get_config().go_backwards;
        backward.config_mut().go_backwards = back;
        let base = if layer.name().is_empty() {
            crate::layer::snake_case(layer.class_name())
        } else {
            layer.name().to_string()
        };
        let mut forward = layer.unbuilt_copy().with_name(format!("forward_{base}"));
        let mut backward = backward.with_name(format!("backward_{base}"));
        // Keras's force_zero_output_for_mask: with return_sequences, masked steps output zeros
        for l in [&mut forward, &mut backward] {
            let rs = l.get_config().return_sequences;
            l.config_mut().zero_output_for_mask = rs;
        }
        Bidirectional { name: String::new(), input_shape, forward, backward, merge_mode: MergeMode::Concat }
    }

    /// Give the layer a name (else the model numbers it, Keras style).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Declare the per-sample input shape `[timesteps, features]`.
    pub fn input_shape(mut self, shape: impl Into<Vec<usize>>) -> Self {
        self.input_shape = Some(shape.into());
        self
    }

    /// Set the merge mode (default concat).
    pub fn merge_mode(mut self, m: MergeMode) -> Self {
        self.merge_mode = m;
        self
    }

    /// The forward layer.
    pub fn forward_layer(&self) -> &Recurrent<C> {
        &self.forward
    }

    /// The backward layer (the copy with `go_backwards` flipped).
    pub fn backward_layer(&self) -> &Recurrent<C> {
        &self.backward
    }

    /// The merged output and the final states (forward's, then backward's).
    pub fn forward_with_state(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<(Var, Vec<Var>)> {
        self.forward_with_mask(x, None, ctx)
    }

    /// [`Bidirectional::forward_with_state`] skipping the steps where `mask` (`[B, T]`) is
    /// zero, in both directions (see [`Recurrent::forward_with_mask`]).
    pub fn forward_with_mask(&self, x: &Var, mask: Option<&Tensor>, ctx: &mut Ctx<'_>) -> Result<(Var, Vec<Var>)> {
        let (yf, mut sf) = self.forward.forward_with_mask(x, mask, None, ctx)?;
        let (mut yb, sb) = self.backward.forward_with_mask(x, mask, None, ctx)?;
        // Keras calls both wrapped layers (their activity regularizers apply to each output)
        ctx.add_activity_loss(&self.forward, &yf)?;
        ctx.add_activity_loss(&self.backward, &yb)?;
        if self.forward.get_config().return_sequences {
            yb = reverse_time(&yb)?;
        }
        let y = match self.merge_mode {
            MergeMode::Concat => Var::concat(&[&yf, &yb], -1)?,
            MergeMode::Sum => yf.add(&yb)?,
            MergeMode::Mul => yf.mul(&yb)?,
            MergeMode::Ave => yf.add(&yb)?.mul_scalar(0.5)?,
        };
        sf.extend(sb);
        Ok((y, sf))
    }
}

/// `v` `[B, T, ..]` with the time axis reversed (one index_select op).
fn reverse_time(v: &Var) -> Result<Var> {
    let t = v.dims()[1];
    let idx: Vec<i64> = (0..t as i64).rev().collect();
    Ok(v.index_select(&Tensor::from_vec(idx, [t])?.to_device(&v.device())?, 1)?)
}

/// The name `forward/<weight>` or `backward/<weight>`.
fn prefixed(forward: bool, name: &str) -> std::borrow::Cow<'static, str> {
    format!("{}/{name}", if forward { "forward" } else { "backward" }).into()
}

impl<C: Cell> Layer for Bidirectional<C> {
    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn class_name(&self) -> &'static str {
        "Bidirectional"
    }

    fn declared_input_shape(&self) -> Option<Vec<usize>> {
        self.input_shape.clone()
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<()> {
        self.forward.build(input_shape, rng)?;
        self.backward.build(input_shape, rng)
    }

    fn is_built(&self) -> bool {
        self.forward.is_built() && self.backward.is_built()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let mut s = self.forward.output_shape(input_shape)?;
        if self.merge_mode == MergeMode::Concat {
            if let Some(last) = s.last_mut() {
                *last *= 2;
            }
        }
        Ok(s)
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        if !self.is_built() {
            return Err(Error::NotBuilt { layer: self.name.clone(), class: "Bidirectional" });
        }
        Ok(self.forward_with_state(x, ctx)?.0)
    }

    fn supports_masking(&self) -> bool {
        true
    }

    /// Keras: the input's mask goes on with `return_sequences`, else none.
    fn compute_mask(&self, _xs: &[Var], masks: &[Option<Tensor>]) -> Result<Option<Tensor>> {
        Ok(if self.forward.get_config().return_sequences { masks.first().cloned().flatten() } else { None })
    }

    fn forward_logits_masked(&self, xs: &[Var], masks: &[Option<Tensor>], ctx: &mut Ctx<'_>) -> Result<Var> {
        let [x] = xs else { return self.forward_logits_multi(xs, ctx) };
        if !self.is_built() {
            return Err(Error::NotBuilt { layer: self.name.clone(), class: "Bidirectional" });
        }
        Ok(self.forward_with_mask(x, masks.first().and_then(Option::as_ref), ctx)?.0)
    }

    fn weights(&self) -> Vec<Weight> {
        let mut w = Vec::new();
        for (fwd, l) in [(true, &self.forward), (false, &self.backward)] {
            for mut x in l.weights() {
                x.name = prefixed(fwd, &x.name);
                w.push(x);
            }
        }
        w
    }

    /// Reset both directions' states (Keras's `Bidirectional.reset_state()`).
    fn reset_state(&self) {
        self.forward.reset_state();
        self.backward.reset_state();
    }

    fn config(&self) -> serde_json::Value {
        let mut layer = serde_json::Map::new();
        layer.insert("class_name".into(), self.forward.class_name().into());
        layer.insert("config".into(), self.forward.config());
        with_name(
            &self.name,
            serde_json::json!({
                "layer": serde_json::Value::Object(layer),
                "merge_mode": self.merge_mode,
            }),
        )
    }

    fn regularization_loss(&self, ctx: &Ctx<'_>) -> Result<Option<Var>> {
        add_opt(self.forward.regularization_loss(ctx)?, self.backward.regularization_loss(ctx)?)
    }

    fn constraints(&self) -> Vec<(keel_autograd::Param, crate::Constraint)> {
        let mut all = self.forward.constraints();
        all.extend(self.backward.constraints());
        all
    }
}
