//! Conv3DTranspose: forward values and gradients against real Keras 3
//! (fixtures/conv3d_transpose_fixtures.json, written by
//! fixtures/make_conv3d_transpose_fixtures.py with TensorFlow's GradientTape; the script also
//! checks TensorFlow against a direct scatter), finite-difference gradchecks in f64, configs
//! with Keras's keys, shapes, errors, and a small model that learns.

mod common;
use common::{check_forward_and_grads, uniform, with_keras_weights};

use keel_autograd::{gradcheck, Tape, Var};
use keel_nn::prelude::*;
use keel_nn::{Conv3DTransposeConfig, Error};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/conv3d_transpose_fixtures.json")).unwrap()
}

/// The keel layer of a Keras config (read as the registry reads it).
fn from_keras(cfg: &Value) -> Conv3DTranspose {
    let l = Conv3DTranspose::from_config(serde_json::from_value::<Conv3DTransposeConfig>(cfg.clone()).unwrap());
    l.with_name(cfg["name"].as_str().unwrap())
}

#[test]
fn forward_and_gradients_match_keras() {
    let fx = fixture();
    let all = fx["cases"].as_array().unwrap();
    assert_eq!(all.len(), 11);
    let (mut worst_y, mut worst_g) = (0.0f32, 0.0f32);
    for c in all {
        let name = c["name"].as_str().unwrap();
        let layer = with_keras_weights(Box::new(from_keras(&c["config"])), c);
        let names: Vec<String> = layer.weights().iter().map(|w| w.name.to_string()).collect();
        let want: Vec<&str> = c["weight_names"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(names, want, "{name}: weights");
        let (dy, dg) = check_forward_and_grads(layer.as_ref(), c, 1e-5);
        (worst_y, worst_g) = (worst_y.max(dy), worst_g.max(dg));
    }
    println!("{} cases: largest difference from Keras {worst_y:e} (outputs), {worst_g:e} (gradients)", all.len());
}

#[test]
fn configs_have_keras_keys_and_round_trip() {
    let fx = fixture();
    let configs = fx["cases"].as_array().unwrap().iter().map(|c| &c["config"]);
    for keras in configs.chain(std::iter::once(&fx["default_config"])) {
        let what = keras["name"].to_string();
        let ours = from_keras(keras).config();
        for (key, v) in ours.as_object().unwrap() {
            let k = keras.get(key).unwrap_or_else(|| panic!("{what}: keel writes {key}, which Keras does not"));
            if key.ends_with("_initializer") {
                assert_eq!(k["class_name"], v["class_name"], "{what}: {key}");
            } else {
                assert_eq!(k, v, "{what}: {key}");
            }
        }
        assert_eq!(from_keras(&ours).config(), ours, "{what}: round trip");
    }
    let l = Conv3DTranspose::new(4, (1, 2, 3)).strides(2).padding(Padding::Same).output_padding((1, 0, 1));
    let cfg = l.with_name("t").config();
    assert_eq!(cfg["kernel_size"], serde_json::json!([1, 2, 3]));
    assert_eq!(cfg["strides"], serde_json::json!([2, 2, 2]));
    assert_eq!(cfg["output_padding"], serde_json::json!([1, 0, 1]));
    assert_eq!(cfg["padding"], "same");
    assert!(Conv3DTranspose::new(2, 3).with_name("n").config()["output_padding"].is_null());
}

#[test]
fn shapes_params_and_names() {
    let mut l = Conv3DTranspose::new(4, 3).activation(Activation::Relu);
    l.build(&[3, 4, 5, 2], &mut Rng::new(1)).unwrap();
    assert_eq!(l.output_shape(&[3, 4, 5, 2]).unwrap(), [5, 6, 7, 4]);
    assert_eq!(l.count_params(), 27 * 4 * 2 + 4);
    assert_eq!(l.kernel().unwrap().value().dims(), [3, 3, 3, 4, 2]);
    assert_eq!(l.bias().unwrap().value().dims(), [4]);
    assert_eq!(l.base_name(), "conv3d_transpose");
    // Keras: strides (2, 1, 3), same -> input * strides; valid -> input * s + max(k - s, 0)
    let l = Conv3DTranspose::new(3, 3).strides((2, 1, 3)).padding(Padding::Same);
    assert_eq!(l.output_shape(&[3, 4, 4, 2]).unwrap(), [6, 4, 12, 3]);
    let l = Conv3DTranspose::new(3, (2, 3, 1)).strides(2);
    assert_eq!(l.output_shape(&[3, 4, 4, 2]).unwrap(), [6, 9, 8, 3]);
    // output_padding: (input - 1) * s + k + op - 2 * pad (Keras: (1, 6, 8, 8, 3) and (1, 6, 8, 8, 3))
    let l = Conv3DTranspose::new(3, 3).strides(2).output_padding(1);
    assert_eq!(l.output_shape(&[3, 4, 4, 2]).unwrap(), [8, 10, 10, 3]);
    let l = Conv3DTranspose::new(3, 3).strides(2).padding(Padding::Same).output_padding(1);
    assert_eq!(l.output_shape(&[3, 4, 4, 2]).unwrap(), [6, 8, 8, 3]);
    // dilation: valid (input - 1) + (k - 1) * d + 1 (Keras: (1, 7, 8, 8, 3) with d = 2)
    let l = Conv3DTranspose::new(3, 3).dilation_rate(2);
    assert_eq!(l.output_shape(&[3, 4, 4, 2]).unwrap(), [7, 8, 8, 3]);
    // the model of train/tests/device_layers.rs
    let mut m = Sequential::new();
    m.add(Conv3D::new(3, 3).strides(2).padding(Padding::Same).input_shape([4, 4, 4, 2]));
    m.add(Conv3DTranspose::new(4, (3, 2, 3)).strides((2, 2, 1)).padding(Padding::Same));
    m.add(Conv3DTranspose::new(2, 2).dilation_rate((2, 1, 1)).output_padding(0));
    assert_eq!(m.output_shapes().unwrap(), vec![vec![6, 5, 3, 2]]);
}

#[test]
fn gradchecks_in_f64() {
    // wrt the input and the kernel: valid, same with strides, output_padding, dilation,
    // 1-deep windows
    let layers = [
        Conv3DTranspose::new(2, (2, 2, 3)),
        Conv3DTranspose::new(2, 3).strides((2, 1, 2)).padding(Padding::Same),
        Conv3DTranspose::new(1, (2, 2, 1)).dilation_rate((2, 1, 2)),
        Conv3DTranspose::new(2, (3, 2, 2)).strides(2).output_padding((1, 0, 1)),
        Conv3DTranspose::new(2, (1, 2, 2)).strides((1, 2, 1)).padding(Padding::Same),
        Conv3DTranspose::new(2, (3, 1, 2)).strides((3, 1, 1)).padding(Padding::Same).dilation_rate((2, 1, 1)),
    ];
    for (i, l) in layers.iter().enumerate() {
        let (kd, kh, kw) = l.get_config().kernel_size;
        let f = l.get_config().filters;
        let x = uniform(10 + i as u64, &[2, 3, 3, 2, 2]);
        let k = uniform(20 + i as u64, &[kd, kh, kw, f, 2]);
        let g = |v: &[Var]| Ok(l.forward_with_kernel(&v[0], &v[1]).expect("conv3d_transpose"));
        let r = gradcheck(g, &[x, k]).unwrap_or_else(|e| panic!("Conv3DTranspose {:?}: {e}", l.get_config()));
        assert_eq!(r.checked, 2 * 3 * 3 * 2 * 2 + kd * kh * kw * f * 2);
    }
}

#[test]
fn it_is_the_input_gradient_of_conv3d() {
    // <conv3d(x, k), y> = <x, conv3d_transpose(y, k)> for the same kernel (Conv3D's layout
    // [kd, kh, kw, c, f] is the transposed layer's [kd, kh, kw, filters=c, in=f])
    let conv = Conv3D::new(3, (3, 2, 2)).strides((2, 1, 2)).padding(Padding::Same);
    let tconv = Conv3DTranspose::new(2, (3, 2, 2)).strides((2, 1, 2)).padding(Padding::Same);
    let x = Var::constant(uniform(1, &[1, 6, 4, 6, 2]));
    let k = Var::constant(uniform(2, &[3, 2, 2, 2, 3]));
    let fx = conv.forward_with_kernel(&x, &k).unwrap();
    let y = Var::constant(uniform(3, fx.dims()));
    let ty = tconv.forward_with_kernel(&y, &k).unwrap();
    assert_eq!(ty.dims(), x.dims());
    let dot = |a: &Var, b: &Var| a.mul(b).unwrap().sum_all().unwrap().into_value().to_vec_f64().unwrap()[0];
    let (a, b) = (dot(&fx, &y), dot(&x, &ty));
    assert!((a - b).abs() <= 1e-10 * a.abs().max(1.0), "{a} vs {b}");
}

/// `r`'s error message, which must exist.
fn err(r: Result<impl Sized, Error>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn errors_name_the_layer_and_the_shape() {
    // an image where a volume is due
    let mut l = Conv3DTranspose::new(2, 3).with_name("up");
    let e = err(l.build(&[8, 8, 3], &mut Rng::new(0)));
    assert!(e.contains("\"up\"") && e.contains("Conv3DTranspose") && e.contains("[8, 8, 3]"), "{e}");
    assert!(e.contains("depth"), "{e}");
    l.build(&[2, 2, 2, 3], &mut Rng::new(0)).unwrap();
    let image = Var::constant(Tensor::zeros((1, 2, 2, 3), DType::F32, &Device::Cpu).unwrap());
    let e = err(l.forward(&image, &mut Ctx::inference()));
    assert!(e.contains("\"up\"") && e.contains("rank 5"), "{e}");
    // another channel count than built
    let e = err(l.build(&[2, 2, 2, 1], &mut Rng::new(0)));
    assert!(e.contains("\"up\"") && e.contains("3 channels"), "{e}");
    let wrong = Var::constant(Tensor::zeros((1, 2, 2, 2, 1), DType::F32, &Device::Cpu).unwrap());
    let e = err(l.forward(&wrong, &mut Ctx::inference()));
    assert!(e.contains("\"up\"") && e.contains("[2, 2, 2, 1]") && e.contains("3 channels"), "{e}");
    // an empty axis, no filters, output_padding not below the stride
    let e = err(Conv3DTranspose::new(2, 3).with_name("e").output_shape(&[0, 2, 2, 1]));
    assert!(e.contains("\"e\"") && e.contains("no empty axis"), "{e}");
    let e = err(Conv3DTranspose::new(0, 3).with_name("f").output_shape(&[2, 2, 2, 1]));
    assert!(e.contains("\"f\"") && e.contains("filters must be >= 1"), "{e}");
    let e =
        err(Conv3DTranspose::new(2, 3).strides((2, 2, 1)).output_padding(1).with_name("o").output_shape(&[2, 2, 2, 1]));
    assert!(
        e.contains("\"o\"") && e.contains("output_padding 1 must be below the stride 1") && e.contains("axis 3"),
        "{e}"
    );
    let e = err(Conv3DTranspose::new(2, 3).strides((1, 0, 1)).output_shape(&[2, 2, 2, 1]));
    assert!(e.contains(">= 1"), "{e}");
    // a geometry no convolution maps back (TensorFlow refuses it too): an even window,
    // same, output_padding 0 along the width
    let bad = Conv3DTranspose::new(2, (3, 3, 2)).strides((2, 3, 2)).padding(Padding::Same).output_padding((1, 2, 0));
    let e = err(bad.with_name("g").output_shape(&[2, 2, 3, 1]));
    assert!(e.contains("\"g\"") && e.contains("[2, 2, 3, 1]") && e.contains("axis 3"), "{e}");
    // a kernel of another shape than the config's
    let x = Var::constant(Tensor::zeros((1, 2, 2, 2, 3), DType::F32, &Device::Cpu).unwrap());
    let k = |shape: &[usize]| Var::constant(Tensor::zeros(shape.to_vec(), DType::F32, &Device::Cpu).unwrap());
    let e = err(Conv3DTranspose::new(2, 3).with_name("k").forward_with_kernel(&x, &k(&[3, 3, 3, 3, 2])));
    assert!(
        e.contains("\"k\"") && e.contains("[3, 3, 3, 3, 2]") && e.contains("expected [3, 3, 3, 2, in_channels]"),
        "{e}"
    );
    let e = err(Conv3DTranspose::new(2, 3).with_name("k").forward_with_kernel(&x, &k(&[3, 3, 3, 2, 1])));
    assert!(e.contains("\"k\"") && e.contains("1 channels"), "{e}");
    let e = err(Conv3DTranspose::new(2, 3).with_name("nb").forward(&x, &mut Ctx::inference()));
    assert!(e.contains("nb"), "{e}");
}

#[test]
fn a_small_conv3d_autoencoder_learns() {
    // reconstruct 4x4x4 volumes through a stride-2 Conv3D and a stride-2 Conv3DTranspose
    let x = Tensor::rand_uniform(3, 0.0, 1.0, (16, 4, 4, 4, 1), DType::F32, &Device::Cpu).unwrap();
    let mut model = Sequential::with_seed(5);
    model.add(
        Conv3D::new(4, 3).strides(2).padding(Padding::Same).activation(Activation::Relu).input_shape([4, 4, 4, 1]),
    );
    model.add(Conv3DTranspose::new(4, 3).strides(2).padding(Padding::Same).activation(Activation::Relu));
    model.add(Conv3DTranspose::new(1, 1));
    let mut losses = Vec::new();
    let mut rng = Rng::new(0);
    for _ in 0..60 {
        let tape = Tape::new();
        let heads = model.forward_heads(&[Var::constant(x.clone())], &mut Ctx::train(&tape, &mut rng)).unwrap();
        let loss = Loss::MeanSquaredError.compute(&heads[0].logits, &x, None).unwrap();
        losses.push(loss.value().to_scalar::<f32>().unwrap());
        let g = tape.backward(&loss).unwrap();
        for p in model.trainable_params() {
            let upd = g.get(&p).unwrap().mul_scalar(0.2).unwrap();
            p.set(p.value().sub(&upd).unwrap()).unwrap();
        }
    }
    assert!(losses[59] < 0.5 * losses[0], "loss {} -> {}", losses[0], losses[59]);
}
