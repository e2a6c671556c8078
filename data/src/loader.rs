//! Datasets, batch sources and the prefetching [`DataLoader`].
//!
//! # The batch-source contract (what `fit` consumes)
//!
//! A [`BatchSource`] hands out one epoch of `(x, y)` batches at a time:
//!
//! - [`BatchSource::len_batches`]: how many batches one epoch yields (for
//!   progress bars and `steps_per_epoch`); constant across epochs.
//! - [`BatchSource::batches`]`(epoch)`: an iterator over that epoch's batches,
//!   each a `Result<(x, y)>`. An `Err` item ends the epoch: the caller should
//!   stop and report it. The order (shuffle) and any augmentation depend only
//!   on the source's seed and `epoch`, so re-running an epoch number gives the
//!   same bits; pass `0, 1, 2, ...` for successive epochs.
//!
//! [`DataLoader`] (any [`Dataset`]) and
//! [`ImageFlow`](crate::augment::ImageFlow) (from
//! `ImageDataGenerator::flow`) implement it, so a training loop is:
//!
//! ```
//! use keel_data::{BatchSource, DataLoader, TensorDataset};
//! use keel_tensor::Tensor;
//! # fn main() -> keel_data::Result<()> {
//! let x = Tensor::from_vec((0..20).map(|v| v as f32).collect::<Vec<_>>(), (10, 2))?;
//! let y = Tensor::from_vec((0..10i64).collect::<Vec<_>>(), 10)?;
//! let mut loader = DataLoader::new(TensorDataset::new(x, y)?, 4)?.shuffle(true).seed(7);
//! fn train(src: &mut dyn BatchSource) -> keel_data::Result<usize> {
//!     let mut seen = 0;
//!     for epoch in 0..2 {
//!         for batch in src.batches(epoch) {
//!             let (xb, _yb) = batch?;
//!             seen += xb.dims()[0];
//!         }
//!     }
//!     Ok(seen)
//! }
//! assert_eq!(loader.len_batches(), 3); // 4 + 4 + 2
//! assert_eq!(train(&mut loader)?, 20);
//! # Ok(()) }
//! ```
//!
//! With `prefetch(n)` (default 2) batches are produced on a background thread
//! into a bounded queue of `n` batches, so the next batch is ready while the
//! model trains on the current one; `prefetch(0)` produces them on the
//! caller's thread. Dropping the iterator early stops the thread.

use crate::seed::derive_seed;
use crate::{Error, Result};
use keel_tensor::rng::Rng;
use keel_tensor::Tensor;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// One batch: `(x, y)`.
pub type Batch = (Tensor, Tensor);

/// An iterator over one epoch's batches.
pub type BatchIter<'a> = Box<dyn Iterator<Item = Result<Batch>> + Send + 'a>;

/// Anything that yields epochs of `(x, y)` batches: what `fit` trains on.
pub trait BatchSource {
    /// Number of batches in one epoch.
    fn len_batches(&self) -> usize;
    /// The batches of epoch `epoch` (order and augmentation are a function of seed and epoch).
    fn batches(&mut self, epoch: usize) -> BatchIter<'_>;
}

/// Indexable samples that can be gathered into a batch.
pub trait Dataset: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// True when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The samples at `indices`, stacked along a new first axis: `(x, y)`.
    fn get_batch(&self, indices: &[usize]) -> Result<Batch>;
}

/// A dataset over two tensors sharing their first dimension (samples).
#[derive(Debug, Clone)]
pub struct TensorDataset {
    x: Tensor,
    y: Tensor,
}

impl TensorDataset {
    /// Pair `x` and `y`; both need rank >= 1 and the same first dimension.
    pub fn new(x: Tensor, y: Tensor) -> Result<Self> {
        let (nx, ny) = (x.dims().first().copied(), y.dims().first().copied());
        if nx.is_none() || nx != ny {
            return Err(Error::invalid(
                "TensorDataset::new",
                format!(
                    "x {:?} and y {:?} need rank >= 1 and the same number of samples \
                     (first dimension)",
                    x.dims(),
                    y.dims()
                ),
            ));
        }
        Ok(TensorDataset { x, y })
    }

    /// The features tensor.
    pub fn x(&self) -> &Tensor {
        &self.x
    }

    /// The targets tensor.
    pub fn y(&self) -> &Tensor {
        &self.y
    }
}

/// Rows `indices` of `t` along axis 0, checking bounds first.
pub(crate) fn take_rows(t: &Tensor, indices: &[usize], op: &'static str) -> Result<Tensor> {
    let n = t.dims().first().copied().unwrap_or(0);
    if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
        return Err(Error::invalid(op, format!("sample index {bad} is out of range for {n} samples")));
    }
    let idx = Tensor::from_vec(indices.iter().map(|&i| i as i64).collect::<Vec<_>>(), indices.len())?;
    Ok(t.index_select(&idx, 0)?)
}

impl Dataset for TensorDataset {
    fn len(&self) -> usize {
        self.x.dims()[0] // ok: new() checked rank >= 1
    }

    fn get_batch(&self, indices: &[usize]) -> Result<Batch> {
        Ok((
            take_rows(&self.x, indices, "TensorDataset::get_batch")?,
            take_rows(&self.y, indices, "TensorDataset::get_batch")?,
        ))
    }
}

/// The sample order of one epoch: `0..n`, or a permutation drawn from `(seed, epoch)`.
pub fn epoch_order(n: usize, shuffle: bool, seed: u64, epoch: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    if shuffle {
        Rng::new(derive_seed(seed, epoch as u64, 0x5348_5546)).shuffle(&mut idx);
    }
    idx
}

/// Split `order` into batches of `batch_size` (the last one shorter unless `drop_last`).
pub(crate) fn plan_batches(order: Vec<usize>, batch_size: usize, drop_last: bool) -> Vec<Vec<usize>> {
    order.chunks(batch_size.max(1)).filter(|c| !drop_last || c.len() == batch_size).map(|c| c.to_vec()).collect()
}

/// Number of batches for `n` samples.
pub(crate) fn count_batches(n: usize, batch_size: usize, drop_last: bool) -> usize {
    let b = batch_size.max(1);
    if drop_last {
        n / b
    } else {
        n.div_ceil(b)
    }
}

/// Makes the batch for `(epoch, indices)`; shared with the producer thread.
pub(crate) type Producer = Arc<dyn Fn(usize, &[usize]) -> Result<Batch> + Send + Sync>;

/// Run `producer` over `plan`, on a prefetch thread with a queue of `prefetch`
/// batches (or inline when `prefetch == 0` or no thread can be spawned).
pub(crate) fn run_batches(
    producer: Producer,
    epoch: usize,
    plan: Vec<Vec<usize>>,
    prefetch: usize,
) -> BatchIter<'static> {
    let inline = |producer: Producer, plan: Vec<Vec<usize>>| -> BatchIter<'static> {
        let mut failed = false;
        Box::new(plan.into_iter().map_while(move |b| {
            if failed {
                return None;
            }
            let r = producer(epoch, &b);
            failed = r.is_err();
            Some(r)
        }))
    };
    if prefetch == 0 {
        return inline(producer, plan);
    }
    let (tx, rx) = sync_channel::<Result<Batch>>(prefetch);
    let worker = producer.clone();
    let worker_plan = plan.clone();
    let spawned = std::thread::Builder::new().name("keel-data-prefetch".into()).spawn(move || {
        for b in worker_plan {
            let r = worker(epoch, &b);
            let stop = r.is_err();
            if tx.send(r).is_err() || stop {
                break;
            }
        }
    });
    match spawned {
        Ok(handle) => Box::new(PrefetchIter { rx: Some(rx), handle: Some(handle) }),
        // no thread available: produce on the caller's thread instead
        Err(_) => inline(producer, plan),
    }
}

struct PrefetchIter {
    rx: Option<Receiver<Result<Batch>>>,
    handle: Option<JoinHandle<()>>,
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".into()
    }
}

impl Iterator for PrefetchIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        let r = self.rx.as_ref()?.recv();
        match r {
            Ok(item) => Some(item),
            Err(_) => {
                // the worker finished (or died): report a panic once, then end
                self.rx = None;
                let h = self.handle.take()?;
                match h.join() {
                    Ok(()) => None,
                    Err(p) => Some(Err(Error::Worker(format!(
                        "the prefetch thread panicked while producing a batch: {}",
                        panic_message(p.as_ref())
                    )))),
                }
            }
        }
    }
}

impl Drop for PrefetchIter {
    fn drop(&mut self) {
        // closing the queue makes a blocked `send` fail, so the worker exits
        self.rx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Batches from a [`Dataset`]: shuffling per epoch, `drop_last`, background prefetch.
#[derive(Clone)]
pub struct DataLoader {
    dataset: Arc<dyn Dataset>,
    batch_size: usize,
    shuffle: bool,
    seed: u64,
    drop_last: bool,
    prefetch: usize,
}

impl std::fmt::Debug for DataLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataLoader")
            .field("len", &self.dataset.len())
            .field("batch_size", &self.batch_size)
            .field("shuffle", &self.shuffle)
            .field("seed", &self.seed)
            .field("drop_last", &self.drop_last)
            .field("prefetch", &self.prefetch)
            .finish()
    }
}

impl DataLoader {
    /// A loader over `dataset` with `batch_size` (> 0); no shuffle, keeps the last short batch, prefetch 2.
    pub fn new(dataset: impl Dataset + 'static, batch_size: usize) -> Result<Self> {
        Self::from_arc(Arc::new(dataset), batch_size)
    }

    /// [`new`](Self::new) for a shared dataset.
    pub fn from_arc(dataset: Arc<dyn Dataset>, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::invalid("DataLoader::new", "batch_size must be at least 1"));
        }
        Ok(DataLoader { dataset, batch_size, shuffle: false, seed: 0, drop_last: false, prefetch: 2 })
    }

    /// A loader over `(x, y)` tensors (a [`TensorDataset`]).
    pub fn from_tensors(x: &Tensor, y: &Tensor, batch_size: usize) -> Result<Self> {
        Self::new(TensorDataset::new(x.clone(), y.clone())?, batch_size)
    }

    /// Reshuffle every epoch (order drawn from `(seed, epoch)`).
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = on;
        self
    }

    /// The seed for shuffling.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Drop the last batch when it is shorter than `batch_size`.
    pub fn drop_last(mut self, on: bool) -> Self {
        self.drop_last = on;
        self
    }

    /// Queue depth of the prefetch thread; 0 produces batches on the caller's thread.
    pub fn prefetch(mut self, batches: usize) -> Self {
        self.prefetch = batches;
        self
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Number of samples in the dataset.
    pub fn len_samples(&self) -> usize {
        self.dataset.len()
    }

    /// Sample order of `epoch`.
    pub fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        epoch_order(self.dataset.len(), self.shuffle, self.seed, epoch)
    }

    /// The batches of `epoch` (takes `&self`; see also [`BatchSource::batches`]).
    pub fn iter(&self, epoch: usize) -> BatchIter<'static> {
        let plan = plan_batches(self.epoch_order(epoch), self.batch_size, self.drop_last);
        let ds = self.dataset.clone();
        let producer: Producer = Arc::new(move |_epoch, idx: &[usize]| ds.get_batch(idx));
        run_batches(producer, epoch, plan, self.prefetch)
    }
}

impl BatchSource for DataLoader {
    fn len_batches(&self) -> usize {
        count_batches(self.dataset.len(), self.batch_size, self.drop_last)
    }

    fn batches(&mut self, epoch: usize) -> BatchIter<'_> {
        self.iter(epoch)
    }
}
