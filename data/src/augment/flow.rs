//! [`ImageFlow`]: augmented batches from `ImageDataGenerator::flow`.

use super::{dims4, ImageDataGenerator};
use crate::loader::{
    count_batches, epoch_order, plan_batches, run_batches, take_rows, BatchIter, BatchSource, Producer,
};
use crate::{Error, Result};
use keel_tensor::{DType, Tensor};
use rayon::prelude::*;
use std::sync::Arc;

/// Batches of randomly augmented images (Keras's `NumpyArrayIterator`); a [`BatchSource`].
///
/// Each epoch visits every image once (shuffled by default), augmenting image
/// `j` with a seed derived from `(seed, epoch, j)` in parallel with rayon, on a
/// prefetch thread. `x` batches are F32 `[B, H, W, C]`; `y` rows pass through
/// unchanged.
#[derive(Clone)]
pub struct ImageFlow {
    gen: Arc<ImageDataGenerator>,
    data: Arc<Vec<f32>>,
    shape: (usize, usize, usize, usize),
    y: Tensor,
    batch_size: usize,
    shuffle: bool,
    seed: u64,
    drop_last: bool,
    prefetch: usize,
}

impl std::fmt::Debug for ImageFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageFlow")
            .field("shape", &self.shape)
            .field("batch_size", &self.batch_size)
            .field("shuffle", &self.shuffle)
            .field("seed", &self.seed)
            .finish()
    }
}

impl ImageFlow {
    /// A flow over NHWC images `x` and targets `y` (same first dimension).
    pub fn new(gen: ImageDataGenerator, x: &Tensor, y: &Tensor, batch_size: usize) -> Result<Self> {
        let shape = dims4(x, "ImageDataGenerator::flow")?;
        if y.dims().first() != Some(&shape.0) {
            return Err(Error::invalid(
                "ImageDataGenerator::flow",
                format!(
                    "x has {} images but y has shape {:?}; they must have the same first dimension",
                    shape.0,
                    y.dims()
                ),
            ));
        }
        if batch_size == 0 {
            return Err(Error::invalid("ImageDataGenerator::flow", "batch_size must be at least 1"));
        }
        gen.validate("ImageDataGenerator::flow")?;
        if (gen.featurewise_center && gen.mean.is_none()) || (gen.featurewise_std_normalization && gen.std.is_none()) {
            return Err(Error::invalid(
                "ImageDataGenerator::flow",
                "feature-wise standardization is on but the generator was not fitted; call \
                 fit(&x_train) first",
            ));
        }
        Ok(ImageFlow {
            gen: Arc::new(gen),
            data: Arc::new(x.to_dtype(DType::F32)?.to_vec::<f32>()?),
            shape,
            y: y.clone(),
            batch_size,
            shuffle: true,
            seed: 0,
            drop_last: false,
            prefetch: 2,
        })
    }

    /// Reshuffle every epoch (default true).
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = on;
        self
    }

    /// Seed for the order and the augmentations (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Drop the last short batch.
    pub fn drop_last(mut self, on: bool) -> Self {
        self.drop_last = on;
        self
    }

    /// Prefetch queue depth (default 2; 0 = produce on the caller's thread).
    pub fn prefetch(mut self, batches: usize) -> Self {
        self.prefetch = batches;
        self
    }

    /// Number of images.
    pub fn len_samples(&self) -> usize {
        self.shape.0
    }

    /// The batches of `epoch` (`&self` form of [`BatchSource::batches`]).
    pub fn iter(&self, epoch: usize) -> BatchIter<'static> {
        let (n, h, w, c) = self.shape;
        let plan = plan_batches(epoch_order(n, self.shuffle, self.seed, epoch), self.batch_size, self.drop_last);
        let (gen, data, y, seed) = (self.gen.clone(), self.data.clone(), self.y.clone(), self.seed);
        let producer: Producer = Arc::new(move |epoch, idx: &[usize]| {
            let imgs: Vec<Vec<f32>> =
                idx.par_iter().map(|&j| gen.augment_one(&data, (h, w, c), j, seed, epoch)).collect::<Result<_>>()?;
            let xb = Tensor::from_vec(imgs.concat(), (idx.len(), h, w, c))?;
            Ok((xb, take_rows(&y, idx, "ImageFlow")?))
        });
        run_batches(producer, epoch, plan, self.prefetch)
    }
}

impl BatchSource for ImageFlow {
    fn len_batches(&self) -> usize {
        count_batches(self.shape.0, self.batch_size, self.drop_last)
    }

    fn batches(&mut self, epoch: usize) -> BatchIter<'_> {
        self.iter(epoch)
    }
}
