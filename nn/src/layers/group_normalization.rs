//! [`GroupNormalization`]: Keras's `layers.GroupNormalization`, normalize each sample over
//! groups of channels.

use crate::layer::{common_builders, describe, layer_common, with_name, Ctx, Layer, Weight};
use crate::layers::norm_common::{
    channels_of, channels_to_build, check_channels, epsilon_center_scale_builders, gamma_beta_constraints,
    statistics_dtype, GammaBeta,
};
use crate::{Error, Result};
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
use serde::{Deserialize, Serialize};

/// The hyper-parameters of [`GroupNormalization`] (its Keras config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupNormalizationConfig {
    /// The number of channel groups (Keras default 32); `-1` makes one group per channel
    /// (instance normalization) and is resolved to the channel count when the layer builds.
    pub groups: i64,
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

/// Group normalization over the last (channel) axis, Keras's
/// `GroupNormalization(groups=32, axis=-1, epsilon=1e-3)`.
///
/// The channels are split into `groups` consecutive groups; each sample is normalized with
/// the mean and (population) variance of each group over all its other axes (the spatial or
/// time positions and the group's channels): `y = gamma * (x - mean) / sqrt(var + eps) + beta`,
/// with `gamma` and `beta` per channel. One group is layer normalization over the whole
/// sample; one group per channel (`groups = -1`) is instance normalization. Training and
/// inference compute the same thing, and the batch size does not matter (unlike
/// `BatchNormalization`). The channel count must be a multiple of `groups`.
///
/// Statistics are computed in F32 under mixed precision, as in Keras. A mask passes on but,
/// as in Keras, does not change the statistics.
///
/// ```
/// use keel_nn::{GroupNormalization, Layer};
/// let mut layer = GroupNormalization::new(4);
/// layer.build(&[8, 8, 16], &mut keel_tensor::rng::Rng::new(0))?;
/// assert_eq!(layer.weights().len(), 2); // gamma, beta: 16 each
/// # Ok::<(), keel_nn::Error>(())
/// ```
pub struct GroupNormalization {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: GroupNormalizationConfig,
    channels: Option<usize>,
    gamma_beta: GammaBeta,
}

common_builders!(GroupNormalization);
epsilon_center_scale_builders!(GroupNormalization);

impl Default for GroupNormalization {
    fn default() -> Self {
        GroupNormalization::new(32)
    }
}

impl GroupNormalization {
    /// `groups` groups (`-1`: one per channel), Keras's other defaults: epsilon 1e-3, center
    /// and scale.
    pub fn new(groups: i64) -> Self {
        GroupNormalization::from_config(GroupNormalizationConfig {
            groups,
            epsilon: 1e-3,
            center: true,
            scale: true,
            beta_constraint: None,
            gamma_constraint: None,
        })
    }

    /// From a config.
    pub fn from_config(cfg: GroupNormalizationConfig) -> Self {
        GroupNormalization {
            name: String::new(),
            input_shape: None,
            cfg,
            channels: None,
            gamma_beta: GammaBeta::default(),
        }
    }

    /// The config (with `groups` resolved once built).
    pub fn config_ref(&self) -> &GroupNormalizationConfig {
        &self.cfg
    }

    /// The number of groups for `channels` channels, checked as Keras checks it.
    fn groups_for(&self, channels: usize) -> Result<usize> {
        let bad = |msg: String| Error::config(describe(self), msg);
        let groups = match self.cfg.groups {
            -1 => channels,
            g if g >= 1 => g as usize,
            g => return Err(bad(format!("groups must be a positive number or -1 (one per channel), got {g}"))),
        };
        if groups > channels {
            return Err(bad(format!("groups ({groups}) cannot be more than the number of channels ({channels})")));
        }
        if channels % groups != 0 {
            return Err(bad(format!("the number of channels ({channels}) must be a multiple of groups ({groups})")));
        }
        Ok(groups)
    }
}

impl Layer for GroupNormalization {
    /// Normalization computes in F32 under mixed precision: no weight is cast.
    fn compute_dtype_params(&self) -> Vec<Param> {
        Vec::new()
    }

    layer_common!("GroupNormalization");

    fn supports_masking(&self) -> bool {
        true
    }

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<()> {
        let Some(c) = channels_to_build(self, self.channels, input_shape, self.cfg.epsilon)? else {
            return Ok(());
        };
        let groups = self.groups_for(c)?;
        self.gamma_beta = GammaBeta::new(c, self.cfg.scale, self.cfg.center)?;
        // Keras resolves groups=-1 to the channel count when it builds (and saves that)
        self.cfg.groups = groups as i64;
        self.channels = Some(c);
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.channels.is_some()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let c = channels_of(self, input_shape)?;
        self.groups_for(c)?;
        Ok(input_shape.to_vec())
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let Some(c) = self.channels else {
            return Err(Error::NotBuilt { layer: self.name.clone(), class: "GroupNormalization" });
        };
        check_channels(self, x, c)?;
        let groups = self.groups_for(c)?;
        let in_dtype = x.dtype();
        let xf = statistics_dtype(x)?;
        // [batch, positions, groups, channels per group]: the statistics are over axes 1 and 3
        let batch = x.dims()[0];
        let positions = x.dims()[1..x.rank() - 1].iter().product::<usize>();
        let grouped = xf.reshape([batch, positions, groups, c / groups])?;
        let mean = grouped.mean(&[1, 3], true)?;
        let var = grouped.var(&[1, 3], true)?;
        let normed = grouped.sub(&mean)?.mul(&var.add_scalar(self.cfg.epsilon)?.rsqrt()?)?.reshape(x.dims())?;
        self.gamma_beta.apply(normed, in_dtype, ctx)
    }

    gamma_beta_constraints!();

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
