//! Reductions (sum, mean, max, min, var) and softmax / log-softmax.

use super::keepdim_shape;
use crate::{Result, Var};
use keel_tensor::{ReduceOp, Tensor};

impl Var {
    /// Reduce with `op` (Sum, Mean, Max, Min or Var) over `axes` (empty = all).
    ///
    /// Max/Min send the gradient to the extreme elements, split evenly among
    /// ties; Var uses the population variance (divide by N).
    pub fn reduce(&self, op: ReduceOp, axes: &[isize], keepdim: bool) -> Result<Var> {
        if matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin) {
            // Index results are I64 and carry no gradient.
            return Ok(Var::constant(self.value().reduce(op, axes, keepdim)?));
        }
        let out = self.value().reduce(op, axes, keepdim)?;
        let resolved = self.shape().axes(op.name(), axes)?;
        let kshape = keepdim_shape(self.dims(), &resolved);
        let count: usize = resolved.iter().map(|&a| self.dims()[a]).product();
        let extreme = matches!(op, ReduceOp::Max | ReduceOp::Min);
        // Max/Min compare against the output (a view, kept only if tracked).
        let out_keep = if extreme { Some(out.reshape(kshape.clone())?) } else { None };
        Var::record(op.name(), &[self], out, |_| {
            let x = matches!(op, ReduceOp::Max | ReduceOp::Min | ReduceOp::Var).then(|| self.value().clone());
            let in_shape = self.shape().clone();
            let axes: Vec<isize> = resolved.iter().map(|&a| a as isize).collect();
            move |g: &Tensor| {
                let g = g.reshape(kshape)?;
                let dx = match (op, x, out_keep) {
                    (ReduceOp::Sum, _, _) => g.broadcast_to(in_shape)?,
                    (ReduceOp::Mean, _, _) => g.div_scalar(count as f64)?.broadcast_to(in_shape)?,
                    (ReduceOp::Max | ReduceOp::Min, Some(x), Some(out)) => {
                        // Every element equal to the extreme shares the gradient.
                        let hit = x.eq(&out)?.to_dtype(x.dtype())?;
                        let n = hit.sum(&axes, true)?;
                        hit.mul(&g.div(&n)?)?
                    }
                    (_, Some(x), _) => {
                        // d var / dx = 2 (x - mean) / N
                        let centered = x.sub(&x.mean(&axes, true)?)?;
                        centered.mul(&g.mul_scalar(2.0 / count as f64)?)?
                    }
                    _ => return Err(crate::Error::invalid(op.name(), "internal: missing saved input")),
                };
                Ok(vec![Some(dx)])
            }
        })
    }

    /// Sum over `axes` (empty = all).
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        self.reduce(ReduceOp::Sum, axes, keepdim)
    }

    /// Sum of every element (0-d).
    pub fn sum_all(&self) -> Result<Var> {
        self.reduce(ReduceOp::Sum, &[], false)
    }

    /// Mean over `axes` (empty = all).
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        self.reduce(ReduceOp::Mean, axes, keepdim)
    }

    /// Mean of every element (0-d).
    pub fn mean_all(&self) -> Result<Var> {
        self.reduce(ReduceOp::Mean, &[], false)
    }

    /// Maximum over `axes` (empty = all); ties share the gradient evenly.
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        self.reduce(ReduceOp::Max, axes, keepdim)
    }

    /// Minimum over `axes` (empty = all); ties share the gradient evenly.
    pub fn min(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        self.reduce(ReduceOp::Min, axes, keepdim)
    }

    /// Population variance over `axes` (empty = all).
    pub fn var(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        self.reduce(ReduceOp::Var, axes, keepdim)
    }

    /// Softmax along `axis`; the rule saves only the output:
    /// `dx = y * (g - sum(g * y, axis))`.
    pub fn softmax(&self, axis: isize) -> Result<Var> {
        self.softmax_with_value(axis, self.value().softmax(axis)?)
    }

    /// Record `out`, which is `softmax(self, axis)` computed elsewhere (by a fused kernel),
    /// as [`Var::softmax`] records it.
    /// `out` may be in a wider dtype than `self` (F32 probabilities of BF16 logits, from
    /// the fused cross-entropy); the gradient then goes back in `self`'s dtype.
    pub(crate) fn softmax_with_value(&self, axis: isize, out: Tensor) -> Result<Var> {
        let dtype = self.dtype();
        Var::record("softmax", &[self], out.clone(), |_| {
            move |g: &Tensor| {
                let dot = g.mul(&out)?.sum(&[axis], true)?;
                Ok(vec![Some(out.mul(&g.sub(&dot)?)?.to_dtype(dtype)?)])
            }
        })
    }

    /// Log-softmax along `axis`; the rule saves only the output:
    /// `dx = g - exp(y) * sum(g, axis)`.
    pub fn log_softmax(&self, axis: isize) -> Result<Var> {
        let out = self.value().log_softmax(axis)?;
        Var::record("log_softmax", &[self], out.clone(), |_| {
            move |g: &Tensor| {
                let total = g.sum(&[axis], true)?;
                Ok(vec![Some(g.sub(&out.exp()?.mul(&total)?)?)])
            }
        })
    }
}
