//! [`Adam`]: adaptive moment estimation, as Keras `Adam` (with `amsgrad`).

use crate::base::{check_range, optimizer_common, Core, StepCtx, UpdateRule};
use crate::{LearningRate, Result};
use keel_tensor::ops::AdamStep;
use keel_tensor::Tensor;

/// Adam (Keras `Adam`).
///
/// At step `t` (1-based): `alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`,
/// `m += (g - m) * (1 - beta_1)`, `v += (g^2 - v) * (1 - beta_2)`, and
/// `p -= alpha * m / (sqrt(v) + epsilon)`; with `amsgrad`, `v_hat = max(v_hat, v)`
/// replaces `v` in the last formula. Defaults: `learning_rate = 0.001`,
/// `beta_1 = 0.9`, `beta_2 = 0.999`, `epsilon = 1e-7`, no amsgrad, no weight decay.
#[derive(Debug, Clone)]
pub struct Adam {
    core: Core,
    rule: AdamRule,
}

#[derive(Debug, Clone)]
pub(crate) struct AdamRule {
    pub(crate) beta_1: f64,
    pub(crate) beta_2: f64,
    pub(crate) epsilon: f64,
    pub(crate) amsgrad: bool,
}

impl Default for AdamRule {
    fn default() -> Self {
        AdamRule { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, amsgrad: false }
    }
}

impl Adam {
    /// Adam with learning rate (or schedule) `lr` and Keras defaults otherwise.
    pub fn new(lr: impl Into<LearningRate>) -> Self {
        Adam { core: Core::new("Adam", lr.into()), rule: AdamRule::default() }
    }

    /// Decay rate of the first-moment estimate, in `[0, 1)`.
    pub fn beta_1(mut self, beta_1: f64) -> Self {
        self.rule.beta_1 = beta_1;
        self
    }

    /// Decay rate of the second-moment estimate, in `[0, 1)`.
    pub fn beta_2(mut self, beta_2: f64) -> Self {
        self.rule.beta_2 = beta_2;
        self
    }

    /// The constant added to `sqrt(v)` in the denominator.
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.rule.epsilon = epsilon;
        self
    }

    /// Use the AMSGrad variant (keeps the running maximum of `v`).
    pub fn amsgrad(mut self, amsgrad: bool) -> Self {
        self.rule.amsgrad = amsgrad;
        self
    }
}

impl Default for Adam {
    /// Keras defaults: `learning_rate = 0.001`.
    fn default() -> Self {
        Adam::new(0.001)
    }
}

optimizer_common!(Adam);

impl UpdateRule for AdamRule {
    fn slot_names(&self) -> Vec<&'static str> {
        if self.amsgrad {
            vec!["momentum", "velocity", "velocity_hat"]
        } else {
            vec!["momentum", "velocity"]
        }
    }

    fn validate(&self, optimizer: &'static str) -> Result<()> {
        check_range(optimizer, "beta_1", self.beta_1, 0.0, 1.0, true, "must be in [0, 1)")?;
        check_range(optimizer, "beta_2", self.beta_2, 0.0, 1.0, true, "must be in [0, 1)")?;
        check_range(optimizer, "epsilon", self.epsilon, 0.0, f64::INFINITY, true, "must be finite and >= 0")
    }

    fn update(&self, ctx: &StepCtx, p: &Tensor, g: &Tensor, slots: &mut [Tensor]) -> Result<Tensor> {
        let t = (ctx.iteration + 1) as f64;
        let alpha = ctx.lr * (1.0 - self.beta_2.powf(t)).sqrt() / (1.0 - self.beta_1.powf(t));
        let [m, v, rest @ ..] = slots else {
            // ok: the slots are built from slot_names(), which always has two or more.
            unreachable!("Adam keeps at least two slots")
        };
        if !p.device().is_cuda() || p.dtype() == keel_tensor::DType::F32 {
            // one fused pass (CPU, or F32 on CUDA), the same arithmetic as the op chain below
            let h = AdamStep { alpha, beta_1: self.beta_1, beta_2: self.beta_2, epsilon: self.epsilon };
            let v_hat = if self.amsgrad { rest.first() } else { None };
            let out = p.adam_update(g, m, v, v_hat, &h)?;
            *m = out.m;
            *v = out.v;
            if let (Some(slot), Some(new)) = (rest.first_mut(), out.v_hat) {
                *slot = new;
            }
            return Ok(out.param);
        }
        *m = m.add(&g.sub(m)?.mul_scalar(1.0 - self.beta_1)?)?;
        *v = v.add(&g.square()?.sub(v)?.mul_scalar(1.0 - self.beta_2)?)?;
        let denom_v = match rest.first_mut() {
            Some(v_hat) if self.amsgrad => {
                *v_hat = v_hat.maximum(v)?;
                v_hat.clone()
            }
            _ => v.clone(),
        };
        Ok(p.sub(&m.mul_scalar(alpha)?.div(&denom_v.sqrt()?.add_scalar(self.epsilon)?)?)?)
    }
}
