//! Regression tests for review findings: scaler constant-feature detection and
//! NaN handling, `[N, 1]` labels, `to_categorical(num_classes = 0)`, and the
//! image-folder loader's hidden folders and `class_names` subsets.

mod common;
use common::assert_close;
use keel_data::preprocessing::*;
use keel_tensor::Tensor;

fn col(v: Vec<f64>) -> Tensor {
    let n = v.len();
    Tensor::from_vec(v, (n, 1)).unwrap()
}

#[test]
fn standard_scaler_constant_feature_uses_sklearn_rule() {
    // The mean of a constant 1e6 + 0.1 column rounds, leaving a tiny variance: still constant.
    let x = col(vec![1e6 + 0.1; 10]);
    let mut s = StandardScaler::new();
    let z = s.fit_transform(&x).unwrap().to_vec_f64().unwrap();
    assert_eq!(s.scale, [1.0], "var {:?}", s.var);
    assert!(z.iter().all(|v| v.abs() < 1e-9), "{z:?}");
    // Values one ulp apart at 1e6: a variance within rounding error of zero is constant.
    let a = 1e6 + 0.1;
    let z = s.fit_transform(&col(vec![a, f64::from_bits(a.to_bits() + 1)])).unwrap().to_vec_f64().unwrap();
    assert!(s.var[0] > 0.0);
    assert_eq!(s.scale, [1.0], "var {:?}", s.var);
    assert!(z.iter().all(|v| v.abs() < 1e-9), "{z:?}");
    // A tiny but genuinely varying feature keeps its scale.
    let x = col(vec![1e-20, 3e-20]);
    let z = s.fit_transform(&x).unwrap().to_vec_f64().unwrap();
    assert_close(&s.scale, &[1e-20], 1e-32, "scale");
    assert_close(&z, &[-1.0, 1.0], 1e-12, "z");
    // An exactly constant feature is only centred.
    let z = s.fit_transform(&col(vec![5.0, 5.0, 5.0])).unwrap().to_vec_f64().unwrap();
    assert_eq!((s.mean.clone(), s.var.clone(), s.scale.clone(), z), (vec![5.0], vec![0.0], vec![1.0], vec![0.0; 3]));
}

#[test]
fn standard_scaler_ignores_nan_in_fit() {
    let x = Tensor::from_vec(vec![1.0, 10.0, f64::NAN, 20.0, 3.0, f64::NAN], (3, 2)).unwrap();
    let mut s = StandardScaler::new();
    let z = s.fit_transform(&x).unwrap().to_vec_f64().unwrap();
    assert_close(&s.mean, &[2.0, 15.0], 1e-12, "mean");
    assert_close(&s.var, &[1.0, 25.0], 1e-12, "var");
    assert_close(&s.scale, &[1.0, 5.0], 1e-12, "scale");
    assert_eq!(s.n_samples_seen, [2, 2]);
    assert_close(&[z[0], z[1], z[3], z[4]], &[-1.0, -1.0, 1.0, 1.0], 1e-12, "z");
    assert!(z[2].is_nan() && z[5].is_nan(), "{z:?}");
    // An all-NaN feature: NaN statistics, scale 1, NaN output; the other feature is unaffected.
    let x = Tensor::from_vec(vec![f64::NAN, 1.0, f64::NAN, 3.0], (2, 2)).unwrap();
    let z = s.fit_transform(&x).unwrap().to_vec_f64().unwrap();
    assert!(s.mean[0].is_nan() && s.var[0].is_nan(), "{s:?}");
    assert_eq!(s.scale[0], 1.0);
    assert_eq!(s.n_samples_seen, [0, 2]);
    assert!(z[0].is_nan() && z[2].is_nan(), "{z:?}");
    assert_close(&[z[1], z[3]], &[-1.0, 1.0], 1e-12, "z");
}

#[test]
fn min_max_scaler_ignores_nan_like_sklearn() {
    let x = Tensor::from_vec(vec![1.0, f64::NAN, f64::NAN, f64::NAN, 3.0, f64::NAN], (3, 2)).unwrap();
    let mut s = MinMaxScaler::new();
    let z = s.fit_transform(&x).unwrap().to_vec_f64().unwrap();
    assert_eq!(s.data_min[0], 1.0);
    assert_eq!(s.data_max[0], 3.0);
    // all-NaN feature: NaN min/max (numpy's nanmin), not +-inf
    assert!(s.data_min[1].is_nan() && s.data_max[1].is_nan(), "{s:?}");
    assert_eq!(z[0], 0.0);
    assert!(z[2].is_nan());
    assert_eq!(z[4], 1.0);
    assert!(z[1].is_nan() && z[3].is_nan() && z[5].is_nan());
}

#[test]
fn column_labels_are_class_ids() {
    let y = Tensor::from_vec(vec![0i64, 0, 0, 1], (4, 1)).unwrap();
    assert_eq!(labels_to_vec(&y, "test").unwrap(), [0, 0, 0, 1]);
    let w = class_weight(&y, "balanced").unwrap();
    assert_eq!(w.len(), 2);
    assert_close(&[w[&0], w[&1]], &[4.0 / 6.0, 4.0 / 2.0], 1e-12, "class_weight");
    // float [N, 1] too
    let yf = Tensor::from_vec(vec![2.0f32, 0.0, 2.0], (3, 1)).unwrap();
    assert_eq!(labels_to_vec(&yf, "test").unwrap(), [2, 0, 2]);
    // one-hot [N, k > 1] stays argmax
    let oh = Tensor::from_vec(vec![1f32, 0., 0., 1., 0., 1.], (3, 2)).unwrap();
    assert_eq!(labels_to_vec(&oh, "test").unwrap(), [0, 1, 1]);
    // stratified split sees both classes of a [N, 1] column
    let x = Tensor::from_vec((0..8).map(|i| i as f32).collect::<Vec<_>>(), (8, 1)).unwrap();
    let y = Tensor::from_vec(vec![0i64, 0, 0, 0, 1, 1, 1, 1], (8, 1)).unwrap();
    let (_, _, ytr, yte) = train_test_split(&x, &y, 0.5, 3, true).unwrap();
    let mut te = yte.to_vec::<i64>().unwrap();
    te.sort();
    assert_eq!(te, [0, 0, 1, 1]);
    assert_eq!(ytr.dims(), [4, 1]);
}

#[test]
fn to_categorical_zero_classes_infers() {
    let y = Tensor::from_vec(vec![0i64, 2, 1], 3).unwrap();
    let a = to_categorical(&y, Some(0)).unwrap();
    assert_eq!(a.dims(), [3, 3]);
    assert_eq!(a.to_vec::<f32>().unwrap(), to_categorical(&y, None).unwrap().to_vec::<f32>().unwrap());
}

#[cfg(feature = "image")]
mod image_folder {
    use super::common;
    use keel_data::image::{image_dataset_from_directory, write_png, LabelMode};
    use keel_tensor::Tensor;
    use std::path::Path;

    fn png(path: &Path, v: f32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_png(
            path,
            &Tensor::from_vec(vec![v; 4 * 3], (2, 2, 3)).unwrap().to_dtype(keel_tensor::DType::U8).unwrap(),
        )
        .unwrap();
    }

    fn tree(name: &str) -> common::TempDir {
        let d = common::temp_dir(name);
        png(&d.join("a/a0.png"), 10.0);
        png(&d.join("b/b0.png"), 20.0);
        png(&d.join("b/b1.png"), 21.0);
        png(&d.join("c/c0.png"), 30.0);
        d
    }

    #[test]
    fn hidden_folders_are_not_classes() {
        let d = tree("rf-hidden");
        png(&d.join(".ipynb_checkpoints/x.png"), 1.0);
        std::fs::create_dir_all(d.join(".git")).unwrap();
        std::fs::write(d.join("a/.DS_Store"), b"\0\0junk").unwrap();
        let ds = image_dataset_from_directory(&d).image_size(2, 2).shuffle(false).load().unwrap();
        assert_eq!(ds.class_names, ["a", "b", "c"]);
        assert_eq!(ds.y.to_vec::<i64>().unwrap(), [0, 1, 1, 2]);
        assert_eq!(ds.file_paths.len(), 4);
    }

    #[test]
    fn class_names_may_be_a_subset_in_any_order() {
        let d = tree("rf-subset");
        let ds = image_dataset_from_directory(&d)
            .image_size(2, 2)
            .shuffle(false)
            .class_names(["c", "a"])
            .label_mode(LabelMode::Int)
            .load()
            .unwrap();
        assert_eq!(ds.class_names, ["c", "a"]);
        assert_eq!(ds.y.to_vec::<i64>().unwrap(), [0, 1]);
        let names: Vec<String> =
            ds.file_paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["c0.png", "a0.png"]);
        // binary with two named classes of three
        let ds = image_dataset_from_directory(&d)
            .image_size(2, 2)
            .shuffle(false)
            .class_names(["b", "a"])
            .label_mode(LabelMode::Binary)
            .load()
            .unwrap();
        assert_eq!(ds.y.to_vec::<f32>().unwrap(), [0.0, 0.0, 1.0]);
        // a name that is not a subfolder is an error naming the subfolders
        let e = image_dataset_from_directory(&d).class_names(["a", "zebra"]).load().unwrap_err().to_string();
        assert!(e.contains("zebra") && e.contains("\"a\", \"b\", \"c\""), "{e}");
        let e = image_dataset_from_directory(&d).class_names(["a", "a"]).load().unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
    }
}
