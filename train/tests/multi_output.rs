//! Models with several outputs (Keras's `Model(inputs, [out_a, out_b])`): one loss per
//! output with `loss_weights`, a target per output, logs per output, `predict_outputs`.

use keel_nn::{Activation, Dense, Input, LayerExt, Loss, LossFn, Model, Network};
use keel_optim::{Adam, SGD};
use keel_tensor::{DType, Device, Tensor};
use keel_train::{Fit, KerasModel, Losses, MetricSpec, NO_METRICS};

/// x in [-1, 1]^3; class = 1 when x0 + x1 > 0 (I64 indices); value = x0 - 2 x2.
fn data(seed: u64, n: usize) -> (Tensor, Tensor, Tensor) {
    let x = Tensor::rand_uniform(seed, -1.0, 1.0, (n, 3), DType::F32, &Device::Cpu).unwrap();
    let v = x.to_vec::<f32>().unwrap();
    let class: Vec<i64> = v.chunks(3).map(|r| (r[0] + r[1] > 0.0) as i64).collect();
    let value: Vec<f32> = v.chunks(3).map(|r| r[0] - 2.0 * r[2]).collect();
    (x, Tensor::from_vec(class, n).unwrap(), Tensor::from_vec(value, (n, 1)).unwrap())
}

/// A shared trunk with a 2-class softmax head named "class" and a linear head named "value".
fn two_heads(seed: u64) -> KerasModel<Model> {
    let inp = Input::new([3]);
    let h = Dense::new(16).activation(Activation::Relu).call(&inp).unwrap();
    let class = Dense::new(2).activation(Activation::Softmax).with_name("class").call(&h).unwrap();
    let value = Dense::new(1).with_name("value").call(&h).unwrap();
    KerasModel::from_network(Model::with_seed(&[inp], &[class, value], seed).unwrap())
}

fn weights_of(m: &KerasModel<Model>, layer: &str) -> Vec<Vec<f32>> {
    m.network()
        .named_weights()
        .into_iter()
        .filter(|w| w.name.starts_with(layer))
        .map(|w| w.param.value().to_vec::<f32>().unwrap())
        .collect()
}

#[test]
fn two_outputs_train_with_a_loss_each_and_log_each() {
    let (x, class, value) = data(1, 96);
    let mut m = two_heads(0);
    assert_eq!(m.network().output_names(), ["class", "value"]);
    m.compile(
        Adam::new(0.02),
        Losses::from([Loss::SparseCategoricalCrossentropy, Loss::MeanSquaredError]).loss_weights([1.0, 0.5]),
        &[("class", "accuracy"), ("value", "mae")],
    )
    .unwrap();
    let h =
        m.fit(&x, [&class, &value], Fit::new().epochs(60).batch_size(32).validation_split(0.25).verbose(0)).unwrap();
    let keys: Vec<&str> = h.keys().collect();
    for k in ["loss", "class_loss", "value_loss", "class_accuracy", "value_mae", "val_loss", "val_class_loss"] {
        assert!(keys.contains(&k), "{k} not in {keys:?}");
    }
    assert!(!keys.contains(&"value_accuracy") && !keys.contains(&"class_mae"), "{keys:?}");
    // both heads learned
    assert!(h.last("class_accuracy").unwrap() > 0.9, "{:?}", h.get("class_accuracy"));
    assert!(h.last("value_loss").unwrap() < 0.1 * h.get("value_loss").unwrap()[0], "{:?}", h.get("value_loss"));
    // the logged total is the weighted sum of the logged output losses (no penalties here)
    let logs = m.evaluate_all(&x, [&class, &value], 32).unwrap();
    let names: Vec<&str> = logs.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(names, ["loss", "class_loss", "value_loss", "class_accuracy", "value_mae"]);
    let (total, lc, lv) = (logs[0].1, logs[1].1, logs[2].1);
    assert!((total - (lc + 0.5 * lv)).abs() < 1e-5 * total.max(1.0), "{total} vs {lc} + 0.5 * {lv}");
    // each output's loss is the loss of that output's predictions, computed on its own
    let p = m.predict_outputs(&x, 20).unwrap();
    assert_eq!((p[0].dims(), p[1].dims()), (&[96, 2][..], &[96, 1][..]));
    let direct = Loss::MeanSquaredError
        .compute(&keel_autograd::Var::constant(p[1].clone()), &value, None)
        .unwrap()
        .value()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!((direct - lv).abs() < 1e-5 * direct.max(1e-3), "{direct} vs {lv}");
    // predict_outputs is the network's own forward
    let own = m.network().predict(std::slice::from_ref(&x)).unwrap();
    assert_eq!(p[1].to_vec::<f32>().unwrap(), own[1].to_vec::<f32>().unwrap());
    // evaluate's second value follows Keras's order: the first output's loss
    assert_eq!(m.evaluate(&x, [&class, &value]).unwrap().1, lc);
}

/// A loss weight of 0 leaves that head untouched (its gradient is zero) while the
/// trunk and the other head train: the weights reach the gradients, not only the logs.
#[test]
fn a_zero_loss_weight_does_not_train_its_head() {
    let (x, class, value) = data(2, 64);
    let mut m = two_heads(3);
    m.compile(
        SGD::new(0.1),
        Losses::from([Loss::SparseCategoricalCrossentropy, Loss::MeanSquaredError]).loss_weights([1.0, 0.0]),
        NO_METRICS,
    )
    .unwrap();
    let (value0, class0) = (weights_of(&m, "value"), weights_of(&m, "class"));
    assert!(!value0.is_empty() && !class0.is_empty());
    let h = m.fit(&x, [&class, &value], Fit::new().epochs(3).batch_size(16).verbose(0)).unwrap();
    assert_eq!(weights_of(&m, "value"), value0);
    assert_ne!(weights_of(&m, "class"), class0);
    // the unweighted value loss is still logged, and is not part of the total
    let (l, lc, lv) = (h.last("loss").unwrap(), h.last("class_loss").unwrap(), h.last("value_loss").unwrap());
    assert!(lv > 0.0 && (l - lc).abs() < 1e-6, "{l} {lc} {lv}");
}

/// Two outputs trained together with weights 1 and 1 take the same steps as a model whose
/// single output is the two heads side by side would with the summed loss: checked by
/// training with loss [mse, mse] and comparing with the hand-computed SGD step.
#[test]
fn one_sgd_step_matches_the_summed_loss_gradient() {
    let (x, _, value) = data(4, 8);
    let target_b = value.mul_scalar(-1.0).unwrap();
    let build = || {
        let inp = Input::new([3]);
        let a = Dense::new(1).with_name("a").call(&inp).unwrap();
        let b = Dense::new(1).with_name("b").call(&inp).unwrap();
        KerasModel::from_network(Model::with_seed(&[inp], &[a, b], 9).unwrap())
    };
    let mut m = build();
    m.compile(
        SGD::new(0.1),
        Losses::from([Loss::MeanSquaredError, Loss::MeanSquaredError]).loss_weights([2.0, 0.5]),
        NO_METRICS,
    )
    .unwrap();
    // by hand: d/dW of w * mean((x W + b - y)^2) = w * 2/n x^T (x W + b - y)
    let before = m.network().predict(std::slice::from_ref(&x)).unwrap();
    let (ka, kb) = (weights_of(&m, "a"), weights_of(&m, "b"));
    m.fit(&x, [&value, &target_b], Fit::new().epochs(1).batch_size(8).shuffle(false).verbose(0)).unwrap();
    let xs = x.to_vec::<f32>().unwrap();
    for ((name, k0), (pred, y, w)) in
        [("a", &ka), ("b", &kb)].into_iter().zip([(&before[0], &value, 2.0f64), (&before[1], &target_b, 0.5)])
    {
        let (p, t) = (pred.to_vec::<f32>().unwrap(), y.to_vec::<f32>().unwrap());
        let r: Vec<f64> = p.iter().zip(&t).map(|(p, t)| (*p - *t) as f64).collect();
        let k1 = weights_of(&m, name);
        for j in 0..3 {
            let g: f64 = (0..8).map(|i| xs[i * 3 + j] as f64 * r[i]).sum::<f64>() * 2.0 / 8.0 * w;
            let want = k0[0][j] as f64 - 0.1 * g;
            assert!((k1[0][j] as f64 - want).abs() < 1e-5, "{name} kernel[{j}]: {} vs {want}", k1[0][j]);
        }
        let gb: f64 = r.iter().sum::<f64>() * 2.0 / 8.0 * w;
        assert!((k1[1][0] as f64 - (k0[1][0] as f64 - 0.1 * gb)).abs() < 1e-5, "{name} bias");
    }
}

#[test]
fn one_loss_and_flat_metrics_apply_to_every_output() {
    let (x, _, value) = data(5, 32);
    let inp = Input::new([3]);
    let a = Dense::new(1).with_name("a").call(&inp).unwrap();
    let b = Dense::new(1).with_name("b").call(&inp).unwrap();
    let mut m = KerasModel::from_network(Model::new(&[inp], &[a, b]).unwrap());
    m.compile(SGD::new(0.01), Loss::MeanSquaredError, &[MetricSpec::Mae, MetricSpec::Mae]).unwrap();
    let logs = m.evaluate_all(&x, [&value, &value], 8).unwrap();
    let names: Vec<&str> = logs.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "loss",
            "a_loss",
            "b_loss",
            "a_mean_absolute_error",
            "a_mean_absolute_error_1",
            "b_mean_absolute_error",
            "b_mean_absolute_error_1"
        ]
    );
    assert!((logs[0].1 - logs[1].1 - logs[2].1).abs() < 1e-6);
}

#[test]
fn several_outputs_errors_say_what_to_give() {
    let (x, class, value) = data(6, 16);
    let mut m = two_heads(0);
    let two = || Losses::from([Loss::SparseCategoricalCrossentropy, Loss::MeanSquaredError]);
    let e = |r: keel_train::Result<()>| r.unwrap_err().to_string();
    let three = Losses::from(vec![LossFn::from(Loss::MeanSquaredError); 3]);
    assert!(e(m.compile(SGD::new(0.1), three, NO_METRICS)).contains("3 losses were given for a model with 2 output(s)"));
    assert!(e(m.compile(SGD::new(0.1), two().loss_weights([1.0]), NO_METRICS)).contains("1 loss_weights"));
    assert!(e(m.compile(SGD::new(0.1), two().loss_weights([1.0, f64::NAN]), NO_METRICS)).contains("finite"));
    let msg = e(m.compile(SGD::new(0.1), two(), &[("klass", "accuracy")]));
    assert!(msg.contains("\"klass\"") && msg.contains("[\"class\", \"value\"]"), "{msg}");
    m.compile(SGD::new(0.1), two(), NO_METRICS).unwrap();
    let msg = m.fit(&x, &class, Fit::new().verbose(0)).unwrap_err().to_string();
    assert!(msg.contains("2 output(s) [\"class\", \"value\"] but 1 y"), "{msg}");
    let short = value.narrow(0, 0, 10).unwrap();
    let msg = m.fit(&x, [&class, &short], Fit::new().verbose(0)).unwrap_err().to_string();
    assert!(msg.contains("y[1] has 10 samples"), "{msg}");
    let cw = [(0, 1.0), (1, 2.0)].into_iter().collect();
    let msg = m.fit(&x, [&class, &value], Fit::new().class_weight(cw).verbose(0)).unwrap_err().to_string();
    assert!(msg.contains("class_weight is only supported for a model with a single output"), "{msg}");
    let msg = m.fit(&x, [&class, &value], Fit::new().validation_data(&x, &class).verbose(0)).unwrap_err().to_string();
    assert!(msg.contains("validation_data") && msg.contains("but 1 y"), "{msg}");
    let mut loader = keel_data::DataLoader::from_tensors(&x, &class, 8).unwrap();
    let msg = m.fit_source(&mut loader, Fit::new().verbose(0)).unwrap_err().to_string();
    assert!(msg.contains("gives one y, but the model has 2 outputs"), "{msg}");
    let msg =
        m.fit(&x, [&class, &value], Fit::new().verbose(0).validation_source(&mut loader)).unwrap_err().to_string();
    assert!(msg.contains("validation_source gives one y"), "{msg}");
    assert!(m.evaluate_source(&mut loader).unwrap_err().to_string().contains("2 outputs"));
    let msg = m.predict(&x, 8).unwrap_err().to_string();
    assert!(msg.contains("predict_outputs"), "{msg}");
    // a sample weight weights every output's loss
    let w = Tensor::from_vec((0..16).map(|i| (i % 2) as f32).collect::<Vec<_>>(), 16).unwrap();
    m.fit(&x, [&class, &value], Fit::new().sample_weight(&w).epochs(1).verbose(0)).unwrap();
}

/// The same output given twice gets Keras's suffix, so each keeps its own logs.
#[test]
fn an_output_given_twice_is_named_twice() {
    let inp = Input::new([3]);
    let a = Dense::new(1).with_name("a").call(&inp).unwrap();
    let m = Model::new(std::slice::from_ref(&inp), &[a.clone(), a, inp.clone()]).unwrap();
    assert_eq!(m.output_names(), ["a", "a_1", "input_1"]);
}
