//! Layer output shapes, parameter counts (Keras's formulas) and forward values.

use keel_autograd::{Tape, Var};
use keel_nn::prelude::*;
use keel_nn::{Error, Weight};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};

fn built(mut l: impl Layer, shape: &[usize]) -> (impl Layer, Vec<usize>) {
    l.set_name("l".into());
    l.build(shape, &mut Rng::new(1)).unwrap();
    let out = l.output_shape(shape).unwrap();
    (l, out)
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape).unwrap()
}

fn infer(l: &dyn Layer, x: &Tensor) -> Tensor {
    l.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap().into_value()
}

#[test]
fn dense_shape_and_params() {
    let (l, out) = built(Dense::new(7), &[5]);
    assert_eq!(out, vec![7]);
    assert_eq!(l.count_params(), 5 * 7 + 7);
    let (l, out) = built(Dense::new(7).use_bias(false), &[3, 5]);
    assert_eq!(out, vec![3, 7]);
    assert_eq!(l.count_params(), 35);
}

#[test]
fn conv2d_shapes_and_params() {
    let (l, out) = built(Conv2D::new(32, (3, 3)), &[28, 28, 1]);
    assert_eq!(out, vec![26, 26, 32]);
    assert_eq!(l.count_params(), 3 * 3 * 32 + 32);
    let (l, out) = built(Conv2D::new(8, (3, 5)).padding(Padding::Same).strides(2), &[9, 10, 4]);
    assert_eq!(out, vec![5, 5, 8]);
    assert_eq!(l.count_params(), 3 * 5 * 4 * 8 + 8);
    let (_, out) = built(Conv2D::new(2, 3).dilation_rate(2), &[10, 10, 1]);
    assert_eq!(out, vec![6, 6, 2]);
}

#[test]
fn conv2d_transpose_shapes_params_and_values() {
    // Keras's documented example: Conv2DTranspose(32, 2, 2) on (10, 8, 128) -> (20, 16, 32)
    let (l, out) = built(Conv2DTranspose::new(32, 2).strides(2), &[10, 8, 128]);
    assert_eq!(out, vec![20, 16, 32]);
    assert_eq!(l.count_params(), 2 * 2 * 32 * 128 + 32);
    assert_eq!(l.weights()[0].param.value().dims(), &[2, 2, 32, 128]); // [kh, kw, filters, in]
                                                                       // Keras's deconv_output_length: valid = h*s + max(k - s, 0), same = h*s, with
                                                                       // output_padding = (h-1)*s + k - 2*(k//2 if same) + output_padding
    assert_eq!(built(Conv2DTranspose::new(4, 3).strides(2), &[7, 7, 1]).1, vec![15, 15, 4]);
    assert_eq!(built(Conv2DTranspose::new(4, 3).strides(2).padding(Padding::Same), &[7, 5, 1]).1, vec![14, 10, 4]);
    assert_eq!(built(Conv2DTranspose::new(4, 2).strides(3), &[3, 2, 1]).1, vec![9, 6, 4]);
    assert_eq!(built(Conv2DTranspose::new(4, 3).dilation_rate(2), &[5, 5, 1]).1, vec![9, 9, 4]);
    let op = Conv2DTranspose::new(4, 3).strides(2).padding(Padding::Same).output_padding((0, 1));
    assert_eq!(built(op, &[7, 7, 1]).1, vec![13, 14, 4]);
    let op = Conv2DTranspose::new(4, 3).strides(2).output_padding(1);
    assert_eq!(built(op, &[7, 7, 1]).1, vec![16, 16, 4]);
    // values: the transposed convolution of the tensor level plus the bias, then the activation
    let (l, _) =
        built(Conv2DTranspose::new(3, 3).strides(2).padding(Padding::Same).activation(Activation::Tanh), &[3, 4, 2]);
    l.weights()[1].param.assign(&t(&[0.1, -0.2, 0.3], &[3])).unwrap();
    let x = Tensor::rand_normal(4, 0.0, 1.0, (2, 3, 4, 2), DType::F32, &Device::Cpu).unwrap();
    let k = Var::constant(l.weights()[0].param.value());
    let want = Var::constant(x.clone())
        .conv2d_transpose(&k, (6, 8), (2, 2), Padding::Same, (1, 1))
        .unwrap()
        .into_value()
        .add(&l.weights()[1].param.value())
        .unwrap()
        .tanh()
        .unwrap();
    close(&infer(&l, &x).to_vec::<f32>().unwrap(), &want.to_vec::<f32>().unwrap(), 1e-6);
    // hand case: a 2x2 kernel of ones, stride 2, scatters each pixel into its own 2x2 block
    let (l, _) = built(Conv2DTranspose::new(1, 2).strides(2).kernel_initializer(Initializer::Ones), &[2, 2, 1]);
    let y = infer(&l, &t(&[1.0, 2.0, 3.0, 4.0], &[1, 2, 2, 1])).to_vec::<f32>().unwrap();
    close(&y, &[1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.], 0.0);
}

#[test]
fn conv2d_transpose_config_errors() {
    let err = |l: Conv2DTranspose, shape: &[usize]| {
        let mut l = l.with_name("up");
        l.build(shape, &mut Rng::new(1)).unwrap_err().to_string()
    };
    let msg = err(Conv2DTranspose::new(2, 3).strides(2).output_padding(2), &[4, 4, 1]);
    assert!(msg.contains("up") && msg.contains("output_padding 2") && msg.contains("stride 2"), "{msg}");
    let msg = err(Conv2DTranspose::new(2, 3), &[4, 4]);
    assert!(msg.contains("up") && msg.contains("rank 3"), "{msg}");
    let msg = err(Conv2DTranspose::new(0, 3), &[4, 4, 1]);
    assert!(msg.contains("filters"), "{msg}");
    let msg = err(Conv2DTranspose::new(2, 3).strides(0), &[4, 4, 1]);
    assert!(msg.contains("strides"), "{msg}");
    // strides past what memory can address: an error, not a panic, an abort or a tensor whose
    // element count wrapped (found by review)
    let x = Tensor::ones((1, 2, 2, 1), DType::F32, &Device::Cpu).unwrap();
    for s in [1usize << 20, 1 << 30, 1 << 32] {
        let mut l = Conv2DTranspose::new(1, 1).strides(s).use_bias(false).with_name("up");
        let r = l
            .build(&[2, 2, 1], &mut Rng::new(1))
            .and_then(|_| l.forward(&Var::constant(x.clone()), &mut Ctx::inference()));
        assert!(r.is_err(), "strides {s}");
    }
    // an even kernel with same padding and output_padding 0 leaves a size no convolution maps back
    let msg = err(Conv2DTranspose::new(2, 2).strides(2).padding(Padding::Same).output_padding(0), &[4, 4, 1]);
    assert!(msg.contains("up") && msg.contains("convolves back"), "{msg}");
}

#[test]
fn pooling_and_reshaping_shapes() {
    assert_eq!(built(MaxPooling2D::new((2, 2)), &[26, 26, 32]).1, vec![13, 13, 32]);
    assert_eq!(built(MaxPooling2D::new(2), &[11, 11, 64]).1, vec![5, 5, 64]);
    assert_eq!(built(MaxPooling2D::new(3).strides(1), &[5, 5, 2]).1, vec![3, 3, 2]);
    assert_eq!(built(AveragePooling2D::new(2).padding(Padding::Same), &[5, 5, 3]).1, vec![3, 3, 3]);
    assert_eq!(built(GlobalAveragePooling2D::new(), &[5, 4, 3]).1, vec![3]);
    assert_eq!(built(Flatten::new(), &[5, 5, 64]).1, vec![1600]);
    assert_eq!(built(Reshape::new([4, -1]), &[2, 6]).1, vec![4, 3]);
    assert_eq!(built(Dropout::new(0.5), &[7]).1, vec![7]);
    assert_eq!(built(ActivationLayer::new(Activation::Tanh), &[2, 3]).1, vec![2, 3]);
}

#[test]
fn batch_norm_params_4x_channels_2_trainable() {
    let (l, out) = built(BatchNormalization::new(), &[4, 4, 16]);
    assert_eq!(out, vec![4, 4, 16]);
    assert_eq!(l.count_params(), 4 * 16);
    assert_eq!(l.params().len(), 2);
    assert_eq!(l.non_trainable_params().len(), 2);
    let names: Vec<String> = l.weights().iter().map(|w: &Weight| w.name.to_string()).collect();
    assert_eq!(names, ["gamma", "beta", "moving_mean", "moving_variance"]);
}

#[test]
fn wrong_input_shape_names_layer_and_shapes() {
    let mut model = Sequential::new();
    model.add(Dense::new(4).input_shape([3]));
    model.add(Conv2D::new(2, 3));
    let err = model.pending_error().cloned().unwrap();
    let msg = err.to_string();
    assert!(matches!(err, Error::IncompatibleInput { .. }));
    assert!(msg.contains("conv2d") && msg.contains("Conv2D") && msg.contains("[4]"), "{msg}");
    // The kept error comes back from build / forward, and nothing panics.
    assert!(model.build(&[vec![3]]).is_err());
    let x = Var::constant(Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap());
    assert!(model.forward(&[x], &mut Ctx::inference()).is_err());
    // A too-small image for the window.
    let mut m2 = Sequential::new();
    assert!(m2.try_add(Conv2D::new(2, 5).input_shape([3, 3, 1])).is_err());
    // A batch of the wrong per-sample shape.
    let mut m3 = Sequential::new();
    m3.add(Dense::new(2).input_shape([3]));
    let bad = Var::constant(Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap());
    let e = m3.forward(&[bad], &mut Ctx::inference()).unwrap_err().to_string();
    assert!(e.contains("[3]"), "{e}");
}

#[test]
fn unbuilt_layer_errors() {
    let l = Dense::new(2);
    let x = Var::constant(t(&[1.0, 2.0], &[1, 2]));
    assert!(matches!(l.forward(&x, &mut Ctx::inference()), Err(Error::NotBuilt { .. })));
}

#[test]
fn dense_forward_matches_hand_computation() {
    let (l, _) = built(Dense::new(2).activation(Activation::Relu), &[3]);
    let k = l.weights()[0].param.clone();
    let b = l.weights()[1].param.clone();
    k.assign(&t(&[1.0, -1.0, 2.0, 0.5, -3.0, 1.0], &[3, 2])).unwrap();
    b.assign(&t(&[0.5, -10.0], &[2])).unwrap();
    let x = t(&[1.0, 2.0, 3.0, -1.0, 0.0, 1.0], &[2, 3]);
    // row0: [1+4-9+0.5, -1+1+3-10] = [-3.5, -7] -> relu [0, 0]
    // row1: [-1+0-3+0.5, 1+0+1-10] = [-3.5, -8] -> [0, 0]; use linear to see values too
    let y = infer(&l, &x).to_vec::<f32>().unwrap();
    close(&y, &[0.0, 0.0, 0.0, 0.0], 1e-6);
    let z = l.forward_logits(&Var::constant(x), &mut Ctx::inference()).unwrap();
    close(&z.value().to_vec::<f32>().unwrap(), &[-3.5, -7.0, -3.5, -8.0], 1e-6);
    assert_eq!(l.output_activation(), Some(Activation::Relu));
}

#[test]
fn conv2d_forward_matches_tensor_level_conv() {
    let (l, out) = built(Conv2D::new(3, (2, 2)).activation(Activation::Tanh).padding(Padding::Same), &[4, 5, 2]);
    assert_eq!(out, vec![4, 5, 3]);
    let x = Tensor::rand_normal(3, 0.0, 1.0, (2, 4, 5, 2), DType::F32, &Device::Cpu).unwrap();
    let b = l.weights()[1].param.clone();
    b.assign(&t(&[0.1, -0.2, 0.3], &[3])).unwrap();
    let k = l.weights()[0].param.value();
    let want = x.conv2d(&k, (1, 1), Padding::Same, (1, 1)).unwrap().add(&b.value()).unwrap().tanh().unwrap();
    close(&infer(&l, &x).to_vec::<f32>().unwrap(), &want.to_vec::<f32>().unwrap(), 1e-6);
    // Tiny hand case: 1 channel, 2x2 kernel of ones on a 2x2 image (valid) = sum.
    let (l, _) = built(Conv2D::new(1, 2).kernel_initializer(Initializer::Ones), &[2, 2, 1]);
    let y = infer(&l, &t(&[1.0, 2.0, 3.0, 4.0], &[1, 2, 2, 1])).to_vec::<f32>().unwrap();
    close(&y, &[10.0], 1e-6);
}

#[test]
fn pooling_forward_values() {
    let x = t(&[1.0, 5.0, 2.0, 0.0, 3.0, 4.0, -1.0, 8.0, 0.0, 1.0, 2.0, 3.0, 6.0, 7.0, 9.0, -2.0], &[1, 4, 4, 1]);
    let (mp, _) = built(MaxPooling2D::new(2), &[4, 4, 1]);
    close(&infer(&mp, &x).to_vec::<f32>().unwrap(), &[5.0, 8.0, 7.0, 9.0], 0.0);
    let (ap, _) = built(AveragePooling2D::new(2), &[4, 4, 1]);
    close(&infer(&ap, &x).to_vec::<f32>().unwrap(), &[13.0 / 4.0, 9.0 / 4.0, 14.0 / 4.0, 12.0 / 4.0], 1e-6);
    let (gp, _) = built(GlobalAveragePooling2D::new(), &[4, 4, 1]);
    close(&infer(&gp, &x).to_vec::<f32>().unwrap(), &[48.0 / 16.0], 1e-6);
}

#[test]
fn dropout_identity_in_inference_and_seeded_in_training() {
    let (l, _) = built(Dropout::new(0.4), &[1000]);
    let x = Tensor::ones((2, 1000), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(infer(&l, &x).to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
    let run = |seed: u64| {
        let mut rng = Rng::new(seed);
        let mut ctx = Ctx::new(None, true, Some(&mut rng));
        l.forward(&Var::constant(x.clone()), &mut ctx).unwrap().into_value().to_vec::<f32>().unwrap()
    };
    let (a, b, c) = (run(7), run(7), run(8));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let kept = a.iter().filter(|&&v| v != 0.0).count() as f64 / a.len() as f64;
    assert!((kept - 0.6).abs() < 0.05, "kept {kept}");
    assert!(a.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.6).abs() < 1e-5));
    // Training without an rng is an error, not a panic.
    let mut ctx = Ctx::new(None, true, None);
    assert!(l.forward(&Var::constant(x), &mut ctx).is_err());
}

#[test]
fn batch_norm_train_vs_inference() {
    let (l, _) = built(BatchNormalization::new().momentum(0.9), &[2]);
    let x = t(&[1.0, 10.0, 3.0, 20.0, 5.0, 30.0, 7.0, 40.0], &[4, 2]);
    // Inference with fresh stats (mean 0, var 1): y = x / sqrt(1 + eps).
    let s = 1.0 / (1.0f32 + 1e-3).sqrt();
    let y = infer(&l, &x).to_vec::<f32>().unwrap();
    close(&y, &x.to_vec::<f32>().unwrap().iter().map(|v| v * s).collect::<Vec<_>>(), 1e-6);
    // Training: batch stats. col0 mean 4 var 5; col1 mean 25 var 125.
    let mut rng = Rng::new(0);
    let tape = Tape::new();
    let mut ctx = Ctx::train(&tape, &mut rng);
    let y = l.forward(&Var::constant(x.clone()), &mut ctx).unwrap().into_value().to_vec::<f32>().unwrap();
    let want: Vec<f32> = [1.0f32, 10.0, 3.0, 20.0, 5.0, 30.0, 7.0, 40.0]
        .iter()
        .enumerate()
        .map(
            |(i, &v)| {
                if i % 2 == 0 {
                    (v - 4.0) / (5.0f32 + 1e-3).sqrt()
                } else {
                    (v - 25.0) / (125.0f32 + 1e-3).sqrt()
                }
            },
        )
        .collect();
    close(&y, &want, 1e-5);
    // Moving stats moved by (1 - momentum) towards the batch stats.
    let bn = l.weights();
    close(&bn[2].param.value().to_vec::<f32>().unwrap(), &[0.4, 2.5], 1e-6);
    close(&bn[3].param.value().to_vec::<f32>().unwrap(), &[0.9 + 0.5, 0.9 + 12.5], 1e-5);
    // Inference uses the moving stats now.
    let y = infer(&l, &x).to_vec::<f32>().unwrap();
    close(&y[..2], &[(1.0 - 0.4) / (1.4f32 + 1e-3).sqrt(), (10.0 - 2.5) / (13.4f32 + 1e-3).sqrt()], 1e-5);
}

#[test]
fn activations_by_name() {
    for a in Activation::ALL {
        assert_eq!(Activation::from_name(a.name()).unwrap(), *a);
    }
    assert_eq!(Activation::from_name("swish").unwrap(), Activation::Silu);
    assert!(Activation::from_name("nope").is_err());
    let x = t(&[-1.0, 0.0, 2.0], &[1, 3]);
    let y = Activation::LeakyRelu.apply_tensor(&x).unwrap().to_vec::<f32>().unwrap();
    close(&y, &[-0.2, 0.0, 2.0], 1e-6);
    let y = Activation::Softmax.apply_tensor(&x).unwrap().to_vec::<f32>().unwrap();
    let e = [(-1.0f32).exp(), 1.0, 2.0f32.exp()];
    let s: f32 = e.iter().sum();
    close(&y, &e.map(|v| v / s), 1e-6);
}

#[test]
fn initializers_are_seeded_and_scaled() {
    let mut r1 = Rng::new(3);
    let mut r2 = Rng::new(3);
    let a = Initializer::GlorotUniform.sample(&[3, 3, 16, 32], &mut r1).unwrap().to_vec::<f32>().unwrap();
    let b = Initializer::GlorotUniform.sample(&[3, 3, 16, 32], &mut r2).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(a, b);
    let limit = (6.0f32 / (9.0 * 16.0 + 9.0 * 32.0)).sqrt();
    assert!(a.iter().all(|v| v.abs() <= limit));
    assert!(a.iter().cloned().fold(0.0f32, f32::max) > 0.9 * limit);
    let h = Initializer::HeNormal.sample(&[400, 300], &mut r1).unwrap().to_vec::<f32>().unwrap();
    let std = (h.iter().map(|v| (v * v) as f64).sum::<f64>() / h.len() as f64).sqrt();
    assert!((std - (2.0f64 / 400.0).sqrt()).abs() < 0.05 * (2.0f64 / 400.0).sqrt(), "std {std}");
    let limit2 = 2.0 * (2.0f32 / 400.0).sqrt() / 0.879_625_7;
    assert!(h.iter().all(|v| v.abs() <= limit2 * 1.0001));
    for n in ["glorot_normal", "he_uniform", "zeros", "ones", "random_normal", "random_uniform", "lecun_normal"] {
        Initializer::from_name(n).unwrap().sample(&[4, 4], &mut r1).unwrap();
    }
    assert_eq!(Initializer::Zeros.sample(&[3], &mut r1).unwrap().to_vec::<f32>().unwrap(), vec![0.0; 3]);
}

#[test]
fn regularizers_penalties() {
    let w = Var::constant(t(&[1.0, -2.0, 3.0], &[3]));
    let v = |r: Regularizer| r.penalty(&w).unwrap().value().to_scalar::<f32>().unwrap();
    close(&[v(Regularizer::l1(0.1))], &[0.6], 1e-6);
    close(&[v(Regularizer::l2(0.01))], &[0.14], 1e-6);
    close(&[v(Regularizer::l1_l2(0.1, 0.01))], &[0.74], 1e-6);
    // A Dense kernel regularizer shows up in the model's regularization loss.
    let mut m = Sequential::new();
    m.add(
        Dense::new(2).input_shape([3]).kernel_initializer(Initializer::Ones).kernel_regularizer(Regularizer::l2(0.5)),
    );
    let r = m.regularization_loss(&Ctx::inference()).unwrap().unwrap();
    close(&[r.value().to_scalar::<f32>().unwrap()], &[3.0], 1e-6);
}

#[test]
fn layer_configs_are_keras_like() {
    let (l, _) = built(Conv2D::new(32, (3, 3)).activation(Activation::Relu).padding(Padding::Same), &[8, 8, 1]);
    let c = l.config();
    assert_eq!(c["filters"], 32);
    assert_eq!(c["padding"], "same");
    assert_eq!(c["activation"], "relu");
    assert_eq!(c["kernel_initializer"]["class_name"], "GlorotUniform");
    let d = Dense::new(3).kernel_regularizer(Regularizer::l2(0.01)).config();
    assert_eq!(d["kernel_regularizer"]["config"]["l2"], 0.01);
    assert_eq!(d["units"], 3);
}

/// A NaN token id is an error (it used to cast to 0 and read row 0); out-of-range ids too.
#[test]
fn embedding_refuses_nan_and_out_of_range_ids() {
    let (e, _) = built(Embedding::new(5, 2), &[3]);
    let run = |ids: Vec<f32>| {
        let x = Tensor::from_vec(ids, (1, 3)).unwrap();
        e.forward(&Var::constant(x), &mut Ctx::inference()).map(|v| v.value().dims().to_vec())
    };
    assert_eq!(run(vec![0.0, 1.0, 4.0]).unwrap(), [1, 3, 2]);
    let msg = run(vec![f32::NAN, 1.0, 2.0]).unwrap_err().to_string();
    assert!(msg.contains("NaN") && msg.contains("0..5"), "{msg}");
    assert!(run(vec![5.0, 1.0, 2.0]).is_err());
    assert!(run(vec![-1.0, 1.0, 2.0]).is_err());
}

/// The Keras 3 activations composed of elementwise ops: values against their formulas in
/// f64 (Keras's constants) and gradients by finite differences.
#[test]
fn composed_activations_match_keras_formulas_and_gradchecks() {
    use keel_nn::activation::{SELU_ALPHA, SELU_SCALE};
    let xs: [f64; 9] = [-7.0, -3.5, -1.2, -0.3, 0.4, 1.1, 2.9, 5.5, 8.0];
    let softplus = |x: f64| (1.0 + x.exp()).ln();
    let hard_sigmoid = |x: f64| ((x + 3.0).clamp(0.0, 6.0)) / 6.0;
    let lse = xs.iter().map(|v| v.exp()).sum::<f64>().ln();
    let cases: [(Activation, &dyn Fn(f64) -> f64); 8] = [
        (Activation::Selu, &|x| SELU_SCALE * if x > 0.0 { x } else { SELU_ALPHA * (x.exp() - 1.0) }),
        (Activation::Softsign, &|x| x / (1.0 + x.abs())),
        (Activation::Relu6, &|x| x.clamp(0.0, 6.0)),
        (Activation::HardSigmoid, &hard_sigmoid),
        (Activation::HardSilu, &|x| x * hard_sigmoid(x)),
        (Activation::Mish, &|x| x * softplus(x).tanh()),
        (Activation::Exponential, &|x| x.exp()),
        (Activation::LogSoftmax, &|x| x - lse),
    ];
    let x = Tensor::from_vec(xs.to_vec(), (1, xs.len())).unwrap();
    for (a, f) in cases {
        let got = a.apply_tensor(&x).unwrap().to_vec::<f64>().unwrap();
        for (g, &v) in got.iter().zip(&xs) {
            assert!((g - f(v)).abs() < 1e-12 * f(v).abs().max(1.0), "{a}({v}) = {g}, want {}", f(v));
        }
        assert_eq!(Activation::from_name(a.name()).unwrap(), a);
        // away from the kinks of relu6/hard_sigmoid (at 0, 6, -3, 3), which xs avoids
        keel_autograd::gradcheck(|v| Ok(a.apply(&v[0]).expect("forward")), std::slice::from_ref(&x))
            .unwrap_or_else(|e| panic!("{a}: {e}"));
    }
    assert_eq!(Activation::from_name("hard_swish").unwrap(), Activation::HardSilu);
    // f32: selu keeps Keras's self-normalising constants
    let y = Activation::Selu.apply_tensor(&Tensor::from_vec(vec![-1.0f32, 1.0], 2).unwrap()).unwrap();
    let want = [SELU_SCALE * SELU_ALPHA * ((-1.0f64).exp() - 1.0), SELU_SCALE];
    for (g, w) in y.to_vec::<f32>().unwrap().iter().zip(want) {
        assert!((*g as f64 - w).abs() < 1e-6, "{g} vs {w}");
    }
}

#[test]
fn initializers_read_every_keras_json_form() {
    use serde_json::json;
    let read = |v: serde_json::Value| serde_json::from_value::<Initializer>(v);
    // names, in either spelling
    assert_eq!(read(json!("glorot_uniform")).unwrap(), Initializer::GlorotUniform);
    assert_eq!(read(json!("HeNormal")).unwrap(), Initializer::HeNormal);
    // Keras 2's object form with an empty or seeded config, and Keras 3's with module
    assert_eq!(read(json!({"class_name": "Zeros", "config": {}})).unwrap(), Initializer::Zeros);
    assert_eq!(
        read(json!({"class_name": "GlorotUniform", "config": {"seed": null}})).unwrap(),
        Initializer::GlorotUniform
    );
    let k3 = json!({"module": "keras.initializers", "class_name": "RandomNormal",
                    "config": {"mean": 0.5, "stddev": 0.1, "seed": 3}, "registered_name": null});
    assert_eq!(read(k3).unwrap(), Initializer::RandomNormal { mean: 0.5, stddev: 0.1 });
    assert_eq!(
        read(json!({"class_name": "Constant", "config": {"value": 2.5}})).unwrap(),
        Initializer::Constant { value: 2.5 }
    );
    assert_eq!(read(json!({"class_name": "Orthogonal"})).unwrap(), Initializer::orthogonal());
    assert_eq!(
        read(json!({"class_name": "RandomUniform", "config": {"maxval": 1.0}})).unwrap(),
        Initializer::RandomUniform { minval: -0.05, maxval: 1.0 }
    );
    // keel's own output reads back
    for init in [Initializer::Zeros, Initializer::TruncatedNormal { mean: 1.0, stddev: 2.0 }, Initializer::orthogonal()]
    {
        assert_eq!(read(serde_json::to_value(init).unwrap()).unwrap(), init);
    }
    // errors name the problem
    let e = read(json!({"class_name": "Wavelet", "config": {}})).unwrap_err().to_string();
    assert!(e.contains("Wavelet"), "{e}");
    let e = read(json!({"class_name": "RandomNormal", "config": {"stddev": "wide"}})).unwrap_err().to_string();
    assert!(e.contains("stddev"), "{e}");
    let e = read(json!(3)).unwrap_err().to_string();
    assert!(e.contains("class_name"), "{e}");
}

#[test]
fn initializers_refuse_weights_too_large_to_draw() {
    let mut rng = Rng::new(0);
    for init in
        [Initializer::HeNormal, Initializer::TruncatedNormal { mean: 0.0, stddev: 1.0 }, Initializer::orthogonal()]
    {
        let e = init.sample(&[usize::MAX / 2, 4], &mut rng).unwrap_err().to_string();
        assert!(e.contains("too large"), "{init:?}: {e}");
    }
}

#[test]
fn pop_removes_the_last_layer_and_a_new_head_builds_on_the_rest() {
    let mut m = Sequential::with_seed(2);
    m.add(Dense::new(5).activation(Activation::Relu).input_shape([3]));
    m.add(Dense::new(4).with_name("old_head"));
    m.set_trainable("old_head", false).unwrap();
    let body = m.layers()[0].weights()[0].param.value().to_vec::<f32>().unwrap();
    let head = m.pop().expect("a layer");
    assert_eq!(head.name(), "old_head");
    assert_eq!(m.output_shapes().unwrap(), vec![vec![5]]);
    assert_eq!(m.count_params(), 3 * 5 + 5);
    // the new head is built for the remaining output, the body keeps its weights
    m.add(Dense::new(2).activation(Activation::Softmax).with_name("old_head"));
    assert_eq!(m.output_shapes().unwrap(), vec![vec![2]]);
    assert_eq!(m.count_params(), 3 * 5 + 5 + 5 * 2 + 2);
    assert_eq!(m.layers()[0].weights()[0].param.value().to_vec::<f32>().unwrap(), body);
    assert_eq!(m.is_trainable("old_head"), Some(true), "the popped layer's frozen flag went with it");
    let y = m.predict(&[Tensor::ones([4, 3], DType::F32, &Device::Cpu).unwrap()]).unwrap();
    assert_eq!(y[0].dims(), &[4, 2]);
    m.pop();
    m.pop();
    assert!(m.pop().is_none());
}
