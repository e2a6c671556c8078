//! [`Add`]: the elementwise sum of several inputs (functional API merge layer).

use crate::layer::{layer_common, with_name, Ctx, Layer};
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::rng::Rng;

/// Sum of two or more inputs of the same shape (a ResNet skip connection).
#[derive(Default)]
pub struct Add {
    name: String,
    input_shape: Option<Vec<usize>>,
    built: bool,
}

impl Add {
    /// A new Add layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Give the layer a name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

impl Layer for Add {
    layer_common!("Add");

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<()> {
        self.build_multi(&[input_shape.to_vec()], rng)
    }

    fn is_built(&self) -> bool {
        self.built
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        self.output_shape_multi(&[input_shape.to_vec()])
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        self.forward_logits_multi(std::slice::from_ref(x), ctx)
    }

    fn build_multi(&mut self, input_shapes: &[Vec<usize>], _rng: &mut Rng) -> Result<()> {
        self.output_shape_multi(input_shapes)?;
        self.built = true;
        Ok(())
    }

    fn output_shape_multi(&self, input_shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
        let Some(first) = input_shapes.first() else {
            return Err(Error::Graph(format!("Add \"{}\" needs at least one input", self.name)));
        };
        if let Some(bad) = input_shapes.iter().find(|s| *s != first) {
            return Err(Error::IncompatibleInput {
                layer: self.name.clone(),
                class: "Add",
                expected: format!("every input of shape {first:?}"),
                got: bad.clone(),
            });
        }
        Ok(first.clone())
    }

    fn forward_logits_multi(&self, xs: &[Var], _ctx: &mut Ctx<'_>) -> Result<Var> {
        let Some((first, rest)) = xs.split_first() else {
            return Err(Error::Graph(format!("Add \"{}\" needs at least one input", self.name)));
        };
        let mut acc = first.clone();
        for x in rest {
            acc = acc.add(x)?;
        }
        Ok(acc)
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({}))
    }
}
