//! [`Adadelta`]: step sizes from running averages of squared gradients and updates,
//! as Keras `Adadelta`.

use crate::base::{check_range, optimizer_common, rule_setters, Core, StepCtx, UpdateRule};
use crate::{Error, LearningRate, Result};
use keel_tensor::Tensor;

/// Adadelta (Keras `Adadelta`).
///
/// `a_g = rho * a_g + (1 - rho) * g^2`,
/// `delta = -sqrt(a_d + epsilon) * g / sqrt(a_g + epsilon)`,
/// `a_d = rho * a_d + (1 - rho) * delta^2` and `p += lr * delta`. Defaults as
/// Keras: `learning_rate = 0.001`, `rho = 0.95`, `epsilon = 1e-7`, no weight
/// decay (the original paper's method corresponds to `learning_rate = 1.0`).
#[derive(Debug, Clone)]
pub struct Adadelta {
    core: Core,
    rule: AdadeltaRule,
}

#[derive(Debug, Clone)]
struct AdadeltaRule {
    rho: f64,
    epsilon: f64,
}

impl Adadelta {
    /// Adadelta with learning rate (or schedule) `lr` and Keras defaults otherwise.
    pub fn new(lr: impl Into<LearningRate>) -> Self {
        Adadelta { core: Core::new("Adadelta", lr.into()), rule: AdadeltaRule { rho: 0.95, epsilon: 1e-7 } }
    }

    rule_setters! {
        /// Decay rate of both running averages, in `[0, 1]`.
        rho: f64,
        /// The constant added under both square roots (> 0: it also sizes the first steps).
        epsilon: f64,
    }
}

impl Default for Adadelta {
    /// Keras defaults: `learning_rate = 0.001`.
    fn default() -> Self {
        Adadelta::new(0.001)
    }
}

optimizer_common!(Adadelta);

impl UpdateRule for AdadeltaRule {
    fn slot_names(&self) -> Vec<&'static str> {
        vec!["accumulated_grad", "accumulated_delta_var"]
    }

    fn validate(&self, optimizer: &'static str) -> Result<()> {
        check_range(optimizer, "rho", self.rho, 0.0, 1.0, false, "must be in [0, 1]")?;
        // With epsilon = 0 the update is sqrt(0) * g / ... = 0 forever (and 0/0 for zero gradients).
        check_range(
            optimizer,
            "epsilon",
            self.epsilon,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            true,
            "must be finite and > 0 (with 0 Adadelta never moves)",
        )
    }

    fn update(&self, ctx: &StepCtx, p: &Tensor, g: &Tensor, slots: &mut [Tensor]) -> Result<Tensor> {
        let [acc_grad, acc_delta] = slots else {
            return Err(Error::Internal {
                optimizer: "Adadelta",
                msg: "the accumulated_grad and accumulated_delta_var slots are missing",
            });
        };
        let rho = self.rho;
        let rms = |x: &Tensor| -> Result<Tensor> { Ok(x.add_scalar(self.epsilon)?.sqrt()?) };
        *acc_grad = acc_grad.mul_scalar(rho)?.add(&g.square()?.mul_scalar(1.0 - rho)?)?;
        let delta = rms(acc_delta)?.mul(g)?.div(&rms(acc_grad)?)?.neg()?;
        *acc_delta = acc_delta.mul_scalar(rho)?.add(&delta.square()?.mul_scalar(1.0 - rho)?)?;
        Ok(p.add(&delta.mul_scalar(ctx.lr)?)?)
    }
}
