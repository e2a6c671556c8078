//! [`Discretization`]: continuous values to bucket ids by bin boundaries, given or learned
//! as quantiles by `adapt` (Keras's preprocessing layer).

use super::categorical::{
    categorical_layer_common, check_batch, encoded_sample_shape, ids_output, rank_error, who, OutputMode,
};
use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer};
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

/// The hyper-parameters of [`Discretization`] (its Keras config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscretizationConfig {
    /// The sorted bin boundaries: `[0, 1, 2]` makes the bins `(-inf, 0)`, `[0, 1)`, `[1, 2)` and
    /// `[2, inf)`. Given, or learned by `adapt` (then saved here with `num_bins`).
    #[serde(default)]
    pub bin_boundaries: Option<Vec<f64>>,
    /// How many bins `adapt` learns (set instead of `bin_boundaries`).
    #[serde(default)]
    pub num_bins: Option<usize>,
    /// The quantile approximation's tolerance for `adapt` (Keras's default 0.01).
    #[serde(default = "default_epsilon")]
    pub epsilon: f64,
    /// Bucket ids (`int`, I64) or their encoding (F32).
    #[serde(default = "default_mode")]
    pub output_mode: OutputMode,
    /// Keras's sparse outputs: keel has none (`true` is refused).
    #[serde(default)]
    pub sparse: bool,
}

fn default_epsilon() -> f64 {
    0.01
}

fn default_mode() -> OutputMode {
    OutputMode::Int
}

/// Keras's `Discretization`: each value (any dtype, compared as F32 as Keras does) to the index
/// of its bin, the number of boundaries `<=` it (`numpy.digitize`; NaN goes to the last bin),
/// as I64 in [`OutputMode::Int`] (Keras gives int32; keel has no I32), or encoded (F32, as
/// [`CategoryEncoding`](crate::CategoryEncoding) with `len(bin_boundaries) + 1` classes).
///
/// The boundaries are given ([`Discretization::new`]) or learned from data by
/// [`Discretization::adapt`] on a layer made with [`Discretization::adaptive`], with Keras
/// 3's approximate-quantile algorithm step for step, so the boundaries are Keras's own (its
/// quirks included: `num_bins = 49` gives 49 boundaries, as `ceil(1 / (1 / 49)) = 50`).
/// Not differentiable; computed on the host, the output on the input's device.
///
/// ```
/// use keel_nn::{Ctx, Discretization, Layer};
/// use keel_autograd::Var;
/// use keel_tensor::Tensor;
/// let layer = Discretization::new(vec![0.0, 1.0, 2.0]);
/// let x = Tensor::from_vec(vec![-1.5f32, 1.0, 3.4, 0.5], (1, 4))?;
/// let y = layer.forward(&Var::constant(x), &mut Ctx::inference())?;
/// assert_eq!(y.value().to_vec::<i64>()?, vec![0, 2, 3, 1]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Discretization {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: DiscretizationConfig,
    built: bool,
}

common_builders!(Discretization);

impl Discretization {
    /// Bins with these (sorted) boundaries.
    pub fn new(bin_boundaries: Vec<f64>) -> Self {
        Self::from_config(DiscretizationConfig {
            bin_boundaries: Some(bin_boundaries),
            num_bins: None,
            epsilon: default_epsilon(),
            output_mode: OutputMode::Int,
            sparse: false,
        })
    }

    /// `num_bins` bins whose boundaries [`Discretization::adapt`] learns.
    pub fn adaptive(num_bins: usize) -> Self {
        Self::from_config(DiscretizationConfig {
            bin_boundaries: None,
            num_bins: Some(num_bins),
            epsilon: default_epsilon(),
            output_mode: OutputMode::Int,
            sparse: false,
        })
    }

    /// A layer from its config.
    pub fn from_config(cfg: DiscretizationConfig) -> Self {
        Discretization { name: String::new(), input_shape: None, cfg, built: false }
    }

    /// The quantile tolerance of `adapt` (Keras's `epsilon`, default 0.01).
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.cfg.epsilon = epsilon;
        self
    }

    /// Output bucket ids ([`OutputMode::Int`], the default) or their encoding.
    pub fn output_mode(mut self, mode: OutputMode) -> Self {
        self.cfg.output_mode = mode;
        self
    }

    /// The config.
    pub fn get_config(&self) -> &DiscretizationConfig {
        &self.cfg
    }

    /// The bin boundaries (None before `adapt` on an adaptive layer).
    pub fn bin_boundaries(&self) -> Option<&[f64]> {
        self.cfg.bin_boundaries.as_deref()
    }

    fn who(&self) -> String {
        who(&self.name, "Discretization")
    }

    fn check(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::config(self.who(), msg));
        if self.cfg.sparse {
            return bad("sparse outputs are not supported (sparse must be false)".into());
        }
        if !(self.cfg.epsilon > 0.0 && self.cfg.epsilon <= 1.0) {
            return bad(format!("epsilon must be in (0, 1], got {}", self.cfg.epsilon));
        }
        match (&self.cfg.bin_boundaries, self.cfg.num_bins) {
            (None, None) => return bad("set either bin_boundaries or num_bins (and call adapt)".into()),
            (None, Some(0)) => return bad("num_bins must be >= 1".into()),
            _ => {}
        }
        if let Some(b) = &self.cfg.bin_boundaries {
            if let Some(v) = b.iter().find(|v| v.is_nan()) {
                return bad(format!("bin_boundaries hold {v}"));
            }
            if let Some(w) = b.windows(2).find(|w| w[0] > w[1]) {
                return bad(format!("bin_boundaries must be sorted ascending, got {} before {}", w[0], w[1]));
            }
        }
        Ok(())
    }

    /// The number of bins: `len(bin_boundaries) + 1`, or `num_bins` before `adapt`.
    fn depth(&self) -> usize {
        match (&self.cfg.bin_boundaries, self.cfg.num_bins) {
            (Some(b), _) => b.len() + 1,
            (None, n) => n.unwrap_or(1),
        }
    }

    /// Learn `num_bins` bins of about equal counts from `data` (every element, any shape), as
    /// Keras's `adapt`: the boundaries are the quantiles of Keras's summary algorithm (a sorted
    /// sample every `len / (1 / epsilon)` values, compressed to `1 / epsilon` and then to
    /// `num_bins` points by linear interpolation of the cumulative weights), in F32 as Keras
    /// computes them. A layer made with boundaries, empty data, or NaN in it, is an error.
    pub fn adapt(&mut self, data: &Tensor) -> Result<()> {
        let Some(num_bins) = self.cfg.num_bins else {
            return Err(Error::config(
                self.who(),
                "adapt needs a layer made with num_bins (Discretization::adaptive), not bin_boundaries",
            ));
        };
        self.check()?;
        let values = data.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.to_vec::<f32>()?;
        if values.is_empty() {
            return Err(Error::config(self.who(), format!("adapt needs data, got shape {}", data.shape())));
        }
        if let Some(v) = values.iter().find(|v| v.is_nan()) {
            return Err(Error::config(self.who(), format!("adapt data holds {v}")));
        }
        let b = quantile_boundaries(values, num_bins, self.cfg.epsilon);
        self.cfg.bin_boundaries = Some(b.into_iter().map(f64::from).collect());
        Ok(())
    }
}

/// Keras 3's `Discretization` adapt on one batch: `summarize`, `merge_summaries` with the empty
/// summary, then `get_bin_boundaries` (see `keras/src/layers/preprocessing/discretization.py`),
/// with NumPy's dtypes: F32 data and weights, F32 cumulative sums, F64 interpolation.
fn quantile_boundaries(mut values: Vec<f32>, num_bins: usize, epsilon: f64) -> Vec<f32> {
    values.sort_by(f32::total_cmp);
    // summarize: every `step`-th sorted value from `step - 1`, each weighing `step`
    let step = (values.len() as f64 / (1.0 / epsilon)).max(1.0);
    let (start, stride) = ((step - 1.0) as usize, step as usize);
    let picked: Vec<f32> = values.iter().skip(start).step_by(stride.max(1)).copied().collect();
    let weights = vec![step as f32; picked.len()];
    // merging with the empty summary sorts it again (no change: the weights are all equal)
    let (v, w) = compress(picked, weights, epsilon);
    let (mut b, _) = compress(v, w, 1.0 / num_bins as f64);
    b.pop();
    b
}

/// Keras's `compress_summary`: the summary interpolated at the cumulative-weight fractions
/// `epsilon, 2 epsilon, ...` (unchanged when it has fewer than `1 / epsilon` points).
fn compress(values: Vec<f32>, weights: Vec<f32>, epsilon: f64) -> (Vec<f32>, Vec<f32>) {
    if (values.len() as f64) * epsilon < 1.0 || values.is_empty() {
        return (values, weights);
    }
    // np.arange(0.0, 1.0, epsilon): ceil(1 / epsilon) points i * epsilon
    let n = (1.0 / epsilon).ceil() as usize;
    let percents: Vec<f64> = (0..n).map(|i| epsilon + i as f64 * epsilon).collect();
    let mut cum = Vec::with_capacity(weights.len());
    let mut acc = 0.0f32;
    for w in &weights {
        acc += w;
        cum.push(acc);
    }
    let total = acc;
    let cum_pct: Vec<f64> = cum.iter().map(|c| f64::from(c / total)).collect();
    let xs: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
    let cums: Vec<f64> = cum.iter().map(|&c| f64::from(c)).collect();
    let new_bins = interp(&percents, &cum_pct, &xs);
    let new_cum = interp(&percents, &cum_pct, &cums);
    let new_weights: Vec<f32> =
        new_cum.iter().enumerate().map(|(i, c)| (c - if i == 0 { 0.0 } else { new_cum[i - 1] }) as f32).collect();
    (new_bins.into_iter().map(|v| v as f32).collect(), new_weights)
}

/// `numpy.interp(x, xp, fp)` as NumPy computes it (`xp` ascending, not empty).
fn interp(x: &[f64], xp: &[f64], fp: &[f64]) -> Vec<f64> {
    let last = xp.len() - 1;
    x.iter()
        .map(|&v| {
            if v > xp[last] {
                return fp[last];
            }
            if v < xp[0] {
                return fp[0];
            }
            // the last j with xp[j] <= v
            let j = xp.partition_point(|&p| p <= v) - 1;
            if j == last || xp[j] == v {
                return fp[j];
            }
            let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
            let y = slope * (v - xp[j]) + fp[j];
            if y.is_nan() {
                let y = slope * (v - xp[j + 1]) + fp[j + 1];
                if y.is_nan() && fp[j] == fp[j + 1] {
                    return fp[j];
                }
                return y;
            }
            y
        })
        .collect()
}

impl Layer for Discretization {
    layer_common!("Discretization");
    categorical_layer_common!(check);

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let mode = self.cfg.output_mode;
        encoded_sample_shape(input_shape, mode, self.depth())
            .ok_or_else(|| rank_error(&self.name, "Discretization", mode, input_shape))
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        self.check()?;
        let Some(bounds) = &self.cfg.bin_boundaries else {
            return Err(Error::config(
                self.who(),
                "the layer has no bin boundaries yet: call adapt(data) first (or make it with bin_boundaries)",
            ));
        };
        check_batch(x, &self.name, "Discretization")?;
        self.output_shape(&x.dims()[1..])?;
        // compared in F32, as Keras (its input dtype is float32, its boundaries cast to it)
        let b32: Vec<f32> = bounds.iter().map(|&b| b as f32).collect();
        let values = x.value().to_dtype(DType::F32)?.to_vec::<f32>()?;
        // numpy.digitize / TF Bucketize: the first boundary above the value (NaN: past the end)
        let ids: Vec<i64> = values.iter().map(|&v| b32.partition_point(|&b| b <= v || v.is_nan()) as i64).collect();
        ids_output(ids, x, self.cfg.output_mode, b32.len() + 1, &self.who(), ctx)
    }

    fn config(&self) -> serde_json::Value {
        with_name(&self.name, serde_json::to_value(&self.cfg).unwrap_or_default())
    }
}
