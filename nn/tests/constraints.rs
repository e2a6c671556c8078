//! Weight constraints against Keras 3.15.1 (fixtures/constraints_fixtures.json, written by
//! fixtures/make_constraints_fixtures.py), their config form, layer wiring and errors.

use keel_nn::prelude::*;
use keel_tensor::{rng::Rng, DType, Tensor};
use serde_json::{json, Value};

fn tensor_of(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data: Vec<f32> = v["data"].as_array().unwrap().iter().map(|d| d.as_f64().unwrap() as f32).collect();
    Tensor::from_vec(data, shape).unwrap()
}

#[test]
fn constraints_match_keras() {
    let v: Value = serde_json::from_str(include_str!("fixtures/constraints_fixtures.json")).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    let mut worst = 0f64;
    for c in cases {
        // Keras's own serialized form (with "module" and "registered_name") parses
        let constraint: Constraint = serde_json::from_value(c["constraint"].clone()).unwrap();
        let w = tensor_of(&c["input"]);
        let want = tensor_of(&c["output"]).to_vec_f64().unwrap();
        for dtype in [DType::F32, DType::F64] {
            let got = constraint.apply(&w.to_dtype(dtype).unwrap()).unwrap();
            assert_eq!(got.dims(), w.dims());
            assert_eq!(got.dtype(), dtype);
            for (g, e) in got.to_vec_f64().unwrap().iter().zip(&want) {
                let d = (g - e).abs();
                worst = worst.max(d);
                assert!(d <= 2e-6 * (1.0 + e.abs()), "{constraint:?} on {}: {g} vs keras {e}", c["weight"]);
            }
        }
    }
    eprintln!("constraints vs keras: {} cases, max abs diff {worst:e}", cases.len());
}

#[test]
fn constraint_config_round_trip_and_defaults() {
    for c in [
        Constraint::max_norm(1.5, 0),
        Constraint::max_norm(2.0, 0).with_axes([0, 1, 2]),
        Constraint::min_max_norm(0.5, 1.2, 0.3, -1),
        Constraint::non_neg(),
        Constraint::unit_norm(1),
    ] {
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(serde_json::from_value::<Constraint>(v).unwrap(), c);
    }
    assert_eq!(
        serde_json::to_value(Constraint::max_norm(2.0, 0)).unwrap(),
        json!({"class_name": "MaxNorm", "config": {"max_value": 2.0, "axis": 0}})
    );
    assert_eq!(
        serde_json::to_value(Constraint::unit_norm(0).with_axes([0, 1])).unwrap(),
        json!({"class_name": "UnitNorm", "config": {"axis": [0, 1]}})
    );
    assert_eq!(serde_json::to_value(Constraint::non_neg()).unwrap(), json!({"class_name": "NonNeg", "config": {}}));
    // Keras defaults for missing keys
    let d: Constraint = serde_json::from_value(json!({"class_name": "MinMaxNorm", "config": {}})).unwrap();
    assert_eq!(d, Constraint::min_max_norm(0.0, 1.0, 1.0, 0));
    let d: Constraint = serde_json::from_value(json!({"class_name": "MaxNorm", "config": {}})).unwrap();
    assert_eq!(d, Constraint::max_norm(2.0, 0));
    assert_eq!(Constraint::from_name("max_norm").unwrap(), Constraint::max_norm(2.0, 0));
    assert_eq!(Constraint::from_name("NonNeg").unwrap(), Constraint::non_neg());
    let e = Constraint::from_name("radial").unwrap_err().to_string();
    assert!(e.contains("radial"), "{e}");
}

#[test]
fn constraint_errors_name_the_bad_value() {
    let w = Tensor::from_vec(vec![1f32, -2., 3., 4., 5., 6.], [2, 3]).unwrap();
    let e = Constraint::max_norm(2.0, 2).apply(&w).unwrap_err().to_string();
    assert!(e.contains("MaxNorm") && e.contains("axis 2") && e.contains("[2, 3]"), "{e}");
    let e = Constraint::unit_norm(-3).apply(&w).unwrap_err().to_string();
    assert!(e.contains("UnitNorm") && e.contains("axis -3"), "{e}");
    let e = Constraint::max_norm(2.0, 0).with_axes([0, -2]).apply(&w).unwrap_err().to_string();
    assert!(e.contains("twice"), "{e}");
    let e = Constraint::max_norm(-1.0, 0).apply(&w).unwrap_err().to_string();
    assert!(e.contains("max_value") && e.contains("-1"), "{e}");
    let e = Constraint::min_max_norm(2.0, 1.0, 1.0, 0).apply(&w).unwrap_err().to_string();
    assert!(e.contains("MinMaxNorm") && e.contains("min_value 2"), "{e}");
    let e = Constraint::max_norm(f64::NAN, 0).apply(&w).unwrap_err().to_string();
    assert!(e.contains("NaN"), "{e}");
    // NonNeg has no axis: any rank
    let y = Constraint::non_neg().apply(&w).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![1., 0., 3., 4., 5., 6.]);
}

#[test]
fn layers_take_constraints_and_save_them_in_their_config() {
    let mut rng = Rng::new(3);
    let mut d = Dense::new(4).kernel_constraint(Constraint::max_norm(1.0, 0)).bias_constraint(Constraint::non_neg());
    assert!(d.constraints().is_empty(), "unbuilt: no weights yet");
    d.build(&[3], &mut rng).unwrap();
    let pairs = d.constraints();
    assert_eq!(pairs.len(), 2);
    assert_eq!(pairs[0].0.id(), d.kernel().unwrap().id());
    assert_eq!(pairs[1].0.id(), d.bias().unwrap().id());
    assert_eq!(pairs[1].1, Constraint::non_neg());
    let cfg = d.config();
    assert_eq!(cfg["kernel_constraint"], json!({"class_name": "MaxNorm", "config": {"max_value": 1.0, "axis": 0}}));
    assert_eq!(cfg["bias_constraint"]["class_name"], "NonNeg");
    let back: keel_nn::DenseConfig = serde_json::from_value(cfg).unwrap();
    assert_eq!(&back, d.get_config());
    // without a constraint: null in the config, and an old config without the keys still parses
    let plain = Dense::new(2);
    assert_eq!(plain.config()["kernel_constraint"], Value::Null);
    let old: keel_nn::DenseConfig = serde_json::from_value(json!({"units": 2, "activation": "linear",
        "use_bias": true, "kernel_initializer": {"class_name": "GlorotUniform", "config": {}},
        "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": null,
        "bias_regularizer": null}))
    .unwrap();
    assert_eq!(old.kernel_constraint, None);
    // no bias: only the kernel's pair
    let mut nb =
        Conv2D::new(2, (3, 3)).use_bias(false).kernel_constraint(Constraint::unit_norm(0).with_axes([0, 1, 2]));
    nb = nb.bias_constraint(Constraint::non_neg());
    nb.build(&[5, 5, 1], &mut rng).unwrap();
    assert_eq!(nb.constraints().len(), 1);
    let mut e = Embedding::new(6, 3).embeddings_constraint(Constraint::unit_norm(1));
    e.build(&[4], &mut rng).unwrap();
    assert_eq!(e.constraints().len(), 1);
    assert_eq!(e.config()["embeddings_constraint"], json!({"class_name": "UnitNorm", "config": {"axis": 1}}));
    let mut td = TimeDistributed::new(Dense::new(2).kernel_constraint(Constraint::non_neg()));
    td.build(&[4, 3], &mut rng).unwrap();
    assert_eq!(td.constraints().len(), 1);
    let mut c1 = Conv1D::new(2, 3).kernel_constraint(Constraint::non_neg());
    c1.build(&[6, 2], &mut rng).unwrap();
    assert_eq!(c1.constraints().len(), 1);
}

/// The builders of the depthwise/separable, recurrent, normalization and PReLU layers: one
/// pair per built, constrained weight, and Keras's key in the config.
#[test]
fn every_constrained_layer_family_takes_its_keras_keys() {
    let mut rng = Rng::new(5);
    let nn = Constraint::non_neg;
    let mut cases: Vec<(Box<dyn Layer>, Vec<usize>, &[&str], usize)> = vec![
        (
            Box::new(DepthwiseConv2D::new((2, 2)).depthwise_constraint(nn()).bias_constraint(nn())),
            vec![4, 4, 2],
            &["depthwise_constraint", "bias_constraint"],
            2,
        ),
        (
            Box::new(keel_nn::DepthwiseConv1D::new(2).use_bias(false).depthwise_constraint(nn()).bias_constraint(nn())),
            vec![5, 2],
            &["depthwise_constraint", "bias_constraint"],
            1,
        ),
        (
            Box::new(SeparableConv2D::new(3, (2, 2)).depthwise_constraint(nn()).pointwise_constraint(nn())),
            vec![4, 4, 2],
            &["depthwise_constraint", "pointwise_constraint"],
            2,
        ),
        (
            Box::new(keel_nn::SeparableConv1D::new(3, 2).pointwise_constraint(nn()).bias_constraint(nn())),
            vec![5, 2],
            &["pointwise_constraint", "bias_constraint"],
            2,
        ),
        (
            Box::new(LSTM::new(3).kernel_constraint(nn()).recurrent_constraint(nn()).bias_constraint(nn())),
            vec![4, 2],
            &["kernel_constraint", "recurrent_constraint", "bias_constraint"],
            3,
        ),
        (Box::new(GRU::new(3).recurrent_constraint(nn())), vec![4, 2], &["recurrent_constraint"], 1),
        (Box::new(SimpleRNN::new(3).use_bias(false).bias_constraint(nn())), vec![4, 2], &["bias_constraint"], 0),
        (
            Box::new(keel_nn::ConvLSTM2D::new(2, (2, 2)).kernel_constraint(nn()).bias_constraint(nn())),
            vec![2, 4, 4, 1],
            &["kernel_constraint", "bias_constraint"],
            2,
        ),
        (Box::new(Bidirectional::new(GRU::new(2).kernel_constraint(nn()))), vec![4, 2], &[], 2),
        (
            Box::new(BatchNormalization::new().gamma_constraint(nn()).beta_constraint(nn())),
            vec![3],
            &["gamma_constraint", "beta_constraint"],
            2,
        ),
        (
            Box::new(LayerNormalization::new().center(false).gamma_constraint(nn()).beta_constraint(nn())),
            vec![3],
            &["gamma_constraint", "beta_constraint"],
            1,
        ),
        (Box::new(keel_nn::GroupNormalization::new(2).beta_constraint(nn())), vec![3, 4], &["beta_constraint"], 1),
        (Box::new(PReLU::new().alpha_constraint(nn())), vec![3], &["alpha_constraint"], 1),
    ];
    for (layer, shape, keys, pairs) in &mut cases {
        assert!(layer.constraints().is_empty(), "{}: unbuilt", layer.class_name());
        layer.build(shape, &mut rng).unwrap();
        assert_eq!(layer.constraints().len(), *pairs, "{}", layer.class_name());
        let cfg = layer.config();
        for key in keys.iter() {
            assert_eq!(cfg[*key], json!({"class_name": "NonNeg", "config": {}}), "{} {key}", layer.class_name());
        }
    }
    // unset: null, as Keras writes it; and a config saved before the keys existed still parses
    assert_eq!(BatchNormalization::new().config()["gamma_constraint"], Value::Null);
    let old: keel_nn::BatchNormalizationConfig =
        serde_json::from_value(json!({"momentum": 0.99, "epsilon": 0.001, "center": true, "scale": true})).unwrap();
    assert_eq!(old.gamma_constraint, None);
}

#[test]
fn models_collect_the_constraints_of_trainable_layers() {
    let mut m = Sequential::new();
    m.add(Dense::new(4).kernel_constraint(Constraint::max_norm(1.0, 0)).with_name("a").input_shape([3]));
    m.add(Dense::new(2).bias_constraint(Constraint::non_neg()).with_name("b"));
    m.add(Dense::new(1).with_name("c"));
    m.build(&[vec![3]]).unwrap();
    assert_eq!(m.weight_constraints().len(), 2);
    m.set_trainable("a", false).unwrap();
    let left = m.weight_constraints();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].1, Constraint::non_neg());

    let x = Input::new([3]);
    let h = Dense::new(4).kernel_constraint(Constraint::unit_norm(0)).with_name("fa").call(&x).unwrap();
    let y = Dense::new(1).with_name("fb").call(&h).unwrap();
    let mut f = Model::new(&[x], &[y]).unwrap();
    assert_eq!(f.weight_constraints().len(), 1);
    f.set_trainable("fa", false).unwrap();
    assert!(f.weight_constraints().is_empty());
}
