//! The affine transform of Keras's `apply_affine_transform`, resampled like
//! `scipy.ndimage.affine_transform(order=1)`.
//!
//! Keras composes, in this order, rotation `R(theta)`, shift `[[1,0,tx],[0,1,ty]]`,
//! shear `[[1,-sin s,0],[0,cos s,0]]` and zoom `diag(zx, zy)`:
//! `M = R · S · Sh · Z`, centres it with `T(o) · M · T(-o)` where
//! `o = (h/2 - 0.5, w/2 - 0.5)`, then (for channels-last images) swaps the
//! two coordinates (`M' = P M P`). So `M` acts on `(col, row)`: `tx` — which
//! Keras draws from `height_shift_range` and scales by the height — moves the
//! image along the columns, and `zx` zooms the columns. keel keeps those quirks
//! so that augmentations match Keras's.
//!
//! `M'` is the *output -> input* map: output pixel `(i, j)` samples the input at
//! `M'[:2,:2] · (i, j) + M'[:2, 2]` with bilinear interpolation. Outside the
//! image the [`FillMode`] applies, with SciPy's rules (including its `wrap`,
//! whose period is `len - 1`, and `constant`, which does not blend the edge
//! pixel with `cval`).

/// How points outside the input are filled (Keras `fill_mode`, SciPy `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FillMode {
    /// Repeat the edge pixel: `aaaa|abcd|dddd` (Keras's default).
    #[default]
    Nearest,
    /// The constant `cval`: `kkkk|abcd|kkkk`.
    Constant,
    /// Mirror about the edge: `dcba|abcd|dcba`.
    Reflect,
    /// Tile the image: `abcd|abcd|abcd` (SciPy's `wrap`, period `len - 1`).
    Wrap,
}

type Mat3 = [[f64; 3]; 3];

fn mul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut c = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            c[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j];
        }
    }
    c
}

/// The 2x3 output->input map in `(row, col)` coordinates of an `h x w` image, or
/// `None` when Keras would skip the affine step (all parameters neutral).
pub fn keras_affine_matrix(
    theta_deg: f64,
    tx: f64,
    ty: f64,
    shear_deg: f64,
    zx: f64,
    zy: f64,
    h: usize,
    w: usize,
) -> Option<[[f64; 3]; 2]> {
    let mut m: Option<Mat3> = None;
    let mut push = |t: Mat3| {
        m = Some(match &m {
            None => t,
            Some(a) => mul(a, &t),
        })
    };
    if theta_deg != 0.0 {
        let t = theta_deg.to_radians();
        push([[t.cos(), -t.sin(), 0.0], [t.sin(), t.cos(), 0.0], [0.0, 0.0, 1.0]]);
    }
    if tx != 0.0 || ty != 0.0 {
        push([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]]);
    }
    if shear_deg != 0.0 {
        let s = shear_deg.to_radians();
        push([[1.0, -s.sin(), 0.0], [0.0, s.cos(), 0.0], [0.0, 0.0, 1.0]]);
    }
    if zx != 1.0 || zy != 1.0 {
        push([[zx, 0.0, 0.0], [0.0, zy, 0.0], [0.0, 0.0, 1.0]]);
    }
    let m = m?;
    let (ox, oy) = (h as f64 / 2.0 - 0.5, w as f64 / 2.0 - 0.5);
    let offset = [[1.0, 0.0, ox], [0.0, 1.0, oy], [0.0, 0.0, 1.0]];
    let reset = [[1.0, 0.0, -ox], [0.0, 1.0, -oy], [0.0, 0.0, 1.0]];
    let c = mul(&mul(&offset, &m), &reset);
    // channels-last: swap the two spatial coordinates (M' = P M P)
    Some([[c[1][1], c[1][0], c[1][2]], [c[0][1], c[0][0], c[0][2]]])
}

/// SciPy's `map_coordinate`: fold a coordinate into the image, `None` = constant fill.
#[inline]
fn map_coordinate(mut x: f64, len: usize, mode: FillMode) -> Option<f64> {
    let lenf = len as f64;
    if x < 0.0 {
        match mode {
            FillMode::Nearest => x = 0.0,
            FillMode::Constant => return None,
            FillMode::Reflect => {
                if len <= 1 {
                    x = 0.0;
                } else {
                    let sz2 = 2.0 * lenf;
                    if x < -sz2 {
                        x += sz2 * (-x / sz2).trunc();
                    }
                    x = if x < -lenf { x + sz2 } else { -x - 1.0 };
                }
            }
            FillMode::Wrap => {
                if len <= 1 {
                    x = 0.0;
                } else {
                    let sz = lenf - 1.0;
                    x += sz * ((-x / sz).trunc() + 1.0);
                }
            }
        }
    } else if x > lenf - 1.0 {
        match mode {
            FillMode::Nearest => x = lenf - 1.0,
            FillMode::Constant => return None,
            FillMode::Reflect => {
                if len <= 1 {
                    x = 0.0;
                } else {
                    let sz2 = 2.0 * lenf;
                    x -= sz2 * (x / sz2).trunc();
                    if x >= lenf {
                        x = sz2 - x - 1.0;
                    }
                }
            }
            FillMode::Wrap => {
                if len <= 1 {
                    x = 0.0;
                } else {
                    let sz = lenf - 1.0;
                    x -= sz * (x / sz).trunc();
                }
            }
        }
    }
    if x > -1.0 {
        Some(x)
    } else {
        None
    }
}

/// Where a spline-window index outside `0..len` reads from: the half-sample
/// reflection for [`FillMode::Reflect`] (the only mode whose folded coordinate
/// can lie within one pixel outside the image), the clamped edge otherwise
/// (those taps have zero weight).
#[inline]
fn edge_index(idx: i64, len: usize, mode: FillMode) -> usize {
    let len = len as i64;
    let i = if mode == FillMode::Reflect {
        if idx < 0 {
            -idx - 1
        } else if idx >= len {
            2 * len - idx - 1
        } else {
            idx
        }
    } else {
        idx
    };
    i.clamp(0, len - 1) as usize
}

/// Two interpolation taps `(index, weight)` along one axis, or `None` for constant fill.
#[inline]
fn taps(x: f64, len: usize, mode: FillMode) -> Option<[(usize, f64); 2]> {
    let c = map_coordinate(x, len, mode)?;
    let start = c.floor();
    let t = c - start;
    let s = start as i64;
    Some([(edge_index(s, len, mode), 1.0 - t), (edge_index(s + 1, len, mode), t)])
}

/// Resample an `h x w x c` (row-major, channels last) image through `m` (output -> input).
pub fn warp(src: &[f32], h: usize, w: usize, c: usize, m: &[[f64; 3]; 2], mode: FillMode, cval: f32) -> Vec<f32> {
    let mut out = vec![0f32; h * w * c];
    let mut acc = vec![0f64; c];
    for i in 0..h {
        for j in 0..w {
            let (fi, fj) = (i as f64, j as f64);
            let r = m[0][0] * fi + m[0][1] * fj + m[0][2];
            let q = m[1][0] * fi + m[1][1] * fj + m[1][2];
            let o = (i * w + j) * c;
            let (tr, tc) = match (taps(r, h, mode), taps(q, w, mode)) {
                (Some(a), Some(b)) => (a, b),
                _ => {
                    out[o..o + c].fill(cval);
                    continue;
                }
            };
            acc.fill(0.0);
            for &(ri, wr) in &tr {
                for &(ci, wc) in &tc {
                    let wgt = wr * wc;
                    let p = (ri * w + ci) * c;
                    for (a, &v) in acc.iter_mut().zip(&src[p..p + c]) {
                        *a += wgt * v as f64;
                    }
                }
            }
            for (d, a) in out[o..o + c].iter_mut().zip(&acc) {
                *d = *a as f32;
            }
        }
    }
    out
}
