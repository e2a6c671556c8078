//! Keras's `weighted_metrics`: metrics updated with the batches' sample weights
//! (`class_weight` x `sample_weight`), beside the unweighted `metrics`.

mod common;

use common::{blobs, mlp};
use keel_nn::Loss;
use keel_optim::SGD;
use keel_tensor::Tensor;
use keel_train::{Fit, MetricSpec, NO_METRICS};
use std::collections::BTreeMap;

/// Accuracy of `p` (probabilities of class 1) against `y` (0/1), each sample weighted by `w`.
fn weighted_accuracy(p: &[f32], y: &[f32], w: &[f64]) -> f64 {
    let hits: f64 = p.iter().zip(y).zip(w).map(|((p, y), w)| if (*p > 0.5) == (*y > 0.5) { *w } else { 0.0 }).sum();
    hits / w.iter().sum::<f64>()
}

#[test]
fn weighted_metrics_use_class_and_sample_weights_in_training_and_validation() {
    let (x, y) = blobs(1, 40);
    let sw: Vec<f32> = (0..40).map(|i| 0.5 + (i % 4) as f32).collect();
    let sample_weight = Tensor::from_vec(sw.clone(), 40).unwrap();
    let class_weight = BTreeMap::from([(0, 1.0), (1, 3.0)]);
    let mut m = mlp(2);
    // frozen: the predictions during the epoch are those of `predict`, so the expected
    // values can be computed afterwards
    m.set_all_trainable(false);
    m.compile_weighted(SGD::new(0.1), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy], &[MetricSpec::Accuracy])
        .unwrap();
    let fit = Fit::new()
        .batch_size(8)
        .verbose(0)
        .shuffle(false)
        .steps_per_execution(2) // weights queued and read back two batches at a time
        .validation_split(0.25)
        .class_weight(class_weight)
        .sample_weight(&sample_weight);
    let h = m.fit(&x, &y, fit).unwrap();
    let keys: Vec<&str> = h.keys().collect();
    for k in ["loss", "accuracy", "weighted_accuracy", "val_loss", "val_accuracy", "val_weighted_accuracy"] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    let p = m.predict(&x, 8).unwrap().to_vec::<f32>().unwrap();
    let yv = y.to_vec::<f32>().unwrap();
    let w: Vec<f64> = sw.iter().zip(&yv).map(|(s, y)| *s as f64 * if *y > 0.5 { 3.0 } else { 1.0 }).collect();
    let ones = vec![1.0; 40];
    let close = |a: f64, b: f64, what: &str| assert!((a - b).abs() < 1e-9, "{what}: {a} vs {b}");
    // the first 30 samples train, the last 10 validate (with their share of the weights)
    close(h.last("accuracy").unwrap(), weighted_accuracy(&p[..30], &yv[..30], &ones[..30]), "accuracy");
    close(h.last("weighted_accuracy").unwrap(), weighted_accuracy(&p[..30], &yv[..30], &w[..30]), "weighted");
    close(h.last("val_accuracy").unwrap(), weighted_accuracy(&p[30..], &yv[30..], &ones[30..]), "val_accuracy");
    // as in Keras, class_weight weights the training data only; validation_split's share
    // of sample_weight weights the validation pass
    let sw64: Vec<f64> = sw.iter().map(|&s| s as f64).collect();
    close(
        h.last("val_weighted_accuracy").unwrap(),
        weighted_accuracy(&p[30..], &yv[30..], &sw64[30..]),
        "val weighted",
    );
    assert_ne!(h.last("accuracy"), h.last("weighted_accuracy"), "the weights must matter for this data");
}

#[test]
fn a_weighted_metric_alone_keeps_its_name_and_unweighted_data_gives_the_plain_value() {
    let (x, y) = blobs(3, 32);
    let mut m = mlp(4);
    m.compile_weighted(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS, &["accuracy", "mse"]).unwrap();
    let h = m.fit(&x, &y, Fit::new().batch_size(8).verbose(0).steps_per_execution(3)).unwrap();
    assert_eq!(h.keys().collect::<Vec<_>>(), vec!["accuracy", "loss", "mse"]);
    // evaluate_all has no weights: the weighted metrics are the plain ones
    let logs = m.evaluate_all(&x, &y, 8).unwrap();
    let p = m.predict(&x, 8).unwrap().to_vec::<f32>().unwrap();
    let acc = weighted_accuracy(&p, &y.to_vec::<f32>().unwrap(), &[1.0; 32]);
    assert_eq!(logs[1].0, "accuracy");
    assert!((logs[1].1 - acc).abs() < 1e-9, "{} vs {acc}", logs[1].1);
}

#[test]
fn evaluate_weighted_weights_the_loss_and_the_weighted_metrics_only() {
    let (x, y) = blobs(5, 40);
    let sw: Vec<f32> = (0..40).map(|i| (i % 5) as f32 * 0.5).collect();
    let sample_weight = Tensor::from_vec(sw.clone(), 40).unwrap();
    let mut m = mlp(6);
    m.compile_weighted(SGD::new(0.1), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy], &[MetricSpec::Accuracy])
        .unwrap();
    m.fit(&x, &y, Fit::new().epochs(2).batch_size(8).verbose(0)).unwrap();
    let logs = m.evaluate_weighted(&x, &y, &sample_weight, 16).unwrap();
    let names: Vec<&str> = logs.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(names, ["loss", "accuracy", "weighted_accuracy"]);
    let p = m.predict(&x, 8).unwrap().to_vec::<f32>().unwrap();
    let yv = y.to_vec::<f32>().unwrap();
    let w: Vec<f64> = sw.iter().map(|&s| s as f64).collect();
    // Keras's binary cross-entropy with the probabilities clipped to [1e-7, 1 - 1e-7];
    // the batch-size-weighted mean of each batch's sum(w * loss) / batch
    let bce = |p: f32, y: f32| {
        let p = (p as f64).clamp(1e-7, 1.0 - 1e-7);
        -(y as f64 * p.ln() + (1.0 - y as f64) * (1.0 - p).ln())
    };
    let loss: f64 = (0..40).map(|i| w[i] * bce(p[i], yv[i])).sum::<f64>() / 40.0;
    assert!((logs[0].1 - loss).abs() < 1e-5, "loss {} vs {loss}", logs[0].1);
    let close = |a: f64, b: f64, what: &str| assert!((a - b).abs() < 1e-9, "{what}: {a} vs {b}");
    close(logs[1].1, weighted_accuracy(&p, &yv, &[1.0; 40]), "accuracy stays unweighted");
    close(logs[2].1, weighted_accuracy(&p, &yv, &w), "weighted_accuracy");
    let plain = m.evaluate_all(&x, &y, 16).unwrap();
    assert!((plain[0].1 - logs[0].1).abs() > 1e-4, "the weights must change the loss");
    // one weight per sample
    let e = m.evaluate_weighted(&x, &y, &Tensor::from_vec(vec![1.0f32; 39], 39).unwrap(), 16).unwrap_err();
    assert!(e.to_string().contains("sample_weight must have shape [40]"), "{e}");
}

/// Keras's `validation_data=(x_val, y_val, val_sample_weights)`: the validation logs are
/// `evaluate_weighted`'s on the same data, in `fit` and `fit_source`; a weight of the wrong
/// length is refused before training.
#[test]
fn weighted_validation_data_logs_what_evaluate_weighted_gives() {
    let (x, y) = blobs(3, 48);
    let (vx, vy) = blobs(4, 20);
    let vw = Tensor::rand_uniform(5, 0.1, 3.0, [20], keel_tensor::DType::F32, &keel_tensor::Device::Cpu).unwrap();
    let mut m = mlp(2);
    m.compile_weighted(SGD::new(0.1), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy], &[MetricSpec::Accuracy])
        .unwrap();
    let h =
        m.fit(&x, &y, Fit::new().epochs(2).batch_size(16).verbose(0).validation_data_weighted(&vx, &vy, &vw)).unwrap();
    let want = m.evaluate_weighted(&vx, &vy, &vw, 16).unwrap();
    for (name, v) in &want {
        assert_eq!(h.last(&format!("val_{name}")), Some(*v), "val_{name}");
    }
    let unweighted = m.evaluate_all(&vx, &vy, 16).unwrap();
    assert_ne!(want[0].1, unweighted[0].1, "the weights change val_loss");
    let mut loader = keel_data::DataLoader::from_tensors(&x, &y, 16).unwrap();
    let h = m.fit_source(&mut loader, Fit::new().epochs(1).verbose(0).validation_data_weighted(&vx, &vy, &vw)).unwrap();
    assert_eq!(h.last("val_loss"), Some(m.evaluate_weighted(&vx, &vy, &vw, 32).unwrap()[0].1));
    let short = Tensor::ones([7], keel_tensor::DType::F32, &keel_tensor::Device::Cpu).unwrap();
    let e = m.fit(&x, &y, Fit::new().verbose(0).validation_data_weighted(&vx, &vy, &short)).unwrap_err().to_string();
    assert!(e.contains("[20]") && e.contains("[7]"), "{e}");
}
