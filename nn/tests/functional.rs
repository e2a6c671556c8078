//! The functional API: a ResNet block, shared layers, multiple inputs/outputs, graph errors.

use keel_autograd::{Tape, Var};
use keel_nn::prelude::*;
use keel_nn::Error;
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};

fn resnet_block() -> (Model, usize) {
    let x = Input::new([8, 8, 16]);
    let y = Conv2D::new(16, 3).padding(Padding::Same).use_bias(false).call(&x).unwrap();
    let y = BatchNormalization::new().call(&y).unwrap();
    let y = ActivationLayer::new(Activation::Relu).call(&y).unwrap();
    let y = Conv2D::new(16, 3).padding(Padding::Same).use_bias(false).call(&y).unwrap();
    let y = BatchNormalization::new().call(&y).unwrap();
    let y = add(&[y, x.clone()]).unwrap();
    let y = ActivationLayer::new(Activation::Relu).call(&y).unwrap();
    let y = GlobalAveragePooling2D::new().call(&y).unwrap();
    let y = Dense::new(10).activation(Activation::Softmax).call(&y).unwrap();
    let m = Model::new(&[x], &[y]).unwrap();
    let params = 2 * (3 * 3 * 16 * 16) + 2 * 4 * 16 + 16 * 10 + 10;
    (m, params)
}

#[test]
fn resnet_block_builds_runs_and_trains() {
    let (m, params) = resnet_block();
    assert!(m.is_built());
    assert_eq!(m.count_params(), params);
    assert_eq!(m.non_trainable_params().len(), 4);
    assert_eq!(m.output_shapes().unwrap(), vec![vec![10]]);
    let s = m.summary();
    println!("{s}");
    assert!(s.contains("input_1 (InputLayer)"), "{s}");
    assert!(s.contains("add (Add)"), "{s}");
    assert!(s.contains("['batch_normalization_1[0][0]'") && s.contains("'input_1[0][0]']"), "{s}");
    assert!(s.contains(&format!("Total params: {}", keel_nn::summary::thousands(params))));
    let names: Vec<String> = m.named_weights().into_iter().map(|w| w.name).collect();
    assert!(
        names.contains(&"conv2d_1/kernel".to_string()) && names.contains(&"batch_normalization/moving_mean".into())
    );

    let x = Tensor::rand_normal(1, 0.0, 1.0, (4, 8, 8, 16), DType::F32, &Device::Cpu).unwrap();
    let y = Tensor::from_vec(vec![1i64, 3, 5, 7], 4).unwrap();
    let out = m.predict(std::slice::from_ref(&x)).unwrap();
    assert_eq!(out[0].dims(), &[4, 10]);
    let loss = Loss::SparseCategoricalCrossentropy;
    let mut rng = Rng::new(0);
    let mut losses = Vec::new();
    for _ in 0..5 {
        let tape = Tape::new();
        let mut ctx = Ctx::train(&tape, &mut rng);
        let heads = m.forward_heads(&[Var::constant(x.clone())], &mut ctx).unwrap();
        assert_eq!(heads[0].activation, Activation::Softmax);
        let l = loss.compute_head(&heads[0], &y, None).unwrap();
        losses.push(l.value().to_scalar::<f32>().unwrap());
        let g = tape.backward(&l).unwrap();
        for p in m.trainable_params() {
            let gp = g.get(&p).expect("gradient reaches every layer, through the skip too");
            p.set(p.value().sub(&gp.mul_scalar(0.05).unwrap()).unwrap()).unwrap();
        }
    }
    assert!(losses[4] < losses[0], "{losses:?}");
}

#[test]
fn shared_layer_uses_one_set_of_weights() {
    let a = Input::new([5]);
    let b = Input::new([5]);
    let shared = Dense::new(3).shared();
    let ya = shared.call(&a).unwrap();
    let yb = shared.call(&b).unwrap();
    let merged = concatenate(&[ya, yb.clone()], -1).unwrap();
    let out = Dense::new(1).call(&merged).unwrap();
    let m = Model::new(&[a, b], &[out, yb]).unwrap();
    assert_eq!(m.output_shapes().unwrap(), vec![vec![1], vec![3]]);
    assert_eq!(m.count_params(), (5 * 3 + 3) + (6 + 1));
    assert_eq!(m.layers().len(), 3);
    let x = Tensor::rand_normal(2, 0.0, 1.0, (2, 5), DType::F32, &Device::Cpu).unwrap();
    let outs = m.predict(&[x.clone(), x.clone()]).unwrap();
    assert_eq!(outs.len(), 2);
    assert_eq!(outs[0].dims(), &[2, 1]);
    // Same input on both branches: the shared layer gives the same values.
    let k = shared.read().weights()[0].param.value();
    let b0 = shared.read().weights()[1].param.value();
    let want = x.matmul(&k).unwrap().add(&b0).unwrap();
    assert_eq!(outs[1].to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
    let s = m.summary();
    assert!(s.contains("multiple"), "{s}");
    assert!(s.contains("dense[1][0]"), "{s}");
    // The config lists the layers with their inbound nodes.
    let c = m.config();
    assert_eq!(c["class_name"], "Functional");
    assert_eq!(c["config"]["layers"].as_array().unwrap().len(), 5);
}

#[test]
fn graph_errors_are_reported() {
    let a = Input::new([4]);
    let b = Input::new([4]);
    let y = add(&[a.clone(), b]).unwrap();
    assert!(matches!(Model::new(std::slice::from_ref(&a), &[y]), Err(Error::Graph(_))));
    // Merge shape mismatch at call time names the layer.
    let c = Input::new([3]);
    let e = add(&[a.clone(), c]).unwrap_err();
    assert!(e.to_string().contains("Add"), "{e}");
    // Wrong input count / shape at run time.
    let y = Dense::new(2).call(&a).unwrap();
    let m = Model::new(&[a], &[y]).unwrap();
    let bad = Tensor::zeros((2, 5), DType::F32, &Device::Cpu).unwrap();
    assert!(m.predict(std::slice::from_ref(&bad)).is_err());
    assert!(m.predict(&[bad.clone(), bad]).is_err());
}

/// `Concatenate`'s axis counts the batch axis, as Keras's does: `Concatenate(axis=1)` on
/// flat features joins them, on images joins the rows; axis 0 (the batch) is an error.
#[test]
fn concatenate_counts_the_batch_axis_like_keras() {
    let c = concatenate(&[Input::new([4]), Input::new([3])], 1).unwrap();
    assert_eq!(c.shape(), &[7]);
    let (a, b) = (Input::new([2, 3, 1]), Input::new([2, 3, 1]));
    assert_eq!(concatenate(&[a.clone(), b.clone()], 1).unwrap().shape(), &[4, 3, 1]);
    assert_eq!(concatenate(&[a.clone(), b.clone()], 2).unwrap().shape(), &[2, 6, 1]);
    assert_eq!(concatenate(&[a.clone(), b.clone()], 3).unwrap().shape(), &[2, 3, 2]);
    assert_eq!(concatenate(&[a.clone(), b.clone()], -1).unwrap().shape(), &[2, 3, 2]);
    assert_eq!(concatenate(&[a.clone(), b.clone()], -3).unwrap().shape(), &[4, 3, 1]);
    for bad in [0, 4, -4] {
        let e = concatenate(&[a.clone(), b.clone()], bad).unwrap_err().to_string();
        assert!(e.contains("batch axis"), "{bad}: {e}");
    }
    // the values follow the shapes: rows of a, then rows of b
    let m = Model::new(&[a.clone(), b.clone()], &[concatenate(&[a, b], 1).unwrap()]).unwrap();
    let xa = Tensor::from_vec((0..6).map(|v| v as f32).collect::<Vec<_>>(), (1, 2, 3, 1)).unwrap();
    let xb = Tensor::from_vec((10..16).map(|v| v as f32).collect::<Vec<_>>(), (1, 2, 3, 1)).unwrap();
    let out = m.predict(&[xa, xb]).unwrap().remove(0);
    assert_eq!(out.dims(), &[1, 4, 3, 1]);
    assert_eq!(out.to_vec::<f32>().unwrap(), [0., 1., 2., 3., 4., 5., 10., 11., 12., 13., 14., 15.]);
}

/// Keras's merge layers: values on two and three inputs, gradients by finite differences,
/// Subtract's two-input rule and a shape mismatch naming both shapes.
#[test]
fn merge_layers_compute_like_keras() {
    let (a, b, c) = (Input::new([3]), Input::new([3]), Input::new([3]));
    let va = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], (1, 3)).unwrap();
    let vb = Tensor::from_vec(vec![4.0f64, 5.0, -6.0], (1, 3)).unwrap();
    let vc = Tensor::from_vec(vec![0.5f64, 0.5, 2.0], (1, 3)).unwrap();
    let run = |out: keel_nn::SymbolicTensor, ins: &[keel_nn::SymbolicTensor]| -> Vec<f64> {
        let m = Model::new(ins, &[out]).unwrap();
        let xs = [va.clone(), vb.clone(), vc.clone()];
        m.predict(&xs[..ins.len()]).unwrap().remove(0).to_vec::<f64>().unwrap()
    };
    let abc = [a.clone(), b.clone(), c.clone()];
    assert_eq!(run(subtract(&a, &b).unwrap(), &abc[..2]), [-3.0, -7.0, 9.0]);
    assert_eq!(run(multiply(&abc).unwrap(), &abc), [2.0, -5.0, -36.0]);
    assert_eq!(run(average(&abc).unwrap(), &abc), [5.5 / 3.0, 3.5 / 3.0, -1.0 / 3.0]);
    assert_eq!(run(Maximum::new().call_multi(&abc).unwrap(), &abc), [4.0, 5.0, 3.0]);
    assert_eq!(run(Minimum::new().call_multi(&abc).unwrap(), &abc), [0.5, -2.0, -6.0]);
    assert_eq!(run(add(&abc).unwrap(), &abc), [5.5, 3.5, -1.0]);
    // gradients through each (ties avoided for maximum/minimum)
    let inputs = [va.clone(), vb.clone(), vc.clone()];
    for (i, layer) in [
        Box::new(Subtract::new()) as Box<dyn Layer>,
        Box::new(Multiply::new()),
        Box::new(Average::new()),
        Box::new(Maximum::new()),
        Box::new(Minimum::new()),
    ]
    .into_iter()
    .enumerate()
    {
        let n = if i == 0 { 2 } else { 3 };
        keel_autograd::gradcheck(
            |v| Ok(layer.forward_logits_multi(v, &mut Ctx::inference()).expect("forward")),
            &inputs[..n],
        )
        .unwrap_or_else(|e| panic!("{}: {e}", layer.class_name()));
    }
    let e = Subtract::new().call_multi(&abc).unwrap_err().to_string();
    assert!(e.contains("exactly two inputs"), "{e}");
    let e = multiply(&[a, Input::new([4])]).unwrap_err().to_string();
    assert!(e.contains("[3]") && e.contains("[4]"), "{e}");
}
