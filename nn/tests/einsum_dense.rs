//! EinsumDense: forward values and gradients against real Keras 3
//! (fixtures/einsum_dense_fixtures.json, written by fixtures/make_einsum_dense_fixtures.py
//! with TensorFlow's GradientTape), a finite-difference gradcheck in f64, the config, the
//! initializer's fans, and the errors for equations Keras refuses.

mod common;
use common::{check_forward_and_grads, uniform, with_keras_weights};

use keel_autograd::{gradcheck, Tape, Var};
use keel_nn::prelude::*;
use keel_nn::EinsumDenseConfig;
use keel_tensor::rng::Rng;
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/einsum_dense_fixtures.json")).unwrap()
}

/// The keel layer of a Keras config (read as the registry reads it).
fn from_keras(cfg: &Value) -> Box<dyn Layer> {
    let mut l = EinsumDense::from_config(serde_json::from_value::<EinsumDenseConfig>(cfg.clone()).unwrap());
    l.set_name(cfg["name"].as_str().unwrap().to_string());
    Box::new(l)
}

#[test]
fn forward_and_gradients_match_keras() {
    let fx = fixture();
    let all = fx["cases"].as_array().unwrap();
    assert_eq!(all.len(), 10);
    let (mut worst_y, mut worst_g) = (0.0f32, 0.0f32);
    for c in all {
        let name = c["name"].as_str().unwrap();
        let layer = with_keras_weights(from_keras(&c["config"]), c);
        let names: Vec<String> = layer.weights().iter().map(|w| w.name.to_string()).collect();
        let want: Vec<&str> = c["weight_names"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(names, want, "{name}: weights");
        let (dy, dg) = check_forward_and_grads(layer.as_ref(), c, 1e-5);
        (worst_y, worst_g) = (worst_y.max(dy), worst_g.max(dg));
    }
    println!("{} cases: largest difference from Keras {worst_y:e} (outputs), {worst_g:e} (gradients)", all.len());
}

#[test]
fn gradcheck_in_f64() {
    // wrt the input, the kernel and the bias: shared axes, both ellipses, a summed axis
    for (i, (eq, out, bias, input)) in [
        ("abc,cde->abde", vec![None, Some(2), Some(3)], "de", vec![3, 4]),
        ("abc,bcd->abd", vec![Some(3), Some(2)], "bd", vec![3, 4]),
        ("...b,bc->...c", vec![Some(2)], "c", vec![2, 3]),
        ("ab...,bc->ac...", vec![Some(2)], "c", vec![3, 2]),
        ("abc,cd->ad", vec![Some(2)], "d", vec![3, 4]),
        ("abc,dc->abd", vec![Some(3), Some(2)], "d", vec![3, 4]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut l = EinsumDense::new(eq, out).bias_axes(bias);
        l.build(&input, &mut Rng::new(1)).unwrap();
        let x = uniform(10 + i as u64, &[&[2][..], &input[..]].concat());
        let k = uniform(20 + i as u64, l.kernel().unwrap().value().dims());
        let b = uniform(30 + i as u64, l.bias().unwrap().value().dims());
        let f = |v: &[Var]| Ok(l.forward_with_weights(&v[0], &v[1], Some(&v[2])).expect("einsum dense"));
        gradcheck(f, &[x, k, b]).unwrap_or_else(|e| panic!("{eq}: {e}"));
    }
}

#[test]
fn config_keys_are_keras_and_fans_follow_the_equation() {
    for c in fixture()["cases"].as_array().unwrap() {
        let keras = &c["config"];
        let ours = from_keras(keras).config();
        for (key, v) in ours.as_object().unwrap() {
            let k = keras.get(key).unwrap_or_else(|| panic!("keel writes {key}, which Keras does not"));
            if !key.ends_with("_initializer") {
                assert_eq!(k, v, "{key}");
            }
        }
    }
    // a [32, 4, 8] projection has fans (32, 32): glorot's limit sqrt(6 / 64)
    let mut l = EinsumDense::new("abc,cde->abde", [None, Some(4), Some(8)]);
    l.build(&[10, 32], &mut Rng::new(3)).unwrap();
    let v = l.kernel().unwrap().value().to_vec::<f32>().unwrap();
    let max = v.iter().fold(0.0f32, |a, x| a.max(x.abs()));
    let limit = (6.0f32 / 64.0).sqrt();
    assert!(max <= limit && max > 0.95 * limit, "{max} vs {limit}");
}

#[test]
fn equations_keras_refuses_are_errors() {
    for (eq, out, input, needle) in [
        ("ab,bc", vec![Some(3)], vec![4], "an equation is `input,kernel->output`"),
        ("ab,bc->ac", vec![Some(3)], vec![4, 5], "the equation's input has 2 axes"),
        ("ab,bc->ac", vec![Some(3), Some(2)], vec![4], "does not fit the equation's output"),
        ("ab,ac->bc", vec![Some(4), Some(3)], vec![4], "the batch axis"),
        ("ab,bcd->ac", vec![Some(3)], vec![4], "kernel axis 'd' is in neither"),
        ("ab,bc->acd", vec![Some(3), Some(2)], vec![4], "output axis 'd' is in neither"),
        ("abb,bc->ac", vec![Some(3)], vec![4, 4], "appears twice"),
        ("abc,cd->abd", vec![Some(5), Some(2)], vec![3, 4], "axis 'b' has size 3 in the input but 5"),
        ("ab,bc->ac", vec![None], vec![4], "the size of axis 'c' is not known"),
    ] {
        let mut l = EinsumDense::new(eq, out);
        let e = l.build(&input, &mut Rng::new(0)).unwrap_err().to_string();
        assert!(e.contains(needle), "{eq}: {e}");
    }
    let mut l = EinsumDense::new("ab,bc->ac", [3]).bias_axes("x");
    let e = l.build(&[4], &mut Rng::new(0)).unwrap_err().to_string();
    assert!(e.contains("bias axis 'x' is not an axis of the output"), "{e}");
}

#[test]
fn a_model_with_einsum_dense_learns() {
    // per-position projections of a [6, 4] sequence, then a linear read-out
    let x =
        keel_tensor::Tensor::rand_uniform(1, -1.0, 1.0, (64, 6, 4), keel_tensor::DType::F32, &keel_tensor::Device::Cpu)
            .unwrap();
    let y = x.sum(&[1, 2], false).unwrap().reshape((64, 1)).unwrap();
    let mut m = Sequential::with_seed(2);
    m.add(EinsumDense::new("abc,cde->abde", [None, Some(2), Some(3)]).bias_axes("de").input_shape([6, 4]));
    m.add(Flatten::new());
    m.add(Dense::new(1));
    let mut rng = Rng::new(0);
    let mut losses = Vec::new();
    for _ in 0..30 {
        let tape = Tape::new();
        let mut ctx = Ctx::train(&tape, &mut rng);
        let out = m.forward(&[Var::constant(x.clone())], &mut ctx).unwrap().remove(0);
        let l = Loss::MeanSquaredError.compute(&out, &y, None).unwrap();
        losses.push(l.value().to_scalar::<f32>().unwrap());
        let g = tape.backward(&l).unwrap();
        for p in m.trainable_params() {
            p.set(p.value().sub(&g.get(&p).unwrap().mul_scalar(0.05).unwrap()).unwrap()).unwrap();
        }
    }
    assert!(losses[29] < 0.1 * losses[0], "{losses:?}");
}
