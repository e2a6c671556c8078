//! `compile` with a loss's `reduction` against Keras 3.15.1 (TensorFlow backend;
//! fixtures/loss_reduction_fit_fixtures.json, written by
//! fixtures/make_loss_reduction_fit_fixtures.py): two SGD steps of a Dense model (batches of 3
//! and 2) under "sum", "none" (trained on the sum, logged as the mean, as TensorFlow's trainer
//! does) and "mean_with_sample_weight", with and without sample weights, for mean squared error
//! and a softmax head's sparse categorical cross-entropy (the fused path): the logged loss, the
//! weights after and `evaluate`'s loss.

use keel_nn::{Activation, Dense, Loss, Network, Reduction};
use keel_optim::SGD;
use keel_tensor::Tensor;
use keel_train::{Fit, KerasModel, NO_METRICS};
use serde_json::Value;

fn tensor_of(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data: Vec<f32> = v["data"].as_array().unwrap().iter().map(|d| d.as_f64().unwrap() as f32).collect();
    Tensor::from_vec(data, shape).unwrap()
}

/// `|a - b| / (1 + |b|)`.
fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / (1.0 + b.abs())
}

#[test]
fn fit_with_a_reduction_matches_keras() {
    let fx: Value = serde_json::from_str(include_str!("fixtures/loss_reduction_fit_fixtures.json")).unwrap();
    let x = tensor_of(&fx["x"]);
    let y_reg = tensor_of(&fx["y_reg"]);
    let labels: Vec<i64> = fx["y_cls"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    let y_cls = Tensor::from_vec(labels, 5).unwrap();
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    let (mut worst_log, mut worst_weight) = (0.0f64, 0.0f64);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let reduction = Reduction::from_name(c["reduction"].as_str().unwrap()).unwrap();
        let (loss, y, act) = match c["loss"].as_str().unwrap() {
            "mse" => (Loss::MeanSquaredError.reduction(reduction), &y_reg, Activation::Linear),
            _ => (Loss::SparseCategoricalCrossentropy.reduction(reduction), &y_cls, Activation::Softmax),
        };
        let mut net = keel_nn::Sequential::new();
        net.add(Dense::new(c["units"].as_u64().unwrap() as usize).activation(act).input_shape([3]));
        net.build(&[vec![3]]).unwrap();
        let start = c["start"].as_array().unwrap();
        let weights = net.layers()[0].weights();
        assert_eq!(weights.len(), 2, "{name}");
        for (w, v) in weights.iter().zip(start) {
            w.param.assign(&tensor_of(v)).unwrap();
        }
        let mut model = KerasModel::from_network(net);
        model.compile(SGD::new(0.05), loss, NO_METRICS).unwrap();
        let sw = c.get("sample_weight").filter(|w| !w.is_null()).map(tensor_of);
        let mut cfg = Fit::new().batch_size(3).epochs(1).shuffle(false).verbose(0);
        if let Some(w) = &sw {
            cfg = cfg.sample_weight(w);
        }
        let h = model.fit(&x, y, cfg).unwrap();
        let logged = h.last("loss").unwrap();
        let d = rel(logged, c["logged_loss"].as_f64().unwrap());
        assert!(d < 1e-6, "{name}: logged loss {logged} vs keras {}", c["logged_loss"]);
        worst_log = worst_log.max(d);
        for (w, v) in model.network().layers()[0].weights().iter().zip(c["after"].as_array().unwrap()) {
            let (ours, want) = (w.param.value().to_vec::<f32>().unwrap(), tensor_of(v).to_vec::<f32>().unwrap());
            for (a, b) in ours.iter().zip(&want) {
                let d = rel(f64::from(*a), f64::from(*b));
                assert!(d < 1e-6, "{name} {}: {a} vs keras {b}", w.name);
                worst_weight = worst_weight.max(d);
            }
        }
        let ev = match &sw {
            Some(w) => model.evaluate_weighted(&x, y, w, 3).unwrap(),
            None => model.evaluate_all(&x, y, 3).unwrap(),
        };
        assert_eq!(ev[0].0, "loss");
        let d = rel(ev[0].1, c["evaluate_loss"].as_f64().unwrap());
        assert!(d < 1e-6, "{name}: evaluate loss {} vs keras {}", ev[0].1, c["evaluate_loss"]);
        worst_log = worst_log.max(d);
    }
    println!("{} fits: max relative difference, losses {worst_log:.3e}, weights {worst_weight:.3e}", cases.len());
}
