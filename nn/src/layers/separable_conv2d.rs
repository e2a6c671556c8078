//! [`SeparableConv2D`]: a depthwise convolution followed by a pointwise (1x1) one (Keras 3's
//! layer).

use crate::layer::{
    built, check_batch_rank, common_builders, kernel_bias_layer_methods, layer_common, needs_build, Ctx, IntoPair,
    Layer,
};
use crate::layers::depthwise_conv2d::{depthwise_builders, depthwise_output_shape};
use crate::layers::padding_serde;
use crate::{Activation, Error, Initializer, Regularizer, Result};
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
use keel_tensor::Padding;
use serde::{Deserialize, Serialize};

/// The hyper-parameters of [`SeparableConv2D`] (its Keras config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeparableConv2DConfig {
    /// Output channels.
    pub filters: usize,
    /// Window `(height, width)` of the depthwise step.
    pub kernel_size: (usize, usize),
    /// Strides `(vertical, horizontal)` of the depthwise step.
    pub strides: (usize, usize),
    /// `valid` or `same`.
    #[serde(with = "padding_serde")]
    pub padding: Padding,
    /// Depthwise output channels per input channel.
    pub depth_multiplier: usize,
    /// Dilation `(vertical, horizontal)` of the depthwise step.
    pub dilation_rate: (usize, usize),
    /// Final activation.
    pub activation: Activation,
    /// Whether a bias is added.
    pub use_bias: bool,
    /// Depthwise kernel initializer (default glorot_uniform).
    pub depthwise_initializer: Initializer,
    /// Pointwise kernel initializer (default glorot_uniform).
    pub pointwise_initializer: Initializer,
    /// Bias initializer (default zeros).
    pub bias_initializer: Initializer,
    /// Depthwise kernel penalty.
    pub depthwise_regularizer: Option<Regularizer>,
    /// Pointwise kernel penalty.
    #[serde(default)]
    pub pointwise_regularizer: Option<Regularizer>,
    /// Bias penalty.
    pub bias_regularizer: Option<Regularizer>,
    /// Depthwise kernel constraint, applied after every optimizer step (Keras's `depthwise_constraint`).
    #[serde(default)]
    pub depthwise_constraint: Option<crate::Constraint>,
    /// Pointwise kernel constraint, applied after every optimizer step (Keras's `pointwise_constraint`).
    #[serde(default)]
    pub pointwise_constraint: Option<crate::Constraint>,
    /// Bias constraint, applied after every optimizer step (Keras's `bias_constraint`).
    #[serde(default)]
    pub bias_constraint: Option<crate::Constraint>,
    /// Output penalty (Keras's `activity_regularizer`): the penalty of each batch's output
    /// divided by the batch size, added to the loss.
    #[serde(default)]
    pub activity_regularizer: Option<Regularizer>,
}

/// Depthwise separable 2-D convolution: `[h, w, c] -> [oh, ow, filters]`; the depthwise
/// kernel `[kh, kw, c, depth_multiplier]`, then the pointwise kernel
/// `[1, 1, c * depth_multiplier, filters]`, then the bias `[filters]` and the activation.
pub struct SeparableConv2D {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: SeparableConv2DConfig,
    in_channels: Option<usize>,
    depthwise_kernel: Option<Param>,
    pointwise_kernel: Option<Param>,
    bias: Option<Param>,
}

common_builders!(SeparableConv2D);
depthwise_builders!(SeparableConv2D);

impl SeparableConv2D {
    /// `filters` output channels with depthwise window `kernel_size` (stride 1, valid
    /// padding, depth multiplier 1, linear, with a bias).
    pub fn new(filters: usize, kernel_size: impl IntoPair) -> Self {
        SeparableConv2D::from_config(SeparableConv2DConfig {
            filters,
            kernel_size: kernel_size.into_pair(),
            strides: (1, 1),
            padding: Padding::Valid,
            depth_multiplier: 1,
            dilation_rate: (1, 1),
            activation: Activation::Linear,
            use_bias: true,
            depthwise_initializer: Initializer::GlorotUniform,
            pointwise_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            depthwise_regularizer: None,
            pointwise_regularizer: None,
            bias_regularizer: None,
            depthwise_constraint: None,
            pointwise_constraint: None,
            bias_constraint: None,
            activity_regularizer: None,
        })
    }

    /// A SeparableConv2D layer from its config.
    pub fn from_config(cfg: SeparableConv2DConfig) -> Self {
        SeparableConv2D {
            name: String::new(),
            input_shape: None,
            cfg,
            in_channels: None,
            depthwise_kernel: None,
            pointwise_kernel: None,
            bias: None,
        }
    }

    /// Set the strides of the depthwise step.
    pub fn strides(mut self, s: impl IntoPair) -> Self {
        self.cfg.strides = s.into_pair();
        self
    }

    /// Set the padding of the depthwise step (`Padding::Valid` or `Padding::Same`).
    pub fn padding(mut self, p: Padding) -> Self {
        self.cfg.padding = p;
        self
    }

    /// Set the dilation rate of the depthwise step.
    pub fn dilation_rate(mut self, d: impl IntoPair) -> Self {
        self.cfg.dilation_rate = d.into_pair();
        self
    }

    /// Set the pointwise kernel's initializer.
    pub fn pointwise_initializer(mut self, i: Initializer) -> Self {
        self.cfg.pointwise_initializer = i;
        self
    }

    /// Penalise the pointwise kernel.
    pub fn pointwise_regularizer(mut self, r: Regularizer) -> Self {
        self.cfg.pointwise_regularizer = Some(r);
        self
    }

    crate::layer::constraint_builders!(methods: pointwise_constraint => "the pointwise kernel");

    /// The config.
    pub fn get_config(&self) -> &SeparableConv2DConfig {
        &self.cfg
    }

    /// The depthwise kernel `[kh, kw, in, depth_multiplier]`, once built.
    pub fn depthwise_kernel(&self) -> Option<&Param> {
        self.depthwise_kernel.as_ref()
    }

    /// The pointwise kernel `[1, 1, in * depth_multiplier, filters]`, once built.
    pub fn pointwise_kernel(&self) -> Option<&Param> {
        self.pointwise_kernel.as_ref()
    }

    /// The bias `[filters]`, once built (and when `use_bias`).
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    fn bad_input(&self, input_shape: &[usize], expected: String) -> Error {
        Error::IncompatibleInput {
            layer: self.name.clone(),
            class: "SeparableConv2D",
            expected,
            got: input_shape.to_vec(),
        }
    }

    /// The depthwise step's output `[n, oh, ow, c * depth_multiplier]`.
    fn depthwise(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let k = built(&self.depthwise_kernel, self)?;
        check_batch_rank(x, 3, self)?;
        let c = &self.cfg;
        Ok(x.depthwise_conv2d(&ctx.param(k)?, c.strides, c.padding, c.dilation_rate)?)
    }

    /// The pointwise step and the bias on the depthwise output `d`, fused with ReLU when
    /// `relu` (and there is a bias).
    fn pointwise(&self, d: &Var, ctx: &mut Ctx<'_>, relu: bool) -> Result<Var> {
        let pk = ctx.param(built(&self.pointwise_kernel, self)?)?;
        let bias = self.bias.as_ref().map(|b| ctx.param(b)).transpose()?;
        pointwise_step(d, &pk, bias.as_ref(), relu)
    }
}

/// The pointwise step of a separable convolution: `d` `[n, oh, ow, c * m]` (the depthwise
/// output) convolved with `pk` `[1, 1, c * m, filters]`, plus `bias`; with `relu` and a
/// bias, the 1x1 convolution, bias and ReLU run as one fused op (the same values and
/// gradients), else the caller applies the activation.
pub(crate) fn pointwise_step(d: &Var, pk: &Var, bias: Option<&Var>, relu: bool) -> Result<Var> {
    match bias {
        Some(b) if relu => Ok(d.conv2d_bias_relu(pk, b, (1, 1), Padding::Valid, (1, 1))?),
        Some(b) => Ok(d.conv2d(pk, (1, 1), Padding::Valid, (1, 1))?.add(b)?),
        None => Ok(d.conv2d(pk, (1, 1), Padding::Valid, (1, 1))?),
    }
}

impl Layer for SeparableConv2D {
    layer_common!("SeparableConv2D");

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<()> {
        self.output_shape(input_shape)?;
        let c = input_shape[2];
        if !needs_build(self.in_channels, c, |e| self.bad_input(input_shape, e))? {
            return Ok(());
        }
        let ((kh, kw), m, f) = (self.cfg.kernel_size, self.cfg.depth_multiplier, self.cfg.filters);
        let mid = c * m; // cannot overflow: output_shape checked it
        self.depthwise_kernel = Some(Param::new(self.cfg.depthwise_initializer.sample(&[kh, kw, c, m], rng)?));
        self.pointwise_kernel = Some(Param::new(self.cfg.pointwise_initializer.sample(&[1, 1, mid, f], rng)?));
        if self.cfg.use_bias {
            self.bias = Some(Param::new(self.cfg.bias_initializer.sample(&[f], rng)?));
        }
        self.in_channels = Some(c);
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.in_channels.is_some()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let c = &self.cfg;
        let bad_cfg = |msg: &str| Error::config(format!("SeparableConv2D \"{}\"", self.name), msg);
        if c.filters == 0 {
            return Err(bad_cfg("filters must be >= 1"));
        }
        let mut out = depthwise_output_shape(
            "SeparableConv2D",
            "an image",
            input_shape,
            (c.kernel_size, c.strides, c.padding, c.dilation_rate),
            c.depth_multiplier,
            |expected| self.bad_input(input_shape, expected),
            bad_cfg,
        )?;
        out[2] = c.filters;
        Ok(out)
    }

    fn forward(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        if self.bias.is_some() && self.cfg.activation == Activation::Relu {
            // pointwise conv + bias + ReLU as one op (the same values and gradients)
            let d = self.depthwise(x, ctx)?;
            return self.pointwise(&d, ctx, true);
        }
        let z = self.forward_logits(x, ctx)?;
        match self.output_activation() {
            Some(a) => a.apply(&z),
            None => Ok(z),
        }
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let d = self.depthwise(x, ctx)?;
        self.pointwise(&d, ctx, false)
    }

    kernel_bias_layer_methods!(
        ("depthwise_kernel", depthwise_kernel, depthwise_regularizer, depthwise_constraint),
        ("pointwise_kernel", pointwise_kernel, pointwise_regularizer, pointwise_constraint),
        ("bias", bias, bias_regularizer, bias_constraint),
    );
}
