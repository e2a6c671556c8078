//! Keras's one-batch methods (`train_on_batch`, `test_on_batch`, `predict_on_batch`) against
//! Keras 3.15.1 (fixtures/on_batch_fixtures.json, written by fixtures/make_on_batch_fixtures.py):
//! three Adam steps on a BatchNormalization + Dense model, their returned logs, the weights
//! after them and the test logs and predictions. Also: a step is `fit`'s step on one batch, bit
//! for bit; an unbuilt model is built; dropout draws from the call number; the errors.

use keel_nn::{Activation, Dense, Dropout, Loss, Network};
use keel_optim::{Adam, SGD};
use keel_tensor::{DType, Device, Tensor};
use keel_train::{layer_from_config, Error, Fit, KerasModel, Sequential, NO_METRICS};
use serde_json::Value;

mod common;
use common::{bits, blobs, mlp, weight_bits};

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/on_batch_fixtures.json")).unwrap()
}

fn tensor_of(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data: Vec<f32> = v["data"].as_array().unwrap().iter().map(|d| d.as_f64().unwrap() as f32).collect();
    Tensor::from_vec(data, shape).unwrap()
}

fn labels(v: &Value) -> Tensor {
    let y: Vec<i64> = v.as_array().unwrap().iter().map(|d| d.as_i64().unwrap()).collect();
    let n = y.len();
    Tensor::from_vec(y, n).unwrap()
}

fn max_abs(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| f64::from((x - y).abs())).fold(0.0, f64::max)
}

/// Every weight of `net` against the fixture's per-layer weights `want`: the largest difference.
fn weights_diff(net: &keel_nn::Sequential, want: &Value) -> f64 {
    let mut worst = 0.0f64;
    for (layer, w) in net.layers().iter().zip(want.as_array().unwrap()) {
        let w = w.as_object().unwrap();
        assert_eq!(layer.weights().len(), w.len(), "{}: weight count", layer.name());
        for weight in layer.weights() {
            let ours = weight.param.value().to_vec::<f32>().unwrap();
            let d = max_abs(&ours, &tensor_of(&w[&*weight.name]).to_vec::<f32>().unwrap());
            worst = worst.max(d);
        }
    }
    worst
}

/// A log list as a map, to compare with Keras's dict.
fn by_name(logs: &[(String, f64)]) -> std::collections::BTreeMap<String, f64> {
    logs.iter().cloned().collect()
}

#[test]
fn the_one_batch_methods_match_keras() {
    let fx = fixture();
    let mut net = keel_nn::Sequential::new();
    for l in fx["layers"].as_array().unwrap() {
        net.add_boxed(layer_from_config(l["class_name"].as_str().unwrap(), &l["config"]).unwrap());
    }
    net.build(&[vec![4]]).unwrap();
    for (layer, w) in net.layers().iter().zip(fx["start"].as_array().unwrap()) {
        for weight in layer.weights() {
            weight.param.assign(&tensor_of(&w[&*weight.name])).unwrap();
        }
    }
    let mut model = KerasModel::from_network(net);
    model.compile(Adam::new(0.05), Loss::SparseCategoricalCrossentropy, &["accuracy"]).unwrap();
    let mut worst_log = 0.0f64;
    for call in fx["calls"].as_array().unwrap() {
        let (x, y) = (tensor_of(&call["x"]), labels(&call["y"]));
        let logs = match &call["sample_weight"] {
            Value::Null => model.train_on_batch(&x, &y).unwrap(),
            w => model.train_on_batch_weighted(&x, &y, &tensor_of(w)).unwrap(),
        };
        assert_eq!(logs.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(), ["loss", "accuracy"]);
        for (name, v) in by_name(&logs) {
            worst_log = worst_log.max((v - call["logs"][&name].as_f64().unwrap()).abs());
        }
    }
    let worst_weight = weights_diff(model.network(), &fx["after"]);
    let test = &fx["test"];
    let (x, y) = (tensor_of(&test["x"]), labels(&test["y"]));
    let logs = model.test_on_batch(&x, &y).unwrap();
    for (name, v) in by_name(&logs) {
        worst_log = worst_log.max((v - test["logs"][&name].as_f64().unwrap()).abs());
    }
    let pred = model.predict_on_batch(&x).unwrap();
    let worst_pred = max_abs(&pred.to_vec::<f32>().unwrap(), &tensor_of(&test["predict"]).to_vec::<f32>().unwrap());
    println!("max |keel - Keras|: logs {worst_log:.2e}, weights {worst_weight:.2e}, predictions {worst_pred:.2e}");
    assert!(worst_log < 2e-5 && worst_weight < 2e-5 && worst_pred < 2e-5);
}

#[test]
fn a_step_is_fits_step_on_one_batch_and_builds_the_model() {
    let (x, y) = blobs(3, 24);
    let w = Tensor::rand_uniform(4, 0.5, 1.5, [24], DType::F32, &Device::Cpu).unwrap();
    // no input_shape: both build from the data
    let make = || {
        let mut m = Sequential::with_seed(9);
        m.add(Dense::new(8).activation(Activation::Tanh));
        m.add(Dense::new(1).activation(Activation::Sigmoid));
        m.compile_weighted(Adam::new(0.01), Loss::BinaryCrossentropy, &["accuracy"], &["accuracy"]).unwrap();
        m
    };
    let (mut fitted, mut stepped) = (make(), make());
    let h =
        fitted.fit(&x, &y, Fit::new().batch_size(24).epochs(2).shuffle(false).sample_weight(&w).verbose(0)).unwrap();
    let mut last = Vec::new();
    for _ in 0..2 {
        last = stepped.train_on_batch_weighted(&x, &y, &w).unwrap();
    }
    assert_eq!(weight_bits(fitted.network()), weight_bits(stepped.network()));
    for (name, v) in &last {
        assert_eq!(h.last(name), Some(*v), "{name}");
    }
    // test_on_batch and predict_on_batch are evaluate and predict over one batch
    let (x2, y2) = blobs(5, 10);
    assert_eq!(stepped.test_on_batch(&x2, &y2).unwrap(), stepped.evaluate_all(&x2, &y2, 10).unwrap());
    let w2 = Tensor::ones([10], DType::F32, &Device::Cpu).unwrap().mul_scalar(2.0).unwrap();
    assert_eq!(
        stepped.test_on_batch_weighted(&x2, &y2, &w2).unwrap(),
        stepped.evaluate_weighted(&x2, &y2, &w2, 10).unwrap()
    );
    assert_eq!(bits(&stepped.predict_on_batch(&x2).unwrap()), bits(&stepped.predict(&x2, 4).unwrap()));
}

#[test]
fn dropout_draws_from_the_call_number() {
    let (x, y) = blobs(6, 32);
    let make = || {
        let mut m = Sequential::with_seed(2);
        m.add(Dense::new(16).activation(Activation::Relu).input_shape([2]));
        m.add(Dropout::new(0.5));
        m.add(Dense::new(1).activation(Activation::Sigmoid));
        // a zero learning rate: the weights stay, so only the masks change the loss
        m.compile(SGD::new(0.0), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
        m
    };
    let losses = |m: &mut Sequential| (0..3).map(|_| m.train_on_batch(&x, &y).unwrap()[0].1).collect::<Vec<_>>();
    let (a, b) = (losses(&mut make()), losses(&mut make()));
    assert_eq!(a, b, "the same calls give the same bits");
    assert!(a[0] != a[1] && a[1] != a[2], "each call draws new masks: {a:?}");
}

#[test]
fn bad_batches_are_errors() {
    let (x, y) = blobs(1, 8);
    let mut m = mlp(1);
    assert!(matches!(m.train_on_batch(&x, &y), Err(Error::NotCompiled("train_on_batch"))));
    assert!(matches!(m.test_on_batch(&x, &y), Err(Error::NotCompiled("test_on_batch"))));
    m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let before = weight_bits(m.network());
    let e = m.train_on_batch(&x, &y.narrow(0, 0, 5).unwrap()).unwrap_err().to_string();
    assert!(e.contains("train_on_batch") && e.contains("8") && e.contains("5"), "{e}");
    let w = Tensor::ones([5], DType::F32, &Device::Cpu).unwrap();
    let e = m.train_on_batch_weighted(&x, &y, &w).unwrap_err().to_string();
    assert!(e.contains("sample_weight must have shape [8]") && e.contains("[5]"), "{e}");
    let e = m.test_on_batch_weighted(&x, &y, &w).unwrap_err().to_string();
    assert!(e.contains("test_on_batch") && e.contains("[8]"), "{e}");
    let e = m.predict_on_batch(&Tensor::zeros([0, 2], DType::F32, &Device::Cpu).unwrap()).unwrap_err().to_string();
    assert!(e.contains("no samples"), "{e}");
    assert_eq!(weight_bits(m.network()), before, "a refused batch trains nothing");
}
