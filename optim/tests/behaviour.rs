//! Step semantics: skipped params, duplicates, dtypes, errors, weight-decay exclusion.

mod common;

use keel_autograd::{Gradients, Param};
use keel_optim::{Adadelta, Adagrad, Adam, AdamW, Adamax, Error, Ftrl, Lion, Nadam, Optimizer, RMSprop, Sgd};
use keel_tensor::{DType, Device, Tensor};

fn param(v: &[f32]) -> Param {
    Param::new(Tensor::from_vec(v.to_vec(), v.len()).unwrap())
}

fn grads(pairs: &[(&Param, &[f32])]) -> Gradients {
    let mut g = Gradients::default();
    for (p, v) in pairs {
        g.insert(p.id(), Tensor::from_vec(v.to_vec(), v.len()).unwrap());
    }
    g
}

fn all_optimizers() -> Vec<Box<dyn Optimizer>> {
    vec![
        Box::new(Sgd::new(0.1).momentum(0.9).weight_decay(0.1)),
        Box::new(Adam::new(0.1).amsgrad(true)),
        Box::new(AdamW::new(0.1)),
        Box::new(RMSprop::new(0.1).momentum(0.5).centered(true)),
        Box::new(Adagrad::new(0.1)),
        Box::new(Nadam::new(0.1).weight_decay(0.1)),
        Box::new(Adamax::new(0.1)),
        Box::new(Adadelta::new(1.0)),
        Box::new(Lion::new(0.1)),
        Box::new(Ftrl::new(0.1).l1_regularization_strength(0.01)),
    ]
}

#[test]
fn a_param_without_a_gradient_is_untouched() {
    for mut opt in all_optimizers() {
        let (a, b) = (param(&[1.0, 2.0]), param(&[3.0, 4.0]));
        let g = grads(&[(&a, &[0.5, 0.5])]);
        for _ in 0..3 {
            opt.step(&[a.clone(), b.clone()], &g).unwrap();
        }
        assert_eq!(b.value().to_vec::<f32>().unwrap(), vec![3.0, 4.0], "{}", opt.name());
        assert_ne!(a.value().to_vec::<f32>().unwrap(), vec![1.0, 2.0], "{}", opt.name());
        // and it has no slots: its state entry is empty
        assert!(opt.state().unwrap().params[1].slots.is_empty(), "{}", opt.name());
    }
}

#[test]
fn no_gradient_at_all_is_a_no_op() {
    let a = param(&[1.0]);
    let mut opt = Adam::default();
    opt.step(std::slice::from_ref(&a), &Gradients::default()).unwrap();
    assert_eq!(opt.iterations(), 0);
    assert_eq!(a.value().to_vec::<f32>().unwrap(), vec![1.0]);
}

#[test]
fn a_param_listed_twice_is_updated_once() {
    let a = param(&[1.0]);
    let g = grads(&[(&a, &[1.0])]);
    Sgd::new(0.5).step(&[a.clone(), a.clone()], &g).unwrap();
    assert_eq!(a.value().to_vec::<f32>().unwrap(), vec![0.5]);
}

#[test]
fn updates_are_in_place_so_every_handle_sees_them() {
    let a = param(&[1.0, 2.0]);
    let handle = a.value(); // e.g. a layer holding the tensor
    Sgd::new(1.0).step(std::slice::from_ref(&a), &grads(&[(&a, &[1.0, 1.0])])).unwrap();
    assert_eq!(handle.to_vec::<f32>().unwrap(), vec![0.0, 1.0]);
}

#[test]
fn f64_params_update_in_f64() {
    let a = Param::new(Tensor::from_vec(vec![1.0f64, -2.0], 2).unwrap());
    let mut g = Gradients::default();
    g.insert(a.id(), Tensor::from_vec(vec![1e-9f64, -3.0], 2).unwrap());
    Sgd::new(0.1).step(std::slice::from_ref(&a), &g).unwrap();
    let v = a.value();
    assert_eq!(v.dtype(), DType::F64);
    assert_eq!(v.to_vec::<f64>().unwrap(), vec![1.0 - 1e-10, -2.0 + 0.3]);
    let s = {
        let mut o = Adam::new(0.1);
        o.step(std::slice::from_ref(&a), &g).unwrap();
        o.state().unwrap()
    };
    assert!(matches!(s.params[0].slots["momentum"].data, keel_optim::state::SlotData::F64(_)));
}

#[test]
fn half_precision_params_update_through_f32() {
    let a = Param::new(Tensor::from_vec(vec![1.0f32, 2.0], 2).unwrap().to_dtype(DType::BF16).unwrap());
    let mut g = Gradients::default();
    g.insert(a.id(), Tensor::from_vec(vec![1.0f32, 1.0], 2).unwrap().to_dtype(DType::BF16).unwrap());
    let mut opt = Adam::new(0.25);
    opt.step(std::slice::from_ref(&a), &g).unwrap();
    assert_eq!(a.dtype(), DType::BF16);
    assert_eq!(a.value().to_vec_f64().unwrap(), vec![0.75, 1.75]);
    let s = opt.state().unwrap();
    assert!(matches!(s.params[0].slots["velocity"].data, keel_optim::state::SlotData::F32(_)));
}

#[test]
fn gradient_shape_mismatch_is_an_error_before_any_update() {
    let (a, b) = (param(&[1.0, 2.0]), param(&[3.0]));
    let g = grads(&[(&a, &[1.0, 1.0]), (&b, &[1.0, 1.0])]);
    let err = Adam::default().step(&[a.clone(), b.clone()], &g).unwrap_err();
    assert!(matches!(err, Error::GradientShape { position: 1, .. }), "{err}");
    assert_eq!(a.value().to_vec::<f32>().unwrap(), vec![1.0, 2.0]);
}

#[test]
fn integer_params_are_rejected() {
    let a = Param::new(Tensor::zeros(2, DType::I64, &Device::Cpu).unwrap());
    let mut g = Gradients::default();
    g.insert(a.id(), Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap());
    assert!(matches!(Sgd::default().step(&[a], &g), Err(Error::NonFloatParam { .. })));
}

#[test]
fn invalid_hyperparameters_are_errors_not_panics() {
    let a = param(&[1.0]);
    let g = grads(&[(&a, &[1.0])]);
    let p = std::slice::from_ref(&a);
    let bad: Vec<Box<dyn Optimizer>> = vec![
        Box::new(Sgd::new(0.1).momentum(1.5)),
        Box::new(Adam::new(0.1).beta_1(1.0)),
        Box::new(Adam::new(0.1).beta_2(-0.1)),
        Box::new(Adam::new(0.1).epsilon(f64::NAN)),
        Box::new(AdamW::new(0.1).weight_decay(-1.0)),
        Box::new(RMSprop::new(0.1).rho(2.0)),
        Box::new(Adagrad::new(0.1).initial_accumulator_value(-1.0)),
        Box::new(Sgd::new(f64::INFINITY)),
        Box::new(Nadam::new(0.1).beta_1(1.0)),
        Box::new(Adamax::new(0.1).beta_2(1.5)),
        Box::new(Adadelta::new(0.1).epsilon(0.0)),
        Box::new(Adadelta::new(0.1).rho(-0.1)),
        Box::new(Lion::new(0.1).beta_1(0.0)),
        Box::new(Lion::new(0.1).beta_2(1.1)),
        Box::new(Ftrl::new(0.1).learning_rate_power(0.5)),
        Box::new(Ftrl::new(0.1).l1_regularization_strength(-1.0)),
        Box::new(Ftrl::new(0.0)),
    ];
    for mut opt in bad {
        let err = opt.step(p, &g).unwrap_err();
        assert!(matches!(err, Error::InvalidHyperparameter { .. }), "{}: {err}", opt.name());
    }
    assert_eq!(a.value().to_vec::<f32>().unwrap(), vec![1.0]);
}

#[test]
fn exclude_from_weight_decay() {
    let (w, b) = (param(&[1.0]), param(&[1.0]));
    let g = grads(&[(&w, &[0.0]), (&b, &[0.0])]);
    let mut opt = Sgd::new(0.1).weight_decay(0.5).exclude_from_weight_decay(std::slice::from_ref(&b));
    opt.step(&[w.clone(), b.clone()], &g).unwrap();
    assert!((w.value().to_vec::<f32>().unwrap()[0] - 0.95).abs() < 1e-7); // 1 - 1 * 0.5 * 0.1
    assert_eq!(b.value().to_vec::<f32>().unwrap(), vec![1.0]);
}

#[test]
fn converges_on_the_quadratic() {
    for mut opt in [
        Box::new(Sgd::new(0.1).momentum(0.5)) as Box<dyn Optimizer>,
        Box::new(Adam::new(0.05)),
        Box::new(RMSprop::new(0.01)),
        Box::new(Adagrad::new(0.5)),
        Box::new(Nadam::new(0.05)),
        Box::new(Adamax::new(0.05)),
        Box::new(Adadelta::new(0.5).rho(0.9).epsilon(1e-5)),
        Box::new(Lion::new(0.01)),
        Box::new(Ftrl::new(0.5)),
    ] {
        let params = common::make_params();
        for _ in 0..600 {
            let g = common::quad_grads(&params);
            opt.step(&params, &g).unwrap();
        }
        let worst = common::values(&params).iter().flatten().fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(worst < 0.05, "{} ended at max |p| = {worst}", opt.name());
    }
}

/// A step over many parameters updates them in groups (one multi-tensor launch per group
/// on a GPU); each must end exactly where stepping it alone would. 60 parameters, so three
/// groups of up to 24, every seventh without a gradient.
#[test]
fn many_parameters_step_as_each_would_alone() {
    let init =
        |k: usize| -> Vec<f32> { (0..3 + k % 11).map(|i| ((i * 7 + k * 13) % 17) as f32 / 17.0 - 0.4).collect() };
    let grad = |k: usize, step: usize, p: &Param| {
        p.value().mul_scalar(0.5 + 0.1 * (step + k % 5) as f64).unwrap().sin().unwrap()
    };
    let makers: [fn() -> Box<dyn Optimizer>; 10] = [
        || Box::new(Sgd::new(0.1).momentum(0.9).weight_decay(0.1)),
        || Box::new(Adam::new(0.1).amsgrad(true)),
        || Box::new(AdamW::new(0.1)),
        || Box::new(RMSprop::new(0.1).momentum(0.5).centered(true)),
        || Box::new(Adagrad::new(0.1)),
        || Box::new(Nadam::new(0.1)),
        || Box::new(Adamax::new(0.1)),
        || Box::new(Adadelta::new(1.0)),
        || Box::new(Lion::new(0.1)),
        || Box::new(Ftrl::new(0.1)),
    ];
    for make in makers {
        let params: Vec<Param> = (0..60).map(|k| param(&init(k))).collect();
        let mut opt = make();
        for step in 0..3 {
            let mut g = Gradients::default();
            for (k, p) in params.iter().enumerate().filter(|(k, _)| k % 7 != 3) {
                g.insert(p.id(), grad(k, step, p));
            }
            opt.step(&params, &g).unwrap();
        }
        for (k, p) in params.iter().enumerate() {
            let alone = param(&init(k));
            let mut own = make();
            for step in 0..3 {
                let mut g = Gradients::default();
                if k % 7 != 3 {
                    g.insert(alone.id(), grad(k, step, &alone));
                }
                own.step(std::slice::from_ref(&alone), &g).unwrap();
            }
            let bits = |p: &Param| p.value().to_vec::<f32>().unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(p), bits(&alone), "{}: parameter {k}", opt.name());
        }
    }
}
