//! Recurrent layers and Embedding: shapes and parameter counts (Keras formulas),
//! forward values against real Keras 3 (fixtures/rnn_fixtures.json, written by
//! fixtures/make_rnn_fixtures.py), gradient checks, option semantics, the
//! orthogonal initializer, and a small sequence task learned by hand-written SGD.

use keel_autograd::{gradcheck, Param, Tape, Var};
use keel_nn::prelude::*;
use keel_nn::{Cell, GRUCell, LSTMCell, Recurrent, RecurrentConfig, RecurrentWeights, SimpleRNNCell};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};
use serde_json::Value;
use std::collections::BTreeMap;

// ---------------------------------------------------------------- helpers

fn tensor_of(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data: Vec<f32> = v["data"].as_array().unwrap().iter().map(|d| d.as_f64().unwrap() as f32).collect();
    Tensor::from_vec(data, shape).unwrap()
}

fn fixtures() -> Vec<Value> {
    let text = include_str!("fixtures/rnn_fixtures.json");
    let v: Value = serde_json::from_str(text).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn case(name: &str) -> Value {
    fixtures().into_iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no fixture {name}"))
}

fn assert_close(got: &Tensor, want: &Tensor, tol: f32, what: &str) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (g, w) = (got.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!((a - b).abs() <= tol, "{what}[{i}]: keel {a} vs keras {b}");
    }
}

/// A keel layer configured like the fixture's Keras layer: the Keras options are
/// merged into our serialized config (which also checks the config's serde).
fn rnn_from_case<C: Cell>(c: &Value) -> Recurrent<C> {
    let units = c["units"].as_u64().unwrap() as usize;
    let mut cfg = serde_json::to_value(Recurrent::<C>::new(units).get_config()).unwrap();
    for (k, v) in c["options"].as_object().unwrap() {
        assert!(cfg.get(k).is_some(), "keel config has no option {k}");
        cfg[k] = v.clone();
    }
    let cfg: RecurrentConfig<C> = serde_json::from_value(cfg).unwrap();
    Recurrent::from_config(cfg)
}

fn load_weights(layer: &dyn Layer, c: &Value) {
    let ws = layer.weights();
    let fx = c["weights"].as_object().unwrap();
    assert_eq!(ws.len(), fx.len(), "{}: weight count", c["name"]);
    for w in ws {
        let t = tensor_of(&fx[w.name.as_ref()]);
        assert_eq!(w.param.shape(), *t.shape(), "{}: shape of {}", c["name"], w.name);
        w.param.assign(&t).unwrap();
    }
}

fn check_rnn_case<C: Cell>(c: &Value) {
    let mut layer = rnn_from_case::<C>(c);
    let x = tensor_of(&c["x"]);
    layer.build(&x.dims()[1..], &mut Rng::new(0)).unwrap();
    load_weights(&layer, c);
    let (out, states) = layer.forward_with_state(&Var::constant(x.clone()), None, &mut Ctx::inference()).unwrap();
    let want = c["outputs"].as_array().unwrap();
    assert_close(out.value(), &tensor_of(&want[0]), 1e-5, c["name"].as_str().unwrap());
    if layer.get_config().return_state {
        assert_eq!(states.len() + 1, want.len());
        for (i, (s, w)) in states.iter().zip(&want[1..]).enumerate() {
            assert_close(s.value(), &tensor_of(w), 1e-5, &format!("{} state {i}", c["name"]));
        }
    }
    // The plain Layer::forward gives the same output.
    let plain = layer.forward(&Var::constant(x), &mut Ctx::inference()).unwrap();
    assert_close(plain.value(), out.value(), 0.0, "forward vs forward_with_state");
}

fn cases_of(layer: &str) -> Vec<Value> {
    let v: Vec<Value> = fixtures().into_iter().filter(|c| c["layer"] == layer).collect();
    assert!(!v.is_empty());
    v
}

fn f64_rand(seed: u64, shape: &[usize], scale: f64) -> Tensor {
    Tensor::rand_uniform(seed, -scale, scale, shape, DType::F64, &Device::Cpu).unwrap()
}

fn first_param_count(layer: impl Layer + 'static, input: &[usize]) -> (usize, Vec<usize>) {
    let mut m = Sequential::new();
    m.add(layer);
    m.build(&[input.to_vec()]).unwrap();
    (m.count_params(), m.output_shapes().unwrap()[0].clone())
}

// ---------------------------------------------------------------- Keras fixtures

#[test]
fn simple_rnn_matches_keras() {
    for c in cases_of("SimpleRNN") {
        check_rnn_case::<SimpleRNNCell>(&c);
    }
}

#[test]
fn lstm_matches_keras() {
    for c in cases_of("LSTM") {
        check_rnn_case::<LSTMCell>(&c);
    }
}

#[test]
fn gru_matches_keras_reset_after_and_v1() {
    let cases = cases_of("GRU");
    assert!(cases.iter().any(|c| c["options"]["reset_after"] == false));
    for c in cases {
        check_rnn_case::<GRUCell>(&c);
    }
}

fn check_bidi_case<C: Cell>(c: &Value) {
    let mode: MergeMode = serde_json::from_value(c["merge_mode"].clone()).unwrap();
    let mut layer = Bidirectional::new(rnn_from_case::<C>(c)).merge_mode(mode);
    let x = tensor_of(&c["x"]);
    layer.build(&x.dims()[1..], &mut Rng::new(0)).unwrap();
    load_weights(&layer, c);
    let y = layer.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap();
    let want = tensor_of(&c["outputs"][0]);
    assert_close(y.value(), &want, 1e-5, c["name"].as_str().unwrap());
    assert_eq!(layer.output_shape(&x.dims()[1..]).unwrap(), want.dims()[1..].to_vec());
}

#[test]
fn bidirectional_matches_keras() {
    for c in cases_of("Bidirectional") {
        match c["inner"].as_str().unwrap() {
            "LSTM" => check_bidi_case::<LSTMCell>(&c),
            "GRU" => check_bidi_case::<GRUCell>(&c),
            "SimpleRNN" => check_bidi_case::<SimpleRNNCell>(&c),
            other => panic!("unexpected inner layer {other}"),
        }
    }
}

#[test]
fn embedding_matches_keras() {
    let c = case("embedding");
    let shape: Vec<usize> =
        c["ids"]["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data: Vec<i64> = c["ids"]["data"].as_array().unwrap().iter().map(|d| d.as_i64().unwrap()).collect();
    let ids = Tensor::from_vec(data, shape.clone()).unwrap();
    let mut e = Embedding::new(7, 3);
    e.build(&shape[1..], &mut Rng::new(0)).unwrap();
    load_weights(&e, &c);
    let y = e.forward(&Var::constant(ids), &mut Ctx::inference()).unwrap();
    assert_close(y.value(), &tensor_of(&c["outputs"][0]), 0.0, "embedding");
}

#[test]
fn keras_weights_load_through_a_sequential_state_dict() {
    let c = case("lstm_seq");
    let x = tensor_of(&c["x"]);
    let mut m = Sequential::new();
    m.add(LSTM::new(5).return_sequences(true).input_shape(x.dims()[1..].to_vec()));
    let mut map = BTreeMap::new();
    for (k, v) in c["weights"].as_object().unwrap() {
        map.insert(format!("lstm/{k}"), tensor_of(v));
    }
    m.load_state_dict(&map).unwrap();
    let y = m.predict(&[x]).unwrap();
    assert_close(&y[0], &tensor_of(&c["outputs"][0]), 1e-5, "sequential lstm");
}

// ---------------------------------------------------------------- shapes and counts

#[test]
fn parameter_counts_follow_keras_formulas() {
    let (t, f, u) = (10, 3, 8);
    let input = [t, f];
    assert_eq!(first_param_count(SimpleRNN::new(u), &input), (u * (f + u + 1), vec![u]));
    assert_eq!(first_param_count(LSTM::new(u), &input), (4 * u * (f + u + 1), vec![u]));
    assert_eq!(first_param_count(GRU::new(u), &input), (3 * u * (f + u + 2), vec![u]));
    assert_eq!(first_param_count(GRU::new(u).reset_after(false), &input), (3 * u * (f + u + 1), vec![u]));
    assert_eq!(first_param_count(LSTM::new(u).use_bias(false), &input), (4 * u * (f + u), vec![u]));
    assert_eq!(first_param_count(LSTM::new(u).return_sequences(true), &input), (4 * u * (f + u + 1), vec![t, u]));
    assert_eq!(first_param_count(GRU::new(u).return_sequences(true), &input).1, vec![t, u]);
    assert_eq!(first_param_count(SimpleRNN::new(u).return_sequences(true), &input).1, vec![t, u]);
    assert_eq!(first_param_count(Bidirectional::new(LSTM::new(u)), &input), (2 * 4 * u * (f + u + 1), vec![2 * u]));
    assert_eq!(first_param_count(Bidirectional::new(GRU::new(u).return_sequences(true)), &input).1, vec![t, 2 * u]);
    assert_eq!(
        first_param_count(Bidirectional::new(GRU::new(u).return_sequences(true)).merge_mode(MergeMode::Sum), &input).1,
        vec![t, u]
    );
    assert_eq!(first_param_count(Embedding::new(100, 16), &[t]), (1600, vec![t, 16]));
}

#[test]
fn forward_shapes_match_output_shape() {
    let (b, t, f, u) = (3, 6, 4, 5);
    let x = Var::constant(Tensor::rand_normal(1, 0.0, 1.0, [b, t, f], DType::F32, &Device::Cpu).unwrap());
    let mut rng = Rng::new(3);
    let mut layers: Vec<Box<dyn Layer>> = vec![
        Box::new(SimpleRNN::new(u)),
        Box::new(LSTM::new(u).return_sequences(true)),
        Box::new(GRU::new(u).go_backwards(true)),
        Box::new(Bidirectional::new(LSTM::new(u).return_sequences(true))),
        Box::new(Bidirectional::new(GRU::new(u)).merge_mode(MergeMode::Ave)),
    ];
    for l in &mut layers {
        l.build(&[t, f], &mut rng).unwrap();
        let y = l.forward(&x, &mut Ctx::inference()).unwrap();
        let mut want = vec![b];
        want.extend(l.output_shape(&[t, f]).unwrap());
        assert_eq!(y.dims(), want.as_slice(), "{}", l.class_name());
    }
}

#[test]
fn summary_of_a_text_model() {
    let mut m = Sequential::new();
    m.add(Embedding::new(1000, 16).input_shape([20]));
    m.add(Bidirectional::new(LSTM::new(32).return_sequences(true)));
    m.add(GRU::new(8));
    m.add(Dense::new(1).activation(Activation::Sigmoid));
    let s = m.summary();
    assert!(s.contains("embedding (Embedding)"), "{s}");
    assert!(s.contains("bidirectional (Bidirectiona"), "{s}");
    assert!(s.contains("(None, 20, 64)"), "{s}");
    assert!(s.contains("gru (GRU)"), "{s}");
    let want = 1000 * 16 + 2 * 4 * 32 * (16 + 32 + 1) + 3 * 8 * (64 + 8 + 2) + 9;
    assert_eq!(m.count_params(), want);
    let names: Vec<String> = m.named_weights().into_iter().map(|w| w.name).collect();
    assert_eq!(
        names[..5],
        [
            "embedding/embeddings",
            "bidirectional/forward/kernel",
            "bidirectional/forward/recurrent_kernel",
            "bidirectional/forward/bias",
            "bidirectional/backward/kernel"
        ]
    );
}

#[test]
fn default_initializers_are_keras() {
    let mut l = LSTM::new(3);
    l.build(&[4, 2], &mut Rng::new(5)).unwrap();
    let b = l.bias().unwrap().value().to_vec::<f32>().unwrap();
    assert_eq!(b, [0., 0., 0., 1., 1., 1., 0., 0., 0., 0., 0., 0.]);
    let mut l2 = LSTM::new(3).unit_forget_bias(false);
    l2.build(&[4, 2], &mut Rng::new(5)).unwrap();
    assert!(l2.bias().unwrap().value().to_vec::<f32>().unwrap().iter().all(|&v| v == 0.0));
    // The recurrent kernel [3, 12] is orthogonal: its rows are orthonormal.
    let rk = l.recurrent_kernel().unwrap().value();
    let gram = rk.matmul(&rk.t().unwrap()).unwrap().to_vec::<f32>().unwrap();
    for i in 0..3 {
        for j in 0..3 {
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((gram[i * 3 + j] - want).abs() < 1e-5, "{gram:?}");
        }
    }
    let mut g = GRU::new(4);
    g.build(&[4, 2], &mut Rng::new(5)).unwrap();
    assert_eq!(g.bias().unwrap().shape().dims(), [2, 12]);
    let cfg = l.config();
    assert_eq!(cfg["recurrent_initializer"]["class_name"], "Orthogonal");
    assert_eq!(cfg["recurrent_activation"], "sigmoid");
    assert_eq!(cfg["unit_forget_bias"], true);
    assert_eq!(g.config()["reset_after"], true);
}

#[test]
fn orthogonal_initializer() {
    let init = Initializer::from_name("orthogonal").unwrap();
    assert_eq!(init, Initializer::Orthogonal { gain: 1.0 });
    for (r, c) in [(6, 6), (8, 3), (3, 8)] {
        let q = init.sample(&[r, c], &mut Rng::new(42)).unwrap();
        // The smaller Gram matrix is the identity.
        let gram = if r >= c { q.t().unwrap().matmul(&q).unwrap() } else { q.matmul(&q.t().unwrap()).unwrap() };
        let n = r.min(c);
        let g = gram.to_vec::<f32>().unwrap();
        for i in 0..n {
            for j in 0..n {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((g[i * n + j] - want).abs() < 1e-5, "[{r},{c}] gram {g:?}");
            }
        }
        // Deterministic for a seed, different for another.
        let again = init.sample(&[r, c], &mut Rng::new(42)).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(q.to_vec::<f32>().unwrap(), again);
        let other = init.sample(&[r, c], &mut Rng::new(43)).unwrap().to_vec::<f32>().unwrap();
        assert_ne!(again, other);
    }
    let scaled = Initializer::Orthogonal { gain: 2.0 }.sample(&[4, 4], &mut Rng::new(1)).unwrap();
    let unit = init.sample(&[4, 4], &mut Rng::new(1)).unwrap();
    assert_close(&scaled, &unit.mul_scalar(2.0).unwrap(), 1e-6, "gain");
    // A conv-shaped kernel flattens all but the last dim.
    let k = init.sample(&[2, 2, 3, 4], &mut Rng::new(1)).unwrap();
    assert_eq!(k.dims(), [2, 2, 3, 4]);
    assert!(init.sample(&[5], &mut Rng::new(1)).is_err());
    let json = serde_json::to_value(Initializer::orthogonal()).unwrap();
    assert_eq!(json, serde_json::json!({"class_name": "Orthogonal", "config": {"gain": 1.0}}));
}

// ---------------------------------------------------------------- gradients

/// Gradient check of a layer's pure function wrt input, weights and initial states (F64).
fn gradcheck_layer<C: Cell>(layer: Recurrent<C>, with_bias: bool) {
    let (b, t, f) = (2, 3, 2);
    let u = layer.units();
    let cell = layer.get_config().cell.clone();
    let g = cell.gates() * u;
    let ns = cell.state_count();
    let mut inputs = vec![f64_rand(1, &[b, t, f], 1.0), f64_rand(2, &[f, g], 0.8), f64_rand(3, &[u, g], 0.8)];
    if with_bias {
        inputs.push(f64_rand(4, &cell.bias_shape(u), 0.5));
    }
    for s in 0..ns {
        inputs.push(f64_rand(10 + s as u64, &[b, u], 0.5));
    }
    let report = gradcheck(
        |v: &[Var]| {
            let w = RecurrentWeights {
                kernel: v[1].clone(),
                recurrent_kernel: v[2].clone(),
                bias: with_bias.then(|| v[3].clone()),
            };
            let s0 = &v[v.len() - ns..];
            let (out, states) = layer.forward_with_weights(&v[0], &w, Some(s0)).expect("forward");
            // Every output and every final state reaches the check.
            let mut total = out.sum_all()?;
            for (i, s) in states.iter().enumerate() {
                total = total.add(&s.square()?.sum_all()?.mul_scalar(1.0 + i as f64)?)?;
            }
            Var::concat(&[&out.flatten_from(0)?, &total.reshape([1])?], 0)
        },
        &inputs,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", layer.class_name()));
    assert!(report.checked > 20);
}

#[test]
fn lstm_gradcheck() {
    gradcheck_layer(LSTM::new(3), true);
    gradcheck_layer(LSTM::new(2).return_sequences(true).go_backwards(true), true);
    gradcheck_layer(LSTM::new(2).use_bias(false).return_sequences(true), false);
    // other activations compose the gate math instead of the fused cell
    gradcheck_layer(LSTM::new(2).recurrent_activation(Activation::Tanh).activation(Activation::Softplus), true);
}

#[test]
fn gru_gradcheck() {
    gradcheck_layer(GRU::new(3), true);
    gradcheck_layer(GRU::new(2).return_sequences(true).go_backwards(true), true);
    gradcheck_layer(GRU::new(2).reset_after(false).return_sequences(true), true);
    // the fused cell without a recurrent bias; other activations compose the gate math
    gradcheck_layer(GRU::new(2).use_bias(false).return_sequences(true), false);
    gradcheck_layer(GRU::new(2).recurrent_activation(Activation::Tanh).activation(Activation::Softplus), true);
}

#[test]
fn simple_rnn_gradcheck() {
    gradcheck_layer(SimpleRNN::new(3).return_sequences(true), true);
    gradcheck_layer(SimpleRNN::new(2).activation(Activation::Sigmoid), true);
}

#[test]
fn layer_params_get_gradients_through_bidirectional() {
    let x = Var::constant(Tensor::rand_normal(3, 0.0, 1.0, [2, 4, 3], DType::F32, &Device::Cpu).unwrap());
    let mut l = Bidirectional::new(GRU::new(4).return_sequences(true));
    l.build(&[4, 3], &mut Rng::new(0)).unwrap();
    let tape = Tape::new();
    let mut rng = Rng::new(0);
    let mut ctx = Ctx::train(&tape, &mut rng);
    let y = l.forward(&x, &mut ctx).unwrap();
    let loss = y.square().unwrap().sum_all().unwrap();
    let grads = tape.backward(&loss).unwrap();
    for w in l.weights() {
        let g = grads.get(&w.param).unwrap_or_else(|| panic!("no gradient for {}", w.name));
        assert!(g.to_vec::<f32>().unwrap().iter().any(|v| *v != 0.0), "{}", w.name);
    }
}

#[test]
fn embedding_gradient_accumulates_into_rows() {
    let mut e = Embedding::new(5, 2);
    e.build(&[3], &mut Rng::new(0)).unwrap();
    let ids = Tensor::from_vec(vec![1i64, 3, 1, 0, 1, 4], [2, 3]).unwrap();
    let tape = Tape::new();
    let mut rng = Rng::new(0);
    let mut ctx = Ctx::train(&tape, &mut rng);
    let y = e.forward(&Var::constant(ids), &mut ctx).unwrap();
    assert_eq!(y.dims(), [2, 3, 2]);
    // loss = sum(y * w) with w[b, t, d] = 1 + position, so row r's gradient sums the positions that chose r.
    let w: Vec<f32> = (0..12).map(|i| (i / 2 + 1) as f32).collect();
    let loss = y.mul(&Var::constant(Tensor::from_vec(w, [2, 3, 2]).unwrap())).unwrap().sum_all().unwrap();
    let grads = tape.backward(&loss).unwrap();
    let g = grads.get(e.embeddings().unwrap()).unwrap().to_vec::<f32>().unwrap();
    // Positions (1-based): id 1 at 1, 3, 5; id 3 at 2; id 0 at 4; id 4 at 6; id 2 nowhere.
    assert_eq!(g, [4., 4., 9., 9., 0., 0., 2., 2., 6., 6.]);
    // Float ids are accepted; an id out of range is an error.
    let fy = e.forward(&Var::constant(Tensor::from_vec(vec![1f32, 3.0, 4.0], [1, 3]).unwrap()), &mut Ctx::inference());
    assert_eq!(fy.unwrap().dims(), [1, 3, 2]);
    let bad = Tensor::from_vec(vec![0i64, 5, 1], [1, 3]).unwrap();
    assert!(e.forward(&Var::constant(bad), &mut Ctx::inference()).is_err());
}

// ---------------------------------------------------------------- option semantics

fn built<C: Cell>(l: Recurrent<C>, f: usize) -> Recurrent<C> {
    let mut l = l;
    l.build(&[4, f], &mut Rng::new(9)).unwrap();
    l
}

fn copy_weights(from: &dyn Layer, to: &dyn Layer) {
    for (a, b) in from.weights().iter().zip(to.weights()) {
        b.param.assign(&a.param.value()).unwrap();
    }
}

fn reverse_time(x: &Tensor) -> Tensor {
    let t = x.dims()[1];
    x.index_select(&Tensor::from_vec((0..t as i64).rev().collect::<Vec<_>>(), [t]).unwrap(), 1).unwrap()
}

#[test]
fn go_backwards_is_forward_on_the_reversed_input() {
    let x = Tensor::rand_normal(5, 0.0, 1.0, [2, 4, 3], DType::F32, &Device::Cpu).unwrap();
    let fwd = built(LSTM::new(4).return_sequences(true), 3);
    let back = LSTM::new(4).return_sequences(true).go_backwards(true);
    let back = built(back, 3);
    copy_weights(&fwd, &back);
    let inf = || Ctx::inference();
    let yb = back.forward(&Var::constant(x.clone()), &mut inf()).unwrap();
    let yf_rev = fwd.forward(&Var::constant(reverse_time(&x)), &mut inf()).unwrap();
    assert_close(yb.value(), yf_rev.value(), 0.0, "go_backwards");
}

#[test]
fn return_sequences_last_row_is_the_plain_output_and_the_state() {
    let x = Var::constant(Tensor::rand_normal(6, 0.0, 1.0, [3, 5, 2], DType::F32, &Device::Cpu).unwrap());
    let seq = built(GRU::new(4).return_sequences(true), 2);
    let last = built(GRU::new(4), 2);
    copy_weights(&seq, &last);
    let (ys, states) = seq.forward_with_state(&x, None, &mut Ctx::inference()).unwrap();
    let yl = last.forward(&x, &mut Ctx::inference()).unwrap();
    let tail = ys.value().narrow(1, 4, 1).unwrap().squeeze(1).unwrap();
    assert_close(&tail, yl.value(), 0.0, "last step");
    assert_close(&states[0].value().clone(), yl.value(), 0.0, "state h");
    // LSTM returns [h, c]; an explicit initial state changes the result.
    let l = built(LSTM::new(3).return_state(true), 2);
    let (y, s) = l.forward_with_state(&x, None, &mut Ctx::inference()).unwrap();
    assert_eq!(s.len(), 2);
    assert_close(s[0].value(), y.value(), 0.0, "lstm h");
    let ones = Var::constant(Tensor::ones([3, 3], DType::F32, &Device::Cpu).unwrap());
    let (y2, _) = l.forward_with_state(&x, Some(&[ones.clone(), ones]), &mut Ctx::inference()).unwrap();
    assert_ne!(y.value().to_vec::<f32>().unwrap(), y2.value().to_vec::<f32>().unwrap());
}

#[test]
fn bidirectional_is_forward_and_reversed_backward() {
    let x = Tensor::rand_normal(7, 0.0, 1.0, [2, 4, 3], DType::F32, &Device::Cpu).unwrap();
    let mut bi = Bidirectional::new(SimpleRNN::new(3).return_sequences(true));
    bi.build(&[4, 3], &mut Rng::new(1)).unwrap();
    assert!(bi.backward_layer().get_config().go_backwards);
    assert!(!bi.forward_layer().get_config().go_backwards);
    let xv = Var::constant(x.clone());
    let (y, states) = bi.forward_with_state(&xv, &mut Ctx::inference()).unwrap();
    assert_eq!(y.dims(), [2, 4, 6]);
    assert_eq!(states.len(), 2);
    let yf = bi.forward_layer().forward(&xv, &mut Ctx::inference()).unwrap();
    let yb = bi.backward_layer().forward(&xv, &mut Ctx::inference()).unwrap();
    assert_close(&y.value().narrow(2, 0, 3).unwrap(), yf.value(), 0.0, "forward half");
    assert_close(&y.value().narrow(2, 3, 3).unwrap(), &reverse_time(yb.value()), 0.0, "backward half");
    // The backward half at t = 0 has seen the whole sequence: it is the backward final state.
    assert_close(
        &y.value().narrow(2, 3, 3).unwrap().narrow(1, 0, 1).unwrap().squeeze(1).unwrap(),
        states[1].value(),
        0.0,
        "bw state",
    );
    // The two directions have their own weights.
    let (fw, bw) = (bi.forward_layer().kernel().unwrap(), bi.backward_layer().kernel().unwrap());
    assert!(!fw.ptr_eq(bw));
    assert_ne!(fw.value().to_vec::<f32>().unwrap(), bw.value().to_vec::<f32>().unwrap());
    assert_eq!(bi.config()["layer"]["class_name"], "SimpleRNN");
    assert_eq!(bi.config()["merge_mode"], "concat");
}

#[test]
fn bad_inputs_are_errors() {
    let mut l = LSTM::new(3);
    assert!(l.build(&[5], &mut Rng::new(0)).is_err());
    l.build(&[5, 2], &mut Rng::new(0)).unwrap();
    assert!(l.build(&[5, 3], &mut Rng::new(0)).is_err());
    let wrong = Var::constant(Tensor::zeros([2, 5, 3], DType::F32, &Device::Cpu).unwrap());
    assert!(l.forward(&wrong, &mut Ctx::inference()).is_err());
    let rank2 = Var::constant(Tensor::zeros([2, 5], DType::F32, &Device::Cpu).unwrap());
    assert!(l.forward(&rank2, &mut Ctx::inference()).is_err());
    // Another sequence length than built for is fine (Keras's None timesteps).
    let longer = Var::constant(Tensor::zeros([2, 9, 2], DType::F32, &Device::Cpu).unwrap());
    assert_eq!(l.forward(&longer, &mut Ctx::inference()).unwrap().dims(), [2, 3]);
    assert!(LSTM::new(3).forward(&longer, &mut Ctx::inference()).is_err(), "unbuilt");
}

// ---------------------------------------------------------------- learning

fn sgd_step(model: &dyn Network, x: &Tensor, y: &Tensor, lr: f64, rng: &mut Rng) -> f64 {
    let tape = Tape::new();
    let mut ctx = Ctx::train(&tape, rng);
    let heads = model.forward_heads(&[Var::constant(x.clone())], &mut ctx).unwrap();
    let l = Loss::SparseCategoricalCrossentropy.compute_head(&heads[0], y, None).unwrap();
    let value = l.value().to_scalar::<f32>().unwrap() as f64;
    let grads = tape.backward(&l).unwrap();
    let params: Vec<Param> = model.trainable_params();
    for p in params {
        let g = grads.get(&p).expect("every parameter gets a gradient");
        p.set(p.value().sub(&g.mul_scalar(lr).unwrap()).unwrap()).unwrap();
    }
    value
}

fn accuracy(model: &dyn Network, x: &Tensor, y: &[i64]) -> f64 {
    let p =
        model.predict(std::slice::from_ref(x)).unwrap().remove(0).argmax(-1, false).unwrap().to_vec::<i64>().unwrap();
    p.iter().zip(y).filter(|(a, b)| a == b).count() as f64 / y.len() as f64
}

/// Label = the first token of the sequence is a "2"? The answer must be carried through all steps.
fn token_task(n: usize, t: usize, seed: u64) -> (Tensor, Vec<i64>) {
    let mut rng = Rng::new(seed);
    let mut ids = Vec::with_capacity(n * t);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        for j in 0..t {
            let v = if j == 0 {
                if i % 2 == 0 {
                    2
                } else {
                    1 + 2 * rng.below(2) as i64
                }
            } else {
                rng.below(4) as i64
            };
            ids.push(v);
        }
        labels.push(i64::from(ids[i * t] == 2));
    }
    (Tensor::from_vec(ids, [n, t]).unwrap(), labels)
}

#[test]
fn embedding_lstm_learns_a_sequence_task() {
    let (n, t) = (32, 6);
    let (x, labels) = token_task(n, t, 1);
    let y = Tensor::from_vec(labels.clone(), n).unwrap();
    let mut m = Sequential::with_seed(3);
    m.add(Embedding::new(4, 6).input_shape([t]));
    m.add(LSTM::new(8));
    m.add(Dense::new(2).activation(Activation::Softmax));
    let mut rng = Rng::new(0);
    // lr 0.5 over 600 steps: at 1.0 the loss oscillates (0.13 -> 0.59 -> 0.29 between
    // steps 100 and 150), so whether step 150 lands low depended on the last bits of the
    // loss; and after 300 steps at 0.5 some model seeds are still leaving the plateau
    // (seed 3 at 0.57 once the f32 exp/tanh changed their last bits). With 600, model
    // seeds 0-9 all end below 0.005 with accuracy 1.
    let lr = 0.5;
    let first = sgd_step(&m, &x, &y, lr, &mut rng);
    let mut last = first;
    for _ in 0..600 {
        last = sgd_step(&m, &x, &y, lr, &mut rng);
    }
    let acc = accuracy(&m, &x, &labels);
    assert!(last < 0.5 * first && acc >= 0.9, "loss {first} -> {last}, accuracy {acc}");
}

#[test]
fn bidirectional_gru_learns_a_sequence_task() {
    let (n, t) = (32, 5);
    // Float sequences: class = sign of the first value (the backward pass must carry it to its end).
    let x = Tensor::rand_normal(21, 0.0, 1.0, [n, t, 1], DType::F32, &Device::Cpu).unwrap();
    let first: Vec<f32> = x.narrow(1, 0, 1).unwrap().contiguous().unwrap().to_vec().unwrap();
    let labels: Vec<i64> = first.iter().map(|&v| i64::from(v > 0.0)).collect();
    let y = Tensor::from_vec(labels.clone(), n).unwrap();
    let mut m = Sequential::with_seed(4);
    m.add(Bidirectional::new(GRU::new(6)).input_shape([t, 1]));
    m.add(Dense::new(2).activation(Activation::Softmax));
    let mut rng = Rng::new(0);
    let first_loss = sgd_step(&m, &x, &y, 0.5, &mut rng);
    let mut last = first_loss;
    for _ in 0..60 {
        last = sgd_step(&m, &x, &y, 0.5, &mut rng);
    }
    let acc = accuracy(&m, &x, &labels);
    assert!(last < 0.5 * first_loss && acc >= 0.9, "loss {first_loss} -> {last}, accuracy {acc}");
}

#[test]
fn recurrent_layers_in_the_functional_api() {
    let ids = Input::new([7]);
    let e = Embedding::new(20, 4).call(&ids).unwrap();
    let seq = LSTM::new(6).return_sequences(true).call(&e).unwrap();
    let a = GRU::new(5).call(&seq).unwrap();
    let b = SimpleRNN::new(3).go_backwards(true).call(&seq).unwrap();
    let y = Dense::new(2).activation(Activation::Softmax).call(&concatenate(&[a, b], -1).unwrap()).unwrap();
    let m = Model::new(&[ids], &[y]).unwrap();
    assert_eq!(m.output_shapes().unwrap(), vec![vec![2]]);
    let want = 20 * 4 + 4 * 6 * (4 + 6 + 1) + 3 * 5 * (6 + 5 + 2) + 3 * (6 + 3 + 1) + (8 * 2 + 2);
    assert_eq!(m.count_params(), want);
    let x = Tensor::from_vec((0..21).map(|i| i % 20).collect::<Vec<i64>>(), [3, 7]).unwrap();
    let p = m.predict(&[x]).unwrap();
    assert_eq!(p[0].dims(), [3, 2]);
}
