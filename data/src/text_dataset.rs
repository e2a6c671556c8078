//! Keras's `text_dataset_from_directory`: the `.txt` files of one subfolder per class (the
//! IMDB `aclImdb/train/{neg,pos}` layout) as strings and labels, for
//! [`TextVectorization`](crate::preprocessing::TextVectorization) and `fit`.
//!
//! ```no_run
//! use keel_data::folder::Subset;
//! use keel_data::preprocessing::TextVectorization;
//! use keel_data::text_dataset_from_directory;
//! # fn main() -> keel_data::Result<()> {
//! // aclImdb/train/neg/*.txt, aclImdb/train/pos/*.txt: one folder per class
//! let (train, val) = text_dataset_from_directory("aclImdb/train").validation_split(0.2).seed(1337).load_both()?;
//! assert_eq!(train.class_names, ["neg", "pos"]); // label i = class_names[i]
//! let mut vectorize = TextVectorization::new().max_tokens(20_000).output_sequence_length(200);
//! vectorize.adapt(&train.texts)?;
//! let (x, x_val) = (vectorize.call(&train.texts)?, vectorize.call(&val.texts)?);
//! // model.fit(&x, &train.y, Fit::new().validation_data(&x_val, &val.y))
//! # Ok(()) }
//! ```

use crate::folder::{folder_builders, FileKind, FolderOptions};
use crate::{Error, Result};
use keel_tensor::Tensor;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The operation errors name.
const OP: &str = "text_dataset_from_directory";

/// The files [`text_dataset_from_directory`] reads: `.txt`, as Keras.
const TEXTS: FileKind = FileKind { what: "text files", extensions: &["txt"], unsupported: &[] };

/// Texts and labels loaded from a directory tree.
#[derive(Debug, Clone)]
pub struct TextDataset {
    /// Each file's contents (UTF-8; see [`text_dataset_from_directory`]), in the load order.
    pub texts: Vec<String>,
    /// Labels, as set by [`LabelMode`](crate::folder::LabelMode): I64 `[N]`, one-hot F32
    /// `[N, classes]` or F32 `[N, 1]`.
    pub y: Tensor,
    /// Class names (the non-hidden subfolders, or those set with `class_names`); label `i`
    /// is `class_names[i]`.
    pub class_names: Vec<String>,
    /// The file each text came from, in the order of `texts`.
    pub file_paths: Vec<PathBuf>,
}

/// Start configuring a Keras-style `text_dataset_from_directory(dir)` load.
///
/// `dir` holds one subfolder per class, searched recursively for `.txt` files (files
/// directly in `dir` are ignored). Class names are the subfolder names sorted alphabetically,
/// hidden ones (names starting with `.`) skipped as in Keras, or those set with
/// [`TextFolder::class_names`]. Each file is read whole and decoded as UTF-8, a byte that is
/// not UTF-8 becoming U+FFFD (Keras keeps the raw bytes, which a string tensor can hold and a
/// Rust `String` cannot). Call [`TextFolder::load`] (or [`TextFolder::load_both`]).
pub fn text_dataset_from_directory(dir: impl AsRef<Path>) -> TextFolder {
    TextFolder::new(dir)
}

/// Options of a text-folder load (see [`text_dataset_from_directory`]); Keras's defaults.
#[derive(Debug, Clone)]
pub struct TextFolder {
    opts: FolderOptions,
    max_length: Option<usize>,
}

folder_builders!(TextFolder, "texts");

impl TextFolder {
    /// Load from `dir` with Keras's defaults: whole texts, int labels, shuffled, no split.
    pub fn new(dir: impl AsRef<Path>) -> Self {
        TextFolder { opts: FolderOptions::new(dir), max_length: None }
    }

    /// Keep at most the first `bytes` bytes of each file (Keras's `max_length`, which cuts
    /// bytes too); a character that the cut would split is dropped whole.
    pub fn max_length(mut self, bytes: usize) -> Self {
        self.max_length = Some(bytes);
        self
    }

    /// Load the texts: all of them, or the chosen [`subset`](Self::subset) of a split.
    pub fn load(&self) -> Result<TextDataset> {
        let (paths, labels, class_names) = self.opts.load_index(OP, &TEXTS)?;
        self.materialize(paths, labels, class_names)
    }

    /// Load both parts of a `validation_split`: `(training, validation)` (Keras `subset="both"`).
    pub fn load_both(&self) -> Result<(TextDataset, TextDataset)> {
        let ((tp, tl), (vp, vl), class_names) = self.opts.load_both_index(OP, &TEXTS)?;
        Ok((self.materialize(tp, tl, class_names.clone())?, self.materialize(vp, vl, class_names)?))
    }

    /// Read `paths` (in parallel) and build the dataset.
    fn materialize(&self, paths: Vec<PathBuf>, labels: Vec<usize>, class_names: Vec<String>) -> Result<TextDataset> {
        let texts = paths
            .par_iter()
            .map(|p| {
                let bytes = std::fs::read(p).map_err(|e| Error::io(p, e))?;
                Ok(decode(&bytes, self.max_length))
            })
            .collect::<Result<Vec<String>>>()?;
        let y = self.opts.label_tensor(&labels, class_names.len())?;
        Ok(TextDataset { texts, y, class_names, file_paths: paths })
    }
}

/// `bytes` as UTF-8 (others as U+FFFD), cut to `max_length` bytes without splitting a character.
fn decode(bytes: &[u8], max_length: Option<usize>) -> String {
    let Some(max) = max_length.filter(|&m| m < bytes.len()) else { return String::from_utf8_lossy(bytes).into_owned() };
    // the start of the character the cut falls in: back over at most 3 continuation bytes
    let mut start = max;
    while start > 0 && max - start < 3 && bytes[start] & 0xC0 == 0x80 {
        start -= 1;
    }
    let len = match bytes[start] {
        b if b >= 0xF0 => 4,
        b if b >= 0xE0 => 3,
        b if b >= 0xC0 => 2,
        _ => 1,
    };
    // a character that does not end before the cut is dropped whole
    let end = if start < max && start + len > max { start } else { max };
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}
