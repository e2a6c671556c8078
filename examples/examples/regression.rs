//! Regression on the diabetes table: standardized features, a Dense MLP,
//! mean squared error loss, mean absolute error metric.
//!
//! `cargo run --release -p keel-examples --example regression -- [--epochs 200] [--seed 0]`

use keel::data::preprocessing::{train_test_split, StandardScaler};
use keel::prelude::*;
use keel_examples::Args;

fn main() {
    keel_examples::run_main(run)
}

fn run() -> keel::Result<()> {
    let args = Args::from_env();
    let epochs: usize = args.get("epochs", 200);
    let seed: u64 = args.get("seed", 0);

    let (x, y) = keel::datasets::diabetes()?;
    let (x_tr, x_te, y_tr, y_te) = train_test_split(&x, &y, 0.2, seed, false)?;
    let mut scaler = StandardScaler::new();
    let x_train = scaler.fit_transform(&x_tr)?;
    let x_test = scaler.transform(&x_te)?;
    let y_train = y_tr.reshape([y_tr.dims()[0], 1])?;
    let y_test = y_te.reshape([y_te.dims()[0], 1])?;

    let mut model = Sequential::with_seed(seed);
    model.add(Dense::new(64).activation(Activation::Relu).input_shape([x_train.dims()[1]]));
    model.add(Dense::new(32).activation(Activation::Relu));
    model.add(Dense::new(1));
    model.summary();
    model.compile(Adam::new(0.01), Loss::MeanSquaredError, &[Metric::Mae])?;
    model.fit(&x_train, &y_train, Fit::new().batch_size(32).epochs(epochs).seed(seed).verbose(0))?;
    let logs = model.evaluate_all(&x_test, &y_test, 32)?;
    for (name, value) in &logs {
        println!("Test {name}: {value:.4}");
    }
    // a baseline to compare with: predicting the training mean
    let mean = y_train.mean_all()?.to_scalar::<f32>()? as f64;
    let base: f64 =
        y_test.to_vec::<f32>()?.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / y_test.dims()[0] as f64;
    println!("Baseline MSE (predict the train mean): {base:.4}");
    Ok(())
}
