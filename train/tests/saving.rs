//! Model files, weights files and training checkpoints: round trips, resume, bad files.

mod common;

use common::{bits, blobs, mlp, test_dir, weight_bits};
use keel_nn::{
    Activation, ActivationLayer, AveragePooling1D, AveragePooling2D, BatchNormalization, Bidirectional, Conv1D,
    Conv1DPadding, Conv2D, Dense, Dropout, Embedding, Flatten, GlobalAveragePooling1D, GlobalAveragePooling2D,
    GlobalMaxPooling1D, GlobalMaxPooling2D, LayerNormalization, Loss, MaxPooling1D, MaxPooling2D, Network, Reshape,
    GRU, LSTM,
};
use keel_nn::{GroupNormalization, RMSNormalization, UnitNormalization};
use keel_optim::{Adam, SGD};
use keel_tensor::{DType, Device, Padding, Tensor};
use keel_train::{load_model, Checkpoint, Error, Fit, History, MetricSpec, ModelCheckpoint, Sequential, NO_METRICS};

fn images(seed: u64, n: usize) -> (Tensor, Tensor) {
    let x = Tensor::rand_uniform(seed, 0.0, 1.0, (n, 8, 8, 1), DType::F32, &Device::Cpu).unwrap();
    let labels: Vec<i64> = (0..n as i64).map(|i| i % 3).collect();
    let y = Tensor::from_vec(labels, n).unwrap();
    (x, y)
}

/// Every Sequential layer type of the registry in one CNN.
fn cnn(seed: u64) -> Sequential {
    let mut m = Sequential::with_seed(seed);
    m.add(Conv2D::new(4, (3, 3)).padding(Padding::Same).activation(Activation::Relu).input_shape([8, 8, 1]));
    m.add(BatchNormalization::new());
    m.add(MaxPooling2D::new((2, 2)));
    m.add(AveragePooling2D::new((2, 2)));
    m.add(Flatten::new());
    m.add(Dropout::new(0.25));
    m.add(Dense::new(8).activation(Activation::Relu));
    m.add(Reshape::new([2, 4]));
    m.add(Flatten::new().with_name("flat_again"));
    m.add(Dense::new(3));
    m.add(ActivationLayer::new(Activation::Softmax));
    m
}

fn compile_cnn(m: &mut Sequential) {
    m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
}

#[test]
fn save_and_load_model_predicts_bit_identically() {
    let dir = test_dir("roundtrip");
    let (x, y) = images(1, 24);
    let mut m = cnn(3);
    compile_cnn(&mut m);
    m.fit(&x, &y, Fit::new().epochs(2).batch_size(8).verbose(0)).unwrap();
    let path = dir.join("model.keel");
    m.save(&path).unwrap();
    let loaded = load_model(&path).unwrap();
    assert_eq!(loaded.config(), m.config());
    assert_eq!(weight_bits(loaded.network()), weight_bits(m.network()));
    assert_eq!(bits(&loaded.predict(&x, 5).unwrap()), bits(&m.predict(&x, 5).unwrap()));
    // the file is plain safetensors: keel-nn's reader sees the weights
    let plain = keel_nn::weights::load_safetensors(&path).unwrap();
    assert_eq!(plain.len(), m.state_dict().len());

    // GlobalAveragePooling2D
    let mut g = Sequential::with_seed(1);
    g.add(Conv2D::new(3, 3).input_shape([8, 8, 1]));
    g.add(GlobalAveragePooling2D::new());
    g.add(Dense::new(2).activation(Activation::Sigmoid));
    let p2 = dir.join("gap.keel");
    g.save(&p2).unwrap();
    let g2 = Sequential::load(&p2).unwrap();
    assert_eq!(bits(&g2.predict(&x, 32).unwrap()), bits(&g.predict(&x, 32).unwrap()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn recurrent_models_round_trip() {
    let dir = test_dir("rnn");
    let ids: Vec<i64> = (0..30).map(|i| (i * 7 % 11) as i64).collect();
    let x = Tensor::from_vec(ids, (5, 6)).unwrap();
    let mut m = Sequential::with_seed(2);
    m.add(Embedding::new(11, 4).input_shape([6]));
    m.add(Bidirectional::new(LSTM::new(3).return_sequences(true)));
    m.add(GRU::new(5));
    m.add(Dense::new(2));
    let path = dir.join("rnn.keel");
    m.save(&path).unwrap();
    let loaded = load_model(&path).unwrap();
    assert_eq!(loaded.config(), m.config());
    assert_eq!(bits(&loaded.predict(&x, 2).unwrap()), bits(&m.predict(&x, 2).unwrap()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sequence_conv_and_norm_layers_round_trip() {
    let dir = test_dir("conv1d");
    let x = Tensor::rand_normal(4, 0.0, 1.0, (6, 16, 2), DType::F32, &Device::Cpu).unwrap();
    let mut m = Sequential::with_seed(5);
    m.add(
        Conv1D::new(4, 3)
            .padding(Conv1DPadding::Causal)
            .dilation_rate(2)
            .activation(Activation::Relu)
            .input_shape([16, 2]),
    );
    m.add(MaxPooling1D::new(2));
    m.add(Conv1D::new(4, 3).padding(Conv1DPadding::Same).strides(2).use_bias(false).groups(2));
    m.add(LayerNormalization::new().epsilon(1e-5).center(false));
    m.add(AveragePooling1D::new(2).strides(1));
    m.add(GlobalMaxPooling1D::new());
    m.add(Dense::new(2));
    let mut g = Sequential::with_seed(6);
    g.add(Conv2D::new(4, 3).input_shape([8, 8, 1]));
    g.add(GroupNormalization::new(2).epsilon(1e-4));
    g.add(LayerNormalization::new());
    g.add(LayerNormalization::new().over([1, 2, 3]).center(false));
    g.add(RMSNormalization::new().axis(-1));
    g.add(GlobalMaxPooling2D::new());
    g.add(Dense::new(2));
    let mut a = Sequential::with_seed(7);
    a.add(Conv1D::new(3, 2).input_shape([16, 2]));
    a.add(GlobalAveragePooling1D::new());
    a.add(UnitNormalization::new(-1));
    // non-default weights everywhere (gamma and beta included): one training epoch each
    let (images, _) = images(1, 4);
    for (model, input) in [(&mut m, &x), (&mut g, &images), (&mut a, &x)] {
        model.compile(SGD::new(0.1), Loss::MeanSquaredError, NO_METRICS).unwrap();
        let target = model.predict(input, 8).unwrap().ones_like().unwrap().neg().unwrap();
        model.fit(input, &target, Fit::new().verbose(0)).unwrap();
    }
    for (i, (model, input)) in [(&m, &x), (&g, &images), (&a, &x)].into_iter().enumerate() {
        let path = dir.join(format!("m{i}.keel"));
        model.save(&path).unwrap();
        let loaded = load_model(&path).unwrap();
        assert_eq!(loaded.config(), model.config());
        assert_eq!(weight_bits(loaded.network()), weight_bits(model.network()));
        assert_eq!(bits(&loaded.predict(input, 4).unwrap()), bits(&model.predict(input, 4).unwrap()));
    }
    // a Keras config normalizing over other axes loads with them; the deprecated
    // rms_scaling is refused, not silently changed
    let cfg = serde_json::json!({"epsilon": 0.001, "center": true, "scale": true, "axis": [1, 2]});
    let mut ln = keel_train::layer_from_config("LayerNormalization", &cfg).unwrap();
    ln.build(&[3, 4, 5], &mut keel_tensor::rng::Rng::new(0)).unwrap();
    assert_eq!(ln.config()["axis"], serde_json::json!([1, 2]));
    assert_eq!(ln.weights()[0].param.value().dims(), [3, 4]);
    let mut rms_scaling = cfg.clone();
    rms_scaling["rms_scaling"] = serde_json::json!(true);
    let err = keel_train::layer_from_config("LayerNormalization", &rms_scaling).err().unwrap().to_string();
    assert!(err.contains("RMSNormalization"), "{err}");
    let keras_rms = serde_json::json!({"name": "rms_normalization", "trainable": true, "axis": [-1], "epsilon": 1e-6});
    let rms = keel_train::layer_from_config("RMSNormalization", &keras_rms).unwrap();
    assert_eq!(
        rms.config(),
        keras_rms
            .as_object()
            .map(|m| { serde_json::json!({"name": m["name"], "axis": m["axis"], "epsilon": m["epsilon"]}) })
            .unwrap()
    );
    let mut cfg = cfg;
    cfg["axis"] = serde_json::json!([1, 2]);
    cfg["groups"] = serde_json::json!(2);
    assert!(keel_train::layer_from_config("GroupNormalization", &cfg).is_err());
    // Keras 3.15's own configs (get_config of GroupNormalization(groups=-1) once built on 4
    // channels, and of UnitNormalization(axis=[1, 2]))
    let keras_gn = serde_json::json!({"name": "group_normalization", "trainable": true, "dtype": {"module": "keras",
        "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null}, "groups": 4, "axis": -1,
        "epsilon": 0.001, "center": true, "scale": false, "beta_initializer": {"module": "keras.initializers",
        "class_name": "Zeros", "config": {}, "registered_name": null}, "gamma_initializer": {"module":
        "keras.initializers", "class_name": "Ones", "config": {}, "registered_name": null}, "beta_regularizer": null,
        "gamma_regularizer": null, "beta_constraint": null, "gamma_constraint": null});
    let mut gn = keel_train::layer_from_config("GroupNormalization", &keras_gn).unwrap();
    gn.build(&[5, 4], &mut keel_tensor::rng::Rng::new(0)).unwrap();
    assert_eq!(gn.weights().len(), 1, "scale=false: beta only");
    assert_eq!(gn.config()["groups"], 4);
    let keras_un = serde_json::json!({"name": "unit_normalization_2", "trainable": true, "axis": [1, 2]});
    let un = keel_train::layer_from_config("UnitNormalization", &keras_un).unwrap();
    assert_eq!(un.config()["axis"], serde_json::json!([1, 2]));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Train `epochs` epochs in one go, or stop after `split` epochs, drop everything,
/// and resume from the checkpoint file in fresh objects.
#[test]
fn a_killed_and_resumed_run_matches_the_uninterrupted_one_bit_for_bit() {
    let dir = test_dir("resume");
    let (x, y) = images(2, 40);
    let (vx, vy) = images(3, 12);
    let fit = |epochs| Fit::new().epochs(epochs).batch_size(8).seed(5).verbose(0).validation_data(&vx, &vy);

    let mut a = cnn(7);
    compile_cnn(&mut a);
    let ha = a.fit(&x, &y, fit(4)).unwrap();

    let path = dir.join("ckpt.keel");
    {
        let mut b = cnn(7);
        compile_cnn(&mut b);
        // the checkpoint callback writes after every epoch; the "crash" happens after epoch 2
        b.fit(&x, &y, fit(2).callback(ModelCheckpoint::new(path.to_str().unwrap()))).unwrap();
    } // model, optimizer and callback dropped: only the file survives
    let mut c = load_model(&path).unwrap(); // architecture from the file
    c.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    let ck = c.load_checkpoint(&path).unwrap();
    assert_eq!((ck.epoch, ck.seed), (2, 5));
    assert_eq!(ck.history.epoch, vec![0, 1]);
    let hc = c.fit(&x, &y, fit(4).resume_from(&ck)).unwrap();
    assert_eq!(hc.epoch, vec![2, 3]);

    assert_eq!(weight_bits(c.network()), weight_bits(a.network()));
    assert_eq!(bits(&c.predict(&vx, 32).unwrap()), bits(&a.predict(&vx, 32).unwrap()));
    let mut full = ck.history.clone();
    full.extend(&hc);
    assert_eq!(full, ha);

    // the same through an explicit save_checkpoint after `fit`
    let mut d = cnn(7);
    compile_cnn(&mut d);
    let hd = d.fit(&x, &y, fit(3)).unwrap();
    d.save_checkpoint(dir.join("d.ckpt"), 3, 5, &hd).unwrap();
    drop(d);
    let mut e = cnn(123); // different initial weights: all overwritten
    compile_cnn(&mut e);
    let ck = e.load_checkpoint(dir.join("d.ckpt")).unwrap();
    e.fit(&x, &y, fit(4).resume_from(&ck)).unwrap();
    assert_eq!(weight_bits(e.network()), weight_bits(a.network()));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn assert_bad_file(r: Result<impl std::fmt::Debug, Error>, needle: &str) {
    match r {
        Err(Error::BadFile { msg, .. }) => assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}"),
        other => panic!("expected a BadFile error containing {needle:?}, got {other:?}"),
    }
}

#[test]
fn bad_files_are_errors_and_change_nothing() {
    let dir = test_dir("bad");
    let (x, y) = blobs(1, 8);
    let mut m = mlp(0);
    m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let model_path = dir.join("m.keel");
    let ckpt_path = dir.join("m.ckpt");
    m.save(&model_path).unwrap();
    m.save_checkpoint(&ckpt_path, 0, 0, &History::new()).unwrap();
    let model_bytes = std::fs::read(&model_path).unwrap();
    let ckpt_bytes = std::fs::read(&ckpt_path).unwrap();
    let before = weight_bits(m.network());

    // truncated files, at every kind of cut
    for (bytes, name) in [(&model_bytes, "cut.keel"), (&ckpt_bytes, "cut.ckpt")] {
        for cut in [0, 3, 8, 20, bytes.len() / 2, bytes.len() - 1] {
            let p = dir.join(name);
            std::fs::write(&p, &bytes[..cut]).unwrap();
            assert!(matches!(load_model(&p), Err(Error::BadFile { .. })), "cut at {cut} of {name}");
            assert!(matches!(m.load_weights(&p), Err(Error::BadFile { .. })), "cut at {cut} of {name}");
        }
    }
    assert_bad_file(m.load_checkpoint(dir.join("cut.ckpt")), "truncated");
    // a flipped byte in a checkpoint fails the checksum
    let mut corrupt = ckpt_bytes.clone();
    let last = corrupt.len() - 5;
    corrupt[last] ^= 0x40;
    std::fs::write(dir.join("corrupt.ckpt"), &corrupt).unwrap();
    assert_bad_file(Checkpoint::load(dir.join("corrupt.ckpt")), "checksum");

    // another architecture: other layer names
    let mut other = Sequential::with_seed(0);
    other.add(Dense::new(16).activation(Activation::Relu).input_shape([2]).with_name("hidden"));
    other.add(Dense::new(1).with_name("out"));
    other.compile(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let other_before = weight_bits(other.network());
    assert_bad_file(other.load_weights(&model_path), "another architecture");
    assert_bad_file(other.load_checkpoint(&ckpt_path), "another architecture");
    assert_eq!(weight_bits(other.network()), other_before);

    // the same names with other shapes
    let mut wide = Sequential::with_seed(0);
    wide.add(Dense::new(17).activation(Activation::Relu).input_shape([2]));
    wide.add(Dense::new(1).activation(Activation::Sigmoid));
    let wide_before = weight_bits(wide.network());
    assert_bad_file(wide.load_weights(&model_path), "shape");
    assert_eq!(weight_bits(wide.network()), wide_before);

    // the wrong dtype: the same weights stored as F64
    let f64_map = m.state_dict().into_iter().map(|(k, t)| (k, t.to_dtype(DType::F64).unwrap())).collect();
    keel_nn::weights::save_safetensors(&f64_map, dir.join("f64.safetensors")).unwrap();
    assert_bad_file(m.load_weights(dir.join("f64.safetensors")), "F64");
    // an unsupported dtype in the header
    // (byte for byte: a lossy UTF-8 round trip would mangle the binary header length)
    let mut text = model_bytes.clone();
    for i in 0..text.len().saturating_sub(4) {
        if &text[i..i + 5] == b"\"F32\"" {
            text[i..i + 5].copy_from_slice(b"\"I64\"");
        }
    }
    std::fs::write(dir.join("i64.keel"), &text).unwrap();
    assert_bad_file(m.load_weights(dir.join("i64.keel")), "I64");
    // a weights-only file is not a model
    m.save_weights(dir.join("w.safetensors")).unwrap();
    assert_bad_file(load_model(dir.join("w.safetensors")).map(|_| ()), "no model config");
    // a checkpoint of another optimizer
    let mut adam = mlp(0);
    adam.compile(Adam::default(), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    assert_bad_file(adam.load_checkpoint(&ckpt_path), "optimizer");
    // unknown layer class
    let cfg = serde_json::json!({"class_name": "Sequential", "config": {"name": "s", "input_shape": [2],
        "layers": [{"class_name": "Quantum", "config": {"name": "q"}}]}});
    let e = <keel_nn::Sequential as keel_train::FromConfig>::from_config(&cfg).err().unwrap().to_string();
    assert!(e.contains("\"Quantum\"") && e.contains("register_layer"), "{e}");
    // a checkpoint whose optimizer slots differ (momentum vs none) changes nothing
    let mut mom = mlp(0);
    mom.compile(SGD::new(0.1).momentum(0.9), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let hm = mom.fit(&x, &y, Fit::new().epochs(1).verbose(0)).unwrap();
    let mom_path = dir.join("momentum.ckpt");
    mom.save_checkpoint(&mom_path, 1, 0, &hm).unwrap();
    let mut plain = mlp(5);
    plain.compile(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    plain.fit(&x, &y, Fit::new().epochs(1).verbose(0)).unwrap();
    let plain_before = weight_bits(plain.network());
    assert!(plain.load_checkpoint(&mom_path).is_err());
    assert_eq!(weight_bits(plain.network()), plain_before, "a refused checkpoint replaced the weights");

    // nothing above changed the model or the good files
    assert_eq!(weight_bits(m.network()), before);
    assert_eq!(std::fs::read(&model_path).unwrap(), model_bytes);
    assert_eq!(std::fs::read(&ckpt_path).unwrap(), ckpt_bytes);
    // a failed save leaves the existing file as it was
    let unbuilt = Sequential::new();
    assert!(unbuilt.save(&model_path).is_err());
    assert_eq!(std::fs::read(&model_path).unwrap(), model_bytes);
    assert!(load_model(&model_path).unwrap().predict(&x, 8).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn history_plot_writes_a_png() {
    let dir = test_dir("plot");
    let (x, y) = blobs(2, 64);
    let mut m = mlp(1);
    m.compile(Adam::new(0.05), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    let h = m.fit(&x, &y, Fit::new().epochs(12).batch_size(16).validation_split(0.25).verbose(0)).unwrap();
    assert_eq!(h.plot_names(), vec!["loss", "accuracy"]);
    let path = dir.join("curves.png");
    h.plot(&path).unwrap();
    let png = std::fs::read(&path).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&png[12..16], b"IHDR");
    let w = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    let hgt = u32::from_be_bytes([png[20], png[21], png[22], png[23]]);
    assert_eq!((w, hgt), (800, 640)); // one 800x320 panel per metric
    assert!(png.len() > 5_000, "{} bytes", png.len());
    assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");
    if let Ok(keep) = std::env::var("KEEL_KEEP_PLOT") {
        std::fs::copy(&path, keep).unwrap();
    }
    assert!(History::new().plot(dir.join("empty.png")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn functional_models_round_trip_with_shared_layers() {
    use keel_nn::{add, average, concatenate, multiply, subtract, Input, LayerExt, LayerHandle, Maximum, Minimum};
    let dir = test_dir("functional");
    let a = Input::named([4], "features");
    let b = Input::new([6]);
    let h = Dense::new(6).activation(Activation::Relu).call(&a).unwrap();
    let shared = LayerHandle::new(Dense::new(6).activation(Activation::Tanh));
    let s1 = shared.call(&h).unwrap();
    let s2 = shared.call(&b).unwrap(); // the same weights on another input
                                       // every merge layer, and Concatenate with Keras's positive axis
    let merges = [
        add(&[s1.clone(), s2.clone()]).unwrap(),
        subtract(&s1, &h).unwrap(),
        multiply(&[s1.clone(), s2.clone(), h.clone()]).unwrap(),
        average(&[s1.clone(), h.clone()]).unwrap(),
        Maximum::new().call_multi(&[s2.clone(), h.clone()]).unwrap(),
        Minimum::new().call_multi(&[s1, s2.clone()]).unwrap(),
        h,
    ];
    let merged = concatenate(&merges, 1).unwrap();
    let out = Dense::new(2).activation(Activation::Softmax).call(&merged).unwrap();
    let m = keel_train::Model::new(&[a, b], &[out, s2]).unwrap();
    let xa = Tensor::rand_uniform(1, -1.0, 1.0, (5, 4), DType::F32, &Device::Cpu).unwrap();
    let xb = Tensor::rand_uniform(2, -1.0, 1.0, (5, 6), DType::F32, &Device::Cpu).unwrap();
    let path = dir.join("functional.keel");
    m.save(&path).unwrap();
    let loaded = keel_train::Model::load(&path).unwrap();
    assert_eq!(loaded.config(), m.config());
    assert_eq!(weight_bits(loaded.network()), weight_bits(m.network()));
    let (p, q) =
        (m.network().predict(&[xa.clone(), xb.clone()]).unwrap(), loaded.network().predict(&[xa, xb]).unwrap());
    assert_eq!(p.len(), 2);
    for (p, q) in p.iter().zip(&q) {
        assert_eq!(bits(p), bits(q));
    }
    // a functional file is not a Sequential one
    assert!(load_model(&path).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// GroupQueryAttention in a functional model (cross-attention with a separate key, every
/// option off its default, constraints) saves and loads: config, weights and predictions;
/// Keras's config loads, its gate and sliding window are refused.
#[test]
fn group_query_attention_round_trips() {
    use keel_nn::{Constraint, GroupQueryAttention, Input, LayerExt};
    let dir = test_dir("gqa");
    let ids = Input::new([5]);
    let seq = Input::new([7, 4]);
    let q = Embedding::new(10, 4).call(&ids).unwrap();
    let k = Dense::new(5).call(&seq).unwrap();
    let att = GroupQueryAttention::new(3, 4, 2)
        .dropout(0.1)
        .use_causal_mask(true)
        .kernel_constraint(Constraint::max_norm(0.5, 0))
        .bias_constraint(Constraint::non_neg())
        .call_multi(&[q, seq.clone(), k])
        .unwrap();
    let out = Dense::new(2).activation(Activation::Softmax).call(&GlobalAveragePooling1D::new().call(&att).unwrap());
    let mut m = keel_train::Model::new(&[ids, seq], &[out.unwrap()]).unwrap();
    let xi = Tensor::from_vec((0..30).map(|i| (i * 3 % 10) as i64).collect::<Vec<_>>(), (6, 5)).unwrap();
    let xs = Tensor::rand_normal(3, 0.0, 1.0, (6, 7, 4), DType::F32, &Device::Cpu).unwrap();
    let y = Tensor::from_vec(vec![0i64, 1, 0, 1, 1, 0], 6).unwrap();
    m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, NO_METRICS).unwrap();
    m.fit([&xi, &xs], &y, Fit::new().epochs(1).batch_size(3).verbose(0)).unwrap();
    // the constraints held after the steps
    for w in m.network().named_weights().into_iter().filter(|w| w.name.starts_with("grouped_query_attention/")) {
        let v = w.param.value().to_vec_f64().unwrap();
        if w.name.ends_with("bias") {
            assert!(v.iter().all(|&x| x >= 0.0), "{}", w.name);
        }
    }
    let path = dir.join("gqa.keel");
    m.save(&path).unwrap();
    let loaded = keel_train::Model::load(&path).unwrap();
    assert_eq!(loaded.config(), m.config());
    let cfg = &m.config()["config"]["layers"];
    let att_cfg = cfg.as_array().unwrap().iter().find(|l| l["class_name"] == "GroupQueryAttention").unwrap();
    for (key, want) in [
        ("head_dim", serde_json::json!(3)),
        ("num_query_heads", serde_json::json!(4)),
        ("num_key_value_heads", serde_json::json!(2)),
        ("dropout", serde_json::json!(0.1)),
        ("use_bias", serde_json::json!(true)),
        ("use_gate", serde_json::json!(false)),
        ("sliding_window", serde_json::Value::Null),
        ("use_causal_mask", serde_json::json!(true)),
    ] {
        assert_eq!(att_cfg["config"][key], want, "{key}");
    }
    assert_eq!(att_cfg["config"]["bias_constraint"]["class_name"], "NonNeg");
    assert_eq!(weight_bits(loaded.network()), weight_bits(m.network()));
    let (p, q) = (m.predict([&xi, &xs], 4).unwrap(), loaded.predict([&xi, &xs], 4).unwrap());
    assert_eq!(bits(&p), bits(&q));
    // the configs Keras 3.15.1 wrote load with no warning, and keel's config has their keys
    let v: serde_json::Value =
        serde_json::from_str(include_str!("../../nn/tests/fixtures/group_query_attention_fixtures.json")).unwrap();
    for c in v["cases"].as_array().unwrap() {
        let keras = &c["config"];
        assert!(keel_train::unapplied_settings("GroupQueryAttention", keras).is_empty());
        let l = keel_train::layer_from_config("GroupQueryAttention", keras).unwrap();
        let mine = l.config();
        for key in keras
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !["trainable", "dtype", "seed", "activity_regularizer"].contains(&k.as_str()))
        {
            assert!(mine.get(key).is_some(), "{key} missing from {mine}");
        }
        for key in ["head_dim", "num_query_heads", "num_key_value_heads", "use_bias", "dropout", "name"] {
            assert_eq!(mine[key], keras[key], "{key}");
        }
    }
    let mut keras = v["cases"][0]["config"].clone();
    keras["use_gate"] = serde_json::json!(true);
    let e = keel_train::layer_from_config("GroupQueryAttention", &keras).err().unwrap().to_string();
    assert!(e.contains("GroupQueryAttention") && e.contains("use_gate"), "{e}");
    keras["use_gate"] = serde_json::json!(false);
    keras["sliding_window"] = serde_json::json!(4);
    let e = keel_train::layer_from_config("GroupQueryAttention", &keras).err().unwrap().to_string();
    assert!(e.contains("sliding_window"), "{e}");
    // an activity regularizer is not applied: a warning, not an error
    keras["sliding_window"] = serde_json::Value::Null;
    keras["activity_regularizer"] = serde_json::json!({"class_name": "L2", "config": {"l2": 0.01}});
    assert_eq!(keel_train::unapplied_settings("GroupQueryAttention", &keras), vec!["activity_regularizer (L2)"]);
    assert!(keel_train::layer_from_config("GroupQueryAttention", &keras).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// MultiHeadAttention in a functional model (cross-attention with a separate key, every
/// option off its default) saves and loads: config, weights and predictions.
#[test]
fn multi_head_attention_round_trips() {
    use keel_nn::{Input, LayerExt, MultiHeadAttention};
    let dir = test_dir("mha");
    let ids = Input::new([5]);
    let seq = Input::new([7, 3]);
    let q = Embedding::new(10, 4).call(&ids).unwrap();
    let k = Dense::new(5).call(&seq).unwrap();
    let att = MultiHeadAttention::new(2, 3)
        .value_dim(2)
        .output_shape(6)
        .dropout(0.1)
        .use_causal_mask(true)
        .call_multi(&[q, seq.clone(), k])
        .unwrap();
    let out = Dense::new(2).activation(Activation::Softmax).call(&GlobalAveragePooling1D::new().call(&att).unwrap());
    let mut m = keel_train::Model::new(&[ids, seq], &[out.unwrap()]).unwrap();
    let xi = Tensor::from_vec((0..30).map(|i| (i * 3 % 10) as i64).collect::<Vec<_>>(), (6, 5)).unwrap();
    let xs = Tensor::rand_normal(3, 0.0, 1.0, (6, 7, 3), DType::F32, &Device::Cpu).unwrap();
    let y = Tensor::from_vec(vec![0i64, 1, 0, 1, 1, 0], 6).unwrap();
    // non-default weights (biases included): one epoch, with attention dropout
    m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, NO_METRICS).unwrap();
    m.fit([&xi, &xs], &y, Fit::new().epochs(1).batch_size(3).verbose(0)).unwrap();
    let names: Vec<String> = m.network().named_weights().into_iter().map(|w| w.name).collect();
    assert!(names.contains(&"multi_head_attention/query/kernel".to_string()), "{names:?}");
    let path = dir.join("mha.keel");
    m.save(&path).unwrap();
    let loaded = keel_train::Model::load(&path).unwrap();
    assert_eq!(loaded.config(), m.config());
    let cfg = &m.config()["config"]["layers"];
    let att_cfg = cfg.as_array().unwrap().iter().find(|l| l["class_name"] == "MultiHeadAttention").unwrap();
    for (key, want) in [
        ("num_heads", serde_json::json!(2)),
        ("key_dim", serde_json::json!(3)),
        ("value_dim", serde_json::json!(2)),
        ("dropout", serde_json::json!(0.1)),
        ("use_bias", serde_json::json!(true)),
        ("output_shape", serde_json::json!(6)),
        ("use_causal_mask", serde_json::json!(true)),
    ] {
        assert_eq!(att_cfg["config"][key], want, "{key}");
    }
    assert_eq!(weight_bits(loaded.network()), weight_bits(m.network()));
    let (p, q) = (m.predict([&xi, &xs], 4).unwrap(), loaded.predict([&xi, &xs], 4).unwrap());
    assert_eq!(bits(&p), bits(&q));
    // a Keras config (output_shape as a list, no use_causal_mask) loads; other attention axes do not
    let mut keras = att_cfg["config"].clone();
    keras["output_shape"] = serde_json::json!([6]);
    keras["attention_axes"] = serde_json::Value::Null;
    keras.as_object_mut().unwrap().remove("use_causal_mask");
    let l = keel_train::layer_from_config("MultiHeadAttention", &keras).unwrap();
    assert_eq!(l.config()["output_shape"], 6);
    assert_eq!(l.config()["use_causal_mask"], false);
    keras["attention_axes"] = serde_json::json!([1, 2]);
    let e = keel_train::layer_from_config("MultiHeadAttention", &keras).err().unwrap().to_string();
    assert!(e.contains("attention_axes"), "{e}");
    keras["attention_axes"] = serde_json::Value::Null;
    keras["output_shape"] = serde_json::json!([2, 3]);
    assert!(keel_train::layer_from_config("MultiHeadAttention", &keras).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mixed_precision_policy_round_trips() {
    use keel_nn::mixed_precision::DTypePolicy;
    let dir = test_dir("mixed");
    let (x, y) = images(4, 24);
    let mut m = cnn(5);
    m.set_dtype_policy(DTypePolicy::MixedBFloat16);
    compile_cnn(&mut m);
    m.fit(&x, &y, Fit::new().epochs(1).batch_size(8).verbose(0)).unwrap();
    assert_eq!(m.config()["config"]["dtype_policy"], "mixed_bfloat16");
    let path = dir.join("mixed.keel");
    m.save(&path).unwrap();
    let loaded = load_model(&path).unwrap();
    assert_eq!(loaded.get_dtype_policy(), DTypePolicy::MixedBFloat16);
    assert_eq!(bits(&loaded.predict(&x, 5).unwrap()), bits(&m.predict(&x, 5).unwrap()));
    // a config without the key (files from before mixed precision) loads as float32
    let mut cfg = m.config();
    cfg["config"].as_object_mut().unwrap().remove("dtype_policy");
    let old = <keel_nn::Sequential as keel_train::FromConfig>::from_config(&cfg).unwrap();
    assert_eq!(old.get_dtype_policy(), DTypePolicy::Float32);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Keras's `Rescaling(1/255)` in front of a model fed U8 pixels: the values, training, and
/// a save/load round trip that keeps scale and offset.
#[test]
fn rescaling_puts_pixels_in_range_and_round_trips() {
    use keel_nn::{Flatten, Layer, Rescaling};
    let mut r = Rescaling::new(1.0 / 127.5).offset(-1.0);
    r.build(&[3], &mut keel_tensor::rng::Rng::new(0)).unwrap();
    let px = Tensor::from_vec(vec![0u8, 51, 255], (1, 3)).unwrap().to_dtype(DType::F32).unwrap();
    let y = r.forward(&keel_autograd::Var::constant(px), &mut keel_nn::Ctx::inference()).unwrap();
    let want = [-1.0f32, 51.0 / 127.5 - 1.0, 1.0];
    for (g, w) in y.value().to_vec::<f32>().unwrap().iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{g} vs {w}");
    }
    let mut bad = Rescaling::new(f64::NAN);
    assert!(bad.build(&[3], &mut keel_tensor::rng::Rng::new(0)).unwrap_err().to_string().contains("finite"));

    let dir = test_dir("rescaling");
    let x = Tensor::rand_uniform(3, 0.0, 255.0, (32, 4, 4, 1), DType::F32, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::U8)
        .unwrap();
    let y = x.to_dtype(DType::F32).unwrap().mean(&[1, 2, 3], false).unwrap().gt(&Tensor::scalar(127.0f32)).unwrap();
    let y = y.to_dtype(DType::F32).unwrap().reshape((32, 1)).unwrap();
    let mut m = Sequential::with_seed(1);
    m.add(Rescaling::new(1.0 / 255.0).input_shape([4, 4, 1]));
    m.add(Flatten::new());
    m.add(Dense::new(1).activation(Activation::Sigmoid));
    m.compile(Adam::new(0.05), keel_nn::Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    m.fit(&x, &y, Fit::new().epochs(2).batch_size(8).verbose(0)).unwrap();
    let path = dir.join("rescaling.keel");
    m.save(&path).unwrap();
    let loaded = load_model(&path).unwrap();
    assert_eq!(loaded.config(), m.config());
    assert_eq!(bits(&loaded.predict(&x, 8).unwrap()), bits(&m.predict(&x, 8).unwrap()));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Safetensors files that break the format (holes, overlapping tensors, shapes whose size
/// overflows, metadata that is not strings) are errors from both readers, never a panic.
#[test]
fn malformed_safetensors_layouts_are_errors() {
    let dir = test_dir("safetensors_layout");
    let file = |name: &str, header: &str, data: &[u8]| {
        let mut h = header.as_bytes().to_vec();
        while h.len() % 8 != 0 {
            h.push(b' ');
        }
        let mut b = (h.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(&h);
        b.extend_from_slice(data);
        let p = dir.join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    let ok = file(
        "ok.safetensors",
        r#"{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
        &[0; 8],
    );
    assert_eq!(keel_nn::weights::load_safetensors(&ok).unwrap().len(), 2);
    let cases = [
        ("hole", r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, &[0u8; 8][..], "belong to no tensor"),
        (
            "overlap",
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            &[0u8; 4][..],
            "overlaps",
        ),
        ("tail", r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, &[0u8; 6][..], "after the last tensor"),
        (
            "overflow",
            r#"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}"#,
            &[][..],
            "overflows",
        ),
        (
            "metadata",
            r#"{"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            &[0u8; 4][..],
            "__metadata__",
        ),
    ];
    for (name, header, data, needle) in cases {
        let p = file(&format!("{name}.safetensors"), header, data);
        let e = keel_nn::weights::load_safetensors(&p).unwrap_err().to_string();
        assert!(e.contains(needle), "nn reader, {name}: {e}");
        let mut m = mlp(0);
        m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
        let e = m.load_weights(&p).unwrap_err().to_string();
        assert!(e.contains(needle) || e.contains("safetensors"), "train reader, {name}: {e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A layer name holding '[' (as "Connected to" labels do) saves and loads.
#[test]
fn a_layer_name_with_brackets_round_trips() {
    use keel_nn::{Input, LayerExt};
    let dir = test_dir("bracket_names");
    let a = Input::new([3]);
    let h = Dense::new(4).with_name("enc[0]").call(&a).unwrap();
    let m = keel_train::Model::new(&[a], &[Dense::new(1).call(&h).unwrap()]).unwrap();
    let path = dir.join("m.keel");
    m.save(&path).unwrap();
    let loaded = keel_train::Model::load(&path).unwrap();
    assert_eq!(loaded.config(), m.config());
    let x = Tensor::rand_uniform(4, -1.0, 1.0, (5, 3), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(bits(&loaded.predict(&x, 8).unwrap()), bits(&m.predict(&x, 8).unwrap()));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Keras's `Normalization` + `adapt`: per-feature statistics (population variance), the
/// inverse, frozen through `fit`, and saved and loaded with the model.
#[test]
fn normalization_adapts_trains_frozen_and_round_trips() {
    use keel_nn::{Layer, Normalization};
    // feature 0 around 1000 (spread 100), feature 1 around -5 (spread 0.01)
    let n = 64;
    let u = Tensor::rand_uniform(8, -1.0, 1.0, (n, 2), DType::F64, &Device::Cpu).unwrap().to_vec::<f64>().unwrap();
    let raw: Vec<f32> =
        u.chunks(2).flat_map(|r| [(1000.0 + 100.0 * r[0]) as f32, (-5.0 + 0.01 * r[1]) as f32]).collect();
    let x = Tensor::from_vec(raw.clone(), (n, 2)).unwrap();
    let mut norm = Normalization::new();
    norm.adapt(&x).unwrap();
    let (mean, var) = (norm.mean().unwrap(), norm.variance().unwrap());
    for j in 0..2 {
        let col: Vec<f64> = raw.iter().skip(j).step_by(2).map(|&v| v as f64).collect();
        let m = col.iter().sum::<f64>() / n as f64;
        let v = col.iter().map(|c| (c - m) * (c - m)).sum::<f64>() / n as f64;
        assert!((mean[j] - m).abs() < 1e-3 * m.abs().max(1.0), "mean {j}: {} vs {m}", mean[j]);
        assert!((var[j] - v).abs() < 1e-3 * v, "var {j}: {} vs {v}", var[j]);
    }
    let z = norm.forward(&keel_autograd::Var::constant(x.clone()), &mut keel_nn::Ctx::inference()).unwrap();
    let zs = z.value().to_vec::<f32>().unwrap();
    for j in 0..2 {
        let col: Vec<f64> = zs.iter().skip(j).step_by(2).map(|&v| v as f64).collect();
        let m = col.iter().sum::<f64>() / n as f64;
        let s = (col.iter().map(|c| (c - m) * (c - m)).sum::<f64>() / n as f64).sqrt();
        assert!(m.abs() < 1e-3 && (s - 1.0).abs() < 1e-3, "feature {j}: mean {m} std {s}");
    }
    // the inverse takes the normalized data back
    let mut back = Normalization::new().invert(true);
    back.adapt(&x).unwrap();
    let xb = back.forward(&z, &mut keel_nn::Ctx::inference());
    let xb = xb.unwrap().value().to_vec::<f32>().unwrap();
    for (a, b) in xb.iter().zip(&raw) {
        assert!((a - b).abs() < 1e-3 * b.abs().max(1.0), "{a} vs {b}");
    }
    // errors: NaN data, another feature count, no feature axis
    let mut bad = Normalization::new();
    let nan = Tensor::from_vec(vec![1.0f32, f32::NAN], (1, 2)).unwrap();
    assert!(bad.adapt(&nan).unwrap_err().to_string().contains("NaN"));
    assert!(norm
        .adapt(&Tensor::zeros((3, 5), DType::F32, &Device::Cpu).unwrap())
        .unwrap_err()
        .to_string()
        .contains("2 features"));

    // in a model: trains on the raw features, the statistics stay as adapted, save/load
    let y =
        Tensor::from_vec(u.chunks(2).map(|r| (r[0] + r[1] > 0.0) as i64 as f32).collect::<Vec<_>>(), (n, 1)).unwrap();
    let mut m = Sequential::with_seed(2);
    m.add(norm.input_shape([2]));
    m.add(Dense::new(1).activation(Activation::Sigmoid));
    m.compile(Adam::new(0.05), keel_nn::Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    let h = m.fit(&x, &y, Fit::new().epochs(40).batch_size(16).verbose(0)).unwrap();
    assert!(h.last("accuracy").unwrap() > 0.9, "{:?}", h.get("accuracy"));
    let stats: Vec<Vec<f32>> = m
        .network()
        .named_weights()
        .iter()
        .filter(|w| !w.trainable)
        .map(|w| w.param.value().to_vec::<f32>().unwrap())
        .collect();
    assert_eq!(stats.len(), 2);
    assert_eq!(
        stats[0].iter().map(|&v| v as f64).collect::<Vec<_>>(),
        mean.iter().map(|&v| v as f32 as f64).collect::<Vec<_>>()
    );
    let dir = test_dir("normalization");
    let path = dir.join("m.keel");
    m.save(&path).unwrap();
    let loaded = load_model(&path).unwrap();
    assert_eq!(loaded.config(), m.config());
    assert_eq!(bits(&loaded.predict(&x, 16).unwrap()), bits(&m.predict(&x, 16).unwrap()));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A convolutional autoencoder (Conv2D down, Conv2DTranspose up) learns to reconstruct its
/// images, and saves and loads with its output_padding.
#[test]
fn conv2d_transpose_autoencoder_trains_and_round_trips() {
    use keel_nn::Conv2DTranspose;
    let dir = test_dir("conv2d_transpose");
    let (x, _) = images(3, 32);
    let mut m = Sequential::with_seed(4);
    m.add(Conv2D::new(8, 3).strides(2).padding(Padding::Same).activation(Activation::Relu).input_shape([8, 8, 1]));
    m.add(Conv2DTranspose::new(8, 3).strides(2).padding(Padding::Same).activation(Activation::Relu));
    m.add(Conv2D::new(4, 3).strides(2).activation(Activation::Relu)); // 8x8 -> 3x3
    m.add(Conv2DTranspose::new(1, 3).strides(2).output_padding(1).activation(Activation::Sigmoid)); // 3x3 -> 8x8
    m.compile(Adam::new(0.01), Loss::MeanSquaredError, NO_METRICS).unwrap();
    let h = m.fit(&x, &x, Fit::new().epochs(15).batch_size(8).verbose(0)).unwrap();
    let loss = h.get("loss").unwrap();
    assert!(loss[loss.len() - 1] < 0.8 * loss[0], "reconstruction loss {loss:?}"); // noise images: from 0.087 (their variance) to 0.061
    let path = dir.join("ae.keel");
    m.save(&path).unwrap();
    let loaded = load_model(&path).unwrap();
    assert_eq!(loaded.config(), m.config());
    assert!(loaded.config().to_string().contains("\"output_padding\":[1,1]"), "{}", loaded.config());
    assert_eq!(weight_bits(loaded.network()), weight_bits(m.network()));
    assert_eq!(bits(&loaded.predict(&x, 8).unwrap()), bits(&m.predict(&x, 8).unwrap()));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The shape layers (ZeroPadding1D/2D, Cropping1D/2D, UpSampling1D/2D, RepeatVector,
/// Permute): a convolutional autoencoder and a sequence model fit (the autoencoder's loss
/// falls), save, and load back with the same config and bit-identical predictions; Keras's
/// other config forms load, unsupported ones are errors.
#[test]
fn shape_layers_train_and_round_trip() {
    use keel_nn::{
        Cropping1D, Cropping2D, Interpolation, Permute, RepeatVector, UpSampling1D, UpSampling2D, ZeroPadding1D,
        ZeroPadding2D,
    };
    let dir = test_dir("shape_layers");
    let (img, _) = images(2, 16);
    let mut ae = Sequential::with_seed(4);
    ae.add(Conv2D::new(4, 3).padding(Padding::Same).activation(Activation::Relu).input_shape([8, 8, 1]));
    ae.add(MaxPooling2D::new(2));
    ae.add(UpSampling2D::new((2, 2)).interpolation(Interpolation::Bilinear));
    ae.add(ZeroPadding2D::new(((1, 2), (0, 1))));
    ae.add(Cropping2D::new(((2, 1), (1, 0))));
    ae.add(MaxPooling2D::new(2));
    ae.add(UpSampling2D::new(2));
    ae.add(Conv2D::new(1, 3).padding(Padding::Same).activation(Activation::Sigmoid));
    ae.compile(Adam::new(0.01), Loss::MeanSquaredError, NO_METRICS).unwrap();
    let h = ae.fit(&img, &img, Fit::new().epochs(4).batch_size(4).verbose(0)).unwrap();
    let losses = h.get("loss").unwrap();
    assert!(losses.last() < losses.first(), "autoencoder loss did not fall: {losses:?}");

    let seq = Tensor::rand_normal(3, 0.0, 1.0, (8, 6, 2), DType::F32, &Device::Cpu).unwrap();
    let mut s = Sequential::with_seed(5);
    s.add(ZeroPadding1D::new((1, 2)).input_shape([6, 2]));
    s.add(Conv1D::new(3, 3));
    s.add(Cropping1D::new(1));
    s.add(UpSampling1D::new(3));
    s.add(Permute::new([2, 1]));
    s.add(Flatten::new());
    s.add(Dense::new(4));
    s.add(RepeatVector::new(3));
    s.add(Flatten::new().with_name("flat_again"));
    s.add(Dense::new(2));
    s.compile(SGD::new(0.05), Loss::MeanSquaredError, NO_METRICS).unwrap();
    let target = Tensor::ones((8, 2), DType::F32, &Device::Cpu).unwrap();
    s.fit(&seq, &target, Fit::new().epochs(1).batch_size(4).verbose(0)).unwrap();

    for (i, (model, input)) in [(&ae, &img), (&s, &seq)].into_iter().enumerate() {
        let path = dir.join(format!("shape{i}.keel"));
        model.save(&path).unwrap();
        let loaded = load_model(&path).unwrap();
        assert_eq!(loaded.config(), model.config());
        assert_eq!(weight_bits(loaded.network()), weight_bits(model.network()));
        assert_eq!(bits(&loaded.predict(input, 4).unwrap()), bits(&model.predict(input, 4).unwrap()));
    }
    // Keras's configs: the int and symmetric forms, explicit channels_last
    let load = |class: &str, cfg: serde_json::Value| keel_train::layer_from_config(class, &cfg);
    let zp = load("ZeroPadding2D", serde_json::json!({"name": "z", "padding": [1, 2], "data_format": "channels_last"}));
    assert_eq!(zp.unwrap().config(), serde_json::json!({"name": "z", "padding": [[1, 1], [2, 2]]}));
    let cr = load("Cropping1D", serde_json::json!({"name": "c", "cropping": 2})).unwrap();
    assert_eq!(cr.config()["cropping"], serde_json::json!([2, 2]));
    let up = load("UpSampling2D", serde_json::json!({"name": "u", "size": [2, 3]})).unwrap();
    assert_eq!(up.config()["interpolation"], "nearest");
    // what keel cannot do is refused, not silently changed
    let msg = |r: Result<Box<dyn keel_nn::Layer>, Error>| r.err().map(|e| e.to_string()).unwrap_or_default();
    let e = msg(load("UpSampling2D", serde_json::json!({"size": [2, 2], "interpolation": "bicubic"})));
    assert!(e.contains("bicubic") && e.contains("bilinear"), "{e}");
    let e = msg(load("Cropping2D", serde_json::json!({"cropping": [[1, 1], [1, 1]], "data_format": "channels_first"})));
    assert!(e.contains("channels_first"), "{e}");
    let e = msg(load("ZeroPadding2D", serde_json::json!({"padding": [1, 2, 3]})));
    assert!(e.contains("padding"), "{e}");
    let mut bad = load("Permute", serde_json::json!({"dims": [0, 1]})).unwrap();
    assert!(bad.build(&[2, 3], &mut keel_tensor::rng::Rng::new(0)).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The 3-D layers (Conv3D, MaxPooling3D, AveragePooling3D, GlobalAveragePooling3D,
/// GlobalMaxPooling3D, UpSampling3D, ZeroPadding3D, Cropping3D): a volume classifier fits
/// (its loss falls), saves, and loads back with the same config and bit-identical
/// predictions; every Keras config of the nn fixtures (Keras 3's get_config) loads with
/// its values.
#[test]
fn three_d_layers_train_and_round_trip() {
    use keel_nn::{
        AveragePooling3D, Conv3D, Cropping3D, GlobalAveragePooling3D, GlobalMaxPooling3D, MaxPooling3D, UpSampling3D,
        ZeroPadding3D,
    };
    let dir = test_dir("three_d");
    // label: whether the front half of the volume is brighter than the back half
    let n = 24;
    let x = Tensor::rand_uniform(5, 0.0, 1.0, (n, 4, 6, 6, 1), DType::F32, &Device::Cpu).unwrap();
    let front = x.narrow(1, 0, 2).unwrap().mean(&[1, 2, 3, 4], false).unwrap();
    let back = x.narrow(1, 2, 2).unwrap().mean(&[1, 2, 3, 4], false).unwrap();
    let y = front.gt(&back).unwrap().to_dtype(DType::I64).unwrap();
    let build = |global_max: bool| {
        let mut m = Sequential::with_seed(9);
        m.add(ZeroPadding3D::new(((1, 0), (1, 1), (0, 1))).input_shape([4, 6, 6, 1]));
        m.add(Conv3D::new(4, (2, 3, 3)).padding(Padding::Same).activation(Activation::Relu));
        m.add(MaxPooling3D::new((1, 2, 2)));
        m.add(Cropping3D::new(((1, 0), (0, 0), (0, 1))));
        m.add(UpSampling3D::new((1, 2, 2)));
        m.add(Conv3D::new(4, 3).strides((1, 2, 2)).dilation_rate(1).activation(Activation::Tanh));
        m.add(AveragePooling3D::new((2, 1, 1)).padding(Padding::Same));
        if global_max {
            m.add(GlobalMaxPooling3D::new());
        } else {
            m.add(GlobalAveragePooling3D::new());
        }
        m.add(Dense::new(2).activation(Activation::Softmax));
        m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    for global_max in [false, true] {
        let mut m = build(global_max);
        let h = m.fit(&x, &y, Fit::new().epochs(8).batch_size(8).verbose(0)).unwrap();
        let losses = h.get("loss").unwrap();
        assert!(losses.last() < losses.first(), "3-D classifier loss did not fall: {losses:?}");
        let path = dir.join(format!("three_d_{global_max}.keel"));
        m.save(&path).unwrap();
        let loaded = load_model(&path).unwrap();
        assert_eq!(loaded.config(), m.config());
        assert_eq!(weight_bits(loaded.network()), weight_bits(m.network()));
        assert_eq!(bits(&loaded.predict(&x, 8).unwrap()), bits(&m.predict(&x, 8).unwrap()));
    }
    // Keras 3's own configs (nn/tests/fixtures/make_conv3d_fixtures.py)
    let fx: serde_json::Value =
        serde_json::from_str(include_str!("../../nn/tests/fixtures/conv3d_fixtures.json")).unwrap();
    for c in fx["cases"].as_array().unwrap() {
        let (class, cfg) = (c["class"].as_str().unwrap(), &c["config"]);
        let layer = keel_train::layer_from_config(class, cfg).unwrap_or_else(|e| panic!("{class}: {e}"));
        for (key, v) in layer.config().as_object().unwrap() {
            if !key.ends_with("_initializer") {
                assert_eq!(&cfg[key], v, "{class} {key}");
            }
        }
    }
    let e = keel_train::layer_from_config(
        "MaxPooling3D",
        &serde_json::json!({"pool_size": [2, 2, 2], "strides": [2, 2, 2], "padding": "valid", "data_format": "channels_first"}),
    );
    assert!(e.err().map(|e| e.to_string()).unwrap_or_default().contains("channels_first"));
    let mut grouped = fx["cases"][0]["config"].clone();
    grouped["groups"] = serde_json::json!(2);
    let e = keel_train::layer_from_config("Conv3D", &grouped);
    assert!(e.err().map(|e| e.to_string()).unwrap_or_default().contains("groups 2"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The noise and augmentation layers (seeded, active only in training) train, save and load
/// with their configs; a Keras config with a `seed` and a `data_format` loads too.
#[test]
fn noise_and_augmentation_layers_round_trip() {
    use keel_nn::{
        GaussianDropout, GaussianNoise, RandomBrightness, RandomContrast, RandomFlip, SpatialDropout1D,
        SpatialDropout2D,
    };
    let dir = test_dir("noise");
    let (x, y) = images(6, 24);
    let mut m = Sequential::with_seed(8);
    m.add(RandomFlip::new("horizontal").input_shape([8, 8, 1]));
    m.add(RandomContrast::new((0.1, 0.3)).value_range(0.0, 1.0));
    m.add(RandomBrightness::new(0.1).value_range(0.0, 1.0));
    m.add(GaussianNoise::new(0.05));
    m.add(Conv2D::new(4, (3, 3)).activation(Activation::Relu));
    m.add(SpatialDropout2D::new(0.25));
    m.add(Reshape::new([36, 4]));
    m.add(SpatialDropout1D::new(0.2));
    m.add(Dropout::new(0.2).noise_shape([None, Some(1), None]));
    m.add(Flatten::new());
    m.add(GaussianDropout::new(0.3));
    m.add(keel_nn::AlphaDropout::new(0.1).noise_shape([Some(1), None]));
    m.add(keel_nn::Identity::new());
    m.add(Dense::new(3).activation(Activation::Softmax));
    compile_cnn(&mut m);
    m.fit(&x, &y, Fit::new().epochs(2).batch_size(8).verbose(0)).unwrap();
    let path = dir.join("noise.keel");
    m.save(&path).unwrap();
    let loaded = load_model(&path).unwrap();
    assert_eq!(loaded.config(), m.config());
    assert_eq!(weight_bits(loaded.network()), weight_bits(m.network()));
    assert_eq!(bits(&loaded.predict(&x, 5).unwrap()), bits(&m.predict(&x, 5).unwrap()));
    let layers = &m.config()["config"]["layers"];
    assert_eq!(layers[0]["class_name"], "RandomFlip");
    assert_eq!(layers[0]["config"]["mode"], "horizontal");
    assert_eq!(layers[1]["config"]["factor"], serde_json::json!([0.1, 0.3]));
    assert_eq!(layers[3]["config"]["stddev"], 0.05);
    assert_eq!(layers[8]["config"]["noise_shape"], serde_json::json!([null, 1, null]));

    // Keras-written configs: extra keys (seed, data_format) are ignored, defaults filled in;
    // the dropouts' noise shapes load (fixture: nn/tests/fixtures/make_noise_shape_fixtures.py)
    let fx: serde_json::Value =
        serde_json::from_str(include_str!("../../nn/tests/fixtures/noise_shape_fixtures.json")).unwrap();
    for c in fx["cases"].as_array().unwrap() {
        let (class, cfg) = (c["class_name"].as_str().unwrap(), &c["config"]);
        assert!(keel_train::unapplied_settings(class, cfg).is_empty(), "{class}: {cfg}");
        let l = keel_train::layer_from_config(class, cfg).unwrap();
        assert_eq!((l.class_name(), &l.config()["noise_shape"]), (class, &cfg["noise_shape"]));
    }
    let flip = serde_json::json!({"name": "flip", "mode": "vertical", "seed": null, "data_format": "channels_last"});
    let l = keel_train::layer_from_config("RandomFlip", &flip).unwrap();
    assert_eq!((l.name(), l.config()["mode"].as_str()), ("flip", Some("vertical")));
    let l = keel_train::layer_from_config("RandomFlip", &serde_json::json!({"name": "f"})).unwrap();
    assert_eq!(l.config()["mode"], "horizontal_and_vertical");
    let c =
        keel_train::layer_from_config("RandomContrast", &serde_json::json!({"factor": [0, 0.2], "seed": 3})).unwrap();
    assert_eq!(c.config()["value_range"], serde_json::json!([0.0, 255.0]));
    let d = keel_train::layer_from_config("SpatialDropout3D", &serde_json::json!({"rate": 0.5})).unwrap();
    assert_eq!(d.class_name(), "SpatialDropout3D");
    assert!(keel_train::layer_from_config("GaussianNoise", &serde_json::json!({"rate": 0.5})).is_err());
    // an unknown mode loads but does not build: the error names the layer
    let mut bad =
        keel_train::layer_from_config("RandomFlip", &serde_json::json!({"name": "odd", "mode": "up"})).unwrap();
    let e = bad.build(&[8, 8, 1], &mut keel_tensor::rng::Rng::new(0)).unwrap_err().to_string();
    assert!(e.contains("\"odd\"") && e.contains("\"up\""), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Configs keel would run differently from Keras are refused on load (found by review):
/// `channels_first` on any built-in layer, MultiHeadAttention's `sliding_window` and
/// `use_gate`; and a frozen layer without a name in its config loads frozen.
#[test]
fn configs_keel_cannot_honour_are_refused_and_unnamed_frozen_layers_load() {
    use keel_train::{layer_from_config, FromConfig};
    use serde_json::json;
    for (class, cfg) in [
        ("Conv2D", json!({"filters": 2, "kernel_size": [3, 3], "data_format": "channels_first"})),
        ("SpatialDropout2D", json!({"rate": 0.2, "data_format": "channels_first"})),
        ("RandomFlip", json!({"mode": "horizontal", "data_format": "channels_first"})),
        ("RandomContrast", json!({"factor": [0.0, 0.2], "data_format": "channels_first"})),
        ("MaxPooling2D", json!({"pool_size": [2, 2], "data_format": "channels_first"})),
    ] {
        let e = layer_from_config(class, &cfg).err().unwrap_or_else(|| panic!("{class} loaded as channels_last"));
        assert!(e.to_string().contains("channels_first"), "{class}: {e}");
    }
    // channel groups: Conv3D has none, and loading them as one group would build another model
    let cfg = json!({"filters": 4, "kernel_size": 3, "groups": 2});
    let e = layer_from_config("Conv3D", &cfg).err().unwrap_or_else(|| panic!("Conv3D loaded with groups 2"));
    assert!(e.to_string().contains("groups 2"), "{e}");
    // Conv1D/Conv2D take them (Keras 3.15's configs)
    let c2 = json!({"name": "gc", "filters": 4, "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid",
        "dilation_rate": [1, 1], "groups": 2, "activation": "linear", "use_bias": true,
        "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": null},
        "registered_name": null}, "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros",
        "config": {}, "registered_name": null}, "kernel_regularizer": null, "bias_regularizer": null});
    let mut gc = layer_from_config("Conv2D", &c2).unwrap();
    gc.build(&[6, 6, 4], &mut keel_tensor::rng::Rng::new(0)).unwrap();
    assert_eq!(gc.weights()[0].param.value().dims(), [3, 3, 2, 4]);
    assert_eq!(gc.config()["groups"], 2);
    // keepdims of the global poolings (Keras 3's config) is honoured
    let mut gap = layer_from_config(
        "GlobalAveragePooling2D",
        &json!({"name": "gap", "data_format": "channels_last", "keepdims": true}),
    )
    .unwrap();
    gap.build(&[3, 4, 5], &mut keel_tensor::rng::Rng::new(0)).unwrap();
    assert_eq!(gap.output_shape(&[3, 4, 5]).unwrap(), [1, 1, 5]);
    assert_eq!(gap.config()["keepdims"], true);
    let x = Tensor::rand_uniform(1, -1.0, 1.0, (2, 3, 4, 5), DType::F32, &Device::Cpu).unwrap();
    let y = gap.forward(&keel_autograd::Var::constant(x.clone()), &mut keel_nn::Ctx::inference()).unwrap();
    assert_eq!(y.dims(), [2, 1, 1, 5]);
    assert_eq!(y.value().to_vec::<f32>().unwrap(), x.mean(&[1, 2], false).unwrap().to_vec::<f32>().unwrap());
    let gmp = layer_from_config("GlobalMaxPooling1D", &json!({"keepdims": false})).unwrap();
    assert_eq!(gmp.output_shape(&[7, 3]).unwrap(), [3]);
    let mha = json!({"name": "mha", "num_heads": 2, "key_dim": 3, "sliding_window": 2});
    assert!(layer_from_config("MultiHeadAttention", &mha)
        .err()
        .is_some_and(|e| e.to_string().contains("sliding_window")));
    let mha = json!({"name": "mha", "num_heads": 2, "key_dim": 3, "sliding_window": null, "use_gate": true});
    assert!(layer_from_config("MultiHeadAttention", &mha).err().is_some_and(|e| e.to_string().contains("use_gate")));
    let cfg = json!({"class_name": "Sequential", "config": {"name": "s", "input_shape": [4], "layers": [
        {"class_name": "Dropout", "config": {"rate": 0.5, "trainable": false}}, {"class_name": "Flatten", "config": {}}]}});
    let net = keel_nn::Sequential::from_config(&cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(keel_nn::Network::is_trainable(&net, "dropout"), Some(false));
    assert_eq!(keel_nn::Network::is_trainable(&net, "flatten"), Some(true));
}

/// The activation layers (ReLU, LeakyReLU, PReLU, ELU, Softmax) and TimeDistributed(Dense)
/// over a sequence: a model fits one epoch, saves, and loads back with the same config, weights
/// and prediction bits; Keras-written configs (Keras 2's `alpha` for LeakyReLU, no `alpha` for
/// ELU, a list axis for Softmax, a wrapped layer with Keras 3's module keys) load too.
#[test]
fn activation_layers_and_time_distributed_round_trip() {
    use keel_nn::{Initializer, LeakyReLU, PReLU, ReLU, Regularizer, Softmax, TimeDistributed, ELU};
    let dir = test_dir("activation_layers");
    let x = Tensor::rand_normal(7, 0.0, 1.0, (12, 4, 3), DType::F32, &Device::Cpu).unwrap();
    let labels: Vec<i64> = (0..12).map(|i| i % 3).collect();
    let y = Tensor::from_vec(labels, 12).unwrap();
    let mut m = Sequential::with_seed(9);
    m.add(TimeDistributed::new(Dense::new(6)).input_shape([4, 3]));
    m.add(ReLU::new().max_value(2.0).negative_slope(0.1).threshold(0.05));
    m.add(PReLU::new().shared_axes([1]).alpha_initializer(Initializer::Constant { value: 0.1 }));
    m.add(LeakyReLU::default());
    m.add(ELU::new(0.8));
    m.add(TimeDistributed::new(Dense::new(5).activation(Activation::Tanh).kernel_regularizer(Regularizer::l2(0.01))));
    m.add(Softmax::new(1));
    m.add(PReLU::new().alpha_regularizer(Regularizer::l1(0.01)).with_name("prelu_all"));
    m.add(Flatten::new());
    m.add(Dense::new(3));
    m.add(Softmax::default());
    compile_cnn(&mut m);
    let before = bits(&m.state_dict()["p_re_lu/alpha"]);
    m.fit(&x, &y, Fit::new().epochs(1).batch_size(4).verbose(0)).unwrap();
    assert_ne!(bits(&m.state_dict()["p_re_lu/alpha"]), before, "alpha is trained");
    let keys: Vec<String> = m.state_dict().into_keys().collect();
    for k in ["time_distributed/kernel", "time_distributed_1/bias", "p_re_lu/alpha", "prelu_all/alpha"] {
        assert!(keys.iter().any(|n| n == k), "{k} in {keys:?}");
    }
    let path = dir.join("act.keel");
    m.save(&path).unwrap();
    let loaded = load_model(&path).unwrap();
    assert_eq!(loaded.config(), m.config());
    assert_eq!(weight_bits(loaded.network()), weight_bits(m.network()));
    assert_eq!(bits(&loaded.predict(&x, 5).unwrap()), bits(&m.predict(&x, 5).unwrap()));
    let layers = &m.config()["config"]["layers"];
    assert_eq!(layers[0]["class_name"], "TimeDistributed");
    assert_eq!(layers[0]["config"]["layer"]["class_name"], "Dense");
    assert_eq!(
        layers[1]["config"],
        serde_json::json!({
            "name": "re_lu", "max_value": 2.0, "negative_slope": 0.1, "threshold": 0.05, "trainable": true
        })
    );
    assert_eq!(layers[2]["config"]["shared_axes"], serde_json::json!([1]));
    assert_eq!(layers[3]["config"]["negative_slope"], 0.3);
    assert_eq!(layers[6]["config"]["axis"], 1);

    // Keras-written configs
    let load = |class: &str, cfg: serde_json::Value| keel_train::layer_from_config(class, &cfg).unwrap();
    let l = load("LeakyReLU", serde_json::json!({"name": "lr", "alpha": 0.2, "trainable": true}));
    assert_eq!(l.config(), serde_json::json!({"name": "lr", "negative_slope": 0.2}));
    assert_eq!(load("LeakyReLU", serde_json::json!({})).config()["negative_slope"], 0.3);
    assert_eq!(load("ELU", serde_json::json!({"name": "e"})).config()["alpha"], 1.0);
    let r = load("ReLU", serde_json::json!({"max_value": null, "negative_slope": 0.0, "threshold": 0.0}));
    assert!(r.config()["max_value"].is_null());
    assert_eq!(load("Softmax", serde_json::json!({"axis": [1, 2]})).config()["axis"], serde_json::json!([1, 2]));
    assert_eq!(load("Softmax", serde_json::json!({})).config()["axis"], -1);
    let td = serde_json::json!({"name": "td", "layer": {"module": "keras.layers", "class_name": "Dense",
        "config": {"name": "d", "units": 2, "activation": "relu", "use_bias": true,
            "kernel_initializer": {"class_name": "GlorotUniform", "config": null},
            "bias_initializer": {"class_name": "Zeros", "config": null},
            "kernel_regularizer": null, "bias_regularizer": null}, "registered_name": null}});
    let mut l = load("TimeDistributed", td);
    assert_eq!((l.name(), l.config()["layer"]["config"]["name"].as_str()), ("td", Some("d")));
    l.build(&[3, 4], &mut keel_tensor::rng::Rng::new(0)).unwrap();
    assert_eq!(l.output_shape(&[3, 4]).unwrap(), [3, 2]);
    // what is wrong is an error: no wrapped layer, an unknown one, a bad value (at build)
    assert!(keel_train::layer_from_config("TimeDistributed", &serde_json::json!({"name": "t"})).is_err());
    let odd = serde_json::json!({"layer": {"class_name": "Nope", "config": {}}});
    let e = keel_train::layer_from_config("TimeDistributed", &odd).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("Nope"), "{e}");
    let mut bad = load("ReLU", serde_json::json!({"name": "neg", "max_value": -1.0}));
    let e = bad.build(&[3], &mut keel_tensor::rng::Rng::new(0)).unwrap_err().to_string();
    assert!(e.contains("\"neg\"") && e.contains("max_value"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Conv3DTranspose: a model saves and loads back with the same config (Keras's keys,
/// `output_padding` included), weights (Keras's `[kd, kh, kw, filters, in]` kernel) and
/// prediction bits; a Keras config loads through the registry.
#[test]
fn conv3d_transpose_round_trips() {
    use keel_nn::{Conv3D, Conv3DTranspose};
    let mut m = Sequential::with_seed(3);
    m.add(Conv3D::new(3, 3).strides(2).padding(Padding::Same).input_shape([4, 6, 6, 2]));
    m.add(
        Conv3DTranspose::new(2, (3, 2, 3))
            .strides((2, 2, 3))
            .padding(Padding::Same)
            .output_padding(1)
            .activation(Activation::Tanh),
    );
    m.compile(Adam::new(0.01), Loss::MeanSquaredError, NO_METRICS).unwrap();
    let dir = test_dir("conv3d_transpose");
    let path = dir.join("m.keel");
    m.save(&path).unwrap();
    let back = load_model(&path).unwrap();
    assert_eq!(back.config(), m.config());
    let cfg = m.config().to_string();
    assert!(cfg.contains("\"Conv3DTranspose\"") && cfg.contains("\"output_padding\":[1,1,1]"), "{cfg}");
    assert_eq!(weight_bits(back.network()), weight_bits(m.network()));
    let x = Tensor::rand_uniform(1, -1.0, 1.0, [3, 4, 6, 6, 2], DType::F32, &Device::Cpu).unwrap();
    let (a, b) = (m.predict(&x, 8).unwrap(), back.predict(&x, 8).unwrap());
    assert_eq!(a.dims(), &[3, 4, 5, 8, 2]);
    assert_eq!(bits(&a), bits(&b));
    std::fs::remove_dir_all(&dir).unwrap();
    // Keras 3.15's config of Conv3DTranspose(4, 3, strides=2, padding="same")
    let keras = serde_json::json!({"name": "ct", "trainable": true, "filters": 4, "kernel_size": [3, 3, 3],
        "strides": [2, 2, 2], "padding": "same", "output_padding": null, "data_format": "channels_last",
        "dilation_rate": [1, 1, 1], "activation": "linear", "use_bias": true,
        "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": null}},
        "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}},
        "kernel_regularizer": null, "bias_regularizer": null, "activity_regularizer": null,
        "kernel_constraint": null, "bias_constraint": null});
    let mut l = keel_train::layer_from_config("Conv3DTranspose", &keras).unwrap();
    l.build(&[2, 3, 4, 5], &mut keel_tensor::rng::Rng::new(0)).unwrap();
    assert_eq!((l.name(), l.output_shape(&[2, 3, 4, 5]).unwrap()), ("ct", vec![4, 6, 8, 4]));
    assert_eq!(l.weights()[0].param.value().dims(), [3, 3, 3, 4, 5]);
    let mut cf = keras.clone();
    cf["data_format"] = "channels_first".into();
    let e = keel_train::layer_from_config("Conv3DTranspose", &cf).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("channels_first"), "{e}");
}

#[test]
fn conv1d_transpose_round_trips() {
    use keel_nn::Conv1DTranspose;
    let mut m = Sequential::with_seed(3);
    m.add(Conv1D::new(4, 3).strides(2).padding(Conv1DPadding::Same).input_shape([10, 2]));
    m.add(Conv1DTranspose::new(2, 3).strides(2).padding(Padding::Same).output_padding(1).activation(Activation::Tanh));
    m.compile(Adam::new(0.01), Loss::MeanSquaredError, NO_METRICS).unwrap();
    let dir = test_dir("conv1d_transpose");
    let path = dir.join("m.keel");
    m.save(&path).unwrap();
    let back = Sequential::load(&path).unwrap();
    let x = Tensor::rand_uniform(1, -1.0, 1.0, [3, 10, 2], DType::F32, &Device::Cpu).unwrap();
    let (a, b) = (m.predict(&x, 8).unwrap(), back.predict(&x, 8).unwrap());
    assert_eq!(a.dims(), &[3, 10, 2]);
    assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
}

/// DepthwiseConv2D and SeparableConv2D: a small classifier fits (the loss falls), saves, and
/// loads back with the same config (Keras's keys), weights (Keras's names) and prediction
/// bits; `channels_first` configs are refused.
#[test]
fn depthwise_and_separable_conv2d_train_and_round_trip() {
    use keel_nn::{DepthwiseConv2D, Regularizer, SeparableConv2D};
    use serde_json::json;
    let dir = test_dir("depthwise_separable");
    let (x, _) = images(11, 48);
    // labels from the image: is its top half brighter than its bottom half
    let xv = x.to_vec::<f32>().unwrap();
    let labels: Vec<i64> = xv
        .chunks(64)
        .map(|img| {
            let (top, bottom) = (img[..32].iter().sum::<f32>(), img[32..].iter().sum::<f32>());
            i64::from(top > bottom)
        })
        .collect();
    let y = Tensor::from_vec(labels, 48).unwrap();
    let mut m = Sequential::with_seed(3);
    m.add(
        SeparableConv2D::new(6, 3)
            .depth_multiplier(2)
            .padding(Padding::Same)
            .activation(Activation::Relu)
            .pointwise_regularizer(Regularizer::L2 { l2: 1e-4 })
            .input_shape([8, 8, 1]),
    );
    m.add(DepthwiseConv2D::new(3).depth_multiplier(2).strides(2).activation(Activation::Tanh));
    m.add(Flatten::new());
    m.add(Dense::new(2).activation(Activation::Softmax));
    m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &["accuracy"]).unwrap();
    let h = m.fit(&x, &y, Fit::new().epochs(12).batch_size(8).verbose(0)).unwrap();
    let loss = h.get("loss").unwrap();
    assert!(loss[loss.len() - 1] < 0.7 * loss[0], "loss {loss:?}");
    let names: Vec<String> = weight_bits(m.network()).into_iter().map(|(n, _)| n).collect();
    for want in [
        "separable_conv2d/depthwise_kernel",
        "separable_conv2d/pointwise_kernel",
        "separable_conv2d/bias",
        "depthwise_conv2d/kernel",
        "depthwise_conv2d/bias",
    ] {
        assert!(names.iter().any(|n| n.contains(want)), "{want} not in {names:?}");
    }
    let path = dir.join("dw.keel");
    m.save(&path).unwrap();
    let loaded = load_model(&path).unwrap();
    assert_eq!(loaded.config(), m.config());
    let cfg = loaded.config().to_string();
    assert!(cfg.contains("\"depth_multiplier\":2") && cfg.contains("\"pointwise_initializer\""), "{cfg}");
    assert_eq!(weight_bits(loaded.network()), weight_bits(m.network()));
    assert_eq!(bits(&loaded.predict(&x, 8).unwrap()), bits(&m.predict(&x, 8).unwrap()));
    std::fs::remove_dir_all(&dir).unwrap();
    for class in ["DepthwiseConv2D", "SeparableConv2D"] {
        let e = keel_train::layer_from_config(
            class,
            &json!({"filters": 2, "kernel_size": [3, 3], "data_format": "channels_first"}),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("channels_first"), "{class}: {e}");
    }
}

/// DepthwiseConv1D and SeparableConv1D: a small sequence model fits, saves, and loads back
/// with the same config (Keras's class names and keys), weights (Keras's names and shapes)
/// and prediction bits; a Keras config loads through the registry; `channels_first` and
/// `causal` padding are refused.
#[test]
fn depthwise_and_separable_conv1d_train_and_round_trip() {
    use keel_nn::{DepthwiseConv1D, Regularizer, SeparableConv1D};
    use serde_json::json;
    let dir = test_dir("depthwise_separable_1d");
    let x = Tensor::rand_uniform(5, -1.0, 1.0, (40, 10, 3), DType::F32, &Device::Cpu).unwrap();
    // the label: is the first half of the sequence larger than the second
    let xv = x.to_vec::<f32>().unwrap();
    let labels: Vec<i64> =
        xv.chunks(30).map(|s| i64::from(s[..15].iter().sum::<f32>() > s[15..].iter().sum::<f32>())).collect();
    let y = Tensor::from_vec(labels, 40).unwrap();
    let mut m = Sequential::with_seed(4);
    m.add(
        SeparableConv1D::new(6, 3)
            .depth_multiplier(2)
            .padding(Padding::Same)
            .activation(Activation::Relu)
            .pointwise_regularizer(Regularizer::L2 { l2: 1e-4 })
            .input_shape([10, 3]),
    );
    m.add(DepthwiseConv1D::new(3).depth_multiplier(2).strides(2).dilation_rate(1).activation(Activation::Tanh));
    m.add(Flatten::new());
    m.add(Dense::new(2).activation(Activation::Softmax));
    m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &["accuracy"]).unwrap();
    let h = m.fit(&x, &y, Fit::new().epochs(12).batch_size(8).verbose(0)).unwrap();
    let loss = h.get("loss").unwrap();
    assert!(loss[loss.len() - 1] < 0.7 * loss[0], "loss {loss:?}");
    let names: Vec<String> = weight_bits(m.network()).into_iter().map(|(n, _)| n).collect();
    for want in [
        "separable_conv1d/depthwise_kernel",
        "separable_conv1d/pointwise_kernel",
        "separable_conv1d/bias",
        "depthwise_conv1d/kernel",
        "depthwise_conv1d/bias",
    ] {
        assert!(names.iter().any(|n| n.contains(want)), "{want} not in {names:?}");
    }
    let path = dir.join("dw1d.keel");
    m.save(&path).unwrap();
    let loaded = load_model(&path).unwrap();
    assert_eq!(loaded.config(), m.config());
    let cfg = loaded.config().to_string();
    assert!(cfg.contains("\"SeparableConv1D\"") && cfg.contains("\"DepthwiseConv1D\""), "{cfg}");
    assert!(cfg.contains("\"kernel_size\":[3]") && cfg.contains("\"pointwise_initializer\""), "{cfg}");
    assert_eq!(weight_bits(loaded.network()), weight_bits(m.network()));
    assert_eq!(bits(&loaded.predict(&x, 8).unwrap()), bits(&m.predict(&x, 8).unwrap()));
    std::fs::remove_dir_all(&dir).unwrap();
    // a config as Keras 3.15 writes it (integers for the sizes are read too)
    let keras = json!({"name": "sc", "trainable": true, "depth_multiplier": 2, "filters": 4, "kernel_size": [3],
        "strides": [1], "padding": "same", "data_format": "channels_last", "dilation_rate": [1],
        "activation": "relu", "use_bias": true,
        "depthwise_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": null}},
        "pointwise_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": null}},
        "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}},
        "depthwise_regularizer": null, "pointwise_regularizer": null, "bias_regularizer": null,
        "activity_regularizer": null, "depthwise_constraint": null, "pointwise_constraint": null, "bias_constraint": null});
    let mut l = keel_train::layer_from_config("SeparableConv1D", &keras).unwrap();
    l.build(&[7, 3], &mut keel_tensor::rng::Rng::new(0)).unwrap();
    assert_eq!((l.name(), l.output_shape(&[7, 3]).unwrap()), ("sc", vec![7, 4]));
    let dw = json!({"name": "d", "kernel_size": 2, "strides": 2, "padding": "valid", "depth_multiplier": 3,
        "dilation_rate": 1, "activation": "linear", "use_bias": false,
        "depthwise_initializer": {"class_name": "Ones", "config": {}},
        "bias_initializer": {"class_name": "Zeros", "config": {}},
        "depthwise_regularizer": null, "bias_regularizer": null});
    let mut l = keel_train::layer_from_config("DepthwiseConv1D", &dw).unwrap();
    l.build(&[7, 2], &mut keel_tensor::rng::Rng::new(0)).unwrap();
    assert_eq!(l.output_shape(&[7, 2]).unwrap(), [3, 6]);
    for class in ["DepthwiseConv1D", "SeparableConv1D"] {
        let bad = |cfg: serde_json::Value| {
            keel_train::layer_from_config(class, &cfg).err().map(|e| e.to_string()).unwrap_or_default()
        };
        let e = bad(json!({"filters": 2, "kernel_size": [3], "data_format": "channels_first"}));
        assert!(e.contains("channels_first"), "{class}: {e}");
        let mut causal = dw.clone();
        causal["filters"] = json!(2);
        causal["pointwise_initializer"] = json!({"class_name": "Ones", "config": {}});
        causal["pointwise_regularizer"] = json!(null);
        causal["padding"] = json!("causal");
        let e = bad(causal);
        assert!(e.contains(class) && e.contains("causal"), "{class}: {e}");
    }
}

#[test]
fn keras_constraints_load_and_only_unapplied_settings_are_named() {
    // Keras 3.15.1's keras.layers.serialize(Dense(3, kernel_constraint=MaxNorm(2.0),
    // activity_regularizer=L2(0.01), name="d"))["config"]
    let cfg: serde_json::Value = serde_json::from_str(
        r#"{"name": "d", "trainable": true, "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null}, "activity_regularizer": {"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.01}, "registered_name": null}, "units": 3, "activation": "linear", "use_bias": true, "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": null, "input_axes": null, "output_axes": null}, "registered_name": null}, "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": null}, "kernel_regularizer": null, "bias_regularizer": null, "kernel_constraint": {"module": "keras.constraints", "class_name": "MaxNorm", "config": {"max_value": 2.0, "axis": 0}, "registered_name": null}, "bias_constraint": null, "quantization_config": null}"#,
    )
    .unwrap();
    let mut unapplied = keel_train::unapplied_settings("Dense", &cfg);
    unapplied.sort();
    // MaxNorm on a Dense kernel and an L2 activity regularizer are applied: nothing is named
    assert!(unapplied.is_empty(), "{unapplied:?}");
    // the layer loads with the constraint, which it applies to its built kernel
    let mut layer = keel_train::layer_from_config("Dense", &cfg).unwrap();
    assert_eq!(layer.name(), "d");
    assert_eq!(
        layer.config()["kernel_constraint"],
        serde_json::json!({"class_name": "MaxNorm", "config": {"max_value": 2.0, "axis": 0}})
    );
    layer.build(&[4], &mut keel_tensor::rng::Rng::new(0)).unwrap();
    let pairs = layer.constraints();
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].1, keel_nn::Constraint::max_norm(2.0, 0));
    // a class keel lacks is named and dropped (the layer still loads); so is a constraint
    // on a layer that does not apply constraints
    let mut custom = cfg.clone();
    custom["bias_constraint"] =
        serde_json::json!({"module": null, "class_name": "Radial", "config": {}, "registered_name": "Radial"});
    let mut unapplied = keel_train::unapplied_settings("Dense", &custom);
    unapplied.sort();
    assert_eq!(unapplied, vec!["bias_constraint (Radial)"]);
    let mut layer = keel_train::layer_from_config("Dense", &custom).unwrap();
    assert_eq!(layer.config()["bias_constraint"], serde_json::Value::Null);
    layer.build(&[4], &mut keel_tensor::rng::Rng::new(0)).unwrap();
    assert_eq!(layer.constraints().len(), 1);
    let nonneg = serde_json::json!({"class_name": "NonNeg", "config": {}});
    // each class applies its own keys (the table in the registry), and no other
    for (class, key) in [
        ("SeparableConv2D", "depthwise_constraint"),
        ("SeparableConv1D", "pointwise_constraint"),
        ("DepthwiseConv1D", "depthwise_constraint"),
        ("LSTM", "recurrent_constraint"),
        ("ConvLSTM2D", "kernel_constraint"),
        ("BatchNormalization", "gamma_constraint"),
        ("GroupNormalization", "beta_constraint"),
        ("PReLU", "alpha_constraint"),
        ("MultiHeadAttention", "kernel_constraint"),
        ("MultiHeadAttention", "bias_constraint"),
        ("GroupQueryAttention", "kernel_constraint"),
        ("GroupQueryAttention", "bias_constraint"),
    ] {
        assert!(keel_train::unapplied_settings(class, &serde_json::json!({key: nonneg})).is_empty(), "{class}");
    }
    for (class, key) in [
        ("MultiHeadAttention", "recurrent_constraint"),
        ("DepthwiseConv2D", "kernel_constraint"),
        ("LSTM", "depthwise_constraint"),
        ("BatchNormalization", "bias_constraint"),
    ] {
        assert_eq!(
            keel_train::unapplied_settings(class, &serde_json::json!({key: nonneg})),
            vec![format!("{key} (NonNeg)")],
            "{class}"
        );
    }
    assert!(
        keel_train::unapplied_settings("Embedding", &serde_json::json!({"embeddings_constraint": nonneg})).is_empty()
    );
    assert_eq!(
        keel_train::unapplied_settings("Dense", &serde_json::json!({"embeddings_constraint": nonneg})),
        vec!["embeddings_constraint (NonNeg)"]
    );
    let emb = serde_json::json!({"name": "e", "input_dim": 5, "output_dim": 3,
        "embeddings_initializer": {"class_name": "Ones", "config": {}}, "embeddings_regularizer": null,
        "mask_zero": false, "embeddings_constraint": {"class_name": "UnitNorm", "config": {"axis": 1}}});
    let mut e = keel_train::layer_from_config("Embedding", &emb).unwrap();
    e.build(&[4], &mut keel_tensor::rng::Rng::new(0)).unwrap();
    assert_eq!(e.constraints()[0].1, keel_nn::Constraint::unit_norm(1));
    for class in ["Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose"] {
        let c = serde_json::json!({"kernel_constraint": nonneg, "bias_constraint": nonneg});
        assert!(keel_train::unapplied_settings(class, &c).is_empty(), "{class}");
    }
    // a supported class with a bad config is a load error, not a warning
    let mut bad = cfg.clone();
    bad["kernel_constraint"] = serde_json::json!({"class_name": "MaxNorm", "config": {"axis": "rows"}});
    assert!(keel_train::layer_from_config("Dense", &bad).is_err());
    assert!(
        keel_train::unapplied_settings("Dense", &serde_json::json!({"units": 3, "kernel_constraint": null})).is_empty()
    );
}

#[test]
fn einsum_dense_trains_and_round_trips() {
    use keel_nn::{Constraint, EinsumDense};
    let dir = test_dir("einsum-dense");
    let x = Tensor::rand_uniform(2, -1.0, 1.0, (32, 5, 4), DType::F32, &Device::Cpu).unwrap();
    let y = Tensor::from_vec((0..32).map(|i| i % 3).collect::<Vec<i64>>(), 32).unwrap();
    let mut m = Sequential::with_seed(4);
    m.add(
        EinsumDense::new("abc,cde->abde", [None, Some(2), Some(3)])
            .bias_axes("de")
            .activation(Activation::Relu)
            .kernel_constraint(Constraint::max_norm(1.0, 0))
            .input_shape([5, 4]),
    );
    m.add(EinsumDense::new("abde,de->ab", [5]).bias_axes("b"));
    m.add(Dense::new(3).activation(Activation::Softmax));
    m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, NO_METRICS).unwrap();
    m.fit(&x, &y, Fit::new().epochs(2).batch_size(8).verbose(0)).unwrap();
    let path = dir.join("einsum.keel");
    m.save(&path).unwrap();
    let loaded = load_model(&path).unwrap();
    assert_eq!(loaded.config(), m.config());
    assert_eq!(bits(&loaded.predict(&x, 8).unwrap()), bits(&m.predict(&x, 8).unwrap()));
}
