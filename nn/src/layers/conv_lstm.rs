//! [`ConvLSTM2D`] and [`ConvLSTM1D`]: the LSTM with convolutions in place of its matmuls
//! (Shi et al. 2015), as Keras computes it (channels_last).
//!
//! Input `[batch, timesteps, rows, cols, channels]` (1-D: `[batch, timesteps, steps, channels]`).
//! With `z = conv(x_t, W) + b + conv(h_{t-1}, U)` split along the channels into Keras's gate
//! blocks `i, f, c, o`: `i = σ(z_i)`, `f = σ(z_f)`, `c_t = f c_{t-1} + i tanh(z_c)`,
//! `o = σ(z_o)`, `h_t = o tanh(c_t)` (σ the recurrent activation, tanh the activation). The
//! input convolution uses the layer's strides, padding and dilation; the recurrent one always
//! stride 1, `same` padding and no dilation (Keras), so the states keep the input
//! convolution's output size.
//!
//! It composes the tape's ops, so it runs wherever they do (CUDA included): the input
//! convolution of all timesteps is one conv2d over `[batch * timesteps, ..]`; each step is one
//! recurrent conv2d and, with the default activations, the fused LSTM gate op
//! ([`Var::lstm_cell`], over every pixel as a row). The 1-D layer is the 2-D one on images of
//! height 1, its kernels viewed as `[1, k, ..]`.
//!
//! Outputs, states, `go_backwards` and masks follow [`crate::LSTM`]:
//! [`ConvLSTM::forward_with_state`] gives the final `[h, c]` (each `[batch, rows', cols',
//! filters]`), a timestep mask (`[batch, timesteps]`) skips the masked steps.
//! Not supported: dropout, recurrent dropout, `stateful`, `channels_first` (the loader refuses
//! such configs).
//!
//! ```
//! use keel_nn::prelude::*;
//!
//! # fn main() -> keel_nn::Result<()> {
//! let mut model = Sequential::new();
//! // 10 frames of 16 x 16 RGB -> 10 maps of 16 x 16 x 8, then the last frame's 8 x 8 x 4
//! model.add(ConvLSTM2D::new(8, 3).padding(Padding::Same).return_sequences(true).input_shape([10, 16, 16, 3]));
//! model.add(ConvLSTM2D::new(4, 3).strides(2).padding(Padding::Same));
//! assert_eq!(model.output_shapes()?, vec![vec![8, 8, 4]]);
//! assert_eq!(model.count_params(), 4 * 8 * (9 * (3 + 8) + 1) + 4 * 4 * (9 * (8 + 4) + 1));
//! # Ok(())
//! # }
//! ```

use super::recurrent::{gate_blocks, recurrent_builders, recurrent_layer_methods, recurrent_state_methods, Cell};
use crate::layer::{describe, Ctx, IntoPair, Layer};
use crate::layers::padding_serde;
use crate::{Activation, Error, Initializer, LSTMCell, RecurrentWeights, Regularizer, Result};
use keel_autograd::{Param, Var};
use keel_tensor::ops::conv::conv_out_dim;
use keel_tensor::rng::Rng;
use keel_tensor::{Padding, Tensor};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

/// The window of a ConvLSTM layer of one rank (Keras's `kernel_size`, `strides` and
/// `dilation_rate`): [`Window2D`] for [`ConvLSTM2D`], [`Window1D`] for [`ConvLSTM1D`].
pub trait ConvLSTMWindow: Clone + Debug + PartialEq + Send + Sync + Serialize + DeserializeOwned + 'static {
    /// The Keras class name of the layer ("ConvLSTM2D").
    fn class_name(&self) -> &'static str;

    /// The number of spatial axes (2 or 1).
    fn rank(&self) -> usize;

    /// The window as Keras writes it (`kernel_size`, one entry per spatial axis).
    fn kernel_size(&self) -> Vec<usize>;

    /// `[kernel_size, strides, dilation_rate]` as `(height, width)` pairs of the 2-D
    /// convolution that runs it (1-D: height 1).
    fn pairs(&self) -> [(usize, usize); 3];
}

/// The window of [`ConvLSTM2D`]: `(rows, cols)` pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window2D {
    /// Window `(rows, cols)`.
    pub kernel_size: (usize, usize),
    /// Strides of the input convolution.
    pub strides: (usize, usize),
    /// Dilation of the input convolution.
    pub dilation_rate: (usize, usize),
}

/// The window of [`ConvLSTM1D`]: one number each (written as one-element lists, as Keras).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window1D {
    /// Window length.
    #[serde(with = "crate::layers::one_serde")]
    pub kernel_size: usize,
    /// Stride of the input convolution.
    #[serde(with = "crate::layers::one_serde")]
    pub strides: usize,
    /// Dilation of the input convolution.
    #[serde(with = "crate::layers::one_serde")]
    pub dilation_rate: usize,
}

impl ConvLSTMWindow for Window2D {
    fn class_name(&self) -> &'static str {
        "ConvLSTM2D"
    }

    fn rank(&self) -> usize {
        2
    }

    fn kernel_size(&self) -> Vec<usize> {
        vec![self.kernel_size.0, self.kernel_size.1]
    }

    fn pairs(&self) -> [(usize, usize); 3] {
        [self.kernel_size, self.strides, self.dilation_rate]
    }
}

impl ConvLSTMWindow for Window1D {
    fn class_name(&self) -> &'static str {
        "ConvLSTM1D"
    }

    fn rank(&self) -> usize {
        1
    }

    fn kernel_size(&self) -> Vec<usize> {
        vec![self.kernel_size]
    }

    fn pairs(&self) -> [(usize, usize); 3] {
        [(1, self.kernel_size), (1, self.strides), (1, self.dilation_rate)]
    }
}

/// The hyper-parameters of a ConvLSTM layer (its Keras config); `window` holds the
/// rank-specific `kernel_size`, `strides` and `dilation_rate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "W: ConvLSTMWindow")]
pub struct ConvLSTMConfig<W: ConvLSTMWindow> {
    /// Channels of the states and the output.
    pub filters: usize,
    /// `kernel_size`, `strides`, `dilation_rate`.
    #[serde(flatten)]
    pub window: W,
    /// Padding of the input convolution, `valid` or `same` (the recurrent one is always `same`).
    #[serde(with = "padding_serde")]
    pub padding: Padding,
    /// The output activation (default tanh).
    pub activation: Activation,
    /// The gate activation (default sigmoid).
    pub recurrent_activation: Activation,
    /// Whether the layer has a bias.
    pub use_bias: bool,
    /// Initialise the forget-gate bias to ones (Keras default true).
    pub unit_forget_bias: bool,
    /// Return every step's `h` `[B, T, .., filters]` instead of the last.
    pub return_sequences: bool,
    /// Also return the final states (see [`ConvLSTM::forward_with_state`]).
    pub return_state: bool,
    /// Process the input sequence backwards.
    pub go_backwards: bool,
    /// With a mask and `return_sequences`, output zeros at masked steps instead of the
    /// previous step's output (Keras's default, false).
    #[serde(default)]
    pub zero_output_for_mask: bool,
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
}

/// A convolutional LSTM over `[batch, timesteps, ..spatial, channels]`; use it through the
/// aliases [`ConvLSTM2D`] and [`ConvLSTM1D`].
pub struct ConvLSTM<W: ConvLSTMWindow> {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: ConvLSTMConfig<W>,
    in_channels: Option<usize>,
    kernel: Option<Param>,
    recurrent_kernel: Option<Param>,
    bias: Option<Param>,
}

/// Keras's `ConvLSTM2D(filters, kernel_size)`: input `[batch, timesteps, rows, cols,
/// channels]`, kernel `[kh, kw, channels, 4*filters]`, recurrent kernel `[kh, kw, filters,
/// 4*filters]`, bias `[4*filters]`, gate order i, f, c, o; states `[h, c]`, each
/// `[batch, rows', cols', filters]`.
pub type ConvLSTM2D = ConvLSTM<Window2D>;

/// Keras's `ConvLSTM1D(filters, kernel_size)`: input `[batch, timesteps, steps, channels]`,
/// kernel `[k, channels, 4*filters]`, recurrent kernel `[k, filters, 4*filters]`, bias
/// `[4*filters]`; states `[h, c]`, each `[batch, steps', filters]`.
pub type ConvLSTM1D = ConvLSTM<Window1D>;

impl ConvLSTM<Window2D> {
    /// `filters` state channels with window `kernel_size` and Keras's defaults (stride 1,
    /// valid padding, tanh / sigmoid, bias with unit forget bias, glorot_uniform / orthogonal /
    /// zeros).
    pub fn new(filters: usize, kernel_size: impl IntoPair) -> Self {
        let window = Window2D { kernel_size: kernel_size.into_pair(), strides: (1, 1), dilation_rate: (1, 1) };
        ConvLSTM::from_config(ConvLSTMConfig::defaults(filters, window))
    }

    /// Set the strides of the input convolution.
    pub fn strides(mut self, s: impl IntoPair) -> Self {
        self.cfg.window.strides = s.into_pair();
        self
    }

    /// Set the dilation rate of the input convolution.
    pub fn dilation_rate(mut self, d: impl IntoPair) -> Self {
        self.cfg.window.dilation_rate = d.into_pair();
        self
    }
}

impl ConvLSTM<Window1D> {
    /// `filters` state channels with windows of `kernel_size` steps and Keras's defaults (see
    /// [`ConvLSTM2D::new`]).
    pub fn new(filters: usize, kernel_size: usize) -> Self {
        let window = Window1D { kernel_size, strides: 1, dilation_rate: 1 };
        ConvLSTM::from_config(ConvLSTMConfig::defaults(filters, window))
    }

    /// Set the stride of the input convolution.
    pub fn strides(mut self, s: usize) -> Self {
        self.cfg.window.strides = s;
        self
    }

    /// Set the dilation rate of the input convolution.
    pub fn dilation_rate(mut self, d: usize) -> Self {
        self.cfg.window.dilation_rate = d;
        self
    }
}

impl<W: ConvLSTMWindow> ConvLSTMConfig<W> {
    /// Keras's defaults for `filters` and `window`.
    fn defaults(filters: usize, window: W) -> Self {
        ConvLSTMConfig {
            filters,
            window,
            padding: Padding::Valid,
            activation: Activation::Tanh,
            recurrent_activation: Activation::Sigmoid,
            use_bias: true,
            unit_forget_bias: true,
            return_sequences: false,
            return_state: false,
            go_backwards: false,
            zero_output_for_mask: false,
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
        }
    }
}

impl<W: ConvLSTMWindow> ConvLSTM<W> {
    /// A layer from its config.
    pub fn from_config(cfg: ConvLSTMConfig<W>) -> Self {
        ConvLSTM {
            name: String::new(),
            input_shape: None,
            cfg,
            in_channels: None,
            kernel: None,
            recurrent_kernel: None,
            bias: None,
        }
    }

    /// Give the layer a name (else the model numbers it, Keras style).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Declare the per-sample input shape `[timesteps, ..spatial, channels]` (first layer of a
    /// Sequential).
    pub fn input_shape(mut self, shape: impl Into<Vec<usize>>) -> Self {
        self.input_shape = Some(shape.into());
        self
    }

    /// Set the padding of the input convolution (`Padding::Valid`, the default, or `Padding::Same`).
    pub fn padding(mut self, p: Padding) -> Self {
        self.cfg.padding = p;
        self
    }

    recurrent_builders!("`[B, T, .., filters]`", "ConvLSTM::forward_with_state");

    /// Set the gate activation (default sigmoid).
    pub fn recurrent_activation(mut self, a: Activation) -> Self {
        self.cfg.recurrent_activation = a;
        self
    }

    /// Initialise the forget-gate bias to ones (default true).
    pub fn unit_forget_bias(mut self, yes: bool) -> Self {
        self.cfg.unit_forget_bias = yes;
        self
    }

    /// The config.
    pub fn get_config(&self) -> &ConvLSTMConfig<W> {
        &self.cfg
    }

    /// The config, mutable (change it before the layer is built).
    pub fn config_mut(&mut self) -> &mut ConvLSTMConfig<W> {
        &mut self.cfg
    }

    /// The kernel `[..kernel_size, channels, 4*filters]`, once built.
    pub fn kernel(&self) -> Option<&Param> {
        self.kernel.as_ref()
    }

    /// The recurrent kernel `[..kernel_size, filters, 4*filters]`, once built.
    pub fn recurrent_kernel(&self) -> Option<&Param> {
        self.recurrent_kernel.as_ref()
    }

    /// The bias `[4*filters]`, once built (and when `use_bias`).
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    fn bad_input(&self, expected: String, got: &[usize]) -> Error {
        Error::IncompatibleInput {
            layer: self.name.clone(),
            class: self.cfg.window.class_name(),
            expected,
            got: got.to_vec(),
        }
    }

    /// `"[timesteps, rows, cols, channels]"` (or the 1-D form).
    fn layout(&self) -> &'static str {
        if self.cfg.window.rank() == 2 {
            "[timesteps, rows, cols, channels]"
        } else {
            "[timesteps, steps, channels]"
        }
    }

    /// The settings Keras refuses: no filters, a zero window / stride / dilation, strides and
    /// dilation both above 1.
    fn check_config(&self) -> Result<()> {
        let bad = |msg: String| Error::config(describe(self), msg);
        if self.cfg.filters == 0 {
            return Err(bad("filters must be >= 1".into()));
        }
        let [k, s, d] = self.cfg.window.pairs();
        if [k, s, d].iter().any(|p| p.0 == 0 || p.1 == 0) {
            return Err(bad(format!(
                "kernel_size, strides and dilation_rate must be >= 1 (got {k:?}, {s:?}, {d:?} as (rows, cols))"
            )));
        }
        if s.0.max(s.1) > 1 && d.0.max(d.1) > 1 {
            return Err(bad(format!(
                "strides > 1 cannot be combined with dilation_rate > 1 (as in Keras); got strides {s:?} and \
                 dilation_rate {d:?}: set one of them to 1"
            )));
        }
        Ok(())
    }

    /// The spatial size of the states for per-sample input `input_shape` (checked:
    /// `[timesteps, ..spatial, channels]`, no empty axis, the window fits).
    fn state_spatial(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let r = self.cfg.window.rank();
        if input_shape.len() != r + 2 || input_shape.contains(&0) {
            return Err(self.bad_input(
                format!(
                    "a per-sample shape {} (rank {}, no empty axis; the batch is [batch, {}])",
                    self.layout(),
                    r + 2,
                    &self.layout()[1..]
                ),
                input_shape,
            ));
        }
        self.check_config()?;
        let [k, s, d] = self.cfg.window.pairs();
        let lifted: Vec<(usize, usize, usize, usize)> = if r == 2 {
            vec![(input_shape[1], k.0, s.0, d.0), (input_shape[2], k.1, s.1, d.1)]
        } else {
            vec![(input_shape[1], k.1, s.1, d.1)]
        };
        lifted
            .into_iter()
            .map(|(n, k, s, d)| {
                conv_out_dim(self.cfg.window.class_name(), n, k, s, d, self.cfg.padding)
                    .map(|(o, _)| o)
                    .map_err(|e| self.bad_input(format!("frames large enough for the window ({e})"), input_shape))
            })
            .collect()
    }

    /// The per-sample output shape for `[timesteps, ..spatial, channels]`.
    fn out_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let mut out = self.state_spatial(input_shape)?;
        out.push(self.cfg.filters);
        if self.cfg.return_sequences {
            out.insert(0, input_shape[0]);
        }
        Ok(out)
    }

    recurrent_state_methods!(
        "`x` `[B, T, ..spatial, channels]`; the states are `[h, c]`, each `[B, ..spatial', filters]`"
    );

    /// [`ConvLSTM::forward_with_state`] skipping the steps where `mask` (`[B, T]`, nonzero:
    /// the step counts) is zero, as Keras's `layer(x, mask=mask)`: a masked step keeps the
    /// previous states, and with `return_sequences` outputs the previous output (zeros with
    /// `zero_output_for_mask`).
    pub fn forward_with_mask(
        &self,
        x: &Var,
        mask: Option<&Tensor>,
        initial_state: Option<&[Var]>,
        ctx: &mut Ctx<'_>,
    ) -> Result<(Var, Vec<Var>)> {
        let w = self.weight_vars(ctx)?;
        if let Some(c) = self.in_channels {
            if x.dims().len() != self.cfg.window.rank() + 3 || x.dims().last() != Some(&c) {
                return Err(self.bad_input(
                    format!("a batch [batch, {} with {c} channels (the layer is built for them)", &self.layout()[1..]),
                    x.dims().get(1..).unwrap_or(&[]),
                ));
            }
        }
        self.run(x, &w, initial_state, mask)
    }

    /// [`ConvLSTM::forward_with_mask`] with explicit weights (in the layer's shapes) instead
    /// of the layer's own (the layer need not be built): the pure function of the layer, for
    /// gradient checks or weight sharing.
    pub fn forward_with_weights(
        &self,
        x: &Var,
        w: &RecurrentWeights,
        initial_state: Option<&[Var]>,
        mask: Option<&Tensor>,
    ) -> Result<(Var, Vec<Var>)> {
        self.run(x, w, initial_state, mask)
    }

    /// The time loop of every forward form.
    fn run(
        &self,
        x: &Var,
        w: &RecurrentWeights,
        initial_state: Option<&[Var]>,
        mask: Option<&Tensor>,
    ) -> Result<(Var, Vec<Var>)> {
        let cfg = &self.cfg;
        let r = cfg.window.rank();
        let dims = x.dims().to_vec();
        if dims.len() != r + 3 {
            return Err(self.bad_input(
                format!("an input [batch, {} (rank {}; this is the full shape)", &self.layout()[1..], r + 3),
                &dims,
            ));
        }
        let spatial_out = self.state_spatial(&dims[1..])?;
        let (b, t, c, f) = (dims[0], dims[1], dims[r + 2], cfg.filters);
        let g = 4 * f;
        // the 2-D problem: frames [h, w, c] -> states [oh, ow, f] (1-D: height 1)
        let (h, wd) = if r == 2 { (dims[2], dims[3]) } else { (1, dims[2]) };
        let (oh, ow) = if r == 2 { (spatial_out[0], spatial_out[1]) } else { (1, spatial_out[0]) };
        let [(kh, kw), strides, dilation] = cfg.window.pairs();
        let ks = cfg.window.kernel_size();
        let want_k: Vec<usize> = ks.iter().copied().chain([c, g]).collect();
        let want_rk: Vec<usize> = ks.iter().copied().chain([f, g]).collect();
        if w.kernel.dims() != want_k.as_slice() || w.recurrent_kernel.dims() != want_rk.as_slice() {
            return Err(Error::config(
                describe(self),
                format!(
                    "kernel {:?} / recurrent kernel {:?} do not fit {c} input channels and {f} filters (need {want_k:?} \
                     and {want_rk:?})",
                    w.kernel.dims(),
                    w.recurrent_kernel.dims()
                ),
            ));
        }
        if let Some(bias) = &w.bias {
            if bias.dims() != [g] {
                return Err(Error::config(describe(self), format!("bias {:?}, expected [{g}]", bias.dims())));
            }
        }
        // the mask as 0/1 on the input's device
        let keep = match mask {
            None => None,
            Some(m) if m.dims() == [b, t] => Some(m.ne(&m.scalar_like(0.0)?)?.to_device(&x.device())?),
            Some(m) => {
                return Err(self.bad_input(
                    format!("a mask [{b}, {t}] (batch, timesteps) for an input {dims:?}, got a mask {:?}", m.dims()),
                    &dims[1..],
                ))
            }
        };
        let (k4, rk4) = if r == 2 {
            (w.kernel.clone(), w.recurrent_kernel.clone())
        } else {
            (w.kernel.reshape([kh, kw, c, g])?, w.recurrent_kernel.reshape([kh, kw, f, g])?)
        };
        // every timestep's input convolution at once
        let proj = x.reshape([b * t, h, wd, c])?.conv2d(&k4, strides, cfg.padding, dilation)?;
        let proj = match &w.bias {
            Some(bias) => proj.add(bias)?,
            None => proj,
        };
        let proj = proj.reshape([b, t, oh, ow, g])?;
        let state_dims: Vec<usize> = [b].into_iter().chain(spatial_out.iter().copied()).chain([f]).collect();
        let mut states: Vec<Var> = match initial_state {
            Some(s) => {
                if s.len() != 2 || s.iter().any(|v| v.dims() != state_dims.as_slice()) {
                    return Err(self.bad_input(
                        format!(
                            "2 initial states [h, c] of shape {state_dims:?}, got {:?}",
                            s.iter().map(|v| v.dims().to_vec()).collect::<Vec<_>>()
                        ),
                        &dims[1..],
                    ));
                }
                s.iter().map(|v| v.reshape([b, oh, ow, f])).collect::<std::result::Result<_, _>>()?
            }
            None => vec![Var::constant(Tensor::zeros([b, oh, ow, f], x.dtype(), &x.device())?); 2],
        };
        let steps: Vec<Var> = if t == 1 { vec![proj] } else { proj.split(&vec![1; t], 1)? };
        let mut outputs = Vec::with_capacity(if cfg.return_sequences { t } else { 0 });
        for i in 0..t {
            let ti = if cfg.go_backwards { t - 1 - i } else { i };
            let z = steps[ti].squeeze(1)?.add(&states[0].conv2d(&rk4, (1, 1), Padding::Same, (1, 1))?)?;
            let new = self.gates(&z, &states[1], [b, oh, ow, f])?;
            let Some(keep) = &keep else {
                states = new;
                if cfg.return_sequences {
                    outputs.push(states[0].clone());
                }
                continue;
            };
            // a masked step keeps the previous states (Keras's `rnn` with a mask)
            let m = keep.narrow(1, ti, 1)?.reshape([b, 1, 1, 1])?;
            states = new
                .iter()
                .zip(&states)
                .map(|(n, o)| Var::where_cond(&m, n, o))
                .collect::<std::result::Result<_, _>>()?;
            if cfg.return_sequences {
                outputs.push(if cfg.zero_output_for_mask {
                    let zero = Var::constant(states[0].value().scalar_like(0.0)?);
                    Var::where_cond(&m, &states[0], &zero)?
                } else {
                    states[0].clone()
                });
            }
        }
        let out = if cfg.return_sequences {
            let refs: Vec<&Var> = outputs.iter().collect();
            Var::stack(&refs, 1)?
        } else {
            states[0].clone()
        };
        if r == 2 {
            return Ok((out, states));
        }
        // back to the 1-D shapes
        let out = if cfg.return_sequences { out.reshape([b, t, ow, f])? } else { out.reshape([b, ow, f])? };
        let states = states.iter().map(|s| s.reshape([b, ow, f])).collect::<std::result::Result<_, _>>()?;
        Ok((out, states))
    }

    /// The LSTM gate math on pre-activations `z` (`[..state, 4*filters]`) and the previous
    /// cell state `c` (`state` = `[B, oh, ow, filters]`): `[h, c]`. With the default
    /// activations one fused op over every pixel as a row.
    fn gates(&self, z: &Var, c: &Var, state: [usize; 4]) -> Result<Vec<Var>> {
        let (ra, act) = (self.cfg.recurrent_activation, self.cfg.activation);
        let f = state[3];
        if ra == Activation::Sigmoid && act == Activation::Tanh {
            let rows = state[0] * state[1] * state[2];
            let (h, c) = z.reshape([rows, 4 * f])?.lstm_cell(&c.reshape([rows, f])?)?;
            return Ok(vec![h.reshape(state)?, c.reshape(state)?]);
        }
        let g = gate_blocks(z, 4, f)?;
        let i = ra.apply(&g[0])?;
        let fg = ra.apply(&g[1])?;
        let c = fg.mul(c)?.add(&i.mul(&act.apply(&g[2])?)?)?;
        let o = ra.apply(&g[3])?;
        let h = o.mul(&act.apply(&c)?)?;
        Ok(vec![h, c])
    }
}

impl<W: ConvLSTMWindow> Layer for ConvLSTM<W> {
    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: String) {
        self.name = name;
    }

    fn class_name(&self) -> &'static str {
        self.cfg.window.class_name()
    }

    fn declared_input_shape(&self) -> Option<Vec<usize>> {
        self.input_shape.clone()
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<()> {
        self.state_spatial(input_shape)?;
        let c = input_shape[input_shape.len() - 1];
        if let Some(have) = self.in_channels {
            if have == c {
                return Ok(());
            }
            return Err(self.bad_input(format!("{have} channels (the layer is already built)"), input_shape));
        }
        let (f, ks) = (self.cfg.filters, self.cfg.window.kernel_size());
        let shape = |a: usize| ks.iter().copied().chain([a, 4 * f]).collect::<Vec<_>>();
        self.kernel = Some(Param::new(self.cfg.kernel_initializer.sample(&shape(c), rng)?));
        self.recurrent_kernel = Some(Param::new(self.cfg.recurrent_initializer.sample(&shape(f), rng)?));
        if self.cfg.use_bias {
            // the LSTM's bias: ones for the forget gate with unit_forget_bias
            let cell = LSTMCell {
                recurrent_activation: self.cfg.recurrent_activation,
                unit_forget_bias: self.cfg.unit_forget_bias,
            };
            self.bias = Some(Param::new(cell.init_bias(f, &self.cfg.bias_initializer, rng)?));
        }
        self.in_channels = Some(c);
        Ok(())
    }

    recurrent_layer_methods!(in_channels);
}
