//! [`DepthwiseConv1D`]: each channel of a `[steps, channels]` sequence convolved with its own
//! `depth_multiplier` filters (Keras 3's layer; TensorFlow's channel order
//! `ci * depth_multiplier + j`).
//!
//! It runs as the depthwise 2-D convolution of `[n, 1, steps, c]` images with a
//! `[1, k, c, depth_multiplier]` view of its kernel, so it uses the same CPU and CUDA kernels
//! as [`DepthwiseConv2D`](crate::layers::DepthwiseConv2D).

use crate::layer::{
    built, check_batch_rank, common_builders, kernel_bias_layer_methods, layer_common, needs_build, Ctx, Layer,
};
use crate::layers::depthwise_conv2d::{depthwise_builders, depthwise_output_shape};
use crate::layers::padding_serde;
use crate::{Activation, Error, Initializer, Regularizer, Result};
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
use keel_tensor::Padding;
use serde::{Deserialize, Serialize};

/// The hyper-parameters of [`DepthwiseConv1D`] (its Keras config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepthwiseConv1DConfig {
    /// Window length.
    #[serde(with = "crate::layers::one_serde")]
    pub kernel_size: usize,
    /// Stride.
    #[serde(with = "crate::layers::one_serde")]
    pub strides: usize,
    /// `valid` or `same` (Keras has no `causal` for the depthwise layers).
    #[serde(with = "padding_serde")]
    pub padding: Padding,
    /// Output channels per input channel.
    pub depth_multiplier: usize,
    /// Dilation.
    #[serde(with = "crate::layers::one_serde")]
    pub dilation_rate: usize,
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

/// Depthwise 1-D convolution: `[steps, c] -> [out_steps, c * depth_multiplier]`, kernel
/// `[kernel_size, c, depth_multiplier]` (Keras's weight `kernel`), bias
/// `[c * depth_multiplier]`.
///
/// ```
/// use keel_nn::prelude::*;
///
/// # fn main() -> keel_nn::Result<()> {
/// let mut model = Sequential::new();
/// model.add(DepthwiseConv1D::new(3).depth_multiplier(2).padding(Padding::Same).input_shape([10, 4]));
/// assert_eq!(model.output_shapes()?, vec![vec![10, 8]]);
/// assert_eq!(model.count_params(), 3 * 4 * 2 + 8);
/// # Ok(())
/// # }
/// ```
pub struct DepthwiseConv1D {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: DepthwiseConv1DConfig,
    in_channels: Option<usize>,
    kernel: Option<Param>,
    bias: Option<Param>,
}

common_builders!(DepthwiseConv1D);
depthwise_builders!(DepthwiseConv1D);

/// The builders of the window of [`DepthwiseConv1D`] and `SeparableConv1D` (stride,
/// padding, dilation) and their `get_config`.
macro_rules! window_1d_builders {
    ($t:ident, $cfg:ty) => {
        impl $t {
            /// Set the stride.
            pub fn strides(mut self, s: usize) -> Self {
                self.cfg.strides = s;
                self
            }

            /// Set the padding (`Padding::Valid` or `Padding::Same`).
            pub fn padding(mut self, p: keel_tensor::Padding) -> Self {
                self.cfg.padding = p;
                self
            }

            /// Set the dilation rate.
            pub fn dilation_rate(mut self, d: usize) -> Self {
                self.cfg.dilation_rate = d;
                self
            }

            /// The config.
            pub fn get_config(&self) -> &$cfg {
                &self.cfg
            }
        }
    };
}
pub(crate) use window_1d_builders;
window_1d_builders!(DepthwiseConv1D, DepthwiseConv1DConfig);

/// The window of a 1-D depthwise convolution: `(kernel_size, strides, padding, dilation_rate)`.
pub(crate) type Window1D = (usize, usize, Padding, usize);

/// The output shape `[out_steps, c * depth_multiplier]` of a 1-D depthwise convolution with
/// `window` on `input_shape` (`[steps, c]`), checked as [`depthwise_output_shape`] checks the
/// 2-D one (on `[1, steps, c]`); `bad` names what the input should have been, `bad_cfg` a
/// wrong setting.
pub(crate) fn depthwise_1d_output_shape(
    class: &'static str,
    input_shape: &[usize],
    (k, s, padding, d): Window1D,
    depth_multiplier: usize,
    bad: impl Fn(String) -> Error,
    bad_cfg: impl Fn(&str) -> Error,
) -> Result<Vec<usize>> {
    if input_shape.len() != 2 || input_shape[1] == 0 {
        return Err(bad("[steps, channels] (rank 2)".into()));
    }
    let image = [1, input_shape[0], input_shape[1]];
    let out = depthwise_output_shape(
        class,
        "a sequence",
        &image,
        ((1, k), (1, s), padding, (1, d)),
        depth_multiplier,
        bad,
        bad_cfg,
    )?;
    Ok(out[1..].to_vec())
}

/// The depthwise step of the 1-D layers: `x` `[n, steps, c]` (rank checked by the caller)
/// as `[n, 1, steps, c]` images convolved with `kernel` `[k, c, m]` as `[1, k, c, m]`; the
/// output stays an image `[n, 1, out_steps, c * m]` (the separable layer's pointwise step
/// runs on it). A kernel of another shape is an error naming `layer`.
pub(crate) fn depthwise_1d(x: &Var, kernel: &Var, (k, s, padding, d): Window1D, m: usize, layer: &str) -> Result<Var> {
    let (xd, kd) = (x.dims(), kernel.dims());
    if kd != [k, xd[2], m] {
        return Err(Error::config(
            layer,
            format!("the depthwise kernel is {kd:?}, expected [{k}, {}, {m}] (kernel_size, input channels, depth_multiplier)", xd[2]),
        ));
    }
    let image = x.reshape(vec![xd[0], 1, xd[1], xd[2]])?;
    let kernel = kernel.reshape(vec![1, k, xd[2], m])?;
    Ok(image.depthwise_conv2d(&kernel, (1, s), padding, (1, d))?)
}

/// An error (from `bad`) unless the batch `x` `[n, steps, c]` has the `built` channels.
pub(crate) fn check_channels(x: &Var, built: Option<usize>, bad: impl FnOnce(String) -> Error) -> Result<()> {
    match built {
        Some(c) if x.dims()[2] != c => Err(bad(format!("{c} channels (the layer is built for them)"))),
        _ => Ok(()),
    }
}

/// `[n, 1, out_steps, c]` back to `[n, out_steps, c]`.
pub(crate) fn squeeze_1d(y: &Var) -> Result<Var> {
    let d = y.dims();
    Ok(y.reshape(vec![d[0], d[2], d[3]])?)
}

impl DepthwiseConv1D {
    /// A depthwise convolution with windows of `kernel_size` steps (stride 1, valid padding,
    /// depth multiplier 1, linear, with a bias).
    pub fn new(kernel_size: usize) -> Self {
        DepthwiseConv1D::from_config(DepthwiseConv1DConfig {
            kernel_size,
            strides: 1,
            padding: Padding::Valid,
            depth_multiplier: 1,
            dilation_rate: 1,
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

    /// A DepthwiseConv1D layer from its config.
    pub fn from_config(cfg: DepthwiseConv1DConfig) -> Self {
        DepthwiseConv1D { name: String::new(), input_shape: None, cfg, in_channels: None, kernel: None, bias: None }
    }

    /// The kernel `[kernel_size, in, depth_multiplier]`, once built.
    pub fn kernel(&self) -> Option<&Param> {
        self.kernel.as_ref()
    }

    /// The bias `[in * depth_multiplier]`, once built (and when `use_bias`).
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    /// The depthwise convolution of the batch `x` `[n, steps, c]` with a given `kernel`
    /// `[kernel_size, c, depth_multiplier]`, without bias or activation: the layer's function
    /// with its weight passed in, e.g. for a gradient check.
    pub fn forward_with_kernel(&self, x: &Var, kernel: &Var) -> Result<Var> {
        check_batch_rank(x, 2, self)?;
        self.output_shape(&x.dims()[1..])?;
        let label = format!("DepthwiseConv1D \"{}\"", self.name);
        squeeze_1d(&depthwise_1d(x, kernel, self.window(), self.cfg.depth_multiplier, &label)?)
    }

    fn window(&self) -> Window1D {
        let c = &self.cfg;
        (c.kernel_size, c.strides, c.padding, c.dilation_rate)
    }

    fn bad_input(&self, input_shape: &[usize], expected: String) -> Error {
        Error::IncompatibleInput {
            layer: self.name.clone(),
            class: "DepthwiseConv1D",
            expected,
            got: input_shape.to_vec(),
        }
    }
}

impl Layer for DepthwiseConv1D {
    layer_common!("DepthwiseConv1D");

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<()> {
        self.output_shape(input_shape)?;
        let c = input_shape[1];
        if !needs_build(self.in_channels, c, |e| self.bad_input(input_shape, e))? {
            return Ok(());
        }
        let (k, m) = (self.cfg.kernel_size, self.cfg.depth_multiplier);
        self.kernel = Some(Param::new(self.cfg.depthwise_initializer.sample(&[k, c, m], rng)?));
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
        depthwise_1d_output_shape(
            "DepthwiseConv1D",
            input_shape,
            self.window(),
            self.cfg.depth_multiplier,
            |expected| self.bad_input(input_shape, expected),
            |msg| Error::config(format!("DepthwiseConv1D \"{}\"", self.name), msg),
        )
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let k = built(&self.kernel, self)?;
        check_batch_rank(x, 2, self)?;
        check_channels(x, self.in_channels, |e| self.bad_input(&x.dims()[1..], e))?;
        let y = self.forward_with_kernel(x, &ctx.param(k)?)?;
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
