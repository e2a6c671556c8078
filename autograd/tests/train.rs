//! Hand-written training loops with the tape: the tape, parameters and plain
//! SGD are enough to fit small problems to near-zero loss.

use keel_autograd::{loss, Param, Result, Tape, Var};
use keel_tensor::{DType, Device, Tensor};

fn init(seed: u64, shape: (usize, usize), scale: f64) -> Param {
    Param::new(Tensor::rand_normal(seed, 0.0, scale, shape, DType::F32, &Device::Cpu).unwrap())
}

fn sgd_step(params: &[&Param], grads: &keel_autograd::Gradients, lr: f64) -> Result<()> {
    for p in params {
        let g = grads.get(p).expect("every parameter gets a gradient");
        p.assign(&p.value().sub(&g.mul_scalar(lr)?)?)?;
    }
    Ok(())
}

fn xor() -> (Tensor, Tensor) {
    let x = Tensor::from_vec(vec![0f32, 0., 0., 1., 1., 0., 1., 1.], (4, 2)).unwrap();
    let y = Tensor::from_vec(vec![0f32, 1., 1., 0.], (4, 1)).unwrap();
    (x, y)
}

#[test]
fn mlp_learns_xor_with_sigmoid_bce() -> Result<()> {
    let (x, y) = xor();
    let (w1, b1) = (init(1, (2, 8), 1.0), Param::new(Tensor::zeros(8, DType::F32, &Device::Cpu)?));
    let (w2, b2) = (init(2, (8, 1), 1.0), Param::new(Tensor::zeros(1, DType::F32, &Device::Cpu)?));
    let x = Var::constant(x);
    let mut last = f32::INFINITY;
    for _ in 0..1500 {
        let tape = Tape::new();
        let h = ((x.matmul(&tape.param(&w1))? + &tape.param(&b1))?).tanh()?;
        let logits = (h.matmul(&tape.param(&w2))? + &tape.param(&b2))?;
        let loss = loss::sigmoid_binary_cross_entropy(&logits, &y, None)?;
        last = loss.value().to_scalar::<f32>()?;
        let grads = tape.backward(&loss)?;
        sgd_step(&[&w1, &b1, &w2, &b2], &grads, 1.0)?;
    }
    assert!(last < 0.02, "final loss {last}");
    // inference without a tape records nothing and classifies all four points
    let h = (x.matmul(&w1.var(None))? + &w1.var(None).sum(&[0], false)?.mul_scalar(0.0)?)?;
    let h = (h + &b1.var(None))?.tanh()?;
    let p = (h.matmul(&w2.var(None))? + &b2.var(None))?.sigmoid()?;
    assert!(!p.is_tracked());
    let p = p.value().to_vec::<f32>()?;
    let want = [0.0, 1.0, 1.0, 0.0];
    for (p, w) in p.iter().zip(want) {
        assert!((p - w).abs() < 0.2, "{p} vs {w}");
    }
    Ok(())
}

#[test]
fn mlp_learns_xor_with_softmax_cross_entropy() -> Result<()> {
    let (x, _) = xor();
    let labels = Tensor::from_vec(vec![0i64, 1, 1, 0], 4)?;
    let (w1, b1) = (init(3, (2, 8), 1.0), Param::new(Tensor::zeros(8, DType::F32, &Device::Cpu)?));
    let (w2, b2) = (init(4, (8, 2), 1.0), Param::new(Tensor::zeros(2, DType::F32, &Device::Cpu)?));
    let x = Var::constant(x);
    let mut last = f32::INFINITY;
    for _ in 0..1500 {
        let tape = Tape::new();
        let h = (x.matmul(&tape.param(&w1))? + &tape.param(&b1))?.relu()?;
        let logits = (h.matmul(&tape.param(&w2))? + &tape.param(&b2))?;
        let loss = loss::softmax_cross_entropy(&logits, &labels, None)?;
        last = loss.value().to_scalar::<f32>()?;
        let grads = tape.backward(&loss)?;
        sgd_step(&[&w1, &b1, &w2, &b2], &grads, 0.5)?;
    }
    assert!(last < 0.02, "final loss {last}");
    Ok(())
}

#[test]
fn linear_regression_reaches_near_zero_mse() -> Result<()> {
    // y = x @ [2, -3]^T + 0.5
    let x = Tensor::rand_uniform(7, -1.0, 1.0, (32, 2), DType::F32, &Device::Cpu)?;
    let true_w = Tensor::from_vec(vec![2f32, -3.0], (2, 1))?;
    let y = x.matmul(&true_w)?.add_scalar(0.5)?;
    let w = Param::new(Tensor::zeros((2, 1), DType::F32, &Device::Cpu)?);
    let b = Param::new(Tensor::zeros(1, DType::F32, &Device::Cpu)?);
    let (x, y) = (Var::constant(x), Var::constant(y));
    let mut last = f32::INFINITY;
    for _ in 0..400 {
        let tape = Tape::new();
        let pred = (x.matmul(&tape.param(&w))? + &tape.param(&b))?;
        let mse = (&pred - &y)?.square()?.mean_all()?;
        last = mse.value().to_scalar::<f32>()?;
        let grads = tape.backward(&mse)?;
        sgd_step(&[&w, &b], &grads, 0.3)?;
    }
    assert!(last < 1e-6, "final mse {last}");
    let w = w.value().to_vec::<f32>()?;
    assert!((w[0] - 2.0).abs() < 1e-2 && (w[1] + 3.0).abs() < 1e-2, "{w:?}");
    Ok(())
}

#[test]
fn loss_values_match_naive_formulas() -> Result<()> {
    // softmax cross-entropy
    let logits = Tensor::from_vec(vec![1.0f64, 2.0, 0.5, -1.0, 0.0, 3.0], (2, 3))?;
    let labels = Tensor::from_vec(vec![1i64, 2], 2)?;
    let l = loss::softmax_cross_entropy(&Var::constant(logits.clone()), &labels, None)?;
    let v = logits.to_vec::<f64>()?;
    let ce = |row: &[f64], k: usize| {
        let z: f64 = row.iter().map(|x| x.exp()).sum();
        z.ln() - row[k]
    };
    let want = (ce(&v[0..3], 1) + ce(&v[3..6], 2)) / 2.0;
    assert!((l.value().to_scalar::<f64>()? - want).abs() < 1e-12);
    // weighted: sum(w_i l_i) / N
    let w = Tensor::from_vec(vec![2.0f64, 0.5], 2)?;
    let lw = loss::softmax_cross_entropy(&Var::constant(logits.clone()), &labels, Some(&w))?;
    let want_w = (2.0 * ce(&v[0..3], 1) + 0.5 * ce(&v[3..6], 2)) / 2.0;
    assert!((lw.value().to_scalar::<f64>()? - want_w).abs() < 1e-12);
    // one-hot targets give the same value as indices
    let onehot = labels.one_hot(3, DType::F64)?;
    let lo = loss::softmax_cross_entropy(&Var::constant(logits), &onehot, None)?;
    assert!((lo.value().to_scalar::<f64>()? - want).abs() < 1e-12);

    // sigmoid BCE, stable at large |x|
    let x = Tensor::from_vec(vec![-40.0f64, -0.5, 0.0, 2.0, 40.0], 5)?;
    let z = Tensor::from_vec(vec![1.0f64, 0.0, 1.0, 1.0, 0.0], 5)?;
    let tape = Tape::new();
    let xv = tape.leaf(x.clone());
    let l = loss::sigmoid_binary_cross_entropy(&xv, &z, None)?;
    let naive = |x: f64, z: f64| x.max(0.0) - x * z + (-x.abs()).exp().ln_1p();
    let want: f64 = x.to_vec::<f64>()?.iter().zip(z.to_vec::<f64>()?).map(|(&x, z)| naive(x, z)).sum::<f64>() / 5.0;
    let got = l.value().to_scalar::<f64>()?;
    assert!(got.is_finite() && (got - want).abs() < 1e-12, "{got} vs {want}");
    let g = tape.backward(&l)?;
    let g = g.get_var(&xv).unwrap().to_vec::<f64>()?;
    // (sigmoid(x) - z) / N
    assert!((g[0] - (-1.0 / 5.0)).abs() < 1e-12 && (g[4] - 1.0 / 5.0).abs() < 1e-12);
    assert!((g[2] - (-0.5 / 5.0)).abs() < 1e-12);
    Ok(())
}

#[test]
fn loss_argument_errors_are_typed() {
    let logits = Var::constant(Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap());
    let bad = Tensor::from_vec(vec![0i64, 1, 2], 3).unwrap();
    assert!(loss::softmax_cross_entropy(&logits, &bad, None).is_err());
    let out_of_range = Tensor::from_vec(vec![0i64, 7], 2).unwrap();
    assert!(loss::softmax_cross_entropy(&logits, &out_of_range, None).is_err());
    let z = Tensor::zeros((3, 2), DType::F32, &Device::Cpu).unwrap();
    assert!(loss::sigmoid_binary_cross_entropy(&logits, &z, None).is_err());
    let w = Tensor::ones(3, DType::F32, &Device::Cpu).unwrap();
    assert!(loss::softmax_cross_entropy(&logits, &Tensor::from_vec(vec![0i64, 1], 2).unwrap(), Some(&w)).is_err());
}

#[test]
fn tiny_cnn_overfits_a_few_images() -> Result<()> {
    use keel_tensor::Padding;
    let x = Var::constant(Tensor::rand_normal(20, 0.0, 1.0, (4, 6, 6, 1), DType::F32, &Device::Cpu)?);
    let labels = Tensor::from_vec(vec![0i64, 1, 2, 1], 4)?;
    let k = Param::new(Tensor::rand_normal(21, 0.0, 0.5, (3, 3, 1, 4), DType::F32, &Device::Cpu)?);
    let kb = Param::new(Tensor::zeros(4, DType::F32, &Device::Cpu)?);
    let w = init(22, (36, 3), 0.3);
    let mut losses = Vec::new();
    for _ in 0..60 {
        let tape = Tape::new();
        let h = x.conv2d(&tape.param(&k), (1, 1), Padding::Same, (1, 1))?;
        let h = (h + &tape.param(&kb))?.relu()?;
        let h = h.max_pool2d((2, 2), (2, 2), Padding::Valid)?; // [4, 3, 3, 4]
        let logits = h.flatten_from(1)?.matmul(&tape.param(&w))?;
        let loss = loss::softmax_cross_entropy(&logits, &labels, None)?;
        losses.push(loss.value().to_scalar::<f32>()?);
        let grads = tape.backward(&loss)?;
        sgd_step(&[&k, &kb, &w], &grads, 0.1)?;
    }
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(last < 0.1 * first, "loss {first} -> {last}");
    Ok(())
}

/// `backward` on a fused loss uses the gradient the loss computed for a unit seed (no ones
/// tensor, no multiplication): the same bits as seeding it with ones, with or without
/// sample weights, through a weight matrix; a watched loss still gets its seed.
#[test]
fn fused_losses_take_the_unit_seed_shortcut_with_the_same_gradients() -> Result<()> {
    let x = Tensor::rand_uniform(3, -2.0, 2.0, (6, 4), DType::F32, &Device::Cpu)?;
    let labels = Tensor::from_vec(vec![0i64, 2, 1, 2, 0, 1], 6)?;
    let w = Tensor::from_vec(vec![1.0f32, 0.5, 2.0, 0.0, 1.5, 1.0], 6)?;
    let bce_t = Tensor::rand_uniform(4, 0.0, 1.0, (6, 3), DType::F32, &Device::Cpu)?;
    let p = init(9, (4, 3), 0.5);
    type LossOf = fn(&Var, &Tensor, &Tensor, &Tensor) -> Result<Var>;
    let cases: [(&str, LossOf); 4] = [
        ("xent", |z, y, _, _| loss::softmax_cross_entropy(z, y, None)),
        ("xent weighted", |z, y, w, _| loss::softmax_cross_entropy(z, y, Some(w))),
        ("bce", |z, _, _, t| loss::sigmoid_binary_cross_entropy(z, t, None)),
        ("bce weighted", |z, _, w, t| loss::sigmoid_binary_cross_entropy(z, t, Some(w))),
    ];
    for (name, f) in cases {
        let run = |how: u8| -> Result<(Vec<f32>, Option<Vec<f32>>)> {
            let tape = Tape::new();
            let z = Var::constant(x.clone()).matmul(&tape.param(&p))?;
            let l = f(&z, &labels, &w, &bce_t)?;
            if how == 2 {
                tape.watch(&l)?;
            }
            let g = match how {
                1 => tape.backward_with(&l, l.value().ones_like()?)?,
                _ => tape.backward(&l)?,
            };
            let seed = g.get_var(&l).map(|s| s.to_vec::<f32>()).transpose()?;
            Ok((g.get(&p).expect("gradient").to_vec::<f32>()?, seed))
        };
        let (shortcut, seeded, watched) = (run(0)?, run(1)?, run(2)?);
        assert_eq!(shortcut.0, seeded.0, "{name}");
        assert_eq!(watched.0, seeded.0, "{name}");
        assert_eq!(watched.1, Some(vec![1.0]), "{name}: a watched loss keeps its seed");
    }
    Ok(())
}
