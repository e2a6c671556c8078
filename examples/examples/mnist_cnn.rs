//! The seed CNN on MNIST, exactly as in Keras (the README's main job).
//!
//! `cargo run --release -p keel-examples --example mnist_cnn -- [--epochs 10]
//!  [--batch-size 32] [--seed 0] [--data DIR] [--device cpu|cuda|cuda:N]
//!  [--dtype-policy float32|mixed_bfloat16|mixed_float16] [--steps-per-execution 1]`
//!
//! `--device cuda` needs the `cuda` feature (`--features cuda`) and a GPU with its
//! driver and NVRTC; without them the example says why and exits with status 1.
//!
//! Without `--data` it trains on the 10k digits embedded in keel-data
//! (8,000 train / 2,000 test); `--data DIR` reads the four standard MNIST files
//! (raw or .gz) from DIR, e.g. the full 60k/10k set.

use keel::prelude::*;
use keel_examples::Args;

fn main() {
    keel_examples::run_main(run)
}

fn run() -> keel::Result<()> {
    let args = Args::from_env();
    let epochs: usize = args.get("epochs", 10);
    let batch_size: usize = args.get("batch-size", 32);
    let seed: u64 = args.get("seed", 0);
    let steps_per_execution: usize = args.get("steps-per-execution", 1);
    // `--device cuda` needs `--features cuda` and a usable GPU; either missing is an error here
    let device = args.device()?;
    // Keras's `mixed_precision.set_global_policy`: the model below takes it when created
    let policy = args.get_str("dtype-policy").unwrap_or_else(|| "float32".into());
    keel::mixed_precision::set_global_policy(&policy)?;

    let ((x_train, y_train), (x_test, y_test)) = match args.get_str("data") {
        Some(dir) => keel::datasets::mnist::load_from_dir(&dir)?,
        None => keel::datasets::mnist::load()?,
    };
    let (x_train, y_train) = keel::datasets::mnist::prepare(&x_train, &y_train)?;
    let (x_test, y_test) = keel::datasets::mnist::prepare(&x_test, &y_test)?;
    println!("x_train {}, x_test {}", x_train.shape(), x_test.shape());

    let mut model = Sequential::with_seed(seed);
    model.add(Conv2D::new(32, (3, 3)).activation(Activation::Relu).input_shape([28, 28, 1]));
    model.add(MaxPooling2D::new((2, 2)));
    model.add(Conv2D::new(64, (3, 3)).activation(Activation::Relu));
    model.add(MaxPooling2D::new((2, 2)));
    model.add(Flatten::new());
    model.add(Dense::new(128).activation(Activation::Relu));
    model.add(Dense::new(10).activation(Activation::Softmax));
    model.summary();
    model.to_device(&device)?; // weights are drawn on the host (same seed, same model), then moved
    println!("training on {device} ({policy})");

    model.compile(Adam::default(), Loss::CategoricalCrossentropy, &[Metric::Accuracy])?;
    let start = std::time::Instant::now();
    let history = model.fit(
        &x_train,
        &y_train,
        Fit::new()
            .batch_size(batch_size)
            .epochs(epochs)
            .seed(seed)
            .steps_per_execution(steps_per_execution)
            .validation_data(&x_test, &y_test),
    )?;
    let train_secs = start.elapsed().as_secs_f64();
    let (loss, accuracy) = model.evaluate(&x_test, &y_test)?;
    println!("Test loss: {loss:.4}");
    println!("Test accuracy: {accuracy:.4}");
    println!(
        "{}",
        serde_json::json!({
            "example": "mnist_cnn", "device": device.to_string(), "dtype_policy": policy, "seed": seed, "epochs": epochs, "batch_size": batch_size,
            "train_seconds": train_secs, "test_loss": loss, "test_accuracy": accuracy,
            "val_accuracy": history.get("val_accuracy"),
        })
    );
    Ok(())
}
