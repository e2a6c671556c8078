//! [`Sequential`]: a plain stack of layers, as in Keras.

use crate::layer::{add_opt, fmt_shape, Ctx, Layer};
use crate::layers::IntoLayer;
use crate::mixed_precision::{global_policy, DTypePolicy};
use crate::network::{check_inputs, config_with_trainable, no_such_layer, unique_name, Head, NamedParam, Network};
use crate::summary::{format_summary, SummaryRow};
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Tensor};
use std::collections::HashSet;

/// The seed of a model's initializer when none is given ([`Sequential::with_seed`]).
pub const DEFAULT_SEED: u64 = 0;

/// A linear stack of layers.
///
/// Layers are named when added (Keras's numbering, per model: `conv2d`,
/// `conv2d_1`, ...). The model builds as soon as the input shape is known
/// (the first layer's `.input_shape(..)`, or [`Network::build`]); weights are
/// drawn from the model's seeded rng, so the same seed gives the same model.
/// A shape error found while adding is kept and returned by the next
/// `build`/`forward` (use [`Sequential::try_add`] to get it at once).
pub struct Sequential {
    name: String,
    layers: Vec<Box<dyn Layer>>,
    input_shape: Option<Vec<usize>>,
    /// Per-sample output shape of each layer, for the built prefix.
    shapes: Vec<Vec<usize>>,
    rng: Rng,
    error: Option<Error>,
    policy: DTypePolicy,
    /// The names of the frozen layers ([`Network::set_trainable`]).
    frozen: HashSet<String>,
}

impl Default for Sequential {
    fn default() -> Self {
        Sequential::new()
    }
}

impl Sequential {
    /// An empty model named "sequential", seed [`DEFAULT_SEED`].
    pub fn new() -> Self {
        Sequential::with_seed(DEFAULT_SEED)
    }

    /// An empty model whose weights are drawn from `seed`.
    pub fn with_seed(seed: u64) -> Self {
        Sequential {
            name: "sequential".into(),
            layers: Vec::new(),
            input_shape: None,
            shapes: Vec::new(),
            rng: Rng::new(seed),
            error: None,
            policy: global_policy(),
            frozen: HashSet::new(),
        }
    }

    /// Use `policy` (mixed precision; see [`crate::mixed_precision`]). A new model takes
    /// the global policy.
    pub fn dtype_policy(mut self, policy: DTypePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Change the policy of an existing model (weights are kept in F32 under every policy,
    /// so a built model can switch).
    pub fn set_dtype_policy(&mut self, policy: DTypePolicy) {
        self.policy = policy;
    }

    /// The model's dtype policy.
    pub fn get_dtype_policy(&self) -> DTypePolicy {
        self.policy
    }

    /// Rename the model.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Append a layer (see the type docs for when it is built), or a whole model, which
    /// becomes one layer ([`ModelLayer`](crate::ModelLayer)).
    pub fn add(&mut self, layer: impl IntoLayer) -> &mut Self {
        if let Err(e) = self.try_add(layer) {
            if self.error.is_none() {
                self.error = Some(e);
            }
        }
        self
    }

    /// Append a boxed layer.
    pub fn add_boxed(&mut self, layer: Box<dyn Layer>) -> &mut Self {
        if let Err(e) = self.try_add_boxed(layer) {
            if self.error.is_none() {
                self.error = Some(e);
            }
        }
        self
    }

    /// Append a layer or a model, returning a shape or naming error at once.
    pub fn try_add(&mut self, layer: impl IntoLayer) -> Result<()> {
        self.try_add_boxed(layer.into_layer())
    }

    /// Append a boxed layer, returning a shape or naming error at once.
    pub fn try_add_boxed(&mut self, mut layer: Box<dyn Layer>) -> Result<()> {
        let taken: HashSet<String> = self.layers.iter().map(|l| l.name().to_string()).collect();
        if layer.name().is_empty() {
            layer.set_name(unique_name(&layer.base_name(), &taken));
        } else if taken.contains(layer.name()) {
            return Err(Error::config(
                format!("model \"{}\"", self.name),
                format!(
                    "a layer named \"{}\" is already in the model; layer names must be unique: rename this one \
                     with `.with_name(..)`",
                    layer.name()
                ),
            ));
        }
        if self.layers.is_empty() && self.input_shape.is_none() {
            self.input_shape = layer.declared_input_shape();
        }
        self.layers.push(layer);
        if self.error.is_none() && self.input_shape.is_some() {
            self.build_pending()?;
        }
        Ok(())
    }

    /// Remove and return the last layer (Keras's `model.pop()`), e.g. to put a new head on
    /// a trained model; `None` when the model has no layers. The other layers keep their
    /// weights; a layer added next is built for the new last output.
    pub fn pop(&mut self) -> Option<Box<dyn Layer>> {
        let layer = self.layers.pop()?;
        self.shapes.truncate(self.layers.len());
        self.frozen.remove(layer.name());
        Some(layer)
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    /// The layer called `name`.
    pub fn get_layer(&self, name: &str) -> Option<&dyn Layer> {
        self.layers.iter().find(|l| l.name() == name).map(|l| &**l)
    }

    /// True when `layer` is frozen ([`Network::set_trainable`]).
    fn is_frozen(&self, layer: &str) -> bool {
        !self.frozen.is_empty() && self.frozen.contains(layer)
    }

    /// The error kept from `add`, if any.
    pub fn pending_error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// The one shape of `input_shapes`, checked against the declared input shape (and the
    /// error kept from `add`, if any).
    fn the_input_shape<'s>(&self, input_shapes: &'s [Vec<usize>]) -> Result<&'s Vec<usize>> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let [shape] = input_shapes else {
            return Err(Error::Input {
                model: self.name.clone(),
                msg: format!("a Sequential model has one input, got {} shapes", input_shapes.len()),
            });
        };
        if let Some(have) = self.input_shape.as_ref().filter(|have| *have != shape) {
            return Err(Error::Input {
                model: self.name.clone(),
                msg: format!("the model was declared with input shape {have:?}, not {shape:?}"),
            });
        }
        Ok(shape)
    }

    /// Build the layers not built yet, from the last known shape.
    fn build_pending(&mut self) -> Result<()> {
        let Some(input) = self.input_shape.clone() else {
            return Err(Error::Input { model: self.name.clone(), msg: "the input shape is not known yet".into() });
        };
        for i in self.shapes.len()..self.layers.len() {
            let inp = if i == 0 { input.clone() } else { self.shapes[i - 1].clone() };
            let layer = &mut self.layers[i];
            layer.build(&inp, &mut self.rng)?;
            let out = layer.output_shape(&inp)?;
            self.shapes.push(out);
        }
        Ok(())
    }
}

impl Network for Sequential {
    fn get_dtype_policy(&self) -> DTypePolicy {
        self.policy
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn build(&mut self, input_shapes: &[Vec<usize>]) -> Result<()> {
        let shape = self.the_input_shape(input_shapes)?.clone();
        self.input_shape = Some(shape);
        let r = self.build_pending();
        if let Err(e) = &r {
            self.error = Some(e.clone());
        }
        r
    }

    fn is_built(&self) -> bool {
        self.error.is_none() && self.input_shape.is_some() && self.shapes.len() == self.layers.len()
    }

    fn input_shapes(&self) -> Vec<Vec<usize>> {
        self.input_shape.iter().cloned().collect()
    }

    fn output_shapes(&self) -> Result<Vec<Vec<usize>>> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        match (&self.input_shape, self.shapes.last()) {
            (Some(_), Some(s)) if self.is_built() => Ok(vec![s.clone()]),
            (Some(s), None) => Ok(vec![s.clone()]),
            _ => Err(Error::Input { model: self.name.clone(), msg: "the model is not built yet".into() }),
        }
    }

    fn compute_output_shapes(&self, input_shapes: &[Vec<usize>]) -> Result<Vec<Vec<usize>>> {
        let mut s = self.the_input_shape(input_shapes)?.clone();
        for layer in &self.layers {
            s = layer.output_shape(&s)?;
        }
        Ok(vec![s])
    }

    fn output_names(&self) -> Vec<String> {
        // Keras: the last layer's name (the input's, with no layers)
        vec![self.layers.last().map(|l| l.name().to_string()).unwrap_or_else(|| "input".into())]
    }

    fn input_autocast(&self, i: usize) -> Option<DType> {
        // the first layer reads the input (with no layers, the input is the output)
        let first = self.layers.first().filter(|_| i == 0)?;
        self.policy.autocast_dtype().filter(|_| first.autocast())
    }

    fn output_activation(&self, i: usize) -> Option<crate::Activation> {
        self.layers.last().filter(|_| i == 0)?.output_activation()
    }

    fn forward_heads(&self, inputs: &[Var], ctx: &mut Ctx<'_>) -> Result<Vec<Head>> {
        self.forward_heads_masked(inputs, &[], ctx)
    }

    fn forward_heads_masked(&self, inputs: &[Var], masks: &[Option<Tensor>], ctx: &mut Ctx<'_>) -> Result<Vec<Head>> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if !self.is_built() {
            return Err(Error::Input {
                model: self.name.clone(),
                msg: "the model is not built: give the first layer an input_shape or call build".into(),
            });
        }
        check_inputs(&self.name, &self.input_shapes(), inputs)?;
        let policy = self.policy;
        ctx.with_policy(policy, |ctx| {
            // a frozen layer's weights are constants, cast when read
            let cast: Vec<keel_autograd::Param> = self
                .layers
                .iter()
                .filter(|l| !self.is_frozen(l.name()))
                .flat_map(|l| l.compute_dtype_params())
                .collect();
            ctx.precast(&cast)?;
            let mut x = inputs[0].clone();
            // the mask the last layer passed on (Keras's mask propagation); first the input's
            let mut mask: Option<Tensor> = masks.first().cloned().flatten();
            let Some((last, body)) = self.layers.split_last() else {
                return Ok(vec![Head::new(x, None).with_mask(mask)]);
            };
            for layer in body {
                let input = ctx.layer_input(layer.as_ref(), &x)?;
                let frozen = self.is_frozen(layer.name());
                x = ctx.with_frozen(frozen, |ctx| match &mask {
                    None => layer.forward(&input, ctx),
                    Some(_) => {
                        let z = layer.forward_logits_masked(std::slice::from_ref(&input), &[mask.clone()], ctx)?;
                        match layer.output_activation() {
                            Some(a) => a.apply(&z),
                            None => Ok(z),
                        }
                    }
                })?;
                ctx.add_activity_loss(layer.as_ref(), &x)?;
                mask = layer.compute_mask(std::slice::from_ref(&input), &[mask])?;
            }
            let input = ctx.layer_input(last.as_ref(), &x)?;
            let logits = ctx.with_frozen(self.is_frozen(last.name()), |ctx| match &mask {
                None => last.forward_logits(&input, ctx),
                Some(_) => last.forward_logits_masked(std::slice::from_ref(&input), &[mask.clone()], ctx),
            })?;
            let mask = last.compute_mask(std::slice::from_ref(&input), &[mask])?;
            if last.activity_regularizer().is_some() {
                // the penalty is of the output, after the activation the head leaves to the loss
                let y = match last.output_activation() {
                    Some(a) => a.apply(&logits)?,
                    None => logits.clone(),
                };
                ctx.add_activity_loss(last.as_ref(), &y)?;
            }
            Ok(vec![policy.head(logits, last.output_activation()).with_mask(mask)])
        })
    }

    fn named_weights(&self) -> Vec<NamedParam> {
        let mut seen = HashSet::new();
        let mut all: Vec<NamedParam> = Vec::new();
        for l in &self.layers {
            for w in l.weights() {
                if seen.insert(w.param.id()) {
                    all.push(NamedParam {
                        name: format!("{}/{}", l.name(), w.name),
                        param: w.param,
                        trainable: w.trainable && !self.is_frozen(l.name()),
                    });
                }
            }
        }
        all.sort_by_key(|w| !w.trainable); // stable: trainable first, layer order kept
        all
    }

    fn weight_constraints(&self) -> Vec<(keel_autograd::Param, crate::Constraint)> {
        self.layers.iter().filter(|l| !self.is_frozen(l.name())).flat_map(|l| l.constraints()).collect()
    }

    fn regularization_loss(&self, ctx: &Ctx<'_>) -> Result<Option<Var>> {
        // Keras penalizes the trainable weights only
        let mut acc = None;
        for l in self.layers.iter().filter(|l| !self.is_frozen(l.name())) {
            acc = add_opt(acc, l.regularization_loss(ctx)?)?;
        }
        Ok(acc)
    }

    fn set_trainable(&mut self, layer: &str, trainable: bool) -> Result<()> {
        if self.get_layer(layer).is_none() {
            return Err(no_such_layer(&self.name, layer, self.layers.iter().map(|l| l.name())));
        }
        if trainable {
            self.frozen.remove(layer);
        } else {
            self.frozen.insert(layer.to_string());
        }
        Ok(())
    }

    fn set_all_trainable(&mut self, trainable: bool) {
        self.frozen =
            if trainable { HashSet::new() } else { self.layers.iter().map(|l| l.name().to_string()).collect() };
    }

    fn is_trainable(&self, layer: &str) -> Option<bool> {
        self.get_layer(layer).map(|_| !self.frozen.contains(layer))
    }

    fn summary_with(&self, expand_nested: bool) -> String {
        if let Some(e) = &self.error {
            return format!("Model: \"{}\" cannot be built: {e}\n", self.name);
        }
        if !self.is_built() {
            return format!(
                "Model: \"{}\" has not been built yet: give the first layer an input_shape or call build\n",
                self.name
            );
        }
        let trainable = self.trainable_params().iter().map(|p| p.elem_count()).sum();
        let frozen = self.non_trainable_params().iter().map(|p| p.elem_count()).sum();
        format_summary(&self.name, &self.summary_rows(expand_nested), trainable, frozen)
    }

    fn reset_state(&self) {
        for l in &self.layers {
            l.reset_state();
        }
    }

    fn summary_rows(&self, expand_nested: bool) -> Vec<SummaryRow> {
        if self.error.is_some() || !self.is_built() {
            return Vec::new();
        }
        self.layers
            .iter()
            .zip(&self.shapes)
            .map(|(l, s)| SummaryRow {
                layer: format!("{} ({})", l.name(), l.class_name()),
                output_shape: fmt_shape(s),
                params: l.count_params(),
                connected_to: None,
                nested: if expand_nested { l.nested_summary_rows() } else { Vec::new() },
            })
            .collect()
    }

    fn config(&self) -> serde_json::Value {
        let layers: Vec<serde_json::Value> = self
            .layers
            .iter()
            .map(|l| {
                let config = config_with_trainable(l.config(), !self.is_frozen(l.name()));
                serde_json::json!({ "class_name": l.class_name(), "config": config })
            })
            .collect();
        serde_json::json!({
            "class_name": "Sequential",
            "config": {
                "name": self.name,
                "input_shape": self.input_shape,
                "dtype_policy": self.policy.name(),
                "layers": layers,
            },
        })
    }
}
