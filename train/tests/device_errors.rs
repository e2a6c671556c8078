//! Bad class indices when training on a GPU are errors, not silent mistakes.
//!
//! Targets on the host are checked before they travel; targets already on the GPU are
//! checked there (the loss's device-side index check) and reported by the next
//! read-back. That report belongs to the device, so a read-back by *any* thread would
//! take it: this binary has one test, so no other test shares its device.
//!
//! Without a usable GPU the test prints why it skips and passes; with
//! `KEEL_REQUIRE_CUDA=1` it fails instead.

mod common;

use keel_nn::{Activation, Dense, Loss, Network};
use keel_optim::Adam;
use keel_tensor::{DType, Device, Tensor};
use keel_train::{Error, Fit, MetricSpec, Sequential};

fn classifier() -> Sequential {
    let mut m = Sequential::with_seed(3);
    m.add(Dense::new(8).activation(Activation::Relu).input_shape([4]));
    m.add(Dense::new(3).activation(Activation::Softmax));
    m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    m
}

#[test]
fn bad_class_indices_are_errors_on_the_gpu() {
    let Some(dev) = common::gpu("bad_class_indices_are_errors_on_the_gpu") else { return };
    let x = Tensor::rand_uniform(1, -1.0, 1.0, (32, 4), DType::F32, &Device::Cpu).unwrap();
    let labels = |bad: f32| {
        let mut v: Vec<f32> = (0..32).map(|i| (i % 3) as f32).collect();
        v[9] = bad;
        Tensor::from_vec(v, 32).unwrap()
    };
    let mut m = classifier();
    m.to_device(&dev).unwrap();
    let fit = |n: usize| Fit::new().epochs(1).batch_size(8).verbose(0).steps_per_execution(n);

    // host targets: checked on the host before anything travels, as on the CPU
    for bad in [7.0, 1.5, f32::NAN] {
        let err = m.fit(&x, &labels(bad), fit(1)).unwrap_err();
        assert!(matches!(err, Error::Nn(keel_nn::Error::LossShape { .. })), "host label {bad}: {err}");
    }
    // targets on the GPU: checked there (a fraction or NaN becomes index -1), reported by
    // the read-back of the losses, after every step or at the end of the execution
    for (bad, n) in [(7.0, 1), (1.5, 1), (f32::NAN, 4), (-2.0, 4)] {
        let y = labels(bad).to_device(&dev).unwrap();
        let err = m.fit(&x, &y, fit(n)).unwrap_err();
        assert!(
            matches!(err, Error::Tensor(keel_tensor::Error::IndexOutOfRange { op: "softmax_cross_entropy", .. })),
            "device label {bad}, steps_per_execution {n}: {err}"
        );
    }
    // evaluate reads back too
    let err = m.evaluate(&x, &labels(5.0).to_device(&dev).unwrap()).unwrap_err();
    assert!(matches!(err, Error::Tensor(keel_tensor::Error::IndexOutOfRange { .. })), "{err}");
    // the device stays usable: good labels train, and the losses are finite
    let h = m.fit(&x, &labels(2.0).to_device(&dev).unwrap(), fit(2)).unwrap();
    assert!(h.last("loss").is_some_and(f64::is_finite));
    assert_eq!(m.weights_device(), Some(dev));
}
