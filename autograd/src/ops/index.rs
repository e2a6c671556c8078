//! Indexing and joining: gather, index_select, concat, stack, split, chunk.

use crate::{Error, Result, Var};
use keel_tensor::{Shape, Tensor};

impl Var {
    /// PyTorch `gather` along `axis` with I64 `index` (same rank); the gradient
    /// is scattered back with `scatter_add_into` (repeated indices accumulate).
    pub fn gather(&self, index: &Tensor, axis: isize) -> Result<Var> {
        let out = self.value().gather(index, axis)?;
        Var::record("gather", &[self], out, |_| {
            let index = index.clone();
            let in_shape = self.shape().clone();
            move |g: &Tensor| Ok(vec![Some(g.scatter_add_into(&index, axis, &in_shape)?)])
        })
    }

    /// Entries `indices` (1-D I64) along `axis`; the gradient is added back with
    /// `index_add_into` (repeated indices accumulate).
    pub fn index_select(&self, indices: &Tensor, axis: isize) -> Result<Var> {
        let out = self.value().index_select(indices, axis)?;
        Var::record("index_select", &[self], out, |_| {
            let indices = indices.clone();
            let in_shape = self.shape().clone();
            move |g: &Tensor| Ok(vec![Some(g.index_add_into(&indices, axis, &in_shape)?)])
        })
    }

    /// Join Vars along `axis`; each gets its slice of the gradient (a view).
    pub fn concat(vars: &[&Var], axis: isize) -> Result<Var> {
        let values: Vec<Tensor> = vars.iter().map(|v| v.value().clone()).collect();
        let out = Tensor::concat(&values, axis)?;
        drop(values);
        Var::record("concat", vars, out, |needs| {
            let sizes: Vec<usize> = vars
                .iter()
                .map(|v| v.shape().axis("concat", axis).map(|a| v.dims()[a]))
                .collect::<std::result::Result<_, _>>()
                .unwrap_or_default();
            let needs = needs.to_vec();
            move |g: &Tensor| {
                let parts = g.split(&sizes, axis)?;
                Ok(parts.into_iter().zip(needs).map(|(p, n)| n.then_some(p)).collect())
            }
        })
    }

    /// Join Vars of one shape along a new `axis`.
    pub fn stack(vars: &[&Var], axis: isize) -> Result<Var> {
        let parts = vars.iter().map(|v| v.unsqueeze(axis)).collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Var> = parts.iter().collect();
        Var::concat(&refs, axis)
    }

    /// Split along `axis` into pieces of the given sizes (views). One op on the
    /// tape: the backward concatenates the pieces' gradients (zeros where a
    /// piece got none).
    pub fn split(&self, sizes: &[usize], axis: isize) -> Result<Vec<Var>> {
        let pieces = self.value().split(sizes, axis)?;
        let a = self.shape().axis("split", axis)?;
        Var::record_multi("split", &[self], pieces, |_| {
            let shapes: Vec<Shape> = {
                let dims = self.dims();
                sizes
                    .iter()
                    .map(|&s| {
                        let mut d = dims.to_vec();
                        d[a] = s;
                        Shape::new(d)
                    })
                    .collect()
            };
            let (dtype, device) = (self.dtype(), self.device());
            move |gs: &[Option<Tensor>]| {
                let parts = gs
                    .iter()
                    .zip(&shapes)
                    .filter(|(_, s)| s.dims()[a] > 0)
                    .map(|(g, s)| match g {
                        Some(g) => Ok(g.clone()),
                        None => Ok(Tensor::zeros(s.clone(), dtype, &device)?),
                    })
                    .collect::<Result<Vec<_>>>()?;
                if parts.is_empty() {
                    return Err(Error::invalid("split", "internal: no pieces"));
                }
                Ok(vec![Some(Tensor::concat(&parts, a as isize)?)])
            }
        })
    }

    /// Split along `axis` into `n` nearly equal pieces (the first ones one larger).
    pub fn chunk(&self, n: usize, axis: isize) -> Result<Vec<Var>> {
        if n == 0 {
            return Err(Error::invalid("chunk", "need at least one chunk"));
        }
        let d = self.value().dim(axis)?;
        let sizes: Vec<usize> = (0..n).map(|i| d / n + usize::from(i < d % n)).collect();
        self.split(&sizes, axis)
    }
}
