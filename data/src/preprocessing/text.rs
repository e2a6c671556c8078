//! Keras's `TextVectorization`: standardize, split, n-grams, then a vocabulary lookup
//! ([`StringLookup`]) to integer sequences or per-document vectors.

use super::lookup::{StringLookup, TextOutputMode};
use crate::{Error, Result};
use keel_tensor::Tensor;
use serde::{Deserialize, Serialize};

/// How [`TextVectorization`] standardizes text before splitting (Keras's `standardize`;
/// `None` in the builder leaves the text as it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standardize {
    /// Lowercase, then strip punctuation (default).
    #[default]
    LowerAndStripPunctuation,
    /// Lowercase only.
    Lower,
    /// Strip punctuation only.
    StripPunctuation,
}

/// How [`TextVectorization`] splits standardized text into terms (Keras's `split`; `None` in
/// the builder keeps each string as one term).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// On runs of ASCII whitespace (default).
    #[default]
    Whitespace,
    /// Into Unicode scalar values (characters).
    Character,
}

/// Keras's `tf.strings.lower`: ASCII letters only (TensorFlow's default encoding `""`), so
/// `"ÉCOLE"` becomes `"École"`.
fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// Keras's punctuation regex ``[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']``: the 32 ASCII
/// punctuation characters (Python's `string.punctuation`); Unicode punctuation (`«`, `¿`) stays.
fn strip_punctuation(s: &str) -> String {
    s.chars().filter(|c| !c.is_ascii_punctuation()).collect()
}

/// `tf.strings.split(s)`: runs of `" \t\n\v\f\r"` (C `isspace`), no empty terms. Unicode spaces
/// (no-break space, U+3000) do not split, as in TensorFlow.
fn split_whitespace(s: &str) -> impl Iterator<Item = &str> {
    s.split([' ', '\t', '\n', '\x0b', '\x0c', '\r']).filter(|t| !t.is_empty())
}

/// `tf.strings.ngrams(terms, ngram_width=(1..=n), separator=" ")`: all 1-grams, then all
/// 2-grams, ... (a row shorter than a width has none of that width).
fn ngrams(terms: Vec<String>, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for w in 1..=n {
        if w == 1 {
            out.extend(terms.iter().cloned());
        } else {
            out.extend(terms.windows(w).map(|g| g.join(" ")));
        }
    }
    out
}

/// Keras `layers.TextVectorization`: turns strings into integer sequences (`"int"`) or
/// per-document vectors (`"multi_hot"`, `"count"`, `"tf_idf"`) through a vocabulary learned
/// by [`adapt`](Self::adapt) or given.
///
/// Each string is standardized (default: ASCII lowercase, ASCII punctuation stripped, as
/// Keras's TensorFlow ops do), split (default: on whitespace), optionally turned into
/// 1..=n-grams joined by a space, then looked up: id 0 is padding (the mask, `""`), 1 the OOV
/// token `"[UNK]"`, then the terms by descending frequency. Int output is I64
/// `[n, output_sequence_length]` (padded with 0 or cut at the end) or, without a length,
/// padded to the batch's longest row; the other modes give F32 `[n, depth]`.
///
/// Keel tensors hold no strings: this runs on the host, before the model; feed its output to
/// an `Embedding` (int) or a `Dense` (vectors). Serde save/load keeps the options and the
/// adapted vocabulary under Keras's config keys.
///
/// ```
/// use keel_data::preprocessing::TextVectorization;
/// let mut tv = TextVectorization::new().output_sequence_length(4);
/// tv.adapt(&["The cat sat.", "The dog sat on the cat!"])?;
/// assert_eq!(tv.get_vocabulary(), ["", "[UNK]", "the", "sat", "cat", "on", "dog"]);
/// let x = tv.call(&["the CAT ran"])?;
/// assert_eq!(x.to_vec::<i64>()?, [2, 4, 1, 0]);
/// # Ok::<(), keel_data::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "TextVectorizationConfig", try_from = "TextVectorizationConfig")]
pub struct TextVectorization {
    standardize: Option<Standardize>,
    split: Option<Split>,
    ngrams: Option<usize>,
    output_sequence_length: Option<usize>,
    lookup: StringLookup,
}

impl Default for TextVectorization {
    fn default() -> Self {
        TextVectorization {
            standardize: Some(Standardize::LowerAndStripPunctuation),
            split: Some(Split::Whitespace),
            ngrams: None,
            output_sequence_length: None,
            lookup: StringLookup::new().mask_token(""),
        }
    }
}

impl TextVectorization {
    /// Keras's defaults: lowercase and strip punctuation, split on whitespace, no n-grams,
    /// int output padded to the longest row, no `max_tokens`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The largest vocabulary, the padding and OOV entries included (Keras's `max_tokens`;
    /// must be > 1): `adapt` keeps the most frequent terms.
    pub fn max_tokens(mut self, n: usize) -> Self {
        self.lookup = self.lookup.max_tokens(n);
        self
    }

    /// The standardization, or `None` for none (default
    /// [`Standardize::LowerAndStripPunctuation`]).
    pub fn standardize(mut self, s: impl Into<Option<Standardize>>) -> Self {
        self.standardize = s.into();
        self
    }

    /// The split, or `None` to keep each string as one term (default [`Split::Whitespace`]).
    pub fn split(mut self, s: impl Into<Option<Split>>) -> Self {
        self.split = s.into();
        self
    }

    /// Terms become all 1-grams up to `n`-grams joined by a space (Keras's `ngrams=n`; `n >= 1`).
    pub fn ngrams(mut self, n: usize) -> Self {
        self.ngrams = Some(n);
        self
    }

    /// The output (default [`TextOutputMode::Int`]; [`TextOutputMode::OneHot`] is refused, as a 2-D
    /// input would give a 3-D one-hot output Keras does not make either).
    pub fn output_mode(mut self, mode: TextOutputMode) -> Self {
        self.lookup = self.lookup.output_mode(mode);
        self
    }

    /// Int output of exactly `n` ids per row: cut or padded with 0 at the end (int mode only).
    pub fn output_sequence_length(mut self, n: usize) -> Self {
        self.output_sequence_length = Some(n);
        self
    }

    /// Give non-int outputs `max_tokens` columns whatever the vocabulary size (default false).
    pub fn pad_to_max_tokens(mut self, on: bool) -> Self {
        self.lookup = self.lookup.pad_to_max_tokens(on);
        self
    }

    /// A given vocabulary (Keras's `vocabulary=`), with or without `""` and `"[UNK]"` at its
    /// start; call it after the other options. For TF-IDF use
    /// [`vocabulary_with_idf`](Self::vocabulary_with_idf).
    pub fn vocabulary<S: AsRef<str>>(mut self, terms: &[S]) -> Result<Self> {
        self.set_vocabulary(terms, None)?;
        Ok(self)
    }

    /// A given vocabulary and its idf weights (one per term given), for TF-IDF output.
    pub fn vocabulary_with_idf<S: AsRef<str>>(mut self, terms: &[S], idf_weights: &[f32]) -> Result<Self> {
        self.set_vocabulary(terms, Some(idf_weights))?;
        Ok(self)
    }

    /// Keras's `set_vocabulary` (see [`StringLookup::set_vocabulary`]).
    pub fn set_vocabulary<S: AsRef<str>>(&mut self, terms: &[S], idf_weights: Option<&[f32]>) -> Result<()> {
        const OP: &str = "TextVectorization::set_vocabulary";
        self.check_options(OP)?;
        self.lookup.set_vocabulary_inner(OP, terms, idf_weights)
    }

    /// Learn the vocabulary from `texts` (each one document): terms by descending count, ties
    /// by descending (byte) order as Keras breaks them, cut to `max_tokens`; in TF-IDF mode the
    /// idf weights `ln(1 + documents / (1 + documents containing the term))` too, the OOV
    /// weight being their mean. Refused when a vocabulary was given.
    pub fn adapt<S: AsRef<str>>(&mut self, texts: &[S]) -> Result<()> {
        const OP: &str = "TextVectorization::adapt";
        self.check_options(OP)?;
        let rows = self.preprocess(texts);
        let rows: Vec<Vec<&str>> = rows.iter().map(|r| r.iter().map(String::as_str).collect()).collect();
        self.lookup.adapt_rows_inner(OP, &rows)
    }

    /// The terms of each text after standardization, splitting and n-grams (what `adapt`
    /// counts and `call` looks up).
    pub fn preprocess<S: AsRef<str>>(&self, texts: &[S]) -> Vec<Vec<String>> {
        texts
            .iter()
            .map(|t| {
                let t = t.as_ref();
                let s = match self.standardize {
                    None => t.to_owned(),
                    Some(Standardize::Lower) => lower(t),
                    Some(Standardize::StripPunctuation) => strip_punctuation(t),
                    Some(Standardize::LowerAndStripPunctuation) => strip_punctuation(&lower(t)),
                };
                let terms: Vec<String> = match self.split {
                    None => vec![s],
                    Some(Split::Whitespace) => split_whitespace(&s).map(str::to_owned).collect(),
                    Some(Split::Character) => s.chars().map(String::from).collect(),
                };
                match self.ngrams {
                    Some(n) if n > 1 => ngrams(terms, n),
                    _ => terms,
                }
            })
            .collect()
    }

    /// The vocabulary in id order (Keras's `get_vocabulary()`): `""` (int mode), `"[UNK]"`,
    /// then the terms. Before adapt, the special tokens only.
    pub fn get_vocabulary(&self) -> Vec<String> {
        self.lookup.get_vocabulary()
    }

    /// The vocabulary size, special tokens included (Keras's `vocabulary_size()`).
    pub fn vocabulary_size(&self) -> usize {
        self.lookup.vocabulary_size()
    }

    /// The idf weights in id order (TF-IDF mode, once adapted or given).
    pub fn idf_weights(&self) -> Option<Vec<f32>> {
        self.lookup.idf_weights()
    }

    /// The lookup layer inside (its vocabulary, depth, ...).
    pub fn lookup(&self) -> &StringLookup {
        &self.lookup
    }

    /// Vectorize `texts`: I64 `[n, len]` in int mode (`len` is `output_sequence_length`, else
    /// the longest row; shorter rows end with 0), F32 `[n, depth]` otherwise.
    pub fn call<S: AsRef<str>>(&self, texts: &[S]) -> Result<Tensor> {
        const OP: &str = "TextVectorization::call";
        self.check_options(OP)?;
        self.lookup.check_call(OP)?;
        let rows = self.preprocess(texts);
        let mut ids = Vec::with_capacity(rows.len());
        for r in &rows {
            ids.push(self.lookup.ids(OP, r.iter().map(String::as_str))?);
        }
        if self.lookup.get_output_mode() != TextOutputMode::Int {
            return self.lookup.encode(&ids);
        }
        let len = self.output_sequence_length.unwrap_or_else(|| ids.iter().map(Vec::len).max().unwrap_or(0));
        let mut out = vec![0i64; ids.len() * len];
        for (row, r) in out.chunks_exact_mut(len.max(1)).zip(&ids) {
            for (o, i) in row.iter_mut().zip(r) {
                *o = i.unwrap_or(0);
            }
        }
        Ok(Tensor::from_vec(out, [ids.len(), len])?)
    }

    fn check_options(&self, op: &'static str) -> Result<()> {
        let mode = self.lookup.get_output_mode();
        if mode == TextOutputMode::OneHot {
            return Err(Error::invalid(
                op,
                "output_mode one_hot is not available for text (its output would be 3-D); use int with an \
                 Embedding, or multi_hot",
            ));
        }
        if mode != TextOutputMode::Int && self.output_sequence_length.is_some() {
            return Err(Error::invalid(
                op,
                format!("output_sequence_length is only for output_mode int (this one is {})", mode.as_str()),
            ));
        }
        if self.ngrams == Some(0) {
            return Err(Error::invalid(op, "ngrams must be >= 1 (1 means single terms)"));
        }
        self.lookup.check_options(op)
    }
}

/// `TextVectorization`'s saved form: Keras's config keys, the vocabulary in id order
/// (special tokens included) and the idf weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TextVectorizationConfig {
    max_tokens: Option<usize>,
    standardize: Option<Standardize>,
    split: Option<Split>,
    ngrams: Option<usize>,
    output_mode: TextOutputMode,
    output_sequence_length: Option<usize>,
    pad_to_max_tokens: bool,
    vocabulary: Option<Vec<String>>,
    idf_weights: Option<Vec<f32>>,
    #[serde(default)]
    has_input_vocabulary: bool,
}

impl From<TextVectorization> for TextVectorizationConfig {
    fn from(t: TextVectorization) -> Self {
        let l = &t.lookup;
        TextVectorizationConfig {
            max_tokens: l.get_max_tokens(),
            standardize: t.standardize,
            split: t.split,
            ngrams: t.ngrams,
            output_mode: l.get_output_mode(),
            output_sequence_length: t.output_sequence_length,
            pad_to_max_tokens: l.get_pad_to_max_tokens(),
            vocabulary: l.has_vocabulary().then(|| l.get_vocabulary()),
            idf_weights: l.idf_weights().filter(|_| l.has_vocabulary()),
            has_input_vocabulary: l.has_input_vocabulary(),
        }
    }
}

impl TryFrom<TextVectorizationConfig> for TextVectorization {
    type Error = Error;
    fn try_from(c: TextVectorizationConfig) -> Result<Self> {
        const OP: &str = "TextVectorization (deserialize)";
        let mut t = TextVectorization {
            standardize: c.standardize,
            split: c.split,
            ngrams: c.ngrams,
            output_sequence_length: c.output_sequence_length,
            ..TextVectorization::default()
        };
        t.lookup = t.lookup.output_mode(c.output_mode).pad_to_max_tokens(c.pad_to_max_tokens);
        if let Some(m) = c.max_tokens {
            t.lookup = t.lookup.max_tokens(m);
        }
        t.check_options(OP)?;
        if let Some(v) = &c.vocabulary {
            let idf = c.idf_weights.as_deref().filter(|_| c.output_mode == TextOutputMode::TfIdf);
            t.lookup.set_vocabulary_inner(OP, v, idf)?;
        }
        t.lookup.set_has_input_vocabulary(c.has_input_vocabulary);
        Ok(t)
    }
}
