//! [`Param`]: a trainable tensor with a stable id, shared between a model and
//! its optimizer.

use crate::{Error, Result, Tape, Var};
use keel_tensor::{DType, Shape, Tensor};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// The stable, process-unique id of a [`Param`]; gradients and optimizer state are keyed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(u64);

impl ParamId {
    /// The raw number (unique within the process).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for ParamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "param#{}", self.0)
    }
}

static NEXT_PARAM_ID: AtomicU64 = AtomicU64::new(1);

struct ParamInner {
    id: ParamId,
    value: RwLock<Tensor>,
}

/// A trainable tensor: a shared handle with a stable [`ParamId`].
///
/// Cloning a `Param` gives another handle on the same parameter (same id, same
/// value). An optimizer updates it either in place ([`Param::assign`], which
/// every tensor handle sharing the storage sees) or by replacing the tensor
/// ([`Param::set`]). Use it in a computation through [`Tape::param`] (tracked)
/// or [`Param::var`].
#[derive(Clone)]
pub struct Param {
    inner: Arc<ParamInner>,
}

impl Param {
    /// A new parameter holding `value`, with a fresh id.
    pub fn new(value: Tensor) -> Param {
        Param {
            inner: Arc::new(ParamInner {
                id: ParamId(NEXT_PARAM_ID.fetch_add(1, Ordering::Relaxed)),
                value: RwLock::new(value),
            }),
        }
    }

    /// The stable id.
    pub fn id(&self) -> ParamId {
        self.inner.id
    }

    /// The current value (a cheap handle sharing the storage).
    pub fn value(&self) -> Tensor {
        self.inner.value.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The shape of the current value.
    pub fn shape(&self) -> Shape {
        self.value().shape().clone()
    }

    /// The dtype of the current value.
    pub fn dtype(&self) -> DType {
        self.value().dtype()
    }

    /// The number of elements.
    pub fn elem_count(&self) -> usize {
        self.value().elem_count()
    }

    /// Replace the value with `value` (same shape and dtype), without copying.
    pub fn set(&self, value: Tensor) -> Result<()> {
        let mut cur = self.inner.value.write().unwrap_or_else(|e| e.into_inner());
        if cur.shape() != value.shape() || cur.dtype() != value.dtype() {
            return Err(Error::invalid(
                "Param::set",
                format!("new value {:?} does not match the parameter's {:?}", value, *cur),
            ));
        }
        *cur = value;
        Ok(())
    }

    /// Overwrite the value in place with `src` (see [`Tensor::assign`]).
    pub fn assign(&self, src: &Tensor) -> Result<()> {
        let cur = self.value();
        if !cur.is_contiguous() || cur.layout().offset() != 0 {
            // A view cannot be assigned into; own a contiguous copy first.
            self.set(cur.copy()?)?;
        }
        Ok(self.value().assign(src)?)
    }

    /// A `Var` for this parameter: tracked on `tape` when given, else a constant.
    pub fn var(&self, tape: Option<&Tape>) -> Var {
        match tape {
            Some(t) => t.param(self),
            None => Var::constant(self.value()),
        }
    }

    /// True when both handles are the same parameter.
    pub fn ptr_eq(&self, other: &Param) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Param({}, {:?})", self.inner.id, self.value())
    }
}
