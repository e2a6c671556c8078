//! `LossScaleOptimizer`: the gradients are unscaled before the inner step (the same bits as
//! the inner optimizer on unscaled gradients), a non-finite gradient skips the step and
//! halves the scale, finite steps grow it, and its state round-trips and refuses what does
//! not fit. (Against Keras 3 inside `fit`: keel-train's tests/loss_scale.rs.)

mod common;

use common::{make_params, quad_grads, values};
use keel_autograd::{Gradients, Param};
use keel_optim::{Adam, Error, LossScaleOptimizer, Optimizer, OptimizerState, Sgd, StateLayout};
use keel_tensor::Tensor;

/// `grads` times `s` (what the backward pass of a scaled loss gives).
fn scaled(params: &[Param], grads: &Gradients, s: f64) -> Gradients {
    let mut out = Gradients::default();
    for p in params {
        out.insert(p.id(), grads.get(p).unwrap().mul_scalar(s).unwrap());
    }
    out
}

#[test]
fn a_step_is_the_inner_step_on_the_unscaled_gradients() {
    let (pa, pb) = (make_params(), make_params());
    let mut plain = Adam::new(0.1);
    let mut ls = LossScaleOptimizer::new(Adam::new(0.1)).initial_scale(512.0).dynamic_growth_steps(2);
    for step in 0..5 {
        plain.step(&pa, &quad_grads(&pa)).unwrap();
        let s = ls.loss_scale().unwrap();
        ls.step(&pb, &scaled(&pb, &quad_grads(&pb), s)).unwrap();
        assert_eq!(values(&pa), values(&pb), "step {step}");
    }
    // 5 finite steps, growth every 2: doubled twice, one step counted since
    assert_eq!((ls.dynamic_scale(), ls.step_counter(), ls.iterations(), ls.skipped_steps()), (2048.0, 1, 5, 0));
}

#[test]
fn a_non_finite_gradient_skips_the_step_and_halves_the_scale() {
    let p = make_params();
    let before = values(&p);
    let mut ls = LossScaleOptimizer::new(Sgd::new(0.1).momentum(0.9));
    for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
        let mut g = quad_grads(&p);
        let mut v = g.get(&p[1]).unwrap().to_vec::<f32>().unwrap();
        v[0] = bad;
        let dims = p[1].value().dims().to_vec();
        g.insert(p[1].id(), Tensor::from_vec(v, dims).unwrap());
        ls.step(&p, &g).unwrap();
        assert_eq!(values(&p), before, "a {bad} gradient changes nothing");
    }
    assert_eq!((ls.dynamic_scale(), ls.iterations(), ls.skipped_steps()), (4096.0, 0, 3));
    assert!(ls.inner().state().unwrap().params.is_empty(), "the inner optimizer made no slots");
    // the next finite step updates and starts counting towards growth again
    ls.step(&p, &quad_grads(&p)).unwrap();
    assert_ne!(values(&p), before);
    assert_eq!((ls.iterations(), ls.step_counter()), (1, 1));
}

#[test]
fn no_gradient_is_no_step() {
    let p = make_params();
    let mut ls = LossScaleOptimizer::new(Sgd::new(0.1)).dynamic_growth_steps(1);
    ls.step(&p, &Gradients::default()).unwrap();
    assert_eq!((ls.dynamic_scale(), ls.iterations(), ls.step_counter()), (32768.0, 0, 0));
}

#[test]
fn scale_loss_multiplies_by_the_current_scale() {
    let ls = LossScaleOptimizer::new(Sgd::new(0.1)).initial_scale(8.0);
    let loss = keel_autograd::Var::constant(Tensor::scalar(1.5f32));
    assert_eq!(ls.scale_loss(&loss).unwrap().value().to_scalar::<f32>().unwrap(), 12.0);
    assert_eq!(Sgd::new(0.1).scale_loss(&loss).unwrap().value().to_scalar::<f32>().unwrap(), 1.5);
    assert_eq!(Sgd::new(0.1).loss_scale(), None);
}

#[test]
fn the_state_round_trips_and_refuses_what_does_not_fit() {
    let pa = make_params();
    let mut a = LossScaleOptimizer::new(Adam::new(0.1)).initial_scale(64.0).dynamic_growth_steps(3);
    for _ in 0..4 {
        let s = a.loss_scale().unwrap();
        a.step(&pa, &scaled(&pa, &quad_grads(&pa), s)).unwrap();
    }
    let state = a.state().unwrap();
    assert_eq!(state.optimizer, "LossScaleOptimizer(Adam)");
    assert_eq!(a.state_layout(), StateLayout { name: "LossScaleOptimizer(Adam)".into(), own_entries: 1 });
    assert_eq!(state.params.len(), 1 + pa.len(), "the scale's own entry, then one per parameter");
    let json = serde_json::to_string(&state).unwrap();

    let pb: Vec<Param> = pa.iter().map(|p| Param::new(p.value().copy().unwrap())).collect();
    let mut b = LossScaleOptimizer::new(Adam::new(0.1)).dynamic_growth_steps(3);
    b.load_state(serde_json::from_str::<OptimizerState>(&json).unwrap()).unwrap();
    assert_eq!((b.dynamic_scale(), b.step_counter(), b.iterations()), (128.0, 1, 4));
    for _ in 0..3 {
        let s = a.loss_scale().unwrap();
        a.step(&pa, &scaled(&pa, &quad_grads(&pa), s)).unwrap();
        b.step(&pb, &scaled(&pb, &quad_grads(&pb), s)).unwrap();
        assert_eq!(values(&pa), values(&pb));
    }
    assert_eq!(a.state().unwrap(), b.state().unwrap());

    // refused, and nothing changes: another inner optimizer, a plain Adam state, a bad scale
    let mut c = LossScaleOptimizer::new(Sgd::new(0.1));
    let e = c.load_state(state.clone()).unwrap_err();
    assert!(matches!(e, Error::StateMismatch { .. }) && e.to_string().contains("LossScaleOptimizer(SGD)"), "{e}");
    let e = Adam::new(0.1).load_state(state.clone()).unwrap_err().to_string();
    assert!(e.contains("LossScaleOptimizer(Adam)"), "{e}");
    let mut plain = Adam::new(0.1).state().unwrap();
    plain.optimizer = "LossScaleOptimizer(Adam)".into();
    let mut d = LossScaleOptimizer::new(Adam::new(0.1));
    assert!(d.load_state(plain).unwrap_err().to_string().contains("loss-scale entry"));
    let mut bad = state.clone();
    let slot = bad.params[0].slots.get_mut("dynamic_scale").unwrap();
    slot.data = keel_optim::state::SlotData::F64(vec![0.0]);
    let e = d.load_state(bad).unwrap_err().to_string();
    assert!(e.contains("dynamic_scale must be finite and > 0"), "{e}");
    assert_eq!((d.dynamic_scale(), d.iterations()), (32768.0, 0));
}

#[test]
fn bad_settings_are_errors_naming_them() {
    let p = make_params();
    let e = LossScaleOptimizer::new(Sgd::new(0.1)).initial_scale(0.0).validate().unwrap_err().to_string();
    assert!(e.contains("LossScaleOptimizer") && e.contains("initial_scale"), "{e}");
    let mut ls = LossScaleOptimizer::new(Sgd::new(0.1)).dynamic_growth_steps(0);
    let e = ls.step(&p, &quad_grads(&p)).unwrap_err().to_string();
    assert!(e.contains("dynamic_growth_steps"), "{e}");
    let e = LossScaleOptimizer::new(Sgd::new(-1.0)).validate().unwrap_err().to_string();
    assert!(e.contains("SGD"), "the inner optimizer is checked too: {e}");
}
