//! `LossScaleOptimizer` and the `"mixed_float16"` policy in training, against Keras 3.15.1
//! (fixtures/loss_scale.json, written by fixtures/make_loss_scale_fixtures.py): per
//! `train_on_batch` step the logged loss, the dynamic scale and the inner optimizer's
//! iterations, then the weights. Also: `compile` adds the scaler under mixed_float16 (and
//! only there), a mixed_float16 model trains like a float32 one, scaling is invisible in the
//! float32 bits, and the scaler's state survives a `BackupAndRestore` round trip.

use keel_nn::mixed_precision::DTypePolicy;
use keel_nn::{Activation, Dense, Loss, Network};
use keel_optim::{Adam, LossScaleOptimizer, Optimizer, Sgd};
use keel_tensor::{DType, Tensor};
use keel_train::{Fit, KerasModel, MetricSpec, Sequential, NO_METRICS};
use serde_json::Value;

mod common;
use common::{blobs, mlp, weight_bits};

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/loss_scale.json")).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|d| d.as_f64().unwrap() as f32).collect()
}

/// The fixture's model (Dense(8, relu) -> Dense(3) on 5 features) with its start weights.
fn keras_model(fx: &Value, policy: DTypePolicy) -> keel_nn::Sequential {
    let mut net = keel_nn::Sequential::new().dtype_policy(policy);
    net.add(Dense::new(8).activation(Activation::Relu).input_shape([5]));
    net.add(Dense::new(3));
    net.build(&[vec![5]]).unwrap();
    let params: Vec<_> = net.layers().iter().flat_map(|l| l.weights()).map(|w| w.param).collect();
    for (p, w) in params.iter().zip(fx["init"].as_array().unwrap()) {
        let dims = p.value().dims().to_vec();
        p.assign(&Tensor::from_vec(floats(w), dims).unwrap()).unwrap();
    }
    net
}

/// Run the fixture's case `name` step by step; the largest loss and weight differences.
fn check_case(name: &str, policy: DTypePolicy, optimizer: Box<dyn Optimizer>, batch: usize) -> (f64, f64) {
    let fx = fixture();
    let case = &fx[name];
    let x = Tensor::from_vec(floats(&fx["x"]), [24, 5]).unwrap();
    let y: Vec<i64> = fx["y"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    let y = Tensor::from_vec(y, 24).unwrap();
    let mut model = KerasModel::from_network(keras_model(&fx, policy));
    let loss = Loss::SparseCategoricalCrossentropy.from_logits(true);
    model.compile(BoxedOptimizer(optimizer), loss, NO_METRICS).unwrap();
    let mut worst_loss = 0.0f64;
    for (s, want) in case["steps"].as_array().unwrap().iter().enumerate() {
        let i = (s * batch) % 24;
        let logs = model.train_on_batch(&x.narrow(0, i, batch).unwrap(), &y.narrow(0, i, batch).unwrap()).unwrap();
        let opt = model.optimizer_mut().unwrap();
        assert_eq!(opt.name(), "LossScaleOptimizer", "{name}");
        assert_eq!(opt.loss_scale(), want["scale"].as_f64(), "{name}: the scale after step {s}");
        assert_eq!(opt.iterations(), want["iterations"].as_u64().unwrap(), "{name}: iterations after step {s}");
        let rel = (logs[0].1 - want["loss"].as_f64().unwrap()).abs() / want["loss"].as_f64().unwrap();
        worst_loss = worst_loss.max(rel);
    }
    let mut worst_weight = 0.0f64;
    let params: Vec<_> = model.network().layers().iter().flat_map(|l| l.weights()).map(|w| w.param).collect();
    for (p, w) in params.iter().zip(case["weights"].as_array().unwrap()) {
        for (a, b) in p.value().to_vec::<f32>().unwrap().iter().zip(floats(w)) {
            worst_weight = worst_weight.max(f64::from((a - b).abs()));
        }
    }
    println!("{name}: max relative loss difference {worst_loss:.2e}, max weight difference {worst_weight:.2e}");
    (worst_loss, worst_weight)
}

/// A boxed optimizer passed to `compile` (which takes `impl Optimizer`).
struct BoxedOptimizer(Box<dyn Optimizer>);

impl Optimizer for BoxedOptimizer {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn step(&mut self, params: &[keel_autograd::Param], grads: &keel_autograd::Gradients) -> keel_optim::Result<()> {
        self.0.step(params, grads)
    }
    fn learning_rate(&self) -> f64 {
        self.0.learning_rate()
    }
    fn set_learning_rate(&mut self, lr: f64) {
        self.0.set_learning_rate(lr)
    }
    fn iterations(&self) -> u64 {
        self.0.iterations()
    }
    fn loss_scale(&self) -> Option<f64> {
        self.0.loss_scale()
    }
    fn state(&self) -> keel_optim::Result<keel_optim::OptimizerState> {
        self.0.state()
    }
    fn load_state(&mut self, state: keel_optim::OptimizerState) -> keel_optim::Result<()> {
        self.0.load_state(state)
    }
}

#[test]
fn float32_with_a_scaler_matches_keras_and_grows_the_scale() {
    let opt = LossScaleOptimizer::new(Sgd::new(0.1)).initial_scale(1024.0).dynamic_growth_steps(3);
    let (l, w) = check_case("float32_sgd_growth", DTypePolicy::Float32, Box::new(opt), 8);
    assert!(l < 1e-6 && w < 1e-6, "loss {l:.2e}, weights {w:.2e}");
}

/// Under mixed_float16 a scale of 2^24 overflows the F16 gradients: each such step is
/// skipped (no update, the inner Adam does not count it) and halves the scale, until the
/// gradients fit; then every second finite step doubles it again, overflows, halves.
#[test]
fn mixed_float16_skips_overflowing_steps_as_keras_does() {
    let opt = LossScaleOptimizer::new(Adam::new(0.01)).initial_scale(16777216.0).dynamic_growth_steps(2);
    let (l, w) = check_case("mixed_float16_adam_overflow", DTypePolicy::MixedFloat16, Box::new(opt), 6);
    // F16 activations, summed in other orders than TensorFlow's: matched to about 5e-7
    assert!(l < 2e-5 && w < 2e-5, "loss {l:.2e}, weights {w:.2e}");
}

/// `compile` wraps a plain optimizer under mixed_float16 (Keras's `auto_scale_loss`).
#[test]
fn compile_adds_the_scaler_under_mixed_float16() {
    let (l, w) = check_case("mixed_float16_auto", DTypePolicy::MixedFloat16, Box::new(Sgd::new(0.05)), 8);
    assert!(l < 2e-5 && w < 2e-5, "loss {l:.2e}, weights {w:.2e}");
    let mut m = mlp(3);
    m.compile(Adam::new(0.01), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    assert_eq!(m.optimizer_mut().unwrap().name(), "Adam", "float32: no scaler");
    m.set_dtype_policy(DTypePolicy::MixedBFloat16);
    let (x, y) = blobs(1, 16);
    m.train_on_batch(&x, &y).unwrap();
    assert_eq!(m.optimizer_mut().unwrap().name(), "Adam", "mixed_bfloat16: no scaler");
    // a policy set after compile: fit adds it
    m.set_dtype_policy(DTypePolicy::MixedFloat16);
    m.fit(&x, &y, Fit::new().epochs(1).verbose(0)).unwrap();
    let opt = m.optimizer_mut().unwrap();
    assert_eq!((opt.name(), opt.loss_scale()), ("LossScaleOptimizer", Some(32768.0)));
    // and an explicit one is kept as given
    let mut m = mlp(3);
    m.set_dtype_policy(DTypePolicy::MixedFloat16);
    m.compile(LossScaleOptimizer::new(Adam::new(0.01)).initial_scale(64.0), Loss::BinaryCrossentropy, NO_METRICS)
        .unwrap();
    assert_eq!(m.optimizer_mut().unwrap().loss_scale(), Some(64.0));
}

/// A scaler with a power-of-two scale changes no bit of float32 training.
#[test]
fn a_scaler_changes_no_float32_bit() {
    let (x, y) = blobs(2, 64);
    let run = |scaled: bool| {
        let mut m = mlp(4);
        if scaled {
            m.compile(
                LossScaleOptimizer::new(Adam::new(0.01)).initial_scale(256.0),
                Loss::BinaryCrossentropy,
                NO_METRICS,
            )
        } else {
            m.compile(Adam::new(0.01), Loss::BinaryCrossentropy, NO_METRICS)
        }
        .unwrap();
        let h = m.fit(&x, &y, Fit::new().epochs(3).batch_size(16).seed(5).verbose(0)).unwrap();
        (weight_bits(m.network()), h.get("loss").unwrap().to_vec())
    };
    assert_eq!(run(true), run(false));
}

#[test]
fn mixed_float16_trains_like_float32() {
    let (x, y) = blobs(7, 256);
    let run = |policy: DTypePolicy| {
        let mut m = mlp(5);
        m.set_dtype_policy(policy);
        m.compile(Adam::new(0.02), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        assert_eq!(m.input_dtype(), if policy == DTypePolicy::Float32 { DType::F32 } else { DType::F16 });
        let h = m.fit(&x, &y, Fit::new().epochs(20).batch_size(32).seed(3).verbose(0)).unwrap();
        assert_eq!(m.predict(&x, 64).unwrap().dtype(), DType::F32, "{policy}: predictions are F32");
        for w in m.named_weights() {
            assert_eq!(w.param.dtype(), DType::F32, "{policy}: {} stays F32", w.name);
        }
        (*h.get("loss").unwrap().last().unwrap(), h.last("accuracy").unwrap())
    };
    let (l32, a32) = run(DTypePolicy::Float32);
    let (l16, a16) = run(DTypePolicy::MixedFloat16);
    assert!(a32 > 0.9 && a16 > 0.9, "accuracy {a32} (f32) / {a16} (mixed_float16)");
    assert!((l16 - l32).abs() / l32 < 0.05, "final loss {l16} (mixed_float16) vs {l32} (f32)");
}

/// The scale and its counter are part of a training checkpoint: an interrupted
/// mixed_float16 run resumes with them, as the uninterrupted run has them.
#[test]
fn the_scaler_state_survives_backup_and_restore() {
    use keel_train::callbacks::BackupAndRestore;
    let (x, y) = blobs(3, 48);
    let dir = common::test_dir("loss_scale_backup");
    let make = || {
        let mut m = Sequential::with_seed(8);
        m.set_dtype_policy(DTypePolicy::MixedFloat16);
        m.add(Dense::new(6).activation(Activation::Tanh).input_shape([2]));
        m.add(Dense::new(1).activation(Activation::Sigmoid));
        let opt = LossScaleOptimizer::new(Adam::new(0.01)).initial_scale(4.0).dynamic_growth_steps(4);
        m.compile(opt, Loss::BinaryCrossentropy, NO_METRICS).unwrap();
        m
    };
    let fit = || Fit::new().epochs(4).batch_size(12).seed(2).verbose(0);
    let mut whole = make();
    whole.fit(&x, &y, fit()).unwrap();
    // the first two epochs, backed up, then a fresh model resumes from the backup
    let mut first = make();
    first
        .fit(&x, &y, fit().epochs(2).callback(BackupAndRestore::new(dir.join("bk")).delete_checkpoint(false)))
        .unwrap();
    let mut resumed = make();
    resumed.fit(&x, &y, fit().callback(BackupAndRestore::new(dir.join("bk")))).unwrap();
    let (a, b) = (whole.optimizer_mut().unwrap().loss_scale(), resumed.optimizer_mut().unwrap().loss_scale());
    assert_eq!(a, Some(64.0), "16 finite steps: the scale doubled every 4, from 4");
    assert_eq!(a, b);
    assert_eq!(weight_bits(whole.network()), weight_bits(resumed.network()));
}
