//! Keras's transfer-learning workflow with a model used as a layer: load a trained model,
//! put a new head on its body, freeze the body, fit, save and load the nested model.

mod common;

use common::{bits, blobs, flipped, mlp, test_dir, weight_bits};
use keel_nn::{Activation, Dense, Input, LayerExt, Loss, ModelLayer, Network};
use keel_optim::Adam;
use keel_train::{load_model, Fit, Model, Sequential, NO_METRICS};

fn layer_bits(m: &impl Network, prefix: &str) -> Vec<Vec<u32>> {
    m.state_dict().into_iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, t)| bits(&t)).collect()
}

#[test]
fn a_trained_body_under_a_new_head_trains_frozen_then_fine_tuned_and_round_trips() {
    let dir = test_dir("nested");
    let (x, y) = blobs(1, 64);
    // a model trained on one task, saved
    let mut trained = mlp(2);
    trained.compile(Adam::new(0.05), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    trained.fit(&x, &y, Fit::new().epochs(3).batch_size(16).verbose(0)).unwrap();
    let path = dir.join("trained.keel");
    trained.save(&path).unwrap();

    // its body (the head popped) under a new head, for the flipped task
    let mut body = load_model(&path).unwrap().into_network().with_name("body");
    body.pop().unwrap();
    let mut m = Sequential::with_seed(3);
    m.add(body);
    m.add(Dense::new(1).activation(Activation::Sigmoid).with_name("new_head"));
    m.set_trainable("body", false).unwrap();
    assert!(m.network().summary().contains("body (Sequential)"), "{}", m.network().summary());
    assert_eq!(m.network().trainable_params().iter().map(|p| p.elem_count()).sum::<usize>(), 17);
    let body_before = layer_bits(m.network(), "body/");
    assert_eq!(body_before, layer_bits(trained.network(), "dense/"), "the body keeps the trained weights");

    let yf = flipped(&y);
    m.compile(Adam::new(0.05), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let h = m.fit(&x, &yf, Fit::new().epochs(5).batch_size(16).verbose(0)).unwrap();
    let loss = h.get("loss").unwrap();
    assert!(loss[4] < loss[0], "the new head learns: {loss:?}");
    assert_eq!(layer_bits(m.network(), "body/"), body_before, "the frozen body changed");

    // saved and loaded: the same config (the body's frozen flag included), weights and outputs
    let p2 = dir.join("nested.keel");
    m.save(&p2).unwrap();
    let loaded = load_model(&p2).unwrap();
    assert_eq!(loaded.config(), m.config());
    assert_eq!(weight_bits(loaded.network()), weight_bits(m.network()));
    assert_eq!(bits(&loaded.predict(&x, 16).unwrap()), bits(&m.predict(&x, 16).unwrap()));
    assert_eq!(loaded.network().is_trainable("body"), Some(false));

    // fine-tuning: unfrozen, the body trains too
    m.set_trainable("body", true).unwrap();
    m.fit(&x, &yf, Fit::new().epochs(1).batch_size(16).verbose(0)).unwrap();
    assert_ne!(layer_bits(m.network(), "body/"), body_before);
}

#[test]
fn a_functional_model_with_a_nested_model_round_trips() {
    let dir = test_dir("nested-functional");
    let (x, y) = blobs(4, 32);
    let inp = Input::new([2]);
    let features = ModelLayer::new(mlp(5).into_network().with_name("inner")).call(&inp).unwrap();
    let out = Dense::new(1).activation(Activation::Sigmoid).call(&features).unwrap();
    let mut m = Model::new(&[inp], &[out]).unwrap();
    m.compile(Adam::new(0.05), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    m.fit(&x, &y, Fit::new().epochs(2).batch_size(8).verbose(0)).unwrap();
    let path = dir.join("functional.keel");
    m.save(&path).unwrap();
    let loaded = Model::load(&path).unwrap();
    assert_eq!(loaded.config(), m.config());
    assert_eq!(bits(&loaded.predict(&x, 8).unwrap()), bits(&m.predict(&x, 8).unwrap()));
}
