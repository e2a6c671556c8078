//! Preprocessing: scalers with fit/transform/inverse_transform, Keras's
//! `Normalization`, one-hot labels, class weights, train/test splitting, padding
//! sequences to one length, and Keras's text preprocessing (`TextVectorization`,
//! `StringLookup`), which runs on the host since keel tensors hold no strings.
//!
//! Statistics are computed in f64; transforms return the input's float dtype
//! (F32 for integer inputs).

mod categorical;
mod lookup;
mod normalization;
mod scalers;
mod sequence;
mod split;
mod text;

pub use categorical::{class_weight, labels_to_vec, to_categorical};
pub use lookup::{StringLookup, TextOutputMode};
pub use normalization::Normalization;
pub use scalers::{MinMaxScaler, StandardScaler};
pub use sequence::{pad_sequences, PadSequences, PadSide};
pub use split::{train_test_split, TrainTestSplit};
pub use text::{Split, Standardize, TextVectorization};

use crate::{Error, Result};
use keel_tensor::{DType, Tensor};

/// A 2-D tensor as row-major f64 plus `(rows, cols)`.
pub(crate) fn matrix(x: &Tensor, op: &'static str) -> Result<(Vec<f64>, usize, usize)> {
    if x.rank() != 2 {
        return Err(Error::invalid(
            op,
            format!("expected a 2-D [samples, features] tensor, got shape {:?}; reshape it first", x.dims()),
        ));
    }
    Ok((x.to_vec_f64()?, x.dims()[0], x.dims()[1]))
}

/// The float dtype results keep: the input's if it is a float, else F32.
pub(crate) fn out_dtype(x: &Tensor) -> DType {
    if x.dtype().is_float() {
        x.dtype()
    } else {
        DType::F32
    }
}

/// Build a tensor of `dtype` from f64 values.
pub(crate) fn from_f64(v: Vec<f64>, dims: &[usize], dtype: DType) -> Result<Tensor> {
    Ok(Tensor::from_vec(v, dims.to_vec())?.to_dtype(dtype)?)
}

/// scikit-learn's `_handle_zeros_in_scale` without a constant mask (as `MinMaxScaler` uses it):
/// a range below `10 * eps` becomes 1.
pub(crate) fn handle_zero_scale(s: f64) -> f64 {
    if s < 10.0 * f64::EPSILON {
        1.0
    } else {
        s
    }
}

/// scikit-learn's `_is_constant_feature`: `var` (of `n` samples with mean `mean`) is within
/// rounding error of zero, i.e. `var <= n * eps * var + (n * mean * eps)^2`.
pub(crate) fn is_constant_feature(var: f64, mean: f64, n: f64) -> bool {
    let eps = f64::EPSILON;
    var <= n * eps * var + (n * mean * eps).powi(2)
}
