//! Keras's `top_k` / `class_id` on Precision and Recall, and `multi_label` / `label_weights` /
//! `num_labels` on Keras's AUC, against Keras 3.15.1 (fixtures/metric_options.json, written by
//! fixtures/make_metric_options_fixtures.py): each case is updated with two batches (the second
//! weighted) and compared after each; plus the errors, reset and the by-value compile kinds.

use keel_metrics::{
    AucCurve, AucSummation, Average, ClassificationMetricKind, KerasAuc, Metric, MetricSpec, MetricsError, Precision,
    Recall,
};
use keel_tensor::Tensor;
use serde_json::Value;

/// A JSON array (nested to any depth) as an f32 tensor.
fn tensor(v: &Value) -> Tensor {
    let mut dims = Vec::new();
    let mut cur = v;
    while let Some(a) = cur.as_array() {
        dims.push(a.len());
        cur = &a[0];
    }
    fn flat(v: &Value, out: &mut Vec<f32>) {
        match v.as_array() {
            Some(a) => a.iter().for_each(|x| flat(x, out)),
            None => out.push(v.as_f64().unwrap() as f32),
        }
    }
    let mut data = Vec::new();
    flat(v, &mut data);
    Tensor::from_vec(data, dims).unwrap()
}

fn curve(a: &Value) -> AucCurve {
    if a["curve"] == "PR" {
        AucCurve::Pr
    } else {
        AucCurve::Roc
    }
}

fn summation(a: &Value) -> AucSummation {
    match a["summation_method"].as_str().unwrap_or("interpolation") {
        "interpolation" => AucSummation::Interpolation,
        "minoring" => AucSummation::Minoring,
        _ => AucSummation::Majoring,
    }
}

fn floats(v: &Value) -> Option<Vec<f64>> {
    v.as_array().map(|a| a.iter().map(|x| x.as_f64().unwrap()).collect())
}

/// The keel metric of a fixture case.
fn build(kind: &str, a: &Value) -> Box<dyn Metric> {
    let usize_of = |k: &str| a[k].as_u64().map(|v| v as usize);
    macro_rules! pr {
        ($t:ident) => {{
            let mut m = match a["thresholds"].as_f64() {
                Some(t) => $t::with_threshold(t),
                None => $t::new(),
            };
            if let Some(k) = usize_of("top_k") {
                m = m.top_k(k);
            }
            if let Some(c) = usize_of("class_id") {
                m = m.class_id(c);
            }
            Box::new(m)
        }};
    }
    match kind {
        "Precision" => pr!(Precision),
        "Recall" => pr!(Recall),
        "AUC" => {
            let mut m = KerasAuc::new()
                .curve(curve(a))
                .summation_method(summation(a))
                .multi_label(a["multi_label"] == true)
                .from_logits(a["from_logits"] == true);
            if let Some(n) = usize_of("num_thresholds") {
                m = m.num_thresholds(n);
            }
            if let Some(n) = usize_of("num_labels") {
                m = m.num_labels(n);
            }
            if let Some(w) = floats(&a["label_weights"]) {
                m = m.label_weights(w);
            }
            Box::new(m)
        }
        other => panic!("unknown case kind {other}"),
    }
}

#[test]
fn options_match_keras() {
    let fx: Value = serde_json::from_str(include_str!("fixtures/metric_options.json")).unwrap();
    assert_eq!(fx["keras"], "3.15.1");
    let cases = fx["cases"].as_array().unwrap();
    let mut worst = 0.0f64;
    let mut compared = 0;
    for (ci, c) in cases.iter().enumerate() {
        let kind = c["kind"].as_str().unwrap();
        let mut m = build(kind, &c["args"]);
        for (b, want) in c["batches"].as_array().unwrap().iter().zip(c["results"].as_array().unwrap()) {
            let (t, p) = (tensor(&b["y_true"]), tensor(&b["y_pred"]));
            let w = (!b["sample_weight"].is_null()).then(|| tensor(&b["sample_weight"]));
            m.update_state(&t, &p, w.as_ref()).unwrap();
            let (got, want) = (m.result(), want.as_f64().unwrap());
            let rel = (got - want).abs() / want.abs().max(1e-3);
            worst = worst.max(rel);
            compared += 1;
            // Keras sums in f32: its PR interpolation over 200 thresholds drifts up to ~1e-6
            assert!(rel < 2e-6, "case {ci} {kind} {}: keel {got}, Keras {want}", c["args"]);
        }
    }
    assert!(cases.len() >= 30);
    println!("{} cases, {compared} values; largest relative difference from Keras: {worst:.2e}", cases.len());
}

/// The same case through `ClassificationMetricKind` gives the same values as the builders.
#[test]
fn by_value_kinds_build_the_same_metrics() {
    let fx: Value = serde_json::from_str(include_str!("fixtures/metric_options.json")).unwrap();
    static LW: [f64; 5] = [1.0, 2.0, 0.0, 0.5, 1.5];
    let kinds = [
        (
            "Precision",
            ClassificationMetricKind::Precision { threshold: None, top_k: Some(2), class_id: Some(1) },
            serde_json::json!({"top_k": 2, "class_id": 1}),
        ),
        (
            "Recall",
            ClassificationMetricKind::Recall { threshold: Some(0.4), top_k: Some(2), class_id: None },
            serde_json::json!({"top_k": 2, "thresholds": 0.4}),
        ),
        (
            "AUC",
            ClassificationMetricKind::KerasAucWith {
                curve: AucCurve::Pr,
                summation: AucSummation::Interpolation,
                multi_label: true,
                num_labels: None,
                label_weights: Some(&LW),
            },
            serde_json::json!({"curve": "PR", "multi_label": true, "label_weights": LW}),
        ),
    ];
    for (kind, k, args) in kinds {
        let case = fx["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == kind && c["args"] == args)
            .unwrap_or_else(|| panic!("no fixture case {kind} {args}"));
        let mut spec_metric = MetricSpec::Classification(k).build(Default::default());
        assert_eq!(spec_metric.name(), k.log_name());
        let mut direct = build(kind, &args);
        for (b, want) in case["batches"].as_array().unwrap().iter().zip(case["results"].as_array().unwrap()) {
            let (t, p) = (tensor(&b["y_true"]), tensor(&b["y_pred"]));
            let w = (!b["sample_weight"].is_null()).then(|| tensor(&b["sample_weight"]));
            spec_metric.update_state(&t, &p, w.as_ref()).unwrap();
            direct.update_state(&t, &p, w.as_ref()).unwrap();
            assert_eq!(spec_metric.result(), direct.result());
            assert!((spec_metric.result() - want.as_f64().unwrap()).abs() < 1e-6);
        }
    }
    // Copy + Hash still hold: the kinds can be map keys
    let mut set = std::collections::HashSet::new();
    set.insert(MetricSpec::Classification(kinds_key()));
    assert!(set.contains(&MetricSpec::Classification(kinds_key())));
}

fn kinds_key() -> ClassificationMetricKind {
    ClassificationMetricKind::KerasAucWith {
        curve: AucCurve::Roc,
        summation: AucSummation::Minoring,
        multi_label: true,
        num_labels: Some(3),
        label_weights: Some(&[1.0, 2.0, 3.0]),
    }
}

fn rows(v: &[f32], cols: usize) -> Tensor {
    Tensor::from_vec(v.to_vec(), (v.len() / cols, cols)).unwrap()
}

fn invalid_arg(r: Result<(), MetricsError>, metric: &str, needle: &str) {
    match r {
        Err(e @ MetricsError::InvalidArgument { .. }) => {
            let msg = e.to_string();
            assert!(msg.starts_with(metric) && msg.contains(needle), "{msg}");
        }
        other => panic!("expected InvalidArgument with {needle:?}, got {other:?}"),
    }
}

#[test]
fn keras_doc_examples() {
    // keras.metrics.Precision(top_k=4): [0, 0, 1, 1] vs [1, 1, 1, 1] -> 0.5 (the docstring)
    let mut m = Precision::new().top_k(4);
    m.update_arrays(
        keel_metrics::ArrayRef::vector(&[0.0, 0.0, 1.0, 1.0]),
        keel_metrics::ArrayRef::vector(&[1.0; 4]),
        None,
    )
    .unwrap();
    assert_eq!(m.result(), 0.5);
    // values from Keras 3.15.1: Recall(class_id=2) reads column 2 only
    let t = rows(&[0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0], 3);
    let p = rows(&[0.1, 0.8, 0.9, 0.6, 0.2, 0.7, 0.4, 0.4, 0.4], 3);
    let mut r = Recall::new().class_id(2);
    r.update_state(&t, &p, None).unwrap();
    assert_eq!(r.result(), 0.5);
    // top_k=1, class_id=2: row 0 keeps 0.9 (a true positive), row 1 keeps 0.7 (a false
    // positive), row 2 is a tie and keeps index 0 (the lower index), so class 2 is a false negative
    let mut r = Recall::new().top_k(1).class_id(2);
    r.update_state(&t, &p, None).unwrap();
    assert_eq!(r.result(), 0.5);
    let mut pr = Precision::new().top_k(1).class_id(2);
    pr.update_state(&t, &p, None).unwrap();
    assert_eq!(pr.result(), 0.5);
}

#[test]
fn option_errors_are_values_and_change_nothing() {
    let t = rows(&[0.0, 1.0, 1.0, 1.0, 0.0, 0.0], 3);
    let p = rows(&[0.1, 0.8, 0.9, 0.6, 0.2, 0.7], 3);
    invalid_arg(Precision::new().top_k(0).update_state(&t, &p, None), "precision", "top_k must be at least 1, got 0");
    invalid_arg(Recall::new().top_k(4).update_state(&t, &p, None), "recall", "top_k = 4");
    invalid_arg(Precision::new().class_id(3).update_state(&t, &p, None), "precision", "class_id = 3 is out of range");
    let v = Tensor::from_vec(vec![0.2f32, 0.9], 2).unwrap();
    invalid_arg(Recall::new().class_id(0).update_state(&v, &v, None), "recall", "class_id = 0 needs y_pred");
    invalid_arg(
        Precision::multiclass(3, Average::Macro).top_k(2).update_state(&t, &p, None),
        "precision",
        "binary (Keras) mode",
    );
    invalid_arg(
        Recall::multilabel(3, 0.5, Average::Micro).class_id(1).update_state(&t, &p, None),
        "recall",
        "binary (Keras) mode",
    );
    // a failed update leaves the counts as they were
    let mut m = Precision::new().top_k(1);
    m.update_state(&t, &p, None).unwrap();
    let before = m.result();
    let t4 = rows(&[0.0; 8], 4);
    assert!(m.update_state(&t4, &rows(&[0.5; 8], 4), Some(&Tensor::from_vec(vec![1.0f32; 3], 3).unwrap())).is_err());
    assert_eq!(m.result(), before);
    m.reset_state();
    assert_eq!(m.result(), 0.0);

    invalid_arg(KerasAuc::new().num_labels(3).update_state(&t, &p, None), "auc", "`num_labels` (3)");
    invalid_arg(KerasAuc::new().label_weights(vec![1.0, 2.0]).update_state(&t, &p, None), "auc", "2 label_weights");
    invalid_arg(
        KerasAuc::new().multi_label(true).label_weights(vec![1.0, -1.0, 0.0]).update_state(&t, &p, None),
        "auc",
        "non-negative, got -1",
    );
    invalid_arg(KerasAuc::new().label_weights(vec![1.0, 1.0]).update_state(&v, &v, None), "auc", "label_weights");
    let mut ml = KerasAuc::new().multi_label(true);
    let cube = Tensor::from_vec(vec![0.5f32; 8], (2, 2, 2)).unwrap();
    assert!(matches!(ml.update_state(&cube, &cube, None), Err(MetricsError::InvalidInput { .. })));
    ml.update_state(&t, &p, None).unwrap();
    let before = ml.result();
    assert_eq!(ml.per_label().len(), 3);
    // the label count is fixed by the first batch (or num_labels)
    let err = ml.update_state(&t4, &rows(&[0.5; 8], 4), None).unwrap_err().to_string();
    assert!(err.contains("has 4 labels, but this multi-label AUC has 3"), "{err}");
    assert_eq!(ml.result(), before);
    let err = KerasAuc::new().multi_label(true).num_labels(2).update_state(&t, &p, None).unwrap_err().to_string();
    assert!(err.contains("has 3 labels, but this multi-label AUC has 2"), "{err}");
    ml.reset_state();
    assert_eq!(ml.result(), 0.0);
}

#[test]
fn multi_label_auc_is_the_mean_of_per_label_aucs() {
    let t = rows(&[1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0], 2);
    let p = rows(&[0.9, 0.1, 0.2, 0.8, 0.7, 0.3, 0.4, 0.6], 2);
    let mut ml = KerasAuc::new().multi_label(true);
    ml.update_state(&t, &p, None).unwrap();
    let per = ml.per_label();
    assert_eq!(per.len(), 2);
    assert!((ml.result() - (per[0] + per[1]) / 2.0).abs() < 1e-12);
    // weights [0, 1] pick the second label's AUC; all-zero weights give 0.0 (divide_no_nan)
    let mut w = KerasAuc::new().multi_label(true).label_weights(vec![0.0, 1.0]);
    w.update_state(&t, &p, None).unwrap();
    assert!((w.result() - per[1]).abs() < 1e-12);
    let mut z = KerasAuc::new().multi_label(true).label_weights(vec![0.0, 0.0]);
    z.update_state(&t, &p, None).unwrap();
    assert_eq!(z.result(), 0.0);
    // pooled label weights of 1 are the plain pooled AUC
    let (mut a, mut b) = (KerasAuc::new(), KerasAuc::new().label_weights(vec![1.0, 1.0]));
    a.update_state(&t, &p, None).unwrap();
    b.update_state(&t, &p, None).unwrap();
    assert_eq!(a.result(), b.result());
}

/// Keras compares f32 scores with the threshold in f32: a score of exactly 0.3f32 is not
/// above a threshold of 0.3 (in f64, 0.3f32 = 0.30000001 would be).
#[test]
fn a_score_equal_to_the_threshold_in_f32_is_not_positive() {
    let y = Tensor::from_vec(vec![0.0f32, 1.0], [2, 1]).unwrap();
    let p = Tensor::from_vec(vec![0.3f32, 0.7], [2, 1]).unwrap();
    let mut precision = Precision::with_threshold(0.3);
    precision.update_state(&y, &p, None).unwrap();
    assert_eq!(precision.result(), 1.0, "0.3 is not a predicted positive, 0.7 is a true one");
    let mut recall = Recall::with_threshold(0.7);
    recall.update_state(&y, &p, None).unwrap();
    assert_eq!(recall.result(), 0.0, "0.7f32 is not above 0.7");
}
