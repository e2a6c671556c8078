//! The 3-D layers (Conv3D, MaxPooling3D, AveragePooling3D, GlobalMaxPooling3D,
//! GlobalAveragePooling3D, UpSampling3D, ZeroPadding3D, Cropping3D): forward values and
//! gradients against real Keras 3 (fixtures/conv3d_fixtures.json, written by
//! fixtures/make_conv3d_fixtures.py with TensorFlow's GradientTape), finite-difference
//! gradchecks in f64, configs with Keras's keys, shapes, errors, and a small Conv3D model that
//! learns.

mod common;
use common::{check_forward_and_grads, uniform, with_keras_weights};

use keel_autograd::{gradcheck, Tape, Var};
use keel_nn::prelude::*;
use keel_nn::{Conv3DConfig, Error, Margins, Pool3DConfig};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let v: Value = serde_json::from_str(include_str!("fixtures/conv3d_fixtures.json")).unwrap();
    v["cases"].as_array().unwrap().clone()
}

/// The keel layer of a Keras class and config (read as the registry reads it).
fn from_keras(class: &str, cfg: &Value) -> Box<dyn Layer> {
    let margins = |key: &str| Margins::<3>::from_json(&cfg[key]).unwrap();
    let mut l: Box<dyn Layer> = match class {
        "Conv3D" => Box::new(Conv3D::from_config(serde_json::from_value::<Conv3DConfig>(cfg.clone()).unwrap())),
        "MaxPooling3D" => {
            Box::new(MaxPooling3D::from_config(serde_json::from_value::<Pool3DConfig>(cfg.clone()).unwrap()))
        }
        "AveragePooling3D" => {
            Box::new(AveragePooling3D::from_config(serde_json::from_value::<Pool3DConfig>(cfg.clone()).unwrap()))
        }
        "GlobalAveragePooling3D" => Box::new(GlobalAveragePooling3D::new()),
        "GlobalMaxPooling3D" => Box::new(GlobalMaxPooling3D::new()),
        "UpSampling3D" => {
            Box::new(UpSampling3D::new(serde_json::from_value::<[usize; 3]>(cfg["size"].clone()).unwrap()))
        }
        "ZeroPadding3D" => Box::new(ZeroPadding3D::new(margins("padding"))),
        "Cropping3D" => Box::new(Cropping3D::new(margins("cropping"))),
        other => panic!("unknown class {other}"),
    };
    l.set_name(cfg["name"].as_str().unwrap().to_string());
    l
}

/// The keel layer of a fixture case, built for its input and given its Keras weights.
fn layer_of(c: &Value) -> Box<dyn Layer> {
    let layer = from_keras(c["class"].as_str().unwrap(), &c["config"]);
    with_keras_weights(layer, c)
}

#[test]
fn forward_and_gradients_match_keras() {
    let all = cases();
    assert_eq!(all.len(), 26);
    let (mut worst_y, mut worst_g) = (0.0f32, 0.0f32);
    for c in &all {
        let layer = layer_of(c);
        let (dy, dg) = check_forward_and_grads(layer.as_ref(), c, 1e-5);
        (worst_y, worst_g) = (worst_y.max(dy), worst_g.max(dg));
    }
    println!("{} cases: largest difference from Keras {worst_y:e} (outputs), {worst_g:e} (gradients)", all.len());
}

#[test]
fn configs_have_keras_keys_and_round_trip() {
    for c in cases() {
        let (name, class) = (c["name"].as_str().unwrap(), c["class"].as_str().unwrap());
        let layer = from_keras(class, &c["config"]);
        let ours = layer.config();
        let keras = &c["config"];
        for (key, v) in ours.as_object().unwrap() {
            let k = keras.get(key).unwrap_or_else(|| panic!("{name}: keel writes {key}, which Keras does not"));
            if key.ends_with("_initializer") {
                // keel writes the class (and its arguments), Keras also its module
                assert_eq!(k["class_name"], v["class_name"], "{name}: {key}");
            } else {
                assert_eq!(k, v, "{name}: {key}");
            }
        }
        // keel's own config reads back to the same layer
        assert_eq!(from_keras(class, &ours).config(), ours, "{name}: round trip");
    }
    // the keys keel writes
    let conv = Conv3D::new(4, (1, 2, 3)).strides(2).padding(Padding::Same).dilation_rate((1, 2, 1)).with_name("c");
    let cfg = conv.config();
    for key in ["filters", "kernel_size", "strides", "padding", "dilation_rate", "activation", "use_bias"] {
        assert!(cfg.get(key).is_some(), "Conv3D config lacks {key}: {cfg}");
    }
    assert_eq!(cfg["kernel_size"], serde_json::json!([1, 2, 3]));
    assert_eq!(cfg["strides"], serde_json::json!([2, 2, 2]));
    assert_eq!(cfg["padding"], "same");
    let pool = MaxPooling3D::new((1, 2, 2)).with_name("p");
    assert_eq!(
        pool.config(),
        serde_json::json!({"name": "p", "pool_size": [1, 2, 2], "strides": [1, 2, 2], "padding": "valid"})
    );
    let pad = ZeroPadding3D::new((1, 2, 3)).with_name("z");
    assert_eq!(pad.config(), serde_json::json!({"name": "z", "padding": [[1, 1], [2, 2], [3, 3]]}));
    assert_eq!(UpSampling3D::default().size(), (2, 2, 2));
}

#[test]
fn shapes_params_and_names() {
    let mut l = Conv3D::new(4, 3).activation(Activation::Relu);
    l.build(&[8, 8, 8, 2], &mut Rng::new(1)).unwrap();
    assert_eq!(l.output_shape(&[8, 8, 8, 2]).unwrap(), [6, 6, 6, 4]);
    assert_eq!(l.count_params(), 3 * 3 * 3 * 2 * 4 + 4);
    assert_eq!(l.kernel().unwrap().value().dims(), [3, 3, 3, 2, 4]);
    assert_eq!(l.base_name(), "conv3d");
    // Keras: Conv3D(2, (3, 1, 2), strides=(2, 1, 3), padding="same") on (7, 4, 5, 3) -> (4, 4, 2, 2)
    let l = Conv3D::new(2, (3, 1, 2)).strides((2, 1, 3)).padding(Padding::Same);
    assert_eq!(l.output_shape(&[7, 4, 5, 3]).unwrap(), [4, 4, 2, 2]);
    let l = Conv3D::new(2, 3).dilation_rate((2, 1, 1));
    assert_eq!(l.output_shape(&[7, 4, 5, 3]).unwrap(), [3, 2, 3, 2]);
    assert_eq!(MaxPooling3D::new(2).output_shape(&[5, 4, 7, 3]).unwrap(), [2, 2, 3, 3]);
    assert_eq!(AveragePooling3D::new(2).padding(Padding::Same).output_shape(&[5, 4, 7, 3]).unwrap(), [3, 2, 4, 3]);
    assert_eq!(GlobalMaxPooling3D::new().output_shape(&[5, 4, 7, 3]).unwrap(), [3]);
    assert_eq!(UpSampling3D::new((1, 2, 3)).output_shape(&[5, 4, 7, 3]).unwrap(), [5, 8, 21, 3]);
    assert_eq!(ZeroPadding3D::new(((1, 0), (0, 2), (3, 3))).output_shape(&[5, 4, 7, 3]).unwrap(), [6, 6, 13, 3]);
    assert_eq!(Cropping3D::new(((1, 0), (0, 2), (3, 3))).output_shape(&[5, 4, 7, 3]).unwrap(), [4, 2, 1, 3]);
    let names = [
        (MaxPooling3D::new(2).base_name(), "max_pooling3d"),
        (AveragePooling3D::new(2).base_name(), "average_pooling3d"),
        (GlobalAveragePooling3D::new().base_name(), "global_average_pooling3d"),
        (GlobalMaxPooling3D::new().base_name(), "global_max_pooling3d"),
        (UpSampling3D::default().base_name(), "up_sampling3d"),
        (ZeroPadding3D::new(1).base_name(), "zero_padding3d"),
        (Cropping3D::new(1).base_name(), "cropping3d"),
    ];
    for (got, want) in names {
        assert_eq!(got, want);
    }
}

#[test]
fn gradchecks_in_f64() {
    // Conv3D wrt the input and the kernel: valid, same with strides, dilation, 1-deep window
    let convs = [
        Conv3D::new(2, (2, 2, 3)),
        Conv3D::new(2, 3).strides((2, 1, 2)).padding(Padding::Same),
        Conv3D::new(1, (2, 2, 1)).dilation_rate((2, 1, 2)),
        Conv3D::new(2, (1, 2, 2)).strides((1, 2, 1)).padding(Padding::Same),
        Conv3D::new(2, (2, 3, 2)).strides((3, 1, 1)).padding(Padding::Same).dilation_rate((2, 1, 1)),
    ];
    for (i, conv) in convs.iter().enumerate() {
        let (kd, kh, kw) = conv.get_config().kernel_size;
        let f = conv.get_config().filters;
        let x = uniform(10 + i as u64, &[2, 5, 4, 4, 2]);
        let k = uniform(20 + i as u64, &[kd, kh, kw, 2, f]);
        let g = |v: &[Var]| Ok(conv.forward_with_kernel(&v[0], &v[1]).expect("conv3d"));
        let r = gradcheck(g, &[x, k]).unwrap_or_else(|e| panic!("Conv3D {:?}: {e}", conv.get_config()));
        assert_eq!(r.checked, 2 * 5 * 4 * 4 * 2 + kd * kh * kw * 2 * f);
    }
    // the weightless layers (random inputs: no tied maxima)
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(MaxPooling3D::new(2)),
        Box::new(MaxPooling3D::new((3, 2, 2)).strides((2, 1, 2)).padding(Padding::Same)),
        Box::new(AveragePooling3D::new((2, 3, 2)).strides(1)),
        Box::new(AveragePooling3D::new(3).strides(2).padding(Padding::Same)),
        Box::new(GlobalAveragePooling3D::new()),
        Box::new(GlobalMaxPooling3D::new()),
        Box::new(UpSampling3D::new((2, 1, 3))),
        Box::new(ZeroPadding3D::new(((1, 0), (2, 1), (0, 1)))),
        Box::new(Cropping3D::new(((1, 0), (0, 1), (1, 1)))),
    ];
    let x = uniform(30, &[2, 5, 4, 4, 2]);
    for mut l in layers {
        l.build(&[5, 4, 4, 2], &mut Rng::new(0)).unwrap();
        let f = |v: &[Var]| Ok(l.forward(&v[0], &mut Ctx::inference()).expect("forward"));
        gradcheck(f, std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("{}: {e}", l.class_name()));
    }
}

/// `f`'s error message, which must exist.
fn err(r: Result<impl Sized, Error>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn errors_name_the_layer_and_the_shape() {
    // a rank-3 (image) input
    let mut conv = Conv3D::new(2, 3).with_name("vol");
    let e = err(conv.build(&[8, 8, 3], &mut Rng::new(0)));
    assert!(e.contains("vol") && e.contains("Conv3D") && e.contains("[8, 8, 3]") && e.contains("depth"), "{e}");
    conv.build(&[4, 4, 4, 3], &mut Rng::new(0)).unwrap();
    let image = Var::constant(Tensor::zeros((2, 4, 4, 3), DType::F32, &Device::Cpu).unwrap());
    let e = err(conv.forward(&image, &mut Ctx::inference()));
    assert!(e.contains("vol") && e.contains("rank 5"), "{e}");
    // another channel count than built, and a window larger than the volume
    let e = err(conv.build(&[4, 4, 4, 2], &mut Rng::new(0)));
    assert!(e.contains("vol") && e.contains("3 channels"), "{e}");
    let wrong = Var::constant(Tensor::zeros((1, 4, 4, 4, 2), DType::F32, &Device::Cpu).unwrap());
    let e = err(conv.forward(&wrong, &mut Ctx::inference()));
    assert!(e.contains("vol") && e.contains("[4, 4, 4, 2]") && e.contains("3 channels"), "{e}");
    let e = err(Conv3D::new(2, (5, 1, 1)).with_name("deep").output_shape(&[4, 4, 4, 1]));
    assert!(e.contains("deep") && e.contains("[4, 4, 4, 1]") && e.contains("window"), "{e}");
    // an empty axis (TF's `same` arithmetic would underflow on it)
    let e = err(Conv3D::new(2, 3).padding(Padding::Same).with_name("e").output_shape(&[0, 4, 4, 1]));
    assert!(e.contains("\"e\"") && e.contains("[0, 4, 4, 1]") && e.contains("no empty axis"), "{e}");
    let e = err(MaxPooling3D::new(2).padding(Padding::Same).with_name("e").output_shape(&[4, 0, 4, 1]));
    assert!(e.contains("\"e\"") && e.contains("[4, 0, 4, 1]") && e.contains("no empty axis"), "{e}");
    let e = err(Conv3D::new(0, 1).output_shape(&[4, 4, 4, 1]));
    assert!(e.contains("filters"), "{e}");
    let e = err(Conv3D::new(2, 2).strides((1, 0, 1)).output_shape(&[4, 4, 4, 1]));
    assert!(e.contains(">= 1"), "{e}");
    // a kernel of another shape than the config's
    let k = Var::constant(Tensor::zeros((3, 3, 2, 3, 2), DType::F32, &Device::Cpu).unwrap());
    let x = Var::constant(Tensor::zeros((1, 4, 4, 4, 3), DType::F32, &Device::Cpu).unwrap());
    let e = err(Conv3D::new(2, 3).with_name("k").forward_with_kernel(&x, &k));
    assert!(e.contains("k") && e.contains("[3, 3, 2, 3, 2]"), "{e}");
    // the weightless layers
    let bad: Vec<Box<dyn Layer>> = vec![
        Box::new(MaxPooling3D::new(2).with_name("l")),
        Box::new(AveragePooling3D::new(2).with_name("l")),
        Box::new(GlobalMaxPooling3D::new().with_name("l")),
        Box::new(GlobalAveragePooling3D::new().with_name("l")),
        Box::new(UpSampling3D::new(2).with_name("l")),
        Box::new(ZeroPadding3D::new(1).with_name("l")),
        Box::new(Cropping3D::new(1).with_name("l")),
    ];
    for l in &bad {
        let e = err(l.output_shape(&[6, 6, 3]));
        assert!(e.contains("\"l\"") && e.contains(l.class_name()) && e.contains("[6, 6, 3]"), "{e}");
        assert!(e.contains("depth"), "{}: {e}", l.class_name());
        let e = err(l.forward(&image, &mut Ctx::inference()));
        assert!(e.contains("\"l\""), "{}: {e}", l.class_name());
    }
    let e = err(MaxPooling3D::new((3, 1, 1)).with_name("p").output_shape(&[2, 4, 4, 1]));
    assert!(e.contains("p") && e.contains("[2, 4, 4, 1]") && e.contains("window"), "{e}");
    let e = err(Cropping3D::new(((1, 1), (0, 0), (0, 0))).with_name("c").output_shape(&[2, 4, 4, 1]));
    assert!(e.contains("depth axis longer than its cropping 1 + 1"), "{e}");
    let e = err(UpSampling3D::new((1, 0, 1)).output_shape(&[2, 4, 4, 1]));
    assert!(e.contains("at least 1"), "{e}");
}

#[test]
fn a_small_conv3d_model_learns() {
    // bright cube in the front half of the volume or in the back half
    let n = 32;
    let noise = Tensor::rand_uniform(3, -0.2, 0.2, (n, 4, 4, 4, 1), DType::F32, &Device::Cpu).unwrap();
    let noise = noise.to_vec::<f32>().unwrap();
    let (mut data, mut labels) = (Vec::new(), Vec::new());
    for i in 0..n {
        let back = i % 2;
        labels.push(back as i64);
        for p in 0..64 {
            let d = p / 16;
            data.push(if (d >= 2) == (back == 1) { 1.0 } else { 0.0 } + noise[i * 64 + p]);
        }
    }
    let x = Tensor::from_vec(data, [n, 4, 4, 4, 1]).unwrap();
    let y = Tensor::from_vec(labels, [n]).unwrap();
    let mut model = Sequential::with_seed(2);
    model.add(Conv3D::new(4, (2, 3, 3)).padding(Padding::Same).activation(Activation::Relu).input_shape([4, 4, 4, 1]));
    model.add(MaxPooling3D::new((2, 2, 2)));
    model.add(Conv3D::new(4, 1).activation(Activation::Tanh));
    model.add(GlobalAveragePooling3D::new());
    model.add(Dense::new(2));
    let mut losses = Vec::new();
    let mut rng = Rng::new(0);
    for _ in 0..60 {
        let tape = Tape::new();
        let heads = model.forward_heads(&[Var::constant(x.clone())], &mut Ctx::train(&tape, &mut rng)).unwrap();
        let loss = Loss::SparseCategoricalCrossentropy.from_logits(true).compute(&heads[0].logits, &y, None).unwrap();
        losses.push(loss.value().to_scalar::<f32>().unwrap());
        let g = tape.backward(&loss).unwrap();
        for p in model.trainable_params() {
            let upd = g.get(&p).unwrap().mul_scalar(0.5).unwrap();
            p.set(p.value().sub(&upd).unwrap()).unwrap();
        }
    }
    assert!(losses[59] < 0.25 * losses[0], "loss {} -> {}", losses[0], losses[59]);
}

#[test]
fn a_conv3d_model_under_mixed_bfloat16_follows_the_f32_one() {
    use keel_nn::mixed_precision::DTypePolicy;
    let model = |policy: DTypePolicy| {
        let mut m = Sequential::with_seed(4).dtype_policy(policy);
        m.add(ZeroPadding3D::new(1).input_shape([3, 5, 5, 2]));
        m.add(Conv3D::new(4, 3).strides((1, 2, 2)).padding(Padding::Same).activation(Activation::Relu));
        m.add(AveragePooling3D::new(2).padding(Padding::Same));
        m.add(UpSampling3D::new((2, 1, 1)));
        m.add(Cropping3D::new(((1, 0), (0, 0), (0, 1))));
        m.add(Conv3D::new(3, (2, 1, 1)).activation(Activation::Tanh));
        m.add(MaxPooling3D::new((2, 2, 1)).padding(Padding::Same));
        m.add(GlobalMaxPooling3D::new());
        m.add(Dense::new(2));
        m
    };
    let x = Tensor::rand_normal(8, 0.0, 1.0, [3, 3, 5, 5, 2], DType::F32, &Device::Cpu).unwrap();
    let p32 = model(DTypePolicy::Float32).predict(std::slice::from_ref(&x)).unwrap();
    let pmx = model(DTypePolicy::MixedBFloat16).predict(&[x]).unwrap();
    assert_eq!(pmx[0].dtype(), DType::F32);
    let (a, b) = (pmx[0].to_vec::<f32>().unwrap(), p32[0].to_vec::<f32>().unwrap());
    let num: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f32 = b.iter().map(|y| y * y).sum();
    assert!((num / den).sqrt() < 3e-2, "{a:?} vs {b:?}");
}
