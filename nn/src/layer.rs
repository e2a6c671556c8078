//! The [`Layer`] trait, the forward-pass context [`Ctx`], and small shared helpers.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::{Activation, Error, Result};
use keel_autograd::{Param, ParamId, Tape, Var};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Tensor};

/// What a forward pass needs besides its input.
///
/// - `tape`: when `Some`, parameters enter the computation tracked
///   ([`Tape::param`]) so a backward pass can reach them; when `None` they are
///   constants and nothing is recorded (inference).
/// - `training`: Keras's `training` flag (dropout active, batch-norm uses and
///   updates batch statistics).
/// - `rng`: the seeded generator dropout masks are drawn from; only needed
///   when `training` is true and the model has a dropout layer.
/// - `compute_dtype`: under a mixed-precision policy, the dtype layers compute in
///   ([`Ctx::param`] and [`Ctx::autocast`] cast to it); models set it for the duration
///   of their forward pass from their [`DTypePolicy`](crate::mixed_precision::DTypePolicy).
/// - `losses`: the activity penalties the forward pass adds (Keras's `add_loss` from a
///   layer's `activity_regularizer`), which the trainer adds to the loss
///   ([`Ctx::take_losses`]).
/// - `casts`: the parameters' compute-dtype copies under mixed precision, cast together
///   (one launch on a GPU) when a model's forward pass starts ([`Ctx::precast`]): for a
///   training step on its tape, or kept across a run of inference passes over fixed
///   weights (`evaluate`, `predict`), so each is cast once per run rather than per batch.
pub struct Ctx<'a> {
    /// The tape parameters are recorded on, if any.
    pub tape: Option<&'a Tape>,
    /// True during training.
    pub training: bool,
    /// The generator for stochastic layers (dropout).
    pub rng: Option<&'a mut Rng>,
    /// The dtype layers compute in when it is not the weights' own (mixed precision).
    pub compute_dtype: Option<DType>,
    /// Parameters cast to a compute dtype (see [`CastCache`]).
    pub casts: Option<&'a CastCache>,
    /// True while a frozen layer runs (Keras's `trainable = False`, see
    /// [`Network::set_trainable`](crate::Network::set_trainable)): [`Ctx::param`] hands
    /// out its weights as constants (no gradient is computed for them) and
    /// `BatchNormalization` runs in inference mode. Models set it per layer.
    pub frozen: bool,
    /// The activity penalties added during the forward pass (each a 0-d F32 Var, tracked
    /// when its layer output is): models push one per layer output that has an
    /// [`Layer::activity_regularizer`] ([`Ctx::add_activity_loss`]); the trainer takes
    /// them with [`Ctx::take_losses`] and adds them to the loss, as Keras's
    /// `compute_loss` adds `model.losses`.
    pub losses: Vec<Var>,
}

/// The parameters of a model cast to a compute dtype under mixed precision.
///
/// A model's forward pass casts all the weights its layers read in the compute dtype in
/// one batched op ([`Ctx::precast`], `Var::to_dtype_many`: one launch on a GPU, and one
/// for their gradients in the backward pass, instead of one per weight). Then:
/// - on a tape (training) each copy is handed out once and is tracked; a layer that runs
///   again in the same pass (a shared layer) casts afresh, so each use's gradient reaches
///   the F32 weight in F32 as before. Make one per tape.
/// - without a tape (inference) the copies are constants, kept across the passes of one
///   `evaluate` or `predict` call (for the seed CNN on a GPU, 8 cast launches per batch
///   fewer). Valid only while the weights do not change: make one per call.
#[derive(Debug, Default)]
pub struct CastCache {
    casts: Mutex<HashMap<(ParamId, DType), Var>>,
}

impl CastCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(ParamId, DType), Var>> {
        self.casts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `p` cast to `dtype` for a layer: the kept copy (handed out once on a tape), else a
    /// fresh cast (kept for later passes without a tape).
    fn take_or_cast(&self, p: &Param, dtype: DType, tape: Option<&Tape>) -> Result<Var> {
        let key = (p.id(), dtype);
        let mut casts = self.lock();
        if tape.is_some() {
            return match casts.remove(&key) {
                Some(v) => Ok(v),
                None => Ok(p.var(tape).to_dtype(dtype)?),
            };
        }
        if let Some(v) = casts.get(&key) {
            return Ok(v.clone());
        }
        let v = Var::constant(p.value().to_dtype(dtype)?);
        casts.insert(key, v.clone());
        Ok(v)
    }

    /// Casts those of `params` that are not kept yet to `dtype`, all in one op, on `tape`
    /// when given.
    fn cast_all(&self, params: &[Param], dtype: DType, tape: Option<&Tape>) -> Result<()> {
        let mut casts = self.lock();
        let todo: Vec<&Param> = params
            .iter()
            .filter(|p| p.dtype().is_float() && p.dtype() != dtype && !casts.contains_key(&(p.id(), dtype)))
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let vars: Vec<Var> = todo.iter().map(|p| p.var(tape)).collect();
        for (p, v) in todo.iter().zip(Var::to_dtype_many(&vars, dtype)?) {
            casts.insert((p.id(), dtype), v);
        }
        Ok(())
    }

    /// How many parameter copies are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is kept yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'a> Ctx<'a> {
    /// A context with every field given.
    pub fn new(tape: Option<&'a Tape>, training: bool, rng: Option<&'a mut Rng>) -> Self {
        Ctx { tape, training, rng, compute_dtype: None, casts: None, frozen: false, losses: Vec::new() }
    }

    /// Inference: no tape, `training = false`, no rng.
    pub fn inference() -> Ctx<'static> {
        Ctx {
            tape: None,
            training: false,
            rng: None,
            compute_dtype: None,
            casts: None,
            frozen: false,
            losses: Vec::new(),
        }
    }

    /// Training on `tape` with dropout drawing from `rng`.
    pub fn train(tape: &'a Tape, rng: &'a mut Rng) -> Self {
        Ctx {
            tape: Some(tape),
            training: true,
            rng: Some(rng),
            compute_dtype: None,
            casts: None,
            frozen: false,
            losses: Vec::new(),
        }
    }

    /// Inference (as [`Ctx::inference`]) keeping the parameters' compute-dtype copies in
    /// `casts` across passes.
    pub fn inference_with(casts: &'a CastCache) -> Self {
        Ctx { casts: Some(casts), ..Ctx::inference() }
    }

    /// Training (as [`Ctx::train`]) with the parameters' compute-dtype copies made in one
    /// op per pass ([`Ctx::precast`]); `casts` must be new (one per tape).
    pub fn train_with(tape: &'a Tape, rng: &'a mut Rng, casts: &'a CastCache) -> Self {
        Ctx { casts: Some(casts), ..Ctx::train(tape, rng) }
    }

    /// Under mixed precision with [`Ctx::casts`], casts `params` (a model's weights that its
    /// layers read in the compute dtype) to the compute dtype in one op, tracked on the tape
    /// when there is one; [`Ctx::param`] then hands the copies out. Models call this when
    /// their forward pass starts. Otherwise nothing happens.
    ///
    /// Inside a frozen scope ([`Ctx::with_frozen`]) the copies are constants, as
    /// [`Ctx::param`] hands out a frozen layer's weights.
    pub fn precast(&self, params: &[Param]) -> Result<()> {
        match (self.casts, self.compute_dtype) {
            (Some(casts), Some(dt)) => casts.cast_all(params, dt, if self.frozen { None } else { self.tape }),
            _ => Ok(()),
        }
    }

    /// The parameter as a layer computes with it: tracked on the tape when there is one
    /// (else a constant), and cast to the compute dtype under mixed precision (the
    /// gradient reaches the parameter in its own dtype; the cast copy comes from
    /// [`Ctx::casts`] when there is one).
    /// A frozen layer's parameters ([`Ctx::frozen`]) are constants.
    pub fn param(&self, p: &Param) -> Result<Var> {
        let tape = if self.frozen { None } else { self.tape };
        if let (Some(casts), Some(dt)) = (self.casts, self.compute_dtype) {
            let dtype = p.dtype();
            if dtype.is_float() && dtype != dt {
                return casts.take_or_cast(p, dt, tape);
            }
        }
        self.autocast(&p.var(tape))
    }

    /// The parameter in its own dtype (for weight penalties and statistics that mixed
    /// precision keeps in F32).
    /// A frozen layer's parameters ([`Ctx::frozen`]) are constants.
    pub fn variable(&self, p: &Param) -> Var {
        p.var(if self.frozen { None } else { self.tape })
    }

    /// `x` cast to the compute dtype when mixed precision is on and `x` holds another
    /// float dtype; otherwise `x` itself (integer inputs such as indices are never cast).
    pub fn autocast(&self, x: &Var) -> Result<Var> {
        match self.compute_dtype {
            Some(dt) if x.dtype().is_float() && x.dtype() != dt => Ok(x.to_dtype(dt)?),
            _ => Ok(x.clone()),
        }
    }

    /// `x` as `layer` takes it: [`Ctx::autocast`] unless the layer opts out
    /// ([`Layer::autocast`]). Models call this on every layer input.
    pub fn layer_input(&self, layer: &dyn Layer, x: &Var) -> Result<Var> {
        if layer.autocast() {
            self.autocast(x)
        } else {
            Ok(x.clone())
        }
    }

    /// Runs `f` with `compute_dtype` set from `policy`, restoring the previous value after.
    pub(crate) fn with_policy<T>(
        &mut self,
        policy: crate::mixed_precision::DTypePolicy,
        f: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        let saved = self.compute_dtype;
        self.compute_dtype = policy.autocast_dtype();
        let r = f(self);
        self.compute_dtype = saved;
        r
    }

    /// Runs `f` (a layer's or a whole model's forward pass) with [`Ctx::frozen`] set when
    /// `frozen` (or when already set: everything inside a frozen nested model is frozen),
    /// restoring the previous value after.
    ///
    /// In a hand-written loop this calls a model with its weights held fixed, as Keras's
    /// `discriminator.trainable = False` inside a combined GAN model: the weights enter the
    /// tape as constants, so the backward pass computes no gradient for them (and does not
    /// pay for it), while the gradient still flows through the model to its input (the
    /// generator's output). A `BatchNormalization` inside runs in inference mode, as a
    /// frozen Keras layer does.
    ///
    /// ```
    /// use keel_autograd::{Tape, Var};
    /// use keel_nn::{Ctx, Dense, Network, Sequential};
    /// use keel_tensor::{rng::Rng, Tensor};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut generator, mut critic) = (Sequential::with_seed(1), Sequential::with_seed(2));
    /// generator.add(Dense::new(3).input_shape([2]));
    /// critic.add(Dense::new(1).input_shape([3]));
    /// let z = Var::constant(Tensor::from_vec(vec![1.0f32, 2.0], (1, 2))?);
    /// let (tape, mut rng) = (Tape::new(), Rng::new(0));
    /// let mut ctx = Ctx::train(&tape, &mut rng);
    /// let fake = generator.forward_one(&z, &mut ctx)?;
    /// let score = ctx.with_frozen(true, |ctx| critic.forward_one(&fake, ctx))?;
    /// let grads = tape.backward(&score.sum_all()?)?;
    /// assert!(generator.trainable_params().iter().all(|p| grads.get(p).is_some()));
    /// assert!(critic.trainable_params().iter().all(|p| grads.get(p).is_none()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_frozen<T>(&mut self, frozen: bool, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let saved = self.frozen;
        self.frozen = saved || frozen;
        let r = f(self);
        self.frozen = saved;
        r
    }

    /// Adds `layer`'s activity penalty of its output `y` to [`Ctx::losses`] when it has an
    /// [`Layer::activity_regularizer`], as Keras's `Layer.__call__` does: the regularizer of
    /// `y` divided by the batch size (`y`'s first axis; `divide_no_nan`, so 0 for an empty
    /// batch), computed in F32 for an F16/BF16 output (mixed precision; Keras computes it in
    /// the output's dtype). Added for frozen layers too (Keras
    /// adds it whatever `trainable` is). Models call this after every layer.
    pub fn add_activity_loss(&mut self, layer: &dyn Layer, y: &Var) -> Result<()> {
        let Some(r) = layer.activity_regularizer() else { return Ok(()) };
        // a half-precision output (mixed precision) is penalised in F32
        let y32 = if matches!(y.dtype(), DType::F16 | DType::BF16) { y.to_dtype(DType::F32)? } else { y.clone() };
        let mut penalty = r.penalty(&y32)?;
        if y.rank() > 0 {
            let b = y.dims()[0];
            penalty = penalty.mul_scalar(if b == 0 { 0.0 } else { 1.0 / b as f64 })?;
        }
        self.losses.push(penalty);
        Ok(())
    }

    /// The sum of the activity penalties added so far ([`Ctx::losses`], `None` when there
    /// are none), emptying the list.
    pub fn take_losses(&mut self) -> Result<Option<Var>> {
        let mut acc = None;
        for l in std::mem::take(&mut self.losses) {
            acc = add_opt(acc, Some(l))?;
        }
        Ok(acc)
    }

    /// The rng, or an error naming `layer` when the context has none.
    pub fn rng_for(&mut self, layer: &str) -> Result<&mut Rng> {
        match self.rng.as_deref_mut() {
            Some(r) => Ok(r),
            None => Err(Error::config(
                format!("layer \"{layer}\""),
                "a training forward pass through a stochastic layer needs an Rng in the Ctx",
            )),
        }
    }
}

/// One weight of a layer: its short name (`"kernel"`), the parameter, and whether it is trained.
#[derive(Debug, Clone)]
pub struct Weight {
    /// The name within the layer (`"kernel"`, `"bias"`, `"moving_mean"`, ...; a path such as
    /// `"dense/kernel"` for a model used as a layer).
    pub name: Cow<'static, str>,
    /// The parameter handle.
    pub param: Param,
    /// False for state updated outside the optimizer (batch-norm moving statistics).
    pub trainable: bool,
}

impl Weight {
    /// A trainable weight.
    pub fn trainable(name: impl Into<Cow<'static, str>>, param: &Param) -> Self {
        Weight { name: name.into(), param: param.clone(), trainable: true }
    }

    /// A non-trainable weight.
    pub fn frozen(name: impl Into<Cow<'static, str>>, param: &Param) -> Self {
        Weight { name: name.into(), param: param.clone(), trainable: false }
    }
}

/// A Keras-style layer: configured by builder methods, built lazily from the
/// per-sample input shape, then run on batches.
///
/// Shapes passed to `build` / `output_shape` are **per sample** (no batch
/// dim), as Keras's `input_shape`; tensors passed to `forward` carry the batch
/// dim first.
///
/// **Final activation and loss fusion.** A layer that ends with an activation
/// (Dense, Conv2D, Activation) reports it with [`Layer::output_activation`]
/// and computes everything before it in [`Layer::forward_logits`]; the
/// contract is `forward(x) == output_activation().apply(forward_logits(x))`.
/// Models use this for their last layer so a loss can work on the logits
/// (softmax + categorical cross-entropy, sigmoid + binary cross-entropy) as
/// Keras does. See [`crate::Head`].
///
/// Layers with several inputs (Add, Concatenate) override the `*_multi`
/// methods; single-input layers only implement the plain ones.
pub trait Layer: Send + Sync {
    /// The layer's name (unique within a model; assigned by the model if empty).
    fn name(&self) -> &str;

    /// Rename the layer (models call this to auto-number, Keras style).
    fn set_name(&mut self, name: String);

    /// The Keras class name ("Dense", "Conv2D", ...).
    fn class_name(&self) -> &'static str;

    /// The base of auto-generated names ("dense", "conv2d", "max_pooling2d").
    fn base_name(&self) -> String {
        snake_case(self.class_name())
    }

    /// The per-sample input shape declared with `.input_shape(..)`, if any.
    fn declared_input_shape(&self) -> Option<Vec<usize>> {
        None
    }

    /// Create the weights for `input_shape` (per sample), drawing from `rng`.
    /// Building again with the same shape keeps the weights; another shape is an error.
    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<()>;

    /// True once built.
    fn is_built(&self) -> bool;

    /// The per-sample output shape for `input_shape` (needs no weights).
    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>>;

    /// Run the layer on a batch.
    fn forward(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let z = self.forward_logits(x, ctx)?;
        match self.output_activation() {
            Some(a) => a.apply(&z),
            None => Ok(z),
        }
    }

    /// Everything but the final activation (the whole layer when it has none).
    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var>;

    /// The activation the layer ends with, when not linear.
    fn output_activation(&self) -> Option<Activation> {
        None
    }

    /// Whether a model casts this layer's floating inputs to its compute dtype under mixed
    /// precision (Keras `autocast`); false for layers whose input is indices (Embedding).
    fn autocast(&self) -> bool {
        true
    }

    /// The trainable weights the layer reads in the compute dtype under mixed precision
    /// (through [`Ctx::param`]), which a model casts together when its forward pass starts
    /// ([`Ctx::precast`]); empty for a layer that computes in F32 (batch normalization).
    fn compute_dtype_params(&self) -> Vec<Param> {
        self.params()
    }

    /// Every weight, trainable and not, in Keras's order.
    fn weights(&self) -> Vec<Weight> {
        Vec::new()
    }

    /// The trainable parameters.
    fn params(&self) -> Vec<Param> {
        self.weights().into_iter().filter(|w| w.trainable).map(|w| w.param).collect()
    }

    /// The non-trainable parameters (updated in place, e.g. batch-norm moving statistics).
    fn non_trainable_params(&self) -> Vec<Param> {
        self.weights().into_iter().filter(|w| !w.trainable).map(|w| w.param).collect()
    }

    /// The summary rows of the layers inside this one (a nested model's), for a summary that
    /// expands nested models; none for other layers.
    fn nested_summary_rows(&self) -> Vec<crate::summary::SummaryRow> {
        Vec::new()
    }

    /// The number of scalars in every weight (the summary's `Param #`).
    fn count_params(&self) -> usize {
        self.weights().iter().map(|w| w.param.elem_count()).sum()
    }

    /// The Keras-like `get_config()`: hyper-parameters and name, as JSON.
    fn config(&self) -> serde_json::Value;

    /// Keras's `reset_state()`: a `stateful` recurrent layer forgets the states it carries
    /// from batch to batch (see [`crate::Recurrent::stateful`]); wrappers and models used as
    /// layers pass it on to the layers inside. The default does nothing.
    fn reset_state(&self) {}

    /// The weight constraints (Keras's `kernel_constraint`, ..): each built weight that has
    /// one with its constraint, which the trainer applies after every optimizer step.
    fn constraints(&self) -> Vec<(Param, crate::Constraint)> {
        Vec::new()
    }

    /// Keras's `activity_regularizer`: the penalty of the layer's output, which models add
    /// to [`Ctx::losses`] after the layer runs ([`Ctx::add_activity_loss`]). `None` by
    /// default; layers that take one (Dense, the convolutions, Embedding, the recurrent
    /// layers) return their config's, `ActivityRegularization` its `l1`/`l2`.
    fn activity_regularizer(&self) -> Option<crate::Regularizer> {
        None
    }

    /// The weight penalties (kernel/bias regularizers) as a 0-d Var, if any.
    fn regularization_loss(&self, ctx: &Ctx<'_>) -> Result<Option<Var>> {
        let _ = ctx;
        Ok(None)
    }

    /// Keras's `supports_masking`: true when the layer passes a timestep mask on to the
    /// layers after it (see [`Layer::compute_mask`]). A layer that does not drops the mask,
    /// as Keras 3 does.
    fn supports_masking(&self) -> bool {
        false
    }

    /// The mask of this layer's output (Keras's `compute_mask`) from its inputs `xs` (as the
    /// layer takes them) and their masks (`None`: unmasked). A mask is a U8 tensor on the
    /// input's device, nonzero where a value counts, with the leading axes of the value it
    /// belongs to (`[batch, timesteps]` for a sequence `[batch, timesteps, features]`).
    /// Masks start at `Embedding(mask_zero)` and `Masking`. The default: the first input's
    /// mask when the layer [supports masking](Layer::supports_masking), else none.
    fn compute_mask(&self, xs: &[Var], masks: &[Option<Tensor>]) -> Result<Option<Tensor>> {
        let _ = xs;
        Ok(if self.supports_masking() { masks.first().cloned().flatten() } else { None })
    }

    /// [`Layer::forward_logits_multi`] for inputs some of which carry masks (models call it
    /// only then). Layers that read masks override it (the recurrent layers skip masked
    /// steps, `GlobalAveragePooling1D` averages the unmasked ones, `MultiHeadAttention`
    /// attends only to them, `BatchNormalization` takes its batch statistics over them);
    /// the default ignores the masks.
    fn forward_logits_masked(&self, xs: &[Var], masks: &[Option<Tensor>], ctx: &mut Ctx<'_>) -> Result<Var> {
        let _ = masks;
        self.forward_logits_multi(xs, ctx)
    }

    /// Build for several inputs (merge layers); the default takes exactly one.
    fn build_multi(&mut self, input_shapes: &[Vec<usize>], rng: &mut Rng) -> Result<()> {
        let s = self.single(input_shapes)?;
        self.build(&s, rng)
    }

    /// The output shape for several inputs; the default takes exactly one.
    fn output_shape_multi(&self, input_shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
        let s = self.single(input_shapes)?;
        self.output_shape(&s)
    }

    /// Run on several inputs, without the final activation; the default takes exactly one.
    fn forward_logits_multi(&self, xs: &[Var], ctx: &mut Ctx<'_>) -> Result<Var> {
        match xs {
            [x] => self.forward_logits(x, ctx),
            _ => Err(Error::Graph(format!(
                "layer \"{}\" ({}) takes one input, got {}",
                self.name(),
                self.class_name(),
                xs.len()
            ))),
        }
    }

    /// The one shape of `shapes`, or an error naming the layer (helper for the `*_multi` defaults).
    #[doc(hidden)]
    fn single(&self, shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
        match shapes {
            [s] => Ok(s.clone()),
            _ => Err(Error::Graph(format!(
                "layer \"{}\" ({}) takes one input, got {}",
                self.name(),
                self.class_name(),
                shapes.len()
            ))),
        }
    }
}

/// Keras's `to_snake_case` for class names: "MaxPooling2D" -> "max_pooling2d".
pub fn snake_case(class: &str) -> String {
    let c: Vec<char> = class.chars().collect();
    let mut out = String::new();
    for (i, &ch) in c.iter().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            let prev = c[i - 1];
            let next_lower = c.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            // (.)([A-Z][a-z]+) and ([a-z])([A-Z]) of Keras's two regexes
            if next_lower || prev.is_ascii_lowercase() {
                out.push('_');
            }
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

/// A window or stride size: `3`, `(3, 3)` or `[3, 3]`.
pub trait IntoPair {
    /// `(height, width)`.
    fn into_pair(self) -> (usize, usize);
}

impl IntoPair for usize {
    fn into_pair(self) -> (usize, usize) {
        (self, self)
    }
}

impl IntoPair for (usize, usize) {
    fn into_pair(self) -> (usize, usize) {
        self
    }
}

impl IntoPair for [usize; 2] {
    fn into_pair(self) -> (usize, usize) {
        (self[0], self[1])
    }
}

/// A 3-D window, stride or factor: `3`, `(2, 3, 3)` or `[2, 3, 3]`.
pub trait IntoTriple {
    /// `(depth, height, width)`.
    fn into_triple(self) -> (usize, usize, usize);
}

impl IntoTriple for usize {
    fn into_triple(self) -> (usize, usize, usize) {
        (self, self, self)
    }
}

impl IntoTriple for (usize, usize, usize) {
    fn into_triple(self) -> (usize, usize, usize) {
        self
    }
}

impl IntoTriple for [usize; 3] {
    fn into_triple(self) -> (usize, usize, usize) {
        (self[0], self[1], self[2])
    }
}

/// Shape as Keras prints it, with the batch dim: `(None, 26, 26, 32)`.
pub fn fmt_shape(per_sample: &[usize]) -> String {
    let mut s = String::from("(None");
    for d in per_sample {
        s.push_str(&format!(", {d}"));
    }
    s.push(')');
    s
}

/// The shared `Param` of an optional built weight, or `NotBuilt`.
pub(crate) fn built<'p>(p: &'p Option<Param>, layer: &dyn Layer) -> Result<&'p Param> {
    p.as_ref().ok_or_else(|| Error::NotBuilt { layer: layer.name().to_string(), class: layer.class_name() })
}

/// Check that the batch input has rank `1 + per_sample_rank`.
pub(crate) fn check_batch_rank(x: &Var, per_sample_rank: usize, layer: &dyn Layer) -> Result<()> {
    if x.rank() != per_sample_rank + 1 {
        return Err(Error::IncompatibleInput {
            layer: layer.name().to_string(),
            class: layer.class_name(),
            expected: format!("a batch of rank {} (batch dim + {per_sample_rank})", per_sample_rank + 1),
            got: x.dims().get(1..).unwrap_or(&[]).to_vec(),
        });
    }
    Ok(())
}

/// Check that a per-sample shape has rank `rank` (`layout` says what it is, e.g.
/// `"[height, width, channels]"`), else an error naming the layer and the shape.
pub(crate) fn check_sample_rank(input_shape: &[usize], rank: usize, layout: &str, layer: &dyn Layer) -> Result<()> {
    if input_shape.len() != rank {
        return Err(Error::IncompatibleInput {
            layer: layer.name().to_string(),
            class: layer.class_name(),
            expected: format!("{layout} (rank {rank})"),
            got: input_shape.to_vec(),
        });
    }
    Ok(())
}

/// The per-sample shapes of batches `xs` (each without its batch axis).
pub(crate) fn sample_shapes(xs: &[Var]) -> Vec<Vec<usize>> {
    xs.iter().map(|x| x.dims().get(1..).unwrap_or(&[]).to_vec()).collect()
}

/// A batch of `xs` whose size is not the first's, as an error of layer `name` (of class
/// `class`) naming both shapes; `Ok` when they all agree.
pub(crate) fn check_same_batch(xs: &[Var], name: &str, class: &'static str) -> Result<()> {
    let Some(first) = xs.first() else { return Ok(()) };
    let b = first.dims().first().copied();
    let Some(x) = xs.iter().find(|x| x.dims().first().copied() != b) else { return Ok(()) };
    Err(Error::IncompatibleInput {
        layer: name.to_string(),
        class,
        expected: format!(
            "every input with the first input's batch size {}, got a batch of {} (shapes {:?} and {:?})",
            b.unwrap_or(0),
            x.dims().first().copied().unwrap_or(0),
            first.dims(),
            x.dims()
        ),
        got: x.dims().get(1..).unwrap_or(&[]).to_vec(),
    })
}

/// The `(timesteps, features)` of an attention layer's `role` input of per-sample shape `s`
/// (`[T, dim]`, both >= 1), else an error of layer `name` (of class `class`).
pub(crate) fn sequence_dims(s: &[usize], role: &str, name: &str, class: &'static str) -> Result<(usize, usize)> {
    match s[..] {
        [t, d] if t > 0 && d > 0 => Ok((t, d)),
        _ => Err(Error::IncompatibleInput {
            layer: name.to_string(),
            class,
            expected: format!("a {role} of per-sample shape [timesteps, features] (a batch [B, T, dim]), both >= 1"),
            got: s.to_vec(),
        }),
    }
}

/// `layer "name" (Class)`: how a config error names its layer.
pub(crate) fn describe(layer: &dyn Layer) -> String {
    format!("layer \"{}\" ({})", layer.name(), layer.class_name())
}

/// Keras's `axis` argument of a layer (`Softmax`, `UnitNormalization`), which counts the batch
/// axis (`1` is the first per-sample axis; negative counts from the end), resolved against
/// per-sample shape `input_shape`: ascending, each in `1..rank`. An empty list, the batch axis,
/// an axis out of range or a repeated one is a config error naming the layer.
pub(crate) fn resolve_axes(layer: &dyn Layer, axes: &[isize], input_shape: &[usize]) -> Result<Vec<isize>> {
    let rank = input_shape.len() as isize + 1;
    let bad = |msg: String| Error::config(describe(layer), msg);
    if axes.is_empty() {
        return Err(bad("axis must name at least one axis".into()));
    }
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let r = if a < 0 { a + rank } else { a };
        if r < 1 || r >= rank {
            return Err(bad(format!(
                "axis {a} is out of range for inputs of shape {}: valid axes are 1..{rank} and -{}..-1 \
                 (0 is the batch axis)",
                fmt_shape(input_shape),
                rank - 1
            )));
        }
        if out.contains(&r) {
            return Err(bad(format!("axis {axes:?} names axis {r} twice")));
        }
        out.push(r);
    }
    out.sort_unstable();
    Ok(out)
}

/// The start of a layer's `build` for `c` input channels: `true` when it still has to
/// build, `false` when it is already built for `c` (nothing to do), and the error `bad`
/// makes (from what was expected) when it is built for another count.
pub(crate) fn needs_build(built: Option<usize>, c: usize, bad: impl FnOnce(String) -> Error) -> Result<bool> {
    match built {
        None => Ok(true),
        Some(have) if have == c => Ok(false),
        Some(have) => Err(bad(format!("{have} channels (the layer is already built)"))),
    }
}

/// Keras's config form of an `axis` argument: one axis as a number, several as a list.
pub(crate) fn axes_config(axes: &[isize]) -> serde_json::Value {
    match axes {
        [a] => serde_json::json!(a),
        _ => serde_json::json!(axes),
    }
}

/// A scalar hyper-parameter `key` of `layer` must be finite, and `>= 0` when `non_negative`:
/// else a config error naming the layer.
pub(crate) fn check_scalar(layer: &dyn Layer, key: &str, value: f64, non_negative: bool) -> Result<()> {
    if !value.is_finite() || (non_negative && value < 0.0) {
        let want = if non_negative { "a finite number >= 0" } else { "a finite number" };
        return Err(Error::config(describe(layer), format!("{key} must be {want}, got {value}")));
    }
    Ok(())
}

/// Merge `name` and the config `fields` into a Keras-like config object.
pub(crate) fn with_name(name: &str, fields: serde_json::Value) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    obj.insert("name".into(), serde_json::Value::String(name.to_string()));
    if let serde_json::Value::Object(m) = fields {
        for (k, v) in m {
            obj.insert(k, v);
        }
    }
    serde_json::Value::Object(obj)
}

/// Sum optional penalties.
pub(crate) fn add_opt(acc: Option<Var>, v: Option<Var>) -> Result<Option<Var>> {
    Ok(match (acc, v) {
        (Some(a), Some(b)) => Some(a.add(&b)?),
        (a, None) => a,
        (None, b) => b,
    })
}

/// Builder methods every layer has: `.with_name(..)` and `.input_shape(..)`.
/// The summed penalties of the `(regularizer, weight)` pairs that have both (`None`
/// when none does): a layer's [`Layer::regularization_loss`].
pub(crate) fn penalties(ctx: &Ctx<'_>, pairs: &[(&Option<crate::Regularizer>, &Option<Param>)]) -> Result<Option<Var>> {
    let mut acc = None;
    for (r, p) in pairs {
        if let (Some(r), Some(p)) = (r, p) {
            acc = add_opt(acc, Some(r.penalty(&ctx.variable(p))?))?;
        }
    }
    Ok(acc)
}

/// The `(weight, constraint)` pairs that have both: a layer's [`Layer::constraints`].
pub(crate) fn constraint_pairs(
    pairs: &[(&Option<crate::Constraint>, &Option<Param>)],
) -> Vec<(Param, crate::Constraint)> {
    pairs.iter().filter_map(|(c, p)| Some(((*p).clone()?, (*c).clone()?))).collect()
}

/// Constraint builders over `cfg` fields of the same names: `field => "what"` makes
/// `pub fn field(self, c: Constraint) -> Self`, which sets `cfg.field` (Keras's `field`, e.g.
/// `kernel_constraint`), documented as constraining `what`. Every layer with weight
/// constraints uses it (with [`Layer::constraints`] listing the same fields); the
/// `methods:` form gives the bare methods, for use inside an `impl` block.
macro_rules! constraint_builders {
    (methods: $($field:ident => $what:literal),+ $(,)?) => {
        $(
            #[doc = concat!("Constrain ", $what, " after every optimizer step (Keras's `", stringify!($field), "`).")]
            pub fn $field(mut self, c: $crate::Constraint) -> Self {
                self.cfg.$field = Some(c);
                self
            }
        )+
    };
    ($name:ty: $($rest:tt)+) => {
        impl $name {
            $crate::layer::constraint_builders!(methods: $($rest)+);
        }
    };
}
pub(crate) use constraint_builders;

/// The `.activity_regularizer(..)` builder of a layer whose `cfg` has an
/// `activity_regularizer` field (Keras's argument of the same name).
macro_rules! activity_regularizer_builder {
    ($name:ident) => {
        impl $name {
            /// Penalise the layer's output (Keras's `activity_regularizer`): the penalty of
            /// each batch's output divided by the batch size is added to the training and
            /// evaluation loss.
            pub fn activity_regularizer(mut self, r: $crate::Regularizer) -> Self {
                self.cfg.activity_regularizer = Some(r);
                self
            }
        }
    };
}
pub(crate) use activity_regularizer_builder;

/// The builder methods of a layer with a kernel and an optional bias (Dense, Conv1D/2D/3D,
/// Conv1D/2D/3DTranspose), over `cfg` fields of the same names (including
/// `kernel_constraint`, `bias_constraint` and `activity_regularizer`).
/// `kernel_bias_builders!(Name, no_use_bias)` leaves out `use_bias` (EinsumDense, whose
/// bias comes from its `bias_axes`).
macro_rules! kernel_bias_builders {
    ($name:ident) => {
        $crate::layer::bias_init_reg_builders!($name);
        $crate::layer::kernel_bias_builders!(@rest $name);
    };
    ($name:ident, no_use_bias) => {
        $crate::layer::bias_init_reg_builders!($name, no_use_bias);
        $crate::layer::kernel_bias_builders!(@rest $name);
    };
    (@rest $name:ident) => {
        impl $name {
            /// Set the activation.
            pub fn activation(mut self, a: $crate::Activation) -> Self {
                self.cfg.activation = a;
                self
            }
        }

        $crate::layer::constraint_builders!($name: kernel_constraint => "the kernel", bias_constraint => "the bias");
        $crate::layer::activity_regularizer_builder!($name);
    };
}
pub(crate) use kernel_bias_builders;

/// The builder methods of a layer whose kernels and optional biases share `cfg` fields
/// `use_bias`, `kernel_initializer`, `bias_initializer`, `kernel_regularizer` and
/// `bias_regularizer` (Dense, Conv1D, Conv2D, MultiHeadAttention).
macro_rules! bias_init_reg_builders {
    ($name:ident) => {
        impl $name {
            /// Add a bias or not.
            pub fn use_bias(mut self, yes: bool) -> Self {
                self.cfg.use_bias = yes;
                self
            }
        }

        $crate::layer::bias_init_reg_builders!($name, no_use_bias);
    };
    ($name:ident, no_use_bias) => {
        impl $name {
            /// Set the kernel initializer.
            pub fn kernel_initializer(mut self, i: $crate::Initializer) -> Self {
                self.cfg.kernel_initializer = i;
                self
            }

            /// Set the bias initializer.
            pub fn bias_initializer(mut self, i: $crate::Initializer) -> Self {
                self.cfg.bias_initializer = i;
                self
            }

            /// Penalise the kernel.
            pub fn kernel_regularizer(mut self, r: $crate::Regularizer) -> Self {
                self.cfg.kernel_regularizer = Some(r);
                self
            }

            /// Penalise the bias.
            pub fn bias_regularizer(mut self, r: $crate::Regularizer) -> Self {
                self.cfg.bias_regularizer = Some(r);
                self
            }
        }
    };
}
pub(crate) use bias_init_reg_builders;

/// The `Layer` methods a layer with optional weights and a config with `activation` and one
/// regularizer per weight has in common: its output activation, its weights, its config and
/// its penalties and constraints. The default form is a `kernel` and a `bias` (Dense, Conv1D,
/// Conv2D); give `(name, field, regularizer field, constraint field)` for others
/// (SeparableConv2D: `depthwise_kernel`, `pointwise_kernel`, `bias`). Use inside `impl Layer`.
macro_rules! kernel_bias_layer_methods {
    () => {
        $crate::layer::kernel_bias_layer_methods!(
            ("kernel", kernel, kernel_regularizer, kernel_constraint),
            ("bias", bias, bias_regularizer, bias_constraint)
        );
    };
    ($(($wname:literal, $field:ident, $reg:ident, $con:ident)),+ $(,)?) => {
        fn output_activation(&self) -> Option<$crate::Activation> {
            (!self.cfg.activation.is_linear()).then_some(self.cfg.activation)
        }

        fn weights(&self) -> Vec<$crate::Weight> {
            let mut w = Vec::new();
            $(
                if let Some(p) = &self.$field {
                    w.push($crate::Weight::trainable($wname, p));
                }
            )+
            w
        }

        fn config(&self) -> serde_json::Value {
            $crate::layer::with_name(&self.name, serde_json::to_value(&self.cfg).unwrap_or_default())
        }

        fn regularization_loss(&self, ctx: &$crate::Ctx<'_>) -> $crate::Result<Option<keel_autograd::Var>> {
            $crate::layer::penalties(ctx, &[$((&self.cfg.$reg, &self.$field)),+])
        }

        fn constraints(&self) -> Vec<(keel_autograd::Param, $crate::Constraint)> {
            $crate::layer::constraint_pairs(&[$((&self.cfg.$con, &self.$field)),+])
        }

        fn activity_regularizer(&self) -> Option<$crate::Regularizer> {
            self.cfg.activity_regularizer
        }
    };
}
pub(crate) use kernel_bias_layer_methods;

macro_rules! common_builders {
    ($t:ty) => {
        impl $t {
            /// Give the layer a name (else the model numbers it, Keras style).
            pub fn with_name(mut self, name: impl Into<String>) -> Self {
                self.name = name.into();
                self
            }

            /// Declare the per-sample input shape (first layer of a Sequential).
            pub fn input_shape(mut self, shape: impl Into<Vec<usize>>) -> Self {
                self.input_shape = Some(shape.into());
                self
            }
        }
    };
}
pub(crate) use common_builders;

/// The single-input `Layer` methods of a layer that takes several inputs (`build`,
/// `output_shape`, `forward_logits`), forwarding to its `_multi` forms.
macro_rules! multi_input_forwards {
    () => {
        fn build(&mut self, input_shape: &[usize], rng: &mut keel_tensor::rng::Rng) -> $crate::Result<()> {
            self.build_multi(&[input_shape.to_vec()], rng)
        }

        fn output_shape(&self, input_shape: &[usize]) -> $crate::Result<Vec<usize>> {
            self.output_shape_multi(&[input_shape.to_vec()])
        }

        fn forward_logits(
            &self,
            x: &keel_autograd::Var,
            ctx: &mut $crate::layer::Ctx<'_>,
        ) -> $crate::Result<keel_autograd::Var> {
            self.forward_logits_multi(std::slice::from_ref(x), ctx)
        }
    };
}
pub(crate) use multi_input_forwards;

/// The `Layer` methods of a weightless layer that takes several inputs (a `built` field and
/// its own `output_shape_multi`/`forward_logits_multi`): the single-input forms forward to
/// the `_multi` ones (`multi_input_forwards`), and `build_multi` checks the shapes and
/// marks the layer built.
macro_rules! multi_input_layer {
    () => {
        $crate::layer::multi_input_forwards!();

        fn is_built(&self) -> bool {
            self.built
        }

        fn build_multi(&mut self, input_shapes: &[Vec<usize>], _rng: &mut keel_tensor::rng::Rng) -> $crate::Result<()> {
            self.output_shape_multi(input_shapes)?;
            self.built = true;
            Ok(())
        }
    };
}
pub(crate) use multi_input_layer;

/// The `build`, `is_built` and `output_shape` of a layer without weights whose output has
/// its input's shape (a `built` field): both run `self.check(input_shape)` first, so a bad
/// hyper-parameter or input rank is an error before the first batch. Such a layer passes a
/// mask on (`supports_masking`). Use inside `impl Layer`.
macro_rules! shape_preserving_layer {
    () => {
        fn build(&mut self, input_shape: &[usize], _rng: &mut keel_tensor::rng::Rng) -> $crate::Result<()> {
            self.check(input_shape)?;
            self.built = true;
            Ok(())
        }

        fn is_built(&self) -> bool {
            self.built
        }

        fn output_shape(&self, input_shape: &[usize]) -> $crate::Result<Vec<usize>> {
            self.check(input_shape)?;
            Ok(input_shape.to_vec())
        }

        fn supports_masking(&self) -> bool {
            true
        }
    };
}
pub(crate) use shape_preserving_layer;

/// `Layer::build` and `Layer::is_built` of a layer without weights (a `built` field):
/// building checks the input shape through `output_shape` and marks the layer built.
macro_rules! weightless_build {
    () => {
        fn build(&mut self, input_shape: &[usize], _rng: &mut keel_tensor::rng::Rng) -> $crate::Result<()> {
            self.output_shape(input_shape)?;
            self.built = true;
            Ok(())
        }

        fn is_built(&self) -> bool {
            self.built
        }
    };
}
pub(crate) use weightless_build;

/// The boilerplate `Layer` methods for a layer with `name`, `input_shape` fields.
macro_rules! layer_common {
    ($class:literal) => {
        fn name(&self) -> &str {
            &self.name
        }
        fn set_name(&mut self, name: String) {
            self.name = name;
        }
        fn class_name(&self) -> &'static str {
            $class
        }
        fn declared_input_shape(&self) -> Option<Vec<usize>> {
            self.input_shape.clone()
        }
    };
}
pub(crate) use layer_common;
