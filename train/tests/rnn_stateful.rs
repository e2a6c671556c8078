//! Keras's `stateful=True` on SimpleRNN, LSTM, GRU and Bidirectional: configs Keras 3 wrote
//! load through the registry, carry their states from batch to batch, and reset as Keras's
//! (fixtures/rnn_stateful_fixtures.json, written by fixtures/make_rnn_stateful_fixtures.py);
//! a tiny stateful model trained with `shuffle(false)` matches Keras's `fit` (no reset
//! between epochs) and the `predict` after it; `stateful` round-trips through saved models;
//! a batch of another size is an error until the states are reset. Run with `--nocapture`
//! for the table of max abs differences.

mod common;

use common::{bits, test_dir};
use keel_autograd::Var;
use keel_nn::{
    Bidirectional, Cell, Ctx, Dense, GRUCell, LSTMCell, Layer, Loss, Network, Recurrent, RecurrentConfig,
    SimpleRNNCell, GRU, LSTM,
};
use keel_optim::Sgd;
use keel_tensor::rng::Rng;
use keel_tensor::Tensor;
use keel_train::{layer_from_config, load_model, Fit, MetricSpec, Sequential};
use serde_json::Value;
use std::sync::OnceLock;

/// No metrics for `compile`.
const NO_METRICS: &[MetricSpec] = &[];

/// The largest difference allowed from Keras.
const TOL: f64 = 1e-5;

fn fixture() -> &'static Value {
    static F: OnceLock<Value> = OnceLock::new();
    F.get_or_init(|| serde_json::from_str(include_str!("fixtures/rnn_stateful_fixtures.json")).unwrap())
}

fn tensor_of(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data: Vec<f32> = v["data"].as_array().unwrap().iter().map(|d| d.to_string().parse().unwrap()).collect();
    Tensor::from_vec(data, shape).unwrap()
}

fn max_diff(got: &Tensor, want: &Tensor, what: &str) -> f64 {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (g, w) = (got.to_vec_f64().unwrap(), want.to_vec_f64().unwrap());
    g.iter().zip(&w).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
}

fn set_weights(l: &dyn Layer, ws: &Value, what: &str) {
    let (ours, fx) = (l.weights(), ws.as_array().unwrap());
    assert_eq!(ours.len(), fx.len(), "{what}: weight count");
    for (w, v) in ours.iter().zip(fx) {
        w.param.assign(&tensor_of(v)).unwrap_or_else(|e| panic!("{what} {}: {e}", w.name));
    }
}

/// Runs a layer case's calls on `l` (a reset where the fixture has one); `states` reads the
/// layer's stored states, when it can. Returns the largest difference from Keras.
fn run_calls(c: &Value, l: &dyn Layer, states: &dyn Fn() -> Option<Vec<Tensor>>) -> f64 {
    let name = c["name"].as_str().unwrap();
    let mut worst = 0.0f64;
    for (i, call) in c["calls"].as_array().unwrap().iter().enumerate() {
        let what = format!("{name} call {i}");
        if call.get("reset").is_some() {
            l.reset_state();
            // Keras's states are zeros now; keel forgets them (the next batch starts from zeros)
            for s in call["states"].as_array().unwrap() {
                assert!(tensor_of(s).to_vec_f64().unwrap().iter().all(|v| *v == 0.0), "{what}");
            }
            assert!(states().is_none(), "{what}: states kept after reset_state");
            continue;
        }
        let x = Var::constant(tensor_of(&call["x"]));
        let mask = call.get("mask").map(tensor_of);
        let y = l.forward_logits_masked(&[x], &[mask], &mut Ctx::inference()).unwrap_or_else(|e| panic!("{what}: {e}"));
        worst = worst.max(max_diff(y.value(), &tensor_of(&call["y"]), &what));
        if let Some(ours) = states() {
            let want = call["states"].as_array().unwrap();
            assert_eq!(ours.len(), want.len(), "{what}: state count");
            for (s, w) in ours.iter().zip(want) {
                worst = worst.max(max_diff(s, &tensor_of(w), &format!("{what} states")));
            }
        }
    }
    worst
}

/// A plain recurrent case as a `Recurrent<C>` from Keras's config (to read its states).
fn with_states<C: Cell>(c: &Value) -> f64 {
    let cfg: RecurrentConfig<C> = serde_json::from_value(c["config"].clone()).unwrap();
    assert!(cfg.stateful);
    let mut l = Recurrent::from_config(cfg).with_name(c["name"].as_str().unwrap());
    let x = tensor_of(&c["calls"][0]["x"]);
    l.build(&x.dims()[1..], &mut Rng::new(0)).unwrap();
    set_weights(&l, &c["weights"], c["name"].as_str().unwrap());
    assert!(l.states().is_none());
    run_calls(c, &l, &|| l.states())
}

#[test]
fn stateful_layers_match_keras_across_batches_and_resets() {
    for c in fixture()["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let class = c["class_name"].as_str().unwrap();
        // through the registry, as a loaded model has it
        let mut l = layer_from_config(class, &c["config"]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let x = tensor_of(&c["calls"][0]["x"]);
        l.build(&x.dims()[1..], &mut Rng::new(0)).unwrap();
        set_weights(l.as_ref(), &c["weights"], name);
        let d = run_calls(c, l.as_ref(), &|| None);
        println!("{name:24} outputs max |keel - keras| {d:.1e}");
        assert!(d <= TOL, "{name}: differs from Keras by {d}");
        // the states themselves
        let d = match class {
            "LSTM" => with_states::<LSTMCell>(c),
            "GRU" => with_states::<GRUCell>(c),
            "SimpleRNN" => with_states::<SimpleRNNCell>(c),
            _ => continue,
        };
        println!("{name:24} outputs and states max |keel - keras| {d:.1e}");
        assert!(d <= TOL, "{name}: states differ from Keras by {d}");
    }
}

/// The fixture's `fit` model: a stateful LSTM(4) and a Dense(1) with Keras's weights.
fn fit_model(f: &Value) -> Sequential {
    let mut m = Sequential::with_seed(1);
    m.add(LSTM::new(4).stateful(true).with_name("lstm").input_shape([3, 2]));
    m.add(Dense::new(1).with_name("dense"));
    m.compile(Sgd::new(f["learning_rate"].as_f64().unwrap()), Loss::MeanSquaredError, NO_METRICS).unwrap();
    let fx: Vec<Tensor> = f["weights"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["weights"].as_array().unwrap().iter().map(tensor_of))
        .collect();
    let ws = m.named_weights();
    assert_eq!(ws.len(), fx.len());
    for (w, v) in ws.iter().zip(&fx) {
        w.param.assign(v).unwrap();
    }
    m
}

#[test]
fn fit_with_a_stateful_lstm_matches_keras_without_resets_between_epochs() {
    let f = &fixture()["fit"];
    let (x, y) = (tensor_of(&f["x"]), tensor_of(&f["y"]));
    let b = f["batch_size"].as_u64().unwrap() as usize;
    let mut m = fit_model(f);
    let h = m.fit(&x, &y, Fit::new().epochs(2).batch_size(b).shuffle(false).verbose(0)).unwrap();
    let losses = h.get("loss").unwrap();
    let want: Vec<f64> = f["losses"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let d = losses.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    println!("fit losses {losses:?} vs keras {want:?}: max diff {d:.1e}");
    assert!(d <= TOL, "fit losses {losses:?}, Keras {want:?}");
    let fx: Vec<Tensor> = f["final_weights"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["weights"].as_array().unwrap().iter().map(tensor_of))
        .collect();
    let mut dw = 0.0f64;
    for (w, v) in m.named_weights().iter().zip(&fx) {
        dw = dw.max(max_diff(&w.param.value(), v, &w.name));
    }
    println!("fit final weights max diff {dw:.1e}");
    assert!(dw <= TOL, "final weights differ from Keras by {dw}");
    // predict continues from the states fit left (Keras resets nothing)
    let p = m.predict(&x, b).unwrap();
    let dp = max_diff(&p, &tensor_of(&f["predict"]), "predict after fit");
    println!("predict after fit max diff {dp:.1e}");
    assert!(dp <= TOL, "predict after fit differs from Keras by {dp}");
    // resetting makes predict start over: another output than the one continuing the states
    let again = m.predict(&x, b).unwrap();
    assert_ne!(bits(&again), bits(&p));
    m.reset_state();
    let fresh = m.predict(&x, b).unwrap();
    m.reset_states();
    assert_eq!(bits(&m.predict(&x, b).unwrap()), bits(&fresh), "reset_states is reset_state");
    // and the same training from the same start gives the same bits
    let mut m2 = fit_model(f);
    let h2 = m2.fit(&x, &y, Fit::new().epochs(2).batch_size(b).shuffle(false).verbose(0)).unwrap();
    assert_eq!(h2.get("loss").unwrap(), losses);
    assert_eq!(bits(&m2.predict(&x, b).unwrap()), bits(&p));
}

#[test]
fn a_batch_of_another_size_is_an_error_until_reset() {
    let mut l = GRU::new(3).stateful(true).with_name("gru_s");
    l.build(&[4, 2], &mut Rng::new(0)).unwrap();
    let x = |b: usize| {
        Var::constant(
            Tensor::rand_uniform(3, -1.0, 1.0, vec![b, 4, 2], keel_tensor::DType::F32, &keel_tensor::Device::Cpu)
                .unwrap(),
        )
    };
    l.forward(&x(2), &mut Ctx::inference()).unwrap();
    let e = l.forward(&x(3), &mut Ctx::inference()).unwrap_err().to_string();
    assert!(e.contains("gru_s") && e.contains("GRU") && e.contains('2') && e.contains('3'), "{e}");
    assert!(e.contains("reset_state") && e.contains("batch_size"), "{e}");
    // the failed call left the states alone
    assert_eq!(l.states().unwrap()[0].dims(), [2, 3]);
    l.reset_state();
    l.forward(&x(3), &mut Ctx::inference()).unwrap();
    assert_eq!(l.states().unwrap()[0].dims(), [3, 3]);
    // in a model, and inside Bidirectional, the error names the inner layer
    let mut m = Sequential::with_seed(2);
    m.add(Bidirectional::new(LSTM::new(3).stateful(true).with_name("inner")).input_shape([4, 2]));
    m.compile(Sgd::new(0.1), Loss::MeanSquaredError, NO_METRICS).unwrap();
    m.predict(&x(4).into_value(), 2).unwrap();
    let e = m.predict(&x(3).into_value(), 3).unwrap_err().to_string();
    assert!(e.contains("forward_inner") && e.contains("reset_state"), "{e}");
    m.reset_state();
    m.predict(&x(3).into_value(), 3).unwrap();
    // a layer that is not stateful takes any batch and keeps nothing
    let mut plain = LSTM::new(3);
    plain.build(&[4, 2], &mut Rng::new(0)).unwrap();
    let a = plain.forward(&x(2), &mut Ctx::inference()).unwrap().into_value();
    plain.forward(&x(3), &mut Ctx::inference()).unwrap();
    assert!(plain.states().is_none());
    assert_eq!(bits(&plain.forward(&x(2), &mut Ctx::inference()).unwrap().into_value()), bits(&a));
}

#[test]
fn stateful_round_trips_through_saved_models() {
    let dir = test_dir("rnn_stateful");
    let mut m = Sequential::with_seed(4);
    m.add(LSTM::new(3).stateful(true).return_sequences(true).input_shape([4, 2]));
    m.add(Bidirectional::new(GRU::new(2).stateful(true)));
    m.add(Dense::new(1));
    m.compile(Sgd::new(0.1), Loss::MeanSquaredError, NO_METRICS).unwrap();
    let cfg = m.config();
    assert!(cfg.to_string().contains("\"stateful\":true"), "{cfg}");
    let path = dir.join("stateful.keel");
    m.save(&path).unwrap();
    let loaded = load_model(&path).unwrap();
    assert_eq!(loaded.config(), cfg);
    let x =
        Tensor::rand_uniform(5, -1.0, 1.0, vec![4, 4, 2], keel_tensor::DType::F32, &keel_tensor::Device::Cpu).unwrap();
    // both carry their states: the same outputs batch after batch
    for _ in 0..3 {
        assert_eq!(bits(&loaded.predict(&x, 2).unwrap()), bits(&m.predict(&x, 2).unwrap()));
    }
    // a config without the key (Keras 2 / older keel files) is not stateful
    let mut c = fixture()["cases"][0]["config"].clone();
    c.as_object_mut().unwrap().remove("stateful");
    let l = layer_from_config("SimpleRNN", &c).unwrap();
    assert_eq!(l.config()["stateful"], Value::Bool(false));
}
