//! The elementwise merge layers of the functional API: [`Add`], [`Subtract`],
//! [`Multiply`], [`Average`], [`Maximum`], [`Minimum`] (Keras's, one macro).

use crate::layer::{layer_common, multi_input_layer, with_name, Ctx, Layer};
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::Tensor;

/// How a merge layer combines its inputs.
#[derive(Clone, Copy, PartialEq)]
enum Merge {
    Add,
    Subtract,
    Multiply,
    Average,
    Maximum,
    Minimum,
}

impl Merge {
    /// The output shape of `shapes` (all equal; exactly two for Subtract).
    fn shape(self, class: &'static str, name: &str, shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
        let Some(first) = shapes.first() else {
            return Err(Error::Graph(format!("{class} \"{name}\" needs at least one input")));
        };
        if self == Merge::Subtract && shapes.len() != 2 {
            return Err(Error::Graph(format!(
                "Subtract \"{name}\" takes exactly two inputs (a - b), got {}",
                shapes.len()
            )));
        }
        if let Some(bad) = shapes.iter().find(|s| *s != first) {
            return Err(Error::IncompatibleInput {
                layer: name.to_string(),
                class,
                expected: format!("every input of shape {first:?}"),
                got: bad.clone(),
            });
        }
        Ok(first.clone())
    }

    /// The inputs combined, left to right.
    fn forward(self, class: &'static str, name: &str, xs: &[Var]) -> Result<Var> {
        let Some((first, rest)) = xs.split_first() else {
            return Err(Error::Graph(format!("{class} \"{name}\" needs at least one input")));
        };
        let mut acc = first.clone();
        for x in rest {
            acc = match self {
                Merge::Add | Merge::Average => acc.add(x)?,
                Merge::Subtract => acc.sub(x)?,
                Merge::Multiply => acc.mul(x)?,
                Merge::Maximum => acc.maximum(x)?,
                Merge::Minimum => acc.minimum(x)?,
            };
        }
        if self == Merge::Average && xs.len() > 1 {
            acc = acc.div_scalar(xs.len() as f64)?;
        }
        Ok(acc)
    }
}

/// The logical and of the masks that are present (`None` when none is).
pub(crate) fn all_of(masks: &[Option<Tensor>]) -> Result<Option<Tensor>> {
    let mut acc: Option<Tensor> = None;
    for m in masks.iter().flatten() {
        let m = m.ne(&m.scalar_like(0.0)?)?;
        acc = Some(match acc {
            Some(a) => a.mul(&m)?,
            None => m,
        });
    }
    Ok(acc)
}

macro_rules! merge_layers {
    ($( $(#[$doc:meta])* $name:ident $kind:ident $class:literal; )*) => { $(
        $(#[$doc])*
        #[derive(Default)]
        pub struct $name {
            name: String,
            input_shape: Option<Vec<usize>>,
            built: bool,
        }

        impl $name {
            /// A new layer.
            pub fn new() -> Self {
                Self::default()
            }

            /// Give the layer a name.
            pub fn with_name(mut self, name: impl Into<String>) -> Self {
                self.name = name.into();
                self
            }
        }

        impl Layer for $name {
            layer_common!($class);

            multi_input_layer!();

            fn output_shape_multi(&self, input_shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
                Merge::$kind.shape($class, &self.name, input_shapes)
            }

            fn forward_logits_multi(&self, xs: &[Var], _ctx: &mut Ctx<'_>) -> Result<Var> {
                Merge::$kind.forward($class, &self.name, xs)
            }

            fn supports_masking(&self) -> bool {
                true
            }

            /// Keras: the positions every masked input keeps (the masks' logical and).
            fn compute_mask(&self, _xs: &[Var], masks: &[Option<Tensor>]) -> Result<Option<Tensor>> {
                all_of(masks)
            }

            fn config(&self) -> serde_json::Value {
                with_name(&self.name, serde_json::json!({}))
            }
        }
    )* };
}

merge_layers! {
    /// Sum of two or more inputs of the same shape (a ResNet skip connection).
    Add Add "Add";
    /// `a - b` of exactly two inputs of the same shape.
    Subtract Subtract "Subtract";
    /// Elementwise product of two or more inputs of the same shape (gating).
    Multiply Multiply "Multiply";
    /// Elementwise mean of two or more inputs of the same shape.
    Average Average "Average";
    /// Elementwise maximum of two or more inputs of the same shape (NaN propagates).
    Maximum Maximum "Maximum";
    /// Elementwise minimum of two or more inputs of the same shape (NaN propagates).
    Minimum Minimum "Minimum";
}
