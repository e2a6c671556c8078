//! The activation layers (ReLU, LeakyReLU, PReLU, ELU, Softmax) and TimeDistributed: values
//! against hand-computed f64 results (Keras 3's formulas), gradients by finite differences,
//! output shapes, weights, configs and errors.

use keel_autograd::{gradcheck, Tape, Var};
use keel_nn::prelude::*;
use keel_nn::{Error, PReLUConfig};
use keel_tensor::rng::Rng;
use keel_tensor::{DType, Device, Tensor};

fn built<L: Layer>(mut l: L, shape: &[usize]) -> L {
    l.set_name("l".into());
    l.build(shape, &mut Rng::new(1)).unwrap();
    l
}

/// The layer's inference output on `x`, checked against `output_shape`.
fn run(l: &dyn Layer, x: &Tensor) -> Tensor {
    let y = l.forward(&Var::constant(x.clone()), &mut Ctx::inference()).unwrap().into_value();
    assert_eq!(&y.dims()[1..], l.output_shape(&x.dims()[1..]).unwrap(), "{}: forward vs output_shape", l.name());
    y
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol * w.abs().max(1.0), "{what}: {got:?} vs {want:?}");
    }
}

/// `vals` as an F64 `[1, n]` batch.
fn row(vals: &[f64]) -> Tensor {
    Tensor::from_vec(vals.to_vec(), (1, vals.len())).unwrap()
}

fn uniform(seed: u64, lo: f64, hi: f64, shape: &[usize], dtype: DType) -> Tensor {
    Tensor::rand_uniform(seed, lo, hi, shape.to_vec(), dtype, &Device::Cpu).unwrap()
}

/// The build error of `l` on `shape`, as text.
fn build_err<L: Layer>(mut l: L, shape: &[usize]) -> String {
    l.set_name("bad".into());
    let e = l.build(shape, &mut Rng::new(0)).unwrap_err();
    let s = e.to_string();
    assert!(s.contains("\"bad\""), "the error names the layer: {s}");
    s
}

const XS: [f64; 11] = [-7.0, -3.0, -1.2, -0.5, 0.0, 0.3, 0.9, 1.7, 2.5, 4.0, 9.0];

/// Keras's documented ReLU (away from `x == threshold`, with `max_value >= threshold`).
fn keras_relu(x: f64, max_value: Option<f64>, slope: f64, threshold: f64) -> f64 {
    match max_value {
        Some(m) if x >= m => m,
        _ if x >= threshold => x,
        _ => slope * (x - threshold),
    }
}

#[test]
fn relu_matches_keras_for_every_combination() {
    let combos: [(Option<f64>, f64, f64); 8] = [
        (None, 0.0, 0.0),
        (Some(6.0), 0.0, 0.0),
        (Some(1.0), 0.0, 0.0),
        (None, 0.1, 0.0),
        (None, 0.0, 1.5),
        (None, 0.25, 1.5),
        (Some(4.0), 0.2, 1.0),
        (Some(2.5), 0.5, 0.0),
    ];
    let xs: Vec<f64> = XS.iter().copied().filter(|&x| x != 1.5 && x != 1.0).collect();
    for (max_value, slope, threshold) in combos {
        let mut l = ReLU::new().negative_slope(slope).threshold(threshold);
        if let Some(m) = max_value {
            l = l.max_value(m);
        }
        let l = built(l, &[xs.len()]);
        let want: Vec<f64> = xs.iter().map(|&x| keras_relu(x, max_value, slope, threshold)).collect();
        close(&f64s(&run(&l, &row(&xs))), &want, 1e-15, &format!("ReLU({max_value:?}, {slope}, {threshold})"));
    }
    // Keras's docstring example
    let l = built(ReLU::new().max_value(10.0).negative_slope(0.5), &[5]);
    let y = run(&l, &row(&[-10.0, -5.0, 0.0, 5.0, 10.0]));
    assert_eq!(f64s(&y), [-5.0, -2.5, 0.0, 5.0, 10.0]);
    // Keras's code keeps x only where x > threshold: x == threshold gives 0; and with
    // max_value < threshold an x between them follows the negative rule
    let l = built(ReLU::new().threshold(2.0).max_value(1.0).negative_slope(0.5), &[4]);
    assert_eq!(f64s(&run(&l, &row(&[2.0, 1.5, 3.0, 0.0]))), [0.0, -0.25, 1.0, -1.0]);
    // f32 through the default ReLU
    let l = built(ReLU::default(), &[3]);
    let y = run(&l, &Tensor::from_vec(vec![-1.0f32, 0.5, 2.0], (1, 3)).unwrap());
    assert_eq!(y.to_vec::<f32>().unwrap(), [0.0, 0.5, 2.0]);
    assert_eq!(l.class_name(), "ReLU");
    assert_eq!(l.base_name(), "re_lu");
    assert!(l.weights().is_empty() && l.output_activation().is_none());
}

#[test]
fn leaky_relu_defaults_to_keras_layer_slope() {
    // Keras 3's LeakyReLU layer defaults to 0.3 (the leaky_relu activation to 0.2)
    let l = LeakyReLU::default();
    assert_eq!(l.negative_slope(), 0.3);
    let l = built(l, &[XS.len()]);
    let want: Vec<f64> = XS.iter().map(|&x| if x >= 0.0 { x } else { 0.3 * x }).collect();
    close(&f64s(&run(&l, &row(&XS))), &want, 1e-15, "LeakyReLU()");
    let l = built(LeakyReLU::new(0.05), &[XS.len()]);
    let want: Vec<f64> = XS.iter().map(|&x| if x >= 0.0 { x } else { 0.05 * x }).collect();
    close(&f64s(&run(&l, &row(&XS))), &want, 1e-15, "LeakyReLU(0.05)");
    assert_eq!(l.base_name(), "leaky_re_lu");
    assert_eq!(l.config(), serde_json::json!({"name": "l", "negative_slope": 0.05}));
}

#[test]
fn elu_matches_its_formula() {
    for alpha in [1.0, 0.5, 2.0] {
        let l = if alpha == 1.0 { ELU::default() } else { ELU::new(alpha) };
        assert_eq!(l.alpha(), alpha);
        let l = built(l, &[XS.len()]);
        let want: Vec<f64> = XS.iter().map(|&x| if x > 0.0 { x } else { alpha * (x.exp() - 1.0) }).collect();
        close(&f64s(&run(&l, &row(&XS))), &want, 1e-14, &format!("ELU({alpha})"));
    }
    let l = built(ELU::new(0.5), &[2]);
    assert_eq!(l.config(), serde_json::json!({"name": "l", "alpha": 0.5}));
    assert_eq!(l.base_name(), "elu");
}

/// `exp(v) / sum(exp(v))` over the values of `group` (indices into `v`).
fn softmax_ref(v: &[f64], groups: &[Vec<usize>]) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    for g in groups {
        let total: f64 = g.iter().map(|&i| v[i].exp()).sum();
        for &i in g {
            out[i] = v[i].exp() / total;
        }
    }
    out
}

#[test]
fn softmax_over_any_axis_and_several() {
    // [B=2, 2, 3], row-major: element (b, i, j) at 6b + 3i + j
    let x = uniform(3, -2.0, 2.0, &[2, 2, 3], DType::F64);
    let v = f64s(&x);
    let idx = |b: usize, i: usize, j: usize| 6 * b + 3 * i + j;
    let last: Vec<Vec<usize>> =
        (0..2).flat_map(|b| (0..2).map(move |i| (0..3).map(|j| idx(b, i, j)).collect())).collect();
    let middle: Vec<Vec<usize>> =
        (0..2).flat_map(|b| (0..3).map(move |j| (0..2).map(|i| idx(b, i, j)).collect())).collect();
    let both: Vec<Vec<usize>> = (0..2).map(|b| (0..6).map(|k| 6 * b + k).collect()).collect();
    let cases: [(Softmax, &Vec<Vec<usize>>); 6] = [
        (Softmax::default(), &last),
        (Softmax::new(2), &last),
        (Softmax::new(1), &middle),
        (Softmax::new(-2), &middle),
        (Softmax::over([1, 2]), &both),
        (Softmax::over([-1, 1]), &both),
    ];
    for (l, groups) in cases {
        let axes = l.axes().to_vec();
        let l = built(l, &[2, 3]);
        close(&f64s(&run(&l, &x)), &softmax_ref(&v, groups), 1e-14, &format!("Softmax({axes:?})"));
        // only the default (last axis) reports a softmax a loss can fuse with
        assert_eq!(l.output_activation().is_some(), axes == [-1], "{axes:?}");
    }
    assert_eq!(built(Softmax::new(1), &[2, 3]).config(), serde_json::json!({"name": "l", "axis": 1}));
    assert_eq!(built(Softmax::over([1, 2]), &[2, 3]).config(), serde_json::json!({"name": "l", "axis": [1, 2]}));
}

#[test]
fn prelu_learns_alpha_per_element_or_shared() {
    let x = uniform(5, -2.0, 2.0, &[3, 2, 4], DType::F32);
    let cases: [(Option<Vec<usize>>, Vec<usize>); 4] =
        [(None, vec![2, 4]), (Some(vec![1]), vec![1, 4]), (Some(vec![2]), vec![2, 1]), (Some(vec![1, 2]), vec![1, 1])];
    for (shared, shape) in cases {
        let mut l = PReLU::new();
        if let Some(s) = &shared {
            l = l.shared_axes(s.clone());
        }
        let l = built(l, &[2, 4]);
        let alpha = l.alpha().unwrap();
        assert_eq!(alpha.shape().dims(), shape, "{shared:?}");
        // Keras's default initializer: zeros, so the layer starts as a ReLU
        assert!(f64s(&alpha.value()).iter().all(|&a| a == 0.0));
        let n: usize = shape.iter().product();
        let a: Vec<f32> = (0..n).map(|i| 0.1 + 0.2 * i as f32).collect();
        alpha.set(Tensor::from_vec(a.clone(), shape.clone()).unwrap()).unwrap();
        let y = f64s(&run(&l, &x));
        let xv = f64s(&x);
        for (k, (&got, &xi)) in y.iter().zip(&xv).enumerate() {
            let (i, j) = ((k / 4) % 2, k % 4);
            let ai = if shape[0] == 1 { 0 } else { i };
            let aj = if shape[1] == 1 { 0 } else { j };
            let al = a[ai * shape[1] + aj] as f64;
            let want = xi.max(0.0) + al * xi.min(0.0);
            assert!((got - want).abs() < 1e-6, "{shared:?} at {k}: {got} vs {want}");
        }
        let w = l.weights();
        assert_eq!((w.len(), w[0].name.as_ref(), w[0].trainable), (1, "alpha", true));
        assert_eq!(l.count_params(), n);
    }
    // the config is Keras's keys
    let l = built(PReLU::new().shared_axes([1]).alpha_initializer(Initializer::Constant { value: 0.25 }), &[2, 4]);
    assert_eq!(f64s(&l.alpha().unwrap().value()), [0.25; 4]);
    let cfg = l.config();
    assert_eq!(cfg["shared_axes"], serde_json::json!([1]));
    assert_eq!(cfg["alpha_initializer"]["class_name"], "Constant");
    assert!(cfg["alpha_regularizer"].is_null());
    assert_eq!(serde_json::from_value::<PReLUConfig>(cfg).unwrap(), l.get_config().clone());
    assert_eq!(l.base_name(), "p_re_lu");
    // a shared axis may change size, the others may not
    let y = run(&l, &uniform(6, -1.0, 1.0, &[2, 7, 4], DType::F32));
    assert_eq!(y.dims(), [2, 7, 4]);
    let e = l.forward(&Var::constant(uniform(6, -1.0, 1.0, &[2, 2, 5], DType::F32)), &mut Ctx::inference());
    let e = e.unwrap_err().to_string();
    assert!(e.contains("\"l\"") && e.contains("PReLU") && e.contains("[2, 5]"), "{e}");
}

#[test]
fn prelu_gradient_reaches_alpha_and_its_penalty() {
    let mut l = built(PReLU::new().shared_axes([1]).alpha_regularizer(Regularizer::l2(0.5)), &[3, 2]);
    l.alpha().unwrap().set(Tensor::from_vec(vec![0.5f32, -0.25], (1, 2)).unwrap()).unwrap();
    let x = Tensor::from_vec(vec![-1.0f32, 2.0, -3.0, -4.0, 5.0, -6.0], (1, 3, 2)).unwrap();
    let tape = Tape::new();
    let mut rng = Rng::new(0);
    let mut ctx = Ctx::train(&tape, &mut rng);
    let y = l.forward(&Var::constant(x), &mut ctx).unwrap();
    let penalty = l.regularization_loss(&ctx).unwrap().expect("alpha_regularizer");
    // l2 = 0.5 * (0.25 + 0.0625)
    assert!((penalty.value().to_vec_f64().unwrap()[0] - 0.15625).abs() < 1e-7);
    let total = y.sum_all().unwrap().add(&penalty).unwrap();
    let grads = tape.backward(&total).unwrap();
    // d/d alpha_j = sum of min(0, x) over column j + 2 * 0.5 * alpha_j
    let g = grads.get(l.alpha().unwrap()).unwrap().to_vec_f64().unwrap();
    close(&g, &[-4.0 + 0.5, -10.0 - 0.25], 1e-6, "PReLU alpha gradient");
    l.set_name("p".into());
    assert!(l.build(&[3, 2], &mut Rng::new(0)).is_ok(), "building again with the same shape keeps alpha");
}

#[test]
fn gradchecks() {
    // PReLU wrt the input and alpha (shared along axis 1: alpha [1, 4] broadcast over [B, 3, 4])
    let prelu = built(PReLU::new().shared_axes([1]), &[3, 4]);
    let x = uniform(7, -2.0, 2.0, &[2, 3, 4], DType::F64);
    let alpha = uniform(8, -0.5, 1.5, &[1, 4], DType::F64);
    let f = |v: &[Var]| Ok(prelu.forward_with_alpha(&v[0], &v[1]).expect("forward"));
    let r = gradcheck(f, &[x.clone(), alpha]).unwrap_or_else(|e| panic!("PReLU: {e}"));
    assert_eq!(r.checked, 24 + 4);
    // the elementwise layers away from their kinks (0, the threshold, max_value)
    let xs = Tensor::from_vec(vec![-2.7, -1.1, -0.4, 0.35, 0.8, 1.3, 1.9, 2.6, 3.7, 5.2], (2, 5)).unwrap();
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(built(ReLU::new(), &[5])),
        Box::new(built(ReLU::new().max_value(3.0).negative_slope(0.3).threshold(1.0), &[5])),
        Box::new(built(ReLU::new().negative_slope(0.2).threshold(0.5), &[5])),
        Box::new(built(ReLU::new().max_value(2.0), &[5])),
        Box::new(built(LeakyReLU::default(), &[5])),
        Box::new(built(ELU::new(0.7), &[5])),
        Box::new(built(Softmax::default(), &[5])),
    ];
    for l in &layers {
        let f = |v: &[Var]| Ok(l.forward(&v[0], &mut Ctx::inference()).expect("forward"));
        gradcheck(f, std::slice::from_ref(&xs)).unwrap_or_else(|e| panic!("{}: {e}", l.class_name()));
    }
    for s in [Softmax::new(1), Softmax::new(-2), Softmax::over([1, 2])] {
        let axes = s.axes().to_vec();
        let s = built(s, &[3, 4]);
        let f = |v: &[Var]| Ok(s.forward(&v[0], &mut Ctx::inference()).expect("forward"));
        gradcheck(f, std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("Softmax({axes:?}): {e}"));
    }
    // TimeDistributed around a layer without weights (F64 throughout)
    let td = built(TimeDistributed::new(Softmax::default()), &[3, 4]);
    let f = |v: &[Var]| Ok(td.forward(&v[0], &mut Ctx::inference()).expect("forward"));
    gradcheck(f, std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("TimeDistributed: {e}"));
}

#[test]
fn time_distributed_dense_is_dense_on_every_step() {
    let td = built(TimeDistributed::new(Dense::new(4).activation(Activation::Tanh)), &[3, 5]);
    assert_eq!(td.output_shape(&[3, 5]).unwrap(), [3, 4]);
    assert_eq!(td.layer().name(), "dense");
    assert_eq!(td.base_name(), "time_distributed");
    let x = uniform(9, -1.0, 1.0, &[2, 3, 5], DType::F32);
    let y = run(&td, &x);
    assert_eq!(y.dims(), [2, 3, 4]);
    let xv = Var::constant(x.clone());
    for t in 0..3 {
        let step = xv.narrow(1, t, 1).unwrap().squeeze(1).unwrap();
        let want = td.layer().forward(&step, &mut Ctx::inference()).unwrap().into_value();
        let got = Var::constant(y.clone()).narrow(1, t, 1).unwrap().squeeze(1).unwrap().into_value();
        close(&f64s(&got), &f64s(&want), 1e-6, &format!("step {t}"));
    }
    // the wrapped layer's weights, its activation for loss fusion, and logits
    let names: Vec<String> = td.weights().iter().map(|w| w.name.to_string()).collect();
    assert_eq!(names, ["kernel", "bias"]);
    assert_eq!(td.count_params(), 5 * 4 + 4);
    assert_eq!(td.output_activation(), Some(Activation::Tanh));
    let logits = td.forward_logits(&Var::constant(x), &mut Ctx::inference()).unwrap().into_value();
    close(&f64s(&logits.tanh().unwrap()), &f64s(&y), 1e-6, "forward == tanh(forward_logits)");
    // in a model the weights are named under the wrapper
    let mut m = Sequential::new();
    m.add(TimeDistributed::new(Dense::new(2)).input_shape([3, 5]));
    m.build(&[vec![3, 5]]).unwrap();
    let keys: Vec<String> = m.state_dict().into_keys().collect();
    assert_eq!(keys, ["time_distributed/bias", "time_distributed/kernel"]);
    assert!(m.summary().contains("(None, 3, 2)"), "{}", m.summary());
    // its config holds the wrapped layer's class and config
    let cfg = td.config();
    assert_eq!(cfg["layer"]["class_name"], "Dense");
    assert_eq!(cfg["layer"]["config"]["units"], 4);
    assert_eq!(cfg["layer"]["config"]["name"], "dense");
}

#[test]
fn time_distributed_conv2d_has_keras_shapes() {
    // Keras: TimeDistributed(Conv2D(4, 3)) on (None, 2, 6, 6, 1) gives (None, 2, 4, 4, 4)
    let td = built(TimeDistributed::new(Conv2D::new(4, (3, 3))), &[2, 6, 6, 1]);
    assert_eq!(td.output_shape(&[2, 6, 6, 1]).unwrap(), [2, 4, 4, 4]);
    let x = uniform(10, 0.0, 1.0, &[3, 2, 6, 6, 1], DType::F32);
    assert_eq!(run(&td, &x).dims(), [3, 2, 4, 4, 4]);
    // and over a longer sequence with the same per-step shape
    assert_eq!(run(&td, &uniform(11, 0.0, 1.0, &[1, 5, 6, 6, 1], DType::F32)).dims(), [1, 5, 4, 4, 4]);
    let td = built(TimeDistributed::new(Conv2D::new(3, (3, 3)).padding(Padding::Same)), &[2, 5, 5, 2]);
    assert_eq!(td.output_shape(&[2, 5, 5, 2]).unwrap(), [2, 5, 5, 3]);
    // an activation layer inside keeps every shape
    let td = built(TimeDistributed::new(PReLU::new().shared_axes([1, 2])), &[2, 5, 5, 2]);
    assert_eq!(td.layer().weights()[0].param.shape().dims(), [1, 1, 2]);
    assert_eq!(run(&td, &uniform(12, -1.0, 1.0, &[2, 2, 5, 5, 2], DType::F32)).dims(), [2, 2, 5, 5, 2]);
}

#[test]
fn output_shape_equals_forward_shape() {
    let shape = [3, 4, 2];
    let x = uniform(13, -2.0, 2.0, &[2, 3, 4, 2], DType::F32);
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(built(ReLU::new().max_value(1.0).threshold(0.5).negative_slope(0.1), &shape)),
        Box::new(built(LeakyReLU::default(), &shape)),
        Box::new(built(ELU::default(), &shape)),
        Box::new(built(PReLU::new().shared_axes([1, 2]), &shape)),
        Box::new(built(Softmax::new(1), &shape)),
        Box::new(built(Softmax::over([2, 3]), &shape)),
        Box::new(built(TimeDistributed::new(Dense::new(5)), &shape)),
        Box::new(built(TimeDistributed::new(Flatten::new()), &shape)),
        Box::new(built(TimeDistributed::new(TimeDistributed::new(Dense::new(3))), &shape)),
    ];
    for l in &layers {
        assert!(l.is_built(), "{}", l.class_name());
        let y = run(l.as_ref(), &x); // run checks the shapes agree
        assert_eq!(y.dims()[0], 2);
    }
    assert_eq!(layers[7].output_shape(&shape).unwrap(), [3, 8]);
    assert_eq!(layers[8].output_shape(&shape).unwrap(), [3, 4, 3]);
}

#[test]
fn bad_configs_and_inputs_are_errors_naming_the_layer() {
    let is_config = |l: &mut dyn Layer, shape: &[usize]| -> String {
        l.set_name("bad".into());
        let e = l.build(shape, &mut Rng::new(0)).unwrap_err();
        assert!(matches!(e, Error::InvalidConfig { .. }), "{e}");
        // output_shape refuses the same config before any build
        assert!(l.output_shape(shape).is_err());
        let s = e.to_string();
        assert!(s.contains("\"bad\"") && s.contains(l.class_name()), "{s}");
        s
    };
    let cases: Vec<(Box<dyn Layer>, Vec<usize>, &str)> = vec![
        (Box::new(ReLU::new().max_value(-1.0)), vec![3], "max_value"),
        (Box::new(ReLU::new().threshold(-0.5)), vec![3], "threshold"),
        (Box::new(ReLU::new().negative_slope(-0.1)), vec![3], "negative_slope"),
        (Box::new(ReLU::new().max_value(f64::NAN)), vec![3], "max_value"),
        (Box::new(LeakyReLU::new(-0.3)), vec![3], "negative_slope"),
        (Box::new(LeakyReLU::new(f64::INFINITY)), vec![3], "negative_slope"),
        (Box::new(ELU::new(f64::NAN)), vec![3], "alpha"),
        (Box::new(ELU::new(f64::NEG_INFINITY)), vec![3], "alpha"),
        (Box::new(Softmax::new(0)), vec![2, 3], "batch axis"),
        (Box::new(Softmax::new(3)), vec![2, 3], "axis 3"),
        (Box::new(Softmax::new(-3)), vec![2, 3], "axis -3"),
        (Box::new(Softmax::over([1, -2])), vec![2, 3], "twice"),
        (Box::new(Softmax::over(Vec::<isize>::new())), vec![2, 3], "at least one"),
        (Box::new(PReLU::new().shared_axes([0])), vec![2, 3], "shared_axes 0"),
        (Box::new(PReLU::new().shared_axes([1, 3])), vec![2, 3], "shared_axes 3"),
    ];
    for (mut l, shape, needle) in cases {
        let s = is_config(l.as_mut(), &shape);
        assert!(s.contains(needle), "{s} should mention {needle}");
    }
    // negative ELU alpha is allowed (Keras does not check it)
    assert!(built(ELU::new(-0.5), &[3]).is_built());
    // a Softmax axis valid for one rank is checked against the input it runs on
    let s = built(Softmax::new(2), &[2, 3]);
    let e = s.forward(&Var::constant(uniform(1, 0.0, 1.0, &[2, 3], DType::F32)), &mut Ctx::inference());
    assert!(e.unwrap_err().to_string().contains("axis 2"));

    // TimeDistributed needs [timesteps, ..] per sample
    let e = build_err(TimeDistributed::new(Dense::new(2)), &[5]);
    assert!(e.contains("TimeDistributed") && e.contains("[5]"), "{e}");
    let td = built(TimeDistributed::new(Dense::new(2)), &[3, 5]);
    let e = td.forward(&Var::constant(uniform(1, 0.0, 1.0, &[4, 5], DType::F32)), &mut Ctx::inference());
    let e = e.unwrap_err().to_string();
    assert!(e.contains("\"l\"") && e.contains("TimeDistributed") && e.contains("[5]"), "{e}");
    // the wrapped layer's own errors come through
    let e = td.forward(&Var::constant(uniform(1, 0.0, 1.0, &[4, 3, 6], DType::F32)), &mut Ctx::inference());
    assert!(e.unwrap_err().to_string().contains("Dense"));
    // PReLU built for one rank refuses another
    let p = built(PReLU::new(), &[3, 2]);
    let e = p.forward(&Var::constant(uniform(1, 0.0, 1.0, &[4, 6], DType::F32)), &mut Ctx::inference());
    let e = e.unwrap_err().to_string();
    assert!(e.contains("\"l\"") && e.contains("[6]"), "{e}");
    let mut p = p;
    assert!(p.build(&[3, 4], &mut Rng::new(0)).is_err());
    // and an unbuilt PReLU says so
    let e = PReLU::new().forward(&Var::constant(uniform(1, 0.0, 1.0, &[4, 6], DType::F32)), &mut Ctx::inference());
    assert!(matches!(e, Err(Error::NotBuilt { .. })));
}
