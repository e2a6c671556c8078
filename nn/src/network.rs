//! The [`Network`] trait the trainer drives (implemented by [`crate::Sequential`]
//! and the functional [`crate::Model`]), the [`Head`] of an output, and weight maps.

use crate::layer::Ctx;
use crate::{Activation, Error, Result};
use keel_autograd::{Param, Var};
use keel_tensor::{DType, Device, Tensor};
use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

/// One model output split at its final activation, for loss fusion.
///
/// `output() == activation.apply(logits)`. A loss given a `Head`
/// ([`crate::LossFn::compute_head`]) uses the fused, stable primitive on
/// `logits` when `activation` matches it (softmax + categorical
/// cross-entropy, sigmoid + binary cross-entropy), as Keras does, and
/// the output otherwise; metrics read the output. The output is computed when first
/// asked for, so that a fused loss can supply it (softmax + cross-entropy give both from
/// one kernel launch on a GPU).
#[derive(Debug, Clone)]
pub struct Head {
    /// The value before the final activation, as the last layer computed it: under mixed
    /// precision in the compute dtype (BF16); [`Head::output_logits`] gives it in the
    /// model's output dtype.
    pub logits: Var,
    /// The final activation (`Linear` when the last layer has none).
    pub activation: Activation,
    /// The model's output dtype when the logits are in another (mixed precision: F32).
    output_dtype: Option<DType>,
    cast: OnceLock<Var>,
    output: OnceLock<Var>,
    mask: Option<Tensor>,
}

impl Head {
    /// Split `logits` + `activation` into a head (the output is computed on first use).
    pub fn new(logits: Var, activation: Option<Activation>) -> Head {
        Head {
            logits,
            activation: activation.unwrap_or_default(),
            output_dtype: None,
            cast: OnceLock::new(),
            output: OnceLock::new(),
            mask: None,
        }
    }

    /// The head with the output's mask (see [`crate::Layer::compute_mask`]): losses and
    /// metrics then count only the unmasked positions, as Keras's do.
    pub fn with_mask(mut self, mask: Option<Tensor>) -> Head {
        self.mask = mask;
        self
    }

    /// The output's mask, when the layer that made it passed one on (U8, nonzero where a
    /// position counts; e.g. `[batch, timesteps]` after `Embedding(mask_zero)` and a
    /// recurrent layer with `return_sequences`).
    pub fn mask(&self) -> Option<&Tensor> {
        self.mask.as_ref()
    }

    /// [`Head::new`] for a model whose output is float `dtype` whatever its layers compute
    /// in (mixed precision: F32): float logits of another dtype are cast to it on first
    /// use ([`Head::output_logits`]), so a loss that reads them as they are (the softmax
    /// cross-entropy reads BF16 as F32) needs no cast.
    pub fn with_output_dtype(logits: Var, activation: Option<Activation>, dtype: DType) -> Head {
        let cast = logits.dtype().is_float() && logits.dtype() != dtype;
        Head { output_dtype: cast.then_some(dtype), ..Head::new(logits, activation) }
    }

    /// The logits in the model's output dtype: [`Head::logits`] itself, or its cast
    /// (made on first use) under mixed precision.
    pub fn output_logits(&self) -> Result<&Var> {
        let Some(dtype) = self.output_dtype else { return Ok(&self.logits) };
        if let Some(v) = self.cast.get() {
            return Ok(v);
        }
        let v = self.logits.to_dtype(dtype)?;
        Ok(self.cast.get_or_init(|| v))
    }

    /// The model's output, `activation.apply(output_logits)`.
    pub fn output(&self) -> Result<&Var> {
        if let Some(out) = self.output.get() {
            return Ok(out);
        }
        let out = self.activation.apply(self.output_logits()?)?;
        Ok(self.output.get_or_init(|| out))
    }

    /// The model's output, consuming the head.
    pub fn into_output(self) -> Result<Var> {
        self.output()?;
        self.output.into_inner().ok_or_else(|| Error::Graph("internal: head output not computed".into()))
    }

    /// True once the output has been computed (or supplied).
    pub fn has_output(&self) -> bool {
        self.output.get().is_some()
    }

    /// Supply the output computed elsewhere (a fused loss's probabilities); the caller
    /// guarantees it is `activation.apply(output_logits)`. No effect when it is already there.
    pub(crate) fn supply_output(&self, output: Var) {
        let _ = self.output.set(output);
    }
}

/// A model weight with its stable, model-unique name (`"dense_1/kernel"`).
#[derive(Debug, Clone)]
pub struct NamedParam {
    /// `"{layer}/{weight}"`.
    pub name: String,
    /// The parameter handle (shared with the layer).
    pub param: Param,
    /// False for batch-norm moving statistics and other non-trained state.
    pub trainable: bool,
}

/// What a trainer needs from a model: build it, run it (with the final
/// activation split off for loss fusion), list its parameters by stable name,
/// add the weight penalties, describe it, and save/restore its weights.
pub trait Network: Send + Sync {
    /// The model's name (`"sequential"`, `"model"`, ...).
    fn name(&self) -> &str;

    /// Build every layer for these per-sample input shapes (one per model input).
    /// A no-op when already built with the same shapes.
    fn build(&mut self, input_shapes: &[Vec<usize>]) -> Result<()>;

    /// True once every layer is built.
    fn is_built(&self) -> bool;

    /// The per-sample input shapes (empty while unknown).
    fn input_shapes(&self) -> Vec<Vec<usize>>;

    /// The per-sample output shapes.
    fn output_shapes(&self) -> Result<Vec<Vec<usize>>>;

    /// The per-sample output shapes for these input shapes, without building (Keras's
    /// `compute_output_shape`). The default: the output shapes of a model built for them.
    fn compute_output_shapes(&self, input_shapes: &[Vec<usize>]) -> Result<Vec<Vec<usize>>> {
        let have = self.input_shapes();
        if self.is_built() && have.as_slice() == input_shapes {
            return self.output_shapes();
        }
        Err(Error::Input {
            model: self.name().to_string(),
            msg: format!("the model takes inputs of per-sample shapes {have:?}, not {input_shapes:?}"),
        })
    }

    /// The name of each output (Keras's `output_names`: the name of the layer that makes
    /// it); `fit` logs a model with several outputs as `<name>_loss`, `<name>_<metric>`.
    /// The default names them `output_1`, `output_2`, ...
    fn output_names(&self) -> Vec<String> {
        let n = self.output_shapes().map(|s| s.len()).unwrap_or(1);
        (1..=n).map(|i| format!("output_{i}")).collect()
    }

    /// The model's dtype policy (Keras's `model.dtype_policy`; `"float32"` unless the
    /// model keeps one): `compile` reads it to add loss scaling under `"mixed_float16"`.
    fn get_dtype_policy(&self) -> crate::mixed_precision::DTypePolicy {
        crate::mixed_precision::DTypePolicy::Float32
    }

    /// The dtype that every layer reading model input `i` casts it to first (mixed
    /// precision's autocast, e.g. BF16 under `"mixed_bfloat16"`); `None` when some reader
    /// takes the input as it is (an Embedding, the float32 policy, an input that is also an
    /// output). An input already in this dtype reaches those layers unchanged, with the
    /// same values a cast inside the model would give, so `fit` can cast its data once
    /// instead of once per batch.
    fn input_autocast(&self, i: usize) -> Option<DType> {
        let _ = i;
        None
    }

    /// The final activation of output `i` (its [`Head::activation`]) when not linear, known
    /// before a forward pass (a model used as a layer reports it as the layer's
    /// [`crate::Layer::output_activation`]). The default says none.
    fn output_activation(&self, i: usize) -> Option<crate::Activation> {
        let _ = i;
        None
    }

    /// Run on a batch per input; one [`Head`] per output.
    fn forward_heads(&self, inputs: &[Var], ctx: &mut Ctx<'_>) -> Result<Vec<Head>>;

    /// [`Network::forward_heads`] with a mask per input (`None`: unmasked; U8, nonzero where a
    /// value counts, as [`crate::Layer::compute_mask`] makes them), which the model propagates
    /// to its layers as if they came from a layer before it: a model used as a layer
    /// ([`crate::ModelLayer`]) gets its masks so. The default takes no masks.
    fn forward_heads_masked(&self, inputs: &[Var], masks: &[Option<Tensor>], ctx: &mut Ctx<'_>) -> Result<Vec<Head>> {
        if masks.iter().all(Option::is_none) {
            return self.forward_heads(inputs, ctx);
        }
        Err(Error::Graph(format!("model \"{}\" does not take input masks", self.name())))
    }

    /// Run on a batch per input; one output per model output.
    fn forward(&self, inputs: &[Var], ctx: &mut Ctx<'_>) -> Result<Vec<Var>> {
        self.forward_heads(inputs, ctx)?.into_iter().map(Head::into_output).collect()
    }

    /// [`Network::forward`] for a model with one input and one output: Keras's
    /// `model(x, training=...)` (PyTorch's `model(x)`) in a hand-written training loop.
    ///
    /// `ctx` says how: [`Ctx::train`] records on a tape in training mode (dropout on,
    /// batch-norm on batch statistics), [`Ctx::inference`] records nothing. A model with
    /// several inputs or outputs is an error naming [`Network::forward`].
    ///
    /// ```
    /// use keel_autograd::{Tape, Var};
    /// use keel_nn::{Ctx, Dense, Network, Sequential};
    /// use keel_tensor::{rng::Rng, Tensor};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(1).input_shape([2]));
    /// let x = Var::constant(Tensor::from_vec(vec![1.0f32, 2.0], (1, 2))?);
    /// let (tape, mut rng) = (Tape::new(), Rng::new(0));
    /// let y = model.forward_one(&x, &mut Ctx::train(&tape, &mut rng))?;
    /// let grads = tape.backward(&y.sum_all()?)?;
    /// assert_eq!(grads.len(), 2); // kernel and bias
    /// # Ok(())
    /// # }
    /// ```
    fn forward_one(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let mut outputs = self.forward(std::slice::from_ref(x), ctx)?;
        if outputs.len() != 1 {
            return Err(Error::Input {
                model: self.name().to_string(),
                msg: format!(
                    "forward_one needs a model with one output, this one has {}; call forward(&[..], ctx), which returns \
                     one Var per output",
                    outputs.len()
                ),
            });
        }
        outputs.pop().ok_or_else(|| Error::Graph("forward_one: no output".into()))
    }

    /// Every weight with its stable name, trainable first in layer order (no duplicates).
    fn named_weights(&self) -> Vec<NamedParam>;

    /// Freeze (`false`) or unfreeze (`true`) the layer called `layer`, Keras's
    /// `model.get_layer(name).trainable = False`: its weights become non-trainable (the
    /// optimizer leaves them alone from the next `fit` on, no gradient is computed for
    /// them, and their penalties leave the loss, as Keras's), a `BatchNormalization`
    /// runs in inference mode, and the setting is saved with the model. Gradients still
    /// flow through the layer to the layers before it. An unknown name is an error
    /// listing the layers.
    fn set_trainable(&mut self, layer: &str, trainable: bool) -> Result<()>;

    /// Freeze or unfreeze every layer (Keras's `model.trainable = False`).
    fn set_all_trainable(&mut self, trainable: bool);

    /// Whether the layer called `layer` is trainable (`None`: no such layer).
    fn is_trainable(&self, layer: &str) -> Option<bool>;

    /// The weight constraints of the trainable layers ([`crate::Layer::constraints`]), which `fit`
    /// applies after every optimizer step; a frozen layer's are left out (its weights do not
    /// change). Empty when no layer has one.
    fn weight_constraints(&self) -> Vec<(Param, crate::Constraint)> {
        Vec::new()
    }

    /// The sum of the layers' weight penalties, if any (add it to the loss).
    fn regularization_loss(&self, ctx: &Ctx<'_>) -> Result<Option<Var>>;

    /// Keras's summary table.
    fn summary(&self) -> String {
        self.summary_with(false)
    }

    /// Keras's `summary(expand_nested=...)`: with `expand_nested`, the layers of each nested
    /// model follow its row, framed as tf.keras frames them.
    fn summary_with(&self, expand_nested: bool) -> String;

    /// The rows of the summary table, one per layer (a nested model's layers in its row's
    /// `nested` when `expand_nested`); empty for a model that is not built.
    fn summary_rows(&self, expand_nested: bool) -> Vec<crate::summary::SummaryRow>;

    /// A Keras-like JSON config (class name, name, layers and their configs).
    fn config(&self) -> serde_json::Value;

    /// The trainable parameters with their names.
    fn named_params(&self) -> Vec<(String, Param)> {
        self.named_weights().into_iter().filter(|w| w.trainable).map(|w| (w.name, w.param)).collect()
    }

    /// The trainable parameters (what an optimizer updates): Keras's `trainable_weights` /
    /// `trainable_variables`, PyTorch's `parameters()` minus frozen ones. In a hand-written
    /// loop, step a model's optimizer on these (`opt.step(&model.trainable_params(),
    /// &grads)`): other parameters on the tape (another model's) are left alone.
    #[doc(alias = "trainable_weights")]
    #[doc(alias = "trainable_variables")]
    fn trainable_params(&self) -> Vec<Param> {
        self.named_weights().into_iter().filter(|w| w.trainable).map(|w| w.param).collect()
    }

    /// The non-trainable parameters (updated in the forward pass, e.g. BN moving statistics).
    fn non_trainable_params(&self) -> Vec<Param> {
        self.named_weights().into_iter().filter(|w| !w.trainable).map(|w| w.param).collect()
    }

    /// Total number of scalars in all weights.
    fn count_params(&self) -> usize {
        self.named_weights().iter().map(|w| w.param.elem_count()).sum()
    }

    /// Inference on plain tensors (no tape, `training = false`).
    fn predict(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let vars: Vec<Var> = inputs.iter().cloned().map(Var::constant).collect();
        Ok(self.forward(&vars, &mut Ctx::inference())?.into_iter().map(Var::into_value).collect())
    }

    /// Reset the states of every `stateful` recurrent layer in the model, nested models and
    /// `Bidirectional` included (the `reset_state()` Keras 3's RNN docs name for a layer or a
    /// whole model): the next batch starts from zero states. `fit`, `evaluate` and `predict`
    /// never reset them themselves (as Keras 3); call this e.g. between epochs from a
    /// callback, or before predicting on new sequences. The default does nothing.
    fn reset_state(&self) {}

    /// Keras 2's name for [`Network::reset_state`].
    fn reset_states(&self) {
        self.reset_state();
    }

    /// Move every weight to `device` (PyTorch's `model.to(device)`); weights already there are
    /// untouched. Each parameter keeps its id, so optimizer state stays attached to it.
    /// Weights are created on the CPU (same seed, same values on every device), so a model
    /// meant for a GPU is built first and moved after; layers built later start on the CPU.
    fn to_device(&self, device: &Device) -> Result<()> {
        let weights = self.named_weights();
        let mut moved = Vec::with_capacity(weights.len());
        // copy everything first, so a failure (e.g. out of GPU memory) changes nothing
        for w in &weights {
            let v = w.param.value();
            if v.device() != *device {
                moved.push((&w.param, v.to_device(device)?));
            }
        }
        for (p, v) in moved {
            p.set(v)?;
        }
        Ok(())
    }

    /// The device of the weights: `Some` when every weight is on one device
    /// (`Some(Device::Cpu)` for a model without weights), `None` when they are split.
    fn weights_device(&self) -> Option<Device> {
        let mut devices = self.named_weights().into_iter().map(|w| w.param.value().device());
        let first = devices.next().unwrap_or(Device::Cpu);
        devices.all(|d| d == first).then_some(first)
    }

    /// The weights as a map `name -> tensor`, sharing the weights' storage: the optimizers
    /// update weights in place, so after more training these tensors show the new values.
    /// For a snapshot (Keras's `get_weights` copies) `.copy()` each tensor.
    fn state_dict(&self) -> BTreeMap<String, Tensor> {
        self.named_weights().into_iter().map(|w| (w.name, w.param.value())).collect()
    }

    /// Overwrite every weight from `map` (names and shapes must match exactly;
    /// values are copied in place, so optimizer handles stay valid). Values on
    /// another device than the weight are copied over to the weight's device.
    fn load_state_dict(&self, map: &BTreeMap<String, Tensor>) -> Result<()> {
        let weights = self.named_weights();
        let mine: HashSet<&str> = weights.iter().map(|w| w.name.as_str()).collect();
        if let Some(extra) = map.keys().find(|k| !mine.contains(k.as_str())) {
            return Err(Error::Weights(format!("the model \"{}\" has no weight \"{extra}\"", self.name())));
        }
        let mut staged = Vec::with_capacity(weights.len());
        for w in &weights {
            let t = map.get(&w.name).ok_or_else(|| Error::Weights(format!("no value for weight \"{}\"", w.name)))?;
            if t.shape() != &w.param.shape() {
                return Err(Error::Weights(format!(
                    "weight \"{}\" has shape {} but the file has {}",
                    w.name,
                    w.param.shape(),
                    t.shape()
                )));
            }
            // files are read on the host; the value goes to the device the weight lives on
            staged.push((w, t.to_dtype(w.param.dtype())?.to_device(&w.param.value().device())?));
        }
        for (w, t) in staged {
            w.param.assign(&t)?;
        }
        Ok(())
    }

    /// Save every weight to a safetensors file (see [`crate::weights`]).
    fn save_weights(&self, path: &std::path::Path) -> Result<()> {
        crate::weights::save_safetensors(&self.state_dict(), path)
    }

    /// Load every weight from a safetensors file written by [`Network::save_weights`].
    fn load_weights(&self, path: &std::path::Path) -> Result<()> {
        self.load_state_dict(&crate::weights::load_safetensors(path)?)
    }
}

/// Check one input per declared input, each with the declared per-sample shape.
pub(crate) fn check_inputs(model: &str, declared: &[Vec<usize>], inputs: &[Var]) -> Result<()> {
    if inputs.len() != declared.len() {
        return Err(Error::Input {
            model: model.to_string(),
            msg: format!("expected {} input(s), got {}", declared.len(), inputs.len()),
        });
    }
    for (i, (d, x)) in declared.iter().zip(inputs).enumerate() {
        if x.rank() == 0 || &x.dims()[1..] != d.as_slice() {
            return Err(Error::Input {
                model: model.to_string(),
                msg: format!(
                    "input {i} should be a batch of per-sample shape {d:?} (i.e. [batch, {}]), got {}",
                    d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "),
                    x.shape()
                ),
            });
        }
    }
    Ok(())
}

/// Give `base` a model-unique name: `base`, then `base_1`, `base_2`, ... (Keras's numbering, per model).
pub(crate) fn unique_name(base: &str, taken: &HashSet<String>) -> String {
    if !taken.contains(base) {
        return base.to_string();
    }
    (1..).map(|i| format!("{base}_{i}")).find(|n| !taken.contains(n)).unwrap_or_default()
}

/// The error for [`Network::set_trainable`] on a name the model does not have.
pub(crate) fn no_such_layer<'a>(model: &str, name: &str, names: impl Iterator<Item = &'a str>) -> Error {
    let names: Vec<String> = names.map(|n| format!("\"{n}\"")).collect();
    Error::config(
        format!("model \"{model}\""),
        format!("no layer is named \"{name}\"; the layers are {}", names.join(", ")),
    )
}

/// A layer's config with Keras's `"trainable"` key added.
pub(crate) fn config_with_trainable(mut config: serde_json::Value, trainable: bool) -> serde_json::Value {
    if let serde_json::Value::Object(m) = &mut config {
        m.insert("trainable".into(), serde_json::Value::Bool(trainable));
    }
    config
}
