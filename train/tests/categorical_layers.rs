//! CategoryEncoding, Discretization, IntegerLookup and Hashing rebuild from their configs (keel's and
//! Keras 3's), refuse what keel cannot honour, and work in models that train, save and load.

mod common;

use common::{bits, test_dir};
use keel_autograd::Var;
use keel_nn::{
    Activation, CategoryEncoding, Ctx, Dense, Discretization, Embedding, Flatten, GlobalAveragePooling1D, Hashing,
    IntegerLookup, Layer, Loss, Network, OutputMode,
};
use keel_optim::Adam;
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};
use keel_train::{layer_from_config, load_model, Fit, MetricSpec, Sequential};
use serde_json::json;

fn forward(l: &dyn Layer, x: &Tensor) -> Vec<f64> {
    l.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap().into_value().to_vec_f64().unwrap()
}

#[test]
fn layers_round_trip_through_the_registry() {
    let ids = Tensor::from_vec(vec![3i64, 0, 7, 7, 9, 3, 1, 0, 3], (3, 3)).unwrap();
    let floats = Tensor::from_vec(vec![0.5f32, -2.0, 3.5, 1.0, 0.0, 9.0], (2, 3)).unwrap();
    let mut adapted_d = Discretization::adaptive(3).epsilon(0.1).output_mode(OutputMode::OneHot);
    adapted_d.adapt(&floats).unwrap();
    let mut adapted_l = IntegerLookup::new().mask_token(Some(0)).output_mode(OutputMode::MultiHot).max_tokens(Some(4));
    adapted_l.adapt(&ids).unwrap();
    let mut inverted = IntegerLookup::new().invert(true).num_oov_indices(2);
    inverted.set_vocabulary(vec![30, 10, 20]).unwrap();
    let cases: Vec<(Box<dyn Layer>, &Tensor)> = vec![
        (Box::new(CategoryEncoding::new(10).output_mode(OutputMode::Count)), &ids),
        (Box::new(CategoryEncoding::new(10).output_mode(OutputMode::OneHot)), &ids),
        (Box::new(Discretization::new(vec![-1.0, 0.5, 2.0])), &floats),
        (Box::new(adapted_d), &floats),
        (Box::new(adapted_l), &ids),
        (Box::new(IntegerLookup::new().vocabulary(vec![9, 7, 3]).num_oov_indices(3)), &ids),
        (Box::new(inverted), &ids),
        (Box::new(Hashing::new(5).mask_value(Some(0)).salt(Some([3, 4]))), &ids),
        (Box::new(Hashing::new(7).output_mode(OutputMode::MultiHot)), &ids),
    ];
    for (mut l, x) in cases {
        l.set_name("cat".into());
        l.build(&x.dims()[1..], &mut Rng::new(0)).unwrap();
        let cfg = l.config();
        let mut back = layer_from_config(l.class_name(), &cfg).unwrap_or_else(|e| panic!("{cfg}: {e}"));
        assert_eq!((back.class_name(), back.name()), (l.class_name(), "cat"));
        back.build(&x.dims()[1..], &mut Rng::new(0)).unwrap();
        assert_eq!(back.config(), cfg);
        assert_eq!(forward(back.as_ref(), x), forward(l.as_ref(), x), "{cfg}");
    }
}

#[test]
fn keras_configs_load_and_unsupported_ones_are_refused() {
    // as Keras 3.15's get_config() writes them (nn/tests/fixtures/categorical_fixtures.json)
    let dtype = json!({"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
        "registered_name": null});
    let ce = json!({"name": "category_encoding_5", "trainable": true, "dtype": dtype, "num_tokens": 4,
        "output_mode": "count"});
    let l = layer_from_config("CategoryEncoding", &ce).unwrap();
    assert_eq!(
        (l.name(), &l.config()["num_tokens"], &l.config()["output_mode"]),
        ("category_encoding_5", &json!(4), &json!("count"))
    );
    let d = json!({"bin_boundaries": [-3.122575044631958, -0.05188755318522453, 1.0653998851776123,
        2.9270668029785156], "num_bins": 5, "epsilon": 0.1, "output_mode": "int", "sparse": false,
        "name": "discretization_10", "dtype": "float32"});
    let mut l = layer_from_config("Discretization", &d).unwrap();
    l.build(&[2], &mut Rng::new(0)).unwrap();
    let x = Tensor::from_vec(vec![-4.0f32, 0.0, 1.5, 3.0], (2, 2)).unwrap();
    assert_eq!(forward(l.as_ref(), &x), vec![0.0, 2.0, 3.0, 4.0]);
    let il = json!({"name": "integer_lookup_15", "trainable": true, "dtype": dtype, "invert": false,
        "max_tokens": null, "num_oov_indices": 2, "oov_token": -1, "mask_token": 0, "output_mode": "count",
        "sparse": false, "pad_to_max_tokens": false, "vocabulary_dtype": "int64", "idf_weights": null,
        "vocabulary": [12, 36, 1138, 42], "vocabulary_size": 6, "oov_method": "floormod", "salt": null});
    let mut l = layer_from_config("IntegerLookup", &il).unwrap();
    l.build(&[4], &mut Rng::new(0)).unwrap();
    let x = Tensor::from_vec(vec![12i64, 0, 0, 7, 42, 0, 36, 8], (2, 4)).unwrap();
    // Keras: [[0, 1, 1, 0, 0, 0], [1, 0, 0, 1, 0, 1]]
    assert_eq!(forward(l.as_ref(), &x), vec![0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0]);
    let h = json!({"name": "hashing_4", "trainable": true, "dtype": {"module": "keras", "class_name":
        "DTypePolicy", "config": {"name": "int64"}, "registered_name": null}, "num_bins": 11, "salt": [133, 133],
        "mask_value": null, "output_mode": "int", "sparse": false});
    let mut l = layer_from_config("Hashing", &h).unwrap();
    l.build(&[5], &mut Rng::new(0)).unwrap();
    let x = Tensor::from_vec(vec![0i64, 1, -1, 7, 42], (1, 5)).unwrap();
    assert_eq!(forward(l.as_ref(), &x), vec![5.0, 4.0, 10.0, 0.0, 1.0]); // Keras's bins
                                                                         // Keras's `salt=133` form, as a number
    let c = layer_from_config("Hashing", &json!({"num_bins": 3, "salt": 133})).unwrap().config();
    assert_eq!(c["salt"], json!([133, 133]));
    // only the required keys: Keras's defaults for the rest
    let c = layer_from_config("IntegerLookup", &json!({})).unwrap().config();
    assert_eq!((&c["num_oov_indices"], &c["oov_token"], &c["output_mode"]), (&json!(1), &json!(-1), &json!("int")));
    let c = layer_from_config("CategoryEncoding", &json!({"num_tokens": 3})).unwrap().config();
    assert_eq!(c["output_mode"], "multi_hot");
    let c = layer_from_config("CategoryEncoding", &json!({"num_tokens": 3, "output_mode": "binary"})).unwrap().config();
    assert_eq!(c["output_mode"], "multi_hot");
    // refused, not silently changed
    for (class, cfg, why) in [
        ("CategoryEncoding", json!({"num_tokens": 3, "sparse": true}), "sparse"),
        ("CategoryEncoding", json!({"output_mode": "count"}), "num_tokens"),
        ("Discretization", json!({"bin_boundaries": [0.0], "sparse": true}), "sparse"),
        ("Discretization", json!({"bin_boundaries": [0.0], "output_mode": "tf_idf"}), "tf_idf"),
        ("IntegerLookup", json!({"output_mode": "tf_idf"}), "tf_idf"),
        ("IntegerLookup", json!({"sparse": true, "output_mode": "count"}), "sparse"),
        ("IntegerLookup", json!({"num_oov_indices": 2, "oov_method": "farmhash"}), "farmhash"),
        ("IntegerLookup", json!({"vocabulary": [1, 2, 2]}), "repeats"),
        ("IntegerLookup", json!({"max_tokens": 1}), "max_tokens"),
        ("Hashing", json!({"num_bins": 3, "sparse": true, "output_mode": "count"}), "sparse"),
        ("Hashing", json!({"num_bins": 3, "salt": [1, 2, 3]}), "salt"),
        ("Hashing", json!({"salt": 1}), "num_bins"),
    ] {
        let e = layer_from_config(class, &cfg).err().unwrap_or_else(|| panic!("{class} {cfg} loaded"));
        assert!(e.to_string().contains(why), "{class} {cfg}: {e}");
    }
}

/// Sequences of 6 tokens from 100..112; label 1 when token 105 is in the sequence.
fn token_data(seed: u64, n: usize) -> (Tensor, Tensor) {
    let u = Tensor::rand_uniform(seed, 0.0, 12.0, (n, 6), DType::F32, &Device::Cpu).unwrap();
    let tokens: Vec<i64> = u.to_vec::<f32>().unwrap().iter().map(|v| 100 + (*v as i64).min(11)).collect();
    let y: Vec<f32> = tokens.chunks(6).map(|s| f32::from(u8::from(s.contains(&105)))).collect();
    (Tensor::from_vec(tokens, (n, 6)).unwrap(), Tensor::from_vec(y, (n, 1)).unwrap())
}

#[test]
fn integer_lookup_feeds_an_embedding_that_trains_saves_and_loads() {
    let dir = test_dir("categorical_lookup");
    let (x, y) = token_data(3, 96);
    let mut lookup = IntegerLookup::new();
    lookup.adapt(&x).unwrap();
    let vocab = lookup.vocabulary_size().unwrap();
    assert_eq!(vocab, 13); // 12 tokens and the OOV index
    let mut m = Sequential::with_seed(7);
    m.add(lookup.input_shape([6]));
    m.add(Embedding::new(vocab, 8));
    m.add(GlobalAveragePooling1D::new());
    m.add(Dense::new(1).activation(Activation::Sigmoid));
    m.compile(Adam::new(0.05), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    let h = m.fit(&x, &y, Fit::new().epochs(30).batch_size(16).seed(1).verbose(0)).unwrap();
    let loss = h.get("loss").unwrap();
    assert!(loss.last().unwrap() < &(loss[0] * 0.5), "the loss falls: {loss:?}");
    assert!(h.get("accuracy").unwrap().last().unwrap() > &0.9, "{:?}", h.get("accuracy"));
    let path = dir.join("lookup.keel");
    m.save(&path).unwrap();
    let loaded = load_model(&path).unwrap();
    assert_eq!(loaded.config(), m.config());
    // unknown tokens (OOV) and known ones predict the same after loading
    let probe = Tensor::from_vec(vec![105i64, 100, 999, 101, 102, 103, 1, 2, 3, 4, 5, 6], (2, 6)).unwrap();
    assert_eq!(bits(&loaded.predict(&probe, 2).unwrap()), bits(&m.predict(&probe, 2).unwrap()));
    let layers = &m.config()["config"]["layers"];
    assert_eq!(layers[0]["class_name"], "IntegerLookup");
    assert_eq!(layers[0]["config"]["vocabulary"].as_array().unwrap().len(), 12);
    assert_eq!(m.network().count_params(), 13 * 8 + 9);
}

#[test]
fn encoded_categories_feed_a_dense_model_that_trains() {
    // CategoryEncoding(count) of ids, and Discretization(one_hot) of a float: label from both
    let (x, y) = token_data(5, 96);
    let ids =
        Tensor::from_vec(x.to_vec::<i64>().unwrap().iter().map(|t| t - 100).collect::<Vec<_>>(), (96, 6)).unwrap();
    let mut m = Sequential::with_seed(2);
    m.add(CategoryEncoding::new(12).output_mode(OutputMode::Count).input_shape([6]));
    m.add(Dense::new(8).activation(Activation::Relu));
    m.add(Dense::new(1).activation(Activation::Sigmoid));
    m.compile(Adam::new(0.05), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    let h = m.fit(&ids, &y, Fit::new().epochs(30).batch_size(16).seed(1).verbose(0)).unwrap();
    assert!(h.get("accuracy").unwrap().last().unwrap() > &0.95, "{:?}", h.get("accuracy"));
    // a float feature bucketed by quantiles, one-hot, flattened into a Dense
    let v = Tensor::rand_uniform(9, -3.0, 3.0, (64, 1), DType::F32, &Device::Cpu).unwrap();
    let label = v.gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::F32).unwrap();
    let mut disc = Discretization::adaptive(4).output_mode(OutputMode::OneHot);
    disc.adapt(&v).unwrap();
    let mut m = Sequential::with_seed(4);
    m.add(disc.input_shape([1]));
    m.add(Flatten::new());
    m.add(Dense::new(1).activation(Activation::Sigmoid));
    m.compile(Adam::new(0.1), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    let h = m.fit(&v, &label, Fit::new().epochs(40).batch_size(16).seed(1).verbose(0)).unwrap();
    assert!(h.get("accuracy").unwrap().last().unwrap() > &0.9, "{:?}", h.get("accuracy"));
}
