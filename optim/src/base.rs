//! The machinery every optimizer shares: clipping, weight decay, slot storage,
//! dtype handling and state save/load. An optimizer only supplies its
//! [`UpdateRule`].

use crate::state::SlotStore;
use crate::{Clipping, Error, LearningRate, OptimizerState, Result};
use keel_autograd::{Gradients, Param, ParamId};
use keel_tensor::{DType, Tensor};
use std::collections::HashSet;

/// What an update rule sees besides the tensors.
pub(crate) struct StepCtx {
    /// The learning rate of this step.
    pub(crate) lr: f64,
    /// Updates applied before this one (Keras `iterations`; Adam's `t` is this + 1).
    pub(crate) iteration: u64,
}

/// One optimizer's per-parameter update (Keras `update_step`).
pub(crate) trait UpdateRule {
    /// The slot names this configuration keeps per parameter, in the order `update` gets them.
    fn slot_names(&self) -> Vec<&'static str>;

    /// The initial value of slot `name` for parameter value `p` (zeros unless overridden).
    fn init_slot(&self, _name: &'static str, p: &Tensor) -> Result<Tensor> {
        Ok(p.zeros_like()?)
    }

    /// Check the hyper-parameters.
    fn validate(&self, optimizer: &'static str) -> Result<()>;

    /// Check this step's learning rate `lr` beyond the shared `finite and >= 0` (nothing
    /// unless overridden; Ftrl divides by it).
    fn validate_learning_rate(&self, _optimizer: &'static str, _lr: f64) -> Result<()> {
        Ok(())
    }

    /// The new parameter value, updating `slots` in place; `p` and `g` share the compute dtype.
    fn update(&self, ctx: &StepCtx, p: &Tensor, g: &Tensor, slots: &mut [Tensor]) -> Result<Tensor>;

    /// The new values of several parameters, updating each one's slots in place; the same
    /// results as [`UpdateRule::update`] on each after its weight decay (the default).
    /// Rules with a multi-tensor op override it: on a GPU that is one launch for many
    /// parameters, weight decay included.
    fn update_many(&self, ctx: &StepCtx, items: &mut [Pending]) -> Result<Vec<Tensor>> {
        items
            .iter_mut()
            .map(|it| {
                let p = it.decayed()?;
                self.update(ctx, &p, &it.g, &mut it.slots)
            })
            .collect()
    }
}

/// One parameter's update inputs: value and gradient in the compute dtype, its weight
/// decay, and its slots in [`UpdateRule::slot_names`] order.
pub(crate) struct Pending {
    /// The parameter value, before weight decay.
    pub(crate) p: Tensor,
    /// Decoupled weight decay to apply to `p` first, `p - p * decay` (`weight_decay * lr`).
    pub(crate) decay: Option<f64>,
    /// Its gradient (clipped).
    pub(crate) g: Tensor,
    /// Its slots, updated in place.
    pub(crate) slots: Vec<Tensor>,
}

impl Pending {
    /// The parameter value after its weight decay (Keras: `p -= p * wd * lr`).
    pub(crate) fn decayed(&self) -> Result<Tensor> {
        Ok(match self.decay {
            Some(d) => self.p.sub(&self.p.mul_scalar(d)?)?,
            None => self.p.clone(),
        })
    }
}

/// At most this many parameters are updated together (one multi-tensor launch on a GPU,
/// keel-cuda-kernels' `MULTI_MAX`) ...
const GROUP_PARAMS: usize = 24;
/// ... and, beyond the first, only while the group holds at most this many elements, which
/// bounds the memory held by old and new values at once (out-of-place updates).
const GROUP_ELEMS: usize = 1 << 24;

/// Check `value` is finite and within `[lo, hi]` (`hi_open` excludes `hi`).
pub(crate) fn check_range(
    optimizer: &'static str,
    name: &'static str,
    value: f64,
    lo: f64,
    hi: f64,
    hi_open: bool,
    msg: &'static str,
) -> Result<()> {
    let ok = value.is_finite() && value >= lo && if hi_open { value < hi } else { value <= hi };
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidHyperparameter { optimizer, name, value, msg })
    }
}

/// The dtype updates run in: f64 for f64 parameters, f32 for every other float dtype.
fn compute_dtype(d: DType) -> Option<DType> {
    match d {
        DType::F64 => Some(DType::F64),
        DType::F32 | DType::F16 | DType::BF16 => Some(DType::F32),
        _ => None,
    }
}

fn cast(t: &Tensor, dtype: DType) -> Result<Tensor> {
    Ok(if t.dtype() == dtype { t.clone() } else { t.to_dtype(dtype)? })
}

/// The shared part of every optimizer.
#[derive(Debug, Clone)]
pub(crate) struct Core {
    pub(crate) name: &'static str,
    pub(crate) lr: LearningRate,
    pub(crate) clipping: Clipping,
    pub(crate) weight_decay: Option<f64>,
    pub(crate) no_decay: HashSet<ParamId>,
    pub(crate) iterations: u64,
    pub(crate) store: SlotStore,
}

impl Core {
    pub(crate) fn new(name: &'static str, lr: LearningRate) -> Self {
        Core {
            name,
            lr,
            clipping: Clipping::None,
            weight_decay: None,
            no_decay: HashSet::new(),
            iterations: 0,
            store: SlotStore::default(),
        }
    }

    /// The settings' checks (the learning rate's at the current iteration).
    pub(crate) fn validate(&self, rule: &impl UpdateRule) -> Result<()> {
        let name = self.name;
        rule.validate(name)?;
        self.clipping.validate(name)?;
        if let Some(wd) = self.weight_decay {
            check_range(name, "weight_decay", wd, 0.0, f64::INFINITY, true, "must be finite and >= 0")?;
        }
        let lr = self.lr.at(self.iterations);
        check_range(
            name,
            "learning_rate",
            lr,
            0.0,
            f64::INFINITY,
            true,
            "must be finite and >= 0 (check the schedule's configuration)",
        )?;
        rule.validate_learning_rate(name, lr)
    }

    pub(crate) fn step(&mut self, rule: &impl UpdateRule, params: &[Param], grads: &Gradients) -> Result<()> {
        let name = self.name;
        self.validate(rule)?;
        let names = rule.slot_names();

        // Validate everything (and cast gradients) before changing any state.
        let mut seen = HashSet::new();
        let list: Vec<&Param> = params.iter().filter(|p| seen.insert(p.id())).collect();
        let mut dtypes = Vec::with_capacity(list.len());
        let mut gs: Vec<Option<Tensor>> = Vec::with_capacity(list.len());
        for (position, p) in list.iter().enumerate() {
            let value = p.value();
            let cd = compute_dtype(value.dtype()).ok_or(Error::NonFloatParam {
                optimizer: name,
                position,
                dtype: value.dtype(),
            })?;
            dtypes.push(cd);
            let g = match grads.get(p) {
                None => None,
                Some(g) => {
                    if g.shape() != value.shape() {
                        return Err(Error::GradientShape {
                            optimizer: name,
                            position,
                            param: value.shape().clone(),
                            grad: g.shape().clone(),
                        });
                    }
                    if !g.dtype().is_float() {
                        return Err(Error::NonFloatParam { optimizer: name, position, dtype: g.dtype() });
                    }
                    Some(cast(g, cd)?)
                }
            };
            gs.push(g);
        }
        let lr = self.lr.at(self.iterations);
        self.store.bind_pending(name, &names, &list, &dtypes)?;
        self.store.record_order(&list);
        if gs.iter().all(Option::is_none) {
            return Ok(());
        }

        self.clipping.apply(&mut gs)?;
        let ctx = StepCtx { lr, iteration: self.iterations };
        let todo: Vec<(&Param, Tensor, DType)> =
            list.iter().zip(gs).zip(dtypes).filter_map(|((p, g), cd)| Some((*p, g?, cd))).collect();
        let mut rest = &todo[..];
        while !rest.is_empty() {
            let mut take = 1;
            let mut elems = rest[0].1.elem_count();
            while take < rest.len().min(GROUP_PARAMS) && elems + rest[take].1.elem_count() <= GROUP_ELEMS {
                elems += rest[take].1.elem_count();
                take += 1;
            }
            let (group, tail) = rest.split_at(take);
            rest = tail;
            let mut items =
                group.iter().map(|(p, g, cd)| self.pending(rule, &names, p, g, *cd, lr)).collect::<Result<Vec<_>>>()?;
            let news = rule.update_many(&ctx, &mut items)?;
            for (((p, _, _), item), new) in group.iter().zip(items).zip(news) {
                p.assign(&cast(&new, p.value().dtype())?)?;
                self.store.insert(p.id(), names.iter().copied().zip(item.slots).collect());
            }
        }
        self.iterations += 1;
        Ok(())
    }

    /// The update inputs of parameter `p` with (cast, clipped) gradient `g`: its value in
    /// compute dtype `cd`, its weight decay, and its slots.
    fn pending(
        &self,
        rule: &impl UpdateRule,
        names: &[&'static str],
        p: &Param,
        g: &Tensor,
        cd: DType,
        lr: f64,
    ) -> Result<Pending> {
        let pv = cast(&p.value(), cd)?;
        // Slots by name; one this configuration needs but lacks (first update,
        // or a builder option changed mid-training) starts at its initial value.
        let stored = self.store.get(p.id());
        let slots = names
            .iter()
            .map(|n| match stored.and_then(|s| s.iter().find(|(k, _)| k == n)) {
                // state follows its parameter when the model moved to another device
                Some((_, t)) => Ok(t.to_device(&pv.device())?),
                None => rule.init_slot(n, &pv),
            })
            .collect::<Result<Vec<_>>>()?;
        let decay = self.weight_decay.filter(|&wd| wd > 0.0 && !self.no_decay.contains(&p.id())).map(|wd| wd * lr);
        Ok(Pending { p: pv, decay, g: g.clone(), slots })
    }

    pub(crate) fn state(&self, rule: &impl UpdateRule) -> Result<OptimizerState> {
        Ok(OptimizerState {
            optimizer: self.name.to_string(),
            iterations: self.iterations,
            learning_rate: self.lr.constant(),
            params: self.store.export(&rule.slot_names())?,
        })
    }

    pub(crate) fn load_state(&mut self, rule: &impl UpdateRule, state: OptimizerState) -> Result<()> {
        if state.optimizer != self.name {
            return Err(Error::StateMismatch {
                optimizer: self.name,
                msg: format!("the state was saved by {:?}", state.optimizer),
            });
        }
        SlotStore::check_entries(self.name, &rule.slot_names(), &state.params)?;
        if let Some(lr) = state.learning_rate {
            self.lr = LearningRate::Constant(lr);
        }
        self.iterations = state.iterations;
        self.store.set_pending(state.params);
        Ok(())
    }
}

/// Builder methods that set a field of the optimizer's update rule, one per
/// `doc, name: type` entry: `pub fn name(mut self, name: type) -> Self`.
macro_rules! rule_setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty,)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, $name: $ty) -> Self {
                self.rule.$name = $name;
                self
            }
        )*
    };
}
pub(crate) use rule_setters;

/// Builder methods shared by every optimizer, and its [`crate::Optimizer`] impl.
macro_rules! optimizer_common {
    ($ty:ident) => {
        impl $ty {
            /// Clip each gradient tensor to this L2 norm (Keras `clipnorm`; replaces other clipping).
            pub fn clipnorm(mut self, clipnorm: f64) -> Self {
                self.core.clipping = $crate::Clipping::Norm(clipnorm);
                self
            }

            /// Clip all gradients together to this joint L2 norm (Keras `global_clipnorm`; replaces other clipping).
            pub fn global_clipnorm(mut self, clipnorm: f64) -> Self {
                self.core.clipping = $crate::Clipping::GlobalNorm(clipnorm);
                self
            }

            /// Clamp gradient elements to `[-clipvalue, clipvalue]` (Keras `clipvalue`; replaces other clipping).
            pub fn clipvalue(mut self, clipvalue: f64) -> Self {
                self.core.clipping = $crate::Clipping::Value(clipvalue);
                self
            }

            /// Set the gradient clipping directly ([`Clipping::None`](crate::Clipping::None) turns it off).
            pub fn clipping(mut self, clipping: $crate::Clipping) -> Self {
                self.core.clipping = clipping;
                self
            }

            /// Decoupled weight decay: before each update `p -= p * weight_decay * lr` (Keras `weight_decay`).
            pub fn weight_decay(mut self, weight_decay: f64) -> Self {
                self.core.weight_decay = Some(weight_decay);
                self
            }

            /// Exempt these parameters (e.g. biases, norm scales) from weight decay.
            pub fn exclude_from_weight_decay(mut self, params: &[keel_autograd::Param]) -> Self {
                self.core.no_decay.extend(params.iter().map(|p| p.id()));
                self
            }

            /// The learning rate or schedule this optimizer was given.
            pub fn learning_rate_config(&self) -> &$crate::LearningRate {
                &self.core.lr
            }

            /// Replace the learning rate with a constant or a schedule.
            pub fn set_learning_rate_config(&mut self, lr: impl Into<$crate::LearningRate>) {
                self.core.lr = lr.into();
            }
        }

        impl $crate::Optimizer for $ty {
            fn name(&self) -> &'static str {
                self.core.name
            }

            fn step(
                &mut self,
                params: &[keel_autograd::Param],
                grads: &keel_autograd::Gradients,
            ) -> $crate::Result<()> {
                self.core.step(&self.rule, params, grads)
            }

            fn learning_rate(&self) -> f64 {
                self.core.lr.at(self.core.iterations)
            }

            fn set_learning_rate(&mut self, lr: f64) {
                self.core.lr = $crate::LearningRate::Constant(lr);
            }

            fn learning_rate_is_scheduled(&self) -> bool {
                self.core.lr.constant().is_none()
            }

            fn iterations(&self) -> u64 {
                self.core.iterations
            }

            fn state(&self) -> $crate::Result<$crate::OptimizerState> {
                self.core.state(&self.rule)
            }

            fn load_state(&mut self, state: $crate::OptimizerState) -> $crate::Result<()> {
                self.core.load_state(&self.rule, state)
            }

            fn validate(&self) -> $crate::Result<()> {
                self.core.validate(&self.rule)
            }
        }
    };
}

pub(crate) use optimizer_common;
