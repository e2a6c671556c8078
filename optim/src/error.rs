//! The error type of keel-optim.

use keel_tensor::{DType, Shape};

/// Everything that can go wrong while configuring or running an optimizer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A tensor op failed (shape, dtype, device, ...).
    #[error(transparent)]
    Tensor(#[from] keel_tensor::Error),
    /// An autograd operation (e.g. assigning a parameter) failed.
    #[error(transparent)]
    Autograd(#[from] keel_autograd::Error),
    /// A hyper-parameter has a value the optimizer cannot use.
    #[error("{optimizer}: invalid {name} = {value}: {msg}")]
    InvalidHyperparameter {
        /// The optimizer (or schedule) that rejected it.
        optimizer: &'static str,
        /// The hyper-parameter's Keras name.
        name: &'static str,
        /// The offending value.
        value: f64,
        /// The accepted range.
        msg: &'static str,
    },
    /// A gradient's shape differs from its parameter's.
    #[error("{optimizer}: gradient of parameter #{position} has shape {grad} but the parameter has shape {param}")]
    GradientShape {
        /// The optimizer.
        optimizer: &'static str,
        /// The parameter's position in the `params` list.
        position: usize,
        /// The parameter's shape.
        param: Shape,
        /// The gradient's shape.
        grad: Shape,
    },
    /// A parameter (or its gradient) is not a float tensor.
    #[error("{optimizer}: parameter #{position} has dtype {dtype}; optimizers update float parameters only")]
    NonFloatParam {
        /// The optimizer.
        optimizer: &'static str,
        /// The parameter's position in the `params` list.
        position: usize,
        /// The offending dtype.
        dtype: DType,
    },
    /// A saved [`crate::OptimizerState`] does not fit this optimizer or its parameters.
    #[error("{optimizer}: cannot load optimizer state: {msg}")]
    StateMismatch {
        /// The optimizer loading the state.
        optimizer: &'static str,
        /// What does not fit.
        msg: String,
    },
    /// A broken invariant inside keel-optim: a bug, never the caller's input.
    #[error("{optimizer}: internal error: {msg} (a bug in keel-optim; please report it)")]
    Internal {
        /// The optimizer.
        optimizer: &'static str,
        /// What broke.
        msg: &'static str,
    },
    /// A schedule's configuration is invalid.
    #[error("{schedule}: {msg}")]
    InvalidSchedule {
        /// The schedule.
        schedule: &'static str,
        /// What is wrong.
        msg: String,
    },
}

/// `Result` with keel-optim's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
