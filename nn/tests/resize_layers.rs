//! Resizing, CenterCrop and RandomCrop against Keras 3 (fixtures made by
//! `fixtures/make_resize_fixtures.py` on the TensorFlow backend: many geometries, both
//! interpolations, the aspect-ratio options, integer pixels), their gradients, RandomCrop's
//! seeded draws and inference, and bad configs and inputs.

use keel_autograd::{gradcheck, Var};
use keel_nn::prelude::*;
use keel_nn::Error;
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};
use serde_json::Value;

const FIXTURES: &str = include_str!("fixtures/resize_fixtures.json");

fn built<L: Layer>(mut l: L, shape: &[usize]) -> L {
    l.set_name("l".into());
    l.build(shape, &mut Rng::new(1)).unwrap();
    l
}

fn usize_of(v: &Value) -> usize {
    v.as_u64().unwrap() as usize
}

/// The keel layer of a fixture case (`smart_resize` is RandomCrop's inference).
fn layer_of(kind: &str, cfg: &Value) -> Box<dyn Layer> {
    let (h, w) = (usize_of(&cfg["height"]), usize_of(&cfg["width"]));
    match kind {
        "Resizing" => {
            let interp =
                Interpolation::from_name(cfg.get("interpolation").and_then(Value::as_str).unwrap_or("bilinear"));
            Box::new(
                Resizing::new(h, w)
                    .interpolation(interp.unwrap())
                    .crop_to_aspect_ratio(cfg.get("crop_to_aspect_ratio").and_then(Value::as_bool).unwrap_or(false))
                    .pad_to_aspect_ratio(cfg.get("pad_to_aspect_ratio").and_then(Value::as_bool).unwrap_or(false))
                    .fill_value(cfg.get("fill_value").and_then(Value::as_f64).unwrap_or(0.0)),
            )
        }
        "CenterCrop" => Box::new(CenterCrop::new(h, w)),
        "RandomCrop" | "smart_resize" => Box::new(RandomCrop::new(h, w).seed(Some(1))),
        other => panic!("unknown fixture layer {other}"),
    }
}

fn dims_of(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(usize_of).collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn resizing_and_crops_match_keras() {
    let fx: Value = serde_json::from_str(FIXTURES).unwrap();
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() > 60);
    let mut worst: f64 = 0.0;
    for c in cases {
        let what = format!("{} {} on {}", c["layer"], c["config"], c["input_shape"]);
        let dims = dims_of(&c["input_shape"]);
        let x = Tensor::from_vec(floats(&c["input"]), dims.clone()).unwrap();
        let x = match c["dtype"].as_str().unwrap() {
            "uint8" => x.to_dtype(DType::U8).unwrap(),
            _ => x.to_dtype(DType::F32).unwrap(),
        };
        let mut l = layer_of(c["layer"].as_str().unwrap(), &c["config"]);
        l.set_name("l".into());
        l.build(&dims[1..], &mut Rng::new(1)).unwrap();
        let mut rng = Rng::new(5);
        let training = c["training"].as_bool().unwrap();
        let mut ctx = Ctx::new(None, training, Some(&mut rng));
        let y = l.forward(&Var::constant(x), &mut ctx).unwrap_or_else(|e| panic!("{what}: {e}")).into_value();
        let out_dims = dims_of(&c["output_shape"]);
        assert_eq!(y.dims(), out_dims, "{what}");
        assert_eq!(l.output_shape(&dims[1..]).unwrap(), out_dims[1..], "{what}");
        let want_dtype = match c["output_dtype"].as_str().unwrap() {
            "uint8" => DType::U8,
            _ => DType::F32,
        };
        assert_eq!(y.dtype(), want_dtype, "{what}");
        // in f32: serde_json's float parsing may miss the stored double by an ulp
        let got: Vec<f32> = y.to_vec_f64().unwrap().into_iter().map(|v| v as f32).collect();
        let want: Vec<f32> = floats(&c["output"]).into_iter().map(|v| v as f32).collect();
        let diff = got.iter().zip(&want).map(|(a, b)| f64::from((a - b).abs())).fold(0.0, f64::max);
        if want_dtype == DType::U8 || c["config"]["interpolation"] == "nearest" {
            assert_eq!(got, want, "{what}: a pixel picked or rounded differently");
        }
        assert!(diff <= 1e-6, "{what}: max |keel - keras| = {diff:e}");
        worst = worst.max(diff);
    }
    println!("{} cases, max |keel - keras| = {worst:e}", cases.len());
}

#[test]
fn resizing_gradients_match_finite_differences() {
    let x = Tensor::rand_uniform(3, -1.0, 1.0, vec![2, 5, 6, 2], DType::F64, &Device::Cpu).unwrap();
    let img = [5, 6, 2];
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(built(Resizing::new(8, 9), &img)),
        Box::new(built(Resizing::new(3, 4), &img)),
        Box::new(built(Resizing::new(7, 3), &img)),
        Box::new(built(Resizing::new(4, 11).interpolation(Interpolation::Nearest), &img)),
        Box::new(built(Resizing::new(4, 4).crop_to_aspect_ratio(true), &img)),
        Box::new(built(Resizing::new(6, 3).pad_to_aspect_ratio(true).fill_value(0.5), &img)),
        Box::new(built(CenterCrop::new(3, 4), &img)),
        Box::new(built(CenterCrop::new(7, 4), &img)),
        Box::new(built(RandomCrop::new(4, 4), &img)),
        Box::new(built(UpSampling2D::new((2, 3)).interpolation(Interpolation::Bilinear), &img)),
    ];
    for l in &layers {
        let f = |v: &[Var]| Ok(l.forward(&v[0], &mut Ctx::inference()).expect("forward"));
        gradcheck(f, std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("{}: {e}", l.config()));
    }
    // and the random crop of training
    let l = built(RandomCrop::new(3, 4), &img);
    let f = |v: &[Var]| {
        let mut rng = Rng::new(9);
        let mut ctx = Ctx::new(None, true, Some(&mut rng));
        Ok(l.forward(&v[0], &mut ctx).expect("forward"))
    };
    gradcheck(f, std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("RandomCrop in training: {e}"));
}

/// A training pass of `l` with the rng seeded by `seed`.
fn train(l: &dyn Layer, x: &Tensor, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let mut ctx = Ctx::new(None, true, Some(&mut rng));
    l.forward(&Var::constant(x.clone()), &mut ctx).unwrap().into_value()
}

fn infer(l: &dyn Layer, x: &Tensor) -> Tensor {
    l.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap().into_value()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
}

/// The `(top, left)` of the `th x tw` window of `x` (`[n, h, w, c]`) that `y` is, if any.
fn window_of(x: &Tensor, y: &Tensor, th: usize, tw: usize) -> Option<(usize, usize)> {
    let (h, w) = (x.dims()[1], x.dims()[2]);
    let yb = bits(y);
    (0..=h - th)
        .flat_map(|t| (0..=w - tw).map(move |l| (t, l)))
        .find(|&(t, l)| bits(&x.narrow(1, t, th).unwrap().narrow(2, l, tw).unwrap().contiguous().unwrap()) == yb)
}

#[test]
fn random_crop_is_seeded_and_one_window_per_batch_in_training() {
    let (h, w, th, tw) = (9, 11, 4, 5);
    let x = Tensor::rand_uniform(1, 0.0, 1.0, vec![3, h, w, 2], DType::F32, &Device::Cpu).unwrap();
    let l = built(RandomCrop::new(th, tw).seed(Some(42)), &[h, w, 2]);
    let a = train(&l, &x, 7);
    assert_eq!(a.dims(), [3, th, tw, 2]);
    assert_eq!(bits(&a), bits(&train(&l, &x, 7)), "same seed, another crop");
    // a window of the batch (a slice, not a resampling), at one place for every image
    let at = window_of(&x, &a, th, tw).expect("the crop is a window of the input");
    // the places of many seeds cover the whole range of offsets, and vary
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..400 {
        seen.insert(window_of(&x, &train(&l, &x, seed), th, tw).unwrap());
    }
    assert!(seen.contains(&at));
    assert_eq!(seen.len(), (h - th + 1) * (w - tw + 1), "every offset in 0..=h-th, 0..=w-tw appears");
    // one rng across the batches of an epoch and across epochs: each call draws anew
    let mut rng = Rng::new(3);
    let mut places = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let mut ctx = Ctx::new(None, true, Some(&mut rng));
        let y = l.forward(&Var::constant(x.clone()), &mut ctx).unwrap().into_value();
        places.insert(window_of(&x, &y, th, tw).unwrap());
    }
    assert!(places.len() > 3, "the crops of successive batches vary: {places:?}");
    // training without an rng is an error naming the layer, not a panic
    let e = l.forward(&Var::constant(x.clone()), &mut Ctx::new(None, true, None)).unwrap_err().to_string();
    assert!(e.contains("\"l\"") && e.contains("Rng"), "{e}");
    // integer pixels come out as floats
    assert_eq!(train(&l, &x.to_dtype(DType::U8).unwrap(), 1).dtype(), DType::F32);
}

#[test]
fn random_crop_in_inference_and_on_small_images_is_smart_resize() {
    // inference: the largest centred window with the target's aspect ratio, resized (no rng
    // needed); the same in training when the image is not larger than the target on both axes
    let x = Tensor::rand_uniform(2, -1.0, 1.0, vec![2, 8, 6, 1], DType::F32, &Device::Cpu).unwrap();
    let l = built(RandomCrop::new(4, 4), &[8, 6, 1]);
    let y = infer(&l, &x);
    let by_hand = Resizing::new(4, 4).crop_to_aspect_ratio(true);
    let by_hand = built(by_hand, &[8, 6, 1]);
    assert_eq!(bits(&y), bits(&infer(&by_hand, &x)));
    for (h, w, th, tw) in [(8, 6, 8, 4), (5, 6, 3, 6), (3, 5, 4, 4), (6, 6, 6, 6)] {
        let x = Tensor::rand_uniform(4, -1.0, 1.0, vec![2, h, w, 1], DType::F32, &Device::Cpu).unwrap();
        let l = built(RandomCrop::new(th, tw), &[h, w, 1]);
        let want = infer(&built(Resizing::new(th, tw).crop_to_aspect_ratio(true), &[h, w, 1]), &x);
        assert_eq!(bits(&train(&l, &x, 1)), bits(&want), "{h}x{w} -> {th}x{tw} in training");
        assert_eq!(bits(&infer(&l, &x)), bits(&want), "{h}x{w} -> {th}x{tw} in inference");
    }
    // CenterCrop is the same in training and inference
    let c = built(CenterCrop::new(5, 3), &[8, 6, 1]);
    assert_eq!(bits(&train(&c, &x, 1)), bits(&infer(&c, &x)));
    assert_eq!(bits(&infer(&c, &x)), bits(&x.narrow(1, 1, 5).unwrap().narrow(2, 1, 3).unwrap().contiguous().unwrap()));
}

#[test]
fn resizing_keeps_float_dtypes_and_rounds_integers() {
    let x = Tensor::rand_uniform(5, 0.0, 4.0, vec![1, 3, 5, 2], DType::F32, &Device::Cpu).unwrap();
    let l = built(Resizing::new(6, 4), &[3, 5, 2]);
    let y32 = infer(&l, &x);
    for dt in [DType::F64, DType::F16, DType::BF16] {
        let y = infer(&l, &x.to_dtype(dt).unwrap());
        assert_eq!(y.dtype(), dt);
        let (a, b) = (y.to_vec_f64().unwrap(), y32.to_vec_f64().unwrap());
        let tol = if dt == DType::F64 { 1e-6 } else { 0.02 };
        assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() <= tol), "{dt}");
    }
    // integers: rounded half to even (1.5 -> 2, 2.5 -> 2), in their dtype
    let x = Tensor::from_vec(vec![1i64, 2, 3], (1, 1, 3, 1)).unwrap();
    let y = infer(&built(Resizing::new(1, 2), &[1, 3, 1]), &x);
    assert_eq!(y.dtype(), DType::I64);
    assert_eq!(y.to_vec::<i64>().unwrap(), [1, 3]); // samples at 0.25 and 1.75: 1.25, 2.75
    let x = Tensor::from_vec(vec![1u8, 2, 3, 4], (1, 1, 4, 1)).unwrap();
    let y = infer(&built(Resizing::new(1, 2), &[1, 4, 1]), &x);
    assert_eq!(y.to_vec::<u8>().unwrap(), [2, 4]); // 1.5 and 3.5: ties to even
                                                   // nearest keeps the dtype without a round trip; the crops cast integers to floats
    let y = infer(&built(Resizing::new(1, 2).interpolation(Interpolation::Nearest), &[1, 4, 1]), &x);
    assert_eq!((y.dtype(), y.to_vec::<u8>().unwrap()), (DType::U8, vec![2, 4]));
    assert_eq!(infer(&built(CenterCrop::new(1, 2), &[1, 4, 1]), &x).dtype(), DType::F32);
}

#[test]
fn configs_are_keras_keys() {
    let r = Resizing::new(3, 4)
        .interpolation(Interpolation::Nearest)
        .pad_to_aspect_ratio(true)
        .fill_value(1.5)
        .with_name("r");
    assert_eq!(
        r.config(),
        serde_json::json!({"name": "r", "height": 3, "width": 4, "interpolation": "nearest",
            "crop_to_aspect_ratio": false, "pad_to_aspect_ratio": true, "fill_mode": "constant",
            "fill_value": 1.5, "antialias": false, "data_format": "channels_last"})
    );
    assert_eq!(
        CenterCrop::new(2, 5).with_name("c").config(),
        serde_json::json!({"name": "c", "height": 2, "width": 5, "data_format": "channels_last"})
    );
    assert_eq!(
        RandomCrop::new(2, 5).seed(Some(9)).with_name("rc").config(),
        serde_json::json!({"name": "rc", "height": 2, "width": 5, "seed": 9, "data_format": "channels_last"})
    );
    assert_eq!(RandomCrop::new(2, 5).config()["seed"], Value::Null);
    assert_eq!(Resizing::new(3, 4).get_interpolation(), Interpolation::Bilinear);
    assert_eq!((CenterCrop::new(2, 5).size(), RandomCrop::new(1, 2).size()), ((2, 5), (1, 2)));
}

#[test]
fn bad_configs_and_inputs_are_errors() {
    let build = |mut l: Box<dyn Layer>, shape: &[usize]| {
        l.set_name("bad".into());
        l.build(shape, &mut Rng::new(0)).unwrap_err()
    };
    let both = Resizing::new(3, 3).crop_to_aspect_ratio(true).pad_to_aspect_ratio(true);
    let e = build(Box::new(both), &[4, 4, 1]);
    assert!(matches!(e, Error::InvalidConfig { .. }) && e.to_string().contains("\"bad\""), "{e}");
    let e = build(Box::new(Resizing::new(3, 3).fill_mode(FillMode::Reflect)), &[4, 4, 1]);
    assert!(e.to_string().contains("fill_mode") && e.to_string().contains("reflect"), "{e}");
    assert!(build(Box::new(Resizing::new(3, 3).fill_value(f64::NAN)), &[4, 4, 1]).to_string().contains("fill_value"));
    for l in [
        Box::new(Resizing::new(0, 3)) as Box<dyn Layer>,
        Box::new(CenterCrop::new(3, 0)),
        Box::new(RandomCrop::new(0, 0)),
    ] {
        let e = build(l, &[4, 4, 1]);
        assert!(matches!(e, Error::InvalidConfig { .. }) && e.to_string().contains("at least 1"), "{e}");
    }
    for l in [Box::new(Resizing::new(2, 3)) as Box<dyn Layer>, Box::new(CenterCrop::new(2, 2))] {
        let e = build(l, &[4, 4]);
        assert!(matches!(e, Error::IncompatibleInput { .. }) && e.to_string().contains("[4, 4]"), "{e}");
    }
    assert!(matches!(build(Box::new(RandomCrop::new(2, 2)), &[0, 4, 1]), Error::IncompatibleInput { .. }));
    // a batch of the wrong rank at forward time
    let l = built(Resizing::new(2, 2), &[4, 4, 1]);
    let x = Var::constant(Tensor::zeros((4, 4, 1), DType::F32, &Device::Cpu).unwrap());
    assert!(l.forward(&x, &mut Ctx::inference()).is_err());
    let e = Interpolation::from_name("bicubic").unwrap_err().to_string();
    assert!(e.contains("bicubic") && e.contains("bilinear"), "{e}");
    // an output too large to address is an error, not an abort
    let l = built(Resizing::new(usize::MAX / 2, 3), &[2, 2, 1]);
    let x = Var::constant(Tensor::zeros((1, 2, 2, 1), DType::F32, &Device::Cpu).unwrap());
    assert!(l.forward(&x, &mut Ctx::inference()).is_err());
}

#[test]
fn layers_in_a_model_resize_then_crop() {
    let mut m = Sequential::new();
    m.add(Resizing::new(12, 10).input_shape([7, 9, 3]));
    m.add(RandomCrop::new(8, 8));
    m.add(CenterCrop::new(6, 4));
    m.add(Flatten::new());
    let x = Tensor::rand_uniform(1, 0.0, 1.0, vec![2, 7, 9, 3], DType::F32, &Device::Cpu).unwrap();
    let y = m.forward(&[Var::constant(x)], &mut Ctx::inference()).unwrap();
    assert_eq!(y[0].dims(), [2, 6 * 4 * 3]);
}
