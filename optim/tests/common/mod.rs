//! Shared test helpers: the fixed quadratic, the Keras fixtures, and an
//! independent float64 reference implementation of every optimizer.
#![allow(dead_code)]

use keel_autograd::{Gradients, Param};
use keel_optim::Optimizer;
use keel_tensor::Tensor;
use serde_json::Value;

/// The fixtures written by `fixtures/gen_keras_fixtures.py` (Keras 3, JAX backend).
pub fn fixtures() -> Value {
    serde_json::from_str(include_str!("../fixtures/keras_fixtures.json")).expect("fixture JSON parses")
}

fn nested(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_array().expect("array").iter().map(|y| y.as_f64().expect("number")).collect())
        .collect()
}

/// Initial values of the two parameters (flattened).
pub fn p0() -> Vec<Vec<f64>> {
    nested(&fixtures()["p0"])
}

/// The curvature `a` of f(p) = 0.5 * sum(a * p^2), per parameter.
pub fn curvature() -> Vec<Vec<f64>> {
    nested(&fixtures()["a"])
}

/// The parameters' shapes.
pub fn shapes() -> Vec<Vec<usize>> {
    fixtures()["shapes"]
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_array().expect("array").iter().map(|d| d.as_u64().expect("dim") as usize).collect())
        .collect()
}

/// Keras's trajectory for `case`: `[step][param][element]`.
pub fn keras_case(case: &str) -> Vec<Vec<Vec<f64>>> {
    let c = &fixtures()["cases"][case];
    c.as_array().unwrap_or_else(|| panic!("no fixture case {case}")).iter().map(nested).collect()
}

/// Fresh f32 params holding `p0`.
pub fn make_params() -> Vec<Param> {
    p0().iter()
        .zip(shapes())
        .map(|(v, s)| {
            let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            Param::new(Tensor::from_vec(v, s).expect("tensor"))
        })
        .collect()
}

/// The gradient `a * p` of the quadratic for every param (f32 tensor ops).
pub fn quad_grads(params: &[Param]) -> Gradients {
    let mut g = Gradients::default();
    for (p, a) in params.iter().zip(curvature()) {
        let a: Vec<f32> = a.iter().map(|&x| x as f32).collect();
        let a = Tensor::from_vec(a, p.shape()).expect("tensor");
        g.insert(p.id(), p.value().mul(&a).expect("mul"));
    }
    g
}

/// Current values of `params` as f64.
pub fn values(params: &[Param]) -> Vec<Vec<f64>> {
    params.iter().map(|p| p.value().to_vec_f64().expect("to_vec")).collect()
}

/// Run `n` steps of `opt` on the quadratic; the params after each step.
pub fn run(opt: &mut dyn Optimizer, params: &[Param], n: usize) -> Vec<Vec<Vec<f64>>> {
    (0..n)
        .map(|_| {
            let g = quad_grads(params);
            opt.step(params, &g).expect("step");
            values(params)
        })
        .collect()
}

/// Assert two trajectories agree elementwise within `tol`.
pub fn assert_close(what: &str, got: &[Vec<Vec<f64>>], want: &[Vec<Vec<f64>>], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: step count");
    for (s, (gs, ws)) in got.iter().zip(want).enumerate() {
        for (i, (gp, wp)) in gs.iter().zip(ws).enumerate() {
            assert_eq!(gp.len(), wp.len(), "{what}: param {i} size");
            for (j, (g, w)) in gp.iter().zip(wp).enumerate() {
                assert!(
                    (g - w).abs() <= tol,
                    "{what}: step {} param {i} elem {j}: got {g}, want {w} (diff {:e})",
                    s + 1,
                    (g - w).abs()
                );
            }
        }
    }
}

/// A float64 reference update rule (Keras formulas, written out per element).
#[derive(Clone, Copy, Debug)]
pub enum Rule {
    /// SGD.
    Sgd { momentum: f64, nesterov: bool },
    /// Adam.
    Adam { b1: f64, b2: f64, eps: f64, amsgrad: bool },
    /// RMSprop.
    Rms { rho: f64, momentum: f64, eps: f64, centered: bool },
    /// Adagrad.
    Adagrad { init: f64, eps: f64 },
    /// Nadam (the momentum cache is a running product, as Keras keeps it).
    Nadam { b1: f64, b2: f64, eps: f64 },
    /// Adamax.
    Adamax { b1: f64, b2: f64, eps: f64 },
    /// Adadelta.
    Adadelta { rho: f64, eps: f64 },
    /// Lion.
    Lion { b1: f64, b2: f64 },
    /// Ftrl.
    Ftrl { power: f64, init: f64, l1: f64, l2: f64, shrink: f64, beta: f64 },
}

/// Reference clipping.
#[derive(Clone, Copy, Debug)]
pub enum Clip {
    /// none
    None,
    /// per-tensor norm
    Norm(f64),
    /// global norm
    Global(f64),
    /// per-element value
    Value(f64),
}

/// A full reference optimizer configuration.
pub struct RefOpt {
    /// The update rule.
    pub rule: Rule,
    /// Learning rate at a 0-based step.
    pub lr: Box<dyn Fn(u64) -> f64>,
    /// Decoupled weight decay (0 = none).
    pub wd: f64,
    /// Gradient clipping.
    pub clip: Clip,
}

impl RefOpt {
    /// A constant-lr configuration without clipping or weight decay.
    pub fn new(rule: Rule, lr: f64) -> Self {
        RefOpt { rule, lr: Box::new(move |_| lr), wd: 0.0, clip: Clip::None }
    }

    /// Run `n` steps from `p0` on the quadratic with curvature `a`, in f64.
    pub fn run(&self, p0: &[Vec<f64>], a: &[Vec<f64>], n: usize) -> Vec<Vec<Vec<f64>>> {
        let mut p: Vec<Vec<f64>> = p0.to_vec();
        let init = match self.rule {
            Rule::Adagrad { init, .. } | Rule::Ftrl { init, .. } => init,
            _ => 0.0,
        };
        // Nadam's momentum cache: the product of its momentum schedule so far
        let mut u_product = 1.0;
        // three slots per element: (m | velocity | accumulator | accumulated_grad),
        // (v | momentum | norm | accumulated_delta_var | linear), (v_hat | average)
        let mut s1: Vec<Vec<f64>> = p.iter().map(|x| vec![init; x.len()]).collect();
        let mut s2: Vec<Vec<f64>> = p.iter().map(|x| vec![0.0; x.len()]).collect();
        let mut s3: Vec<Vec<f64>> = p.iter().map(|x| vec![0.0; x.len()]).collect();
        let mut out = Vec::new();
        for t in 0..n as u64 {
            let lr = (self.lr)(t);
            let u = |b1: f64, s: u64| b1 * (1.0 - 0.5 * 0.96f64.powi(s as i32));
            if let Rule::Nadam { b1, .. } = self.rule {
                u_product *= u(b1, t + 1);
            }
            let mut g: Vec<Vec<f64>> =
                p.iter().zip(a).map(|(pi, ai)| pi.iter().zip(ai).map(|(x, y)| x * y).collect()).collect();
            match self.clip {
                Clip::None => {}
                Clip::Norm(c) => {
                    for gi in &mut g {
                        let norm = gi.iter().map(|x| x * x).sum::<f64>().sqrt();
                        let s = c / norm.max(c);
                        gi.iter_mut().for_each(|x| *x *= s);
                    }
                }
                Clip::Global(c) => {
                    let norm = g.iter().flatten().map(|x| x * x).sum::<f64>().sqrt();
                    let s = c / norm.max(c);
                    g.iter_mut().flatten().for_each(|x| *x *= s);
                }
                Clip::Value(v) => g.iter_mut().flatten().for_each(|x| *x = x.clamp(-v, v)),
            }
            for i in 0..p.len() {
                for j in 0..p[i].len() {
                    let gj = g[i][j];
                    let mut x = p[i][j];
                    x -= x * self.wd * lr;
                    match self.rule {
                        Rule::Sgd { momentum, nesterov } => {
                            if momentum == 0.0 {
                                x -= lr * gj;
                            } else {
                                let m = momentum * s1[i][j] - lr * gj;
                                s1[i][j] = m;
                                x += if nesterov { momentum * m - lr * gj } else { m };
                            }
                        }
                        Rule::Adam { b1, b2, eps, amsgrad } => {
                            let k = (t + 1) as i32;
                            let alpha = lr * (1.0 - b2.powi(k)).sqrt() / (1.0 - b1.powi(k));
                            s1[i][j] += (gj - s1[i][j]) * (1.0 - b1);
                            s2[i][j] += (gj * gj - s2[i][j]) * (1.0 - b2);
                            let mut v = s2[i][j];
                            if amsgrad {
                                s3[i][j] = s3[i][j].max(v);
                                v = s3[i][j];
                            }
                            x -= alpha * s1[i][j] / (v.sqrt() + eps);
                        }
                        Rule::Rms { rho, momentum, eps, centered } => {
                            s1[i][j] = rho * s1[i][j] + (1.0 - rho) * gj * gj;
                            let denom = if centered {
                                s3[i][j] = rho * s3[i][j] + (1.0 - rho) * gj;
                                s1[i][j] - s3[i][j] * s3[i][j] + eps
                            } else {
                                s1[i][j] + eps
                            };
                            let inc = lr * gj / denom.sqrt();
                            if momentum > 0.0 {
                                s2[i][j] = momentum * s2[i][j] + inc;
                                x -= s2[i][j];
                            } else {
                                x -= inc;
                            }
                        }
                        Rule::Adagrad { eps, .. } => {
                            s1[i][j] += gj * gj;
                            x -= lr * gj / (s1[i][j] + eps).sqrt();
                        }
                        Rule::Nadam { b1, b2, eps } => {
                            let k = t + 1;
                            let (u_t, u_next) = (u(b1, k), u(b1, k + 1));
                            s1[i][j] += (gj - s1[i][j]) * (1.0 - b1);
                            s2[i][j] += (gj * gj - s2[i][j]) * (1.0 - b2);
                            let m_hat =
                                u_next * s1[i][j] / (1.0 - u_product * u_next) + (1.0 - u_t) * gj / (1.0 - u_product);
                            let v_hat = s2[i][j] / (1.0 - b2.powi(k as i32));
                            x -= lr * m_hat / (v_hat.sqrt() + eps);
                        }
                        Rule::Adamax { b1, b2, eps } => {
                            s1[i][j] += (gj - s1[i][j]) * (1.0 - b1);
                            s2[i][j] = (b2 * s2[i][j]).max(gj.abs());
                            x -= lr * s1[i][j] / ((1.0 - b1.powi(t as i32 + 1)) * (s2[i][j] + eps));
                        }
                        Rule::Adadelta { rho, eps } => {
                            s1[i][j] = rho * s1[i][j] + (1.0 - rho) * gj * gj;
                            let delta = -(s2[i][j] + eps).sqrt() * gj / (s1[i][j] + eps).sqrt();
                            s2[i][j] = rho * s2[i][j] + (1.0 - rho) * delta * delta;
                            x += lr * delta;
                        }
                        Rule::Lion { b1, b2 } => {
                            let c = b1 * s2[i][j] + (1.0 - b1) * gj;
                            x -= lr
                                * if c > 0.0 {
                                    1.0
                                } else if c < 0.0 {
                                    -1.0
                                } else {
                                    0.0
                                };
                            s2[i][j] = b2 * s2[i][j] + (1.0 - b2) * gj;
                        }
                        Rule::Ftrl { power, l1, l2, shrink, beta, .. } => {
                            let k = -power;
                            let l2 = l2 + beta / (2.0 * lr);
                            let gs = gj + 2.0 * shrink * x;
                            let n_new = s1[i][j] + gj * gj;
                            s2[i][j] += gs - (n_new.powf(k) - s1[i][j].powf(k)) / lr * x;
                            let z = s2[i][j];
                            x = (z.clamp(-l1, l1) - z) / (n_new.powf(k) / lr + 2.0 * l2);
                            s1[i][j] = n_new;
                        }
                    }
                    p[i][j] = x;
                }
            }
            out.push(p.clone());
        }
        out
    }
}
