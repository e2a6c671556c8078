//! One-hot labels and class weights.

use crate::{Error, Result};
use keel_tensor::Tensor;
use std::collections::BTreeMap;

/// Integer class labels from `y`: a 1-D tensor `[N]` or a column `[N, 1]` of
/// integers (any dtype, floats must be whole numbers), or a 2-D one-hot /
/// probability matrix `[N, C]` with `C > 1` (argmax per row).
pub fn labels_to_vec(y: &Tensor, op: &'static str) -> Result<Vec<i64>> {
    // a column [N, 1] holds class ids, not a one-class one-hot matrix (argmax would make every label 0)
    let ids = y.rank() == 1 || y.rank() == 2 && y.dims()[1] == 1;
    match y.rank() {
        _ if ids => y
            .to_vec_f64()?
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                if v.fract() != 0.0 || !v.is_finite() {
                    Err(Error::invalid(op, format!("label {i} is {v}, not a whole number; labels must be class ids")))
                } else {
                    Ok(v as i64)
                }
            })
            .collect(),
        2 => {
            let c = y.dims()[1];
            if c == 0 {
                return Err(Error::invalid(op, "y has 0 columns"));
            }
            Ok(y.to_vec_f64()?
                .chunks_exact(c)
                .map(|r| {
                    let mut best = 0;
                    for j in 1..c {
                        if r[j] > r[best] {
                            best = j;
                        }
                    }
                    best as i64
                })
                .collect())
        }
        _ => Err(Error::invalid(
            op,
            format!("expected labels [N] or [N, 1], or one-hot [N, C], got shape {:?}", y.dims()),
        )),
    }
}

/// Keras `to_categorical`: integer labels (any shape) -> F32 one-hot with a new last axis.
///
/// `num_classes = None` or `Some(0)` (Keras treats a falsy `num_classes` like
/// `None`) uses `max(y) + 1`. Like Keras, a trailing axis of
/// size 1 (`[N, 1]`) is dropped first. Floats must be whole numbers.
pub fn to_categorical(y: &Tensor, num_classes: Option<usize>) -> Result<Tensor> {
    const OP: &str = "to_categorical";
    let mut dims = y.dims().to_vec();
    if dims.len() > 1 && dims.last() == Some(&1) {
        dims.pop();
    }
    let v = y.to_vec_f64()?;
    let mut labels = Vec::with_capacity(v.len());
    for (i, &a) in v.iter().enumerate() {
        if a.fract() != 0.0 || !a.is_finite() || a < 0.0 {
            return Err(Error::invalid(OP, format!("label {i} is {a}; labels must be whole numbers >= 0")));
        }
        labels.push(a as usize);
    }
    let too_big = |classes: String| {
        Error::invalid(
            OP,
            format!(
                "a one-hot matrix of {} labels x {classes} classes is too large to address; check the \
                 labels (a huge class id?) and num_classes",
                labels.len()
            ),
        )
    };
    let c = match num_classes.filter(|&c| c > 0) {
        Some(c) => c,
        None => match labels.iter().max() {
            None => 0,
            Some(m) => m.checked_add(1).ok_or_else(|| too_big(format!("{m} + 1")))?,
        },
    };
    if let Some((i, l)) = labels.iter().enumerate().find(|(_, &l)| l >= c) {
        return Err(Error::invalid(OP, format!("label {i} is {l} but num_classes is {c}; pass a larger num_classes")));
    }
    // checked size and fallible allocation: a huge class id is an error, not an abort
    let n = labels.len().checked_mul(c).ok_or_else(|| too_big(c.to_string()))?;
    let mut out = Vec::<f32>::new();
    out.try_reserve_exact(n).map_err(|_| {
        Error::invalid(
            OP,
            format!(
                "cannot allocate the one-hot matrix of {} labels x {c} classes ({:.1} GB of float32); \
                 check the labels (a huge class id?) and num_classes",
                labels.len(),
                n as f64 * 4e-9
            ),
        )
    })?;
    out.resize(n, 0.0);
    for (i, &l) in labels.iter().enumerate() {
        out[i * c + l] = 1.0;
    }
    dims.push(c);
    Ok(Tensor::from_vec(out, dims)?)
}

/// scikit-learn's `compute_class_weight`: `mode` must be `"balanced"`, giving
/// `n_samples / (n_classes * count[class])` for each class present in `y`.
///
/// `y` is labels `[N]` or `[N, 1]`, or one-hot `[N, C]`. The map suits `fit(class_weight=...)`.
pub fn class_weight(y: &Tensor, mode: &str) -> Result<BTreeMap<i64, f64>> {
    const OP: &str = "class_weight";
    if mode != "balanced" {
        return Err(Error::invalid(OP, format!("unknown mode '{mode}'; the only computed mode is \"balanced\"")));
    }
    let labels = labels_to_vec(y, OP)?;
    if labels.is_empty() {
        return Err(Error::invalid(OP, "y is empty"));
    }
    let mut counts = BTreeMap::<i64, usize>::new();
    for l in &labels {
        *counts.entry(*l).or_default() += 1;
    }
    let (n, k) = (labels.len() as f64, counts.len() as f64);
    Ok(counts.into_iter().map(|(c, m)| (c, n / (k * m as f64))).collect())
}
