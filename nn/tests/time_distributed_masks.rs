//! `TimeDistributed` over masked sequences of sequences (sentences of words): the wrapped
//! layer gets each step's slice of the mask as Keras 3 gives it, and the output mask lets a
//! later recurrent layer skip the all-padding steps. Checked against Keras
//! (fixtures/make_time_distributed_mask_fixtures.py) and by padding invariance.

mod common;

use common::with_keras_weights;
use keel_autograd::Var;
use keel_nn::prelude::*;
use keel_tensor::{DType, Tensor};
use serde_json::Value;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn fixtures() -> Value {
    serde_json::from_str(include_str!("fixtures/time_distributed_mask_fixtures.json")).unwrap()
}

/// A fixture tensor whose `null`s are NaN (Keras's mean over an all-padding sentence).
fn tensor_nan(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data: Vec<f32> =
        v["data"].as_array().unwrap().iter().map(|d| d.as_f64().map_or(f32::NAN, |x| x as f32)).collect();
    Tensor::from_vec(data, shape).unwrap()
}

/// Equal within `tol * (1 + |want|)`, NaN where Keras has NaN.
fn assert_close_nan(got: &Tensor, want: &Tensor, tol: f32, what: &str) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (g, w) = (got.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        if b.is_nan() {
            assert!(a.is_nan(), "{what}[{i}]: keel {a}, keras NaN");
        } else {
            assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what}[{i}]: keel {a} vs keras {b}");
        }
    }
}

fn inner(name: &str) -> Box<dyn Layer> {
    match name {
        "lstm" => Box::new(LSTM::new(4)),
        "gru_sequences" => Box::new(GRU::new(3).return_sequences(true)),
        "global_average_pooling_1d" => Box::new(GlobalAveragePooling1D::new()),
        other => panic!("unknown fixture case {other}"),
    }
}

#[test]
fn the_wrapped_layer_reads_each_steps_mask_as_in_keras() -> TestResult {
    for c in fixtures()["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let td = with_keras_weights(Box::new(TimeDistributed::from_boxed(inner(name))), c);
        let x = Var::constant(tensor_nan(&c["x"]));
        let mask = tensor_nan(&c["mask"]).to_dtype(DType::U8)?;
        let y = td.forward_logits_masked(std::slice::from_ref(&x), &[Some(mask.clone())], &mut Ctx::inference())?;
        assert_close_nan(y.value(), &tensor_nan(&c["output"]), 2e-5, name);

        // the output mask: the wrapped layer's unfolded, else the input's reduced by `any`
        let out_mask = td.compute_mask(std::slice::from_ref(&x), &[Some(mask.clone())])?.expect("a mask");
        let m = mask.to_vec::<u8>()?;
        let want: Vec<u8> = match name {
            "gru_sequences" => m.clone(),
            _ => m.chunks(4).map(|words| u8::from(words.iter().any(|&w| w != 0))).collect(),
        };
        assert_eq!(out_mask.to_vec::<u8>()?.iter().map(|&v| u8::from(v != 0)).collect::<Vec<_>>(), want, "{name}");
        assert_eq!(&out_mask.dims()[..2], &[2, 3], "{name}: [batch, sentences, ..]");

        // the downstream LSTM skips the all-padding sentence (and its NaN mean)
        if let Some(next_w) = c.get("next_weights") {
            let mut next = LSTM::new(3);
            next.build(&y.dims()[1..], &mut keel_tensor::rng::Rng::new(0))?;
            for (w, v) in next.weights().iter().zip(next_w.as_array().unwrap()) {
                w.param.set(tensor_nan(v))?;
            }
            let z = next.forward_logits_masked(std::slice::from_ref(&y), &[Some(out_mask)], &mut Ctx::inference())?;
            assert_close_nan(z.value(), &tensor_nan(&c["next_output"]), 2e-5, &format!("{name} -> LSTM"));
        }
    }
    Ok(())
}

/// `Input [sentences, words]` ids -> `Embedding(mask_zero)` -> `TimeDistributed(LSTM)` ->
/// `LSTM`: a document classifier over padded sentences, with seeded weights whose shapes
/// do not depend on the padding.
fn document_model(sentences: usize, words: usize) -> Sequential {
    let mut m = Sequential::with_seed(11);
    m.add(Embedding::new(20, 3).mask_zero(true).input_shape([sentences, words]));
    m.add(TimeDistributed::new(LSTM::new(4)));
    m.add(LSTM::new(2));
    m.build(&[vec![sentences, words]]).unwrap();
    m
}

fn ids(sentences: &[&[i64]]) -> Tensor {
    let w = sentences[0].len();
    let flat: Vec<i64> = sentences.iter().flat_map(|s| s.iter().copied()).collect();
    Tensor::from_vec(flat, [1, sentences.len(), w]).unwrap()
}

#[test]
fn padding_words_and_sentences_changes_nothing() -> TestResult {
    let doc = document_model(2, 3).predict(&[ids(&[&[4, 7, 9], &[2, 5, 1]])])?;
    // words padded at either end of each sentence, and a third sentence of padding only
    let padded = document_model(3, 5).predict(&[ids(&[&[4, 7, 9, 0, 0], &[0, 0, 2, 5, 1], &[0, 0, 0, 0, 0]])])?;
    let (a, b) = (doc[0].to_vec::<f32>()?, padded[0].to_vec::<f32>()?);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-6, "padded {b:?} vs unpadded {a:?}");
    }
    // without masks the padding does change it
    let mut plain = Sequential::with_seed(11);
    plain.add(Embedding::new(20, 3).input_shape([3, 5]));
    plain.add(TimeDistributed::new(LSTM::new(4)));
    plain.add(LSTM::new(2));
    plain.build(&[vec![3, 5]])?;
    let unmasked = plain.predict(&[ids(&[&[4, 7, 9, 0, 0], &[0, 0, 2, 5, 1], &[0, 0, 0, 0, 0]])])?;
    assert!(unmasked[0].to_vec::<f32>()?.iter().zip(&a).any(|(x, y)| (x - y).abs() > 1e-4));
    Ok(())
}

#[test]
fn a_mask_that_does_not_match_the_steps_is_an_error() -> TestResult {
    let mut td = TimeDistributed::new(Dense::new(2));
    td.build(&[3, 4], &mut keel_tensor::rng::Rng::new(0))?;
    let x = Var::constant(Tensor::zeros([2, 3, 4], DType::F32, &keel_tensor::Device::Cpu)?);
    let bad = Tensor::from_vec(vec![1u8; 4], [2, 2])?;
    let err = td.forward_logits_masked(&[x], &[Some(bad)], &mut Ctx::inference()).unwrap_err().to_string();
    assert!(err.contains("TimeDistributed") && err.contains("[2, 3]"), "{err}");
    Ok(())
}
