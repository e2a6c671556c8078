//! `Fit::steps_per_epoch`, `validation_freq`, `validation_steps` and
//! `validation_batch_size` against the schedules Keras 3.15.1 runs
//! (fixtures/fit_schedule.json, made by fixtures/make_fit_schedule.py).

use keel_data::DataLoader;
use keel_nn::{Dense, Loss, Network};
use keel_optim::SGD;
use keel_tensor::{DType, Device, Tensor};
use keel_train::callbacks::LambdaCallback;
use keel_train::{Checkpoint, Fit, Sequential, ValidationFreq, NO_METRICS};
use serde_json::Value;
use std::cell::RefCell;

fn fixture() -> Vec<Value> {
    let text = include_str!("fixtures/fit_schedule.json");
    let v: Value = serde_json::from_str(text).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn model(seed: u64) -> Sequential {
    let mut m = Sequential::with_seed(seed);
    m.add(Dense::new(1).input_shape([1]));
    m.compile(SGD::new(1e-3), Loss::MeanSquaredError, NO_METRICS).unwrap();
    m
}

fn data(n: usize, value: Option<f32>) -> (Tensor, Tensor) {
    let xs: Vec<f32> = (0..n).map(|i| value.unwrap_or(i as f32 / n as f32)).collect();
    let x = Tensor::from_vec(xs, (n, 1)).unwrap();
    (x, Tensor::zeros((n, 1), DType::F32, &Device::Cpu).unwrap())
}

fn opt(v: &Value) -> Option<usize> {
    v.as_u64().map(|n| n as usize)
}

#[test]
fn batches_per_epoch_and_validated_epochs_match_keras() {
    for case in fixture() {
        let n = case["n"].as_u64().unwrap() as usize;
        let (x, y) = data(n, None);
        let (vx, vy) = data(case["n_val"].as_u64().unwrap() as usize, Some(1.0));
        let per_epoch = RefCell::new(Vec::<usize>::new());
        let counter = LambdaCallback::new()
            .on_epoch_begin(|_| per_epoch.borrow_mut().push(0))
            .on_train_batch_end(|_, _| *per_epoch.borrow_mut().last_mut().unwrap() += 1);
        let mut cfg = Fit::new()
            .batch_size(case["batch"].as_u64().unwrap() as usize)
            .epochs(case["epochs"].as_u64().unwrap() as usize)
            .shuffle(false)
            .validation_data(&vx, &vy)
            .verbose(0)
            .callback(counter);
        if let Some(s) = opt(&case["steps_per_epoch"]) {
            cfg = cfg.steps_per_epoch(s);
        }
        cfg = match &case["validation_freq"] {
            Value::Array(list) => {
                cfg.validation_freq(list.iter().map(|e| e.as_u64().unwrap() as usize).collect::<Vec<_>>())
            }
            f => cfg.validation_freq(f.as_u64().unwrap() as usize),
        };
        if let Some(s) = opt(&case["validation_steps"]) {
            cfg = cfg.validation_steps(s);
        }
        if let Some(b) = opt(&case["validation_batch_size"]) {
            cfg = cfg.validation_batch_size(b);
        }
        let mut m = model(0);
        let h = m.fit(&x, &y, cfg).unwrap();
        let want: Vec<usize> =
            case["batches_per_epoch"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        assert_eq!(*per_epoch.borrow(), want, "{case}");
        assert_eq!(h.get("loss").unwrap().len(), case["loss_len"].as_u64().unwrap() as usize, "{case}");
        let val_len = h.get("val_loss").map_or(0, <[f64]>::len);
        assert_eq!(val_len, case["val_loss_len"].as_u64().unwrap() as usize, "{case}");
        // the val_ values sit at the validated epochs
        let freq: ValidationFreq = match &case["validation_freq"] {
            Value::Array(list) => list.iter().map(|e| e.as_u64().unwrap() as usize).collect::<Vec<_>>().into(),
            f => (f.as_u64().unwrap() as usize).into(),
        };
        let validated: Vec<usize> = h.epoch.iter().copied().filter(|&e| freq.should_validate(e)).collect();
        assert_eq!(h.epochs_of("val_loss").unwrap_or_default(), validated, "{case}");
    }
}

#[test]
fn epochs_continue_where_the_last_one_stopped() {
    // shuffle off, plain SGD: three epochs of 4 + 4 + 2 batches are one pass, batch for
    // batch, so they leave the weights one ordinary epoch leaves
    let (x, y) = data(40, None);
    let y = y.add(&x.mul(&Tensor::scalar(3.0f32)).unwrap()).unwrap();
    let mut a = model(5);
    a.fit(&x, &y, Fit::new().batch_size(4).epochs(3).steps_per_epoch(4).shuffle(false).verbose(0)).unwrap();
    let mut b = model(5);
    b.fit(&x, &y, Fit::new().batch_size(4).epochs(1).shuffle(false).verbose(0)).unwrap();
    assert_eq!(weights(&a), weights(&b));
    // and with shuffling, pass p is epoch p's order: 6 short epochs = 2 ordinary ones
    let mut c = model(5);
    c.fit(&x, &y, Fit::new().batch_size(4).epochs(6).steps_per_epoch(4).seed(3).verbose(0)).unwrap();
    let mut d = model(5);
    d.fit(&x, &y, Fit::new().batch_size(4).epochs(2).seed(3).verbose(0)).unwrap();
    assert_eq!(weights(&c), weights(&d));
}

#[test]
fn a_resumed_run_takes_up_the_batches_inside_a_pass() {
    let (x, y) = data(40, None);
    let y = y.add(&x.mul(&Tensor::scalar(-2.0f32)).unwrap()).unwrap();
    let cfg = || Fit::new().batch_size(4).steps_per_epoch(4).seed(11).verbose(0);
    let mut whole = model(2);
    let h_whole = whole.fit(&x, &y, cfg().epochs(5)).unwrap();
    // stop after epoch 2 (inside the first pass: batches 4..8 taken), resume from a checkpoint
    let dir = std::env::temp_dir().join(format!("keel-fit-schedule-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mid.ckpt");
    let mut first = model(2);
    let h = first.fit(&x, &y, cfg().epochs(2)).unwrap();
    first.save_checkpoint(&path, 2, 11, &h).unwrap();
    let ck = Checkpoint::load(&path).unwrap();
    let mut resumed = model(2);
    resumed.load_checkpoint(&path).unwrap();
    let h2 = resumed.fit(&x, &y, cfg().epochs(5).resume_from(&ck)).unwrap();
    assert_eq!(weights(&resumed), weights(&whole));
    assert_eq!(h2.get("loss").unwrap(), &h_whole.get("loss").unwrap()[2..]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn validation_steps_and_batch_size_evaluate_the_first_batches() {
    let (x, y) = data(16, None);
    let (vx, _) = data(30, None);
    let vy = vx.mul(&Tensor::scalar(2.0f32)).unwrap();
    let mut m = model(1);
    let h = m
        .fit(
            &x,
            &y,
            Fit::new().epochs(1).validation_data(&vx, &vy).validation_steps(2).validation_batch_size(4).verbose(0),
        )
        .unwrap();
    // 2 batches of 4: the first 8 samples
    let l = m.evaluate_all(&vx.narrow(0, 0, 8).unwrap(), &vy.narrow(0, 0, 8).unwrap(), 4).unwrap()[0].1;
    assert!((h.last("val_loss").unwrap() - l).abs() < 1e-12, "{} vs {l}", h.last("val_loss").unwrap());
    // a validation source: its first batches too
    let mut src = DataLoader::new(keel_data::TensorDataset::new(vx.clone(), vy.clone()).unwrap(), 5).unwrap();
    let h = m.fit(&x, &y, Fit::new().epochs(1).validation_source(&mut src).validation_steps(3).verbose(0)).unwrap();
    let l = m.evaluate_all(&vx.narrow(0, 0, 15).unwrap(), &vy.narrow(0, 0, 15).unwrap(), 5).unwrap()[0].1;
    assert!((h.last("val_loss").unwrap() - l).abs() < 1e-12);
}

#[test]
fn a_fit_source_runs_steps_per_epoch_too() {
    let (x, y) = data(40, None);
    let mut loader = DataLoader::new(keel_data::TensorDataset::new(x, y).unwrap(), 4).unwrap();
    let per_epoch = RefCell::new(Vec::<usize>::new());
    let counter = LambdaCallback::new()
        .on_epoch_begin(|_| per_epoch.borrow_mut().push(0))
        .on_train_batch_end(|_, _| *per_epoch.borrow_mut().last_mut().unwrap() += 1);
    let mut m = model(0);
    m.fit_source(&mut loader, Fit::new().epochs(4).steps_per_epoch(3).verbose(0).callback(counter)).unwrap();
    assert_eq!(*per_epoch.borrow(), [3, 3, 3, 1]);
}

#[test]
fn zero_counts_are_errors_that_say_what_to_do() {
    let (x, y) = data(8, None);
    for (cfg, name) in [
        (Fit::new().steps_per_epoch(0), "steps_per_epoch"),
        (Fit::new().validation_steps(0), "validation_steps"),
        (Fit::new().validation_batch_size(0), "validation_batch_size"),
        (Fit::new().validation_freq(0), "validation_freq"),
    ] {
        let err = model(0).fit(&x, &y, cfg.verbose(0)).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains("at least 1"), "{err}");
    }
}

fn weights(m: &Sequential) -> Vec<Vec<f32>> {
    m.network().state_dict().into_values().map(|t| t.to_vec::<f32>().unwrap()).collect()
}

#[test]
fn learning_curves_draw_validation_at_its_epochs() {
    let (x, y) = data(16, None);
    let (vx, vy) = data(8, Some(1.0));
    let mut m = model(0);
    let h = m.fit(&x, &y, Fit::new().epochs(4).validation_data(&vx, &vy).validation_freq(2).verbose(0)).unwrap();
    assert_eq!(h.points("val_loss").iter().map(|p| p.0).collect::<Vec<_>>(), [1, 3]);
    let png = h.plot_png().unwrap();
    assert!(png.starts_with(b"\x89PNG"));
}
