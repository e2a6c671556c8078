//! Keras 3's loss `reduction` against Keras 3.15.1 (fixtures/loss_reduction_fixtures.json, made
//! by fixtures/make_loss_reduction_fixtures.py: the loss under every reduction, with and
//! without sample weights, sequence and masked predictions, and TensorFlow's gradient wrt the
//! predictions, of the sum for "none"); f64 gradchecks of the non-default reductions (the
//! fused logits paths included); the head path; names, serde and errors.

mod common;
use common::{tensor_of, uniform};
use keel_autograd::{gradcheck, Tape, Var};
use keel_nn::{Activation, Head, Loss, LossFn, Reduction};
use keel_tensor::{DType, Device, Tensor};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/loss_reduction_fixtures.json")).unwrap()
}

/// `CategoricalCrossentropy` -> `categorical_crossentropy`.
fn keras_name(class: &str) -> String {
    let mut out = String::new();
    for (i, ch) in class.chars().enumerate() {
        if ch.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

fn loss_of(c: &Value) -> LossFn {
    let mut l = LossFn::from_name(&keras_name(c["class"].as_str().unwrap())).unwrap();
    l.from_logits = c["options"].get("from_logits").and_then(Value::as_bool).unwrap_or(false);
    l.reduction(Reduction::from_name(c["reduction"].as_str().unwrap()).unwrap())
}

/// The largest `|a - b| / (1 + |b|)`, after checking the shapes.
fn rel_diff(got: &Tensor, want: &Tensor, what: &str) -> f64 {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let g = got.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
    let w = want.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
    g.iter().zip(&w).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0.0, f64::max)
}

#[test]
fn every_reduction_matches_keras() {
    let fx = fixture();
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 130);
    let (mut worst_value, mut worst_grad) = (0.0f64, 0.0f64);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let loss = loss_of(c);
        assert_eq!(loss.reduction.name(), c["config"]["reduction"].as_str().unwrap(), "{name}");
        let (t, p) = (tensor_of(&c["y_true"]), tensor_of(&c["y_pred"]));
        let w = c.get("sample_weight").filter(|w| !w.is_null()).map(tensor_of);
        let mask = c.get("mask").filter(|m| !m.is_null()).map(tensor_of);
        let tape = Tape::new();
        let pv = tape.leaf(p);
        let value = loss.compute_masked(&pv, &t, w.as_ref(), mask.as_ref()).unwrap();
        let want = tensor_of(&c["loss"]);
        let d = rel_diff(value.value(), &want, name);
        assert!(d <= 1e-6, "{name}: value differs by {d}: keel {:?} vs keras {:?}", value.value(), want);
        worst_value = worst_value.max(d);
        // the gradient of the sum for "none" (TensorFlow's gradient of a vector)
        let root = if value.rank() == 0 { value } else { value.sum_all().unwrap() };
        let g = tape.backward(&root).unwrap();
        let d = rel_diff(g.get_var(&pv).unwrap(), &tensor_of(&c["grad"]), name);
        assert!(d <= 1e-6, "{name}: d/dy_pred differs by {d}");
        worst_grad = worst_grad.max(d);
    }
    println!("{} cases: max relative difference, values {worst_value:.3e}, gradients {worst_grad:.3e}", cases.len());
}

/// A softmax (sigmoid) head fuses with the categorical (binary) cross-entropy under every
/// reduction: the same values and gradients wrt the logits as the loss on the head's output.
#[test]
fn head_fusion_matches_the_output_path_for_every_reduction() {
    let logits = uniform(3, &[5, 4]).mul_scalar(3.0).unwrap();
    let labels = Tensor::from_vec(vec![0i64, 3, 1, 1, 2], 5).unwrap();
    let probs_t = Tensor::rand_uniform(9, 0.0, 1.0, (5, 4), DType::F64, &Device::Cpu).unwrap();
    let w = Tensor::from_vec(vec![1.0f64, 0.0, 2.0, 0.5, 1.5], 5).unwrap();
    for r in Reduction::ALL {
        for (loss, act, t) in [
            (Loss::SparseCategoricalCrossentropy, Activation::Softmax, &labels),
            (Loss::CategoricalCrossentropy, Activation::Softmax, &probs_t),
            (Loss::BinaryCrossentropy, Activation::Sigmoid, &probs_t),
        ] {
            for sw in [None, Some(&w)] {
                let loss = loss.reduction(r);
                let run = |fused: bool| {
                    let tape = Tape::new();
                    let x = tape.leaf(logits.clone());
                    let v = if fused {
                        loss.compute_head(&Head::new(x.clone(), Some(act)), t, sw).unwrap()
                    } else {
                        loss.compute(&act.apply(&x).unwrap(), t, sw).unwrap()
                    };
                    let s = if v.rank() == 0 { v.clone() } else { v.sum_all().unwrap() };
                    let g = tape.backward(&s).unwrap().get_var(&x).unwrap().clone();
                    (v.value().clone(), g)
                };
                let ((v1, g1), (v2, g2)) = (run(true), run(false));
                let what = format!("{loss:?} weighted {}", sw.is_some());
                assert!(rel_diff(&v1, &v2, &what) < 1e-9, "{what}: {v1:?} vs {v2:?}");
                assert!(rel_diff(&g1, &g2, &what) < 1e-9, "{what}: gradients");
                if r == Reduction::None {
                    assert_eq!(v1.dims(), [5], "{what}");
                }
            }
        }
    }
}

#[test]
fn gradchecks_in_f64() {
    let x = uniform(11, &[4, 3]);
    let dense = Tensor::rand_uniform(12, 0.0, 1.0, (4, 3), DType::F64, &Device::Cpu).unwrap();
    let labels = Tensor::from_vec(vec![2i64, 0, 1, 2], 4).unwrap();
    let w = Tensor::from_vec(vec![0.5f64, 2.0, 0.0, 1.0], 4).unwrap();
    for r in [Reduction::Sum, Reduction::MeanWithSampleWeight, Reduction::None] {
        for (loss, t) in [
            (Loss::MeanSquaredError.reduction(r), &dense),
            (Loss::BinaryCrossentropy.from_logits(true).reduction(r), &dense),
            (Loss::SparseCategoricalCrossentropy.from_logits(true).reduction(r), &labels),
            (Loss::CategoricalCrossentropy.from_logits(true).label_smoothing(0.1).reduction(r), &dense),
        ] {
            for sw in [None, Some(&w)] {
                let f = |v: &[Var]| Ok(loss.compute(&v[0], t, sw).expect("loss"));
                gradcheck(f, std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("{loss:?}: {e}"));
            }
        }
        // probabilities, sequences and a mask
        let loss = Loss::CategoricalCrossentropy.reduction(r);
        let f = |v: &[Var]| Ok(loss.compute(&v[0].softmax(-1)?, &dense, Some(&w)).expect("loss"));
        gradcheck(f, std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("{loss:?}: {e}"));
        let seq = uniform(13, &[2, 3, 4]);
        let seq_t = Tensor::rand_uniform(14, 0.0, 1.0, (2, 3, 4), DType::F64, &Device::Cpu).unwrap();
        let mask = Tensor::from_vec(vec![1.0f64, 1.0, 0.0, 1.0, 0.0, 0.0], (2, 3)).unwrap();
        let loss = Loss::BinaryCrossentropy.from_logits(true).reduction(r);
        let sw = Tensor::from_vec(vec![0.5f64, 2.0], 2).unwrap();
        let f = |v: &[Var]| Ok(loss.compute_masked(&v[0], &seq_t, Some(&sw), Some(&mask)).expect("loss"));
        gradcheck(f, std::slice::from_ref(&seq)).unwrap_or_else(|e| panic!("{loss:?} masked: {e}"));
    }
}

#[test]
fn names_serde_and_errors() {
    for r in Reduction::ALL {
        assert_eq!(Reduction::from_name(r.name()).unwrap(), r);
        assert_eq!(r.name().parse::<Reduction>().unwrap(), r);
        assert_eq!(r.is_scalar(), r != Reduction::None);
    }
    assert_eq!(Reduction::default(), Reduction::SumOverBatchSize);
    assert_eq!(LossFn::from(Loss::MeanSquaredError).reduction, Reduction::SumOverBatchSize);
    let err = Reduction::from_name("avg").unwrap_err().to_string();
    assert!(err.contains("avg") && err.contains("mean_with_sample_weight"), "{err}");
    // serde: the Keras key and names; null is "none"; configs without the key read the default
    let l = Loss::MeanSquaredError.reduction(Reduction::Sum);
    let v = serde_json::to_value(l).unwrap();
    assert_eq!(v["reduction"], "sum");
    assert_eq!(serde_json::from_value::<LossFn>(v.clone()).unwrap(), l);
    let mut null = v.clone();
    null["reduction"] = Value::Null;
    assert_eq!(serde_json::from_value::<LossFn>(null).unwrap().reduction, Reduction::None);
    let mut old = v.clone();
    old.as_object_mut().unwrap().remove("reduction");
    assert_eq!(serde_json::from_value::<LossFn>(old).unwrap(), LossFn::from(Loss::MeanSquaredError));
    let mut bad = v;
    bad["reduction"] = "avg".into();
    assert!(serde_json::from_value::<LossFn>(bad).unwrap_err().to_string().contains("avg"));
    // "none" keeps the per-sample shape; rank-1 predictions give one value per sample
    let p = Var::constant(Tensor::from_vec(vec![1.0f32, 2.0, 3.0], 3).unwrap());
    let y = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
    let none = Loss::MeanSquaredError.reduction(Reduction::None).compute(&p, &y, None).unwrap();
    assert_eq!(none.value().to_vec::<f32>().unwrap(), [1.0, 4.0, 9.0]);
    let sum = Loss::MeanSquaredError.reduction(Reduction::Sum).compute(&p, &y, None).unwrap();
    assert_eq!(sum.value().to_vec::<f32>().unwrap(), [14.0]);
    // mean_with_sample_weight with weights summing to 0 is 0 (Keras's divide_no_nan)
    let zero = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
    let l = Loss::MeanSquaredError.reduction(Reduction::MeanWithSampleWeight).compute(&p, &y, Some(&zero)).unwrap();
    assert_eq!(l.value().to_vec::<f32>().unwrap(), [0.0]);
    // a mask that keeps nothing gives 0 under every reduction
    let p2 = Var::constant(Tensor::ones((2, 3, 2), DType::F32, &Device::Cpu).unwrap());
    let y2 = Tensor::zeros((2, 3, 2), DType::F32, &Device::Cpu).unwrap();
    let nothing = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    for r in Reduction::ALL {
        let l = Loss::MeanSquaredError.reduction(r).compute_masked(&p2, &y2, None, Some(&nothing)).unwrap();
        assert!(l.value().to_vec::<f32>().unwrap().iter().all(|&v| v == 0.0), "{r}");
    }
}
