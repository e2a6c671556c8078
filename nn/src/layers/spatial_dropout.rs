//! [`SpatialDropout1D`], [`SpatialDropout2D`] and [`SpatialDropout3D`]: dropout of whole
//! channels (feature maps), sharing [`Dropout`](crate::Dropout)'s core with a noise shape of
//! one draw per (sample, channel).

use crate::layer::{check_batch_rank, check_sample_rank, common_builders, layer_common, shape_preserving_layer};
use crate::layer::{with_name, Ctx, Layer};
use crate::layers::dropout::{check_rate, dropout};
use crate::Result;
use keel_autograd::Var;

/// Define a spatial dropout layer: name, Keras class name, the spatial rank and the
/// per-sample layout it expects (channels last).
macro_rules! spatial_dropout_layer {
    ($(#[$doc:meta])* $name:ident, $class:literal, $spatial:literal, $layout:literal) => {
        $(#[$doc])*
        pub struct $name {
            name: String,
            input_shape: Option<Vec<usize>>,
            rate: f64,
            built: bool,
        }

        common_builders!($name);

        impl $name {
            /// Drop a fraction `rate` (in `[0, 1)`) of the channels in training.
            pub fn new(rate: f64) -> Self {
                $name { name: String::new(), input_shape: None, rate, built: false }
            }

            /// The drop rate.
            pub fn rate(&self) -> f64 {
                self.rate
            }

            fn check(&self, input_shape: &[usize]) -> Result<()> {
                check_rate($class, &self.name, self.rate)?;
                check_sample_rank(input_shape, $spatial + 1, $layout, self)
            }
        }

        impl Layer for $name {
            layer_common!($class);
            shape_preserving_layer!();

            fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
                check_rate($class, &self.name, self.rate)?;
                check_batch_rank(x, $spatial + 1, self)?;
                // one draw per (sample, channel), shared along every spatial axis
                let dims = x.dims();
                let mut noise_shape = vec![1; dims.len()];
                noise_shape[0] = dims[0];
                noise_shape[$spatial + 1] = dims[$spatial + 1];
                dropout(x, self.rate, &noise_shape, &self.name, ctx)
            }

            fn config(&self) -> serde_json::Value {
                with_name(&self.name, serde_json::json!({ "rate": self.rate }))
            }
        }
    };
}

spatial_dropout_layer!(
    /// Dropout of whole 1-D feature maps: on `[steps, channels]`, in training each
    /// (sample, channel) is zeroed with probability `rate` along every step, and kept ones
    /// are scaled by `1 / (1 - rate)`; in inference it is the identity.
    SpatialDropout1D, "SpatialDropout1D", 1, "[steps, channels]"
);
spatial_dropout_layer!(
    /// Dropout of whole 2-D feature maps: on `[height, width, channels]` (NHWC), in training
    /// each (sample, channel) is zeroed with probability `rate` over the whole image, and
    /// kept ones are scaled by `1 / (1 - rate)`; in inference it is the identity.
    SpatialDropout2D, "SpatialDropout2D", 2, "[height, width, channels]"
);
spatial_dropout_layer!(
    /// Dropout of whole 3-D feature maps: on `[dim1, dim2, dim3, channels]`, in training each
    /// (sample, channel) is zeroed with probability `rate` over the whole volume, and kept
    /// ones are scaled by `1 / (1 - rate)`; in inference it is the identity.
    SpatialDropout3D, "SpatialDropout3D", 3, "[dim1, dim2, dim3, channels]"
);
