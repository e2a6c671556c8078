//! Keras-style progress output for `fit` and `evaluate`.
//!
//! `verbose = 1`: a live bar while the epoch runs (drawn with `indicatif` on a
//! terminal, hidden otherwise), then the Keras epoch line
//! `250/250 [==============================] - 2s 8ms/step - loss: 0.0812 - accuracy: 0.9734`.
//! `verbose = 2`: only the epoch line, without the bar (`250/250 - 2s - loss: ...`).
//! `verbose = 0`: silent.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::{Duration, Instant};

/// Format `(name, value)` pairs the way Keras does: ` - loss: 0.0812 - accuracy: 0.9734`.
pub fn format_logs(logs: &[(String, f64)]) -> String {
    logs.iter().map(|(k, v)| format!(" - {k}: {}", format_value(*v))).collect()
}

/// As Keras's progress bar prints a value: four decimals above 1e-3 in magnitude, else
/// Python's `.4e` (`1.2340e-05`, `0.0000e+00`); `nan`, `inf` as Python.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v.abs() > 1e-3 {
        return format!("{v:.4}");
    }
    python_exponent(format!("{v:.4e}"))
}

/// Rust's `e` notation (`1.2340e-5`) as Python writes it (`1.2340e-05`: a sign and at
/// least two exponent digits).
pub(crate) fn python_exponent(s: String) -> String {
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = e.strip_prefix('-').map_or(('+', e), |d| ('-', d));
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// `2s 8ms/step`, `0s 950us/step`, as Keras prints an epoch's time.
pub fn format_time(total: Duration, steps: usize) -> String {
    let per = total.as_secs_f64() / steps.max(1) as f64;
    let per_s = if per >= 1.0 {
        format!("{per:.0}s/step")
    } else if per >= 1e-3 {
        format!("{:.0}ms/step", per * 1e3)
    } else {
        format!("{:.0}us/step", per * 1e6)
    };
    format!("{:.0}s {per_s}", total.as_secs_f64().floor())
}

/// The progress display of one epoch (or one evaluation pass).
pub struct Progress {
    verbose: u8,
    steps: usize,
    start: Instant,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Start a display for `steps` batches.
    pub fn new(verbose: u8, steps: usize) -> Progress {
        let bar = (verbose == 1).then(|| {
            let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{pos}/{len} [{bar:30}] - {elapsed} {msg}")
                .map(|s| s.progress_chars("=>."))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Progress { verbose, steps, start: Instant::now(), bar }
    }

    /// Record that `step` batches are done, with the running logs.
    pub fn update(&self, step: usize, logs: &[(String, f64)]) {
        if let Some(bar) = &self.bar {
            bar.set_position(step as u64);
            bar.set_message(format_logs(logs));
        }
    }

    /// Finish the epoch: print the final Keras line with `logs`.
    pub fn finish(self, logs: &[(String, f64)]) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let elapsed = self.start.elapsed();
        match self.verbose {
            0 => {}
            1 => println!(
                "{n}/{n} [{bar}] - {t}{logs}",
                n = self.steps,
                bar = "=".repeat(30),
                t = format_time(elapsed, self.steps),
                logs = format_logs(logs)
            ),
            _ => {
                println!("{n}/{n} - {t:.0}s{logs}", n = self.steps, t = elapsed.as_secs_f64(), logs = format_logs(logs))
            }
        }
    }

    /// Seconds since the display started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras_formats() {
        let logs = vec![("loss".to_string(), 0.08123), ("accuracy".to_string(), 0.97341)];
        assert_eq!(format_logs(&logs), " - loss: 0.0812 - accuracy: 0.9734");
        assert_eq!(format_value(0.00001234), "1.2340e-05");
        assert_eq!(format_value(0.0), "0.0000e+00");
        assert_eq!(format_value(-0.001), "-1.0000e-03");
        assert_eq!(format_value(0.0011), "0.0011");
        assert_eq!(format_value(f64::NAN), "nan");
        assert_eq!(format_value(1e-120), "1.0000e-120");
        assert_eq!(format_time(Duration::from_millis(2100), 250), "2s 8ms/step");
        assert_eq!(format_time(Duration::from_micros(95000), 100), "0s 950us/step");
    }
}
