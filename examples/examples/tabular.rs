//! Binary classification on the breast-cancer table: standardize, a Dense MLP
//! with a sigmoid output, binary cross-entropy, on a fixed stratified 80/20 split.
//!
//! `cargo run --release -p keel-examples --example tabular -- [--epochs 50] [--seed 0]`

use keel::data::preprocessing::{train_test_split, StandardScaler};
use keel::prelude::*;
use keel_examples::Args;

fn main() {
    keel_examples::run_main(run)
}

fn run() -> keel::Result<()> {
    let args = Args::from_env();
    let epochs: usize = args.get("epochs", 50);
    let seed: u64 = args.get("seed", 0);

    let (x, y) = keel::datasets::breast_cancer()?;
    let (x_tr, x_te, y_tr, y_te) = train_test_split(&x, &y, 0.2, seed, true)?;
    let mut scaler = StandardScaler::new();
    let x_train = scaler.fit_transform(&x_tr)?;
    let x_test = scaler.transform(&x_te)?;
    let y_train = y_tr.to_dtype(DType::F32)?.reshape([y_tr.dims()[0], 1])?;
    let y_test = y_te.to_dtype(DType::F32)?.reshape([y_te.dims()[0], 1])?;
    println!("train {} / test {} samples, {} features", x_train.dims()[0], x_test.dims()[0], x_train.dims()[1]);

    let mut model = Sequential::with_seed(seed);
    model.add(Dense::new(32).activation(Activation::Relu).input_shape([x_train.dims()[1]]));
    model.add(Dense::new(16).activation(Activation::Relu));
    model.add(Dense::new(1).activation(Activation::Sigmoid));
    model.summary();
    model.compile(Adam::default(), Loss::BinaryCrossentropy, &[Metric::Accuracy])?;
    model.fit(&x_train, &y_train, Fit::new().batch_size(32).epochs(epochs).seed(seed).verbose(2))?;
    let (loss, accuracy) = model.evaluate(&x_test, &y_test)?;
    println!("Test loss: {loss:.4}");
    println!("Test accuracy: {accuracy:.4}");
    Ok(())
}
