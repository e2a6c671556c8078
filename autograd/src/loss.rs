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
/// the logits' shape. The forward is [`Tensor::softmax_cross_entropy`] (log-sum-exp,
/// one fused kernel), which also returns the gradient when the logits are tracked:
/// `(softmax * sum(t) - t) * w / N`, i.e. `softmax - onehot` for one-hot targets;
/// the backward only scales it by the incoming gradient. `weights` (optional) has the
/// leading shape.
pub fn softmax_cross_entropy(logits: &Var, targets: &Tensor, weights: Option<&Tensor>) -> Result<Var> {
    const OP: &str = "softmax_cross_entropy";
    let x = logits.value();
    if x.rank() == 0 {
        return Err(crate::Error::invalid(OP, "logits need a class axis"));
    }
    let lead = &x.dims()[..x.rank() - 1];
    let n = lead.iter().product::<usize>().max(1);
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
    let w = match weights {
        Some(w) => Some(w.to_dtype(x.dtype())?),
        None => None,
    };
    let scale = 1.0 / n as f64;
    let (per, grad) = x.softmax_cross_entropy(targets, logits.is_tracked().then_some(scale))?;
    let per = match &w {
        Some(w) => per.mul(w)?,
        None => per,
    };
    let loss = batch_mean(&per)?;
    Var::record(OP, &[logits], loss, |_| {
        move |g: &Tensor| {
            let mut d = grad.ok_or_else(|| crate::Error::invalid(OP, "internal: gradient not computed"))?;
            if let Some(w) = &w {
                d = d.mul(&w.unsqueeze(-1)?)?;
            }
            Ok(vec![Some(d.mul(g)?)])
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
    let loss = batch_mean(&per)?;
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

/// The mean of the per-sample (or per-element) losses `per`, in one reduction (one launch
/// on CUDA); 0 for none (an empty batch), as `sum / max(n, 1)` gives.
fn batch_mean(per: &Tensor) -> Result<Tensor> {
    Ok(if per.elem_count() > 0 { per.mean_all()? } else { per.sum_all()? })
}
