//! The error type of keel-autograd.

use keel_tensor::{DType, Shape};

/// Everything that can go wrong while recording or differentiating.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A tensor op failed (shape, dtype, device, ...).
    #[error(transparent)]
    Tensor(#[from] keel_tensor::Error),
    /// `backward` was asked for a non-scalar value without a seed gradient.
    #[error("backward: the value has shape {shape}, not one element; pass a seed gradient with `backward_with`")]
    NonScalarLoss {
        /// The shape of the value.
        shape: Shape,
    },
    /// A `Var` recorded on one tape was used with another live tape.
    #[error("{op}: a Var from tape #{found} was used with tape #{expected}")]
    ForeignVar {
        /// The operation that failed.
        op: &'static str,
        /// The tape the operation runs on.
        expected: u64,
        /// The tape the offending Var belongs to.
        found: u64,
    },
    /// The value to differentiate is not recorded on any (live) tape.
    #[error("{op}: the value is not recorded on a live tape (it is a constant, or its tape was consumed)")]
    NotTracked {
        /// The operation that failed.
        op: &'static str,
    },
    /// A seed gradient or a backward rule's gradient has the wrong shape or dtype.
    #[error("{op}: gradient has shape {got} ({got_dtype}) but the value has shape {want} ({want_dtype})")]
    GradientMismatch {
        /// The op whose rule (or the seed) produced the gradient.
        op: &'static str,
        /// The value's shape.
        want: Shape,
        /// The value's dtype.
        want_dtype: DType,
        /// The gradient's shape.
        got: Shape,
        /// The gradient's dtype.
        got_dtype: DType,
    },
    /// A backward rule returned the wrong number of input gradients.
    #[error("{op}: backward rule returned {got} gradients for {want} inputs")]
    GradientCount {
        /// The op whose rule failed.
        op: &'static str,
        /// The number of inputs.
        want: usize,
        /// The number of gradients returned.
        got: usize,
    },
    /// An argument is invalid for a reason not covered above.
    #[error("{op}: {msg}")]
    Invalid {
        /// The operation that failed.
        op: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// `gradcheck` found an analytic gradient that disagrees with finite differences.
    #[error("gradcheck failed: {0}")]
    GradcheckFailed(Box<crate::GradcheckReport>),
}

impl Error {
    /// An invalid argument to `op`.
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Invalid { op, msg: msg.into() }
    }
}

/// `Result` with keel-autograd's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
