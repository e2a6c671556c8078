//! Names, specs, trait objects, resets and error paths (no panics on bad input).

use keel_metrics::*;
use keel_tensor::Tensor;

fn t(v: &[f64], dims: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), dims.to_vec()).unwrap()
}

#[test]
fn accuracy_name_follows_loss_like_keras() {
    let scores = t(&[0.2, 0.8, 0.9, 0.1], &[2, 2]);
    let onehot = t(&[0.0, 1.0, 0.0, 1.0], &[2, 2]);
    let sparse = t(&[1.0, 1.0], &[2]);
    let mut cat = metric_from_name("accuracy", LossKind::from_keras_name("categorical_crossentropy")).unwrap();
    cat.update_state(&onehot, &scores, None).unwrap();
    assert_eq!((cat.name(), cat.result()), ("accuracy", 0.5));
    let mut sp = metric_from_name("acc", LossKind::SparseCategoricalCrossentropy).unwrap();
    sp.update_state(&sparse, &scores, None).unwrap();
    assert_eq!(sp.result(), 0.5);
    let mut bin = metric_from_name("ACCURACY", LossKind::BinaryCrossentropy).unwrap();
    bin.update_state(&t(&[1.0, 0.0, 1.0], &[3, 1]), &t(&[0.9, 0.2, 0.3], &[3, 1]), None).unwrap();
    assert!((bin.result() - 2.0 / 3.0).abs() < 1e-12);
    // Unknown loss: Keras 3 picks by shapes.
    let mut auto = metric_from_name("accuracy", LossKind::Other).unwrap();
    auto.update_state(&sparse, &scores, None).unwrap();
    auto.update_state(&onehot, &scores, None).unwrap();
    auto.update_state(&t(&[1.0, 0.0], &[2, 1]), &t(&[0.9, 0.2], &[2, 1]), None).unwrap();
    assert!((auto.result() - 4.0 / 6.0).abs() < 1e-12);
}

#[test]
fn every_name_builds_and_reports_its_name() {
    for name in [
        "accuracy",
        "binary_accuracy",
        "categorical_accuracy",
        "sparse_categorical_accuracy",
        "top_k_categorical_accuracy",
        "sparse_top_k_categorical_accuracy",
        "precision",
        "recall",
        "f1_score",
        "auc",
        "mean_squared_error",
        "mean_absolute_error",
        "root_mean_squared_error",
        "r2_score",
    ] {
        let spec: MetricSpec = name.parse().unwrap();
        assert_eq!(spec.name(), name);
        assert_eq!(spec.build(LossKind::Other).name(), name);
    }
    assert_eq!("mse".parse::<MetricSpec>().unwrap(), MetricSpec::Mse);
    let err = metric_from_name("accuarcy", LossKind::Other).err().unwrap();
    assert!(err.to_string().contains("accuarcy"));
}

#[test]
fn reset_clears_every_metric() {
    let specs = [
        MetricSpec::Accuracy,
        MetricSpec::Precision,
        MetricSpec::Recall,
        MetricSpec::F1,
        MetricSpec::Auc,
        MetricSpec::Mse,
        MetricSpec::Mae,
        MetricSpec::Rmse,
        MetricSpec::R2,
    ];
    let yt = t(&[1.0, 0.0, 1.0, 0.0], &[4, 1]);
    let yp = t(&[0.9, 0.4, 0.2, 0.6], &[4, 1]);
    for s in specs {
        let mut fresh = s.build(LossKind::BinaryCrossentropy);
        let mut m = s.build(LossKind::BinaryCrossentropy);
        m.update_state(&t(&[0.0, 1.0, 0.0], &[3, 1]), &t(&[0.9, 0.8, 0.7], &[3, 1]), None).unwrap();
        m.reset_state();
        m.update_state(&yt, &yp, None).unwrap();
        fresh.update_state(&yt, &yp, None).unwrap();
        assert_eq!(m.result().to_bits(), fresh.result().to_bits(), "{}", m.name());
    }
    let mut cm = ConfusionMatrix::new(2);
    cm.update_state(&yt, &t(&[1.0, 1.0, 1.0, 1.0], &[4]), None).unwrap();
    cm.reset_state();
    assert_eq!(cm.value(), MetricValue::Matrix(Matrix::zeros(2, 2)));
}

#[test]
fn confusion_matrix_from_one_hot_and_scores() {
    let mut cm = ConfusionMatrix::new(3);
    let onehot = t(&[1.0, 0.0, 0.0, 0.0, 0.0, 1.0], &[2, 3]);
    let scores = t(&[0.1, 0.7, 0.2, 0.0, 0.1, 0.9], &[2, 3]);
    cm.update_state(&onehot, &scores, Some(&t(&[2.0, 1.0], &[2]))).unwrap();
    assert_eq!(cm.matrix().to_rows(), vec![vec![0.0, 2.0, 0.0], vec![0.0; 3], vec![0.0, 0.0, 1.0]]);
    assert!((cm.result() - 1.0 / 3.0).abs() < 1e-12);
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let mut cm = ConfusionMatrix::new(3);
    assert!(matches!(
        cm.update_state(&t(&[3.0], &[1]), &t(&[0.0], &[1]), None),
        Err(MetricsError::InvalidInput { .. })
    ));
    assert!(cm.update_state(&t(&[-1.0], &[1]), &t(&[0.0], &[1]), None).is_err());
    assert!(cm.update_state(&t(&[0.5], &[1]), &t(&[0.0], &[1]), None).is_err());
    assert!(cm.update_state(&t(&[0.0, 1.0], &[2]), &t(&[0.0; 8], &[2, 4]), None).is_err());
    let mut p = Precision::multiclass(2, Average::Macro);
    assert!(p.update_state(&t(&[0.0, 1.0], &[2]), &t(&[f64::NAN, 1.0, 0.0, 1.0], &[2, 2]), None).is_err());
    let mut auc = Auc::new();
    assert!(auc.update_state(&t(&[0.0, 1.0], &[2]), &t(&[f64::NAN, 0.3], &[2]), None).is_err());
    assert!(auc.update_state(&t(&[0.0, 1.0], &[2]), &t(&[0.1, 0.3, 0.5], &[3]), None).is_err());
    assert!(auc.result().is_nan()); // nothing seen: undefined
    let mut r2 = R2Score::new();
    r2.update_state(&t(&[1.0], &[1]), &t(&[2.0], &[1]), None).unwrap();
    assert!(r2.result().is_nan()); // fewer than two samples
    assert!(r2.update_state(&t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]), &t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]), None).is_err());
    let mut ml = F1Score::multilabel(3, 0.5, Average::Micro);
    assert!(ml.update_state(&t(&[0.0; 4], &[2, 2]), &t(&[0.0; 4], &[2, 2]), None).is_err());
    assert!(precision_score(&[0, 1, 2], &[0, 1, 1], Average::Binary).is_err());
    assert!(f1_score(&[0, 1], &[0, 1], Average::None).is_err());
    assert!(classification_report(&[0, 1], &[0, 1], Some(&["a"])).is_err());
    assert!(ArrayRef::new(&[1.0, 2.0], &[3]).is_err());
    let mut m = Mean::new("loss");
    assert!(m.update_values(&[1.0, 2.0], Some(&[1.0, 2.0, 3.0])).is_err());
}

#[test]
fn zero_division_is_zero() {
    // No predicted positives: precision 0; no true positives: recall 0; F1 0.
    let mut p = Precision::new();
    p.update_state(&t(&[1.0, 0.0], &[2]), &t(&[0.1, 0.2], &[2]), None).unwrap();
    assert_eq!(p.result(), 0.0);
    let mut r = Recall::new();
    r.update_state(&t(&[0.0, 0.0], &[2]), &t(&[0.9, 0.2], &[2]), None).unwrap();
    assert_eq!(r.result(), 0.0);
    assert_eq!(F1Score::new().result(), 0.0);
    assert_eq!(Accuracy::new().result(), 0.0);
    // Classes never seen are left out of the macro average, as scikit-learn's default labels.
    let mut f = F1Score::multiclass(4, Average::Macro);
    f.update_state(&t(&[0.0, 1.0], &[2]), &t(&[0.0, 1.0], &[2]), None).unwrap();
    assert_eq!(f.result(), 1.0);
    let mut f = F1Score::multiclass(4, Average::None);
    f.update_state(&t(&[0.0, 1.0], &[2]), &t(&[0.0, 1.0], &[2]), None).unwrap();
    assert_eq!(f.value(), MetricValue::Vector(vec![1.0, 1.0, 0.0, 0.0]));
    assert_eq!(f.result(), 1.0);
}

#[test]
fn integer_and_half_tensors_work() {
    let mut s = SparseCategoricalAccuracy::new();
    let labels = Tensor::from_vec(vec![2i64, 0], 2).unwrap();
    let scores = Tensor::from_vec(vec![0.1f32, 0.2, 0.7, 0.6, 0.3, 0.1], (2, 3)).unwrap();
    s.update_state(&labels, &scores.to_dtype(keel_tensor::DType::BF16).unwrap(), None).unwrap();
    assert_eq!(s.result(), 1.0);
    let mut a = Accuracy::new();
    let u = Tensor::from_vec(vec![1u8, 2, 3], 3).unwrap();
    a.update_state(&u, &u, None).unwrap();
    assert_eq!(a.result(), 1.0);
}
