//! GroupQueryAttention: outputs, attention scores and gradients against Keras 3.15.1 /
//! TensorFlow's GradientTape (nn/tests/fixtures/group_query_attention_fixtures.json, written
//! by nn/tests/fixtures/make_group_query_attention_fixtures.py), an f64 finite-difference
//! gradcheck, its agreement with MultiHeadAttention when every query head has its own
//! key/value head, shapes, errors and dropout.

mod common;

use common::{max_diff, tensor_of, uniform};
use keel_autograd::{gradcheck, Tape, Var};
use keel_nn::prelude::*;
use keel_nn::{AttentionProjection, GroupQueryAttentionConfig, MultiHeadAttentionWeights};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};
use serde_json::Value;

fn fixtures() -> Value {
    serde_json::from_str(include_str!("fixtures/group_query_attention_fixtures.json")).unwrap()
}

fn rand(seed: u64, shape: &[usize], dtype: DType) -> Tensor {
    Tensor::rand_uniform(seed, -1.0, 1.0, shape, dtype, &Device::Cpu).unwrap()
}

#[test]
fn outputs_scores_and_gradients_match_keras() {
    let v = fixtures();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 10);
    let (mut worst_y, mut worst_s, mut worst_g) = (0f32, 0f32, 0f32);
    let tol = 1e-5;
    for c in cases {
        let name = c["name"].as_str().unwrap();
        assert_eq!(c["class_name"], "GroupQueryAttention");
        let cfg: GroupQueryAttentionConfig = serde_json::from_value(c["config"].clone()).unwrap();
        let mut layer = GroupQueryAttention::from_config(cfg).use_causal_mask(c["use_causal_mask"].as_bool().unwrap());
        let selfatt = c["self_attention"].as_bool().unwrap();
        let q = tensor_of(&c["query"]);
        let val = tensor_of(&c["value"]);
        let key = c.get("key").map(tensor_of);
        let amask = c.get("attention_mask").map(tensor_of);
        let mut shapes = vec![q.dims()[1..].to_vec(), val.dims()[1..].to_vec()];
        if let Some(k) = &key {
            shapes.push(k.dims()[1..].to_vec());
        }
        layer.build_multi(&shapes, &mut Rng::new(0)).unwrap();
        let weights = layer.weights();
        let want = c["weights"].as_array().unwrap();
        assert_eq!(weights.len(), want.len(), "{name}");
        for (w, k) in weights.iter().zip(want) {
            assert!(k["name"].as_str().unwrap().ends_with(&*w.name), "{name}: {} vs {}", w.name, k["name"]);
            w.param.assign(&tensor_of(&k["value"])).unwrap();
        }
        let masks: Vec<Option<Tensor>> =
            ["query_mask", "value_mask", "key_mask"].iter().map(|m| c.get(*m).map(tensor_of)).collect();
        let tape = Tape::new();
        let mut rng = Rng::new(0);
        let qv = tape.leaf(q.clone());
        let vv = if selfatt { qv.clone() } else { tape.leaf(val.clone()) };
        let kv = key.map(|k| tape.leaf(k));
        let mut xs = vec![qv.clone(), vv.clone()];
        if let Some(k) = &kv {
            xs.push(k.clone());
        }
        if let Some(m) = &amask {
            if xs.len() == 2 {
                xs.push(vv.clone());
            }
            xs.push(Var::constant(m.clone()));
        }
        let (y, scores) = layer.forward_with_masks(&xs, &masks, &mut Ctx::train(&tape, &mut rng)).unwrap();
        let dy = max_diff(y.value(), &tensor_of(&c["y"]), &format!("{name} output"));
        let ds = max_diff(scores.value(), &tensor_of(&c["scores"]), &format!("{name} scores"));
        assert!(dy <= tol && ds <= tol, "{name}: output differs from Keras by {dy:e}, scores by {ds:e}");
        let loss = y.mul(&Var::constant(tensor_of(&c["w"]))).unwrap().sum_all().unwrap();
        let g = tape.backward(&loss).unwrap();
        let mut srcs = vec![qv];
        if !selfatt {
            srcs.push(vv);
        }
        srcs.extend(kv);
        let grads = c["grads"].as_array().unwrap();
        assert_eq!(grads.len(), srcs.len() + weights.len(), "{name}: gradient count");
        let mut dg = 0f32;
        for (i, s) in srcs.iter().enumerate() {
            dg = dg.max(max_diff(g.get_var(s).unwrap(), &tensor_of(&grads[i]), &format!("{name} d/dinput{i}")));
        }
        for (w, want) in weights.iter().zip(&grads[srcs.len()..]) {
            dg = dg.max(max_diff(g.get(&w.param).unwrap(), &tensor_of(want), &format!("{name} d/d{}", w.name)));
        }
        assert!(dg <= tol, "{name}: gradients differ from Keras by {dg:e}");
        // Keras's fused path (no scores, no dropout) gives the same output where no query is fully masked
        if masks[0].is_none() {
            let fused = max_diff(y.value(), &tensor_of(&c["y_fused"]), &format!("{name} fused output"));
            assert!(fused <= tol, "{name}: {fused:e}");
        }
        worst_y = worst_y.max(dy);
        worst_s = worst_s.max(ds);
        worst_g = worst_g.max(dg);
    }
    eprintln!(
        "GroupQueryAttention vs keras: {} cases, max rel diff {worst_y:e} (outputs), {worst_s:e} (scores), \
         {worst_g:e} (gradients)",
        cases.len()
    );
}

/// The weights of a layout in Keras's shapes, f64, from `seed`: query, key, value, output.
fn f64_weights(seed: u64, [dq, dk, u, g, h]: [usize; 5], bias: bool) -> Vec<Tensor> {
    let shapes: [(Vec<usize>, Vec<usize>); 4] = [
        (vec![dq, u, h], vec![u, h]),
        (vec![dk, g, h], vec![g, h]),
        (vec![dq, g, h], vec![g, h]),
        (vec![u, h, dq], vec![dq]),
    ];
    let mut out = Vec::new();
    for (i, (ks, bs)) in shapes.iter().enumerate() {
        out.push(uniform(seed + 2 * i as u64, ks));
        if bias {
            out.push(uniform(seed + 2 * i as u64 + 1, bs));
        }
    }
    out
}

fn weights_of(v: &[Var], bias: bool) -> MultiHeadAttentionWeights {
    let mut it = v.iter();
    let mut proj = || AttentionProjection {
        kernel: it.next().cloned().expect("kernel"),
        bias: if bias { it.next().cloned() } else { None },
    };
    MultiHeadAttentionWeights { query: proj(), key: proj(), value: proj(), output: proj() }
}

#[test]
fn gradients_match_finite_differences() {
    let (b, tq, tv, dq, dk) = (2, 3, 4, 3, 3);
    let m: Vec<f64> = (0..b * tq * tv).map(|i| if i % 5 == 3 { 0.0 } else { 1.0 }).collect();
    let mask = Var::constant(Tensor::from_vec(m, [b, tq, tv]).unwrap());
    for (i, (layer, bias)) in [
        (GroupQueryAttention::new(2, 4, 2), true),
        (GroupQueryAttention::new(2, 2, 1).use_causal_mask(true), true),
        (GroupQueryAttention::new(3, 2, 2).use_bias(false), false),
    ]
    .into_iter()
    .enumerate()
    {
        let c = layer.get_config();
        let (u, g, h) = (c.num_query_heads, c.num_key_value_heads, c.head_dim);
        let s = 100 * i as u64;
        let mut inputs = vec![uniform(s + 1, &[b, tq, dq]), uniform(s + 2, &[b, tv, dq]), uniform(s + 3, &[b, tv, dk])];
        inputs.extend(f64_weights(s + 10, [dq, dk, u, g, h], bias));
        let report = gradcheck(
            |v: &[Var]| {
                let w = weights_of(&v[3..], bias);
                let xs = [v[0].clone(), v[1].clone(), v[2].clone(), mask.clone()];
                let (a, pa) = layer.forward_with_weights(&xs, &w, &mut Ctx::inference()).expect("forward");
                let (b, _) = layer.forward_with_weights(&xs[..2], &w, &mut Ctx::inference()).expect("forward");
                Var::concat(&[&a.flatten_from(0)?, &b.flatten_from(0)?, &pa.flatten_from(0)?], 0)
            },
            &inputs,
        )
        .unwrap_or_else(|e| panic!("layer {i}: {e}"));
        assert!(report.checked > 100, "{report}");
    }
}

/// With one key/value head per query head, GroupQueryAttention is MultiHeadAttention with
/// key_dim = value_dim = head_dim; with fewer, it is MultiHeadAttention whose key and value
/// kernels repeat each group's heads.
#[test]
fn agrees_with_multi_head_attention_on_repeated_heads() {
    let (b, tq, tv, d, dk) = (2, 3, 4, 5, 3);
    for (u, g, h) in [(3, 3, 2), (4, 2, 3), (3, 1, 2)] {
        let r = u / g;
        let ws = f64_weights(7, [d, dk, u, g, h], true);
        // key/value [dim, g, h] -> [dim, u, h], biases [g, h] -> [u, h]: each head r times
        let repeat = |t: &Tensor| -> Tensor {
            let v = t.to_vec_f64().unwrap();
            let (lead, gg, hh) = match t.dims() {
                [a, b2, c] => (*a, *b2, *c),
                [b2, c] => (1, *b2, *c),
                _ => unreachable!(),
            };
            let mut out = Vec::new();
            for a in 0..lead {
                for gi in 0..gg {
                    for _ in 0..r {
                        out.extend_from_slice(&v[(a * gg + gi) * hh..(a * gg + gi + 1) * hh]);
                    }
                }
            }
            let mut dims = t.dims().to_vec();
            let n = dims.len();
            dims[n - 2] = gg * r;
            Tensor::from_vec(out, dims).unwrap()
        };
        let mut mha_ws = ws.clone();
        for i in [2, 3, 4, 5] {
            mha_ws[i] = repeat(&ws[i]);
        }
        let xs: Vec<Var> = [uniform(1, &[b, tq, d]), uniform(2, &[b, tv, d]), uniform(3, &[b, tv, dk])]
            .into_iter()
            .map(Var::constant)
            .collect();
        let gqa = GroupQueryAttention::new(h, u, g).use_causal_mask(true);
        let mha = MultiHeadAttention::new(u, h).use_causal_mask(true);
        let consts = |t: &[Tensor]| t.iter().cloned().map(Var::constant).collect::<Vec<_>>();
        let (a, pa) = gqa.forward_with_weights(&xs, &weights_of(&consts(&ws), true), &mut Ctx::inference()).unwrap();
        let (m, pm) =
            mha.forward_with_weights(&xs, &weights_of(&consts(&mha_ws), true), &mut Ctx::inference()).unwrap();
        for (x, y) in [(a, m), (pa, pm)] {
            let (x, y) = (x.value().to_vec_f64().unwrap(), y.value().to_vec_f64().unwrap());
            assert_eq!(x.len(), y.len());
            assert!(x.iter().zip(&y).all(|(p, q)| (p - q).abs() < 1e-12), "({u}, {g}, {h})");
        }
    }
}

#[test]
fn output_shape_is_the_forward_shape() {
    for (layer, shapes) in [
        (GroupQueryAttention::new(3, 4, 2), vec![vec![4, 6], vec![5, 6]]),
        (GroupQueryAttention::new(2, 3, 1), vec![vec![4, 6], vec![5, 6], vec![5, 2]]),
        (GroupQueryAttention::new(2, 2, 2).use_causal_mask(true), vec![vec![4, 6], vec![4, 6], vec![4, 3]]),
        (GroupQueryAttention::new(2, 4, 4).use_bias(false), vec![vec![2, 3], vec![6, 3], vec![6, 3], vec![2, 6]]),
    ] {
        let mut layer = layer;
        let want = layer.output_shape_multi(&shapes).unwrap();
        assert_eq!(want, vec![shapes[0][0], shapes[0][1]]);
        layer.build_multi(&shapes, &mut Rng::new(1)).unwrap();
        let xs: Vec<Var> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut full = vec![3];
                full.extend(s);
                Var::constant(rand(i as u64, &full, DType::F32))
            })
            .collect();
        let y = layer.forward_logits_multi(&xs, &mut Ctx::inference()).unwrap();
        assert_eq!(&y.dims()[1..], &want[..]);
        assert_eq!(y.dims()[0], 3);
    }
    // Keras's weight shapes and names
    let mut layer = GroupQueryAttention::new(3, 4, 2).with_name("gqa");
    layer.build_multi(&[vec![4, 6], vec![5, 6], vec![5, 7]], &mut Rng::new(1)).unwrap();
    let got: Vec<(String, Vec<usize>)> =
        layer.weights().iter().map(|w| (w.name.to_string(), w.param.value().dims().to_vec())).collect();
    let want = [
        ("query/kernel", vec![6, 4, 3]),
        ("query/bias", vec![4, 3]),
        ("key/kernel", vec![7, 2, 3]),
        ("key/bias", vec![2, 3]),
        ("value/kernel", vec![6, 2, 3]),
        ("value/bias", vec![2, 3]),
        ("attention_output/kernel", vec![4, 3, 6]),
        ("attention_output/bias", vec![6]),
    ];
    assert_eq!(got, want.map(|(n, d)| (n.to_string(), d)).to_vec());
}

#[test]
fn bad_inputs_and_configs_are_errors_naming_layer_and_values() {
    let layer = GroupQueryAttention::new(3, 4, 2).with_name("gqa");
    let err = |l: &GroupQueryAttention, shapes: &[Vec<usize>]| l.output_shape_multi(shapes).unwrap_err().to_string();
    // heads that do not divide
    let bad = GroupQueryAttention::new(3, 4, 3).with_name("uneven");
    let e = err(&bad, &[vec![4, 6], vec![5, 6]]);
    assert!(e.contains("uneven") && e.contains("GroupQueryAttention") && e.contains("(4)") && e.contains("(3)"), "{e}");
    let mut b2 = GroupQueryAttention::new(3, 4, 3).with_name("uneven");
    assert!(b2.build_multi(&[vec![4, 6], vec![5, 6]], &mut Rng::new(0)).unwrap_err().to_string().contains("divisible"));
    for (bad, needle) in [
        (GroupQueryAttention::new(0, 4, 2), "head_dim"),
        (GroupQueryAttention::new(3, 0, 2), "num_query_heads"),
        (GroupQueryAttention::new(3, 4, 0), "num_key_value_heads"),
        (GroupQueryAttention::new(3, 4, 2).dropout(1.0), "dropout"),
    ] {
        let e = err(&bad.with_name("cfg"), &[vec![4, 6], vec![5, 6]]);
        assert!(e.contains("cfg") && e.contains(needle), "{e}");
    }
    // ranks
    let e = err(&layer, &[vec![6], vec![5, 6]]);
    assert!(e.contains("gqa") && e.contains("query") && e.contains("[6]"), "{e}");
    let e = err(&layer, &[vec![4, 6], vec![2, 5, 6]]);
    assert!(e.contains("value") && e.contains("[2, 5, 6]"), "{e}");
    // the value must have the query's features, the key the value's length
    let e = err(&layer, &[vec![4, 6], vec![5, 7]]);
    assert!(e.contains("gqa") && e.contains("6 features") && e.contains("[5, 7]"), "{e}");
    let e = err(&layer, &[vec![4, 6], vec![5, 6], vec![3, 6]]);
    assert!(e.contains("gqa") && e.contains("5 timesteps") && e.contains("[3, 6]"), "{e}");
    // input counts, mask shape
    for n in [0, 1, 5] {
        let e = err(&layer, &vec![vec![4, 6]; n]);
        assert!(e.contains("gqa") && e.contains(&format!("got {n} input")), "{e}");
    }
    let e = err(&layer, &[vec![4, 6], vec![5, 6], vec![5, 6], vec![5, 4]]);
    assert!(e.contains("attention_mask") && e.contains("[4, 5]") && e.contains("[5, 4]"), "{e}");
    // forward before build, other features than built for, mismatched batches, explicit weights
    let mut layer = GroupQueryAttention::new(3, 4, 2).with_name("gqa");
    let x = |dims: &[usize]| Var::constant(rand(1, dims, DType::F32));
    let e = layer.forward_logits_multi(&[x(&[2, 4, 6]), x(&[2, 5, 6])], &mut Ctx::inference()).unwrap_err();
    assert!(matches!(e, keel_nn::Error::NotBuilt { .. }), "{e}");
    layer.build_multi(&[vec![4, 6], vec![5, 6]], &mut Rng::new(1)).unwrap();
    let e = layer.build_multi(&[vec![4, 6], vec![5, 6], vec![5, 8]], &mut Rng::new(1)).unwrap_err().to_string();
    assert!(e.contains("gqa") && e.contains("already built"), "{e}");
    let e = layer.forward_logits_multi(&[x(&[2, 4, 6]), x(&[2, 5, 6]), x(&[2, 5, 8])], &mut Ctx::inference());
    assert!(e.unwrap_err().to_string().contains("built for"));
    let e = layer.forward_logits_multi(&[x(&[2, 4, 6]), x(&[3, 5, 6])], &mut Ctx::inference()).unwrap_err();
    assert!(e.to_string().contains("batch size 2, got a batch of 3"), "{e}");
    let wrong = weights_of(
        &f64_weights(1, [6, 6, 4, 4, 3], true)
            .into_iter()
            .map(|t| Var::constant(t.to_dtype(DType::F32).unwrap()))
            .collect::<Vec<_>>(),
        true,
    );
    let e = layer.forward_with_weights(&[x(&[2, 4, 6]), x(&[2, 5, 6])], &wrong, &mut Ctx::inference()).unwrap_err();
    assert!(e.to_string().contains("gqa") && e.to_string().contains("key/kernel must be [6, 2, 3]"), "{e}");
    // a query mask of the wrong shape
    let e = layer.forward_with_masks(
        &[x(&[2, 4, 6]), x(&[2, 5, 6])],
        &[Some(Tensor::from_vec(vec![1f32; 10], [2, 5]).unwrap())],
        &mut Ctx::inference(),
    );
    assert!(e.unwrap_err().to_string().contains("a mask [2, 4] for the query"));
    // in a functional graph the error comes when the layer is called
    let (a, b) = (Input::new([4, 6]), Input::new([5, 7]));
    let e = GroupQueryAttention::new(3, 4, 2).call_multi(&[a, b]).unwrap_err().to_string();
    assert!(e.contains("[5, 7]") && e.contains("6 features"), "{e}");
}

#[test]
fn dropout_applies_in_training_only_and_is_reproducible() {
    let mut layer = GroupQueryAttention::new(2, 4, 2).dropout(0.5);
    layer.build_multi(&[vec![3, 4], vec![5, 4]], &mut Rng::new(3)).unwrap();
    let xs = [Var::constant(rand(1, &[2, 3, 4], DType::F32)), Var::constant(rand(2, &[2, 5, 4], DType::F32))];
    let infer =
        |l: &GroupQueryAttention| l.forward_logits_multi(&xs, &mut Ctx::inference()).unwrap().value().to_vec_f64();
    let mut no_drop =
        GroupQueryAttention::from_config(GroupQueryAttentionConfig { dropout: 0.0, ..layer.get_config().clone() });
    no_drop.build_multi(&[vec![3, 4], vec![5, 4]], &mut Rng::new(3)).unwrap();
    assert_eq!(infer(&layer).unwrap(), infer(&no_drop).unwrap());
    let train = |seed: u64| {
        let tape = Tape::new();
        let mut rng = Rng::new(seed);
        layer.forward_logits_multi(&xs, &mut Ctx::train(&tape, &mut rng)).unwrap().value().to_vec_f64().unwrap()
    };
    assert_eq!(train(5), train(5));
    assert_ne!(train(5), train(6));
    assert_ne!(train(5), infer(&layer).unwrap());
}

/// Masks flow as in MultiHeadAttention: after `Embedding(mask_zero)`, padded keys are ignored
/// (appending padding leaves the unpadded positions' outputs unchanged).
#[test]
fn embedding_masks_hide_padded_keys() {
    let ids = Input::new([6]);
    let e = Embedding::new(10, 4).mask_zero(true).call(&ids).unwrap();
    let att = GroupQueryAttention::new(2, 4, 2).call_multi(&[e.clone(), e]).unwrap();
    let model = Model::with_seed(&[ids], &[att], 4).unwrap();
    let toks = |v: Vec<i64>| Tensor::from_vec(v, [1, 6]).unwrap();
    assert!(model.get_layer("grouped_query_attention").is_some(), "auto-named like Keras");
    let a = model.predict(&[toks(vec![3, 1, 4, 0, 0, 0])]).unwrap()[0].to_vec_f64().unwrap();
    // the first three positions attend only to the first three tokens: the same as a length-3 input
    let ids3 = Input::new([3]);
    let e3 = Embedding::new(10, 4).mask_zero(true).call(&ids3).unwrap();
    let att3 = GroupQueryAttention::new(2, 4, 2).call_multi(&[e3.clone(), e3]).unwrap();
    let model3 = Model::with_seed(&[ids3], &[att3], 4).unwrap();
    for (w3, w6) in model3.named_weights().iter().zip(model.named_weights().iter()) {
        w3.param.assign(&w6.param.value()).unwrap();
    }
    let c = model3.predict(&[Tensor::from_vec(vec![3i64, 1, 4], [1, 3]).unwrap()]).unwrap()[0].to_vec_f64().unwrap();
    for (x, y) in a[..12].iter().zip(&c) {
        assert!((x - y).abs() < 1e-6, "{x} vs {y}");
    }
}
