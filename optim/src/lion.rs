//! [`Lion`]: sign-of-momentum updates, as Keras `Lion`.

use crate::base::{check_range, optimizer_common, rule_setters, Core, StepCtx, UpdateRule};
use crate::{Error, LearningRate, Result};
use keel_tensor::Tensor;

/// Lion (Keras `Lion`, Chen et al. 2023, "EvoLved Sign Momentum").
///
/// `p -= lr * sign(beta_1 * m + (1 - beta_1) * g)`, then
/// `m = beta_2 * m + (1 - beta_2) * g`. Every element moves by exactly `lr`
/// (or 0), so Lion wants a learning rate 3-10x smaller than Adam's. Defaults:
/// `learning_rate = 0.001`, `beta_1 = 0.9`, `beta_2 = 0.99`, no weight decay.
#[derive(Debug, Clone)]
pub struct Lion {
    core: Core,
    rule: LionRule,
}

#[derive(Debug, Clone)]
struct LionRule {
    beta_1: f64,
    beta_2: f64,
}

impl Lion {
    /// Lion with learning rate (or schedule) `lr` and Keras defaults otherwise.
    pub fn new(lr: impl Into<LearningRate>) -> Self {
        Lion { core: Core::new("Lion", lr.into()), rule: LionRule { beta_1: 0.9, beta_2: 0.99 } }
    }

    rule_setters! {
        /// The interpolation weight of the momentum in the update's sign, in `(0, 1]`
        /// (0 would make Lion sign SGD; Keras rejects it too).
        beta_1: f64,
        /// Decay rate of the momentum, in `[0, 1]`.
        beta_2: f64,
    }
}

impl Default for Lion {
    /// Keras defaults: `learning_rate = 0.001`.
    fn default() -> Self {
        Lion::new(0.001)
    }
}

optimizer_common!(Lion);

impl UpdateRule for LionRule {
    fn slot_names(&self) -> Vec<&'static str> {
        vec!["momentum"]
    }

    fn validate(&self, optimizer: &'static str) -> Result<()> {
        let beta_1 = self.beta_1;
        if !(beta_1 > 0.0 && beta_1 <= 1.0) {
            return Err(Error::InvalidHyperparameter {
                optimizer,
                name: "beta_1",
                value: beta_1,
                msg: "must be in (0, 1] (0 degenerates to sign SGD)",
            });
        }
        check_range(optimizer, "beta_2", self.beta_2, 0.0, 1.0, false, "must be in [0, 1]")
    }

    fn update(&self, ctx: &StepCtx, p: &Tensor, g: &Tensor, slots: &mut [Tensor]) -> Result<Tensor> {
        let [m] = slots else {
            return Err(Error::Internal { optimizer: "Lion", msg: "the momentum slot is missing" });
        };
        let direction = m.mul_scalar(self.beta_1)?.add(&g.mul_scalar(1.0 - self.beta_1)?)?.sign()?;
        let new = p.sub(&direction.mul_scalar(ctx.lr)?)?;
        *m = m.mul_scalar(self.beta_2)?.add(&g.mul_scalar(1.0 - self.beta_2)?)?;
        Ok(new)
    }
}
