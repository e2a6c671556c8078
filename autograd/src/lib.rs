//! `keel-autograd`: Tape-based reverse-mode automatic differentiation over keel tensors (Tape, Var, Param, Gradients, gradcheck).
//!
//! Not filled yet: this crate is a placeholder in the workspace and has no API so far.
