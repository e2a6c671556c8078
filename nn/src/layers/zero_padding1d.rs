//! [`ZeroPadding1D`]: zeros added at both ends of the steps of a `[steps, channels]` sequence.

use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer};
use crate::layers::spatial::{margin_layer, per_sample, IntoMargins, MarginOp, Margins};
use crate::Result;
use keel_autograd::Var;

margin_layer!(
    /// Keras's `ZeroPadding1D(padding)`: `[steps, channels] -> [left + steps + right, channels]`,
    /// `padding` an int (both ends) or `(left, right)`. No weights.
    ZeroPadding1D,
    "ZeroPadding1D",
    1,
    padding,
    MarginOp::Pad
);
