//! [`AveragePooling1D`]: the mean over each window (padding excluded) of a sequence, per channel.

use crate::layer::{check_batch_rank, common_builders, layer_common, with_name, Ctx, Layer};
use crate::layers::pooling::pool1d_layer;
use crate::layers::Pool1DConfig;
use crate::Result;
use keel_autograd::Var;
use keel_tensor::Padding;

pool1d_layer!(
    /// 1-D average pooling over `[steps, channels]` (`strides` default to `pool_size`, padding `valid`).
    AveragePooling1D,
    "AveragePooling1D",
    avg_pool2d
);
