//! What the Keras-fixture tests of keel-nn share: reading a fixture tensor, comparing with a
//! relative tolerance, and building a layer with the fixture's weights.
#![allow(dead_code)] // each test binary uses its part

use keel_nn::Layer;
use keel_tensor::rng::Rng;
use keel_tensor::Tensor;
use serde_json::Value;

/// A fixture tensor `{"shape": [..], "data": [..]}` as F32.
pub fn tensor_of(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data: Vec<f32> = v["data"].as_array().unwrap().iter().map(|d| d.as_f64().unwrap() as f32).collect();
    Tensor::from_vec(data, shape).unwrap()
}

/// `got` equals `want` within `tol * (1 + |want|)` per element.
pub fn assert_close(got: &Tensor, want: &Tensor, tol: f32, what: &str) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (g, w) = (got.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what}[{i}]: keel {a} vs keras {b}");
    }
}

/// Build `layer` for fixture case `c`'s input `x` and give it the case's Keras `weights`.
pub fn with_keras_weights(mut layer: Box<dyn Layer>, c: &Value) -> Box<dyn Layer> {
    let x = tensor_of(&c["x"]);
    layer.build(&x.dims()[1..], &mut Rng::new(0)).unwrap();
    let ws = layer.weights();
    let want = c["weights"].as_array().unwrap();
    assert_eq!(ws.len(), want.len(), "{}: weight count", c["name"]);
    for (w, v) in ws.iter().zip(want) {
        w.param.set(tensor_of(v)).unwrap();
    }
    layer
}

/// The largest `|a - b| / (1 + |b|)`, after checking the shapes.
pub fn max_diff(got: &Tensor, want: &Tensor, what: &str) -> f32 {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (g, w) = (got.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
    g.iter().zip(&w).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0.0, f32::max)
}

/// An f64 tensor of `shape`, uniform in [-1, 1) from `seed` (gradcheck inputs).
pub fn uniform(seed: u64, shape: &[usize]) -> Tensor {
    use keel_tensor::{DType, Device};
    Tensor::rand_uniform(seed, -1.0, 1.0, shape.to_vec(), DType::F64, &Device::Cpu).unwrap()
}

/// Check `layer` (built, with the case's Keras weights) on fixture case `c` against Keras:
/// its output for `x` equals `y`, and the gradients of `sum(w * y)` with respect to `x` and
/// each trainable weight equal TensorFlow's tape (`grads`: x's first, then the weights'),
/// each within `tol` (`|a - b| / (1 + |b|)`). Returns the largest differences of the
/// outputs and of the gradients.
pub fn check_forward_and_grads(layer: &dyn Layer, c: &Value, tol: f32) -> (f32, f32) {
    use keel_autograd::{Tape, Var};
    use keel_nn::Ctx;
    let name = c["name"].as_str().unwrap();
    let x = tensor_of(&c["x"]);
    let y = layer.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap();
    assert_eq!(&y.dims()[1..], layer.output_shape(&x.dims()[1..]).unwrap(), "{name}: output_shape");
    let worst_y = max_diff(y.value(), &tensor_of(&c["y"]), &format!("{name} forward"));
    assert!(worst_y <= tol, "{name} forward: differs from Keras by {worst_y:e}");
    let grads = c["grads"].as_array().unwrap();
    let tape = Tape::new();
    let mut rng = Rng::new(0);
    let xv = tape.leaf(x);
    let y = layer.forward(&xv, &mut Ctx::train(&tape, &mut rng)).unwrap();
    let loss = y.mul(&Var::constant(tensor_of(&c["w"]))).unwrap().sum_all().unwrap();
    let g = tape.backward(&loss).unwrap();
    let mut worst_g = max_diff(g.get_var(&xv).unwrap(), &tensor_of(&grads[0]), &format!("{name} d/dx"));
    assert!(worst_g <= tol, "{name} d/dx: differs from Keras by {worst_g:e}");
    let trainable: Vec<_> = layer.weights().into_iter().filter(|w| w.trainable).collect();
    assert_eq!(trainable.len() + 1, grads.len(), "{name}: gradient count");
    for (w, want) in trainable.iter().zip(&grads[1..]) {
        let d = max_diff(g.get(&w.param).unwrap(), &tensor_of(want), &format!("{name} d/d{}", w.name));
        assert!(d <= tol, "{name} d/d{}: differs from Keras by {d:e}", w.name);
        worst_g = worst_g.max(d);
    }
    (worst_y, worst_g)
}
