//! Precision, recall and F1: streaming ([`Precision`], [`Recall`], [`F1Score`]) and one-shot
//! ([`precision_recall_fscore_support`], [`precision_score`], [`recall_score`], [`f1_score`]).
//!
//! Zero division follows scikit-learn's default (`zero_division="warn"`, which returns 0.0):
//! precision with no predicted positives, recall with no true positives, F1 with neither,
//! and a weighted average whose supports sum to 0 are all 0.0.

use crate::confusion::{decode_labels, unique_labels};
use crate::error::{MetricsError, Result};
use crate::input::{no_nan, per_sample, same_size, sample_weights, weight_of};
use crate::metric::{ArrayRef, Metric, MetricValue};

/// How per-class scores are combined (scikit-learn's and Keras's `average`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Average {
    /// The positive class only: label 1 (scikit-learn's default `average="binary"`, `pos_label=1`)
    /// of a binary label set such as `{0, 1}`, `{-1, 1}` or `{1, 2}`; more than two labels, or two
    /// labels without 1, are an error. Same as `Micro` in multi-label mode.
    Binary,
    /// Pool the true/false positives and negatives of all classes, then score once.
    Micro,
    /// Unweighted mean of per-class scores.
    Macro,
    /// Mean of per-class scores weighted by support (true count of each class).
    Weighted,
    /// No averaging: one score per class ([`Metric::value`] is a vector; [`Metric::result`] the macro mean).
    None,
}

/// Per-class weighted counts of true positives, false positives and false negatives.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Counts {
    pub tp: Vec<f64>,
    pub fp: Vec<f64>,
    pub fn_: Vec<f64>,
    /// The class appeared in `y_true` or `y_pred` (whatever its weight).
    pub seen: Vec<bool>,
}

fn div0(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

/// Which score a metric reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Stat {
    Precision,
    Recall,
    FBeta(f64),
}

impl Counts {
    pub(crate) fn new(n: usize) -> Self {
        Counts { tp: vec![0.0; n], fp: vec![0.0; n], fn_: vec![0.0; n], seen: vec![false; n] }
    }

    /// Per-class support (true count, weighted).
    pub(crate) fn support(&self, i: usize) -> f64 {
        self.tp[i] + self.fn_[i]
    }

    fn stat_of(tp: f64, fp: f64, fn_: f64, stat: Stat) -> f64 {
        match stat {
            Stat::Precision => div0(tp, tp + fp),
            Stat::Recall => div0(tp, tp + fn_),
            Stat::FBeta(beta) => {
                let b2 = beta * beta;
                div0((1.0 + b2) * tp, (1.0 + b2) * tp + b2 * fn_ + fp)
            }
        }
    }

    /// The score of class `i`.
    pub(crate) fn per_class(&self, i: usize, stat: Stat) -> f64 {
        Self::stat_of(self.tp[i], self.fp[i], self.fn_[i], stat)
    }

    /// The score averaged over the classes in `set` (`Average::Binary` and `None` act as `Micro` and `Macro`).
    pub(crate) fn averaged(&self, set: &[usize], avg: Average, stat: Stat) -> f64 {
        match avg {
            Average::Micro | Average::Binary => {
                let s = |v: &Vec<f64>| set.iter().map(|&i| v[i]).sum::<f64>();
                Self::stat_of(s(&self.tp), s(&self.fp), s(&self.fn_), stat)
            }
            Average::Macro | Average::None => {
                div0(set.iter().map(|&i| self.per_class(i, stat)).sum::<f64>(), set.len() as f64)
            }
            Average::Weighted => {
                let total: f64 = set.iter().map(|&i| self.support(i)).sum();
                div0(set.iter().map(|&i| self.support(i) * self.per_class(i, stat)).sum::<f64>(), total)
            }
        }
    }
}

/// How a streaming precision/recall/F1 metric reads its inputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClassMode {
    /// Binary (Keras default): every element is a separate prediction; `y_pred > threshold` is positive,
    /// `y_true != 0` is positive (NaN in either is an error). Multi-label inputs are pooled.
    Binary {
        /// Decision threshold on `y_pred` (0.5 by default).
        threshold: f64,
    },
    /// Single-label multi-class: each side is integer labels or score / one-hot rows (argmax).
    /// With [`Average::Binary`] only labels 0 and 1 are accepted (class 1 is scored).
    MultiClass {
        /// Number of classes; labels must lie in `0..num_classes`.
        num_classes: usize,
    },
    /// Multi-label indicators `[batch, num_labels]`: per-column binary decisions with `threshold`.
    MultiLabel {
        /// Number of labels (columns).
        num_labels: usize,
        /// Decision threshold on `y_pred`.
        threshold: f64,
    },
}

/// Keras's `NEG_INF` (`-1e10`): the value `top_k` gives the scores it drops, and the default
/// threshold of a metric with `top_k` (so that every kept score counts as predicted positive).
const NEG_INF: f64 = -1e10;

/// The shared state behind [`Precision`], [`Recall`] and [`F1Score`].
#[derive(Debug, Clone)]
struct PrCore {
    name: String,
    mode: ClassMode,
    average: Average,
    stat: Stat,
    counts: Counts,
    /// The threshold is the default one (0.5, or Keras's `NEG_INF` once `top_k` is set).
    default_threshold: bool,
    /// Keras's `top_k` (binary mode): keep the `k` largest scores of each row.
    top_k: Option<usize>,
    /// Keras's `class_id` (binary mode): score only this column.
    class_id: Option<usize>,
}

impl PrCore {
    fn new(name: &str, mode: ClassMode, average: Average, stat: Stat) -> Self {
        let n = match mode {
            ClassMode::Binary { .. } => 1,
            ClassMode::MultiClass { num_classes } => num_classes,
            ClassMode::MultiLabel { num_labels, .. } => num_labels,
        };
        PrCore {
            name: name.into(),
            mode,
            average,
            stat,
            counts: Counts::new(n),
            default_threshold: false,
            top_k: None,
            class_id: None,
        }
    }

    /// Check `top_k` / `class_id` against the mode and the shape of `y_pred`.
    fn check_options(&self, y_pred: &ArrayRef<'_>) -> Result<()> {
        let name = &self.name;
        if self.top_k.is_none() && self.class_id.is_none() {
            return Ok(());
        }
        if !matches!(self.mode, ClassMode::Binary { .. }) {
            return Err(MetricsError::arg(
                name,
                format!(
                    "top_k / class_id apply to the binary (Keras) mode, not to {:?}: build the metric with \
                     new() or with_threshold(t) (one column per class), then set top_k / class_id",
                    self.mode
                ),
            ));
        }
        let cols = y_pred.last_dim();
        if let Some(k) = self.top_k {
            if k == 0 {
                return Err(MetricsError::arg(name, "top_k must be at least 1, got 0"));
            }
            if k > cols {
                return Err(MetricsError::arg(
                    name,
                    format!(
                        "top_k = {k} is larger than the last dimension of y_pred (shape {:?}, {cols} scores per \
                         row): use top_k <= {cols}",
                        y_pred.dims()
                    ),
                ));
            }
        }
        if let Some(c) = self.class_id {
            if y_pred.rank() < 2 {
                return Err(MetricsError::arg(
                    name,
                    format!("class_id = {c} needs y_pred of shape [batch, num_classes], got shape {:?}", y_pred.dims()),
                ));
            }
            if c >= cols {
                return Err(MetricsError::arg(
                    name,
                    format!(
                        "class_id = {c} is out of range for y_pred of shape {:?} ({cols} classes): use a class \
                         id in 0..{cols}",
                        y_pred.dims()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Keras's binary update with `top_k` and `class_id`: in each row of `y_pred`'s last axis the
    /// scores outside the `k` largest become `NEG_INF` (ties keep the lower index, as `top_k`),
    /// then only column `class_id` (if set) is compared with the threshold.
    fn add_top_k_class_id(
        &mut self,
        y_true: &ArrayRef<'_>,
        y_pred: &ArrayRef<'_>,
        w: &Option<Vec<f64>>,
        threshold: f64,
    ) {
        let cols = y_pred.last_dim().max(1);
        let per = per_sample(y_true.data().len(), y_true.n_samples());
        let mut order: Vec<usize> = Vec::with_capacity(cols);
        let mut kept = vec![true; cols];
        for (r, (t_row, p_row)) in y_true.data().chunks(cols).zip(y_pred.data().chunks(cols)).enumerate() {
            if let Some(k) = self.top_k {
                order.clear();
                order.extend(0..p_row.len());
                // NaN was rejected before: the comparison is total here
                order.sort_by(|&a, &b| p_row[b].partial_cmp(&p_row[a]).unwrap_or(std::cmp::Ordering::Equal));
                kept.iter_mut().for_each(|v| *v = false);
                for &j in order.iter().take(k) {
                    kept[j] = true;
                }
            }
            for (j, (&t, &p)) in t_row.iter().zip(p_row).enumerate() {
                if self.class_id.is_some_and(|c| c != j) {
                    continue;
                }
                let p = if kept[j] { p } else { NEG_INF };
                self.add_binary(0, t != 0.0, p > threshold, weight_of(w, (r * cols + j) / per));
            }
        }
    }

    /// Accumulate one batch; every check runs before any count changes.
    fn update(&mut self, y_true: ArrayRef<'_>, y_pred: ArrayRef<'_>, sample_weight: Option<&[f64]>) -> Result<()> {
        let name = self.name.clone();
        match self.mode {
            ClassMode::Binary { threshold } => {
                // Keras compares f32 scores with an f32 threshold: 0.3f32 is not > 0.3
                let threshold = threshold as f32 as f64;
                same_size(&name, &y_true, &y_pred)?;
                self.check_options(&y_pred)?;
                no_nan(&name, "y_true", y_true.data())?;
                no_nan(&name, "y_pred", y_pred.data())?;
                let n = y_true.n_samples();
                let w = sample_weights(&name, sample_weight, n, y_true.dims())?;
                if self.top_k.is_some() || self.class_id.is_some() {
                    self.add_top_k_class_id(&y_true, &y_pred, &w, threshold);
                    return Ok(());
                }
                let per = per_sample(y_true.data().len(), n);
                for (k, (&t, &p)) in y_true.data().iter().zip(y_pred.data()).enumerate() {
                    self.add_binary(0, t != 0.0, p > threshold, weight_of(&w, k / per));
                }
            }
            ClassMode::MultiLabel { num_labels, threshold } => {
                let threshold = threshold as f32 as f64;
                same_size(&name, &y_true, &y_pred)?;
                self.check_options(&y_pred)?;
                if y_true.last_dim() != num_labels || y_true.dims() != y_pred.dims() || y_true.rank() < 2 {
                    return Err(MetricsError::shape(
                        &name,
                        y_true.dims(),
                        y_pred.dims(),
                        format!("expected equal shapes [batch, ..., {num_labels}]"),
                    ));
                }
                no_nan(&name, "y_true", y_true.data())?;
                no_nan(&name, "y_pred", y_pred.data())?;
                let n = y_true.n_samples();
                let w = sample_weights(&name, sample_weight, n, y_true.dims())?;
                let per = per_sample(y_true.data().len(), n);
                for (k, (&t, &p)) in y_true.data().iter().zip(y_pred.data()).enumerate() {
                    self.add_binary(k % num_labels, t != 0.0, p > threshold, weight_of(&w, k / per));
                }
            }
            ClassMode::MultiClass { num_classes } => {
                self.check_options(&y_pred)?;
                let (t, p, w) = decode_labels(&name, &y_true, &y_pred, sample_weight, num_classes)?;
                if self.average == Average::Binary {
                    if let Some((what, l)) =
                        t.iter().map(|&l| ("y_true", l)).chain(p.iter().map(|&l| ("y_pred", l))).find(|&(_, l)| l > 1)
                    {
                        return Err(MetricsError::input(
                            &name,
                            format!(
                                "label {l} in {what}, but average Binary scores class 1 of labels 0/1: \
                                 the target is multi-class, use Average::Micro, Macro, Weighted or None"
                            ),
                        ));
                    }
                }
                let c = &mut self.counts;
                for ((&a, &b), &wi) in t.iter().zip(&p).zip(&w) {
                    c.seen[a] = true;
                    c.seen[b] = true;
                    if a == b {
                        c.tp[a] += wi;
                    } else {
                        c.fp[b] += wi;
                        c.fn_[a] += wi;
                    }
                }
            }
        }
        Ok(())
    }

    fn add_binary(&mut self, i: usize, t: bool, p: bool, w: f64) {
        let c = &mut self.counts;
        c.seen[i] = true;
        match (t, p) {
            (true, true) => c.tp[i] += w,
            (false, true) => c.fp[i] += w,
            (true, false) => c.fn_[i] += w,
            (false, false) => {}
        }
    }

    /// Classes averaged over: the positive class for `Binary`, the classes seen in `y_true` or
    /// `y_pred` for multi-class (scikit-learn's default labels), every column for multi-label.
    fn class_set(&self) -> Vec<usize> {
        match (self.mode, self.average) {
            (ClassMode::Binary { .. }, _) => vec![0],
            (ClassMode::MultiClass { num_classes }, Average::Binary) => {
                if num_classes > 1 {
                    vec![1]
                } else {
                    Vec::new()
                }
            }
            (ClassMode::MultiClass { num_classes }, _) => (0..num_classes).filter(|&i| self.counts.seen[i]).collect(),
            (ClassMode::MultiLabel { num_labels, .. }, _) => (0..num_labels).collect(),
        }
    }

    fn result(&self) -> f64 {
        self.counts.averaged(&self.class_set(), self.average, self.stat)
    }

    fn value(&self) -> MetricValue {
        if self.average == Average::None {
            MetricValue::Vector((0..self.counts.tp.len()).map(|i| self.counts.per_class(i, self.stat)).collect())
        } else {
            MetricValue::Scalar(self.result())
        }
    }

    fn reset(&mut self) {
        self.counts = Counts::new(self.counts.tp.len());
    }
}

macro_rules! pr_metric {
    ($(#[$doc:meta])* $t:ident, $name:literal, $stat:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $t {
            core: PrCore,
        }

        impl Default for $t {
            fn default() -> Self {
                Self::new()
            }
        }

        impl $t {
            /// Binary with threshold 0.5 (the Keras default).
            pub fn new() -> Self {
                let mut m = Self::with_threshold(0.5);
                m.core.default_threshold = true;
                m
            }

            /// Binary with a custom threshold on `y_pred`.
            pub fn with_threshold(threshold: f64) -> Self {
                Self::with_mode(ClassMode::Binary { threshold }, Average::Binary)
            }

            /// Single-label multi-class over `num_classes` classes, combined with `average`.
            pub fn multiclass(num_classes: usize, average: Average) -> Self {
                Self::with_mode(ClassMode::MultiClass { num_classes }, average)
            }

            /// Multi-label over `num_labels` indicator columns with `threshold`, combined with `average`.
            pub fn multilabel(num_labels: usize, threshold: f64, average: Average) -> Self {
                Self::with_mode(ClassMode::MultiLabel { num_labels, threshold }, average)
            }

            /// Any mode and average.
            pub fn with_mode(mode: ClassMode, average: Average) -> Self {
                $t { core: PrCore::new($name, mode, average, $stat) }
            }

            /// Rename the metric (its log key).
            pub fn with_name(mut self, name: impl Into<String>) -> Self {
                self.core.name = name.into();
                self
            }

            /// The per-class scores (length: classes or labels; 1 in binary mode).
            pub fn per_class(&self) -> Vec<f64> {
                (0..self.core.counts.tp.len()).map(|i| self.core.counts.per_class(i, self.core.stat)).collect()
            }
        }

        impl Metric for $t {
            fn name(&self) -> &str {
                &self.core.name
            }
            fn update_arrays(
                &mut self,
                y_true: ArrayRef<'_>,
                y_pred: ArrayRef<'_>,
                sample_weight: Option<&[f64]>,
            ) -> Result<()> {
                self.core.update(y_true, y_pred, sample_weight)
            }
            fn result(&self) -> f64 {
                self.core.result()
            }
            fn value(&self) -> MetricValue {
                self.core.value()
            }
            fn reset_state(&mut self) {
                self.core.reset()
            }
        }
    };
}

pr_metric!(
    /// Precision `tp / (tp + fp)` (Keras `Precision`; 0.0 with no predicted positives).
    Precision,
    "precision",
    Stat::Precision
);
pr_metric!(
    /// Recall `tp / (tp + fn)` (Keras `Recall`; 0.0 with no true positives).
    Recall,
    "recall",
    Stat::Recall
);
/// Keras's `top_k` and `class_id` on [`Precision`] and [`Recall`].
macro_rules! top_k_class_id {
    ($t:ident) => {
        impl $t {
            /// Keras's `top_k`: in each row of `y_pred`'s last axis (the whole vector for a 1-D
            /// `y_pred`) only the `k` largest scores can be positive; the others are set to Keras's
            /// `NEG_INF` (`-1e10`) before thresholding (ties keep the lower index). Without an
            /// explicit threshold ([`with_threshold`](Self::with_threshold)) the threshold becomes
            /// `NEG_INF`, so the top `k` of each row are the predicted positives, as in Keras.
            ///
            /// Binary mode only; `k == 0`, `k` larger than the last dimension of `y_pred`, or
            /// another [`ClassMode`] make the update fail with [`MetricsError::InvalidArgument`].
            pub fn top_k(mut self, k: usize) -> Self {
                self.core.top_k = Some(k);
                if self.core.default_threshold {
                    self.core.mode = ClassMode::Binary { threshold: NEG_INF };
                }
                self
            }

            /// Keras's `class_id`: score only column `class_id` of `[batch, num_classes]` inputs
            /// (after [`top_k`](Self::top_k), if set). Binary mode only; a class id outside
            /// `0..num_classes`, a 1-D `y_pred` or another [`ClassMode`] make the update fail
            /// with [`MetricsError::InvalidArgument`].
            pub fn class_id(mut self, class_id: usize) -> Self {
                self.core.class_id = Some(class_id);
                self
            }
        }
    };
}
top_k_class_id!(Precision);
top_k_class_id!(Recall);

pr_metric!(
    /// F1 score `2tp / (2tp + fp + fn)` (Keras `F1Score`; 0.0 when `tp + fp + fn == 0`).
    F1Score,
    "f1_score",
    Stat::FBeta(1.0)
);

/// Per-label precision, recall, F1 and support for label slices (scikit-learn's
/// `precision_recall_fscore_support(average=None)`), with what is needed to average them.
#[derive(Debug, Clone, PartialEq)]
pub struct Prfs {
    /// The labels, in row order.
    pub labels: Vec<i64>,
    /// Precision of each label.
    pub precision: Vec<f64>,
    /// Recall of each label.
    pub recall: Vec<f64>,
    /// F1 score of each label.
    pub f1: Vec<f64>,
    /// Weighted count of each label in `y_true`.
    pub support: Vec<f64>,
    counts: Counts,
    /// The sorted labels present in `y_true` or `y_pred`.
    present: Vec<i64>,
}

impl Prfs {
    /// `(precision, recall, f1)` combined with `average`; `None` is the macro mean.
    ///
    /// `Binary` scores label 1 (scikit-learn's `pos_label=1`) and needs the data to be binary: more
    /// than two labels present in `y_true`/`y_pred`, or two labels without 1 (e.g. `{2, 3}`), are an
    /// error; a single label other than 1 scores 0.0. Label 1 must be listed in `labels` if present.
    pub fn average(&self, average: Average) -> Result<(f64, f64, f64)> {
        let name = "precision_recall_fscore_support";
        let set: Vec<usize> = if average == Average::Binary {
            if self.present.len() > 2 {
                return Err(MetricsError::arg(
                    name,
                    format!(
                        "average Binary needs at most two labels, got {:?}: the target is multi-class, \
                         use Average::Micro, Macro, Weighted or None",
                        self.present
                    ),
                ));
            }
            if !self.present.contains(&1) {
                if self.present.len() == 2 {
                    return Err(MetricsError::arg(
                        name,
                        format!(
                            "average Binary scores pos_label=1, which is not a valid label; it should be one of \
                             {:?}: use labels that include 1, or Average::Micro, Macro or Weighted",
                            self.present
                        ),
                    ));
                }
                // Label 1 never occurs: it scores 0.0 (zero division), as in scikit-learn.
                Vec::new()
            } else {
                let Some(i) = self.labels.iter().position(|&l| l == 1) else {
                    return Err(MetricsError::arg(
                        name,
                        format!("average Binary scores label 1, which labels {:?} omits: add 1 to labels", self.labels),
                    ));
                };
                vec![i]
            }
        } else {
            (0..self.labels.len()).collect()
        };
        let c = &self.counts;
        Ok((
            c.averaged(&set, average, Stat::Precision),
            c.averaged(&set, average, Stat::Recall),
            c.averaged(&set, average, Stat::FBeta(1.0)),
        ))
    }
}

/// Per-label scores of label slices (scikit-learn's `precision_recall_fscore_support`).
///
/// `labels` picks and orders the classes (default: the sorted union of both slices); a class
/// absent from both slices scores 0.0 with support 0. Average with [`Prfs::average`].
pub fn precision_recall_fscore_support(
    y_true: &[i64],
    y_pred: &[i64],
    labels: Option<&[i64]>,
    sample_weight: Option<&[f64]>,
) -> Result<Prfs> {
    let name = "precision_recall_fscore_support";
    if y_true.len() != y_pred.len() {
        return Err(MetricsError::shape(name, &[y_true.len()], &[y_pred.len()], "label slices differ in length"));
    }
    let w = sample_weights(name, sample_weight, y_true.len(), &[y_true.len()])?;
    let labels = labels.map_or_else(|| unique_labels(y_true, y_pred), <[i64]>::to_vec);
    let mut c = Counts::new(labels.len());
    let idx = |v: i64| labels.iter().position(|&l| l == v);
    for (i, (&a, &b)) in y_true.iter().zip(y_pred).enumerate() {
        let wi = weight_of(&w, i);
        let (ia, ib) = (idx(a), idx(b));
        if ia.is_some() && ia == ib {
            if let Some(k) = ia {
                c.tp[k] += wi;
            }
        } else {
            if let Some(k) = ib {
                c.fp[k] += wi;
            }
            if let Some(k) = ia {
                c.fn_[k] += wi;
            }
        }
    }
    let n = labels.len();
    Ok(Prfs {
        precision: (0..n).map(|i| c.per_class(i, Stat::Precision)).collect(),
        recall: (0..n).map(|i| c.per_class(i, Stat::Recall)).collect(),
        f1: (0..n).map(|i| c.per_class(i, Stat::FBeta(1.0))).collect(),
        support: (0..n).map(|i| c.support(i)).collect(),
        labels,
        counts: c,
        present: unique_labels(y_true, y_pred),
    })
}

fn one_score(y_true: &[i64], y_pred: &[i64], average: Average, which: usize) -> Result<f64> {
    if average == Average::None {
        return Err(MetricsError::arg(
            "precision/recall/f1",
            "average None gives one score per class: use precision_recall_fscore_support",
        ));
    }
    let s = precision_recall_fscore_support(y_true, y_pred, None, None)?.average(average)?;
    Ok([s.0, s.1, s.2][which])
}

/// Precision of label slices (scikit-learn's `precision_score`; `Average::None` is an error).
pub fn precision_score(y_true: &[i64], y_pred: &[i64], average: Average) -> Result<f64> {
    one_score(y_true, y_pred, average, 0)
}

/// Recall of label slices (scikit-learn's `recall_score`; `Average::None` is an error).
pub fn recall_score(y_true: &[i64], y_pred: &[i64], average: Average) -> Result<f64> {
    one_score(y_true, y_pred, average, 1)
}

/// F1 score of label slices (scikit-learn's `f1_score`; `Average::None` is an error).
pub fn f1_score(y_true: &[i64], y_pred: &[i64], average: Average) -> Result<f64> {
    one_score(y_true, y_pred, average, 2)
}
