//! [`AdamW`]: Adam with decoupled weight decay, as Keras `AdamW`.

use crate::adam::AdamRule;
use crate::base::{optimizer_common, rule_setters, Core};
use crate::LearningRate;

/// AdamW (Keras `AdamW`): the [`crate::Adam`] update preceded by decoupled
/// weight decay `p -= p * weight_decay * lr` (Loshchilov & Hutter).
///
/// Defaults as Keras: `learning_rate = 0.001`, `weight_decay = 0.004`,
/// `beta_1 = 0.9`, `beta_2 = 0.999`, `epsilon = 1e-7`, no amsgrad. Exempt
/// biases and norm scales with [`AdamW::exclude_from_weight_decay`].
#[derive(Debug, Clone)]
pub struct AdamW {
    core: Core,
    rule: AdamRule,
}

impl AdamW {
    /// AdamW with learning rate (or schedule) `lr`, `weight_decay = 0.004`.
    pub fn new(lr: impl Into<LearningRate>) -> Self {
        let mut core = Core::new("AdamW", lr.into());
        core.weight_decay = Some(0.004);
        AdamW { core, rule: AdamRule::default() }
    }

    rule_setters! {
        /// Decay rate of the first-moment estimate, in `[0, 1)`.
        beta_1: f64,
        /// Decay rate of the second-moment estimate, in `[0, 1)`.
        beta_2: f64,
        /// The constant added to `sqrt(v)` in the denominator.
        epsilon: f64,
        /// Use the AMSGrad variant.
        amsgrad: bool,
    }
}

impl Default for AdamW {
    /// Keras defaults: `learning_rate = 0.001`, `weight_decay = 0.004`.
    fn default() -> Self {
        AdamW::new(0.001)
    }
}

optimizer_common!(AdamW);
