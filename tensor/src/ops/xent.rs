//! Softmax cross-entropy per row of logits, with its gradient, in one pass: the
//! primitive under the categorical cross-entropy losses.
//!
//! For logits `x` (`[..., C]`, rows over the leading dims) and targets `t`, per row
//! (`lse = log(sum_c exp(x_c))`, computed stably):
//! * class indices (an integer dtype, the leading shape): `loss = lse - x[label]`;
//! * probabilities or one-hot rows (float, the logits' shape):
//!   `loss = sum_c t_c (lse - x_c)` (classes with `t_c = 0` add nothing, so a `-inf`
//!   logit of an impossible class gives no NaN);
//!
//! and, when asked, `grad = scale * (softmax(x) * sum_c t_c - t)`, the gradient of
//! `scale * loss` (`softmax - onehot` for one-hot targets).
//!
//! F16/BF16 logits are computed as F32 (the values of their cast to F32; every result is
//! F32, as PyTorch's autocast computes cross-entropy in float32): a mixed-precision model
//! hands its BF16 logits over without casting them first. F32/F64 on the CPU (F16/BF16
//! widened first) and F32/F16/BF16 on CUDA (`softmax_xent_*_{f32,f16,bf16}`, one launch
//! reading the logits as stored) run a fused kernel; F64 on CUDA runs the formulas as
//! tensor ops.

use crate::{DType, Error, Result, Shape, Storage, Tensor};

const OP: &str = "softmax_cross_entropy";

/// What [`Tensor::softmax_cross_entropy_with`] computes: the per-row losses, and what was
/// asked for besides.
#[derive(Debug, Clone)]
pub struct SoftmaxCrossEntropy {
    /// The loss of every row (the logits' shape without the class axis).
    pub loss: Tensor,
    /// The gradient of `grad_scale * loss` with respect to the logits, if asked for.
    pub grad: Option<Tensor>,
    /// `softmax(logits)` over the class axis, if asked for: the values (and bits) that
    /// [`Tensor::softmax`]`(-1)` gives.
    pub probs: Option<Tensor>,
    /// The mean of `loss` (0-d) where the fused kernel computed it in the same pass (CUDA,
    /// F32/F16/BF16 logits, at most 65,536 rows); `None` elsewhere. [`SoftmaxCrossEntropy::mean`]
    /// gives the mean either way.
    pub mean: Option<Tensor>,
}

impl SoftmaxCrossEntropy {
    /// The mean of the per-row losses (0-d; 0 for no rows): the fused kernel's when it
    /// computed one, else `loss.mean_all()`. On CUDA the two add the losses in different
    /// orders, so their last bits may differ.
    pub fn mean(&self) -> Result<Tensor> {
        match &self.mean {
            Some(m) => Ok(m.clone()),
            None if self.loss.elem_count() == 0 => self.loss.sum_all(),
            None => self.loss.mean_all(),
        }
    }
}

impl Tensor {
    /// Softmax cross-entropy of logits `self` (`[..., C]`) against `targets`, per row:
    /// returns the losses (the leading shape) and, with `grad_scale`, the gradient of
    /// `grad_scale * loss` with respect to the logits (their shape). `targets` holds class
    /// indices (an integer dtype, the leading shape) or probabilities (a float dtype, the
    /// logits' shape). Results are F64 for F64 logits and F32 for the others (F16/BF16
    /// logits are read as F32, see the module docs). A class index outside `0..C` is an `IndexOutOfRange` error: at once
    /// on the CPU, from the next read-back on CUDA (which checks on the device, as
    /// `one_hot` does; the row counts as all-zero targets meanwhile: loss and gradient 0,
    /// so a training step that ran before the report leaves the weights finite).
    pub fn softmax_cross_entropy(&self, targets: &Tensor, grad_scale: Option<f64>) -> Result<(Tensor, Option<Tensor>)> {
        let r = self.softmax_cross_entropy_with(targets, grad_scale, false)?;
        Ok((r.loss, r.grad))
    }

    /// [`Tensor::softmax_cross_entropy`], and with `probs` the probabilities
    /// `softmax(self)` as well: a model ending in a softmax gets its loss, its gradient and
    /// its output from one kernel launch on CUDA.
    pub fn softmax_cross_entropy_with(
        &self,
        targets: &Tensor,
        grad_scale: Option<f64>,
        probs: bool,
    ) -> Result<SoftmaxCrossEntropy> {
        if !self.dtype().is_float() {
            return Err(Error::UnsupportedDType { op: OP, dtype: self.dtype(), hint: "logits must be a float dtype" });
        }
        let Some((&classes, lead)) = self.dims().split_last() else {
            return Err(Error::invalid(OP, "logits need a class axis"));
        };
        if classes == 0 {
            return Err(Error::invalid(OP, "logits have no classes (a class axis of size 0)"));
        }
        let sparse = !targets.dtype().is_float();
        if sparse && targets.dims() != lead {
            let msg = "class-index targets must have the logits' shape without the class axis";
            return Err(Error::shape_mismatch(OP, self.shape(), targets.shape(), msg));
        }
        if !sparse && targets.shape() != self.shape() {
            let msg = "probability targets must have the logits' shape";
            return Err(Error::shape_mismatch(OP, self.shape(), targets.shape(), msg));
        }
        let lead = Shape::from(lead.to_vec());
        // F16/BF16 compute as F32: CUDA's kernels read them as stored, the CPU widens first
        let wide = if self.dtype() == DType::F64 { DType::F64 } else { DType::F32 };
        let x = if self.device() == crate::Device::Cpu { self.to_dtype(wide)? } else { self.clone() }.contiguous()?;
        let t = if sparse { targets.to_dtype(DType::I64)? } else { targets.to_dtype(wide)? }.contiguous()?;
        if sparse {
            t.check_indices(classes, OP)?;
        }
        let fused = {
            let (sx, st) = (x.storage(), t.storage());
            match (&*sx, &*st) {
                #[cfg(feature = "cpu")]
                (Storage::Cpu(xs), Storage::Cpu(ts)) => {
                    cpu::softmax_cross_entropy(xs, x.layout(), ts, t.layout(), classes, grad_scale)?
                        .map(|(l, g)| (Storage::Cpu(l), g.map(Storage::Cpu), None, None))
                }
                #[cfg(feature = "cuda")]
                (Storage::Cuda(xs), Storage::Cuda(ts)) => crate::cuda::reduce::softmax_cross_entropy(
                    xs,
                    x.layout(),
                    ts,
                    t.layout(),
                    classes,
                    grad_scale,
                    probs,
                )?
                .map(|f| {
                    (
                        Storage::Cuda(f.loss),
                        f.grad.map(Storage::Cuda),
                        f.probs.map(Storage::Cuda),
                        f.mean.map(Storage::Cuda),
                    )
                }),
                _ => None,
            }
        };
        let shaped = |s: Storage| Tensor::from_storage(s, self.shape().clone());
        // the CPU's fused kernel leaves the probabilities to the softmax op (no launch to save)
        let softmax_if_asked = |p: Option<Tensor>| match p {
            Some(p) => Ok(Some(p)),
            None if probs => x.softmax(-1).map(Some),
            None => Ok(None),
        };
        if let Some((loss, grad, p, mean)) = fused {
            return Ok(SoftmaxCrossEntropy {
                loss: Tensor::from_storage(loss, lead),
                grad: grad.map(shaped),
                probs: softmax_if_asked(p.map(shaped))?,
                mean: mean.map(|m| Tensor::from_storage(m, Shape::from(Vec::new()))),
            });
        }
        // F64 on CUDA (and operands on two devices, which the ops report)
        let x = x.to_dtype(wide)?;
        let t = if sparse { t.one_hot(classes, wide)? } else { t };
        let lsm = x.log_softmax(-1)?;
        let loss = t.mul(&lsm)?.sum(&[-1], false)?.neg()?;
        let grad = match grad_scale {
            Some(s) => Some(lsm.exp()?.mul(&t.sum(&[-1], true)?)?.sub(&t)?.mul_scalar(s)?),
            None => None,
        };
        Ok(SoftmaxCrossEntropy { loss, grad, probs: softmax_if_asked(None)?, mean: None })
    }
}

#[cfg(feature = "cpu")]
pub(crate) mod cpu {
    use super::OP;
    use crate::{CpuStorage, Error, Layout, Result};
    use rayon::prelude::*;

    /// The float types of the fused CPU kernel.
    trait XentFloat:
        Copy
        + Send
        + Sync
        + PartialOrd
        + std::ops::Add<Output = Self>
        + std::ops::Sub<Output = Self>
        + std::ops::Mul<Output = Self>
        + std::ops::Div<Output = Self>
    {
        const ZERO: Self;
        const ONE: Self;
        const NEG_INFINITY: Self;
        fn exp(self) -> Self;
        fn ln(self) -> Self;
        fn of(v: f64) -> Self;
    }

    macro_rules! xent_float {
        ($($t:ty),*) => {$(
            impl XentFloat for $t {
                const ZERO: Self = 0.0;
                const ONE: Self = 1.0;
                const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
                fn exp(self) -> Self { crate::ops::unary::FloatExt::exp_(self) }
                fn ln(self) -> Self { <$t>::ln(self) }
                fn of(v: f64) -> Self { v as $t }
            }
        )*};
    }
    xent_float!(f32, f64);

    /// The targets of every row: class indices (checked in range) or rows of probabilities.
    #[derive(Clone, Copy)]
    enum Targets<'a, T> {
        Classes(&'a [i64]),
        Probs(&'a [T]),
    }

    /// The loss of row `r` of `x`, writing `scale * (softmax * sum(t) - t)` into `grad` if given.
    fn row<T: XentFloat>(x: &[T], t: Targets<'_, T>, r: usize, grad: Option<&mut [T]>, scale: T) -> T {
        let c = x.len();
        let m = x.iter().fold(T::NEG_INFINITY, |m, &v| if v > m { v } else { m });
        let sum = x.iter().fold(T::ZERO, |s, &v| s + (v - m).exp());
        // (max - x) + ln(sum), not lse - x: lse rounded at the logits' magnitude would lose
        // the small loss of a confident row
        let ls = sum.ln();
        let (loss, tsum) = match t {
            Targets::Classes(labels) => ((m - x[labels[r] as usize]) + ls, T::ONE),
            Targets::Probs(p) => {
                let (mut l, mut ts) = (T::ZERO, T::ZERO);
                for (&tc, &xc) in p[r * c..(r + 1) * c].iter().zip(x) {
                    ts = ts + tc;
                    if tc != T::ZERO {
                        l = l + tc * ((m - xc) + ls);
                    }
                }
                (l, ts)
            }
        };
        if let Some(g) = grad {
            for (j, (gj, &xj)) in g.iter_mut().zip(x).enumerate() {
                let tj = match t {
                    Targets::Classes(labels) if labels[r] as usize == j => T::ONE,
                    Targets::Classes(_) => T::ZERO,
                    Targets::Probs(p) => p[r * c + j],
                };
                *gj = scale * ((xj - m).exp() / sum * tsum - tj);
            }
        }
        loss
    }

    fn run<T: XentFloat>(x: &[T], t: Targets<'_, T>, c: usize, grad_scale: Option<f64>) -> (Vec<T>, Option<Vec<T>>) {
        let mut loss = vec![T::ZERO; x.len() / c];
        let grad = grad_scale.map(|s| {
            let mut g = vec![T::ZERO; x.len()];
            let scale = T::of(s);
            loss.par_iter_mut()
                .zip(g.par_chunks_mut(c))
                .zip(x.par_chunks(c))
                .enumerate()
                .for_each(|(r, ((l, gr), xr))| *l = row(xr, t, r, Some(gr), scale));
            g
        });
        if grad.is_none() {
            loss.par_iter_mut()
                .zip(x.par_chunks(c))
                .enumerate()
                .for_each(|(r, (l, xr))| *l = row(xr, t, r, None, T::ZERO));
        }
        (loss, grad)
    }

    /// The slice of a contiguous `l` over `v`.
    fn slice<'a, T>(v: &'a [T], l: &Layout) -> Result<&'a [T]> {
        let (s, e) = l.contiguous_range().ok_or_else(|| Error::invalid(OP, "internal: operand not contiguous"))?;
        Ok(&v[s..e])
    }

    /// The fused kernel for F32/F64 logits (contiguous `x`, `t`: I64 class indices, checked
    /// in range by the caller, or probabilities of `x`'s dtype); `None` for other dtypes.
    pub(crate) fn softmax_cross_entropy(
        x: &CpuStorage,
        xl: &Layout,
        t: &CpuStorage,
        tl: &Layout,
        classes: usize,
        grad_scale: Option<f64>,
    ) -> Result<Option<(CpuStorage, Option<CpuStorage>)>> {
        Ok(match (x, t) {
            (CpuStorage::F32(x), CpuStorage::I64(t)) => {
                let (l, g) = run(slice(x, xl)?, Targets::Classes(slice(t, tl)?), classes, grad_scale);
                Some((CpuStorage::F32(l), g.map(CpuStorage::F32)))
            }
            (CpuStorage::F32(x), CpuStorage::F32(t)) => {
                let (l, g) = run(slice(x, xl)?, Targets::Probs(slice(t, tl)?), classes, grad_scale);
                Some((CpuStorage::F32(l), g.map(CpuStorage::F32)))
            }
            (CpuStorage::F64(x), CpuStorage::I64(t)) => {
                let (l, g) = run(slice(x, xl)?, Targets::Classes(slice(t, tl)?), classes, grad_scale);
                Some((CpuStorage::F64(l), g.map(CpuStorage::F64)))
            }
            (CpuStorage::F64(x), CpuStorage::F64(t)) => {
                let (l, g) = run(slice(x, xl)?, Targets::Probs(slice(t, tl)?), classes, grad_scale);
                Some((CpuStorage::F64(l), g.map(CpuStorage::F64)))
            }
            _ => None,
        })
    }
}
