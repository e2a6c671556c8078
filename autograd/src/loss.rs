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
/// the backward only scales it by the incoming gradient, and [`crate::Tape::backward`]
/// on this loss itself uses it as it is. `weights` (optional) has the leading shape.
/// F16/BF16 logits are computed as F32 (the loss is F32, as PyTorch's autocast computes
/// cross-entropy; their gradient goes back in their own dtype): the values and gradients
/// of casting them to F32 first, without the cast.
pub fn softmax_cross_entropy(logits: &Var, targets: &Tensor, weights: Option<&Tensor>) -> Result<Var> {
    Ok(xent(logits, targets, weights, false)?.0)
}

/// [`softmax_cross_entropy`] and `logits.softmax(-1)` together, from the same kernel
/// launch: the loss, and the probabilities recorded as [`Var::softmax`] records them (a
/// gradient reaching them flows back to the logits). For a model that ends in a softmax
/// and needs both its loss and its output (the metrics read it).
pub fn softmax_cross_entropy_and_softmax(
    logits: &Var,
    targets: &Tensor,
    weights: Option<&Tensor>,
) -> Result<(Var, Var)> {
    let (loss, probs) = xent(logits, targets, weights, true)?;
    let probs = probs.ok_or_else(|| crate::Error::invalid("softmax_cross_entropy", "internal: no probabilities"))?;
    Ok((loss, logits.softmax_with_value(-1, probs)?))
}

/// The fused softmax cross-entropy, with the probabilities when `probs`.
fn xent(logits: &Var, targets: &Tensor, weights: Option<&Tensor>, probs: bool) -> Result<(Var, Option<Tensor>)> {
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
    let scale = 1.0 / n as f64;
    let fused = x.softmax_cross_entropy_with(targets, logits.is_tracked().then_some(scale), probs)?;
    // F16/BF16 logits give F32 results; their gradient goes back in the logits' dtype
    let (loss_dtype, logits_dtype) = (fused.loss.dtype(), x.dtype());
    let w = match weights {
        Some(w) => Some(w.to_dtype(loss_dtype)?),
        None => None,
    };
    // unweighted, the kernel's own mean where it has one (CUDA: no reduction launch)
    let loss = match &w {
        Some(w) => batch_mean(&fused.loss.mul(w)?)?,
        None => fused.mean()?,
    };
    let grad = fused.grad;
    let loss = Var::record_with_unit(OP, &[logits], loss, |_| {
        // the rule and the unit shortcut share the saved gradient (one buffer)
        let (grad_1, w_1) = (grad.clone(), w.clone());
        (
            move |g: &Tensor| {
                let d = weighted_grad(OP, grad, w.as_ref())?.mul(g)?;
                Ok(vec![Some(d.to_dtype(logits_dtype)?)])
            },
            move || Ok(vec![Some(weighted_grad(OP, grad_1, w_1.as_ref())?.to_dtype(logits_dtype)?)]),
        )
    })?;
    Ok((loss, fused.probs))
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
    // (sigmoid(x) - z) * w, the gradient of the loss's sum
    let x = x.clone();
    let d = move || -> Result<Tensor> {
        let d = x.sigmoid()?.sub(&z)?;
        Ok(match &w {
            Some(w) => d.mul(w)?,
            None => d,
        })
    };
    let d_1 = d.clone();
    Var::record_with_unit(OP, &[logits], loss, |_| {
        (
            move |g: &Tensor| Ok(vec![Some(d()?.mul(&g.mul_scalar(1.0 / n as f64)?)?)]),
            move || Ok(vec![Some(d_1()?.mul_scalar(1.0 / n as f64)?)]),
        )
    })
}

/// The fused gradient `grad` of a loss (per unit seed), times the per-sample weights `w`.
fn weighted_grad(op: &'static str, grad: Option<Tensor>, w: Option<&Tensor>) -> Result<Tensor> {
    let d = grad.ok_or_else(|| crate::Error::invalid(op, "internal: gradient not computed"))?;
    Ok(match w {
        Some(w) => d.mul(&w.unsqueeze(-1)?)?,
        None => d,
    })
}

/// The mean of the per-sample (or per-element) losses `per`, in one reduction (one launch
/// on CUDA); 0 for none (an empty batch), as `sum / max(n, 1)` gives.
fn batch_mean(per: &Tensor) -> Result<Tensor> {
    Ok(if per.elem_count() > 0 { per.mean_all()? } else { per.sum_all()? })
}
