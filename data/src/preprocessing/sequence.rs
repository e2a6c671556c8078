//! Keras's `pad_sequences`: variable-length sequences to one `[samples, maxlen]` tensor.

use crate::{Error, Result};
use keel_tensor::{Tensor, WithDType};

/// Which end of a sequence `pad_sequences` pads or truncates (Keras's `"pre"` / `"post"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PadSide {
    /// At the start (Keras's default for both padding and truncating).
    #[default]
    Pre,
    /// At the end.
    Post,
}

/// Keras's `keras.utils.pad_sequences`, as a builder: pads (or truncates) each sequence to
/// one length and stacks them into a `[samples, maxlen]` tensor of the elements' dtype
/// (token ids as `i64`, values as `f32`).
///
/// Defaults as Keras: `maxlen` the longest sequence, padding and truncating both at the
/// start ([`PadSide::Pre`]), padding value 0. With `mask_zero` on the following `Embedding`,
/// the padding is masked.
///
/// ```
/// use keel_data::preprocessing::{PadSequences, PadSide};
/// let seqs = vec![vec![5i64, 8], vec![3, 1, 4, 1, 5]];
/// let x = PadSequences::new().maxlen(4).padding(PadSide::Post).apply(&seqs)?;
/// assert_eq!(x.dims(), &[2, 4]);
/// assert_eq!(x.to_vec::<i64>()?, vec![5, 8, 0, 0, 1, 4, 1, 5]); // truncated at the start
/// # Ok::<(), keel_data::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PadSequences {
    maxlen: Option<usize>,
    padding: PadSide,
    truncating: PadSide,
    value: f64,
}

impl PadSequences {
    /// Keras's defaults: the longest length, pre-padding, pre-truncating, value 0.
    pub fn new() -> Self {
        PadSequences::default()
    }

    /// The output length: longer sequences are truncated (Keras's `maxlen`).
    pub fn maxlen(mut self, n: usize) -> Self {
        self.maxlen = Some(n);
        self
    }

    /// Pad at the start ([`PadSide::Pre`], default) or the end.
    pub fn padding(mut self, side: PadSide) -> Self {
        self.padding = side;
        self
    }

    /// Drop the extra elements of a long sequence at the start ([`PadSide::Pre`], default)
    /// or the end.
    pub fn truncating(mut self, side: PadSide) -> Self {
        self.truncating = side;
        self
    }

    /// The padding value (default 0), converted to the elements' type.
    pub fn value(mut self, v: f64) -> Self {
        self.value = v;
        self
    }

    /// The `[sequences.len(), maxlen]` tensor. An empty sequence becomes a row of padding; no
    /// sequences with no `maxlen` gives `[0, 0]`.
    pub fn apply<T: WithDType>(&self, sequences: &[Vec<T>]) -> Result<Tensor> {
        let maxlen = self.maxlen.unwrap_or_else(|| sequences.iter().map(Vec::len).max().unwrap_or(0));
        let pad = T::from_f64(self.value);
        if !T::DTYPE.is_float() && pad.to_f64() != self.value {
            return Err(Error::invalid(
                "pad_sequences",
                format!(
                    "the padding value {} does not fit sequences of {} (use a whole number in range)",
                    self.value,
                    T::DTYPE.as_str()
                ),
            ));
        }
        let mut out = vec![pad; sequences.len() * maxlen];
        for (row, s) in out.chunks_exact_mut(maxlen.max(1)).zip(sequences) {
            let kept = match self.truncating {
                PadSide::Pre => &s[s.len().saturating_sub(maxlen)..],
                PadSide::Post => &s[..s.len().min(maxlen)],
            };
            let at = match self.padding {
                PadSide::Pre => maxlen - kept.len(),
                PadSide::Post => 0,
            };
            row[at..at + kept.len()].copy_from_slice(kept);
        }
        Ok(Tensor::from_vec(out, [sequences.len(), maxlen])?)
    }
}

/// Keras's `pad_sequences(sequences)` with its defaults (see [`PadSequences`] for the
/// options): pre-padded with 0 to the longest length.
pub fn pad_sequences<T: WithDType>(sequences: &[Vec<T>]) -> Result<Tensor> {
    PadSequences::new().apply(sequences)
}
