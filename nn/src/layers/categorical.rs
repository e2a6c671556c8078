//! What the categorical preprocessing layers ([`CategoryEncoding`](crate::CategoryEncoding),
//! [`Discretization`](crate::Discretization), [`IntegerLookup`](crate::IntegerLookup),
//! [`Hashing`](crate::Hashing)) share:
//! their [`OutputMode`], reading integer ids on the host, and the one-hot / multi-hot / count
//! encodings of Keras's `numerical_utils.encode_categorical_inputs`.
//!
//! These layers are not differentiable and their work is integer bookkeeping (bucketing,
//! lookups, counting), so it is done on the host; the output goes back to the input's device.

use crate::layer::Ctx;
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::{DType, Tensor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An id the encodings leave out (Keras's `IntegerLookup` maps its mask token to the largest
/// int64 in the encoded modes, which its bincount drops).
pub(crate) const DROPPED: i64 = i64::MAX;

/// What a categorical layer outputs (Keras's `output_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputMode {
    /// The integer ids themselves (I64), same shape as the input (`"int"`).
    Int,
    /// Each id as a vector of `depth` with a 1 at the id (F32, `"one_hot"`): `[batch]` ->
    /// `[batch, depth]`, `[batch, 1]` -> `[batch, depth]`, `[batch, n]` -> `[batch, n, depth]`.
    OneHot,
    /// Each sample (the last axis) as a vector of `depth` with a 1 at every id it holds (F32,
    /// `"multi_hot"`, Keras's old name `"binary"`): `[batch, n]` -> `[batch, depth]`.
    MultiHot,
    /// As [`OutputMode::MultiHot`], with how many times each id occurs (F32, `"count"`).
    Count,
}

impl OutputMode {
    /// Keras's name: `"int"`, `"one_hot"`, `"multi_hot"` or `"count"`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputMode::Int => "int",
            OutputMode::OneHot => "one_hot",
            OutputMode::MultiHot => "multi_hot",
            OutputMode::Count => "count",
        }
    }

    /// The mode of Keras's name (`"binary"` is `"multi_hot"`, as in Keras); another name
    /// (`"tf_idf"` included, which keel does not have) is an error.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "int" => Ok(OutputMode::Int),
            "one_hot" => Ok(OutputMode::OneHot),
            "multi_hot" | "binary" => Ok(OutputMode::MultiHot),
            "count" => Ok(OutputMode::Count),
            other => Err(Error::UnknownName {
                kind: "output_mode (int, one_hot, multi_hot or count)",
                name: other.to_string(),
            }),
        }
    }
}

impl Serialize for OutputMode {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for OutputMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        OutputMode::from_name(&name).map_err(serde::de::Error::custom)
    }
}

/// The `Layer` methods the categorical layers share: no autocast of their integer input,
/// a `build` that runs the layer's `$prepare` (its config checks) and checks the shape, and
/// `is_built`.
macro_rules! categorical_layer_common {
    ($prepare:ident) => {
        /// Ids and values are read on the host as they are: never cast to the compute dtype.
        fn autocast(&self) -> bool {
            false
        }

        fn build(&mut self, input_shape: &[usize], _rng: &mut keel_tensor::rng::Rng) -> Result<()> {
            self.$prepare()?;
            self.output_shape(input_shape)?;
            self.built = true;
            Ok(())
        }

        fn is_built(&self) -> bool {
            self.built
        }
    };
}
pub(crate) use categorical_layer_common;

/// A categorical layer's input must have a batch axis (rank >= 1): else an error naming it.
pub(crate) fn check_batch(x: &Var, name: &str, class: &'static str) -> Result<()> {
    if x.rank() == 0 {
        return Err(Error::IncompatibleInput {
            layer: name.to_string(),
            class,
            expected: "a batch (rank >= 1)".into(),
            got: vec![],
        });
    }
    Ok(())
}

/// The end of a categorical layer's forward pass: `ids` (one per element of `x`) as they are
/// (I64 of `x`'s shape) in [`OutputMode::Int`], else encoded into `depth` classes (F32); on
/// `x`'s device, and in the compute dtype under mixed precision.
pub(crate) fn ids_output(
    ids: Vec<i64>,
    x: &Var,
    mode: OutputMode,
    depth: usize,
    who: &str,
    ctx: &Ctx<'_>,
) -> Result<Var> {
    let y = if mode == OutputMode::Int {
        Tensor::from_vec(ids, x.dims().to_vec())?
    } else {
        let (v, d) = encode(&ids, x.dims(), mode, depth, None, who)?;
        Tensor::from_vec(v, d)?
    };
    let y = Var::constant(y.to_device(&x.value().device())?);
    ctx.autocast(&y)
}

/// `layer "name" (Class)`.
pub(crate) fn who(name: &str, class: &str) -> String {
    format!("layer \"{name}\" ({class})")
}

/// The elements of `x` as integer ids: I64 and U8 as they are; a float dtype must hold whole
/// numbers (a fractional, NaN or infinite value is an error naming layer `who`).
pub(crate) fn read_ids(x: &Tensor, who: &str) -> Result<Vec<i64>> {
    match x.dtype() {
        DType::I64 => Ok(x.to_vec::<i64>()?),
        DType::U8 => Ok(x.to_vec::<u8>()?.into_iter().map(i64::from).collect()),
        _ => {
            let v = x.to_vec_f64()?;
            // 2^63 is the first float past the i64 range
            const LIMIT: f64 = 9_223_372_036_854_775_808.0;
            v.iter()
                .map(|&f| {
                    if f.is_finite() && f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f) {
                        Ok(f as i64)
                    } else {
                        Err(Error::config(
                            who.to_string(),
                            format!("got the value {f} in a {} input: ids must be whole numbers", x.dtype()),
                        ))
                    }
                })
                .collect()
        }
    }
}

/// The per-sample output shape of encoding per-sample ids of shape `s` into `depth` classes in
/// `mode` (the batch axis is not in `s`). `None` when the mode cannot take that rank: the
/// multi-hot and count modes encode a sample `[n]` (or a scalar), as Keras's "up to rank 2".
pub(crate) fn encoded_sample_shape(s: &[usize], mode: OutputMode, depth: usize) -> Option<Vec<usize>> {
    match mode {
        OutputMode::Int => Some(s.to_vec()),
        OutputMode::OneHot => {
            let mut out = match s.split_last() {
                Some((1, rest)) => rest.to_vec(),
                _ => s.to_vec(),
            };
            out.push(depth);
            Some(out)
        }
        OutputMode::MultiHot | OutputMode::Count => (s.len() <= 1).then(|| vec![depth]),
    }
}

/// The error of a multi-hot or count layer given a batch of rank above 2.
pub(crate) fn rank_error(name: &str, class: &'static str, mode: OutputMode, s: &[usize]) -> Error {
    Error::IncompatibleInput {
        layer: name.to_string(),
        class,
        expected: format!(
            "a batch [batch] or [batch, n] in output_mode \"{}\" (which encodes each sample's last axis, up to \
             rank 2 as in Keras)",
            mode.as_str()
        ),
        got: s.to_vec(),
    }
}

/// `ids` (row-major, batch shape `dims`) encoded in `mode` into `depth` classes: the values and
/// the batch output shape. An id outside `0..depth` is an error naming layer `who` (ids equal
/// to [`DROPPED`] are left out). `weights` (same length as `ids`, count mode only) weigh each
/// occurrence, as Keras's `count_weights`.
pub(crate) fn encode(
    ids: &[i64],
    dims: &[usize],
    mode: OutputMode,
    depth: usize,
    weights: Option<&[f32]>,
    who: &str,
) -> Result<(Vec<f32>, Vec<usize>)> {
    let batch = dims.first().copied().unwrap_or(1);
    let sample = dims.get(1..).unwrap_or(&[]);
    let Some(out_sample) = encoded_sample_shape(sample, mode, depth) else {
        return Err(Error::config(
            who.to_string(),
            format!("output_mode \"{}\" takes a batch of rank 1 or 2, got shape {dims:?}", mode.as_str()),
        ));
    };
    let mut out_dims = vec![batch];
    out_dims.extend(&out_sample);
    if let Some(&bad) = ids.iter().find(|&&i| i != DROPPED && (i < 0 || i >= depth as i64)) {
        return Err(Error::config(
            who.to_string(),
            format!("got the id {bad}, outside 0..{depth}: every id must be in [0, {depth}) (num_tokens = {depth})"),
        ));
    }
    let mut out = vec![0.0f32; out_dims.iter().product()];
    match mode {
        OutputMode::Int => return Ok((ids.iter().map(|&i| i as f32).collect(), out_dims)),
        OutputMode::OneHot => {
            for (row, &i) in out.chunks_mut(depth.max(1)).zip(ids) {
                if i != DROPPED {
                    row[i as usize] = 1.0;
                }
            }
        }
        OutputMode::MultiHot | OutputMode::Count => {
            let per = ids.len().checked_div(batch).unwrap_or(0);
            for (b, row) in out.chunks_mut(depth.max(1)).enumerate() {
                for k in b * per..(b + 1) * per {
                    let i = ids[k];
                    if i == DROPPED {
                        continue;
                    }
                    if mode == OutputMode::MultiHot {
                        row[i as usize] = 1.0;
                    } else {
                        row[i as usize] += weights.map_or(1.0, |w| w[k]);
                    }
                }
            }
        }
    }
    Ok((out, out_dims))
}
