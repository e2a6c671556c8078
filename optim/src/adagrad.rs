//! [`Adagrad`]: per-coordinate learning rates from accumulated squared gradients, as Keras `Adagrad`.

use crate::base::{check_range, optimizer_common, rule_setters, Core, StepCtx, UpdateRule};
use crate::{Error, LearningRate, Result};
use keel_tensor::Tensor;

/// Adagrad (Keras `Adagrad`).
///
/// `acc += g^2`, then `p -= lr * g / sqrt(acc + epsilon)`, with `acc` starting
/// at `initial_accumulator_value`. Defaults: `learning_rate = 0.001`,
/// `initial_accumulator_value = 0.1`, `epsilon = 1e-7`.
#[derive(Debug, Clone)]
pub struct Adagrad {
    core: Core,
    rule: AdagradRule,
}

#[derive(Debug, Clone)]
struct AdagradRule {
    initial_accumulator_value: f64,
    epsilon: f64,
}

impl Adagrad {
    /// Adagrad with learning rate (or schedule) `lr` and Keras defaults otherwise.
    pub fn new(lr: impl Into<LearningRate>) -> Self {
        Adagrad {
            core: Core::new("Adagrad", lr.into()),
            rule: AdagradRule { initial_accumulator_value: 0.1, epsilon: 1e-7 },
        }
    }

    /// The starting value of every accumulator element (>= 0).
    pub fn initial_accumulator_value(mut self, value: f64) -> Self {
        self.rule.initial_accumulator_value = value;
        self
    }

    rule_setters! {
        /// The constant added under the square root.
        epsilon: f64,
    }
}

impl Default for Adagrad {
    /// Keras defaults: `learning_rate = 0.001`.
    fn default() -> Self {
        Adagrad::new(0.001)
    }
}

optimizer_common!(Adagrad);

impl UpdateRule for AdagradRule {
    fn slot_names(&self) -> Vec<&'static str> {
        vec!["accumulator"]
    }

    fn init_slot(&self, _name: &'static str, p: &Tensor) -> Result<Tensor> {
        Ok(Tensor::full(self.initial_accumulator_value, p.shape().clone(), p.dtype(), &p.device())?)
    }

    fn validate(&self, optimizer: &'static str) -> Result<()> {
        let v = self.initial_accumulator_value;
        check_range(optimizer, "initial_accumulator_value", v, 0.0, f64::INFINITY, true, "must be finite and >= 0")?;
        check_range(optimizer, "epsilon", self.epsilon, 0.0, f64::INFINITY, true, "must be finite and >= 0")
    }

    fn update(&self, ctx: &StepCtx, p: &Tensor, g: &Tensor, slots: &mut [Tensor]) -> Result<Tensor> {
        let Some(acc) = slots.first_mut() else {
            return Err(Error::Internal { optimizer: "Adagrad", msg: "the accumulator slot is missing" });
        };
        *acc = acc.add(&g.square()?)?;
        Ok(p.sub(&g.mul_scalar(ctx.lr)?.div(&acc.add_scalar(self.epsilon)?.sqrt()?)?)?)
    }
}
