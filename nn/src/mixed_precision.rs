//! Mixed precision, as Keras's `keras.mixed_precision`: a [`DTypePolicy`] says in which
//! dtype a model computes and in which it keeps its weights.
//!
//! Under `"mixed_bfloat16"` the weights stay F32 (what the optimizer updates), each layer
//! computes in BF16 (inputs and weights are cast on the way in, so matmuls and convolutions
//! take BF16 operands: tensor cores on a GPU), batch normalization computes its statistics in
//! F32, and the model's outputs are cast back to F32 so that losses and metrics are F32.
//! Gradients reach the F32 weights through the casts. BF16 has F32's exponent range, so no
//! loss scaling is needed.
//!
//! `"mixed_float16"` is the same with F16 (10 mantissa bits to BF16's 7, but a range that
//! ends at 65504 and loses gradients below 6e-8 to zero): as in Keras, `compile` wraps the
//! optimizer of a model under it in a `LossScaleOptimizer` (keel-optim), which multiplies
//! the loss by a dynamic scale before the backward pass, divides the gradients by it, and
//! skips the steps whose gradients overflowed.
//!
//! A model takes the global policy ([`set_global_policy`], Keras's
//! `mixed_precision.set_global_policy`) when it is created, or its own through
//! `Sequential::dtype_policy` / `Model::dtype_policy`.
//!
//! ```
//! use keel_nn::mixed_precision::DTypePolicy;
//! use keel_nn::prelude::*;
//!
//! # fn main() -> keel_nn::Result<()> {
//! let mut model = Sequential::new().dtype_policy(DTypePolicy::new("mixed_bfloat16")?);
//! model.add(Dense::new(4).activation(Activation::Relu).input_shape([3]));
//! model.add(Dense::new(2));
//! let x = keel_tensor::Tensor::ones([5, 3], keel_tensor::DType::F32, &keel_tensor::Device::Cpu)?;
//! let y = model.predict(&[x])?;
//! assert_eq!(y[0].dtype(), keel_tensor::DType::F32); // computed in BF16, returned as F32
//! # Ok(())
//! # }
//! ```

use std::sync::atomic::{AtomicU8, Ordering};

use crate::network::Head;
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::DType;

/// The dtypes a model computes in and keeps its weights in (Keras `DTypePolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DTypePolicy {
    /// Everything in F32 (the default).
    #[default]
    Float32,
    /// Compute in BF16, weights in F32.
    MixedBFloat16,
    /// Compute in F16, weights in F32; trained with dynamic loss scaling.
    MixedFloat16,
}

impl DTypePolicy {
    /// Every policy, in Keras's names.
    pub const ALL: [DTypePolicy; 3] = [DTypePolicy::Float32, DTypePolicy::MixedBFloat16, DTypePolicy::MixedFloat16];

    /// The policy with Keras name `name` (`"float32"`, `"mixed_bfloat16"`, `"mixed_float16"`).
    pub fn new(name: &str) -> Result<DTypePolicy> {
        if let Some(p) = Self::ALL.iter().find(|p| p.name() == name) {
            return Ok(*p);
        }
        let msg = match name {
            "bfloat16" | "float16" | "float64" => format!(
                "keeping the weights in {name} is not supported; use \"mixed_bfloat16\", \"mixed_float16\" or \"float32\""
            ),
            _ => "valid policies: \"float32\", \"mixed_bfloat16\", \"mixed_float16\"".to_string(),
        };
        Err(Error::InvalidConfig { what: format!("dtype policy \"{name}\""), msg })
    }

    /// The Keras name.
    pub fn name(&self) -> &'static str {
        match self {
            DTypePolicy::Float32 => "float32",
            DTypePolicy::MixedBFloat16 => "mixed_bfloat16",
            DTypePolicy::MixedFloat16 => "mixed_float16",
        }
    }

    /// The dtype layers compute in.
    pub fn compute_dtype(&self) -> DType {
        match self {
            DTypePolicy::Float32 => DType::F32,
            DTypePolicy::MixedBFloat16 => DType::BF16,
            DTypePolicy::MixedFloat16 => DType::F16,
        }
    }

    /// True when training needs dynamic loss scaling (`"mixed_float16"`): `compile` then
    /// wraps the optimizer in a `LossScaleOptimizer`, as Keras's does.
    pub fn needs_loss_scaling(&self) -> bool {
        *self == DTypePolicy::MixedFloat16
    }

    /// The dtype weights are kept in.
    pub fn variable_dtype(&self) -> DType {
        DType::F32
    }

    /// The compute dtype when it differs from the weights' (what a [`crate::Ctx`] casts to).
    pub(crate) fn autocast_dtype(&self) -> Option<DType> {
        (self.compute_dtype() != self.variable_dtype()).then(|| self.compute_dtype())
    }

    /// A model output head: the logits as the last layer computed them, handed to losses
    /// and metrics in the weights' dtype (mixed policies compute in half precision but
    /// give F32 outputs; the cast is made on first use, so a loss that reads BF16 logits
    /// as F32 itself, the softmax cross-entropy, needs none).
    pub(crate) fn head(&self, logits: Var, activation: Option<crate::Activation>) -> Head {
        match self.autocast_dtype() {
            Some(_) => Head::with_output_dtype(logits, activation, self.variable_dtype()),
            None => Head::new(logits, activation),
        }
    }
}

impl std::fmt::Display for DTypePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

static GLOBAL: AtomicU8 = AtomicU8::new(0);

/// Sets the policy that models created from now on take (Keras
/// `mixed_precision.set_global_policy`). Existing models keep theirs.
pub fn set_global_policy(name: &str) -> Result<()> {
    let p = DTypePolicy::new(name)?;
    let i = DTypePolicy::ALL.iter().position(|q| *q == p).unwrap_or(0);
    GLOBAL.store(i as u8, Ordering::Relaxed);
    Ok(())
}

/// The policy new models take (Keras `mixed_precision.global_policy`).
pub fn global_policy() -> DTypePolicy {
    DTypePolicy::ALL.get(GLOBAL.load(Ordering::Relaxed) as usize).copied().unwrap_or_default()
}
