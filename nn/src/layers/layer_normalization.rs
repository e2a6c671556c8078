//! [`LayerNormalization`]: normalize each sample over its last axis (or the axes given).

use crate::layer::{common_builders, layer_common, resolve_axes, with_name, Ctx, Layer, Weight};
use crate::layers::norm_common::{
    epsilon_center_scale_builders, gamma_beta_constraints, statistics_dtype, GammaBeta, NormAxes,
};
use crate::Result;
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
    /// `beta` constraint, applied after every optimizer step (Keras's `beta_constraint`).
    #[serde(default)]
    pub beta_constraint: Option<crate::Constraint>,
    /// `gamma` constraint, applied after every optimizer step (Keras's `gamma_constraint`).
    #[serde(default)]
    pub gamma_constraint: Option<crate::Constraint>,
}

/// Layer normalization (Keras `LayerNormalization`), over the last axis by default.
///
/// Each sample (each position of a sequence, each pixel of an image) is normalized
/// with its own mean and (population) variance over the last axis:
/// `y = gamma * (x - mean) / sqrt(var + eps) + beta`, with `gamma` and `beta` of the
/// last axis's size. [`LayerNormalization::axis`] / [`LayerNormalization::over`] pick
/// other axes (Keras's `axis=1`, `axis=[1, 2, 3]`): the statistics are then over those
/// axes and `gamma`/`beta` have their sizes (shape `[H, W, C]` for `[1, 2, 3]` on
/// images), as in Keras. Training and inference compute the same thing (no moving
/// statistics). Under mixed precision the statistics are computed in F32 and the
/// result goes back to the input's dtype, as in Keras.
pub struct LayerNormalization {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: LayerNormalizationConfig,
    axes: NormAxes,
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
        LayerNormalization::from_config(LayerNormalizationConfig {
            epsilon: 1e-3,
            center: true,
            scale: true,
            beta_constraint: None,
            gamma_constraint: None,
        })
    }

    /// From a config.
    pub fn from_config(cfg: LayerNormalizationConfig) -> Self {
        LayerNormalization {
            name: String::new(),
            input_shape: None,
            cfg,
            axes: NormAxes::new(vec![-1]),
            gamma_beta: GammaBeta::default(),
        }
    }

    /// Normalize over `axis` (1 is the first per-sample axis; negative counts from the
    /// end; the default is -1).
    pub fn axis(self, axis: isize) -> Self {
        self.over(vec![axis])
    }

    /// Normalize over several axes (Keras's `axis=[1, 2, 3]`).
    pub fn over(mut self, axes: impl Into<Vec<isize>>) -> Self {
        self.axes = NormAxes::new(axes.into());
        self
    }

    /// The axes as given.
    pub fn axes(&self) -> &[isize] {
        &self.axes.axes
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
        let mut axes = self.axes.clone();
        let Some(sizes) = axes.build(self, input_shape, self.cfg.epsilon)? else {
            return Ok(());
        };
        self.gamma_beta = GammaBeta::shaped(&sizes, self.cfg.scale, self.cfg.center)?;
        self.axes = axes;
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.axes.built.is_some()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        resolve_axes(self, &self.axes.axes, input_shape)?;
        Ok(input_shape.to_vec())
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let (axes, broadcast) = self.axes.for_input(self, x)?;
        // Statistics in F32, also under mixed precision; the result goes back to the input's dtype.
        let in_dtype = x.dtype();
        let x = statistics_dtype(x)?;
        let mean = x.mean(&axes, true)?;
        let var = x.var(&axes, true)?;
        let normed = x.sub(&mean)?.mul(&var.add_scalar(self.cfg.epsilon)?.rsqrt()?)?;
        self.gamma_beta.apply_broadcast(normed, in_dtype, ctx, broadcast.as_deref())
    }

    gamma_beta_constraints!();

    fn weights(&self) -> Vec<Weight> {
        self.gamma_beta.weights()
    }

    fn config(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.cfg).unwrap_or_default();
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("axis".into(), self.axes.config());
        }
        with_name(&self.name, v)
    }
}
