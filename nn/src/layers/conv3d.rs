//! [`Conv3D`]: 3-D convolution over NDHWC volumes with a `[kd, kh, kw, in, filters]` kernel,
//! composed as one 2-D convolution (no kernel of its own).
//!
//! Output depth `o` reads the depth slices `o * stride + k * dilation` (`k < kd`) of the
//! (for `same`, zero-padded) input. One `index_select` gathers them, `[n, od * kd, h, w, c]`,
//! which is rearranged into `n * od` images `[h, w, kd * c]` (slice `k`'s channels at
//! `k * c..`); the kernel rearranged to `[kh, kw, kd * c, filters]` in the same order makes
//! one `conv2d` over height and width compute every output plane. Keras's weight layout is
//! kept, so saved kernels are interchangeable.

use crate::layer::{
    built, check_batch_rank, common_builders, kernel_bias_builders, kernel_bias_layer_methods, layer_common,
    needs_build, Ctx, IntoTriple, Layer,
};
use crate::layers::padding_serde;
use crate::layers::spatial::{pad_axis, per_sample};
use crate::{Activation, Error, Initializer, Regularizer, Result};
use keel_autograd::{Param, Var};
use keel_tensor::ops::conv::conv_out_dim;
use keel_tensor::rng::Rng;
use keel_tensor::{Padding, Tensor};
use serde::{Deserialize, Serialize};

/// The hyper-parameters of [`Conv3D`] (its Keras config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conv3DConfig {
    /// Output channels.
    pub filters: usize,
    /// Window `(depth, height, width)`.
    pub kernel_size: (usize, usize, usize),
    /// Strides `(depth, vertical, horizontal)`.
    pub strides: (usize, usize, usize),
    /// `valid` or `same`.
    #[serde(with = "padding_serde")]
    pub padding: Padding,
    /// Dilation `(depth, vertical, horizontal)`.
    pub dilation_rate: (usize, usize, usize),
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
}

/// 3-D convolution: `[d, h, w, c] -> [od, oh, ow, filters]`, kernel `[kd, kh, kw, c, filters]`
/// (Keras's layout).
pub struct Conv3D {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: Conv3DConfig,
    in_channels: Option<usize>,
    kernel: Option<Param>,
    bias: Option<Param>,
}

common_builders!(Conv3D);
kernel_bias_builders!(Conv3D);
conv3d_builders!(Conv3D, Conv3DConfig, "[kd, kh, kw, in, filters]");

/// The builders and getters [`Conv3D`] and `Conv3DTranspose` share (strides, padding,
/// dilation, the config, the kernel and bias).
macro_rules! conv3d_builders {
    ($t:ident, $cfg:ty, $kernel:literal) => {
        impl $t {
            /// Set the strides.
            pub fn strides(mut self, s: impl $crate::layer::IntoTriple) -> Self {
                self.cfg.strides = s.into_triple();
                self
            }

            /// Set the padding (`Padding::Valid` or `Padding::Same`).
            pub fn padding(mut self, p: keel_tensor::Padding) -> Self {
                self.cfg.padding = p;
                self
            }

            /// Set the dilation rate.
            pub fn dilation_rate(mut self, d: impl $crate::layer::IntoTriple) -> Self {
                self.cfg.dilation_rate = d.into_triple();
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
pub(crate) use conv3d_builders;

/// The input and kernel of a [`Conv3D`] folded into those of one 2-D convolution.
struct Folded {
    /// `[n * od, h, w, kd * c]`.
    x: Var,
    /// `[kh, kw, kd * c, filters]`.
    kernel: Var,
    /// Batch size and output depth.
    n: usize,
    od: usize,
}

impl Conv3D {
    /// `filters` output channels with window `kernel_size` (`3` or `(kd, kh, kw)`; stride 1,
    /// valid padding, linear).
    pub fn new(filters: usize, kernel_size: impl IntoTriple) -> Self {
        Conv3D::from_config(Conv3DConfig {
            filters,
            kernel_size: kernel_size.into_triple(),
            strides: (1, 1, 1),
            padding: Padding::Valid,
            dilation_rate: (1, 1, 1),
            activation: Activation::Linear,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            kernel_regularizer: None,
            bias_regularizer: None,
            activity_regularizer: None,
            kernel_constraint: None,
            bias_constraint: None,
        })
    }

    /// A Conv3D layer from its config.
    pub fn from_config(cfg: Conv3DConfig) -> Self {
        Conv3D { name: String::new(), input_shape: None, cfg, in_channels: None, kernel: None, bias: None }
    }

    /// The convolution of the batch `x` `[n, d, h, w, c]` with a given `kernel`
    /// `[kd, kh, kw, c, filters]`, without bias or activation: the layer's function with its
    /// weight passed in, e.g. for a gradient check.
    pub fn forward_with_kernel(&self, x: &Var, kernel: &Var) -> Result<Var> {
        let f = self.fold(x, kernel)?;
        let c = &self.cfg;
        let y = f.x.conv2d(&f.kernel, (c.strides.1, c.strides.2), c.padding, (c.dilation_rate.1, c.dilation_rate.2))?;
        Self::unfold(&y, f.n, f.od)
    }

    /// Fold `x` and `kernel` into one 2-D convolution (see the module doc).
    fn fold(&self, x: &Var, kernel: &Var) -> Result<Folded> {
        check_batch_rank(x, 4, self)?;
        self.output_shape(per_sample(x))?;
        let c = &self.cfg;
        let (kd, kh, kw) = c.kernel_size;
        let &[n, d, h, w, ch] = x.dims() else { return Err(self.bad_input(per_sample(x), Self::LAYOUT.into())) };
        let kdims = kernel.dims();
        if kdims.len() != 5 || kdims[..3] != [kd, kh, kw] || kdims[4] != c.filters {
            return Err(Error::config(
                format!("Conv3D \"{}\"", self.name),
                format!("the kernel is {kdims:?}, expected [{kd}, {kh}, {kw}, in_channels, {}]", c.filters),
            ));
        }
        if kdims[3] != ch {
            return Err(self.bad_input(per_sample(x), format!("{} channels (the kernel is {kdims:?})", kdims[3])));
        }
        let (sd, dd) = (c.strides.0, c.dilation_rate.0);
        let (od, before) = conv_out_dim("Conv3D", d, kd, sd, dd, c.padding)?;
        let x = match c.padding {
            Padding::Same => {
                let total = ((od - 1) * sd + (kd - 1) * dd + 1).saturating_sub(d);
                pad_axis(x, 1, before, total - before, 0.0)?
            }
            Padding::Valid => x.clone(),
        };
        let taps: Vec<i64> = (0..od).flat_map(|o| (0..kd).map(move |k| (o * sd + k * dd) as i64)).collect();
        let x = if taps.len() == x.dims()[1] && taps.iter().enumerate().all(|(i, &t)| t == i as i64) {
            x // every slice once, in order (a 1-deep window at stride 1)
        } else {
            let len = taps.len();
            x.index_select(&Tensor::from_vec(taps, len)?.to_device(&x.device())?, 1)?
        };
        let (x, kernel) = if kd == 1 {
            (x.reshape(vec![n * od, h, w, ch])?, kernel.reshape(vec![kh, kw, ch, c.filters])?)
        } else {
            let x = x.reshape(vec![n, od, kd, h, w, ch])?.permute(&[0, 1, 3, 4, 2, 5])?;
            let kernel = kernel.permute(&[1, 2, 0, 3, 4])?;
            (x.reshape(vec![n * od, h, w, kd * ch])?, kernel.reshape(vec![kh, kw, kd * ch, c.filters])?)
        };
        Ok(Folded { x, kernel, n, od })
    }

    /// `[n * od, oh, ow, f]` back to `[n, od, oh, ow, f]`.
    fn unfold(y: &Var, n: usize, od: usize) -> Result<Var> {
        let d = y.dims();
        Ok(y.reshape(vec![n, od, d[1], d[2], d[3]])?)
    }

    const LAYOUT: &'static str = "[depth, height, width, channels] (rank 4, NDHWC, no empty axis)";

    fn bad_input(&self, input_shape: &[usize], expected: String) -> Error {
        Error::IncompatibleInput { layer: self.name.clone(), class: "Conv3D", expected, got: input_shape.to_vec() }
    }
}

impl Layer for Conv3D {
    layer_common!("Conv3D");

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<()> {
        self.output_shape(input_shape)?;
        let c = input_shape[3];
        if !needs_build(self.in_channels, c, |e| self.bad_input(input_shape, e))? {
            return Ok(());
        }
        let (kd, kh, kw) = self.cfg.kernel_size;
        self.kernel = Some(Param::new(self.cfg.kernel_initializer.sample(&[kd, kh, kw, c, self.cfg.filters], rng)?));
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
        if input_shape.len() != 4 || input_shape.contains(&0) {
            return Err(self.bad_input(input_shape, Self::LAYOUT.into()));
        }
        if self.cfg.filters == 0 {
            return Err(Error::config(format!("Conv3D \"{}\"", self.name), "filters must be >= 1"));
        }
        let c = &self.cfg;
        let dims = |i: usize, k: usize, s: usize, d: usize| {
            conv_out_dim("Conv3D", input_shape[i], k, s, d, c.padding)
                .map(|(o, _)| o)
                .map_err(|e| self.bad_input(input_shape, format!("a volume large enough for the window ({e})")))
        };
        let od = dims(0, c.kernel_size.0, c.strides.0, c.dilation_rate.0)?;
        let oh = dims(1, c.kernel_size.1, c.strides.1, c.dilation_rate.1)?;
        let ow = dims(2, c.kernel_size.2, c.strides.2, c.dilation_rate.2)?;
        Ok(vec![od, oh, ow, c.filters])
    }

    fn forward(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        match (&self.bias, self.cfg.activation) {
            // conv + bias + ReLU as one op (the same values and gradients as conv, add, relu)
            (Some(b), Activation::Relu) => {
                let f = self.fold(x, &ctx.param(built(&self.kernel, self)?)?)?;
                let c = &self.cfg;
                let (s, dil) = ((c.strides.1, c.strides.2), (c.dilation_rate.1, c.dilation_rate.2));
                let y = f.x.conv2d_bias_relu(&f.kernel, &ctx.param(b)?, s, c.padding, dil)?;
                Self::unfold(&y, f.n, f.od)
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
        let y = self.forward_with_kernel(x, &ctx.param(built(&self.kernel, self)?)?)?;
        match &self.bias {
            Some(b) => Ok(y.add(&ctx.param(b)?)?),
            None => Ok(y),
        }
    }

    kernel_bias_layer_methods!();
}
