//! [`gradcheck`]: compare analytic gradients with central finite differences
//! in float64, for the ops of this crate and for your own.

use crate::{Error, Result, Tape, Var};
use keel_tensor::{DType, Device, Tensor};

/// Settings of [`gradcheck_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradcheckConfig {
    /// Finite-difference step.
    pub eps: f64,
    /// Largest accepted error `|analytic - numeric| / max(1, |analytic|, |numeric|)`.
    pub tolerance: f64,
    /// Seed of the random weights that turn a non-scalar output into a scalar.
    pub seed: u64,
}

impl Default for GradcheckConfig {
    fn default() -> Self {
        GradcheckConfig { eps: 1e-6, tolerance: 1e-6, seed: 0x5eed }
    }
}

/// The outcome of a gradient check: where the analytic and numeric gradients
/// disagree most.
#[derive(Debug, Clone, PartialEq)]
pub struct GradcheckReport {
    /// The worst error `|analytic - numeric| / max(1, |analytic|, |numeric|)`.
    pub max_error: f64,
    /// The input holding the worst element.
    pub input: usize,
    /// The multi-index of the worst element in that input.
    pub index: Vec<usize>,
    /// The analytic derivative there.
    pub analytic: f64,
    /// The finite-difference derivative there.
    pub numeric: f64,
    /// How many elements were checked.
    pub checked: usize,
    /// The tolerance the check ran with.
    pub tolerance: f64,
}

impl std::fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "worst error {:.3e} (tolerance {:.1e}) at input {} index {:?}: analytic {:.9e} vs numeric {:.9e} ({} elements checked)",
            self.max_error, self.tolerance, self.input, self.index, self.analytic, self.numeric, self.checked
        )
    }
}

/// [`gradcheck_with`] with the default settings (eps 1e-6, tolerance 1e-6).
pub fn gradcheck<F>(f: F, inputs: &[Tensor]) -> Result<GradcheckReport>
where
    F: Fn(&[Var]) -> Result<Var>,
{
    gradcheck_with(f, inputs, &GradcheckConfig::default())
}

/// Check the gradient of `f` at `inputs` (F64 tensors, possibly
/// non-contiguous views) against central finite differences.
///
/// The inputs may live on any one device: on a GPU both passes run there, so the check
/// covers that backend's kernels (forward and backward) in f64.
///
/// `f` receives the inputs as Vars (tracked on a tape for the analytic pass,
/// constants for the numeric passes) and returns a Var; a non-scalar output is
/// reduced to `sum(out * r)` with fixed random weights `r`, so every output
/// element is checked. Returns the report when the worst error is within the
/// tolerance, else [`Error::GradcheckFailed`] carrying it.
pub fn gradcheck_with<F>(f: F, inputs: &[Tensor], cfg: &GradcheckConfig) -> Result<GradcheckReport>
where
    F: Fn(&[Var]) -> Result<Var>,
{
    if let Some(bad) = inputs.iter().find(|t| t.dtype() != DType::F64) {
        return Err(Error::invalid("gradcheck", format!("inputs must be F64, got {}", bad.dtype())));
    }
    let device = inputs.first().map_or(Device::Cpu, |t| t.device());
    if let Some(bad) = inputs.iter().find(|t| t.device() != device) {
        return Err(Error::invalid(
            "gradcheck",
            format!("inputs must share one device, got {device} and {}; move them with to_device", bad.device()),
        ));
    }
    // Analytic pass.
    let tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
    let out = f(&vars)?;
    if out.dtype() != DType::F64 {
        return Err(Error::invalid("gradcheck", format!("f must return an F64 value, got {}", out.dtype())));
    }
    let weights = if out.elem_count() == 1 {
        None
    } else {
        Some(Tensor::rand_normal(cfg.seed, 0.0, 1.0, out.shape().clone(), DType::F64, &device)?)
    };
    let analytic: Vec<Vec<f64>> = if out.is_tracked() && out.tape_id() == Some(tape.id()) {
        let seed = match &weights {
            Some(w) => w.clone(),
            None => out.value().ones_like()?,
        };
        let grads = tape.backward_with(&out, seed)?;
        vars.iter()
            .map(|v| match grads.get_var(v) {
                Some(g) => Ok(g.to_vec::<f64>()?),
                None => Ok(vec![0.0; v.elem_count()]),
            })
            .collect::<Result<_>>()?
    } else {
        vars.iter().map(|v| vec![0.0; v.elem_count()]).collect()
    };
    drop(vars);

    // Numeric pass: f on constants, projected to a scalar.
    let project = |xs: &[Var]| -> Result<f64> {
        let y = f(xs)?;
        let y = match &weights {
            Some(w) => y.value().mul(w)?.sum_all()?,
            None => y.value().sum_all()?,
        };
        Ok(y.to_scalar::<f64>()?)
    };
    let mut consts: Vec<Var> = inputs.iter().map(|t| Var::constant(t.clone())).collect();
    let mut report = GradcheckReport {
        max_error: 0.0,
        input: 0,
        index: Vec::new(),
        analytic: 0.0,
        numeric: 0.0,
        checked: 0,
        tolerance: cfg.tolerance,
    };
    for (j, x) in inputs.iter().enumerate() {
        let base = x.to_vec::<f64>()?;
        let mut probe = base.clone();
        for i in 0..base.len() {
            let on_device = |v: &[f64]| Tensor::from_slice(v, x.shape().clone())?.to_device(&device);
            probe[i] = base[i] + cfg.eps;
            consts[j] = Var::constant(on_device(&probe)?);
            let fp = project(&consts)?;
            probe[i] = base[i] - cfg.eps;
            consts[j] = Var::constant(on_device(&probe)?);
            let fm = project(&consts)?;
            probe[i] = base[i];
            let numeric = (fp - fm) / (2.0 * cfg.eps);
            let a = analytic[j][i];
            let err = (a - numeric).abs() / 1f64.max(a.abs()).max(numeric.abs());
            report.checked += 1;
            if err > report.max_error || err.is_nan() || report.checked == 1 {
                report.max_error = if err.is_nan() { f64::INFINITY } else { err };
                report.input = j;
                report.index = unravel(i, x.dims());
                report.analytic = a;
                report.numeric = numeric;
            }
        }
        consts[j] = Var::constant(x.clone());
    }
    if report.max_error > cfg.tolerance {
        return Err(Error::GradcheckFailed(Box::new(report)));
    }
    Ok(report)
}

/// The multi-index of flat (row-major) index `i` in `dims`.
fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for (k, &d) in dims.iter().enumerate().rev() {
        if d > 0 {
            idx[k] = i % d;
            i /= d;
        }
    }
    idx
}
