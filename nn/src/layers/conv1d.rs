//! [`Conv1D`]: 1-D convolution over `[steps, channels]` sequences, kernel `[k, in, filters]`.
//!
//! It runs as the 2-D convolution of `[n, 1, steps, c]` images with a `[1, k, c, filters]`
//! kernel (a view of its own), so it uses the same CPU and CUDA kernels, the fused
//! bias + ReLU among them.

use crate::layer::{
    built, check_batch_rank, common_builders, kernel_bias_builders, kernel_bias_layer_methods, layer_common,
    needs_build, Ctx, Layer,
};
use crate::{Activation, Error, Initializer, Regularizer, Result};
use keel_autograd::{Param, Var};
use keel_tensor::ops::conv::conv_out_dim;
use keel_tensor::rng::Rng;
use keel_tensor::{Padding, Tensor};
use serde::{Deserialize, Serialize};

/// The padding of a [`Conv1D`]: Keras's `"valid"`, `"same"` and `"causal"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Conv1DPadding {
    /// No padding: the output is shorter than the input.
    Valid,
    /// Zeros on both sides: `ceil(steps / strides)` outputs.
    Same,
    /// `dilation_rate * (kernel_size - 1)` zeros on the left only: output `t` sees
    /// inputs `<= t` (no look-ahead; for forecasting).
    Causal,
}

/// The hyper-parameters of [`Conv1D`] (its Keras config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conv1DConfig {
    /// Output channels.
    pub filters: usize,
    /// Window length.
    #[serde(with = "crate::layers::one_serde")]
    pub kernel_size: usize,
    /// Stride.
    #[serde(with = "crate::layers::one_serde")]
    pub strides: usize,
    /// `valid`, `same` or `causal`.
    pub padding: Conv1DPadding,
    /// Dilation.
    #[serde(with = "crate::layers::one_serde")]
    pub dilation_rate: usize,
    /// Final activation.
    pub activation: Activation,
    /// Whether a bias is added.
    pub use_bias: bool,
    /// Kernel initializer (default glorot_uniform).
    pub kernel_initializer: Initializer,
    /// Bias initializer (default zeros).
    pub bias_initializer: Initializer,
    /// Kernel penalty.
    pub kernel_regularizer: Option<Regularizer>,
    /// Bias penalty.
    pub bias_regularizer: Option<Regularizer>,
    /// Output penalty (Keras's `activity_regularizer`): the penalty of each batch's output
    /// divided by the batch size, added to the loss.
    #[serde(default)]
    pub activity_regularizer: Option<Regularizer>,
    /// Kernel constraint, applied after every optimizer step (Keras's `kernel_constraint`).
    #[serde(default)]
    pub kernel_constraint: Option<crate::Constraint>,
    /// Bias constraint, applied after every optimizer step (Keras's `bias_constraint`).
    #[serde(default)]
    pub bias_constraint: Option<crate::Constraint>,
    /// Channel groups (Keras's `groups`, default 1; see [`crate::Conv2DConfig::groups`]).
    #[serde(default = "crate::layers::conv2d::one_group", skip_serializing_if = "crate::layers::conv2d::is_one_group")]
    pub groups: usize,
}

/// 1-D convolution: `[steps, c] -> [out_steps, filters]`, kernel `[kernel_size, c, filters]`.
pub struct Conv1D {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: Conv1DConfig,
    in_channels: Option<usize>,
    kernel: Option<Param>,
    bias: Option<Param>,
}

common_builders!(Conv1D);
kernel_bias_builders!(Conv1D);

impl Conv1D {
    /// `filters` output channels with windows of `kernel_size` steps (stride 1, valid
    /// padding, linear).
    pub fn new(filters: usize, kernel_size: usize) -> Self {
        Conv1D::from_config(Conv1DConfig {
            filters,
            kernel_size,
            strides: 1,
            padding: Conv1DPadding::Valid,
            dilation_rate: 1,
            activation: Activation::Linear,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            kernel_regularizer: None,
            bias_regularizer: None,
            activity_regularizer: None,
            kernel_constraint: None,
            bias_constraint: None,
            groups: 1,
        })
    }

    /// Split the channels and filters into `groups` groups (Keras's `groups`; the kernel is
    /// then `[kernel_size, in / groups, filters]`).
    pub fn groups(mut self, groups: usize) -> Self {
        self.cfg.groups = groups;
        self
    }

    /// A Conv1D layer from its config.
    pub fn from_config(cfg: Conv1DConfig) -> Self {
        Conv1D { name: String::new(), input_shape: None, cfg, in_channels: None, kernel: None, bias: None }
    }

    /// Set the stride.
    pub fn strides(mut self, s: usize) -> Self {
        self.cfg.strides = s;
        self
    }

    /// Set the padding (`Conv1DPadding::Valid`, `Same` or `Causal`).
    pub fn padding(mut self, p: Conv1DPadding) -> Self {
        self.cfg.padding = p;
        self
    }

    /// Set the dilation rate.
    pub fn dilation_rate(mut self, d: usize) -> Self {
        self.cfg.dilation_rate = d;
        self
    }

    /// The config.
    pub fn get_config(&self) -> &Conv1DConfig {
        &self.cfg
    }

    /// The kernel `[kernel_size, in, filters]`, once built.
    pub fn kernel(&self) -> Option<&Param> {
        self.kernel.as_ref()
    }

    /// The bias `[filters]`, once built (and when `use_bias`).
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    /// The zeros a causal convolution puts before the first step (`None` when the
    /// product overflows).
    fn causal_pad(&self) -> Option<usize> {
        match self.cfg.padding {
            Conv1DPadding::Causal => self.cfg.dilation_rate.checked_mul(self.cfg.kernel_size.saturating_sub(1)),
            _ => Some(0),
        }
    }

    /// The 2-D padding the convolution of the (causally padded) input runs with.
    fn padding_2d(&self) -> Padding {
        match self.cfg.padding {
            Conv1DPadding::Same => Padding::Same,
            Conv1DPadding::Valid | Conv1DPadding::Causal => Padding::Valid,
        }
    }

    /// `x` `[n, steps, c]` as `[n, 1, steps + pad, c]` images (causal zeros on the
    /// left), and the kernel as `[1, k, c, filters]`.
    fn operands(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<(Var, Var)> {
        let k = built(&self.kernel, self)?;
        check_batch_rank(x, 2, self)?;
        let (n, c) = (x.dims()[0], x.dims()[2]);
        let pad = self.causal_pad().unwrap_or(0); // checked by output_shape when built
        let x = if pad > 0 {
            let zeros = Var::constant(Tensor::zeros(vec![n, pad, c], x.dtype(), &x.device())?);
            Var::concat(&[&zeros, x], 1)?
        } else {
            x.clone()
        };
        let steps = x.dims()[1];
        let kernel = ctx.param(k)?;
        let kdims = kernel.dims().to_vec();
        Ok((x.reshape(vec![n, 1, steps, c])?, kernel.reshape(vec![1, kdims[0], kdims[1], kdims[2]])?))
    }

    /// `[n, 1, out_steps, filters]` back to `[n, out_steps, filters]`.
    fn squeeze(y: Var) -> Result<Var> {
        let d = y.dims().to_vec();
        Ok(y.reshape(vec![d[0], d[2], d[3]])?)
    }

    fn bad_input(&self, input_shape: &[usize], expected: String) -> Error {
        Error::IncompatibleInput { layer: self.name.clone(), class: "Conv1D", expected, got: input_shape.to_vec() }
    }
}

impl Layer for Conv1D {
    layer_common!("Conv1D");

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<()> {
        self.output_shape(input_shape)?;
        let c = input_shape[1];
        if !needs_build(self.in_channels, c, |e| self.bad_input(input_shape, e))? {
            return Ok(());
        }
        crate::layers::conv2d::check_groups(self, self.cfg.groups, c, self.cfg.filters)?;
        let shape = [self.cfg.kernel_size, c / self.cfg.groups, self.cfg.filters];
        self.kernel = Some(Param::new(self.cfg.kernel_initializer.sample(&shape, rng)?));
        if self.cfg.use_bias {
            self.bias = Some(Param::new(self.cfg.bias_initializer.sample(&[self.cfg.filters], rng)?));
        }
        self.in_channels = Some(c);
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.in_channels.is_some()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        if input_shape.len() != 2 || input_shape[1] == 0 {
            return Err(self.bad_input(input_shape, "[steps, channels] (rank 2)".into()));
        }
        if self.cfg.filters == 0 {
            return Err(Error::config(format!("Conv1D \"{}\"", self.name), "filters must be >= 1"));
        }
        let c = &self.cfg;
        let steps = self
            .causal_pad()
            .and_then(|p| p.checked_add(input_shape[0]))
            .ok_or_else(|| self.bad_input(input_shape, "a dilation_rate and kernel_size of a sane size".into()))?;
        let (out, _) = conv_out_dim("Conv1D", steps, c.kernel_size, c.strides, c.dilation_rate, self.padding_2d())
            .map_err(|e| self.bad_input(input_shape, format!("a sequence long enough for the window ({e})")))?;
        Ok(vec![out, c.filters])
    }

    fn forward(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        match (&self.bias, self.cfg.activation) {
            // conv + bias + ReLU as one op (the same values and gradients as conv, add, relu)
            (Some(b), Activation::Relu) if self.cfg.groups == 1 => {
                let (x, k) = self.operands(x, ctx)?;
                let c = &self.cfg;
                let y =
                    x.conv2d_bias_relu(&k, &ctx.param(b)?, (1, c.strides), self.padding_2d(), (1, c.dilation_rate))?;
                Self::squeeze(y)
            }
            _ => {
                let z = self.forward_logits(x, ctx)?;
                match self.output_activation() {
                    Some(a) => a.apply(&z),
                    None => Ok(z),
                }
            }
        }
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let (x, k) = self.operands(x, ctx)?;
        let c = &self.cfg;
        let y = crate::layers::conv2d::grouped_conv2d(
            &x,
            &k,
            c.groups,
            (1, c.strides),
            self.padding_2d(),
            (1, c.dilation_rate),
        )?;
        let y = Self::squeeze(y)?;
        match &self.bias {
            Some(b) => Ok(y.add(&ctx.param(b)?)?),
            None => Ok(y),
        }
    }

    kernel_bias_layer_methods!();
}
