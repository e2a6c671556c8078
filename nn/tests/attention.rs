//! MultiHeadAttention: values against a float64 loop reference, masks, gradients, shapes,
//! errors, dropout, and the layer in a functional model.

use keel_autograd::{gradcheck, Var};
use keel_nn::prelude::*;
use keel_nn::{AttentionProjection, MultiHeadAttentionWeights};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};

fn rand(seed: u64, shape: &[usize], dtype: DType) -> Tensor {
    Tensor::rand_uniform(seed, -1.0, 1.0, shape, dtype, &Device::Cpu).unwrap()
}

fn vals(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

/// Sizes of one reference problem.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    tq: usize,
    tv: usize,
    dq: usize,
    dv: usize,
    dk: usize,
    heads: usize,
    kd: usize,
    vd: usize,
    out: usize,
}

/// Multi-head attention in f64 with plain loops, from the layer's formulas (not its code):
/// `w` holds query/key/value/output kernels and biases (empty biases: none) in Keras's
/// shapes, row-major; `allow(b, i, j)` says whether query `i` may attend to key `j`.
/// Returns the output `[b, tq, out]` and the probabilities `[b, heads, tq, tv]`.
fn reference(
    d: Dims,
    q: &[f64],
    v: &[f64],
    k: &[f64],
    w: &[Vec<f64>; 8],
    allow: &dyn Fn(usize, usize, usize) -> bool,
) -> (Vec<f64>, Vec<f64>) {
    // project x [b, t, dim] with kernel [dim, heads, width] + bias [heads, width] -> [b, t, heads, width]
    let project = |x: &[f64], t: usize, dim: usize, kern: &[f64], bias: &[f64], width: usize| {
        let mut y = vec![0.0; d.b * t * d.heads * width];
        for bb in 0..d.b {
            for tt in 0..t {
                for h in 0..d.heads {
                    for c in 0..width {
                        let mut s = if bias.is_empty() { 0.0 } else { bias[h * width + c] };
                        for i in 0..dim {
                            s += x[(bb * t + tt) * dim + i] * kern[(i * d.heads + h) * width + c];
                        }
                        y[((bb * t + tt) * d.heads + h) * width + c] = s;
                    }
                }
            }
        }
        y
    };
    let pq = project(q, d.tq, d.dq, &w[0], &w[1], d.kd);
    let pk = project(k, d.tv, d.dk, &w[2], &w[3], d.kd);
    let pv = project(v, d.tv, d.dv, &w[4], &w[5], d.vd);
    let scale = 1.0 / (d.kd as f64).sqrt();
    let mut probs = vec![0.0; d.b * d.heads * d.tq * d.tv];
    let mut out = vec![0.0; d.b * d.tq * d.out];
    for bb in 0..d.b {
        for i in 0..d.tq {
            // context [heads, vd] of query i
            let mut ctx = vec![0.0; d.heads * d.vd];
            for h in 0..d.heads {
                let mut s = vec![f64::NEG_INFINITY; d.tv];
                for j in 0..d.tv {
                    if allow(bb, i, j) {
                        s[j] = (0..d.kd)
                            .map(|c| {
                                pq[((bb * d.tq + i) * d.heads + h) * d.kd + c]
                                    * scale
                                    * pk[((bb * d.tv + j) * d.heads + h) * d.kd + c]
                            })
                            .sum();
                    }
                }
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|&x| if x == f64::NEG_INFINITY { 0.0 } else { (x - m).exp() }).collect();
                let z: f64 = e.iter().sum();
                for j in 0..d.tv {
                    let p = if z > 0.0 { e[j] / z } else { 0.0 };
                    probs[((bb * d.heads + h) * d.tq + i) * d.tv + j] = p;
                    for c in 0..d.vd {
                        ctx[h * d.vd + c] += p * pv[((bb * d.tv + j) * d.heads + h) * d.vd + c];
                    }
                }
            }
            for o in 0..d.out {
                let mut s = if w[7].is_empty() { 0.0 } else { w[7][o] };
                for h in 0..d.heads {
                    for c in 0..d.vd {
                        s += ctx[h * d.vd + c] * w[6][(h * d.vd + c) * d.out + o];
                    }
                }
                out[(bb * d.tq + i) * d.out + o] = s;
            }
        }
    }
    (out, probs)
}

/// The layer's weights in Keras's order as f64 vectors (biases empty without use_bias).
fn weights_of(layer: &MultiHeadAttention) -> [Vec<f64>; 8] {
    let ws = layer.weights();
    let get = |n: &str| ws.iter().find(|w| w.name == n).map(|w| vals(&w.param.value())).unwrap_or_default();
    [
        get("query/kernel"),
        get("query/bias"),
        get("key/kernel"),
        get("key/bias"),
        get("value/kernel"),
        get("value/bias"),
        get("attention_output/kernel"),
        get("attention_output/bias"),
    ]
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what}[{i}]: {g} vs {w}");
    }
}

/// A built layer (non-zero biases) and F32 inputs `[query, value, key]` for `d`.
fn setup(d: Dims, layer: MultiHeadAttention, seed: u64) -> (MultiHeadAttention, [Tensor; 3]) {
    let mut layer = layer.bias_initializer(Initializer::RandomNormal { mean: 0.0, stddev: 0.3 });
    layer.build_multi(&[vec![d.tq, d.dq], vec![d.tv, d.dv], vec![d.tv, d.dk]], &mut Rng::new(seed)).unwrap();
    let q = rand(seed + 1, &[d.b, d.tq, d.dq], DType::F32);
    let v = rand(seed + 2, &[d.b, d.tv, d.dv], DType::F32);
    let k = rand(seed + 3, &[d.b, d.tv, d.dk], DType::F32);
    (layer, [q, v, k])
}

fn run(layer: &MultiHeadAttention, xs: &[&Tensor]) -> (Tensor, Tensor) {
    let vars: Vec<Var> = xs.iter().map(|t| Var::constant((*t).clone())).collect();
    let (o, p) = layer.forward_with_scores(&vars, &mut Ctx::inference()).unwrap();
    (o.into_value(), p.into_value())
}

const D: Dims = Dims { b: 2, tq: 3, tv: 5, dq: 6, dv: 7, dk: 4, heads: 2, kd: 3, vd: 4, out: 5 };

#[test]
fn forward_matches_a_float64_loop_reference() {
    let (layer, [q, v, k]) = setup(D, MultiHeadAttention::new(2, 3).value_dim(4).output_shape(5), 1);
    // Keras's weight names, order and shapes
    let ws = layer.weights();
    let names: Vec<String> = ws.iter().map(|w| w.name.to_string()).collect();
    assert_eq!(
        names,
        [
            "query/kernel",
            "query/bias",
            "key/kernel",
            "key/bias",
            "value/kernel",
            "value/bias",
            "attention_output/kernel",
            "attention_output/bias"
        ]
    );
    let shapes: Vec<Vec<usize>> = ws.iter().map(|w| w.param.value().dims().to_vec()).collect();
    let want: Vec<Vec<usize>> =
        vec![vec![6, 2, 3], vec![2, 3], vec![4, 2, 3], vec![2, 3], vec![7, 2, 4], vec![2, 4], vec![2, 4, 5], vec![5]];
    assert_eq!(shapes, want);
    assert_eq!(layer.count_params(), 36 + 6 + 24 + 6 + 56 + 8 + 40 + 5);
    let w = weights_of(&layer);
    let all = |_: usize, _: usize, _: usize| true;
    // [query, value, key]
    let (out, probs) = run(&layer, &[&q, &v, &k]);
    assert_eq!(out.dims(), [2, 3, 5]);
    assert_eq!(probs.dims(), [2, 2, 3, 5]);
    let (ro, rp) = reference(D, &vals(&q), &vals(&v), &vals(&k), &w, &all);
    assert_close(&vals(&out), &ro, 1e-5, "output");
    assert_close(&vals(&probs), &rp, 1e-5, "probabilities");
    // [query, value]: the key is the value (key_dim features of the value)
    let d2 = Dims { dk: 7, ..D };
    let (layer2, [q2, v2, _]) = setup(d2, MultiHeadAttention::new(2, 3).value_dim(4).output_shape(5), 7);
    let (out2, _) = run(&layer2, &[&q2, &v2]);
    let (ro2, _) = reference(d2, &vals(&q2), &vals(&v2), &vals(&v2), &weights_of(&layer2), &all);
    assert_close(&vals(&out2), &ro2, 1e-5, "key = value");
    // no biases, default value_dim (= key_dim) and output size (= the query's)
    let d3 = Dims { vd: 3, out: 6, ..D };
    let (layer3, [q3, v3, k3]) = setup(d3, MultiHeadAttention::new(2, 3).use_bias(false), 3);
    assert_eq!(layer3.weights().len(), 4);
    let (out3, _) = run(&layer3, &[&q3, &v3, &k3]);
    assert_eq!(out3.dims(), [2, 3, 6]);
    let (ro3, _) = reference(d3, &vals(&q3), &vals(&v3), &vals(&k3), &weights_of(&layer3), &all);
    assert_close(&vals(&out3), &ro3, 1e-5, "no bias");
}

#[test]
fn kernels_use_keras_glorot_fans_for_einsum_kernels() {
    let mut layer = MultiHeadAttention::new(4, 8).value_dim(6).output_shape(10);
    layer.build_multi(&[vec![3, 32], vec![5, 16], vec![5, 24]], &mut Rng::new(5)).unwrap();
    // Keras 3.15's EinsumDense fans (keras-team/keras#22789): a projection [d, h, w] has
    // (d, h*w), the output kernel [h, v, o] has (h*v, o); Keras 3.15.1 draws max|w| =
    // sqrt(6/48) for MHA(8, 4) on 16 features (measured by the review)
    for (w, (fan_in, fan_out)) in
        layer.weights().iter().filter(|w| w.name.ends_with("kernel")).zip([(32, 32), (24, 32), (16, 24), (24, 10)])
    {
        let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
        let max = vals(&w.param.value()).iter().fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(max <= limit * (1.0 + 1e-6) && max > 0.9 * limit, "{}: max {max}, limit {limit}", w.name);
    }
    for w in layer.weights().iter().filter(|w| w.name.ends_with("bias")) {
        assert!(vals(&w.param.value()).iter().all(|&x| x == 0.0), "{}", w.name);
    }
    // the same seed draws the same weights
    let mut again = MultiHeadAttention::new(4, 8).value_dim(6).output_shape(10);
    again.build_multi(&[vec![3, 32], vec![5, 16], vec![5, 24]], &mut Rng::new(5)).unwrap();
    assert_eq!(weights_of(&layer), weights_of(&again));
}

#[test]
fn causal_mask_hides_later_positions() {
    // self-attention: query, value and key are the same sequence
    let d = Dims { b: 2, tq: 6, tv: 6, dq: 4, dv: 4, dk: 4, heads: 2, kd: 3, vd: 3, out: 4 };
    let (layer, [x, _, _]) = setup(d, MultiHeadAttention::new(2, 3).use_causal_mask(true), 11);
    let (out, probs) = run(&layer, &[&x, &x]);
    let causal = |_: usize, i: usize, j: usize| j <= i;
    let xv = vals(&x);
    let (ro, rp) = reference(d, &xv, &xv, &xv, &weights_of(&layer), &causal);
    assert_close(&vals(&out), &ro, 1e-5, "causal output");
    assert_close(&vals(&probs), &rp, 1e-5, "causal probabilities");
    let p = vals(&probs);
    for (r, row) in p.chunks(6).enumerate() {
        let i = r % 6;
        assert!(row[i + 1..].iter().all(|&x| x == 0.0), "row {r}: {row:?}");
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-6);
    }
    // perturbing the sequence from position t on leaves the outputs before t unchanged
    let out = vals(&out);
    for t in 1..6 {
        let mut y = xv.clone();
        for b in 0..2 {
            for s in t..6 {
                for f in 0..4 {
                    y[(b * 6 + s) * 4 + f] += 0.5 + 0.1 * f as f64;
                }
            }
        }
        let y = Tensor::from_vec(y.iter().map(|&v| v as f32).collect::<Vec<_>>(), [2, 6, 4]).unwrap();
        let moved = vals(&run(&layer, &[&y, &y]).0);
        for b in 0..2 {
            for s in 0..6 {
                let row = (b * 6 + s) * 4..(b * 6 + s + 1) * 4;
                let diff = out[row.clone()].iter().zip(&moved[row]).map(|(a, c)| (a - c).abs()).fold(0.0, f64::max);
                if s < t {
                    assert!(diff < 1e-6, "t={t}: output {s} moved by {diff}");
                } else {
                    assert!(diff > 1e-3, "t={t}: output {s} did not move");
                }
            }
        }
    }
    // perturbing only a later key (value fixed) changes nothing earlier either
    let (cross, [q, v, k]) = setup(Dims { tq: 4, tv: 4, ..D }, MultiHeadAttention::new(2, 3).use_causal_mask(true), 2);
    let base = vals(&run(&cross, &[&q, &v, &k]).0);
    let mut kv = vals(&k);
    for f in 0..4 {
        kv[3 * 4 + f] += 1.0; // batch 0, key position 3
    }
    let k2 = Tensor::from_vec(kv.iter().map(|&v| v as f32).collect::<Vec<_>>(), k.dims()).unwrap();
    let moved = vals(&run(&cross, &[&q, &v, &k2]).0);
    let per_row = 6; // output features (the query's)
    for i in 0..4 {
        let diff = (0..per_row).map(|c| (base[i * per_row + c] - moved[i * per_row + c]).abs()).fold(0.0, f64::max);
        assert_eq!(diff < 1e-6, i < 3, "query {i}: {diff}");
    }
    // query and key lengths differ: query i attends to keys j <= i (Keras's mask is top-left aligned)
    let dr = Dims { tq: 3, tv: 5, ..D };
    let (rect, [q, v, k]) =
        setup(dr, MultiHeadAttention::new(2, 3).value_dim(4).output_shape(5).use_causal_mask(true), 4);
    let (o, p) = run(&rect, &[&q, &v, &k]);
    let (ro, rp) = reference(dr, &vals(&q), &vals(&v), &vals(&k), &weights_of(&rect), &causal);
    assert_close(&vals(&o), &ro, 1e-5, "rectangular causal output");
    assert_close(&vals(&p), &rp, 1e-5, "rectangular causal probabilities");
}

/// A random 0/1 mask `[b, tq, tv]` (as F32) with query row 1 of batch 0 fully masked.
fn attention_mask(d: Dims, seed: u64) -> Vec<f32> {
    let r = vals(&rand(seed, &[d.b, d.tq, d.tv], DType::F64));
    r.iter()
        .enumerate()
        .map(|(n, &x)| {
            let (b, i) = (n / (d.tq * d.tv), n / d.tv % d.tq);
            if b == 0 && i == 1 {
                0.0
            } else {
                f32::from(x > -0.3)
            }
        })
        .collect()
}

#[test]
fn an_attention_mask_input_combines_with_the_causal_mask() {
    let d = Dims { tq: 4, tv: 5, ..D };
    let m = attention_mask(d, 21);
    let mask = Tensor::from_vec(m.clone(), [d.b, d.tq, d.tv]).unwrap();
    let allowed = |b: usize, i: usize, j: usize| m[(b * d.tq + i) * d.tv + j] != 0.0;
    for causal in [false, true] {
        let layer = MultiHeadAttention::new(2, 3).value_dim(4).output_shape(5).use_causal_mask(causal);
        let (layer, [q, v, k]) = setup(d, layer, 30);
        let allow = |b: usize, i: usize, j: usize| allowed(b, i, j) && (!causal || j <= i);
        let (o, p) = run(&layer, &[&q, &v, &k, &mask]);
        let w = weights_of(&layer);
        let (ro, rp) = reference(d, &vals(&q), &vals(&v), &vals(&k), &w, &allow);
        assert_close(&vals(&o), &ro, 1e-5, "masked output");
        assert_close(&vals(&p), &rp, 1e-5, "masked probabilities");
        // a fully masked row attends to nothing (Keras's Softmax zeroes it): its output is the bias
        let o = vals(&o);
        assert_close(&o[5..10], &w[7], 1e-6, "fully masked row");
        // an integer mask works the same
        let imask = Tensor::from_vec(m.iter().map(|&x| x as i64 * 3).collect::<Vec<_>>(), mask.dims()).unwrap();
        assert_eq!(vals(&run(&layer, &[&q, &v, &k, &imask]).0), o);
    }
}

#[test]
fn gradients_match_finite_differences() {
    let d = Dims { b: 2, tq: 3, tv: 4, dq: 3, dv: 2, dk: 3, heads: 2, kd: 2, vd: 3, out: 2 };
    let m = attention_mask(d, 5);
    let mask = Var::constant(Tensor::from_vec(m, [d.b, d.tq, d.tv]).unwrap());
    for (i, layer) in [
        MultiHeadAttention::new(2, 2).value_dim(3).output_shape(2),
        MultiHeadAttention::new(2, 2).value_dim(3).output_shape(2).use_causal_mask(true),
        MultiHeadAttention::new(2, 2).value_dim(3).output_shape(2).use_bias(false),
    ]
    .into_iter()
    .enumerate()
    {
        let with_bias = i != 2;
        let f64r = |s: u64, shape: &[usize]| rand(100 * i as u64 + s, shape, DType::F64);
        let mut inputs = vec![f64r(1, &[d.b, d.tq, d.dq]), f64r(2, &[d.b, d.tv, d.dv]), f64r(3, &[d.b, d.tv, d.dk])];
        let shapes = [
            (vec![d.dq, d.heads, d.kd], vec![d.heads, d.kd]),
            (vec![d.dk, d.heads, d.kd], vec![d.heads, d.kd]),
            (vec![d.dv, d.heads, d.vd], vec![d.heads, d.vd]),
            (vec![d.heads, d.vd, d.out], vec![d.out]),
        ];
        for (n, (ks, bs)) in shapes.iter().enumerate() {
            inputs.push(f64r(10 + n as u64, ks));
            if with_bias {
                inputs.push(f64r(20 + n as u64, bs));
            }
        }
        let report = gradcheck(
            |v: &[Var]| {
                let mut w = v[3..].iter();
                let mut proj = || AttentionProjection {
                    kernel: w.next().cloned().expect("kernel"),
                    bias: if with_bias { w.next().cloned() } else { None },
                };
                let weights = MultiHeadAttentionWeights { query: proj(), key: proj(), value: proj(), output: proj() };
                // with and without the attention mask, both into the check
                let xs = [v[0].clone(), v[1].clone(), v[2].clone(), mask.clone()];
                let (a, pa) = layer.forward_with_weights(&xs, &weights, &mut Ctx::inference()).expect("forward");
                let (b, _) = layer.forward_with_weights(&xs[..3], &weights, &mut Ctx::inference()).expect("forward");
                Var::concat(&[&a.flatten_from(0)?, &b.flatten_from(0)?, &pa.flatten_from(0)?], 0)
            },
            &inputs,
        )
        .unwrap_or_else(|e| panic!("layer {i}: {e}"));
        assert!(report.checked > 100, "{report}");
    }
}

#[test]
fn output_shape_is_the_forward_shape() {
    for (layer, shapes) in [
        (MultiHeadAttention::new(2, 3), vec![vec![4, 6], vec![5, 7]]),
        (MultiHeadAttention::new(1, 2).output_shape(9), vec![vec![4, 6], vec![5, 7], vec![5, 2]]),
        (MultiHeadAttention::new(3, 2).value_dim(5).use_causal_mask(true), vec![vec![4, 6], vec![4, 6], vec![4, 3]]),
        (MultiHeadAttention::new(2, 2).use_bias(false), vec![vec![2, 3], vec![6, 3], vec![6, 3], vec![2, 6]]),
    ] {
        let mut layer = layer;
        let want = layer.output_shape_multi(&shapes).unwrap();
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
}

#[test]
fn bad_inputs_and_configs_are_errors_naming_layer_and_shapes() {
    let layer = MultiHeadAttention::new(2, 3).with_name("att");
    let err = |shapes: &[Vec<usize>]| layer.output_shape_multi(shapes).unwrap_err().to_string();
    // key and value lengths differ
    let e = err(&[vec![4, 6], vec![5, 7], vec![3, 7]]);
    assert!(
        e.contains("att") && e.contains("MultiHeadAttention") && e.contains("[3, 7]") && e.contains("[5, 7]"),
        "{e}"
    );
    // ranks
    let e = err(&[vec![6], vec![5, 7]]);
    assert!(e.contains("att") && e.contains("query") && e.contains("[6]"), "{e}");
    let e = err(&[vec![4, 6], vec![2, 5, 7]]);
    assert!(e.contains("value") && e.contains("[2, 5, 7]"), "{e}");
    // input counts
    for n in [0, 1, 5] {
        let e = err(&vec![vec![4, 6]; n]);
        assert!(e.contains("att") && e.contains(&format!("got {n} input")), "{e}");
    }
    // a mask of the wrong shape
    let e = err(&[vec![4, 6], vec![5, 7], vec![5, 7], vec![5, 4]]);
    assert!(e.contains("attention_mask") && e.contains("[4, 5]") && e.contains("[5, 4]"), "{e}");
    // configs
    for (bad, needle) in [
        (MultiHeadAttention::new(0, 3), "num_heads"),
        (MultiHeadAttention::new(2, 0), "key_dim"),
        (MultiHeadAttention::new(2, 3).dropout(1.0), "dropout"),
        (MultiHeadAttention::new(2, 3).output_shape(0), "output_shape"),
    ] {
        let bad = bad.with_name("cfg");
        let e = bad.output_shape_multi(&[vec![4, 6], vec![5, 7]]).unwrap_err().to_string();
        assert!(e.contains("cfg") && e.contains(needle), "{e}");
    }
    // forward before build, other features than built for, mismatched batches
    let mut layer = MultiHeadAttention::new(2, 3).with_name("att");
    let x = |dims: &[usize]| Var::constant(rand(1, dims, DType::F32));
    let e = layer.forward_logits_multi(&[x(&[2, 4, 6]), x(&[2, 5, 7])], &mut Ctx::inference()).unwrap_err();
    assert!(matches!(e, keel_nn::Error::NotBuilt { .. }), "{e}");
    layer.build_multi(&[vec![4, 6], vec![5, 7]], &mut Rng::new(1)).unwrap();
    layer.build_multi(&[vec![9, 6], vec![2, 7]], &mut Rng::new(1)).unwrap(); // other lengths: same weights
    let e = layer.build_multi(&[vec![4, 6], vec![5, 8]], &mut Rng::new(1)).unwrap_err().to_string();
    assert!(e.contains("att") && e.contains("already built"), "{e}");
    let e = layer.forward_logits_multi(&[x(&[2, 4, 6]), x(&[2, 5, 8])], &mut Ctx::inference()).unwrap_err();
    assert!(e.to_string().contains("built for"), "{e}");
    let e = layer.forward_logits_multi(&[x(&[2, 4, 6]), x(&[3, 5, 7])], &mut Ctx::inference()).unwrap_err();
    assert!(e.to_string().contains("batch size 2, got a batch of 3"), "{e}");
    let e = layer.forward_logits_multi(&[x(&[2, 4, 6])], &mut Ctx::inference()).unwrap_err();
    assert!(e.to_string().contains("got 1 input"), "{e}");
    // in a functional graph the error comes when the layer is called
    let (a, b) = (Input::new([4, 6]), Input::new([5, 7]));
    let e = MultiHeadAttention::new(2, 3).call_multi(&[a, b.clone(), Input::new([4, 7])]).unwrap_err().to_string();
    assert!(e.contains("[4, 7]") && e.contains("5 timesteps"), "{e}");
}

#[test]
fn dropout_applies_in_training_only_and_is_reproducible() {
    let (layer, [q, v, k]) = setup(D, MultiHeadAttention::new(2, 3).value_dim(4).output_shape(5).dropout(0.5), 8);
    let xs: Vec<Var> = [&q, &v, &k].iter().map(|t| Var::constant((*t).clone())).collect();
    let train = |seed: u64| {
        let mut rng = Rng::new(seed);
        let mut ctx = Ctx::new(None, true, Some(&mut rng));
        let (o, p) = layer.forward_with_scores(&xs, &mut ctx).unwrap();
        (vals(&o.into_value()), vals(&p.into_value()))
    };
    // inference: no dropout (the reference has none)
    let (o, _) = run(&layer, &[&q, &v, &k]);
    let all = |_: usize, _: usize, _: usize| true;
    let (ro, rp) = reference(D, &vals(&q), &vals(&v), &vals(&k), &weights_of(&layer), &all);
    assert_close(&vals(&o), &ro, 1e-5, "inference");
    // training: different from inference, the same for a seed, different for another
    let (a, pa) = train(1);
    assert_eq!(train(1).0, a);
    assert_ne!(train(2).0, a);
    assert!(a.iter().zip(&ro).any(|(x, y)| (x - y).abs() > 1e-3));
    // the returned probabilities are before dropout (as Keras's attention scores)
    assert_close(&pa, &rp, 1e-5, "probabilities in training");
    // training without an rng is an error naming the layer
    let named = MultiHeadAttention::new(2, 3).dropout(0.5).with_name("drop_att");
    let (named, _) = setup(D, named.value_dim(4).output_shape(5), 8);
    let e = named.forward_with_scores(&xs, &mut Ctx::new(None, true, None)).unwrap_err().to_string();
    assert!(e.contains("drop_att"), "{e}");
}

#[test]
fn a_transformer_block_in_a_functional_model() {
    // Keras's "text classification with Transformer" block, at its sizes: 8,416 attention parameters
    let (maxlen, vocab, embed) = (10, 50, 32);
    let ids = Input::new([maxlen]);
    let x = Embedding::new(vocab, embed).call(&ids).unwrap();
    let att = MultiHeadAttention::new(2, embed).call_multi(&[x.clone(), x.clone()]).unwrap();
    assert_eq!(att.shape(), [maxlen, embed]);
    let y = LayerNormalization::new().epsilon(1e-6).call(&add(&[x, att]).unwrap()).unwrap();
    let y = GlobalAveragePooling1D::new().call(&y).unwrap();
    let out = Dense::new(2).activation(Activation::Softmax).call(&y).unwrap();
    let model = Model::new(&[ids], &[out]).unwrap();
    let mha = model.get_layer("multi_head_attention").expect("auto-named like Keras");
    assert_eq!(mha.read().count_params(), 8_416);
    let names: Vec<String> = model.named_weights().into_iter().map(|w| w.name).collect();
    assert!(names.contains(&"multi_head_attention/attention_output/bias".to_string()), "{names:?}");
    let summary = model.summary();
    assert!(summary.contains("multi_head_attention (Multi") && summary.contains(" 8416 "), "{summary}");
    let x = Tensor::from_vec((0..40).map(|i| (i * 7 % vocab) as i64).collect::<Vec<_>>(), [4, maxlen]).unwrap();
    let p = model.predict(&[x]).unwrap().remove(0);
    assert_eq!(p.dims(), [4, 2]);
    let sums: Vec<f32> = p.sum(&[1], false).unwrap().to_vec().unwrap();
    assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5), "{sums:?}");
}

#[test]
fn mixed_bfloat16_attention_runs_close_to_float32_and_trains() {
    use keel_autograd::Tape;
    use keel_nn::mixed_precision::DTypePolicy;
    let (q, v) = (Input::new([4, 6]), Input::new([5, 7]));
    let mask = Input::new([4, 5]);
    let att = MultiHeadAttention::new(2, 3)
        .use_causal_mask(true)
        .dropout(0.2)
        .call_multi(&[q.clone(), v.clone(), v.clone(), mask.clone()])
        .unwrap();
    let out = Dense::new(3).activation(Activation::Softmax).call(&GlobalAveragePooling1D::new().call(&att).unwrap());
    let mut model = Model::new(&[q, v, mask], &[out.unwrap()]).unwrap();
    let m: Vec<f32> = attention_mask(Dims { b: 3, tq: 4, tv: 5, ..D }, 3);
    let xs =
        [rand(1, &[3, 4, 6], DType::F32), rand(2, &[3, 5, 7], DType::F32), Tensor::from_vec(m, [3, 4, 5]).unwrap()];
    let full = vals(&model.predict(&xs).unwrap()[0]);
    model.set_dtype_policy(DTypePolicy::MixedBFloat16);
    let mixed = vals(&model.predict(&xs).unwrap()[0]);
    assert_close(&mixed, &full, 2e-2, "mixed_bfloat16");
    // a training step: every attention weight gets an F32 gradient
    let tape = Tape::new();
    let mut rng = Rng::new(0);
    let mut ctx = Ctx::train(&tape, &mut rng);
    let vars: Vec<Var> = xs.iter().cloned().map(Var::constant).collect();
    let y = model.forward(&vars, &mut ctx).unwrap().remove(0);
    let grads = tape.backward(&y.to_dtype(DType::F32).unwrap().square().unwrap().sum_all().unwrap()).unwrap();
    for w in model.named_weights().iter().filter(|w| w.name.starts_with("multi_head_attention/")) {
        let g = grads.get(&w.param).unwrap_or_else(|| panic!("no gradient for {}", w.name));
        assert_eq!(g.dtype(), DType::F32, "{}", w.name);
    }
}
