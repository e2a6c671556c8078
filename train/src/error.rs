//! The error type of keel-train.

/// Everything that can go wrong while compiling, fitting, evaluating or predicting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor op failed.
    #[error(transparent)]
    Tensor(#[from] keel_tensor::Error),
    /// Differentiation failed.
    #[error(transparent)]
    Autograd(#[from] keel_autograd::Error),
    /// A layer, model or loss failed.
    #[error(transparent)]
    Nn(#[from] keel_nn::Error),
    /// The optimizer failed.
    #[error(transparent)]
    Optim(#[from] keel_optim::Error),
    /// Loading or batching data failed.
    #[error(transparent)]
    Data(#[from] keel_data::Error),
    /// A metric failed.
    #[error(transparent)]
    Metrics(#[from] keel_metrics::MetricsError),
    /// `fit`/`evaluate` before `compile`.
    #[error("{0}: the model is not compiled; call `model.compile(optimizer, loss, metrics)` first")]
    NotCompiled(&'static str),
    /// A file could not be read or written.
    #[error("io error on {path}: {msg}")]
    Io {
        /// The file.
        path: String,
        /// The OS error, in words.
        msg: String,
    },
    /// A model, checkpoint or weights file is malformed, truncated, or does not fit the model.
    #[error("{path}: {msg}")]
    BadFile {
        /// The file.
        path: String,
        /// What is wrong, in words.
        msg: String,
    },
    /// Drawing a plot failed.
    #[error("plot: {0}")]
    Plot(String),
    /// An invalid argument to `fit`, `evaluate` or `predict`.
    #[error("{op}: {msg}")]
    InvalidArgument {
        /// The call that failed.
        op: &'static str,
        /// What is wrong and what to do.
        msg: String,
    },
}

impl Error {
    /// An invalid argument to `op`.
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument { op, msg: msg.into() }
    }

    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Error::Io { path: path.display().to_string(), msg: e.to_string() }
    }

    /// A malformed or mismatched file at `path`.
    pub fn bad_file(path: &std::path::Path, msg: impl Into<String>) -> Self {
        Error::BadFile { path: path.display().to_string(), msg: msg.into() }
    }
}

/// `Result` with keel-train's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
