//! Activity regularization against Keras 3.15.1 (fixtures/activity_regularizer_fixtures.json,
//! written by fixtures/make_activity_regularizer_fixtures.py): models whose Dense, Conv1D/2D/3D,
//! Embedding, SimpleRNN, LSTM and GRU layers carry an `activity_regularizer`, and the
//! `ActivityRegularization` layer, loaded from the configs Keras wrote and given Keras's
//! weights: the penalties of a forward pass (`sum(model.losses)`) and their gradients, the
//! evaluation loss and one SGD step (the gradient of the loss plus the penalties). Also: the
//! functional model adds the same penalties, frozen layers still add theirs (as Keras), an
//! L1 penalty makes a trained layer's activations smaller, configs round-trip, and the loader
//! warns only about what is still unapplied. Run with `--nocapture` for the max differences.

use keel_autograd::{gradcheck, Tape, Var};
use keel_nn::{Activation, ActivityRegularization, Ctx, Dense, Input, Layer, LayerExt, Loss, Network, Regularizer};
use keel_optim::Sgd;
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};
use keel_train::{layer_from_config, unapplied_settings, Fit, KerasModel, NO_METRICS};
use serde_json::{json, Value};
use std::sync::OnceLock;

mod common;

fn fixture() -> &'static Value {
    static F: OnceLock<Value> = OnceLock::new();
    F.get_or_init(|| serde_json::from_str(include_str!("fixtures/activity_regularizer_fixtures.json")).unwrap())
}

fn tensor_of(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data: Vec<f32> = v["data"].as_array().unwrap().iter().map(|d| d.to_string().parse().unwrap()).collect();
    Tensor::from_vec(data, shape).unwrap()
}

/// The case's input batch: token ids as I64, else F32.
fn input_of(c: &Value) -> Tensor {
    let x = tensor_of(&c["x"]);
    if c["int_input"].as_bool().unwrap() {
        x.to_dtype(DType::I64).unwrap()
    } else {
        x
    }
}

fn max_abs(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| f64::from((x - y).abs())).fold(0.0, f64::max)
}

/// The case's model, loaded layer by layer from Keras's configs through the registry and
/// given Keras's weights by name.
fn model_of(c: &Value) -> keel_nn::Sequential {
    let mut net = keel_nn::Sequential::new();
    for l in c["layers"].as_array().unwrap() {
        let class = l["class_name"].as_str().unwrap();
        net.add_boxed(layer_from_config(class, &l["config"]).unwrap_or_else(|e| panic!("{class}: {e}")));
    }
    let shape: Vec<usize> = c["input_shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    net.build(&[shape]).unwrap();
    for (layer, l) in net.layers().iter().zip(c["layers"].as_array().unwrap()) {
        let want = l["weights"].as_object().unwrap();
        assert_eq!(layer.weights().len(), want.len(), "{}: weight count", layer.name());
        for w in layer.weights() {
            let t = tensor_of(&want[&*w.name]);
            w.param.assign(&t).unwrap_or_else(|e| panic!("{}/{}: {e}", layer.name(), w.name));
        }
    }
    net
}

#[test]
fn activity_penalties_and_their_gradients_match_keras() {
    for c in fixture()["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let net = model_of(c);
        let tape = Tape::new();
        let mut rng = Rng::new(0);
        let mut ctx = Ctx::train(&tape, &mut rng);
        net.forward(&[Var::constant(input_of(c))], &mut ctx).unwrap();
        let penalty = ctx.take_losses().unwrap().expect("the model has activity regularizers");
        assert!(ctx.losses.is_empty(), "take_losses empties the list");
        drop(ctx);
        let got = f64::from(penalty.value().to_vec::<f32>().unwrap()[0]);
        let want = c["activity"].as_f64().unwrap();
        let rel = (got - want).abs() / want.abs();
        let grads = tape.backward(&penalty).unwrap();
        let mut worst: f64 = 0.0;
        for (layer, l) in net.layers().iter().zip(c["layers"].as_array().unwrap()) {
            for w in layer.weights() {
                let want = tensor_of(&l["grads_activity"][&*w.name]).to_vec::<f32>().unwrap();
                let got = match grads.get(&w.param) {
                    Some(g) => g.to_vec::<f32>().unwrap(),
                    None => vec![0.0; want.len()],
                };
                worst = worst.max(max_abs(&got, &want));
            }
        }
        println!(
            "{name}: penalty {got:.7} vs Keras {want:.7} (relative {rel:.1e}), gradients max abs diff {worst:.1e}"
        );
        assert!(rel < 1e-5, "{name}: penalty {got} vs Keras {want}");
        assert!(worst < 2e-5, "{name}: penalty gradients differ from Keras's by {worst}");
    }
}

fn loss_of(c: &Value) -> Loss {
    match c["loss"].as_str().unwrap() {
        "categorical_crossentropy" => Loss::CategoricalCrossentropy,
        "mean_squared_error" => Loss::MeanSquaredError,
        other => panic!("fixture loss {other}"),
    }
}

#[test]
fn evaluate_and_a_training_step_include_the_penalties_as_keras() {
    for c in fixture()["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let (x, y) = (input_of(c), tensor_of(&c["y"]));
        let n = x.dims()[0];
        let mut m = KerasModel::from_network(model_of(c));
        m.compile(Sgd::new(1.0), loss_of(c), NO_METRICS).unwrap();
        let got = m.evaluate_all(&x, &y, n).unwrap()[0].1;
        let want = c["evaluate"].as_f64().unwrap();
        let rel = (got - want).abs() / want.abs();
        let before: Vec<Vec<f32>> =
            m.layers().iter().flat_map(|l| l.weights()).map(|w| w.param.value().to_vec::<f32>().unwrap()).collect();
        m.fit(&x, &y, Fit::new().epochs(1).batch_size(n).shuffle(false).verbose(0)).unwrap();
        // SGD with learning rate 1: each weight moved by minus the gradient of the total loss
        let mut worst: f64 = 0.0;
        let mut i = 0;
        for (layer, l) in m.layers().iter().zip(c["layers"].as_array().unwrap()) {
            for w in layer.weights() {
                let after = w.param.value().to_vec::<f32>().unwrap();
                let step: Vec<f32> = before[i].iter().zip(&after).map(|(b, a)| b - a).collect();
                let want = tensor_of(&l["grads_total"][&*w.name]).to_vec::<f32>().unwrap();
                worst = worst.max(max_abs(&step, &want));
                i += 1;
            }
        }
        println!(
            "{name}: evaluate {got:.7} vs Keras {want:.7} (relative {rel:.1e}), SGD step vs gradients {worst:.1e}"
        );
        assert!(rel < 1e-5, "{name}: evaluate's loss {got} vs Keras {want}");
        assert!(worst < 5e-5, "{name}: the step differs from Keras's gradients by {worst}");
    }
}

fn x_batch() -> Tensor {
    Tensor::rand_uniform(3, -1.0, 1.0, [6, 4], DType::F32, &Device::Cpu).unwrap()
}

fn penalty_of(net: &dyn Network, x: &Tensor) -> f32 {
    let mut ctx = Ctx::inference();
    net.forward(&[Var::constant(x.clone())], &mut ctx).unwrap();
    ctx.take_losses().unwrap().map_or(0.0, |p| p.value().to_vec::<f32>().unwrap()[0])
}

#[test]
fn functional_models_and_frozen_layers_add_the_same_penalties() {
    let x = x_batch();
    let mut seq = keel_nn::Sequential::new();
    seq.add(Dense::new(5).activation(Activation::Relu).activity_regularizer(Regularizer::l1(0.1)).input_shape([4]));
    seq.add(ActivityRegularization::new(0.01, 0.02));
    seq.add(Dense::new(3).activation(Activation::Softmax).activity_regularizer(Regularizer::l2(0.3)));
    seq.build(&[vec![4]]).unwrap();
    let inp = Input::new([4]);
    let h = Dense::new(5)
        .activation(Activation::Relu)
        .activity_regularizer(Regularizer::l1(0.1))
        .with_name("a")
        .call(&inp)
        .unwrap();
    let h = ActivityRegularization::new(0.01, 0.02).call(&h).unwrap();
    let out = Dense::new(3)
        .activation(Activation::Softmax)
        .activity_regularizer(Regularizer::l2(0.3))
        .with_name("b")
        .call(&h)
        .unwrap();
    let mut fun = keel_nn::Model::new(&[inp], &[out]).unwrap();
    fun.build(&[vec![4]]).unwrap();
    for (src, dst) in seq.named_weights().iter().zip(fun.named_weights()) {
        dst.param.assign(&src.param.value()).unwrap();
    }
    // by hand: the penalties of the three outputs, each over the batch size 6
    let xs = Var::constant(x.clone());
    let mut ctx = Ctx::inference();
    let h = seq.layers()[0].forward(&xs, &mut ctx).unwrap().into_value().to_vec::<f32>().unwrap();
    let o = seq.layers()[2].forward(&Var::constant(Tensor::from_vec(h.clone(), [6, 5]).unwrap()), &mut ctx).unwrap();
    let o = o.into_value().to_vec::<f32>().unwrap();
    let l1 = |v: &[f32]| v.iter().map(|a| a.abs()).sum::<f32>();
    let l2 = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>();
    let want = (0.1 * l1(&h) + 0.01 * l1(&h) + 0.02 * l2(&h) + 0.3 * l2(&o)) / 6.0;
    let (s, f) = (penalty_of(&seq, &x), penalty_of(&fun, &x));
    assert!((s - want).abs() < 1e-5 * want, "Sequential: {s} vs {want}");
    assert!((f - want).abs() < 1e-5 * want, "functional Model: {f} vs {want}");
    // Keras adds a frozen layer's activity penalty too (only its weights stop training)
    seq.set_trainable("dense", false).unwrap();
    fun.set_trainable("a", false).unwrap();
    assert_eq!(penalty_of(&seq, &x), s);
    assert_eq!(penalty_of(&fun, &x), f);
    // nested: a model used as a layer adds its layers' penalties
    let mut outer = keel_nn::Sequential::new();
    outer.add(seq);
    outer.build(&[vec![4]]).unwrap();
    assert_eq!(penalty_of(&outer, &x), s);
}

/// The mean absolute activation of `m`'s first layer on `x`.
fn mean_activation(m: &keel_train::Sequential, x: &Tensor) -> f64 {
    let h = m.layers()[0].forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap();
    let v = h.into_value().to_vec_f64().unwrap();
    v.iter().map(|a| a.abs()).sum::<f64>() / v.len() as f64
}

#[test]
fn an_l1_activity_penalty_makes_fit_learn_smaller_activations() {
    let (x, y) = common::blobs(7, 128);
    let train = |penalty: Option<Regularizer>| {
        let mut m = keel_train::Sequential::with_seed(5);
        let mut hidden = Dense::new(16).activation(Activation::Relu).input_shape([x.dims()[1]]);
        if let Some(r) = penalty {
            hidden = hidden.activity_regularizer(r);
        }
        m.add(hidden);
        m.add(Dense::new(1).activation(Activation::Sigmoid));
        m.compile(Sgd::new(0.1), Loss::BinaryCrossentropy, &["accuracy"]).unwrap();
        let h = m.fit(&x, &y, Fit::new().epochs(40).batch_size(16).seed(1).verbose(0)).unwrap();
        let acc = *h.get("accuracy").unwrap().last().unwrap();
        (mean_activation(&m, &x), acc, m.evaluate(&x, &y).unwrap().0)
    };
    let (plain, plain_acc, _) = train(None);
    let (sparse, sparse_acc, _) = train(Some(Regularizer::l1(0.05)));
    println!("mean |activation|: {plain:.4} without, {sparse:.4} with an L1 activity penalty (accuracy {plain_acc:.3} / {sparse_acc:.3})");
    assert!(sparse < 0.5 * plain, "the L1 penalty should shrink the activations: {sparse} vs {plain}");
    assert!(sparse_acc > 0.9, "the task is still learned ({sparse_acc})");
}

#[test]
fn configs_round_trip_and_the_loader_applies_activity_regularizers() {
    let l = Dense::new(3).activity_regularizer(Regularizer::l1_l2(0.01, 0.02));
    let cfg = l.config();
    assert_eq!(cfg["activity_regularizer"], json!({"class_name": "L1L2", "config": {"l1": 0.01, "l2": 0.02}}));
    let back = layer_from_config("Dense", &cfg).unwrap();
    assert_eq!(back.activity_regularizer(), Some(Regularizer::l1_l2(0.01, 0.02)));
    assert!(unapplied_settings("Dense", &cfg).is_empty());
    let a = ActivityRegularization::new(0.003, 0.0).with_name("act_reg");
    let back = layer_from_config("ActivityRegularization", &a.config()).unwrap();
    assert_eq!(back.name(), "act_reg");
    assert_eq!(back.activity_regularizer(), Some(Regularizer::l1_l2(0.003, 0.0)));
    assert_eq!(back.config(), a.config());
    // Keras's own config forms (module/registered_name around the class) load on each family
    for c in fixture()["cases"].as_array().unwrap() {
        for l in c["layers"].as_array().unwrap() {
            let (class, cfg) = (l["class_name"].as_str().unwrap(), &l["config"]);
            assert!(unapplied_settings(class, cfg).is_empty(), "{class}: {:?}", unapplied_settings(class, cfg));
            let layer = layer_from_config(class, cfg).unwrap();
            assert_eq!(
                layer.activity_regularizer().is_some(),
                !cfg["activity_regularizer"].is_null() || class == "ActivityRegularization",
                "{class}"
            );
        }
    }
    // still unapplied: a layer that does not apply one, and a regularizer class keel lacks (dropped)
    let orth = json!({"module": "keras.regularizers", "class_name": "OrthogonalRegularizer",
        "config": {"factor": 0.01, "mode": "rows"}, "registered_name": null});
    let bn = json!({"name": "bn", "activity_regularizer": {"class_name": "L1", "config": {"l1": 0.01}}});
    assert_eq!(unapplied_settings("BatchNormalization", &bn), vec!["activity_regularizer (L1)".to_string()]);
    let dense = json!({"name": "d", "units": 2, "activation": "linear", "use_bias": true,
        "kernel_initializer": {"class_name": "GlorotUniform", "config": {}},
        "bias_initializer": {"class_name": "Zeros", "config": {}},
        "kernel_regularizer": null, "bias_regularizer": null, "activity_regularizer": orth});
    assert_eq!(unapplied_settings("Dense", &dense), vec!["activity_regularizer (OrthogonalRegularizer)".to_string()]);
    let l = layer_from_config("Dense", &dense).unwrap();
    assert_eq!(l.activity_regularizer(), None);
    // a bad factor is a config error naming the layer
    let mut bad = keel_nn::Sequential::new();
    bad.add(ActivityRegularization::new(-1.0, 0.0).with_name("neg").input_shape([2]));
    let err = bad.build(&[vec![2]]).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("neg") && err.contains("l1"), "{err}");
}

#[test]
fn the_penalty_gradchecks_in_f64() {
    let l = ActivityRegularization::new(0.3, 0.2);
    // away from 0, where |x| has no derivative
    let x = Tensor::rand_uniform(4, 0.1, 1.0, [3, 4], DType::F64, &Device::Cpu).unwrap();
    let sign = Tensor::from_vec(vec![1.0f64, -1.0, 1.0, -1.0], [1, 4]).unwrap();
    let x = x.mul(&sign).unwrap();
    let g = |v: &[Var]| {
        let mut ctx = Ctx::inference();
        ctx.add_activity_loss(&l, &v[0]).expect("penalty");
        Ok(ctx.take_losses().expect("sum").expect("one penalty"))
    };
    let r = gradcheck(g, &[x]).unwrap();
    assert_eq!(r.checked, 12);
}

#[test]
fn under_mixed_precision_the_penalty_is_f32() {
    let x = x_batch();
    let build = || {
        let mut m = keel_nn::Sequential::new();
        m.add(Dense::new(5).activation(Activation::Tanh).activity_regularizer(Regularizer::l2(0.1)).input_shape([4]));
        m.add(Dense::new(2).activation(Activation::Softmax).activity_regularizer(Regularizer::l1(0.1)));
        m.build(&[vec![4]]).unwrap();
        m
    };
    let full = build();
    let mut mixed = build();
    mixed.set_dtype_policy(keel_nn::mixed_precision::DTypePolicy::MixedBFloat16);
    for (src, dst) in full.named_weights().iter().zip(mixed.named_weights()) {
        dst.param.assign(&src.param.value()).unwrap();
    }
    let mut ctx = Ctx::inference();
    mixed.forward(&[Var::constant(x.clone())], &mut ctx).unwrap();
    let p = ctx.take_losses().unwrap().unwrap();
    assert_eq!(p.dtype(), DType::F32);
    let (got, want) = (p.value().to_vec::<f32>().unwrap()[0], penalty_of(&full, &x));
    assert!((got - want).abs() < 2e-2 * want, "mixed_bfloat16 penalty {got} vs float32 {want}");
}

#[test]
fn a_recurrent_model_with_penalties_fits_under_mixed_bfloat16() {
    let (tokens, y) = common::token_task(9, 10, &[32, 7]);
    let mut m = common::penalized_token_model(true, NO_METRICS);
    let h = m.fit(&tokens, &y, Fit::new().epochs(2).batch_size(16).verbose(0)).unwrap();
    let losses = h.get("loss").unwrap();
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
}

#[test]
fn a_saved_model_loads_with_its_activity_regularizers() {
    use keel_nn::{Embedding, LSTM};
    let mut m = keel_train::Sequential::with_seed(2);
    m.add(Embedding::new(10, 4).activity_regularizer(Regularizer::l2(0.03)).input_shape([5]));
    m.add(LSTM::new(3).activity_regularizer(Regularizer::l1(0.02)));
    m.add(ActivityRegularization::new(0.01, 0.0));
    m.add(Dense::new(2).activation(Activation::Softmax).activity_regularizer(Regularizer::l1_l2(0.01, 0.02)));
    m.compile(Sgd::new(0.1), Loss::SparseCategoricalCrossentropy, NO_METRICS).unwrap();
    let dir = common::test_dir("activity_regularizer_save");
    let path = dir.join("m.keel");
    m.save(&path).unwrap();
    let loaded = keel_train::load_model(&path).unwrap();
    let regs = |layers: &[Box<dyn Layer>]| layers.iter().map(|l| l.activity_regularizer()).collect::<Vec<_>>();
    assert_eq!(regs(loaded.layers()), regs(m.layers()));
    assert_eq!(
        regs(loaded.layers()),
        vec![
            Some(Regularizer::l2(0.03)),
            Some(Regularizer::l1(0.02)),
            Some(Regularizer::l1_l2(0.01, 0.0)),
            Some(Regularizer::l1_l2(0.01, 0.02))
        ]
    );
    let (tokens, _) = common::token_task(3, 10, &[4, 5]);
    let mut loaded = loaded;
    loaded.compile(Sgd::new(0.1), Loss::SparseCategoricalCrossentropy, NO_METRICS).unwrap();
    let y = Tensor::from_vec(vec![0i64, 1, 1, 0], [4]).unwrap();
    assert_eq!(loaded.evaluate(&tokens, &y).unwrap().0, m.evaluate(&tokens, &y).unwrap().0);
}
