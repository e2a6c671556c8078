//! Gradients through a Sequential model, one hand SGD step, overfitting a small batch,
//! and weights save/load.

use keel_autograd::{Tape, Var};
use keel_nn::prelude::*;
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};

/// One SGD step `p -= lr * g` on every trainable parameter; returns the loss before the step.
fn sgd_step(model: &dyn Network, x: &Tensor, y: &Tensor, loss: Loss, lr: f64, rng: &mut Rng) -> f64 {
    let tape = Tape::new();
    let mut ctx = Ctx::train(&tape, rng);
    let heads = model.forward_heads(&[Var::constant(x.clone())], &mut ctx).unwrap();
    let mut l = loss.compute_head(&heads[0], y, None).unwrap();
    if let Some(r) = model.regularization_loss(&ctx).unwrap() {
        l = l.add(&r).unwrap();
    }
    let value = l.value().to_scalar::<f32>().unwrap() as f64;
    let grads = tape.backward(&l).unwrap();
    for p in model.trainable_params() {
        let g = grads.get(&p).expect("every trainable parameter gets a gradient");
        p.set(p.value().sub(&g.mul_scalar(lr).unwrap()).unwrap()).unwrap();
    }
    value
}

fn eval_loss(model: &dyn Network, x: &Tensor, y: &Tensor, loss: Loss) -> f64 {
    let heads = model.forward_heads(&[Var::constant(x.clone())], &mut Ctx::inference()).unwrap();
    loss.compute_head(&heads[0], y, None).unwrap().value().to_scalar::<f32>().unwrap() as f64
}

fn mlp(seed: u64) -> Sequential {
    let mut m = Sequential::with_seed(seed);
    m.add(Dense::new(16).activation(Activation::Tanh).input_shape([4]).kernel_regularizer(Regularizer::l2(1e-4)));
    m.add(Dense::new(3).activation(Activation::Softmax));
    m
}

fn data() -> (Tensor, Tensor) {
    let x = Tensor::rand_normal(11, 0.0, 1.0, (8, 4), DType::F32, &Device::Cpu).unwrap();
    let y = Tensor::from_vec(vec![0i64, 1, 2, 0, 1, 2, 0, 1], 8).unwrap();
    (x, y)
}

#[test]
fn one_sgd_step_by_hand_lowers_the_loss() {
    let model = mlp(1);
    let (x, y) = data();
    let loss = Loss::SparseCategoricalCrossentropy;
    let mut rng = Rng::new(0);
    let before = sgd_step(&model, &x, &y, loss, 0.1, &mut rng);
    let after = eval_loss(&model, &x, &y, loss);
    assert!(after < before, "{after} !< {before}");
}

#[test]
fn gradient_matches_finite_difference() {
    let model = mlp(2);
    let (x, y) = data();
    let loss = Loss::SparseCategoricalCrossentropy;
    let tape = Tape::new();
    let mut rng = Rng::new(0);
    let mut ctx = Ctx::train(&tape, &mut rng);
    let heads = model.forward_heads(&[Var::constant(x.clone())], &mut ctx).unwrap();
    let l = loss.compute_head(&heads[0], &y, None).unwrap();
    let grads = tape.backward(&l).unwrap();
    let (name, p) = model.named_params().into_iter().find(|(n, _)| n == "dense/kernel").unwrap();
    let g = grads.get(&p).unwrap().to_vec::<f32>().unwrap();
    let orig = p.value().to_vec::<f32>().unwrap();
    for i in [0usize, 5, 17] {
        let eps = 1e-2f32;
        let f = |d: f32| {
            let mut v = orig.clone();
            v[i] += d;
            p.set(Tensor::from_vec(v, p.shape()).unwrap()).unwrap();
            eval_loss(&model, &x, &y, loss)
        };
        let num = (f(eps) - f(-eps)) / (2.0 * eps as f64);
        assert!((num - g[i] as f64).abs() < 2e-3, "{name}[{i}]: numeric {num} vs analytic {}", g[i]);
    }
}

#[test]
fn small_cnn_overfits_a_batch_with_manual_sgd() {
    let mut m = Sequential::with_seed(5);
    m.add(Conv2D::new(4, 3).activation(Activation::Relu).input_shape([6, 6, 1]));
    m.add(MaxPooling2D::new(2));
    m.add(Flatten::new());
    m.add(Dense::new(16).activation(Activation::Relu));
    m.add(Dropout::new(0.1));
    m.add(Dense::new(2).activation(Activation::Softmax));
    let x = Tensor::rand_normal(21, 0.0, 1.0, (8, 6, 6, 1), DType::F32, &Device::Cpu).unwrap();
    let y = Tensor::from_vec(
        vec![1.0f32, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0],
        (8, 2),
    )
    .unwrap();
    let loss = Loss::CategoricalCrossentropy;
    let mut rng = Rng::new(9);
    let first = eval_loss(&m, &x, &y, loss);
    for _ in 0..300 {
        sgd_step(&m, &x, &y, loss, 0.1, &mut rng);
    }
    let last = eval_loss(&m, &x, &y, loss);
    assert!(last < 0.05 && last < first, "loss {first} -> {last}");
    let p = m.predict(&[x]).unwrap().remove(0).argmax(-1, false).unwrap().to_vec::<i64>().unwrap();
    assert_eq!(p, vec![0, 1, 0, 1, 0, 1, 1, 0]);
}

#[test]
fn batchnorm_model_trains_and_keeps_moving_stats_out_of_sgd() {
    let mut m = Sequential::with_seed(3);
    m.add(Dense::new(8).input_shape([4]));
    m.add(BatchNormalization::new());
    m.add(ActivationLayer::new(Activation::Relu));
    m.add(Dense::new(1));
    assert_eq!(m.trainable_params().len(), 6);
    assert_eq!(m.non_trainable_params().len(), 2);
    assert!(m.summary().contains("Non-trainable params: 16"));
    let (x, _) = data();
    let y = Tensor::rand_normal(4, 0.0, 1.0, (8, 1), DType::F32, &Device::Cpu).unwrap();
    let mm = m.non_trainable_params()[0].value().to_vec::<f32>().unwrap();
    let mut rng = Rng::new(0);
    let first = sgd_step(&m, &x, &y, Loss::MeanSquaredError, 0.05, &mut rng);
    for _ in 0..50 {
        sgd_step(&m, &x, &y, Loss::MeanSquaredError, 0.05, &mut rng);
    }
    let last = sgd_step(&m, &x, &y, Loss::MeanSquaredError, 0.05, &mut rng);
    assert!(last < first, "{first} -> {last}");
    assert_ne!(m.non_trainable_params()[0].value().to_vec::<f32>().unwrap(), mm);
}

#[test]
fn state_dict_round_trip_and_same_seed_same_weights() {
    let (x, _) = data();
    let a = mlp(1);
    let b = mlp(2);
    let c = mlp(1);
    let run = |m: &Sequential| m.predict(std::slice::from_ref(&x)).unwrap().remove(0).to_vec::<f32>().unwrap();
    assert_eq!(run(&a), run(&c));
    assert_ne!(run(&a), run(&b));
    b.load_state_dict(&a.state_dict()).unwrap();
    assert_eq!(run(&a), run(&b));
    // Wrong shapes and unknown names are errors.
    let mut bad = a.state_dict();
    bad.insert("dense/kernel".into(), Tensor::zeros((3, 3), DType::F32, &Device::Cpu).unwrap());
    assert!(b.load_state_dict(&bad).is_err());
    let mut extra = a.state_dict();
    extra.insert("nope/kernel".into(), Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap());
    assert!(b.load_state_dict(&extra).is_err());
}

#[test]
fn inference_records_nothing() {
    let model = mlp(1);
    let (x, _) = data();
    let out = model.forward(&[Var::constant(x)], &mut Ctx::inference()).unwrap();
    assert!(!out[0].is_tracked());
}

#[test]
fn weights_file_round_trip() {
    let (x, _) = data();
    let a = mlp(1);
    let b = mlp(2);
    let dir = std::env::temp_dir().join(format!("keel_nn_weights_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mlp.safetensors");
    a.save_weights(&path).unwrap();
    b.load_weights(&path).unwrap();
    let run = |m: &Sequential| m.predict(std::slice::from_ref(&x)).unwrap().remove(0).to_vec::<f32>().unwrap();
    assert_eq!(run(&a), run(&b));
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0);
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(header["dense/kernel"]["shape"], serde_json::json!([4, 16]));
    assert!(keel_nn::weights::from_safetensors_bytes(&bytes[..20]).is_err());
    assert!(b.load_weights(&dir.join("missing.safetensors")).is_err());
    std::fs::remove_dir_all(&dir).ok();
}
