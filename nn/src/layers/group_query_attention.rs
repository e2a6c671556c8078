//! [`GroupQueryAttention`]: Keras 3's grouped-query attention (Ainslie et al., 2023).

use crate::layer::{bias_init_reg_builders, constraint_builders, layer_common, with_name, Ctx, Layer};
use crate::layers::attention_heads::{
    grouped_attention, output_projection, project, projections_helpers, projections_layer_methods, CallDims,
    Projections, WeightShapes,
};
use crate::{Error, Initializer, MultiHeadAttentionWeights, Regularizer, Result};
use keel_autograd::Var;
use keel_tensor::Tensor;
use serde::{Deserialize, Serialize};

/// The hyper-parameters of [`GroupQueryAttention`] (its Keras config, plus `use_causal_mask`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupQueryAttentionConfig {
    /// Size of each attention head (query, key and value).
    pub head_dim: usize,
    /// Number of query heads.
    pub num_query_heads: usize,
    /// Number of key/value heads (groups); must divide `num_query_heads`. 1 is multi-query
    /// attention, `num_query_heads` is multi-head attention.
    pub num_key_value_heads: usize,
    /// Dropout rate on the attention probabilities (training only).
    #[serde(default)]
    pub dropout: f64,
    /// Whether the four projections have biases.
    pub use_bias: bool,
    /// Mask attention to later positions (Keras's call-time `use_causal_mask`, a layer option here).
    #[serde(default)]
    pub use_causal_mask: bool,
    /// Initializer of the four kernels (default glorot_uniform).
    pub kernel_initializer: Initializer,
    /// Initializer of the four biases (default zeros).
    pub bias_initializer: Initializer,
    /// Penalty on each kernel.
    #[serde(default)]
    pub kernel_regularizer: Option<Regularizer>,
    /// Penalty on each bias.
    #[serde(default)]
    pub bias_regularizer: Option<Regularizer>,
    /// Constraint on each of the four kernels, applied after every optimizer step (Keras's
    /// `kernel_constraint`).
    #[serde(default)]
    pub kernel_constraint: Option<crate::Constraint>,
    /// Constraint on each of the four biases, applied after every optimizer step (Keras's
    /// `bias_constraint`).
    #[serde(default)]
    pub bias_constraint: Option<crate::Constraint>,
}

/// Keras's `GroupQueryAttention(head_dim, num_query_heads, num_key_value_heads)`:
/// scaled dot-product attention whose key/value heads are shared by groups of query heads.
///
/// Called on `[query, value]` or `[query, value, key]` (key defaults to value; pass the same
/// tensor twice for self-attention), batches `[B, Tq, dim]`, `[B, Tv, dim]` (the query's
/// features, as Keras requires), `[B, Tv, dim_k]`; the output is `[B, Tq, dim]`. The query is
/// projected into `num_query_heads` heads (kernel `query/kernel` `[dim, num_query_heads,
/// head_dim]`, bias `[num_query_heads, head_dim]`), key and value into `num_key_value_heads`
/// (`[dim, num_key_value_heads, head_dim]`); query head `i` attends with key/value head
/// `i / (num_query_heads / num_key_value_heads)` (Keras's `ops.repeat` of the key/value
/// heads). The scores `(q / sqrt(head_dim)) kᵀ` of each head go through a softmax over the
/// key axis, dropout (in training, from the [`Ctx`]'s rng) and weight the values; the heads'
/// results are projected by `attention_output/kernel` `[num_query_heads, head_dim, dim]`
/// plus a bias `[dim]`.
///
/// Masks exactly as [`MultiHeadAttention`](crate::MultiHeadAttention)'s: `use_causal_mask` (a
/// layer option and config key here; Keras passes it at call time), an optional fourth input
/// `[B, Tq, Tv]` as the `attention_mask` (`[query, value, key, mask]`), and the masks the
/// inputs carry (after `Embedding(mask_zero)` or `Masking`); the output carries the query's
/// mask; a fully masked query row attends to nothing.
///
/// Weights, in Keras's order and names: `query/kernel`, `query/bias`, `key/…`, `value/…`,
/// `attention_output/…`, with Keras 3's EinsumDense initializer fans (as
/// MultiHeadAttention's).
///
/// Not supported: Keras's `use_gate` and `sliding_window` (refused on load),
/// `return_attention_scores` in a model (use [`GroupQueryAttention::forward_with_scores`]),
/// an activity regularizer (Keras applies it to each projection's output and to the layer's;
/// a config with one loads with a warning), flash attention (keel computes the same values)
/// and a per-layer dropout `seed`.
///
/// ```
/// use keel_nn::prelude::*;
///
/// # fn main() -> keel_nn::Result<()> {
/// // causal self-attention with 4 query heads sharing 2 key/value heads
/// let ids = Input::new([20]);
/// let x = Embedding::new(1000, 32).call(&ids)?;
/// let att = GroupQueryAttention::new(8, 4, 2).use_causal_mask(true).call_multi(&[x.clone(), x.clone()])?;
/// let y = GlobalAveragePooling1D::new().call(&add(&[x, att])?)?;
/// let out = Dense::new(2).activation(Activation::Softmax).call(&y)?;
/// let model = Model::new(&[ids], &[out])?;
/// assert_eq!(model.output_shapes()?, vec![vec![2]]);
/// # Ok(())
/// # }
/// ```
pub struct GroupQueryAttention {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: GroupQueryAttentionConfig,
    built: Option<Projections>,
}

bias_init_reg_builders!(GroupQueryAttention);
constraint_builders!(GroupQueryAttention:
    kernel_constraint => "each of the four kernels",
    bias_constraint => "each of the four biases"
);

impl GroupQueryAttention {
    projections_helpers!("GroupQueryAttention");

    /// `num_query_heads` query heads and `num_key_value_heads` key/value heads, each of size
    /// `head_dim` (Keras defaults: no dropout, biases, glorot_uniform kernels, zero biases).
    pub fn new(head_dim: usize, num_query_heads: usize, num_key_value_heads: usize) -> Self {
        GroupQueryAttention::from_config(GroupQueryAttentionConfig {
            head_dim,
            num_query_heads,
            num_key_value_heads,
            dropout: 0.0,
            use_bias: true,
            use_causal_mask: false,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            kernel_regularizer: None,
            bias_regularizer: None,
            kernel_constraint: None,
            bias_constraint: None,
        })
    }

    /// From a config.
    pub fn from_config(cfg: GroupQueryAttentionConfig) -> Self {
        GroupQueryAttention { name: String::new(), input_shape: None, cfg, built: None }
    }

    /// The config.
    pub fn get_config(&self) -> &GroupQueryAttentionConfig {
        &self.cfg
    }

    /// Give the layer a name (else the model numbers it, Keras style).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Set the dropout rate on the attention probabilities (in `[0, 1)`).
    pub fn dropout(mut self, rate: f64) -> Self {
        self.cfg.dropout = rate;
        self
    }

    /// Let query position `i` attend only to key positions `j <= i` (Keras's `use_causal_mask=True`).
    pub fn use_causal_mask(mut self, yes: bool) -> Self {
        self.cfg.use_causal_mask = yes;
        self
    }

    /// The size of each head.
    pub fn head_dim(&self) -> usize {
        self.cfg.head_dim
    }

    /// The number of query heads.
    pub fn num_query_heads(&self) -> usize {
        self.cfg.num_query_heads
    }

    /// The number of key/value heads.
    pub fn num_key_value_heads(&self) -> usize {
        self.cfg.num_key_value_heads
    }

    fn what(&self) -> String {
        format!("GroupQueryAttention \"{}\"", self.name)
    }

    /// The hyper-parameters checked.
    fn check_config(&self) -> Result<()> {
        let c = &self.cfg;
        let bad = |msg: String| Err(Error::config(self.what(), msg));
        if c.head_dim == 0 || c.num_query_heads == 0 || c.num_key_value_heads == 0 {
            return bad(format!(
                "head_dim, num_query_heads and num_key_value_heads must be >= 1, got {}, {} and {}",
                c.head_dim, c.num_query_heads, c.num_key_value_heads
            ));
        }
        if c.num_query_heads % c.num_key_value_heads != 0 {
            return bad(format!(
                "num_query_heads ({}) must be divisible by num_key_value_heads ({}): each key/value head serves \
                 the same number of query heads",
                c.num_query_heads, c.num_key_value_heads
            ));
        }
        if !(0.0..1.0).contains(&c.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", c.dropout));
        }
        Ok(())
    }

    /// The per-sample shapes of a call checked against each other (the value with the
    /// query's features, as Keras's `compute_output_shape` requires).
    fn call_dims(&self, shapes: &[Vec<usize>]) -> Result<CallDims> {
        self.check_config()?;
        let d = CallDims::of(shapes, &self.name, "GroupQueryAttention")?;
        if d.dv != d.dq {
            return Err(self
                .bad_input(format!("a value with the query's {} features (query {:?})", d.dq, shapes[0]), &shapes[1]));
        }
        Ok(d)
    }

    /// The output's last axis for a query with `dq` features: the query's, as Keras.
    fn out_dim(&self, dq: usize) -> usize {
        dq
    }

    /// The Keras shapes of the kernels and biases (query, key, value, output) for `[dq, dv, dk]`.
    fn weight_shapes(&self, [dq, dv, dk]: [usize; 3]) -> WeightShapes {
        let (u, g, h) = (self.cfg.num_query_heads, self.cfg.num_key_value_heads, self.cfg.head_dim);
        [([dq, u, h], vec![u, h]), ([dk, g, h], vec![g, h]), ([dv, g, h], vec![g, h]), ([u, h, dq], vec![dq])]
    }

    /// Run on `xs` (`[query, value]`, `[query, value, key]` or `[query, value, key, mask]`):
    /// the output `[B, Tq, dim]` and the attention probabilities `[B, num_query_heads, Tq,
    /// Tv]` before dropout (Keras's `return_attention_scores=True`).
    pub fn forward_with_scores(&self, xs: &[Var], ctx: &mut Ctx<'_>) -> Result<(Var, Var)> {
        self.forward_with_masks(xs, &[], ctx)
    }

    /// [`GroupQueryAttention::forward_with_scores`] where the inputs carry masks (Keras's
    /// `query_mask`, `value_mask`, `key_mask`: `masks[0..3]`, `[B, T]`, nonzero: the position
    /// counts), as [`MultiHeadAttention::forward_with_masks`](crate::MultiHeadAttention::forward_with_masks).
    pub fn forward_with_masks(&self, xs: &[Var], masks: &[Option<Tensor>], ctx: &mut Ctx<'_>) -> Result<(Var, Var)> {
        let w = self.weight_vars(ctx)?;
        if let Some(b) = &self.built {
            b.check_dims(&self.batch_dims(xs)?, xs, &self.name, "GroupQueryAttention")?;
        }
        self.attend(xs, masks, &w, ctx)
    }

    /// [`GroupQueryAttention::forward_with_scores`] with explicit weights instead of the
    /// layer's own (the layer need not be built), in Keras's shapes: `query` `[dim,
    /// num_query_heads, head_dim]` (bias `[num_query_heads, head_dim]`), `key` `[dim_k,
    /// num_key_value_heads, head_dim]`, `value` `[dim, num_key_value_heads, head_dim]` (biases
    /// `[num_key_value_heads, head_dim]`), `output` `[num_query_heads, head_dim, dim]` (bias
    /// `[dim]`): the pure function of the layer, for gradient checks or weight sharing.
    pub fn forward_with_weights(
        &self,
        xs: &[Var],
        w: &MultiHeadAttentionWeights,
        ctx: &mut Ctx<'_>,
    ) -> Result<(Var, Var)> {
        self.attend(xs, &[], w, ctx)
    }

    /// The attention of every forward form.
    fn attend(
        &self,
        xs: &[Var],
        masks: &[Option<Tensor>],
        w: &MultiHeadAttentionWeights,
        ctx: &mut Ctx<'_>,
    ) -> Result<(Var, Var)> {
        let d = self.batch_dims(xs)?;
        let (u, g, h) = (self.cfg.num_query_heads, self.cfg.num_key_value_heads, self.cfg.head_dim);
        w.check_shapes(&self.weight_shapes([d.dq, d.dv, d.dk]), self.cfg.use_bias, &self.what())?;
        let (query, value) = (&xs[0], &xs[1]);
        let key = xs.get(2).unwrap_or(value);
        // [B, heads, T, head_dim]; the query scaled after its projection, as Keras
        let q = project(query, &w.query, [u, h])?.mul_scalar(1.0 / (h as f64).sqrt())?;
        let k = project(key, &w.key, [g, h])?;
        let v = project(value, &w.value, [g, h])?;
        let mask = d.mask(self.cfg.use_causal_mask, xs.get(3), masks, &q, &self.name, "GroupQueryAttention")?;
        let (heads, probs) = grouped_attention(&q, &k, &v, mask.as_ref(), self.cfg.dropout, &self.name, ctx)?;
        Ok((output_projection(&heads, &w.output)?, probs))
    }
}

impl Layer for GroupQueryAttention {
    layer_common!("GroupQueryAttention");
    projections_layer_methods!();

    /// Keras's auto-name: its class is `GroupedQueryAttention` (exported as
    /// `GroupQueryAttention`, the class name its configs carry).
    fn base_name(&self) -> String {
        "grouped_query_attention".into()
    }

    fn config(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.cfg).unwrap_or_default();
        // Keras's keys keel does not apply, at their defaults (a Keras config has them)
        v["use_gate"] = serde_json::json!(false);
        v["sliding_window"] = serde_json::Value::Null;
        with_name(&self.name, v)
    }
}
