//! [`AveragePooling2D`]: the mean over each window (padding excluded) of an NHWC image.

use crate::layer::{check_batch_rank, common_builders, layer_common, with_name, Ctx, IntoPair, Layer};
use crate::layers::pooling::pool2d_layer;
use crate::layers::Pool2DConfig;
use crate::Result;
use keel_autograd::Var;
use keel_tensor::Padding;

pool2d_layer!(
    /// 2-D average pooling (`strides` default to `pool_size`, padding `valid`).
    AveragePooling2D,
    "AveragePooling2D",
    avg_pool2d
);
