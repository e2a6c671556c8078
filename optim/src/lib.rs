//! `keel-optim`: Optimizers (SGD, Adam, AdamW, RMSprop, Adagrad), learning-rate schedules and gradient clipping.
//!
//! Not filled yet: this crate is a placeholder in the workspace and has no API so far.
