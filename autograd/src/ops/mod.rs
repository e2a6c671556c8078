//! Differentiable ops on [`Var`](crate::Var), one module per family. Each op
//! computes its value with the keel-tensor op of the same name and, when an
//! input is tracked, records a backward rule written with ordinary tensor ops
//! (so it runs on whatever device the data is on). A rule saves only what it
//! needs, and only for the inputs that want a gradient.

pub mod conv;
pub mod elementwise;
pub mod image;
pub mod index;
pub mod matmul;
pub mod reduce;
pub mod rnn;
pub mod shape;

use keel_tensor::{Result, Shape, Tensor};

/// Sum `g` (a broadcast-output gradient) down to `shape`: over leading dims
/// that `shape` lacks and over dims where `shape` has size 1.
pub fn reduce_to_shape(g: &Tensor, shape: &Shape) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let extra = g.rank().saturating_sub(shape.rank());
    let axes: Vec<isize> = (0..g.rank())
        .filter(|&i| i < extra || (shape.dims()[i - extra] == 1 && g.dims()[i] != 1))
        .map(|i| i as isize)
        .collect();
    let summed = if axes.is_empty() { g.clone() } else { g.sum(&axes, true)? };
    summed.reshape(shape.clone())
}

/// The gradients of `relu(z + bias)` from the gradient `g` of its output `out`: the one
/// reaching `z`, and the bias's summed to `bias_shape` when wanted. A per-channel bias
/// (`[C]`, `out`'s last axis) takes both from one pass ([`Tensor::relu_grad_with_bias_grad`],
/// one launch on CUDA); the values are those of `unary_grad` and [`reduce_to_shape`].
pub(crate) fn relu_bias_grads(
    out: &Tensor,
    g: &Tensor,
    bias_shape: Option<&Shape>,
) -> Result<(Tensor, Option<Tensor>)> {
    match bias_shape {
        Some(s) if out.rank() >= 2 && s.dims() == &out.dims()[out.rank() - 1..] => {
            let (gz, gb) = out.relu_grad_with_bias_grad(g)?;
            Ok((gz, Some(gb)))
        }
        Some(s) => {
            let gz = out.unary_grad(g, keel_tensor::UnaryOp::Relu, 0.0)?;
            let gb = reduce_to_shape(&gz, s)?;
            Ok((gz, Some(gb)))
        }
        None => Ok((out.unary_grad(g, keel_tensor::UnaryOp::Relu, 0.0)?, None)),
    }
}

/// The shape of a reduction over `axes` (resolved, sorted) with `keepdim = true`.
pub(crate) fn keepdim_shape(dims: &[usize], axes: &[usize]) -> Shape {
    Shape::new(dims.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect())
}
