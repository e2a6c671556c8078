//! [`Sgd`]: gradient descent with optional (Nesterov) momentum, as Keras `SGD`.

use crate::base::{check_range, optimizer_common, rule_setters, Core, Pending, StepCtx, UpdateRule};
use crate::{LearningRate, Result};
use keel_tensor::ops::{sgd_update_many, SgdOperands, SgdStep, SgdUpdate};
use keel_tensor::Tensor;

/// Stochastic gradient descent (Keras `SGD`).
///
/// Without momentum `p -= lr * g`. With momentum `m = momentum * m - lr * g`,
/// then `p += m`, or with Nesterov `p += momentum * m - lr * g`. Defaults:
/// `learning_rate = 0.01`, `momentum = 0`, `nesterov = false`, no weight decay
/// (when set, weight decay is decoupled, as in every Keras optimizer).
#[derive(Debug, Clone)]
pub struct Sgd {
    core: Core,
    rule: SgdRule,
}

/// The Keras spelling of [`Sgd`].
#[allow(clippy::upper_case_acronyms)]
pub type SGD = Sgd;

#[derive(Debug, Clone)]
struct SgdRule {
    momentum: f64,
    nesterov: bool,
}

impl Sgd {
    /// SGD with learning rate (or schedule) `lr`.
    pub fn new(lr: impl Into<LearningRate>) -> Self {
        Sgd { core: Core::new("SGD", lr.into()), rule: SgdRule { momentum: 0.0, nesterov: false } }
    }

    rule_setters! {
        /// The momentum factor in `[0, 1]` (0 keeps no velocity slot).
        momentum: f64,
        /// Use Nesterov momentum.
        nesterov: bool,
    }
}

impl Default for Sgd {
    /// Keras defaults: `learning_rate = 0.01`, no momentum.
    fn default() -> Self {
        Sgd::new(0.01)
    }
}

optimizer_common!(Sgd);

impl UpdateRule for SgdRule {
    fn slot_names(&self) -> Vec<&'static str> {
        if self.momentum != 0.0 {
            vec!["momentum"]
        } else {
            Vec::new()
        }
    }

    fn validate(&self, optimizer: &'static str) -> Result<()> {
        check_range(optimizer, "momentum", self.momentum, 0.0, 1.0, false, "must be in [0, 1]")
    }

    /// One fused pass (`Tensor::sgd_update`, the same bits as the op chain
    /// `lr_g = g lr; m = m momentum - lr_g; p + m` on every device).
    fn update(&self, ctx: &StepCtx, p: &Tensor, g: &Tensor, slots: &mut [Tensor]) -> Result<Tensor> {
        let out = p.sgd_update(g, slots.first(), &self.scalars(ctx))?;
        Ok(store(out, slots))
    }

    /// All parameters in one fused op ([`sgd_update_many`]: one launch per 24 on a GPU,
    /// weight decay included).
    fn update_many(&self, ctx: &StepCtx, items: &mut [Pending]) -> Result<Vec<Tensor>> {
        let outs = {
            let ops: Vec<SgdOperands<'_>> = items
                .iter()
                .map(|it| SgdOperands { param: &it.p, weight_decay: it.decay, grad: &it.g, momentum: it.slots.first() })
                .collect();
            sgd_update_many(&ops, &self.scalars(ctx))?
        };
        Ok(items.iter_mut().zip(outs).map(|(it, out)| store(out, &mut it.slots)).collect())
    }
}

impl SgdRule {
    /// This step's scalars.
    fn scalars(&self, ctx: &StepCtx) -> SgdStep {
        SgdStep { learning_rate: ctx.lr, momentum: self.momentum, nesterov: self.nesterov }
    }
}

/// Stores a fused update's momentum in `slots` (when it keeps one); returns the new parameter.
fn store(out: SgdUpdate, slots: &mut [Tensor]) -> Tensor {
    if let (Some(m), Some(new_m)) = (slots.first_mut(), out.momentum) {
        *m = new_m;
    }
    out.param
}
