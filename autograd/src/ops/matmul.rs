//! Matrix multiplication (2-D and batched, with broadcast batch dims).

use super::reduce_to_shape;
use crate::{Result, Var};
use keel_tensor::Tensor;

impl Var {
    /// Matrix product of the last two dims with broadcast batch dims:
    /// `dA = g Bᵀ`, `dB = Aᵀ g`, each summed over the batch dims it was broadcast along.
    pub fn matmul(&self, rhs: &Var) -> Result<Var> {
        let out = self.value().matmul(rhs.value())?;
        Var::record("matmul", &[self, rhs], out, |needs| {
            let (need_a, need_b) = (needs[0], needs[1]);
            // dA needs B and dB needs A: save each only if the other side wants a gradient.
            let a = need_b.then(|| self.value().clone());
            let b = need_a.then(|| rhs.value().clone());
            let (sa, sb) = (self.shape().clone(), rhs.shape().clone());
            move |g: &Tensor| {
                let ga = match &b {
                    Some(b) => Some(reduce_to_shape(&g.matmul(&b.t()?)?, &sa)?),
                    None => None,
                };
                let gb = match &a {
                    Some(a) => Some(reduce_to_shape(&a.t()?.matmul(g)?, &sb)?),
                    None => None,
                };
                Ok(vec![ga, gb])
            }
        })
    }
}
