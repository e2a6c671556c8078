//! A text classification report in scikit-learn's layout.

use crate::error::{MetricsError, Result};
use crate::precision_recall::{precision_recall_fscore_support, Average};

/// Options of [`classification_report_with`] (scikit-learn's keyword arguments).
#[derive(Debug, Clone, Copy)]
pub struct ReportOptions<'a> {
    /// Classes to report, in order (default: the sorted union of `y_true` and `y_pred`).
    pub labels: Option<&'a [i64]>,
    /// Display names, one per reported class (default: the labels as numbers).
    pub target_names: Option<&'a [&'a str]>,
    /// Decimal digits of the scores (default 2).
    pub digits: usize,
    /// One weight per sample (default: all 1).
    pub sample_weight: Option<&'a [f64]>,
}

impl Default for ReportOptions<'_> {
    fn default() -> Self {
        ReportOptions { labels: None, target_names: None, digits: 2, sample_weight: None }
    }
}

/// scikit-learn's `classification_report` with default options and optional class names.
///
/// One row per class (precision, recall, f1-score, support), then the accuracy, macro
/// and weighted averages, formatted exactly as scikit-learn prints them (2 digits).
/// Undefined scores are 0.0 (scikit-learn's `zero_division="warn"` value).
pub fn classification_report(y_true: &[i64], y_pred: &[i64], target_names: Option<&[&str]>) -> Result<String> {
    classification_report_with(y_true, y_pred, &ReportOptions { target_names, ..ReportOptions::default() })
}

fn fmt_support(v: f64, weighted: bool) -> String {
    if weighted {
        // Python prints a float support as its repr (`3.0`, `2.5`, `1e+16`, `1e-05`).
        python_float_repr(v)
    } else {
        format!("{}", v.round() as i64)
    }
}

/// A float as Python's `repr` prints it: the shortest round-trip digits (as Rust's `Debug`, which
/// switches to scientific notation at the same bounds, below 1e-4 and from 1e16), with Python's
/// exponent (sign always, at least two digits) and `nan`.
fn python_float_repr(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    let s = format!("{v:?}");
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp.trim_start_matches('+')),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// scikit-learn's `classification_report` with explicit [`ReportOptions`].
///
/// When `labels` omits a class present in the data, the first average row reads
/// `micro avg` instead of `accuracy`, as in scikit-learn.
pub fn classification_report_with(y_true: &[i64], y_pred: &[i64], opts: &ReportOptions<'_>) -> Result<String> {
    let name = "classification_report";
    let prfs = precision_recall_fscore_support(y_true, y_pred, opts.labels, opts.sample_weight)?;
    let names: Vec<String> = match opts.target_names {
        Some(t) if t.len() == prfs.labels.len() => t.iter().map(|s| s.to_string()).collect(),
        Some(t) => {
            return Err(MetricsError::arg(
                name,
                format!("{} target names for {} classes {:?}", t.len(), prfs.labels.len(), prfs.labels),
            ))
        }
        None => prfs.labels.iter().map(|l| l.to_string()).collect(),
    };
    let present = crate::confusion::unique_labels(y_true, y_pred);
    let micro_is_accuracy = opts.labels.is_none_or(|l| present.iter().all(|p| l.contains(p)));
    let d = opts.digits;
    let heading = "weighted avg";
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0).max(heading.len()).max(d);
    let weighted = opts.sample_weight.is_some();

    let mut out = format!("{:>width$} ", "");
    for h in ["precision", "recall", "f1-score", "support"] {
        out += &format!(" {h:>9}");
    }
    out += "\n\n";
    for (i, n) in names.iter().enumerate() {
        out += &format!(
            "{n:>width$}  {:>9.d$} {:>9.d$} {:>9.d$} {:>9}\n",
            prfs.precision[i],
            prfs.recall[i],
            prfs.f1[i],
            fmt_support(prfs.support[i], weighted)
        );
    }
    out += "\n";
    let total = fmt_support(prfs.support.iter().sum(), weighted);
    for avg in [Average::Micro, Average::Macro, Average::Weighted] {
        let (p, r, f) = prfs.average(avg)?;
        match avg {
            Average::Micro if micro_is_accuracy => {
                out += &format!("{:>width$}  {:>9} {:>9} {f:>9.d$} {total:>9}\n", "accuracy", "", "");
            }
            _ => {
                let h = match avg {
                    Average::Micro => "micro avg",
                    Average::Macro => "macro avg",
                    _ => "weighted avg",
                };
                out += &format!("{h:>width$}  {p:>9.d$} {r:>9.d$} {f:>9.d$} {total:>9}\n");
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::python_float_repr;

    #[test]
    fn float_repr_matches_python() {
        for (v, py) in [
            (3.0, "3.0"),
            (2.5, "2.5"),
            (0.0001, "0.0001"),
            (9.9e-5, "9.9e-05"),
            (1e-5, "1e-05"),
            (1.2345e-100, "1.2345e-100"),
            (9999999999999998.0, "9999999999999998.0"),
            (1e16, "1e+16"),
            (-2.5e20, "-2.5e+20"),
            (1e300, "1e+300"),
            (f64::INFINITY, "inf"),
            (f64::NAN, "nan"),
        ] {
            assert_eq!(python_float_repr(v), py);
        }
    }
}
