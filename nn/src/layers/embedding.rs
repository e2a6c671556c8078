//! [`Embedding`]: a trainable lookup table from integer ids to dense vectors.

use crate::layer::{built, common_builders, layer_common, with_name, Ctx, Layer, Weight};
use crate::{Error, Initializer, Regularizer, Result};
use keel_autograd::{Param, Var};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Tensor};
use serde::{Deserialize, Serialize};

/// The hyper-parameters of [`Embedding`] (its Keras config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingConfig {
    /// Vocabulary size: ids are in `0..input_dim`.
    pub input_dim: usize,
    /// Size of each vector.
    pub output_dim: usize,
    /// Table initializer (Keras default uniform in `[-0.05, 0.05)`).
    pub embeddings_initializer: Initializer,
    /// Table penalty.
    pub embeddings_regularizer: Option<Regularizer>,
    /// Output penalty (Keras's `activity_regularizer`): the penalty of each batch's output
    /// divided by the batch size, added to the loss.
    #[serde(default)]
    pub activity_regularizer: Option<Regularizer>,
    /// Table constraint, applied after every optimizer step (Keras's `embeddings_constraint`).
    #[serde(default)]
    pub embeddings_constraint: Option<crate::Constraint>,
    /// Id 0 is padding: the layer's output carries a mask, nonzero where the id is not 0,
    /// which the layers after it read (recurrent layers skip those steps, pooling and
    /// attention ignore them, losses and metrics do not count them). As in Keras, id 0
    /// then means "no token", so the vocabulary should be `input_dim - 1` ids from 1.
    #[serde(default)]
    pub mask_zero: bool,
}

/// Keras's `Embedding(input_dim, output_dim)`: ids `[batch, ..]` (I64; float
/// ids are truncated to I64) -> `[batch, .., output_dim]`, table
/// `[input_dim, output_dim]` named `embeddings`. The gradient is added back
/// into the looked-up rows (repeated ids accumulate). An id outside
/// `0..input_dim` is an error.
///
/// Under mixed precision the table is not cast (as in Keras): the rows are looked up in
/// F32 and then cast to the compute dtype, which gives the same values as looking them up
/// in a cast table, casts `batch x output_dim` elements rather than the whole table, and
/// adds the rows' gradients into the table's F32 gradient in F32 (a token repeated in a
/// batch sums its gradients without rounding the sum to BF16).
pub struct Embedding {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: EmbeddingConfig,
    table: Option<Param>,
}

common_builders!(Embedding);
crate::layer::activity_regularizer_builder!(Embedding);

impl Embedding {
    /// A table of `input_dim` vectors of size `output_dim`, uniform(-0.05, 0.05).
    pub fn new(input_dim: usize, output_dim: usize) -> Self {
        Embedding::from_config(EmbeddingConfig {
            input_dim,
            output_dim,
            embeddings_initializer: Initializer::random_uniform(),
            embeddings_regularizer: None,
            activity_regularizer: None,
            embeddings_constraint: None,
            mask_zero: false,
        })
    }

    /// An Embedding from its config.
    pub fn from_config(cfg: EmbeddingConfig) -> Self {
        Embedding { name: String::new(), input_shape: None, cfg, table: None }
    }

    /// Set the table initializer.
    pub fn embeddings_initializer(mut self, i: Initializer) -> Self {
        self.cfg.embeddings_initializer = i;
        self
    }

    /// Penalise the table.
    pub fn embeddings_regularizer(mut self, r: Regularizer) -> Self {
        self.cfg.embeddings_regularizer = Some(r);
        self
    }

    /// Constrain the table after every optimizer step (Keras's `embeddings_constraint`).
    pub fn embeddings_constraint(mut self, c: crate::Constraint) -> Self {
        self.cfg.embeddings_constraint = Some(c);
        self
    }

    /// Treat id 0 as padding (Keras's `mask_zero=True`, see [`EmbeddingConfig::mask_zero`]).
    pub fn mask_zero(mut self, yes: bool) -> Self {
        self.cfg.mask_zero = yes;
        self
    }

    /// The config.
    pub fn get_config(&self) -> &EmbeddingConfig {
        &self.cfg
    }

    /// The table `[input_dim, output_dim]`, once built.
    pub fn embeddings(&self) -> Option<&Param> {
        self.table.as_ref()
    }
}

impl Layer for Embedding {
    /// Indices are never cast to the compute dtype.
    fn autocast(&self) -> bool {
        false
    }

    /// The table is read in its own dtype; the looked-up rows are cast (see the type).
    fn compute_dtype_params(&self) -> Vec<Param> {
        Vec::new()
    }

    layer_common!("Embedding");

    fn build(&mut self, _input_shape: &[usize], rng: &mut Rng) -> Result<()> {
        if self.table.is_some() {
            return Ok(());
        }
        if self.cfg.input_dim == 0 || self.cfg.output_dim == 0 {
            return Err(Error::config(format!("Embedding \"{}\"", self.name), "input_dim and output_dim must be >= 1"));
        }
        let t = self.cfg.embeddings_initializer.sample(&[self.cfg.input_dim, self.cfg.output_dim], rng)?;
        self.table = Some(Param::new(t));
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.table.is_some()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let mut s = input_shape.to_vec();
        s.push(self.cfg.output_dim);
        Ok(s)
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        let table = ctx.variable(built(&self.table, self)?);
        let ids = match x.dtype() {
            DType::I64 => x.value().clone(),
            d => {
                // a NaN id would cast to 0 and read row 0 (checked where it costs no GPU
                // round trip: on the host; out-of-range ids are refused on every device)
                let on_host = x.value().device() == keel_tensor::Device::Cpu;
                if d.is_float() && on_host && x.value().to_vec_f64()?.iter().any(|v| v.is_nan()) {
                    return Err(Error::config(
                        format!("layer \"{}\" (Embedding)", self.name),
                        format!("a token id is NaN; ids must be whole numbers in 0..{}", self.cfg.input_dim),
                    ));
                }
                x.value().to_dtype(DType::I64)?
            }
        };
        let n = ids.elem_count();
        let rows = table.index_select(&ids.reshape([n])?, 0)?;
        let mut dims = x.dims().to_vec();
        dims.push(self.cfg.output_dim);
        // mixed precision: the rows cast, not the table
        ctx.autocast(&rows.reshape(dims)?)
    }

    /// With `mask_zero`, the ids that are not 0 (Keras: `inputs != 0`).
    fn compute_mask(&self, xs: &[Var], _masks: &[Option<Tensor>]) -> Result<Option<Tensor>> {
        match xs {
            [x] if self.cfg.mask_zero => {
                let ids = x.value();
                Ok(Some(ids.ne(&ids.scalar_like(0.0)?)?))
            }
            _ => Ok(None),
        }
    }

    fn weights(&self) -> Vec<Weight> {
        self.table.iter().map(|t| Weight::trainable("embeddings", t)).collect()
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::to_value(&self.cfg).unwrap_or_default())
    }

    fn regularization_loss(&self, ctx: &Ctx<'_>) -> Result<Option<Var>> {
        crate::layer::penalties(ctx, &[(&self.cfg.embeddings_regularizer, &self.table)])
    }

    fn activity_regularizer(&self) -> Option<crate::Regularizer> {
        self.cfg.activity_regularizer
    }

    fn constraints(&self) -> Vec<(Param, crate::Constraint)> {
        crate::layer::constraint_pairs(&[(&self.cfg.embeddings_constraint, &self.table)])
    }
}
