//! `keel-data`: data loading, preprocessing and Keras-style image augmentation for keel.
//!
//! - Loaders: [`idx`] (MNIST format), [`csv`], [`npy`] (NumPy `.npy` and, with
//!   the `npz` feature, `.npz`), `image` (with the `image` feature: Keras's
//!   `image_dataset_from_directory`, PNG writing and grids),
//!   [`text_dataset_from_directory`] (a folder of `.txt` files per class), ready-made
//!   [`datasets`] (embedded MNIST-10k and four UCI tables).
//! - [`preprocessing`]: `StandardScaler`, `MinMaxScaler`, `Normalization`,
//!   `to_categorical`, `train_test_split`, `class_weight`, `pad_sequences`, and text
//!   (`TextVectorization`, `StringLookup`: strings to token ids or vectors, on the host).
//! - Feeding a model: the [`Dataset`] trait, [`DataLoader`] (shuffle per epoch,
//!   `drop_last`, background prefetch) and the [`BatchSource`] trait that
//!   training loops consume (see [`loader`] for its contract).
//! - [`augment`]: Keras's `ImageDataGenerator` (random affine transforms,
//!   flips, brightness, channel shift, standardization) whose `flow` is a
//!   [`BatchSource`] too.
//!
//! ```
//! use keel_data::datasets::mnist;
//! use keel_data::{BatchSource, DataLoader};
//! # fn main() -> keel_data::Result<()> {
//! let ((x_train, y_train), (x_test, _y_test)) = mnist::load()?;
//! assert_eq!(x_train.dims(), &[8000, 28, 28]);      // U8, like Keras
//! assert_eq!(y_train.dims(), &[8000]);
//! assert_eq!(x_test.dims(), &[2000, 28, 28]);
//!
//! let (x, y) = mnist::prepare(&x_train, &y_train)?; // F32 [N,28,28,1] in [0,1], one-hot [N,10]
//! let mut loader = DataLoader::from_tensors(&x, &y, 256)?.shuffle(true).seed(42);
//! assert_eq!(loader.len_batches(), 32);
//! for batch in loader.batches(0).take(2) {
//!     let (xb, yb) = batch?;
//!     assert_eq!(xb.dims(), &[256, 28, 28, 1]);
//!     assert_eq!(yb.dims(), &[256, 10]);
//! }
//! # Ok(()) }
//! ```
//!
//! Every fallible function returns [`Result`]; errors name the file, line and
//! column involved and say what to do. Nothing panics on bad input.

pub mod augment;
pub mod csv;
pub mod datasets;
mod error;
pub mod folder;
mod fsio;
pub mod idx;
#[cfg(feature = "image")]
pub mod image;
pub mod loader;
pub mod npy;
pub mod preprocessing;
pub mod seed;
pub mod text_dataset;
pub mod timeseries;

pub use error::{Error, Result};
pub use loader::{Batch, BatchIter, BatchSource, DataLoader, Dataset, TensorDataset};
pub use text_dataset::{text_dataset_from_directory, TextDataset, TextFolder};
pub use timeseries::{timeseries_dataset_from_array, Timeseries, TimeseriesDataset};
