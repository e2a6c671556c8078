//! [`Recurrent`]: the time loop shared by [`crate::SimpleRNN`], [`crate::LSTM`]
//! and [`crate::GRU`] (Keras's `RNN(cell)`), and the [`Cell`] trait a cell
//! implements to run in it.
//!
//! Input is `[batch, timesteps, features]` (Keras). The input projection of
//! every timestep is one matmul (`[B*T, in] x [in, gates*units]`, plus the
//! input bias). On CUDA, LSTM and GRU (`reset_after`) with their default
//! activations then run the time loop as one fused op ([`Cell::sequence`]: one
//! tape node, two launches per timestep each way, the recurrent kernel's gradient
//! one matmul over all timesteps); otherwise the projection is split along time
//! into views and the loop does one recurrent matmul `[B, units] x [units, gates*units]`
//! and the gate math per step, O(T) tape nodes. Either way O(T) memory.
//!
//! `dropout` / `recurrent_dropout` (Keras's): in training one mask per call, drawn from the
//! [`Ctx`]'s seeded rng and used at every timestep, multiplies the input (before the
//! projection) and `h_{t-1}` (before the recurrent matmul); LSTM and GRU draw one mask per
//! gate when `recurrent_dropout` is set, as Keras 3 (see [`RecurrentDropoutMasks`]).
//! Recurrent dropout runs the time loop step by step; inference is unchanged.
//!
//! `stateful` (Keras's): the final states of each call are kept in the layer (values off the
//! tape) and start the next call, sample `j` continuing sample `j`; the first batch fixes
//! the batch size and [`Layer::reset_state`] forgets them (see [`Recurrent::stateful`]).
//!
//! Outputs follow Keras: the last hidden state, or with `return_sequences`
//! every hidden state `[B, T, units]` in the order processed (so with
//! `go_backwards` the first row belongs to the last input step, as Keras).
//! `return_state` adds the final states (`[h]`, or `[h, c]` for LSTM); since
//! [`Layer::forward`] returns one Var, the states come from
//! [`Recurrent::forward_with_state`], and a `Sequential` model (which calls
//! `forward`) just passes the plain output on.
//!
//! ```
//! use keel_nn::prelude::*;
//!
//! let mut model = Sequential::new();
//! model.add(Embedding::new(10_000, 64).input_shape([100])); // ids [batch, 100]
//! model.add(Bidirectional::new(LSTM::new(32).return_sequences(true)));
//! model.add(GRU::new(16));
//! model.add(Dense::new(1).activation(Activation::Sigmoid));
//! assert_eq!(model.output_shapes().unwrap(), vec![vec![1]]);
//! assert_eq!(model.count_params(), 640_000 + 2 * 4 * 32 * (64 + 32 + 1) + 3 * 16 * (64 + 16 + 2) + 17);
//! ```

use crate::layer::{Ctx, Layer};
use crate::{Activation, Error, Initializer, Regularizer, Result};
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
use keel_tensor::Tensor;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A recurrent cell: the per-step math of a recurrent layer and the layout of its weights.
///
/// The kernel is `[in, gates * units]`, the recurrent kernel
/// `[units, gates * units]`; the bias has [`Cell::bias_shape`]. The layer adds
/// [`Cell::input_bias`] to the input projection of all timesteps at once and
/// calls [`Cell::step`] once per timestep.
pub trait Cell: Clone + Default + Send + Sync + Serialize + DeserializeOwned + 'static {
    /// The Keras class name of the layer ("LSTM").
    fn class_name(&self) -> &'static str;

    /// How many blocks of `units` columns the kernels have (SimpleRNN 1, LSTM 4, GRU 3).
    fn gates(&self) -> usize;

    /// How many state tensors the cell carries (LSTM 2: `h`, `c`; others 1: `h`).
    fn state_count(&self) -> usize {
        1
    }

    /// The shape of the bias for `units`.
    fn bias_shape(&self, units: usize) -> Vec<usize> {
        vec![self.gates() * units]
    }

    /// A fresh bias drawn with `init` (LSTM overrides it for `unit_forget_bias`).
    fn init_bias(&self, units: usize, init: &Initializer, rng: &mut Rng) -> Result<Tensor> {
        init.sample(&self.bias_shape(units), rng)
    }

    /// The part of `bias` added to the input projection, `[gates * units]`.
    fn input_bias(&self, bias: &Var) -> Result<Var> {
        Ok(bias.clone())
    }

    /// The part of `bias` added to the recurrent projection `h U`, if any
    /// (GRU with `reset_after`); computed once per sequence.
    fn recurrent_bias(&self, bias: &Var) -> Result<Option<Var>> {
        let _ = bias;
        Ok(None)
    }

    /// One timestep: `x_proj` is `x_t W + input_bias` (`[B, gates*units]`),
    /// `states` the previous states; returns the new states, `h` first.
    fn step(&self, w: &StepWeights<'_>, x_proj: &Var, states: &[Var]) -> Result<Vec<Var>>;

    /// The whole time loop as one fused op where the cell has one for its settings and
    /// device (LSTM, and GRU with `reset_after`, with the default activations, on CUDA):
    /// from every timestep's input projection `proj` (`[B, T, gates*units]`) and the
    /// initial states, `Some` of every step's `h` (`[B, T, units]`, in the order processed)
    /// and the final states. `None` (the default): the layer calls [`Cell::step`] per
    /// timestep. Both give the same values.
    fn sequence(
        &self,
        w: &StepWeights<'_>,
        proj: &Var,
        states: &[Var],
        go_backwards: bool,
    ) -> Result<Option<(Var, Vec<Var>)>> {
        let _ = (w, proj, states, go_backwards);
        Ok(None)
    }
}

/// What [`Cell::step`] gets besides the input projection and the states.
pub struct StepWeights<'a> {
    /// Number of units.
    pub units: usize,
    /// The output activation (Keras `activation`, default tanh).
    pub activation: Activation,
    /// The recurrent kernel `[units, gates*units]`.
    pub recurrent_kernel: &'a Var,
    /// The whole bias, if any.
    pub bias: Option<&'a Var>,
    /// The recurrent bias from [`Cell::recurrent_bias`], if any.
    pub recurrent_bias: Option<&'a Var>,
    /// The recurrent dropout masks (`[B, units]`, training only): none, one shared by all
    /// gates, or one per gate (Keras's `recurrent_dropout`). `h_{t-1}` is multiplied by a
    /// gate's mask before it meets that gate's block of the recurrent kernel.
    pub recurrent_masks: &'a [Var],
}

impl StepWeights<'_> {
    /// `h` as gate `gate`'s block of the recurrent kernel sees it: times that gate's
    /// recurrent dropout mask (the one mask when there is one, `h` itself when none).
    pub fn masked_h(&self, h: &Var, gate: usize) -> Result<Var> {
        match self.recurrent_masks {
            [] => Ok(h.clone()),
            [m] => Ok(h.mul(m)?),
            ms => Ok(h.mul(&ms[gate.min(ms.len() - 1)])?),
        }
    }

    /// The recurrent projection `h U` (`[B, gates*units]`), each gate's block computed from
    /// its [`StepWeights::masked_h`]: one matmul without per-gate masks, one per gate with them.
    pub fn recurrent_proj(&self, h: &Var) -> Result<Var> {
        if self.recurrent_masks.len() <= 1 {
            return Ok(self.masked_h(h, 0)?.matmul(self.recurrent_kernel)?);
        }
        let k = self.recurrent_masks.len();
        let blocks = gate_blocks(self.recurrent_kernel, k, self.units)?;
        let parts = blocks
            .iter()
            .enumerate()
            .map(|(g, u)| Ok(self.masked_h(h, g)?.matmul(u)?))
            .collect::<Result<Vec<Var>>>()?;
        let refs: Vec<&Var> = parts.iter().collect();
        Ok(Var::concat(&refs, -1)?)
    }
}

/// Dropout masks for one call of a recurrent layer (Keras's `dropout` / `recurrent_dropout`):
/// drawn once per call by [`Recurrent::dropout_masks`] and used at every timestep, or given
/// by hand to [`Recurrent::forward_with_weights_dropout`] (e.g. fixed masks for a gradient
/// check). Each mask holds 0 (dropped) or `1 / (1 - rate)` (kept), as Keras's.
///
/// As Keras 3: SimpleRNN has at most one mask of each kind; LSTM and GRU have one input mask
/// shared by all gates while `recurrent_dropout` is 0 (Keras's `implementation=2`), and one
/// input and one recurrent mask per gate (gate order) when it is not (Keras switches to
/// `implementation=1` then).
#[derive(Debug, Clone, Default)]
pub struct RecurrentDropoutMasks {
    /// Masks `[B, features]` multiplying the input of every timestep: none, one, or one per gate.
    pub input: Vec<Tensor>,
    /// Masks `[B, units]` multiplying `h_{t-1}` in the recurrent projection: none, one, or one per gate.
    pub recurrent: Vec<Tensor>,
}

impl RecurrentDropoutMasks {
    /// Whether there is no mask at all (the plain forward).
    pub fn is_empty(&self) -> bool {
        self.input.is_empty() && self.recurrent.is_empty()
    }
}

/// Explicit weights for [`Recurrent::forward_with_weights`] and
/// [`crate::ConvLSTM::forward_with_weights`] (e.g. float64 Vars for a gradient check).
#[derive(Debug, Clone)]
pub struct RecurrentWeights {
    /// `[in, gates*units]` (ConvLSTM: `[..kernel_size, in, 4*filters]`).
    pub kernel: Var,
    /// `[units, gates*units]` (ConvLSTM: `[..kernel_size, filters, 4*filters]`).
    pub recurrent_kernel: Var,
    /// The bias in the cell's [`Cell::bias_shape`], when the layer uses one.
    pub bias: Option<Var>,
}

/// The hyper-parameters of a recurrent layer (its Keras config); `cell` holds the cell-specific ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "C: Cell")]
pub struct RecurrentConfig<C: Cell> {
    /// Size of the hidden state.
    pub units: usize,
    /// The output activation (default tanh).
    pub activation: Activation,
    /// Whether the layer has a bias.
    pub use_bias: bool,
    /// Return every hidden state `[B, T, units]` instead of the last `[B, units]`.
    pub return_sequences: bool,
    /// Also return the final states (see [`Recurrent::forward_with_state`]).
    pub return_state: bool,
    /// Process the input sequence backwards.
    pub go_backwards: bool,
    /// Carry the final states of each batch over as the initial states of the next batch
    /// (Keras's `stateful`, default false): sample `j` of a batch continues sample `j` of
    /// the previous one, so every batch must have the same size. See [`Recurrent::stateful`].
    #[serde(default)]
    pub stateful: bool,
    /// With a mask and `return_sequences`, output zeros at masked steps instead of the
    /// previous step's output (Keras's default, false).
    #[serde(default)]
    pub zero_output_for_mask: bool,
    /// Fraction of the input units dropped in training, in `[0, 1)` (Keras's `dropout`,
    /// default 0): one mask per call, the same at every timestep.
    #[serde(default)]
    pub dropout: f64,
    /// Fraction of the units of `h_{t-1}` dropped in the recurrent projection in training,
    /// in `[0, 1)` (Keras's `recurrent_dropout`, default 0): one mask per call, the same at
    /// every timestep; the time loop then runs step by step (no fused sequence kernel).
    #[serde(default)]
    pub recurrent_dropout: f64,
    /// Kernel initializer (default glorot_uniform).
    pub kernel_initializer: Initializer,
    /// Recurrent kernel initializer (default orthogonal).
    pub recurrent_initializer: Initializer,
    /// Bias initializer (default zeros).
    pub bias_initializer: Initializer,
    /// Kernel penalty.
    pub kernel_regularizer: Option<Regularizer>,
    /// Recurrent kernel penalty.
    pub recurrent_regularizer: Option<Regularizer>,
    /// Bias penalty.
    pub bias_regularizer: Option<Regularizer>,
    /// Kernel constraint, applied after every optimizer step (Keras's `kernel_constraint`).
    #[serde(default)]
    pub kernel_constraint: Option<crate::Constraint>,
    /// Recurrent kernel constraint, applied after every optimizer step (Keras's `recurrent_constraint`).
    #[serde(default)]
    pub recurrent_constraint: Option<crate::Constraint>,
    /// Bias constraint, applied after every optimizer step (Keras's `bias_constraint`).
    #[serde(default)]
    pub bias_constraint: Option<crate::Constraint>,
    /// Output penalty (Keras's `activity_regularizer`): the penalty of each batch's output
    /// divided by the batch size, added to the loss.
    #[serde(default)]
    pub activity_regularizer: Option<Regularizer>,
    /// Cell-specific settings (`recurrent_activation`, `unit_forget_bias`, `reset_after`).
    #[serde(flatten)]
    pub cell: C,
}

/// The `Layer` methods the recurrent layers share (`Recurrent` and `ConvLSTM`): built-ness
/// (`$built`, the field `build` sets), shapes, the forward passes with and without a mask,
/// mask propagation, the three weights, the config, the penalties and the constraints.
macro_rules! recurrent_layer_methods {
    ($built:ident) => {
        fn is_built(&self) -> bool {
            self.$built.is_some()
        }

        fn output_shape(&self, input_shape: &[usize]) -> $crate::Result<Vec<usize>> {
            self.out_shape(input_shape)
        }

        fn forward_logits(
            &self,
            x: &keel_autograd::Var,
            ctx: &mut $crate::layer::Ctx<'_>,
        ) -> $crate::Result<keel_autograd::Var> {
            Ok(self.forward_with_state(x, None, ctx)?.0)
        }

        fn supports_masking(&self) -> bool {
            true
        }

        /// Keras: the input's mask goes on with `return_sequences`, else none.
        fn compute_mask(
            &self,
            _xs: &[keel_autograd::Var],
            masks: &[Option<keel_tensor::Tensor>],
        ) -> $crate::Result<Option<keel_tensor::Tensor>> {
            Ok(if self.cfg.return_sequences { masks.first().cloned().flatten() } else { None })
        }

        fn forward_logits_masked(
            &self,
            xs: &[keel_autograd::Var],
            masks: &[Option<keel_tensor::Tensor>],
            ctx: &mut $crate::layer::Ctx<'_>,
        ) -> $crate::Result<keel_autograd::Var> {
            let [x] = xs else { return self.forward_logits_multi(xs, ctx) };
            let mask = masks.first().and_then(Option::as_ref);
            Ok(self.forward_with_mask(x, mask, None, ctx)?.0)
        }

        fn weights(&self) -> Vec<$crate::layer::Weight> {
            let mut w = Vec::new();
            if let Some(k) = &self.kernel {
                w.push($crate::layer::Weight::trainable("kernel", k));
            }
            if let Some(k) = &self.recurrent_kernel {
                w.push($crate::layer::Weight::trainable("recurrent_kernel", k));
            }
            if let Some(b) = &self.bias {
                w.push($crate::layer::Weight::trainable("bias", b));
            }
            w
        }

        fn config(&self) -> serde_json::Value {
            $crate::layer::with_name(&self.name, serde_json::to_value(&self.cfg).unwrap_or_default())
        }

        fn regularization_loss(&self, ctx: &$crate::layer::Ctx<'_>) -> $crate::Result<Option<keel_autograd::Var>> {
            crate::layer::penalties(
                ctx,
                &[
                    (&self.cfg.kernel_regularizer, &self.kernel),
                    (&self.cfg.recurrent_regularizer, &self.recurrent_kernel),
                    (&self.cfg.bias_regularizer, &self.bias),
                ],
            )
        }

        fn constraints(&self) -> Vec<(keel_autograd::Param, $crate::Constraint)> {
            $crate::layer::constraint_pairs(&[
                (&self.cfg.kernel_constraint, &self.kernel),
                (&self.cfg.recurrent_constraint, &self.recurrent_kernel),
                (&self.cfg.bias_constraint, &self.bias),
            ])
        }

        fn activity_regularizer(&self) -> Option<$crate::Regularizer> {
            self.cfg.activity_regularizer
        }
    };
}
pub(crate) use recurrent_layer_methods;

/// The inherent methods the recurrent layers share (`Recurrent` and `ConvLSTM`, each with a
/// `forward_with_mask`): `weight_vars` and `forward_with_state`. `$shapes` documents the
/// input and the states. Use inside the layer's `impl`.
macro_rules! recurrent_state_methods {
    ($shapes:literal) => {
        /// The layer's weights as Vars (tracked when `ctx` has a tape).
        fn weight_vars(&self, ctx: &Ctx<'_>) -> Result<$crate::RecurrentWeights> {
            Ok($crate::RecurrentWeights {
                kernel: ctx.param($crate::layer::built(&self.kernel, self)?)?,
                recurrent_kernel: ctx.param($crate::layer::built(&self.recurrent_kernel, self)?)?,
                bias: self.bias.as_ref().map(|b| ctx.param(b)).transpose()?,
            })
        }

        /// Run on `x` from `initial_state` (when `None`: zeros, or the states a `stateful`
        /// [`crate::Recurrent`] carries from its previous batch): returns the output (as
        /// [`Layer::forward`]) and the final states. This is Keras's `return_state=True`
        /// call, whatever the `return_state` flag says.
        #[doc = concat!("Shapes: ", $shapes, ".")]
        pub fn forward_with_state(
            &self,
            x: &Var,
            initial_state: Option<&[Var]>,
            ctx: &mut Ctx<'_>,
        ) -> Result<(Var, Vec<Var>)> {
            self.forward_with_mask(x, None, initial_state, ctx)
        }
    };
}
pub(crate) use recurrent_state_methods;

/// The builders the recurrent layers share (`Recurrent` and `ConvLSTM`): activation, bias,
/// outputs, direction, initializers, regularizers and constraints, each setting the `cfg` field of its
/// name. `$sequences` names the `return_sequences` output's shape, `$states` the method
/// that gives the states.
macro_rules! recurrent_builders {
    ($sequences:literal, $states:literal) => {
        /// Penalise the layer's output (Keras's `activity_regularizer`): the penalty of each
        /// batch's output divided by the batch size is added to the training and evaluation
        /// loss.
        pub fn activity_regularizer(mut self, r: $crate::Regularizer) -> Self {
            self.cfg.activity_regularizer = Some(r);
            self
        }

        /// Set the output activation (default tanh).
        pub fn activation(mut self, a: $crate::Activation) -> Self {
            self.cfg.activation = a;
            self
        }

        /// Use a bias or not.
        pub fn use_bias(mut self, yes: bool) -> Self {
            self.cfg.use_bias = yes;
            self
        }

        #[doc = concat!("Return every step's output, ", $sequences, ".")]
        pub fn return_sequences(mut self, yes: bool) -> Self {
            self.cfg.return_sequences = yes;
            self
        }

        #[doc = concat!("Mark the layer as returning its final states (read them with [`", $states, "`]).")]
        pub fn return_state(mut self, yes: bool) -> Self {
            self.cfg.return_state = yes;
            self
        }

        /// Process the sequence from the last timestep to the first.
        pub fn go_backwards(mut self, yes: bool) -> Self {
            self.cfg.go_backwards = yes;
            self
        }

        /// Set the kernel initializer.
        pub fn kernel_initializer(mut self, i: $crate::Initializer) -> Self {
            self.cfg.kernel_initializer = i;
            self
        }

        /// Set the recurrent kernel initializer.
        pub fn recurrent_initializer(mut self, i: $crate::Initializer) -> Self {
            self.cfg.recurrent_initializer = i;
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

        /// Penalise the recurrent kernel.
        pub fn recurrent_regularizer(mut self, r: $crate::Regularizer) -> Self {
            self.cfg.recurrent_regularizer = Some(r);
            self
        }

        /// Penalise the bias.
        pub fn bias_regularizer(mut self, r: $crate::Regularizer) -> Self {
            self.cfg.bias_regularizer = Some(r);
            self
        }

        $crate::layer::constraint_builders!(
            methods: kernel_constraint => "the kernel",
            recurrent_constraint => "the recurrent kernel",
            bias_constraint => "the bias",
        );
    };
}
pub(crate) use recurrent_builders;

/// A recurrent layer running cell `C` over `[batch, timesteps, features]`;
/// use it through the aliases [`crate::SimpleRNN`], [`crate::LSTM`], [`crate::GRU`].
pub struct Recurrent<C: Cell> {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: RecurrentConfig<C>,
    in_features: Option<usize>,
    kernel: Option<Param>,
    recurrent_kernel: Option<Param>,
    bias: Option<Param>,
    /// With `stateful`: the final states of the last batch (plain tensors, off the tape),
    /// `None` before the first batch and after [`Layer::reset_state`] (zero states, any batch size).
    states: Mutex<Option<Vec<Tensor>>>,
}

impl<C: Cell> Recurrent<C> {
    /// A layer with `units` and Keras's defaults (tanh, bias, glorot_uniform / orthogonal / zeros).
    pub fn new(units: usize) -> Self {
        Recurrent::from_config(RecurrentConfig {
            units,
            activation: Activation::Tanh,
            use_bias: true,
            return_sequences: false,
            return_state: false,
            go_backwards: false,
            stateful: false,
            zero_output_for_mask: false,
            dropout: 0.0,
            recurrent_dropout: 0.0,
            kernel_initializer: Initializer::GlorotUniform,
            recurrent_initializer: Initializer::orthogonal(),
            bias_initializer: Initializer::Zeros,
            kernel_regularizer: None,
            recurrent_regularizer: None,
            bias_regularizer: None,
            kernel_constraint: None,
            recurrent_constraint: None,
            bias_constraint: None,
            activity_regularizer: None,
            cell: C::default(),
        })
    }

    /// A layer from its config.
    pub fn from_config(cfg: RecurrentConfig<C>) -> Self {
        Recurrent {
            name: String::new(),
            input_shape: None,
            cfg,
            in_features: None,
            kernel: None,
            recurrent_kernel: None,
            bias: None,
            states: Mutex::new(None),
        }
    }

    /// An unbuilt copy with the same config and name (no weights shared).
    pub fn unbuilt_copy(&self) -> Self {
        let mut c = Recurrent::from_config(self.cfg.clone());
        c.name = self.name.clone();
        c.input_shape = self.input_shape.clone();
        c
    }

    /// Give the layer a name (else the model numbers it, Keras style).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Declare the per-sample input shape `[timesteps, features]` (first layer of a Sequential).
    pub fn input_shape(mut self, shape: impl Into<Vec<usize>>) -> Self {
        self.input_shape = Some(shape.into());
        self
    }

    recurrent_builders!("`[B, T, units]`", "Recurrent::forward_with_state");

    /// Drop a fraction `rate` (in `[0, 1)`) of the input units in training (Keras's
    /// `dropout`): one mask per call, the same at every timestep. A rate outside `[0, 1)`
    /// is an error at build (and at a forward pass).
    pub fn dropout(mut self, rate: f64) -> Self {
        self.cfg.dropout = rate;
        self
    }

    /// Drop a fraction `rate` (in `[0, 1)`) of the units of `h_{t-1}` in the recurrent
    /// projection in training (Keras's `recurrent_dropout`): one mask per call, the same at
    /// every timestep. A rate outside `[0, 1)` is an error at build (and at a forward pass).
    pub fn recurrent_dropout(mut self, rate: f64) -> Self {
        self.cfg.recurrent_dropout = rate;
        self
    }

    /// Carry the states over between batches (Keras's `stateful=True`): the final states
    /// of each call become the initial states of the next, so sample `j` of a batch
    /// continues sample `j` of the previous batch (train with `shuffle(false)`). The states
    /// are kept in the layer as plain tensors, off the tape (no gradient flows from one
    /// batch into the previous one), and follow the input to its device. The first batch
    /// (and the first after [`Layer::reset_state`]) starts from zeros and fixes the batch
    /// size: a batch of another size is an error until the states are reset. Training,
    /// evaluation and prediction all advance the states; nothing resets them but
    /// [`Layer::reset_state`] / `reset_state()` on the model (as Keras 3, whose `fit`,
    /// `evaluate` and `predict` never reset). An `initial_state` passed to
    /// [`Recurrent::forward_with_state`] is used instead of the stored states, and the
    /// final states are stored all the same (as Keras).
    pub fn stateful(mut self, yes: bool) -> Self {
        self.cfg.stateful = yes;
        self
    }

    /// The states a `stateful` layer carries into its next batch (`[h]`, or `[h, c]` for
    /// LSTM, each `[batch, units]`): `None` before the first batch, after
    /// [`Layer::reset_state`], and for a layer that is not stateful (each batch then starts
    /// from zeros).
    pub fn states(&self) -> Option<Vec<Tensor>> {
        self.lock_states().clone()
    }

    fn lock_states(&self) -> MutexGuard<'_, Option<Vec<Tensor>>> {
        self.states.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stored states as the initial states of a batch `x` (on its device and in its
    /// dtype), `None` when there are none; an error when `x`'s batch size is not theirs.
    fn carried_states(&self, x: &Var) -> Result<Option<Vec<Var>>> {
        let guard = self.lock_states();
        let Some(states) = guard.as_ref() else { return Ok(None) };
        let have = states.first().and_then(|s| s.dims().first().copied()).unwrap_or(0);
        let b = x.dims().first().copied().unwrap_or(0);
        if b != have {
            let class = self.cfg.cell.class_name();
            return Err(Error::config(
                format!("{class} \"{}\"", self.name),
                format!(
                    "the layer is stateful and holds the states of {have} sequences from the previous batch, but got a batch of {b}: \
                     sample j of a batch continues sample j of the previous one, so every batch must have {have} sequences \
                     (give fit / evaluate / predict batch_size {have} and a sample count divisible by it), \
                     or call reset_state() first to start over from zero states (the next batch then sets the batch size)"
                ),
            ));
        }
        let (device, dtype) = (x.device(), x.dtype());
        let vars = states
            .iter()
            .map(|s| Ok(Var::constant(s.to_device(&device)?.to_dtype(dtype)?)))
            .collect::<Result<Vec<Var>>>()?;
        Ok(Some(vars))
    }

    /// The config.
    pub fn get_config(&self) -> &RecurrentConfig<C> {
        &self.cfg
    }

    /// The config, mutable (change it before the layer is built).
    pub fn config_mut(&mut self) -> &mut RecurrentConfig<C> {
        &mut self.cfg
    }

    /// The number of units.
    pub fn units(&self) -> usize {
        self.cfg.units
    }

    /// The kernel `[in, gates*units]`, once built.
    pub fn kernel(&self) -> Option<&Param> {
        self.kernel.as_ref()
    }

    /// The recurrent kernel `[units, gates*units]`, once built.
    pub fn recurrent_kernel(&self) -> Option<&Param> {
        self.recurrent_kernel.as_ref()
    }

    /// The bias, once built (and when `use_bias`).
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    /// The per-sample output shape for `[timesteps, features]`.
    fn out_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        self.check_shape(input_shape)?;
        Ok(if self.cfg.return_sequences { vec![input_shape[0], self.cfg.units] } else { vec![self.cfg.units] })
    }

    fn check_shape(&self, input_shape: &[usize]) -> Result<usize> {
        match input_shape {
            [t, f] if *t > 0 && *f > 0 => Ok(*f),
            _ => Err(Error::IncompatibleInput {
                layer: self.name.clone(),
                class: self.cfg.cell.class_name(),
                expected: "a per-sample shape [timesteps, features] (input [batch, timesteps, features])".into(),
                got: input_shape.to_vec(),
            }),
        }
    }

    /// `dropout` and `recurrent_dropout` must be in `[0, 1)`.
    fn check_rates(&self) -> Result<()> {
        let class = self.cfg.cell.class_name();
        for (what, rate) in [("dropout", self.cfg.dropout), ("recurrent_dropout", self.cfg.recurrent_dropout)] {
            if !(0.0..1.0).contains(&rate) {
                return Err(Error::config(
                    format!("{class} \"{}\"", self.name),
                    format!("{what} must be in [0, 1) (a fraction of units to drop), got {rate}"),
                ));
            }
        }
        Ok(())
    }

    /// The dropout masks of one training call on a batch of `batch` sequences of `features`
    /// features, drawn from `ctx`'s seeded rng (see [`RecurrentDropoutMasks`] for how many);
    /// empty in inference or with both rates 0.
    pub fn dropout_masks(
        &self,
        batch: usize,
        features: usize,
        dtype: keel_tensor::DType,
        device: &keel_tensor::Device,
        ctx: &mut Ctx<'_>,
    ) -> Result<RecurrentDropoutMasks> {
        self.check_rates()?;
        let (p, rp) = (self.cfg.dropout, self.cfg.recurrent_dropout);
        let mut masks = RecurrentDropoutMasks::default();
        if !ctx.training || (p == 0.0 && rp == 0.0) {
            return Ok(masks);
        }
        // Keras: LSTM/GRU with recurrent dropout run implementation 1, one mask per gate
        let n = if rp > 0.0 { self.cfg.cell.gates() } else { 1 };
        if p > 0.0 {
            for _ in 0..n {
                masks.input.push(super::dropout::dropout_mask(&[batch, features], p, dtype, device, &self.name, ctx)?);
            }
        }
        if rp > 0.0 {
            for _ in 0..n {
                let m = super::dropout::dropout_mask(&[batch, self.cfg.units], rp, dtype, device, &self.name, ctx)?;
                masks.recurrent.push(m);
            }
        }
        Ok(masks)
    }

    recurrent_state_methods!("`x` `[B, T, in]`; the states are `[h]`, or `[h, c]` for LSTM, each `[B, units]`");

    /// [`Recurrent::forward_with_state`] skipping the steps where `mask` (`[B, T]`, nonzero:
    /// the step counts) is zero, as Keras's `layer(x, mask=mask)`: a masked step keeps the
    /// previous states, and with `return_sequences` outputs the previous output (zeros with
    /// `zero_output_for_mask`). A padded sequence thus ends with the state of its last real
    /// step. With a mask the time loop runs step by step (no fused sequence kernel).
    pub fn forward_with_mask(
        &self,
        x: &Var,
        mask: Option<&Tensor>,
        initial_state: Option<&[Var]>,
        ctx: &mut Ctx<'_>,
    ) -> Result<(Var, Vec<Var>)> {
        let w = self.weight_vars(ctx)?;
        if let Some(n) = self.in_features {
            if x.rank() != 3 || x.dims()[2] != n {
                return Err(Error::IncompatibleInput {
                    layer: self.name.clone(),
                    class: self.cfg.cell.class_name(),
                    expected: format!("a batch [batch, timesteps, {n}]"),
                    got: x.dims().get(1..).unwrap_or(&[]).to_vec(),
                });
            }
        }
        let (b, f) = (x.dims().first().copied().unwrap_or(0), x.dims().get(2).copied().unwrap_or(0));
        let carried = if self.cfg.stateful { self.carried_states(x)? } else { None };
        let drop = self.dropout_masks(b, f, x.dtype(), &x.device(), ctx)?;
        let (y, states) = self.run(x, &w, initial_state.or(carried.as_deref()), mask, &drop)?;
        if self.cfg.stateful {
            // Keras assigns the final states to its state variables: values, off the tape
            *self.lock_states() = Some(states.iter().map(|s| s.value().clone()).collect());
        }
        Ok((y, states))
    }

    /// [`Recurrent::forward_with_state`] with explicit weights instead of the
    /// layer's own (the layer need not be built): the pure function of the
    /// layer, for gradient checks or weight sharing.
    pub fn forward_with_weights(
        &self,
        x: &Var,
        w: &RecurrentWeights,
        initial_state: Option<&[Var]>,
    ) -> Result<(Var, Vec<Var>)> {
        self.run(x, w, initial_state, None, &RecurrentDropoutMasks::default())
    }

    /// [`Recurrent::forward_with_weights`] with an optional timestep mask (see
    /// [`Recurrent::forward_with_mask`]).
    pub fn forward_with_weights_masked(
        &self,
        x: &Var,
        w: &RecurrentWeights,
        initial_state: Option<&[Var]>,
        mask: Option<&Tensor>,
    ) -> Result<(Var, Vec<Var>)> {
        self.run(x, w, initial_state, mask, &RecurrentDropoutMasks::default())
    }

    /// [`Recurrent::forward_with_weights_masked`] with the given dropout masks (a training
    /// call with those masks; see [`RecurrentDropoutMasks`]), e.g. fixed masks for a
    /// gradient check. The layer's own rates are not consulted.
    pub fn forward_with_weights_dropout(
        &self,
        x: &Var,
        w: &RecurrentWeights,
        initial_state: Option<&[Var]>,
        mask: Option<&Tensor>,
        drop: &RecurrentDropoutMasks,
    ) -> Result<(Var, Vec<Var>)> {
        self.run(x, w, initial_state, mask, drop)
    }

    /// The time loop of every forward form.
    fn run(
        &self,
        x: &Var,
        w: &RecurrentWeights,
        initial_state: Option<&[Var]>,
        mask: Option<&Tensor>,
        drop: &RecurrentDropoutMasks,
    ) -> Result<(Var, Vec<Var>)> {
        let cell = &self.cfg.cell;
        let units = self.cfg.units;
        let g = cell.gates() * units;
        let bad = |msg: String| Error::IncompatibleInput {
            layer: self.name.clone(),
            class: cell.class_name(),
            expected: msg,
            got: x.dims().to_vec(),
        };
        let &[b, t, f] = x.dims() else {
            return Err(bad("an input [batch, timesteps, features] (this is the full shape)".into()));
        };
        if t == 0 {
            return Err(bad("at least one timestep".into()));
        }
        // the mask as 0/1 on the input's device
        let keep = match mask {
            None => None,
            Some(m) if m.dims() == [b, t] => Some(m.ne(&m.scalar_like(0.0)?)?.to_device(&x.device())?),
            Some(m) => {
                return Err(bad(format!(
                    "a mask [{b}, {t}] (batch, timesteps) for an input [{b}, {t}, {f}], got a mask {:?}",
                    m.dims()
                )))
            }
        };
        if w.kernel.dims() != [f, g] || w.recurrent_kernel.dims() != [units, g] {
            return Err(Error::config(
                format!("{} \"{}\"", cell.class_name(), self.name),
                format!(
                    "kernel {:?} / recurrent kernel {:?} do not fit input features {f} and units {units} (need [{f}, {g}] and [{units}, {g}])",
                    w.kernel.dims(),
                    w.recurrent_kernel.dims()
                ),
            ));
        }
        if let Some(bias) = &w.bias {
            if bias.dims() != cell.bias_shape(units).as_slice() {
                return Err(Error::config(
                    format!("{} \"{}\"", cell.class_name(), self.name),
                    format!("bias {:?}, expected {:?}", bias.dims(), cell.bias_shape(units)),
                ));
            }
        }
        let k = cell.gates();
        let counts_ok = |n: usize| n == 0 || n == 1 || n == k;
        if !counts_ok(drop.input.len())
            || !counts_ok(drop.recurrent.len())
            || drop.input.iter().any(|m| m.dims() != [b, f])
            || drop.recurrent.iter().any(|m| m.dims() != [b, units])
        {
            let shapes = |ms: &[Tensor]| ms.iter().map(|m| m.dims().to_vec()).collect::<Vec<_>>();
            return Err(bad(format!(
                "dropout masks: 0, 1 or {k} input masks [{b}, {f}] and 0, 1 or {k} recurrent masks [{b}, {units}], got input {:?} and recurrent {:?}",
                shapes(&drop.input),
                shapes(&drop.recurrent)
            )));
        }
        // a mask [B, f] multiplying every timestep's input: [B, 1, f] broadcast over time
        let on_time = |m: &Tensor| -> Result<Var> {
            Ok(Var::constant(m.to_device(&x.device())?.reshape([b, 1, f])?.to_dtype(x.dtype())?))
        };
        // All input projections in one matmul (the bias in its epilogue where the backend can);
        // with per-gate input dropout masks, one matmul per gate.
        let proj = if drop.input.len() > 1 {
            let blocks = gate_blocks(&w.kernel, k, units)?;
            let parts = blocks
                .iter()
                .zip(&drop.input)
                .map(|(wk, m)| Ok(x.mul(&on_time(m)?)?.reshape([b * t, f])?.matmul(wk)?))
                .collect::<Result<Vec<Var>>>()?;
            let refs: Vec<&Var> = parts.iter().collect();
            let p = Var::concat(&refs, -1)?;
            match &w.bias {
                Some(bias) => p.add(&cell.input_bias(bias)?)?,
                None => p,
            }
        } else {
            let xd = match drop.input.first() {
                Some(m) => x.mul(&on_time(m)?)?,
                None => x.clone(),
            };
            let x2 = xd.reshape([b * t, f])?;
            match &w.bias {
                Some(bias) => x2.matmul_bias(&w.kernel, &cell.input_bias(bias)?)?,
                None => x2.matmul(&w.kernel)?,
            }
        };
        let proj = proj.reshape([b, t, g])?;
        let recurrent_masks = drop
            .recurrent
            .iter()
            .map(|m| Ok(Var::constant(m.to_device(&x.device())?.to_dtype(x.dtype())?)))
            .collect::<Result<Vec<Var>>>()?;
        let mut states: Vec<Var> = match initial_state {
            Some(s) => {
                if s.len() != cell.state_count() || s.iter().any(|v| v.dims() != [b, units]) {
                    return Err(bad(format!("{} initial state(s) of shape [{b}, {units}]", cell.state_count())));
                }
                s.to_vec()
            }
            None => {
                let z = Var::constant(Tensor::zeros([b, units], x.dtype(), &x.device())?);
                vec![z; cell.state_count()]
            }
        };
        let recurrent_bias = match &w.bias {
            Some(bias) => cell.recurrent_bias(bias)?,
            None => None,
        };
        let sw = StepWeights {
            units,
            activation: self.cfg.activation,
            recurrent_kernel: &w.recurrent_kernel,
            bias: w.bias.as_ref(),
            recurrent_bias: recurrent_bias.as_ref(),
            recurrent_masks: &recurrent_masks,
        };
        if keep.is_none() && recurrent_masks.is_empty() {
            if let Some((seq, states)) = cell.sequence(&sw, &proj, &states, self.cfg.go_backwards)? {
                let out = if self.cfg.return_sequences { seq } else { states[0].clone() };
                return Ok((out, states));
            }
        }
        let steps: Vec<Var> = if t == 1 { vec![proj] } else { proj.split(&vec![1; t], 1)? };
        let mut outputs = Vec::with_capacity(if self.cfg.return_sequences { t } else { 0 });
        for i in 0..t {
            let ti = if self.cfg.go_backwards { t - 1 - i } else { i };
            let xp = steps[ti].squeeze(1)?;
            let new = cell.step(&sw, &xp, &states)?;
            let Some(keep) = &keep else {
                states = new;
                if self.cfg.return_sequences {
                    outputs.push(states[0].clone());
                }
                continue;
            };
            // a masked step keeps the previous states (Keras's `rnn` with a mask)
            let m = keep.narrow(1, ti, 1)?; // [B, 1]
            states = new
                .iter()
                .zip(&states)
                .map(|(n, o)| Var::where_cond(&m, n, o))
                .collect::<std::result::Result<_, _>>()?;
            if self.cfg.return_sequences {
                outputs.push(if self.cfg.zero_output_for_mask {
                    let zero = Var::constant(states[0].value().scalar_like(0.0)?);
                    Var::where_cond(&m, &states[0], &zero)?
                } else {
                    states[0].clone()
                });
            }
        }
        let out = if self.cfg.return_sequences {
            let refs: Vec<&Var> = outputs.iter().collect();
            Var::stack(&refs, 1)?
        } else {
            states[0].clone()
        };
        Ok((out, states))
    }
}

/// The `units`-wide column blocks of `v` (`[B, k*units]` -> k Vars `[B, units]`), as one op.
pub(crate) fn gate_blocks(v: &Var, k: usize, units: usize) -> Result<Vec<Var>> {
    if k == 1 {
        return Ok(vec![v.clone()]);
    }
    Ok(v.split(&vec![units; k], -1)?)
}

impl<C: Cell> Layer for Recurrent<C> {
    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn class_name(&self) -> &'static str {
        self.cfg.cell.class_name()
    }

    fn declared_input_shape(&self) -> Option<Vec<usize>> {
        self.input_shape.clone()
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<()> {
        let f = self.check_shape(input_shape)?;
        let (u, cell) = (self.cfg.units, &self.cfg.cell);
        if u == 0 {
            return Err(Error::config(format!("{} \"{}\"", cell.class_name(), self.name), "units must be >= 1"));
        }
        self.check_rates()?;
        if let Some(have) = self.in_features {
            if have == f {
                return Ok(());
            }
            return Err(Error::IncompatibleInput {
                layer: self.name.clone(),
                class: cell.class_name(),
                expected: format!("features {have} (the layer is already built)"),
                got: input_shape.to_vec(),
            });
        }
        let g = cell.gates() * u;
        self.kernel = Some(Param::new(self.cfg.kernel_initializer.sample(&[f, g], rng)?));
        self.recurrent_kernel = Some(Param::new(self.cfg.recurrent_initializer.sample(&[u, g], rng)?));
        if self.cfg.use_bias {
            self.bias = Some(Param::new(cell.init_bias(u, &self.cfg.bias_initializer, rng)?));
        }
        self.in_features = Some(f);
        Ok(())
    }

    /// Forget the carried states (Keras's `reset_state()`): the next batch starts from zeros
    /// and may have any size. Nothing happens for a layer that is not stateful.
    fn reset_state(&self) {
        *self.lock_states() = None;
    }

    recurrent_layer_methods!(in_features);
}
