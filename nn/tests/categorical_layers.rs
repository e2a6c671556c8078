//! CategoryEncoding, Discretization, IntegerLookup and Hashing against real Keras 3
//! (fixtures/categorical_fixtures.json, written by fixtures/make_categorical_fixtures.py):
//! outputs, dtypes, learned bin boundaries and vocabularies, configs; and their errors.

use keel_autograd::Var;
use keel_nn::prelude::*;
use keel_nn::IntegerLookupConfig;
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let v: Value = serde_json::from_str(include_str!("fixtures/categorical_fixtures.json")).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn shape_of(v: &Value) -> Vec<usize> {
    v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect()
}

fn data_of(v: &Value) -> Vec<f64> {
    v["data"].as_array().unwrap().iter().map(|d| d.as_f64().unwrap()).collect()
}

/// The fixture array as keel takes it: I64 for Keras's int64, else F32.
fn tensor_of(v: &Value) -> Tensor {
    let (shape, data) = (shape_of(v), data_of(v));
    if v["dtype"] == "int64" {
        let data: Vec<i64> = v["data"].as_array().unwrap().iter().map(|d| d.as_i64().unwrap()).collect();
        Tensor::from_vec(data, shape).unwrap()
    } else {
        Tensor::from_vec(data.iter().map(|&d| d as f32).collect::<Vec<_>>(), shape).unwrap()
    }
}

fn mode(o: &Value, default: OutputMode) -> OutputMode {
    o.get("output_mode").map_or(default, |m| OutputMode::from_name(m.as_str().unwrap()).unwrap())
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array().unwrap().iter().map(|d| d.as_i64().unwrap()).collect()
}

/// The keel layer of a fixture case (adapted like the Keras one), unbuilt.
fn layer_of(c: &Value) -> Box<dyn Layer> {
    let o = &c["options"];
    let mut layer: Box<dyn Layer> = match c["class"].as_str().unwrap() {
        "CategoryEncoding" => Box::new(
            CategoryEncoding::new(o["num_tokens"].as_u64().unwrap() as usize)
                .output_mode(mode(o, OutputMode::MultiHot)),
        ),
        "Discretization" => {
            let l = match o.get("bin_boundaries") {
                Some(b) => Discretization::new(b.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()),
                None => Discretization::adaptive(o["num_bins"].as_u64().unwrap() as usize),
            };
            let mut l = l.output_mode(mode(o, OutputMode::Int));
            if let Some(e) = o.get("epsilon") {
                l = l.epsilon(e.as_f64().unwrap());
            }
            if let Some(data) = c.get("adapt") {
                l.adapt(&tensor_of(data)).unwrap();
            }
            Box::new(l)
        }
        "IntegerLookup" => {
            let mut l = IntegerLookup::new().output_mode(mode(o, OutputMode::Int));
            if let Some(v) = o.get("max_tokens") {
                l = l.max_tokens(v.as_u64().map(|m| m as usize));
            }
            if let Some(v) = o.get("num_oov_indices") {
                l = l.num_oov_indices(v.as_u64().unwrap() as usize);
            }
            if let Some(v) = o.get("mask_token") {
                l = l.mask_token(v.as_i64());
            }
            if let Some(v) = o.get("oov_token") {
                l = l.oov_token(v.as_i64().unwrap());
            }
            if let Some(v) = o.get("invert") {
                l = l.invert(v.as_bool().unwrap());
            }
            if let Some(v) = o.get("pad_to_max_tokens") {
                l = l.pad_to_max_tokens(v.as_bool().unwrap());
            }
            if let Some(v) = o.get("vocabulary") {
                l = l.vocabulary(ints(v));
            }
            if let Some(data) = c.get("adapt") {
                l.adapt(&tensor_of(data)).unwrap();
            }
            Box::new(l)
        }
        "Hashing" => {
            let salt = match &o["salt"] {
                Value::Null => None,
                Value::Array(a) => Some([a[0].as_u64().unwrap(), a[1].as_u64().unwrap()]),
                n => Some([n.as_u64().unwrap(); 2]),
            };
            Box::new(
                Hashing::new(o["num_bins"].as_u64().unwrap() as usize)
                    .mask_value(o.get("mask_value").and_then(Value::as_i64))
                    .salt(salt)
                    .output_mode(mode(o, OutputMode::Int)),
            )
        }
        other => panic!("unknown class {other}"),
    };
    layer.set_name(c["config"]["name"].as_str().unwrap().to_string());
    layer
}

fn run(layer: &mut dyn Layer, x: &Tensor) -> keel_nn::Result<Tensor> {
    layer.build(&x.dims()[1..], &mut Rng::new(0))?;
    Ok(layer.forward(&Var::constant(x.clone()), &mut Ctx::inference())?.into_value())
}

#[test]
fn outputs_match_keras() {
    let all = cases();
    assert_eq!(all.len(), 61);
    let mut compared = 0;
    for c in &all {
        let name = c["name"].as_str().unwrap();
        if c.get("count_weights").is_some() {
            continue; // weighted counts: below
        }
        let mut layer = layer_of(c);
        let x = tensor_of(&c["x"]);
        let got = run(layer.as_mut(), &x);
        if let Some(e) = c["y"].get("error") {
            let err = got.expect_err(&format!("{name}: Keras raised {e}, keel did not")).to_string();
            assert!(err.contains("not in the vocabulary"), "{name}: {err}");
            continue;
        }
        let got = got.unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = &c["y"];
        assert_eq!(got.dims(), shape_of(want), "{name}: shape");
        // Keras: int32 (Discretization) / int64 ids, float32 encodings (IntegerLookup's are int64)
        let default = if c["class"] == "CategoryEncoding" { "multi_hot" } else { "int" };
        let int_out = c["options"].get("output_mode").and_then(Value::as_str).unwrap_or(default) == "int";
        assert_eq!(got.dtype(), if int_out { DType::I64 } else { DType::F32 }, "{name}: dtype");
        assert_eq!(got.to_vec_f64().unwrap(), data_of(want), "{name}: values");
        compared += 1;
    }
    assert_eq!(compared, 58);
}

#[test]
fn weighted_counts_match_keras() {
    let c = cases().into_iter().find(|c| c.get("count_weights").is_some()).unwrap();
    let layer = CategoryEncoding::new(4).output_mode(OutputMode::Count);
    let y = layer.encode_weighted(&tensor_of(&c["x"]), &tensor_of(&c["count_weights"])).unwrap();
    assert_eq!(y.dims(), shape_of(&c["y"]));
    let want: Vec<f32> = data_of(&c["y"]).iter().map(|&v| v as f32).collect();
    assert_eq!(y.to_vec::<f32>().unwrap(), want);
    // other modes and mismatched weights are refused
    let w = Tensor::ones((4, 2), DType::F32, &Device::Cpu).unwrap();
    let x = tensor_of(&c["x"]);
    assert!(CategoryEncoding::new(4).encode_weighted(&x, &w).unwrap_err().to_string().contains("count"));
    let w3 = Tensor::ones((4, 3), DType::F32, &Device::Cpu).unwrap();
    assert!(layer.encode_weighted(&x, &w3).unwrap_err().to_string().contains("must match"));
}

#[test]
fn adapted_boundaries_and_vocabularies_match_keras() {
    let mut n = 0;
    for c in cases().iter().filter(|c| c.get("adapt").is_some()) {
        let name = c["name"].as_str().unwrap();
        let mut layer = layer_of(c);
        let x = tensor_of(&c["x"]);
        layer.build(&x.dims()[1..], &mut Rng::new(0)).unwrap();
        let cfg = layer.config();
        if c["class"] == "Discretization" {
            // the same F32 numbers, bit for bit
            let ours: Vec<f32> =
                cfg["bin_boundaries"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let keras: Vec<f32> =
                c["bin_boundaries"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            assert_eq!(ours, keras, "{name}: boundaries");
        } else {
            assert_eq!(ints(&cfg["vocabulary"]), ints(&c["vocabulary_no_special"]), "{name}: learned tokens");
        }
        n += 1;
    }
    assert_eq!(n, 17);
    // get_vocabulary, with and without the special tokens, for every IntegerLookup case
    for c in cases().iter().filter(|c| c["class"] == "IntegerLookup") {
        let o = &c["options"];
        let mut l = IntegerLookup::new().output_mode(mode(o, OutputMode::Int));
        for (k, v) in o.as_object().unwrap() {
            l = match k.as_str() {
                "max_tokens" => l.max_tokens(v.as_u64().map(|m| m as usize)),
                "num_oov_indices" => l.num_oov_indices(v.as_u64().unwrap() as usize),
                "mask_token" => l.mask_token(v.as_i64()),
                "oov_token" => l.oov_token(v.as_i64().unwrap()),
                "invert" => l.invert(v.as_bool().unwrap()),
                "pad_to_max_tokens" => l.pad_to_max_tokens(v.as_bool().unwrap()),
                "vocabulary" => l.vocabulary(ints(v)),
                _ => l,
            };
        }
        if let Some(d) = c.get("adapt") {
            l.adapt(&tensor_of(d)).unwrap();
        }
        assert_eq!(l.get_vocabulary(), ints(&c["vocabulary"]), "{}: get_vocabulary()", c["name"]);
        assert_eq!(l.get_vocabulary_tokens(), ints(&c["vocabulary_no_special"]), "{}", c["name"]);
        assert_eq!(l.vocabulary_size(), Some(ints(&c["vocabulary"]).len()), "{}", c["name"]);
    }
}

#[test]
fn configs_have_keras_keys_and_values() {
    for c in cases() {
        let name = c["name"].as_str().unwrap();
        let mut layer = layer_of(&c);
        let x = tensor_of(&c["x"]);
        let _ = layer.build(&x.dims()[1..], &mut Rng::new(0));
        let ours = layer.config();
        let keras = &c["config"];
        for (key, v) in ours.as_object().unwrap() {
            let k = keras.get(key).unwrap_or_else(|| panic!("{name}: keel writes {key}, which Keras does not"));
            // keel writes the adapted vocabulary, Keras an asset file (null here)
            if key == "vocabulary" && c.get("adapt").is_some() {
                assert!(k.is_null(), "{name}");
                continue;
            }
            // numbers as F32 (the boundaries are F32 values; serde_json reads them to 1 ulp of f64)
            let as_f32 = |v: &Value| -> Option<Vec<f32>> {
                match v {
                    Value::Array(a) => a.iter().map(|x| x.as_f64().map(|f| f as f32)).collect(),
                    _ => v.as_f64().map(|f| vec![f as f32]),
                }
            };
            let same = match (as_f32(k), as_f32(v)) {
                (Some(a), Some(b)) => a == b,
                _ => k == v,
            };
            assert!(same, "{name}: {key} keel {v} vs keras {k}");
        }
        let want: &[&str] = match c["class"].as_str().unwrap() {
            "CategoryEncoding" => &["name", "num_tokens", "output_mode"],
            "Discretization" => &["name", "bin_boundaries", "num_bins", "epsilon", "output_mode", "sparse"],
            "Hashing" => &["name", "num_bins", "salt", "mask_value", "output_mode", "sparse"],
            _ => &[
                "name",
                "max_tokens",
                "num_oov_indices",
                "mask_token",
                "oov_token",
                "vocabulary",
                "invert",
                "output_mode",
                "sparse",
                "pad_to_max_tokens",
                "vocabulary_dtype",
                "idf_weights",
                "vocabulary_size",
                "oov_method",
                "salt",
            ],
        };
        for key in want {
            assert!(ours.get(*key).is_some(), "{name}: keel does not write {key}");
        }
    }
}

#[test]
fn bad_inputs_and_configs_are_errors_naming_the_layer() {
    let mut rng = Rng::new(0);
    let ids = |v: Vec<i64>, s: (usize, usize)| Var::constant(Tensor::from_vec(v, s).unwrap());
    let mut ce = CategoryEncoding::new(3).with_name("ce");
    ce.build(&[2], &mut rng).unwrap();
    for bad in [vec![0i64, 3], vec![-1, 0]] {
        let e = ce.forward(&ids(bad.clone(), (1, 2)), &mut Ctx::inference()).unwrap_err().to_string();
        assert!(e.contains("\"ce\"") && e.contains("outside 0..3"), "{bad:?}: {e}");
    }
    for bad in [0.5f32, f32::NAN] {
        let x = Var::constant(Tensor::from_vec(vec![1.0f32, bad], (1, 2)).unwrap());
        let e = ce.forward(&x, &mut Ctx::inference()).unwrap_err().to_string();
        assert!(e.contains("\"ce\"") && e.contains("whole numbers"), "{e}");
    }
    assert!(CategoryEncoding::new(0).build(&[2], &mut rng).unwrap_err().to_string().contains("num_tokens"));
    assert!(CategoryEncoding::new(3).output_mode(OutputMode::Int).build(&[2], &mut rng).is_err());
    let e = CategoryEncoding::new(3).with_name("ce").build(&[2, 2], &mut rng).unwrap_err().to_string();
    assert!(e.contains("\"ce\"") && e.contains("rank 2"), "{e}");
    assert!(CategoryEncoding::new(3).output_mode(OutputMode::OneHot).build(&[2, 2], &mut rng).is_ok());
    assert!(OutputMode::from_name("tf_idf").unwrap_err().to_string().contains("tf_idf"));
    assert_eq!(OutputMode::from_name("binary").unwrap(), OutputMode::MultiHot);

    // Discretization
    let e = Discretization::new(vec![1.0, 0.0]).with_name("d").build(&[2], &mut rng).unwrap_err().to_string();
    assert!(e.contains("\"d\"") && e.contains("sorted"), "{e}");
    let x = Tensor::from_vec(vec![1.0f32, 2.0], (1, 2)).unwrap();
    let e = Discretization::new(vec![0.0]).adapt(&x).unwrap_err().to_string();
    assert!(e.contains("num_bins"), "{e}");
    let mut d = Discretization::adaptive(3).with_name("d");
    d.build(&[2], &mut rng).unwrap();
    let e = d.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap_err().to_string();
    assert!(e.contains("adapt"), "{e}");
    assert!(Discretization::adaptive(0).build(&[2], &mut rng).is_err());
    assert!(Discretization::adaptive(3).epsilon(0.0).adapt(&x).is_err());
    let nan = Tensor::from_vec(vec![1.0f32, f32::NAN], 2).unwrap();
    assert!(Discretization::adaptive(3).adapt(&nan).unwrap_err().to_string().contains("NaN"));
    assert!(Discretization::adaptive(3).adapt(&Tensor::zeros(0, DType::F32, &Device::Cpu).unwrap()).is_err());

    // Hashing
    assert!(Hashing::new(0).build(&[2], &mut rng).unwrap_err().to_string().contains("num_bins"));
    let x = Var::constant(Tensor::from_vec(vec![1.5f32], (1, 1)).unwrap());
    assert!(Hashing::new(3).forward(&x, &mut Ctx::inference()).unwrap_err().to_string().contains("whole numbers"));
    assert!(Hashing::new(3).output_mode(OutputMode::Count).build(&[2, 2], &mut rng).is_err());

    // IntegerLookup
    let e = IntegerLookup::new().with_name("il").vocabulary(vec![1, 2, 1]).build(&[2], &mut rng).unwrap_err();
    assert!(e.to_string().contains("\"il\"") && e.to_string().contains("repeats the tokens [1]"), "{e}");
    let e = IntegerLookup::new().mask_token(Some(0)).vocabulary(vec![3, 0]).build(&[2], &mut rng).unwrap_err();
    assert!(e.to_string().contains("mask token 0"), "{e}");
    let e = IntegerLookup::new().invert(true).vocabulary(vec![3, -1, 4]).build(&[2], &mut rng).unwrap_err();
    assert!(e.to_string().contains("OOV token -1"), "{e}");
    let e = IntegerLookup::new().max_tokens(Some(3)).vocabulary(vec![3, 4, 5]).build(&[2], &mut rng).unwrap_err();
    assert!(e.to_string().contains("max_tokens 3"), "{e}");
    assert!(IntegerLookup::new().vocabulary(vec![]).build(&[2], &mut rng).is_err());
    assert!(IntegerLookup::new().max_tokens(Some(1)).build(&[2], &mut rng).is_err());
    assert!(IntegerLookup::new().pad_to_max_tokens(true).build(&[2], &mut rng).is_err());
    let e = IntegerLookup::new().invert(true).output_mode(OutputMode::MultiHot).build(&[2], &mut rng).unwrap_err();
    assert!(e.to_string().contains("invert"), "{e}");
    let e = IntegerLookup::new().output_mode(OutputMode::Count).build(&[2], &mut rng).unwrap_err();
    assert!(e.to_string().contains("adapt"), "{e}");
    let mut il = IntegerLookup::new().with_name("il").num_oov_indices(0).vocabulary(vec![5, 6]);
    il.build(&[2], &mut rng).unwrap();
    let e = il.forward(&ids(vec![5, 7], (1, 2)), &mut Ctx::inference()).unwrap_err().to_string();
    assert!(e.contains("\"il\"") && e.contains("token 7"), "{e}");
    // Keras configs keel cannot honour
    for (cfg, why) in [
        (serde_json::json!({"sparse": true}), "sparse"),
        (serde_json::json!({"oov_method": "farmhash"}), "farmhash"),
        (serde_json::json!({"salt": 3, "oov_method": "farmhash"}), "farmhash"),
        (serde_json::json!({"output_mode": "tf_idf"}), "tf_idf"),
        (serde_json::json!({"vocabulary_dtype": "int32"}), "int32"),
    ] {
        let e = match serde_json::from_value::<IntegerLookupConfig>(cfg.clone()) {
            Err(e) => e.to_string(),
            Ok(c) => IntegerLookup::from_config(c).err().map(|e| e.to_string()).unwrap_or_default(),
        };
        assert!(e.contains(why), "{cfg}: {e}");
    }
}

#[test]
fn one_dimensional_batches_and_floats() {
    // keel's axis 0 is the batch: [batch] ids are one id per sample in every mode
    let x = Var::constant(Tensor::from_vec(vec![2i64, 0, 2], 3).unwrap());
    for m in [OutputMode::OneHot, OutputMode::MultiHot, OutputMode::Count] {
        let y = CategoryEncoding::new(3).output_mode(m).forward(&x, &mut Ctx::inference()).unwrap();
        assert_eq!(y.dims(), [3, 3]);
        assert_eq!(y.value().to_vec::<f32>().unwrap(), vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
    }
    // U8 ids and whole-number floats
    let u = Var::constant(Tensor::from_vec(vec![1u8, 2], (1, 2)).unwrap());
    let y = CategoryEncoding::new(3).forward(&u, &mut Ctx::inference()).unwrap();
    assert_eq!(y.value().to_vec::<f32>().unwrap(), vec![0.0, 1.0, 1.0]);
    // Discretization of I64 values, compared as F32
    let d = Discretization::new(vec![0.1, 2.0]);
    let v = Var::constant(Tensor::from_vec(vec![0i64, 1, 2, 3], (2, 2)).unwrap());
    assert_eq!(d.forward(&v, &mut Ctx::inference()).unwrap().value().to_vec::<i64>().unwrap(), vec![0, 1, 2, 2]);
    // output shapes as the model sees them
    assert_eq!(CategoryEncoding::new(5).output_shape(&[]).unwrap(), [5]);
    assert_eq!(CategoryEncoding::new(5).output_shape(&[4]).unwrap(), [5]);
    assert_eq!(CategoryEncoding::new(5).output_mode(OutputMode::OneHot).output_shape(&[1]).unwrap(), [5]);
    assert_eq!(CategoryEncoding::new(5).output_mode(OutputMode::OneHot).output_shape(&[3]).unwrap(), [3, 5]);
    assert_eq!(Discretization::adaptive(4).output_mode(OutputMode::Count).output_shape(&[3]).unwrap(), [4]);
    let il = IntegerLookup::new().vocabulary(vec![4, 5]).output_mode(OutputMode::MultiHot).num_oov_indices(2);
    assert_eq!(il.output_shape(&[7]).unwrap(), [4]);
    assert_eq!(IntegerLookup::new().output_shape(&[7]).unwrap(), [7]);
}

#[test]
fn mixed_precision_casts_the_encodings_not_the_ids() {
    let x = Var::constant(Tensor::from_vec(vec![1i64, 2], (1, 2)).unwrap());
    let mut ctx = Ctx::inference();
    ctx.compute_dtype = Some(DType::BF16);
    let y = CategoryEncoding::new(3).forward(&x, &mut ctx).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    let y = IntegerLookup::new().vocabulary(vec![1, 2]).forward(&x, &mut ctx);
    // not built: the vocabulary is installed by build
    assert!(y.is_err());
    let mut il = IntegerLookup::new().vocabulary(vec![1, 2]);
    il.build(&[2], &mut Rng::new(0)).unwrap();
    assert_eq!(il.forward(&x, &mut ctx).unwrap().dtype(), DType::I64);
    assert!(!CategoryEncoding::new(3).autocast() && !il.autocast() && !Discretization::new(vec![]).autocast());
}
