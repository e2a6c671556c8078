//! [`IntegerLookup`]: integer tokens to vocabulary indices (or back), with the vocabulary
//! given or learned by `adapt` (Keras's preprocessing layer).

use std::collections::HashMap;

use super::categorical::{
    categorical_layer_common, check_batch, encoded_sample_shape, ids_output, rank_error, read_ids, who, OutputMode,
    DROPPED,
};
use crate::layer::{common_builders, layer_common, with_name, Ctx, Layer};
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// The hyper-parameters of [`IntegerLookup`] (its Keras config). Keras's keys for what keel does
/// not have (`sparse`, `idf_weights`, `oov_method`, `salt`, `vocabulary_dtype`) are kept so a
/// Keras config loads; a value keel cannot honour is refused when the layer is made or built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegerLookupConfig {
    /// The largest vocabulary, special tokens included (`adapt` keeps the most frequent tokens).
    #[serde(default)]
    pub max_tokens: Option<usize>,
    /// How many indices out-of-vocabulary tokens share (`token mod num_oov_indices` picks one);
    /// 0 makes an unknown token an error.
    #[serde(default = "one")]
    pub num_oov_indices: usize,
    /// The token that means "no token": index 0 in int mode, left out of the encodings.
    #[serde(default)]
    pub mask_token: Option<i64>,
    /// The token `invert` gives for an index outside the vocabulary.
    #[serde(default = "minus_one")]
    pub oov_token: i64,
    /// The vocabulary: tokens, optionally after the special tokens (`[mask_token]` in int mode,
    /// then `num_oov_indices` times `oov_token`). After `adapt` keel writes the learned
    /// vocabulary here (Keras saves it as an asset file and writes null).
    #[serde(default)]
    pub vocabulary: Option<Vec<i64>>,
    /// Keras's only integer vocabulary dtype, `"int64"`.
    #[serde(default = "int64")]
    pub vocabulary_dtype: String,
    /// Keras's TF-IDF weights: not supported (must be null).
    #[serde(default)]
    pub idf_weights: Option<serde_json::Value>,
    /// Map indices back to tokens (int mode only).
    #[serde(default)]
    pub invert: bool,
    /// Indices (`int`, I64) or their encoding (F32; `tf_idf` is not supported).
    #[serde(default = "int_mode")]
    pub output_mode: OutputMode,
    /// Keras's sparse outputs: keel has none (`true` is refused).
    #[serde(default)]
    pub sparse: bool,
    /// Encode into `max_tokens` classes rather than the vocabulary size.
    #[serde(default)]
    pub pad_to_max_tokens: bool,
    /// Keras's vocabulary size once known (informational; keel recomputes it).
    #[serde(default)]
    pub vocabulary_size: Option<usize>,
    /// How several OOV indices are chosen: `"floormod"` (keel has no `"farmhash"`).
    #[serde(default = "floormod")]
    pub oov_method: String,
    /// The hash salt of `oov_method = "farmhash"`: not supported (must be null).
    #[serde(default)]
    pub salt: Option<serde_json::Value>,
}

fn one() -> usize {
    1
}
fn minus_one() -> i64 {
    -1
}
fn int64() -> String {
    "int64".into()
}
fn int_mode() -> OutputMode {
    OutputMode::Int
}
fn floormod() -> String {
    "floormod".into()
}

impl Default for IntegerLookupConfig {
    fn default() -> Self {
        IntegerLookupConfig {
            max_tokens: None,
            num_oov_indices: 1,
            mask_token: None,
            oov_token: -1,
            vocabulary: None,
            vocabulary_dtype: int64(),
            idf_weights: None,
            invert: false,
            output_mode: OutputMode::Int,
            sparse: false,
            pad_to_max_tokens: false,
            vocabulary_size: None,
            oov_method: floormod(),
            salt: None,
        }
    }
}

/// Keras's `IntegerLookup`: integer tokens (I64, U8, or floats holding whole numbers) to their
/// indices in a vocabulary, I64 (Keras's int64) in [`OutputMode::Int`] or encoded (F32).
///
/// Index layout, as Keras: `[mask]` (int mode with a `mask_token`), then `num_oov_indices` OOV
/// indices, then the tokens. A token not in the vocabulary gets OOV index
/// `token mod num_oov_indices` (floor mod; an error with 0 OOV indices, as Keras raises); the
/// mask token gets 0 in int mode and is left out of the encodings. With
/// [`invert`](IntegerLookup::invert) indices map back to tokens (unknown ones to `oov_token`,
/// 0 to the mask token).
///
/// The vocabulary is given ([`IntegerLookup::vocabulary`]) or learned by
/// [`IntegerLookup::adapt`]: every token seen, most frequent first, ties by the larger token
/// first (Keras's order), the mask and OOV tokens left out, cut to `max_tokens`. It is saved in
/// the config. Not differentiable; computed on the host, the output on the input's device.
///
/// ```
/// use keel_nn::{Ctx, IntegerLookup, Layer};
/// use keel_autograd::Var;
/// use keel_tensor::Tensor;
/// let mut layer = IntegerLookup::new();
/// layer.adapt(&Tensor::from_vec(vec![7i64, 3, 7, 9, 3, 7], 6)?)?;
/// assert_eq!(layer.get_vocabulary(), vec![-1, 7, 3, 9]); // OOV, then by count
/// let ids = Tensor::from_vec(vec![3i64, 9, 5], (1, 3))?;
/// let y = layer.forward(&Var::constant(ids), &mut Ctx::inference())?;
/// assert_eq!(y.value().to_vec::<i64>()?, vec![2, 3, 0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct IntegerLookup {
    name: String,
    input_shape: Option<Vec<usize>>,
    cfg: IntegerLookupConfig,
    /// The vocabulary without special tokens, once known.
    tokens: Option<Vec<i64>>,
    /// token -> index (or index -> token when inverted).
    table: HashMap<i64, i64>,
    built: bool,
}

common_builders!(IntegerLookup);

impl Default for IntegerLookup {
    fn default() -> Self {
        Self::new()
    }
}

impl IntegerLookup {
    /// A layer to `adapt` (or to give a vocabulary), one OOV index, no mask, int output.
    pub fn new() -> Self {
        IntegerLookup {
            name: String::new(),
            input_shape: None,
            cfg: IntegerLookupConfig::default(),
            tokens: None,
            table: HashMap::new(),
            built: false,
        }
    }

    /// A layer from its config (Keras's or keel's), its vocabulary checked when it has one.
    pub fn from_config(cfg: IntegerLookupConfig) -> Result<Self> {
        let mut l = IntegerLookup { cfg, ..IntegerLookup::new() };
        l.check()?;
        if let Some(v) = l.cfg.vocabulary.clone() {
            l.install(&v)?;
        }
        Ok(l)
    }

    /// The vocabulary (checked when the layer is built: see [`IntegerLookup::set_vocabulary`]).
    pub fn vocabulary(mut self, vocabulary: Vec<i64>) -> Self {
        self.cfg.vocabulary = Some(vocabulary);
        self.tokens = None;
        self
    }

    /// The largest vocabulary, special tokens included.
    pub fn max_tokens(mut self, max_tokens: Option<usize>) -> Self {
        self.cfg.max_tokens = max_tokens;
        self.tokens = None;
        self
    }

    /// How many OOV indices (Keras's default 1; 0 makes unknown tokens an error).
    pub fn num_oov_indices(mut self, n: usize) -> Self {
        self.cfg.num_oov_indices = n;
        self.tokens = None;
        self
    }

    /// The mask token (index 0 in int mode, left out of the encodings).
    pub fn mask_token(mut self, token: Option<i64>) -> Self {
        self.cfg.mask_token = token;
        self.tokens = None;
        self
    }

    /// The token `invert` gives for unknown indices (Keras's default -1).
    pub fn oov_token(mut self, token: i64) -> Self {
        self.cfg.oov_token = token;
        self.tokens = None;
        self
    }

    /// Map indices back to tokens (int mode only).
    pub fn invert(mut self, yes: bool) -> Self {
        self.cfg.invert = yes;
        self.tokens = None;
        self
    }

    /// Output indices ([`OutputMode::Int`], the default) or their encoding.
    pub fn output_mode(mut self, mode: OutputMode) -> Self {
        self.cfg.output_mode = mode;
        self.tokens = None;
        self
    }

    /// Encode into `max_tokens` classes (Keras's `pad_to_max_tokens`).
    pub fn pad_to_max_tokens(mut self, yes: bool) -> Self {
        self.cfg.pad_to_max_tokens = yes;
        self
    }

    /// The config (its `vocabulary` the learned one after `adapt`).
    pub fn get_config(&self) -> &IntegerLookupConfig {
        &self.cfg
    }

    fn who(&self) -> String {
        who(&self.name, "IntegerLookup")
    }

    fn bad<T>(&self, msg: impl Into<String>) -> Result<T> {
        Err(Error::config(self.who(), msg))
    }

    /// Keras's checks of the arguments, and refusals of what keel does not have.
    fn check(&self) -> Result<()> {
        let c = &self.cfg;
        if let Some(m) = c.max_tokens.filter(|&m| m <= 1) {
            return self.bad(format!("max_tokens must be > 1 when set, got {m}"));
        }
        if c.pad_to_max_tokens && c.max_tokens.is_none() {
            return self.bad("pad_to_max_tokens needs max_tokens");
        }
        if c.invert && c.output_mode != OutputMode::Int {
            return self
                .bad(format!("output_mode must be \"int\" when invert is true, got \"{}\"", c.output_mode.as_str()));
        }
        if c.sparse {
            return self.bad("sparse outputs are not supported (sparse must be false)");
        }
        if c.vocabulary_dtype != "int64" {
            return self.bad(format!("vocabulary_dtype must be \"int64\", got \"{}\"", c.vocabulary_dtype));
        }
        if c.oov_method != "floormod" {
            return self.bad(format!("oov_method \"{}\" is not supported (only \"floormod\")", c.oov_method));
        }
        if c.salt.as_ref().is_some_and(|s| !s.is_null()) || c.idf_weights.as_ref().is_some_and(|s| !s.is_null()) {
            return self.bad("salt and idf_weights are not supported (they must be null)");
        }
        Ok(())
    }

    /// Index 1 when there is a mask index (int mode with a mask token), else 0.
    fn oov_start(&self) -> usize {
        usize::from(self.cfg.mask_token.is_some() && self.cfg.output_mode == OutputMode::Int)
    }

    fn token_start(&self) -> usize {
        self.oov_start() + self.cfg.num_oov_indices
    }

    /// The vocabulary size, special indices included (None before a vocabulary is known).
    pub fn vocabulary_size(&self) -> Option<usize> {
        self.known_tokens().map(|t| self.token_start() + t.len())
    }

    fn known_tokens(&self) -> Option<Vec<i64>> {
        match (&self.tokens, &self.cfg.vocabulary) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(v)) => Some(self.strip_special(v)),
            (None, None) => None,
        }
    }

    /// The vocabulary with the special tokens, index `i` the token of index `i` (Keras's
    /// `get_vocabulary()`): the mask token (int mode), `oov_token` per OOV index, the tokens.
    /// Empty before a vocabulary is known.
    pub fn get_vocabulary(&self) -> Vec<i64> {
        let Some(tokens) = self.known_tokens() else { return Vec::new() };
        let mut v = self.get_special();
        v.extend(tokens);
        v
    }

    /// The vocabulary's tokens only (Keras's `get_vocabulary(include_special_tokens=False)`).
    pub fn get_vocabulary_tokens(&self) -> Vec<i64> {
        self.known_tokens().unwrap_or_default()
    }

    /// `vocabulary` without its leading special tokens, when it starts with exactly them.
    fn strip_special(&self, vocabulary: &[i64]) -> Vec<i64> {
        let (ts, special) = (self.token_start(), self.get_special());
        if vocabulary.len() >= ts && vocabulary[..ts] == special[..] {
            vocabulary[ts..].to_vec()
        } else {
            vocabulary.to_vec()
        }
    }

    /// Set the vocabulary now (Keras's `set_vocabulary`): the tokens, optionally after exactly
    /// the special tokens. Empty, repeated tokens, the mask token among the tokens (or the OOV
    /// token, with `invert`), or more than `max_tokens` in all, is an error.
    pub fn set_vocabulary(&mut self, vocabulary: Vec<i64>) -> Result<()> {
        self.check()?;
        self.install(&vocabulary)?;
        self.cfg.vocabulary = Some(vocabulary);
        Ok(())
    }

    fn install(&mut self, vocabulary: &[i64]) -> Result<()> {
        if vocabulary.is_empty() {
            return self.bad("the vocabulary is empty: give at least one token");
        }
        let tokens = self.strip_special(vocabulary);
        let mut seen = HashMap::new();
        let mut repeated: Vec<i64> = Vec::new();
        for &t in &tokens {
            *seen.entry(t).or_insert(0usize) += 1;
            if seen[&t] == 2 {
                repeated.push(t);
            }
        }
        if !repeated.is_empty() {
            return self.bad(format!("the vocabulary repeats the tokens {repeated:?}: make them unique"));
        }
        if let Some(m) = self.cfg.mask_token.filter(|m| seen.contains_key(m)) {
            return self.bad(format!(
                "the mask token {m} is among the vocabulary's tokens: leave it out, or put the special tokens \
                 first in this order: {:?}",
                self.get_special()
            ));
        }
        if self.cfg.invert && seen.contains_key(&self.cfg.oov_token) {
            return self.bad(format!(
                "the OOV token {} is among the vocabulary's tokens (invert): leave it out, or put the special \
                 tokens first in this order: {:?}",
                self.cfg.oov_token,
                self.get_special()
            ));
        }
        let size = self.token_start() + tokens.len();
        if let Some(m) = self.cfg.max_tokens.filter(|&m| size > m) {
            return self.bad(format!("the vocabulary has {size} entries (special tokens included), max_tokens {m}"));
        }
        self.set_tokens(tokens);
        Ok(())
    }

    fn get_special(&self) -> Vec<i64> {
        let mut v = vec![self.cfg.oov_token; self.token_start()];
        if self.oov_start() == 1 {
            if let Some(m) = self.cfg.mask_token {
                v[0] = m;
            }
        }
        v
    }

    fn set_tokens(&mut self, tokens: Vec<i64>) {
        let start = self.token_start() as i64;
        self.table = tokens
            .iter()
            .enumerate()
            .map(|(i, &t)| if self.cfg.invert { (start + i as i64, t) } else { (t, start + i as i64) })
            .collect();
        self.tokens = Some(tokens);
    }

    /// Learn the vocabulary from `data` (every element; I64, U8 or whole-number floats), as
    /// Keras's `adapt`: each distinct token by how often it occurs, most frequent first, ties
    /// broken by the larger token first; the mask and OOV tokens left out; at most
    /// `max_tokens` minus the special indices. Replaces any vocabulary (Keras refuses to adapt a
    /// layer given one), and is written to the config's `vocabulary`.
    pub fn adapt(&mut self, data: &Tensor) -> Result<()> {
        self.check()?;
        let ids = read_ids(&data.to_device(&Device::Cpu)?, &self.who())?;
        let mut counts: HashMap<i64, u64> = HashMap::new();
        for t in ids {
            *counts.entry(t).or_insert(0) += 1;
        }
        if let Some(m) = self.cfg.mask_token {
            counts.remove(&m);
        }
        counts.remove(&self.cfg.oov_token);
        let mut by_count: Vec<(i64, u64)> = counts.into_iter().collect();
        // np.lexsort((tokens, counts))[::-1]: count descending, then token descending
        by_count.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
        let mut tokens: Vec<i64> = by_count.into_iter().map(|(t, _)| t).collect();
        if let Some(m) = self.cfg.max_tokens {
            tokens.truncate(m.saturating_sub(self.token_start()));
        }
        self.cfg.vocabulary = Some(tokens.clone());
        self.set_tokens(tokens);
        Ok(())
    }

    /// The classes of the encodings: `max_tokens` with `pad_to_max_tokens`, else the vocabulary size.
    fn depth(&self) -> Result<usize> {
        if self.cfg.pad_to_max_tokens {
            if let Some(m) = self.cfg.max_tokens {
                return Ok(m);
            }
        }
        match self.vocabulary_size() {
            Some(n) => Ok(n),
            None => self.bad(format!(
                "output_mode \"{}\" needs the vocabulary size: give a vocabulary or call adapt first",
                self.cfg.output_mode.as_str()
            )),
        }
    }

    /// The index of token `t` (not inverted).
    fn lookup(&self, t: i64) -> Result<i64> {
        if self.cfg.mask_token == Some(t) {
            return Ok(if self.cfg.output_mode == OutputMode::Int { 0 } else { DROPPED });
        }
        if let Some(&i) = self.table.get(&t) {
            return Ok(i);
        }
        let start = self.oov_start() as i64;
        match self.cfg.num_oov_indices as i64 {
            0 => self.bad(format!(
                "the token {t} is not in the vocabulary and num_oov_indices is 0: every token must be in the \
                 vocabulary (or set num_oov_indices to 1)"
            )),
            n => Ok(start + t.rem_euclid(n)),
        }
    }

    /// The token of index `i` (inverted).
    fn lookup_inverse(&self, i: i64) -> i64 {
        match self.cfg.mask_token {
            Some(m) if i == 0 => m,
            _ => self.table.get(&i).copied().unwrap_or(self.cfg.oov_token),
        }
    }

    /// Installs the config's vocabulary (int mode works without one, every token OOV, as in Keras).
    /// `build`'s config checks, and the token table of a given vocabulary.
    fn prepare(&mut self) -> Result<()> {
        self.check()?;
        if self.cfg.vocabulary.is_some() {
            self.ensure_tokens()?;
        }
        Ok(())
    }

    fn ensure_tokens(&mut self) -> Result<()> {
        if let (None, Some(v)) = (&self.tokens, self.cfg.vocabulary.clone()) {
            self.install(&v)?;
        }
        Ok(())
    }
}

impl Layer for IntegerLookup {
    layer_common!("IntegerLookup");
    categorical_layer_common!(prepare);

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let mode = self.cfg.output_mode;
        let depth = if mode == OutputMode::Int { 0 } else { self.depth()? };
        encoded_sample_shape(input_shape, mode, depth)
            .ok_or_else(|| rank_error(&self.name, "IntegerLookup", mode, input_shape))
    }

    fn forward_logits(&self, x: &Var, ctx: &mut Ctx<'_>) -> Result<Var> {
        self.check()?;
        check_batch(x, &self.name, "IntegerLookup")?;
        self.output_shape(&x.dims()[1..])?;
        if self.tokens.is_none() && self.cfg.vocabulary.is_some() {
            return Err(Error::NotBuilt { layer: self.name.clone(), class: "IntegerLookup" });
        }
        let tokens = read_ids(x.value(), &self.who())?;
        let ids: Vec<i64> = if self.cfg.invert {
            tokens.into_iter().map(|i| self.lookup_inverse(i)).collect()
        } else {
            tokens.into_iter().map(|t| self.lookup(t)).collect::<Result<_>>()?
        };
        let depth = if self.cfg.output_mode == OutputMode::Int { 0 } else { self.depth()? };
        ids_output(ids, x, self.cfg.output_mode, depth, &self.who(), ctx)
    }

    fn config(&self) -> serde_json::Value {
        let mut cfg = self.cfg.clone();
        cfg.vocabulary_size = self.vocabulary_size();
        with_name(&self.name, serde_json::to_value(&cfg).unwrap_or_default())
    }
}
