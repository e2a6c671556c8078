//! Shape + strides passed by value to strided / broadcast kernels.

use cudarc::driver::DeviceRepr;

use crate::error::{Error, Result};

/// Highest rank the strided kernels support.
pub const MAX_RANK: usize = 8;

/// A logical shape and one stride vector (in elements) per operand, as the kernels see it.
///
/// Mirrors `template <int K> struct Layout` in `kernels/common.cuh`. The kernels walk the
/// logical index space in row-major order; operand `k` reads/writes element
/// `sum_d idx[d] * strides[k][d]` of its (already offset) base pointer. A stride of 0
/// broadcasts; negative strides are allowed.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout<const K: usize> {
    rank: i32,
    _pad: i32,
    shape: [i64; MAX_RANK],
    strides: [[i64; MAX_RANK]; K],
}

// SAFETY: plain-old-data with the exact #[repr(C)] layout of the CUDA struct (int, int,
// i64[8], i64[K][8]).
unsafe impl<const K: usize> DeviceRepr for Layout<K> {}

impl<const K: usize> Layout<K> {
    /// Builds a layout; every stride vector must have `shape.len()` entries.
    pub fn new(shape: &[usize], strides: [&[isize]; K]) -> Result<Self> {
        if shape.len() > MAX_RANK {
            return Err(Error::arg("layout", format!("rank {} exceeds the maximum {MAX_RANK}", shape.len())));
        }
        let mut l = Layout { rank: shape.len() as i32, _pad: 0, shape: [1; MAX_RANK], strides: [[0; MAX_RANK]; K] };
        for (d, &s) in shape.iter().enumerate() {
            l.shape[d] = i64::try_from(s).map_err(|_| Error::arg("layout", "dimension too large"))?;
        }
        for (k, st) in strides.iter().enumerate() {
            if st.len() != shape.len() {
                return Err(Error::arg(
                    "layout",
                    format!("operand {k} has {} strides for a rank-{} shape {shape:?}", st.len(), shape.len()),
                ));
            }
            for (d, &s) in st.iter().enumerate() {
                l.strides[k][d] = s as i64;
            }
        }
        Ok(l)
    }

    /// Number of logical elements (product of the shape).
    pub fn numel(&self) -> usize {
        self.shape[..self.rank as usize].iter().map(|&d| d as usize).product()
    }

    /// Smallest buffer length (in elements) operand `k` needs, or an error if the
    /// strides reach before the base pointer (negative offsets).
    pub fn required_len(&self, k: usize) -> Result<usize> {
        if self.numel() == 0 {
            return Ok(0);
        }
        let mut max = 0i64;
        let mut min = 0i64;
        for d in 0..self.rank as usize {
            let span = (self.shape[d] - 1) * self.strides[k][d];
            if span > 0 {
                max += span;
            } else {
                min += span;
            }
        }
        if min < 0 {
            return Err(Error::arg(
                "layout",
                "negative strides must be expressed with a base view that starts at the lowest address",
            ));
        }
        Ok(max as usize + 1)
    }
}

/// Row-major (C-contiguous) strides of a shape.
pub fn contiguous_strides(shape: &[usize]) -> Vec<isize> {
    let mut s = vec![0isize; shape.len()];
    let mut acc = 1isize;
    for d in (0..shape.len()).rev() {
        s[d] = acc;
        acc *= shape[d] as isize;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_c_compatible() {
        assert_eq!(std::mem::size_of::<Layout<1>>(), 8 + 64 + 64);
        assert_eq!(std::mem::size_of::<Layout<3>>(), 8 + 64 + 3 * 64);
    }

    #[test]
    fn required_len() {
        let l = Layout::<2>::new(&[2, 3], [&[3, 1], &[0, 1]]).expect("valid");
        assert_eq!(l.numel(), 6);
        assert_eq!(l.required_len(0).ok(), Some(6));
        assert_eq!(l.required_len(1).ok(), Some(3));
        assert_eq!(contiguous_strides(&[2, 3, 4]), vec![12, 4, 1]);
    }
}
