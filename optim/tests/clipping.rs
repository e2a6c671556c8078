//! Gradient clipping: the functions and their effect inside an optimizer.

mod common;

use keel_autograd::{Gradients, Param};
use keel_optim::clip::{clip_by_global_norm, clip_by_norm, clip_by_value, global_norm};
use keel_optim::{Clipping, Optimizer, Sgd};
use keel_tensor::Tensor;

fn t(v: &[f32]) -> Tensor {
    Tensor::from_vec(v.to_vec(), v.len()).expect("tensor")
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
}

#[test]
fn clip_by_norm_rescales_only_above_the_threshold() {
    let g = t(&[3.0, 4.0]); // norm 5
    assert!(close(&clip_by_norm(&g, 1.0).unwrap().to_vec::<f32>().unwrap(), &[0.6, 0.8]));
    assert!(close(&clip_by_norm(&g, 10.0).unwrap().to_vec::<f32>().unwrap(), &[3.0, 4.0]));
    assert!(close(&clip_by_norm(&t(&[0.0, 0.0]), 1.0).unwrap().to_vec::<f32>().unwrap(), &[0.0, 0.0]));
}

#[test]
fn global_norm_clips_all_tensors_by_one_factor() {
    let gs = [t(&[3.0]), t(&[4.0, 0.0])]; // joint norm 5
    assert!((global_norm(&gs).unwrap().to_scalar::<f64>().unwrap() - 5.0).abs() < 1e-12);
    let c = clip_by_global_norm(&gs, 2.5).unwrap();
    assert!(close(&c[0].to_vec::<f32>().unwrap(), &[1.5]));
    assert!(close(&c[1].to_vec::<f32>().unwrap(), &[2.0, 0.0]));
    let c = clip_by_global_norm(&gs, 50.0).unwrap();
    assert!(close(&c[1].to_vec::<f32>().unwrap(), &[4.0, 0.0]));
}

#[test]
fn global_norm_of_non_finite_gradients_gives_nan_as_keras() {
    let gs = [t(&[f32::INFINITY]), t(&[1.0])];
    let c = clip_by_global_norm(&gs, 1.0).unwrap();
    assert!(c[1].to_vec::<f32>().unwrap()[0].is_nan());
}

#[test]
fn clip_by_value_clamps_elements() {
    let c = clip_by_value(&t(&[-3.0, -0.2, 0.4, 7.0]), 0.5).unwrap();
    assert!(close(&c.to_vec::<f32>().unwrap(), &[-0.5, -0.2, 0.4, 0.5]));
}

#[test]
fn clipping_enum_skips_missing_gradients() {
    let mut gs = vec![Some(t(&[3.0, 4.0])), None];
    Clipping::GlobalNorm(1.0).apply(&mut gs).unwrap();
    assert!(close(&gs[0].as_ref().unwrap().to_vec::<f32>().unwrap(), &[0.6, 0.8]));
    assert!(gs[1].is_none());
}

#[test]
fn invalid_thresholds_are_rejected_before_any_update() {
    let p = Param::new(t(&[1.0, 2.0]));
    let mut g = Gradients::default();
    g.insert(p.id(), t(&[1.0, 1.0]));
    for mut opt in [Sgd::new(0.1).clipnorm(0.0), Sgd::new(0.1).clipvalue(-1.0), Sgd::new(0.1).global_clipnorm(f64::NAN)]
    {
        assert!(opt.step(std::slice::from_ref(&p), &g).is_err());
    }
    assert_eq!(p.value().to_vec::<f32>().unwrap(), vec![1.0, 2.0]);
}

#[test]
fn the_last_clipping_option_wins() {
    // Keras allows only one; here each builder call replaces the previous one.
    let p = Param::new(t(&[0.0, 0.0]));
    let mut g = Gradients::default();
    g.insert(p.id(), t(&[3.0, 4.0]));
    let mut opt = Sgd::new(1.0).clipvalue(0.1).clipnorm(1.0);
    opt.step(std::slice::from_ref(&p), &g).unwrap();
    assert!(close(&p.value().to_vec::<f32>().unwrap(), &[-0.6, -0.8]));
}
