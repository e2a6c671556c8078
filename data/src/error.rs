//! The error type of keel-data.

use std::path::PathBuf;

/// Everything that can go wrong while loading, preprocessing or augmenting data.
///
/// Messages name the file, row and column involved and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] keel_tensor::Error),
    /// A file could not be opened, read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A file's bytes do not follow its format (IDX, NPY, NPZ, gzip, ...).
    #[error("{file}: {msg}")]
    Format {
        /// The file (or embedded resource) being read.
        file: String,
        /// What is wrong and what to do.
        msg: String,
    },
    /// A CSV cell or row is malformed.
    #[error("{file}: line {line}{}: {msg}", fmt_column(.column))]
    Csv {
        /// The CSV file (or `<string>`).
        file: String,
        /// 1-based line number in the file (the header is line 1).
        line: usize,
        /// The column (name and 1-based index), when one cell is at fault.
        column: Option<String>,
        /// What is wrong and what to do.
        msg: String,
    },
    /// A function got an argument it cannot use.
    #[error("{op}: {msg}")]
    InvalidArgument {
        /// The function that failed.
        op: &'static str,
        /// What is wrong and what to do.
        msg: String,
    },
    /// A background worker (prefetch thread) failed.
    #[error("data loader worker: {0}")]
    Worker(String),
}

fn fmt_column(c: &Option<String>) -> String {
    match c {
        Some(c) => format!(", column {c}"),
        None => String::new(),
    }
}

impl Error {
    /// An invalid argument to `op`.
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument { op, msg: msg.into() }
    }

    /// A format error in `file`.
    pub fn format(file: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Format { file: file.into(), msg: msg.into() }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

/// `Result` with keel-data's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
