//! The functional API: [`Input`] gives a [`SymbolicTensor`], calling a layer
//! on symbolic tensors gives another, and [`Model::new`] turns the graph
//! between some inputs and outputs into a [`Network`].
//!
//! ```
//! use keel_nn::prelude::*;
//!
//! # fn main() -> keel_nn::Result<()> {
//! // A ResNet basic block: conv-bn-relu-conv-bn + skip, then relu.
//! let x = Input::new([8, 8, 16]);
//! let y = Conv2D::new(16, 3).padding(Padding::Same).call(&x)?;
//! let y = BatchNormalization::new().call(&y)?;
//! let y = ActivationLayer::new(Activation::Relu).call(&y)?;
//! let y = Conv2D::new(16, 3).padding(Padding::Same).call(&y)?;
//! let y = BatchNormalization::new().call(&y)?;
//! let y = add(&[y, x.clone()])?;
//! let y = ActivationLayer::new(Activation::Relu).call(&y)?;
//! let model = Model::new(&[x], &[y])?;
//! assert_eq!(model.output_shapes()?, vec![vec![8, 8, 16]]);
//! # Ok(())
//! # }
//! ```
//!
//! Calling a layer value (`Dense::new(4).call(&x)`) moves it into the graph.
//! To share weights, make a [`LayerHandle`] (`Dense::new(4).shared()`) and call
//! the handle several times: every call uses the same parameters. Layers are
//! built (weights drawn from the model's seeded rng) by [`Model::new`], in
//! graph order; names are assigned there too (Keras's numbering, per model).

use crate::layer::{add_opt, fmt_shape, Ctx, Layer};
use crate::layers::{Add, Concatenate};
use crate::mixed_precision::{global_policy, DTypePolicy};
use crate::network::{check_inputs, config_with_trainable, no_such_layer, unique_name, Head, NamedParam, Network};
use crate::sequential::DEFAULT_SEED;
use crate::summary::{format_summary, SummaryRow};
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Tensor};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

static NEXT_NODE: AtomicU64 = AtomicU64::new(1);

/// A shared handle on a layer: call it several times to share its weights. It carries
/// the layer's `trainable` flag (Keras's `layer.trainable`), shared by every model the
/// layer is in.
#[derive(Clone)]
pub struct LayerHandle(Arc<LayerCell>);

struct LayerCell {
    layer: RwLock<Box<dyn Layer>>,
    trainable: AtomicBool,
}

impl LayerHandle {
    /// Wrap a layer.
    pub fn new(layer: impl Layer + 'static) -> Self {
        LayerHandle::from_box(Box::new(layer))
    }

    /// Wrap a boxed layer.
    pub fn from_box(layer: Box<dyn Layer>) -> Self {
        LayerHandle(Arc::new(LayerCell { layer: RwLock::new(layer), trainable: AtomicBool::new(true) }))
    }

    /// Read access to the layer.
    pub fn read(&self) -> RwLockReadGuard<'_, Box<dyn Layer>> {
        self.0.layer.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Box<dyn Layer>> {
        self.0.layer.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Freeze (`false`) or unfreeze the layer (Keras's `layer.trainable = False`; see
    /// [`Network::set_trainable`]), in every model it is part of.
    pub fn set_trainable(&self, trainable: bool) {
        self.0.trainable.store(trainable, Ordering::Relaxed);
    }

    /// False when the layer is frozen.
    pub fn trainable(&self) -> bool {
        self.0.trainable.load(Ordering::Relaxed)
    }

    /// True when both handles are the same layer.
    pub fn ptr_eq(&self, other: &LayerHandle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Apply the layer to one symbolic tensor.
    pub fn call(&self, x: &SymbolicTensor) -> Result<SymbolicTensor> {
        self.call_multi(std::slice::from_ref(x))
    }

    /// Apply the layer to several symbolic tensors (merge layers).
    pub fn call_multi(&self, xs: &[SymbolicTensor]) -> Result<SymbolicTensor> {
        let shapes: Vec<Vec<usize>> = xs.iter().map(|x| x.shape().to_vec()).collect();
        let shape = self.read().output_shape_multi(&shapes)?;
        Ok(SymbolicTensor(Arc::new(Node {
            id: NEXT_NODE.fetch_add(1, Ordering::Relaxed),
            shape,
            kind: NodeKind::Layer { layer: self.clone(), inputs: xs.to_vec() },
        })))
    }
}

/// Calling layers on symbolic tensors (implemented for every layer).
pub trait LayerExt: Layer + Sized + 'static {
    /// Move the layer into the graph and apply it to `x`.
    fn call(self, x: &SymbolicTensor) -> Result<SymbolicTensor> {
        LayerHandle::new(self).call(x)
    }

    /// Move the layer into the graph and apply it to several inputs.
    fn call_multi(self, xs: &[SymbolicTensor]) -> Result<SymbolicTensor> {
        LayerHandle::new(self).call_multi(xs)
    }

    /// A shared handle, to call the same layer (same weights) more than once.
    fn shared(self) -> LayerHandle {
        LayerHandle::new(self)
    }
}

impl<L: Layer + 'static> LayerExt for L {}

enum NodeKind {
    Input { name: String },
    Layer { layer: LayerHandle, inputs: Vec<SymbolicTensor> },
}

struct Node {
    id: u64,
    shape: Vec<usize>,
    kind: NodeKind,
}

/// A placeholder for a batch in a functional graph (Keras's `KerasTensor`).
#[derive(Clone)]
pub struct SymbolicTensor(Arc<Node>);

impl SymbolicTensor {
    /// The per-sample shape (no batch dim).
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    /// True for a model input (made by [`Input::new`]).
    pub fn is_input(&self) -> bool {
        matches!(self.0.kind, NodeKind::Input { .. })
    }
}

impl std::fmt::Debug for SymbolicTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.0.kind {
            NodeKind::Input { name } => format!("Input {name:?}"),
            NodeKind::Layer { layer, .. } => format!("{} output", layer.read().class_name()),
        };
        write!(f, "SymbolicTensor({what}, shape {})", fmt_shape(&self.0.shape))
    }
}

/// Model inputs (Keras's `keras.Input`).
pub struct Input;

impl Input {
    /// A model input with per-sample `shape` (named `input_1`, `input_2`, ... by the model).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(shape: impl Into<Vec<usize>>) -> SymbolicTensor {
        Input::named(shape, "")
    }

    /// A named model input.
    pub fn named(shape: impl Into<Vec<usize>>, name: impl Into<String>) -> SymbolicTensor {
        SymbolicTensor(Arc::new(Node {
            id: NEXT_NODE.fetch_add(1, Ordering::Relaxed),
            shape: shape.into(),
            kind: NodeKind::Input { name: name.into() },
        }))
    }
}

/// The elementwise sum of `xs` (an [`Add`] layer).
pub fn add(xs: &[SymbolicTensor]) -> Result<SymbolicTensor> {
    Add::new().call_multi(xs)
}

/// `a - b` (a [`crate::Subtract`] layer).
pub fn subtract(a: &SymbolicTensor, b: &SymbolicTensor) -> Result<SymbolicTensor> {
    crate::Subtract::new().call_multi(&[a.clone(), b.clone()])
}

/// The elementwise product of `xs` (a [`crate::Multiply`] layer).
pub fn multiply(xs: &[SymbolicTensor]) -> Result<SymbolicTensor> {
    crate::Multiply::new().call_multi(xs)
}

/// The elementwise mean of `xs` (an [`crate::Average`] layer).
pub fn average(xs: &[SymbolicTensor]) -> Result<SymbolicTensor> {
    crate::Average::new().call_multi(xs)
}

/// `xs` joined along `axis` (a [`Concatenate`] layer; Keras's axis, counting the batch
/// axis: `-1` is the last, `1` the first per-sample axis).
pub fn concatenate(xs: &[SymbolicTensor], axis: isize) -> Result<SymbolicTensor> {
    Concatenate::new(axis).call_multi(xs)
}

/// The batch dot product of `a` and `b` along `axes` (a [`crate::Dot`] layer; Keras's
/// `layers.dot`: `-1`, `1` or a pair `(1, 2)`, counting the batch axis).
pub fn dot(a: &SymbolicTensor, b: &SymbolicTensor, axes: impl Into<crate::DotAxes>) -> Result<SymbolicTensor> {
    crate::Dot::new(axes).call_multi(&[a.clone(), b.clone()])
}

/// A functional model: the graph of layers between `inputs` and `outputs`.
pub struct Model {
    name: String,
    inputs: Vec<SymbolicTensor>,
    input_names: Vec<String>,
    outputs: Vec<SymbolicTensor>,
    /// Every node the outputs depend on, inputs included, in execution order.
    nodes: Vec<SymbolicTensor>,
    /// Every distinct layer, in first-use order.
    layers: Vec<LayerHandle>,
    policy: DTypePolicy,
}

impl Model {
    /// The model from `inputs` to `outputs`, built with [`DEFAULT_SEED`].
    pub fn new(inputs: &[SymbolicTensor], outputs: &[SymbolicTensor]) -> Result<Model> {
        Model::with_seed(inputs, outputs, DEFAULT_SEED)
    }

    /// The model from `inputs` to `outputs`; new weights are drawn from `seed`.
    pub fn with_seed(inputs: &[SymbolicTensor], outputs: &[SymbolicTensor], seed: u64) -> Result<Model> {
        if inputs.is_empty() || outputs.is_empty() {
            return Err(Error::Graph("a model needs at least one input and one output".into()));
        }
        if let Some(bad) = inputs.iter().find(|t| !t.is_input()) {
            return Err(Error::Graph(format!("{bad:?} is not a model input (make inputs with Input::new)")));
        }
        let input_ids: HashSet<u64> = inputs.iter().map(|t| t.0.id).collect();
        if input_ids.len() != inputs.len() {
            return Err(Error::Graph("the same Input is given twice".into()));
        }
        // Post-order DFS from the outputs (iterative): execution order.
        let mut nodes: Vec<SymbolicTensor> = Vec::new();
        let mut done: HashSet<u64> = HashSet::new();
        for out in outputs {
            let mut stack: Vec<(SymbolicTensor, bool)> = vec![(out.clone(), false)];
            while let Some((t, expanded)) = stack.pop() {
                if done.contains(&t.0.id) {
                    continue;
                }
                match (&t.0.kind, expanded) {
                    (NodeKind::Layer { inputs, .. }, false) => {
                        stack.push((t.clone(), true));
                        for i in inputs.iter().rev() {
                            if !done.contains(&i.0.id) {
                                stack.push((i.clone(), false));
                            }
                        }
                    }
                    (NodeKind::Input { .. }, _) => {
                        if !input_ids.contains(&t.0.id) {
                            return Err(Error::Graph(format!(
                                "an output depends on {t:?}, which is not among the model's inputs"
                            )));
                        }
                        done.insert(t.0.id);
                        nodes.push(t);
                    }
                    (NodeKind::Layer { .. }, true) => {
                        done.insert(t.0.id);
                        nodes.push(t);
                    }
                }
            }
        }
        // Distinct layers in first-use order; names made unique.
        let mut layers: Vec<LayerHandle> = Vec::new();
        for n in &nodes {
            if let NodeKind::Layer { layer, .. } = &n.0.kind {
                if !layers.iter().any(|l| l.ptr_eq(layer)) {
                    layers.push(layer.clone());
                }
            }
        }
        let mut input_names = Vec::new();
        let mut taken: HashSet<String> = HashSet::new();
        for (i, t) in inputs.iter().enumerate() {
            let name = match &t.0.kind {
                NodeKind::Input { name } if !name.is_empty() => name.clone(),
                _ => format!("input_{}", i + 1),
            };
            if !taken.insert(name.clone()) {
                return Err(Error::Graph(format!("two inputs are named \"{name}\"")));
            }
            input_names.push(name);
        }
        for l in &layers {
            let named = l.read().name().to_string();
            if !named.is_empty() && !taken.insert(named.clone()) {
                return Err(Error::Graph(format!("two layers are named \"{named}\"; names must be unique")));
            }
        }
        for l in &layers {
            let mut g = l.write();
            if g.name().is_empty() {
                let n = unique_name(&g.base_name(), &taken);
                taken.insert(n.clone());
                g.set_name(n);
            }
        }
        // Build in execution order.
        let mut rng = Rng::new(seed);
        for n in &nodes {
            if let NodeKind::Layer { layer, inputs } = &n.0.kind {
                let shapes: Vec<Vec<usize>> = inputs.iter().map(|x| x.shape().to_vec()).collect();
                layer.write().build_multi(&shapes, &mut rng)?;
            }
        }
        Ok(Model {
            name: "model".into(),
            inputs: inputs.to_vec(),
            input_names,
            outputs: outputs.to_vec(),
            nodes,
            layers,
            policy: global_policy(),
        })
    }

    /// The forward pass of [`Network::forward_heads`], with `ctx` already set to the policy.
    fn run(&self, inputs: &[Var], input_masks: &[Option<Tensor>], ctx: &mut Ctx<'_>) -> Result<Vec<Head>> {
        let mut values: HashMap<u64, Var> = HashMap::new();
        let mut logits: HashMap<u64, (Var, Option<crate::Activation>)> = HashMap::new();
        let out_ids: HashSet<u64> = self.outputs.iter().map(|t| t.0.id).collect();
        // values that a layer reads: an output that none reads leaves its activation to its head
        let read: HashSet<u64> = self
            .nodes
            .iter()
            .filter_map(|n| match &n.0.kind {
                NodeKind::Layer { inputs, .. } => Some(inputs.iter().map(|i| i.0.id)),
                _ => None,
            })
            .flatten()
            .collect();
        // the masks layers passed on (Keras's mask propagation), by node
        let mut masks: HashMap<u64, Tensor> = HashMap::new();
        for (t, x) in self.inputs.iter().zip(inputs) {
            values.insert(t.0.id, x.clone());
        }
        for (t, m) in self.inputs.iter().zip(input_masks) {
            if let Some(m) = m {
                masks.insert(t.0.id, m.clone());
            }
        }
        for n in &self.nodes {
            let NodeKind::Layer { layer, inputs: ins } = &n.0.kind else { continue };
            let g = layer.read();
            let xs: Vec<Var> = ins
                .iter()
                .map(|i| {
                    let x = values
                        .get(&i.0.id)
                        .ok_or_else(|| Error::Graph("internal: node run before its input".into()))?;
                    ctx.layer_input(g.as_ref(), x)
                })
                .collect::<Result<_>>()?;
            let ms: Vec<Option<Tensor>> = ins.iter().map(|i| masks.get(&i.0.id).cloned()).collect();
            let z = ctx.with_frozen(!layer.trainable(), |ctx| {
                if ms.iter().all(Option::is_none) {
                    g.forward_logits_multi(&xs, ctx)
                } else {
                    g.forward_logits_masked(&xs, &ms, ctx)
                }
            })?;
            if let Some(m) = g.compute_mask(&xs, &ms)? {
                masks.insert(n.0.id, m);
            }
            let act = g.output_activation();
            let unread_output = !read.contains(&n.0.id) && out_ids.contains(&n.0.id);
            if unread_output && g.activity_regularizer().is_none() {
                logits.insert(n.0.id, (z, act));
                continue;
            }
            let y = match act {
                Some(a) => a.apply(&z)?,
                None => z.clone(),
            };
            ctx.add_activity_loss(g.as_ref(), &y)?;
            if unread_output {
                // its head applies the activation (with the loss, on the logits)
                logits.insert(n.0.id, (z, act));
                continue;
            }
            if out_ids.contains(&n.0.id) {
                logits.insert(n.0.id, (z, act));
            }
            values.insert(n.0.id, y);
        }
        self.outputs
            .iter()
            .map(|t| {
                let head = match logits.get(&t.0.id) {
                    Some((z, act)) => self.policy.head(z.clone(), *act),
                    None => match values.get(&t.0.id) {
                        Some(v) => self.policy.head(v.clone(), None),
                        None => return Err(Error::Graph("internal: output not computed".into())),
                    },
                };
                Ok(head.with_mask(masks.get(&t.0.id).cloned()))
            })
            .collect()
    }

    /// Rename the model.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Use `policy` (mixed precision; see [`crate::mixed_precision`]). A new model takes
    /// the global policy.
    pub fn dtype_policy(mut self, policy: DTypePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Change the policy of an existing model.
    pub fn set_dtype_policy(&mut self, policy: DTypePolicy) {
        self.policy = policy;
    }

    /// The model's dtype policy.
    pub fn get_dtype_policy(&self) -> DTypePolicy {
        self.policy
    }

    /// The distinct layers, in first-use order.
    pub fn layers(&self) -> &[LayerHandle] {
        &self.layers
    }

    /// The layer called `name`.
    pub fn get_layer(&self, name: &str) -> Option<LayerHandle> {
        self.layers.iter().find(|l| l.read().name() == name).cloned()
    }

    /// The name of the input or layer that makes node `t`.
    fn node_name(&self, t: &SymbolicTensor) -> String {
        match &t.0.kind {
            NodeKind::Input { .. } => {
                let i = self.inputs.iter().position(|x| x.0.id == t.0.id).unwrap_or(0);
                self.input_names.get(i).cloned().unwrap_or_else(|| "input".into())
            }
            NodeKind::Layer { layer, .. } => layer.read().name().to_string(),
        }
    }

    /// The name of node `t` for `Connected to` (`"conv2d[0][0]"`).
    fn node_label(&self, t: &SymbolicTensor, calls: &HashMap<u64, usize>) -> String {
        format!("{}[{}][0]", self.node_name(t), calls.get(&t.0.id).copied().unwrap_or(0))
    }

    /// For each layer node, the index of that call among its layer's calls.
    fn call_indices(&self) -> HashMap<u64, usize> {
        let mut per_layer: Vec<(LayerHandle, usize)> = Vec::new();
        let mut out = HashMap::new();
        for n in &self.nodes {
            if let NodeKind::Layer { layer, .. } = &n.0.kind {
                match per_layer.iter_mut().find(|(l, _)| l.ptr_eq(layer)) {
                    Some((_, c)) => {
                        out.insert(n.0.id, *c);
                        *c += 1;
                    }
                    None => {
                        out.insert(n.0.id, 0);
                        per_layer.push((layer.clone(), 1));
                    }
                }
            }
        }
        out
    }
}

impl Network for Model {
    fn get_dtype_policy(&self) -> DTypePolicy {
        self.policy
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn build(&mut self, input_shapes: &[Vec<usize>]) -> Result<()> {
        let have = self.input_shapes();
        if input_shapes != have.as_slice() {
            return Err(Error::Input {
                model: self.name.clone(),
                msg: format!("the model's inputs have shapes {have:?}, not {input_shapes:?}"),
            });
        }
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.layers.iter().all(|l| l.read().is_built())
    }

    fn input_shapes(&self) -> Vec<Vec<usize>> {
        self.inputs.iter().map(|t| t.shape().to_vec()).collect()
    }

    fn output_shapes(&self) -> Result<Vec<Vec<usize>>> {
        Ok(self.outputs.iter().map(|t| t.shape().to_vec()).collect())
    }

    fn output_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::with_capacity(self.outputs.len());
        for t in &self.outputs {
            let base = match &t.0.kind {
                NodeKind::Layer { layer, .. } => layer.read().name().to_string(),
                NodeKind::Input { .. } => {
                    let i = self.inputs.iter().position(|x| x.0.id == t.0.id).unwrap_or(0);
                    self.input_names[i].clone()
                }
            };
            // the same tensor given twice as an output: `name`, `name_1`
            let mut name = base.clone();
            let mut k = 0;
            while names.contains(&name) {
                k += 1;
                name = format!("{base}_{k}");
            }
            names.push(name);
        }
        names
    }

    fn input_autocast(&self, i: usize) -> Option<DType> {
        let id = self.inputs.get(i)?.0.id;
        if self.outputs.iter().any(|t| t.0.id == id) {
            return None; // handed back as it is
        }
        let readers: Vec<&LayerHandle> = self
            .nodes
            .iter()
            .filter_map(|n| match &n.0.kind {
                NodeKind::Layer { layer, inputs } if inputs.iter().any(|t| t.0.id == id) => Some(layer),
                _ => None,
            })
            .collect();
        let all_cast = !readers.is_empty() && readers.iter().all(|l| l.read().autocast());
        self.policy.autocast_dtype().filter(|_| all_cast)
    }

    fn output_activation(&self, i: usize) -> Option<crate::Activation> {
        match &self.outputs.get(i)?.0.kind {
            NodeKind::Layer { layer, .. } => layer.read().output_activation(),
            NodeKind::Input { .. } => None,
        }
    }

    fn forward_heads(&self, inputs: &[Var], ctx: &mut Ctx<'_>) -> Result<Vec<Head>> {
        self.forward_heads_masked(inputs, &[], ctx)
    }

    fn forward_heads_masked(&self, inputs: &[Var], masks: &[Option<Tensor>], ctx: &mut Ctx<'_>) -> Result<Vec<Head>> {
        check_inputs(&self.name, &self.input_shapes(), inputs)?;
        let policy = self.policy;
        ctx.with_policy(policy, |ctx| {
            // a frozen layer's weights are constants, cast when read
            let cast: Vec<keel_autograd::Param> =
                self.layers.iter().filter(|l| l.trainable()).flat_map(|l| l.read().compute_dtype_params()).collect();
            ctx.precast(&cast)?;
            self.run(inputs, masks, ctx)
        })
    }

    fn named_weights(&self) -> Vec<NamedParam> {
        let mut seen = HashSet::new();
        let mut all = Vec::new();
        for l in &self.layers {
            let g = l.read();
            for w in g.weights() {
                if seen.insert(w.param.id()) {
                    all.push(NamedParam {
                        name: format!("{}/{}", g.name(), w.name),
                        param: w.param,
                        trainable: w.trainable && l.trainable(),
                    });
                }
            }
        }
        all.sort_by_key(|w| !w.trainable);
        all
    }

    fn weight_constraints(&self) -> Vec<(keel_autograd::Param, crate::Constraint)> {
        self.layers.iter().filter(|l| l.trainable()).flat_map(|l| l.read().constraints()).collect()
    }

    fn regularization_loss(&self, ctx: &Ctx<'_>) -> Result<Option<Var>> {
        // Keras penalizes the trainable weights only
        let mut acc = None;
        for l in self.layers.iter().filter(|l| l.trainable()) {
            acc = add_opt(acc, l.read().regularization_loss(ctx)?)?;
        }
        Ok(acc)
    }

    fn set_trainable(&mut self, layer: &str, trainable: bool) -> Result<()> {
        match self.get_layer(layer) {
            Some(h) => {
                h.set_trainable(trainable);
                Ok(())
            }
            None => {
                let names: Vec<String> = self.layers.iter().map(|l| l.read().name().to_string()).collect();
                Err(no_such_layer(&self.name, layer, names.iter().map(String::as_str)))
            }
        }
    }

    fn set_all_trainable(&mut self, trainable: bool) {
        for l in &self.layers {
            l.set_trainable(trainable);
        }
    }

    fn is_trainable(&self, layer: &str) -> Option<bool> {
        self.get_layer(layer).map(|h| h.trainable())
    }

    fn summary_with(&self, expand_nested: bool) -> String {
        let trainable = self.trainable_params().iter().map(|p| p.elem_count()).sum();
        let frozen = self.non_trainable_params().iter().map(|p| p.elem_count()).sum();
        format_summary(&self.name, &self.summary_rows(expand_nested), trainable, frozen)
    }

    fn summary_rows(&self, expand_nested: bool) -> Vec<SummaryRow> {
        let calls = self.call_indices();
        let mut rows = Vec::new();
        for (t, name) in self.inputs.iter().zip(&self.input_names) {
            rows.push(SummaryRow {
                layer: format!("{name} (InputLayer)"),
                output_shape: format!("[{}]", fmt_shape(t.shape())),
                params: 0,
                connected_to: Some("[]".into()),
                nested: Vec::new(),
            });
        }
        for l in &self.layers {
            let g = l.read();
            let my_nodes: Vec<&SymbolicTensor> = self
                .nodes
                .iter()
                .filter(|n| matches!(&n.0.kind, NodeKind::Layer { layer, .. } if layer.ptr_eq(l)))
                .collect();
            let shape = match my_nodes.as_slice() {
                [one] => fmt_shape(one.shape()),
                _ => "multiple".to_string(),
            };
            let mut sources = Vec::new();
            for n in &my_nodes {
                if let NodeKind::Layer { inputs, .. } = &n.0.kind {
                    for i in inputs {
                        sources.push(format!("'{}'", self.node_label(i, &calls)));
                    }
                }
            }
            rows.push(SummaryRow {
                layer: format!("{} ({})", g.name(), g.class_name()),
                output_shape: shape,
                params: g.count_params(),
                connected_to: Some(format!("[{}]", sources.join(", "))),
                nested: if expand_nested { g.nested_summary_rows() } else { Vec::new() },
            });
        }
        rows
    }

    fn reset_state(&self) {
        for l in &self.layers {
            l.read().reset_state();
        }
    }

    fn config(&self) -> serde_json::Value {
        let calls = self.call_indices();
        // the name itself, not cut from the "name[i][0]" label: a name may hold '['
        let label =
            |t: &SymbolicTensor| serde_json::json!([self.node_name(t), calls.get(&t.0.id).copied().unwrap_or(0), 0]);
        let mut layers = Vec::new();
        for (t, name) in self.inputs.iter().zip(&self.input_names) {
            layers.push(serde_json::json!({
                "class_name": "InputLayer",
                "config": { "name": name, "batch_input_shape": std::iter::once(None).chain(t.shape().iter().map(|&d| Some(d))).collect::<Vec<_>>() },
                "inbound_nodes": [],
            }));
        }
        for l in &self.layers {
            let g = l.read();
            let inbound: Vec<serde_json::Value> = self
                .nodes
                .iter()
                .filter_map(|n| match &n.0.kind {
                    NodeKind::Layer { layer, inputs } if layer.ptr_eq(l) => {
                        Some(serde_json::Value::Array(inputs.iter().map(label).collect()))
                    }
                    _ => None,
                })
                .collect();
            layers.push(serde_json::json!({
                "class_name": g.class_name(),
                "config": config_with_trainable(g.config(), l.trainable()),
                "inbound_nodes": inbound,
            }));
        }
        serde_json::json!({
            "class_name": "Functional",
            "config": {
                "name": self.name,
                "dtype_policy": self.policy.name(),
                "layers": layers,
                "input_layers": self.inputs.iter().map(label).collect::<Vec<_>>(),
                "output_layers": self.outputs.iter().map(label).collect::<Vec<_>>(),
            }
        })
    }
}
