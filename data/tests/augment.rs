//! ImageDataGenerator: each transform alone with exactly known answers, every
//! fill mode at the border, Keras-produced references, and determinism.

mod common;
use keel_data::augment::{FillMode, ImageDataGenerator, TransformParams};
use keel_data::BatchSource;
use keel_tensor::rng::Rng;
use keel_tensor::Tensor;
use serde_json::Value;

fn img(h: usize, w: usize, c: usize) -> Vec<f32> {
    (0..h * w * c).map(|v| v as f32).collect()
}

fn run(gen: &ImageDataGenerator, x: &[f32], h: usize, w: usize, c: usize, p: TransformParams) -> Vec<f32> {
    gen.apply_params(x, h, w, c, &p)
}

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

#[test]
fn rotation_by_90_degrees_is_rot90() {
    // out[r][c] = in[c][3 - r]  (counter-clockwise, like np.rot90)
    let x = img(4, 4, 1);
    let out = run(&ImageDataGenerator::new(), &x, 4, 4, 1, TransformParams { theta: 90.0, ..Default::default() });
    let want: Vec<f32> = (0..16).map(|i| (4 * (i % 4) + 3 - i / 4) as f32).collect();
    assert!(close(&out, &want, 1e-4), "{out:?}");
}

#[test]
fn one_pixel_shifts_follow_keras_axes() {
    let g = ImageDataGenerator::new().fill_mode(FillMode::Constant).cval(-1.0);
    let x = img(3, 4, 1);
    // Keras's tx (from height_shift_range) moves along columns: out[r][c] = in[r][c + 1]
    let out = run(&g, &x, 3, 4, 1, TransformParams { tx: 1.0, ..Default::default() });
    assert_eq!(out, vec![1., 2., 3., -1., 5., 6., 7., -1., 9., 10., 11., -1.]);
    // ty moves along rows: out[r][c] = in[r - 1][c]
    let out = run(&g, &x, 3, 4, 1, TransformParams { ty: -1.0, ..Default::default() });
    assert_eq!(out, vec![-1., -1., -1., -1., 0., 1., 2., 3., 4., 5., 6., 7.]);
}

#[test]
fn flips_mirror_each_axis_for_every_channel() {
    let g = ImageDataGenerator::new();
    let x = img(2, 3, 2);
    let h = run(&g, &x, 2, 3, 2, TransformParams { flip_horizontal: true, ..Default::default() });
    assert_eq!(h, vec![4., 5., 2., 3., 0., 1., 10., 11., 8., 9., 6., 7.]);
    let v = run(&g, &x, 2, 3, 2, TransformParams { flip_vertical: true, ..Default::default() });
    assert_eq!(v, vec![6., 7., 8., 9., 10., 11., 0., 1., 2., 3., 4., 5.]);
}

#[test]
fn every_fill_mode_at_the_border() {
    // one row [1 2 3 4 5], shifted so that output columns 0 and 1 sample input columns -2 and -1
    let x = vec![1f32, 2., 3., 4., 5.];
    let p = TransformParams { tx: -2.0, ..Default::default() };
    let cases = [
        (FillMode::Nearest, vec![1., 1., 1., 2., 3.]),
        (FillMode::Constant, vec![9., 9., 1., 2., 3.]),
        (FillMode::Reflect, vec![2., 1., 1., 2., 3.]),
        // SciPy's `wrap` has period len - 1 = 4: -1 -> 3, -2 -> 2
        (FillMode::Wrap, vec![3., 4., 1., 2., 3.]),
    ];
    for (mode, want) in cases {
        let g = ImageDataGenerator::new().fill_mode(mode).cval(9.0);
        assert_eq!(run(&g, &x, 1, 5, 1, p), want, "{mode:?}");
    }
    // and past the right edge
    let p = TransformParams { tx: 2.0, ..Default::default() };
    let cases = [
        (FillMode::Nearest, vec![3., 4., 5., 5., 5.]),
        (FillMode::Constant, vec![3., 4., 5., 9., 9.]),
        (FillMode::Reflect, vec![3., 4., 5., 5., 4.]),
        (FillMode::Wrap, vec![3., 4., 5., 2., 3.]),
    ];
    for (mode, want) in cases {
        let g = ImageDataGenerator::new().fill_mode(mode).cval(9.0);
        assert_eq!(run(&g, &x, 1, 5, 1, p), want, "{mode:?}");
    }
}

#[test]
fn channel_shift_and_brightness_by_hand() {
    let g = ImageDataGenerator::new();
    let x = vec![10f32, 20., 30., 40.];
    let out = run(&g, &x, 2, 2, 1, TransformParams { channel_shift_intensity: Some(15.0), ..Default::default() });
    assert_eq!(out, vec![25., 35., 40., 40.]); // clipped to the image max
                                               // PIL brightness: trunc(trunc(v) * b), clipped to [0, 255]
    let x = vec![10.7f32, 100., 200., 0.];
    let out = run(&g, &x, 2, 2, 1, TransformParams { brightness: Some(1.5), ..Default::default() });
    assert_eq!(out, vec![15., 150., 255., 0.]);
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

#[test]
fn matches_keras_apply_transform() {
    let p = common::crate_dir().join("tests/fixtures/augment_keras.json");
    let f: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let s: Vec<usize> = f["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let (h, w, c) = (s[0], s[1], s[2]);
    let image: Vec<f32> = f["image"].as_array().unwrap().iter().map(|v| num(v) as f32).collect();
    let to_params = |p: &Value| TransformParams {
        theta: num(&p["theta"]),
        tx: num(&p["tx"]),
        ty: num(&p["ty"]),
        shear: num(&p["shear"]),
        zx: num(&p["zx"]),
        zy: num(&p["zy"]),
        flip_horizontal: p["flip_horizontal"].as_bool().unwrap(),
        flip_vertical: p["flip_vertical"].as_bool().unwrap(),
        channel_shift_intensity: p["channel_shift_intensity"].as_f64(),
        brightness: p["brightness"].as_f64(),
    };
    let mut checked = 0;
    for case in f["cases"].as_array().unwrap() {
        let mode = match case["fill_mode"].as_str().unwrap() {
            "nearest" => FillMode::Nearest,
            "constant" => FillMode::Constant,
            "reflect" => FillMode::Reflect,
            _ => FillMode::Wrap,
        };
        let g = ImageDataGenerator::new().fill_mode(mode).cval(num(&case["cval"]) as f32);
        let want: Vec<f32> = case["out"].as_array().unwrap().iter().map(|v| num(v) as f32).collect();
        let got = g.apply_params(&image, h, w, c, &to_params(&case["params"]));
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= 2e-3, "{mode:?} {}: max abs diff {worst}", case["params"]);
        checked += 1;
    }
    assert_eq!(checked, 52);
    let b = &f["brightness_local_scale"];
    let image: Vec<f32> = b["image"].as_array().unwrap().iter().map(|v| num(v) as f32).collect();
    let want: Vec<f32> = b["out"].as_array().unwrap().iter().map(|v| num(v) as f32).collect();
    let got = ImageDataGenerator::new().apply_params(&image, h, w, c, &to_params(&b["params"]));
    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= 1e-3, "local-scale brightness: max abs diff {worst}");
}

fn seed_gen() -> ImageDataGenerator {
    ImageDataGenerator::new()
        .rotation_range(10.0)
        .zoom_range(0.1)
        .width_shift_range(0.1)
        .height_shift_range(0.1)
        .horizontal_flip(true)
        .channel_shift_range(5.0)
        .rescale(1.0 / 255.0)
}

fn images(n: usize) -> Tensor {
    let v: Vec<f32> =
        Rng::new(3).fork_seed().to_le_bytes().iter().cycle().take(n * 28 * 28).map(|&b| b as f32).collect();
    let v: Vec<f32> = v.iter().enumerate().map(|(i, &b)| ((i * 37) % 251) as f32 + b * 0.0).collect();
    Tensor::from_vec(v, (n, 28, 28, 1)).unwrap()
}

#[test]
fn random_params_stay_in_range() {
    let g = seed_gen().shear_range(20.0).brightness_range(0.5, 1.5);
    let mut rng = Rng::new(1);
    let mut flips = 0;
    for _ in 0..500 {
        let p = g.random_params(28, 20, &mut rng);
        assert!(p.theta.abs() <= 10.0 && p.shear.abs() <= 20.0);
        assert!(p.tx.abs() <= 2.8 && p.ty.abs() <= 2.0, "{p:?}");
        assert!((0.9..1.1).contains(&p.zx) && (0.9..1.1).contains(&p.zy));
        assert!((0.5..1.5).contains(&p.brightness.unwrap()));
        assert!(!p.flip_vertical);
        flips += p.flip_horizontal as usize;
    }
    assert!((180..320).contains(&flips), "{flips}");
}

#[test]
fn same_seed_same_bits_whatever_the_thread_count() {
    let x = images(37);
    let g = seed_gen();
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    let a = one.install(|| g.augment_batch(&x, 11, 2)).unwrap().to_vec::<f32>().unwrap();
    let b = three.install(|| g.augment_batch(&x, 11, 2)).unwrap().to_vec::<f32>().unwrap();
    assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
    let c = g.augment_batch(&x, 12, 2).unwrap().to_vec::<f32>().unwrap();
    assert_ne!(a, c);
    let d = g.augment_batch(&x, 11, 3).unwrap().to_vec::<f32>().unwrap();
    assert_ne!(a, d);
    // random_transform: same seed, same image
    let one_img = x.narrow(0, 0, 1).unwrap().squeeze(0).unwrap();
    let r1 = g.random_transform(&one_img, 5).unwrap().to_vec::<f32>().unwrap();
    let r2 = g.random_transform(&one_img, 5).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(r1, r2);
}

#[test]
fn flow_yields_the_augment_batch_rows() {
    let x = images(10);
    let y = Tensor::from_vec((0..10i64).collect::<Vec<_>>(), 10).unwrap();
    let g = seed_gen();
    let mut flow = g.flow(&x, &y, 4).unwrap().seed(9);
    assert_eq!(flow.len_batches(), 3);
    let full = g.augment_batch(&x, 9, 1).unwrap().to_vec::<f32>().unwrap();
    let mut seen = vec![];
    for b in flow.batches(1) {
        let (xb, yb) = b.unwrap();
        let labels = yb.to_vec::<i64>().unwrap();
        let v = xb.to_vec::<f32>().unwrap();
        for (k, &l) in labels.iter().enumerate() {
            let l = l as usize;
            assert_eq!(&v[k * 784..(k + 1) * 784], &full[l * 784..(l + 1) * 784]);
        }
        seen.extend(labels);
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, (0..10).collect::<Vec<i64>>());
    // the same epoch twice: same batches; another epoch: another order
    let again: Vec<i64> = flow.batches(1).flat_map(|b| b.unwrap().1.to_vec::<i64>().unwrap()).collect();
    assert_eq!(again, seen);
    let other: Vec<i64> = flow.batches(2).flat_map(|b| b.unwrap().1.to_vec::<i64>().unwrap()).collect();
    assert_ne!(other, seen);
}

#[test]
fn standardization_by_hand() {
    let x = Tensor::from_vec(vec![0f32, 10., 2., 30., 4., 50., 6., 70.], (2, 2, 1, 2)).unwrap();
    let mut g = ImageDataGenerator::new().featurewise_center(true).featurewise_std_normalization(true);
    g.fit(&x).unwrap();
    assert_eq!(g.mean.as_deref(), Some(&[3.0f32, 40.0][..]));
    let s = g.std.clone().unwrap();
    assert!((s[0] - 5f32.sqrt()).abs() < 1e-6 && (s[1] - 500f32.sqrt()).abs() < 1e-4);
    let z = g.standardize(&x).unwrap().to_vec::<f32>().unwrap();
    assert!((z[0] - (-3.0 / (5f32.sqrt() + 1e-6))).abs() < 1e-5);
    let g = ImageDataGenerator::new().rescale(0.5).samplewise_center(true).samplewise_std_normalization(true);
    let img = Tensor::from_vec(vec![2f32, 6.], (1, 2, 1)).unwrap();
    // rescale -> [1, 3]; centre -> [-1, 1]; std 1 -> /(1 + 1e-6)
    let z = g.standardize(&img).unwrap().to_vec::<f32>().unwrap();
    assert!((z[0] + 1.0).abs() < 1e-5 && (z[1] - 1.0).abs() < 1e-5);
}

#[test]
fn bad_inputs_are_errors() {
    let g = ImageDataGenerator::new().featurewise_center(true);
    let x = images(2);
    let y = Tensor::from_vec(vec![0i64, 1], 2).unwrap();
    assert!(g.flow(&x, &y, 2).unwrap_err().to_string().contains("fit"));
    assert!(g.standardize(&x).is_err());
    let g = ImageDataGenerator::new();
    let flat = Tensor::from_vec(vec![0f32; 4], (2, 2)).unwrap();
    assert!(g.flow(&flat, &y, 2).unwrap_err().to_string().contains("NHWC"));
    let y3 = Tensor::from_vec(vec![0i64, 1, 2], 3).unwrap();
    assert!(g.flow(&x, &y3, 2).is_err());
    assert!(g.flow(&x, &y, 0).is_err());
    assert!(g.random_transform(&x, 0).is_err());
    let mut g2 = ImageDataGenerator::new();
    assert!(g2.fit(&flat).is_err());
}

#[test]
fn non_finite_parameters_are_errors() {
    use keel_data::augment::ShiftRange;
    let x = images(2);
    let y = Tensor::from_vec(vec![0i64, 1], 2).unwrap();
    let one = x.narrow(0, 0, 1).unwrap().squeeze(0).unwrap();
    // NaN rotation/shear ranges used to be accepted and give all-zero images
    let cases: Vec<(&str, ImageDataGenerator)> = vec![
        ("rotation_range", ImageDataGenerator::new().rotation_range(f64::NAN)),
        ("shear_range", ImageDataGenerator::new().shear_range(f64::NAN)),
        ("rotation_range", ImageDataGenerator::new().rotation_range(f64::INFINITY)),
        ("width_shift_range", ImageDataGenerator::new().width_shift_range(f64::NAN)),
        ("height_shift_range", ImageDataGenerator::new().height_shift(ShiftRange::Choices(vec![1.0, f64::NAN]))),
        ("zoom_range", ImageDataGenerator::new().zoom_range(f64::NAN)),
        ("zoom_range", ImageDataGenerator::new().zoom_range_bounds(0.5, f64::INFINITY)),
        ("channel_shift_range", ImageDataGenerator::new().channel_shift_range(f64::NEG_INFINITY)),
        ("brightness_range", ImageDataGenerator::new().brightness_range(f64::NAN, 1.0)),
        ("cval", ImageDataGenerator::new().cval(f32::NAN)),
        ("rescale", ImageDataGenerator::new().rescale(f32::INFINITY)),
    ];
    for (name, g) in cases {
        let e = g.flow(&x, &y, 2).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains("finite"), "{name}: {e}");
        assert!(g.augment_batch(&x, 0, 0).unwrap_err().to_string().contains(name), "{name}");
        assert!(g.random_transform(&one, 0).unwrap_err().to_string().contains(name), "{name}");
        assert!(g.standardize(&x).unwrap_err().to_string().contains(name), "{name}");
    }
    let g = ImageDataGenerator::new().rotation_range(f64::NAN);
    assert!(g.apply_transform(&one, &TransformParams::default()).is_err());
    let p = TransformParams { theta: f64::NAN, ..Default::default() };
    let e = ImageDataGenerator::new().apply_transform(&one, &p).unwrap_err().to_string();
    assert!(e.contains("theta") && e.contains("finite"), "{e}");
}

/// Std normalization alone centers first, as Keras's ImageDataGenerator turns the matching
/// centering on (values from Keras's formulas: (x - mean) / (std + 1e-6)).
#[test]
fn std_normalization_implies_centering() {
    let x = Tensor::from_vec(vec![0f32, 2., 4., 6., 8., 10., 12., 14.], (2, 2, 2, 1)).unwrap();
    let mut g = ImageDataGenerator::new().featurewise_std_normalization(true);
    g.fit(&x).unwrap();
    let sd = (((0..8).map(|i| (2.0 * i as f64 - 7.0).powi(2)).sum::<f64>()) / 8.0).sqrt();
    let want: Vec<f32> = (0..8).map(|i| ((2.0 * i as f64 - 7.0) / (sd + 1e-6)) as f32).collect();
    let got = g.standardize(&x).unwrap().to_vec::<f32>().unwrap();
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-5, "{got:?} vs {want:?}");
    }
    // per image: [0, 2, 4, 6] -> mean 3, std sqrt(5)
    let g = ImageDataGenerator::new().samplewise_std_normalization(true);
    let got = g.standardize(&x).unwrap().to_vec::<f32>().unwrap();
    let s5 = 5f64.sqrt() + 1e-6;
    let want: Vec<f32> = [-3.0, -1.0, 1.0, 3.0].iter().map(|v| (v / s5) as f32).collect();
    for (img, chunk) in got.chunks(4).enumerate() {
        for (a, b) in chunk.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "image {img}: {chunk:?} vs {want:?}");
        }
    }
}
