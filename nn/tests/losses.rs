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
