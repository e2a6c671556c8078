//! `keel`: a Keras-like deep-learning framework in Rust with its own CUDA kernels.
//!
//! This facade re-exports the workspace crates under short names and gathers
//! what a training script needs in [`prelude`]. The seed CNN, as in Keras:
//!
//! ```no_run
//! use keel::prelude::*;
//!
//! fn main() -> Result<(), keel::Error> {
//!     let ((x_train, y_train), (x_test, y_test)) = keel::datasets::mnist::load_prepared()?;
//!     let mut model = Sequential::new();
//!     model.add(Conv2D::new(32, (3, 3)).activation(Activation::Relu).input_shape([28, 28, 1]));
//!     model.add(MaxPooling2D::new((2, 2)));
//!     model.add(Conv2D::new(64, (3, 3)).activation(Activation::Relu));
//!     model.add(MaxPooling2D::new((2, 2)));
//!     model.add(Flatten::new());
//!     model.add(Dense::new(128).activation(Activation::Relu));
//!     model.add(Dense::new(10).activation(Activation::Softmax));
//!     model.compile(Adam::default(), Loss::CategoricalCrossentropy, &[Metric::Accuracy])?;
//!     let history = model.fit(&x_train, &y_train, Fit::new().batch_size(32).epochs(10)
//!         .validation_data(&x_test, &y_test))?;
//!     let (loss, accuracy) = model.evaluate(&x_test, &y_test)?;
//!     println!("{loss} {accuracy} {:?}", history.last("val_accuracy"));
//!     Ok(())
//! }
//! ```

pub use keel_autograd as autograd;
pub use keel_data as data;
pub use keel_data::datasets;
pub use keel_metrics as metrics;
pub use keel_nn as nn;
/// Mixed precision (Keras `keras.mixed_precision`): `set_global_policy("mixed_bfloat16")`.
pub use keel_nn::mixed_precision;
pub use keel_optim as optim;
pub use keel_tensor as tensor;
pub use keel_train as train;
pub use keel_train::callbacks;
pub use keel_train::load_model;

#[doc = include_str!("../../docs/KERAS.md")]
pub mod keras_guide {}

/// Any keel error: one enum wrapping each crate's error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From keel-tensor.
    #[error(transparent)]
    Tensor(#[from] keel_tensor::Error),
    /// From keel-autograd.
    #[error(transparent)]
    Autograd(#[from] keel_autograd::Error),
    /// From keel-nn.
    #[error(transparent)]
    Nn(#[from] keel_nn::Error),
    /// From keel-optim.
    #[error(transparent)]
    Optim(#[from] keel_optim::Error),
    /// From keel-data.
    #[error(transparent)]
    Data(#[from] keel_data::Error),
    /// From keel-metrics.
    #[error(transparent)]
    Metrics(#[from] keel_metrics::MetricsError),
    /// From keel-train.
    #[error(transparent)]
    Train(#[from] keel_train::Error),
}

/// `Result` with [`enum@Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// The names a training script needs: `use keel::prelude::*;`.
pub mod prelude {
    pub use keel_data::preprocessing::{StringLookup, TextOutputMode, TextVectorization};
    // a hand-written training loop (Keras's `tf.GradientTape` loop): a tape, the values on
    // it, and the context a model runs in (`Ctx::train(&tape, &mut rng)`, `Ctx::inference()`)
    pub use keel_autograd::{Tape, Var};
    pub use keel_nn::Ctx;
    pub use keel_nn::GroupQueryAttention;
    pub use keel_nn::{
        add, concatenate, dot, Activation, ActivationLayer, ActivityRegularization, Add, AdditiveAttention, Attention,
        AveragePooling1D, AveragePooling2D, BatchNormalization, Bidirectional, Concatenate, Conv1D, Conv1DPadding,
        Conv1DTranspose, Conv2D, Conv2DTranspose, Cropping1D, Cropping2D, Dense, DepthwiseConv2D, Dot, Dropout,
        Embedding, Flatten, GaussianDropout, GaussianNoise, GlobalAveragePooling1D, GlobalAveragePooling2D,
        GlobalMaxPooling1D, GlobalMaxPooling2D, Initializer, Input, Interpolation, Layer, LayerExt, LayerNormalization,
        LeakyReLU, Loss, LossFn, Masking, MaxPooling1D, MaxPooling2D, MultiHeadAttention, Network, PReLU, Permute,
        RandomBrightness, RandomContrast, RandomFlip, ReLU, Reduction, Regularizer, RepeatVector, Reshape, ScoreMode,
        SeparableConv2D, SimpleRNN, Softmax, SpatialDropout1D, SpatialDropout2D, SpatialDropout3D, TimeDistributed,
        UpSampling1D, UpSampling2D, ZeroPadding1D, ZeroPadding2D, ELU, GRU, LSTM,
    };
    pub use keel_nn::{AutoContrast, RandomGrayscale, RandomHue, RandomSaturation, RandomShear, Solarization};
    pub use keel_nn::{
        AveragePooling3D, Conv3D, Cropping3D, GlobalAveragePooling3D, GlobalMaxPooling3D, MaxPooling3D, UpSampling3D,
        ZeroPadding3D,
    };
    pub use keel_nn::{CategoryEncoding, Discretization, Hashing, IntegerLookup, OutputMode};
    pub use keel_nn::{
        CenterCrop, FillMode, ImageInterpolation, RandomCrop, RandomRotation, RandomTranslation, RandomZoom, Resizing,
    };
    pub use keel_nn::{Conv3DTranspose, DepthwiseConv1D, SeparableConv1D};
    pub use keel_nn::{ConvLSTM1D, ConvLSTM2D};
    pub use keel_nn::{GroupNormalization, Normalization, RMSNormalization, Rescaling, UnitNormalization};
    pub use keel_optim::{
        Adadelta, Adagrad, Adam, AdamW, Adamax, Ftrl, Lion, LossScaleOptimizer, Nadam, Optimizer, RMSprop, SGD,
    };
    pub use keel_tensor::{DType, Device, Padding, Shape, Tensor};
    pub use keel_train::MetricSpec as Metric;
    pub use keel_train::{
        BackupAndRestore, CSVLogger, Callback, Checkpoint, EarlyStopping, Fit, History, KerasModel, LambdaCallback,
        LearningRateScheduler, Losses, Model, ModelCheckpoint, ReduceLROnPlateau, Sequential, TerminateOnNaN,
        ValidationFreq, NO_METRICS,
    };
}
