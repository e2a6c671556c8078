//! [`History`]: the per-epoch logs `fit` returns (Keras's `History.history`).

use std::collections::BTreeMap;

/// Per-epoch values of the loss and every metric, train and validation
/// (`"loss"`, `"accuracy"`, `"val_loss"`, `"val_accuracy"`, ...).
///
/// As in Keras, a log missing from some epochs (the `val_` logs under
/// `Fit::validation_freq`) has fewer values than `epoch`; [`History::epochs_of`] says
/// which epochs its values belong to.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct History {
    /// The epochs run (0-based, as Keras's `history.epoch`).
    pub epoch: Vec<usize>,
    /// Values by log name, one per epoch that recorded it.
    pub history: BTreeMap<String, Vec<f64>>,
    /// For each log, the positions in `epoch` of its values.
    at: BTreeMap<String, Vec<usize>>,
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// A history from Keras's two fields; a log with fewer values than `epoch` is taken
    /// to belong to the last epochs.
    pub fn from_parts(epoch: Vec<usize>, history: BTreeMap<String, Vec<f64>>) -> History {
        let at = history
            .iter()
            .map(|(k, v)| {
                let first = epoch.len().saturating_sub(v.len());
                (k.clone(), (first..first + v.len()).collect())
            })
            .collect();
        History { epoch, history, at }
    }

    /// Append one epoch's logs.
    pub fn push(&mut self, epoch: usize, logs: &[(String, f64)]) {
        let pos = self.epoch.len();
        self.epoch.push(epoch);
        for (k, v) in logs {
            self.history.entry(k.clone()).or_default().push(*v);
            self.at.entry(k.clone()).or_default().push(pos);
        }
    }

    /// The values of one log (`"loss"`, `"val_accuracy"`, ...), if recorded.
    pub fn get(&self, name: &str) -> Option<&[f64]> {
        self.history.get(name).map(Vec::as_slice)
    }

    /// The epochs (0-based) the values of one log belong to, in order: every epoch for
    /// the training logs, the validated ones for the `val_` logs.
    pub fn epochs_of(&self, name: &str) -> Option<Vec<usize>> {
        let values = self.history.get(name)?;
        match self.at.get(name) {
            Some(at) if at.len() == values.len() => {
                Some(at.iter().filter_map(|&p| self.epoch.get(p).copied()).collect())
            }
            // built by hand (the fields are public): the last epochs, as `from_parts` reads them
            _ => Some(self.epoch[self.epoch.len().saturating_sub(values.len())..].to_vec()),
        }
    }

    /// `(epoch, value)` pairs of one log.
    pub fn points(&self, name: &str) -> Vec<(usize, f64)> {
        match (self.epochs_of(name), self.get(name)) {
            (Some(e), Some(v)) => e.into_iter().zip(v.iter().copied()).collect(),
            _ => Vec::new(),
        }
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
        let mut per_epoch: Vec<Vec<(String, f64)>> = vec![Vec::new(); other.epoch.len()];
        for k in other.history.keys() {
            let values = other.history[k].iter().copied();
            let positions = match other.at.get(k) {
                Some(at) if at.len() == other.history[k].len() => at.clone(),
                _ => {
                    let first = other.epoch.len().saturating_sub(other.history[k].len());
                    (first..other.epoch.len()).collect()
                }
            };
            for (p, v) in positions.into_iter().zip(values) {
                if let Some(logs) = per_epoch.get_mut(p) {
                    logs.push((k.clone(), v));
                }
            }
        }
        for (&e, logs) in other.epoch.iter().zip(&per_epoch) {
            self.push(e, logs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn sparse_validation_logs_keep_their_epochs() {
        let mut h = History::new();
        h.push(0, &logs(&[("loss", 1.0)]));
        h.push(1, &logs(&[("loss", 0.8), ("val_loss", 0.9)]));
        h.push(2, &logs(&[("loss", 0.7)]));
        h.push(3, &logs(&[("loss", 0.6), ("val_loss", 0.65)]));
        assert_eq!(h.get("val_loss"), Some(&[0.9, 0.65][..]));
        assert_eq!(h.epochs_of("val_loss"), Some(vec![1, 3]));
        assert_eq!(h.epochs_of("loss"), Some(vec![0, 1, 2, 3]));
        assert_eq!(h.points("val_loss"), vec![(1, 0.9), (3, 0.65)]);
        // appended after an earlier run's epochs, the positions move with them
        let mut all = History::new();
        all.push(7, &logs(&[("loss", 2.0), ("val_loss", 2.5)]));
        all.extend(&h);
        assert_eq!(all.epochs_of("val_loss"), Some(vec![7, 1, 3]));
        assert_eq!(all.get("loss").map(<[f64]>::len), Some(5));
        // Keras's two fields alone: a short log belongs to the last epochs
        let k = History::from_parts(vec![0, 1, 2], [("lr".to_string(), vec![0.1, 0.05])].into());
        assert_eq!(k.epochs_of("lr"), Some(vec![1, 2]));
    }
}
