//! [`Regularizer`]: weight penalties added to the training loss (Keras `l1`, `l2`, `l1_l2`).

use crate::{Error, Result};
use keel_autograd::Var;
use serde::{Deserialize, Serialize};

/// A weight penalty: `l1 * sum(|w|) + l2 * sum(w^2)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "class_name", content = "config")]
pub enum Regularizer {
    /// `l1 * sum(|w|)`.
    L1 {
        /// The factor (Keras default 0.01).
        l1: f64,
    },
    /// `l2 * sum(w^2)`.
    L2 {
        /// The factor (Keras default 0.01).
        l2: f64,
    },
    /// Both penalties.
    L1L2 {
        /// The L1 factor.
        l1: f64,
        /// The L2 factor.
        l2: f64,
    },
}

impl Regularizer {
    /// Keras `regularizers.l1(factor)`.
    pub fn l1(factor: f64) -> Self {
        Regularizer::L1 { l1: factor }
    }

    /// Keras `regularizers.l2(factor)`.
    pub fn l2(factor: f64) -> Self {
        Regularizer::L2 { l2: factor }
    }

    /// Keras `regularizers.l1_l2(l1, l2)`.
    pub fn l1_l2(l1: f64, l2: f64) -> Self {
        Regularizer::L1L2 { l1, l2 }
    }

    /// Look up by Keras name with the default factor 0.01 (`"l1"`, `"l2"`, `"l1_l2"`).
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "l1" => Regularizer::l1(0.01),
            "l2" => Regularizer::l2(0.01),
            "l1_l2" | "l1l2" => Regularizer::l1_l2(0.01, 0.01),
            _ => return Err(Error::UnknownName { kind: "regularizer", name: name.to_string() }),
        })
    }

    /// `(l1, l2)` factors.
    pub fn factors(&self) -> (f64, f64) {
        match *self {
            Regularizer::L1 { l1 } => (l1, 0.0),
            Regularizer::L2 { l2 } => (0.0, l2),
            Regularizer::L1L2 { l1, l2 } => (l1, l2),
        }
    }

    /// The penalty of `w` as a 0-d Var (tracked when `w` is).
    pub fn penalty(&self, w: &Var) -> Result<Var> {
        let (l1, l2) = self.factors();
        let mut total: Option<Var> = None;
        if l1 != 0.0 {
            total = Some(w.abs()?.sum_all()?.mul_scalar(l1)?);
        }
        if l2 != 0.0 {
            let t = w.square()?.sum_all()?.mul_scalar(l2)?;
            total = Some(match total {
                Some(a) => a.add(&t)?,
                None => t,
            });
        }
        match total {
            Some(t) => Ok(t),
            None => Ok(w.sum_all()?.mul_scalar(0.0)?),
        }
    }
}
