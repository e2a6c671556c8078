//! `keel-metrics`: Streaming metrics (accuracy, precision, recall, F1, AUC, confusion matrix, regression metrics).
//!
//! Not filled yet: this crate is a placeholder in the workspace and has no API so far.
