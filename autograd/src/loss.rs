//! Fused, numerically stable losses with hand-written backward rules.
//!
//! Both losses take raw logits (no softmax/sigmoid applied), return a 0-d
//! mean, and accept optional per-sample weights (the weighted sum is divided by
//! the number of samples, as Keras' `sum_over_batch_size` does).

use crate::{Result, Var};
use keel_tensor::{Error as TensorError, Shape, Tensor};

/// Weights of shape `per_sample` (one per sample) or `full`, as a tensor that
/// broadcasts against `full`; converted to `like`'s dtype.
fn weights_for(
    op: &'static str,
    w: Option<&Tensor>,
    per_sample: &[usize],
    full: &Shape,
    like: &Tensor,
) -> Result<Option<Tensor>> {
    let Some(w) = w else { return Ok(None) };
    let w = w.to_dtype(like.dtype())?;
    if w.shape() == full {
        Ok(Some(w))
    } else if w.dims() == per_sample {
        Ok(Some(w.unsqueeze(-1)?))
    } else {
        Err(TensorError::shape_mismatch(
            op,
            full,
            w.shape(),
            format!("weights must have shape {per_sample:?} (one per sample) or the logits' shape"),
        )
        .into())
    }
}

/// Softmax cross-entropy from logits `[..., C]`, averaged over the samples
/// (every position of the leading dims).
///
/// `targets` is either integer class indices with the leading shape (any
/// integer dtype, values in `0..C`) or float probabilities / one-hot rows with
/// the logits' shape. The forward uses log-softmax (log-sum-exp), and the
/// backward is `(softmax * sum(t) - t) * w / N`, i.e. `softmax - onehot` for
/// one-hot targets. `weights` (optional) has the leading shape.
pub fn softmax_cross_entropy(logits: &Var, targets: &Tensor, weights: Option<&Tensor>) -> Result<Var> {
    const OP: &str = "softmax_cross_entropy";
    let x = logits.value();
    if x.rank() == 0 {
        return Err(crate::Error::invalid(OP, "logits need a class axis"));
    }
    let lead = &x.dims()[..x.rank() - 1];
    let classes = x.dims()[x.rank() - 1];
    let n = lead.iter().product::<usize>().max(1);
    let (t, probs) = if targets.dtype().is_float() {
        if targets.shape() != x.shape() {
            return Err(TensorError::shape_mismatch(
                OP,
                x.shape(),
                targets.shape(),
                "probability targets must have the logits' shape",
            )
            .into());
        }
        (targets.to_dtype(x.dtype())?, true)
    } else {
        if targets.dims() != lead {
            return Err(TensorError::shape_mismatch(
                OP,
                x.shape(),
                targets.shape(),
                "class-index targets must have the logits' shape without the class axis",
            )
            .into());
        }
        (targets.one_hot(classes, x.dtype())?, false)
    };
    if let Some(w) = weights {
        if w.dims() != lead {
            return Err(TensorError::shape_mismatch(
                OP,
                x.shape(),
                w.shape(),
                format!("weights must have shape {lead:?} (one per sample)"),
            )
            .into());
        }
    }
    let w = weights_for(OP, weights, lead, x.shape(), x)?;
    let lsm = x.log_softmax(-1)?;
    let mut per = t.mul(&lsm)?; // [..., C]; summed and negated below
    if let Some(w) = &w {
        per = per.mul(w)?;
    }
    let loss = per.sum_all()?.mul_scalar(-1.0 / n as f64)?;
    Var::record(OP, &[logits], loss, |_| {
        move |g: &Tensor| {
            let p = lsm.exp()?;
            let mut d = if probs { p.mul(&t.sum(&[-1], true)?)?.sub(&t)? } else { p.sub(&t)? };
            if let Some(w) = &w {
                d = d.mul(w)?;
            }
            Ok(vec![Some(d.mul(&g.mul_scalar(1.0 / n as f64)?)?)])
        }
    })
}

/// Sigmoid binary cross-entropy from logits, averaged over every element:
/// `max(x, 0) - x z + log1p(exp(-|x|))`, with backward `(sigmoid(x) - z) * w / N`.
///
/// `targets` (float, values in `[0, 1]`) has the logits' shape; `weights`
/// (optional) has the logits' shape or their shape without the last axis.
pub fn sigmoid_binary_cross_entropy(logits: &Var, targets: &Tensor, weights: Option<&Tensor>) -> Result<Var> {
    const OP: &str = "sigmoid_binary_cross_entropy";
    let x = logits.value();
    if targets.shape() != x.shape() {
        return Err(
            TensorError::shape_mismatch(OP, x.shape(), targets.shape(), "targets must have the logits' shape").into()
        );
    }
    let z = targets.to_dtype(x.dtype())?;
    let lead = if x.rank() == 0 { &[][..] } else { &x.dims()[..x.rank() - 1] };
    let w = weights_for(OP, weights, lead, x.shape(), x)?;
    let n = x.elem_count().max(1);
    // softplus(-|x|) = log1p(exp(-|x|)) exactly, since -|x| <= 0.
    let mut per = x.relu()?.sub(&x.mul(&z)?)?.add(&x.abs()?.neg()?.softplus()?)?;
    if let Some(w) = &w {
        per = per.mul(w)?;
    }
    let loss = per.sum_all()?.mul_scalar(1.0 / n as f64)?;
    Var::record(OP, &[logits], loss, |_| {
        let x = x.clone();
        move |g: &Tensor| {
            let mut d = x.sigmoid()?.sub(&z)?;
            if let Some(w) = &w {
                d = d.mul(w)?;
            }
            Ok(vec![Some(d.mul(&g.mul_scalar(1.0 / n as f64)?)?)])
        }
    })
}
