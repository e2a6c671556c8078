//! The Keras callbacks, wired into `fit`.

mod common;

use common::{blobs, flipped, mlp, test_dir, weight_bits};
use keel_nn::{Loss, Network};
use keel_optim::{Adam, SGD};
use keel_tensor::{DType, Device, Tensor};
use keel_train::callbacks::{Callback, CallbackContext, Logs, Mode};
use keel_train::{
    load_model, BackupAndRestore, CSVLogger, EarlyStopping, Fit, LearningRateScheduler, MetricSpec, ModelCheckpoint,
    ReduceLROnPlateau, TerminateOnNaN, NO_METRICS,
};

#[test]
fn early_stopping_stops_and_restores_the_best_weights() {
    let (x, y) = blobs(1, 64);
    let vy = flipped(&y);
    let mut m = mlp(0);
    m.compile(SGD::new(0.5), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    let mut es = EarlyStopping::new("val_loss").patience(2).restore_best_weights(true);
    let h = m
        .fit(&x, &y, Fit::new().epochs(50).batch_size(16).verbose(0).validation_data(&x, &vy).callback(&mut es))
        .unwrap();
    let val = h.get("val_loss").unwrap();
    assert!(val.len() < 50, "did not stop: {val:?}");
    let stopped = es.stopped_epoch().expect("stopped");
    assert_eq!(stopped + 1, val.len());
    let best = es.best_epoch().unwrap();
    // the best epoch is the argmin, and `patience` epochs followed it without improvement
    let argmin = val.iter().enumerate().fold(0, |b, (i, v)| if *v < val[b] { i } else { b });
    assert_eq!(best, argmin);
    assert_eq!(stopped - best, 2);
    // the restored weights give exactly the best epoch's val_loss
    let (vl, _) = m.evaluate(&x, &vy).unwrap();
    assert_eq!(vl, val[best], "restored val_loss {vl} vs best {}", val[best]);
    assert_ne!(vl, *val.last().unwrap());
}

#[test]
fn early_stopping_mode_baseline_and_min_delta() {
    let (x, y) = blobs(2, 64);
    // accuracy is maximised in auto mode; a baseline it cannot reach stops after `patience` epochs
    let mut m = mlp(1);
    m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    let mut es = EarlyStopping::new("accuracy").patience(3).baseline(1.5);
    let h = m.fit(&x, &y, Fit::new().epochs(20).verbose(0).callback(&mut es)).unwrap();
    // the baseline is never beaten, so the patience counter never restarts
    assert!(h.epoch.len() >= 3 && h.epoch.len() < 20, "{:?}", h.epoch);
    assert_eq!(es.stopped_epoch(), Some(h.epoch.len() - 1));
    assert!(Mode::Auto.maximizes("val_accuracy") && !Mode::Auto.maximizes("val_loss"));
    // a huge min_delta means no epoch after the first counts as an improvement
    let mut m = mlp(1);
    m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let mut es = EarlyStopping::new("loss").min_delta(10.0).patience(1).mode(Mode::Min);
    let h = m.fit(&x, &y, Fit::new().epochs(20).verbose(0).callback(&mut es)).unwrap();
    assert_eq!(h.epoch, vec![0, 1]);
}

#[test]
fn model_checkpoint_keeps_the_best_file() {
    let dir = test_dir("ckpt-best");
    let (x, y) = blobs(3, 64);
    let (vx, vy) = blobs(4, 32);
    let mut m = mlp(2);
    m.compile(SGD::new(0.5), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    let best_path = dir.join("best.keel");
    let mut best = ModelCheckpoint::new(best_path.to_str().unwrap()).monitor("val_loss").save_best_only(true);
    let mut every = ModelCheckpoint::new(dir.join("w-{epoch:02d}-{val_loss:.3f}.safetensors").to_str().unwrap())
        .save_weights_only(true);
    let h = m
        .fit(
            &x,
            &y,
            Fit::new()
                .epochs(6)
                .batch_size(8)
                .verbose(0)
                .validation_data(&vx, &vy)
                .callback(&mut best)
                .callback(&mut every),
        )
        .unwrap();
    let val = h.get("val_loss").unwrap();
    let min = val.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(best.best(), min);
    // only improvements were saved, all to the same path
    let improvements = val.iter().scan(f64::INFINITY, |b, &v| {
        Some(if v < *b {
            *b = v;
            true
        } else {
            false
        })
    });
    assert_eq!(best.saved_paths().len(), improvements.filter(|&i| i).count());
    // the file holds the best epoch's model
    let loaded = load_model(&best_path).unwrap();
    let mut loaded = loaded;
    loaded.compile(SGD::new(0.5), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    // (evaluated with fit's batch size, so the batch means add up the same way)
    assert_eq!(loaded.evaluate_all(&vx, &vy, 8).unwrap()[0].1, min);
    // one weights file per epoch, named from the epoch (1-based) and the logs
    assert_eq!(every.saved_paths().len(), 6);
    let first = every.saved_paths()[0].file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(first, format!("w-01-{:.3}.safetensors", val[0]));
    let last = every.saved_paths().last().unwrap();
    let mut fresh = mlp(99);
    fresh.compile(SGD::new(0.5), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    fresh.load_weights(last).unwrap();
    assert_eq!(
        fresh.predict(&vx, 32).unwrap().to_vec::<f32>().unwrap(),
        m.predict(&vx, 32).unwrap().to_vec::<f32>().unwrap()
    );
    // no temp files are left behind
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().to_string();
            n.contains(".tmp").then_some(n)
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reduce_lr_on_plateau_lowers_the_learning_rate() {
    let (x, y) = blobs(5, 64);
    let vy = flipped(&y);
    let mut m = mlp(3);
    m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let mut r = ReduceLROnPlateau::new("val_loss").factor(0.5).patience(1).min_lr(0.03);
    let h = m.fit(&x, &y, Fit::new().epochs(5).verbose(0).validation_data(&x, &vy).callback(&mut r)).unwrap();
    // val_loss rises every epoch: epoch 0 sets the best, each later epoch lowers the rate (logged before lowering)
    let val = h.get("val_loss").unwrap();
    assert!(val.windows(2).all(|w| w[1] > w[0]), "{val:?}");
    assert_eq!(h.get("learning_rate").unwrap(), &[0.1, 0.1, 0.05, 0.03, 0.03]);
    assert_eq!(m.optimizer_mut().unwrap().learning_rate(), 0.03);
    // cooldown: after a reduction, wait `cooldown` epochs
    let mut m = mlp(3);
    m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let r = ReduceLROnPlateau::new("val_loss").factor(0.5).patience(1).cooldown(2);
    let h = m.fit(&x, &y, Fit::new().epochs(5).verbose(0).validation_data(&x, &vy).callback(r)).unwrap();
    assert_eq!(h.get("learning_rate").unwrap(), &[0.1, 0.1, 0.05, 0.05, 0.025]);
    // factor >= 1 is refused
    let bad = ReduceLROnPlateau::new("loss").factor(2.0);
    assert!(m.fit(&x, &y, Fit::new().verbose(0).callback(bad)).is_err());
}

#[test]
fn learning_rate_scheduler_sets_the_rate_each_epoch() {
    let (x, y) = blobs(6, 32);
    let mut m = mlp(4);
    m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let sched = LearningRateScheduler::new(|epoch, lr| if epoch < 2 { lr } else { lr * 0.5 });
    let h = m.fit(&x, &y, Fit::new().epochs(4).verbose(0).callback(sched)).unwrap();
    assert_eq!(h.get("learning_rate").unwrap(), &[0.1, 0.1, 0.05, 0.025]);
    let bad = LearningRateScheduler::new(|_, _| f64::NAN);
    assert!(m.fit(&x, &y, Fit::new().verbose(0).callback(bad)).is_err());
}

#[test]
fn csv_logger_writes_one_row_per_epoch() {
    let dir = test_dir("csv");
    let path = dir.join("log.csv");
    let (x, y) = blobs(7, 64);
    let mut m = mlp(5);
    m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    let h =
        m.fit(&x, &y, Fit::new().epochs(3).verbose(0).validation_split(0.25).callback(CSVLogger::new(&path))).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "epoch,accuracy,loss,val_accuracy,val_loss");
    assert_eq!(lines.len(), 4);
    for (i, line) in lines[1..].iter().enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells[0], i.to_string());
        assert_eq!(cells[2].parse::<f64>().unwrap(), h.get("loss").unwrap()[i]); // exact round trip
        assert_eq!(cells[4].parse::<f64>().unwrap(), h.get("val_loss").unwrap()[i]);
    }
    // append: no second header; a custom separator
    let h2 = m
        .fit(
            &x,
            &y,
            Fit::new().epochs(2).verbose(0).validation_split(0.25).callback(CSVLogger::new(&path).append(true)),
        )
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 6);
    assert_eq!(text.lines().filter(|l| l.starts_with("epoch")).count(), 1);
    assert_eq!(h2.epoch.len(), 2);
    let tsv = dir.join("log.tsv");
    m.fit(&x, &y, Fit::new().epochs(1).verbose(0).callback(CSVLogger::new(&tsv).separator("\t"))).unwrap();
    assert_eq!(std::fs::read_to_string(&tsv).unwrap().lines().next().unwrap(), "epoch\taccuracy\tloss");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn terminate_on_nan_stops_at_the_first_bad_batch() {
    let (x, y) = blobs(8, 64);
    // poison the second batch (samples 16..32 without shuffling)
    let mut yv = y.to_vec::<f32>().unwrap();
    yv[20] = f32::NAN;
    let y = Tensor::from_vec(yv, (64, 1)).unwrap();
    let mut m = mlp(6);
    m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let mut t = TerminateOnNaN::new();
    let h = m.fit(&x, &y, Fit::new().epochs(5).batch_size(16).shuffle(false).verbose(0).callback(&mut t)).unwrap();
    assert_eq!(t.terminated_at(), Some((0, 1)));
    assert_eq!(h.epoch, vec![0]);
    assert!(h.last("loss").unwrap().is_nan());
    // the NaN batch was not stepped on: the weights are finite
    for (_, w) in m.state_dict() {
        assert!(w.to_vec::<f32>().unwrap().iter().all(|v| v.is_finite()));
    }
}

#[test]
fn a_nan_feature_reaches_the_loss_through_relu_and_stops_training() {
    // the NaN is in x this time: it must survive the ReLU layer and the probability clip
    let (x, y) = blobs(8, 64);
    let mut xv = x.to_vec::<f32>().unwrap();
    xv[2 * 20] = f32::NAN; // sample 20, in the second batch of 16
    let x = Tensor::from_vec(xv, (64, 2)).unwrap();
    let mut m = mlp(6);
    m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let mut t = TerminateOnNaN::new();
    let h = m.fit(&x, &y, Fit::new().epochs(3).batch_size(16).shuffle(false).verbose(0).callback(&mut t)).unwrap();
    assert_eq!(t.terminated_at(), Some((0, 1)));
    assert!(h.last("loss").unwrap().is_nan());
}

/// NaN predictions make the epoch's metrics NaN (keel-metrics refuses NaN scores), they do
/// not end `fit` with an error: a diverged run reads as NaN, as its loss does.
#[test]
fn nan_predictions_make_the_metrics_nan_not_an_error() {
    let (x, y) = blobs(8, 64);
    let mut xv = x.to_vec::<f32>().unwrap();
    xv[2 * 20] = f32::NAN;
    let x_nan = Tensor::from_vec(xv, (64, 2)).unwrap();
    let mut m = mlp(6);
    m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, &["accuracy", "auc"]).unwrap();
    let h = m
        .fit(&x_nan, &y, Fit::new().epochs(2).batch_size(16).shuffle(false).verbose(0).validation_data(&x, &y))
        .unwrap();
    for k in ["loss", "accuracy", "auc"] {
        assert!(h.get(k).unwrap().iter().all(|v| v.is_nan()), "{k}: {:?}", h.get(k));
    }
    // the NaN steps were skipped, so the weights and the clean validation set stay finite
    for k in ["val_loss", "val_accuracy", "val_auc"] {
        assert!(h.get(k).unwrap().iter().all(|v| v.is_finite()), "{k}: {:?}", h.get(k));
    }
}

/// A user callback that records hooks and edits weights and the learning rate through the context.
#[derive(Default)]
struct Recorder {
    events: Vec<String>,
}

impl Callback for Recorder {
    fn on_train_begin(&mut self, ctx: &mut CallbackContext<'_>) -> keel_train::Result<()> {
        self.events.push(format!("train_begin epochs={} steps={}", ctx.params().epochs, ctx.params().steps));
        Ok(())
    }
    fn on_epoch_begin(&mut self, epoch: usize, ctx: &mut CallbackContext<'_>) -> keel_train::Result<()> {
        ctx.set_learning_rate(0.0)?; // freeze training from here
        self.events.push(format!("epoch_begin {epoch}"));
        Ok(())
    }
    fn on_train_batch_end(
        &mut self,
        batch: usize,
        logs: &Logs,
        _ctx: &mut CallbackContext<'_>,
    ) -> keel_train::Result<()> {
        assert!(logs.get("loss").is_some());
        self.events.push(format!("batch_end {batch}"));
        Ok(())
    }
    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, ctx: &mut CallbackContext<'_>) -> keel_train::Result<()> {
        logs.insert("custom", epoch as f64 * 10.0);
        // zero every weight through the context
        let zeroed = ctx
            .weights()?
            .into_iter()
            .map(|(k, t)| (k, Tensor::zeros(t.shape(), DType::F32, &Device::Cpu).unwrap()))
            .collect();
        ctx.set_weights(&zeroed)?;
        self.events.push(format!("epoch_end {epoch} history={}", ctx.history().epoch.len()));
        if epoch == 1 {
            ctx.stop_training();
        }
        Ok(())
    }
    fn on_train_end(&mut self, _ctx: &mut CallbackContext<'_>) -> keel_train::Result<()> {
        self.events.push("train_end".into());
        Ok(())
    }
}

#[test]
fn custom_callbacks_see_every_hook_and_can_change_the_model() {
    let (x, y) = blobs(9, 20);
    let mut m = mlp(7);
    m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let mut rec = Recorder::default();
    let h = m.fit(&x, &y, Fit::new().epochs(5).batch_size(10).verbose(0).callback(&mut rec)).unwrap();
    assert_eq!(
        rec.events,
        vec![
            "train_begin epochs=5 steps=2",
            "epoch_begin 0",
            "batch_end 0",
            "batch_end 1",
            "epoch_end 0 history=0",
            "epoch_begin 1",
            "batch_end 0",
            "batch_end 1",
            "epoch_end 1 history=1",
            "train_end",
        ]
    );
    assert_eq!(h.get("custom").unwrap(), &[0.0, 10.0]);
    assert!(m.state_dict().values().all(|t| t.to_vec::<f32>().unwrap().iter().all(|&v| v == 0.0)));
    assert_eq!(m.optimizer_mut().unwrap().learning_rate(), 0.0);
    // boxed callbacks through `callbacks`
    let h = m
        .fit(
            &x,
            &y,
            Fit::new().epochs(3).verbose(0).callbacks(vec![Box::new(EarlyStopping::new("loss")) as Box<dyn Callback>]),
        )
        .unwrap();
    assert!(h.epoch.len() <= 3);
}

/// Records `(epoch, batch)` for every `on_train_batch_end`.
#[derive(Default)]
struct BatchEnds {
    epoch: usize,
    seen: Vec<(usize, usize)>,
}

impl Callback for BatchEnds {
    fn on_epoch_begin(&mut self, epoch: usize, _ctx: &mut CallbackContext<'_>) -> keel_train::Result<()> {
        self.epoch = epoch;
        Ok(())
    }
    fn on_train_batch_end(&mut self, batch: usize, _: &Logs, _: &mut CallbackContext<'_>) -> keel_train::Result<()> {
        self.seen.push((self.epoch, batch));
        Ok(())
    }
}

#[test]
fn steps_per_execution_changes_when_results_are_read_not_what_is_learned() {
    let (x, y) = blobs(10, 70);
    // 56 training samples in batches of 10: six steps per epoch, the last one of 6 samples
    let run = |n: usize| {
        let mut m = mlp(3);
        m.compile(Adam::new(0.01), Loss::BinaryCrossentropy, &["accuracy", "auc"]).unwrap();
        let mut ends = BatchEnds::default();
        let fit = Fit::new().epochs(2).batch_size(10).validation_split(0.2).seed(5).verbose(0);
        let h = m.fit(&x, &y, fit.steps_per_execution(n).callback(&mut ends)).unwrap();
        (h, common::weight_bits(m.network()), ends.seen)
    };
    let (h1, w1, ends1) = run(1);
    let (h4, w4, ends4) = run(4);
    let (h9, w9, ends9) = run(9);
    assert_eq!(h4, h1, "the logs do not depend on steps_per_execution");
    assert_eq!(h9, h1);
    assert_eq!(w4, w1, "nor do the weights");
    assert_eq!(w9, w1);
    let every: Vec<(usize, usize)> = (0..2).flat_map(|e| (0..6).map(move |b| (e, b))).collect();
    assert_eq!(ends1, every);
    // Keras: one call per execution, with the index of its last batch
    assert_eq!(ends4, vec![(0, 3), (0, 5), (1, 3), (1, 5)]);
    assert_eq!(ends9, vec![(0, 5), (1, 5)]);

    let mut m = mlp(3);
    m.compile(Adam::new(0.01), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let err = m.fit(&x, &y, Fit::new().verbose(0).steps_per_execution(0)).unwrap_err();
    assert!(err.to_string().contains("steps_per_execution"), "{err}");
}

#[test]
fn with_several_steps_per_execution_a_nan_step_is_applied_and_seen_at_the_end_of_its_execution() {
    let (x, y) = blobs(8, 64);
    let mut yv = y.to_vec::<f32>().unwrap();
    yv[20] = f32::NAN; // the second batch of 16 (no shuffling)
    let y = Tensor::from_vec(yv, (64, 1)).unwrap();
    let mut m = mlp(6);
    m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let mut t = TerminateOnNaN::new();
    let fit = Fit::new().epochs(5).batch_size(16).shuffle(false).verbose(0).steps_per_execution(3);
    let h = m.fit(&x, &y, fit.callback(&mut t)).unwrap();
    // the first execution is batches 0..=2: the NaN of batch 1 shows when it ends
    assert_eq!(t.terminated_at(), Some((0, 2)));
    assert_eq!(h.epoch, vec![0]);
    // the loss was read after the steps, so the NaN step was applied (as Keras does)
    assert!(m.state_dict().values().any(|w| w.to_vec::<f32>().unwrap().iter().any(|v| v.is_nan())));
}

#[test]
fn evaluate_and_predict_read_results_a_window_at_a_time_with_the_same_values() {
    let (x, y) = blobs(12, 40);
    let mut m = mlp(2);
    m.compile(Adam::new(0.01), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    m.fit(&x, &y, Fit::new().epochs(2).batch_size(8).verbose(0)).unwrap();
    // 40 batches of one (more than one read window) against one batch of 40
    let one = m.evaluate_all(&x, &y, 1).unwrap();
    let all = m.evaluate_all(&x, &y, 40).unwrap();
    assert!((one[0].1 - all[0].1).abs() < 1e-6, "{one:?} vs {all:?}");
    assert_eq!(one[1], all[1]);
    let p1 = m.predict(&x, 1).unwrap().to_vec::<f32>().unwrap();
    let p40 = m.predict(&x, 40).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(p1.len(), 40);
    assert!(p1.iter().zip(&p40).all(|(a, b)| (a - b).abs() < 1e-6), "{p1:?} vs {p40:?}");
}

/// A callback may not replace an optimizer's learning-rate schedule with a constant (Keras
/// raises too): the schedule used to be dropped silently.
#[test]
fn callbacks_refuse_to_override_a_learning_rate_schedule() {
    use keel_optim::schedule::ExponentialDecay;
    let (x, y) = blobs(9, 32);
    for which in ["plateau", "scheduler"] {
        let mut m = mlp(7);
        m.compile(SGD::new(ExponentialDecay::new(0.01, 1, 0.5)), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
        let fit = Fit::new().epochs(4).batch_size(32).verbose(0);
        let r = match which {
            "plateau" => {
                m.fit(&x, &y, fit.callback(ReduceLROnPlateau::new("loss").factor(0.5).patience(0).min_delta(1e9)))
            }
            _ => m.fit(&x, &y, fit.callback(LearningRateScheduler::new(|_, lr| lr))),
        };
        let e = r.unwrap_err().to_string();
        assert!(e.contains("schedule") && e.contains("not settable"), "{which}: {e}");
    }
}

/// Keras's LambdaCallback: closures on each hook, called in order with the indices and logs.
#[test]
fn lambda_callback_runs_its_closures() {
    use keel_train::LambdaCallback;
    let (x, y) = blobs(7, 32);
    let mut m = mlp(0);
    m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let mut events: Vec<String> = Vec::new();
    let events_cell = std::cell::RefCell::new(&mut events);
    let cb = LambdaCallback::new()
        .on_train_begin(|| events_cell.borrow_mut().push("begin".into()))
        .on_epoch_begin(|e| events_cell.borrow_mut().push(format!("epoch {e}")))
        .on_train_batch_end(|b, logs| {
            events_cell.borrow_mut().push(format!("batch {b} {}", logs.get("loss").is_some()))
        })
        .on_epoch_end(|e, logs| events_cell.borrow_mut().push(format!("end {e} {:.6}", logs.get("val_loss").unwrap())))
        .on_train_end(|| events_cell.borrow_mut().push("done".into()));
    let h = m.fit(&x, &y, Fit::new().epochs(2).batch_size(16).verbose(0).validation_data(&x, &y).callback(cb)).unwrap();
    let v = h.get("val_loss").unwrap();
    let want = [
        "begin".to_string(),
        "epoch 0".into(),
        "batch 0 true".into(),
        "batch 1 true".into(),
        format!("end 0 {:.6}", v[0]),
        "epoch 1".into(),
        "batch 0 true".into(),
        "batch 1 true".into(),
        format!("end 1 {:.6}", v[1]),
        "done".into(),
    ];
    assert_eq!(events, want);
}

/// Puts `name = seq[k]` into the logs at the end of the k-th epoch it sees.
struct Inject {
    name: &'static str,
    seq: Vec<f64>,
    k: std::rc::Rc<std::cell::Cell<usize>>,
}

impl Callback for Inject {
    fn on_epoch_end(&mut self, _e: usize, logs: &mut Logs, _c: &mut CallbackContext<'_>) -> keel_train::Result<()> {
        logs.insert(self.name, self.seq[self.k.get()]);
        self.k.set(self.k.get() + 1);
        Ok(())
    }
}

/// ModelCheckpoint's best value carries over to a later `fit` (Keras): a worse epoch in
/// the second run does not overwrite the best file.
#[test]
fn model_checkpoint_keeps_its_best_across_fit_calls() {
    let (x, y) = blobs(1, 32);
    let mut m = mlp(0);
    m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let dir = test_dir("best_across_fits");
    let path = dir.join("best.keel");
    let mut ck = ModelCheckpoint::new(path.to_str().unwrap()).monitor("score").save_best_only(true);
    let k = std::rc::Rc::new(std::cell::Cell::new(0));
    let inject = || Inject { name: "score", seq: vec![0.5, 0.4, 0.9, 0.3], k: k.clone() };
    m.fit(&x, &y, Fit::new().epochs(2).verbose(0).callback(inject()).callback(&mut ck)).unwrap();
    m.fit(&x, &y, Fit::new().epochs(1).verbose(0).callback(inject()).callback(&mut ck)).unwrap();
    assert_eq!((ck.saved_paths().len(), ck.best()), (2, 0.4));
    m.fit(&x, &y, Fit::new().epochs(1).verbose(0).callback(inject()).callback(&mut ck)).unwrap();
    assert_eq!((ck.saved_paths().len(), ck.best()), (3, 0.3));
}

/// A checkpoint saved by a resumed run holds every epoch's history, the earlier run's too.
#[test]
fn a_resumed_runs_checkpoint_keeps_the_whole_history() {
    let (x, y) = blobs(1, 32);
    let dir = test_dir("resumed_history");
    let p = dir.join("ck.keel");
    let mut m = mlp(0);
    m.compile(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let h1 =
        m.fit(&x, &y, Fit::new().epochs(2).verbose(0).callback(ModelCheckpoint::new(p.to_str().unwrap()))).unwrap();
    let mut m2 = mlp(0);
    m2.compile(SGD::new(0.1), Loss::BinaryCrossentropy, NO_METRICS).unwrap();
    let ck = m2.load_checkpoint(&p).unwrap();
    let h2 = m2
        .fit(
            &x,
            &y,
            Fit::new().epochs(4).verbose(0).resume_from(&ck).callback(ModelCheckpoint::new(p.to_str().unwrap())),
        )
        .unwrap();
    // fit returns its own epochs (Keras); the checkpoint holds them all
    assert_eq!(h2.epoch, [2, 3]);
    let ck2 = keel_train::Checkpoint::load(&p).unwrap();
    assert_eq!((ck2.epoch, &ck2.history.epoch[..]), (4, &[0, 1, 2, 3][..]));
    let mut all = h1.clone();
    all.extend(&h2);
    assert_eq!(ck2.history, all);
}

/// Mode::Auto reads the metric's name at the end of a log name, so an output or layer
/// name that happens to contain "r2" or "recall" does not flip a loss to "higher is better".
#[test]
fn auto_mode_reads_the_metric_name_at_the_end() {
    for up in [
        "accuracy",
        "val_accuracy",
        "class_accuracy",
        "val_sparse_categorical_accuracy",
        "auc_1",
        "val_recall",
        "r2_score",
        "f1_score",
        "val_head_precision",
        "val_AUC",
        "cosine_similarity",
        "val_mean_io_u",
        "binary_io_u_1",
        "val_recall_at_precision",
        "specificity_at_sensitivity",
    ] {
        assert!(Mode::Auto.maximizes(up), "{up}");
    }
    for down in [
        "loss",
        "val_loss",
        "val_decoder2_mean_absolute_error",
        "val_accel_mean_squared_error",
        "val_recall_head_mean_squared_error",
        "val_layer2_mae",
        "class_loss",
        "mse_1",
        "val_MAE",
        "false_positives",
        "val_kl_divergence",
    ] {
        assert!(!Mode::Auto.maximizes(down), "{down}");
    }
}

/// A callback that fails `fit` after epoch `at`, as a crash or a preemption would end it.
struct CrashAfter(usize);

impl Callback for CrashAfter {
    fn on_epoch_end(
        &mut self,
        epoch: usize,
        _logs: &mut Logs,
        _ctx: &mut CallbackContext<'_>,
    ) -> keel_train::Result<()> {
        if epoch == self.0 {
            return Err(keel_train::Error::invalid("fit", "simulated crash"));
        }
        Ok(())
    }
}

/// `mlp` with dropout and no input shape: built by its first batch.
fn unbuilt_mlp() -> keel_train::Sequential {
    let mut m = keel_train::Sequential::with_seed(4);
    m.add(keel_nn::Dense::new(16).activation(keel_nn::Activation::Relu));
    m.add(keel_nn::Dropout::new(0.3));
    m.add(keel_nn::Dense::new(1).activation(keel_nn::Activation::Sigmoid));
    m.compile(Adam::new(0.02), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    m
}

#[test]
fn backup_and_restore_resumes_a_crashed_run_where_it_stopped() {
    let dir = test_dir("backup");
    let (x, y) = blobs(3, 80);
    let (vx, vy) = blobs(4, 20);
    let fit = || Fit::new().epochs(5).batch_size(16).seed(9).verbose(0).validation_data(&vx, &vy);

    let mut whole = unbuilt_mlp();
    let h_whole = whole.fit(&x, &y, fit()).unwrap();

    let backup = BackupAndRestore::new(dir.join("bk"));
    let mut first = unbuilt_mlp();
    let err = first.fit(&x, &y, fit().callback(backup.clone()).callback(CrashAfter(2))).unwrap_err();
    assert!(err.to_string().contains("simulated crash"), "{err}");
    assert!(backup.path().exists(), "the failed run leaves its backup");

    // a new process: a fresh, unbuilt model and the same fit call
    let mut again = unbuilt_mlp();
    let h = again.fit(&x, &y, fit().callback(backup.clone())).unwrap();
    assert_eq!(h.epoch, vec![3, 4], "epochs 0-2 were done before the crash");
    assert_eq!(weight_bits(again.network()), weight_bits(whole.network()), "same weights as the uninterrupted run");
    assert_eq!(h.get("val_loss").unwrap(), &h_whole.get("val_loss").unwrap()[3..]);
    assert!(!backup.path().exists(), "a finished run deletes its backup");

    // kept on request, and then a finished run's backup resumes to nothing left to do
    let mut kept = unbuilt_mlp();
    kept.fit(&x, &y, fit().callback(backup.clone().delete_checkpoint(false))).unwrap();
    assert!(backup.path().exists());
    let mut done = unbuilt_mlp();
    let h = done.fit(&x, &y, fit().callback(backup.clone().delete_checkpoint(false))).unwrap();
    assert!(h.epoch.is_empty(), "{:?}", h.epoch);
    assert_eq!(weight_bits(done.network()), weight_bits(whole.network()));
}

#[test]
fn backup_and_restore_refuses_a_backup_it_cannot_resume() {
    let dir = test_dir("backup-bad");
    let (x, y) = blobs(3, 40);
    let backup = BackupAndRestore::new(dir.join("bk")).delete_checkpoint(false);
    unbuilt_mlp().fit(&x, &y, Fit::new().epochs(2).seed(1).verbose(0).callback(backup.clone())).unwrap();
    // another seed would shuffle other batches: refused, and the file is left alone
    let before = std::fs::read(backup.path()).unwrap();
    let e = unbuilt_mlp().fit(&x, &y, Fit::new().epochs(3).seed(2).verbose(0).callback(backup.clone())).unwrap_err();
    let e = e.to_string();
    assert!(e.contains("seed 1") && e.contains("seed 2") && e.contains("backup.ckpt"), "{e}");
    assert_eq!(std::fs::read(backup.path()).unwrap(), before);
    // a truncated backup is a clear error, not a fresh start over it
    std::fs::write(backup.path(), &before[..before.len() / 2]).unwrap();
    let e = unbuilt_mlp().fit(&x, &y, Fit::new().epochs(3).seed(1).verbose(0).callback(backup.clone())).unwrap_err();
    assert!(e.to_string().contains("backup.ckpt") && e.to_string().contains("delete it"), "{e}");
    std::fs::remove_file(backup.path()).unwrap();
    // a model of another shape: the weights do not fit, nothing is trained
    let mut other = keel_train::Sequential::with_seed(4);
    other.add(keel_nn::Dense::new(3).activation(keel_nn::Activation::Relu));
    other.add(keel_nn::Dense::new(1).activation(keel_nn::Activation::Sigmoid));
    other.compile(Adam::new(0.02), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    unbuilt_mlp().fit(&x, &y, Fit::new().epochs(2).seed(1).verbose(0).callback(backup.clone())).unwrap();
    let e = other.fit(&x, &y, Fit::new().epochs(3).seed(1).verbose(0).callback(backup.clone())).unwrap_err();
    assert!(e.to_string().contains("backup.ckpt"), "{e}");
}
