//! [`MaxPooling3D`]: the maximum over each window of an NDHWC volume.

use crate::layer::{check_batch_rank, common_builders, layer_common, with_name, Ctx, IntoTriple, Layer};
use crate::layers::pooling::pool3d_layer;
use crate::layers::spatial::per_sample;
use crate::layers::Pool3DConfig;
use crate::Result;
use keel_autograd::Var;
use keel_tensor::Padding;

pool3d_layer!(
    /// 3-D max pooling (`strides` default to `pool_size`, padding `valid`; `same` padding
    /// never wins a maximum).
    MaxPooling3D,
    "MaxPooling3D",
    max_pool2d
);
