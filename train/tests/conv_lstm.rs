//! ConvLSTM2D and ConvLSTM1D in models: Keras's configs load through the registry (and the
//! settings keel cannot honour are refused), a model saves and loads bit-identically, and a
//! small ConvLSTM2D model learns with `fit`.

mod common;

use common::{bits, test_dir, weight_bits};
use keel_autograd::Var;
use keel_nn::{Activation, ConvLSTM1D, ConvLSTM2D, Ctx, Dense, Flatten, GlobalAveragePooling2D, Loss, Network};
use keel_optim::Adam;
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Padding, Tensor};
use keel_train::{layer_from_config, load_model, Fit, MetricSpec, Sequential, NO_METRICS};
use serde_json::{json, Value};

fn fixture_cases() -> Vec<Value> {
    let v: Value = serde_json::from_str(include_str!("../../nn/tests/fixtures/conv_lstm_fixtures.json")).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn tensor_of(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data: Vec<f32> = v["data"].as_array().unwrap().iter().map(|d| d.as_f64().unwrap() as f32).collect();
    Tensor::from_vec(data, shape).unwrap()
}

/// Keras's own configs (with every key Keras writes) load through the registry, and the
/// loaded layer with Keras's weights gives Keras's output.
#[test]
fn keras_configs_load_through_the_registry() {
    for c in fixture_cases() {
        let (name, class) = (c["name"].as_str().unwrap(), c["class"].as_str().unwrap());
        if c.get("mask").is_some() || c.get("initial_state").is_some() {
            continue;
        }
        let mut layer = layer_from_config(class, &c["config"]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(layer.class_name(), class);
        assert_eq!(layer.name(), c["config"]["name"].as_str().unwrap());
        let x = tensor_of(&c["x"]);
        layer.build(&x.dims()[1..], &mut Rng::new(0)).unwrap();
        for (w, v) in layer.weights().iter().zip(c["weights"].as_array().unwrap()) {
            w.param.set(tensor_of(v)).unwrap();
        }
        let y = layer.forward(&Var::constant(x), &mut Ctx::inference()).unwrap();
        let want = tensor_of(&c["outputs"][0]);
        let (g, w) = (y.value().to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
        assert_eq!(y.dims(), want.dims(), "{name}");
        assert!(g.iter().zip(&w).all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + b.abs())), "{name}");
    }
}

#[test]
fn configs_keel_cannot_honour_are_refused() {
    let base = |extra: Value| {
        let mut cfg = json!({"name": "c", "filters": 2, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same",
            "dilation_rate": [1, 1], "activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": true,
            "unit_forget_bias": true, "return_sequences": false, "return_state": false, "go_backwards": false,
            "kernel_initializer": "glorot_uniform", "recurrent_initializer": "orthogonal",
            "bias_initializer": "zeros", "kernel_regularizer": null, "recurrent_regularizer": null,
            "bias_regularizer": null});
        for (k, v) in extra.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        cfg
    };
    assert!(layer_from_config("ConvLSTM2D", &base(json!({}))).is_ok());
    for (extra, want) in [
        (json!({"dropout": 0.2}), "dropout 0.2"),
        (json!({"recurrent_dropout": 0.1}), "recurrent_dropout 0.1"),
        (json!({"stateful": true}), "stateful"),
        (json!({"data_format": "channels_first"}), "channels_first"),
    ] {
        let e = layer_from_config("ConvLSTM2D", &base(extra.clone())).err().unwrap_or_else(|| panic!("{extra} loaded"));
        assert!(e.to_string().contains(want) && e.to_string().contains("ConvLSTM2D"), "{e}");
    }
    // a 1-D config is a 1-D layer
    let one = base(json!({"kernel_size": [3], "strides": [1], "dilation_rate": [1]}));
    let l = layer_from_config("ConvLSTM1D", &one).unwrap();
    assert_eq!(l.output_shape(&[4, 9, 2]).unwrap(), [9, 2]);
    assert!(layer_from_config("ConvLSTM1D", &base(json!({}))).is_err()); // two numbers for a 1-D window
}

/// Frames with a bright square moving right or left: the class is the direction.
fn moving_squares(n: usize, seed: u64) -> (Tensor, Tensor) {
    let (t, s) = (4, 6);
    let noise = Tensor::rand_uniform(seed, -0.1, 0.1, [n, t, s, s, 1], DType::F32, &Device::Cpu).unwrap();
    let mut data = noise.to_vec::<f32>().unwrap();
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let right = i % 2 == 0;
        labels.push(right as i64);
        let row = (i / 2) % (s - 1);
        for step in 0..t {
            let col = if right { step } else { s - 2 - step };
            for (dr, dc) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                data[((i * t + step) * s + row + dr) * s + col + dc] += 1.0;
            }
        }
    }
    (Tensor::from_vec(data, [n, t, s, s, 1]).unwrap(), Tensor::from_vec(labels, [n]).unwrap())
}

fn conv_lstm_model(seed: u64) -> Sequential {
    let mut m = Sequential::with_seed(seed);
    m.add(ConvLSTM2D::new(4, 3).padding(Padding::Same).return_sequences(true).input_shape([4, 6, 6, 1]));
    m.add(ConvLSTM2D::new(4, 3).strides(2).padding(Padding::Same));
    m.add(GlobalAveragePooling2D::new());
    m.add(Dense::new(2).activation(Activation::Softmax));
    m.compile(Adam::new(0.02), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    m
}

#[test]
fn a_small_conv_lstm_model_learns_with_fit() {
    let (x, y) = moving_squares(64, 1);
    let mut m = conv_lstm_model(7);
    let h = m.fit(&x, &y, Fit::new().epochs(25).batch_size(16).seed(3).verbose(0)).unwrap();
    let loss = h.get("loss").unwrap();
    let (first, last) = (loss[0], loss[loss.len() - 1]);
    assert!(last < 0.3 * first, "loss {first} -> {last}");
    assert!(h.get("accuracy").unwrap().last().unwrap() > &0.9, "{:?}", h.get("accuracy"));
}

#[test]
fn save_and_load_predicts_bit_identically() {
    let dir = test_dir("conv_lstm");
    let (x, y) = moving_squares(16, 2);
    let mut m = conv_lstm_model(5);
    m.fit(&x, &y, Fit::new().epochs(1).batch_size(8).verbose(0)).unwrap();
    let path = dir.join("model.keel");
    m.save(&path).unwrap();
    let loaded = load_model(&path).unwrap();
    assert_eq!(loaded.config(), m.config());
    assert_eq!(weight_bits(loaded.network()), weight_bits(m.network()));
    assert_eq!(bits(&loaded.predict(&x, 5).unwrap()), bits(&m.predict(&x, 5).unwrap()));
    // a ConvLSTM1D model with the other options
    let mut m1 = Sequential::with_seed(6);
    m1.add(
        ConvLSTM1D::new(3, 2)
            .strides(2)
            .go_backwards(true)
            .return_sequences(true)
            .activation(Activation::Relu)
            .unit_forget_bias(false)
            .bias_initializer(keel_nn::Initializer::Ones)
            .input_shape([3, 7, 2]),
    );
    m1.add(Flatten::new());
    m1.add(Dense::new(1));
    m1.compile(Adam::new(0.01), Loss::MeanSquaredError, NO_METRICS).unwrap();
    let x1 = Tensor::rand_uniform(3, -1.0, 1.0, [8, 3, 7, 2], DType::F32, &Device::Cpu).unwrap();
    let y1 = Tensor::rand_uniform(4, -1.0, 1.0, [8, 1], DType::F32, &Device::Cpu).unwrap();
    m1.fit(&x1, &y1, Fit::new().epochs(1).batch_size(4).verbose(0)).unwrap();
    let path = dir.join("model1d.keel");
    m1.save(&path).unwrap();
    let loaded = load_model(&path).unwrap();
    assert_eq!(loaded.config(), m1.config());
    assert_eq!(bits(&loaded.predict(&x1, 4).unwrap()), bits(&m1.predict(&x1, 4).unwrap()));
    let cfg = serde_json::to_string(&m1.config()).unwrap();
    assert!(cfg.contains("\"ConvLSTM1D\"") && cfg.contains("\"go_backwards\":true"), "{cfg}");
}
