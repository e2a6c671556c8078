//! Shared code of the 2-D pooling layers.

use crate::{Error, Result};
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
