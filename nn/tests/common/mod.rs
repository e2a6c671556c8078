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
