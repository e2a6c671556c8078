//! [`Normalization`]: Keras's preprocessing layer, `(x - mean) / sqrt(var)` per feature,
//! with the statistics learned from data by `adapt`.

use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer, Weight};
use crate::{Error, Result};
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};

/// The smallest standard deviation divided by (Keras's `backend.epsilon()`).
const MIN_STD: f64 = 1e-7;

/// Standardize each feature (the last axis) with a mean and variance learned from data
/// (Keras's `layers.Normalization()` then `adapt(x)`): `(x - mean) / max(sqrt(var), 1e-7)`,
/// or its inverse with `invert(true)`. The statistics are frozen weights (saved with the
/// model, never trained); before `adapt` they are 0 and 1.
///
/// ```
/// use keel_nn::{Layer, Normalization};
/// use keel_tensor::{Device, Tensor};
/// let x = Tensor::from_vec(vec![1.0f32, 10.0, 3.0, 30.0], (2, 2))?;
/// let mut norm = Normalization::new();
/// norm.adapt(&x)?; // mean [2, 20], variance [1, 100]
/// assert_eq!(norm.mean(), Some(vec![2.0, 20.0]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Normalization {
    name: String,
    input_shape: Option<Vec<usize>>,
    invert: bool,
    mean: Option<Param>,
    variance: Option<Param>,
}

common_builders!(Normalization);

impl Default for Normalization {
    fn default() -> Self {
        Self::new()
    }
}

impl Normalization {
    /// A layer to `adapt` (or to load with a model).
    pub fn new() -> Self {
        Normalization { name: String::new(), input_shape: None, invert: false, mean: None, variance: None }
    }

    /// Undo the normalization instead: `x * sqrt(var) + mean` (Keras's `invert=True`).
    pub fn invert(mut self, yes: bool) -> Self {
        self.invert = yes;
        self
    }

    /// Learn each feature's mean and (population) variance from `data` (`[samples, ...,
    /// features]`: every axis but the last is pooled), as Keras's `adapt`. Builds the
    /// layer for `features` (a model built for another count refuses it).
    pub fn adapt(&mut self, data: &Tensor) -> Result<()> {
        let bad = |msg: String| Error::config(format!("layer \"{}\" (Normalization)", self.name), msg);
        let Some(&c) = data.dims().last().filter(|_| data.rank() >= 1) else {
            return Err(bad("adapt needs data with a feature (last) axis".into()));
        };
        let n = data.elem_count() / c.max(1);
        if c == 0 || n == 0 {
            return Err(bad(format!("adapt needs at least one sample, got shape {}", data.shape())));
        }
        if let Some(have) = self.features().filter(|&h| h != c) {
            return Err(bad(format!("the layer has {have} features, the data {c}")));
        }
        let v = data.to_device(&Device::Cpu)?.to_vec_f64()?;
        let mut mean = vec![0.0f64; c];
        for row in v.chunks(c) {
            for (m, x) in mean.iter_mut().zip(row) {
                *m += x;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut var = vec![0.0f64; c];
        for row in v.chunks(c) {
            for ((s, x), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (x - m) * (x - m);
            }
        }
        var.iter_mut().for_each(|s| *s /= n as f64);
        if mean.iter().chain(&var).any(|x| !x.is_finite()) {
            return Err(bad("adapt data holds NaN or infinite values".into()));
        }
        let to = |v: Vec<f64>| -> Result<Param> { Ok(Param::new(Tensor::from_vec(v, c)?.to_dtype(DType::F32)?)) };
        self.mean = Some(to(mean)?);
        self.variance = Some(to(var)?);
        Ok(())
    }

    /// The learned means (None before `adapt` or `build`).
    pub fn mean(&self) -> Option<Vec<f64>> {
        self.mean.as_ref().and_then(|p| p.value().to_vec_f64().ok())
    }

    /// The learned variances (None before `adapt` or `build`).
    pub fn variance(&self) -> Option<Vec<f64>> {
        self.variance.as_ref().and_then(|p| p.value().to_vec_f64().ok())
    }

    fn features(&self) -> Option<usize> {
        self.mean.as_ref().map(|p| p.elem_count())
    }
}

impl Layer for Normalization {
    /// The statistics stay F32 under mixed precision (the layer computes in F32).
    fn compute_dtype_params(&self) -> Vec<Param> {
        Vec::new()
    }

    layer_common!("Normalization");

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<()> {
        let c = self.output_shape(input_shape)?.last().copied().unwrap_or(0);
        match self.features() {
            Some(have) if have == c => Ok(()),
            Some(have) => Err(Error::IncompatibleInput {
                layer: self.name.clone(),
                class: "Normalization",
                expected: format!("{have} features on the last axis (the layer was adapted to them)"),
                got: input_shape.to_vec(),
            }),
            None => {
                self.mean = Some(Param::new(Tensor::zeros(c, DType::F32, &Device::Cpu)?));
                self.variance = Some(Param::new(Tensor::ones(c, DType::F32, &Device::Cpu)?));
                Ok(())
            }
        }
    }

    fn is_built(&self) -> bool {
        self.mean.is_some()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        match input_shape.last() {
            Some(&c) if c > 0 => Ok(input_shape.to_vec()),
            _ => Err(Error::IncompatibleInput {
                layer: self.name.clone(),
                class: "Normalization",
                expected: "a per-sample shape with a feature (last) axis".into(),
                got: input_shape.to_vec(),
            }),
        }
    }

    fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
        let (Some(mean), Some(var)) = (&self.mean, &self.variance) else {
            return Err(Error::NotBuilt { layer: self.name.clone(), class: "Normalization" });
        };
        let c = mean.elem_count();
        if x.rank() < 2 || x.dims().last() != Some(&c) {
            return Err(Error::IncompatibleInput {
                layer: self.name.clone(),
                class: "Normalization",
                expected: format!("{c} features on the last axis"),
                got: x.dims().get(1..).unwrap_or(&[]).to_vec(),
            });
        }
        // in F32 (also under mixed precision), back to the input's dtype
        let in_dtype = x.dtype();
        let x = if in_dtype == DType::F32 { x.clone() } else { x.to_dtype(DType::F32)? };
        let mean = Var::constant(mean.value());
        let std = Var::constant(var.value().sqrt()?.maximum_scalar(MIN_STD)?);
        let y = if self.invert { x.mul(&std)?.add(&mean)? } else { x.sub(&mean)?.div(&std)? };
        Ok(if in_dtype.is_float() && in_dtype != DType::F32 { y.to_dtype(in_dtype)? } else { y })
    }

    fn weights(&self) -> Vec<Weight> {
        let mut w = Vec::new();
        if let Some(m) = &self.mean {
            w.push(Weight::frozen("mean", m));
        }
        if let Some(v) = &self.variance {
            w.push(Weight::frozen("variance", v));
        }
        w
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "axis": -1, "invert": self.invert }))
    }
}
