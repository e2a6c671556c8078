//! NPZ read/write against archives written by NumPy (tests/fixtures/make_npz.py).
#![cfg(feature = "npz")]

mod common;
use keel_data::npy::{decode_npz, encode_npz, read_npz, write_npz};
use keel_tensor::{DType, Tensor};

fn fx(name: &str) -> std::path::PathBuf {
    common::crate_dir().join("tests/fixtures/npz").join(name)
}

fn linspace() -> Vec<f64> {
    (0..1000).map(|i| -1.0 + 2.0 * i as f64 / 999.0).collect()
}

#[test]
fn reads_numpy_savez() {
    let m = read_npz(fx("plain.npz")).unwrap();
    assert_eq!(m.keys().collect::<Vec<_>>(), ["arr_0", "img", "labels"]);
    assert_eq!(m["arr_0"].dims(), &[2, 3]);
    assert_eq!(m["arr_0"].to_vec::<f32>().unwrap(), vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25]);
    assert_eq!(m["labels"].to_vec::<i64>().unwrap(), vec![3, 1, 2]);
    assert_eq!(m["img"].dims(), &[2, 3, 4]);
    assert_eq!(m["img"].to_vec::<u8>().unwrap(), (0..24).collect::<Vec<u8>>());
}

#[test]
fn reads_numpy_savez_compressed() {
    let m = read_npz(fx("compressed.npz")).unwrap();
    assert_eq!(m.keys().collect::<Vec<_>>(), ["s", "x", "y"]);
    assert_eq!(m["x"].dims(), &[10, 100]);
    let x = m["x"].to_vec::<f64>().unwrap();
    common::assert_close(&x, &linspace(), 1e-15, "x");
    assert_eq!(m["y"].dtype(), DType::I64);
    assert_eq!(m["y"].to_vec::<i64>().unwrap(), (0..1000).map(|i| i % 7).collect::<Vec<i64>>());
    assert_eq!(m["s"].rank(), 0);
    assert_eq!(m["s"].to_vec::<f32>().unwrap(), vec![2.5]);
    assert!(read_npz(fx("empty.npz")).unwrap().is_empty());
}

#[test]
fn round_trips_stored_and_deflated() {
    let d = common::temp_dir("npz-rt");
    for (file, compressed) in [("plain", false), ("compressed", true)] {
        let src = read_npz(fx(&format!("{file}.npz"))).unwrap();
        let pairs: Vec<(&str, &Tensor)> = src.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let out = d.join(format!("keel_{file}.npz"));
        write_npz(&out, &pairs, compressed).unwrap();
        let back = read_npz(&out).unwrap();
        assert_eq!(back.keys().collect::<Vec<_>>(), src.keys().collect::<Vec<_>>());
        for (k, v) in &src {
            assert_eq!(back[k].dims(), v.dims(), "{k}");
            assert_eq!(back[k].dtype(), v.dtype(), "{k}");
            assert_eq!(back[k].to_vec_f64().unwrap(), v.to_vec_f64().unwrap(), "{k}");
        }
        // Deterministic bytes (no timestamps), and deflate really compresses.
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(bytes, encode_npz(&pairs, compressed).unwrap());
        if compressed {
            let stored = encode_npz(&pairs, false).unwrap();
            assert!(bytes.len() * 2 < stored.len(), "{} vs {}", bytes.len(), stored.len());
        }
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.iter().all(|n| !n.to_string_lossy().contains(".tmp")), "{left:?}");
    }
    // Overwriting an existing archive replaces it.
    let t = Tensor::from_vec(vec![1u8, 2, 3], 3).unwrap();
    write_npz(d.join("keel_plain.npz"), &[("only", &t)], false).unwrap();
    assert_eq!(read_npz(d.join("keel_plain.npz")).unwrap().keys().collect::<Vec<_>>(), ["only"]);

    if let Ok(py) = std::env::var("KEEL_NPZ_CHECK_PY") {
        let src = read_npz(fx("plain.npz")).unwrap();
        let pairs: Vec<(&str, &Tensor)> = src.iter().map(|(k, v)| (k.as_str(), v)).collect();
        write_npz(d.join("keel_plain.npz"), &pairs, false).unwrap();
        let script = common::crate_dir().join("tests/fixtures/make_npz.py");
        let st = std::process::Command::new(py)
            .arg(script)
            .arg("check")
            .arg(d.join("keel_plain.npz"))
            .arg(d.join("keel_compressed.npz"))
            .status()
            .unwrap();
        assert!(st.success(), "numpy rejected keel's archives");
    }
}

#[test]
fn write_errors_are_values() {
    let d = common::temp_dir("npz-werr");
    let t = Tensor::from_vec(vec![1.0f32], 1).unwrap();
    let e = write_npz(d.join("a.npz"), &[("a", &t), ("a", &t)], false).unwrap_err().to_string();
    assert!(e.contains("twice"), "{e}");
    assert!(write_npz(d.join("a.npz"), &[("", &t)], false).is_err());
    let h = t.to_dtype(DType::F16).unwrap();
    let e = write_npz(d.join("a.npz"), &[("half", &h)], true).unwrap_err().to_string();
    assert!(e.contains("'half'"), "{e}");
    assert!(!d.join("a.npz").exists());
    assert!(write_npz(d.join("no/such/dir/a.npz"), &[("a", &t)], false).is_err());
    assert!(write_npz("/", &[("a", &t)], false).is_err());
    // An empty archive is valid, as np.savez(f) writes.
    write_npz(d.join("empty.npz"), &[], false).unwrap();
    assert!(read_npz(d.join("empty.npz")).unwrap().is_empty());
}

#[test]
fn corrupt_archives_are_errors_not_panics() {
    for file in ["plain.npz", "compressed.npz"] {
        let good = std::fs::read(fx(file)).unwrap();
        // Every truncation.
        for cut in 0..good.len() {
            let e = decode_npz(&good[..cut], "bad.npz");
            assert!(e.is_err(), "{file} cut at {cut}");
            assert!(e.unwrap_err().to_string().contains("bad.npz"));
        }
        // Every single-byte corruption: an error or (where the byte is
        // unchecked, e.g. a timestamp) the same arrays -- never a panic.
        let want = decode_npz(&good, "good.npz").unwrap();
        let mut bad_count = 0;
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x5a;
            match decode_npz(&b, "bad.npz") {
                Err(e) => {
                    assert!(e.to_string().contains("bad.npz"), "{e}");
                    bad_count += 1;
                }
                Ok(m) => {
                    for (k, v) in &m {
                        if let Some(w) = want.get(k) {
                            assert_eq!(v.to_vec_f64().unwrap(), w.to_vec_f64().unwrap(), "{file} byte {i} {k}");
                        }
                    }
                }
            }
        }
        assert!(bad_count > good.len() / 2, "{file}: only {bad_count} corruptions detected");
    }
    // A corrupt member's data is reported with the member's name.
    let mut b = std::fs::read(fx("plain.npz")).unwrap();
    let at = b.windows(3).position(|w| w == b"<i8").unwrap();
    b[at + 100] ^= 0xff; // inside labels.npy's data: CRC mismatch
    let e = decode_npz(&b, "c.npz").unwrap_err().to_string();
    assert!(e.contains("c.npz") && e.contains("labels.npy"), "{e}");
    let e = decode_npz(b"PK\x03\x04 not really a zip", "z.npz").unwrap_err().to_string();
    assert!(e.contains("z.npz") && e.contains("not a valid .npz"), "{e}");
    let npy = std::fs::read(common::crate_dir().join("tests/fixtures/npy/f4_2x3.npy")).unwrap();
    assert!(decode_npz(&npy, "x.npy").is_err());
    assert!(read_npz("/nonexistent.npz").is_err());
}
