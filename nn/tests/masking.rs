//! Keras's mask propagation: `Embedding(mask_zero)` and `Masking` make masks, the layers
//! that support masking pass them on, and the recurrent layers, `GlobalAveragePooling1D`,
//! `MultiHeadAttention` and `BatchNormalization` read them. Padded inputs must give what
//! the unpadded ones give.

use keel_autograd::{gradcheck, Var};
use keel_nn::prelude::*;
use keel_nn::{Recurrent, RecurrentWeights};
use keel_tensor::{DType, Device, Tensor};

fn ids(rows: &[&[i64]]) -> Tensor {
    let t = rows[0].len();
    let flat: Vec<i64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_vec(flat, [rows.len(), t]).unwrap()
}

fn vals(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what}: element {i}: {g} vs {w}");
    }
}

/// A seeded `Embedding(mask_zero) -> layer` model for sequences of `t` ids.
fn text_model(t: usize, layer: impl Layer + 'static) -> Sequential {
    let mut m = Sequential::with_seed(7);
    m.add(Embedding::new(10, 3).mask_zero(true).input_shape([t]));
    m.add(layer);
    m.build(&[vec![t]]).unwrap();
    m
}

fn run(m: &Sequential, x: &Tensor) -> Vec<f64> {
    vals(&m.predict(std::slice::from_ref(x)).unwrap()[0])
}

#[test]
fn recurrent_layers_skip_padding_on_either_side() {
    // the same weights (same seed, shapes independent of the length) on padded and
    // unpadded sequences: a padded step changes nothing
    let cases: Vec<(&str, Box<dyn Fn(usize) -> Sequential>)> = vec![
        ("LSTM", Box::new(|t| text_model(t, LSTM::new(4)))),
        ("GRU", Box::new(|t| text_model(t, GRU::new(4)))),
        ("GRU reset_after=false", Box::new(|t| text_model(t, GRU::new(4).reset_after(false)))),
        ("SimpleRNN", Box::new(|t| text_model(t, SimpleRNN::new(4)))),
        ("LSTM go_backwards", Box::new(|t| text_model(t, LSTM::new(4).go_backwards(true)))),
        ("Bidirectional GRU", Box::new(|t| text_model(t, Bidirectional::new(GRU::new(3))))),
    ];
    for (what, make) in cases {
        let short = run(&make(3), &ids(&[&[5, 7, 2], &[1, 9, 4]]));
        let right = run(&make(5), &ids(&[&[5, 7, 2, 0, 0], &[1, 9, 4, 0, 0]]));
        let left = run(&make(5), &ids(&[&[0, 0, 5, 7, 2], &[0, 0, 1, 9, 4]]));
        assert_close(&right, &short, 1e-6, &format!("{what}, padded at the end"));
        assert_close(&left, &short, 1e-6, &format!("{what}, padded at the start"));
        // without the mask the padding does change the result
        let mut plain = Sequential::with_seed(7);
        plain.add(Embedding::new(10, 3).input_shape([5]));
        plain.add(LSTM::new(4));
        plain.build(&[vec![5]]).unwrap();
        let unmasked = run(&plain, &ids(&[&[5, 7, 2, 0, 0], &[1, 9, 4, 0, 0]]));
        assert!(unmasked
            .iter()
            .zip(&run(&make(3), &ids(&[&[5, 7, 2], &[1, 9, 4]])))
            .any(|(a, b)| (a - b).abs() > 1e-4));
    }
}

#[test]
fn return_sequences_repeats_or_zeros_the_output_at_masked_steps() {
    let x = ids(&[&[5, 0, 7, 0]]);
    let seq = run(&text_model(4, LSTM::new(2).return_sequences(true)), &x);
    // [1, 4, 2]: step 1 repeats step 0, step 3 repeats step 2, steps 0 and 2 differ
    assert_eq!(&seq[2..4], &seq[0..2]);
    assert_eq!(&seq[6..8], &seq[4..6]);
    assert_ne!(&seq[4..6], &seq[0..2]);
    let mut zero = LSTM::new(2).return_sequences(true);
    zero.config_mut().zero_output_for_mask = true;
    let z = run(&text_model(4, zero), &x);
    assert_eq!(&z[0..2], &seq[0..2]);
    assert_eq!(&z[2..4], &[0.0, 0.0]);
    assert_eq!(&z[4..6], &seq[4..6]);
    assert_eq!(&z[6..8], &[0.0, 0.0]);
}

#[test]
fn masks_flow_through_stacked_layers_and_stop_where_keras_stops_them() {
    // Embedding -> LSTM(seq) -> Dense -> LSTM: the mask reaches the second LSTM
    let make = |t: usize| {
        let mut m = Sequential::with_seed(3);
        m.add(Embedding::new(10, 3).mask_zero(true).input_shape([t]));
        m.add(LSTM::new(4).return_sequences(true));
        m.add(Dense::new(3).activation(Activation::Tanh));
        m.add(Dropout::new(0.5));
        m.add(LayerNormalization::new());
        m.add(GRU::new(2));
        m.build(&[vec![t]]).unwrap();
        m
    };
    let short = run(&make(2), &ids(&[&[4, 8]]));
    let padded = run(&make(4), &ids(&[&[4, 8, 0, 0]]));
    assert_close(&padded, &short, 1e-6, "stacked");
    // Flatten does not support masking (Keras 3 drops the mask there)
    let m = text_model(4, Flatten::new());
    let input = Var::constant(ids(&[&[4, 8, 0, 0]]));
    let emb = m.layers()[0].forward(&input, &mut Ctx::inference()).unwrap();
    let mask = m.layers()[0].compute_mask(&[input], &[None]).unwrap().unwrap();
    assert_eq!(vals(&mask), vec![1.0, 1.0, 0.0, 0.0]);
    assert!(m.layers()[1].compute_mask(&[emb], &[Some(mask)]).unwrap().is_none());
}

#[test]
fn global_average_pooling_1d_averages_the_unmasked_steps() {
    let mut m = Sequential::with_seed(1);
    m.add(Embedding::new(10, 2).mask_zero(true).input_shape([4]));
    m.add(GlobalAveragePooling1D::new());
    m.build(&[vec![4]]).unwrap();
    let table = vals(&m.layers()[0].weights()[0].param.value());
    let row = |i: usize| [table[2 * i], table[2 * i + 1]];
    let got = run(&m, &ids(&[&[3, 0, 5, 0], &[0, 0, 0, 9]]));
    let want = [(row(3)[0] + row(5)[0]) / 2.0, (row(3)[1] + row(5)[1]) / 2.0, row(9)[0], row(9)[1]];
    assert_close(&got, &want, 1e-6, "masked mean");
}

#[test]
fn masking_layer_zeroes_and_masks_padded_steps() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 0.0, 0.0, -1.0, 0.5, 0.0, 0.0], [1, 4, 2]).unwrap();
    let layer = Masking::new(0.0);
    let xv = Var::constant(x.clone());
    let mask = layer.compute_mask(std::slice::from_ref(&xv), &[None]).unwrap().unwrap();
    assert_eq!(mask.dims(), &[1, 4]);
    assert_eq!(vals(&mask), vec![1.0, 0.0, 1.0, 0.0]);
    // a value equal to mask_value in only some features is kept
    let other = Masking::new(2.0);
    let y = other.forward(&xv, &mut Ctx::inference()).unwrap();
    assert_eq!(vals(y.value()), vals(&x), "no step has every feature equal to 2.0");
    // Masking -> LSTM on padded floats = LSTM on the real steps
    let make = |t: usize| {
        let mut m = Sequential::with_seed(9);
        m.add(Masking::new(0.0).input_shape([t, 2]));
        m.add(LSTM::new(3));
        m.build(&[vec![t, 2]]).unwrap();
        m
    };
    let real = Tensor::from_vec(vec![1.0f32, 2.0, -1.0, 0.5], [1, 2, 2]).unwrap();
    assert_close(&run(&make(4), &x), &run(&make(2), &real), 1e-6, "Masking + LSTM");
}

#[test]
fn attention_ignores_padded_keys_and_passes_the_query_mask_on() {
    let build = |t: usize| {
        let tokens = Input::new([t]);
        let e = Embedding::new(12, 4).mask_zero(true).call(&tokens).unwrap();
        let a = MultiHeadAttention::new(2, 3).call_multi(&[e.clone(), e]).unwrap();
        let pooled = GlobalAveragePooling1D::new().call(&a).unwrap();
        let mut m = Model::new(&[tokens], &[pooled]).unwrap();
        m.build(&[vec![t]]).unwrap();
        m
    };
    // the same seed draws the same weights for both lengths
    let short = build(3).predict(&[ids(&[&[4, 9, 2]])]).unwrap();
    let padded = build(6).predict(&[ids(&[&[4, 9, 2, 0, 0, 0]])]).unwrap();
    assert_close(&vals(&padded[0]), &vals(&short[0]), 1e-5, "attention + pooling over padding");
}

#[test]
fn merge_layers_combine_masks_as_keras() {
    let a = Tensor::from_vec(vec![1u8, 1, 0, 1], [1, 4]).unwrap();
    let b = Tensor::from_vec(vec![1u8, 0, 0, 1], [1, 4]).unwrap();
    let x = Var::constant(Tensor::ones([1, 4, 2], DType::F32, &Device::Cpu).unwrap());
    // Keras 3 (Merge.compute_mask): the or of the masks, none when an input is unmasked
    let add = Add::new().compute_mask(&[x.clone(), x.clone()], &[Some(a.clone()), Some(b.clone())]).unwrap();
    assert_eq!(vals(&add.unwrap()), vec![1.0, 1.0, 0.0, 1.0], "Add: or");
    let one = Add::new().compute_mask(&[x.clone(), x.clone()], &[Some(a.clone()), None]).unwrap();
    assert!(one.is_none(), "Add with an unmasked input: no mask");
    let cat = Concatenate::new(-1).compute_mask(&[x.clone(), x.clone()], &[Some(a.clone()), Some(b.clone())]).unwrap();
    assert_eq!(vals(&cat.unwrap()), vec![1.0, 1.0, 0.0, 1.0], "Concatenate on features: or");
    let half = Concatenate::new(-1).compute_mask(&[x.clone(), x.clone()], &[Some(b.clone()), None]).unwrap();
    assert_eq!(vals(&half.unwrap()), vec![1.0; 4], "Concatenate with an unmasked input keeps all");
    let time = Concatenate::new(1).compute_mask(&[x.clone(), x], &[Some(a), Some(b)]).unwrap();
    assert_eq!(vals(&time.unwrap()), vec![1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0], "Concatenate on time: joined");
}

#[test]
fn batch_normalization_takes_its_statistics_over_the_unmasked_steps() {
    let x = Tensor::from_vec(vec![1.0f32, 10.0, 3.0, 20.0, 100.0, -50.0, 5.0, 0.0], [1, 4, 2]).unwrap();
    let mask = Tensor::from_vec(vec![1u8, 1, 0, 1], [1, 4]).unwrap();
    let mut bn = BatchNormalization::new();
    bn.build(&[4, 2], &mut keel_tensor::rng::Rng::new(0)).unwrap();
    let tape = keel_autograd::Tape::new();
    let mut rng = keel_tensor::rng::Rng::new(1);
    let mut ctx = Ctx::train(&tape, &mut rng);
    let y = bn.forward_logits_masked(&[Var::constant(x)], &[Some(mask)], &mut ctx).unwrap();
    // kept rows (1, 10), (3, 20), (5, 0): mean (3, 10), variance (8/3, 200/3)
    let (m, v): ([f64; 2], [f64; 2]) = ([3.0, 10.0], [8.0 / 3.0, 200.0 / 3.0]);
    let eps: f64 = 1e-3;
    let y = vals(y.value());
    let rows = [[1.0, 10.0], [3.0, 20.0], [100.0, -50.0], [5.0, 0.0]];
    for (r, row) in rows.iter().enumerate() {
        for c in 0..2 {
            let want = (row[c] - m[c]) / (v[c] + eps).sqrt();
            assert!((y[2 * r + c] - want).abs() < 1e-4, "row {r} channel {c}: {} vs {want}", y[2 * r + c]);
        }
    }
    // moving mean = 0.99 * 0 + 0.01 * masked mean
    let mm = vals(&bn.weights()[2].param.value());
    assert_close(&mm, &[0.03, 0.1], 1e-5, "moving mean");
}

#[test]
fn masked_recurrent_layer_gradcheck() {
    let layer: Recurrent<keel_nn::LSTMCell> = LSTM::new(2).return_sequences(true);
    let x = Tensor::rand_uniform(3, -1.0, 1.0, [2, 4, 3], DType::F64, &Device::Cpu).unwrap();
    let k = Tensor::rand_uniform(4, -0.5, 0.5, [3, 8], DType::F64, &Device::Cpu).unwrap();
    let r = Tensor::rand_uniform(5, -0.5, 0.5, [2, 8], DType::F64, &Device::Cpu).unwrap();
    let b = Tensor::rand_uniform(6, -0.5, 0.5, [8], DType::F64, &Device::Cpu).unwrap();
    let mask = Tensor::from_vec(vec![1u8, 0, 1, 1, 0, 1, 1, 0], [2, 4]).unwrap();
    let report = gradcheck(
        |v: &[Var]| {
            let w = RecurrentWeights { kernel: v[1].clone(), recurrent_kernel: v[2].clone(), bias: Some(v[3].clone()) };
            let (y, states) = layer.forward_with_weights_masked(&v[0], &w, None, Some(&mask)).expect("forward");
            Var::concat(&[&y.flatten_from(0)?, &states[1].flatten_from(0)?], 0)
        },
        &[x, k, r, b],
    )
    .unwrap_or_else(|e| panic!("masked LSTM: {e}"));
    assert!(report.checked > 20);
}

#[test]
fn mask_zero_round_trips_in_the_config() {
    let e = Embedding::new(5, 2).mask_zero(true);
    assert_eq!(e.config()["mask_zero"], serde_json::json!(true));
    let plain = Embedding::new(5, 2);
    assert_eq!(plain.config()["mask_zero"], serde_json::json!(false));
}

#[test]
fn bidirectional_outputs_zeros_at_masked_steps_with_return_sequences() {
    // Keras's force_zero_output_for_mask: both directions output zeros at masked steps
    let seq = run(&text_model(4, Bidirectional::new(LSTM::new(2).return_sequences(true))), &ids(&[&[5, 7, 0, 3]]));
    assert_eq!(seq.len(), 4 * 4);
    assert_eq!(&seq[8..12], &[0.0; 4], "the padded step");
    assert!(seq[..8].iter().chain(&seq[12..]).all(|v| *v != 0.0), "the real steps: {seq:?}");
}

#[test]
fn multiply_maximum_and_minimum_skip_masked_entries_as_keras() {
    let a = Var::constant(Tensor::from_vec(vec![2.0f32, 3.0, 4.0, 5.0], [1, 2, 2]).unwrap());
    let b = Var::constant(Tensor::from_vec(vec![10.0f32, -1.0, 0.5, 7.0], [1, 2, 2]).unwrap());
    let ma = Tensor::from_vec(vec![1u8, 0], [1, 2]).unwrap();
    let mb = Tensor::from_vec(vec![0u8, 0], [1, 2]).unwrap();
    let run_merge = |layer: &dyn Layer, ms: [Option<Tensor>; 2]| {
        vals(layer.forward_logits_masked(&[a.clone(), b.clone()], &ms, &mut Ctx::inference()).unwrap().value())
    };
    // Multiply: a masked entry counts as 1; where no input keeps a step (all masked) it is 0
    assert_eq!(run_merge(&Multiply::new(), [Some(ma.clone()), None]), vec![20.0, -3.0, 0.5, 7.0]);
    assert_eq!(run_merge(&Multiply::new(), [Some(ma.clone()), Some(mb.clone())]), vec![2.0, 3.0, 0.0, 0.0]);
    // Maximum / Minimum: a masked entry is skipped (the other input's value is taken)
    assert_eq!(run_merge(&Maximum::new(), [Some(ma.clone()), None]), vec![10.0, 3.0, 0.5, 7.0]);
    assert_eq!(run_merge(&Minimum::new(), [None, Some(mb)]), vec![2.0, 3.0, 4.0, 5.0]);
    // Add ignores masks in its values
    assert_eq!(run_merge(&Add::new(), [Some(ma), None]), vec![12.0, 2.0, 4.5, 12.0]);
}
