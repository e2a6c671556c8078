//! The CUDA arm when the `cuda` feature is off: the type exists (so `Storage`
//! has both arms in every build) but cannot be constructed, and every op
//! returns [`Error::BackendNotCompiled`].

use crate::storage::BackendStorage;
use crate::{CpuStorage, DType, Device, Error, Layout, Result};

/// GPU memory holding a tensor's elements (this build has no CUDA backend).
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

    pub(crate) fn from_cpu(_s: &CpuStorage, _l: &Layout, _ordinal: usize) -> Result<CudaStorage> {
        Err(Self::missing("to_device"))
    }

    pub(crate) fn to_cpu(&self, _l: &Layout) -> Result<CpuStorage> {
        Err(Self::missing("to_cpu_storage"))
    }

    pub(crate) fn full(_value: f64, _n: usize, _dtype: DType, _ordinal: usize) -> Result<CudaStorage> {
        Err(Self::missing("full"))
    }

    pub(crate) fn rand_uniform_f32(_seed: u64, _n: usize, _lo: f32, _hi: f32, _ordinal: usize) -> Result<CudaStorage> {
        Err(Self::missing("rand_uniform"))
    }
}

/// True when a CUDA driver and GPU `ordinal` can be used by this build (never, without `cuda`).
pub fn is_available(_ordinal: usize) -> bool {
    false
}

/// Why GPU `ordinal` cannot be used: this build has no CUDA backend ([`Error::BackendNotCompiled`]).
pub fn ensure_available(_ordinal: usize) -> Result<()> {
    Err(Error::BackendNotCompiled { op: "Device::cuda", backend: "cuda" })
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
        Error::BackendNotCompiled { op, backend: Self::BACKEND }
    }
}
