//! Each loss against hand-computed values; from_logits and head fusion consistency.

use keel_autograd::{Tape, Var};
use keel_nn::{Activation, Head, Loss, LossFn};
use keel_tensor::{DType, Tensor};

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape).unwrap()
}

fn c(v: &[f32], shape: &[usize]) -> Var {
    Var::constant(t(v, shape))
}

fn val(l: keel_nn::Result<Var>) -> f64 {
    l.unwrap().value().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

fn near(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
}

#[test]
fn regression_losses() {
    let p = c(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let y = t(&[0.0, 2.0, 5.0, 4.0], &[2, 2]);
    near(val(Loss::MeanSquaredError.compute(&p, &y, None)), 1.25);
    near(val(Loss::MeanSquaredError.compute(&p, &y, Some(&t(&[1.0, 3.0], &[2])))), 3.25);
    near(val(Loss::MeanAbsoluteError.compute(&p, &y, None)), 0.75);
    near(val(Loss::Huber.compute(&p, &y, None)), 0.5);
    near(val(LossFn::huber(2.0).compute(&p, &y, None)), 0.625);
    // [N] targets for [N, 1] predictions are accepted (Keras squeezes).
    let p1 = c(&[1.0, 2.0], &[2, 1]);
    near(val(Loss::MeanSquaredError.compute(&p1, &t(&[0.0, 0.0], &[2]), None)), 2.5);
    // Mismatched shapes are an error.
    assert!(Loss::MeanSquaredError.compute(&p, &t(&[0.0; 6], &[2, 3]), None).is_err());
    assert!(Loss::MeanSquaredError.compute(&p, &y, Some(&t(&[1.0; 3], &[3]))).is_err());
}

#[test]
fn binary_crossentropy_probabilities_logits_and_clipping() {
    let p = c(&[0.9, 0.2], &[2, 1]);
    let y = t(&[1.0, 0.0], &[2, 1]);
    let want = -((0.9f64).ln() + (0.8f64).ln()) / 2.0;
    near(val(Loss::BinaryCrossentropy.compute(&p, &y, None)), want);
    // from_logits on z = logit(p) gives the same.
    let z: Vec<f32> = [0.9f32, 0.2].iter().map(|q| (q / (1.0 - q)).ln()).collect();
    let zv = c(&z, &[2, 1]);
    near(val(Loss::BinaryCrossentropy.from_logits(true).compute(&zv, &y, None)), want);
    // Weighted: (w0 l0 + w1 l1) / 2.
    let w = t(&[2.0, 0.5], &[2]);
    let wl = (2.0 * -(0.9f64).ln() + 0.5 * -(0.8f64).ln()) / 2.0;
    near(val(Loss::BinaryCrossentropy.compute(&p, &y, Some(&w))), wl);
    near(val(Loss::BinaryCrossentropy.from_logits(true).compute(&zv, &y, Some(&w))), wl);
    // Clipping at 1e-7: p = 0 with target 1 is -ln(1e-7), not inf.
    let l = val(Loss::BinaryCrossentropy.compute(&c(&[0.0], &[1, 1]), &t(&[1.0], &[1, 1]), None));
    assert!((l - 16.118).abs() < 0.01, "{l}");
}

#[test]
fn categorical_and_sparse_crossentropy() {
    let p = c(&[0.7, 0.2, 0.1, 0.1, 0.1, 0.8], &[2, 3]);
    let onehot = t(&[1.0, 0.0, 0.0, 0.0, 0.0, 1.0], &[2, 3]);
    let want = -((0.7f64).ln() + (0.8f64).ln()) / 2.0;
    near(val(Loss::CategoricalCrossentropy.compute(&p, &onehot, None)), want);
    let labels = Tensor::from_vec(vec![0i64, 2], 2).unwrap();
    near(val(Loss::SparseCategoricalCrossentropy.compute(&p, &labels, None)), want);
    // Float labels of shape [N, 1] work too.
    near(val(Loss::SparseCategoricalCrossentropy.compute(&p, &t(&[0.0, 2.0], &[2, 1]), None)), want);
    // Unnormalised probabilities are renormalised (Keras).
    let p2 = c(&[1.4, 0.4, 0.2, 0.1, 0.1, 0.8], &[2, 3]);
    near(val(Loss::CategoricalCrossentropy.compute(&p2, &onehot, None)), want);
    // Out-of-range and non-integer labels are errors.
    assert!(Loss::SparseCategoricalCrossentropy
        .compute(&p, &Tensor::from_vec(vec![0i64, 3], 2).unwrap(), None)
        .is_err());
    assert!(Loss::SparseCategoricalCrossentropy.compute(&p, &t(&[0.5, 1.0], &[2]), None).is_err());
    // Weighted.
    let w = t(&[1.0, 0.0], &[2]);
    near(val(Loss::SparseCategoricalCrossentropy.compute(&p, &labels, Some(&w))), -(0.7f64).ln() / 2.0);
}

#[test]
fn from_logits_matches_probabilities() {
    let z = t(&[1.0, -0.5, 2.0, 0.3, 0.0, -1.0], &[2, 3]);
    let p = Var::constant(z.softmax(-1).unwrap());
    let onehot = t(&[0.0, 1.0, 0.0, 1.0, 0.0, 0.0], &[2, 3]);
    let labels = Tensor::from_vec(vec![1i64, 0], 2).unwrap();
    let a = val(Loss::CategoricalCrossentropy.compute(&p, &onehot, None));
    near(val(Loss::CategoricalCrossentropy.from_logits(true).compute(&Var::constant(z.clone()), &onehot, None)), a);
    near(
        val(Loss::SparseCategoricalCrossentropy.from_logits(true).compute(&Var::constant(z.clone()), &labels, None)),
        a,
    );
    let w = t(&[0.25, 2.0], &[2]);
    near(
        val(Loss::SparseCategoricalCrossentropy.from_logits(true).compute(
            &Var::constant(z.clone()),
            &labels,
            Some(&w),
        )),
        val(Loss::SparseCategoricalCrossentropy.compute(&p, &labels, Some(&w))),
    );
}

#[test]
fn head_fusion_uses_logits_with_the_same_value_and_exact_gradient() {
    let z0 = t(&[1.0, -0.5, 2.0, 0.3, 0.0, -1.0], &[2, 3]);
    let labels = Tensor::from_vec(vec![2i64, 1], 2).unwrap();
    let loss = LossFn::from(Loss::SparseCategoricalCrossentropy);
    assert!(loss.fuses_with(Activation::Softmax));
    assert!(!loss.fuses_with(Activation::Sigmoid));
    assert!(!Loss::SparseCategoricalCrossentropy.from_logits(true).fuses_with(Activation::Softmax));
    let tape = Tape::new();
    let z = tape.leaf(z0.clone());
    let head = Head::new(z.clone(), Some(Activation::Softmax));
    let fused = loss.compute_head(&head, &labels, None).unwrap();
    let plain = val(loss.compute(head.output().unwrap(), &labels, None));
    near(fused.value().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap(), plain);
    let g = tape.backward(&fused).unwrap();
    let gz = g.get_var(&z).unwrap().to_vec::<f32>().unwrap();
    let p = z0.softmax(-1).unwrap().to_vec::<f32>().unwrap();
    let onehot = [0.0f32, 0.0, 1.0, 0.0, 1.0, 0.0];
    for i in 0..6 {
        assert!((gz[i] - (p[i] - onehot[i]) / 2.0).abs() < 1e-6);
    }
    // Binary: sigmoid head + BCE fuses as well.
    let zb = Var::constant(t(&[0.3, -2.0], &[2, 1]));
    let hb = Head::new(zb, Some(Activation::Sigmoid));
    let yb = t(&[1.0, 0.0], &[2, 1]);
    near(
        val(Loss::BinaryCrossentropy.compute_head(&hb, &yb, None)),
        val(Loss::BinaryCrossentropy.compute(hb.output().unwrap(), &yb, None)),
    );
    // A non-matching head uses the output.
    let hl = Head::new(Var::constant(t(&[0.5, 1.0], &[2, 1])), None);
    near(val(Loss::MeanSquaredError.compute_head(&hl, &t(&[0.0, 0.0], &[2, 1]), None)), 0.625);
}

/// A softmax head's output comes from the fused loss (one kernel on a GPU): the values
/// `softmax(-1)` gives, recorded so that a gradient through the output reaches the logits
/// exactly as through a separately computed softmax.
#[test]
fn softmax_head_gets_its_output_from_the_fused_loss() {
    let z0 = t(&[1.0, -0.5, 2.0, 0.3, 0.0, -1.0, 4.0, 0.5, -2.0], &[3, 3]);
    let labels = Tensor::from_vec(vec![2i64, 1, 0], 3).unwrap();
    let weights = t(&[1.0, 0.5, 2.0], &[3]);
    let c = Var::constant(t(&[0.5, -1.0, 2.0, 1.5, 0.25, -0.75, 1.0, 3.0, -2.0], &[3, 3]));
    for loss in [LossFn::from(Loss::SparseCategoricalCrossentropy), LossFn::from(Loss::CategoricalCrossentropy)] {
        let y = if loss.loss == Loss::SparseCategoricalCrossentropy {
            labels.clone()
        } else {
            labels.one_hot(3, DType::F32).unwrap()
        };
        // `eager`: the output asked for before the loss (a separate softmax)
        let run = |eager: bool| {
            let tape = Tape::new();
            let z = tape.leaf(z0.clone());
            let head = Head::new(z.clone(), Some(Activation::Softmax));
            if eager {
                head.output().unwrap();
            }
            let l = loss.compute_head(&head, &y, Some(&weights)).unwrap();
            assert!(head.has_output());
            let out = head.output().unwrap().clone();
            // a second use of the output: its gradient flows back through the softmax
            let total = l.add(&out.mul(&c).unwrap().sum_all().unwrap()).unwrap();
            let g = tape.backward(&total).unwrap().get_var(&z).unwrap().to_vec::<f32>().unwrap();
            (l.value().to_vec::<f32>().unwrap(), out.value().to_vec::<f32>().unwrap(), g)
        };
        let (fused, eager) = (run(false), run(true));
        assert_eq!(fused.1, z0.softmax(-1).unwrap().to_vec::<f32>().unwrap());
        assert_eq!(fused, eager);
    }
}

#[test]
fn loss_names() {
    assert_eq!(Loss::from_name("mse").unwrap(), Loss::MeanSquaredError);
    assert_eq!(Loss::from_name("mae").unwrap(), Loss::MeanAbsoluteError);
    assert_eq!(Loss::from_name("huber").unwrap(), Loss::Huber);
    assert_eq!(Loss::from_name("binary_crossentropy").unwrap(), Loss::BinaryCrossentropy);
    assert_eq!(Loss::from_name("categorical_crossentropy").unwrap(), Loss::CategoricalCrossentropy);
    assert_eq!(Loss::from_name("sparse_categorical_crossentropy").unwrap(), Loss::SparseCategoricalCrossentropy);
    assert!(Loss::from_name("hinge2").is_err());
    for l in [Loss::MeanSquaredError, Loss::Huber, Loss::SparseCategoricalCrossentropy] {
        assert_eq!(Loss::from_name(l.name()).unwrap(), l);
    }
}

// ------------------------------------------------------------ the other Keras losses

const EPS: f64 = 1e-7;

/// Keras's formula for one sample (a row of `p` and `y`), in f64.
fn reference(loss: Loss, p: &[f64], y: &[f64]) -> f64 {
    let n = p.len() as f64;
    let mean = |f: &dyn Fn(f64, f64) -> f64| p.iter().zip(y).map(|(&p, &y)| f(p, y)).sum::<f64>() / n;
    let binary = y.iter().all(|&v| v == 0.0 || v == 1.0);
    let sign = |v: f64| if binary { 2.0 * v - 1.0 } else { v };
    match loss {
        Loss::MeanSquaredLogarithmicError => mean(&|p, y| ((p.max(EPS) + 1.0).ln() - (y.max(EPS) + 1.0).ln()).powi(2)),
        Loss::MeanAbsolutePercentageError => 100.0 * mean(&|p, y| (y - p).abs() / y.abs().max(EPS)),
        Loss::LogCosh => mean(&|p, y| (p - y).cosh().ln()),
        Loss::Poisson => mean(&|p, y| p - y * (p + EPS).ln()),
        Loss::KLDivergence => {
            p.iter().zip(y).map(|(&p, &y)| y.clamp(EPS, 1.0) * (y.clamp(EPS, 1.0) / p.clamp(EPS, 1.0)).ln()).sum()
        }
        Loss::CosineSimilarity => {
            let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().max(1e-12).sqrt();
            -p.iter().zip(y).map(|(p, y)| p * y).sum::<f64>() / (norm(p) * norm(y))
        }
        Loss::Hinge => mean(&|p, y| (1.0 - sign(y) * p).max(0.0)),
        Loss::SquaredHinge => mean(&|p, y| (1.0 - sign(y) * p).max(0.0).powi(2)),
        Loss::CategoricalHinge => {
            let pos: f64 = p.iter().zip(y).map(|(p, y)| p * y).sum();
            let neg = p.iter().zip(y).map(|(p, y)| (1.0 - y) * p).fold(f64::NEG_INFINITY, f64::max);
            (neg - pos + 1.0).max(0.0)
        }
        other => panic!("no reference for {other:?}"),
    }
}

#[test]
fn other_keras_losses_match_their_formulas_with_gradients() {
    let (rows, cols) = (3, 4);
    let probs = |seed: u64| {
        let r = Tensor::rand_uniform(seed, 0.05, 1.0, (rows, cols), DType::F64, &keel_tensor::Device::Cpu).unwrap();
        r.div(&r.sum(&[-1], true).unwrap()).unwrap()
    };
    let signed = |seed: u64| Tensor::rand_uniform(seed, -2.0, 2.0, (rows, cols), DType::F64, &keel_tensor::Device::Cpu);
    let onehot = Tensor::from_vec(vec![0i64, 3, 1], 3).unwrap().one_hot(cols, DType::F64).unwrap();
    let pm1 = onehot.mul_scalar(2.0).unwrap().sub_scalar(1.0).unwrap();
    let cases: Vec<(Loss, Tensor, Tensor)> = vec![
        (Loss::MeanSquaredLogarithmicError, probs(1).mul_scalar(3.0).unwrap(), probs(2).mul_scalar(5.0).unwrap()),
        (Loss::MeanAbsolutePercentageError, signed(3).unwrap(), signed(4).unwrap()),
        (Loss::LogCosh, signed(5).unwrap(), signed(6).unwrap()),
        (Loss::Poisson, probs(7).mul_scalar(4.0).unwrap(), probs(8).mul_scalar(2.0).unwrap()),
        (Loss::KLDivergence, probs(9), probs(10)),
        (Loss::CosineSimilarity, signed(11).unwrap(), signed(12).unwrap()),
        (Loss::Hinge, signed(13).unwrap(), onehot.clone()),
        (Loss::Hinge, signed(14).unwrap(), pm1.clone()),
        (Loss::SquaredHinge, signed(15).unwrap(), onehot.clone()),
        (Loss::CategoricalHinge, signed(16).unwrap(), onehot.clone()),
    ];
    let w = Tensor::from_vec(vec![0.5f64, 2.0, 1.0], 3).unwrap();
    for (loss, p, y) in cases {
        assert_eq!(Loss::from_name(loss.name()).unwrap(), loss);
        let (pv, yv, wv) = (p.to_vec::<f64>().unwrap(), y.to_vec::<f64>().unwrap(), w.to_vec::<f64>().unwrap());
        let total = |pv: &[f64]| -> f64 {
            (0..rows).map(|r| wv[r] * reference(loss, &pv[r * cols..][..cols], &yv[r * cols..][..cols])).sum::<f64>()
                / rows as f64
        };
        let tape = Tape::new();
        let pvar = tape.leaf(p.clone());
        let l = loss.compute(&pvar, &y, Some(&w)).unwrap();
        near(l.value().to_scalar::<f64>().unwrap(), total(&pv));
        near(val(loss.compute(&Var::constant(p.clone()), &y, None)), {
            (0..rows).map(|r| reference(loss, &pv[r * cols..][..cols], &yv[r * cols..][..cols])).sum::<f64>()
                / rows as f64
        });
        let g = tape.backward(&l).unwrap().get_var(&pvar).unwrap().to_vec::<f64>().unwrap();
        for i in 0..pv.len() {
            let (mut up, mut down) = (pv.clone(), pv.clone());
            up[i] += 1e-6;
            down[i] -= 1e-6;
            let fd = (total(&up) - total(&down)) / 2e-6;
            assert!((g[i] - fd).abs() < 1e-5 * (1.0 + fd.abs()), "{loss:?} d/dp[{i}]: {} vs {fd}", g[i]);
        }
        // the f32 path gives the same value
        let p32 = Var::constant(p.to_dtype(DType::F32).unwrap());
        let l32 = val(loss.compute(&p32, &y.to_dtype(DType::F32).unwrap(), Some(&w.to_dtype(DType::F32).unwrap())));
        assert!((l32 - total(&pv)).abs() < 1e-4 * (1.0 + total(&pv).abs()), "{loss:?} f32: {l32}");
    }
}

#[test]
fn label_smoothing_follows_keras() {
    // categorical: y * (1 - s) + s / classes; binary: y * (1 - s) + s / 2
    let p = c(&[0.7, 0.2, 0.1, 0.1, 0.1, 0.8], &[2, 3]);
    let y = t(&[1.0, 0.0, 0.0, 0.0, 0.0, 1.0], &[2, 3]);
    let s = 0.3;
    let ys = |v: f64| v * (1.0 - s) + s / 3.0;
    let want = [[0.7f64, 0.2, 0.1], [0.1, 0.1, 0.8]]
        .iter()
        .zip([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        .map(|(pr, yr)| -pr.iter().zip(yr).map(|(p, y)| ys(y) * p.ln()).sum::<f64>())
        .sum::<f64>()
        / 2.0;
    near(val(LossFn::from(Loss::CategoricalCrossentropy).label_smoothing(s).compute(&p, &y, None)), want);
    // the fused logits path smooths the same way
    let logits = c(&[0.7f32.ln(), 0.2f32.ln(), 0.1f32.ln(), 0.1f32.ln(), 0.1f32.ln(), 0.8f32.ln()], &[2, 3]);
    let fused = Loss::CategoricalCrossentropy.from_logits(true).label_smoothing(s);
    near(val(fused.compute(&logits, &y, None)), want);
    let pb = c(&[0.9, 0.2], &[2, 1]);
    let yb = t(&[1.0, 0.0], &[2, 1]);
    let yb_s = |v: f64| v * (1.0 - s) + s / 2.0;
    let want_b = (-(yb_s(1.0) * 0.9f64.ln() + (1.0 - yb_s(1.0)) * 0.1f64.ln())
        - (yb_s(0.0) * 0.2f64.ln() + (1.0 - yb_s(0.0)) * 0.8f64.ln()))
        / 2.0;
    near(val(LossFn::from(Loss::BinaryCrossentropy).label_smoothing(s).compute(&pb, &yb, None)), want_b);
    assert!(LossFn::from(Loss::MeanSquaredError).label_smoothing(0.1).compute(&pb, &yb, None).is_err());
    assert!(LossFn::from(Loss::BinaryCrossentropy).label_smoothing(1.5).compute(&pb, &yb, None).is_err());
}
