//! `text_dataset_from_directory` against Keras 3.15.1 (fixtures/text_dataset_fixtures.json,
//! written by fixtures/make_text_dataset_fixtures.py): the same tree gives the same texts,
//! labels and class names in Keras's order (unshuffled) for every label mode, a class_names
//! subset, max_length and a validation split; plus the seeded shuffle, UTF-8 handling and
//! the errors.

mod common;
use keel_data::folder::{LabelMode, Subset};
use keel_data::text_dataset_from_directory;
use serde_json::Value;
use std::path::Path;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/text_dataset_fixtures.json")).unwrap()
}

/// The fixture's tree, written under a fresh directory.
fn tree(name: &str) -> common::TempDir {
    let d = common::temp_dir(name);
    for (rel, text) in fixture()["files"].as_object().unwrap() {
        let path = d.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text.as_str().unwrap()).unwrap();
    }
    d
}

/// The labels of `y` as Keras's fixture writes them (an int, or a list per sample).
fn labels_of(y: &keel_tensor::Tensor) -> Value {
    match y.rank() {
        1 => Value::from(y.to_vec::<i64>().unwrap()),
        _ => {
            let k = y.dims()[1];
            let v = y.to_vec::<f32>().unwrap();
            Value::from(v.chunks(k).map(|c| c.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()).collect::<Vec<_>>())
        }
    }
}

#[test]
fn the_same_tree_loads_as_in_keras() {
    let fx = fixture();
    let d = tree("keras");
    let base = || text_dataset_from_directory(&*d).shuffle(false);
    let cases = [
        ("int", base()),
        ("categorical", base().label_mode(LabelMode::Categorical)),
        ("binary", base().label_mode(LabelMode::Binary).class_names(["pos", "neg"])),
        ("max_length", base().max_length(12)),
        ("training", base().validation_split(0.3).subset(Subset::Training)),
        ("validation", base().validation_split(0.3).subset(Subset::Validation)),
    ];
    for (name, folder) in cases {
        let want = &fx["cases"][name];
        let ds = folder.load().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(Value::from(ds.texts.clone()), want["texts"], "{name}: texts");
        assert_eq!(labels_of(&ds.y), want["labels"], "{name}: labels");
        assert_eq!(Value::from(ds.class_names.clone()), want["class_names"], "{name}: class names");
        assert_eq!(ds.file_paths.len(), ds.texts.len());
    }
    // load_both gives the two subsets
    let (train, val) = base().validation_split(0.3).load_both().unwrap();
    assert_eq!(Value::from(train.texts), fx["cases"]["training"]["texts"]);
    assert_eq!(Value::from(val.texts), fx["cases"]["validation"]["texts"]);
}

#[test]
fn a_seeded_shuffle_is_repeatable_and_the_split_partitions_it() {
    let d = tree("shuffle");
    let load = |seed| text_dataset_from_directory(&*d).seed(seed).load().unwrap();
    let (a, b) = (load(7), load(7));
    assert_eq!(a.texts, b.texts);
    assert_eq!(a.y.to_vec::<i64>().unwrap(), b.y.to_vec::<i64>().unwrap());
    // the labels follow their texts through the shuffle
    let sorted = text_dataset_from_directory(&*d).shuffle(false).load().unwrap();
    let label_of = |t: &String| sorted.y.to_vec::<i64>().unwrap()[sorted.texts.iter().position(|s| s == t).unwrap()];
    assert_eq!(a.texts.iter().map(label_of).collect::<Vec<_>>(), a.y.to_vec::<i64>().unwrap());
    assert_ne!(a.texts, sorted.texts, "seed 7 shuffles the 8 texts");
    let (train, val) = text_dataset_from_directory(&*d).validation_split(0.25).seed(3).load_both().unwrap();
    assert_eq!((train.texts.len(), val.texts.len()), (6, 2));
    let mut all: Vec<String> = train.texts.into_iter().chain(val.texts).collect();
    all.sort();
    let mut want = sorted.texts.clone();
    want.sort();
    assert_eq!(all, want, "the subsets partition the texts");
}

#[test]
fn text_is_utf8_and_max_length_never_splits_a_character() {
    let d = common::temp_dir("utf8");
    std::fs::create_dir_all(d.join("a")).unwrap();
    std::fs::write(d.join("a/x.txt"), "caf\u{e9} \u{1F600}!").unwrap(); // é is 2 bytes, the emoji 4
    std::fs::write(d.join("a/y.txt"), [b'o', b'k', 0xFF, b'!']).unwrap(); // not UTF-8
    let load = |max: Option<usize>| {
        let f = text_dataset_from_directory(&*d).shuffle(false);
        match max {
            Some(m) => f.max_length(m),
            None => f,
        }
        .load()
        .unwrap()
        .texts
    };
    assert_eq!(load(None), ["caf\u{e9} \u{1F600}!", "ok\u{FFFD}!"]);
    assert_eq!(load(Some(4))[0], "caf", "the cut falls inside \u{e9}: it is dropped");
    assert_eq!(load(Some(5))[0], "caf\u{e9}");
    assert_eq!(load(Some(8))[0], "caf\u{e9} ", "inside the emoji");
    assert_eq!(load(Some(10))[0], "caf\u{e9} \u{1F600}");
    assert_eq!(load(Some(100))[0], "caf\u{e9} \u{1F600}!");
    assert_eq!(load(Some(0)), ["", ""]);
}

#[test]
fn bad_trees_and_options_are_errors_that_say_what_to_do() {
    let err = |dir: &Path, f: &dyn Fn(keel_data::TextFolder) -> keel_data::TextFolder| {
        f(text_dataset_from_directory(dir)).load().unwrap_err().to_string()
    };
    let d = tree("errors");
    let e = err(&d, &|f| f.class_names(["pos", "nope"]));
    assert!(e.contains("'nope'") && e.contains("\"neg\""), "{e}");
    let e = err(&d, &|f| f.label_mode(LabelMode::Binary));
    assert!(e.contains("exactly 2 classes") && e.contains("3"), "{e}");
    let e = err(&d, &|f| f.validation_split(0.2));
    assert!(e.contains("subset"), "{e}");
    let e = err(&d, &|f| f.validation_split(0.2).subset(Subset::Training));
    assert!(e.contains("seed"), "{e}");
    let e = err(&d, &|f| f.validation_split(1.5).subset(Subset::Training).seed(1));
    assert!(e.contains("between 0 and 1"), "{e}");
    let e = text_dataset_from_directory(&*d).load_both().unwrap_err().to_string();
    assert!(e.contains("load_both needs .validation_split"), "{e}");
    let empty = common::temp_dir("empty");
    assert!(err(&empty, &|f| f).contains("directory is empty"));
    std::fs::write(empty.join("loose.txt"), "x").unwrap();
    let e = err(&empty, &|f| f);
    assert!(e.contains("no class subfolders") && e.contains("dir/cats/*.txt"), "{e}");
    std::fs::create_dir_all(empty.join("cls")).unwrap();
    std::fs::write(empty.join("cls/a.csv"), "x").unwrap();
    let e = err(&empty, &|f| f);
    assert!(e.contains("no text files found") && e.contains(".txt"), "{e}");
    let e = err(&d.join("missing"), &|f| f);
    assert!(e.contains("missing"), "{e}");
}
