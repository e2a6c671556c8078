//! Absurd sizes from user input are errors, not aborts, panics or wrapped counts.

use keel_tensor::{DType, Device, Error, Padding, Tensor};

#[test]
fn overflowing_shapes_are_errors() {
    let cpu = Device::Cpu;
    let big = vec![1usize << 32, 1 << 32];
    assert!(Tensor::from_vec(Vec::<f32>::new(), big.clone()).is_err());
    assert!(Tensor::zeros(vec![1usize << 33, 1 << 31], DType::F32, &cpu).is_err());
    assert!(Tensor::rand_uniform(0, 0.0, 1.0, big.clone(), DType::F32, &cpu).is_err());
    assert!(Tensor::rand_normal(0, 0.0, 1.0, big.clone(), DType::F32, &cpu).is_err());
    assert!(Tensor::eye(1 << 32, DType::F32, &cpu).is_err());
    let empty = Tensor::zeros(vec![0usize], DType::F32, &cpu).unwrap();
    assert!(empty.reshape(big).is_err());
    // a count that fits but whose bytes do not
    assert!(Tensor::zeros(vec![usize::MAX / 2], DType::F32, &cpu).is_err());
}

#[test]
fn allocations_this_machine_cannot_make_are_errors() {
    // 2^46 f32 = 256 TiB: addressable, but no machine here has it
    let e = Tensor::zeros(vec![1usize << 46], DType::F32, &Device::Cpu).unwrap_err();
    assert!(matches!(e, Error::HostOutOfMemory { op: "full", .. }), "{e}");
    assert!(e.to_string().contains("too large for this machine's memory"), "{e}");
    let e = Tensor::arange(0.0, 1e18, 1.0, DType::F32, &Device::Cpu).unwrap_err();
    assert!(matches!(e, Error::HostOutOfMemory { op: "arange", .. }), "{e}");
    assert!(Tensor::arange(0.0, 1e30, 1.0, DType::F32, &Device::Cpu).is_err());
    let labels = Tensor::from_vec(vec![0i64, 1], 2).unwrap();
    assert!(labels.one_hot(usize::MAX / 2, DType::F32).is_err());
}

#[test]
fn overflowing_ranges_and_windows_are_errors() {
    let t = Tensor::from_vec(vec![1f32, 2., 3., 4.], 4).unwrap();
    let e = t.narrow(0, usize::MAX, 2).unwrap_err().to_string();
    assert!(e.contains("narrow") && e.contains("size 4"), "{e}");
    let x = Tensor::ones((1, 5, 5, 1), DType::F32, &Device::Cpu).unwrap();
    let k = Tensor::ones((3, 3, 1, 1), DType::F32, &Device::Cpu).unwrap();
    assert!(x.conv2d(&k, (1, 1), Padding::Same, (usize::MAX / 2, 1)).is_err());
    // a dilation far beyond the image with 'same' padding: every tap but the centre
    // falls in the padding
    let y = x.conv2d(&k, (1, 1), Padding::Same, (1 << 40, 1)).unwrap();
    assert_eq!(y.dims(), [1, 5, 5, 1]);
    let v = y.to_vec::<f32>().unwrap();
    assert_eq!(v[6], 3.0, "{v:?}");
}
