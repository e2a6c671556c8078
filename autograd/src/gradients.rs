//! [`Gradients`]: the result of a backward pass.

use crate::{Param, ParamId, Result, Var};
use keel_tensor::Tensor;
use std::collections::HashMap;

/// The gradients of one backward pass: one tensor per [`Param`] that received
/// a gradient (keyed by [`ParamId`]), plus those of the Vars the caller asked
/// to keep ([`crate::Tape::leaf`], [`crate::Tape::watch`]).
///
/// A parameter or Var the loss does not depend on has no entry (`None`), not a
/// tensor of zeros.
#[derive(Clone, Default)]
pub struct Gradients {
    tape: u64,
    params: HashMap<ParamId, Tensor>,
    vars: HashMap<usize, Tensor>,
}

impl Gradients {
    pub(crate) fn new(tape: u64) -> Self {
        Gradients { tape, params: HashMap::new(), vars: HashMap::new() }
    }

    pub(crate) fn insert_var(&mut self, value: usize, g: Tensor) {
        self.vars.insert(value, g);
    }

    /// Add `g` to the gradient of parameter `id` (inserting it if absent).
    pub fn accumulate(&mut self, id: ParamId, g: Tensor) -> Result<()> {
        let g = match self.params.remove(&id) {
            Some(acc) => acc.add(&g)?,
            None => g,
        };
        self.params.insert(id, g);
        Ok(())
    }

    /// The gradient of `param`, if the loss depends on it.
    pub fn get(&self, param: &Param) -> Option<&Tensor> {
        self.params.get(&param.id())
    }

    /// The gradient of the parameter with id `id`.
    pub fn get_id(&self, id: ParamId) -> Option<&Tensor> {
        self.params.get(&id)
    }

    /// The gradient of a kept Var (a [`crate::Tape::leaf`] or a watched value) of this pass.
    pub fn get_var(&self, var: &Var) -> Option<&Tensor> {
        match var.node() {
            Some((tape, id)) if tape.id == self.tape => self.vars.get(&id),
            _ => None,
        }
    }

    /// Take the gradient of `param` out (e.g. to modify it before an update).
    pub fn remove(&mut self, param: &Param) -> Option<Tensor> {
        self.params.remove(&param.id())
    }

    /// Replace the gradient of parameter `id` (e.g. after clipping).
    pub fn insert(&mut self, id: ParamId, g: Tensor) -> Option<Tensor> {
        self.params.insert(id, g)
    }

    /// Every parameter gradient, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (ParamId, &Tensor)> + '_ {
        self.params.iter().map(|(&id, g)| (id, g))
    }

    /// The number of parameter gradients.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// True when no parameter received a gradient.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }
}

impl std::fmt::Debug for Gradients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gradients")
            .field("tape", &self.tape)
            .field("params", &self.params)
            .field("vars", &self.vars.len())
            .finish()
    }
}
