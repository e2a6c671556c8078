//! Learning-rate schedules: values at several steps (vs Keras and by hand), and serde.

mod common;

use keel_optim::schedule::{CosineDecay, ExponentialDecay, PiecewiseConstantDecay, Schedule, StepDecay};
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
