//! [`SeparableConv1D`]: a depthwise 1-D convolution followed by a pointwise one (Keras 3's
//! layer).
//!
//! Both steps run on `[n, 1, steps, c]` images, as
//! [`SeparableConv2D`](crate::layers::SeparableConv2D)'s do (the same CPU and CUDA kernels,
//! the fused pointwise + bias + ReLU among them), with `[1, ...]` views of the kernels.

use crate::layer::{
    built, check_batch_rank, common_builders, kernel_bias_layer_methods, layer_common, needs_build, Ctx, Layer,
};
use crate::layers::depthwise_conv1d::{
    check_channels, depthwise_1d, depthwise_1d_output_shape, squeeze_1d, window_1d_builders, Window1D,
};
use crate::layers::depthwise_conv2d::depthwise_builders;
use crate::layers::padding_serde;
use crate::layers::separable_conv2d::pointwise_step;
use crate::{Activation, Error, Initializer, Regularizer, Result};
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
use keel_tensor::Padding;
use serde::{Deserialize, Serialize};

/// The hyper-parameters of [`SeparableConv1D`] (its Keras config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeparableConv1DConfig {
    /// Output channels.
    pub filters: usize,
    /// Window length of the depthwise step.
    #[serde(with = "crate::layers::one_serde")]
    pub kernel_size: usize,
    /// Stride of the depthwise step.
    #[serde(with = "crate::layers::one_serde")]
    pub strides: usize,
    /// `valid` or `same` (Keras has no `causal` for the separable layers).
    #[serde(with = "padding_serde")]
    pub padding: Padding,
    /// Depthwise output channels per input channel.
    pub depth_multiplier: usize,
    /// Dilation of the depthwise step.
    #[serde(with = "crate::layers::one_serde")]
    pub dilation_rate: usize,
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

/// Depthwise separable 1-D convolution: `[steps, c] -> [out_steps, filters]`; the depthwise
/// kernel `[kernel_size, c, depth_multiplier]`, then the pointwise kernel
/// `[1, c * depth_multiplier, filters]`, then the bias `[filters]` and the activation.
///
/// ```
/// use keel_nn::prelude::*;
///
/// # fn main() -> keel_nn::Result<()> {
/// let mut model = Sequential::new();
/// model.add(SeparableConv1D::new(8, 3).depth_multiplier(2).strides(2).input_shape([10, 4]));
/// assert_eq!(model.output_shapes()?, vec![vec![4, 8]]);
/// assert_eq!(model.count_params(), 3 * 4 * 2 + 8 * 8 + 8);
/// # Ok(())
/// # }
/// ```
pub struct SeparableConv1D {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: SeparableConv1DConfig,
    in_channels: Option<usize>,
    depthwise_kernel: Option<Param>,
    pointwise_kernel: Option<Param>,
    bias: Option<Param>,
}

common_builders!(SeparableConv1D);
depthwise_builders!(SeparableConv1D);
window_1d_builders!(SeparableConv1D, SeparableConv1DConfig);

impl SeparableConv1D {
    /// `filters` output channels with depthwise windows of `kernel_size` steps (stride 1,
    /// valid padding, depth multiplier 1, linear, with a bias).
    pub fn new(filters: usize, kernel_size: usize) -> Self {
        SeparableConv1D::from_config(SeparableConv1DConfig {
            filters,
            kernel_size,
            strides: 1,
            padding: Padding::Valid,
            depth_multiplier: 1,
            dilation_rate: 1,
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

    /// A SeparableConv1D layer from its config.
    pub fn from_config(cfg: SeparableConv1DConfig) -> Self {
        SeparableConv1D {
            name: String::new(),
            input_shape: None,
            cfg,
            in_channels: None,
            depthwise_kernel: None,
            pointwise_kernel: None,
            bias: None,
        }
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

    /// The depthwise kernel `[kernel_size, in, depth_multiplier]`, once built.
    pub fn depthwise_kernel(&self) -> Option<&Param> {
        self.depthwise_kernel.as_ref()
    }

    /// The pointwise kernel `[1, in * depth_multiplier, filters]`, once built.
    pub fn pointwise_kernel(&self) -> Option<&Param> {
        self.pointwise_kernel.as_ref()
    }

    /// The bias `[filters]`, once built (and when `use_bias`).
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    fn window(&self) -> Window1D {
        let c = &self.cfg;
        (c.kernel_size, c.strides, c.padding, c.dilation_rate)
    }

    fn bad_input(&self, input_shape: &[usize], expected: String) -> Error {
        Error::IncompatibleInput {
            layer: self.name.clone(),
            class: "SeparableConv1D",
            expected,
            got: input_shape.to_vec(),
        }
    }

    /// Both steps on the batch `x` `[n, steps, c]` with given kernels `depthwise`
    /// `[kernel_size, c, depth_multiplier]` and `pointwise` `[1, c * depth_multiplier,
    /// filters]`, without bias or activation: the layer's function with its weights passed
    /// in, e.g. for a gradient check.
    pub fn forward_with_kernels(&self, x: &Var, depthwise: &Var, pointwise: &Var) -> Result<Var> {
        self.separable(x, depthwise, pointwise, None, false)
    }

    /// Both steps (see [`SeparableConv1D::forward_with_kernels`]), then the `bias`; with
    /// `relu`, the pointwise step, bias and ReLU fused.
    fn separable(&self, x: &Var, dk: &Var, pk: &Var, bias: Option<&Var>, relu: bool) -> Result<Var> {
        check_batch_rank(x, 2, self)?;
        self.output_shape(&x.dims()[1..])?;
        let label = format!("SeparableConv1D \"{}\"", self.name);
        let (m, f) = (self.cfg.depth_multiplier, self.cfg.filters);
        let d = depthwise_1d(x, dk, self.window(), m, &label)?;
        let mid = d.dims()[3];
        if pk.dims() != [1, mid, f] {
            return Err(Error::config(
                label,
                format!("the pointwise kernel is {:?}, expected [1, {mid}, {f}] (1, input channels x depth_multiplier, filters)", pk.dims()),
            ));
        }
        let pk = pk.reshape(vec![1, 1, mid, f])?;
        squeeze_1d(&pointwise_step(&d, &pk, bias, relu)?)
    }

    /// The layer's function with its own weights (`relu`: fused with ReLU).
    fn apply(&self, x: &Var, ctx: &mut Ctx<'_>, relu: bool) -> Result<Var> {
        let dk = built(&self.depthwise_kernel, self)?;
        let pk = built(&self.pointwise_kernel, self)?;
        check_batch_rank(x, 2, self)?;
        check_channels(x, self.in_channels, |e| self.bad_input(&x.dims()[1..], e))?;
        let bias = self.bias.as_ref().map(|b| ctx.param(b)).transpose()?;
        self.separable(x, &ctx.param(dk)?, &ctx.param(pk)?, bias.as_ref(), relu)
    }
}

impl Layer for SeparableConv1D {
    layer_common!("SeparableConv1D");

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<()> {
        self.output_shape(input_shape)?;
        let c = input_shape[1];
        if !needs_build(self.in_channels, c, |e| self.bad_input(input_shape, e))? {
            return Ok(());
        }
        let (k, m, f) = (self.cfg.kernel_size, self.cfg.depth_multiplier, self.cfg.filters);
        let mid = c * m; // cannot overflow: output_shape checked it
        self.depthwise_kernel = Some(Param::new(self.cfg.depthwise_initializer.sample(&[k, c, m], rng)?));
        self.pointwise_kernel = Some(Param::new(self.cfg.pointwise_initializer.sample(&[1, mid, f], rng)?));
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
        let bad_cfg = |msg: &str| Error::config(format!("SeparableConv1D \"{}\"", self.name), msg);
        if self.cfg.filters == 0 {
            return Err(bad_cfg("filters must be >= 1"));
        }
        let mut out = depthwise_1d_output_shape(
            "SeparableConv1D",
            input_shape,
            self.window(),
            self.cfg.depth_multiplier,
            |expected| self.bad_input(input_shape, expected),
            bad_cfg,
        )?;
        out[1] = self.cfg.filters;
        Ok(out)
    }

    fn forward(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        if self.bias.is_some() && self.cfg.activation == Activation::Relu {
            // pointwise conv + bias + ReLU as one op (the same values and gradients)
            return self.apply(x, ctx, true);
        }
        let z = self.forward_logits(x, ctx)?;
        match self.output_activation() {
            Some(a) => a.apply(&z),
            None => Ok(z),
        }
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        self.apply(x, ctx, false)
    }

    kernel_bias_layer_methods!(
        ("depthwise_kernel", depthwise_kernel, depthwise_regularizer, depthwise_constraint),
        ("pointwise_kernel", pointwise_kernel, pointwise_regularizer, pointwise_constraint),
        ("bias", bias, bias_regularizer, bias_constraint),
    );
}
