//! [`Activation`]: the elementwise (and softmax) activations, by Keras name.

use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::Tensor;
use serde::{Deserialize, Serialize};

/// An activation function, named as in Keras (`Activation::from_name("relu")`).
///
/// Parameterised Keras activations use Keras 3's defaults: `leaky_relu` has
/// negative slope 0.2, `elu` has alpha 1.0; `gelu` is the exact (erf) form;
/// `softmax` runs over the last axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Identity (`"linear"`, also what `None` means in Keras).
    #[default]
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// Logistic sigmoid.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Softmax over the last axis.
    Softmax,
    /// `x` if positive else `0.2 x`.
    LeakyRelu,
    /// `x` if positive else `exp(x) - 1`.
    Elu,
    /// Exact GELU `x * Phi(x)`.
    Gelu,
    /// SiLU / swish `x * sigmoid(x)` (`"silu"` or `"swish"`).
    #[serde(alias = "swish")]
    Silu,
    /// `ln(1 + e^x)`.
    Softplus,
}

/// Negative slope of [`Activation::LeakyRelu`] (Keras 3 default).
pub const LEAKY_RELU_SLOPE: f64 = 0.2;
/// Alpha of [`Activation::Elu`] (Keras default).
pub const ELU_ALPHA: f64 = 1.0;

impl Activation {
    /// Every activation, in declaration order.
    pub const ALL: &'static [Activation] = &[
        Activation::Linear,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Softmax,
        Activation::LeakyRelu,
        Activation::Elu,
        Activation::Gelu,
        Activation::Silu,
        Activation::Softplus,
    ];

    /// Look up an activation by its Keras name (`"relu"`, `"swish"`, `"linear"`, ...).
    pub fn from_name(name: &str) -> Result<Activation> {
        let n = name.trim().to_ascii_lowercase();
        Ok(match n.as_str() {
            "linear" | "none" | "" => Activation::Linear,
            "relu" => Activation::Relu,
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "softmax" => Activation::Softmax,
            "leaky_relu" | "leakyrelu" => Activation::LeakyRelu,
            "elu" => Activation::Elu,
            "gelu" => Activation::Gelu,
            "silu" | "swish" => Activation::Silu,
            "softplus" => Activation::Softplus,
            _ => return Err(Error::UnknownName { kind: "activation", name: name.to_string() }),
        })
    }

    /// The Keras name.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Softmax => "softmax",
            Activation::LeakyRelu => "leaky_relu",
            Activation::Elu => "elu",
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
            Activation::Softplus => "softplus",
        }
    }

    /// True for the identity.
    pub fn is_linear(self) -> bool {
        self == Activation::Linear
    }

    /// Apply to a (possibly tracked) value.
    pub fn apply(self, x: &Var) -> Result<Var> {
        Ok(match self {
            Activation::Linear => x.clone(),
            Activation::Relu => x.relu()?,
            Activation::Sigmoid => x.sigmoid()?,
            Activation::Tanh => x.tanh()?,
            Activation::Softmax => x.softmax(-1)?,
            Activation::LeakyRelu => x.leaky_relu(LEAKY_RELU_SLOPE)?,
            Activation::Elu => x.elu(ELU_ALPHA)?,
            Activation::Gelu => x.gelu()?,
            Activation::Silu => x.silu()?,
            Activation::Softplus => x.softplus()?,
        })
    }

    /// Apply to a plain tensor (no autograd).
    pub fn apply_tensor(self, x: &Tensor) -> Result<Tensor> {
        Ok(self.apply(&Var::constant(x.clone()))?.into_value())
    }
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Activation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Activation::from_name(s)
    }
}
