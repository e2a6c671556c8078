//! CPU vs CUDA agreement of the fused optimizer updates (`Tensor::adam_update`,
//! `Tensor::sgd_update`; the latter also against its op chain on the CPU), and
//! `Device::cuda` reporting an unusable GPU as an error.
//!
//! Without a usable GPU each GPU test prints why it skips and passes; with
//! `KEEL_REQUIRE_CUDA=1` it fails instead.

use keel_tensor::ops::{AdamStep, SgdStep};
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
    rand_dt(seed, shape, lo, hi, DType::F32)
}

/// Uniform values in about `[lo, hi)` in `dt`. `rand_uniform` draws f32 values, so F64 ones
/// get a second draw below f32's precision: they use all 53 bits.
fn rand_dt(seed: u64, shape: &[usize], lo: f64, hi: f64, dt: DType) -> Tensor {
    let draw =
        |seed: u64, lo: f64, hi: f64| Tensor::rand_uniform(seed, lo, hi, shape.to_vec(), dt, &Device::Cpu).unwrap();
    let x = draw(seed, lo, hi);
    if dt != DType::F64 {
        return x;
    }
    x.add(&draw(seed ^ 0xf64, 0.0, 1.0).mul_scalar((hi - lo) * 2f64.powi(-26)).unwrap()).unwrap()
}

/// Same dtype, shape and bits (F32 values compared through their exact f64 widening).
#[track_caller]
fn same_bits(what: &str, gpu: &Tensor, cpu: &Tensor) {
    assert!(gpu.device().is_cuda(), "{what}: result is on {}", gpu.device());
    assert_eq!(gpu.shape(), cpu.shape(), "{what}: shapes differ");
    assert_eq!(gpu.dtype(), cpu.dtype(), "{what}: dtypes differ");
    let (g, c) = (gpu.to_vec_f64().unwrap(), cpu.to_vec_f64().unwrap());
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
    let h = AdamStep {
        alpha: 1e-3 * (1.0f64 - 0.999f64.powi(3)).sqrt() / (1.0 - 0.9f64.powi(3)),
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-7,
    };
    let on = |t: &Tensor| t.to_device(&dev).unwrap();
    for (dt, amsgrad) in [(DType::F32, false), (DType::F32, true), (DType::F64, false), (DType::F64, true)] {
        let p = rand_dt(1, &shape, -1.0, 1.0, dt);
        let g = rand_dt(2, &shape, -0.5, 0.5, dt);
        let m = rand_dt(3, &shape, -0.1, 0.1, dt);
        let v = rand_dt(4, &shape, 0.0, 0.01, dt);
        let vh = rand_dt(5, &shape, 0.0, 0.01, dt);
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
    // mixed devices are a DeviceMismatch, mixed dtypes a DTypeMismatch
    assert!(matches!(
        on(&p).adam_update(&g, &on(&m), &on(&v), None, &h),
        Err(keel_tensor::Error::DeviceMismatch { .. })
    ));
    let g64 = on(&g.to_dtype(DType::F64).unwrap());
    assert!(matches!(
        on(&p).adam_update(&g64, &on(&m), &on(&v), None, &h),
        Err(keel_tensor::Error::DTypeMismatch { .. })
    ));
}

/// `lr_g = g lr; m' = m mom - lr_g; p' = p - lr_g | p + m' | p + (m' mom - lr_g)` as ops.
fn sgd_chain(p: &Tensor, g: &Tensor, m: Option<&Tensor>, h: &SgdStep) -> (Tensor, Option<Tensor>) {
    let lr_g = g.mul_scalar(h.learning_rate).unwrap();
    let Some(m) = m else { return (p.sub(&lr_g).unwrap(), None) };
    let m = m.mul_scalar(h.momentum).unwrap().sub(&lr_g).unwrap();
    let step = if h.nesterov { m.mul_scalar(h.momentum).unwrap().sub(&lr_g).unwrap() } else { m.clone() };
    (p.add(&step).unwrap(), Some(m))
}

#[test]
fn sgd_update_is_its_op_chain_on_the_cpu() {
    for dt in [DType::F32, DType::F64] {
        let p = rand(11, &[5, 33], -1.0, 1.0).to_dtype(dt).unwrap();
        let g = rand(12, &[5, 33], -1.0, 1.0).to_dtype(dt).unwrap();
        let m = rand(13, &[5, 33], -0.1, 0.1).to_dtype(dt).unwrap();
        for (momentum, nesterov, with_m) in [(0.0, false, false), (0.9, false, true), (0.9, true, true)] {
            let h = SgdStep { learning_rate: 0.037, momentum, nesterov };
            let mm = with_m.then_some(&m);
            let fused = p.sgd_update(&g, mm, &h).unwrap();
            let (cp, cm) = sgd_chain(&p, &g, mm, &h);
            let bits = |t: &Tensor| t.to_vec_f64().unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fused.param), bits(&cp), "{dt} momentum {momentum} nesterov {nesterov}: param");
            assert_eq!(fused.momentum.as_ref().map(bits), cm.as_ref().map(bits), "{dt}: momentum buffer");
        }
    }
    // errors name the op and the shapes / dtypes
    let p = rand(14, &[3, 4], -1.0, 1.0);
    let h = SgdStep { learning_rate: 0.1, momentum: 0.0, nesterov: false };
    let e = p.sgd_update(&rand(15, &[4, 3], -1.0, 1.0), None, &h).unwrap_err().to_string();
    assert!(e.contains("sgd_update") && e.contains("[3, 4]") && e.contains("[4, 3]"), "{e}");
    let e = p.sgd_update(&p.to_dtype(DType::F64).unwrap(), None, &h).unwrap_err().to_string();
    assert!(e.contains("sgd_update"), "{e}");
}

#[test]
fn sgd_update_matches_cpu_bit_for_bit() {
    let Some(dev) = gpu("sgd_update_matches_cpu_bit_for_bit") else { return };
    let shape = [37, 129];
    let on = |t: &Tensor| t.to_device(&dev).unwrap();
    for dt in [DType::F32, DType::F64] {
        let p = rand_dt(21, &shape, -1.0, 1.0, dt);
        let g = rand_dt(22, &shape, -0.5, 0.5, dt);
        let m = rand_dt(23, &shape, -0.1, 0.1, dt);
        for (momentum, nesterov, with_m) in [(0.0, false, false), (0.9, false, true), (0.8, true, true)] {
            let h = SgdStep { learning_rate: 0.013, momentum, nesterov };
            let cpu = p.sgd_update(&g, with_m.then_some(&m), &h).unwrap();
            let cuda = on(&p).sgd_update(&on(&g), with_m.then(|| on(&m)).as_ref(), &h).unwrap();
            same_bits(&format!("{dt} param"), &cuda.param, &cpu.param);
            assert_eq!(cuda.momentum.is_some(), with_m);
            if let (Some(a), Some(b)) = (&cuda.momentum, &cpu.momentum) {
                same_bits(&format!("{dt} momentum"), a, b);
            }
        }
    }
    let (p, m) = (rand(21, &shape, -1.0, 1.0), rand(23, &shape, -0.1, 0.1));
    // a transposed (strided) gradient view
    let gt = rand(24, &[129, 37], -0.5, 0.5);
    let h = SgdStep { learning_rate: 0.1, momentum: 0.9, nesterov: false };
    let cpu = p.sgd_update(&gt.t().unwrap(), Some(&m), &h).unwrap();
    let cuda = on(&p).sgd_update(&on(&gt).t().unwrap(), Some(&on(&m)), &h).unwrap();
    same_bits("param, strided gradient", &cuda.param, &cpu.param);
}

/// Sizes around the kernels' 2048-element tile, empty ones, and enough tensors (53) for
/// three launches of 24. The `_many` tests mix AMSGrad/momentum and weight decay per tensor,
/// and F32 with F64 parameters ([`many_dtype`]).
fn many_shapes() -> Vec<Vec<usize>> {
    let sizes = [1usize, 7, 2047, 2048, 2049, 0, 4096 + 5, 31, 10_000, 3];
    (0..53)
        .map(|k| {
            let s = sizes[k % sizes.len()];
            vec![if s == 0 { 0 } else { s + k / sizes.len() }]
        })
        .collect()
}

/// Tensor `k`'s dtype in the `_many` tests: every fifth one F64 (the F64 group runs its own
/// multi-tensor launch; results come back in the list's order).
fn many_dtype(k: usize) -> DType {
    if k % 5 == 2 {
        DType::F64
    } else {
        DType::F32
    }
}

#[test]
fn adam_update_many_matches_cpu_bit_for_bit() {
    let Some(dev) = gpu("adam_update_many_matches_cpu_bit_for_bit") else { return };
    let h = AdamStep { alpha: 3e-3, beta_1: 0.9, beta_2: 0.99, epsilon: 1e-7 };
    let on = |t: &Tensor| t.to_device(&dev).unwrap();
    let shapes = many_shapes();
    // per tensor: p, g, m, v, v_hat (AMSGrad on every third tensor)
    let cpu: Vec<[Tensor; 5]> = shapes
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let (seed, dt) = (100 + 5 * k as u64, many_dtype(k));
            [
                rand_dt(seed, s, -1.0, 1.0, dt),
                rand_dt(seed + 1, s, -0.5, 0.5, dt),
                rand_dt(seed + 2, s, -0.1, 0.1, dt),
                rand_dt(seed + 3, s, 0.0, 0.01, dt),
                rand_dt(seed + 4, s, 0.0, 0.01, dt),
            ]
        })
        .collect();
    let gpu: Vec<[Tensor; 5]> = cpu.iter().map(|x| x.each_ref().map(on)).collect();
    fn operands(xs: &[[Tensor; 5]]) -> Vec<keel_tensor::ops::AdamOperands<'_>> {
        xs.iter()
            .enumerate()
            .map(|(k, [p, g, m, v, vh])| keel_tensor::ops::AdamOperands {
                param: p,
                // decoupled weight decay on every fourth tensor, fused into the launch on CUDA
                weight_decay: (k % 4 == 1).then_some(3e-3),
                grad: g,
                m,
                v,
                v_hat: (k % 3 == 0).then_some(vh),
            })
            .collect()
    }
    let want = keel_tensor::ops::adam_update_many(&operands(&cpu), &h).unwrap();
    let got = keel_tensor::ops::adam_update_many(&operands(&gpu), &h).unwrap();
    assert_eq!(got.len(), shapes.len());
    for (k, (a, b)) in got.iter().zip(&want).enumerate() {
        same_bits(&format!("tensor {k} {:?}: param", shapes[k]), &a.param, &b.param);
        same_bits(&format!("tensor {k}: m"), &a.m, &b.m);
        same_bits(&format!("tensor {k}: v"), &a.v, &b.v);
        assert_eq!(a.v_hat.is_some(), k % 3 == 0, "tensor {k}: v_hat");
        if let (Some(x), Some(y)) = (&a.v_hat, &b.v_hat) {
            same_bits(&format!("tensor {k}: v_hat"), x, y);
        }
        // and each the same as its weight decay's op chain then the single-tensor update
        let [p, g, m, v, vh] = &cpu[k];
        let p = if k % 4 == 1 { p.sub(&p.mul_scalar(3e-3).unwrap()).unwrap() } else { p.clone() };
        let one = p.adam_update(g, m, v, (k % 3 == 0).then_some(vh), &h).unwrap();
        same_bits(&format!("tensor {k}: param vs adam_update"), &a.param, &one.param);
    }
    // a mismatched operand anywhere in the list is an error naming the op and both shapes
    let bad = rand(9, &[5], 0.0, 1.0).to_device(&dev).unwrap();
    let mut ops = operands(&gpu);
    ops[30].grad = &bad;
    let e = keel_tensor::ops::adam_update_many(&ops, &h).unwrap_err().to_string();
    assert!(e.contains("adam_update") && e.contains("[5]"), "{e}");
}

#[test]
fn sgd_update_many_matches_cpu_bit_for_bit() {
    let Some(dev) = gpu("sgd_update_many_matches_cpu_bit_for_bit") else { return };
    let on = |t: &Tensor| t.to_device(&dev).unwrap();
    let shapes = many_shapes();
    let cpu: Vec<[Tensor; 3]> = shapes
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let (seed, dt) = (700 + 3 * k as u64, many_dtype(k));
            [rand_dt(seed, s, -1.0, 1.0, dt), rand_dt(seed + 1, s, -0.5, 0.5, dt), rand_dt(seed + 2, s, -0.1, 0.1, dt)]
        })
        .collect();
    let gpu: Vec<[Tensor; 3]> = cpu.iter().map(|x| x.each_ref().map(on)).collect();
    // momentum buffers on every other tensor: the kernel handles both kinds in one launch
    fn operands(xs: &[[Tensor; 3]]) -> Vec<keel_tensor::ops::SgdOperands<'_>> {
        xs.iter()
            .enumerate()
            .map(|(k, [p, g, m])| keel_tensor::ops::SgdOperands {
                param: p,
                weight_decay: (k % 3 == 2).then_some(0.01),
                grad: g,
                momentum: (k % 2 == 1).then_some(m),
            })
            .collect()
    }
    for nesterov in [false, true] {
        let h = SgdStep { learning_rate: 0.021, momentum: 0.85, nesterov };
        let want = keel_tensor::ops::sgd_update_many(&operands(&cpu), &h).unwrap();
        let got = keel_tensor::ops::sgd_update_many(&operands(&gpu), &h).unwrap();
        for (k, (a, b)) in got.iter().zip(&want).enumerate() {
            same_bits(&format!("nesterov {nesterov}, tensor {k} {:?}: param", shapes[k]), &a.param, &b.param);
            assert_eq!(a.momentum.is_some(), k % 2 == 1);
            if let (Some(x), Some(y)) = (&a.momentum, &b.momentum) {
                same_bits(&format!("tensor {k}: momentum"), x, y);
            }
        }
    }
}
