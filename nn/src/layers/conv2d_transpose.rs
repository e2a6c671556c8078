//! [`Conv2DTranspose`]: transposed 2-D convolution (learned upsampling) over NHWC images.

use crate::layer::{
    built, check_batch_rank, common_builders, kernel_bias_builders, kernel_bias_layer_methods, layer_common,
    needs_build, Ctx, IntoPair, Layer,
};
use crate::layers::conv2d::conv2d_builders;
use crate::layers::Conv2DConfig;
use crate::{Activation, Error, Initializer, Result};
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
use keel_tensor::{Conv2dParams, Padding, Shape};
use serde::{Deserialize, Serialize};

/// The hyper-parameters of [`Conv2DTranspose`] (its Keras config): those of
/// [`Conv2DConfig`] and `output_padding`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conv2DTransposeConfig {
    /// Filters, window, strides, padding, dilation, activation, bias, initializers, penalties.
    #[serde(flatten)]
    pub conv: Conv2DConfig,
    /// Extra rows/columns added at the bottom/right of the output (each below
    /// its stride), or `None` for Keras's default size.
    #[serde(default)]
    pub output_padding: Option<(usize, usize)>,
}

impl std::ops::Deref for Conv2DTransposeConfig {
    type Target = Conv2DConfig;
    fn deref(&self) -> &Conv2DConfig {
        &self.conv
    }
}

impl std::ops::DerefMut for Conv2DTransposeConfig {
    fn deref_mut(&mut self) -> &mut Conv2DConfig {
        &mut self.conv
    }
}

/// Transposed convolution (Keras's `Conv2DTranspose`, sometimes called
/// deconvolution): `[h, w, c] -> [oh, ow, filters]` with kernel
/// `[kh, kw, filters, c]`, the gradient of a [`Conv2D`](crate::layers::Conv2D)
/// wrt its input. With `padding="same"` the output is `h * strides`; with
/// `"valid"` it is `h * strides + max(kh - strides, 0)` (dilated `kh`), as in Keras.
pub struct Conv2DTranspose {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: Conv2DTransposeConfig,
    in_channels: Option<usize>,
    kernel: Option<Param>,
    bias: Option<Param>,
}

common_builders!(Conv2DTranspose);
kernel_bias_builders!(Conv2DTranspose);
conv2d_builders!(Conv2DTranspose, Conv2DTransposeConfig, "[kh, kw, filters, in]");

impl Conv2DTranspose {
    /// `filters` output channels with window `kernel_size` (stride 1, valid padding, linear).
    pub fn new(filters: usize, kernel_size: impl IntoPair) -> Self {
        Conv2DTranspose::from_config(Conv2DTransposeConfig {
            conv: Conv2DConfig {
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
            },
            output_padding: None,
        })
    }

    /// A Conv2DTranspose layer from its config.
    pub fn from_config(cfg: Conv2DTransposeConfig) -> Self {
        Conv2DTranspose { name: String::new(), input_shape: None, cfg, in_channels: None, kernel: None, bias: None }
    }

    /// Add `(rows, columns)` at the bottom/right of the output; each must be
    /// below its stride (Keras's `output_padding`).
    pub fn output_padding(mut self, p: impl IntoPair) -> Self {
        self.cfg.output_padding = Some(p.into_pair());
        self
    }

    fn bad_input(&self, input_shape: &[usize], expected: String) -> Error {
        Error::IncompatibleInput {
            layer: self.name.clone(),
            class: "Conv2DTranspose",
            expected,
            got: input_shape.to_vec(),
        }
    }

    fn config_error(&self, msg: String) -> Error {
        Error::config(format!("Conv2DTranspose \"{}\"", self.name), msg)
    }

    /// The output length of one spatial axis (Keras's `deconv_output_length`).
    fn out_len(&self, axis: usize, input: usize) -> Result<usize> {
        let c = &self.cfg;
        let pick = |p: (usize, usize)| if axis == 0 { p.0 } else { p.1 };
        let (k, s, d) = (pick(c.kernel_size), pick(c.strides), pick(c.dilation_rate));
        deconv_output_length(input, (k, s, d), c.padding, c.output_padding.map(pick))
            .map_err(|msg| self.config_error(format!("{msg} (axis {})", axis + 1)))
    }

    /// The output `(height, width)` for an input `[h, w, c]`, checked against the
    /// forward convolution it transposes.
    fn out_hw(&self, input_shape: &[usize]) -> Result<(usize, usize)> {
        if input_shape.len() != 3 || input_shape[2] == 0 {
            return Err(self.bad_input(input_shape, "[height, width, channels] (rank 3, NHWC)".into()));
        }
        if self.cfg.filters == 0 {
            return Err(self.config_error("filters must be >= 1".into()));
        }
        let hw = (self.out_len(0, input_shape[0])?, self.out_len(1, input_shape[1])?);
        let (kh, kw) = self.cfg.kernel_size;
        let c = &self.cfg;
        Conv2dParams::transposed(
            "Conv2DTranspose",
            &Shape::from([1, input_shape[0], input_shape[1], input_shape[2]]),
            &Shape::from([kh, kw, c.filters, input_shape[2]]),
            hw,
            c.strides,
            c.padding,
            c.dilation_rate,
        )
        .map_err(|e| self.bad_input(input_shape, format!("a size this layer's geometry can transpose ({e})")))?;
        Ok(hw)
    }
}

/// Keras's `deconv_output_length`: the output length of a transposed convolution along one
/// axis of length `input` with window, stride and dilation `(k, s, d)`: `input * s` with
/// `same` padding, `input * s + max(eff - s, 0)` with `valid` (`eff` the dilated window);
/// with `output_padding` `op` (below `s`), `(input - 1) * s + eff + op - 2 * pad`. An error
/// message for a bad geometry or an empty output.
pub(crate) fn deconv_output_length(
    input: usize,
    (k, s, d): (usize, usize, usize),
    padding: Padding,
    output_padding: Option<usize>,
) -> std::result::Result<usize, String> {
    if k == 0 || s == 0 || d == 0 {
        return Err("kernel_size, strides and dilation_rate must be >= 1".into());
    }
    let eff = (k - 1).saturating_mul(d).saturating_add(1);
    let len = match output_padding {
        None => match padding {
            Padding::Valid => input.saturating_mul(s).saturating_add(eff.saturating_sub(s)),
            Padding::Same => input.saturating_mul(s),
        },
        Some(op) => {
            if op >= s {
                return Err(format!("output_padding {op} must be below the stride {s}"));
            }
            let pad = if padding == Padding::Same { eff / 2 } else { 0 };
            ((input.max(1) - 1).saturating_mul(s).saturating_add(eff) + op).saturating_sub(2 * pad)
        }
    };
    if len == 0 {
        return Err("the output would be empty".into());
    }
    Ok(len)
}

impl Layer for Conv2DTranspose {
    layer_common!("Conv2DTranspose");

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<()> {
        self.out_hw(input_shape)?;
        if self.cfg.groups != 1 {
            return Err(Error::config(
                crate::layer::describe(self),
                format!("groups must be 1 for a transposed convolution (as in Keras), got {}", self.cfg.groups),
            ));
        }
        let c = input_shape[2];
        if !needs_build(self.in_channels, c, |e| self.bad_input(input_shape, e))? {
            return Ok(());
        }
        let (kh, kw) = self.cfg.kernel_size;
        self.kernel = Some(Param::new(self.cfg.kernel_initializer.sample(&[kh, kw, self.cfg.filters, c], rng)?));
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
        let (oh, ow) = self.out_hw(input_shape)?;
        Ok(vec![oh, ow, self.cfg.filters])
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let k = built(&self.kernel, self)?;
        check_batch_rank(x, 3, self)?;
        let hw = self.out_hw(&x.dims()[1..])?;
        let c = &self.cfg;
        let y = x.conv2d_transpose(&ctx.param(k)?, hw, c.strides, c.padding, c.dilation_rate)?;
        match &self.bias {
            Some(b) => Ok(y.add(&ctx.param(b)?)?),
            None => Ok(y),
        }
    }

    kernel_bias_layer_methods!();
}
