//! [`Layout`]: how a tensor's shape maps onto its storage (strides and offset).
//!
//! Every view op (transpose, permute, narrow, broadcast, reshape of contiguous
//! data, squeeze/unsqueeze) is a new `Layout` over the same storage.

use crate::{Error, Result, Shape};

/// Shape, strides (in elements; 0 means broadcast) and start offset into storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    shape: Shape,
    strides: Vec<usize>,
    offset: usize,
}

impl Layout {
    /// A row-major layout starting at offset 0.
    pub fn contiguous(shape: impl Into<Shape>) -> Self {
        let shape = shape.into();
        let strides = shape.contiguous_strides();
        Layout { shape, strides, offset: 0 }
    }

    /// A layout from its parts (no validation against storage size).
    pub fn new(shape: Shape, strides: Vec<usize>, offset: usize) -> Self {
        Layout { shape, strides, offset }
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    /// The strides, in elements.
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// The offset of the first element in storage.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// True when the elements are stored row-major with no gaps (the offset may be non-zero).
    pub fn is_contiguous(&self) -> bool {
        let mut acc = 1;
        for (&d, &s) in self.shape.dims().iter().zip(self.strides.iter()).rev() {
            if d != 1 && s != acc {
                return false;
            }
            acc *= d;
        }
        true
    }

    /// `Some((start, end))` when contiguous: the storage range holding the elements.
    pub fn contiguous_range(&self) -> Option<(usize, usize)> {
        self.is_contiguous().then(|| (self.offset, self.offset + self.shape.elem_count()))
    }

    /// Swap two dimensions.
    pub fn transpose(&self, d0: usize, d1: usize) -> Result<Self> {
        let rank = self.shape.rank();
        if d0 >= rank || d1 >= rank {
            return Err(Error::InvalidAxis { op: "transpose", axis: d0.max(d1) as isize, rank });
        }
        let mut dims = self.shape.dims().to_vec();
        let mut strides = self.strides.clone();
        dims.swap(d0, d1);
        strides.swap(d0, d1);
        Ok(Layout { shape: Shape::new(dims), strides, offset: self.offset })
    }

    /// Reorder dimensions: output dim `i` is input dim `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Self> {
        let rank = self.shape.rank();
        let mut seen = vec![false; rank];
        if perm.len() != rank || perm.iter().any(|&p| p >= rank || std::mem::replace(&mut seen[p], true)) {
            return Err(Error::InvalidShape {
                op: "permute",
                shape: self.shape.clone(),
                msg: format!("{perm:?} is not a permutation of 0..{rank}"),
            });
        }
        let dims = perm.iter().map(|&p| self.shape.dims()[p]).collect();
        let strides = perm.iter().map(|&p| self.strides[p]).collect();
        Ok(Layout { shape: Shape::new(dims), strides, offset: self.offset })
    }

    /// Keep `len` entries of dimension `dim` starting at `start`.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Self> {
        let rank = self.shape.rank();
        if dim >= rank {
            return Err(Error::InvalidAxis { op: "narrow", axis: dim as isize, rank });
        }
        let size = self.shape.dims()[dim];
        if start.checked_add(len).is_none_or(|end| end > size) {
            return Err(Error::InvalidShape {
                op: "narrow",
                shape: self.shape.clone(),
                msg: format!("{len} entries from {start} exceed dim {dim} of size {size}"),
            });
        }
        let mut dims = self.shape.dims().to_vec();
        dims[dim] = len;
        Ok(Layout {
            shape: Shape::new(dims),
            strides: self.strides.clone(),
            offset: self.offset + start * self.strides[dim],
        })
    }

    /// Broadcast to `shape` (NumPy rules): new and size-1 dims get stride 0.
    pub fn broadcast_as(&self, shape: &Shape) -> Result<Self> {
        if shape.checked_elem_count().is_none() {
            return Err(Error::InvalidShape {
                op: "broadcast_to",
                shape: shape.clone(),
                msg: "has more elements than memory can address".into(),
            });
        }
        let rank = shape.rank();
        let mine = self.shape.dims();
        if mine.len() > rank {
            return Err(Error::shape_mismatch("broadcast_to", &self.shape, shape, "target has lower rank"));
        }
        let extra = rank - mine.len();
        let mut strides = vec![0; rank];
        for i in 0..rank {
            if i < extra {
                continue;
            }
            let (d, s) = (mine[i - extra], self.strides[i - extra]);
            let t = shape.dims()[i];
            strides[i] = if d == t {
                s
            } else if d == 1 {
                0
            } else {
                return Err(Error::shape_mismatch(
                    "broadcast_to",
                    &self.shape,
                    shape,
                    format!("dim {d} cannot become {t}"),
                ));
            };
        }
        Ok(Layout { shape: shape.clone(), strides, offset: self.offset })
    }

    /// Visit the storage offset of every element in row-major order.
    #[inline]
    pub fn for_each_offset(&self, mut f: impl FnMut(usize)) {
        if let Some((start, end)) = self.contiguous_range() {
            (start..end).for_each(f);
            return;
        }
        let dims = self.shape.dims();
        let rank = dims.len();
        if self.shape.elem_count() == 0 {
            return;
        }
        let (inner, inner_stride) = (dims[rank - 1], self.strides[rank - 1]);
        let mut idx = vec![0usize; rank - 1];
        let mut base = self.offset;
        loop {
            let mut o = base;
            for _ in 0..inner {
                f(o);
                o += inner_stride;
            }
            // advance the outer multi-index
            let mut d = rank - 1;
            loop {
                if d == 0 {
                    return;
                }
                d -= 1;
                idx[d] += 1;
                base += self.strides[d];
                if idx[d] < dims[d] {
                    break;
                }
                base -= self.strides[d] * dims[d];
                idx[d] = 0;
            }
        }
    }

    /// The storage offsets of every element in row-major order.
    pub fn offsets(&self) -> Vec<usize> {
        let mut v = Vec::with_capacity(self.shape.elem_count());
        self.for_each_offset(|o| v.push(o));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_of_transposed_and_narrowed_views() {
        let l = Layout::contiguous([2, 3]);
        assert_eq!(l.transpose(0, 1).unwrap().offsets(), vec![0, 3, 1, 4, 2, 5]);
        assert_eq!(l.narrow(1, 1, 2).unwrap().offsets(), vec![1, 2, 4, 5]);
        let b = Layout::contiguous([3]).broadcast_as(&Shape::from([2, 3])).unwrap();
        assert_eq!(b.offsets(), vec![0, 1, 2, 0, 1, 2]);
        assert!(!b.is_contiguous());
        let s = Layout::contiguous(());
        assert_eq!(s.offsets(), vec![0]);
    }
}
