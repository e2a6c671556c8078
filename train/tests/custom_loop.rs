//! A hand-written training loop (Keras's "training loop from scratch") on a `KerasModel`:
//! a `DataLoader`, a tape per step, `forward_one`, the loss, one optimizer step on
//! `trainable_params()`. It gives `fit`'s weights bit for bit over the same batches, and a
//! second model's optimizer leaves the first model alone. Also `Sequential::with_name` /
//! `Model::with_name`.

use keel_autograd::{Tape, Var};
use keel_data::DataLoader;
use keel_nn::{Activation, Ctx, Dense, Input, LayerExt, Loss, Network};
use keel_optim::{Adam, Optimizer};
use keel_tensor::rng::Rng;
use keel_train::{Fit, Model, Sequential, NO_METRICS};

mod common;
use common::{blobs, weight_bits};

fn classifier(seed: u64) -> Sequential {
    let mut m = Sequential::with_seed(seed);
    m.add(Dense::new(8).activation(Activation::Relu).input_shape([2]));
    m.add(Dense::new(1)); // logits
    m
}

#[test]
fn a_hand_written_loop_gives_fits_weights() {
    let (x, y) = blobs(3, 50); // 50 samples, batches of 16: 16, 16, 16, 2
    let loss_fn = Loss::BinaryCrossentropy.from_logits(true);

    let mut fitted = classifier(7);
    fitted.compile(Adam::new(0.01), loss_fn, NO_METRICS).unwrap();
    let history = fitted.fit(&x, &y, Fit::new().batch_size(16).epochs(2).seed(5).verbose(0)).unwrap();

    let by_hand = classifier(7);
    let loader = DataLoader::from_tensors(&x, &y, 16).unwrap().shuffle(true).seed(5);
    let (mut opt, mut rng) = (Adam::new(0.01), Rng::new(0));
    let params = by_hand.trainable_params();
    let mut epoch_losses = Vec::new();
    for epoch in 0..2 {
        let (mut sum, mut n) = (0.0, 0.0);
        for batch in loader.iter(epoch) {
            let (xb, yb) = batch.unwrap();
            let tape = Tape::new();
            let logits = by_hand.forward_one(&Var::constant(xb), &mut Ctx::train(&tape, &mut rng)).unwrap();
            let loss = loss_fn.compute(&logits, &yb, None).unwrap();
            let b = yb.dims()[0] as f64;
            sum += loss.value().to_scalar::<f32>().unwrap() as f64 * b;
            n += b;
            let grads = tape.backward(&loss).unwrap();
            opt.step(&params, &grads).unwrap();
        }
        epoch_losses.push(sum / n);
    }
    assert_eq!(weight_bits(&*by_hand), weight_bits(&*fitted), "the same weights, bit for bit");
    assert_eq!(opt.iterations(), 8);
    let logged = history.get("loss").unwrap();
    for (mine, theirs) in epoch_losses.iter().zip(logged) {
        assert!((mine - theirs).abs() < 1e-6, "epoch loss {mine} vs fit's {theirs}");
    }
}

#[test]
fn an_optimizer_steps_only_the_params_it_is_given() {
    // two models on one tape (a GAN's generator step without freezing): the loss reaches
    // both, and stepping the first model's optimizer leaves the second model as it was
    let (first, second) = (classifier(1), {
        let mut m = Sequential::with_seed(2);
        m.add(Dense::new(1).input_shape([1]));
        m
    });
    let (x, _) = blobs(4, 8);
    let before = weight_bits(&*second);
    let (tape, mut rng) = (Tape::new(), Rng::new(0));
    let mut ctx = Ctx::train(&tape, &mut rng);
    let h = first.forward_one(&Var::constant(x), &mut ctx).unwrap();
    let out = second.forward_one(&h, &mut ctx).unwrap();
    drop(ctx);
    let grads = tape.backward(&out.mean_all().unwrap()).unwrap();
    assert!(second.trainable_params().iter().all(|p| grads.get(p).is_some()));
    let first_before = weight_bits(&*first);
    Adam::new(0.1).step(&first.trainable_params(), &grads).unwrap();
    assert_eq!(weight_bits(&*second), before, "the second model is untouched");
    assert_ne!(weight_bits(&*first), first_before, "the first model moved");
}

#[test]
fn models_take_a_name() {
    let mut g = Sequential::with_seed(0).with_name("generator");
    g.add(Dense::new(2).input_shape([3]));
    assert_eq!(g.name(), "generator");
    assert_eq!(g.config()["config"]["name"], "generator");
    assert!(g.network().summary().contains("generator"), "{}", g.network().summary());

    let inp = Input::new([3]);
    let out = Dense::new(2).call(&inp).unwrap();
    let m = Model::new(&[inp], &[out]).unwrap().with_name("encoder");
    assert_eq!(m.name(), "encoder");
    assert_eq!(m.config()["config"]["name"], "encoder");
}
