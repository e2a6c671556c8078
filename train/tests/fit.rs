//! compile / fit / evaluate / predict end to end on small problems.

use keel_data::DataLoader;
use keel_nn::{Activation, Dense, Loss, Network};
use keel_optim::{Adam, SGD};
use keel_tensor::{DType, Device, Tensor};
use keel_train::MetricSpec;
use keel_train::{Error, Fit, Sequential, NO_METRICS};

/// Two Gaussian-ish blobs: label 1 when x0 + x1 > 0.
fn blobs(seed: u64, n: usize) -> (Tensor, Tensor) {
    let x = Tensor::rand_uniform(seed, -1.0, 1.0, (n, 2), DType::F32, &Device::Cpu).unwrap();
    let y = x.sum(&[1], true).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::F32).unwrap();
    (x, y)
}

fn mlp(seed: u64) -> Sequential {
    let mut m = Sequential::with_seed(seed);
    m.add(Dense::new(16).activation(Activation::Relu).input_shape([2]));
    m.add(Dense::new(1).activation(Activation::Sigmoid));
    m
}

#[test]
fn a_tiny_model_overfits_a_small_batch() {
    let (x, y) = blobs(1, 16);
    let mut m = mlp(0);
    m.compile(Adam::new(0.05), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    let h = m.fit(&x, &y, Fit::new().epochs(150).batch_size(16).verbose(0)).unwrap();
    let loss = h.get("loss").unwrap();
    assert_eq!(loss.len(), 150);
    assert!(*loss.last().unwrap() < 0.05, "final loss {}", loss.last().unwrap());
    assert_eq!(h.last("accuracy"), Some(1.0));
    let (l, acc) = m.evaluate(&x, &y).unwrap();
    assert!(l < 0.05 && acc == 1.0);
}

#[test]
fn validation_split_and_validation_data_add_val_logs() {
    let (x, y) = blobs(2, 100);
    let mut m = mlp(1);
    m.compile(Adam::default(), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    let h = m.fit(&x, &y, Fit::new().epochs(2).validation_split(0.2).verbose(0)).unwrap();
    let keys: Vec<&str> = h.keys().collect();
    assert_eq!(keys, vec!["accuracy", "loss", "val_accuracy", "val_loss"]);
    // the held-out part is the last 20 samples: evaluating on them gives the same val_loss
    let (vl, va) = m.evaluate(&x.narrow(0, 80, 20).unwrap(), &y.narrow(0, 80, 20).unwrap()).unwrap();
    assert!((vl - h.last("val_loss").unwrap()).abs() < 1e-12);
    assert!((va - h.last("val_accuracy").unwrap()).abs() < 1e-12);
    let (vx, vy) = blobs(3, 30);
    let h2 = m.fit(&x, &y, Fit::new().epochs(1).validation_data(&vx, &vy).verbose(0)).unwrap();
    assert!(h2.last("val_loss").is_some());
}

#[test]
fn same_seed_same_bits() {
    let (x, y) = blobs(4, 64);
    let run = || {
        let mut m = mlp(7);
        m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        let h = m.fit(&x, &y, Fit::new().epochs(3).batch_size(8).seed(11).verbose(0)).unwrap();
        (h, m.predict(&x, 32).unwrap().to_vec::<f32>().unwrap())
    };
    let (h1, p1) = run();
    let (h2, p2) = run();
    assert_eq!(h1, h2);
    assert_eq!(p1, p2);
}

#[test]
fn sparse_labels_class_weight_and_sample_weight() {
    // 3 classes from two features; integer labels with sparse CE
    let x = Tensor::rand_uniform(5, -1.0, 1.0, (90, 2), DType::F32, &Device::Cpu).unwrap();
    let xv = x.to_vec::<f32>().unwrap();
    let labels: Vec<i64> = xv
        .chunks(2)
        .map(|p| {
            if p[0] > 0.3 {
                2
            } else if p[1] > 0.0 {
                1
            } else {
                0
            }
        })
        .collect();
    let y = Tensor::from_vec(labels, 90).unwrap();
    let mut m = Sequential::with_seed(3);
    m.add(Dense::new(16).activation(Activation::Relu).input_shape([2]));
    m.add(Dense::new(3).activation(Activation::Softmax));
    m.compile(Adam::new(0.02), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    let cw = [(0i64, 1.0), (1, 2.0), (2, 0.5)].into_iter().collect();
    let h = m.fit(&x, &y, Fit::new().epochs(60).class_weight(cw).verbose(0)).unwrap();
    assert!(h.last("accuracy").unwrap() > 0.8, "{:?}", h.last("accuracy"));
    let sw = Tensor::ones(90, DType::F32, &Device::Cpu).unwrap();
    m.fit(&x, &y, Fit::new().epochs(1).sample_weight(&sw).verbose(0)).unwrap();
    let bad = Tensor::ones(10, DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(m.fit(&x, &y, Fit::new().sample_weight(&bad).verbose(0)), Err(Error::InvalidArgument { .. })));
    let p = m.predict(&x, 7).unwrap();
    assert_eq!(p.dims(), &[90, 3]);
}

#[test]
fn fit_accepts_a_batch_source() {
    let (x, y) = blobs(6, 64);
    let mut loader = DataLoader::from_tensors(&x, &y, 16).unwrap().shuffle(true).seed(2);
    let mut m = mlp(2);
    m.compile(Adam::new(0.05), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    let h = m.fit_source(&mut loader, Fit::new().epochs(30).verbose(0)).unwrap();
    assert!(h.last("accuracy").unwrap() > 0.9);
}

/// Keras's `fit(train_ds, validation_data=val_ds)` and `evaluate(test_ds)`: a batch source
/// validates and evaluates as the same tensors do (same batches, same values).
#[test]
fn a_batch_source_validates_and_evaluates_like_its_tensors() {
    let (x, y) = blobs(6, 64);
    let (vx, vy) = blobs(16, 40);
    let mut train = DataLoader::from_tensors(&x, &y, 16).unwrap().shuffle(true).seed(2);
    let mut val = DataLoader::from_tensors(&vx, &vy, 16).unwrap();
    let build = || {
        let mut m = mlp(2);
        m.compile(Adam::new(0.05), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy, MetricSpec::Auc]).unwrap();
        m
    };
    let mut a = build();
    let ha = a.fit_source(&mut train, Fit::new().epochs(3).verbose(0).validation_source(&mut val)).unwrap();
    let mut b = build();
    let hb =
        b.fit_source(&mut train, Fit::new().epochs(3).batch_size(16).verbose(0).validation_data(&vx, &vy)).unwrap();
    for k in ["val_loss", "val_accuracy", "val_auc"] {
        assert_eq!(ha.get(k).unwrap(), hb.get(k).unwrap(), "{k}");
    }
    // fit on tensors takes a source for validation too (and then makes no split)
    let mut c = build();
    let hc = c.fit(&x, &y, Fit::new().epochs(1).validation_split(0.5).verbose(0).validation_source(&mut val)).unwrap();
    assert_eq!(hc.last("val_loss"), Some(c.evaluate_all(&vx, &vy, 16).unwrap()[0].1));
    assert_eq!(a.evaluate_source(&mut val).unwrap(), a.evaluate_all(&vx, &vy, 16).unwrap());
    // steps: the first batches only (Keras's evaluate(ds, steps=2)); predict_source reads the x
    let first = |t: &Tensor| t.narrow(0, 0, 32).unwrap();
    assert_eq!(a.evaluate_source_steps(&mut val, 2).unwrap(), a.evaluate_all(&first(&vx), &first(&vy), 16).unwrap());
    let bits = |t: &Tensor| t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let p = a.predict_source(&mut val, None).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(bits(&p[0]), bits(&a.predict(&vx, 16).unwrap()));
    assert_eq!(bits(&a.predict_source(&mut val, Some(2)).unwrap()[0]), bits(&a.predict(&first(&vx), 16).unwrap()));
    assert!(a.predict_source(&mut val, Some(0)).unwrap_err().to_string().contains("steps must be at least 1"));
    assert!(a.evaluate_source_steps(&mut val, 0).is_err());
    let e = keel_train::Sequential::new().predict_source(&mut val, None).unwrap_err().to_string();
    assert!(e.contains("not built"), "{e}");
    // both kinds of validation at once is an error, not a silent choice
    let e = a
        .fit_source(&mut train, Fit::new().verbose(0).validation_source(&mut val).validation_data(&vx, &vy))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not both"), "{e}");
    let e = mlp(3).evaluate_source(&mut val).unwrap_err().to_string();
    assert!(e.contains("not compiled"), "{e}");
}

#[test]
fn errors_are_values() {
    let (x, y) = blobs(7, 10);
    let mut m = mlp(0);
    assert!(matches!(m.fit(&x, &y, Fit::new().verbose(0)), Err(Error::NotCompiled(_))));
    assert!(matches!(m.evaluate(&x, &y), Err(Error::NotCompiled(_))));
    m.compile(Adam::default(), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let y_short = y.narrow(0, 0, 5).unwrap();
    let msg = m.fit(&x, &y_short, Fit::new().verbose(0)).unwrap_err().to_string();
    assert!(msg.contains("10 samples") && msg.contains("5"), "{msg}");
    assert!(m.fit(&x, &y, Fit::new().batch_size(0).verbose(0)).is_err());
    assert!(m.fit(&x, &y, Fit::new().validation_split(1.5).verbose(0)).is_err());
    let wrong = Tensor::zeros((10, 3), DType::F32, &Device::Cpu).unwrap();
    assert!(m.fit(&wrong, &y, Fit::new().verbose(0)).is_err(), "input of the wrong width");
    // evaluate with no metrics gives NaN as the second value
    let (_, acc) = m.evaluate(&x, &y).unwrap();
    assert!(acc.is_nan());
}

#[test]
fn metrics_by_value_or_by_keras_name() {
    let (x, y) = blobs(12, 64);
    let mut m = mlp(3);
    m.compile(Adam::new(0.05), Loss::BinaryCrossentropy, &["accuracy", "precision", "recall", "auc", "mae"]).unwrap();
    let h = m.fit(&x, &y, Fit::new().epochs(3).verbose(0).validation_split(0.25)).unwrap();
    let keys: Vec<&str> = h.keys().collect();
    for k in ["accuracy", "precision", "recall", "auc", "mae", "val_auc", "val_mae", "loss", "val_loss"] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    let logs = m.evaluate_all(&x, &y, 32).unwrap();
    let names: Vec<&str> = logs.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(names, ["loss", "accuracy", "precision", "recall", "auc", "mae"]);
    assert!(logs.iter().all(|l| l.1.is_finite()));
    // by value: logged under the metric's Keras name
    let mut r = mlp(3);
    r.compile(Adam::new(0.05), Loss::MeanSquaredError, &[MetricSpec::Mae, MetricSpec::R2]).unwrap();
    let h = r.fit(&x, &y, Fit::new().epochs(1).verbose(0)).unwrap();
    assert!(h.get("mean_absolute_error").is_some() && h.get("r2_score").is_some());
    // a loss as a metric: logged under the name given, the mean of the loss over the samples
    let mut b = mlp(4);
    b.compile(Adam::new(0.05), Loss::BinaryCrossentropy, &["binary_crossentropy", "mape", "hinge"]).unwrap();
    b.fit(&x, &y, Fit::new().epochs(1).verbose(0)).unwrap();
    let logs = b.evaluate_all(&x, &y, 16).unwrap();
    assert_eq!(logs.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(), ["loss", "binary_crossentropy", "mape", "hinge"]);
    assert!((logs[0].1 - logs[1].1).abs() < 1e-5 * logs[0].1, "loss {} vs metric {}", logs[0].1, logs[1].1);
    // a name is logged as written, as Keras logs metrics=["AUC", "MAE"]
    let mut c = mlp(5);
    c.compile(Adam::new(0.05), Loss::BinaryCrossentropy, &["AUC", "MAE"]).unwrap();
    let logs = c.evaluate_all(&x, &y, 16).unwrap();
    assert_eq!(logs.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(), ["loss", "AUC", "MAE"]);
    // an unknown name fails at compile time
    let e = m.compile(Adam::default(), Loss::BinaryCrossentropy, &["accuracy", "bogus"]).unwrap_err();
    assert!(e.to_string().contains("bogus"), "{e}");
}

/// Keras's threshold counts, IoU and the `*At*` metrics by name and by value in `compile`.
#[test]
fn keras_classification_metrics_by_name_and_by_value() {
    use keel_metrics::{AucCurve, AucSummation, ClassificationMetricKind};
    let (x, y) = blobs(13, 48);
    let mut m = mlp(5);
    m.compile(Adam::new(0.05), Loss::BinaryCrossentropy, &["true_positives", "false_negatives", "binary_io_u"])
        .unwrap();
    let h = m.fit(&x, &y, Fit::new().epochs(2).verbose(0).validation_split(0.25)).unwrap();
    for k in ["true_positives", "false_negatives", "binary_io_u", "val_true_positives"] {
        assert!(h.get(k).is_some(), "{k} missing from {:?}", h.keys().collect::<Vec<_>>());
    }
    let logs = m.evaluate_all(&x, &y, 16).unwrap();
    assert_eq!(
        logs.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(),
        ["loss", "true_positives", "false_negatives", "binary_io_u"]
    );
    // every positive is a true positive or a false negative
    let positives: f64 = y.to_vec_f64().unwrap().iter().sum();
    assert_eq!(logs[1].1 + logs[2].1, positives);
    // by value: logged under the metric's Keras name
    let mut v = mlp(5);
    let specs = [
        MetricSpec::Classification(ClassificationMetricKind::PrecisionAtRecall(0.5)),
        MetricSpec::Classification(ClassificationMetricKind::KerasAuc(AucCurve::Pr, AucSummation::Interpolation)),
    ];
    v.compile(Adam::new(0.05), Loss::BinaryCrossentropy, &specs).unwrap();
    v.fit(&x, &y, Fit::new().epochs(2).verbose(0)).unwrap();
    let logs = v.evaluate_all(&x, &y, 16).unwrap();
    assert_eq!(logs.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(), ["loss", "precision_at_recall", "auc"]);
    assert!(logs.iter().all(|l| l.1.is_finite() && l.1 >= 0.0), "{logs:?}");
}

#[test]
fn mixed_bfloat16_trains_like_float32() {
    use keel_nn::mixed_precision::DTypePolicy;
    let (x, y) = blobs(7, 256);
    let run = |policy: DTypePolicy| {
        let mut m = mlp(5);
        m.set_dtype_policy(policy);
        m.compile(Adam::new(0.02), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        let h = m.fit(&x, &y, Fit::new().epochs(20).batch_size(32).seed(3).verbose(0)).unwrap();
        let p = m.predict(&x, 64).unwrap();
        assert_eq!(p.dtype(), DType::F32, "{policy}: predictions are F32");
        for w in m.named_weights() {
            assert_eq!(w.param.dtype(), DType::F32, "{policy}: {} stays F32", w.name);
        }
        (*h.get("loss").unwrap().last().unwrap(), h.last("accuracy").unwrap())
    };
    let (l32, a32) = run(DTypePolicy::Float32);
    let (lmx, amx) = run(DTypePolicy::MixedBFloat16);
    assert!(a32 > 0.9 && amx > 0.9, "accuracy {a32} (f32) / {amx} (mixed)");
    assert!((lmx - l32).abs() / l32 < 0.15, "final loss {lmx} (mixed) vs {l32} (f32)");
}

/// Under mixed_bfloat16 the model takes its input in BF16 (`input_dtype`): `fit`,
/// `evaluate` and `predict` cast it before the model, which then casts nothing, with the
/// bits of the model casting it (an F32 input, a BF16 one, an F64 one through F32).
#[test]
fn mixed_bfloat16_takes_its_input_in_bf16() {
    use keel_nn::mixed_precision::DTypePolicy;
    let (x, y) = blobs(7, 96);
    let (vx, vy) = blobs(8, 32);
    let model = |policy: DTypePolicy| {
        let mut m = mlp(5);
        m.set_dtype_policy(policy);
        m.compile(Adam::new(0.02), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    assert_eq!(model(DTypePolicy::Float32).input_dtype(), DType::F32);
    assert_eq!(model(DTypePolicy::MixedBFloat16).input_dtype(), DType::BF16);
    let run = |x: &Tensor, vx: &Tensor| {
        let mut m = model(DTypePolicy::MixedBFloat16);
        let fit = Fit::new().epochs(3).batch_size(16).seed(3).verbose(0).validation_data(vx, &vy);
        let h = m.fit(x, &y, fit).unwrap();
        let p = m.predict(x, 40).unwrap();
        // the network's own predict casts inside the model
        let q = m.network().predict(&[x.to_dtype(DType::F32).unwrap()]).unwrap().remove(0);
        assert_eq!(p.to_vec::<f32>().unwrap(), q.to_vec::<f32>().unwrap(), "predict");
        (h, m.evaluate_all(vx, &vy, 10).unwrap(), p.to_vec::<f32>().unwrap())
    };
    let (h, e, p) = run(&x, &vx);
    let bf16 = |t: &Tensor| t.to_dtype(DType::BF16).unwrap();
    let f64 = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
    for (what, (h2, e2, p2)) in [("bf16", run(&bf16(&x), &bf16(&vx))), ("f64", run(&f64(&x), &f64(&vx)))] {
        for key in ["loss", "accuracy", "val_loss", "val_accuracy"] {
            assert_eq!(h2.get(key), h.get(key), "{what}: {key}");
        }
        assert_eq!(e2, e, "{what}: evaluate");
        assert_eq!(p2, p, "{what}: predict");
    }
}

/// Keras's `validation_split`: the training part ends at floor(n * (1 - split)), the
/// split is not made when `validation_data` is given, too little data is an error, and the
/// held-out samples keep their `sample_weight`.
#[test]
fn validation_split_follows_keras() {
    let (x, y) = blobs(21, 10);
    let mut m = mlp(4);
    m.compile(SGD::new(0.0), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    // 10 * (1 - 0.25) = 7.5: 7 train, 3 held out (floor(10 * 0.25) would hold out 2)
    let h = m.fit(&x, &y, Fit::new().epochs(1).batch_size(1).validation_split(0.25).verbose(0)).unwrap();
    let (vl, _) = m.evaluate(&x.narrow(0, 7, 3).unwrap(), &y.narrow(0, 7, 3).unwrap()).unwrap();
    assert!((vl - h.last("val_loss").unwrap()).abs() < 1e-12);
    // validation_data wins: every sample trains (lr 0, so the loss is the mean over all 10)
    let (vx, vy) = blobs(22, 4);
    let h =
        m.fit(&x, &y, Fit::new().epochs(1).batch_size(1).validation_split(0.2).validation_data(&vx, &vy).verbose(0));
    let (all, _) = m.evaluate(&x, &y).unwrap();
    assert!((h.unwrap().last("loss").unwrap() - all).abs() < 1e-6);
    // 5 * 0.9 = 4.5: one sample held out (floor(5 * 0.1) would hold out none)
    let (x5, y5) = (x.narrow(0, 0, 5).unwrap(), y.narrow(0, 0, 5).unwrap());
    let h = m.fit(&x5, &y5, Fit::new().validation_split(0.1).verbose(0)).unwrap();
    assert!(h.last("val_loss").is_some());
    // too few samples to split: nothing left to train on, or nothing held out
    let (x1, y1) = (x.narrow(0, 0, 1).unwrap(), y.narrow(0, 0, 1).unwrap());
    let msg = m.fit(&x1, &y1, Fit::new().validation_split(0.5).verbose(0)).unwrap_err().to_string();
    assert!(msg.contains("1 samples") && msg.contains("validation_split"), "{msg}");
    assert!(m.fit(&x5, &y5, Fit::new().validation_split(1e-20).verbose(0)).is_err());
    // the held-out part's sample weights weight val_loss: zero weights give 0
    let w: Vec<f32> = (0..10).map(|i| if i < 8 { 1.0 } else { 0.0 }).collect();
    let w = Tensor::from_vec(w, 10).unwrap();
    let h = m.fit(&x, &y, Fit::new().epochs(1).validation_split(0.2).sample_weight(&w).verbose(0)).unwrap();
    assert_eq!(h.last("val_loss"), Some(0.0));
    // a batch source has no last samples to hold out
    let mut loader = DataLoader::from_tensors(&x, &y, 4).unwrap();
    assert!(m.fit_source(&mut loader, Fit::new().validation_split(0.2).verbose(0)).is_err());
}

/// Compiled metrics are not weighted (as in Keras; only the loss is), and repeated metric
/// names get Keras's `_1` suffix instead of sharing one History entry.
#[test]
fn metrics_are_unweighted_and_repeated_names_get_suffixes() {
    let (x, y) = blobs(23, 16);
    let mut m = mlp(5);
    m.compile(SGD::new(0.0), Loss::BinaryCrossentropy, &["accuracy", "binary_accuracy", "accuracy"]).unwrap();
    let (_, plain) = m.evaluate(&x, &y).unwrap();
    let cw = [(0i64, 0.0), (1, 3.0)].into_iter().collect();
    let h = m.fit(&x, &y, Fit::new().epochs(2).class_weight(cw).verbose(0)).unwrap();
    let keys: Vec<&str> = h.keys().collect();
    assert_eq!(keys, ["accuracy", "accuracy_1", "binary_accuracy", "loss"]);
    for k in ["accuracy", "accuracy_1", "binary_accuracy"] {
        assert_eq!(h.get(k).unwrap(), &[plain, plain], "{k}");
    }
}

/// A functional model with two inputs (Keras's `model.fit([x_a, x_b], y)`): fit, evaluate,
/// predict and validation data take one tensor per input, in the order of the `Input`s,
/// and train as the same network fed by hand does.
#[test]
fn a_model_with_two_inputs_fits_evaluates_and_predicts() {
    use keel_nn::{concatenate, Input, LayerExt, Model};
    let build = || {
        let a = Input::new([2]);
        let b = Input::new([3]);
        let ha = Dense::new(4).activation(Activation::Relu).call(&a).unwrap();
        let out =
            Dense::new(1).activation(Activation::Sigmoid).call(&concatenate(&[ha, b.clone()], -1).unwrap()).unwrap();
        let mut m = keel_train::KerasModel::from_network(Model::with_seed(&[a, b], &[out], 3).unwrap());
        m.compile(Adam::new(0.05), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    let (xa, y) = blobs(30, 64);
    let xb = Tensor::rand_uniform(31, -1.0, 1.0, (64, 3), DType::F32, &Device::Cpu).unwrap();
    let mut m = build();
    let h =
        m.fit([&xa, &xb], &y, Fit::new().epochs(40).batch_size(16).validation_data([&xa, &xb], &y).verbose(0)).unwrap();
    assert!(h.last("accuracy").unwrap() > 0.9, "{:?}", h.get("accuracy"));
    // validation runs at fit's batch size
    assert_eq!(h.last("val_loss"), Some(m.evaluate_all([&xa, &xb], &y, 16).unwrap()[0].1));
    let p = m.predict([&xa, &xb], 10).unwrap();
    assert_eq!(p.dims(), &[64, 1]);
    // the same as the network's own forward on both inputs
    let direct = m.network().predict(&[xa.clone(), xb.clone()]).unwrap().remove(0);
    assert_eq!(p.to_vec::<f32>().unwrap(), direct.to_vec::<f32>().unwrap());
    // validation_split cuts every input at the same sample
    let mut m2 = build();
    let h2 = m2.fit([&xa, &xb], &y, Fit::new().epochs(1).validation_split(0.25).verbose(0)).unwrap();
    let (vl, _) = m2
        .evaluate([&xa.narrow(0, 48, 16).unwrap(), &xb.narrow(0, 48, 16).unwrap()], &y.narrow(0, 48, 16).unwrap())
        .unwrap();
    assert!((vl - h2.last("val_loss").unwrap()).abs() < 1e-12);
    // wrong counts and lengths are errors that say so
    let e = m.fit(&xa, &y, Fit::new().verbose(0)).unwrap_err().to_string();
    assert!(e.contains("2 input(s) but 1"), "{e}");
    let short = xb.narrow(0, 0, 10).unwrap();
    let e = m.predict([&xa, &short], 8).unwrap_err().to_string();
    assert!(e.contains("x[1] has 10 samples"), "{e}");
    let e = m.fit([&xa, &xb], &y, Fit::new().validation_data(&xa, &y).verbose(0)).unwrap_err().to_string();
    assert!(e.contains("validation_data") && e.contains("2 input(s)"), "{e}");
}

/// Keras's augmentation in front of a CNN: RandomFlip and GaussianNoise change the training
/// batches only; evaluate and predict see the inputs as they are, so predict is deterministic.
#[test]
fn augmentation_layers_in_front_of_a_cnn_fit_and_predict_deterministically() {
    use keel_nn::{Conv2D, Flatten, GaussianNoise, RandomFlip};
    let x = Tensor::rand_uniform(7, 0.0, 1.0, (32, 6, 6, 1), DType::F32, &Device::Cpu).unwrap();
    let y = x.mean(&[1, 2, 3], false).unwrap().gt(&Tensor::scalar(0.5f32)).unwrap();
    let y = y.to_dtype(DType::F32).unwrap().reshape((32, 1)).unwrap();
    let build = || {
        let mut m = Sequential::with_seed(4);
        m.add(RandomFlip::default().input_shape([6, 6, 1]));
        m.add(GaussianNoise::new(0.1));
        m.add(Conv2D::new(4, (3, 3)).activation(Activation::Relu));
        m.add(Flatten::new());
        m.add(Dense::new(1).activation(Activation::Sigmoid));
        m.compile(Adam::new(0.01), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    let mut m = build();
    let h = m.fit(&x, &y, Fit::new().epochs(2).batch_size(8).seed(3).verbose(0)).unwrap();
    assert_eq!(h.get("loss").unwrap().len(), 2);
    assert!(h.get("loss").unwrap().iter().all(|l| l.is_finite()));
    let p = m.predict(&x, 8).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(p, m.predict(&x, 8).unwrap().to_vec::<f32>().unwrap());
    // the same seeds give the same noise: a second run trains to the same bits
    let mut m2 = build();
    let h2 = m2.fit(&x, &y, Fit::new().epochs(2).batch_size(8).seed(3).verbose(0)).unwrap();
    assert_eq!(h, h2);
    assert_eq!(p, m2.predict(&x, 8).unwrap().to_vec::<f32>().unwrap());
    // evaluate runs in inference: twice the same
    assert_eq!(m.evaluate(&x, &y).unwrap(), m.evaluate(&x, &y).unwrap());
}

/// Keras's "text classification with Transformer" shape, small: Embedding -> self-attention
/// (MultiHeadAttention on x, x) -> residual Add -> LayerNormalization -> GlobalAveragePooling1D
/// -> Dense softmax, learning whether token 1 appears in a sequence.
#[test]
fn a_transformer_block_learns_whether_a_token_appears() {
    use keel_nn::{
        add, Embedding, GlobalAveragePooling1D, Input, LayerExt, LayerNormalization, Model, MultiHeadAttention,
    };
    let (n, len, vocab) = (256usize, 8usize, 10i64);
    // a small LCG: tokens 2..vocab, and token 1 at a random place in every other sequence
    let mut state = 12345u64;
    let mut next = |m: u64| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) % m
    };
    let (mut ids, mut labels) = (Vec::new(), Vec::new());
    for i in 0..n {
        let mut seq: Vec<i64> = (0..len).map(|_| 2 + next((vocab - 2) as u64) as i64).collect();
        if i % 2 == 0 {
            seq[next(len as u64) as usize] = 1;
        }
        labels.push((i % 2 == 0) as i64);
        ids.extend(seq);
    }
    let x = Tensor::from_vec(ids, (n, len)).unwrap();
    let y = Tensor::from_vec(labels, n).unwrap();
    let inp = Input::new([len]);
    let e = Embedding::new(vocab as usize, 16).call(&inp).unwrap();
    let att = MultiHeadAttention::new(2, 8).call_multi(&[e.clone(), e.clone()]).unwrap();
    let h = LayerNormalization::new().epsilon(1e-6).call(&add(&[e, att]).unwrap()).unwrap();
    let h = GlobalAveragePooling1D::new().call(&h).unwrap();
    let out = Dense::new(2).activation(Activation::Softmax).call(&h).unwrap();
    let mut m = keel_train::KerasModel::from_network(Model::with_seed(&[inp], &[out], 7).unwrap());
    m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    let attention_weights = |m: &keel_train::KerasModel<Model>| -> Vec<Vec<f32>> {
        m.network()
            .named_weights()
            .iter()
            .filter(|w| w.name.starts_with("multi_head_attention/"))
            .map(|w| w.param.value().to_vec::<f32>().unwrap())
            .collect()
    };
    let before = attention_weights(&m);
    assert_eq!(before.len(), 8);
    let h = m.fit(&x, &y, Fit::new().epochs(8).batch_size(32).verbose(0)).unwrap();
    let loss = h.get("loss").unwrap();
    assert!(loss.last().unwrap() < &(0.5 * loss[0]), "{loss:?}");
    let (_, acc) = m.evaluate(&x, &y).unwrap();
    assert!(acc > 0.9, "accuracy {acc}, losses {loss:?}");
    // the attention weights trained too
    assert!(before.iter().zip(&attention_weights(&m)).all(|(b, a)| b != a));
}

/// Keras's `kernel_constraint` / `bias_constraint`: `fit` applies them after every step, so
/// the trained kernel's columns have norms <= max_value and the bias is >= 0, where the same
/// model trained without them goes past both.
#[test]
fn fit_applies_weight_constraints_after_every_step() {
    use keel_nn::Constraint;
    let (x, y) = blobs(11, 64);
    let run = |constrained: bool| {
        let mut m = Sequential::with_seed(4);
        let mut d = Dense::new(8).activation(Activation::Relu).input_shape([2]);
        if constrained {
            d = d.kernel_constraint(Constraint::max_norm(0.3, 0)).bias_constraint(Constraint::non_neg());
        }
        m.add(d);
        m.add(Dense::new(1).activation(Activation::Sigmoid));
        m.compile(Adam::new(0.05), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
        m.fit(&x, &y, Fit::new().epochs(30).batch_size(16).seed(1).verbose(0)).unwrap();
        let w = m.named_weights();
        let kernel = w.iter().find(|w| w.param.shape().dims() == [2, 8]).unwrap().param.value();
        let bias = w.iter().find(|w| w.param.shape().dims() == [8]).unwrap().param.value();
        let norms = kernel.square().unwrap().sum(&[0], false).unwrap().sqrt().unwrap().to_vec::<f32>().unwrap();
        (norms, bias.to_vec::<f32>().unwrap())
    };
    let (norms, bias) = run(true);
    assert!(norms.iter().all(|&n| n <= 0.3 + 1e-6), "column norms {norms:?}");
    assert!(bias.iter().all(|&b| b >= 0.0), "bias {bias:?}");
    let (free_norms, free_bias) = run(false);
    assert!(free_norms.iter().any(|&n| n > 0.3 + 1e-3), "unconstrained column norms {free_norms:?}");
    assert!(free_bias.iter().any(|&b| b < 0.0), "unconstrained bias {free_bias:?}");
}
