//! RandomRotation, RandomZoom and RandomTranslation rebuild from their configs (keel's and
//! Keras's), and the rebuilt layers draw the same transforms.

use keel_autograd::Var;
use keel_nn::{Ctx, Factor, FillMode, ImageInterpolation, Layer, RandomRotation, RandomTranslation, RandomZoom};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};
use keel_train::layer_from_config;

fn train(l: &dyn Layer, x: &Tensor, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    let mut ctx = Ctx::new(None, true, Some(&mut rng));
    let y = l.forward(&Var::constant(x.clone()), &mut ctx).unwrap().into_value();
    y.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn affine_layers_round_trip_through_the_registry() {
    let x = Tensor::rand_uniform(1, 0.0, 1.0, vec![4, 6, 5, 2], DType::F32, &Device::Cpu).unwrap();
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(RandomRotation::new((-0.2, 0.3)).fill_mode(FillMode::Constant).fill_value(2.5).seed(Some(3))),
        Box::new(RandomZoom::new(0.2)),
        Box::new(
            RandomZoom::new((-0.4, 0.1))
                .width_factor(Some(Factor::Single(0.3)))
                .interpolation(ImageInterpolation::Nearest)
                .fill_mode(FillMode::Wrap),
        ),
        Box::new(RandomTranslation::new(0.2, (-0.1, 0.3)).fill_mode(FillMode::Nearest)),
    ];
    for mut l in layers {
        l.set_name("aug".into());
        let cfg = l.config();
        let mut back = layer_from_config(l.class_name(), &cfg).unwrap_or_else(|e| panic!("{}: {e}", l.class_name()));
        assert_eq!(back.class_name(), l.class_name());
        assert_eq!(back.config(), cfg);
        assert_eq!(back.name(), "aug");
        back.build(&[6, 5, 2], &mut Rng::new(1)).unwrap();
        l.build(&[6, 5, 2], &mut Rng::new(1)).unwrap();
        assert_eq!(train(back.as_ref(), &x, 4), train(l.as_ref(), &x, 4), "{}", l.class_name());
    }
}

#[test]
fn keras_configs_load_with_keras_defaults() {
    // as Keras 3 writes them (extra keys such as value_range, data_format, trainable, dtype)
    let rot = serde_json::json!({"name": "random_rotation", "trainable": true, "dtype": "float32",
        "factor": [-0.1, 0.1], "data_format": "channels_last", "fill_mode": "reflect",
        "fill_value": 0.0, "interpolation": "bilinear", "seed": null, "value_range": [0, 255]});
    let l = layer_from_config("RandomRotation", &rot).unwrap();
    assert_eq!(l.config()["factor"], serde_json::json!([-0.1, 0.1]));
    assert_eq!(l.name(), "random_rotation");
    // only the factors given: every sampling key takes Keras's default
    let zoom = layer_from_config("RandomZoom", &serde_json::json!({"height_factor": 0.1})).unwrap();
    let c = zoom.config();
    assert_eq!(
        (&c["fill_mode"], &c["interpolation"], &c["seed"], &c["fill_value"], &c["width_factor"]),
        (
            &serde_json::json!("reflect"),
            &serde_json::json!("bilinear"),
            &serde_json::Value::Null,
            &serde_json::json!(0.0),
            &serde_json::Value::Null
        )
    );
    let tr = serde_json::json!({"height_factor": 0.1, "width_factor": 0.2, "fill_mode": "constant",
        "interpolation": "nearest", "seed": 7, "fill_value": 1.0});
    let c = layer_from_config("RandomTranslation", &tr).unwrap().config();
    assert_eq!(
        (c["fill_mode"].as_str(), c["interpolation"].as_str(), c["seed"].as_u64()),
        (Some("constant"), Some("nearest"), Some(7))
    );
    // refused, not silently changed
    let bad = |class: &str, cfg: serde_json::Value| layer_from_config(class, &cfg).is_err();
    assert!(bad("RandomRotation", serde_json::json!({"factor": 0.1, "fill_mode": "mirror"})));
    assert!(bad("RandomRotation", serde_json::json!({"factor": 0.1, "interpolation": "bicubic"})));
    assert!(bad("RandomRotation", serde_json::json!({"factor": 0.1, "data_format": "channels_first"})));
    assert!(bad("RandomTranslation", serde_json::json!({"height_factor": 0.1})));
    assert!(bad("RandomZoom", serde_json::json!({"width_factor": 0.1})));
}
