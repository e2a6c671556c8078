//! Runnable keel examples and end-to-end benchmarks; see the `examples/` folder of this crate.
