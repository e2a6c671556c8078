//! `keel-train`: the Keras training loop — `compile`, `fit`, `evaluate`,
//! `predict` — with Keras-style progress output and the per-epoch [`History`].
//!
//! [`KerasModel`] wraps a keel-nn network (a [`Sequential`] stack or a
//! functional model) and derefs to it, so building a model reads as in Keras:
//!
//! ```
//! use keel_train::{Fit, Sequential};
//! use keel_nn::{Activation, Dense, Loss};
//! use keel_optim::Adam;
//! use keel_train::MetricSpec;
//! use keel_tensor::{DType, Device, Tensor};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // y = 1 when x0 + x1 > 0
//! let x = Tensor::rand_uniform(1, -1.0, 1.0, (64, 2), DType::F32, &Device::Cpu)?;
//! let y = x.sum(&[1], true)?.gt(&Tensor::scalar(0.0f32))?.to_dtype(DType::F32)?;
//! let mut model = Sequential::new();
//! model.add(Dense::new(8).activation(Activation::Relu).input_shape([2]));
//! model.add(Dense::new(1).activation(Activation::Sigmoid));
//! model.compile(Adam::new(0.05), Loss::BinaryCrossentropy, &[MetricSpec::Accuracy])?;
//! let history = model.fit(&x, &y, Fit::new().epochs(20).batch_size(16).verbose(0))?;
//! assert!(history.last("loss").unwrap() < history.get("loss").unwrap()[0]);
//! let (loss, accuracy) = model.evaluate(&x, &y)?;
//! assert!(accuracy > 0.8, "loss {loss} accuracy {accuracy}");
//! # Ok(())
//! # }
//! ```

pub mod atomic;
pub mod callbacks;
pub mod checkpoint;
mod error;
mod fit;
mod history;
mod model;
mod plot;
pub mod progress;
pub mod registry;
pub mod saving;
mod spec;
mod step_results;

pub use callbacks::{
    BackupAndRestore, CSVLogger, Callback, CallbackContext, EarlyStopping, LambdaCallback, LearningRateScheduler, Logs,
    ModelCheckpoint, ReduceLROnPlateau, TerminateOnNaN,
};
pub use checkpoint::Checkpoint;
pub use error::{Error, Result};
pub use fit::{Fit, Inputs, Targets, ValidationFreq};
pub use history::History;
pub use model::{KerasModel, Model, Sequential};
pub use registry::{layer_from_config, register_layer, unapplied_settings, FromConfig};
pub use saving::load_model;
pub use spec::{CompileMetric, Losses, MetricSpec, NO_METRICS};
