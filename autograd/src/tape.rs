//! [`Tape`]: the record of one forward pass, and reverse-mode `backward`.

use crate::{Error, Gradients, Param, ParamId, Result, Var};
use keel_tensor::{DType, Shape, Tensor};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A backward rule: output gradients (one per output, `None` where no gradient
/// flowed) to input gradients (one per input, `None` where not needed).
pub(crate) type Rule = Box<dyn FnOnce(&[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> + Send>;

/// The input gradients of a single-output op for an upstream gradient of exactly 1, known
/// without that upstream tensor (a loss that computed its gradient in the forward pass).
pub(crate) type UnitRule = Box<dyn FnOnce() -> Result<Vec<Option<Tensor>>> + Send>;

/// What the tape knows about one recorded value.
pub(crate) struct ValueInfo {
    shape: Shape,
    dtype: DType,
    param: Option<ParamId>,
    keep: bool,
}

/// One recorded op: its inputs (value ids; `None` for constants), its outputs
/// (consecutive value ids) and its backward rule (which owns the saved tensors), with the
/// shortcut for a unit upstream gradient where the op has one.
struct Node {
    op: &'static str,
    inputs: Vec<Option<usize>>,
    first_out: usize,
    n_out: usize,
    rule: Rule,
    unit: Option<UnitRule>,
}

#[derive(Default)]
struct TapeState {
    consumed: bool,
    values: Vec<ValueInfo>,
    nodes: Vec<Node>,
}

/// The shared part of a tape, referenced by every `Var` recorded on it.
pub(crate) struct TapeInner {
    pub(crate) id: u64,
    state: Mutex<TapeState>,
}

impl TapeInner {
    fn lock(&self) -> MutexGuard<'_, TapeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True once `backward` ran or the `Tape` was dropped.
    pub(crate) fn is_consumed(&self) -> bool {
        self.lock().consumed
    }

    /// Register a leaf value; `None` if the tape is consumed.
    fn push_leaf(&self, t: &Tensor, param: Option<ParamId>, keep: bool) -> Option<usize> {
        let mut st = self.lock();
        if st.consumed {
            return None;
        }
        st.values.push(ValueInfo { shape: t.shape().clone(), dtype: t.dtype(), param, keep });
        Some(st.values.len() - 1)
    }

    /// Record an op with its outputs; returns the id of the first output, or
    /// `None` if the tape is consumed (the rule is then dropped unrun).
    pub(crate) fn push_node(
        &self,
        op: &'static str,
        inputs: Vec<Option<usize>>,
        outputs: &[Tensor],
        rule: Rule,
        unit: Option<UnitRule>,
    ) -> Option<usize> {
        let mut st = self.lock();
        if st.consumed {
            return None;
        }
        let first_out = st.values.len();
        for t in outputs {
            st.values.push(ValueInfo { shape: t.shape().clone(), dtype: t.dtype(), param: None, keep: false });
        }
        st.nodes.push(Node { op, inputs, first_out, n_out: outputs.len(), rule, unit });
        Some(first_out)
    }
}

static NEXT_TAPE_ID: AtomicU64 = AtomicU64::new(1);

/// The record of a forward pass, in execution order, for reverse-mode
/// differentiation.
///
/// Values enter a tape through [`Tape::param`] (a trainable [`Param`]),
/// [`Tape::leaf`] (any tensor whose gradient you want) and every op on a `Var`
/// recorded on it. [`Tape::backward`] consumes the tape: it walks the ops in
/// reverse, frees each op's saved tensors as soon as its rule has run, and
/// returns the [`Gradients`]. Dropping a tape without calling `backward` frees
/// everything it saved as well. Vars whose tape is gone behave as constants.
pub struct Tape {
    inner: Arc<TapeInner>,
}

impl Default for Tape {
    fn default() -> Self {
        Tape::new()
    }
}

impl Tape {
    /// A new, empty tape with a process-unique id.
    pub fn new() -> Tape {
        Tape {
            inner: Arc::new(TapeInner {
                id: NEXT_TAPE_ID.fetch_add(1, Ordering::Relaxed),
                state: Mutex::new(TapeState::default()),
            }),
        }
    }

    /// The tape's process-unique id.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The number of ops recorded so far.
    pub fn len(&self) -> usize {
        self.inner.lock().nodes.len()
    }

    /// True when no op has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn leaf_var(&self, value: Tensor, param: Option<ParamId>, keep: bool) -> Var {
        match self.inner.push_leaf(&value, param, keep) {
            Some(id) => Var::tracked(value, self.inner.clone(), id),
            None => Var::constant(value),
        }
    }

    /// The parameter's current value as a tracked `Var`; its gradient is reported
    /// under the parameter's id (summed if the parameter is used several times).
    pub fn param(&self, p: &Param) -> Var {
        self.leaf_var(p.value(), Some(p.id()), false)
    }

    /// A tracked input whose gradient is kept (read it with [`Gradients::get_var`]).
    pub fn leaf(&self, value: Tensor) -> Var {
        self.leaf_var(value, None, true)
    }

    /// Keep the gradient of `var` (an intermediate value) for [`Gradients::get_var`].
    pub fn watch(&self, var: &Var) -> Result<()> {
        let id = self.own_id("watch", var)?;
        let mut st = self.inner.lock();
        let consumed = st.consumed;
        match st.values.get_mut(id) {
            Some(info) if !consumed => {
                info.keep = true;
                Ok(())
            }
            _ => Err(Error::NotTracked { op: "watch" }),
        }
    }

    /// The value id of `var` on this tape, or a typed error.
    fn own_id(&self, op: &'static str, var: &Var) -> Result<usize> {
        match var.node() {
            None => Err(Error::NotTracked { op }),
            Some((tape, _)) if tape.id != self.inner.id => {
                Err(Error::ForeignVar { op, expected: self.inner.id, found: tape.id })
            }
            Some((_, id)) => Ok(id),
        }
    }

    /// Differentiate the one-element value `loss` wrt everything on the tape
    /// (seed gradient 1), consuming the tape.
    ///
    /// When `loss` comes straight from an op that knows its input gradients for a unit
    /// seed (the fused losses, which compute their gradient in the forward pass), those
    /// are used as they are: no ones tensor is made and nothing is multiplied by it (two
    /// kernel launches fewer per step on a GPU), with the same values.
    pub fn backward(self, loss: &Var) -> Result<Gradients> {
        if loss.elem_count() != 1 {
            return Err(Error::NonScalarLoss { shape: loss.shape().clone() });
        }
        let root = self.own_id("backward", loss)?;
        let shortcut = {
            let st = self.inner.lock();
            let kept = st.values.get(root).is_some_and(|v| v.keep);
            let producer = st.nodes.iter().rev().find(|n| (n.first_out..n.first_out + n.n_out).contains(&root));
            !kept && producer.is_some_and(|n| n.n_out == 1 && n.unit.is_some())
        };
        let seed = if shortcut { None } else { Some(loss.value().ones_like()?) };
        self.differentiate(root, seed)
    }

    /// Differentiate `root` with the seed gradient `seed` (same shape and dtype
    /// as `root`), consuming the tape.
    pub fn backward_with(self, root: &Var, seed: Tensor) -> Result<Gradients> {
        let root_id = self.own_id("backward", root)?;
        self.differentiate(root_id, Some(seed))
    }

    /// The reverse walk from value `root_id`, seeded with `seed`, or with 1 through the
    /// unit shortcut of the op that produced it (`None`).
    fn differentiate(self, root_id: usize, seed: Option<Tensor>) -> Result<Gradients> {
        let (values, mut nodes) = {
            let mut st = self.inner.lock();
            if st.consumed {
                return Err(Error::NotTracked { op: "backward" });
            }
            st.consumed = true;
            (std::mem::take(&mut st.values), std::mem::take(&mut st.nodes))
        };
        let mut grads: Vec<Option<Tensor>> = (0..values.len()).map(|_| None).collect();
        if let Some(seed) = seed {
            check_grad("backward (seed)", &values[root_id], &seed)?;
            grads[root_id] = Some(seed);
        }
        let mut unit_root = grads[root_id].is_none();
        // Execution order is topological, so the reverse walk sees every use of a
        // value before the op that produced it.
        while let Some(node) = nodes.pop() {
            let Node { op, inputs, rule, unit, first_out, n_out } = node;
            let in_grads = if unit_root && first_out == root_id {
                unit_root = false;
                let unit = unit.ok_or_else(|| Error::invalid(op, "internal: no unit-seed rule"))?;
                drop(rule);
                unit()?
            } else {
                let outs: Vec<Option<Tensor>> = (first_out..first_out + n_out)
                    .map(|v| if values[v].keep { grads[v].clone() } else { grads[v].take() })
                    .collect();
                if outs.iter().all(Option::is_none) {
                    continue; // nothing flows through this op; its saved tensors drop here
                }
                drop(unit);
                // The rule is FnOnce: the tensors it saved are freed when it returns.
                rule(&outs)?
            };
            if in_grads.len() != inputs.len() {
                return Err(Error::GradientCount { op, want: inputs.len(), got: in_grads.len() });
            }
            for (input, g) in inputs.into_iter().zip(in_grads) {
                let (Some(v), Some(g)) = (input, g) else {
                    continue;
                };
                check_grad(op, &values[v], &g)?;
                grads[v] = Some(match grads[v].take() {
                    None => g,
                    Some(acc) => acc.add(&g)?,
                });
            }
        }
        let mut out = Gradients::new(self.inner.id);
        for (v, info) in values.iter().enumerate() {
            let Some(g) = grads[v].take() else { continue };
            if info.keep {
                out.insert_var(v, g.clone());
            }
            if let Some(pid) = info.param {
                // Parameter gradients are handed out contiguous (a rule may
                // return a broadcast or transposed view), ready for optimizers.
                out.accumulate(pid, g.contiguous()?)?;
            }
        }
        Ok(out)
    }
}

fn check_grad(op: &'static str, info: &ValueInfo, g: &Tensor) -> Result<()> {
    if g.shape() != &info.shape || g.dtype() != info.dtype {
        return Err(Error::GradientMismatch {
            op,
            want: info.shape.clone(),
            want_dtype: info.dtype,
            got: g.shape().clone(),
            got_dtype: g.dtype(),
        });
    }
    Ok(())
}

impl Drop for Tape {
    fn drop(&mut self) {
        // Free every saved tensor now, even if Vars of this tape outlive it.
        let nodes = {
            let mut st = self.inner.lock();
            st.consumed = true;
            st.values = Vec::new();
            std::mem::take(&mut st.nodes)
        };
        drop(nodes);
    }
}

impl std::fmt::Debug for Tape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.inner.lock();
        write!(
            f,
            "Tape(#{}, {} ops, {} values{})",
            self.inner.id,
            st.nodes.len(),
            st.values.len(),
            if st.consumed { ", consumed" } else { "" }
        )
    }
}
