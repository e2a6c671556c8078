//! Weight constraints on the depthwise/separable convolutions, the recurrent layers
//! (SimpleRNN, LSTM, GRU, ConvLSTM1D/2D, Bidirectional), the normalization layers and PReLU,
//! against Keras 3.15.1 (the "layers" of nn/tests/fixtures/constraints_fixtures.json, written
//! by nn/tests/fixtures/make_constraints_fixtures.py): each layer loads from the config Keras
//! wrote, takes Keras's weights, applies its constraints as `fit` does after a step, and ends
//! with Keras's weights; its saved config has Keras's constraint keys and loads back.

use keel_nn::{Constraint, Layer};
use keel_tensor::{rng::Rng, Tensor};
use serde_json::Value;
use std::collections::BTreeMap;

fn tensor_of(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data: Vec<f32> = v["data"].as_array().unwrap().iter().map(|d| d.as_f64().unwrap() as f32).collect();
    Tensor::from_vec(data, shape).unwrap()
}

/// The non-null `*_constraint` settings of a layer config (a wrapper's: its wrapped layer's).
fn constraints_in(cfg: &Value) -> BTreeMap<String, Constraint> {
    let cfg = cfg.get("layer").map_or(cfg, |l| &l["config"]);
    let map = cfg.as_object().unwrap();
    map.iter()
        .filter(|(k, v)| k.ends_with("_constraint") && !v.is_null())
        .map(|(k, v)| (k.clone(), serde_json::from_value(v.clone()).unwrap()))
        .collect()
}

/// `class` from `cfg`, built for per-sample input shapes `shapes` (one per input).
fn built(class: &str, cfg: &Value, shapes: &[Vec<usize>]) -> Box<dyn Layer> {
    let mut layer = keel_train::layer_from_config(class, cfg).unwrap();
    match shapes {
        [one] => layer.build(one, &mut Rng::new(0)).unwrap(),
        _ => layer.build_multi(shapes, &mut Rng::new(0)).unwrap(),
    }
    layer
}

fn dims(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect()
}

/// A case's per-sample input shapes: `input_shape`, or `input_shapes` (several inputs).
fn input_shapes(c: &Value) -> Vec<Vec<usize>> {
    match c.get("input_shapes") {
        Some(v) => v.as_array().unwrap().iter().map(dims).collect(),
        None => vec![dims(&c["input_shape"])],
    }
}

#[test]
fn layer_constraints_match_keras_and_round_trip() {
    let v: Value = serde_json::from_str(include_str!("../../nn/tests/fixtures/constraints_fixtures.json")).unwrap();
    let cases = v["layers"].as_array().unwrap();
    assert!(cases.len() >= 18);
    assert!(cases.iter().any(|c| c["class_name"] == "MultiHeadAttention"));
    let (mut worst, mut values) = (0f64, 0usize);
    for c in cases {
        let class = c["class_name"].as_str().unwrap();
        let cfg = &c["config"];
        let keras = constraints_in(cfg);
        assert!(!keras.is_empty(), "{class}");
        let inner = cfg.get("layer").map_or(cfg, |l| &l["config"]);
        let inner_class = cfg.get("layer").map_or(class, |l| l["class_name"].as_str().unwrap());
        // every constraint Keras wrote is one keel applies: no warning
        assert_eq!(keel_train::unapplied_settings(inner_class, inner), Vec::<String>::new(), "{class}");
        let shape = input_shapes(c);
        let layer = built(class, cfg, &shape);
        let weights = layer.weights();
        let want = c["weights"].as_array().unwrap();
        assert_eq!(weights.len(), want.len(), "{class}");
        for (w, k) in weights.iter().zip(want) {
            let kname = k["name"].as_str().unwrap().rsplit('/').next().unwrap();
            assert_eq!(w.name.rsplit('/').next().unwrap(), kname, "{class}");
            w.param.assign(&tensor_of(&k["input"])).unwrap();
        }
        // one pair per constrained weight (both directions of a Bidirectional, the four
        // projections of a MultiHeadAttention)
        let pairs = layer.constraints();
        let copies = match class {
            "Bidirectional" => 2,
            "MultiHeadAttention" => 4,
            _ => 1,
        };
        assert_eq!(pairs.len(), keras.len() * copies, "{class}");
        // what fit does after every optimizer step
        for (p, con) in &pairs {
            p.assign(&con.apply(&p.value()).unwrap()).unwrap();
        }
        for (w, k) in weights.iter().zip(want) {
            let got = w.param.value().to_vec_f64().unwrap();
            let exp = tensor_of(&k["output"]).to_vec_f64().unwrap();
            assert_eq!(w.param.value().dims(), tensor_of(&k["output"]).dims(), "{class} {}", w.name);
            for (g, e) in got.iter().zip(&exp) {
                let d = (g - e).abs();
                worst = worst.max(d);
                values += 1;
                assert!(d <= 2e-6 * (1.0 + e.abs()), "{class} {}: {g} vs keras {e}", w.name);
            }
        }
        // keel's config has Keras's constraint keys with the same constraints, and loads back
        let saved = layer.config();
        assert_eq!(constraints_in(&saved), keras, "{class}");
        let again = built(class, &saved, &shape);
        let cons = |l: &dyn Layer| l.constraints().into_iter().map(|(_, c)| c).collect::<Vec<_>>();
        assert_eq!(cons(again.as_ref()), cons(layer.as_ref()), "{class}");
    }
    eprintln!("layer constraints vs keras: {} layers, {values} values, max abs diff {worst:e}", cases.len());
}

#[test]
fn unsupported_constraint_classes_load_with_a_warning_and_are_dropped() {
    let radial = serde_json::json!({"module": null, "class_name": "Radial", "config": {}, "registered_name": "Radial"});
    let nonneg = serde_json::json!({"class_name": "NonNeg", "config": {}});
    let mut lstm = keel_nn::LSTM::new(3).with_name("l").config();
    lstm["recurrent_constraint"] = radial.clone();
    lstm["bias_constraint"] = nonneg.clone();
    assert_eq!(keel_train::unapplied_settings("LSTM", &lstm), vec!["recurrent_constraint (Radial)"]);
    let layer = built("LSTM", &lstm, &[vec![4, 2]]);
    assert_eq!(layer.config()["recurrent_constraint"], Value::Null);
    assert_eq!(layer.constraints().len(), 1);
    // inside a Bidirectional too
    let bi = serde_json::json!({"name": "bi", "merge_mode": "concat",
        "layer": {"class_name": "LSTM", "config": lstm}});
    let layer = built("Bidirectional", &bi, &[vec![4, 2]]);
    assert_eq!(layer.constraints().len(), 2);
    let mut bn = keel_nn::BatchNormalization::new().config();
    bn["gamma_constraint"] = radial;
    bn["beta_constraint"] = nonneg;
    let layer = built("BatchNormalization", &bn, &[vec![3]]);
    let pairs = layer.constraints();
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].1, Constraint::non_neg());
}

/// `fit` applies the constraints of a recurrent layer, of a Bidirectional's wrapped layer and
/// of BatchNormalization after every step: the trained weights obey them.
#[test]
fn fit_applies_recurrent_and_normalization_constraints() {
    use keel_nn::{Activation, BatchNormalization, Bidirectional, Dense, Loss, Network, GRU, LSTM};
    use keel_optim::Adam;
    use keel_tensor::{DType, Device};
    use keel_train::{Fit, Sequential};
    let x = Tensor::rand_uniform(3, -1.0, 1.0, vec![32, 4, 3], DType::F32, &Device::Cpu).unwrap();
    let y = x.mean(&[1, 2], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::F32).unwrap();
    let y = y.reshape(vec![32, 1]).unwrap();
    let mut m = Sequential::with_seed(5);
    m.add(
        LSTM::new(4)
            .return_sequences(true)
            .kernel_constraint(Constraint::non_neg())
            .recurrent_constraint(Constraint::max_norm(0.5, 0))
            .input_shape([4, 3]),
    );
    m.add(
        BatchNormalization::new().gamma_constraint(Constraint::max_norm(0.7, 0)).beta_constraint(Constraint::non_neg()),
    );
    m.add(Bidirectional::new(GRU::new(3).bias_constraint(Constraint::non_neg())));
    m.add(Dense::new(1).activation(Activation::Sigmoid));
    m.compile(Adam::new(0.05), Loss::BinaryCrossentropy, keel_train::NO_METRICS).unwrap();
    m.fit(&x, &y, Fit::new().epochs(5).batch_size(8).seed(1).verbose(0)).unwrap();
    let weights = m.named_weights();
    let value = |name: &str| {
        let w = weights.iter().find(|w| w.name.ends_with(name)).unwrap_or_else(|| panic!("no {name}"));
        w.param.value()
    };
    let min = |t: Tensor| t.to_vec_f64().unwrap().into_iter().fold(f64::INFINITY, f64::min);
    assert!(min(value("lstm/kernel")) >= 0.0);
    let norms = value("lstm/recurrent_kernel").square().unwrap().sum(&[0], false).unwrap().sqrt().unwrap();
    assert!(norms.to_vec_f64().unwrap().iter().all(|&n| n <= 0.5 + 1e-6), "{norms:?}");
    let gamma = value("gamma").square().unwrap().sum(&[0], false).unwrap().sqrt().unwrap();
    assert!(gamma.to_vec_f64().unwrap()[0] <= 0.7 + 1e-6);
    assert!(min(value("beta")) >= 0.0);
    let gru_biases: Vec<_> =
        weights.iter().filter(|w| w.name.starts_with("bidirectional/") && w.name.ends_with("/bias")).collect();
    assert_eq!(gru_biases.len(), 2);
    assert!(gru_biases.iter().all(|w| min(w.param.value()) >= 0.0));
}

/// One SGD(0.1) step of a model `[query, value] -> MultiHeadAttention` with constraints on
/// its kernels and biases, MSE loss: `fit` ends with Keras 3.15.1's weights (the "sgd_steps"
/// of nn/tests/fixtures/constraints_fixtures.json: the gradient step, then each projection's
/// constraint).
#[test]
fn one_sgd_step_of_multi_head_attention_with_constraints_matches_keras() {
    use keel_nn::{Input, LayerExt, Loss, Model, MultiHeadAttention, MultiHeadAttentionConfig, Network};
    use keel_optim::SGD;
    use keel_train::{Fit, KerasModel};
    let v: Value = serde_json::from_str(include_str!("../../nn/tests/fixtures/constraints_fixtures.json")).unwrap();
    let cases = v["sgd_steps"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    let mut worst = 0f64;
    for c in cases {
        let cfg: MultiHeadAttentionConfig = serde_json::from_value(c["config"].clone()).unwrap();
        assert!(cfg.kernel_constraint.is_some() && cfg.bias_constraint.is_some());
        let (xq, xv, y) = (tensor_of(&c["query"]), tensor_of(&c["value"]), tensor_of(&c["target"]));
        let (q, val) = (Input::new(xq.dims()[1..].to_vec()), Input::new(xv.dims()[1..].to_vec()));
        let out = MultiHeadAttention::from_config(cfg).with_name("mha").call_multi(&[q.clone(), val.clone()]).unwrap();
        let mut m = KerasModel::from_network(Model::with_seed(&[q, val], &[out], 1).unwrap());
        m.compile(SGD::new(c["learning_rate"].as_f64().unwrap()), Loss::MeanSquaredError, keel_train::NO_METRICS)
            .unwrap();
        let weights = m.network().named_weights();
        let want = c["weights"].as_array().unwrap();
        assert_eq!(weights.len(), want.len());
        for (w, k) in weights.iter().zip(want) {
            assert!(k["name"].as_str().unwrap().ends_with(w.name.trim_start_matches("mha/")), "{}", w.name);
            w.param.assign(&tensor_of(&k["input"])).unwrap();
        }
        let n = xq.dims()[0];
        m.fit([&xq, &xv], &y, Fit::new().epochs(1).batch_size(n).shuffle(false).verbose(0)).unwrap();
        for (w, k) in weights.iter().zip(want) {
            let got = w.param.value().to_vec_f64().unwrap();
            let exp = tensor_of(&k["output"]).to_vec_f64().unwrap();
            for (g, e) in got.iter().zip(&exp) {
                let d = (g - e).abs();
                worst = worst.max(d);
                assert!(d <= 1e-5 * (1.0 + e.abs()), "{}: {g} vs keras {e}", w.name);
            }
        }
    }
    eprintln!("MultiHeadAttention SGD step with constraints vs keras: max abs diff {worst:e}");
}
