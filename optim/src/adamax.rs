//! [`Adamax`]: Adam with the infinity norm, as Keras `Adamax`.

use crate::base::{check_range, optimizer_common, rule_setters, Core, StepCtx, UpdateRule};
use crate::{Error, LearningRate, Result};
use keel_tensor::Tensor;

/// Adamax (Keras `Adamax`): Adam whose second moment is an exponentially weighted
/// infinity norm.
///
/// At step `t` (1-based): `m += (g - m) * (1 - beta_1)`, `u = max(beta_2 * u, |g|)`
/// and `p -= lr * m / ((1 - beta_1^t) * (u + epsilon))`. Defaults:
/// `learning_rate = 0.001`, `beta_1 = 0.9`, `beta_2 = 0.999`, `epsilon = 1e-7`,
/// no weight decay.
#[derive(Debug, Clone)]
pub struct Adamax {
    core: Core,
    rule: AdamaxRule,
}

#[derive(Debug, Clone)]
struct AdamaxRule {
    beta_1: f64,
    beta_2: f64,
    epsilon: f64,
}

impl Adamax {
    /// Adamax with learning rate (or schedule) `lr` and Keras defaults otherwise.
    pub fn new(lr: impl Into<LearningRate>) -> Self {
        Adamax { core: Core::new("Adamax", lr.into()), rule: AdamaxRule { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 } }
    }

    rule_setters! {
        /// Decay rate of the first-moment estimate, in `[0, 1)`.
        beta_1: f64,
        /// Decay rate of the infinity norm, in `[0, 1)`.
        beta_2: f64,
        /// The constant added to the infinity norm in the denominator.
        epsilon: f64,
    }
}

impl Default for Adamax {
    /// Keras defaults: `learning_rate = 0.001`.
    fn default() -> Self {
        Adamax::new(0.001)
    }
}

optimizer_common!(Adamax);

impl UpdateRule for AdamaxRule {
    fn slot_names(&self) -> Vec<&'static str> {
        vec!["momentum", "norm"]
    }

    fn validate(&self, optimizer: &'static str) -> Result<()> {
        check_range(optimizer, "beta_1", self.beta_1, 0.0, 1.0, true, "must be in [0, 1)")?;
        check_range(optimizer, "beta_2", self.beta_2, 0.0, 1.0, true, "must be in [0, 1)")?;
        check_range(optimizer, "epsilon", self.epsilon, 0.0, f64::INFINITY, true, "must be finite and >= 0")
    }

    fn update(&self, ctx: &StepCtx, p: &Tensor, g: &Tensor, slots: &mut [Tensor]) -> Result<Tensor> {
        let [m, u] = slots else {
            return Err(Error::Internal { optimizer: "Adamax", msg: "the momentum and norm slots are missing" });
        };
        let t = (ctx.iteration + 1) as f64;
        *m = m.add(&g.sub(m)?.mul_scalar(1.0 - self.beta_1)?)?;
        *u = u.mul_scalar(self.beta_2)?.maximum(&g.abs()?)?;
        let denominator = u.add_scalar(self.epsilon)?.mul_scalar(1.0 - self.beta_1.powf(t))?;
        Ok(p.sub(&m.mul_scalar(ctx.lr)?.div(&denominator)?)?)
    }
}
