//! Rebuilding models from their JSON config: a registry from Keras class
//! names to layer constructors, and [`FromConfig`] for networks.
//!
//! Built in: Dense, Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose, Conv3D, Conv3DTranspose, DepthwiseConv1D,
//! DepthwiseConv2D, SeparableConv1D, SeparableConv2D,
//! MaxPooling1D/2D/3D, AveragePooling1D/2D/3D, GlobalAveragePooling1D/2D/3D, GlobalMaxPooling1D/2D/3D, Flatten,
//! Reshape, Rescaling, Normalization, CategoryEncoding, Discretization, IntegerLookup, Hashing, Dropout,
//! ZeroPadding1D/2D/3D, Cropping1D/2D/3D, UpSampling1D/2D/3D, RepeatVector, Permute,
//! Masking, SpatialDropout1D/2D/3D, GaussianNoise, GaussianDropout, AlphaDropout, Identity, EinsumDense, RandomFlip, RandomContrast, RandomBrightness,
//! RandomRotation, RandomZoom, RandomTranslation, RandomShear, RandomGrayscale, Solarization, AutoContrast,
//! RandomSaturation, RandomHue, Resizing, CenterCrop, RandomCrop,
//! BatchNormalization, LayerNormalization, GroupNormalization, UnitNormalization, RMSNormalization, Activation, ReLU, LeakyReLU, PReLU, ELU, Softmax, Embedding,
//! SimpleRNN, LSTM, GRU, ConvLSTM1D/2D, Bidirectional, TimeDistributed (around any of these), nested Sequential and functional models, the merges (Add, Subtract,
//! Multiply, Average, Maximum, Minimum), Concatenate, Dot, Attention, AdditiveAttention, MultiHeadAttention and GroupQueryAttention. [`FromConfig`] rebuilds a
//! [`keel_nn::Sequential`] and a functional [`keel_nn::Model`] (shared layers included). [`register_layer`]
//! adds a custom class (Keras's `custom_objects`).

use crate::{Error, Result};
use keel_nn::mixed_precision::DTypePolicy;
use keel_nn::{
    Activation, ActivationLayer, ActivityRegularization, Add, AveragePooling1D, AveragePooling2D, BatchNormalization,
    BatchNormalizationConfig, Bidirectional, Cell, Concatenate, Conv1D, Conv1DConfig, Conv2D, Conv2DConfig,
    Conv2DTranspose, Conv2DTransposeConfig, Cropping1D, Cropping2D, Dense, DenseConfig, DepthwiseConv2D,
    DepthwiseConv2DConfig, Dropout, Embedding, EmbeddingConfig, Factor, Flatten, GRUCell, GlobalAveragePooling1D,
    GlobalAveragePooling2D, GlobalMaxPooling1D, GlobalMaxPooling2D, Input, Interpolation, LSTMCell, Layer, LayerHandle,
    LayerNormalization, LayerNormalizationConfig, Margins, MaxPooling1D, MaxPooling2D, MergeMode, MultiHeadAttention,
    MultiHeadAttentionConfig, Network, PReLUConfig, Permute, Pool1DConfig, Pool2DConfig, Recurrent, RecurrentConfig,
    RepeatVector, Reshape, SeparableConv2D, SeparableConv2DConfig, SimpleRNNCell, SymbolicTensor, UpSampling1D,
    UpSampling2D, ZeroPadding1D, ZeroPadding2D,
};
use keel_nn::{FillMode, ImageInterpolation};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

/// Builds a layer (unnamed; the caller names it) from its Keras config.
pub type LayerFactory = fn(&Value) -> Result<Box<dyn Layer>>;

fn custom() -> &'static RwLock<HashMap<String, LayerFactory>> {
    static CUSTOM: OnceLock<RwLock<HashMap<String, LayerFactory>>> = OnceLock::new();
    CUSTOM.get_or_init(|| RwLock::new(HashMap::new()))
}

/// Make `class_name` loadable (a custom layer; replaces an earlier registration of the name).
pub fn register_layer(class_name: &str, factory: LayerFactory) {
    let mut map = custom().write().unwrap_or_else(|p| p.into_inner()); // ok: the map is replaced entry by entry
    map.insert(class_name.to_string(), factory);
}

fn field<T: DeserializeOwned>(class: &str, cfg: &Value) -> Result<T> {
    serde_json::from_value(cfg.clone()).map_err(|e| Error::invalid("from_config", format!("{class} config: {e}")))
}

/// The model's `"dtype_policy"` (absent in files from before mixed precision: float32).
fn policy(inner: &Value) -> Result<DTypePolicy> {
    match inner.get("dtype_policy").and_then(Value::as_str) {
        Some(name) => Ok(DTypePolicy::new(name)?),
        None => Ok(DTypePolicy::Float32),
    }
}

fn get<T: DeserializeOwned>(class: &str, cfg: &Value, key: &str) -> Result<T> {
    let v = cfg.get(key).ok_or_else(|| Error::invalid("from_config", format!("{class} config has no \"{key}\"")))?;
    serde_json::from_value(v.clone()).map_err(|e| Error::invalid("from_config", format!("{class} \"{key}\": {e}")))
}

/// `cfg[key]`, or `default` when the config has no `key` (a Keras default).
fn get_or<T: DeserializeOwned>(class: &str, cfg: &Value, key: &str, default: T) -> Result<T> {
    match cfg.get(key) {
        Some(_) => get(class, cfg, key),
        None => Ok(default),
    }
}

/// The `key` (`"padding"` / `"cropping"`) of a spatial layer's config in any of Keras's forms
/// (see [`Margins`]), refusing a `channels_first` config.
fn margins<const N: usize>(class: &str, cfg: &Value, key: &str) -> Result<Margins<N>> {
    get(class, cfg, key)
}

/// Keras's `data_format` of a built-in layer: keel's layout, `channels_last`, or absent
/// (every built-in layer is channels-last; a `channels_first` config would run on the wrong
/// axes, so it is refused).
fn channels_last(class: &str, cfg: &Value) -> Result<()> {
    match cfg.get("data_format").and_then(Value::as_str) {
        None | Some("channels_last") => Ok(()),
        Some(other) => Err(Error::invalid(
            "from_config",
            format!("{class} with data_format \"{other}\" is not supported (keel is channels_last)"),
        )),
    }
}

/// The constraint keys each built-in layer class applies (Keras's names); a class not
/// listed applies none. Bidirectional applies its wrapped layer's (checked on that config).
const CONSTRAINED: &[(&[&str], &[&str])] = &[
    (
        &[
            "Dense",
            "EinsumDense",
            "Conv1D",
            "Conv2D",
            "Conv3D",
            "Conv1DTranspose",
            "Conv2DTranspose",
            "Conv3DTranspose",
            "MultiHeadAttention",
            "GroupQueryAttention",
        ],
        &["kernel_constraint", "bias_constraint"],
    ),
    (&["Embedding"], &["embeddings_constraint"]),
    (&["DepthwiseConv1D", "DepthwiseConv2D"], &["depthwise_constraint", "bias_constraint"]),
    (&["SeparableConv1D", "SeparableConv2D"], &["depthwise_constraint", "pointwise_constraint", "bias_constraint"]),
    (
        &["SimpleRNN", "LSTM", "GRU", "ConvLSTM1D", "ConvLSTM2D"],
        &["kernel_constraint", "recurrent_constraint", "bias_constraint"],
    ),
    (&["BatchNormalization", "LayerNormalization", "GroupNormalization"], &["beta_constraint", "gamma_constraint"]),
    (&["PReLU"], &["alpha_constraint"]),
];

/// The constraint keys the built-in layer class `class_name` applies ([`CONSTRAINED`]).
fn constraint_keys(class_name: &str) -> &'static [&'static str] {
    CONSTRAINED.iter().find(|(classes, _)| classes.contains(&class_name)).map_or(&[], |(_, keys)| keys)
}

/// The Keras constraint classes keel implements ([`keel_nn::Constraint`]).
const CONSTRAINT_CLASSES: &[&str] = &["MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm"];

/// The built-in layers that apply an `activity_regularizer` (read from their config).
const ACTIVITY_REGULARIZED: &[&str] = &[
    "Dense",
    "EinsumDense",
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Conv3DTranspose",
    "DepthwiseConv1D",
    "DepthwiseConv2D",
    "SeparableConv1D",
    "SeparableConv2D",
    "Embedding",
    "SimpleRNN",
    "LSTM",
    "GRU",
    "ConvLSTM1D",
    "ConvLSTM2D",
];

/// The layer classes that apply Keras's `noise_shape` (the dropouts that take one).
const NOISE_SHAPED: &[&str] = &["Dropout", "AlphaDropout"];

/// The Keras regularizer classes keel implements ([`keel_nn::Regularizer`]).
const REGULARIZER_CLASSES: &[&str] = &["L1", "L2", "L1L2"];

/// Whether the built-in layer `class_name` applies the setting `key` = `v` (a supported
/// constraint class on a weight that takes one, or a supported regularizer class as the
/// `activity_regularizer` of a layer that applies one).
fn applied(class_name: &str, key: &str, v: &Value) -> bool {
    if key == "noise_shape" {
        return NOISE_SHAPED.contains(&class_name);
    }
    if key == "activity_regularizer" {
        return ACTIVITY_REGULARIZED.contains(&class_name)
            && v.get("class_name").and_then(Value::as_str).is_some_and(|c| REGULARIZER_CLASSES.contains(&c));
    }
    constraint_keys(class_name).contains(&key)
        && v.get("class_name").and_then(Value::as_str).is_some_and(|c| CONSTRAINT_CLASSES.contains(&c))
}

/// The settings of a Keras config of layer class `class_name` that keel reads but does not
/// apply: an `activity_regularizer` of a layer that does not apply one or of a regularizer
/// class keel lacks (keel applies `L1`, `L2` and `L1L2` on Dense, EinsumDense, the
/// convolutions, Embedding and the recurrent layers), a `noise_shape` of a layer other than
/// Dropout and AlphaDropout, and weight constraints (`kernel_constraint`, ...) of a class keel lacks or on a
/// layer that does not apply them (keel applies `MaxNorm`, `MinMaxNorm`, `NonNeg` and
/// `UnitNorm` on every weight of Dense, EinsumDense, the Conv, Depthwise and Separable
/// convolutions, Embedding, SimpleRNN/LSTM/GRU, ConvLSTM1D/2D, Batch-, Layer- and
/// GroupNormalization, PReLU, MultiHeadAttention and GroupQueryAttention, under Keras's keys: `kernel_constraint`,
/// `depthwise_constraint`, `gamma_constraint`, ...). They change training only (the saved
/// weights already obey the constraints), so such a model loads, with a warning naming them,
/// rather than being refused; `fit` then trains without them (a constraint or regularizer
/// class keel lacks is dropped on load).
pub fn unapplied_settings(class_name: &str, cfg: &Value) -> Vec<String> {
    let Some(map) = cfg.as_object() else { return Vec::new() };
    map.iter()
        .filter(|(k, v)| {
            (k.ends_with("_constraint") || k.as_str() == "activity_regularizer" || k.as_str() == "noise_shape")
                && !v.is_null()
        })
        .filter(|(k, v)| !applied(class_name, k, v))
        .map(|(k, v)| match v.get("class_name").and_then(Value::as_str) {
            Some(class) => format!("{k} ({class})"),
            None => k.clone(),
        })
        .collect()
}

/// The config `cfg` of built-in layer class `class_name` as keel reads it: the settings it
/// does not apply ([`unapplied_settings`]) are reported on stderr, and a constraint of a
/// class keel lacks on a key the layer applies is dropped (set to `null`: its config would
/// not parse as a keel `Constraint`).
fn applied_settings(class_name: &str, cfg: &Value) -> Value {
    let unapplied = unapplied_settings(class_name, cfg);
    if !unapplied.is_empty() {
        let name = cfg.get("name").and_then(Value::as_str).unwrap_or("");
        eprintln!(
            "keel: warning: {class_name} \"{name}\" sets {}, which keel does not apply: predictions are \
             unchanged, but fit trains without them",
            unapplied.join(", ")
        );
    }
    let mut cfg = cfg.clone();
    if let Some(map) = cfg.as_object_mut() {
        let activity: &[&str] =
            if ACTIVITY_REGULARIZED.contains(&class_name) { &["activity_regularizer"] } else { &[] };
        for &k in constraint_keys(class_name).iter().chain(activity) {
            if map.get(k).is_some_and(|v| !v.is_null() && !applied(class_name, k, v)) {
                map.insert(k.to_string(), Value::Null);
            }
        }
    }
    cfg
}

/// Keras 3.15's banded mask (`sliding_window`) and output gate (`use_gate`) of
/// MultiHeadAttention and GroupQueryAttention change the attention: refused, not dropped.
fn no_gate_or_window(class_name: &str, cfg: &Value) -> Result<()> {
    let unsupported = [
        ("sliding_window", cfg.get("sliding_window").is_some_and(|v| !v.is_null())),
        ("use_gate", cfg.get("use_gate").and_then(Value::as_bool) == Some(true)),
    ];
    match unsupported.iter().find(|(_, on)| *on) {
        Some((key, _)) => {
            Err(Error::invalid("from_config", format!("{class_name} with {key} = {} is not supported", cfg[*key])))
        }
        None => Ok(()),
    }
}

/// Build a layer of Keras class `class_name` from its config (including its `name`).
///
/// Settings keel does not apply ([`unapplied_settings`]) are reported on stderr.
pub fn layer_from_config(class_name: &str, cfg: &Value) -> Result<Box<dyn Layer>> {
    let factory = custom().read().unwrap_or_else(|p| p.into_inner()).get(class_name).copied();
    let checked;
    let cfg = if factory.is_none() {
        channels_last(class_name, cfg)?;
        checked = applied_settings(class_name, cfg);
        &checked
    } else {
        cfg
    };
    let mut layer: Box<dyn Layer> = match (factory, class_name) {
        (Some(f), _) => f(cfg)?,
        (None, "Dense") => Box::new(Dense::from_config(field::<DenseConfig>(class_name, cfg)?)),
        (None, "Conv2D") => Box::new(Conv2D::from_config(field::<Conv2DConfig>(class_name, cfg)?)),
        (None, "Conv2DTranspose") => {
            Box::new(Conv2DTranspose::from_config(field::<Conv2DTransposeConfig>(class_name, cfg)?))
        }
        (None, "DepthwiseConv2D") => {
            Box::new(DepthwiseConv2D::from_config(field::<DepthwiseConv2DConfig>(class_name, cfg)?))
        }
        (None, "DepthwiseConv1D") => {
            Box::new(keel_nn::DepthwiseConv1D::from_config(field::<keel_nn::DepthwiseConv1DConfig>(class_name, cfg)?))
        }
        (None, "SeparableConv1D") => {
            Box::new(keel_nn::SeparableConv1D::from_config(field::<keel_nn::SeparableConv1DConfig>(class_name, cfg)?))
        }
        (None, "SeparableConv2D") => {
            Box::new(SeparableConv2D::from_config(field::<SeparableConv2DConfig>(class_name, cfg)?))
        }
        (None, "MaxPooling2D") => Box::new(MaxPooling2D::from_config(field::<Pool2DConfig>(class_name, cfg)?)),
        (None, "AveragePooling2D") => Box::new(AveragePooling2D::from_config(field::<Pool2DConfig>(class_name, cfg)?)),
        (None, "Conv3D") => {
            only_one_group(class_name, cfg)?;
            Box::new(keel_nn::Conv3D::from_config(field::<keel_nn::Conv3DConfig>(class_name, cfg)?))
        }
        (None, "Conv3DTranspose") => {
            Box::new(keel_nn::Conv3DTranspose::from_config(field::<keel_nn::Conv3DTransposeConfig>(class_name, cfg)?))
        }
        (None, "MaxPooling3D") => {
            Box::new(keel_nn::MaxPooling3D::from_config(field::<keel_nn::Pool3DConfig>(class_name, cfg)?))
        }
        (None, "AveragePooling3D") => {
            Box::new(keel_nn::AveragePooling3D::from_config(field::<keel_nn::Pool3DConfig>(class_name, cfg)?))
        }
        (None, "Conv1D") => Box::new(Conv1D::from_config(field::<Conv1DConfig>(class_name, cfg)?)),
        (None, "Conv1DTranspose") => {
            Box::new(keel_nn::Conv1DTranspose::from_config(field::<keel_nn::Conv1DTransposeConfig>(class_name, cfg)?))
        }
        (None, "MaxPooling1D") => Box::new(MaxPooling1D::from_config(field::<Pool1DConfig>(class_name, cfg)?)),
        (None, "AveragePooling1D") => Box::new(AveragePooling1D::from_config(field::<Pool1DConfig>(class_name, cfg)?)),
        (None, "GlobalAveragePooling1D") => {
            Box::new(GlobalAveragePooling1D::new().keepdims(keepdims(class_name, cfg)?))
        }
        (None, "GlobalAveragePooling2D") => {
            Box::new(GlobalAveragePooling2D::new().keepdims(keepdims(class_name, cfg)?))
        }
        (None, "GlobalMaxPooling1D") => Box::new(GlobalMaxPooling1D::new().keepdims(keepdims(class_name, cfg)?)),
        (None, "GlobalMaxPooling2D") => Box::new(GlobalMaxPooling2D::new().keepdims(keepdims(class_name, cfg)?)),
        (None, "GlobalAveragePooling3D") => {
            Box::new(keel_nn::GlobalAveragePooling3D::new().keepdims(keepdims(class_name, cfg)?))
        }
        (None, "GlobalMaxPooling3D") => {
            Box::new(keel_nn::GlobalMaxPooling3D::new().keepdims(keepdims(class_name, cfg)?))
        }
        (None, "Flatten") => Box::new(Flatten::new()),
        (None, "Normalization") => {
            if !axes_in(cfg, "axis", &[-1]) {
                return Err(Error::invalid(
                    "from_config",
                    "Normalization over another axis than the last (-1) is not supported",
                ));
            }
            let invert = get_or(class_name, cfg, "invert", false)?;
            Box::new(keel_nn::Normalization::new().invert(invert))
        }
        (None, "Rescaling") => Box::new(
            keel_nn::Rescaling::new(get::<f64>(class_name, cfg, "scale")?)
                .offset(get_or(class_name, cfg, "offset", 0.0)?),
        ),
        (None, "CategoryEncoding") => {
            refuse_sparse(class_name, cfg)?;
            let mode = get_or(class_name, cfg, "output_mode", keel_nn::OutputMode::MultiHot)?;
            Box::new(keel_nn::CategoryEncoding::new(get::<usize>(class_name, cfg, "num_tokens")?).output_mode(mode))
        }
        (None, "Discretization") => {
            refuse_sparse(class_name, cfg)?;
            Box::new(keel_nn::Discretization::from_config(field::<keel_nn::DiscretizationConfig>(class_name, cfg)?))
        }
        (None, "IntegerLookup") => {
            refuse_sparse(class_name, cfg)?;
            Box::new(keel_nn::IntegerLookup::from_config(field::<keel_nn::IntegerLookupConfig>(class_name, cfg)?)?)
        }
        (None, "Hashing") => {
            refuse_sparse(class_name, cfg)?;
            Box::new(hashing(cfg)?)
        }
        (None, "Reshape") => Box::new(Reshape::new(get::<Vec<isize>>(class_name, cfg, "target_shape")?)),
        (None, "ActivityRegularization") => Box::new(ActivityRegularization::new(
            get_or::<f64>(class_name, cfg, "l1", 0.0)?,
            get_or::<f64>(class_name, cfg, "l2", 0.0)?,
        )),
        (None, "Dropout") => {
            let layer = Dropout::new(get::<f64>(class_name, cfg, "rate")?);
            Box::new(match noise_shape(class_name, cfg)? {
                Some(noise) => layer.noise_shape(noise),
                None => layer,
            })
        }
        (None, "Masking") => Box::new(keel_nn::Masking::new(get_or(class_name, cfg, "mask_value", 0.0)?)),
        (None, "ZeroPadding1D") => Box::new(ZeroPadding1D::new(margins::<1>(class_name, cfg, "padding")?)),
        (None, "ZeroPadding2D") => Box::new(ZeroPadding2D::new(margins::<2>(class_name, cfg, "padding")?)),
        (None, "Cropping1D") => Box::new(Cropping1D::new(margins::<1>(class_name, cfg, "cropping")?)),
        (None, "Cropping2D") => Box::new(Cropping2D::new(margins::<2>(class_name, cfg, "cropping")?)),
        (None, "ZeroPadding3D") => Box::new(keel_nn::ZeroPadding3D::new(margins::<3>(class_name, cfg, "padding")?)),
        (None, "Cropping3D") => Box::new(keel_nn::Cropping3D::new(margins::<3>(class_name, cfg, "cropping")?)),
        (None, "UpSampling3D") => {
            Box::new(keel_nn::UpSampling3D::new(get::<(usize, usize, usize)>(class_name, cfg, "size")?))
        }
        (None, "UpSampling1D") => Box::new(UpSampling1D::new(get::<usize>(class_name, cfg, "size")?)),
        (None, "UpSampling2D") => {
            let interpolation = match cfg.get("interpolation") {
                None => Interpolation::Nearest,
                Some(_) => Interpolation::from_name(&get::<String>(class_name, cfg, "interpolation")?)?,
            };
            Box::new(UpSampling2D::new(get::<(usize, usize)>(class_name, cfg, "size")?).interpolation(interpolation))
        }
        (None, "RepeatVector") => Box::new(RepeatVector::new(get::<usize>(class_name, cfg, "n")?)),
        (None, "Permute") => Box::new(Permute::new(get::<Vec<usize>>(class_name, cfg, "dims")?)),
        (None, "SpatialDropout1D") => Box::new(keel_nn::SpatialDropout1D::new(get::<f64>(class_name, cfg, "rate")?)),
        (None, "SpatialDropout2D") => Box::new(keel_nn::SpatialDropout2D::new(get::<f64>(class_name, cfg, "rate")?)),
        (None, "SpatialDropout3D") => Box::new(keel_nn::SpatialDropout3D::new(get::<f64>(class_name, cfg, "rate")?)),
        (None, "GaussianNoise") => Box::new(keel_nn::GaussianNoise::new(get::<f64>(class_name, cfg, "stddev")?)),
        (None, "GaussianDropout") => Box::new(keel_nn::GaussianDropout::new(get::<f64>(class_name, cfg, "rate")?)),
        (None, "AlphaDropout") => {
            let layer = keel_nn::AlphaDropout::new(get::<f64>(class_name, cfg, "rate")?);
            Box::new(match noise_shape(class_name, cfg)? {
                Some(noise) => layer.noise_shape(noise),
                None => layer,
            })
        }
        (None, "Identity") => Box::new(keel_nn::Identity::new()),
        (None, "RandomFlip") => Box::new(match cfg.get("mode") {
            Some(_) => keel_nn::RandomFlip::new(get::<String>(class_name, cfg, "mode")?),
            None => keel_nn::RandomFlip::default(),
        }),
        (None, "RandomContrast") => {
            let (low, high) = value_range(class_name, cfg)?;
            Box::new(keel_nn::RandomContrast::new(get::<Factor>(class_name, cfg, "factor")?).value_range(low, high))
        }
        (None, "RandomBrightness") => {
            let (low, high) = value_range(class_name, cfg)?;
            Box::new(keel_nn::RandomBrightness::new(get::<Factor>(class_name, cfg, "factor")?).value_range(low, high))
        }
        (None, "RandomRotation") => {
            channels_last(class_name, cfg)?;
            let l = keel_nn::RandomRotation::new(get::<Factor>(class_name, cfg, "factor")?);
            let (fill_mode, interpolation, seed, fill_value) = affine_sampling(class_name, cfg)?;
            Box::new(l.fill_mode(fill_mode).interpolation(interpolation).seed(seed).fill_value(fill_value))
        }
        (None, "RandomZoom") => {
            channels_last(class_name, cfg)?;
            let width = get_or::<Option<Factor>>(class_name, cfg, "width_factor", None)?;
            let l = keel_nn::RandomZoom::new(get::<Factor>(class_name, cfg, "height_factor")?).width_factor(width);
            let (fill_mode, interpolation, seed, fill_value) = affine_sampling(class_name, cfg)?;
            Box::new(l.fill_mode(fill_mode).interpolation(interpolation).seed(seed).fill_value(fill_value))
        }
        (None, "RandomTranslation") => {
            channels_last(class_name, cfg)?;
            let l = keel_nn::RandomTranslation::new(
                get::<Factor>(class_name, cfg, "height_factor")?,
                get::<Factor>(class_name, cfg, "width_factor")?,
            );
            let (fill_mode, interpolation, seed, fill_value) = affine_sampling(class_name, cfg)?;
            Box::new(l.fill_mode(fill_mode).interpolation(interpolation).seed(seed).fill_value(fill_value))
        }
        (None, "RandomShear") => {
            channels_last(class_name, cfg)?;
            let l = keel_nn::RandomShear::new(
                get_or::<Factor>(class_name, cfg, "x_factor", Factor::Single(0.0))?,
                get_or::<Factor>(class_name, cfg, "y_factor", Factor::Single(0.0))?,
            );
            let (fill_mode, interpolation, seed, fill_value) = affine_sampling(class_name, cfg)?;
            Box::new(l.fill_mode(fill_mode).interpolation(interpolation).seed(seed).fill_value(fill_value))
        }
        (None, "RandomGrayscale") => {
            channels_last(class_name, cfg)?;
            Box::new(
                keel_nn::RandomGrayscale::new(get_or(class_name, cfg, "factor", 0.5)?)
                    .seed(get_or::<Option<u64>>(class_name, cfg, "seed", None)?),
            )
        }
        (None, "Solarization") => {
            let (low, high) = value_range(class_name, cfg)?;
            Box::new(
                keel_nn::Solarization::new(
                    get_or::<Factor>(class_name, cfg, "addition_factor", Factor::Single(0.0))?,
                    get_or::<Factor>(class_name, cfg, "threshold_factor", Factor::Single(0.0))?,
                )
                .value_range(low, high)
                .seed(get_or::<Option<u64>>(class_name, cfg, "seed", None)?),
            )
        }
        (None, "RandomSaturation") => {
            let (factor, (low, high), seed) = hsv_settings(class_name, cfg)?;
            Box::new(keel_nn::RandomSaturation::new(factor).value_range(low, high).seed(seed))
        }
        (None, "RandomHue") => {
            let (factor, (low, high), seed) = hsv_settings(class_name, cfg)?;
            Box::new(keel_nn::RandomHue::new(factor).value_range(low, high).seed(seed))
        }
        (None, "AutoContrast") => {
            let (low, high) = value_range(class_name, cfg)?;
            Box::new(keel_nn::AutoContrast::new().value_range(low, high))
        }
        (None, "Resizing") => Box::new(resizing(cfg)?),
        (None, "CenterCrop") => Box::new(keel_nn::CenterCrop::new(
            get::<usize>(class_name, cfg, "height")?,
            get::<usize>(class_name, cfg, "width")?,
        )),
        (None, "RandomCrop") => Box::new(
            keel_nn::RandomCrop::new(get::<usize>(class_name, cfg, "height")?, get::<usize>(class_name, cfg, "width")?)
                .seed(get_or::<Option<u64>>(class_name, cfg, "seed", None)?),
        ),
        (None, "BatchNormalization") => {
            Box::new(BatchNormalization::from_config(field::<BatchNormalizationConfig>(class_name, cfg)?))
        }
        (None, "LayerNormalization") => {
            // Keras deprecated rms_scaling (it scales by the variance, not the mean square)
            if cfg.get("rms_scaling").and_then(Value::as_bool) == Some(true) {
                return Err(Error::invalid(
                    "from_config",
                    "LayerNormalization with rms_scaling=true is not supported (Keras deprecated it: it scales by \
                     the variance); use RMSNormalization",
                ));
            }
            Box::new(
                LayerNormalization::from_config(field::<LayerNormalizationConfig>(class_name, cfg)?)
                    .over(axes(class_name, cfg)?),
            )
        }
        (None, "RMSNormalization") => Box::new(
            keel_nn::RMSNormalization::new()
                .over(axes(class_name, cfg)?)
                .epsilon(get_or(class_name, cfg, "epsilon", 1e-6)?),
        ),
        (None, "GroupNormalization") => {
            if !axes_in(cfg, "axis", &[-1]) {
                return Err(Error::invalid(
                    "from_config",
                    format!(
                        "GroupNormalization over axis {} is not supported (only the channels-last axis, -1)",
                        cfg["axis"]
                    ),
                ));
            }
            Box::new(keel_nn::GroupNormalization::from_config(field::<keel_nn::GroupNormalizationConfig>(
                class_name, cfg,
            )?))
        }
        (None, "Embedding") => Box::new(Embedding::from_config(field::<EmbeddingConfig>(class_name, cfg)?)),
        (None, "SimpleRNN") => Box::new(recurrent::<SimpleRNNCell>(class_name, cfg)?),
        (None, "LSTM") => Box::new(recurrent::<LSTMCell>(class_name, cfg)?),
        (None, "GRU") => Box::new(recurrent::<GRUCell>(class_name, cfg)?),
        (None, "ConvLSTM2D") => Box::new(conv_lstm::<keel_nn::Window2D>(class_name, cfg)?),
        (None, "ConvLSTM1D") => Box::new(conv_lstm::<keel_nn::Window1D>(class_name, cfg)?),
        (None, "Bidirectional") => bidirectional(cfg)?,
        (None, "Add") => Box::new(Add::new()),
        (None, "Subtract") => Box::new(keel_nn::Subtract::new()),
        (None, "Multiply") => Box::new(keel_nn::Multiply::new()),
        (None, "Average") => Box::new(keel_nn::Average::new()),
        (None, "Maximum") => Box::new(keel_nn::Maximum::new()),
        (None, "Minimum") => Box::new(keel_nn::Minimum::new()),
        (None, "Concatenate") => Box::new(Concatenate::new(get::<isize>(class_name, cfg, "axis")?)),
        (None, "Dot") => {
            Box::new(keel_nn::Dot::new(get::<keel_nn::DotAxes>(class_name, cfg, "axes")?).normalize(get_or(
                class_name,
                cfg,
                "normalize",
                false,
            )?))
        }
        (None, "Attention") => {
            Box::new(keel_nn::Attention::from_config(field::<keel_nn::AttentionConfig>(class_name, cfg)?))
        }
        (None, "AdditiveAttention") => Box::new(keel_nn::AdditiveAttention::from_config(field::<
            keel_nn::AdditiveAttentionConfig,
        >(class_name, cfg)?)),
        (None, "MultiHeadAttention") => {
            // attention over the sequence axis of [B, T, dim] only: other axes are an error, not ignored
            if !cfg["attention_axes"].is_null() && !axes_in(cfg, "attention_axes", &[1, -2]) {
                return Err(Error::invalid(
                    "from_config",
                    format!(
                        "MultiHeadAttention over attention_axes {} is not supported (only the sequence axis of \
                         [batch, timesteps, features] inputs)",
                        cfg["attention_axes"]
                    ),
                ));
            }
            no_gate_or_window(class_name, cfg)?;
            Box::new(MultiHeadAttention::from_config(field::<MultiHeadAttentionConfig>(class_name, cfg)?))
        }
        (None, "GroupQueryAttention") => {
            no_gate_or_window(class_name, cfg)?;
            Box::new(keel_nn::GroupQueryAttention::from_config(field::<keel_nn::GroupQueryAttentionConfig>(
                class_name, cfg,
            )?))
        }
        (None, "Activation") => Box::new(ActivationLayer::new(get::<Activation>(class_name, cfg, "activation")?)),
        (None, "ReLU") => {
            let relu = keel_nn::ReLU::new()
                .negative_slope(get_or(class_name, cfg, "negative_slope", 0.0)?)
                .threshold(get_or(class_name, cfg, "threshold", 0.0)?);
            match get_or::<Option<f64>>(class_name, cfg, "max_value", None)? {
                Some(m) => Box::new(relu.max_value(m)),
                None => Box::new(relu),
            }
        }
        (None, "LeakyReLU") => {
            // Keras 2 wrote the slope as "alpha"
            let key = if cfg.get("negative_slope").is_none() && cfg.get("alpha").is_some() {
                "alpha"
            } else {
                "negative_slope"
            };
            let default = keel_nn::LeakyReLU::default().negative_slope();
            Box::new(keel_nn::LeakyReLU::new(get_or(class_name, cfg, key, default)?))
        }
        (None, "PReLU") => Box::new(keel_nn::PReLU::from_config(field::<PReLUConfig>(class_name, cfg)?)),
        (None, "ELU") => {
            Box::new(keel_nn::ELU::new(get_or(class_name, cfg, "alpha", keel_nn::ELU::default().alpha())?))
        }
        (None, "Softmax") => Box::new(keel_nn::Softmax::over(axes(class_name, cfg)?)),
        (None, "UnitNormalization") => Box::new(keel_nn::UnitNormalization::over(axes(class_name, cfg)?)),
        (None, "TimeDistributed") => Box::new(time_distributed(cfg)?),
        (None, "EinsumDense") => {
            Box::new(keel_nn::EinsumDense::from_config(field::<keel_nn::EinsumDenseConfig>(class_name, cfg)?))
        }
        // a model used as a layer: its config is the model's own, under the layer's name
        (None, "Sequential") => Box::new(keel_nn::ModelLayer::new(keel_nn::Sequential::from_config(
            &serde_json::json!({ "class_name": "Sequential", "config": cfg }),
        )?)),
        (None, "Functional" | "Model") => Box::new(keel_nn::ModelLayer::new(keel_nn::Model::from_config(
            &serde_json::json!({ "class_name": "Functional", "config": cfg }),
        )?)),
        (None, other) => {
            return Err(Error::invalid(
                "from_config",
                format!(
                    "unknown layer class \"{other}\": a custom layer must be registered before loading, with \
                     keel_train::register_layer(\"{other}\", constructor)"
                ),
            ))
        }
    };
    if let Some(name) = cfg.get("name").and_then(Value::as_str) {
        layer.set_name(name.to_string());
    }
    Ok(layer)
}

/// Keras's `Hashing` config: `salt` null, one number (`[n, n]`) or two; `mask_value` an integer
/// or null (keel hashes integers only).
fn hashing(cfg: &Value) -> Result<keel_nn::Hashing> {
    const CLASS: &str = "Hashing";
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Salt {
        One(u64),
        Two([u64; 2]),
    }
    let salt = get_or::<Option<Salt>>(CLASS, cfg, "salt", None)?.map(|s| match s {
        Salt::One(n) => [n, n],
        Salt::Two(p) => p,
    });
    let mode = get_or(CLASS, cfg, "output_mode", keel_nn::OutputMode::Int)?;
    Ok(keel_nn::Hashing::new(get(CLASS, cfg, "num_bins")?)
        .mask_value(get_or(CLASS, cfg, "mask_value", None)?)
        .salt(salt)
        .output_mode(mode))
}

/// A preprocessing layer's Keras `"sparse": true` (keel has no sparse tensors) is refused.
fn refuse_sparse(class: &str, cfg: &Value) -> Result<()> {
    if get_or(class, cfg, "sparse", false)? {
        return Err(Error::invalid(
            "from_config",
            format!("{class} with sparse = true is not supported (keel has no sparse tensors)"),
        ));
    }
    Ok(())
}

/// An image layer's `"value_range"` (Keras's default `[0, 255]` when absent).
fn value_range(class: &str, cfg: &Value) -> Result<(f64, f64)> {
    match cfg.get("value_range") {
        Some(_) => get(class, cfg, "value_range"),
        None => Ok((0.0, 255.0)),
    }
}

/// The sampling keys of RandomRotation / RandomZoom / RandomTranslation with Keras's defaults:
/// `fill_mode` ("reflect"), `interpolation` ("bilinear"), `seed` (null), `fill_value` (0).
fn affine_sampling(class: &str, cfg: &Value) -> Result<(FillMode, ImageInterpolation, Option<u64>, f64)> {
    let bad = |e: keel_tensor::Error| Error::invalid("from_config", format!("{class}: {e}"));
    let fill_mode = FillMode::from_name(&get_or(class, cfg, "fill_mode", "reflect".to_string())?).map_err(bad)?;
    let interpolation =
        ImageInterpolation::from_name(&get_or(class, cfg, "interpolation", "bilinear".to_string())?).map_err(bad)?;
    let seed = get_or::<Option<u64>>(class, cfg, "seed", None)?;
    let fill_value = get_or(class, cfg, "fill_value", 0.0)?;
    Ok((fill_mode, interpolation, seed, fill_value))
}

/// Keras's `Resizing` config, its keys' defaults Keras's; `antialias = true` is refused
/// (keel resizes without antialiasing), as is an interpolation keel does not have
/// (`bicubic`, `lanczos3`, `lanczos5`, `area`) or a `fill_mode` other than `constant`.
fn resizing(cfg: &Value) -> Result<keel_nn::Resizing> {
    const CLASS: &str = "Resizing";
    if get_or(CLASS, cfg, "antialias", false)? {
        return Err(Error::invalid("from_config", "Resizing with antialias = true is not supported"));
    }
    let interpolation = Interpolation::from_name(&get_or(CLASS, cfg, "interpolation", "bilinear".to_string())?)?;
    let fill_mode = FillMode::from_name(&get_or(CLASS, cfg, "fill_mode", "constant".to_string())?)
        .map_err(|e| Error::invalid("from_config", format!("{CLASS}: {e}")))?;
    let name = cfg.get("name").and_then(Value::as_str).unwrap_or_default();
    let layer = keel_nn::Resizing::new(get(CLASS, cfg, "height")?, get(CLASS, cfg, "width")?)
        .with_name(name)
        .interpolation(interpolation)
        .crop_to_aspect_ratio(get_or(CLASS, cfg, "crop_to_aspect_ratio", false)?)
        .pad_to_aspect_ratio(get_or(CLASS, cfg, "pad_to_aspect_ratio", false)?)
        .fill_mode(fill_mode)
        .fill_value(get_or(CLASS, cfg, "fill_value", 0.0)?);
    // a config Keras would refuse (both aspect-ratio options, another fill mode) is refused now
    layer.output_shape(&[1, 1, 1])?;
    Ok(layer)
}

/// The settings RandomSaturation and RandomHue share: `factor`, `value_range` and `seed`
/// (channels-last only).
fn hsv_settings(class: &str, cfg: &Value) -> Result<(Factor, (f64, f64), Option<u64>)> {
    channels_last(class, cfg)?;
    Ok((get::<Factor>(class, cfg, "factor")?, value_range(class, cfg)?, get_or(class, cfg, "seed", None)?))
}

/// A dropout's Keras `noise_shape` (`null` or a list of sizes and `null`s).
fn noise_shape(class: &str, cfg: &Value) -> Result<Option<Vec<Option<usize>>>> {
    get_or(class, cfg, "noise_shape", None)
}

/// Whether `cfg[key]` is absent or one of the axes `allowed`, as an int or a one-element list.
fn axes_in(cfg: &Value, key: &str, allowed: &[i64]) -> bool {
    cfg.get(key).is_none_or(|a| allowed.iter().any(|&i| *a == serde_json::json!(i) || *a == serde_json::json!([i])))
}

/// A SimpleRNN / LSTM / GRU from its Keras config (`dropout`, `recurrent_dropout` and
/// `stateful` included; Keras's `seed` and `unroll` do not change what is computed here and
/// are not read).
fn recurrent<C: Cell>(class: &str, cfg: &Value) -> Result<Recurrent<C>> {
    let mut layer = Recurrent::from_config(field::<RecurrentConfig<C>>(class, cfg)?);
    if let Some(name) = cfg.get("name").and_then(Value::as_str) {
        layer.set_name(name.to_string());
    }
    Ok(layer)
}

/// A ConvLSTM layer from its Keras config, refusing what keel's does not do (dropout,
/// recurrent dropout, `stateful`: loading them would build another model).
fn conv_lstm<W: keel_nn::ConvLSTMWindow>(class: &str, cfg: &Value) -> Result<keel_nn::ConvLSTM<W>> {
    for key in ["dropout", "recurrent_dropout"] {
        if get_or(class, cfg, key, 0.0f64)? != 0.0 {
            return Err(Error::invalid(
                "from_config",
                format!(
                    "{class} with {key} {} is not supported (keel's ConvLSTM has no dropout; set it to 0)",
                    cfg[key]
                ),
            ));
        }
    }
    if get_or(class, cfg, "stateful", false)? {
        let name = cfg.get("name").and_then(Value::as_str).unwrap_or("");
        return Err(Error::invalid(
            "from_config",
            format!(
                "{class} \"{name}\" has stateful: true, which keel's ConvLSTM does not support (it starts every \
                 batch from zero states); save the model with stateful=False"
            ),
        ));
    }
    let mut layer = keel_nn::ConvLSTM::from_config(field::<keel_nn::ConvLSTMConfig<W>>(class, cfg)?);
    if let Some(name) = cfg.get("name").and_then(Value::as_str) {
        layer.set_name(name.to_string());
    }
    Ok(layer)
}

/// The class name and config of the layer a wrapper of class `class` (Bidirectional,
/// TimeDistributed) stores under `"layer"`.
fn wrapped(class: &str, cfg: &Value) -> Result<(String, Value)> {
    let inner =
        cfg.get("layer").ok_or_else(|| Error::invalid("from_config", format!("{class} config has no \"layer\"")))?;
    Ok((get(class, inner, "class_name")?, inner.get("config").cloned().unwrap_or_default()))
}

/// Keras's `"axis"` argument of `class` (Softmax, Unit-, Layer- and RMSNormalization): an int or a list of
/// ints, -1 when absent.
fn axes(class: &str, cfg: &Value) -> Result<Vec<isize>> {
    Ok(match cfg.get("axis") {
        None => vec![-1],
        Some(Value::Array(_)) => get::<Vec<isize>>(class, cfg, "axis")?,
        Some(_) => vec![get::<isize>(class, cfg, "axis")?],
    })
}

/// Keras's `keepdims` of a global pooling layer (false when absent).
fn keepdims(class: &str, cfg: &Value) -> Result<bool> {
    get_or(class, cfg, "keepdims", false)
}

/// keel's Conv3D has no channel groups: a Keras config with `groups` > 1 is refused
/// (loading it would build a different model).
fn only_one_group(class: &str, cfg: &Value) -> Result<()> {
    match cfg.get("groups") {
        None | Some(Value::Null) => Ok(()),
        Some(g) if g.as_u64() == Some(1) => Ok(()),
        Some(g) => Err(Error::invalid(
            "from_config",
            format!("{class} with groups {g} is not supported (keel's convolutions have groups = 1)"),
        )),
    }
}

/// `TimeDistributed` around the layer its config stores (any registered class).
fn time_distributed(cfg: &Value) -> Result<keel_nn::TimeDistributed> {
    let (class, icfg) = wrapped("TimeDistributed", cfg)?;
    Ok(keel_nn::TimeDistributed::from_boxed(layer_from_config(&class, &icfg)?))
}

fn bidirectional(cfg: &Value) -> Result<Box<dyn Layer>> {
    let (class, mut icfg) = wrapped("Bidirectional", cfg)?;
    // the wrapper names its copies forward_<name> / backward_<name>: give back the wrapped layer's own name
    if let Some(n) = icfg.get("name").and_then(Value::as_str).and_then(|n| n.strip_prefix("forward_")) {
        icfg["name"] = Value::String(n.to_string());
    }
    let mode: MergeMode = get_or("Bidirectional", cfg, "merge_mode", MergeMode::default())?;
    // the wrapped layer's constraints apply (through Layer::constraints of both directions)
    let icfg = applied_settings(&class, &icfg);
    Ok(match class.as_str() {
        "SimpleRNN" => Box::new(Bidirectional::new(recurrent::<SimpleRNNCell>(&class, &icfg)?).merge_mode(mode)),
        "LSTM" => Box::new(Bidirectional::new(recurrent::<LSTMCell>(&class, &icfg)?).merge_mode(mode)),
        "GRU" => Box::new(Bidirectional::new(recurrent::<GRUCell>(&class, &icfg)?).merge_mode(mode)),
        other => return Err(Error::invalid("from_config", format!("Bidirectional cannot wrap \"{other}\""))),
    })
}

/// A network that can be rebuilt (unbuilt weights aside) from its [`Network::config`].
pub trait FromConfig: Network + Sized {
    /// Rebuild from `config` (the value [`Network::config`] returned), built for its input shapes.
    fn from_config(config: &Value) -> Result<Self>;
}

impl FromConfig for keel_nn::Sequential {
    fn from_config(config: &Value) -> Result<Self> {
        let class = config.get("class_name").and_then(Value::as_str).unwrap_or("");
        if class != "Sequential" {
            return Err(Error::invalid(
                "from_config",
                format!("expected a Sequential model config, got class \"{class}\" (load it with its own model type)"),
            ));
        }
        let inner = config.get("config").ok_or_else(|| Error::invalid("from_config", "no \"config\" object"))?;
        let name: String = get("Sequential", inner, "name")?;
        let input_shape: Option<Vec<usize>> = get("Sequential", inner, "input_shape")?;
        let layers: Vec<Value> = get("Sequential", inner, "layers")?;
        let mut net = keel_nn::Sequential::new().with_name(name).dtype_policy(policy(inner)?);
        for l in &layers {
            let class: String = get("layer", l, "class_name")?;
            let cfg = l.get("config").ok_or_else(|| Error::invalid("from_config", format!("{class} has no config")))?;
            net.try_add_boxed(layer_from_config(&class, cfg)?)?;
            if !trainable(cfg) {
                // the name the model gave it (a config may leave it out)
                let name = net.layers().last().map(|l| l.name().to_string()).unwrap_or_default();
                net.set_trainable(&name, false)?;
            }
        }
        if let Some(shape) = input_shape {
            net.build(&[shape])?;
        }
        Ok(net)
    }
}

/// A layer config's Keras `"trainable"` flag (true when absent).
fn trainable(cfg: &Value) -> bool {
    cfg.get("trainable").and_then(Value::as_bool).unwrap_or(true)
}

/// `[layer name, call index, tensor index]` of a functional config.
fn node_ref(v: &Value) -> Result<(String, usize)> {
    let name = v.get(0).and_then(Value::as_str);
    let call = v.get(1).and_then(Value::as_u64);
    match (name, call) {
        (Some(n), Some(c)) => Ok((n.to_string(), c as usize)),
        _ => Err(Error::invalid("from_config", format!("bad node reference {v}"))),
    }
}

impl FromConfig for keel_nn::Model {
    fn from_config(config: &Value) -> Result<Self> {
        let class = config.get("class_name").and_then(Value::as_str).unwrap_or("");
        if class != "Functional" {
            return Err(Error::invalid(
                "from_config",
                format!("expected a Functional model config, got class \"{class}\" (load it with its own model type)"),
            ));
        }
        let inner = config.get("config").ok_or_else(|| Error::invalid("from_config", "no \"config\" object"))?;
        let name: String = get("Functional", inner, "name")?;
        let layers: Vec<Value> = get("Functional", inner, "layers")?;
        let mut tensors: HashMap<(String, usize), SymbolicTensor> = HashMap::new();
        // (handle, layer name, inbound nodes per call, calls done)
        let mut pending: Vec<(LayerHandle, String, Vec<Value>, usize)> = Vec::new();
        for l in &layers {
            let class: String = get("layer", l, "class_name")?;
            let cfg = l.get("config").ok_or_else(|| Error::invalid("from_config", format!("{class} has no config")))?;
            let lname: String = get(&class, cfg, "name")?;
            if class == "InputLayer" {
                let shape: Vec<Option<usize>> = get(&class, cfg, "batch_input_shape")?;
                let dims: Option<Vec<usize>> = shape.iter().skip(1).copied().collect();
                let dims = dims.ok_or_else(|| {
                    Error::invalid("from_config", format!("input \"{lname}\" has an unknown dimension"))
                })?;
                tensors.insert((lname.clone(), 0), Input::named(dims, lname));
                continue;
            }
            let inbound: Vec<Value> = get(&class, l, "inbound_nodes")?;
            let handle = LayerHandle::from_box(layer_from_config(&class, cfg)?);
            handle.set_trainable(trainable(cfg));
            pending.push((handle, lname, inbound, 0));
        }
        // call each layer once its inputs exist, in call order, until every call is made
        loop {
            let mut progress = false;
            for (handle, lname, inbound, done) in pending.iter_mut() {
                while *done < inbound.len() {
                    let refs: Vec<Value> = serde_json::from_value(inbound[*done].clone())
                        .map_err(|e| Error::invalid("from_config", format!("inbound nodes of \"{lname}\": {e}")))?;
                    let keys = refs.iter().map(node_ref).collect::<Result<Vec<_>>>()?;
                    let Some(xs) = keys.iter().map(|k| tensors.get(k).cloned()).collect::<Option<Vec<_>>>() else {
                        break;
                    };
                    let out = handle.call_multi(&xs)?;
                    tensors.insert((lname.clone(), *done), out);
                    *done += 1;
                    progress = true;
                }
            }
            if pending.iter().all(|(_, _, inbound, done)| *done == inbound.len()) {
                break;
            }
            if !progress {
                return Err(Error::invalid("from_config", "the layer graph refers to tensors that never exist"));
            }
        }
        let lookup = |key: &str| -> Result<Vec<SymbolicTensor>> {
            let refs: Vec<Value> = get("Functional", inner, key)?;
            refs.iter()
                .map(|r| {
                    let k = node_ref(r)?;
                    tensors.get(&k).cloned().ok_or_else(|| Error::invalid("from_config", format!("no tensor {k:?}")))
                })
                .collect()
        };
        let (inputs, outputs) = (lookup("input_layers")?, lookup("output_layers")?);
        Ok(keel_nn::Model::new(&inputs, &outputs)?.with_name(name).dtype_policy(policy(inner)?))
    }
}
