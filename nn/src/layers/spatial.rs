//! Shared code of the shape layers over the spatial axes of a channels-last input
//! (ZeroPadding1D/2D/3D, Cropping1D/2D/3D, UpSampling1D/2D/3D, RepeatVector): Keras's forms of
//! per-side amounts, the pad and crop ops, and repetition along axes.

use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::Tensor;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The `(before, after)` amounts of each of `N` spatial axes: Keras's `padding` of
/// ZeroPadding1D/2D/3D and `cropping` of Cropping1D/2D/3D in their normalized form.
///
/// Serialized as Keras writes it: `[left, right]` for one axis, `[[top, bottom], [left, right]]`
/// for two, `[[front, back], [top, bottom], [left, right]]` for three. Read from any of
/// Keras's forms: an int (every side), for one axis a `[left, right]` pair, for two or three
/// axes one entry per axis, each an int (symmetric on that axis) or a `[before, after]` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Margins<const N: usize>(pub [(usize, usize); N]);

impl<const N: usize> Margins<N> {
    /// From a Keras config value (see [`Margins`] for the forms).
    pub fn from_json(v: &Value) -> std::result::Result<Self, String> {
        let int = |v: &Value| v.as_u64().and_then(|n| usize::try_from(n).ok());
        let pair = |v: &Value| match v.as_array().map(Vec::as_slice) {
            Some([a, b]) => Some((int(a)?, int(b)?)),
            _ => None,
        };
        let sides: Option<Vec<(usize, usize)>> = match int(v) {
            Some(n) => Some(vec![(n, n); N]),
            None if N == 1 => pair(v).map(|p| vec![p]),
            None => v
                .as_array()
                .filter(|axes| axes.len() == N)
                .and_then(|axes| axes.iter().map(|a| int(a).map(|n| (n, n)).or_else(|| pair(a))).collect()),
        };
        let forms = if N == 1 {
            "an int or a [left, right] pair".to_string()
        } else {
            format!("an int, or {N} entries (one per axis) each an int or a [before, after] pair")
        };
        sides
            .and_then(|s| <[(usize, usize); N]>::try_from(s).ok())
            .map(Margins)
            .ok_or_else(|| format!("expected {forms} of non-negative ints, got {v}"))
    }
}

impl<const N: usize> Serialize for Margins<N> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(s),
            all => all.serialize(s),
        }
    }
}

impl<'de, const N: usize> Deserialize<'de> for Margins<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Margins::from_json(&Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A layer's `padding` or `cropping` as Keras takes it: `1` (every side), for one axis
/// `(left, right)`, for two axes `(symmetric_height, symmetric_width)` or
/// `((top, bottom), (left, right))`, for three axes `(symmetric_depth, symmetric_height,
/// symmetric_width)` or `((front, back), (top, bottom), (left, right))`.
pub trait IntoMargins<const N: usize> {
    /// The `(before, after)` amounts of each axis.
    fn into_margins(self) -> Margins<N>;
}

impl<const N: usize> IntoMargins<N> for usize {
    fn into_margins(self) -> Margins<N> {
        Margins([(self, self); N])
    }
}

impl IntoMargins<1> for (usize, usize) {
    fn into_margins(self) -> Margins<1> {
        Margins([self])
    }
}

impl IntoMargins<2> for (usize, usize) {
    fn into_margins(self) -> Margins<2> {
        Margins([(self.0, self.0), (self.1, self.1)])
    }
}

impl IntoMargins<2> for ((usize, usize), (usize, usize)) {
    fn into_margins(self) -> Margins<2> {
        Margins([self.0, self.1])
    }
}

impl IntoMargins<3> for (usize, usize, usize) {
    fn into_margins(self) -> Margins<3> {
        Margins([(self.0, self.0), (self.1, self.1), (self.2, self.2)])
    }
}

impl IntoMargins<3> for ((usize, usize), (usize, usize), (usize, usize)) {
    fn into_margins(self) -> Margins<3> {
        Margins([self.0, self.1, self.2])
    }
}

impl<const N: usize> IntoMargins<N> for Margins<N> {
    fn into_margins(self) -> Margins<N> {
        self
    }
}

/// The per-sample shape of a batch (its dims after the batch axis).
pub(crate) fn per_sample(x: &Var) -> &[usize] {
    x.dims().get(1..).unwrap_or(&[])
}

/// The names of the spatial axes of a channels-last input with `n` of them.
fn axis_names(n: usize) -> &'static [&'static str] {
    match n {
        1 => &["steps"],
        2 => &["height", "width"],
        _ => &["depth", "height", "width"],
    }
}

/// An [`Error::IncompatibleInput`] of `layer` for `input`, expecting `expected`.
pub(crate) fn incompatible(layer: &str, class: &'static str, expected: String, input: &[usize]) -> Error {
    Error::IncompatibleInput { layer: layer.to_string(), class, expected, got: input.to_vec() }
}

/// Check that `input` is `[spatial axes..., channels]` with `n` spatial axes.
pub(crate) fn check_spatial_rank(n: usize, layer: &str, class: &'static str, input: &[usize]) -> Result<()> {
    if input.len() == n + 1 {
        return Ok(());
    }
    let axes = axis_names(n).join(", ");
    Err(incompatible(layer, class, format!("[{axes}, channels] (rank {}, channels last)", n + 1), input))
}

/// What the margins of a padding or cropping layer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MarginOp {
    /// Add zeros (ZeroPadding).
    Pad,
    /// Cut entries off (Cropping).
    Crop,
}

impl MarginOp {
    /// The per-sample output shape for `input` (`[spatial..., channels]`, one spatial
    /// axis per margin pair); a crop must leave at least one entry on every axis.
    pub(crate) fn output_shape(
        self,
        margins: &[(usize, usize)],
        layer: &str,
        class: &'static str,
        input: &[usize],
    ) -> Result<Vec<usize>> {
        check_spatial_rank(margins.len(), layer, class, input)?;
        let mut out = input.to_vec();
        for (i, (&(before, after), name)) in margins.iter().zip(axis_names(margins.len())).enumerate() {
            let total = before.checked_add(after);
            out[i] = match self {
                MarginOp::Pad => total.and_then(|t| input[i].checked_add(t)),
                MarginOp::Crop => total.and_then(|t| input[i].checked_sub(t)).filter(|&d| d > 0),
            }
            .ok_or_else(|| {
                let what = match self {
                    MarginOp::Pad => "small enough to pad by",
                    MarginOp::Crop => "longer than its cropping",
                };
                incompatible(layer, class, format!("a {name} axis {what} {before} + {after}"), input)
            })?;
        }
        Ok(out)
    }

    /// Pad or crop the batch `x` (`[batch, spatial..., channels]`, its shape already checked
    /// with [`MarginOp::output_shape`]) on axes `1..=margins.len()`.
    pub(crate) fn apply(self, margins: &[(usize, usize)], x: &Var) -> Result<Var> {
        let mut y = x.clone();
        for (i, &(before, after)) in margins.iter().enumerate() {
            let axis = i + 1;
            y = match self {
                MarginOp::Pad => pad_axis(&y, axis, before, after, 0.0)?,
                MarginOp::Crop => y.narrow(axis as isize, before, y.dims()[axis] - before - after)?,
            };
        }
        Ok(y)
    }
}

/// `x` with `before` and `after` entries of `value` added along `axis` (a concat with
/// constants, so the gradient is the middle slice).
pub(crate) fn pad_axis(x: &Var, axis: usize, before: usize, after: usize, value: f64) -> Result<Var> {
    let fill = |n: usize| -> Result<Var> {
        let mut dims = x.dims().to_vec();
        dims[axis] = n;
        Ok(Var::constant(Tensor::full(value, dims, x.dtype(), &x.device())?))
    };
    let mut parts = Vec::with_capacity(3);
    if before > 0 {
        parts.push(fill(before)?);
    }
    parts.push(x.clone());
    if after > 0 {
        parts.push(fill(after)?);
    }
    match parts.as_slice() {
        [only] => Ok(only.clone()),
        _ => Ok(Var::concat(&parts.iter().collect::<Vec<_>>(), axis as isize)?),
    }
}

/// Define a padding or cropping layer: name, Keras class name, number of spatial axes,
/// the Keras config key (`padding` / `cropping`) and its [`MarginOp`].
macro_rules! margin_layer {
    ($(#[$doc:meta])* $name:ident, $class:literal, $n:literal, $key:ident, $op:expr) => {
        $(#[$doc])*
        pub struct $name {
            name: String,
            input_shape: Option<Vec<usize>>,
            $key: Margins<$n>,
            built: bool,
        }

        common_builders!($name);

        impl $name {
            #[doc = concat!("A new ", $class, " layer with Keras's `", stringify!($key), "` (see [`IntoMargins`]).")]
            pub fn new($key: impl IntoMargins<$n>) -> Self {
                $name { name: String::new(), input_shape: None, $key: $key.into_margins(), built: false }
            }

            #[doc = concat!("The `", stringify!($key), "`: `(before, after)` of each spatial axis.")]
            pub fn $key(&self) -> Margins<$n> {
                self.$key
            }
        }

        impl Layer for $name {
            layer_common!($class);

            $crate::layer::weightless_build!();

            fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
                $op.output_shape(&self.$key.0, &self.name, $class, input_shape)
            }

            fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
                self.output_shape(per_sample(x))?;
                $op.apply(&self.$key.0, x)
            }

            fn config(&self) -> serde_json::Value {
                with_name(&self.name, serde_json::json!({ stringify!($key): self.$key }))
            }
        }
    };
}

pub(crate) use margin_layer;

/// The per-sample shape of `input` (`[axes..., channels]`, one axis per factor) with axis
/// `i` repeated `factors[i]` times; every factor must be at least 1.
pub(crate) fn repeated_shape(
    factors: &[usize],
    layer: &str,
    class: &'static str,
    input: &[usize],
) -> Result<Vec<usize>> {
    if factors.contains(&0) {
        return Err(Error::config(
            format!("layer \"{layer}\" ({class})"),
            format!("every repeat factor must be at least 1, got {factors:?}"),
        ));
    }
    check_spatial_rank(factors.len(), layer, class, input)?;
    let mut out = input.to_vec();
    for (o, &f) in out.iter_mut().zip(factors) {
        *o = o.checked_mul(f).ok_or_else(|| {
            incompatible(layer, class, format!("a shape that stays addressable repeated {factors:?}"), input)
        })?;
    }
    Ok(out)
}

/// The batch `x` with each entry of axis `i + 1` repeated `factors[i]` times in place
/// (Keras's `ops.repeat` along each axis; `[n, a, b, c]` by `[2, 3]` is `[n, 2a, 3b, c]`):
/// a reshape, a broadcast and a copying reshape, so the gradient sums the copies.
pub(crate) fn repeat_axes(x: &Var, factors: &[usize]) -> Result<Var> {
    if factors.iter().all(|&f| f == 1) {
        return Ok(x.clone());
    }
    check_output_size(x, factors)?;
    let dims = x.dims();
    let (mut split, mut wide, mut out) = (vec![dims[0]], vec![dims[0]], vec![dims[0]]);
    for (&d, &f) in dims[1..].iter().zip(factors) {
        split.extend([d, 1]);
        wide.extend([d, f]);
        out.push(d * f);
    }
    let rest = &dims[factors.len() + 1..];
    for v in [&mut split, &mut wide, &mut out] {
        v.extend_from_slice(rest);
    }
    Ok(x.reshape(split)?.broadcast_to(wide)?.reshape(out)?)
}

/// An error (not an abort in the allocator) when `x` repeated by `factors` along axes
/// `1..=factors.len()` has more bytes than memory can address.
fn check_output_size(x: &Var, factors: &[usize]) -> Result<()> {
    let mut bytes = x.elem_count().checked_mul(x.dtype().size_in_bytes());
    for &f in factors {
        bytes = bytes.and_then(|b| b.checked_mul(f));
    }
    match bytes.filter(|&b| b <= isize::MAX as usize) {
        Some(_) => Ok(()),
        None => Err(Error::Tensor(keel_tensor::Error::InvalidShape {
            op: "repeat",
            shape: x.shape().clone(),
            msg: format!("repeated {factors:?} has more elements than memory can address"),
        })),
    }
}
