//! Losses: [`Loss`] (the Keras loss by name) and [`LossFn`] (a loss with its
//! options: `from_logits`, Huber's `delta`, `label_smoothing`, `reduction`).
//!
//! Each loss first computes one value per sample (per position for sequences):
//! regression losses, the hinge losses and binary cross-entropy average over the
//! last axis; the categorical ones, KL divergence and cosine similarity sum over it.
//! These are then weighted by `sample_weight` (one weight per sample, shape
//! `[batch]`) and a mask ([`LossFn::compute_masked`]), and reduced by the loss's
//! [`Reduction`] (Keras's `reduction=`): by default `sum_over_batch_size`, the
//! weighted sum divided by the number of per-sample losses, a 0-d Var; `sum`,
//! `mean_with_sample_weight` (divided by the sum of the weights) and `none` (the
//! weighted per-sample losses themselves, shape `[batch]` or `[batch, timesteps]`)
//! as in Keras. Predictions of rank 1 (`[batch]`) count as one value per sample,
//! where Keras would average them into one value for the whole batch.
//!
//! Probability inputs are clipped to `[1e-7, 1 - 1e-7]` before the log (Keras's
//! epsilon); categorical probabilities are first renormalised to sum to 1.
//! With `from_logits` (or through [`LossFn::compute_head`] when the model ends
//! with the matching softmax/sigmoid) the fused, stable primitives of
//! keel-autograd are used instead.

use crate::network::Head;
use crate::{Activation, Error, Result};
use keel_autograd::{sigmoid_binary_cross_entropy, softmax_cross_entropy, softmax_cross_entropy_and_softmax, Var};
use keel_tensor::{CmpOp, DType, Device, Tensor};
use serde::{Deserialize, Serialize};

/// Keras's `backend.epsilon()`, the probability clip of the cross-entropies.
pub const EPSILON: f64 = 1e-7;

/// A Keras loss, by kind. `Loss::CategoricalCrossentropy` is the loss with
/// Keras's defaults; options come with [`Loss::from_logits`] / [`LossFn::huber`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// `mean((y - p)^2)` over the last axis.
    MeanSquaredError,
    /// `mean(|y - p|)` over the last axis.
    MeanAbsoluteError,
    /// Huber loss (delta 1.0 unless set with [`LossFn::huber`]).
    Huber,
    /// Binary cross-entropy on probabilities (or logits with `from_logits`).
    BinaryCrossentropy,
    /// Categorical cross-entropy with one-hot (or probability) targets.
    CategoricalCrossentropy,
    /// Categorical cross-entropy with integer class targets.
    SparseCategoricalCrossentropy,
    /// `mean((log(1 + max(p, eps)) - log(1 + max(y, eps)))^2)` over the last axis.
    MeanSquaredLogarithmicError,
    /// `100 * mean(|y - p| / max(|y|, eps))` over the last axis.
    MeanAbsolutePercentageError,
    /// `mean(log(cosh(p - y)))` over the last axis (computed stably).
    LogCosh,
    /// `mean(p - y * log(p + eps))` over the last axis.
    Poisson,
    /// `sum(y * log(y / p))` over the last axis, `y` and `p` clipped to `[eps, 1]`.
    KLDivergence,
    /// `-sum(l2_normalize(y) * l2_normalize(p))` over the last axis (-1 is best).
    CosineSimilarity,
    /// `mean(max(1 - y * p, 0))` over the last axis; 0/1 targets are read as -1/1.
    Hinge,
    /// `mean(max(1 - y * p, 0)^2)` over the last axis; 0/1 targets are read as -1/1.
    SquaredHinge,
    /// `max(max((1 - y) * p) - sum(y * p) + 1, 0)` over the class axis, one-hot targets.
    CategoricalHinge,
    /// Binary cross-entropy times `(1 - p_t)^gamma` (Lin et al.'s focal loss; `gamma`,
    /// optional class balancing by `alpha`: see [`LossFn::gamma`]), mean over the last axis.
    BinaryFocalCrossentropy,
    /// Categorical cross-entropy times `alpha * (1 - p)^gamma` per class, summed over the
    /// class axis (one-hot or probability targets).
    CategoricalFocalCrossentropy,
}

impl Loss {
    /// Look up by Keras name or alias (`"mse"`, `"categorical_crossentropy"`, `"huber"`, ...).
    pub fn from_name(name: &str) -> Result<Loss> {
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "mse" | "mean_squared_error" | "meansquarederror" => Loss::MeanSquaredError,
            "mae" | "mean_absolute_error" | "meanabsoluteerror" => Loss::MeanAbsoluteError,
            "huber" | "huber_loss" => Loss::Huber,
            "bce" | "binary_crossentropy" | "binarycrossentropy" => Loss::BinaryCrossentropy,
            "categorical_crossentropy" | "categoricalcrossentropy" | "cce" => Loss::CategoricalCrossentropy,
            "sparse_categorical_crossentropy" | "sparsecategoricalcrossentropy" | "scce" => {
                Loss::SparseCategoricalCrossentropy
            }
            "msle" | "mean_squared_logarithmic_error" | "meansquaredlogarithmicerror" => {
                Loss::MeanSquaredLogarithmicError
            }
            "mape" | "mean_absolute_percentage_error" | "meanabsolutepercentageerror" => {
                Loss::MeanAbsolutePercentageError
            }
            "log_cosh" | "logcosh" => Loss::LogCosh,
            "poisson" => Loss::Poisson,
            "kld" | "kl_divergence" | "kullback_leibler_divergence" | "kldivergence" => Loss::KLDivergence,
            "cosine_similarity" | "cosinesimilarity" => Loss::CosineSimilarity,
            "hinge" => Loss::Hinge,
            "squared_hinge" | "squaredhinge" => Loss::SquaredHinge,
            "categorical_hinge" | "categoricalhinge" => Loss::CategoricalHinge,
            "binary_focal_crossentropy" | "binaryfocalcrossentropy" => Loss::BinaryFocalCrossentropy,
            "categorical_focal_crossentropy" | "categoricalfocalcrossentropy" => Loss::CategoricalFocalCrossentropy,
            _ => return Err(Error::UnknownName { kind: "loss", name: name.to_string() }),
        })
    }

    /// The Keras name (`"mean_squared_error"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Loss::MeanSquaredError => "mean_squared_error",
            Loss::MeanAbsoluteError => "mean_absolute_error",
            Loss::Huber => "huber",
            Loss::BinaryCrossentropy => "binary_crossentropy",
            Loss::CategoricalCrossentropy => "categorical_crossentropy",
            Loss::SparseCategoricalCrossentropy => "sparse_categorical_crossentropy",
            Loss::MeanSquaredLogarithmicError => "mean_squared_logarithmic_error",
            Loss::MeanAbsolutePercentageError => "mean_absolute_percentage_error",
            Loss::LogCosh => "log_cosh",
            Loss::Poisson => "poisson",
            Loss::KLDivergence => "kl_divergence",
            Loss::CosineSimilarity => "cosine_similarity",
            Loss::Hinge => "hinge",
            Loss::SquaredHinge => "squared_hinge",
            Loss::CategoricalHinge => "categorical_hinge",
            Loss::BinaryFocalCrossentropy => "binary_focal_crossentropy",
            Loss::CategoricalFocalCrossentropy => "categorical_focal_crossentropy",
        }
    }

    /// This loss reading raw logits (`true`) or probabilities (`false`, the default).
    pub fn from_logits(self, yes: bool) -> LossFn {
        LossFn { from_logits: yes, ..LossFn::from(self) }
    }

    /// This loss reduced by `reduction` (see [`LossFn::reduction`]).
    pub fn reduction(self, reduction: Reduction) -> LossFn {
        LossFn::from(self).reduction(reduction)
    }

    /// Compute with Keras's defaults (see [`LossFn::compute`]).
    pub fn compute(self, y_pred: &Var, y_true: &Tensor, sample_weight: Option<&Tensor>) -> Result<Var> {
        LossFn::from(self).compute(y_pred, y_true, sample_weight)
    }

    /// Compute on a model [`Head`], fusing with its final activation (see [`LossFn::compute_head`]).
    pub fn compute_head(self, head: &Head, y_true: &Tensor, sample_weight: Option<&Tensor>) -> Result<Var> {
        LossFn::from(self).compute_head(head, y_true, sample_weight)
    }
}

impl std::str::FromStr for Loss {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Loss::from_name(s)
    }
}

/// How a loss reduces its per-sample (per-position) values: Keras 3's `reduction`
/// argument, by the same names. With weights `w` (the sample weights times a mask's
/// weights, 1 where none) and per-sample losses `l` (`n` of them):
///
/// | reduction | result |
/// |---|---|
/// | `sum_over_batch_size` (default), `mean` | `sum(w l) / n`, a 0-d value |
/// | `sum` | `sum(w l)` |
/// | `mean_with_sample_weight` | `sum(w l) / sum(w)` (0 when `sum(w)` is 0); `sum(w l) / n` without weights or mask |
/// | `none` | `w l` itself, shape `[batch]` (`[batch, timesteps]` for sequences) |
///
/// For `mean_with_sample_weight`, `sum(w)` adds one weight per sample, as Keras does with
/// weights of shape `[batch, 1]` for sequences, unless a mask is merged in: then one per
/// position (the kept positions' sample weights).
///
/// A mask weighs the positions it keeps `n / kept` under `sum_over_batch_size` and `mean`
/// (so the loss is the mean over the kept positions) and 1 under the others (masked
/// positions weigh 0 in every reduction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Reduction {
    /// `sum(w l) / n` (Keras's default).
    #[default]
    SumOverBatchSize,
    /// `sum(w l)`.
    Sum,
    /// The same as [`Reduction::SumOverBatchSize`] (Keras's `"mean"`).
    Mean,
    /// `sum(w l) / sum(w)`: the weighted mean.
    MeanWithSampleWeight,
    /// No reduction: the weighted per-sample (per-position) losses (Keras's `"none"` or `None`).
    None,
}

impl Reduction {
    /// Every reduction, in Keras's documentation order.
    pub const ALL: [Reduction; 5] = [
        Reduction::SumOverBatchSize,
        Reduction::Sum,
        Reduction::Mean,
        Reduction::MeanWithSampleWeight,
        Reduction::None,
    ];

    /// Look up by Keras name: `"sum_over_batch_size"`, `"sum"`, `"mean"`,
    /// `"mean_with_sample_weight"` or `"none"`.
    pub fn from_name(name: &str) -> Result<Reduction> {
        let lower = name.trim().to_ascii_lowercase();
        Reduction::ALL.into_iter().find(|r| r.name() == lower).ok_or_else(|| {
            Error::config(
                "loss reduction",
                format!(
                    "unknown reduction \"{name}\"; use one of \"sum_over_batch_size\" (the default), \"sum\", \
                     \"mean\", \"mean_with_sample_weight\" or \"none\""
                ),
            )
        })
    }

    /// The Keras name (`"sum_over_batch_size"`, ...; `"none"` for [`Reduction::None`]).
    pub fn name(self) -> &'static str {
        match self {
            Reduction::SumOverBatchSize => "sum_over_batch_size",
            Reduction::Sum => "sum",
            Reduction::Mean => "mean",
            Reduction::MeanWithSampleWeight => "mean_with_sample_weight",
            Reduction::None => "none",
        }
    }

    /// True for the reductions that give a 0-d value (all but [`Reduction::None`]).
    pub fn is_scalar(self) -> bool {
        self != Reduction::None
    }
}

impl std::str::FromStr for Reduction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Reduction::from_name(s)
    }
}

impl std::fmt::Display for Reduction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Serialized as its Keras name (the config key `"reduction"` of a Keras loss).
impl Serialize for Reduction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Read from a Keras name, or `null` (Keras's `reduction=None`) as [`Reduction::None`].
impl<'de> Deserialize<'de> for Reduction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(Reduction::None),
            Some(name) => Reduction::from_name(&name).map_err(serde::de::Error::custom),
        }
    }
}

/// A loss with its options (Keras's loss object: `CategoricalCrossentropy(from_logits=True)`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossFn {
    /// The kind.
    pub loss: Loss,
    /// Predictions are logits (cross-entropies only).
    pub from_logits: bool,
    /// Huber's threshold (default 1.0).
    pub delta: f64,
    /// Label smoothing of the binary and categorical cross-entropies (default 0):
    /// targets become `y * (1 - s) + s / classes` (`s / 2` for the binary one).
    #[serde(default)]
    pub label_smoothing: f64,
    /// The focal losses' focusing exponent (default 2.0): the cross-entropy of a class
    /// predicted with probability `q` is scaled by `(1 - q)^gamma`.
    #[serde(default = "focal_gamma")]
    pub gamma: f64,
    /// The focal losses' weight (default 0.25): the categorical one always scales by it,
    /// the binary one weighs positives `alpha` and negatives `1 - alpha` when
    /// `apply_class_balancing`.
    #[serde(default = "focal_alpha")]
    pub alpha: f64,
    /// Binary focal loss only: weigh by `alpha` / `1 - alpha` (default false).
    #[serde(default)]
    pub apply_class_balancing: bool,
    /// How the per-sample losses are reduced (Keras's `reduction`; default
    /// `sum_over_batch_size`, which configs saved before this option read as).
    #[serde(default)]
    pub reduction: Reduction,
}

fn focal_gamma() -> f64 {
    2.0
}

fn focal_alpha() -> f64 {
    0.25
}

impl From<Loss> for LossFn {
    fn from(loss: Loss) -> Self {
        LossFn {
            loss,
            from_logits: false,
            delta: 1.0,
            label_smoothing: 0.0,
            gamma: focal_gamma(),
            alpha: focal_alpha(),
            apply_class_balancing: false,
            reduction: Reduction::SumOverBatchSize,
        }
    }
}

impl LossFn {
    /// Huber loss with threshold `delta`.
    pub fn huber(delta: f64) -> Self {
        LossFn { delta, ..LossFn::from(Loss::Huber) }
    }

    /// Smooth the targets by `s` in `[0, 1]` (Keras's `label_smoothing`; the binary and
    /// categorical cross-entropies, focal ones included, with dense targets only).
    pub fn label_smoothing(self, s: f64) -> Self {
        LossFn { label_smoothing: s, ..self }
    }

    /// The focal losses' `gamma` (>= 0; default 2.0; 0 gives the plain cross-entropy, times
    /// `alpha` for the categorical one).
    pub fn gamma(self, gamma: f64) -> Self {
        LossFn { gamma, ..self }
    }

    /// The focal losses' `alpha` (default 0.25).
    pub fn alpha(self, alpha: f64) -> Self {
        LossFn { alpha, ..self }
    }

    /// Binary focal loss: weigh positives by `alpha` and negatives by `1 - alpha`
    /// (Keras's `apply_class_balancing`).
    pub fn apply_class_balancing(self, on: bool) -> Self {
        LossFn { apply_class_balancing: on, ..self }
    }

    /// Reduce the per-sample losses by `reduction` (Keras's `reduction=`, see
    /// [`Reduction`]): with [`Reduction::None`] the loss is the per-sample (per-position)
    /// tensor, shape `[batch]` (or `[batch, timesteps]`), not a 0-d value.
    pub fn reduction(self, reduction: Reduction) -> Self {
        LossFn { reduction, ..self }
    }

    /// The targets smoothed by `label_smoothing` over `classes` classes.
    fn smoothed(&self, t: Tensor, classes: usize) -> Result<Tensor> {
        let s = self.label_smoothing;
        if s == 0.0 {
            return Ok(t);
        }
        Ok(t.mul_scalar(1.0 - s)?.add_scalar(s / classes as f64)?)
    }

    /// Check the options (`label_smoothing` in `[0, 1]` and only on a loss that smooths;
    /// Huber's `delta` > 0), as `compile` does before training.
    pub fn validate(&self) -> Result<()> {
        if self.loss == Loss::Huber && (self.delta.is_nan() || self.delta <= 0.0) {
            return Err(Error::config("huber", format!("delta must be > 0, got {}", self.delta)));
        }
        let s = self.label_smoothing;
        if !(0.0..=1.0).contains(&s) {
            return Err(Error::config(self.loss.name(), format!("label_smoothing must be in [0, 1], got {s}")));
        }
        let smooths = matches!(
            self.loss,
            Loss::BinaryCrossentropy
                | Loss::CategoricalCrossentropy
                | Loss::BinaryFocalCrossentropy
                | Loss::CategoricalFocalCrossentropy
        );
        if s != 0.0 && !smooths {
            return Err(Error::config(
                self.loss.name(),
                "label_smoothing applies to the binary and categorical cross-entropies (focal ones included) \
                 only (one-hot targets for the categorical ones)",
            ));
        }
        if matches!(self.loss, Loss::BinaryFocalCrossentropy | Loss::CategoricalFocalCrossentropy) {
            if !(self.gamma.is_finite() && self.gamma >= 0.0) {
                return Err(Error::config(
                    self.loss.name(),
                    format!("gamma must be a finite number >= 0, got {}", self.gamma),
                ));
            }
            if !self.alpha.is_finite() {
                return Err(Error::config(self.loss.name(), format!("alpha must be finite, got {}", self.alpha)));
            }
        }
        Ok(())
    }

    /// Look up by Keras name (default options).
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(Loss::from_name(name)?.into())
    }

    /// True when a model ending in `activation` lets this loss use the fused logits path.
    pub fn fuses_with(&self, activation: Activation) -> bool {
        !self.from_logits
            && matches!(
                (self.loss, activation),
                (Loss::CategoricalCrossentropy | Loss::SparseCategoricalCrossentropy, Activation::Softmax)
                    | (Loss::BinaryCrossentropy, Activation::Sigmoid)
            )
    }

    /// Compute on a model [`Head`]: when the head's activation is the softmax
    /// (sigmoid) that matches this categorical (binary) cross-entropy, use the
    /// fused primitive on its logits, as Keras does; else use its output.
    pub fn compute_head(&self, head: &Head, y_true: &Tensor, sample_weight: Option<&Tensor>) -> Result<Var> {
        if self.fuses_with(head.activation) {
            // a softmax head's output comes from the loss's kernel, if not computed yet
            let probs_to = (head.activation == Activation::Softmax && !head.has_output()).then_some(head);
            // the softmax cross-entropy reads F16/BF16 logits as F32 itself: no cast to the
            // output dtype first (mixed precision); the sigmoid one computes in the logits'
            // dtype, so it takes them in the output dtype
            let logits = if head.activation == Activation::Softmax { &head.logits } else { head.output_logits()? };
            LossFn { from_logits: true, ..*self }.compute_with(logits, y_true, sample_weight, head.mask(), probs_to)
        } else {
            self.compute_with(head.output()?, y_true, sample_weight, head.mask(), None)
        }
    }

    /// [`LossFn::compute`] counting only the positions `mask` keeps (Keras's loss masking:
    /// a model output's mask, see [`Head::mask`]). `mask` has the per-position loss's
    /// shape (the predictions' without the last axis, e.g. `[batch, timesteps]`): a masked
    /// position is weighted 0, a kept one `total / kept` under `sum_over_batch_size` and
    /// `mean` (so the loss is the mean over the kept positions, times their sample
    /// weights) and 1 under the other reductions (`sum`: the sum over the kept positions;
    /// `mean_with_sample_weight`: divided by the kept positions' weights; `none`: masked
    /// positions are 0). A mask of another shape is not applied.
    pub fn compute_masked(
        &self,
        y_pred: &Var,
        y_true: &Tensor,
        sample_weight: Option<&Tensor>,
        mask: Option<&Tensor>,
    ) -> Result<Var> {
        self.compute_with(y_pred, y_true, sample_weight, mask, None)
    }

    /// The loss of predictions `y_pred` (`[batch, ...]`) against `y_true`, reduced by
    /// [`LossFn::reduction`]: a 0-d Var (by default the mean over the samples), or with
    /// [`Reduction::None`] the weighted per-sample losses (`y_pred`'s shape without the
    /// last axis; `[batch]` for rank-1 predictions).
    ///
    /// `y_true` has `y_pred`'s shape (a trailing size-1 axis may be missing),
    /// except for sparse categorical cross-entropy where it holds class indices
    /// (any dtype) of shape `[batch]` or `[batch, 1]`. `sample_weight` is `[batch]`.
    pub fn compute(&self, y_pred: &Var, y_true: &Tensor, sample_weight: Option<&Tensor>) -> Result<Var> {
        self.compute_with(y_pred, y_true, sample_weight, None, None)
    }

    /// [`LossFn::compute`]; a softmax cross-entropy on logits also supplies `probs_to`'s
    /// output (the softmax of `y_pred`) from its kernel.
    fn compute_with(
        &self,
        y_pred: &Var,
        y_true: &Tensor,
        sample_weight: Option<&Tensor>,
        mask: Option<&Tensor>,
        probs_to: Option<&Head>,
    ) -> Result<Var> {
        let name = self.loss.name();
        self.validate()?;
        if y_pred.rank() == 0 {
            return Err(Error::LossShape { loss: name, msg: "predictions need a batch axis".into() });
        }
        let w = match sample_weight {
            Some(w) => Some(self.check_weights(w, y_pred)?),
            None => None,
        };
        let w = match mask {
            Some(m) => self.masked_weights(w, m, y_pred)?,
            None => w,
        };
        let p = y_pred;
        let xent = |t: &Tensor| -> Result<Var> {
            if self.reduction == Reduction::None {
                // per-sample values: -sum(t * log_softmax(x)) (gradient softmax * sum(t) - t),
                // in the dtype the fused kernel computes in (F32 for F16/BF16 logits)
                let x = p.to_dtype(self.value_dtype(p))?;
                let t = if t.dtype().is_float() {
                    t.clone()
                } else {
                    t.one_hot(*p.dims().last().unwrap_or(&1), x.dtype())?
                };
                let per = Var::constant(t).mul(&x.log_softmax(-1)?)?.sum(&[-1], false)?.neg()?;
                return self.reduce(&per, w.as_ref());
            }
            let wl = w.as_ref().map(|w| w.lead());
            let mean = match probs_to {
                Some(head) => {
                    let (loss, probs) = softmax_cross_entropy_and_softmax(p, t, wl.as_ref())?;
                    head.supply_output(probs);
                    loss
                }
                None => softmax_cross_entropy(p, t, wl.as_ref())?,
            };
            self.rescale_mean(mean, p, w.as_ref())
        };
        match self.loss {
            Loss::SparseCategoricalCrossentropy => {
                let labels = self.sparse_labels(y_true, y_pred)?;
                if self.from_logits {
                    return xent(&labels);
                }
                let onehot = labels.one_hot(*p.dims().last().unwrap_or(&1), p.dtype())?;
                let per = categorical_probs(p, &onehot)?;
                self.reduce(&per, w.as_ref())
            }
            Loss::CategoricalCrossentropy => {
                let classes = *p.dims().last().unwrap_or(&1);
                let t = self.smoothed(self.dense_targets(y_true, y_pred)?, classes)?;
                if self.from_logits {
                    if p.rank() == 1 {
                        return Err(Error::LossShape { loss: name, msg: "predictions need a class axis".into() });
                    }
                    return xent(&t);
                }
                let per = categorical_probs(p, &t)?;
                self.reduce(&per, w.as_ref())
            }
            Loss::BinaryCrossentropy => {
                let t = self.smoothed(self.dense_targets(y_true, y_pred)?, 2)?;
                if self.from_logits {
                    if self.reduction == Reduction::None {
                        // softplus(x) - x z, stable, with gradient sigmoid(x) - z
                        let per = p.softplus()?.sub(&p.mul(&Var::constant(t))?)?;
                        return self.reduce(&last_axis_mean(&per)?, w.as_ref());
                    }
                    // Keras: mean over the last axis, then over the batch = mean over all.
                    let mean = sigmoid_binary_cross_entropy(p, &t, w.as_ref().map(|w| w.lead()).as_ref())?;
                    return self.rescale_mean(mean, p, w.as_ref());
                }
                let pc = p.clamp(EPSILON, 1.0 - EPSILON)?;
                let tv = Var::constant(t.clone());
                let one_minus_t = Var::constant(t.ones_like()?.sub(&t)?);
                let ll = tv
                    .mul(&pc.log()?)?
                    .add(&one_minus_t.mul(&pc.scalar_binary(1.0, keel_tensor::BinaryOp::Sub)?.log()?)?)?;
                let per = last_axis_mean(&ll.neg()?)?;
                self.reduce(&per, w.as_ref())
            }
            Loss::BinaryFocalCrossentropy => {
                // Keras: smooth, sigmoid the logits, then the focal factor on the probabilities
                let t = self.smoothed(self.dense_targets(y_true, y_pred)?, 2)?;
                let p = if self.from_logits { p.sigmoid()? } else { p.clone() };
                let pc = p.clamp(EPSILON, 1.0 - EPSILON)?;
                let tv = Var::constant(t.clone());
                let one_minus_t = Var::constant(t.ones_like()?.sub(&t)?);
                let one_minus = |x: &Var| x.scalar_binary(1.0, keel_tensor::BinaryOp::Sub);
                let bce = tv.mul(&pc.log()?)?.add(&one_minus_t.mul(&one_minus(&pc)?.log()?)?)?.neg()?;
                // p_t = t p + (1 - t)(1 - p), on the unclipped probabilities, as Keras
                let p_t = tv.mul(&p)?.add(&one_minus_t.mul(&one_minus(&p)?)?)?;
                let mut focal = one_minus(&p_t)?.pow_scalar(self.gamma)?.mul(&bce)?;
                if self.apply_class_balancing {
                    let a = self.alpha;
                    let weight = t.mul_scalar(a)?.add(&t.ones_like()?.sub(&t)?.mul_scalar(1.0 - a)?)?;
                    focal = Var::constant(weight).mul(&focal)?;
                }
                self.reduce(&last_axis_mean(&focal)?, w.as_ref())
            }
            Loss::CategoricalFocalCrossentropy => {
                if p.rank() < 2 {
                    return Err(Error::LossShape { loss: name, msg: "predictions need a class axis".into() });
                }
                let classes = *p.dims().last().unwrap_or(&1);
                let t = self.smoothed(self.dense_targets(y_true, y_pred)?, classes)?;
                let p = if self.from_logits { p.softmax(-1)? } else { p.clone() };
                let out = p.div(&p.sum(&[-1], true)?)?.clamp(EPSILON, 1.0 - EPSILON)?;
                let cce = Var::constant(t).mul(&out.log()?)?.neg()?;
                let factor = out.scalar_binary(1.0, keel_tensor::BinaryOp::Sub)?.pow_scalar(self.gamma)?;
                let per = factor.mul_scalar(self.alpha)?.mul(&cce)?.sum(&[-1], false)?;
                self.reduce(&per, w.as_ref())
            }
            Loss::MeanSquaredError | Loss::MeanAbsoluteError | Loss::Huber => {
                let t = Var::constant(self.dense_targets(y_true, y_pred)?);
                let e = p.sub(&t)?;
                let elem = match self.loss {
                    Loss::MeanSquaredError => e.square()?,
                    Loss::MeanAbsoluteError => e.abs()?,
                    _ => {
                        if self.delta.is_nan() || self.delta <= 0.0 {
                            return Err(Error::config("huber", format!("delta must be > 0, got {}", self.delta)));
                        }
                        // 0.5 q^2 + delta (|e| - q) with q = min(|e|, delta)
                        let a = e.abs()?;
                        let q = a.minimum_scalar(self.delta)?;
                        q.square()?.mul_scalar(0.5)?.add(&a.sub(&q)?.mul_scalar(self.delta)?)?
                    }
                };
                self.reduce(&last_axis_mean(&elem)?, w.as_ref())
            }
            _ => {
                let t = self.dense_targets(y_true, y_pred)?;
                let per = other_loss(self.loss, p, &t)?;
                self.reduce(&per, w.as_ref())
            }
        }
    }

    /// The per-sample (per-position) losses `per` weighted by `w` and reduced by
    /// [`LossFn::reduction`] (Keras's `reduce_weighted_values`).
    fn reduce(&self, per: &Var, w: Option<&Weights>) -> Result<Var> {
        let weighted = || -> Result<Var> {
            Ok(match w {
                Some(w) => per.mul(&Var::constant(w.lead()))?,
                None => per.clone(),
            })
        };
        match (self.reduction, w) {
            (Reduction::SumOverBatchSize | Reduction::Mean, _) | (Reduction::MeanWithSampleWeight, None) => {
                weighted_mean(per, w)
            }
            (Reduction::Sum, _) => Ok(weighted()?.sum_all()?),
            (Reduction::MeanWithSampleWeight, Some(w)) => {
                Ok(weighted()?.sum_all()?.mul(&Var::constant(recip_no_nan(&w.total()?)?))?)
            }
            (Reduction::None, _) => weighted(),
        }
    }

    /// The loss under [`LossFn::reduction`] from `mean`, the `sum_over_batch_size` value
    /// `sum(w l) / n` of a fused primitive on predictions `y_pred` (the gradient scales
    /// with it). Not for [`Reduction::None`], which the fused paths compute per sample.
    fn rescale_mean(&self, mean: Var, y_pred: &Var, w: Option<&Weights>) -> Result<Var> {
        let n = per_sample_count(y_pred) as f64;
        match (self.reduction, w) {
            (Reduction::SumOverBatchSize | Reduction::Mean, _) | (Reduction::MeanWithSampleWeight, None) => Ok(mean),
            (Reduction::Sum, _) => Ok(mean.mul_scalar(n)?),
            (Reduction::MeanWithSampleWeight, Some(w)) => {
                let scale = recip_no_nan(&w.total()?)?.mul_scalar(n)?.to_dtype(mean.dtype())?;
                Ok(mean.mul(&Var::constant(scale))?)
            }
            (Reduction::None, _) => {
                Err(Error::config(self.loss.name(), "internal: reduction none has no fused mean to rescale"))
            }
        }
    }

    /// The float dtype this loss computes in for predictions `y_pred`: theirs, but F32 for
    /// F16/BF16 logits of the softmax cross-entropy, which reads them as F32 (so that
    /// targets and weights are not rounded to the logits' precision).
    fn value_dtype(&self, y_pred: &Var) -> DType {
        let xent = matches!(self.loss, Loss::CategoricalCrossentropy | Loss::SparseCategoricalCrossentropy);
        match y_pred.dtype() {
            DType::F16 | DType::BF16 if xent && self.from_logits => DType::F32,
            d => d,
        }
    }

    /// `y_true` as a float tensor of `y_pred`'s shape (in [`LossFn::value_dtype`]).
    fn dense_targets(&self, y_true: &Tensor, y_pred: &Var) -> Result<Tensor> {
        let t = y_true.to_dtype(self.value_dtype(y_pred))?;
        if t.dims() == y_pred.dims() {
            return Ok(t);
        }
        let squeezed = |d: &[usize]| d.iter().copied().filter(|&x| x != 1).collect::<Vec<_>>();
        let same_but_ones = t.elem_count() == y_pred.elem_count()
            && t.dims().first() == y_pred.dims().first()
            && squeezed(t.dims()) == squeezed(y_pred.dims());
        if same_but_ones {
            return Ok(t.reshape(y_pred.shape())?);
        }
        Err(Error::LossShape {
            loss: self.loss.name(),
            msg: format!("targets of shape {} do not match predictions of shape {}", y_true.shape(), y_pred.shape()),
        })
    }

    /// Check targets where they are, on the host, before they travel to the model's
    /// device: for sparse categorical cross-entropy, that every class index is an
    /// integer in `0..classes` (`y_pred_dims` is the predictions' shape). Other losses,
    /// and targets already on a GPU, are not read here: reading GPU memory makes the host
    /// wait for the GPU. On a GPU, `one_hot` checks the indices on the device and the
    /// next read-back reports a bad one. [`LossFn::compute`] checks host targets itself.
    pub fn check_targets(&self, y_true: &Tensor, y_pred_dims: &[usize]) -> Result<()> {
        match (self.loss, y_true.device(), y_pred_dims.last()) {
            (Loss::SparseCategoricalCrossentropy, Device::Cpu, Some(&classes)) if y_pred_dims.len() >= 2 => {
                self.check_class_indices(y_true, classes)
            }
            _ => Ok(()),
        }
    }

    /// Every value of host tensor `y_true` is an integer class index in `0..classes`.
    fn check_class_indices(&self, y_true: &Tensor, classes: usize) -> Result<()> {
        let bad = |msg: String| Err(Error::LossShape { loss: self.loss.name(), msg });
        if y_true.dtype().is_float() {
            let v = y_true.to_vec_f64()?;
            if let Some(x) = v.iter().find(|x| x.fract() != 0.0 || !x.is_finite()) {
                return bad(format!("class index {x} is not an integer"));
            }
        }
        let v = y_true.to_dtype(DType::I64)?.to_vec::<i64>()?;
        match v.iter().find(|&&l| l < 0 || l as usize >= classes) {
            Some(l) => bad(format!("class index {l} is out of range for {classes} classes")),
            None => Ok(()),
        }
    }

    /// Class indices as I64 with `y_pred`'s shape minus the class axis. Host targets
    /// are checked here; targets on a GPU are not read back (see [`LossFn::check_targets`]):
    /// there a float label that is not an integer (fractional, NaN, infinite) becomes -1,
    /// which the device-side index check of `one_hot` then reports.
    fn sparse_labels(&self, y_true: &Tensor, y_pred: &Var) -> Result<Tensor> {
        let lead = match y_pred.dims() {
            [lead @ .., _] if !lead.is_empty() => lead,
            _ => return Err(Error::LossShape { loss: self.loss.name(), msg: "predictions need a class axis".into() }),
        };
        if y_true.elem_count() != lead.iter().product::<usize>() {
            return Err(Error::LossShape {
                loss: self.loss.name(),
                msg: format!(
                    "class-index targets of shape {} do not fit predictions of shape {} (want {:?} or with a trailing 1)",
                    y_true.shape(),
                    y_pred.shape(),
                    lead
                ),
            });
        }
        let labels = if y_true.device() == Device::Cpu {
            self.check_class_indices(y_true, *y_pred.dims().last().unwrap_or(&1))?;
            y_true.to_dtype(DType::I64)?
        } else if y_true.dtype().is_float() {
            let as_int = y_true.to_dtype(DType::I64)?;
            let exact = as_int.to_dtype(y_true.dtype())?.cmp(y_true, CmpOp::Eq)?;
            Tensor::where_cond(&exact, &as_int, &as_int.scalar_like(-1.0)?)?
        } else {
            y_true.to_dtype(DType::I64)?
        };
        Ok(labels.contiguous()?.reshape(lead)?)
    }

    fn check_weights(&self, w: &Tensor, y_pred: &Var) -> Result<Weights> {
        let n = y_pred.dims()[0];
        if w.elem_count() != n || w.dims().first() != Some(&n) {
            return Err(Error::LossShape {
                loss: self.loss.name(),
                msg: format!("sample weights of shape {} should have shape [{n}] (one per sample)", w.shape()),
            });
        }
        let w = w.to_dtype(self.value_dtype(y_pred))?.contiguous()?.reshape(n)?;
        // The per-position loss shape (prediction dims without the last axis when rank >= 2).
        let lead: Vec<usize> = if y_pred.rank() >= 2 { y_pred.dims()[..y_pred.rank() - 1].to_vec() } else { vec![n] };
        Ok(Weights { per_sample: w, lead, positions: None })
    }

    /// `w` (or unit weights) times the per-position weights of `mask` (see
    /// [`LossFn::compute_masked`]); `w` unchanged when `mask` does not have the
    /// per-position loss's shape.
    fn masked_weights(&self, w: Option<Weights>, mask: &Tensor, y_pred: &Var) -> Result<Option<Weights>> {
        let n = y_pred.dims()[0];
        let lead: Vec<usize> = if y_pred.rank() >= 2 { y_pred.dims()[..y_pred.rank() - 1].to_vec() } else { vec![n] };
        if mask.dims() != lead.as_slice() {
            return Ok(w);
        }
        let dtype = self.value_dtype(y_pred);
        let keep = mask.ne(&mask.scalar_like(0.0)?)?.to_dtype(dtype)?.to_device(&y_pred.device())?;
        let positions = if matches!(self.reduction, Reduction::SumOverBatchSize | Reduction::Mean) {
            // Keras's apply_mask: kept positions weigh total / kept (divide_no_nan: a mask
            // that keeps nothing weighs every position 0; kept counts are whole numbers, so
            // max(kept, 1) is kept whenever a position is kept)
            let total = mask.elem_count() as f64;
            let scale = keep.sum_all()?.maximum_scalar(1.0)?.recip()?.mul_scalar(total)?;
            keep.mul(&scale)?.contiguous()?
        } else {
            // the other reductions weigh kept positions 1
            keep.contiguous()?
        };
        let w = match w {
            Some(w) => w,
            None => {
                Weights { per_sample: Tensor::ones(n, dtype, &y_pred.device())?, lead: lead.clone(), positions: None }
            }
        };
        Ok(Some(Weights { positions: Some(positions), ..w }))
    }
}

/// Per-sample weights and the shape of the per-position loss they weight, times the
/// per-position weights of a mask when there is one.
struct Weights {
    per_sample: Tensor,
    lead: Vec<usize>,
    positions: Option<Tensor>,
}

impl Weights {
    /// The divisor of `mean_with_sample_weight`: the sum of the weights as Keras holds
    /// them, one per sample (`[batch]` or `[batch, 1]`, not broadcast over the
    /// timesteps), or one per position once a mask is merged in.
    fn total(&self) -> Result<Tensor> {
        Ok(match &self.positions {
            Some(_) => self.lead().sum_all()?,
            None => self.per_sample.sum_all()?,
        })
    }

    /// The weights broadcast to the per-position loss shape (a contiguous tensor).
    fn lead(&self) -> Tensor {
        let mut shape = vec![self.per_sample.dims()[0]];
        shape.resize(self.lead.len(), 1);
        let w = self
            .per_sample
            .reshape(shape)
            .and_then(|w| w.broadcast_to(self.lead.clone()))
            .and_then(|w| w.contiguous())
            .unwrap_or_else(|_| self.per_sample.clone()); // ok: shapes checked in check_weights
        match &self.positions {
            // ok: `positions` has the shape `lead` and the dtype of `per_sample` (masked_weights)
            Some(p) => w.mul(p).unwrap_or(w),
            None => w,
        }
    }
}

/// Mean over the last axis (Keras's per-sample reduction), identity for rank 1.
fn last_axis_mean(x: &Var) -> Result<Var> {
    if x.rank() >= 2 {
        Ok(x.mean(&[-1], false)?)
    } else {
        Ok(x.clone())
    }
}

/// `-sum(t * log(clip(p / sum(p))))` over the class axis.
fn categorical_probs(p: &Var, t: &Tensor) -> Result<Var> {
    if p.rank() < 2 {
        return Err(Error::LossShape { loss: "categorical_crossentropy", msg: "predictions need a class axis".into() });
    }
    let norm = p.div(&p.sum(&[-1], true)?)?.clamp(EPSILON, 1.0 - EPSILON)?;
    Ok(Var::constant(t.clone()).mul(&norm.log()?)?.sum(&[-1], false)?.neg()?)
}

/// The per-sample values of the losses built from plain ops (Keras's formulas), for
/// predictions `p` and dense targets `t` of `p`'s shape and dtype.
fn other_loss(loss: Loss, p: &Var, t: &Tensor) -> Result<Var> {
    let tv = Var::constant(t.clone());
    let last_sum = |x: &Var| -> Result<Var> { Ok(if x.rank() >= 2 { x.sum(&[-1], false)? } else { x.clone() }) };
    // 0/1 labels as -1/1 when every label is 0 or 1 (Keras's hinge losses convert them;
    // -1/1 labels stay), decided on the targets' device without reading them back
    let signs = || -> Result<Var> {
        let off = t.mul(&t.sub_scalar(1.0)?)?.abs()?.sum(&[], false)?;
        let binary = off.cmp(&off.zeros_like()?, CmpOp::Eq)?;
        Ok(Var::constant(Tensor::where_cond(&binary, &t.mul_scalar(2.0)?.sub_scalar(1.0)?, t)?))
    };
    Ok(match loss {
        Loss::MeanSquaredLogarithmicError => {
            let lp = p.maximum_scalar(EPSILON)?.add_scalar(1.0)?.log()?;
            let lt = Var::constant(t.maximum_scalar(EPSILON)?.add_scalar(1.0)?.log()?);
            last_axis_mean(&lp.sub(&lt)?.square()?)?
        }
        Loss::MeanAbsolutePercentageError => {
            let denom = Var::constant(t.abs()?.maximum_scalar(EPSILON)?);
            last_axis_mean(&tv.sub(p)?.abs()?.div(&denom)?)?.mul_scalar(100.0)?
        }
        Loss::LogCosh => {
            // log(cosh(x)) = x + softplus(-2x) - log 2
            let x = p.sub(&tv)?;
            last_axis_mean(&x.add(&x.mul_scalar(-2.0)?.softplus()?)?.sub_scalar(std::f64::consts::LN_2)?)?
        }
        Loss::Poisson => last_axis_mean(&p.sub(&tv.mul(&p.add_scalar(EPSILON)?.log()?)?)?)?,
        Loss::KLDivergence => {
            let tc = t.clamp(EPSILON, 1.0)?;
            let pc = p.clamp(EPSILON, 1.0)?;
            let log_t = Var::constant(tc.log()?);
            last_sum(&Var::constant(tc).mul(&log_t.sub(&pc.log()?)?)?)?
        }
        Loss::CosineSimilarity => {
            // x / sqrt(max(sum(x^2), 1e-12)) along the last axis
            let normalize = |x: &Var| -> Result<Var> {
                let sq = if x.rank() >= 2 { x.square()?.sum(&[-1], true)? } else { x.square()? };
                Ok(x.mul(&sq.maximum_scalar(1e-12)?.rsqrt()?)?)
            };
            last_sum(&normalize(&tv)?.mul(&normalize(p)?)?)?.neg()?
        }
        Loss::Hinge => last_axis_mean(&signs()?.mul(p)?.scalar_binary(1.0, keel_tensor::BinaryOp::Sub)?.relu()?)?,
        Loss::SquaredHinge => {
            last_axis_mean(&signs()?.mul(p)?.scalar_binary(1.0, keel_tensor::BinaryOp::Sub)?.relu()?.square()?)?
        }
        Loss::CategoricalHinge => {
            if p.rank() < 2 {
                return Err(Error::LossShape { loss: loss.name(), msg: "predictions need a class axis".into() });
            }
            let pos = tv.mul(p)?.sum(&[-1], false)?;
            let neg = Var::constant(t.ones_like()?.sub(t)?).mul(p)?.max(&[-1], false)?;
            neg.sub(&pos)?.add_scalar(1.0)?.relu()?
        }
        other => return Err(Error::config(other.name(), "internal: not a plain-op loss")),
    })
}

/// The number of per-sample (per-position) losses of predictions `y_pred`: their
/// elements without the last axis (every element for rank 1).
fn per_sample_count(y_pred: &Var) -> usize {
    match y_pred.dims() {
        [_] => y_pred.elem_count(),
        [lead @ .., _] => lead.iter().product(),
        [] => 1,
    }
}

/// `1 / x` for the 0-d tensor `x`, 0 where `x` is 0 (Keras's `divide_no_nan`), without
/// reading it back.
fn recip_no_nan(x: &Tensor) -> Result<Tensor> {
    let zero = x.zeros_like()?;
    let is_zero = x.cmp(&zero, CmpOp::Eq)?;
    Ok(Tensor::where_cond(&is_zero, &zero, &x.recip()?)?)
}

/// `sum(per * w) / count(per)`, or the plain mean.
fn weighted_mean(per: &Var, w: Option<&Weights>) -> Result<Var> {
    match w {
        None => Ok(per.mean_all()?),
        Some(w) => {
            let n = per.elem_count().max(1) as f64;
            Ok(per.mul(&Var::constant(w.lead()))?.sum_all()?.div_scalar(n)?)
        }
    }
}
