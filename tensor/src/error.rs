//! The error type of keel-tensor.

use crate::{DType, Shape};

/// Everything that can go wrong in a tensor operation.
///
/// Shape errors name the operation and the shapes involved, so a message reads
/// like `matmul: shapes [2, 3] and [4, 5] do not match (inner dims 3 != 4)`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Two operands have shapes that the op cannot combine.
    #[error("{op}: shapes {lhs} and {rhs} do not match{}", fmt_hint(.hint))]
    ShapeMismatch {
        /// The operation that failed.
        op: &'static str,
        /// The first shape.
        lhs: Shape,
        /// The second shape.
        rhs: Shape,
        /// Extra detail on what did not match.
        hint: String,
    },
    /// One operand has a shape the op does not accept.
    #[error("{op}: invalid shape {shape}: {msg}")]
    InvalidShape {
        /// The operation that failed.
        op: &'static str,
        /// The offending shape.
        shape: Shape,
        /// What is wrong with it.
        msg: String,
    },
    /// The number of elements given does not match the shape.
    #[error("{op}: {len} elements cannot fill shape {shape} ({} elements)", fmt_count(.shape))]
    ElementCount {
        /// The operation that failed.
        op: &'static str,
        /// The requested shape.
        shape: Shape,
        /// The number of elements supplied.
        len: usize,
    },
    /// An axis index is out of range for the tensor's rank.
    #[error("{op}: axis {axis} is out of range for a tensor of rank {rank}")]
    InvalidAxis {
        /// The operation that failed.
        op: &'static str,
        /// The axis as given (negative axes count from the end).
        axis: isize,
        /// The rank of the tensor.
        rank: usize,
    },
    /// Two operands have different dtypes.
    #[error("{op}: dtypes {lhs:?} and {rhs:?} differ; cast one with `.to_dtype(..)` first")]
    DTypeMismatch {
        /// The operation that failed.
        op: &'static str,
        /// The first dtype.
        lhs: DType,
        /// The second dtype.
        rhs: DType,
    },
    /// The op is not defined for this dtype.
    #[error("{op}: not supported for dtype {dtype:?}{}", fmt_hint(.hint))]
    UnsupportedDType {
        /// The operation that failed.
        op: &'static str,
        /// The dtype given.
        dtype: DType,
        /// What to do instead.
        hint: &'static str,
    },
    /// Operands live on different devices.
    #[error("{op}: operands are on different devices ({lhs} and {rhs}); move one with `.to_device(..)`")]
    DeviceMismatch {
        /// The operation that failed.
        op: &'static str,
        /// The first device.
        lhs: String,
        /// The second device.
        rhs: String,
    },
    /// An index (e.g. a class label or a gather index) is out of range.
    #[error("{op}: index {index} is out of range for a dimension of size {size}")]
    IndexOutOfRange {
        /// The operation that failed.
        op: &'static str,
        /// The offending index.
        index: i64,
        /// The size of the indexed dimension.
        size: usize,
    },
    /// This build of keel-tensor has no kernels for the backend.
    #[error(
        "{op}: the {backend} backend is not compiled into this build; enable the `{backend}` feature of keel-tensor"
    )]
    BackendNotCompiled {
        /// The operation that failed.
        op: &'static str,
        /// `cpu` or `cuda`.
        backend: &'static str,
    },
    /// The backend is compiled in but does not implement this op yet.
    #[error("{op}: not implemented on {backend} yet; run it on the CPU (`.to_device(&Device::Cpu)`)")]
    NotImplemented {
        /// The operation that failed.
        op: &'static str,
        /// The backend lacking the op.
        backend: &'static str,
    },
    /// A CUDA error (driver, NVRTC, launch or out of memory).
    #[error("cuda: {0}")]
    Cuda(String),
    /// A host allocation failed (the tensor is larger than this machine can hold).
    #[error("{op}: cannot allocate {bytes} bytes on the CPU; the tensor is too large for this machine's memory")]
    HostOutOfMemory {
        /// The operation that failed.
        op: &'static str,
        /// The size of the request.
        bytes: usize,
    },
    /// Any other invalid argument.
    #[error("{op}: {msg}")]
    InvalidArgument {
        /// The operation that failed.
        op: &'static str,
        /// What is wrong.
        msg: String,
    },
}

fn fmt_count(shape: &Shape) -> String {
    shape.checked_elem_count().map_or_else(|| "more than memory can address".into(), |n| n.to_string())
}

fn fmt_hint(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!(" ({hint})")
    }
}

impl Error {
    /// A shape mismatch between two operands of `op`.
    pub fn shape_mismatch(op: &'static str, lhs: &Shape, rhs: &Shape, hint: impl Into<String>) -> Self {
        Error::ShapeMismatch { op, lhs: lhs.clone(), rhs: rhs.clone(), hint: hint.into() }
    }

    /// An invalid argument to `op`.
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument { op, msg: msg.into() }
    }
}

/// `Result` with keel-tensor's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
