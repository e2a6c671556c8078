//! A few steps of the `mnist_gan` example's hand-written GAN loop (the example's own code,
//! included from `examples/mnist_gan.rs`), small enough for a test: the losses are finite,
//! the discriminator's step moves only the discriminator and the generator's step only the
//! generator, and the same seed gives the same bits.

#[allow(dead_code)]
#[path = "../examples/mnist_gan.rs"]
mod mnist_gan;

use keel::prelude::*;
use mnist_gan::{Gan, GanConfig};

fn bits(model: &impl Network) -> Vec<(String, Vec<u32>)> {
    model
        .state_dict()
        .into_iter()
        .map(|(k, t)| (k, t.to_vec::<f32>().unwrap().into_iter().map(f32::to_bits).collect()))
        .collect()
}

fn tiny(seed: u64) -> GanConfig {
    GanConfig { latent_dim: 8, filters: 4, learning_rate: 1e-3, seed }
}

/// The first `n` embedded training digits, F32 `[n, 28, 28, 1]` in `[0, 1]`.
fn real(n: usize) -> Tensor {
    let ((x, _), _) = keel::datasets::mnist::load_prepared().unwrap();
    x.narrow(0, 0, n).unwrap()
}

type Run = (Vec<(f64, f64)>, Vec<(String, Vec<u32>)>, Vec<(String, Vec<u32>)>, Vec<u32>);

/// `steps` GAN steps on batches of 8: the losses, both models' weights, 4 generated images.
fn train(seed: u64, steps: usize) -> Run {
    let x = real(8 * steps);
    let mut gan = Gan::new(&tiny(seed));
    let losses = (0..steps).map(|s| gan.train_step(&x.narrow(0, 8 * s, 8).unwrap()).unwrap()).collect();
    let images = gan.generate(4, 1).unwrap().to_vec::<f32>().unwrap().into_iter().map(f32::to_bits).collect();
    (losses, bits(&*gan.generator), bits(&*gan.discriminator), images)
}

#[test]
fn each_step_trains_its_own_model_only() {
    let x = real(8);
    let mut gan = Gan::new(&tiny(0));
    let (g0, d0) = (bits(&*gan.generator), bits(&*gan.discriminator));

    let d_loss = gan.d_step(&x).unwrap();
    assert!(d_loss.is_finite() && d_loss > 0.0, "d_loss {d_loss}");
    let (g1, d1) = (bits(&*gan.generator), bits(&*gan.discriminator));
    assert_eq!(g1, g0, "the discriminator's step leaves the generator alone");
    assert!(d1.iter().zip(&d0).all(|(a, b)| a.1 != b.1), "every discriminator weight moved");

    let g_loss = gan.g_step(8).unwrap();
    assert!(g_loss.is_finite() && g_loss > 0.0, "g_loss {g_loss}");
    let (g2, d2) = (bits(&*gan.generator), bits(&*gan.discriminator));
    assert_eq!(d2, d1, "the generator's step leaves the discriminator alone");
    assert!(g2.iter().zip(&g1).all(|(a, b)| a.1 != b.1), "every generator weight moved");
    assert_eq!((gan.d_optimizer.iterations(), gan.g_optimizer.iterations()), (1, 1));

    let images = gan.generate(3, 0).unwrap();
    assert_eq!(images.dims(), &[3, 28, 28, 1]);
    let v = images.to_vec::<f32>().unwrap();
    assert!(v.iter().all(|p| (0.0..=1.0).contains(p)), "sigmoid images in [0, 1]");
}

#[test]
fn a_few_steps_are_finite_and_the_same_seed_gives_the_same_bits() {
    let a = train(3, 3);
    assert!(a.0.iter().all(|(d, g)| d.is_finite() && g.is_finite()), "{:?}", a.0);
    assert_eq!(a, train(3, 3), "same seed, same losses, weights and images");
    let b = train(4, 3);
    assert_ne!(a.0, b.0, "another seed, other losses");
    assert_ne!(a.1, b.1, "another seed, another generator");
}
