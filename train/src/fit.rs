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
    pub(crate) validation_source: Option<&'a mut dyn keel_data::BatchSource>,
    pub(crate) validation_split: f64,
    pub(crate) shuffle: bool,
    pub(crate) seed: u64,
    pub(crate) class_weight: Option<BTreeMap<i64, f64>>,
    pub(crate) sample_weight: Option<&'a Tensor>,
    pub(crate) initial_epoch: usize,
    pub(crate) steps_per_execution: usize,
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
            validation_source: None,
            validation_split: 0.0,
            shuffle: true,
            seed: 0,
            class_weight: None,
            sample_weight: None,
            initial_epoch: 0,
            steps_per_execution: 1,
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
