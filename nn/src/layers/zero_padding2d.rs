//! [`ZeroPadding2D`]: zero rows and columns added around an NHWC image.

use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer};
use crate::layers::spatial::{margin_layer, per_sample, IntoMargins, MarginOp, Margins};
use crate::Result;
use keel_autograd::Var;

margin_layer!(
    /// Keras's `ZeroPadding2D(padding)`: zero rows at the top and bottom and zero columns
    /// left and right, `[h, w, c] -> [top + h + bottom, left + w + right, c]`. `padding` is
    /// an int (every side), `(symmetric_height, symmetric_width)` or
    /// `((top, bottom), (left, right))`. No weights.
    ZeroPadding2D,
    "ZeroPadding2D",
    2,
    padding,
    MarginOp::Pad
);
