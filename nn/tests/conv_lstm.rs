//! ConvLSTM2D and ConvLSTM1D: forward values, final states and gradients against real Keras 3
//! (fixtures/conv_lstm_fixtures.json, written by fixtures/make_conv_lstm_fixtures.py with
//! TensorFlow's GradientTape: same / valid padding, strides, dilation, even windows,
//! go_backwards, return_sequences, return_state, masks, initial states), finite-difference
//! gradchecks in f64, configs with Keras's keys, shapes, parameter counts and errors.

mod common;
use common::{max_diff, tensor_of, uniform, with_keras_weights};

use keel_autograd::{gradcheck, Tape, Var};
use keel_nn::prelude::*;
use keel_nn::{ConvLSTM, ConvLSTMConfig, ConvLSTMWindow, Error, RecurrentWeights, Window1D, Window2D};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let v: Value = serde_json::from_str(include_str!("fixtures/conv_lstm_fixtures.json")).unwrap();
    v["cases"].as_array().unwrap().clone()
}

/// The keel layer of a Keras config (read as the registry reads it).
fn from_keras<W: ConvLSTMWindow>(cfg: &Value) -> ConvLSTM<W> {
    let c: ConvLSTMConfig<W> = serde_json::from_value(cfg.clone()).unwrap();
    ConvLSTM::from_config(c).with_name(cfg["name"].as_str().unwrap())
}

/// The fixture's mask `[B, T]` as a tensor.
fn mask_of(c: &Value) -> Option<Tensor> {
    let m = c.get("mask")?.as_array()?;
    let rows: Vec<f32> =
        m.iter().flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32)).collect();
    Some(Tensor::from_vec(rows, [m.len(), m[0].as_array().unwrap().len()]).unwrap())
}

/// One fixture case: (largest output difference, largest gradient difference).
fn check_case<W: ConvLSTMWindow>(c: &Value) -> (f32, f32) {
    let name = c["name"].as_str().unwrap();
    let layer = with_keras_weights(Box::new(from_keras::<W>(&c["config"])), c);
    // the built weights back in a typed layer (with_keras_weights works on a Box<dyn Layer>)
    let mut typed = from_keras::<W>(&c["config"]);
    let x = tensor_of(&c["x"]);
    typed.build(&x.dims()[1..], &mut Rng::new(0)).unwrap();
    for (a, b) in typed.weights().iter().zip(layer.weights()) {
        a.param.set(b.param.value().clone()).unwrap();
    }
    let mask = mask_of(c);
    let tape = Tape::new();
    let mut rng = Rng::new(0);
    let xv = tape.leaf(x.clone());
    let init: Option<Vec<Var>> =
        c.get("initial_state").map(|s| s.as_array().unwrap().iter().map(|v| Var::constant(tensor_of(v))).collect());
    let (out, states) =
        typed.forward_with_mask(&xv, mask.as_ref(), init.as_deref(), &mut Ctx::train(&tape, &mut rng)).unwrap();
    let want = c["outputs"].as_array().unwrap();
    let mut got = vec![out.clone()];
    if typed.get_config().return_state {
        got.extend(states);
    }
    assert_eq!(got.len(), want.len(), "{name}: output count");
    let mut worst_y = 0.0f32;
    let mut loss: Option<Var> = None;
    for (i, ((g, w), wk)) in got.iter().zip(want).zip(c["w"].as_array().unwrap()).enumerate() {
        let d = max_diff(g.value(), &tensor_of(w), &format!("{name} output {i}"));
        assert!(d <= 1e-5, "{name} output {i}: differs from Keras by {d:e}");
        worst_y = worst_y.max(d);
        let term = g.mul(&Var::constant(tensor_of(wk))).unwrap().sum_all().unwrap();
        loss = Some(match loss {
            None => term,
            Some(l) => l.add(&term).unwrap(),
        });
    }
    // the output shape agrees with output_shape, and the plain forward with forward_with_state
    assert_eq!(&out.dims()[1..], typed.output_shape(&x.dims()[1..]).unwrap(), "{name}: output_shape");
    if mask.is_none() && init.is_none() {
        let plain = layer.forward(&Var::constant(x), &mut Ctx::inference()).unwrap();
        assert_eq!(plain.value().to_vec::<f32>().unwrap(), out.value().to_vec::<f32>().unwrap(), "{name}: forward");
    }
    let g = tape.backward(&loss.unwrap()).unwrap();
    let grads = c["grads"].as_array().unwrap();
    let d = max_diff(g.get_var(&xv).unwrap(), &tensor_of(&grads[0]), &format!("{name} d/dx"));
    assert!(d <= 1e-5, "{name} d/dx: differs from Keras by {d:e}");
    let mut worst_g = d;
    let params = typed.params();
    assert_eq!(params.len() + 1, grads.len(), "{name}: gradient count");
    for (i, p) in params.iter().enumerate() {
        let d = max_diff(g.get(p).unwrap(), &tensor_of(&grads[i + 1]), &format!("{name} d/dweight{i}"));
        assert!(d <= 1e-5, "{name} d/dweight{i}: differs from Keras by {d:e}");
        worst_g = worst_g.max(d);
    }
    (worst_y, worst_g)
}

#[test]
fn forward_states_and_gradients_match_keras() {
    let all = cases();
    assert_eq!(all.len(), 10);
    let (mut worst_y, mut worst_g) = (0.0f32, 0.0f32);
    for c in &all {
        let (y, g) = match c["class"].as_str().unwrap() {
            "ConvLSTM2D" => check_case::<Window2D>(c),
            "ConvLSTM1D" => check_case::<Window1D>(c),
            other => panic!("unexpected class {other}"),
        };
        worst_y = worst_y.max(y);
        worst_g = worst_g.max(g);
    }
    println!("{} cases: largest difference from Keras {worst_y:e} (outputs), {worst_g:e} (gradients)", all.len());
}

fn check_config<W: ConvLSTMWindow>(c: &Value) {
    let name = c["name"].as_str().unwrap();
    let keras = &c["config"];
    let layer = from_keras::<W>(keras);
    let ours = layer.config();
    for (key, v) in ours.as_object().unwrap() {
        let k = keras.get(key).unwrap_or_else(|| panic!("{name}: keel writes {key}, which Keras does not"));
        if key.ends_with("_initializer") {
            assert_eq!(k["class_name"], v["class_name"], "{name}: {key}");
        } else {
            assert_eq!(k, v, "{name}: {key}");
        }
    }
    assert_eq!(from_keras::<W>(&ours).config(), ours, "{name}: round trip");
}

#[test]
fn configs_have_keras_keys_and_round_trip() {
    for c in cases() {
        match c["class"].as_str().unwrap() {
            "ConvLSTM2D" => check_config::<Window2D>(&c),
            _ => check_config::<Window1D>(&c),
        }
    }
    let l = ConvLSTM2D::new(4, (1, 3)).strides(2).padding(Padding::Same).with_name("c");
    let cfg = l.config();
    assert_eq!(cfg["kernel_size"], serde_json::json!([1, 3]));
    assert_eq!(cfg["strides"], serde_json::json!([2, 2]));
    assert_eq!(cfg["dilation_rate"], serde_json::json!([1, 1]));
    assert_eq!(cfg["padding"], "same");
    assert_eq!(cfg["recurrent_activation"], "sigmoid");
    assert_eq!(cfg["unit_forget_bias"], true);
    let l = ConvLSTM1D::new(2, 3).dilation_rate(2).with_name("d");
    assert_eq!(l.config()["kernel_size"], serde_json::json!([3]));
    assert_eq!(l.config()["dilation_rate"], serde_json::json!([2]));
}

#[test]
fn shapes_params_names_and_bias_init() {
    let mut l = ConvLSTM2D::new(3, 3).padding(Padding::Same);
    l.build(&[5, 8, 7, 2], &mut Rng::new(1)).unwrap();
    assert_eq!(l.output_shape(&[5, 8, 7, 2]).unwrap(), [8, 7, 3]);
    assert_eq!(l.count_params(), 3 * 3 * 2 * 12 + 3 * 3 * 3 * 12 + 12);
    assert_eq!(l.kernel().unwrap().value().dims(), [3, 3, 2, 12]);
    assert_eq!(l.recurrent_kernel().unwrap().value().dims(), [3, 3, 3, 12]);
    // unit_forget_bias: zeros, ones for the forget gate, zeros
    let b = l.bias().unwrap().value().to_vec::<f32>().unwrap();
    assert_eq!(b, [[0.0f32; 3], [1.0; 3], [0.0; 3], [0.0; 3]].concat());
    assert_eq!(l.base_name(), "conv_lstm2d");
    assert_eq!(ConvLSTM1D::new(2, 3).base_name(), "conv_lstm1d");
    // Keras: ConvLSTM2D(2, (3, 2), strides=(2, 1)) on (4, 7, 5, 3) -> (3, 4, 2); sequences add T
    let l = ConvLSTM2D::new(2, (3, 2)).strides((2, 1));
    assert_eq!(l.output_shape(&[4, 7, 5, 3]).unwrap(), [3, 4, 2]);
    let l = ConvLSTM2D::new(2, 3).dilation_rate(2).return_sequences(true);
    assert_eq!(l.output_shape(&[4, 7, 5, 3]).unwrap(), [4, 3, 1, 2]);
    let l = ConvLSTM1D::new(4, 3).strides(2).padding(Padding::Same).return_sequences(true);
    assert_eq!(l.output_shape(&[6, 9, 2]).unwrap(), [6, 5, 4]);
    let mut l = ConvLSTM1D::new(4, 3).use_bias(false);
    l.build(&[6, 9, 2], &mut Rng::new(1)).unwrap();
    assert_eq!(l.count_params(), 3 * 2 * 16 + 3 * 4 * 16);
    // in a Sequential, with return_state a plain forward passes the output on
    let mut m = Sequential::new();
    m.add(ConvLSTM2D::new(2, 3).return_state(true).input_shape([3, 5, 5, 1]));
    assert_eq!(m.output_shapes().unwrap(), vec![vec![3, 3, 2]]);
}

#[test]
fn gradchecks_in_f64() {
    // fused gates (default activations), then composed ones with a mask and go_backwards; 2-D and 1-D
    let l2 = [
        ConvLSTM2D::new(2, (2, 3)).padding(Padding::Same),
        ConvLSTM2D::new(2, 2).strides((2, 1)).go_backwards(true).return_sequences(true),
        ConvLSTM2D::new(1, 2)
            .dilation_rate((1, 2))
            .activation(Activation::Relu)
            .recurrent_activation(Activation::HardSigmoid)
            .return_sequences(true),
    ];
    let mask = Tensor::from_vec(vec![1.0f64, 0.0, 1.0, 1.0, 1.0, 0.0], [2, 3]).unwrap();
    for (i, l) in l2.iter().enumerate() {
        let (kh, kw) = l.get_config().window.kernel_size;
        let f = l.get_config().filters;
        let xs = [
            uniform(10 + i as u64, &[2, 3, 4, 5, 2]),
            uniform(20 + i as u64, &[kh, kw, 2, 4 * f]).mul_scalar(0.5).unwrap(),
            uniform(30 + i as u64, &[kh, kw, f, 4 * f]).mul_scalar(0.5).unwrap(),
            uniform(40 + i as u64, &[4 * f]),
        ];
        let m = (i == 2).then_some(&mask);
        let g = |v: &[Var]| {
            let w = RecurrentWeights { kernel: v[1].clone(), recurrent_kernel: v[2].clone(), bias: Some(v[3].clone()) };
            let (y, s) = l.forward_with_weights(&v[0], &w, None, m).expect("conv_lstm");
            y.add(&s[1].mul_scalar(0.5)?.sum_all()?)
        };
        gradcheck(g, &xs).unwrap_or_else(|e| panic!("ConvLSTM2D {:?}: {e}", l.get_config()));
    }
    let l = ConvLSTM1D::new(2, 3).padding(Padding::Same).return_sequences(true);
    let xs = [
        uniform(50, &[2, 3, 5, 2]),
        uniform(51, &[3, 2, 8]).mul_scalar(0.5).unwrap(),
        uniform(52, &[3, 2, 8]).mul_scalar(0.5).unwrap(),
        uniform(53, &[8]),
        uniform(54, &[2, 5, 2]),
        uniform(55, &[2, 5, 2]),
    ];
    let g = |v: &[Var]| {
        let w = RecurrentWeights { kernel: v[1].clone(), recurrent_kernel: v[2].clone(), bias: Some(v[3].clone()) };
        let init = [v[4].clone(), v[5].clone()];
        Ok(l.forward_with_weights(&v[0], &w, Some(&init), Some(&mask)).expect("conv_lstm1d").0)
    };
    gradcheck(g, &xs).unwrap_or_else(|e| panic!("ConvLSTM1D: {e}"));
}

/// `r`'s error message, which must exist.
fn err(r: Result<impl Sized, Error>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn zeros(shape: &[usize]) -> Var {
    Var::constant(Tensor::zeros(shape.to_vec(), DType::F32, &Device::Cpu).unwrap())
}

#[test]
fn errors_name_the_layer_and_the_shape() {
    // a per-sample shape of the wrong rank (an image, not a sequence of them)
    let mut l = ConvLSTM2D::new(2, 3).with_name("clstm");
    let e = err(l.build(&[8, 8, 3], &mut Rng::new(0)));
    assert!(
        e.contains("clstm") && e.contains("ConvLSTM2D") && e.contains("[8, 8, 3]") && e.contains("timesteps"),
        "{e}"
    );
    let e = err(ConvLSTM1D::new(2, 3).with_name("c1").output_shape(&[4, 8, 8, 3]));
    assert!(e.contains("c1") && e.contains("ConvLSTM1D") && e.contains("[timesteps, steps, channels]"), "{e}");
    // frames smaller than the window, an empty axis
    let e = err(ConvLSTM2D::new(2, 5).with_name("w").output_shape(&[3, 4, 8, 1]));
    assert!(e.contains("\"w\"") && e.contains("[3, 4, 8, 1]") && e.contains("window"), "{e}");
    let e = err(ConvLSTM2D::new(2, 3).with_name("e").output_shape(&[0, 4, 8, 1]));
    assert!(e.contains("\"e\"") && e.contains("no empty axis"), "{e}");
    // settings Keras refuses
    let e = err(ConvLSTM2D::new(0, 3).output_shape(&[3, 4, 4, 1]));
    assert!(e.contains("filters must be >= 1"), "{e}");
    let e = err(ConvLSTM2D::new(2, 2).strides(2).dilation_rate(2).with_name("sd").output_shape(&[3, 8, 8, 1]));
    assert!(e.contains("\"sd\"") && e.contains("strides") && e.contains("dilation_rate"), "{e}");
    let e = err(ConvLSTM2D::new(2, (3, 0)).output_shape(&[3, 8, 8, 1]));
    assert!(e.contains(">= 1"), "{e}");
    // built for 3 channels: other channels, a rank-4 batch
    l.build(&[4, 6, 6, 3], &mut Rng::new(0)).unwrap();
    let e = err(l.build(&[4, 6, 6, 2], &mut Rng::new(0)));
    assert!(e.contains("clstm") && e.contains("3 channels"), "{e}");
    let e = err(l.forward(&zeros(&[1, 4, 6, 6, 2]), &mut Ctx::inference()));
    assert!(e.contains("clstm") && e.contains("3 channels") && e.contains("[4, 6, 6, 2]"), "{e}");
    let e = err(l.forward(&zeros(&[1, 6, 6, 3]), &mut Ctx::inference()));
    assert!(e.contains("clstm") && e.contains("[6, 6, 3]"), "{e}");
    // a mask or initial states of the wrong shape
    let x = zeros(&[2, 4, 6, 6, 3]);
    let bad_mask = Tensor::ones([2, 3], DType::F32, &Device::Cpu).unwrap();
    let e = err(l.forward_with_mask(&x, Some(&bad_mask), None, &mut Ctx::inference()));
    assert!(e.contains("clstm") && e.contains("a mask [2, 4]") && e.contains("[2, 3]"), "{e}");
    let s = [zeros(&[2, 6, 6, 2]), zeros(&[2, 6, 6, 2])];
    let e = err(l.forward_with_state(&x, Some(&s), &mut Ctx::inference()));
    assert!(e.contains("clstm") && e.contains("[2, 4, 4, 2]") && e.contains("[2, 6, 6, 2]"), "{e}");
    let e = err(l.forward_with_state(&x, Some(&s[..1]), &mut Ctx::inference()));
    assert!(e.contains("2 initial states"), "{e}");
    // explicit weights of the wrong shapes
    let w = RecurrentWeights { kernel: zeros(&[3, 3, 2, 8]), recurrent_kernel: zeros(&[3, 3, 2, 8]), bias: None };
    let e = err(ConvLSTM2D::new(2, 3).with_name("k").forward_with_weights(&x, &w, None, None));
    assert!(e.contains("\"k\"") && e.contains("[3, 3, 2, 8]") && e.contains("[3, 3, 3, 8]"), "{e}");
    let w = RecurrentWeights {
        kernel: zeros(&[3, 3, 3, 8]),
        recurrent_kernel: zeros(&[3, 3, 2, 8]),
        bias: Some(zeros(&[2])),
    };
    let e = err(ConvLSTM2D::new(2, 3).with_name("k").forward_with_weights(&x, &w, None, None));
    assert!(e.contains("bias [2], expected [8]"), "{e}");
    // not built
    let e = err(ConvLSTM2D::new(2, 3).with_name("nb").forward(&x, &mut Ctx::inference()));
    assert!(e.contains("nb"), "{e}");
}

#[test]
fn masked_trailing_steps_leave_the_result_of_the_real_ones() {
    // a padded sequence whose padding is masked ends in the state of its last real step
    let mut l = ConvLSTM2D::new(2, 3).padding(Padding::Same);
    l.build(&[3, 4, 4, 1], &mut Rng::new(3)).unwrap();
    let x = Tensor::rand_uniform(5, -1.0, 1.0, [1, 2, 4, 4, 1], DType::F32, &Device::Cpu).unwrap();
    let pad = Tensor::rand_uniform(6, -1.0, 1.0, [1, 1, 4, 4, 1], DType::F32, &Device::Cpu).unwrap();
    let padded = Tensor::concat(&[x.clone(), pad], 1).unwrap();
    let (short, s1) = l.forward_with_state(&Var::constant(x), None, &mut Ctx::inference()).unwrap();
    let mask = Tensor::from_vec(vec![1.0f32, 1.0, 0.0], [1, 3]).unwrap();
    let (long, s2) = l.forward_with_mask(&Var::constant(padded), Some(&mask), None, &mut Ctx::inference()).unwrap();
    assert_eq!(long.value().to_vec::<f32>().unwrap(), short.value().to_vec::<f32>().unwrap());
    assert_eq!(s2[1].value().to_vec::<f32>().unwrap(), s1[1].value().to_vec::<f32>().unwrap());
    // Keras passes the mask on with return_sequences only
    let m = Some(mask.clone());
    assert!(l.compute_mask(&[], std::slice::from_ref(&m)).unwrap().is_none());
    let l = ConvLSTM2D::new(2, 3).return_sequences(true);
    assert!(l.compute_mask(&[], &[m]).unwrap().is_some());
}
