//! Keras's classification metrics against Keras 3.15.1 (fixtures/keras_classification_metrics.json,
//! written by fixtures/make_keras_classification_metrics.py): the threshold counts, the `*At*`
//! metrics, Keras's approximate AUC, the IoU family and FBetaScore, each updated with two
//! batches (the second weighted) and compared after each; plus names, reset and errors.

use keel_metrics::{
    metric_from_name, AucCurve, AucSummation, Average, ClassificationMetricKind, ConfusionCell, FBetaScore,
    FalseNegatives, FalsePositives, Iou, KerasAuc, LossKind, Metric, MetricSpec, MetricValue, MetricsError,
    PrecisionAtRecall, RecallAtPrecision, SensitivityAtSpecificity, SpecificityAtSensitivity, TrueNegatives,
    TruePositives,
};
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
    Tensor::from_vec(data, dims).unwrap().to_dtype(dtype).unwrap()
}

fn ids(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

fn average(v: &Value) -> Average {
    match v.as_str() {
        None => Average::None,
        Some("micro") => Average::Micro,
        Some("macro") => Average::Macro,
        Some("weighted") => Average::Weighted,
        Some(other) => panic!("average {other}"),
    }
}

/// The keel metric of a fixture case.
fn build(kind: &str, a: &Value) -> Box<dyn Metric> {
    let f = |k: &str| a[k].as_f64().unwrap();
    let thresholds = a["thresholds"].as_array().map(|t| t.iter().map(|x| x.as_f64().unwrap()).collect::<Vec<_>>());
    let nt = a["num_thresholds"].as_u64().map(|n| n as usize);
    macro_rules! count {
        ($t:ident) => {
            match thresholds {
                Some(t) => Box::new($t::new().thresholds(t)),
                None => Box::new($t::new()),
            }
        };
    }
    macro_rules! at {
        ($t:ident) => {
            match nt {
                Some(n) => Box::new($t::new(f("value")).num_thresholds(n)),
                None => Box::new($t::new(f("value"))),
            }
        };
    }
    match kind {
        "TruePositives" => count!(TruePositives),
        "FalsePositives" => count!(FalsePositives),
        "TrueNegatives" => count!(TrueNegatives),
        "FalseNegatives" => count!(FalseNegatives),
        "PrecisionAtRecall" => at!(PrecisionAtRecall),
        "RecallAtPrecision" => at!(RecallAtPrecision),
        "SensitivityAtSpecificity" => at!(SensitivityAtSpecificity),
        "SpecificityAtSensitivity" => at!(SpecificityAtSensitivity),
        "AUC" => {
            let curve = if a["curve"] == "PR" { AucCurve::Pr } else { AucCurve::Roc };
            let s = match a["summation_method"].as_str().unwrap() {
                "interpolation" => AucSummation::Interpolation,
                "minoring" => AucSummation::Minoring,
                _ => AucSummation::Majoring,
            };
            let m = KerasAuc::new().curve(curve).summation_method(s).from_logits(a["from_logits"] == true);
            Box::new(match nt {
                Some(n) => m.num_thresholds(n),
                None => m,
            })
        }
        "IoU" => Box::new(Iou::new(a["num_classes"].as_u64().unwrap() as usize, &ids(&a["target_class_ids"]))),
        "MeanIoU" => Box::new(
            Iou::mean(a["num_classes"].as_u64().unwrap() as usize)
                .sparse_y_pred(a["sparse_y_pred"].as_bool().unwrap_or(true)),
        ),
        "BinaryIoU" => Box::new(Iou::binary(&ids(&a["target_class_ids"]), f("threshold"))),
        "OneHotIoU" => {
            Box::new(Iou::one_hot(a["num_classes"].as_u64().unwrap() as usize, &ids(&a["target_class_ids"])))
        }
        "OneHotMeanIoU" => Box::new(Iou::one_hot_mean(a["num_classes"].as_u64().unwrap() as usize)),
        "FBetaScore" => Box::new(FBetaScore::new(average(&a["average"]), f("beta"), a["threshold"].as_f64())),
        "F1Score" => Box::new(FBetaScore::f1(average(&a["average"]), a["threshold"].as_f64())),
        other => panic!("unknown case kind {other}"),
    }
}

fn values(v: &MetricValue) -> Vec<f64> {
    match v {
        MetricValue::Scalar(x) => vec![*x],
        MetricValue::Vector(v) => v.clone(),
        MetricValue::Matrix(m) => m.data.clone(),
    }
}

#[test]
fn every_classification_metric_matches_keras() {
    let fx: Value = serde_json::from_str(include_str!("fixtures/keras_classification_metrics.json")).unwrap();
    let mut worst = 0.0f64;
    let cases = fx["cases"].as_array().unwrap();
    for (ci, c) in cases.iter().enumerate() {
        let kind = c["kind"].as_str().unwrap();
        let mut m = build(kind, &c["args"]);
        for (b, want) in c["batches"].as_array().unwrap().iter().zip(c["results"].as_array().unwrap()) {
            let int_labels = kind.contains("IoU") && !kind.starts_with("OneHot");
            let t = tensor(&b["y_true"], if int_labels { DType::I64 } else { DType::F32 });
            let p_dtype = if b["y_pred"].as_array().unwrap()[0].is_i64() { DType::I64 } else { DType::F32 };
            let p = tensor(&b["y_pred"], p_dtype);
            let w = (!b["sample_weight"].is_null()).then(|| tensor(&b["sample_weight"], DType::F32));
            m.update_state(&t, &p, w.as_ref()).unwrap();
            let want: Vec<f64> = match want.as_array() {
                Some(a) => a.iter().map(|x| x.as_f64().unwrap()).collect(),
                None => vec![want.as_f64().unwrap()],
            };
            let got = values(&m.value());
            assert_eq!(got.len(), want.len(), "case {ci} {kind} {}: value length", c["args"]);
            if want.len() > 1 {
                // a vector value: the scalar result is its first element or its mean
                assert!(m.result().is_finite());
            }
            for (g, w) in got.iter().zip(&want) {
                let rel = (g - w).abs() / w.abs().max(1.0);
                worst = worst.max(rel);
                assert!(rel < 1e-5, "case {ci} {kind} {}: keel {got:?}, Keras {want:?}", c["args"]);
            }
        }
    }
    println!("{} cases; largest relative difference from Keras: {worst:.2e}", cases.len());
}

fn t1(v: &[f32]) -> Tensor {
    Tensor::from_vec(v.to_vec(), v.len()).unwrap()
}

#[test]
fn reset_and_names() {
    let (t, p) = (t1(&[0.0, 1.0, 1.0, 0.0]), t1(&[0.2, 0.8, 0.4, 0.9]));
    let mut ms: Vec<Box<dyn Metric>> = vec![
        Box::new(TruePositives::new()),
        Box::new(FalsePositives::new()),
        Box::new(TrueNegatives::new()),
        Box::new(FalseNegatives::new()),
        Box::new(PrecisionAtRecall::new(0.5)),
        Box::new(RecallAtPrecision::new(0.5)),
        Box::new(SensitivityAtSpecificity::new(0.5)),
        Box::new(SpecificityAtSensitivity::new(0.5)),
        Box::new(KerasAuc::new()),
        Box::new(Iou::binary(&[0, 1], 0.5)),
    ];
    let names = [
        "true_positives",
        "false_positives",
        "true_negatives",
        "false_negatives",
        "precision_at_recall",
        "recall_at_precision",
        "sensitivity_at_specificity",
        "specificity_at_sensitivity",
        "auc",
        "binary_io_u",
    ];
    for (m, name) in ms.iter_mut().zip(names) {
        assert_eq!(m.name(), name);
        assert_eq!(m.result(), 0.0, "{name}: empty");
        m.update_state(&t, &p, None).unwrap();
        let once = m.result();
        assert!(once > 0.0, "{name}: {once}");
        m.reset_state();
        assert_eq!(m.result(), 0.0, "{name}: after reset");
        m.update_state(&t, &p, None).unwrap();
        assert_eq!(m.result(), once, "{name}: after reset and the same batch");
    }
    // one count per threshold
    let mut tp = TruePositives::new().thresholds(vec![0.3, 0.5, 0.85]);
    tp.update_state(&t, &p, None).unwrap();
    assert_eq!(tp.value(), MetricValue::Vector(vec![2.0, 1.0, 0.0]));
    assert_eq!(tp.result(), 2.0);
    // FBetaScore vector and reset
    let mut f = FBetaScore::new(Average::None, 1.0, None);
    let y = Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 1.0], [2, 2]).unwrap();
    let s = Tensor::from_vec(vec![0.9f32, 0.1, 0.3, 0.7], [2, 2]).unwrap();
    f.update_state(&y, &s, None).unwrap();
    assert!(matches!(f.value(), MetricValue::Vector(v) if v.len() == 2 && (v[0] - 1.0).abs() < 1e-6));
    f.reset_state();
    assert_eq!(f.result(), 0.0);
}

fn invalid_arg(r: keel_metrics::Result<()>) -> String {
    match r {
        Err(e @ MetricsError::InvalidArgument { .. }) => e.to_string(),
        other => panic!("expected an invalid argument error, got {other:?}"),
    }
}

#[test]
fn invalid_arguments_are_errors_at_the_first_update() {
    let (t, p) = (t1(&[0.0, 1.0]), t1(&[0.2, 0.8]));
    let msg = invalid_arg(PrecisionAtRecall::new(1.5).update_state(&t, &p, None));
    assert!(msg.contains("precision_at_recall") && msg.contains("recall") && msg.contains("1.5"), "{msg}");
    invalid_arg(RecallAtPrecision::new(-0.1).update_state(&t, &p, None));
    invalid_arg(SensitivityAtSpecificity::new(f64::NAN).update_state(&t, &p, None));
    invalid_arg(SpecificityAtSensitivity::new(0.5).num_thresholds(0).update_state(&t, &p, None));
    invalid_arg(TruePositives::with_threshold(1.2).update_state(&t, &p, None));
    invalid_arg(FalsePositives::new().thresholds(vec![]).update_state(&t, &p, None));
    invalid_arg(KerasAuc::new().num_thresholds(1).update_state(&t, &p, None));
    let msg = invalid_arg(Iou::new(3, &[0, 3]).update_state(&t, &p, None));
    assert!(msg.contains("target class id 3"), "{msg}");
    invalid_arg(
        Iou::mean(2)
            .sparse_y_pred(true)
            .with_name("m")
            .update_state(&t, &t1(&[0.0, 1.0]), None)
            .and(Iou::new(2, &[]).update_state(&t, &t, None)),
    );
    let (y, s) =
        (Tensor::from_vec(vec![1.0f32, 0.0], [1, 2]).unwrap(), Tensor::from_vec(vec![0.9f32, 0.1], [1, 2]).unwrap());
    invalid_arg(FBetaScore::new(Average::Binary, 1.0, None).update_state(&y, &s, None));
    invalid_arg(FBetaScore::new(Average::Macro, 0.0, None).update_state(&y, &s, None));
    invalid_arg(FBetaScore::new(Average::Macro, 1.0, Some(0.0)).update_state(&y, &s, None));
}

#[test]
fn bad_inputs_are_errors_and_change_nothing() {
    let (t, p) = (t1(&[0.0, 1.0, 1.0]), t1(&[0.2, 0.8, 0.6]));
    let mut tp = TruePositives::new();
    tp.update_state(&t, &p, None).unwrap();
    assert!(matches!(tp.update_state(&t, &t1(&[0.5, 0.5]), None), Err(MetricsError::ShapeMismatch { .. })));
    assert!(tp.update_state(&t, &t1(&[0.5, f32::NAN, 0.5]), None).is_err());
    assert!(tp.update_state(&t, &p, Some(&t1(&[1.0, 2.0]))).is_err());
    assert_eq!(tp.result(), 2.0);
    let mut auc = KerasAuc::new();
    assert!(auc.update_state(&t, &t1(&[0.1]), None).is_err());
    // IoU: labels outside 0..num_classes, non-integer labels and bad one-hot widths
    let mut iou = Iou::mean(3);
    let labels = Tensor::from_vec(vec![0i64, 1, 2], 3).unwrap();
    iou.update_state(&labels, &labels, None).unwrap();
    let r = iou.result();
    let e = iou.update_state(&Tensor::from_vec(vec![0i64, 3, 1], 3).unwrap(), &labels, None).unwrap_err();
    assert!(e.to_string().contains("label 3 in y_true"), "{e}");
    assert!(iou.update_state(&labels, &Tensor::from_vec(vec![0i64, -1, 1], 3).unwrap(), None).is_err());
    assert!(iou.update_state(&labels, &t1(&[0.0, 0.5, 1.0]), None).is_err());
    assert!(iou.update_state(&labels, &Tensor::from_vec(vec![0i64, 1], 2).unwrap(), None).is_err());
    assert_eq!(iou.result(), r);
    // ignore_class leaves those labels out, as Keras
    let mut ig = Iou::mean(3).ignore_class(Some(-1));
    ig.update_state(&Tensor::from_vec(vec![0i64, -1, 2], 3).unwrap(), &labels, None).unwrap();
    assert_eq!(ig.confusion_matrix().data.iter().sum::<f64>(), 2.0);
    let mut oh = Iou::one_hot_mean(3);
    assert!(oh.update_state(&Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 1.0], [2, 2]).unwrap(), &labels, None).is_err());
    // FBetaScore: 2-D inputs only, one width
    let mut f = FBetaScore::new(Average::Macro, 1.0, None);
    assert!(f.update_state(&t, &p, None).is_err());
    let y = Tensor::from_vec(vec![1.0f32, 0.0], [1, 2]).unwrap();
    f.update_state(&y, &y, None).unwrap();
    let y3 = Tensor::from_vec(vec![1.0f32, 0.0, 0.0], [1, 3]).unwrap();
    assert!(f.update_state(&y3, &y3, None).is_err());
}

#[test]
fn by_name_and_by_value() {
    for name in ["true_positives", "false_positives", "true_negatives", "false_negatives", "binary_io_u", "FBetaScore"]
    {
        let m = metric_from_name(name, LossKind::Other).unwrap();
        let spec: MetricSpec = name.parse().unwrap();
        assert_eq!(spec.name(), m.name(), "{name}");
        assert!(matches!(spec, MetricSpec::Classification(_)));
    }
    // "auc" keeps its meaning: keel's exact ROC AUC
    assert_eq!("auc".parse::<MetricSpec>().unwrap(), MetricSpec::Auc);
    assert!("precision_at_recall".parse::<MetricSpec>().is_err());
    let spec = MetricSpec::Classification(ClassificationMetricKind::PrecisionAtRecall(0.8));
    assert_eq!(spec.name(), "precision_at_recall");
    let mut set = std::collections::HashSet::new();
    set.insert(spec);
    assert!(set.contains(&MetricSpec::Classification(ClassificationMetricKind::PrecisionAtRecall(0.8))));
    assert!(!set.contains(&MetricSpec::Classification(ClassificationMetricKind::PrecisionAtRecall(0.7))));
    let cases = [
        ClassificationMetricKind::Count(ConfusionCell::FalseNegatives, 0.3),
        ClassificationMetricKind::RecallAtPrecision(0.5),
        ClassificationMetricKind::SensitivityAtSpecificity(0.5),
        ClassificationMetricKind::SpecificityAtSensitivity(0.5),
        ClassificationMetricKind::KerasAuc(AucCurve::Pr, AucSummation::Interpolation),
        ClassificationMetricKind::BinaryIou(0.5),
    ];
    let (t, p) = (t1(&[0.0, 1.0, 1.0, 0.0]), t1(&[0.2, 0.8, 0.4, 0.9]));
    for kind in cases {
        let mut m = MetricSpec::Classification(kind).build(LossKind::Other);
        assert_eq!(m.name(), kind.log_name());
        m.update_state(&t, &p, None).unwrap();
        assert!(m.result().is_finite());
    }
    let mut bad = ClassificationMetricKind::PrecisionAtRecall(2.0).build();
    assert!(bad.update_state(&t, &p, None).is_err());
    let y = Tensor::from_vec(vec![0i64, 2, 1], 3).unwrap();
    let mut miou = ClassificationMetricKind::MeanIou(3).build();
    miou.update_state(&y, &y, None).unwrap();
    assert!((miou.result() - 1.0).abs() < 1e-6);
}
