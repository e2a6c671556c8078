//! Views: ops that return a new layout over the same storage, never copying
//! (except `reshape` of non-contiguous data, which copies once, as PyTorch does).

use crate::{Error, Result, Shape, Tensor};

impl Tensor {
    /// The same elements with a new shape: a view of contiguous data, else one copy.
    /// See [`Tensor::reshape_infer`] for a `-1` dimension.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.checked_elem_count() != Some(self.elem_count()) {
            return Err(Error::shape_mismatch("reshape", self.shape(), &shape, "element counts differ"));
        }
        let t = self.contiguous()?;
        let layout = crate::Layout::new(shape.clone(), shape.contiguous_strides(), t.layout().offset());
        Ok(t.with_layout(layout))
    }

    /// Reshape where at most one entry is `-1` (inferred from the element count).
    pub fn reshape_infer(&self, dims: &[isize]) -> Result<Tensor> {
        let known: usize = dims.iter().filter(|&&d| d >= 0).map(|&d| d as usize).product();
        let n_infer = dims.iter().filter(|&&d| d == -1).count();
        let bad = dims.iter().any(|&d| d < -1)
            || n_infer > 1
            || (n_infer == 1 && (known == 0 || self.elem_count() % known != 0));
        if bad {
            return Err(Error::InvalidShape {
                op: "reshape",
                shape: self.shape().clone(),
                msg: format!("cannot reshape to {dims:?}"),
            });
        }
        let shape: Vec<usize> =
            dims.iter().map(|&d| if d == -1 { self.elem_count() / known.max(1) } else { d as usize }).collect();
        self.reshape(shape)
    }

    /// Flatten all dimensions from `start` (inclusive) into one.
    pub fn flatten_from(&self, start: usize) -> Result<Tensor> {
        if start > self.rank() {
            return Err(Error::InvalidAxis { op: "flatten", axis: start as isize, rank: self.rank() });
        }
        let mut dims = self.dims()[..start].to_vec();
        dims.push(self.dims()[start..].iter().product());
        self.reshape(dims)
    }

    /// Swap two dimensions (negative axes count from the end).
    pub fn transpose(&self, d0: isize, d1: isize) -> Result<Tensor> {
        let (a, b) = (self.shape().axis("transpose", d0)?, self.shape().axis("transpose", d1)?);
        Ok(self.with_layout(self.layout().transpose(a, b)?))
    }

    /// The matrix transpose of the last two dimensions.
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(Error::InvalidShape { op: "t", shape: self.shape().clone(), msg: "need rank >= 2".into() });
        }
        self.transpose(-2, -1)
    }

    /// Reorder dimensions: output dim `i` is input dim `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout().permute(perm)?))
    }

    /// Keep `len` entries of `axis` from `start`.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        let a = self.shape().axis("narrow", axis)?;
        Ok(self.with_layout(self.layout().narrow(a, start, len)?))
    }

    /// Python-style slice `start..end` (exclusive) along `axis`.
    pub fn slice(&self, axis: isize, start: usize, end: usize) -> Result<Tensor> {
        if end < start {
            return Err(Error::invalid("slice", format!("end {end} is before start {start}")));
        }
        self.narrow(axis, start, end - start)
    }

    /// Broadcast to `shape` (NumPy rules) with stride-0 dimensions.
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if &shape == self.shape() {
            return Ok(self.clone());
        }
        Ok(self.with_layout(self.layout().broadcast_as(&shape)?))
    }

    /// Insert a size-1 dimension at `axis` (`-1` appends).
    pub fn unsqueeze(&self, axis: isize) -> Result<Tensor> {
        let rank = self.rank() as isize;
        let a = if axis < 0 { axis + rank + 1 } else { axis };
        if a < 0 || a > rank {
            return Err(Error::InvalidAxis { op: "unsqueeze", axis, rank: self.rank() });
        }
        let a = a as usize;
        let l = self.layout();
        let mut dims = l.dims().to_vec();
        let mut strides = l.strides().to_vec();
        let stride = if a < dims.len() { strides[a] * dims[a] } else { 1 };
        dims.insert(a, 1);
        strides.insert(a, stride);
        Ok(self.with_layout(crate::Layout::new(dims.into(), strides, l.offset())))
    }

    /// Remove the size-1 dimension `axis`.
    pub fn squeeze(&self, axis: isize) -> Result<Tensor> {
        let a = self.shape().axis("squeeze", axis)?;
        if self.dims()[a] != 1 {
            return Err(Error::InvalidShape {
                op: "squeeze",
                shape: self.shape().clone(),
                msg: format!("dim {a} has size {}, not 1", self.dims()[a]),
            });
        }
        let l = self.layout();
        let mut dims = l.dims().to_vec();
        let mut strides = l.strides().to_vec();
        dims.remove(a);
        strides.remove(a);
        Ok(self.with_layout(crate::Layout::new(dims.into(), strides, l.offset())))
    }

    /// Remove every size-1 dimension.
    pub fn squeeze_all(&self) -> Result<Tensor> {
        let l = self.layout();
        let (dims, strides): (Vec<usize>, Vec<usize>) =
            l.dims().iter().zip(l.strides()).filter(|(&d, _)| d != 1).map(|(&d, &s)| (d, s)).unzip();
        Ok(self.with_layout(crate::Layout::new(dims.into(), strides, l.offset())))
    }
}
