//! [`Cropping3D`]: planes, rows and columns cut off the edges of an NDHWC volume.

use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer};
use crate::layers::spatial::{margin_layer, per_sample, IntoMargins, MarginOp, Margins};
use crate::Result;
use keel_autograd::Var;

margin_layer!(
    /// Keras's `Cropping3D(cropping)`: entries cut before and after the depth, height and
    /// width axes, `[d, h, w, c] -> [d - front - back, h - top - bottom, w - left - right, c]`.
    /// `cropping` is an int (every side), `(symmetric_depth, symmetric_height,
    /// symmetric_width)` or `((front, back), (top, bottom), (left, right))`; at least one
    /// entry must remain on every axis. No weights.
    Cropping3D,
    "Cropping3D",
    3,
    cropping,
    MarginOp::Crop
);
