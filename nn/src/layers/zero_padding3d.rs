//! [`ZeroPadding3D`]: zero planes, rows and columns added around an NDHWC volume.

use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer};
use crate::layers::spatial::{margin_layer, per_sample, IntoMargins, MarginOp, Margins};
use crate::Result;
use keel_autograd::Var;

margin_layer!(
    /// Keras's `ZeroPadding3D(padding)`: zeros added before and after the depth, height and
    /// width axes, `[d, h, w, c] -> [front + d + back, top + h + bottom, left + w + right, c]`.
    /// `padding` is an int (every side), `(symmetric_depth, symmetric_height, symmetric_width)`
    /// or `((front, back), (top, bottom), (left, right))`. No weights.
    ZeroPadding3D,
    "ZeroPadding3D",
    3,
    padding,
    MarginOp::Pad
);
