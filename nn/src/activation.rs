//! [`Activation`]: the elementwise (and softmax) activations, by Keras name.

use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::Tensor;
use serde::{Deserialize, Serialize};

/// An activation function, named as in Keras (`Activation::from_name("relu")`).
///
/// Parameterised Keras activations use Keras 3's defaults: `leaky_relu` has
/// negative slope 0.2, `elu` has alpha 1.0; `gelu` is the exact (erf) form;
/// `softmax` and `log_softmax` run over the last axis; `hard_sigmoid` is Keras 3's
/// `relu6(x + 3) / 6`. The activations after `Softplus` are compositions of
/// elementwise ops (so they run, and differentiate, on every backend).
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
    /// Scaled ELU: `scale * elu(x, alpha)` with Keras's constants ([`SELU_ALPHA`], [`SELU_SCALE`]).
    Selu,
    /// `x / (1 + |x|)`.
    Softsign,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `relu6(x + 3) / 6` (Keras 3).
    HardSigmoid,
    /// `x * hard_sigmoid(x)` (`"hard_silu"` or `"hard_swish"`).
    #[serde(alias = "hard_swish")]
    HardSilu,
    /// `x * tanh(softplus(x))`.
    Mish,
    /// `e^x`.
    Exponential,
    /// Log-softmax over the last axis.
    LogSoftmax,
}

/// Negative slope of [`Activation::LeakyRelu`] (Keras 3 default).
pub const LEAKY_RELU_SLOPE: f64 = 0.2;
/// Alpha of [`Activation::Elu`] (Keras default).
pub const ELU_ALPHA: f64 = 1.0;
/// Alpha of [`Activation::Selu`] (Keras's, from Klambauer et al. 2017).
pub const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
/// Scale of [`Activation::Selu`] (Keras's).
pub const SELU_SCALE: f64 = 1.050_700_987_355_480_5;

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
        Activation::Selu,
        Activation::Softsign,
        Activation::Relu6,
        Activation::HardSigmoid,
        Activation::HardSilu,
        Activation::Mish,
        Activation::Exponential,
        Activation::LogSoftmax,
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
            "selu" => Activation::Selu,
            "softsign" => Activation::Softsign,
            "relu6" => Activation::Relu6,
            "hard_sigmoid" => Activation::HardSigmoid,
            "hard_silu" | "hard_swish" => Activation::HardSilu,
            "mish" => Activation::Mish,
            "exponential" => Activation::Exponential,
            "log_softmax" => Activation::LogSoftmax,
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
            Activation::Selu => "selu",
            Activation::Softsign => "softsign",
            Activation::Relu6 => "relu6",
            Activation::HardSigmoid => "hard_sigmoid",
            Activation::HardSilu => "hard_silu",
            Activation::Mish => "mish",
            Activation::Exponential => "exponential",
            Activation::LogSoftmax => "log_softmax",
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
            Activation::Selu => x.elu(SELU_ALPHA)?.mul_scalar(SELU_SCALE)?,
            Activation::Softsign => x.div(&x.abs()?.add_scalar(1.0)?)?,
            Activation::Relu6 => x.clamp(0.0, 6.0)?,
            Activation::HardSigmoid => hard_sigmoid(x)?,
            Activation::HardSilu => x.mul(&hard_sigmoid(x)?)?,
            Activation::Mish => x.mul(&x.softplus()?.tanh()?)?,
            Activation::Exponential => x.exp()?,
            Activation::LogSoftmax => x.log_softmax(-1)?,
        })
    }

    /// Apply to a plain tensor (no autograd).
    pub fn apply_tensor(self, x: &Tensor) -> Result<Tensor> {
        Ok(self.apply(&Var::constant(x.clone()))?.into_value())
    }
}

/// Keras 3's `hard_sigmoid`: `relu6(x + 3) / 6`, i.e. `clamp(x / 6 + 1/2, 0, 1)`.
fn hard_sigmoid(x: &Var) -> Result<Var> {
    Ok(x.mul_scalar(1.0 / 6.0)?.add_scalar(0.5)?.clamp(0.0, 1.0)?)
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
