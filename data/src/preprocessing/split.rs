//! `train_test_split`, optionally stratified.

use super::labels_to_vec;
use crate::{Error, Result};
use keel_tensor::rng::Rng;
use keel_tensor::Tensor;
use std::collections::BTreeMap;

/// `(x_train, x_test, y_train, y_test)`, in scikit-learn's order.
pub type TrainTestSplit = (Tensor, Tensor, Tensor, Tensor);

/// Split rows of `x` and `y` into a shuffled train and test part.
///
/// `test_size` in `(0, 1)` is a fraction (test rows = `ceil(test_size * N)`,
/// as in scikit-learn); a whole number from 2 to `N - 1` is a row count. Any
/// other value is an error, `1.0` included (a fraction must be below 1, as in
/// scikit-learn; a one-row test set cannot be asked for). With `stratify`, each class of
/// `y` (labels `[N]` or `[N, 1]`, or one-hot `[N, C]`) keeps its proportion in both parts:
/// the test rows are allotted to classes by largest remainder, then drawn at
/// random within each class. The same `seed` gives the same split. (The
/// permutation differs from scikit-learn's, which uses another generator.)
pub fn train_test_split(x: &Tensor, y: &Tensor, test_size: f64, seed: u64, stratify: bool) -> Result<TrainTestSplit> {
    const OP: &str = "train_test_split";
    let n = *x.dims().first().unwrap_or(&0);
    if y.dims().first() != Some(&n) {
        return Err(Error::invalid(
            OP,
            format!("x has {n} rows but y has shape {:?}; they must have the same first dimension", y.dims()),
        ));
    }
    // like scikit-learn: a fraction in (0, 1) or a whole row count (1.0 would be the whole set as a
    // fraction, so counts start at 2); the count's upper bound is checked below
    if !(test_size > 0.0 && test_size < 1.0 || test_size >= 2.0 && test_size.is_finite() && test_size.fract() == 0.0) {
        return Err(Error::invalid(
            OP,
            format!(
                "test_size must be a fraction in (0, 1) or a whole number of rows from 2 to {}, got {test_size}",
                n.saturating_sub(1)
            ),
        ));
    }
    let n_test = if test_size < 1.0 { (test_size * n as f64).ceil() as usize } else { test_size as usize };
    if n_test == 0 || n_test >= n {
        return Err(Error::invalid(
            OP,
            format!(
                "test_size {test_size} leaves {n_test} of {n} rows for testing; both parts \
                 need at least one row"
            ),
        ));
    }
    let mut rng = Rng::new(seed);
    let (mut train, mut test): (Vec<usize>, Vec<usize>);
    if stratify {
        let labels = labels_to_vec(y, OP)?;
        let mut classes = BTreeMap::<i64, Vec<usize>>::new();
        for (i, l) in labels.iter().enumerate() {
            classes.entry(*l).or_default().push(i);
        }
        if let Some((c, m)) = classes.iter().find(|(_, m)| m.len() < 2) {
            return Err(Error::invalid(
                OP,
                format!("class {c} has only {} sample(s); stratifying needs at least 2 per class", m.len()),
            ));
        }
        let k = classes.len();
        if n_test < k || n - n_test < k {
            return Err(Error::invalid(
                OP,
                format!("{n_test} test / {} train rows cannot hold all {k} classes; change test_size", n - n_test),
            ));
        }
        // largest-remainder allotment of test rows to classes
        let exact: Vec<f64> = classes.values().map(|m| n_test as f64 * m.len() as f64 / n as f64).collect();
        let mut alloc: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b)));
        let mut left = n_test - alloc.iter().sum::<usize>();
        for &c in order.iter().cycle() {
            if left == 0 {
                break;
            }
            let size = classes.values().nth(c).map_or(0, |m| m.len());
            if alloc[c] + 1 < size {
                alloc[c] += 1;
                left -= 1;
            }
        }
        train = Vec::with_capacity(n - n_test);
        test = Vec::with_capacity(n_test);
        for (members, &t) in classes.into_values().zip(&alloc) {
            let mut m = members;
            rng.shuffle(&mut m);
            test.extend_from_slice(&m[..t]);
            train.extend_from_slice(&m[t..]);
        }
        rng.shuffle(&mut train);
        rng.shuffle(&mut test);
    } else {
        let mut idx: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut idx);
        test = idx[..n_test].to_vec();
        train = idx[n_test..].to_vec();
    }
    let take = |t: &Tensor, rows: &[usize]| -> Result<Tensor> {
        let i = Tensor::from_vec(rows.iter().map(|&r| r as i64).collect::<Vec<_>>(), rows.len())?;
        Ok(t.index_select(&i, 0)?)
    };
    Ok((take(x, &train)?, take(x, &test)?, take(y, &train)?, take(y, &test)?))
}
