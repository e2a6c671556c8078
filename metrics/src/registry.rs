//! Metrics by Keras name: [`MetricSpec`] (for `compile(..., &[MetricSpec::Accuracy])`) and
//! [`metric_from_name`].

use std::str::FromStr;

use crate::accuracy::{
    AutoAccuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
};
use crate::auc::Auc;
use crate::confusion_metrics::ClassificationMetricKind;
use crate::error::{MetricsError, Result};
use crate::loss_metrics::{LossMetric, LossMetricKind};
use crate::metric::Metric;
use crate::precision_recall::{F1Score, Precision, Recall};
use crate::regression::{MeanAbsoluteError, MeanSquaredError, R2Score, RootMeanSquaredError};

/// The kind of loss a model is compiled with: decides what `"accuracy"` means (as in Keras).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LossKind {
    /// `binary_crossentropy`: `"accuracy"` is [`BinaryAccuracy`].
    BinaryCrossentropy,
    /// `categorical_crossentropy`: `"accuracy"` is [`CategoricalAccuracy`].
    CategoricalCrossentropy,
    /// `sparse_categorical_crossentropy`: `"accuracy"` is [`SparseCategoricalAccuracy`].
    SparseCategoricalCrossentropy,
    /// Any other or unknown loss: `"accuracy"` is [`AutoAccuracy`] (Keras 3 picks by shapes).
    #[default]
    Other,
}

impl LossKind {
    /// The kind of a Keras loss name (`"binary_crossentropy"`, `"categorical_crossentropy"`,
    /// `"sparse_categorical_crossentropy"`, case-insensitive; anything else is `Other`).
    pub fn from_keras_name(loss: &str) -> Self {
        match loss.to_ascii_lowercase().as_str() {
            "binary_crossentropy" | "bce" => LossKind::BinaryCrossentropy,
            "categorical_crossentropy" | "cce" => LossKind::CategoricalCrossentropy,
            "sparse_categorical_crossentropy" => LossKind::SparseCategoricalCrossentropy,
            _ => LossKind::Other,
        }
    }
}

/// A metric named as in Keras's `compile(metrics=[...])`; [`build`](MetricSpec::build) makes it.
///
/// A facade may re-export it as `Metric` so that `compile(..., &[Metric::Accuracy])` reads as in Keras.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricSpec {
    /// `"accuracy"` / `"acc"`: the accuracy that matches the loss (see [`LossKind`]).
    Accuracy,
    /// `"binary_accuracy"` (threshold 0.5).
    BinaryAccuracy,
    /// `"categorical_accuracy"`.
    CategoricalAccuracy,
    /// `"sparse_categorical_accuracy"`.
    SparseCategoricalAccuracy,
    /// `"top_k_categorical_accuracy"` with this k (5 from the name).
    TopKCategoricalAccuracy(usize),
    /// `"sparse_top_k_categorical_accuracy"` with this k (5 from the name).
    SparseTopKCategoricalAccuracy(usize),
    /// `"precision"` (binary, threshold 0.5; with `top_k` / `class_id`:
    /// `Classification(ClassificationMetricKind::Precision { .. })`).
    Precision,
    /// `"recall"` (binary, threshold 0.5; with `top_k` / `class_id`:
    /// `Classification(ClassificationMetricKind::Recall { .. })`).
    Recall,
    /// `"f1_score"` / `"f1"` (binary, threshold 0.5).
    F1,
    /// `"auc"` (exact ROC AUC; Keras's approximate, thresholded AUC is
    /// `Classification(ClassificationMetricKind::KerasAuc(..))`).
    Auc,
    /// `"mse"` / `"mean_squared_error"`.
    Mse,
    /// `"mae"` / `"mean_absolute_error"`.
    Mae,
    /// `"rmse"` / `"root_mean_squared_error"`.
    Rmse,
    /// `"r2_score"` / `"r2"`.
    R2,
    /// A loss as a metric: `"binary_crossentropy"`, `"mape"`, `"kl_divergence"`, `"hinge"`, ...
    /// (see [`LossMetricKind`]).
    Loss(LossMetricKind),
    /// Keras's other classification metrics: `"true_positives"`, ..., `"binary_io_u"`, and by
    /// value `PrecisionAtRecall(0.8)`, Keras's approximate AUC, `MeanIoU(n)`, `FBetaScore`, ...
    /// (see [`ClassificationMetricKind`]).
    Classification(ClassificationMetricKind),
}

const KNOWN: &str = "accuracy, acc, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy, \
top_k_categorical_accuracy, sparse_top_k_categorical_accuracy, precision, recall, f1_score, f1, auc, \
mse, mean_squared_error, mae, mean_absolute_error, rmse, root_mean_squared_error, r2_score, r2, \
mape, mean_absolute_percentage_error, msle, mean_squared_logarithmic_error, cosine_similarity, log_cosh_error, \
binary_crossentropy, categorical_crossentropy, sparse_categorical_crossentropy, kl_divergence, poisson, hinge, \
squared_hinge, categorical_hinge, true_positives, false_positives, true_negatives, false_negatives, \
binary_io_u, fbetascore";

impl FromStr for MetricSpec {
    type Err = MetricsError;

    /// Parse a Keras metric name (case-insensitive).
    fn from_str(name: &str) -> Result<Self> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "accuracy" | "acc" => MetricSpec::Accuracy,
            "binary_accuracy" => MetricSpec::BinaryAccuracy,
            "categorical_accuracy" => MetricSpec::CategoricalAccuracy,
            "sparse_categorical_accuracy" => MetricSpec::SparseCategoricalAccuracy,
            "top_k_categorical_accuracy" => MetricSpec::TopKCategoricalAccuracy(5),
            "sparse_top_k_categorical_accuracy" => MetricSpec::SparseTopKCategoricalAccuracy(5),
            "precision" => MetricSpec::Precision,
            "recall" => MetricSpec::Recall,
            "f1_score" | "f1" => MetricSpec::F1,
            "auc" => MetricSpec::Auc,
            "mse" | "mean_squared_error" => MetricSpec::Mse,
            "mae" | "mean_absolute_error" => MetricSpec::Mae,
            "rmse" | "root_mean_squared_error" => MetricSpec::Rmse,
            "r2_score" | "r2" => MetricSpec::R2,
            other => match (LossMetricKind::from_name(other), ClassificationMetricKind::from_name(other)) {
                (Some(kind), _) => MetricSpec::Loss(kind),
                (None, Some(kind)) => MetricSpec::Classification(kind),
                (None, None) => {
                    return Err(MetricsError::UnknownMetric { name: name.to_string(), known: KNOWN.to_string() })
                }
            },
        })
    }
}

impl MetricSpec {
    /// Make the metric; `loss` decides what [`MetricSpec::Accuracy`] becomes.
    pub fn build(self, loss: LossKind) -> Box<dyn Metric + Send> {
        match self {
            MetricSpec::Accuracy => match loss {
                LossKind::BinaryCrossentropy => Box::new(BinaryAccuracy::new().with_name("accuracy")),
                LossKind::CategoricalCrossentropy => Box::new(CategoricalAccuracy::new().with_name("accuracy")),
                LossKind::SparseCategoricalCrossentropy => {
                    Box::new(SparseCategoricalAccuracy::new().with_name("accuracy"))
                }
                LossKind::Other => Box::new(AutoAccuracy::new()),
            },
            MetricSpec::BinaryAccuracy => Box::new(BinaryAccuracy::new()),
            MetricSpec::CategoricalAccuracy => Box::new(CategoricalAccuracy::new()),
            MetricSpec::SparseCategoricalAccuracy => Box::new(SparseCategoricalAccuracy::new()),
            MetricSpec::TopKCategoricalAccuracy(k) => Box::new(TopKCategoricalAccuracy::new(k)),
            MetricSpec::SparseTopKCategoricalAccuracy(k) => Box::new(SparseTopKCategoricalAccuracy::new(k)),
            MetricSpec::Precision => Box::new(Precision::new()),
            MetricSpec::Recall => Box::new(Recall::new()),
            MetricSpec::F1 => Box::new(F1Score::new()),
            MetricSpec::Auc => Box::new(Auc::new()),
            MetricSpec::Mse => Box::new(MeanSquaredError::new()),
            MetricSpec::Mae => Box::new(MeanAbsoluteError::new()),
            MetricSpec::Rmse => Box::new(RootMeanSquaredError::new()),
            MetricSpec::R2 => Box::new(R2Score::new()),
            MetricSpec::Loss(kind) => Box::new(LossMetric::new(kind)),
            MetricSpec::Classification(kind) => kind.build(),
        }
    }

    /// The log name of the built metric (`Accuracy` logs as `"accuracy"` whatever the loss).
    pub fn name(self) -> &'static str {
        match self {
            MetricSpec::Accuracy => "accuracy",
            MetricSpec::BinaryAccuracy => "binary_accuracy",
            MetricSpec::CategoricalAccuracy => "categorical_accuracy",
            MetricSpec::SparseCategoricalAccuracy => "sparse_categorical_accuracy",
            MetricSpec::TopKCategoricalAccuracy(_) => "top_k_categorical_accuracy",
            MetricSpec::SparseTopKCategoricalAccuracy(_) => "sparse_top_k_categorical_accuracy",
            MetricSpec::Precision => "precision",
            MetricSpec::Recall => "recall",
            MetricSpec::F1 => "f1_score",
            MetricSpec::Auc => "auc",
            MetricSpec::Mse => "mean_squared_error",
            MetricSpec::Mae => "mean_absolute_error",
            MetricSpec::Rmse => "root_mean_squared_error",
            MetricSpec::R2 => "r2_score",
            MetricSpec::Loss(kind) => kind.log_name(),
            MetricSpec::Classification(kind) => kind.log_name(),
        }
    }
}

/// A metric from its Keras name (`"accuracy"`, `"acc"`, `"precision"`, `"auc"`, `"mse"`, ...);
/// `loss` decides which accuracy `"accuracy"` is. Unknown names are
/// [`MetricsError::UnknownMetric`]. (As in Keras, no name gives the exact-match [`Accuracy`](crate::Accuracy).)
pub fn metric_from_name(name: &str, loss: LossKind) -> Result<Box<dyn Metric + Send>> {
    Ok(MetricSpec::from_str(name)?.build(loss))
}
