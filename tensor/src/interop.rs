//! `ndarray` interop: `Tensor::from_ndarray` (zero-copy for standard-layout
//! arrays) and `Tensor::to_ndarray` (a copy; data shared behind a lock cannot
//! be lent out as an array).

use crate::{Error, Result, Tensor, WithDType};
use ndarray::{ArrayD, IxDyn};

impl Tensor {
    /// A tensor from an `ndarray` array; takes the buffer without copying when the
    /// array is in standard (row-major, offset 0) layout.
    pub fn from_ndarray<T: WithDType, D: ndarray::Dimension>(a: ndarray::Array<T, D>) -> Result<Tensor> {
        let shape = a.shape().to_vec();
        let data = if a.is_standard_layout() {
            let (v, off) = a.into_raw_vec_and_offset();
            match off {
                Some(0) | None => v,
                Some(o) => v[o..].to_vec(),
            }
        } else {
            a.iter().copied().collect()
        };
        Tensor::from_vec(data, shape)
    }

    /// A copy of this tensor as an `ndarray` array of `T` (must match the dtype).
    pub fn to_ndarray<T: WithDType>(&self) -> Result<ArrayD<T>> {
        let v = self.to_vec::<T>()?;
        ArrayD::from_shape_vec(IxDyn(self.dims()), v).map_err(|e| Error::invalid("to_ndarray", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn ndarray_round_trip() {
        let a = ndarray::Array2::from_shape_vec((2, 3), vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let t = Tensor::from_ndarray(a.clone()).unwrap();
        assert_eq!(t.dims(), &[2, 3]);
        let back = t.to_ndarray::<f32>().unwrap();
        assert_eq!(back.into_dimensionality::<ndarray::Ix2>().unwrap(), a);
        // non-standard layout (transposed) is copied in logical order
        let tt = Tensor::from_ndarray(a.reversed_axes()).unwrap();
        assert_eq!(tt.to_vec::<f32>().unwrap(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}
