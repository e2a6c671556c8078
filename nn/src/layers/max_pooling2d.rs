//! [`MaxPooling2D`]: the maximum over each window of an NHWC image.

use crate::layer::{check_batch_rank, common_builders, layer_common, with_name, Ctx, IntoPair, Layer};
use crate::layers::pooling::pool2d_layer;
use crate::layers::Pool2DConfig;
use crate::Result;
use keel_autograd::Var;
use keel_tensor::Padding;

pool2d_layer!(
    /// 2-D max pooling (`strides` default to `pool_size`, padding `valid`).
    MaxPooling2D,
    "MaxPooling2D",
    max_pool2d
);
