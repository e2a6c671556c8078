//! Keras's `dropout` / `recurrent_dropout` of SimpleRNN, LSTM, GRU and Bidirectional through
//! the registry and `fit`: configs Keras 3 wrote with dropout load and give Keras's inference
//! outputs (fixtures/rnn_dropout_fixtures.json, written by
//! fixtures/make_rnn_dropout_fixtures.py), the rates round-trip through saved models, and a
//! model with dropout trains deterministically given the fit seed (`stateful` layers are
//! tested in rnn_stateful.rs). Run with `--nocapture` for the table of max abs differences.

mod common;

use common::{bits, test_dir, weight_bits};
use keel_autograd::Var;
use keel_nn::{
    Activation, Bidirectional, Cell, Ctx, Dense, Embedding, GRUCell, LSTMCell, Loss, Network, Recurrent,
    RecurrentConfig, RecurrentDropoutMasks, RecurrentWeights, SimpleRNN, SimpleRNNCell, GRU, LSTM,
};
use keel_optim::Adam;
use keel_tensor::rng::Rng;
use keel_tensor::Tensor;
use keel_train::{layer_from_config, load_model, Fit, MetricSpec, Sequential};
use serde_json::Value;
use std::sync::OnceLock;

fn fixture() -> &'static Value {
    static F: OnceLock<Value> = OnceLock::new();
    F.get_or_init(|| serde_json::from_str(include_str!("fixtures/rnn_dropout_fixtures.json")).unwrap())
}

fn tensor_of(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data: Vec<f32> = v["data"].as_array().unwrap().iter().map(|d| d.to_string().parse().unwrap()).collect();
    Tensor::from_vec(data, shape).unwrap()
}

fn case(name: &str) -> &'static Value {
    fixture()["cases"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()
}

#[test]
fn keras_configs_with_dropout_load_and_match_keras_inference() {
    for c in fixture()["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let x = tensor_of(&c["x"]);
        let mut l = layer_from_config(c["class_name"].as_str().unwrap(), &c["config"])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        l.build(&x.dims()[1..], &mut Rng::new(0)).unwrap();
        // the rates Keras wrote are the layer's (the wrapped layer's, for Bidirectional)
        let (cfg, inner) = (l.config(), &c["config"]);
        let (ours, keras) = match cfg.get("layer") {
            Some(layer) => (layer["config"].clone(), &inner["layer"]["config"]),
            None => (cfg.clone(), inner),
        };
        for key in ["dropout", "recurrent_dropout"] {
            assert_eq!(ours[key], keras[key], "{name}: {key}");
        }
        let ws = l.weights();
        let fx = c["weights"].as_array().unwrap();
        assert_eq!(ws.len(), fx.len(), "{name}: weight count");
        for (w, v) in ws.iter().zip(fx) {
            w.param.assign(&tensor_of(v)).unwrap_or_else(|e| panic!("{name} {}: {e}", w.name));
        }
        let y = l.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap().into_value();
        let want = tensor_of(&c["y"]);
        assert_eq!(y.dims(), want.dims(), "{name}: shape");
        let (g, w) = (y.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
        let d = g.iter().zip(&w).map(|(a, b)| f64::from((a - b).abs())).fold(0.0, f64::max);
        println!("{name:30} inference max |keel - keras| {d:.1e}");
        assert!(d <= 2e-6, "{name}: inference differs from Keras by {d}");
    }
}

#[test]
fn a_rate_keras_would_clip_is_refused() {
    // a rate Keras would clip to 1 (no dropout there) is refused here rather than guessed
    let mut cfg = case("lstm_dropout")["config"].clone();
    cfg["dropout"] = serde_json::json!(1.0);
    let mut l = layer_from_config("LSTM", &cfg).unwrap();
    assert!(l.build(&[5, 3], &mut Rng::new(0)).unwrap_err().to_string().contains("dropout"));
}

fn tokens() -> (Tensor, Tensor) {
    common::token_task(5, 10, &[64, 7])
}

fn dropout_model() -> Sequential {
    let mut m = Sequential::with_seed(5);
    m.add(Embedding::new(10, 8).input_shape([7]));
    m.add(Bidirectional::new(LSTM::new(6).return_sequences(true).dropout(0.2).recurrent_dropout(0.2)));
    m.add(GRU::new(6).return_sequences(true).dropout(0.1).recurrent_dropout(0.1));
    m.add(SimpleRNN::new(4).dropout(0.1));
    m.add(Dense::new(1).activation(Activation::Sigmoid));
    m.compile(Adam::new(0.02), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    m
}

#[test]
fn a_model_with_recurrent_dropout_trains_deterministically_given_the_seed() {
    let (x, y) = tokens();
    let mut a = dropout_model();
    let ha = a.fit(&x, &y, Fit::new().epochs(12).batch_size(16).seed(3).verbose(0)).unwrap();
    let loss = ha.get("loss").unwrap();
    assert!(loss[loss.len() - 1] < 0.7 * loss[0], "loss did not fall: {loss:?}");
    // the same fit seed: the same masks, so the same weights bit for bit
    let mut b = dropout_model();
    let hb = b.fit(&x, &y, Fit::new().epochs(12).batch_size(16).seed(3).verbose(0)).unwrap();
    assert_eq!(hb.get("loss").unwrap(), loss);
    assert_eq!(weight_bits(a.network()), weight_bits(b.network()));
    // another fit seed draws other masks (and another shuffle)
    let mut c = dropout_model();
    c.fit(&x, &y, Fit::new().epochs(1).batch_size(16).seed(4).verbose(0)).unwrap();
    let mut d = dropout_model();
    d.fit(&x, &y, Fit::new().epochs(1).batch_size(16).seed(3).verbose(0)).unwrap();
    assert_ne!(weight_bits(c.network()), weight_bits(d.network()));
    // predict is inference: no dropout, the same output twice
    assert_eq!(bits(&a.predict(&x, 16).unwrap()), bits(&a.predict(&x, 64).unwrap()));
}

#[test]
fn dropout_rates_round_trip_through_saved_models() {
    let dir = test_dir("rnn_dropout");
    let (x, _) = tokens();
    let m = dropout_model();
    let cfg = m.config();
    let text = cfg.to_string();
    assert!(text.contains("\"recurrent_dropout\":0.2") && text.contains("\"dropout\":0.1"), "{text}");
    let path = dir.join("rnn.keel");
    m.save(&path).unwrap();
    let loaded = load_model(&path).unwrap();
    assert_eq!(loaded.config(), cfg);
    assert_eq!(bits(&loaded.predict(&x, 16).unwrap()), bits(&m.predict(&x, 16).unwrap()));
}

/// The fixture's training call of a plain recurrent layer: Keras's output with the masks the
/// fixture put in the cell's cache, against keel's with the same masks.
fn training_with_keras_masks<C: Cell>(c: &Value) -> f64 {
    let name = c["name"].as_str().unwrap();
    let cfg: RecurrentConfig<C> = serde_json::from_value(c["config"].clone()).unwrap();
    let layer = Recurrent::from_config(cfg);
    let ws: Vec<Var> = c["weights"].as_array().unwrap().iter().map(|v| Var::constant(tensor_of(v))).collect();
    let w = RecurrentWeights { kernel: ws[0].clone(), recurrent_kernel: ws[1].clone(), bias: ws.get(2).cloned() };
    let t = &c["train"];
    let masks = |key: &str| t[key].as_array().unwrap().iter().map(tensor_of).collect::<Vec<_>>();
    let drop = RecurrentDropoutMasks { input: masks("input_masks"), recurrent: masks("recurrent_masks") };
    let x = Var::constant(tensor_of(&c["x"]));
    let (y, _) = layer.forward_with_weights_dropout(&x, &w, None, None, &drop).unwrap();
    let want = tensor_of(&t["y"]);
    assert_eq!(y.dims(), want.dims(), "{name}: shape");
    // the masks matter: Keras's training output is not its inference output
    assert_ne!(want.to_vec::<f32>().unwrap(), tensor_of(&c["y"]).to_vec::<f32>().unwrap(), "{name}: masks unused");
    let (g, w) = (y.value().to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
    let d = g.iter().zip(&w).map(|(a, b)| f64::from((a - b).abs())).fold(0.0, f64::max);
    println!("{name:30} training (Keras's masks) max |keel - keras| {d:.1e}");
    d
}

#[test]
fn training_with_the_same_masks_matches_keras() {
    for c in fixture()["cases"].as_array().unwrap().iter().filter(|c| c.get("train").is_some()) {
        let d = match c["class_name"].as_str().unwrap() {
            "LSTM" => training_with_keras_masks::<LSTMCell>(c),
            "GRU" => training_with_keras_masks::<GRUCell>(c),
            "SimpleRNN" => training_with_keras_masks::<SimpleRNNCell>(c),
            other => panic!("no recurrent class {other}"),
        };
        assert!(d <= 2e-6, "{}: training output differs from Keras by {d}", c["name"]);
    }
}
