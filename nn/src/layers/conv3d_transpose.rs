//! [`Conv3DTranspose`]: transposed 3-D convolution (learned upsampling) over NDHWC volumes
//! with a `[kd, kh, kw, filters, in]` kernel, composed as one transposed 2-D convolution (no
//! kernel of its own).
//!
//! Output depth `z` receives input depth slice `i` through kernel tap `k` when
//! `z + pad = i * stride + k * dilation` (`pad` the leading padding of the forward
//! convolution it transposes). One `index_select` gathers, for every `(z, k)`, that slice (or
//! a zero slice where there is none), `[n, od * kd, h, w, c]`, rearranged into `n * od`
//! images `[h, w, kd * c]` (tap `k`'s channels at `k * c..`); the kernel rearranged to
//! `[kh, kw, filters, kd * c]` in the same order makes one `conv2d_transpose` over height and
//! width compute every output plane (it sums over its input channels, so over the taps).
//! Keras's weight layout is kept, so saved kernels are interchangeable.

use crate::layer::{
    built, check_batch_rank, common_builders, kernel_bias_builders, kernel_bias_layer_methods, layer_common,
    needs_build, Ctx, IntoTriple, Layer,
};
use crate::layers::conv2d_transpose::deconv_output_length;
use crate::layers::conv3d::conv3d_builders;
use crate::layers::spatial::per_sample;
use crate::layers::Conv3DConfig;
use crate::{Activation, Error, Initializer, Result};
use keel_autograd::{Param, Var};
use keel_tensor::ops::conv::conv_out_dim;
use keel_tensor::rng::Rng;
use keel_tensor::{Padding, Tensor};
use serde::{Deserialize, Serialize};

/// The hyper-parameters of [`Conv3DTranspose`] (its Keras config): those of
/// [`Conv3DConfig`] and `output_padding`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conv3DTransposeConfig {
    /// Filters, window, strides, padding, dilation, activation, bias, initializers, penalties.
    #[serde(flatten)]
    pub conv: Conv3DConfig,
    /// Extra slices/rows/columns added at the back/bottom/right of the output (each below
    /// its stride), or `None` for Keras's default size.
    #[serde(default)]
    pub output_padding: Option<(usize, usize, usize)>,
}

impl std::ops::Deref for Conv3DTransposeConfig {
    type Target = Conv3DConfig;
    fn deref(&self) -> &Conv3DConfig {
        &self.conv
    }
}

impl std::ops::DerefMut for Conv3DTransposeConfig {
    fn deref_mut(&mut self) -> &mut Conv3DConfig {
        &mut self.conv
    }
}

/// Transposed 3-D convolution (Keras's `Conv3DTranspose`): `[d, h, w, c] -> [od, oh, ow,
/// filters]` with kernel `[kd, kh, kw, filters, c]`, the gradient of a
/// [`Conv3D`](crate::layers::Conv3D) wrt its input. With `padding="same"` each output axis is
/// `input * strides`; with `"valid"` `input * strides + max(k - strides, 0)` (dilated `k`),
/// as in Keras.
///
/// ```
/// use keel_nn::prelude::*;
///
/// # fn main() -> keel_nn::Result<()> {
/// let mut model = Sequential::new();
/// model.add(Conv3DTranspose::new(4, 3).strides(2).padding(Padding::Same).input_shape([3, 5, 5, 2]));
/// assert_eq!(model.output_shapes()?, vec![vec![6, 10, 10, 4]]);
/// assert_eq!(model.count_params(), 27 * 4 * 2 + 4);
/// # Ok(())
/// # }
/// ```
pub struct Conv3DTranspose {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: Conv3DTransposeConfig,
    in_channels: Option<usize>,
    kernel: Option<Param>,
    bias: Option<Param>,
}

common_builders!(Conv3DTranspose);
kernel_bias_builders!(Conv3DTranspose);
conv3d_builders!(Conv3DTranspose, Conv3DTransposeConfig, "[kd, kh, kw, filters, in]");

/// The three components of a triple, as an array.
fn axes(t: (usize, usize, usize)) -> [usize; 3] {
    [t.0, t.1, t.2]
}

impl Conv3DTranspose {
    /// `filters` output channels with window `kernel_size` (`3` or `(kd, kh, kw)`; stride 1,
    /// valid padding, linear).
    pub fn new(filters: usize, kernel_size: impl IntoTriple) -> Self {
        Conv3DTranspose::from_config(Conv3DTransposeConfig {
            conv: Conv3DConfig {
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
            },
            output_padding: None,
        })
    }

    /// A Conv3DTranspose layer from its config.
    pub fn from_config(cfg: Conv3DTransposeConfig) -> Self {
        Conv3DTranspose { name: String::new(), input_shape: None, cfg, in_channels: None, kernel: None, bias: None }
    }

    /// Add `(slices, rows, columns)` at the back/bottom/right of the output (`1` or a
    /// triple); each must be below its stride (Keras's `output_padding`).
    pub fn output_padding(mut self, p: impl IntoTriple) -> Self {
        self.cfg.output_padding = Some(p.into_triple());
        self
    }

    const LAYOUT: &'static str = "[depth, height, width, channels] (rank 4, NDHWC, no empty axis)";

    fn bad_input(&self, input_shape: &[usize], expected: String) -> Error {
        Error::IncompatibleInput {
            layer: self.name.clone(),
            class: "Conv3DTranspose",
            expected,
            got: input_shape.to_vec(),
        }
    }

    fn config_error(&self, msg: String) -> Error {
        Error::config(format!("Conv3DTranspose \"{}\"", self.name), msg)
    }

    /// The output `[od, oh, ow]` for an input `[d, h, w, c]` and the leading padding of the
    /// forward convolution along depth, checked against that convolution (each output axis
    /// must convolve back to the input's, as TensorFlow requires).
    fn geometry(&self, input_shape: &[usize]) -> Result<([usize; 3], usize)> {
        if input_shape.len() != 4 || input_shape.contains(&0) {
            return Err(self.bad_input(input_shape, Self::LAYOUT.into()));
        }
        let c = &self.cfg;
        if c.filters == 0 {
            return Err(self.config_error("filters must be >= 1".into()));
        }
        let (k, s, d) = (axes(c.kernel_size), axes(c.strides), axes(c.dilation_rate));
        let op = c.output_padding.map(axes);
        let (mut out, mut depth_pad) = ([0; 3], 0);
        for a in 0..3 {
            out[a] = deconv_output_length(input_shape[a], (k[a], s[a], d[a]), c.padding, op.map(|p| p[a]))
                .map_err(|msg| self.config_error(format!("{msg} (axis {})", a + 1)))?;
            let (back, before) = conv_out_dim("Conv3DTranspose", out[a], k[a], s[a], d[a], c.padding).map_err(|e| {
                self.bad_input(input_shape, format!("a size this layer's geometry can transpose ({e})"))
            })?;
            if back != input_shape[a] {
                return Err(self.bad_input(
                    input_shape,
                    format!(
                        "a size this layer's geometry can transpose (an output of {} along axis {} convolves back to \
                         {back}, not {})",
                        out[a],
                        a + 1,
                        input_shape[a]
                    ),
                ));
            }
            if a == 0 {
                depth_pad = before;
            }
        }
        Ok((out, depth_pad))
    }

    /// The transposed convolution of the batch `x` `[n, d, h, w, c]` with a given `kernel`
    /// `[kd, kh, kw, filters, c]`, without bias or activation: the layer's function with its
    /// weight passed in, e.g. for a gradient check.
    pub fn forward_with_kernel(&self, x: &Var, kernel: &Var) -> Result<Var> {
        check_batch_rank(x, 4, self)?;
        let ([od, oh, ow], pad) = self.geometry(per_sample(x))?;
        let c = &self.cfg;
        let (kd, kh, kw) = c.kernel_size;
        let &[n, d, h, w, ch] = x.dims() else { return Err(self.bad_input(per_sample(x), Self::LAYOUT.into())) };
        let kdims = kernel.dims();
        if kdims.len() != 5 || kdims[..4] != [kd, kh, kw, c.filters] {
            return Err(self.config_error(format!(
                "the kernel is {kdims:?}, expected [{kd}, {kh}, {kw}, {}, in_channels]",
                c.filters
            )));
        }
        if kdims[4] != ch {
            return Err(self.bad_input(per_sample(x), format!("{} channels (the kernel is {kdims:?})", kdims[4])));
        }
        // the input slice of every (output depth z, tap k), or `d` (a zero slice) for none
        let (sd, dd) = (c.strides.0, c.dilation_rate.0);
        let taps: Vec<i64> = (0..od)
            .flat_map(|z| {
                (0..kd).map(move |k| {
                    let t = (z + pad).checked_sub(k * dd).filter(|t| t % sd == 0).map(|t| t / sd);
                    t.filter(|&i| i < d).unwrap_or(d) as i64
                })
            })
            .collect();
        let x = if taps.len() == d && taps.iter().enumerate().all(|(i, &t)| t == i as i64) {
            x.clone() // every slice once, in order (a 1-deep window at stride 1)
        } else {
            let x = if taps.contains(&(d as i64)) {
                let zeros = Var::constant(Tensor::zeros(vec![n, 1, h, w, ch], x.dtype(), &x.device())?);
                Var::concat(&[x, &zeros], 1)?
            } else {
                x.clone()
            };
            let len = taps.len();
            x.index_select(&Tensor::from_vec(taps, len)?.to_device(&x.device())?, 1)?
        };
        let (x, kernel) = if kd == 1 {
            (x.reshape(vec![n * od, h, w, ch])?, kernel.reshape(vec![kh, kw, c.filters, ch])?)
        } else {
            let x = x.reshape(vec![n, od, kd, h, w, ch])?.permute(&[0, 1, 3, 4, 2, 5])?;
            let kernel = kernel.permute(&[1, 2, 3, 0, 4])?;
            (x.reshape(vec![n * od, h, w, kd * ch])?, kernel.reshape(vec![kh, kw, c.filters, kd * ch])?)
        };
        let (s, dil) = ((c.strides.1, c.strides.2), (c.dilation_rate.1, c.dilation_rate.2));
        let y = x.conv2d_transpose(&kernel, (oh, ow), s, c.padding, dil)?;
        Ok(y.reshape(vec![n, od, oh, ow, c.filters])?)
    }
}

impl Layer for Conv3DTranspose {
    layer_common!("Conv3DTranspose");

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<()> {
        self.geometry(input_shape)?;
        let c = input_shape[3];
        if !needs_build(self.in_channels, c, |e| self.bad_input(input_shape, e))? {
            return Ok(());
        }
        let (kd, kh, kw) = self.cfg.kernel_size;
        let f = self.cfg.filters;
        self.kernel = Some(Param::new(self.cfg.kernel_initializer.sample(&[kd, kh, kw, f, c], rng)?));
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
        let ([od, oh, ow], _) = self.geometry(input_shape)?;
        Ok(vec![od, oh, ow, self.cfg.filters])
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let k = built(&self.kernel, self)?;
        check_batch_rank(x, 4, self)?;
        if let Some(c) = self.in_channels.filter(|&c| c != x.dims()[4]) {
            return Err(self.bad_input(per_sample(x), format!("{c} channels (the layer is built for them)")));
        }
        let y = self.forward_with_kernel(x, &ctx.param(k)?)?;
        match &self.bias {
            Some(b) => Ok(y.add(&ctx.param(b)?)?),
            None => Ok(y),
        }
    }

    kernel_bias_layer_methods!();
}
