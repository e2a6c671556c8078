//! Matrix multiplication (2-D and batched, with broadcast batch dims), alone or
//! with a Dense layer's bias (and ReLU) fused in.

use super::reduce_to_shape;
use crate::{Result, Var};
use keel_tensor::{Shape, Tensor};

impl Var {
    /// Matrix product of the last two dims with broadcast batch dims:
    /// `dA = g Bᵀ`, `dB = Aᵀ g`, each summed over the batch dims it was broadcast along.
    pub fn matmul(&self, rhs: &Var) -> Result<Var> {
        let out = self.value().matmul(rhs.value())?;
        Var::record("matmul", &[self, rhs], out, |needs| {
            let saved = MatmulSaved::new(self, rhs, needs);
            move |g: &Tensor| saved.grads(g)
        })
    }

    /// `self.matmul(rhs) + bias` with `bias` `[n]` as one op: the values and
    /// gradients of `matmul` then `add`, in one launch on CUDA
    /// ([`Tensor::matmul_bias`]).
    pub fn matmul_bias(&self, rhs: &Var, bias: &Var) -> Result<Var> {
        let out = self.value().matmul_bias(rhs.value(), bias.value())?;
        Var::record("matmul_bias", &[self, rhs, bias], out, |needs| {
            let saved = MatmulSaved::new(self, rhs, needs);
            let bias_shape = needs[2].then(|| bias.shape().clone());
            move |g: &Tensor| {
                let mut grads = saved.grads(g)?;
                grads.push(bias_grad(g, bias_shape.as_ref())?);
                Ok(grads)
            }
        })
    }

    /// `relu(self.matmul(rhs) + bias)` with `bias` `[n]` as one op: the values
    /// and gradients of `matmul` then [`Var::add_relu`], in one launch on CUDA
    /// ([`Tensor::matmul_bias_relu`]). The rule saves the output for the
    /// ReLU mask, and the operands as `matmul` does.
    pub fn matmul_bias_relu(&self, rhs: &Var, bias: &Var) -> Result<Var> {
        let out = self.value().matmul_bias_relu(rhs.value(), bias.value())?;
        Var::record("matmul_bias_relu", &[self, rhs, bias], out.clone(), |needs| {
            let saved = MatmulSaved::new(self, rhs, needs);
            let bias_shape = needs[2].then(|| bias.shape().clone());
            move |g: &Tensor| {
                let (gz, gb) = super::relu_bias_grads(&out, g, bias_shape.as_ref())?;
                let mut grads = saved.grads(&gz)?;
                grads.push(gb);
                Ok(grads)
            }
        })
    }
}

/// What a matmul's backward keeps: dA needs B and dB needs A, so each operand is
/// saved only if the other side wants a gradient.
struct MatmulSaved {
    a: Option<Tensor>,
    b: Option<Tensor>,
    sa: Shape,
    sb: Shape,
}

impl MatmulSaved {
    fn new(a: &Var, b: &Var, needs: &[bool]) -> MatmulSaved {
        MatmulSaved {
            a: needs[1].then(|| a.value().clone()),
            b: needs[0].then(|| b.value().clone()),
            sa: a.shape().clone(),
            sb: b.shape().clone(),
        }
    }

    /// `[dA, dB]` from the output gradient `g`.
    fn grads(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let ga = match &self.b {
            Some(b) => Some(reduce_to_shape(&g.matmul(&b.t()?)?, &self.sa)?),
            None => None,
        };
        let gb = match &self.a {
            Some(a) => Some(reduce_to_shape(&a.t()?.matmul(g)?, &self.sb)?),
            None => None,
        };
        Ok(vec![ga, gb])
    }
}

/// The bias gradient (the output gradient summed to the bias's shape), if wanted.
fn bias_grad(g: &Tensor, bias_shape: Option<&Shape>) -> Result<Option<Tensor>> {
    Ok(match bias_shape {
        Some(s) => Some(reduce_to_shape(g, s)?),
        None => None,
    })
}
