//! IDX loader and MNIST on the real embedded files and on corrupted copies.

mod common;
use common::*;
use keel_data::datasets::mnist;
use keel_data::{idx, Error};
use keel_tensor::{DType, Tensor};
use std::io::Write;

#[test]
fn embedded_mnist_loads_like_keras() {
    let ((xtr, ytr), (xte, yte)) = mnist::load().unwrap();
    assert_eq!(xtr.dims(), &[8000, 28, 28]);
    assert_eq!(xtr.dtype(), DType::U8);
    assert_eq!(ytr.dims(), &[8000]);
    assert_eq!(xte.dims(), &[2000, 28, 28]);
    assert_eq!(yte.dims(), &[2000]);
    let y = ytr.to_vec::<u8>().unwrap();
    for d in 0..10u8 {
        let n = y.iter().filter(|&&l| l == d).count();
        assert!(n > 500, "digit {d} has {n} samples");
    }
    let x = xtr.to_vec::<u8>().unwrap();
    assert!(x.contains(&255) && x.contains(&0));
}

#[test]
fn prepared_mnist_is_nhwc_scaled_and_one_hot() {
    let ((x, y), (xt, yt)) = mnist::load_prepared().unwrap();
    assert_eq!(x.dims(), &[8000, 28, 28, 1]);
    assert_eq!(x.dtype(), DType::F32);
    assert_eq!(y.dims(), &[8000, 10]);
    assert_eq!(xt.dims(), &[2000, 28, 28, 1]);
    assert_eq!(yt.dims(), &[2000, 10]);
    let v = x.to_vec::<f32>().unwrap();
    assert!(v.iter().all(|&p| (0.0..=1.0).contains(&p)));
    let rows = y.sum(&[1], false).unwrap().to_vec::<f32>().unwrap();
    assert!(rows.iter().all(|&r| r == 1.0));
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn load_from_dir_reads_raw_and_gz_and_matches_embedded() {
    let d = temp_dir("mnist-dir");
    let src = crate_dir().join("mnist-10k");
    // two files gzipped (copied), two decompressed to raw
    for (i, n) in mnist::FILE_NAMES.iter().enumerate() {
        let b = std::fs::read(src.join(format!("{n}.gz"))).unwrap();
        if i % 2 == 0 {
            std::fs::write(d.join(format!("{n}.gz")), &b).unwrap();
        } else {
            let raw = idx::maybe_gunzip(&b, n).unwrap();
            std::fs::write(d.join(n), &*raw).unwrap();
        }
    }
    let ((a, b), (c, e)) = mnist::load_from_dir(&d).unwrap();
    let ((a2, b2), (c2, e2)) = mnist::load().unwrap();
    assert_eq!(a.to_vec::<u8>().unwrap(), a2.to_vec::<u8>().unwrap());
    assert_eq!(b.to_vec::<u8>().unwrap(), b2.to_vec::<u8>().unwrap());
    assert_eq!(c.to_vec::<u8>().unwrap(), c2.to_vec::<u8>().unwrap());
    assert_eq!(e.to_vec::<u8>().unwrap(), e2.to_vec::<u8>().unwrap());
    // missing file -> error naming it
    std::fs::remove_file(d.join("t10k-labels-idx1-ubyte")).unwrap();
    let err = mnist::load_from_dir(&d).unwrap_err().to_string();
    assert!(err.contains("t10k-labels-idx1-ubyte"), "{err}");
}

#[test]
fn idx_roundtrip_and_types() {
    let t = Tensor::from_vec((0..24u8).collect::<Vec<_>>(), (2, 3, 4)).unwrap();
    let b = idx::encode_u8(&t).unwrap();
    let back = idx::decode(&b, "x").unwrap();
    assert_eq!(back.dims(), &[2, 3, 4]);
    assert_eq!(back.to_vec::<u8>().unwrap(), t.to_vec::<u8>().unwrap());
    let back = idx::decode(&gz(&b), "x.gz").unwrap();
    assert_eq!(back.to_vec::<u8>().unwrap(), t.to_vec::<u8>().unwrap());
    // big-endian i16 and f32
    let i16s = [0u8, 0, 0x0B, 1, 0, 0, 0, 2, 0xff, 0xfe, 0x01, 0x00];
    assert_eq!(idx::decode(&i16s, "i16").unwrap().to_vec::<i64>().unwrap(), vec![-2, 256]);
    let mut f = vec![0u8, 0, 0x0D, 1, 0, 0, 0, 1];
    f.extend_from_slice(&1.5f32.to_be_bytes());
    assert_eq!(idx::decode(&f, "f").unwrap().to_vec::<f32>().unwrap(), vec![1.5]);
}

fn expect_format_err(bytes: &[u8], needle: &str) {
    match idx::decode(bytes, "bad.idx") {
        Err(e @ Error::Format { .. }) => {
            let m = e.to_string();
            assert!(m.contains("bad.idx") && m.contains(needle), "{m}");
        }
        other => panic!("expected a format error containing '{needle}', got {other:?}"),
    }
}

#[test]
fn corrupted_idx_files_are_errors_not_panics() {
    let raw = std::fs::read(crate_dir().join("mnist-10k/t10k-labels-idx1-ubyte.gz")).unwrap();
    let raw = idx::maybe_gunzip(&raw, "l").unwrap().into_owned();
    // truncated data
    expect_format_err(&raw[..raw.len() - 7], "truncated");
    // truncated header / tiny files
    expect_format_err(&raw[..6], "truncated header");
    expect_format_err(&raw[..2], "too short");
    expect_format_err(&[], "too short");
    // wrong magic
    let mut m = raw.clone();
    m[0] = 0x42;
    expect_format_err(&m, "magic");
    // unknown type code
    let mut m = raw.clone();
    m[2] = 0x07;
    expect_format_err(&m, "type code");
    // dims disagree with the size (count bumped, and extra trailing bytes)
    let mut m = raw.clone();
    m[7] = m[7].wrapping_add(1);
    expect_format_err(&m, "truncated");
    let mut m = raw.clone();
    m.push(0);
    expect_format_err(&m, "header disagrees");
    // zero dims
    expect_format_err(&[0, 0, 8, 0], "0 dimensions");
    // overflowing dims
    expect_format_err(&[0, 0, 8, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255], "");
    // corrupted / truncated gzip stream
    let g = gz(&raw);
    expect_format_err(&g[..g.len() / 2], "gzip");
    let mut g2 = g.clone();
    for b in g2.iter_mut().skip(20).take(40) {
        *b ^= 0x5a;
    }
    assert!(idx::decode(&g2, "bad.idx").is_err());
}

#[test]
fn corrupted_mnist_dir_is_an_error() {
    let d = temp_dir("mnist-corrupt");
    let src = crate_dir().join("mnist-10k");
    for n in mnist::FILE_NAMES {
        std::fs::copy(src.join(format!("{n}.gz")), d.join(format!("{n}.gz"))).unwrap();
    }
    // labels of the test set swapped for the train labels -> count mismatch
    std::fs::copy(src.join("train-labels-idx1-ubyte.gz"), d.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let e = mnist::load_from_dir(&d).unwrap_err().to_string();
    assert!(e.contains("2000 images but 8000 labels"), "{e}");
    // truncated image file on disk
    let b = std::fs::read(src.join("train-images-idx3-ubyte.gz")).unwrap();
    std::fs::write(d.join("train-images-idx3-ubyte.gz"), &b[..b.len() / 3]).unwrap();
    let e = mnist::load_from_dir(&d).unwrap_err().to_string();
    assert!(e.contains("train-images-idx3-ubyte.gz"), "{e}");
    // a missing directory
    assert!(mnist::load_from_dir(d.join("nope")).is_err());
    // a non-existent single file
    assert!(matches!(idx::read(d.join("nope")), Err(Error::Io { .. })));
}
