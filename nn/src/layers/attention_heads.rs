//! The pieces [`MultiHeadAttention`](crate::MultiHeadAttention) and
//! [`GroupQueryAttention`](crate::GroupQueryAttention) share: the checked call shapes, the
//! four EinsumDense-shaped projections (build, weights, penalties, constraints), the
//! projection into heads, the combined mask and the (grouped) scaled dot-product attention.

use crate::layer::{constraint_pairs, penalties, sequence_dims, Ctx, Weight};
use crate::layers::dropout::dropout;
use crate::{AttentionProjection, MultiHeadAttentionWeights};
use crate::{Constraint, Error, Initializer, Regularizer, Result};
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Tensor};

/// The weight names, Keras's, per projection (query, key, value, output).
pub(crate) const NAMES: [(&str, &str); 4] = [
    ("query/kernel", "query/bias"),
    ("key/kernel", "key/bias"),
    ("value/kernel", "value/bias"),
    ("attention_output/kernel", "attention_output/bias"),
];

/// The Keras shapes of the four kernels (`[in, heads, width]`, the output's `[heads, width,
/// out]`) and biases (`[heads, width]`, the output's `[out]`), query, key, value, output.
pub(crate) type WeightShapes = [([usize; 3], Vec<usize>); 4];

/// The checked per-sample sizes of a call: query `[tq, dq]`, value `[tv, dv]`, key `[tv, dk]`
/// (and an attention mask `[tq, tv]` when one comes fourth).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallDims {
    pub tq: usize,
    pub dq: usize,
    pub tv: usize,
    pub dv: usize,
    pub dk: usize,
}

impl CallDims {
    /// The per-sample shapes of a call of layer `name` (of class `class`): `[query, value]`,
    /// `[query, value, key]` or `[query, value, key, attention_mask]`, checked against each other.
    pub(crate) fn of(shapes: &[Vec<usize>], name: &str, class: &'static str) -> Result<CallDims> {
        let bad = |expected: String, got: &[usize]| Error::IncompatibleInput {
            layer: name.to_string(),
            class,
            expected,
            got: got.to_vec(),
        };
        let (q, v, k, mask) = match shapes {
            [q, v] => (q, v, v, None),
            [q, v, k] => (q, v, k, None),
            [q, v, k, m] => (q, v, k, Some(m)),
            _ => {
                return Err(Error::Graph(format!(
                    "{class} \"{name}\" takes [query, value], [query, value, key] or [query, value, key, \
                     attention_mask], got {} input(s) (for self-attention pass the same tensor as query and value)",
                    shapes.len()
                )))
            }
        };
        let seq = |s: &Vec<usize>, role: &str| sequence_dims(s, role, name, class);
        let ((tq, dq), (tv, dv), (tk, dk)) = (seq(q, "query")?, seq(v, "value")?, seq(k, "key")?);
        if tk != tv {
            return Err(bad(format!("a key with the value's {tv} timesteps (value {v:?})"), k));
        }
        if let Some(m) = mask {
            if m[..] != [tq, tv] {
                return Err(bad(
                    format!("an attention_mask of per-sample shape [{tq}, {tv}] (query {q:?}, value {v:?})"),
                    m,
                ));
            }
        }
        Ok(CallDims { tq, dq, tv, dv, dk })
    }

    /// Where a query may attend (`[1 or B, 1, Tq, Tv]`, nonzero: yes), for projected queries
    /// `q` `[B, heads, Tq, w]`: the inputs' masks `input_masks` (query `[B, Tq]`, value and key
    /// `[B, Tv]`), the causal mask (`causal`) and the attention mask `mask` `[B, Tq, Tv]`
    /// combined (Keras's `_compute_attention_mask`), or `None` when none is in use. A bad
    /// input mask is an error of layer `name` (of class `class`).
    pub(crate) fn mask(
        &self,
        causal: bool,
        mask: Option<&Var>,
        input_masks: &[Option<Tensor>],
        q: &Var,
        name: &str,
        class: &'static str,
    ) -> Result<Option<Tensor>> {
        let b = q.dims()[0];
        let mut inputs: Option<Tensor> = None;
        for (i, m) in input_masks.iter().enumerate().take(3) {
            let Some(m) = m else { continue };
            let (t, shape) = if i == 0 { (self.tq, [b, 1, self.tq, 1]) } else { (self.tv, [b, 1, 1, self.tv]) };
            if m.dims() != [b, t] {
                return Err(Error::IncompatibleInput {
                    layer: name.to_string(),
                    class,
                    expected: format!("a mask [{b}, {t}] for {}", ["the query", "the value", "the key"][i]),
                    got: m.dims().to_vec(),
                });
            }
            let m = m.ne(&m.scalar_like(0.0)?)?.reshape(shape)?.to_device(&q.device())?;
            inputs = Some(match inputs {
                Some(a) => a.mul(&m)?,
                None => m,
            });
        }
        let causal = if causal {
            // Keras's: query position i attends to key positions j <= i (also when Tq != Tv)
            let (tq, tv) = (self.tq, self.tv);
            let tri: Vec<u8> = (0..tq * tv).map(|i| u8::from(i / tv >= i % tv)).collect();
            Some(Tensor::from_vec(tri, [1, 1, tq, tv])?.to_device(&q.device())?)
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

/// The built weights of an attention layer: kernels and (with `use_bias`) biases of query,
/// key, value and output, in Keras's EinsumDense shapes.
pub(crate) struct Projections {
    /// The feature sizes `[dq, dv, dk]` the layer was built for.
    pub dims: [usize; 3],
    kernels: [Param; 4],
    biases: Option<[Param; 4]>,
}

impl Projections {
    /// Draw the weights of `shapes` for inputs with `dims` features, in Keras's order (each
    /// projection's kernel, then its bias), with Keras 3's EinsumDense fans: the contracted
    /// axes in, the produced axes out (query/key/value `[d, heads, width]`: `(d, heads*width)`;
    /// output `[heads, width, out]`: `(heads*width, out)`).
    pub(crate) fn build(
        dims: [usize; 3],
        shapes: WeightShapes,
        kernel_initializer: &Initializer,
        bias_initializer: &Initializer,
        use_bias: bool,
        rng: &mut Rng,
    ) -> Result<Projections> {
        let mut kernels = Vec::with_capacity(4);
        let mut biases = Vec::with_capacity(4);
        for (i, (ks, bs)) in shapes.into_iter().enumerate() {
            let fans = if i < 3 { (ks[0], ks[1] * ks[2]) } else { (ks[0] * ks[1], ks[2]) };
            kernels.push(Param::new(kernel_initializer.sample_with_fans(&ks, fans, rng)?));
            if use_bias {
                biases.push(Param::new(bias_initializer.sample(&bs, rng)?));
            }
        }
        let four = |v: Vec<Param>| -> Option<[Param; 4]> { v.try_into().ok() };
        let kernels =
            four(kernels).ok_or_else(|| Error::config("attention projections", "internal: four kernels expected"))?;
        Ok(Projections { dims, kernels, biases: four(biases) })
    }

    /// The weights as Vars (tracked when `ctx` has a tape).
    pub(crate) fn vars(&self, ctx: &Ctx<'_>) -> Result<MultiHeadAttentionWeights> {
        let proj = |i: usize| -> Result<AttentionProjection> {
            Ok(AttentionProjection {
                kernel: ctx.param(&self.kernels[i])?,
                bias: self.biases.as_ref().map(|bs| ctx.param(&bs[i])).transpose()?,
            })
        };
        Ok(MultiHeadAttentionWeights { query: proj(0)?, key: proj(1)?, value: proj(2)?, output: proj(3)? })
    }

    /// An error of layer `name` (of class `class`) unless the call `d` (of batches `xs`) has
    /// the feature sizes the weights were built for.
    pub(crate) fn check_dims(&self, d: &CallDims, xs: &[Var], name: &str, class: &'static str) -> Result<()> {
        if [d.dq, d.dv, d.dk] == self.dims {
            return Ok(());
        }
        let [dq, dv, dk] = self.dims;
        Err(Error::IncompatibleInput {
            layer: name.to_string(),
            class,
            expected: format!(
                "query, value and key with {dq}, {dv} and {dk} features (the layer is built for them), got {}, {} \
                 and {}",
                d.dq, d.dv, d.dk
            ),
            got: xs[0].dims()[1..].to_vec(),
        })
    }

    /// The weights in Keras's order and names.
    pub(crate) fn weights(&self) -> Vec<Weight> {
        let mut w = Vec::with_capacity(8);
        for (i, (kn, bn)) in NAMES.into_iter().enumerate() {
            w.push(Weight::trainable(kn, &self.kernels[i]));
            if let Some(bs) = &self.biases {
                w.push(Weight::trainable(bn, &bs[i]));
            }
        }
        w
    }

    /// The penalties of `kernel` on each kernel and `bias` on each bias.
    pub(crate) fn penalties(
        &self,
        ctx: &Ctx<'_>,
        kernel: &Option<Regularizer>,
        bias: &Option<Regularizer>,
    ) -> Result<Option<Var>> {
        let ks: Vec<Option<Param>> = self.kernels.iter().cloned().map(Some).collect();
        let bs: Vec<Option<Param>> = match &self.biases {
            Some(bs) => bs.iter().cloned().map(Some).collect(),
            None => Vec::new(),
        };
        let pairs: Vec<_> = ks.iter().map(|k| (kernel, k)).chain(bs.iter().map(|b| (bias, b))).collect();
        penalties(ctx, &pairs)
    }

    /// `kernel` on each kernel and `bias` on each bias, in the weights' order (Keras passes
    /// both to each of its four EinsumDense projections).
    pub(crate) fn constraints(
        &self,
        kernel: &Option<Constraint>,
        bias: &Option<Constraint>,
    ) -> Vec<(Param, Constraint)> {
        let mut pairs = Vec::with_capacity(8);
        for (i, k) in self.kernels.iter().enumerate() {
            pairs.push((kernel, Some(k.clone())));
            if let Some(bs) = &self.biases {
                pairs.push((bias, Some(bs[i].clone())));
            }
        }
        let refs: Vec<_> = pairs.iter().map(|(c, p)| (*c, p)).collect();
        constraint_pairs(&refs)
    }
}

impl MultiHeadAttentionWeights {
    /// A config error of `what` unless the weights have `shapes` (biases only with `use_bias`).
    pub(crate) fn check_shapes(&self, shapes: &WeightShapes, use_bias: bool, what: &str) -> Result<()> {
        let given = [&self.query, &self.key, &self.value, &self.output];
        for ((p, (ks, bs)), (kn, bn)) in given.iter().zip(shapes).zip(NAMES) {
            let bias_ok = match &p.bias {
                Some(b) => use_bias && b.dims() == &bs[..],
                None => !use_bias,
            };
            if p.kernel.dims() != ks || !bias_ok {
                return Err(Error::config(
                    what,
                    format!(
                        "{kn} must be {ks:?} and {bn} {} for these inputs, got {:?} and {:?}",
                        if use_bias { format!("{bs:?}") } else { "absent (use_bias=false)".into() },
                        p.kernel.dims(),
                        p.bias.as_ref().map(|b| b.dims().to_vec()),
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `x` `[B, T, dim]` through a projection `[dim, heads, width]` (+ bias `[heads, width]`),
/// split into heads: `[B, heads, T, width]`.
pub(crate) fn project(x: &Var, p: &AttentionProjection, [heads, width]: [usize; 2]) -> Result<Var> {
    let (b, t, dim) = (x.dims()[0], x.dims()[1], x.dims()[2]);
    let kernel = p.kernel.reshape([dim, heads * width])?;
    let y = match &p.bias {
        Some(bias) => x.matmul_bias(&kernel, &bias.reshape([heads * width])?)?,
        None => x.matmul(&kernel)?,
    };
    Ok(y.reshape([b, t, heads, width])?.permute(&[0, 2, 1, 3])?)
}

/// The heads' results `[B, Tq, heads * width]` through the output projection `[heads,
/// width, out]` (+ bias `[out]`): `[B, Tq, out]`.
pub(crate) fn output_projection(heads: &Var, p: &AttentionProjection) -> Result<Var> {
    let [h, w, o] = [p.kernel.dims()[0], p.kernel.dims()[1], p.kernel.dims()[2]];
    let kernel = p.kernel.reshape([h * w, o])?;
    Ok(match &p.bias {
        Some(bias) => heads.matmul_bias(&kernel, bias)?,
        None => heads.matmul(&kernel)?,
    })
}

/// Scaled dot-product attention of the (already scaled) queries `q` `[B, heads, Tq, w]` over
/// keys `k` `[B, groups, Tv, w]` and values `v` `[B, groups, Tv, vw]`, `heads` a multiple of
/// `groups`: query head `i` attends with key/value head `i / (heads / groups)` (Keras's
/// `ops.repeat` of the key/value heads; one group per head is multi-head attention). The
/// scores go through a softmax over the key axis (masked by `mask` `[1 or B, 1, Tq, Tv]`:
/// -1e9, -3e4 in F16, before it and 0 after, so a fully masked row attends to nothing) and
/// dropout at `rate` (training only, from the [`Ctx`]'s rng, as layer `name`), and weight
/// the values. Returns the heads' results side by side, `[B, Tq, heads * vw]`, and the
/// probabilities `[B, heads, Tq, Tv]` before dropout. Grouped heads are computed without
/// repeating the keys and values: the `heads / groups` queries of a group are stacked along
/// the query axis (`[B, groups, r*Tq, w]`) and meet their group's keys in one matmul.
pub(crate) fn grouped_attention(
    q: &Var,
    k: &Var,
    v: &Var,
    mask: Option<&Tensor>,
    rate: f64,
    name: &str,
    ctx: &mut Ctx<'_>,
) -> Result<(Var, Var)> {
    let (b, h, tq) = (q.dims()[0], q.dims()[1], q.dims()[2]);
    let (g, tv, vw) = (k.dims()[1], k.dims()[2], v.dims()[3]);
    let r = h / g.max(1);
    let kt = k.transpose(-2, -1)?;
    let scores = if r == 1 {
        q.matmul(&kt)? // [B, heads, Tq, Tv]
    } else {
        q.reshape([b, g, r * tq, q.dims()[3]])?.matmul(&kt)?.reshape([b, h, tq, tv])?
    };
    let probs = match mask {
        None => scores.softmax(-1)?,
        Some(m) => {
            let neg = if scores.dtype() == DType::F16 { -3e4 } else { -1e9 };
            let masked = Var::where_cond(m, &scores, &Var::constant(scores.value().scalar_like(neg)?))?;
            let p = masked.softmax(-1)?;
            Var::where_cond(m, &p, &Var::constant(p.value().scalar_like(0.0)?))?
        }
    };
    let dropped = dropout(&probs, rate, probs.dims(), name, ctx)?;
    // [B, heads, Tq, vw] -> [B, Tq, heads * vw]
    let heads = if r == 1 {
        dropped.matmul(v)?
    } else {
        dropped.reshape([b, g, r * tq, tv])?.matmul(v)?.reshape([b, h, tq, vw])?
    };
    Ok((heads.permute(&[0, 2, 1, 3])?.reshape([b, tq, h * vw])?, probs))
}

/// The `Layer` methods the attention layers over [`Projections`] share (a `cfg` with the
/// initializers, regularizers, constraints and `use_bias`, a `built: Option<Projections>`,
/// and `call_dims`, `bad_input`, `weight_shapes`, `out_dim`, `forward_with_scores` and
/// `forward_with_masks` of their own): building, shapes, the forwards, weights, penalties
/// and constraints.
macro_rules! projections_layer_methods {
    () => {
        fn supports_masking(&self) -> bool {
            true
        }

        $crate::layer::multi_input_forwards!();

        fn is_built(&self) -> bool {
            self.built.is_some()
        }

        fn build_multi(&mut self, input_shapes: &[Vec<usize>], rng: &mut keel_tensor::rng::Rng) -> $crate::Result<()> {
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
            let c = &self.cfg;
            let shapes = self.weight_shapes(dims);
            self.built = Some($crate::layers::attention_heads::Projections::build(
                dims,
                shapes,
                &c.kernel_initializer,
                &c.bias_initializer,
                c.use_bias,
                rng,
            )?);
            Ok(())
        }

        fn output_shape_multi(&self, input_shapes: &[Vec<usize>]) -> $crate::Result<Vec<usize>> {
            let d = self.call_dims(input_shapes)?;
            Ok(vec![d.tq, self.out_dim(d.dq)])
        }

        fn forward_logits_multi(
            &self,
            xs: &[keel_autograd::Var],
            ctx: &mut $crate::layer::Ctx<'_>,
        ) -> $crate::Result<keel_autograd::Var> {
            Ok(self.forward_with_scores(xs, ctx)?.0)
        }

        fn forward_logits_masked(
            &self,
            xs: &[keel_autograd::Var],
            masks: &[Option<keel_tensor::Tensor>],
            ctx: &mut $crate::layer::Ctx<'_>,
        ) -> $crate::Result<keel_autograd::Var> {
            Ok(self.forward_with_masks(xs, masks, ctx)?.0)
        }

        fn weights(&self) -> Vec<$crate::layer::Weight> {
            self.built.as_ref().map_or_else(Vec::new, $crate::layers::attention_heads::Projections::weights)
        }

        fn regularization_loss(&self, ctx: &$crate::layer::Ctx<'_>) -> $crate::Result<Option<keel_autograd::Var>> {
            let Some(b) = &self.built else { return Ok(None) };
            b.penalties(ctx, &self.cfg.kernel_regularizer, &self.cfg.bias_regularizer)
        }

        fn constraints(&self) -> Vec<(keel_autograd::Param, $crate::Constraint)> {
            let Some(b) = &self.built else { return Vec::new() };
            b.constraints(&self.cfg.kernel_constraint, &self.cfg.bias_constraint)
        }
    };
}
pub(crate) use projections_layer_methods;

/// The private helpers of an attention layer over [`Projections`] of class `$class` (a
/// `name`, a `built: Option<Projections>` and `call_dims` of its own): its shape error, its
/// weights as Vars and the checked sizes of a batch.
macro_rules! projections_helpers {
    ($class:literal) => {
        fn bad_input(&self, expected: String, got: &[usize]) -> $crate::Error {
            $crate::Error::IncompatibleInput { layer: self.name.clone(), class: $class, expected, got: got.to_vec() }
        }

        /// The layer's weights as Vars (tracked when `ctx` has a tape).
        fn weight_vars(&self, ctx: &$crate::layer::Ctx<'_>) -> $crate::Result<$crate::MultiHeadAttentionWeights> {
            let b = self
                .built
                .as_ref()
                .ok_or_else(|| $crate::Error::NotBuilt { layer: self.name.clone(), class: $class })?;
            b.vars(ctx)
        }

        /// The per-sample sizes of batches `xs`, which must share their batch size.
        fn batch_dims(&self, xs: &[keel_autograd::Var]) -> $crate::Result<$crate::layers::attention_heads::CallDims> {
            let d = self.call_dims(&$crate::layer::sample_shapes(xs))?;
            $crate::layer::check_same_batch(xs, &self.name, $class)?;
            Ok(d)
        }
    };
}
pub(crate) use projections_helpers;
