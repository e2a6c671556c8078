//! The noise and image-augmentation layers: identity in inference, their statistics and
//! exact outcomes in training, seeding, gradients and config errors.

use keel_autograd::{gradcheck, Tape, Var};
use keel_nn::prelude::*;
use keel_nn::{
    Factor, GaussianDropout, GaussianNoise, RandomBrightness, RandomContrast, RandomFlip, SpatialDropout1D,
    SpatialDropout2D, SpatialDropout3D,
};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};

fn built<L: Layer>(mut l: L, shape: &[usize]) -> L {
    l.set_name("l".into());
    l.build(shape, &mut Rng::new(1)).unwrap();
    assert_eq!(l.output_shape(shape).unwrap(), shape);
    l
}

fn uniform(seed: u64, lo: f64, hi: f64, shape: &[usize]) -> Tensor {
    Tensor::rand_uniform(seed, lo, hi, shape.to_vec(), DType::F32, &Device::Cpu).unwrap()
}

fn infer(l: &dyn Layer, x: &Tensor) -> Tensor {
    l.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap().into_value()
}

/// A training forward pass with the rng seeded by `seed`.
fn train(l: &dyn Layer, x: &Tensor, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let mut ctx = Ctx::new(None, true, Some(&mut rng));
    l.forward(&Var::constant(x.clone()), &mut ctx).unwrap().into_value()
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    f32s(t).iter().map(|v| v.to_bits()).collect()
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Every layer of this file, built for `[6, 5, 3]` images (the 1-D/3-D dropouts for their ranks).
fn every_layer() -> Vec<(Box<dyn Layer>, Vec<usize>)> {
    let img = vec![6, 5, 3];
    vec![
        (Box::new(built(GaussianNoise::new(0.3), &img)), img.clone()),
        (Box::new(built(GaussianDropout::new(0.3), &img)), img.clone()),
        (Box::new(built(AlphaDropout::new(0.3), &img)), img.clone()),
        (Box::new(built(SpatialDropout1D::new(0.5), &[6, 3])), vec![6, 3]),
        (Box::new(built(SpatialDropout2D::new(0.5), &img)), img.clone()),
        (Box::new(built(SpatialDropout3D::new(0.5), &[2, 3, 5, 3])), vec![2, 3, 5, 3]),
        (Box::new(built(RandomFlip::default(), &img)), img.clone()),
        (Box::new(built(RandomContrast::new(0.5), &img)), img.clone()),
        (Box::new(built(RandomBrightness::new(0.2), &img)), img),
    ]
}

#[test]
fn every_layer_is_the_identity_in_inference_and_seeded_in_training() {
    for (l, shape) in every_layer() {
        let mut dims = vec![8];
        dims.extend(&shape);
        let x = uniform(3, 10.0, 200.0, &dims);
        assert_eq!(bits(&infer(l.as_ref(), &x)), bits(&x), "{}", l.class_name());
        let (a, b, c) = (train(l.as_ref(), &x, 7), train(l.as_ref(), &x, 7), train(l.as_ref(), &x, 8));
        assert_eq!(a.dims(), x.dims());
        assert_eq!(bits(&a), bits(&b), "{}: same seed, other bits", l.class_name());
        assert_ne!(bits(&a), bits(&c), "{}: another seed, same bits", l.class_name());
        assert_ne!(bits(&a), bits(&x), "{}: training changed nothing", l.class_name());
        // training without an rng is an error naming the layer, not a panic
        let mut ctx = Ctx::new(None, true, None);
        let e = l.forward(&Var::constant(x), &mut ctx).unwrap_err().to_string();
        assert!(e.contains("\"l\"") && e.contains("Rng"), "{e}");
    }
}

#[test]
fn gaussian_noise_adds_zero_mean_noise_of_stddev() {
    let l = built(GaussianNoise::new(0.7), &[1000]);
    let x = uniform(1, -3.0, 3.0, &[100, 1000]);
    let y = train(&l, &x, 2);
    let noise: Vec<f64> = f32s(&y).iter().zip(f32s(&x)).map(|(y, x)| (y - x) as f64).collect();
    let (mean, std) = mean_std(&noise);
    // the mean of 1e5 draws has a standard error of 0.7 / 316
    assert!(mean.abs() < 0.01, "mean {mean}");
    assert!((std - 0.7).abs() < 0.01, "std {std}");
    // stddev 0 is the identity in training too
    let zero = built(GaussianNoise::new(0.0), &[1000]);
    assert_eq!(bits(&train(&zero, &x, 2)), bits(&x));
}

#[test]
fn gaussian_dropout_multiplies_by_one_centred_noise() {
    for rate in [0.2, 0.5] {
        let l = built(GaussianDropout::new(rate), &[1000]);
        let x = Tensor::full(2.0, (100, 1000), DType::F32, &Device::Cpu).unwrap();
        let m: Vec<f64> = f32s(&train(&l, &x, 3)).iter().map(|&v| v as f64 / 2.0).collect();
        let (mean, std) = mean_std(&m);
        let want = (rate / (1.0 - rate)).sqrt();
        assert!((mean - 1.0).abs() < 0.01, "rate {rate}: mean {mean}");
        assert!((std - want).abs() < 0.01 * want.max(1.0), "rate {rate}: std {std} vs {want}");
    }
}

#[test]
fn alpha_dropout_uses_keras_constants_and_keeps_selu_statistics() {
    // Keras 3's training outputs (fixtures/make_alpha_dropout_fixtures.py): every element is
    // keel's kept value a * x + b or its dropped value a * alpha' + b
    let fx: serde_json::Value = serde_json::from_str(include_str!("fixtures/alpha_dropout_fixtures.json")).unwrap();
    for c in fx["cases"].as_array().unwrap() {
        let rate = c["rate"].as_f64().unwrap();
        let (a, b) = AlphaDropout::affine(rate);
        let dropped = a * -1.673_263_242_354_377_3 * 1.050_700_987_355_480_5 + b;
        let xs = c["x"].as_array().unwrap();
        let ys = c["y"].as_array().unwrap();
        let mut n_dropped = 0;
        for (x, y) in xs.iter().zip(ys) {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let kept = a * x + b;
            if (y - dropped).abs() <= 1e-6 * (1.0 + dropped.abs()) {
                n_dropped += 1;
            } else {
                assert!((y - kept).abs() <= 1e-6 * (1.0 + kept.abs()), "rate {rate}: Keras {y}, keel {kept}");
            }
        }
        let frac = n_dropped as f64 / xs.len() as f64;
        assert!((frac - rate).abs() < 0.08, "rate {rate}: Keras dropped {frac}");
    }
    // keel's own: a standard normal input keeps mean 0 and variance 1, a fraction `rate` drops
    for rate in [0.1, 0.3] {
        let l = built(AlphaDropout::new(rate), &[1000]);
        let x = Tensor::rand_normal(4, 0.0, 1.0, (100, 1000), DType::F32, &Device::Cpu).unwrap();
        let y = f32s(&train(&l, &x, 5));
        let (mean, std) = mean_std(&y.iter().map(|&v| v as f64).collect::<Vec<_>>());
        assert!(mean.abs() < 0.01 && (std - 1.0).abs() < 0.01, "rate {rate}: mean {mean}, std {std}");
        let (a, b) = AlphaDropout::affine(rate);
        let dropped = (a * -1.758_099_340_847_376_6 + b) as f32;
        let frac = y.iter().filter(|&&v| (v - dropped).abs() < 1e-6).count() as f64 / y.len() as f64;
        assert!((frac - rate).abs() < 0.01, "rate {rate}: dropped {frac}");
    }
    let e = built(AlphaDropout::new(0.3), &[4]);
    let mut bad = AlphaDropout::new(1.0);
    assert!(bad.build(&[4], &mut Rng::new(0)).unwrap_err().to_string().contains("rate must be in [0, 1)"));
    assert_eq!(e.rate(), 0.3);
}

#[test]
fn identity_passes_values_and_masks_through() {
    let l = built(Identity::new(), &[3, 2]);
    let x = uniform(1, -1.0, 1.0, &[4, 3, 2]);
    assert_eq!(bits(&train(&l, &x, 1)), bits(&x));
    let mask = Tensor::from_vec(vec![1u8, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1], (4, 3)).unwrap();
    let got = l.compute_mask(&[Var::constant(x)], &[Some(mask.clone())]).unwrap().unwrap();
    assert_eq!(got.to_vec::<u8>().unwrap(), mask.to_vec::<u8>().unwrap());
}

/// Checks that every (sample, channel) of `y` (channels last) is either all zero or `x`
/// scaled by `1 / (1 - rate)`, and returns the fraction dropped.
fn whole_channels_dropped(x: &Tensor, y: &Tensor, rate: f64) -> f64 {
    let dims = x.dims();
    let (n, c) = (dims[0], dims[dims.len() - 1]);
    let per_sample = x.elem_count() / n;
    let (xv, yv) = (f32s(x), f32s(y));
    let mut dropped = 0;
    for s in 0..n {
        for ch in 0..c {
            let idx: Vec<usize> = (ch..per_sample).step_by(c).map(|i| s * per_sample + i).collect();
            if yv[idx[0]] == 0.0 {
                assert!(idx.iter().all(|&i| yv[i] == 0.0), "sample {s} channel {ch} partly dropped");
                dropped += 1;
            } else {
                for &i in &idx {
                    let want = xv[i] / (1.0 - rate as f32);
                    assert!((yv[i] - want).abs() <= 1e-5 * want.abs(), "sample {s} channel {ch}: {} vs {want}", yv[i]);
                }
            }
        }
    }
    dropped as f64 / (n * c) as f64
}

#[test]
fn spatial_dropout_drops_whole_channels() {
    let x = uniform(4, 1.0, 2.0, &[64, 5, 6, 8]);
    let l = built(SpatialDropout2D::new(0.4), &[5, 6, 8]);
    let frac = whole_channels_dropped(&x, &train(&l, &x, 5), 0.4);
    assert!((frac - 0.4).abs() < 0.08, "dropped {frac}");
    let x1 = uniform(5, 1.0, 2.0, &[64, 7, 6]);
    let l1 = built(SpatialDropout1D::new(0.5), &[7, 6]);
    let frac = whole_channels_dropped(&x1, &train(&l1, &x1, 6), 0.5);
    assert!((frac - 0.5).abs() < 0.1, "dropped {frac}");
    let x3 = uniform(6, 1.0, 2.0, &[32, 2, 3, 4, 5]);
    let l3 = built(SpatialDropout3D::new(0.25), &[2, 3, 4, 5]);
    let frac = whole_channels_dropped(&x3, &train(&l3, &x3, 7), 0.25);
    assert!(frac > 0.1 && frac < 0.4, "dropped {frac}");
    // the plain Dropout still drops single elements (its bits are unchanged by the shared core)
    let d = built(Dropout::new(0.5), &[5, 6, 8]);
    let y = f32s(&train(&d, &x, 5));
    assert!((0..64).any(|s| {
        let first: Vec<bool> = (0..30).map(|p| y[s * 240 + p * 8] == 0.0).collect();
        first.iter().any(|&z| z) && first.iter().any(|&z| !z)
    }));
}

/// `v` (one `[h, w, c]` image) flipped top-bottom and/or left-right.
fn flip(v: &[f32], (h, w, c): (usize, usize, usize), rows: bool, cols: bool) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for i in 0..h {
        for j in 0..w {
            let (si, sj) = (if rows { h - 1 - i } else { i }, if cols { w - 1 - j } else { j });
            out[(i * w + j) * c..][..c].copy_from_slice(&v[(si * w + sj) * c..][..c]);
        }
    }
    out
}

/// For each sample of a RandomFlip output, which of (no flip, left-right, top-bottom, both) it is.
fn flip_outcomes(mode: &str, seed: u64) -> [usize; 4] {
    let hwc = (3, 4, 2);
    let n = 64;
    let x = Tensor::arange(0.0, (n * 24) as f64, 1.0, DType::F32, &Device::Cpu).unwrap().reshape((n, 3, 4, 2)).unwrap();
    let l = built(RandomFlip::new(mode), &[3, 4, 2]);
    let (xv, yv) = (f32s(&x), f32s(&train(&l, &x, seed)));
    let mut counts = [0; 4];
    for s in 0..n {
        let (xs, ys) = (&xv[s * 24..][..24], &yv[s * 24..][..24]);
        let which = [(false, false), (false, true), (true, false), (true, true)]
            .iter()
            .position(|&(rows, cols)| flip(xs, hwc, rows, cols) == ys)
            .unwrap_or_else(|| panic!("{mode}: sample {s} is no flip of its input"));
        counts[which] += 1;
    }
    counts
}

#[test]
fn random_flip_flips_each_sample_along_its_mode() {
    let [id, lr, tb, both] = flip_outcomes("horizontal", 1);
    assert!(id > 10 && lr > 10 && tb == 0 && both == 0, "horizontal: {id} {lr} {tb} {both}");
    let [id, lr, tb, both] = flip_outcomes("vertical", 2);
    assert!(id > 10 && tb > 10 && lr == 0 && both == 0, "vertical: {id} {lr} {tb} {both}");
    // one draw for both axes, as Keras 3 (3.15 measured: 102 unchanged, 98 turned, 0 one-axis)
    let [id, lr, tb, both] = flip_outcomes("horizontal_and_vertical", 3);
    assert!(id > 10 && both > 10 && lr == 0 && tb == 0, "horizontal_and_vertical: {id} {lr} {tb} {both}");
    assert_eq!(RandomFlip::default().mode(), "horizontal_and_vertical");
}

#[test]
fn random_flip_takes_integer_pixels_as_floats() {
    let l = built(RandomFlip::new("horizontal"), &[2, 2, 1]);
    let px = Tensor::from_vec(vec![0u8, 51, 200, 255], (1, 2, 2, 1)).unwrap();
    let y = infer(&l, &px);
    assert_eq!(y.dtype(), DType::F32);
    assert_eq!(f32s(&y), vec![0.0, 51.0, 200.0, 255.0]);
    let y = train(&l, &px, 1);
    assert_eq!(y.dtype(), DType::F32);
}

#[test]
fn random_contrast_scales_each_image_about_its_channel_means() {
    let (n, h, w, c) = (16, 4, 5, 3);
    let x = uniform(8, 100.0, 150.0, &[n, h, w, c]);
    let l = built(RandomContrast::new((0.3, 0.5)), &[h, w, c]);
    let (xv, yv) = (f32s(&x), f32s(&train(&l, &x, 9)));
    let mut factors = Vec::new();
    for s in 0..n {
        let img = |v: &[f32], p: usize, ch: usize| v[((s * h * w) + p) * c + ch] as f64;
        let mut f_img: Option<f64> = None;
        for ch in 0..c {
            let mean = (0..h * w).map(|p| img(&xv, p, ch)).sum::<f64>() / (h * w) as f64;
            for p in (0..h * w).filter(|&p| (img(&xv, p, ch) - mean).abs() > 1.0) {
                let f = (img(&yv, p, ch) - mean) / (img(&xv, p, ch) - mean);
                let f0 = *f_img.get_or_insert(f);
                assert!((f - f0).abs() < 1e-3, "sample {s}: factor {f} vs {f0} (one per image)");
            }
        }
        let f = f_img.unwrap();
        assert!((0.7 - 1e-3..1.5 + 1e-3).contains(&f), "factor {f}");
        factors.push(f);
    }
    assert!(factors.iter().any(|&f| f < 1.0) && factors.iter().any(|&f| f > 1.0), "{factors:?}");
    // outputs are clipped to the value range
    let wide = built(RandomContrast::new(1.0).value_range(0.0, 1.0), &[h, w, c]);
    let y = f32s(&train(&wide, &uniform(9, -1.0, 2.0, &[n, h, w, c]), 1));
    assert!(y.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn random_brightness_shifts_each_image_and_clips() {
    let (n, h, w, c) = (16, 3, 3, 2);
    let x = uniform(10, 60.0, 190.0, &[n, h, w, c]);
    let l = built(RandomBrightness::new(0.2), &[h, w, c]);
    let (xv, yv) = (f32s(&x), f32s(&train(&l, &x, 11)));
    let per = h * w * c;
    let deltas: Vec<f32> = (0..n)
        .map(|s| {
            let d = yv[s * per] - xv[s * per];
            assert!((0..per).all(|i| (yv[s * per + i] - xv[s * per + i] - d).abs() < 1e-3), "sample {s}");
            assert!(d.abs() <= 0.2 * 255.0 + 1e-3, "delta {d}");
            d
        })
        .collect();
    assert!(deltas.iter().any(|&d| d < 0.0) && deltas.iter().any(|&d| d > 0.0), "{deltas:?}");
    // a fixed shift of half the range on [0, 1] images: min(x + 0.5, 1)
    let half = built(RandomBrightness::new((0.5, 0.5)).value_range(0.0, 1.0), &[h, w, c]);
    let x01 = uniform(12, 0.0, 1.0, &[n, h, w, c]);
    let y = f32s(&train(&half, &x01, 1));
    for (y, x) in y.iter().zip(f32s(&x01)) {
        assert_eq!(*y, (x + 0.5).min(1.0));
    }
}

#[test]
fn gradients_flow_through_the_fixed_noise() {
    let x = Tensor::rand_uniform(13, 0.1, 0.9, (4, 3, 4, 2), DType::F64, &Device::Cpu).unwrap();
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(built(GaussianNoise::new(0.5), &[3, 4, 2])),
        Box::new(built(GaussianDropout::new(0.4), &[3, 4, 2])),
        Box::new(built(SpatialDropout2D::new(0.5), &[3, 4, 2])),
        Box::new(built(RandomFlip::default(), &[3, 4, 2])),
        // a value range wide enough that nothing is clipped (the clip has a kink)
        Box::new(built(RandomContrast::new(0.5).value_range(-10.0, 10.0), &[3, 4, 2])),
        Box::new(built(RandomBrightness::new(0.3).value_range(-10.0, 10.0), &[3, 4, 2])),
    ];
    for l in &layers {
        // the rng is seeded afresh in every pass: the analytic and numeric passes see one mask
        let f = |v: &[Var]| {
            let mut rng = Rng::new(21);
            let mut ctx = Ctx::new(None, true, Some(&mut rng));
            Ok(l.forward(&v[0], &mut ctx).expect("forward"))
        };
        gradcheck(f, std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("{}: {e}", l.class_name()));
    }
    // spatial dropout's gradient is its mask: 0 or 1 / (1 - rate), as the output over the input
    let l = built(SpatialDropout2D::new(0.5), &[3, 4, 2]);
    let tape = Tape::new();
    let xv = tape.leaf(x.clone());
    let mut rng = Rng::new(4);
    let y = l.forward(&xv, &mut Ctx::new(Some(&tape), true, Some(&mut rng))).unwrap();
    let grads = tape.backward(&y.sum_all().unwrap()).unwrap();
    let g = grads.get_var(&xv).unwrap().to_vec_f64().unwrap();
    let want: Vec<f64> = y.value().div(&x).unwrap().to_vec_f64().unwrap();
    assert_eq!(g, want);
    assert!(g.iter().all(|&v| v == 0.0 || v == 2.0) && g.contains(&0.0) && g.contains(&2.0));
}

#[test]
fn bad_configs_and_ranks_are_errors_naming_the_layer() {
    let err = |mut l: Box<dyn Layer>, shape: &[usize]| {
        l.set_name("bad".into());
        let e = l.build(shape, &mut Rng::new(0)).unwrap_err().to_string();
        assert!(e.contains("\"bad\"") && e.contains(l.class_name()), "{e}");
        e
    };
    for rate in [-0.1, 1.0, 1.5, f64::NAN] {
        assert!(err(Box::new(GaussianDropout::new(rate)), &[4]).contains("rate"));
        assert!(err(Box::new(SpatialDropout2D::new(rate)), &[4, 4, 2]).contains("rate"));
        assert!(err(Box::new(SpatialDropout1D::new(rate)), &[4, 2]).contains("rate"));
    }
    for s in [-1.0, f64::NAN, f64::INFINITY] {
        assert!(err(Box::new(GaussianNoise::new(s)), &[4]).contains("stddev"));
    }
    let e = err(Box::new(RandomFlip::new("diagonal")), &[4, 4, 1]);
    assert!(e.contains("diagonal") && e.contains("horizontal_and_vertical"), "{e}");
    for f in [Factor::Single(1.5), Factor::Single(-0.1), Factor::Range(0.2, -0.5), Factor::Single(f64::NAN)] {
        assert!(err(Box::new(RandomContrast::new(f)), &[4, 4, 1]).contains("factor"));
    }
    for f in [Factor::Single(1.5), Factor::Range(-2.0, 0.5), Factor::Range(0.0, f64::NAN)] {
        assert!(err(Box::new(RandomBrightness::new(f)), &[4, 4, 1]).contains("factor"));
    }
    assert!(err(Box::new(RandomBrightness::new(0.1).value_range(1.0, 0.0)), &[4, 4, 1]).contains("value_range"));
    assert!(err(Box::new(RandomContrast::new(0.1).value_range(0.0, f64::NAN)), &[4, 4, 1]).contains("value_range"));
    // wrong ranks name the shape
    for (l, shape) in [
        (Box::new(RandomFlip::default()) as Box<dyn Layer>, vec![4, 4]),
        (Box::new(RandomContrast::new(0.1)), vec![2, 4, 4, 1]),
        (Box::new(RandomBrightness::new(0.1)), vec![16]),
        (Box::new(SpatialDropout2D::new(0.1)), vec![4, 4]),
        (Box::new(SpatialDropout1D::new(0.1)), vec![4, 4, 1]),
        (Box::new(SpatialDropout3D::new(0.1)), vec![4, 4, 1]),
    ] {
        let e = err(l, &shape);
        assert!(e.contains(&format!("{shape:?}")), "{e}");
    }
    // and in a forward pass (inference too): a batch of rank 3 is not a batch of images
    let l = built(RandomFlip::default(), &[4, 4, 1]);
    let x = Var::constant(uniform(1, 0.0, 1.0, &[2, 4, 4]));
    let e = l.forward(&x, &mut Ctx::inference()).unwrap_err().to_string();
    assert!(e.contains("\"l\"") && e.contains("RandomFlip") && e.contains("[4, 4]"), "{e}");
    // a good config is accepted at the bounds
    built(GaussianDropout::new(0.0), &[4]);
    built(RandomContrast::new((1.0, 2.0)), &[4, 4, 1]);
    built(RandomBrightness::new((-1.0, 1.0)), &[4, 4, 1]);
}

#[test]
fn configs_are_keras_shaped() {
    let cfg = |l: &dyn Layer| l.config();
    assert_eq!(cfg(&GaussianNoise::new(0.1)), serde_json::json!({"name": "", "stddev": 0.1}));
    assert_eq!(cfg(&GaussianDropout::new(0.2)), serde_json::json!({"name": "", "rate": 0.2}));
    assert_eq!(cfg(&SpatialDropout2D::new(0.3)), serde_json::json!({"name": "", "rate": 0.3}));
    assert_eq!(cfg(&RandomFlip::new("vertical")), serde_json::json!({"name": "", "mode": "vertical"}));
    assert_eq!(
        cfg(&RandomContrast::new(0.2)),
        serde_json::json!({"name": "", "factor": 0.2, "value_range": [0.0, 255.0]})
    );
    assert_eq!(
        cfg(&RandomBrightness::new([-0.1, 0.3]).value_range(0.0, 1.0)),
        serde_json::json!({"name": "", "factor": [-0.1, 0.3], "value_range": [0.0, 1.0]})
    );
    let f: Factor = serde_json::from_value(serde_json::json!([0, 1])).unwrap();
    assert_eq!(f, Factor::Range(0.0, 1.0));
}

/// Per element of `y` (shape `dims`, input `x`): kept (`Some(true)`), dropped (`Some(false)`)
/// or `None` where both values coincide, for a dropout of `class` at `rate`.
fn keep_flags(class: &str, rate: f64, x: &[f64], y: &[f64]) -> Vec<Option<bool>> {
    let (a, b) = AlphaDropout::affine(rate);
    let (kept, dropped): (Box<dyn Fn(f64) -> f64>, f64) = match class {
        "Dropout" => (Box::new(move |x| x / (1.0 - rate)), 0.0),
        _ => (Box::new(move |x| a * x + b), a * -1.758_099_340_847_376_6 + b),
    };
    let near = |u: f64, v: f64| (u - v).abs() <= 1e-5 * (1.0 + v.abs());
    x.iter()
        .zip(y)
        .map(|(&x, &y)| {
            let (k, d) = (near(y, kept(x)), near(y, dropped));
            assert!(k || d, "{class}: {y} is neither the kept {} nor the dropped {dropped}", kept(x));
            (k != d).then_some(k)
        })
        .collect()
}

/// Checks that the keep/drop pattern of `flags` (row-major over `dims`) is constant along every
/// axis where `noise` is 1 and varies along some other axis.
fn check_noise_pattern(what: &str, flags: &[Option<bool>], dims: &[usize], noise: &[usize]) {
    let mut draws = std::collections::HashMap::new();
    for (i, f) in flags.iter().enumerate() {
        let Some(f) = *f else { continue };
        // the draw this element reads: its index with every shared axis set to 0
        let (mut rest, mut key) = (i, Vec::new());
        for (&d, &n) in dims.iter().zip(noise).rev() {
            key.push(if n == 1 { 0 } else { rest % d });
            rest /= d;
        }
        let seen = *draws.entry(key).or_insert(f);
        assert_eq!(seen, f, "{what}: element {i} does not share its draw along noise_shape {noise:?}");
    }
    assert!(draws.values().any(|&f| f) && draws.values().any(|&f| !f), "{what}: all draws alike");
}

#[test]
fn a_noise_shape_shares_draws_along_its_unit_axes_as_in_keras() {
    // Keras 3's training outputs (fixtures/make_noise_shape_fixtures.py) and keel's, for
    // Dropout and AlphaDropout at noise shapes [None, 1, None], [None, None, 1] and [1, 5, 4]
    let fx: serde_json::Value = serde_json::from_str(include_str!("fixtures/noise_shape_fixtures.json")).unwrap();
    let vals = |v: &serde_json::Value| v.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect::<Vec<_>>();
    for c in fx["cases"].as_array().unwrap() {
        let class = c["class_name"].as_str().unwrap();
        let rate = c["rate"].as_f64().unwrap();
        let dims: Vec<usize> = c["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let noise: Vec<Option<usize>> =
            c["noise_shape"].as_array().unwrap().iter().map(|d| d.as_u64().map(|d| d as usize)).collect();
        let concrete: Vec<usize> = noise.iter().zip(&dims).map(|(n, &d)| n.unwrap_or(d)).collect();
        let (x, y) = (vals(&c["x"]), vals(&c["y"]));
        let what = format!("Keras {class} {noise:?}");
        check_noise_pattern(&what, &keep_flags(class, rate, &x, &y), &dims, &concrete);
        let layer: Box<dyn Layer> = match class {
            "Dropout" => Box::new(built(Dropout::new(rate).noise_shape(noise.clone()), &dims[1..])),
            _ => Box::new(built(AlphaDropout::new(rate).noise_shape(noise.clone()), &dims[1..])),
        };
        let xt = Tensor::from_vec(x.iter().map(|&v| v as f32).collect(), dims.clone()).unwrap();
        for seed in [1, 2] {
            let ours: Vec<f64> = f32s(&train(layer.as_ref(), &xt, seed)).into_iter().map(f64::from).collect();
            check_noise_pattern(
                &format!("keel {class} {noise:?}"),
                &keep_flags(class, rate, &x, &ours),
                &dims,
                &concrete,
            );
        }
        assert_eq!(bits(&infer(layer.as_ref(), &xt)), bits(&xt), "{class}: not the identity in inference");
        assert_eq!(layer.config()["noise_shape"], c["config"]["noise_shape"], "{class}: config");
    }
    // the shared draws pass gradients through the kept elements only
    let l = built(Dropout::new(0.5).noise_shape([None, Some(1), None]), &[5, 4]);
    let tape = Tape::new();
    let xv = tape.leaf(uniform(3, -1.0, 1.0, &[3, 5, 4]));
    let mut rng = Rng::new(7);
    let y = l.forward(&xv, &mut Ctx::new(Some(&tape), true, Some(&mut rng))).unwrap();
    let grads = tape.backward(&y.sum_all().unwrap()).unwrap();
    let (gy, g) = (f32s(y.value()), f32s(grads.get_var(&xv).unwrap()));
    for (gy, g) in gy.iter().zip(&g) {
        assert!(if *gy == 0.0 { *g == 0.0 } else { *g == 2.0 }, "y {gy}, dy/dx {g}");
    }
}

#[test]
fn a_noise_shape_that_does_not_fit_the_input_is_an_error_naming_both_shapes() {
    let err = |mut l: Box<dyn Layer>, shape: &[usize]| {
        l.set_name("bad".into());
        l.build(shape, &mut Rng::new(0)).unwrap_err().to_string()
    };
    let e = err(Box::new(Dropout::new(0.1).noise_shape([None, Some(1)])), &[5, 4]);
    assert!(
        e.contains("\"bad\"")
            && e.contains("[None, 1]")
            && e.contains("[batch, 5, 4]")
            && e.contains("one entry per input axis"),
        "{e}"
    );
    let e = err(Box::new(AlphaDropout::new(0.1).noise_shape([None, Some(3), None])), &[5, 4]);
    assert!(e.contains("AlphaDropout") && e.contains("axis 1 has size 3") && e.contains("input's 5"), "{e}");
    // the batch entry is checked in the forward pass
    let l = built(Dropout::new(0.1).noise_shape([Some(4), Some(1), None]), &[5, 4]);
    let x = Var::constant(uniform(1, 0.0, 1.0, &[2, 5, 4]));
    let e = l.forward(&x, &mut Ctx::inference()).unwrap_err().to_string();
    assert!(e.contains("axis 0 has size 4") && e.contains("[2, 5, 4]"), "{e}");
    assert_eq!(Dropout::new(0.1).noise_shape([None, Some(1)]).get_noise_shape(), Some(&[None, Some(1)][..]));
}
