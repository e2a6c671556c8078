//! Finite-difference checks (float64) of every differentiable op.

#![allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better in tests

use keel_autograd::{gradcheck, gradcheck_with, loss, GradcheckConfig, GradcheckReport, Result, Var};
use keel_tensor::{BinaryOp, DType, Device, Padding, Tensor, UnaryOp};

fn rn(seed: u64, shape: &[usize]) -> Tensor {
    Tensor::rand_normal(seed, 0.0, 1.0, shape.to_vec(), DType::F64, &Device::Cpu).unwrap()
}

fn ru(seed: u64, lo: f64, hi: f64, shape: &[usize]) -> Tensor {
    Tensor::rand_uniform(seed, lo, hi, shape.to_vec(), DType::F64, &Device::Cpu).unwrap()
}

/// Values with `|x| in [0.2, 1.5]` and random signs: no kinks at 0.
fn away_from_zero(seed: u64, shape: &[usize]) -> Tensor {
    let mag = ru(seed, 0.2, 1.5, shape);
    let sign = rn(seed + 1000, shape).sign().unwrap();
    mag.mul(&sign).unwrap()
}

fn ids(v: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape.to_vec()).unwrap()
}

#[track_caller]
fn check(f: impl Fn(&[Var]) -> Result<Var>, inputs: &[Tensor]) -> GradcheckReport {
    match gradcheck(f, inputs) {
        Ok(r) => {
            assert!(r.checked > 0);
            r
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn unary_family() {
    for (i, &op) in UnaryOp::ALL.iter().enumerate() {
        let seed = 10 + i as u64;
        let x = match op {
            UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Recip => ru(seed, 0.5, 2.0, &[3, 4]),
            _ => away_from_zero(seed, &[3, 4]),
        };
        let param = match op {
            UnaryOp::LeakyRelu => 0.1,
            UnaryOp::Elu => 1.3,
            _ => 0.0,
        };
        let r = gradcheck(|v| v[0].unary(op, param), &[x]);
        assert!(r.is_ok(), "{op:?}: {}", r.unwrap_err());
    }
}

#[test]
fn named_unary_methods() {
    let x = away_from_zero(1, &[2, 3]);
    check(|v| v[0].tanh()?.sigmoid()?.exp(), &[x.clone()]);
    check(|v| v[0].leaky_relu(0.2)?.elu(0.7)?.gelu()?.silu(), &[x.clone()]);
    check(|v| v[0].square()?.add_scalar(1.0)?.log()?.sqrt(), &[x]);
}

#[test]
fn binary_family_with_broadcasting() {
    for (i, &op) in BinaryOp::ALL.iter().enumerate() {
        let seed = 100 + 10 * i as u64;
        let (a, b) = match op {
            // positive operands: either may be the base or the divisor below
            BinaryOp::Pow | BinaryOp::Div => (ru(seed, 0.5, 2.0, &[3, 1, 4]), ru(seed + 1, 0.5, 2.0, &[2, 4])),
            _ => (rn(seed, &[3, 1, 4]), rn(seed + 1, &[2, 4])),
        };
        let r = gradcheck(|v| v[0].binary(&v[1], op), &[a.clone(), b.clone()]);
        assert!(r.is_ok(), "{op:?}: {}", r.unwrap_err());
        // the other way round, and with equal shapes
        let r = gradcheck(|v| v[1].binary(&v[0], op), &[a.clone(), b.clone()]);
        assert!(r.is_ok(), "{op:?} swapped: {}", r.unwrap_err());
        let c = if op == BinaryOp::Pow { ru(seed + 2, 0.5, 2.0, &[3, 2, 4]) } else { rn(seed + 2, &[3, 2, 4]) };
        let d = ru(seed + 3, 0.5, 2.0, &[3, 2, 4]);
        let r = gradcheck(|v| v[0].binary(&v[1], op), &[c, d]);
        assert!(r.is_ok(), "{op:?} same shape: {}", r.unwrap_err());
    }
}

#[test]
fn scalar_forms_and_operators() {
    let x = ru(3, 0.5, 2.0, &[2, 3]);
    let y = rn(4, &[3]);
    check(
        |v| {
            let a = v[0].add_scalar(1.5)?.mul_scalar(-2.0)?.sub_scalar(0.3)?;
            let b = a.div_scalar(3.0)?.pow_scalar(2.0)?;
            b.maximum_scalar(0.1)?.minimum_scalar(50.0)
        },
        &[x.clone()],
    );
    check(
        |v| {
            let (x, y) = (&v[0], &v[1]);
            let a = ((x * y) + &(2.0 / x)?)?;
            let b = ((1.0 - &a)? * 3.0)?;
            let c = (-&b)?;
            (&c / &x.add_scalar(1.0)?) - y
        },
        &[x, y],
    );
}

#[test]
fn non_contiguous_inputs() {
    let xt = rn(5, &[4, 3]).t().unwrap();
    assert!(!xt.is_contiguous());
    let xn = rn(6, &[5, 4]).narrow(0, 1, 3).unwrap();
    let w = rn(7, &[4, 3]).t().unwrap();
    check(|v| v[0].mul(&v[1])?.tanh()?.matmul(&v[2]), &[xt, xn, w.t().unwrap()]);
    let b = rn(8, &[6, 2]).narrow(1, 1, 1).unwrap(); // strided column [6, 1]
    check(|v| v[0].exp()?.add(&v[1]), &[b, rn(9, &[1, 3])]);
}

#[test]
fn reductions() {
    let x = rn(20, &[3, 4, 5]);
    for keep in [false, true] {
        check(|v| v[0].sum(&[0, 2], keep), &[x.clone()]);
        check(|v| v[0].mean(&[1], keep), &[x.clone()]);
        check(|v| v[0].max(&[-1], keep), &[x.clone()]);
        check(|v| v[0].min(&[0, 1], keep), &[x.clone()]);
        check(|v| v[0].var(&[1, 2], keep), &[x.clone()]);
    }
    check(|v| v[0].sum_all(), &[x.clone()]);
    check(|v| v[0].mean_all(), &[x.clone()]);
    check(|v| v[0].max(&[], false), &[x.clone()]);
    check(|v| v[0].var(&[], false), &[x]);
}

#[test]
fn softmax_and_log_softmax() {
    let x = rn(30, &[3, 4, 5]);
    for axis in [0, 1, -1] {
        check(|v| v[0].softmax(axis), &[x.clone()]);
        check(|v| v[0].log_softmax(axis), &[x.clone()]);
    }
}

#[test]
fn matmul_shapes() {
    let cases: &[(&[usize], &[usize])] = &[
        (&[3, 4], &[4, 5]),
        (&[2, 3, 4], &[2, 4, 5]),
        (&[2, 3, 4], &[4, 5]),
        (&[3, 4], &[2, 4, 5]),
        (&[2, 1, 3, 4], &[3, 4, 2]),
    ];
    for (i, (a, b)) in cases.iter().enumerate() {
        let r = gradcheck(|v| v[0].matmul(&v[1]), &[rn(40 + i as u64, a), rn(50 + i as u64, b)]);
        assert!(r.is_ok(), "{a:?} x {b:?}: {}", r.unwrap_err());
    }
}

#[test]
fn conv2d_geometries() {
    // (input, kernel, strides, padding, dilation)
    let cases: &[(&[usize], &[usize], (usize, usize), Padding, (usize, usize))] = &[
        (&[2, 5, 5, 3], &[3, 3, 3, 4], (1, 1), Padding::Valid, (1, 1)),
        (&[1, 6, 5, 2], &[2, 2, 2, 3], (2, 2), Padding::Same, (1, 1)),
        (&[1, 7, 6, 2], &[4, 4, 2, 2], (2, 2), Padding::Same, (1, 1)),
        (&[1, 7, 7, 2], &[3, 3, 2, 2], (1, 2), Padding::Valid, (2, 2)),
        (&[2, 5, 4, 1], &[3, 2, 1, 2], (1, 1), Padding::Same, (2, 1)),
    ];
    for (i, &(x, k, s, p, d)) in cases.iter().enumerate() {
        let r = gradcheck(|v| v[0].conv2d(&v[1], s, p, d), &[rn(60 + i as u64, x), rn(70 + i as u64, k)]);
        assert!(r.is_ok(), "case {i}: {}", r.unwrap_err());
    }
    // bias add + activation, as a layer does
    check(
        |v| v[0].conv2d(&v[1], (1, 1), Padding::Same, (1, 1))?.add(&v[2])?.tanh(),
        &[rn(80, &[1, 4, 4, 2]), rn(81, &[3, 3, 2, 3]), rn(82, &[3])],
    );
}

/// Transposed convolution by its definition, in f64 loops: every input pixel scatters
/// `x[n, i, j, c] * k[a, b, o, c]` onto output pixel `(i*sh - pt + a*dh, j*sw - pl + b*dw)`.
fn conv2d_transpose_reference(
    x: &Tensor,
    k: &Tensor,
    out_hw: (usize, usize),
    s: (usize, usize),
    pad: (usize, usize),
    d: (usize, usize),
) -> Vec<f64> {
    let (xd, kd) = (x.dims().to_vec(), k.dims().to_vec());
    let (xv, kv) = (x.to_vec::<f64>().unwrap(), k.to_vec::<f64>().unwrap());
    let (n, h, w, c) = (xd[0], xd[1], xd[2], xd[3]);
    let (kh, kw, o) = (kd[0], kd[1], kd[2]);
    let (oh, ow) = out_hw;
    let mut y = vec![0.0; n * oh * ow * o];
    for b in 0..n {
        for i in 0..h {
            for j in 0..w {
                for a in 0..kh {
                    for e in 0..kw {
                        let r = (i * s.0 + a * d.0) as isize - pad.0 as isize;
                        let q = (j * s.1 + e * d.1) as isize - pad.1 as isize;
                        if r < 0 || q < 0 || r >= oh as isize || q >= ow as isize {
                            continue;
                        }
                        for oc in 0..o {
                            for ic in 0..c {
                                y[((b * oh + r as usize) * ow + q as usize) * o + oc] +=
                                    xv[((b * h + i) * w + j) * c + ic] * kv[((a * kw + e) * o + oc) * c + ic];
                            }
                        }
                    }
                }
            }
        }
    }
    y
}

#[test]
fn conv2d_transpose_values_and_gradients() {
    // (input, kernel [kh, kw, o, c], output hw, strides, padding, dilation, the top/left pad)
    type Case =
        (&'static [usize], &'static [usize], (usize, usize), (usize, usize), Padding, (usize, usize), (usize, usize));
    let cases: &[Case] = &[
        (&[2, 3, 3, 2], &[3, 3, 4, 2], (7, 7), (2, 2), Padding::Valid, (1, 1), (0, 0)),
        (&[1, 3, 4, 2], &[3, 3, 2, 2], (6, 8), (2, 2), Padding::Same, (1, 1), (0, 0)),
        (&[1, 3, 3, 1], &[4, 4, 2, 1], (6, 6), (2, 2), Padding::Same, (1, 1), (1, 1)),
        (&[1, 4, 3, 2], &[2, 3, 3, 2], (4, 3), (1, 1), Padding::Same, (1, 1), (0, 1)),
        (&[2, 3, 3, 1], &[3, 2, 2, 1], (7, 6), (1, 1), Padding::Valid, (2, 3), (0, 0)),
        (&[1, 3, 2, 2], &[2, 2, 2, 2], (9, 6), (3, 3), Padding::Valid, (1, 1), (0, 0)), // kernel < stride: gaps
        (&[1, 3, 3, 1], &[3, 3, 1, 1], (6, 6), (2, 2), Padding::Same, (1, 1), (0, 0)),  // output_padding 1
    ];
    for (i, &(x, k, hw, s, p, d, pad)) in cases.iter().enumerate() {
        let (xt, kt) = (rn(400 + i as u64, x), rn(410 + i as u64, k));
        let y = Var::constant(xt.clone()).conv2d_transpose(&Var::constant(kt.clone()), hw, s, p, d).unwrap();
        assert_eq!(y.dims(), &[x[0], hw.0, hw.1, k[2]], "case {i}");
        let want = conv2d_transpose_reference(&xt, &kt, hw, s, pad, d);
        for (j, (a, b)) in y.value().to_vec::<f64>().unwrap().iter().zip(&want).enumerate() {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "case {i} [{j}]: {a} vs {b}");
        }
        let r = gradcheck(|v| v[0].conv2d_transpose(&v[1], hw, s, p, d), &[xt, kt]);
        assert!(r.is_ok(), "case {i}: {}", r.unwrap_err());
    }
    // an output size no convolution maps back onto the input is an error naming the sizes
    let e = Var::constant(rn(1, &[1, 3, 3, 1])).conv2d_transpose(
        &Var::constant(rn(2, &[3, 3, 1, 1])),
        (9, 9),
        (2, 2),
        Padding::Same,
        (1, 1),
    );
    let msg = e.unwrap_err().to_string();
    assert!(msg.contains("9x9") && msg.contains("3x3"), "{msg}");
}

#[test]
fn conv2d_bias_relu_fused() {
    // short patch (direct kernel, 8-channel groups + tail), long patch (GEMM), pointwise
    let cases: &[(&[usize], &[usize], (usize, usize), Padding)] = &[
        (&[2, 5, 4, 1], &[3, 3, 1, 10], (1, 1), Padding::Same),
        (&[1, 6, 5, 4], &[3, 3, 4, 9], (2, 1), Padding::Valid),
        (&[1, 3, 3, 3], &[1, 1, 3, 4], (1, 1), Padding::Valid),
    ];
    for (i, &(x, k, s, p)) in cases.iter().enumerate() {
        let o = k[3];
        let inputs = [rn(300 + i as u64, x), rn(310 + i as u64, k), rn(320 + i as u64, &[o])];
        let r = gradcheck(|v| v[0].conv2d_bias_relu(&v[1], &v[2], s, p, (1, 1)), &inputs);
        assert!(r.is_ok(), "case {i}: {}", r.unwrap_err());
        // the same values and gradients, bit for bit, as conv2d then add_relu (f32 and f64)
        for dtype in [DType::F32, DType::F64] {
            let fused = values_and_grads(&inputs, dtype, |v| v[0].conv2d_bias_relu(&v[1], &v[2], s, p, (1, 1)));
            let chain = values_and_grads(&inputs, dtype, |v| v[0].conv2d(&v[1], s, p, (1, 1))?.add_relu(&v[2]));
            assert_eq!(fused, chain, "case {i} {dtype:?}");
        }
    }
}

/// `f`'s output and the gradients of `sum(f(inputs) * w)` (w fixed random) wrt every
/// input, in `dtype`, as f64: for checking that a fused op is its chain, bit for bit.
fn values_and_grads(
    inputs: &[Tensor],
    dtype: DType,
    f: impl Fn(&[Var]) -> keel_autograd::Result<Var>,
) -> Vec<Vec<f64>> {
    let tape = keel_autograd::Tape::new();
    let v: Vec<Var> = inputs.iter().map(|t| tape.leaf(t.to_dtype(dtype).unwrap())).collect();
    let y = f(&v).unwrap();
    let w = Var::constant(Tensor::rand_normal(7, 0.0, 1.0, y.dims().to_vec(), dtype, &Device::Cpu).unwrap());
    let loss = y.mul(&w).unwrap().sum_all().unwrap();
    let g = tape.backward(&loss).unwrap();
    let mut out = vec![y.value().to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap()];
    for x in &v {
        out.push(g.get_var(x).unwrap().to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap());
    }
    out
}

#[test]
fn matmul_bias_fused() {
    let cases: &[(&[usize], &[usize])] = &[(&[3, 4], &[4, 5]), (&[2, 3, 4], &[4, 5]), (&[1, 7], &[7, 1])];
    for (i, (a, b)) in cases.iter().enumerate() {
        let inputs = [rn(330 + i as u64, a), rn(340 + i as u64, b), rn(350 + i as u64, &[b[1]])];
        for relu in [false, true] {
            let fused =
                |v: &[Var]| if relu { v[0].matmul_bias_relu(&v[1], &v[2]) } else { v[0].matmul_bias(&v[1], &v[2]) };
            let r = gradcheck(fused, &inputs);
            assert!(r.is_ok(), "{a:?} x {b:?} relu {relu}: {}", r.unwrap_err());
            // the same values and gradients, bit for bit, as matmul then add (and relu)
            for dtype in [DType::F32, DType::F64] {
                let chain = |v: &[Var]| {
                    let z = v[0].matmul(&v[1])?;
                    if relu {
                        z.add_relu(&v[2])
                    } else {
                        z.add(&v[2])
                    }
                };
                let (x, y) = (values_and_grads(&inputs, dtype, fused), values_and_grads(&inputs, dtype, chain));
                assert_eq!(x, y, "{a:?} x {b:?} relu {relu} {dtype:?}");
            }
        }
    }
}

#[test]
fn pooling() {
    // distinct random values: no max ties
    let x = rn(90, &[2, 5, 5, 3]);
    check(|v| v[0].max_pool2d((2, 2), (2, 2), Padding::Valid), &[x.clone()]);
    check(|v| v[0].max_pool2d((3, 3), (2, 2), Padding::Same), &[x.clone()]);
    check(|v| v[0].avg_pool2d((2, 2), (2, 2), Padding::Valid), &[x.clone()]);
    check(|v| v[0].avg_pool2d((3, 3), (2, 2), Padding::Same), &[x.clone()]);
    check(|v| v[0].avg_pool2d((2, 3), (1, 1), Padding::Same), &[x]);
}

#[test]
fn views() {
    let x = rn(100, &[2, 3, 4]);
    check(|v| v[0].reshape((4, 6))?.exp(), &[x.clone()]);
    check(|v| v[0].reshape_infer(&[-1, 2])?.sin(), &[x.clone()]);
    check(|v| v[0].flatten_from(1)?.sin(), &[x.clone()]);
    check(|v| v[0].transpose(0, 2)?.sin(), &[x.clone()]);
    check(|v| v[0].t()?.sin(), &[x.clone()]);
    check(|v| v[0].permute(&[1, 2, 0])?.sin(), &[x.clone()]);
    check(|v| v[0].narrow(2, 1, 2)?.sin(), &[x.clone()]);
    check(|v| v[0].slice(1, 0, 2)?.sin(), &[x.clone()]);
    check(|v| v[0].slice(0, 1, 2)?.sin(), &[x.clone()]);
    check(|v| v[0].unsqueeze(1)?.sin()?.squeeze(1), &[x.clone()]);
    check(|v| v[0].unsqueeze(-1)?.squeeze_all()?.sin(), &[x]);
    check(|v| v[0].broadcast_to((2, 3, 4))?.sin(), &[rn(101, &[3, 1])]);
}

#[test]
fn joining_and_splitting() {
    let (a, b, c) = (rn(110, &[2, 3]), rn(111, &[2, 1]), rn(112, &[2, 2]));
    check(|v| Var::concat(&[&v[0], &v[1], &v[2]], 1), &[a.clone(), b, c]);
    check(|v| Var::concat(&[&v[0], &v[0].exp()?], 0), &[a.clone()]);
    check(|v| Var::stack(&[&v[0], &v[1]], 1), &[a.clone(), rn(113, &[2, 3])]);
    let x = rn(114, &[2, 7]);
    check(
        |v| {
            let p = v[0].split(&[2, 4, 1], 1)?;
            // the middle piece is unused: its gradient slot is zeros
            p[0].sin()?.sum_all()?.add(&p[2].exp()?.sum_all()?)
        },
        &[x.clone()],
    );
    check(
        |v| {
            let p = v[0].chunk(3, 1)?;
            Var::concat(&[&p[2], &p[0].square()?, &p[1]], 1)
        },
        &[x],
    );
}

#[test]
fn gather_and_index_select() {
    let x = rn(120, &[3, 4]);
    let idx = ids(&[2, 0, 2, 1, 0, 0, 1, 2], &[2, 4]);
    check(|v| v[0].gather(&idx, 0), &[x.clone()]);
    let idx1 = ids(&[3, 3, 0, 1, 1, 2], &[3, 2]);
    check(|v| v[0].gather(&idx1, 1), &[x.clone()]);
    let sel = ids(&[1, 1, 3, 0, 2], &[5]);
    check(|v| v[0].index_select(&sel, 1), &[x.clone()]);
    check(|v| v[0].index_select(&ids(&[2, 0, 2], &[3]), 0), &[x]);
}

#[test]
fn cast_where_clamp() {
    // f32 round-trip: a linear function, so a large step is exact up to f32 rounding
    let cfg = GradcheckConfig { eps: 1e-2, tolerance: 1e-4, ..GradcheckConfig::default() };
    let w = rn(131, &[2, 3]);
    let r = gradcheck_with(
        |v| v[0].to_dtype(DType::F32)?.to_dtype(DType::F64)?.mul(&Var::constant(w.clone())),
        &[rn(130, &[2, 3])],
        &cfg,
    );
    assert!(r.is_ok(), "{}", r.unwrap_err());

    let a = rn(132, &[3, 4]);
    let mask = rn(133, &[3, 4]).gt(&Tensor::scalar(0.0f64)).unwrap();
    check(|v| Var::where_cond(&mask, &v[0], &v[1]), &[a.clone(), rn(134, &[4])]);
    check(|v| Var::where_cond(&mask, &v[0].exp()?, &v[0].sin()?), &[a]);

    // values kept away from the bounds +-0.5
    let x = away_from_zero(135, &[4, 5]).mul_scalar(0.6).unwrap();
    let x = x.add(&x.sign().unwrap().mul_scalar(0.1).unwrap()).unwrap(); // |x| in [0.22, 1.0]
    let near = x.abs().unwrap().sub_scalar(0.5).unwrap().abs().unwrap().min(&[], false).unwrap();
    assert!(near.to_scalar::<f64>().unwrap() > 1e-3);
    check(|v| v[0].clamp(-0.5, 0.5)?.mul_scalar(3.0), &[x]);
}

#[test]
fn softmax_cross_entropy_grad() {
    let logits = rn(140, &[4, 5]);
    let labels = ids(&[0, 3, 4, 1], &[4]);
    check(|v| loss::softmax_cross_entropy(&v[0], &labels, None), &[logits.clone()]);
    let probs = rn(141, &[4, 5]).softmax(-1).unwrap();
    check(|v| loss::softmax_cross_entropy(&v[0], &probs, None), &[logits.clone()]);
    let w = ru(142, 0.1, 2.0, &[4]);
    check(|v| loss::softmax_cross_entropy(&v[0], &labels, Some(&w)), &[logits.clone()]);
    // unnormalised soft targets and extra leading dims
    let t = ru(143, 0.0, 1.0, &[2, 3, 5]);
    check(|v| loss::softmax_cross_entropy(&v[0], &t, None), &[rn(144, &[2, 3, 5])]);
}

#[test]
fn sigmoid_bce_grad() {
    let logits = rn(150, &[4, 3]).mul_scalar(3.0).unwrap();
    let z = ru(151, 0.0, 1.0, &[4, 3]);
    check(|v| loss::sigmoid_binary_cross_entropy(&v[0], &z, None), &[logits.clone()]);
    let w = ru(152, 0.1, 2.0, &[4]);
    check(|v| loss::sigmoid_binary_cross_entropy(&v[0], &z, Some(&w)), &[logits.clone()]);
    let wf = ru(153, 0.1, 2.0, &[4, 3]);
    check(|v| loss::sigmoid_binary_cross_entropy(&v[0], &z, Some(&wf)), &[logits]);
}

#[test]
fn composite_mlp() {
    let x = rn(160, &[5, 3]);
    let y = ids(&[0, 2, 1, 1, 0], &[5]);
    check(
        |v| {
            let h = v[0].matmul(&v[1])?.add(&v[2])?.tanh()?;
            let o = h.matmul(&v[3])?;
            loss::softmax_cross_entropy(&o, &y, None)
        },
        &[x, rn(161, &[3, 4]), rn(162, &[4]), rn(163, &[4, 3])],
    );
}

/// One LSTM step composed from the elementwise ops: (h, c) from z [B, 4U] and c_prev.
fn lstm_step_chain(z: &Var, c_prev: &Var) -> Result<(Var, Var)> {
    let u = c_prev.dims()[1];
    let g = z.split(&[u, u, u, u], -1)?;
    let (i, f, cand, o) = (g[0].sigmoid()?, g[1].sigmoid()?, g[2].tanh()?, g[3].sigmoid()?);
    let c = f.mul(c_prev)?.add(&i.mul(&cand)?)?;
    let h = o.mul(&c.tanh()?)?;
    Ok((h, c))
}

#[test]
fn lstm_cell_fused() {
    let (z, c0) = (rn(400, &[3, 8]), rn(401, &[3, 2]));
    // gradients through h alone, c alone, and both (as a step inside a sequence sees them)
    check(|v| Ok(v[0].lstm_cell(&v[1])?.0), &[z.clone(), c0.clone()]);
    check(|v| Ok(v[0].lstm_cell(&v[1])?.1), &[z.clone(), c0.clone()]);
    check(
        |v| {
            let (h, c) = v[0].lstm_cell(&v[1])?;
            h.mul_scalar(0.7)?.add(&c.mul_scalar(-1.3)?)
        },
        &[z.clone(), c0.clone()],
    );
    // two steps: the second step's c_prev is the first's c
    check(
        |v| {
            let (h1, c1) = v[0].lstm_cell(&v[1])?;
            let (h2, _) = v[0].mul_scalar(0.5)?.lstm_cell(&c1)?;
            h1.add(&h2)
        },
        &[z.clone(), c0.clone()],
    );
    // the same forward values, bit for bit, as the composed ops in F32 and F64; gradients
    // to rounding (the chain adds them in another order)
    for dtype in [DType::F32, DType::F64] {
        let fused = values_and_grads(&[z.clone(), c0.clone()], dtype, |v| {
            let (h, c) = v[0].lstm_cell(&v[1])?;
            Var::concat(&[&h, &c], 1)
        });
        let chain = values_and_grads(&[z.clone(), c0.clone()], dtype, |v| {
            let (h, c) = lstm_step_chain(&v[0], &v[1])?;
            Var::concat(&[&h, &c], 1)
        });
        assert_eq!(fused[0], chain[0], "{dtype:?}: forward values");
        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-13 };
        for (k, (a, b)) in fused[1..].iter().zip(&chain[1..]).enumerate() {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() <= tol * y.abs().max(1.0), "{dtype:?}: gradient {k}: {x} vs {y}");
            }
        }
    }
    // shape and dtype errors name the op
    let e = Var::constant(rn(402, &[3, 7])).lstm_cell(&Var::constant(c0.clone())).unwrap_err().to_string();
    assert!(e.contains("lstm_cell"), "{e}");
    let e =
        Var::constant(z.clone()).lstm_cell(&Var::constant(c0.to_dtype(DType::F32).unwrap())).unwrap_err().to_string();
    assert!(e.contains("lstm_cell"), "{e}");
}

/// One GRU step (`reset_after`) composed from the elementwise ops, as the GRU layer composes
/// it: h from the input projection x, the recurrent projection p (both [B, 3U]) and h_prev.
fn gru_step_chain(x: &Var, p: &Var, h_prev: &Var) -> Result<Var> {
    let u = h_prev.dims()[1];
    let (xg, pg) = (x.split(&[u, u, u], -1)?, p.split(&[u, u, u], -1)?);
    let z = xg[0].add(&pg[0])?.sigmoid()?;
    let r = xg[1].add(&pg[1])?.sigmoid()?;
    let n = xg[2].add(&r.mul(&pg[2])?)?.tanh()?;
    n.add(&z.mul(&h_prev.sub(&n)?)?)
}

#[test]
fn gru_cell_fused() {
    let (x, p, h0) = (rn(410, &[3, 6]), rn(411, &[3, 6]), rn(412, &[3, 2]));
    let inputs = [x.clone(), p.clone(), h0.clone()];
    check(|v| v[0].gru_cell(&v[1], &v[2]), &inputs);
    // two steps: the second step's h_prev is the first's h
    check(
        |v| {
            let h1 = v[0].gru_cell(&v[1], &v[2])?;
            let h2 = v[0].mul_scalar(0.5)?.gru_cell(&v[1].mul_scalar(-0.8)?, &h1)?;
            h1.add(&h2)
        },
        &inputs,
    );
    // the input projection as one timestep of a [B, T, 3U] tensor (read in place)
    let seq = rn(413, &[3, 4, 6]);
    check(|v| v[0].narrow(1, 2, 1)?.squeeze(1)?.gru_cell(&v[1], &v[2]), &[seq.clone(), p.clone(), h0.clone()]);
    // the same forward values, bit for bit, as the composed ops in F32 and F64 (a strided
    // input projection too); gradients to rounding
    for dtype in [DType::F32, DType::F64] {
        for strided in [false, true] {
            let ins = if strided { [seq.clone(), p.clone(), h0.clone()] } else { inputs.clone() };
            let xp = |v: &Var| if strided { v.narrow(1, 1, 1)?.squeeze(1) } else { Ok(v.clone()) };
            let fused = values_and_grads(&ins, dtype, |v| xp(&v[0])?.gru_cell(&v[1], &v[2]));
            let chain = values_and_grads(&ins, dtype, |v| gru_step_chain(&xp(&v[0])?, &v[1], &v[2]));
            assert_eq!(fused[0], chain[0], "{dtype:?}: forward values");
            let tol = if dtype == DType::F32 { 1e-5 } else { 1e-13 };
            for (k, (a, b)) in fused[1..].iter().zip(&chain[1..]).enumerate() {
                for (x, y) in a.iter().zip(b) {
                    assert!((x - y).abs() <= tol * y.abs().max(1.0), "{dtype:?}: gradient {k}: {x} vs {y}");
                }
            }
        }
    }
    // shape and dtype errors name the op
    let c = |t: &Tensor| Var::constant(t.clone());
    let e = c(&rn(414, &[3, 5])).gru_cell(&c(&p), &c(&h0)).unwrap_err().to_string();
    assert!(e.contains("gru_cell"), "{e}");
    let e = c(&x).gru_cell(&c(&rn(415, &[2, 6])), &c(&h0)).unwrap_err().to_string();
    assert!(e.contains("gru_cell"), "{e}");
    let e = c(&x).gru_cell(&c(&p), &c(&h0.to_dtype(DType::F32).unwrap())).unwrap_err().to_string();
    assert!(e.contains("gru_cell"), "{e}");
}

/// An LSTM or GRU over a sequence step by step with the per-step ops (`x_t + h U` then
/// `lstm_cell`; `h U + b'` then `gru_cell`): what the fused sequences must equal.
fn sequence_chain(v: &[Var], lstm: bool, go_backwards: bool) -> Result<Var> {
    let t = v[0].dims()[1];
    let (mut h, mut c) = (v[2].clone(), if lstm { Some(v[3].clone()) } else { None });
    let mut hs = Vec::new();
    for i in 0..t {
        let ti = if go_backwards { t - 1 - i } else { i };
        let x = v[0].narrow(1, ti, 1)?.squeeze(1)?;
        if let Some(c0) = &c {
            let (hn, cn) = x.add(&h.matmul(&v[1])?)?.lstm_cell(c0)?;
            (h, c) = (hn, Some(cn));
        } else {
            let p = match v.get(3) {
                Some(b) => h.matmul_bias(&v[1], b)?,
                None => h.matmul(&v[1])?,
            };
            h = x.gru_cell(&p, &h)?;
        }
        hs.push(h.clone());
    }
    let refs: Vec<&Var> = hs.iter().collect();
    let mut outs = vec![Var::stack(&refs, 1)?.flatten_from(0)?, h.flatten_from(0)?];
    outs.extend(c.map(|c| c.flatten_from(0)).transpose()?);
    Var::concat(&outs.iter().collect::<Vec<_>>(), 0)
}

/// The fused sequences' outputs flattened and joined, as `sequence_chain` gives them.
fn sequence_fused(v: &[Var], lstm: bool, go_backwards: bool) -> Result<Var> {
    let outs = if lstm {
        let (hs, h, c) = v[0].lstm_sequence(&v[1], &v[2], &v[3], go_backwards)?;
        vec![hs, h, c]
    } else {
        let (hs, h) = v[0].gru_sequence(&v[1], v.get(3), &v[2], go_backwards)?;
        vec![hs, h]
    };
    let flat = outs.iter().map(|o| o.flatten_from(0)).collect::<Result<Vec<_>>>()?;
    Var::concat(&flat.iter().collect::<Vec<_>>(), 0)
}

#[test]
fn rnn_sequences_fused() {
    let (b, t, u) = (2, 3, 2);
    let lstm_inputs = vec![rn(420, &[b, t, 4 * u]), rn(421, &[u, 4 * u]), rn(422, &[b, u]), rn(423, &[b, u])];
    let gru_bias = vec![rn(424, &[b, t, 3 * u]), rn(425, &[u, 3 * u]), rn(426, &[b, u]), rn(427, &[3 * u])];
    let gru_plain = gru_bias[..3].to_vec();
    for go_backwards in [false, true] {
        for (lstm, inputs) in [(true, &lstm_inputs), (false, &gru_bias), (false, &gru_plain)] {
            let what = format!("lstm {lstm}, {} inputs, go_backwards {go_backwards}", inputs.len());
            // gradients of every input (projections, recurrent kernel, initial states, bias)
            let report = check(|v| sequence_fused(v, lstm, go_backwards), inputs);
            assert_eq!(report.checked, inputs.iter().map(Tensor::elem_count).sum::<usize>(), "{what}");
            // the per-step ops' forward bits in F32 and F64, their gradients to rounding
            for dtype in [DType::F32, DType::F64] {
                let fused = values_and_grads(inputs, dtype, |v| sequence_fused(v, lstm, go_backwards));
                let chain = values_and_grads(inputs, dtype, |v| sequence_chain(v, lstm, go_backwards));
                assert_eq!(fused[0], chain[0], "{what} {dtype:?}: forward values");
                let tol = if dtype == DType::F32 { 1e-5 } else { 1e-13 };
                for (k, (a, b)) in fused[1..].iter().zip(&chain[1..]).enumerate() {
                    for (x, y) in a.iter().zip(b) {
                        assert!((x - y).abs() <= tol * y.abs().max(1.0), "{what} {dtype:?}: gradient {k}: {x} vs {y}");
                    }
                }
            }
        }
    }
    // only the output sequence, only the final state: the other gradients are absent
    check(|v| v[0].lstm_sequence(&v[1], &v[2], &v[3], false).map(|o| o.0), &lstm_inputs);
    check(|v| v[0].lstm_sequence(&v[1], &v[2], &v[3], true).map(|o| o.2), &lstm_inputs);
    check(|v| v[0].gru_sequence(&v[1], v.get(3), &v[2], false).map(|o| o.1), &gru_bias);
    // one timestep
    let one = [rn(428, &[b, 1, 3 * u]), rn(425, &[u, 3 * u]), rn(426, &[b, u])];
    check(|v| sequence_fused(v, false, false), &one);
    // shape and dtype errors name the op
    let c = |t: &Tensor| Var::constant(t.clone());
    let l = &lstm_inputs;
    let e = c(&l[0]).lstm_sequence(&c(&gru_bias[1]), &c(&l[2]), &c(&l[3]), false).unwrap_err().to_string();
    assert!(e.contains("lstm_sequence"), "{e}");
    let e = c(&l[0]).lstm_sequence(&c(&l[1]), &c(&rn(429, &[3, u])), &c(&l[3]), false).unwrap_err().to_string();
    assert!(e.contains("lstm_sequence"), "{e}");
    let g = &gru_bias;
    let e = c(&g[0]).gru_sequence(&c(&g[1]), Some(&c(&rn(430, &[u]))), &c(&g[2]), false).unwrap_err().to_string();
    assert!(e.contains("gru_sequence"), "{e}");
    let e = c(&g[0]).gru_sequence(&c(&g[1]), None, &c(&g[2].to_dtype(DType::F32).unwrap()), false).unwrap_err();
    assert!(e.to_string().contains("gru_sequence"), "{e}");
}

#[test]
fn depthwise_conv2d_geometries() {
    // (input, kernel [kh, kw, c, depth_multiplier], strides, padding, dilation)
    let cases: &[(&[usize], &[usize], (usize, usize), Padding, (usize, usize))] = &[
        (&[2, 5, 5, 3], &[3, 3, 3, 1], (1, 1), Padding::Valid, (1, 1)),
        (&[1, 6, 5, 2], &[3, 3, 2, 3], (2, 2), Padding::Same, (1, 1)),
        (&[1, 7, 6, 2], &[4, 4, 2, 2], (2, 2), Padding::Same, (1, 1)),
        (&[1, 7, 7, 3], &[3, 2, 3, 2], (1, 1), Padding::Valid, (2, 2)),
        (&[2, 5, 4, 1], &[2, 3, 1, 3], (1, 1), Padding::Same, (2, 1)),
        // strides with dilation (Keras 3.15 runs them)
        (&[1, 9, 8, 2], &[3, 2, 2, 2], (2, 2), Padding::Same, (2, 3)),
        (&[1, 9, 10, 1], &[3, 3, 1, 1], (2, 3), Padding::Valid, (2, 2)),
    ];
    for (i, &(x, k, s, p, d)) in cases.iter().enumerate() {
        let r = gradcheck(|v| v[0].depthwise_conv2d(&v[1], s, p, d), &[rn(90 + i as u64, x), rn(95 + i as u64, k)]);
        assert!(r.is_ok(), "case {i}: {}", r.unwrap_err());
    }
    // a separable block as SeparableConv2D runs it: depthwise, pointwise, bias, activation
    check(
        |v| {
            v[0].depthwise_conv2d(&v[1], (1, 1), Padding::Same, (1, 1))?
                .conv2d(&v[2], (1, 1), Padding::Valid, (1, 1))?
                .add(&v[3])?
                .tanh()
        },
        &[rn(100, &[1, 4, 4, 2]), rn(101, &[3, 3, 2, 2]), rn(102, &[1, 1, 4, 3]), rn(103, &[3])],
    );
    // the op's output channel order is TensorFlow's: channel c * m + j from input channel c
    let x = Var::constant(Tensor::from_vec(vec![1.0f64, 10.0], vec![1, 1, 1, 2]).unwrap());
    let k = Var::constant(Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], vec![1, 1, 2, 3]).unwrap());
    let y = x.depthwise_conv2d(&k, (1, 1), Padding::Valid, (1, 1)).unwrap();
    assert_eq!(y.value().to_vec::<f64>().unwrap(), vec![1.0, 2.0, 3.0, 40.0, 50.0, 60.0]);
}
