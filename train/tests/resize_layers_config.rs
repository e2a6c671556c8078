//! Resizing, CenterCrop and RandomCrop rebuild from their configs (keel's and Keras 3's),
//! train, save and load; configs keel cannot honour are refused.

mod common;

use common::{bits, test_dir, weight_bits};
use keel_autograd::Var;
use keel_nn::{
    Activation, CenterCrop, Conv2D, Ctx, Dense, FillMode, Flatten, Interpolation, Layer, Loss, Network, RandomCrop,
    Resizing,
};
use keel_optim::Adam;
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};
use keel_train::{layer_from_config, load_model, Fit, MetricSpec, Sequential};
use serde_json::json;

fn forward(l: &dyn Layer, x: &Tensor, training: bool) -> Vec<u32> {
    let mut rng = Rng::new(4);
    let mut ctx = Ctx::new(None, training, Some(&mut rng));
    bits(&l.forward(&Var::constant(x.clone()), &mut ctx).unwrap().into_value())
}

#[test]
fn layers_round_trip_through_the_registry() {
    let x = Tensor::rand_uniform(1, 0.0, 1.0, vec![3, 7, 9, 2], DType::F32, &Device::Cpu).unwrap();
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(Resizing::new(5, 4)),
        Box::new(Resizing::new(11, 6).interpolation(Interpolation::Nearest).crop_to_aspect_ratio(true)),
        Box::new(Resizing::new(4, 4).pad_to_aspect_ratio(true).fill_value(-2.5)),
        Box::new(CenterCrop::new(5, 6)),
        Box::new(CenterCrop::new(8, 8)),
        Box::new(RandomCrop::new(4, 5).seed(Some(17))),
        Box::new(RandomCrop::new(3, 3)),
    ];
    for mut l in layers {
        l.set_name("img".into());
        let cfg = l.config();
        let mut back = layer_from_config(l.class_name(), &cfg).unwrap_or_else(|e| panic!("{cfg}: {e}"));
        assert_eq!((back.class_name(), back.name()), (l.class_name(), "img"));
        assert_eq!(back.config(), cfg);
        back.build(&[7, 9, 2], &mut Rng::new(1)).unwrap();
        l.build(&[7, 9, 2], &mut Rng::new(1)).unwrap();
        for training in [false, true] {
            assert_eq!(forward(back.as_ref(), &x, training), forward(l.as_ref(), &x, training), "{cfg}");
        }
    }
}

#[test]
fn keras_configs_load_and_unsupported_ones_are_refused() {
    // as Keras 3.15's get_config() writes them
    let resizing = json!({"name": "resizing", "trainable": true, "dtype": {"module": "keras",
        "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null},
        "data_format": "channels_last", "height": 3, "width": 4, "interpolation": "bilinear",
        "crop_to_aspect_ratio": false, "pad_to_aspect_ratio": true, "fill_mode": "constant",
        "fill_value": 0.25, "antialias": false});
    let l = layer_from_config("Resizing", &resizing).unwrap();
    let c = l.config();
    assert_eq!((l.name(), &c["pad_to_aspect_ratio"], &c["fill_value"]), ("resizing", &json!(true), &json!(0.25)));
    let crop = json!({"name": "center_crop", "trainable": true, "data_format": "channels_last",
        "height": 3, "width": 4});
    assert_eq!(layer_from_config("CenterCrop", &crop).unwrap().config()["width"], 4);
    let rc = json!({"name": "random_crop", "trainable": true, "data_format": "channels_last",
        "height": 4, "width": 4, "seed": 1});
    assert_eq!(layer_from_config("RandomCrop", &rc).unwrap().config()["seed"], 1);
    // only height and width: Keras's defaults for the rest
    let c = layer_from_config("Resizing", &json!({"height": 2, "width": 3})).unwrap().config();
    assert_eq!(
        (&c["interpolation"], &c["crop_to_aspect_ratio"], &c["fill_mode"], &c["fill_value"]),
        (&json!("bilinear"), &json!(false), &json!("constant"), &json!(0.0))
    );
    assert_eq!(
        layer_from_config("RandomCrop", &json!({"height": 2, "width": 3})).unwrap().config()["seed"],
        json!(null)
    );
    // refused, not silently changed
    for (class, cfg, why) in [
        ("Resizing", json!({"height": 2, "width": 3, "interpolation": "bicubic"}), "bicubic"),
        ("Resizing", json!({"height": 2, "width": 3, "interpolation": "lanczos3"}), "lanczos3"),
        ("Resizing", json!({"height": 2, "width": 3, "antialias": true}), "antialias"),
        ("Resizing", json!({"height": 2, "width": 3, "fill_mode": "reflect"}), "fill_mode"),
        (
            "Resizing",
            json!({"height": 2, "width": 3, "crop_to_aspect_ratio": true, "pad_to_aspect_ratio": true}),
            "only one",
        ),
        ("Resizing", json!({"height": 2, "width": 3, "data_format": "channels_first"}), "channels_first"),
        ("CenterCrop", json!({"height": 2, "width": 3, "data_format": "channels_first"}), "channels_first"),
        ("RandomCrop", json!({"height": 2, "width": 3, "data_format": "channels_first"}), "channels_first"),
        ("RandomCrop", json!({"height": 2}), "width"),
    ] {
        let e = layer_from_config(class, &cfg).err().unwrap_or_else(|| panic!("{class} {cfg} loaded"));
        assert!(e.to_string().contains(why), "{class} {cfg}: {e}");
    }
    // a fill mode is Keras's name, read back as keel's enum
    assert!(layer_from_config("Resizing", &json!({"height": 2, "width": 3, "fill_mode": "mirror"})).is_err());
    assert_eq!(Resizing::new(1, 1).fill_mode(FillMode::Constant).config()["fill_mode"], "constant");
}

#[test]
fn a_model_with_the_layers_trains_saves_and_loads() {
    let dir = test_dir("resize_layers");
    let x = Tensor::rand_uniform(2, 0.0, 1.0, (24, 9, 7, 1), DType::F32, &Device::Cpu).unwrap();
    let y = Tensor::from_vec((0..24i64).map(|i| i % 3).collect::<Vec<_>>(), 24).unwrap();
    let mut m = Sequential::with_seed(5);
    m.add(Resizing::new(10, 10).crop_to_aspect_ratio(true).input_shape([9, 7, 1]));
    m.add(RandomCrop::new(8, 8).seed(Some(3)));
    m.add(CenterCrop::new(6, 6));
    m.add(Conv2D::new(3, (3, 3)).activation(Activation::Relu));
    m.add(Flatten::new());
    m.add(Dense::new(3).activation(Activation::Softmax));
    m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    let h = m.fit(&x, &y, Fit::new().epochs(2).batch_size(8).seed(1).verbose(0)).unwrap();
    assert!(h.get("loss").unwrap().iter().all(|l| l.is_finite()));
    let path = dir.join("resize.keel");
    m.save(&path).unwrap();
    let loaded = load_model(&path).unwrap();
    assert_eq!(loaded.config(), m.config());
    assert_eq!(weight_bits(loaded.network()), weight_bits(m.network()));
    assert_eq!(bits(&loaded.predict(&x, 5).unwrap()), bits(&m.predict(&x, 5).unwrap()));
    let layers = &m.config()["config"]["layers"];
    assert_eq!((&layers[0]["class_name"], &layers[1]["class_name"]), (&json!("Resizing"), &json!("RandomCrop")));
    assert_eq!(layers[1]["config"]["seed"], 3);
    assert_eq!(layers[2]["config"]["height"], 6);
    std::fs::remove_dir_all(&dir).unwrap();
}
