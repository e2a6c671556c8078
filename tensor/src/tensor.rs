//! [`Tensor`]: a cheap-to-clone handle on shared storage plus a strided layout.

use crate::storage::{dispatch1, BackendStorage};
use crate::{CpuStorage, CudaStorage, DType, Device, Error, Layout, Result, Shape, Storage, WithDType};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// An n-dimensional array on a device.
///
/// Cloning is cheap (the storage is shared); view ops (reshape of contiguous
/// data, transpose, permute, narrow, broadcast, squeeze/unsqueeze) return a new
/// `Tensor` over the same storage. Every other op allocates its result.
#[derive(Clone)]
pub struct Tensor {
    storage: Arc<RwLock<Storage>>,
    layout: Layout,
    dtype: DType,
    device: Device,
}

impl Tensor {
    pub(crate) fn from_storage(storage: Storage, shape: impl Into<Shape>) -> Tensor {
        let dtype = storage.dtype();
        let device = storage.device();
        Tensor { storage: Arc::new(RwLock::new(storage)), layout: Layout::contiguous(shape), dtype, device }
    }

    /// A view of the same storage with another layout.
    pub(crate) fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor { storage: self.storage.clone(), layout, dtype: self.dtype, device: self.device }
    }

    /// Read access to the storage (a poisoned lock is recovered: storage is never left half-written).
    pub(crate) fn storage(&self) -> RwLockReadGuard<'_, Storage> {
        self.storage.read().unwrap_or_else(|e| e.into_inner())
    }

    fn storage_mut(&self) -> RwLockWriteGuard<'_, Storage> {
        self.storage.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Build a tensor from CPU storage and a shape; the element count must match.
    pub fn from_cpu_storage(storage: CpuStorage, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if storage.len() != shape.elem_count() {
            return Err(Error::ElementCount { op: "from_cpu_storage", shape, len: storage.len() });
        }
        Ok(Tensor::from_storage(Storage::Cpu(storage), shape))
    }

    /// A tensor owning `data`, viewed with `shape` (row-major).
    pub fn from_vec<T: WithDType>(data: Vec<T>, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.checked_elem_count() != Some(data.len()) {
            return Err(Error::ElementCount { op: "from_vec", shape, len: data.len() });
        }
        Ok(Tensor::from_storage(Storage::Cpu(T::to_cpu_storage(data)), shape))
    }

    /// A tensor copying `data`, viewed with `shape`.
    pub fn from_slice<T: WithDType>(data: &[T], shape: impl Into<Shape>) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape)
    }

    /// A 0-d (scalar) tensor.
    pub fn scalar<T: WithDType>(value: T) -> Tensor {
        Tensor::from_storage(Storage::Cpu(T::to_cpu_storage(vec![value])), ())
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        self.layout.shape()
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        self.layout.dims()
    }

    /// The size of dimension `axis` (negative counts from the end).
    pub fn dim(&self, axis: isize) -> Result<usize> {
        Ok(self.dims()[self.shape().axis("dim", axis)?])
    }

    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.layout.shape().rank()
    }

    /// The number of elements.
    pub fn elem_count(&self) -> usize {
        self.layout.shape().elem_count()
    }

    /// The layout (shape, strides, offset).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device holding the data.
    pub fn device(&self) -> Device {
        self.device
    }

    /// True when the elements are laid out row-major without gaps.
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    /// True when both handles share one storage buffer.
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// How many tensor handles currently share this storage (for memory tests).
    pub fn storage_ref_count(&self) -> usize {
        Arc::strong_count(&self.storage)
    }

    /// A contiguous copy of this tensor, or the tensor itself if already contiguous and starting at 0.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        self.copy()
    }

    /// A fresh contiguous copy (never shares storage with `self`).
    pub fn copy(&self) -> Result<Tensor> {
        // a broadcast view may describe far more elements than memory holds: an error, not
        // an abort in the allocator
        crate::ops::creation::checked_len("copy", self.shape(), self.dtype(), &self.device())?;
        let s = self.storage();
        let out = dispatch1!(&*s, |b| b.copy_strided(&self.layout))?;
        Ok(Tensor::from_storage(out, self.shape().clone()))
    }

    /// Convert the elements to `dtype` (a contiguous copy; `self` if the dtype already matches).
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype {
            return Ok(self.clone());
        }
        let s = self.storage();
        let out = dispatch1!(&*s, |b| b.to_dtype(&self.layout, dtype))?;
        Ok(Tensor::from_storage(out, self.shape().clone()))
    }

    /// Each of `tensors` cast to `dtype`: the values of [`Tensor::to_dtype`] on each. The
    /// casts mixed precision makes every step (the weights to F16/BF16, their gradients
    /// back to F32) run as one CUDA launch per device and source dtype for contiguous
    /// tensors, instead of one per tensor.
    pub fn to_dtype_many(tensors: &[Tensor], dtype: DType) -> Result<Vec<Tensor>> {
        #[cfg_attr(not(feature = "cuda"), allow(unused_mut))]
        let mut out: Vec<Option<Tensor>> = vec![None; tensors.len()];
        #[cfg(feature = "cuda")]
        crate::cuda::copy::to_dtype_many(tensors, dtype, &mut out)?;
        tensors.iter().zip(out).map(|(t, o)| o.map_or_else(|| t.to_dtype(dtype), Ok)).collect()
    }

    /// Copy to `device` (or return `self` if already there).
    ///
    /// The copy is contiguous. Host to GPU copies only the elements this view
    /// selects; GPU to host waits for the GPU's queued work (the one host sync);
    /// GPU to another GPU goes through the host.
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        if *device == self.device {
            return Ok(self.clone());
        }
        let storage = match *device {
            Device::Cpu => Storage::Cpu(self.to_cpu_storage()?),
            Device::Cuda(ordinal) => {
                let s = self.storage();
                match &*s {
                    Storage::Cpu(c) => Storage::Cuda(CudaStorage::from_cpu(c, &self.layout, ordinal)?),
                    Storage::Cuda(g) => {
                        let host = g.to_cpu(&self.layout)?;
                        let l = Layout::contiguous(self.shape().clone());
                        Storage::Cuda(CudaStorage::from_cpu(&host, &l, ordinal)?)
                    }
                }
            }
        };
        Ok(Tensor::from_storage(storage, self.shape().clone()))
    }

    /// Host copy of the elements in row-major order as CPU storage (for a CUDA
    /// tensor: a device-to-host copy, which waits for the GPU).
    pub fn to_cpu_storage(&self) -> Result<CpuStorage> {
        let s = self.storage();
        match &*s {
            Storage::Cpu(c) => c.copy_strided(&self.layout),
            Storage::Cuda(g) => g.to_cpu(&self.layout),
        }
    }

    /// The elements in row-major order as a `Vec<T>`; `T` must match the dtype.
    pub fn to_vec<T: WithDType>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.dtype {
            return Err(Error::DTypeMismatch { op: "to_vec", lhs: self.dtype, rhs: T::DTYPE });
        }
        let s = self.to_cpu_storage()?;
        let out = T::cpu_slice(&s).map(|v| v.to_vec());
        out.ok_or(Error::DTypeMismatch { op: "to_vec", lhs: s.dtype(), rhs: T::DTYPE })
    }

    /// The elements converted to f64, in row-major order (any dtype).
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        self.to_dtype(DType::F64)?.to_vec::<f64>()
    }

    /// The single element of a one-element tensor (any rank).
    pub fn to_scalar<T: WithDType>(&self) -> Result<T> {
        if self.elem_count() != 1 {
            return Err(Error::InvalidShape {
                op: "to_scalar",
                shape: self.shape().clone(),
                msg: "only one-element tensors can be read as a scalar".into(),
            });
        }
        Ok(self.to_vec::<T>()?[0])
    }

    /// Overwrite this tensor's elements in place with `src` (same shape and dtype).
    ///
    /// This is the explicit in-place mutation that optimizers use. Every handle
    /// sharing the storage sees the new values. `self` must be contiguous and
    /// cover its whole storage.
    pub fn assign(&self, src: &Tensor) -> Result<()> {
        if self.shape() != src.shape() {
            return Err(Error::shape_mismatch("assign", self.shape(), src.shape(), ""));
        }
        if self.dtype != src.dtype {
            return Err(Error::DTypeMismatch { op: "assign", lhs: self.dtype, rhs: src.dtype });
        }
        if !self.is_contiguous() || self.layout.offset() != 0 {
            return Err(Error::invalid("assign", "the target must be a contiguous tensor, not a view"));
        }
        if self.device != src.device {
            return Err(Error::DeviceMismatch {
                op: "assign",
                lhs: self.device.to_string(),
                rhs: src.device.to_string(),
            });
        }
        let new = {
            let s = src.storage();
            dispatch1!(&*s, |b| b.copy_strided(&src.layout))?
        };
        let mut dst = self.storage_mut();
        if dst.len() != self.elem_count() {
            return Err(Error::invalid("assign", "the target is a view of a larger buffer"));
        }
        *dst = new;
        Ok(())
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor[{}; {}; {}]", self.shape(), self.dtype, self.device)
    }
}
