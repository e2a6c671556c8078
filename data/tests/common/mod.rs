//! Shared helpers for keel-data's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// A fresh, empty temporary directory unique to this test, removed when dropped.
pub fn temp_dir(name: &str) -> TempDir {
    TempDir::new(std::env::temp_dir().join(format!("keel-data-{}-{name}", std::process::id())))
}

/// A directory that is removed (with its contents) when the value is dropped, so the
/// tests leave nothing behind; derefs to its path.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Create `path` afresh (removing what was there).
    pub fn new(path: PathBuf) -> TempDir {
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The crate's root directory (holding mnist-10k/ and tabular/).
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Assert two slices agree within `tol` (absolute).
pub fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "{what}[{i}]: {x} vs {y}");
    }
}
