//! Optimizer state that survives a checkpoint: [`OptimizerState`].
//!
//! # Ids are process-local, so state maps by position
//!
//! Slot tensors (Adam's `m` and `v`, SGD's momentum, ...) are keyed in memory
//! by [`ParamId`], but a `ParamId` is only unique within one process: a model
//! rebuilt after a restart gets new ids. So the saved state lists parameters
//! by **position**: entry `i` of [`OptimizerState::params`] belongs to the
//! `i`-th parameter in the order the optimizer first saw them in
//! [`crate::Optimizer::step`]'s `params` list (when you always pass the same
//! list, which a training loop does, that is simply the list's order).
//!
//! [`crate::Optimizer::load_state`] keeps the entries pending; the next
//! `step(params, ..)` binds entry `i` to `params[i]` (after checking that the
//! count and every shape match, before anything is updated). So: load the
//! state into a fresh optimizer, then step with the same parameter list, in
//! the same order, as the run that saved it.

use crate::{Error, Result};
use keel_autograd::{Param, ParamId};
use keel_tensor::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// An optimizer's saved state (serde-serializable, e.g. into a training checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// The optimizer's name (`"Adam"`, `"SGD"`, ...); loading checks it matches.
    pub optimizer: String,
    /// The number of updates applied so far (drives bias correction and schedules).
    pub iterations: u64,
    /// The current constant learning rate (it may have been changed by a callback),
    /// or `None` when a schedule drives it.
    pub learning_rate: Option<f64>,
    /// Per-parameter slots, by position (see the module docs).
    pub params: Vec<ParamState>,
}

/// The slot tensors of one parameter, by slot name (e.g. `"momentum"`, `"velocity"`).
///
/// Empty when the parameter has not received a gradient yet (its slots are
/// created on its first update).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParamState {
    /// Slot name -> tensor.
    pub slots: BTreeMap<String, SlotTensor>,
}

/// A tensor's shape and its elements in row-major order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotTensor {
    /// The dimensions.
    pub shape: Vec<usize>,
    /// The elements.
    pub data: SlotData,
}

/// The elements of a [`SlotTensor`] (slots are kept in f32, or f64 for f64 parameters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SlotData {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit floats.
    F64(Vec<f64>),
}

impl SlotTensor {
    /// Copy `t` to the host (an F64 tensor stays F64, anything else is stored as F32).
    pub fn from_tensor(t: &Tensor) -> Result<Self> {
        let host = t.to_device(&Device::Cpu)?;
        let data = match t.dtype() {
            DType::F64 => SlotData::F64(host.to_vec::<f64>()?),
            DType::F32 => SlotData::F32(host.to_vec::<f32>()?),
            _ => SlotData::F32(host.to_dtype(DType::F32)?.to_vec::<f32>()?),
        };
        Ok(SlotTensor { shape: t.dims().to_vec(), data })
    }

    /// The number of elements stored.
    pub fn len(&self) -> usize {
        match &self.data {
            SlotData::F32(v) => v.len(),
            SlotData::F64(v) => v.len(),
        }
    }

    /// True when no element is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A tensor with these elements, cast to `dtype` and moved to `device`.
    pub fn to_tensor(&self, dtype: DType, device: &Device) -> Result<Tensor> {
        let t = match &self.data {
            SlotData::F32(v) => Tensor::from_slice(v, self.shape.clone())?,
            SlotData::F64(v) => Tensor::from_slice(v, self.shape.clone())?,
        };
        let t = if t.dtype() == dtype { t } else { t.to_dtype(dtype)? };
        Ok(t.to_device(device)?)
    }
}

/// In-memory slots of one optimizer, keyed by ParamId, plus the positional order
/// used when saving and any loaded-but-not-yet-bound state.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlotStore {
    slots: HashMap<ParamId, Vec<(&'static str, Tensor)>>,
    order: Vec<ParamId>,
    pending: Option<Vec<ParamState>>,
}

impl SlotStore {
    /// Append the ids in `params` not seen before, in list order.
    pub(crate) fn record_order(&mut self, params: &[&Param]) {
        for p in params {
            let id = p.id();
            if !self.order.contains(&id) {
                self.order.push(id);
            }
        }
    }

    /// The slots of `id`, if created.
    pub(crate) fn get(&self, id: ParamId) -> Option<&Vec<(&'static str, Tensor)>> {
        self.slots.get(&id)
    }

    /// Store the slots of `id`.
    pub(crate) fn insert(&mut self, id: ParamId, slots: Vec<(&'static str, Tensor)>) {
        self.slots.insert(id, slots);
    }

    /// Replace everything with a loaded state's entries, bound on the next step.
    pub(crate) fn set_pending(&mut self, params: Vec<ParamState>) {
        self.slots.clear();
        self.order.clear();
        self.pending = Some(params);
    }

    /// Bind pending entries to `params` by position; `dtypes[i]` is the compute dtype of `params[i]`.
    pub(crate) fn bind_pending(
        &mut self,
        optimizer: &'static str,
        names: &[&'static str],
        params: &[&Param],
        dtypes: &[DType],
    ) -> Result<()> {
        let Some(pending) = self.pending.as_ref() else { return Ok(()) };
        if pending.len() != params.len() {
            return Err(Error::StateMismatch {
                optimizer,
                msg: format!(
                    "the state holds {} parameters but step was given {} (pass the same parameter list, in the same order)",
                    pending.len(),
                    params.len()
                ),
            });
        }
        // Build everything first so a mismatch leaves the optimizer unchanged.
        let mut bound = Vec::with_capacity(params.len());
        for (i, (entry, p)) in pending.iter().zip(params).enumerate() {
            if entry.slots.is_empty() {
                continue;
            }
            let value = p.value();
            let mut tensors = Vec::with_capacity(names.len());
            for name in names {
                let Some(slot) = entry.slots.get(*name) else {
                    return Err(Error::StateMismatch {
                        optimizer,
                        msg: format!("parameter #{i} has no slot {name:?}"),
                    });
                };
                if slot.shape.as_slice() != value.dims() {
                    return Err(Error::StateMismatch {
                        optimizer,
                        msg: format!(
                            "slot {name:?} of parameter #{i} has shape {:?} but the parameter has shape {}",
                            slot.shape,
                            value.shape()
                        ),
                    });
                }
                tensors.push((*name, slot.to_tensor(dtypes[i], &value.device())?));
            }
            bound.push((p.id(), tensors));
        }
        self.slots.clear();
        self.slots.extend(bound);
        self.order = params.iter().map(|p| p.id()).collect();
        self.pending = None;
        Ok(())
    }

    /// Check a loaded state's entries carry exactly the slots `names` (or none).
    pub(crate) fn check_entries(optimizer: &'static str, names: &[&'static str], params: &[ParamState]) -> Result<()> {
        for (i, entry) in params.iter().enumerate() {
            if entry.slots.is_empty() {
                continue;
            }
            let mut want: Vec<&str> = names.to_vec();
            want.sort_unstable();
            let have: Vec<&str> = entry.slots.keys().map(String::as_str).collect();
            if have != want {
                return Err(Error::StateMismatch {
                    optimizer,
                    msg: format!("parameter #{i} has slots {have:?}, this configuration uses {want:?}"),
                });
            }
            for (name, slot) in &entry.slots {
                let n: usize = slot.shape.iter().product();
                if n != slot.len() {
                    return Err(Error::StateMismatch {
                        optimizer,
                        msg: format!(
                            "slot {name:?} of parameter #{i} has shape {:?} but {} elements",
                            slot.shape,
                            slot.len()
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// The per-parameter entries in positional order.
    pub(crate) fn export(&self, names: &[&'static str]) -> Result<Vec<ParamState>> {
        if let Some(p) = &self.pending {
            return Ok(p.clone());
        }
        self.order
            .iter()
            .map(|id| {
                let mut entry = ParamState::default();
                if let Some(ts) = self.slots.get(id) {
                    for (name, t) in ts.iter().filter(|(n, _)| names.contains(n)) {
                        entry.slots.insert((*name).to_string(), SlotTensor::from_tensor(t)?);
                    }
                }
                Ok(entry)
            })
            .collect()
    }
}
