//! CPU vs CUDA agreement tests.
//!
//! Every test runs one op on the CPU and on GPU 0 on random non-zero inputs and
//! compares the two with a relative-norm tolerance (f32 < 1e-5, TF32 < 1e-3,
//! F16/BF16 < 1e-2; integer results exactly). CUDA outputs are poisoned (NaN /
//! sentinel-filled) before each kernel runs (`keel_tensor::cuda::set_poison_outputs`),
//! so a kernel that skips part of its output fails.
//!
//! Without a usable GPU (no `cuda` feature, driver, device or NVRTC) each test
//! prints why it skips and passes; with `KEEL_REQUIRE_CUDA=1` it fails instead.

use keel_tensor::ops::conv::Conv2dParams;
use keel_tensor::{BinaryOp, CmpOp, DType, Device, Error, Padding, Pool2dParams, ReduceOp, Shape, Tensor, UnaryOp};

/// GPU 0, or `None` (with a printed reason) when the test must skip.
fn gpu(test: &str) -> Option<Device> {
    if keel_tensor::cuda_is_available(0) {
        keel_tensor::cuda::set_poison_outputs(true);
        return Some(Device::Cuda(0));
    }
    let why = if cfg!(feature = "cuda") {
        "no usable CUDA GPU 0 (driver, device or NVRTC missing)"
    } else {
        "keel-tensor was built without the `cuda` feature"
    };
    if std::env::var("KEEL_REQUIRE_CUDA").is_ok_and(|v| v == "1") {
        panic!("{test}: KEEL_REQUIRE_CUDA=1 but {why}");
    }
    eprintln!("skipping {test}: {why}");
    None
}

fn rand(seed: u64, shape: &[usize], lo: f64, hi: f64) -> Tensor {
    Tensor::rand_uniform(seed, lo, hi, shape.to_vec(), DType::F32, &Device::Cpu).unwrap()
}

/// Uniform in `[lo, hi)` with random sign (never near zero when `lo > 0`).
fn rand_signed(seed: u64, shape: &[usize], lo: f64, hi: f64) -> Tensor {
    let mag = rand(seed, shape, lo, hi);
    let sign = rand(seed ^ 0x5eed, shape, -1.0, 1.0).sign().unwrap();
    mag.mul(&sign).unwrap()
}

/// An F64 tensor of `t`'s shape and signs with magnitudes in about `[0.1, 2)` that use all 53
/// bits: `rand_uniform` draws f32 values, so a second draw fills the bits below f32's.
fn f64_like(t: &Tensor, seed: u64) -> Tensor {
    let draw = |seed: u64, lo: f64, hi: f64| {
        Tensor::rand_uniform(seed, lo, hi, t.dims().to_vec(), DType::F64, &Device::Cpu).unwrap()
    };
    let mag = draw(seed, 0.1, 2.0).add(&draw(seed ^ 0xf64, 0.0, 1.0).mul_scalar(2f64.powi(-25)).unwrap()).unwrap();
    mag.mul(&t.sign().unwrap().to_dtype(DType::F64).unwrap()).unwrap()
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    num / den.max(1e-300)
}

/// Compare a CUDA result with the CPU reference: same shape/dtype, NaN/inf in the
/// same places, relative norm error of the finite rest below `tol` (0 = exact).
#[track_caller]
fn check(what: &str, gpu: &Tensor, cpu: &Tensor, tol: f64) {
    assert!(gpu.device().is_cuda(), "{what}: result is on {}", gpu.device());
    assert_eq!(gpu.shape(), cpu.shape(), "{what}: shapes differ");
    assert_eq!(gpu.dtype(), cpu.dtype(), "{what}: dtypes differ");
    let (g, c) = (gpu.to_vec_f64().unwrap(), cpu.to_vec_f64().unwrap());
    let (mut gf, mut cf) = (vec![], vec![]);
    for (i, (&x, &y)) in g.iter().zip(&c).enumerate() {
        if y.is_finite() {
            assert!(x.is_finite(), "{what}: element {i} is {x} on CUDA, {y} on the CPU");
            gf.push(x);
            cf.push(y);
        } else {
            assert!(x.is_nan() == y.is_nan() && (y.is_nan() || x == y), "{what}: element {i}: {x} vs {y}");
        }
    }
    if tol == 0.0 {
        assert_eq!(gf, cf, "{what}: values differ");
    } else {
        let e = rel_err(&gf, &cf);
        assert!(e < tol, "{what}: relative error {e:.3e} >= {tol:.0e}");
    }
}

/// Run `f` on CPU inputs and on their CUDA copies, and compare.
#[track_caller]
fn agree(what: &str, dev: Device, tol: f64, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> keel_tensor::Result<Tensor>) {
    let cpu = f(inputs).unwrap_or_else(|e| panic!("{what} on the CPU: {e}"));
    let moved: Vec<Tensor> = inputs.iter().map(|t| t.to_device(&dev).unwrap()).collect();
    let gpu = f(&moved).unwrap_or_else(|e| panic!("{what} on CUDA: {e}"));
    check(what, &gpu, &cpu, tol);
}

/// Positive inputs for ops whose domain needs them.
fn positive_only(op: UnaryOp) -> bool {
    matches!(op, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Recip)
}

fn unary_input(op: UnaryOp, seed: u64, shape: &[usize]) -> Tensor {
    if positive_only(op) {
        rand(seed, shape, 0.5, 2.0)
    } else {
        rand_signed(seed, shape, 0.05, 2.0)
    }
}

fn param(op: UnaryOp) -> f64 {
    match op {
        UnaryOp::LeakyRelu => 0.1,
        UnaryOp::Elu => 1.3,
        _ => 0.0,
    }
}

#[test]
fn unary_ops_and_grads() {
    let Some(dev) = gpu("unary_ops_and_grads") else { return };
    for (i, &op) in UnaryOp::ALL.iter().enumerate() {
        let x = unary_input(op, 10 + i as u64, &[37, 65]);
        let g = rand_signed(99 + i as u64, &[37, 65], 0.1, 1.0);
        let p = param(op);
        let name = op.name();
        agree(&format!("{name} contiguous"), dev, 1e-5, std::slice::from_ref(&x), |t| t[0].unary(op, p));
        agree(&format!("{name} transposed"), dev, 1e-5, std::slice::from_ref(&x), |t| t[0].t()?.unary(op, p));
        agree(&format!("{name} sliced"), dev, 1e-5, std::slice::from_ref(&x), |t| t[0].narrow(1, 3, 40)?.unary(op, p));
        agree(&format!("{name} grad"), dev, 1e-5, &[x.clone(), g.clone()], |t| t[0].unary_grad(&t[1], op, p));
        agree(&format!("{name} grad strided"), dev, 1e-5, &[x.clone(), g.clone()], |t| {
            t[0].t()?.unary_grad(&t[1].t()?, op, p)
        });
        // F64 in double (the wide program); the math library may differ in the last bits
        let (x64, g64) =
            (x.to_dtype(DType::F64).unwrap().mul_scalar(1.0 + 1e-9).unwrap(), g.to_dtype(DType::F64).unwrap());
        agree(&format!("{name} f64"), dev, 1e-12, std::slice::from_ref(&x64), |t| t[0].unary(op, p));
        agree(&format!("{name} f64 transposed"), dev, 1e-12, std::slice::from_ref(&x64), |t| t[0].t()?.unary(op, p));
        agree(&format!("{name} grad f64"), dev, 1e-12, &[x64.clone(), g64.clone()], |t| t[0].unary_grad(&t[1], op, p));
        agree(&format!("{name} grad f64 strided"), dev, 1e-12, &[x64, g64], |t| {
            t[0].t()?.unary_grad(&t[1].t()?, op, p)
        });
        for dt in [DType::F16, DType::BF16] {
            agree(&format!("{name} {dt}"), dev, 1e-2, &[x.to_dtype(dt).unwrap()], |t| t[0].unary(op, p));
            agree(&format!("{name} grad {dt}"), dev, 1e-2, &[x.to_dtype(dt).unwrap(), g.to_dtype(dt).unwrap()], |t| {
                t[0].unary_grad(&t[1], op, p)
            });
        }
    }
}

/// `t op v` through the op's `*_scalar` method.
fn scalar_form(t: &Tensor, op: BinaryOp, v: f64) -> keel_tensor::Result<Tensor> {
    match op {
        BinaryOp::Add => t.add_scalar(v),
        BinaryOp::Sub => t.sub_scalar(v),
        BinaryOp::Mul => t.mul_scalar(v),
        BinaryOp::Div => t.div_scalar(v),
        BinaryOp::Pow => t.pow_scalar(v),
        BinaryOp::Maximum => t.maximum_scalar(v),
        BinaryOp::Minimum => t.minimum_scalar(v),
    }
}

#[test]
fn binary_ops_broadcasting_and_grads() {
    let Some(dev) = gpu("binary_ops_broadcasting_and_grads") else { return };
    for (i, &op) in BinaryOp::ALL.iter().enumerate() {
        let s = 200 + 10 * i as u64;
        let pos = op == BinaryOp::Pow;
        let lhs =
            |seed, shape: &[usize]| if pos { rand(seed, shape, 0.5, 2.0) } else { rand_signed(seed, shape, 0.1, 2.0) };
        let rhs = |seed, shape: &[usize]| rand_signed(seed, shape, 0.2, 2.0);
        let name = op.name();
        let cases: [(&str, Tensor, Tensor); 4] = [
            ("same shape", lhs(s, &[33, 70]), rhs(s + 1, &[33, 70])),
            ("broadcast", lhs(s + 2, &[4, 1, 5]), rhs(s + 3, &[3, 1])),
            ("scalar rhs", lhs(s + 4, &[6, 7]), rhs(s + 5, &[])),
            ("row vector", lhs(s + 6, &[1, 9]), rhs(s + 7, &[8, 1, 9])),
        ];
        for (case, a, b) in cases {
            agree(&format!("{name} {case}"), dev, 1e-5, &[a.clone(), b.clone()], |t| t[0].binary(&t[1], op));
            let out = Shape::broadcast("test", a.shape(), b.shape()).unwrap();
            let g = rand_signed(s + 8, out.dims(), 0.1, 1.0);
            for wrt_rhs in [false, true] {
                agree(
                    &format!("{name} {case} grad wrt_rhs={wrt_rhs}"),
                    dev,
                    1e-5,
                    &[a.clone(), b.clone(), g.clone()],
                    |t| t[0].binary_grad(&t[1], &t[2], op, wrt_rhs),
                );
            }
            agree(
                &format!("{name} {case} bf16"),
                dev,
                1e-2,
                &[a.to_dtype(DType::BF16).unwrap(), b.to_dtype(DType::BF16).unwrap()],
                |t| t[0].binary(&t[1], op),
            );
        }
        // a transposed operand
        let (a, b) = (lhs(s + 9, &[12, 20]), rhs(s + 10, &[20, 12]));
        agree(&format!("{name} transposed"), dev, 1e-5, &[a, b], |t| t[0].binary(&t[1].t()?, op));
        // the `*_scalar` forms: one launch with the scalar as an argument on CUDA, the bits of
        // the filled one-element tensor's broadcast (also for a strided `x`, which takes the
        // broadcast), and the CPU's values
        let scalar = |t: &Tensor, v: f64| scalar_form(t, op, v);
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let x = lhs(s + 11, &[37, 29]).to_dtype(dt).unwrap().to_device(&dev).unwrap();
            for (what, x) in [("", x.clone()), (" of a transposed view", x.t().unwrap())] {
                let v = 0.7310585786300049; // not representable in any of the three dtypes
                let fused = scalar(&x, v).unwrap();
                let general = x.binary(&x.scalar_like(v).unwrap(), op).unwrap();
                check(&format!("{name}_scalar {dt}{what} vs broadcast"), &fused, &general, 0.0);
                let cpu = scalar(&x.to_device(&Device::Cpu).unwrap(), v).unwrap();
                check(
                    &format!("{name}_scalar {dt}{what} vs CPU"),
                    &fused,
                    &cpu,
                    if dt == DType::F32 { 1e-5 } else { 1e-2 },
                );
            }
        }
    }
}

/// Binary ops on I64, U8 and F64 (the wide kernels: I64 in i64, U8 and F64 in f64 like the
/// CPU, U8 narrowed like Rust's `as`): the CPU's bits, with division by zero, negative and
/// overflowing integer results (I64 add/sub/mul wrap, div and pow saturate; U8 saturates),
/// fractional integer powers (truncated), and broadcast, transposed and `*_scalar` operands.
#[test]
fn integer_and_f64_binary_ops() {
    let Some(dev) = gpu("integer_and_f64_binary_ops") else { return };
    let int = |seed, shape: &[usize], lo: f64, hi: f64, dt| rand(seed, shape, lo, hi).to_dtype(dt).unwrap();
    for (i, &op) in BinaryOp::ALL.iter().enumerate() {
        let s = 1500 + 20 * i as u64;
        let name = op.name();
        let pow = op == BinaryOp::Pow;
        // I64: small values, the right operand through 0; powers of small bases
        let (lo, hi, rlo, rhi) = if pow { (-6.0, 7.0, -2.0, 10.0) } else { (-60.0, 61.0, -9.0, 10.0) };
        let (a, b) = (int(s, &[33, 70], lo, hi, DType::I64), int(s + 1, &[33, 70], rlo, rhi, DType::I64));
        agree(&format!("{name} i64"), dev, 0.0, &[a, b], |t| t[0].binary(&t[1], op));
        let (a, b) = (int(s + 2, &[4, 1, 5], lo, hi, DType::I64), int(s + 3, &[3, 1], rlo, rhi, DType::I64));
        agree(&format!("{name} i64 broadcast"), dev, 0.0, &[a, b], |t| t[0].binary(&t[1], op));
        let (a, b) = (int(s + 4, &[12, 20], lo, hi, DType::I64), int(s + 5, &[20, 12], rlo, rhi, DType::I64));
        agree(&format!("{name} i64 transposed"), dev, 0.0, &[a, b], |t| t[0].binary(&t[1].t()?, op));
        // I64 past 2^53 and overflowing: 3e18 * 4, -3e18 - 8e18, ... (wrapping, as the CPU)
        let big = Tensor::from_vec(vec![3_000_000_000_000_000_000i64, -3_000_000_000_000_000_000, 7, 0], 4).unwrap();
        let factor = Tensor::from_vec(vec![4i64, 8_000_000_000_000_000_000, -3, 0], 4).unwrap();
        if !pow {
            agree(&format!("{name} i64 overflowing"), dev, 0.0, &[big, factor], |t| t[0].binary(&t[1], op));
        }
        // U8: the whole range; negative and overflowing results saturate to 0 and 255
        let (rlo, rhi) = if pow { (0.0, 4.0) } else { (0.0, 256.0) };
        let (a, b) = (int(s + 6, &[37, 29], 0.0, 256.0, DType::U8), int(s + 7, &[37, 29], rlo, rhi, DType::U8));
        agree(&format!("{name} u8"), dev, 0.0, &[a.clone(), b.clone()], |t| t[0].binary(&t[1], op));
        agree(&format!("{name} u8 transposed"), dev, 0.0, &[a, b], |t| t[0].t()?.binary(&t[1].t()?, op));
        // F64: CUDA's pow may differ from the CPU's in the last bit; the rest are exact
        let tol = if pow { 1e-14 } else { 0.0 };
        let f64s = |seed, shape: &[usize]| {
            let v = if pow { rand(seed, shape, 0.5, 2.0) } else { rand_signed(seed, shape, 0.1, 2.0) };
            v.to_dtype(DType::F64).unwrap().mul_scalar(1.0 + 1e-9).unwrap() // not f32 values
        };
        let (a, b) = (f64s(s + 8, &[33, 70]), f64s(s + 9, &[33, 70]));
        agree(&format!("{name} f64"), dev, tol, &[a, b], |t| t[0].binary(&t[1], op));
        let (a, b) = (f64s(s + 10, &[4, 1, 5]), f64s(s + 11, &[3, 1]));
        agree(&format!("{name} f64 broadcast"), dev, tol, &[a.clone(), b.clone()], |t| t[0].binary(&t[1], op));
        // F64 partial derivatives (the wide backward kernels), broadcast operands
        let g = rand_signed(s + 14, &[4, 3, 5], 0.1, 1.0).to_dtype(DType::F64).unwrap();
        for wrt_rhs in [false, true] {
            agree(&format!("{name} f64 grad wrt_rhs={wrt_rhs}"), dev, 1e-12, &[a.clone(), b.clone(), g.clone()], |t| {
                t[0].binary_grad(&t[1], &t[2], op, wrt_rhs)
            });
        }
        // the `*_scalar` forms (a filled one-element tensor, broadcast)
        let scalar = |t: &Tensor, v: f64| scalar_form(t, op, v);
        let v = if pow { 3.0 } else { 7.0 };
        let (lo, hi) = if pow { (-6.0, 7.0) } else { (-60.0, 61.0) };
        agree(&format!("{name}_scalar i64"), dev, 0.0, &[int(s + 12, &[9, 11], lo, hi, DType::I64)], |t| {
            scalar(&t[0], v)
        });
        agree(&format!("{name}_scalar u8"), dev, 0.0, &[int(s + 13, &[9, 11], 0.0, 256.0, DType::U8)], |t| {
            scalar(&t[0], v)
        });
    }
}

/// `binary_unary` (the bias add + ReLU of Dense and Conv2D, one launch on CUDA): the bits
/// of `binary` then `unary` on CUDA, and the CPU's values, for every float dtype, with
/// the bias broadcast, both operands contiguous, and a transposed operand.
#[test]
fn fused_bias_add_relu() {
    let Some(dev) = gpu("fused_bias_add_relu") else { return };
    let (add, relu) = (BinaryOp::Add, UnaryOp::Relu);
    let cases = [
        ("bias", rand_signed(900, &[6, 5, 7, 12], 0.1, 2.0), rand_signed(901, &[12], 0.1, 2.0)),
        ("same shape", rand_signed(902, &[37, 29], 0.1, 2.0), rand_signed(903, &[37, 29], 0.1, 2.0)),
        ("transposed", rand_signed(904, &[29, 37], 0.1, 2.0).t().unwrap(), rand_signed(905, &[37, 29], 0.1, 2.0)),
    ];
    for (case, x, b) in cases {
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let what = format!("add relu {case} {dt}");
            let (x, b) = (x.to_dtype(dt).unwrap(), b.to_dtype(dt).unwrap());
            let (gx, gb) = (x.to_device(&dev).unwrap(), b.to_device(&dev).unwrap());
            let fused = gx.binary_unary(&gb, add, relu, 0.0).unwrap();
            let chain = gx.binary(&gb, add).unwrap().unary(relu, 0.0).unwrap();
            check(&format!("{what} vs the two ops"), &fused, &chain, 0.0);
            let cpu = x.binary_unary(&b, add, relu, 0.0).unwrap();
            check(&format!("{what} vs CPU"), &fused, &cpu, if dt == DType::F32 { 1e-6 } else { 1e-2 });
        }
    }
}

/// `matmul_bias` / `matmul_bias_relu` (Dense, bias and ReLU in the GEMM's epilogue on F32):
/// the bits of matmul, add (and relu) on CUDA, and the CPU's values, for F32 (SIMT and TF32),
/// F16 and BF16 (which run the unfused ops), plain, batched with a shared kernel, with a
/// transposed operand, and with an empty inner dimension.
#[test]
fn fused_matmul_bias_relu() {
    let Some(dev) = gpu("fused_matmul_bias_relu") else { return };
    let cases = [
        ("2-D", rand_signed(620, &[67, 129], 0.1, 1.0), rand_signed(621, &[129, 35], 0.1, 1.0)),
        ("batched", rand_signed(622, &[3, 17, 33], 0.1, 1.0), rand_signed(623, &[33, 9], 0.1, 1.0)),
        ("A^T", rand_signed(624, &[40, 30], 0.1, 1.0).t().unwrap(), rand_signed(625, &[40, 12], 0.1, 1.0)),
        (
            "k = 0",
            Tensor::zeros((5, 0), DType::F32, &Device::Cpu).unwrap(),
            Tensor::zeros((0, 4), DType::F32, &Device::Cpu).unwrap(),
        ),
    ];
    for (case, a, w) in cases {
        let n = w.dims()[1];
        let bias = rand_signed(626, &[n], 0.1, 1.0);
        for (dt, tf32) in [(DType::F32, false), (DType::F32, true), (DType::F16, false), (DType::BF16, false)] {
            let (a, w, bias) = (a.to_dtype(dt).unwrap(), w.to_dtype(dt).unwrap(), bias.to_dtype(dt).unwrap());
            let (ga, gw, gb) = (a.to_device(&dev).unwrap(), w.to_device(&dev).unwrap(), bias.to_device(&dev).unwrap());
            keel_tensor::cuda::with_tf32(tf32, || {
                let what = format!("matmul bias {case} {dt} tf32 {tf32}");
                let tol = if dt == DType::F32 && !tf32 { 1e-5 } else { 1e-2 };
                let fused = ga.matmul_bias(&gw, &gb).unwrap();
                check(&format!("{what} vs the two ops"), &fused, &ga.matmul(&gw).unwrap().add(&gb).unwrap(), 0.0);
                check(&format!("{what} vs CPU"), &fused, &a.matmul_bias(&w, &bias).unwrap(), tol);
                let fused = ga.matmul_bias_relu(&gw, &gb).unwrap();
                let chain = ga.matmul(&gw).unwrap().binary_unary(&gb, BinaryOp::Add, UnaryOp::Relu, 0.0).unwrap();
                check(&format!("{what} relu vs the three ops"), &fused, &chain, 0.0);
                check(&format!("{what} relu vs CPU"), &fused, &a.matmul_bias_relu(&w, &bias).unwrap(), tol);
            });
        }
    }
}

#[test]
fn comparisons_and_where() {
    let Some(dev) = gpu("comparisons_and_where") else { return };
    // small integers so that ties (eq, le, ge) actually happen
    let a = rand(301, &[5, 1, 7], -3.0, 3.0).to_dtype(DType::I64).unwrap();
    let b = rand(302, &[4, 7], -3.0, 3.0).to_dtype(DType::I64).unwrap();
    for &op in CmpOp::ALL {
        for dt in [DType::F32, DType::F64, DType::F16, DType::BF16, DType::I64] {
            let (x, y) = (a.to_dtype(dt).unwrap(), b.to_dtype(dt).unwrap());
            agree(&format!("{} {dt}", op.name()), dev, 0.0, &[x, y], |t| t[0].cmp(&t[1], op));
        }
        // |a| as u8 (abs is a float op on the CPU, so take it in f32)
        let to_u8 = |t: &Tensor| t.to_dtype(DType::F32).unwrap().abs().unwrap().to_dtype(DType::U8).unwrap();
        let (x, y) = (to_u8(&a), to_u8(&b));
        agree(&format!("{} u8", op.name()), dev, 0.0, &[x, y], |t| t[0].cmp(&t[1], op));
        let (x, y) = (rand(303, &[9, 11], -1.0, 1.0), rand(304, &[11, 9], -1.0, 1.0));
        agree(&format!("{} transposed", op.name()), dev, 0.0, &[x, y], |t| t[0].cmp(&t[1].t()?, op));
    }
    let t = rand_signed(310, &[4, 6, 5], 0.1, 2.0);
    let f = rand_signed(311, &[6, 1], 0.1, 2.0);
    let mask_u8 = rand(312, &[4, 1, 5], -1.0, 1.0).gt(&Tensor::scalar(0.0f32)).unwrap();
    agree("where u8 mask", dev, 0.0, &[mask_u8.clone(), t.clone(), f.clone()], |x| {
        Tensor::where_cond(&x[0], &x[1], &x[2])
    });
    let mask_f32 = mask_u8.to_dtype(DType::F32).unwrap().mul(&rand(313, &[4, 1, 5], 0.5, 2.0)).unwrap();
    agree("where f32 mask", dev, 0.0, &[mask_f32, t.clone(), f.clone()], |x| Tensor::where_cond(&x[0], &x[1], &x[2]));
    let (ti, fi) = (t.to_dtype(DType::I64).unwrap(), f.to_dtype(DType::I64).unwrap());
    agree("where i64", dev, 0.0, &[mask_u8.clone(), ti, fi], |x| Tensor::where_cond(&x[0], &x[1], &x[2]));
    let (td, fd) = (t.to_dtype(DType::F64).unwrap(), f.to_dtype(DType::F64).unwrap());
    agree("where f64", dev, 0.0, &[mask_u8, td, fd], |x| Tensor::where_cond(&x[0], &x[1], &x[2]));
}

/// Long axes with few outputs split over several blocks per output (the last to finish
/// combines the partials in chunk order): a bias gradient over a batch of images, a whole
/// tensor's sum, rows and columns, every op and storage type; NaN and ties in late chunks;
/// the same bits on a second run (and the ticket counters reset, or the second would fail).
#[test]
fn long_axis_reductions_split_over_blocks() {
    let Some(dev) = gpu("long_axis_reductions_split_over_blocks") else { return };
    // (shape, axes): rows split in 4 and 12 chunks, columns in 11, 5 and 21
    let cases: [(&[usize], &[isize]); 6] = [
        (&[2, 20000], &[1]),
        (&[50000], &[0]),
        (&[6000, 40], &[0]),
        (&[3, 3000, 40], &[1]),
        (&[16, 26, 26, 32], &[0, 1, 2]),
        (&[20000, 3], &[]),
    ];
    let ops = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min, ReduceOp::Var];
    for (i, (shape, axes)) in cases.into_iter().enumerate() {
        let x = rand_signed(420 + i as u64, shape, 0.1, 3.0);
        let wide = f64_like(&x, 440 + i as u64);
        let ints = rand(460 + i as u64, shape, -1000.0, 1000.0).to_dtype(DType::I64).unwrap();
        for op in ops {
            let what = format!("{} {shape:?} {axes:?}", op.name());
            agree(&what, dev, 1e-5, std::slice::from_ref(&x), |t| t[0].reduce(op, axes, false));
            agree(&format!("{what} bf16"), dev, 1e-2, &[x.to_dtype(DType::BF16).unwrap()], |t| {
                t[0].reduce(op, axes, false)
            });
            agree(&format!("{what} f64"), dev, 1e-12, std::slice::from_ref(&wide), |t| t[0].reduce(op, axes, false));
            if op != ReduceOp::Var && op != ReduceOp::Mean {
                agree(&format!("{what} i64"), dev, 0.0, std::slice::from_ref(&ints), |t| t[0].reduce(op, axes, false));
            }
        }
        if axes.len() == 1 {
            for op in [ReduceOp::ArgMax, ReduceOp::ArgMin] {
                let what = format!("{} {shape:?} {axes:?}", op.name());
                agree(&what, dev, 0.0, std::slice::from_ref(&x), |t| t[0].reduce(op, axes, false));
                agree(&format!("{what} f64"), dev, 0.0, std::slice::from_ref(&wide), |t| t[0].reduce(op, axes, false));
            }
        }
        // the same bits again
        let xg = x.to_device(&dev).unwrap();
        let bits = |t: Tensor| t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(xg.sum(axes, false).unwrap()), bits(xg.sum(axes, false).unwrap()), "{shape:?}");
    }
    // ties (few distinct values) go to the first index across chunks; NaN in a late chunk
    // propagates (max/min) and counts as the extreme (arg ops: the first NaN)
    let ties = rand(480, &[2, 20000], 0.0, 4.0).to_dtype(DType::U8).unwrap();
    let cols = rand(481, &[6000, 40], 0.0, 4.0).to_dtype(DType::U8).unwrap().to_dtype(DType::F32).unwrap();
    for op in [ReduceOp::ArgMax, ReduceOp::ArgMin, ReduceOp::Max, ReduceOp::Min] {
        agree(&format!("{} u8 ties", op.name()), dev, 0.0, std::slice::from_ref(&ties), |t| {
            t[0].reduce(op, &[1], false)
        });
        agree(&format!("{} column ties", op.name()), dev, 0.0, std::slice::from_ref(&cols), |t| {
            t[0].reduce(op, &[0], false)
        });
    }
    let mut v = rand_signed(482, &[2, 20000], 0.1, 3.0).to_vec::<f32>().unwrap();
    for at in [15000, 17000, 20000 + 19999] {
        v[at] = f32::NAN;
    }
    let nan = Tensor::from_vec(v, (2, 20000)).unwrap();
    for op in [ReduceOp::ArgMax, ReduceOp::ArgMin, ReduceOp::Max, ReduceOp::Min, ReduceOp::Sum] {
        agree(&format!("{} with NaN", op.name()), dev, 0.0, std::slice::from_ref(&nan), |t| {
            t[0].reduce(op, &[1], false)
        });
    }
}

/// A bias + ReLU layer's backward in one launch: the gradient it passes on and its bias
/// gradient agree with the CPU, and have the bits of `unary_grad` then `sum` on CUDA (split
/// or not, F32/F16/BF16; a NaN and negative gradients where the ReLU is off keep their
/// `g * 0` values); other layouts and dtypes run the two ops.
#[test]
fn relu_grad_with_bias_grad_in_one_pass() {
    let Some(dev) = gpu("relu_grad_with_bias_grad_in_one_pass") else { return };
    let shapes: [&[usize]; 4] = [&[128, 128], &[16, 26, 26, 32], &[7, 3], &[5]];
    for (i, shape) in shapes.into_iter().enumerate() {
        let y = rand_signed(490 + i as u64, shape, 0.0, 2.0).relu().unwrap();
        let mut gv = rand_signed(495 + i as u64, shape, 0.1, 3.0).to_vec::<f32>().unwrap();
        gv[1] = f32::NAN;
        let g = Tensor::from_vec(gv, shape.to_vec()).unwrap();
        for (dt, tol) in [(DType::F32, 1e-5), (DType::F16, 1e-2), (DType::BF16, 1e-2), (DType::F64, 1e-12)] {
            let (y, g) = (y.to_dtype(dt).unwrap(), g.to_dtype(dt).unwrap());
            for out in [0, 1] {
                agree(
                    &format!("relu_grad_with_bias_grad {shape:?} {dt} {out}"),
                    dev,
                    tol,
                    &[y.clone(), g.clone()],
                    |t| {
                        let r = t[0].relu_grad_with_bias_grad(&t[1])?;
                        Ok(if out == 0 { r.0 } else { r.1 })
                    },
                );
            }
            let (yg, gg) = (y.to_device(&dev).unwrap(), g.to_device(&dev).unwrap());
            let (gz, bias) = yg.relu_grad_with_bias_grad(&gg).unwrap();
            let gz_two = yg.unary_grad(&gg, UnaryOp::Relu, 0.0).unwrap();
            let lead: Vec<isize> = (0..shape.len() as isize - 1).collect();
            let bias_two = if lead.is_empty() { gz_two.clone() } else { gz_two.sum(&lead, false).unwrap() };
            let bits = |t: &Tensor| {
                t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            assert_eq!(bits(&gz), bits(&gz_two), "{shape:?} {dt}");
            assert_eq!(bits(&bias), bits(&bias_two), "{shape:?} {dt}");
            assert_eq!(bias.dims(), &[*shape.last().unwrap()]);
        }
    }
    // a transposed view: the two ops
    let y = rand_signed(499, &[40, 30], 0.0, 2.0).relu().unwrap();
    let g = rand_signed(500, &[40, 30], 0.1, 3.0);
    agree("relu_grad_with_bias_grad of views", dev, 1e-5, &[y, g], |t| {
        Ok(t[0].t()?.relu_grad_with_bias_grad(&t[1].t()?)?.1)
    });
}

#[test]
fn reductions_over_axes() {
    let Some(dev) = gpu("reductions_over_axes") else { return };
    let x = rand_signed(400, &[6, 7, 129], 0.1, 3.0);
    let ops = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min, ReduceOp::Var];
    let axes: [&[isize]; 6] = [&[], &[0], &[1], &[-1], &[0, 2], &[1, 2]];
    for op in ops {
        for ax in axes {
            for keepdim in [false, true] {
                agree(&format!("{} {ax:?} keepdim={keepdim}", op.name()), dev, 1e-5, std::slice::from_ref(&x), |t| {
                    t[0].reduce(op, ax, keepdim)
                });
            }
        }
        agree(&format!("{} of a transposed view", op.name()), dev, 1e-5, std::slice::from_ref(&x), |t| {
            t[0].transpose(0, 2)?.reduce(op, &[1], false)
        });
        agree(&format!("{} of a view at an offset", op.name()), dev, 1e-5, std::slice::from_ref(&x), |t| {
            t[0].narrow(0, 2, 3)?.reduce(op, &[0], false)
        });
        // F16/BF16 read in their own storage, in place or copied first, rows or columns
        for dt in [DType::F16, DType::BF16] {
            for ax in axes {
                agree(&format!("{} {dt} {ax:?}", op.name()), dev, 1e-2, &[x.to_dtype(dt).unwrap()], |t| {
                    let r = t[0].reduce(op, ax, false)?;
                    assert_eq!(r.dtype(), dt, "{} keeps {dt}", op.name());
                    Ok(r)
                });
            }
        }
    }
    for op in [ReduceOp::ArgMax, ReduceOp::ArgMin] {
        for ax in [0isize, 1, 2, -1] {
            agree(&format!("{} axis {ax}", op.name()), dev, 0.0, std::slice::from_ref(&x), |t| {
                t[0].reduce(op, &[ax], false)
            });
            // half storage: exact (the values are widened exactly)
            agree(&format!("{} bf16 axis {ax}", op.name()), dev, 0.0, &[x.to_dtype(DType::BF16).unwrap()], |t| {
                t[0].reduce(op, &[ax], false)
            });
        }
    }
    // ties go to the first index; U8 sums are I64, as on the CPU
    let ties = rand(401, &[5, 40], 0.0, 4.0).to_dtype(DType::U8).unwrap();
    for op in [ReduceOp::ArgMax, ReduceOp::ArgMin, ReduceOp::Max, ReduceOp::Min, ReduceOp::Sum] {
        agree(&format!("{} u8", op.name()), dev, 0.0, std::slice::from_ref(&ties), |t| t[0].reduce(op, &[1], false));
    }
    let big = Tensor::full(200.0, (3, 4), DType::U8, &Device::Cpu).unwrap();
    agree("u8 sum to i64", dev, 0.0, std::slice::from_ref(&big), |t| t[0].sum(&[1], false));
    agree("u8 sum of a transposed view", dev, 0.0, &[big], |t| t[0].t()?.sum(&[0], true));
    // I64 and F64 accumulate in f64 as on the CPU: I64 exactly (integer sums), F64 up to the
    // summation order (its mean: the sum divided by n); rows, columns, copied views. (Integer
    // mean and variance are refused on every device.)
    let ints = rand(402, &[6, 7, 129], -1000.0, 1000.0).to_dtype(DType::I64).unwrap();
    let wide = x.to_dtype(DType::F64).unwrap().mul_scalar(1.0 + 1e-9).unwrap(); // not f32 values
    let all_but_var = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min, ReduceOp::ArgMax, ReduceOp::ArgMin];
    for op in all_but_var {
        let arg = matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin);
        let op_axes: &[&[isize]] = if arg { &[&[0], &[1], &[-1]] } else { &axes };
        for &ax in op_axes {
            if op != ReduceOp::Mean {
                agree(&format!("{} i64 {ax:?}", op.name()), dev, 0.0, std::slice::from_ref(&ints), |t| {
                    let r = t[0].reduce(op, ax, false)?;
                    assert_eq!(r.dtype(), DType::I64);
                    Ok(r)
                });
            }
            let tol = if matches!(op, ReduceOp::Sum | ReduceOp::Mean) { 1e-14 } else { 0.0 };
            agree(&format!("{} f64 {ax:?}", op.name()), dev, tol, std::slice::from_ref(&wide), |t| {
                t[0].reduce(op, ax, true)
            });
        }
        agree(&format!("{} f64 of a transposed view", op.name()), dev, 1e-14, std::slice::from_ref(&wide), |t| {
            t[0].transpose(0, 2)?.reduce(op, &[1], false)
        });
    }
    // F64 variance: the CPU's two passes in f64 (the mean broadcast over trailing dims)
    for ax in axes {
        agree(&format!("var f64 {ax:?}"), dev, 1e-13, std::slice::from_ref(&wide), |t| t[0].var(ax, false));
    }
    agree("var f64 of a transposed view", dev, 1e-13, std::slice::from_ref(&wide), |t| {
        t[0].transpose(0, 2)?.var(&[1, 2], true)
    });
    // I64 beyond f32's 24 bits (f32 accumulation would be off), and a transposed view
    let large = Tensor::from_vec(vec![100_000_001i64, 100_000_002, 100_000_004, -7, 2, 0], (2, 3)).unwrap();
    for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min, ReduceOp::ArgMax, ReduceOp::ArgMin] {
        agree(&format!("{} i64 of a transposed view", op.name()), dev, 0.0, std::slice::from_ref(&ints), |t| {
            t[0].transpose(0, 2)?.reduce(op, &[1], false)
        });
        agree(&format!("{} of large i64", op.name()), dev, 0.0, std::slice::from_ref(&large), |t| {
            t[0].reduce(op, &[1], false)
        });
    }
}

#[test]
fn softmax_and_log_softmax() {
    let Some(dev) = gpu("softmax_and_log_softmax") else { return };
    let x = rand_signed(500, &[9, 10, 257], 0.1, 6.0);
    for axis in [-1isize, 0, 1] {
        agree(&format!("softmax axis {axis}"), dev, 1e-5, std::slice::from_ref(&x), |t| t[0].softmax(axis));
        agree(&format!("log_softmax axis {axis}"), dev, 1e-5, std::slice::from_ref(&x), |t| t[0].log_softmax(axis));
    }
    agree("softmax bf16", dev, 1e-2, &[x.to_dtype(DType::BF16).unwrap()], |t| t[0].softmax(-1));
    agree("softmax wide rows", dev, 1e-5, &[rand_signed(501, &[3, 5000], 0.1, 4.0)], |t| t[0].softmax(-1));
    // F64: the CPU's formulas in f64 (composed from the wide kernels), any axis
    let x64 = x.to_dtype(DType::F64).unwrap().mul_scalar(1.0 + 1e-9).unwrap();
    for axis in [-1isize, 0, 1] {
        agree(&format!("softmax f64 axis {axis}"), dev, 1e-13, std::slice::from_ref(&x64), |t| t[0].softmax(axis));
        agree(&format!("log_softmax f64 axis {axis}"), dev, 1e-13, std::slice::from_ref(&x64), |t| {
            t[0].log_softmax(axis)
        });
    }
}

/// The fused softmax cross-entropy (one `softmax_xent_*` launch): losses and gradient agree
/// with the CPU for class indices and probabilities, F32 and BF16 logits (F64: the op
/// chain), wide rows and a transposed view (bad class indices: `cuda_index_errors.rs`);
/// BF16 logits give the F32 results of casting them first, bit for bit.
#[test]
fn softmax_cross_entropy_fused() {
    let Some(dev) = gpu("softmax_cross_entropy_fused") else { return };
    let labels = |rows: usize, c: usize| {
        Tensor::from_vec((0..rows as i64).map(|r| (r * 5 + 3) % c as i64).collect::<Vec<_>>(), rows).unwrap()
    };
    let cases = [
        ("classes", rand_signed(510, &[130, 10], 0.1, 6.0), labels(130, 10)),
        ("wide rows", rand_signed(511, &[3, 3000], 0.1, 4.0), labels(3, 3000)),
        ("probabilities", rand_signed(512, &[64, 7], 0.1, 6.0), rand(513, &[64, 7], 0.0, 1.0)),
        ("transposed", rand_signed(514, &[10, 33], 0.1, 6.0).t().unwrap(), labels(33, 10)),
    ];
    for (case, x, t) in cases {
        // F64 runs the op chain on CUDA (no fused f64 kernel): the CPU's values to rounding
        for (dt, tol) in [(DType::F32, 1e-5), (DType::BF16, 1e-2), (DType::F64, 1e-13)] {
            let x = x.to_dtype(dt).unwrap();
            let t = if t.dtype().is_float() { t.to_dtype(dt).unwrap() } else { t.clone() };
            for (out, what) in [(0, "loss"), (1, "grad"), (2, "probs")] {
                agree(&format!("softmax_cross_entropy {case} {dt} {what}"), dev, tol, &[x.clone(), t.clone()], |v| {
                    let r = v[0].softmax_cross_entropy_with(&v[1], Some(0.5), out == 2)?;
                    Ok(match out {
                        0 => r.loss,
                        1 => r.grad.expect("asked for"),
                        _ => r.probs.expect("asked for"),
                    })
                });
            }
            // the mean of the losses: the kernel's own for F32 (no reduction launch), the
            // CPU's value to rounding; the same bits every time
            agree(&format!("softmax_cross_entropy {case} {dt} mean"), dev, tol, &[x.clone(), t.clone()], |v| {
                v[0].softmax_cross_entropy_with(&v[1], None, false)?.mean()
            });
            let (xg, tg) = (x.to_device(&dev).unwrap(), t.to_device(&dev).unwrap());
            let means: Vec<Tensor> = (0..2)
                .map(|_| xg.softmax_cross_entropy_with(&tg, Some(0.5), false).unwrap())
                .map(|r| {
                    assert_eq!(r.mean.is_some(), dt != DType::F64, "{case} {dt}: a fused mean but for F64");
                    r.mean().unwrap()
                })
                .collect();
            let scalar = |t: &Tensor| t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap();
            assert_eq!(scalar(&means[0]).to_bits(), scalar(&means[1]).to_bits(), "{case} {dt}");
            // the probabilities from the loss's kernel are the softmax kernel's bits, with
            // or without the gradient; the loss and gradient do not depend on them
            // (BF16 logits: F32 results, the bits of the logits cast to F32 first)
            let plain = xg.softmax_cross_entropy_with(&tg, Some(0.5), false).unwrap();
            let bits = |t: &Tensor| t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
            let wide = if dt == DType::F64 { xg.clone() } else { xg.to_dtype(DType::F32).unwrap() };
            let t_wide = if tg.dtype() == DType::BF16 { tg.to_dtype(DType::F32).unwrap() } else { tg.clone() };
            let cast_first = wide.softmax_cross_entropy_with(&t_wide, Some(0.5), false).unwrap();
            assert_eq!(plain.loss.dtype(), wide.dtype(), "{case} {dt}");
            assert_eq!(bits(&plain.loss), bits(&cast_first.loss), "{case} {dt}: the loss of the logits cast first");
            assert_eq!(bits(plain.grad.as_ref().unwrap()), bits(cast_first.grad.as_ref().unwrap()), "{case} {dt}");
            for scale in [None, Some(0.5)] {
                let r = xg.softmax_cross_entropy_with(&tg, scale, true).unwrap();
                assert_eq!(bits(&r.probs.unwrap()), bits(&wide.softmax(-1).unwrap()), "{case} {dt}");
                assert_eq!(bits(&r.loss), bits(&plain.loss), "{case} {dt}");
                if scale.is_some() {
                    assert_eq!(bits(&r.grad.unwrap()), bits(plain.grad.as_ref().unwrap()), "{case} {dt}");
                }
            }
        }
    }
}

#[test]
fn matmul_shapes_layouts_and_precisions() {
    let Some(dev) = gpu("matmul_shapes_layouts_and_precisions") else { return };
    let a = rand_signed(600, &[67, 129], 0.1, 1.0);
    let b = rand_signed(601, &[129, 35], 0.1, 1.0);
    agree("matmul 67x129x35", dev, 1e-5, &[a.clone(), b.clone()], |t| t[0].matmul(&t[1]));
    let at = rand_signed(602, &[129, 67], 0.1, 1.0);
    let bt = rand_signed(603, &[35, 129], 0.1, 1.0);
    agree("matmul A^T", dev, 1e-5, &[at.clone(), b.clone()], |t| t[0].t()?.matmul(&t[1]));
    agree("matmul B^T", dev, 1e-5, &[a.clone(), bt.clone()], |t| t[0].matmul(&t[1].t()?));
    agree("matmul A^T B^T", dev, 1e-5, &[at, bt], |t| t[0].t()?.matmul(&t[1].t()?));
    agree("matmul sliced rows", dev, 1e-5, &[a.clone(), b.clone()], |t| {
        t[0].narrow(1, 1, 100)?.matmul(&t[1].narrow(0, 5, 100)?)
    });
    let x = rand_signed(604, &[3, 17, 33], 0.1, 1.0);
    let y = rand_signed(605, &[3, 33, 9], 0.1, 1.0);
    agree("batched", dev, 1e-5, &[x.clone(), y.clone()], |t| t[0].matmul(&t[1]));
    agree("batched, transposed rhs", dev, 1e-5, &[x.clone(), y.clone()], |t| {
        t[0].matmul(&t[1].transpose(1, 2)?.contiguous()?.transpose(1, 2)?)
    });
    let w = rand_signed(606, &[33, 9], 0.1, 1.0);
    agree("batched x shared matrix", dev, 1e-5, &[x.clone(), w], |t| t[0].matmul(&t[1]));
    let p = rand_signed(607, &[2, 1, 5, 7], 0.1, 1.0);
    let q = rand_signed(608, &[3, 7, 4], 0.1, 1.0);
    agree("broadcast batch dims", dev, 1e-5, &[p, q], |t| t[0].matmul(&t[1]));
    agree("permuted batch (copied)", dev, 1e-5, &[rand_signed(609, &[17, 3, 33], 0.1, 1.0), y.clone()], |t| {
        t[0].permute(&[1, 0, 2])?.matmul(&t[1])
    });
    agree(
        "k = 1 outer product",
        dev,
        1e-5,
        &[rand_signed(610, &[8, 1], 0.1, 1.0), rand_signed(611, &[1, 6], 0.1, 1.0)],
        |t| t[0].matmul(&t[1]),
    );
    // TF32 (opt-in, per thread) and the half types on tensor cores
    let big_a = rand_signed(612, &[130, 257], 0.1, 1.0);
    let big_b = rand_signed(613, &[257, 70], 0.1, 1.0);
    keel_tensor::cuda::with_tf32(true, || {
        agree("matmul tf32", dev, 1e-3, &[big_a.clone(), big_b.clone()], |t| t[0].matmul(&t[1]));
    });
    for dt in [DType::F16, DType::BF16] {
        let (x, y) = (big_a.to_dtype(dt).unwrap(), big_b.to_dtype(dt).unwrap());
        agree(&format!("matmul {dt}"), dev, 1e-2, &[x.clone(), y.clone()], |t| t[0].matmul(&t[1]));
        agree(&format!("matmul {dt} A^T"), dev, 1e-2, &[x, y], |t| t[0].t()?.contiguous()?.t()?.matmul(&t[1]));
        // rows of a multiple of 8 elements: the cp.async-pipelined tensor-core kernel
        let (x, y) = (rand_signed(614, &[2, 96, 136], 0.1, 1.0), rand_signed(615, &[2, 136, 72], 0.1, 1.0));
        let (x, y) = (x.to_dtype(dt).unwrap(), y.to_dtype(dt).unwrap());
        agree(&format!("matmul {dt} aligned, batched"), dev, 1e-2, &[x.clone(), y.clone()], |t| t[0].matmul(&t[1]));
        agree(&format!("matmul {dt} aligned, B^T"), dev, 1e-2, &[x, y], |t| {
            t[0].matmul(&t[1].transpose(1, 2)?.contiguous()?.transpose(1, 2)?)
        });
    }
    // F64 (the plain f64 kernel): tails of its 64x64 tile and 16-deep k-tiles, the four
    // transpose forms, batches (one matrix broadcast, or one per batch), and matmul_bias,
    // which runs F64's bias add and ReLU as their own ops
    let f64s = |seed, shape: &[usize]| {
        rand_signed(seed, shape, 0.1, 1.0).to_dtype(DType::F64).unwrap().mul_scalar(1.0 + 1e-9).unwrap()
    };
    let (a, b) = (f64s(616, &[67, 129]), f64s(617, &[129, 35]));
    agree("matmul f64", dev, 1e-13, &[a.clone(), b.clone()], |t| t[0].matmul(&t[1]));
    let (at, bt) = (f64s(618, &[129, 67]), f64s(619, &[35, 129]));
    agree("matmul f64 A^T", dev, 1e-13, &[at.clone(), b.clone()], |t| t[0].t()?.matmul(&t[1]));
    agree("matmul f64 B^T", dev, 1e-13, &[a.clone(), bt.clone()], |t| t[0].matmul(&t[1].t()?));
    agree("matmul f64 A^T B^T", dev, 1e-13, &[at, bt], |t| t[0].t()?.matmul(&t[1].t()?));
    let (x, w) = (f64s(620, &[3, 17, 33]), f64s(621, &[33, 9]));
    agree("matmul f64 batched x shared matrix", dev, 1e-13, &[x.clone(), w], |t| t[0].matmul(&t[1]));
    agree("matmul f64 batched", dev, 1e-13, &[x, f64s(622, &[3, 33, 9])], |t| t[0].matmul(&t[1]));
    let bias = f64s(623, &[35]);
    agree("matmul_bias_relu f64", dev, 1e-13, &[a, b, bias], |t| t[0].matmul_bias_relu(&t[1], &t[2]));
}

/// `conv2d_bias_relu` on CUDA (bias and ReLU in the convolution's epilogue; F16/BF16 add a
/// bias of their type to the rounded output) equals conv2d, add and relu there, bit for bit.
fn conv_bias_relu_is_the_op_chain(dev: &Device, xkb: [Tensor; 3], p: &Conv2dParams, what: &str) {
    let [x, k, b] = xkb.map(|t| t.to_device(dev).unwrap());
    let fused = x.conv2d_bias_relu(&k, &b, p).unwrap();
    let chain = x.conv2d_with(&k, p).unwrap().add(&b).unwrap().unary(UnaryOp::Relu, 0.0).unwrap();
    check(&format!("{what} {}: fused bias relu vs the three ops", x.dtype()), &fused, &chain, 0.0);
}

/// The three F64 convolution passes (inputs of `x`, `k`, `dy`'s shapes and signs, all 53 bits
/// used) agree with the CPU to f64 rounding (both sum in f64, in other orders).
fn conv_f64_agrees(
    dev: Device,
    [x, k, dy]: [&Tensor; 3],
    st: (usize, usize),
    pad: Padding,
    dil: (usize, usize),
    what: &str,
) {
    let (x, k, dy) = (f64_like(x, 1), f64_like(k, 2), f64_like(dy, 3));
    let p = Conv2dParams::new("conv2d", x.shape(), k.shape(), st, pad, dil).unwrap();
    agree(&format!("{what} forward F64"), dev, 1e-14, &[x.clone(), k.clone()], |t| t[0].conv2d(&t[1], st, pad, dil));
    agree(&format!("{what} grad input F64"), dev, 1e-14, &[dy.clone(), k], |t| t[0].conv2d_grad_input(&t[1], &p));
    agree(&format!("{what} grad kernel F64"), dev, 1e-14, &[x, dy], |t| t[0].conv2d_grad_kernel(&t[1], &p));
}

#[test]
fn conv2d_forward_and_grads() {
    let Some(dev) = gpu("conv2d_forward_and_grads") else { return };
    // (input, kernel, stride, padding, dilation)
    let cases: [([usize; 4], [usize; 4], (usize, usize), Padding, (usize, usize)); 5] = [
        ([2, 9, 11, 3], [3, 3, 3, 5], (1, 1), Padding::Valid, (1, 1)),
        ([2, 9, 11, 3], [3, 3, 3, 5], (2, 2), Padding::Same, (1, 1)),
        ([2, 10, 8, 4], [3, 2, 4, 8], (1, 2), Padding::Same, (1, 1)),
        ([1, 12, 12, 2], [3, 3, 2, 3], (1, 1), Padding::Valid, (2, 2)),
        ([3, 7, 7, 8], [1, 1, 8, 16], (1, 1), Padding::Same, (1, 1)),
    ];
    for (i, (xs, ks, st, pad, dil)) in cases.into_iter().enumerate() {
        let s = 700 + 10 * i as u64;
        let x = rand_signed(s, &xs, 0.1, 1.0);
        let k = rand_signed(s + 1, &ks, 0.1, 1.0);
        let p = Conv2dParams::new("conv2d", x.shape(), k.shape(), st, pad, dil).unwrap();
        let dy = rand_signed(s + 2, p.out_shape().dims(), 0.1, 1.0);
        let what = format!("conv2d case {i} ({xs:?} * {ks:?}, stride {st:?}, {pad:?}, dilation {dil:?})");
        agree(&format!("{what} forward"), dev, 1e-5, &[x.clone(), k.clone()], |t| t[0].conv2d(&t[1], st, pad, dil));
        agree(&format!("{what} grad input"), dev, 1e-5, &[dy.clone(), k.clone()], |t| {
            t[0].conv2d_grad_input(&t[1], &p)
        });
        agree(&format!("{what} grad kernel"), dev, 1e-5, &[x.clone(), dy.clone()], |t| {
            t[0].conv2d_grad_kernel(&t[1], &p)
        });
        // fused conv + bias + ReLU: agrees with the CPU, and equals the unfused ops on CUDA bit for bit
        let b = rand_signed(s + 3, &[ks[3]], 0.1, 1.0);
        agree(&format!("{what} fused bias relu"), dev, 1e-5, &[x.clone(), k.clone(), b.clone()], |t| {
            t[0].conv2d_bias_relu(&t[1], &t[2], &p)
        });
        for dt in [DType::F32, DType::F16, DType::BF16] {
            conv_bias_relu_is_the_op_chain(&dev, [&x, &k, &b].map(|t| t.to_dtype(dt).unwrap()), &p, &what);
        }
        let (xb, kb) = (x.to_dtype(DType::BF16).unwrap(), k.to_dtype(DType::BF16).unwrap());
        agree(&format!("{what} forward bf16"), dev, 1e-2, &[xb, kb], |t| t[0].conv2d(&t[1], st, pad, dil));
        conv_f64_agrees(dev, [&x, &k, &dy], st, pad, dil, &what);
    }
    // F64 with both GEMM dimensions over the f64 kernels' 64-wide tile and k over many k-tiles
    let (x, k) = (rand_signed(790, &[2, 5, 6, 67], 0.1, 1.0), rand_signed(791, &[3, 3, 67, 70], 0.1, 1.0));
    let p = Conv2dParams::new("conv2d", x.shape(), k.shape(), (1, 1), Padding::Same, (1, 1)).unwrap();
    let dy = rand_signed(792, p.out_shape().dims(), 0.1, 1.0);
    conv_f64_agrees(dev, [&x, &k, &dy], (1, 1), Padding::Same, (1, 1), "conv2d 67 -> 70 channels");
    // channels in multiples of 8: F16/BF16 take the tensor-core kernels (all three passes)
    let aligned: [([usize; 4], [usize; 4], (usize, usize), Padding, (usize, usize)); 2] = [
        ([2, 9, 11, 8], [3, 3, 8, 16], (2, 2), Padding::Same, (1, 1)),
        ([2, 10, 8, 16], [3, 2, 16, 8], (1, 1), Padding::Valid, (2, 1)),
    ];
    for (i, (xs, ks, st, pad, dil)) in aligned.into_iter().enumerate() {
        let s = 760 + 10 * i as u64;
        let x = rand_signed(s, &xs, 0.1, 1.0);
        let k = rand_signed(s + 1, &ks, 0.1, 1.0);
        let p = Conv2dParams::new("conv2d", x.shape(), k.shape(), st, pad, dil).unwrap();
        let dy = rand_signed(s + 2, p.out_shape().dims(), 0.1, 1.0);
        for dt in [DType::F16, DType::BF16] {
            let [x, k, dy] = [&x, &k, &dy].map(|t| t.to_dtype(dt).unwrap());
            let what = format!("tensor-core conv2d {dt} case {i}");
            agree(&format!("{what} forward"), dev, 1e-2, &[x.clone(), k.clone()], |t| t[0].conv2d(&t[1], st, pad, dil));
            agree(&format!("{what} grad input"), dev, 1e-2, &[dy.clone(), k.clone()], |t| {
                t[0].conv2d_grad_input(&t[1], &p)
            });
            agree(&format!("{what} grad kernel"), dev, 1e-2, &[x.clone(), dy.clone()], |t| {
                t[0].conv2d_grad_kernel(&t[1], &p)
            });
            let b = rand_signed(s + 3, &[ks[3]], 0.1, 1.0).to_dtype(dt).unwrap();
            conv_bias_relu_is_the_op_chain(&dev, [x.clone(), k.clone(), b], &p, &what);
        }
    }
    // a batch large enough for the split-K grad-kernel path
    let x = rand_signed(790, &[16, 28, 28, 4], 0.1, 1.0);
    let k = rand_signed(791, &[3, 3, 4, 8], 0.1, 1.0);
    let p = Conv2dParams::new("conv2d", x.shape(), k.shape(), (1, 1), Padding::Same, (1, 1)).unwrap();
    let dy = rand_signed(792, p.out_shape().dims(), 0.1, 1.0);
    agree("conv2d split-K grad kernel", dev, 1e-5, &[x, dy], |t| t[0].conv2d_grad_kernel(&t[1], &p));
}

#[test]
fn pooling_forward_and_grads() {
    let Some(dev) = gpu("pooling_forward_and_grads") else { return };
    let x = rand_signed(800, &[2, 9, 11, 3], 0.1, 2.0);
    for (pool, st, pad) in
        [((2, 2), (2, 2), Padding::Valid), ((3, 3), (2, 2), Padding::Same), ((2, 3), (1, 2), Padding::Same)]
    {
        let what = format!("pool {pool:?} stride {st:?} {pad:?}");
        agree(&format!("max {what}"), dev, 0.0, std::slice::from_ref(&x), |t| Ok(t[0].max_pool2d(pool, st, pad)?.0));
        agree(&format!("argmax {what}"), dev, 0.0, std::slice::from_ref(&x), |t| Ok(t[0].max_pool2d(pool, st, pad)?.1));
        agree(&format!("avg {what}"), dev, 1e-5, std::slice::from_ref(&x), |t| t[0].avg_pool2d(pool, st, pad));
        let p = Pool2dParams::new("pool", x.shape(), pool, st, pad).unwrap();
        let dy = rand_signed(801, p.out_shape().dims(), 0.1, 1.0);
        agree(&format!("max grad {what}"), dev, 1e-5, &[x.clone(), dy.clone()], |t| {
            let (_, idx) = t[0].max_pool2d(pool, st, pad)?;
            t[1].max_pool2d_grad(&idx, &p)
        });
        agree(&format!("avg grad {what}"), dev, 1e-5, std::slice::from_ref(&dy), |t| t[0].avg_pool2d_grad(&p));
        // F16/BF16 pool in their own storage (f32 inside, one rounding): max and argmax
        // exact, sums within the half type's rounding
        for dt in [DType::F16, DType::BF16] {
            let (xh, dyh) = (x.to_dtype(dt).unwrap(), dy.to_dtype(dt).unwrap());
            let one = std::slice::from_ref(&xh);
            agree(&format!("max {what} {dt}"), dev, 0.0, one, |t| Ok(t[0].max_pool2d(pool, st, pad)?.0));
            agree(&format!("argmax {what} {dt}"), dev, 0.0, one, |t| Ok(t[0].max_pool2d(pool, st, pad)?.1));
            agree(&format!("avg {what} {dt}"), dev, 1e-2, one, |t| t[0].avg_pool2d(pool, st, pad));
            agree(&format!("max grad {what} {dt}"), dev, 1e-2, &[xh.clone(), dyh.clone()], |t| {
                let (_, idx) = t[0].max_pool2d(pool, st, pad)?;
                t[1].max_pool2d_grad(&idx, &p)
            });
            agree(&format!("avg grad {what} {dt}"), dev, 1e-2, std::slice::from_ref(&dyh), |t| {
                t[0].avg_pool2d_grad(&p)
            });
            let y = xh.to_device(&dev).unwrap().max_pool2d(pool, st, pad).unwrap().0;
            assert_eq!(y.dtype(), dt, "{what}: max_pool2d keeps {dt}");
        }
        // F64 pools in f64 in the CPU's order: the same bits
        let (x64, dy64) = (f64_like(&x, 802), f64_like(&dy, 803));
        let one = std::slice::from_ref(&x64);
        agree(&format!("max {what} F64"), dev, 0.0, one, |t| Ok(t[0].max_pool2d(pool, st, pad)?.0));
        agree(&format!("argmax {what} F64"), dev, 0.0, one, |t| Ok(t[0].max_pool2d(pool, st, pad)?.1));
        agree(&format!("avg {what} F64"), dev, 0.0, one, |t| t[0].avg_pool2d(pool, st, pad));
        agree(&format!("max grad {what} F64"), dev, 0.0, &[x64.clone(), dy64.clone()], |t| {
            let (_, idx) = t[0].max_pool2d(pool, st, pad)?;
            t[1].max_pool2d_grad(&idx, &p)
        });
        agree(&format!("avg grad {what} F64"), dev, 0.0, std::slice::from_ref(&dy64), |t| t[0].avg_pool2d_grad(&p));
    }
}

#[test]
fn indexing_and_concat() {
    let Some(dev) = gpu("indexing_and_concat") else { return };
    let x = rand_signed(900, &[6, 5, 4], 0.1, 2.0);
    let idx = Tensor::from_vec(vec![3i64, 0, 3, 5, 1], 5).unwrap();
    agree("index_select axis 0", dev, 0.0, &[x.clone(), idx.clone()], |t| t[0].index_select(&t[1], 0));
    let idx1 = Tensor::from_vec(vec![4i64, 4, 0], 3).unwrap();
    agree("index_select axis 1", dev, 0.0, &[x.clone(), idx1.clone()], |t| t[0].index_select(&t[1], 1));
    agree("index_select of a view", dev, 0.0, &[x.clone(), idx1.clone()], |t| {
        t[0].transpose(0, 2)?.index_select(&t[1], 2)
    });
    for dt in [DType::F64, DType::I64, DType::U8, DType::BF16] {
        let xd = x.abs().unwrap().to_dtype(dt).unwrap();
        agree(&format!("index_select {dt}"), dev, 0.0, &[xd, idx.clone()], |t| t[0].index_select(&t[1], 0));
    }
    let src = rand_signed(901, &[5, 5, 4], 0.1, 2.0);
    let dims = Shape::from([6, 5, 4]);
    // the accumulating backwards add in index order from 0, as the CPU does: the same bits
    agree("index_add (repeated indices)", dev, 0.0, &[src.clone(), idx.clone()], |t| {
        t[0].index_add_into(&t[1], 0, &dims)
    });
    let gidx = rand(902, &[6, 3, 4], 0.0, 5.0).to_dtype(DType::I64).unwrap();
    agree("gather axis 1", dev, 0.0, &[x.clone(), gidx.clone()], |t| t[0].gather(&t[1], 1));
    let gsmall = rand(903, &[4, 2, 3], 0.0, 5.0).to_dtype(DType::I64).unwrap();
    agree("gather, index smaller outside the axis", dev, 0.0, &[x.clone(), gsmall.clone()], |t| t[0].gather(&t[1], 1));
    let s2 = rand_signed(904, &[6, 3, 4], 0.1, 2.0);
    agree("scatter_add axis 1", dev, 0.0, &[s2.clone(), gidx.clone()], |t| {
        t[0].scatter_add_into(&t[1], 1, &Shape::from([6, 5, 4]))
    });
    let s3 = rand_signed(905, &[4, 2, 3], 0.1, 2.0);
    agree("scatter_add into a larger output", dev, 0.0, &[s3.clone(), gsmall.clone()], |t| {
        t[0].scatter_add_into(&t[1], 1, &Shape::from([6, 5, 4]))
    });
    // F64 and I64 add in their own type, in the CPU's order: the same bits
    for (dt, tol) in [(DType::F64, 0.0), (DType::I64, 0.0)] {
        let scale = |t: &Tensor| t.mul_scalar(100.0).unwrap().to_dtype(dt).unwrap();
        agree(&format!("index_add {dt}"), dev, tol, &[scale(&src), idx.clone()], |t| {
            t[0].index_add_into(&t[1], 0, &dims)
        });
        agree(&format!("index_add {dt} of a view"), dev, tol, &[scale(&src), idx.clone()], |t| {
            t[0].transpose(0, 1)?.index_add_into(&t[1], 1, &Shape::from([5, 6, 4]))
        });
        agree(&format!("scatter_add {dt}"), dev, tol, &[scale(&s2), gidx.clone()], |t| {
            t[0].scatter_add_into(&t[1], 1, &Shape::from([6, 5, 4]))
        });
        agree(&format!("scatter_add {dt} into a larger output"), dev, tol, &[scale(&s3), gsmall.clone()], |t| {
            t[0].scatter_add_into(&t[1], 1, &Shape::from([6, 5, 4]))
        });
    }
    let labels = Tensor::from_vec(vec![2i64, 0, 9, 4, 4], 5).unwrap();
    agree("one_hot", dev, 0.0, &[labels], |t| t[0].one_hot(10, DType::F32));
    // out-of-range indices: tests/cuda_index_errors.rs (a process of its own)
    // concat
    let a = rand_signed(906, &[3, 4, 5], 0.1, 1.0);
    let b = rand_signed(907, &[3, 2, 5], 0.1, 1.0);
    let c = rand_signed(908, &[5, 1, 3], 0.1, 1.0);
    agree("concat axis 1 (one part transposed)", dev, 0.0, &[a.clone(), b.clone(), c.clone()], |t| {
        Tensor::concat(&[t[0].clone(), t[1].clone(), t[2].permute(&[2, 1, 0])?], 1)
    });
    agree("concat axis 0", dev, 0.0, &[a.clone(), a.clone()], |t| Tensor::concat(&[t[0].clone(), t[1].clone()], 0));
    agree("stack i64", dev, 0.0, &[idx.clone(), idx.clone()], |t| Tensor::stack(&[t[0].clone(), t[1].clone()], 1));
    // more pieces than one concat launch takes (64), some empty, some strided: a sequence
    // model's timesteps stacked
    let steps: Vec<Tensor> = (0..150)
        .map(|k| match k % 10 {
            3 => rand_signed(1200 + k, &[4, 0], 0.1, 1.0),
            7 => rand_signed(1200 + k, &[3, 4], 0.1, 1.0).t().unwrap(),
            _ => rand_signed(1200 + k, &[4, 3], 0.1, 1.0),
        })
        .collect();
    let full: Vec<Tensor> = steps.iter().filter(|t| t.elem_count() > 0).cloned().collect();
    agree("stack of 135 timesteps", dev, 0.0, &full, |t| Tensor::stack(t, 1));
    agree("concat of 150 pieces, 15 empty among them", dev, 0.0, &steps, |t| Tensor::concat(t, 1));
}

#[test]
fn casts_between_all_dtypes() {
    let Some(dev) = gpu("casts_between_all_dtypes") else { return };
    let vals =
        vec![-300.7f64, -2.5, -1.0, -0.49, 0.0, 0.49, 1.5, 2.5, 127.6, 254.6, 255.5, 300.2, 65519.0, 1e10, -1e10];
    let base = Tensor::from_vec(vals, 15).unwrap();
    for from in DType::ALL {
        for to in DType::ALL {
            let x = base.to_dtype(from).unwrap();
            agree(&format!("cast {from} -> {to}"), dev, 0.0, &[x], |t| t[0].to_dtype(to));
        }
    }
    let nan = Tensor::from_vec(vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1.0], 4).unwrap();
    for to in [DType::F16, DType::BF16, DType::I64, DType::U8, DType::F64] {
        agree(&format!("cast non-finite f32 -> {to}"), dev, 0.0, std::slice::from_ref(&nan), |t| t[0].to_dtype(to));
    }
    // sign keeps NaN (and gives +-1 for the infinities) in every float dtype
    for dt in [DType::F32, DType::F16, DType::BF16, DType::F64] {
        let x = nan.to_dtype(dt).unwrap();
        agree(&format!("sign of non-finite {dt}"), dev, 0.0, std::slice::from_ref(&x), |t| t[0].sign());
    }
    agree("cast of a transposed view", dev, 0.0, &[rand_signed(1000, &[7, 9], 0.1, 100.0)], |t| {
        t[0].t()?.to_dtype(DType::BF16)
    });
}

/// `Tensor::to_dtype_many`: each result is `to_dtype`'s, bit for bit, on CUDA (where the
/// F32 <-> F16/BF16 casts of contiguous tensors share one launch per source dtype) and on the
/// CPU, for a list mixing sizes, source dtypes, a strided view and casts it does not batch.
#[test]
fn to_dtype_many_is_to_dtype_on_each() {
    let Some(dev) = gpu("to_dtype_many_is_to_dtype_on_each") else { return };
    let list = vec![
        rand_signed(1010, &[3, 5], 0.1, 100.0),
        rand_signed(1011, &[4097], 0.1, 100.0),
        rand_signed(1012, &[1], 0.1, 100.0).to_dtype(DType::BF16).unwrap(),
        rand_signed(1013, &[7, 9], 0.1, 100.0).t().unwrap(),
        Tensor::zeros((2, 0), DType::F32, &Device::Cpu).unwrap(),
        rand_signed(1014, &[6], 0.1, 100.0).to_dtype(DType::F16).unwrap(),
        rand_signed(1015, &[6], 0.1, 100.0).to_dtype(DType::I64).unwrap(),
        rand_signed(1016, &[5], 0.1, 100.0).to_dtype(DType::F64).unwrap(),
    ];
    for to in [DType::BF16, DType::F16, DType::F32] {
        let cpu = Tensor::to_dtype_many(&list, to).unwrap();
        let moved: Vec<Tensor> = list.iter().map(|t| t.to_device(&dev).unwrap()).collect();
        let gpu = Tensor::to_dtype_many(&moved, to).unwrap();
        for (k, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
            assert_eq!(c.to_vec_f64().unwrap(), list[k].to_dtype(to).unwrap().to_vec_f64().unwrap(), "CPU {k} -> {to}");
            check(&format!("to_dtype_many {k} -> {to}"), g, &moved[k].to_dtype(to).unwrap(), 0.0);
        }
    }
}

#[test]
fn transfers_creation_and_assign() {
    let Some(dev) = gpu("transfers_creation_and_assign") else { return };
    let x = rand_signed(1100, &[5, 6, 7], 0.1, 2.0);
    for dt in DType::ALL {
        let xd = x.to_dtype(dt).unwrap();
        let view = xd.permute(&[2, 0, 1]).unwrap().narrow(1, 1, 3).unwrap();
        let g = view.to_device(&dev).unwrap();
        assert_eq!(g.device(), dev);
        assert!(g.is_contiguous());
        let back = g.to_device(&Device::Cpu).unwrap();
        assert_eq!(back.to_vec_f64().unwrap(), view.to_vec_f64().unwrap(), "round trip {dt}");
        // strided view of a GPU tensor back to the host
        let gv = xd.to_device(&dev).unwrap().transpose(0, 2).unwrap();
        assert_eq!(
            gv.to_vec_f64().unwrap(),
            xd.transpose(0, 2).unwrap().to_vec_f64().unwrap(),
            "strided download {dt}"
        );
    }
    assert_eq!(x.to_device(&dev).unwrap().to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
    // creation on the device
    for dt in DType::ALL {
        let f = Tensor::full(2.75, (3, 4), dt, &dev).unwrap();
        check(&format!("full {dt}"), &f, &Tensor::full(2.75, (3, 4), dt, &Device::Cpu).unwrap(), 0.0);
    }
    check(
        "zeros",
        &Tensor::zeros(7, DType::F32, &dev).unwrap(),
        &Tensor::zeros(7, DType::F32, &Device::Cpu).unwrap(),
        0.0,
    );
    check(
        "empty",
        &Tensor::ones((0, 3), DType::F32, &dev).unwrap(),
        &Tensor::ones((0, 3), DType::F32, &Device::Cpu).unwrap(),
        0.0,
    );
    check(
        "arange",
        &Tensor::arange(0.0, 10.0, 0.5, DType::F32, &dev).unwrap(),
        &Tensor::arange(0.0, 10.0, 0.5, DType::F32, &Device::Cpu).unwrap(),
        0.0,
    );
    // rand_uniform is drawn by the Philox kernel: the CPU's bits, for any length (blocks
    // of 4 words, a ragged end), seed, range and dtype, with no host wait
    let cases =
        [(7, -1.0, 1.0, 165, DType::F32), (u64::MAX - 3, 0.0, 1.0, 4099, DType::F32), (42, -3.5, 0.25, 1, DType::F32)];
    let dtypes = [(7, 0.0, 1.0, 1030, DType::BF16), (9, -2.0, 2.0, 63, DType::F16), (11, 0.5, 9.0, 21, DType::F64)];
    for (seed, lo, hi, n, dt) in cases.into_iter().chain(dtypes) {
        let waits = keel_tensor::cuda::host_waits(dev);
        let ru = Tensor::rand_uniform(seed, lo, hi, n, dt, &dev).unwrap();
        if dt == DType::F32 {
            assert_eq!(keel_tensor::cuda::host_waits(dev), waits, "rand_uniform waited for the GPU");
        }
        let cpu = Tensor::rand_uniform(seed, lo, hi, n, dt, &Device::Cpu).unwrap();
        let (g, c) = (ru.to_vec_f64().unwrap(), cpu.to_vec_f64().unwrap());
        let first = g.iter().zip(&c).position(|(a, b)| a.to_bits() != b.to_bits());
        assert!(first.is_none(), "rand_uniform seed {seed} [{lo}, {hi}) n {n} {dt}: element {first:?} differs");
    }
    let rn = Tensor::rand_normal(7, 0.5, 2.0, (33, 5), DType::F32, &dev).unwrap();
    check(
        "rand_normal (bit-identical)",
        &rn,
        &Tensor::rand_normal(7, 0.5, 2.0, (33, 5), DType::F32, &Device::Cpu).unwrap(),
        0.0,
    );
    // assign: in-place update visible through every handle
    let p = x.to_device(&dev).unwrap();
    let alias = p.clone();
    let upd = p.mul_scalar(0.5).unwrap();
    p.assign(&upd).unwrap();
    check("assign", &alias, &x.mul_scalar(0.5).unwrap(), 1e-7);
    p.assign(&x.transpose(0, 2).unwrap().to_device(&dev).unwrap().transpose(0, 2).unwrap()).unwrap();
    check("assign from a view", &alias, &x, 0.0);
    assert!(matches!(p.assign(&x), Err(Error::DeviceMismatch { .. })));
    assert!(matches!(p.add(&x), Err(Error::DeviceMismatch { .. })));
    assert_eq!(Device::cuda_if_available(0), dev);
}

/// `launches` counts the calling thread's launches, and a kernel profile names each
/// kernel launched between `start_profile` and `finish_profile` with its launch count
/// (GEMM, generated elementwise kernels in their contiguous and strided forms); the
/// counts add up to the launches made, and a finished profile records nothing more.
#[test]
fn kernel_profile_counts_every_launch() {
    let Some(dev) = gpu("kernel_profile_counts_every_launch") else { return };
    let x = Tensor::rand_uniform(3, -1.0, 1.0, (48, 40), DType::F32, &dev).unwrap();
    let w = Tensor::rand_uniform(4, -1.0, 1.0, (40, 24), DType::F32, &dev).unwrap();
    let before = keel_tensor::cuda::launches(dev);
    keel_tensor::cuda::start_profile(dev).unwrap();
    let mut y = x.matmul(&w).unwrap();
    for _ in 0..3 {
        y = y.relu().unwrap();
    }
    let _z = y.t().unwrap().exp().unwrap(); // a transposed view: the strided form
    let rows = keel_tensor::cuda::finish_profile(dev).unwrap();
    let launched = keel_tensor::cuda::launches(dev) - before;
    assert_eq!(rows.iter().map(|r| r.launches).sum::<u64>(), launched, "{rows:?}");
    let count = |pred: &dyn Fn(&str) -> bool| rows.iter().filter(|r| pred(&r.kernel)).map(|r| r.launches).sum::<u64>();
    // (the suite may poison every output first: one fill launch per output)
    assert_eq!(count(&|k| !k.starts_with("fill")), 5, "one GEMM and four elementwise launches: {rows:?}");
    assert_eq!(count(&|k| k.starts_with("gemm_f32")), 1, "{rows:?}");
    assert_eq!(count(&|k| k.contains("relu") && !k.ends_with("_strided")), 3, "{rows:?}");
    assert_eq!(count(&|k| k.contains("exp") && k.ends_with("_strided")), 1, "{rows:?}");
    assert!(rows.iter().all(|r| r.total_ms >= 0.0 && r.total_ms.is_finite()), "{rows:?}");
    assert!(rows.windows(2).all(|p| p[0].total_ms >= p[1].total_ms), "longest first: {rows:?}");
    // finished: later launches are counted but not profiled
    let _ = y.relu().unwrap();
    assert!(keel_tensor::cuda::launches(dev) - before > launched);
    assert!(keel_tensor::cuda::finish_profile(dev).unwrap().is_empty());
    // the CPU has nothing to time
    keel_tensor::cuda::start_profile(Device::Cpu).unwrap();
    assert!(keel_tensor::cuda::finish_profile(Device::Cpu).unwrap().is_empty());
}

#[test]
fn lstm_cell_forward_and_backward() {
    let Some(dev) = gpu("lstm_cell_forward_and_backward") else { return };
    // 37 rows of 24 units: more elements than one block, a ragged tail; the input projection
    // is one timestep of a [batch, 3, 4 * units] tensor and one dh term a timestep of a
    // [batch, 2, units] one (both read in place)
    let (b, u) = (37, 24);
    let seq = rand_signed(1300, &[b, 3, 4 * u], 0.05, 3.0);
    let p = rand_signed(1305, &[b, 4 * u], 0.05, 1.0);
    let c0 = rand_signed(1301, &[b, u], 0.05, 2.0);
    let (dh, dc) = (rand_signed(1302, &[b, u], 0.05, 1.0), rand_signed(1303, &[b, u], 0.05, 1.0));
    let dseq = rand_signed(1306, &[b, 2, u], 0.05, 1.0);
    let inputs = [seq.clone(), p, c0.clone(), dh, dc, dseq];
    let flat = |ts: &[Tensor]| {
        Tensor::concat(&ts.iter().map(|t| t.reshape([t.elem_count()])).collect::<Result<Vec<_>, _>>()?, 0)
    };
    let x = |t: &Tensor| t.narrow(1, 1, 1)?.squeeze(1);
    // the backward from the forward's own gates and c
    let grad = |t: &[Tensor], dh: &[&Tensor], dc: Option<&Tensor>| {
        let (_, c, g) = x(&t[0])?.lstm_cell(Some(&t[1]), &t[2])?;
        let (dz, dc0) = g.lstm_cell_grad(&t[2], &c, dh, dc)?;
        flat(&[dz, dc0])
    };
    for (dt, tol) in [(DType::F32, 1e-5), (DType::F64, 1e-12), (DType::F16, 2e-3), (DType::BF16, 1e-2)] {
        let cast: Vec<Tensor> = inputs.iter().map(|t| t.to_dtype(dt).unwrap()).collect();
        agree(&format!("lstm_cell {dt}"), dev, tol, &cast, |t| {
            let (h, c, g) = x(&t[0])?.lstm_cell(Some(&t[1]), &t[2])?;
            flat(&[h, c, g])
        });
        agree(&format!("lstm_cell {dt}, no p"), dev, tol, &cast, |t| {
            let (h, c, g) = x(&t[0])?.lstm_cell(None, &t[2])?;
            flat(&[h, c, g])
        });
        agree(&format!("lstm_cell_grad {dt}"), dev, tol, &cast, |t| grad(t, &[&t[3]], Some(&t[4])));
        agree(&format!("lstm_cell_grad {dt}, dh only"), dev, tol, &cast, |t| grad(t, &[&t[3]], None));
        agree(&format!("lstm_cell_grad {dt}, dc only"), dev, tol, &cast, |t| grad(t, &[], Some(&t[4])));
        agree(&format!("lstm_cell_grad {dt}, three dh terms"), dev, tol, &cast, |t| {
            let strided = t[5].narrow(1, 1, 1)?.squeeze(1)?;
            grad(t, &[&t[3], &strided, &t[4]], Some(&t[4]))
        });
        let on = |t: &Tensor| t.to_device(&dev).unwrap();
        let (h, c, g) = x(&on(&cast[0])).unwrap().lstm_cell(None, &on(&cast[2])).unwrap();
        assert_eq!((h.dtype(), c.dtype(), g.dtype()), (dt, dt, dt), "lstm_cell keeps {dt}");
    }
    // a strided state (a view) gives the values of its contiguous copy
    let wide = rand_signed(1304, &[b, 2 * u], 0.05, 2.0);
    agree("lstm_cell of a strided c_prev", dev, 1e-5, &[seq.clone(), wide], |t| {
        let (h, c, g) = x(&t[0])?.lstm_cell(None, &t[1].narrow(1, 3, u)?)?;
        flat(&[h, c, g])
    });
    // the state on the CPU, the gates on the GPU: an error naming the op
    let e = x(&seq.to_device(&dev).unwrap()).unwrap().lstm_cell(None, &c0).unwrap_err().to_string();
    assert!(e.contains("lstm_cell"), "{e}");
}

#[test]
fn gru_cell_forward_and_backward() {
    let Some(dev) = gpu("gru_cell_forward_and_backward") else { return };
    // 37 rows of 24 units: more elements than one block, a ragged tail; the input projection
    // is one timestep of a [batch, 3, 3 * units] tensor (read in place, rows 9u apart)
    let (b, u) = (37, 24);
    let seq = rand_signed(1310, &[b, 3, 3 * u], 0.05, 3.0);
    let p = rand_signed(1311, &[b, 3 * u], 0.05, 3.0);
    let h0 = rand_signed(1312, &[b, u], 0.05, 2.0);
    let dh = rand_signed(1313, &[b, u], 0.05, 1.0);
    let inputs = [seq, p, h0, dh];
    let flat = |ts: &[Tensor]| {
        Tensor::concat(&ts.iter().map(|t| t.reshape([t.elem_count()])).collect::<Result<Vec<_>, _>>()?, 0)
    };
    let step = |t: &Tensor| t.narrow(1, 1, 1)?.squeeze(1);
    for (dt, tol) in [(DType::F32, 1e-5), (DType::F64, 1e-12), (DType::F16, 2e-3), (DType::BF16, 1e-2)] {
        let cast: Vec<Tensor> = inputs.iter().map(|t| t.to_dtype(dt).unwrap()).collect();
        agree(&format!("gru_cell {dt}"), dev, tol, &cast, |t| {
            let (h, g) = step(&t[0])?.gru_cell(&t[1], &t[2])?;
            flat(&[h, g])
        });
        agree(&format!("gru_cell_grad {dt}"), dev, tol, &cast, |t| {
            let (_, g) = step(&t[0])?.gru_cell(&t[1], &t[2])?;
            let (dx, dp, dh0) = g.gru_cell_grad(&t[1], &t[2], &[&t[3]])?;
            flat(&[dx, dp, dh0])
        });
        agree(&format!("gru_cell_grad {dt}, three dh terms"), dev, tol, &cast, |t| {
            let (_, g) = step(&t[0])?.gru_cell(&t[1], &t[2])?;
            let strided = t[0].narrow(1, 2, 1)?.squeeze(1)?.narrow(1, 5, u)?;
            let (dx, dp, dh0) = g.gru_cell_grad(&t[1], &t[2], &[&t[3], &strided, &t[2]])?;
            flat(&[dx, dp, dh0])
        });
        let on = |t: &Tensor| t.to_device(&dev).unwrap();
        let (h, g) = step(&on(&cast[0])).unwrap().gru_cell(&on(&cast[1]), &on(&cast[2])).unwrap();
        assert_eq!((h.dtype(), g.dtype()), (dt, dt), "gru_cell keeps {dt}");
    }
    // a strided recurrent projection and h_prev (views) give the values of their copies
    let (wide, h_wide) = (rand_signed(1314, &[b, 4 * u], 0.05, 2.0), rand_signed(1315, &[b, 2 * u], 0.05, 2.0));
    agree("gru_cell of strided operands", dev, 1e-5, &[inputs[0].clone(), wide, h_wide, inputs[3].clone()], |t| {
        let (p, h0) = (t[1].narrow(1, u, 3 * u)?, t[2].narrow(1, 5, u)?);
        let (h, g) = step(&t[0])?.gru_cell(&p, &h0)?;
        let (dx, dp, dh0) = g.gru_cell_grad(&p, &h0, &[&t[3]])?;
        flat(&[h, g, dx, dp, dh0])
    });
    // the projection on the GPU, the state on the CPU: an error naming the op
    let e = step(&inputs[0].to_device(&dev).unwrap())
        .unwrap()
        .gru_cell(&inputs[1].to_device(&dev).unwrap(), &inputs[2])
        .unwrap_err()
        .to_string();
    assert!(e.contains("gru_cell"), "{e}");
}

/// NaN propagates on CUDA as on the CPU: ReLU (the op, the fused add + ReLU, and the
/// bias + ReLU epilogues of the matmul and the convolution), maximum, minimum and clamp.
#[test]
fn nan_propagates_as_on_the_cpu() {
    let Some(dev) = gpu("nan_propagates_as_on_the_cpu") else { return };
    let with_nans = |seed: u64, shape: &[usize]| {
        let mut v = rand_signed(seed, shape, 0.05, 2.0).to_vec::<f32>().unwrap();
        for i in (0..v.len()).step_by(7) {
            v[i] = f32::NAN;
        }
        Tensor::from_vec(v, shape.to_vec()).unwrap()
    };
    let (x, y) = (with_nans(1200, &[6, 16]), rand_signed(1201, &[6, 16], 0.05, 2.0));
    agree("relu with NaN", dev, 0.0, std::slice::from_ref(&x), |t| t[0].relu());
    agree("maximum(x, y) with NaN", dev, 0.0, &[x.clone(), y.clone()], |t| t[0].maximum(&t[1]));
    agree("maximum(y, x) with NaN", dev, 0.0, &[y.clone(), x.clone()], |t| t[0].maximum(&t[1]));
    agree("minimum(y, x) with NaN", dev, 0.0, &[y.clone(), x.clone()], |t| t[0].minimum(&t[1]));
    agree("clamp with NaN", dev, 0.0, std::slice::from_ref(&x), |t| t[0].clamp(-0.5, 0.5));
    agree("add + relu with NaN", dev, 0.0, &[x.clone(), y.clone()], |t| {
        t[0].binary_unary(&t[1], BinaryOp::Add, UnaryOp::Relu, 0.0)
    });
    let (w, b) = (rand_signed(1202, &[16, 8], 0.05, 1.0), rand_signed(1203, &[8], 0.05, 1.0));
    agree("matmul + bias + relu with NaN", dev, 1e-5, &[x.clone(), w, b], |t| t[0].matmul_bias_relu(&t[1], &t[2]));
    let img = with_nans(1204, &[2, 9, 9, 3]);
    let (k, kb) = (rand_signed(1205, &[3, 3, 3, 4], 0.05, 1.0), rand_signed(1206, &[4], 0.05, 1.0));
    agree("conv2d + bias + relu with NaN", dev, 1e-5, &[img, k, kb], |t| {
        let p = keel_tensor::ops::conv::Conv2dParams::new(
            "conv2d",
            t[0].shape(),
            t[1].shape(),
            (1, 1),
            keel_tensor::Padding::Same,
            (1, 1),
        )?;
        t[0].conv2d_bias_relu(&t[1], &t[2], &p)
    });
}

/// I64 beyond 2^53 is exact on CUDA as on the CPU (compared as i64, not through f64): the
/// binary ops (wrapping add/sub/mul, saturating div and pow), sums (wrapping), max/min and
/// argmax/argmin in rows and columns, a U8 sum past 255 (I64), and I64 -> BF16/F16 casts
/// rounded once.
#[test]
fn i64_is_exact_above_2_pow_53() {
    let Some(dev) = gpu("i64_is_exact_above_2_pow_53") else { return };
    let p53 = 1i64 << 53;
    let on_both = |what: &str, inputs: &[Tensor], f: &dyn Fn(&[Tensor]) -> keel_tensor::Result<Tensor>| {
        let cpu = f(inputs).unwrap();
        let moved: Vec<Tensor> = inputs.iter().map(|t| t.to_device(&dev).unwrap()).collect();
        let gpu = f(&moved).unwrap();
        assert_eq!(gpu.dtype(), cpu.dtype(), "{what}");
        let gpu = gpu.to_device(&Device::Cpu).unwrap();
        match cpu.dtype() {
            DType::I64 => assert_eq!(gpu.to_vec::<i64>().unwrap(), cpu.to_vec::<i64>().unwrap(), "{what}"),
            _ => assert_eq!(gpu.to_vec_f64().unwrap(), cpu.to_vec_f64().unwrap(), "{what}"),
        }
        cpu
    };
    let a = Tensor::from_vec(vec![p53 + 1, i64::MAX, i64::MIN, 3 * p53 + 3, -7, 5, 0, -3], 8).unwrap();
    let b = Tensor::from_vec(vec![0i64, 1, 1, 3, 2, 0, 0, 41], 8).unwrap();
    for &op in BinaryOp::ALL {
        on_both(&format!("{} i64", op.name()), &[a.clone(), b.clone()], &|t| t[0].binary(&t[1], op));
    }
    let add = on_both("add", &[a.clone(), b.clone()], &|t| t[0].add(&t[1]));
    assert_eq!(add.to_vec::<i64>().unwrap()[..3], [p53 + 1, i64::MIN, i64::MIN + 1]);
    let m = Tensor::from_vec((0..64 * 33).map(|i| p53 + (i * 7919 % 4099)).collect::<Vec<i64>>(), (64, 33)).unwrap();
    for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min, ReduceOp::ArgMax, ReduceOp::ArgMin] {
        for ax in [0isize, 1] {
            on_both(&format!("{} i64 axis {ax}", op.name()), std::slice::from_ref(&m), &|t| {
                t[0].reduce(op, &[ax], false)
            });
        }
    }
    let s = on_both("sum [2^53, 1, 1]", &[Tensor::from_vec(vec![p53, 1, 1], 3).unwrap()], &|t| t[0].sum_all());
    assert_eq!(s.to_vec::<i64>().unwrap(), vec![p53 + 2]);
    let long = Tensor::from_vec(vec![p53 + 1; 20000], 20000).unwrap(); // a split reduction
    let s = on_both("long i64 sum", std::slice::from_ref(&long), &|t| t[0].sum_all());
    assert_eq!(s.to_vec::<i64>().unwrap(), vec![(p53 + 1).wrapping_mul(20000)]);
    let ones = Tensor::ones(300, DType::U8, &Device::Cpu).unwrap();
    let s = on_both("u8 sum", std::slice::from_ref(&ones), &|t| t[0].sum_all());
    assert_eq!((s.dtype(), s.to_vec::<i64>().unwrap()), (DType::I64, vec![300]));
    let w = (1i64 << 60) + (1 << 52) + 1;
    let c = Tensor::from_vec(vec![w, -w, (1 << 60) + (1 << 52), 2049, 65520, p53 + 1], 6).unwrap();
    for to in [DType::BF16, DType::F16, DType::F32] {
        on_both(&format!("cast i64 -> {to}"), std::slice::from_ref(&c), &|t| t[0].to_dtype(to));
    }
}

/// The gradient of `x ^ 0` wrt `x` is 0 at `x = 0` on CUDA too (not `0 * inf`).
#[test]
fn pow_grad_at_zero_exponent() {
    let Some(dev) = gpu("pow_grad_at_zero_exponent") else { return };
    for dt in [DType::F32, DType::F64, DType::F16, DType::BF16] {
        let x = Tensor::from_vec(vec![0.0f64, 0.0, 2.0, 0.0], 4).unwrap().to_dtype(dt).unwrap();
        let y = Tensor::from_vec(vec![0.0f64, 1.0, 0.0, 2.0], 4).unwrap().to_dtype(dt).unwrap();
        let g = Tensor::ones(4, dt, &Device::Cpu).unwrap();
        agree(&format!("pow grad {dt}"), dev, 0.0, &[x, y, g], |t| {
            t[0].binary_grad(&t[1], &t[2], BinaryOp::Pow, false)
        });
    }
}

/// Depthwise convolution's three passes on CUDA (poisoned outputs) agree with the CPU in every
/// float dtype: F32 to 1e-5, F16/BF16 to 1e-2, F64 to f64 rounding; strided operands; a
/// kernel gradient with more than one block of channels and a long pixel reduction; the CUDA
/// results are the same bits run after run (no atomics).
#[test]
fn depthwise_conv2d_forward_and_grads() {
    use keel_tensor::DepthwiseConv2dParams;
    let Some(dev) = gpu("depthwise_conv2d_forward_and_grads") else { return };
    // (input, kernel [kh, kw, c, m], stride, padding, dilation)
    let cases: [([usize; 4], [usize; 4], (usize, usize), Padding, (usize, usize)); 7] = [
        ([2, 9, 11, 3], [3, 3, 3, 1], (1, 1), Padding::Valid, (1, 1)),
        ([2, 9, 11, 3], [3, 3, 3, 3], (2, 2), Padding::Same, (1, 1)),
        ([1, 10, 8, 4], [4, 2, 4, 2], (1, 2), Padding::Same, (1, 1)),
        ([1, 12, 12, 2], [3, 3, 2, 3], (1, 1), Padding::Valid, (2, 2)),
        ([2, 7, 9, 5], [2, 3, 5, 1], (1, 1), Padding::Same, (3, 2)),
        ([3, 6, 5, 40], [3, 3, 40, 1], (2, 1), Padding::Same, (1, 1)), // two channel tiles
        ([2, 11, 10, 3], [3, 2, 3, 2], (2, 3), Padding::Same, (2, 2)), // strides with dilation
    ];
    for (i, (xs, ks, st, pad, dil)) in cases.into_iter().enumerate() {
        let s = 1700 + 10 * i as u64;
        let x = rand_signed(s, &xs, 0.1, 1.0);
        let k = rand_signed(s + 1, &ks, 0.1, 1.0);
        let p = DepthwiseConv2dParams::new("depthwise_conv2d", x.shape(), k.shape(), st, pad, dil).unwrap();
        let dy = rand_signed(s + 2, p.out_shape().dims(), 0.1, 1.0);
        let what = format!("depthwise case {i} ({xs:?} * {ks:?}, stride {st:?}, {pad:?}, dilation {dil:?})");
        for (dt, tol) in [(DType::F32, 1e-5), (DType::F16, 1e-2), (DType::BF16, 1e-2)] {
            let [x, k, dy] = [&x, &k, &dy].map(|t| t.to_dtype(dt).unwrap());
            agree(&format!("{what} {dt} forward"), dev, tol, &[x.clone(), k.clone()], |t| {
                t[0].depthwise_conv2d(&t[1], st, pad, dil)
            });
            agree(&format!("{what} {dt} grad input"), dev, tol, &[dy.clone(), k], |t| {
                t[0].depthwise_conv2d_grad_input(&t[1], &p)
            });
            agree(&format!("{what} {dt} grad kernel"), dev, tol, &[x, dy], |t| {
                t[0].depthwise_conv2d_grad_kernel(&t[1], &p)
            });
        }
        let (x64, k64, dy64) = (f64_like(&x, 1), f64_like(&k, 2), f64_like(&dy, 3));
        agree(&format!("{what} F64 forward"), dev, 1e-14, &[x64.clone(), k64.clone()], |t| {
            t[0].depthwise_conv2d(&t[1], st, pad, dil)
        });
        agree(&format!("{what} F64 grad input"), dev, 1e-14, &[dy64.clone(), k64], |t| {
            t[0].depthwise_conv2d_grad_input(&t[1], &p)
        });
        agree(&format!("{what} F64 grad kernel"), dev, 1e-14, &[x64, dy64], |t| {
            t[0].depthwise_conv2d_grad_kernel(&t[1], &p)
        });
    }
    // strided operands (made contiguous on the device)
    let x = rand_signed(1790, &[2, 6, 7, 3], 0.1, 1.0);
    let k = rand_signed(1791, &[3, 3, 3, 2], 0.1, 1.0);
    agree("depthwise strided input", dev, 1e-5, &[x, k], |t| {
        t[0].permute(&[0, 2, 1, 3])?.depthwise_conv2d(&t[1], (1, 1), Padding::Same, (1, 1))
    });
    // a long reduction for the kernel gradient, deterministic on the device
    let x = rand_signed(1792, &[16, 28, 28, 4], 0.1, 1.0);
    let k = rand_signed(1793, &[3, 3, 4, 2], 0.1, 1.0);
    let p =
        DepthwiseConv2dParams::new("depthwise_conv2d", x.shape(), k.shape(), (1, 1), Padding::Same, (1, 1)).unwrap();
    let dy = rand_signed(1794, p.out_shape().dims(), 0.1, 1.0);
    agree("depthwise long grad kernel", dev, 1e-5, &[x.clone(), dy.clone()], |t| {
        t[0].depthwise_conv2d_grad_kernel(&t[1], &p)
    });
    let (xg, dyg) = (x.to_device(&dev).unwrap(), dy.to_device(&dev).unwrap());
    let a = xg.depthwise_conv2d_grad_kernel(&dyg, &p).unwrap().to_vec::<f32>().unwrap();
    let b = xg.depthwise_conv2d_grad_kernel(&dyg, &p).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    // an operand on the other device is an error, not a panic
    let cpu_k = rand_signed(1795, &[3, 3, 4, 2], 0.1, 1.0);
    assert!(xg.depthwise_conv2d(&cpu_k, (1, 1), Padding::Same, (1, 1)).is_err());
}

/// Per-image projective transforms of a `h x w` image (rotation, scale, shift, perspective)
/// that send part of each image outside, sample points between pixels.
fn affine_transforms(seed: u64, n: usize, h: usize, w: usize) -> Vec<f64> {
    let mut rng = keel_tensor::rng::Rng::new(seed);
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    (0..n)
        .flat_map(|_| {
            let (a, s) = (rng.uniform(-3.0, 3.0), rng.uniform(0.6, 1.6));
            let (a0, a1, b0, b1) = (s * a.cos(), -s * a.sin(), s * a.sin(), s * a.cos());
            let (dx, dy) = (rng.uniform(-3.0, 3.0), rng.uniform(-3.0, 3.0));
            let (c0, c1) = (rng.uniform(-0.02, 0.02), rng.uniform(-0.02, 0.02));
            [a0, a1, cx - a0 * cx - a1 * cy + dx, b0, b1, cy - b0 * cx - b1 * cy + dy, c0, c1]
        })
        .collect()
}

/// The affine image transform on CUDA against the CPU on random images and transforms, for
/// every fill mode and interpolation, every float dtype: the forward gives the CPU's bits (both
/// compute in f32 / f64 with every operation rounded alone), the image gradient (atomicAdd on
/// CUDA, a deterministic loop on the CPU) agrees to rounding. Outputs are poisoned first.
#[test]
fn affine_transform_forward_and_grad() {
    use keel_tensor::{AffineParams, FillMode, ImageInterpolation};
    let Some(dev) = gpu("affine_transform_forward_and_grad") else { return };
    let (n, h, w, c) = (3, 9, 11, 3);
    let x = rand_signed(900, &[n, h, w, c], 0.1, 2.0);
    let dy = rand_signed(901, &[n, h, w, c], 0.1, 1.0);
    let t32 = Tensor::from_vec(affine_transforms(902, n, h, w), (n, 8)).unwrap().to_dtype(DType::F32).unwrap();
    let shared = t32.narrow(0, 1, 1).unwrap();
    for mode in [FillMode::Reflect, FillMode::Wrap, FillMode::Constant, FillMode::Nearest] {
        for interp in [ImageInterpolation::Nearest, ImageInterpolation::Bilinear] {
            for (rows, t) in [("per-image", &t32), ("shared", &shared)] {
                let p = AffineParams::new("t", x.shape(), t.shape(), interp, mode, 0.25).unwrap();
                let what = format!("affine {mode:?} {interp:?} {rows}");
                for (dt, fwd_tol, grad_tol) in [
                    (DType::F32, 0.0, 1e-5),
                    (DType::F64, 0.0, 1e-12),
                    (DType::F16, 0.0, 1e-2),
                    (DType::BF16, 0.0, 1e-2),
                ] {
                    let tt = if dt == DType::F64 { t.to_dtype(DType::F64).unwrap() } else { t.clone() };
                    let (xd, dyd) = if dt == DType::F64 {
                        (f64_like(&x, 903), f64_like(&dy, 904))
                    } else {
                        (x.to_dtype(dt).unwrap(), dy.to_dtype(dt).unwrap())
                    };
                    agree(&format!("{what} {dt}"), dev, fwd_tol, &[xd, tt.clone()], |v| {
                        v[0].affine_transform(&v[1], interp, mode, 0.25)
                    });
                    agree(&format!("{what} grad {dt}"), dev, grad_tol, &[dyd, tt], |v| {
                        v[0].affine_transform_grad(&v[1], &p)
                    });
                }
            }
        }
    }
}
