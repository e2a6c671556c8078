//! Keras's `top_k` / `class_id` Precision and Recall and the multi-label AUC given to
//! `compile` by value: `evaluate` streams them over batches and logs the value the streaming
//! metric gives on all the predictions at once.

use keel_metrics::{AucCurve, AucSummation, ClassificationMetricKind, KerasAuc, Metric, Precision, Recall};
use keel_nn::{Activation, Dense, Loss};
use keel_optim::Adam;
use keel_tensor::{DType, Device, Tensor};
use keel_train::{Fit, MetricSpec, Sequential};

#[test]
fn compiled_option_metrics_log_what_the_streaming_metrics_give() {
    let x = Tensor::rand_uniform(3, -1.0, 1.0, (40, 4), DType::F32, &Device::Cpu).unwrap();
    let y = Tensor::rand_uniform(4, 0.0, 1.0, (40, 3), DType::F32, &Device::Cpu)
        .unwrap()
        .gt(&Tensor::scalar(0.5f32))
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let mut m = Sequential::with_seed(5);
    m.add(Dense::new(8).activation(Activation::Relu).input_shape([4]));
    m.add(Dense::new(3).activation(Activation::Sigmoid));
    static LW: [f64; 3] = [1.0, 0.5, 2.0];
    let metrics = [
        MetricSpec::Classification(ClassificationMetricKind::Precision {
            threshold: None,
            top_k: Some(1),
            class_id: None,
        }),
        MetricSpec::Classification(ClassificationMetricKind::Recall {
            threshold: None,
            top_k: Some(2),
            class_id: Some(2),
        }),
        MetricSpec::Classification(ClassificationMetricKind::KerasAucWith {
            curve: AucCurve::Roc,
            summation: AucSummation::Interpolation,
            multi_label: true,
            num_labels: None,
            label_weights: Some(&LW),
        }),
    ];
    m.compile(Adam::new(0.02), Loss::BinaryCrossentropy, &metrics).unwrap();
    m.fit(&x, &y, Fit::new().epochs(2).batch_size(16).verbose(0)).unwrap();
    let logs = m.evaluate_all(&x, &y, 16).unwrap();
    let names: Vec<&str> = logs.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(names, ["loss", "precision", "recall", "auc"]);

    let p = m.predict(&x, 16).unwrap();
    let mut want: Vec<Box<dyn Metric>> = vec![
        Box::new(Precision::new().top_k(1)),
        Box::new(Recall::new().top_k(2).class_id(2)),
        Box::new(KerasAuc::new().multi_label(true).label_weights(LW.to_vec())),
    ];
    for (w, (name, got)) in want.iter_mut().zip(&logs[1..]) {
        w.update_state(&y, &p, None).unwrap();
        assert!((w.result() - got).abs() < 1e-9, "{name}: evaluate {got}, streaming {}", w.result());
    }
}
