//! CPU vs CUDA agreement of the fused optimizer updates (`Tensor::adam_update`), and
//! `Device::cuda` reporting an unusable GPU as an error.
//!
//! Without a usable GPU each GPU test prints why it skips and passes; with
//! `KEEL_REQUIRE_CUDA=1` it fails instead.

use keel_tensor::ops::AdamStep;
use keel_tensor::{DType, Device, Tensor};

/// GPU 0, or `None` (with a printed reason) when the test must skip.
fn gpu(test: &str) -> Option<Device> {
    match Device::cuda(0) {
        Ok(dev) => {
            keel_tensor::cuda::set_poison_outputs(true);
            Some(dev)
        }
        Err(why) => {
            if std::env::var("KEEL_REQUIRE_CUDA").is_ok_and(|v| v == "1") {
                panic!("{test}: KEEL_REQUIRE_CUDA=1 but {why}");
            }
            eprintln!("skipping {test}: {why}");
            None
        }
    }
}

fn rand(seed: u64, shape: &[usize], lo: f64, hi: f64) -> Tensor {
    Tensor::rand_uniform(seed, lo, hi, shape.to_vec(), DType::F32, &Device::Cpu).unwrap()
}

#[track_caller]
fn same_bits(what: &str, gpu: &Tensor, cpu: &Tensor) {
    assert!(gpu.device().is_cuda(), "{what}: result is on {}", gpu.device());
    assert_eq!(gpu.shape(), cpu.shape(), "{what}: shapes differ");
    let (g, c) = (gpu.to_vec::<f32>().unwrap(), cpu.to_vec::<f32>().unwrap());
    let first_diff = g.iter().zip(&c).position(|(a, b)| a.to_bits() != b.to_bits());
    if let Some(i) = first_diff {
        panic!("{what}: element {i} is {} on CUDA, {} on the CPU", g[i], c[i]);
    }
}

#[test]
fn device_cuda_is_an_error_not_a_panic_without_a_gpu() {
    if keel_tensor::cuda_is_available(0) {
        assert_eq!(Device::cuda(0).unwrap(), Device::Cuda(0));
    } else {
        let e = Device::cuda(0).unwrap_err();
        assert!(!e.to_string().is_empty());
    }
    // an ordinal no machine has
    assert!(Device::cuda(1 << 20).is_err());
}

#[test]
fn adam_update_matches_cpu_bit_for_bit() {
    let Some(dev) = gpu("adam_update_matches_cpu_bit_for_bit") else { return };
    // odd length (tails), moments of both signs, v >= 0
    let shape = [37, 129];
    let p = rand(1, &shape, -1.0, 1.0);
    let g = rand(2, &shape, -0.5, 0.5);
    let m = rand(3, &shape, -0.1, 0.1);
    let v = rand(4, &shape, 0.0, 0.01);
    let vh = rand(5, &shape, 0.0, 0.01);
    let h = AdamStep {
        alpha: 1e-3 * (1.0f64 - 0.999f64.powi(3)).sqrt() / (1.0 - 0.9f64.powi(3)),
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-7,
    };
    let on = |t: &Tensor| t.to_device(&dev).unwrap();
    for amsgrad in [false, true] {
        let cpu = p.adam_update(&g, &m, &v, amsgrad.then_some(&vh), &h).unwrap();
        let cuda = on(&p).adam_update(&on(&g), &on(&m), &on(&v), amsgrad.then(|| on(&vh)).as_ref(), &h).unwrap();
        same_bits("param", &cuda.param, &cpu.param);
        same_bits("m", &cuda.m, &cpu.m);
        same_bits("v", &cuda.v, &cpu.v);
        assert_eq!(cuda.v_hat.is_some(), amsgrad);
        if let (Some(a), Some(b)) = (&cuda.v_hat, &cpu.v_hat) {
            same_bits("v_hat", a, b);
        }
    }
}

#[test]
fn adam_update_on_views_and_errors() {
    let Some(dev) = gpu("adam_update_on_views_and_errors") else { return };
    let h = AdamStep { alpha: 0.01, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 };
    // a transposed (strided) gradient is made contiguous first
    let p = rand(11, &[16, 24], -1.0, 1.0);
    let g = rand(12, &[24, 16], -1.0, 1.0).t().unwrap();
    let m = p.zeros_like().unwrap();
    let v = p.zeros_like().unwrap();
    let cpu = p.adam_update(&g, &m, &v, None, &h).unwrap();
    let on = |t: &Tensor| t.to_device(&dev).unwrap();
    let cuda = on(&p).adam_update(&on(&g), &on(&m), &on(&v), None, &h).unwrap();
    same_bits("param (strided grad)", &cuda.param, &cpu.param);
    // mixed devices are a DeviceMismatch, F64 on CUDA is NotImplemented
    assert!(matches!(
        on(&p).adam_update(&g, &on(&m), &on(&v), None, &h),
        Err(keel_tensor::Error::DeviceMismatch { .. })
    ));
    let p64 = on(&p.to_dtype(DType::F64).unwrap());
    assert!(matches!(p64.adam_update(&p64, &p64, &p64, None, &h), Err(keel_tensor::Error::NotImplemented { .. })));
}
