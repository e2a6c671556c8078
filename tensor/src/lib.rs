//! `keel-tensor`: n-dimensional arrays for keel, with strided views and every
//! primitive op on the CPU (and, behind the `cuda` feature, the GPU).
//!
//! A [`Tensor`] is a cheap-to-clone handle: shared [`Storage`] plus a
//! [`Layout`] (shape, strides, offset), a [`DType`] and a [`Device`]. Views
//! (reshape of contiguous data, transpose, permute, narrow, broadcast,
//! squeeze/unsqueeze) never copy; every other op returns a new tensor.
//! Images are NHWC and convolution kernels HWIO, as in Keras.
//!
//! ```
//! use keel_tensor::{DType, Device, Tensor};
//!
//! # fn main() -> keel_tensor::Result<()> {
//! let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], (2, 3))?;
//! let b = Tensor::ones((3, 2), DType::F32, &Device::Cpu)?;
//! let c = a.matmul(&b)?.relu()?;            // [2, 2]
//! assert_eq!(c.to_vec::<f32>()?, vec![6.0, 6.0, 15.0, 15.0]);
//! let col_sums = a.sum(&[0], false)?;       // reduce over axis 0
//! assert_eq!(col_sums.to_vec::<f32>()?, vec![5.0, 7.0, 9.0]);
//! let p = a.softmax(-1)?;                   // rows sum to 1
//! assert!((p.sum(&[1], false)?.to_vec::<f32>()?[0] - 1.0).abs() < 1e-6);
//! # Ok(())
//! # }
//! ```
//!
//! Features: `cpu` (CPU kernels: blocked GEMM via the `gemm` crate, rayon) and
//! `cuda` (the GPU arm), both on by default; at least one must be enabled.
//! Randomness is counter-based ([`rng`]): the same seed gives the same bits.

#[cfg(not(any(feature = "cpu", feature = "cuda")))]
compile_error!("keel-tensor needs at least one backend: enable feature `cpu` or `cuda`");

mod cpu;
pub mod cuda;
mod device;
mod display;
mod dtype;
mod error;
mod interop;
mod layout;
pub mod ops;
pub mod rng;
mod shape;
mod storage;
mod tensor;

pub use cuda::{is_available as cuda_is_available, CudaStorage};
pub use device::Device;
pub use dtype::{DType, WithDType};
pub use error::{Error, Result};
pub use layout::Layout;
pub use ops::xent::SoftmaxCrossEntropy;
pub use ops::{AffineParams, FillMode, ImageInterpolation};
pub use ops::{BinaryOp, CmpOp, Conv2dParams, DepthwiseConv2dParams, Padding, Pool2dParams, ReduceOp, UnaryOp};
pub use shape::Shape;
pub use storage::{BackendStorage, CpuStorage, Storage};
pub use tensor::Tensor;
