//! `keel-cuda-kernels`: keel's hand-written CUDA kernels, compiled at run time by NVRTC,
//! with safe Rust launch wrappers.
//!
//! The crate knows nothing about tensors or autograd: it takes device buffers
//! (cudarc [`CudaView`](cudarc::driver::CudaView) / [`CudaViewMut`](cudarc::driver::CudaViewMut)),
//! sizes and strides, checks them, and launches kernels on a [`CudaDevice`]'s stream.
//!
//! * [`compile`]: NVRTC build for a given architecture, with per-process and on-disk
//!   caches ([`compile_for_arch`] works without a GPU).
//! * [`CudaDevice`]: context + one stream per device, module cache, allocation and copies.
//! * [`ops`]: one module per kernel family (elementwise, misc, rng, reduce, softmax,
//!   index, pool, depthwise, optim, gemm, conv).
//! * [`all_sources`]: every static kernel source; [`sources::programs::all`]: every static
//!   program as the launch wrappers load it (the CI test compiles them all, and
//!   [`compile_many`] can prebuild them into the disk cache).
//!
//! # Installing NVRTC (no CUDA toolkit needed)
//!
//! NVRTC 13.0 comes from the PyPI wheel `nvidia-cuda-nvrtc==13.0.88`. Run
//! `cuda-kernels/install-nvrtc.sh`: it installs the wheel into
//! `${KEEL_NVRTC_DIR:-$HOME/.local/keel-nvrtc}` (once) and prints the library directory.
//! keel finds the library there by itself (it looks in `$KEEL_NVRTC_DIR` and
//! `~/.local/keel-nvrtc`); otherwise add the printed directory to `LD_LIBRARY_PATH`:
//!
//! ```sh
//! export LD_LIBRARY_PATH="$(cuda-kernels/install-nvrtc.sh):$LD_LIBRARY_PATH"
//! ```
//!
//! Running kernels additionally needs the NVIDIA driver (`libcuda.so`, driver >= 580).
//! Missing libraries are reported as [`Error::NvrtcNotFound`] / [`Error::DriverNotFound`],
//! never as a panic.
//!
//! # Example
//!
//! ```
//! use keel_cuda_kernels::{all_sources, compile_for_arch, nvrtc_available};
//!
//! # fn main() -> Result<(), keel_cuda_kernels::Error> {
//! if nvrtc_available() {
//!     // Needs NVRTC, but no GPU.
//!     let (name, source) = all_sources()[0];
//!     let ptx = compile_for_arch(source, name, "sm_90")?;
//!     assert!(ptx.ptx.contains(".entry"));
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Running a kernel on a GPU:
//!
//! ```no_run
//! use keel_cuda_kernels::{ops::gemm, CudaDevice};
//!
//! # fn main() -> Result<(), keel_cuda_kernels::Error> {
//! let dev = CudaDevice::get(0)?;
//! let a = dev.htod(&[1.0f32, 2.0, 3.0, 4.0])?; // 2x2
//! let b = dev.htod(&[1.0f32, 0.0, 0.0, 1.0])?; // 2x2 identity
//! let mut c = dev.alloc::<f32>(4)?;
//! gemm::gemm_f32(&dev, &gemm::GemmArgs::new(2, 2, 2), &a.as_view(), &b.as_view(), &mut c.as_view_mut(), None)?;
//! assert_eq!(dev.dtoh(&c.as_view())?, vec![1.0, 2.0, 3.0, 4.0]);
//! # Ok(())
//! # }
//! ```

pub mod compile;
pub mod device;
pub mod error;
pub mod layout;
pub mod ops;
pub mod sources;

pub use compile::{
    assemble_check, compile_for_arch, compile_many, compile_uncached, nvrtc_available, nvrtc_version, CompiledPtx,
    Stage,
};
pub use device::{device_count, driver_available, CudaDevice, DType, FloatDType, FloatStorage, KernelTime};
pub use error::{Error, Result};
pub use layout::{Layout, MAX_RANK};
pub use sources::{all_sources, Program};

/// Re-export of the cudarc version this crate is built against.
pub use cudarc;
