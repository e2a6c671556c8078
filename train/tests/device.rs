//! Training on a device: `KerasModel::to_device`, CPU vs CUDA loss trajectories, optimizer
//! state following a moved model, weights saved from the GPU.
//!
//! The GPU tests need keel-tensor's `cuda` feature (`--features cuda`), a driver, a GPU and
//! NVRTC; without them they print why they skip and pass, and fail under `KEEL_REQUIRE_CUDA=1`.

mod common;

use keel_nn::{Activation, Conv2D, Dense, Flatten, Loss, MaxPooling2D, Network};
use keel_optim::Adam;
use keel_tensor::{DType, Device, Tensor};
use keel_train::{Fit, MetricSpec, Sequential};

/// A small seed-CNN-like model on 10x10x1 images, 3 classes.
fn cnn(seed: u64) -> Sequential {
    let mut m = Sequential::with_seed(seed);
    m.add(Conv2D::new(4, (3, 3)).activation(Activation::Relu).input_shape([10, 10, 1]));
    m.add(MaxPooling2D::new((2, 2)));
    m.add(Flatten::new());
    m.add(Dense::new(8).activation(Activation::Relu));
    m.add(Dense::new(3).activation(Activation::Softmax));
    m.compile(Adam::new(0.01), Loss::CategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
    m
}

/// Images whose class is the brightest third of the picture (learnable in a few epochs).
fn images(n: usize) -> (Tensor, Tensor) {
    let x = Tensor::rand_uniform(7, 0.0, 1.0, (n, 10, 10, 1), DType::F32, &Device::Cpu).unwrap();
    let thirds = x.reshape((n, 100)).unwrap().narrow(1, 0, 99).unwrap().reshape((n, 3, 33)).unwrap();
    let label = thirds.sum(&[2], false).unwrap().argmax(-1, false).unwrap().reshape([n]).unwrap();
    (x, label.one_hot(3, DType::F32).unwrap())
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

#[track_caller]
fn close_trajectories(what: &str, a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(rel(*x, *y) < tol, "{what}: epoch {i}: {x} vs {y} (relative {:.2e} >= {tol:.0e})", rel(*x, *y));
    }
}

fn rel_norm(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
    let num: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    num / b.iter().map(|y| y * y).sum::<f64>().sqrt().max(1e-300)
}

#[test]
fn the_default_device_is_the_cpu_and_moving_there_changes_nothing() {
    let mut m = cnn(0);
    assert_eq!(m.device(), Device::Cpu);
    assert_eq!(m.weights_device(), Some(Device::Cpu));
    let before = common::weight_bits(m.network());
    m.to_device(&Device::Cpu).unwrap();
    assert_eq!(common::weight_bits(m.network()), before);
    // without a usable GPU, asking for one is an error value and the model stays put
    if !keel_tensor::cuda_is_available(0) {
        assert!(Device::cuda(0).is_err());
        assert_eq!(m.device(), Device::Cpu);
    }
}

#[test]
fn cuda_training_follows_the_cpu_loss_trajectory() {
    let Some(dev) = common::gpu("cuda_training_follows_the_cpu_loss_trajectory") else { return };
    let (x, y) = images(96);
    let (vx, vy) = images(32);
    let fit = || Fit::new().epochs(6).batch_size(16).seed(3).verbose(0).validation_data(&vx, &vy);
    let mut cpu = cnn(1);
    let h_cpu = cpu.fit(&x, &y, fit()).unwrap();
    let mut gpu = cnn(1);
    gpu.to_device(&dev).unwrap();
    assert_eq!(gpu.weights_device(), Some(dev));
    let h_gpu = gpu.fit(&x, &y, fit()).unwrap();
    assert_eq!(gpu.weights_device(), Some(dev), "weights stay on the GPU");
    close_trajectories("loss", h_gpu.get("loss").unwrap(), h_cpu.get("loss").unwrap(), 1e-3);
    close_trajectories("val_loss", h_gpu.get("val_loss").unwrap(), h_cpu.get("val_loss").unwrap(), 1e-3);
    let losses = h_cpu.get("loss").unwrap();
    assert!(losses[losses.len() - 1] < losses[0], "the model learns: {losses:?}");
    for (name, w) in gpu.state_dict() {
        let e = rel_norm(&w, &cpu.state_dict()[&name]);
        assert!(e < 1e-2, "{name}: relative difference {e:.2e}");
    }
    // evaluate and predict (host in, host out)
    let (l_gpu, a_gpu) = gpu.evaluate(&vx, &vy).unwrap();
    let (l_cpu, a_cpu) = cpu.evaluate(&vx, &vy).unwrap();
    assert!(rel(l_gpu, l_cpu) < 1e-3, "evaluate: {l_gpu} vs {l_cpu}");
    assert!((a_gpu - a_cpu).abs() <= 1.0 / 32.0 + 1e-9, "accuracy {a_gpu} vs {a_cpu}");
    let p = gpu.predict(&vx, 8).unwrap();
    assert_eq!(p.device(), Device::Cpu);
    assert!(rel_norm(&p, &cpu.predict(&vx, 8).unwrap()) < 1e-3);
    // device in, device out
    assert_eq!(gpu.predict(&vx.to_device(&dev).unwrap(), 8).unwrap().device(), dev);
}

#[test]
fn data_resident_on_the_gpu_trains_like_host_data() {
    let Some(dev) = common::gpu("data_resident_on_the_gpu_trains_like_host_data") else { return };
    let (x, y) = images(64);
    let fit = || Fit::new().epochs(2).batch_size(16).seed(5).verbose(0);
    let mut a = cnn(2);
    a.to_device(&dev).unwrap();
    let ha = a.fit(&x, &y, fit()).unwrap();
    let mut b = cnn(2);
    b.to_device(&dev).unwrap();
    let hb = b.fit(&x.to_device(&dev).unwrap(), &y.to_device(&dev).unwrap(), fit()).unwrap();
    close_trajectories("loss", hb.get("loss").unwrap(), ha.get("loss").unwrap(), 1e-6);
}

/// A batch source for training, validation and evaluation of a GPU model gives the values
/// the same model gets on the CPU.
#[test]
fn batch_sources_train_validate_and_evaluate_on_the_gpu() {
    let Some(dev) = common::gpu("batch_sources_train_validate_and_evaluate_on_the_gpu") else { return };
    let (x, y) = images(64);
    let run = |on: Option<Device>| {
        let mut train = keel_data::DataLoader::from_tensors(&x, &y, 16).unwrap().shuffle(true).seed(4);
        let mut val = keel_data::DataLoader::from_tensors(&x, &y, 16).unwrap();
        let mut m = cnn(3);
        if let Some(d) = on {
            m.to_device(&d).unwrap();
        }
        let h = m.fit_source(&mut train, Fit::new().epochs(2).verbose(0).validation_source(&mut val)).unwrap();
        (h, m.evaluate_source(&mut val).unwrap())
    };
    let ((hg, eg), (hc, ec)) = (run(Some(dev)), run(None));
    for k in ["loss", "val_loss", "val_accuracy"] {
        close_trajectories(k, hg.get(k).unwrap(), hc.get(k).unwrap(), 1e-3);
    }
    for ((kg, g), (kc, c)) in eg.iter().zip(&ec) {
        assert!(kg == kc && rel(*g, *c) < 1e-3, "{kg}: {g} on CUDA vs {c} on the CPU");
    }
}

/// `fit` of a GPU model on host data copies the inputs to the GPU once and gathers every
/// batch there: it sends exactly the inputs' bytes more than a fit on inputs already on the
/// GPU (targets on the host in both, so the work is otherwise the same), not a copy of every
/// batch each epoch. Validation inputs too.
#[test]
fn fit_sends_host_inputs_to_the_gpu_once() {
    let Some(dev) = common::gpu("fit_sends_host_inputs_to_the_gpu_once") else { return };
    let (x, y) = images(64);
    let (vx, vy) = images(20);
    let bytes = |t: &Tensor| (t.elem_count() * t.dtype().size_in_bytes()) as u64;
    let sent = |x: &Tensor, vx: &Tensor| {
        let mut m = cnn(4);
        m.to_device(&dev).unwrap();
        let before = keel_tensor::cuda::bytes_to_device(dev);
        let h = m.fit(x, &y, Fit::new().epochs(3).batch_size(16).seed(2).verbose(0).validation_data(vx, &vy)).unwrap();
        (keel_tensor::cuda::bytes_to_device(dev) - before, h)
    };
    let on = |t: &Tensor| t.to_device(&dev).unwrap();
    let (host, h_host) = sent(&x, &vx);
    let (resident, h_resident) = sent(&on(&x), &on(&vx));
    assert_eq!(host - resident, bytes(&x) + bytes(&vx), "{host} vs {resident} bytes");
    for key in ["loss", "val_loss", "accuracy"] {
        assert_eq!(h_host.get(key), h_resident.get(key), "{key}: the same batches, so the same training");
    }
}

/// Under mixed_bfloat16 `fit` stages host inputs in BF16 (`input_dtype`): one cast launch
/// per staged tensor and call, none per batch. Against the same inputs given in BF16 (no
/// cast at all): 2 launches more (`x` and the validation `x`), the same training bit for
/// bit. Inputs already on the GPU in F32 are cast once too; `evaluate` and `predict` stage
/// `x` the same way.
#[test]
fn mixed_bfloat16_fit_casts_staged_inputs_once() {
    let Some(dev) = common::gpu("mixed_bfloat16_fit_casts_staged_inputs_once") else { return };
    let (x, y) = images(64);
    let (vx, vy) = images(20);
    let run = |x: &Tensor, vx: &Tensor| {
        let mut m = cnn(4);
        m.set_dtype_policy(keel_nn::mixed_precision::DTypePolicy::MixedBFloat16);
        m.compile(Adam::new(0.01), Loss::CategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m.to_device(&dev).unwrap();
        let fit = || Fit::new().epochs(3).batch_size(16).seed(2).verbose(0).validation_data(vx, &vy);
        m.fit(x, &y, fit()).unwrap(); // builds the model and compiles the kernels
        let before = keel_tensor::cuda::launches(dev);
        let h = m.fit(x, &y, fit()).unwrap();
        let fit_launches = keel_tensor::cuda::launches(dev) - before;
        let before = keel_tensor::cuda::launches(dev);
        let e = m.evaluate_all(vx, &vy, 8).unwrap();
        let p = m.predict(vx, 8).unwrap().to_device(&Device::Cpu).unwrap().to_vec::<f32>().unwrap();
        ((fit_launches, keel_tensor::cuda::launches(dev) - before), (h, e, p))
    };
    let bf16 = |t: &Tensor| t.to_dtype(DType::BF16).unwrap();
    let on = |t: &Tensor| t.to_device(&dev).unwrap();
    let (f32_host, (h, e, p)) = run(&x, &vx);
    let (bf16_host, (h_bf16, e_bf16, p_bf16)) = run(&bf16(&x), &bf16(&vx));
    let (f32_device, (h_device, e_device, p_device)) = run(&on(&x), &on(&vx));
    assert_eq!(f32_host.0, bf16_host.0 + 2, "fit: {f32_host:?} vs {bf16_host:?} launches");
    assert_eq!(f32_device.0, bf16_host.0 + 2, "fit: {f32_device:?} vs {bf16_host:?} launches");
    // evaluate and predict: one cast each
    assert_eq!(f32_host.1, bf16_host.1 + 2, "evaluate and predict: {f32_host:?} vs {bf16_host:?} launches");
    assert_eq!(f32_device.1, bf16_host.1 + 2, "evaluate and predict: {f32_device:?} vs {bf16_host:?}");
    for key in ["loss", "val_loss", "accuracy"] {
        assert_eq!(h_bf16.get(key), h.get(key), "{key}: BF16 inputs");
        assert_eq!(h_device.get(key), h.get(key), "{key}: inputs on the GPU");
    }
    assert_eq!((&e_bf16, &p_bf16), (&e, &p), "evaluate and predict: BF16 inputs");
    assert_eq!((&e_device, &p_device), (&e, &p), "evaluate and predict: inputs on the GPU");
}

/// Training on a GPU gives the same bits every run, like the CPU: no kernel adds floats
/// with atomics (the split reductions and split-K GEMMs combine their partials in a fixed
/// order; an Embedding's gradient sorts its tokens), Dropout draws from the seeded
/// counter-based generator. Two fits from the same seed: the same History and weights,
/// for a CNN with BatchNormalization and Dropout and for an Embedding (tokens repeated
/// in every batch) + LSTM text model, under float32 and mixed_bfloat16. On the emulator,
/// which runs blocks one at a time, this holds trivially; on a GPU it is the check.
#[test]
fn cuda_training_is_bit_reproducible() {
    use keel_nn::mixed_precision::DTypePolicy;
    use keel_nn::{BatchNormalization, Dropout, Embedding, LSTM};
    let Some(dev) = common::gpu("cuda_training_is_bit_reproducible") else { return };
    let (x, y) = images(48);
    let ids = Tensor::rand_uniform(9, 0.0, 30.0, (48, 12), DType::F32, &Device::Cpu).unwrap();
    let ids = ids.to_dtype(DType::I64).unwrap();
    let labels = ids.sum(&[1], false).unwrap().to_dtype(DType::F32).unwrap();
    let labels = labels.div_scalar(12.0 * 10.0).unwrap().to_dtype(DType::I64).unwrap(); // classes 0..=2
    for policy in [DTypePolicy::Float32, DTypePolicy::MixedBFloat16] {
        let run_cnn = || {
            let mut m = Sequential::with_seed(6);
            m.add(Conv2D::new(8, (3, 3)).activation(Activation::Relu).input_shape([10, 10, 1]));
            m.add(BatchNormalization::new());
            m.add(MaxPooling2D::new((2, 2)));
            m.add(Flatten::new());
            m.add(Dropout::new(0.3));
            m.add(Dense::new(3).activation(Activation::Softmax));
            m.set_dtype_policy(policy);
            m.compile(Adam::new(0.01), Loss::CategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
            m.to_device(&dev).unwrap();
            let h = m.fit(&x, &y, Fit::new().epochs(2).batch_size(16).seed(8).verbose(0)).unwrap();
            (h.get("loss").unwrap().to_vec(), common::weight_bits(m.network()))
        };
        let run_text = || {
            let mut m = Sequential::with_seed(7);
            m.add(Embedding::new(30, 8).input_shape([12]));
            m.add(LSTM::new(6));
            m.add(Dense::new(3).activation(Activation::Softmax));
            m.set_dtype_policy(policy);
            m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
            m.to_device(&dev).unwrap();
            let h = m.fit(&ids, &labels, Fit::new().epochs(2).batch_size(16).seed(8).verbose(0)).unwrap();
            (h.get("loss").unwrap().to_vec(), common::weight_bits(m.network()))
        };
        for (what, run) in [("cnn", &run_cnn as &dyn Fn() -> _), ("embedding + lstm", &run_text)] {
            let (first, second) = (run(), run());
            assert_eq!(first.0, second.0, "{what} ({policy:?}): losses differ between runs");
            for ((name, a), (_, b)) in first.1.iter().zip(&second.1) {
                assert!(a == b, "{what} ({policy:?}): {name} differs between runs");
            }
        }
    }
}

#[test]
fn optimizer_state_follows_a_model_moved_mid_training() {
    let Some(dev) = common::gpu("optimizer_state_follows_a_model_moved_mid_training") else { return };
    let (x, y) = images(64);
    let fit = |epochs, initial| Fit::new().epochs(epochs).initial_epoch(initial).batch_size(16).seed(9).verbose(0);
    let mut cpu = cnn(4);
    let h_cpu = cpu.fit(&x, &y, fit(4, 0)).unwrap();
    let mut moved = cnn(4);
    moved.fit(&x, &y, fit(2, 0)).unwrap(); // Adam's moments now live on the CPU
    moved.to_device(&dev).unwrap();
    let h_moved = moved.fit(&x, &y, fit(4, 2)).unwrap();
    close_trajectories("loss", h_moved.get("loss").unwrap(), &h_cpu.get("loss").unwrap()[2..], 1e-3);
    // and back to the CPU
    moved.to_device(&Device::Cpu).unwrap();
    moved.fit(&x, &y, fit(5, 4)).unwrap();
    assert_eq!(moved.weights_device(), Some(Device::Cpu));
}

#[test]
fn weights_saved_from_the_gpu_load_on_the_cpu() {
    let Some(dev) = common::gpu("weights_saved_from_the_gpu_load_on_the_cpu") else { return };
    let dir = common::test_dir("device-weights");
    let path = dir.join("w.safetensors");
    let mut g = cnn(6);
    g.to_device(&dev).unwrap();
    let (x, y) = images(32);
    g.fit(&x, &y, Fit::new().epochs(1).batch_size(16).verbose(0)).unwrap();
    g.save_weights(&path).unwrap();
    let c = cnn(7);
    c.load_weights(&path).unwrap();
    assert_eq!(common::weight_bits(c.network()), common::weight_bits(g.network()));
    // and a CPU file loads into a GPU model, staying on the GPU
    let mut g2 = cnn(8);
    g2.to_device(&dev).unwrap();
    g2.load_weights(&path).unwrap();
    assert_eq!(g2.weights_device(), Some(dev));
    assert_eq!(common::weight_bits(g2.network()), common::weight_bits(g.network()));
    let _ = std::fs::remove_dir_all(dir);
}

/// Host waits for the GPU during `fit` of the CNN on host data, `loss` with `y` as targets.
fn waits_during_fit(dev: Device, loss: Loss, y: &Tensor, steps_per_execution: usize) -> u64 {
    let (x, _) = images(96);
    let mut m = cnn(1);
    m.compile(Adam::new(0.01), loss, &[MetricSpec::Accuracy]).unwrap();
    m.to_device(&dev).unwrap();
    let fit = || Fit::new().epochs(2).batch_size(16).seed(3).verbose(0).steps_per_execution(steps_per_execution);
    m.fit(&x, y, fit()).unwrap(); // builds the model and compiles the kernels
    let before = keel_tensor::cuda::host_waits(dev);
    m.fit(&x, y, fit()).unwrap();
    keel_tensor::cuda::host_waits(dev) - before
}

#[test]
fn training_steps_do_not_wait_for_the_gpu() {
    let Some(dev) = common::gpu("training_steps_do_not_wait_for_the_gpu") else { return };
    let (_, y) = images(96);
    let labels = y.argmax(-1, false).unwrap().reshape([96]).unwrap();
    for (loss, y) in [(Loss::CategoricalCrossentropy, &y), (Loss::SparseCategoricalCrossentropy, &labels)] {
        // 2 epochs of 6 batches: one execution per epoch, which reads its losses and its
        // predictions (for the accuracy) in one copy each
        let waits = waits_during_fit(dev, loss, y, 6);
        assert_eq!(waits, 2 * 2, "{loss:?}: the host waited for the GPU {waits} times in 2 executions");
        // reading after every step waits twice per step
        let waits = waits_during_fit(dev, loss, y, 1);
        assert_eq!(waits, 2 * 6 * 2, "{loss:?}: {waits} waits in 12 steps");
    }
}
