//! Regression tests for reviewed bugs (scikit-learn / Keras 3 semantics are the reference).

use keel_metrics::*;

fn v(data: &[f64]) -> ArrayRef<'_> {
    ArrayRef::vector(data)
}

fn m<'a>(data: &'a [f64], dims: &[usize]) -> ArrayRef<'a> {
    ArrayRef::new(data, dims).unwrap()
}

// F1: any two distinct labels are binary, the larger one positive; more than two is an error.
#[test]
fn roc_auc_score_binary_labels_other_than_0_1() {
    let s = [0.1, 0.4, 0.35, 0.8];
    assert_eq!(roc_auc_score(&[0, 0, 1, 1], &s, None).unwrap(), 0.75);
    assert_eq!(roc_auc_score(&[-1, -1, 1, 1], &s, None).unwrap(), 0.75);
    assert_eq!(roc_auc_score(&[1, 1, 2, 2], &s, None).unwrap(), 0.75);
    // The larger label is positive, whatever the order of appearance.
    assert_eq!(roc_auc_score(&[7, 7, 3, 3], &s, None).unwrap(), 0.25);
    assert!(matches!(roc_auc_score(&[2, 2, 2, 2], &s, None), Err(MetricsError::Undefined { .. })));
}

#[test]
fn roc_auc_score_rejects_multiclass_labels() {
    let err = roc_auc_score(&[0, 1, 2, 1], &[0.1, 0.4, 0.35, 0.8], None).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, MetricsError::InvalidInput { .. }), "{msg}");
    assert!(msg.contains("roc_auc_score") && msg.contains("[0, 1, 2]"), "{msg}");
    // Shapes are still checked first.
    assert!(matches!(roc_auc_score(&[0, 1, 2], &[0.1, 0.4], None), Err(MetricsError::ShapeMismatch { .. })));
}

// F2: a rank-1 one-hot / score pair is one sample (Keras: argmax over the last axis).
#[test]
fn categorical_rank1_is_one_sample() {
    let mut c = CategoricalAccuracy::new();
    c.update_arrays(v(&[0.0, 1.0, 0.0]), v(&[0.2, 0.7, 0.1]), None).unwrap();
    assert_eq!(c.result(), 1.0);
    c.update_arrays(v(&[1.0, 0.0, 0.0]), v(&[0.2, 0.7, 0.1]), Some(&[3.0])).unwrap();
    assert_eq!(c.result(), 0.25);
    assert!(c.update_arrays(v(&[1.0, 0.0, 0.0]), v(&[0.2, 0.7, 0.1]), Some(&[1.0, 1.0, 1.0])).is_err());

    let mut k = TopKCategoricalAccuracy::new(2);
    k.update_arrays(v(&[0.0, 1.0, 0.0]), v(&[0.5, 0.3, 0.2]), None).unwrap();
    assert_eq!(k.result(), 1.0);
    k.update_arrays(v(&[0.0, 0.0, 1.0]), v(&[0.5, 0.3, 0.2]), None).unwrap();
    assert_eq!(k.result(), 0.5);
}

#[test]
fn samples_without_values_are_errors_not_dropped() {
    let mut a = Accuracy::new();
    assert!(a.update_arrays(m(&[], &[2, 0]), m(&[], &[2, 0]), None).is_err());
    let mut c = CategoricalAccuracy::new();
    assert!(c.update_arrays(m(&[], &[2, 0]), m(&[], &[2, 0]), None).is_err());
    let mut k = TopKCategoricalAccuracy::new(1);
    assert!(k.update_arrays(m(&[], &[2, 0]), m(&[], &[2, 0]), None).is_err());
    let mut cm = ConfusionMatrix::new(2);
    assert!(cm.update_arrays(m(&[], &[2, 0]), m(&[], &[2, 0]), None).is_err());
    // An empty batch is fine.
    a.update_arrays(m(&[], &[0, 3]), m(&[], &[0, 3]), None).unwrap();
    assert_eq!(a.result(), 0.0);
}

// F3: Average::Binary scores pos_label 1 of any binary label set.
#[test]
fn binary_average_pos_label_is_one() {
    assert_eq!(precision_score(&[-1, 1, 1, -1], &[1, 1, -1, -1], Average::Binary).unwrap(), 0.5);
    assert_eq!(recall_score(&[-1, 1, 1, -1], &[1, 1, -1, -1], Average::Binary).unwrap(), 0.5);
    assert_eq!(precision_score(&[1, 1, 1, 2], &[1, 2, 2, 2], Average::Binary).unwrap(), 1.0);
    assert!((recall_score(&[1, 1, 1, 2], &[1, 2, 2, 2], Average::Binary).unwrap() - 1.0 / 3.0).abs() < 1e-15);
    assert!((f1_score(&[1, 1, 1, 2], &[1, 2, 2, 2], Average::Binary).unwrap() - 0.5).abs() < 1e-15);
    // Label 1 absent from a two-label set: scikit-learn raises.
    let err = precision_score(&[2, 3, 3], &[2, 2, 3], Average::Binary).unwrap_err();
    assert!(err.to_string().contains("pos_label=1") && err.to_string().contains("[2, 3]"), "{err}");
    // A single label that is not 1: label 1 scores 0.0 (scikit-learn's zero_division value).
    assert_eq!(precision_score(&[2, 2], &[2, 2], Average::Binary).unwrap(), 0.0);
    // More than two labels stays an error, even when `labels` hides one.
    assert!(precision_score(&[0, 1, 2], &[0, 1, 1], Average::Binary).is_err());
    let prfs = precision_recall_fscore_support(&[0, 1, 2], &[0, 1, 1], Some(&[0, 1]), None).unwrap();
    assert!(prfs.average(Average::Binary).is_err());
}

// F4: zero total weight makes R² undefined (NaN), not a perfect 1.0.
#[test]
fn r2_with_zero_total_weight_is_nan() {
    assert!(r2_score(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], Some(&[0.0, 0.0, 0.0])).unwrap().is_nan());
    assert!(r2_score(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0], Some(&[0.0])).unwrap().is_nan());
    let mut r = R2Score::new();
    r.update_arrays(v(&[1.0, 2.0]), v(&[1.0, 5.0]), Some(&[0.0, 0.0])).unwrap();
    assert!(r.result().is_nan());
    r.update_arrays(v(&[1.0, 3.0]), v(&[1.0, 3.0]), None).unwrap();
    assert_eq!(r.result(), 1.0);
}

// F5: a rejected update leaves the metric unchanged.
#[test]
fn failed_r2_update_leaves_state_unchanged() {
    let mut r = R2Score::new();
    assert!(r.update_arrays(v(&[1.0, 2.0, 3.0]), v(&[1.0, 2.0, 3.0]), Some(&[1.0, 2.0])).is_err());
    assert!(r.per_output().is_empty());
    r.update_arrays(m(&[1.0, 2.0, 3.0, 5.0], &[2, 2]), m(&[1.0, 2.0, 3.0, 5.0], &[2, 2]), None).unwrap();
    assert_eq!(r.per_output(), vec![1.0, 1.0]);
}

#[test]
fn failed_updates_leave_state_unchanged() {
    let mut p = Precision::new();
    p.update_arrays(v(&[1.0, 0.0]), v(&[0.9, 0.1]), None).unwrap();
    assert!(p.update_arrays(v(&[0.0, 1.0]), v(&[0.9, f64::NAN]), None).is_err());
    assert!(p.update_arrays(v(&[0.0, f64::NAN]), v(&[0.9, 0.8]), None).is_err());
    assert_eq!(p.result(), 1.0);
    let mut f = F1Score::multiclass(3, Average::Binary);
    f.update_arrays(v(&[1.0, 0.0]), v(&[1.0, 0.0]), None).unwrap();
    assert!(f.update_arrays(v(&[1.0, 2.0]), v(&[0.0, 1.0]), None).is_err());
    assert_eq!(f.result(), 1.0);
    let mut auc = Auc::new();
    auc.update_arrays(v(&[0.0, 1.0]), v(&[0.2, 0.8]), None).unwrap();
    assert!(auc.update_arrays(v(&[1.0, f64::NAN]), v(&[0.1, 0.3]), None).is_err());
    assert_eq!((auc.len(), auc.result()), (2, 1.0));
}

// F6: a bad weight length names sample_weight, against y_true.
#[test]
fn sample_weight_length_error_names_sample_weight() {
    let err = mean_squared_error(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], Some(&[1.0, 2.0])).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, MetricsError::ShapeMismatch { .. }), "{msg}");
    assert!(msg.contains("[3] (y_true)") && msg.contains("[2] (sample_weight)"), "{msg}");
    assert!(!msg.contains("y_pred"), "{msg}");
    let err = Mean::new("loss").update_values(&[1.0, 2.0], Some(&[1.0, 2.0, 3.0])).unwrap_err();
    assert!(err.to_string().contains("[3] (sample_weight)"), "{err}");
}

// F7: NaN scores and NaN labels are errors everywhere.
#[test]
fn nan_scores_and_labels_are_errors() {
    let nan = f64::NAN;
    let col = |d: &[f64]| -> Vec<f64> { d.to_vec() };
    let (t, pn, tn) = (col(&[1.0, 0.0]), col(&[0.9, nan]), col(&[1.0, nan]));
    let p = col(&[0.9, 0.1]);
    let d = [2, 1];
    let mut ba = BinaryAccuracy::new();
    assert!(ba.update_arrays(m(&t, &d), m(&pn, &d), None).is_err());
    assert!(ba.update_arrays(m(&tn, &d), m(&p, &d), None).is_err());
    assert_eq!(ba.result(), 0.0);
    let mut acc = Accuracy::new();
    assert!(acc.update_arrays(v(&tn), v(&p), None).is_err());
    for mut metric in [Precision::new(), Precision::multilabel(1, 0.5, Average::Micro)] {
        assert!(metric.update_arrays(m(&t, &d), m(&pn, &d), None).is_err());
        assert!(metric.update_arrays(m(&tn, &d), m(&p, &d), None).is_err());
    }
    let mut r = Recall::multilabel(2, 0.5, Average::Macro);
    assert!(r.update_arrays(m(&[1.0, 0.0], &[1, 2]), m(&[nan, 0.2], &[1, 2]), None).is_err());
    let mut auc = Auc::new();
    assert!(auc.update_arrays(v(&tn), v(&p), None).is_err());
    assert!(auc.is_empty());
    let scores = [0.5, nan, 0.1, 0.2, 0.3, 0.4];
    let mut sk = SparseTopKCategoricalAccuracy::new(1);
    assert!(sk.update_arrays(v(&[0.0, 1.0]), m(&scores, &[2, 3]), None).is_err());
    assert!(sk.update_arrays(v(&[nan, 1.0]), m(&[0.5, 0.1, 0.1, 0.2, 0.3, 0.4], &[2, 3]), None).is_err());
    let mut k = TopKCategoricalAccuracy::new(1);
    let onehot = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
    assert!(k.update_arrays(m(&onehot, &[2, 3]), m(&scores, &[2, 3]), None).is_err());
    let mut s = SparseCategoricalAccuracy::new();
    assert!(s.update_arrays(v(&[nan, 1.0]), m(&[0.5, 0.1, 0.1, 0.2, 0.3, 0.4], &[2, 3]), None).is_err());
    assert!(top_k_accuracy_score(&[0, 1], &scores, 3, 2).is_err());
    // The NaN in y_true is reported as such.
    let mut c = CategoricalAccuracy::new();
    let err = c.update_arrays(m(&[nan, 1.0], &[1, 2]), m(&[0.1, 0.9], &[1, 2]), None).unwrap_err();
    assert!(err.to_string().contains("y_true"), "{err}");
}

// F9: confusion_matrix with no usable `labels` is an error, as in scikit-learn.
#[test]
fn confusion_matrix_labels_must_meet_y_true() {
    assert!(matches!(confusion_matrix(&[0, 1], &[0, 1], Some(&[]), None), Err(MetricsError::InvalidArgument { .. })));
    let err = confusion_matrix(&[0, 1], &[2, 1], Some(&[2, 3]), None).unwrap_err();
    assert!(err.to_string().contains("y_true"), "{err}");
    assert_eq!(confusion_matrix(&[], &[], Some(&[4, 5]), None).unwrap(), Matrix::zeros(2, 2));
    assert_eq!(
        confusion_matrix(&[0, 1], &[1, 1], Some(&[1, 3]), None).unwrap().to_rows(),
        vec![vec![1.0, 0.0], vec![0.0, 0.0]]
    );
}

// F10: streaming multi-class with Average::Binary rejects labels other than 0/1.
#[test]
fn streaming_binary_average_rejects_multiclass() {
    let mut p = Precision::multiclass(3, Average::Binary);
    let err = p.update_arrays(v(&[0.0, 1.0, 2.0]), v(&[0.0, 1.0, 1.0]), None).unwrap_err();
    assert!(err.to_string().contains("Binary"), "{err}");
    assert!(p.update_arrays(v(&[0.0, 1.0]), v(&[2.0, 1.0]), None).is_err());
    p.update_arrays(v(&[0.0, 1.0, 1.0]), v(&[1.0, 1.0, 0.0]), None).unwrap();
    assert_eq!(p.result(), 0.5);
    assert_eq!(p.result(), precision_score(&[0, 1, 1], &[1, 1, 0], Average::Binary).unwrap());
}

// F11: weighted supports print as Python's float repr.
#[test]
fn report_prints_supports_like_python_repr() {
    let opts = ReportOptions { sample_weight: Some(&[1e16, 1e-5, 2.5]), ..ReportOptions::default() };
    let r = classification_report_with(&[0, 1, 2], &[0, 1, 2], &opts).unwrap();
    assert!(r.contains(" 1e+16\n") && r.contains(" 1e-05\n") && r.contains(" 2.5\n"), "{r}");
    assert!(!r.contains("1e16") && !r.contains("1e-5\n"), "{r}");
    let opts = ReportOptions { sample_weight: Some(&[1.5e17, 3.0]), ..ReportOptions::default() };
    let r = classification_report_with(&[0, 1], &[0, 1], &opts).unwrap();
    assert!(r.contains(" 1.5e+17\n") && r.contains(" 3.0\n"), "{r}");
}
