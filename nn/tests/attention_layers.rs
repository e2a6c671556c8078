//! Dot, Attention and AdditiveAttention: values against real Keras 3
//! (fixtures/attention_layers.json, written by fixtures/attention_layers.py), masks, the
//! causal mask, gradients by finite differences, shapes, errors, dropout and configs.

use keel_autograd::{gradcheck, Var};
use keel_nn::prelude::*;
use keel_nn::{AdditiveAttentionConfig, AttentionConfig, AttentionWeights, DotAxes};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};
use serde_json::Value;

fn fixtures() -> Value {
    serde_json::from_str(include_str!("fixtures/attention_layers.json")).unwrap()
}

/// A fixture array `{"shape", "data"}` as an F32 tensor.
fn tensor(v: &Value) -> Tensor {
    let shape: Vec<usize> = serde_json::from_value(v["shape"].clone()).unwrap();
    let data: Vec<f32> = v["data"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
    Tensor::from_vec(data, shape).unwrap()
}

fn vals(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

fn rand(seed: u64, shape: &[usize], dtype: DType) -> Tensor {
    Tensor::rand_uniform(seed, -1.0, 1.0, shape, dtype, &Device::Cpu).unwrap()
}

/// The largest absolute difference, after checking the shapes agree.
fn max_diff(got: &Tensor, want: &Tensor, what: &str) -> f64 {
    assert_eq!(got.dims(), want.dims(), "{what}: shapes");
    vals(got).iter().zip(vals(want)).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max)
}

/// An attention layer of either class, built from a Keras config.
enum AnyAttention {
    Dot(Attention),
    Additive(AdditiveAttention),
}

impl AnyAttention {
    fn from_keras(class: &str, cfg: &Value, causal: bool) -> Self {
        match class {
            "Attention" => {
                let c: AttentionConfig = serde_json::from_value(cfg.clone()).unwrap();
                AnyAttention::Dot(Attention::from_config(c).use_causal_mask(causal))
            }
            _ => {
                let c: AdditiveAttentionConfig = serde_json::from_value(cfg.clone()).unwrap();
                AnyAttention::Additive(AdditiveAttention::from_config(c).use_causal_mask(causal))
            }
        }
    }

    fn layer(&mut self) -> &mut dyn Layer {
        match self {
            AnyAttention::Dot(l) => l,
            AnyAttention::Additive(l) => l,
        }
    }

    fn forward(&self, xs: &[Var], masks: &[Option<Tensor>], ctx: &mut Ctx<'_>) -> (Var, Var) {
        match self {
            AnyAttention::Dot(l) => l.forward_with_masks(xs, masks, ctx),
            AnyAttention::Additive(l) => l.forward_with_masks(xs, masks, ctx),
        }
        .unwrap()
    }
}

#[test]
fn attention_matches_keras() {
    let f = fixtures();
    let mut worst: f64 = 0.0;
    for case in f["attention"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let mut att =
            AnyAttention::from_keras(case["class"].as_str().unwrap(), &case["config"], case["causal"] == true);
        let xs: Vec<Tensor> = case["inputs"].as_array().unwrap().iter().map(tensor).collect();
        let shapes: Vec<Vec<usize>> = xs.iter().map(|x| x.dims()[1..].to_vec()).collect();
        let layer = att.layer();
        layer.build_multi(&shapes, &mut Rng::new(0)).unwrap();
        // Keras's weight names, order and shapes
        let keras_names: Vec<&String> = case["weights"].as_object().unwrap().keys().collect();
        let ws = layer.weights();
        let names: Vec<String> = ws.iter().map(|w| w.name.to_string()).collect();
        assert_eq!(names.len(), keras_names.len(), "{name}: {names:?} vs {keras_names:?}");
        for w in &ws {
            let want = tensor(&case["weights"][w.name.as_ref()]);
            assert_eq!(w.param.value().dims(), want.dims(), "{name}: {}", w.name);
            w.param.set(want).unwrap();
        }
        // get_config: Keras's keys (and values), plus use_causal_mask
        let cfg = layer.config();
        for (k, v) in case["config"].as_object().unwrap().iter().filter(|(k, _)| *k != "name") {
            assert_eq!(&cfg[k], v, "{name}: config {k}");
        }
        assert_eq!(cfg.as_object().unwrap().len(), case["config"].as_object().unwrap().len() + 1, "{name}: {cfg}");
        assert_eq!(cfg["use_causal_mask"], case["causal"], "{name}");
        let want_shape = layer.output_shape_multi(&shapes).unwrap();
        let masks: Vec<Option<Tensor>> = match case["masks"].as_array() {
            Some(ms) => ms.iter().map(|m| (!m.is_null()).then(|| tensor(m).to_dtype(DType::U8).unwrap())).collect(),
            None => Vec::new(),
        };
        let vars: Vec<Var> = xs.iter().cloned().map(Var::constant).collect();
        let (out, scores) = att.forward(&vars, &masks, &mut Ctx::inference());
        assert_eq!(&out.dims()[1..], &want_shape[..], "{name}: output_shape");
        let (d_out, d_scores) = (
            max_diff(out.value(), &tensor(&case["output"]), name),
            max_diff(scores.value(), &tensor(&case["scores"]), name),
        );
        assert!(d_out < 2e-6 && d_scores < 2e-6, "{name}: output {d_out:.2e}, scores {d_scores:.2e}");
        worst = worst.max(d_out).max(d_scores);
        // the output's mask is the query's (Keras's compute_mask)
        let mask = att.layer().compute_mask(&vars, &masks).unwrap();
        match &case["output_mask"] {
            Value::Null => assert!(mask.is_none(), "{name}: no output mask"),
            m => assert_eq!(vals(&mask.unwrap()), vals(&tensor(m)), "{name}: output mask"),
        }
    }
    println!("Attention/AdditiveAttention vs Keras: max abs diff {worst:.2e}");
}

#[test]
fn dot_matches_keras() {
    let f = fixtures();
    let mut worst: f64 = 0.0;
    for case in f["dot"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let axes: DotAxes = serde_json::from_value(case["config"]["axes"].clone()).unwrap();
        let mut layer = Dot::new(axes).normalize(case["config"]["normalize"] == true);
        let cfg = layer.config();
        assert_eq!(cfg["axes"], case["config"]["axes"], "{name}");
        assert_eq!(cfg["normalize"], case["config"]["normalize"], "{name}");
        let xs: Vec<Tensor> = case["inputs"].as_array().unwrap().iter().map(tensor).collect();
        let shapes: Vec<Vec<usize>> = xs.iter().map(|x| x.dims()[1..].to_vec()).collect();
        layer.build_multi(&shapes, &mut Rng::new(0)).unwrap();
        let want = tensor(&case["output"]);
        assert_eq!(layer.output_shape_multi(&shapes).unwrap(), want.dims()[1..], "{name}: output_shape");
        let vars: Vec<Var> = xs.into_iter().map(Var::constant).collect();
        let y = layer.forward_logits_multi(&vars, &mut Ctx::inference()).unwrap();
        let d = max_diff(y.value(), &want, name);
        assert!(d < 2e-6, "{name}: {d:.2e}");
        worst = worst.max(d);
        // masks stop at Dot (Keras's compute_mask returns None)
        let m = Tensor::ones(&vars[0].dims()[..2], DType::U8, &Device::Cpu).unwrap();
        assert!(layer.compute_mask(&vars, &[Some(m.clone()), Some(m)]).unwrap().is_none());
    }
    println!("Dot vs Keras: max abs diff {worst:.2e}");
}

#[test]
fn embedding_mask_zero_attention_pooling_matches_keras() {
    let f = fixtures();
    let m = &f["model"];
    let ids = tensor(&m["ids"]).to_dtype(DType::I64).unwrap();
    let t = ids.dims()[1];
    let inp = Input::new([t]);
    let e = Embedding::new(10, 4).mask_zero(true).call(&inp).unwrap();
    let a = Attention::new().use_scale(true).call_multi(&[e.clone(), e]).unwrap();
    let y = GlobalAveragePooling1D::new().call(&a).unwrap();
    let mut model = Model::new(&[inp], &[y]).unwrap();
    model.build(&[vec![t]]).unwrap();
    let set = |layer: &str, w: Tensor| model.get_layer(layer).unwrap().read().weights()[0].param.set(w).unwrap();
    set("embedding", tensor(&m["embeddings"]));
    set("attention", Tensor::scalar(m["scale"].as_f64().unwrap() as f32));
    let got = model.predict(&[ids]).unwrap().remove(0);
    let d = max_diff(&got, &tensor(&m["output"]), "model");
    println!("Embedding(mask_zero) -> Attention -> GlobalAveragePooling1D vs Keras: max abs diff {d:.2e}");
    assert!(d < 2e-6, "{d:.2e}");
}

/// The mask tensors of a gradient check: query `[2, 3]`, value `[2, 4]`.
fn grad_masks() -> Vec<Option<Tensor>> {
    vec![
        Some(Tensor::from_vec(vec![1u8, 1, 0, 1, 0, 1], [2, 3]).unwrap()),
        // every query keeps a key under the causal mask too (a fully masked row's scores are all
        // lowered by 1e9, which leaves float64 too few digits for finite differences)
        Some(Tensor::from_vec(vec![1u8, 0, 1, 1, 1, 1, 0, 0], [2, 4]).unwrap()),
    ]
}

#[test]
fn attention_gradients_match_finite_differences() {
    // [query, value, key, weights...] in float64; each layer with and without masks
    let (b, tq, tv, dim, dv) = (2, 3, 4, 3, 2);
    let cases: Vec<(&str, Box<dyn Fn(&[Var], &[Option<Tensor>]) -> (Var, Var)>, Vec<Vec<usize>>)> = vec![
        (
            "dot + scale + causal",
            Box::new(|v: &[Var], m: &[Option<Tensor>]| {
                let w = AttentionWeights { scale: Some(v[3].clone()), concat_score_weight: None };
                let l = Attention::new().use_scale(true).use_causal_mask(true);
                l.forward_with_weights(&v[..3], m, &w, &mut Ctx::inference()).unwrap()
            }),
            vec![vec![]],
        ),
        (
            "concat + scale",
            Box::new(|v: &[Var], m: &[Option<Tensor>]| {
                let w = AttentionWeights { scale: Some(v[3].clone()), concat_score_weight: Some(v[4].clone()) };
                let l = Attention::new().use_scale(true).score_mode(ScoreMode::Concat);
                l.forward_with_weights(&v[..3], m, &w, &mut Ctx::inference()).unwrap()
            }),
            vec![vec![], vec![]],
        ),
        (
            "additive + scale",
            Box::new(|v: &[Var], m: &[Option<Tensor>]| {
                let w = AttentionWeights { scale: Some(v[3].clone()), concat_score_weight: None };
                let l = AdditiveAttention::new();
                l.forward_with_weights(&v[..3], m, &w, &mut Ctx::inference()).unwrap()
            }),
            vec![vec![dim]],
        ),
        (
            "additive, causal, no scale",
            Box::new(|v: &[Var], m: &[Option<Tensor>]| {
                let l = AdditiveAttention::new().use_scale(false).use_causal_mask(true);
                l.forward_with_weights(&v[..3], m, &AttentionWeights::default(), &mut Ctx::inference()).unwrap()
            }),
            vec![],
        ),
    ];
    for (i, (what, f, weights)) in cases.iter().enumerate() {
        let s = 10 * i as u64;
        let mut inputs = vec![
            rand(s + 1, &[b, tq, dim], DType::F64),
            rand(s + 2, &[b, tv, dv], DType::F64),
            rand(s + 3, &[b, tv, dim], DType::F64),
        ];
        inputs.extend(weights.iter().enumerate().map(|(j, shape)| rand(s + 4 + j as u64, shape, DType::F64)));
        let masks = grad_masks();
        let report = gradcheck(
            |v: &[Var]| {
                let (a, pa) = f(v, &masks);
                let (c, pc) = f(v, &[]);
                Var::concat(&[&a.flatten_from(0)?, &pa.flatten_from(0)?, &c.flatten_from(0)?, &pc.flatten_from(0)?], 0)
            },
            &inputs,
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(report.checked >= 58, "{what}: {report}");
        println!("{what}: {report}");
    }
}

#[test]
fn dot_gradients_match_finite_differences() {
    for (axes, sa, sb, normalize) in [
        (DotAxes::Pair([1, 2]), vec![2, 3, 4], vec![2, 5, 3], false),
        (DotAxes::One(-1), vec![2, 4], vec![2, 4], true),
        (DotAxes::Pair([3, 1]), vec![2, 2, 3, 4], vec![2, 4, 2], true),
    ] {
        let layer = Dot::new(axes).normalize(normalize);
        let report = gradcheck(
            |v: &[Var]| Ok(layer.forward_logits_multi(v, &mut Ctx::inference()).unwrap()),
            &[rand(1, &sa, DType::F64), rand(2, &sb, DType::F64)],
        )
        .unwrap_or_else(|e| panic!("{axes:?}: {e}"));
        assert!(report.checked > 10, "{report}");
    }
}

#[test]
fn shape_errors_name_the_layer_and_both_shapes() {
    // Dot: contracted sizes differ, the batch axis, input counts
    let dot = Dot::new((1, 2)).with_name("d");
    let e = dot.output_shape_multi(&[vec![3, 5], vec![10, 4]]).unwrap_err().to_string();
    assert!(e.contains("\"d\"") && e.contains("Dot") && e.contains("[3, 5]") && e.contains("[10, 4]"), "{e}");
    let e = Dot::new(0).output_shape_multi(&[vec![3], vec![3]]).unwrap_err().to_string();
    assert!(e.contains("Dot") && e.contains("batch axis"), "{e}");
    let e = Dot::new(3).output_shape_multi(&[vec![3], vec![3, 4]]).unwrap_err().to_string();
    assert!(e.contains("[3]") && e.contains("[3, 4]"), "{e}");
    let e = Dot::new(1).output_shape_multi(&[vec![3]]).unwrap_err().to_string();
    assert!(e.contains("exactly two inputs, got 1"), "{e}");
    let x = |seed: u64, dims: &[usize]| Var::constant(rand(seed, dims, DType::F32));
    let e = Dot::new(1).forward_logits_multi(&[x(1, &[2, 3]), x(2, &[4, 3])], &mut Ctx::inference()).unwrap_err();
    assert!(e.to_string().contains("batch size 2") && e.to_string().contains("[4, 3]"), "{e}");
    // in a graph the error comes when the layer is called
    let e = dot.call_multi(&[Input::new([3, 5]), Input::new([10, 4])]).unwrap_err().to_string();
    assert!(e.contains("[3, 5]") && e.contains("[10, 4]"), "{e}");
    // Attention: query and key features, key and value lengths, ranks, input counts
    let att = Attention::new().with_name("att");
    let e = att.output_shape_multi(&[vec![3, 4], vec![5, 6]]).unwrap_err().to_string();
    assert!(e.contains("att") && e.contains("Attention") && e.contains("[3, 4]") && e.contains("[5, 6]"), "{e}");
    let e = att.output_shape_multi(&[vec![3, 4], vec![5, 6], vec![7, 4]]).unwrap_err().to_string();
    assert!(e.contains("[5, 6]") && e.contains("[7, 4]") && e.contains("timesteps"), "{e}");
    let e = att.output_shape_multi(&[vec![4], vec![5, 4]]).unwrap_err().to_string();
    assert!(e.contains("query") && e.contains("[4]"), "{e}");
    for n in [1, 4] {
        let e = att.output_shape_multi(&vec![vec![3, 4]; n]).unwrap_err().to_string();
        assert!(e.contains("att") && e.contains(&format!("got {n} input")), "{e}");
    }
    let add = AdditiveAttention::new().with_name("add_att");
    let e = add.output_shape_multi(&[vec![3, 4], vec![5, 2]]).unwrap_err().to_string();
    assert!(e.contains("add_att") && e.contains("AdditiveAttention") && e.contains("[5, 2]"), "{e}");
    let e = Attention::new().dropout(1.0).with_name("p").output_shape_multi(&[vec![3, 4], vec![5, 4]]).unwrap_err();
    assert!(e.to_string().contains("dropout"), "{e}");
    // not built, built for other features, mismatched batches, a mask of the wrong shape
    let mut l = AdditiveAttention::new().with_name("add_att");
    let e = l.forward_logits_multi(&[x(1, &[2, 3, 4]), x(2, &[2, 5, 4])], &mut Ctx::inference()).unwrap_err();
    assert!(matches!(e, keel_nn::Error::NotBuilt { .. }), "{e}");
    l.build_multi(&[vec![3, 4], vec![5, 4]], &mut Rng::new(1)).unwrap();
    let e = l.build_multi(&[vec![3, 6], vec![5, 6]], &mut Rng::new(1)).unwrap_err().to_string();
    assert!(e.contains("already built"), "{e}");
    let e = l.forward_logits_multi(&[x(1, &[2, 3, 4]), x(2, &[3, 5, 4])], &mut Ctx::inference()).unwrap_err();
    assert!(e.to_string().contains("batch size 2, got a batch of 3"), "{e}");
    let bad = Some(Tensor::ones([2, 4], DType::U8, &Device::Cpu).unwrap());
    let e = l.forward_with_masks(&[x(1, &[2, 3, 4]), x(2, &[2, 5, 4])], &[None, bad], &mut Ctx::inference());
    let e = e.unwrap_err().to_string();
    assert!(e.contains("[2, 5]") && e.contains("[2, 4]") && e.contains("value"), "{e}");
    // explicit weights of the wrong shape
    let w = AttentionWeights { scale: Some(x(3, &[])), concat_score_weight: None };
    let e = l.forward_with_weights(&[x(1, &[2, 3, 4]), x(2, &[2, 5, 4])], &[], &w, &mut Ctx::inference());
    assert!(e.unwrap_err().to_string().contains("scale must be [4]"));
}

#[test]
fn dropout_applies_in_training_only_and_is_reproducible() {
    let mut l = Attention::new().dropout(0.5).with_name("drop_att");
    l.build_multi(&[vec![4, 3], vec![6, 3]], &mut Rng::new(0)).unwrap();
    let xs = [Var::constant(rand(1, &[2, 4, 3], DType::F32)), Var::constant(rand(2, &[2, 6, 3], DType::F32))];
    let train = |seed: u64| {
        let mut rng = Rng::new(seed);
        let (o, p) = l.forward_with_scores(&xs, &mut Ctx::new(None, true, Some(&mut rng))).unwrap();
        (vals(o.value()), vals(p.value()))
    };
    let (o, p) = l.forward_with_scores(&xs, &mut Ctx::inference()).unwrap();
    let (o, p) = (vals(o.value()), vals(p.value()));
    let (a, pa) = train(1);
    assert_eq!(train(1), (a.clone(), pa.clone()));
    assert_ne!(train(2).0, a);
    assert_ne!(a, o);
    // Keras returns the scores after dropout: each is 0 or twice the inference one
    assert!(pa.iter().zip(&p).all(|(d, s)| *d == 0.0 || (d - 2.0 * s).abs() < 1e-6), "{pa:?} vs {p:?}");
    assert!(pa.contains(&0.0));
    let e = l.forward_with_scores(&xs, &mut Ctx::new(None, true, None)).unwrap_err().to_string();
    assert!(e.contains("drop_att"), "{e}");
}

#[test]
fn configs_round_trip_and_default_as_keras() {
    let a = Attention::new().use_scale(true).score_mode(ScoreMode::Concat).dropout(0.1).seed(Some(3));
    let c: AttentionConfig = serde_json::from_value(a.config()).unwrap();
    assert_eq!(&c, a.get_config());
    assert_eq!(a.config()["score_mode"], "concat");
    // Keras's AdditiveAttention config has no score_mode; use_scale defaults to true
    let add = AdditiveAttention::new();
    assert!(add.config().get("score_mode").is_none());
    let c: AdditiveAttentionConfig = serde_json::from_value(serde_json::json!({"dropout": 0.0})).unwrap();
    assert!(c.use_scale);
    let c: AttentionConfig = serde_json::from_value(serde_json::json!({"dropout": 0.0})).unwrap();
    assert!(!c.use_scale && c.score_mode == ScoreMode::Dot);
    assert!(serde_json::from_value::<AttentionConfig>(serde_json::json!({"score_mode": "add"})).is_err());
    // the AdditiveAttention scale is glorot_uniform over [dim] (fans (dim, dim)), Keras's
    let mut l = AdditiveAttention::new();
    l.build_multi(&[vec![3, 50], vec![4, 50]], &mut Rng::new(2)).unwrap();
    let s = vals(&l.weights()[0].param.value());
    let limit = (6.0f64 / 100.0).sqrt();
    assert!(s.iter().all(|x| x.abs() <= limit) && s.iter().any(|x| x.abs() > 0.8 * limit));
    // Dot's axes: an int or a pair, as Keras writes them
    assert_eq!(Dot::new(-1).config()["axes"], -1);
    assert_eq!(Dot::new((1, 2)).config()["axes"], serde_json::json!([1, 2]));
}

#[test]
fn functional_dot_is_keras_layers_dot() {
    let (a, b) = (Input::new([8]), Input::new([8]));
    let y = dot(&a, &b, 1).unwrap();
    assert_eq!(y.shape(), [1]);
}
