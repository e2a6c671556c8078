//! `pad_sequences` and `timeseries_dataset_from_array` against Keras 3 (fixtures/
//! sequences_keras.json, written by fixtures/make_sequences.py), plus batching and errors.

use keel_data::preprocessing::{pad_sequences, PadSequences, PadSide};
use keel_data::{timeseries_dataset_from_array, BatchSource, DataLoader, Dataset};
use keel_tensor::Tensor;
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/sequences_keras.json")).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    fn walk(v: &Value, out: &mut Vec<f64>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            x => out.push(x.as_f64().unwrap()),
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

fn side(v: Option<&Value>) -> PadSide {
    match v.and_then(Value::as_str) {
        Some("post") => PadSide::Post,
        _ => PadSide::Pre,
    }
}

#[test]
fn pad_sequences_matches_keras() {
    let f = fixture();
    let seqs: Vec<Vec<i64>> = vec![vec![1, 2, 3], vec![4, 5, 6, 7, 8, 9], vec![], vec![10], vec![11, 12, 13, 14, 15]];
    let cases = f["pad"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for c in cases {
        let o = &c["options"];
        let mut p = PadSequences::new().padding(side(o.get("padding"))).truncating(side(o.get("truncating")));
        if let Some(m) = o.get("maxlen") {
            p = p.maxlen(m.as_u64().unwrap() as usize);
        }
        if let Some(v) = o.get("value") {
            p = p.value(v.as_f64().unwrap());
        }
        let got = p.apply(&seqs).unwrap();
        let shape: Vec<usize> = c["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        assert_eq!(got.dims(), &shape[..], "{o}");
        let want: Vec<i64> = f64s(&c["data"]).into_iter().map(|v| v as i64).collect();
        assert_eq!(got.to_vec::<i64>().unwrap(), want, "{o}");
    }
    // float sequences keep their values (Keras: dtype="float32", padding="post", value=0.25)
    let fc = &f["pad_float"];
    let fseqs: Vec<Vec<f32>> =
        fc["sequences"].as_array().unwrap().iter().map(|s| f64s(s).into_iter().map(|v| v as f32).collect()).collect();
    let got = PadSequences::new().padding(PadSide::Post).value(0.25).apply(&fseqs).unwrap();
    assert_eq!(got.dims(), &[2, 3]);
    let want: Vec<f32> = f64s(&fc["data"]).into_iter().map(|v| v as f32).collect();
    assert_eq!(got.to_vec::<f32>().unwrap(), want);
    // the defaults are the function's
    assert_eq!(
        pad_sequences(&seqs).unwrap().to_vec::<i64>().unwrap(),
        PadSequences::new().apply(&seqs).unwrap().to_vec::<i64>().unwrap()
    );
}

#[test]
fn pad_sequences_edge_cases_and_errors() {
    let empty: Vec<Vec<i64>> = Vec::new();
    assert_eq!(pad_sequences(&empty).unwrap().dims(), &[0, 0]);
    assert_eq!(PadSequences::new().maxlen(3).apply(&empty).unwrap().dims(), &[0, 3]);
    let err = PadSequences::new().value(0.5).apply(&[vec![1i64]]).unwrap_err().to_string();
    assert!(err.contains("pad_sequences") && err.contains("0.5") && err.contains("int64"), "{err}");
    assert!(PadSequences::new().value(300.0).apply(&[vec![1u8]]).is_err(), "300 does not fit u8");
}

#[test]
fn timeseries_windows_match_keras() {
    let f = fixture();
    let data_v = f64s(&f["timeseries_data"]).into_iter().map(|v| v as f32).collect::<Vec<_>>();
    let data = Tensor::from_vec(data_v, (23, 2)).unwrap();
    let targets =
        Tensor::from_vec(f64s(&f["timeseries_targets"]).into_iter().map(|v| v as f32).collect::<Vec<_>>(), 23).unwrap();
    let cases = f["timeseries"].as_array().unwrap();
    assert_eq!(cases.len(), 12);
    for c in cases {
        let o = &c["options"];
        let with_targets = c["targets"].as_bool().unwrap();
        let get = |k: &str| o.get(k).map(|v| v.as_u64().unwrap() as usize);
        let mut b =
            timeseries_dataset_from_array(&data, with_targets.then_some(&targets), get("sequence_length").unwrap());
        if let Some(v) = get("sequence_stride") {
            b = b.sequence_stride(v);
        }
        if let Some(v) = get("sampling_rate") {
            b = b.sampling_rate(v);
        }
        if let Some(v) = get("start_index") {
            b = b.start_index(v);
        }
        if let Some(v) = get("end_index") {
            b = b.end_index(v);
        }
        let ds = b.build().unwrap();
        let n = c["x"].as_array().unwrap().len();
        assert_eq!(ds.len(), n, "{o} targets={with_targets}");
        if n == 0 {
            continue;
        }
        let x = ds.all_windows().unwrap();
        assert_eq!(x.dims(), &[n, get("sequence_length").unwrap(), 2]);
        let want: Vec<f32> = f64s(&c["x"]).into_iter().map(|v| v as f32).collect();
        assert_eq!(x.to_vec::<f32>().unwrap(), want, "{o}");
        match ds.all_targets().unwrap() {
            Some(y) => {
                assert!(with_targets);
                let want: Vec<f32> = f64s(&c["y"]).into_iter().map(|v| v as f32).collect();
                assert_eq!(y.to_vec::<f32>().unwrap(), want, "{o}");
            }
            None => assert!(!with_targets),
        }
    }
    // Keras's next-step example: data[:-3] with targets data[3:, 0]; the count follows the targets
    let ns = &f["next_step"];
    let col0 = data.narrow(1, 0, 1).unwrap().reshape(23).unwrap();
    let ds = timeseries_dataset_from_array(&data.narrow(0, 0, 20).unwrap(), Some(&col0.narrow(0, 3, 20).unwrap()), 3)
        .build()
        .unwrap();
    assert_eq!(ds.len(), 18);
    let want_x: Vec<f32> = f64s(&ns["x"]).into_iter().map(|v| v as f32).collect();
    let want_y: Vec<f32> = f64s(&ns["y"]).into_iter().map(|v| v as f32).collect();
    assert_eq!(ds.all_windows().unwrap().to_vec::<f32>().unwrap(), want_x);
    assert_eq!(ds.all_targets().unwrap().unwrap().to_vec::<f32>().unwrap(), want_y);
}

#[test]
fn timeseries_batches_through_a_data_loader_and_errors() {
    let series = Tensor::from_vec((0..60).map(|v| v as f32).collect::<Vec<_>>(), (30, 2)).unwrap();
    let targets = Tensor::from_vec((0..30i64).collect::<Vec<_>>(), 30).unwrap();
    let ds = timeseries_dataset_from_array(&series, Some(&targets), 4).sampling_rate(2).build().unwrap();
    assert_eq!(ds.len(), 24);
    let mut loader = DataLoader::new(ds.clone(), 5).unwrap().shuffle(true).seed(3);
    let mut seen = Vec::new();
    for batch in loader.batches(0) {
        let (x, y) = batch.unwrap();
        let (xs, ys) = (x.to_vec::<f32>().unwrap(), y.to_vec::<i64>().unwrap());
        for (w, &t) in xs.chunks(8).zip(&ys) {
            // the window starting at step t: steps t, t+2, t+4, t+6, two features each
            let want: Vec<f32> =
                (0..4).flat_map(|k| [(2 * (t + 2 * k)) as f32, (2 * (t + 2 * k) + 1) as f32]).collect();
            assert_eq!(w, &want[..]);
        }
        seen.extend(ys);
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..24).collect::<Vec<i64>>(), "every window once per epoch");
    // the same seed and epoch give the same order
    let order = |l: &mut DataLoader| l.batches(1).map(|b| b.unwrap().1.to_vec::<i64>().unwrap()).collect::<Vec<_>>();
    let mut again = DataLoader::new(ds, 5).unwrap().shuffle(true).seed(3);
    assert_eq!(order(&mut loader), order(&mut again));

    // without targets there are windows but no (x, y) batches
    let inputs = timeseries_dataset_from_array(&series, None, 3).build().unwrap();
    assert_eq!(inputs.windows(&[2]).unwrap().to_vec::<f32>().unwrap(), vec![4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    let err = inputs.get_batch(&[0]).unwrap_err().to_string();
    assert!(err.contains("without targets"), "{err}");
    assert!(inputs.windows(&[28]).is_err(), "out of range");

    for (b, what) in [
        (timeseries_dataset_from_array(&series, None, 0), "sequence_length"),
        (timeseries_dataset_from_array(&series, None, 3).sampling_rate(0), "sampling_rate"),
        (timeseries_dataset_from_array(&series, None, 3).sequence_stride(0), "sequence_stride"),
        (timeseries_dataset_from_array(&series, None, 3).end_index(31), "end_index"),
        (timeseries_dataset_from_array(&series, None, 3).start_index(10).end_index(10), "start_index"),
        (timeseries_dataset_from_array(&Tensor::scalar(1.0f32), None, 3), "time axis"),
    ] {
        let err = b.build().unwrap_err().to_string();
        assert!(err.contains("timeseries_dataset_from_array") && err.contains(what), "{what}: {err}");
    }
}
