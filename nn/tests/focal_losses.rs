//! BinaryFocalCrossentropy and CategoricalFocalCrossentropy against Keras 3.15.1
//! (fixtures/focal_fixtures.json, made by fixtures/make_focal_fixtures.py: the loss and
//! TensorFlow's gradient wrt the predictions), f64 gradchecks, names and option checks.

mod common;
use common::{assert_close, tensor_of};
use keel_autograd::{gradcheck, Tape, Var};
use keel_nn::{Loss, LossFn};
use keel_tensor::{DType, Device, Tensor};
use serde_json::Value;

fn loss_of(c: &Value) -> LossFn {
    let o = &c["options"];
    let class = c["class"].as_str().unwrap();
    let mut l = LossFn::from(Loss::from_name(&keras_name(class)).unwrap());
    if let Some(b) = o.get("from_logits").and_then(Value::as_bool) {
        l.from_logits = b;
    }
    if let Some(s) = o.get("label_smoothing").and_then(Value::as_f64) {
        l = l.label_smoothing(s);
    }
    if let Some(g) = o.get("gamma").and_then(Value::as_f64) {
        l = l.gamma(g);
    }
    if let Some(a) = o.get("alpha").and_then(Value::as_f64) {
        l = l.alpha(a);
    }
    if let Some(b) = o.get("apply_class_balancing").and_then(Value::as_bool) {
        l = l.apply_class_balancing(b);
    }
    l
}

/// `BinaryFocalCrossentropy` -> `binary_focal_crossentropy`.
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

#[test]
fn values_and_gradients_match_keras() {
    let v: Value = serde_json::from_str(include_str!("fixtures/focal_fixtures.json")).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 9);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let loss = loss_of(c);
        assert_eq!(loss.loss.name(), keras_name(c["class"].as_str().unwrap()));
        let (t, p) = (tensor_of(&c["y_true"]), tensor_of(&c["y_pred"]));
        let w = c.get("sample_weight").filter(|w| !w.is_null()).map(tensor_of);
        let tape = Tape::new();
        let pv = tape.leaf(p);
        let value = loss.compute(&pv, &t, w.as_ref()).unwrap();
        let got = value.value().to_vec::<f32>().unwrap()[0];
        let want = c["loss"].as_f64().unwrap() as f32;
        assert!((got - want).abs() <= 2e-6 * (1.0 + want.abs()), "{name}: keel {got} vs keras {want}");
        let g = tape.backward(&value).unwrap();
        assert_close(g.get_var(&pv).unwrap(), &tensor_of(&c["grad"]), 1e-5, &format!("{name} d/dy_pred"));
    }
}

#[test]
fn gradchecks_in_f64() {
    let dev = Device::Cpu;
    let t = Tensor::from_vec(vec![1.0f64, 0.0, 1.0, 0.0, 0.0, 1.0], (3, 2)).unwrap();
    let logits = Tensor::rand_normal(4, 0.0, 1.5, (3, 2), DType::F64, &dev).unwrap();
    for loss in [
        Loss::BinaryFocalCrossentropy.from_logits(true),
        Loss::BinaryFocalCrossentropy.from_logits(true).apply_class_balancing(true).gamma(3.0),
        Loss::CategoricalFocalCrossentropy.from_logits(true).label_smoothing(0.1),
        Loss::CategoricalFocalCrossentropy.from_logits(true).gamma(1.0).alpha(0.7),
    ] {
        let f = |v: &[Var]| Ok(loss.compute(&v[0], &t, None).expect("loss"));
        gradcheck(f, std::slice::from_ref(&logits)).unwrap_or_else(|e| panic!("{loss:?}: {e}"));
    }
}

#[test]
fn options_are_checked_and_names_resolve() {
    assert_eq!(Loss::from_name("binary_focal_crossentropy").unwrap(), Loss::BinaryFocalCrossentropy);
    assert_eq!(Loss::from_name("CategoricalFocalCrossentropy").unwrap(), Loss::CategoricalFocalCrossentropy);
    let (p, t) = (
        Var::constant(Tensor::from_vec(vec![0.5f32, 0.5], (2, 1)).unwrap()),
        Tensor::ones((2, 1), DType::F32, &Device::Cpu).unwrap(),
    );
    for bad in [
        LossFn::from(Loss::BinaryFocalCrossentropy).gamma(-1.0),
        LossFn::from(Loss::CategoricalFocalCrossentropy).gamma(f64::NAN),
    ] {
        let err = bad.compute(&p, &t, None).unwrap_err().to_string();
        assert!(err.contains("gamma"), "{err}");
    }
    // gamma 0 and no balancing: the plain binary cross-entropy
    let q = Var::constant(Tensor::from_vec(vec![0.2f32, 0.9, 0.6], (3, 1)).unwrap());
    let y = Tensor::from_vec(vec![0.0f32, 1.0, 0.0], (3, 1)).unwrap();
    let focal = LossFn::from(Loss::BinaryFocalCrossentropy).gamma(0.0).compute(&q, &y, None).unwrap();
    let plain = Loss::BinaryCrossentropy.compute(&q, &y, None).unwrap();
    let (a, b) = (focal.value().to_vec::<f32>().unwrap()[0], plain.value().to_vec::<f32>().unwrap()[0]);
    assert!((a - b).abs() < 1e-6, "{a} vs {b}");
}
