//! Keras 3's intersection-over-union metrics ([`Iou`]): `IoU`, `MeanIoU`, `BinaryIoU`,
//! `OneHotIoU` and `OneHotMeanIoU`, all from one weighted confusion matrix.

use crate::error::{MetricsError, Result};
use crate::input::{argmax_rows, no_nan};
use crate::metric::{ArrayRef, Metric};

/// Keras's `backend.epsilon()`, as the f32 its tensors hold.
const EPS: f64 = 1e-7f32 as f64;

/// How an [`Iou`] reads one operand.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Read {
    /// Integer class labels (any shape, flattened).
    Sparse,
    /// Scores or one-hot rows: the argmax of the last axis.
    Dense,
    /// Probabilities of class 1: `>= threshold` is class 1 (`BinaryIoU`'s `y_pred`).
    Threshold(f64),
}

/// Keras's IoU metrics: a `num_classes x num_classes` confusion matrix accumulated over
/// batches, and the mean over `target_class_ids` of `tp / (tp + fp + fn)`, counting only
/// classes with a non-zero denominator (Keras's `IoU.result`, epsilon included).
///
/// - [`Iou::new`]`(num_classes, target_class_ids)`: Keras `IoU` (sparse labels), `"io_u"`;
/// - [`Iou::mean`]`(num_classes)`: `MeanIoU`, every class, `"mean_io_u"`;
/// - [`Iou::binary`]`(target_class_ids, threshold)`: `BinaryIoU`, `y_true` 0/1 labels and
///   `y_pred` scores (`>= threshold` is class 1), `"binary_io_u"`;
/// - [`Iou::one_hot`]`(num_classes, target_class_ids)` / [`Iou::one_hot_mean`]`(num_classes)`:
///   `OneHotIoU` / `OneHotMeanIoU`, both operands one-hot or scores (argmax of the last
///   axis), `"one_hot_io_u"` / `"one_hot_mean_io_u"`;
/// - [`sparse_y_true`](Iou::sparse_y_true) / [`sparse_y_pred`](Iou::sparse_y_pred) and
///   [`ignore_class`](Iou::ignore_class) as Keras's arguments.
///
/// Sample weights: one per sample (broadcast over its labels), one per label, or one for all.
/// Differences from Keras: a label outside `0..num_classes` (other than `ignore_class`) or not
/// an integer is an error (Keras silently leaves it out), and weights stay real numbers (Keras
/// keeps an integer matrix and truncates float weights). A target class id out of range makes
/// the first update fail with [`MetricsError::InvalidArgument`]. [`Iou::class_ious`] gives
/// the IoU of each target class.
#[derive(Debug, Clone)]
pub struct Iou {
    name: String,
    num_classes: usize,
    target_class_ids: Vec<usize>,
    ignore_class: Option<i64>,
    read_true: Read,
    read_pred: Read,
    cm: Vec<f64>,
}

impl Iou {
    fn build(name: &str, num_classes: usize, target_class_ids: Vec<usize>, read_true: Read, read_pred: Read) -> Self {
        Iou {
            name: name.into(),
            num_classes,
            target_class_ids,
            ignore_class: None,
            read_true,
            read_pred,
            cm: vec![0.0; num_classes * num_classes],
        }
    }

    /// Keras `IoU(num_classes, target_class_ids)`: sparse labels on both sides.
    pub fn new(num_classes: usize, target_class_ids: &[usize]) -> Self {
        Iou::build("io_u", num_classes, target_class_ids.to_vec(), Read::Sparse, Read::Sparse)
    }

    /// Keras `MeanIoU(num_classes)`: sparse labels, the mean over every class.
    pub fn mean(num_classes: usize) -> Self {
        Iou::build("mean_io_u", num_classes, (0..num_classes).collect(), Read::Sparse, Read::Sparse)
    }

    /// Keras `BinaryIoU(target_class_ids, threshold)` (Keras's defaults: `&[0, 1]`, 0.5).
    pub fn binary(target_class_ids: &[usize], threshold: f64) -> Self {
        Iou::build("binary_io_u", 2, target_class_ids.to_vec(), Read::Sparse, Read::Threshold(threshold))
    }

    /// Keras `OneHotIoU(num_classes, target_class_ids)`: one-hot / score rows on both sides.
    pub fn one_hot(num_classes: usize, target_class_ids: &[usize]) -> Self {
        Iou::build("one_hot_io_u", num_classes, target_class_ids.to_vec(), Read::Dense, Read::Dense)
    }

    /// Keras `OneHotMeanIoU(num_classes)`: one-hot / score rows, the mean over every class.
    pub fn one_hot_mean(num_classes: usize) -> Self {
        Iou::build("one_hot_mean_io_u", num_classes, (0..num_classes).collect(), Read::Dense, Read::Dense)
    }

    /// Keras's `sparse_y_true`: `false` reads `y_true` as one-hot / score rows (argmax).
    pub fn sparse_y_true(mut self, sparse: bool) -> Self {
        self.read_true = if sparse { Read::Sparse } else { Read::Dense };
        self
    }

    /// Keras's `sparse_y_pred`: `false` reads `y_pred` as score rows (argmax).
    pub fn sparse_y_pred(mut self, sparse: bool) -> Self {
        self.read_pred = if sparse { Read::Sparse } else { Read::Dense };
        self
    }

    /// Keras's `ignore_class`: elements whose true label is this value are left out.
    pub fn ignore_class(mut self, class: Option<i64>) -> Self {
        self.ignore_class = class;
        self
    }

    /// Rename the metric (its log key).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The IoU of each target class (0.0 for a class never seen in `y_true` or `y_pred`).
    pub fn class_ious(&self) -> Vec<f64> {
        self.per_class().0
    }

    /// The accumulated confusion matrix, rows true classes, columns predicted classes.
    pub fn confusion_matrix(&self) -> crate::metric::Matrix {
        crate::metric::Matrix { rows: self.num_classes, cols: self.num_classes, data: self.cm.clone() }
    }

    fn check(&self) -> Result<()> {
        if self.num_classes == 0 {
            return Err(MetricsError::arg(&self.name, "num_classes must be at least 1"));
        }
        if self.target_class_ids.is_empty() {
            return Err(MetricsError::arg(&self.name, "target_class_ids is empty: pass at least one class id"));
        }
        if let Some(&bad) = self.target_class_ids.iter().find(|&&c| c >= self.num_classes) {
            return Err(MetricsError::arg(
                &self.name,
                format!("target class id {bad} is out of range [0, {})", self.num_classes),
            ));
        }
        if let Read::Threshold(t) = self.read_pred {
            if !t.is_finite() {
                return Err(MetricsError::arg(&self.name, format!("threshold {t} is not a finite number")));
            }
        }
        Ok(())
    }

    /// The labels of one operand: `Some(class)`, or `None` for the ignored class (`y_true` only).
    fn labels(&self, what: &str, arr: &ArrayRef<'_>, read: Read) -> Result<Vec<Option<usize>>> {
        let k = self.num_classes;
        match read {
            Read::Dense => {
                if arr.rank() < 2 || arr.last_dim() != k {
                    return Err(MetricsError::input(
                        &self.name,
                        format!("{what} of shape {:?} is not one-hot / score rows [.., {k}]", arr.dims()),
                    ));
                }
                Ok(argmax_rows(&self.name, what, arr.data(), k)?.into_iter().map(Some).collect())
            }
            Read::Threshold(t) => {
                no_nan(&self.name, what, arr.data())?;
                let t = t as f32;
                Ok(arr.data().iter().map(|&p| Some(usize::from(p as f32 >= t))).collect())
            }
            Read::Sparse => arr
                .data()
                .iter()
                .map(|&v| {
                    if what == "y_true" && self.ignore_class.is_some_and(|c| c as f64 == v) {
                        return Ok(None);
                    }
                    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && (v as usize) < k {
                        Ok(Some(v as usize))
                    } else {
                        Err(MetricsError::input(
                            &self.name,
                            format!(
                                "label {v} in {what} is not an integer in 0..{k}: pass class ids \
                                 (or set ignore_class to leave a label out)"
                            ),
                        ))
                    }
                })
                .collect(),
        }
    }

    /// The IoU of each target class (0.0 where its denominator is 0), and how many are valid.
    fn per_class(&self) -> (Vec<f64>, usize) {
        let k = self.num_classes;
        let mut valid = 0;
        let ious = self
            .target_class_ids
            .iter()
            .map(|&c| {
                if c >= k {
                    return 0.0;
                }
                let row: f64 = (0..k).map(|j| self.cm[c * k + j]).sum();
                let col: f64 = (0..k).map(|i| self.cm[i * k + c]).sum();
                let tp = self.cm[c * k + c];
                let denom = row + col - tp;
                if denom > 1e-9 {
                    valid += 1;
                    tp / (denom + EPS)
                } else {
                    0.0
                }
            })
            .collect();
        (ious, valid)
    }
}

impl Metric for Iou {
    fn name(&self) -> &str {
        &self.name
    }

    fn update_arrays(
        &mut self,
        y_true: ArrayRef<'_>,
        y_pred: ArrayRef<'_>,
        sample_weight: Option<&[f64]>,
    ) -> Result<()> {
        self.check()?;
        let t = self.labels("y_true", &y_true, self.read_true)?;
        let p = self.labels("y_pred", &y_pred, self.read_pred)?;
        if t.len() != p.len() {
            return Err(MetricsError::shape(
                &self.name,
                y_true.dims(),
                y_pred.dims(),
                "y_true and y_pred need the same number of labels",
            ));
        }
        let n = y_true.n_samples();
        let w: Vec<f64> = match sample_weight {
            None => vec![1.0; t.len()],
            Some(w) if w.len() == t.len() => w.to_vec(),
            Some(w) if w.len() == 1 => vec![w[0]; t.len()],
            Some(w) if n > 0 && w.len() == n && t.len() % n == 0 => {
                let per = t.len() / n;
                (0..t.len()).map(|i| w[i / per]).collect()
            }
            Some(w) => {
                return Err(MetricsError::weights(&self.name, &["y_true", "sample_weight"], y_true.dims(), w.len(), n))
            }
        };
        let k = self.num_classes;
        for ((a, b), wi) in t.into_iter().zip(p).zip(w) {
            if let (Some(a), Some(b)) = (a, b) {
                self.cm[a * k + b] += wi;
            }
        }
        Ok(())
    }

    /// The mean IoU over the target classes with a non-zero denominator (0.0 if none).
    fn result(&self) -> f64 {
        let (ious, valid) = self.per_class();
        ious.iter().sum::<f64>() / (valid as f64 + EPS)
    }

    fn reset_state(&mut self) {
        self.cm.iter_mut().for_each(|v| *v = 0.0);
    }
}
