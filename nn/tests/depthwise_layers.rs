//! DepthwiseConv2D and SeparableConv2D: output shapes, parameter counts and weight shapes
//! (Keras 3's), forward values by hand and against the tensor-level ops, config errors,
//! penalties, and a small model that learns.

use keel_autograd::Var;
use keel_nn::prelude::*;
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};

fn built<L: Layer>(mut l: L, shape: &[usize]) -> (L, Vec<usize>) {
    l.set_name("l".into());
    l.build(shape, &mut Rng::new(1)).unwrap();
    let out = l.output_shape(shape).unwrap();
    (l, out)
}

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape).unwrap()
}

fn infer(l: &dyn Layer, x: &Tensor) -> Vec<f32> {
    l.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap().into_value().to_vec::<f32>().unwrap()
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

fn weight_dims(l: &dyn Layer) -> Vec<(String, Vec<usize>)> {
    l.weights().iter().map(|w| (w.name.to_string(), w.param.value().dims().to_vec())).collect()
}

fn named(v: Vec<(&str, Vec<usize>)>) -> Vec<(String, Vec<usize>)> {
    v.into_iter().map(|(n, d)| (n.to_string(), d)).collect()
}

#[test]
fn depthwise_conv2d_shapes_params_and_weights() {
    // Keras: DepthwiseConv2D(3) on (28, 28, 8) -> (26, 26, 8), 3*3*8 + 8 = 80 parameters
    let (l, out) = built(DepthwiseConv2D::new(3), &[28, 28, 8]);
    assert_eq!(out, vec![26, 26, 8]);
    assert_eq!(l.count_params(), 80);
    assert_eq!(weight_dims(&l), named(vec![("kernel", vec![3, 3, 8, 1]), ("bias", vec![8])]));
    let (l, out) =
        built(DepthwiseConv2D::new((3, 5)).depth_multiplier(3).padding(Padding::Same).strides(2), &[9, 10, 4]);
    assert_eq!(out, vec![5, 5, 12]);
    assert_eq!(l.count_params(), 3 * 5 * 4 * 3 + 12);
    assert_eq!(weight_dims(&l), named(vec![("kernel", vec![3, 5, 4, 3]), ("bias", vec![12])]));
    let (l, out) = built(DepthwiseConv2D::new(3).dilation_rate(2).use_bias(false), &[10, 10, 2]);
    assert_eq!(out, vec![6, 6, 2]);
    assert_eq!(l.count_params(), 18);
    assert_eq!(l.base_name(), "depthwise_conv2d");
}

#[test]
fn separable_conv2d_shapes_params_and_weights() {
    // Keras: SeparableConv2D(16, 3) on (28, 28, 8): 3*3*8 + 8*16 + 16 = 216
    let (l, out) = built(SeparableConv2D::new(16, 3), &[28, 28, 8]);
    assert_eq!(out, vec![26, 26, 16]);
    assert_eq!(l.count_params(), 216);
    let (l, out) = built(SeparableConv2D::new(5, 3).depth_multiplier(2).padding(Padding::Same).strides(2), &[7, 6, 3]);
    assert_eq!(out, vec![4, 3, 5]);
    assert_eq!(l.count_params(), 3 * 3 * 3 * 2 + 6 * 5 + 5);
    assert_eq!(
        weight_dims(&l),
        named(vec![("depthwise_kernel", vec![3, 3, 3, 2]), ("pointwise_kernel", vec![1, 1, 6, 5]), ("bias", vec![5])])
    );
    assert_eq!(l.base_name(), "separable_conv2d");
}

#[test]
fn depthwise_conv2d_values_by_hand_and_against_the_op() {
    // 2 channels, multiplier 2, a 2x2 kernel of known values on a 2x2 image: one output pixel
    // with channels c * 2 + j, TensorFlow's order
    let (l, _) = built(DepthwiseConv2D::new(2).depth_multiplier(2), &[2, 2, 2]);
    let k: Vec<f32> = (1..=16).map(|v| v as f32).collect(); // [kh, kw, c, j]: flat index + 1
    l.weights()[0].param.assign(&t(&k, &[2, 2, 2, 2])).unwrap();
    l.weights()[1].param.assign(&t(&[0.5, 0.0, 0.0, -0.5], &[4])).unwrap();
    // x[y, x, c]: channel 0 = 1, 2, 3, 4 and channel 1 = 10, 20, 30, 40 (row-major pixels)
    let x = t(&[1., 10., 2., 20., 3., 30., 4., 40.], &[1, 2, 2, 2]);
    // out[c0, j0] = 1*1 + 2*5 + 3*9 + 4*13 = 90 (+0.5); out[c0, j1] = 1*2 + 2*6 + 3*10 + 4*14 = 100
    // out[c1, j0] = 10*3 + 20*7 + 30*11 + 40*15 = 1100; out[c1, j1] = 10*4 + 20*8 + 30*12 + 40*16 = 1200 (-0.5)
    close(&infer(&l, &x), &[90.5, 100.0, 1100.0, 1199.5], 0.0);
    // random case: the tensor-level op plus the bias, then the activation
    let (l, _) = built(
        DepthwiseConv2D::new(3).depth_multiplier(2).strides(2).padding(Padding::Same).activation(Activation::Tanh),
        &[7, 6, 3],
    );
    l.weights()[1].param.assign(&t(&[0.1, -0.2, 0.3, 0.0, 0.5, -0.1], &[6])).unwrap();
    let x = Tensor::rand_normal(4, 0.0, 1.0, (2, 7, 6, 3), DType::F32, &Device::Cpu).unwrap();
    let want = x
        .depthwise_conv2d(&l.weights()[0].param.value(), (2, 2), Padding::Same, (1, 1))
        .unwrap()
        .add(&l.weights()[1].param.value())
        .unwrap()
        .tanh()
        .unwrap();
    close(&infer(&l, &x), &want.to_vec::<f32>().unwrap(), 1e-6);
}

#[test]
fn separable_conv2d_is_depthwise_then_pointwise() {
    for act in [Activation::Linear, Activation::Relu, Activation::Sigmoid] {
        for use_bias in [true, false] {
            let layer = SeparableConv2D::new(4, 3).depth_multiplier(2).padding(Padding::Same).activation(act);
            let (l, _) = built(layer.use_bias(use_bias), &[6, 5, 3]);
            if use_bias {
                l.weights()[2].param.assign(&t(&[0.3, -0.4, 0.1, 0.0], &[4])).unwrap();
            }
            let x = Tensor::rand_normal(5, 0.0, 1.0, (2, 6, 5, 3), DType::F32, &Device::Cpu).unwrap();
            let w: Vec<Tensor> = l.weights().iter().map(|w| w.param.value()).collect();
            let mut want = x
                .depthwise_conv2d(&w[0], (1, 1), Padding::Same, (1, 1))
                .unwrap()
                .conv2d(&w[1], (1, 1), Padding::Valid, (1, 1))
                .unwrap();
            if use_bias {
                want = want.add(&w[2]).unwrap();
            }
            let want = act.apply(&Var::constant(want)).unwrap().into_value();
            close(&infer(&l, &x), &want.to_vec::<f32>().unwrap(), 1e-6);
        }
    }
}

#[test]
fn config_errors_and_penalties() {
    let err = |mut l: Box<dyn Layer>, shape: &[usize]| {
        l.set_name("dw".into());
        l.build(shape, &mut Rng::new(1)).unwrap_err().to_string()
    };
    let msg = err(Box::new(DepthwiseConv2D::new(3)), &[4, 4]);
    assert!(msg.contains("dw") && msg.contains("rank 3"), "{msg}");
    let msg = err(Box::new(DepthwiseConv2D::new(3).depth_multiplier(0)), &[4, 4, 1]);
    assert!(msg.contains("depth_multiplier"), "{msg}");
    // strides > 1 with dilation_rate > 1 is Keras 3.15's too (values: train/tests/keras_conv_affine.rs)
    let (_, out) = built(DepthwiseConv2D::new(3).strides(2).dilation_rate(2), &[9, 9, 2]);
    assert_eq!(out, [3, 3, 2]);
    let (_, out) = built(SeparableConv2D::new(4, 3).strides(3).dilation_rate(2).padding(Padding::Same), &[10, 8, 2]);
    assert_eq!(out, [4, 3, 4]);
    let msg = err(Box::new(SeparableConv2D::new(0, 3)), &[4, 4, 1]);
    assert!(msg.contains("filters"), "{msg}");
    let msg = err(Box::new(SeparableConv2D::new(2, 5)), &[4, 4, 1]);
    assert!(msg.contains("dw") && msg.contains("window"), "{msg}");
    // a built layer refuses another channel count
    let (mut l, _) = built(DepthwiseConv2D::new(3), &[5, 5, 2]);
    assert!(l.build(&[5, 5, 3], &mut Rng::new(1)).is_err());

    // penalties: l2 on each kernel (Keras: l2 * sum(w^2))
    let l2 = |v: f64| Regularizer::L2 { l2: v };
    let (l, _) =
        built(SeparableConv2D::new(2, 3).depthwise_regularizer(l2(0.1)).pointwise_regularizer(l2(0.01)), &[5, 5, 2]);
    let sumsq = |w: Tensor| w.mul(&w).unwrap().sum_all().unwrap().to_vec::<f32>().unwrap()[0];
    let sq = |i: usize| sumsq(l.weights()[i].param.value());
    let want = 0.1 * sq(0) + 0.01 * sq(1);
    let got = l.regularization_loss(&Ctx::inference()).unwrap().unwrap().into_value().to_vec::<f32>().unwrap()[0];
    assert!((got - want).abs() <= 1e-5 * want.abs(), "{got} vs {want}");
    let (l, _) = built(DepthwiseConv2D::new(3).depthwise_regularizer(l2(0.5)), &[5, 5, 2]);
    let k = sumsq(l.weights()[0].param.value());
    let got = l.regularization_loss(&Ctx::inference()).unwrap().unwrap().into_value().to_vec::<f32>().unwrap()[0];
    assert!((got - 0.5 * k).abs() <= 1e-5 * k, "{got} vs {}", 0.5 * k);
}

#[test]
fn glorot_fans_of_the_depthwise_kernel_are_keras() {
    // Keras's compute_fans on (kh, kw, c, m): fan_in = kh*kw*c, fan_out = kh*kw*m; a large
    // kernel's values fill the glorot-uniform range +-sqrt(6 / (fan_in + fan_out))
    let (l, _) = built(DepthwiseConv2D::new(5).depth_multiplier(2), &[9, 9, 64]);
    let limit = (6.0f32 / (25.0 * 64.0 + 25.0 * 2.0)).sqrt();
    let v = l.weights()[0].param.value().to_vec::<f32>().unwrap();
    let max = v.iter().fold(0.0f32, |a, x| a.max(x.abs()));
    assert!(max <= limit && max > 0.95 * limit, "{max} vs {limit}");
}
