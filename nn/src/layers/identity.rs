//! [`Identity`]: returns its input unchanged (Keras's placeholder layer).

use crate::layer::{common_builders, layer_common, shape_preserving_layer, with_name, Ctx, Layer};
use crate::Result;
use keel_autograd::Var;

/// The identity (Keras's `Identity`): a placeholder where a model needs a layer that does
/// nothing, e.g. an optional block switched off. It passes its input's mask on.
pub struct Identity {
    name: String,
    input_shape: Option<Vec<usize>>,
    built: bool,
}

common_builders!(Identity);

impl Default for Identity {
    fn default() -> Self {
        Identity::new()
    }
}

impl Identity {
    /// The identity layer.
    pub fn new() -> Self {
        Identity { name: String::new(), input_shape: None, built: false }
    }

    fn check(&self, _input_shape: &[usize]) -> Result<()> {
        Ok(())
    }
}

impl Layer for Identity {
    layer_common!("Identity");
    shape_preserving_layer!();

    fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
        Ok(x.clone())
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({}))
    }
}
