//! Streaming semantics: batches equal one batch, reset works, sample weights, errors.

use keel_metrics::*;
use keel_tensor::Tensor;

fn t_f32(v: &[f32], dims: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), dims.to_vec()).unwrap()
}

#[test]
fn accuracy_batches_equal_one_batch_and_reset() {
    let y_true = [1i64, 2, 3, 4, 5, 6];
    let y_pred = [1i64, 0, 3, 4, 0, 6];
    let mut one = Accuracy::new();
    one.update_state(
        &Tensor::from_vec(y_true.to_vec(), 6).unwrap(),
        &Tensor::from_vec(y_pred.to_vec(), 6).unwrap(),
        None,
    )
    .unwrap();
    let mut many = Accuracy::new();
    for (a, b) in [(0, 2), (2, 5), (5, 6)] {
        let t = Tensor::from_vec(y_true[a..b].to_vec(), b - a).unwrap();
        let p = Tensor::from_vec(y_pred[a..b].to_vec(), b - a).unwrap();
        many.update_state(&t, &p, None).unwrap();
    }
    assert_eq!(one.result(), 4.0 / 6.0);
    assert!((many.result() - one.result()).abs() < 1e-12);
    many.reset_state();
    assert_eq!(many.result(), 0.0);
    assert_eq!(many.name(), "accuracy");
}

#[test]
fn binary_accuracy_threshold_and_weights() {
    let mut m = BinaryAccuracy::new();
    let y_true = t_f32(&[1.0, 0.0, 1.0, 0.0], &[4, 1]);
    let y_pred = t_f32(&[0.7, 0.6, 0.4, 0.1], &[4, 1]);
    m.update_state(&y_true, &y_pred, None).unwrap();
    assert_eq!(m.result(), 0.5);
    m.reset_state();
    let w = t_f32(&[1.0, 0.0, 0.0, 3.0], &[4]);
    m.update_state(&y_true, &y_pred, Some(&w)).unwrap();
    assert_eq!(m.result(), 1.0);
}

#[test]
fn categorical_and_sparse_agree() {
    let scores = t_f32(&[0.1, 0.8, 0.1, 0.6, 0.3, 0.1, 0.2, 0.2, 0.6], &[3, 3]);
    let onehot = t_f32(&[0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0], &[3, 3]);
    let sparse = Tensor::from_vec(vec![1i64, 2, 2], 3).unwrap();
    let mut c = CategoricalAccuracy::new();
    c.update_state(&onehot, &scores, None).unwrap();
    let mut s = SparseCategoricalAccuracy::new();
    s.update_state(&sparse, &scores, None).unwrap();
    assert!((c.result() - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(c.result(), s.result());
    let sparse_col = Tensor::from_vec(vec![1i64, 2, 2], (3, 1)).unwrap();
    s.reset_state();
    s.update_state(&sparse_col, &scores, None).unwrap();
    assert_eq!(c.result(), s.result());
}

#[test]
fn top_k_ties_and_sparse() {
    let scores = t_f32(&[0.5, 0.5, 0.0, 0.1, 0.2, 0.7], &[2, 3]);
    let labels = Tensor::from_vec(vec![1i64, 0], 2).unwrap();
    let mut m = SparseTopKCategoricalAccuracy::new(1);
    m.update_state(&labels, &scores, None).unwrap();
    assert_eq!(m.result(), 0.5); // tie at the boundary counts as a hit
    let mut m2 = SparseTopKCategoricalAccuracy::new(3);
    m2.update_state(&labels, &scores, None).unwrap();
    assert_eq!(m2.result(), 1.0);
    assert_eq!(top_k_accuracy_score(&[1, 0], &[0.5, 0.5, 0.0, 0.1, 0.2, 0.7], 3, 2).unwrap(), 0.5);
    // labels outside the classes are an error (scikit-learn raises), not a miss
    assert!(top_k_accuracy_score(&[7, 0], &[0.5, 0.5, 0.0, 0.1, 0.2, 0.7], 3, 2).is_err());
    assert!(top_k_accuracy_score(&[-1, 0], &[0.5, 0.5, 0.0, 0.1, 0.2, 0.7], 3, 2).is_err());
}

#[test]
fn shape_mismatch_names_metric_and_shapes() {
    let mut m = CategoricalAccuracy::new();
    let err = m.update_state(&t_f32(&[0.0; 6], &[2, 3]), &t_f32(&[0.0; 8], &[2, 4]), None).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("categorical_accuracy") && msg.contains("[2, 3]") && msg.contains("[2, 4]"), "{msg}");
    let mut s = SparseCategoricalAccuracy::new();
    assert!(s.update_state(&t_f32(&[0.0; 3], &[3]), &t_f32(&[0.0; 8], &[2, 4]), None).is_err());
    let mut a = Accuracy::new();
    let w = t_f32(&[1.0, 2.0], &[2]);
    assert!(a.update_state(&t_f32(&[0.0; 3], &[3]), &t_f32(&[0.0; 3], &[3]), Some(&w)).is_err());
}

#[test]
fn mean_running_and_trait_object() {
    let mut m = Mean::new("loss");
    m.update_weighted(2.0, 1.0);
    m.update_weighted(4.0, 3.0);
    assert_eq!(m.result(), 3.5);
    let mut boxed: Vec<Box<dyn Metric + Send>> = vec![Box::new(Mean::new("loss")), Box::new(Accuracy::new())];
    let t = t_f32(&[1.0, 2.0], &[2]);
    for b in boxed.iter_mut() {
        b.update_state(&t, &t, None).unwrap();
    }
    assert_eq!(boxed[0].result(), 1.5);
    assert_eq!(boxed[1].result(), 1.0);
    m.reset_state();
    assert_eq!(m.result(), 0.0);
}
