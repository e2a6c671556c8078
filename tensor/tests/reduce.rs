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

/// f64 reference of `softmax_cross_entropy` on `[rows, c]` logits: per-row losses and the
/// gradient of `scale * loss`; `t` holds probability rows (one-hot for class indices).
fn xent_reference(x: &[f64], t: &[f64], c: usize, scale: f64) -> (Vec<f64>, Vec<f64>) {
    let (mut loss, mut grad) = (vec![], vec![]);
    for (xr, tr) in x.chunks(c).zip(t.chunks(c)) {
        let lse = xr.iter().map(|v| v.exp()).sum::<f64>().ln();
        let ts: f64 = tr.iter().sum();
        loss.push(xr.iter().zip(tr).map(|(x, t)| t * (lse - x)).sum());
        grad.extend(xr.iter().zip(tr).map(|(x, t)| scale * ((x - lse).exp() * ts - t)));
    }
    (loss, grad)
}

/// The bits of every element (as f64, which holds every dtype's values exactly).
fn bits64(t: &Tensor) -> Vec<u64> {
    vals(t).iter().map(|v| v.to_bits()).collect()
}

#[test]
fn softmax_cross_entropy_against_float64_loops() {
    let (rows, c) = (37, 11);
    let x = rand(30, &[rows, c], -6.0, 6.0);
    let labels: Vec<i64> = (0..rows as i64).map(|r| (r * 7) % c as i64).collect();
    let onehot: Vec<f64> = (0..rows * c).map(|i| f64::from(labels[i / c] == (i % c) as i64)).collect();
    let probs = rand(31, &[rows, c], 0.0, 1.0);
    let cases = [
        ("class indices", Tensor::from_vec(labels.clone(), rows).unwrap(), onehot.clone()),
        (
            "class indices as U8",
            Tensor::from_vec(labels.iter().map(|&l| l as u8).collect::<Vec<_>>(), rows).unwrap(),
            onehot,
        ),
        ("probabilities", probs.clone(), vals(&probs)),
    ];
    for (what, t, tv) in cases {
        // F16/BF16 logits compute as F32: F32 results, the bits of casting them first
        for (dt, out_dt, tol) in [
            (DType::F64, DType::F64, 1e-12),
            (DType::F32, DType::F32, 1e-6),
            (DType::BF16, DType::F32, 1e-6),
            (DType::F16, DType::F32, 1e-6),
        ] {
            let xd = non_contiguous(&x.to_dtype(dt).unwrap());
            let t = if t.dtype().is_float() { t.to_dtype(dt).unwrap() } else { t.clone() };
            let tref = if t.dtype().is_float() { vals(&t) } else { tv.clone() };
            let (want_loss, want_grad) = xent_reference(&vals(&xd), &tref, c, 0.25);
            let (loss, grad) = xd.softmax_cross_entropy(&t, Some(0.25)).unwrap();
            assert_eq!((loss.dims(), loss.dtype()), (&[rows][..], out_dt), "{what} {dt}");
            let grad = grad.expect("asked for the gradient");
            assert_eq!((grad.dims(), grad.dtype()), (&[rows, c][..], out_dt), "{what} {dt}");
            let wide = xd.to_dtype(out_dt).unwrap();
            let t_wide = if t.dtype().is_float() { t.to_dtype(out_dt).unwrap() } else { t.clone() };
            let (loss_w, grad_w) = wide.softmax_cross_entropy(&t_wide, Some(0.25)).unwrap();
            assert_eq!(bits64(&loss), bits64(&loss_w), "{what} {dt}: the loss of the logits cast first");
            assert_eq!(bits64(&grad), bits64(&grad_w.unwrap()), "{what} {dt}: the gradient of the logits cast first");
            assert!(
                rel_err(&vals(&loss), &want_loss) < tol,
                "{what} {dt}: loss {:e}",
                rel_err(&vals(&loss), &want_loss)
            );
            assert!(
                rel_err(&vals(&grad), &want_grad) < tol,
                "{what} {dt}: grad {:e}",
                rel_err(&vals(&grad), &want_grad)
            );
            let (alone, none) = xd.softmax_cross_entropy(&t, None).unwrap();
            assert!(none.is_none());
            assert_eq!(vals(&alone), vals(&loss), "{what} {dt}: the loss does not depend on the gradient");
            // with the probabilities: softmax(-1)'s, and the same loss and gradient
            for scale in [None, Some(0.25)] {
                let all = xd.softmax_cross_entropy_with(&t, scale, true).unwrap();
                assert_eq!(vals(&all.loss), vals(&loss), "{what} {dt}");
                assert_eq!(all.grad.map(|g| vals(&g)), scale.map(|_| vals(&grad)), "{what} {dt}");
                assert_eq!(vals(&all.probs.expect("asked for")), vals(&wide.softmax(-1).unwrap()), "{what} {dt}");
            }
            assert!(xd.softmax_cross_entropy_with(&t, None, false).unwrap().probs.is_none());
        }
    }
    // stable with huge logits; an impossible class (-inf logit, zero target) adds no NaN
    let big = Tensor::from_vec(vec![1000.0f32, 1001.0, f32::NEG_INFINITY], (1, 3)).unwrap();
    let (l, g) =
        big.softmax_cross_entropy(&Tensor::from_vec(vec![0.0f32, 1.0, 0.0], (1, 3)).unwrap(), Some(1.0)).unwrap();
    assert!((vals(&l)[0] - 0.31326169).abs() < 1e-5, "{:?}", vals(&l));
    assert!(vals(&g.unwrap()).iter().all(|v| v.is_finite()));
}

/// `SoftmaxCrossEntropy::mean`: the mean of the per-row losses (the CPU computes none in
/// its kernel, so `mean_all`'s bits), 0 for a batch of no rows.
#[test]
fn softmax_cross_entropy_mean() {
    let x = rand(33, &[6, 4], -2.0, 2.0);
    let labels = Tensor::from_vec(vec![0i64, 3, 1, 2, 2, 0], 6).unwrap();
    let r = x.softmax_cross_entropy_with(&labels, None, false).unwrap();
    assert!(r.mean.is_none());
    let mean = r.mean().unwrap();
    assert_eq!(mean.dims(), &[] as &[usize]);
    assert_eq!(vals(&mean), vals(&r.loss.mean_all().unwrap()));
    let want = vals(&r.loss).iter().sum::<f64>() / 6.0;
    assert!((vals(&mean)[0] - want).abs() < 1e-6);
    let empty = Tensor::zeros((0, 4), DType::F32, &keel_tensor::Device::Cpu).unwrap();
    let r = empty
        .softmax_cross_entropy_with(&Tensor::zeros(0, DType::I64, &keel_tensor::Device::Cpu).unwrap(), None, false)
        .unwrap();
    assert_eq!(vals(&r.mean().unwrap()), vec![0.0]);
}

#[test]
fn softmax_cross_entropy_errors_name_the_problem() {
    let x = rand(32, &[4, 3], -1.0, 1.0);
    let bad = Tensor::from_vec(vec![0i64, 3, 1, 2], 4).unwrap();
    let e = x.softmax_cross_entropy(&bad, None).unwrap_err();
    assert!(matches!(e, Error::IndexOutOfRange { index: 3, size: 3, .. }), "{e}");
    let neg = Tensor::from_vec(vec![0i64, -1, 1, 2], 4).unwrap();
    assert!(x.softmax_cross_entropy(&neg, None).is_err());
    let short = Tensor::from_vec(vec![0i64, 1], 2).unwrap();
    let msg = x.softmax_cross_entropy(&short, None).unwrap_err().to_string();
    assert!(msg.contains("softmax_cross_entropy") && msg.contains("[4, 3]") && msg.contains("[2]"), "{msg}");
    let probs = rand(33, &[4, 2], 0.0, 1.0);
    assert!(x.softmax_cross_entropy(&probs, None).is_err());
    let ints = Tensor::from_vec(vec![1i64, 2], (1, 2)).unwrap();
    assert!(ints.softmax_cross_entropy(&Tensor::from_vec(vec![0i64], 1).unwrap(), None).is_err());
    let no_classes = Tensor::zeros([2, 0], DType::F32, &keel_tensor::Device::Cpu).unwrap();
    assert!(no_classes.softmax_cross_entropy(&Tensor::from_vec(vec![0i64, 0], 2).unwrap(), None).is_err());
}

/// A bias + ReLU layer's backward: `g * relu'(y)` and its sum over every axis but the last,
/// the values of `unary_grad` and `sum`; a rank-1 output is its own bias gradient.
#[test]
fn relu_grad_with_bias_grad_is_unary_grad_and_sum() {
    let y = Tensor::from_vec(vec![0.0f32, 1.5, 0.0, 2.0, 3.0, 0.0], (3, 2)).unwrap();
    let g = Tensor::from_vec(vec![-1.0f32, 2.0, f32::NAN, 4.0, 5.0, -6.0], (3, 2)).unwrap();
    let (gz, bias) = y.relu_grad_with_bias_grad(&g).unwrap();
    let gz_v = gz.to_vec::<f32>().unwrap();
    // g * 0 where the ReLU is off: -0 for a negative g, NaN for NaN
    assert_eq!(gz_v[0].to_bits(), (-0.0f32).to_bits());
    assert!(gz_v[2].is_nan());
    assert_eq!(&gz_v[3..], &[4.0, 5.0, -0.0]);
    let b = bias.to_vec::<f32>().unwrap();
    assert!(b[0].is_nan());
    assert_eq!(b[1], 6.0);
    assert_eq!(bias.dims(), &[2]);
    let one = Tensor::from_vec(vec![1.0f32, 0.0], 2).unwrap();
    let (gz1, b1) = one.relu_grad_with_bias_grad(&Tensor::from_vec(vec![3.0f32, 4.0], 2).unwrap()).unwrap();
    assert_eq!(gz1.to_vec::<f32>().unwrap(), vec![3.0, 0.0]);
    assert_eq!(b1.to_vec::<f32>().unwrap(), vec![3.0, 0.0]);
    assert!(Tensor::from_vec(vec![1.0f32], ()).unwrap().relu_grad_with_bias_grad(&one).is_err());
}

/// A U8 sum (a count of `eq`/`gt` results) is I64, as PyTorch sums bool and uint8 to int64:
/// it does not stop at 255, over every axis, a strided view, and an empty axis.
#[test]
fn u8_sums_are_i64() {
    let cpu = &keel_tensor::Device::Cpu;
    let z = Tensor::zeros(300, DType::I64, cpu).unwrap();
    let hits = z.eq(&z).unwrap();
    assert_eq!(hits.dtype(), DType::U8);
    let total = hits.sum_all().unwrap();
    assert_eq!(total.dtype(), DType::I64);
    assert_eq!(total.to_vec::<i64>().unwrap(), vec![300]);
    let big = Tensor::full(200.0, (3, 4), DType::U8, cpu).unwrap();
    assert_eq!(big.sum(&[1], false).unwrap().to_vec::<i64>().unwrap(), vec![800; 3]);
    assert_eq!(big.t().unwrap().sum(&[0], true).unwrap().to_vec::<i64>().unwrap(), vec![800; 3]);
    let empty = Tensor::zeros((3, 0), DType::U8, cpu).unwrap().sum(&[1], false).unwrap();
    assert_eq!((empty.dtype(), empty.to_vec::<i64>().unwrap()), (DType::I64, vec![0; 3]));
    // max and min of U8 stay U8; integer means stay refused
    assert_eq!(big.max(&[1], false).unwrap().dtype(), DType::U8);
    assert!(big.mean_all().is_err());
}

/// I64 reductions are exact in i64 (not through f64, which rounds above 2^53); the sum
/// wraps as PyTorch's does.
#[test]
fn i64_reductions_are_exact() {
    let p53 = 1i64 << 53;
    let t = Tensor::from_vec(vec![p53, 1, 1], 3).unwrap();
    assert_eq!(t.sum_all().unwrap().to_vec::<i64>().unwrap(), vec![p53 + 2]);
    let m = Tensor::from_vec(vec![p53, p53 + 1, i64::MIN, p53 + 1], (2, 2)).unwrap();
    assert_eq!(m.argmax(1, false).unwrap().to_vec::<i64>().unwrap(), vec![1, 1]);
    assert_eq!(m.argmin(0, false).unwrap().to_vec::<i64>().unwrap(), vec![1, 0]);
    assert_eq!(m.max(&[1], false).unwrap().to_vec::<i64>().unwrap(), vec![p53 + 1, p53 + 1]);
    assert_eq!(m.min(&[], false).unwrap().to_vec::<i64>().unwrap(), vec![i64::MIN]);
    assert_eq!(
        m.t().unwrap().sum(&[0], false).unwrap().to_vec::<i64>().unwrap(),
        vec![2 * p53 + 1, i64::MIN + p53 + 1]
    );
    // wrapping, as PyTorch's int64 sum
    let w = Tensor::from_vec(vec![i64::MAX, 1], 2).unwrap();
    assert_eq!(w.sum_all().unwrap().to_vec::<i64>().unwrap(), vec![i64::MIN]);
    // large enough for the parallel path
    let n = 1 << 16;
    let many = Tensor::from_vec(vec![p53 + 1; n], (2, n / 2)).unwrap();
    assert_eq!(many.sum(&[1], false).unwrap().to_vec::<i64>().unwrap(), vec![(p53 + 1).wrapping_mul(n as i64 / 2); 2]);
}
