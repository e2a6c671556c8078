//! `Tensor::affine_transform` and its gradient against a naive f64 reference written from
//! TensorFlow's `ImageProjectiveTransformV3` (tensorflow/core/kernels/image/image_ops.h:
//! `MapCoordinate`, `nearest_interpolation`, `bilinear_interpolation`), the semantics Keras 3's
//! `keras.ops.image.affine_transform` has on its TensorFlow backend.

mod common;

use common::vals;
use keel_tensor::{AffineParams, DType, Device, FillMode, ImageInterpolation, Tensor};

const MODES: [FillMode; 4] = [FillMode::Reflect, FillMode::Wrap, FillMode::Constant, FillMode::Nearest];
const INTERPS: [ImageInterpolation; 2] = [ImageInterpolation::Nearest, ImageInterpolation::Bilinear];

fn rand64(seed: u64, dims: &[usize], lo: f64, hi: f64) -> Tensor {
    Tensor::rand_uniform(seed, lo, hi, dims.to_vec(), DType::F64, &Device::Cpu).unwrap()
}

/// TensorFlow's `MapCoordinate` for one axis, transcribed in f64.
fn map_ref(c: f64, len: i64, mode: FillMode) -> f64 {
    let clamp = |v: f64| v.max(0.0).min((len - 1) as f64);
    match mode {
        FillMode::Constant => c,
        FillMode::Nearest => clamp(c),
        FillMode::Reflect => {
            let mut v = c;
            if v < 0.0 {
                if len <= 1 {
                    v = 0.0;
                } else {
                    let sz2 = 2 * len;
                    if v < sz2 as f64 {
                        v += (sz2 * ((-v / sz2 as f64) as i64)) as f64;
                    }
                    v = if v < -len as f64 { v + sz2 as f64 } else { -v - 1.0 };
                }
            } else if v > (len - 1) as f64 {
                if len <= 1 {
                    v = 0.0;
                } else {
                    let sz2 = 2 * len;
                    v -= (sz2 * ((v / sz2 as f64) as i64)) as f64;
                    if v >= len as f64 {
                        v = sz2 as f64 - v - 1.0;
                    }
                }
            }
            clamp(v)
        }
        FillMode::Wrap => {
            let mut v = c;
            if v < 0.0 {
                if len <= 1 {
                    v = 0.0;
                } else {
                    let sz = len - 1;
                    v += (len * ((-v / sz as f64) as i64 + 1)) as f64;
                }
            } else if v > (len - 1) as f64 {
                if len <= 1 {
                    v = 0.0;
                } else {
                    let sz = len - 1;
                    v -= (len * ((v / sz as f64) as i64)) as f64;
                }
            }
            clamp(v)
        }
    }
}

/// Naive f64 forward: for every output element, project, map, read with fill, interpolate.
fn reference(
    x: &[f64],
    [n, h, w, c]: [usize; 4],
    t: &[f64],
    interp: ImageInterpolation,
    mode: FillMode,
    fill: f64,
) -> Vec<f64> {
    let rows = t.len() / 8;
    let read = |b: usize, y: f64, xx: f64, ch: usize| -> f64 {
        let (yi, xi) = (y as i64, xx as i64);
        if yi >= 0 && yi < h as i64 && xi >= 0 && xi < w as i64 {
            x[((b * h + yi as usize) * w + xi as usize) * c + ch]
        } else {
            fill
        }
    };
    let mut out = Vec::with_capacity(n * h * w * c);
    for b in 0..n {
        let m = &t[if rows == 1 { 0 } else { b * 8 }..][..8];
        for oy in 0..h {
            for ox in 0..w {
                for ch in 0..c {
                    let (xf, yf) = (ox as f64, oy as f64);
                    let k = m[6] * xf + m[7] * yf + 1.0;
                    if k == 0.0 {
                        out.push(fill);
                        continue;
                    }
                    let sx = map_ref((m[0] * xf + m[1] * yf + m[2]) / k, w as i64, mode);
                    let sy = map_ref((m[3] * xf + m[4] * yf + m[5]) / k, h as i64, mode);
                    out.push(match interp {
                        ImageInterpolation::Nearest => read(b, sy.round(), sx.round(), ch),
                        ImageInterpolation::Bilinear => {
                            let (y0, x0) = (sy.floor(), sx.floor());
                            let (y1, x1) = (y0 + 1.0, x0 + 1.0);
                            let top = (x1 - sx) * read(b, y0, x0, ch) + (sx - x0) * read(b, y0, x1, ch);
                            let bottom = (x1 - sx) * read(b, y1, x0, ch) + (sx - x0) * read(b, y1, x1, ch);
                            (y1 - sy) * top + (sy - y0) * bottom
                        }
                    });
                }
            }
        }
    }
    out
}

/// Transforms that send many points outside a `h x w` image (scaled up, rotated, shifted,
/// one projective with `k == 0` at `x == 4`), none landing on a pixel-grid line.
fn wild_transforms(h: usize, w: usize) -> Vec<f64> {
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let (s, a) = (1.73, 0.41f64);
    let (a0, a1, b0, b1) = (s * a.cos(), -s * a.sin(), s * a.sin(), s * a.cos());
    let rot = [a0, a1, cx - a0 * cx - a1 * cy + 0.37, b0, b1, cy - b0 * cx - b1 * cy - 0.61, 0.0, 0.0];
    let proj = [0.9, 0.13, 0.31, -0.21, 1.1, 0.27, -0.25, 0.0];
    let shift = [1.0, 0.0, -9.3, 0.0, 1.0, 12.7, 0.0, 0.0];
    [rot, proj, shift].concat()
}

#[test]
fn affine_matches_the_f64_reference_for_every_mode_and_interpolation() {
    let dims = [3, 5, 7, 2];
    let x = rand64(1, &dims, -2.0, 2.0);
    let t = wild_transforms(5, 7);
    let tt = Tensor::from_vec(t.clone(), (3, 8)).unwrap();
    for mode in MODES {
        for interp in INTERPS {
            for fill in [0.0, 0.75] {
                let y = x.affine_transform(&tt, interp, mode, fill).unwrap();
                let want = reference(&vals(&x), dims, &t, interp, mode, fill);
                let got = vals(&y);
                for (i, (g, r)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - r).abs() <= 1e-12 * (1.0 + r.abs()),
                        "{mode:?} {interp:?} fill {fill}: [{i}] {g} vs {r}"
                    );
                }
                // the projective row has k == 0 at x == 4: those pixels are the fill value
                for yy in 0..5 {
                    for ch in 0..2 {
                        assert_eq!(got[((5 + yy) * 7 + 4) * 2 + ch], fill, "{mode:?} {interp:?}");
                    }
                }
            }
        }
    }
    // one shared row ([1, 8] and [8]) is every image's
    let shared = Tensor::from_vec(t[..8].to_vec(), 8).unwrap();
    let y = x.affine_transform(&shared, ImageInterpolation::Bilinear, FillMode::Reflect, 0.0).unwrap();
    let tiled: Vec<f64> = t[..8].repeat(3);
    assert_eq!(vals(&y), reference(&vals(&x), dims, &tiled, ImageInterpolation::Bilinear, FillMode::Reflect, 0.0));
}

#[test]
fn affine_reflect_and_wrap_follow_tensorflow_at_known_points() {
    // hand-checked values of TensorFlow's MapCoordinate for len 4
    let cases = [
        (FillMode::Reflect, -1.0, 0.0),
        (FillMode::Reflect, -2.0, 1.0),
        (FillMode::Reflect, 4.0, 3.0),
        (FillMode::Reflect, 5.0, 2.0),
        (FillMode::Reflect, 9.0, 1.0),
        (FillMode::Wrap, -1.0, 3.0),
        (FillMode::Wrap, 4.0, 0.0),
        (FillMode::Wrap, 5.0, 1.0),
        (FillMode::Nearest, -3.0, 0.0),
        (FillMode::Nearest, 7.0, 3.0),
    ];
    // a 1 x 4 row image 10, 11, 12, 13 shifted so output x = 0 reads input `at`
    let x = Tensor::from_vec(vec![10.0f64, 11.0, 12.0, 13.0], (1, 1, 4, 1)).unwrap();
    for (mode, at, want) in cases {
        assert_eq!(map_ref(at, 4, mode), want, "{mode:?} {at}");
        let t = Tensor::from_vec(vec![1.0, 0.0, at, 0.0, 1.0, 0.0, 0.0, 0.0], (1, 8)).unwrap();
        let y = x.affine_transform(&t, ImageInterpolation::Nearest, mode, 0.0).unwrap();
        assert_eq!(vals(&y)[0], 10.0 + want, "{mode:?} {at}");
    }
}

#[test]
fn affine_identity_gives_the_input_bits() {
    let id = Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], (1, 8)).unwrap();
    for dtype in [DType::F32, DType::F64, DType::F16, DType::BF16] {
        let x = Tensor::rand_uniform(4, 0.1, 3.0, vec![2, 6, 5, 3], dtype, &Device::Cpu).unwrap();
        for mode in MODES {
            for interp in INTERPS {
                let y = x.affine_transform(&id, interp, mode, 0.0).unwrap();
                assert_eq!(y.dtype(), dtype);
                assert_eq!(vals(&y), vals(&x), "{dtype:?} {mode:?} {interp:?}");
            }
        }
    }
}

#[test]
fn affine_rotation_by_90_degrees_is_a_transpose_and_flip() {
    // Keras's rotation matrix for 90 degrees on a 5 x 5 image (exact cos 0, sin 1):
    // output (x, y) reads input (4 - y, x), so out[r][col] = in[col][4 - r]
    let n = 5;
    let x = rand64(7, &[1, n, n, 2], -1.0, 1.0);
    let t = Tensor::from_vec(vec![0.0, -1.0, 4.0, 1.0, 0.0, 0.0, 0.0, 0.0], (1, 8)).unwrap();
    let xv = vals(&x);
    let mut want = vec![0.0; xv.len()];
    for r in 0..n {
        for col in 0..n {
            for ch in 0..2 {
                want[(r * n + col) * 2 + ch] = xv[(col * n + (n - 1 - r)) * 2 + ch];
            }
        }
    }
    for interp in INTERPS {
        let y = x.affine_transform(&t, interp, FillMode::Constant, 0.0).unwrap();
        assert_eq!(vals(&y), want, "{interp:?}");
    }
}

#[test]
fn affine_integer_translation_with_constant_fill() {
    // moved 2 right and 1 up: out[r][c] = in[r + 1][c - 2], the fill value elsewhere
    let (h, w) = (4, 6);
    let x = rand64(9, &[1, h, w, 1], -1.0, 1.0);
    let t = Tensor::from_vec(vec![1.0, 0.0, -2.0, 0.0, 1.0, 1.0, 0.0, 0.0], (1, 8)).unwrap();
    let xv = vals(&x);
    let mut want = vec![7.5; h * w];
    for r in 0..h - 1 {
        for c in 2..w {
            want[r * w + c] = xv[(r + 1) * w + c - 2];
        }
    }
    for interp in INTERPS {
        let y = x.affine_transform(&t, interp, FillMode::Constant, 7.5).unwrap();
        assert_eq!(vals(&y), want, "{interp:?}");
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn affine_gradient_is_the_exact_transpose() {
    let dims = [3, 5, 7, 2];
    let t = Tensor::from_vec(wild_transforms(5, 7), (3, 8)).unwrap();
    let shared = Tensor::from_vec(wild_transforms(5, 7)[..8].to_vec(), (1, 8)).unwrap();
    for (k, tt) in [&t, &shared].into_iter().enumerate() {
        for mode in MODES {
            for interp in INTERPS {
                let x = rand64(11 + k as u64, &dims, -1.0, 1.0);
                let dy = rand64(12 + k as u64, &dims, -1.0, 1.0);
                let p = AffineParams::new("test", x.shape(), tt.shape(), interp, mode, 0.0).unwrap();
                let tx = x.affine_transform(tt, interp, mode, 0.0).unwrap();
                let tdy = dy.affine_transform_grad(tt, &p).unwrap();
                assert_eq!(tdy.dims(), x.dims());
                let (lhs, rhs) = (dot(&vals(&dy), &vals(&tx)), dot(&vals(&tdy), &vals(&x)));
                assert!((lhs - rhs).abs() <= 1e-10 * lhs.abs().max(1.0), "{mode:?} {interp:?}: {lhs} vs {rhs}");
                // and column by column: the gradient of output element j is row j of T
                if k == 0 && mode == FillMode::Reflect {
                    for j in [0usize, 17, 100, 209] {
                        let mut e = vec![0.0; dy.elem_count()];
                        e[j] = 1.0;
                        let ej = Tensor::from_vec(e, dims.to_vec()).unwrap();
                        let row = vals(&ej.affine_transform_grad(tt, &p).unwrap());
                        assert!((dot(&row, &vals(&x)) - vals(&tx)[j]).abs() < 1e-12, "{interp:?} element {j}");
                    }
                }
            }
        }
    }
    // constant-fill samples contribute nothing: everything outside -> zero gradient
    let away = Tensor::from_vec(vec![1.0, 0.0, 100.5, 0.0, 1.0, 0.0, 0.0, 0.0], (1, 8)).unwrap();
    let p = AffineParams::new("test", &dims.into(), away.shape(), INTERPS[1], FillMode::Constant, 3.0).unwrap();
    let g = rand64(3, &dims, 1.0, 2.0).affine_transform_grad(&away, &p).unwrap();
    assert!(vals(&g).iter().all(|&v| v == 0.0));
}

#[test]
fn affine_half_and_f32_compute_close_to_f64() {
    // bilinear with constant fill is continuous everywhere, so f32 coordinates stay close
    let dims = [3, 5, 7, 2];
    let x = rand64(21, &dims, -2.0, 2.0);
    let t = Tensor::from_vec(wild_transforms(5, 7), (3, 8)).unwrap();
    let want = vals(&x.affine_transform(&t, ImageInterpolation::Bilinear, FillMode::Constant, 0.5).unwrap());
    for (dtype, tol) in [(DType::F32, 1e-5), (DType::F16, 1e-2), (DType::BF16, 3e-2)] {
        let xd = x.to_dtype(dtype).unwrap();
        let y = xd.affine_transform(&t, ImageInterpolation::Bilinear, FillMode::Constant, 0.5).unwrap();
        assert_eq!(y.dtype(), dtype);
        for (g, r) in vals(&y).iter().zip(&want) {
            assert!((g - r).abs() <= tol * (1.0 + r.abs()), "{dtype:?}: {g} vs {r}");
        }
        let p = AffineParams::new("t", xd.shape(), t.shape(), INTERPS[1], FillMode::Constant, 0.5).unwrap();
        let g = xd.affine_transform_grad(&t, &p).unwrap();
        let g64 = x.affine_transform_grad(&t, &p).unwrap();
        assert_eq!(g.dtype(), dtype);
        for (a, b) in vals(&g).iter().zip(vals(&g64)) {
            assert!((a - b).abs() <= 2.0 * tol * (1.0 + b.abs()), "{dtype:?} grad: {a} vs {b}");
        }
    }
}

#[test]
fn affine_rejects_bad_shapes_and_dtypes() {
    let x = rand64(1, &[2, 3, 3, 1], 0.0, 1.0);
    let id = |rows: usize| Tensor::from_vec([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0].repeat(rows), (rows, 8)).unwrap();
    let go = |x: &Tensor, t: &Tensor| x.affine_transform(t, INTERPS[0], FillMode::Reflect, 0.0).map(|_| ());
    assert!(go(&x, &id(3)).is_err(), "3 rows for 2 images");
    assert!(go(&x, &Tensor::zeros((2, 6), DType::F32, &Device::Cpu).unwrap()).is_err());
    assert!(go(&x.reshape((2, 9)).unwrap(), &id(2)).is_err(), "rank 2 images");
    assert!(go(&x.to_dtype(DType::I64).unwrap(), &id(2)).is_err(), "integer images");
    assert!(go(&x, &id(2).to_dtype(DType::I64).unwrap()).is_err(), "integer transforms");
    assert!(go(&x, &id(2)).is_ok() && go(&x, &id(1)).is_ok());
    assert!(FillMode::from_name("mirror").is_err() && ImageInterpolation::from_name("bicubic").is_err());
    for m in MODES {
        assert_eq!(FillMode::from_name(m.name()).unwrap(), m);
    }
}
