//! [`LayerNormalization`]: normalize each sample over its last axis.

use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer, Weight};
use crate::layers::norm_common::{
    channels_of, channels_to_build, check_channels, epsilon_center_scale_builders, statistics_dtype, GammaBeta,
};
use crate::{Error, Result};
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
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
    gamma_beta: GammaBeta,
}

common_builders!(LayerNormalization);
epsilon_center_scale_builders!(LayerNormalization);

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
        LayerNormalization {
            name: String::new(),
            input_shape: None,
            cfg,
            features: None,
            gamma_beta: GammaBeta::default(),
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
        let Some(c) = channels_to_build(self, self.features, input_shape, self.cfg.epsilon)? else {
            return Ok(());
        };
        self.gamma_beta = GammaBeta::new(c, self.cfg.scale, self.cfg.center)?;
        self.features = Some(c);
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.features.is_some()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        channels_of(self, input_shape)?;
        Ok(input_shape.to_vec())
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let Some(c) = self.features else {
            return Err(Error::NotBuilt { layer: self.name.clone(), class: "LayerNormalization" });
        };
        check_channels(self, x, c)?;
        // Statistics in F32, also under mixed precision; the result goes back to the input's dtype.
        let in_dtype = x.dtype();
        let x = statistics_dtype(x)?;
        let mean = x.mean(&[-1], true)?;
        let var = x.var(&[-1], true)?;
        let normed = x.sub(&mean)?.mul(&var.add_scalar(self.cfg.epsilon)?.rsqrt()?)?;
        self.gamma_beta.apply(normed, in_dtype, ctx)
    }

    fn weights(&self) -> Vec<Weight> {
        self.gamma_beta.weights()
    }

    fn config(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.cfg).unwrap_or_default();
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("axis".into(), serde_json::json!(-1));
        }
        with_name(&self.name, v)
    }
}
