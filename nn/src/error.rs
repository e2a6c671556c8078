//! The error type of keel-nn.

/// Everything that can go wrong while building, running or saving a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A tensor op failed (shape, dtype, device, ...).
    #[error(transparent)]
    Tensor(#[from] keel_tensor::Error),
    /// A differentiable op failed (or a tape was misused).
    #[error(transparent)]
    Autograd(#[from] keel_autograd::Error),
    /// A layer got an input shape it cannot take.
    #[error("layer \"{layer}\" ({class}): expected input {expected}, got per-sample shape {got:?}")]
    IncompatibleInput {
        /// The layer's name.
        layer: String,
        /// The layer's class name (e.g. "Dense").
        class: &'static str,
        /// What the layer accepts, in words.
        expected: String,
        /// The per-sample input shape it was given (no batch dim).
        got: Vec<usize>,
    },
    /// A layer was run or queried before `build`.
    #[error("layer \"{layer}\" ({class}) is not built yet: give the model an input shape first")]
    NotBuilt {
        /// The layer's name.
        layer: String,
        /// The layer's class name.
        class: &'static str,
    },
    /// A hyper-parameter is invalid (e.g. a dropout rate of 1.5).
    #[error("{what}: {msg}")]
    InvalidConfig {
        /// The layer, loss or model concerned.
        what: String,
        /// What is wrong.
        msg: String,
    },
    /// A name (activation, loss, initializer, layer class) is not known.
    #[error("unknown {kind} \"{name}\"")]
    UnknownName {
        /// What kind of thing was looked up.
        kind: &'static str,
        /// The name that was not found.
        name: String,
    },
    /// A loss got predictions and targets that do not fit together.
    #[error("{loss}: {msg}")]
    LossShape {
        /// The loss.
        loss: &'static str,
        /// What does not fit.
        msg: String,
    },
    /// The functional graph is malformed (disconnected input, wrong arity, ...).
    #[error("model graph: {0}")]
    Graph(String),
    /// Inputs given to a model do not match its declared inputs.
    #[error("model \"{model}\": {msg}")]
    Input {
        /// The model's name.
        model: String,
        /// What is wrong.
        msg: String,
    },
    /// Weights could not be loaded (missing name, wrong shape, bad file).
    #[error("weights: {0}")]
    Weights(String),
    /// A file could not be read or written.
    #[error("io error on {path}: {msg}")]
    Io {
        /// The file.
        path: String,
        /// The OS error, in words.
        msg: String,
    },
}

impl Error {
    /// An invalid hyper-parameter of `what`.
    pub fn config(what: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::InvalidConfig { what: what.into(), msg: msg.into() }
    }
}

/// `Result` with keel-nn's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
