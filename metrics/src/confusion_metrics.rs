//! Keras 3's threshold-based confusion metrics: the counts [`TruePositives`],
//! [`FalsePositives`], [`TrueNegatives`], [`FalseNegatives`]; the constrained metrics
//! [`PrecisionAtRecall`], [`RecallAtPrecision`], [`SensitivityAtSpecificity`],
//! [`SpecificityAtSensitivity`]; and Keras's approximate, thresholded [`KerasAuc`].
//!
//! All of them accumulate weighted true/false positive/negative counts at a set of
//! thresholds, as Keras's `update_confusion_matrix_variables` does: every element of
//! `y_pred` is a score, any non-zero `y_true` is a positive, a sample's weight covers its
//! elements. Scores and thresholds compare as the `f32`s Keras holds; with an evenly spaced
//! threshold grid (the 200 thresholds of the `*At*` metrics and of `KerasAuc`), scores are
//! clipped to `[0, 1]` and bucketed as Keras's optimized path does
//! (`ceil(score * (num_thresholds - 1)) - 1` in `f32`), so the counts equal Keras's bit for bit.

use crate::error::{MetricsError, Result};
use crate::input::{no_nan, per_sample, same_size, sample_weights, weight_of};
use crate::metric::{ArrayRef, Metric, MetricValue};

/// Keras's `divide_no_nan`: 0.0 where the denominator is 0.
fn div0(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

/// Weighted true/false positive/negative counts at each of a list of thresholds.
#[derive(Debug, Clone)]
struct ThresholdCounts {
    thresholds: Vec<f64>,
    /// Keras's `is_evenly_distributed_thresholds` (or set by the metric): use the bucket path.
    evenly: bool,
    /// The grid has end points below 0 and above 1 (`KerasAuc`): bucket indices are clamped at 0.
    with_epsilon: bool,
    tp: Vec<f64>,
    fp: Vec<f64>,
    tn: Vec<f64>,
    fn_: Vec<f64>,
}

/// NumPy's `allclose(thresholds, arange(n) / (n - 1), atol=1e-7)` for `n >= 3`.
fn evenly_distributed(thresholds: &[f64]) -> bool {
    let n = thresholds.len();
    n >= 3
        && thresholds.iter().enumerate().all(|(i, &t)| {
            let even = f64::from(i as f32 / (n - 1) as f32);
            (t - even).abs() <= 1e-7 + 1e-5 * even.abs()
        })
}

impl ThresholdCounts {
    fn new(thresholds: Vec<f64>, evenly: bool, with_epsilon: bool) -> Self {
        let n = thresholds.len();
        ThresholdCounts {
            thresholds,
            evenly,
            with_epsilon,
            tp: vec![0.0; n],
            fp: vec![0.0; n],
            tn: vec![0.0; n],
            fn_: vec![0.0; n],
        }
    }

    /// The grid `[0, 1/(n-1), ..., 1]` of Keras's `SensitivitySpecificityBase` (`[0.5]` for `n == 1`).
    fn grid(num_thresholds: usize) -> Self {
        if num_thresholds == 1 {
            return ThresholdCounts::new(vec![0.5], false, false);
        }
        let n = num_thresholds;
        let mut t = vec![0.0];
        t.extend((0..n.saturating_sub(2)).map(|i| (i + 1) as f64 / (n - 1) as f64));
        t.push(1.0);
        ThresholdCounts::new(t, true, false)
    }

    /// The grid `[-eps, 1/(n-1), ..., 1 + eps]` of Keras's `AUC`.
    fn auc_grid(num_thresholds: usize) -> Self {
        let n = num_thresholds;
        // Keras's Python floats `0 - 1e-7` and `1 + 1e-7` (only the bucket rule reads the grid)
        let mut t = vec![-1e-7];
        t.extend((0..n.saturating_sub(2)).map(|i| (i + 1) as f64 / (n - 1) as f64));
        t.push(1.0 + 1e-7);
        ThresholdCounts::new(t, true, true)
    }

    fn reset(&mut self) {
        *self = ThresholdCounts::new(std::mem::take(&mut self.thresholds), self.evenly, self.with_epsilon);
    }

    /// Accumulate one batch; every check runs before any count changes.
    fn update(&mut self, name: &str, y_true: &ArrayRef<'_>, y_pred: &ArrayRef<'_>, sw: Option<&[f64]>) -> Result<()> {
        let (w, per) = checked_weights(name, y_true, y_pred, sw)?;
        let items = y_true
            .data()
            .iter()
            .zip(y_pred.data())
            .enumerate()
            .map(|(k, (&t, &p))| (t != 0.0, p as f32, weight_of(&w, k / per)));
        self.add(items);
        Ok(())
    }

    /// Accumulate `(label is positive, score, weight)` items.
    fn add(&mut self, items: impl Iterator<Item = (bool, f32, f64)>) {
        let m = self.thresholds.len();
        if self.evenly {
            // Keras's `_update_confusion_matrix_variables_optimized`: one bucket per score, then
            // a reversed cumulative sum gives the counts above each threshold.
            let (mut tp_b, mut fp_b) = (vec![0.0; m], vec![0.0; m]);
            let (mut pos, mut neg) = (0.0, 0.0);
            let scale = (m - 1) as f32;
            for (t, p, w) in items {
                let mut b = (p.clamp(0.0, 1.0) * scale).ceil() - 1.0;
                if self.with_epsilon {
                    b = b.max(0.0);
                }
                let (bucket, total) = if t { (&mut tp_b, &mut pos) } else { (&mut fp_b, &mut neg) };
                *total += w;
                // a negative bucket (a score of 0 without the epsilon end point) counts nowhere
                if b >= 0.0 {
                    if let Some(v) = bucket.get_mut(b as usize) {
                        *v += w;
                    }
                }
            }
            let (mut tp_c, mut fp_c) = (0.0, 0.0);
            for j in (0..m).rev() {
                tp_c += tp_b[j];
                fp_c += fp_b[j];
                self.tp[j] += tp_c;
                self.fp[j] += fp_c;
                self.tn[j] += neg - fp_c;
                self.fn_[j] += pos - tp_c;
            }
        } else {
            let thr: Vec<f32> = self.thresholds.iter().map(|&t| t as f32).collect();
            for (t, p, w) in items {
                for (j, &th) in thr.iter().enumerate() {
                    match (t, p > th) {
                        (true, true) => self.tp[j] += w,
                        (false, true) => self.fp[j] += w,
                        (false, false) => self.tn[j] += w,
                        (true, false) => self.fn_[j] += w,
                    }
                }
            }
        }
    }
}

/// The shared input checks of the threshold metrics: equal sizes, no NaN; the per-sample
/// weights and the number of elements per sample.
fn checked_weights(
    name: &str,
    y_true: &ArrayRef<'_>,
    y_pred: &ArrayRef<'_>,
    sw: Option<&[f64]>,
) -> Result<(Option<Vec<f64>>, usize)> {
    same_size(name, y_true, y_pred)?;
    no_nan(name, "y_true", y_true.data())?;
    no_nan(name, "y_pred", y_pred.data())?;
    let n = y_true.n_samples();
    let w = sample_weights(name, sw, n, y_true.dims())?;
    Ok((w, per_sample(y_true.data().len(), n)))
}

/// Which cell of the confusion matrix a count metric accumulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfusionCell {
    /// Positives scored above the threshold.
    TruePositives,
    /// Negatives scored above the threshold.
    FalsePositives,
    /// Negatives scored at or below the threshold.
    TrueNegatives,
    /// Positives scored at or below the threshold.
    FalseNegatives,
}

impl ConfusionCell {
    /// Keras's name: `"true_positives"`, `"false_positives"`, `"true_negatives"`, `"false_negatives"`.
    pub fn log_name(self) -> &'static str {
        match self {
            ConfusionCell::TruePositives => "true_positives",
            ConfusionCell::FalsePositives => "false_positives",
            ConfusionCell::TrueNegatives => "true_negatives",
            ConfusionCell::FalseNegatives => "false_negatives",
        }
    }
}

/// Error unless every threshold lies in `[0, 1]` (Keras's `assert_thresholds_range`).
fn check_thresholds(name: &str, thresholds: &[f64]) -> Result<()> {
    if thresholds.is_empty() {
        return Err(MetricsError::arg(name, "no thresholds: pass at least one threshold in [0, 1]"));
    }
    let bad: Vec<f64> = thresholds.iter().copied().filter(|t| !(0.0..=1.0).contains(t)).collect();
    if !bad.is_empty() {
        return Err(MetricsError::arg(name, format!("threshold values must be in [0, 1], got {bad:?}")));
    }
    Ok(())
}

/// The shared state of the four count metrics.
#[derive(Debug, Clone)]
struct CountCore {
    name: String,
    cell: ConfusionCell,
    counts: ThresholdCounts,
}

impl CountCore {
    fn new(cell: ConfusionCell) -> Self {
        CountCore { name: cell.log_name().into(), cell, counts: ThresholdCounts::new(vec![0.5], false, false) }
    }

    fn with_thresholds(mut self, thresholds: Vec<f64>) -> Self {
        let evenly = evenly_distributed(&thresholds);
        self.counts = ThresholdCounts::new(thresholds, evenly, false);
        self
    }

    fn values(&self) -> &[f64] {
        let c = &self.counts;
        match self.cell {
            ConfusionCell::TruePositives => &c.tp,
            ConfusionCell::FalsePositives => &c.fp,
            ConfusionCell::TrueNegatives => &c.tn,
            ConfusionCell::FalseNegatives => &c.fn_,
        }
    }

    fn update(&mut self, y_true: ArrayRef<'_>, y_pred: ArrayRef<'_>, sw: Option<&[f64]>) -> Result<()> {
        check_thresholds(&self.name, &self.counts.thresholds)?;
        self.counts.update(&self.name, &y_true, &y_pred, sw)
    }

    fn value(&self) -> MetricValue {
        match self.values() {
            [one] => MetricValue::Scalar(*one),
            many => MetricValue::Vector(many.to_vec()),
        }
    }
}

macro_rules! count_metric {
    ($(#[$doc:meta])* $t:ident, $cell:expr) => {
        $(#[$doc])*
        ///
        /// The default threshold is 0.5 (a score counts as positive when `> 0.5`);
        /// [`thresholds`](Self::thresholds) takes several, and [`Metric::value`] is then a vector
        /// with one count per threshold ([`Metric::result`] the count at the first). Thresholds
        /// outside `[0, 1]` make the first update fail with [`MetricsError::InvalidArgument`].
        #[derive(Debug, Clone)]
        pub struct $t {
            core: CountCore,
        }

        impl Default for $t {
            fn default() -> Self {
                Self::new()
            }
        }

        impl $t {
            /// Threshold 0.5 (the Keras default).
            pub fn new() -> Self {
                $t { core: CountCore::new($cell) }
            }

            /// One threshold on `y_pred`.
            pub fn with_threshold(threshold: f64) -> Self {
                Self::new().thresholds(vec![threshold])
            }

            /// Several thresholds: one count each (Keras's `thresholds=[...]`).
            pub fn thresholds(mut self, thresholds: Vec<f64>) -> Self {
                self.core = self.core.with_thresholds(thresholds);
                self
            }

            /// Rename the metric (its log key).
            pub fn with_name(mut self, name: impl Into<String>) -> Self {
                self.core.name = name.into();
                self
            }

            /// The count at each threshold.
            pub fn counts(&self) -> Vec<f64> {
                self.core.values().to_vec()
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
                self.core.values().first().copied().unwrap_or(0.0)
            }
            fn value(&self) -> MetricValue {
                self.core.value()
            }
            fn reset_state(&mut self) {
                self.core.counts.reset()
            }
        }
    };
}

count_metric!(
    /// Weighted count of true positives (Keras `TruePositives`, logged as `"true_positives"`).
    TruePositives,
    ConfusionCell::TruePositives
);
count_metric!(
    /// Weighted count of false positives (Keras `FalsePositives`, logged as `"false_positives"`).
    FalsePositives,
    ConfusionCell::FalsePositives
);
count_metric!(
    /// Weighted count of true negatives (Keras `TrueNegatives`, logged as `"true_negatives"`).
    TrueNegatives,
    ConfusionCell::TrueNegatives
);
count_metric!(
    /// Weighted count of false negatives (Keras `FalseNegatives`, logged as `"false_negatives"`).
    FalseNegatives,
    ConfusionCell::FalseNegatives
);

/// Which constrained metric a [`SensitivitySpecificityBase`]-style core computes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum AtKind {
    PrecisionAtRecall,
    RecallAtPrecision,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
}

impl AtKind {
    fn log_name(self) -> &'static str {
        match self {
            AtKind::PrecisionAtRecall => "precision_at_recall",
            AtKind::RecallAtPrecision => "recall_at_precision",
            AtKind::SensitivityAtSpecificity => "sensitivity_at_specificity",
            AtKind::SpecificityAtSensitivity => "specificity_at_sensitivity",
        }
    }

    /// The name of the constraint's argument (`recall`, ...).
    fn arg(self) -> &'static str {
        match self {
            AtKind::PrecisionAtRecall => "recall",
            AtKind::RecallAtPrecision => "precision",
            AtKind::SensitivityAtSpecificity => "specificity",
            AtKind::SpecificityAtSensitivity => "sensitivity",
        }
    }
}

/// The shared state of the four constrained metrics (Keras's `SensitivitySpecificityBase`).
#[derive(Debug, Clone)]
struct AtCore {
    name: String,
    kind: AtKind,
    value: f64,
    num_thresholds: usize,
    counts: ThresholdCounts,
}

impl AtCore {
    fn new(kind: AtKind, value: f64) -> Self {
        AtCore { name: kind.log_name().into(), kind, value, num_thresholds: 200, counts: ThresholdCounts::grid(200) }
    }

    fn check(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.value) {
            return Err(MetricsError::arg(
                &self.name,
                format!("`{}` must be in the range [0, 1], got {}", self.kind.arg(), self.value),
            ));
        }
        if self.num_thresholds == 0 {
            return Err(MetricsError::arg(&self.name, "`num_thresholds` must be an integer > 0, got 0"));
        }
        Ok(())
    }

    /// Keras's `_find_max_under_constraint`: the largest dependent value among the thresholds
    /// whose constrained value is `>=` the target (compared as `f32`), 0.0 if none.
    fn result(&self) -> f64 {
        let c = &self.counts;
        let rate = |a: &[f64], b: &[f64], j: usize| div0(a[j], a[j] + b[j]);
        let target = self.value as f32;
        (0..c.thresholds.len())
            .filter_map(|j| {
                let recall = rate(&c.tp, &c.fn_, j);
                let (constrained, dependent) = match self.kind {
                    AtKind::PrecisionAtRecall => (recall, rate(&c.tp, &c.fp, j)),
                    AtKind::RecallAtPrecision => (rate(&c.tp, &c.fp, j), recall),
                    AtKind::SensitivityAtSpecificity => (rate(&c.tn, &c.fp, j), recall),
                    AtKind::SpecificityAtSensitivity => (recall, rate(&c.tn, &c.fp, j)),
                };
                ((constrained as f32) >= target).then_some(dependent)
            })
            .fold(0.0, f64::max)
    }
}

macro_rules! at_metric {
    ($(#[$doc:meta])* $t:ident, $kind:expr, $arg:ident) => {
        $(#[$doc])*
        ///
        /// Keras's algorithm, not an interpolation: counts at `num_thresholds` (200) evenly spaced
        /// thresholds in `[0, 1]`, then the largest value over the thresholds that meet the
        /// constraint (compared as `f32`), 0.0 if none does. A constraint outside `[0, 1]` or
        /// `num_thresholds == 0` makes the first update fail with [`MetricsError::InvalidArgument`].
        #[derive(Debug, Clone)]
        pub struct $t {
            core: AtCore,
        }

        impl $t {
            /// The metric at the given constraint, with 200 thresholds.
            pub fn new($arg: f64) -> Self {
                $t { core: AtCore::new($kind, $arg) }
            }

            /// Use `num_thresholds` thresholds (Keras's `num_thresholds`; 1 means the single threshold 0.5).
            pub fn num_thresholds(mut self, num_thresholds: usize) -> Self {
                self.core.num_thresholds = num_thresholds;
                self.core.counts = ThresholdCounts::grid(num_thresholds.max(1));
                self
            }

            /// Rename the metric (its log key).
            pub fn with_name(mut self, name: impl Into<String>) -> Self {
                self.core.name = name.into();
                self
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
                self.core.check()?;
                self.core.counts.update(&self.core.name, &y_true, &y_pred, sample_weight)
            }
            fn result(&self) -> f64 {
                self.core.result()
            }
            fn reset_state(&mut self) {
                self.core.counts.reset()
            }
        }
    };
}

at_metric!(
    /// The best precision at a recall of at least `recall` (Keras `PrecisionAtRecall`,
    /// logged as `"precision_at_recall"`).
    PrecisionAtRecall,
    AtKind::PrecisionAtRecall,
    recall
);
at_metric!(
    /// The best recall at a precision of at least `precision` (Keras `RecallAtPrecision`,
    /// logged as `"recall_at_precision"`).
    RecallAtPrecision,
    AtKind::RecallAtPrecision,
    precision
);
at_metric!(
    /// The best sensitivity (recall) at a specificity of at least `specificity` (Keras
    /// `SensitivityAtSpecificity`, logged as `"sensitivity_at_specificity"`).
    SensitivityAtSpecificity,
    AtKind::SensitivityAtSpecificity,
    specificity
);
at_metric!(
    /// The best specificity at a sensitivity (recall) of at least `sensitivity` (Keras
    /// `SpecificityAtSensitivity`, logged as `"specificity_at_sensitivity"`).
    SpecificityAtSensitivity,
    AtKind::SpecificityAtSensitivity,
    sensitivity
);

/// The curve a [`KerasAuc`] integrates (Keras's `curve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AucCurve {
    /// Recall against false positive rate (`"ROC"`, the default).
    #[default]
    Roc,
    /// Precision against recall (`"PR"`).
    Pr,
}

/// How a [`KerasAuc`] sums the area between thresholds (Keras's `summation_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AucSummation {
    /// Trapezoids for ROC; Davis & Goadrich's interpolation for PR (`"interpolation"`, the default).
    #[default]
    Interpolation,
    /// Rectangles under the lower of the two end heights (`"minoring"`).
    Minoring,
    /// Rectangles under the higher of the two end heights (`"majoring"`).
    Majoring,
}

/// Keras's approximate `AUC`: counts at `num_thresholds` (200) evenly spaced thresholds
/// (the first just below 0, the last just above 1), then a Riemann sum over them — ROC
/// trapezoids, or for PR Davis & Goadrich's interpolation, exactly as Keras's `AUC.result`.
/// Logged as `"auc"`; 0.0 before any update or over one class (Keras's `divide_no_nan`).
///
/// Unlike [`Auc`](crate::Auc), which keeps every score and computes the exact ROC AUC, memory
/// is fixed and the value is Keras's approximation. Every score is clipped to `[0, 1]` and any
/// non-zero label is positive. By default (Keras's `multi_label=False`) every element is one
/// prediction and all are pooled; [`label_weights`](Self::label_weights) then weighs each
/// column of `[batch, ..., num_labels]` inputs in the pooled counts. With
/// [`multi_label`](Self::multi_label) `[batch, num_labels]` inputs get one curve per column,
/// and the result is the mean of the per-label AUCs, or their `label_weights`-weighted mean.
///
/// Invalid settings make the first update fail with [`MetricsError::InvalidArgument`]:
/// `num_thresholds < 2`, [`num_labels`](Self::num_labels) without `multi_label` (as Keras),
/// negative or NaN label weights, or label weights whose length is not the number of labels.
#[derive(Debug, Clone)]
pub struct KerasAuc {
    name: String,
    curve: AucCurve,
    summation: AucSummation,
    num_thresholds: usize,
    from_logits: bool,
    multi_label: bool,
    num_labels: Option<usize>,
    label_weights: Option<Vec<f64>>,
    /// The pooled counts (`multi_label` off), and the template of the per-label counts.
    counts: ThresholdCounts,
    /// One set of counts per label (`multi_label` on), made by the first update or `num_labels`.
    label_counts: Vec<ThresholdCounts>,
}

impl Default for KerasAuc {
    fn default() -> Self {
        Self::new()
    }
}

impl KerasAuc {
    /// ROC, interpolation, 200 thresholds (Keras's defaults).
    pub fn new() -> Self {
        KerasAuc {
            name: "auc".into(),
            curve: AucCurve::Roc,
            summation: AucSummation::Interpolation,
            num_thresholds: 200,
            from_logits: false,
            multi_label: false,
            num_labels: None,
            label_weights: None,
            counts: ThresholdCounts::auc_grid(200),
            label_counts: Vec::new(),
        }
    }

    /// The curve (ROC or PR).
    pub fn curve(mut self, curve: AucCurve) -> Self {
        self.curve = curve;
        self
    }

    /// The summation method.
    pub fn summation_method(mut self, summation: AucSummation) -> Self {
        self.summation = summation;
        self
    }

    /// The number of thresholds (at least 2).
    pub fn num_thresholds(mut self, num_thresholds: usize) -> Self {
        self.num_thresholds = num_thresholds;
        self.counts = ThresholdCounts::auc_grid(num_thresholds.max(2));
        self.label_counts = self.num_labels.map_or_else(Vec::new, |n| vec![self.counts.clone(); n]);
        self
    }

    /// Read `y_pred` as logits (a sigmoid is applied first; Keras's `from_logits=True`).
    pub fn from_logits(mut self, from_logits: bool) -> Self {
        self.from_logits = from_logits;
        self
    }

    /// Keras's `multi_label`: `true` reads `[batch, num_labels]` inputs as one binary problem per
    /// column, computes one AUC per label and averages them (weighted by
    /// [`label_weights`](Self::label_weights) if set); `false` (the default) pools every element.
    pub fn multi_label(mut self, multi_label: bool) -> Self {
        self.multi_label = multi_label;
        self
    }

    /// Keras's `num_labels`: the number of labels of a `multi_label` AUC, fixed before the first
    /// update (otherwise the first batch's last dimension decides). Keras accepts it only with
    /// `multi_label`: without it the first update fails with [`MetricsError::InvalidArgument`].
    pub fn num_labels(mut self, num_labels: usize) -> Self {
        self.num_labels = Some(num_labels);
        self.label_counts = vec![self.counts.clone(); num_labels];
        self
    }

    /// Keras's `label_weights` (non-negative, one per label): with `multi_label` the weights of
    /// the per-label AUCs in the mean (`sum(w * auc) / sum(w)`, 0.0 if the weights sum to 0);
    /// without it each element of column `j` counts `w[j]` times its sample weight in the pooled
    /// counts (inputs `[batch, ..., num_labels]`).
    pub fn label_weights(mut self, label_weights: Vec<f64>) -> Self {
        self.label_weights = Some(label_weights);
        self
    }

    /// Rename the metric (its log key).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The thresholds, as Keras's `AUC.thresholds`.
    pub fn thresholds(&self) -> &[f64] {
        &self.counts.thresholds
    }

    /// The AUC of each label (`multi_label`; empty before the first update unless
    /// [`num_labels`](Self::num_labels) was set), or the one pooled AUC.
    pub fn per_label(&self) -> Vec<f64> {
        if self.multi_label {
            self.label_counts.iter().map(|c| self.auc_of(c)).collect()
        } else {
            vec![self.auc_of(&self.counts)]
        }
    }

    /// Davis & Goadrich's interpolated PR AUC (Keras's `interpolate_pr_auc`).
    fn interpolate_pr_auc(c: &ThresholdCounts) -> f64 {
        let p: Vec<f64> = c.tp.iter().zip(&c.fp).map(|(a, b)| a + b).collect();
        (0..p.len().saturating_sub(1))
            .map(|i| {
                let dtp = c.tp[i] - c.tp[i + 1];
                let dp = p[i] - p[i + 1];
                let slope = div0(dtp, dp.max(0.0));
                let intercept = c.tp[i + 1] - slope * p[i + 1];
                let ratio = if p[i] > 0.0 && p[i + 1] > 0.0 { div0(p[i], p[i + 1].max(0.0)) } else { 1.0 };
                div0(slope * (dtp + intercept * ratio.ln()), (c.tp[i + 1] + c.fn_[i + 1]).max(0.0))
            })
            .sum()
    }

    /// The AUC of one set of counts (Keras's `AUC.result` for one label).
    fn auc_of(&self, c: &ThresholdCounts) -> f64 {
        if self.curve == AucCurve::Pr && self.summation == AucSummation::Interpolation {
            return Self::interpolate_pr_auc(c);
        }
        let m = c.thresholds.len();
        let recall: Vec<f64> = (0..m).map(|j| div0(c.tp[j], c.tp[j] + c.fn_[j])).collect();
        let (x, y): (Vec<f64>, Vec<f64>) = match self.curve {
            AucCurve::Roc => ((0..m).map(|j| div0(c.fp[j], c.fp[j] + c.tn[j])).collect(), recall),
            AucCurve::Pr => (recall, (0..m).map(|j| div0(c.tp[j], c.tp[j] + c.fp[j])).collect()),
        };
        (0..m.saturating_sub(1))
            .map(|i| {
                let h = match self.summation {
                    AucSummation::Interpolation => (y[i] + y[i + 1]) / 2.0,
                    AucSummation::Minoring => y[i].min(y[i + 1]),
                    AucSummation::Majoring => y[i].max(y[i + 1]),
                };
                (x[i] - x[i + 1]) * h
            })
            .sum()
    }

    /// Check the settings and the label count of `y_pred`; the number of labels.
    fn check(&self, y_pred: &ArrayRef<'_>) -> Result<usize> {
        let name = &self.name;
        if self.num_thresholds < 2 {
            return Err(MetricsError::arg(
                name,
                format!("`num_thresholds` must be an integer > 1, got {}", self.num_thresholds),
            ));
        }
        if let (Some(n), false) = (self.num_labels, self.multi_label) {
            return Err(MetricsError::arg(
                name,
                format!(
                    "`num_labels` ({n}) is needed only when `multi_label` is true: set multi_label(true) or drop it"
                ),
            ));
        }
        if let Some(lw) = &self.label_weights {
            if let Some(bad) = lw.iter().find(|w| w.is_nan() || **w < 0.0) {
                return Err(MetricsError::arg(
                    name,
                    format!("`label_weights` must be non-negative, got {bad} in {lw:?}"),
                ));
            }
        }
        let labels = if self.multi_label {
            if y_pred.rank() != 2 {
                return Err(MetricsError::input(
                    name,
                    format!(
                        "y_pred must have rank 2 [batch, num_labels] when multi_label is true, got shape {:?}",
                        y_pred.dims()
                    ),
                ));
            }
            let got = y_pred.last_dim();
            let want = self.num_labels.or((!self.label_counts.is_empty()).then_some(self.label_counts.len()));
            if let Some(want) = want.filter(|&w| w != got) {
                return Err(MetricsError::input(
                    name,
                    format!(
                        "y_pred of shape {:?} has {got} labels, but this multi-label AUC has {want} \
                         (from num_labels or the first batch)",
                        y_pred.dims()
                    ),
                ));
            }
            got
        } else {
            y_pred.last_dim()
        };
        if let Some(lw) = &self.label_weights {
            if lw.len() != labels || (!self.multi_label && y_pred.rank() < 2) {
                return Err(MetricsError::arg(
                    name,
                    format!(
                        "{} label_weights for y_pred of shape {:?}: pass one weight per label (the last \
                         dimension of [batch, ..., num_labels] inputs)",
                        lw.len(),
                        y_pred.dims()
                    ),
                ));
            }
        }
        Ok(labels)
    }
}

impl Metric for KerasAuc {
    fn name(&self) -> &str {
        &self.name
    }

    fn update_arrays(
        &mut self,
        y_true: ArrayRef<'_>,
        y_pred: ArrayRef<'_>,
        sample_weight: Option<&[f64]>,
    ) -> Result<()> {
        let labels = self.check(&y_pred)?;
        let sig: Vec<f64>;
        let y_pred = if self.from_logits {
            sig = y_pred.data().iter().map(|&x| 1.0 / (1.0 + (-x).exp())).collect();
            ArrayRef::new(&sig, y_pred.dims())?
        } else {
            y_pred
        };
        if !self.multi_label && self.label_weights.is_none() {
            return self.counts.update(&self.name, &y_true, &y_pred, sample_weight);
        }
        let (w, per) = checked_weights(&self.name, &y_true, &y_pred, sample_weight)?;
        let cols = labels.max(1);
        let (t, p) = (y_true.data(), y_pred.data());
        let item = |k: usize, lw: f64| (t[k] != 0.0, p[k] as f32, weight_of(&w, k / per) * lw);
        if self.multi_label {
            if self.label_counts.len() != labels {
                self.label_counts = vec![self.counts.clone(); labels];
            }
            for (j, c) in self.label_counts.iter_mut().enumerate() {
                c.add((j..t.len()).step_by(cols).map(|k| item(k, 1.0)));
            }
        } else {
            let lw = self.label_weights.as_deref().unwrap_or(&[]);
            self.counts.add((0..t.len()).map(|k| item(k, lw.get(k % cols).copied().unwrap_or(1.0))));
        }
        Ok(())
    }

    fn result(&self) -> f64 {
        if !self.multi_label {
            return self.auc_of(&self.counts);
        }
        let aucs = self.per_label();
        match &self.label_weights {
            Some(lw) if lw.len() == aucs.len() => div0(aucs.iter().zip(lw).map(|(a, w)| a * w).sum(), lw.iter().sum()),
            _ => div0(aucs.iter().sum(), aucs.len() as f64),
        }
    }

    fn reset_state(&mut self) {
        self.counts.reset();
        self.label_counts.iter_mut().for_each(ThresholdCounts::reset);
    }
}

/// Keras 3's classification metrics beyond precision / recall / F1 / accuracy, as
/// [`MetricSpec::Classification`](crate::MetricSpec::Classification) takes them in `compile`:
/// one table of kinds, [`build`](ClassificationMetricKind::build) makes the metric.
///
/// By name (case-insensitive, Keras's snake-case and class names): `"true_positives"`,
/// `"false_positives"`, `"true_negatives"`, `"false_negatives"` (threshold 0.5),
/// `"binary_io_u"` (`BinaryIoU()`'s defaults) and `"fbetascore"` (`FBetaScore()`'s defaults:
/// average None, beta 1, no threshold). The others need an argument and are given by value,
/// e.g. `MetricSpec::Classification(ClassificationMetricKind::PrecisionAtRecall(0.8))`.
/// Parameters that [`build`](ClassificationMetricKind::build) cannot accept (a recall outside
/// `[0, 1]`, ...) make the metric's first update fail with [`MetricsError::InvalidArgument`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClassificationMetricKind {
    /// A confusion-matrix count at one threshold ([`TruePositives`], ...).
    Count(ConfusionCell, f64),
    /// [`PrecisionAtRecall`] at this recall (200 thresholds).
    PrecisionAtRecall(f64),
    /// [`RecallAtPrecision`] at this precision.
    RecallAtPrecision(f64),
    /// [`SensitivityAtSpecificity`] at this specificity.
    SensitivityAtSpecificity(f64),
    /// [`SpecificityAtSensitivity`] at this sensitivity.
    SpecificityAtSensitivity(f64),
    /// Keras's approximate AUC ([`KerasAuc`], 200 thresholds), logged as `"auc"`.
    KerasAuc(AucCurve, AucSummation),
    /// Keras `AUC(curve, summation_method, multi_label, num_labels, label_weights)` ([`KerasAuc`],
    /// 200 thresholds), logged as `"auc"`. The label weights are a `'static` slice (a literal
    /// such as `Some(&[1.0, 2.0, 0.5])`) so that the kind stays `Copy`.
    KerasAucWith {
        /// The curve (Keras's `curve`).
        curve: AucCurve,
        /// The summation method (Keras's `summation_method`).
        summation: AucSummation,
        /// One AUC per label, then averaged (Keras's `multi_label`).
        multi_label: bool,
        /// The number of labels of a `multi_label` AUC (Keras's `num_labels`).
        num_labels: Option<usize>,
        /// One non-negative weight per label (Keras's `label_weights`).
        label_weights: Option<&'static [f64]>,
    },
    /// Keras `Precision(thresholds, top_k, class_id)` ([`Precision`](crate::Precision) with
    /// [`top_k`](crate::Precision::top_k) / [`class_id`](crate::Precision::class_id)), logged as
    /// `"precision"`; `threshold: None` is Keras's default (0.5, or `-1e10` with `top_k`).
    Precision {
        /// The decision threshold (Keras's `thresholds`, one value).
        threshold: Option<f64>,
        /// Keep the `k` largest scores of each row (Keras's `top_k`).
        top_k: Option<usize>,
        /// Score this column only (Keras's `class_id`).
        class_id: Option<usize>,
    },
    /// Keras `Recall(thresholds, top_k, class_id)` ([`Recall`](crate::Recall)), logged as
    /// `"recall"`; the fields as for [`Precision`](Self::Precision).
    Recall {
        /// The decision threshold (Keras's `thresholds`, one value).
        threshold: Option<f64>,
        /// Keep the `k` largest scores of each row (Keras's `top_k`).
        top_k: Option<usize>,
        /// Score this column only (Keras's `class_id`).
        class_id: Option<usize>,
    },
    /// Keras `MeanIoU(num_classes)` ([`Iou::mean`](crate::Iou::mean)).
    MeanIou(usize),
    /// Keras `OneHotMeanIoU(num_classes)` ([`Iou::one_hot_mean`](crate::Iou::one_hot_mean)).
    OneHotMeanIou(usize),
    /// Keras `BinaryIoU(target_class_ids=(0, 1), threshold)` ([`Iou::binary`](crate::Iou::binary)).
    BinaryIou(f64),
    /// Keras `FBetaScore(average, beta, threshold)` ([`FBetaScore`](crate::FBetaScore)).
    FBeta(crate::Average, f64, Option<f64>),
}

// Parameters compare by bits, so the kind (and `MetricSpec`) can be a map key.
impl Eq for ClassificationMetricKind {}

impl std::hash::Hash for ClassificationMetricKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match *self {
            ClassificationMetricKind::Count(cell, t) => {
                cell.hash(state);
                t.to_bits().hash(state);
            }
            ClassificationMetricKind::PrecisionAtRecall(v)
            | ClassificationMetricKind::RecallAtPrecision(v)
            | ClassificationMetricKind::SensitivityAtSpecificity(v)
            | ClassificationMetricKind::SpecificityAtSensitivity(v)
            | ClassificationMetricKind::BinaryIou(v) => v.to_bits().hash(state),
            ClassificationMetricKind::KerasAuc(c, s) => {
                c.hash(state);
                s.hash(state);
            }
            ClassificationMetricKind::KerasAucWith { curve, summation, multi_label, num_labels, label_weights } => {
                curve.hash(state);
                summation.hash(state);
                multi_label.hash(state);
                num_labels.hash(state);
                label_weights.map(|w| w.iter().map(|v| v.to_bits()).collect::<Vec<_>>()).hash(state);
            }
            ClassificationMetricKind::Precision { threshold, top_k, class_id }
            | ClassificationMetricKind::Recall { threshold, top_k, class_id } => {
                threshold.map(f64::to_bits).hash(state);
                top_k.hash(state);
                class_id.hash(state);
            }
            ClassificationMetricKind::MeanIou(n) | ClassificationMetricKind::OneHotMeanIou(n) => n.hash(state),
            ClassificationMetricKind::FBeta(a, b, t) => {
                a.hash(state);
                b.to_bits().hash(state);
                t.map(f64::to_bits).hash(state);
            }
        }
    }
}

impl ClassificationMetricKind {
    /// The names [`from_name`](Self::from_name) accepts, comma-separated.
    pub const NAMES: &'static str =
        "true_positives, false_positives, true_negatives, false_negatives, binary_io_u, fbetascore";

    /// The kind of a Keras metric name that needs no argument (lower case), or `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        use ConfusionCell as C;
        Some(match name {
            "true_positives" | "truepositives" => ClassificationMetricKind::Count(C::TruePositives, 0.5),
            "false_positives" | "falsepositives" => ClassificationMetricKind::Count(C::FalsePositives, 0.5),
            "true_negatives" | "truenegatives" => ClassificationMetricKind::Count(C::TrueNegatives, 0.5),
            "false_negatives" | "falsenegatives" => ClassificationMetricKind::Count(C::FalseNegatives, 0.5),
            "binary_io_u" | "binaryiou" => ClassificationMetricKind::BinaryIou(0.5),
            "fbetascore" => ClassificationMetricKind::FBeta(crate::Average::None, 1.0, None),
            _ => return None,
        })
    }

    /// The name Keras logs the metric under (`"true_positives"`, `"precision_at_recall"`, `"auc"`, ...).
    pub fn log_name(self) -> &'static str {
        match self {
            ClassificationMetricKind::Count(cell, _) => cell.log_name(),
            ClassificationMetricKind::PrecisionAtRecall(_) => AtKind::PrecisionAtRecall.log_name(),
            ClassificationMetricKind::RecallAtPrecision(_) => AtKind::RecallAtPrecision.log_name(),
            ClassificationMetricKind::SensitivityAtSpecificity(_) => AtKind::SensitivityAtSpecificity.log_name(),
            ClassificationMetricKind::SpecificityAtSensitivity(_) => AtKind::SpecificityAtSensitivity.log_name(),
            ClassificationMetricKind::KerasAuc(..) | ClassificationMetricKind::KerasAucWith { .. } => "auc",
            ClassificationMetricKind::Precision { .. } => "precision",
            ClassificationMetricKind::Recall { .. } => "recall",
            ClassificationMetricKind::MeanIou(_) => "mean_io_u",
            ClassificationMetricKind::OneHotMeanIou(_) => "one_hot_mean_io_u",
            ClassificationMetricKind::BinaryIou(_) => "binary_io_u",
            ClassificationMetricKind::FBeta(..) => "fbeta_score",
        }
    }

    /// Make the metric.
    pub fn build(self) -> Box<dyn Metric + Send> {
        use crate::fbeta::FBetaScore;
        use crate::iou::Iou;
        match self {
            ClassificationMetricKind::Count(cell, t) => match cell {
                ConfusionCell::TruePositives => Box::new(TruePositives::with_threshold(t)),
                ConfusionCell::FalsePositives => Box::new(FalsePositives::with_threshold(t)),
                ConfusionCell::TrueNegatives => Box::new(TrueNegatives::with_threshold(t)),
                ConfusionCell::FalseNegatives => Box::new(FalseNegatives::with_threshold(t)),
            },
            ClassificationMetricKind::PrecisionAtRecall(v) => Box::new(PrecisionAtRecall::new(v)),
            ClassificationMetricKind::RecallAtPrecision(v) => Box::new(RecallAtPrecision::new(v)),
            ClassificationMetricKind::SensitivityAtSpecificity(v) => Box::new(SensitivityAtSpecificity::new(v)),
            ClassificationMetricKind::SpecificityAtSensitivity(v) => Box::new(SpecificityAtSensitivity::new(v)),
            ClassificationMetricKind::KerasAuc(c, s) => Box::new(KerasAuc::new().curve(c).summation_method(s)),
            ClassificationMetricKind::KerasAucWith { curve, summation, multi_label, num_labels, label_weights } => {
                let mut m = KerasAuc::new().curve(curve).summation_method(summation).multi_label(multi_label);
                if let Some(n) = num_labels {
                    m = m.num_labels(n);
                }
                if let Some(w) = label_weights {
                    m = m.label_weights(w.to_vec());
                }
                Box::new(m)
            }
            ClassificationMetricKind::Precision { threshold, top_k, class_id } => {
                let mut m = threshold.map_or_else(crate::Precision::new, crate::Precision::with_threshold);
                if let Some(k) = top_k {
                    m = m.top_k(k);
                }
                if let Some(c) = class_id {
                    m = m.class_id(c);
                }
                Box::new(m)
            }
            ClassificationMetricKind::Recall { threshold, top_k, class_id } => {
                let mut m = threshold.map_or_else(crate::Recall::new, crate::Recall::with_threshold);
                if let Some(k) = top_k {
                    m = m.top_k(k);
                }
                if let Some(c) = class_id {
                    m = m.class_id(c);
                }
                Box::new(m)
            }
            ClassificationMetricKind::MeanIou(n) => Box::new(Iou::mean(n)),
            ClassificationMetricKind::OneHotMeanIou(n) => Box::new(Iou::one_hot_mean(n)),
            ClassificationMetricKind::BinaryIou(t) => Box::new(Iou::binary(&[0, 1], t)),
            ClassificationMetricKind::FBeta(a, b, t) => Box::new(FBetaScore::new(a, b, t)),
        }
    }
}
