//! [`History`]: the per-epoch logs `fit` returns (Keras's `History.history`).

use std::collections::BTreeMap;

/// Per-epoch values of the loss and every metric, train and validation
/// (`"loss"`, `"accuracy"`, `"val_loss"`, `"val_accuracy"`, ...).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct History {
    /// The epochs run (0-based, as Keras's `history.epoch`).
    pub epoch: Vec<usize>,
    /// Values by log name, one per epoch.
    pub history: BTreeMap<String, Vec<f64>>,
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// Append one epoch's logs.
    pub fn push(&mut self, epoch: usize, logs: &[(String, f64)]) {
        self.epoch.push(epoch);
        for (k, v) in logs {
            self.history.entry(k.clone()).or_default().push(*v);
        }
    }

    /// The values of one log (`"loss"`, `"val_accuracy"`, ...), if recorded.
    pub fn get(&self, name: &str) -> Option<&[f64]> {
        self.history.get(name).map(Vec::as_slice)
    }

    /// The last value of one log.
    pub fn last(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(|v| v.last().copied())
    }

    /// The names of every recorded log.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.history.keys().map(String::as_str)
    }

    /// Append the epochs of `other` (e.g. a resumed run's) after these.
    pub fn extend(&mut self, other: &History) {
        for (i, &e) in other.epoch.iter().enumerate() {
            let logs: Vec<(String, f64)> =
                other.history.iter().filter_map(|(k, v)| v.get(i).map(|x| (k.clone(), *x))).collect();
            self.push(e, &logs);
        }
    }
}
