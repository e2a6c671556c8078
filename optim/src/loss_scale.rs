//! [`LossScaleOptimizer`]: dynamic loss scaling around another optimizer, as Keras's
//! `keras.optimizers.LossScaleOptimizer` (what `"mixed_float16"` training needs).

use crate::state::{ParamState, SlotData, SlotTensor};
use crate::{Error, Optimizer, OptimizerState, Result, StateLayout};
use keel_autograd::{Gradients, Param};
use keel_tensor::Tensor;
use std::collections::HashSet;

const NAME: &str = "LossScaleOptimizer";

/// Dynamic loss scaling (Keras `LossScaleOptimizer(inner_optimizer, initial_scale=2**15,
/// dynamic_growth_steps=2000)`).
///
/// F16 gradients below about 6e-8 round to zero. A training step therefore multiplies
/// the loss by the current scale before the backward pass
/// ([`Optimizer::scale_loss`]), so every gradient on the way is that much larger, and
/// [`Optimizer::step`] then:
/// - when every gradient is finite, divides them by the scale and lets the inner
///   optimizer step; after `dynamic_growth_steps` such steps in a row the scale doubles;
/// - when any gradient is infinite or NaN (the scale was too large), skips the update
///   (the inner optimizer does not count it) and halves the scale.
///
/// `compile` wraps the optimizer of a model under `"mixed_float16"` in one, as Keras's
/// does; a hand-written loop calls `scale_loss` itself:
///
/// ```
/// use keel_autograd::{Param, Tape};
/// use keel_optim::{LossScaleOptimizer, Optimizer, Sgd};
/// use keel_tensor::Tensor;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let w = Param::new(Tensor::from_vec(vec![1.0f32, -2.0], 2)?);
/// let mut opt = LossScaleOptimizer::new(Sgd::new(0.1)).initial_scale(1024.0);
/// let tape = Tape::new();
/// let loss = tape.param(&w).square()?.sum_all()?; // gradient 2w
/// let grads = tape.backward(&opt.scale_loss(&loss)?)?; // 1024 * 2w
/// opt.step(&[w.clone()], &grads)?; // w -= 0.1 * 2w
/// assert_eq!(w.value().to_vec::<f32>()?, [0.8, -1.6]);
/// assert_eq!(opt.loss_scale(), Some(1024.0));
/// # Ok(())
/// # }
/// ```
///
/// The finiteness check reads one number back from the device at every step (Keras
/// decides on the device; keel's optimizers have no device-side branch).
pub struct LossScaleOptimizer {
    inner: Box<dyn Optimizer>,
    initial_scale: f64,
    dynamic_growth_steps: u64,
    scale: f64,
    step_counter: u64,
    skipped: u64,
}

impl LossScaleOptimizer {
    /// Scale for `inner` with Keras's defaults: initial scale 2^15, doubled after 2000
    /// finite steps.
    pub fn new(inner: impl Optimizer + 'static) -> Self {
        LossScaleOptimizer::from_boxed(Box::new(inner))
    }

    /// [`LossScaleOptimizer::new`] for an optimizer already boxed (what `compile` holds).
    pub fn from_boxed(inner: Box<dyn Optimizer>) -> Self {
        let initial_scale = 32768.0;
        LossScaleOptimizer {
            inner,
            initial_scale,
            dynamic_growth_steps: 2000,
            scale: initial_scale,
            step_counter: 0,
            skipped: 0,
        }
    }

    /// The scale to start from (Keras `initial_scale`, default 2^15; finite and > 0). A
    /// power of two keeps the unscaled gradients exact.
    pub fn initial_scale(mut self, scale: f64) -> Self {
        self.initial_scale = scale;
        self.scale = scale;
        self
    }

    /// Double the scale after this many finite steps in a row (Keras
    /// `dynamic_growth_steps`, default 2000; at least 1).
    pub fn dynamic_growth_steps(mut self, steps: u64) -> Self {
        self.dynamic_growth_steps = steps;
        self
    }

    /// The scale the next step's loss is multiplied by (Keras's `dynamic_scale`).
    pub fn dynamic_scale(&self) -> f64 {
        self.scale
    }

    /// Finite steps since the scale last changed (Keras's `step_counter`).
    pub fn step_counter(&self) -> u64 {
        self.step_counter
    }

    /// Steps skipped so far because a gradient was infinite or NaN.
    pub fn skipped_steps(&self) -> u64 {
        self.skipped
    }

    /// The wrapped optimizer.
    pub fn inner(&self) -> &dyn Optimizer {
        self.inner.as_ref()
    }

    /// The wrapped optimizer, mutably.
    pub fn inner_mut(&mut self) -> &mut dyn Optimizer {
        self.inner.as_mut()
    }

    /// A state's own entry (`dynamic_scale`, `step_counter`) as `(scale, counter)`.
    fn read_own(entry: &ParamState) -> Result<(f64, u64)> {
        let value = |name: &str| -> Result<f64> {
            let slot = entry.slots.get(name).ok_or_else(|| mismatch(format!("the state has no {name:?}")))?;
            match (&slot.data, slot.shape.is_empty()) {
                (SlotData::F64(v), true) if v.len() == 1 => Ok(v[0]),
                (SlotData::F32(v), true) if v.len() == 1 => Ok(v[0] as f64),
                _ => Err(mismatch(format!("{name:?} must be one number, got shape {:?}", slot.shape))),
            }
        };
        let (scale, counter) = (value("dynamic_scale")?, value("step_counter")?);
        if !(scale.is_finite() && scale > 0.0) {
            return Err(mismatch(format!("dynamic_scale must be finite and > 0, got {scale}")));
        }
        if !(counter >= 0.0 && counter.fract() == 0.0 && counter < u64::MAX as f64) {
            return Err(mismatch(format!("step_counter must be a whole number >= 0, got {counter}")));
        }
        Ok((scale, counter as u64))
    }

    /// The gradients of `params` divided by the scale, and whether all were finite.
    fn unscale(&self, params: &[Param], grads: &Gradients) -> Result<Option<(Gradients, bool)>> {
        let mut seen = HashSet::new();
        let mut unscaled = Gradients::default();
        // sum(g * 0) is 0 when g is finite and NaN when any element is infinite or NaN (so
        // no sum of large finite values can overflow); the sums of all gradients add up to
        // one number, read back once. In F32, the dtype of mixed precision's gradients: on a
        // GPU a cast to F64 goes through the host
        let mut check: Option<Tensor> = None;
        for p in params {
            let Some(g) = grads.get(p).filter(|_| seen.insert(p.id())) else { continue };
            let zero = g.mul_scalar(0.0)?.sum_all()?.to_dtype(keel_tensor::DType::F32)?;
            check = Some(match check {
                Some(c) => c.add(&zero)?,
                None => zero,
            });
            unscaled.insert(p.id(), g.div_scalar(self.scale)?);
        }
        let Some(check) = check else { return Ok(None) };
        let finite = check.to_scalar::<f32>()? == 0.0;
        Ok(Some((unscaled, finite)))
    }
}

fn mismatch(msg: String) -> Error {
    Error::StateMismatch { optimizer: NAME, msg }
}

impl std::fmt::Debug for LossScaleOptimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LossScaleOptimizer")
            .field("inner", &self.inner.name())
            .field("initial_scale", &self.initial_scale)
            .field("dynamic_growth_steps", &self.dynamic_growth_steps)
            .field("dynamic_scale", &self.scale)
            .field("step_counter", &self.step_counter)
            .finish()
    }
}

impl Optimizer for LossScaleOptimizer {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Skip the step and halve the scale when a gradient of `params` is infinite or NaN;
    /// else step the inner optimizer on the gradients divided by the scale, and double
    /// the scale after `dynamic_growth_steps` finite steps in a row.
    fn step(&mut self, params: &[Param], grads: &Gradients) -> Result<()> {
        self.validate()?;
        let Some((unscaled, finite)) = self.unscale(params, grads)? else { return Ok(()) };
        if !finite {
            self.step_counter = 0;
            self.scale *= 0.5;
            self.skipped += 1;
            return Ok(());
        }
        self.inner.step(params, &unscaled)?;
        if self.step_counter + 1 >= self.dynamic_growth_steps {
            self.step_counter = 0;
            self.scale *= 2.0;
        } else {
            self.step_counter += 1;
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.inner.learning_rate()
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.inner.set_learning_rate(lr);
    }

    fn learning_rate_is_scheduled(&self) -> bool {
        self.inner.learning_rate_is_scheduled()
    }

    /// The inner optimizer's count: skipped steps are not counted (Keras's).
    fn iterations(&self) -> u64 {
        self.inner.iterations()
    }

    fn loss_scale(&self) -> Option<f64> {
        Some(self.scale)
    }

    /// `LossScaleOptimizer(<inner>)`, with one entry of its own before the inner's.
    fn state_layout(&self) -> StateLayout {
        let inner = self.inner.state_layout();
        StateLayout { name: format!("{NAME}({})", inner.name), own_entries: inner.own_entries + 1 }
    }

    /// The inner optimizer's state named `LossScaleOptimizer(<inner>)`, with one entry
    /// first holding the scale's own variables (`dynamic_scale`, `step_counter`, as
    /// Keras lists them before the inner optimizer's).
    fn state(&self) -> Result<OptimizerState> {
        let mut state = self.inner.state()?;
        let number = |v: f64| SlotTensor { shape: vec![], data: SlotData::F64(vec![v]) };
        let mut own = ParamState::default();
        own.slots.insert("dynamic_scale".into(), number(self.scale));
        own.slots.insert("step_counter".into(), number(self.step_counter as f64));
        state.params.insert(0, own);
        state.optimizer = self.state_layout().name;
        Ok(state)
    }

    fn load_state(&mut self, mut state: OptimizerState) -> Result<()> {
        let want = self.state_layout().name;
        if state.optimizer != want {
            return Err(mismatch(format!("the state was saved by {:?}, this is {want:?}", state.optimizer)));
        }
        if state.params.is_empty() {
            return Err(mismatch("the state has no loss-scale entry".to_string()));
        }
        let (scale, counter) = Self::read_own(&state.params.remove(0))?;
        state.optimizer = self.inner.state_layout().name;
        self.inner.load_state(state)?;
        self.scale = scale;
        self.step_counter = counter;
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        if !(self.initial_scale.is_finite() && self.initial_scale > 0.0) {
            return Err(Error::InvalidHyperparameter {
                optimizer: NAME,
                name: "initial_scale",
                value: self.initial_scale,
                msg: "must be finite and > 0 (a power of two, such as the default 32768, keeps gradients exact)",
            });
        }
        if self.dynamic_growth_steps == 0 {
            return Err(Error::InvalidHyperparameter {
                optimizer: NAME,
                name: "dynamic_growth_steps",
                value: 0.0,
                msg: "must be at least 1",
            });
        }
        self.inner.validate()
    }
}
