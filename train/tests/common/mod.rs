//! Shared helpers of the keel-train integration tests.
#![allow(dead_code)]

use keel_nn::{Activation, Dense};
use keel_tensor::{DType, Device, Tensor};
use keel_train::Sequential;
use std::path::PathBuf;

/// Label 1 when x0 + x1 > 0.
pub fn blobs(seed: u64, n: usize) -> (Tensor, Tensor) {
    let x = Tensor::rand_uniform(seed, -1.0, 1.0, (n, 2), DType::F32, &Device::Cpu).unwrap();
    let y = x.sum(&[1], true).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::F32).unwrap();
    (x, y)
}

/// The same inputs with flipped labels: the better a model fits `blobs`, the worse it does here.
pub fn flipped(y: &Tensor) -> Tensor {
    Tensor::scalar(1.0f32).sub(y).unwrap()
}

/// A small MLP for `blobs`.
pub fn mlp(seed: u64) -> Sequential {
    let mut m = Sequential::with_seed(seed);
    m.add(Dense::new(16).activation(Activation::Relu).input_shape([2]));
    m.add(Dense::new(1).activation(Activation::Sigmoid));
    m
}

/// A fresh, empty directory for one test, removed when dropped.
pub fn test_dir(name: &str) -> TempDir {
    TempDir::new(std::env::temp_dir().join(format!("keel-train-{name}-{}", std::process::id())))
}

/// A directory that is removed (with its contents) when the value is dropped, so the
/// tests leave nothing behind; derefs to its path.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Create `path` afresh (removing what was there).
    pub fn new(path: PathBuf) -> TempDir {
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every weight's bits, by name.
pub fn weight_bits(m: &impl keel_nn::Network) -> Vec<(String, Vec<u32>)> {
    m.state_dict()
        .into_iter()
        .map(|(k, t)| (k, t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()))
        .collect()
}

/// The bits of a float tensor.
pub fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
}

/// GPU 0, or `None` (with a printed reason) when the test must skip; under
/// `KEEL_REQUIRE_CUDA=1` a missing GPU fails the test instead.
pub fn gpu(test: &str) -> Option<Device> {
    match Device::cuda(0) {
        Ok(dev) => Some(dev),
        Err(why) => {
            if std::env::var("KEEL_REQUIRE_CUDA").is_ok_and(|v| v == "1") {
                panic!("{test}: KEEL_REQUIRE_CUDA=1 but {why}");
            }
            eprintln!("skipping {test}: {why}");
            None
        }
    }
}

/// Token ids in `0..vocab` of `shape` (a model with `mask_zero` takes the zeros as padding)
/// and a binary target per sample `[n, 1]`: whether its mean id is above the vocabulary's
/// middle.
pub fn token_task(seed: u64, vocab: usize, shape: &[usize]) -> (Tensor, Tensor) {
    let tokens = Tensor::rand_uniform(seed, 0.0, vocab as f64, shape.to_vec(), DType::F32, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::I64)
        .unwrap();
    let axes: Vec<isize> = (1..shape.len() as isize).collect();
    let mean = tokens.to_dtype(DType::F32).unwrap().mean(&axes, false).unwrap().reshape([shape[0], 1]).unwrap();
    let y = mean.gt(&Tensor::scalar((vocab as f32 - 1.0) / 2.0)).unwrap().to_dtype(DType::F32).unwrap();
    (tokens, y)
}

/// A token classifier for [`token_task`] (`[n, 7]` ids below 10) with an activity penalty
/// on every kind of layer that takes one (Embedding, Conv1D, GRU, Dense) and an
/// `ActivityRegularization` layer, compiled with Adam and `metrics`; under mixed_bfloat16
/// when `mixed`.
pub fn penalized_token_model(mixed: bool, metrics: &[keel_train::MetricSpec]) -> Sequential {
    use keel_nn::{ActivityRegularization, Conv1D, Embedding, Loss, Regularizer, GRU};
    let mut m = Sequential::with_seed(9);
    if mixed {
        m.set_dtype_policy(keel_nn::mixed_precision::DTypePolicy::MixedBFloat16);
    }
    m.add(Embedding::new(10, 8).activity_regularizer(Regularizer::l2(0.01)).input_shape([7]));
    m.add(Conv1D::new(8, 3).activation(Activation::Relu).activity_regularizer(Regularizer::l1(0.01)));
    m.add(GRU::new(8).activity_regularizer(Regularizer::l1_l2(0.01, 0.02)));
    m.add(ActivityRegularization::new(0.01, 0.01));
    m.add(Dense::new(1).activation(Activation::Sigmoid).activity_regularizer(Regularizer::l2(0.05)));
    m.compile(keel_optim::Adam::new(0.01), Loss::BinaryCrossentropy, metrics).unwrap();
    m
}
