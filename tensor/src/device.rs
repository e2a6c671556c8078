//! Where a tensor's data lives.

/// A compute device: the host CPU or one CUDA GPU by ordinal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// Host memory, computed by the CPU backend.
    #[default]
    Cpu,
    /// The CUDA GPU with this ordinal.
    Cuda(usize),
}

impl Device {
    /// The GPU `ordinal` when a CUDA driver and that GPU are present (and this build
    /// has the `cuda` feature), otherwise the CPU. Prints which one was picked.
    pub fn cuda_if_available(ordinal: usize) -> Device {
        let dev = if crate::cuda::is_available(ordinal) { Device::Cuda(ordinal) } else { Device::Cpu };
        eprintln!("keel: using device {dev}");
        dev
    }

    /// The GPU `ordinal`, checked to be usable now (driver, device and NVRTC present),
    /// as PyTorch's `torch.device("cuda:0")` but failing early with the reason:
    /// [`Error::Cuda`](crate::Error::Cuda) (no driver, no such GPU, no NVRTC) or
    /// [`Error::BackendNotCompiled`](crate::Error::BackendNotCompiled) (built without `cuda`).
    pub fn cuda(ordinal: usize) -> crate::Result<Device> {
        crate::cuda::ensure_available(ordinal)?;
        Ok(Device::Cuda(ordinal))
    }

    /// True for [`Device::Cuda`].
    pub fn is_cuda(&self) -> bool {
        matches!(self, Device::Cuda(_))
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}
