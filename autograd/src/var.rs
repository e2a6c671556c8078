//! [`Var`]: a tensor plus its place on a tape (or none), and the recording
//! helpers every op uses.

use crate::tape::{Rule, TapeInner, UnitRule};
use crate::{Error, Result};
use keel_tensor::{DType, Device, Shape, Tensor};
use std::sync::Arc;

#[derive(Clone)]
struct NodeRef {
    tape: Arc<TapeInner>,
    id: usize,
}

/// A tensor in a differentiable computation: its value and, when it was
/// recorded on a live [`crate::Tape`], its place there.
///
/// Ops on Vars (the methods in [`crate::ops`] and the operators) compute the
/// value and, if any input is tracked, record one node with its backward rule.
/// With no tracked input nothing is recorded and no tensor is saved, so
/// inference through the same code costs only the forward ops.
#[derive(Clone)]
pub struct Var {
    value: Tensor,
    node: Option<NodeRef>,
}

impl Var {
    /// An untracked value: no gradient flows into it.
    pub fn constant(value: Tensor) -> Var {
        Var { value, node: None }
    }

    pub(crate) fn tracked(value: Tensor, tape: Arc<TapeInner>, id: usize) -> Var {
        Var { value, node: Some(NodeRef { tape, id }) }
    }

    /// `(tape, value id)` when recorded on a tape (live or consumed).
    pub(crate) fn node(&self) -> Option<(&TapeInner, usize)> {
        self.node.as_ref().map(|n| (&*n.tape, n.id))
    }

    /// The value.
    pub fn value(&self) -> &Tensor {
        &self.value
    }

    /// The value, consuming the Var.
    pub fn into_value(self) -> Tensor {
        self.value
    }

    /// The same value as a constant (gradients stop here).
    pub fn detach(&self) -> Var {
        Var::constant(self.value.clone())
    }

    /// True when recorded on a tape that can still run `backward`.
    pub fn is_tracked(&self) -> bool {
        self.node.as_ref().is_some_and(|n| !n.tape.is_consumed())
    }

    /// The id of the tape this Var was recorded on, if any.
    pub fn tape_id(&self) -> Option<u64> {
        self.node.as_ref().map(|n| n.tape.id)
    }

    /// The shape of the value.
    pub fn shape(&self) -> &Shape {
        self.value.shape()
    }

    /// The dimensions of the value.
    pub fn dims(&self) -> &[usize] {
        self.value.dims()
    }

    /// The rank of the value.
    pub fn rank(&self) -> usize {
        self.value.rank()
    }

    /// The number of elements.
    pub fn elem_count(&self) -> usize {
        self.value.elem_count()
    }

    /// The dtype of the value.
    pub fn dtype(&self) -> DType {
        self.value.dtype()
    }

    /// The device of the value.
    pub fn device(&self) -> Device {
        self.value.device()
    }

    /// Record a user-defined op: `value` was computed from `inputs`, and
    /// `backward(grad, needs)` returns one gradient per input (`None` where
    /// `needs[i]` is false or the input gets no gradient), each with that
    /// input's shape and dtype.
    ///
    /// This is how a researcher adds an op without touching the crate; the
    /// closure owns whatever it saved, and is dropped right after it runs.
    pub fn custom_op<F>(op: &'static str, inputs: &[&Var], value: Tensor, backward: F) -> Result<Var>
    where
        F: FnOnce(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + Send + 'static,
    {
        Var::record(op, inputs, value, move |needs| {
            let needs = needs.to_vec();
            move |g: &Tensor| backward(g, &needs)
        })
    }

    /// The live tape shared by the tracked inputs and their value ids; `None`
    /// when no input is on a live tape. Vars of a consumed tape count as constants.
    fn live_tape(op: &'static str, inputs: &[&Var]) -> Result<Option<(Arc<TapeInner>, Vec<Option<usize>>)>> {
        let mut tape: Option<&Arc<TapeInner>> = None;
        let mut ids = Vec::with_capacity(inputs.len());
        for v in inputs {
            let id = match &v.node {
                Some(n) if !n.tape.is_consumed() => {
                    match tape {
                        None => tape = Some(&n.tape),
                        Some(t) if t.id != n.tape.id => {
                            return Err(Error::ForeignVar { op, expected: t.id, found: n.tape.id })
                        }
                        Some(_) => {}
                    }
                    Some(n.id)
                }
                _ => None,
            };
            ids.push(id);
        }
        Ok(tape.map(|t| (t.clone(), ids)))
    }

    /// Record a single-output op. `make(needs)` is called only when some input
    /// is tracked (`needs[i]`: input `i` wants a gradient) and returns the rule,
    /// which maps the output gradient to one optional gradient per input.
    pub(crate) fn record<M, R>(op: &'static str, inputs: &[&Var], value: Tensor, make: M) -> Result<Var>
    where
        M: FnOnce(&[bool]) -> R,
        R: FnOnce(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + 'static,
    {
        if !value.dtype().is_float() {
            // Integer and boolean results are not differentiable.
            return Ok(Var::constant(value));
        }
        let Some((tape, ids)) = Var::live_tape(op, inputs)? else {
            return Ok(Var::constant(value));
        };
        let needs: Vec<bool> = ids.iter().map(Option::is_some).collect();
        let rule = make(&needs);
        Ok(Var::push_single(op, tape, ids, value, rule, None))
    }

    /// Record a single-output op like [`Var::record`], with `make` returning the rule and
    /// its unit shortcut: the input gradients for an upstream gradient of exactly 1, which
    /// [`crate::Tape::backward`] uses when this op's output is the loss it differentiates
    /// (no ones seed, no multiplication by it). Both must give the same values for a seed
    /// of 1.
    pub(crate) fn record_with_unit<M, R, U>(op: &'static str, inputs: &[&Var], value: Tensor, make: M) -> Result<Var>
    where
        M: FnOnce(&[bool]) -> (R, U),
        R: FnOnce(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + 'static,
        U: FnOnce() -> Result<Vec<Option<Tensor>>> + Send + 'static,
    {
        if !value.dtype().is_float() {
            return Ok(Var::constant(value));
        }
        let Some((tape, ids)) = Var::live_tape(op, inputs)? else {
            return Ok(Var::constant(value));
        };
        let needs: Vec<bool> = ids.iter().map(Option::is_some).collect();
        let (rule, unit) = make(&needs);
        Ok(Var::push_single(op, tape, ids, value, rule, Some(Box::new(unit))))
    }

    /// Push a single-output node with its rule (and unit shortcut) on `tape`.
    fn push_single<R>(
        op: &'static str,
        tape: Arc<TapeInner>,
        ids: Vec<Option<usize>>,
        value: Tensor,
        rule: R,
        unit: Option<UnitRule>,
    ) -> Var
    where
        R: FnOnce(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + 'static,
    {
        let rule: Rule = Box::new(move |gs: &[Option<Tensor>]| match gs {
            [Some(g)] => rule(g),
            _ => Err(Error::invalid(op, "internal: single-output rule called without its gradient")),
        });
        match tape.push_node(op, ids, std::slice::from_ref(&value), rule, unit) {
            Some(id) => Var::tracked(value, tape, id),
            None => Var::constant(value),
        }
    }

    /// Record a multi-output op (e.g. `split`); the rule gets one optional
    /// gradient per output (`None` where no gradient flowed).
    pub(crate) fn record_multi<M, R>(
        op: &'static str,
        inputs: &[&Var],
        values: Vec<Tensor>,
        make: M,
    ) -> Result<Vec<Var>>
    where
        M: FnOnce(&[bool]) -> R,
        R: FnOnce(&[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> + Send + 'static,
    {
        if values.iter().any(|v| !v.dtype().is_float()) {
            return Ok(values.into_iter().map(Var::constant).collect());
        }
        let Some((tape, ids)) = Var::live_tape(op, inputs)? else {
            return Ok(values.into_iter().map(Var::constant).collect());
        };
        let needs: Vec<bool> = ids.iter().map(Option::is_some).collect();
        let rule: Rule = Box::new(make(&needs));
        Ok(match tape.push_node(op, ids, &values, rule, None) {
            Some(first) => {
                values.into_iter().enumerate().map(|(i, v)| Var::tracked(v, tape.clone(), first + i)).collect()
            }
            None => values.into_iter().map(Var::constant).collect(),
        })
    }
}

impl From<Tensor> for Var {
    fn from(t: Tensor) -> Var {
        Var::constant(t)
    }
}

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.node {
            Some(n) => write!(f, "Var({:?}, tape #{} value {})", self.value, n.tape.id, n.id),
            None => write!(f, "Var({:?}, constant)", self.value),
        }
    }
}
