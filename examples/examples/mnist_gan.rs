//! A small DCGAN on the embedded MNIST digits, trained by a hand-written loop: Keras's
//! "DCGAN: customizing what happens in fit" example (its `GAN.train_step`) in keel.
//!
//! `cargo run --release -p keel-examples --example mnist_gan -- [--epochs 3]
//!  [--steps-per-epoch 25] [--batch-size 64] [--latent-dim 32] [--filters 32] [--lr 0.0003]
//!  [--seed 0] [--out PATH] [--samples 64] [--scale 2]`
//!
//! Two models and two Adam optimizers:
//! - the generator: latent `z` -> Dense(7·7·2f) -> LeakyReLU -> Reshape(7, 7, 2f) ->
//!   Conv2DTranspose(f, 4, strides 2) -> LeakyReLU -> Conv2DTranspose(f/2, 4, strides 2) ->
//!   LeakyReLU -> Conv2D(1, 5, sigmoid): a 28x28 image in `[0, 1]`;
//! - the discriminator: Conv2D(f, 3, strides 2) -> LeakyReLU -> Conv2D(2f, 3, strides 2) ->
//!   LeakyReLU -> Flatten -> Dense(1): one logit, "this image is generated".
//!
//! Each step, as Keras's `train_step`:
//! 1. the discriminator on generated images (label 1) and real ones (label 0), labels
//!    jittered by `0.05 * U[0, 1)`; binary cross-entropy from its logits; its gradients,
//!    one step of its optimizer (the generator runs without a tape: it is not trained here);
//! 2. the generator through the discriminator, with "real" labels (0) for its images: the
//!    discriminator is called inside `Ctx::with_frozen`, so its weights are constants on the
//!    tape (no gradient is computed for them) while the gradient flows through it to the
//!    generator, and only the generator's optimizer steps.
//!
//! `--steps-per-epoch 0` runs whole passes over the 8,000 training digits (125 steps of 64).
//! Prints one JSON line per epoch (`d_loss`, `g_loss`: the epoch's mean batch losses), then
//! writes a PNG grid of `--samples` generated digits, each upscaled `--scale` times, to `--out`
//! (default: `keel_mnist_gan.png` in the system's temporary directory) and prints a summary line. The same `--seed` gives
//! the same bits (weights, losses, image). The defaults (75 steps) finish in under a minute on
//! two CPU cores and show the mechanics: their images are still mostly dark. With
//! `--epochs 10 --steps-per-epoch 0` (1,250 steps; 2026-12-07: 25 minutes on two heavily
//! shared cores) the generator draws digit-like strokes (7s, 0s, 9s), d_loss settling near
//! 0.55-0.6 and g_loss near 1.05.

use keel::data::image::save_png_grid;
use keel::data::DataLoader;
use keel::prelude::*;
use keel::tensor::rng::Rng;
use keel_examples::Args;

/// The sizes and hyper-parameters of a [`Gan`].
#[derive(Debug, Clone, Copy)]
pub struct GanConfig {
    /// Length of the latent vector `z`.
    pub latent_dim: usize,
    /// The base width `f`: the discriminator's first convolution has `f` filters, the
    /// generator's first transposed convolution too (see the module docs).
    pub filters: usize,
    /// Both optimizers' learning rate (Keras's example: 3e-4).
    pub learning_rate: f64,
    /// Seeds both models' weights and every draw of `z` and of the label noise.
    pub seed: u64,
}

impl Default for GanConfig {
    fn default() -> Self {
        GanConfig { latent_dim: 32, filters: 32, learning_rate: 3e-4, seed: 0 }
    }
}

/// `[latent_dim]` -> F32 `[28, 28, 1]` in `[0, 1]`.
pub fn generator(cfg: &GanConfig) -> Sequential {
    let f = cfg.filters.max(2);
    let mut g = Sequential::with_seed(cfg.seed).with_name("generator");
    g.add(Dense::new(7 * 7 * 2 * f).input_shape([cfg.latent_dim]));
    g.add(LeakyReLU::new(0.2));
    g.add(Reshape::new([7, 7, 2 * f as isize]));
    g.add(Conv2DTranspose::new(f, 4).strides(2).padding(Padding::Same)); // 14x14
    g.add(LeakyReLU::new(0.2));
    g.add(Conv2DTranspose::new(f / 2, 4).strides(2).padding(Padding::Same)); // 28x28
    g.add(LeakyReLU::new(0.2));
    g.add(Conv2D::new(1, 5).padding(Padding::Same).activation(Activation::Sigmoid));
    g
}

/// `[28, 28, 1]` -> one logit per image (`[1]`), positive for "generated".
pub fn discriminator(cfg: &GanConfig) -> Sequential {
    let f = cfg.filters.max(1);
    let mut d = Sequential::with_seed(cfg.seed.wrapping_add(1)).with_name("discriminator");
    d.add(Conv2D::new(f, 3).strides(2).padding(Padding::Same).input_shape([28, 28, 1])); // 14x14
    d.add(LeakyReLU::new(0.2));
    d.add(Conv2D::new(2 * f, 3).strides(2).padding(Padding::Same)); // 7x7
    d.add(LeakyReLU::new(0.2));
    d.add(Flatten::new());
    d.add(Dense::new(1));
    d
}

/// The two models, their optimizers, the loss, and the generator of random draws.
pub struct Gan {
    /// Makes images from latent vectors.
    pub generator: Sequential,
    /// Tells generated images (logit > 0) from real ones.
    pub discriminator: Sequential,
    /// Steps the discriminator's weights only.
    pub d_optimizer: Adam,
    /// Steps the generator's weights only.
    pub g_optimizer: Adam,
    latent_dim: usize,
    loss: LossFn,
    rng: Rng,
}

impl Gan {
    /// Fresh models and optimizers for `cfg`.
    pub fn new(cfg: &GanConfig) -> Gan {
        Gan {
            generator: generator(cfg),
            discriminator: discriminator(cfg),
            d_optimizer: Adam::new(cfg.learning_rate),
            g_optimizer: Adam::new(cfg.learning_rate),
            latent_dim: cfg.latent_dim,
            // Keras's `BinaryCrossentropy(from_logits=True)`
            loss: Loss::BinaryCrossentropy.from_logits(true),
            rng: Rng::new(keel::data::seed::derive_seed(cfg.seed, 0, 0x0047_414E)),
        }
    }

    /// `n` latent vectors `z ~ N(0, 1)`, `[n, latent_dim]`.
    fn latent(&mut self, n: usize) -> keel::Result<Tensor> {
        Ok(Tensor::rand_normal(self.rng.fork_seed(), 0.0, 1.0, (n, self.latent_dim), DType::F32, &Device::Cpu)?)
    }

    /// One discriminator step on a batch of real images `[b, 28, 28, 1]`; returns its loss.
    pub fn d_step(&mut self, real: &Tensor) -> keel::Result<f64> {
        let b = real.dims()[0];
        // the generator's images, computed without a tape (the generator is not trained here)
        let z = self.latent(b)?;
        let fake = self.generator.predict(&z, b)?;
        let images = Tensor::concat(&[fake, real.clone()], 0)?;
        // 1 = generated, 0 = real, plus Keras's label noise
        let labels = Tensor::concat(
            &[Tensor::ones((b, 1), DType::F32, &Device::Cpu)?, Tensor::zeros((b, 1), DType::F32, &Device::Cpu)?],
            0,
        )?;
        let jitter = Tensor::rand_uniform(self.rng.fork_seed(), 0.0, 1.0, (2 * b, 1), DType::F32, &Device::Cpu)?;
        let labels = labels.add(&jitter.mul_scalar(0.05)?)?;

        let tape = Tape::new();
        let logits = self.discriminator.forward_one(&Var::constant(images), &mut Ctx::train(&tape, &mut self.rng))?;
        let d_loss = self.loss.compute(&logits, &labels, None)?;
        let grads = tape.backward(&d_loss)?;
        self.d_optimizer.step(&self.discriminator.trainable_params(), &grads)?;
        Ok(d_loss.value().to_scalar::<f32>()? as f64)
    }

    /// One generator step on a batch of `b` latent vectors; returns its loss.
    pub fn g_step(&mut self, b: usize) -> keel::Result<f64> {
        let z = self.latent(b)?;
        // "these are real" (0): the generator learns to fool the discriminator
        let misleading = Tensor::zeros((b, 1), DType::F32, &Device::Cpu)?;

        let tape = Tape::new();
        let mut ctx = Ctx::train(&tape, &mut self.rng);
        let fake = self.generator.forward_one(&Var::constant(z), &mut ctx)?;
        // the discriminator's weights are constants on this tape: no gradient for them
        let logits = ctx.with_frozen(true, |ctx| self.discriminator.forward_one(&fake, ctx))?;
        drop(ctx); // it borrows the tape, which `backward` consumes
        let g_loss = self.loss.compute(&logits, &misleading, None)?;
        let grads = tape.backward(&g_loss)?;
        self.g_optimizer.step(&self.generator.trainable_params(), &grads)?;
        Ok(g_loss.value().to_scalar::<f32>()? as f64)
    }

    /// Keras's `train_step`: [`Gan::d_step`] on `real`, then [`Gan::g_step`] on as many
    /// latent vectors; returns `(d_loss, g_loss)`.
    pub fn train_step(&mut self, real: &Tensor) -> keel::Result<(f64, f64)> {
        let d_loss = self.d_step(real)?;
        let g_loss = self.g_step(real.dims()[0])?;
        Ok((d_loss, g_loss))
    }

    /// `n` generated images `[n, 28, 28, 1]` in `[0, 1]` from latent vectors drawn with `seed`
    /// (the training draws are not affected).
    pub fn generate(&self, n: usize, seed: u64) -> keel::Result<Tensor> {
        let z = Tensor::rand_normal(seed, 0.0, 1.0, (n, self.latent_dim), DType::F32, &Device::Cpu)?;
        Ok(self.generator.predict(&z, n.max(1))?)
    }
}

fn main() {
    keel_examples::run_main(run)
}

fn run() -> keel::Result<()> {
    let args = Args::from_env();
    let epochs: usize = args.get("epochs", 3);
    let steps_per_epoch: usize = args.get("steps-per-epoch", 25);
    let batch_size: usize = args.get("batch-size", 64).max(1);
    let samples: usize = args.get("samples", 64).max(1);
    let scale: usize = args.get("scale", 2).max(1);
    let cfg = GanConfig {
        latent_dim: args.get("latent-dim", 32).max(1),
        filters: args.get("filters", 32),
        learning_rate: args.get("lr", 3e-4),
        seed: args.get("seed", 0),
    };
    let out = args
        .get_str("out")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("keel_mnist_gan.png"));

    // the real digits, F32 [8000, 28, 28, 1] in [0, 1]; their labels are not used
    let ((x_train, y_train), _) = keel::datasets::mnist::load_prepared()?;
    let loader = DataLoader::from_tensors(&x_train, &y_train, batch_size)?.shuffle(true).seed(cfg.seed).drop_last(true);

    let mut gan = Gan::new(&cfg);
    gan.generator.summary();
    gan.discriminator.summary();

    let start = std::time::Instant::now();
    let (mut d_losses, mut g_losses) = (Vec::new(), Vec::new());
    for epoch in 0..epochs {
        let epoch_start = std::time::Instant::now();
        let (mut d_sum, mut g_sum, mut steps) = (0.0, 0.0, 0usize);
        for batch in loader.iter(epoch) {
            if steps_per_epoch > 0 && steps == steps_per_epoch {
                break; // Keras's steps_per_epoch; the next epoch starts a fresh shuffle
            }
            let (real, _labels) = batch?;
            let (d_loss, g_loss) = gan.train_step(&real)?;
            if !(d_loss.is_finite() && g_loss.is_finite()) {
                return Err(keel::train::Error::invalid(
                    "mnist_gan",
                    format!("epoch {epoch} step {steps}: d_loss {d_loss}, g_loss {g_loss}; lower --lr"),
                )
                .into());
            }
            d_sum += d_loss;
            g_sum += g_loss;
            steps += 1;
        }
        let (d_loss, g_loss) = (d_sum / steps.max(1) as f64, g_sum / steps.max(1) as f64);
        d_losses.push(d_loss);
        g_losses.push(g_loss);
        println!(
            "{}",
            serde_json::json!({
                "example": "mnist_gan", "epoch": epoch, "steps": steps, "d_loss": d_loss, "g_loss": g_loss,
                "seconds": epoch_start.elapsed().as_secs_f64(),
            })
        );
    }
    let train_secs = start.elapsed().as_secs_f64();

    // a square-ish grid of generated digits: pixels scaled to 0..=255 for the PNG, each
    // digit upscaled `--scale` times (nearest neighbour, as in Keras's preview plots)
    let images = gan.generate(samples, cfg.seed)?.mul_scalar(255.0)?;
    let images = UpSampling2D::new(scale).forward(&Var::constant(images), &mut Ctx::inference())?.into_value();
    let cols = (samples as f64).sqrt().ceil() as usize;
    save_png_grid(&out, &images, cols)?;
    println!(
        "{}",
        serde_json::json!({
            "example": "mnist_gan", "seed": cfg.seed, "epochs": epochs, "steps_per_epoch": steps_per_epoch,
            "batch_size": batch_size, "latent_dim": cfg.latent_dim, "filters": cfg.filters,
            "train_seconds": train_secs, "d_loss": d_losses, "g_loss": g_losses,
            "image": out.display().to_string(),
        })
    );
    Ok(())
}
