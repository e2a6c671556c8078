//! RandomShear, RandomGrayscale, Solarization, AutoContrast, RandomSaturation and RandomHue load
//! from the configs Keras 3.15
//! writes (nn/tests/fixtures/augment_more_fixtures.json, written by
//! nn/tests/fixtures/make_augment_more_fixtures.py), write Keras's keys with Keras's values, and
//! round-trip through the registry; a model with all six saves and loads.

use keel_nn::{AutoContrast, RandomGrayscale, RandomHue, RandomSaturation, RandomShear, Solarization};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};
use keel_train::layer_from_config;
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("../../nn/tests/fixtures/augment_more_fixtures.json")).unwrap()
}

/// `a` and `b` equal, numbers compared as f64 (Keras writes `[0, 255]`, keel `[0.0, 255.0]`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        _ => a == b,
    }
}

/// Every key of keel's config `ours` is in Keras's config `keras`, with the same value.
fn same_config(ours: &Value, keras: &Value, what: &str) {
    for (k, v) in ours.as_object().unwrap() {
        let want = keras.get(k).unwrap_or_else(|| panic!("{what}: keel writes \"{k}\", Keras does not"));
        assert!(same(v, want), "{what}: {k}: keel {v}, Keras {want}");
    }
}

#[test]
fn keras_configs_load_with_keras_keys_and_round_trip() {
    let f = fixture();
    for group in ["default_configs", "configs"] {
        for (class, keras) in f[group].as_object().unwrap() {
            let mut l = layer_from_config(class, keras).unwrap_or_else(|e| panic!("{class}: {e}"));
            l.build(&[4, 5, 3], &mut Rng::new(0)).unwrap_or_else(|e| panic!("{class} from Keras's config: {e}"));
            let ours = l.config();
            same_config(&ours, keras, class);
            let back = layer_from_config(class, &ours).unwrap();
            assert_eq!(back.config(), ours, "{class}: round trip");
        }
    }
    // the layers' own configs in the fixture's cases load too
    for c in f["shear"]["cases"].as_array().unwrap() {
        let l = layer_from_config("RandomShear", &c["config"]).unwrap();
        same_config(&l.config(), &c["config"], "RandomShear case");
    }
}

#[test]
fn a_model_with_the_layers_saves_and_loads() {
    let mut m = keel_train::Sequential::with_seed(3);
    m.add(RandomShear::new(0.2, (0.1, 0.3)).input_shape([5, 6, 3]));
    m.add(RandomGrayscale::new(0.3));
    m.add(Solarization::new(0.2, (0.4, 0.9)).value_range(0.0, 1.0));
    m.add(AutoContrast::new().value_range(0.0, 1.0));
    m.add(RandomSaturation::new((0.3, 0.6)).value_range(0.0, 1.0));
    m.add(RandomHue::new(0.2).value_range(0.0, 1.0));
    let dir = std::env::temp_dir().join(format!("keel_augment_more_{}", std::process::id()));
    let path = dir.join("m.keras");
    std::fs::create_dir_all(&dir).unwrap();
    m.save(&path).unwrap();
    let back = keel_train::load_model(&path).unwrap();
    let x = Tensor::rand_uniform(1, 0.0, 1.0, (2, 5, 6, 3), DType::F32, &Device::Cpu).unwrap();
    let (a, b) = (m.predict(&x, 2).unwrap(), back.predict(&x, 2).unwrap());
    assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    std::fs::remove_dir_all(&dir).ok();
}
