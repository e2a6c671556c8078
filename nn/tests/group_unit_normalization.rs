//! GroupNormalization, UnitNormalization, LayerNormalization over axis lists and
//! RMSNormalization: forward values and gradients against real
//! Keras 3 (fixtures/norm_fixtures.json, written by fixtures/make_norm_fixtures.py with
//! TensorFlow's GradientTape), finite-difference gradchecks, config checks and errors.

mod common;
use common::{assert_close, tensor_of, with_keras_weights};

use keel_autograd::{gradcheck, Tape, Var};
use keel_nn::prelude::*;
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let v: Value = serde_json::from_str(include_str!("fixtures/norm_fixtures.json")).unwrap();
    v["cases"].as_array().unwrap().clone()
}

/// Keras's `axis` option: an int or a list.
fn axes_of(v: &Value) -> Vec<isize> {
    match v {
        Value::Array(a) => a.iter().map(|v| v.as_i64().unwrap() as isize).collect(),
        a => vec![a.as_i64().unwrap() as isize],
    }
}

/// The keel layer of a fixture case, built for its input and given its Keras weights.
fn layer_of(c: &Value) -> Box<dyn Layer> {
    let opts = &c["options"];
    let mut layer: Box<dyn Layer> = match c["class"].as_str().unwrap() {
        "GroupNormalization" => {
            let mut l = GroupNormalization::new(opts["groups"].as_i64().unwrap());
            if let Some(e) = opts.get("epsilon") {
                l = l.epsilon(e.as_f64().unwrap());
            }
            if let Some(b) = opts.get("center") {
                l = l.center(b.as_bool().unwrap());
            }
            if let Some(b) = opts.get("scale") {
                l = l.scale(b.as_bool().unwrap());
            }
            Box::new(l)
        }
        "UnitNormalization" => match &opts["axis"] {
            Value::Array(a) => {
                Box::new(UnitNormalization::over(a.iter().map(|v| v.as_i64().unwrap() as isize).collect::<Vec<_>>()))
            }
            a => Box::new(UnitNormalization::new(a.as_i64().unwrap() as isize)),
        },
        "LayerNormalization" => {
            let mut l = LayerNormalization::new().over(axes_of(&opts["axis"]));
            if let Some(e) = opts.get("epsilon") {
                l = l.epsilon(e.as_f64().unwrap());
            }
            if let Some(b) = opts.get("center") {
                l = l.center(b.as_bool().unwrap());
            }
            Box::new(l)
        }
        "RMSNormalization" => {
            let mut l = RMSNormalization::new();
            if let Some(a) = opts.get("axis") {
                l = l.over(axes_of(a));
            }
            if let Some(e) = opts.get("epsilon") {
                l = l.epsilon(e.as_f64().unwrap());
            }
            Box::new(l)
        }
        other => panic!("unknown class {other}"),
    };
    layer.set_name(c["config"]["name"].as_str().unwrap().to_string());
    with_keras_weights(layer, c)
}

#[test]
fn forward_and_gradients_match_keras() {
    let all = cases();
    assert_eq!(all.len(), 17);
    for c in &all {
        let name = c["name"].as_str().unwrap();
        let layer = layer_of(c);
        let x = tensor_of(&c["x"]);
        let y = layer.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap();
        assert_close(y.value(), &tensor_of(&c["y"]), 2e-5, &format!("{name} forward"));
        let Some(grads) = c.get("grads").and_then(Value::as_array) else { continue };
        // gradients of sum(w * y) wrt x and each trainable weight, against TensorFlow's tape
        let tape = Tape::new();
        let mut rng = Rng::new(0);
        let xv = tape.leaf(x);
        let y = layer.forward(&xv, &mut Ctx::train(&tape, &mut rng)).unwrap();
        let loss = y.mul(&Var::constant(tensor_of(&c["w"]))).unwrap().sum_all().unwrap();
        let g = tape.backward(&loss).unwrap();
        assert_close(g.get_var(&xv).unwrap(), &tensor_of(&grads[0]), 2e-4, &format!("{name} d/dx"));
        for (i, p) in layer.params().iter().enumerate() {
            assert_close(g.get(p).unwrap(), &tensor_of(&grads[i + 1]), 2e-4, &format!("{name} d/dweight{i}"));
        }
    }
}

#[test]
fn configs_have_keras_keys_and_resolved_groups() {
    for c in cases() {
        let layer = layer_of(&c);
        let ours = layer.config();
        let keras = &c["config"];
        for key in ours.as_object().unwrap().keys() {
            assert!(keras.get(key).is_some(), "{}: keel writes {key}, which Keras does not", c["name"]);
        }
        for key in ["groups", "axis", "epsilon", "center", "scale", "name"] {
            if let Some(k) = keras.get(key) {
                let ours = &ours[key];
                let same = match (k.as_f64(), ours.as_f64()) {
                    (Some(a), Some(b)) => (a - b).abs() < 1e-12,
                    _ => k == ours,
                };
                assert!(same, "{}: {key} keel {ours} vs keras {k}", c["name"]);
            }
        }
    }
}

#[test]
fn gradchecks_in_f64() {
    let x = Tensor::rand_normal(3, 0.5, 2.0, [2, 3, 2, 6], DType::F64, &Device::Cpu).unwrap();
    let mut gn = GroupNormalization::new(3).center(false).scale(false).epsilon(1e-3);
    gn.build(&[3, 2, 6], &mut Rng::new(0)).unwrap();
    let f = |v: &[Var]| Ok(gn.forward(&v[0], &mut Ctx::inference()).expect("forward"));
    gradcheck(f, std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("GroupNormalization: {e}"));
    for axes in [vec![-1], vec![1, 3], vec![2], vec![1, 2, 3]] {
        // gamma/beta at their Keras-set values would hide a broadcast mistake: use random ones
        let mut ln = LayerNormalization::new().over(axes.clone());
        ln.build(&[3, 2, 6], &mut Rng::new(0)).unwrap();
        let mut rms = RMSNormalization::new().over(axes.clone()).epsilon(1e-3);
        rms.build(&[3, 2, 6], &mut Rng::new(0)).unwrap();
        for (i, w) in ln.weights().iter().chain(rms.weights().iter()).enumerate() {
            let shape = w.param.value().dims().to_vec();
            w.param
                .set(Tensor::rand_normal(10 + i as u64, 1.0, 0.5, shape, DType::F32, &Device::Cpu).unwrap())
                .unwrap();
        }
        let f = |v: &[Var]| Ok(ln.forward(&v[0], &mut Ctx::inference()).expect("forward"));
        gradcheck(f, std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("LayerNormalization({axes:?}): {e}"));
        let f = |v: &[Var]| Ok(rms.forward(&v[0], &mut Ctx::inference()).expect("forward"));
        gradcheck(f, std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("RMSNormalization({axes:?}): {e}"));
    }
    for axes in [vec![-1], vec![1, 3], vec![2]] {
        let mut un = UnitNormalization::over(axes.clone());
        un.build(&[3, 2, 6], &mut Rng::new(0)).unwrap();
        let f = |v: &[Var]| Ok(un.forward(&v[0], &mut Ctx::inference()).expect("forward"));
        gradcheck(f, std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("UnitNormalization({axes:?}): {e}"));
    }
}

#[test]
fn bad_configs_and_inputs_are_errors_naming_the_layer() {
    let mut rng = Rng::new(0);
    let err = GroupNormalization::new(4).with_name("gn").build(&[5, 6], &mut rng).unwrap_err().to_string();
    assert!(err.contains("gn") && err.contains("multiple of groups (4)"), "{err}");
    let err = GroupNormalization::new(8).build(&[5, 6], &mut rng).unwrap_err().to_string();
    assert!(err.contains("cannot be more than the number of channels (6)"), "{err}");
    assert!(GroupNormalization::new(0).build(&[6], &mut rng).is_err());
    assert!(GroupNormalization::new(-2).build(&[6], &mut rng).is_err());
    assert!(GroupNormalization::new(2).epsilon(-1.0).build(&[6], &mut rng).is_err());
    assert!(GroupNormalization::new(2).output_shape(&[4, 5]).is_err(), "5 channels in 2 groups");
    let mut gn = GroupNormalization::new(2).with_name("gn");
    gn.build(&[4, 6], &mut rng).unwrap();
    let wrong = Var::constant(Tensor::zeros([2, 4, 8], DType::F32, &Device::Cpu).unwrap());
    let err = gn.forward(&wrong, &mut Ctx::inference()).unwrap_err().to_string();
    assert!(err.contains("gn") && err.contains('6') && err.contains('8'), "{err}");
    for axes in [vec![0], vec![3], vec![-3], vec![]] {
        let err = UnitNormalization::over(axes.clone()).with_name("un").build(&[4], &mut rng).unwrap_err().to_string();
        assert!(err.contains("un"), "{axes:?}: {err}");
        let err = LayerNormalization::new().over(axes.clone()).with_name("ln").build(&[4], &mut rng).unwrap_err();
        assert!(err.to_string().contains("ln"), "{axes:?}: {err}");
        let err = RMSNormalization::new().over(axes.clone()).with_name("rms").build(&[4], &mut rng).unwrap_err();
        assert!(err.to_string().contains("rms"), "{axes:?}: {err}");
    }
    // built for [3, 4] over axis 1: a batch with another size there is an error naming both
    let mut ln = LayerNormalization::new().axis(1).with_name("ln");
    ln.build(&[3, 4], &mut rng).unwrap();
    let wrong = Var::constant(Tensor::zeros([2, 5, 4], DType::F32, &Device::Cpu).unwrap());
    let err = ln.forward(&wrong, &mut Ctx::inference()).unwrap_err().to_string();
    assert!(err.contains("ln") && err.contains("[3]") && err.contains('5'), "{err}");
    assert!(RMSNormalization::new().epsilon(-1.0).build(&[4], &mut rng).is_err());
}

#[test]
fn group_normalization_does_not_depend_on_the_batch_and_trains() {
    // each sample is normalized on its own: a sample's output is the same alone or in a batch
    let mut gn = GroupNormalization::new(2);
    gn.build(&[3, 3, 4], &mut Rng::new(0)).unwrap();
    let x = Tensor::rand_normal(7, 1.0, 3.0, [4, 3, 3, 4], DType::F32, &Device::Cpu).unwrap();
    let all = gn.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap();
    let one = gn.forward(&Var::constant(x.narrow(0, 2, 1).unwrap()), &mut Ctx::inference()).unwrap();
    assert_eq!(all.value().narrow(0, 2, 1).unwrap().to_vec::<f32>().unwrap(), one.value().to_vec::<f32>().unwrap());

    // a small conv net with GroupNormalization and UnitNormalization learns a separable task
    let mut model = Sequential::with_seed(3);
    model.add(Conv2D::new(8, (3, 3)).padding(Padding::Same).input_shape([6, 6, 1]));
    model.add(GroupNormalization::new(4));
    model.add(ReLU::new());
    model.add(GlobalAveragePooling2D::new());
    model.add(UnitNormalization::new(-1));
    model.add(Dense::new(2));
    let n = 32;
    let mut data = Vec::with_capacity(n * 36);
    let mut labels = Vec::with_capacity(n);
    let noise = Tensor::rand_normal(11, 0.0, 0.3, [n, 36], DType::F32, &Device::Cpu).unwrap().to_vec::<f32>().unwrap();
    for i in 0..n {
        let class = i % 2;
        labels.push(class as i64);
        for p in 0..36 {
            let (r, c) = (p / 6, p % 6);
            // class 0: bright left half; class 1: bright right half
            let on = if class == 0 { c < 3 } else { c >= 3 };
            data.push(if on { 1.0 } else { 0.0 } + noise[i * 36 + p] + 0.1 * r as f32);
        }
    }
    let x = Tensor::from_vec(data, [n, 6, 6, 1]).unwrap();
    let y = Tensor::from_vec(labels, [n]).unwrap();
    let mut losses = Vec::new();
    let mut rng = Rng::new(0);
    for _ in 0..150 {
        let tape = Tape::new();
        let heads = model.forward_heads(&[Var::constant(x.clone())], &mut Ctx::train(&tape, &mut rng)).unwrap();
        let loss = Loss::SparseCategoricalCrossentropy.from_logits(true).compute(&heads[0].logits, &y, None).unwrap();
        losses.push(loss.value().to_scalar::<f32>().unwrap());
        let g = tape.backward(&loss).unwrap();
        for p in model.trainable_params() {
            let upd = g.get(&p).unwrap().mul_scalar(0.5).unwrap();
            p.set(p.value().sub(&upd).unwrap()).unwrap();
        }
    }
    println!("loss {} -> {}", losses[0], losses[149]);
    assert!(losses[149] < 0.25 * losses[0], "loss {} -> {}", losses[0], losses[149]);
}

#[test]
fn l2_normalizing_a_zero_slice_has_zero_output_and_finite_gradients() {
    // Keras's x * min(rsqrt(s), 1/eps) has a NaN gradient at s = 0 (0 * inf in rsqrt's
    // backward); keel's rsqrt(max(s, eps^2)) gives the same values and a finite gradient.
    // A zero row happens in practice: attention dropout can drop a causal row's only key.
    let x = Tensor::from_vec(vec![0.0f32, 0.0, 0.0, 3.0, 0.0, 4.0], (2, 3)).unwrap();
    let mut un = UnitNormalization::new(-1);
    un.build(&[3], &mut Rng::new(0)).unwrap();
    let mut dot = keel_nn::Dot::new(-1).normalize(true);
    dot.build_multi(&[vec![3], vec![3]], &mut Rng::new(0)).unwrap();
    let tape = Tape::new();
    let mut rng = Rng::new(0);
    let xv = tape.leaf(x.clone());
    let yv = tape.leaf(x.ones_like().unwrap());
    let mut ctx = Ctx::train(&tape, &mut rng);
    let u = un.forward(&xv, &mut ctx).unwrap();
    assert_eq!(u.value().to_vec::<f32>().unwrap(), vec![0.0, 0.0, 0.0, 0.6, 0.0, 0.8]);
    let d = dot.forward_logits_multi(&[xv.clone(), yv], &mut ctx).unwrap();
    let loss = u.sum_all().unwrap().add(&d.sum_all().unwrap()).unwrap();
    let g = tape.backward(&loss).unwrap();
    let gx = g.get_var(&xv).unwrap().to_vec::<f32>().unwrap();
    assert!(gx.iter().all(|v| v.is_finite()), "{gx:?}");
}
