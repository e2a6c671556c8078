//! Conv1D, the 1-D pooling layers, the global poolings and LayerNormalization: shapes and
//! parameter counts (Keras's), forward values and every gradient (input and weights)
//! against a float64 reference written out here with plain loops, whose gradients are
//! central finite differences.

use keel_autograd::{Tape, Var};
use keel_nn::prelude::*;
use keel_nn::{Conv1DConfig, Conv1DPadding};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};

fn built(mut l: impl Layer, shape: &[usize]) -> (impl Layer, Vec<usize>) {
    l.set_name("l".into());
    l.build(shape, &mut Rng::new(1)).unwrap();
    let out = l.output_shape(shape).unwrap();
    (l, out)
}

fn rand(seed: u64, shape: &[usize]) -> Tensor {
    Tensor::rand_normal(seed, 0.0, 1.0, shape, DType::F32, &Device::Cpu).unwrap()
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap()
}

/// The layer's output, and the gradients of `sum(out * r)` wrt the input and each trainable
/// weight (in `weights()` order), from the tape in f32.
fn layer_grads(l: &dyn Layer, x: &Tensor, r: &Tensor) -> (Vec<f64>, Vec<f64>, Vec<Vec<f64>>) {
    let tape = Tape::new();
    let mut rng = Rng::new(0);
    let mut ctx = Ctx::train(&tape, &mut rng);
    let xv = tape.leaf(x.clone());
    let y = l.forward(&xv, &mut ctx).unwrap();
    let loss = y.mul(&Var::constant(r.clone())).unwrap().sum_all().unwrap();
    let grads = tape.backward(&loss).unwrap();
    let gx = f64s(grads.get_var(&xv).unwrap());
    let gw = l.params().iter().map(|p| f64s(grads.get(p).unwrap())).collect();
    (f64s(y.value()), gx, gw)
}

/// Central differences of the scalar `f` at `at`, one coordinate at a time.
fn numeric_grad(f: &dyn Fn(&[f64]) -> f64, at: &[f64]) -> Vec<f64> {
    let h = 1e-5;
    let mut x = at.to_vec();
    (0..x.len())
        .map(|i| {
            let keep = x[i];
            x[i] = keep + h;
            let up = f(&x);
            x[i] = keep - h;
            let down = f(&x);
            x[i] = keep;
            (up - down) / (2.0 * h)
        })
        .collect()
}

fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * scale, "{what}[{i}]: got {g}, want {w} (scale {scale})");
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

// ------------------------------------------------------------------ Conv1D

/// Keras's Conv1D in f64: `x` `[n, steps, c]`, kernel `[k, c, o]`, bias `[o]`; returns
/// `[n, out, o]` before the activation.
#[allow(clippy::too_many_arguments)]
fn conv1d_ref(x: &[f64], dims: [usize; 3], k: &[f64], kdims: [usize; 3], b: &[f64], cfg: &Conv1DConfig) -> Vec<f64> {
    let [n, steps, c] = dims;
    let [kk, _, o] = kdims;
    let (s, d) = (cfg.strides, cfg.dilation_rate);
    let eff = d * (kk - 1) + 1;
    let (out, left) = match cfg.padding {
        Conv1DPadding::Valid => ((steps - eff) / s + 1, 0usize),
        Conv1DPadding::Causal => ((steps + eff - 1 - eff) / s + 1, eff - 1),
        Conv1DPadding::Same => {
            let out = steps.div_ceil(s);
            let total = ((out - 1) * s + eff).saturating_sub(steps);
            (out, total / 2)
        }
    };
    let mut y = vec![0.0; n * out * o];
    for bi in 0..n {
        for t in 0..out {
            for oc in 0..o {
                let mut acc = if b.is_empty() { 0.0 } else { b[oc] };
                for j in 0..kk {
                    let pos = (t * s + j * d) as isize - left as isize;
                    if pos < 0 || pos >= steps as isize {
                        continue;
                    }
                    for ic in 0..c {
                        acc += x[(bi * steps + pos as usize) * c + ic] * k[(j * c + ic) * o + oc];
                    }
                }
                y[(bi * out + t) * o + oc] = acc;
            }
        }
    }
    y
}

fn check_conv1d(layer: Conv1D, dims: [usize; 3], want_out: &[usize]) {
    let cfg = layer.get_config().clone();
    let relu = cfg.activation == Activation::Relu;
    let (l, out) = built(layer, &dims[1..]);
    assert_eq!(out, want_out, "{cfg:?}");
    let (c, o, kk) = (dims[2], cfg.filters, cfg.kernel_size);
    assert_eq!(l.count_params(), kk * c * o + if cfg.use_bias { o } else { 0 });
    let x = rand(5, &dims);
    let mut oshape = vec![dims[0]];
    oshape.extend_from_slice(&out);
    let r = rand(6, &oshape);
    let (y, gx, gw) = layer_grads(&l, &x, &r);
    let (xs, rs) = (f64s(&x), f64s(&r));
    let ks = f64s(&l.params()[0].value());
    let bs = if cfg.use_bias { f64s(&l.params()[1].value()) } else { vec![] };
    let kdims = [kk, c, o];
    let act = |v: Vec<f64>| if relu { v.into_iter().map(|z| z.max(0.0)).collect() } else { v };
    assert_close("conv1d forward", &y, &act(conv1d_ref(&xs, dims, &ks, kdims, &bs, &cfg)), 1e-5);
    let loss = |x: &[f64], k: &[f64], b: &[f64]| dot(&act(conv1d_ref(x, dims, k, kdims, b, &cfg)), &rs);
    assert_close("conv1d d/dx", &gx, &numeric_grad(&|v| loss(v, &ks, &bs), &xs), 1e-4);
    assert_close("conv1d d/dkernel", &gw[0], &numeric_grad(&|v| loss(&xs, v, &bs), &ks), 1e-4);
    if cfg.use_bias {
        assert_close("conv1d d/dbias", &gw[1], &numeric_grad(&|v| loss(&xs, &ks, v), &bs), 1e-4);
    }
}

#[test]
fn conv1d_matches_a_loop_reference_with_gradients() {
    check_conv1d(Conv1D::new(4, 3), [2, 9, 3], &[7, 4]);
    check_conv1d(Conv1D::new(3, 3).padding(Conv1DPadding::Same).strides(2), [2, 9, 2], &[5, 3]);
    check_conv1d(Conv1D::new(2, 2).padding(Conv1DPadding::Causal).dilation_rate(2), [2, 7, 3], &[7, 2]);
    check_conv1d(Conv1D::new(5, 3).padding(Conv1DPadding::Causal).strides(2).use_bias(false), [1, 8, 2], &[4, 5]);
    // the fused conv + bias + ReLU path
    check_conv1d(Conv1D::new(4, 3).activation(Activation::Relu).padding(Conv1DPadding::Causal), [2, 6, 3], &[6, 4]);
}

#[test]
fn causal_conv1d_does_not_look_ahead() {
    let (l, _) = built(Conv1D::new(3, 4).padding(Conv1DPadding::Causal).dilation_rate(2), &[10, 2]);
    let x = rand(7, &[1, 10, 2]);
    let y0 = f64s(&l.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap().into_value());
    // change only the last 3 steps: outputs 0..7 must not move
    let mut xs = x.to_vec::<f32>().unwrap();
    xs[14..].iter_mut().for_each(|v| *v += 1.0);
    let x2 = Tensor::from_slice(&xs, [1, 10, 2]).unwrap();
    let y1 = f64s(&l.forward(&Var::constant(x2), &mut Ctx::inference()).unwrap().into_value());
    assert_eq!(y0[..7 * 3], y1[..7 * 3]);
    assert_ne!(y0[7 * 3..], y1[7 * 3..]);
}

#[test]
fn conv1d_bad_inputs_are_errors_naming_the_layer() {
    let mut l = Conv1D::new(4, 5).with_name("c1");
    let err = l.build(&[3, 2], &mut Rng::new(0)).unwrap_err().to_string();
    assert!(err.contains("c1") && err.contains("Conv1D") && err.contains("[3, 2]"), "{err}");
    let err = l.build(&[28, 28, 1], &mut Rng::new(0)).unwrap_err().to_string();
    assert!(err.contains("[steps, channels]"), "{err}");
    // causal padding keeps every length
    assert_eq!(built(Conv1D::new(4, 5).padding(Conv1DPadding::Causal), &[3, 2]).1, vec![3, 4]);
    // a causal pad that overflows is an error, not a wrapped length or a panic
    let mut huge = Conv1D::new(2, 3).padding(Conv1DPadding::Causal).dilation_rate(1 << 63);
    assert!(huge.build(&[8, 1], &mut Rng::new(0)).is_err());
}

// ------------------------------------------------------------------ pooling

#[test]
fn pooling_1d_and_global_pooling_values_and_shapes() {
    assert_eq!(built(MaxPooling1D::new(2), &[9, 3]).1, vec![4, 3]);
    assert_eq!(built(AveragePooling1D::new(3).strides(1).padding(Padding::Same), &[9, 3]).1, vec![9, 3]);
    assert_eq!(built(GlobalMaxPooling1D::new(), &[9, 3]).1, vec![3]);
    assert_eq!(built(GlobalAveragePooling1D::new(), &[9, 3]).1, vec![3]);
    assert_eq!(built(GlobalMaxPooling2D::new(), &[4, 5, 3]).1, vec![3]);
    assert!(GlobalMaxPooling2D::new().build(&[4, 3], &mut Rng::new(0)).is_err());
    assert!(MaxPooling1D::new(2).build(&[4, 4, 3], &mut Rng::new(0)).is_err());

    // [1, 5, 2]: channel 0 = 1..5, channel 1 = 10, 8, 6, 4, 2
    let x = Tensor::from_slice(&[1f32, 10., 2., 8., 3., 6., 4., 4., 5., 2.], [1, 5, 2]).unwrap();
    let run = |l: &dyn Layer| f64s(&l.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap().into_value());
    assert_eq!(run(&built(MaxPooling1D::new(2), &[5, 2]).0), [2., 10., 4., 6.]);
    assert_eq!(run(&built(AveragePooling1D::new(2).padding(Padding::Same), &[5, 2]).0), [1.5, 9., 3.5, 5., 5., 2.]);
    assert_eq!(run(&built(GlobalMaxPooling1D::new(), &[5, 2]).0), [5., 10.]);
    assert_eq!(run(&built(GlobalAveragePooling1D::new(), &[5, 2]).0), [3., 6.]);
    let x4 = x.reshape(vec![1, 5, 1, 2]).unwrap();
    let y = built(GlobalMaxPooling2D::new(), &[5, 1, 2]).0.forward(&Var::constant(x4), &mut Ctx::inference());
    assert_eq!(f64s(&y.unwrap().into_value()), [5., 10.]);
}

#[test]
fn pooling_1d_gradients_match_finite_differences() {
    let x = rand(9, &[2, 7, 3]);
    let xs = f64s(&x);
    // max over windows of 2 (stride 2, valid) and the global max / mean, in f64
    let max1d = |v: &[f64]| -> Vec<f64> {
        let mut y = Vec::new();
        for b in 0..2 {
            for t in 0..3 {
                for c in 0..3 {
                    let at = |s: usize| v[(b * 7 + s) * 3 + c];
                    y.push(at(2 * t).max(at(2 * t + 1)));
                }
            }
        }
        y
    };
    let global = |v: &[f64], max: bool| -> Vec<f64> {
        let mut y = Vec::new();
        for b in 0..2 {
            for c in 0..3 {
                let col = (0..7).map(|s| v[(b * 7 + s) * 3 + c]);
                y.push(if max { col.fold(f64::NEG_INFINITY, f64::max) } else { col.sum::<f64>() / 7.0 });
            }
        }
        y
    };
    let cases: Vec<(Box<dyn Layer>, Box<dyn Fn(&[f64]) -> Vec<f64>>)> = vec![
        (Box::new(built(MaxPooling1D::new(2), &[7, 3]).0), Box::new(max1d)),
        (Box::new(built(GlobalMaxPooling1D::new(), &[7, 3]).0), Box::new(move |v: &[f64]| global(v, true))),
        (Box::new(built(GlobalAveragePooling1D::new(), &[7, 3]).0), Box::new(move |v: &[f64]| global(v, false))),
    ];
    for (l, reference) in cases {
        let n_out = reference(&xs).len();
        let r = rand(10, &[n_out])
            .reshape(l.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap().dims().to_vec())
            .unwrap();
        let rs = f64s(&r);
        let (y, gx, _) = layer_grads(l.as_ref(), &x, &r);
        assert_close(l.class_name(), &y, &reference(&xs), 1e-6);
        assert_close(l.class_name(), &gx, &numeric_grad(&|v| dot(&reference(v), &rs), &xs), 1e-4);
    }
}

// ------------------------------------------------------------------ LayerNormalization

/// Keras's LayerNormalization(axis=-1) in f64 over `[rows, c]`.
fn layer_norm_ref(x: &[f64], c: usize, gamma: &[f64], beta: &[f64], eps: f64) -> Vec<f64> {
    x.chunks(c)
        .flat_map(|row| {
            let mean = row.iter().sum::<f64>() / c as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / c as f64;
            let inv = 1.0 / (var + eps).sqrt();
            row.iter()
                .enumerate()
                .map(|(i, v)| {
                    (v - mean) * inv * gamma.get(i).copied().unwrap_or(1.0) + beta.get(i).copied().unwrap_or(0.0)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn layer_normalization_matches_a_loop_reference_with_gradients() {
    for (layer, dims) in [
        (LayerNormalization::new(), vec![3, 5]),
        (LayerNormalization::new().epsilon(1e-5), vec![2, 3, 4]),
        (LayerNormalization::new().center(false), vec![2, 6]),
        (LayerNormalization::new().scale(false).center(false), vec![2, 2, 3]),
    ] {
        let c = *dims.last().unwrap();
        let (l, out) = built(layer, &dims[1..]);
        assert_eq!(out, dims[1..]);
        let eps = l.config()["epsilon"].as_f64().unwrap();
        let names: Vec<String> = l.weights().iter().map(|w| w.name.to_string()).collect();
        // non-trivial gamma and beta, so their gradients and uses are checked
        for p in l.params() {
            p.set(rand(3 + p.elem_count() as u64, &[c])).unwrap();
        }
        let x = rand(4, &dims).mul_scalar(3.0).unwrap().add_scalar(1.0).unwrap();
        let r = rand(8, &dims);
        let (y, gx, gw) = layer_grads(&l, &x, &r);
        let (xs, rs) = (f64s(&x), f64s(&r));
        let w: Vec<Vec<f64>> = l.params().iter().map(|p| f64s(&p.value())).collect();
        let get = |name: &str, w: &[Vec<f64>]| {
            names.iter().position(|n| *n == name).map(|i| w[i].clone()).unwrap_or_default()
        };
        let (gamma, beta) = (get("gamma", &w), get("beta", &w));
        assert_close("layer_norm forward", &y, &layer_norm_ref(&xs, c, &gamma, &beta, eps), 1e-5);
        let loss = |x: &[f64], g: &[f64], b: &[f64]| dot(&layer_norm_ref(x, c, g, b, eps), &rs);
        assert_close("layer_norm d/dx", &gx, &numeric_grad(&|v| loss(v, &gamma, &beta), &xs), 1e-4);
        for (i, name) in names.iter().enumerate() {
            let want = match name.as_str() {
                "gamma" => numeric_grad(&|v| loss(&xs, v, &beta), &gamma),
                _ => numeric_grad(&|v| loss(&xs, &gamma, v), &beta),
            };
            assert_close(name, &gw[i], &want, 1e-4);
        }
        // training and inference compute the same thing
        let yi = l.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap().into_value();
        assert_eq!(f64s(&yi), y);
    }
}

#[test]
fn layer_normalization_params_and_config() {
    let (l, _) = built(LayerNormalization::new(), &[7, 16]);
    assert_eq!(l.count_params(), 32);
    assert_eq!(l.weights().iter().map(|w| w.name.clone()).collect::<Vec<_>>(), ["gamma", "beta"]);
    let cfg = l.config();
    // as a built Keras layer writes it: a list
    assert_eq!(cfg["axis"], serde_json::json!([-1]));
    assert_eq!(cfg["epsilon"], 1e-3);
    assert_eq!(cfg["center"], true);
    assert!(LayerNormalization::new().epsilon(-1.0).build(&[4], &mut Rng::new(0)).is_err());
}

#[test]
fn a_conv1d_sequence_model_trains() {
    // a Conv1D + pooling + LayerNormalization stack learns to tell rising from falling sequences
    let mut model = Sequential::with_seed(3);
    model.add(Conv1D::new(8, 3).activation(Activation::Relu).padding(Conv1DPadding::Causal).input_shape([12, 1]));
    model.add(MaxPooling1D::new(2));
    model.add(LayerNormalization::new());
    model.add(GlobalAveragePooling1D::new());
    model.add(Dense::new(2).activation(Activation::Softmax));
    let summary = model.summary();
    // (long names wrap at the column's width, as in Keras 2's summary)
    for line in
        ["conv1d (Conv1D)             (None, 12, 8)             32", "max_pooling1d (MaxPooling1D  (None, 6, 8)"]
    {
        assert!(summary.contains(line), "{line:?} not in\n{summary}");
    }
    assert!(summary.contains("layer_normalization (LayerN  (None, 6, 8)             16"), "{summary}");
    let n = 64;
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    let mut rng = Rng::new(11);
    for i in 0..n {
        let up = i % 2 == 0;
        let start = rng.uniform(-1.0, 1.0);
        for t in 0..12 {
            let step = (t as f64) * 0.2 * if up { 1.0 } else { -1.0 };
            xs.push((start + step + rng.uniform(-0.025, 0.025)) as f32);
        }
        ys.extend_from_slice(if up { &[1f32, 0.] } else { &[0f32, 1.] });
    }
    let x = Tensor::from_slice(&xs, [n, 12, 1]).unwrap();
    let y = Tensor::from_slice(&ys, [n, 2]).unwrap();
    let loss = Loss::CategoricalCrossentropy;
    let first = {
        let heads = model.forward_heads(&[Var::constant(x.clone())], &mut Ctx::inference()).unwrap();
        loss.compute_head(&heads[0], &y, None).unwrap().value().to_scalar::<f32>().unwrap()
    };
    let mut last = first;
    for _ in 0..150 {
        let tape = Tape::new();
        let mut r = Rng::new(0);
        let mut ctx = Ctx::train(&tape, &mut r);
        let heads = model.forward_heads(&[Var::constant(x.clone())], &mut ctx).unwrap();
        let l = loss.compute_head(&heads[0], &y, None).unwrap();
        last = l.value().to_scalar::<f32>().unwrap();
        let grads = tape.backward(&l).unwrap();
        for p in model.trainable_params() {
            let g = grads.get(&p).unwrap();
            p.set(p.value().sub(&g.mul_scalar(0.2).unwrap()).unwrap()).unwrap();
        }
    }
    assert!(last < 0.2 * first && last < 0.15, "loss {first} -> {last}");
}
