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

/// Keras 3's merge mask: the logical or of the masks when every input has one, else none
/// (an unmasked input makes every position count).
pub(crate) fn any_of(masks: &[Option<Tensor>]) -> Result<Option<Tensor>> {
    let mut acc: Option<Tensor> = None;
    for m in masks {
        let Some(m) = m else { return Ok(None) };
        let m = m.ne(&m.scalar_like(0.0)?)?;
        acc = Some(match acc {
            Some(a) => or(&a, &m)?,
            None => m,
        });
    }
    Ok(acc)
}

/// The logical or of two 0/1 masks.
fn or(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let s = a.add(b)?;
    Ok(s.ne(&s.scalar_like(0.0)?)?)
}

/// `m` (nonzero: kept) as a condition broadcastable to `x` (a trailing axis added when the
/// mask has fewer axes, as Keras's `expand_dims(mask, -1)`).
fn cond_for(m: &Tensor, x: &Var) -> Result<Tensor> {
    let c = m.ne(&m.scalar_like(0.0)?)?.to_device(&x.device())?;
    Ok(if c.rank() < x.rank() { c.unsqueeze(-1)? } else { c })
}

impl Merge {
    /// Keras 3's masked merges: `Multiply` takes a masked entry as 1 (and zeroes the
    /// positions no input keeps when every input is masked); `Maximum` and `Minimum` skip
    /// masked entries (Keras's `_apply_merge_op_and_or_mask`); the others ignore masks.
    fn forward_masked(self, class: &'static str, name: &str, xs: &[Var], masks: &[Option<Tensor>]) -> Result<Var> {
        if !matches!(self, Merge::Multiply | Merge::Maximum | Merge::Minimum) || masks.len() != xs.len() {
            return self.forward(class, name, xs);
        }
        let conds: Vec<Option<Tensor>> =
            xs.iter().zip(masks).map(|(x, m)| m.as_ref().map(|m| cond_for(m, x)).transpose()).collect::<Result<_>>()?;
        if self == Merge::Multiply {
            let all = conds.iter().all(Option::is_some);
            let mut out: Option<Var> = None;
            let mut keep: Option<Tensor> = None;
            for (x, c) in xs.iter().zip(&conds) {
                let x = match c {
                    Some(c) => {
                        keep = Some(match keep {
                            Some(k) => or(&k, c)?,
                            None => c.clone(),
                        });
                        Var::where_cond(c, x, &Var::constant(x.value().scalar_like(1.0)?))?
                    }
                    None => x.clone(),
                };
                out = Some(match out {
                    Some(o) => o.mul(&x)?,
                    None => x,
                });
            }
            let Some(out) = out else { return self.forward(class, name, xs) };
            return match (all, keep) {
                (true, Some(k)) => {
                    Var::where_cond(&k, &out, &Var::constant(out.value().scalar_like(0.0)?)).map_err(Into::into)
                }
                _ => Ok(out),
            };
        }
        let mut out: Option<Var> = None;
        let mut out_cond: Option<Tensor> = None;
        for (x, c) in xs.iter().zip(&conds) {
            let Some(o) = out.take() else {
                out = Some(x.clone());
                out_cond = c.clone();
                continue;
            };
            let x = match c {
                Some(c) => Var::where_cond(c, x, &o)?,
                None => x.clone(),
            };
            let o = match &out_cond {
                Some(oc) => Var::where_cond(oc, &o, &x)?,
                None => o,
            };
            out_cond = match (out_cond, c) {
                (Some(oc), Some(c)) => Some(or(&oc, c)?),
                _ => None,
            };
            out = Some(if self == Merge::Maximum { o.maximum(&x)? } else { o.minimum(&x)? });
        }
        match out {
            Some(o) => Ok(o),
            None => self.forward(class, name, xs),
        }
    }
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

            /// Keras 3: the masks' logical or when every input has one, else none.
            fn compute_mask(&self, _xs: &[Var], masks: &[Option<Tensor>]) -> Result<Option<Tensor>> {
                any_of(masks)
            }

            fn forward_logits_masked(&self, xs: &[Var], masks: &[Option<Tensor>], _ctx: &mut Ctx<'_>) -> Result<Var> {
                Merge::$kind.forward_masked($class, &self.name, xs, masks)
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
