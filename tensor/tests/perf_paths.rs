//! The fast CPU paths (threaded GEMM blocks, direct small-patch convolution,
//! row kernels, fused ops, column sums) give the same bits on any thread count
//! and the same values as the plain op chains.
#![cfg(feature = "cpu")]

use keel_tensor::ops::AdamStep;
use keel_tensor::{BinaryOp, Conv2dParams, DType, Device, Padding, Tensor, UnaryOp};

fn rand(seed: u64, dims: &[usize]) -> Tensor {
    Tensor::rand_uniform(seed, -1.0, 1.0, dims.to_vec(), DType::F32, &Device::Cpu).unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec::<f32>().unwrap().iter().map(|x| x.to_bits()).collect()
}

/// Run `f` on a one-thread and on a three-thread rayon pool.
fn on_pools<R: Send>(f: impl Fn() -> R + Sync) -> (R, R) {
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    (one.install(&f), three.install(&f))
}

#[test]
fn threaded_kernels_are_thread_count_independent() {
    let x = rand(1, &[16, 13, 13, 32]);
    let k = rand(2, &[3, 3, 32, 64]);
    let x1 = rand(3, &[16, 28, 28, 1]);
    let k1 = rand(4, &[3, 3, 1, 32]);
    let p = Conv2dParams::new("t", x.shape(), k.shape(), (1, 1), Padding::Same, (1, 1)).unwrap();
    let p1 = Conv2dParams::new("t", x1.shape(), k1.shape(), (1, 1), Padding::Valid, (1, 1)).unwrap();
    let (a, b) = on_pools(|| {
        let y = x.conv2d_with(&k, &p).unwrap();
        let y1 = x1.conv2d_with(&k1, &p1).unwrap();
        let outs = vec![
            y.clone(),
            y.conv2d_grad_input(&k, &p).unwrap(),
            x.conv2d_grad_kernel(&y, &p).unwrap(),
            y1.clone(),
            x1.conv2d_grad_kernel(&y1, &p1).unwrap(),
            rand(5, &[300, 200]).matmul(&rand(6, &[200, 40])).unwrap(),
            rand(7, &[20, 4000]).matmul(&rand(8, &[4000, 30])).unwrap(),
            rand(9, &[20, 50]).matmul(&rand(10, &[50, 500])).unwrap(),
            y.sum(&[0, 1, 2], false).unwrap(),
            x1.conv2d_bias_relu(&k1, &rand(11, &[32]), &p1).unwrap(),
            x.conv2d_bias_relu(&k, &rand(12, &[64]), &p).unwrap(),
            y1.max_pool2d((2, 2), (2, 2), Padding::Valid).unwrap().0,
        ];
        outs.iter().map(bits).collect::<Vec<_>>()
    });
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(x == y, "output {i} differs between 1 and 3 threads");
    }
}

#[test]
fn direct_conv_matches_reference() {
    // the 3x3x1 path (no im2col) against a naive loop
    let x = rand(11, &[2, 6, 5, 1]);
    let k = rand(12, &[3, 3, 1, 4]);
    let y = x.conv2d(&k, (1, 1), Padding::Same, (1, 1)).unwrap().to_vec::<f32>().unwrap();
    let (xv, kv) = (x.to_vec::<f32>().unwrap(), k.to_vec::<f32>().unwrap());
    for b in 0..2 {
        for i in 0..6 {
            for j in 0..5 {
                for o in 0..4 {
                    let mut s = 0f64;
                    for di in 0..3 {
                        for dj in 0..3 {
                            let (yi, xj) = (i as isize + di as isize - 1, j as isize + dj as isize - 1);
                            if (0..6).contains(&yi) && (0..5).contains(&xj) {
                                let v = xv[(b * 6 + yi as usize) * 5 + xj as usize] as f64;
                                s += v * kv[(di * 3 + dj) * 4 + o] as f64;
                            }
                        }
                    }
                    let got = y[((b * 6 + i) * 5 + j) * 4 + o] as f64;
                    assert!((got - s).abs() < 1e-5, "{got} vs {s}");
                }
            }
        }
    }
}

#[test]
fn fused_ops_equal_the_op_chains() {
    let x = rand(13, &[8, 7, 5, 33]);
    let b = rand(14, &[33]);
    let fused = x.binary_unary(&b, BinaryOp::Add, UnaryOp::Relu, 0.0).unwrap();
    assert_eq!(bits(&fused), bits(&x.add(&b).unwrap().relu().unwrap()));
    // scalar and transposed operands go through the row kernels / fallbacks
    assert_eq!(
        bits(&x.mul_scalar(0.3).unwrap()),
        x.to_vec::<f32>().unwrap().iter().map(|v| (v * 0.3f32).to_bits()).collect::<Vec<_>>()
    );
    // the strided fallback (one element at a time) and the row kernel (vectorized) give
    // the same bits, for each exp/tanh-based op and its gradient
    let t = x.mul_scalar(4.0).unwrap().transpose(1, 3).unwrap();
    let tc = t.contiguous().unwrap();
    let g = rand(20, &[5, 33, 8, 7]).transpose(0, 2).unwrap();
    for op in [UnaryOp::Exp, UnaryOp::Tanh, UnaryOp::Sigmoid, UnaryOp::Silu, UnaryOp::Softplus, UnaryOp::Elu] {
        assert_eq!(bits(&t.unary(op, 1.0).unwrap()), bits(&tc.unary(op, 1.0).unwrap()), "{op:?}");
        let (strided, rows) = (t.unary_grad(&g, op, 1.0).unwrap(), tc.unary_grad(&g.contiguous().unwrap(), op, 1.0));
        assert_eq!(bits(&strided), bits(&rows.unwrap()), "{op:?} gradient");
    }

    let (p, g, m, v, vh) =
        (rand(15, &[70000]), rand(16, &[70000]), rand(17, &[70000]), rand(18, &[70000]), rand(19, &[70000]));
    let v = v.abs().unwrap();
    let vh = vh.abs().unwrap();
    let h = AdamStep { alpha: 1e-3, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 };
    let out = p.adam_update(&g, &m, &v, Some(&vh), &h).unwrap();
    let m2 = m.add(&g.sub(&m).unwrap().mul_scalar(1.0 - 0.9).unwrap()).unwrap();
    let v2 = v.add(&g.square().unwrap().sub(&v).unwrap().mul_scalar(1.0 - 0.999).unwrap()).unwrap();
    let vh2 = vh.maximum(&v2).unwrap();
    let p2 = p.sub(&m2.mul_scalar(1e-3).unwrap().div(&vh2.sqrt().unwrap().add_scalar(1e-7).unwrap()).unwrap()).unwrap();
    assert_eq!(bits(&out.m), bits(&m2));
    assert_eq!(bits(&out.v), bits(&v2));
    assert_eq!(bits(out.v_hat.as_ref().unwrap()), bits(&vh2));
    assert_eq!(bits(&out.param), bits(&p2));
}

#[test]
fn leading_axis_sum_matches_f64_reference() {
    let x = rand(20, &[40, 9, 17]);
    let s = x.sum(&[0, 1], false).unwrap().to_vec::<f32>().unwrap();
    let xv = x.to_vec::<f32>().unwrap();
    for c in 0..17 {
        let want: f64 = (0..360).map(|r| xv[r * 17 + c] as f64).sum();
        assert_eq!(s[c], want as f32);
    }
}

#[test]
fn conv2d_bias_relu_equals_the_op_chain() {
    // direct kernel (short patches; 8-channel groups and a tail), im2col + GEMM, pointwise
    for (i, (xs, ks, pad)) in [
        ([3, 9, 8, 1], [3, 3, 1, 20], Padding::Same),
        ([2, 7, 6, 2], [5, 5, 2, 3], Padding::Valid),
        ([2, 8, 7, 8], [3, 3, 8, 12], Padding::Same),
        ([2, 4, 4, 6], [1, 1, 6, 5], Padding::Valid),
    ]
    .into_iter()
    .enumerate()
    {
        for dtype in [DType::F32, DType::F64, DType::F16] {
            let x = rand(40 + i as u64, &xs).to_dtype(dtype).unwrap();
            let k = rand(50 + i as u64, &ks).to_dtype(dtype).unwrap();
            let b = rand(60 + i as u64, &[ks[3]]).to_dtype(dtype).unwrap();
            let p = keel_tensor::Conv2dParams::new("t", x.shape(), k.shape(), (1, 1), pad, (1, 1)).unwrap();
            let fused = x.conv2d_bias_relu(&k, &b, &p).unwrap();
            let chain = x.conv2d_with(&k, &p).unwrap().binary_unary(&b, BinaryOp::Add, UnaryOp::Relu, 0.0).unwrap();
            let f64s = |t: &Tensor| t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
            assert_eq!(f64s(&fused), f64s(&chain), "case {i} {dtype:?}");
            assert!(f64s(&fused).iter().any(|&v| v > 0.0) && f64s(&fused).contains(&0.0));
        }
    }
    let x = rand(1, &[1, 5, 5, 1]);
    let k = rand(2, &[3, 3, 1, 4]);
    let p = keel_tensor::Conv2dParams::new("t", x.shape(), k.shape(), (1, 1), Padding::Valid, (1, 1)).unwrap();
    let msg = x.conv2d_bias_relu(&k, &rand(3, &[5]), &p).unwrap_err().to_string();
    assert!(msg.contains("conv2d") && msg.contains("[5]") && msg.contains("[4]"), "{msg}");
}

/// The one-pass ReLU + bias gradient gives the bits of the ReLU gradient then the
/// leading-axes sum (small and threaded sizes, ragged chunks of rows, negative zeros,
/// NaN), on any thread count, in f32 and f64.
#[test]
fn fused_relu_bias_grad_equals_the_op_chain() {
    for dims in [vec![3, 5], vec![2, 7, 7, 3], vec![129, 3, 2, 32], vec![700, 10]] {
        let y = rand(90, &dims).relu().unwrap();
        let mut g = rand(91, &dims).to_vec::<f32>().unwrap();
        g[0] = f32::NAN;
        let g = Tensor::from_vec(g, dims.clone()).unwrap();
        let lead: Vec<isize> = (0..dims.len() as isize - 1).collect();
        let chain = |y: &Tensor, g: &Tensor| {
            let gz = y.unary_grad(g, UnaryOp::Relu, 0.0).unwrap();
            let b = gz.sum(&lead, false).unwrap();
            (gz, b)
        };
        let (fused, fused3) = on_pools(|| y.relu_grad_with_bias_grad(&g).unwrap());
        let (gz, b) = chain(&y, &g);
        assert_eq!(bits(&fused.0), bits(&gz), "{dims:?} gz");
        assert_eq!(bits(&fused.1), bits(&b), "{dims:?} bias");
        assert_eq!((bits(&fused3.0), bits(&fused3.1)), (bits(&gz), bits(&b)), "{dims:?} threads");
        let (y64, g64) = (y.to_dtype(DType::F64).unwrap(), g.to_dtype(DType::F64).unwrap());
        let (f64z, f64b) = y64.relu_grad_with_bias_grad(&g64).unwrap();
        let (cz, cb) = chain(&y64, &g64);
        let b64 = |t: &Tensor| t.to_vec::<f64>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!((b64(&f64z), b64(&f64b)), (b64(&cz), b64(&cb)), "{dims:?} f64");
    }
}
