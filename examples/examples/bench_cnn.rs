//! CPU benchmark of the seed CNN (the keel side of `bench/compare.sh`).
//!
//! `cargo run --release -p keel-examples --example bench_cnn -- [--batch-size 32]
//!  [--epochs 2] [--seed 0]`
//!
//! Trains the seed CNN of `mnist_cnn` on the embedded MNIST 10k (8,000 train /
//! 2,000 test) with `Sequential`/`compile`/`fit`: one warm-up epoch, then
//! `--epochs` timed epochs. Prints one JSON line: training images/s over the
//! timed epochs, test accuracy after all epochs, inference (`predict`, batch
//! 256) images/s, and the peak resident set size (VmHWM). Its PyTorch twin is
//! `bench/torch_seed_cnn.py`.

use keel::prelude::*;
use keel_examples::Args;
use std::time::Instant;

fn main() {
    keel_examples::run_main(run)
}

/// Peak resident set size of this process in MiB (`VmHWM` in /proc/self/status).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn run() -> keel::Result<()> {
    let args = Args::from_env();
    let epochs: usize = args.get("epochs", 2);
    let batch_size: usize = args.get("batch-size", 32);
    let seed: u64 = args.get("seed", 0);

    let ((x_train, y_train), (x_test, y_test)) = keel::datasets::mnist::load()?;
    let (x_train, y_train) = keel::datasets::mnist::prepare(&x_train, &y_train)?;
    let (x_test, y_test) = keel::datasets::mnist::prepare(&x_test, &y_test)?;
    let n_train = x_train.dims()[0];
    let n_test = x_test.dims()[0];

    let mut model = Sequential::with_seed(seed);
    model.add(Conv2D::new(32, (3, 3)).activation(Activation::Relu).input_shape([28, 28, 1]));
    model.add(MaxPooling2D::new((2, 2)));
    model.add(Conv2D::new(64, (3, 3)).activation(Activation::Relu));
    model.add(MaxPooling2D::new((2, 2)));
    model.add(Flatten::new());
    model.add(Dense::new(128).activation(Activation::Relu));
    model.add(Dense::new(10).activation(Activation::Softmax));
    model.compile(Adam::default(), Loss::CategoricalCrossentropy, &[Metric::Accuracy])?;

    let fit =
        |e0: usize, e1: usize| Fit::new().batch_size(batch_size).epochs(e1).initial_epoch(e0).seed(seed).verbose(0);
    // warm-up epoch (first-touch allocations, rayon pool start), not timed
    model.fit(&x_train, &y_train, fit(0, 1))?;
    let start = Instant::now();
    model.fit(&x_train, &y_train, fit(1, 1 + epochs))?;
    let train_secs = start.elapsed().as_secs_f64();
    let (_, accuracy) = model.evaluate(&x_test, &y_test)?;

    model.predict(&x_test, 256)?; // warm-up
    let reps = 3;
    let start = Instant::now();
    for _ in 0..reps {
        model.predict(&x_test, 256)?;
    }
    let infer_secs = start.elapsed().as_secs_f64();

    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    println!(
        "{}",
        serde_json::json!({
            "framework": "keel", "batch_size": batch_size, "epochs": epochs, "threads": threads,
            "train_images_per_s": (epochs * n_train) as f64 / train_secs,
            "test_accuracy": accuracy,
            "infer_images_per_s": (reps * n_test) as f64 / infer_secs,
            "peak_rss_mib": peak_rss_mib(),
        })
    );
    Ok(())
}
