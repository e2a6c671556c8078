//! The layers, one per file.

mod activation_layer;
mod activity_regularization;
mod attention;
mod attention_heads;
mod augment;
mod average_pooling1d;
mod average_pooling2d;
mod average_pooling3d;
mod batch_normalization;
mod bidirectional;
mod categorical;
mod category_encoding;
mod center_crop;
mod concatenate;
mod conv1d;
mod conv1d_transpose;
mod conv2d;
mod conv2d_transpose;
mod conv3d;
mod conv3d_transpose;
mod conv_lstm;
mod cropping1d;
mod cropping2d;
mod cropping3d;
mod dense;
mod depthwise_conv1d;
mod depthwise_conv2d;
mod discretization;
mod dot;
mod dropout;
mod einsum_dense;
mod embedding;
mod flatten;
mod gaussian_noise;
mod global_pooling;
mod group_normalization;
mod group_query_attention;
mod gru;
mod hashing;
mod identity;
mod image_color;
mod image_resize;
mod integer_lookup;
mod layer_normalization;
mod lstm;
mod masking;
mod max_pooling1d;
mod max_pooling2d;
mod max_pooling3d;
mod merge;
mod model_layer;
mod multi_head_attention;
mod norm_common;
mod normalization;
mod permute;
mod pooling;
mod prelu;
mod random_affine;
mod random_color;
mod random_crop;
mod random_flip;
mod recurrent;
mod relu;
mod repeat_vector;
mod rescaling;
mod reshape;
mod resizing;
mod rms_normalization;
mod separable_conv1d;
mod separable_conv2d;
mod simple_rnn;
mod softmax;
mod spatial;
mod spatial_dropout;
mod time_distributed;
mod unit_normalization;
mod up_sampling1d;
mod up_sampling2d;
mod up_sampling3d;
mod zero_padding1d;
mod zero_padding2d;
mod zero_padding3d;

pub use activation_layer::ActivationLayer;
pub use activity_regularization::ActivityRegularization;
pub use attention::{
    AdditiveAttention, AdditiveAttentionConfig, Attention, AttentionConfig, AttentionWeights, ScoreMode,
};
pub use average_pooling1d::AveragePooling1D;
pub use average_pooling2d::AveragePooling2D;
pub use average_pooling3d::AveragePooling3D;
pub use batch_normalization::{BatchNormalization, BatchNormalizationConfig};
pub use bidirectional::{Bidirectional, MergeMode};
pub use categorical::OutputMode;
pub use category_encoding::CategoryEncoding;
pub use center_crop::CenterCrop;
pub use concatenate::Concatenate;
pub use conv1d::{Conv1D, Conv1DConfig, Conv1DPadding};
pub use conv1d_transpose::{Conv1DTranspose, Conv1DTransposeConfig};
pub use conv2d::{Conv2D, Conv2DConfig};
pub use conv2d_transpose::{Conv2DTranspose, Conv2DTransposeConfig};
pub use conv3d::{Conv3D, Conv3DConfig};
pub use conv3d_transpose::{Conv3DTranspose, Conv3DTransposeConfig};
pub use conv_lstm::{ConvLSTM, ConvLSTM1D, ConvLSTM2D, ConvLSTMConfig, ConvLSTMWindow, Window1D, Window2D};
pub use cropping1d::Cropping1D;
pub use cropping2d::Cropping2D;
pub use cropping3d::Cropping3D;
pub use dense::{Dense, DenseConfig};
pub use depthwise_conv1d::{DepthwiseConv1D, DepthwiseConv1DConfig};
pub use depthwise_conv2d::{DepthwiseConv2D, DepthwiseConv2DConfig};
pub use discretization::{Discretization, DiscretizationConfig};
pub use dot::{Dot, DotAxes};
pub use dropout::Dropout;
pub use einsum_dense::{EinsumDense, EinsumDenseConfig};
pub use embedding::{Embedding, EmbeddingConfig};
pub use flatten::Flatten;
pub use gaussian_noise::{AlphaDropout, GaussianDropout, GaussianNoise};
pub use global_pooling::{
    GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAveragePooling3D, GlobalMaxPooling1D, GlobalMaxPooling2D,
    GlobalMaxPooling3D,
};
pub use group_normalization::{GroupNormalization, GroupNormalizationConfig};
pub use group_query_attention::{GroupQueryAttention, GroupQueryAttentionConfig};
pub use gru::{GRUCell, GRU};
pub use hashing::Hashing;
pub use identity::Identity;
pub use image_color::{AutoContrast, RandomGrayscale, RandomHue, RandomSaturation, Solarization};
pub use integer_lookup::{IntegerLookup, IntegerLookupConfig};
pub use layer_normalization::{LayerNormalization, LayerNormalizationConfig};
pub use lstm::{LSTMCell, LSTM};
pub use masking::Masking;
pub use max_pooling1d::MaxPooling1D;
pub use max_pooling2d::MaxPooling2D;
pub use max_pooling3d::MaxPooling3D;
pub use merge::{Add, Average, Maximum, Minimum, Multiply, Subtract};
pub use model_layer::{IntoLayer, ModelLayer};
pub use multi_head_attention::{
    AttentionProjection, MultiHeadAttention, MultiHeadAttentionConfig, MultiHeadAttentionWeights,
};
pub use normalization::Normalization;
pub use permute::Permute;
pub use pooling::{Pool1DConfig, Pool2DConfig, Pool3DConfig};
pub use prelu::{PReLU, PReLUConfig};
pub use random_affine::{RandomRotation, RandomShear, RandomTranslation, RandomZoom};
pub use random_color::{Factor, RandomBrightness, RandomContrast};
pub use random_crop::RandomCrop;
pub use random_flip::RandomFlip;
pub use recurrent::{Cell, Recurrent, RecurrentConfig, RecurrentDropoutMasks, RecurrentWeights, StepWeights};
pub use relu::{LeakyReLU, ReLU, ELU};
pub use repeat_vector::RepeatVector;
pub use rescaling::Rescaling;
pub use reshape::Reshape;
pub use resizing::Resizing;
pub use rms_normalization::RMSNormalization;
pub use separable_conv1d::{SeparableConv1D, SeparableConv1DConfig};
pub use separable_conv2d::{SeparableConv2D, SeparableConv2DConfig};
pub use simple_rnn::{SimpleRNN, SimpleRNNCell};
pub use softmax::Softmax;
pub use spatial::{IntoMargins, Margins};
pub use spatial_dropout::{SpatialDropout1D, SpatialDropout2D, SpatialDropout3D};
pub use time_distributed::TimeDistributed;
pub use unit_normalization::UnitNormalization;
pub use up_sampling1d::UpSampling1D;
pub use up_sampling2d::{Interpolation, UpSampling2D};
pub use up_sampling3d::UpSampling3D;
pub use zero_padding1d::ZeroPadding1D;
pub use zero_padding2d::ZeroPadding2D;
pub use zero_padding3d::ZeroPadding3D;

/// A 1-D layer's size (`kernel_size`, `strides`, `dilation_rate`) as Keras writes it, a
/// one-element list `[3]`; read from that or a plain number.
pub(crate) mod one_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Either form Keras and keel have written.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrList {
        One(usize),
        List(Vec<usize>),
    }

    pub fn serialize<S: Serializer>(n: &usize, s: S) -> Result<S::Ok, S::Error> {
        [*n].serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        match OneOrList::deserialize(d)? {
            OneOrList::One(n) => Ok(n),
            OneOrList::List(v) if v.len() == 1 => Ok(v[0]),
            OneOrList::List(v) => {
                Err(serde::de::Error::custom(format!("a 1-D size is one number, got {} numbers", v.len())))
            }
        }
    }
}

/// Serialize `Padding` as Keras's lowercase `"valid"` / `"same"`.
pub(crate) mod padding_serde {
    use keel_tensor::Padding;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Padding, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match p {
            Padding::Valid => "valid",
            Padding::Same => "same",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Padding, D::Error> {
        let s = String::deserialize(d)?;
        match s.to_ascii_lowercase().as_str() {
            "valid" => Ok(Padding::Valid),
            "same" => Ok(Padding::Same),
            other => Err(serde::de::Error::custom(format!("unknown padding \"{other}\""))),
        }
    }
}
/// The sampling rules of the affine augmentation layers (from keel-tensor).
pub use keel_tensor::{FillMode, ImageInterpolation};
