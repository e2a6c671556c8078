//! [`CSVLogger`]: append each epoch's logs to a CSV file.

use super::{Callback, CallbackContext, Logs};
use crate::{Error, Result};
use std::io::Write;
use std::path::PathBuf;

/// Write one row per epoch (`epoch` then every log, columns in name order, as Keras does).
///
/// The header is written when the file is new or empty (or `append` is off, in
/// which case the file is truncated at the start of training). Each row is
/// flushed as soon as it is written, so the file is readable during training.
pub struct CSVLogger {
    path: PathBuf,
    separator: String,
    append: bool,
    keys: Option<Vec<String>>,
    write_header: bool,
    file: Option<std::fs::File>,
}

impl CSVLogger {
    /// Log to `filename` with `,` separators, overwriting it.
    pub fn new(filename: impl Into<PathBuf>) -> Self {
        CSVLogger {
            path: filename.into(),
            separator: ",".into(),
            append: false,
            keys: None,
            write_header: true,
            file: None,
        }
    }

    /// The column separator.
    pub fn separator(mut self, sep: impl Into<String>) -> Self {
        self.separator = sep.into();
        self
    }

    /// Append to an existing file (no second header) instead of overwriting it.
    pub fn append(mut self, yes: bool) -> Self {
        self.append = yes;
        self
    }
}

impl Callback for CSVLogger {
    fn on_train_begin(&mut self, _ctx: &mut CallbackContext<'_>) -> Result<()> {
        let existing = std::fs::metadata(&self.path).map(|m| m.len() > 0).unwrap_or(false);
        self.write_header = !(self.append && existing);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(self.append)
            .truncate(!self.append)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        self.file = Some(file);
        self.keys = None;
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, _ctx: &mut CallbackContext<'_>) -> Result<()> {
        let Some(file) = self.file.as_mut() else { return Ok(()) };
        let keys = self.keys.get_or_insert_with(|| {
            let mut k: Vec<String> = logs.iter().map(|(k, _)| k.to_string()).collect();
            k.sort();
            k
        });
        let mut out = String::new();
        if self.write_header {
            out.push_str("epoch");
            for k in keys.iter() {
                out.push_str(&self.separator);
                out.push_str(k);
            }
            out.push('\n');
            self.write_header = false;
        }
        out.push_str(&epoch.to_string());
        for k in keys.iter() {
            out.push_str(&self.separator);
            match logs.get(k) {
                Some(v) if v.is_nan() => out.push_str("nan"),
                Some(v) if v.is_infinite() => out.push_str(if v > 0.0 { "inf" } else { "-inf" }),
                Some(v) => out.push_str(&v.to_string()),
                None => out.push_str("NA"),
            }
        }
        out.push('\n');
        file.write_all(out.as_bytes()).map_err(|e| Error::io(&self.path, e))?;
        file.flush().map_err(|e| Error::io(&self.path, e))?;
        Ok(())
    }

    fn on_train_end(&mut self, _ctx: &mut CallbackContext<'_>) -> Result<()> {
        if let Some(f) = self.file.take() {
            f.sync_all().map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }
}
