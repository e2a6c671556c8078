//! Creating tensors: constants, ranges, identity, and seeded random tensors.

use crate::{rng, CpuStorage, DType, Device, Error, Result, Shape, Storage, Tensor};

/// Host allocations from this size on are tried (reserved and released) before they are
/// made, so a request the machine cannot satisfy is an error instead of an abort.
const PROBE_BYTES: usize = 64 << 20;

/// The element count of a new `dtype` tensor of `shape` on `device`, checked: the count and
/// its bytes must fit in memory's address range, and a large host tensor must be
/// allocatable ([`Error::HostOutOfMemory`] otherwise; a GPU reports its own).
pub(crate) fn checked_len(op: &'static str, shape: &Shape, dtype: DType, device: &Device) -> Result<usize> {
    let too_large =
        || Error::InvalidShape { op, shape: shape.clone(), msg: "has more elements than memory can address".into() };
    let n = shape.checked_elem_count().ok_or_else(too_large)?;
    let bytes = n.checked_mul(dtype.size_in_bytes()).filter(|&b| b <= isize::MAX as usize).ok_or_else(too_large)?;
    if *device == Device::Cpu && bytes >= PROBE_BYTES {
        Vec::<u8>::new().try_reserve_exact(bytes).map_err(|_| Error::HostOutOfMemory { op, bytes })?;
    }
    Ok(n)
}

impl Tensor {
    /// A tensor of `shape` filled with `value` (converted to `dtype`), made on `device`
    /// (on a GPU by a fill kernel, with no host transfer).
    pub fn full(value: f64, shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let n = checked_len("full", &shape, dtype, device)?;
        let storage = match *device {
            Device::Cpu => Storage::Cpu(CpuStorage::full(value, n, dtype)),
            Device::Cuda(ordinal) => Storage::Cuda(crate::CudaStorage::full(value, n, dtype, ordinal)?),
        };
        Ok(Tensor::from_storage(storage, shape))
    }

    /// All zeros.
    pub fn zeros(shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
        Tensor::full(0.0, shape, dtype, device)
    }

    /// All ones.
    pub fn ones(shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
        Tensor::full(1.0, shape, dtype, device)
    }

    /// Zeros with this tensor's shape, dtype and device.
    pub fn zeros_like(&self) -> Result<Tensor> {
        Tensor::zeros(self.shape().clone(), self.dtype(), &self.device())
    }

    /// Ones with this tensor's shape, dtype and device.
    pub fn ones_like(&self) -> Result<Tensor> {
        Tensor::ones(self.shape().clone(), self.dtype(), &self.device())
    }

    /// `[start, start + step, ...]` up to but excluding `end` (like `numpy.arange`).
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType, device: &Device) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(Error::invalid(
                "arange",
                format!("need finite bounds and a non-zero step, got {start}..{end} step {step}"),
            ));
        }
        let count = ((end - start) / step).ceil().max(0.0);
        if count >= isize::MAX as f64 {
            return Err(Error::invalid(
                "arange",
                format!("{start}..{end} step {step} has too many values ({count:e})"),
            ));
        }
        let n = checked_len("arange", &Shape::from(count as usize), dtype, &Device::Cpu)?;
        let s = CpuStorage::from_f64_iter((0..n).map(|i| start + i as f64 * step), dtype);
        Tensor::from_storage(Storage::Cpu(s), n).to_device(device)
    }

    /// `n` evenly spaced values from `start` to `end` inclusive (like `numpy.linspace`).
    pub fn linspace(start: f64, end: f64, n: usize, dtype: DType, device: &Device) -> Result<Tensor> {
        checked_len("linspace", &Shape::from(n), dtype, &Device::Cpu)?;
        let step = if n > 1 { (end - start) / (n - 1) as f64 } else { 0.0 };
        let s = CpuStorage::from_f64_iter(
            (0..n).map(|i| if i + 1 == n && n > 1 { end } else { start + i as f64 * step }),
            dtype,
        );
        Tensor::from_storage(Storage::Cpu(s), n).to_device(device)
    }

    /// The `n x n` identity matrix.
    pub fn eye(n: usize, dtype: DType, device: &Device) -> Result<Tensor> {
        checked_len("eye", &Shape::from((n, n)), dtype, &Device::Cpu)?;
        let s = CpuStorage::from_f64_iter((0..n * n).map(|i| if i / n == i % n { 1.0 } else { 0.0 }), dtype);
        Tensor::from_storage(Storage::Cpu(s), (n, n)).to_device(device)
    }

    /// Uniform samples in `[lo, hi)` from seed `seed` (Philox; see [`crate::rng`]).
    ///
    /// The bits are the same on every device: on a GPU a kernel draws the same Philox
    /// stream with the same f32 arithmetic (no host work, no copy), then casts to `dtype`
    /// as the CPU does.
    pub fn rand_uniform(
        seed: u64,
        lo: f64,
        hi: f64,
        shape: impl Into<Shape>,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        if lo >= hi || !lo.is_finite() || !hi.is_finite() {
            return Err(Error::invalid("rand_uniform", format!("need finite lo < hi, got [{lo}, {hi})")));
        }
        let shape = shape.into();
        let n = checked_len("rand_uniform", &shape, DType::F32, device)?;
        let (lo, hi) = (lo as f32, hi as f32);
        let f32s = match *device {
            Device::Cpu => Tensor::from_vec(rng::uniform_f32(seed, n, lo, hi), shape)?,
            Device::Cuda(ordinal) => Tensor::from_storage(
                Storage::Cuda(crate::CudaStorage::rand_uniform_f32(seed, n, lo, hi, ordinal)?),
                shape,
            ),
        };
        f32s.to_dtype(dtype)
    }

    /// Normal samples with `mean` and `std` from seed `seed` (Philox + Box-Muller).
    ///
    /// Drawn on the host and copied to `device`, so the bits are the same on every
    /// device (the CUDA RNG kernel rounds Box-Muller in f64, the CPU spec in f32).
    pub fn rand_normal(
        seed: u64,
        mean: f64,
        std: f64,
        shape: impl Into<Shape>,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        if std.is_sign_negative() || !std.is_finite() || !mean.is_finite() {
            return Err(Error::invalid("rand_normal", format!("need finite mean and std >= 0, got {mean}, {std}")));
        }
        let shape = shape.into();
        let n = checked_len("rand_normal", &shape, DType::F32, &Device::Cpu)?;
        let v = rng::normal_f32(seed, n, mean as f32, std as f32);
        Tensor::from_vec(v, shape)?.to_dtype(dtype)?.to_device(device)
    }
}
