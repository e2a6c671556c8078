//! [`Cropping1D`]: steps cut off both ends of a `[steps, channels]` sequence.

use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer};
use crate::layers::spatial::{margin_layer, per_sample, IntoMargins, MarginOp, Margins};
use crate::Result;
use keel_autograd::Var;

margin_layer!(
    /// Keras's `Cropping1D(cropping)`: `[steps, channels] -> [steps - left - right, channels]`,
    /// `cropping` an int (both ends) or `(left, right)`; at least one step must remain. No weights.
    Cropping1D,
    "Cropping1D",
    1,
    cropping,
    MarginOp::Crop
);
