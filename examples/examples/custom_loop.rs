//! Keras's "Writing a training loop from scratch" in keel: a Dense MNIST classifier trained
//! without `fit`, by a `for` loop over a `DataLoader` — forward pass on a tape, loss, backward
//! pass, optimizer step, a metric updated by hand — with a validation pass after each epoch.
//!
//! `cargo run --release -p keel-examples --example custom_loop -- [--epochs 2]
//!  [--batch-size 32] [--lr 0.001] [--seed 0]`
//!
//! The Keras guide's steps, and what each is in keel:
//!
//! | Keras (TensorFlow backend)                          | keel                                                     |
//! |-----------------------------------------------------|----------------------------------------------------------|
//! | `with tf.GradientTape() as tape:`                   | `let tape = Tape::new();`                                |
//! | `logits = model(x, training=True)`                  | `model.forward_one(&Var::constant(x), &mut Ctx::train(&tape, &mut rng))?` |
//! | `loss_value = loss_fn(y, logits)`                   | `loss_fn.compute(&logits, &y, None)?` (prediction first) |
//! | `grads = tape.gradient(loss_value, model.trainable_weights)` | `tape.backward(&loss)?` (every param on the tape) |
//! | `optimizer.apply(grads, model.trainable_weights)`   | `optimizer.step(&model.trainable_params(), &grads)?`     |
//! | `train_acc_metric.update_state(y, logits)`          | `train_acc.update_state(&y, logits.value(), None)?`      |
//! | `val_logits = model(x_val, training=False)`         | `model.forward_one(&Var::constant(x), &mut Ctx::inference())?` |
//!
//! There is nothing to zero between steps (PyTorch's `optimizer.zero_grad()`): each tape's
//! `backward` returns fresh gradients. Prints one JSON line per epoch.

use keel::data::DataLoader;
use keel::metrics::{Mean, Metric as _, SparseCategoricalAccuracy};
use keel::prelude::*;
use keel::tensor::rng::Rng;
use keel_examples::Args;

fn main() {
    keel_examples::run_main(run)
}

/// MNIST images U8 `[N, 28, 28]` as F32 `[N, 784]` in `[0, 1]`, labels U8 `[N]` as I64 class ids.
fn flat(x: &Tensor, y: &Tensor) -> keel::Result<(Tensor, Tensor)> {
    let n = x.dims()[0];
    let x = x.to_dtype(DType::F32)?.reshape((n, 28 * 28))?.mul_scalar(1.0 / 255.0)?;
    Ok((x, y.to_dtype(DType::I64)?))
}

fn run() -> keel::Result<()> {
    let args = Args::from_env();
    let epochs: usize = args.get("epochs", 2);
    let batch_size: usize = args.get("batch-size", 32);
    let lr: f64 = args.get("lr", 1e-3);
    let seed: u64 = args.get("seed", 0);

    let ((x_train, y_train), (x_val, y_val)) = keel::datasets::mnist::load()?;
    let (x_train, y_train) = flat(&x_train, &y_train)?;
    let (x_val, y_val) = flat(&x_val, &y_val)?;
    // the training batches are reshuffled every epoch (order drawn from (seed, epoch))
    let train_loader = DataLoader::from_tensors(&x_train, &y_train, batch_size)?.shuffle(true).seed(seed);
    let val_loader = DataLoader::from_tensors(&x_val, &y_val, 256)?;

    // Keras's guide: Dense(64, relu) -> Dense(64, relu) -> Dense(10), logits out
    let mut model = Sequential::with_seed(seed);
    model.add(Dense::new(64).activation(Activation::Relu).input_shape([784]));
    model.add(Dense::new(64).activation(Activation::Relu));
    model.add(Dense::new(10));
    model.summary();

    let loss_fn = Loss::SparseCategoricalCrossentropy.from_logits(true);
    let mut optimizer = Adam::new(lr);
    // dropout and other random layers draw from this (none here, but a training Ctx takes one)
    let mut rng = Rng::new(seed);
    let params = model.trainable_params();

    for epoch in 0..epochs {
        let start = std::time::Instant::now();
        let (mut train_loss, mut train_acc) = (Mean::new("loss"), SparseCategoricalAccuracy::new());
        for (step, batch) in train_loader.iter(epoch).enumerate() {
            let (x, y) = batch?;
            // the forward pass, recorded on a fresh tape
            let tape = Tape::new();
            let logits = model.forward_one(&Var::constant(x), &mut Ctx::train(&tape, &mut rng))?;
            let loss = loss_fn.compute(&logits, &y, None)?;
            // the backward pass consumes the tape; then one Adam step on the model's weights
            let grads = tape.backward(&loss)?;
            optimizer.step(&params, &grads)?;

            let loss_value = loss.value().to_scalar::<f32>()? as f64;
            train_loss.update_weighted(loss_value, y.dims()[0] as f64);
            train_acc.update_state(&y, logits.value(), None)?;
            if step % 100 == 0 {
                eprintln!(
                    "epoch {epoch} step {step}: batch loss {loss_value:.4}, seen {} samples",
                    (step + 1) * batch_size
                );
            }
        }

        // the validation pass: no tape, training = false
        let (mut val_loss, mut val_acc) = (Mean::new("val_loss"), SparseCategoricalAccuracy::new());
        for batch in val_loader.iter(0) {
            let (x, y) = batch?;
            let logits = model.forward_one(&Var::constant(x), &mut Ctx::inference())?;
            let loss = loss_fn.compute(&logits, &y, None)?.value().to_scalar::<f32>()? as f64;
            val_loss.update_weighted(loss, y.dims()[0] as f64);
            val_acc.update_state(&y, logits.value(), None)?;
        }
        println!(
            "{}",
            serde_json::json!({
                "example": "custom_loop", "epoch": epoch, "loss": train_loss.result(), "accuracy": train_acc.result(),
                "val_loss": val_loss.result(), "val_accuracy": val_acc.result(),
                "seconds": start.elapsed().as_secs_f64(),
            })
        );
    }
    Ok(())
}
