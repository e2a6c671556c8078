//! [`Dense`]: the fully connected layer `activation(x W + b)`.

use crate::layer::{built, common_builders, kernel_bias_builders, kernel_bias_layer_methods, layer_common, Ctx, Layer};
use crate::{Activation, Error, Initializer, Regularizer, Result};
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
use serde::{Deserialize, Serialize};

/// The hyper-parameters of [`Dense`] (its Keras config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseConfig {
    /// Output size.
    pub units: usize,
    /// Final activation.
    pub activation: Activation,
    /// Whether a bias is added.
    pub use_bias: bool,
    /// Kernel initializer (default glorot_uniform).
    pub kernel_initializer: Initializer,
    /// Bias initializer (default zeros).
    pub bias_initializer: Initializer,
    /// Kernel penalty.
    pub kernel_regularizer: Option<Regularizer>,
    /// Bias penalty.
    pub bias_regularizer: Option<Regularizer>,
    /// Output penalty (Keras's `activity_regularizer`): the penalty of each batch's output
    /// divided by the batch size, added to the loss.
    #[serde(default)]
    pub activity_regularizer: Option<Regularizer>,
    /// Kernel constraint, applied after every optimizer step (Keras's `kernel_constraint`).
    #[serde(default)]
    pub kernel_constraint: Option<crate::Constraint>,
    /// Bias constraint, applied after every optimizer step (Keras's `bias_constraint`).
    #[serde(default)]
    pub bias_constraint: Option<crate::Constraint>,
}

/// Densely connected layer on the last axis: `[.., in] -> [.., units]`, kernel `[in, units]`.
pub struct Dense {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: DenseConfig,
    in_features: Option<usize>,
    kernel: Option<Param>,
    bias: Option<Param>,
}

common_builders!(Dense);
kernel_bias_builders!(Dense);

impl Dense {
    /// A Dense layer with `units` outputs (linear, with bias, glorot_uniform kernel).
    pub fn new(units: usize) -> Self {
        Dense::from_config(DenseConfig {
            units,
            activation: Activation::Linear,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            kernel_regularizer: None,
            bias_regularizer: None,
            activity_regularizer: None,
            kernel_constraint: None,
            bias_constraint: None,
        })
    }

    /// A Dense layer from its config.
    pub fn from_config(cfg: DenseConfig) -> Self {
        Dense { name: String::new(), input_shape: None, cfg, in_features: None, kernel: None, bias: None }
    }

    /// The config.
    pub fn get_config(&self) -> &DenseConfig {
        &self.cfg
    }

    /// The kernel `[in, units]`, once built.
    pub fn kernel(&self) -> Option<&Param> {
        self.kernel.as_ref()
    }

    /// The bias `[units]`, once built (and when `use_bias`).
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    fn in_features(&self, input_shape: &[usize]) -> Result<usize> {
        match input_shape.last() {
            Some(&n) if n > 0 => Ok(n),
            _ => Err(Error::IncompatibleInput {
                layer: self.name.clone(),
                class: "Dense",
                expected: "a per-sample shape of rank >= 1 with a non-empty last axis".into(),
                got: input_shape.to_vec(),
            }),
        }
    }
}

impl Dense {
    /// The kernel's variable for input `x` (checked against the built input size).
    fn kernel_var(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let k = built(&self.kernel, self)?;
        let n = self.in_features.unwrap_or(0);
        if x.rank() < 2 || x.dims().last() != Some(&n) {
            return Err(Error::IncompatibleInput {
                layer: self.name.clone(),
                class: "Dense",
                expected: format!("last axis {n}"),
                got: x.dims().get(1..).unwrap_or(&[]).to_vec(),
            });
        }
        ctx.param(k)
    }
}

impl Layer for Dense {
    layer_common!("Dense");

    fn supports_masking(&self) -> bool {
        true
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<()> {
        let n = self.in_features(input_shape)?;
        if self.cfg.units == 0 {
            return Err(Error::config(format!("Dense \"{}\"", self.name), "units must be >= 1"));
        }
        if let Some(have) = self.in_features {
            if have == n {
                return Ok(());
            }
            return Err(Error::IncompatibleInput {
                layer: self.name.clone(),
                class: "Dense",
                expected: format!("last axis {have} (the layer is already built)"),
                got: input_shape.to_vec(),
            });
        }
        self.kernel = Some(Param::new(self.cfg.kernel_initializer.sample(&[n, self.cfg.units], rng)?));
        if self.cfg.use_bias {
            self.bias = Some(Param::new(self.cfg.bias_initializer.sample(&[self.cfg.units], rng)?));
        }
        self.in_features = Some(n);
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.in_features.is_some()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        self.in_features(input_shape)?;
        let mut out = input_shape.to_vec();
        if let Some(last) = out.last_mut() {
            *last = self.cfg.units;
        }
        Ok(out)
    }

    fn forward(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        match (&self.bias, self.cfg.activation) {
            // matmul + bias + ReLU as one op (the same values and gradients as the three)
            (Some(b), Activation::Relu) => {
                let k = self.kernel_var(x, ctx)?;
                Ok(x.matmul_bias_relu(&k, &ctx.param(b)?)?)
            }
            _ => {
                let z = self.forward_logits(x, ctx)?;
                match self.output_activation() {
                    Some(a) => a.apply(&z),
                    None => Ok(z),
                }
            }
        }
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let k = self.kernel_var(x, ctx)?;
        match &self.bias {
            Some(b) => Ok(x.matmul_bias(&k, &ctx.param(b)?)?),
            None => Ok(x.matmul(&k)?),
        }
    }

    kernel_bias_layer_methods!();
}
