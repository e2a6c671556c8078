//! Conv1DTranspose: values against a float64 scatter reference, Keras's output lengths,
//! and training.

use keel_autograd::Var;
use keel_nn::prelude::*;
use keel_nn::Conv1DTransposeConfig;
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};

/// The transposed convolution by its definition: every input step `i` scatters
/// `x[i] * K[j]` to output step `i * s + j * d - pad` (TensorFlow's padding for the forward
/// convolution from `len` steps to `t`: `same` puts the smaller half on the left).
#[allow(clippy::too_many_arguments)]
fn reference(
    x: &[f64],
    (n, t, c): (usize, usize, usize),
    k: &[f64],
    (ks, f): (usize, usize),
    (s, d): (usize, usize),
    same: bool,
    len: usize,
) -> Vec<f64> {
    let eff = (ks - 1) * d + 1;
    let pad = if same { ((t - 1) * s + eff).saturating_sub(len) / 2 } else { 0 };
    let mut y = vec![0.0; n * len * f];
    for b in 0..n {
        for i in 0..t {
            for j in 0..ks {
                let o = (i * s + j * d) as isize - pad as isize;
                if o < 0 || o as usize >= len {
                    continue;
                }
                for fo in 0..f {
                    for ci in 0..c {
                        // kernel [k, filters, in]
                        y[(b * len + o as usize) * f + fo] += x[(b * t + i) * c + ci] * k[(j * f + fo) * c + ci];
                    }
                }
            }
        }
    }
    y
}

#[test]
fn values_match_the_scatter_definition() {
    // (t, c, kernel, filters, strides, dilation, same, output_padding)
    let cases = [
        (5, 2, 3, 4, 2, 1, false, None),
        (5, 2, 3, 4, 2, 1, true, None),
        (4, 3, 2, 2, 3, 1, false, None), // kernel shorter than the stride
        (6, 1, 3, 2, 1, 2, true, None),
        (5, 2, 3, 3, 2, 1, true, Some(1)),
        (3, 2, 4, 2, 2, 1, false, Some(1)),
    ];
    for (case, &(t, c, ks, f, s, d, same, op)) in cases.iter().enumerate() {
        let mut layer = Conv1DTranspose::new(f, ks).strides(s).dilation_rate(d);
        if same {
            layer = layer.padding(Padding::Same);
        }
        if let Some(p) = op {
            layer = layer.output_padding(p);
        }
        let mut rng = Rng::new(case as u64);
        layer.build(&[t, c], &mut rng).unwrap();
        let out = layer.output_shape(&[t, c]).unwrap();
        let len = out[0];
        // Keras's deconv_output_length
        let eff = (ks - 1) * d + 1;
        let want_len = match op {
            None if same => t * s,
            None => t * s + eff.saturating_sub(s),
            Some(p) => (t - 1) * s + eff + p - if same { 2 * (eff / 2) } else { 0 },
        };
        assert_eq!(out, vec![want_len, f], "case {case}: output shape");
        let x = Tensor::rand_uniform(10 + case as u64, -1.0, 1.0, [2, t, c], DType::F32, &Device::Cpu).unwrap();
        let y = layer.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap();
        assert_eq!(y.dims(), &[2, len, f]);
        let w = layer.weights();
        assert_eq!(w[0].param.value().dims(), &[ks, f, c], "Keras's kernel layout [k, filters, in]");
        let kv = w[0].param.value().to_vec_f64().unwrap();
        let bias = w[1].param.value().to_vec_f64().unwrap();
        let mut want = reference(&x.to_vec_f64().unwrap(), (2, t, c), &kv, (ks, f), (s, d), same, len);
        for (i, v) in want.iter_mut().enumerate() {
            *v += bias[i % f];
        }
        for (i, (g, r)) in y.value().to_vec_f64().unwrap().iter().zip(&want).enumerate() {
            assert!((g - r).abs() < 1e-5, "case {case}: element {i}: {g} vs {r}");
        }
    }
}

#[test]
fn bad_geometry_is_an_error() {
    let l = Conv1DTranspose::new(2, 3).strides(2).output_padding(2);
    let e = l.output_shape(&[4, 1]).unwrap_err().to_string();
    assert!(e.contains("below the stride"), "{e}");
    assert!(Conv1DTranspose::new(2, 3).output_shape(&[4, 1, 1]).is_err(), "rank 3 per sample");
    assert!(Conv1DTranspose::new(0, 3).output_shape(&[4, 1]).is_err(), "no filters");
}

#[test]
fn keras_configs_with_one_element_lists_load() {
    let keras = serde_json::json!({
        "filters": 4, "kernel_size": [3], "strides": [2], "padding": "same", "output_padding": null,
        "dilation_rate": [1], "activation": "relu", "use_bias": true,
        "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": null}},
        "bias_initializer": {"class_name": "Zeros", "config": {}},
        "kernel_regularizer": null, "bias_regularizer": null
    });
    let cfg: Conv1DTransposeConfig = serde_json::from_value(keras).unwrap();
    assert_eq!((cfg.kernel_size, cfg.strides, cfg.output_padding), (3, 2, None));
    let back = serde_json::to_value(&cfg).unwrap();
    assert_eq!(back["kernel_size"], serde_json::json!([3]), "written as Keras writes it");
    let again: Conv1DTransposeConfig = serde_json::from_value(back).unwrap();
    assert_eq!(again, cfg);
    let with_op: Conv1DTransposeConfig = serde_json::from_value(serde_json::json!({
        "filters": 1, "kernel_size": 3, "strides": 2, "padding": "valid", "output_padding": [1],
        "dilation_rate": 1, "activation": "linear", "use_bias": false,
        "kernel_initializer": "glorot_uniform", "bias_initializer": "zeros",
        "kernel_regularizer": null, "bias_regularizer": null
    }))
    .unwrap();
    assert_eq!(with_op.output_padding, Some(1));
    let back = serde_json::to_value(&with_op).unwrap();
    assert_eq!(back["output_padding"], serde_json::json!([1]), "written as Keras writes it");
    assert_eq!(serde_json::from_value::<Conv1DTransposeConfig>(back).unwrap(), with_op);
    let old: Conv1DTransposeConfig = serde_json::from_value(serde_json::json!({
        "filters": 1, "kernel_size": [3], "strides": [2], "padding": "valid", "output_padding": 1,
        "dilation_rate": [1], "activation": "linear", "use_bias": false,
        "kernel_initializer": "glorot_uniform", "bias_initializer": "zeros",
        "kernel_regularizer": null, "bias_regularizer": null
    }))
    .unwrap();
    assert_eq!(old.output_padding, Some(1), "keel's earlier form");
    // Conv1D reads Keras's list form too
    let conv: keel_nn::Conv1DConfig = serde_json::from_value(serde_json::json!({
        "filters": 2, "kernel_size": [5], "strides": [1], "padding": "causal", "dilation_rate": [2],
        "activation": "linear", "use_bias": true, "kernel_initializer": "glorot_uniform",
        "bias_initializer": "zeros", "kernel_regularizer": null, "bias_regularizer": null
    }))
    .unwrap();
    assert_eq!((conv.kernel_size, conv.dilation_rate), (5, 2));
}

#[test]
fn a_sequence_upsampler_trains() {
    // Conv1D down by 2, Conv1DTranspose back up: reconstruct smooth sequences
    let mut m = Sequential::with_seed(2);
    m.add(Conv1D::new(4, 3).strides(2).padding(Conv1DPadding::Same).activation(Activation::Tanh).input_shape([16, 1]));
    m.add(Conv1DTranspose::new(1, 3).strides(2).padding(Padding::Same));
    m.build(&[vec![16, 1]]).unwrap();
    assert_eq!(m.output_shapes().unwrap(), vec![vec![16, 1]]);
    let xs: Vec<f32> = (0..32 * 16).map(|i| ((i % 16) as f32 * 0.4 + (i / 16) as f32).sin()).collect();
    let x = Tensor::from_vec(xs, [32, 16, 1]).unwrap();
    let loss = |m: &Sequential| {
        let p = m.predict(std::slice::from_ref(&x)).unwrap()[0].clone();
        p.sub(&x).unwrap().square().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap()
    };
    let before = loss(&m);
    for _ in 0..150 {
        let tape = keel_autograd::Tape::new();
        let mut rng = Rng::new(0);
        let mut ctx = Ctx::train(&tape, &mut rng);
        let y = m.forward(&[Var::constant(x.clone())], &mut ctx).unwrap().remove(0);
        let l = y.sub(&Var::constant(x.clone())).unwrap().square().unwrap().mean_all().unwrap();
        let grads = tape.backward(&l).unwrap();
        for p in m.trainable_params() {
            let g = grads.get(&p).expect("every weight gets a gradient");
            p.set(p.value().sub(&g.mul_scalar(0.1).unwrap()).unwrap()).unwrap();
        }
    }
    let after = loss(&m);
    assert!(after < 0.3 * before, "reconstruction MSE {before} -> {after}");
}
