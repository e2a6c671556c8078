//! [`Conv2D`]: 2-D convolution over NHWC images with an HWIO kernel.

use crate::layer::{
    built, check_batch_rank, common_builders, kernel_bias_builders, kernel_bias_layer_methods, layer_common,
    needs_build, Ctx, IntoPair, Layer,
};
use crate::layers::padding_serde;
use crate::{Activation, Error, Initializer, Regularizer, Result};
use keel_autograd::{Param, Var};
use keel_tensor::ops::conv::conv_out_dim;
use keel_tensor::rng::Rng;
use keel_tensor::Padding;
use serde::{Deserialize, Serialize};

/// The hyper-parameters of [`Conv2D`] (its Keras config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conv2DConfig {
    /// Output channels.
    pub filters: usize,
    /// Window `(height, width)`.
    pub kernel_size: (usize, usize),
    /// Strides `(vertical, horizontal)`.
    pub strides: (usize, usize),
    /// `valid` or `same`.
    #[serde(with = "padding_serde")]
    pub padding: Padding,
    /// Dilation `(vertical, horizontal)`.
    pub dilation_rate: (usize, usize),
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
    /// Channel groups (Keras's `groups`, default 1): the input channels and the filters are
    /// split into this many groups, each filter group seeing only its channel group. Not
    /// written when 1 (Keras's default).
    #[serde(default = "one_group", skip_serializing_if = "is_one_group")]
    pub groups: usize,
}

/// The default of `groups`.
pub(crate) fn one_group() -> usize {
    1
}

/// `groups == 1` (not written into configs).
pub(crate) fn is_one_group(g: &usize) -> bool {
    *g == 1
}

/// Keras's grouped convolution (`groups` > 1) on an NHWC batch `x` with an HWIO kernel of
/// `c / groups` input channels: group `i` convolves channels `i * c/groups ..` with filters
/// `i * f/groups ..`, and the outputs are joined along the channels (one conv2d per group,
/// so it runs on every backend's conv2d kernel).
pub(crate) fn grouped_conv2d(
    x: &Var,
    k: &Var,
    groups: usize,
    strides: (usize, usize),
    padding: Padding,
    dilation: (usize, usize),
) -> Result<Var> {
    if groups == 1 {
        return Ok(x.conv2d(k, strides, padding, dilation)?);
    }
    let (cg, fg) = (x.dims()[3] / groups, k.dims()[3] / groups);
    let outs = (0..groups)
        .map(|i| Ok(x.narrow(3, i * cg, cg)?.conv2d(&k.narrow(3, i * fg, fg)?, strides, padding, dilation)?))
        .collect::<Result<Vec<_>>>()?;
    Ok(Var::concat(&outs.iter().collect::<Vec<_>>(), 3)?)
}

/// A convolution layer's `groups` must divide its input channels `c` and its `filters`.
pub(crate) fn check_groups(layer: &dyn Layer, groups: usize, c: usize, filters: usize) -> Result<()> {
    if groups == 0 || c % groups != 0 || filters % groups != 0 {
        return Err(Error::config(
            crate::layer::describe(layer),
            format!("groups ({groups}) must be >= 1 and divide both the input channels ({c}) and filters ({filters})"),
        ));
    }
    Ok(())
}

/// 2-D convolution: `[h, w, c] -> [oh, ow, filters]`, kernel `[kh, kw, c, filters]`.
pub struct Conv2D {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: Conv2DConfig,
    in_channels: Option<usize>,
    kernel: Option<Param>,
    bias: Option<Param>,
}

common_builders!(Conv2D);
kernel_bias_builders!(Conv2D);
conv2d_builders!(Conv2D, Conv2DConfig, "[kh, kw, in, filters]");

/// The builders and getters [`Conv2D`] and `Conv2DTranspose` share (strides,
/// padding, dilation, the config, the kernel and bias).
macro_rules! conv2d_builders {
    ($t:ident, $cfg:ty, $kernel:literal) => {
        impl $t {
            /// Set the strides.
            pub fn strides(mut self, s: impl $crate::layer::IntoPair) -> Self {
                self.cfg.strides = s.into_pair();
                self
            }

            /// Set the padding (`Padding::Valid` or `Padding::Same`).
            pub fn padding(mut self, p: keel_tensor::Padding) -> Self {
                self.cfg.padding = p;
                self
            }

            /// Set the dilation rate.
            pub fn dilation_rate(mut self, d: impl $crate::layer::IntoPair) -> Self {
                self.cfg.dilation_rate = d.into_pair();
                self
            }

            /// The config.
            pub fn get_config(&self) -> &$cfg {
                &self.cfg
            }

            #[doc = concat!("The kernel `", $kernel, "`, once built.")]
            pub fn kernel(&self) -> Option<&keel_autograd::Param> {
                self.kernel.as_ref()
            }

            /// The bias `[filters]`, once built (and when `use_bias`).
            pub fn bias(&self) -> Option<&keel_autograd::Param> {
                self.bias.as_ref()
            }
        }
    };
}
pub(crate) use conv2d_builders;

impl Conv2D {
    /// `filters` output channels with window `kernel_size` (stride 1, valid padding, linear).
    pub fn new(filters: usize, kernel_size: impl IntoPair) -> Self {
        Conv2D::from_config(Conv2DConfig {
            filters,
            kernel_size: kernel_size.into_pair(),
            strides: (1, 1),
            padding: Padding::Valid,
            dilation_rate: (1, 1),
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
    /// then `[kh, kw, in / groups, filters]`).
    pub fn groups(mut self, groups: usize) -> Self {
        self.cfg.groups = groups;
        self
    }

    /// A Conv2D layer from its config.
    pub fn from_config(cfg: Conv2DConfig) -> Self {
        Conv2D { name: String::new(), input_shape: None, cfg, in_channels: None, kernel: None, bias: None }
    }

    /// The convolution without bias or activation.
    fn conv(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let k = built(&self.kernel, self)?;
        check_batch_rank(x, 3, self)?;
        let c = &self.cfg;
        grouped_conv2d(x, &ctx.param(k)?, c.groups, c.strides, c.padding, c.dilation_rate)
    }

    fn bad_input(&self, input_shape: &[usize], expected: String) -> Error {
        Error::IncompatibleInput { layer: self.name.clone(), class: "Conv2D", expected, got: input_shape.to_vec() }
    }
}

impl Layer for Conv2D {
    layer_common!("Conv2D");

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<()> {
        self.output_shape(input_shape)?;
        let c = input_shape[2];
        if !needs_build(self.in_channels, c, |e| self.bad_input(input_shape, e))? {
            return Ok(());
        }
        check_groups(self, self.cfg.groups, c, self.cfg.filters)?;
        let (kh, kw) = self.cfg.kernel_size;
        let shape = [kh, kw, c / self.cfg.groups, self.cfg.filters];
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
        if input_shape.len() != 3 || input_shape[2] == 0 {
            return Err(self.bad_input(input_shape, "[height, width, channels] (rank 3, NHWC)".into()));
        }
        if self.cfg.filters == 0 {
            return Err(Error::config(format!("Conv2D \"{}\"", self.name), "filters must be >= 1"));
        }
        let c = &self.cfg;
        let dims = |i: usize, k: usize, s: usize, d: usize| {
            conv_out_dim("Conv2D", input_shape[i], k, s, d, c.padding)
                .map(|(o, _)| o)
                .map_err(|e| self.bad_input(input_shape, format!("an image large enough for the window ({e})")))
        };
        let oh = dims(0, c.kernel_size.0, c.strides.0, c.dilation_rate.0)?;
        let ow = dims(1, c.kernel_size.1, c.strides.1, c.dilation_rate.1)?;
        Ok(vec![oh, ow, c.filters])
    }

    fn forward(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        match (&self.bias, self.cfg.activation) {
            // conv + bias + ReLU as one op (the same values and gradients as conv, add, relu)
            (Some(b), Activation::Relu) if self.cfg.groups == 1 => {
                let k = built(&self.kernel, self)?;
                check_batch_rank(x, 3, self)?;
                let c = &self.cfg;
                Ok(x.conv2d_bias_relu(&ctx.param(k)?, &ctx.param(b)?, c.strides, c.padding, c.dilation_rate)?)
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
        let y = self.conv(x, ctx)?;
        match &self.bias {
            Some(b) => Ok(y.add(&ctx.param(b)?)?),
            None => Ok(y),
        }
    }

    kernel_bias_layer_methods!();
}
