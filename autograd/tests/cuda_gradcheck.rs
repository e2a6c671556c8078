//! Finite-difference checks (float64) with the inputs on GPU 0: both passes run on the CUDA
//! kernels in f64 (convolution, pooling, matmul, elementwise, reductions, softmax
//! cross-entropy), so each op's CUDA backward is checked against its own CUDA forward,
//! and the CUDA gradients against the CPU's.
//!
//! Without a usable GPU each test prints why it skips and passes; with
//! `KEEL_REQUIRE_CUDA=1` it fails instead. CI runs it on the CUDA emulator
//! (`tools/cuda-emu`).

use keel_autograd::{gradcheck, loss, GradcheckReport, Result, Tape, Var};
use keel_tensor::{DType, Device, Padding, Tensor};

/// GPU 0, or `None` (with a printed reason) when the test must skip.
fn gpu(test: &str) -> Option<Device> {
    if keel_tensor::cuda_is_available(0) {
        return Some(Device::Cuda(0));
    }
    let why = if cfg!(feature = "cuda") {
        "no usable CUDA GPU 0 (driver, device or NVRTC missing)"
    } else {
        "keel-autograd was built without the `cuda` feature"
    };
    if std::env::var("KEEL_REQUIRE_CUDA").is_ok_and(|v| v == "1") {
        panic!("{test}: KEEL_REQUIRE_CUDA=1 but {why}");
    }
    eprintln!("skipping {test}: {why}");
    None
}

/// Values with `|x|` in `[0.2, 1.5]` and random signs (no kinks at 0), in f64 on the CPU.
fn away_from_zero(seed: u64, shape: &[usize]) -> Tensor {
    let mag = Tensor::rand_uniform(seed, 0.2, 1.5, shape.to_vec(), DType::F64, &Device::Cpu).unwrap();
    let sign = Tensor::rand_uniform(seed + 1000, -1.0, 1.0, shape.to_vec(), DType::F64, &Device::Cpu).unwrap();
    mag.mul(&sign.sign().unwrap()).unwrap()
}

/// Gradcheck of `f` at `inputs` moved to `dev` (it must pass there), and its analytic
/// gradients on `dev` against the CPU's (the same math in f64, summed in other orders).
#[track_caller]
fn check_on(dev: &Device, what: &str, f: impl Fn(&[Var]) -> Result<Var>, inputs: &[Tensor]) -> GradcheckReport {
    let moved: Vec<Tensor> = inputs.iter().map(|t| t.to_device(dev).unwrap()).collect();
    let report = gradcheck(&f, &moved).unwrap_or_else(|e| panic!("{what} on {dev}: {e}"));
    assert!(report.checked > 0, "{what}: nothing checked");
    let grads = |xs: &[Tensor]| -> Vec<Vec<f64>> {
        let tape = Tape::new();
        let vars: Vec<Var> = xs.iter().map(|t| tape.leaf(t.clone())).collect();
        let out = f(&vars).unwrap().sum_all().unwrap();
        assert_eq!(out.value().device(), xs[0].device(), "{what}: the output left the inputs' device");
        let g = tape.backward(&out).unwrap();
        vars.iter().map(|v| g.get_var(v).map_or_else(Vec::new, |t| t.to_vec::<f64>().unwrap())).collect()
    };
    for (i, (a, b)) in grads(&moved).iter().zip(grads(inputs)).enumerate() {
        assert_eq!(a.len(), b.len(), "{what}: gradient {i} present on one device only");
        for (j, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-12 * y.abs().max(1.0),
                "{what}: gradient {i}[{j}]: {x} on {dev}, {y} on the CPU"
            );
        }
    }
    report
}

#[test]
fn convolution_and_pooling_on_cuda() {
    let Some(dev) = gpu("convolution_and_pooling_on_cuda") else { return };
    let x = away_from_zero(1, &[2, 5, 6, 2]);
    let k = away_from_zero(2, &[3, 3, 2, 3]);
    for (st, pad, dil) in
        [((1, 1), Padding::Valid, (1, 1)), ((2, 2), Padding::Same, (1, 1)), ((1, 1), Padding::Same, (2, 1))]
    {
        let what = format!("conv2d stride {st:?} {pad:?} dilation {dil:?}");
        check_on(&dev, &what, |v| v[0].conv2d(&v[1], st, pad, dil), &[x.clone(), k.clone()]);
    }
    // transposed convolution (Conv2DTranspose): the forward and backward kernels swapped
    let kt = away_from_zero(3, &[3, 3, 4, 2]);
    for (hw, st, pad) in
        [((7, 8), (1, 1), Padding::Valid), ((10, 12), (2, 2), Padding::Same), ((11, 13), (2, 2), Padding::Valid)]
    {
        let what = format!("conv2d_transpose to {hw:?} stride {st:?} {pad:?}");
        check_on(&dev, &what, |v| v[0].conv2d_transpose(&v[1], hw, st, pad, (1, 1)), &[x.clone(), kt.clone()]);
    }
    // distinct values, so no window has a tie for its maximum (finite differences across a
    // tie see the other element)
    let distinct: Vec<f64> = (0..2 * 6 * 7 * 2).map(|i| ((i * 37) % 168) as f64 / 50.0 - 1.6).collect();
    let p = Tensor::from_vec(distinct, vec![2, 6, 7, 2]).unwrap();
    for (pool, st, pad) in [((2, 2), (2, 2), Padding::Valid), ((3, 3), (2, 2), Padding::Same)] {
        let what = format!("pool {pool:?} stride {st:?} {pad:?}");
        check_on(&dev, &format!("max {what}"), |v| v[0].max_pool2d(pool, st, pad), std::slice::from_ref(&p));
        check_on(&dev, &format!("avg {what}"), |v| v[0].avg_pool2d(pool, st, pad), std::slice::from_ref(&p));
    }
}

/// A small CNN's loss end to end on the GPU in f64: conv + bias + ReLU, max pooling, a dense
/// layer and softmax cross-entropy, gradients w.r.t. every weight and the input.
#[test]
fn small_cnn_loss_on_cuda() {
    let Some(dev) = gpu("small_cnn_loss_on_cuda") else { return };
    let x = away_from_zero(10, &[2, 6, 6, 1]);
    let k = away_from_zero(11, &[3, 3, 1, 4]);
    let b = away_from_zero(12, &[4]);
    let w = away_from_zero(13, &[36, 3]);
    let labels = Tensor::from_vec(vec![2i64, 0], vec![2]).unwrap();
    let targets = labels.to_device(&dev).unwrap();
    let net = |v: &[Var], t: &Tensor| -> Result<Var> {
        let h = v[0].conv2d(&v[1], (1, 1), Padding::Same, (1, 1))?.add(&v[2])?.relu()?;
        let h = h.max_pool2d((2, 2), (2, 2), Padding::Valid)?.reshape((2, 36))?;
        loss::softmax_cross_entropy(&h.matmul(&v[3])?, t, None)?.mean_all()
    };
    // labels on the inputs' device (check_on also runs the network on the CPU)
    let on_device = |v: &[Var]| if v[0].value().device().is_cuda() { targets.clone() } else { labels.clone() };
    let report = check_on(&dev, "small CNN", |v| net(v, &on_device(v)), &[x, k, b, w]);
    assert_eq!(report.checked, 72 + 36 + 4 + 108);
}

/// The fused LSTM cell on the GPU in f64: through h, through c, and two chained steps.
#[test]
fn lstm_cell_on_cuda() {
    let Some(dev) = gpu("lstm_cell_on_cuda") else { return };
    let (z, c0) = (away_from_zero(20, &[3, 8]), away_from_zero(21, &[3, 2]));
    let inputs = [z, c0];
    check_on(&dev, "lstm_cell h", |v| Ok(v[0].lstm_cell(&v[1])?.0), &inputs);
    check_on(&dev, "lstm_cell c", |v| Ok(v[0].lstm_cell(&v[1])?.1), &inputs);
    check_on(
        &dev,
        "lstm_cell, two steps",
        |v| {
            let (h1, c1) = v[0].lstm_cell(&v[1])?;
            let (h2, c2) = v[0].mul_scalar(0.5)?.lstm_cell(&c1)?;
            h1.add(&h2)?.add(&c2)
        },
        &inputs,
    );
}

/// The fused GRU cell on the GPU in f64: one step with a strided input projection, and two
/// chained steps.
#[test]
fn gru_cell_on_cuda() {
    let Some(dev) = gpu("gru_cell_on_cuda") else { return };
    let (seq, p, h0) = (away_from_zero(22, &[3, 2, 6]), away_from_zero(23, &[3, 6]), away_from_zero(24, &[3, 2]));
    let inputs = [seq, p, h0];
    check_on(&dev, "gru_cell", |v| v[0].narrow(1, 1, 1)?.squeeze(1)?.gru_cell(&v[1], &v[2]), &inputs);
    check_on(
        &dev,
        "gru_cell, two steps",
        |v| {
            let x = v[0].narrow(1, 0, 1)?.squeeze(1)?;
            let h1 = x.gru_cell(&v[1], &v[2])?;
            let h2 = v[0].narrow(1, 1, 1)?.squeeze(1)?.gru_cell(&v[1].mul_scalar(0.5)?, &h1)?;
            h1.add(&h2)
        },
        &inputs,
    );
}

/// The fused LSTM and GRU sequences on the GPU in f64, both directions: every input's
/// gradient (the projections, the recurrent kernel, the initial states, GRU's bias).
#[test]
fn rnn_sequences_on_cuda() {
    let Some(dev) = gpu("rnn_sequences_on_cuda") else { return };
    let (b, t, u) = (2, 3, 2);
    let lstm = [
        away_from_zero(25, &[b, t, 4 * u]),
        away_from_zero(26, &[u, 4 * u]),
        away_from_zero(27, &[b, u]),
        away_from_zero(28, &[b, u]),
    ];
    let gru = [
        away_from_zero(29, &[b, t, 3 * u]),
        away_from_zero(30, &[u, 3 * u]),
        away_from_zero(31, &[b, u]),
        away_from_zero(32, &[3 * u]),
    ];
    let join = |outs: &[Var]| -> Result<Var> {
        let flat = outs.iter().map(|o| o.flatten_from(0)).collect::<Result<Vec<_>>>()?;
        Var::concat(&flat.iter().collect::<Vec<_>>(), 0)
    };
    for back in [false, true] {
        check_on(
            &dev,
            "lstm_sequence",
            |v| {
                let (hs, h, c) = v[0].lstm_sequence(&v[1], &v[2], &v[3], back)?;
                join(&[hs, h, c])
            },
            &lstm,
        );
        check_on(
            &dev,
            "gru_sequence",
            |v| {
                let (hs, h) = v[0].gru_sequence(&v[1], Some(&v[3]), &v[2], back)?;
                join(&[hs, h])
            },
            &gru,
        );
    }
}

/// Depthwise convolution on the GPU in f64 (the three depthwise kernels): gradcheck there,
/// and the same gradients as the CPU's; then a separable block (depthwise, pointwise, bias,
/// tanh) end to end.
#[test]
fn depthwise_conv2d_on_cuda() {
    let Some(dev) = gpu("depthwise_conv2d_on_cuda") else { return };
    let x = away_from_zero(20, &[2, 5, 6, 2]);
    for (ks, st, pad, dil) in [
        ([3, 3, 2, 1], (1, 1), Padding::Valid, (1, 1)),
        ([3, 3, 2, 3], (2, 2), Padding::Same, (1, 1)),
        ([2, 3, 2, 2], (1, 1), Padding::Same, (2, 1)),
    ] {
        let k = away_from_zero(21, &ks);
        let what = format!("depthwise_conv2d {ks:?} stride {st:?} {pad:?} dilation {dil:?}");
        check_on(&dev, &what, |v| v[0].depthwise_conv2d(&v[1], st, pad, dil), &[x.clone(), k]);
    }
    let (k, pk, b) = (away_from_zero(22, &[3, 3, 2, 2]), away_from_zero(23, &[1, 1, 4, 3]), away_from_zero(24, &[3]));
    check_on(
        &dev,
        "separable block",
        |v| {
            v[0].depthwise_conv2d(&v[1], (1, 1), Padding::Same, (1, 1))?
                .conv2d(&v[2], (1, 1), Padding::Valid, (1, 1))?
                .add(&v[3])?
                .tanh()
        },
        &[x, k, pk, b],
    );
}

/// The affine image transform's CUDA backward (atomicAdd, f64) against its CUDA forward by
/// finite differences, and against the CPU's gradient, for every fill mode and both
/// interpolations; transforms partly outside the image, sample points between pixels.
#[test]
fn affine_transform_gradcheck_on_gpu() {
    use keel_tensor::{FillMode, ImageInterpolation};
    let Some(dev) = gpu("affine_transform_gradcheck_on_gpu") else { return };
    #[rustfmt::skip]
    let t = Tensor::from_vec(vec![
        0.93, -0.37, 1.13, 0.41, 0.87, -0.71, 0.0, 0.0,
        1.21, 0.17, -0.43, -0.11, 0.79, 0.57, 0.031, -0.017,
    ], (2, 8)).unwrap();
    let td = t.to_device(&dev).unwrap();
    let x = away_from_zero(31, &[2, 4, 5, 2]);
    for mode in [FillMode::Reflect, FillMode::Wrap, FillMode::Constant, FillMode::Nearest] {
        for interp in [ImageInterpolation::Bilinear, ImageInterpolation::Nearest] {
            // the closure runs on both devices: pick the transforms on the input's
            let f = |v: &[Var]| {
                let t = if v[0].value().device() == dev { &td } else { &t };
                v[0].affine_transform(t, interp, mode, 0.3)
            };
            check_on(&dev, &format!("affine_transform {mode:?} {interp:?}"), f, std::slice::from_ref(&x));
        }
    }
}
