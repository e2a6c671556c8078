//! Gradient clipping as Keras does it (`clipnorm`, `global_clipnorm`, `clipvalue`).
//!
//! Every function stays on the gradients' device: norms are 0-d tensors, never
//! read back to the host.

use crate::{Error, Result};
use keel_tensor::{DType, Tensor};
use serde::{Deserialize, Serialize};

/// Which clipping an optimizer applies to gradients before its update (at most one, as in Keras).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub enum Clipping {
    /// No clipping.
    #[default]
    None,
    /// `clipnorm`: rescale each gradient tensor so its L2 norm is at most this.
    Norm(f64),
    /// `global_clipnorm`: rescale all gradients together so their joint L2 norm is at most this.
    GlobalNorm(f64),
    /// `clipvalue`: clamp every gradient element to `[-v, v]`.
    Value(f64),
}

impl Clipping {
    /// Check the threshold is a finite positive number.
    pub fn validate(&self, optimizer: &'static str) -> Result<()> {
        let (name, v) = match *self {
            Clipping::None => return Ok(()),
            Clipping::Norm(v) => ("clipnorm", v),
            Clipping::GlobalNorm(v) => ("global_clipnorm", v),
            Clipping::Value(v) => ("clipvalue", v),
        };
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(Error::InvalidHyperparameter { optimizer, name, value: v, msg: "must be finite and > 0" })
        }
    }

    /// Clip `grads` in place (entries without a gradient are left as `None`).
    pub fn apply(&self, grads: &mut [Option<Tensor>]) -> Result<()> {
        match *self {
            Clipping::None => {}
            Clipping::Norm(c) => {
                for g in grads.iter_mut().flatten() {
                    *g = clip_by_norm(g, c)?;
                }
            }
            Clipping::Value(v) => {
                for g in grads.iter_mut().flatten() {
                    *g = g.clamp(-v, v)?;
                }
            }
            Clipping::GlobalNorm(c) => {
                let present: Vec<Tensor> = grads.iter().flatten().cloned().collect();
                if present.is_empty() {
                    return Ok(());
                }
                let scale = global_clip_scale(&present, c)?;
                for g in grads.iter_mut().flatten() {
                    *g = g.mul(&cast(&scale, g.dtype())?)?;
                }
            }
        }
        Ok(())
    }
}

fn cast(t: &Tensor, dtype: DType) -> Result<Tensor> {
    Ok(if t.dtype() == dtype { t.clone() } else { t.to_dtype(dtype)? })
}

/// `g * clipnorm / max(||g||, clipnorm)`: `g` unchanged when its L2 norm is within `clipnorm`.
pub fn clip_by_norm(g: &Tensor, clipnorm: f64) -> Result<Tensor> {
    let norm = g.square()?.sum_all()?.sqrt()?;
    Ok(g.mul_scalar(clipnorm)?.div(&norm.maximum_scalar(clipnorm)?)?)
}

/// The joint L2 norm `sqrt(sum_i ||g_i||^2)` of several tensors, as a 0-d tensor on their
/// device: F64 on the CPU, and on CUDA when every tensor is F64; otherwise F32 on CUDA,
/// where a cast to F64 goes through the host (its F32 reductions accumulate in f32 anyway).
pub fn global_norm(grads: &[Tensor]) -> Result<Tensor> {
    let all_f64 = grads.iter().all(|g| g.dtype() == DType::F64);
    let mut total: Option<Tensor> = None;
    for g in grads {
        let acc = if g.device().is_cuda() && !all_f64 { DType::F32 } else { DType::F64 };
        let s = cast(&g.square()?.sum_all()?, acc)?;
        total = Some(match total {
            Some(t) => t.add(&s)?,
            None => s,
        });
    }
    match total {
        Some(t) => Ok(t.sqrt()?),
        None => Ok(Tensor::scalar(0.0f64)),
    }
}

/// The factor Keras's `clip_by_global_norm` multiplies every gradient by:
/// `clipnorm * min(1 / norm, 1 / clipnorm)`, NaN when the norm is not finite.
fn global_clip_scale(grads: &[Tensor], clipnorm: f64) -> Result<Tensor> {
    let norm = global_norm(grads)?;
    let scale = norm.recip()?.minimum_scalar(1.0 / clipnorm)?.mul_scalar(clipnorm)?;
    // + (norm - norm): a no-op for a finite norm, NaN for inf/NaN (as Keras).
    Ok(scale.add(&norm.sub(&norm)?)?)
}

/// Rescale all of `grads` by one factor so their joint L2 norm is at most `clipnorm` (Keras `clip_by_global_norm`).
pub fn clip_by_global_norm(grads: &[Tensor], clipnorm: f64) -> Result<Vec<Tensor>> {
    if grads.is_empty() {
        return Ok(Vec::new());
    }
    let scale = global_clip_scale(grads, clipnorm)?;
    grads.iter().map(|g| Ok(g.mul(&cast(&scale, g.dtype())?)?)).collect()
}

/// Clamp every element of `g` to `[-clipvalue, clipvalue]`.
pub fn clip_by_value(g: &Tensor, clipvalue: f64) -> Result<Tensor> {
    Ok(g.clamp(-clipvalue, clipvalue)?)
}
