//! `keel-train`: The Keras training loop: compile, fit, evaluate, predict, callbacks, History and plots.
//!
//! Not filled yet: this crate is a placeholder in the workspace and has no API so far.
