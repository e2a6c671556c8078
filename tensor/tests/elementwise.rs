//! Elementwise families: every unary and binary op against a float64
//! reference, derivatives against central differences, broadcasting edge
//! cases, comparisons, where/clamp, non-contiguous inputs and dtypes.

mod common;
use common::*;
use keel_tensor::{BinaryOp, CmpOp, DType, Device, Error, Tensor, UnaryOp};

/// Inputs inside each op's domain, away from kinks.
fn domain(op: UnaryOp, seed: u64, shape: &[usize]) -> Tensor {
    match op {
        UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Recip => rand(seed, shape, 0.2, 3.0),
        _ => {
            // keep |x| >= 0.05 so relu/abs/sign kinks are not hit by finite differences
            let t = rand(seed, shape, -3.0, 3.0);
            let s = t.sign().unwrap();
            t.add(&s.mul_scalar(0.05).unwrap()).unwrap()
        }
    }
}

#[test]
fn hand_computed_unary_values() {
    let x = Tensor::from_vec(vec![-1.0f64, 0.0, 1.0, 2.0], 4).unwrap();
    let cases: Vec<(UnaryOp, f64, [f64; 4])> = vec![
        (UnaryOp::Relu, 0.0, [0.0, 0.0, 1.0, 2.0]),
        (UnaryOp::LeakyRelu, 0.1, [-0.1, 0.0, 1.0, 2.0]),
        (UnaryOp::Elu, 1.0, [(-1.0f64).exp() - 1.0, 0.0, 1.0, 2.0]),
        (UnaryOp::Sigmoid, 0.0, [0.2689414213699951, 0.5, 0.7310585786300049, 0.8807970779778823]),
        (UnaryOp::Tanh, 0.0, [-0.7615941559557649, 0.0, 0.7615941559557649, 0.9640275800758169]),
        // scipy: x * norm.cdf(x)
        (UnaryOp::Gelu, 0.0, [-0.15865525393145707, 0.0, 0.8413447460685429, 1.9544997361036416]),
        (UnaryOp::Silu, 0.0, [-0.2689414213699951, 0.0, 0.7310585786300049, 1.7615941559557646]),
        (UnaryOp::Softplus, 0.0, [0.31326168751822286, std::f64::consts::LN_2, 1.3132616875182228, 2.1269280110429727]),
        (UnaryOp::Sign, 0.0, [-1.0, 0.0, 1.0, 1.0]),
        (UnaryOp::Abs, 0.0, [1.0, 0.0, 1.0, 2.0]),
        (UnaryOp::Square, 0.0, [1.0, 0.0, 1.0, 4.0]),
        (UnaryOp::Neg, 0.0, [1.0, 0.0, -1.0, -2.0]),
    ];
    for (op, a, want) in cases {
        let got = vals(&x.unary(op, a).unwrap());
        assert_close(&got, &want, 1e-12, 1e-12);
    }
    let p = Tensor::from_vec(vec![0.25f32, 1.0, 4.0], 3).unwrap();
    assert_close(&vals(&p.sqrt().unwrap()), &[0.5, 1.0, 2.0], 1e-7, 0.0);
    assert_close(&vals(&p.rsqrt().unwrap()), &[2.0, 1.0, 0.5], 1e-7, 0.0);
    assert_close(&vals(&p.recip().unwrap()), &[4.0, 1.0, 0.25], 1e-7, 0.0);
    assert_close(&vals(&p.log().unwrap()), &[-(4f64.ln()), 0.0, 4f64.ln()], 1e-6, 0.0);
    // numerically stable forms do not overflow
    let big = Tensor::from_vec(vec![-1000.0f32, 1000.0], 2).unwrap();
    assert_eq!(big.sigmoid().unwrap().to_vec::<f32>().unwrap(), vec![0.0, 1.0]);
    assert_eq!(big.softplus().unwrap().to_vec::<f32>().unwrap(), vec![0.0, 1000.0]);
}

#[test]
fn every_unary_op_matches_f64_reference_on_contiguous_and_strided_inputs() {
    for (i, &op) in UnaryOp::ALL.iter().enumerate() {
        let a = if op == UnaryOp::Elu { 0.7 } else { 0.2 };
        let x = domain(op, 10 + i as u64, &[5, 7]);
        let reference: Vec<f64> = vals(&x).iter().map(|&v| op.eval_f64(v, a)).collect();
        for input in [x.clone(), non_contiguous(&x)] {
            let got = vals(&input.unary(op, a).unwrap());
            assert_close(&got, &reference, 2e-6, 1e-6);
        }
        // f64 path is exact against the scalar definition
        let x64 = x.to_dtype(DType::F64).unwrap();
        let got = vals(&x64.unary(op, a).unwrap());
        let want: Vec<f64> = vals(&x64).iter().map(|&v| op.eval_f64(v, a)).collect();
        assert_eq!(got, want, "{op:?} f64");
    }
}

#[test]
fn every_unary_derivative_matches_central_differences() {
    for (i, &op) in UnaryOp::ALL.iter().enumerate() {
        let a = if op == UnaryOp::Elu { 0.7 } else { 0.2 };
        let x = domain(op, 40 + i as u64, &[4, 6]).to_dtype(DType::F64).unwrap();
        let g = rand(90 + i as u64, &[4, 6], -1.0, 1.0).to_dtype(DType::F64).unwrap();
        let got = vals(&non_contiguous(&x).unary_grad(&g, op, a).unwrap());
        let h = 1e-6;
        let want: Vec<f64> = vals(&x)
            .iter()
            .zip(vals(&g))
            .map(|(&v, gv)| gv * (op.eval_f64(v + h, a) - op.eval_f64(v - h, a)) / (2.0 * h))
            .collect();
        assert_close(&got, &want, 1e-5, 1e-7);
    }
}

#[test]
fn unary_ops_on_half_precision_stay_close() {
    for dtype in [DType::F16, DType::BF16] {
        let x = rand(3, &[64], -2.0, 2.0);
        let xh = x.to_dtype(dtype).unwrap();
        let got = vals(&xh.tanh().unwrap());
        let want: Vec<f64> = vals(&xh).iter().map(|v| v.tanh()).collect();
        assert!(rel_err(&got, &want) < 1e-2, "{dtype:?}");
        assert_eq!(xh.tanh().unwrap().dtype(), dtype);
    }
}

#[test]
fn unary_on_integers_is_an_error() {
    let x = Tensor::from_vec(vec![1i64, 2], 2).unwrap();
    assert!(matches!(x.exp(), Err(Error::UnsupportedDType { .. })));
}

#[test]
fn every_binary_op_matches_reference_with_broadcasting() {
    let shapes: &[(&[usize], &[usize])] = &[
        (&[3, 4], &[3, 4]),
        (&[3, 1], &[1, 4]),
        (&[2, 3, 4], &[4]),
        (&[], &[2, 3]),
        (&[2, 1, 3], &[4, 1]),
        (&[1], &[5]),
    ];
    for (k, &op) in BinaryOp::ALL.iter().enumerate() {
        for (si, (sa, sb)) in shapes.iter().enumerate() {
            let seed = (k * 10 + si) as u64;
            let (lo, hi) = if op == BinaryOp::Pow { (0.5, 2.0) } else { (-2.0, 2.0) };
            let a = rand(seed, sa, lo, hi);
            let b = rand(seed + 100, sb, 0.5, 2.0); // positive: div and pow stay defined
            let out = a.binary(&b, op).unwrap();
            let out_shape = keel_tensor::Shape::broadcast("test", a.shape(), b.shape()).unwrap();
            assert_eq!(out.shape(), &out_shape);
            let (av, bv) = (vals(&a), vals(&b));
            let want: Vec<f64> = (0..out_shape.elem_count())
                .map(|i| {
                    let idx = unravel(i, out_shape.dims());
                    let pick = |dims: &[usize], v: &[f64]| {
                        let off = idx.len() - dims.len();
                        let j: Vec<usize> =
                            dims.iter().enumerate().map(|(d, &n)| if n == 1 { 0 } else { idx[off + d] }).collect();
                        v[ravel(&j, dims)]
                    };
                    op.eval_f64(pick(sa, &av), pick(sb, &bv))
                })
                .collect();
            assert_close(&vals(&out), &want, 1e-6, 1e-6);
            // non-contiguous operands give the same answer
            let out2 = non_contiguous(&a).binary(&non_contiguous(&b), op).unwrap();
            assert_eq!(vals(&out2), vals(&out), "{op:?} {sa:?} {sb:?} strided");
        }
    }
}

#[test]
fn binary_derivatives_match_central_differences() {
    for (k, &op) in BinaryOp::ALL.iter().enumerate() {
        let a = rand(200 + k as u64, &[3, 4], 0.5, 2.0).to_dtype(DType::F64).unwrap();
        let b = rand(300 + k as u64, &[4], 0.6, 2.1).to_dtype(DType::F64).unwrap();
        let g = rand(400 + k as u64, &[3, 4], -1.0, 1.0).to_dtype(DType::F64).unwrap();
        let (av, bv, gv) = (vals(&a), vals(&b), vals(&g));
        let h = 1e-6;
        for wrt_rhs in [false, true] {
            let got = vals(&a.binary_grad(&b, &g, op, wrt_rhs).unwrap());
            let want: Vec<f64> = (0..12)
                .map(|i| {
                    let (x, y) = (av[i], bv[i % 4]);
                    let d = if wrt_rhs {
                        (op.eval_f64(x, y + h) - op.eval_f64(x, y - h)) / (2.0 * h)
                    } else {
                        (op.eval_f64(x + h, y) - op.eval_f64(x - h, y)) / (2.0 * h)
                    };
                    gv[i] * d
                })
                .collect();
            assert_close(&got, &want, 1e-5, 1e-7);
        }
    }
}

#[test]
fn incompatible_broadcast_names_op_and_shapes() {
    let a = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    let b = Tensor::zeros((4,), DType::F32, &Device::Cpu).unwrap();
    let err = a.add(&b).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("add") && msg.contains("[2, 3]") && msg.contains("[4]"), "{msg}");
    let c = Tensor::zeros((2, 3), DType::F64, &Device::Cpu).unwrap();
    assert!(matches!(a.mul(&c), Err(Error::DTypeMismatch { .. })));
}

#[test]
fn scalar_forms_and_integer_arithmetic() {
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], 3).unwrap();
    assert_eq!(a.add_scalar(1.0).unwrap().to_vec::<f32>().unwrap(), vec![2.0, 3.0, 4.0]);
    assert_eq!(a.mul_scalar(2.0).unwrap().to_vec::<f32>().unwrap(), vec![2.0, 4.0, 6.0]);
    assert_eq!(a.pow_scalar(2.0).unwrap().to_vec::<f32>().unwrap(), vec![1.0, 4.0, 9.0]);
    assert_eq!(a.sub_scalar(1.0).unwrap().div_scalar(2.0).unwrap().to_vec::<f32>().unwrap(), vec![0.0, 0.5, 1.0]);
    let i = Tensor::from_vec(vec![7i64, -3, 10], 3).unwrap();
    assert_eq!(i.add_scalar(1.0).unwrap().to_vec::<i64>().unwrap(), vec![8, -2, 11]);
    assert_eq!(i.maximum_scalar(0.0).unwrap().to_vec::<i64>().unwrap(), vec![7, 0, 10]);
}

#[test]
fn comparisons_where_and_clamp() {
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], (2, 2)).unwrap();
    let b = Tensor::from_vec(vec![2.0f32, 2.0], 2).unwrap();
    let expect: [(CmpOp, [u8; 4]); 6] = [
        (CmpOp::Eq, [0, 1, 0, 0]),
        (CmpOp::Ne, [1, 0, 1, 1]),
        (CmpOp::Lt, [1, 0, 0, 0]),
        (CmpOp::Le, [1, 1, 0, 0]),
        (CmpOp::Gt, [0, 0, 1, 1]),
        (CmpOp::Ge, [0, 1, 1, 1]),
    ];
    for (op, want) in expect {
        let m = a.cmp(&b, op).unwrap();
        assert_eq!(m.dtype(), DType::U8);
        assert_eq!(m.to_vec::<u8>().unwrap(), want.to_vec(), "{op:?}");
        assert_eq!(
            non_contiguous(&a).cmp(&b, op).unwrap().to_vec::<u8>().unwrap(),
            non_contiguous(&a).contiguous().unwrap().cmp(&b, op).unwrap().to_vec::<u8>().unwrap()
        );
    }
    let m = a.gt(&b).unwrap();
    let w = Tensor::where_cond(&m, &a, &a.neg().unwrap()).unwrap();
    assert_eq!(w.to_vec::<f32>().unwrap(), vec![-1.0, -2.0, 3.0, 4.0]);
    // broadcast mask and scalar branch
    let zero = Tensor::scalar(0.0f32);
    let w2 = Tensor::where_cond(&Tensor::from_vec(vec![1u8, 0], 2).unwrap(), &a, &zero).unwrap();
    assert_eq!(w2.to_vec::<f32>().unwrap(), vec![1.0, 0.0, 3.0, 0.0]);
    assert_eq!(a.clamp(1.5, 3.5).unwrap().to_vec::<f32>().unwrap(), vec![1.5, 2.0, 3.0, 3.5]);
    assert!(a.clamp(2.0, 1.0).is_err());
    assert!(a.clamp(f64::NAN, 1.0).is_err() && a.clamp(0.0, f64::NAN).is_err());
}

/// A NaN reaches the output of every ReLU form and of maximum/minimum/clamp (as in NumPy,
/// PyTorch and TensorFlow), so a NaN input shows up in the loss instead of being hidden.
#[test]
fn nan_propagates_through_relu_maximum_minimum_and_clamp() {
    let nan = f32::NAN;
    let x = Tensor::from_vec(vec![nan, -1.0f32, 2.0, -0.0], 4).unwrap();
    let relu = x.relu().unwrap().to_vec::<f32>().unwrap();
    assert!(relu[0].is_nan() && relu[1..] == [0.0, 2.0, 0.0], "{relu:?}");
    let one = Tensor::from_vec(vec![1.0f32; 4], 4).unwrap();
    for (what, t) in [
        ("maximum(x, 1)", x.maximum(&one).unwrap()),
        ("maximum(1, x)", one.maximum(&x).unwrap()),
        ("minimum(x, 1)", x.minimum(&one).unwrap()),
        ("minimum(1, x)", one.minimum(&x).unwrap()),
        ("maximum_scalar", x.maximum_scalar(0.5).unwrap()),
        ("clamp", x.clamp(1e-7, 1.0 - 1e-7).unwrap()),
        ("add + relu fused", x.binary_unary(&one, BinaryOp::Add, UnaryOp::Relu, 0.0).unwrap()),
    ] {
        let v = t.to_vec::<f32>().unwrap();
        assert!(v[0].is_nan() && v[1..].iter().all(|v| !v.is_nan()), "{what}: {v:?}");
    }
    // the fused Dense and Conv2D forms (bias + ReLU in the matmul / convolution)
    let a = Tensor::from_vec(vec![nan, 1.0f32, 2.0, 3.0], (2, 2)).unwrap();
    let w = Tensor::from_vec(vec![1.0f32, -1.0, 0.5, -2.0], (2, 2)).unwrap();
    let b = Tensor::from_vec(vec![0.0f32, 0.0], 2).unwrap();
    let v = a.matmul_bias_relu(&w, &b).unwrap().to_vec::<f32>().unwrap();
    assert!(v[0].is_nan() && v[1].is_nan() && v[2..] == [3.5, 0.0], "matmul_bias_relu: {v:?}");
    let mut img = vec![0.5f32; 16];
    img[5] = nan;
    let img = Tensor::from_vec(img, (1, 4, 4, 1)).unwrap();
    let k = Tensor::from_vec(vec![-1.0f32; 9], (3, 3, 1, 1)).unwrap();
    let p = keel_tensor::ops::conv::Conv2dParams::new(
        "conv2d",
        img.shape(),
        k.shape(),
        (1, 1),
        keel_tensor::Padding::Valid,
        (1, 1),
    )
    .unwrap();
    let v = img.conv2d_bias_relu(&k, &Tensor::from_vec(vec![0.0f32], 1).unwrap(), &p).unwrap().to_vec::<f32>().unwrap();
    // every 3x3 window of the 4x4 image covers pixel (1, 1)
    assert!(v.iter().all(|v| v.is_nan()), "conv2d_bias_relu: {v:?}");
}

/// I64 binary ops compute in i64, not f64 (exact above 2^53): add, sub and mul wrap as
/// PyTorch's; div truncates and saturates (`x / 0` is `i64::MAX` for `x > 0`); max/min
/// compare exactly; pow is exact and saturates.
#[test]
fn i64_binary_ops_are_exact() {
    let p53 = 1i64 << 53;
    let i = |v: Vec<i64>| Tensor::from_vec(v.clone(), v.len()).unwrap();
    let run = |a: Vec<i64>, b: Vec<i64>, op: BinaryOp| i(a).binary(&i(b), op).unwrap().to_vec::<i64>().unwrap();
    assert_eq!(run(vec![p53 + 1], vec![0], BinaryOp::Add), vec![p53 + 1]);
    assert_eq!(run(vec![p53 + 1, i64::MAX], vec![2, 1], BinaryOp::Add), vec![p53 + 3, i64::MIN]);
    assert_eq!(run(vec![p53 + 3, i64::MIN], vec![1, 1], BinaryOp::Sub), vec![p53 + 2, i64::MAX]);
    assert_eq!(run(vec![p53 + 1, 1 << 62], vec![3, 4], BinaryOp::Mul), vec![3 * p53 + 3, 0]);
    assert_eq!(
        run(vec![3 * p53 + 3, -7, 7, 5, -5, 0, i64::MIN], vec![3, 2, -2, 0, 0, 0, -1], BinaryOp::Div),
        vec![p53 + 1, -3, -3, i64::MAX, i64::MIN, 0, i64::MAX]
    );
    assert_eq!(run(vec![p53, p53 + 1], vec![p53 + 1, p53], BinaryOp::Maximum), vec![p53 + 1; 2]);
    assert_eq!(run(vec![p53, p53 + 1], vec![p53 + 1, p53], BinaryOp::Minimum), vec![p53; 2]);
    assert_eq!(
        run(
            vec![3, -3, 2, -2, -2, 0, 0, -1, -1, 1, 2, 7],
            vec![39, 39, 63, 63, 64, 0, -1, -3, 1 << 40, -9, -1, 0],
            BinaryOp::Pow
        ),
        vec![3i64.pow(39), -(3i64.pow(39)), i64::MAX, i64::MIN, i64::MAX, 1, i64::MAX, -1, 1, 1, 0, 1]
    );
    assert_eq!(run(vec![-3], vec![41], BinaryOp::Pow), vec![i64::MIN]);
    // broadcast and scalar forms take the same path
    let b = i(vec![p53 + 1, -(p53 + 1)]).add(&Tensor::from_vec(vec![0i64], ()).unwrap()).unwrap();
    assert_eq!(b.to_vec::<i64>().unwrap(), vec![p53 + 1, -(p53 + 1)]);
    assert_eq!(i(vec![p53 + 1]).mul_scalar(1.0).unwrap().to_vec::<i64>().unwrap(), vec![p53 + 1]);
}

/// The gradient of `x ^ y` wrt `x` is 0 where `y == 0`, also at `x = 0` (PyTorch's; the
/// formula `y * x^(y-1)` gives `0 * inf = NaN` there), in every float dtype.
#[test]
fn pow_grad_at_zero_exponent_is_zero() {
    for dt in [DType::F32, DType::F64, DType::F16, DType::BF16] {
        let x = Tensor::from_vec(vec![0.0f64, 0.0, 2.0, 0.0], 4).unwrap().to_dtype(dt).unwrap();
        let y = Tensor::from_vec(vec![0.0f64, 1.0, 0.0, 2.0], 4).unwrap().to_dtype(dt).unwrap();
        let g = Tensor::ones(4, dt, &Device::Cpu).unwrap();
        let dx = x.binary_grad(&y, &g, BinaryOp::Pow, false).unwrap();
        assert_eq!(vals(&dx), vec![0.0, 1.0, 0.0, 0.0], "{dt}");
    }
    assert_eq!(BinaryOp::Pow.deriv_f64(0.0, 0.0, false), 0.0);
    assert_eq!(BinaryOp::Pow.deriv_f32(0.0, 0.0, false), 0.0);
    assert_eq!(BinaryOp::Pow.deriv_f64(0.0, 0.5, false), f64::INFINITY);
}

/// `sign(NaN)` is NaN, as NumPy's and PyTorch's (it was 0), in every float dtype.
#[test]
fn sign_keeps_nan() {
    for dt in [DType::F32, DType::F64, DType::BF16, DType::F16] {
        let x = Tensor::from_vec(vec![-2.0f32, -0.0, 0.0, 3.0, f32::NAN], 5).unwrap().to_dtype(dt).unwrap();
        let s = x.sign().unwrap().to_vec_f64().unwrap();
        assert_eq!(&s[..4], &[-1.0, 0.0, 0.0, 1.0], "{dt}");
        assert!(s[4].is_nan(), "{dt}: {s:?}");
    }
}
