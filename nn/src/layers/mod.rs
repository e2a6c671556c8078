//! The layers, one per file.

mod activation_layer;
mod average_pooling1d;
mod average_pooling2d;
mod batch_normalization;
mod bidirectional;
mod concatenate;
mod conv1d;
mod conv2d;
mod conv2d_transpose;
mod dense;
mod dropout;
mod embedding;
mod flatten;
mod global_pooling;
mod gru;
mod layer_normalization;
mod lstm;
mod max_pooling1d;
mod max_pooling2d;
mod merge;
mod normalization;
mod pooling;
mod recurrent;
mod rescaling;
mod reshape;
mod simple_rnn;

pub use activation_layer::ActivationLayer;
pub use average_pooling1d::AveragePooling1D;
pub use average_pooling2d::AveragePooling2D;
pub use batch_normalization::{BatchNormalization, BatchNormalizationConfig};
pub use bidirectional::{Bidirectional, MergeMode};
pub use concatenate::Concatenate;
pub use conv1d::{Conv1D, Conv1DConfig, Conv1DPadding};
pub use conv2d::{Conv2D, Conv2DConfig};
pub use conv2d_transpose::{Conv2DTranspose, Conv2DTransposeConfig};
pub use dense::{Dense, DenseConfig};
pub use dropout::Dropout;
pub use embedding::{Embedding, EmbeddingConfig};
pub use flatten::Flatten;
pub use global_pooling::{GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalMaxPooling1D, GlobalMaxPooling2D};
pub use gru::{GRUCell, GRU};
pub use layer_normalization::{LayerNormalization, LayerNormalizationConfig};
pub use lstm::{LSTMCell, LSTM};
pub use max_pooling1d::MaxPooling1D;
pub use max_pooling2d::MaxPooling2D;
pub use merge::{Add, Average, Maximum, Minimum, Multiply, Subtract};
pub use normalization::Normalization;
pub use pooling::{Pool1DConfig, Pool2DConfig};
pub use recurrent::{Cell, Recurrent, RecurrentConfig, RecurrentWeights, StepWeights};
pub use rescaling::Rescaling;
pub use reshape::Reshape;
pub use simple_rnn::{SimpleRNN, SimpleRNNCell};

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
