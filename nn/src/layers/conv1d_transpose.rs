//! [`Conv1DTranspose`]: transposed 1-D convolution (learned upsampling) over
//! `[steps, channels]` sequences, kernel `[k, filters, in]`.
//!
//! It runs as the transposed 2-D convolution of `[n, 1, steps, c]` images with a
//! `[1, k, filters, c]` view of its kernel, so it uses the same CPU and CUDA kernels.

use crate::layer::{
    built, check_batch_rank, common_builders, kernel_bias_builders, kernel_bias_layer_methods, layer_common,
    needs_build, Ctx, Layer,
};
use crate::layers::conv2d_transpose::deconv_output_length;
use crate::layers::padding_serde;
use crate::{Activation, Error, Initializer, Regularizer, Result};
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
use keel_tensor::{Conv2dParams, Padding, Shape};
use serde::{Deserialize, Serialize};

/// The hyper-parameters of [`Conv1DTranspose`] (its Keras config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conv1DTransposeConfig {
    /// Output channels.
    pub filters: usize,
    /// Window length.
    #[serde(with = "crate::layers::one_serde")]
    pub kernel_size: usize,
    /// Stride (the upsampling factor).
    #[serde(with = "crate::layers::one_serde")]
    pub strides: usize,
    /// `valid` or `same`.
    #[serde(with = "padding_serde")]
    pub padding: Padding,
    /// Extra steps added at the end of the output (below the stride), or `None` for
    /// Keras's default length.
    #[serde(default, with = "opt_one")]
    pub output_padding: Option<usize>,
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
}

/// `output_padding` as Keras writes it, `null` or `[1]` (and read as `1` too).
mod opt_one {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct One(#[serde(with = "crate::layers::one_serde")] usize);

    pub fn serialize<S: Serializer>(p: &Option<usize>, s: S) -> Result<S::Ok, S::Error> {
        p.map(One).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
        Ok(Option::<One>::deserialize(d)?.map(|o| o.0))
    }
}

/// Transposed 1-D convolution (Keras's `Conv1DTranspose`): `[steps, c] -> [out_steps,
/// filters]` with kernel `[kernel_size, filters, c]`, the gradient of a
/// [`Conv1D`](crate::layers::Conv1D) wrt its input. With `padding="same"` the output is
/// `steps * strides` long; with `"valid"` `steps * strides + max(k - strides, 0)` (dilated
/// `k`), as in Keras.
///
/// ```
/// use keel_nn::prelude::*;
///
/// # fn main() -> keel_nn::Result<()> {
/// let mut model = Sequential::new();
/// model.add(Conv1DTranspose::new(8, 3).strides(2).padding(Padding::Same).input_shape([10, 4]));
/// assert_eq!(model.output_shapes()?, vec![vec![20, 8]]);
/// assert_eq!(model.count_params(), 3 * 8 * 4 + 8);
/// # Ok(())
/// # }
/// ```
pub struct Conv1DTranspose {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: Conv1DTransposeConfig,
    in_channels: Option<usize>,
    kernel: Option<Param>,
    bias: Option<Param>,
}

common_builders!(Conv1DTranspose);
kernel_bias_builders!(Conv1DTranspose);

impl Conv1DTranspose {
    /// `filters` output channels with windows of `kernel_size` steps (stride 1, valid
    /// padding, linear).
    pub fn new(filters: usize, kernel_size: usize) -> Self {
        Conv1DTranspose::from_config(Conv1DTransposeConfig {
            filters,
            kernel_size,
            strides: 1,
            padding: Padding::Valid,
            output_padding: None,
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
        })
    }

    /// A Conv1DTranspose layer from its config.
    pub fn from_config(cfg: Conv1DTransposeConfig) -> Self {
        Conv1DTranspose { name: String::new(), input_shape: None, cfg, in_channels: None, kernel: None, bias: None }
    }

    /// Set the stride (the upsampling factor).
    pub fn strides(mut self, s: usize) -> Self {
        self.cfg.strides = s;
        self
    }

    /// Set the padding (`Padding::Valid` or `Padding::Same`).
    pub fn padding(mut self, p: Padding) -> Self {
        self.cfg.padding = p;
        self
    }

    /// Add `p` steps at the end of the output (below the stride; Keras's `output_padding`).
    pub fn output_padding(mut self, p: usize) -> Self {
        self.cfg.output_padding = Some(p);
        self
    }

    /// Set the dilation rate.
    pub fn dilation_rate(mut self, d: usize) -> Self {
        self.cfg.dilation_rate = d;
        self
    }

    /// The config.
    pub fn get_config(&self) -> &Conv1DTransposeConfig {
        &self.cfg
    }

    /// The kernel `[kernel_size, filters, in]`, once built.
    pub fn kernel(&self) -> Option<&Param> {
        self.kernel.as_ref()
    }

    /// The bias `[filters]`, once built (with `use_bias`).
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    fn bad_input(&self, input_shape: &[usize], expected: String) -> Error {
        Error::IncompatibleInput {
            layer: self.name.clone(),
            class: "Conv1DTranspose",
            expected,
            got: input_shape.to_vec(),
        }
    }

    /// The output length for an input `[steps, c]`, checked against the forward
    /// convolution it transposes.
    fn out_steps(&self, input_shape: &[usize]) -> Result<usize> {
        if input_shape.len() != 2 || input_shape[1] == 0 {
            return Err(self.bad_input(input_shape, "[steps, channels] (rank 2)".into()));
        }
        let c = &self.cfg;
        let what = || format!("Conv1DTranspose \"{}\"", self.name);
        if c.filters == 0 {
            return Err(Error::config(what(), "filters must be >= 1"));
        }
        let len = deconv_output_length(
            input_shape[0],
            (c.kernel_size, c.strides, c.dilation_rate),
            c.padding,
            c.output_padding,
        )
        .map_err(|msg| Error::config(what(), msg))?;
        Conv2dParams::transposed(
            "Conv1DTranspose",
            &Shape::from([1, 1, input_shape[0], input_shape[1]]),
            &Shape::from([1, c.kernel_size, c.filters, input_shape[1]]),
            (1, len),
            (1, c.strides),
            c.padding,
            (1, c.dilation_rate),
        )
        .map_err(|e| self.bad_input(input_shape, format!("a length this layer's geometry can transpose ({e})")))?;
        Ok(len)
    }
}

impl Layer for Conv1DTranspose {
    layer_common!("Conv1DTranspose");

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<()> {
        self.out_steps(input_shape)?;
        let c = input_shape[1];
        if !needs_build(self.in_channels, c, |e| self.bad_input(input_shape, e))? {
            return Ok(());
        }
        let shape = [self.cfg.kernel_size, self.cfg.filters, c];
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
        Ok(vec![self.out_steps(input_shape)?, self.cfg.filters])
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let k = built(&self.kernel, self)?;
        check_batch_rank(x, 2, self)?;
        let (n, t, c) = (x.dims()[0], x.dims()[1], x.dims()[2]);
        if self.in_channels != Some(c) {
            return Err(self
                .bad_input(&x.dims()[1..], format!("{:?} channels (the layer is built for them)", self.in_channels)));
        }
        let len = self.out_steps(&[t, c])?;
        let cfg = &self.cfg;
        let kernel = ctx.param(k)?;
        let k4 = kernel.reshape([1, cfg.kernel_size, cfg.filters, c])?;
        let y = x.reshape([n, 1, t, c])?.conv2d_transpose(
            &k4,
            (1, len),
            (1, cfg.strides),
            cfg.padding,
            (1, cfg.dilation_rate),
        )?;
        let y = y.reshape([n, len, cfg.filters])?;
        match &self.bias {
            Some(b) => Ok(y.add(&ctx.param(b)?)?),
            None => Ok(y),
        }
    }

    kernel_bias_layer_methods!();
}
