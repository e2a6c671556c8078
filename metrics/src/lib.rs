//! `keel-metrics`: streaming metrics for keel — accuracy, precision, recall, F1, ROC AUC,
//! confusion matrix, MSE/MAE/R², a running mean, and a scikit-learn style classification report.
//!
//! Every metric implements [`Metric`] with Keras's streaming semantics: call
//! [`update_state`](Metric::update_state) once per batch (tensors of any dtype) or
//! [`update_arrays`](Metric::update_arrays) (plain `f64` slices), read
//! [`result`](Metric::result), and [`reset_state`](Metric::reset_state) between epochs.
//! The crate needs nothing but `keel-tensor`, and the one-shot functions
//! (`accuracy_score`, ...) take plain slices.
//!
//! - Accuracy: [`Accuracy`], [`BinaryAccuracy`], [`CategoricalAccuracy`],
//!   [`SparseCategoricalAccuracy`], [`TopKCategoricalAccuracy`], [`SparseTopKCategoricalAccuracy`],
//!   [`AutoAccuracy`].
//! - Classification: [`Precision`], [`Recall`], [`F1Score`] (binary / multi-class / multi-label,
//!   [`Average`]; Keras's `top_k` and `class_id` on [`Precision`] and [`Recall`]),
//!   [`ConfusionMatrix`], [`Auc`] (exact ROC), [`classification_report`].
//! - Keras's threshold metrics: [`TruePositives`], [`FalsePositives`], [`TrueNegatives`],
//!   [`FalseNegatives`] (one or several thresholds), [`PrecisionAtRecall`], [`RecallAtPrecision`],
//!   [`SensitivityAtSpecificity`], [`SpecificityAtSensitivity`] (Keras's 200-threshold grid and
//!   selection rule), [`KerasAuc`] (Keras's approximate ROC / PR AUC, [`AucCurve`], [`AucSummation`];
//!   `multi_label`, `label_weights`, `num_labels`).
//! - Keras's [`Iou`] (`IoU`, `MeanIoU`, `BinaryIoU`, `OneHotIoU`, `OneHotMeanIoU`) and
//!   [`FBetaScore`] (Keras's multi-label `FBetaScore` / `F1Score`).
//! - Regression: [`MeanSquaredError`], [`RootMeanSquaredError`], [`MeanAbsoluteError`], [`R2Score`];
//!   and [`Mean`] for the running loss.
//! - Losses as metrics: [`LossMetric`] (`"binary_crossentropy"`, `"mape"`, `"msle"`,
//!   `"cosine_similarity"`, `"kl_divergence"`, `"poisson"`, the hinges, ...; [`LossMetricKind`]).
//! - The classification metrics above in `compile`: [`ClassificationMetricKind`] (by name
//!   `"true_positives"`, ..., `"binary_io_u"`; by value the ones with arguments).
//! - By name: [`metric_from_name`] and [`MetricSpec`] (`"accuracy"` follows the loss, see [`LossKind`]).
//!
//! Values are checked against scikit-learn (`tests/fixtures/make_fixtures.py`) and the Keras
//! metrics against Keras 3 (`tests/fixtures/make_keras_classification_metrics.py`, ...). Undefined cases:
//! - zero division (precision with no predicted positives, recall with no true positives, F1 with
//!   neither, a weighted average with zero total support) gives 0.0, scikit-learn's default
//!   `zero_division="warn"` value; a metric that has seen nothing (or zero total weight) gives 0.0,
//!   as Keras's `divide_no_nan`;
//! - multi-class macro averages cover the classes seen in `y_true` or `y_pred` (scikit-learn's
//!   default `labels`); per-class vectors list every class, unseen ones as 0.0;
//! - ROC AUC with a single class in `y_true` is NaN from [`Metric::result`] and a
//!   [`MetricsError::Undefined`] from [`Metric::try_result`] / [`roc_auc_score`];
//! - R² is NaN with fewer than two samples or a zero total sample weight, and 1.0 / 0.0 for a
//!   constant target predicted exactly / not (scikit-learn's `force_finite`).
//!
//! Inputs are copied to the host as `f64`; bad shapes, NaN scores, NaN labels and out-of-range
//! labels are errors, never panics (the regression metrics and [`Mean`] take any value: a NaN
//! there makes the result NaN). A failed update leaves the metric unchanged.
//!
//! ```
//! use keel_metrics::{Metric, SparseCategoricalAccuracy, accuracy_score};
//! use keel_tensor::Tensor;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut acc = SparseCategoricalAccuracy::new();
//! let y_true = Tensor::from_vec(vec![0i64, 2], 2)?;
//! let y_pred = Tensor::from_vec(vec![0.9f32, 0.1, 0.0, 0.2, 0.7, 0.1], (2, 3))?;
//! acc.update_state(&y_true, &y_pred, None)?;
//! assert_eq!(acc.result(), 0.5);
//! assert_eq!(accuracy_score(&[1, 2, 3, 4], &[1, 2, 0, 4])?, 0.75);
//! # Ok(())
//! # }
//! ```

mod accuracy;
mod auc;
mod confusion;
mod confusion_metrics;
mod error;
mod fbeta;
mod input;
mod iou;
mod loss_metrics;
mod mean;
mod metric;
mod precision_recall;
mod registry;
mod regression;
mod report;

pub use accuracy::{
    accuracy_score, accuracy_score_weighted, top_k_accuracy_score, Accuracy, AutoAccuracy, BinaryAccuracy,
    CategoricalAccuracy, SparseCategoricalAccuracy, SparseTopKCategoricalAccuracy, TopKCategoricalAccuracy,
};
pub use auc::{roc_auc_score, Auc};
pub use confusion::{confusion_matrix, unique_labels, ConfusionMatrix};
pub use confusion_metrics::{
    AucCurve, AucSummation, ClassificationMetricKind, ConfusionCell, FalseNegatives, FalsePositives, KerasAuc,
    PrecisionAtRecall, RecallAtPrecision, SensitivityAtSpecificity, SpecificityAtSensitivity, TrueNegatives,
    TruePositives,
};
pub use error::{MetricsError, Result};
pub use fbeta::FBetaScore;
pub use iou::Iou;
pub use loss_metrics::{LossMetric, LossMetricKind};
pub use mean::Mean;
pub use metric::{host_f64, ArrayRef, Matrix, Metric, MetricValue};
pub use precision_recall::{
    f1_score, precision_recall_fscore_support, precision_score, recall_score, Average, ClassMode, F1Score, Precision,
    Prfs, Recall,
};
pub use registry::{metric_from_name, LossKind, MetricSpec};
pub use regression::{
    mean_absolute_error, mean_squared_error, r2_score, MeanAbsoluteError, MeanSquaredError, R2Score,
    RootMeanSquaredError,
};
pub use report::{classification_report, classification_report_with, ReportOptions};
