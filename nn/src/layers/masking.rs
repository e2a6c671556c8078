//! [`Masking`]: mark the timesteps whose features all equal a padding value as masked.

use crate::layer::{common_builders, layer_common, shape_preserving_layer, with_name, Ctx, Layer};
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::Tensor;

/// Keras's `Masking(mask_value=0.0)`: a timestep (a position of every axis but the last)
/// whose features all equal `mask_value` is masked: its output is zeros, and the output
/// carries a mask `[batch, ..]` (the input's shape without its last axis) that the layers
/// after it read (recurrent layers skip those steps, `GlobalAveragePooling1D` and
/// `MultiHeadAttention` ignore them, losses and metrics do not count them).
///
/// ```
/// use keel_nn::prelude::*;
///
/// # fn main() -> keel_nn::Result<()> {
/// let mut model = Sequential::new();
/// model.add(Masking::new(0.0).input_shape([20, 3])); // padded sequences of 3 features
/// model.add(LSTM::new(8));
/// model.add(Dense::new(1));
/// assert_eq!(model.output_shapes()?, vec![vec![1]]);
/// # Ok(())
/// # }
/// ```
pub struct Masking {
    name: String,
    input_shape: Option<Vec<usize>>,
    mask_value: f64,
    built: bool,
}

common_builders!(Masking);

impl Masking {
    /// Mask the timesteps whose features all equal `mask_value`.
    pub fn new(mask_value: f64) -> Self {
        Masking { name: String::new(), input_shape: None, mask_value, built: false }
    }

    /// The padding value.
    pub fn mask_value(&self) -> f64 {
        self.mask_value
    }

    fn check(&self, input_shape: &[usize]) -> Result<()> {
        if input_shape.is_empty() {
            return Err(Error::IncompatibleInput {
                layer: self.name.clone(),
                class: "Masking",
                expected: "a per-sample shape with a feature axis, e.g. [timesteps, features]".into(),
                got: input_shape.to_vec(),
            });
        }
        crate::layer::check_scalar(self, "mask_value", self.mask_value, false)
    }

    /// 1 where some feature differs from the padding value, else 0, in `x`'s dtype, with
    /// the last axis kept (size 1).
    fn keep(&self, x: &Tensor) -> Result<Tensor> {
        let differs = x.ne(&x.scalar_like(self.mask_value)?)?.to_dtype(x.dtype())?;
        Ok(differs.max(&[-1], true)?)
    }
}

impl Layer for Masking {
    layer_common!("Masking");
    shape_preserving_layer!();

    fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
        if x.rank() < 2 {
            return Err(Error::IncompatibleInput {
                layer: self.name.clone(),
                class: "Masking",
                expected: "a batch with a feature axis, e.g. [batch, timesteps, features]".into(),
                got: x.dims().get(1..).unwrap_or(&[]).to_vec(),
            });
        }
        Ok(x.mul(&Var::constant(self.keep(x.value())?))?)
    }

    /// Keras: `any(x != mask_value, axis=-1)`; the masks of earlier layers are replaced.
    fn compute_mask(&self, xs: &[Var], _masks: &[Option<Tensor>]) -> Result<Option<Tensor>> {
        match xs {
            [x] if x.rank() >= 2 => {
                let keep = self.keep(x.value())?;
                Ok(Some(keep.ne(&keep.scalar_like(0.0)?)?.squeeze(-1)?))
            }
            _ => Ok(None),
        }
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "mask_value": self.mask_value }))
    }
}
