//! Keras's single-head attention layers without projections: [`Attention`] (Luong-style
//! dot-product or concat scores) and [`AdditiveAttention`] (Bahdanau-style), one mechanism.

use crate::layer::{
    check_same_batch, layer_common, multi_input_forwards, sample_shapes, sequence_dims, with_name, Ctx, Layer, Weight,
};
use crate::layers::dropout::dropout;
use crate::{Error, Initializer, Result};
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Tensor};
use serde::{Deserialize, Serialize};

/// How [`Attention`] scores a query against a key (Keras's `score_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreMode {
    /// `q · k` (times `scale` with `use_scale`).
    #[default]
    Dot,
    /// `concat_score_weight * Σ tanh(q + k)` (`tanh(scale * (q + k))` with `use_scale`).
    Concat,
}

/// The hyper-parameters of [`Attention`] (its Keras config, plus `use_causal_mask`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionConfig {
    /// Whether a trainable scalar `scale` (initially 1) multiplies the scores.
    #[serde(default)]
    pub use_scale: bool,
    /// How a query is scored against a key.
    #[serde(default)]
    pub score_mode: ScoreMode,
    /// Dropout rate on the attention scores (training only).
    #[serde(default)]
    pub dropout: f64,
    /// Keras's dropout seed, kept in the config only: keel's dropout draws from the [`Ctx`] rng.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Mask attention to later positions (Keras's call-time `use_causal_mask`, a layer option here).
    #[serde(default)]
    pub use_causal_mask: bool,
}

/// The hyper-parameters of [`AdditiveAttention`] (its Keras config, plus `use_causal_mask`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdditiveAttentionConfig {
    /// Whether a trainable `scale` `[dim]` (glorot_uniform) weighs the features of `tanh(q + k)`.
    #[serde(default = "keras_true")]
    pub use_scale: bool,
    /// Dropout rate on the attention scores (training only).
    #[serde(default)]
    pub dropout: f64,
    /// Keras's dropout seed, kept in the config only: keel's dropout draws from the [`Ctx`] rng.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Mask attention to later positions (Keras's call-time `use_causal_mask`, a layer option here).
    #[serde(default)]
    pub use_causal_mask: bool,
}

/// Keras's default `use_scale` of `AdditiveAttention`.
fn keras_true() -> bool {
    true
}

/// Explicit weights for `forward_with_weights` of [`Attention`] and [`AdditiveAttention`]
/// (e.g. float64 Vars for a gradient check), in Keras's shapes.
#[derive(Debug, Clone, Default)]
pub struct AttentionWeights {
    /// `scale`: `[]` for `Attention`, `[dim]` for `AdditiveAttention`; present iff `use_scale`.
    pub scale: Option<Var>,
    /// `concat_score_weight` `[]`: present iff `Attention`'s `score_mode` is `concat`.
    pub concat_score_weight: Option<Var>,
}

/// How the scores are made (the two layers' `_calculate_scores`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scoring {
    Dot,
    Concat,
    Additive,
}

/// What the shared mechanism needs to know of a layer.
struct Spec<'a> {
    class: &'static str,
    name: &'a str,
    scoring: Scoring,
    use_scale: bool,
    dropout: f64,
    causal: bool,
}

/// The built weights (Keras's names, in Keras's order) and the query's feature size.
struct Built {
    dim: usize,
    scale: Option<Param>,
    concat_score_weight: Option<Param>,
}

/// The checked per-sample sizes of a call: query `[tq, dim]`, value `[tv, dv]` (key `[tv, dim]`).
#[derive(Debug, Clone, Copy)]
struct CallDims {
    tq: usize,
    dim: usize,
    tv: usize,
    dv: usize,
}

impl Spec<'_> {
    fn what(&self) -> String {
        format!("{} \"{}\"", self.class, self.name)
    }

    fn bad_input(&self, expected: String, got: &[usize]) -> Error {
        Error::IncompatibleInput { layer: self.name.to_string(), class: self.class, expected, got: got.to_vec() }
    }

    fn check_config(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config(self.what(), format!("dropout must be in [0, 1), got {}", self.dropout)));
        }
        Ok(())
    }

    /// The per-sample shapes of a call (`[query, value]` or `[query, value, key]`) checked
    /// against each other.
    fn call_dims(&self, shapes: &[Vec<usize>]) -> Result<CallDims> {
        self.check_config()?;
        let (q, v, k) = match shapes {
            [q, v] => (q, v, v),
            [q, v, k] => (q, v, k),
            _ => {
                return Err(Error::Graph(format!(
                    "{} takes [query, value] or [query, value, key], got {} input(s) (for self-attention pass the \
                     same tensor as query and value)",
                    self.what(),
                    shapes.len()
                )))
            }
        };
        let seq = |s: &Vec<usize>, role: &str| sequence_dims(s, role, self.name, self.class);
        let ((tq, dim), (tv, dv), (tk, dk)) = (seq(q, "query")?, seq(v, "value")?, seq(k, "key")?);
        let key = if shapes.len() == 3 { "key" } else { "key (the value)" };
        if dk != dim {
            return Err(self.bad_input(
                format!("a {key} with the query's {dim} features to score against it (query {q:?}, {key} {k:?})"),
                k,
            ));
        }
        if tk != tv {
            return Err(self.bad_input(format!("a key with the value's {tv} timesteps (value {v:?}, key {k:?})"), k));
        }
        Ok(CallDims { tq, dim, tv, dv })
    }

    /// The weights' names, shapes and initializers for a query of `dim` features.
    fn weight_specs(&self, dim: usize) -> [Option<(&'static str, Vec<usize>, Initializer)>; 2] {
        let scale = self.use_scale.then(|| match self.scoring {
            Scoring::Additive => ("scale", vec![dim], Initializer::GlorotUniform),
            _ => ("scale", vec![], Initializer::Ones),
        });
        let concat = (self.scoring == Scoring::Concat).then(|| ("concat_score_weight", vec![], Initializer::Ones));
        [scale, concat]
    }

    fn build(&self, built: &Option<Built>, shapes: &[Vec<usize>], rng: &mut Rng) -> Result<Option<Built>> {
        let d = self.call_dims(shapes)?;
        if let Some(b) = built {
            if b.dim == d.dim {
                return Ok(None);
            }
            return Err(self.bad_input(
                format!("a query with {} features (the layer is already built for them)", b.dim),
                &shapes[0],
            ));
        }
        let [scale, concat] = self
            .weight_specs(d.dim)
            .map(|s| s.map(|(_, shape, init)| init.sample(&shape, rng).map(Param::new)).transpose());
        Ok(Some(Built { dim: d.dim, scale: scale?, concat_score_weight: concat? }))
    }

    fn weights(&self, built: &Option<Built>) -> Vec<Weight> {
        let Some(b) = built else { return Vec::new() };
        let mut w = Vec::with_capacity(2);
        if let Some(p) = &b.scale {
            w.push(Weight::trainable("scale", p));
        }
        if let Some(p) = &b.concat_score_weight {
            w.push(Weight::trainable("concat_score_weight", p));
        }
        w
    }

    /// The layer's weights as Vars (tracked when `ctx` has a tape).
    fn weight_vars(&self, built: &Option<Built>, ctx: &Ctx<'_>) -> Result<AttentionWeights> {
        let b = built.as_ref().ok_or_else(|| Error::NotBuilt { layer: self.name.to_string(), class: self.class })?;
        Ok(AttentionWeights {
            scale: b.scale.as_ref().map(|p| ctx.param(p)).transpose()?,
            concat_score_weight: b.concat_score_weight.as_ref().map(|p| ctx.param(p)).transpose()?,
        })
    }

    /// The per-sample sizes of batches `xs`, which must share their batch size.
    fn batch_dims(&self, xs: &[Var]) -> Result<CallDims> {
        let d = self.call_dims(&sample_shapes(xs))?;
        check_same_batch(xs, self.name, self.class)?;
        Ok(d)
    }

    /// The forward pass with the layer's own weights, checked against what it was built for.
    fn forward(
        &self,
        built: &Option<Built>,
        xs: &[Var],
        masks: &[Option<Tensor>],
        ctx: &mut Ctx<'_>,
    ) -> Result<(Var, Var)> {
        let w = self.weight_vars(built, ctx)?;
        let d = self.batch_dims(xs)?;
        if let Some(b) = built {
            if b.dim != d.dim {
                return Err(self.bad_input(
                    format!("a query with {} features (the layer is built for them)", b.dim),
                    &xs[0].dims()[1..],
                ));
            }
        }
        self.attend(xs, masks, &w, ctx)
    }

    /// The attention of every forward form: the output `[B, Tq, dv]` and the attention
    /// scores `[B, Tq, Tv]` (after masking, softmax and dropout, as Keras returns them).
    fn attend(
        &self,
        xs: &[Var],
        masks: &[Option<Tensor>],
        w: &AttentionWeights,
        ctx: &mut Ctx<'_>,
    ) -> Result<(Var, Var)> {
        let d = self.batch_dims(xs)?;
        let given = [("scale", &w.scale), ("concat_score_weight", &w.concat_score_weight)];
        for (spec, (name, var)) in self.weight_specs(d.dim).iter().zip(given) {
            let ok = match (spec, var) {
                (Some((_, shape, _)), Some(v)) => v.dims() == &shape[..],
                (None, None) => true,
                _ => false,
            };
            if !ok {
                return Err(Error::config(
                    self.what(),
                    format!(
                        "{name} must be {} for these inputs, got {:?}",
                        match spec {
                            Some((_, shape, _)) => format!("{shape:?}"),
                            None => "absent".into(),
                        },
                        var.as_ref().map(|v| v.dims().to_vec())
                    ),
                ));
            }
        }
        let (query, value) = (&xs[0], &xs[1]);
        let key = xs.get(2).unwrap_or(value);
        let scores = match self.scoring {
            Scoring::Dot => {
                let s = query.matmul(&key.transpose(-2, -1)?)?;
                match &w.scale {
                    Some(scale) => s.mul(scale)?,
                    None => s,
                }
            }
            Scoring::Concat | Scoring::Additive => {
                // [B, Tq, 1, dim] + [B, 1, Tv, dim] -> [B, Tq, Tv, dim]
                let sum = query.unsqueeze(2)?.add(&key.unsqueeze(1)?)?;
                let s = if self.scoring == Scoring::Additive {
                    let t = sum.tanh()?;
                    match &w.scale {
                        Some(scale) => t.mul(scale)?,
                        None => t,
                    }
                } else {
                    match &w.scale {
                        Some(scale) => sum.mul(scale)?.tanh()?,
                        None => sum.tanh()?,
                    }
                };
                let s = s.sum(&[-1], false)?;
                match &w.concat_score_weight {
                    Some(c) => s.mul(c)?,
                    None => s,
                }
            }
        };
        let dev = scores.device();
        let input_mask = |i: usize, t: usize| -> Result<Option<Tensor>> {
            let Some(Some(m)) = masks.get(i) else { return Ok(None) };
            let b = query.dims()[0];
            if m.dims() != [b, t] {
                let role = ["the query", "the value"][i];
                return Err(self.bad_input(format!("a mask [{b}, {t}] for {role}"), m.dims()));
            }
            Ok(Some(m.ne(&m.scalar_like(0.0)?)?.to_device(&dev)?))
        };
        // Keras's `_calculate_score_mask`: the value's mask (the key's is not read), and the causal one
        let mut allowed = input_mask(1, d.tv)?.map(|m| m.unsqueeze(1)).transpose()?;
        if self.causal {
            let (tq, tv) = (d.tq, d.tv);
            let tri: Vec<u8> = (0..tq * tv).map(|i| u8::from(i / tv >= i % tv)).collect();
            let tri = Tensor::from_vec(tri, [1, tq, tv])?.to_device(&dev)?;
            allowed = Some(match allowed {
                Some(a) => a.mul(&tri)?,
                None => tri,
            });
        }
        let scores = match &allowed {
            None => scores,
            Some(m) => {
                // Keras's `_apply_scores`: masked scores lowered by 1e9 (65504 in float16)
                let max = if scores.dtype() == DType::F16 { 65504.0 } else { 1e9 };
                Var::where_cond(m, &scores, &scores.sub_scalar(max)?)?
            }
        };
        let weights = scores.softmax(-1)?;
        let weights = dropout(&weights, self.dropout, weights.dims(), self.name, ctx)?;
        let out = weights.matmul(value)?;
        let out = match input_mask(0, d.tq)? {
            Some(m) => Var::where_cond(&m.unsqueeze(-1)?, &out, &Var::constant(out.value().scalar_like(0.0)?))?,
            None => out,
        };
        Ok((out, weights))
    }
}

/// The inherent methods and the `Layer` impl shared by [`Attention`] and [`AdditiveAttention`].
macro_rules! attention_layer {
    ($ty:ident, $class:literal, $cfg:ident) => {
        impl $ty {
            /// Give the layer a name (else the model numbers it, Keras style).
            pub fn with_name(mut self, name: impl Into<String>) -> Self {
                self.name = name.into();
                self
            }

            /// From a config.
            pub fn from_config(cfg: $cfg) -> Self {
                $ty { name: String::new(), input_shape: None, cfg, built: None }
            }

            /// The config.
            pub fn get_config(&self) -> &$cfg {
                &self.cfg
            }

            /// Set whether the scores are scaled by a trainable `scale`.
            pub fn use_scale(mut self, yes: bool) -> Self {
                self.cfg.use_scale = yes;
                self
            }

            /// Set the dropout rate on the attention scores (in `[0, 1)`; training only).
            pub fn dropout(mut self, rate: f64) -> Self {
                self.cfg.dropout = rate;
                self
            }

            /// Keras's dropout `seed`: kept in the config (keel's dropout draws from the [`Ctx`] rng).
            pub fn seed(mut self, seed: Option<u64>) -> Self {
                self.cfg.seed = seed;
                self
            }

            /// Let query position `i` attend only to key positions `j <= i` (Keras's
            /// `use_causal_mask=True`, a call-time argument there).
            pub fn use_causal_mask(mut self, yes: bool) -> Self {
                self.cfg.use_causal_mask = yes;
                self
            }

            /// Run on `xs` (`[query, value]` or `[query, value, key]`): the output `[B, Tq, dv]`
            /// and the attention scores `[B, Tq, Tv]` (Keras's `return_attention_scores=True`:
            /// after the masks, the softmax and, in training, dropout).
            pub fn forward_with_scores(&self, xs: &[Var], ctx: &mut Ctx<'_>) -> Result<(Var, Var)> {
                self.spec().forward(&self.built, xs, &[], ctx)
            }

            /// [`Self::forward_with_scores`] where the inputs carry masks (`masks[0]` the
            /// query's `[B, Tq]`, `masks[1]` the value's `[B, Tv]`; nonzero: the position
            /// counts; a key's mask is not read, as in Keras): no query attends to a masked
            /// value position (its score is lowered by 1e9 before the softmax), and the
            /// output is zero at masked query positions.
            pub fn forward_with_masks(
                &self,
                xs: &[Var],
                masks: &[Option<Tensor>],
                ctx: &mut Ctx<'_>,
            ) -> Result<(Var, Var)> {
                self.spec().forward(&self.built, xs, masks, ctx)
            }

            /// [`Self::forward_with_masks`] with explicit weights instead of the layer's own
            /// (the layer need not be built): the pure function of the layer, for gradient
            /// checks or weight sharing.
            pub fn forward_with_weights(
                &self,
                xs: &[Var],
                masks: &[Option<Tensor>],
                weights: &AttentionWeights,
                ctx: &mut Ctx<'_>,
            ) -> Result<(Var, Var)> {
                self.spec().attend(xs, masks, weights, ctx)
            }
        }

        impl Layer for $ty {
            layer_common!($class);

            fn supports_masking(&self) -> bool {
                true
            }

            multi_input_forwards!();

            fn is_built(&self) -> bool {
                self.built.is_some()
            }

            fn build_multi(&mut self, input_shapes: &[Vec<usize>], rng: &mut Rng) -> Result<()> {
                if let Some(b) = self.spec().build(&self.built, input_shapes, rng)? {
                    self.built = Some(b);
                }
                Ok(())
            }

            fn output_shape_multi(&self, input_shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
                let d = self.spec().call_dims(input_shapes)?;
                Ok(vec![d.tq, d.dv])
            }

            fn forward_logits_multi(&self, xs: &[Var], ctx: &mut Ctx<'_>) -> Result<Var> {
                Ok(self.forward_with_scores(xs, ctx)?.0)
            }

            fn forward_logits_masked(&self, xs: &[Var], masks: &[Option<Tensor>], ctx: &mut Ctx<'_>) -> Result<Var> {
                Ok(self.forward_with_masks(xs, masks, ctx)?.0)
            }

            fn weights(&self) -> Vec<Weight> {
                self.spec().weights(&self.built)
            }

            fn config(&self) -> serde_json::Value {
                with_name(&self.name, serde_json::to_value(&self.cfg).unwrap_or_default())
            }
        }
    };
}

/// Keras's `Attention(use_scale=False, score_mode="dot", dropout=0.0)`: dot-product
/// (Luong-style) attention of a query over a value, without projections.
///
/// Called on `[query, value]` or `[query, value, key]` (key defaults to value), batches
/// `[B, Tq, dim]`, `[B, Tv, dv]`, `[B, Tv, dim]`; the output is `[B, Tq, dv]`: the values
/// weighted by `softmax(scores)` over the key axis, where the scores `[B, Tq, Tv]` are
/// `q · k` (`score_mode` `dot`, times the scalar weight `scale` with `use_scale`) or
/// `concat_score_weight * Σ tanh(q + k)` over the features (`concat`; `tanh(scale * (q +
/// k))` with `use_scale`). The softmax weights go through dropout in training (from the
/// [`Ctx`]'s rng).
///
/// Masks, as Keras's: the value's mask (after `Embedding(mask_zero)` or `Masking`) keeps
/// every query from the padded value positions (their scores are lowered by 1e9), the
/// query's mask zeroes the output at padded query positions and is the output's mask;
/// `use_causal_mask` (a layer option and config key here, a call-time argument in Keras)
/// lets query position `i` attend to key positions `j <= i` only.
///
/// Weights, Keras's: `scale` `[]` (ones) with `use_scale`, `concat_score_weight` `[]`
/// (ones) with `score_mode` `concat`.
///
/// Not supported: inputs of other ranks than `[B, T, dim]`, `return_attention_scores` in a
/// model (use [`Attention::forward_with_scores`]), a per-layer dropout seed (`seed` is kept
/// in the config only).
///
/// ```
/// use keel_nn::prelude::*;
///
/// # fn main() -> keel_nn::Result<()> {
/// let ids = Input::new([12]);
/// let x = Embedding::new(100, 16).mask_zero(true).call(&ids)?;
/// let att = Attention::new().use_scale(true).call_multi(&[x.clone(), x])?;
/// let y = GlobalAveragePooling1D::new().call(&att)?;
/// let out = Dense::new(1).activation(Activation::Sigmoid).call(&y)?;
/// let model = Model::new(&[ids], &[out])?;
/// assert_eq!(model.output_shapes()?, vec![vec![1]]);
/// # Ok(())
/// # }
/// ```
pub struct Attention {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: AttentionConfig,
    built: Option<Built>,
}

impl Attention {
    /// Keras's defaults: dot scores, no scale, no dropout.
    pub fn new() -> Self {
        Attention::from_config(AttentionConfig {
            use_scale: false,
            score_mode: ScoreMode::Dot,
            dropout: 0.0,
            seed: None,
            use_causal_mask: false,
        })
    }

    /// Set how a query is scored against a key (`dot` or `concat`).
    pub fn score_mode(mut self, mode: ScoreMode) -> Self {
        self.cfg.score_mode = mode;
        self
    }

    fn spec(&self) -> Spec<'_> {
        Spec {
            class: "Attention",
            name: &self.name,
            scoring: match self.cfg.score_mode {
                ScoreMode::Dot => Scoring::Dot,
                ScoreMode::Concat => Scoring::Concat,
            },
            use_scale: self.cfg.use_scale,
            dropout: self.cfg.dropout,
            causal: self.cfg.use_causal_mask,
        }
    }
}

impl Default for Attention {
    fn default() -> Self {
        Attention::new()
    }
}

attention_layer!(Attention, "Attention", AttentionConfig);

/// Keras's `AdditiveAttention(use_scale=True, dropout=0.0)`: additive (Bahdanau-style)
/// attention of a query over a value, without projections.
///
/// As [`Attention`] (inputs, shapes, masks, dropout, `use_causal_mask`), with the scores
/// `Σ scale * tanh(q + k)` over the features, `scale` a trainable `[dim]` weight
/// (glorot_uniform) with `use_scale`, else 1.
///
/// ```
/// use keel_nn::prelude::*;
///
/// # fn main() -> keel_nn::Result<()> {
/// let (q, v) = (Input::new([4, 8]), Input::new([6, 8]));
/// let context = AdditiveAttention::new().call_multi(&[q, v])?;
/// assert_eq!(context.shape(), [4, 8]);
/// # Ok(())
/// # }
/// ```
pub struct AdditiveAttention {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: AdditiveAttentionConfig,
    built: Option<Built>,
}

impl AdditiveAttention {
    /// Keras's defaults: a trainable scale, no dropout.
    pub fn new() -> Self {
        AdditiveAttention::from_config(AdditiveAttentionConfig {
            use_scale: true,
            dropout: 0.0,
            seed: None,
            use_causal_mask: false,
        })
    }

    fn spec(&self) -> Spec<'_> {
        Spec {
            class: "AdditiveAttention",
            name: &self.name,
            scoring: Scoring::Additive,
            use_scale: self.cfg.use_scale,
            dropout: self.cfg.dropout,
            causal: self.cfg.use_causal_mask,
        }
    }
}

impl Default for AdditiveAttention {
    fn default() -> Self {
        AdditiveAttention::new()
    }
}

attention_layer!(AdditiveAttention, "AdditiveAttention", AdditiveAttentionConfig);
