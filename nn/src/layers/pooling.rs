//! Shared code of the 1-D, 2-D and 3-D pooling layers.

use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::ops::conv::conv_out_dim;
use keel_tensor::Padding;
use serde::{Deserialize, Serialize};

/// The hyper-parameters of a 2-D pooling layer (its Keras config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool2DConfig {
    /// Window `(height, width)`.
    pub pool_size: (usize, usize),
    /// Strides (Keras default: the pool size).
    pub strides: (usize, usize),
    /// `valid` or `same`.
    #[serde(with = "crate::layers::padding_serde")]
    pub padding: Padding,
}

impl Pool2DConfig {
    pub(crate) fn new(pool: (usize, usize)) -> Self {
        Pool2DConfig { pool_size: pool, strides: pool, padding: Padding::Valid }
    }

    pub(crate) fn output_shape(&self, layer: &str, class: &'static str, input: &[usize]) -> Result<Vec<usize>> {
        let bad = |expected: String| Error::IncompatibleInput {
            layer: layer.to_string(),
            class,
            expected,
            got: input.to_vec(),
        };
        if input.len() != 3 {
            return Err(bad("[height, width, channels] (rank 3, NHWC)".into()));
        }
        let o = |i: usize, k: usize, s: usize| {
            conv_out_dim(class, input[i], k, s, 1, self.padding)
                .map(|(o, _)| o)
                .map_err(|e| bad(format!("an image large enough for the window ({e})")))
        };
        Ok(vec![o(0, self.pool_size.0, self.strides.0)?, o(1, self.pool_size.1, self.strides.1)?, input[2]])
    }
}

/// Define a 2-D pooling layer: name, Keras class name, and the `Var` pooling op.
macro_rules! pool2d_layer {
    ($(#[$doc:meta])* $name:ident, $class:literal, $op:ident) => {
        $(#[$doc])*
        pub struct $name {
            name: String,
            input_shape: Option<Vec<usize>>,
            cfg: Pool2DConfig,
            built: bool,
        }

        common_builders!($name);

        impl $name {
            /// Pool over `pool_size` windows, stride = `pool_size`.
            pub fn new(pool_size: impl IntoPair) -> Self {
                $name::from_config(Pool2DConfig::new(pool_size.into_pair()))
            }

            /// From a config.
            pub fn from_config(cfg: Pool2DConfig) -> Self {
                $name { name: String::new(), input_shape: None, cfg, built: false }
            }

            /// Set the strides.
            pub fn strides(mut self, s: impl IntoPair) -> Self {
                self.cfg.strides = s.into_pair();
                self
            }

            /// Set the padding.
            pub fn padding(mut self, p: Padding) -> Self {
                self.cfg.padding = p;
                self
            }
        }

        impl Layer for $name {
            layer_common!($class);

            $crate::layer::weightless_build!();

            fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
                self.cfg.output_shape(&self.name, $class, input_shape)
            }

            fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
                check_batch_rank(x, 3, self)?;
                Ok(x.$op(self.cfg.pool_size, self.cfg.strides, self.cfg.padding)?)
            }

            fn config(&self) -> serde_json::Value {
                with_name(&self.name, serde_json::to_value(&self.cfg).unwrap_or_default())
            }
        }
    };
}

pub(crate) use pool2d_layer;

/// The hyper-parameters of a 1-D pooling layer (its Keras config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool1DConfig {
    /// Window length.
    pub pool_size: usize,
    /// Stride (Keras default: the pool size).
    pub strides: usize,
    /// `valid` or `same`.
    #[serde(with = "crate::layers::padding_serde")]
    pub padding: Padding,
}

impl Pool1DConfig {
    pub(crate) fn new(pool: usize) -> Self {
        Pool1DConfig { pool_size: pool, strides: pool, padding: Padding::Valid }
    }

    /// As a 2-D pooling over `[1, steps, channels]` images.
    pub(crate) fn as_2d(&self) -> Pool2DConfig {
        Pool2DConfig { pool_size: (1, self.pool_size), strides: (1, self.strides), padding: self.padding }
    }

    pub(crate) fn output_shape(&self, layer: &str, class: &'static str, input: &[usize]) -> Result<Vec<usize>> {
        if input.len() != 2 {
            return Err(Error::IncompatibleInput {
                layer: layer.to_string(),
                class,
                expected: "[steps, channels] (rank 2)".into(),
                got: input.to_vec(),
            });
        }
        let out = self.as_2d().output_shape(layer, class, &[1, input[0], input[1]])?;
        Ok(out[1..].to_vec())
    }
}

/// Define a 1-D pooling layer: name, Keras class name, and the `Var` 2-D pooling op it
/// runs over `[n, 1, steps, c]`.
macro_rules! pool1d_layer {
    ($(#[$doc:meta])* $name:ident, $class:literal, $op:ident) => {
        $(#[$doc])*
        pub struct $name {
            name: String,
            input_shape: Option<Vec<usize>>,
            cfg: Pool1DConfig,
            built: bool,
        }

        common_builders!($name);

        impl $name {
            /// Pool over windows of `pool_size` steps, stride = `pool_size`.
            pub fn new(pool_size: usize) -> Self {
                $name::from_config(Pool1DConfig::new(pool_size))
            }

            /// From a config.
            pub fn from_config(cfg: Pool1DConfig) -> Self {
                $name { name: String::new(), input_shape: None, cfg, built: false }
            }

            /// Set the stride.
            pub fn strides(mut self, s: usize) -> Self {
                self.cfg.strides = s;
                self
            }

            /// Set the padding.
            pub fn padding(mut self, p: Padding) -> Self {
                self.cfg.padding = p;
                self
            }
        }

        impl Layer for $name {
            layer_common!($class);

            $crate::layer::weightless_build!();

            fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
                self.cfg.output_shape(&self.name, $class, input_shape)
            }

            fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
                check_batch_rank(x, 2, self)?;
                let (n, steps, c) = (x.dims()[0], x.dims()[1], x.dims()[2]);
                let p = self.cfg.as_2d();
                let y = x.reshape(vec![n, 1, steps, c])?.$op(p.pool_size, p.strides, p.padding)?;
                let out_steps = y.dims()[2];
                Ok(y.reshape(vec![n, out_steps, c])?)
            }

            fn config(&self) -> serde_json::Value {
                with_name(&self.name, serde_json::to_value(&self.cfg).unwrap_or_default())
            }
        }
    };
}

pub(crate) use pool1d_layer;

/// The hyper-parameters of a 3-D pooling layer (its Keras config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool3DConfig {
    /// Window `(depth, height, width)`.
    pub pool_size: (usize, usize, usize),
    /// Strides (Keras default: the pool size).
    pub strides: (usize, usize, usize),
    /// `valid` or `same`.
    #[serde(with = "crate::layers::padding_serde")]
    pub padding: Padding,
}

/// A `Var` 2-D pooling op (`Var::max_pool2d` or `Var::avg_pool2d`).
pub(crate) type Pool2dOp = fn(&Var, (usize, usize), (usize, usize), Padding) -> keel_autograd::Result<Var>;

impl Pool3DConfig {
    pub(crate) fn new(pool: (usize, usize, usize)) -> Self {
        Pool3DConfig { pool_size: pool, strides: pool, padding: Padding::Valid }
    }

    pub(crate) fn output_shape(&self, layer: &str, class: &'static str, input: &[usize]) -> Result<Vec<usize>> {
        let bad = |expected: String| Error::IncompatibleInput {
            layer: layer.to_string(),
            class,
            expected,
            got: input.to_vec(),
        };
        if input.len() != 4 || input.contains(&0) {
            return Err(bad("[depth, height, width, channels] (rank 4, NDHWC, no empty axis)".into()));
        }
        let (p, s) = (self.pool_size, self.strides);
        let o = |i: usize, k: usize, s: usize| {
            conv_out_dim(class, input[i], k, s, 1, self.padding)
                .map(|(o, _)| o)
                .map_err(|e| bad(format!("a volume large enough for the window ({e})")))
        };
        Ok(vec![o(0, p.0, s.0)?, o(1, p.1, s.1)?, o(2, p.2, s.2)?, input[3]])
    }

    /// Pool the batch `x` (`[n, d, h, w, c]`, its shape already checked with
    /// [`Pool3DConfig::output_shape`]) with `op`: a 3-D window is a box, so its maximum (or
    /// its mean over the cells inside the input) is the maximum (mean) over depth of the
    /// maxima (means) over height and width. `op` pools height and width of the `n * d`
    /// images, then depth as the height of `[n, d, oh * ow * c, 1]` images, so the 2-D op's
    /// `same` padding rules (padding ignored by max, excluded from the mean's count) hold.
    pub(crate) fn pool(&self, x: &Var, op: Pool2dOp) -> Result<Var> {
        let &[n, d, h, w, c] = x.dims() else {
            return Err(Error::Tensor(keel_tensor::Error::InvalidShape {
                op: "pool3d",
                shape: x.shape().clone(),
                msg: "expected a batch [n, depth, height, width, channels]".into(),
            }));
        };
        let (p, s) = (self.pool_size, self.strides);
        let y = op(&x.reshape(vec![n * d, h, w, c])?, (p.1, p.2), (s.1, s.2), self.padding)?;
        let (oh, ow) = (y.dims()[1], y.dims()[2]);
        let y = op(&y.reshape(vec![n, d, oh * ow * c, 1])?, (p.0, 1), (s.0, 1), self.padding)?;
        let od = y.dims()[1];
        Ok(y.reshape(vec![n, od, oh, ow, c])?)
    }
}

/// Define a 3-D pooling layer: name, Keras class name, and the `Var` 2-D pooling op it
/// composes (see [`Pool3DConfig::pool`]).
macro_rules! pool3d_layer {
    ($(#[$doc:meta])* $name:ident, $class:literal, $op:ident) => {
        $(#[$doc])*
        pub struct $name {
            name: String,
            input_shape: Option<Vec<usize>>,
            cfg: Pool3DConfig,
            built: bool,
        }

        common_builders!($name);

        impl $name {
            /// Pool over `pool_size` windows, stride = `pool_size`.
            pub fn new(pool_size: impl IntoTriple) -> Self {
                $name::from_config(Pool3DConfig::new(pool_size.into_triple()))
            }

            /// From a config.
            pub fn from_config(cfg: Pool3DConfig) -> Self {
                $name { name: String::new(), input_shape: None, cfg, built: false }
            }

            /// Set the strides.
            pub fn strides(mut self, s: impl IntoTriple) -> Self {
                self.cfg.strides = s.into_triple();
                self
            }

            /// Set the padding.
            pub fn padding(mut self, p: Padding) -> Self {
                self.cfg.padding = p;
                self
            }

            /// The config.
            pub fn get_config(&self) -> &Pool3DConfig {
                &self.cfg
            }
        }

        impl Layer for $name {
            layer_common!($class);

            $crate::layer::weightless_build!();

            fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
                self.cfg.output_shape(&self.name, $class, input_shape)
            }

            fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
                check_batch_rank(x, 4, self)?;
                self.output_shape(per_sample(x))?;
                self.cfg.pool(x, Var::$op)
            }

            fn config(&self) -> serde_json::Value {
                with_name(&self.name, serde_json::to_value(&self.cfg).unwrap_or_default())
            }
        }
    };
}

pub(crate) use pool3d_layer;
