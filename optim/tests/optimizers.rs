//! Each optimizer's first three steps on the fixed quadratic match an
//! independent float64 reference and Keras's own trajectory (fixtures).
//!
//! Nadam, Adamax, Adadelta, Lion and Ftrl (with weight decay, a schedule, Nadam's
//! momentum cache over eight steps) agree with Keras to 1e-6 as well (at most 4.8e-7).
//!
//! One documented exception to the 1e-6 agreement with Keras: Adam and AdamW.
//! Keras computes the step size `lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)` in
//! float32 for float32 variables, and `1 - 0.999^t` cancels catastrophically
//! there (relative error ~1e-5 at small t, up to 2.1e-6 in these values).
//! keel computes its scalars in float64 (as PyTorch does), so it matches the
//! exact f64 reference to 1e-6 and Keras to 5e-6.
//! `fixtures/check_keras_formulas.py` shows the formulas are Keras's own:
//! written out in numpy float32 they reproduce every SGD, Adam, AdamW, RMSprop and
//! Adagrad fixture bit for bit (the script predates the other optimizers).

mod common;

use common::{assert_close, curvature, keras_case, make_params, p0, run, Clip, RefOpt, Rule};
use keel_optim::schedule::ExponentialDecay;
use keel_optim::{Adadelta, Adagrad, Adam, AdamW, Adamax, Ftrl, Lion, Nadam, Optimizer, RMSprop, Sgd};

const TOL: f64 = 1e-6;

/// Run `opt` 3 steps; compare with the f64 reference and the Keras fixture `case`.
fn check(case: &str, opt: impl Optimizer, reference: RefOpt) {
    check_steps(case, opt, reference, 3)
}

/// [`check`] over `steps` steps (the fixture `case` must hold as many).
fn check_steps(case: &str, mut opt: impl Optimizer, reference: RefOpt, steps: usize) {
    let params = make_params();
    let got = run(&mut opt, &params, steps);
    let want = reference.run(&p0(), &curvature(), steps);
    let keras = keras_case(case);
    assert_close(&format!("{case} vs f64 reference"), &got, &want, TOL);
    if matches!(reference.rule, Rule::Adam { .. }) {
        assert_close(&format!("{case} vs Keras"), &got, &keras, ADAM_KERAS_TOL);
    } else {
        assert_close(&format!("{case} vs Keras"), &got, &keras, TOL);
    }
    assert_eq!(opt.iterations(), steps as u64);
}

/// See the module docs: Keras's float32 bias correction.
const ADAM_KERAS_TOL: f64 = 5e-6;

const SGD: Rule = Rule::Sgd { momentum: 0.0, nesterov: false };
const ADAM: Rule = Rule::Adam { b1: 0.9, b2: 0.999, eps: 1e-7, amsgrad: false };

#[test]
fn sgd_plain() {
    check("sgd", Sgd::new(0.1), RefOpt::new(SGD, 0.1));
}

#[test]
fn sgd_momentum() {
    check("sgd_momentum", Sgd::new(0.1).momentum(0.9), RefOpt::new(Rule::Sgd { momentum: 0.9, nesterov: false }, 0.1));
}

#[test]
fn sgd_nesterov() {
    check(
        "sgd_nesterov",
        Sgd::new(0.1).momentum(0.9).nesterov(true),
        RefOpt::new(Rule::Sgd { momentum: 0.9, nesterov: true }, 0.1),
    );
}

#[test]
fn sgd_decoupled_weight_decay() {
    let mut r = RefOpt::new(Rule::Sgd { momentum: 0.5, nesterov: false }, 0.1);
    r.wd = 0.05;
    check("sgd_weight_decay", Sgd::new(0.1).momentum(0.5).weight_decay(0.05), r);
}

#[test]
fn adam() {
    check("adam", Adam::new(0.1), RefOpt::new(ADAM, 0.1));
}

#[test]
fn adam_amsgrad() {
    check(
        "adam_amsgrad",
        Adam::new(0.1).beta_1(0.8).beta_2(0.9).amsgrad(true),
        RefOpt::new(Rule::Adam { b1: 0.8, b2: 0.9, eps: 1e-7, amsgrad: true }, 0.1),
    );
}

#[test]
fn adamw() {
    let mut r = RefOpt::new(ADAM, 0.05);
    r.wd = 0.1;
    check("adamw", AdamW::new(0.05).weight_decay(0.1), r);
}

#[test]
fn rmsprop() {
    check(
        "rmsprop",
        RMSprop::new(0.01),
        RefOpt::new(Rule::Rms { rho: 0.9, momentum: 0.0, eps: 1e-7, centered: false }, 0.01),
    );
}

#[test]
fn rmsprop_centered_momentum() {
    check(
        "rmsprop_centered_momentum",
        RMSprop::new(0.01).rho(0.8).momentum(0.5).centered(true),
        RefOpt::new(Rule::Rms { rho: 0.8, momentum: 0.5, eps: 1e-7, centered: true }, 0.01),
    );
}

#[test]
fn adagrad() {
    check("adagrad", Adagrad::new(0.1), RefOpt::new(Rule::Adagrad { init: 0.1, eps: 1e-7 }, 0.1));
}

const NADAM: Rule = Rule::Nadam { b1: 0.9, b2: 0.999, eps: 1e-7 };

#[test]
fn nadam() {
    check("nadam", Nadam::new(0.1), RefOpt::new(NADAM, 0.1));
}

#[test]
fn nadam_momentum_cache_over_eight_steps() {
    check_steps(
        "nadam_long",
        Nadam::new(0.05).beta_1(0.8).beta_2(0.95).epsilon(1e-4),
        RefOpt::new(Rule::Nadam { b1: 0.8, b2: 0.95, eps: 1e-4 }, 0.05),
        8,
    );
}

#[test]
fn nadam_weight_decay() {
    let mut r = RefOpt::new(NADAM, 0.05);
    r.wd = 0.1;
    check("nadam_weight_decay", Nadam::new(0.05).weight_decay(0.1), r);
}

#[test]
fn adamax() {
    check("adamax", Adamax::new(0.1), RefOpt::new(Rule::Adamax { b1: 0.9, b2: 0.999, eps: 1e-7 }, 0.1));
}

#[test]
fn adamax_betas() {
    check(
        "adamax_betas",
        Adamax::new(0.1).beta_1(0.8).beta_2(0.9).epsilon(1e-3),
        RefOpt::new(Rule::Adamax { b1: 0.8, b2: 0.9, eps: 1e-3 }, 0.1),
    );
}

#[test]
fn adadelta() {
    check("adadelta", Adadelta::new(1.0), RefOpt::new(Rule::Adadelta { rho: 0.95, eps: 1e-7 }, 1.0));
}

#[test]
fn adadelta_rho_weight_decay() {
    let mut r = RefOpt::new(Rule::Adadelta { rho: 0.8, eps: 1e-4 }, 0.5);
    r.wd = 0.05;
    check("adadelta_rho", Adadelta::new(0.5).rho(0.8).epsilon(1e-4).weight_decay(0.05), r);
}

#[test]
fn lion() {
    check("lion", Lion::new(0.01), RefOpt::new(Rule::Lion { b1: 0.9, b2: 0.99 }, 0.01));
}

#[test]
fn lion_betas_weight_decay() {
    let mut r = RefOpt::new(Rule::Lion { b1: 0.5, b2: 0.9 }, 0.01);
    r.wd = 0.5;
    check("lion_betas_weight_decay", Lion::new(0.01).beta_1(0.5).beta_2(0.9).weight_decay(0.5), r);
}

#[test]
fn lion_momentum_outweighs_a_flipped_gradient() {
    check(
        "lion_momentum_sign",
        Lion::new(0.1).beta_1(0.99).beta_2(0.5),
        RefOpt::new(Rule::Lion { b1: 0.99, b2: 0.5 }, 0.1),
    );
}

#[test]
fn lion_with_exponential_decay_schedule() {
    let schedule = ExponentialDecay::new(0.1, 1, 0.5).staircase(true);
    let mut r = RefOpt::new(Rule::Lion { b1: 0.9, b2: 0.99 }, 0.0);
    r.lr = Box::new(|t| 0.1 * 0.5f64.powi(t as i32));
    check("lion_exponential_decay", Lion::new(schedule), r);
}

#[test]
fn ftrl() {
    let rule = Rule::Ftrl { power: -0.5, init: 0.1, l1: 0.0, l2: 0.0, shrink: 0.0, beta: 0.0 };
    check("ftrl", Ftrl::new(0.1), RefOpt::new(rule, 0.1));
}

#[test]
fn ftrl_regularized() {
    let rule = Rule::Ftrl { power: -0.7, init: 0.2, l1: 0.01, l2: 0.02, shrink: 0.05, beta: 0.3 };
    let opt = Ftrl::new(0.1)
        .learning_rate_power(-0.7)
        .initial_accumulator_value(0.2)
        .l1_regularization_strength(0.01)
        .l2_regularization_strength(0.02)
        .l2_shrinkage_regularization_strength(0.05)
        .beta(0.3);
    check("ftrl_regularized", opt, RefOpt::new(rule, 0.1));
}

/// F64 parameters update in f64: the new optimizers follow the f64 reference to 1e-12
/// and keep f64 slots.
#[test]
fn f64_parameters_follow_the_f64_reference() {
    use keel_autograd::{Gradients, Param};
    use keel_optim::state::SlotData;
    use keel_tensor::Tensor;

    let ftrl = Rule::Ftrl { power: -0.7, init: 0.2, l1: 0.01, l2: 0.02, shrink: 0.05, beta: 0.3 };
    let cases: Vec<(Box<dyn Optimizer>, RefOpt)> = vec![
        (Box::new(Nadam::new(0.05).beta_1(0.8)), RefOpt::new(Rule::Nadam { b1: 0.8, b2: 0.999, eps: 1e-7 }, 0.05)),
        (Box::new(Adamax::new(0.1)), RefOpt::new(Rule::Adamax { b1: 0.9, b2: 0.999, eps: 1e-7 }, 0.1)),
        (Box::new(Adadelta::new(1.0)), RefOpt::new(Rule::Adadelta { rho: 0.95, eps: 1e-7 }, 1.0)),
        (Box::new(Lion::new(0.1).beta_1(0.99).beta_2(0.5)), RefOpt::new(Rule::Lion { b1: 0.99, b2: 0.5 }, 0.1)),
        (
            Box::new(
                Ftrl::new(0.1)
                    .learning_rate_power(-0.7)
                    .initial_accumulator_value(0.2)
                    .l1_regularization_strength(0.01)
                    .l2_regularization_strength(0.02)
                    .l2_shrinkage_regularization_strength(0.05)
                    .beta(0.3),
            ),
            RefOpt::new(ftrl, 0.1),
        ),
    ];
    for (mut opt, reference) in cases {
        let params: Vec<Param> = p0()
            .into_iter()
            .zip(common::shapes())
            .map(|(v, s)| Param::new(Tensor::from_vec(v, s).expect("tensor")))
            .collect();
        let mut got = Vec::new();
        for _ in 0..8 {
            let mut g = Gradients::default();
            for (p, a) in params.iter().zip(curvature()) {
                let a = Tensor::from_vec(a, p.shape()).expect("tensor");
                g.insert(p.id(), p.value().mul(&a).expect("mul"));
            }
            opt.step(&params, &g).expect("step");
            got.push(common::values(&params));
        }
        let want = reference.run(&p0(), &curvature(), 8);
        assert_close(&format!("{} in f64", opt.name()), &got, &want, 1e-12);
        let state = opt.state().expect("state");
        for slot in state.params[0].slots.values() {
            assert!(matches!(slot.data, SlotData::F64(_)), "{}: an f32 slot", opt.name());
        }
    }
}

#[test]
fn adam_with_exponential_decay_schedule() {
    let schedule = ExponentialDecay::new(0.1, 1, 0.5).staircase(true);
    let mut r = RefOpt::new(ADAM, 0.0);
    r.lr = Box::new(|t| 0.1 * 0.5f64.powi(t as i32));
    check("adam_exponential_decay", Adam::new(schedule), r);
}

#[test]
fn clipnorm_per_tensor() {
    let mut r = RefOpt::new(SGD, 0.1);
    r.clip = Clip::Norm(1.0);
    check("sgd_clipnorm", Sgd::new(0.1).clipnorm(1.0), r);
}

#[test]
fn global_clipnorm() {
    let mut r = RefOpt::new(SGD, 0.1);
    r.clip = Clip::Global(2.0);
    check("sgd_global_clipnorm", Sgd::new(0.1).global_clipnorm(2.0), r);
}

#[test]
fn clipvalue() {
    let mut r = RefOpt::new(SGD, 0.1);
    r.clip = Clip::Value(0.5);
    check("sgd_clipvalue", Sgd::new(0.1).clipvalue(0.5), r);
}

#[test]
fn keras_defaults() {
    assert_eq!(Sgd::default().learning_rate(), 0.01);
    assert_eq!(Adam::default().learning_rate(), 0.001);
    assert_eq!(AdamW::default().learning_rate(), 0.001);
    assert_eq!(RMSprop::default().learning_rate(), 0.001);
    assert_eq!(Adagrad::default().learning_rate(), 0.001);
    assert_eq!(Nadam::default().learning_rate(), 0.001);
    assert_eq!(Adamax::default().learning_rate(), 0.001);
    assert_eq!(Adadelta::default().learning_rate(), 0.001);
    assert_eq!(Lion::default().learning_rate(), 0.001);
    assert_eq!(Ftrl::default().learning_rate(), 0.001);
    assert_eq!(Adam::default().name(), "Adam");
    assert_eq!(AdamW::default().name(), "AdamW");
    assert_eq!(Sgd::default().name(), "SGD");
    assert_eq!(RMSprop::default().name(), "RMSprop");
    assert_eq!(Adagrad::default().name(), "Adagrad");
    assert_eq!(Nadam::default().name(), "Nadam");
    assert_eq!(Adamax::default().name(), "Adamax");
    assert_eq!(Adadelta::default().name(), "Adadelta");
    assert_eq!(Lion::default().name(), "Lion");
    assert_eq!(Ftrl::default().name(), "Ftrl");
}

#[test]
fn adamw_default_weight_decay_is_keras_0_004() {
    // AdamW::default() == Adam(0.001) with decoupled weight decay 0.004.
    let mut r = RefOpt::new(ADAM, 0.001);
    r.wd = 0.004;
    let params = make_params();
    let got = run(&mut AdamW::default(), &params, 3);
    assert_close("AdamW default", &got, &r.run(&p0(), &curvature(), 3), TOL);
}
