//! [`MaxPooling1D`]: the maximum over each window of a sequence, per channel.

use crate::layer::{check_batch_rank, common_builders, layer_common, with_name, Ctx, Layer};
use crate::layers::pooling::pool1d_layer;
use crate::layers::Pool1DConfig;
use crate::Result;
use keel_autograd::Var;
use keel_tensor::Padding;

pool1d_layer!(
    /// 1-D max pooling over `[steps, channels]` (`strides` default to `pool_size`, padding `valid`).
    MaxPooling1D,
    "MaxPooling1D",
    max_pool2d
);
