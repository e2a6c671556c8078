//! Keras's `StringLookup`: strings to integer ids (or one-hot / multi-hot / count / TF-IDF
//! vectors) through a vocabulary, and back. [`TextVectorization`](super::TextVectorization)
//! holds one, as Keras's does, so both share the vocabulary code (adapt, special tokens,
//! encoding, save/load).

use crate::{Error, Result};
use keel_tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::str::FromStr;

/// What `StringLookup` and `TextVectorization` output (Keras's `output_mode`; the integer layers of keel-nn have their own `OutputMode`, without `TfIdf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextOutputMode {
    /// One integer id per token (default): I64.
    #[default]
    Int,
    /// One F32 one-hot row per token (`StringLookup` on a 1-D input only).
    OneHot,
    /// One F32 row per sample with 1 where a vocabulary term occurs (Keras's `"binary"` too).
    MultiHot,
    /// One F32 row per sample with how often each term occurs.
    Count,
    /// `count * idf` per term, with the idf weights learned by `adapt` (or given).
    TfIdf,
}

impl TextOutputMode {
    /// Keras's name: `"int"`, `"one_hot"`, `"multi_hot"`, `"count"`, `"tf_idf"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TextOutputMode::Int => "int",
            TextOutputMode::OneHot => "one_hot",
            TextOutputMode::MultiHot => "multi_hot",
            TextOutputMode::Count => "count",
            TextOutputMode::TfIdf => "tf_idf",
        }
    }
}

impl FromStr for TextOutputMode {
    type Err = Error;
    /// Keras's names, with its aliases `"binary"` (multi_hot) and `"tf-idf"`.
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "int" => TextOutputMode::Int,
            "one_hot" => TextOutputMode::OneHot,
            "multi_hot" | "binary" => TextOutputMode::MultiHot,
            "count" => TextOutputMode::Count,
            "tf_idf" | "tf-idf" => TextOutputMode::TfIdf,
            _ => {
                return Err(Error::invalid(
                    "TextOutputMode",
                    format!("unknown output_mode '{s}'; use int, one_hot, multi_hot, count or tf_idf"),
                ))
            }
        })
    }
}

/// The learned (or given) terms, without the special tokens, plus their index and idf weights.
#[derive(Debug, Clone, Default, PartialEq)]
struct Vocab {
    tokens: Vec<String>,
    index: HashMap<String, usize>,
    /// `(weight of each OOV index, weight of each term)` in TF-IDF mode.
    idf: Option<(f32, Vec<f32>)>,
}

impl Vocab {
    fn new(tokens: Vec<String>, idf: Option<(f32, Vec<f32>)>) -> Self {
        let index = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i)).collect();
        Vocab { tokens, index, idf }
    }
}

/// Keras `layers.StringLookup`: maps strings to integer ids through a vocabulary learned by
/// [`adapt`](Self::adapt) (by frequency) or given with [`vocabulary`](Self::vocabulary).
///
/// Ids as Keras's: with a `mask_token` (int mode only) id 0 is the mask, then
/// `num_oov_indices` out-of-vocabulary ids (the `oov_token`, default `"[UNK]"`), then the
/// terms. [`get_vocabulary`](Self::get_vocabulary) lists them in id order. Other output modes
/// give one F32 row per sample of [`depth`](Self::depth) columns (the vocabulary size, or
/// `max_tokens` with `pad_to_max_tokens`); there the mask token is dropped.
/// With [`invert`](Self::invert) the layer maps ids back to strings ([`call_invert`](Self::call_invert)).
///
/// Keel tensors hold no strings, so the inputs are Rust string slices and the layer runs on
/// the host, before the model. Serde save/load keeps the vocabulary (and idf weights) under
/// Keras's config keys.
///
/// ```
/// use keel_data::preprocessing::StringLookup;
/// let mut lookup = StringLookup::new();
/// lookup.adapt(&["b", "a", "b", "c", "b", "a"])?;
/// assert_eq!(lookup.get_vocabulary(), ["[UNK]", "b", "a", "c"]);
/// assert_eq!(lookup.call(&["a", "zzz", "b"])?.to_vec::<i64>()?, [2, 0, 1]);
/// # Ok::<(), keel_data::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "StringLookupConfig", try_from = "StringLookupConfig")]
pub struct StringLookup {
    max_tokens: Option<usize>,
    num_oov_indices: usize,
    mask_token: Option<String>,
    oov_token: String,
    invert: bool,
    output_mode: TextOutputMode,
    pad_to_max_tokens: bool,
    vocab: Vocab,
    has_input_vocabulary: bool,
}

impl Default for StringLookup {
    fn default() -> Self {
        StringLookup {
            max_tokens: None,
            num_oov_indices: 1,
            mask_token: None,
            oov_token: "[UNK]".into(),
            invert: false,
            output_mode: TextOutputMode::Int,
            pad_to_max_tokens: false,
            vocab: Vocab::default(),
            has_input_vocabulary: false,
        }
    }
}

/// The mean of `w` (computed in f64), the idf weight Keras gives the OOV index.
fn mean_f32(w: &[f32]) -> f32 {
    (w.iter().map(|&v| f64::from(v)).sum::<f64>() / w.len().max(1) as f64) as f32
}

/// The largest id an `i64` output holds (vocabulary sizes beyond it are refused).
fn as_id(i: usize) -> i64 {
    i64::try_from(i).unwrap_or(i64::MAX)
}

impl StringLookup {
    /// Keras's defaults: no `max_tokens`, one OOV index (`"[UNK]"`), no mask token, int output.
    pub fn new() -> Self {
        Self::default()
    }

    /// The largest vocabulary, special tokens included (Keras's `max_tokens`; must be > 1).
    /// `adapt` keeps the most frequent terms.
    pub fn max_tokens(mut self, n: usize) -> Self {
        self.max_tokens = Some(n);
        self
    }

    /// How many ids out-of-vocabulary strings get: 1 (default) or 0 (an unknown string is
    /// then an error). Keras's hashing into several OOV ids (`> 1`) is not supported.
    pub fn num_oov_indices(mut self, n: usize) -> Self {
        self.num_oov_indices = n;
        self
    }

    /// A token that means padding: id 0 in int mode, dropped by the other modes (default: none).
    pub fn mask_token(mut self, token: &str) -> Self {
        self.mask_token = Some(token.to_owned());
        self
    }

    /// The string standing for out-of-vocabulary ids (default `"[UNK]"`).
    pub fn oov_token(mut self, token: &str) -> Self {
        self.oov_token = token.to_owned();
        self
    }

    /// Map ids back to strings ([`call_invert`](Self::call_invert)); int mode only.
    pub fn invert(mut self, on: bool) -> Self {
        self.invert = on;
        self
    }

    /// The output (default [`TextOutputMode::Int`]).
    pub fn output_mode(mut self, mode: TextOutputMode) -> Self {
        self.output_mode = mode;
        self
    }

    /// Give non-int outputs `max_tokens` columns whatever the vocabulary size (default false).
    pub fn pad_to_max_tokens(mut self, on: bool) -> Self {
        self.pad_to_max_tokens = on;
        self
    }

    /// A given vocabulary (Keras's `vocabulary=`), with or without the special tokens at its
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

    /// Keras's `set_vocabulary`: replace the vocabulary (and, in TF-IDF mode, the idf weights,
    /// required there and refused elsewhere). The special tokens may lead the list in id
    /// order (as [`get_vocabulary`](Self::get_vocabulary) gives it); without them the OOV
    /// idf weight is the mean of the others, as Keras sets it. A layer with a given vocabulary
    /// cannot be adapted.
    pub fn set_vocabulary<S: AsRef<str>>(&mut self, terms: &[S], idf_weights: Option<&[f32]>) -> Result<()> {
        self.set_vocabulary_inner("StringLookup::set_vocabulary", terms, idf_weights)
    }

    pub(crate) fn set_vocabulary_inner<S: AsRef<str>>(
        &mut self,
        op: &'static str,
        terms: &[S],
        idf_weights: Option<&[f32]>,
    ) -> Result<()> {
        self.check_options(op)?;
        let tfidf = self.output_mode == TextOutputMode::TfIdf;
        if tfidf && idf_weights.is_none() {
            return Err(Error::invalid(op, "output_mode tf_idf needs idf_weights with the vocabulary"));
        }
        if !tfidf && idf_weights.is_some() {
            return Err(Error::invalid(
                op,
                format!("idf_weights are only for output_mode tf_idf (this one is {})", self.output_mode.as_str()),
            ));
        }
        if terms.is_empty() {
            return Err(Error::invalid(op, "cannot set an empty vocabulary"));
        }
        let all: Vec<&str> = terms.iter().map(AsRef::as_ref).collect();
        let specials = self.special_tokens();
        let found_specials = all.len() >= specials.len() && all[..specials.len()] == specials[..];
        let tokens = if found_specials { &all[specials.len()..] } else { &all[..] };
        let mut seen = HashMap::new();
        let mut repeated = Vec::new();
        for t in tokens {
            let n = seen.entry(*t).or_insert(0usize);
            *n += 1;
            if *n == 2 {
                repeated.push(*t);
            }
        }
        if !repeated.is_empty() {
            return Err(Error::invalid(op, format!("the vocabulary repeats {repeated:?}; give each term once")));
        }
        let vocab = Vocab::new(tokens.iter().map(|t| (*t).to_owned()).collect(), None);
        self.check_vocab_against_options(op, &vocab)?;
        let idf = match idf_weights {
            None => None,
            Some(w) => {
                if w.len() != all.len() {
                    return Err(Error::invalid(
                        op,
                        format!("{} idf_weights for a vocabulary of {}; give one per term", w.len(), all.len()),
                    ));
                }
                // with no OOV index there is no OOV weight (0, so a saved layer loads back equal)
                if self.num_oov_indices == 0 {
                    Some((0.0, w.to_vec()))
                } else if found_specials {
                    Some((w[self.oov_start()], w[specials.len()..].to_vec()))
                } else {
                    Some((mean_f32(w), w.to_vec()))
                }
            }
        };
        self.vocab = Vocab { idf, ..vocab };
        self.has_input_vocabulary = true;
        Ok(())
    }

    /// Learn the vocabulary from `data`, each string one term (Keras's `adapt` on a 1-D
    /// array): terms by descending count, ties by descending (byte) order as Keras breaks
    /// them, cut to `max_tokens`; in TF-IDF mode also the idf weights
    /// `ln(1 + documents / (1 + documents containing the term))`, the OOV weight being their mean.
    pub fn adapt<S: AsRef<str>>(&mut self, data: &[S]) -> Result<()> {
        let rows: Vec<Vec<&str>> = data.iter().map(|s| vec![s.as_ref()]).collect();
        self.adapt_rows_inner("StringLookup::adapt", &rows)
    }

    /// [`adapt`](Self::adapt) on rows of terms: each row is one document (for the idf weights).
    pub fn adapt_rows<R: AsRef<[S]>, S: AsRef<str>>(&mut self, rows: &[R]) -> Result<()> {
        let rows: Vec<Vec<&str>> = rows.iter().map(|r| r.as_ref().iter().map(AsRef::as_ref).collect()).collect();
        self.adapt_rows_inner("StringLookup::adapt_rows", &rows)
    }

    pub(crate) fn adapt_rows_inner(&mut self, op: &'static str, rows: &[Vec<&str>]) -> Result<()> {
        if self.has_input_vocabulary {
            return Err(Error::invalid(
                op,
                "the layer has a given vocabulary; adapt a new layer instead of setting vocabulary",
            ));
        }
        self.check_options(op)?;
        // (count, documents containing the term, last document counted)
        let mut counts: HashMap<&str, (u64, u64, usize)> = HashMap::new();
        for (d, row) in rows.iter().enumerate() {
            for &t in row {
                let e = counts.entry(t).or_insert((0, 0, usize::MAX));
                e.0 += 1;
                if e.2 != d {
                    e.1 += 1;
                    e.2 = d;
                }
            }
        }
        if let Some(m) = &self.mask_token {
            counts.remove(m.as_str());
        }
        counts.remove(self.oov_token.as_str());
        let mut terms: Vec<(&str, u64, u64)> = counts.into_iter().map(|(t, (c, d, _))| (t, c, d)).collect();
        // Keras: np.lexsort((tokens, counts))[::-1], i.e. count then token bytes, both descending
        terms.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.as_bytes().cmp(a.0.as_bytes())));
        if let Some(m) = self.max_tokens {
            terms.truncate(m.saturating_sub(self.token_start()));
        }
        if terms.is_empty() {
            return Err(Error::invalid(
                op,
                format!(
                    "found no terms to learn in {} documents{}; adapt on data with text",
                    rows.len(),
                    if self.max_tokens.is_some() { " (or max_tokens leaves no room)" } else { "" }
                ),
            ));
        }
        let idf = (self.output_mode == TextOutputMode::TfIdf).then(|| {
            let n = rows.len() as f64;
            let w: Vec<f32> = terms.iter().map(|t| (1.0 + n / (1.0 + t.2 as f64)).ln() as f32).collect();
            (if self.num_oov_indices == 0 { 0.0 } else { mean_f32(&w) }, w)
        });
        self.vocab = Vocab::new(terms.into_iter().map(|t| t.0.to_owned()).collect(), idf);
        Ok(())
    }

    /// The vocabulary in id order, special tokens included (Keras's `get_vocabulary()`): an
    /// id's string is at its index. Before adapt, the special tokens only.
    pub fn get_vocabulary(&self) -> Vec<String> {
        let mut v: Vec<String> = self.special_tokens().into_iter().map(str::to_owned).collect();
        v.extend(self.vocab.tokens.iter().cloned());
        v
    }

    /// The learned (or given) terms without the special tokens
    /// (Keras's `get_vocabulary(include_special_tokens=False)`).
    pub fn terms(&self) -> &[String] {
        &self.vocab.tokens
    }

    /// The vocabulary size, special tokens included (Keras's `vocabulary_size()`).
    pub fn vocabulary_size(&self) -> usize {
        self.token_start() + self.vocab.tokens.len()
    }

    /// The number of columns of a non-int output: `max_tokens` with `pad_to_max_tokens`, else
    /// the vocabulary size.
    pub fn depth(&self) -> usize {
        match (self.pad_to_max_tokens, self.max_tokens) {
            (true, Some(m)) => m,
            _ => self.vocabulary_size(),
        }
    }

    /// The idf weights in id order (one per vocabulary entry, the OOV entry's first), in
    /// TF-IDF mode once adapted or given.
    pub fn idf_weights(&self) -> Option<Vec<f32>> {
        let (oov, w) = self.vocab.idf.as_ref()?;
        let mut out = vec![*oov; self.num_oov_indices];
        out.extend_from_slice(w);
        Some(out)
    }

    /// The output mode.
    pub fn get_output_mode(&self) -> TextOutputMode {
        self.output_mode
    }

    /// Look up a 1-D batch of strings, as Keras does for a 1-D input: int mode gives I64 `[n]`,
    /// one-hot F32 `[n, depth]`, and multi-hot / count / TF-IDF treat the whole slice as
    /// one sample, F32 `[depth]` (use [`call_rows`](Self::call_rows) for one row per sample).
    pub fn call<S: AsRef<str>>(&self, data: &[S]) -> Result<Tensor> {
        const OP: &str = "StringLookup::call";
        self.check_call(OP)?;
        let ids = self.ids(OP, data.iter().map(AsRef::as_ref))?;
        match self.output_mode {
            TextOutputMode::Int => {
                let n = ids.len();
                Ok(Tensor::from_vec(ids.into_iter().map(|i| i.unwrap_or(0)).collect::<Vec<i64>>(), [n])?)
            }
            TextOutputMode::OneHot => {
                let rows: Vec<Vec<Option<i64>>> = ids.into_iter().map(|i| vec![i]).collect();
                self.encode(&rows)
            }
            _ => {
                let t = self.encode(&[ids])?;
                let d = self.depth();
                Ok(t.reshape([d])?)
            }
        }
    }

    /// Look up rows of strings, one sample per row (Keras's 2-D input): int mode gives I64
    /// `[n, k]` (the rows must share their length `k`); multi-hot / count / TF-IDF give F32
    /// `[n, depth]` (rows may differ in length). One-hot needs a 1-D input ([`call`](Self::call)).
    pub fn call_rows<R: AsRef<[S]>, S: AsRef<str>>(&self, rows: &[R]) -> Result<Tensor> {
        const OP: &str = "StringLookup::call_rows";
        self.check_call(OP)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.ids(OP, r.as_ref().iter().map(AsRef::as_ref))?);
        }
        match self.output_mode {
            TextOutputMode::Int => {
                let k = out.first().map_or(0, Vec::len);
                if let Some((i, r)) = out.iter().enumerate().find(|(_, r)| r.len() != k) {
                    return Err(Error::invalid(
                        OP,
                        format!(
                            "int output needs rows of one length: row 0 has {k} terms, row {i} has {}; pad \
                             them (or use TextVectorization, which pads)",
                            r.len()
                        ),
                    ));
                }
                let flat: Vec<i64> = out.into_iter().flatten().map(|i| i.unwrap_or(0)).collect();
                Ok(Tensor::from_vec(flat, [rows.len(), k])?)
            }
            TextOutputMode::OneHot => Err(Error::invalid(
                OP,
                "one_hot output of a 2-D input would be 3-D (Keras allows rank 2 at most); use call on a \
                 1-D slice, or multi_hot",
            )),
            _ => self.encode(&out),
        }
    }

    /// The inverse lookup (`invert(true)` only): ids to strings. Id 0 is the mask token when
    /// there is one; the OOV ids and ids outside the vocabulary give the `oov_token`.
    pub fn call_invert(&self, ids: &[i64]) -> Result<Vec<String>> {
        const OP: &str = "StringLookup::call_invert";
        if !self.invert {
            return Err(Error::invalid(OP, "the layer maps strings to ids; build it with invert(true)"));
        }
        self.check_call(OP)?;
        let start = as_id(self.token_start());
        Ok(ids
            .iter()
            .map(|&i| match &self.mask_token {
                Some(m) if i == 0 => m.clone(),
                _ => i
                    .checked_sub(start)
                    .and_then(|j| usize::try_from(j).ok())
                    .and_then(|j| self.vocab.tokens.get(j))
                    .unwrap_or(&self.oov_token)
                    .clone(),
            })
            .collect())
    }

    /// Id of the first OOV index: 1 with a mask token in int mode, else 0.
    pub(crate) fn oov_start(&self) -> usize {
        usize::from(self.mask_token.is_some() && self.output_mode == TextOutputMode::Int)
    }

    fn token_start(&self) -> usize {
        self.oov_start() + self.num_oov_indices
    }

    fn special_tokens(&self) -> Vec<&str> {
        let mut s = Vec::new();
        if let Some(m) = self.mask_token.as_deref().filter(|_| self.oov_start() == 1) {
            s.push(m);
        }
        s.extend(std::iter::repeat_n(self.oov_token.as_str(), self.num_oov_indices));
        s
    }

    pub(crate) fn has_vocabulary(&self) -> bool {
        !self.vocab.tokens.is_empty()
    }

    pub(crate) fn get_max_tokens(&self) -> Option<usize> {
        self.max_tokens
    }

    pub(crate) fn get_pad_to_max_tokens(&self) -> bool {
        self.pad_to_max_tokens
    }

    pub(crate) fn has_input_vocabulary(&self) -> bool {
        self.has_input_vocabulary
    }

    pub(crate) fn set_has_input_vocabulary(&mut self, on: bool) {
        self.has_input_vocabulary = on;
    }

    /// The options alone (Keras's constructor checks).
    pub(crate) fn check_options(&self, op: &'static str) -> Result<()> {
        if let Some(m) = self.max_tokens {
            if m <= 1 {
                return Err(Error::invalid(op, format!("max_tokens must be greater than 1, got {m}")));
            }
            if m < self.token_start() {
                return Err(Error::invalid(
                    op,
                    format!(
                        "max_tokens {m} is smaller than the {} special tokens (mask and OOV); raise it",
                        self.token_start()
                    ),
                ));
            }
        }
        if self.pad_to_max_tokens && self.max_tokens.is_none() {
            return Err(Error::invalid(op, "pad_to_max_tokens needs max_tokens"));
        }
        if self.num_oov_indices > 1 {
            return Err(Error::invalid(
                op,
                format!(
                    "num_oov_indices {} is not supported (Keras hashes unknown strings into them with \
                     FarmHash); use 1 or 0",
                    self.num_oov_indices
                ),
            ));
        }
        if self.invert && self.output_mode != TextOutputMode::Int {
            return Err(Error::invalid(op, format!("invert needs output_mode int, got {}", self.output_mode.as_str())));
        }
        Ok(())
    }

    fn check_vocab_against_options(&self, op: &'static str, vocab: &Vocab) -> Result<()> {
        if let Some(m) = self.mask_token.as_deref().filter(|m| vocab.index.contains_key(*m)) {
            return Err(Error::invalid(
                op,
                format!(
                    "the mask token {m:?} is in the vocabulary; remove it (the special tokens may only \
                     lead the list, in the order {:?})",
                    self.special_tokens()
                ),
            ));
        }
        if self.invert && vocab.index.contains_key(&self.oov_token) {
            return Err(Error::invalid(
                op,
                format!("the OOV token {:?} is in the vocabulary; remove it", self.oov_token),
            ));
        }
        let size = self.token_start() + vocab.tokens.len();
        if let Some(m) = self.max_tokens.filter(|&m| size > m) {
            return Err(Error::invalid(
                op,
                format!("the vocabulary has {size} entries (special tokens included) but max_tokens is {m}"),
            ));
        }
        Ok(())
    }

    /// Everything a call needs: valid options, a vocabulary, idf weights in TF-IDF mode.
    pub(crate) fn check_call(&self, op: &'static str) -> Result<()> {
        self.check_options(op)?;
        if !self.has_vocabulary() {
            return Err(Error::invalid(
                op,
                "the layer has no vocabulary; call adapt(&data) first or give one with vocabulary(..)",
            ));
        }
        self.check_vocab_against_options(op, &self.vocab)?;
        if self.output_mode == TextOutputMode::TfIdf && self.vocab.idf.is_none() {
            return Err(Error::invalid(
                op,
                "output_mode tf_idf has no idf weights (the layer was adapted in another mode); adapt it \
                 again or give vocabulary_with_idf",
            ));
        }
        Ok(())
    }

    /// The id of each term: `None` for the mask token outside int mode (dropped by the encoders).
    pub(crate) fn ids<'a>(&self, op: &'static str, terms: impl Iterator<Item = &'a str>) -> Result<Vec<Option<i64>>> {
        let start = self.token_start();
        terms
            .map(|t| {
                if self.mask_token.as_deref() == Some(t) {
                    return Ok((self.output_mode == TextOutputMode::Int).then_some(0));
                }
                match self.vocab.index.get(t) {
                    Some(&i) => Ok(Some(as_id(start + i))),
                    None if self.num_oov_indices > 0 => Ok(Some(as_id(self.oov_start()))),
                    None => Err(Error::invalid(
                        op,
                        format!("{t:?} is not in the vocabulary and num_oov_indices is 0; set num_oov_indices(1)"),
                    )),
                }
            })
            .collect()
    }

    /// One-hot / multi-hot / count / TF-IDF rows of [`depth`](Self::depth) columns.
    pub(crate) fn encode(&self, rows: &[Vec<Option<i64>>]) -> Result<Tensor> {
        let depth = self.depth();
        let mut out = vec![0f32; rows.len() * depth];
        for (row, ids) in out.chunks_exact_mut(depth.max(1)).zip(rows) {
            for &i in ids.iter().flatten() {
                let Some(slot) = usize::try_from(i).ok().and_then(|j| row.get_mut(j)) else { continue };
                match self.output_mode {
                    TextOutputMode::Count | TextOutputMode::TfIdf => *slot += 1.0,
                    _ => *slot = 1.0,
                }
            }
            if let (TextOutputMode::TfIdf, Some((oov, w))) = (self.output_mode, &self.vocab.idf) {
                let start = self.token_start();
                for (j, v) in row.iter_mut().enumerate() {
                    let weight = if j < start { *oov } else { w.get(j - start).copied().unwrap_or(0.0) };
                    *v *= weight;
                }
            }
        }
        Ok(Tensor::from_vec(out, [rows.len(), depth])?)
    }
}

/// `StringLookup`'s saved form: Keras's config keys, the vocabulary in id order (special
/// tokens included) and the idf weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StringLookupConfig {
    invert: bool,
    max_tokens: Option<usize>,
    num_oov_indices: usize,
    oov_token: String,
    mask_token: Option<String>,
    output_mode: TextOutputMode,
    pad_to_max_tokens: bool,
    vocabulary: Option<Vec<String>>,
    idf_weights: Option<Vec<f32>>,
    #[serde(default)]
    has_input_vocabulary: bool,
}

impl From<StringLookup> for StringLookupConfig {
    fn from(l: StringLookup) -> Self {
        StringLookupConfig {
            invert: l.invert,
            max_tokens: l.max_tokens,
            num_oov_indices: l.num_oov_indices,
            oov_token: l.oov_token.clone(),
            mask_token: l.mask_token.clone(),
            output_mode: l.output_mode,
            pad_to_max_tokens: l.pad_to_max_tokens,
            vocabulary: l.has_vocabulary().then(|| l.get_vocabulary()),
            idf_weights: l.idf_weights().filter(|_| l.has_vocabulary()),
            has_input_vocabulary: l.has_input_vocabulary,
        }
    }
}

impl TryFrom<StringLookupConfig> for StringLookup {
    type Error = Error;
    fn try_from(c: StringLookupConfig) -> Result<Self> {
        let mut l = StringLookup {
            max_tokens: c.max_tokens,
            num_oov_indices: c.num_oov_indices,
            mask_token: c.mask_token,
            oov_token: c.oov_token,
            invert: c.invert,
            output_mode: c.output_mode,
            pad_to_max_tokens: c.pad_to_max_tokens,
            ..StringLookup::default()
        };
        l.check_options("StringLookup (deserialize)")?;
        if let Some(v) = &c.vocabulary {
            let idf = c.idf_weights.as_deref().filter(|_| l.output_mode == TextOutputMode::TfIdf);
            l.set_vocabulary_inner("StringLookup (deserialize)", v, idf)?;
        }
        l.has_input_vocabulary = c.has_input_vocabulary;
        Ok(l)
    }
}
