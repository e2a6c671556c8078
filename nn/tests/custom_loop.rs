//! What a hand-written training loop uses (Keras's "training loop from scratch", its DCGAN
//! `train_step`): `Network::forward_one` (Keras's `model(x, training=True)`) and
//! `Ctx::with_frozen` (a model called with its weights held fixed inside another's step).

use keel_autograd::{Tape, Var};
use keel_nn::mixed_precision::DTypePolicy;
use keel_nn::prelude::*;
use keel_nn::{CastCache, Error};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap().into_iter().map(f32::to_bits).collect()
}

fn noise(seed: u64, shape: (usize, usize)) -> Tensor {
    Tensor::rand_normal(seed, 0.0, 1.0, shape, DType::F32, &Device::Cpu).unwrap()
}

/// A generator `[4] -> [6]` and a critic `[6] -> [1]` (dropout in the generator, so the
/// training flag and the rng matter).
fn pair(policy: DTypePolicy) -> (Sequential, Sequential) {
    let mut generator = Sequential::with_seed(1).dtype_policy(policy);
    generator.add(Dense::new(8).activation(Activation::Relu).input_shape([4]));
    generator.add(Dropout::new(0.25));
    generator.add(Dense::new(6).activation(Activation::Tanh));
    let mut critic = Sequential::with_seed(2).dtype_policy(policy);
    critic.add(Dense::new(5).activation(Activation::LeakyRelu).input_shape([6]));
    critic.add(Dense::new(1));
    (generator, critic)
}

#[test]
fn forward_one_is_forward_of_one_input_and_output() {
    let (generator, _) = pair(DTypePolicy::Float32);
    let z = noise(3, (5, 4));
    let run = |one: bool| {
        let (tape, mut rng) = (Tape::new(), Rng::new(9));
        let mut ctx = Ctx::train(&tape, &mut rng);
        let x = Var::constant(z.clone());
        let y = if one {
            generator.forward_one(&x, &mut ctx).unwrap()
        } else {
            generator.forward(&[x], &mut ctx).unwrap().remove(0)
        };
        let out = y.value().clone();
        let grads = tape.backward(&y.square().unwrap().mean_all().unwrap()).unwrap();
        let g: Vec<Vec<u32>> = generator.trainable_params().iter().map(|p| bits(grads.get(p).unwrap())).collect();
        (bits(&out), g)
    };
    assert_eq!(run(true), run(false), "same outputs and gradients, dropout included");
    // inference: no tape, dropout off, the output `predict` gives
    let y = generator.forward_one(&Var::constant(z.clone()), &mut Ctx::inference()).unwrap();
    assert!(!y.is_tracked());
    assert_eq!(bits(y.value()), bits(&generator.predict(&[z]).unwrap()[0]));
}

#[test]
fn forward_one_refuses_several_outputs_and_inputs() {
    let x = Input::new([3]);
    let a = Dense::new(2).call(&x).unwrap();
    let b = Dense::new(1).call(&x).unwrap();
    let two_out = Model::new(&[x], &[a, b]).unwrap();
    let v = Var::constant(noise(1, (2, 3)));
    let e = two_out.forward_one(&v, &mut Ctx::inference()).unwrap_err();
    assert!(matches!(&e, Error::Input { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("one output") && msg.contains("has 2") && msg.contains("forward(&[..], ctx)"), "{msg}");

    let (p, q) = (Input::new([3]), Input::new([3]));
    let two_in = Model::new(&[p.clone(), q.clone()], &[add(&[p, q]).unwrap()]).unwrap();
    let e = two_in.forward_one(&v, &mut Ctx::inference()).unwrap_err().to_string();
    assert!(e.contains('2') && e.contains('1'), "names the input counts: {e}");
}

/// One generator step through the critic: the generator's gradients, and whether each
/// critic weight got one.
fn generator_step(policy: DTypePolicy, frozen: bool, casts: bool) -> (Vec<Vec<u32>>, Vec<bool>, bool) {
    let (generator, critic) = pair(policy);
    let (tape, mut rng, cache) = (Tape::new(), Rng::new(4), CastCache::new());
    let mut ctx = Ctx { casts: casts.then_some(&cache), ..Ctx::train(&tape, &mut rng) };
    let fake = generator.forward_one(&Var::constant(noise(7, (5, 4))), &mut ctx).unwrap();
    let score = ctx.with_frozen(frozen, |ctx| critic.forward_one(&fake, ctx)).unwrap();
    let frozen_after = ctx.frozen;
    drop(ctx);
    let grads = tape.backward(&score.mean_all().unwrap()).unwrap();
    let g = generator.trainable_params().iter().map(|p| bits(grads.get(p).expect("generator gradient"))).collect();
    let critic_has = critic.trainable_params().iter().map(|p| grads.get(p).is_some()).collect();
    (g, critic_has, frozen_after)
}

#[test]
fn with_frozen_holds_a_model_fixed_and_lets_the_gradient_through() {
    let (g_free, critic_free, _) = generator_step(DTypePolicy::Float32, false, false);
    let (g_frozen, critic_frozen, frozen_after) = generator_step(DTypePolicy::Float32, true, false);
    assert_eq!(critic_free, vec![true; 4], "unfrozen: the critic's weights are on the tape");
    assert_eq!(critic_frozen, vec![false; 4], "frozen: no gradient computed for them");
    assert_eq!(g_free, g_frozen, "the generator's gradients are the same bits either way");
    assert!(!frozen_after, "the flag is restored after the scope");
}

#[test]
fn with_frozen_under_mixed_precision_casts_constants() {
    // the weights cast in one op at the start of the pass (`fit`'s CastCache) must be
    // constants too inside a frozen scope, or the critic's weights would get gradients
    for casts in [false, true] {
        let (g_free, critic_free, _) = generator_step(DTypePolicy::MixedBFloat16, false, casts);
        let (g_frozen, critic_frozen, _) = generator_step(DTypePolicy::MixedBFloat16, true, casts);
        assert_eq!(critic_free, vec![true; 4], "casts {casts}");
        assert_eq!(critic_frozen, vec![false; 4], "casts {casts}");
        assert_eq!(g_free, g_frozen, "casts {casts}");
    }
}

#[test]
fn with_frozen_nests_and_keeps_an_outer_freeze() {
    let (tape, mut rng) = (Tape::new(), Rng::new(0));
    let mut ctx = Ctx::train(&tape, &mut rng);
    let inner = ctx.with_frozen(true, |ctx| ctx.with_frozen(false, |ctx| Ok(ctx.frozen))).unwrap();
    assert!(inner, "an unfrozen scope inside a frozen one stays frozen");
    assert!(!ctx.frozen);
    let e = ctx.with_frozen(true, |_| -> keel_nn::Result<()> { Err(Error::Graph("boom".into())) });
    assert!(e.is_err());
    assert!(!ctx.frozen, "restored after an error too");
}
