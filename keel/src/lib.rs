//! `keel`: a Keras-like deep-learning framework in Rust with its own CUDA kernels.
//!
//! This facade re-exports the workspace crates. So far the tensor core is
//! filled; the rest of the Keras surface arrives crate by crate.
//!
//! ```
//! use keel::prelude::*;
//!
//! # fn main() -> keel::tensor::Result<()> {
//! let x = Tensor::rand_normal(0, 0.0, 1.0, (2, 3), DType::F32, &Device::Cpu)?;
//! assert_eq!(x.dims(), &[2, 3]);
//! # Ok(())
//! # }
//! ```

pub use keel_tensor as tensor;

/// The names most programs need.
pub mod prelude {
    pub use keel_tensor::{DType, Device, Padding, Shape, Tensor};
}
