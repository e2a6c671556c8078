//! Mixed precision (`DTypePolicy::MixedBFloat16`): layers compute in BF16, weights,
//! gradients, batch-norm statistics, losses and outputs stay F32, and the results follow
//! the F32 model to BF16 accuracy.

use keel_autograd::{Tape, Var};
use keel_nn::mixed_precision::DTypePolicy;
use keel_nn::prelude::*;
use keel_nn::CastCache;
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};

const MIXED: DTypePolicy = DTypePolicy::MixedBFloat16;

fn rel(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
    let b = b.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
    let num: f64 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den.max(1e-300)).sqrt()
}

type StepResult = (Tensor, Vec<(String, Tensor)>, Tensor);

/// Loss, per-parameter gradients and outputs of one training forward/backward.
fn step(model: &dyn Network, x: &Tensor, y: &Tensor, loss: Loss) -> StepResult {
    step_with(model, x, y, loss, None)
}

/// [`step`], with the weights' casts made together in `casts` when given (as `fit` does).
fn step_with(model: &dyn Network, x: &Tensor, y: &Tensor, loss: Loss, casts: Option<&CastCache>) -> StepResult {
    let tape = Tape::new();
    let mut rng = Rng::new(5);
    let mut ctx = Ctx { casts, ..Ctx::train(&tape, &mut rng) };
    let heads = model.forward_heads(&[Var::constant(x.clone())], &mut ctx).unwrap();
    let mut l = loss.compute_head(&heads[0], y, None).unwrap();
    if let Some(r) = model.regularization_loss(&ctx).unwrap() {
        assert_eq!(r.dtype(), DType::F32, "weight penalties stay F32");
        l = l.add(&r).unwrap();
    }
    let grads = tape.backward(&l).unwrap();
    let g = model.named_params().into_iter().map(|(n, p)| (n, grads.get(&p).expect("gradient").clone())).collect();
    (l.value().clone(), g, heads[0].output().unwrap().value().clone())
}

fn cnn(policy: DTypePolicy) -> Sequential {
    let mut m = Sequential::with_seed(3).dtype_policy(policy);
    m.add(Conv2D::new(8, (3, 3)).activation(Activation::Relu).input_shape([10, 10, 2]));
    m.add(BatchNormalization::new());
    m.add(MaxPooling2D::new((2, 2)));
    m.add(Flatten::new());
    m.add(Dropout::new(0.25));
    m.add(Dense::new(16).activation(Activation::Relu).kernel_regularizer(Regularizer::l2(1e-3)));
    m.add(Dense::new(4).activation(Activation::Softmax));
    m
}

#[test]
fn policy_names() {
    assert_eq!(DTypePolicy::new("mixed_bfloat16").unwrap(), MIXED);
    assert_eq!(DTypePolicy::new("float32").unwrap(), DTypePolicy::Float32);
    assert_eq!((MIXED.compute_dtype(), MIXED.variable_dtype()), (DType::BF16, DType::F32));
    let f16 = DTypePolicy::new("mixed_float16").unwrap();
    assert_eq!((f16.compute_dtype(), f16.variable_dtype(), f16.name()), (DType::F16, DType::F32, "mixed_float16"));
    assert!(f16.needs_loss_scaling() && !MIXED.needs_loss_scaling());
    let e = DTypePolicy::new("float16").unwrap_err().to_string();
    assert!(e.contains("not supported") && e.contains("mixed_float16"), "{e}");
    let e = DTypePolicy::new("float23").unwrap_err().to_string();
    assert!(e.contains("valid policies"), "{e}");
    assert_eq!(Sequential::new().get_dtype_policy(), DTypePolicy::Float32);
}

#[test]
fn layers_compute_in_bf16_and_weights_stay_f32() {
    let mut d = Dense::new(3);
    d.build(&[4], &mut Rng::new(1)).unwrap();
    let tape = Tape::new();
    let mut rng = Rng::new(0);
    let mut ctx = Ctx::train(&tape, &mut rng);
    ctx.compute_dtype = Some(DType::BF16);
    let k = d.kernel().unwrap();
    assert_eq!(ctx.param(k).unwrap().dtype(), DType::BF16);
    assert_eq!(ctx.variable(k).dtype(), DType::F32);
    let x = ctx.autocast(&Var::constant(Tensor::ones([2, 4], DType::F32, &Device::Cpu).unwrap())).unwrap();
    let y = d.forward(&x, &mut ctx).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    // indices are never cast
    let ids = Var::constant(Tensor::from_vec(vec![1i64, 2], 2).unwrap());
    assert_eq!(ctx.autocast(&ids).unwrap().dtype(), DType::I64);
}

#[test]
fn cnn_follows_the_f32_model() {
    let x = Tensor::rand_normal(21, 0.0, 1.0, [6, 10, 10, 2], DType::F32, &Device::Cpu).unwrap();
    let y = Tensor::from_vec(vec![0i64, 1, 2, 3, 1, 2], 6).unwrap();
    let loss = Loss::SparseCategoricalCrossentropy;
    let (f32_model, mixed) = (cnn(DTypePolicy::Float32), cnn(MIXED));
    let (l32, g32, o32) = step(&f32_model, &x, &y, loss);
    let (lmx, gmx, omx) = step(&mixed, &x, &y, loss);
    assert_eq!((lmx.dtype(), omx.dtype()), (DType::F32, DType::F32), "losses and outputs are F32");
    assert!(rel(&lmx, &l32) < 2e-2, "loss {lmx} vs {l32}");
    assert!(rel(&omx, &o32) < 3e-2, "outputs: rel {}", rel(&omx, &o32));
    for ((name, a), (_, b)) in gmx.iter().zip(&g32) {
        assert_eq!(a.dtype(), DType::F32, "{name}: gradients reach the F32 weights");
        assert!(rel(a, b) < 6e-2, "{name}: gradient rel {}", rel(a, b));
    }
    for w in mixed.named_weights() {
        assert_eq!(w.param.dtype(), DType::F32, "{}", w.name);
    }
    // batch-norm statistics updated in F32 from the BF16 activations
    let mm =
        |m: &Sequential| m.named_weights().into_iter().find(|w| w.name.ends_with("moving_mean")).unwrap().param.value();
    assert!(rel(&mm(&mixed), &mm(&f32_model)) < 3e-2);
    // inference (moving statistics, no dropout) too
    let p32 = f32_model.predict(std::slice::from_ref(&x)).unwrap();
    let pmx = mixed.predict(&[x]).unwrap();
    assert_eq!(pmx[0].dtype(), DType::F32);
    assert!(rel(&pmx[0], &p32[0]) < 3e-2);
}

#[test]
fn embedding_casts_the_rows_not_the_table() {
    let mut e = Embedding::new(20, 6);
    e.build(&[5], &mut Rng::new(2)).unwrap();
    assert!(e.compute_dtype_params().is_empty(), "the table is not among the weights a model casts");
    let table = e.embeddings().unwrap().clone();
    let ids = Tensor::from_vec(vec![1i64, 3, 1, 1, 7, 3, 19, 1, 0, 7], [2, 5]).unwrap();
    let tape = Tape::new();
    let mut rng = Rng::new(0);
    let casts = CastCache::new();
    let mut ctx = Ctx { casts: Some(&casts), ..Ctx::train(&tape, &mut rng) };
    ctx.compute_dtype = Some(DType::BF16);
    let y = e.forward(&Var::constant(ids.clone()), &mut ctx).unwrap();
    // the values of looking up a BF16 table, in BF16
    assert_eq!(y.dtype(), DType::BF16);
    let want = table.value().to_dtype(DType::BF16).unwrap().index_select(&ids.reshape([10]).unwrap(), 0).unwrap();
    let f32s = |t: &Tensor| t.to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap(); // exact from BF16
    assert_eq!(f32s(&y.value().reshape([10, 6]).unwrap()), f32s(&want));
    // the rows' BF16 gradients are added into the F32 table gradient in F32
    let c =
        Tensor::rand_normal(8, 0.0, 1.0, [2, 5, 6], DType::F32, &Device::Cpu).unwrap().to_dtype(DType::BF16).unwrap();
    let l = y.mul(&Var::constant(c.clone())).unwrap().sum_all().unwrap();
    let g = tape.backward(&l).unwrap().get(&table).expect("table gradient").clone();
    assert_eq!(g.dtype(), DType::F32);
    let want = c.to_dtype(DType::F32).unwrap().reshape([10, 6]).unwrap().index_add_into(
        &ids.reshape([10]).unwrap(),
        0,
        &keel_tensor::Shape::from([20, 6]),
    );
    let (got, want) = (g.to_vec::<f32>().unwrap(), want.unwrap().to_vec::<f32>().unwrap());
    assert_eq!(got, want);
    // a repeated id's sum is not rounded to BF16 (which casting the table would give)
    assert!(want.iter().any(|&v| v.to_bits() & 0xFFFF != 0), "the test needs a sum BF16 cannot hold");
}

#[test]
fn embedding_and_lstm() {
    let build = |policy| {
        let mut m = Sequential::with_seed(4).dtype_policy(policy);
        m.add(Embedding::new(20, 6).input_shape([5]));
        m.add(LSTM::new(7));
        m.add(Dense::new(1));
        m
    };
    // float ids: Embedding takes its input uncast (BF16 holds integers exactly only up to 256)
    let ids = Tensor::from_vec(vec![1.0f32, 19.0, 3.0, 4.0, 5.0, 0.0, 7.0, 8.0, 9.0, 10.0], [2, 5]).unwrap();
    let (a, b) = (build(DTypePolicy::Float32), build(MIXED));
    let pa = a.predict(std::slice::from_ref(&ids)).unwrap();
    let pb = b.predict(std::slice::from_ref(&ids)).unwrap();
    assert_eq!(pb[0].dtype(), DType::F32);
    assert!(rel(&pb[0], &pa[0]) < 5e-2, "rel {}", rel(&pb[0], &pa[0]));
    // targets on one side of the outputs: the two samples' gradients add up rather than
    // cancel (a near-cancelling sum has no relative accuracy in BF16, nor in F32 much)
    let y = Tensor::from_vec(vec![0.5f32, 0.3], [2, 1]).unwrap();
    let (_, ga, _) = step(&a, &ids, &y, Loss::MeanSquaredError);
    let (_, gb, _) = step(&b, &ids, &y, Loss::MeanSquaredError);
    for ((name, x), (_, y)) in gb.iter().zip(&ga) {
        assert_eq!(x.dtype(), DType::F32);
        assert!(rel(x, y) < 5e-2, "{name}: rel {}", rel(x, y));
    }
}

#[test]
fn functional_model_with_add_and_concatenate() {
    let build = |policy| {
        let inp = Input::new([6]);
        let h = Dense::new(6).activation(Activation::Relu).call(&inp).unwrap();
        let r = add(&[h.clone(), inp.clone()]).unwrap();
        let c = concatenate(&[r, h], -1).unwrap();
        let out = Dense::new(2).call(&c).unwrap();
        Model::with_seed(&[inp], &[out], 9).unwrap().dtype_policy(policy)
    };
    let x = Tensor::rand_normal(3, 0.0, 1.0, [4, 6], DType::F32, &Device::Cpu).unwrap();
    let (a, b) = (build(DTypePolicy::Float32), build(MIXED));
    let (pa, pb) = (a.predict(std::slice::from_ref(&x)).unwrap(), b.predict(&[x]).unwrap());
    assert_eq!(pb[0].dtype(), DType::F32);
    assert!(rel(&pb[0], &pa[0]) < 3e-2, "rel {}", rel(&pb[0], &pa[0]));
}

/// A [`CastCache`] keeps the BF16 copies of the weights across inference passes: the
/// outputs are the same bits as casting in every pass, each weight that a layer casts is
/// cast once (the conv and dense kernels and biases; batch normalization computes in
/// F32), and a pass with a tape or under float32 does not use it.
#[test]
fn cast_cache_keeps_one_copy_per_weight_across_inference_passes() {
    let model = cnn(MIXED);
    let x = Tensor::rand_uniform(11, -1.0, 1.0, [3, 10, 10, 2], DType::F32, &Device::Cpu).unwrap();
    let plain = model.predict(std::slice::from_ref(&x)).unwrap().remove(0);
    let casts = CastCache::new();
    for _ in 0..2 {
        let xv = Var::constant(x.clone());
        let out = model.forward(&[xv], &mut Ctx::inference_with(&casts)).unwrap().remove(0).into_value();
        assert_eq!(out.to_vec::<f32>().unwrap(), plain.to_vec::<f32>().unwrap());
        assert_eq!(casts.len(), 6, "conv kernel and bias, two dense kernels and biases");
    }

    // float32 computes in the weights' dtype: nothing to cast
    let fresh = CastCache::new();
    let f32_model = cnn(DTypePolicy::Float32);
    f32_model.forward(&[Var::constant(x)], &mut Ctx::inference_with(&fresh)).unwrap();
    assert!(fresh.is_empty());
}

/// A training step with the weights cast together ([`Ctx::precast`] through a
/// [`CastCache`], one op forward and one backward) gives the loss, gradients and outputs of
/// casting each weight where a layer reads it, bit for bit; each copy is handed out once
/// (the cache is empty after the pass), and a layer used twice (a shared Dense) casts its
/// weights again for the second use, so each use's gradient reaches the F32 weight in F32.
#[test]
fn weights_cast_together_give_the_same_step() {
    let x = Tensor::rand_uniform(12, -1.0, 1.0, [3, 10, 10, 2], DType::F32, &Device::Cpu).unwrap();
    let y = Tensor::from_vec(vec![0i64, 3, 1], 3).unwrap();
    let model = cnn(MIXED);
    let casts = CastCache::new();
    let together = step_with(&model, &x, &y, Loss::SparseCategoricalCrossentropy, Some(&casts));
    assert!(casts.is_empty(), "every copy handed out once");
    let apart = step(&model, &x, &y, Loss::SparseCategoricalCrossentropy);
    assert_eq!(together.0.to_vec::<f32>().unwrap(), apart.0.to_vec::<f32>().unwrap());
    assert_eq!(together.2.to_vec::<f32>().unwrap(), apart.2.to_vec::<f32>().unwrap());
    for ((n, a), (_, b)) in together.1.iter().zip(&apart.1) {
        assert_eq!(a.dtype(), DType::F32, "{n}");
        assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap(), "{n}");
    }

    // a shared layer: the second use casts afresh
    let inp = Input::new([6]);
    let shared = Dense::new(6).activation(Activation::Relu).shared();
    let h = shared.call(&inp).unwrap();
    let h2 = shared.call(&h).unwrap();
    let out = Dense::new(2).call(&h2).unwrap();
    let model = Model::with_seed(&[inp], &[out], 4).unwrap().dtype_policy(MIXED);
    let x = Tensor::rand_normal(13, 0.0, 1.0, [5, 6], DType::F32, &Device::Cpu).unwrap();
    let y = Tensor::rand_normal(14, 0.0, 1.0, [5, 2], DType::F32, &Device::Cpu).unwrap();
    let casts = CastCache::new();
    let together = step_with(&model, &x, &y, Loss::MeanSquaredError, Some(&casts));
    let apart = step(&model, &x, &y, Loss::MeanSquaredError);
    assert!(casts.is_empty());
    assert_eq!(together.0.to_vec::<f32>().unwrap(), apart.0.to_vec::<f32>().unwrap());
    for ((n, a), (_, b)) in together.1.iter().zip(&apart.1) {
        assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap(), "{n}");
    }
}

/// `input_autocast` names the dtype every reader of a model input casts it to: BF16 under
/// mixed_bfloat16 when all readers autocast, `None` under float32, for an Embedding's
/// indices, an input handed back as an output, or a model with no layers. An input given
/// in that dtype gives the outputs and gradients of the F32 input, bit for bit.
#[test]
fn inputs_cast_before_the_model_give_the_same_step() {
    assert_eq!(cnn(MIXED).input_autocast(0), Some(DType::BF16));
    assert_eq!(cnn(MIXED).input_autocast(1), None);
    assert_eq!(cnn(DTypePolicy::Float32).input_autocast(0), None);
    assert_eq!(Sequential::new().dtype_policy(MIXED).input_autocast(0), None);
    let mut emb = Sequential::new().dtype_policy(MIXED);
    emb.add(Embedding::new(20, 6).input_shape([5]));
    assert_eq!(emb.input_autocast(0), None);
    let functional = |out_too: bool| {
        let (a, b) = (Input::new([6]), Input::new([3]));
        let h = Dense::new(6).call(&a).unwrap();
        let r = add(&[h.clone(), a.clone()]).unwrap();
        let c = concatenate(&[r, b.clone()], -1).unwrap();
        let mut outs = vec![Dense::new(2).call(&c).unwrap()];
        if out_too {
            outs.push(b.clone());
        }
        Model::with_seed(&[a, b], &outs, 9).unwrap().dtype_policy(MIXED)
    };
    // input 0 is read by a Dense and an Add, input 1 by a Concatenate
    assert_eq!(functional(false).input_autocast(0), Some(DType::BF16));
    assert_eq!(functional(false).input_autocast(1), Some(DType::BF16));
    assert_eq!(functional(true).input_autocast(1), None, "an output as it came in");
    assert_eq!(functional(false).input_autocast(2), None);

    let m = cnn(MIXED);
    let x = Tensor::rand_normal(8, 0.0, 1.0, [3, 10, 10, 2], DType::F32, &Device::Cpu).unwrap();
    let y = Tensor::from_vec(vec![0.0f32, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], [3, 4]).unwrap();
    let (l32, g32, o32) = step(&m, &x, &y, Loss::CategoricalCrossentropy);
    let (l16, g16, o16) = step(&m, &x.to_dtype(DType::BF16).unwrap(), &y, Loss::CategoricalCrossentropy);
    let bits = |t: &Tensor| t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
    assert_eq!(bits(&l16), bits(&l32));
    assert_eq!(bits(&o16), bits(&o32));
    for ((name, a), (_, b)) in g16.iter().zip(&g32) {
        assert_eq!(bits(a), bits(b), "{name}");
    }
}

/// Under mixed precision a softmax head's logits reach the cross-entropy in BF16, as the
/// last layer computed them (the loss reads them as F32 itself: no cast launch): loss,
/// every gradient and the output are the bits of the loss on the logits cast to F32, for
/// one-hot, soft and class-index targets, with and without sample weights (which stay F32).
#[test]
fn softmax_loss_takes_bf16_logits_as_if_cast() {
    let m = cnn(MIXED);
    let x = Tensor::rand_normal(8, 0.0, 1.0, [3, 10, 10, 2], DType::F32, &Device::Cpu).unwrap();
    let soft = Tensor::from_vec(vec![0.1f32, 0.7, 0.1, 0.1, 0.3, 0.3, 0.3, 0.1, 0.0, 0.0, 0.2, 0.8], [3, 4]).unwrap();
    let labels = Tensor::from_vec(vec![1i64, 0, 3], [3]).unwrap();
    let w = Tensor::from_vec(vec![0.3f32, 1.7, 1.1], [3]).unwrap();
    let bits = |t: &Tensor| t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
    let run = |loss: Loss, y: &Tensor, w: Option<&Tensor>, cast_first: bool| {
        let tape = Tape::new();
        let mut rng = Rng::new(5);
        let mut ctx = Ctx::train(&tape, &mut rng);
        let heads = m.forward_heads(&[Var::constant(x.clone())], &mut ctx).unwrap();
        let head = &heads[0];
        assert_eq!(head.logits.dtype(), DType::BF16, "the last layer's logits, uncast");
        let l = if cast_first {
            let logits = head.output_logits().unwrap();
            assert_eq!(logits.dtype(), DType::F32);
            loss.from_logits(true).compute(logits, y, w).unwrap()
        } else {
            loss.compute_head(head, y, w).unwrap()
        };
        assert_eq!(l.dtype(), DType::F32);
        let out = head.output().unwrap().value().clone();
        assert_eq!(out.dtype(), DType::F32);
        let grads = tape.backward(&l).unwrap();
        let g: Vec<Vec<f64>> = m.named_params().iter().map(|(_, p)| bits(grads.get(p).expect("gradient"))).collect();
        (bits(l.value()), g, bits(&out))
    };
    for (loss, y) in [
        (Loss::CategoricalCrossentropy, &soft),
        (Loss::CategoricalCrossentropy, &labels.one_hot(4, DType::F32).unwrap()),
        (Loss::SparseCategoricalCrossentropy, &labels),
    ] {
        for w in [None, Some(&w)] {
            let (a, b) = (run(loss, y, w, false), run(loss, y, w, true));
            assert_eq!(a.0, b.0, "{loss:?} weighted {}: loss", w.is_some());
            assert_eq!(a.1, b.1, "{loss:?} weighted {}: gradients", w.is_some());
            assert_eq!(a.2, b.2, "{loss:?} weighted {}: outputs", w.is_some());
        }
    }
}
