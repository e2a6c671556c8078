//! `keel-nn`: Keras-style layers, activations, losses, initializers,
//! regularizers, constraints and Sequential/Functional models on top of `keel-autograd`.
//!
//! Layers are configured with builder methods, built lazily from the
//! per-sample input shape (Keras's `input_shape`, no batch dim; images NHWC),
//! and run on [`keel_autograd::Var`]s through a [`Ctx`] that says whether a
//! tape records the pass and whether it is training. Models implement
//! [`Network`], the interface the trainer (keel-train) drives.
//!
//! ```
//! use keel_nn::prelude::*;
//!
//! # fn main() -> keel_nn::Result<()> {
//! let mut model = Sequential::new();
//! model.add(Conv2D::new(32, (3, 3)).activation(Activation::Relu).input_shape([28, 28, 1]));
//! model.add(MaxPooling2D::new((2, 2)));
//! model.add(Conv2D::new(64, (3, 3)).activation(Activation::Relu));
//! model.add(MaxPooling2D::new((2, 2)));
//! model.add(Flatten::new());
//! model.add(Dense::new(128).activation(Activation::Relu));
//! model.add(Dense::new(10).activation(Activation::Softmax));
//! println!("{}", model.summary());
//! assert_eq!(model.count_params(), 225_034);
//! # Ok(())
//! # }
//! ```

pub mod activation;
pub mod constraints;
mod error;
pub mod functional;
pub mod initializers;
pub mod layer;
pub mod layers;
pub mod losses;
pub mod mixed_precision;
pub mod network;
pub mod regularizers;
pub mod sequential;
pub mod summary;
pub mod weights;

pub use activation::Activation;
pub use constraints::Constraint;
pub use error::{Error, Result};
pub use functional::{
    add, average, concatenate, dot, multiply, subtract, Input, LayerExt, LayerHandle, Model, SymbolicTensor,
};
pub use initializers::Initializer;
pub use layer::{CastCache, Ctx, IntoPair, IntoTriple, Layer, Weight};
pub use layers::*;
pub use losses::{Loss, LossFn, Reduction};
pub use network::{Head, NamedParam, Network};
pub use regularizers::Regularizer;
pub use sequential::Sequential;

/// Everything a model definition needs: `use keel_nn::prelude::*;`.
pub mod prelude {
    pub use crate::{
        add, average, concatenate, dot, multiply, subtract, Activation, ActivationLayer, ActivityRegularization, Add,
        AdditiveAttention, Attention, Average, AveragePooling1D, AveragePooling2D, BatchNormalization, Bidirectional,
        Concatenate, Constraint, Conv1D, Conv1DPadding, Conv1DTranspose, Conv2D, Conv2DTranspose, Cropping1D,
        Cropping2D, Ctx, Dense, DepthwiseConv2D, Dot, Dropout, Embedding, Flatten, GaussianDropout, GaussianNoise,
        GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalMaxPooling1D, GlobalMaxPooling2D, Initializer, Input,
        Interpolation, Layer, LayerExt, LayerNormalization, LeakyReLU, Loss, LossFn, Masking, MaxPooling1D,
        MaxPooling2D, Maximum, MergeMode, Minimum, Model, MultiHeadAttention, Multiply, Network, Normalization, PReLU,
        Permute, RandomBrightness, RandomContrast, RandomFlip, ReLU, Reduction, Regularizer, RepeatVector, Rescaling,
        Reshape, ScoreMode, SeparableConv2D, Sequential, SimpleRNN, Softmax, SpatialDropout1D, SpatialDropout2D,
        SpatialDropout3D, Subtract, TimeDistributed, UpSampling1D, UpSampling2D, ZeroPadding1D, ZeroPadding2D, ELU,
        GRU, LSTM,
    };
    pub use crate::{AlphaDropout, EinsumDense, GroupQueryAttention, Identity, IntoLayer, ModelLayer};
    pub use crate::{AutoContrast, RandomGrayscale, RandomHue, RandomSaturation, RandomShear, Solarization};
    pub use crate::{
        AveragePooling3D, Conv3D, Cropping3D, GlobalAveragePooling3D, GlobalMaxPooling3D, MaxPooling3D, UpSampling3D,
        ZeroPadding3D,
    };
    pub use crate::{CategoryEncoding, Discretization, Hashing, IntegerLookup, OutputMode};
    pub use crate::{
        CenterCrop, FillMode, ImageInterpolation, RandomCrop, RandomRotation, RandomTranslation, RandomZoom, Resizing,
    };
    pub use crate::{Conv3DTranspose, DepthwiseConv1D, SeparableConv1D};
    pub use crate::{ConvLSTM1D, ConvLSTM2D};
    pub use crate::{GroupNormalization, RMSNormalization, UnitNormalization};
    pub use keel_tensor::Padding;
}
