//! `TextVectorization` and `StringLookup` against Keras 3 (fixtures/text_keras.json, written
//! by fixtures/make_text.py), plus errors and the serde round trip.

use keel_data::preprocessing::{Split, Standardize, StringLookup, TextOutputMode, TextVectorization};
use keel_tensor::Tensor;
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/text_keras.json")).unwrap()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|d| d.as_f64().unwrap()).collect()
}

fn mode(o: &Value) -> TextOutputMode {
    o.get("output_mode").and_then(Value::as_str).unwrap_or("int").parse().unwrap()
}

/// The layer's output equals Keras's: ints exactly, floats to 1e-6 (relative).
fn assert_output(got: &Tensor, want: &Value, what: &str) {
    let shape = usizes(&want["shape"]);
    let data = f64s(&want["data"]);
    if want["dtype"] == "int64" && got.dtype() == keel_tensor::DType::I64 {
        assert_eq!(got.dims(), &shape[..], "{what}");
        let w: Vec<i64> = data.iter().map(|&v| v as i64).collect();
        assert_eq!(got.to_vec::<i64>().unwrap(), w, "{what}");
    } else {
        assert_eq!(got.dtype(), keel_tensor::DType::F32, "{what}");
        assert_eq!(got.dims(), &shape[..], "{what}");
        let g = got.to_vec_f64().unwrap();
        let mut worst = 0f64;
        for (a, b) in g.iter().zip(&data) {
            worst = worst.max((a - b).abs() / b.abs().max(1.0));
        }
        assert!(worst <= 1e-6, "{what}: max rel diff {worst}");
    }
}

fn text_vectorization(o: &Value) -> TextVectorization {
    let mut tv = TextVectorization::new().output_mode(mode(o));
    if let Some(m) = o.get("max_tokens") {
        tv = tv.max_tokens(m.as_u64().unwrap() as usize);
    }
    match o.get("standardize") {
        None => {}
        Some(Value::Null) => tv = tv.standardize(None),
        Some(s) => {
            tv = tv.standardize(match s.as_str().unwrap() {
                "lower" => Standardize::Lower,
                "strip_punctuation" => Standardize::StripPunctuation,
                _ => Standardize::LowerAndStripPunctuation,
            })
        }
    }
    match o.get("split") {
        None => {}
        Some(Value::Null) => tv = tv.split(None),
        Some(s) => tv = tv.split(if s == "character" { Split::Character } else { Split::Whitespace }),
    }
    if let Some(n) = o.get("ngrams") {
        tv = tv.ngrams(n.as_u64().unwrap() as usize);
    }
    if let Some(n) = o.get("output_sequence_length") {
        tv = tv.output_sequence_length(n.as_u64().unwrap() as usize);
    }
    if o.get("pad_to_max_tokens") == Some(&Value::Bool(true)) {
        tv = tv.pad_to_max_tokens(true);
    }
    if let Some(v) = o.get("vocabulary") {
        let v = strs(v);
        tv = match o.get("idf_weights") {
            Some(w) => {
                let w: Vec<f32> = f64s(w).into_iter().map(|x| x as f32).collect();
                tv.vocabulary_with_idf(&v, &w).unwrap()
            }
            None => tv.vocabulary(&v).unwrap(),
        };
    }
    tv
}

#[test]
fn text_vectorization_matches_keras() {
    let f = fixture();
    let cases = f["text_vectorization"].as_array().unwrap();
    assert_eq!(cases.len(), 23);
    for c in cases {
        let o = &c["options"];
        let what = o.to_string();
        let mut tv = text_vectorization(o);
        if let Some(a) = c["adapt"].as_array() {
            let a: Vec<&str> = a.iter().map(|s| s.as_str().unwrap()).collect();
            tv.adapt(&a).unwrap();
        }
        assert_eq!(tv.get_vocabulary(), strs(&c["vocabulary"]), "{what}");
        assert_eq!(tv.vocabulary_size(), c["vocabulary_size"].as_u64().unwrap() as usize, "{what}");
        let probe = strs(&c["probe"]);
        let got = tv.call(&probe).unwrap();
        let want = &c["output"];
        if o.get("split") == Some(&Value::Null) {
            // Keras gives [n] for a 1-D input without split; keel keeps [n, 1]
            assert_eq!(got.dims(), &[probe.len(), 1]);
            let w: Vec<i64> = f64s(&want["data"]).into_iter().map(|v| v as i64).collect();
            assert_eq!(got.to_vec::<i64>().unwrap(), w, "{what}");
        } else {
            assert_output(&got, want, &what);
        }
        if let Some(w) = c.get("idf_weights") {
            let got: Vec<f64> = tv.idf_weights().unwrap().into_iter().map(f64::from).collect();
            let want = f64s(w);
            // Keras pads the idf weights to max_tokens with zeros; keel pads at call time
            assert_eq!(&want[got.len()..].iter().filter(|v| **v != 0.0).count(), &0, "{what}");
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{what}: idf {a} vs Keras {b}");
            }
        }
        // the saved layer vectorizes the same
        let back: TextVectorization = serde_json::from_str(&serde_json::to_string(&tv).unwrap()).unwrap();
        assert_eq!(back, tv, "{what}");
        assert_eq!(back.call(&probe).unwrap().to_vec_f64().unwrap(), got.to_vec_f64().unwrap(), "{what}");
    }
}

fn string_lookup(o: &Value) -> StringLookup {
    let mut l = StringLookup::new().output_mode(mode(o));
    if let Some(m) = o.get("max_tokens") {
        l = l.max_tokens(m.as_u64().unwrap() as usize);
    }
    if let Some(m) = o.get("mask_token").and_then(Value::as_str) {
        l = l.mask_token(m);
    }
    if let Some(m) = o.get("oov_token").and_then(Value::as_str) {
        l = l.oov_token(m);
    }
    if let Some(n) = o.get("num_oov_indices") {
        l = l.num_oov_indices(n.as_u64().unwrap() as usize);
    }
    if o.get("pad_to_max_tokens") == Some(&Value::Bool(true)) {
        l = l.pad_to_max_tokens(true);
    }
    if o.get("invert") == Some(&Value::Bool(true)) {
        l = l.invert(true);
    }
    if let Some(v) = o.get("vocabulary") {
        l = l.vocabulary(&strs(v)).unwrap();
    }
    l
}

#[test]
fn string_lookup_matches_keras() {
    let f = fixture();
    let cases = f["string_lookup"].as_array().unwrap();
    assert_eq!(cases.len(), 13);
    for c in cases {
        let o = &c["options"];
        let what = o.to_string();
        let mut l = string_lookup(o);
        if let Some(rows) = c["adapt"].as_array() {
            let rows: Vec<Vec<String>> = rows.iter().map(strs).collect();
            l.adapt_rows(&rows).unwrap();
        }
        assert_eq!(l.get_vocabulary(), strs(&c["vocabulary"]), "{what}");
        assert_eq!(l.vocabulary_size(), c["vocabulary_size"].as_u64().unwrap() as usize, "{what}");
        let probe = c["probe"].as_array().unwrap();
        let want = &c["output"];
        if o.get("invert") == Some(&Value::Bool(true)) {
            let ids: Vec<i64> = probe[0].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
            assert_eq!(l.call_invert(&ids).unwrap(), strs(&want["data"]), "{what}");
            continue;
        }
        let got = if probe[0].is_array() {
            let rows: Vec<Vec<String>> = probe.iter().map(strs).collect();
            l.call_rows(&rows).unwrap()
        } else {
            l.call(&strs(&c["probe"])).unwrap()
        };
        assert_output(&got, want, &what);
        if let Some(w) = c.get("idf_weights") {
            let got = l.idf_weights().unwrap();
            for (a, b) in got.iter().zip(f64s(w)) {
                assert!((f64::from(*a) - b).abs() <= 1e-6, "{what}: idf {a} vs Keras {b}");
            }
        }
        let back: StringLookup = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l, "{what}");
    }
}

#[test]
fn string_lookup_rank1_multi_hot_is_one_sample() {
    // Keras: a 1-D input to a multi_hot StringLookup is one sample
    let l = StringLookup::new().output_mode(TextOutputMode::MultiHot).vocabulary(&["a", "b"]).unwrap();
    let y = l.call(&["a", "b", "z"]).unwrap();
    assert_eq!(y.dims(), &[3]);
    assert_eq!(y.to_vec::<f32>().unwrap(), [1.0, 1.0, 1.0]);
    // a given vocabulary with its special tokens at the start is the same vocabulary
    let l2 = StringLookup::new().output_mode(TextOutputMode::MultiHot).vocabulary(&["[UNK]", "a", "b"]).unwrap();
    assert_eq!(l2.get_vocabulary(), l.get_vocabulary());
}

#[test]
fn json_round_trip_keeps_the_adapted_vocabulary() {
    let texts = ["Good movie, great acting!", "Bad movie.", "great GREAT fun", "boring and bad"];
    let mut tv = TextVectorization::new().max_tokens(8).ngrams(2).output_mode(TextOutputMode::TfIdf);
    tv.adapt(&texts).unwrap();
    let json = serde_json::to_string_pretty(&tv).unwrap();
    // Keras's config keys
    let v: Value = serde_json::from_str(&json).unwrap();
    for k in ["max_tokens", "standardize", "split", "ngrams", "output_mode", "vocabulary", "idf_weights"] {
        assert!(v.get(k).is_some(), "{k} missing from {json}");
    }
    assert_eq!(v["standardize"], "lower_and_strip_punctuation");
    assert_eq!(v["output_mode"], "tf_idf");
    assert_eq!(strs(&v["vocabulary"])[0], "[UNK]");
    let back: TextVectorization = serde_json::from_str(&json).unwrap();
    assert_eq!(back, tv);
    assert_eq!(back.get_vocabulary(), tv.get_vocabulary());
    assert_eq!(back.idf_weights(), tv.idf_weights());
    assert_eq!(back.call(&texts).unwrap().to_vec::<f32>().unwrap(), tv.call(&texts).unwrap().to_vec::<f32>().unwrap());
    // an adapted (not given) vocabulary may be adapted again after loading
    let mut again = back.clone();
    again.adapt(&["new words only"]).unwrap();
    assert!(again.get_vocabulary().contains(&"new words".to_owned()));

    // int mode, mask and OOV tokens
    let mut l = StringLookup::new().mask_token("[PAD]").oov_token("?");
    l.adapt(&["x", "y", "x"]).unwrap();
    let back: StringLookup = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
    assert_eq!(back.get_vocabulary(), ["[PAD]", "?", "x", "y"]);
    assert_eq!(back.call(&["[PAD]", "y", "q"]).unwrap().to_vec::<i64>().unwrap(), [0, 3, 1]);

    // tf_idf with no OOV index
    let mut l = StringLookup::new().num_oov_indices(0).output_mode(TextOutputMode::TfIdf);
    l.adapt_rows(&[["x", "y"], ["x", "x"]]).unwrap();
    let back: StringLookup = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
    assert_eq!(back, l);
    assert_eq!(back.get_vocabulary(), ["x", "y"]);
    let w = [(1.0f64 + 2.0 / 3.0).ln() as f32, (1.0f64 + 2.0 / 2.0).ln() as f32];
    assert_eq!(back.idf_weights().unwrap(), w);
    assert_eq!(back.call_rows(&[["y", "x"]]).unwrap().to_vec::<f32>().unwrap(), w);

    // a hand-edited file with a repeated term is an error, not a broken layer
    let bad = json.replacen("\"great\"", "\"movie\"", 1);
    assert_ne!(bad, json);
    let err = serde_json::from_str::<TextVectorization>(&bad).unwrap_err().to_string();
    assert!(err.contains("repeats [\"movie\"]"), "{err}");
}

fn err<T: std::fmt::Debug>(r: keel_data::Result<T>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn errors_are_values_with_clear_messages() {
    // call before adapt, with no vocabulary
    let e = err(TextVectorization::new().call(&["hello"]));
    assert!(e.contains("TextVectorization::call") && e.contains("adapt"), "{e}");
    let e = err(StringLookup::new().call(&["a"]));
    assert!(e.contains("StringLookup::call") && e.contains("no vocabulary"), "{e}");
    // max_tokens too small
    let e = err(TextVectorization::new().max_tokens(1).adapt(&["a b"]));
    assert!(e.contains("max_tokens must be greater than 1, got 1"), "{e}");
    let e = err(StringLookup::new().mask_token("m").max_tokens(2).vocabulary(&["a"]));
    assert!(e.contains("3 entries") && e.contains("max_tokens is 2"), "{e}");
    let e = err(TextVectorization::new().max_tokens(3).vocabulary(&["a", "b"]));
    assert!(e.contains("4 entries") && e.contains("max_tokens is 3"), "{e}");
    // options Keras refuses
    let e = err(TextVectorization::new().output_mode(TextOutputMode::Count).output_sequence_length(4).adapt(&["a"]));
    assert!(e.contains("output_sequence_length") && e.contains("count"), "{e}");
    let e = err(TextVectorization::new().pad_to_max_tokens(true).adapt(&["a"]));
    assert!(e.contains("pad_to_max_tokens needs max_tokens"), "{e}");
    let e = err(TextVectorization::new().output_mode(TextOutputMode::OneHot).adapt(&["a"]));
    assert!(e.contains("one_hot"), "{e}");
    let e = err(TextVectorization::new().ngrams(0).adapt(&["a"]));
    assert!(e.contains("ngrams"), "{e}");
    let e = err(StringLookup::new().num_oov_indices(2).adapt(&["a"]));
    assert!(e.contains("num_oov_indices 2"), "{e}");
    let e = err(StringLookup::new().invert(true).output_mode(TextOutputMode::Count).vocabulary(&["a"]));
    assert!(e.contains("invert needs output_mode int"), "{e}");
    // vocabularies
    let e = err(TextVectorization::new().vocabulary(&["a", "b", "a"]));
    assert!(e.contains("repeats [\"a\"]"), "{e}");
    let e = err(TextVectorization::new().vocabulary(&["a", ""]));
    assert!(e.contains("mask token"), "{e}");
    let e = err(TextVectorization::new().vocabulary::<&str>(&[]));
    assert!(e.contains("empty vocabulary"), "{e}");
    let e = err(TextVectorization::new().output_mode(TextOutputMode::TfIdf).vocabulary(&["a"]));
    assert!(e.contains("needs idf_weights"), "{e}");
    let e = err(TextVectorization::new().output_mode(TextOutputMode::TfIdf).vocabulary_with_idf(&["a", "b"], &[1.0]));
    assert!(e.contains("1 idf_weights for a vocabulary of 2"), "{e}");
    let e = err(TextVectorization::new().vocabulary_with_idf(&["a"], &[1.0]));
    assert!(e.contains("only for output_mode tf_idf"), "{e}");
    let mut given = TextVectorization::new().vocabulary(&["a"]).unwrap();
    let e = err(given.adapt(&["b"]));
    assert!(e.contains("given vocabulary"), "{e}");
    let e = err(TextVectorization::new().adapt(&["", "  ", "!!"]));
    assert!(e.contains("found no terms"), "{e}");
    // unknown strings with no OOV index, ragged int rows, one_hot rows, invert misuse
    let l = StringLookup::new().num_oov_indices(0).vocabulary(&["a"]).unwrap();
    let e = err(l.call(&["a", "zz"]));
    assert!(e.contains("\"zz\" is not in the vocabulary"), "{e}");
    let l = StringLookup::new().vocabulary(&["a"]).unwrap();
    let e = err(l.call_rows(&[vec!["a"], vec!["a", "a"]]));
    assert!(e.contains("rows of one length"), "{e}");
    let e = err(l.call_invert(&[1]));
    assert!(e.contains("invert(true)"), "{e}");
    let e =
        err(StringLookup::new().output_mode(TextOutputMode::OneHot).vocabulary(&["a"]).unwrap().call_rows(&[["a"]]));
    assert!(e.contains("one_hot"), "{e}");
    let e = err("tfidf".parse::<TextOutputMode>());
    assert!(e.contains("unknown output_mode 'tfidf'"), "{e}");
    // a huge id does not panic the inverse lookup
    let inv = StringLookup::new().invert(true).vocabulary(&["a"]).unwrap();
    assert_eq!(inv.call_invert(&[i64::MIN, i64::MAX, 1]).unwrap(), ["[UNK]", "[UNK]", "a"]);
}

#[test]
fn empty_batches_and_preprocess() {
    let mut tv = TextVectorization::new();
    tv.adapt(&["a b"]).unwrap();
    let none: [&str; 0] = [];
    assert_eq!(tv.call(&none).unwrap().dims(), &[0, 0]);
    assert_eq!(tv.clone().output_sequence_length(3).call(&none).unwrap().dims(), &[0, 3]);
    assert_eq!(tv.call(&[""]).unwrap().dims(), &[1, 0]);
    let tv2 = TextVectorization::new().ngrams(3);
    assert_eq!(tv2.preprocess(&["A b, C!"]), [vec!["a", "b", "c", "a b", "b c", "a b c"]]);
}
