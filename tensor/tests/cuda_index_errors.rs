//! Out-of-range indices on CUDA: the indexing ops, `one_hot` and the sparse
//! `softmax_cross_entropy` check their indices on
//! the device, and the next read-back reports a bad one as `IndexOutOfRange`,
//! naming the op; the host never waits for the check itself.
//!
//! The report belongs to the device, so the first read-back by *any* thread sees it.
//! This file is a test binary of its own, with one test, so that no other test's
//! read-back runs in the same process.
//!
//! Without a usable GPU the test prints why it skips and passes; with
//! `KEEL_REQUIRE_CUDA=1` it fails instead.

use keel_tensor::{DType, Device, Error, Shape, Tensor};

#[test]
fn out_of_range_indices_are_reported_by_the_next_read_back() {
    if !keel_tensor::cuda_is_available(0) {
        let why = "no usable CUDA GPU 0 (cuda feature, driver, device or NVRTC missing)";
        assert!(std::env::var("KEEL_REQUIRE_CUDA").map_or(true, |v| v != "1"), "KEEL_REQUIRE_CUDA=1 but {why}");
        eprintln!("skipping out_of_range_indices_are_reported_by_the_next_read_back: {why}");
        return;
    }
    let dev = Device::Cuda(0);
    let x = Tensor::rand_uniform(1, -1.0, 1.0, [6, 5, 4], DType::F32, &Device::Cpu).unwrap();
    let xg = x.to_device(&dev).unwrap();
    let on_gpu = |v: Vec<i64>, dims: Vec<usize>| Tensor::from_vec(v, dims).unwrap().to_device(&dev).unwrap();

    let waits = keel_tensor::cuda::host_waits(dev);
    let selected = xg.index_select(&on_gpu(vec![0, 6], vec![2]), 0).unwrap();
    assert_eq!(keel_tensor::cuda::host_waits(dev), waits, "the check does not wait for the GPU");
    let err = selected.to_vec::<f32>().unwrap_err();
    assert!(matches!(err, Error::IndexOutOfRange { op: "index_select", index: 6, size: 6 }), "{err}");

    // reported once, by whichever read-back comes next (here of a later result)
    let err = xg.gather(&on_gpu(vec![-1; 6 * 3 * 4], vec![6, 3, 4]), 1).unwrap().sum_all().unwrap().to_vec::<f32>();
    assert!(matches!(err, Err(Error::IndexOutOfRange { op: "gather", index: -1, size: 5 })), "{err:?}");
    let hot = on_gpu(vec![1, 3], vec![2]).one_hot(3, DType::F32).unwrap();
    assert!(matches!(hot.to_vec::<f32>(), Err(Error::IndexOutOfRange { op: "one_hot", index: 3, size: 3 })));
    // the fused softmax cross-entropy: the same report; the bad row counts as all-zero
    // targets (loss and gradient 0, as one_hot's zero row gave), so weights stay finite
    let logits = Tensor::rand_uniform(2, -1.0, 1.0, [4, 6], DType::F32, &dev).unwrap();
    let (loss, grad) = logits.softmax_cross_entropy(&on_gpu(vec![0, 6, 2, 5], vec![4]), Some(1.0)).unwrap();
    let err = loss.to_vec::<f32>();
    assert!(matches!(err, Err(Error::IndexOutOfRange { op: "softmax_cross_entropy", index: 6, size: 6 })), "{err:?}");
    let (loss, grad) = (loss.to_vec::<f32>().unwrap(), grad.unwrap().to_vec::<f32>().unwrap());
    assert!(loss[1] == 0.0 && grad[6..12].iter().all(|&g| g == 0.0), "the bad row: {} {:?}", loss[1], &grad[6..12]);
    assert!([0, 2, 3].iter().all(|&r| loss[r].is_finite() && grad[r * 6..r * 6 + 6].iter().all(|g| g.is_finite())));
    // index_select and gather check in their own kernel; an empty result reads no index,
    // so its indices are checked on their own: still an error, as on the CPU
    let empty = Tensor::zeros([6, 0], DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        empty.index_select(&Tensor::from_vec(vec![8i64], 1).unwrap(), 0),
        Err(Error::IndexOutOfRange { .. })
    ));
    let none = empty.to_device(&dev).unwrap().index_select(&on_gpu(vec![8], vec![1]), 0).unwrap();
    assert_eq!(none.dims(), [1, 0]);
    let err = xg.sum_all().unwrap().to_vec::<f32>(); // the next read-back (an empty one waits for nothing)
    assert!(matches!(err, Err(Error::IndexOutOfRange { op: "index_select", index: 8, size: 6 })), "{err:?}");
    let grad = Tensor::ones([2, 5, 4], DType::F32, &dev).unwrap();
    let added = grad.index_add_into(&on_gpu(vec![2, 9], vec![2]), 0, &Shape::from([6, 5, 4])).unwrap();
    assert!(matches!(added.to_vec::<f32>(), Err(Error::IndexOutOfRange { op: "index_add", index: 9, size: 6 })));

    // the device stays usable: good indices give the CPU's result
    let good = Tensor::from_vec(vec![4i64, 0], 2).unwrap();
    let got = xg.index_select(&good.to_device(&dev).unwrap(), 0).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(got, x.index_select(&good, 0).unwrap().to_vec::<f32>().unwrap());
    // and the CPU still answers at once
    assert!(matches!(x.index_select(&Tensor::from_vec(vec![7i64], 1).unwrap(), 0), Err(Error::IndexOutOfRange { .. })));
}
