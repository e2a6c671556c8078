//! Sequence classification: each MNIST digit read as a sequence of 28 rows of
//! 28 pixels, classified by an LSTM or a GRU (Keras's classic "row-sequence MNIST").
//!
//! `cargo run --release -p keel-examples --example mnist_rnn -- [--epochs 15]
//!  [--units 128] [--batch-size 32] [--seed 0] [--cell lstm|gru]`

use keel::prelude::*;
use keel_examples::Args;

fn main() {
    keel_examples::run_main(run)
}

fn run() -> keel::Result<()> {
    let args = Args::from_env();
    let epochs: usize = args.get("epochs", 15);
    let units: usize = args.get("units", 128);
    let batch_size: usize = args.get("batch-size", 32);
    let seed: u64 = args.get("seed", 0);
    let cell: String = args.get("cell", "lstm".to_string());

    let ((x_train, y_train), (x_test, y_test)) = keel::datasets::mnist::load()?;
    // [N, 28, 28] u8 -> [N, 28 timesteps, 28 features] in [0, 1]; sparse integer labels
    let x_train = x_train.to_dtype(DType::F32)?.div_scalar(255.0)?;
    let x_test = x_test.to_dtype(DType::F32)?.div_scalar(255.0)?;
    let (y_train, y_test) = (y_train.to_dtype(DType::I64)?, y_test.to_dtype(DType::I64)?);

    let mut model = Sequential::with_seed(seed);
    match cell.as_str() {
        "lstm" => model.add(LSTM::new(units).input_shape([28, 28])),
        "gru" => model.add(GRU::new(units).input_shape([28, 28])),
        other => {
            let msg = format!("unknown cell `{other}` (expected lstm or gru)");
            return Err(keel::tensor::Error::InvalidArgument { op: "--cell", msg }.into());
        }
    };
    model.add(Dense::new(10).activation(Activation::Softmax));
    model.summary();
    // Adam with a cosine-decayed learning rate (2e-3 down to 0 over the run)
    let steps = epochs * x_train.dims()[0].div_ceil(batch_size);
    let lr = keel::optim::schedule::CosineDecay::new(2e-3, steps as u64);
    model.compile(Adam::new(lr), Loss::SparseCategoricalCrossentropy, &[Metric::Accuracy])?;
    model.fit(
        &x_train,
        &y_train,
        Fit::new().batch_size(batch_size).epochs(epochs).seed(seed).validation_data(&x_test, &y_test),
    )?;
    let (loss, accuracy) = model.evaluate(&x_test, &y_test)?;
    println!("Test loss: {loss:.4}");
    println!("Test accuracy: {accuracy:.4}");
    Ok(())
}
