//! Conv2D and Conv1D with `groups` > 1 against Keras 3.15.1 (fixtures/grouped_conv_fixtures.json,
//! written by fixtures/make_grouped_conv_fixtures.py with JAX gradients: the composition of
//! narrow, conv2d and concat, each gradchecked on its own), configs and errors.

mod common;
use common::{assert_close, tensor_of, with_keras_weights};

use keel_autograd::{Tape, Var};
use keel_nn::prelude::*;
use keel_tensor::rng::Rng;
use serde_json::Value;

fn pair(v: &Value) -> (usize, usize) {
    match v {
        Value::Array(a) => (a[0].as_u64().unwrap() as usize, a[1].as_u64().unwrap() as usize),
        n => (n.as_u64().unwrap() as usize, n.as_u64().unwrap() as usize),
    }
}

fn activation(opts: &Value) -> Activation {
    match opts.get("activation").and_then(Value::as_str) {
        Some("relu") => Activation::Relu,
        None => Activation::Linear,
        Some(other) => panic!("activation {other}"),
    }
}

fn layer_of(c: &Value) -> Box<dyn Layer> {
    let o = &c["options"];
    let groups = o["groups"].as_u64().unwrap() as usize;
    let filters = o["filters"].as_u64().unwrap() as usize;
    let use_bias = o.get("use_bias").and_then(Value::as_bool).unwrap_or(true);
    let layer: Box<dyn Layer> = match c["class"].as_str().unwrap() {
        "Conv2D" => {
            let padding =
                if o.get("padding").and_then(Value::as_str) == Some("same") { Padding::Same } else { Padding::Valid };
            let mut l = Conv2D::new(filters, pair(&o["kernel_size"]))
                .groups(groups)
                .padding(padding)
                .activation(activation(o))
                .use_bias(use_bias);
            if let Some(s) = o.get("strides") {
                l = l.strides(pair(s));
            }
            if let Some(d) = o.get("dilation_rate") {
                l = l.dilation_rate(pair(d));
            }
            Box::new(l)
        }
        "Conv1D" => {
            let padding = match o.get("padding").and_then(Value::as_str) {
                Some("same") => Conv1DPadding::Same,
                Some("causal") => Conv1DPadding::Causal,
                _ => Conv1DPadding::Valid,
            };
            let mut l = Conv1D::new(filters, o["kernel_size"].as_u64().unwrap() as usize)
                .groups(groups)
                .padding(padding)
                .activation(activation(o))
                .use_bias(use_bias);
            if let Some(s) = o.get("strides") {
                l = l.strides(s.as_u64().unwrap() as usize);
            }
            Box::new(l)
        }
        other => panic!("class {other}"),
    };
    with_keras_weights(layer, c)
}

fn cases() -> Vec<Value> {
    let v: Value = serde_json::from_str(include_str!("fixtures/grouped_conv_fixtures.json")).unwrap();
    v["cases"].as_array().unwrap().clone()
}

#[test]
fn forward_and_gradients_match_keras() {
    let all = cases();
    assert_eq!(all.len(), 6);
    for c in &all {
        let name = c["name"].as_str().unwrap();
        let layer = layer_of(c);
        let x = tensor_of(&c["x"]);
        let y = layer.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap();
        assert_close(y.value(), &tensor_of(&c["y"]), 1e-5, &format!("{name} forward"));
        let tape = Tape::new();
        let mut rng = Rng::new(0);
        let xv = tape.leaf(x);
        let y = layer.forward(&xv, &mut Ctx::train(&tape, &mut rng)).unwrap();
        let loss = y.mul(&Var::constant(tensor_of(&c["w"]))).unwrap().sum_all().unwrap();
        let g = tape.backward(&loss).unwrap();
        let grads = c["grads"].as_array().unwrap();
        assert_close(g.get_var(&xv).unwrap(), &tensor_of(&grads[0]), 1e-4, &format!("{name} d/dx"));
        for (i, p) in layer.params().iter().enumerate() {
            assert_close(g.get(p).unwrap(), &tensor_of(&grads[i + 1]), 1e-4, &format!("{name} d/dweight{i}"));
        }
        // Keras's config keys and groups
        let ours = layer.config();
        assert_eq!(ours["groups"], c["config"]["groups"], "{name}");
        for key in ours.as_object().unwrap().keys() {
            assert!(c["config"].get(key).is_some() || key == "name", "{name}: keel writes {key}");
        }
    }
}

#[test]
fn groups_must_divide_channels_and_filters() {
    let mut rng = Rng::new(0);
    let err = Conv2D::new(6, 3).groups(4).with_name("gc").build(&[8, 8, 6], &mut rng).unwrap_err().to_string();
    assert!(err.contains("gc") && err.contains("groups (4)") && err.contains("(6)"), "{err}");
    assert!(Conv2D::new(5, 3).groups(2).build(&[8, 8, 4], &mut rng).is_err(), "filters 5 in 2 groups");
    assert!(Conv1D::new(4, 3).groups(0).build(&[8, 4], &mut rng).is_err());
    assert!(Conv2DTranspose::new(4, 3).build(&[8, 8, 4], &mut rng).is_ok());
    // the kernel holds in / groups input channels, as Keras's
    let mut g = Conv2D::new(6, (3, 2)).groups(3);
    g.build(&[5, 5, 9], &mut rng).unwrap();
    assert_eq!(g.kernel().unwrap().value().dims(), [3, 2, 3, 6]);
    assert_eq!(g.count_params(), 3 * 2 * 3 * 6 + 6);
    // groups = 1 is not written (Keras's default), as before
    assert!(Conv2D::new(2, 3).config().get("groups").is_none());
}
