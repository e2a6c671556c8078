//! Shared helpers for the keel-tensor integration tests.
#![allow(dead_code)]

use keel_tensor::{DType, Device, Tensor};

/// Uniform random F32 tensor in [lo, hi).
pub fn rand(seed: u64, shape: &[usize], lo: f64, hi: f64) -> Tensor {
    Tensor::rand_uniform(seed, lo, hi, shape.to_vec(), DType::F32, &Device::Cpu).unwrap()
}

/// Uniform random tensor of `dtype` in [lo, hi).
pub fn rand_dt(seed: u64, shape: &[usize], dtype: DType) -> Tensor {
    Tensor::rand_uniform(seed, -2.0, 2.0, shape.to_vec(), dtype, &Device::Cpu).unwrap()
}

/// Values as f64.
pub fn vals(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

/// Assert elementwise closeness: |a - b| <= atol + rtol * |b|.
#[track_caller]
pub fn assert_close(a: &[f64], b: &[f64], rtol: f64, atol: f64) {
    assert_eq!(a.len(), b.len(), "lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let ok = (x - y).abs() <= atol + rtol * y.abs() || (x.is_nan() && y.is_nan());
        assert!(ok, "element {i}: {x} vs reference {y}");
    }
}

/// Relative L2 error ||a - b|| / ||b||.
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    num / den.max(1e-300)
}

/// Row-major multi-index of flat position `i` in `dims`.
pub fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for d in (0..dims.len()).rev() {
        idx[d] = i % dims[d];
        i /= dims[d];
    }
    idx
}

/// Flat row-major position of `idx` in `dims`.
pub fn ravel(idx: &[usize], dims: &[usize]) -> usize {
    idx.iter().zip(dims).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// The tensor as a non-contiguous view with the same logical values:
/// stored transposed, then transposed back (for rank >= 2), or strided (rank 1).
pub fn non_contiguous(t: &Tensor) -> Tensor {
    if t.rank() == 0 {
        return t.clone();
    }
    if t.rank() >= 2 {
        let tt = t.t().unwrap().contiguous().unwrap();
        tt.t().unwrap()
    } else {
        // interleave with junk and take every other element
        let n = t.elem_count();
        let wide = Tensor::stack(&[t.clone(), t.neg().unwrap()], -1).unwrap(); // [n, 2]
        wide.narrow(1, 0, 1).unwrap().reshape_view_1d(n)
    }
}

/// Extension used by `non_contiguous` for rank-1 views.
pub trait View1d {
    fn reshape_view_1d(&self, n: usize) -> Tensor;
}

impl View1d for Tensor {
    fn reshape_view_1d(&self, _n: usize) -> Tensor {
        self.squeeze(1).unwrap()
    }
}
