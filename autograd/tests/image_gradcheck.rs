//! Finite-difference check (float64) of `Var::affine_transform`'s image gradient.

use keel_autograd::{gradcheck, Tape, Var};
use keel_tensor::{DType, Device, FillMode, ImageInterpolation, Tensor};

/// Rotation + scale + shift and a projective row whose sample points fall between pixels
/// (none on the pixel grid), partly outside the image so the fill modes matter.
fn transforms() -> Tensor {
    #[rustfmt::skip]
    let t = vec![
        0.93, -0.37, 1.13, 0.41, 0.87, -0.71, 0.0, 0.0,
        1.21, 0.17, -0.43, -0.11, 0.79, 0.57, 0.031, -0.017,
    ];
    Tensor::from_vec(t, (2, 8)).unwrap()
}

#[test]
fn affine_transform_gradcheck_every_mode() {
    let x = Tensor::rand_uniform(5, -1.0, 1.0, vec![2, 4, 5, 2], DType::F64, &Device::Cpu).unwrap();
    let t = transforms();
    for mode in [FillMode::Reflect, FillMode::Wrap, FillMode::Constant, FillMode::Nearest] {
        for interp in [ImageInterpolation::Bilinear, ImageInterpolation::Nearest] {
            let r = gradcheck(|v| v[0].affine_transform(&t, interp, mode, 0.3), std::slice::from_ref(&x))
                .unwrap_or_else(|e| panic!("{mode:?} {interp:?}: {e}"));
            assert_eq!(r.checked, x.elem_count(), "{mode:?} {interp:?}");
        }
    }
}

#[test]
fn affine_transform_gradient_flows_through_a_tape() {
    // loss = sum(w * T x): dL/dx = T^T w, the op's backward primitive
    let x = Tensor::rand_uniform(6, -1.0, 1.0, vec![2, 4, 5, 2], DType::F64, &Device::Cpu).unwrap();
    let w = Tensor::rand_uniform(7, -1.0, 1.0, vec![2, 4, 5, 2], DType::F64, &Device::Cpu).unwrap();
    let t = transforms();
    let tape = Tape::new();
    let xv = tape.leaf(x.clone());
    let y = xv.affine_transform(&t, ImageInterpolation::Bilinear, FillMode::Reflect, 0.0).unwrap();
    let loss = y.mul(&Var::constant(w.clone())).unwrap().sum_all().unwrap();
    let g = tape.backward(&loss).unwrap();
    let p =
        keel_tensor::AffineParams::new("t", x.shape(), t.shape(), ImageInterpolation::Bilinear, FillMode::Reflect, 0.0)
            .unwrap();
    let want = w.affine_transform_grad(&t, &p).unwrap();
    assert_eq!(g.get_var(&xv).unwrap().to_vec::<f64>().unwrap(), want.to_vec::<f64>().unwrap());
}
