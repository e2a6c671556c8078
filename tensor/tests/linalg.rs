//! matmul, conv2d and pooling against direct float64 loops, including
//! `same` padding with even kernels, stride 2 and dilation; backward
//! primitives against direct loops and the adjoint identity.

mod common;
use common::*;
use keel_tensor::{Conv2dParams, DType, Error, Padding, Pool2dParams, Tensor};

fn matmul_ref(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
        }
    }
    out
}

#[test]
fn matmul_2d_against_f64_loop_including_odd_sizes() {
    for (m, k, n) in [(1, 1, 1), (3, 5, 2), (17, 33, 9), (64, 64, 64), (70, 129, 35)] {
        let a = rand(m as u64, &[m, k], -1.0, 1.0);
        let b = rand(n as u64 + 50, &[k, n], -1.0, 1.0);
        let want = matmul_ref(&vals(&a), &vals(&b), m, k, n);
        let got = a.matmul(&b).unwrap();
        assert_eq!(got.dims(), &[m, n]);
        assert!(rel_err(&vals(&got), &want) < 1e-6, "{m}x{k}x{n}");
        // f64 is exact to rounding
        let got64 = a.to_dtype(DType::F64).unwrap().matmul(&b.to_dtype(DType::F64).unwrap()).unwrap();
        assert!(rel_err(&vals(&got64), &want) < 1e-14);
    }
}

#[test]
fn matmul_transposed_and_sliced_operands_without_copy() {
    let a = rand(1, &[8, 6], -1.0, 1.0);
    let b = rand(2, &[5, 8], -1.0, 1.0);
    // a^T [6, 8] x b^T [8, 5]
    let got = a.t().unwrap().matmul(&b.t().unwrap()).unwrap();
    let want =
        matmul_ref(&vals(&a.t().unwrap().contiguous().unwrap()), &vals(&b.t().unwrap().contiguous().unwrap()), 6, 8, 5);
    assert!(rel_err(&vals(&got), &want) < 1e-6);
    let s = a.narrow(1, 1, 4).unwrap(); // [8, 4] strided
    let c = rand(3, &[4, 3], -1.0, 1.0);
    let want = matmul_ref(&vals(&s.contiguous().unwrap()), &vals(&c), 8, 4, 3);
    assert!(rel_err(&vals(&s.matmul(&c).unwrap()), &want) < 1e-6);
}

#[test]
fn batched_matmul_with_broadcast_batch() {
    let a = rand(4, &[3, 4, 5], -1.0, 1.0);
    let b = rand(5, &[5, 2], -1.0, 1.0);
    let got = a.matmul(&b).unwrap();
    assert_eq!(got.dims(), &[3, 4, 2]);
    let (av, bv, gv) = (vals(&a), vals(&b), vals(&got));
    for i in 0..3 {
        let want = matmul_ref(&av[i * 20..(i + 1) * 20], &bv, 4, 5, 2);
        assert!(rel_err(&gv[i * 8..(i + 1) * 8], &want) < 1e-6);
    }
    let b3 = rand(6, &[3, 5, 2], -1.0, 1.0);
    let got = a.matmul(&b3).unwrap();
    let (b3v, gv) = (vals(&b3), vals(&got));
    for i in 0..3 {
        let want = matmul_ref(&av[i * 20..(i + 1) * 20], &b3v[i * 10..(i + 1) * 10], 4, 5, 2);
        assert!(rel_err(&gv[i * 8..(i + 1) * 8], &want) < 1e-6);
    }
    // [1, m, k] x [b, k, n] and 4-D batches
    let a1 = rand(7, &[1, 4, 5], -1.0, 1.0);
    assert_eq!(a1.matmul(&b3).unwrap().dims(), &[3, 4, 2]);
    let a4 = rand(8, &[2, 3, 4, 5], -1.0, 1.0);
    assert_eq!(a4.matmul(&b3).unwrap().dims(), &[2, 3, 4, 2]);
}

#[test]
fn matmul_half_precision_accumulates_in_f32() {
    for dtype in [DType::F16, DType::BF16] {
        let a = rand(9, &[32, 64], -1.0, 1.0).to_dtype(dtype).unwrap();
        let b = rand(10, &[64, 16], -1.0, 1.0).to_dtype(dtype).unwrap();
        let got = a.matmul(&b).unwrap();
        assert_eq!(got.dtype(), dtype);
        let want = matmul_ref(&vals(&a), &vals(&b), 32, 64, 16);
        assert!(rel_err(&vals(&got), &want) < 1e-2, "{dtype:?}");
    }
}

#[test]
fn matmul_shape_errors_name_op_and_shapes() {
    let a = rand(1, &[2, 3], 0.0, 1.0);
    let b = rand(2, &[4, 5], 0.0, 1.0);
    let msg = a.matmul(&b).unwrap_err().to_string();
    assert!(msg.contains("matmul") && msg.contains("[2, 3]") && msg.contains("[4, 5]"), "{msg}");
    assert!(rand(3, &[3], 0.0, 1.0).matmul(&b).is_err());
    let c = rand(4, &[2, 3, 4], 0.0, 1.0);
    let d = rand(5, &[3, 4, 2], 0.0, 1.0);
    assert!(c.matmul(&d).is_err(), "batch dims 2 vs 3 do not broadcast");
}

#[test]
fn matmul_bias_against_f64_loop_and_the_unfused_ops() {
    for (dims_a, (k, n)) in [(vec![17, 33], (33, 9)), (vec![3, 4, 5], (5, 2)), (vec![6, 0], (0, 4))] {
        let a = rand(11, &dims_a, -1.0, 1.0);
        let w = rand(12, &[k, n], -1.0, 1.0);
        let b = rand(13, &[n], -1.0, 1.0);
        let m: usize = dims_a[..dims_a.len() - 1].iter().product();
        let prod = matmul_ref(&vals(&a), &vals(&w), m, k, n);
        let bv = vals(&b);
        let want: Vec<f64> = prod.iter().enumerate().map(|(i, p)| p + bv[i % n]).collect();
        let relu: Vec<f64> = want.iter().map(|v| v.max(0.0)).collect();
        for dtype in [DType::F32, DType::F64, DType::BF16] {
            let (a, w, b) = (a.to_dtype(dtype).unwrap(), w.to_dtype(dtype).unwrap(), b.to_dtype(dtype).unwrap());
            let tol = if dtype == DType::BF16 { 1e-2 } else { 1e-6 };
            let got = a.matmul_bias(&w, &b).unwrap();
            assert!(rel_err(&vals(&got), &want) < tol, "{dims_a:?} {dtype}");
            assert_eq!(
                vals(&got),
                vals(&a.matmul(&w).unwrap().add(&b).unwrap()),
                "{dims_a:?} {dtype}: not the bits of the two ops"
            );
            let got = a.matmul_bias_relu(&w, &b).unwrap();
            assert!(rel_err(&vals(&got), &relu) < tol, "{dims_a:?} {dtype} relu");
            assert_eq!(
                vals(&got),
                vals(&a.matmul(&w).unwrap().add(&b).unwrap().relu().unwrap()),
                "{dims_a:?} {dtype} relu"
            );
        }
    }
    // the bias must be [n] of the operands' dtype; the matmul's own errors come first
    let (a, w) = (rand(14, &[2, 3], 0.0, 1.0), rand(15, &[3, 4], 0.0, 1.0));
    let msg = a.matmul_bias(&w, &rand(16, &[3], 0.0, 1.0)).unwrap_err().to_string();
    assert!(msg.contains("matmul_bias") && msg.contains("[3, 4]") && msg.contains("[3]"), "{msg}");
    let msg = a.matmul_bias_relu(&w, &rand(17, &[1, 4], 0.0, 1.0)).unwrap_err().to_string();
    assert!(msg.contains("matmul_bias_relu") && msg.contains("[1, 4]"), "{msg}");
    let b64 = rand(18, &[4], 0.0, 1.0).to_dtype(DType::F64).unwrap();
    assert!(matches!(a.matmul_bias(&w, &b64), Err(Error::DTypeMismatch { op: "matmul_bias", .. })));
    let msg = a.matmul_bias(&rand(19, &[4, 5], 0.0, 1.0), &rand(20, &[5], 0.0, 1.0)).unwrap_err().to_string();
    assert!(msg.contains("matmul") && msg.contains("inner dims"), "{msg}");
}

struct ConvCase {
    x: [usize; 4],
    k: [usize; 4],
    stride: (usize, usize),
    pad: Padding,
    dil: (usize, usize),
}

fn conv_cases() -> Vec<ConvCase> {
    vec![
        ConvCase { x: [2, 7, 6, 3], k: [3, 3, 3, 4], stride: (1, 1), pad: Padding::Valid, dil: (1, 1) },
        ConvCase { x: [2, 7, 6, 3], k: [3, 3, 3, 4], stride: (1, 1), pad: Padding::Same, dil: (1, 1) },
        ConvCase { x: [1, 8, 8, 2], k: [2, 2, 2, 3], stride: (1, 1), pad: Padding::Same, dil: (1, 1) },
        ConvCase { x: [1, 9, 7, 2], k: [4, 4, 2, 2], stride: (2, 2), pad: Padding::Same, dil: (1, 1) },
        ConvCase { x: [2, 9, 9, 2], k: [3, 3, 2, 5], stride: (2, 2), pad: Padding::Valid, dil: (1, 1) },
        ConvCase { x: [1, 10, 9, 2], k: [3, 2, 2, 3], stride: (1, 2), pad: Padding::Same, dil: (2, 2) },
        ConvCase { x: [3, 5, 5, 4], k: [1, 1, 4, 6], stride: (1, 1), pad: Padding::Valid, dil: (1, 1) },
        // short patches with >= 8 output channels: the direct kernels' 8-channel groups plus a tail
        ConvCase { x: [2, 9, 8, 1], k: [3, 3, 1, 20], stride: (1, 1), pad: Padding::Same, dil: (1, 1) },
        ConvCase { x: [1, 11, 10, 1], k: [5, 5, 1, 16], stride: (2, 1), pad: Padding::Valid, dil: (1, 2) },
        ConvCase { x: [1, 7, 7, 2], k: [3, 2, 2, 9], stride: (1, 1), pad: Padding::Same, dil: (1, 1) },
        // a long patch (im2col + GEMM path)
        ConvCase { x: [2, 6, 7, 8], k: [3, 3, 8, 10], stride: (1, 2), pad: Padding::Same, dil: (1, 1) },
    ]
}

/// Direct float64 convolution with explicit geometry.
fn conv_ref(x: &[f64], k: &[f64], p: &Conv2dParams) -> Vec<f64> {
    let mut out = vec![0.0; p.n * p.oh * p.ow * p.o];
    for b in 0..p.n {
        for oy in 0..p.oh {
            for ox in 0..p.ow {
                for o in 0..p.o {
                    let mut acc = 0.0;
                    for ki in 0..p.kh {
                        for kj in 0..p.kw {
                            let iy = (oy * p.sh + ki * p.dh) as isize - p.pt as isize;
                            let ix = (ox * p.sw + kj * p.dw) as isize - p.pl as isize;
                            if iy < 0 || ix < 0 || iy >= p.h as isize || ix >= p.w as isize {
                                continue;
                            }
                            for c in 0..p.c {
                                acc += x[((b * p.h + iy as usize) * p.w + ix as usize) * p.c + c]
                                    * k[((ki * p.kw + kj) * p.c + c) * p.o + o];
                            }
                        }
                    }
                    out[((b * p.oh + oy) * p.ow + ox) * p.o + o] = acc;
                }
            }
        }
    }
    out
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn conv2d_forward_matches_direct_loop() {
    for (i, c) in conv_cases().iter().enumerate() {
        let x = rand(i as u64, &c.x, -1.0, 1.0);
        let k = rand(i as u64 + 30, &c.k, -1.0, 1.0);
        let p = Conv2dParams::new("test", x.shape(), k.shape(), c.stride, c.pad, c.dil).unwrap();
        let got = x.conv2d(&k, c.stride, c.pad, c.dil).unwrap();
        assert_eq!(got.shape(), &p.out_shape());
        let want = conv_ref(&vals(&x), &vals(&k), &p);
        assert!(rel_err(&vals(&got), &want) < 1e-6, "case {i}");
        if c.pad == Padding::Same {
            assert_eq!((p.oh, p.ow), (c.x[1].div_ceil(c.stride.0), c.x[2].div_ceil(c.stride.1)), "case {i}");
        }
    }
    // even kernel, same padding: TensorFlow puts the extra row/col at bottom/right
    let p = Conv2dParams::new("t", &[1, 8, 8, 1].into(), &[2, 2, 1, 1].into(), (1, 1), Padding::Same, (1, 1)).unwrap();
    assert_eq!((p.pt, p.pl), (0, 0));
    let p = Conv2dParams::new("t", &[1, 8, 8, 1].into(), &[4, 4, 1, 1].into(), (1, 1), Padding::Same, (1, 1)).unwrap();
    assert_eq!((p.pt, p.pl), (1, 1));
}

#[test]
fn conv2d_backward_primitives_match_direct_loops_and_adjoint() {
    for (i, c) in conv_cases().iter().enumerate() {
        let x = rand(i as u64, &c.x, -1.0, 1.0).to_dtype(DType::F64).unwrap();
        let k = rand(i as u64 + 30, &c.k, -1.0, 1.0).to_dtype(DType::F64).unwrap();
        let p = Conv2dParams::new("test", x.shape(), k.shape(), c.stride, c.pad, c.dil).unwrap();
        let dy = rand(i as u64 + 60, p.out_shape().dims(), -1.0, 1.0).to_dtype(DType::F64).unwrap();
        let dx = dy.conv2d_grad_input(&k, &p).unwrap();
        let dk = x.conv2d_grad_kernel(&dy, &p).unwrap();
        assert_eq!(dx.shape(), x.shape());
        assert_eq!(dk.shape(), k.shape());
        // conv is linear in x and in k: <conv(x,k), dy> = <x, dx> = <k, dk>
        let y = x.conv2d_with(&k, &p).unwrap();
        let lhs = dot(&vals(&y), &vals(&dy));
        assert!((lhs - dot(&vals(&x), &vals(&dx))).abs() < 1e-9 * lhs.abs().max(1.0), "case {i} dx");
        assert!((lhs - dot(&vals(&k), &vals(&dk))).abs() < 1e-9 * lhs.abs().max(1.0), "case {i} dk");
        // and entry by entry: d<conv(x,k),dy>/dx[j] via the direct loop on a unit vector
        let (xv, kv, dyv) = (vals(&x), vals(&k), vals(&dy));
        for j in [0usize, xv.len() / 2, xv.len() - 1] {
            let mut e = vec![0.0; xv.len()];
            e[j] = 1.0;
            let want = dot(&conv_ref(&e, &kv, &p), &dyv);
            assert!((vals(&dx)[j] - want).abs() < 1e-12, "case {i} dx[{j}]");
        }
        for j in [0usize, kv.len() - 1] {
            let mut e = vec![0.0; kv.len()];
            e[j] = 1.0;
            let want = dot(&conv_ref(&xv, &e, &p), &dyv);
            assert!((vals(&dk)[j] - want).abs() < 1e-12, "case {i} dk[{j}]");
        }
    }
}

#[test]
fn conv2d_f32_non_contiguous_and_half_inputs() {
    let x = rand(1, &[2, 6, 6, 3], -1.0, 1.0);
    let k = rand(2, &[3, 3, 3, 4], -1.0, 1.0);
    let want = vals(&x.conv2d(&k, (1, 1), Padding::Same, (1, 1)).unwrap());
    let xs = x.permute(&[0, 2, 1, 3]).unwrap().contiguous().unwrap().permute(&[0, 2, 1, 3]).unwrap();
    assert!(!xs.is_contiguous());
    assert_eq!(vals(&xs.conv2d(&k, (1, 1), Padding::Same, (1, 1)).unwrap()), want);
    for dtype in [DType::F16, DType::BF16] {
        let got =
            x.to_dtype(dtype).unwrap().conv2d(&k.to_dtype(dtype).unwrap(), (1, 1), Padding::Same, (1, 1)).unwrap();
        assert!(rel_err(&vals(&got), &want) < 2e-2, "{dtype:?}");
    }
}

#[test]
fn conv2d_bad_shapes_are_errors() {
    let x = rand(1, &[1, 5, 5, 3], 0.0, 1.0);
    let k = rand(2, &[3, 3, 2, 4], 0.0, 1.0);
    let msg = x.conv2d(&k, (1, 1), Padding::Valid, (1, 1)).unwrap_err().to_string();
    assert!(msg.contains("conv2d") && msg.contains("[1, 5, 5, 3]") && msg.contains("[3, 3, 2, 4]"), "{msg}");
    let k = rand(3, &[7, 7, 3, 4], 0.0, 1.0);
    assert!(x.conv2d(&k, (1, 1), Padding::Valid, (1, 1)).is_err(), "window larger than input");
    let k = rand(4, &[3, 3, 3, 4], 0.0, 1.0);
    assert!(x.conv2d(&k, (0, 1), Padding::Valid, (1, 1)).is_err(), "zero stride");
    assert!(rand(5, &[5, 5, 3], 0.0, 1.0).conv2d(&k, (1, 1), Padding::Valid, (1, 1)).is_err(), "rank 3 input");
}

fn pool_ref(x: &[f64], p: &Pool2dParams, max: bool) -> (Vec<f64>, Vec<usize>) {
    let mut out = vec![0.0; p.n * p.oh * p.ow * p.c];
    let mut arg = vec![0; out.len()];
    for b in 0..p.n {
        for oy in 0..p.oh {
            for ox in 0..p.ow {
                for c in 0..p.c {
                    let (mut best, mut bi, mut sum, mut cnt) = (f64::NEG_INFINITY, 0, 0.0, 0);
                    for ki in 0..p.kh {
                        for kj in 0..p.kw {
                            let iy = (oy * p.sh + ki) as isize - p.pt as isize;
                            let ix = (ox * p.sw + kj) as isize - p.pl as isize;
                            if iy < 0 || ix < 0 || iy >= p.h as isize || ix >= p.w as isize {
                                continue;
                            }
                            let j = ((b * p.h + iy as usize) * p.w + ix as usize) * p.c + c;
                            if x[j] > best {
                                best = x[j];
                                bi = j;
                            }
                            sum += x[j];
                            cnt += 1;
                        }
                    }
                    let o = ((b * p.oh + oy) * p.ow + ox) * p.c + c;
                    out[o] = if max { best } else { sum / cnt as f64 };
                    arg[o] = bi;
                }
            }
        }
    }
    (out, arg)
}

#[test]
fn pooling_forward_and_backward_match_direct_loops() {
    let cases = [
        ([2, 6, 6, 3], (2, 2), (2, 2), Padding::Valid),
        ([1, 7, 7, 2], (2, 2), (2, 2), Padding::Valid),
        ([1, 7, 5, 2], (2, 2), (2, 2), Padding::Same),
        ([2, 5, 6, 1], (3, 3), (1, 1), Padding::Same),
        ([1, 9, 9, 2], (3, 3), (2, 2), Padding::Valid),
        ([1, 8, 8, 2], (4, 4), (2, 2), Padding::Same),
        // 8-channel vector groups plus a tail
        ([2, 6, 5, 11], (2, 2), (2, 2), Padding::Same),
        ([1, 5, 5, 16], (3, 3), (1, 1), Padding::Valid),
    ];
    for (i, (xs, pool, strides, pad)) in cases.iter().enumerate() {
        let x = rand(i as u64, xs, -1.0, 1.0).to_dtype(DType::F64).unwrap();
        let p = Pool2dParams::new("t", x.shape(), *pool, *strides, *pad).unwrap();
        let xv = vals(&x);
        let (want_max, want_arg) = pool_ref(&xv, &p, true);
        let (want_avg, _) = pool_ref(&xv, &p, false);
        let (mx, arg) = x.max_pool2d(*pool, *strides, *pad).unwrap();
        assert_eq!(vals(&mx), want_max, "case {i}");
        assert_eq!(arg.to_vec::<i64>().unwrap(), want_arg.iter().map(|&a| a as i64).collect::<Vec<_>>());
        let avg = x.avg_pool2d(*pool, *strides, *pad).unwrap();
        assert_close(&vals(&avg), &want_avg, 1e-12, 1e-12);
        // backward: adjoint identities (avg is linear; max is linear given argmax)
        let dy = rand(i as u64 + 9, p.out_shape().dims(), -1.0, 1.0).to_dtype(DType::F64).unwrap();
        let dxa = dy.avg_pool2d_grad(&p).unwrap();
        assert!((dot(&vals(&avg), &vals(&dy)) - dot(&xv, &vals(&dxa))).abs() < 1e-10);
        let dxm = dy.max_pool2d_grad(&arg, &p).unwrap();
        let mut want = vec![0.0; xv.len()];
        for (o, &a) in want_arg.iter().enumerate() {
            want[a] += vals(&dy)[o];
        }
        assert_close(&vals(&dxm), &want, 1e-12, 1e-12);
        // f32 gives the same max
        let (m32, _) = x.to_dtype(DType::F32).unwrap().max_pool2d(*pool, *strides, *pad).unwrap();
        assert_close(&vals(&m32), &want_max, 1e-6, 1e-7);
    }
}

#[test]
fn max_pool_ties_keep_the_first_and_nan_propagates() {
    // one 2x2 window, 10 channels (an 8-channel group and a tail): channel c's
    // values at the four window positions
    let cols: [[f32; 4]; 10] = [
        [1.0, 1.0, 1.0, 1.0],           // tie everywhere: first position
        [0.0, 2.0, 2.0, 1.0],           // tie of maxima: first of them
        [f32::NAN, 5.0, 6.0, 7.0],      // NaN first: NaN at 0
        [1.0, f32::NAN, 9.0, f32::NAN], // first NaN wins over a larger value
        [-3.0, -2.0, -1.0, -4.0],
        [f32::NEG_INFINITY; 4],
        [0.0, -0.0, 0.0, 0.0],
        [4.0, 3.0, 2.0, 1.0],
        [1.0, 2.0, 3.0, f32::NAN], // the tail channels
        [1.0, 3.0, 3.0, 2.0],
    ];
    let mut x = vec![0f32; 40];
    for (c, col) in cols.iter().enumerate() {
        for (pos, &v) in col.iter().enumerate() {
            x[pos * 10 + c] = v;
        }
    }
    let (want_pos, want_val) = (
        [0usize, 1, 0, 1, 2, 0, 0, 0, 3, 1],
        [1.0f32, 2.0, f32::NAN, f32::NAN, -1.0, f32::NEG_INFINITY, 0.0, 4.0, f32::NAN, 3.0],
    );
    for dtype in [DType::F32, DType::F64] {
        let t = Tensor::from_vec(x.clone(), [1, 2, 2, 10]).unwrap().to_dtype(dtype).unwrap();
        let (m, arg) = t.max_pool2d((2, 2), (2, 2), Padding::Valid).unwrap();
        let (m, arg) = (vals(&m), arg.to_vec::<i64>().unwrap());
        for c in 0..10 {
            assert_eq!(arg[c], (want_pos[c] * 10 + c) as i64, "{dtype:?} channel {c}");
            let w = want_val[c] as f64;
            assert!(m[c] == w || (m[c].is_nan() && w.is_nan()), "{dtype:?} channel {c}: {} vs {w}", m[c]);
        }
    }
}

#[test]
fn max_pool_grad_with_foreign_indices_scatters() {
    // an index outside its own window (but inside the image) still receives
    // its gradient, as a scatter does; one outside the image is an error
    let x = rand(3, &[2, 4, 4, 3], -1.0, 1.0);
    let p = Pool2dParams::new("t", x.shape(), (2, 2), (2, 2), Padding::Valid).unwrap();
    let (_, arg) = x.max_pool2d((2, 2), (2, 2), Padding::Valid).unwrap();
    let mut ids = arg.to_vec::<i64>().unwrap();
    ids[0] = 47; // image 0, pixel (3, 3), channel 2: another window's position
    let dy = rand(4, p.out_shape().dims(), -1.0, 1.0);
    let got =
        vals(&dy.max_pool2d_grad(&Tensor::from_vec(ids.clone(), p.out_shape().dims().to_vec()).unwrap(), &p).unwrap());
    let mut want = vec![0.0; 96];
    for (o, &i) in ids.iter().enumerate() {
        want[i as usize] += vals(&dy)[o];
    }
    assert_close(&got, &want, 1e-6, 1e-7);
    ids[0] = 96;
    let bad = Tensor::from_vec(ids, p.out_shape().dims().to_vec()).unwrap();
    assert!(dy.max_pool2d_grad(&bad, &p).is_err());
}

#[test]
fn pool_errors() {
    let x = rand(1, &[1, 3, 3, 1], 0.0, 1.0);
    assert!(matches!(x.max_pool2d((4, 4), (1, 1), Padding::Valid), Err(Error::InvalidArgument { .. })));
    assert!(rand(2, &[3, 3], 0.0, 1.0).avg_pool2d((2, 2), (2, 2), Padding::Valid).is_err());
    let i = Tensor::from_vec(vec![1i64; 9], (1, 3, 3, 1)).unwrap();
    assert!(i.max_pool2d((2, 2), (1, 1), Padding::Valid).is_err());
}
