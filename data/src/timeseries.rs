//! Keras's `timeseries_dataset_from_array`: sliding windows over a series, as a
//! [`Dataset`] (batch it with [`DataLoader`](crate::DataLoader)) or as whole tensors.

use crate::loader::{Batch, Dataset};
use crate::{Error, Result};
use keel_tensor::Tensor;

const OP: &str = "timeseries_dataset_from_array";

/// Keras's `keras.utils.timeseries_dataset_from_array(data, targets, sequence_length)`:
/// windows of `sequence_length` steps over `data` (`[steps, ...]`, time first), the window
/// starting at step `i` paired with `targets[i]`. Set the other Keras options on the
/// returned builder, then [`Timeseries::build`]:
///
/// ```
/// use keel_data::timeseries_dataset_from_array;
/// use keel_data::{BatchSource, DataLoader, Dataset};
/// use keel_tensor::Tensor;
/// # fn main() -> keel_data::Result<()> {
/// // predict step t + 3 from steps t..t+3 of a 2-feature series
/// let series = Tensor::from_vec((0..40).map(|v| v as f32).collect::<Vec<_>>(), (20, 2))?;
/// let ds = timeseries_dataset_from_array(&series.narrow(0, 0, 17)?, Some(&series.narrow(0, 3, 17)?), 3).build()?;
/// assert_eq!(ds.len(), 15);
/// let mut loader = DataLoader::new(ds, 4)?.shuffle(true).seed(1);
/// for batch in loader.batches(0).take(1) {
///     let (x, y) = batch?;
///     assert_eq!((x.dims(), y.dims()), (&[4, 3, 2][..], &[4, 2][..]));
/// }
/// # Ok(()) }
/// ```
pub fn timeseries_dataset_from_array(data: &Tensor, targets: Option<&Tensor>, sequence_length: usize) -> Timeseries {
    Timeseries {
        data: data.clone(),
        targets: targets.cloned(),
        sequence_length,
        sequence_stride: 1,
        sampling_rate: 1,
        start_index: 0,
        end_index: None,
    }
}

/// The options of [`timeseries_dataset_from_array`] (Keras's keyword arguments; batching and
/// shuffling are [`DataLoader`](crate::DataLoader)'s).
#[derive(Debug, Clone)]
pub struct Timeseries {
    data: Tensor,
    targets: Option<Tensor>,
    sequence_length: usize,
    sequence_stride: usize,
    sampling_rate: usize,
    start_index: usize,
    end_index: Option<usize>,
}

impl Timeseries {
    /// Steps between the starts of two consecutive windows (default 1; `sequence_length`
    /// gives windows that do not overlap).
    pub fn sequence_stride(mut self, n: usize) -> Self {
        self.sequence_stride = n;
        self
    }

    /// Steps between two elements of one window (default 1: consecutive steps).
    pub fn sampling_rate(mut self, n: usize) -> Self {
        self.sampling_rate = n;
        self
    }

    /// Use no step before `i` (default 0), e.g. to keep the start for validation.
    pub fn start_index(mut self, i: usize) -> Self {
        self.start_index = i;
        self
    }

    /// Use no step at or after `i` (default: the end of `data`).
    pub fn end_index(mut self, i: usize) -> Self {
        self.end_index = Some(i);
        self
    }

    /// Check the options against the data and list the windows.
    pub fn build(self) -> Result<TimeseriesDataset> {
        let bad = |msg: String| Error::invalid(OP, msg);
        let steps = match self.data.dims().first() {
            Some(&n) if n > 0 => n,
            _ => return Err(bad(format!("data must have a time axis first, got shape {:?}", self.data.dims()))),
        };
        for (name, v) in [
            ("sequence_length", self.sequence_length),
            ("sequence_stride", self.sequence_stride),
            ("sampling_rate", self.sampling_rate),
        ] {
            if v == 0 {
                return Err(bad(format!("{name} must be at least 1")));
            }
        }
        let end = self.end_index.unwrap_or(steps);
        if end > steps {
            return Err(bad(format!("end_index {end} is past the end of the data ({steps} steps)")));
        }
        if self.start_index >= end {
            return Err(bad(format!("start_index {} must be lower than end_index {end}", self.start_index)));
        }
        let data = self.data.narrow(0, self.start_index, end - self.start_index)?;
        let span = (self.sequence_length - 1).saturating_mul(self.sampling_rate);
        let mut count = (end - self.start_index).saturating_sub(span);
        let targets = match &self.targets {
            None => None,
            Some(t) => {
                let n = match t.dims().first() {
                    Some(&n) => n,
                    None => return Err(bad("targets must have one entry per step, got a scalar".into())),
                };
                // Keras: targets[start_index + i] goes with the window starting at start_index + i
                let from = self.start_index.min(n);
                let t = t.narrow(0, from, end.min(n) - from)?;
                count = count.min(t.dims()[0]);
                Some(t)
            }
        };
        let starts = (0..count).step_by(self.sequence_stride).collect();
        Ok(TimeseriesDataset { data, targets, starts, sequence_length: self.sequence_length, rate: self.sampling_rate })
    }
}

/// The windows of a series, from [`Timeseries::build`]: a [`Dataset`] of `(window, target)`
/// samples, the window `[sequence_length, ...]`, in time order (a
/// [`DataLoader`](crate::DataLoader) batches and shuffles them, as Keras's dataset does).
#[derive(Debug, Clone)]
pub struct TimeseriesDataset {
    data: Tensor,
    targets: Option<Tensor>,
    /// Window starts, as steps of `data` (already cut to `start_index..end_index`).
    starts: Vec<usize>,
    sequence_length: usize,
    rate: usize,
}

impl TimeseriesDataset {
    /// The windows `indices` (positions in window order), stacked: `[indices.len(),
    /// sequence_length, ...]`.
    pub fn windows(&self, indices: &[usize]) -> Result<Tensor> {
        let mut steps = Vec::with_capacity(indices.len() * self.sequence_length);
        for &i in indices {
            let start = self.start(i)?;
            steps.extend((0..self.sequence_length).map(|k| (start + k * self.rate) as i64));
        }
        let idx = Tensor::from_vec(steps, indices.len() * self.sequence_length)?;
        let mut dims = vec![indices.len(), self.sequence_length];
        dims.extend_from_slice(&self.data.dims()[1..]);
        Ok(self.data.index_select(&idx, 0)?.reshape(dims)?)
    }

    /// The targets of the windows `indices`, stacked (`None` when built without targets).
    pub fn targets_of(&self, indices: &[usize]) -> Result<Option<Tensor>> {
        let Some(t) = &self.targets else { return Ok(None) };
        let rows = indices.iter().map(|&i| self.start(i).map(|s| s as i64)).collect::<Result<Vec<_>>>()?;
        let idx = Tensor::from_vec(rows, indices.len())?;
        Ok(Some(t.index_select(&idx, 0)?))
    }

    /// Every window, in time order, as one tensor (for `fit(x, y)` on data that fits in
    /// memory).
    pub fn all_windows(&self) -> Result<Tensor> {
        self.windows(&(0..self.len()).collect::<Vec<_>>())
    }

    /// Every window's target, in time order (`None` without targets).
    pub fn all_targets(&self) -> Result<Option<Tensor>> {
        self.targets_of(&(0..self.len()).collect::<Vec<_>>())
    }

    fn start(&self, i: usize) -> Result<usize> {
        self.starts
            .get(i)
            .copied()
            .ok_or_else(|| Error::invalid(OP, format!("window {i} is out of range for {} windows", self.starts.len())))
    }
}

impl Dataset for TimeseriesDataset {
    fn len(&self) -> usize {
        self.starts.len()
    }

    /// The windows and their targets; an error when the dataset has no targets (use
    /// [`TimeseriesDataset::windows`] for inputs alone).
    fn get_batch(&self, indices: &[usize]) -> Result<Batch> {
        let y = self.targets_of(indices)?.ok_or_else(|| {
            Error::invalid(
                OP,
                "this dataset was built without targets, so it has no (x, y) batches: pass targets, or \
                 use windows/all_windows for the inputs alone",
            )
        })?;
        Ok((self.windows(indices)?, y))
    }
}
