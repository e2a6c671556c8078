//! The accuracy family: exact-match, binary, categorical, sparse categorical and top-k accuracy.
//!
//! All are weighted means over samples (Keras's `MeanMetricWrapper`): each sample
//! scores the mean of its element matches, and the result is
//! `sum(w * score) / sum(w)`, or 0.0 before any weight was seen. NaN labels and scores are
//! errors, and a failed update leaves the metric unchanged.

use crate::error::{MetricsError, Result};
use crate::input::{argmax_rows, nan_error, no_nan, same_size, sample_weights, MeanAcc};
use crate::metric::{ArrayRef, Metric};

macro_rules! mean_metric_common {
    () => {
        /// Rename the metric (its log key).
        pub fn with_name(mut self, name: impl Into<String>) -> Self {
            self.name = name.into();
            self
        }
    };
}

macro_rules! impl_mean_metric {
    ($t:ty) => {
        impl Metric for $t {
            fn name(&self) -> &str {
                &self.name
            }
            fn update_arrays(
                &mut self,
                y_true: ArrayRef<'_>,
                y_pred: ArrayRef<'_>,
                sample_weight: Option<&[f64]>,
            ) -> Result<()> {
                let (values, n) = self.scores(&y_true, &y_pred)?;
                let w = sample_weights(&self.name, sample_weight, n, y_true.dims())?;
                self.acc.add_samples(&self.name, &values, n, &w)
            }
            fn result(&self) -> f64 {
                self.acc.value()
            }
            fn reset_state(&mut self) {
                self.acc = MeanAcc::default();
            }
        }
    };
}

/// Keras `Accuracy`: how often `y_pred` equals `y_true` exactly (labels against labels).
#[derive(Debug, Clone)]
pub struct Accuracy {
    name: String,
    acc: MeanAcc,
}

impl Default for Accuracy {
    fn default() -> Self {
        Self::new()
    }
}

impl Accuracy {
    /// A new metric named `"accuracy"`.
    pub fn new() -> Self {
        Accuracy { name: "accuracy".into(), acc: MeanAcc::default() }
    }
    mean_metric_common!();

    fn scores(&self, t: &ArrayRef<'_>, p: &ArrayRef<'_>) -> Result<(Vec<f64>, usize)> {
        same_size(&self.name, t, p)?;
        no_nan(&self.name, "y_true", t.data())?;
        no_nan(&self.name, "y_pred", p.data())?;
        let v = t.data().iter().zip(p.data()).map(|(a, b)| f64::from(u8::from(a == b))).collect();
        Ok((v, t.n_samples()))
    }
}
impl_mean_metric!(Accuracy);

/// Keras `BinaryAccuracy`: how often `(y_pred > threshold)` equals `y_true` (0/1 labels).
#[derive(Debug, Clone)]
pub struct BinaryAccuracy {
    name: String,
    threshold: f64,
    acc: MeanAcc,
}

impl Default for BinaryAccuracy {
    fn default() -> Self {
        Self::new()
    }
}

impl BinaryAccuracy {
    /// A new metric named `"binary_accuracy"` with threshold 0.5.
    pub fn new() -> Self {
        Self::with_threshold(0.5)
    }
    /// A new metric with a custom decision threshold.
    pub fn with_threshold(threshold: f64) -> Self {
        BinaryAccuracy { name: "binary_accuracy".into(), threshold, acc: MeanAcc::default() }
    }
    mean_metric_common!();

    fn scores(&self, t: &ArrayRef<'_>, p: &ArrayRef<'_>) -> Result<(Vec<f64>, usize)> {
        same_size(&self.name, t, p)?;
        no_nan(&self.name, "y_true", t.data())?;
        no_nan(&self.name, "y_pred", p.data())?;
        let v = t
            .data()
            .iter()
            .zip(p.data())
            .map(|(&a, &b)| {
                let pred = if b > self.threshold { 1.0 } else { 0.0 };
                f64::from(u8::from(a == pred))
            })
            .collect();
        Ok((v, t.n_samples()))
    }
}
impl_mean_metric!(BinaryAccuracy);

/// Keras `CategoricalAccuracy`: argmax of one-hot `y_true` equals argmax of `y_pred` (last axis).
///
/// Inputs are `[batch, ..., classes]`; a rank-1 pair `[classes]` is one sample, as in Keras.
#[derive(Debug, Clone)]
pub struct CategoricalAccuracy {
    name: String,
    acc: MeanAcc,
}

impl Default for CategoricalAccuracy {
    fn default() -> Self {
        Self::new()
    }
}

impl CategoricalAccuracy {
    /// A new metric named `"categorical_accuracy"`.
    pub fn new() -> Self {
        CategoricalAccuracy { name: "categorical_accuracy".into(), acc: MeanAcc::default() }
    }
    mean_metric_common!();

    fn scores(&self, t: &ArrayRef<'_>, p: &ArrayRef<'_>) -> Result<(Vec<f64>, usize)> {
        if t.dims() != p.dims() || t.rank() == 0 {
            return Err(MetricsError::shape(
                &self.name,
                t.dims(),
                p.dims(),
                "expected equal shapes [batch, ..., classes]",
            ));
        }
        let c = p.last_dim();
        let a = argmax_rows(&self.name, "y_true", t.data(), c)?;
        let b = argmax_rows(&self.name, "y_pred", p.data(), c)?;
        let v = a.iter().zip(&b).map(|(x, y)| f64::from(u8::from(x == y))).collect();
        Ok((v, categorical_samples(t)))
    }
}
impl_mean_metric!(CategoricalAccuracy);

/// Number of samples of a `[batch, ..., classes]` input: a rank-1 `[classes]` input is one sample.
fn categorical_samples(t: &ArrayRef<'_>) -> usize {
    if t.rank() == 1 {
        1
    } else {
        t.n_samples()
    }
}

/// Rows of `[.., classes]` scores and the number of rows, checked against `rows` sparse labels.
fn sparse_rows(name: &str, t: &ArrayRef<'_>, p: &ArrayRef<'_>) -> Result<usize> {
    let c = p.last_dim();
    if p.rank() < 2 || c == 0 || t.data().len() * c != p.data().len() || t.n_samples() != p.n_samples() {
        return Err(MetricsError::shape(
            name,
            t.dims(),
            p.dims(),
            "expected integer labels [batch, ...] (or [batch, ..., 1]) and scores [batch, ..., classes]",
        ));
    }
    Ok(c)
}

/// Keras `SparseCategoricalAccuracy`: integer label `y_true` equals argmax of `y_pred` (last axis).
#[derive(Debug, Clone)]
pub struct SparseCategoricalAccuracy {
    name: String,
    acc: MeanAcc,
}

impl Default for SparseCategoricalAccuracy {
    fn default() -> Self {
        Self::new()
    }
}

impl SparseCategoricalAccuracy {
    /// A new metric named `"sparse_categorical_accuracy"`.
    pub fn new() -> Self {
        SparseCategoricalAccuracy { name: "sparse_categorical_accuracy".into(), acc: MeanAcc::default() }
    }
    mean_metric_common!();

    fn scores(&self, t: &ArrayRef<'_>, p: &ArrayRef<'_>) -> Result<(Vec<f64>, usize)> {
        let c = sparse_rows(&self.name, t, p)?;
        no_nan(&self.name, "y_true", t.data())?;
        let b = argmax_rows(&self.name, "y_pred", p.data(), c)?;
        // A label that is not an integer in range never matches (as in Keras); NaN is an error.
        let v = t.data().iter().zip(&b).map(|(&x, &y)| f64::from(u8::from(x == y as f64))).collect();
        Ok((v, t.n_samples()))
    }
}
impl_mean_metric!(SparseCategoricalAccuracy);

/// Whether class `target` is among the `k` highest scores of `row`.
///
/// Ties follow TensorFlow's `in_top_k`: the target is in the top k when fewer than
/// `k` classes score strictly higher. A target outside the row never is; a NaN target or
/// a NaN score anywhere in the row is an error.
fn in_top_k(metric: &str, row: &[f64], target: f64, k: usize) -> Result<bool> {
    if target.is_nan() {
        return Err(nan_error(metric, "y_true"));
    }
    no_nan(metric, "y_pred", row)?;
    if !(target.is_finite() && target >= 0.0 && target.fract() == 0.0 && (target as usize) < row.len()) {
        return Ok(false);
    }
    let s = row[target as usize];
    Ok(row.iter().filter(|&&v| v > s).count() < k)
}

/// Keras `TopKCategoricalAccuracy`: argmax of one-hot `y_true` is among the `k` top scores (default k = 5).
///
/// Inputs are `[batch, ..., classes]`; a rank-1 pair `[classes]` is one sample.
#[derive(Debug, Clone)]
pub struct TopKCategoricalAccuracy {
    name: String,
    k: usize,
    acc: MeanAcc,
}

impl Default for TopKCategoricalAccuracy {
    fn default() -> Self {
        Self::new(5)
    }
}

impl TopKCategoricalAccuracy {
    /// A new metric named `"top_k_categorical_accuracy"` (k = 0 never hits).
    pub fn new(k: usize) -> Self {
        TopKCategoricalAccuracy { name: "top_k_categorical_accuracy".into(), k, acc: MeanAcc::default() }
    }
    mean_metric_common!();

    fn scores(&self, t: &ArrayRef<'_>, p: &ArrayRef<'_>) -> Result<(Vec<f64>, usize)> {
        if t.dims() != p.dims() || t.rank() == 0 {
            return Err(MetricsError::shape(
                &self.name,
                t.dims(),
                p.dims(),
                "expected equal shapes [batch, ..., classes]",
            ));
        }
        let c = p.last_dim();
        let targets = argmax_rows(&self.name, "y_true", t.data(), c)?;
        let v = if c == 0 {
            Vec::new()
        } else {
            p.data()
                .chunks(c)
                .zip(&targets)
                .map(|(row, &tg)| Ok(f64::from(u8::from(in_top_k(&self.name, row, tg as f64, self.k)?))))
                .collect::<Result<_>>()?
        };
        Ok((v, categorical_samples(t)))
    }
}
impl_mean_metric!(TopKCategoricalAccuracy);

/// Keras `SparseTopKCategoricalAccuracy`: integer label `y_true` is among the `k` top scores (default k = 5).
#[derive(Debug, Clone)]
pub struct SparseTopKCategoricalAccuracy {
    name: String,
    k: usize,
    acc: MeanAcc,
}

impl Default for SparseTopKCategoricalAccuracy {
    fn default() -> Self {
        Self::new(5)
    }
}

impl SparseTopKCategoricalAccuracy {
    /// A new metric named `"sparse_top_k_categorical_accuracy"` (k = 0 never hits).
    pub fn new(k: usize) -> Self {
        SparseTopKCategoricalAccuracy { name: "sparse_top_k_categorical_accuracy".into(), k, acc: MeanAcc::default() }
    }
    mean_metric_common!();

    fn scores(&self, t: &ArrayRef<'_>, p: &ArrayRef<'_>) -> Result<(Vec<f64>, usize)> {
        let c = sparse_rows(&self.name, t, p)?;
        let v = p
            .data()
            .chunks(c)
            .zip(t.data())
            .map(|(row, &tg)| Ok(f64::from(u8::from(in_top_k(&self.name, row, tg, self.k)?))))
            .collect::<Result<_>>()?;
        Ok((v, t.n_samples()))
    }
}
impl_mean_metric!(SparseTopKCategoricalAccuracy);

/// Fraction of exact matches between two label slices (scikit-learn's `accuracy_score`); 0.0 when empty.
pub fn accuracy_score(y_true: &[i64], y_pred: &[i64]) -> Result<f64> {
    accuracy_score_weighted(y_true, y_pred, None)
}

/// Weighted fraction of exact matches: `sum(w * [t == p]) / sum(w)`; 0.0 when the weights sum to 0.
pub fn accuracy_score_weighted(y_true: &[i64], y_pred: &[i64], sample_weight: Option<&[f64]>) -> Result<f64> {
    let name = "accuracy_score";
    if y_true.len() != y_pred.len() {
        return Err(MetricsError::shape(name, &[y_true.len()], &[y_pred.len()], "label slices differ in length"));
    }
    let w = sample_weights(name, sample_weight, y_true.len(), &[y_true.len()])?;
    let v: Vec<f64> = y_true.iter().zip(y_pred).map(|(a, b)| f64::from(u8::from(a == b))).collect();
    let mut acc = MeanAcc::default();
    acc.add_samples(name, &v, y_true.len(), &w)?;
    Ok(acc.value())
}

/// Fraction of samples whose label is among the `k` highest of its `num_classes` scores
/// (scikit-learn's `top_k_accuracy_score`; ties count as hits, as TensorFlow's `in_top_k`).
pub fn top_k_accuracy_score(y_true: &[i64], y_score: &[f64], num_classes: usize, k: usize) -> Result<f64> {
    let name = "top_k_accuracy_score";
    if num_classes == 0 || y_true.len() * num_classes != y_score.len() {
        return Err(MetricsError::shape_named(
            name,
            &["y_true", "y_score"],
            &[y_true.len()],
            &[y_score.len()],
            format!("expected {} labels x {num_classes} classes scores", y_true.len()),
        ));
    }
    if let Some(bad) = y_true.iter().find(|&&l| l < 0 || l as u64 >= num_classes as u64) {
        return Err(MetricsError::input(name, format!("label {bad} is not a class in 0..{num_classes}")));
    }
    let t: Vec<f64> = y_true.iter().map(|&v| v as f64).collect();
    let mut m = SparseTopKCategoricalAccuracy::new(k);
    m.update_arrays(ArrayRef::vector(&t), ArrayRef::matrix(y_score, y_true.len(), num_classes)?, None)?;
    Ok(m.result())
}

/// Keras 3's `"accuracy"` when the loss is unknown: picks the accuracy from the shapes of each batch.
///
/// `y_pred` with last dimension 1 (or rank 1) → [`BinaryAccuracy`]; `y_true` of lower rank than
/// `y_pred`, or with last dimension 1 → [`SparseCategoricalAccuracy`]; otherwise
/// [`CategoricalAccuracy`]. All batches feed one running mean.
#[derive(Debug, Clone)]
pub struct AutoAccuracy {
    name: String,
    acc: MeanAcc,
}

impl Default for AutoAccuracy {
    fn default() -> Self {
        Self::new()
    }
}

impl AutoAccuracy {
    /// A new metric named `"accuracy"`.
    pub fn new() -> Self {
        AutoAccuracy { name: "accuracy".into(), acc: MeanAcc::default() }
    }
    mean_metric_common!();

    fn scores(&self, t: &ArrayRef<'_>, p: &ArrayRef<'_>) -> Result<(Vec<f64>, usize)> {
        if p.rank() <= 1 || p.last_dim() == 1 {
            BinaryAccuracy::new().with_name(self.name.clone()).scores(t, p)
        } else if t.rank() < p.rank() || t.last_dim() == 1 {
            SparseCategoricalAccuracy::new().with_name(self.name.clone()).scores(t, p)
        } else {
            CategoricalAccuracy::new().with_name(self.name.clone()).scores(t, p)
        }
    }
}
impl_mean_metric!(AutoAccuracy);
