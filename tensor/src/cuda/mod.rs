//! The CUDA storage arm: [`CudaStorage`] holds a tensor's elements in GPU memory
//! and implements every [`BackendStorage`](crate::BackendStorage) primitive with
//! the kernels of `keel-cuda-kernels` (compiled at run time by NVRTC).
//!
//! * One file per op family: `elementwise` (unary/binary/grads/comparisons/where,
//!   whose CUDA source is generated from keel-tensor's own op tables), `reduce`
//!   (reductions, softmax), `matmul`, `conv` (convolution and pooling), `index`
//!   (index_select/index_add/gather/scatter_add/concat) and `copy` (strided copies,
//!   casts, host transfers, fills).
//! * Every op is asynchronous on the device's single stream; the only host
//!   synchronisations are device-to-host copies (`to_vec`, `to_cpu_storage`).
//!   The indexing ops (and `one_hot`) check their indices on the device: the first
//!   out-of-range index comes back as `IndexOutOfRange` from the next read-back
//!   ([`host_waits`] counts the waits).
//! * F64, I64 and U8 binary ops (add, sub, mul, div, pow, maximum, minimum), F64 unary
//!   ops and their gradients, and F64/I64 reductions (sum, mean, max, min, argmax, argmin;
//!   F64 var) compute in f64, as the CPU does, with the CPU's conversion of an integer
//!   result (truncated, saturated); F64 matmul runs a plain f64 GEMM, F64 softmax is
//!   composed from those kernels; index_add/scatter_add add in f64 or i64; F64
//!   convolutions run an implicit GEMM on the same f64 tile, pooling and the fused Adam/SGD
//!   updates compute in f64 (the CPU's bits). No F64 op computes in f32. Casts from or to
//!   F64 go through the host (exact).
//! * Uniform random tensors (dropout masks) are drawn on the device by the Philox
//!   kernel, bit-identical to the CPU. Normal ones are drawn on the host and copied
//!   (the kernels' Box-Muller rounds in f64, the CPU spec in f32).
//!
//! Without the `cuda` feature this module is a stub: the type exists, cannot be
//! constructed, and every op returns `BackendNotCompiled`.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

static TF32: AtomicBool = AtomicBool::new(false);
static POISON: AtomicBool = AtomicBool::new(false);

thread_local! {
    static TF32_SCOPE: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Allow (or forbid) TF32 tensor cores for F32 matmuls on CUDA (default: off, exact f32).
///
/// TF32 rounds the operands to a 10-bit mantissa (relative error about 1e-3) and is
/// several times faster on Ampere and newer GPUs, like PyTorch's
/// `torch.backends.cuda.matmul.allow_tf32`. Process-wide; see [`with_tf32`] for a
/// scoped, per-thread setting.
pub fn set_tf32(enabled: bool) {
    TF32.store(enabled, Ordering::Relaxed);
}

/// Whether F32 matmuls on this thread use TF32 tensor cores.
pub fn tf32_enabled() -> bool {
    TF32_SCOPE.with(|s| s.get()).unwrap_or_else(|| TF32.load(Ordering::Relaxed))
}

/// Run `f` with TF32 matmuls enabled or disabled on this thread only.
pub fn with_tf32<R>(enabled: bool, f: impl FnOnce() -> R) -> R {
    let prev = TF32_SCOPE.with(|s| s.replace(Some(enabled)));
    struct Restore(Option<bool>);
    impl Drop for Restore {
        fn drop(&mut self) {
            TF32_SCOPE.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(prev);
    f()
}

/// Testing aid: fill every freshly allocated CUDA output with NaN (floats) or a
/// sentinel (integers) before the kernel writes it, so a kernel that leaves part
/// of its output unwritten is caught by a comparison test. Off by default (it costs
/// one fill per allocation).
pub fn set_poison_outputs(enabled: bool) {
    POISON.store(enabled, Ordering::Relaxed);
}

/// How many times the calling thread has waited for `device`'s stream so far: every
/// read of a value back to the host (`to_vec`, `to_device(&Device::Cpu)`). Each wait
/// drains the GPU's queue, so a training step should have none; compare the count
/// before and after a loop to find them (PyTorch's `set_sync_debug_mode` answers the
/// same question). Always 0 for the CPU, and for a GPU without the `cuda` feature or
/// without a usable device.
pub fn host_waits(device: crate::Device) -> u64 {
    match device {
        crate::Device::Cpu => 0,
        #[cfg(feature = "cuda")]
        crate::Device::Cuda(ordinal) => backend::device(ordinal).map(|d| d.host_waits()).unwrap_or(0),
        #[cfg(not(feature = "cuda"))]
        crate::Device::Cuda(_) => 0,
    }
}

/// How many bytes the calling thread has copied from the host to `device` so far: every
/// `to_device` of host data, and the small host-built tensors ops upload (index lists,
/// `arange`, normal samples). Compare the count before and after a loop to see what a
/// training step sends over PCIe (e.g. that `fit` sends its data once, not every epoch).
/// Always 0 for the CPU, and for a GPU without the `cuda` feature or without a usable device.
pub fn bytes_to_device(device: crate::Device) -> u64 {
    match device {
        crate::Device::Cpu => 0,
        #[cfg(feature = "cuda")]
        crate::Device::Cuda(ordinal) => backend::device(ordinal).map(|d| d.bytes_to_device()).unwrap_or(0),
        #[cfg(not(feature = "cuda"))]
        crate::Device::Cuda(_) => 0,
    }
}

/// How many kernels the calling thread has launched on `device` so far. Compare the count
/// before and after a step to see how many launches it takes (each costs a few
/// microseconds of GPU time however small its work). Always 0 for the CPU, and for a GPU
/// without the `cuda` feature or without a usable device.
pub fn launches(device: crate::Device) -> u64 {
    match device {
        crate::Device::Cpu => 0,
        #[cfg(feature = "cuda")]
        crate::Device::Cuda(ordinal) => backend::device(ordinal).map(|d| d.launches()).unwrap_or(0),
        #[cfg(not(feature = "cuda"))]
        crate::Device::Cuda(_) => 0,
    }
}

/// One kernel's share of a profile ([`finish_profile`]).
#[derive(Debug, Clone, PartialEq)]
pub struct KernelTime {
    /// The kernel's name (`gemm_f32_nn_vec4`, `softmax_xent_dense_f32`, ...).
    pub kernel: String,
    /// How many times it was launched.
    pub launches: u64,
    /// GPU time of those launches in milliseconds (events recorded just before and just
    /// after each launch on the device's stream).
    pub total_ms: f64,
}

/// Starts timing every kernel the calling thread launches on `device` until
/// [`finish_profile`]: two CUDA events per launch, so profile a few training steps, not
/// a whole run. A profile already running starts over. Nothing to time on the CPU (a
/// no-op); an error for a GPU this build or machine cannot use.
///
/// ```
/// use keel_tensor::{cuda, Device, Tensor};
/// # fn main() -> keel_tensor::Result<()> {
/// let dev = Device::cuda_if_available(0);
/// cuda::start_profile(dev)?;
/// let x = Tensor::ones([64, 64], keel_tensor::DType::F32, &dev)?;
/// let _y = x.matmul(&x)?.relu()?;
/// for row in cuda::finish_profile(dev)? {
///     println!("{}: {} launches, {:.3} ms", row.kernel, row.launches, row.total_ms);
/// }
/// # Ok(())
/// # }
/// ```
pub fn start_profile(device: crate::Device) -> crate::Result<()> {
    match device {
        crate::Device::Cpu => Ok(()),
        #[cfg(feature = "cuda")]
        crate::Device::Cuda(ordinal) => {
            backend::device(ordinal)?.start_profile();
            Ok(())
        }
        #[cfg(not(feature = "cuda"))]
        crate::Device::Cuda(_) => Err(crate::Error::BackendNotCompiled { op: "start_profile", backend: "cuda" }),
    }
}

/// Ends the profile [`start_profile`] began: waits for the GPU, then returns each
/// kernel's launches and GPU time since, summed by kernel name, the longest first (empty
/// on the CPU). The gaps between kernels (launch latency, a host that does not keep up)
/// are in no row: compare the rows' sum with the wall time of the same work.
pub fn finish_profile(device: crate::Device) -> crate::Result<Vec<KernelTime>> {
    match device {
        crate::Device::Cpu => Ok(Vec::new()),
        #[cfg(feature = "cuda")]
        crate::Device::Cuda(ordinal) => {
            use backend::Ctx as _;
            let rows = backend::device(ordinal)?.finish_profile().ctx("finish_profile")?;
            Ok(rows
                .into_iter()
                .map(|r| KernelTime { kernel: r.kernel, launches: r.launches, total_ms: r.total_ms })
                .collect())
        }
        #[cfg(not(feature = "cuda"))]
        crate::Device::Cuda(_) => Err(crate::Error::BackendNotCompiled { op: "finish_profile", backend: "cuda" }),
    }
}

/// One kernel program that [`prebuild_kernels`] put in the disk cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrebuiltProgram {
    /// The program's name (e.g. `gemm_tc_part3`), as in the cache's file names.
    pub name: String,
    /// How many kernels it holds.
    pub kernels: usize,
    /// Whether it was in the disk cache already, so nothing was compiled (as first found
    /// by this process: a second call in the same process reports the same).
    pub from_disk_cache: bool,
}

/// Compiles every CUDA kernel program keel loads, for the GPU architecture `arch`
/// (`"sm_90"` for H100/H200, `"sm_80"` for A100; `"90"` and `"compute_90"` also do),
/// into the on-disk kernel cache, on every core. Needs NVRTC but no GPU.
///
/// Without it, a run on a machine with an empty cache (a fresh container) compiles each
/// program the first time one of its kernels is launched, which can add up to a minute
/// to the first steps; run this when building the image, or once before training. The
/// cache is `KEEL_KERNEL_CACHE` if set, else `~/.cache/keel/kernels`
/// ([`kernel_cache_dir`]); entries are keyed by source, architecture and NVRTC version,
/// so a stale entry is never used.
///
/// # Errors
///
/// [`Error::BackendNotCompiled`](crate::Error::BackendNotCompiled) without the `cuda`
/// feature; [`Error::Cuda`](crate::Error::Cuda) when NVRTC is missing, the disk cache is
/// off (nothing would be kept), `arch` is not one, or a program fails to compile.
pub fn prebuild_kernels(arch: &str) -> crate::Result<Vec<PrebuiltProgram>> {
    #[cfg(feature = "cuda")]
    {
        use keel_cuda_kernels as kk;
        let err = |msg: String| crate::Error::Cuda(format!("prebuild_kernels: {msg}"));
        if kernel_cache_dir().is_none() {
            return Err(err("the kernel disk cache is off (KEEL_KERNEL_CACHE=off, or no home folder): set \
                            KEEL_KERNEL_CACHE to a folder"
                .into()));
        }
        // the static programs (longest first), then keel-tensor's generated ones
        let mut programs = kk::sources::programs::all();
        programs.extend(elementwise::generated_programs());
        let jobs: Vec<_> = programs.iter().map(|p| (*p, arch, kk::Stage::Cached)).collect();
        programs
            .iter()
            .zip(kk::compile_many(&jobs))
            .map(|(p, r)| {
                let c = r.map_err(|e| err(format!("{}: {e}", p.name())))?;
                Ok(PrebuiltProgram {
                    name: p.name().to_string(),
                    kernels: c.entries().len(),
                    from_disk_cache: c.from_disk_cache,
                })
            })
            .collect()
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = arch;
        Err(crate::Error::BackendNotCompiled { op: "prebuild_kernels", backend: "cuda" })
    }
}

/// The folder of the on-disk CUDA kernel cache: `KEEL_KERNEL_CACHE` if set, else
/// `$XDG_CACHE_HOME/keel/kernels` or `~/.cache/keel/kernels`; `None` when it is off
/// (`KEEL_KERNEL_CACHE=off`) or this build has no CUDA backend.
pub fn kernel_cache_dir() -> Option<std::path::PathBuf> {
    #[cfg(feature = "cuda")]
    return keel_cuda_kernels::compile::cache_dir();
    #[cfg(not(feature = "cuda"))]
    None
}

#[cfg(feature = "cuda")]
pub(crate) fn poison_outputs() -> bool {
    POISON.load(Ordering::Relaxed)
}

#[cfg(not(feature = "cuda"))]
mod stub;
#[cfg(not(feature = "cuda"))]
pub use stub::{ensure_available, is_available, CudaStorage};

#[cfg(feature = "cuda")]
pub(crate) mod copy;
#[cfg(feature = "cuda")]
mod depthwise;
#[cfg(feature = "cuda")]
pub(crate) mod elementwise;
#[cfg(feature = "cuda")]
mod image;
#[cfg(feature = "cuda")]
mod index;
#[cfg(feature = "cuda")]
pub(crate) mod matmul;
#[cfg(feature = "cuda")]
mod nn;
#[cfg(feature = "cuda")]
pub(crate) mod optim;
#[cfg(feature = "cuda")]
pub(crate) mod reduce;
#[cfg(feature = "cuda")]
pub(crate) mod rnn;

#[cfg(feature = "cuda")]
pub use backend::{ensure_available, is_available, CudaStorage};

#[cfg(feature = "cuda")]
pub(crate) use backend::*;

#[cfg(feature = "cuda")]
mod backend {
    use crate::ops::{BinaryOp, CmpOp, Conv2dParams, DepthwiseConv2dParams, Pool2dParams, ReduceOp, UnaryOp};
    use crate::storage::BackendStorage;
    use crate::{DType, Device, Error, Layout, Result};
    use half::{bf16, f16};
    use keel_cuda_kernels as kk;
    use kk::cudarc::driver::{CudaSlice, CudaView, CudaViewMut};
    use std::sync::Arc;

    /// Device buffers, one variant per dtype. F64 is stored as its bit pattern in an
    /// `i64` buffer (the kernels' raw-bits copies, gathers and selects then serve it,
    /// and the comparison kernels read it as `double`).
    pub(crate) enum Data {
        F32(CudaSlice<f32>),
        F64(CudaSlice<i64>),
        F16(CudaSlice<f16>),
        BF16(CudaSlice<bf16>),
        I64(CudaSlice<i64>),
        U8(CudaSlice<u8>),
    }

    /// GPU memory holding a tensor's elements: one device buffer of the tensor's
    /// dtype, its length, and the device (context + stream) it lives on.
    pub struct CudaStorage {
        pub(crate) data: Data,
        pub(crate) len: usize,
        pub(crate) dev: Arc<kk::CudaDevice>,
    }

    impl std::fmt::Debug for CudaStorage {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "CudaStorage({}; {} elements; cuda:{})", self.dtype(), self.len, self.dev.ordinal())
        }
    }

    /// True when a CUDA driver, GPU `ordinal` and NVRTC are all present (never panics).
    pub fn is_available(ordinal: usize) -> bool {
        kk::CudaDevice::is_available(ordinal)
    }

    /// `Ok` when GPU `ordinal` can run keel kernels (driver, device and NVRTC present, context
    /// created); otherwise the reason as [`Error::Cuda`] (never panics).
    pub fn ensure_available(ordinal: usize) -> Result<()> {
        device(ordinal).map(|_| ())
    }

    /// Map a keel-cuda-kernels (or cudarc) error into [`Error::Cuda`], naming the op.
    pub(crate) trait Ctx<T> {
        fn ctx(self, op: &str) -> Result<T>;
    }

    impl<T, E: std::fmt::Display> Ctx<T> for std::result::Result<T, E> {
        fn ctx(self, op: &str) -> Result<T> {
            self.map_err(|e| Error::Cuda(format!("{op}: {e}")))
        }
    }

    /// The shared device handle for `ordinal`.
    pub(crate) fn device(ordinal: usize) -> Result<Arc<kk::CudaDevice>> {
        kk::CudaDevice::get(ordinal).ctx("cuda device")
    }

    /// Element types with a device buffer variant of their own.
    pub(crate) trait Elem: kk::DType {
        /// keel's dtype of this element type.
        const DTYPE: DType;
        /// The value written by [`super::set_poison_outputs`].
        fn poison() -> Self;
        /// `data`'s buffer if it holds this type.
        fn slice(data: &Data) -> Option<&CudaSlice<Self>>;
        /// The buffer as tensor data.
        fn data(buf: CudaSlice<Self>) -> Data;
    }

    macro_rules! elem {
        ($t:ty, $v:ident, $poison:expr) => {
            impl Elem for $t {
                const DTYPE: DType = DType::$v;
                fn poison() -> Self {
                    $poison
                }
                fn slice(data: &Data) -> Option<&CudaSlice<Self>> {
                    match data {
                        Data::$v(x) => Some(x),
                        _ => None,
                    }
                }
                fn data(buf: CudaSlice<Self>) -> Data {
                    Data::$v(buf)
                }
            }
        };
    }
    elem!(f32, F32, f32::NAN);
    elem!(f16, F16, f16::NAN);
    elem!(bf16, BF16, bf16::NAN);
    elem!(i64, I64, i64::MIN);
    elem!(u8, U8, 0xA5);

    /// A fresh buffer of `n` elements (at least one is allocated, so empty tensors
    /// never ask the driver for zero bytes). Poisoned when requested.
    pub(crate) fn alloc<T: Elem>(dev: &kk::CudaDevice, n: usize) -> Result<CudaSlice<T>> {
        alloc_fill(dev, n, T::poison())
    }

    /// Like [`alloc`], poisoning with `poison` (used for F64 bits in `i64` buffers).
    pub(crate) fn alloc_fill<T: kk::DType>(dev: &kk::CudaDevice, n: usize, poison: T) -> Result<CudaSlice<T>> {
        let mut s = dev.alloc::<T>(n.max(1)).ctx("alloc")?;
        if super::poison_outputs() {
            kk::ops::misc::fill(dev, &mut s.as_view_mut(), poison).ctx("poison")?;
        }
        Ok(s)
    }

    /// Zeroed buffer of `n` elements.
    pub(crate) fn alloc_zeros<T: kk::DType>(dev: &kk::CudaDevice, n: usize) -> Result<CudaSlice<T>> {
        dev.alloc_zeros::<T>(n.max(1)).ctx("alloc")
    }

    /// The f64 poison value as stored bits.
    pub(crate) const F64_POISON: i64 = 0x7FF8_0000_0000_0000;

    /// A contiguous view of the elements `l` selects: borrowed when they already are
    /// contiguous in storage, else a fresh strided copy.
    pub(crate) enum Contig<'a, T> {
        Borrowed(CudaView<'a, T>),
        Owned(CudaSlice<T>, usize),
    }

    impl<T> Contig<'_, T> {
        pub(crate) fn view(&self) -> CudaView<'_, T> {
            match self {
                Contig::Borrowed(v) => v.slice(..),
                Contig::Owned(s, n) => s.slice(0..*n),
            }
        }
    }

    /// Contiguous view of `l` over `x` (copying only when `l` is strided).
    pub(crate) fn contig<'a, T: kk::DType>(
        dev: &kk::CudaDevice,
        x: &'a CudaSlice<T>,
        l: &Layout,
        poison: T,
    ) -> Result<Contig<'a, T>> {
        let n = l.shape().elem_count();
        if let Some((a, b)) = l.contiguous_range() {
            return Ok(Contig::Borrowed(x.slice(a..b)));
        }
        Ok(Contig::Owned(super::copy::copy_t(dev, x, l, poison)?, n))
    }

    /// The kernels' stride description of `K` same-shaped operands, with size-1 dims
    /// dropped and dims merged wherever every operand walks them as one.
    pub(crate) fn kernel_layout<const K: usize>(
        op: &'static str,
        dims: &[usize],
        strides: [&[usize]; K],
    ) -> Result<kk::Layout<K>> {
        let mut md: Vec<usize> = Vec::with_capacity(dims.len());
        let mut ms: [Vec<isize>; K] = std::array::from_fn(|_| Vec::with_capacity(dims.len()));
        for d in 0..dims.len() {
            if dims[d] == 1 {
                continue;
            }
            if let Some(last) = md.last_mut() {
                if (0..K).all(|k| ms[k].last() == Some(&((strides[k][d] * dims[d]) as isize))) {
                    *last *= dims[d];
                    for k in 0..K {
                        if let Some(s) = ms[k].last_mut() {
                            *s = strides[k][d] as isize;
                        }
                    }
                    continue;
                }
            }
            md.push(dims[d]);
            for k in 0..K {
                ms[k].push(strides[k][d] as isize);
            }
        }
        if md.len() > kk::MAX_RANK {
            return Err(Error::invalid(
                op,
                format!("strided view of rank {} is beyond the CUDA kernels' limit of {}", md.len(), kk::MAX_RANK),
            ));
        }
        kk::Layout::new(&md, std::array::from_fn(|k| ms[k].as_slice())).ctx(op)
    }

    /// Row-major strides of `l`'s shape (the layout of a fresh output).
    pub(crate) fn out_strides(l: &Layout) -> Vec<usize> {
        l.shape().contiguous_strides()
    }

    /// The view of `x` starting at `offset` (strided kernels index from there).
    pub(crate) fn from_offset<T>(x: &CudaSlice<T>, offset: usize) -> CudaView<'_, T> {
        x.slice(offset..)
    }

    /// The first `n` elements of an output buffer.
    pub(crate) fn head_mut<T>(x: &mut CudaSlice<T>, n: usize) -> CudaViewMut<'_, T> {
        x.slice_mut(0..n)
    }

    /// Error for an op with no f64 kernel.
    pub(crate) fn no_f64(op: &'static str) -> Error {
        Error::NotImplemented { op, backend: "cuda" }
    }

    impl CudaStorage {
        pub(crate) fn new(data: Data, len: usize, dev: Arc<kk::CudaDevice>) -> Self {
            CudaStorage { data, len, dev }
        }

        /// A storage of `len` elements on this storage's device.
        pub(crate) fn like(&self, data: Data, len: usize) -> Self {
            CudaStorage { data, len, dev: self.dev.clone() }
        }

        /// The number of stored elements.
        pub fn len(&self) -> usize {
            self.len
        }

        /// True when no elements are stored.
        pub fn is_empty(&self) -> bool {
            self.len == 0
        }

        /// The device ordinal.
        pub fn ordinal(&self) -> usize {
            self.dev.ordinal()
        }

        /// Operands of one op must share one GPU.
        pub(crate) fn same_device(&self, op: &'static str, other: &CudaStorage) -> Result<()> {
            if self.dev.ordinal() != other.dev.ordinal() {
                return Err(Error::DeviceMismatch {
                    op,
                    lhs: format!("cuda:{}", self.dev.ordinal()),
                    rhs: format!("cuda:{}", other.dev.ordinal()),
                });
            }
            Ok(())
        }
    }

    impl BackendStorage for CudaStorage {
        const BACKEND: &'static str = "cuda";

        fn dtype(&self) -> DType {
            match &self.data {
                Data::F32(_) => DType::F32,
                Data::F64(_) => DType::F64,
                Data::F16(_) => DType::F16,
                Data::BF16(_) => DType::BF16,
                Data::I64(_) => DType::I64,
                Data::U8(_) => DType::U8,
            }
        }

        fn device(&self) -> Device {
            Device::Cuda(self.dev.ordinal())
        }

        fn missing(op: &'static str) -> Error {
            Error::NotImplemented { op, backend: Self::BACKEND }
        }

        fn unary(&self, l: &Layout, op: UnaryOp, param: f64) -> Result<Self> {
            super::elementwise::unary(self, l, op, param)
        }
        fn unary_grad(&self, l: &Layout, grad: &Self, gl: &Layout, op: UnaryOp, param: f64) -> Result<Self> {
            super::elementwise::unary_grad(self, l, grad, gl, op, param)
        }
        fn binary(&self, l: &Layout, rhs: &Self, rl: &Layout, op: BinaryOp) -> Result<Self> {
            super::elementwise::binary(self, l, rhs, rl, op)
        }
        fn binary_grad(
            &self,
            l: &Layout,
            rhs: &Self,
            rl: &Layout,
            grad: &Self,
            gl: &Layout,
            op: BinaryOp,
            wrt_rhs: bool,
        ) -> Result<Self> {
            super::elementwise::binary_grad(self, l, rhs, rl, grad, gl, op, wrt_rhs)
        }
        fn cmp(&self, l: &Layout, rhs: &Self, rl: &Layout, op: CmpOp) -> Result<Self> {
            super::elementwise::cmp(self, l, rhs, rl, op)
        }
        fn where_cond(&self, l: &Layout, t: &Self, tl: &Layout, f: &Self, fl: &Layout) -> Result<Self> {
            super::elementwise::where_cond(self, l, t, tl, f, fl)
        }
        fn reduce(&self, l: &Layout, op: ReduceOp, size: usize) -> Result<Self> {
            super::reduce::reduce(self, l, op, size)
        }
        fn softmax_last(&self, l: &Layout, size: usize, log: bool) -> Result<Self> {
            super::reduce::softmax_last(self, l, size, log)
        }
        fn matmul(&self, l: &Layout, rhs: &Self, rl: &Layout) -> Result<Self> {
            super::matmul::matmul(self, l, rhs, rl)
        }
        fn conv2d(&self, l: &Layout, k: &Self, kl: &Layout, p: &Conv2dParams) -> Result<Self> {
            super::nn::conv2d(self, l, k, kl, p)
        }
        fn conv2d_bias_relu(
            &self,
            l: &Layout,
            k: &Self,
            kl: &Layout,
            b: &Self,
            bl: &Layout,
            p: &Conv2dParams,
        ) -> Result<Option<Self>> {
            super::nn::conv2d_bias_relu(self, l, k, kl, b, bl, p)
        }
        fn conv2d_grad_input(&self, l: &Layout, k: &Self, kl: &Layout, p: &Conv2dParams) -> Result<Self> {
            super::nn::conv2d_grad_input(self, l, k, kl, p)
        }
        fn conv2d_grad_kernel(&self, l: &Layout, dy: &Self, dyl: &Layout, p: &Conv2dParams) -> Result<Self> {
            super::nn::conv2d_grad_kernel(self, l, dy, dyl, p)
        }
        fn depthwise_conv2d(&self, l: &Layout, k: &Self, kl: &Layout, p: &DepthwiseConv2dParams) -> Result<Self> {
            super::depthwise::depthwise_conv2d(self, l, k, kl, p)
        }
        fn depthwise_conv2d_grad_input(
            &self,
            l: &Layout,
            k: &Self,
            kl: &Layout,
            p: &DepthwiseConv2dParams,
        ) -> Result<Self> {
            super::depthwise::depthwise_conv2d_grad_input(self, l, k, kl, p)
        }
        fn depthwise_conv2d_grad_kernel(
            &self,
            l: &Layout,
            dy: &Self,
            dyl: &Layout,
            p: &DepthwiseConv2dParams,
        ) -> Result<Self> {
            super::depthwise::depthwise_conv2d_grad_kernel(self, l, dy, dyl, p)
        }
        fn max_pool2d(&self, l: &Layout, p: &Pool2dParams) -> Result<(Self, Self)> {
            super::nn::max_pool2d(self, l, p)
        }
        fn max_pool2d_grad(&self, l: &Layout, idx: &Self, il: &Layout, p: &Pool2dParams) -> Result<Self> {
            super::nn::max_pool2d_grad(self, l, idx, il, p)
        }
        fn avg_pool2d(&self, l: &Layout, p: &Pool2dParams) -> Result<Self> {
            super::nn::avg_pool2d(self, l, p)
        }
        fn avg_pool2d_grad(&self, l: &Layout, p: &Pool2dParams) -> Result<Self> {
            super::nn::avg_pool2d_grad(self, l, p)
        }
        fn check_indices(&self, l: &Layout, size: usize, op: &'static str) -> Result<()> {
            super::index::check_indices(self, l, size, op)
        }
        fn index_select(&self, l: &Layout, idx: &Self, il: &Layout, axis: usize) -> Result<Self> {
            super::index::index_select(self, l, idx, il, axis)
        }
        fn index_add(&self, l: &Layout, idx: &Self, il: &Layout, axis: usize, dims: &[usize]) -> Result<Self> {
            super::index::index_add(self, l, idx, il, axis, dims)
        }
        fn gather(&self, l: &Layout, idx: &Self, il: &Layout, axis: usize) -> Result<Self> {
            super::index::gather(self, l, idx, il, axis)
        }
        fn scatter_add(&self, l: &Layout, idx: &Self, il: &Layout, axis: usize, dims: &[usize]) -> Result<Self> {
            super::index::scatter_add(self, l, idx, il, axis, dims)
        }
        fn concat(parts: &[(&Self, &Layout)], axis: usize) -> Result<Self> {
            super::index::concat(parts, axis)
        }
        fn copy_strided(&self, l: &Layout) -> Result<Self> {
            super::copy::copy_strided(self, l)
        }
        fn to_dtype(&self, l: &Layout, dtype: DType) -> Result<Self> {
            super::copy::to_dtype(self, l, dtype)
        }
        fn affine_transform(
            &self,
            l: &Layout,
            t: &Self,
            tl: &Layout,
            p: &crate::ops::image::AffineParams,
        ) -> Result<Self> {
            super::image::affine_transform(self, l, t, tl, p)
        }
        fn affine_transform_grad(
            &self,
            l: &Layout,
            t: &Self,
            tl: &Layout,
            p: &crate::ops::image::AffineParams,
        ) -> Result<Self> {
            super::image::affine_transform_grad(self, l, t, tl, p)
        }
    }
}
