//! [`MultiHeadAttention`]: Keras's multi-head scaled dot-product attention (Vaswani et al., 2017).

use crate::layer::{
    bias_init_reg_builders, check_same_batch, layer_common, multi_input_forwards, penalties, sample_shapes,
    sequence_dims, with_name, Ctx, Layer, Weight,
};
use crate::layers::dropout::dropout;
use crate::{Error, Initializer, Regularizer, Result};
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Tensor};
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

/// The weight names, Keras's, per projection (query, key, value, output).
const NAMES: [(&str, &str); 4] = [
    ("query/kernel", "query/bias"),
    ("key/kernel", "key/bias"),
    ("value/kernel", "value/bias"),
    ("attention_output/kernel", "attention_output/bias"),
];

/// The checked per-sample sizes of a call: query `[tq, dq]`, value `[tv, dv]`, key `[tv, dk]`
/// (and an attention mask `[tq, tv]` when one comes fourth).
#[derive(Debug, Clone, Copy)]
struct CallDims {
    tq: usize,
    dq: usize,
    tv: usize,
    dv: usize,
    dk: usize,
}

/// The built weights: kernels and (with `use_bias`) biases of query, key, value, output.
struct Built {
    /// The feature sizes `[dq, dv, dk]` the layer was built for.
    dims: [usize; 3],
    kernels: [Param; 4],
    biases: Option<[Param; 4]>,
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
/// [`MultiHeadAttention::forward_with_scores`]), activity regularizers, constraints and a
/// per-layer dropout `seed`.
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
    built: Option<Built>,
}

bias_init_reg_builders!(MultiHeadAttention);

impl MultiHeadAttention {
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

    fn bad_input(&self, expected: String, got: &[usize]) -> Error {
        Error::IncompatibleInput { layer: self.name.clone(), class: "MultiHeadAttention", expected, got: got.to_vec() }
    }

    /// The per-sample shapes of a call checked against each other.
    fn call_dims(&self, shapes: &[Vec<usize>]) -> Result<CallDims> {
        self.check_config()?;
        let (q, v, k, mask) = match shapes {
            [q, v] => (q, v, v, None),
            [q, v, k] => (q, v, k, None),
            [q, v, k, m] => (q, v, k, Some(m)),
            _ => {
                return Err(Error::Graph(format!(
                    "{} takes [query, value], [query, value, key] or [query, value, key, attention_mask], got {} \
                     input(s) (for self-attention pass the same tensor as query and value)",
                    self.what(),
                    shapes.len()
                )))
            }
        };
        let seq = |s: &Vec<usize>, role: &str| sequence_dims(s, role, &self.name, "MultiHeadAttention");
        let ((tq, dq), (tv, dv), (tk, dk)) = (seq(q, "query")?, seq(v, "value")?, seq(k, "key")?);
        if tk != tv {
            return Err(self.bad_input(format!("a key with the value's {tv} timesteps (value {v:?})"), k));
        }
        if let Some(m) = mask {
            if m[..] != [tq, tv] {
                return Err(self.bad_input(
                    format!("an attention_mask of per-sample shape [{tq}, {tv}] (query {q:?}, value {v:?})"),
                    m,
                ));
            }
        }
        Ok(CallDims { tq, dq, tv, dv, dk })
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

    /// The layer's weights as Vars (tracked when `ctx` has a tape).
    fn weight_vars(&self, ctx: &Ctx<'_>) -> Result<MultiHeadAttentionWeights> {
        let b = self
            .built
            .as_ref()
            .ok_or_else(|| Error::NotBuilt { layer: self.name.clone(), class: "MultiHeadAttention" })?;
        let proj = |i: usize| -> Result<AttentionProjection> {
            Ok(AttentionProjection {
                kernel: ctx.param(&b.kernels[i])?,
                bias: b.biases.as_ref().map(|bs| ctx.param(&bs[i])).transpose()?,
            })
        };
        Ok(MultiHeadAttentionWeights { query: proj(0)?, key: proj(1)?, value: proj(2)?, output: proj(3)? })
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
            let d = self.batch_dims(xs)?;
            if [d.dq, d.dv, d.dk] != b.dims {
                let [dq, dv, dk] = b.dims;
                return Err(self.bad_input(
                    format!(
                        "query, value and key with {dq}, {dv} and {dk} features (the layer is built for them), got \
                         {}, {} and {}",
                        d.dq, d.dv, d.dk
                    ),
                    &xs[0].dims()[1..],
                ));
            }
        }
        self.attend(xs, masks, &w, ctx)
    }

    /// The per-sample sizes of batches `xs`, which must share their batch size.
    fn batch_dims(&self, xs: &[Var]) -> Result<CallDims> {
        let d = self.call_dims(&sample_shapes(xs))?;
        check_same_batch(xs, &self.name, "MultiHeadAttention")?;
        Ok(d)
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
        let shapes = self.weight_shapes([d.dq, d.dv, d.dk]);
        let given = [&w.query, &w.key, &w.value, &w.output];
        for ((p, (ks, bs)), (kn, bn)) in given.iter().zip(&shapes).zip(NAMES) {
            let bias_ok = match &p.bias {
                Some(b) => self.cfg.use_bias && b.dims() == &bs[..],
                None => !self.cfg.use_bias,
            };
            if p.kernel.dims() != ks || !bias_ok {
                return Err(Error::config(
                    self.what(),
                    format!(
                        "{kn} must be {ks:?} and {bn} {} for these inputs, got {:?} and {:?}",
                        if self.cfg.use_bias { format!("{bs:?}") } else { "absent (use_bias=false)".into() },
                        p.kernel.dims(),
                        p.bias.as_ref().map(|b| b.dims().to_vec()),
                    ),
                ));
            }
        }
        let (query, value) = (&xs[0], &xs[1]);
        let key = xs.get(2).unwrap_or(value);
        let b = query.dims()[0];
        // [B, heads, T, width]; the query scaled after its projection, as Keras
        let q = project(query, &w.query, [h, kd])?.mul_scalar(1.0 / (kd as f64).sqrt())?;
        let k = project(key, &w.key, [h, kd])?;
        let v = project(value, &w.value, [h, vd])?;
        let scores = q.matmul(&k.transpose(-2, -1)?)?; // [B, heads, Tq, Tv]
        let mask = self.mask(&d, xs.get(3), masks, &scores)?;
        let probs = match &mask {
            None => scores.softmax(-1)?,
            Some(m) => {
                let neg = if scores.dtype() == DType::F16 { -3e4 } else { -1e9 };
                let masked = Var::where_cond(m, &scores, &Var::constant(scores.value().scalar_like(neg)?))?;
                let p = masked.softmax(-1)?;
                Var::where_cond(m, &p, &Var::constant(p.value().scalar_like(0.0)?))?
            }
        };
        let dropped = dropout(&probs, self.cfg.dropout, probs.dims(), &self.name, ctx)?;
        // [B, heads, Tq, vd] -> [B, Tq, heads * vd] -> [B, Tq, out]
        let heads = dropped.matmul(&v)?.permute(&[0, 2, 1, 3])?.reshape([b, d.tq, h * vd])?;
        let o = w.output.kernel.dims()[2];
        let kernel = w.output.kernel.reshape([h * vd, o])?;
        let out = match &w.output.bias {
            Some(bias) => heads.matmul_bias(&kernel, bias)?,
            None => heads.matmul(&kernel)?,
        };
        Ok((out, probs))
    }

    /// Where a query may attend (`[1 or B, 1, Tq, Tv]`, nonzero: yes): the inputs' masks
    /// (query `[B, Tq]`, value and key `[B, Tv]`), the causal mask and the attention mask
    /// `mask` combined (Keras's `_compute_attention_mask`), or `None` when none is in use.
    fn mask(
        &self,
        d: &CallDims,
        mask: Option<&Var>,
        input_masks: &[Option<Tensor>],
        scores: &Var,
    ) -> Result<Option<Tensor>> {
        let b = scores.dims()[0];
        let mut inputs: Option<Tensor> = None;
        for (i, m) in input_masks.iter().enumerate().take(3) {
            let Some(m) = m else { continue };
            let (t, shape) = if i == 0 { (d.tq, [b, 1, d.tq, 1]) } else { (d.tv, [b, 1, 1, d.tv]) };
            if m.dims() != [b, t] {
                return Err(self.bad_input(
                    format!("a mask [{b}, {t}] for {}", ["the query", "the value", "the key"][i]),
                    m.dims(),
                ));
            }
            let m = m.ne(&m.scalar_like(0.0)?)?.reshape(shape)?.to_device(&scores.device())?;
            inputs = Some(match inputs {
                Some(a) => a.mul(&m)?,
                None => m,
            });
        }
        let causal = if self.cfg.use_causal_mask {
            // Keras's: query position i attends to key positions j <= i (also when Tq != Tv)
            let (tq, tv) = (d.tq, d.tv);
            let tri: Vec<u8> = (0..tq * tv).map(|i| u8::from(i / tv >= i % tv)).collect();
            Some(Tensor::from_vec(tri, [1, 1, tq, tv])?.to_device(&scores.device())?)
        } else {
            None
        };
        let given = match mask {
            Some(m) => {
                let m = m.value();
                Some(m.ne(&m.scalar_like(0.0)?)?.unsqueeze(1)?)
            }
            None => None,
        };
        let mut all: Option<Tensor> = None;
        for m in [inputs, causal, given].into_iter().flatten() {
            all = Some(match all {
                Some(a) => a.mul(&m)?,
                None => m,
            });
        }
        Ok(all)
    }
}

/// `x` `[B, T, dim]` through a projection `[dim, heads, width]` (+ bias `[heads, width]`),
/// split into heads: `[B, heads, T, width]`.
fn project(x: &Var, p: &AttentionProjection, [heads, width]: [usize; 2]) -> Result<Var> {
    let (b, t, dim) = (x.dims()[0], x.dims()[1], x.dims()[2]);
    let kernel = p.kernel.reshape([dim, heads * width])?;
    let y = match &p.bias {
        Some(bias) => x.matmul_bias(&kernel, &bias.reshape([heads * width])?)?,
        None => x.matmul(&kernel)?,
    };
    Ok(y.reshape([b, t, heads, width])?.permute(&[0, 2, 1, 3])?)
}

impl Layer for MultiHeadAttention {
    layer_common!("MultiHeadAttention");

    fn supports_masking(&self) -> bool {
        true
    }

    multi_input_forwards!();

    fn is_built(&self) -> bool {
        self.built.is_some()
    }

    fn build_multi(&mut self, input_shapes: &[Vec<usize>], rng: &mut Rng) -> Result<()> {
        let d = self.call_dims(input_shapes)?;
        let dims = [d.dq, d.dv, d.dk];
        if let Some(b) = &self.built {
            if b.dims == dims {
                return Ok(());
            }
            return Err(self.bad_input(
                format!(
                    "query, value and key with {:?} features (the layer is already built for them), got {dims:?}",
                    b.dims
                ),
                &input_shapes[0],
            ));
        }
        // drawn in Keras's order: each projection's kernel, then its bias
        let mut kernels = Vec::with_capacity(4);
        let mut biases = Vec::with_capacity(4);
        for (i, (ks, bs)) in self.weight_shapes(dims).into_iter().enumerate() {
            // Keras 3's EinsumDense fans: the contracted axes in, the produced axes out
            // (query/key/value `[d, heads, width]`: (d, heads*width); output
            // `[heads, width, out]`: (heads*width, out))
            let fans = if i < 3 { (ks[0], ks[1] * ks[2]) } else { (ks[0] * ks[1], ks[2]) };
            kernels.push(Param::new(self.cfg.kernel_initializer.sample_with_fans(&ks, fans, rng)?));
            if self.cfg.use_bias {
                biases.push(Param::new(self.cfg.bias_initializer.sample(&bs, rng)?));
            }
        }
        let four = |v: Vec<Param>| -> Option<[Param; 4]> { v.try_into().ok() };
        let kernels = four(kernels).ok_or_else(|| Error::config(self.what(), "internal: four kernels expected"))?;
        self.built = Some(Built { dims, kernels, biases: four(biases) });
        Ok(())
    }

    fn output_shape_multi(&self, input_shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
        let d = self.call_dims(input_shapes)?;
        Ok(vec![d.tq, self.out_dim(d.dq)])
    }

    fn forward_logits_multi(&self, xs: &[Var], ctx: &mut Ctx<'_>) -> Result<Var> {
        Ok(self.forward_with_scores(xs, ctx)?.0)
    }

    fn forward_logits_masked(&self, xs: &[Var], masks: &[Option<Tensor>], ctx: &mut Ctx<'_>) -> Result<Var> {
        Ok(self.forward_with_masks(xs, masks, ctx)?.0)
    }

    fn weights(&self) -> Vec<Weight> {
        let Some(b) = &self.built else { return Vec::new() };
        let mut w = Vec::with_capacity(8);
        for (i, (kn, bn)) in NAMES.into_iter().enumerate() {
            w.push(Weight::trainable(kn, &b.kernels[i]));
            if let Some(bs) = &b.biases {
                w.push(Weight::trainable(bn, &bs[i]));
            }
        }
        w
    }

    fn config(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.cfg).unwrap_or_default();
        // Keras writes the resolved value_dim
        v["value_dim"] = serde_json::json!(self.get_value_dim());
        with_name(&self.name, v)
    }

    fn regularization_loss(&self, ctx: &Ctx<'_>) -> Result<Option<Var>> {
        let Some(b) = &self.built else { return Ok(None) };
        let ks: Vec<Option<Param>> = b.kernels.iter().cloned().map(Some).collect();
        let bs: Vec<Option<Param>> = match &b.biases {
            Some(bs) => bs.iter().cloned().map(Some).collect(),
            None => Vec::new(),
        };
        let pairs: Vec<_> = ks
            .iter()
            .map(|k| (&self.cfg.kernel_regularizer, k))
            .chain(bs.iter().map(|b| (&self.cfg.bias_regularizer, b)))
            .collect();
        penalties(ctx, &pairs)
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
