//! NPY read/write against files written by NumPy (tests/fixtures/make_npy.py).

mod common;
use keel_data::npy::{decode_npy, encode_npy, read_npy, write_npy};
use keel_tensor::{DType, Tensor};

fn fx(name: &str) -> std::path::PathBuf {
    common::crate_dir().join("tests/fixtures/npy").join(name)
}

#[test]
fn reads_numpy_files() {
    let t = read_npy(fx("f4_2x3.npy")).unwrap();
    assert_eq!(t.dims(), &[2, 3]);
    assert_eq!(t.to_vec::<f32>().unwrap(), vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25]);
    let t = read_npy(fx("f8_5.npy")).unwrap();
    assert_eq!(t.to_vec::<f64>().unwrap(), vec![1.5, -2.0, 3.25, 1e300, -0.0]);
    let t = read_npy(fx("i8_scalar.npy")).unwrap();
    assert_eq!(t.rank(), 0);
    assert_eq!(t.to_vec::<i64>().unwrap(), vec![-7]);
    let t = read_npy(fx("u1_2x2x2.npy")).unwrap();
    assert_eq!(t.dims(), &[2, 2, 2]);
    assert_eq!(t.to_vec::<u8>().unwrap(), (0..8).collect::<Vec<u8>>());
    let t = read_npy(fx("i4_3.npy")).unwrap();
    assert_eq!(t.to_vec::<i64>().unwrap(), vec![-1, 0, 2147483647]);
    assert_eq!(read_npy(fx("b1_3.npy")).unwrap().to_vec::<u8>().unwrap(), vec![1, 0, 1]);
    assert_eq!(read_npy(fx("f4_big_2.npy")).unwrap().to_vec::<f32>().unwrap(), vec![1.5, -3.0]);
    let t = read_npy(fx("f8_fortran_2x3.npy")).unwrap();
    assert_eq!(t.dims(), &[2, 3]);
    assert_eq!(t.to_vec::<f64>().unwrap(), vec![0., 1., 2., 3., 4., 5.]);
    let t = read_npy(fx("f4_v2_2x3.npy")).unwrap();
    assert_eq!(t.to_vec::<f32>().unwrap(), vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25]);
}

#[test]
fn writes_byte_identical_to_numpy() {
    for (name, t) in [
        ("f4_2x3.npy", read_npy(fx("f4_2x3.npy")).unwrap()),
        ("f8_5.npy", read_npy(fx("f8_5.npy")).unwrap()),
        ("i8_scalar.npy", read_npy(fx("i8_scalar.npy")).unwrap()),
        ("u1_2x2x2.npy", read_npy(fx("u1_2x2x2.npy")).unwrap()),
    ] {
        let ours = encode_npy(&t).unwrap();
        let numpy = std::fs::read(fx(name)).unwrap();
        assert_eq!(ours, numpy, "{name}");
    }
    let d = common::temp_dir("npy");
    let t = Tensor::from_vec(vec![1i64, -2, 3], (3, 1)).unwrap();
    write_npy(d.join("a.npy"), &t).unwrap();
    let back = read_npy(d.join("a.npy")).unwrap();
    assert_eq!(back.dims(), &[3, 1]);
    assert_eq!(back.to_vec::<i64>().unwrap(), vec![1, -2, 3]);
    let h = t.to_dtype(DType::F16).unwrap();
    assert!(encode_npy(&h).is_err());
}

#[test]
fn corrupted_npy_is_an_error() {
    let good = std::fs::read(fx("f4_2x3.npy")).unwrap();
    for (what, bytes) in [
        ("truncated data", good[..good.len() - 3].to_vec()),
        ("extra data", [good.clone(), vec![0]].concat()),
        ("truncated header", good[..40].to_vec()),
        ("tiny", good[..5].to_vec()),
        ("empty", vec![]),
        ("wrong magic", [b"\x93NUMPZ".to_vec(), good[6..].to_vec()].concat()),
        ("bad version", [good[..6].to_vec(), vec![9], good[7..].to_vec()].concat()),
    ] {
        let e = decode_npy(&bytes, "bad.npy");
        assert!(e.is_err(), "{what}");
        assert!(e.unwrap_err().to_string().contains("bad.npy"), "{what}");
    }
    // flipped header bytes
    let mut m = good.clone();
    for b in m.iter_mut().skip(12).take(30) {
        *b ^= 0x20;
    }
    assert!(decode_npy(&m, "bad.npy").is_err());
    let mut c = good.clone();
    let at = c.windows(3).position(|w| w == b"<f4").unwrap();
    c[at + 1] = b'c';
    let e = decode_npy(&c, "c.npy").unwrap_err().to_string();
    assert!(e.contains("unsupported dtype"), "{e}");
    assert!(read_npy("/nonexistent.npy").is_err());
}

/// A version-1.0 `.npy` file with header dict `h` followed by `data`.
fn npy_v1(h: &str, data: &[u8]) -> Vec<u8> {
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(data);
    b
}

#[test]
fn non_ascii_descr_is_an_error_not_a_panic() {
    for descr in ["é", "<é", "€f4", "ü"] {
        let h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (2, 3), }}\n");
        let e = decode_npy(&npy_v1(&h, &[0; 24]), "u.npy").unwrap_err().to_string();
        assert!(e.contains("u.npy") && e.contains("unsupported dtype"), "{descr}: {e}");
    }
}

#[test]
fn malformed_headers_say_what_is_wrong() {
    let good = std::fs::read(fx("f4_v2_2x3.npy")).unwrap();
    assert_eq!(good[6], 2);
    let e = decode_npy(&good[..11], "t.npy").unwrap_err().to_string();
    assert!(e.contains("truncated") && !e.contains("unsupported"), "{e}");
    let e = decode_npy(&[b"\x93NUMPY\x03\x00".to_vec(), vec![0, 0]].concat(), "t.npy").unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");

    let h = "{'descr': [('a', '<f4'), ('b', '<i8')], 'fortran_order': False, 'shape': (2,), }\n";
    let e = decode_npy(&npy_v1(h, &[0; 24]), "s.npy").unwrap_err().to_string();
    assert!(e.contains("structured"), "{e}");

    let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, }\n";
    let e = decode_npy(&npy_v1(h, &[0; 24]), "p.npy").unwrap_err().to_string();
    assert!(e.contains("malformed 'shape'"), "{e}");

    let h = "{'fortran_order': False, 'shape': (2, 3), }\n";
    let e = decode_npy(&npy_v1(h, &[0; 24]), "d.npy").unwrap_err().to_string();
    assert!(e.contains("no 'descr' entry"), "{e}");
    let h = "{'descr': '<f4', 'fortran_order': False, }\n";
    let e = decode_npy(&npy_v1(h, &[0; 24]), "d.npy").unwrap_err().to_string();
    assert!(e.contains("no 'shape' entry"), "{e}");
}
