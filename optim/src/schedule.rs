//! Learning-rate schedules (Keras `keras.optimizers.schedules`): a schedule maps
//! the optimizer's iteration count (0 on the first step) to a learning rate.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// A learning rate as a function of the optimizer step (0-based, the number of
/// updates already applied, as Keras passes `optimizer.iterations`).
pub trait LearningRateSchedule: Send + Sync + fmt::Debug {
    /// The learning rate to use for the update that follows `step` earlier updates.
    fn lr(&self, step: u64) -> f64;
}

/// `initial_learning_rate * decay_rate ^ (step / decay_steps)`, with the exponent
/// floored when `staircase` is set (Keras `ExponentialDecay`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExponentialDecay {
    /// The learning rate at step 0.
    pub initial_learning_rate: f64,
    /// The number of steps over which the rate is multiplied by `decay_rate` once.
    pub decay_steps: u64,
    /// The factor applied every `decay_steps` steps.
    pub decay_rate: f64,
    /// Decay in discrete jumps (integer exponent) instead of smoothly.
    pub staircase: bool,
}

impl ExponentialDecay {
    /// A smooth exponential decay (set [`ExponentialDecay::staircase`] for jumps).
    pub fn new(initial_learning_rate: f64, decay_steps: u64, decay_rate: f64) -> Self {
        ExponentialDecay { initial_learning_rate, decay_steps, decay_rate, staircase: false }
    }

    /// Floor the exponent, so the rate changes only every `decay_steps` steps.
    pub fn staircase(mut self, staircase: bool) -> Self {
        self.staircase = staircase;
        self
    }
}

impl LearningRateSchedule for ExponentialDecay {
    fn lr(&self, step: u64) -> f64 {
        // decay_steps == 0 gives inf/NaN, which the optimizer rejects at step time.
        let mut p = step as f64 / self.decay_steps as f64;
        if self.staircase {
            p = p.floor();
        }
        self.initial_learning_rate * self.decay_rate.powf(p)
    }
}

/// `initial_learning_rate * gamma ^ floor(step / step_size)` (PyTorch `StepLR`;
/// the same as a staircase [`ExponentialDecay`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDecay {
    /// The learning rate at step 0.
    pub initial_learning_rate: f64,
    /// The number of steps between two decays.
    pub step_size: u64,
    /// The factor applied every `step_size` steps.
    pub gamma: f64,
}

impl StepDecay {
    /// Multiply the rate by `gamma` every `step_size` steps.
    pub fn new(initial_learning_rate: f64, step_size: u64, gamma: f64) -> Self {
        StepDecay { initial_learning_rate, step_size, gamma }
    }
}

impl LearningRateSchedule for StepDecay {
    fn lr(&self, step: u64) -> f64 {
        if self.step_size == 0 {
            return f64::NAN; // rejected by the optimizer at step time
        }
        let k = step / self.step_size;
        self.initial_learning_rate * self.gamma.powf(k as f64)
    }
}

/// A piecewise-constant rate (Keras `PiecewiseConstantDecay`): `values[0]` while
/// `step <= boundaries[0]`, `values[i]` while `boundaries[i-1] < step <= boundaries[i]`,
/// and the last value after the last boundary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PiecewiseConstantDecay {
    boundaries: Vec<u64>,
    values: Vec<f64>,
}

impl PiecewiseConstantDecay {
    /// `values` must have one more element than `boundaries`, which must be increasing.
    pub fn new(boundaries: Vec<u64>, values: Vec<f64>) -> Result<Self> {
        if values.len() != boundaries.len() + 1 {
            return Err(Error::InvalidSchedule {
                schedule: "PiecewiseConstantDecay",
                msg: format!(
                    "needs one more value than boundaries, got {} boundaries and {} values",
                    boundaries.len(),
                    values.len()
                ),
            });
        }
        if boundaries.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::InvalidSchedule {
                schedule: "PiecewiseConstantDecay",
                msg: format!("boundaries must be strictly increasing, got {boundaries:?}"),
            });
        }
        Ok(PiecewiseConstantDecay { boundaries, values })
    }

    /// The step boundaries.
    pub fn boundaries(&self) -> &[u64] {
        &self.boundaries
    }

    /// The rates, one per interval.
    pub fn values(&self) -> &[f64] {
        &self.values
    }
}

impl LearningRateSchedule for PiecewiseConstantDecay {
    fn lr(&self, step: u64) -> f64 {
        let i = self.boundaries.iter().take_while(|&&b| step > b).count();
        // A deserialized config with too few values yields NaN, rejected at step time.
        self.values.get(i).copied().unwrap_or(f64::NAN)
    }
}

/// Linear warm-up used by [`CosineDecay`]: from the initial rate to `target` over `steps` steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warmup {
    /// The rate reached at the end of the warm-up (the decay then starts from it).
    pub target: f64,
    /// The number of warm-up steps.
    pub steps: u64,
}

/// Cosine decay (Keras `CosineDecay`), optionally after a linear warm-up.
///
/// Without warm-up: `lr(s) = initial * ((1 - alpha) * 0.5 * (1 + cos(pi * min(s, decay_steps) / decay_steps)) + alpha)`.
/// With warm-up to `target` over `w` steps: linear from `initial` to `target`
/// for `s < w`, then the same cosine from `target` over `decay_steps` steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CosineDecay {
    /// The learning rate at step 0.
    pub initial_learning_rate: f64,
    /// The number of steps to decay over.
    pub decay_steps: u64,
    /// The floor, as a fraction of the starting rate.
    pub alpha: f64,
    /// An optional linear warm-up before the decay.
    pub warmup: Option<Warmup>,
}

impl CosineDecay {
    /// Decay from `initial_learning_rate` to 0 over `decay_steps` steps.
    pub fn new(initial_learning_rate: f64, decay_steps: u64) -> Self {
        CosineDecay { initial_learning_rate, decay_steps, alpha: 0.0, warmup: None }
    }

    /// The minimum rate as a fraction of the starting rate (Keras `alpha`, default 0).
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// Warm up linearly to `target` over `steps` steps before decaying (Keras `warmup_target`, `warmup_steps`).
    pub fn warmup(mut self, target: f64, steps: u64) -> Self {
        self.warmup = Some(Warmup { target, steps });
        self
    }

    fn decay(&self, step: f64, from: f64) -> f64 {
        let fraction = step / self.decay_steps as f64;
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * fraction).cos());
        from * ((1.0 - self.alpha) * cosine + self.alpha)
    }
}

impl LearningRateSchedule for CosineDecay {
    fn lr(&self, step: u64) -> f64 {
        if self.decay_steps == 0 {
            return f64::NAN; // rejected by the optimizer at step time
        }
        let decay_steps = self.decay_steps as f64;
        let s = step as f64;
        match &self.warmup {
            None => self.decay(s.min(decay_steps), self.initial_learning_rate),
            Some(w) => {
                let warm = w.steps as f64;
                let s = s.min(decay_steps + warm);
                if s < warm {
                    (w.target - self.initial_learning_rate) * (s / warm) + self.initial_learning_rate
                } else {
                    self.decay(s - warm, w.target)
                }
            }
        }
    }
}

/// `initial_learning_rate / (1 + decay_rate * step / decay_steps)`, with the ratio
/// floored when `staircase` is set (Keras `InverseTimeDecay`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InverseTimeDecay {
    /// The learning rate at step 0.
    pub initial_learning_rate: f64,
    /// The steps per unit of decay.
    pub decay_steps: u64,
    /// How fast the rate falls.
    pub decay_rate: f64,
    /// Decay in discrete jumps.
    pub staircase: bool,
}

impl InverseTimeDecay {
    /// A smooth inverse-time decay (set [`InverseTimeDecay::staircase`] for jumps).
    pub fn new(initial_learning_rate: f64, decay_steps: u64, decay_rate: f64) -> Self {
        InverseTimeDecay { initial_learning_rate, decay_steps, decay_rate, staircase: false }
    }

    /// Floor `step / decay_steps`.
    pub fn staircase(mut self, staircase: bool) -> Self {
        self.staircase = staircase;
        self
    }
}

impl LearningRateSchedule for InverseTimeDecay {
    fn lr(&self, step: u64) -> f64 {
        // decay_steps == 0 gives inf/NaN, which the optimizer rejects at step time.
        let mut p = step as f64 / self.decay_steps as f64;
        if self.staircase {
            p = p.floor();
        }
        self.initial_learning_rate / (1.0 + self.decay_rate * p)
    }
}

/// `(initial - end) * (1 - step / decay_steps) ^ power + end`, held at `end` after
/// `decay_steps` steps, or with `cycle` restarted over the next multiple of
/// `decay_steps` (Keras `PolynomialDecay`; defaults: end 1e-4, power 1, no cycle).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolynomialDecay {
    /// The learning rate at step 0.
    pub initial_learning_rate: f64,
    /// The steps to decay over.
    pub decay_steps: u64,
    /// The final rate.
    pub end_learning_rate: f64,
    /// The polynomial's power.
    pub power: f64,
    /// Go on decaying from the start again over each further multiple of `decay_steps`.
    pub cycle: bool,
}

impl PolynomialDecay {
    /// A linear decay to 1e-4 over `decay_steps` steps (Keras's defaults).
    pub fn new(initial_learning_rate: f64, decay_steps: u64) -> Self {
        PolynomialDecay { initial_learning_rate, decay_steps, end_learning_rate: 1e-4, power: 1.0, cycle: false }
    }

    /// The final rate.
    pub fn end_learning_rate(mut self, end: f64) -> Self {
        self.end_learning_rate = end;
        self
    }

    /// The power (1 = linear).
    pub fn power(mut self, power: f64) -> Self {
        self.power = power;
        self
    }

    /// Cycle instead of holding the final rate.
    pub fn cycle(mut self, cycle: bool) -> Self {
        self.cycle = cycle;
        self
    }
}

impl LearningRateSchedule for PolynomialDecay {
    fn lr(&self, step: u64) -> f64 {
        let (mut s, mut steps) = (step as f64, self.decay_steps as f64);
        if self.cycle {
            // Keras: the decay span grows to the next multiple of decay_steps (1 at step 0)
            steps *= if step == 0 { 1.0 } else { (s / steps).ceil() };
        } else {
            s = s.min(steps);
        }
        let p = s / steps; // decay_steps == 0: NaN, rejected by the optimizer at step time
        (self.initial_learning_rate - self.end_learning_rate) * (1.0 - p).powf(self.power) + self.end_learning_rate
    }
}

/// Cosine decay with warm restarts (SGDR; Keras `CosineDecayRestarts`): a cosine decay
/// over `first_decay_steps`, then restarts, each period `t_mul` times longer and each
/// restart's rate `m_mul` times the previous one, decaying to `alpha * initial`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CosineDecayRestarts {
    /// The learning rate at step 0.
    pub initial_learning_rate: f64,
    /// The length of the first period.
    pub first_decay_steps: u64,
    /// Each period's length relative to the previous one (Keras default 2).
    pub t_mul: f64,
    /// Each restart's rate relative to the previous one (Keras default 1).
    pub m_mul: f64,
    /// The floor, as a fraction of `initial_learning_rate` (Keras default 0).
    pub alpha: f64,
}

impl CosineDecayRestarts {
    /// Keras's defaults: `t_mul` 2, `m_mul` 1, `alpha` 0.
    pub fn new(initial_learning_rate: f64, first_decay_steps: u64) -> Self {
        CosineDecayRestarts { initial_learning_rate, first_decay_steps, t_mul: 2.0, m_mul: 1.0, alpha: 0.0 }
    }

    /// Each period's length relative to the previous one.
    pub fn t_mul(mut self, t_mul: f64) -> Self {
        self.t_mul = t_mul;
        self
    }

    /// Each restart's rate relative to the previous one.
    pub fn m_mul(mut self, m_mul: f64) -> Self {
        self.m_mul = m_mul;
        self
    }

    /// The floor, as a fraction of `initial_learning_rate`.
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }
}

impl LearningRateSchedule for CosineDecayRestarts {
    fn lr(&self, step: u64) -> f64 {
        let mut fraction = step as f64 / self.first_decay_steps as f64;
        let restart = if self.t_mul == 1.0 {
            let i = fraction.floor();
            fraction -= i;
            i
        } else {
            // the periods' lengths are a geometric series: which period holds `fraction`
            let t = self.t_mul;
            let done = |i: f64| (1.0 - t.powf(i)) / (1.0 - t);
            let mut i = ((1.0 - fraction * (1.0 - t)).ln() / t.ln()).floor().max(0.0);
            // the logarithm can land a hair off at an exact restart: settle it on the series
            while done(i + 1.0) <= fraction {
                i += 1.0;
            }
            while i > 0.0 && done(i) > fraction {
                i -= 1.0;
            }
            fraction = (fraction - done(i)) / t.powf(i);
            i
        };
        let cosine = 0.5 * self.m_mul.powf(restart) * (1.0 + (std::f64::consts::PI * fraction).cos());
        self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)
    }
}

/// Any built-in schedule, as one serde-serializable value (for configs and checkpoints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    /// See [`ExponentialDecay`].
    ExponentialDecay(ExponentialDecay),
    /// See [`StepDecay`].
    StepDecay(StepDecay),
    /// See [`PiecewiseConstantDecay`].
    PiecewiseConstantDecay(PiecewiseConstantDecay),
    /// See [`CosineDecay`].
    CosineDecay(CosineDecay),
    /// See [`InverseTimeDecay`].
    InverseTimeDecay(InverseTimeDecay),
    /// See [`PolynomialDecay`].
    PolynomialDecay(PolynomialDecay),
    /// See [`CosineDecayRestarts`].
    CosineDecayRestarts(CosineDecayRestarts),
}

impl LearningRateSchedule for Schedule {
    fn lr(&self, step: u64) -> f64 {
        match self {
            Schedule::ExponentialDecay(s) => s.lr(step),
            Schedule::StepDecay(s) => s.lr(step),
            Schedule::PiecewiseConstantDecay(s) => s.lr(step),
            Schedule::CosineDecay(s) => s.lr(step),
            Schedule::InverseTimeDecay(s) => s.lr(step),
            Schedule::PolynomialDecay(s) => s.lr(step),
            Schedule::CosineDecayRestarts(s) => s.lr(step),
        }
    }
}

/// An optimizer's learning rate: a constant, a built-in schedule, or your own schedule.
///
/// Serializable except for [`LearningRate::Custom`] (serializing it is an error).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LearningRate {
    /// The same rate at every step.
    Constant(f64),
    /// A built-in schedule.
    Schedule(Schedule),
    /// A user-defined schedule (not serializable).
    #[serde(skip)]
    Custom(Arc<dyn LearningRateSchedule>),
}

impl LearningRate {
    /// The rate for the update after `step` earlier updates.
    pub fn at(&self, step: u64) -> f64 {
        match self {
            LearningRate::Constant(lr) => *lr,
            LearningRate::Schedule(s) => s.lr(step),
            LearningRate::Custom(s) => s.lr(step),
        }
    }

    /// The constant rate, or `None` when a schedule drives it.
    pub fn constant(&self) -> Option<f64> {
        match self {
            LearningRate::Constant(lr) => Some(*lr),
            _ => None,
        }
    }

    /// Wrap a user-defined schedule.
    pub fn custom(schedule: impl LearningRateSchedule + 'static) -> Self {
        LearningRate::Custom(Arc::new(schedule))
    }
}

impl From<f64> for LearningRate {
    fn from(lr: f64) -> Self {
        LearningRate::Constant(lr)
    }
}

impl From<Schedule> for LearningRate {
    fn from(s: Schedule) -> Self {
        LearningRate::Schedule(s)
    }
}

impl From<Arc<dyn LearningRateSchedule>> for LearningRate {
    fn from(s: Arc<dyn LearningRateSchedule>) -> Self {
        LearningRate::Custom(s)
    }
}

macro_rules! schedule_from {
    ($($t:ident),*) => {$(
        impl From<$t> for Schedule {
            fn from(s: $t) -> Self {
                Schedule::$t(s)
            }
        }
        impl From<$t> for LearningRate {
            fn from(s: $t) -> Self {
                LearningRate::Schedule(Schedule::$t(s))
            }
        }
    )*};
}

schedule_from!(
    ExponentialDecay,
    StepDecay,
    PiecewiseConstantDecay,
    CosineDecay,
    InverseTimeDecay,
    PolynomialDecay,
    CosineDecayRestarts
);
