//! A model used as a layer of another (Keras's nested models, `ModelLayer`): it computes and
//! trains bit for bit as the same layers in one flat model, freezing reaches inside it, a
//! functional graph can call (and share) it, and what cannot work is a clear error.

use keel_autograd::{Tape, Var};
use keel_nn::prelude::*;
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};
use std::collections::BTreeMap;

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
}

/// A small feature extractor: Dense -> BatchNormalization -> Dense.
fn base(seed: u64) -> Sequential {
    let mut b = Sequential::with_seed(seed).with_name("base");
    b.add(Dense::new(16).activation(Activation::Relu).input_shape([8]).with_name("d1"));
    b.add(BatchNormalization::new().with_name("bn"));
    b.add(Dense::new(12).activation(Activation::Tanh).with_name("d2"));
    b
}

/// `base` with a softmax head on it.
fn nested() -> Sequential {
    let mut m = Sequential::with_seed(7);
    m.add(base(1));
    m.add(Dense::new(3).activation(Activation::Softmax).with_name("head"));
    m
}

/// The same layers in one flat model, with `nested`'s weights.
fn flat_twin(nested: &Sequential) -> Sequential {
    let mut f = Sequential::with_seed(99);
    f.add(Dense::new(16).activation(Activation::Relu).input_shape([8]).with_name("d1"));
    f.add(BatchNormalization::new().with_name("bn"));
    f.add(Dense::new(12).activation(Activation::Tanh).with_name("d2"));
    f.add(Dense::new(3).activation(Activation::Softmax).with_name("head"));
    let map: BTreeMap<String, Tensor> =
        nested.state_dict().into_iter().map(|(k, v)| (k.strip_prefix("base/").unwrap_or(&k).to_string(), v)).collect();
    f.load_state_dict(&map).unwrap();
    f
}

fn data() -> (Tensor, Tensor) {
    let x = Tensor::rand_normal(3, 0.0, 1.0, (6, 8), DType::F32, &Device::Cpu).unwrap();
    (x, Tensor::from_vec(vec![0i64, 1, 2, 2, 1, 0], 6).unwrap())
}

/// `steps` plain SGD steps on the sparse cross-entropy; the losses.
fn train(m: &Sequential, steps: usize) -> Vec<f32> {
    let (x, y) = data();
    let mut rng = Rng::new(5);
    let mut losses = Vec::new();
    for _ in 0..steps {
        let tape = Tape::new();
        let mut ctx = Ctx::train(&tape, &mut rng);
        let heads = m.forward_heads(&[Var::constant(x.clone())], &mut ctx).unwrap();
        // the nested model's softmax is still the head's, fused with the loss
        assert_eq!(heads[0].activation, Activation::Softmax);
        let l = Loss::SparseCategoricalCrossentropy.compute_head(&heads[0], &y, None).unwrap();
        losses.push(l.value().to_scalar::<f32>().unwrap());
        let g = tape.backward(&l).unwrap();
        for p in m.trainable_params() {
            if let Some(gp) = g.get(&p) {
                p.set(p.value().sub(&gp.mul_scalar(0.1).unwrap()).unwrap()).unwrap();
            }
        }
    }
    losses
}

/// The weights by their flat names, as bits.
fn flat_bits(m: &Sequential) -> BTreeMap<String, Vec<u32>> {
    m.state_dict().into_iter().map(|(k, v)| (k.strip_prefix("base/").unwrap_or(&k).to_string(), bits(&v))).collect()
}

#[test]
fn a_nested_model_computes_and_trains_as_the_flat_one() {
    let m = nested();
    assert!(m.is_built());
    let names: Vec<String> = m.named_weights().into_iter().map(|w| w.name).collect();
    assert_eq!(
        names,
        [
            "base/d1/kernel",
            "base/d1/bias",
            "base/bn/gamma",
            "base/bn/beta",
            "base/d2/kernel",
            "base/d2/bias",
            "head/kernel",
            "head/bias",
            "base/bn/moving_mean",
            "base/bn/moving_variance"
        ]
    );
    let layer = m.get_layer("base").unwrap();
    assert_eq!(layer.class_name(), "Sequential");
    assert_eq!(layer.output_activation(), Some(Activation::Tanh));
    assert_eq!(m.output_shapes().unwrap(), vec![vec![3]]);
    let s = m.summary();
    assert!(s.contains("base (Sequential)"), "{s}");
    assert!(s.contains(&format!("Total params: {}", 8 * 16 + 16 + 4 * 16 + 16 * 12 + 12 + 12 * 3 + 3)), "{s}");

    let f = flat_twin(&m);
    let (x, _) = data();
    assert_eq!(bits(&m.predict(std::slice::from_ref(&x)).unwrap()[0]), bits(&f.predict(&[x]).unwrap()[0]));
    // training mode (batch statistics, moving averages) and the gradients, step by step
    assert_eq!(train(&m, 3), train(&f, 3));
    assert_eq!(flat_bits(&m), flat_bits(&f));
}

#[test]
fn freezing_the_nested_model_freezes_everything_in_it() {
    let mut m = nested();
    m.set_trainable("base", false).unwrap();
    assert_eq!(m.is_trainable("base"), Some(false));
    let trainable: Vec<String> = m.named_weights().into_iter().filter(|w| w.trainable).map(|w| w.name).collect();
    assert_eq!(trainable, ["head/kernel", "head/bias"]);
    // Keras: a frozen BatchNormalization runs in inference mode, so its statistics stay,
    // and the frozen weights get no gradient
    let mut f = flat_twin(&m);
    for l in ["d1", "bn", "d2"] {
        f.set_trainable(l, false).unwrap();
    }
    let before = flat_bits(&m);
    assert_eq!(train(&m, 2), train(&f, 2));
    let after = flat_bits(&m);
    for (k, v) in &before {
        assert_eq!(after[k] == *v, !k.starts_with("head/"), "{k}");
    }
    assert_eq!(after, flat_bits(&f));
}

#[test]
fn a_layer_frozen_inside_the_nested_model_stays_frozen() {
    let mut b = base(1);
    b.set_trainable("d1", false).unwrap();
    let mut m = Sequential::new();
    m.add(b);
    let frozen: Vec<String> = m.named_weights().into_iter().filter(|w| !w.trainable).map(|w| w.name).collect();
    assert_eq!(frozen, ["base/d1/kernel", "base/d1/bias", "base/bn/moving_mean", "base/bn/moving_variance"]);
}

#[test]
fn an_unbuilt_nested_model_is_built_by_the_outer_one() {
    let mut inner = Sequential::new().with_name("inner");
    inner.add(Dense::new(4));
    let mut m = Sequential::new();
    m.add(Dense::new(5).input_shape([3]));
    m.add(inner);
    assert!(m.is_built(), "{:?}", m.pending_error());
    assert_eq!(m.output_shapes().unwrap(), vec![vec![4]]);
    let w = m.state_dict();
    assert_eq!(w["inner/dense/kernel"].dims(), &[5, 4]);
    assert_eq!(w["dense/kernel"].dims(), &[3, 5]);
}

#[test]
fn a_functional_graph_calls_and_shares_a_nested_model() {
    // a siamese network: one encoder, two inputs
    let enc = ModelLayer::new(base(1)).shared();
    let a = Input::new([8]);
    let b = Input::new([8]);
    let fa = enc.call(&a).unwrap();
    let fb = enc.call(&b).unwrap();
    let out = Dense::new(1).activation(Activation::Sigmoid).call(&concatenate(&[fa, fb], -1).unwrap()).unwrap();
    let m = Model::new(&[a, b], &[out]).unwrap();
    let base_params = 8 * 16 + 16 + 4 * 16 + 16 * 12 + 12;
    assert_eq!(m.count_params(), base_params + 24 + 1, "the encoder's weights once");
    assert!(m.summary().contains("base (Sequential)"), "{}", m.summary());

    // the output is the head on the two encodings of an encoder with the same weights
    let (x1, _) = data();
    let x2 = Tensor::rand_normal(4, 0.0, 1.0, (6, 8), DType::F32, &Device::Cpu).unwrap();
    let got = m.predict(&[x1.clone(), x2.clone()]).unwrap().remove(0);
    let twin = base(1);
    let e1 = twin.predict(std::slice::from_ref(&x1)).unwrap().remove(0);
    let e2 = twin.predict(std::slice::from_ref(&x2)).unwrap().remove(0);
    let w = m.state_dict();
    let z = Tensor::concat(&[e1, e2], 1).unwrap().matmul(&w["dense/kernel"]).unwrap().add(&w["dense/bias"]).unwrap();
    let want = Activation::Sigmoid.apply(&Var::constant(z)).unwrap().into_value();
    assert_eq!(bits(&got), bits(&want));

    // both calls send their gradient to the one encoder
    let tape = Tape::new();
    let mut rng = Rng::new(0);
    let mut ctx = Ctx::train(&tape, &mut rng);
    let y = m.forward(&[Var::constant(x1), Var::constant(x2)], &mut ctx).unwrap().remove(0);
    let g = tape.backward(&y.sum_all().unwrap()).unwrap();
    for nw in m.named_weights().into_iter().filter(|w| w.trainable) {
        let gp = g.get(&nw.param).unwrap_or_else(|| panic!("no gradient for {}", nw.name));
        assert!(gp.to_vec::<f32>().unwrap().iter().any(|v| *v != 0.0), "{}", nw.name);
    }
}

#[test]
fn what_cannot_be_a_layer_is_a_clear_error() {
    // two outputs
    let x = Input::new([4]);
    let y1 = Dense::new(2).call(&x).unwrap();
    let y2 = Dense::new(3).call(&x).unwrap();
    let two = Model::new(&[x], &[y1, y2]).unwrap();
    let mut m = Sequential::new();
    let e = m.try_add(two).unwrap_err().to_string();
    assert!(e.contains("the model has 2 outputs, and a layer has one"), "{e}");

    // built for other inputs than it gets
    let mut m = Sequential::new();
    m.add(Dense::new(5).input_shape([3]));
    let e = m.try_add(base(1)).unwrap_err().to_string();
    assert!(e.contains("[8]") && e.contains("[5]"), "{e}");

    // two nested models with the same name
    let mut m = Sequential::new();
    m.add(base(1));
    let e = m.try_add(base(2)).unwrap_err().to_string();
    assert!(e.contains("a layer named \"base\" is already in the model"), "{e}");
}

/// Token ids `[4, 6]` with padding (0) at the end of some rows, one row all padding but one.
fn padded_tokens() -> Tensor {
    let ids: Vec<i64> = vec![3, 5, 2, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 2, 2, 4, 1, 0, 0];
    Tensor::from_vec(ids, (4, 6)).unwrap()
}

/// `m`'s prediction for the padded tokens, as bits.
fn predicted_bits(m: &dyn Network) -> Vec<u32> {
    bits(&m.predict(&[padded_tokens()]).unwrap()[0])
}

/// Copy `from`'s weights into `to`, whose names are `from`'s without the nested models' names.
fn copy_flat(from: &Sequential, to: &Sequential, nested: &[&str]) {
    let map: BTreeMap<String, Tensor> = from
        .state_dict()
        .into_iter()
        .map(|(k, v)| {
            let k = nested.iter().fold(k, |k, n| k.strip_prefix(&format!("{n}/")).map(str::to_string).unwrap_or(k));
            (k, v)
        })
        .collect();
    to.load_state_dict(&map).unwrap();
}

#[test]
fn masks_cross_the_nested_model_both_ways() {
    // in: the outer Embedding's mask reaches the LSTMs inside the nested model
    let mut enc = Sequential::with_seed(1).with_name("enc");
    enc.add(LSTM::new(5).return_sequences(true).with_name("l1"));
    enc.add(LSTM::new(4).with_name("l2"));
    let mut m = Sequential::with_seed(2);
    m.add(Embedding::new(8, 3).mask_zero(true).input_shape([6]).with_name("emb"));
    m.add(enc);
    m.add(Dense::new(2).with_name("head"));
    assert!(m.is_built(), "{:?}", m.pending_error());
    let mut flat = Sequential::with_seed(9);
    flat.add(Embedding::new(8, 3).mask_zero(true).input_shape([6]).with_name("emb"));
    flat.add(LSTM::new(5).return_sequences(true).with_name("l1"));
    flat.add(LSTM::new(4).with_name("l2"));
    flat.add(Dense::new(2).with_name("head"));
    copy_flat(&m, &flat, &["enc"]);
    assert_eq!(predicted_bits(&m), predicted_bits(&flat));

    // out: a mask made inside the nested model reaches the outer LSTM
    let mut front = Sequential::with_seed(3).with_name("front");
    front.add(Embedding::new(8, 3).mask_zero(true).input_shape([6]).with_name("emb"));
    front.add(LSTM::new(5).return_sequences(true).with_name("l1"));
    let mut m = Sequential::with_seed(4);
    m.add(front);
    m.add(LSTM::new(4).with_name("l2"));
    let flat_head = flat.pop().unwrap();
    assert_eq!(flat_head.name(), "head");
    copy_flat(&m, &flat, &["front"]);
    assert_eq!(predicted_bits(&m), predicted_bits(&flat));

    // the mask of the nested model's output, also asked for without a forward pass before
    let front = m.get_layer("front").unwrap();
    let mask = front.compute_mask(&[Var::constant(padded_tokens())], &[None]).unwrap().unwrap();
    let want: Vec<u8> = padded_tokens().to_vec::<i64>().unwrap().iter().map(|&t| (t != 0) as u8).collect();
    assert_eq!(mask.to_vec::<u8>().unwrap(), want);

    // and the mask is what the outer layer used: without it the result differs
    let mut unmasked = Sequential::with_seed(4);
    unmasked.add(Embedding::new(8, 3).input_shape([6]).with_name("emb"));
    unmasked.add(LSTM::new(5).return_sequences(true).with_name("l1"));
    unmasked.add(LSTM::new(4).with_name("l2"));
    copy_flat(&m, &unmasked, &["front"]);
    assert_ne!(predicted_bits(&m), predicted_bits(&unmasked));
}

#[test]
fn a_functional_graph_passes_masks_through_a_nested_model() {
    let mut enc = Sequential::with_seed(1).with_name("enc");
    enc.add(LSTM::new(4).with_name("l2"));
    let inp = Input::new([6]);
    let e = Embedding::new(8, 3).mask_zero(true).with_name("emb").call(&inp).unwrap();
    let h = ModelLayer::new(enc).call(&e).unwrap();
    let out = Dense::new(2).with_name("head").call(&h).unwrap();
    let m = Model::with_seed(&[inp], &[out], 5).unwrap();
    let mut flat = Sequential::with_seed(9);
    flat.add(Embedding::new(8, 3).mask_zero(true).input_shape([6]).with_name("emb"));
    flat.add(LSTM::new(4).with_name("l2"));
    flat.add(Dense::new(2).with_name("head"));
    let map: BTreeMap<String, Tensor> =
        m.state_dict().into_iter().map(|(k, v)| (k.strip_prefix("enc/").unwrap_or(&k).to_string(), v)).collect();
    flat.load_state_dict(&map).unwrap();
    assert_eq!(predicted_bits(&m), predicted_bits(&flat));
}
