//! Tape semantics: gradient accumulation, kept values, memory release, typed
//! errors, untracked inference, custom ops and gradcheck's own failure path.

#![allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better in tests

use keel_autograd::{gradcheck, Error, Param, Tape, Var};
use keel_tensor::{DType, Device, Tensor};
use std::sync::{Arc, Mutex};

fn t(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape.to_vec()).unwrap()
}

fn vals(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-9, "{a:?} != {b:?}");
    }
}

#[test]
fn reused_value_gets_summed_gradient() {
    let tape = Tape::new();
    let x = tape.leaf(t(&[1.0, -2.0, 3.0], &[3]));
    // y = x * x + x  =>  dy/dx = 2x + 1
    let y = ((&x * &x) + &x).unwrap().sum_all().unwrap();
    let g = tape.backward(&y).unwrap();
    close(&vals(g.get_var(&x).unwrap()), &[3.0, -3.0, 7.0]);
}

#[test]
fn param_used_twice_accumulates_under_its_id() {
    let p = Param::new(t(&[2.0, 5.0], &[2]));
    let tape = Tape::new();
    let a = tape.param(&p);
    let b = tape.param(&p); // a second leaf for the same parameter
    let loss = (a.mul_scalar(3.0).unwrap() + b.square().unwrap()).unwrap().sum_all().unwrap();
    let grads = tape.backward(&loss).unwrap();
    close(&vals(grads.get(&p).unwrap()), &[3.0 + 4.0, 3.0 + 10.0]);
    assert_eq!(grads.len(), 1);
    assert!(grads.get_id(p.id()).unwrap().same_storage(grads.get(&p).unwrap()));
}

#[test]
fn unused_param_has_no_gradient_and_watch_keeps_intermediates() {
    let (p, q) = (Param::new(t(&[1.0, 2.0], &[2])), Param::new(t(&[1.0], &[1])));
    let tape = Tape::new();
    let x = tape.param(&p);
    let _unused = tape.param(&q);
    let h = x.exp().unwrap();
    tape.watch(&h).unwrap();
    let loss = h.sum_all().unwrap();
    let grads = tape.backward(&loss).unwrap();
    assert!(grads.get(&q).is_none());
    close(&vals(grads.get_var(&h).unwrap()), &[1.0, 1.0]);
    close(&vals(grads.get(&p).unwrap()), &[1f64.exp(), 2f64.exp()]);
    // a Var that was not kept has no entry
    assert!(grads.get_var(&loss).is_none());
}

#[test]
fn max_ties_share_the_gradient() {
    let tape = Tape::new();
    let x = tape.leaf(t(&[1.0, 3.0, 3.0, 2.0, 5.0, 5.0], &[2, 3]));
    let m = x.max(&[-1], false).unwrap();
    let loss = m.sum_all().unwrap();
    let g = tape.backward(&loss).unwrap();
    close(&vals(g.get_var(&x).unwrap()), &[0.0, 0.5, 0.5, 0.0, 0.5, 0.5]);
}

#[test]
fn saved_tensors_are_freed_by_backward() {
    let p = Param::new(t(&[0.1, 0.2, 0.3], &[3]));
    let tape = Tape::new();
    let a = tape.param(&p);
    let h = a.exp().unwrap(); // a fresh buffer ...
    let y = h.sin().unwrap(); // ... that `sin` saves for its backward
    let probe = h.value().clone();
    drop(h);
    assert_eq!(probe.storage_ref_count(), 2, "probe + the saved copy");
    let loss = y.sum_all().unwrap();
    let grads = tape.backward(&loss).unwrap();
    assert_eq!(probe.storage_ref_count(), 1, "backward released the saved input");
    assert!(grads.get(&p).is_some());
}

#[test]
fn dropping_an_unused_tape_frees_saved_tensors() {
    let tape = Tape::new();
    let x = tape.leaf(t(&[0.5, 1.5], &[2]));
    let h = x.exp().unwrap();
    let y = h.tanh().unwrap();
    let probe = h.value().clone();
    drop(h);
    assert_eq!(probe.storage_ref_count(), 2);
    drop(tape);
    assert_eq!(probe.storage_ref_count(), 1);
    // Vars of the dropped tape now behave as constants
    assert!(!y.is_tracked());
    let z = y.mul_scalar(2.0).unwrap();
    assert!(!z.is_tracked());
}

#[test]
fn saved_tensors_are_freed_as_backward_goes() {
    // Op B (recorded after A) saves `u`; when A's rule runs, B's rule must
    // already have dropped it.
    let tape = Tape::new();
    let x = tape.leaf(t(&[1.0, 2.0], &[2]));
    let seen = Arc::new(Mutex::new(None));
    let u = Tensor::ones((2,), DType::F64, &Device::Cpu).unwrap();
    let u_probe = u.clone();
    let seen2 = seen.clone();
    let a = Var::custom_op("a", &[&x], x.value().clone(), move |g, _| {
        *seen2.lock().unwrap() = Some(u_probe.storage_ref_count());
        Ok(vec![Some(g.clone())])
    })
    .unwrap();
    let u_saved = u.clone();
    let b = Var::custom_op("b", &[&a], a.value().clone(), move |g, _| {
        let _keep = &u_saved; // saved by B
        Ok(vec![Some(g.clone())])
    })
    .unwrap();
    let loss = b.sum_all().unwrap();
    assert_eq!(u.storage_ref_count(), 3); // u, u_probe (in A), u_saved (in B)
    tape.backward(&loss).unwrap();
    // During A's rule: u and u_probe alive, u_saved already gone.
    assert_eq!(*seen.lock().unwrap(), Some(2));
    assert_eq!(u.storage_ref_count(), 1);
}

#[test]
fn non_scalar_backward_needs_a_seed() {
    let tape = Tape::new();
    let x = tape.leaf(t(&[1.0, 2.0], &[2]));
    let y = x.square().unwrap();
    match tape.backward(&y) {
        Err(Error::NonScalarLoss { shape }) => assert_eq!(shape.dims(), &[2]),
        other => panic!("expected NonScalarLoss, got {other:?}"),
    }
    // with a seed it works
    let tape = Tape::new();
    let x = tape.leaf(t(&[1.0, 2.0], &[2]));
    let y = x.square().unwrap();
    let g = tape.backward_with(&y, t(&[1.0, 10.0], &[2])).unwrap();
    close(&vals(g.get_var(&x).unwrap()), &[2.0, 40.0]);
    // a seed of the wrong shape is typed too
    let tape = Tape::new();
    let y = tape.leaf(t(&[1.0, 2.0], &[2]));
    assert!(matches!(tape.backward_with(&y, t(&[1.0], &[1])), Err(Error::GradientMismatch { .. })));
}

#[test]
fn foreign_vars_are_rejected() {
    let (t1, t2) = (Tape::new(), Tape::new());
    let a = t1.leaf(t(&[1.0], &[1]));
    let b = t2.leaf(t(&[2.0], &[1]));
    match &a + &b {
        Err(Error::ForeignVar { expected, found, .. }) => {
            assert_eq!((expected, found), (t1.id(), t2.id()))
        }
        other => panic!("expected ForeignVar, got {other:?}"),
    }
    let la = a.sum_all().unwrap();
    assert!(matches!(t2.backward(&la), Err(Error::ForeignVar { .. })));
    assert!(matches!(t1.watch(&b), Err(Error::ForeignVar { .. })));
}

#[test]
fn untracked_values_record_nothing() {
    let tape = Tape::new();
    let x = Var::constant(t(&[1.0, 2.0], &[2]));
    let y = x.exp().unwrap().sum_all().unwrap();
    assert!(!y.is_tracked());
    assert_eq!(tape.len(), 0);
    assert!(matches!(tape.backward(&y), Err(Error::NotTracked { .. })));
    // a tracked op with a constant operand records one node
    let tape = Tape::new();
    let p = Param::new(t(&[3.0], &[1]));
    let z = (&p.var(Some(&tape)) * &x).unwrap();
    assert!(z.is_tracked());
    assert_eq!(tape.len(), 1);
    assert!(!p.var(None).is_tracked());
}

/// `Var::to_dtype_many` (a mixed-precision model's weight casts as one op): the values and
/// gradients of `to_dtype` on each, an unused output gives its input no gradient, and an
/// integer dtype is an error.
#[test]
fn to_dtype_many_is_to_dtype_on_each() {
    let inputs = [t(&[1.1, -2.3, 3.7], &[3]), t(&[0.4, 5.5], &[2]), t(&[7.0], &[1])];
    let run = |together: bool| {
        let tape = Tape::new();
        let v: Vec<Var> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
        let cast = if together {
            Var::to_dtype_many(&v, DType::BF16).unwrap()
        } else {
            v.iter().map(|x| x.to_dtype(DType::BF16).unwrap()).collect()
        };
        assert!(cast.iter().all(|c| c.dtype() == DType::BF16 && c.is_tracked()));
        // the third output is not used
        let loss = (&(&cast[0] * 3.0).unwrap().sum_all().unwrap() + &cast[1].sum_all().unwrap()).unwrap();
        let g = tape.backward(&loss).unwrap();
        let grads: Vec<Option<Vec<f64>>> = v.iter().map(|x| g.get_var(x).map(|g| g.to_vec_f64().unwrap())).collect();
        let values: Vec<Vec<f64>> = cast.iter().map(|c| c.value().to_vec_f64().unwrap()).collect();
        (values, grads)
    };
    let (together, apart) = (run(true), run(false));
    assert_eq!(together, apart);
    assert_eq!(together.1[0], Some(vec![3.0; 3]));
    assert!(together.1[2].is_none(), "an unused output gives no gradient");
    let x = Var::constant(t(&[1.0], &[1]));
    assert!(Var::to_dtype_many(&[x], DType::I64).is_err());
}

#[test]
fn integer_results_are_not_tracked() {
    let tape = Tape::new();
    let x = tape.leaf(t(&[1.0, 3.0, 2.0], &[3]));
    let i = x.to_dtype(DType::I64).unwrap();
    assert!(!i.is_tracked());
    let am = x.reduce(keel_tensor::ReduceOp::ArgMax, &[0], false).unwrap();
    assert!(!am.is_tracked());
    assert_eq!(am.value().to_vec::<i64>().unwrap(), vec![1]);
}

#[test]
fn operators_return_errors_instead_of_panicking() {
    let a = Var::constant(t(&[1.0, 2.0, 3.0], &[3]));
    let b = Var::constant(t(&[1.0, 2.0], &[2]));
    assert!(matches!(&a + &b, Err(Error::Tensor(_))));
    let c = Var::constant(Tensor::ones((3,), DType::F32, &Device::Cpu).unwrap());
    assert!(matches!(&a * &c, Err(Error::Tensor(_))));
    // errors propagate through a chain
    assert!(((&a + &b) * &a).is_err());
    let ok = ((2.0 - &a).unwrap() / 2.0).unwrap();
    close(&vals(ok.value()), &[0.5, 0.0, -0.5]);
}

#[test]
fn custom_op_with_a_wrong_gradient_shape_is_typed() {
    let tape = Tape::new();
    let x = tape.leaf(t(&[1.0, 2.0], &[2]));
    let y = Var::custom_op("bad", &[&x], x.value().clone(), |_g, _| {
        Ok(vec![Some(Tensor::ones((3,), DType::F64, &Device::Cpu)?)])
    })
    .unwrap();
    let loss = y.sum_all().unwrap();
    match tape.backward(&loss) {
        Err(Error::GradientMismatch { op, .. }) => assert_eq!(op, "bad"),
        other => panic!("expected GradientMismatch, got {other:?}"),
    }
}

#[test]
fn gradcheck_catches_a_wrong_rule() {
    // claims d(x^3)/dx = 2x: wrong
    let cube = |v: &[Var]| {
        let x = &v[0];
        let out = x.value().pow_scalar(3.0)?;
        let saved = x.value().clone();
        Var::custom_op("cube", &[x], out, move |g, _| Ok(vec![Some(g.mul(&saved.mul_scalar(2.0)?)?)]))?.sum_all()
        // a scalar output: the check is exactly d/dx_i
    };
    let x = t(&[0.5, -1.0, 2.0], &[3]);
    match gradcheck(cube, &[x.clone()]) {
        Err(Error::GradcheckFailed(r)) => {
            assert_eq!(r.input, 0);
            // relative errors: 0.5 at x = 0.5, 5/3 at x = -1, 8/12 at x = 2
            assert_eq!(r.index, vec![1]);
            assert!((r.numeric - 3.0).abs() < 1e-4 && (r.analytic + 2.0).abs() < 1e-12, "{r}");
            assert!((r.max_error - 5.0 / 3.0).abs() < 1e-4);
        }
        other => panic!("expected GradcheckFailed, got {other:?}"),
    }
    // the right rule passes
    let good = |v: &[Var]| {
        let x = &v[0];
        let saved = x.value().clone();
        Var::custom_op("cube", &[x], x.value().pow_scalar(3.0)?, move |g, _| {
            Ok(vec![Some(g.mul(&saved.square()?.mul_scalar(3.0)?)?)])
        })
    };
    assert!(gradcheck(good, &[x]).is_ok());
    // non-F64 inputs are rejected
    let f32_in = Tensor::ones((2,), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(gradcheck(|v| Ok(v[0].clone()), &[f32_in]), Err(Error::Invalid { .. })));
}

#[test]
fn params_update_in_place_and_by_replacement() {
    let p = Param::new(t(&[1.0, 2.0], &[2]));
    let q = p.clone();
    assert_eq!(p.id(), q.id());
    assert!(p.ptr_eq(&q));
    assert_ne!(Param::new(t(&[0.0], &[1])).id(), p.id());
    let held = p.value();
    p.assign(&t(&[5.0, 6.0], &[2])).unwrap();
    close(&vals(&held), &[5.0, 6.0]); // in place: every handle sees it
    q.set(t(&[7.0, 8.0], &[2])).unwrap();
    close(&vals(&p.value()), &[7.0, 8.0]);
    assert!(p.set(t(&[1.0], &[1])).is_err());
}

#[test]
fn backward_twice_is_impossible_and_consumed_vars_are_constants() {
    let tape = Tape::new();
    let x = tape.leaf(t(&[1.0], &[1]));
    let y = x.exp().unwrap().sum_all().unwrap();
    let id = tape.id();
    let _ = tape.backward(&y).unwrap(); // `tape` moved: a second call does not compile
    assert_eq!(y.tape_id(), Some(id));
    assert!(!y.is_tracked());
    // mixing a consumed-tape Var into a new tape treats it as a constant
    let tape2 = Tape::new();
    let z = tape2.leaf(t(&[2.0], &[1]));
    let w = (&z * &y).unwrap().sum_all().unwrap();
    let g = tape2.backward(&w).unwrap();
    close(&vals(g.get_var(&z).unwrap()), &[1f64.exp()]);
}

#[test]
fn vars_and_tapes_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Var>();
    assert_send_sync::<Tape>();
    assert_send_sync::<Param>();
    assert_send_sync::<keel_autograd::Gradients>();
}

#[test]
fn param_gradients_are_contiguous_and_in_the_param_dtype() {
    // sum's gradient is a broadcast view internally; the param's is contiguous
    let p = Param::new(Tensor::ones((2, 3), DType::F32, &Device::Cpu).unwrap());
    let tape = Tape::new();
    let x = tape.param(&p).t().unwrap().to_dtype(DType::F64).unwrap();
    let loss = x.sum_all().unwrap();
    let grads = tape.backward(&loss).unwrap();
    let g = grads.get(&p).unwrap();
    assert!(g.is_contiguous());
    assert_eq!(g.dtype(), DType::F32);
    assert_eq!(g.dims(), &[2, 3]);
    assert_eq!(g.to_vec::<f32>().unwrap(), vec![1.0; 6]);
    let listed: Vec<_> = grads.iter().map(|(id, _)| id).collect();
    assert_eq!(listed, vec![p.id()]);
}

#[test]
fn mul_by_a_constant_saves_only_the_constant() {
    let tape = Tape::new();
    let x = tape.leaf(t(&[1.0, 2.0], &[2]));
    let h = x.exp().unwrap();
    let mask = Var::constant(t(&[0.0, 2.0], &[2]));
    let probe = h.value().clone();
    let y = (&h * &mask).unwrap();
    drop(h);
    // h is not saved by the product: only probe holds it (exp saved x, not h)
    assert_eq!(probe.storage_ref_count(), 1);
    let g = tape.backward(&y.sum_all().unwrap()).unwrap();
    close(&vals(g.get_var(&x).unwrap()), &[0.0, 2.0 * 2f64.exp()]);
}

/// `x ^ 0` has gradient 0 wrt `x`, also at `x = 0` (PyTorch's; `0 * 0^-1` would be NaN),
/// through `pow_scalar` and through `pow` with a tensor exponent; the exponent's gradient
/// is 0 where `x <= 0`.
#[test]
fn pow_with_zero_exponent_has_zero_gradient_at_zero() {
    let p = Param::new(t(&[0.0, 0.0, 3.0], &[3]));
    let tape = Tape::new();
    let loss = tape.param(&p).pow_scalar(0.0).unwrap().sum_all().unwrap();
    let grads = tape.backward(&loss).unwrap();
    assert_eq!(vals(grads.get(&p).unwrap()), vec![0.0, 0.0, 0.0]);

    let (px, py) = (Param::new(t(&[0.0, 0.0, 2.0], &[3])), Param::new(t(&[0.0, 1.0, 0.0], &[3])));
    let tape = Tape::new();
    let loss = tape.param(&px).pow(&tape.param(&py)).unwrap().sum_all().unwrap();
    let grads = tape.backward(&loss).unwrap();
    assert_eq!(vals(grads.get(&px).unwrap()), vec![0.0, 1.0, 0.0]);
    assert_eq!(vals(grads.get(&py).unwrap()), vec![0.0, 0.0, 2f64.ln()]);
}

/// An integer leaf cast to float has no gradient (PyTorch refuses integer leaves that
/// require grad); it used to receive the float gradient truncated to integers.
#[test]
fn an_integer_leaf_gets_no_gradient() {
    let tape = Tape::new();
    let ids = tape.leaf(Tensor::from_vec(vec![1i64, 2], 2).unwrap());
    let w = tape.leaf(t(&[0.5, 0.25], &[2]));
    let y = ids.to_dtype(DType::F64).unwrap().mul(&w).unwrap().sum_all().unwrap();
    let g = tape.backward(&y).unwrap();
    assert!(g.get_var(&ids).is_none());
    assert_eq!(g.get_var(&w).unwrap().to_vec::<f64>().unwrap(), [1.0, 2.0]);
}
