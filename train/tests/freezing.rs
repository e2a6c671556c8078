//! Freezing layers (Keras's `layer.trainable = False`): what `fit` updates, batch
//! normalization in inference mode, penalties, saving, shared functional layers.

mod common;

use common::{bits, blobs, test_dir};
use keel_nn::{
    Activation, BatchNormalization, Dense, Input, LayerExt, Loss, Network, Regularizer, Sequential as Stack,
};
use keel_optim::{Adam, SGD};
use keel_tensor::{DType, Device, Tensor};
use keel_train::{load_model, Fit, KerasModel, Sequential, NO_METRICS};

fn layer_bits(m: &impl Network, layer: &str) -> Vec<Vec<u32>> {
    m.state_dict().into_iter().filter(|(k, _)| k.starts_with(&format!("{layer}/"))).map(|(_, t)| bits(&t)).collect()
}

fn three_dense(seed: u64) -> Sequential {
    let mut m = Sequential::with_seed(seed);
    m.add(Dense::new(8).activation(Activation::Relu).input_shape([2]));
    m.add(Dense::new(8).activation(Activation::Relu));
    m.add(Dense::new(1).activation(Activation::Sigmoid));
    m
}

#[test]
fn a_frozen_layer_keeps_its_weights_and_the_others_train_through_it() {
    let (x, y) = blobs(1, 64);
    let mut m = three_dense(2);
    m.set_trainable("dense_1", false).unwrap(); // the middle layer
    assert_eq!(m.network().is_trainable("dense_1"), Some(false));
    assert_eq!(m.network().is_trainable("dense"), Some(true));
    assert_eq!(m.network().is_trainable("nope"), None);
    // Keras's counts: the frozen layer's 72 weights are non-trainable
    assert_eq!(m.network().trainable_params().iter().map(|p| p.elem_count()).sum::<usize>(), 24 + 9);
    assert!(m.network().summary().contains("Non-trainable params: 72"), "{}", m.network().summary());
    let before: Vec<_> = ["dense", "dense_1", "dense_2"].iter().map(|l| layer_bits(m.network(), l)).collect();
    m.compile(Adam::new(0.05), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    m.fit(&x, &y, Fit::new().epochs(2).batch_size(16).verbose(0)).unwrap();
    assert_eq!(layer_bits(m.network(), "dense_1"), before[1], "the frozen layer changed");
    // the gradient flows through the frozen layer to the first one
    assert_ne!(layer_bits(m.network(), "dense"), before[0]);
    assert_ne!(layer_bits(m.network(), "dense_2"), before[2]);
    // unfrozen (fine-tuning), the next fit trains it too, with the same optimizer
    m.set_trainable("dense_1", true).unwrap();
    m.fit(&x, &y, Fit::new().epochs(1).batch_size(16).verbose(0)).unwrap();
    assert_ne!(layer_bits(m.network(), "dense_1"), before[1]);
}

#[test]
fn freezing_everything_fits_nothing_and_unknown_names_are_errors() {
    let (x, y) = blobs(3, 32);
    let mut m = three_dense(4);
    m.set_all_trainable(false);
    assert!(m.network().trainable_params().is_empty());
    let before = m.network().state_dict().into_values().map(|t| bits(&t)).collect::<Vec<_>>();
    m.compile(SGD::new(0.5), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let h = m.fit(&x, &y, Fit::new().epochs(2).verbose(0)).unwrap();
    assert_eq!(h.get("loss").unwrap().len(), 2); // the loss is still computed, as Keras's
    assert_eq!(m.network().state_dict().into_values().map(|t| bits(&t)).collect::<Vec<_>>(), before);
    let msg = m.set_trainable("dense_9", false).unwrap_err().to_string();
    assert!(msg.contains("\"dense_9\"") && msg.contains("\"dense\", \"dense_1\", \"dense_2\""), "{msg}");
}

#[test]
fn a_frozen_batch_normalization_runs_in_inference_mode() {
    let x = Tensor::rand_normal(5, 3.0, 2.0, (32, 4), DType::F32, &Device::Cpu).unwrap();
    let y = Tensor::rand_normal(6, 0.0, 1.0, (32, 1), DType::F32, &Device::Cpu).unwrap();
    let mut m = Sequential::with_seed(7);
    m.add(BatchNormalization::new().input_shape([4]));
    m.add(Dense::new(1));
    m.set_trainable("batch_normalization", false).unwrap();
    let before = layer_bits(m.network(), "batch_normalization");
    m.compile(SGD::new(0.01), Loss::MeanSquaredError, NO_METRICS).unwrap();
    m.fit(&x, &y, Fit::new().epochs(2).batch_size(8).verbose(0)).unwrap();
    // neither gamma/beta (frozen) nor the moving statistics (inference mode) moved
    assert_eq!(layer_bits(m.network(), "batch_normalization"), before);
    // a training-mode pass now equals the inference pass (moving statistics, not the batch's)
    let tape = keel_autograd::Tape::new();
    let mut rng = keel_tensor::rng::Rng::new(0);
    let xs = [keel_autograd::Var::constant(x.clone())];
    let train = m.network().forward(&xs, &mut keel_nn::Ctx::train(&tape, &mut rng)).unwrap();
    let infer = m.network().predict(&[x]).unwrap();
    assert_eq!(bits(train[0].value()), bits(&infer[0]));
}

#[test]
fn a_frozen_layers_penalty_leaves_the_loss() {
    let x = Tensor::rand_normal(8, 0.0, 1.0, (16, 3), DType::F32, &Device::Cpu).unwrap();
    let mut m = Stack::with_seed(9);
    m.add(Dense::new(4).kernel_regularizer(Regularizer::l2(10.0)).input_shape([3]));
    m.add(Dense::new(1));
    let ctx = keel_nn::Ctx::inference();
    assert!(m.regularization_loss(&ctx).unwrap().is_some());
    m.set_trainable("dense", false).unwrap();
    assert!(m.regularization_loss(&ctx).unwrap().is_none(), "Keras penalizes trainable weights only");
    // and no gradient is computed for the frozen weights
    let tape = keel_autograd::Tape::new();
    let mut rng = keel_tensor::rng::Rng::new(0);
    let out = m.forward(&[keel_autograd::Var::constant(x)], &mut keel_nn::Ctx::train(&tape, &mut rng)).unwrap();
    let grads = tape.backward(&out[0].sum_all().unwrap()).unwrap();
    for w in m.named_weights() {
        let has = grads.get(&w.param).is_some();
        assert_eq!(has, w.name.starts_with("dense_1/"), "{}", w.name);
    }
}

#[test]
fn the_flag_is_saved_and_loaded() {
    let dir = test_dir("freezing");
    let (x, y) = blobs(10, 32);
    let mut m = three_dense(11);
    m.set_trainable("dense", false).unwrap();
    m.compile(Adam::new(0.01), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    m.fit(&x, &y, Fit::new().verbose(0)).unwrap();
    let path = dir.join("frozen.keel");
    m.save(&path).unwrap();
    let mut loaded = load_model(&path).unwrap();
    assert_eq!(loaded.config(), m.config());
    assert_eq!(loaded.config()["config"]["layers"][0]["config"]["trainable"], false);
    assert_eq!(loaded.config()["config"]["layers"][1]["config"]["trainable"], true);
    assert_eq!(loaded.network().is_trainable("dense"), Some(false));
    let before = layer_bits(loaded.network(), "dense");
    loaded.compile(Adam::new(0.01), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    loaded.fit(&x, &y, Fit::new().verbose(0)).unwrap();
    assert_eq!(layer_bits(loaded.network(), "dense"), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_shared_functional_layer_is_frozen_in_every_model() {
    // Keras's transfer-learning pattern: an encoder, and a classifier on top of it
    let inp = Input::new([2]);
    let enc = Dense::new(6).activation(Activation::Tanh).with_name("encoder").shared();
    let code = enc.call(&inp).unwrap();
    let out = Dense::new(1).activation(Activation::Sigmoid).with_name("head").call(&code).unwrap();
    let encoder = keel_nn::Model::new(std::slice::from_ref(&inp), &[code]).unwrap();
    let mut clf = KerasModel::from_network(keel_nn::Model::new(&[inp], &[out]).unwrap());
    clf.set_trainable("encoder", false).unwrap();
    assert!(!enc.trainable());
    assert_eq!(encoder.is_trainable("encoder"), Some(false));
    let before = layer_bits(&encoder, "encoder");
    let (x, y) = blobs(12, 32);
    clf.compile(Adam::new(0.05), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    clf.fit(&x, &y, Fit::new().epochs(2).verbose(0)).unwrap();
    assert_eq!(layer_bits(&encoder, "encoder"), before);
    assert_eq!(layer_bits(clf.network(), "encoder"), before);
    assert!(clf.config()["config"]["layers"].as_array().unwrap().iter().any(|l| l["config"]["trainable"] == false));
}

#[test]
fn a_frozen_layer_stays_put_under_mixed_precision() {
    let (x, y) = blobs(13, 32);
    let mut net = Stack::with_seed(14).dtype_policy(keel_nn::mixed_precision::DTypePolicy::MixedBFloat16);
    net.add(Dense::new(8).activation(Activation::Relu).input_shape([2]));
    net.add(BatchNormalization::new());
    net.add(Dense::new(1).activation(Activation::Sigmoid));
    net.set_trainable("dense", false).unwrap();
    net.set_trainable("batch_normalization", false).unwrap();
    let mut m = KerasModel::from_network(net);
    let frozen = [layer_bits(m.network(), "dense"), layer_bits(m.network(), "batch_normalization")];
    let head = layer_bits(m.network(), "dense_1");
    m.compile(Adam::new(0.05), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    m.fit(&x, &y, Fit::new().epochs(2).batch_size(8).verbose(0)).unwrap();
    assert_eq!([layer_bits(m.network(), "dense"), layer_bits(m.network(), "batch_normalization")], frozen);
    assert_ne!(layer_bits(m.network(), "dense_1"), head);
}
