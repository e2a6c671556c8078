//! Placeholder so the workspace manifest parses; the data engineer replaces it.
fn main() {}
