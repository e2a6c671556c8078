//! CSV loader and the embedded tabular datasets.

use keel_data::csv::{parse_csv, read_csv, CsvOptions, Missing};
use keel_data::{datasets, Error};
use keel_tensor::DType;
mod common;

#[test]
fn embedded_tables_have_the_documented_shapes() {
    for (f, n, k, cls) in
        [(datasets::breast_cancer as fn() -> _, 569, 30, 2), (datasets::wine, 178, 13, 3), (datasets::iris, 150, 4, 3)]
    {
        let (x, y) = f().unwrap();
        assert_eq!(x.dims(), &[n, k]);
        assert_eq!(x.dtype(), DType::F32);
        assert_eq!(y.dims(), &[n]);
        assert_eq!(y.dtype(), DType::I64);
        let mut l = y.to_vec::<i64>().unwrap();
        l.sort();
        l.dedup();
        assert_eq!(l, (0..cls).collect::<Vec<i64>>());
    }
    let (x, y) = datasets::diabetes().unwrap();
    assert_eq!(x.dims(), &[442, 10]);
    assert_eq!(y.dtype(), DType::F32);
    assert_eq!(y.to_vec::<f32>().unwrap()[0], 151.0);
    assert_eq!(x.to_vec::<f32>().unwrap()[..3], [59.0, 2.0, 32.1]);
}

#[test]
fn read_csv_from_disk_with_named_label() {
    let p = common::crate_dir().join("tabular/iris.csv");
    let t = read_csv(&p, &CsvOptions::new().label("petal width (cm)")).unwrap();
    assert_eq!(t.x.dims(), &[150, 4]); // target becomes a feature
    assert_eq!(t.feature_names[3], "target");
    assert_eq!(t.label_names, vec!["petal width (cm)"]);
    assert_eq!(t.y.to_vec::<f32>().unwrap()[0], 0.2);
    assert!(matches!(read_csv("/nonexistent/x.csv", &CsvOptions::new()), Err(Error::Io { .. })));
}

#[test]
fn quoting_multiple_labels_ignore_and_delimiter() {
    let s = "id;\"a;b\";c;t1;t2\r\n7;\"1.5\";2;3;4\n\n8;5;6;7;8\n";
    let t = parse_csv(s, "s.csv", &CsvOptions::new().delimiter(';').labels(&["t2", "t1"]).ignore("id")).unwrap();
    assert_eq!(t.feature_names, vec!["a;b", "c"]);
    assert_eq!(t.x.to_vec::<f32>().unwrap(), vec![1.5, 2.0, 5.0, 6.0]);
    assert_eq!(t.y.dims(), &[2, 2]);
    assert_eq!(t.y.to_vec::<f32>().unwrap(), vec![4.0, 3.0, 8.0, 7.0]);
}

#[test]
fn malformed_cell_names_line_and_column() {
    let s = "a,b,target\n1,2,0\n3,x7,1\n";
    let e = parse_csv(s, "m.csv", &CsvOptions::new()).unwrap_err();
    match &e {
        Error::Csv { line, column, .. } => {
            assert_eq!(*line, 3);
            assert_eq!(column.as_deref(), Some("2 'b'"));
        }
        other => panic!("{other:?}"),
    }
    let m = e.to_string();
    assert!(m.contains("m.csv") && m.contains("line 3") && m.contains("'x7'"), "{m}");
}

#[test]
fn ragged_row_is_an_error() {
    let s = "a,b,target\n1,2,0\n3,4\n";
    let m = parse_csv(s, "r.csv", &CsvOptions::new()).unwrap_err().to_string();
    assert!(m.contains("line 3") && m.contains("2 fields") && m.contains("header has 3"), "{m}");
    let s = "a,b,target\n1,2,0,9\n";
    assert!(parse_csv(s, "r.csv", &CsvOptions::new()).is_err());
    let s = "a,b,target\n\"1,2,0\n";
    let m = parse_csv(s, "q.csv", &CsvOptions::new()).unwrap_err().to_string();
    assert!(m.contains("quoted"), "{m}");
}

#[test]
fn missing_value_policies() {
    let s = "a,b,target\n1,,0\n2,NA,1\n3,4,1\n5,6,\n";
    let m = parse_csv(s, "n.csv", &CsvOptions::new()).unwrap_err().to_string();
    assert!(m.contains("line 2") && m.contains("column 2 'b'") && m.contains("Missing::Fill"), "{m}");
    let t = parse_csv(s, "n.csv", &CsvOptions::new().missing(Missing::DropRow)).unwrap();
    assert_eq!(t.x.to_vec::<f32>().unwrap(), vec![3.0, 4.0]);
    // Fill applies to features; a missing label is still an error
    let e = parse_csv(s, "n.csv", &CsvOptions::new().missing(Missing::Fill(-1.0))).unwrap_err().to_string();
    assert!(e.contains("line 5") && e.contains("missing label"), "{e}");
    let t = parse_csv(&s[..s.len() - 6], "n.csv", &CsvOptions::new().missing(Missing::Fill(-1.0))).unwrap();
    assert_eq!(t.x.to_vec::<f32>().unwrap(), vec![1., -1., 2., -1., 3., 4.]);
}

#[test]
fn header_problems() {
    assert!(parse_csv("", "e.csv", &CsvOptions::new()).is_err());
    let m = parse_csv("a,b\n1,2\n", "h.csv", &CsvOptions::new().label("zz")).unwrap_err().to_string();
    assert!(m.contains("'zz'") && m.contains("a, b"), "{m}");
    // header only: zero rows is fine
    let t = parse_csv("a,b\n", "h.csv", &CsvOptions::new()).unwrap();
    assert_eq!(t.x.dims(), &[0, 1]);
}

#[test]
fn label_that_is_also_ignored_is_an_error() {
    let s = "a,b,y\n1,2,3\n4,5,6\n";
    // y used to come back as zeros
    let m = parse_csv(s, "l.csv", &CsvOptions::new().label("y").ignore("y")).unwrap_err().to_string();
    assert!(m.contains("l.csv") && m.contains("'y'") && m.contains("ignore"), "{m}");
    let m = parse_csv(s, "l.csv", &CsvOptions::new().labels(&["a", "b"]).ignore("b")).unwrap_err().to_string();
    assert!(m.contains("'b'"), "{m}");
    // the default label (last column) too
    let m = parse_csv(s, "l.csv", &CsvOptions::new().ignore("y")).unwrap_err().to_string();
    assert!(m.contains("'y'") && m.contains("label"), "{m}");
    let t = parse_csv(s, "l.csv", &CsvOptions::new().label("b").ignore("y")).unwrap();
    assert_eq!(t.y.to_vec::<f32>().unwrap(), vec![2.0, 5.0]);
}

#[test]
fn numbers_too_large_for_f32_are_errors() {
    let s = "a,b,y\n1,2,0\n3,1e50,1\n";
    let e = parse_csv(s, "o.csv", &CsvOptions::new()).unwrap_err();
    match &e {
        Error::Csv { line, column, .. } => {
            assert_eq!(*line, 3);
            assert_eq!(column.as_deref(), Some("2 'b'"));
        }
        other => panic!("{other:?}"),
    }
    let m = e.to_string();
    assert!(m.contains("'1e50'") && m.contains("too large"), "{m}");
    assert!(parse_csv("a,y\n1,-4e38\n", "o.csv", &CsvOptions::new()).is_err());
    // an explicit infinity is still accepted, and the largest f32 still parses
    let t = parse_csv("a,y\ninf,-Infinity\n3.4e38,0\n", "o.csv", &CsvOptions::new()).unwrap();
    assert_eq!(t.x.to_vec::<f32>().unwrap(), vec![f32::INFINITY, 3.4e38]);
    assert_eq!(t.y.to_vec::<f32>().unwrap(), vec![f32::NEG_INFINITY, 0.0]);
}
