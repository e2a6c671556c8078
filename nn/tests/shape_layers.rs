//! The shape layers (ZeroPadding1D/2D, Cropping1D/2D, UpSampling1D/2D, RepeatVector, Permute):
//! forward values against hand-computed Keras results, output shapes, gradients by finite
//! differences, configs and errors.

use keel_autograd::{gradcheck, Var};
use keel_nn::prelude::*;
use keel_nn::{Error, Margins};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};

fn built<L: Layer>(mut l: L, shape: &[usize]) -> L {
    l.set_name("l".into());
    l.build(shape, &mut Rng::new(1)).unwrap();
    l
}

fn run(l: &dyn Layer, x: &Tensor) -> Result<Tensor, Error> {
    Ok(l.forward(&Var::constant(x.clone()), &mut Ctx::inference())?.into_value())
}

/// The layer's output on `x` (shape and values), checked against `output_shape`.
fn forward(l: &dyn Layer, x: &Tensor) -> (Vec<usize>, Vec<f32>) {
    let y = run(l, x).unwrap();
    assert_eq!(&y.dims()[1..], l.output_shape(&x.dims()[1..]).unwrap(), "{}: forward vs output_shape", l.name());
    (y.dims().to_vec(), y.to_vec::<f32>().unwrap())
}

/// `0, 1, 2, ...` in `shape`.
fn iota(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|i| i as f32).collect::<Vec<_>>(), shape.to_vec()).unwrap()
}

fn close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-6 * (1.0 + w.abs()), "{got:?} vs {want:?}");
    }
}

#[test]
fn up_sampling2d_nearest_repeats_rows_and_columns() {
    // one 2x2 image, 2 channels: pixel (i, j) holds [10(2i + j), 10(2i + j) + 1]
    let x = Tensor::from_vec(vec![0.0f32, 1.0, 10.0, 11.0, 20.0, 21.0, 30.0, 31.0], (1, 2, 2, 2)).unwrap();
    let l = built(UpSampling2D::new((2, 3)), &[2, 2, 2]);
    let (dims, y) = forward(&l, &x);
    assert_eq!(dims, [1, 4, 6, 2]);
    let row = |a: f32, b: f32| [a, a + 1.0, a, a + 1.0, a, a + 1.0, b, b + 1.0, b, b + 1.0, b, b + 1.0];
    let want: Vec<f32> = [row(0.0, 10.0), row(0.0, 10.0), row(20.0, 30.0), row(20.0, 30.0)].concat();
    close(&y, &want);
    assert_eq!(UpSampling2D::default().size(), (2, 2));
}

#[test]
fn up_sampling2d_bilinear_matches_keras_resize() {
    // tf.image.resize([[1, 2], [3, 4]], (4, 4), "bilinear") (half-pixel centres)
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], (1, 2, 2, 1)).unwrap();
    let l = built(UpSampling2D::new(2).interpolation(Interpolation::Bilinear), &[2, 2, 1]);
    let (dims, y) = forward(&l, &x);
    assert_eq!(dims, [1, 4, 4, 1]);
    #[rustfmt::skip]
    let want = [
        1.0, 1.25, 1.75, 2.0,
        1.5, 1.75, 2.25, 2.5,
        2.5, 2.75, 3.25, 3.5,
        3.0, 3.25, 3.75, 4.0,
    ];
    close(&y, &want);
    // an odd factor along the width, one row (repeated) along the height: the ramp
    // 0, 3, 6 sampled at (i + 0.5) / 3 - 0.5, clamped at both ends
    let x = Tensor::from_vec(vec![0.0f32, 3.0, 6.0], (1, 1, 3, 1)).unwrap();
    let l = built(UpSampling2D::new((2, 3)).interpolation(Interpolation::Bilinear), &[1, 3, 1]);
    let (dims, y) = forward(&l, &x);
    assert_eq!(dims, [1, 2, 9, 1]);
    let ramp = [0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 6.0];
    close(&y, &[ramp, ramp].concat());
}

#[test]
fn up_sampling1d_repeats_steps() {
    let x = iota(&[2, 2, 2]); // two sequences of 2 steps x 2 channels
    let l = built(UpSampling1D::new(3), &[2, 2]);
    let (dims, y) = forward(&l, &x);
    assert_eq!(dims, [2, 6, 2]);
    let want = [0., 1., 0., 1., 0., 1., 2., 3., 2., 3., 2., 3., 4., 5., 4., 5., 4., 5., 6., 7., 6., 7., 6., 7.];
    close(&y, &want);
}

#[test]
fn zero_padding2d_takes_keras_three_forms() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], (1, 2, 2, 1)).unwrap();
    // int: one zero on every side
    let (dims, y) = forward(&built(ZeroPadding2D::new(1), &[2, 2, 1]), &x);
    assert_eq!(dims, [1, 4, 4, 1]);
    #[rustfmt::skip]
    close(&y, &[
        0., 0., 0., 0.,
        0., 1., 2., 0.,
        0., 3., 4., 0.,
        0., 0., 0., 0.,
    ]);
    // (symmetric_height, symmetric_width)
    let (dims, y) = forward(&built(ZeroPadding2D::new((0, 1)), &[2, 2, 1]), &x);
    assert_eq!(dims, [1, 2, 4, 1]);
    close(&y, &[0., 1., 2., 0., 0., 3., 4., 0.]);
    // ((top, bottom), (left, right))
    let l = built(ZeroPadding2D::new(((1, 0), (0, 2))), &[2, 2, 1]);
    assert_eq!(l.padding(), Margins([(1, 0), (0, 2)]));
    let (dims, y) = forward(&l, &x);
    assert_eq!(dims, [1, 3, 4, 1]);
    close(&y, &[0., 0., 0., 0., 1., 2., 0., 0., 3., 4., 0., 0.]);
    // channels padded together
    let x = iota(&[1, 1, 1, 3]);
    let (dims, y) = forward(&built(ZeroPadding2D::new(((0, 0), (1, 0))), &[1, 1, 3]), &x);
    assert_eq!(dims, [1, 1, 2, 3]);
    close(&y, &[0., 0., 0., 0., 1., 2.]);
}

#[test]
fn zero_padding1d_pads_steps() {
    let x = iota(&[1, 2, 2]);
    let (dims, y) = forward(&built(ZeroPadding1D::new(1), &[2, 2]), &x);
    assert_eq!(dims, [1, 4, 2]);
    close(&y, &[0., 0., 0., 1., 2., 3., 0., 0.]);
    let (dims, y) = forward(&built(ZeroPadding1D::new((2, 0)), &[2, 2]), &x);
    assert_eq!(dims, [1, 4, 2]);
    close(&y, &[0., 0., 0., 0., 0., 1., 2., 3.]);
}

#[test]
fn cropping_cuts_the_edges() {
    let x = iota(&[1, 4, 4, 1]);
    let (dims, y) = forward(&built(Cropping2D::new(1), &[4, 4, 1]), &x);
    assert_eq!(dims, [1, 2, 2, 1]);
    close(&y, &[5., 6., 9., 10.]);
    let (dims, y) = forward(&built(Cropping2D::new((1, 0)), &[4, 4, 1]), &x);
    assert_eq!(dims, [1, 2, 4, 1]);
    close(&y, &[4., 5., 6., 7., 8., 9., 10., 11.]);
    let (dims, y) = forward(&built(Cropping2D::new(((0, 3), (2, 1))), &[4, 4, 1]), &x);
    assert_eq!(dims, [1, 1, 1, 1]);
    close(&y, &[2.]);
    let x = iota(&[2, 4, 1]);
    let l = built(Cropping1D::new((1, 2)), &[4, 1]);
    assert_eq!(l.cropping(), Margins([(1, 2)]));
    let (dims, y) = forward(&l, &x);
    assert_eq!(dims, [2, 1, 1]);
    close(&y, &[1., 5.]);
    let (dims, y) = forward(&built(Cropping1D::new(1), &[4, 1]), &x);
    assert_eq!(dims, [2, 2, 1]);
    close(&y, &[1., 2., 5., 6.]);
}

#[test]
fn repeat_vector_and_permute() {
    let x = iota(&[2, 3]);
    let (dims, y) = forward(&built(RepeatVector::new(2), &[3]), &x);
    assert_eq!(dims, [2, 2, 3]);
    close(&y, &[0., 1., 2., 0., 1., 2., 3., 4., 5., 3., 4., 5.]);

    // Permute((2, 1)): the two per-sample axes swap, the batch axis stays
    let x = iota(&[2, 2, 3]);
    let (dims, y) = forward(&built(Permute::new([2, 1]), &[2, 3]), &x);
    assert_eq!(dims, [2, 3, 2]);
    close(&y, &[0., 3., 1., 4., 2., 5., 6., 9., 7., 10., 8., 11.]);
    // Permute((3, 1, 2)): [a, b, c] -> [c, a, b], out[k][i][j] = in[i][j][k]
    let x = iota(&[1, 2, 2, 3]);
    let (dims, y) = forward(&built(Permute::new([3, 1, 2]), &[2, 2, 3]), &x);
    assert_eq!(dims, [1, 3, 2, 2]);
    close(&y, &[0., 3., 6., 9., 1., 4., 7., 10., 2., 5., 8., 11.]);
    // identity
    let (_, y) = forward(&built(Permute::new([1, 2]), &[2, 3]), &iota(&[1, 2, 3]));
    close(&y, &iota(&[6]).to_vec::<f32>().unwrap());
}

/// Every layer's gradient by central finite differences, in f64 (nearest up-sampling and
/// RepeatVector sum the copies' gradients, bilinear spreads them by its weights, padding
/// and cropping pass the kept entries' through).
#[test]
fn gradients_match_finite_differences() {
    let cases: Vec<(Box<dyn Layer>, Vec<usize>)> = vec![
        (Box::new(UpSampling2D::new((2, 3))), vec![2, 2, 3, 2]),
        (Box::new(UpSampling2D::new((3, 2)).interpolation(Interpolation::Bilinear)), vec![2, 3, 4, 2]),
        (Box::new(UpSampling2D::new(2).interpolation(Interpolation::Bilinear)), vec![1, 1, 2, 1]),
        (Box::new(UpSampling1D::new(2)), vec![2, 3, 2]),
        (Box::new(ZeroPadding2D::new(((1, 2), (0, 1)))), vec![2, 2, 3, 2]),
        (Box::new(ZeroPadding1D::new((0, 2))), vec![2, 3, 2]),
        (Box::new(Cropping2D::new(((1, 0), (1, 1)))), vec![2, 3, 4, 2]),
        (Box::new(Cropping1D::new(1)), vec![2, 4, 2]),
        (Box::new(RepeatVector::new(3)), vec![2, 4]),
        (Box::new(Permute::new([3, 1, 2])), vec![2, 2, 3, 4]),
    ];
    for (i, (mut layer, shape)) in cases.into_iter().enumerate() {
        layer.build(&shape[1..], &mut Rng::new(0)).unwrap();
        let x = Tensor::rand_normal(i as u64, 0.0, 1.0, shape.clone(), DType::F64, &Device::Cpu).unwrap();
        let report = gradcheck(|v| Ok(layer.forward(&v[0], &mut Ctx::inference()).expect("forward")), &[x])
            .unwrap_or_else(|e| panic!("{}: {e}", layer.class_name()));
        assert!(report.checked > 0);
    }
}

#[test]
fn configs_use_keras_keys_and_normalized_forms() {
    let cfg = |l: &dyn Layer| l.config();
    let c = cfg(&ZeroPadding2D::new(1).with_name("zp"));
    assert_eq!(c, serde_json::json!({"name": "zp", "padding": [[1, 1], [1, 1]]}));
    assert_eq!(cfg(&ZeroPadding2D::new((1, 2)))["padding"], serde_json::json!([[1, 1], [2, 2]]));
    assert_eq!(cfg(&ZeroPadding1D::new(3))["padding"], serde_json::json!([3, 3]));
    assert_eq!(cfg(&Cropping2D::new(((0, 1), (2, 3))))["cropping"], serde_json::json!([[0, 1], [2, 3]]));
    assert_eq!(cfg(&Cropping1D::new((1, 0)))["cropping"], serde_json::json!([1, 0]));
    let c = cfg(&UpSampling2D::new((2, 3)).interpolation(Interpolation::Bilinear));
    assert_eq!(c["size"], serde_json::json!([2, 3]));
    assert_eq!(c["interpolation"], "bilinear");
    assert_eq!(cfg(&UpSampling1D::new(4))["size"], 4);
    assert_eq!(cfg(&RepeatVector::new(5))["n"], 5);
    assert_eq!(cfg(&Permute::new([2, 1]))["dims"], serde_json::json!([2, 1]));
    // Keras's forms read back, mixed per-axis entries included
    let m2 = |v: serde_json::Value| serde_json::from_value::<Margins<2>>(v);
    assert_eq!(m2(serde_json::json!(2)).unwrap(), Margins([(2, 2), (2, 2)]));
    assert_eq!(m2(serde_json::json!([1, 2])).unwrap(), Margins([(1, 1), (2, 2)]));
    assert_eq!(m2(serde_json::json!([[1, 2], [3, 4]])).unwrap(), Margins([(1, 2), (3, 4)]));
    assert_eq!(m2(serde_json::json!([1, [3, 4]])).unwrap(), Margins([(1, 1), (3, 4)]));
    for bad in [
        serde_json::json!(-1),
        serde_json::json!([1, 2, 3]),
        serde_json::json!([[1, 2, 3], 1]),
        serde_json::json!("same"),
    ] {
        assert!(m2(bad.clone()).is_err(), "{bad}");
    }
    let m1 = |v: serde_json::Value| serde_json::from_value::<Margins<1>>(v);
    assert_eq!(m1(serde_json::json!(2)).unwrap(), Margins([(2, 2)]));
    assert_eq!(m1(serde_json::json!([0, 3])).unwrap(), Margins([(0, 3)]));
    assert!(m1(serde_json::json!([[0, 3]])).is_err());
    assert_eq!(Interpolation::from_name("bilinear").unwrap(), Interpolation::Bilinear);
    let e = Interpolation::from_name("bicubic").unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { .. }));
    let msg = e.to_string();
    assert!(msg.contains("bicubic") && msg.contains("\"nearest\"") && msg.contains("\"bilinear\""), "{msg}");
}

/// Bad configurations and inputs are errors naming the layer and the shape, from build,
/// `output_shape` and forward alike; nothing panics.
#[test]
fn bad_configs_and_inputs_are_errors() {
    let try_build = |mut l: Box<dyn Layer>, shape: &[usize]| -> Error {
        l.set_name("bad".into());
        let e = l.output_shape(shape).unwrap_err();
        assert_eq!(l.build(shape, &mut Rng::new(0)).unwrap_err(), e);
        let mut batch = vec![1];
        batch.extend_from_slice(shape);
        let x = Tensor::zeros(batch, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(run(l.as_ref(), &x).unwrap_err(), e);
        let msg = e.to_string();
        assert!(msg.contains("\"bad\"") && msg.contains(l.class_name()), "{msg}");
        e
    };
    let incompatible = |e: &Error, shape: &str| {
        assert!(matches!(e, Error::IncompatibleInput { .. }), "{e:?}");
        assert!(e.to_string().contains(shape), "{e}");
    };
    // cropping as large as the input
    let e = try_build(Box::new(Cropping2D::new(((2, 2), (0, 0)))), &[4, 5, 1]);
    incompatible(&e, "[4, 5, 1]");
    assert!(e.to_string().contains("height") && e.to_string().contains("2 + 2"), "{e}");
    incompatible(&try_build(Box::new(Cropping2D::new((0, 3))), &[4, 5, 1]), "[4, 5, 1]");
    incompatible(&try_build(Box::new(Cropping1D::new((3, 1))), &[4, 2]), "[4, 2]");
    // wrong ranks
    for (l, shape) in [
        (Box::new(ZeroPadding2D::new(1)) as Box<dyn Layer>, vec![4, 4]),
        (Box::new(ZeroPadding1D::new(1)), vec![4, 4, 1]),
        (Box::new(Cropping2D::new(1)), vec![4, 4, 4, 1]),
        (Box::new(Cropping1D::new(1)), vec![4]),
        (Box::new(UpSampling2D::new(2)), vec![4, 1]),
        (Box::new(UpSampling1D::new(2)), vec![4, 4, 1]),
        (Box::new(RepeatVector::new(2)), vec![4, 2]),
        (Box::new(Permute::new([2, 1])), vec![2, 3, 4]),
    ] {
        let want = format!("{shape:?}");
        let e = try_build(l, &shape);
        incompatible(&e, &want);
        assert!(e.to_string().contains("rank"), "{e}");
    }
    // dims that are not a permutation of 1..=rank (Keras counts from 1)
    for dims in [vec![0, 1], vec![1, 1], vec![1, 3], vec![2, 3]] {
        let e = try_build(Box::new(Permute::new(dims.clone())), &[2, 3]);
        assert!(matches!(e, Error::InvalidConfig { .. }), "{e:?}");
        assert!(e.to_string().contains(&format!("{dims:?}")) && e.to_string().contains("1..=2"), "{e}");
    }
    // zero factors
    for l in [Box::new(UpSampling2D::new((2, 0))) as Box<dyn Layer>, Box::new(UpSampling1D::new(0))] {
        let shape: &[usize] = if l.class_name() == "UpSampling1D" { &[3, 1] } else { &[3, 3, 1] };
        assert!(matches!(try_build(l, shape), Error::InvalidConfig { .. }));
    }
    assert!(matches!(try_build(Box::new(RepeatVector::new(0)), &[3]), Error::InvalidConfig { .. }));
    // a Sequential reports it when the layer is added, naming the layer
    let mut m = Sequential::new();
    m.add(Conv2D::new(2, 3).input_shape([5, 5, 1]));
    let e = m.try_add(Cropping2D::new(2)).unwrap_err().to_string();
    assert!(e.contains("cropping2d") && e.contains("[3, 3, 2]"), "{e}");
}

/// A Keras-style autoencoder: Conv2D -> MaxPooling2D -> UpSampling2D (both interpolations)
/// -> ZeroPadding2D -> Cropping2D -> Conv2D learns to reconstruct its input; a few hand SGD
/// steps lower the loss, the gradient reaching every kernel through the shape layers.
#[test]
fn autoencoder_trains_through_the_shape_layers() {
    for interpolation in [Interpolation::Nearest, Interpolation::Bilinear] {
        let mut m = Sequential::with_seed(3);
        m.add(Conv2D::new(4, 3).padding(Padding::Same).activation(Activation::Relu).input_shape([6, 6, 1]));
        m.add(MaxPooling2D::new(2));
        m.add(UpSampling2D::new(2).interpolation(interpolation));
        m.add(ZeroPadding2D::new(((1, 0), (0, 1))));
        m.add(Cropping2D::new(((0, 1), (1, 0))));
        m.add(Conv2D::new(1, 3).padding(Padding::Same));
        assert_eq!(m.output_shapes().unwrap(), vec![vec![6, 6, 1]]);
        let x = Tensor::rand_uniform(5, 0.0, 1.0, (4, 6, 6, 1), DType::F32, &Device::Cpu).unwrap();
        let loss = |m: &Sequential, ctx: &mut Ctx<'_>| -> Var {
            let y = m.forward(&[Var::constant(x.clone())], ctx).unwrap().remove(0);
            y.sub(&Var::constant(x.clone())).unwrap().square().unwrap().mean_all().unwrap()
        };
        let mut losses = Vec::new();
        let mut rng = Rng::new(0);
        for _ in 0..5 {
            let tape = keel_autograd::Tape::new();
            let l = loss(&m, &mut Ctx::train(&tape, &mut rng));
            losses.push(l.value().to_scalar::<f32>().unwrap());
            let grads = tape.backward(&l).unwrap();
            for p in m.trainable_params() {
                let g = grads.get(&p).expect("every kernel and bias gets a gradient");
                p.set(p.value().sub(&g.mul_scalar(0.2).unwrap()).unwrap()).unwrap();
            }
        }
        assert!(losses.last() < losses.first(), "{interpolation:?}: {losses:?}");
    }
}

/// Sizes past what memory can address are errors, not a panic or an abort in the allocator
/// (found by review: capacity overflow in the bilinear offsets and the repeat copy).
#[test]
fn huge_repeats_are_errors_not_panics() {
    use keel_nn::{Interpolation, RepeatVector, UpSampling1D, UpSampling2D};
    let ones = |s: &[usize]| Var::constant(Tensor::ones(s.to_vec(), DType::F32, &Device::Cpu).unwrap());
    let run = |mut l: Box<dyn Layer>, shape: &[usize]| {
        l.set_name("big".into());
        l.build(&shape[1..], &mut Rng::new(0)).and_then(|_| l.forward(&ones(shape), &mut Ctx::inference()))
    };
    let bilinear = UpSampling2D::new((1usize << 60, 1)).interpolation(Interpolation::Bilinear);
    assert!(run(Box::new(bilinear), &[1, 2, 2, 1]).is_err());
    assert!(run(Box::new(UpSampling2D::new((1usize << 40, 1 << 30))), &[1, 2, 2, 1]).is_err());
    assert!(run(Box::new(UpSampling1D::new(1usize << 62)), &[1, 2, 1]).is_err());
    assert!(run(Box::new(RepeatVector::new(1usize << 61)), &[1, 1]).is_err());
    assert!(run(Box::new(RepeatVector::new(1usize << 40)), &[1, 1 << 20]).is_err());
}
