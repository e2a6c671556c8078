//! State save -> serialize -> load into a fresh optimizer -> identical next step.

mod common;

use common::{make_params, quad_grads, values};
use keel_autograd::Param;
use keel_optim::state::SlotData;
use keel_optim::{
    Adadelta, Adagrad, Adam, AdamW, Adamax, Error, Ftrl, Lion, Nadam, Optimizer, OptimizerState, RMSprop, Sgd,
};
use keel_tensor::Tensor;

/// Train `a` for 3 steps, save (through JSON), load into `b` on a copy of the
/// params built from scratch (new ParamIds), and check the next two steps agree bit for bit.
fn round_trip(mut a: impl Optimizer, mut b: impl Optimizer) {
    let pa = make_params();
    for _ in 0..3 {
        a.step(&pa, &quad_grads(&pa)).expect("step");
    }
    let json = serde_json::to_string(&a.state().expect("state")).expect("serialize");

    // A "restarted process": fresh params with the saved values, fresh optimizer.
    let pb: Vec<Param> = pa.iter().map(|p| Param::new(p.value().copy().expect("copy"))).collect();
    assert_ne!(pa[0].id(), pb[0].id());
    let state: OptimizerState = serde_json::from_str(&json).expect("deserialize");
    b.load_state(state).expect("load");
    assert_eq!(b.iterations(), 3);
    assert_eq!(b.learning_rate(), a.learning_rate());

    for _ in 0..2 {
        a.step(&pa, &quad_grads(&pa)).expect("step a");
        b.step(&pb, &quad_grads(&pb)).expect("step b");
        assert_eq!(values(&pa), values(&pb), "{}", a.name());
    }
    assert_eq!(a.state().unwrap(), b.state().unwrap());
}

#[test]
fn every_optimizer_resumes_identically() {
    round_trip(Sgd::new(0.1).momentum(0.9).nesterov(true), Sgd::new(0.1).momentum(0.9).nesterov(true));
    round_trip(Adam::new(0.1).amsgrad(true), Adam::new(0.1).amsgrad(true));
    round_trip(AdamW::new(0.05), AdamW::new(0.05));
    round_trip(RMSprop::new(0.01).momentum(0.5).centered(true), RMSprop::new(0.01).momentum(0.5).centered(true));
    round_trip(Adagrad::new(0.1), Adagrad::new(0.1));
    // Nadam's momentum cache is recomputed from the restored iteration count
    round_trip(Nadam::new(0.1).weight_decay(0.1), Nadam::new(0.1).weight_decay(0.1));
    round_trip(Adamax::new(0.1), Adamax::new(0.1));
    round_trip(Adadelta::new(1.0).rho(0.8), Adadelta::new(1.0).rho(0.8));
    round_trip(Lion::new(0.01).beta_1(0.5), Lion::new(0.01).beta_1(0.5));
    let ftrl = || Ftrl::new(0.1).l1_regularization_strength(0.01).l2_shrinkage_regularization_strength(0.05);
    round_trip(ftrl(), ftrl());
}

#[test]
fn new_optimizers_save_keras_slot_names() {
    fn slots(mut opt: impl Optimizer) -> Vec<String> {
        let params = make_params();
        opt.step(&params, &quad_grads(&params)).unwrap();
        opt.state().unwrap().params[0].slots.keys().cloned().collect()
    }
    assert_eq!(slots(Nadam::default()), ["momentum", "velocity"]);
    assert_eq!(slots(Adamax::default()), ["momentum", "norm"]);
    assert_eq!(slots(Adadelta::default()), ["accumulated_delta_var", "accumulated_grad"]);
    assert_eq!(slots(Lion::default()), ["momentum"]);
    assert_eq!(slots(Ftrl::default()), ["accumulator", "linear"]);
    // a state saved by one is refused by another with the same slot names
    let params = make_params();
    let mut nadam = Nadam::default();
    nadam.step(&params, &quad_grads(&params)).unwrap();
    assert!(matches!(Adam::default().load_state(nadam.state().unwrap()), Err(Error::StateMismatch { .. })));
}

#[test]
fn changed_learning_rate_is_restored() {
    let mut a = Adam::new(0.1);
    a.set_learning_rate(0.02);
    let mut b = Adam::new(0.1);
    b.load_state(a.state().unwrap()).unwrap();
    assert_eq!(b.learning_rate(), 0.02);
}

#[test]
fn state_lists_params_by_position_with_named_slots() {
    let params = make_params();
    let mut opt = Adam::new(0.1);
    opt.step(&params, &quad_grads(&params)).unwrap();
    let s = opt.state().unwrap();
    assert_eq!(s.optimizer, "Adam");
    assert_eq!(s.iterations, 1);
    assert_eq!(s.learning_rate, Some(0.1));
    assert_eq!(s.params.len(), 2);
    let keys: Vec<&String> = s.params[1].slots.keys().collect();
    assert_eq!(keys, ["momentum", "velocity"]);
    let m = &s.params[1].slots["momentum"];
    assert_eq!(m.shape, vec![2, 3]);
    assert!(matches!(&m.data, SlotData::F32(v) if v.len() == 6));
}

#[test]
fn loaded_state_round_trips_before_any_step() {
    let params = make_params();
    let mut a = RMSprop::new(0.01);
    a.step(&params, &quad_grads(&params)).unwrap();
    let saved = a.state().unwrap();
    let mut b = RMSprop::new(0.01);
    b.load_state(saved.clone()).unwrap();
    assert_eq!(b.state().unwrap(), saved);
}

#[test]
fn mismatched_state_is_rejected() {
    let params = make_params();
    let mut adam = Adam::new(0.1);
    adam.step(&params, &quad_grads(&params)).unwrap();
    let saved = adam.state().unwrap();

    // another optimizer kind
    assert!(matches!(Sgd::new(0.1).load_state(saved.clone()), Err(Error::StateMismatch { .. })));
    // another configuration (amsgrad keeps a third slot)
    assert!(matches!(Adam::new(0.1).amsgrad(true).load_state(saved.clone()), Err(Error::StateMismatch { .. })));

    // a different parameter list: detected at the next step, before any update
    let mut fresh = Adam::new(0.1);
    fresh.load_state(saved.clone()).unwrap();
    let one = vec![params[0].clone()];
    let before = values(&one);
    assert!(matches!(fresh.step(&one, &quad_grads(&params)), Err(Error::StateMismatch { .. })));
    assert_eq!(values(&one), before);

    // same count, wrong shapes (order swapped)
    let swapped = vec![params[1].clone(), params[0].clone()];
    let mut fresh = Adam::new(0.1);
    fresh.load_state(saved).unwrap();
    let before = values(&swapped);
    assert!(matches!(fresh.step(&swapped, &quad_grads(&params)), Err(Error::StateMismatch { .. })));
    assert_eq!(values(&swapped), before);
}

#[test]
fn params_without_slots_yet_keep_their_position() {
    // p1 gets no gradient in the first run; its entry is empty but present.
    let p0 = Param::new(Tensor::from_vec(vec![1.0f32, 2.0], 2).unwrap());
    let p1 = Param::new(Tensor::from_vec(vec![3.0f32], 1).unwrap());
    let params = vec![p0.clone(), p1.clone()];
    let mut g = keel_autograd::Gradients::default();
    g.insert(p0.id(), Tensor::from_vec(vec![0.5f32, -0.5], 2).unwrap());
    let mut opt = Sgd::new(0.1).momentum(0.9);
    opt.step(&params, &g).unwrap();
    let s = opt.state().unwrap();
    assert_eq!(s.params.len(), 2);
    assert!(s.params[1].slots.is_empty());
    let mut fresh = Sgd::new(0.1).momentum(0.9);
    fresh.load_state(s).unwrap();
    fresh.step(&params, &g).unwrap();
    assert_eq!(fresh.iterations(), 2);
}
