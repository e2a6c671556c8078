//! [`ActivityRegularization`]: the identity, adding a penalty of its input to the loss.

use crate::layer::{check_scalar, common_builders, layer_common, shape_preserving_layer, with_name, Ctx, Layer};
use crate::{Regularizer, Result};
use keel_autograd::Var;

/// Keras's `ActivityRegularization(l1, l2)`: passes its input through unchanged and adds
/// `(l1 * sum(|x|) + l2 * sum(x^2)) / batch_size` to the loss (its
/// [`Layer::activity_regularizer`], applied by the model like any layer's; see
/// [`Ctx::add_activity_loss`]). Passes a mask on.
pub struct ActivityRegularization {
    name: String,
    input_shape: Option<Vec<usize>>,
    l1: f64,
    l2: f64,
    built: bool,
}

common_builders!(ActivityRegularization);

impl ActivityRegularization {
    /// The identity with an output penalty of factors `l1` and `l2` (each a finite number
    /// >= 0; Keras's defaults are 0).
    pub fn new(l1: f64, l2: f64) -> Self {
        ActivityRegularization { name: String::new(), input_shape: None, l1, l2, built: false }
    }

    /// The `(l1, l2)` factors.
    pub fn factors(&self) -> (f64, f64) {
        (self.l1, self.l2)
    }

    fn check(&self, _input_shape: &[usize]) -> Result<()> {
        check_scalar(self, "l1", self.l1, true)?;
        check_scalar(self, "l2", self.l2, true)
    }
}

impl Layer for ActivityRegularization {
    layer_common!("ActivityRegularization");
    shape_preserving_layer!();

    fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
        self.check(x.dims())?;
        Ok(x.clone())
    }

    fn activity_regularizer(&self) -> Option<Regularizer> {
        Some(Regularizer::l1_l2(self.l1, self.l2))
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "l1": self.l1, "l2": self.l2 }))
    }
}
