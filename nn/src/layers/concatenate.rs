//! [`Concatenate`]: join several inputs along one axis (functional API merge layer).

use crate::layer::{layer_common, multi_input_layer, with_name, Ctx, Layer};
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::{DType, Tensor};

/// Join inputs along `axis`, counted as Keras counts it: with the batch axis (axis 0, which
/// cannot be joined), so `1` is the first per-sample axis; negative counts from the end
/// (`-1` = features/channels, the Keras default).
pub struct Concatenate {
    name: String,
    input_shape: Option<Vec<usize>>,
    axis: isize,
    built: bool,
}

impl Concatenate {
    /// Concatenate along `axis` (Keras's: `1` is the first axis after the batch axis,
    /// negative counts from the end).
    pub fn new(axis: isize) -> Self {
        Concatenate { name: String::new(), input_shape: None, axis, built: false }
    }

    /// Give the layer a name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The per-sample axis that `axis` names for per-sample rank `rank` (a batch has rank
    /// `rank + 1`; axis 0, the batch axis, is refused).
    fn resolve(&self, rank: usize, got: &[usize]) -> Result<usize> {
        let full = rank as isize + 1;
        let a = if self.axis < 0 { full + self.axis } else { self.axis };
        if a < 1 || a >= full {
            return Err(Error::IncompatibleInput {
                layer: self.name.clone(),
                class: "Concatenate",
                expected: format!(
                    "inputs with an axis {} other than the batch axis (Keras counts the batch axis: 1 is the \
                     first per-sample axis, -1 the last)",
                    self.axis
                ),
                got: got.to_vec(),
            });
        }
        Ok(a as usize - 1)
    }
}

impl Layer for Concatenate {
    layer_common!("Concatenate");

    multi_input_layer!();

    fn output_shape_multi(&self, input_shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
        let Some(first) = input_shapes.first() else {
            return Err(Error::Graph(format!("Concatenate \"{}\" needs at least one input", self.name)));
        };
        let a = self.resolve(first.len(), first)?;
        let mut out = first.clone();
        out[a] = 0;
        for s in input_shapes {
            let same_rest = s.len() == first.len() && (0..s.len()).all(|i| i == a || s[i] == first[i]);
            if !same_rest {
                return Err(Error::IncompatibleInput {
                    layer: self.name.clone(),
                    class: "Concatenate",
                    expected: format!("shapes matching {first:?} except on axis {}", self.axis),
                    got: s.clone(),
                });
            }
            out[a] += s[a];
        }
        Ok(out)
    }

    fn forward_logits_multi(&self, xs: &[Var], _ctx: &mut Ctx<'_>) -> Result<Var> {
        let Some(first) = xs.first() else {
            return Err(Error::Graph(format!("Concatenate \"{}\" needs at least one input", self.name)));
        };
        let per = first.dims().get(1..).unwrap_or(&[]);
        let a = self.resolve(per.len(), per)? + 1;
        let refs: Vec<&Var> = xs.iter().collect();
        Ok(Var::concat(&refs, a as isize)?)
    }

    fn supports_masking(&self) -> bool {
        true
    }

    /// Keras's: each input's mask spread over its last axis (all kept for an unmasked
    /// input), joined along `axis`, then a position is kept where any of its last-axis
    /// entries is. Joining sequences along time joins their masks; joining features keeps
    /// a step that any input keeps.
    fn compute_mask(&self, xs: &[Var], masks: &[Option<Tensor>]) -> Result<Option<Tensor>> {
        let Some(first) = xs.first() else { return Ok(None) };
        if masks.iter().all(Option::is_none) || masks.len() != xs.len() || first.rank() < 2 {
            return Ok(None);
        }
        let a = self.resolve(first.rank() - 1, &first.dims()[1..])? + 1;
        let full: Vec<Tensor> = xs
            .iter()
            .zip(masks)
            .map(|(x, m)| -> Result<Tensor> {
                let v = x.value();
                Ok(match m {
                    None => Tensor::ones(x.dims(), DType::F32, &v.device())?,
                    Some(m) => {
                        let m = m.to_dtype(DType::F32)?;
                        let m = if m.rank() < x.rank() { m.unsqueeze(-1)? } else { m };
                        m.broadcast_to(x.dims())?
                    }
                })
            })
            .collect::<Result<_>>()?;
        let any = Tensor::concat(&full, a as isize)?.max(&[-1], false)?;
        Ok(Some(any.ne(&any.scalar_like(0.0)?)?))
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "axis": self.axis }))
    }
}
