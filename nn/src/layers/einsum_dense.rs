//! [`EinsumDense`]: a dense layer given as an einsum equation (Keras's `EinsumDense`).

use crate::layer::{built, common_builders, kernel_bias_builders, kernel_bias_layer_methods, layer_common, Ctx, Layer};
use crate::{Activation, Error, Initializer, Regularizer, Result};
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
use serde::{Deserialize, Deserializer, Serialize};

/// The hyper-parameters of [`EinsumDense`] (its Keras config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EinsumDenseConfig {
    /// `input,kernel->output`, e.g. `"abc,cde->abde"`; `...` may stand for leading
    /// (`"...b,bc->...c"`) or trailing (`"ab...,bc->ac..."`) axes.
    pub equation: String,
    /// The per-sample output shape (no batch axis; `None` where the input gives it).
    #[serde(deserialize_with = "partial_shape")]
    pub output_shape: Vec<Option<usize>>,
    /// Final activation.
    #[serde(default)]
    pub activation: Activation,
    /// The output axes (letters of the equation) that get a bias; `None`: no bias.
    #[serde(default)]
    pub bias_axes: Option<String>,
    /// Kernel initializer (default glorot_uniform, with the equation's fans).
    #[serde(default = "glorot_uniform")]
    pub kernel_initializer: Initializer,
    /// Bias initializer (default zeros).
    #[serde(default = "zeros")]
    pub bias_initializer: Initializer,
    /// Kernel penalty.
    #[serde(default)]
    pub kernel_regularizer: Option<Regularizer>,
    /// Bias penalty.
    #[serde(default)]
    pub bias_regularizer: Option<Regularizer>,
    /// Output penalty (Keras's `activity_regularizer`): the penalty of each batch's output
    /// divided by the batch size, added to the loss.
    #[serde(default)]
    pub activity_regularizer: Option<Regularizer>,
    /// Kernel constraint, applied after every optimizer step.
    #[serde(default)]
    pub kernel_constraint: Option<crate::Constraint>,
    /// Bias constraint, applied after every optimizer step.
    #[serde(default)]
    pub bias_constraint: Option<crate::Constraint>,
}

fn glorot_uniform() -> Initializer {
    Initializer::GlorotUniform
}

fn zeros() -> Initializer {
    Initializer::Zeros
}

/// Keras writes `output_shape` as a list (with `null` for axes the input gives); a single
/// number is read as a one-axis shape, as Keras's constructor takes it.
fn partial_shape<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<Option<usize>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shape {
        One(usize),
        Many(Vec<Option<usize>>),
    }
    Ok(match Shape::deserialize(d)? {
        Shape::One(n) => vec![Some(n)],
        Shape::Many(v) => v,
    })
}

/// A dense layer whose kernel and product are given by an einsum equation over the input
/// (batch axis first) and the kernel, as Keras's `EinsumDense`:
///
/// ```
/// use keel_nn::prelude::*;
///
/// # fn main() -> keel_nn::Result<()> {
/// // project each of 10 positions of width 32 to 4 heads of 8 (MultiHeadAttention's query)
/// let mut model = Sequential::new();
/// model.add(EinsumDense::new("abc,cde->abde", [None, Some(4), Some(8)]).bias_axes("de").input_shape([10, 32]));
/// assert_eq!(model.output_shapes()?, vec![vec![10, 4, 8]]);
/// assert_eq!(model.state_dict()["einsum_dense/kernel"].dims(), &[32, 4, 8]);
/// # Ok(())
/// # }
/// ```
///
/// Keras's rules: the input's first axis is the batch and must be the output's first axis;
/// every kernel axis appears in the input or the output; an input axis that appears in
/// neither the kernel nor the output is summed over. The kernel's shape comes from the
/// output shape and the input; the bias has the sizes of `bias_axes` from the first of them
/// in the output on (1 elsewhere), broadcast over the axes after. It runs as one (batched)
/// matrix product between transposes and reshapes. Keras's LoRA and quantization options
/// are not supported.
pub struct EinsumDense {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: EinsumDenseConfig,
    plan: Option<Plan>,
    kernel: Option<Param>,
    bias: Option<Param>,
}

common_builders!(EinsumDense);
kernel_bias_builders!(EinsumDense, no_use_bias);

/// How the product runs for one per-sample input shape.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    /// The per-sample input shape it is for.
    input: Vec<usize>,
    /// Input axes summed away first (in neither the kernel nor the output).
    summed: Vec<isize>,
    /// Permutation of the (summed) input to `[shared.., batch-like.., contracted..]`.
    in_perm: Vec<usize>,
    /// Permutation of the kernel to `[shared.., contracted.., produced..]`.
    kernel_perm: Vec<usize>,
    /// Sizes of the shared axes (in input, kernel and output), the batch-like ones without
    /// the batch axis (in input and output), the contracted ones, the produced ones.
    shared: Vec<usize>,
    batch_like: Vec<usize>,
    contracted: usize,
    produced: Vec<usize>,
    /// Permutation of `[shared.., batch, batch-like.., produced..]` to the output's order.
    out_perm: Vec<usize>,
    kernel_shape: Vec<usize>,
    bias_shape: Option<Vec<usize>>,
    /// The per-sample output shape.
    output: Vec<usize>,
    /// The kernel's `(fan_in, fan_out)`: contracted axes in, the others out (Keras 3).
    fans: (usize, usize),
}

impl EinsumDense {
    /// An EinsumDense layer for `equation` with per-sample `output_shape` (`None` where the
    /// input gives the size; no bias, linear, glorot_uniform kernel).
    pub fn new(equation: &str, output_shape: impl IntoIterator<Item = impl Into<Option<usize>>>) -> Self {
        EinsumDense::from_config(EinsumDenseConfig {
            equation: equation.to_string(),
            output_shape: output_shape.into_iter().map(Into::into).collect(),
            activation: Activation::Linear,
            bias_axes: None,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            kernel_regularizer: None,
            bias_regularizer: None,
            activity_regularizer: None,
            kernel_constraint: None,
            bias_constraint: None,
        })
    }

    /// An EinsumDense layer from its config.
    pub fn from_config(cfg: EinsumDenseConfig) -> Self {
        EinsumDense { name: String::new(), input_shape: None, cfg, plan: None, kernel: None, bias: None }
    }

    /// Add a bias over these output axes (letters of the equation's output), Keras's `bias_axes`.
    pub fn bias_axes(mut self, axes: &str) -> Self {
        self.cfg.bias_axes = Some(axes.to_string());
        self
    }

    /// The config.
    pub fn get_config(&self) -> &EinsumDenseConfig {
        &self.cfg
    }

    /// The kernel, once built.
    pub fn kernel(&self) -> Option<&Param> {
        self.kernel.as_ref()
    }

    /// The bias, once built (when `bias_axes` is set).
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    fn err(&self, msg: impl Into<String>) -> Error {
        Error::config(format!("EinsumDense \"{}\" ({})", self.name, self.cfg.equation), msg)
    }

    /// Work out the shapes and the product for per-sample input shape `input`.
    fn plan(&self, input: &[usize]) -> Result<Plan> {
        let (ins, kernel, outs, elided) = self.parse()?;
        let full_rank = input.len() + 1;
        let e = full_rank as isize - ins.len() as isize;
        if e < 0 || (elided == Elided::None && e != 0) {
            return Err(self.err(format!(
                "the equation's input has {} axes (the batch axis first), but the input has {full_rank}: {:?} per sample",
                ins.len(),
                input
            )));
        }
        let e = e as usize;
        // fresh letters for the axes `...` stands for
        let used: Vec<char> = ins.iter().chain(&kernel).chain(&outs).copied().collect();
        let fresh: Vec<char> = ('a'..='z').chain('A'..='Z').filter(|c| !used.contains(c)).take(e).collect();
        if fresh.len() < e {
            return Err(self.err("too many axes for `...`"));
        }
        let (i_full, o_full) = match elided {
            Elided::Left => ([&fresh[..], &ins[..]].concat(), [&fresh[..], &outs[..]].concat()),
            Elided::Right => ([&ins[..], &fresh[..]].concat(), [&outs[..], &fresh[..]].concat()),
            Elided::None => (ins.clone(), outs.clone()),
        };
        // Keras's full output shape: batch, the leading elided input axes, the given shape,
        // the trailing elided input axes
        let full_in: Vec<Option<usize>> = std::iter::once(None).chain(input.iter().map(|&d| Some(d))).collect();
        let mut full_out: Vec<Option<usize>> = vec![None];
        if elided == Elided::Left && e > 0 {
            full_out.extend(&full_in[1..e]);
        }
        full_out.extend(&self.cfg.output_shape);
        if elided == Elided::Right {
            full_out.extend(&full_in[full_rank - e..]);
        }
        if full_out.len() != o_full.len() {
            return Err(self.err(format!(
                "output_shape {:?} does not fit the equation's output: it should give {} sizes (the batch axis \
                 left out{})",
                self.cfg.output_shape,
                o_full.len() - (full_out.len() - self.cfg.output_shape.len()),
                if elided == Elided::None { "" } else { ", and the axes of `...`" }
            )));
        }
        let batch = i_full[0];
        if o_full.first() != Some(&batch) || kernel.contains(&batch) {
            return Err(self.err(format!(
                "the input's first axis ('{batch}') is the batch axis: it must be the output's first axis and \
                 not a kernel axis"
            )));
        }
        let in_size = |c: char| i_full.iter().position(|&x| x == c).and_then(|i| full_in[i]);
        let out_size = |c: char| o_full.iter().position(|&x| x == c).and_then(|i| full_out[i]);
        for (i, &c) in i_full.iter().enumerate().skip(1) {
            if let Some(o) = out_size(c) {
                if full_in[i] != Some(o) {
                    return Err(self.err(format!(
                        "axis '{c}' has size {} in the input but {o} in output_shape",
                        full_in[i].unwrap_or(0)
                    )));
                }
            }
        }
        let size = |c: char| -> Result<usize> {
            out_size(c)
                .or_else(|| in_size(c))
                .ok_or_else(|| self.err(format!("the size of axis '{c}' is not known: give it in output_shape")))
        };
        // kernel shape and fans
        let mut kernel_shape = Vec::with_capacity(kernel.len());
        let (mut fan_in, mut fan_out) = (1usize, 1usize);
        for &c in &kernel {
            if !i_full.contains(&c) && !o_full.contains(&c) {
                return Err(self.err(format!("kernel axis '{c}' is in neither the input nor the output")));
            }
            let n = size(c)?;
            kernel_shape.push(n);
            if o_full.contains(&c) {
                fan_out *= n;
            } else {
                fan_in *= n;
            }
        }
        for &c in &o_full {
            if !i_full.contains(&c) && !kernel.contains(&c) {
                return Err(self.err(format!("output axis '{c}' is in neither the input nor the kernel")));
            }
        }
        let output: Vec<usize> = o_full[1..].iter().map(|&c| size(c)).collect::<Result<_>>()?;
        // the product: [shared, batch-like, contracted] x [shared, contracted, produced]
        let summed_letters: Vec<char> =
            i_full.iter().copied().filter(|c| !kernel.contains(c) && !o_full.contains(c)).collect();
        let summed: Vec<isize> =
            i_full.iter().enumerate().filter(|(_, c)| summed_letters.contains(c)).map(|(i, _)| i as isize).collect();
        let rest: Vec<char> = i_full.iter().copied().filter(|c| !summed_letters.contains(c)).collect();
        let shared: Vec<char> = rest.iter().copied().filter(|c| kernel.contains(c) && o_full.contains(c)).collect();
        let batch_like: Vec<char> =
            rest.iter().copied().filter(|c| !kernel.contains(c) && o_full.contains(c)).collect();
        let contracted: Vec<char> =
            rest.iter().copied().filter(|c| kernel.contains(c) && !o_full.contains(c)).collect();
        let produced: Vec<char> = kernel.iter().copied().filter(|c| !i_full.contains(c)).collect();
        let pos = |list: &[char], c: char| list.iter().position(|&x| x == c).unwrap_or(0);
        let in_perm: Vec<usize> = shared.iter().chain(&batch_like).chain(&contracted).map(|&c| pos(&rest, c)).collect();
        let kernel_perm: Vec<usize> =
            shared.iter().chain(&contracted).chain(&produced).map(|&c| pos(&kernel, c)).collect();
        let product: Vec<char> = shared.iter().chain(&batch_like).chain(&produced).copied().collect();
        let out_perm: Vec<usize> = o_full.iter().map(|&c| pos(&product, c)).collect();
        let sizes = |list: &[char]| list.iter().map(|&c| size(c)).collect::<Result<Vec<usize>>>();
        // Keras's bias: from the first bias axis of the output on
        let bias_shape = match &self.cfg.bias_axes {
            None => None,
            Some(axes) => {
                let spec = &outs;
                let mut first = spec.len();
                for c in axes.chars() {
                    match spec.iter().position(|&x| x == c) {
                        Some(i) => first = first.min(i),
                        None => return Err(self.err(format!("bias axis '{c}' is not an axis of the output"))),
                    }
                    if c == batch {
                        return Err(self.err("the batch axis cannot have a bias"));
                    }
                }
                let mut shape: Vec<usize> = spec[first..]
                    .iter()
                    .map(|&c| if axes.contains(c) { size(c) } else { Ok(1) })
                    .collect::<Result<_>>()?;
                if elided == Elided::Right {
                    shape.extend(std::iter::repeat_n(1, e));
                }
                Some(shape)
            }
        };
        Ok(Plan {
            input: input.to_vec(),
            summed,
            in_perm,
            kernel_perm,
            shared: sizes(&shared)?,
            batch_like: sizes(&batch_like[1..])?,
            contracted: sizes(&contracted)?.iter().product(),
            produced: sizes(&produced)?,
            out_perm,
            kernel_shape,
            bias_shape,
            output,
            fans: (fan_in, fan_out),
        })
    }

    /// The equation's input, kernel and output letters, and where `...` is.
    fn parse(&self) -> Result<(Vec<char>, Vec<char>, Vec<char>, Elided)> {
        let eq: String = self.cfg.equation.chars().filter(|c| !c.is_whitespace()).collect();
        let bad = || {
            self.err(
                "an equation is `input,kernel->output` in letters, with `...` at the start of the input and \
                 output (\"...b,bc->...c\") or at their end (\"ab...,bc->ac...\")",
            )
        };
        let (lhs, out) = eq.split_once("->").ok_or_else(bad)?;
        let (inp, ker) = lhs.split_once(',').ok_or_else(bad)?;
        let (inp, out, elided) = match (inp.strip_prefix("..."), out.strip_prefix("...")) {
            (Some(i), Some(o)) => (i, o, Elided::Left),
            (None, None) => match (inp.strip_suffix("..."), out.strip_suffix("...")) {
                (Some(i), Some(o)) if i.len() >= 2 => (i, o, Elided::Right),
                (None, None) => (inp, out, Elided::None),
                _ => return Err(bad()),
            },
            _ => return Err(bad()),
        };
        let letters = |s: &str| -> Result<Vec<char>> {
            let v: Vec<char> = s.chars().collect();
            if v.is_empty() || !v.iter().all(char::is_ascii_alphabetic) {
                return Err(bad());
            }
            if let Some(c) = v.iter().find(|c| v.iter().filter(|x| x == c).count() > 1) {
                return Err(self.err(format!("axis '{c}' appears twice in \"{s}\" (diagonals are not supported)")));
            }
            Ok(v)
        };
        Ok((letters(inp)?, letters(ker)?, letters(out)?, elided))
    }
}

/// Where an equation's `...` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elided {
    None,
    Left,
    Right,
}

impl Layer for EinsumDense {
    layer_common!("EinsumDense");

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<()> {
        let plan = self.plan(input_shape)?;
        if let Some(have) = &self.plan {
            if *have == plan {
                return Ok(());
            }
            return Err(Error::IncompatibleInput {
                layer: self.name.clone(),
                class: "EinsumDense",
                expected: format!("per-sample shape {:?} (the layer is already built)", have.input),
                got: input_shape.to_vec(),
            });
        }
        self.kernel =
            Some(Param::new(self.cfg.kernel_initializer.sample_with_fans(&plan.kernel_shape, plan.fans, rng)?));
        if let Some(shape) = &plan.bias_shape {
            self.bias = Some(Param::new(self.cfg.bias_initializer.sample(shape, rng)?));
        }
        self.plan = Some(plan);
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.plan.is_some()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(self.plan(input_shape)?.output)
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let k = ctx.param(built(&self.kernel, self)?)?;
        let b = self.bias.as_ref().map(|b| ctx.param(b)).transpose()?;
        self.forward_with_weights(x, &k, b.as_ref())
    }

    kernel_bias_layer_methods!();
}

impl EinsumDense {
    /// The output before the activation for input `x` with the given kernel and bias (of the
    /// built layer's shapes): what the layer computes with its own weights.
    pub fn forward_with_weights(&self, x: &Var, k: &Var, bias: Option<&Var>) -> Result<Var> {
        let Some(p) = &self.plan else {
            return Err(Error::NotBuilt { layer: self.name.clone(), class: "EinsumDense" });
        };
        if x.rank() == 0 || x.dims()[1..] != p.input[..] {
            return Err(Error::IncompatibleInput {
                layer: self.name.clone(),
                class: "EinsumDense",
                expected: format!("per-sample shape {:?}", p.input),
                got: x.dims().get(1..).unwrap_or(&[]).to_vec(),
            });
        }
        let batch = x.dims()[0];
        let mut xs = if p.summed.is_empty() { x.clone() } else { x.sum(&p.summed, false)? };
        xs = permuted(&xs, &p.in_perm)?;
        let s: usize = p.shared.iter().product();
        let rows = batch * p.batch_like.iter().product::<usize>();
        let n: usize = p.produced.iter().product();
        if k.dims() != p.kernel_shape || bias.map(|b| b.dims().to_vec()) != p.bias_shape {
            return Err(self.err(format!(
                "the weights should have shapes {:?} and {:?}, got {:?} and {:?}",
                p.kernel_shape,
                p.bias_shape,
                k.dims(),
                bias.map(|b| b.dims().to_vec())
            )));
        }
        let k = permuted(k, &p.kernel_perm)?;
        let y = if s == 1 {
            xs.reshape([rows, p.contracted])?.matmul(&k.reshape([p.contracted, n])?)?
        } else {
            xs.reshape([s, rows, p.contracted])?.matmul(&k.reshape([s, p.contracted, n])?)?
        };
        let dims: Vec<usize> = p
            .shared
            .iter()
            .copied()
            .chain(std::iter::once(batch))
            .chain(p.batch_like.iter().copied())
            .chain(p.produced.iter().copied())
            .collect();
        let y = permuted(&y.reshape(dims)?, &p.out_perm)?;
        match bias {
            Some(b) => Ok(y.add(b)?),
            None => Ok(y),
        }
    }
}

/// `v` permuted by `perm`, or `v` itself for the identity.
fn permuted(v: &Var, perm: &[usize]) -> Result<Var> {
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        Ok(v.clone())
    } else {
        Ok(v.permute(perm)?)
    }
}
