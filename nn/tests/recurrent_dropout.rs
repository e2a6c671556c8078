//! Keras's `dropout` / `recurrent_dropout` on SimpleRNN, LSTM and GRU: the rates are
//! validated, inference is unchanged, training is deterministic given the seed, one mask is
//! drawn per call and used at every timestep (shown through identity weights), LSTM and GRU
//! draw one mask per gate with recurrent dropout (Keras's implementation 1), and the
//! gradients through fixed masks pass an f64 gradcheck. The Keras comparison of loaded
//! configs is in train/tests/rnn_dropout.rs.

use keel_autograd::{gradcheck, Tape, Var};
use keel_nn::prelude::*;
use keel_nn::{Cell, Recurrent, RecurrentDropoutMasks, RecurrentWeights};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};

fn built<C: Cell>(l: Recurrent<C>, f: usize) -> Recurrent<C> {
    let mut l = l;
    l.build(&[4, f], &mut Rng::new(9)).unwrap();
    l
}

fn copy_weights(from: &dyn Layer, to: &dyn Layer) {
    for (a, b) in from.weights().iter().zip(to.weights()) {
        b.param.assign(&a.param.value()).unwrap();
    }
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
}

fn train_forward(l: &dyn Layer, x: &Tensor, seed: u64) -> Tensor {
    let tape = Tape::new();
    let mut rng = Rng::new(seed);
    l.forward(&Var::constant(x.clone()), &mut Ctx::train(&tape, &mut rng)).unwrap().into_value()
}

fn infer(l: &dyn Layer, x: &Tensor) -> Tensor {
    l.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap().into_value()
}

#[test]
fn rates_outside_zero_one_are_errors() {
    for (d, rd) in [(1.0, 0.0), (-0.1, 0.0), (0.0, 1.0), (0.2, 1.5), (f64::NAN, 0.0)] {
        let mut l = LSTM::new(2).dropout(d).recurrent_dropout(rd);
        let e = l.build(&[3, 2], &mut Rng::new(0)).unwrap_err().to_string();
        assert!(e.contains("dropout") && e.contains("[0, 1)"), "{e}");
        let mut g = GRU::new(2).dropout(d).recurrent_dropout(rd);
        assert!(g.build(&[3, 2], &mut Rng::new(0)).is_err());
        let mut s = SimpleRNN::new(2).dropout(d).recurrent_dropout(rd);
        assert!(s.build(&[3, 2], &mut Rng::new(0)).is_err());
    }
    let mut ok = LSTM::new(2).dropout(0.0).recurrent_dropout(0.99);
    ok.build(&[3, 2], &mut Rng::new(0)).unwrap();
    // a rate set after build is refused at the forward pass
    let mut l = built(SimpleRNN::new(2), 2);
    l.config_mut().dropout = 2.0;
    let x = Var::constant(Tensor::ones([1, 4, 2], DType::F32, &Device::Cpu).unwrap());
    assert!(l.forward(&x, &mut Ctx::inference()).is_err());
}

fn inference_unchanged_and_training_seeded<C: Cell>(plain: Recurrent<C>, drop: Recurrent<C>) {
    let x = Tensor::rand_normal(5, 0.0, 1.0, [3, 6, 4], DType::F32, &Device::Cpu).unwrap();
    let plain = built(plain, 4);
    let drop = built(drop, 4);
    copy_weights(&plain, &drop);
    let name = plain.class_name();
    assert_eq!(bits(&infer(&plain, &x)), bits(&infer(&drop, &x)), "{name}: inference");
    // without dropout training computes the inference values
    assert_eq!(bits(&train_forward(&plain, &x, 1)), bits(&infer(&plain, &x)), "{name}: plain training");
    let a = train_forward(&drop, &x, 7);
    assert_eq!(bits(&a), bits(&train_forward(&drop, &x, 7)), "{name}: same seed");
    assert_ne!(bits(&a), bits(&train_forward(&drop, &x, 8)), "{name}: another seed");
    assert_ne!(bits(&a), bits(&infer(&drop, &x)), "{name}: training drops");
}

#[test]
fn inference_is_unchanged_and_training_is_deterministic_given_the_seed() {
    inference_unchanged_and_training_seeded(LSTM::new(3), LSTM::new(3).dropout(0.3).recurrent_dropout(0.2));
    inference_unchanged_and_training_seeded(LSTM::new(3), LSTM::new(3).dropout(0.5));
    inference_unchanged_and_training_seeded(LSTM::new(3), LSTM::new(3).recurrent_dropout(0.5));
    inference_unchanged_and_training_seeded(GRU::new(3), GRU::new(3).dropout(0.3).recurrent_dropout(0.2));
    inference_unchanged_and_training_seeded(
        GRU::new(3).reset_after(false),
        GRU::new(3).reset_after(false).dropout(0.3).recurrent_dropout(0.2),
    );
    inference_unchanged_and_training_seeded(
        SimpleRNN::new(3).return_sequences(true),
        SimpleRNN::new(3).return_sequences(true).dropout(0.3).recurrent_dropout(0.2),
    );
    // Bidirectional passes the rates to both directions
    let x = Tensor::rand_normal(5, 0.0, 1.0, [3, 6, 4], DType::F32, &Device::Cpu).unwrap();
    let mut bp = Bidirectional::new(LSTM::new(3));
    bp.build(&[6, 4], &mut Rng::new(2)).unwrap();
    let mut bd = Bidirectional::new(LSTM::new(3).dropout(0.4).recurrent_dropout(0.4));
    bd.build(&[6, 4], &mut Rng::new(2)).unwrap();
    assert_eq!(bd.backward_layer().get_config().recurrent_dropout, 0.4);
    copy_weights(&bp, &bd);
    assert_eq!(bits(&infer(&bp, &x)), bits(&infer(&bd, &x)));
    let a = train_forward(&bd, &x, 3);
    assert_eq!(bits(&a), bits(&train_forward(&bd, &x, 3)));
    assert_ne!(bits(&a), bits(&infer(&bd, &x)));
    assert_ne!(bits(&a), bits(&train_forward(&bd, &x, 4)));
}

/// A SimpleRNN computing `h_t = x_t ⊙ m + (h_{t-1} ⊙ r) R` with `kernel = I`, no bias and a
/// linear activation (`R` the recurrent kernel).
fn identity_rnn(f: usize, recurrent: Tensor, dropout: f64, recurrent_dropout: f64) -> SimpleRNN {
    let l = SimpleRNN::new(f)
        .activation(Activation::Linear)
        .use_bias(false)
        .return_sequences(true)
        .dropout(dropout)
        .recurrent_dropout(recurrent_dropout);
    let l = built(l, f);
    l.kernel().unwrap().assign(&Tensor::eye(f, DType::F32, &Device::Cpu).unwrap()).unwrap();
    l.recurrent_kernel().unwrap().assign(&recurrent).unwrap();
    l
}

#[test]
fn one_input_mask_per_call_is_used_at_every_timestep() {
    let (b, t, f, p) = (8, 5, 64, 0.3);
    let l = identity_rnn(f, Tensor::zeros([f, f], DType::F32, &Device::Cpu).unwrap(), p, 0.0);
    // x in [1, 2): y_t / x_t is the mask of step t
    let x = Tensor::rand_uniform(11, 1.0, 2.0, [b, t, f], DType::F32, &Device::Cpu).unwrap();
    let y = train_forward(&l, &x, 5);
    let ratio = y.div(&x).unwrap();
    let m0 = ratio.narrow(1, 0, 1).unwrap().to_vec::<f32>().unwrap();
    let keep = 1.0 / (1.0 - p as f32);
    assert!(m0.iter().all(|&v| v == 0.0 || (v - keep).abs() < 1e-5), "mask values 0 or 1/(1-p)");
    let dropped = m0.iter().filter(|&&v| v == 0.0).count() as f64 / m0.len() as f64;
    assert!((dropped - p).abs() < 0.07, "dropped fraction {dropped} for rate {p}");
    for s in 1..t {
        let ms = ratio.narrow(1, s, 1).unwrap().to_vec::<f32>().unwrap();
        for (a, c) in m0.iter().zip(&ms) {
            assert!((a - c).abs() < 1e-5, "step {s} uses another mask");
        }
    }
    // another call (another batch) draws another mask from the rng
    let tape = Tape::new();
    let mut rng = Rng::new(5);
    let mut ctx = Ctx::train(&tape, &mut rng);
    let first = l.forward(&Var::constant(x.clone()), &mut ctx).unwrap().into_value();
    let second = l.forward(&Var::constant(x.clone()), &mut ctx).unwrap().into_value();
    assert_eq!(bits(&first), bits(&y));
    assert_ne!(bits(&first), bits(&second));
}

#[test]
fn one_recurrent_mask_per_call_is_used_at_every_timestep() {
    let (b, f, p) = (8, 64, 0.4);
    let l = identity_rnn(f, Tensor::eye(f, DType::F32, &Device::Cpu).unwrap(), 0.0, p);
    // x = 1: h_1 = 1, h_2 = 1 + r, h_3 = 1 + r ⊙ h_2 with the same r
    let x = Tensor::ones([b, 3, f], DType::F32, &Device::Cpu).unwrap();
    let y = train_forward(&l, &x, 9);
    let step = |s: usize| y.narrow(1, s, 1).unwrap().to_vec::<f32>().unwrap();
    let (h1, h2, h3) = (step(0), step(1), step(2));
    assert!(h1.iter().all(|&v| v == 1.0), "no input dropout");
    let keep = 1.0 / (1.0 - p as f32);
    let r: Vec<f32> = h2.iter().map(|v| v - 1.0).collect();
    assert!(r.iter().all(|&v| v.abs() < 1e-6 || (v - keep).abs() < 1e-5), "mask values 0 or 1/(1-p)");
    let dropped = r.iter().filter(|v| v.abs() < 1e-6).count() as f64 / r.len() as f64;
    assert!((dropped - p).abs() < 0.07, "dropped fraction {dropped} for rate {p}");
    for i in 0..r.len() {
        assert!((h3[i] - (1.0 + r[i] * h2[i])).abs() < 1e-4, "step 3 uses another recurrent mask at {i}");
    }
}

#[test]
fn lstm_and_gru_draw_one_mask_per_gate_with_recurrent_dropout() {
    let dev = Device::Cpu;
    let tape = Tape::new();
    let mut rng = Rng::new(1);
    let mut ctx = Ctx::train(&tape, &mut rng);
    let count = |m: &RecurrentDropoutMasks| (m.input.len(), m.recurrent.len());
    let lstm = LSTM::new(5).dropout(0.5);
    assert_eq!(count(&lstm.dropout_masks(2, 3, DType::F32, &dev, &mut ctx).unwrap()), (1, 0));
    let lstm = LSTM::new(5).dropout(0.5).recurrent_dropout(0.5);
    let m = lstm.dropout_masks(2, 3, DType::F32, &dev, &mut ctx).unwrap();
    assert_eq!(count(&m), (4, 4));
    assert_eq!(m.input[0].dims(), [2, 3]);
    assert_eq!(m.recurrent[0].dims(), [2, 5]);
    assert_ne!(bits(&m.recurrent[0]), bits(&m.recurrent[1]), "gates draw their own masks");
    assert_eq!(
        count(&LSTM::new(5).recurrent_dropout(0.5).dropout_masks(2, 3, DType::F32, &dev, &mut ctx).unwrap()),
        (0, 4)
    );
    assert_eq!(
        count(
            &GRU::new(5).dropout(0.1).recurrent_dropout(0.1).dropout_masks(2, 3, DType::F32, &dev, &mut ctx).unwrap()
        ),
        (3, 3)
    );
    assert_eq!(
        count(
            &SimpleRNN::new(5)
                .dropout(0.1)
                .recurrent_dropout(0.1)
                .dropout_masks(2, 3, DType::F32, &dev, &mut ctx)
                .unwrap()
        ),
        (1, 1)
    );
    // inference: none
    let mut inf = Ctx::inference();
    assert!(lstm.dropout_masks(2, 3, DType::F32, &dev, &mut inf).unwrap().is_empty());
    // masks that fit no layout are an error naming the layer
    let w = RecurrentWeights {
        kernel: Var::constant(Tensor::ones([3, 20], DType::F32, &dev).unwrap()),
        recurrent_kernel: Var::constant(Tensor::ones([5, 20], DType::F32, &dev).unwrap()),
        bias: None,
    };
    let x = Var::constant(Tensor::ones([2, 4, 3], DType::F32, &dev).unwrap());
    let bad =
        RecurrentDropoutMasks { input: vec![Tensor::ones([2, 3], DType::F32, &dev).unwrap(); 2], recurrent: vec![] };
    let e = LSTM::new(5).with_name("l").forward_with_weights_dropout(&x, &w, None, None, &bad).unwrap_err();
    assert!(e.to_string().contains("dropout masks"), "{e}");
}

fn f64_rand(seed: u64, shape: &[usize], scale: f64) -> Tensor {
    Tensor::rand_normal(seed, 0.0, scale, shape, DType::F64, &Device::Cpu).unwrap()
}

/// A fixed inverted-dropout mask (f64): 0 where a uniform draw falls below `rate`.
fn fixed_mask(seed: u64, shape: &[usize], rate: f64) -> Tensor {
    let u = Tensor::rand_uniform(seed, 0.0, 1.0, shape, DType::F64, &Device::Cpu).unwrap();
    u.ge(&u.scalar_like(rate).unwrap()).unwrap().to_dtype(DType::F64).unwrap().mul_scalar(1.0 / (1.0 - rate)).unwrap()
}

/// f64 gradient check of the layer's function with `n_in` input and `n_rec` recurrent masks held fixed.
fn gradcheck_with_masks<C: Cell>(layer: Recurrent<C>, n_in: usize, n_rec: usize) {
    let (b, t, f) = (2, 3, 3);
    let u = layer.units();
    let cell = layer.get_config().cell.clone();
    let g = cell.gates() * u;
    let drop = RecurrentDropoutMasks {
        input: (0..n_in).map(|i| fixed_mask(30 + i as u64, &[b, f], 0.4)).collect(),
        recurrent: (0..n_rec).map(|i| fixed_mask(40 + i as u64, &[b, u], 0.4)).collect(),
    };
    let inputs = vec![
        f64_rand(1, &[b, t, f], 1.0),
        f64_rand(2, &[f, g], 0.8),
        f64_rand(3, &[u, g], 0.8),
        f64_rand(4, &cell.bias_shape(u), 0.5),
    ];
    let report = gradcheck(
        |v: &[Var]| {
            let w = RecurrentWeights { kernel: v[1].clone(), recurrent_kernel: v[2].clone(), bias: Some(v[3].clone()) };
            let (out, states) = layer.forward_with_weights_dropout(&v[0], &w, None, None, &drop).expect("forward");
            let mut total = out.sum_all()?;
            for s in &states {
                total = total.add(&s.square()?.sum_all()?)?;
            }
            Var::concat(&[&out.flatten_from(0)?, &total.reshape([1])?], 0)
        },
        &inputs,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", layer.class_name()));
    assert!(report.checked > 20);
    // the masks change the function (they are used)
    let w = RecurrentWeights {
        kernel: Var::constant(inputs[1].clone()),
        recurrent_kernel: Var::constant(inputs[2].clone()),
        bias: Some(Var::constant(inputs[3].clone())),
    };
    let x = Var::constant(inputs[0].clone());
    let (plain, _) = layer.forward_with_weights(&x, &w, None).unwrap();
    let (dropped, _) = layer.forward_with_weights_dropout(&x, &w, None, None, &drop).unwrap();
    assert_ne!(plain.value().to_vec::<f64>().unwrap(), dropped.value().to_vec::<f64>().unwrap());
}

#[test]
fn gradients_through_fixed_dropout_masks_pass_gradcheck() {
    gradcheck_with_masks(LSTM::new(2).return_sequences(true), 4, 4);
    gradcheck_with_masks(LSTM::new(2), 1, 0);
    gradcheck_with_masks(LSTM::new(2).recurrent_activation(Activation::Tanh), 0, 4);
    gradcheck_with_masks(GRU::new(2).return_sequences(true), 3, 3);
    gradcheck_with_masks(GRU::new(2).reset_after(false).go_backwards(true), 3, 3);
    gradcheck_with_masks(GRU::new(2), 1, 0);
    gradcheck_with_masks(SimpleRNN::new(2).return_sequences(true), 1, 1);
}
