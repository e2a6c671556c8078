//! The CUDA storage arm.
//!
//! The CUDA backend (kernels in `keel-cuda-kernels`) is not wired into
//! keel-tensor yet: every op on a [`CudaStorage`] returns an error telling the
//! user to run on the CPU, and [`is_available`] answers `false`, so
//! `Device::cuda_if_available` picks the CPU. With the `cuda` feature off, the
//! error says the backend is not compiled in.

use crate::storage::BackendStorage;
use crate::{DType, Device, Error};

/// GPU memory holding a tensor's elements (not constructible until the CUDA backend lands).
#[derive(Debug)]
pub struct CudaStorage {
    dtype: DType,
    ordinal: usize,
    len: usize,
}

impl CudaStorage {
    /// The number of stored elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no elements are stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// True when a CUDA driver and GPU `ordinal` can be used by this build.
pub fn is_available(_ordinal: usize) -> bool {
    false
}

impl BackendStorage for CudaStorage {
    const BACKEND: &'static str = "cuda";

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn device(&self) -> Device {
        Device::Cuda(self.ordinal)
    }

    fn missing(op: &'static str) -> Error {
        if cfg!(feature = "cuda") {
            Error::NotImplemented { op, backend: Self::BACKEND }
        } else {
            Error::BackendNotCompiled { op, backend: Self::BACKEND }
        }
    }
}
