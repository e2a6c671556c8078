//! Keras's loss-valued metrics ([`LossMetric`]): `"binary_crossentropy"`, `"mape"`,
//! `"kl_divergence"`, `"hinge"`, ... as `compile(metrics=[...])` takes them: the weighted
//! mean over samples of a per-sample loss, with Keras 3's formulas and clipping (epsilon
//! `1e-7`).

use crate::error::{MetricsError, Result};
use crate::input::{labels_of, same_size, sample_weights, MeanAcc};
use crate::metric::{ArrayRef, Metric};

/// Keras's `backend.epsilon()`, as the f32 its tensors hold.
const EPS: f64 = 1e-7f32 as f64;
/// Keras's upper clip `1 - epsilon` as an f32 (0.99999988): a saturated probability costs
/// `-ln(1.19e-7)`, as in Keras and in keel's own losses, not `-ln(1e-7)`.
const ONE_MINUS_EPS: f64 = (1.0f32 - 1e-7f32) as f64;

/// Which loss a [`LossMetric`] averages (Keras's metric classes of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossMetricKind {
    /// `100 * mean(|t - p| / max(|t|, eps))` over a sample's values (`"mape"`).
    MeanAbsolutePercentageError,
    /// `mean((ln(max(p, eps) + 1) - ln(max(t, eps) + 1))^2)` (`"msle"`).
    MeanSquaredLogarithmicError,
    /// `sum(t / |t| * p / |p|)` over the last axis, the norms at least `eps` (`"cosine_similarity"`).
    CosineSimilarity,
    /// `mean(ln(cosh(p - t)))` (`"log_cosh_error"`, logged as `"logcosh"`).
    LogCoshError,
    /// `mean(-(t ln p + (1 - t) ln(1 - p)))`, `p` clipped to `[eps, 1 - eps]` (`"binary_crossentropy"`).
    BinaryCrossentropy,
    /// `-sum(t ln p)` with `p` normalized to sum 1 and clipped (`"categorical_crossentropy"`).
    CategoricalCrossentropy,
    /// The categorical cross-entropy of class indices (`"sparse_categorical_crossentropy"`).
    SparseCategoricalCrossentropy,
    /// `sum(t ln(t / p))`, both clipped to `[eps, 1]` (`"kl_divergence"`).
    KlDivergence,
    /// `mean(p - t ln(p + eps))` (`"poisson"`).
    Poisson,
    /// `mean(max(1 - t p, 0))`, 0/1 targets read as -1/1 (`"hinge"`).
    Hinge,
    /// `mean(max(1 - t p, 0)^2)`, 0/1 targets read as -1/1 (`"squared_hinge"`).
    SquaredHinge,
    /// `max(max((1 - t) p) - sum(t p) + 1, 0)` (`"categorical_hinge"`).
    CategoricalHinge,
}

impl LossMetricKind {
    /// Every kind, in the order above.
    pub const ALL: [LossMetricKind; 12] = [
        LossMetricKind::MeanAbsolutePercentageError,
        LossMetricKind::MeanSquaredLogarithmicError,
        LossMetricKind::CosineSimilarity,
        LossMetricKind::LogCoshError,
        LossMetricKind::BinaryCrossentropy,
        LossMetricKind::CategoricalCrossentropy,
        LossMetricKind::SparseCategoricalCrossentropy,
        LossMetricKind::KlDivergence,
        LossMetricKind::Poisson,
        LossMetricKind::Hinge,
        LossMetricKind::SquaredHinge,
        LossMetricKind::CategoricalHinge,
    ];

    /// The name Keras logs the metric under (`"mean_absolute_percentage_error"`, `"logcosh"`, ...).
    pub fn log_name(self) -> &'static str {
        match self {
            LossMetricKind::MeanAbsolutePercentageError => "mean_absolute_percentage_error",
            LossMetricKind::MeanSquaredLogarithmicError => "mean_squared_logarithmic_error",
            LossMetricKind::CosineSimilarity => "cosine_similarity",
            LossMetricKind::LogCoshError => "logcosh",
            LossMetricKind::BinaryCrossentropy => "binary_crossentropy",
            LossMetricKind::CategoricalCrossentropy => "categorical_crossentropy",
            LossMetricKind::SparseCategoricalCrossentropy => "sparse_categorical_crossentropy",
            LossMetricKind::KlDivergence => "kl_divergence",
            LossMetricKind::Poisson => "poisson",
            LossMetricKind::Hinge => "hinge",
            LossMetricKind::SquaredHinge => "squared_hinge",
            LossMetricKind::CategoricalHinge => "categorical_hinge",
        }
    }

    /// The kind of a Keras metric name (lower case; `keras.metrics.get`'s names and aliases).
    pub fn from_name(name: &str) -> Option<LossMetricKind> {
        Some(match name {
            "mape" | "mean_absolute_percentage_error" => LossMetricKind::MeanAbsolutePercentageError,
            "msle" | "mean_squared_logarithmic_error" => LossMetricKind::MeanSquaredLogarithmicError,
            "cosine_similarity" => LossMetricKind::CosineSimilarity,
            "log_cosh_error" | "logcosh" => LossMetricKind::LogCoshError,
            "binary_crossentropy" => LossMetricKind::BinaryCrossentropy,
            "categorical_crossentropy" => LossMetricKind::CategoricalCrossentropy,
            "sparse_categorical_crossentropy" => LossMetricKind::SparseCategoricalCrossentropy,
            "kl_divergence" | "kld" => LossMetricKind::KlDivergence,
            "poisson" => LossMetricKind::Poisson,
            "hinge" => LossMetricKind::Hinge,
            "squared_hinge" => LossMetricKind::SquaredHinge,
            "categorical_hinge" => LossMetricKind::CategoricalHinge,
            _ => return None,
        })
    }

    /// The per-sample losses of a batch (`y_true` as given, `y_pred` `[n, ..]`).
    fn per_sample(self, name: &str, y_true: &ArrayRef<'_>, y_pred: &ArrayRef<'_>) -> Result<Vec<f64>> {
        if self == LossMetricKind::SparseCategoricalCrossentropy {
            return sparse_xent(name, y_true, y_pred);
        }
        let n = y_pred.n_samples();
        same_size(name, y_true, y_pred)?;
        // Keras reduces the last axis; a 1-D input is one value per sample
        let k = if y_pred.rank() <= 1 { 1 } else { y_pred.data().len() / n.max(1) };
        let (t, p) = (y_true.data(), y_pred.data());
        let mean = |f: &dyn Fn(f64, f64) -> f64| -> Vec<f64> {
            rows(t, p, k).map(|(t, p)| t.iter().zip(p).map(|(&t, &p)| f(t, p)).sum::<f64>() / k as f64).collect()
        };
        Ok(match self {
            LossMetricKind::MeanAbsolutePercentageError => mean(&|t, p| 100.0 * ((t - p) / t.abs().max(EPS)).abs()),
            LossMetricKind::MeanSquaredLogarithmicError => {
                mean(&|t, p| ((p.max(EPS) + 1.0).ln() - (t.max(EPS) + 1.0).ln()).powi(2))
            }
            LossMetricKind::LogCoshError => mean(&|t, p| {
                let x = p - t;
                // x + softplus(-2x) - ln 2, stable for large |x|
                x + softplus(-2.0 * x) - std::f64::consts::LN_2
            }),
            LossMetricKind::BinaryCrossentropy => mean(&|t, p| {
                let p = p.clamp(EPS, ONE_MINUS_EPS);
                -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
            }),
            LossMetricKind::Poisson => mean(&|t, p| p - t * (p + EPS).ln()),
            LossMetricKind::Hinge | LossMetricKind::SquaredHinge => {
                // Keras reads 0/1 targets as -1/1 when every target of the batch is 0 or 1
                let binary = t.iter().all(|&v| v == 0.0 || v == 1.0);
                let sign = |t: f64| if binary { 2.0 * t - 1.0 } else { t };
                let square = self == LossMetricKind::SquaredHinge;
                mean(&|t, p| {
                    let h = (1.0 - sign(t) * p).max(0.0);
                    if square {
                        h * h
                    } else {
                        h
                    }
                })
            }
            LossMetricKind::CosineSimilarity => rows(t, p, k)
                .map(|(t, p)| {
                    let inv = |v: &[f64]| (1.0 / v.iter().map(|x| x * x).sum::<f64>().sqrt()).min(1.0 / EPS);
                    let (it, ip) = (inv(t), inv(p));
                    t.iter().zip(p).map(|(a, b)| a * it * b * ip).sum()
                })
                .collect(),
            LossMetricKind::CategoricalCrossentropy => rows(t, p, k).map(|(t, p)| categorical_xent(t, p)).collect(),
            LossMetricKind::KlDivergence => rows(t, p, k)
                .map(|(t, p)| {
                    t.iter()
                        .zip(p)
                        .map(|(&t, &p)| {
                            let (t, p) = (t.clamp(EPS, 1.0), p.clamp(EPS, 1.0));
                            t * (t / p).ln()
                        })
                        .sum()
                })
                .collect(),
            LossMetricKind::CategoricalHinge => rows(t, p, k)
                .map(|(t, p)| {
                    let pos: f64 = t.iter().zip(p).map(|(t, p)| t * p).sum();
                    let neg = t.iter().zip(p).map(|(t, p)| (1.0 - t) * p).fold(f64::NEG_INFINITY, f64::max);
                    (neg - pos + 1.0).max(0.0)
                })
                .collect(),
            LossMetricKind::SparseCategoricalCrossentropy => sparse_xent(name, y_true, y_pred)?,
        })
    }
}

/// The categorical cross-entropies of class indices `y_true` against `y_pred` `[n, classes]`.
fn sparse_xent(name: &str, y_true: &ArrayRef<'_>, y_pred: &ArrayRef<'_>) -> Result<Vec<f64>> {
    let (n, k) = (y_pred.n_samples(), y_pred.last_dim());
    if y_pred.rank() != 2 || y_true.data().len() != n {
        return Err(MetricsError::input(
            name,
            format!(
                "needs y_pred [n, classes] and one class index per sample, got y_true {:?} and y_pred {:?}",
                y_true.dims(),
                y_pred.dims()
            ),
        ));
    }
    let labels = labels_of(name, "y_true", y_true, k)?;
    Ok(labels
        .into_iter()
        .zip(y_pred.data().chunks(k.max(1)))
        .map(|(l, p)| {
            let s: f64 = p.iter().sum();
            -(p[l] / s).clamp(EPS, ONE_MINUS_EPS).ln()
        })
        .collect())
}

/// The rows of `k` values of `t` and `p`, side by side.
fn rows<'a>(t: &'a [f64], p: &'a [f64], k: usize) -> impl Iterator<Item = (&'a [f64], &'a [f64])> {
    t.chunks(k.max(1)).zip(p.chunks(k.max(1)))
}

/// Keras's categorical cross-entropy of one sample: `p` normalized to sum 1, clipped to
/// `[eps, 1 - eps]`, then `-sum(t ln p)`.
fn categorical_xent(t: &[f64], p: &[f64]) -> f64 {
    let s: f64 = p.iter().sum();
    -t.iter().zip(p).map(|(t, p)| t * (p / s).clamp(EPS, ONE_MINUS_EPS).ln()).sum::<f64>()
}

/// `ln(1 + e^x)` without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// One of Keras's loss functions used as a metric ([`LossMetricKind`]): the weighted mean
/// over every sample seen of its per-sample loss (Keras's `MeanMetricWrapper`); 0.0 before
/// any sample.
#[derive(Debug, Clone)]
pub struct LossMetric {
    kind: LossMetricKind,
    name: String,
    acc: MeanAcc,
}

impl LossMetric {
    /// A new, empty metric of `kind`, named as Keras logs it.
    pub fn new(kind: LossMetricKind) -> Self {
        LossMetric { kind, name: kind.log_name().into(), acc: MeanAcc::default() }
    }

    /// Rename the metric (its log key).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The loss it averages.
    pub fn kind(&self) -> LossMetricKind {
        self.kind
    }
}

impl Metric for LossMetric {
    fn name(&self) -> &str {
        &self.name
    }

    fn update_arrays(
        &mut self,
        y_true: ArrayRef<'_>,
        y_pred: ArrayRef<'_>,
        sample_weight: Option<&[f64]>,
    ) -> Result<()> {
        let n = y_pred.n_samples();
        let values = self.kind.per_sample(&self.name, &y_true, &y_pred)?;
        let w = sample_weights(&self.name, sample_weight, n, y_pred.dims())?;
        self.acc.add_samples(&self.name, &values, n, &w)
    }

    fn result(&self) -> f64 {
        self.acc.value()
    }

    fn reset_state(&mut self) {
        self.acc = MeanAcc::default();
    }
}
