//! [`DepthwiseConv2D`]: each input channel convolved with its own `depth_multiplier`
//! filters (Keras 3's layer; TensorFlow's channel order `ci * depth_multiplier + j`).

use crate::layer::{
    built, check_batch_rank, common_builders, kernel_bias_layer_methods, layer_common, needs_build, Ctx, IntoPair,
    Layer,
};
use crate::layers::padding_serde;
use crate::{Activation, Error, Initializer, Regularizer, Result};
use keel_autograd::{Param, Var};
use keel_tensor::ops::conv::conv_out_dim;
use keel_tensor::rng::Rng;
use keel_tensor::Padding;
use serde::{Deserialize, Serialize};

/// The hyper-parameters of [`DepthwiseConv2D`] (its Keras config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepthwiseConv2DConfig {
    /// Window `(height, width)`.
    pub kernel_size: (usize, usize),
    /// Strides `(vertical, horizontal)`.
    pub strides: (usize, usize),
    /// `valid` or `same`.
    #[serde(with = "padding_serde")]
    pub padding: Padding,
    /// Output channels per input channel.
    pub depth_multiplier: usize,
    /// Dilation `(vertical, horizontal)`.
    pub dilation_rate: (usize, usize),
    /// Final activation.
    pub activation: Activation,
    /// Whether a bias is added.
    pub use_bias: bool,
    /// Depthwise kernel initializer (default glorot_uniform).
    pub depthwise_initializer: Initializer,
    /// Bias initializer (default zeros).
    pub bias_initializer: Initializer,
    /// Depthwise kernel penalty.
    pub depthwise_regularizer: Option<Regularizer>,
    /// Bias penalty.
    pub bias_regularizer: Option<Regularizer>,
    /// Depthwise kernel constraint, applied after every optimizer step (Keras's `depthwise_constraint`).
    #[serde(default)]
    pub depthwise_constraint: Option<crate::Constraint>,
    /// Bias constraint, applied after every optimizer step (Keras's `bias_constraint`).
    #[serde(default)]
    pub bias_constraint: Option<crate::Constraint>,
    /// Output penalty (Keras's `activity_regularizer`): the penalty of each batch's output
    /// divided by the batch size, added to the loss.
    #[serde(default)]
    pub activity_regularizer: Option<Regularizer>,
}

/// Depthwise 2-D convolution: `[h, w, c] -> [oh, ow, c * depth_multiplier]`, kernel
/// `[kh, kw, c, depth_multiplier]` (Keras's weight `kernel`), bias `[c * depth_multiplier]`.
pub struct DepthwiseConv2D {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: DepthwiseConv2DConfig,
    in_channels: Option<usize>,
    kernel: Option<Param>,
    bias: Option<Param>,
}

common_builders!(DepthwiseConv2D);
crate::layers::conv2d::conv2d_builders!(DepthwiseConv2D, DepthwiseConv2DConfig, "[kh, kw, in, depth_multiplier]");
/// The builders [`DepthwiseConv2D`] and `SeparableConv2D` share: activation, bias,
/// depth multiplier and the depthwise kernel's initializer, penalty and constraint.
macro_rules! depthwise_builders {
    ($t:ident) => {
        impl $t {
            /// Set the activation.
            pub fn activation(mut self, a: $crate::Activation) -> Self {
                self.cfg.activation = a;
                self
            }

            /// Add a bias or not.
            pub fn use_bias(mut self, yes: bool) -> Self {
                self.cfg.use_bias = yes;
                self
            }

            /// Set the number of output channels per input channel (default 1).
            pub fn depth_multiplier(mut self, m: usize) -> Self {
                self.cfg.depth_multiplier = m;
                self
            }

            /// Set the depthwise kernel's initializer.
            pub fn depthwise_initializer(mut self, i: $crate::Initializer) -> Self {
                self.cfg.depthwise_initializer = i;
                self
            }

            /// Set the bias initializer.
            pub fn bias_initializer(mut self, i: $crate::Initializer) -> Self {
                self.cfg.bias_initializer = i;
                self
            }

            /// Penalise the depthwise kernel.
            pub fn depthwise_regularizer(mut self, r: $crate::Regularizer) -> Self {
                self.cfg.depthwise_regularizer = Some(r);
                self
            }

            /// Penalise the bias.
            pub fn bias_regularizer(mut self, r: $crate::Regularizer) -> Self {
                self.cfg.bias_regularizer = Some(r);
                self
            }

            $crate::layer::constraint_builders!(
                methods: depthwise_constraint => "the depthwise kernel",
                bias_constraint => "the bias",
            );
        }

        $crate::layer::activity_regularizer_builder!($t);
    };
}
pub(crate) use depthwise_builders;
depthwise_builders!(DepthwiseConv2D);

/// The window of a depthwise convolution: `(kernel_size, strides, padding, dilation_rate)`.
pub(crate) type Window = ((usize, usize), (usize, usize), Padding, (usize, usize));

/// The output shape `[oh, ow, c * depth_multiplier]` of a depthwise convolution with
/// `window` on `input_shape` (`[h, w, c]`), checked as Keras checks them; `bad` names what
/// the input should have been (`noun` says what it is: "an image", or "a sequence" for the
/// 1-D layers, which pass `[1, steps, c]`), `bad_cfg` a wrong setting.
pub(crate) fn depthwise_output_shape(
    class: &'static str,
    noun: &str,
    input_shape: &[usize],
    (kernel_size, strides, padding, dilation_rate): Window,
    depth_multiplier: usize,
    bad: impl Fn(String) -> Error,
    bad_cfg: impl Fn(&str) -> Error,
) -> Result<Vec<usize>> {
    if input_shape.len() != 3 || input_shape[2] == 0 {
        return Err(bad("[height, width, channels] (rank 3, NHWC)".into()));
    }
    if depth_multiplier == 0 {
        return Err(bad_cfg("depth_multiplier must be >= 1"));
    }
    let dims = |i: usize, k: usize, s: usize, d: usize| {
        conv_out_dim(class, input_shape[i], k, s, d, padding)
            .map(|(o, _)| o)
            .map_err(|e| bad(format!("{noun} large enough for the window ({e})")))
    };
    let oh = dims(0, kernel_size.0, strides.0, dilation_rate.0)?;
    let ow = dims(1, kernel_size.1, strides.1, dilation_rate.1)?;
    let o = input_shape[2]
        .checked_mul(depth_multiplier)
        .ok_or_else(|| bad("fewer channels (channels x depth_multiplier overflows)".into()))?;
    Ok(vec![oh, ow, o])
}

impl DepthwiseConv2D {
    /// A depthwise convolution with window `kernel_size` (stride 1, valid padding,
    /// depth multiplier 1, linear, with a bias).
    pub fn new(kernel_size: impl IntoPair) -> Self {
        DepthwiseConv2D::from_config(DepthwiseConv2DConfig {
            kernel_size: kernel_size.into_pair(),
            strides: (1, 1),
            padding: Padding::Valid,
            depth_multiplier: 1,
            dilation_rate: (1, 1),
            activation: Activation::Linear,
            use_bias: true,
            depthwise_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            depthwise_regularizer: None,
            bias_regularizer: None,
            depthwise_constraint: None,
            bias_constraint: None,
            activity_regularizer: None,
        })
    }

    /// A DepthwiseConv2D layer from its config.
    pub fn from_config(cfg: DepthwiseConv2DConfig) -> Self {
        DepthwiseConv2D { name: String::new(), input_shape: None, cfg, in_channels: None, kernel: None, bias: None }
    }

    fn bad_input(&self, input_shape: &[usize], expected: String) -> Error {
        Error::IncompatibleInput {
            layer: self.name.clone(),
            class: "DepthwiseConv2D",
            expected,
            got: input_shape.to_vec(),
        }
    }
}

impl Layer for DepthwiseConv2D {
    layer_common!("DepthwiseConv2D");

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<()> {
        self.output_shape(input_shape)?;
        let c = input_shape[2];
        if !needs_build(self.in_channels, c, |e| self.bad_input(input_shape, e))? {
            return Ok(());
        }
        let ((kh, kw), m) = (self.cfg.kernel_size, self.cfg.depth_multiplier);
        self.kernel = Some(Param::new(self.cfg.depthwise_initializer.sample(&[kh, kw, c, m], rng)?));
        if self.cfg.use_bias {
            self.bias = Some(Param::new(self.cfg.bias_initializer.sample(&[c * m], rng)?));
        }
        self.in_channels = Some(c);
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.in_channels.is_some()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let c = &self.cfg;
        depthwise_output_shape(
            "DepthwiseConv2D",
            "an image",
            input_shape,
            (c.kernel_size, c.strides, c.padding, c.dilation_rate),
            c.depth_multiplier,
            |expected| self.bad_input(input_shape, expected),
            |msg| Error::config(format!("DepthwiseConv2D \"{}\"", self.name), msg),
        )
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let k = built(&self.kernel, self)?;
        check_batch_rank(x, 3, self)?;
        let c = &self.cfg;
        let y = x.depthwise_conv2d(&ctx.param(k)?, c.strides, c.padding, c.dilation_rate)?;
        match &self.bias {
            Some(b) => Ok(y.add(&ctx.param(b)?)?),
            None => Ok(y),
        }
    }

    kernel_bias_layer_methods!(
        ("kernel", kernel, depthwise_regularizer, depthwise_constraint),
        ("bias", bias, bias_regularizer, bias_constraint)
    );
}
