//! [`AveragePooling3D`]: the mean over each window (padding excluded) of an NDHWC volume.

use crate::layer::{check_batch_rank, common_builders, layer_common, with_name, Ctx, IntoTriple, Layer};
use crate::layers::pooling::pool3d_layer;
use crate::layers::spatial::per_sample;
use crate::layers::Pool3DConfig;
use crate::Result;
use keel_autograd::Var;
use keel_tensor::Padding;

pool3d_layer!(
    /// 3-D average pooling (`strides` default to `pool_size`, padding `valid`; with `same`
    /// padding a window's mean is over its cells inside the volume, as TensorFlow's).
    AveragePooling3D,
    "AveragePooling3D",
    avg_pool2d
);
