//! The crate's error type.

/// Everything that can go wrong when updating or reading a metric.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// `y_true`, `y_pred` (or the sample weights) have shapes the metric cannot pair.
    #[error("{metric}: shapes {y_true:?} ({}) and {y_pred:?} ({}) do not match: {hint}", operands[0], operands[1])]
    ShapeMismatch {
        /// The metric that rejected the inputs.
        metric: String,
        /// Shape of `y_true` (or of the first operand).
        y_true: Vec<usize>,
        /// Shape of `y_pred` (or of the sample weights).
        y_pred: Vec<usize>,
        /// Names of the two operands: `["y_true", "y_pred"]`, or e.g. `["y_true", "sample_weight"]`.
        operands: &'static [&'static str; 2],
        /// What was expected.
        hint: String,
    },
    /// A value is out of the range the metric accepts (a label outside `0..num_classes`, a NaN score, ...).
    #[error("{metric}: invalid input: {msg}")]
    InvalidInput {
        /// The metric that rejected the input.
        metric: String,
        /// What is wrong.
        msg: String,
    },
    /// A constructor or function argument is invalid (`k == 0`, unknown average, ...).
    #[error("{metric}: invalid argument: {msg}")]
    InvalidArgument {
        /// The metric or function that rejected the argument.
        metric: String,
        /// What is wrong.
        msg: String,
    },
    /// The metric has no defined value for the data seen (e.g. ROC AUC with one class only).
    #[error("{metric}: undefined: {reason}")]
    Undefined {
        /// The metric whose value is undefined.
        metric: String,
        /// Why.
        reason: String,
    },
    /// `metric_from_name` got a name it does not know.
    #[error("unknown metric name {name:?}; known names: {known}")]
    UnknownMetric {
        /// The name given.
        name: String,
        /// The accepted names, comma-separated.
        known: String,
    },
    /// A tensor operation (device transfer, dtype conversion) failed.
    #[error(transparent)]
    Tensor(#[from] keel_tensor::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, MetricsError>;

impl MetricsError {
    pub(crate) fn shape(metric: &str, y_true: &[usize], y_pred: &[usize], hint: impl Into<String>) -> Self {
        MetricsError::ShapeMismatch {
            metric: metric.to_string(),
            y_true: y_true.to_vec(),
            y_pred: y_pred.to_vec(),
            operands: &["y_true", "y_pred"],
            hint: hint.into(),
        }
    }

    /// A shape mismatch between two operands with other names than `y_true` / `y_pred`.
    pub(crate) fn shape_named(
        metric: &str,
        operands: &'static [&'static str; 2],
        a: &[usize],
        b: &[usize],
        hint: impl Into<String>,
    ) -> Self {
        MetricsError::ShapeMismatch {
            metric: metric.to_string(),
            y_true: a.to_vec(),
            y_pred: b.to_vec(),
            operands,
            hint: hint.into(),
        }
    }

    /// A sample-weight length that does not fit the data of shape `dims`; `operands` names the data
    /// and the weights (usually `["y_true", "sample_weight"]`).
    pub(crate) fn weights(
        metric: &str,
        operands: &'static [&'static str; 2],
        dims: &[usize],
        n_weights: usize,
        n: usize,
    ) -> Self {
        MetricsError::ShapeMismatch {
            metric: metric.to_string(),
            y_true: dims.to_vec(),
            y_pred: vec![n_weights],
            operands,
            hint: format!("pass one weight per sample ({n}) or a single weight"),
        }
    }

    pub(crate) fn input(metric: &str, msg: impl Into<String>) -> Self {
        MetricsError::InvalidInput { metric: metric.to_string(), msg: msg.into() }
    }

    pub(crate) fn arg(metric: &str, msg: impl Into<String>) -> Self {
        MetricsError::InvalidArgument { metric: metric.to_string(), msg: msg.into() }
    }
}
