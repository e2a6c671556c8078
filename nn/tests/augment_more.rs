//! RandomShear, RandomGrayscale, Solarization, AutoContrast, RandomSaturation and RandomHue
//! against real Keras 3.15
//! (fixtures/augment_more_fixtures.json, written by fixtures/make_augment_more_fixtures.py):
//! the random layers through `transform_with` with Keras's fixed per-image draws, AutoContrast
//! as it is; then identity in inference, seeded draws, gradients, configs and errors. Run with
//! `--nocapture` for the table of max abs differences.

use keel_autograd::{gradcheck, Var};
use keel_nn::prelude::*;
use keel_nn::{
    AutoContrast, Factor, FillMode, ImageInterpolation, RandomGrayscale, RandomHue, RandomSaturation, RandomShear,
    Solarization,
};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};
use serde_json::Value;
use std::sync::OnceLock;

fn fixture() -> &'static Value {
    static F: OnceLock<Value> = OnceLock::new();
    F.get_or_init(|| serde_json::from_str(include_str!("fixtures/augment_more_fixtures.json")).unwrap())
}

fn tensor_of(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data: Vec<f32> = v["data"].as_array().unwrap().iter().map(|d| d.to_string().parse().unwrap()).collect();
    Tensor::from_vec(data, shape).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|d| d.as_f64().unwrap()).collect()
}

fn max_diff(got: &Tensor, want: &Value, what: &str) -> f64 {
    let want = tensor_of(want);
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (g, w) = (got.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
    g.iter().zip(&w).map(|(a, b)| f64::from((a - b).abs())).fold(0.0, f64::max)
}

fn built<L: Layer>(mut l: L, shape: &[usize]) -> L {
    l.set_name("l".into());
    l.build(shape, &mut Rng::new(1)).unwrap();
    assert_eq!(l.output_shape(shape).unwrap(), shape);
    l
}

fn infer(l: &dyn Layer, x: &Tensor) -> Tensor {
    l.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap().into_value()
}

fn train(l: &dyn Layer, x: &Tensor, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let mut ctx = Ctx::new(None, true, Some(&mut rng));
    l.forward(&Var::constant(x.clone()), &mut ctx).unwrap().into_value()
}

fn pair(v: &Value) -> (f64, f64) {
    let p = floats(v);
    (p[0], p[1])
}

#[test]
fn random_shear_with_fixed_factors_matches_keras() {
    let c = &fixture()["shear"];
    let x = tensor_of(&c["x"]);
    let shear: Vec<(f64, f64)> = c["shear"].as_array().unwrap().iter().map(pair).collect();
    for case in c["cases"].as_array().unwrap() {
        let cfg = &case["config"];
        let l = built(
            RandomShear::new(pair(&cfg["x_factor"]), pair(&cfg["y_factor"]))
                .fill_mode(FillMode::from_name(cfg["fill_mode"].as_str().unwrap()).unwrap())
                .interpolation(ImageInterpolation::from_name(cfg["interpolation"].as_str().unwrap()).unwrap())
                .fill_value(cfg["fill_value"].as_f64().unwrap()),
            &x.dims()[1..],
        );
        let y = l.transform_with(&Var::constant(x.clone()), &shear).unwrap();
        let name = case["name"].as_str().unwrap();
        let d = max_diff(y.value(), &case["y"], name);
        eprintln!("RandomShear {name:20} {d:.1e}");
        assert!(d <= 1e-5, "RandomShear {name}: differs from Keras by {d}");
    }
}

#[test]
fn random_grayscale_with_fixed_flags_matches_keras() {
    let c = &fixture()["grayscale"];
    let x = tensor_of(&c["x"]);
    let flags: Vec<bool> = c["flags"].as_array().unwrap().iter().map(|f| f.as_bool().unwrap()).collect();
    let l = built(RandomGrayscale::new(c["config"]["factor"].as_f64().unwrap()), &x.dims()[1..]);
    let y = l.transform_with(&Var::constant(x.clone()), &flags).unwrap();
    let d = max_diff(y.value(), &c["y"], "grayscale");
    eprintln!("RandomGrayscale {d:.1e}");
    assert!(d <= 1e-5, "RandomGrayscale differs from Keras by {d}");
    // factor 1: every image grayscaled, as the flags all true; factor 0: none
    let all = built(RandomGrayscale::new(1.0), &x.dims()[1..]);
    let want = all.transform_with(&Var::constant(x.clone()), &[true; 4]).unwrap().into_value();
    assert_eq!(train(&all, &x, 3).to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
    let none = built(RandomGrayscale::new(0.0), &x.dims()[1..]);
    assert_eq!(train(&none, &x, 3).to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
    // one channel: left as it is
    let g = Tensor::rand_uniform(2, 0.0, 1.0, (2, 3, 3, 1), DType::F32, &Device::Cpu).unwrap();
    let one = built(RandomGrayscale::new(1.0), &[3, 3, 1]);
    assert_eq!(train(&one, &g, 1).to_vec::<f32>().unwrap(), g.to_vec::<f32>().unwrap());
}

fn solarization_of(cfg: &Value) -> Solarization {
    let (low, high) = pair(&cfg["value_range"]);
    Solarization::new(pair(&cfg["addition_factor"]), pair(&cfg["threshold_factor"])).value_range(low, high)
}

#[test]
fn solarization_with_fixed_draws_matches_keras() {
    for c in fixture()["solarization"].as_array().unwrap() {
        let x = tensor_of(&c["x"]);
        let l = built(solarization_of(&c["config"]), &x.dims()[1..]);
        let y =
            l.transform_with(&Var::constant(x.clone()), &floats(&c["additions"]), &floats(&c["thresholds"])).unwrap();
        let name = c["name"].as_str().unwrap();
        let d = max_diff(y.value(), &c["y"], name);
        // 1e-5 of the value range's width (1e-5 absolute for widths up to 1)
        let (low, high) = pair(&c["config"]["value_range"]);
        let tol = 1e-5 * (high - low).max(1.0);
        eprintln!("Solarization {name:24} {d:.1e}");
        assert!(d <= tol, "Solarization {name}: differs from Keras by {d}");
        assert_eq!(infer(&l, &x).to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap(), "{name}: inference");
    }
}

#[test]
fn auto_contrast_matches_keras_in_inference_and_training() {
    for c in fixture()["auto_contrast"].as_array().unwrap() {
        let x = tensor_of(&c["x"]);
        let (low, high) = pair(&c["config"]["value_range"]);
        let l = built(AutoContrast::new().value_range(low, high), &x.dims()[1..]);
        let name = c["name"].as_str().unwrap();
        let d = max_diff(&infer(&l, &x), &c["y"], name);
        let dt = max_diff(&train(&l, &x, 1), &c["y_train"], name);
        eprintln!("AutoContrast {name:24} {d:.1e} (training {dt:.1e})");
        let tol = 1e-5 * (high - low).max(1.0);
        assert!(d <= tol && dt <= tol, "AutoContrast {name}: differs from Keras by {d} / {dt}");
    }
}

#[test]
fn random_saturation_with_fixed_multipliers_matches_keras() {
    let c = &fixture()["saturation"];
    let x = tensor_of(&c["x"]);
    for case in c["cases"].as_array().unwrap() {
        let (low, high) = pair(&case["config"]["value_range"]);
        let l = built(RandomSaturation::new(pair(&case["config"]["factor"])).value_range(low, high), &x.dims()[1..]);
        let y = l.transform_with(&Var::constant(x.clone()), &floats(&case["multipliers"])).unwrap();
        let name = case["name"].as_str().unwrap();
        let d = max_diff(y.value(), &case["y"], name);
        eprintln!("RandomSaturation {name:24} {d:.1e}");
        assert!(d <= 1e-5, "RandomSaturation {name}: differs from Keras by {d}");
    }
}

#[test]
fn random_hue_with_fixed_shifts_matches_keras() {
    for c in fixture()["hue"].as_array().unwrap() {
        let x = tensor_of(&c["x"]);
        let (low, high) = pair(&c["config"]["value_range"]);
        let l = built(RandomHue::new(pair(&c["config"]["factor"])).value_range(low, high), &x.dims()[1..]);
        let y = l.transform_with(&Var::constant(x.clone()), &floats(&c["deltas"])).unwrap();
        let name = c["name"].as_str().unwrap();
        let d = max_diff(y.value(), &c["y"], name);
        let tol = 1e-5 * (high - low).max(1.0);
        eprintln!("RandomHue {name:24} {d:.1e}");
        assert!(d <= tol, "RandomHue {name}: differs from Keras by {d}");
    }
}

#[test]
fn random_layers_are_the_identity_in_inference_and_seeded_in_training() {
    let x = Tensor::rand_uniform(4, 0.0, 1.0, (4, 5, 6, 3), DType::F32, &Device::Cpu).unwrap();
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(built(RandomShear::new(0.4, 0.3), &[5, 6, 3])),
        Box::new(built(RandomGrayscale::new(0.5), &[5, 6, 3])),
        Box::new(built(Solarization::new(0.3, 0.6).value_range(0.0, 1.0), &[5, 6, 3])),
        Box::new(built(RandomSaturation::new(0.8).value_range(0.0, 1.0), &[5, 6, 3])),
        Box::new(built(RandomHue::new(0.5).value_range(0.0, 1.0), &[5, 6, 3])),
    ];
    for l in &layers {
        let name = l.class_name();
        assert_eq!(infer(l.as_ref(), &x).to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap(), "{name}: inference");
        let (a, b, c) = (train(l.as_ref(), &x, 9), train(l.as_ref(), &x, 9), train(l.as_ref(), &x, 10));
        assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap(), "{name}: seeded");
        assert_ne!(a.to_vec::<f32>().unwrap(), c.to_vec::<f32>().unwrap(), "{name}: another seed, another draw");
        assert_ne!(a.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap(), "{name}: changes the images");
    }
    // RandomShear draws each image's own shear: with one image repeated, the outputs differ
    let one = x.narrow(0, 0, 1).unwrap();
    let rep = Tensor::concat(&[one.clone(), one.clone(), one.clone(), one], 0).unwrap();
    let y = train(layers[0].as_ref(), &rep, 3);
    assert_ne!(
        y.narrow(0, 0, 1).unwrap().to_vec::<f32>().unwrap(),
        y.narrow(0, 1, 1).unwrap().to_vec::<f32>().unwrap()
    );
    // integer pixels come out as floats
    let xi = Tensor::from_vec((0..4 * 5 * 6 * 3).map(|v| (v % 256) as i64).collect::<Vec<_>>(), (4, 5, 6, 3)).unwrap();
    for l in &layers {
        assert_eq!(train(l.as_ref(), &xi, 2).dtype(), DType::F32);
    }
    assert_eq!(infer(&built(AutoContrast::new(), &[5, 6, 3]), &xi).dtype(), DType::F32);
}

#[test]
fn shear_grayscale_and_saturation_pass_gradients_to_their_input() {
    let x = Tensor::rand_uniform(13, 0.1, 0.9, (2, 4, 5, 3), DType::F64, &Device::Cpu).unwrap();
    let shear = built(RandomShear::new(0.3, 0.2).fill_mode(FillMode::Constant), &[4, 5, 3]);
    let gray = built(RandomGrayscale::new(0.5), &[4, 5, 3]);
    let sat = built(RandomSaturation::new((0.2, 0.7)).value_range(0.0, 1.0), &[4, 5, 3]);
    let checks: Vec<(&str, Box<dyn Fn(&[Var]) -> keel_autograd::Result<Var>>)> = vec![
        (
            "shear, fixed factors",
            Box::new(|v: &[Var]| Ok(shear.transform_with(&v[0], &[(0.25, -0.1), (-0.2, 0.3)]).expect("shear"))),
        ),
        ("grayscale, fixed flags", Box::new(|v: &[Var]| Ok(gray.transform_with(&v[0], &[true, false]).expect("gray")))),
        (
            "saturation, fixed multipliers",
            Box::new(|v: &[Var]| Ok(sat.transform_with(&v[0], &[0.4, 1.7]).expect("sat"))),
        ),
    ];
    for (what, f) in checks {
        let r = gradcheck(f, std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(r.checked, x.elem_count(), "{what}");
    }
    // and through the layers' own seeded draws (the rng seeded afresh in every pass)
    for l in [&shear as &dyn Layer, &gray, &sat] {
        let f = |v: &[Var]| {
            let mut rng = Rng::new(21);
            let mut ctx = Ctx::new(None, true, Some(&mut rng));
            Ok(l.forward(&v[0], &mut ctx).expect("forward"))
        };
        gradcheck(f, std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("{}: {e}", l.class_name()));
    }
}

#[test]
fn configs_are_keras_shaped() {
    assert_eq!(
        RandomShear::new(0.3, (0.2, 0.1)).fill_mode(FillMode::Constant).seed(Some(4)).config(),
        serde_json::json!({"name": "", "x_factor": [-0.3, 0.3], "y_factor": [0.1, 0.2], "fill_mode": "constant",
            "interpolation": "bilinear", "seed": 4, "fill_value": 0.0})
    );
    assert_eq!(RandomGrayscale::new(0.25).seed(Some(2)).config(), serde_json::json!({"name": "", "factor": 0.25}));
    assert_eq!(
        Solarization::new(0.4, (0.7, 0.2)).value_range(-1.0, 1.0).config(),
        serde_json::json!({"name": "", "value_range": [-1.0, 1.0], "addition_factor": [0.0, 0.4],
            "threshold_factor": [0.2, 0.7], "seed": null})
    );
    assert_eq!(AutoContrast::new().config(), serde_json::json!({"name": "", "value_range": [0.0, 255.0]}));
    assert_eq!(
        RandomSaturation::new(0.5).config(),
        serde_json::json!({"name": "", "factor": [-0.5, 0.5], "value_range": [0.0, 255.0], "seed": null})
    );
    assert_eq!(
        RandomHue::new(0.5).value_range(0.0, 1.0).seed(Some(1)).config(),
        serde_json::json!({"name": "", "factor": [0.0, 0.5], "value_range": [0.0, 1.0], "seed": 1})
    );
    assert_eq!(RandomShear::new(0.3, 0.0).factors(), (Factor::Single(0.3), Factor::Single(0.0)));
}

fn err(mut l: Box<dyn Layer>, shape: &[usize]) -> String {
    l.set_name("bad".into());
    let e = l.build(shape, &mut Rng::new(0)).expect_err("must be refused").to_string();
    assert!(e.contains(l.class_name()) && e.contains("\"bad\""), "{e}");
    e
}

#[test]
fn bad_factors_value_ranges_and_shapes_are_errors_naming_the_layer() {
    let img = [4, 4, 3];
    assert!(err(Box::new(RandomShear::new(1.5, 0.0)), &img).contains("x_factor"));
    assert!(err(Box::new(RandomShear::new(-0.2, 0.0)), &img).contains("x_factor"));
    assert!(err(Box::new(RandomShear::new(0.0, (0.1, f64::NAN))), &img).contains("y_factor"));
    assert!(err(Box::new(RandomGrayscale::new(1.2)), &img).contains("factor"));
    assert!(err(Box::new(RandomGrayscale::new(0.5)), &[4, 4, 2]).contains("channels"));
    assert!(err(Box::new(Solarization::new(1.5, 0.0)), &img).contains("addition_factor"));
    assert!(err(Box::new(Solarization::new(0.0, (-0.1, 0.5))), &img).contains("threshold_factor"));
    assert!(err(Box::new(Solarization::new(0.1, 0.1).value_range(1.0, 0.0)), &img).contains("value_range"));
    assert!(err(Box::new(AutoContrast::new().value_range(0.0, f64::INFINITY)), &img).contains("value_range"));
    assert!(err(Box::new(RandomSaturation::new(1.5)), &img).contains("factor"));
    assert!(err(Box::new(RandomSaturation::new((0.1, -1.5))), &img).contains("factor"));
    assert!(err(Box::new(RandomSaturation::new(0.5)), &[4, 4, 1]).contains("channels"));
    assert!(err(Box::new(RandomHue::new(-0.2)), &img).contains("factor"));
    assert!(err(Box::new(RandomHue::new((1.2, 0.5))), &img).contains("factor"));
    assert!(err(Box::new(RandomHue::new(0.5).value_range(2.0, 2.0)), &img).contains("value_range"));
    for l in [
        Box::new(RandomShear::new(0.1, 0.1)) as Box<dyn Layer>,
        Box::new(RandomGrayscale::new(0.1)),
        Box::new(Solarization::default()),
        Box::new(AutoContrast::default()),
        Box::new(RandomSaturation::new(0.5)),
        Box::new(RandomHue::new(0.5)),
    ] {
        err(l, &[16]);
    }
    // keel accepts the pair Keras writes for RandomShear(f): [-f, f]
    built(RandomShear::new((-0.3, 0.3), (-0.0, 0.0)), &img);
    // transform_with wants one draw per image
    let x = Var::constant(Tensor::zeros((2, 4, 4, 3), DType::F32, &Device::Cpu).unwrap());
    assert!(built(RandomShear::new(0.1, 0.1), &img).transform_with(&x, &[(0.1, 0.1)]).is_err());
    assert!(built(RandomGrayscale::new(0.1), &img).transform_with(&x, &[true]).is_err());
    assert!(built(Solarization::default(), &img).transform_with(&x, &[1.0, 2.0], &[3.0]).is_err());
}
