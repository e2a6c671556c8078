//! User mistakes and damaged files found by a review: each is an error that says what is
//! wrong, never a panic, an abort, a hang, or a silently overwritten file.

mod common;

use common::{blobs, mlp, test_dir};
use keel_data::DataLoader;
use keel_nn::{Conv2D, Dense, Loss, Network};
use keel_optim::SGD;
use keel_tensor::Tensor;
use keel_train::{load_model, Checkpoint, Fit, History, Sequential, NO_METRICS};

/// A file of safetensors layout with its JSON header rewritten by `edit`.
fn edit_header(bytes: &[u8], edit: impl Fn(&str) -> String) -> Vec<u8> {
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + len]).unwrap();
    let new = edit(header);
    let mut out = (new.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(new.as_bytes());
    out.extend_from_slice(&bytes[8 + len..]);
    out
}

#[test]
fn a_model_file_with_absurd_sizes_is_an_error_not_an_abort() {
    let dir = test_dir("absurd");
    let path = dir.join("m.keel");
    let mut m = mlp(1);
    m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    m.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for (what, from, to) in
        [("units", r#"\"units\":16"#, r#"\"units\":4000000000000"#), ("input", "[2]", "[4611686018427387904]")]
    {
        let bad = edit_header(&bytes, |h| {
            assert!(h.contains(from), "{what}: {from} not in {h}");
            h.replacen(from, to, 1)
        });
        let p = dir.join(format!("{what}.keel"));
        std::fs::write(&p, bad).unwrap();
        let e = load_model(&p).err().expect("a bad file must not load").to_string();
        assert!(e.contains("cannot rebuild the model"), "{what}: {e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpoint_claiming_a_huge_field_is_an_error_not_an_abort() {
    // a valid header and checksum around a payload whose first field (the config string)
    // claims 2^40 bytes
    let payload = [253u8, 0, 0, 0, 0, 0, 1, 0, 0];
    let fnv = payload.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    let mut bytes = b"KEELCKPT".to_vec();
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&fnv.to_le_bytes());
    bytes.extend_from_slice(&payload);
    let dir = test_dir("huge-ckpt");
    let p = dir.join("c.ckpt");
    std::fs::write(&p, bytes).unwrap();
    let e = Checkpoint::load(&p).unwrap_err().to_string();
    assert!(e.contains("cannot decode the checkpoint"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn saving_an_unbuilt_model_leaves_the_file_alone() {
    let dir = test_dir("unbuilt");
    let p = dir.join("w.keel");
    let m = mlp(2);
    m.save_weights(&p).unwrap();
    let before = std::fs::read(&p).unwrap();
    let mut unbuilt = Sequential::new();
    unbuilt.add(Dense::new(3));
    let e = unbuilt.save_weights(&p).unwrap_err().to_string();
    assert!(e.contains("not built"), "{e}");
    assert_eq!(std::fs::read(&p).unwrap(), before);
    // a missing directory is named as such
    let e = m.save(dir.join("no/such/dir/m.keel")).unwrap_err().to_string();
    assert!(e.contains("does not exist") && e.contains("no/such/dir") && !e.contains(".tmp-"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn predicting_with_an_unbuilt_model_says_how_to_build_it() {
    let mut m = Sequential::new();
    m.add(Dense::new(2));
    let x = Tensor::from_vec(vec![1.0f32; 8], [2, 4]).unwrap();
    let e = m.predict(&x, 32).unwrap_err().to_string();
    assert!(e.contains("not built") && e.contains("model.build(&[vec!["), "{e}");
    // which is Keras's model.build((None, 4))
    m.build(&[vec![4]]).unwrap();
    assert_eq!(m.predict(&x, 32).unwrap().dims(), &[2, 2]);
}

#[test]
fn plotting_values_beyond_f64_range_is_an_error_not_a_hang() {
    let mut h = History::new();
    h.push(0, &[("loss".into(), 1e308)]);
    h.push(1, &[("loss".into(), -1e308)]);
    assert!(h.plot_png().unwrap_err().to_string().contains("cannot chart"));
}

#[test]
fn fitting_nothing_is_an_error() {
    let (x, y) = blobs(3, 10);
    // a source with no batches
    let mut m = mlp(3);
    m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let mut loader = DataLoader::from_tensors(&x, &y, 32).unwrap().drop_last(true);
    let e = m.fit_source(&mut loader, Fit::new().epochs(2).verbose(0)).unwrap_err().to_string();
    assert!(e.contains("no batches"), "{e}");
    // a model with no weights computes its loss (Keras warns and goes on), rather than
    // failing deep in the backward pass
    let mut no_weights = Sequential::new();
    no_weights.add(keel_nn::ActivationLayer::new(keel_nn::Activation::Sigmoid).input_shape([2]));
    no_weights.compile(SGD::new(0.1), Loss::MeanSquaredError, NO_METRICS).unwrap();
    let two = Tensor::concat(&[y.clone(), y.clone()], 1).unwrap();
    let h = no_weights.fit(&x, &two, Fit::new().epochs(2).verbose(0)).unwrap();
    assert_eq!(h.get("loss").unwrap().len(), 2);
    assert!(h.get("loss").unwrap().iter().all(|l| l.is_finite()));
    // a scalar y, and a y with another sample count, name y
    let e = no_weights.evaluate(&x, &Tensor::scalar(1.0f32)).unwrap_err().to_string();
    assert!(e.contains("y needs a batch"), "{e}");
    let e = no_weights.fit(&x, &y.narrow(0, 0, 4).unwrap(), Fit::new().verbose(0)).unwrap_err().to_string();
    assert!(e.contains("y has 4"), "{e}");
}

#[test]
fn layer_errors_surface_at_compile() {
    // a 5x5 window on a 3x3 image: known when the layer is added, reported by compile
    let mut m = Sequential::new();
    m.add(Conv2D::new(2, (5, 5)).input_shape([3, 3, 1]));
    let e = m.compile(SGD::new(0.1), Loss::MeanSquaredError, NO_METRICS).unwrap_err().to_string();
    assert!(e.contains("Conv2D"), "{e}");
    // a shape whose element count overflows
    let mut m = Sequential::new();
    m.add(Dense::new(16).input_shape([1usize << 62]));
    assert!(m.compile(SGD::new(0.1), Loss::MeanSquaredError, NO_METRICS).is_err());
}

#[test]
fn bad_settings_are_reported_before_training() {
    let (x, y) = blobs(4, 16);
    let mut m = mlp(4);
    for bad in [SGD::new(-0.1), SGD::new(0.1).momentum(1.5), SGD::new(0.1).clipnorm(-1.0)] {
        let e = m.compile(bad, Loss::BinaryCrossentropy, NO_METRICS).unwrap_err().to_string();
        assert!(e.contains("SGD"), "{e}");
    }
    // loss options too
    let bad_loss = Loss::SparseCategoricalCrossentropy.from_logits(true).label_smoothing(0.1);
    assert!(m.compile(SGD::new(0.1), bad_loss, NO_METRICS).unwrap_err().to_string().contains("label_smoothing"));
    assert!(m.compile(SGD::new(0.1), keel_nn::LossFn::huber(-1.0), NO_METRICS).is_err());
    m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let before = m.state_dict().into_iter().map(|(k, t)| (k, t.to_vec::<f32>().unwrap())).collect::<Vec<_>>();
    let (vx, vy) = blobs(5, 8);
    let wide = Tensor::concat(&[vx.clone(), vx.clone()], 1).unwrap();
    for (vx, vy, needle) in [(&wide, &vy, "shape"), (&vx, &vy.narrow(0, 0, 3).unwrap(), "samples")] {
        let e = m.fit(&x, &y, Fit::new().epochs(2).validation_data(vx, vy).verbose(0)).unwrap_err().to_string();
        assert!(e.contains("validation_data") && e.contains(needle), "{e}");
    }
    // nothing trained
    let after = m.state_dict().into_iter().map(|(k, t)| (k, t.to_vec::<f32>().unwrap())).collect::<Vec<_>>();
    assert_eq!(before, after);
}
