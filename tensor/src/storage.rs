//! [`Storage`]: the backend-specific buffer behind a tensor, and the
//! [`BackendStorage`] trait that lists every primitive op a backend provides.
//!
//! Ops reach a backend through this one trait. A backend that is not compiled in
//! (feature off) uses the trait's default methods, which return
//! [`Error::BackendNotCompiled`]; so the `Storage` enum always has both arms and
//! no user code needs a `cfg`.

use crate::ops::AffineParams;
use crate::ops::{BinaryOp, CmpOp, Conv2dParams, DepthwiseConv2dParams, Pool2dParams, ReduceOp, UnaryOp};
use crate::{CudaStorage, DType, Device, Error, Layout, Result};
use half::{bf16, f16};

/// Host memory: one vector per dtype.
#[derive(Debug, Clone, PartialEq)]
pub enum CpuStorage {
    /// `f32` elements.
    F32(Vec<f32>),
    /// `f64` elements.
    F64(Vec<f64>),
    /// `f16` elements.
    F16(Vec<f16>),
    /// `bf16` elements.
    BF16(Vec<bf16>),
    /// `i64` elements.
    I64(Vec<i64>),
    /// `u8` elements.
    U8(Vec<u8>),
}

/// The data of a tensor on one device.
#[derive(Debug)]
pub enum Storage {
    /// Host memory.
    Cpu(CpuStorage),
    /// GPU memory (a stub returning errors when the `cuda` feature is off).
    Cuda(CudaStorage),
}

/// The primitive ops every backend implements. Layouts describe how the
/// operands sit in storage; outputs are always freshly allocated and contiguous.
#[allow(missing_docs, unused_variables)]
pub trait BackendStorage: Sized {
    /// Name used in error messages (`cpu`, `cuda`).
    const BACKEND: &'static str;

    fn dtype(&self) -> DType;
    fn device(&self) -> Device;

    /// The error for an op this backend does not provide.
    fn missing(op: &'static str) -> Error {
        Error::BackendNotCompiled { op, backend: Self::BACKEND }
    }

    fn unary(&self, l: &Layout, op: UnaryOp, param: f64) -> Result<Self> {
        Err(Self::missing(op.name()))
    }
    /// `grad * d op(x) / dx`, elementwise; `x` and `grad` have the same shape.
    fn unary_grad(&self, l: &Layout, grad: &Self, gl: &Layout, op: UnaryOp, param: f64) -> Result<Self> {
        Err(Self::missing(op.name()))
    }
    /// Both layouts already have the output shape (broadcast by stride 0).
    fn binary(&self, l: &Layout, rhs: &Self, rl: &Layout, op: BinaryOp) -> Result<Self> {
        Err(Self::missing(op.name()))
    }
    /// `grad * d op(x, y) / d(x or y)`, elementwise over the output shape.
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
        Err(Self::missing(op.name()))
    }
    /// Comparison producing U8 0/1; both layouts have the output shape.
    fn cmp(&self, l: &Layout, rhs: &Self, rl: &Layout, op: CmpOp) -> Result<Self> {
        Err(Self::missing(op.name()))
    }
    /// `mask != 0 ? on_true : on_false`; all three layouts have the output shape.
    fn where_cond(&self, l: &Layout, t: &Self, tl: &Layout, f: &Self, fl: &Layout) -> Result<Self> {
        Err(Self::missing("where_cond"))
    }
    /// Reduce the trailing `size` elements (row-major order of `l`) of each row.
    fn reduce(&self, l: &Layout, op: ReduceOp, size: usize) -> Result<Self> {
        Err(Self::missing(op.name()))
    }
    /// Softmax or log-softmax over the trailing dimension of size `size`.
    fn softmax_last(&self, l: &Layout, size: usize, log: bool) -> Result<Self> {
        Err(Self::missing("softmax"))
    }
    /// Batched matmul: `l` is `[b, m, k]`, `rl` is `[b, k, n]`, output `[b, m, n]`.
    fn matmul(&self, l: &Layout, rhs: &Self, rl: &Layout) -> Result<Self> {
        Err(Self::missing("matmul"))
    }
    fn conv2d(&self, l: &Layout, k: &Self, kl: &Layout, p: &Conv2dParams) -> Result<Self> {
        Err(Self::missing("conv2d"))
    }
    /// Fused `relu(conv2d(self, k) + b)` (`b` of length `o`) where the backend has a kernel
    /// for this dtype; `None` tells the caller to run conv2d, add and relu instead, which
    /// must give the same result.
    fn conv2d_bias_relu(
        &self,
        l: &Layout,
        k: &Self,
        kl: &Layout,
        b: &Self,
        bl: &Layout,
        p: &Conv2dParams,
    ) -> Result<Option<Self>> {
        Ok(None)
    }
    /// Gradient wrt the input from the output gradient `self` and the kernel.
    fn conv2d_grad_input(&self, l: &Layout, k: &Self, kl: &Layout, p: &Conv2dParams) -> Result<Self> {
        Err(Self::missing("conv2d_grad_input"))
    }
    /// Gradient wrt the kernel from the input `self` and the output gradient.
    fn conv2d_grad_kernel(&self, l: &Layout, dy: &Self, dyl: &Layout, p: &Conv2dParams) -> Result<Self> {
        Err(Self::missing("conv2d_grad_kernel"))
    }
    /// Depthwise convolution of `self` (NHWC) with the `[kh, kw, c, m]` kernel `k`.
    fn depthwise_conv2d(&self, l: &Layout, k: &Self, kl: &Layout, p: &DepthwiseConv2dParams) -> Result<Self> {
        Err(Self::missing("depthwise_conv2d"))
    }
    /// Depthwise convolution's gradient wrt the input from the output gradient `self`.
    fn depthwise_conv2d_grad_input(
        &self,
        l: &Layout,
        k: &Self,
        kl: &Layout,
        p: &DepthwiseConv2dParams,
    ) -> Result<Self> {
        Err(Self::missing("depthwise_conv2d_grad_input"))
    }
    /// Depthwise convolution's gradient wrt the kernel from the input `self` and `dy`.
    fn depthwise_conv2d_grad_kernel(
        &self,
        l: &Layout,
        dy: &Self,
        dyl: &Layout,
        p: &DepthwiseConv2dParams,
    ) -> Result<Self> {
        Err(Self::missing("depthwise_conv2d_grad_kernel"))
    }
    /// Max pooling: returns the output and the I64 flat input index of each max.
    fn max_pool2d(&self, l: &Layout, p: &Pool2dParams) -> Result<(Self, Self)> {
        Err(Self::missing("max_pool2d"))
    }
    /// Scatter the output gradient `self` to the input positions in `idx`.
    fn max_pool2d_grad(&self, l: &Layout, idx: &Self, il: &Layout, p: &Pool2dParams) -> Result<Self> {
        Err(Self::missing("max_pool2d_grad"))
    }
    fn avg_pool2d(&self, l: &Layout, p: &Pool2dParams) -> Result<Self> {
        Err(Self::missing("avg_pool2d"))
    }
    fn avg_pool2d_grad(&self, l: &Layout, p: &Pool2dParams) -> Result<Self> {
        Err(Self::missing("avg_pool2d_grad"))
    }
    /// Check that every I64 index (the elements `l` selects) lies in `0..size`. The CPU
    /// answers at once; CUDA queues the check on the device, and a bad index
    /// comes back as `IndexOutOfRange` from the next read-back (no host wait now).
    fn check_indices(&self, l: &Layout, size: usize, op: &'static str) -> Result<()> {
        let _ = (l, size);
        Err(Self::missing(op))
    }
    /// Select entries `idx` (I64, 1-D) along `axis`.
    fn index_select(&self, l: &Layout, idx: &Self, il: &Layout, axis: usize) -> Result<Self> {
        Err(Self::missing("index_select"))
    }
    /// Zeros of `dims`, then add slice `i` of `self` at index `idx[i]` along `axis`.
    fn index_add(&self, l: &Layout, idx: &Self, il: &Layout, axis: usize, dims: &[usize]) -> Result<Self> {
        Err(Self::missing("index_add"))
    }
    /// `out[.., i, ..] = self[.., idx[.., i, ..], ..]` along `axis` (PyTorch `gather`).
    fn gather(&self, l: &Layout, idx: &Self, il: &Layout, axis: usize) -> Result<Self> {
        Err(Self::missing("gather"))
    }
    /// Zeros of `dims`, then `out[.., idx[.., i, ..], ..] += self[.., i, ..]` (PyTorch `scatter_add`).
    fn scatter_add(&self, l: &Layout, idx: &Self, il: &Layout, axis: usize, dims: &[usize]) -> Result<Self> {
        Err(Self::missing("scatter_add"))
    }
    /// Concatenate along `axis`; every part has the same rank and dtype.
    fn concat(parts: &[(&Self, &Layout)], axis: usize) -> Result<Self> {
        Err(Self::missing("concat"))
    }
    /// A contiguous copy of the elements `l` selects.
    fn copy_strided(&self, l: &Layout) -> Result<Self> {
        Err(Self::missing("contiguous"))
    }
    /// A contiguous copy converted to `dtype`.
    fn to_dtype(&self, l: &Layout, dtype: DType) -> Result<Self> {
        Err(Self::missing("to_dtype"))
    }
    /// Resample NHWC images through projective transforms `t` (`[rows, 8]`, F32, or F64 for
    /// F64 images); see [`crate::ops::image`].
    fn affine_transform(&self, l: &Layout, t: &Self, tl: &Layout, p: &AffineParams) -> Result<Self> {
        Err(Self::missing("affine_transform"))
    }
    /// The image gradient of [`BackendStorage::affine_transform`] from the output gradient `self`.
    fn affine_transform_grad(&self, l: &Layout, t: &Self, tl: &Layout, p: &AffineParams) -> Result<Self> {
        Err(Self::missing("affine_transform_grad"))
    }
}

impl CpuStorage {
    /// The dtype of the elements.
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::I64(_) => DType::I64,
            CpuStorage::U8(_) => DType::U8,
        }
    }

    /// The number of stored elements.
    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
            CpuStorage::F16(v) => v.len(),
            CpuStorage::BF16(v) => v.len(),
            CpuStorage::I64(v) => v.len(),
            CpuStorage::U8(v) => v.len(),
        }
    }

    /// True when no elements are stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `n` copies of `value` converted to `dtype`.
    pub fn full(value: f64, n: usize, dtype: DType) -> CpuStorage {
        match dtype {
            DType::F32 => CpuStorage::F32(vec![value as f32; n]),
            DType::F64 => CpuStorage::F64(vec![value; n]),
            DType::F16 => CpuStorage::F16(vec![crate::dtype::f64_to_f16(value); n]),
            DType::BF16 => CpuStorage::BF16(vec![crate::dtype::f64_to_bf16(value); n]),
            DType::I64 => CpuStorage::I64(vec![value as i64; n]),
            DType::U8 => CpuStorage::U8(vec![value as u8; n]),
        }
    }

    /// Build storage of `dtype` from f64 values (rounding/truncating as `WithDType::from_f64`).
    pub fn from_f64_iter(values: impl Iterator<Item = f64>, dtype: DType) -> CpuStorage {
        use crate::WithDType;
        match dtype {
            DType::F32 => CpuStorage::F32(values.map(f32::from_f64).collect()),
            DType::F64 => CpuStorage::F64(values.collect()),
            DType::F16 => CpuStorage::F16(values.map(crate::dtype::f64_to_f16).collect()),
            DType::BF16 => CpuStorage::BF16(values.map(crate::dtype::f64_to_bf16).collect()),
            DType::I64 => CpuStorage::I64(values.map(i64::from_f64).collect()),
            DType::U8 => CpuStorage::U8(values.map(u8::from_f64).collect()),
        }
    }

    /// The element at storage position `i`, converted to f64.
    pub fn get_f64(&self, i: usize) -> Option<f64> {
        use crate::WithDType;
        match self {
            CpuStorage::F32(v) => v.get(i).map(|x| x.to_f64()),
            CpuStorage::F64(v) => v.get(i).copied(),
            CpuStorage::F16(v) => v.get(i).map(|x| x.to_f64()),
            CpuStorage::BF16(v) => v.get(i).map(|x| x.to_f64()),
            CpuStorage::I64(v) => v.get(i).map(|x| x.to_f64()),
            CpuStorage::U8(v) => v.get(i).map(|x| x.to_f64()),
        }
    }
}

/// Apply `$body` to the vector inside a `CpuStorage`, whatever its dtype, with
/// `$v` bound to the vector; `$wrap` rebuilds a storage of the same variant.
#[macro_export]
#[doc(hidden)]
macro_rules! map_cpu_storage {
    ($s:expr, $v:ident => $body:expr) => {
        match $s {
            $crate::CpuStorage::F32($v) => $crate::CpuStorage::F32($body),
            $crate::CpuStorage::F64($v) => $crate::CpuStorage::F64($body),
            $crate::CpuStorage::F16($v) => $crate::CpuStorage::F16($body),
            $crate::CpuStorage::BF16($v) => $crate::CpuStorage::BF16($body),
            $crate::CpuStorage::I64($v) => $crate::CpuStorage::I64($body),
            $crate::CpuStorage::U8($v) => $crate::CpuStorage::U8($body),
        }
    };
}

impl Storage {
    /// The dtype of the elements.
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) => s.dtype(),
            Storage::Cuda(s) => s.dtype(),
        }
    }

    /// The device holding the data.
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Cuda(s) => s.device(),
        }
    }

    /// The number of stored elements.
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(s) => s.len(),
            Storage::Cuda(s) => s.len(),
        }
    }

    /// True when no elements are stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Run a primitive on whichever backend holds `$s` (single-operand ops).
macro_rules! dispatch1 {
    ($s:expr, |$b:ident| $call:expr) => {
        match $s {
            $crate::Storage::Cpu($b) => $call.map($crate::Storage::Cpu),
            $crate::Storage::Cuda($b) => $call.map($crate::Storage::Cuda),
        }
    };
}

/// Run a primitive over two storages that must be on the same device.
macro_rules! dispatch2 {
    ($op:expr, $s1:expr, $s2:expr, |$a:ident, $b:ident| $call:expr) => {
        match ($s1, $s2) {
            ($crate::Storage::Cpu($a), $crate::Storage::Cpu($b)) => $call.map($crate::Storage::Cpu),
            ($crate::Storage::Cuda($a), $crate::Storage::Cuda($b)) => $call.map($crate::Storage::Cuda),
            (x, y) => {
                Err($crate::Error::DeviceMismatch { op: $op, lhs: x.device().to_string(), rhs: y.device().to_string() })
            }
        }
    };
}

/// Run a primitive over three storages that must be on the same device.
macro_rules! dispatch3 {
    ($op:expr, $s1:expr, $s2:expr, $s3:expr, |$a:ident, $b:ident, $c:ident| $call:expr) => {
        match ($s1, $s2, $s3) {
            ($crate::Storage::Cpu($a), $crate::Storage::Cpu($b), $crate::Storage::Cpu($c)) => {
                $call.map($crate::Storage::Cpu)
            }
            ($crate::Storage::Cuda($a), $crate::Storage::Cuda($b), $crate::Storage::Cuda($c)) => {
                $call.map($crate::Storage::Cuda)
            }
            (x, y, z) => Err($crate::Error::DeviceMismatch {
                op: $op,
                lhs: x.device().to_string(),
                rhs: format!("{} and {}", y.device(), z.device()),
            }),
        }
    };
}

pub(crate) use {dispatch1, dispatch2, dispatch3};
