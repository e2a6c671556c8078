//! `keel-data`: Data loading (IDX, CSV, NPY, image folders), preprocessing and Keras-style image augmentation.
//!
//! Not filled yet: this crate is a placeholder in the workspace and has no API so far.
