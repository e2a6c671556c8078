//! DepthwiseConv1D and SeparableConv1D: forward values and gradients against real Keras 3
//! (fixtures/depthwise_conv1d_fixtures.json, written by
//! fixtures/make_depthwise_conv1d_fixtures.py with TensorFlow's GradientTape),
//! finite-difference gradchecks in f64, configs with Keras's keys, shapes, errors,
//! penalties, and a small model that learns.

mod common;
use common::{check_forward_and_grads, uniform, with_keras_weights};

use keel_autograd::{gradcheck, Tape, Var};
use keel_nn::prelude::*;
use keel_nn::{DepthwiseConv1DConfig, Error, SeparableConv1DConfig};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/depthwise_conv1d_fixtures.json")).unwrap()
}

/// The keel layer of a Keras class and config (read as the registry reads it).
fn from_keras(class: &str, cfg: &Value) -> Box<dyn Layer> {
    let mut l: Box<dyn Layer> = match class {
        "DepthwiseConv1D" => Box::new(DepthwiseConv1D::from_config(
            serde_json::from_value::<DepthwiseConv1DConfig>(cfg.clone()).unwrap(),
        )),
        "SeparableConv1D" => Box::new(SeparableConv1D::from_config(
            serde_json::from_value::<SeparableConv1DConfig>(cfg.clone()).unwrap(),
        )),
        other => panic!("unknown class {other}"),
    };
    l.set_name(cfg["name"].as_str().unwrap().to_string());
    l
}

#[test]
fn forward_and_gradients_match_keras() {
    let fx = fixture();
    let all = fx["cases"].as_array().unwrap();
    assert_eq!(all.len(), 12);
    let (mut worst_y, mut worst_g) = (0.0f32, 0.0f32);
    for c in all {
        let name = c["name"].as_str().unwrap();
        let layer = with_keras_weights(from_keras(c["class"].as_str().unwrap(), &c["config"]), c);
        // Keras's weight names, order and shapes
        let names: Vec<String> = layer.weights().iter().map(|w| w.name.to_string()).collect();
        let want: Vec<&str> = c["weight_names"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(names, want, "{name}: weights");
        let (dy, dg) = check_forward_and_grads(layer.as_ref(), c, 1e-5);
        (worst_y, worst_g) = (worst_y.max(dy), worst_g.max(dg));
    }
    println!("{} cases: largest difference from Keras {worst_y:e} (outputs), {worst_g:e} (gradients)", all.len());
}

/// Every key keel writes is Keras's, with Keras's value (initializers: the class).
fn same_keys(ours: &Value, keras: &Value, what: &str) {
    for (key, v) in ours.as_object().unwrap() {
        let k = keras.get(key).unwrap_or_else(|| panic!("{what}: keel writes {key}, which Keras does not"));
        if key.ends_with("_initializer") {
            assert_eq!(k["class_name"], v["class_name"], "{what}: {key}");
        } else {
            assert_eq!(k, v, "{what}: {key}");
        }
    }
}

#[test]
fn configs_have_keras_keys_and_round_trip() {
    let fx = fixture();
    let configs = fx["cases"].as_array().unwrap().iter().map(|c| (c["class"].as_str().unwrap(), &c["config"]));
    let defaults = fx["default_configs"].as_object().unwrap().iter().map(|(k, v)| (k.as_str(), v));
    for (class, keras) in configs.chain(defaults) {
        let what = format!("{class} {}", keras["name"]);
        let ours = from_keras(class, keras).config();
        same_keys(&ours, keras, &what);
        assert_eq!(from_keras(class, &ours).config(), ours, "{what}: round trip");
    }
    let dw = DepthwiseConv1D::new(3).strides(2).padding(Padding::Same).dilation_rate(1).with_name("d");
    let cfg = dw.config();
    assert_eq!(cfg["kernel_size"], serde_json::json!([3]));
    assert_eq!(cfg["strides"], serde_json::json!([2]));
    assert_eq!(cfg["padding"], "same");
    assert_eq!(cfg["depth_multiplier"], 1);
    let sep = SeparableConv1D::new(4, 2).pointwise_regularizer(Regularizer::L2 { l2: 0.1 }).with_name("s");
    assert_eq!(sep.config()["filters"], 4);
    assert_eq!(sep.get_config().pointwise_regularizer, Some(Regularizer::L2 { l2: 0.1 }));
    // Keras's causal padding is Conv1D's only: the depthwise layers refuse it when read
    let mut causal = fx["default_configs"]["DepthwiseConv1D"].clone();
    causal["padding"] = "causal".into();
    let e = serde_json::from_value::<DepthwiseConv1DConfig>(causal).unwrap_err().to_string();
    assert!(e.contains("causal"), "{e}");
}

#[test]
fn shapes_params_and_names() {
    let mut l = DepthwiseConv1D::new(3).depth_multiplier(2);
    l.build(&[10, 4], &mut Rng::new(1)).unwrap();
    assert_eq!(l.output_shape(&[10, 4]).unwrap(), [8, 8]);
    assert_eq!(l.count_params(), 3 * 4 * 2 + 8);
    assert_eq!(l.kernel().unwrap().value().dims(), [3, 4, 2]);
    assert_eq!(l.bias().unwrap().value().dims(), [8]);
    assert_eq!(l.base_name(), "depthwise_conv1d");
    let mut l = SeparableConv1D::new(5, 3).depth_multiplier(3).use_bias(false);
    l.build(&[10, 2], &mut Rng::new(1)).unwrap();
    assert_eq!(l.output_shape(&[10, 2]).unwrap(), [8, 5]);
    assert_eq!(l.count_params(), 3 * 2 * 3 + 6 * 5);
    assert_eq!(l.depthwise_kernel().unwrap().value().dims(), [3, 2, 3]);
    assert_eq!(l.pointwise_kernel().unwrap().value().dims(), [1, 6, 5]);
    assert!(l.bias().is_none());
    assert_eq!(l.base_name(), "separable_conv1d");
    // Keras: DepthwiseConv1D(3, strides=2, padding="same") on (7, 3) -> (4, 3); dilation 2 valid on (9, 2) -> (5, 2)
    assert_eq!(DepthwiseConv1D::new(3).strides(2).padding(Padding::Same).output_shape(&[7, 3]).unwrap(), [4, 3]);
    assert_eq!(DepthwiseConv1D::new(3).dilation_rate(2).output_shape(&[9, 2]).unwrap(), [5, 2]);
    assert_eq!(SeparableConv1D::new(4, 4).strides(3).padding(Padding::Same).output_shape(&[7, 2]).unwrap(), [3, 4]);
    // glorot fans as Keras's compute_fans on (k, c, m): fan_in = k*c, fan_out = k*m
    let mut l = DepthwiseConv1D::new(5).depth_multiplier(2);
    l.build(&[9, 64], &mut Rng::new(1)).unwrap();
    let limit = (6.0f32 / (5.0 * 64.0 + 5.0 * 2.0)).sqrt();
    let v = l.kernel().unwrap().value().to_vec::<f32>().unwrap();
    let max = v.iter().fold(0.0f32, |a, x| a.max(x.abs()));
    assert!(max <= limit && max > 0.95 * limit, "{max} vs {limit}");
}

#[test]
fn gradchecks_in_f64() {
    // wrt the input and the kernels: valid, same with strides, dilation (with strides too),
    // multipliers
    let dws = [
        DepthwiseConv1D::new(3),
        DepthwiseConv1D::new(3).strides(2).padding(Padding::Same).depth_multiplier(2),
        DepthwiseConv1D::new(2).dilation_rate(2).depth_multiplier(3),
        DepthwiseConv1D::new(4).padding(Padding::Same).strides(3).dilation_rate(2),
    ];
    for (i, dw) in dws.iter().enumerate() {
        let c = dw.get_config();
        let x = uniform(10 + i as u64, &[2, 9, 3]);
        let k = uniform(20 + i as u64, &[c.kernel_size, 3, c.depth_multiplier]);
        let f = |v: &[Var]| Ok(dw.forward_with_kernel(&v[0], &v[1]).expect("depthwise"));
        let r = gradcheck(f, &[x, k]).unwrap_or_else(|e| panic!("DepthwiseConv1D {c:?}: {e}"));
        assert_eq!(r.checked, 2 * 9 * 3 + c.kernel_size * 3 * c.depth_multiplier);
    }
    let seps = [
        SeparableConv1D::new(2, 3),
        SeparableConv1D::new(3, 3).strides(2).padding(Padding::Same).depth_multiplier(2),
        SeparableConv1D::new(2, 2).dilation_rate(2).strides(2),
    ];
    for (i, sep) in seps.iter().enumerate() {
        let c = sep.get_config();
        let m = c.depth_multiplier;
        let x = uniform(30 + i as u64, &[2, 8, 2]);
        let dk = uniform(40 + i as u64, &[c.kernel_size, 2, m]);
        let pk = uniform(50 + i as u64, &[1, 2 * m, c.filters]);
        let f = |v: &[Var]| Ok(sep.forward_with_kernels(&v[0], &v[1], &v[2]).expect("separable"));
        gradcheck(f, &[x, dk, pk]).unwrap_or_else(|e| panic!("SeparableConv1D {c:?}: {e}"));
    }
    // (the bias, the activations and the fused pointwise + bias + ReLU: against TensorFlow's
    // gradients in forward_and_gradients_match_keras)
}

/// `r`'s error message, which must exist.
fn err(r: Result<impl Sized, Error>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn errors_name_the_layer_and_the_shape() {
    // an image (rank 3) where a sequence is due
    let mut dw = DepthwiseConv1D::new(3).with_name("dw");
    let e = err(dw.build(&[8, 8, 3], &mut Rng::new(0)));
    assert!(e.contains("\"dw\"") && e.contains("DepthwiseConv1D") && e.contains("[8, 8, 3]"), "{e}");
    assert!(e.contains("[steps, channels]"), "{e}");
    dw.build(&[6, 3], &mut Rng::new(0)).unwrap();
    let image = Var::constant(Tensor::zeros((2, 6, 6, 3), DType::F32, &Device::Cpu).unwrap());
    let e = err(dw.forward(&image, &mut Ctx::inference()));
    assert!(e.contains("\"dw\"") && e.contains("rank 3"), "{e}");
    // another channel count than built, at build and at call
    let e = err(dw.build(&[6, 2], &mut Rng::new(0)));
    assert!(e.contains("\"dw\"") && e.contains("3 channels"), "{e}");
    let wrong = Var::constant(Tensor::zeros((1, 6, 2), DType::F32, &Device::Cpu).unwrap());
    let e = err(dw.forward(&wrong, &mut Ctx::inference()));
    assert!(e.contains("\"dw\"") && e.contains("[6, 2]") && e.contains("3 channels"), "{e}");
    // a sequence shorter than the window, an empty one, a bad config
    let e = err(SeparableConv1D::new(2, 5).with_name("sep").output_shape(&[4, 1]));
    assert!(e.contains("\"sep\"") && e.contains("[4, 1]") && e.contains("sequence large enough for the window"), "{e}");
    let e = err(DepthwiseConv1D::new(3).dilation_rate(3).with_name("d").output_shape(&[6, 1]));
    assert!(e.contains("\"d\"") && e.contains("window"), "{e}");
    let e = err(DepthwiseConv1D::new(2).with_name("z").output_shape(&[5, 0]));
    assert!(e.contains("\"z\"") && e.contains("[5, 0]"), "{e}");
    let e = err(DepthwiseConv1D::new(3).depth_multiplier(0).with_name("m").output_shape(&[5, 2]));
    assert!(e.contains("\"m\"") && e.contains("depth_multiplier must be >= 1"), "{e}");
    let e = err(SeparableConv1D::new(0, 3).with_name("f").output_shape(&[5, 2]));
    assert!(e.contains("\"f\"") && e.contains("filters must be >= 1"), "{e}");
    let e = err(DepthwiseConv1D::new(2).strides(0).output_shape(&[5, 2]));
    assert!(e.contains(">= 1"), "{e}");
    // kernels of other shapes than the config's
    let x = Var::constant(Tensor::zeros((1, 6, 2), DType::F32, &Device::Cpu).unwrap());
    let k = |shape: &[usize]| Var::constant(Tensor::zeros(shape.to_vec(), DType::F32, &Device::Cpu).unwrap());
    let e = err(DepthwiseConv1D::new(3).with_name("k").forward_with_kernel(&x, &k(&[3, 3, 1])));
    assert!(e.contains("\"k\"") && e.contains("[3, 3, 1]") && e.contains("expected [3, 2, 1]"), "{e}");
    let e = err(DepthwiseConv1D::new(3).with_name("k").forward_with_kernel(&x, &k(&[3, 2])));
    assert!(e.contains("\"k\"") && e.contains("[3, 2]"), "{e}");
    let sep = SeparableConv1D::new(4, 3).depth_multiplier(2).with_name("p");
    let e = err(sep.forward_with_kernels(&x, &k(&[3, 2, 2]), &k(&[1, 2, 4])));
    assert!(e.contains("\"p\"") && e.contains("pointwise kernel is [1, 2, 4]") && e.contains("[1, 4, 4]"), "{e}");
    // not built
    let e = err(SeparableConv1D::new(4, 3).with_name("nb").forward(&x, &mut Ctx::inference()));
    assert!(e.contains("nb"), "{e}");
}

#[test]
fn penalties_are_keras_l2() {
    let l2 = |v: f64| Regularizer::L2 { l2: v };
    let mut l = SeparableConv1D::new(2, 3).depthwise_regularizer(l2(0.1)).pointwise_regularizer(l2(0.01));
    l.build(&[5, 2], &mut Rng::new(1)).unwrap();
    let sumsq = |w: Tensor| w.mul(&w).unwrap().sum_all().unwrap().to_vec::<f32>().unwrap()[0];
    let sq = |i: usize| sumsq(l.weights()[i].param.value());
    let want = 0.1 * sq(0) + 0.01 * sq(1);
    let got = l.regularization_loss(&Ctx::inference()).unwrap().unwrap().into_value().to_vec::<f32>().unwrap()[0];
    assert!((got - want).abs() <= 1e-5 * want.abs(), "{got} vs {want}");
    let mut l = DepthwiseConv1D::new(3).depthwise_regularizer(l2(0.5)).bias_initializer(Initializer::Ones);
    l.build(&[5, 2], &mut Rng::new(1)).unwrap();
    assert_eq!(l.bias().unwrap().value().to_vec::<f32>().unwrap(), [1.0, 1.0]);
    let k = sumsq(l.weights()[0].param.value());
    let got = l.regularization_loss(&Ctx::inference()).unwrap().unwrap().into_value().to_vec::<f32>().unwrap()[0];
    assert!((got - 0.5 * k).abs() <= 1e-5 * k, "{got} vs {}", 0.5 * k);
}

#[test]
fn a_small_separable_conv1d_model_learns() {
    // a bump in the first half of the sequence or in the second
    let n = 32;
    let noise = Tensor::rand_uniform(3, -0.2, 0.2, (n, 12, 2), DType::F32, &Device::Cpu).unwrap();
    let noise = noise.to_vec::<f32>().unwrap();
    let (mut data, mut labels) = (Vec::new(), Vec::new());
    for i in 0..n {
        let late = i % 2;
        labels.push(late as i64);
        for t in 0..12 {
            for ch in 0..2 {
                let bump = if (t >= 6) == (late == 1) { 1.0 } else { 0.0 };
                data.push(bump * (ch + 1) as f32 + noise[(i * 12 + t) * 2 + ch]);
            }
        }
    }
    let x = Tensor::from_vec(data, [n, 12, 2]).unwrap();
    let y = Tensor::from_vec(labels, [n]).unwrap();
    let mut model = Sequential::with_seed(2);
    model.add(SeparableConv1D::new(4, 3).depth_multiplier(2).activation(Activation::Relu).input_shape([12, 2]));
    model.add(DepthwiseConv1D::new(3).strides(2).padding(Padding::Same).activation(Activation::Tanh));
    model.add(Flatten::new());
    model.add(Dense::new(2));
    let mut losses = Vec::new();
    let mut rng = Rng::new(0);
    for _ in 0..60 {
        let tape = Tape::new();
        let heads = model.forward_heads(&[Var::constant(x.clone())], &mut Ctx::train(&tape, &mut rng)).unwrap();
        let loss = Loss::SparseCategoricalCrossentropy.from_logits(true).compute(&heads[0].logits, &y, None).unwrap();
        losses.push(loss.value().to_scalar::<f32>().unwrap());
        let g = tape.backward(&loss).unwrap();
        for p in model.trainable_params() {
            let upd = g.get(&p).unwrap().mul_scalar(0.3).unwrap();
            p.set(p.value().sub(&upd).unwrap()).unwrap();
        }
    }
    assert!(losses[59] < 0.25 * losses[0], "loss {} -> {}", losses[0], losses[59]);
}
