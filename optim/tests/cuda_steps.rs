//! Every optimizer configuration steps parameters on CUDA as it does on the CPU.
//!
//! Three steps on the fixed quadratic of `optimizers.rs`, once with the parameters on the
//! CPU and once on GPU 0; the trajectories must agree to 1e-6 relative (f32 updates whose
//! reductions, for the clip norms, may sum in another order). Without a usable GPU each
//! test prints why it skips; with `KEEL_REQUIRE_CUDA=1` it fails instead. CI runs it on
//! the CUDA emulator (`tools/cuda-emu`).

mod common;

use common::{curvature, make_params, values};
use keel_autograd::{Gradients, Param};
use keel_optim::schedule::ExponentialDecay;
use keel_optim::{Adadelta, Adagrad, Adam, AdamW, Adamax, Ftrl, Lion, Nadam, Optimizer, RMSprop, Sgd};
use keel_tensor::{DType, Device, Tensor};

/// GPU 0, or `None` (with a printed reason) when the test must skip.
fn gpu(test: &str) -> Option<Device> {
    if keel_tensor::cuda_is_available(0) {
        return Some(Device::Cuda(0));
    }
    let why = if cfg!(feature = "cuda") {
        "no usable CUDA GPU 0 (driver, device or NVRTC missing)"
    } else {
        "keel-optim was built without the `cuda` feature"
    };
    if std::env::var("KEEL_REQUIRE_CUDA").is_ok_and(|v| v == "1") {
        panic!("{test}: KEEL_REQUIRE_CUDA=1 but {why}");
    }
    eprintln!("skipping {test}: {why}");
    None
}

/// The gradient `a * p` of the quadratic, computed on the parameters' device.
fn grads(params: &[Param]) -> Gradients {
    let mut g = Gradients::default();
    for (p, a) in params.iter().zip(curvature()) {
        let a: Vec<f32> = a.iter().map(|&x| x as f32).collect();
        let a = Tensor::from_vec(a, p.shape())
            .and_then(|a| a.to_dtype(p.value().dtype()))
            .and_then(|a| a.to_device(&p.value().device()))
            .expect("curvature tensor");
        g.insert(p.id(), p.value().mul(&a).expect("mul"));
    }
    g
}

fn trajectory(opt: &mut dyn Optimizer, params: &[Param]) -> Vec<Vec<Vec<f64>>> {
    (0..3)
        .map(|_| {
            opt.step(params, &grads(params)).expect("step");
            values(params)
        })
        .collect()
}

/// Runs a fresh optimizer from `make` on CPU and CUDA parameters and compares.
fn agree<O: Optimizer>(what: &str, dev: &Device, make: impl Fn() -> O) {
    agree_in(what, dev, DType::F32, 1e-6, make)
}

/// [`agree`] with the parameters (and so the gradients and slots) in `dtype`, to `tol` relative.
fn agree_in<O: Optimizer>(what: &str, dev: &Device, dtype: DType, tol: f64, make: impl Fn() -> O) {
    let params = || -> Vec<Param> {
        make_params().iter().map(|p| Param::new(p.value().to_dtype(dtype).expect("to dtype"))).collect()
    };
    let cpu = trajectory(&mut make(), &params());
    let on_gpu: Vec<Param> =
        params().iter().map(|p| Param::new(p.value().to_device(dev).expect("to device"))).collect();
    let mut opt = make();
    let got = trajectory(&mut opt, &on_gpu);
    for p in &on_gpu {
        assert!(p.value().device().is_cuda(), "{what}: a parameter left the GPU");
        assert_eq!(p.value().dtype(), dtype, "{what}: a parameter changed its dtype");
    }
    for (s, (gs, cs)) in got.iter().zip(&cpu).enumerate() {
        for (i, (gp, cp)) in gs.iter().zip(cs).enumerate() {
            for (j, (&g, &c)) in gp.iter().zip(cp).enumerate() {
                assert!(
                    (g - c).abs() <= tol * c.abs().max(1.0),
                    "{what}: step {s} param {i}[{j}]: cuda {g} vs cpu {c}"
                );
            }
        }
    }
    assert_eq!(opt.iterations(), 3, "{what}");
}

#[test]
fn every_optimizer_steps_on_cuda_like_on_the_cpu() {
    let Some(dev) = gpu("every_optimizer_steps_on_cuda_like_on_the_cpu") else { return };
    agree("sgd", &dev, || Sgd::new(0.1));
    agree("sgd momentum", &dev, || Sgd::new(0.1).momentum(0.9));
    agree("sgd nesterov", &dev, || Sgd::new(0.1).momentum(0.9).nesterov(true));
    agree("sgd weight decay", &dev, || Sgd::new(0.1).momentum(0.5).weight_decay(0.05));
    agree("adam", &dev, || Adam::new(0.1));
    agree("adam amsgrad", &dev, || Adam::new(0.1).beta_1(0.8).beta_2(0.9).amsgrad(true));
    agree("adamw", &dev, || AdamW::new(0.05).weight_decay(0.1));
    agree("rmsprop", &dev, || RMSprop::new(0.01));
    agree("rmsprop centered momentum", &dev, || RMSprop::new(0.01).rho(0.8).momentum(0.5).centered(true));
    agree("adagrad", &dev, || Adagrad::new(0.1));
    agree("adam schedule", &dev, || Adam::new(ExponentialDecay::new(0.1, 1, 0.5).staircase(true)));
    agree("nadam", &dev, || Nadam::new(0.1));
    agree("nadam weight decay", &dev, || Nadam::new(0.05).weight_decay(0.1));
    agree("adamax", &dev, || Adamax::new(0.1).beta_1(0.8).beta_2(0.9).epsilon(1e-3));
    agree("adadelta", &dev, || Adadelta::new(0.5).rho(0.8).epsilon(1e-4).weight_decay(0.05));
    agree("lion", &dev, || Lion::new(0.01).beta_1(0.5).beta_2(0.9).weight_decay(0.5));
    agree("lion momentum sign", &dev, || Lion::new(0.1).beta_1(0.99).beta_2(0.5));
    agree("ftrl", &dev, || Ftrl::new(0.1));
    agree("ftrl regularized", &dev, || {
        Ftrl::new(0.1)
            .learning_rate_power(-0.7)
            .initial_accumulator_value(0.2)
            .l1_regularization_strength(0.01)
            .l2_regularization_strength(0.02)
            .l2_shrinkage_regularization_strength(0.05)
            .beta(0.3)
    });
    agree("clipnorm", &dev, || Sgd::new(0.1).clipnorm(1.0));
    agree("global clipnorm", &dev, || Sgd::new(0.1).global_clipnorm(2.0));
    agree("clipvalue", &dev, || Sgd::new(0.1).clipvalue(0.5));
}

/// F64 parameters step on CUDA in f64 (the fused Adam/SGD kernels in double, the other
/// rules' op chains on the F64 kernels) like on the CPU: to 1e-12 relative (the clip norms'
/// sums may add in another order; the rest is the CPU's arithmetic).
#[test]
fn f64_parameters_step_on_cuda_like_on_the_cpu() {
    let Some(dev) = gpu("f64_parameters_step_on_cuda_like_on_the_cpu") else { return };
    let f64 = DType::F64;
    agree_in("sgd", &dev, f64, 1e-12, || Sgd::new(0.1));
    agree_in("sgd nesterov", &dev, f64, 1e-12, || Sgd::new(0.1).momentum(0.9).nesterov(true));
    agree_in("sgd weight decay", &dev, f64, 1e-12, || Sgd::new(0.1).momentum(0.5).weight_decay(0.05));
    agree_in("adam", &dev, f64, 1e-12, || Adam::new(0.1));
    agree_in("adam amsgrad", &dev, f64, 1e-12, || Adam::new(0.1).beta_1(0.8).beta_2(0.9).amsgrad(true));
    agree_in("adamw", &dev, f64, 1e-12, || AdamW::new(0.05).weight_decay(0.1));
    agree_in("rmsprop centered momentum", &dev, f64, 1e-12, || {
        RMSprop::new(0.01).rho(0.8).momentum(0.5).centered(true)
    });
    agree_in("adagrad", &dev, f64, 1e-12, || Adagrad::new(0.1));
    agree_in("nadam", &dev, f64, 1e-12, || Nadam::new(0.05).weight_decay(0.1));
    agree_in("adamax", &dev, f64, 1e-12, || Adamax::new(0.1));
    agree_in("adadelta", &dev, f64, 1e-12, || Adadelta::new(0.5).rho(0.8));
    agree_in("lion", &dev, f64, 1e-12, || Lion::new(0.1).beta_1(0.99).beta_2(0.5));
    agree_in("ftrl", &dev, f64, 1e-12, || {
        Ftrl::new(0.1).learning_rate_power(-0.7).l1_regularization_strength(0.01).beta(0.3)
    });
    agree_in("clipnorm", &dev, f64, 1e-12, || Sgd::new(0.1).clipnorm(1.0));
    agree_in("global clipnorm", &dev, f64, 1e-12, || Sgd::new(0.1).global_clipnorm(2.0));
    agree_in("clipvalue", &dev, f64, 1e-12, || Sgd::new(0.1).clipvalue(0.5));
}

/// 60 parameters (three multi-tensor groups of up to 24 on a GPU), of sizes around the
/// kernels' 2048-element tile, every seventh without a gradient: Adam (also AMSGrad and
/// AdamW) and momentum SGD give the CPU's bits on CUDA, step after step.
#[test]
fn many_parameters_step_in_groups_with_the_cpus_bits() {
    let Some(dev) = gpu("many_parameters_step_in_groups_with_the_cpus_bits") else { return };
    let sizes = [1usize, 2047, 2048, 2049, 5, 4100, 64, 3];
    let init = |k: usize| {
        let n = sizes[k % sizes.len()] + k;
        let v: Vec<f32> = (0..n).map(|i| ((i * 7 + k * 13) % 17) as f32 / 17.0 - 0.4).collect();
        Tensor::from_vec(v, vec![n]).expect("tensor")
    };
    let run = |opt: &mut dyn Optimizer, dev: &Device| -> Vec<Vec<u32>> {
        let params: Vec<Param> = (0..60).map(|k| Param::new(init(k).to_device(dev).expect("to device"))).collect();
        for step in 0..3 {
            let mut g = Gradients::default();
            for (k, p) in params.iter().enumerate().filter(|(k, _)| k % 7 != 3) {
                let scale = 0.5 + 0.1 * (step + k % 5) as f64;
                g.insert(p.id(), p.value().mul_scalar(scale).expect("mul").sin().expect("sin"));
            }
            opt.step(&params, &g).expect("step");
        }
        params.iter().map(|p| p.value().to_vec::<f32>().expect("read").iter().map(|x| x.to_bits()).collect()).collect()
    };
    let cases: Vec<(&str, Box<dyn Fn() -> Box<dyn Optimizer>>)> = vec![
        ("adam", Box::new(|| Box::new(Adam::new(0.01)))),
        ("adam amsgrad", Box::new(|| Box::new(Adam::new(0.01).amsgrad(true)))),
        ("adamw", Box::new(|| Box::new(AdamW::new(0.01)))),
        ("sgd momentum", Box::new(|| Box::new(Sgd::new(0.05).momentum(0.9)))),
    ];
    for (what, make) in cases {
        let cpu = run(&mut *make(), &Device::Cpu);
        let cuda = run(&mut *make(), &dev);
        for (k, (a, b)) in cuda.iter().zip(&cpu).enumerate() {
            assert!(a == b, "{what}: parameter {k} ({} elements) differs from the CPU's bits", a.len());
        }
        // parameters without a gradient never moved
        assert_eq!(cpu[3], init(3).to_vec::<f32>().expect("read").iter().map(|x| x.to_bits()).collect::<Vec<_>>());
    }
}
