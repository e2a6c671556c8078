//! [`ActivationLayer`]: Keras's `layers.Activation` (an activation as its own layer).

use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer};
use crate::{Activation, Result};
use keel_autograd::Var;
use keel_tensor::rng::Rng;

/// Apply an [`Activation`] (class name "Activation", as in Keras).
pub struct ActivationLayer {
    name: String,
    input_shape: Option<Vec<usize>>,
    activation: Activation,
    built: bool,
}

common_builders!(ActivationLayer);

impl ActivationLayer {
    /// A layer applying `activation`.
    pub fn new(activation: Activation) -> Self {
        ActivationLayer { name: String::new(), input_shape: None, activation, built: false }
    }
}

impl Layer for ActivationLayer {
    layer_common!("Activation");

    fn supports_masking(&self) -> bool {
        true
    }

    fn build(&mut self, _input_shape: &[usize], _rng: &mut Rng) -> Result<()> {
        self.built = true;
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.built
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(input_shape.to_vec())
    }

    fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
        Ok(x.clone())
    }

    fn output_activation(&self) -> Option<Activation> {
        (!self.activation.is_linear()).then_some(self.activation)
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "activation": self.activation }))
    }
}
