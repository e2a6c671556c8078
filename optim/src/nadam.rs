//! [`Nadam`]: Adam with Nesterov momentum, as Keras `Nadam`.

use crate::base::{check_range, optimizer_common, rule_setters, Core, StepCtx, UpdateRule};
use crate::{Error, LearningRate, Result};
use keel_tensor::Tensor;

/// Nadam (Keras `Nadam`): Adam with Nesterov momentum and Dozat's momentum schedule.
///
/// At step `t` (1-based), with the momentum schedule `u_s = beta_1 * (1 - 0.5 * 0.96^s)`
/// and its running product `U_t = u_1 * ... * u_t` (Keras's `_u_product`):
/// `m += (g - m) * (1 - beta_1)`, `v += (g^2 - v) * (1 - beta_2)`,
/// `m_hat = u_{t+1} * m / (1 - U_t * u_{t+1}) + (1 - u_t) * g / (1 - U_t)`,
/// `v_hat = v / (1 - beta_2^t)` and `p -= lr * m_hat / (sqrt(v_hat) + epsilon)`.
/// Defaults: `learning_rate = 0.001`, `beta_1 = 0.9`, `beta_2 = 0.999`,
/// `epsilon = 1e-7`, no weight decay.
///
/// `U_t` is a function of the step alone, so keel recomputes it (in f64) from
/// [`crate::Optimizer::iterations`] instead of keeping it as state: a checkpoint
/// resumes it exactly.
#[derive(Debug, Clone)]
pub struct Nadam {
    core: Core,
    rule: NadamRule,
}

#[derive(Debug, Clone)]
struct NadamRule {
    beta_1: f64,
    beta_2: f64,
    epsilon: f64,
}

impl Nadam {
    /// Nadam with learning rate (or schedule) `lr` and Keras defaults otherwise.
    pub fn new(lr: impl Into<LearningRate>) -> Self {
        Nadam { core: Core::new("Nadam", lr.into()), rule: NadamRule { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 } }
    }

    rule_setters! {
        /// Decay rate of the first-moment estimate (and scale of the momentum schedule), in `[0, 1)`.
        beta_1: f64,
        /// Decay rate of the second-moment estimate, in `[0, 1)`.
        beta_2: f64,
        /// The constant added to `sqrt(v_hat)` in the denominator.
        epsilon: f64,
    }
}

impl Default for Nadam {
    /// Keras defaults: `learning_rate = 0.001`.
    fn default() -> Self {
        Nadam::new(0.001)
    }
}

optimizer_common!(Nadam);

/// Beyond this many steps `1 - 0.5 * 0.96^s` is 1.0 in f64, so the momentum
/// schedule's product only needs its first factors (and `beta_1^t`).
const SCHEDULE_STEPS: u64 = 1000;

impl NadamRule {
    /// The momentum schedule `u_s = beta_1 * (1 - 0.5 * 0.96^s)`.
    fn u(&self, s: u64) -> f64 {
        self.beta_1 * (1.0 - 0.5 * 0.96f64.powf(s as f64))
    }

    /// `U_t = u_1 * ... * u_t`, as `beta_1^t * prod (1 - 0.5 * 0.96^s)` (the factors
    /// past [`SCHEDULE_STEPS`] are exactly 1).
    fn u_product(&self, t: u64) -> f64 {
        let schedule: f64 = (1..=t.min(SCHEDULE_STEPS)).map(|s| 1.0 - 0.5 * 0.96f64.powf(s as f64)).product();
        self.beta_1.powf(t as f64) * schedule
    }
}

impl UpdateRule for NadamRule {
    fn slot_names(&self) -> Vec<&'static str> {
        vec!["momentum", "velocity"]
    }

    fn validate(&self, optimizer: &'static str) -> Result<()> {
        check_range(optimizer, "beta_1", self.beta_1, 0.0, 1.0, true, "must be in [0, 1)")?;
        check_range(optimizer, "beta_2", self.beta_2, 0.0, 1.0, true, "must be in [0, 1)")?;
        check_range(optimizer, "epsilon", self.epsilon, 0.0, f64::INFINITY, true, "must be finite and >= 0")
    }

    fn update(&self, ctx: &StepCtx, p: &Tensor, g: &Tensor, slots: &mut [Tensor]) -> Result<Tensor> {
        let [m, v] = slots else {
            return Err(Error::Internal { optimizer: "Nadam", msg: "the momentum and velocity slots are missing" });
        };
        let t = ctx.iteration + 1;
        let (u_t, u_next) = (self.u(t), self.u(t + 1));
        let u_product = self.u_product(t);
        let u_product_next = u_product * u_next;
        *m = m.add(&g.sub(m)?.mul_scalar(1.0 - self.beta_1)?)?;
        *v = v.add(&g.square()?.sub(v)?.mul_scalar(1.0 - self.beta_2)?)?;
        let m_hat =
            m.mul_scalar(u_next / (1.0 - u_product_next))?.add(&g.mul_scalar((1.0 - u_t) / (1.0 - u_product))?)?;
        let v_hat = v.div_scalar(1.0 - self.beta_2.powf(t as f64))?;
        Ok(p.sub(&m_hat.mul_scalar(ctx.lr)?.div(&v_hat.sqrt()?.add_scalar(self.epsilon)?)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::NadamRule;

    /// The closed form `U_t` equals Keras's running product, also past the schedule's
    /// first thousand steps.
    #[test]
    fn u_product_is_the_running_product() {
        for beta_1 in [0.9, 0.5, 0.99] {
            let rule = NadamRule { beta_1, beta_2: 0.999, epsilon: 1e-7 };
            let mut running = 1.0;
            for t in 1..=3000u64 {
                running *= rule.u(t);
                let closed = rule.u_product(t);
                // (relative, until both reach the subnormal range)
                assert!(
                    (closed - running).abs() <= 1e-12 * running.abs() + 1e-300,
                    "beta_1 {beta_1}, t {t}: {closed} vs {running}"
                );
            }
        }
    }
}
