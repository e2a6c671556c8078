//! Creation, views (no copies), contiguous(), casts between all dtypes,
//! to_vec/to_scalar, in-place assign, and shape errors.

mod common;
use common::*;
use keel_tensor::{DType, Device, Error, Tensor};

#[test]
fn creation_ops() {
    let cpu = Device::Cpu;
    assert_eq!(Tensor::zeros((2, 2), DType::F32, &cpu).unwrap().to_vec::<f32>().unwrap(), vec![0.0; 4]);
    assert_eq!(Tensor::ones(3, DType::I64, &cpu).unwrap().to_vec::<i64>().unwrap(), vec![1; 3]);
    assert_eq!(Tensor::full(2.5, (1, 2), DType::F64, &cpu).unwrap().to_vec::<f64>().unwrap(), vec![2.5, 2.5]);
    assert_eq!(Tensor::arange(0.0, 5.0, 2.0, DType::I64, &cpu).unwrap().to_vec::<i64>().unwrap(), vec![0, 2, 4]);
    assert_eq!(
        Tensor::arange(1.0, 0.0, -0.25, DType::F32, &cpu).unwrap().to_vec::<f32>().unwrap(),
        vec![1.0, 0.75, 0.5, 0.25]
    );
    assert!(Tensor::arange(0.0, 1.0, 0.0, DType::F32, &cpu).is_err());
    assert_eq!(
        Tensor::linspace(0.0, 1.0, 5, DType::F32, &cpu).unwrap().to_vec::<f32>().unwrap(),
        vec![0.0, 0.25, 0.5, 0.75, 1.0]
    );
    assert_eq!(Tensor::eye(3, DType::U8, &cpu).unwrap().to_vec::<u8>().unwrap(), vec![1, 0, 0, 0, 1, 0, 0, 0, 1]);
    assert!(matches!(Tensor::from_vec(vec![1.0f32; 5], (2, 3)), Err(Error::ElementCount { len: 5, .. })));
    assert_eq!(Tensor::scalar(3i64).rank(), 0);
}

#[test]
fn seeded_random_tensors_are_deterministic() {
    let a = Tensor::rand_uniform(42, -1.0, 1.0, (100,), DType::F32, &Device::Cpu).unwrap();
    let b = Tensor::rand_uniform(42, -1.0, 1.0, (100,), DType::F32, &Device::Cpu).unwrap();
    let c = Tensor::rand_uniform(43, -1.0, 1.0, (100,), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    assert_ne!(a.to_vec::<f32>().unwrap(), c.to_vec::<f32>().unwrap());
    let n = Tensor::rand_normal(1, 0.0, 1.0, (10, 10), DType::F64, &Device::Cpu).unwrap();
    assert_eq!(n.dtype(), DType::F64);
    assert!(Tensor::rand_uniform(1, 1.0, 1.0, 3, DType::F32, &Device::Cpu).is_err());
    assert!(Tensor::rand_normal(1, 0.0, -1.0, 3, DType::F32, &Device::Cpu).is_err());
}

#[test]
fn views_share_storage_and_contiguous_copies_only_when_needed() {
    let x = Tensor::from_vec((0..24).map(|v| v as f32).collect::<Vec<_>>(), (2, 3, 4)).unwrap();
    for v in [
        x.reshape((6, 4)).unwrap(),
        x.transpose(0, 2).unwrap(),
        x.permute(&[1, 2, 0]).unwrap(),
        x.narrow(2, 1, 2).unwrap(),
        x.unsqueeze(0).unwrap(),
        x.unsqueeze(-1).unwrap(),
        x.narrow(0, 1, 1).unwrap().squeeze(0).unwrap(),
        x.narrow(0, 0, 1).unwrap().broadcast_to((5, 3, 4)).unwrap(),
    ] {
        assert!(v.same_storage(&x), "{v:?}");
    }
    let c = x.contiguous().unwrap();
    assert!(c.same_storage(&x), "already contiguous: no copy");
    let t = x.transpose(0, 2).unwrap();
    assert!(!t.is_contiguous());
    let tc = t.contiguous().unwrap();
    assert!(!tc.same_storage(&x) && tc.is_contiguous());
    assert_eq!(t.dims(), &[4, 3, 2]);
    assert_eq!(tc.to_vec::<f32>().unwrap()[..4], [0.0, 12.0, 4.0, 16.0]);
    // slice of a slice keeps the right offset
    let s = x.slice(1, 1, 3).unwrap().slice(2, 2, 4).unwrap();
    assert_eq!(s.to_vec::<f32>().unwrap(), vec![6., 7., 10., 11., 18., 19., 22., 23.]);
    // reshape of a non-contiguous tensor copies (like torch.reshape)
    let r = t.reshape(24).unwrap();
    assert_eq!(r.to_vec::<f32>().unwrap(), tc.to_vec::<f32>().unwrap());
    assert_eq!(x.reshape_infer(&[-1, 4]).unwrap().dims(), &[6, 4]);
    assert!(x.reshape_infer(&[-1, 5]).is_err());
    assert!(x.reshape((5, 5)).is_err());
    assert!(x.squeeze(0).is_err());
    assert!(x.permute(&[0, 0, 1]).is_err());
    assert!(x.narrow(1, 2, 2).is_err());
    assert!(x.broadcast_to((3, 3, 4)).is_err());
    assert_eq!(x.flatten_from(1).unwrap().dims(), &[2, 12]);
    assert_eq!(x.unsqueeze(1).unwrap().squeeze_all().unwrap().dims(), &[2, 3, 4]);
}

#[test]
fn cast_between_all_dtypes() {
    let src = Tensor::from_vec(vec![0.0f64, 1.0, 2.75, -3.5, 200.0], 5).unwrap();
    for &from in &DType::ALL {
        let a =
            if from == DType::U8 { src.abs().unwrap().to_dtype(from).unwrap() } else { src.to_dtype(from).unwrap() };
        for &to in &DType::ALL {
            let b = a.to_dtype(to).unwrap();
            assert_eq!(b.dtype(), to);
            assert_eq!(b.dims(), &[5]);
            let back = vals(&b);
            let orig = vals(&a);
            for (x, y) in back.iter().zip(&orig) {
                let expect = match to {
                    DType::I64 => y.trunc(),
                    DType::U8 => y.trunc().clamp(0.0, 255.0),
                    DType::F16 | DType::BF16 => *y, // exactly representable values here
                    _ => *y,
                };
                assert_eq!(*x, expect, "{from:?} -> {to:?}");
            }
        }
    }
    // rounding to nearest for f16/bf16
    let t = Tensor::from_vec(vec![1.0f32 + 1.0 / 4096.0], 1).unwrap();
    assert_eq!(vals(&t.to_dtype(DType::F16).unwrap()), vec![1.0]);
    // strided cast
    let m = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], (2, 2)).unwrap();
    assert_eq!(m.t().unwrap().to_dtype(DType::I64).unwrap().to_vec::<i64>().unwrap(), vec![1, 3, 2, 4]);
}

#[test]
fn to_vec_to_scalar_and_dtype_checks() {
    let t = Tensor::from_vec(vec![1.5f32], (1, 1)).unwrap();
    assert_eq!(t.to_scalar::<f32>().unwrap(), 1.5);
    assert!(matches!(t.to_vec::<f64>(), Err(Error::DTypeMismatch { .. })));
    let v = Tensor::from_vec(vec![1.0f32, 2.0], 2).unwrap();
    assert!(v.to_scalar::<f32>().is_err());
}

#[test]
fn assign_updates_every_handle_in_place() {
    let p = Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap();
    let alias = p.clone();
    p.assign(&Tensor::ones((2, 2), DType::F32, &Device::Cpu).unwrap()).unwrap();
    assert_eq!(alias.to_vec::<f32>().unwrap(), vec![1.0; 4]);
    // from a strided source
    let src = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], (2, 2)).unwrap();
    p.assign(&src.t().unwrap()).unwrap();
    assert_eq!(alias.to_vec::<f32>().unwrap(), vec![1.0, 3.0, 2.0, 4.0]);
    assert!(p.assign(&Tensor::ones(4, DType::F32, &Device::Cpu).unwrap()).is_err());
    assert!(p.assign(&Tensor::ones((2, 2), DType::F64, &Device::Cpu).unwrap()).is_err());
    assert!(p.t().unwrap().assign(&src).is_err(), "a view cannot be assigned");
}

#[test]
fn cuda_arm_reports_a_clear_error_without_a_gpu() {
    if keel_tensor::cuda_is_available(0) {
        return; // covered by tests/cuda.rs
    }
    let t = Tensor::ones(2, DType::F32, &Device::Cpu).unwrap();
    let err = t.to_device(&Device::Cuda(0)).unwrap_err();
    assert!(err.to_string().contains("cuda"), "{err}");
    assert!(Tensor::ones(2, DType::F32, &Device::Cuda(0)).is_err());
}

/// F64 -> F16/BF16 rounds once, correctly (to nearest, ties to even), where a direct
/// `from_f64` was off for values just above a tie; in `to_dtype`, `Tensor::full` and
/// `from_f64_iter` alike. Edge cases: ties, tie + epsilon, overflow, NaN, subnormals, signs.
#[test]
fn f64_to_half_casts_are_correctly_rounded() {
    let p = |e: i32| 2f64.powi(e);
    #[rustfmt::skip]
    let bf16_cases = [
        (1.0 + p(-8) + p(-30), 1.0078125),      // just above the tie: up
        (1.0 + p(-8), 1.0),                     // tie: to even
        (1.0 + 3.0 * p(-8), 1.015625),          // tie: to even (up)
        (-(1.0 + p(-8) + p(-40)), -1.0078125),  // negative
        (1.0 + p(-8) - p(-40), 1.0),            // just below the tie
        (1e300, f64::INFINITY),                 // overflow
        (-1e300, f64::NEG_INFINITY),
        (p(-133), p(-133)),                     // smallest subnormal
        (p(-134), 0.0),                         // tie with 0: to even (0)
        (p(-134) + p(-170), p(-133)),           // above it: up
        (1e-300, 0.0),
        (-1e-300, -0.0),
    ];
    #[rustfmt::skip]
    let f16_cases = [
        (1.0 + p(-11) + p(-40), 1.0009765625),
        (1.0 + p(-11), 1.0),
        (65519.99, 65504.0),                    // below the overflow threshold
        (65520.0, f64::INFINITY),               // the tie at the top rounds to inf
        (p(-24), p(-24)),                       // smallest subnormal
        (p(-25), 0.0),                          // tie: to even
        (p(-25) + p(-60), p(-24)),
        (3.0 * p(-25), 2.0 * p(-24)),           // subnormal tie: to even (up)
        (-(1.0 + p(-11) + p(-40)), -1.0009765625),
    ];
    let check = |dt: DType, cases: &[(f64, f64)]| {
        let xs: Vec<f64> = cases.iter().map(|c| c.0).collect();
        let want: Vec<f64> = cases.iter().map(|c| c.1).collect();
        let cast = vals(&Tensor::from_vec(xs.clone(), xs.len()).unwrap().to_dtype(dt).unwrap());
        let iter = keel_tensor::CpuStorage::from_f64_iter(xs.iter().copied(), dt);
        for (k, (&x, &w)) in xs.iter().zip(&want).enumerate() {
            assert_eq!(cast[k].to_bits(), w.to_bits(), "{dt} to_dtype of {x:e}");
            assert_eq!(iter.get_f64(k).unwrap().to_bits(), w.to_bits(), "{dt} from_f64_iter of {x:e}");
            let full = vals(&Tensor::full(x, 1, dt, &Device::Cpu).unwrap())[0];
            assert_eq!(full.to_bits(), w.to_bits(), "{dt} full of {x:e}");
        }
        let nan = vals(&Tensor::full(f64::NAN, 1, dt, &Device::Cpu).unwrap())[0];
        assert!(nan.is_nan());
    };
    check(DType::BF16, &bf16_cases);
    check(DType::F16, &f16_cases);
}

/// I64 -> F32 rounds once (`v as f32`), not through f64; I64 -> F16/BF16 too.
#[test]
fn i64_casts_round_once() {
    let v = (1i64 << 60) + (1 << 36) + 1;
    let t = Tensor::from_vec(vec![v, -v, i64::MAX, i64::MIN, 3], 5).unwrap();
    let f = t.to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(f, vec![v as f32, -v as f32, i64::MAX as f32, i64::MIN as f32, 3.0]);
    assert_eq!(f[0], 1.1529216e18);
    // above a bf16 tie by 1 (through f64 the 1 is lost and the tie goes to even: down)
    let w = (1i64 << 60) + (1 << 52) + 1;
    let b = Tensor::from_vec(vec![w, -w, (1 << 60) + (1 << 52)], 3).unwrap().to_dtype(DType::BF16).unwrap();
    let up = 2f64.powi(60) + 2f64.powi(53);
    assert_eq!(vals(&b), vec![up, -up, 2f64.powi(60)]);
    let h = Tensor::from_vec(vec![2049i64, 65519, 65520, -70000], 4).unwrap().to_dtype(DType::F16).unwrap();
    assert_eq!(vals(&h), vec![2048.0, 65504.0, f64::INFINITY, f64::NEG_INFINITY]);
}
