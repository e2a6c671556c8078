//! [`ModelCheckpoint`]: save the model (or its weights) at the end of epochs.

use super::{Callback, CallbackContext, Logs, Mode};
use crate::{Error, Result};
use std::path::PathBuf;

/// Save at the end of every epoch, or only when `monitor` improves (`save_best_only`;
/// the best value carries over to later `fit` calls with the same callback, as in Keras).
///
/// `filepath` may hold Keras-style fields filled from the epoch (1-based, as
/// Keras prints it) and the logs: `"ckpt-{epoch:02d}-{val_loss:.4f}.keel"`.
/// With `save_weights_only` the weights are written in safetensors layout
/// ([`keel_nn::Network::save_weights`]); otherwise a full training
/// [`crate::Checkpoint`] (config, weights, optimizer state, epoch, seed and
/// history) that [`crate::load_model`] reads and
/// [`crate::KerasModel::load_checkpoint`] resumes from. Every write is atomic.
pub struct ModelCheckpoint {
    filepath: String,
    monitor: String,
    save_best_only: bool,
    save_weights_only: bool,
    mode: Mode,
    initial_value_threshold: Option<f64>,
    verbose: bool,
    maximize: bool,
    best: f64,
    /// Whether `best` holds a value from an earlier `fit` (it carries over, as in Keras).
    started: bool,
    saved: Vec<PathBuf>,
}

impl ModelCheckpoint {
    /// Save to `filepath` every epoch, monitoring `"val_loss"` (Keras's defaults).
    pub fn new(filepath: impl Into<String>) -> Self {
        ModelCheckpoint {
            filepath: filepath.into(),
            monitor: "val_loss".into(),
            save_best_only: false,
            save_weights_only: false,
            mode: Mode::Auto,
            initial_value_threshold: None,
            verbose: false,
            maximize: false,
            best: f64::INFINITY,
            started: false,
            saved: Vec::new(),
        }
    }

    /// The log to watch for `save_best_only`.
    pub fn monitor(mut self, name: impl Into<String>) -> Self {
        self.monitor = name.into();
        self
    }

    /// Save only when `monitor` is better than every earlier epoch.
    pub fn save_best_only(mut self, yes: bool) -> Self {
        self.save_best_only = yes;
        self
    }

    /// Save the weights alone (safetensors) instead of a full checkpoint.
    pub fn save_weights_only(mut self, yes: bool) -> Self {
        self.save_weights_only = yes;
        self
    }

    /// Whether lower or higher is better.
    pub fn mode(mut self, m: Mode) -> Self {
        self.mode = m;
        self
    }

    /// With `save_best_only`, the value the first save must beat.
    pub fn initial_value_threshold(mut self, v: f64) -> Self {
        self.initial_value_threshold = Some(v);
        self
    }

    /// Print a line for every save.
    pub fn verbose(mut self, yes: bool) -> Self {
        self.verbose = yes;
        self
    }

    /// Every path written so far, in order.
    pub fn saved_paths(&self) -> &[PathBuf] {
        &self.saved
    }

    /// The best monitored value seen (±inf before any).
    pub fn best(&self) -> f64 {
        self.best
    }

    /// The path for `epoch` (0-based) and `logs`.
    pub fn file_path(&self, epoch: usize, logs: &Logs) -> Result<PathBuf> {
        format_path(&self.filepath, epoch + 1, logs).map(PathBuf::from)
    }
}

impl Callback for ModelCheckpoint {
    fn on_train_begin(&mut self, _ctx: &mut CallbackContext<'_>) -> Result<()> {
        // the best value carries over to a later `fit` with the same callback, as Keras's
        // does: a worse model does not replace the best file when training goes on
        if !self.started {
            self.maximize = self.mode.maximizes(&self.monitor);
            self.best =
                self.initial_value_threshold.unwrap_or(if self.maximize { f64::NEG_INFINITY } else { f64::INFINITY });
            self.started = true;
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, ctx: &mut CallbackContext<'_>) -> Result<()> {
        if self.save_best_only {
            let Some(current) = logs.get(&self.monitor) else {
                eprintln!("ModelCheckpoint: can save best model only with \"{}\" available, skipping", self.monitor);
                return Ok(());
            };
            let better = if self.maximize { current > self.best } else { current < self.best };
            if !better {
                if self.verbose {
                    println!("Epoch {}: {} did not improve from {:.5}", epoch + 1, self.monitor, self.best);
                }
                return Ok(());
            }
            if self.verbose {
                println!("Epoch {}: {} improved from {:.5} to {current:.5}", epoch + 1, self.monitor, self.best);
            }
            self.best = current;
        }
        let path = self.file_path(epoch, logs)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        if self.save_weights_only {
            ctx.save_weights(&path)?;
        } else {
            ctx.save_checkpoint(&path, epoch, logs)?;
        }
        if self.verbose {
            println!("Epoch {}: saving model to {}", epoch + 1, path.display());
        }
        self.saved.push(path);
        Ok(())
    }
}

/// Fill `{epoch}`, `{epoch:02d}`, `{val_loss:.4f}`, ... in `template` (Python `str.format` style).
pub(crate) fn format_path(template: &str, epoch: usize, logs: &Logs) -> Result<String> {
    let bad = |m: String| Error::invalid("ModelCheckpoint", m);
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open].replace("}}", "}"));
        let after = &rest[open + 1..];
        if let Some(stripped) = after.strip_prefix('{') {
            out.push('{');
            rest = stripped;
            continue;
        }
        let close = after.find('}').ok_or_else(|| bad(format!("unclosed '{{' in filepath \"{template}\"")))?;
        let field = &after[..close];
        let (name, spec) = field.split_once(':').unwrap_or((field, ""));
        let value = if name == "epoch" {
            epoch as f64
        } else {
            logs.get(name).ok_or_else(|| {
                bad(format!(
                    "filepath field \"{name}\" is not \"epoch\" or a log (logs: {})",
                    logs.iter().map(|(k, _)| k).collect::<Vec<_>>().join(", ")
                ))
            })?
        };
        out.push_str(&format_value(value, spec, name == "epoch").map_err(bad)?);
        rest = &after[close + 1..];
    }
    out.push_str(&rest.replace("}}", "}"));
    Ok(out)
}

/// One field: `02d` (zero-padded integer), `.4f` (fixed), `.3e` (scientific) or nothing.
fn format_value(v: f64, spec: &str, integer: bool) -> std::result::Result<String, String> {
    if spec.is_empty() {
        return Ok(if integer { format!("{}", v as i64) } else { v.to_string() });
    }
    let unsupported = || format!("unsupported format spec \":{spec}\" (use d, .Nf, .Ne, .Ng or .N)");
    // the kind is the last character (any character: the spec is user text)
    let Some((cut, _)) = spec.char_indices().next_back() else { return Err(unsupported()) };
    let (body, kind) = spec.split_at(cut);
    // a width or precision beyond any file name's length is a mistake
    const MAX_WIDTH: usize = 255;
    let num = |s: &str| match s.parse::<usize>() {
        Ok(n) if n <= MAX_WIDTH => Ok(n),
        Ok(_) => Err(format!("format spec \":{spec}\": widths and precisions above {MAX_WIDTH} are not supported")),
        Err(_) => Err(unsupported()),
    };
    // Python's spec with no type letter: a width for an integer (`{epoch:03}`), a
    // precision in significant digits for a float (`{val_loss:.2}`, "g" keeping a ".0")
    if spec.bytes().all(|b| b.is_ascii_digit()) && integer {
        return format_value(v, &format!("{spec}d"), true);
    }
    if let Some(p) = spec.strip_prefix('.').filter(|p| p.bytes().all(|b| b.is_ascii_digit())) {
        if !p.is_empty() {
            return Ok(general(v, num(p)?.max(1), true));
        }
    }
    match kind {
        "g" => {
            let prec = match body.strip_prefix('.') {
                Some(p) => num(p)?.max(1),
                None if body.is_empty() => 6,
                None => return Err(unsupported()),
            };
            Ok(general(v, prec, false))
        }
        "d" => {
            let zero = body.starts_with('0');
            let width = if body.is_empty() { 0 } else { num(body)? };
            Ok(if zero { format!("{:0width$}", v as i64) } else { format!("{:width$}", v as i64) })
        }
        "f" | "e" => {
            let prec = match body.strip_prefix('.') {
                Some(p) => num(p)?,
                None if body.is_empty() => 6,
                None => return Err(unsupported()),
            };
            Ok(if kind == "f" {
                format!("{v:.prec$}")
            } else {
                crate::progress::python_exponent(format!("{v:.prec$e}"))
            })
        }
        _ => Err(unsupported()),
    }
}

/// Python's general format of `v` with `prec` significant digits (`"g"`; with
/// `keep_point`, the no-type form, whose fixed notation keeps one decimal: `1.0`).
fn general(v: f64, prec: usize, keep_point: bool) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "nan".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    // the exponent after rounding to `prec` digits (Rust's e-format rounds as Python's)
    let sci = format!("{v:.*e}", prec - 1);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if exp < -4 || exp >= prec as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        let fixed = trim(&format!("{v:.decimals$}"));
        if keep_point && !fixed.contains('.') {
            format!("{fixed}.0")
        } else {
            fixed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_specs_without_a_type_and_g() {
        let logs = Logs::from(vec![("val_loss".to_string(), 0.123456), ("big".to_string(), 12345.0)]);
        assert_eq!(format_path("m-{epoch:03}.keel", 5, &logs).unwrap(), "m-005.keel");
        assert_eq!(format_path("m-{val_loss:.2}.keel", 4, &logs).unwrap(), "m-0.12.keel");
        // Python: format(12345.0, '.2') == '1.2e+04', format(1.0, '.3') == '1.0',
        // format(0.5, '.3g') == '0.5', format(1e-5, '.2g') == '1e-05', format(2.0, 'g') == '2'
        assert_eq!(format_path("{big:.2}", 0, &logs).unwrap(), "1.2e+04");
        assert_eq!(general(1.0, 3, true), "1.0");
        assert_eq!(general(0.5, 3, false), "0.5");
        assert_eq!(general(1e-5, 2, false), "1e-05");
        assert_eq!(general(2.0, 6, false), "2");
        assert_eq!(general(0.000123456, 3, false), "0.000123");
        assert_eq!(general(9.99, 2, false), "10");
        assert_eq!(general(-123456789.0, 4, true), "-1.235e+08");
        // Python: format(0.0001234, '.2e') == '1.23e-04'
        assert_eq!(
            format_path("{val_loss:.2e}", 0, &Logs::from(vec![("val_loss".to_string(), 0.0001234)])).unwrap(),
            "1.23e-04"
        );
    }

    #[test]
    fn keras_style_paths() {
        let logs = Logs::from(vec![("val_loss".to_string(), 0.123456)]);
        assert_eq!(format_path("m-{epoch:02d}-{val_loss:.2f}.keel", 3, &logs).unwrap(), "m-03-0.12.keel");
        assert_eq!(format_path("m-{epoch}.keel", 12, &logs).unwrap(), "m-12.keel");
        assert_eq!(format_path("{{x}}-{epoch:3d}", 7, &logs).unwrap(), "{x}-  7");
        assert!(format_path("m-{acc}.keel", 1, &logs).is_err());
        assert!(format_path("m-{epoch", 1, &logs).is_err());
        // user text that is not a spec we know is an error, never a panic
        for bad in
            ["m-{epoch:é}", "m-{val_loss:.2€}", "m-{epoch:070000d}", "m-{epoch:99999999999d}", "m-{val_loss:.99999f}"]
        {
            assert!(format_path(bad, 3, &logs).is_err(), "{bad}");
        }
        assert_eq!(format_path("m-{epoch:255d}", 3, &logs).unwrap().len(), 2 + 255);
    }
}
