//! Learning-rate schedules: values at several steps (vs Keras and by hand), and serde.

mod common;

use keel_optim::schedule::{
    CosineDecay, CosineDecayRestarts, ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay, PolynomialDecay,
    Schedule, StepDecay,
};
use keel_optim::{Adam, LearningRate, LearningRateSchedule, Optimizer, Sgd};

fn keras_values(name: &str) -> Vec<(u64, f64)> {
    common::fixtures()["schedules"][name]
        .as_array()
        .expect("schedule fixture")
        .iter()
        .map(|p| (p[0].as_u64().expect("step"), p[1].as_f64().expect("lr")))
        .collect()
}

/// Keras evaluates schedules in float32: compare relatively at 1e-6.
fn check(name: &str, s: &dyn LearningRateSchedule) {
    for (step, want) in keras_values(name) {
        let got = s.lr(step);
        assert!((got - want).abs() <= 1e-6 * want.abs().max(1e-3), "{name} at step {step}: got {got}, want {want}");
    }
}

#[test]
fn exponential_decay_matches_keras() {
    check("exponential", &ExponentialDecay::new(0.1, 10, 0.5));
    check("exponential_staircase", &ExponentialDecay::new(0.1, 10, 0.5).staircase(true));
    // by hand: 0.1 * 0.5^(15/10)
    assert!((ExponentialDecay::new(0.1, 10, 0.5).lr(15) - 0.1 * 0.5f64.powf(1.5)).abs() < 1e-15);
}

#[test]
fn piecewise_constant_matches_keras() {
    let s = PiecewiseConstantDecay::new(vec![5, 15], vec![1.0, 0.5, 0.1]).expect("valid");
    check("piecewise", &s);
    // boundaries are inclusive on the left interval, as Keras: step 5 -> values[0], 6 -> values[1]
    assert_eq!((s.lr(5), s.lr(6), s.lr(15), s.lr(16)), (1.0, 0.5, 0.5, 0.1));
}

#[test]
fn piecewise_constant_rejects_bad_config() {
    assert!(PiecewiseConstantDecay::new(vec![5, 15], vec![1.0, 0.5]).is_err());
    assert!(PiecewiseConstantDecay::new(vec![15, 5], vec![1.0, 0.5, 0.1]).is_err());
    assert_eq!(PiecewiseConstantDecay::new(vec![], vec![0.3]).expect("one value").lr(1000), 0.3);
}

#[test]
fn cosine_decay_matches_keras() {
    check("cosine", &CosineDecay::new(0.1, 20).alpha(0.1));
    check("cosine_warmup", &CosineDecay::new(0.0, 20).warmup(0.1, 5));
    // by hand: halfway through the decay, 0.1 * ((1 - 0.1) * 0.5 + 0.1)
    assert!((CosineDecay::new(0.1, 20).alpha(0.1).lr(10) - 0.1 * (0.9 * 0.5 + 0.1)).abs() < 1e-15);
}

/// Keras's InverseTimeDecay, PolynomialDecay and CosineDecayRestarts, by hand from their
/// formulas (no Keras fixture: keras_fixtures.json predates them).
#[test]
fn inverse_time_polynomial_and_restarts_by_hand() {
    let close = |a: f64, b: f64, what: &str| assert!((a - b).abs() < 1e-12, "{what}: {a} vs {b}");
    // 0.1 / (1 + 0.5 * step / 10)
    let s = InverseTimeDecay::new(0.1, 10, 0.5);
    close(s.lr(0), 0.1, "inverse time 0");
    close(s.lr(20), 0.05, "inverse time 20");
    close(s.lr(15), 0.1 / 1.75, "inverse time 15");
    close(s.clone().staircase(true).lr(15), 0.1 / 1.5, "inverse time staircase 15");
    // (0.1 - 0.01) * (1 - p)^2 + 0.01
    let s = PolynomialDecay::new(0.1, 10).end_learning_rate(0.01).power(2.0);
    close(s.lr(5), 0.09 * 0.25 + 0.01, "polynomial 5");
    close(s.lr(10), 0.01, "polynomial 10");
    close(s.lr(25), 0.01, "polynomial held");
    // cycle: step 15 decays over ceil(15/10) * 10 = 20 steps
    close(s.clone().cycle(true).lr(15), 0.09 * 0.25f64.powi(2) + 0.01, "polynomial cycle 15");
    close(s.clone().cycle(true).lr(0), 0.1, "polynomial cycle 0");
    close(PolynomialDecay::new(1.0, 4).lr(2), (1.0 - 1e-4) * 0.5 + 1e-4, "polynomial defaults");
    // periods of 10, 20, 40 steps: restarts at 10 and 30
    let s = CosineDecayRestarts::new(1.0, 10);
    close(s.lr(0), 1.0, "restarts 0");
    close(s.lr(5), 0.5, "restarts 5");
    close(s.lr(10), 1.0, "restarts 10 (first restart)");
    close(s.lr(20), 0.5, "restarts 20 (half of the 20-step period)");
    close(s.lr(30), 1.0, "restarts 30 (second restart)");
    let s = CosineDecayRestarts::new(1.0, 10).m_mul(0.5).alpha(0.1);
    close(s.lr(30), 0.9 * 0.25 + 0.1, "restarts m_mul");
    let s = CosineDecayRestarts::new(1.0, 10).t_mul(1.0);
    close(s.lr(25), 0.5, "restarts t_mul 1");
    // every restart of t_mul 3 (periods 1, 3, 9, 27, 81: restarts at 1, 4, 13, 40, 121), where
    // the logarithm alone lands a hair below the period index
    for first in [1u64, 2, 5] {
        let s = CosineDecayRestarts::new(1.0, first).t_mul(3.0);
        for at in [1u64, 4, 13, 40, 121, 364] {
            close(s.lr(at * first), 1.0, &format!("t_mul 3, first {first}, restart at {}", at * first));
        }
    }
}

#[test]
fn step_decay_by_hand() {
    let s = StepDecay::new(0.1, 3, 0.5);
    let got: Vec<f64> = (0..8).map(|t| s.lr(t)).collect();
    assert_eq!(got, vec![0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025]);
}

#[test]
fn schedules_round_trip_through_serde() {
    let all = vec![
        Schedule::from(ExponentialDecay::new(0.1, 10, 0.5).staircase(true)),
        Schedule::from(StepDecay::new(0.1, 3, 0.5)),
        Schedule::from(PiecewiseConstantDecay::new(vec![5, 15], vec![1.0, 0.5, 0.1]).expect("valid")),
        Schedule::from(CosineDecay::new(0.0, 20).alpha(0.05).warmup(0.1, 5)),
        Schedule::from(InverseTimeDecay::new(0.1, 10, 0.5).staircase(true)),
        Schedule::from(PolynomialDecay::new(0.1, 10).power(2.0).cycle(true)),
        Schedule::from(CosineDecayRestarts::new(0.1, 10).t_mul(1.5).m_mul(0.9).alpha(0.01)),
    ];
    for s in all {
        let json = serde_json::to_string(&s).expect("serialize");
        let back: Schedule = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, s);
        for t in [0, 1, 7, 30] {
            assert_eq!(back.lr(t), s.lr(t));
        }
    }
    let lr: LearningRate = serde_json::from_str(r#"{"Constant":0.25}"#).expect("constant");
    assert_eq!(lr.at(123), 0.25);
}

#[test]
fn optimizer_follows_its_schedule() {
    let params = common::make_params();
    let mut opt = Sgd::new(StepDecay::new(0.1, 2, 0.5));
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(opt.learning_rate());
        opt.step(&params, &common::quad_grads(&params)).expect("step");
    }
    assert_eq!(seen, vec![0.1, 0.1, 0.05, 0.05, 0.025]);
}

#[test]
fn set_learning_rate_replaces_the_schedule() {
    let mut opt = Adam::new(ExponentialDecay::new(0.1, 1, 0.5));
    assert_eq!(opt.learning_rate(), 0.1);
    opt.set_learning_rate(0.003); // what ReduceLROnPlateau does
    assert_eq!(opt.learning_rate(), 0.003);
    assert_eq!(opt.learning_rate_config().constant(), Some(0.003));
}

#[derive(Debug)]
struct Halving;

impl LearningRateSchedule for Halving {
    fn lr(&self, step: u64) -> f64 {
        1.0 / (1u64 << step.min(60)) as f64
    }
}

#[test]
fn custom_schedule() {
    let params = common::make_params();
    let mut opt = Sgd::new(LearningRate::custom(Halving));
    opt.step(&params, &common::quad_grads(&params)).expect("step");
    assert_eq!(opt.learning_rate(), 0.5);
    assert!(serde_json::to_string(opt.learning_rate_config()).is_err(), "custom schedules do not serialize");
}

#[test]
fn invalid_schedule_is_an_error_at_step_time() {
    let params = common::make_params();
    let before = common::values(&params);
    let mut opt = Sgd::new(ExponentialDecay::new(0.1, 0, 0.5)); // decay_steps = 0
    assert!(opt.step(&params, &common::quad_grads(&params)).is_err());
    assert_eq!(common::values(&params), before);
    let mut opt = Sgd::new(-0.1);
    assert!(opt.step(&params, &common::quad_grads(&params)).is_err());
}
