//! RandomRotation, RandomZoom and RandomTranslation: identity in inference, seeded draws in
//! training, values against transforms built by hand from Keras 3's formulas
//! (keras/src/layers/preprocessing/image_preprocessing/random_{rotation,zoom,translation}.py),
//! gradients and configs.

use keel_autograd::{gradcheck, Var};
use keel_nn::prelude::*;
use keel_nn::{Factor, FillMode, ImageInterpolation, RandomRotation, RandomTranslation, RandomZoom};
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

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
}

fn every_layer(img: &[usize]) -> Vec<Box<dyn Layer>> {
    vec![
        Box::new(built(RandomRotation::new(0.2), img)),
        Box::new(built(RandomZoom::new(0.3), img)),
        Box::new(built(RandomZoom::new((-0.3, 0.2)).width_factor(Some(Factor::Range(0.1, 0.4))), img)),
        Box::new(built(RandomTranslation::new(0.2, (-0.3, 0.1)), img)),
        Box::new(built(RandomRotation::new(0.3).fill_mode(FillMode::Constant).fill_value(9.0), img)),
        Box::new(built(RandomTranslation::new(0.3, 0.3).interpolation(ImageInterpolation::Nearest), img)),
    ]
}

#[test]
fn affine_layers_are_the_identity_in_inference_and_seeded_in_training() {
    let img = [7, 6, 3];
    let x = uniform(3, 10.0, 200.0, &[5, 7, 6, 3]);
    for (i, l) in every_layer(&img).into_iter().enumerate() {
        assert_eq!(bits(&infer(l.as_ref(), &x)), bits(&x), "{}", l.class_name());
        let (a, b, c) = (train(l.as_ref(), &x, 7), train(l.as_ref(), &x, 7), train(l.as_ref(), &x, 8));
        assert_eq!(a.dims(), x.dims());
        assert_eq!(a.dtype(), DType::F32);
        assert_eq!(bits(&a), bits(&b), "{}: same seed, other bits", l.class_name());
        assert_ne!(bits(&a), bits(&c), "{}: another seed, same bits", l.class_name());
        assert_ne!(bits(&a), bits(&x), "{}: training changed nothing", l.class_name());
        // one draw per image: five copies of one image come out five different ways (not
        // checked for the nearest-pixel layer, whose whole-pixel shifts may repeat)
        let same = x.narrow(0, 0, 1).unwrap().broadcast_to((5, 7, 6, 3)).unwrap().contiguous().unwrap();
        let out = train(l.as_ref(), &same, 9).to_vec::<f32>().unwrap();
        let per = out.len() / 5;
        for k in 1..5 {
            if i != 5 {
                assert_ne!(out[..per], out[k * per..(k + 1) * per], "{}: images 0 and {k} alike", l.class_name());
            }
        }
        // training without an rng is an error naming the layer, not a panic
        let mut ctx = Ctx::new(None, true, None);
        let e = l.forward(&Var::constant(x.clone()), &mut ctx).unwrap_err().to_string();
        assert!(e.contains("\"l\"") && e.contains("Rng"), "{e}");
    }
    // integer pixels come out as floats, in inference too
    let u8s = x.to_dtype(DType::U8).unwrap();
    let l = built(RandomRotation::new(0.1), &img);
    assert_eq!(infer(&l, &u8s).dtype(), DType::F32);
    assert_eq!(train(&l, &u8s, 1).dtype(), DType::F32);
}

#[test]
fn affine_layers_with_factor_zero_are_the_identity_in_training() {
    let img = [5, 4, 2];
    let x = uniform(4, -1.0, 1.0, &[3, 5, 4, 2]);
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(built(RandomRotation::new(0.0), &img)),
        Box::new(built(RandomZoom::new(0.0), &img)),
        Box::new(built(RandomZoom::new(0.0).width_factor(Some(Factor::Single(0.0))), &img)),
        Box::new(built(RandomTranslation::new(0.0, (0.0, 0.0)), &img)),
    ];
    for l in &layers {
        assert_eq!(bits(&train(l.as_ref(), &x, 5)), bits(&x), "{}", l.class_name());
    }
}

/// `x` (one `[1, h, w, c]` image, F32) through the op with one hand-built transform row.
fn by_hand(x: &Tensor, row: [f64; 8], interp: ImageInterpolation, mode: FillMode, fill: f64) -> Tensor {
    let t = Tensor::from_vec(row.to_vec(), (1, 8)).unwrap();
    x.affine_transform(&t, interp, mode, fill).unwrap()
}

#[test]
fn random_translation_by_a_fixed_quarter_moves_by_whole_pixels() {
    // (0.25, 0.25) on a 4 x 8 image: 1 pixel down, 2 right; constant fill 0 at the top / left
    let (h, w) = (4, 8);
    let x = uniform(6, 1.0, 2.0, &[1, h, w, 1]);
    let xv = x.to_vec::<f32>().unwrap();
    let l = built(RandomTranslation::new((0.25, 0.25), (0.25, 0.25)).fill_mode(FillMode::Constant), &[h, w, 1]);
    let y = train(&l, &x, 3).to_vec::<f32>().unwrap();
    for r in 0..h {
        for c in 0..w {
            let want = if r >= 1 && c >= 2 { xv[(r - 1) * w + c - 2] } else { 0.0 };
            assert_eq!(y[r * w + c], want, "({r}, {c})");
        }
    }
    // Keras's default reflect fill: row -1 reads row 0, columns -2, -1 read 1, 0
    let l = built(RandomTranslation::new((0.25, 0.25), (0.25, 0.25)), &[h, w, 1]);
    let y = train(&l, &x, 3).to_vec::<f32>().unwrap();
    let refl = |i: isize| if i < 0 { (-i - 1) as usize } else { i as usize };
    for r in 0..h {
        for c in 0..w {
            let want = xv[refl(r as isize - 1) * w + refl(c as isize - 2)];
            assert_eq!(y[r * w + c], want, "reflect ({r}, {c})");
        }
    }
    // negative factors move up / left
    let l = built(RandomTranslation::new((-0.25, -0.25), (-0.25, -0.25)).fill_mode(FillMode::Constant), &[h, w, 1]);
    let y = train(&l, &x, 3).to_vec::<f32>().unwrap();
    assert_eq!(y[0], xv[w + 2]);
    assert_eq!(y[(h - 1) * w + w - 1], 0.0);
}

#[test]
fn random_rotation_by_a_quarter_turn_turns_counter_clockwise() {
    // factor (0.25, 0.25): a quarter of 2 pi; Keras's matrix about the centre of a 5 x 5 image
    // reads input (4 - y, x) at output (x, y): the top-right corner moves to the top left
    let n = 5;
    let x = uniform(7, -1.0, 1.0, &[1, n, n, 2]);
    let xv = x.to_vec::<f32>().unwrap();
    let l = built(RandomRotation::new((0.25, 0.25)).interpolation(ImageInterpolation::Nearest), &[n, n, 2]);
    let y = train(&l, &x, 1).to_vec::<f32>().unwrap();
    for r in 0..n {
        for c in 0..n {
            for ch in 0..2 {
                assert_eq!(y[(r * n + c) * 2 + ch], xv[(c * n + (n - 1 - r)) * 2 + ch], "({r}, {c}, {ch})");
            }
        }
    }
    // an angle of 0.1 turns on a 6 x 4 image: Keras's matrix, written out
    let (h, w) = (6usize, 4usize);
    let x = uniform(8, -1.0, 1.0, &[1, h, w, 3]);
    let a = 0.1 * 2.0 * std::f64::consts::PI;
    let (s, c) = a.sin_cos();
    let (h1, w1) = (h as f64 - 1.0, w as f64 - 1.0);
    let row = [c, -s, (w1 - (c * w1 - s * h1)) / 2.0, s, c, (h1 - (s * w1 + c * h1)) / 2.0, 0.0, 0.0];
    let l = built(RandomRotation::new((0.1, 0.1)).fill_mode(FillMode::Wrap), &[h, w, 3]);
    let want = by_hand(&x, row, ImageInterpolation::Bilinear, FillMode::Wrap, 0.0);
    assert_eq!(bits(&train(&l, &x, 2)), bits(&want));
}

#[test]
fn random_zoom_by_fixed_factors_matches_keras_matrix() {
    let (h, w) = (6usize, 9usize);
    let x = uniform(9, -1.0, 1.0, &[1, h, w, 2]);
    let zoom = |zx: f64, zy: f64| {
        [zx, 0.0, (w as f64 - 1.0) / 2.0 * (1.0 - zx), 0.0, zy, (h as f64 - 1.0) / 2.0 * (1.0 - zy), 0.0, 0.0]
    };
    // height 0.5 and no width factor: both axes zoom out by 1.5
    let l = built(RandomZoom::new((0.5, 0.5)).fill_mode(FillMode::Nearest), &[h, w, 2]);
    let want = by_hand(&x, zoom(1.5, 1.5), ImageInterpolation::Bilinear, FillMode::Nearest, 0.0);
    assert_eq!(bits(&train(&l, &x, 4)), bits(&want));
    // a width factor of its own: zoom in on the width
    let l = built(RandomZoom::new((0.5, 0.5)).width_factor(Some(Factor::Range(-0.5, -0.5))), &[h, w, 2]);
    let want = by_hand(&x, zoom(0.5, 1.5), ImageInterpolation::Bilinear, FillMode::Reflect, 0.0);
    assert_eq!(bits(&train(&l, &x, 4)), bits(&want));
    // zooming out of a constant-filled border: the centre pixel stays, the corners are filled
    let l = built(RandomZoom::new((1.0, 1.0)).fill_mode(FillMode::Constant).fill_value(-5.0), &[5, 5, 1]);
    let x = uniform(10, 0.0, 1.0, &[1, 5, 5, 1]);
    let y = train(&l, &x, 4).to_vec::<f32>().unwrap();
    assert_eq!(y[12], x.to_vec::<f32>().unwrap()[12]);
    assert_eq!(y[0], -5.0);
}

#[test]
fn affine_layers_pass_gradients_to_their_input() {
    let x = Tensor::rand_uniform(13, 0.1, 0.9, (3, 4, 5, 2), DType::F64, &Device::Cpu).unwrap();
    for l in every_layer(&[4, 5, 2]) {
        // the rng is seeded afresh in every pass: the analytic and numeric passes see one draw
        let f = |v: &[Var]| {
            let mut rng = Rng::new(21);
            let mut ctx = Ctx::new(None, true, Some(&mut rng));
            Ok(l.forward(&v[0], &mut ctx).expect("forward"))
        };
        let r = gradcheck(f, std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("{}: {e}", l.class_name()));
        assert_eq!(r.checked, x.elem_count());
    }
}

#[test]
fn affine_layer_configs_are_keras_shaped_and_bad_factors_are_errors() {
    assert_eq!(
        RandomRotation::new(0.1).config(),
        serde_json::json!({"name": "", "factor": 0.1, "fill_mode": "reflect", "interpolation": "bilinear",
            "seed": null, "fill_value": 0.0})
    );
    assert_eq!(
        RandomZoom::new((-0.2, 0.3)).fill_mode(FillMode::Constant).seed(Some(4)).fill_value(1.5).config(),
        serde_json::json!({"name": "", "height_factor": [-0.2, 0.3], "width_factor": null, "fill_mode": "constant",
            "interpolation": "bilinear", "seed": 4, "fill_value": 1.5})
    );
    assert_eq!(
        RandomTranslation::new(0.1, [0.0, 0.2]).interpolation(ImageInterpolation::Nearest).config(),
        serde_json::json!({"name": "", "height_factor": 0.1, "width_factor": [0.0, 0.2], "fill_mode": "reflect",
            "interpolation": "nearest", "seed": null, "fill_value": 0.0})
    );
    let err = |mut l: Box<dyn Layer>| {
        l.set_name("bad".into());
        l.build(&[4, 4, 1], &mut Rng::new(1)).unwrap_err().to_string()
    };
    for e in [
        err(Box::new(RandomRotation::new(1.5))),
        err(Box::new(RandomRotation::new((0.1, -1.2)))),
        err(Box::new(RandomZoom::new(0.1).width_factor(Some(Factor::Single(2.0))))),
        err(Box::new(RandomZoom::new((-1.5, 0.0)))),
        err(Box::new(RandomTranslation::new(0.1, 1.01))),
    ] {
        assert!(e.contains("\"bad\"") && e.contains("factor"), "{e}");
    }
    // not an image
    let mut l = RandomZoom::new(0.1);
    assert!(l.build(&[4, 4], &mut Rng::new(1)).is_err());
}

#[test]
fn affine_layer_factors_are_accepted_and_refused_as_keras_does() {
    let builds = |mut l: Box<dyn Layer>| l.build(&[4, 4, 1], &mut Rng::new(1)).is_ok();
    // RandomZoom: every number in (-1, 1] (Keras refuses a zoom of 1 + (-1) = 0)
    assert!(!builds(Box::new(RandomZoom::new(-1.0))));
    assert!(!builds(Box::new(RandomZoom::new((-1.0, 0.2)))));
    assert!(!builds(Box::new(RandomZoom::new(0.1).width_factor(Some(Factor::Range(-1.0, 0.0))))));
    assert!(builds(Box::new(RandomZoom::new(1.0))));
    assert!(builds(Box::new(RandomZoom::new((-0.99, 1.0)).width_factor(Some(Factor::Single(-0.5))))));
    // RandomRotation: one number in [-1, 1]; a pair refused only when its first number is
    // above 1 or its second below -1 (BaseImagePreprocessingLayer._set_factor)
    assert!(builds(Box::new(RandomRotation::new(-1.0))));
    assert!(!builds(Box::new(RandomRotation::new(1.5))));
    assert!(builds(Box::new(RandomRotation::new((0.5, 1.5)))));
    assert!(builds(Box::new(RandomRotation::new((-1.5, 0.2)))));
    assert!(builds(Box::new(RandomRotation::new((0.2, 0.1)))));
    assert!(!builds(Box::new(RandomRotation::new((1.5, 0.2)))));
    assert!(!builds(Box::new(RandomRotation::new((0.2, -1.5)))));
    assert!(!builds(Box::new(RandomRotation::new((0.1, f64::NAN)))));
    // RandomTranslation: every number in [-1, 1]
    assert!(builds(Box::new(RandomTranslation::new((-1.0, 1.0), -1.0))));
    assert!(!builds(Box::new(RandomTranslation::new((-1.01, 0.0), 0.1))));
    // a range beyond a turn draws angles beyond 2π
    let x = uniform(3, 0.0, 1.0, &[2, 5, 5, 1]);
    let y = train(&built(RandomRotation::new((0.5, 1.5)), &[5, 5, 1]), &x, 1);
    assert!(y.to_vec::<f32>().unwrap().iter().all(|v| (0.0..=1.0).contains(v)));
}
