//! [`Initializer`]: how a layer fills its weights when it is built.
//!
//! Fans follow Keras: a `[in, out]` kernel has `fan_in = in`, `fan_out = out`;
//! a conv kernel `[kh, kw, in, out]` (HWIO) has `fan_in = kh*kw*in` and
//! `fan_out = kh*kw*out`; a 1-D shape uses its length for both. The `*_normal`
//! variance-scaling initializers draw from a normal truncated at two standard
//! deviations (re-drawing outliers), rescaled by 0.8796... as Keras does, so
//! the truncated distribution has the intended variance. All draws come from
//! the caller's seeded [`Rng`].

use crate::{Error, Result};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

/// The standard deviation of a standard normal truncated to `[-2, 2]`.
const TRUNC_STD: f64 = 0.879_625_661_034_239_8;

/// A weight initializer (serialized as Keras's `{"class_name": ..., "config": {...}}`).
///
/// It reads every form Keras writes: a name (`"glorot_uniform"`, `"GlorotUniform"`), or an
/// object with `class_name` and an optional `config` (`{"class_name": "Zeros", "config":
/// {}}`; Keras 3 adds `module` and `registered_name`, which are ignored, as is a config's
/// `seed`: keel's initial weights come from the model's seed).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
#[serde(tag = "class_name", content = "config")]
pub enum Initializer {
    /// Uniform in `±sqrt(6 / (fan_in + fan_out))` (Keras default for kernels).
    #[default]
    GlorotUniform,
    /// Truncated normal with `std = sqrt(2 / (fan_in + fan_out))`.
    GlorotNormal,
    /// Uniform in `±sqrt(6 / fan_in)`.
    HeUniform,
    /// Truncated normal with `std = sqrt(2 / fan_in)`.
    HeNormal,
    /// Uniform in `±sqrt(3 / fan_in)`.
    LecunUniform,
    /// Truncated normal with `std = sqrt(1 / fan_in)`.
    LecunNormal,
    /// All zeros (Keras default for biases).
    Zeros,
    /// All ones.
    Ones,
    /// Every element `value`.
    Constant {
        /// The value.
        value: f64,
    },
    /// Plain normal samples.
    RandomNormal {
        /// Mean (Keras default 0).
        mean: f64,
        /// Standard deviation (Keras default 0.05).
        stddev: f64,
    },
    /// Uniform samples in `[minval, maxval)`.
    RandomUniform {
        /// Lower bound (Keras default -0.05).
        minval: f64,
        /// Upper bound (Keras default 0.05).
        maxval: f64,
    },
    /// Normal samples truncated at two standard deviations.
    TruncatedNormal {
        /// Mean (Keras default 0).
        mean: f64,
        /// Standard deviation before truncation (Keras default 0.05).
        stddev: f64,
    },
    /// A (semi-)orthogonal matrix times `gain`: the Q of a QR decomposition of a
    /// normal matrix, flattened as `[prod(shape[..-1]), shape[-1]]` (Keras's `Orthogonal`).
    Orthogonal {
        /// Multiplicative factor (Keras default 1).
        gain: f64,
    },
}

/// `(fan_in, fan_out)` of a weight shape, as Keras computes them.
pub fn compute_fans(shape: &[usize]) -> (usize, usize) {
    match shape.len() {
        0 => (1, 1),
        1 => (shape[0], shape[0]),
        2 => (shape[0], shape[1]),
        r => {
            let receptive: usize = shape[..r - 2].iter().product();
            (shape[r - 2] * receptive, shape[r - 1] * receptive)
        }
    }
}

impl Initializer {
    /// Keras's `RandomNormal()` (mean 0, stddev 0.05).
    pub fn random_normal() -> Self {
        Initializer::RandomNormal { mean: 0.0, stddev: 0.05 }
    }

    /// Keras's `RandomUniform()` (in `[-0.05, 0.05)`).
    pub fn random_uniform() -> Self {
        Initializer::RandomUniform { minval: -0.05, maxval: 0.05 }
    }

    /// Keras's `Orthogonal()` (gain 1; the default recurrent-kernel initializer).
    pub fn orthogonal() -> Self {
        Initializer::Orthogonal { gain: 1.0 }
    }

    /// Look up by Keras name (`"glorot_uniform"`, `"he_normal"`, `"zeros"`, ...), with Keras defaults.
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "glorot_uniform" | "glorotuniform" | "xavier_uniform" => Initializer::GlorotUniform,
            "glorot_normal" | "glorotnormal" | "xavier_normal" => Initializer::GlorotNormal,
            "he_uniform" | "heuniform" => Initializer::HeUniform,
            "he_normal" | "henormal" => Initializer::HeNormal,
            "lecun_uniform" | "lecununiform" => Initializer::LecunUniform,
            "lecun_normal" | "lecunnormal" => Initializer::LecunNormal,
            "zeros" | "zero" => Initializer::Zeros,
            "ones" | "one" => Initializer::Ones,
            "random_normal" | "randomnormal" => Initializer::random_normal(),
            "random_uniform" | "randomuniform" => Initializer::random_uniform(),
            "truncated_normal" | "truncatednormal" => Initializer::TruncatedNormal { mean: 0.0, stddev: 0.05 },
            "orthogonal" => Initializer::orthogonal(),
            _ => return Err(Error::UnknownName { kind: "initializer", name: name.to_string() }),
        })
    }

    /// A new F32 CPU tensor of `shape`, drawn from `rng`.
    pub fn sample(&self, shape: &[usize], rng: &mut Rng) -> Result<Tensor> {
        self.sample_with_fans(shape, compute_fans(shape), rng)
    }

    /// [`Initializer::sample`] with the variance-scaling fans given, `(fan_in, fan_out)`,
    /// rather than [`compute_fans`] of the shape (Keras's `EinsumDense` takes them from its
    /// equation: a `[d, heads, width]` projection has fans `(d, heads * width)`).
    pub fn sample_with_fans(&self, shape: &[usize], fans: (usize, usize), rng: &mut Rng) -> Result<Tensor> {
        let (fan_in, fan_out) = fans;
        let (fan_in, fan_avg) = (fan_in.max(1) as f64, ((fan_in + fan_out) as f64 / 2.0).max(1.0));
        let dev = Device::Cpu;
        let uniform = |limit: f64, rng: &mut Rng| -> Result<Tensor> {
            if limit <= 0.0 {
                return Ok(Tensor::zeros(shape, DType::F32, &dev)?);
            }
            Ok(Tensor::rand_uniform(rng.fork_seed(), -limit, limit, shape, DType::F32, &dev)?)
        };
        match *self {
            Initializer::GlorotUniform => uniform((3.0 / fan_avg).sqrt(), rng),
            Initializer::HeUniform => uniform((6.0 / fan_in).sqrt(), rng),
            Initializer::LecunUniform => uniform((3.0 / fan_in).sqrt(), rng),
            Initializer::GlorotNormal => truncated(shape, 0.0, (1.0 / fan_avg).sqrt() / TRUNC_STD, rng),
            Initializer::HeNormal => truncated(shape, 0.0, (2.0 / fan_in).sqrt() / TRUNC_STD, rng),
            Initializer::LecunNormal => truncated(shape, 0.0, (1.0 / fan_in).sqrt() / TRUNC_STD, rng),
            Initializer::Zeros => Ok(Tensor::zeros(shape, DType::F32, &dev)?),
            Initializer::Ones => Ok(Tensor::ones(shape, DType::F32, &dev)?),
            Initializer::Constant { value } => Ok(Tensor::full(value, shape, DType::F32, &dev)?),
            Initializer::RandomNormal { mean, stddev } => {
                Ok(Tensor::rand_normal(rng.fork_seed(), mean, stddev, shape, DType::F32, &dev)?)
            }
            Initializer::RandomUniform { minval, maxval } => {
                if minval == maxval {
                    return Ok(Tensor::full(minval, shape, DType::F32, &dev)?);
                }
                Ok(Tensor::rand_uniform(rng.fork_seed(), minval, maxval, shape, DType::F32, &dev)?)
            }
            Initializer::TruncatedNormal { mean, stddev } => truncated(shape, mean, stddev, rng),
            Initializer::Orthogonal { gain } => orthogonal(shape, gain, rng),
        }
    }
}

/// Normal samples with `mean`/`std`, each re-drawn until within two std (Box-Muller on `rng`).
fn truncated(shape: &[usize], mean: f64, std: f64, rng: &mut Rng) -> Result<Tensor> {
    if !(std.is_finite() && std >= 0.0 && mean.is_finite()) {
        return Err(Error::config("initializer", format!("need finite mean and std >= 0, got {mean}, {std}")));
    }
    let n = elem_count(shape, "TruncatedNormal")?;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let u1 = 1.0 - rng.next_f64(); // (0, 1]
        let u2 = rng.next_f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        for z in [r * t.cos(), r * t.sin()] {
            if z.abs() <= 2.0 && out.len() < n {
                out.push((mean + std * z) as f32);
            }
        }
    }
    Ok(Tensor::from_vec(out, shape)?)
}

/// Keras's `Orthogonal`: draw a standard normal `[max(r, c), min(r, c)]` matrix
/// (r = product of all but the last dim, c = the last dim), orthonormalise its
/// columns (modified Gram-Schmidt, twice for stability, in f64; this is the Q
/// of a QR with a positive diagonal R, as Keras's sign correction gives),
/// transpose when `r < c`, scale by `gain`.
fn orthogonal(shape: &[usize], gain: f64, rng: &mut Rng) -> Result<Tensor> {
    if shape.len() < 2 {
        return Err(Error::config("initializer", format!("Orthogonal needs a shape of rank >= 2, got {shape:?}")));
    }
    elem_count(shape, "Orthogonal")?;
    let cols = shape[shape.len() - 1];
    let rows: usize = shape[..shape.len() - 1].iter().product();
    let (n, k) = (rows.max(cols), rows.min(cols));
    if n * k == 0 {
        return Ok(Tensor::zeros(shape, DType::F32, &Device::Cpu)?);
    }
    // Column-major: column j is a[j*n .. (j+1)*n].
    let a: Vec<f64> = Tensor::rand_normal(rng.fork_seed(), 0.0, 1.0, [k, n], DType::F64, &Device::Cpu)?.to_vec()?;
    let mut q = a;
    for j in 0..k {
        for _pass in 0..2 {
            for i in 0..j {
                let dot: f64 = (0..n).map(|r| q[i * n + r] * q[j * n + r]).sum();
                for r in 0..n {
                    q[j * n + r] -= dot * q[i * n + r];
                }
            }
        }
        let norm = (0..n).map(|r| q[j * n + r] * q[j * n + r]).sum::<f64>().sqrt();
        if norm <= f64::EPSILON {
            return Err(Error::config("initializer", "Orthogonal: degenerate random matrix"));
        }
        for r in 0..n {
            q[j * n + r] /= norm;
        }
    }
    // Q is n x k (column-major). The result is rows x cols, row-major.
    let mut out = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let v = if rows >= cols { q[c * n + r] } else { q[r * n + c] };
            out[r * cols + c] = (gain * v) as f32;
        }
    }
    Ok(Tensor::from_vec(out, shape)?)
}

impl<'de> Deserialize<'de> for Initializer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let v = serde_json::Value::deserialize(d)?;
        Initializer::from_json(&v).map_err(D::Error::custom)
    }
}

impl Initializer {
    /// An initializer from its Keras JSON forms (see the type).
    fn from_json(v: &serde_json::Value) -> Result<Self> {
        use serde_json::Value;
        let bad = |msg: String| Error::config("initializer", msg);
        let (class, cfg) = match v {
            Value::String(name) => return Initializer::from_name(name),
            Value::Object(m) => match m.get("class_name") {
                Some(Value::String(c)) => (c.as_str(), m.get("config")),
                _ => return Err(bad(format!("an initializer object needs a \"class_name\" string, got {v}"))),
            },
            _ => {
                return Err(bad(format!(
                    "an initializer is a name or {{\"class_name\": .., \"config\": {{..}}}}, got {v}"
                )))
            }
        };
        let cfg = match cfg {
            None | Some(Value::Null) => serde_json::Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => return Err(bad(format!("the config of {class} must be an object, got {other}"))),
        };
        // a number field of the config, or the Keras default
        let num = |key: &str, default: f64| -> Result<f64> {
            match cfg.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(x) => x.as_f64().ok_or_else(|| bad(format!("{class}'s {key} must be a number, got {x}"))),
            }
        };
        if class == "Constant" {
            return Ok(Initializer::Constant { value: num("value", 0.0)? });
        }
        Ok(match Initializer::from_name(class)? {
            Initializer::RandomNormal { .. } => {
                Initializer::RandomNormal { mean: num("mean", 0.0)?, stddev: num("stddev", 0.05)? }
            }
            Initializer::RandomUniform { .. } => {
                Initializer::RandomUniform { minval: num("minval", -0.05)?, maxval: num("maxval", 0.05)? }
            }
            Initializer::TruncatedNormal { .. } => {
                Initializer::TruncatedNormal { mean: num("mean", 0.0)?, stddev: num("stddev", 0.05)? }
            }
            Initializer::Orthogonal { .. } => Initializer::Orthogonal { gain: num("gain", 1.0)? },
            other => other,
        })
    }
}

/// The number of elements of `shape`, or an error when it does not fit in memory (a
/// weight is drawn on the host).
fn elem_count(shape: &[usize], what: &str) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n.checked_mul(std::mem::size_of::<f64>()).is_some_and(|b| b <= isize::MAX as usize))
        .ok_or_else(|| Error::config("initializer", format!("{what}: a weight of shape {shape:?} is too large")))
}

impl std::str::FromStr for Initializer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Initializer::from_name(s)
    }
}
