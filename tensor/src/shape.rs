//! [`Shape`]: the dimensions of a tensor, NumPy broadcasting and axis handling.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// The dimensions of a tensor, outermost first (row-major).
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Shape(Vec<usize>);

impl Shape {
    /// A shape from its dimensions.
    pub fn new(dims: Vec<usize>) -> Self {
        Shape(dims)
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// The number of elements (1 for a scalar shape `[]`).
    pub fn elem_count(&self) -> usize {
        self.0.iter().product()
    }

    /// The number of elements, or `None` when the product overflows `usize` (the
    /// constructors check this, so a tensor's shape never does).
    pub fn checked_elem_count(&self) -> Option<usize> {
        self.0.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    /// Row-major (C-contiguous) strides for this shape, in elements.
    pub fn contiguous_strides(&self) -> Vec<usize> {
        let mut strides = vec![0; self.0.len()];
        let mut acc = 1;
        for (s, d) in strides.iter_mut().zip(self.0.iter()).rev() {
            *s = acc;
            acc *= *d;
        }
        strides
    }

    /// Resolve a possibly negative axis (`-1` = last) against this shape's rank.
    pub fn axis(&self, op: &'static str, axis: isize) -> Result<usize> {
        let rank = self.rank() as isize;
        let a = if axis < 0 { axis + rank } else { axis };
        if a < 0 || a >= rank {
            return Err(Error::InvalidAxis { op, axis, rank: self.rank() });
        }
        Ok(a as usize)
    }

    /// Resolve a list of axes; an empty list means every axis. Duplicates are an error.
    pub fn axes(&self, op: &'static str, axes: &[isize]) -> Result<Vec<usize>> {
        if axes.is_empty() {
            return Ok((0..self.rank()).collect());
        }
        let mut out = Vec::with_capacity(axes.len());
        for &a in axes {
            let a = self.axis(op, a)?;
            if out.contains(&a) {
                return Err(Error::invalid(op, format!("axis {a} given twice")));
            }
            out.push(a);
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The NumPy broadcast of two shapes, or a shape error naming `op`.
    pub fn broadcast(op: &'static str, lhs: &Shape, rhs: &Shape) -> Result<Shape> {
        let rank = lhs.rank().max(rhs.rank());
        let mut dims = vec![0; rank];
        for i in 0..rank {
            let l = if i < rank - lhs.rank() { 1 } else { lhs.0[i - (rank - lhs.rank())] };
            let r = if i < rank - rhs.rank() { 1 } else { rhs.0[i - (rank - rhs.rank())] };
            dims[i] = if l == r || r == 1 {
                l
            } else if l == 1 {
                r
            } else {
                return Err(Error::shape_mismatch(op, lhs, rhs, format!("cannot broadcast dim {l} against {r}")));
            };
        }
        Ok(Shape(dims))
    }
}

impl std::fmt::Debug for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Self {
        Shape(v)
    }
}

impl From<&[usize]> for Shape {
    fn from(v: &[usize]) -> Self {
        Shape(v.to_vec())
    }
}

impl From<&Vec<usize>> for Shape {
    fn from(v: &Vec<usize>) -> Self {
        Shape(v.clone())
    }
}

impl From<&Shape> for Shape {
    fn from(v: &Shape) -> Self {
        v.clone()
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(v: [usize; N]) -> Self {
        Shape(v.to_vec())
    }
}

impl From<()> for Shape {
    fn from(_: ()) -> Self {
        Shape(vec![])
    }
}

impl From<usize> for Shape {
    fn from(d: usize) -> Self {
        Shape(vec![d])
    }
}

macro_rules! shape_from_tuple {
    ($($n:ident),+) => {
        impl From<($(shape_from_tuple!(@usize $n),)+)> for Shape {
            #[allow(non_snake_case)]
            fn from(($($n,)+): ($(shape_from_tuple!(@usize $n),)+)) -> Self {
                Shape(vec![$($n),+])
            }
        }
    };
    (@usize $n:ident) => { usize };
}
shape_from_tuple!(A);
shape_from_tuple!(A, B);
shape_from_tuple!(A, B, C);
shape_from_tuple!(A, B, C, D);
shape_from_tuple!(A, B, C, D, E);
