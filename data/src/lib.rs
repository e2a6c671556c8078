//! `keel-data`: data loading, preprocessing and Keras-style image augmentation for keel.
//!
//! - Loaders: [`idx`] (MNIST format), [`csv`], ready-made [`datasets`]
//!   (embedded MNIST-10k and four UCI tables).
//! - [`preprocessing`]: `StandardScaler`, `MinMaxScaler`, `Normalization`,
//!   `to_categorical`, `train_test_split`, `class_weight`.
//!
//! ```
//! use keel_data::datasets::mnist;
//! # fn main() -> keel_data::Result<()> {
//! let ((x_train, y_train), (x_test, _y_test)) = mnist::load()?;
//! assert_eq!(x_train.dims(), &[8000, 28, 28]);      // U8, like Keras
//! assert_eq!(y_train.dims(), &[8000]);
//! assert_eq!(x_test.dims(), &[2000, 28, 28]);
//! # Ok(()) }
//! ```
//!
//! Every fallible function returns [`Result`]; errors name the file, line and
//! column involved and say what to do. Nothing panics on bad input.

pub mod csv;
pub mod datasets;
mod error;
pub mod idx;
pub mod preprocessing;
pub mod seed;

pub use error::{Error, Result};
