//! The rectified-linear family as layers: [`ReLU`] (with Keras's `max_value`,
//! `negative_slope` and `threshold`), [`LeakyReLU`] and [`ELU`].

use crate::layer::{check_scalar, common_builders, layer_common, shape_preserving_layer, with_name, Ctx, Layer};
use crate::Result;
use keel_autograd::Var;

/// Keras's `layers.ReLU(max_value=None, negative_slope=0.0, threshold=0.0)`, computed as
/// Keras's `activations.relu`:
///
/// - `max_value` where `x >= max_value`,
/// - `x` where `threshold < x < max_value`,
/// - `negative_slope * (x - threshold)` otherwise
///
/// (Keras's code keeps `x` only where `x > threshold`, so `x == threshold` gives 0, and with
/// `max_value < threshold` an `x` between them follows the last rule; keel does the same).
/// All three must be finite and `>= 0` (a config error naming the layer at build time).
pub struct ReLU {
    name: String,
    input_shape: Option<Vec<usize>>,
    max_value: Option<f64>,
    negative_slope: f64,
    threshold: f64,
    built: bool,
}

common_builders!(ReLU);

impl Default for ReLU {
    fn default() -> Self {
        ReLU::new()
    }
}

impl ReLU {
    /// `max(x, 0)` (Keras's defaults: no maximum, slope 0, threshold 0).
    pub fn new() -> Self {
        ReLU {
            name: String::new(),
            input_shape: None,
            max_value: None,
            negative_slope: 0.0,
            threshold: 0.0,
            built: false,
        }
    }

    /// Cap the output at `max_value` (`>= 0`).
    pub fn max_value(mut self, max_value: f64) -> Self {
        self.max_value = Some(max_value);
        self
    }

    /// The slope below the threshold (`>= 0`).
    pub fn negative_slope(mut self, negative_slope: f64) -> Self {
        self.negative_slope = negative_slope;
        self
    }

    /// Keep `x` only above `threshold` (`>= 0`).
    pub fn threshold(mut self, threshold: f64) -> Self {
        self.threshold = threshold;
        self
    }

    fn check(&self, _input_shape: &[usize]) -> Result<()> {
        if let Some(m) = self.max_value {
            check_scalar(self, "max_value", m, true)?;
        }
        check_scalar(self, "negative_slope", self.negative_slope, true)?;
        check_scalar(self, "threshold", self.threshold, true)
    }
}

/// Keras's `activations.relu(x, negative_slope, max_value, threshold)` from elementwise ops.
fn relu(x: &Var, max_value: Option<f64>, negative_slope: f64, threshold: f64) -> Result<Var> {
    if max_value.is_none() && threshold == 0.0 {
        return Ok(if negative_slope == 0.0 { x.relu()? } else { x.leaky_relu(negative_slope)? });
    }
    let mut y = if threshold == 0.0 {
        x.relu()?
    } else {
        let v = x.value();
        let above = v.gt(&v.scalar_like(threshold)?)?;
        Var::where_cond(&above, x, &Var::constant(v.scalar_like(0.0)?))?
    };
    if let Some(m) = max_value {
        // y >= 0 here, so Keras's clip to [0, max_value] is a minimum
        y = y.minimum_scalar(m)?;
    }
    if negative_slope != 0.0 {
        // - negative_slope * relu(threshold - x)
        y = y.add(&x.sub_scalar(threshold)?.minimum_scalar(0.0)?.mul_scalar(negative_slope)?)?;
    }
    Ok(y)
}

impl Layer for ReLU {
    layer_common!("ReLU");
    shape_preserving_layer!();

    fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
        self.check(x.dims())?;
        relu(x, self.max_value, self.negative_slope, self.threshold)
    }

    fn config(&self) -> serde_json::Value {
        with_name(
            &self.name,
            serde_json::json!({
                "max_value": self.max_value,
                "negative_slope": self.negative_slope,
                "threshold": self.threshold,
            }),
        )
    }
}

/// A weightless elementwise layer with one scalar hyper-parameter (LeakyReLU, ELU): the
/// struct, `new`/`Default`, the getter, and a `Layer` impl applying `$apply(x, value)`, whose
/// config is `{$key: value}`. `$non_negative` says whether the value must be `>= 0`.
macro_rules! scalar_activation_layer {
    ($(#[$doc:meta])* $t:ident, $class:literal, $key:ident = $default:expr, $non_negative:expr, $apply:expr) => {
        $(#[$doc])*
        pub struct $t {
            name: String,
            input_shape: Option<Vec<usize>>,
            $key: f64,
            built: bool,
        }

        common_builders!($t);

        impl Default for $t {
            fn default() -> Self {
                $t::new($default)
            }
        }

        impl $t {
            #[doc = concat!("A ", $class, " layer with the given `", stringify!($key), "`.")]
            pub fn new($key: f64) -> Self {
                $t { name: String::new(), input_shape: None, $key, built: false }
            }

            #[doc = concat!("The `", stringify!($key), "`.")]
            pub fn $key(&self) -> f64 {
                self.$key
            }

            fn check(&self, _input_shape: &[usize]) -> Result<()> {
                check_scalar(self, stringify!($key), self.$key, $non_negative)
            }
        }

        impl Layer for $t {
            layer_common!($class);
            shape_preserving_layer!();

            fn forward_logits(&self, x: &Var, _ctx: &mut Ctx<'_>) -> Result<Var> {
                self.check(x.dims())?;
                let apply: fn(&Var, f64) -> keel_autograd::Result<Var> = $apply;
                Ok(apply(x, self.$key)?)
            }

            fn config(&self) -> serde_json::Value {
                with_name(&self.name, serde_json::json!({ stringify!($key): self.$key }))
            }
        }
    };
}

scalar_activation_layer!(
    /// Keras's `layers.LeakyReLU(negative_slope=0.3)`: `x` where `x >= 0`, else
    /// `negative_slope * x`. The layer's default slope is Keras 3's 0.3, not the 0.2 of the
    /// `leaky_relu` activation function ([`crate::activation::LEAKY_RELU_SLOPE`]); the
    /// slope must be finite and `>= 0`.
    LeakyReLU,
    "LeakyReLU",
    negative_slope = 0.3,
    true,
    |x, s| x.leaky_relu(s)
);

scalar_activation_layer!(
    /// Keras's `layers.ELU(alpha=1.0)`: `x` where `x > 0`, else `alpha * (exp(x) - 1)`
    /// (`alpha` must be finite; Keras does not check it).
    ELU,
    "ELU",
    alpha = 1.0,
    false,
    |x, a| x.elu(a)
);
