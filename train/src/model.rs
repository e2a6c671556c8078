//! [`KerasModel`]: a keel-nn network plus what `compile` sets (optimizer, loss,
//! metrics), with Keras's `fit` / `evaluate` / `predict`.

use crate::callbacks::{Callback, CallbackContext, CallbackList, FitParams, Logs};
use crate::fit::epoch_span;
use crate::history::History;
use crate::progress::Progress;
use crate::spec::{CompileMetric, CompiledOutput, Losses, NamedMetric};
use crate::step_results::{BatchLoss, EpochLogs, StepQueue};
use crate::{Error, Fit, Inputs, Result, Targets, ValidationFreq};
use keel_autograd::{Tape, Var};
use keel_data::BatchSource;
use keel_nn::{CastCache, Ctx, LossFn, Network};
use keel_optim::Optimizer;
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};

mod on_batch;

/// The stream tag of the per-epoch dropout generator (`derive_seed(seed, epoch, DROPOUT_STREAM)`).
const DROPOUT_STREAM: u64 = 0x4452_4F50;

/// How many batches `evaluate` and `predict` keep on the device before reading them back.
const READ_WINDOW: usize = 16;

/// What `compile` fixed.
struct Compiled {
    optimizer: Box<dyn Optimizer>,
    /// Each output's name, loss and loss weight.
    outputs: Vec<CompiledOutput>,
    metrics: Vec<NamedMetric>,
}

/// A model you can `compile`, `fit`, `evaluate` and `predict` with, as in Keras.
///
/// It wraps a [`Network`] (a [`keel_nn::Sequential`] or a functional
/// [`keel_nn::Model`]) and dereferences to it, so `add`, `summary` and the
/// rest of the network's API are available on the model directly.
///
/// A model computes on the CPU unless moved with [`KerasModel::to_device`];
/// `fit`/`evaluate`/`predict` then copy each batch to that device.
pub struct KerasModel<N: Network> {
    net: N,
    compiled: Option<Compiled>,
    device: Device,
    /// How many `train_on_batch` calls the model has run (its dropout draws from this).
    batch_calls: u64,
}

/// A Keras `Sequential` model that can be compiled and fitted.
pub type Sequential = KerasModel<keel_nn::Sequential>;

impl Sequential {
    /// An empty model (weights drawn from seed 0).
    pub fn new() -> Self {
        KerasModel::from_network(keel_nn::Sequential::new())
    }

    /// An empty model whose weights are drawn from `seed`.
    pub fn with_seed(seed: u64) -> Self {
        KerasModel::from_network(keel_nn::Sequential::with_seed(seed))
    }

    /// The model renamed (Keras's `keras.Sequential(name="generator")`); the name heads its
    /// summary and its saved config. Default `"sequential"`.
    pub fn with_name(self, name: impl Into<String>) -> Self {
        let KerasModel { net, compiled, device, batch_calls } = self;
        KerasModel { net: net.with_name(name), compiled, device, batch_calls }
    }
}

/// A functional Keras `Model` (from `Input`s to outputs) that can be compiled and fitted.
pub type Model = KerasModel<keel_nn::Model>;

impl Model {
    /// The model from `inputs` to `outputs` (see [`keel_nn::Model::new`]).
    pub fn new(inputs: &[keel_nn::SymbolicTensor], outputs: &[keel_nn::SymbolicTensor]) -> Result<Self> {
        Ok(KerasModel::from_network(keel_nn::Model::new(inputs, outputs)?))
    }

    /// The model renamed (Keras's `keras.Model(inputs, outputs, name="encoder")`); the name
    /// heads its summary and its saved config. Default `"model"`.
    pub fn with_name(self, name: impl Into<String>) -> Self {
        let KerasModel { net, compiled, device, batch_calls } = self;
        KerasModel { net: net.with_name(name), compiled, device, batch_calls }
    }
}

impl Default for Sequential {
    fn default() -> Self {
        Sequential::new()
    }
}

impl<N: Network> std::ops::Deref for KerasModel<N> {
    type Target = N;
    fn deref(&self) -> &N {
        &self.net
    }
}

impl<N: Network> std::ops::DerefMut for KerasModel<N> {
    fn deref_mut(&mut self) -> &mut N {
        &mut self.net
    }
}

impl<N: Network> KerasModel<N> {
    /// Wrap a network (not yet compiled).
    pub fn from_network(net: N) -> Self {
        KerasModel { net, compiled: None, device: Device::Cpu, batch_calls: 0 }
    }

    /// Compute on `device` from now on (PyTorch's `model.to(device)`): the weights built
    /// so far move there at once, layers built later (and optimizer state) follow on
    /// the next `fit`/`evaluate`/`predict`, and every batch is copied there as it is used.
    /// The data may stay on the host. Get a checked GPU with `Device::cuda(0)?`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use keel_tensor::Device;
    /// let mut model = keel_train::Sequential::new();
    /// model.to_device(&Device::cuda(0)?)?; // an error, not a panic, without a usable GPU
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_device(&mut self, device: &Device) -> Result<()> {
        self.net.to_device(device)?;
        self.device = *device;
        Ok(())
    }

    /// The device the model computes on (CPU unless moved with [`KerasModel::to_device`]).
    pub fn device(&self) -> Device {
        self.device
    }

    /// The wrapped network.
    pub fn network(&self) -> &N {
        &self.net
    }

    /// Freeze (`false`) or unfreeze the layer called `layer` (Keras's
    /// `model.get_layer(name).trainable = False`): the next `fit` leaves its weights
    /// alone (Keras needs a new `compile`; keel reads the flag when `fit` starts). See
    /// [`Network::set_trainable`].
    pub fn set_trainable(&mut self, layer: &str, trainable: bool) -> Result<()> {
        Ok(self.net.set_trainable(layer, trainable)?)
    }

    /// Freeze or unfreeze every layer (Keras's `model.trainable = False`).
    pub fn set_all_trainable(&mut self, trainable: bool) {
        self.net.set_all_trainable(trainable);
    }

    /// Give back the wrapped network.
    pub fn into_network(self) -> N {
        self.net
    }

    /// Print Keras's summary table to stdout (see [`Network::summary`] for the text).
    pub fn summary(&self) {
        println!("{}", self.net.summary());
    }

    /// Print the summary with each nested model's layers under its row (Keras's
    /// `summary(expand_nested=True)`; see [`Network::summary_with`] for the text).
    pub fn summary_expand_nested(&self) {
        println!("{}", self.net.summary_with(true));
    }

    /// Set the optimizer, the loss and the metrics (Keras `compile`).
    ///
    /// `loss` is one loss (a [`keel_nn::Loss`] or [`keel_nn::LossFn`]) or, for a model with
    /// several outputs, one per output with optional weights ([`Losses`]:
    /// `Losses::from([Loss::SparseCategoricalCrossentropy, Loss::MeanSquaredError]).loss_weights([1.0, 0.2])`).
    /// `metrics` are [`crate::MetricSpec`]s (`&[MetricSpec::Accuracy, MetricSpec::Auc]`) or
    /// Keras names (`&["accuracy", "auc", "mae"]`, logged under the name given); `Accuracy`
    /// becomes binary, categorical or sparse-categorical accuracy according to
    /// the loss, as in Keras. With several outputs, each metric is computed on every output
    /// (`<output>_accuracy`) or on the output it is paired with
    /// (`&[("class", "accuracy"), ("value", "mae")]`); see [`CompileMetric`].
    pub fn compile(
        &mut self,
        optimizer: impl Optimizer + 'static,
        loss: impl Into<Losses>,
        metrics: &[impl CompileMetric],
    ) -> Result<()> {
        self.compile_weighted(optimizer, loss, metrics, crate::NO_METRICS)
    }

    /// [`KerasModel::compile`] with Keras's `weighted_metrics` too: metrics updated with
    /// each batch's sample weights (`class_weight` times `sample_weight` in `fit`, the
    /// validation data's weights in its pass), logged after the plain ones of each output;
    /// one that a plain metric shares a name with is logged as `weighted_<name>`
    /// (`compile_weighted(Adam::default(), loss, &["accuracy"], &["accuracy"])` logs
    /// `accuracy` and `weighted_accuracy`). Without weights they equal the plain ones.
    pub fn compile_weighted(
        &mut self,
        optimizer: impl Optimizer + 'static,
        loss: impl Into<Losses>,
        metrics: &[impl CompileMetric],
        weighted_metrics: &[impl CompileMetric],
    ) -> Result<()> {
        optimizer.validate()?;
        // a layer that did not fit its input when it was added (kept until now by
        // `Sequential::add`) is reported here, as Keras reports it when the layer is added
        if !self.net.input_shapes().is_empty() {
            self.net.output_shapes()?;
        }
        let names = self.net.output_names();
        let outputs: Vec<CompiledOutput> = loss
            .into()
            .resolve(names.len())?
            .into_iter()
            .zip(&names)
            .map(|((loss, weight), name)| CompiledOutput { name: name.clone(), loss, weight })
            .collect();
        let metrics = NamedMetric::resolve(metrics, weighted_metrics, &names)?;
        // build once now so a bad name/combination fails at compile time
        EpochLogs::new(&metrics, &outputs)?;
        self.compiled = Some(Compiled { optimizer: Box::new(optimizer), outputs, metrics });
        self.add_loss_scaling();
        Ok(())
    }

    /// Wrap the compiled optimizer in a [`keel_optim::LossScaleOptimizer`] (Keras's
    /// defaults) when the model's policy is `"mixed_float16"` and it has no loss scale yet,
    /// as Keras's `compile` does (`auto_scale_loss=True`). `compile` calls it, and so do
    /// `fit` and `train_on_batch`, since keel lets the policy be set after `compile`.
    fn add_loss_scaling(&mut self) {
        let Some(compiled) = self.compiled.as_mut() else { return };
        if self.net.get_dtype_policy().needs_loss_scaling() && compiled.optimizer.loss_scale().is_none() {
            let inner = std::mem::replace(&mut compiled.optimizer, Box::new(keel_optim::Sgd::default()));
            compiled.optimizer = Box::new(keel_optim::LossScaleOptimizer::from_boxed(inner));
        }
    }

    /// The optimizer set by `compile` (e.g. to read or change its learning rate).
    pub fn optimizer_mut(&mut self) -> Result<&mut dyn Optimizer> {
        match &mut self.compiled {
            Some(c) => Ok(c.optimizer.as_mut()),
            None => Err(Error::NotCompiled("optimizer")),
        }
    }

    /// The compiled optimizer, if compiled.
    pub(crate) fn optimizer_ref(&self) -> Option<&dyn Optimizer> {
        self.compiled.as_ref().map(|c| c.optimizer.as_ref() as &dyn Optimizer)
    }

    /// `ys` as owned tensors, one per compiled output, each with a batch axis and the
    /// same number of samples.
    fn check_targets(&self, op: &'static str, ys: Targets<'_>) -> Result<Vec<Tensor>> {
        let compiled = self.compiled.as_ref().ok_or(Error::NotCompiled(op))?;
        let want = compiled.outputs.len();
        if ys.len() != want {
            let names: Vec<&str> = compiled.outputs.iter().map(|o| o.name.as_str()).collect();
            return Err(Error::invalid(
                op,
                format!(
                    "the model has {want} output(s) {names:?} but {} y tensor(s) were given (one per output, in order)",
                    ys.len()
                ),
            ));
        }
        let ys: Vec<Tensor> = ys.0.into_iter().cloned().collect();
        for (i, y) in ys.iter().enumerate() {
            let which = if want > 1 { format!("y[{i}]") } else { "y".to_string() };
            if y.rank() == 0 {
                return Err(Error::invalid(
                    op,
                    format!("{which} needs a batch (first) dimension, got shape {}", y.shape()),
                ));
            }
            if y.dims()[0] != ys[0].dims()[0] {
                return Err(Error::invalid(
                    op,
                    format!(
                        "{which} has {} samples (shape {}) but y[0] has {} (shape {})",
                        y.dims()[0],
                        y.shape(),
                        ys[0].dims()[0],
                        ys[0].shape()
                    ),
                ));
            }
        }
        Ok(ys)
    }

    /// `xs` as owned tensors, one per model input, each with a batch axis and the same
    /// number of samples (`y`'s, when given); returns them and that number.
    fn check_inputs(&self, op: &'static str, xs: Inputs<'_>, y: Option<&Tensor>) -> Result<(Vec<Tensor>, usize)> {
        let want = self.net.input_shapes().len().max(1);
        if xs.len() != want {
            return Err(Error::invalid(
                op,
                format!(
                    "the model has {want} input(s) but {} x tensor(s) were given (one per Input, in order)",
                    xs.len()
                ),
            ));
        }
        let xs: Vec<Tensor> = xs.0.into_iter().cloned().collect();
        if let Some(bad) = xs.iter().find(|x| x.rank() == 0) {
            return Err(Error::invalid(op, format!("x needs a batch (first) dimension, got shape {}", bad.shape())));
        }
        let (n, other) = match y {
            Some(y) => (y.dims()[0], format!("y has {} (shape {})", y.dims()[0], y.shape())),
            None => (xs[0].dims()[0], format!("x[0] has {}", xs[0].dims()[0])),
        };
        if let Some((i, bad)) = xs.iter().enumerate().find(|(_, x)| x.dims()[0] != n) {
            return Err(Error::invalid(
                op,
                format!("x[{i}] has {} samples (shape {}) but {other}", bad.dims()[0], bad.shape()),
            ));
        }
        Ok((xs, n))
    }

    /// `validation_data` checked before the first epoch trains (it is first used after
    /// it): one tensor per input, matching sample counts, and per-sample inputs shaped like
    /// `x`'s when `x` is known. Returns owned copies of the handles.
    fn check_validation_data(
        &self,
        vx: Inputs<'_>,
        vy: Targets<'_>,
        x: Option<&[Tensor]>,
    ) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        const OP: &str = "fit (validation_data)";
        let vys = self.check_targets(OP, vy)?;
        let (vxs, _) = self.check_inputs(OP, vx, Some(&vys[0]))?;
        check_xy(OP, &vxs[0], &vys[0])?;
        for (i, (v, x)) in vxs.iter().zip(x.unwrap_or_default()).enumerate() {
            if x.dims()[1..] != v.dims()[1..] {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "validation x[{i}] has samples of shape {:?}, x[{i}] has {:?}",
                        &v.dims()[1..],
                        &x.dims()[1..]
                    ),
                ));
            }
        }
        Ok((vxs, vys))
    }

    fn ensure_built(&mut self, xs: &[Tensor]) -> Result<()> {
        if !self.net.is_built() {
            if xs.iter().any(|x| x.rank() == 0) {
                return Err(Error::invalid("fit", "x must have a batch dimension"));
            }
            let shapes: Vec<Vec<usize>> = xs.iter().map(|x| x.dims()[1..].to_vec()).collect();
            self.net.build(&shapes)?;
        }
        Ok(())
    }

    /// Train for `cfg.epochs` epochs on `(x, y)` (Keras `fit`); returns the [`History`].
    ///
    /// `x` is a batch-first tensor, or one per model input (`[&x_a, &x_b]`, see
    /// [`Inputs`]), each cast to the dtype its input takes ([`KerasModel::input_dtype`]:
    /// F32, or BF16 under `"mixed_bfloat16"`); `y` holds
    /// one-hot/probability targets, class indices (I64) or regression targets
    /// as the loss expects, or one such tensor per output (`[&y_a, &y_b]`, see [`Targets`]).
    /// On a GPU model, host inputs (`x` and the validation `x`) of at
    /// most 512 MiB together are copied to the GPU once per call and each batch is
    /// gathered there; larger ones are gathered on the host and copied batch by batch.
    pub fn fit<'x, 'y>(
        &mut self,
        x: impl Into<Inputs<'x>>,
        y: impl Into<Targets<'y>>,
        mut cfg: Fit<'_>,
    ) -> Result<History> {
        let ys = self.check_targets("fit", y.into())?;
        let (xs, n) = self.check_inputs("fit", x.into(), Some(&ys[0]))?;
        check_xy("fit", &xs[0], &ys[0])?;
        let val_data = match cfg.validation_data.take() {
            Some((vx, vy)) => Some(self.check_validation_data(vx, vy, Some(&xs))?),
            None => None,
        };
        check_validation_weight(val_data.as_ref().map(|v| &v.1[0]), cfg.validation_sample_weight)?;
        let val_source = cfg.validation_source.take();
        if val_source.is_some() && val_data.is_some() {
            return Err(Error::invalid("fit", "give validation_data or validation_source, not both"));
        }
        if cfg.batch_size == 0 {
            return Err(Error::invalid("fit", "batch_size must be at least 1"));
        }
        if let Some(w) = cfg.sample_weight {
            if w.dims() != [n] {
                return Err(Error::invalid("fit", format!("sample_weight must have shape [{n}], got {}", w.shape())));
            }
        }
        if !(0.0..1.0).contains(&cfg.validation_split) {
            return Err(Error::invalid("fit", "validation_split must be in [0, 1)"));
        }
        // Keras: validation_data, when given, is the validation set and the split is not
        // made; else the split is the last fraction of the samples, taken before shuffling,
        // at floor(n * (1 - validation_split)), with its share of sample_weight.
        let split = cfg.validation_split > 0.0 && val_data.is_none() && val_source.is_none();
        let n_train = if split { (n as f64 * (1.0 - cfg.validation_split)).floor() as usize } else { n };
        if split && (n_train == 0 || n_train == n) {
            return Err(Error::invalid(
                "fit",
                format!(
                    "x has {n} samples, which is not enough to split into a training and a validation set with \
                     validation_split={}; give more data or a different validation_split",
                    cfg.validation_split
                ),
            ));
        }
        let n_val = n - n_train;
        let narrow_all = |ts: &[Tensor], from: usize, len: usize| -> Result<Vec<Tensor>> {
            ts.iter().map(|t| Ok(t.narrow(0, from, len)?)).collect()
        };
        let (xt, yt) = (narrow_all(&xs, 0, n_train)?, narrow_all(&ys, 0, n_train)?);
        let weights =
            self.sample_weights(&yt, cfg.sample_weight.map(|w| w.narrow(0, 0, n_train)).transpose()?, &cfg)?;
        let val = match val_data {
            Some((vx, vy)) => Some((vx, vy, cfg.validation_sample_weight.cloned())),
            None if n_val > 0 => Some((
                narrow_all(&xs, n_train, n_val)?,
                narrow_all(&ys, n_train, n_val)?,
                cfg.sample_weight.map(|w| w.narrow(0, n_train, n_val)).transpose()?,
            )),
            None => None,
        };
        let k = xt.len();
        let val_x = val.as_ref().map(|v| v.0.clone()).unwrap_or_default();
        let mut staged = self.stage_on_device(xt.into_iter().chain(val_x).collect());
        let val = val.map(|(_, vy, vw)| (staged.split_off(k), vy, vw));
        let mut source = TensorBatches {
            xs: staged,
            ys: yt,
            w: weights,
            batch: cfg.batch_size,
            shuffle: cfg.shuffle,
            seed: cfg.seed,
        };
        let callbacks = CallbackList { list: std::mem::take(&mut cfg.callbacks) };
        self.run_fit(&mut source, val, val_source, &mut cfg, callbacks)
    }

    /// The dtype the model takes its input in: the compute dtype when every layer reading
    /// the input casts it there first (BF16 under `"mixed_bfloat16"`, see
    /// `Network::input_autocast`), else F32. `fit`, `evaluate` and `predict` cast each
    /// batch to it on the model's device (staged inputs once per call), so the model does
    /// not cast again.
    pub fn input_dtype(&self) -> DType {
        self.input_dtype_at(0)
    }

    /// [`KerasModel::input_dtype`] of input `i` of a model with several.
    pub fn input_dtype_at(&self, i: usize) -> DType {
        self.net.input_autocast(i).unwrap_or(DType::F32)
    }

    /// Inputs (`fit`'s training and validation `x`, `evaluate`'s and `predict`'s `x`) copied
    /// whole to the model's GPU when they live on the host and together hold at most
    /// [`RESIDENT_MAX_BYTES`]: each step then takes its batch there (`fit`: one index copy
    /// and one `index_select` launch; `evaluate`/`predict`: a view) instead of gathering on
    /// the host and copying the batch. Float inputs are staged in the model's input dtype
    /// ([`KerasModel::input_dtype`]: under mixed_bfloat16 half the bytes, and one cast per
    /// call instead of one per batch); bytes stay bytes. Inputs already on the model's GPU
    /// are only cast (a copy in the input dtype, when theirs differs). The same batches, so
    /// the same results. Unchanged on the CPU, for larger inputs, for inputs on another
    /// device, or when the copy fails (e.g. the GPU is out of memory: the per-batch path
    /// then runs as before).
    /// `inputs` are model inputs in order, repeated (a training `x` then a validation `x`):
    /// tensor `j` feeds input `j % k` of the model's `k`.
    fn stage_on_device(&self, inputs: Vec<Tensor>) -> Vec<Tensor> {
        let dev = self.device;
        let bytes: usize = inputs.iter().map(|t| t.elem_count() * t.dtype().size_in_bytes()).sum();
        if !dev.is_cuda()
            || bytes > RESIDENT_MAX_BYTES
            || inputs.iter().any(|t| ![Device::Cpu, dev].contains(&t.device()))
        {
            return inputs;
        }
        let k = self.net.input_shapes().len().max(1);
        let stage = |(j, t): (usize, &Tensor)| -> Result<Tensor> {
            let t = t.to_device(&dev)?;
            if t.dtype().is_float() {
                as_input(&t, self.input_dtype_at(j % k))
            } else {
                Ok(t)
            }
        };
        inputs.iter().enumerate().map(stage).collect::<Result<Vec<_>>>().unwrap_or(inputs)
    }

    /// Train on any batch source (a `DataLoader`, `ImageDataGenerator::flow`, ...).
    pub fn fit_source(&mut self, source: &mut dyn BatchSource, mut cfg: Fit<'_>) -> Result<History> {
        let outputs = self.compiled.as_ref().ok_or(Error::NotCompiled("fit_source"))?.outputs.len();
        if outputs > 1 {
            return Err(Error::invalid(
                "fit_source",
                format!(
                    "a batch source gives one y, but the model has {outputs} outputs; use fit(x, [&y_a, &y_b], ..)"
                ),
            ));
        }
        if cfg.sample_weight.is_some() {
            return Err(Error::invalid("fit_source", "sample_weight needs tensors; use class_weight or fit(x, y, ..)"));
        }
        if cfg.validation_split > 0.0 {
            return Err(Error::invalid(
                "fit_source",
                "validation_split needs tensors (it takes the last samples of x); give validation_data instead",
            ));
        }
        let val = match cfg.validation_data.take() {
            Some((vx, vy)) => {
                let (vx, vy) = self.check_validation_data(vx, vy, None)?;
                Some((vx, vy, cfg.validation_sample_weight.cloned()))
            }
            None => None,
        };
        check_validation_weight(val.as_ref().map(|v| &v.1[0]), cfg.validation_sample_weight)?;
        let val_source = cfg.validation_source.take();
        if val_source.is_some() && val.is_some() {
            return Err(Error::invalid("fit_source", "give validation_data or validation_source, not both"));
        }
        let mut src = SourceBatches { inner: source };
        let callbacks = CallbackList { list: std::mem::take(&mut cfg.callbacks) };
        self.run_fit(&mut src, val, val_source, &mut cfg, callbacks)
    }

    /// Restore the training checkpoint a callback offers (`BackupAndRestore` after an
    /// interrupted run) and start `cfg` at its epoch, building the model from the first
    /// batch when it is not built yet.
    fn restore_backup(
        &mut self,
        source: &mut dyn WeightedSource,
        cfg: &mut Fit<'_>,
        callbacks: &mut CallbackList<'_>,
    ) -> Result<()> {
        let mut offered = None;
        for cb in &mut callbacks.list {
            offered = cb.restore_point()?;
            if offered.is_some() {
                break;
            }
        }
        let Some((ck, path)) = offered else { return Ok(()) };
        if ck.seed != cfg.seed {
            return Err(Error::bad_file(
                &path,
                format!(
                    "this backup was made by a run with seed {}, but this fit has seed {}; resume with \
                     Fit::seed({}), or delete the backup to start over",
                    ck.seed, cfg.seed, ck.seed
                ),
            ));
        }
        if !self.net.is_built() {
            if let Some((xs, _, _)) = source.weighted_batches(0, cfg)?.next().transpose()? {
                self.ensure_built(&xs)?;
            }
        }
        self.restore_checkpoint(&ck, &path)?;
        if cfg.verbose > 0 {
            println!(
                "Restored the backup {} of epoch {}; resuming at epoch {}",
                path.display(),
                ck.epoch,
                ck.epoch + 1
            );
        }
        cfg.initial_epoch = ck.epoch;
        cfg.resumed_history = Some(ck.history);
        Ok(())
    }

    fn run_fit(
        &mut self,
        source: &mut dyn WeightedSource,
        val: Option<(Vec<Tensor>, Vec<Tensor>, Option<Tensor>)>,
        mut val_source: Option<&mut dyn BatchSource>,
        cfg: &mut Fit<'_>,
        mut callbacks: CallbackList<'_>,
    ) -> Result<History> {
        self.add_loss_scaling();
        let Some(compiled) = &self.compiled else { return Err(Error::NotCompiled("fit")) };
        if val_source.is_some() && compiled.outputs.len() > 1 {
            return Err(Error::invalid(
                "fit",
                format!(
                    "a validation_source gives one y, but the model has {} outputs; give validation_data",
                    compiled.outputs.len()
                ),
            ));
        }
        if cfg.steps_per_execution == 0 {
            return Err(Error::invalid("fit", "steps_per_execution must be at least 1"));
        }
        for (name, value) in [
            ("steps_per_epoch", cfg.steps_per_epoch),
            ("validation_steps", cfg.validation_steps),
            ("validation_batch_size", cfg.validation_batch_size),
        ] {
            if value == Some(0) {
                return Err(Error::invalid(
                    "fit",
                    format!("{name} must be at least 1 (leave it unset for the default)"),
                ));
            }
        }
        if cfg.validation_freq == ValidationFreq::Every(0) {
            return Err(Error::invalid(
                "fit",
                "validation_freq must be at least 1 (1 validates after every epoch, 2 after every second one)",
            ));
        }
        let (outputs, specs) = (compiled.outputs.clone(), compiled.metrics.clone());
        self.restore_backup(source, cfg, &mut callbacks)?;
        let cfg = &*cfg;
        let mut history = History::new();
        // the epochs of the run this one resumes (a checkpoint saved now holds them too)
        let earlier = cfg.resumed_history.as_ref();
        let pass_batches = source.len_batches();
        let steps = match cfg.steps_per_epoch {
            Some(s) if s != pass_batches && cfg.epochs > cfg.initial_epoch => {
                // Keras warns when its iterator runs out of data within an epoch
                if pass_batches % s != 0 {
                    eprintln!(
                        "keel: warning: steps_per_epoch={s}, but one pass over the data has {pass_batches} batches: \
                         an epoch that reaches the end of a pass stops there, as in Keras (the next starts a new \
                         pass); give a steps_per_epoch that divides {pass_batches} for equal epochs"
                    );
                }
                s.min(pass_batches)
            }
            _ => pass_batches,
        };
        let params_info = FitParams {
            epochs: cfg.epochs,
            initial_epoch: cfg.initial_epoch,
            steps,
            verbose: cfg.verbose,
            seed: cfg.seed,
        };
        let mut stop = false;
        self.with_callbacks(&mut callbacks, (earlier, &history), &params_info, &mut stop, |cb, ctx| {
            cb.on_train_begin(ctx)
        })?;
        let mut epoch = cfg.initial_epoch;
        // one pass over the data at a time; with steps_per_epoch it spans several epochs
        while epoch < cfg.epochs && !stop {
            let (pass_no, first, _) = epoch_span(epoch, pass_batches, cfg.steps_per_epoch);
            let mut pass_iter = source.weighted_batches(pass_no, cfg)?.peekable();
            // a run resumed inside a pass skips what the earlier run took
            for _ in 0..first {
                pass_iter.next().transpose()?;
            }
            while epoch < cfg.epochs && !stop && epoch_span(epoch, pass_batches, cfg.steps_per_epoch).0 == pass_no {
                let (_, _, count) = epoch_span(epoch, pass_batches, cfg.steps_per_epoch);
                // dropout draws from (seed, epoch) alone, so a resumed run repeats an uninterrupted one
                let mut rng = Rng::new(keel_data::seed::derive_seed(cfg.seed, epoch as u64, DROPOUT_STREAM));
                self.with_callbacks(&mut callbacks, (earlier, &history), &params_info, &mut stop, |cb, ctx| {
                    cb.on_epoch_begin(epoch, ctx)
                })?;
                if cfg.verbose > 0 {
                    println!("Epoch {}/{}", epoch + 1, cfg.epochs);
                }
                let progress = Progress::new(cfg.verbose, count);
                let mut logs = EpochLogs::new(&specs, &outputs)?;
                let mut queue = StepQueue::new(cfg.steps_per_execution, &logs);
                let mut params = None;
                // (weight, constraint) pairs, applied after every step; usually empty
                let mut constraints = Vec::new();
                let dev = self.device;
                // each input's dtype, looked up once per epoch (a functional model scans its graph)
                let mut in_dtypes: Vec<DType> = Vec::new();
                // without steps_per_epoch an epoch reads the source to its end (whatever its
                // len_batches says)
                let limit = if cfg.steps_per_epoch.is_some() { count } else { usize::MAX };
                let mut batches_seen = 0usize;
                while batches_seen < limit {
                    let Some(batch) = pass_iter.next() else { break };
                    let step = batches_seen;
                    let (xs, ys, w) = batch?;
                    batches_seen += 1;
                    let last_of_epoch = batches_seen == limit || pass_iter.peek().is_none();
                    // copy first, cast on the device (U8 pixels travel as bytes)
                    if in_dtypes.len() != xs.len() {
                        in_dtypes = (0..xs.len()).map(|i| self.input_dtype_at(i)).collect();
                    }
                    let xs = xs
                        .iter()
                        .zip(&in_dtypes)
                        .map(|(x, &want)| as_input(&x.to_device(&dev)?, want))
                        .collect::<Result<Vec<_>>>()?;
                    self.ensure_built(&xs)?;
                    if params.is_none() {
                        // weights built lazily (or added after `to_device`) join the model's device
                        self.net.to_device(&dev)?;
                        let trainable = self.net.trainable_params();
                        if trainable.is_empty() {
                            // Keras warns and goes on (the losses and metrics are still computed)
                            eprintln!("keel: warning: the model has no trainable weights; fit computes the loss only");
                        }
                        params = Some(trainable);
                        constraints = self.net.weight_constraints();
                    }
                    let params = params.as_deref().unwrap_or_default();
                    let yd = ys.iter().map(|y| y.to_device(&dev)).collect::<std::result::Result<Vec<_>, _>>()?;
                    let wd = w.as_ref().map(|w| w.to_device(&dev)).transpose()?;
                    let read_now = cfg.steps_per_execution == 1;
                    let (batch_loss, y_pred, masks) =
                        self.train_step((params, &constraints), &xs, (&ys, &yd), wd.as_ref(), &mut rng, read_now)?;
                    queue.push(batch_loss, ys[0].dims()[0], (&ys, &y_pred, &masks), w.as_ref());
                    if !queue.is_full() && !last_of_epoch {
                        continue;
                    }
                    // the end of an execution: read its results, then report (Keras calls the
                    // batch callbacks once per execution, with the index of its last batch)
                    queue.flush(&mut logs)?;
                    if cfg.verbose == 1 {
                        progress.update(step + 1, &logs.logs(""));
                    }
                    if !callbacks.is_empty() {
                        let batch_logs = Logs::from(logs.logs(""));
                        self.with_callbacks(
                            &mut callbacks,
                            (earlier, &history),
                            &params_info,
                            &mut stop,
                            |cb, ctx| cb.on_train_batch_end(step, &batch_logs, ctx),
                        )?;
                        if stop {
                            break;
                        }
                    }
                }
                if batches_seen == 0 && !stop {
                    return Err(Error::invalid(
                        "fit",
                        format!(
                            "epoch {} had no batches: the data source yielded none (e.g. drop_last with fewer \
                         samples than the batch size)",
                            epoch + 1
                        ),
                    ));
                }
                let mut epoch_logs = logs.logs("");
                if cfg.validation_freq.should_validate(epoch) {
                    let batch = cfg.validation_batch_size.unwrap_or(cfg.batch_size);
                    if let Some((vx, vy, vw)) = &val {
                        // validation_steps: the first batches only
                        let n = vy[0].dims()[0];
                        let n = cfg.validation_steps.map_or(n, |s| n.min(s.saturating_mul(batch)));
                        let (vx, vy, vw) =
                            (first_samples(vx, n)?, first_samples(vy, n)?, vw.as_ref().map(|w| w.narrow(0, 0, n)));
                        epoch_logs.extend(self.evaluate_logs(&vx, &vy, vw.transpose()?.as_ref(), batch, "val_")?);
                    } else if let Some(src) = val_source.as_deref_mut() {
                        let steps = cfg.validation_steps.unwrap_or(usize::MAX);
                        epoch_logs.extend(self.evaluate_source_logs("fit (validation_source)", src, steps, "val_")?);
                    }
                }
                let mut epoch_logs = Logs::from(epoch_logs);
                self.with_callbacks(&mut callbacks, (earlier, &history), &params_info, &mut stop, |cb, ctx| {
                    cb.on_epoch_end(epoch, &mut epoch_logs, ctx)
                })?;
                // after the callbacks, as Keras's progress bar: what they add (ReduceLROnPlateau's
                // learning_rate) is shown
                progress.finish(epoch_logs.as_slice());
                history.push(epoch, epoch_logs.as_slice());
                epoch += 1;
            }
        }
        self.with_callbacks(&mut callbacks, (earlier, &history), &params_info, &mut stop, |cb, ctx| {
            cb.on_train_end(ctx)
        })?;
        Ok(history)
    }

    /// Run `hook` on every callback with a context over this model.
    fn with_callbacks(
        &mut self,
        callbacks: &mut CallbackList<'_>,
        (earlier, history): (Option<&History>, &History),
        params: &FitParams,
        stop: &mut bool,
        mut hook: impl FnMut(&mut dyn Callback, &mut CallbackContext<'_>) -> Result<()>,
    ) -> Result<()> {
        if callbacks.is_empty() {
            return Ok(());
        }
        let compiled = self.compiled.as_mut().ok_or(Error::NotCompiled("fit"))?;
        let mut ctx = CallbackContext {
            network: &self.net,
            optimizer: compiled.optimizer.as_mut(),
            earlier,
            history,
            params,
            stop,
        };
        for cb in &mut callbacks.list {
            hook(cb.as_mut(), &mut ctx)?;
        }
        Ok(())
    }

    /// One optimizer step on one batch: returns the batch losses and the predictions (one
    /// per output).
    ///
    /// `ys` are the batch's targets (one per output) as given and on the model's device.
    /// With `read_now`, the loss is read back before the step and a non-finite loss skips
    /// the update; otherwise nothing is read (the step never waits for the GPU) and every
    /// step is applied, as in Keras. After the step each `(weight, constraint)` pair's
    /// weight is replaced by its constrained value, on the weight's device (Keras's
    /// `variable.assign(constraint(variable))`).
    fn train_step(
        &mut self,
        (params, constraints): (&[keel_autograd::Param], &[(keel_autograd::Param, keel_nn::Constraint)]),
        xs: &[Tensor],
        ys: (&[Tensor], &[Tensor]),
        w: Option<&Tensor>,
        rng: &mut Rng,
        read_now: bool,
    ) -> Result<(BatchLoss, Vec<Tensor>, Vec<Option<Tensor>>)> {
        let compiled = self.compiled.as_mut().ok_or(Error::NotCompiled("fit"))?;
        let tape = Tape::new();
        // under mixed precision the weights are cast in one op (one launch on a GPU)
        let casts = CastCache::new();
        let (heads, reg) = {
            let mut ctx = Ctx::train_with(&tape, rng, &casts);
            let inputs: Vec<Var> = xs.iter().map(|x| Var::constant(x.clone())).collect();
            let heads = self.net.forward_heads(&inputs, &mut ctx)?;
            // the weight penalties and the activity penalties of this forward pass
            let reg = add_penalties(self.net.regularization_loss(&ctx)?, ctx.take_losses()?)?;
            (heads, reg)
        };
        let (loss, losses) = total_loss("fit", &compiled.outputs, &heads, ys, w, reg)?;
        let y_pred = heads.iter().map(|h| Ok(h.output()?.value().clone())).collect::<Result<Vec<_>>>()?;
        let masks: Vec<Option<Tensor>> = heads.iter().map(|h| h.mask().cloned()).collect();
        let batch_loss = if read_now {
            let values = BatchLoss::read(&losses)?;
            if !values[0].is_finite() {
                // keep going like Keras (TerminateOnNaN is a callback), but never step on NaN gradients
                return Ok((BatchLoss::Read(values), y_pred, masks));
            }
            BatchLoss::Read(values)
        } else {
            BatchLoss::Unread(losses)
        };
        if params.is_empty() {
            // nothing to train (warned at the first batch, as Keras warns): the loss only
            return Ok((batch_loss, y_pred, masks));
        }
        // a LossScaleOptimizer (mixed_float16) differentiates the scaled loss; logs stay unscaled
        let grads = tape.backward(&compiled.optimizer.scale_loss(&loss)?)?;
        compiled.optimizer.step(params, &grads)?;
        for (p, c) in constraints {
            p.assign(&c.apply(&p.value())?)?;
        }
        Ok((batch_loss, y_pred, masks))
    }

    /// Loss (weighted by `w`, per sample, when given) and metrics over `(x, ys)` (a
    /// target per output), each name prefixed by `prefix`.
    fn evaluate_logs(
        &self,
        xs: &[Tensor],
        ys: &[Tensor],
        w: Option<&Tensor>,
        batch_size: usize,
        prefix: &str,
    ) -> Result<Vec<(String, f64)>> {
        let compiled = self.compiled.as_ref().ok_or(Error::NotCompiled("evaluate"))?;
        let first = xs.first().ok_or_else(|| Error::invalid("evaluate", "no x given"))?;
        let y0 = ys.first().ok_or_else(|| Error::invalid("evaluate", "no y given"))?;
        let n = check_xy("evaluate", first, y0)?;
        if batch_size == 0 {
            return Err(Error::invalid("evaluate", "batch_size must be at least 1"));
        }
        self.net.to_device(&self.device)?;
        let xs = self.stage_on_device(xs.to_vec());
        let dtypes: Vec<DType> = (0..xs.len()).map(|i| self.input_dtype_at(i)).collect();
        let batches = (0..n).step_by(batch_size).map(|start| {
            let len = batch_size.min(n - start);
            let xb = self.input_batch(&xs, &dtypes, start, len)?;
            let y_host = ys.iter().map(|y| y.narrow(0, start, len)).collect::<std::result::Result<Vec<_>, _>>()?;
            let wb = w.map(|w| w.narrow(0, start, len)?.to_dtype(DType::F32)?.to_device(&self.device)).transpose()?;
            Ok((xb, y_host, wb))
        });
        self.evaluate_batches(compiled, batches, prefix)
    }

    /// Loss and metrics over a batch source (one `y` per batch), each name prefixed by
    /// `prefix`: the source's first `steps` batches of epoch 0, in order.
    fn evaluate_source_logs(
        &self,
        op: &'static str,
        source: &mut dyn BatchSource,
        steps: usize,
        prefix: &str,
    ) -> Result<Vec<(String, f64)>> {
        let compiled = self.compiled.as_ref().ok_or(Error::NotCompiled(op))?;
        if compiled.outputs.len() > 1 {
            return Err(Error::invalid(
                op,
                format!("a batch source gives one y, but the model has {} outputs", compiled.outputs.len()),
            ));
        }
        self.check_built(op)?;
        self.net.to_device(&self.device)?;
        let dtype = self.input_dtype_at(0);
        let batches = source.batches(0).take(steps).map(|b| {
            let (x, y) = b?;
            if x.rank() == 0 || y.rank() == 0 || x.dims()[0] != y.dims()[0] {
                return Err(Error::invalid(
                    op,
                    format!("a batch's x {} and y {} do not share a batch dimension", x.shape(), y.shape()),
                ));
            }
            let xb = Var::constant(as_input(&x.to_device(&self.device)?, dtype)?);
            Ok((vec![xb], vec![y], None))
        });
        self.evaluate_batches(compiled, batches, prefix)
    }

    /// Loss and metrics over `batches` (inputs on the model's device, targets as given, one
    /// per output, weights on the device), read back a window at a time.
    fn evaluate_batches(
        &self,
        compiled: &Compiled,
        batches: impl Iterator<Item = Result<(Vec<Var>, Vec<Tensor>, Option<Tensor>)>>,
        prefix: &str,
    ) -> Result<Vec<(String, f64)>> {
        let mut logs = EpochLogs::new(&compiled.metrics, &compiled.outputs)?;
        // nothing watches single batches here: read the results back a window at a time
        let mut queue = StepQueue::new(READ_WINDOW, &logs);
        // the weights stay fixed: under mixed precision cast each once, not once per batch
        let casts = CastCache::new();
        let mut seen = 0;
        for batch in batches {
            let (xb, y_host, wb) = batch?;
            let len = y_host.first().map_or(0, |y| y.dims()[0]);
            let yb = y_host.iter().map(|y| y.to_device(&self.device)).collect::<std::result::Result<Vec<_>, _>>()?;
            let mut ctx = Ctx::inference_with(&casts);
            let heads = self.net.forward_heads(&xb, &mut ctx)?;
            // Keras's evaluation loss includes `model.losses` too (activity penalties included)
            let reg = add_penalties(self.net.regularization_loss(&ctx)?, ctx.take_losses()?)?;
            let (_, losses) = total_loss("evaluate", &compiled.outputs, &heads, (&y_host, &yb), wb.as_ref(), reg)?;
            let y_pred = heads.iter().map(|h| Ok(h.output()?.value().clone())).collect::<Result<Vec<_>>>()?;
            let masks: Vec<Option<Tensor>> = heads.iter().map(|h| h.mask().cloned()).collect();
            queue.push(BatchLoss::Unread(losses), len, (&y_host, &y_pred, &masks), wb.as_ref());
            if queue.is_full() {
                queue.flush(&mut logs)?;
            }
            seen += len;
        }
        if seen == 0 {
            return Err(Error::invalid("evaluate", "no samples to evaluate: the data gave no batches"));
        }
        queue.flush(&mut logs)?;
        Ok(logs.logs(prefix))
    }

    /// An error of `op` saying how to build the model, unless it is built.
    fn check_built(&self, op: &'static str) -> Result<()> {
        if self.net.is_built() {
            return Ok(());
        }
        Err(Error::invalid(
            op,
            "the model is not built; give the first layer an input_shape, build it \
             (model.build(&[vec![..per-sample dims..]])) or fit it first",
        ))
    }

    /// Samples `start..start + len` of every input, on the model's device in its input dtype.
    fn input_batch(&self, xs: &[Tensor], dtypes: &[DType], start: usize, len: usize) -> Result<Vec<Var>> {
        xs.iter()
            .zip(dtypes)
            .map(|(x, &want)| Ok(Var::constant(as_input(&x.narrow(0, start, len)?.to_device(&self.device)?, want)?)))
            .collect()
    }

    /// Loss and metrics on `(x, y)`, batch size 32 (Keras `evaluate`), as `(loss, first metric)`.
    ///
    /// The second value is the first compiled metric (NaN when there is none);
    /// [`KerasModel::evaluate_all`] returns every value by name.
    ///
    /// `x` is one tensor or one per model input, and `y` one tensor or one per output, as
    /// [`KerasModel::fit`]'s. On a model with several outputs the second value is the
    /// first output's loss (the log after `loss`, as Keras orders them).
    pub fn evaluate<'x, 'y>(&self, x: impl Into<Inputs<'x>>, y: impl Into<Targets<'y>>) -> Result<(f64, f64)> {
        let logs = self.evaluate_all(x, y, 32)?;
        Ok((logs[0].1, logs.get(1).map(|l| l.1).unwrap_or(f64::NAN)))
    }

    /// Every log of an evaluation: `[("loss", ..), ("accuracy", ..), ...]` (with several
    /// outputs: `loss`, each `<output>_loss`, then the metrics, as `fit` logs them).
    pub fn evaluate_all<'x, 'y>(
        &self,
        x: impl Into<Inputs<'x>>,
        y: impl Into<Targets<'y>>,
        batch_size: usize,
    ) -> Result<Vec<(String, f64)>> {
        let ys = self.check_targets("evaluate", y.into())?;
        let (xs, _) = self.check_inputs("evaluate", x.into(), Some(&ys[0]))?;
        self.evaluate_logs(&xs, &ys, None, batch_size, "")
    }

    /// [`KerasModel::evaluate_all`] with per-sample weights (Keras's
    /// `evaluate(x, y, sample_weight=w)`): `sample_weight` (`[n]`, one per sample) weights
    /// the loss and the `weighted_metrics` of [`KerasModel::compile_weighted`]; the plain
    /// metrics stay unweighted, as in Keras.
    pub fn evaluate_weighted<'x, 'y>(
        &self,
        x: impl Into<Inputs<'x>>,
        y: impl Into<Targets<'y>>,
        sample_weight: &Tensor,
        batch_size: usize,
    ) -> Result<Vec<(String, f64)>> {
        let ys = self.check_targets("evaluate", y.into())?;
        let (xs, _) = self.check_inputs("evaluate", x.into(), Some(&ys[0]))?;
        let n = ys[0].dims().first().copied().unwrap_or(0);
        if sample_weight.dims() != [n] {
            return Err(Error::invalid(
                "evaluate",
                format!("sample_weight must have shape [{n}] (one per sample), got {}", sample_weight.shape()),
            ));
        }
        self.evaluate_logs(&xs, &ys, Some(sample_weight), batch_size, "")
    }

    /// Every log of an evaluation over a batch source (Keras's `model.evaluate(test_ds)`):
    /// a `DataLoader`, `image_dataset_from_directory`, ..., read in its epoch-0 order, on a
    /// single-output model.
    pub fn evaluate_source(&self, source: &mut dyn BatchSource) -> Result<Vec<(String, f64)>> {
        self.evaluate_source_logs("evaluate_source", source, usize::MAX, "")
    }

    /// [`KerasModel::evaluate_source`] over the source's first `steps` batches only
    /// (Keras's `model.evaluate(dataset, steps=n)`).
    pub fn evaluate_source_steps(&self, source: &mut dyn BatchSource, steps: usize) -> Result<Vec<(String, f64)>> {
        if steps == 0 {
            return Err(Error::invalid("evaluate_source", "steps must be at least 1"));
        }
        self.evaluate_source_logs("evaluate_source", source, steps, "")
    }

    /// Model outputs for `x`, computed in batches of `batch_size` with no tape (Keras `predict`),
    /// on the model's device and returned on `x`'s device. On a GPU model, a host `x` of at
    /// most 512 MiB is copied to the GPU once (in [`KerasModel::input_dtype`]) and each
    /// batch is a view of it. `x` is one tensor or one per model input, as
    /// [`KerasModel::fit`]'s.
    pub fn predict<'x>(&self, x: impl Into<Inputs<'x>>, batch_size: usize) -> Result<Tensor> {
        let outputs = self.net.output_shapes().map(|s| s.len()).unwrap_or(1);
        if outputs > 1 {
            return Err(Error::invalid(
                "predict",
                format!("the model has {outputs} outputs; use predict_outputs, which returns one tensor per output"),
            ));
        }
        let mut out = self.predict_outputs(x, batch_size)?;
        out.pop().ok_or_else(|| Error::invalid("predict", "the model has no output"))
    }

    /// [`KerasModel::predict`] for a model with any number of outputs: one tensor per
    /// output, in the model's output order (Keras's `predict` returns this list).
    pub fn predict_outputs<'x>(&self, x: impl Into<Inputs<'x>>, batch_size: usize) -> Result<Vec<Tensor>> {
        if batch_size == 0 {
            return Err(Error::invalid("predict", "batch_size must be at least 1"));
        }
        let (xs, n) = self.check_inputs("predict", x.into(), None)?;
        let out_device = xs[0].device();
        self.check_built("predict")?;
        if n == 0 {
            return Err(Error::invalid("predict", "x has no samples"));
        }
        let dev = self.device;
        self.net.to_device(&dev)?;
        let staged = self.stage_on_device(xs);
        let dtypes: Vec<DType> = (0..staged.len()).map(|i| self.input_dtype_at(i)).collect();
        let starts = (0..n).step_by(batch_size);
        let batches = starts.map(|start| self.input_batch(&staged, &dtypes, start, batch_size.min(n - start)));
        self.predict_batches("predict", batches, &out_device)
    }

    /// The model's outputs over `batches` (each one tensor per input, on the model's device
    /// in its input dtype), one tensor per output on `out_device`: forward passes with no
    /// tape, read back a window of batches at a time.
    fn predict_batches(
        &self,
        op: &'static str,
        batches: impl Iterator<Item = Result<Vec<Var>>>,
        out_device: &Device,
    ) -> Result<Vec<Tensor>> {
        // per output: the windows read back so far, and the batches of the open window
        let mut parts: Vec<Vec<Tensor>> = Vec::new();
        let mut window: Vec<Vec<Tensor>> = Vec::new();
        let casts = CastCache::new();
        let mut batches = batches.peekable();
        while let Some(xb) = batches.next() {
            let outs = self.net.forward(&xb?, &mut Ctx::inference_with(&casts))?;
            if outs.is_empty() {
                return Err(Error::invalid(op, "the model has no output"));
            }
            parts.resize_with(outs.len(), Vec::new);
            window.resize_with(outs.len(), Vec::new);
            for (w, out) in window.iter_mut().zip(outs) {
                w.push(out.into_value());
            }
            if window[0].len() == READ_WINDOW || batches.peek().is_none() {
                // the outputs go where the inputs came from (host in, host out), a window
                // of batches per copy so that the GPU is not drained after every batch
                for (w, p) in window.iter_mut().zip(&mut parts) {
                    let joined = if w.len() == 1 { w.remove(0) } else { Tensor::concat(w, 0)? };
                    w.clear();
                    p.push(joined.to_device(out_device)?);
                }
            }
        }
        if parts.is_empty() {
            return Err(Error::invalid(op, "no samples to predict: the data gave no batches"));
        }
        parts
            .into_iter()
            .map(|mut p| match p.len() {
                1 => Ok(p.remove(0)), // no copy (on a GPU, a launch) of the one window
                _ => Ok(Tensor::concat(&p, 0)?),
            })
            .collect()
    }

    /// Model outputs over a batch source (Keras's `model.predict(dataset)`): the `x` of each
    /// of the source's epoch-0 batches in order (its `y` is not read), at most `steps`
    /// batches (`None`: all of them, Keras's `steps=None`), one tensor per model output,
    /// returned on the host. The source's batch size is the prediction batch size.
    pub fn predict_source(&self, source: &mut dyn BatchSource, steps: Option<usize>) -> Result<Vec<Tensor>> {
        const OP: &str = "predict_source";
        if steps == Some(0) {
            return Err(Error::invalid(OP, "steps must be at least 1 (None reads every batch)"));
        }
        self.check_built(OP)?;
        if self.net.input_shapes().len() > 1 {
            return Err(Error::invalid(
                OP,
                format!(
                    "a batch source gives one x, but the model has {} inputs; use predict",
                    self.net.input_shapes().len()
                ),
            ));
        }
        self.net.to_device(&self.device)?;
        let dtype = self.input_dtype_at(0);
        let batches = source.batches(0).take(steps.unwrap_or(usize::MAX)).map(|b| {
            let (x, _) = b?;
            if x.rank() == 0 {
                return Err(Error::invalid(
                    OP,
                    format!("a batch's x needs a batch dimension, got shape {}", x.shape()),
                ));
            }
            Ok(vec![Var::constant(as_input(&x.to_device(&self.device)?, dtype)?)])
        });
        self.predict_batches(OP, batches, &Device::Cpu)
    }

    /// Per-sample weights from `class_weight` and `sample_weight` (their product), if any;
    /// `ys` are the targets, one per output (`class_weight` needs a single output).
    fn sample_weights(&self, ys: &[Tensor], sample_weight: Option<Tensor>, cfg: &Fit<'_>) -> Result<Option<Tensor>> {
        let Some(cw) = &cfg.class_weight else { return Ok(sample_weight) };
        let [y] = ys else {
            return Err(Error::invalid(
                "fit",
                format!(
                    "class_weight is only supported for a model with a single output (this one has {}), as in \
                     Keras; give sample_weight instead",
                    ys.len()
                ),
            ));
        };
        let w = class_weights_for(y, cw)?;
        Ok(Some(match sample_weight {
            Some(sw) => w.mul(&sw.to_dtype(DType::F32)?)?,
            None => w,
        }))
    }
}

/// Per-sample weights from a class-weight map; `y` holds class indices or one-hot rows.
pub(crate) fn class_weights_for(y: &Tensor, cw: &std::collections::BTreeMap<i64, f64>) -> Result<Tensor> {
    let labels: Vec<i64> = if y.dtype().is_float() && y.rank() >= 2 && y.dims()[y.rank() - 1] > 1 {
        y.argmax(-1, false)?.reshape([y.dims()[0]])?.to_vec::<i64>()?
    } else if y.dtype().is_float() {
        // binary targets 0/1 stored as floats
        y.to_vec_f64()?.into_iter().map(|v| v.round() as i64).collect()
    } else {
        y.to_dtype(DType::I64)?.to_vec::<i64>()?
    };
    let w: Vec<f32> = labels.iter().map(|l| cw.get(l).copied().unwrap_or(1.0) as f32).collect();
    let n = w.len();
    Ok(Tensor::from_vec(w, n)?)
}

/// `validation_data`'s weights must have one value per validation sample (`y` is its first target).
fn check_validation_weight(y: Option<&Tensor>, w: Option<&Tensor>) -> Result<()> {
    let (Some(y), Some(w)) = (y, w) else { return Ok(()) };
    let n = y.dims()[0];
    if w.dims() != [n] {
        return Err(Error::invalid(
            "fit (validation_data)",
            format!(
                "the validation sample_weight must have shape [{n}] (one per validation sample), got {}",
                w.shape()
            ),
        ));
    }
    Ok(())
}

fn check_xy(op: &'static str, x: &Tensor, y: &Tensor) -> Result<usize> {
    if x.rank() == 0 || y.rank() == 0 {
        return Err(Error::invalid(op, "x and y need a batch (first) dimension"));
    }
    if x.dims()[0] != y.dims()[0] {
        return Err(Error::invalid(
            op,
            format!("x has {} samples but y has {} (shapes {} and {})", x.dims()[0], y.dims()[0], x.shape(), y.shape()),
        ));
    }
    if x.dims()[0] == 0 {
        return Err(Error::invalid(op, "x has no samples"));
    }
    Ok(x.dims()[0])
}

/// The training loss of a batch, `sum(weight_i * loss_i)` over the outputs plus the
/// weight penalties `reg`, and the 0-d values to log: that total, then each output's
/// (unweighted) loss when there are several. A loss reduced by
/// [`keel_nn::Reduction::None`] gives per-sample values: it is trained on their sum and
/// logged as their mean, as Keras's TensorFlow trainer does (its gradient of a vector loss
/// is that of the sum; its loss tracker averages the vector); the JAX and torch trainers
/// reject such a loss. `ys` are the targets as given and on the
/// model's device, one per output.
fn total_loss(
    op: &'static str,
    outputs: &[CompiledOutput],
    heads: &[keel_nn::Head],
    (ys, ys_dev): (&[Tensor], &[Tensor]),
    w: Option<&Tensor>,
    reg: Option<Var>,
) -> Result<(Var, Vec<Tensor>)> {
    if heads.len() != outputs.len() || ys.len() != outputs.len() || ys_dev.len() != outputs.len() {
        return Err(Error::invalid(
            op,
            format!(
                "the model gave {} output(s) for {} compiled loss(es) and {} y",
                heads.len(),
                outputs.len(),
                ys.len()
            ),
        ));
    }
    let mut total: Option<Var> = None;
    let mut logged = Vec::new();
    // each output's logged loss and weight: a loss reduced by "none" makes the logged
    // total differ from the trained one
    let mut shown = Vec::with_capacity(outputs.len());
    let mut per_sample = false;
    for (((o, head), y), y_dev) in outputs.iter().zip(heads).zip(ys).zip(ys_dev) {
        let l = head_loss(&o.loss, head, (y, y_dev), w)?;
        // Reduction::None gives the per-sample losses: as Keras's TensorFlow trainer does
        // with them, train on their sum (the gradient of a vector) and log their mean
        let l = if l.rank() == 0 {
            shown.push((l.value().clone(), o.weight));
            l
        } else {
            per_sample = true;
            shown.push((l.value().mean_all()?, o.weight));
            l.sum_all()?
        };
        if outputs.len() > 1 {
            logged.push(shown[shown.len() - 1].0.clone());
        }
        let weighted = if o.weight == 1.0 { l } else { l.mul_scalar(o.weight)? };
        total = Some(match total {
            Some(t) => (&t + &weighted)?,
            None => weighted,
        });
    }
    let mut total = total.ok_or_else(|| Error::invalid(op, "the model has no output"))?;
    if let Some(r) = reg {
        if per_sample {
            shown.push((r.value().clone(), 1.0));
        }
        total = (&total + &r)?;
    }
    let shown_total = if per_sample {
        let mut sum: Option<Tensor> = None;
        for (v, weight) in shown {
            let v = if weight == 1.0 { v } else { v.mul_scalar(weight)? };
            sum = Some(match sum {
                Some(s) => s.add(&v.to_dtype(s.dtype())?)?,
                None => v,
            });
        }
        sum.ok_or_else(|| Error::invalid(op, "the model has no output"))?
    } else {
        total.value().clone()
    };
    logged.insert(0, shown_total);
    Ok((total, logged))
}

/// The loss of `head` against targets `y` (as given) moved to the model's device as
/// `y_dev`. Targets that travelled are checked on the host first: the loss does not
/// read targets back from a GPU.
fn head_loss(loss: &LossFn, head: &keel_nn::Head, (y, y_dev): (&Tensor, &Tensor), w: Option<&Tensor>) -> Result<Var> {
    if y.device() != y_dev.device() {
        loss.check_targets(y, head.logits.dims())?;
    }
    Ok(loss.compute_head(head, y_dev, w)?)
}

/// Inputs are computed in F32: integer (e.g. U8 pixel) batches are cast, like Keras does.
/// `x` in the dtype the model takes its input in (`want`, from
/// [`KerasModel::input_dtype`]): as it is when already there, else cast on its device.
/// Floats other than F32 and integers other than bytes go through F32 first, as they did
/// when the model's layers cast an F32 input, so the values are the same either way (bytes
/// convert exactly to every float dtype).
fn as_input(x: &Tensor, want: DType) -> Result<Tensor> {
    if x.dtype() == want {
        return Ok(x.clone());
    }
    let direct = want == DType::F32 || matches!(x.dtype(), DType::F32 | DType::U8);
    let x = if direct { x.clone() } else { x.to_dtype(DType::F32)? };
    Ok(x.to_dtype(want)?)
}

/// The first `n` samples of each tensor (views).
fn first_samples(ts: &[Tensor], n: usize) -> Result<Vec<Tensor>> {
    ts.iter().map(|t| Ok(t.narrow(0, 0, n.min(t.dims().first().copied().unwrap_or(0)))?)).collect()
}

/// One batch (a tensor per model input, the targets per output) with optional per-sample weights.
type WBatch = (Vec<Tensor>, Vec<Tensor>, Option<Tensor>);
type WIter<'a> = Box<dyn Iterator<Item = Result<WBatch>> + 'a>;

/// A source of weighted batches (tensors in memory, or any `BatchSource`).
trait WeightedSource {
    fn len_batches(&self) -> usize;
    fn weighted_batches<'a>(&'a mut self, epoch: usize, cfg: &Fit<'_>) -> Result<WIter<'a>>;
}

/// The most bytes of inputs [`KerasModel::fit`] (training and validation `x` together),
/// `evaluate` and `predict` copy whole to a GPU model's device, to take each batch there
/// (`KerasModel::stage_on_device`): MNIST's 60,000 digits take 47 MB as U8
/// (188 MB as F32), CIFAR-10's 50,000 images 154 MB as U8.
pub(crate) const RESIDENT_MAX_BYTES: usize = 512 << 20;

/// Batches gathered from in-memory tensors in a per-epoch shuffled order.
struct TensorBatches {
    xs: Vec<Tensor>,
    /// The targets, one per output.
    ys: Vec<Tensor>,
    w: Option<Tensor>,
    batch: usize,
    shuffle: bool,
    seed: u64,
}

impl WeightedSource for TensorBatches {
    fn len_batches(&self) -> usize {
        self.ys[0].dims()[0].div_ceil(self.batch)
    }

    fn weighted_batches<'a>(&'a mut self, epoch: usize, _cfg: &Fit<'_>) -> Result<WIter<'a>> {
        let n = self.ys[0].dims()[0];
        let order: Vec<i64> =
            keel_data::loader::epoch_order(n, self.shuffle, self.seed, epoch).into_iter().map(|i| i as i64).collect();
        let batch = self.batch;
        Ok(Box::new(order.chunks(batch).map(|c| c.to_vec()).collect::<Vec<_>>().into_iter().map(move |idx| {
            let len = idx.len();
            let it = Tensor::from_vec(idx, len)?;
            // gather where each tensor lives (a dataset may sit on the GPU)
            let take = |t: &Tensor| -> Result<Tensor> {
                let it = if t.device() == it.device() { it.clone() } else { it.to_device(&t.device())? };
                Ok(t.index_select(&it, 0)?)
            };
            let w = self.w.as_ref().map(take).transpose()?;
            let xs = self.xs.iter().map(take).collect::<Result<Vec<_>>>()?;
            let ys = self.ys.iter().map(take).collect::<Result<Vec<_>>>()?;
            Ok((xs, ys, w))
        })))
    }
}

/// Any user batch source; class weights are applied per batch.
struct SourceBatches<'s> {
    inner: &'s mut dyn BatchSource,
}

impl WeightedSource for SourceBatches<'_> {
    fn len_batches(&self) -> usize {
        self.inner.len_batches()
    }

    fn weighted_batches<'a>(&'a mut self, epoch: usize, cfg: &Fit<'_>) -> Result<WIter<'a>> {
        let cw = cfg.class_weight.clone();
        Ok(Box::new(self.inner.batches(epoch).map(move |b| {
            let (x, y) = b?;
            let w = cw.as_ref().map(|cw| class_weights_for(&y, cw)).transpose()?;
            Ok((vec![x], vec![y], w))
        })))
    }
}

/// The sum of two optional penalties (the weight and the activity penalties of a step).
fn add_penalties(a: Option<Var>, b: Option<Var>) -> Result<Option<Var>> {
    Ok(match (a, b) {
        (Some(a), Some(b)) => Some(a.add(&b)?),
        (a, None) => a,
        (None, b) => b,
    })
}
