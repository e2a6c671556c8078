//! [`Fit`]: the options of `fit`, with Keras's names and defaults.

use crate::callbacks::Callback;
use keel_tensor::Tensor;
use std::collections::BTreeMap;

/// The `x` of `fit`, `evaluate` and `predict`: one tensor, or one per model input, in
/// the order of the model's `Input`s (Keras's `model.fit([x_a, x_b], y)`). Every tensor
/// has the same number of samples (its first axis).
///
/// ```
/// use keel_tensor::{DType, Device, Tensor};
/// use keel_train::Inputs;
/// let (a, b) = (Tensor::zeros((4, 3), DType::F32, &Device::Cpu)?, Tensor::zeros((4, 7), DType::F32, &Device::Cpu)?);
/// assert_eq!(Inputs::from(&a).len(), 1);
/// assert_eq!(Inputs::from([&a, &b]).len(), 2);
/// # Ok::<(), keel_tensor::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Inputs<'a>(pub(crate) Vec<&'a Tensor>);

/// The `y` of `fit` and `evaluate`: one tensor, or one per model output, in the order of
/// the model's outputs (Keras's `model.fit(x, [y_a, y_b])`). Every tensor has the same
/// number of samples as `x`.
///
/// ```
/// use keel_tensor::{DType, Device, Tensor};
/// use keel_train::Targets;
/// let (a, b) = (Tensor::zeros(4, DType::I64, &Device::Cpu)?, Tensor::zeros((4, 1), DType::F32, &Device::Cpu)?);
/// assert_eq!(Targets::from(&a).len(), 1);
/// assert_eq!(Targets::from([&a, &b]).len(), 2);
/// # Ok::<(), keel_tensor::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Targets<'a>(pub(crate) Vec<&'a Tensor>);

/// `len`, `is_empty` and the conversions from one tensor or a list of tensors, for
/// [`Inputs`] and [`Targets`].
macro_rules! tensor_list {
    ($t:ident) => {
        impl $t<'_> {
            /// How many tensors.
            pub fn len(&self) -> usize {
                self.0.len()
            }

            /// True when there are none.
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl<'a> From<&'a Tensor> for $t<'a> {
            fn from(x: &'a Tensor) -> Self {
                $t(vec![x])
            }
        }

        impl<'a, const N: usize> From<[&'a Tensor; N]> for $t<'a> {
            fn from(xs: [&'a Tensor; N]) -> Self {
                $t(xs.to_vec())
            }
        }

        impl<'a> From<&[&'a Tensor]> for $t<'a> {
            fn from(xs: &[&'a Tensor]) -> Self {
                $t(xs.to_vec())
            }
        }

        impl<'a> From<Vec<&'a Tensor>> for $t<'a> {
            fn from(xs: Vec<&'a Tensor>) -> Self {
                $t(xs)
            }
        }

        impl<'a> From<&'a [Tensor]> for $t<'a> {
            fn from(xs: &'a [Tensor]) -> Self {
                $t(xs.iter().collect())
            }
        }
    };
}

tensor_list!(Inputs);
tensor_list!(Targets);

/// Options of [`crate::KerasModel::fit`] (Keras's keyword arguments).
///
/// ```
/// use keel_train::Fit;
/// let cfg = Fit::new().batch_size(64).epochs(5).validation_split(0.1).verbose(2);
/// assert_eq!(cfg.get_epochs(), 5);
/// ```
pub struct Fit<'a> {
    pub(crate) batch_size: usize,
    pub(crate) epochs: usize,
    pub(crate) verbose: u8,
    pub(crate) validation_data: Option<(Inputs<'a>, Targets<'a>)>,
    /// Per-sample weights of `validation_data` (Keras's third tuple element).
    pub(crate) validation_sample_weight: Option<&'a Tensor>,
    pub(crate) validation_source: Option<&'a mut dyn keel_data::BatchSource>,
    pub(crate) validation_split: f64,
    pub(crate) shuffle: bool,
    pub(crate) seed: u64,
    pub(crate) class_weight: Option<BTreeMap<i64, f64>>,
    pub(crate) sample_weight: Option<&'a Tensor>,
    pub(crate) initial_epoch: usize,
    pub(crate) steps_per_execution: usize,
    pub(crate) steps_per_epoch: Option<usize>,
    pub(crate) validation_steps: Option<usize>,
    pub(crate) validation_batch_size: Option<usize>,
    pub(crate) validation_freq: ValidationFreq,
    pub(crate) callbacks: Vec<Box<dyn Callback + 'a>>,
    /// The history of the run resumed by `resume_from`.
    pub(crate) resumed_history: Option<crate::History>,
}

impl Default for Fit<'_> {
    fn default() -> Self {
        Fit::new()
    }
}

impl<'a> Fit<'a> {
    /// Keras's defaults: batch 32, 1 epoch, verbose 1, shuffle, seed 0.
    pub fn new() -> Self {
        Fit {
            batch_size: 32,
            epochs: 1,
            verbose: 1,
            validation_data: None,
            validation_sample_weight: None,
            validation_source: None,
            validation_split: 0.0,
            shuffle: true,
            seed: 0,
            class_weight: None,
            sample_weight: None,
            initial_epoch: 0,
            steps_per_execution: 1,
            steps_per_epoch: None,
            validation_steps: None,
            validation_batch_size: None,
            validation_freq: ValidationFreq::Every(1),
            callbacks: Vec::new(),
            resumed_history: None,
        }
    }

    /// Samples per gradient update (ignored for batch sources, which batch themselves).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// The epoch to stop at (exclusive; with `initial_epoch`, runs `epochs - initial_epoch` epochs).
    pub fn epochs(mut self, n: usize) -> Self {
        self.epochs = n;
        self
    }

    /// The number of epochs set.
    pub fn get_epochs(&self) -> usize {
        self.epochs
    }

    /// 0 = silent, 1 = progress bar, 2 = one line per epoch.
    pub fn verbose(mut self, v: u8) -> Self {
        self.verbose = v;
        self
    }

    /// Evaluate on `(x, y)` at the end of every epoch (`val_loss`, `val_<metric>`); `x` is
    /// one tensor or one per model input, and `y` one tensor or one per model output, as
    /// `fit`'s.
    pub fn validation_data(mut self, x: impl Into<Inputs<'a>>, y: impl Into<Targets<'a>>) -> Self {
        self.validation_data = Some((x.into(), y.into()));
        self.validation_sample_weight = None;
        self
    }

    /// [`Fit::validation_data`] with per-sample weights (Keras's
    /// `validation_data=(x_val, y_val, val_sample_weights)`): `sample_weight` (`[n]`, one per
    /// validation sample) weights `val_loss` and the `weighted_metrics` of `compile_weighted`,
    /// as `evaluate_weighted` does.
    pub fn validation_data_weighted(
        mut self,
        x: impl Into<Inputs<'a>>,
        y: impl Into<Targets<'a>>,
        sample_weight: &'a Tensor,
    ) -> Self {
        self.validation_data = Some((x.into(), y.into()));
        self.validation_sample_weight = Some(sample_weight);
        self
    }

    /// Evaluate on a batch source at the end of every epoch (Keras's `validation_data=val_ds`):
    /// a `DataLoader`, `image_dataset_from_directory`, ..., read in its epoch-0 order (give
    /// it no shuffling or augmentation). Single-output models; it replaces
    /// `validation_split`, as `validation_data` does.
    pub fn validation_source(mut self, source: &'a mut dyn keel_data::BatchSource) -> Self {
        self.validation_source = Some(source);
        self
    }

    /// Hold out this fraction of the samples (the last ones, before shuffling, as Keras does) for validation.
    pub fn validation_split(mut self, fraction: f64) -> Self {
        self.validation_split = fraction;
        self
    }

    /// Reshuffle the training samples every epoch (default true).
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = on;
        self
    }

    /// The seed of the shuffles and of dropout.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Weight of each class in the loss (`{class index: weight}`), e.g. from
    /// `keel_data::preprocessing::class_weight`. Single-output models only, as in Keras.
    pub fn class_weight(mut self, weights: BTreeMap<i64, f64>) -> Self {
        self.class_weight = Some(weights);
        self
    }

    /// One weight per training sample, multiplying its loss (every output's loss, for a
    /// model with several).
    pub fn sample_weight(mut self, w: &'a Tensor) -> Self {
        self.sample_weight = Some(w);
        self
    }

    /// The epoch to start from (to resume a run; epochs are numbered from 0).
    pub fn initial_epoch(mut self, e: usize) -> Self {
        self.initial_epoch = e;
        self
    }

    /// Run `n` training steps between reads of their results (default 1; Keras's
    /// `steps_per_execution`, which Keras sets in `compile`).
    ///
    /// On a GPU, every read of a loss or a prediction makes the host wait until the GPU
    /// is idle, so with `n = 1` the GPU waits for the host once per step. With `n > 1`
    /// the host queues `n` steps, then reads their losses and predictions in one copy
    /// each. The weights and the epoch logs are the same for every `n`; what changes:
    /// * the progress bar and `on_train_batch_end` are updated once per `n` batches
    ///   (with the index of the last batch run), as in Keras;
    /// * with `n = 1` a step whose loss is NaN or infinite is not applied; with `n > 1`
    ///   the loss is read after the step, so every step is applied (as Keras and PyTorch
    ///   always do), and `TerminateOnNaN` stops at the end of the execution.
    ///
    /// Both hold on every device; on the CPU nothing waits, so there `n` gains nothing.
    pub fn steps_per_execution(mut self, n: usize) -> Self {
        self.steps_per_execution = n;
        self
    }

    /// Train `n` batches per epoch instead of one pass over the data (Keras's
    /// `steps_per_epoch`), e.g. to validate, log and checkpoint more often on a large
    /// dataset.
    ///
    /// As in Keras, the batches run on where the last epoch stopped, and a new pass
    /// (reshuffled) starts once the data is used up: an epoch never spans two passes,
    /// so when `n` does not divide a pass's batches, the epoch that reaches its end is
    /// shorter (and with `n` above a pass's batches, every epoch is one pass). `fit`
    /// warns once when that happens. Pass `p` is shuffled (and a source augmented) as
    /// epoch `p` would be without this option; a run resumed with `initial_epoch` takes
    /// up the batches where the uninterrupted run would be.
    pub fn steps_per_epoch(mut self, n: usize) -> Self {
        self.steps_per_epoch = Some(n);
        self
    }

    /// Evaluate only the first `n` batches of the validation data (Keras's
    /// `validation_steps`; every validation starts from the first batch).
    pub fn validation_steps(mut self, n: usize) -> Self {
        self.validation_steps = Some(n);
        self
    }

    /// The batch size of the validation tensors (Keras's `validation_batch_size`; by
    /// default `batch_size`). A validation source batches itself.
    pub fn validation_batch_size(mut self, n: usize) -> Self {
        self.validation_batch_size = Some(n);
        self
    }

    /// When to validate (Keras's `validation_freq`): every `n`-th epoch
    /// (`validation_freq(2)`: after epochs 2, 4, ..., counted from 1 as Keras counts) or
    /// after the listed epochs (`validation_freq(vec![1, 5, 10])`). The `val_` logs of
    /// an epoch without validation are absent, so in the [`crate::History`] they have
    /// fewer values than `loss` ([`crate::History::epochs_of`] says which epochs they
    /// belong to).
    pub fn validation_freq(mut self, freq: impl Into<ValidationFreq>) -> Self {
        self.validation_freq = freq.into();
        self
    }

    /// Add a callback: owned (`EarlyStopping::new(..)`) or borrowed (`&mut early`,
    /// to read its state after `fit`). Callbacks run in the order added.
    pub fn callback(mut self, cb: impl Callback + 'a) -> Self {
        self.callbacks.push(Box::new(cb));
        self
    }

    /// Add several boxed callbacks (Keras's `callbacks=[...]`).
    pub fn callbacks(mut self, cbs: impl IntoIterator<Item = Box<dyn Callback + 'a>>) -> Self {
        self.callbacks.extend(cbs);
        self
    }

    /// Resume from a training checkpoint: start at its epoch with its seed
    /// (restore the model with [`crate::KerasModel::load_checkpoint`] first).
    pub fn resume_from(mut self, ckpt: &crate::Checkpoint) -> Self {
        self.initial_epoch = ckpt.epoch;
        self.seed = ckpt.seed;
        // checkpoints saved by the resumed run keep the earlier epochs' history
        self.resumed_history = Some(ckpt.history.clone());
        self
    }
}

/// When `fit` validates ([`Fit::validation_freq`]); epochs are counted from 1, as Keras counts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidationFreq {
    /// After every `n`-th epoch (`n >= 1`).
    Every(usize),
    /// After each listed epoch.
    Epochs(Vec<usize>),
}

impl ValidationFreq {
    /// Whether to validate after `epoch` (0-based, as `fit` numbers epochs).
    pub fn should_validate(&self, epoch: usize) -> bool {
        match self {
            ValidationFreq::Every(n) => *n > 0 && (epoch + 1) % n == 0,
            ValidationFreq::Epochs(list) => list.contains(&(epoch + 1)),
        }
    }
}

impl From<usize> for ValidationFreq {
    fn from(n: usize) -> Self {
        ValidationFreq::Every(n)
    }
}

impl From<Vec<usize>> for ValidationFreq {
    fn from(epochs: Vec<usize>) -> Self {
        ValidationFreq::Epochs(epochs)
    }
}

impl From<&[usize]> for ValidationFreq {
    fn from(epochs: &[usize]) -> Self {
        ValidationFreq::Epochs(epochs.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for ValidationFreq {
    fn from(epochs: [usize; N]) -> Self {
        ValidationFreq::Epochs(epochs.to_vec())
    }
}

/// Which batches epoch `epoch` trains on: `(pass, first batch, count)`, for a pass of
/// `batches` batches and Keras's `steps_per_epoch` (`None`: every epoch is one pass).
///
/// Keras keeps one iterator over the data across epochs: an epoch takes up to
/// `steps_per_epoch` batches from where the last one stopped and ends early at the end
/// of the pass; the next epoch starts a new pass. So a pass spans
/// `ceil(batches / steps_per_epoch)` epochs.
pub(crate) fn epoch_span(epoch: usize, batches: usize, steps_per_epoch: Option<usize>) -> (usize, usize, usize) {
    match steps_per_epoch {
        Some(s) if s > 0 && s < batches => {
            let per_pass = batches.div_ceil(s);
            let start = (epoch % per_pass) * s;
            (epoch / per_pass, start, s.min(batches - start))
        }
        _ => (epoch, 0, batches),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_split_passes_as_keras_does() {
        // 10 batches, 4 per epoch: passes of 4 + 4 + 2 batches
        let spans: Vec<_> = (0..7).map(|e| epoch_span(e, 10, Some(4))).collect();
        assert_eq!(spans, [(0, 0, 4), (0, 4, 4), (0, 8, 2), (1, 0, 4), (1, 4, 4), (1, 8, 2), (2, 0, 4)]);
        // a divisor: no short epoch
        assert_eq!((0..3).map(|e| epoch_span(e, 6, Some(3))).collect::<Vec<_>>(), [(0, 0, 3), (0, 3, 3), (1, 0, 3)]);
        // more steps than a pass has, or none set: one pass per epoch
        assert_eq!(epoch_span(3, 10, Some(25)), (3, 0, 10));
        assert_eq!(epoch_span(3, 10, None), (3, 0, 10));
    }

    #[test]
    fn validation_freq_counts_epochs_from_one() {
        let every2 = ValidationFreq::from(2);
        assert_eq!((0..6).filter(|&e| every2.should_validate(e)).collect::<Vec<_>>(), [1, 3, 5]);
        let listed = ValidationFreq::from([1, 4]);
        assert_eq!((0..6).filter(|&e| listed.should_validate(e)).collect::<Vec<_>>(), [0, 3]);
        assert!(!ValidationFreq::Every(0).should_validate(0));
    }
}
