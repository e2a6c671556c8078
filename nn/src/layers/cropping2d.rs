//! [`Cropping2D`]: rows and columns cut off the edges of an NHWC image.

use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer};
use crate::layers::spatial::{margin_layer, per_sample, IntoMargins, MarginOp, Margins};
use crate::Result;
use keel_autograd::Var;

margin_layer!(
    /// Keras's `Cropping2D(cropping)`: rows cut at the top and bottom and columns left and
    /// right, `[h, w, c] -> [h - top - bottom, w - left - right, c]`. `cropping` is an int
    /// (every side), `(symmetric_height, symmetric_width)` or `((top, bottom), (left, right))`;
    /// at least one row and one column must remain. No weights.
    Cropping2D,
    "Cropping2D",
    2,
    cropping,
    MarginOp::Crop
);
