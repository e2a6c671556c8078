//! [`ModelLayer`]: a whole model used as one layer of another, as Keras allows
//! (`Sequential([base_model, Dense(10)])`, `outputs = base_model(inputs)`).

use crate::layer::{Ctx, Layer, Weight};
use crate::network::Network;
use crate::{Activation, Error, Result};
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
use keel_tensor::Tensor;
use std::sync::{Mutex, PoisonError};

/// A [`Sequential`](crate::Sequential) or functional [`Model`](crate::Model) used as one
/// layer of another model, the usual transfer-learning set-up:
///
/// ```
/// use keel_nn::prelude::*;
///
/// # fn main() -> keel_nn::Result<()> {
/// // a trained feature extractor (here a fresh one)
/// let mut base = Sequential::new().with_name("base");
/// base.add(Dense::new(16).activation(Activation::Relu).input_shape([8]));
/// base.add(Dense::new(16).activation(Activation::Relu));
///
/// // a new head on it; the base's weights are frozen
/// let mut model = Sequential::new();
/// model.add(base);
/// model.add(Dense::new(3).activation(Activation::Softmax));
/// model.set_trainable("base", false)?;
/// assert_eq!(model.named_weights()[0].name, "dense/kernel");
/// assert!(model.named_weights().iter().any(|w| w.name == "base/dense_1/kernel" && !w.trainable));
/// # Ok(())
/// # }
/// ```
///
/// [`Sequential::add`](crate::Sequential::add) takes a model directly (it wraps it); in a
/// functional graph call `ModelLayer::new(base).call(&x)` (or `.shared()` to call it more
/// than once, with the same weights).
///
/// - **Weights** keep the model's own names below the layer's: `base/dense_1/kernel`. A
///   layer frozen inside the model stays frozen; freezing the whole layer from the outer
///   model (`set_trainable("base", false)`, Keras's `base_model.trainable = False`) freezes
///   every weight in it, and its `BatchNormalization` layers run in inference mode, as in
///   Keras.
/// - **Building**: a model that is already built (a trained one, or a Sequential whose first
///   layer declares its `input_shape`) keeps its weights and must get the shapes it was
///   built for. An unbuilt one is built when the outer model is (a functional graph that
///   calls it builds it), from its own seed, not the outer model's.
/// - **Final activation**: the outer model sees the inner model's final activation, so a
///   softmax at the end of a nested model still fuses with the cross-entropy.
/// - **Mixed precision**: the inner model computes under its own dtype policy.
/// - **Masks** cross the boundary both ways, as in Keras: a masked input reaches the inner
///   model's layers with its mask ([`Network::forward_heads_masked`]), and the mask of the
///   inner model's output (one an `Embedding(mask_zero)` inside made, say) goes on to the
///   layers after it.
/// - A model with several outputs cannot be a layer (a layer has one output); one with
///   several inputs is called with [`LayerHandle::call_multi`](crate::LayerHandle::call_multi).
pub struct ModelLayer {
    name: String,
    class: &'static str,
    net: Box<dyn Network>,
    /// The output mask of the last forward pass, for [`Layer::compute_mask`], which models
    /// call right after the forward pass with the same inputs.
    last_mask: Mutex<Option<MaskMemo>>,
}

/// A forward pass's inputs and input masks, and the mask of its output.
struct MaskMemo {
    inputs: Vec<Tensor>,
    masks: Vec<Option<Tensor>>,
    out: Option<Tensor>,
}

impl MaskMemo {
    /// True when `xs` and `masks` are the very tensors (same storage and layout) it was made for.
    fn is_for(&self, xs: &[Var], masks: &[Option<Tensor>]) -> bool {
        let same = |a: &Tensor, b: &Tensor| a.same_storage(b) && a.layout() == b.layout();
        self.inputs.len() == xs.len()
            && self.inputs.iter().zip(xs).all(|(a, x)| same(a, x.value()))
            && (0..self.masks.len().max(masks.len())).all(|i| {
                match (self.masks.get(i).and_then(Option::as_ref), masks.get(i).and_then(Option::as_ref)) {
                    (None, None) => true,
                    (Some(a), Some(b)) => same(a, b),
                    _ => false,
                }
            })
    }
}

impl ModelLayer {
    /// Wrap `net`; the layer takes the model's name.
    pub fn new(net: impl Network + 'static) -> Self {
        ModelLayer::from_box(Box::new(net))
    }

    /// Wrap a boxed network.
    pub fn from_box(net: Box<dyn Network>) -> Self {
        let class = match net.config().get("class_name").and_then(serde_json::Value::as_str) {
            Some("Sequential") => "Sequential",
            Some("Functional") => "Functional",
            _ => "Model",
        };
        ModelLayer { name: net.name().to_string(), class, net, last_mask: Mutex::new(None) }
    }

    /// The wrapped model.
    pub fn network(&self) -> &dyn Network {
        self.net.as_ref()
    }

    /// The wrapped model, mutably (to freeze or unfreeze its own layers).
    pub fn network_mut(&mut self) -> &mut dyn Network {
        self.net.as_mut()
    }

    /// The wrapped model, unwrapped.
    pub fn into_network(self) -> Box<dyn Network> {
        self.net
    }

    /// An error for a model with more than one output.
    fn one_output(&self) -> Result<()> {
        match self.net.output_shapes() {
            Ok(s) if s.len() != 1 => Err(Error::config(
                format!("layer \"{}\" ({})", self.name, self.class),
                format!(
                    "the model has {} outputs, and a layer has one: use it as a model, or make a model of the \
                     output you need",
                    s.len()
                ),
            )),
            _ => Ok(()),
        }
    }
}

impl Layer for ModelLayer {
    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn class_name(&self) -> &'static str {
        self.class
    }

    fn nested_summary_rows(&self) -> Vec<crate::summary::SummaryRow> {
        self.net.summary_rows(true)
    }

    fn declared_input_shape(&self) -> Option<Vec<usize>> {
        match self.net.input_shapes().as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        }
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<()> {
        self.build_multi(&[input_shape.to_vec()], rng)
    }

    fn build_multi(&mut self, input_shapes: &[Vec<usize>], _rng: &mut Rng) -> Result<()> {
        // the inner model draws new weights from its own seed
        self.net.build(input_shapes)?;
        self.one_output()
    }

    fn is_built(&self) -> bool {
        self.net.is_built()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        self.output_shape_multi(&[input_shape.to_vec()])
    }

    fn output_shape_multi(&self, input_shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
        let mut outs = self.net.compute_output_shapes(input_shapes)?;
        match outs.len() {
            1 => Ok(outs.pop().unwrap_or_default()),
            n => Err(Error::config(
                format!("layer \"{}\" ({})", self.name, self.class),
                format!(
                    "the model has {n} outputs, and a layer has one: use it as a model, or make a model of the \
                     output you need"
                ),
            )),
        }
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        self.forward_logits_multi(std::slice::from_ref(x), ctx)
    }

    fn forward_logits_multi(&self, xs: &[Var], ctx: &mut Ctx<'_>) -> Result<Var> {
        self.forward_logits_masked(xs, &[], ctx)
    }

    fn forward_logits_masked(&self, xs: &[Var], masks: &[Option<Tensor>], ctx: &mut Ctx<'_>) -> Result<Var> {
        self.one_output()?;
        let mut heads = self.net.forward_heads_masked(xs, masks, ctx)?;
        let head = heads.pop().ok_or_else(|| Error::Graph(format!("model \"{}\" gave no output", self.name)))?;
        let memo = MaskMemo {
            inputs: xs.iter().map(|x| x.value().clone()).collect(),
            masks: masks.to_vec(),
            out: head.mask().cloned(),
        };
        *self.last_mask.lock().unwrap_or_else(PoisonError::into_inner) = Some(memo);
        // the logits when the head's activation is the one this layer reports, else the output
        if head.activation == self.output_activation().unwrap_or_default() {
            Ok(head.output_logits()?.clone())
        } else {
            head.into_output()
        }
    }

    fn supports_masking(&self) -> bool {
        true
    }

    fn compute_mask(&self, xs: &[Var], masks: &[Option<Tensor>]) -> Result<Option<Tensor>> {
        if let Some(memo) = self.last_mask.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            if memo.is_for(xs, masks) {
                return Ok(memo.out.clone());
            }
        }
        // not the last forward pass's inputs (another thread ran it since): run it again
        let xs: Vec<Var> = xs.iter().map(|x| Var::constant(x.value().clone())).collect();
        let mut heads = self.net.forward_heads_masked(&xs, masks, &mut Ctx::inference())?;
        Ok(heads.pop().and_then(|h| h.mask().cloned()))
    }

    fn output_activation(&self) -> Option<Activation> {
        self.net.output_activation(0)
    }

    fn autocast(&self) -> bool {
        false // the inner model casts its inputs by its own policy
    }

    fn compute_dtype_params(&self) -> Vec<Param> {
        Vec::new() // the inner model casts its own weights when its forward pass starts
    }

    fn weights(&self) -> Vec<Weight> {
        self.net
            .named_weights()
            .into_iter()
            .map(|w| Weight { name: w.name.into(), param: w.param, trainable: w.trainable })
            .collect()
    }

    fn reset_state(&self) {
        self.net.reset_state();
    }

    fn config(&self) -> serde_json::Value {
        let mut cfg = self.net.config().get("config").cloned().unwrap_or_else(|| serde_json::json!({}));
        if let Some(obj) = cfg.as_object_mut() {
            obj.insert("name".into(), self.name.clone().into());
        }
        cfg
    }

    fn constraints(&self) -> Vec<(Param, crate::Constraint)> {
        self.net.weight_constraints()
    }

    fn regularization_loss(&self, ctx: &Ctx<'_>) -> Result<Option<Var>> {
        self.net.regularization_loss(ctx)
    }
}

/// What [`Sequential::add`](crate::Sequential::add) takes: any layer, or a whole model
/// (wrapped in a [`ModelLayer`]).
pub trait IntoLayer {
    /// The value as a boxed layer.
    fn into_layer(self) -> Box<dyn Layer>;
}

impl<L: Layer + 'static> IntoLayer for L {
    fn into_layer(self) -> Box<dyn Layer> {
        Box::new(self)
    }
}

impl IntoLayer for crate::Sequential {
    fn into_layer(self) -> Box<dyn Layer> {
        Box::new(ModelLayer::new(self))
    }
}

impl IntoLayer for crate::Model {
    fn into_layer(self) -> Box<dyn Layer> {
        Box::new(ModelLayer::new(self))
    }
}
