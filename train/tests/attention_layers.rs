//! Dot, Attention and AdditiveAttention in models: a masked attention classifier trains,
//! and models with the three layers save and load (config, weights, predictions), Keras
//! configs included.

mod common;

use common::{bits, test_dir, weight_bits};
use keel_nn::{
    Activation, AdditiveAttention, Attention, Dense, Dot, Embedding, GlobalAveragePooling1D, Input, LayerExt, Loss,
    Network, ScoreMode,
};
use keel_optim::Adam;
use keel_tensor::{DType, Device, Tensor};
use keel_train::{Fit, KerasModel, MetricSpec, NO_METRICS};

/// `n` sequences of `len` ids in 2..vocab, padded with zeros after a random length
/// (>= 2), labelled by whether token 1 appears in the unpadded part.
fn padded_sequences(n: usize, len: usize, vocab: u64) -> (Tensor, Tensor) {
    let mut state = 99u64;
    let mut next = |m: u64| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) % m
    };
    let (mut ids, mut labels) = (Vec::new(), Vec::new());
    for i in 0..n {
        let used = 2 + next(len as u64 - 1) as usize;
        let mut seq: Vec<i64> = (0..len).map(|t| if t < used { 2 + next(vocab - 2) as i64 } else { 0 }).collect();
        if i % 2 == 0 {
            seq[next(used as u64) as usize] = 1;
        }
        labels.push((i % 2 == 0) as i64);
        ids.extend(seq);
    }
    (Tensor::from_vec(ids, (n, len)).unwrap(), Tensor::from_vec(labels, n).unwrap())
}

/// Embedding(mask_zero) -> self-attention -> GlobalAveragePooling1D -> Dense softmax,
/// learning whether token 1 appears before the padding.
#[test]
fn masked_self_attention_classifier_trains() {
    let (x, y) = padded_sequences(256, 8, 10);
    for additive in [false, true] {
        let inp = Input::new([8]);
        let e = Embedding::new(10, 16).mask_zero(true).call(&inp).unwrap();
        let att = if additive {
            AdditiveAttention::new().call_multi(&[e.clone(), e]).unwrap()
        } else {
            Attention::new().use_scale(true).call_multi(&[e.clone(), e]).unwrap()
        };
        let h = GlobalAveragePooling1D::new().call(&att).unwrap();
        let out = Dense::new(2).activation(Activation::Softmax).call(&h).unwrap();
        let mut m = KerasModel::from_network(keel_nn::Model::with_seed(&[inp], &[out], 3).unwrap());
        m.compile(Adam::new(0.02), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        let scale_before =
            m.network().named_weights().iter().find(|w| w.name.ends_with("/scale")).map(|w| bits(&w.param.value()));
        let h = m.fit(&x, &y, Fit::new().epochs(10).batch_size(32).verbose(0)).unwrap();
        let loss = h.get("loss").unwrap();
        println!("additive {additive}: loss {:.4} -> {:.4}", loss[0], loss.last().unwrap());
        assert!(loss.last().unwrap() < &(0.5 * loss[0]), "additive {additive}: {loss:?}");
        let (_, acc) = m.evaluate(&x, &y).unwrap();
        assert!(acc > 0.9, "additive {additive}: accuracy {acc}, losses {loss:?}");
        // the attention's scale trained too
        let scale_after =
            m.network().named_weights().iter().find(|w| w.name.ends_with("/scale")).map(|w| bits(&w.param.value()));
        assert!(scale_before.is_some() && scale_before != scale_after, "additive {additive}");
    }
}

/// A model with Dot, Attention (every option off its default) and AdditiveAttention saves
/// and loads: config, weights and predictions bit for bit.
#[test]
fn dot_and_attention_layers_round_trip() {
    let dir = test_dir("attention-layers");
    let ids = Input::new([6]);
    let seq = Input::new([5, 4]);
    let q = Embedding::new(10, 4).mask_zero(true).call(&ids).unwrap();
    let k = Dense::new(4).call(&seq).unwrap();
    let a = Attention::new()
        .use_scale(true)
        .score_mode(ScoreMode::Concat)
        .dropout(0.1)
        .seed(Some(5))
        .use_causal_mask(true)
        .call_multi(&[q.clone(), seq.clone(), k])
        .unwrap();
    let b = AdditiveAttention::new().dropout(0.2).call_multi(&[q, seq.clone()]).unwrap();
    let sim = Dot::new((2, 2)).normalize(true).call_multi(&[a, b]).unwrap(); // [6, 6]
    let h = GlobalAveragePooling1D::new().call(&sim).unwrap();
    let out = Dense::new(2).activation(Activation::Softmax).call(&h).unwrap();
    let mut m = keel_train::Model::new(&[ids, seq], &[out]).unwrap();
    let xi = Tensor::from_vec((0..36).map(|i| (i * 7 % 10) as i64).collect::<Vec<_>>(), (6, 6)).unwrap();
    let xs = Tensor::rand_normal(3, 0.0, 1.0, (6, 5, 4), DType::F32, &Device::Cpu).unwrap();
    let y = Tensor::from_vec(vec![0i64, 1, 0, 1, 1, 0], 6).unwrap();
    m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, NO_METRICS).unwrap();
    m.fit([&xi, &xs], &y, Fit::new().epochs(1).batch_size(3).verbose(0)).unwrap();
    let names: Vec<String> = m.network().named_weights().into_iter().map(|w| w.name).collect();
    for w in ["attention/scale", "attention/concat_score_weight", "additive_attention/scale"] {
        assert!(names.contains(&w.to_string()), "{w}: {names:?}");
    }
    let path = dir.join("attention.keel");
    m.save(&path).unwrap();
    let loaded = keel_train::Model::load(&path).unwrap();
    assert_eq!(loaded.config(), m.config());
    assert_eq!(weight_bits(loaded.network()), weight_bits(m.network()));
    let (p, q) = (m.predict([&xi, &xs], 4).unwrap(), loaded.predict([&xi, &xs], 4).unwrap());
    assert_eq!(bits(&p), bits(&q));
    let layers = m.config()["config"]["layers"].clone();
    let cfg_of =
        |class: &str| layers.as_array().unwrap().iter().find(|l| l["class_name"] == class).unwrap()["config"].clone();
    let att = cfg_of("Attention");
    for (key, want) in [
        ("use_scale", serde_json::json!(true)),
        ("score_mode", serde_json::json!("concat")),
        ("dropout", serde_json::json!(0.1)),
        ("seed", serde_json::json!(5)),
        ("use_causal_mask", serde_json::json!(true)),
    ] {
        assert_eq!(att[key], want, "{key}");
    }
    assert_eq!(cfg_of("Dot")["axes"], serde_json::json!([2, 2]));
    assert_eq!(cfg_of("Dot")["normalize"], true);
    assert_eq!(cfg_of("AdditiveAttention")["use_scale"], true);
}

/// The configs Keras 3 writes (`layer.get_config()`, with its `dtype` and `trainable`
/// keys and without `use_causal_mask`) load.
#[test]
fn keras_configs_load() {
    let dtype = serde_json::json!({"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}});
    for (class, cfg) in [
        (
            "Attention",
            serde_json::json!({"name": "attention", "trainable": true, "dtype": dtype, "use_scale": true,
                               "score_mode": "concat", "dropout": 0.25, "seed": 3}),
        ),
        (
            "AdditiveAttention",
            serde_json::json!({"name": "additive_attention", "trainable": true, "dtype": dtype, "use_scale": false,
                               "dropout": 0.0, "seed": null}),
        ),
        (
            "Dot",
            serde_json::json!({"name": "dot", "trainable": true, "dtype": dtype, "axes": [1, 2], "normalize": false}),
        ),
        ("Dot", serde_json::json!({"name": "dot_1", "trainable": true, "dtype": dtype, "axes": -1, "normalize": true})),
    ] {
        let layer = keel_train::layer_from_config(class, &cfg).unwrap_or_else(|e| panic!("{class}: {e}"));
        assert_eq!(layer.class_name(), class);
        let got = layer.config();
        for (k, v) in cfg.as_object().unwrap().iter().filter(|(k, _)| !["trainable", "dtype"].contains(&k.as_str())) {
            assert_eq!(&got[k], v, "{class}: {k}");
        }
    }
    let bad = serde_json::json!({"name": "a", "score_mode": "general"});
    assert!(keel_train::layer_from_config("Attention", &bad).is_err());
    let bad = serde_json::json!({"name": "d", "axes": [1, 2, 3]});
    assert!(keel_train::layer_from_config("Dot", &bad).is_err());
}
