//! [`LayerNormalization`]: normalize each sample over its last axis.

use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer, Weight};
use crate::layers::batch_normalization::{scale_shift, statistics_dtype};
use crate::{Error, Result};
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

/// The hyper-parameters of [`LayerNormalization`] (its Keras config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerNormalizationConfig {
    /// Added to the variance (Keras default 1e-3).
    pub epsilon: f64,
    /// Learn an offset `beta`.
    pub center: bool,
    /// Learn a scale `gamma`.
    pub scale: bool,
}

/// Layer normalization over the last axis (Keras `LayerNormalization(axis=-1)`).
///
/// Each sample (each position of a sequence, each pixel of an image) is normalized
/// with its own mean and (population) variance over the last axis:
/// `y = gamma * (x - mean) / sqrt(var + eps) + beta`, with `gamma` and `beta` of the
/// last axis's size. Training and inference compute the same thing (no moving
/// statistics). Under mixed precision the statistics are computed in F32 and the
/// result goes back to the input's dtype, as in Keras.
pub struct LayerNormalization {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: LayerNormalizationConfig,
    features: Option<usize>,
    gamma: Option<Param>,
    beta: Option<Param>,
}

common_builders!(LayerNormalization);

impl Default for LayerNormalization {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerNormalization {
    /// Keras defaults: epsilon 1e-3, center and scale.
    pub fn new() -> Self {
        LayerNormalization::from_config(LayerNormalizationConfig { epsilon: 1e-3, center: true, scale: true })
    }

    /// From a config.
    pub fn from_config(cfg: LayerNormalizationConfig) -> Self {
        LayerNormalization { name: String::new(), input_shape: None, cfg, features: None, gamma: None, beta: None }
    }

    /// Set epsilon.
    pub fn epsilon(mut self, e: f64) -> Self {
        self.cfg.epsilon = e;
        self
    }

    /// Learn `beta` or not.
    pub fn center(mut self, yes: bool) -> Self {
        self.cfg.center = yes;
        self
    }

    /// Learn `gamma` or not.
    pub fn scale(mut self, yes: bool) -> Self {
        self.cfg.scale = yes;
        self
    }

    fn features_of(&self, input_shape: &[usize]) -> Result<usize> {
        match input_shape.last() {
            Some(&c) if c > 0 => Ok(c),
            _ => Err(Error::IncompatibleInput {
                layer: self.name.clone(),
                class: "LayerNormalization",
                expected: "a per-sample shape of rank >= 1 (normalized over its last axis)".into(),
                got: input_shape.to_vec(),
            }),
        }
    }
}

impl Layer for LayerNormalization {
    /// Normalization computes in F32 under mixed precision: no weight is cast.
    fn compute_dtype_params(&self) -> Vec<Param> {
        Vec::new()
    }

    layer_common!("LayerNormalization");

    fn supports_masking(&self) -> bool {
        true
    }

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<()> {
        let c = self.features_of(input_shape)?;
        if self.cfg.epsilon.is_nan() || self.cfg.epsilon < 0.0 {
            return Err(Error::config(format!("LayerNormalization \"{}\"", self.name), "epsilon must be >= 0"));
        }
        if let Some(have) = self.features {
            if have == c {
                return Ok(());
            }
            return Err(Error::IncompatibleInput {
                layer: self.name.clone(),
                class: "LayerNormalization",
                expected: format!("{have} features on the last axis (the layer is already built)"),
                got: input_shape.to_vec(),
            });
        }
        let dev = Device::Cpu;
        if self.cfg.scale {
            self.gamma = Some(Param::new(Tensor::ones(c, DType::F32, &dev)?));
        }
        if self.cfg.center {
            self.beta = Some(Param::new(Tensor::zeros(c, DType::F32, &dev)?));
        }
        self.features = Some(c);
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.features.is_some()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        self.features_of(input_shape)?;
        Ok(input_shape.to_vec())
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let Some(c) = self.features else {
            return Err(Error::NotBuilt { layer: self.name.clone(), class: "LayerNormalization" });
        };
        if x.rank() < 2 || x.dims().last() != Some(&c) {
            return Err(Error::IncompatibleInput {
                layer: self.name.clone(),
                class: "LayerNormalization",
                expected: format!("{c} features on the last axis"),
                got: x.dims().get(1..).unwrap_or(&[]).to_vec(),
            });
        }
        // Statistics in F32, also under mixed precision; the result goes back to the input's dtype.
        let in_dtype = x.dtype();
        let x = statistics_dtype(x)?;
        let mean = x.mean(&[-1], true)?;
        let var = x.var(&[-1], true)?;
        let normed = x.sub(&mean)?.mul(&var.add_scalar(self.cfg.epsilon)?.rsqrt()?)?;
        scale_shift(normed, &self.gamma, &self.beta, in_dtype, ctx)
    }

    fn weights(&self) -> Vec<Weight> {
        let mut w = Vec::new();
        if let Some(g) = &self.gamma {
            w.push(Weight::trainable("gamma", g));
        }
        if let Some(b) = &self.beta {
            w.push(Weight::trainable("beta", b));
        }
        w
    }

    fn config(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.cfg).unwrap_or_default();
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("axis".into(), serde_json::json!(-1));
        }
        with_name(&self.name, v)
    }
}
