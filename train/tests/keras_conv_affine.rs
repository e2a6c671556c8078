//! DepthwiseConv2D, SeparableConv2D, Conv1DTranspose, RandomRotation, RandomZoom,
//! RandomTranslation and `Tensor::affine_transform` against real Keras 3 on its TensorFlow
//! backend (fixtures/conv_affine_fixtures.json, written by
//! fixtures/make_conv_affine_fixtures.py): each layer is loaded from the config Keras wrote
//! through the registry, given Keras's weights by name, and its outputs and gradients are
//! compared; the affine op is compared with `ImageProjectiveTransformV3` for every fill mode
//! and interpolation. Run with `--nocapture` for the table of max abs differences.

use keel_autograd::{Tape, Var};
use keel_nn::{Ctx, FillMode, ImageInterpolation, Layer};
use keel_tensor::rng::Rng;
use keel_tensor::Tensor;
use keel_train::layer_from_config;
use serde_json::Value;
use std::sync::OnceLock;

fn fixture() -> &'static Value {
    static F: OnceLock<Value> = OnceLock::new();
    F.get_or_init(|| serde_json::from_str(include_str!("fixtures/conv_affine_fixtures.json")).unwrap())
}

fn tensor_of(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    // read from the decimals (float32 data is written as its shortest decimals)
    let data: Vec<f32> = v["data"].as_array().unwrap().iter().map(|d| d.to_string().parse().unwrap()).collect();
    Tensor::from_vec(data, shape).unwrap()
}

/// The max abs difference between `got` (keel) and the reference `want` (same shape).
fn max_diff(got: &Tensor, want: &Value, what: &str) -> f64 {
    let want = tensor_of(want);
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (g, w) = (got.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
    g.iter().zip(&w).map(|(a, b)| f64::from((a - b).abs())).fold(0.0, f64::max)
}

/// Every key of keel's config `ours` is in Keras's config `keras`, with the same value (an
/// initializer: the same class name; keel writes no arguments for these).
fn same_config(ours: &Value, keras: &Value, what: &str) {
    for (k, v) in ours.as_object().unwrap() {
        let want = keras.get(k).unwrap_or_else(|| panic!("{what}: keel writes \"{k}\", Keras does not"));
        match want.get("class_name") {
            Some(name) => assert_eq!(v["class_name"], *name, "{what}: {k}"),
            None => assert_eq!(v, want, "{what}: {k}"),
        }
    }
}

fn layer_of(class: &str, cfg: &Value, input: &[usize]) -> Box<dyn Layer> {
    let mut l = layer_from_config(class, cfg).unwrap_or_else(|e| panic!("{class} from Keras's config: {e}"));
    l.build(input, &mut Rng::new(0)).unwrap();
    l
}

#[test]
fn conv_layers_match_keras_forward_and_gradients() {
    for c in fixture()["conv"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let x = tensor_of(&c["x"]);
        let l = layer_of(c["class_name"].as_str().unwrap(), &c["config"], &x.dims()[1..]);
        same_config(&l.config(), &c["config"], name);
        // Keras's weight names, order and shapes
        let names: Vec<String> = l.weights().iter().map(|w| w.name.to_string()).collect();
        let want: Vec<&str> = c["weight_names"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(names, want, "{name}: weights");
        for w in l.weights() {
            w.param
                .assign(&tensor_of(&c["weights"][w.name.as_ref()]))
                .unwrap_or_else(|e| panic!("{name} {}: {e}", w.name));
        }
        let y = l.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap().into_value();
        let dy = max_diff(&y, &c["y"], name);
        let mut line = format!("{name:34} y {dy:.1e}");
        assert!(dy <= 2e-5, "{name}: output differs from Keras by {dy}");
        if c.get("g").is_some() {
            let tape = Tape::new();
            let xv = tape.leaf(x);
            let mut rng = Rng::new(0);
            let y = l.forward(&xv, &mut Ctx::train(&tape, &mut rng)).unwrap();
            let grads = tape.backward_with(&y, tensor_of(&c["g"])).unwrap();
            let d = max_diff(grads.get_var(&xv).unwrap(), &c["dx"], name);
            line += &format!("  dx {d:.1e}");
            assert!(d <= 2e-5, "{name}: input gradient differs from Keras by {d}");
            for w in l.weights() {
                let d = max_diff(grads.get(&w.param).unwrap(), &c["dw"][w.name.as_ref()], name);
                line += &format!("  d{} {d:.1e}", w.name);
                assert!(d <= 5e-5, "{name}: gradient of {} differs from Keras by {d}", w.name);
            }
        }
        eprintln!("{line}");
    }
}

fn modes() -> Vec<(FillMode, ImageInterpolation)> {
    let mut v = Vec::new();
    for m in ["reflect", "wrap", "constant", "nearest"] {
        for i in ["nearest", "bilinear"] {
            v.push((FillMode::from_name(m).unwrap(), ImageInterpolation::from_name(i).unwrap()));
        }
    }
    v
}

#[test]
fn affine_transform_matches_tensorflow_image_projective_transform_v3() {
    for group in fixture()["affine_op"].as_array().unwrap() {
        let x = tensor_of(&group["x"]);
        let fill = group["fill_value"].as_f64().unwrap();
        for t in group["transforms"].as_array().unwrap() {
            let m = tensor_of(&t["transforms"]);
            let mut line = format!("{:10} {:?}", t["name"].as_str().unwrap(), &x.dims()[1..3]);
            for (mode, interp) in modes() {
                let key = format!("{}_{}", mode.name(), interp.name());
                let what = format!("{line} {key}");
                let y = x.affine_transform(&m, interp, mode, fill).unwrap();
                let d = max_diff(&y, &t["y"][&key], &what);
                line += &format!(" {d:.0e}");
                assert!(d <= 1e-6, "{what}: differs from TensorFlow by {d}");
            }
            eprintln!("{line}");
        }
    }
}

#[test]
fn affine_transform_gradient_is_the_transpose_of_tensorflows_op() {
    // the reference is J^T g, J from TensorFlow's forward op on basis images (the op is
    // linear in the image); TensorFlow's own registered gradient is an approximation
    let c = &fixture()["affine_grad"];
    let (x, t) = (tensor_of(&c["x"]), tensor_of(&c["transforms"]));
    for (mode, interp) in modes() {
        let key = format!("{}_{}", mode.name(), interp.name());
        let tape = Tape::new();
        let xv = tape.leaf(x.clone());
        let y = xv.affine_transform(&t, interp, mode, c["fill_value"].as_f64().unwrap()).unwrap();
        let grads = tape.backward_with(&y, tensor_of(&c["g"])).unwrap();
        let d = max_diff(grads.get_var(&xv).unwrap(), &c["dx"][&key], &key);
        eprintln!("grad {key:20} dx {d:.1e}");
        assert!(d <= 1e-5, "{key}: image gradient differs from TensorFlow's Jacobian by {d}");
    }
}

#[test]
fn affine_layers_with_fixed_factors_match_keras() {
    for group in fixture()["augment"].as_array().unwrap() {
        let x = tensor_of(&group["x"]);
        for c in group["cases"].as_array().unwrap() {
            let name = c["name"].as_str().unwrap();
            let l = layer_of(c["class_name"].as_str().unwrap(), &c["config"], &x.dims()[1..]);
            let mut rng = Rng::new(5);
            let y = l.forward(&Var::constant(x.clone()), &mut Ctx::new(None, true, Some(&mut rng))).unwrap();
            let d = max_diff(y.value(), &c["y"], name);
            match c.get("y_exact_matrix") {
                // Keras's float32 matrix moves samples across TensorFlow's wrap seam (see
                // keel_nn's random_affine.rs): keel is TensorFlow's op on the exact matrix
                Some(exact) => {
                    let e = max_diff(y.value(), exact, name);
                    eprintln!("{name:48} {d:.1e} (exact matrix: {e:.1e})");
                    assert!(e <= 1e-5, "{name}: differs from TensorFlow on the exact matrix by {e}");
                }
                None => {
                    eprintln!("{name:48} {d:.1e}");
                    assert!(d <= 1e-5, "{name}: differs from Keras by {d}");
                }
            }
            let y = l.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap().into_value();
            assert_eq!(y.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap(), "{name}: inference");
        }
    }
}

#[test]
fn keel_configs_use_keras_keys_and_round_trip() {
    for (class, keras) in fixture()["default_configs"].as_object().unwrap() {
        let l = layer_from_config(class, keras).unwrap_or_else(|e| panic!("{class}: {e}"));
        let ours = l.config();
        same_config(&ours, keras, class);
        let back = layer_from_config(class, &ours).unwrap();
        assert_eq!(back.config(), ours, "{class}: round trip");
    }
}

#[test]
fn keras_rotation_ranges_beyond_a_turn_load() {
    // Keras 3.15 accepts RandomRotation((0.5, 1.5)) (its pair check only refuses a first
    // number above 1 or a second below -1) and writes it as it is
    let cfg = serde_json::json!({"name": "r", "factor": [0.5, 1.5], "fill_mode": "reflect", "fill_value": 0.0,
        "interpolation": "bilinear", "seed": null, "data_format": "channels_last"});
    let l = layer_of("RandomRotation", &cfg, &[4, 4, 1]);
    assert_eq!(l.config()["factor"], serde_json::json!([0.5, 1.5]));
    // and refuses a zoom of 0
    let mut z = layer_from_config("RandomZoom", &serde_json::json!({"height_factor": [-1.0, 0.2]})).unwrap();
    assert!(z.build(&[4, 4, 1], &mut Rng::new(0)).is_err());
}
