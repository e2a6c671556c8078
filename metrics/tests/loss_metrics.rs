//! Keras's loss-valued metrics against Keras 3.15.1 (fixtures/loss_metrics.json, written by
//! fixtures/make_loss_metrics.py): each metric name `compile` takes, updated with two batches
//! (the second weighted), after one batch and after both; plus the names, reset and errors.

use keel_metrics::{metric_from_name, LossKind, LossMetric, LossMetricKind, Metric, MetricSpec};
use keel_tensor::{DType, Tensor};
use serde_json::Value;

/// A JSON array (nested to any depth) as a tensor of `dtype`.
fn tensor(v: &Value, dtype: DType) -> Tensor {
    let mut dims = Vec::new();
    let mut cur = v;
    while let Some(a) = cur.as_array() {
        dims.push(a.len());
        cur = &a[0];
    }
    fn flat(v: &Value, out: &mut Vec<f64>) {
        match v.as_array() {
            Some(a) => a.iter().for_each(|x| flat(x, out)),
            None => out.push(v.as_f64().unwrap()),
        }
    }
    let mut data = Vec::new();
    flat(v, &mut data);
    let t = Tensor::from_vec(data, dims).unwrap();
    t.to_dtype(dtype).unwrap()
}

#[test]
fn every_loss_metric_matches_keras() {
    let fx: Value = serde_json::from_str(include_str!("fixtures/loss_metrics.json")).unwrap();
    let mut worst = 0.0f64;
    for c in fx["cases"].as_array().unwrap() {
        let (name, kind) = (c["name"].as_str().unwrap(), c["kind"].as_str().unwrap());
        let mut m = metric_from_name(name, LossKind::Other).unwrap();
        assert_eq!(m.name(), c["log_name"].as_str().unwrap(), "{name}: log name");
        assert_eq!(name.parse::<MetricSpec>().unwrap().name(), m.name());
        for (b, want) in c["batches"].as_array().unwrap().iter().zip(["first", "both"]) {
            let y_dtype = if kind == "sparse" { DType::I64 } else { DType::F32 };
            let (t, p) = (tensor(&b["y_true"], y_dtype), tensor(&b["y_pred"], DType::F32));
            let w = (!b["sample_weight"].is_null()).then(|| tensor(&b["sample_weight"], DType::F32));
            m.update_state(&t, &p, w.as_ref()).unwrap();
            let (got, want) = (m.result(), c[want].as_f64().unwrap());
            // Keras computes in f32: compare relative to the value's size
            let rel = (got - want).abs() / want.abs().max(1.0);
            worst = worst.max(rel);
            assert!(rel < 1e-5, "{name} ({kind}) after {want}: keel {got}, Keras {want}");
        }
    }
    println!("largest relative difference from Keras: {worst:.2e}");
}

#[test]
fn loss_metrics_reset_rename_and_refuse_bad_shapes() {
    let t = Tensor::from_vec(vec![0.0f32, 1.0, 1.0, 0.0], [2, 2]).unwrap();
    let p = Tensor::from_vec(vec![0.2f32, 0.8, 0.6, 0.4], [2, 2]).unwrap();
    for kind in LossMetricKind::ALL {
        let mut m = LossMetric::new(kind);
        assert_eq!(LossMetricKind::from_name(kind.log_name()), Some(kind));
        assert_eq!(m.result(), 0.0, "{}: empty", m.name());
        let y = if kind == LossMetricKind::SparseCategoricalCrossentropy {
            Tensor::from_vec(vec![1i64, 0], [2]).unwrap()
        } else {
            t.clone()
        };
        m.update_state(&y, &p, None).unwrap();
        let once = m.result();
        assert!(once.is_finite(), "{}: {once}", m.name());
        m.update_state(&y, &p, None).unwrap();
        assert!((m.result() - once).abs() < 1e-12, "{}: the mean of equal batches", m.name());
        m.reset_state();
        assert_eq!(m.result(), 0.0);
        // a failed update leaves the metric unchanged
        let bad = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], [3]).unwrap();
        assert!(m.update_state(&bad, &p, None).is_err(), "{}", m.name());
        assert_eq!(m.result(), 0.0);
    }
    let m = LossMetric::new(LossMetricKind::Poisson).with_name("val_poisson");
    assert_eq!((m.name(), m.kind()), ("val_poisson", LossMetricKind::Poisson));
    // a class index out of range names the metric
    let mut m = LossMetric::new(LossMetricKind::SparseCategoricalCrossentropy);
    let e = m.update_state(&Tensor::from_vec(vec![0i64, 5], [2]).unwrap(), &p, None).unwrap_err().to_string();
    assert!(e.contains("sparse_categorical_crossentropy") && e.contains('5'), "{e}");
    assert!("logcosh".parse::<MetricSpec>().is_ok() && "nope".parse::<MetricSpec>().is_err());
}
