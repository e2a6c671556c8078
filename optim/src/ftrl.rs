//! [`Ftrl`]: Follow The Regularized Leader, as Keras `Ftrl`.

use crate::base::{check_range, optimizer_common, rule_setters, Core, StepCtx, UpdateRule};
use crate::{Error, LearningRate, Result};
use keel_tensor::Tensor;

/// FTRL-Proximal (Keras `Ftrl`, McMahan et al. 2013), for wide, sparse linear models.
///
/// With `k = -learning_rate_power`, `l2 = l2_regularization_strength + beta / (2 lr)`
/// and the shrinkage gradient `g_s = g + 2 * l2_shrinkage_regularization_strength * p`:
/// `n' = n + g^2`, `z += g_s - (n'^k - n^k) / lr * p`,
/// `p = (clip(z, -l1, l1) - z) / (n'^k / lr + 2 * l2)`, `n = n'`; `n` starts at
/// `initial_accumulator_value`, `z` at 0. Defaults: `learning_rate = 0.001`,
/// `learning_rate_power = -0.5`, `initial_accumulator_value = 0.1`, all
/// regularization strengths and `beta` 0, no weight decay. The learning rate must
/// be > 0 (the formulas divide by it).
#[derive(Debug, Clone)]
pub struct Ftrl {
    core: Core,
    rule: FtrlRule,
}

#[derive(Debug, Clone)]
struct FtrlRule {
    learning_rate_power: f64,
    initial_accumulator_value: f64,
    l1: f64,
    l2: f64,
    l2_shrinkage: f64,
    beta: f64,
}

impl Ftrl {
    /// Ftrl with learning rate (or schedule) `lr` and Keras defaults otherwise.
    pub fn new(lr: impl Into<LearningRate>) -> Self {
        Ftrl {
            core: Core::new("Ftrl", lr.into()),
            rule: FtrlRule {
                learning_rate_power: -0.5,
                initial_accumulator_value: 0.1,
                l1: 0.0,
                l2: 0.0,
                l2_shrinkage: 0.0,
                beta: 0.0,
            },
        }
    }

    /// How the per-coordinate rate falls as squared gradients accumulate (`<= 0`; 0 keeps it fixed).
    pub fn learning_rate_power(mut self, power: f64) -> Self {
        self.rule.learning_rate_power = power;
        self
    }

    /// The starting value of every accumulator element (>= 0).
    pub fn initial_accumulator_value(mut self, value: f64) -> Self {
        self.rule.initial_accumulator_value = value;
        self
    }

    /// L1 regularization strength (>= 0; makes weights exactly zero).
    pub fn l1_regularization_strength(mut self, l1: f64) -> Self {
        self.rule.l1 = l1;
        self
    }

    /// L2 regularization strength (>= 0), applied by the proximal step.
    pub fn l2_regularization_strength(mut self, l2: f64) -> Self {
        self.rule.l2 = l2;
        self
    }

    /// L2 shrinkage strength (>= 0): a magnitude penalty added to the gradient itself.
    pub fn l2_shrinkage_regularization_strength(mut self, l2_shrinkage: f64) -> Self {
        self.rule.l2_shrinkage = l2_shrinkage;
        self
    }

    rule_setters! {
        /// The `beta` of the per-coordinate rate (>= 0; adds `beta / (2 lr)` to the L2 strength).
        beta: f64,
    }
}

impl Default for Ftrl {
    /// Keras defaults: `learning_rate = 0.001`.
    fn default() -> Self {
        Ftrl::new(0.001)
    }
}

optimizer_common!(Ftrl);

impl UpdateRule for FtrlRule {
    fn slot_names(&self) -> Vec<&'static str> {
        vec!["accumulator", "linear"]
    }

    fn init_slot(&self, name: &'static str, p: &Tensor) -> Result<Tensor> {
        Ok(match name {
            "accumulator" => Tensor::full(self.initial_accumulator_value, p.shape().clone(), p.dtype(), &p.device())?,
            _ => p.zeros_like()?,
        })
    }

    fn validate(&self, optimizer: &'static str) -> Result<()> {
        let non_negative = "must be finite and >= 0";
        let power = self.learning_rate_power;
        check_range(optimizer, "learning_rate_power", power, f64::MIN, 0.0, false, "must be finite and <= 0")?;
        let v = self.initial_accumulator_value;
        check_range(optimizer, "initial_accumulator_value", v, 0.0, f64::INFINITY, true, non_negative)?;
        check_range(optimizer, "l1_regularization_strength", self.l1, 0.0, f64::INFINITY, true, non_negative)?;
        check_range(optimizer, "l2_regularization_strength", self.l2, 0.0, f64::INFINITY, true, non_negative)?;
        let s = self.l2_shrinkage;
        check_range(optimizer, "l2_shrinkage_regularization_strength", s, 0.0, f64::INFINITY, true, non_negative)?;
        check_range(optimizer, "beta", self.beta, 0.0, f64::INFINITY, true, non_negative)
    }

    fn validate_learning_rate(&self, optimizer: &'static str, lr: f64) -> Result<()> {
        if lr > 0.0 {
            Ok(())
        } else {
            Err(Error::InvalidHyperparameter {
                optimizer,
                name: "learning_rate",
                value: lr,
                msg: "must be > 0 (Ftrl divides by it; check the schedule's configuration)",
            })
        }
    }

    fn update(&self, ctx: &StepCtx, p: &Tensor, g: &Tensor, slots: &mut [Tensor]) -> Result<Tensor> {
        let [accumulator, linear] = slots else {
            return Err(Error::Internal { optimizer: "Ftrl", msg: "the accumulator and linear slots are missing" });
        };
        let lr = ctx.lr;
        let k = -self.learning_rate_power;
        let l2 = self.l2 + self.beta / (2.0 * lr);
        let shrunk = g.add(&p.mul_scalar(2.0 * self.l2_shrinkage)?)?;
        let new_accumulator = accumulator.add(&g.square()?)?;
        let new_pow = new_accumulator.pow_scalar(k)?;
        let sigma = new_pow.sub(&accumulator.pow_scalar(k)?)?.div_scalar(lr)?;
        *linear = linear.add(&shrunk.sub(&sigma.mul(p)?)?)?;
        let quadratic = new_pow.div_scalar(lr)?.add_scalar(2.0 * l2)?;
        let clipped = linear.clamp(-self.l1, self.l1)?;
        let new = clipped.sub(linear)?.div(&quadratic)?;
        *accumulator = new_accumulator;
        Ok(new)
    }
}
