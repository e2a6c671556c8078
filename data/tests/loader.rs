//! Dataset / DataLoader: batching, shuffling per epoch, drop_last, prefetch, errors.

use keel_data::{Batch, BatchSource, DataLoader, Dataset, Error, Result, TensorDataset};
use keel_tensor::Tensor;

fn data(n: usize) -> (Tensor, Tensor) {
    let x = Tensor::from_vec((0..n * 3).map(|v| v as f32).collect::<Vec<_>>(), (n, 3)).unwrap();
    let y = Tensor::from_vec((0..n as i64).collect::<Vec<_>>(), n).unwrap();
    (x, y)
}

fn labels(l: &DataLoader, epoch: usize) -> Vec<Vec<i64>> {
    l.iter(epoch).map(|b| b.unwrap().1.to_vec::<i64>().unwrap()).collect()
}

#[test]
fn batches_cover_the_data_in_order_without_shuffle() {
    let (x, y) = data(10);
    let mut l = DataLoader::from_tensors(&x, &y, 4).unwrap();
    assert_eq!(l.len_batches(), 3);
    let b: Vec<Batch> = l.batches(0).map(|b| b.unwrap()).collect();
    assert_eq!(b.len(), 3);
    assert_eq!(b[0].0.dims(), &[4, 3]);
    assert_eq!(b[2].0.dims(), &[2, 3]);
    assert_eq!(b[1].0.to_vec::<f32>().unwrap()[0], 12.0);
    assert_eq!(labels(&l, 0).concat(), (0..10).collect::<Vec<i64>>());
    let l = l.drop_last(true);
    assert_eq!(l.len_batches(), 2);
    assert_eq!(labels(&l, 0).len(), 2);
}

#[test]
fn shuffle_is_deterministic_per_seed_and_epoch() {
    let (x, y) = data(50);
    let l = DataLoader::from_tensors(&x, &y, 8).unwrap().shuffle(true).seed(3);
    let e0 = labels(&l, 0);
    assert_eq!(e0, labels(&l, 0));
    assert_ne!(e0, labels(&l, 1));
    let mut all = e0.concat();
    all.sort();
    assert_eq!(all, (0..50).collect::<Vec<i64>>());
    let other = DataLoader::from_tensors(&x, &y, 8).unwrap().shuffle(true).seed(4);
    assert_ne!(e0, labels(&other, 0));
    // prefetch thread or not: same batches
    assert_eq!(e0, labels(&l.clone().prefetch(0), 0));
    assert_eq!(e0, labels(&l.clone().prefetch(7), 0));
    // rows stay paired: x row k starts with 3 * label
    for b in l.iter(2) {
        let (xb, yb) = b.unwrap();
        let xs = xb.to_vec::<f32>().unwrap();
        for (k, lab) in yb.to_vec::<i64>().unwrap().into_iter().enumerate() {
            assert_eq!(xs[k * 3], (lab * 3) as f32);
        }
    }
}

#[test]
fn dropping_the_iterator_early_stops_the_worker() {
    let (x, y) = data(1000);
    let l = DataLoader::from_tensors(&x, &y, 1).unwrap().prefetch(1);
    let mut it = l.iter(0);
    assert!(it.next().unwrap().is_ok());
    drop(it); // must not hang
}

struct Flaky {
    fail_at: usize,
    panic: bool,
}

impl Dataset for Flaky {
    fn len(&self) -> usize {
        10
    }
    fn get_batch(&self, idx: &[usize]) -> Result<Batch> {
        if idx.contains(&self.fail_at) {
            if self.panic {
                panic!("boom at {}", self.fail_at);
            }
            return Err(Error::invalid("Flaky", "bad sample"));
        }
        let t = Tensor::from_vec(vec![0f32; idx.len()], idx.len()).unwrap();
        Ok((t.clone(), t))
    }
}

#[test]
fn worker_errors_and_panics_become_errors() {
    for prefetch in [0, 2] {
        let l = DataLoader::new(Flaky { fail_at: 5, panic: false }, 2).unwrap().prefetch(prefetch);
        let r: Vec<_> = l.iter(0).collect();
        assert_eq!(r.len(), 3, "stops after the error");
        assert!(r[2].as_ref().unwrap_err().to_string().contains("bad sample"));
    }
    let l = DataLoader::new(Flaky { fail_at: 5, panic: true }, 2).unwrap();
    let r: Vec<_> = l.iter(0).collect();
    assert_eq!(r.len(), 3);
    let e = r[2].as_ref().unwrap_err().to_string();
    assert!(e.contains("panicked") && e.contains("boom at 5"), "{e}");
}

#[test]
fn invalid_arguments() {
    let (x, y) = data(4);
    assert!(DataLoader::from_tensors(&x, &y, 0).is_err());
    let y3 = Tensor::from_vec(vec![0i64; 3], 3).unwrap();
    assert!(TensorDataset::new(x.clone(), y3).is_err());
    let ds = TensorDataset::new(x, y).unwrap();
    assert!(ds.get_batch(&[0, 9]).unwrap_err().to_string().contains("out of range"));
}
