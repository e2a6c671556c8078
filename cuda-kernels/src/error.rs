//! The crate's error type.

use cudarc::driver::{sys::CUresult, DriverError};

/// Everything that can go wrong when compiling or launching a keel CUDA kernel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The CUDA driver library (`libcuda.so`) could not be loaded.
    #[error(
        "the CUDA driver library (libcuda.so) was not found: install an NVIDIA driver \
         (keel targets driver >= 580 / CUDA 13.0) or run on the CPU"
    )]
    DriverNotFound,
    /// The NVRTC library (`libnvrtc.so.13`) could not be loaded.
    #[error(
        "NVRTC (libnvrtc.so.13) was not found: install it with \
         `cuda-kernels/install-nvrtc.sh` (or `python3 -m pip install --target DIR \
         nvidia-cuda-nvrtc==13.0.88`) and add DIR/nvidia/cu13/lib to LD_LIBRARY_PATH \
         (or set KEEL_NVRTC_DIR to that install dir)"
    )]
    NvrtcNotFound,
    /// The driver loaded but there is no CUDA device with this ordinal.
    #[error("no CUDA device with ordinal {ordinal} ({count} device(s) present)")]
    NoDevice {
        /// The requested ordinal.
        ordinal: usize,
        /// How many devices the driver reports.
        count: usize,
    },
    /// NVRTC rejected a kernel source.
    #[error("NVRTC failed to compile `{name}` for {arch}:\n{log}")]
    Compile {
        /// Name of the source (e.g. `gemm`).
        name: String,
        /// Target architecture (e.g. `compute_90`).
        arch: String,
        /// The NVRTC log.
        log: String,
    },
    /// An architecture string that is not `sm_XX`, `compute_XX` or `XX`.
    #[error("invalid GPU architecture `{0}` (expected e.g. `sm_90`, `compute_80` or `90`)")]
    InvalidArch(String),
    /// A device allocation failed for lack of memory.
    #[error("CUDA out of memory while allocating {bytes} bytes")]
    OutOfMemory {
        /// The size of the failed request in bytes.
        bytes: usize,
    },
    /// A kernel launch (or the module/function lookup before it) failed.
    #[error("CUDA kernel launch failed: {0}")]
    Launch(String),
    /// Any other CUDA driver error.
    #[error("CUDA driver error: {0}")]
    Driver(String),
    /// NVRTC failed outside of compilation proper (program creation, PTX retrieval).
    #[error("NVRTC error: {0}")]
    Nvrtc(String),
    /// Arguments to a launch wrapper do not fit together (sizes, ranks, lengths).
    #[error("invalid arguments to `{op}`: {msg}")]
    InvalidArgument {
        /// The operation whose arguments were rejected.
        op: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// A device-side index check found an index outside `0..size`. It is reported by the
    /// first host wait after the check ran (a read-back or [`crate::CudaDevice::synchronize`]).
    #[error(
        "{op}: index {index} is out of range for an axis of size {size} (found on the GPU, \
         reported at the next read-back; the results computed since are not valid)"
    )]
    IndexOutOfRange {
        /// The op whose indices were checked.
        op: &'static str,
        /// A bad index found (if several, one of them).
        index: i64,
        /// The size of the indexed axis.
        size: usize,
    },
    /// A kernel name that the given source does not define.
    #[error("kernel `{kernel}` not found in module `{module}`")]
    UnknownKernel {
        /// Module (source) name.
        module: String,
        /// Kernel (function) name.
        kernel: String,
    },
}

/// Shorthand for `Result<T, keel_cuda_kernels::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds an [`Error::InvalidArgument`].
    pub(crate) fn arg(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument { op, msg: msg.into() }
    }

    /// Maps a driver error from an allocation of `bytes` bytes.
    pub(crate) fn from_alloc(e: DriverError, bytes: usize) -> Self {
        if e.0 == CUresult::CUDA_ERROR_OUT_OF_MEMORY {
            Error::OutOfMemory { bytes }
        } else {
            Error::Driver(format!("{e:?} (allocating {bytes} bytes)"))
        }
    }

    /// Maps a driver error from a kernel launch.
    pub(crate) fn from_launch(e: DriverError, kernel: &str) -> Self {
        Error::Launch(format!("{kernel}: {e:?}"))
    }
}

impl From<DriverError> for Error {
    fn from(e: DriverError) -> Self {
        if e.0 == CUresult::CUDA_ERROR_OUT_OF_MEMORY {
            Error::OutOfMemory { bytes: 0 }
        } else {
            Error::Driver(format!("{e:?}"))
        }
    }
}
