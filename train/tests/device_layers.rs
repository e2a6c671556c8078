//! Every layer family, activation and loss trains on CUDA as it does on the CPU.
//!
//! Each case builds the same seeded model twice, trains one copy on the CPU and one moved
//! to GPU 0 (two epochs, same shuffling), and requires the per-epoch loss trajectories to
//! agree to 1e-3 relative: forward, backward and the optimizer all run on the device.
//! Without a usable GPU each test prints why it skips; under `KEEL_REQUIRE_CUDA=1` it
//! fails instead. CI runs it on the CUDA emulator (`tools/cuda-emu`).

mod common;

use keel_nn::mixed_precision::DTypePolicy;
use keel_nn::{
    Activation, ActivationLayer, AveragePooling1D, AveragePooling2D, BatchNormalization, Bidirectional, Conv1D,
    Conv1DPadding, Conv2D, Dense, Dropout, Embedding, Flatten, GlobalAveragePooling1D, GlobalAveragePooling2D,
    GlobalMaxPooling1D, GlobalMaxPooling2D, LayerNormalization, Loss, MaxPooling1D, MaxPooling2D, Network, Reshape,
    SimpleRNN, GRU, LSTM,
};
use keel_optim::{Adam, Sgd};
use keel_tensor::{DType, Device, Padding, Tensor};
use keel_train::{Fit, KerasModel, MetricSpec, Sequential};

fn uniform(seed: u64, shape: &[usize]) -> Tensor {
    Tensor::rand_uniform(seed, -1.0, 1.0, shape.to_vec(), DType::F32, &Device::Cpu).unwrap()
}

/// Trains `build()` on the CPU and on `dev` and compares the loss trajectories (to 1e-3).
fn agree<N: Network>(what: &str, dev: &Device, build: impl Fn() -> KerasModel<N>, x: &Tensor, y: &Tensor) {
    agree_within(what, dev, 1e-3, build, x, y)
}

/// [`agree`] with losses within `tol` (relative) and predictions within `10 * tol`.
fn agree_within<N: Network>(
    what: &str,
    dev: &Device,
    tol: f64,
    build: impl Fn() -> KerasModel<N>,
    x: &Tensor,
    y: &Tensor,
) {
    agree_waiting(what, dev, (tol, 2), build, x, y)
}

/// [`agree_within`] allowing `max_waits` host waits in the one-execution epoch (a
/// LossScaleOptimizer reads back whether its gradients are finite at every step).
fn agree_waiting<N: Network>(
    what: &str,
    dev: &Device,
    (tol, max_waits): (f64, u64),
    build: impl Fn() -> KerasModel<N>,
    x: &Tensor,
    y: &Tensor,
) {
    let fit = || Fit::new().epochs(2).batch_size(16).seed(11).verbose(0);
    let mut cpu = build();
    let h_cpu = cpu.fit(x, y, fit()).unwrap_or_else(|e| panic!("{what} on the CPU: {e}"));
    let mut on_gpu = build();
    on_gpu.to_device(dev).unwrap();
    let h_gpu = on_gpu.fit(x, y, fit()).unwrap_or_else(|e| panic!("{what} on CUDA: {e}"));
    assert_eq!(on_gpu.weights_device(), Some(*dev), "{what}: weights left the GPU");
    let (a, b) = (h_gpu.get("loss").unwrap(), h_cpu.get("loss").unwrap());
    for (i, (g, c)) in a.iter().zip(b).enumerate() {
        let rel = (g - c).abs() / c.abs().max(1e-12);
        assert!(rel < tol, "{what}: epoch {i} loss {g} on CUDA vs {c} on the CPU (relative {rel:.2e})");
    }
    let p_gpu = on_gpu.predict(x, 16).unwrap_or_else(|e| panic!("{what}: predict on CUDA: {e}"));
    let p_cpu = cpu.predict(x, 16).unwrap();
    let (p, q) = (p_gpu.to_vec_f64().unwrap(), p_cpu.to_vec_f64().unwrap());
    let num: f64 = p.iter().zip(&q).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
    let den: f64 = q.iter().map(|b| b * b).sum::<f64>().sqrt().max(1e-12);
    assert!(num / den < 10.0 * tol, "{what}: predictions differ (relative {:.2e})", num / den);
    // no layer makes a training step wait for the GPU: an epoch run as one execution
    // reads back its losses and its predictions (for the metrics), nothing else
    let before = keel_tensor::cuda::host_waits(*dev);
    let one_execution = Fit::new().epochs(1).batch_size(16).seed(12).verbose(0).steps_per_execution(usize::MAX);
    on_gpu.fit(x, y, one_execution).unwrap_or_else(|e| panic!("{what}: one execution on CUDA: {e}"));
    let waits = keel_tensor::cuda::host_waits(*dev) - before;
    assert!(
        waits <= max_waits,
        "{what}: an epoch in one execution waited for the GPU {waits} times (want at most {max_waits})"
    );
}

#[test]
fn dense_with_every_activation() {
    let Some(dev) = common::gpu("dense_with_every_activation") else { return };
    let x = uniform(1, &[48, 6]);
    let y = x.sum(&[1], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64).unwrap();
    let y = y.one_hot(2, DType::F32).unwrap();
    let build = || {
        let mut m = Sequential::with_seed(3);
        m.add(Dense::new(8).activation(Activation::Linear).input_shape([6]));
        for &a in Activation::ALL {
            if a != Activation::Linear && a != Activation::Softmax {
                m.add(Dense::new(8).activation(a));
            }
        }
        m.add(Dense::new(2).activation(Activation::Softmax));
        m.compile(Adam::new(0.01), Loss::CategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("dense, every activation", &dev, build, &x, &y);
}

#[test]
fn conv_batchnorm_pooling_dropout() {
    let Some(dev) = common::gpu("conv_batchnorm_pooling_dropout") else { return };
    let x = uniform(2, &[48, 8, 8, 2]);
    let labels = x.mean(&[1, 2, 3], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64);
    let y = labels.unwrap();
    let build = || {
        let mut m = Sequential::with_seed(4);
        m.add(Conv2D::new(4, (3, 3)).padding(Padding::Same).input_shape([8, 8, 2]));
        m.add(BatchNormalization::new());
        m.add(ActivationLayer::new(Activation::Relu));
        m.add(AveragePooling2D::new(2));
        // grouped (Keras's groups=2): one conv2d per group, joined
        m.add(Conv2D::new(6, (3, 3)).strides(1).groups(2).activation(Activation::Tanh));
        m.add(GlobalAveragePooling2D::new());
        m.add(Dropout::new(0.25));
        m.add(Dense::new(2).activation(Activation::Softmax));
        m.compile(Sgd::new(0.05).momentum(0.9), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("conv (plain and grouped) + batch norm + pooling + dropout", &dev, build, &x, &y);
}

#[test]
fn embedding_and_recurrent_layers() {
    let Some(dev) = common::gpu("embedding_and_recurrent_layers") else { return };
    let (tokens, y) = common::token_task(5, 10, &[48, 7]);
    let build = || {
        let mut m = Sequential::with_seed(5);
        m.add(Embedding::new(10, 4).input_shape([7]));
        m.add(Bidirectional::new(LSTM::new(5).return_sequences(true)));
        m.add(GRU::new(4).return_sequences(true));
        m.add(SimpleRNN::new(3));
        m.add(Dense::new(1).activation(Activation::Sigmoid));
        m.compile(Adam::new(0.01), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("embedding + LSTM/GRU/SimpleRNN + Bidirectional", &dev, build, &tokens, &y);
}

#[test]
fn conv1d_pooling_1d_and_layer_normalization() {
    let Some(dev) = common::gpu("conv1d_pooling_1d_and_layer_normalization") else { return };
    let x = uniform(8, &[48, 12, 3]);
    let y = x.mean(&[1, 2], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64).unwrap();
    let build = || {
        let mut m = Sequential::with_seed(9);
        m.add(Conv1D::new(6, 3).padding(Conv1DPadding::Causal).activation(Activation::Relu).input_shape([12, 3]));
        m.add(MaxPooling1D::new(2));
        m.add(LayerNormalization::new());
        m.add(Conv1D::new(5, 2).padding(Conv1DPadding::Same).strides(2).activation(Activation::Tanh));
        m.add(AveragePooling1D::new(2).strides(1));
        m.add(GlobalMaxPooling1D::new());
        m.add(Dense::new(2).activation(Activation::Softmax));
        m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("Conv1D + 1-D pooling + layer norm", &dev, build, &x, &y);
    let images = uniform(9, &[48, 6, 6, 2]);
    let build = || {
        let mut m = Sequential::with_seed(10);
        m.add(Conv2D::new(4, (3, 3)).input_shape([6, 6, 2]));
        m.add(LayerNormalization::new());
        m.add(keel_nn::GroupNormalization::new(2));
        m.add(LayerNormalization::new().over([1, 2, 3]));
        m.add(keel_nn::RMSNormalization::new().over([2, 3]));
        m.add(keel_nn::RMSNormalization::new().axis(1));
        m.add(GlobalMaxPooling2D::new());
        m.add(keel_nn::UnitNormalization::new(-1));
        m.add(Dense::new(2).activation(Activation::Softmax));
        m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree(
        "layer (last and all axes), group, rms and unit norm + global max pooling on images",
        &dev,
        build,
        &images,
        &y,
    );
    let build = || {
        let mut m = Sequential::with_seed(11);
        m.add(Conv1D::new(4, 3).input_shape([12, 3]));
        m.add(keel_nn::Conv1DTranspose::new(3, 3).strides(2).padding(Padding::Same).activation(Activation::Relu));
        m.add(GlobalAveragePooling1D::new());
        m.add(Dense::new(2).activation(Activation::Softmax));
        m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("Conv1D + Conv1DTranspose + global average pooling", &dev, build, &x, &y);
}

/// ZeroPadding1D/2D, Cropping1D/2D, UpSampling1D/2D (nearest and bilinear), RepeatVector and
/// Permute, composed of views, copies, concats and broadcasts, train on CUDA as on the CPU.
#[test]
fn shape_layers() {
    use keel_nn::{
        Cropping1D, Cropping2D, Interpolation, Permute, RepeatVector, UpSampling1D, UpSampling2D, ZeroPadding1D,
        ZeroPadding2D,
    };
    let Some(dev) = common::gpu("shape_layers") else { return };
    let x = uniform(9, &[48, 6, 6, 1]);
    let y = x.mean(&[1, 2, 3], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64).unwrap();
    for interpolation in [Interpolation::Nearest, Interpolation::Bilinear] {
        let build = || {
            let mut m = Sequential::with_seed(7);
            m.add(Conv2D::new(3, (3, 3)).padding(Padding::Same).activation(Activation::Relu).input_shape([6, 6, 1]));
            m.add(MaxPooling2D::new(2));
            m.add(UpSampling2D::new((2, 3)).interpolation(interpolation));
            m.add(ZeroPadding2D::new(((1, 0), (2, 1))));
            m.add(Cropping2D::new(((0, 2), (1, 3))));
            m.add(keel_nn::Conv2DTranspose::new(3, 3).strides(2).padding(Padding::Same).activation(Activation::Relu));
            m.add(Conv2D::new(2, (3, 3)).activation(Activation::Tanh));
            m.add(Flatten::new());
            m.add(Dense::new(2).activation(Activation::Softmax));
            m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
            m
        };
        agree(&format!("shape layers and Conv2DTranspose, {interpolation:?} up-sampling"), &dev, build, &x, &y);
    }
    let seq = uniform(10, &[48, 6, 2]);
    let target = seq.sum(&[1], false).unwrap();
    let build = || {
        let mut m = Sequential::with_seed(8);
        m.add(ZeroPadding1D::new((1, 2)).input_shape([6, 2]));
        m.add(Conv1D::new(3, 3).activation(Activation::Tanh));
        m.add(Cropping1D::new(1));
        m.add(UpSampling1D::new(2));
        m.add(Permute::new([2, 1]));
        m.add(Flatten::new());
        m.add(Dense::new(4));
        m.add(RepeatVector::new(3));
        m.add(Flatten::new());
        m.add(Dense::new(2));
        m.compile(Adam::new(0.01), Loss::MeanSquaredError, &[] as &[MetricSpec]).unwrap();
        m
    };
    agree("shape layers over sequences", &dev, build, &seq, &target);
}

/// The noise and augmentation layers draw the same bits on both devices (uniform draws on
/// the GPU's Philox kernel, normal ones on the host), so training agrees as for the others.
#[test]
fn noise_and_augmentation_layers() {
    use keel_nn::{
        GaussianDropout, GaussianNoise, RandomBrightness, RandomContrast, RandomFlip, SpatialDropout1D,
        SpatialDropout2D,
    };
    let Some(dev) = common::gpu("noise_and_augmentation_layers") else { return };
    let x = uniform(12, &[48, 6, 6, 2]);
    let y = x.mean(&[1, 2, 3], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64).unwrap();
    let build = || {
        let mut m = Sequential::with_seed(12);
        m.add(RandomFlip::default().input_shape([6, 6, 2]));
        m.add(RandomContrast::new(0.2).value_range(-1.0, 1.0));
        m.add(RandomBrightness::new(0.1).value_range(-1.0, 1.0));
        m.add(GaussianNoise::new(0.1));
        m.add(Conv2D::new(4, (3, 3)).activation(Activation::Relu));
        m.add(SpatialDropout2D::new(0.25));
        m.add(Reshape::new([16, 4]));
        m.add(SpatialDropout1D::new(0.2));
        m.add(Dropout::new(0.2).noise_shape([None, Some(1), None]));
        m.add(Flatten::new());
        m.add(GaussianDropout::new(0.2));
        m.add(keel_nn::AlphaDropout::new(0.1).noise_shape([Some(1), None]));
        m.add(Dense::new(2).activation(Activation::Softmax));
        m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("noise + augmentation layers", &dev, build, &x, &y);
}

/// Resizing (both interpolations, both aspect-ratio options), RandomCrop (the same seeded
/// window on both devices) and CenterCrop are gathers, slices and elementwise ops: they
/// train on the GPU as on the CPU.
#[test]
fn resizing_and_crop_layers() {
    use keel_nn::{CenterCrop, Interpolation, RandomCrop, Resizing};
    let Some(dev) = common::gpu("resizing_and_crop_layers") else { return };
    let x = uniform(13, &[48, 7, 9, 2]);
    let y = x.mean(&[1, 2, 3], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64).unwrap();
    for interpolation in [Interpolation::Bilinear, Interpolation::Nearest] {
        let build = || {
            let mut m = Sequential::with_seed(13);
            m.add(Resizing::new(11, 10).interpolation(interpolation).input_shape([7, 9, 2]));
            m.add(RandomCrop::new(9, 8));
            m.add(Resizing::new(8, 8).crop_to_aspect_ratio(true));
            m.add(CenterCrop::new(6, 7));
            m.add(Resizing::new(6, 4).pad_to_aspect_ratio(true).fill_value(0.5));
            m.add(Conv2D::new(3, (3, 3)).activation(Activation::Relu));
            m.add(Flatten::new());
            m.add(Dense::new(2).activation(Activation::Softmax));
            m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
            m
        };
        agree(&format!("resizing and crop layers, {interpolation:?}"), &dev, build, &x, &y);
    }
}

/// The activation layers and TimeDistributed (over Dense and Conv2D) are compositions of
/// existing ops: they train on the GPU as on the CPU.
#[test]
fn activation_layers_and_time_distributed() {
    use keel_nn::{Initializer, LeakyReLU, PReLU, ReLU, Softmax, TimeDistributed, ELU};
    let Some(dev) = common::gpu("activation_layers_and_time_distributed") else { return };
    let x = uniform(13, &[48, 3, 4, 4, 1]);
    let y = x.mean(&[1, 2, 3, 4], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64).unwrap();
    let build = || {
        let mut m = Sequential::with_seed(13);
        m.add(TimeDistributed::new(Conv2D::new(2, (3, 3))).input_shape([3, 4, 4, 1]));
        m.add(PReLU::new().shared_axes([2, 3]).alpha_initializer(Initializer::Constant { value: 0.2 }));
        m.add(Reshape::new([3, 8]));
        m.add(TimeDistributed::new(Dense::new(6)));
        m.add(ReLU::new().max_value(1.5).negative_slope(0.1).threshold(0.05));
        m.add(LeakyReLU::default());
        m.add(ELU::new(0.7));
        m.add(Softmax::new(1));
        m.add(Flatten::new());
        m.add(Dense::new(2));
        m.add(Softmax::default());
        m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("activation layers + TimeDistributed", &dev, build, &x, &y);
}

#[test]
fn regression_losses_and_reshape() {
    let Some(dev) = common::gpu("regression_losses_and_reshape") else { return };
    let x = uniform(6, &[48, 5]);
    let y = x.narrow(1, 0, 2).unwrap().mul_scalar(2.0).unwrap();
    for loss in [Loss::MeanSquaredError, Loss::MeanAbsoluteError, Loss::Huber] {
        let build = || {
            let mut m = Sequential::with_seed(6);
            m.add(Dense::new(4).activation(Activation::Tanh).input_shape([5]));
            m.add(Reshape::new([2, 2]));
            m.add(Flatten::new());
            m.add(Dense::new(2));
            m.compile(Adam::new(0.01), loss, &[] as &[MetricSpec]).unwrap();
            m
        };
        agree(&format!("regression with {loss:?}"), &dev, build, &x, &y);
    }
}

#[test]
fn the_other_keras_losses() {
    let Some(dev) = common::gpu("the_other_keras_losses") else { return };
    let x = uniform(16, &[48, 5]);
    let y = x.narrow(1, 0, 2).unwrap().mul_scalar(2.0).unwrap().exp().unwrap();
    for loss in
        [Loss::MeanSquaredLogarithmicError, Loss::MeanAbsolutePercentageError, Loss::LogCosh, Loss::CosineSimilarity]
    {
        let build = || {
            let mut m = Sequential::with_seed(12);
            m.add(Dense::new(4).activation(Activation::Tanh).input_shape([5]));
            m.add(Dense::new(2));
            m.compile(Adam::new(0.01), loss, &[] as &[MetricSpec]).unwrap();
            m
        };
        agree(&format!("regression with {loss:?}"), &dev, build, &x, &y);
    }
    let labels = x.sum(&[1], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64).unwrap();
    let onehot = labels.one_hot(2, DType::F32).unwrap();
    for (loss, activation) in [
        (Loss::Hinge, Activation::Tanh),
        (Loss::SquaredHinge, Activation::Tanh),
        (Loss::CategoricalHinge, Activation::Linear),
        (Loss::KLDivergence, Activation::Softmax),
        (Loss::Poisson, Activation::Softplus),
        (Loss::BinaryFocalCrossentropy, Activation::Sigmoid),
        (Loss::CategoricalFocalCrossentropy, Activation::Softmax),
    ] {
        let build = || {
            let mut m = Sequential::with_seed(13);
            m.add(Dense::new(4).activation(Activation::Relu).input_shape([5]));
            m.add(Dense::new(2).activation(activation));
            m.compile(Adam::new(0.01), loss, &[] as &[MetricSpec]).unwrap();
            m
        };
        agree(&format!("classification with {loss:?}"), &dev, build, &x, &onehot);
    }
    // -1/1 targets stay as they are (the other branch of the hinge losses' label test)
    let pm1 = onehot.mul_scalar(2.0).unwrap().sub_scalar(1.0).unwrap();
    let build = || {
        let mut m = Sequential::with_seed(15);
        m.add(Dense::new(4).activation(Activation::Relu).input_shape([5]));
        m.add(Dense::new(2).activation(Activation::Tanh));
        m.compile(Adam::new(0.01), Loss::Hinge, &[] as &[MetricSpec]).unwrap();
        m
    };
    agree("hinge with -1/1 targets", &dev, build, &x, &pm1);
}

/// A functional model with two inputs trains on CUDA as on the CPU (both inputs staged on
/// the device and gathered per batch there).
#[test]
fn a_model_with_two_inputs() {
    use keel_nn::{concatenate, Input, LayerExt};
    let Some(dev) = common::gpu("a_model_with_two_inputs") else { return };
    let (xa, xb) = (uniform(17, &[48, 4]), uniform(18, &[48, 3]));
    let y = xa.sum(&[1], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64).unwrap();
    let build = || {
        let a = Input::new([4]);
        let b = Input::new([3]);
        let ha = Dense::new(5).activation(Activation::Relu).call(&a).unwrap();
        let hb = Dense::new(2).activation(Activation::Tanh).call(&b).unwrap();
        let out = Dense::new(2).activation(Activation::Softmax).call(&concatenate(&[ha, hb], -1).unwrap()).unwrap();
        let mut m = KerasModel::from_network(keel_nn::Model::with_seed(&[a, b], &[out], 14).unwrap());
        m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    let fit = || Fit::new().epochs(2).batch_size(16).seed(11).verbose(0).validation_data([&xa, &xb], &y);
    let mut cpu = build();
    let h_cpu = cpu.fit([&xa, &xb], &y, fit()).unwrap();
    let mut gpu = build();
    gpu.to_device(&dev).unwrap();
    let h_gpu = gpu.fit([&xa, &xb], &y, fit()).unwrap();
    for key in ["loss", "val_loss"] {
        for (g, c) in h_gpu.get(key).unwrap().iter().zip(h_cpu.get(key).unwrap()) {
            assert!((g - c).abs() / c.abs().max(1e-12) < 1e-3, "{key}: {g} on CUDA vs {c} on the CPU");
        }
    }
    let (p, q) = (gpu.predict([&xa, &xb], 16).unwrap(), cpu.predict([&xa, &xb], 16).unwrap());
    assert_eq!(p.device(), Device::Cpu, "host inputs give host predictions");
    for (a, b) in p.to_vec::<f32>().unwrap().iter().zip(q.to_vec::<f32>().unwrap()) {
        assert!((a - b).abs() < 1e-3, "predictions {a} vs {b}");
    }
}

/// The preprocessing and merge layers (Normalization adapted to the data, Rescaling, the
/// six merges, Concatenate with Keras's axis) and the composed activations train on CUDA
/// along the CPU's trajectory.
#[test]
fn preprocessing_and_merge_layers() {
    use keel_nn::{
        average, concatenate, multiply, subtract, Input, LayerExt, Maximum, Minimum, Normalization, Rescaling,
    };
    let Some(dev) = common::gpu("preprocessing_and_merge_layers") else { return };
    let x = uniform(23, &[48, 5]).mul_scalar(50.0).unwrap().add_scalar(10.0).unwrap();
    let y = x.sum(&[1], false).unwrap().gt(&Tensor::scalar(50.0f32)).unwrap().to_dtype(DType::I64).unwrap();
    let build = || {
        let inp = Input::new([5]);
        let mut norm = Normalization::new();
        norm.adapt(&x).unwrap();
        let h = norm.call(&inp).unwrap();
        let a = Dense::new(6).activation(Activation::Selu).call(&h).unwrap();
        let b = Dense::new(6).activation(Activation::Mish).call(&h).unwrap();
        let merged = concatenate(
            &[
                keel_nn::add(&[a.clone(), b.clone()]).unwrap(),
                subtract(&a, &b).unwrap(),
                multiply(&[a.clone(), b.clone()]).unwrap(),
                average(&[a.clone(), b.clone()]).unwrap(),
                Maximum::new().call_multi(&[a.clone(), b.clone()]).unwrap(),
                Minimum::new().call_multi(&[a, b]).unwrap(),
            ],
            1,
        )
        .unwrap();
        let r = Rescaling::new(0.5).offset(0.1).call(&merged).unwrap();
        let out = Dense::new(2).activation(Activation::Softmax).call(&r).unwrap();
        let mut m = KerasModel::from_network(keel_nn::Model::with_seed(&[inp], &[out], 16).unwrap());
        m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("preprocessing and merge layers", &dev, build, &x, &y);
}

/// Two outputs (a softmax class head and a linear value head, weighted losses, a metric
/// per output): every log and both predictions agree, read back per step and as one
/// execution (the queued per-output losses and predictions come back together).
#[test]
fn a_model_with_two_outputs() {
    use keel_nn::{Input, LayerExt};
    let Some(dev) = common::gpu("a_model_with_two_outputs") else { return };
    let x = uniform(21, &[48, 4]);
    let class = x.sum(&[1], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64).unwrap();
    let value = x.narrow(1, 0, 1).unwrap().mul_scalar(3.0).unwrap();
    let build = || {
        let inp = Input::new([4]);
        let h = Dense::new(8).activation(Activation::Relu).call(&inp).unwrap();
        let c = Dense::new(2).activation(Activation::Softmax).with_name("class").call(&h).unwrap();
        let v = Dense::new(1).with_name("value").call(&h).unwrap();
        let mut m = KerasModel::from_network(keel_nn::Model::with_seed(&[inp], &[c, v], 15).unwrap());
        let losses = keel_train::Losses::from([Loss::SparseCategoricalCrossentropy, Loss::MeanSquaredError]);
        m.compile(Adam::new(0.01), losses.loss_weights([1.0, 0.3]), &[("class", "accuracy"), ("value", "mae")])
            .unwrap();
        m
    };
    for spe in [1, usize::MAX] {
        let fit =
            || Fit::new().epochs(2).batch_size(16).seed(11).verbose(0).validation_split(0.25).steps_per_execution(spe);
        let mut cpu = build();
        let h_cpu = cpu.fit(&x, [&class, &value], fit()).unwrap();
        let mut gpu = build();
        gpu.to_device(&dev).unwrap();
        let h_gpu = gpu.fit(&x, [&class, &value], fit()).unwrap();
        for key in ["loss", "class_loss", "value_loss", "class_accuracy", "value_mae", "val_loss", "val_value_mae"] {
            for (g, c) in h_gpu.get(key).unwrap().iter().zip(h_cpu.get(key).unwrap()) {
                assert!((g - c).abs() / c.abs().max(1e-6) < 1e-3, "{key} (spe {spe}): {g} on CUDA vs {c} on the CPU");
            }
        }
        let (p, q) = (gpu.predict_outputs(&x, 16).unwrap(), cpu.predict_outputs(&x, 16).unwrap());
        for (p, q) in p.iter().zip(&q) {
            assert_eq!((p.device(), p.dims()), (Device::Cpu, q.dims()));
            for (a, b) in p.to_vec::<f32>().unwrap().iter().zip(q.to_vec::<f32>().unwrap()) {
                assert!((a - b).abs() < 1e-3, "predictions {a} vs {b}");
            }
        }
    }
}

/// Two inputs under mixed_bfloat16, one of them token ids for an Embedding: each input is
/// staged in its own dtype (the ids stay exact: above 256 they are not BF16 values), also
/// the validation part of a split.
#[test]
fn two_inputs_under_mixed_bfloat16_with_token_ids() {
    use keel_nn::{concatenate, Input, LayerExt};
    let Some(dev) = common::gpu("two_inputs_under_mixed_bfloat16_with_token_ids") else { return };
    let dense_x = uniform(19, &[48, 4]);
    let ids = Tensor::rand_uniform(20, 250.0, 300.0, (48, 3), DType::F32, &Device::Cpu).unwrap();
    let ids = ids.to_dtype(DType::I64).unwrap().to_dtype(DType::F32).unwrap(); // whole numbers, most not BF16 values
    let y = dense_x.sum(&[1], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64).unwrap();
    let build = || {
        let a = Input::new([4]);
        let t = Input::new([3]);
        let ha = Dense::new(8).activation(Activation::Relu).call(&a).unwrap();
        let ht = Flatten::new().call(&Embedding::new(300, 2).call(&t).unwrap()).unwrap();
        let out = Dense::new(2).activation(Activation::Softmax).call(&concatenate(&[ha, ht], -1).unwrap()).unwrap();
        let net = keel_nn::Model::with_seed(&[a, t], &[out], 16).unwrap().dtype_policy(DTypePolicy::MixedBFloat16);
        let mut m = KerasModel::from_network(net);
        m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    assert_eq!((build().input_dtype_at(0), build().input_dtype_at(1)), (DType::BF16, DType::F32));
    let fit = || Fit::new().epochs(2).batch_size(16).seed(11).verbose(0).validation_split(0.25);
    let mut cpu = build();
    let h_cpu = cpu.fit([&dense_x, &ids], &y, fit()).unwrap();
    let mut gpu = build();
    gpu.to_device(&dev).unwrap();
    let h_gpu = gpu.fit([&dense_x, &ids], &y, fit()).unwrap();
    for key in ["loss", "val_loss"] {
        for (g, c) in h_gpu.get(key).unwrap().iter().zip(h_cpu.get(key).unwrap()) {
            assert!((g - c).abs() / c.abs().max(1e-12) < 2e-2, "{key}: {g} on CUDA vs {c} on the CPU");
        }
    }
}

#[test]
fn functional_residual_block_with_add_and_concatenate() {
    use keel_nn::{add, concatenate, Input, LayerExt};
    let Some(dev) = common::gpu("functional_residual_block_with_add_and_concatenate") else { return };
    let x = uniform(7, &[48, 6, 6, 3]);
    let y = x.mean(&[1, 2, 3], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64).unwrap();
    let build = || {
        let inp = Input::new([6, 6, 3]);
        let a = Conv2D::new(4, (3, 3)).padding(Padding::Same).call(&inp).unwrap();
        let b = BatchNormalization::new().call(&a).unwrap();
        let b = ActivationLayer::new(Activation::Relu).call(&b).unwrap();
        let b = Conv2D::new(4, (3, 3)).padding(Padding::Same).call(&b).unwrap();
        let merged = concatenate(&[add(&[a, b]).unwrap(), inp.clone()], -1).unwrap();
        let pooled = GlobalAveragePooling2D::new().call(&merged).unwrap();
        let out = Dense::new(2).activation(Activation::Softmax).call(&pooled).unwrap();
        let mut m = KerasModel::from_network(keel_nn::Model::with_seed(&[inp], &[out], 8).unwrap());
        m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("functional residual block (add, concatenate)", &dev, build, &x, &y);
}

/// The mixed-precision CNN and its data: two 3x3 convolutions (the second 8 -> 8 channels,
/// so it and its gradients run on the tensor-core convolutions), batch norm, pooling and
/// three Dense layers (every leading dimension a multiple of 8: the pipelined tensor-core
/// GEMM), compiled with Adam.
fn mixed_cnn(policy: DTypePolicy) -> (impl Fn() -> Sequential, Tensor, Tensor) {
    let x = uniform(5, &[64, 8, 8, 2]);
    let labels = x.mean(&[1, 2, 3], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64);
    let build = move || {
        let mut m = Sequential::with_seed(6);
        m.set_dtype_policy(policy);
        m.add(Conv2D::new(8, (3, 3)).padding(Padding::Same).activation(Activation::Relu).input_shape([8, 8, 2]));
        m.add(BatchNormalization::new());
        m.add(Conv2D::new(8, (3, 3)).padding(Padding::Same).activation(Activation::Relu));
        m.add(MaxPooling2D::new((2, 2)));
        m.add(Flatten::new());
        m.add(Dense::new(32).activation(Activation::Relu));
        m.add(Dense::new(16).activation(Activation::Relu));
        m.add(Dense::new(2).activation(Activation::Softmax));
        m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    (build, x, labels.unwrap())
}

/// Mixed precision on the GPU: BF16 activations on the tensor-core kernels, F32 weights,
/// BF16 batch norm inputs upcast for the statistics.
#[test]
fn mixed_bfloat16_cnn() {
    let Some(dev) = common::gpu("mixed_bfloat16_cnn") else { return };
    let (build, x, y) = mixed_cnn(DTypePolicy::MixedBFloat16);
    // CPU and GPU both round every activation to BF16, but sum in different orders, so
    // a last-bit difference can flip a BF16 rounding: compare to 2e-2, not 1e-3.
    agree_within("mixed_bfloat16 CNN", &dev, 2e-2, build, &x, &y);
}

/// `"mixed_float16"` on the GPU: F16 activations on the F16 tensor-core kernels, F32
/// weights, and `compile`'s LossScaleOptimizer (scale 2^15) around Adam; both devices take
/// the same steps (no overflow here) and keep the same scale.
#[test]
fn mixed_float16_cnn_with_loss_scaling() {
    let Some(dev) = common::gpu("mixed_float16_cnn_with_loss_scaling") else { return };
    let (build, x, y) = mixed_cnn(DTypePolicy::MixedFloat16);
    assert_eq!(build().optimizer_mut().unwrap().name(), "LossScaleOptimizer");
    // F16 keeps 3 more mantissa bits than BF16, but CPU and GPU still sum in other orders;
    // the scaler reads one number back per step (4 steps of 16)
    agree_waiting("mixed_float16 CNN", &dev, (1e-2, 6), build, &x, &y);
}

/// A Transformer block (Embedding, MultiHeadAttention with a causal mask and attention
/// dropout, cross-attention with its own key, residual Add, LayerNormalization, pooling),
/// with a frozen layer, trains on CUDA along the CPU's trajectory.
#[test]
fn a_transformer_block_with_a_frozen_layer() {
    use keel_nn::{add, Input, LayerExt, MultiHeadAttention};
    let Some(dev) = common::gpu("a_transformer_block_with_a_frozen_layer") else { return };
    let tokens =
        Tensor::rand_uniform(6, 0.0, 9.0, (48, 6), DType::F32, &Device::Cpu).unwrap().to_dtype(DType::I64).unwrap();
    let y = Tensor::from_vec((0..48).map(|i| (i % 3 == 0) as i64).collect::<Vec<_>>(), 48).unwrap();
    let build = || {
        let inp = Input::new([6]);
        let e = Embedding::new(9, 8).call(&inp).unwrap();
        let k = Dense::new(8).activation(Activation::Tanh).with_name("key_proj").call(&e).unwrap();
        let att = MultiHeadAttention::new(2, 4)
            .use_causal_mask(true)
            .dropout(0.1)
            .call_multi(&[e.clone(), e.clone(), k])
            .unwrap();
        let h = LayerNormalization::new().call(&add(&[e, att]).unwrap()).unwrap();
        let h = GlobalAveragePooling1D::new().call(&h).unwrap();
        let out = Dense::new(2).activation(Activation::Softmax).call(&h).unwrap();
        let mut m = KerasModel::from_network(keel_nn::Model::with_seed(&[inp], &[out], 15).unwrap());
        m.set_trainable("key_proj", false).unwrap();
        m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("Transformer block (causal MultiHeadAttention, frozen Dense)", &dev, build, &tokens, &y);
}

/// GroupQueryAttention (4 query heads sharing 2 key/value heads, causal, attention dropout,
/// cross-attention with its own key, constraints on its kernels and biases) over padded
/// tokens trains on CUDA along the CPU's trajectory.
#[test]
fn group_query_attention_over_padded_tokens() {
    use keel_nn::{add, Constraint, GroupQueryAttention, Input, LayerExt};
    let Some(dev) = common::gpu("group_query_attention_over_padded_tokens") else { return };
    let (tokens, y) = common::token_task(16, 9, &[48, 6]);
    let build = || {
        let inp = Input::new([6]);
        let e = Embedding::new(9, 8).mask_zero(true).call(&inp).unwrap();
        let k = Dense::new(5).activation(Activation::Tanh).call(&e).unwrap();
        let att = GroupQueryAttention::new(3, 4, 2)
            .use_causal_mask(true)
            .dropout(0.1)
            .kernel_constraint(Constraint::max_norm(1.0, 0))
            .bias_constraint(Constraint::non_neg())
            .call_multi(&[e.clone(), e.clone(), k])
            .unwrap();
        let h = LayerNormalization::new().call(&add(&[e, att]).unwrap()).unwrap();
        let h = GlobalAveragePooling1D::new().call(&h).unwrap();
        let out = Dense::new(1).activation(Activation::Sigmoid).call(&h).unwrap();
        let mut m = KerasModel::from_network(keel_nn::Model::with_seed(&[inp], &[out], 21).unwrap());
        m.compile(Adam::new(0.01), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("GroupQueryAttention (grouped heads, causal, padded tokens, constraints)", &dev, build, &tokens, &y);
}

#[test]
fn masked_sequences_after_embedding_mask_zero() {
    let Some(dev) = common::gpu("masked_sequences_after_embedding_mask_zero") else { return };
    // ids in 0..6 with zeros (padding) scattered: the recurrent layers skip them, pooling,
    // attention and batch normalization ignore them
    let (tokens, y) = common::token_task(6, 6, &[48, 7]);
    let build = || {
        let mut m = Sequential::with_seed(8);
        m.add(Embedding::new(6, 4).mask_zero(true).input_shape([7]));
        m.add(Bidirectional::new(LSTM::new(4).return_sequences(true)));
        m.add(BatchNormalization::new());
        m.add(GRU::new(3).return_sequences(true));
        m.add(GlobalAveragePooling1D::new());
        m.add(Dense::new(1).activation(Activation::Sigmoid));
        m.compile(Adam::new(0.01), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("Embedding(mask_zero) + masked LSTM/GRU/BatchNormalization/pooling", &dev, build, &tokens, &y);
}

/// Documents of padded sentences: TimeDistributed(LSTM) reads each sentence's word mask,
/// and the GRU after it the sentence mask reduced from it (a `max` over a U8 mask).
#[test]
fn time_distributed_over_masked_sentences() {
    let Some(dev) = common::gpu("time_distributed_over_masked_sentences") else { return };
    let (tokens, y) = common::token_task(9, 6, &[48, 3, 5]);
    use keel_nn::TimeDistributed;
    let build = || {
        let mut m = Sequential::with_seed(12);
        m.add(Embedding::new(6, 4).mask_zero(true).input_shape([3, 5]));
        m.add(TimeDistributed::new(LSTM::new(4)));
        m.add(GRU::new(3));
        m.add(Dense::new(1).activation(Activation::Sigmoid));
        m.compile(Adam::new(0.01), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("Embedding(mask_zero) + TimeDistributed(LSTM) + GRU over padded sentences", &dev, build, &tokens, &y);
}

/// Recurrent dropout: LSTM with `dropout` and `recurrent_dropout` (per-gate masks, the
/// step-by-step loop), GRU with input dropout only (the fused sequence kernel on a dropped
/// input) and a Bidirectional SimpleRNN with both; the masks come from the same seeded draws
/// on both devices, so the trajectories agree.
#[test]
fn recurrent_dropout_trains() {
    let Some(dev) = common::gpu("recurrent_dropout_trains") else { return };
    let (tokens, y) = common::token_task(13, 10, &[48, 7]);
    let build = || {
        let mut m = Sequential::with_seed(14);
        m.add(Embedding::new(10, 4).input_shape([7]));
        m.add(LSTM::new(5).return_sequences(true).dropout(0.2).recurrent_dropout(0.3));
        m.add(GRU::new(4).return_sequences(true).dropout(0.25));
        m.add(Bidirectional::new(SimpleRNN::new(3).dropout(0.1).recurrent_dropout(0.2)));
        m.add(Dense::new(1).activation(Activation::Sigmoid));
        m.compile(Adam::new(0.01), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("LSTM/GRU/Bidirectional(SimpleRNN) with dropout and recurrent_dropout", &dev, build, &tokens, &y);
}

/// Stateful LSTM and GRU: the fused CUDA sequence kernels start from the states carried over
/// from the previous batch. Two consecutive batches predicted on the device match the CPU's
/// (the second continuing the first), and differ from the second batch started afresh after
/// `reset_state`; training (the states carried across batches and epochs) agrees too.
#[test]
fn stateful_recurrent_layers_carry_states_on_the_device() {
    let Some(dev) = common::gpu("stateful_recurrent_layers_carry_states_on_the_device") else { return };
    let (tokens, y) = common::token_task(15, 10, &[48, 7]);
    let build = || {
        let mut m = Sequential::with_seed(16);
        m.add(Embedding::new(10, 4).input_shape([7]));
        m.add(LSTM::new(5).return_sequences(true).stateful(true));
        m.add(GRU::new(4).stateful(true));
        m.add(Dense::new(1).activation(Activation::Sigmoid));
        m.compile(Adam::new(0.01), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    let (cpu, mut on_gpu) = (build(), build());
    on_gpu.to_device(&dev).unwrap();
    let x = tokens.narrow(0, 0, 32).unwrap();
    let close = |what: &str, a: &Tensor, b: &Tensor| {
        let (p, q) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
        let d = p.iter().zip(&q).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(d < 1e-4, "{what}: CUDA and CPU differ by {d}");
    };
    // two batches of 16, the second starting from the first's final states
    let (p_cpu, p_gpu) = (cpu.predict(&x, 16).unwrap(), on_gpu.predict(&x, 16).unwrap());
    close("two stateful batches", &p_gpu, &p_cpu);
    assert_eq!(on_gpu.weights_device(), Some(dev), "weights left the GPU");
    // the second batch alone from zero states gives other outputs: the states were used
    on_gpu.reset_state();
    let second = on_gpu.predict(&x.narrow(0, 16, 16).unwrap(), 16).unwrap();
    let carried = p_gpu.narrow(0, 16, 16).unwrap();
    let d = second
        .to_vec_f64()
        .unwrap()
        .iter()
        .zip(carried.to_vec_f64().unwrap())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(d > 1e-6, "the carried states changed nothing on CUDA");
    agree("stateful LSTM + GRU", &dev, build, &tokens, &y);
}

/// Attention (concat scores, causal mask, dropout), AdditiveAttention and a normalized Dot
/// after Embedding(mask_zero): masked scores, the query mask and the scores' dropout train
/// on CUDA along the CPU's trajectory.
#[test]
fn attention_and_dot_layers_with_masks() {
    use keel_nn::{AdditiveAttention, Attention, Dot, Input, LayerExt, ScoreMode};
    let Some(dev) = common::gpu("attention_and_dot_layers_with_masks") else { return };
    let tokens =
        Tensor::rand_uniform(9, 0.0, 6.0, (48, 7), DType::F32, &Device::Cpu).unwrap().to_dtype(DType::I64).unwrap();
    let y = Tensor::from_vec((0..48).map(|i| (i % 3 == 0) as i64).collect::<Vec<_>>(), 48).unwrap();
    let build = || {
        let inp = Input::new([7]);
        let e = Embedding::new(6, 8).mask_zero(true).call(&inp).unwrap();
        let a = Attention::new()
            .use_scale(true)
            .score_mode(ScoreMode::Concat)
            .use_causal_mask(true)
            .dropout(0.1)
            .call_multi(&[e.clone(), e.clone()])
            .unwrap();
        let b = AdditiveAttention::new().call_multi(&[a.clone(), e]).unwrap();
        let s = Dot::new(-1).normalize(true).call_multi(&[a, b]).unwrap(); // [7, 7]
        let h = GlobalAveragePooling1D::new().call(&s).unwrap();
        let out = Dense::new(2).activation(Activation::Softmax).call(&h).unwrap();
        let mut m = KerasModel::from_network(keel_nn::Model::with_seed(&[inp], &[out], 4).unwrap());
        m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("Attention/AdditiveAttention/Dot after Embedding(mask_zero)", &dev, build, &tokens, &y);
}

#[test]
fn depthwise_and_separable_conv2d() {
    use keel_nn::{DepthwiseConv2D, SeparableConv2D};
    let Some(dev) = common::gpu("depthwise_and_separable_conv2d") else { return };
    let x = uniform(20, &[48, 8, 8, 3]);
    let labels = x.mean(&[1, 2, 3], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64);
    let y = labels.unwrap();
    let build = || {
        let mut m = Sequential::with_seed(6);
        m.add(DepthwiseConv2D::new(3).depth_multiplier(2).padding(Padding::Same).input_shape([8, 8, 3]));
        m.add(SeparableConv2D::new(5, 3).strides(2).activation(Activation::Relu)); // fused pointwise + bias + ReLU
        m.add(SeparableConv2D::new(4, (2, 3)).depth_multiplier(3).dilation_rate(1).activation(Activation::Tanh));
        m.add(GlobalAveragePooling2D::new());
        m.add(Dense::new(2).activation(Activation::Softmax));
        m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("depthwise + separable conv", &dev, build, &x, &y);
}

/// DepthwiseConv1D and SeparableConv1D (the depthwise and 1x1 kernels of the 2-D layers on
/// `[n, 1, steps, c]` views, the fused pointwise + bias + ReLU among them) train on the GPU
/// along the CPU's trajectory.
#[test]
fn depthwise_and_separable_conv1d() {
    use keel_nn::{DepthwiseConv1D, SeparableConv1D};
    let Some(dev) = common::gpu("depthwise_and_separable_conv1d") else { return };
    let x = uniform(22, &[48, 12, 3]);
    let labels = x.mean(&[1, 2], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64);
    let y = labels.unwrap();
    let build = || {
        let mut m = Sequential::with_seed(7);
        m.add(DepthwiseConv1D::new(3).depth_multiplier(2).padding(Padding::Same).input_shape([12, 3]));
        m.add(SeparableConv1D::new(5, 3).strides(2).activation(Activation::Relu)); // fused pointwise + bias + ReLU
        m.add(SeparableConv1D::new(4, 2).depth_multiplier(3).dilation_rate(2).activation(Activation::Tanh));
        m.add(GlobalAveragePooling1D::new());
        m.add(Dense::new(2).activation(Activation::Softmax));
        m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("depthwise + separable conv1d", &dev, build, &x, &y);
}

/// The 3-D layers, composed from 2-D ops (Conv3D: an index_select of depth taps and one
/// conv2d, fused with bias + ReLU or not; the 3-D poolings: a 2-D pooling over height and
/// width then one over depth; the padding, cropping and up-sampling shape ops) train on the
/// GPU along the CPU's trajectory.
#[test]
fn three_d_layers() {
    use keel_nn::{
        AveragePooling3D, Conv3D, Cropping3D, GlobalAveragePooling3D, MaxPooling3D, UpSampling3D, ZeroPadding3D,
    };
    let Some(dev) = common::gpu("three_d_layers") else { return };
    let x = uniform(21, &[48, 4, 6, 6, 2]);
    let labels = x.mean(&[1, 2, 3, 4], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64);
    let y = labels.unwrap();
    let build = || {
        let mut m = Sequential::with_seed(12);
        m.add(ZeroPadding3D::new(((1, 0), (0, 1), (1, 1))).input_shape([4, 6, 6, 2]));
        m.add(Conv3D::new(4, (2, 3, 3)).padding(Padding::Same).activation(Activation::Relu)); // fused bias + ReLU
        m.add(MaxPooling3D::new((3, 2, 2)).strides((2, 2, 2)).padding(Padding::Same));
        m.add(UpSampling3D::new((2, 1, 1)));
        m.add(Cropping3D::new(((1, 0), (0, 1), (0, 0))));
        m.add(Conv3D::new(3, 2).dilation_rate((2, 1, 1)).activation(Activation::Tanh));
        m.add(AveragePooling3D::new(2).strides(1).padding(Padding::Same));
        m.add(GlobalAveragePooling3D::new());
        m.add(Dense::new(2).activation(Activation::Softmax));
        m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("3-D conv, pooling and shape layers", &dev, build, &x, &y);
}

/// Conv3DTranspose (composed: an index_select of depth taps, with a zero slice where a tap
/// has no input, and one conv2d_transpose) trains on the GPU along the CPU's trajectory.
#[test]
fn conv3d_transpose() {
    use keel_nn::{Conv3D, Conv3DTranspose, GlobalAveragePooling3D};
    let Some(dev) = common::gpu("conv3d_transpose") else { return };
    let x = uniform(23, &[48, 4, 4, 4, 2]);
    let labels = x.mean(&[1, 2, 3, 4], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64);
    let y = labels.unwrap();
    let build = || {
        let mut m = Sequential::with_seed(13);
        m.add(
            Conv3D::new(3, 3).strides(2).padding(Padding::Same).activation(Activation::Relu).input_shape([4, 4, 4, 2]),
        );
        m.add(
            Conv3DTranspose::new(4, (3, 2, 3)).strides((2, 2, 1)).padding(Padding::Same).activation(Activation::Tanh),
        );
        m.add(Conv3DTranspose::new(2, 2).dilation_rate((2, 1, 1)).output_padding(0));
        m.add(GlobalAveragePooling3D::new());
        m.add(Dense::new(2).activation(Activation::Softmax));
        m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("Conv3DTranspose", &dev, build, &x, &y);
}

/// ConvLSTM2D and ConvLSTM1D (composed: one conv2d over every timestep's frame, then per step
/// a recurrent conv2d and the fused LSTM gate op, or the composed gates with other
/// activations; go_backwards, strides, valid and same padding) train on the GPU along the
/// CPU's trajectory.
#[test]
fn conv_lstm_layers() {
    use keel_nn::{ConvLSTM1D, ConvLSTM2D, Reshape};
    let Some(dev) = common::gpu("conv_lstm_layers") else { return };
    let x = uniform(23, &[48, 3, 6, 6, 2]);
    let labels = x.mean(&[1, 2, 3, 4], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64);
    let y = labels.unwrap();
    let build = || {
        let mut m = Sequential::with_seed(13);
        m.add(ConvLSTM2D::new(4, 3).padding(Padding::Same).return_sequences(true).input_shape([3, 6, 6, 2]));
        m.add(
            ConvLSTM2D::new(3, 2)
                .strides(2)
                .go_backwards(true)
                .return_sequences(true)
                .recurrent_activation(Activation::HardSigmoid),
        ); // [3, 3, 3, 3]
        m.add(Reshape::new([3, 9, 3]));
        m.add(ConvLSTM1D::new(2, 3).padding(Padding::Same)); // [9, 2]
        m.add(GlobalAveragePooling1D::new());
        m.add(Dense::new(2).activation(Activation::Softmax));
        m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("ConvLSTM2D + ConvLSTM1D", &dev, build, &x, &y);
}

/// RandomRotation, RandomZoom and RandomTranslation (the affine image transform, forward and
/// its atomicAdd backward: they sit after a convolution, so its gradient passes through them)
/// train on the GPU along the CPU's trajectory.
#[test]
fn affine_augmentation_layers() {
    use keel_nn::{FillMode, ImageInterpolation, RandomFlip, RandomRotation, RandomTranslation, RandomZoom};
    let Some(dev) = common::gpu("affine_augmentation_layers") else { return };
    let x = uniform(13, &[48, 8, 8, 2]);
    let y = x.mean(&[1, 2, 3], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64).unwrap();
    let build = || {
        let mut m = Sequential::with_seed(13);
        m.add(Conv2D::new(3, (3, 3)).padding(Padding::Same).input_shape([8, 8, 2]));
        m.add(RandomFlip::new("horizontal"));
        m.add(RandomRotation::new(0.1));
        m.add(RandomZoom::new(0.2).fill_mode(FillMode::Constant).fill_value(0.5));
        m.add(
            RandomTranslation::new(0.1, (-0.2, 0.1))
                .fill_mode(FillMode::Wrap)
                .interpolation(ImageInterpolation::Nearest),
        );
        m.add(Conv2D::new(4, (3, 3)).activation(Activation::Relu));
        m.add(Flatten::new());
        m.add(Dense::new(2).activation(Activation::Softmax));
        m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("affine augmentation layers", &dev, build, &x, &y);
}

/// RandomShear (the affine image transform, after a convolution so its gradient passes
/// through), RandomGrayscale and Solarization (per-image device draws, `where_cond`) and
/// AutoContrast (per-channel min/max), RandomSaturation and RandomHue (TensorFlow's HSV round
/// trip as elementwise ops) train on the GPU along the CPU's trajectory.
#[test]
fn shear_grayscale_solarization_auto_contrast_layers() {
    use keel_nn::{AutoContrast, FillMode, RandomGrayscale, RandomHue, RandomSaturation, RandomShear, Solarization};
    let Some(dev) = common::gpu("shear_grayscale_solarization_auto_contrast_layers") else { return };
    let x = uniform(15, &[48, 7, 7, 3]);
    let y = x.mean(&[1, 2, 3], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64).unwrap();
    let build = || {
        let mut m = Sequential::with_seed(15);
        m.add(Conv2D::new(3, (3, 3)).padding(Padding::Same).input_shape([7, 7, 3]));
        m.add(RandomShear::new(0.3, (0.1, 0.2)).fill_mode(FillMode::Constant).fill_value(0.1));
        m.add(RandomGrayscale::new(0.5));
        m.add(Solarization::new(0.2, (0.5, 0.9)).value_range(-3.0, 3.0));
        m.add(AutoContrast::new().value_range(-3.0, 3.0));
        m.add(RandomSaturation::new((0.3, 0.7)).value_range(-3.0, 3.0));
        m.add(RandomHue::new(0.3).value_range(-3.0, 3.0));
        m.add(Conv2D::new(4, (3, 3)).activation(Activation::Relu));
        m.add(Flatten::new());
        m.add(Dense::new(2).activation(Activation::Softmax));
        m.compile(Adam::new(0.01), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("shear, grayscale, solarization, auto-contrast, saturation, hue layers", &dev, build, &x, &y);
}

/// CategoryEncoding, Discretization, IntegerLookup and Hashing do their work on the host (integer
/// bookkeeping): on a CUDA input their output is on the GPU with the CPU's values, and a model
/// that starts with them trains on the GPU along the CPU's trajectory (each batch is read back
/// to the host once, so this case has no host-wait bound).
#[test]
fn categorical_preprocessing_layers() {
    use keel_autograd::Var;
    use keel_nn::{CategoryEncoding, Ctx, Discretization, Hashing, IntegerLookup, Layer, OutputMode};
    use keel_tensor::rng::Rng;
    let Some(dev) = common::gpu("categorical_preprocessing_layers") else { return };
    let ids = Tensor::from_vec((0..48i64).map(|i| (i * 7) % 10).collect::<Vec<_>>(), (8, 6)).unwrap();
    let floats = uniform(14, &[8, 6]);
    let mut lookup = IntegerLookup::new().mask_token(Some(0)).output_mode(OutputMode::Count);
    lookup.adapt(&ids).unwrap();
    let mut disc = Discretization::adaptive(4).output_mode(OutputMode::OneHot);
    disc.adapt(&floats).unwrap();
    let cases: Vec<(Box<dyn Layer>, &Tensor)> = vec![
        (Box::new(CategoryEncoding::new(10).output_mode(OutputMode::MultiHot)), &ids),
        (Box::new(CategoryEncoding::new(10).output_mode(OutputMode::OneHot)), &ids),
        (Box::new(IntegerLookup::new().vocabulary(vec![3, 1, 4])), &ids),
        (Box::new(lookup), &ids),
        (Box::new(Discretization::new(vec![-0.5, 0.0, 0.5])), &floats),
        (Box::new(disc), &floats),
        (Box::new(Hashing::new(6).salt(Some([1, 2]))), &ids),
    ];
    for (mut l, x) in cases {
        l.build(&x.dims()[1..], &mut Rng::new(0)).unwrap();
        let on_cpu = l.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap().into_value();
        let on_gpu = l.forward(&Var::constant(x.to_device(&dev).unwrap()), &mut Ctx::inference()).unwrap();
        assert_eq!(on_gpu.value().device(), dev, "{}: output left the GPU", l.class_name());
        assert_eq!(on_gpu.value().to_vec_f64().unwrap(), on_cpu.to_vec_f64().unwrap(), "{}", l.class_name());
    }
    // IntegerLookup -> Embedding and CategoryEncoding -> Dense models train on the GPU as on the CPU
    let tokens = Tensor::rand_uniform(15, 0.0, 10.0, (48, 7), DType::F32, &Device::Cpu).unwrap().to_dtype(DType::I64);
    let tokens = tokens.unwrap();
    let y = tokens.to_dtype(DType::F32).unwrap().mean(&[1], true).unwrap().gt(&Tensor::scalar(4.5f32)).unwrap();
    let y = y.to_dtype(DType::F32).unwrap();
    for encode in [false, true] {
        let build = || {
            let mut m = Sequential::with_seed(15);
            if encode {
                m.add(CategoryEncoding::new(10).output_mode(OutputMode::Count).input_shape([7]));
                m.add(Dense::new(4).activation(Activation::Relu));
            } else {
                let mut lookup = IntegerLookup::new();
                lookup.adapt(&tokens).unwrap();
                m.add(lookup.input_shape([7]));
                m.add(Embedding::new(11, 4));
                m.add(GlobalAveragePooling1D::new());
            }
            m.add(Dense::new(1).activation(Activation::Sigmoid));
            m.compile(Adam::new(0.01), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
            m
        };
        let fit = || Fit::new().epochs(2).batch_size(16).seed(11).verbose(0);
        let mut cpu = build();
        let h_cpu = cpu.fit(&tokens, &y, fit()).unwrap();
        let mut on_gpu = build();
        on_gpu.to_device(&dev).unwrap();
        let h_gpu = on_gpu.fit(&tokens, &y, fit()).unwrap_or_else(|e| panic!("encode={encode} on CUDA: {e}"));
        for (g, c) in h_gpu.get("loss").unwrap().iter().zip(h_cpu.get("loss").unwrap()) {
            assert!((g - c).abs() / c.abs().max(1e-12) < 1e-3, "encode={encode}: loss {g} on CUDA vs {c}");
        }
    }
}

/// Weight constraints (MaxNorm, UnitNorm, MinMaxNorm, NonNeg) are applied after every step
/// on the weights' device, with ordinary tensor ops (no read back to the host).
#[test]
fn weight_constraints_apply_on_the_device() {
    use keel_nn::Constraint;
    let Some(dev) = common::gpu("weight_constraints_apply_on_the_device") else { return };
    let x = uniform(21, &[48, 6, 6, 2]);
    let labels = x.mean(&[1, 2, 3], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64);
    let y = labels.unwrap();
    let build = || {
        let mut m = Sequential::with_seed(9);
        m.add(
            Conv2D::new(4, (3, 3))
                .kernel_constraint(Constraint::unit_norm(0).with_axes([0, 1, 2]))
                .bias_constraint(Constraint::non_neg())
                .activation(Activation::Relu)
                .input_shape([6, 6, 2]),
        );
        m.add(Flatten::new());
        m.add(
            Dense::new(8)
                .kernel_constraint(Constraint::max_norm(0.5, 0))
                .bias_constraint(Constraint::min_max_norm(0.1, 0.4, 0.5, 0))
                .activation(Activation::Tanh),
        );
        m.add(Dense::new(2).kernel_constraint(Constraint::non_neg()).activation(Activation::Softmax));
        m.compile(Adam::new(0.02), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("conv + dense with weight constraints", &dev, build, &x, &y);
}

/// Weight constraints on a recurrent layer (LSTM, and GRU inside a Bidirectional) and on
/// BatchNormalization's `gamma`/`beta` apply on the device as on the CPU.
#[test]
fn recurrent_and_normalization_constraints_apply_on_the_device() {
    use keel_nn::Constraint;
    let Some(dev) = common::gpu("recurrent_and_normalization_constraints_apply_on_the_device") else { return };
    let x = uniform(25, &[48, 5, 3]);
    let labels = x.mean(&[1, 2], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64);
    let y = labels.unwrap();
    let build = || {
        let mut m = Sequential::with_seed(10);
        m.add(
            LSTM::new(6)
                .return_sequences(true)
                .kernel_constraint(Constraint::max_norm(0.5, 0))
                .recurrent_constraint(Constraint::unit_norm(1))
                .bias_constraint(Constraint::min_max_norm(0.1, 0.8, 0.5, 0))
                .input_shape([5, 3]),
        );
        m.add(
            BatchNormalization::new()
                .gamma_constraint(Constraint::max_norm(1.5, 0))
                .beta_constraint(Constraint::non_neg()),
        );
        m.add(Bidirectional::new(
            GRU::new(4).kernel_constraint(Constraint::non_neg()).recurrent_constraint(Constraint::max_norm(1.0, 0)),
        ));
        m.add(Dense::new(2).activation(Activation::Softmax));
        m.compile(Adam::new(0.02), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("LSTM + BatchNormalization + Bidirectional(GRU) with weight constraints", &dev, build, &x, &y);
}

#[test]
fn a_nested_model_trainable_and_frozen() {
    let Some(dev) = common::gpu("a_nested_model_trainable_and_frozen") else { return };
    let x = uniform(23, &[48, 6, 6, 2]);
    let labels = x.mean(&[1, 2, 3], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64);
    let y = labels.unwrap();
    for frozen in [false, true] {
        let build = || {
            let mut body = keel_nn::Sequential::with_seed(4).with_name("body");
            body.add(Conv2D::new(4, (3, 3)).activation(Activation::Relu).input_shape([6, 6, 2]));
            body.add(BatchNormalization::new());
            body.add(MaxPooling2D::new((2, 2)));
            body.add(Flatten::new());
            let mut m = Sequential::with_seed(9);
            m.add(body);
            m.add(Dense::new(2).activation(Activation::Softmax));
            m.set_trainable("body", !frozen).unwrap();
            m.compile(Adam::new(0.02), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
            m
        };
        agree(&format!("a nested Sequential body (frozen: {frozen})"), &dev, build, &x, &y);
    }
}

#[test]
fn einsum_dense_projections() {
    use keel_nn::EinsumDense;
    let Some(dev) = common::gpu("einsum_dense_projections") else { return };
    let x = uniform(25, &[48, 5, 4]);
    let labels = x.mean(&[1, 2], false).unwrap().gt(&Tensor::scalar(0.0f32)).unwrap().to_dtype(DType::I64);
    let y = labels.unwrap();
    let build = || {
        let mut m = Sequential::with_seed(6);
        // heads in (shared kernel), one matrix per position (a batched product), a summed axis
        m.add(EinsumDense::new("abc,cde->abde", [None, Some(2), Some(3)]).bias_axes("de").input_shape([5, 4]));
        m.add(Reshape::new([5, 6]));
        m.add(EinsumDense::new("abc,bcd->abd", [5, 4]).bias_axes("bd").activation(Activation::Tanh));
        m.add(EinsumDense::new("abc,cd->ad", [2]).bias_axes("d").activation(Activation::Softmax));
        m.compile(Adam::new(0.02), Loss::SparseCategoricalCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("EinsumDense projections", &dev, build, &x, &y);
}

#[test]
fn a_mask_through_a_nested_model() {
    let Some(dev) = common::gpu("a_mask_through_a_nested_model") else { return };
    let (tokens, y) = common::token_task(31, 9, &[48, 6]);
    let build = || {
        let mut enc = keel_nn::Sequential::with_seed(4).with_name("enc");
        enc.add(LSTM::new(6).return_sequences(true));
        enc.add(GRU::new(4));
        let mut m = Sequential::with_seed(9);
        m.add(Embedding::new(9, 5).mask_zero(true).input_shape([6]));
        m.add(enc);
        m.add(Dense::new(1).activation(Activation::Sigmoid));
        m.compile(Adam::new(0.02), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy]).unwrap();
        m
    };
    agree("Embedding(mask_zero) -> nested LSTM/GRU", &dev, build, &tokens, &y);
}

/// Activity regularizers (on Embedding, Conv1D, GRU and Dense, and the
/// ActivityRegularization layer) add their output penalties on the device, without reading
/// anything back: training agrees with the CPU's, also under mixed_bfloat16 (penalties in F32).
#[test]
fn activity_regularizers() {
    let Some(dev) = common::gpu("activity_regularizers") else { return };
    let (tokens, y) = common::token_task(9, 10, &[48, 7]);
    for mixed in [false, true] {
        let build = || common::penalized_token_model(mixed, &[MetricSpec::Accuracy]);
        let (what, tol) =
            if mixed { ("activity regularizers, mixed_bfloat16", 2e-2) } else { ("activity regularizers", 1e-3) };
        agree_within(what, &dev, tol, build, &tokens, &y);
    }
}
