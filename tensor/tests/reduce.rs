//! Reductions over any set of axes, with keepdim, against float64 loops;
//! softmax and log-softmax stability.

mod common;
use common::*;
use keel_tensor::{DType, Error, ReduceOp, Tensor};

/// Reference reduction over `axes` of a row-major array with `dims`.
fn reference(v: &[f64], dims: &[usize], axes: &[usize], op: ReduceOp) -> Vec<f64> {
    let out_dims: Vec<usize> = (0..dims.len()).filter(|d| !axes.contains(d)).map(|d| dims[d]).collect();
    let n_out: usize = out_dims.iter().product();
    let mut groups: Vec<Vec<f64>> = vec![vec![]; n_out];
    for (i, &x) in v.iter().enumerate() {
        let idx = unravel(i, dims);
        let kept: Vec<usize> = (0..dims.len()).filter(|d| !axes.contains(d)).map(|d| idx[d]).collect();
        groups[ravel(&kept, &out_dims)].push(x);
    }
    groups
        .iter()
        .map(|g| {
            let n = g.len() as f64;
            let mean = g.iter().sum::<f64>() / n;
            match op {
                ReduceOp::Sum => g.iter().sum(),
                ReduceOp::Mean => mean,
                ReduceOp::Var => g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n,
                ReduceOp::Max => g.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                ReduceOp::Min => g.iter().cloned().fold(f64::INFINITY, f64::min),
                ReduceOp::ArgMax => {
                    g.iter().enumerate().fold((0, f64::NEG_INFINITY), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0
                        as f64
                }
                ReduceOp::ArgMin => {
                    g.iter().enumerate().fold((0, f64::INFINITY), |b, (i, &x)| if x < b.1 { (i, x) } else { b }).0
                        as f64
                }
            }
        })
        .collect()
}

#[test]
fn every_reduction_over_every_axis_set() {
    let dims = [3usize, 4, 5];
    let x = rand(1, &dims, -3.0, 3.0).to_dtype(DType::F64).unwrap();
    let xv = vals(&x);
    let axis_sets: Vec<Vec<usize>> = vec![vec![0], vec![1], vec![2], vec![0, 1], vec![0, 2], vec![1, 2], vec![0, 1, 2]];
    for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Var, ReduceOp::Max, ReduceOp::Min] {
        for axes in &axis_sets {
            let ax: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
            let want = reference(&xv, &dims, axes, op);
            for input in [x.clone(), non_contiguous(&x)] {
                let got = input.reduce(op, &ax, false).unwrap();
                assert_close(&vals(&got), &want, 1e-12, 1e-12);
                let kept = input.reduce(op, &ax, true).unwrap();
                assert_eq!(kept.rank(), 3);
                assert_close(&vals(&kept), &want, 1e-12, 1e-12);
            }
        }
    }
    for op in [ReduceOp::ArgMax, ReduceOp::ArgMin] {
        for a in 0..3 {
            let got = x.reduce(op, &[a as isize], false).unwrap();
            assert_eq!(got.dtype(), DType::I64);
            assert_close(&vals(&got), &reference(&xv, &dims, &[a], op), 0.0, 0.0);
        }
    }
}

#[test]
fn f32_reductions_and_negative_axes() {
    let x = rand(2, &[6, 7], -1.0, 1.0);
    let s = x.sum(&[-1], false).unwrap();
    let want = reference(&vals(&x), &[6, 7], &[1], ReduceOp::Sum);
    assert_close(&vals(&s), &want, 1e-6, 1e-6);
    assert_eq!(x.sum_all().unwrap().rank(), 0);
    assert!(
        (x.mean_all().unwrap().to_scalar::<f32>().unwrap() as f64 - vals(&x).iter().sum::<f64>() / 42.0).abs() < 1e-6
    );
    let m = Tensor::from_vec(vec![1.0f32, 5.0, 5.0, 2.0], (2, 2)).unwrap();
    assert_eq!(m.argmax(1, false).unwrap().to_vec::<i64>().unwrap(), vec![1, 0], "first max wins ties");
    assert_eq!(m.max(&[0], true).unwrap().dims(), &[1, 2]);
}

#[test]
fn reduction_errors() {
    let x = rand(3, &[2, 3], 0.0, 1.0);
    assert!(matches!(x.sum(&[2], false), Err(Error::InvalidAxis { .. })));
    assert!(x.sum(&[0, 0], false).is_err());
    let i = Tensor::from_vec(vec![1i64, 2, 3], 3).unwrap();
    assert!(matches!(i.mean(&[], false), Err(Error::UnsupportedDType { .. })));
    assert_eq!(i.sum(&[], false).unwrap().to_vec::<i64>().unwrap(), vec![6]);
    let empty = Tensor::zeros((0, 3), DType::F32, &keel_tensor::Device::Cpu).unwrap();
    assert_eq!(empty.sum(&[0], false).unwrap().to_vec::<f32>().unwrap(), vec![0.0; 3]);
    assert!(empty.max(&[0], false).is_err());
}

#[test]
fn softmax_and_log_softmax_along_any_axis() {
    let x = rand(4, &[3, 4, 5], -4.0, 4.0).to_dtype(DType::F64).unwrap();
    let dims = [3usize, 4, 5];
    let xv = vals(&x);
    for axis in 0..3 {
        let sm = vals(&x.softmax(axis as isize).unwrap());
        let lsm = vals(&non_contiguous(&x).log_softmax(axis as isize).unwrap());
        for i in 0..xv.len() {
            let idx = unravel(i, &dims);
            let mut denom = 0.0;
            for j in 0..dims[axis] {
                let mut k = idx.clone();
                k[axis] = j;
                denom += xv[ravel(&k, &dims)].exp();
            }
            assert!((sm[i] - xv[i].exp() / denom).abs() < 1e-12);
            assert!((lsm[i] - (xv[i] - denom.ln())).abs() < 1e-12);
        }
    }
    // stable with huge logits (f32): no inf/nan
    let big = Tensor::from_vec(vec![1000.0f32, 1001.0, 1002.0], (1, 3)).unwrap();
    let p = big.softmax(-1).unwrap().to_vec::<f32>().unwrap();
    assert!(p.iter().all(|v| v.is_finite()));
    assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    let lp = big.log_softmax(-1).unwrap().to_vec::<f32>().unwrap();
    assert!((lp[2] - (-0.40760596)).abs() < 1e-5);
}
