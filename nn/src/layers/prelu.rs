//! [`PReLU`]: the parametric ReLU, `max(0, x) + alpha * min(0, x)` with a learned `alpha`.

use crate::layer::{built, common_builders, describe, layer_common, penalties, with_name, Ctx, Layer, Weight};
use crate::{Error, Initializer, Regularizer, Result};
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
use serde::{Deserialize, Serialize};

/// The hyper-parameters of [`PReLU`] (its Keras config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PReLUConfig {
    /// How `alpha` starts (Keras default zeros: the layer starts as a ReLU).
    pub alpha_initializer: Initializer,
    /// The penalty on `alpha`.
    pub alpha_regularizer: Option<Regularizer>,
    /// The constraint on `alpha`, applied after every optimizer step (Keras's `alpha_constraint`).
    pub alpha_constraint: Option<crate::Constraint>,
    /// The per-sample axes (1-based, as Keras) along which one `alpha` is shared.
    pub shared_axes: Option<Vec<usize>>,
}

impl Default for PReLUConfig {
    fn default() -> Self {
        PReLUConfig {
            alpha_initializer: Initializer::Zeros,
            alpha_regularizer: None,
            alpha_constraint: None,
            shared_axes: None,
        }
    }
}

/// Keras's `layers.PReLU(alpha_initializer="zeros", shared_axes=None)`:
/// `f(x) = max(0, x) + alpha * min(0, x)` with one trainable `alpha` (weight `"alpha"`) per
/// element of the per-sample shape, except along `shared_axes` (1-based, the first
/// per-sample axis is 1), where `alpha` has size 1 and is shared. Axes that are not shared
/// are fixed at build time; an input that differs there is an error naming the layer.
pub struct PReLU {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: PReLUConfig,
    built_shape: Option<Vec<usize>>,
    alpha: Option<Param>,
}

common_builders!(PReLU);

impl Default for PReLU {
    fn default() -> Self {
        PReLU::new()
    }
}

impl PReLU {
    /// A PReLU with Keras's defaults (zeros, nothing shared).
    pub fn new() -> Self {
        PReLU::from_config(PReLUConfig::default())
    }

    /// A PReLU from its config.
    pub fn from_config(cfg: PReLUConfig) -> Self {
        PReLU { name: String::new(), input_shape: None, cfg, built_shape: None, alpha: None }
    }

    /// The config.
    pub fn get_config(&self) -> &PReLUConfig {
        &self.cfg
    }

    /// Set the initializer of `alpha`.
    pub fn alpha_initializer(mut self, i: Initializer) -> Self {
        self.cfg.alpha_initializer = i;
        self
    }

    /// Penalise `alpha`.
    pub fn alpha_regularizer(mut self, r: Regularizer) -> Self {
        self.cfg.alpha_regularizer = Some(r);
        self
    }

    crate::layer::constraint_builders!(methods: alpha_constraint => "`alpha`");

    /// Share `alpha` along these per-sample axes (1-based, as Keras's `shared_axes`).
    pub fn shared_axes(mut self, axes: impl Into<Vec<usize>>) -> Self {
        self.cfg.shared_axes = Some(axes.into());
        self
    }

    /// `alpha`, once built.
    pub fn alpha(&self) -> Option<&Param> {
        self.alpha.as_ref()
    }

    /// `max(0, x) + alpha * min(0, x)` for a given `alpha` (broadcast against the batch
    /// `x`): the layer's function with its weight passed in, e.g. for a gradient check.
    pub fn forward_with_alpha(&self, x: &Var, alpha: &Var) -> Result<Var> {
        Ok(x.relu()?.add(&alpha.mul(&x.minimum_scalar(0.0)?)?)?)
    }

    /// Whether per-sample axis `i` (0-based) shares its `alpha`.
    fn shared(&self, i: usize) -> bool {
        self.cfg.shared_axes.as_ref().is_some_and(|s| s.contains(&(i + 1)))
    }

    /// The shape of `alpha` for a per-sample `input_shape`, after checking `shared_axes`
    /// against its rank and, once built, the input against the built shape.
    fn alpha_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let rank = input_shape.len();
        let mismatch = |have: &[usize]| Error::IncompatibleInput {
            layer: self.name.clone(),
            class: "PReLU",
            expected: format!("a per-sample shape matching {have:?} outside shared_axes (alpha's shape)"),
            got: input_shape.to_vec(),
        };
        if let Some(have) = self.built_shape.as_deref().filter(|h| h.len() != rank) {
            return Err(mismatch(have));
        }
        if let Some(bad) = self.cfg.shared_axes.iter().flatten().find(|&&a| a < 1 || a > rank) {
            return Err(Error::config(
                describe(self),
                format!("shared_axes {bad} is out of range for a per-sample rank of {rank} (valid: 1..={rank})"),
            ));
        }
        let shape: Vec<usize> =
            input_shape.iter().enumerate().map(|(i, &d)| if self.shared(i) { 1 } else { d }).collect();
        match &self.built_shape {
            Some(have) if *have != shape => Err(mismatch(have)),
            _ => Ok(shape),
        }
    }
}

impl Layer for PReLU {
    layer_common!("PReLU");

    fn supports_masking(&self) -> bool {
        true
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<()> {
        let shape = self.alpha_shape(input_shape)?;
        if self.built_shape.is_none() {
            self.alpha = Some(Param::new(self.cfg.alpha_initializer.sample(&shape, rng)?));
            self.built_shape = Some(shape);
        }
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.built_shape.is_some()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        self.alpha_shape(input_shape)?;
        Ok(input_shape.to_vec())
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let alpha = built(&self.alpha, self)?;
        self.alpha_shape(x.dims().get(1..).unwrap_or(&[]))?;
        self.forward_with_alpha(x, &ctx.param(alpha)?)
    }

    fn weights(&self) -> Vec<Weight> {
        self.alpha.iter().map(|a| Weight::trainable("alpha", a)).collect()
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::to_value(&self.cfg).unwrap_or_default())
    }

    fn regularization_loss(&self, ctx: &Ctx<'_>) -> Result<Option<Var>> {
        penalties(ctx, &[(&self.cfg.alpha_regularizer, &self.alpha)])
    }

    fn constraints(&self) -> Vec<(Param, crate::Constraint)> {
        crate::layer::constraint_pairs(&[(&self.cfg.alpha_constraint, &self.alpha)])
    }
}
