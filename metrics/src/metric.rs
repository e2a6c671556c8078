//! The [`Metric`] trait, the host-side input view [`ArrayRef`] and the value types.

use keel_tensor::{Device, Tensor};

use crate::error::{MetricsError, Result};

/// A borrowed row-major `f64` array with its shape: the host-side input every metric reads.
///
/// Tensors passed to [`Metric::update_state`] are copied to the host and viewed
/// through this type; callers holding plain slices build one directly.
#[derive(Debug, Clone)]
pub struct ArrayRef<'a> {
    data: &'a [f64],
    dims: Vec<usize>,
}

impl<'a> ArrayRef<'a> {
    /// View `data` with shape `dims`; fails if the element count does not match.
    pub fn new(data: &'a [f64], dims: &[usize]) -> Result<Self> {
        let n: usize = dims.iter().product();
        if n != data.len() {
            return Err(MetricsError::input(
                "ArrayRef",
                format!("{} elements cannot fill shape {:?} ({n} elements)", data.len(), dims),
            ));
        }
        Ok(ArrayRef { data, dims: dims.to_vec() })
    }

    /// View a slice as a 1-D array (one value per sample).
    pub fn vector(data: &'a [f64]) -> Self {
        ArrayRef { data, dims: vec![data.len()] }
    }

    /// View a slice as a `[rows, cols]` matrix; fails if `rows * cols != data.len()`.
    pub fn matrix(data: &'a [f64], rows: usize, cols: usize) -> Result<Self> {
        ArrayRef::new(data, &[rows, cols])
    }

    /// The elements in row-major order.
    pub fn data(&self) -> &'a [f64] {
        self.data
    }

    /// The shape.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Number of samples: the first dimension (1 for a scalar).
    pub fn n_samples(&self) -> usize {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Size of the last dimension (1 for a scalar or an empty shape).
    pub fn last_dim(&self) -> usize {
        self.dims.last().copied().unwrap_or(1)
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.dims.len()
    }
}

/// A dense row-major `f64` matrix (a confusion matrix, per-class tables).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// `rows * cols` elements, row-major.
    pub data: Vec<f64>,
}

impl Matrix {
    /// A `rows x cols` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Matrix { rows, cols, data: vec![0.0; rows * cols] }
    }

    /// The element at (`r`, `c`), or `None` out of range.
    pub fn get(&self, r: usize, c: usize) -> Option<f64> {
        if r < self.rows && c < self.cols {
            self.data.get(r * self.cols + c).copied()
        } else {
            None
        }
    }

    /// The rows as nested vectors.
    pub fn to_rows(&self) -> Vec<Vec<f64>> {
        (0..self.rows)
            .map(|r| self.data.get(r * self.cols..(r + 1) * self.cols).map_or_else(Vec::new, <[f64]>::to_vec))
            .collect()
    }
}

/// The full value of a metric: a scalar, a per-class vector or a matrix.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    /// One number (most metrics).
    Scalar(f64),
    /// One number per class (e.g. F1 with `Average::None`).
    Vector(Vec<f64>),
    /// A matrix (the confusion matrix).
    Matrix(Matrix),
}

impl MetricValue {
    /// The scalar, or `None` for vector and matrix values.
    pub fn as_scalar(&self) -> Option<f64> {
        match self {
            MetricValue::Scalar(v) => Some(*v),
            _ => None,
        }
    }
}

/// A streaming metric with Keras semantics: accumulate with [`update_state`](Metric::update_state)
/// batch after batch, read with [`result`](Metric::result), clear with [`reset_state`](Metric::reset_state).
///
/// Updating with several batches gives the same result as one update with their
/// concatenation. The trait is object-safe: a training loop keeps `Vec<Box<dyn Metric + Send>>`.
pub trait Metric {
    /// The Keras name of the metric (`"accuracy"`, `"precision"`, ...), used as the log key.
    fn name(&self) -> &str;

    /// Accumulate one batch given as host arrays; `sample_weight` has one entry per sample (or one for all).
    fn update_arrays(
        &mut self,
        y_true: ArrayRef<'_>,
        y_pred: ArrayRef<'_>,
        sample_weight: Option<&[f64]>,
    ) -> Result<()>;

    /// Accumulate one batch of tensors (any dtype; copied to the host as `f64`).
    fn update_state(&mut self, y_true: &Tensor, y_pred: &Tensor, sample_weight: Option<&Tensor>) -> Result<()> {
        let t = host_f64(y_true)?;
        let p = host_f64(y_pred)?;
        let w = match sample_weight {
            Some(w) => Some(host_f64(w)?),
            None => None,
        };
        self.update_arrays(ArrayRef::new(&t, y_true.dims())?, ArrayRef::new(&p, y_pred.dims())?, w.as_deref())
    }

    /// The current scalar value (for vector/matrix metrics, the scalar summary their docs name).
    fn result(&self) -> f64;

    /// The current value, failing where the metric is undefined (e.g. AUC with a single class).
    fn try_result(&self) -> Result<f64> {
        Ok(self.result())
    }

    /// The full current value (a vector for per-class metrics, a matrix for the confusion matrix).
    fn value(&self) -> MetricValue {
        MetricValue::Scalar(self.result())
    }

    /// Forget everything accumulated so far.
    fn reset_state(&mut self);
}

/// Copy a tensor's elements to the host as `f64` (any dtype, any device).
pub fn host_f64(t: &Tensor) -> Result<Vec<f64>> {
    let t = if t.device().is_cuda() { t.to_device(&Device::Cpu)? } else { t.clone() };
    Ok(t.to_vec_f64()?)
}
