//! [`CategoryEncoding`]: integer ids to one-hot, multi-hot or count vectors (Keras's
//! preprocessing layer).

use super::categorical::{
    categorical_layer_common, check_batch, encode, encoded_sample_shape, rank_error, read_ids, who, OutputMode,
};
use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer};
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::Tensor;

/// Keras's `CategoryEncoding(num_tokens, output_mode)`: integer ids in `0..num_tokens` (I64,
/// U8, or floats holding whole numbers) to F32 encodings. [`OutputMode::MultiHot`] (the
/// default) and [`OutputMode::Count`] encode each sample's ids, `[batch, n]` ->
/// `[batch, num_tokens]`; [`OutputMode::OneHot`] encodes each id, `[batch]` or `[batch, 1]` ->
/// `[batch, num_tokens]` and `[batch, n]` -> `[batch, n, num_tokens]`.
///
/// An id outside `0..num_tokens` is an error (Keras 3 documents one; its backends drop such
/// ids or fail, depending on the backend and mode). A `[batch]` input in the multi-hot and
/// count modes is a batch of one-id samples (`[batch, num_tokens]`; Keras reads a 1-D input
/// as one sample). Not differentiable; computed on the host, the output on the input's device.
///
/// ```
/// use keel_nn::{CategoryEncoding, Ctx, Layer, OutputMode};
/// use keel_autograd::Var;
/// use keel_tensor::Tensor;
/// let layer = CategoryEncoding::new(4).output_mode(OutputMode::Count);
/// let ids = Tensor::from_vec(vec![0i64, 1, 1, 3, 3, 3], (2, 3))?;
/// let y = layer.forward(&Var::constant(ids), &mut Ctx::inference())?;
/// assert_eq!(y.value().to_vec::<f32>()?, vec![1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CategoryEncoding {
    name: String,
    input_shape: Option<Vec<usize>>,
    num_tokens: usize,
    mode: OutputMode,
    built: bool,
}

common_builders!(CategoryEncoding);

impl CategoryEncoding {
    /// Ids in `0..num_tokens`, multi-hot encoded (Keras's default).
    pub fn new(num_tokens: usize) -> Self {
        CategoryEncoding {
            name: String::new(),
            input_shape: None,
            num_tokens,
            mode: OutputMode::MultiHot,
            built: false,
        }
    }

    /// How to encode: [`OutputMode::OneHot`], [`OutputMode::MultiHot`] or
    /// [`OutputMode::Count`] ([`OutputMode::Int`] is refused when the layer is built).
    pub fn output_mode(mut self, mode: OutputMode) -> Self {
        self.mode = mode;
        self
    }

    /// The number of classes.
    pub fn num_tokens(&self) -> usize {
        self.num_tokens
    }

    /// The output mode.
    pub fn mode(&self) -> OutputMode {
        self.mode
    }

    fn who(&self) -> String {
        who(&self.name, "CategoryEncoding")
    }

    fn check(&self) -> Result<()> {
        if self.num_tokens == 0 {
            return Err(Error::config(self.who(), "num_tokens must be >= 1"));
        }
        if self.mode == OutputMode::Int {
            return Err(Error::config(
                self.who(),
                "output_mode must be \"one_hot\", \"multi_hot\" or \"count\", got \"int\"",
            ));
        }
        Ok(())
    }

    /// Keras's `count_weights`: ids `[batch, n]` (or `[batch]`) counted with the weight of each
    /// occurrence (`weights`, the ids' shape) in count mode; `[batch, num_tokens]` F32 on the ids'
    /// device. Another mode, or weights of another shape, is an error.
    pub fn encode_weighted(&self, ids: &Tensor, weights: &Tensor) -> Result<Tensor> {
        self.check()?;
        if self.mode != OutputMode::Count {
            return Err(Error::config(
                self.who(),
                format!("count_weights are only used in output_mode \"count\", not \"{}\"", self.mode.as_str()),
            ));
        }
        if ids.dims() != weights.dims() {
            return Err(Error::config(
                self.who(),
                format!(
                    "count_weights of shape {:?} for ids of shape {:?}: they must match",
                    weights.dims(),
                    ids.dims()
                ),
            ));
        }
        if ids.rank() == 0 || ids.rank() > 2 {
            return Err(rank_error(&self.name, "CategoryEncoding", self.mode, ids.dims().get(1..).unwrap_or(&[])));
        }
        let w = weights.to_dtype(keel_tensor::DType::F32)?.to_vec::<f32>()?;
        let (v, d) =
            encode(&read_ids(ids, &self.who())?, ids.dims(), self.mode, self.num_tokens, Some(&w), &self.who())?;
        Ok(Tensor::from_vec(v, d)?.to_device(&ids.device())?)
    }
}

impl Layer for CategoryEncoding {
    layer_common!("CategoryEncoding");
    categorical_layer_common!(check);

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        encoded_sample_shape(input_shape, self.mode, self.num_tokens)
            .ok_or_else(|| rank_error(&self.name, "CategoryEncoding", self.mode, input_shape))
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        self.check()?;
        check_batch(x, &self.name, "CategoryEncoding")?;
        self.output_shape(&x.dims()[1..])?;
        let ids = read_ids(x.value(), &self.who())?;
        let (v, d) = encode(&ids, x.dims(), self.mode, self.num_tokens, None, &self.who())?;
        let y = Var::constant(Tensor::from_vec(v, d)?.to_device(&x.value().device())?);
        // under mixed precision, in the compute dtype (Keras: the layer's compute dtype)
        ctx.autocast(&y)
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::json!({ "num_tokens": self.num_tokens, "output_mode": self.mode }))
    }
}
