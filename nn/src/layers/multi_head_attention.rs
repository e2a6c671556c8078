//! [`MultiHeadAttention`]: Keras's multi-head scaled dot-product attention (Vaswani et al., 2017).

use crate::layer::{bias_init_reg_builders, constraint_builders, layer_common, with_name, Ctx, Layer};
use crate::layers::attention_heads::{
    grouped_attention, output_projection, project, projections_helpers, projections_layer_methods, CallDims,
    Projections,
};
use crate::{Error, Initializer, Regularizer, Result};
use keel_autograd::Var;
use keel_tensor::Tensor;
use serde::{Deserialize, Deserializer, Serialize};

/// The hyper-parameters of [`MultiHeadAttention`] (its Keras config, plus `use_causal_mask`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiHeadAttentionConfig {
    /// Number of attention heads.
    pub num_heads: usize,
    /// Size of each head for query and key.
    pub key_dim: usize,
    /// Size of each head for value (`None` or 0: `key_dim`, as Keras).
    #[serde(default)]
    pub value_dim: Option<usize>,
    /// Dropout rate on the attention probabilities (training only).
    #[serde(default)]
    pub dropout: f64,
    /// Whether the four projections have biases.
    pub use_bias: bool,
    /// The output's last axis (`None`: the query's last axis). Keras's `(n,)` and `[n]` load too.
    #[serde(default, deserialize_with = "output_dim")]
    pub output_shape: Option<usize>,
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

/// Keras's `output_shape`: `null`, `n`, `[n]` (or `[]`, which Keras also reads as none); more
/// than one output axis is refused.
fn output_dim<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<usize>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Dims {
        One(usize),
        Many(Vec<usize>),
    }
    match Option::<Dims>::deserialize(d)? {
        None => Ok(None),
        Some(Dims::One(n)) => Ok(Some(n)),
        Some(Dims::Many(v)) => match v[..] {
            [] => Ok(None),
            [n] => Ok(Some(n)),
            _ => Err(serde::de::Error::custom(format!(
                "output_shape {v:?}: only one output axis is supported (an int or a one-element list)"
            ))),
        },
    }
}

/// One projection's weights as Vars: `kernel` `[in, heads, width]` (the output projection's
/// `[heads, value_dim, out]`) and its optional `bias` `[heads, width]` (`[out]`).
#[derive(Debug, Clone)]
pub struct AttentionProjection {
    /// The kernel, in Keras's EinsumDense shape.
    pub kernel: Var,
    /// The bias, when the layer uses biases.
    pub bias: Option<Var>,
}

/// Explicit weights for [`MultiHeadAttention::forward_with_weights`] (e.g. float64 Vars for a
/// gradient check), in Keras's shapes.
#[derive(Debug, Clone)]
pub struct MultiHeadAttentionWeights {
    /// `query/kernel` `[dim_q, heads, key_dim]`, `query/bias` `[heads, key_dim]`.
    pub query: AttentionProjection,
    /// `key/kernel` `[dim_k, heads, key_dim]`, `key/bias` `[heads, key_dim]`.
    pub key: AttentionProjection,
    /// `value/kernel` `[dim_v, heads, value_dim]`, `value/bias` `[heads, value_dim]`.
    pub value: AttentionProjection,
    /// `attention_output/kernel` `[heads, value_dim, out]`, `attention_output/bias` `[out]`.
    pub output: AttentionProjection,
}

/// Keras's `MultiHeadAttention(num_heads, key_dim)`: multi-head scaled dot-product attention.
///
/// Called on `[query, value]` or `[query, value, key]` (key defaults to value; pass the same
/// tensor twice for self-attention), batches `[B, Tq, dim_q]`, `[B, Tv, dim_v]`,
/// `[B, Tv, dim_k]`; the output is `[B, Tq, out]` with `out` = `output_shape` or `dim_q`.
/// Each input is projected per head (Keras's EinsumDense kernels `[dim, heads, key_dim]`,
/// value `[dim_v, heads, value_dim]`, biases `[heads, width]`); the scores
/// `(q / sqrt(key_dim)) kᵀ` of each head go through a softmax over the key axis, dropout (in
/// training, from the [`Ctx`]'s rng), and weight the values; the heads' results are
/// projected by `attention_output/kernel` `[heads, value_dim, out]` plus a bias `[out]`.
///
/// Masks, as Keras's: `use_causal_mask` (a layer option and config key here; Keras passes
/// it at call time) lets query position `i` attend to key positions `j <= i`; an optional
/// fourth input `[B, Tq, Tv]` is an `attention_mask` (nonzero: may attend), called as
/// `[query, value, key, mask]`; inputs that carry masks (after `Embedding(mask_zero)` or
/// `Masking`) add them: a key position that is masked is attended by no query, and the
/// output carries the query's mask. Masked scores become a large negative number (-1e9, -3e4
/// in F16) before the softmax and the probabilities are zeroed where masked after it, so a
/// fully masked row attends to nothing (as Keras 3's softmax path does, used with dropout or
/// attention scores; its fused `dot_product_attention` path, taken otherwise, averages all
/// values there instead. Such rows are padded query positions, which the mask hides from
/// everything after the layer).
///
/// Weights, in Keras's order and names: `query/kernel`, `query/bias`, `key/…`, `value/…`,
/// `attention_output/…`. Initializer fans are Keras 3's EinsumDense ones: a projection
/// `[d, h, w]` has `(d, h*w)`, the output kernel `[h, v, o]` has `(h*v, o)`.
///
/// Not supported: inputs of other ranks than `[B, T, dim]` (`attention_axes`), an
/// `output_shape` of more than one axis, `return_attention_scores` in a model (use
/// [`MultiHeadAttention::forward_with_scores`]), activity regularizers and a per-layer dropout
/// `seed`. Constraints (`kernel_constraint`, `bias_constraint`) apply to all four
/// projections, as Keras's.
///
/// ```
/// use keel_nn::prelude::*;
///
/// # fn main() -> keel_nn::Result<()> {
/// // a Transformer block: self-attention, residual connection, layer normalization
/// let ids = Input::new([20]);
/// let x = Embedding::new(1000, 32).call(&ids)?;
/// let att = MultiHeadAttention::new(2, 32).call_multi(&[x.clone(), x.clone()])?;
/// let y = LayerNormalization::new().epsilon(1e-6).call(&add(&[x, att])?)?;
/// let y = GlobalAveragePooling1D::new().call(&y)?;
/// let out = Dense::new(2).activation(Activation::Softmax).call(&y)?;
/// let model = Model::new(&[ids], &[out])?;
/// assert_eq!(model.output_shapes()?, vec![vec![2]]);
/// # Ok(())
/// # }
/// ```
pub struct MultiHeadAttention {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: MultiHeadAttentionConfig,
    built: Option<Projections>,
}

bias_init_reg_builders!(MultiHeadAttention);
constraint_builders!(MultiHeadAttention:
    kernel_constraint => "each of the four kernels",
    bias_constraint => "each of the four biases"
);

impl MultiHeadAttention {
    projections_helpers!("MultiHeadAttention");

    /// `num_heads` heads of size `key_dim` (Keras defaults: value_dim = key_dim, no dropout,
    /// biases, output size of the query's, glorot_uniform kernels, zero biases).
    pub fn new(num_heads: usize, key_dim: usize) -> Self {
        MultiHeadAttention::from_config(MultiHeadAttentionConfig {
            num_heads,
            key_dim,
            value_dim: None,
            dropout: 0.0,
            use_bias: true,
            output_shape: None,
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
    pub fn from_config(cfg: MultiHeadAttentionConfig) -> Self {
        MultiHeadAttention { name: String::new(), input_shape: None, cfg, built: None }
    }

    /// The config.
    pub fn get_config(&self) -> &MultiHeadAttentionConfig {
        &self.cfg
    }

    /// Give the layer a name (else the model numbers it, Keras style).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Set the size of each value head (default `key_dim`).
    pub fn value_dim(mut self, n: usize) -> Self {
        self.cfg.value_dim = Some(n);
        self
    }

    /// Set the dropout rate on the attention probabilities (in `[0, 1)`).
    pub fn dropout(mut self, rate: f64) -> Self {
        self.cfg.dropout = rate;
        self
    }

    /// Set the output's last axis (default: the query's).
    pub fn output_shape(mut self, n: usize) -> Self {
        self.cfg.output_shape = Some(n);
        self
    }

    /// Let query position `i` attend only to key positions `j <= i` (Keras's `use_causal_mask=True`).
    pub fn use_causal_mask(mut self, yes: bool) -> Self {
        self.cfg.use_causal_mask = yes;
        self
    }

    /// The number of heads.
    pub fn num_heads(&self) -> usize {
        self.cfg.num_heads
    }

    /// The size of each query/key head.
    pub fn key_dim(&self) -> usize {
        self.cfg.key_dim
    }

    /// The size of each value head (`key_dim` unless set).
    pub fn get_value_dim(&self) -> usize {
        self.cfg.value_dim.filter(|&v| v > 0).unwrap_or(self.cfg.key_dim)
    }

    fn what(&self) -> String {
        format!("MultiHeadAttention \"{}\"", self.name)
    }

    /// The hyper-parameters checked.
    fn check_config(&self) -> Result<()> {
        let c = &self.cfg;
        let bad = |msg: String| Err(Error::config(self.what(), msg));
        if c.num_heads == 0 || c.key_dim == 0 {
            return bad(format!("num_heads and key_dim must be >= 1, got {} and {}", c.num_heads, c.key_dim));
        }
        if c.output_shape == Some(0) {
            return bad("output_shape must be >= 1".into());
        }
        if !(0.0..1.0).contains(&c.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", c.dropout));
        }
        Ok(())
    }

    /// The per-sample shapes of a call checked against each other.
    fn call_dims(&self, shapes: &[Vec<usize>]) -> Result<CallDims> {
        self.check_config()?;
        CallDims::of(shapes, &self.name, "MultiHeadAttention")
    }

    /// The output's last axis for a query with `dq` features.
    fn out_dim(&self, dq: usize) -> usize {
        self.cfg.output_shape.unwrap_or(dq)
    }

    /// The Keras shapes of the kernels and biases (query, key, value, output) for `[dq, dv, dk]`.
    fn weight_shapes(&self, [dq, dv, dk]: [usize; 3]) -> [([usize; 3], Vec<usize>); 4] {
        let (h, kd, vd) = (self.cfg.num_heads, self.cfg.key_dim, self.get_value_dim());
        let o = self.out_dim(dq);
        [([dq, h, kd], vec![h, kd]), ([dk, h, kd], vec![h, kd]), ([dv, h, vd], vec![h, vd]), ([h, vd, o], vec![o])]
    }

    /// Run on `xs` (`[query, value]`, `[query, value, key]` or `[query, value, key, mask]`):
    /// the output `[B, Tq, out]` and the attention probabilities `[B, heads, Tq, Tv]` before
    /// dropout (Keras's `return_attention_scores=True`).
    pub fn forward_with_scores(&self, xs: &[Var], ctx: &mut Ctx<'_>) -> Result<(Var, Var)> {
        self.forward_with_masks(xs, &[], ctx)
    }

    /// [`MultiHeadAttention::forward_with_scores`] where the inputs carry masks (Keras's
    /// `query_mask`, `value_mask`, `key_mask`: `masks[0..3]`, `[B, T]`, nonzero: the position
    /// counts): query position `i` attends to key position `j` only where both count, on top
    /// of the causal and attention masks. A query position that is masked itself attends to
    /// nothing (its output is the output projection's bias; see the type for Keras's two
    /// paths there).
    pub fn forward_with_masks(&self, xs: &[Var], masks: &[Option<Tensor>], ctx: &mut Ctx<'_>) -> Result<(Var, Var)> {
        let w = self.weight_vars(ctx)?;
        if let Some(b) = &self.built {
            b.check_dims(&self.batch_dims(xs)?, xs, &self.name, "MultiHeadAttention")?;
        }
        self.attend(xs, masks, &w, ctx)
    }

    /// [`MultiHeadAttention::forward_with_scores`] with explicit weights instead of the
    /// layer's own (the layer need not be built): the pure function of the layer, for
    /// gradient checks or weight sharing.
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
        let (h, kd, vd) = (self.cfg.num_heads, self.cfg.key_dim, self.get_value_dim());
        w.check_shapes(&self.weight_shapes([d.dq, d.dv, d.dk]), self.cfg.use_bias, &self.what())?;
        let (query, value) = (&xs[0], &xs[1]);
        let key = xs.get(2).unwrap_or(value);
        // [B, heads, T, width]; the query scaled after its projection, as Keras
        let q = project(query, &w.query, [h, kd])?.mul_scalar(1.0 / (kd as f64).sqrt())?;
        let k = project(key, &w.key, [h, kd])?;
        let v = project(value, &w.value, [h, vd])?;
        let mask = d.mask(self.cfg.use_causal_mask, xs.get(3), masks, &q, &self.name, "MultiHeadAttention")?;
        let (heads, probs) = grouped_attention(&q, &k, &v, mask.as_ref(), self.cfg.dropout, &self.name, ctx)?;
        Ok((output_projection(&heads, &w.output)?, probs))
    }
}

impl Layer for MultiHeadAttention {
    layer_common!("MultiHeadAttention");
    projections_layer_methods!();

    fn config(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.cfg).unwrap_or_default();
        // Keras writes the resolved value_dim
        v["value_dim"] = serde_json::json!(self.get_value_dim());
        with_name(&self.name, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_shape_reads_keras_forms() {
        // ok: test code, a fixed config always serializes
        let base = serde_json::to_value(MultiHeadAttention::new(2, 3).get_config()).unwrap();
        for (v, want) in [
            (serde_json::json!(null), Some(None)),
            (serde_json::json!(5), Some(Some(5))),
            (serde_json::json!([7]), Some(Some(7))),
            (serde_json::json!([]), Some(None)),
            (serde_json::json!([2, 3]), None),
        ] {
            let mut c = base.clone();
            c["output_shape"] = v;
            let got = serde_json::from_value::<MultiHeadAttentionConfig>(c).ok().map(|c| c.output_shape);
            assert_eq!(got, want);
        }
    }
}
