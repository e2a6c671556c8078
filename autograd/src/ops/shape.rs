//! Views and shape ops (reshape, transpose, permute, narrow, slice,
//! broadcast_to, unsqueeze, squeeze, flatten) and the dtype cast.

use super::reduce_to_shape;
use crate::{Error, Result, Var};
use keel_tensor::{DType, Shape, Tensor};

impl Var {
    /// The same elements with a new shape; the gradient is reshaped back.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Var> {
        let out = self.value().reshape(shape)?;
        Var::record("reshape", &[self], out, |_| {
            let in_shape = self.shape().clone();
            move |g: &Tensor| Ok(vec![Some(g.reshape(in_shape)?)])
        })
    }

    /// Reshape where at most one entry is `-1` (inferred).
    pub fn reshape_infer(&self, dims: &[isize]) -> Result<Var> {
        let shape = self.value().reshape_infer(dims)?.shape().clone();
        self.reshape(shape)
    }

    /// Flatten all dimensions from `start` (inclusive) into one.
    pub fn flatten_from(&self, start: usize) -> Result<Var> {
        let shape = self.value().flatten_from(start)?.shape().clone();
        self.reshape(shape)
    }

    /// Swap two dimensions.
    pub fn transpose(&self, d0: isize, d1: isize) -> Result<Var> {
        let out = self.value().transpose(d0, d1)?;
        Var::record("transpose", &[self], out, |_| move |g: &Tensor| Ok(vec![Some(g.transpose(d0, d1)?)]))
    }

    /// The matrix transpose of the last two dimensions.
    pub fn t(&self) -> Result<Var> {
        if self.rank() < 2 {
            return Err(Error::invalid("t", "need rank >= 2"));
        }
        self.transpose(-2, -1)
    }

    /// Reorder dimensions: output dim `i` is input dim `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Var> {
        let out = self.value().permute(perm)?;
        Var::record("permute", &[self], out, |_| {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            move |g: &Tensor| Ok(vec![Some(g.permute(&inverse)?)])
        })
    }

    /// Keep `len` entries of `axis` from `start`; the gradient is zero-padded back.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Var> {
        let out = self.value().narrow(axis, start, len)?;
        let a = self.shape().axis("narrow", axis)?;
        Var::record("narrow", &[self], out, |_| {
            let in_dims = self.dims().to_vec();
            move |g: &Tensor| {
                let after = in_dims[a] - start - len;
                Ok(vec![Some(pad_axis(g, a, start, after)?)])
            }
        })
    }

    /// Python-style slice `start..end` (exclusive) along `axis`.
    pub fn slice(&self, axis: isize, start: usize, end: usize) -> Result<Var> {
        if end < start {
            return Err(Error::invalid("slice", format!("end {end} is before start {start}")));
        }
        self.narrow(axis, start, end - start)
    }

    /// Broadcast to `shape` (NumPy rules); the gradient is summed back.
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Var> {
        let out = self.value().broadcast_to(shape)?;
        Var::record("broadcast_to", &[self], out, |_| {
            let in_shape = self.shape().clone();
            move |g: &Tensor| Ok(vec![Some(reduce_to_shape(g, &in_shape)?)])
        })
    }

    /// Insert a size-1 dimension at `axis`.
    pub fn unsqueeze(&self, axis: isize) -> Result<Var> {
        let out = self.value().unsqueeze(axis)?;
        self.reshape_rule("unsqueeze", out)
    }

    /// Remove the size-1 dimension `axis`.
    pub fn squeeze(&self, axis: isize) -> Result<Var> {
        let out = self.value().squeeze(axis)?;
        self.reshape_rule("squeeze", out)
    }

    /// Remove every size-1 dimension.
    pub fn squeeze_all(&self) -> Result<Var> {
        let out = self.value().squeeze_all()?;
        self.reshape_rule("squeeze_all", out)
    }

    /// Record `out` (a view of `self` with the same elements in the same order).
    fn reshape_rule(&self, op: &'static str, out: Tensor) -> Result<Var> {
        Var::record(op, &[self], out, |_| {
            let in_shape = self.shape().clone();
            move |g: &Tensor| Ok(vec![Some(g.reshape(in_shape)?)])
        })
    }

    /// Convert to `dtype`; the gradient is converted back. Casting to an
    /// integer dtype gives a constant (no gradient).
    pub fn to_dtype(&self, dtype: DType) -> Result<Var> {
        let out = self.value().to_dtype(dtype)?;
        Var::record("to_dtype", &[self], out, |_| {
            let src = self.dtype();
            // an integer source has no gradient (as in PyTorch): casting the float gradient
            // to it would truncate it to a meaningless integer
            move |g: &Tensor| Ok(vec![if src.is_float() { Some(g.to_dtype(src)?) } else { None }])
        })
    }

    /// Each of `vars` converted to float `dtype` ([`Var::to_dtype`] on each), recorded as one
    /// op: the forward casts and the backward's casts of the gradients back each run as one
    /// batched [`Tensor::to_dtype_many`] (one CUDA launch for a mixed-precision model's
    /// weights, instead of one per weight).
    pub fn to_dtype_many(vars: &[Var], dtype: DType) -> Result<Vec<Var>> {
        if !dtype.is_float() {
            return Err(Error::invalid("to_dtype_many", format!("{dtype} is not a float dtype")));
        }
        let values: Vec<Tensor> = vars.iter().map(|v| v.value().clone()).collect();
        let out = Tensor::to_dtype_many(&values, dtype)?;
        let inputs: Vec<&Var> = vars.iter().collect();
        Var::record_multi("to_dtype_many", &inputs, out, |needs| {
            let needs = needs.to_vec();
            let srcs: Vec<DType> = vars.iter().map(Var::dtype).collect();
            move |gs: &[Option<Tensor>]| {
                let mut grads: Vec<Option<Tensor>> = vec![None; gs.len()];
                // one batched cast per source dtype (a model's weights: all F32)
                let mut dtypes: Vec<DType> = Vec::new();
                for &src in &srcs {
                    if dtypes.contains(&src) {
                        continue;
                    }
                    dtypes.push(src);
                    let ks: Vec<usize> =
                        (0..gs.len()).filter(|&k| needs[k] && srcs[k] == src && gs[k].is_some()).collect();
                    let wanted: Vec<Tensor> = ks.iter().filter_map(|&k| gs[k].clone()).collect();
                    for (k, g) in ks.into_iter().zip(Tensor::to_dtype_many(&wanted, src)?) {
                        grads[k] = Some(g);
                    }
                }
                Ok(grads)
            }
        })
    }
}

/// `g` with `before` zeros prepended and `after` zeros appended along axis `a`.
pub(crate) fn pad_axis(g: &Tensor, a: usize, before: usize, after: usize) -> Result<Tensor> {
    if before == 0 && after == 0 {
        return Ok(g.clone());
    }
    let zeros = |n: usize| -> Result<Tensor> {
        let mut dims = g.dims().to_vec();
        dims[a] = n;
        Ok(Tensor::zeros(dims, g.dtype(), &g.device())?)
    };
    let mut parts = Vec::with_capacity(3);
    if before > 0 {
        parts.push(zeros(before)?);
    }
    parts.push(g.clone());
    if after > 0 {
        parts.push(zeros(after)?);
    }
    Ok(Tensor::concat(&parts, a as isize)?)
}
