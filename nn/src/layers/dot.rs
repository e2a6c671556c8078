//! [`Dot`]: Keras's batchwise dot product of two inputs along one axis of each (merge layer).

use crate::layer::{check_same_batch, layer_common, multi_input_layer, sample_shapes, with_name, Ctx, Layer};
use crate::layers::unit_normalization::l2_normalize;
use crate::{Error, Result};
use keel_autograd::Var;
use serde::{Deserialize, Serialize};

/// Keras's `epsilon()`: the smallest norm [`Dot`]'s `normalize` divides by.
const EPSILON: f64 = 1e-7;

/// `x` L2-normalized along `axis` with Keras's `Dot` epsilon.
fn l2_normalize_along(x: &Var, axis: usize) -> Result<Var> {
    l2_normalize(x, &[axis as isize], EPSILON)
}

/// The axes of a [`Dot`], as Keras writes them: one axis for both inputs (`1`) or one per
/// input (`[1, 2]`); counted with the batch axis (`1` is the first per-sample axis, negative
/// counts from the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DotAxes {
    /// The same axis of both inputs.
    One(isize),
    /// The first input's axis, then the second's.
    Pair([isize; 2]),
}

impl From<isize> for DotAxes {
    fn from(a: isize) -> Self {
        DotAxes::One(a)
    }
}

impl From<i32> for DotAxes {
    fn from(a: i32) -> Self {
        DotAxes::One(a as isize)
    }
}

impl From<(isize, isize)> for DotAxes {
    fn from((a, b): (isize, isize)) -> Self {
        DotAxes::Pair([a, b])
    }
}

impl From<(i32, i32)> for DotAxes {
    fn from((a, b): (i32, i32)) -> Self {
        DotAxes::Pair([a as isize, b as isize])
    }
}

impl From<[isize; 2]> for DotAxes {
    fn from(p: [isize; 2]) -> Self {
        DotAxes::Pair(p)
    }
}

/// Keras's `Dot(axes, normalize=False)`: the dot product of two batches along `axes[0]` of
/// the first and `axes[1]` of the second (Keras's `batch_dot`).
///
/// The output holds, per sample, the first input's remaining axes followed by the second's
/// (`[B, 3, 5]` and `[B, 10, 3]` with `axes = (1, 2)` give `[B, 5, 10]`); when none remain
/// (two `[B, n]` inputs) it is `[B, 1]`, as Keras's. With `normalize`, each input is first
/// L2-normalized along its axis (`x * min(1 / ‖x‖, 1 / 1e-7)`, Keras's), so the output is
/// the cosine similarity. Masks stop here (Keras's `compute_mask` returns none).
///
/// ```
/// use keel_nn::prelude::*;
///
/// # fn main() -> keel_nn::Result<()> {
/// let (a, b) = (Input::new([3, 5]), Input::new([10, 3]));
/// let y = Dot::new((1, 2)).call_multi(&[a, b])?;
/// assert_eq!(y.shape(), [5, 10]);
/// let (u, v) = (Input::new([8]), Input::new([8]));
/// let cosine = Dot::new(1).normalize(true).call_multi(&[u, v])?;
/// assert_eq!(cosine.shape(), [1]);
/// # Ok(())
/// # }
/// ```
pub struct Dot {
    name: String,
    input_shape: Option<Vec<usize>>,
    axes: DotAxes,
    normalize: bool,
    built: bool,
}

impl Dot {
    /// The dot product along `axes`: an axis (`1`, `-1`) or a pair (`(1, 2)`), counted as
    /// Keras counts them (with the batch axis, which cannot be one of them).
    pub fn new(axes: impl Into<DotAxes>) -> Self {
        Dot { name: String::new(), input_shape: None, axes: axes.into(), normalize: false, built: false }
    }

    /// L2-normalize each input along its axis first (the output is then the cosine similarity).
    pub fn normalize(mut self, yes: bool) -> Self {
        self.normalize = yes;
        self
    }

    /// Give the layer a name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The axes.
    pub fn axes(&self) -> DotAxes {
        self.axes
    }

    fn bad(&self, expected: String, got: &[usize]) -> Error {
        Error::IncompatibleInput { layer: self.name.clone(), class: "Dot", expected, got: got.to_vec() }
    }

    /// The contracted per-sample axes of inputs of per-sample shapes `a` and `b` (Keras's
    /// axes resolved against the batch ranks, less the batch axis), checked.
    fn resolve(&self, a: &[usize], b: &[usize]) -> Result<[usize; 2]> {
        let [xa, xb] = match self.axes {
            DotAxes::One(x) => [x, x],
            DotAxes::Pair(p) => p,
        };
        let one = |axis: isize, s: &[usize], other: &[usize], which: &str| -> Result<usize> {
            let rank = s.len() as isize + 1;
            let r = if axis < 0 { axis + rank } else { axis };
            if r < 1 || r >= rank {
                return Err(self.bad(
                    format!(
                        "a {which} input with an axis {axis} other than the batch axis (axes {:?} with the other \
                         input {other:?}; Keras counts the batch axis: 1 is the first per-sample axis, -1 the last)",
                        self.axes
                    ),
                    s,
                ));
            }
            Ok(r as usize - 1)
        };
        let (ia, ib) = (one(xa, a, b, "first")?, one(xb, b, a, "second")?);
        if a[ia] != b[ib] {
            return Err(self.bad(
                format!(
                    "a second input whose axis {xb} has the size of the first's axis {xa}: {} (first input {a:?}, \
                     second {b:?})",
                    a[ia]
                ),
                b,
            ));
        }
        Ok([ia, ib])
    }

    /// The two per-sample shapes of a call.
    fn pair<'s>(&self, shapes: &'s [Vec<usize>]) -> Result<(&'s [usize], &'s [usize])> {
        match shapes {
            [a, b] => Ok((a, b)),
            _ => Err(Error::Graph(format!("Dot \"{}\" takes exactly two inputs, got {}", self.name, shapes.len()))),
        }
    }
}

/// The batch dot product of `x` `[B, ..]` and `y` `[B, ..]` over `x`'s axis `ax` and `y`'s
/// axis `ay` (batch axes, both >= 1): `x`'s other axes, then `y`'s (`[B, 1]` when none).
fn batch_dot(x: &Var, y: &Var, ax: usize, ay: usize) -> Result<Var> {
    let b = x.dims()[0];
    let rest = |v: &Var, skip: usize| -> Vec<usize> {
        v.dims().iter().enumerate().filter(|&(i, _)| i != 0 && i != skip).map(|(_, &d)| d).collect()
    };
    let (xr, yr) = (rest(x, ax), rest(y, ay));
    let d = x.dims()[ax];
    // x: the contracted axis last -> [B, M, d]; y: the contracted axis first -> [B, d, N]
    let mut px: Vec<usize> = (0..x.rank()).filter(|&i| i != ax).collect();
    px.push(ax);
    let mut py: Vec<usize> = vec![0, ay];
    py.extend((1..y.rank()).filter(|&i| i != ay));
    let m: usize = xr.iter().product();
    let n: usize = yr.iter().product();
    let xs = x.permute(&px)?.reshape([b, m, d])?;
    let ys = y.permute(&py)?.reshape([b, d, n])?;
    let mut out = vec![b];
    out.extend(&xr);
    out.extend(&yr);
    if out.len() == 1 {
        out.push(1);
    }
    Ok(xs.matmul(&ys)?.reshape(out)?)
}

impl Layer for Dot {
    layer_common!("Dot");

    multi_input_layer!();

    fn output_shape_multi(&self, input_shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
        let (a, b) = self.pair(input_shapes)?;
        let [ia, ib] = self.resolve(a, b)?;
        let mut out: Vec<usize> = a.iter().enumerate().filter(|&(i, _)| i != ia).map(|(_, &d)| d).collect();
        out.extend(b.iter().enumerate().filter(|&(i, _)| i != ib).map(|(_, &d)| d));
        if out.is_empty() {
            out.push(1);
        }
        Ok(out)
    }

    fn forward_logits_multi(&self, xs: &[Var], _ctx: &mut Ctx<'_>) -> Result<Var> {
        let shapes = sample_shapes(xs);
        let (a, b) = self.pair(&shapes)?;
        let [ia, ib] = self.resolve(a, b)?;
        check_same_batch(xs, &self.name, "Dot")?;
        let (x, y) = (&xs[0], &xs[1]);
        let (x, y) = if self.normalize {
            (l2_normalize_along(x, ia + 1)?, l2_normalize_along(y, ib + 1)?)
        } else {
            (x.clone(), y.clone())
        };
        batch_dot(&x, &y, ia + 1, ib + 1)
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "axes": self.axes, "normalize": self.normalize }))
    }
}
