//! Scalers, Normalization, to_categorical, class_weight and train_test_split
//! against scikit-learn reference values (tests/fixtures/make_preprocessing.py).

mod common;
use common::assert_close;
use keel_data::datasets;
use keel_data::preprocessing::*;
use keel_tensor::{DType, Tensor};
use serde_json::Value;

fn fixture() -> Value {
    let p = common::crate_dir().join("tests/fixtures/preprocessing.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn vecf(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(vecf).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        _ => panic!("bad fixture"),
    }
}

fn first_rows(t: &Tensor, n: usize) -> Vec<f64> {
    t.narrow(0, 0, n).unwrap().to_vec_f64().unwrap()
}

#[test]
fn standard_scaler_matches_sklearn() {
    let f = fixture();
    let (x, _) = datasets::wine().unwrap();
    let mut s = StandardScaler::new();
    let z = s.fit_transform(&x).unwrap();
    assert_eq!(z.dtype(), DType::F32);
    assert_close(&s.mean, &vecf(&f["wine_standard"]["mean"]), 1e-9, "mean");
    assert_close(&s.scale, &vecf(&f["wine_standard"]["scale"]), 1e-9, "scale");
    let xd = x.to_dtype(DType::F64).unwrap();
    let zd = s.transform(&xd).unwrap();
    assert_close(&first_rows(&zd, 3), &vecf(&f["wine_standard"]["first_rows"]), 1e-9, "rows");
    let back = s.inverse_transform(&zd).unwrap();
    assert_close(&back.to_vec_f64().unwrap(), &xd.to_vec_f64().unwrap(), 1e-9, "inverse");
    // zero variance -> scale 1
    let c = Tensor::from_vec(vec![1.0f64, 5.0, 2.0, 5.0, 4.0, 5.0], (3, 2)).unwrap();
    let z = StandardScaler::new().fit_transform(&c).unwrap();
    assert_close(&z.to_vec_f64().unwrap(), &vecf(&f["const_standard"]), 1e-12, "const");
}

#[test]
fn minmax_scaler_matches_sklearn() {
    let f = fixture();
    let (x, _) = datasets::wine().unwrap();
    let xd = x.to_dtype(DType::F64).unwrap();
    let mut m = MinMaxScaler::with_range(-1.0, 2.0).unwrap();
    let z = m.fit_transform(&xd).unwrap();
    assert_close(&m.scale, &vecf(&f["wine_minmax_m1_2"]["scale"]), 1e-12, "scale");
    assert_close(&m.min, &vecf(&f["wine_minmax_m1_2"]["min"]), 1e-9, "min");
    assert_close(&first_rows(&z, 3), &vecf(&f["wine_minmax_m1_2"]["first_rows"]), 1e-9, "rows");
    let back = m.inverse_transform(&z).unwrap();
    assert_close(&back.to_vec_f64().unwrap(), &xd.to_vec_f64().unwrap(), 1e-9, "inverse");
    let c = Tensor::from_vec(vec![1.0f64, 5.0, 2.0, 5.0, 4.0, 5.0], (3, 2)).unwrap();
    let z = MinMaxScaler::new().fit_transform(&c).unwrap();
    assert_close(&z.to_vec_f64().unwrap(), &vecf(&f["const_minmax"]), 1e-12, "const");
    assert!(MinMaxScaler::with_range(1.0, 1.0).is_err());
}

#[test]
fn scaler_errors() {
    let s = StandardScaler::new();
    let x = Tensor::from_vec(vec![1.0f32, 2.0], (1, 2)).unwrap();
    assert!(s.transform(&x).unwrap_err().to_string().contains("not fitted"));
    let mut s = StandardScaler::new();
    s.fit(&x).unwrap();
    let y = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], (1, 3)).unwrap();
    assert!(s.transform(&y).unwrap_err().to_string().contains("2 features"));
    let v = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], 3).unwrap();
    assert!(s.transform(&v).is_err());
}

#[test]
fn normalization_by_hand() {
    // features: [1, 3] -> mean 2, var 1 ; [10, 10] -> var 0 -> divide by eps
    let x = Tensor::from_vec(vec![1.0f32, 10.0, 3.0, 10.0], (2, 1, 2)).unwrap();
    let mut n = Normalization::new();
    n.adapt(&x).unwrap();
    assert_eq!(n.mean, vec![2.0, 10.0]);
    assert_eq!(n.variance, vec![1.0, 0.0]);
    let z = n.call(&x).unwrap();
    assert_eq!(z.dims(), &[2, 1, 2]);
    assert_eq!(z.to_vec::<f32>().unwrap(), vec![-1.0, 0.0, 1.0, 0.0]);
    let back = n.clone().invert().call(&z).unwrap();
    assert_eq!(back.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
    let k = Normalization::with_stats(vec![1.0], vec![4.0]).unwrap();
    let z = k.call(&Tensor::from_vec(vec![5.0f64], (1, 1)).unwrap()).unwrap();
    assert_eq!(z.to_vec::<f64>().unwrap(), vec![2.0]);
    assert!(Normalization::new().call(&x).is_err());
    assert!(Normalization::with_stats(vec![1.0], vec![-1.0]).is_err());
}

#[test]
fn to_categorical_like_keras() {
    let y = Tensor::from_vec(vec![0u8, 2, 1], 3).unwrap();
    let o = to_categorical(&y, None).unwrap();
    assert_eq!(o.dims(), &[3, 3]);
    assert_eq!(o.to_vec::<f32>().unwrap(), vec![1., 0., 0., 0., 0., 1., 0., 1., 0.]);
    let y2 = Tensor::from_vec(vec![1i64, 0], (2, 1)).unwrap();
    assert_eq!(to_categorical(&y2, Some(4)).unwrap().dims(), &[2, 4]);
    assert!(to_categorical(&y, Some(2)).is_err());
    let bad = Tensor::from_vec(vec![0.5f32], 1).unwrap();
    assert!(to_categorical(&bad, None).is_err());
    let neg = Tensor::from_vec(vec![-1i64], 1).unwrap();
    assert!(to_categorical(&neg, None).is_err());
}

#[test]
fn to_categorical_refuses_absurd_sizes_and_bad_labels() {
    // a huge class id used to abort the process (allocation failure) or panic ("capacity
    // overflow"). (3e9 classes, 24 GB, is not tested: whether that fits depends on the machine.)
    for big in [1e17, 4.6e18, 1e30] {
        let y = Tensor::from_vec(vec![0f64, big], 2).unwrap();
        let e = to_categorical(&y, None).unwrap_err().to_string();
        assert!(e.contains("to_categorical") && e.contains("one-hot"), "{big}: {e}");
    }
    let y = Tensor::from_vec(vec![0i64, 1], 2).unwrap();
    let e = to_categorical(&y, Some(usize::MAX)).unwrap_err().to_string();
    assert!(e.contains("one-hot"), "{e}");
    for bad in [-1.0, -0.5, 0.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let y = Tensor::from_vec(vec![0f64, bad], 2).unwrap();
        let e = to_categorical(&y, None).unwrap_err().to_string();
        assert!(e.contains("label 1"), "{bad}: {e}");
    }
    // empty labels with num_classes, and zero classes for no labels, still work
    let y = Tensor::from_vec(Vec::<i64>::new(), 0).unwrap();
    assert_eq!(to_categorical(&y, Some(3)).unwrap().dims(), &[0, 3]);
}

#[test]
fn class_weight_matches_sklearn() {
    let f = fixture();
    let (_, y) = datasets::wine().unwrap();
    let w = class_weight(&y, "balanced").unwrap();
    let got: Vec<f64> = w.values().copied().collect();
    assert_close(&got, &vecf(&f["wine_class_weight"]), 1e-12, "wine");
    let (_, y) = datasets::breast_cancer().unwrap();
    let oh = to_categorical(&y, None).unwrap();
    let w: Vec<f64> = class_weight(&oh, "balanced").unwrap().values().copied().collect();
    assert_close(&w, &vecf(&f["breast_cancer_class_weight"]), 1e-12, "bc");
    assert!(class_weight(&y, "auto").is_err());
}

#[test]
fn train_test_split_stratified_and_deterministic() {
    let (x, y) = datasets::iris().unwrap();
    let (xtr, xte, ytr, yte) = train_test_split(&x, &y, 0.2, 42, true).unwrap();
    assert_eq!(xtr.dims(), &[120, 4]);
    assert_eq!(xte.dims(), &[30, 4]);
    let yt = yte.to_vec::<i64>().unwrap();
    for c in 0..3 {
        assert_eq!(yt.iter().filter(|&&l| l == c).count(), 10);
    }
    assert_eq!(ytr.dims(), &[120]);
    // deterministic, and rows stay paired with labels
    let again = train_test_split(&x, &y, 0.2, 42, true).unwrap();
    assert_eq!(again.1.to_vec::<f32>().unwrap(), xte.to_vec::<f32>().unwrap());
    let other = train_test_split(&x, &y, 0.2, 43, true).unwrap();
    assert_ne!(other.1.to_vec::<f32>().unwrap(), xte.to_vec::<f32>().unwrap());
    let xs = x.to_vec::<f32>().unwrap();
    let ys = y.to_vec::<i64>().unwrap();
    let xt = xte.to_vec::<f32>().unwrap();
    for (i, row) in xt.chunks(4).enumerate() {
        let src = xs.chunks(4).position(|r| r == row).unwrap();
        assert_eq!(ys[src], yt[i]);
    }
    // union of both parts is a permutation of the rows
    let mut all: Vec<i64> = ytr.to_vec::<i64>().unwrap();
    all.extend(yt);
    all.sort();
    let mut ys2 = ys.clone();
    ys2.sort();
    assert_eq!(all, ys2);
    // unbalanced stratification keeps the proportion (breast cancer 212/357)
    let (x, y) = datasets::breast_cancer().unwrap();
    let (_, _, _, yte) = train_test_split(&x, &y, 0.25, 0, true).unwrap();
    let yt = yte.to_vec::<i64>().unwrap();
    assert_eq!(yt.len(), 143);
    let ones = yt.iter().filter(|&&l| l == 1).count();
    assert!(ones == 89 || ones == 90, "{ones}");
    // plain split and errors
    let (a, b, _, _) = train_test_split(&x, &y, 100.0, 1, false).unwrap();
    assert_eq!((a.dims()[0], b.dims()[0]), (469, 100));
    assert!(train_test_split(&x, &y, 0.0, 1, false).is_err());
    assert!(train_test_split(&x, &y, 569.0, 1, false).is_err());
    assert_eq!(train_test_split(&x, &y, 568.0, 1, false).unwrap().1.dims()[0], 568);
    assert_eq!(train_test_split(&x, &y, 2.0, 1, false).unwrap().1.dims()[0], 2);
    // like scikit-learn: a fraction must be in (0, 1), a count a whole number of rows in [2, N - 1]
    // (1.0 used to mean a 1-row test set, and 1.5 was truncated to 1)
    for bad in [1.0, 1.5, 100.25, -0.5, f64::NAN, f64::INFINITY] {
        let e = train_test_split(&x, &y, bad, 1, false).unwrap_err().to_string();
        assert!(e.contains("test_size"), "{bad}: {e}");
    }
    let y1 = Tensor::from_vec(vec![0i64, 1, 1, 1], 4).unwrap();
    let x1 = Tensor::zeros((4, 1), DType::F32, &keel_tensor::Device::Cpu).unwrap();
    assert!(train_test_split(&x1, &y1, 0.5, 1, true).unwrap_err().to_string().contains("class 0"));
}
