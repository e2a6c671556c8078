//! [`Adam`]: adaptive moment estimation, as Keras `Adam` (with `amsgrad`).

use crate::base::{check_range, optimizer_common, rule_setters, Core, Pending, StepCtx, UpdateRule};
use crate::{Error, LearningRate, Result};
use keel_tensor::ops::{adam_update_many, AdamOperands, AdamStep, AdamUpdate};
use keel_tensor::{DType, Tensor};

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

    rule_setters! {
        /// Decay rate of the first-moment estimate, in `[0, 1)`.
        beta_1: f64,
        /// Decay rate of the second-moment estimate, in `[0, 1)`.
        beta_2: f64,
        /// The constant added to `sqrt(v)` in the denominator.
        epsilon: f64,
        /// Use the AMSGrad variant (keeps the running maximum of `v`).
        amsgrad: bool,
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
        let h = self.scalars(ctx);
        if fused(p) {
            let x = self.operands(p, g, slots)?;
            let out = p.adam_update(g, x.m, x.v, x.v_hat, &h)?;
            return Ok(self.store(out, slots));
        }
        let [m, v, rest @ ..] = slots else { return Err(missing_slots()) };
        *m = m.add(&g.sub(m)?.mul_scalar(1.0 - self.beta_1)?)?;
        *v = v.add(&g.square()?.sub(v)?.mul_scalar(1.0 - self.beta_2)?)?;
        let denom_v = match rest.first_mut() {
            Some(v_hat) if self.amsgrad => {
                *v_hat = v_hat.maximum(v)?;
                v_hat.clone()
            }
            _ => v.clone(),
        };
        Ok(p.sub(&m.mul_scalar(h.alpha)?.div(&denom_v.sqrt()?.add_scalar(self.epsilon)?)?)?)
    }

    /// The fused parameters together ([`adam_update_many`]: one launch per 24 on a GPU,
    /// weight decay included), the rest (F64 on a GPU) through the op chain.
    fn update_many(&self, ctx: &StepCtx, items: &mut [Pending]) -> Result<Vec<Tensor>> {
        let h = self.scalars(ctx);
        let (fused_at, chain_at): (Vec<usize>, Vec<usize>) = (0..items.len()).partition(|&i| fused(&items[i].p));
        let outs = {
            let ops = fused_at
                .iter()
                .map(|&i| {
                    Ok(AdamOperands {
                        weight_decay: items[i].decay,
                        ..self.operands(&items[i].p, &items[i].g, &items[i].slots)?
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            adam_update_many(&ops, &h)?
        };
        let mut news: Vec<Option<Tensor>> = vec![None; items.len()];
        for (i, out) in fused_at.into_iter().zip(outs) {
            news[i] = Some(self.store(out, &mut items[i].slots));
        }
        for i in chain_at {
            let it = &mut items[i];
            let p = it.decayed()?;
            news[i] = Some(self.update(ctx, &p, &it.g, &mut it.slots)?);
        }
        news.into_iter().map(|n| n.ok_or_else(missing_slots)).collect()
    }
}

/// Whether `p` takes the fused update: everything on the CPU, F32 and F64 on CUDA (the
/// same arithmetic as the op chain, so the same bits either way).
fn fused(p: &Tensor) -> bool {
    !p.device().is_cuda() || matches!(p.dtype(), DType::F32 | DType::F64)
}

/// Never seen: the slots are built from slot_names(), which always has two or more.
fn missing_slots() -> Error {
    Error::Internal { optimizer: "Adam", msg: "the momentum and velocity slots are missing" }
}

impl AdamRule {
    /// This step's scalars: `t` is the 1-based step.
    fn scalars(&self, ctx: &StepCtx) -> AdamStep {
        let t = (ctx.iteration + 1) as f64;
        let alpha = ctx.lr * (1.0 - self.beta_2.powf(t)).sqrt() / (1.0 - self.beta_1.powf(t));
        AdamStep { alpha, beta_1: self.beta_1, beta_2: self.beta_2, epsilon: self.epsilon }
    }

    /// The fused op's operands for parameter `p`, gradient `g` and its `slots`.
    fn operands<'a>(&self, p: &'a Tensor, g: &'a Tensor, slots: &'a [Tensor]) -> Result<AdamOperands<'a>> {
        let [m, v, rest @ ..] = slots else { return Err(missing_slots()) };
        let v_hat = if self.amsgrad { rest.first() } else { None };
        Ok(AdamOperands { param: p, weight_decay: None, grad: g, m, v, v_hat })
    }

    /// Stores a fused update's moments in `slots`; returns the new parameter.
    fn store(&self, out: AdamUpdate, slots: &mut [Tensor]) -> Tensor {
        let mut new = [Some(out.m), Some(out.v), out.v_hat].into_iter();
        for (slot, value) in slots.iter_mut().zip(&mut new) {
            if let Some(value) = value {
                *slot = value;
            }
        }
        out.param
    }
}
