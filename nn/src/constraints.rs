//! [`Constraint`]: Keras 3 weight constraints (`MaxNorm`, `MinMaxNorm`, `NonNeg`,
//! `UnitNorm`), projections the trainer applies to a weight after every optimizer step.

use crate::{Error, Result};
use keel_tensor::Tensor;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Keras's `backend.epsilon()`, added to the norm in the denominator (`w * desired / (eps + norm)`).
pub const EPSILON: f64 = 1e-7;

/// A weight constraint, Keras's `keras.constraints.*`: after every optimizer step
/// `fit` replaces the weight `w` by `constraint.apply(w)` (Keras's
/// `variable.assign(constraint(variable))`). Serialized in Keras's form
/// `{"class_name": "MaxNorm", "config": {"max_value": 2.0, "axis": 0}}`.
///
/// `axis` (one axis or several, negative from the end) is the axis the norm is taken
/// along: for a Dense kernel `[in, units]` the default `0` constrains each unit's
/// incoming weight vector; for a Conv2D kernel `[kh, kw, in, out]` use `[0, 1, 2]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "class_name", content = "config")]
pub enum Constraint {
    /// `w * clip(norm, 0, max_value) / (epsilon + norm)`, norms along `axis`.
    MaxNorm {
        /// The largest norm (Keras default 2).
        #[serde(default = "two")]
        max_value: f64,
        /// The axis or axes the norm is taken along (Keras default 0).
        #[serde(default = "axis0", serialize_with = "ser_axis", deserialize_with = "de_axis")]
        axis: Vec<isize>,
    },
    /// `w * (rate * clip(norm, min_value, max_value) + (1 - rate) * norm) / (epsilon + norm)`.
    MinMaxNorm {
        /// The smallest norm (Keras default 0).
        #[serde(default)]
        min_value: f64,
        /// The largest norm (Keras default 1).
        #[serde(default = "one")]
        max_value: f64,
        /// How far to move toward the clipped norm each step (1: all the way; Keras default 1).
        #[serde(default = "one")]
        rate: f64,
        /// The axis or axes the norm is taken along (Keras default 0).
        #[serde(default = "axis0", serialize_with = "ser_axis", deserialize_with = "de_axis")]
        axis: Vec<isize>,
    },
    /// `max(w, 0)`.
    NonNeg {},
    /// `w / (epsilon + norm)`, norms along `axis`.
    UnitNorm {
        /// The axis or axes the norm is taken along (Keras default 0).
        #[serde(default = "axis0", serialize_with = "ser_axis", deserialize_with = "de_axis")]
        axis: Vec<isize>,
    },
}

fn one() -> f64 {
    1.0
}

fn two() -> f64 {
    2.0
}

fn axis0() -> Vec<isize> {
    vec![0]
}

fn ser_axis<S: Serializer>(axes: &[isize], s: S) -> std::result::Result<S::Ok, S::Error> {
    crate::layer::axes_config(axes).serialize(s)
}

fn de_axis<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<isize>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Axis {
        One(isize),
        Many(Vec<isize>),
    }
    Ok(match Axis::deserialize(d)? {
        Axis::One(a) => vec![a],
        Axis::Many(v) => v,
    })
}

impl Constraint {
    /// Keras `constraints.MaxNorm(max_value, axis)`.
    pub fn max_norm(max_value: f64, axis: isize) -> Self {
        Constraint::MaxNorm { max_value, axis: vec![axis] }
    }

    /// Keras `constraints.MinMaxNorm(min_value, max_value, rate, axis)`.
    pub fn min_max_norm(min_value: f64, max_value: f64, rate: f64, axis: isize) -> Self {
        Constraint::MinMaxNorm { min_value, max_value, rate, axis: vec![axis] }
    }

    /// Keras `constraints.NonNeg()`.
    pub fn non_neg() -> Self {
        Constraint::NonNeg {}
    }

    /// Keras `constraints.UnitNorm(axis)`.
    pub fn unit_norm(axis: isize) -> Self {
        Constraint::UnitNorm { axis: vec![axis] }
    }

    /// This constraint with the norm taken over all of `axes` together (Keras's `axis=[..]`);
    /// `NonNeg` has no axis and is returned unchanged.
    pub fn with_axes(mut self, axes: impl Into<Vec<isize>>) -> Self {
        match &mut self {
            Constraint::MaxNorm { axis, .. } | Constraint::MinMaxNorm { axis, .. } | Constraint::UnitNorm { axis } => {
                *axis = axes.into()
            }
            Constraint::NonNeg {} => {}
        }
        self
    }

    /// Look up by Keras name with the default arguments (`"max_norm"`, `"min_max_norm"`,
    /// `"non_neg"`, `"unit_norm"`, or the class names).
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name.trim().to_ascii_lowercase().replace('_', "").as_str() {
            "maxnorm" => Constraint::max_norm(2.0, 0),
            "minmaxnorm" => Constraint::min_max_norm(0.0, 1.0, 1.0, 0),
            "nonneg" => Constraint::non_neg(),
            "unitnorm" => Constraint::unit_norm(0),
            _ => return Err(Error::UnknownName { kind: "constraint", name: name.to_string() }),
        })
    }

    /// Keras's class name (`"MaxNorm"`, ..).
    pub fn class_name(&self) -> &'static str {
        match self {
            Constraint::MaxNorm { .. } => "MaxNorm",
            Constraint::MinMaxNorm { .. } => "MinMaxNorm",
            Constraint::NonNeg {} => "NonNeg",
            Constraint::UnitNorm { .. } => "UnitNorm",
        }
    }

    /// Check the arguments: finite bounds, `0 <= min_value <= max_value`, `max_value >= 0`.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::config(format!("{} constraint", self.class_name()), msg));
        match *self {
            Constraint::MaxNorm { max_value, .. } if !(max_value.is_finite() && max_value >= 0.0) => {
                bad(format!("max_value must be a finite number >= 0, got {max_value}"))
            }
            Constraint::MinMaxNorm { min_value, max_value, rate, .. }
                if !(min_value.is_finite() && max_value.is_finite() && rate.is_finite())
                    || min_value < 0.0
                    || min_value > max_value =>
            {
                bad(format!(
                    "need finite 0 <= min_value <= max_value and a finite rate, got min_value {min_value}, \
                     max_value {max_value}, rate {rate}"
                ))
            }
            _ => Ok(()),
        }
    }

    /// The projected weight (same shape, dtype and device as `w`), with Keras 3's formulas;
    /// an axis `w` does not have is an error naming it.
    pub fn apply(&self, w: &Tensor) -> Result<Tensor> {
        self.validate()?;
        match self {
            Constraint::NonNeg {} => Ok(w.maximum_scalar(0.0)?),
            Constraint::MaxNorm { max_value, axis } => {
                let norms = self.norms(w, axis)?;
                let desired = norms.clamp(0.0, *max_value)?;
                Ok(w.mul(&desired.div(&norms.add_scalar(EPSILON)?)?)?)
            }
            Constraint::MinMaxNorm { min_value, max_value, rate, axis } => {
                let norms = self.norms(w, axis)?;
                let desired =
                    norms.clamp(*min_value, *max_value)?.mul_scalar(*rate)?.add(&norms.mul_scalar(1.0 - rate)?)?;
                Ok(w.mul(&desired.div(&norms.add_scalar(EPSILON)?)?)?)
            }
            Constraint::UnitNorm { axis } => {
                let norms = self.norms(w, axis)?;
                Ok(w.div(&norms.add_scalar(EPSILON)?)?)
            }
        }
    }

    /// `sqrt(sum(w^2, axis, keepdims))`, after checking `axis` against `w`'s rank.
    fn norms(&self, w: &Tensor, axes: &[isize]) -> Result<Tensor> {
        let rank = w.rank() as isize;
        let mut seen = Vec::with_capacity(axes.len());
        for &a in axes {
            let r = if a < 0 { a + rank } else { a };
            if r < 0 || r >= rank {
                return Err(Error::config(
                    format!("{} constraint", self.class_name()),
                    format!(
                        "axis {a} does not exist for a weight of shape {:?} (rank {rank}): use an axis in \
                         -{rank}..{rank}",
                        w.dims()
                    ),
                ));
            }
            if seen.contains(&r) {
                return Err(Error::config(
                    format!("{} constraint", self.class_name()),
                    format!("axis {axes:?} names axis {r} twice"),
                ));
            }
            seen.push(r);
        }
        if seen.is_empty() {
            return Err(Error::config(format!("{} constraint", self.class_name()), "axis must name at least one axis"));
        }
        Ok(w.square()?.sum(&seen, true)?.sqrt()?)
    }
}
