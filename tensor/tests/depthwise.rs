//! Depthwise convolution and its two backward primitives against direct float64 loops of
//! their definitions (geometry, TensorFlow's `same` padding and channel order computed
//! here independently of the op), plus dtypes, strided operands and errors.

mod common;
use common::*;
use keel_tensor::{DType, DepthwiseConv2dParams, Padding, Shape, Tensor};

struct Case {
    x: [usize; 4],
    k: [usize; 4],
    stride: (usize, usize),
    pad: Padding,
    dil: (usize, usize),
}

fn cases() -> Vec<Case> {
    let c = |x, k, stride, pad, dil| Case { x, k, stride, pad, dil };
    vec![
        c([2, 7, 6, 3], [3, 3, 3, 1], (1, 1), Padding::Valid, (1, 1)),
        c([2, 7, 6, 3], [3, 3, 3, 3], (1, 1), Padding::Same, (1, 1)),
        c([1, 9, 7, 2], [4, 4, 2, 1], (2, 2), Padding::Same, (1, 1)),
        c([2, 9, 9, 5], [3, 3, 5, 3], (2, 2), Padding::Valid, (1, 1)),
        c([1, 10, 9, 2], [3, 2, 2, 3], (1, 1), Padding::Same, (2, 2)),
        c([1, 11, 10, 4], [2, 3, 4, 2], (1, 1), Padding::Valid, (2, 3)),
        c([3, 5, 5, 4], [1, 1, 4, 2], (1, 1), Padding::Valid, (1, 1)),
        c([1, 8, 8, 2], [2, 2, 2, 1], (1, 1), Padding::Same, (1, 1)),
        c([2, 13, 11, 7], [5, 3, 7, 2], (3, 2), Padding::Same, (1, 1)),
        c([1, 6, 5, 9], [3, 3, 9, 1], (2, 1), Padding::Valid, (1, 1)),
    ]
}

/// TensorFlow's output size and leading pad of one dim, written out here.
fn tf_dim(input: usize, k: usize, s: usize, d: usize, pad: Padding) -> (usize, usize) {
    let eff = (k - 1) * d + 1;
    match pad {
        Padding::Valid => ((input - eff) / s + 1, 0),
        Padding::Same => {
            let out = input.div_ceil(s);
            let total = ((out - 1) * s + eff).saturating_sub(input);
            (out, total / 2)
        }
    }
}

/// `(oh, ow, pt, pl)` of a case.
fn geometry(c: &Case) -> (usize, usize, usize, usize) {
    let (oh, pt) = tf_dim(c.x[1], c.k[0], c.stride.0, c.dil.0, c.pad);
    let (ow, pl) = tf_dim(c.x[2], c.k[1], c.stride.1, c.dil.1, c.pad);
    (oh, ow, pt, pl)
}

/// Calls `f(x_index, k_index, y_index)` for every (output element, tap) pair that
/// lies inside the image: the definition every reference below sums over.
fn for_each_term(c: &Case, mut f: impl FnMut(usize, usize, usize)) {
    let [n, h, w, ch] = c.x;
    let [kh, kw, _, m] = c.k;
    let (oh, ow, pt, pl) = geometry(c);
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for ci in 0..ch {
                    for j in 0..m {
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let iy = (oy * c.stride.0 + ki * c.dil.0) as isize - pt as isize;
                                let ix = (ox * c.stride.1 + kj * c.dil.1) as isize - pl as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let xi = ((b * h + iy as usize) * w + ix as usize) * ch + ci;
                                let kidx = ((ki * kw + kj) * ch + ci) * m + j;
                                let yi = ((b * oh + oy) * ow + ox) * (ch * m) + ci * m + j;
                                f(xi, kidx, yi);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn forward_ref(c: &Case, x: &[f64], k: &[f64]) -> Vec<f64> {
    let (oh, ow, _, _) = geometry(c);
    let mut y = vec![0.0; c.x[0] * oh * ow * c.x[3] * c.k[3]];
    for_each_term(c, |xi, ki, yi| y[yi] += x[xi] * k[ki]);
    y
}

fn grad_input_ref(c: &Case, dy: &[f64], k: &[f64]) -> Vec<f64> {
    let mut dx = vec![0.0; c.x.iter().product()];
    for_each_term(c, |xi, ki, yi| dx[xi] += dy[yi] * k[ki]);
    dx
}

fn grad_kernel_ref(c: &Case, x: &[f64], dy: &[f64]) -> Vec<f64> {
    let mut dk = vec![0.0; c.k.iter().product()];
    for_each_term(c, |xi, ki, yi| dk[ki] += x[xi] * dy[yi]);
    dk
}

fn f64t(seed: u64, dims: &[usize]) -> Tensor {
    rand(seed, dims, -1.0, 1.0).to_dtype(DType::F64).unwrap()
}

#[test]
fn depthwise_forward_matches_direct_loop() {
    for (i, c) in cases().iter().enumerate() {
        let (oh, ow, pt, pl) = geometry(c);
        let p = DepthwiseConv2dParams::new("t", &c.x.into(), &c.k.into(), c.stride, c.pad, c.dil).unwrap();
        assert_eq!((p.conv.oh, p.conv.ow, p.conv.pt, p.conv.pl, p.m), (oh, ow, pt, pl, c.k[3]), "case {i}");
        assert_eq!(p.out_shape(), Shape::from([c.x[0], oh, ow, c.x[3] * c.k[3]]), "case {i}");
        for dtype in [DType::F64, DType::F32] {
            let x = rand(i as u64, &c.x, -1.0, 1.0).to_dtype(dtype).unwrap();
            let k = rand(i as u64 + 40, &c.k, -1.0, 1.0).to_dtype(dtype).unwrap();
            let got = x.depthwise_conv2d(&k, c.stride, c.pad, c.dil).unwrap();
            assert_eq!(got.shape(), &p.out_shape());
            assert_eq!(got.dtype(), dtype);
            let want = forward_ref(c, &vals(&x), &vals(&k));
            let tol = if dtype == DType::F64 { 1e-14 } else { 1e-6 };
            assert!(rel_err(&vals(&got), &want) < tol, "case {i} {dtype:?}: {}", rel_err(&vals(&got), &want));
        }
    }
}

#[test]
fn depthwise_backward_primitives_match_their_definitions() {
    for (i, c) in cases().iter().enumerate() {
        let x = f64t(i as u64, &c.x);
        let k = f64t(i as u64 + 40, &c.k);
        let p = DepthwiseConv2dParams::new("t", x.shape(), k.shape(), c.stride, c.pad, c.dil).unwrap();
        let dy = f64t(i as u64 + 80, p.out_shape().dims());
        let dx = dy.depthwise_conv2d_grad_input(&k, &p).unwrap();
        let dk = x.depthwise_conv2d_grad_kernel(&dy, &p).unwrap();
        assert_eq!(dx.shape(), x.shape());
        assert_eq!(dk.shape(), k.shape());
        let want_dx = grad_input_ref(c, &vals(&dy), &vals(&k));
        let want_dk = grad_kernel_ref(c, &vals(&x), &vals(&dy));
        assert!(rel_err(&vals(&dx), &want_dx) < 1e-13, "case {i} dx: {}", rel_err(&vals(&dx), &want_dx));
        assert!(rel_err(&vals(&dk), &want_dk) < 1e-13, "case {i} dk: {}", rel_err(&vals(&dk), &want_dk));
        // f32 to rounding
        let f = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
        let dx32 = f(&dy).depthwise_conv2d_grad_input(&f(&k), &p).unwrap();
        let dk32 = f(&x).depthwise_conv2d_grad_kernel(&f(&dy), &p).unwrap();
        assert!(rel_err(&vals(&dx32), &want_dx) < 1e-5, "case {i} dx f32");
        assert!(rel_err(&vals(&dk32), &want_dk) < 1e-5, "case {i} dk f32");
    }
}

#[test]
fn depthwise_kernel_gradient_over_many_blocks() {
    // enough output rows for several partial sums (fixed blocks added in order)
    let c = Case { x: [4, 40, 33, 3], k: [3, 3, 3, 2], stride: (1, 1), pad: Padding::Same, dil: (1, 1) };
    let (x, dy_dims) = (f64t(1, &c.x), [4, 40, 33, 6]);
    let dy = f64t(2, &dy_dims);
    let p = DepthwiseConv2dParams::new("t", x.shape(), &c.k.into(), c.stride, c.pad, c.dil).unwrap();
    let dk = x.depthwise_conv2d_grad_kernel(&dy, &p).unwrap();
    assert!(rel_err(&vals(&dk), &grad_kernel_ref(&c, &vals(&x), &vals(&dy))) < 1e-13);
    // and the same bits every time (no dependence on scheduling)
    let f = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
    let a = f(&x).depthwise_conv2d_grad_kernel(&f(&dy), &p).unwrap();
    let b = f(&x).depthwise_conv2d_grad_kernel(&f(&dy), &p).unwrap();
    assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
}

#[test]
fn depthwise_half_types_and_strided_operands() {
    let x = rand(1, &[2, 6, 7, 4], -1.0, 1.0);
    let k = rand(2, &[3, 3, 4, 2], -1.0, 1.0);
    let want = vals(&x.depthwise_conv2d(&k, (1, 1), Padding::Same, (1, 1)).unwrap());
    let xs = non_contiguous(&x);
    assert!(!xs.is_contiguous());
    assert_eq!(vals(&xs.depthwise_conv2d(&k, (1, 1), Padding::Same, (1, 1)).unwrap()), want);
    let p = DepthwiseConv2dParams::new("t", x.shape(), k.shape(), (1, 1), Padding::Same, (1, 1)).unwrap();
    let dy = rand(3, p.out_shape().dims(), -1.0, 1.0);
    let (want_dx, want_dk) = (
        vals(&dy.depthwise_conv2d_grad_input(&k, &p).unwrap()),
        vals(&x.depthwise_conv2d_grad_kernel(&dy, &p).unwrap()),
    );
    for dtype in [DType::F16, DType::BF16] {
        let h = |t: &Tensor| t.to_dtype(dtype).unwrap();
        let y = h(&x).depthwise_conv2d(&h(&k), (1, 1), Padding::Same, (1, 1)).unwrap();
        assert_eq!(y.dtype(), dtype);
        assert!(rel_err(&vals(&y), &want) < 2e-2, "{dtype:?}");
        let dx = h(&dy).depthwise_conv2d_grad_input(&h(&k), &p).unwrap();
        let dk = h(&x).depthwise_conv2d_grad_kernel(&h(&dy), &p).unwrap();
        assert!(rel_err(&vals(&dx), &want_dx) < 2e-2, "{dtype:?} dx");
        assert!(rel_err(&vals(&dk), &want_dk) < 2e-2, "{dtype:?} dk");
    }
}

#[test]
fn depthwise_bad_shapes_and_sizes_are_errors() {
    let x = rand(1, &[1, 5, 5, 3], 0.0, 1.0);
    let k = rand(2, &[3, 3, 2, 2], 0.0, 1.0);
    let msg = x.depthwise_conv2d(&k, (1, 1), Padding::Valid, (1, 1)).unwrap_err().to_string();
    assert!(msg.contains("depthwise_conv2d") && msg.contains("[1, 5, 5, 3]") && msg.contains("[3, 3, 2, 2]"), "{msg}");
    let k = rand(3, &[6, 6, 3, 1], 0.0, 1.0);
    assert!(x.depthwise_conv2d(&k, (1, 1), Padding::Valid, (1, 1)).is_err(), "window larger than input");
    let k = rand(4, &[3, 3, 3, 1], 0.0, 1.0);
    assert!(x.depthwise_conv2d(&k, (0, 1), Padding::Valid, (1, 1)).is_err(), "zero stride");
    assert!(x.depthwise_conv2d(&k, (1, 1), Padding::Valid, (1, 0)).is_err(), "zero dilation");
    let r3 = rand(5, &[5, 5, 3], 0.0, 1.0);
    let msg = r3.depthwise_conv2d(&k, (1, 1), Padding::Valid, (1, 1)).unwrap_err().to_string();
    assert!(msg.contains("[5, 5, 3]") && msg.contains("[3, 3, 3, 1]"), "{msg}");
    let msg = x.depthwise_conv2d(&k.to_dtype(DType::F64).unwrap(), (1, 1), Padding::Valid, (1, 1)).unwrap_err();
    assert!(msg.to_string().contains("depthwise_conv2d"), "{msg}");
    // integer dtypes are refused
    let xi = x.to_dtype(DType::I64).unwrap();
    assert!(xi.depthwise_conv2d(&k.to_dtype(DType::I64).unwrap(), (1, 1), Padding::Valid, (1, 1)).is_err());
    // sizes that overflow: channels x multiplier, then the output's element count
    let big = |x: [usize; 4], k: [usize; 4]| {
        DepthwiseConv2dParams::new("t", &x.into(), &k.into(), (1, 1), Padding::Same, (1, 1)).map(|_| ())
    };
    assert!(big([1, 4, 4, 3], [1, 1, 3, usize::MAX / 2]).is_err());
    assert!(big([1 << 20, 1 << 10, 1 << 10, 1 << 10], [1, 1, 1 << 10, 1 << 20]).is_err());
    // the backward primitives check their operands against the geometry
    let p = DepthwiseConv2dParams::new("t", x.shape(), k.shape(), (1, 1), Padding::Valid, (1, 1)).unwrap();
    let msg = x.depthwise_conv2d_grad_input(&k, &p).unwrap_err().to_string();
    assert!(msg.contains("depthwise_conv2d_grad_input"), "{msg}");
    let msg = x.depthwise_conv2d_grad_kernel(&x, &p).unwrap_err().to_string();
    assert!(msg.contains("depthwise_conv2d_grad_kernel"), "{msg}");
}
