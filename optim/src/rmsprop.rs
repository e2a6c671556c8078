//! [`RMSprop`]: root-mean-square propagation, as Keras `RMSprop`.

use crate::base::{check_range, optimizer_common, rule_setters, Core, StepCtx, UpdateRule};
use crate::{Error, LearningRate, Result};
use keel_tensor::Tensor;

/// RMSprop (Keras `RMSprop`).
///
/// `v = rho * v + (1 - rho) * g^2`; centered: `a = rho * a + (1 - rho) * g` and
/// `d = v - a^2 + epsilon`, else `d = v + epsilon`; `inc = lr * g / sqrt(d)`;
/// with momentum `m = momentum * m + inc` and `p -= m`, else `p -= inc`.
/// Defaults: `learning_rate = 0.001`, `rho = 0.9`, `momentum = 0`,
/// `epsilon = 1e-7`, not centered.
#[derive(Debug, Clone)]
pub struct RMSprop {
    core: Core,
    rule: RmsRule,
}

#[derive(Debug, Clone)]
struct RmsRule {
    rho: f64,
    momentum: f64,
    epsilon: f64,
    centered: bool,
}

impl RMSprop {
    /// RMSprop with learning rate (or schedule) `lr` and Keras defaults otherwise.
    pub fn new(lr: impl Into<LearningRate>) -> Self {
        RMSprop {
            core: Core::new("RMSprop", lr.into()),
            rule: RmsRule { rho: 0.9, momentum: 0.0, epsilon: 1e-7, centered: false },
        }
    }

    rule_setters! {
        /// Discount factor of the squared-gradient average, in `[0, 1]`.
        rho: f64,
        /// Momentum factor in `[0, 1]` (0 keeps no momentum slot).
        momentum: f64,
        /// The constant added under the square root.
        epsilon: f64,
        /// Normalize by the estimated gradient variance instead of the second moment.
        centered: bool,
    }
}

impl Default for RMSprop {
    /// Keras defaults: `learning_rate = 0.001`.
    fn default() -> Self {
        RMSprop::new(0.001)
    }
}

optimizer_common!(RMSprop);

impl UpdateRule for RmsRule {
    fn slot_names(&self) -> Vec<&'static str> {
        let mut names = vec!["velocity"];
        if self.momentum > 0.0 {
            names.push("momentum");
        }
        if self.centered {
            names.push("average_gradient");
        }
        names
    }

    fn validate(&self, optimizer: &'static str) -> Result<()> {
        check_range(optimizer, "rho", self.rho, 0.0, 1.0, false, "must be in [0, 1]")?;
        check_range(optimizer, "momentum", self.momentum, 0.0, 1.0, false, "must be in [0, 1]")?;
        check_range(optimizer, "epsilon", self.epsilon, 0.0, f64::INFINITY, true, "must be finite and >= 0")
    }

    fn update(&self, ctx: &StepCtx, p: &Tensor, g: &Tensor, slots: &mut [Tensor]) -> Result<Tensor> {
        let rho = self.rho;
        let [velocity, rest @ ..] = slots else {
            return Err(Error::Internal { optimizer: "RMSprop", msg: "the velocity slot is missing" });
        };
        *velocity = velocity.mul_scalar(rho)?.add(&g.square()?.mul_scalar(1.0 - rho)?)?;
        let (momentum, average) = match (self.momentum > 0.0, self.centered, rest) {
            (true, true, [m, a, ..]) => (Some(m), Some(a)),
            (true, false, [m, ..]) => (Some(m), None),
            (false, true, [a, ..]) => (None, Some(a)),
            _ => (None, None),
        };
        let denominator = match average {
            Some(a) => {
                *a = a.mul_scalar(rho)?.add(&g.mul_scalar(1.0 - rho)?)?;
                velocity.sub(&a.square()?)?.add_scalar(self.epsilon)?
            }
            None => velocity.add_scalar(self.epsilon)?,
        };
        let increment = g.mul_scalar(ctx.lr)?.div(&denominator.sqrt()?)?;
        match momentum {
            Some(m) => {
                *m = m.mul_scalar(self.momentum)?.add(&increment)?;
                Ok(p.sub(m)?)
            }
            None => Ok(p.sub(&increment)?),
        }
    }
}
