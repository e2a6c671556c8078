//! `keel-nn`: Keras-style layers, activations, losses, initializers and Sequential/Functional models.
//!
//! Not filled yet: this crate is a placeholder in the workspace and has no API so far.
