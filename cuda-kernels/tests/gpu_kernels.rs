//! GPU tests: run kernels and compare with f64 CPU references on random non-zero inputs.
//! Outputs are poisoned with NaN before each launch. Without a GPU every test prints a
//! skip reason; with `KEEL_REQUIRE_CUDA=1` they fail instead.

use std::sync::Arc;

use keel_cuda_kernels::cudarc::driver::CudaSlice;
use keel_cuda_kernels::ops::conv::{self, Conv2d, Padding};
use keel_cuda_kernels::ops::elementwise::{self, builtin};
use keel_cuda_kernels::ops::gemm::{self, Activation, Bias, GemmArgs, SimtKernel, TcKernel};
use keel_cuda_kernels::ops::index::{self, Accum, IndexShape};
use keel_cuda_kernels::ops::{misc, pool, reduce, rng, softmax, sort};
use keel_cuda_kernels::{CudaDevice, Layout, Program};

fn device() -> Option<Arc<CudaDevice>> {
    let reason = if !keel_cuda_kernels::driver_available() {
        "no CUDA driver (libcuda.so) found".to_string()
    } else if !keel_cuda_kernels::nvrtc_available() {
        "NVRTC not found (run cuda-kernels/install-nvrtc.sh)".to_string()
    } else {
        match CudaDevice::get(0) {
            Ok(d) => return Some(d),
            Err(e) => format!("no usable CUDA device: {e}"),
        }
    };
    if std::env::var("KEEL_REQUIRE_CUDA").as_deref() == Ok("1") {
        panic!("KEEL_REQUIRE_CUDA=1 but {reason}");
    }
    eprintln!("SKIPPED (no GPU): {reason}");
    None
}

/// A deterministic xorshift64 stream from `seed`.
fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

/// Deterministic xorshift values in [-1, -0.05] U [0.05, 1] (never zero).
fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut next = xorshift(seed);
    (0..n)
        .map(|_| {
            let s = next();
            let u = (s >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
            let v = 0.05 + 0.95 * u;
            if s & 1 == 0 {
                v
            } else {
                -v
            }
        })
        .collect()
}

fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (g, w) in got.iter().zip(want) {
        let g = f64::from(*g);
        if g.is_nan() {
            return f64::INFINITY;
        }
        num += (g - w) * (g - w);
        den += w * w;
    }
    (num / den.max(1e-300)).sqrt()
}

fn poisoned(dev: &CudaDevice, n: usize) -> cudarc::driver::CudaSlice<f32> {
    dev.htod(&vec![f32::NAN; n]).expect("alloc")
}

/// f64 reference of a (batched) GEMM with bias + activation.
fn gemm_ref(g: &GemmArgs, a: &[f32], b: &[f32], c0: &[f32], bias: Option<&[f32]>) -> Vec<f64> {
    let mut out: Vec<f64> = c0.iter().map(|&v| f64::from(v)).collect();
    for z in 0..g.batch {
        for i in 0..g.m {
            for j in 0..g.n {
                let mut s = 0.0f64;
                for k in 0..g.k {
                    let av =
                        if g.trans_a { a[z * g.stride_a + k * g.lda + i] } else { a[z * g.stride_a + i * g.lda + k] };
                    let bv =
                        if g.trans_b { b[z * g.stride_b + j * g.ldb + k] } else { b[z * g.stride_b + k * g.ldb + j] };
                    s += f64::from(av) * f64::from(bv);
                }
                let ci = z * g.stride_c + i * g.ldc + j;
                let mut r = f64::from(g.alpha) * s;
                if g.beta != 0.0 {
                    r += f64::from(g.beta) * out[ci];
                }
                if let Some(bias) = bias {
                    r += f64::from(bias[j]);
                }
                if g.act == Activation::Relu {
                    r = r.max(0.0);
                }
                out[ci] = r;
            }
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Prec {
    F32,
    /// The SIMT kernel capped for two blocks per SM.
    F32TwoBlocks,
    /// The SIMT kernel with double-buffered shared tiles.
    F32DoubleBuffered,
    Tf32,
    F16,
    Bf16,
}

fn run_gemm(dev: &CudaDevice, g: &GemmArgs, prec: Prec, kernel: TcKernel, with_bias: bool, seed: u64) -> f64 {
    let a_len = (g.batch - 1) * g.stride_a + if g.trans_a { g.k * g.lda } else { g.m * g.lda };
    let b_len = (g.batch - 1) * g.stride_b + if g.trans_b { g.n * g.ldb } else { g.k * g.ldb };
    let c_len = (g.batch - 1) * g.stride_c + g.m * g.ldc;
    let mut a = rand_vec(a_len, seed);
    let mut b = rand_vec(b_len, seed + 1);
    let c0 = if g.beta != 0.0 { rand_vec(c_len, seed + 2) } else { vec![f32::NAN; c_len] };
    let bias = rand_vec(g.n, seed + 3);
    // Round inputs to the storage precision so the reference sees the same operands.
    match prec {
        Prec::F16 => {
            for v in a.iter_mut().chain(b.iter_mut()) {
                *v = half::f16::from_f32(*v).to_f32();
            }
        }
        Prec::Bf16 => {
            for v in a.iter_mut().chain(b.iter_mut()) {
                *v = half::bf16::from_f32(*v).to_f32();
            }
        }
        _ => {}
    }
    let want = gemm_ref(g, &a, &b, &c0, with_bias.then_some(&bias[..]));
    let mut dc = dev.htod(&c0).expect("htod");
    let dbias = dev.htod(&bias).expect("htod");
    let bias_view = dbias.as_view();
    let bias_arg = with_bias.then_some(Bias::F32(&bias_view));
    let res = match prec {
        Prec::F32 | Prec::F32TwoBlocks | Prec::F32DoubleBuffered | Prec::Tf32 => {
            let (da, db) = (dev.htod(&a).expect("a"), dev.htod(&b).expect("b"));
            if prec != Prec::Tf32 {
                let k = match prec {
                    Prec::F32TwoBlocks => SimtKernel::TwoBlocksPerSm,
                    Prec::F32DoubleBuffered => SimtKernel::DoubleBuffered,
                    _ => SimtKernel::Auto,
                };
                gemm::gemm_f32_with(dev, g, &da.as_view(), &db.as_view(), &mut dc.as_view_mut(), bias_arg, k)
            } else {
                gemm::gemm_tc(dev, g, &da.as_view(), &db.as_view(), &mut dc.as_view_mut(), bias_arg, kernel)
            }
        }
        Prec::F16 => {
            let ha: Vec<half::f16> = a.iter().map(|&v| half::f16::from_f32(v)).collect();
            let hb: Vec<half::f16> = b.iter().map(|&v| half::f16::from_f32(v)).collect();
            let (da, db) = (dev.htod(&ha).expect("a"), dev.htod(&hb).expect("b"));
            gemm::gemm_tc(dev, g, &da.as_view(), &db.as_view(), &mut dc.as_view_mut(), bias_arg, kernel)
        }
        Prec::Bf16 => {
            let ha: Vec<half::bf16> = a.iter().map(|&v| half::bf16::from_f32(v)).collect();
            let hb: Vec<half::bf16> = b.iter().map(|&v| half::bf16::from_f32(v)).collect();
            let (da, db) = (dev.htod(&ha).expect("a"), dev.htod(&hb).expect("b"));
            gemm::gemm_tc(dev, g, &da.as_view(), &db.as_view(), &mut dc.as_view_mut(), bias_arg, kernel)
        }
    };
    res.expect("gemm launch");
    let got = dev.dtoh(&dc.as_view()).expect("dtoh");
    rel_err(&got, &want)
}

fn gemm_cases() -> Vec<GemmArgs> {
    let mut v = Vec::new();
    // (200, 136, 72): leading dims that allow the 16-byte tile loads, with row and k tails
    for &(m, n, k) in &[(67, 129, 35), (128, 128, 8), (1, 1, 1), (130, 64, 257), (3, 200, 17), (200, 136, 72)] {
        for ta in [false, true] {
            for tb in [false, true] {
                v.push(GemmArgs::new(m, n, k).transpose(ta, tb));
            }
        }
    }
    v.push(GemmArgs::new(33, 65, 40).batched(3).scale(0.5, 0.75).activation(Activation::Relu));
    v.push(GemmArgs::new(64, 64, 64).transpose(true, false).batched(2));
    // split along k (few tiles, long k): a Dense forward pass (SIMT 12 splits, TF32 and the
    // other non-pipelined tensor-core kernels 10), and tails everywhere with alpha, beta and
    // ReLU (SIMT 8 splits, tensor cores 7, the last one short)
    v.push(GemmArgs::new(128, 128, 1600));
    v.push(GemmArgs::new(130, 70, 1100).transpose(true, false).scale(0.5, 0.75).activation(Activation::Relu));
    v
}

#[test]
fn gemm_all_precisions_match_f64_reference() {
    let Some(dev) = device() else { return };
    for (i, g) in gemm_cases().iter().enumerate() {
        for (prec, tol, name) in [
            (Prec::F32, 1e-5, "f32"),
            (Prec::F32DoubleBuffered, 1e-5, "f32/db"),
            (Prec::Tf32, 1e-3, "tf32"),
            (Prec::F16, 1e-2, "f16"),
            (Prec::Bf16, 1e-2, "bf16"),
        ] {
            let bias = i % 2 == 0;
            let err = run_gemm(&dev, g, prec, TcKernel::Auto, bias, 100 + i as u64);
            assert!(err < tol, "{name} gemm {g:?} bias={bias}: rel err {err}");
        }
    }
}

/// Shapes every GEMM kernel can run (leading dims and strides multiples of 8).
fn aligned_tc_cases() -> Vec<GemmArgs> {
    let up8 = |x: usize| x.div_ceil(8) * 8;
    let mut v = Vec::new();
    for ta in [false, true] {
        for tb in [false, true] {
            // 11 k-tiles: the 4-stage ring wraps around twice
            v.push(GemmArgs::new(128, 256, 328).transpose(ta, tb));
            // k and n not multiples of 8 inside padded rows: copies that cross the edge
            let mut g = GemmArgs::new(200, 130, 100).transpose(ta, tb);
            g.lda = up8(if ta { g.m } else { g.k }) + 8;
            g.ldb = up8(if tb { g.k } else { g.n });
            v.push(g);
        }
    }
    let mut g = GemmArgs::new(64, 72, 48).batched(3).scale(0.5, 0.75).activation(Activation::Relu);
    g.stride_a += 8; // batch strides that are not the matrix sizes
    g.stride_b += 16;
    v.push(g);
    v.push(GemmArgs::new(8, 8, 8));
    // split along k (SIMT and element/`_vec` tensor cores: 4 blocks; pipelined tensor
    // cores: 2, the last one short), with a row tail, alpha, beta, bias and ReLU; then one
    // tile over 4 and 8 splits
    v.push(GemmArgs::new(136, 64, 600).scale(0.5, 0.75).activation(Activation::Relu));
    v.push(GemmArgs::new(128, 64, 1024).transpose(true, true));
    v
}

#[test]
fn gemm_kernel_variants_agree() {
    let Some(dev) = device() else { return };
    for (i, g) in aligned_tc_cases().iter().enumerate() {
        for (prec, tol, kernels) in [
            (Prec::F32TwoBlocks, 1e-5, &[TcKernel::Auto][..]),
            (Prec::F32DoubleBuffered, 1e-5, &[TcKernel::Auto][..]),
            (Prec::Tf32, 1e-3, &[TcKernel::Element, TcKernel::Vec][..]),
            (Prec::F16, 1e-2, &[TcKernel::Element, TcKernel::Vec, TcKernel::Pipelined, TcKernel::PipelinedWide][..]),
            (Prec::Bf16, 1e-2, &[TcKernel::Element, TcKernel::Vec, TcKernel::Pipelined, TcKernel::PipelinedWide][..]),
        ] {
            for &kernel in kernels {
                let err = run_gemm(&dev, g, prec, kernel, i % 2 == 0, 300 + i as u64);
                assert!(err < tol, "{prec:?} {kernel:?} gemm {g:?}: rel err {err}");
            }
        }
    }
}

/// Blocks that loop over several batch matrices (the grid's z extent is capped at 65535):
/// lower the cap so that 5 matrices share 2 blocks per tile.
#[test]
fn gemm_batch_loop() {
    let Some(dev) = device() else { return };
    gemm::set_grid_z_limit(2);
    // k = 24: one k-tile, so the next matrix refills the very slot the last one was read from
    let g = GemmArgs::new(40, 48, 24).batched(5).transpose(false, true);
    for (prec, tol, kernel) in [
        (Prec::F32, 1e-5, TcKernel::Auto),
        (Prec::F32TwoBlocks, 1e-5, TcKernel::Auto),
        (Prec::F32DoubleBuffered, 1e-5, TcKernel::Auto),
        (Prec::Tf32, 1e-3, TcKernel::Element),
        (Prec::Bf16, 1e-2, TcKernel::Vec),
        (Prec::Bf16, 1e-2, TcKernel::Pipelined),
        (Prec::F16, 1e-2, TcKernel::Pipelined),
        (Prec::Bf16, 1e-2, TcKernel::PipelinedWide),
    ] {
        let err = run_gemm(&dev, &g, prec, kernel, true, 400);
        gemm::set_grid_z_limit(65535);
        assert!(err < tol, "{prec:?} {kernel:?} batched gemm: rel err {err}");
        gemm::set_grid_z_limit(2);
    }
    gemm::set_grid_z_limit(65535);
}

/// The F64 GEMM (values as bits in i64 buffers) against the f64 host loop on inputs exact in
/// f64: the four forms, tails of its 64x64 tile and 16-deep k-tiles, alpha and beta, and
/// blocks that loop over several batch matrices. A bias or an activation is refused.
#[test]
fn gemm_f64_matches_the_host_loop() {
    let Some(dev) = device() else { return };
    let bits = |v: &[f32]| -> Vec<i64> { v.iter().map(|&x| f64::from(x).to_bits() as i64).collect() };
    for (i, (ta, tb)) in [(false, false), (false, true), (true, false), (true, true)].into_iter().enumerate() {
        let mut g = GemmArgs::new(67, 35, 37).batched(5).transpose(ta, tb);
        g.alpha = 0.5;
        g.beta = if i % 2 == 1 { 2.0 } else { 0.0 };
        let a_len = (g.batch - 1) * g.stride_a + if g.trans_a { g.k * g.lda } else { g.m * g.lda };
        let b_len = (g.batch - 1) * g.stride_b + if g.trans_b { g.n * g.ldb } else { g.k * g.ldb };
        let c_len = (g.batch - 1) * g.stride_c + g.m * g.ldc;
        let (a, b) = (rand_vec(a_len, 500 + i as u64), rand_vec(b_len, 510 + i as u64));
        let c0 = if g.beta != 0.0 { rand_vec(c_len, 520) } else { vec![f32::NAN; c_len] };
        let want = gemm_ref(&g, &a, &b, &c0, None);
        let (da, db) = (dev.htod(&bits(&a)).expect("a"), dev.htod(&bits(&b)).expect("b"));
        let mut dc = dev.htod(&bits(&c0)).expect("c");
        gemm::set_grid_z_limit(if i < 2 { 2 } else { 65535 });
        let res = gemm::gemm_f64(&dev, &g, &da.as_view(), &db.as_view(), &mut dc.as_view_mut(), None);
        gemm::set_grid_z_limit(65535);
        res.expect("gemm_f64");
        let got: Vec<f64> = dev.dtoh(&dc.as_view()).expect("dtoh").iter().map(|&v| f64::from_bits(v as u64)).collect();
        let (num, den) = got.iter().zip(&want).fold((0.0, 0.0), |(n, d), (g, w)| (n + (g - w) * (g - w), d + w * w));
        assert!((num / den).sqrt() < 1e-14, "f64 gemm ta={ta} tb={tb}: rel err {}", (num / den).sqrt());
        if i == 0 {
            let relu = g.activation(Activation::Relu);
            assert!(gemm::gemm_f64(&dev, &relu, &da.as_view(), &db.as_view(), &mut dc.as_view_mut(), None).is_err());
            let bias = dev.htod(&vec![0i64; g.n]).expect("bias");
            let bias_view = bias.as_view();
            let with_bias = Some(Bias::Rounded(&bias_view));
            assert!(gemm::gemm_f64(&dev, &g, &da.as_view(), &db.as_view(), &mut dc.as_view_mut(), with_bias).is_err());
        }
    }
}

/// The double-buffered SIMT kernel sums the same products in the same order as the default
/// one: the same bits, for element and 16-byte loads, every form, tails, batches, epilogues.
#[test]
fn simt_double_buffered_gives_the_same_bits() {
    let Some(dev) = device() else { return };
    let mut cases = gemm_cases();
    cases.extend(aligned_tc_cases());
    for (i, g) in cases.iter().enumerate() {
        let run = |k: SimtKernel| {
            let a_len = (g.batch - 1) * g.stride_a + if g.trans_a { g.k * g.lda } else { g.m * g.lda };
            let b_len = (g.batch - 1) * g.stride_b + if g.trans_b { g.n * g.ldb } else { g.k * g.ldb };
            let c_len = (g.batch - 1) * g.stride_c + g.m * g.ldc;
            let a = dev.htod(&rand_vec(a_len, 500 + i as u64)).expect("a");
            let b = dev.htod(&rand_vec(b_len, 600 + i as u64)).expect("b");
            let mut c = dev.htod(&rand_vec(c_len, 700 + i as u64)).expect("c");
            let bias = dev.htod(&rand_vec(g.n, 800 + i as u64)).expect("bias");
            let bias = bias.as_view();
            gemm::gemm_f32_with(&dev, g, &a.as_view(), &b.as_view(), &mut c.as_view_mut(), Some(Bias::F32(&bias)), k)
                .expect("gemm");
            dev.dtoh(&c.as_view()).expect("dtoh").iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
        };
        assert_eq!(run(SimtKernel::Auto), run(SimtKernel::DoubleBuffered), "gemm {g:?}");
    }
}

#[test]
fn gemm_kernel_choice_is_checked() {
    let Some(dev) = device() else { return };
    let mut c = dev.alloc_zeros::<f32>(64).expect("alloc");
    // lda = 7 rules out 16-byte loads: an explicit `Vec` or `Pipelined` is an error, `Auto` runs.
    let g = GemmArgs::new(8, 8, 7);
    let a = dev.htod(&[half::bf16::ONE; 56]).expect("a");
    let b = dev.htod(&[half::bf16::ONE; 56]).expect("b");
    for k in [TcKernel::Vec, TcKernel::Pipelined, TcKernel::PipelinedWide] {
        let r = gemm::gemm_tc(&dev, &g, &a.as_view(), &b.as_view(), &mut c.as_view_mut(), None, k);
        assert!(r.is_err(), "{k:?} accepted lda = 7");
    }
    gemm::gemm_tc(&dev, &g, &a.as_view(), &b.as_view(), &mut c.as_view_mut(), None, TcKernel::Auto).expect("auto");
    assert!(dev.dtoh(&c.as_view()).expect("dtoh").iter().all(|&v| v == 7.0));
    // TF32 has no pipelined kernel.
    let g = GemmArgs::new(8, 8, 8);
    let x = dev.htod(&[1.0f32; 64]).expect("x");
    for k in [TcKernel::Pipelined, TcKernel::PipelinedWide] {
        let r = gemm::gemm_tc(&dev, &g, &x.as_view(), &x.as_view(), &mut c.as_view_mut(), None, k);
        assert!(r.is_err_and(|e| e.to_string().contains("F16 or BF16")), "{k:?}");
    }
}

/// The wide pipelined candidate (128x256 block tiles, 64x64 per warp) adds each output's
/// products in the same order as the pipelined kernel (the same k-tiles, the same mma
/// steps; only which warp holds an output differs): the same bits, F16 and BF16, every form,
/// tails in m, n and k, n past one and two 256-wide tiles, batches, alpha/beta, bias, ReLU.
/// (Cases the pipelined kernel splits along k are left out: its split sums in another order.)
#[test]
fn pipelined_wide_gives_the_pipelined_bits() {
    let Some(dev) = device() else { return };
    let mut cases: Vec<GemmArgs> = aligned_tc_cases().into_iter().filter(|g| g.k < 512).collect();
    cases.push(GemmArgs::new(136, 520, 200).scale(0.5, 0.75).activation(Activation::Relu));
    cases.push(GemmArgs::new(40, 264, 72).transpose(true, true).batched(2));
    fn run<H: gemm::TcInput>(dev: &CudaDevice, g: &GemmArgs, k: TcKernel, seed: u64, h: fn(f32) -> H) -> Vec<u32> {
        let a_len = (g.batch - 1) * g.stride_a + if g.trans_a { g.k * g.lda } else { g.m * g.lda };
        let b_len = (g.batch - 1) * g.stride_b + if g.trans_b { g.n * g.ldb } else { g.k * g.ldb };
        let c_len = (g.batch - 1) * g.stride_c + g.m * g.ldc;
        let a: Vec<H> = rand_vec(a_len, seed).into_iter().map(h).collect();
        let b: Vec<H> = rand_vec(b_len, seed + 1).into_iter().map(h).collect();
        let (a, b) = (dev.htod(&a).expect("a"), dev.htod(&b).expect("b"));
        let mut c = dev.htod(&rand_vec(c_len, seed + 2)).expect("c");
        let bias = dev.htod(&rand_vec(g.n, seed + 3)).expect("bias");
        let bias = bias.as_view();
        gemm::gemm_tc(dev, g, &a.as_view(), &b.as_view(), &mut c.as_view_mut(), Some(Bias::F32(&bias)), k)
            .expect("gemm");
        dev.dtoh(&c.as_view()).expect("dtoh").iter().map(|v| v.to_bits()).collect()
    }
    for (i, g) in cases.iter().enumerate() {
        let seed = 1300 + 10 * i as u64;
        let f16 = |k| run(&dev, g, k, seed, half::f16::from_f32);
        assert_eq!(f16(TcKernel::Pipelined), f16(TcKernel::PipelinedWide), "f16 gemm {g:?}");
        let bf16 = |k| run(&dev, g, k, seed, half::bf16::from_f32);
        assert_eq!(bf16(TcKernel::Pipelined), bf16(TcKernel::PipelinedWide), "bf16 gemm {g:?}");
    }
}

#[test]
fn reductions_match_reference() {
    let Some(dev) = device() else { return };
    for &(outer, r, inner) in &[(5, 1000, 1), (3, 37, 70), (1, 1, 1), (129, 3, 1)] {
        let x = rand_vec(outer * r * inner, 7);
        let dx = dev.htod(&x).expect("htod");
        let s = reduce::ReduceShape { outer, reduce: r, inner };
        for op in [reduce::ReduceOp::Sum, reduce::ReduceOp::Max, reduce::ReduceOp::Min] {
            let mut out = poisoned(&dev, outer * inner);
            reduce::reduce(&dev, op, s, &dx.as_view(), &mut out.as_view_mut(), 1.0).expect("reduce");
            let got = dev.dtoh(&out.as_view()).expect("dtoh");
            let mut want = vec![0.0f64; outer * inner];
            for o in 0..outer {
                for i in 0..inner {
                    let it = (0..r).map(|k| f64::from(x[(o * r + k) * inner + i]));
                    want[o * inner + i] = match op {
                        reduce::ReduceOp::Sum => it.sum(),
                        reduce::ReduceOp::Max => it.fold(f64::NEG_INFINITY, f64::max),
                        reduce::ReduceOp::Min => it.fold(f64::INFINITY, f64::min),
                    };
                }
            }
            assert!(rel_err(&got, &want) < 1e-5, "{op:?} {s:?}");
        }
        let mut idx = dev.htod(&vec![-7i64; outer * inner]).expect("htod");
        reduce::arg_reduce(&dev, true, s, &dx.as_view(), &mut idx.as_view_mut()).expect("argmax");
        let got = dev.dtoh(&idx.as_view()).expect("dtoh");
        for o in 0..outer {
            for i in 0..inner {
                let mut best = 0;
                for k in 1..r {
                    if x[(o * r + k) * inner + i] > x[(o * r + best) * inner + i] {
                        best = k;
                    }
                }
                assert_eq!(got[o * inner + i], best as i64);
            }
        }
    }
}

#[test]
fn softmax_and_cross_entropy() {
    let Some(dev) = device() else { return };
    let (rows, cols) = (17, 300);
    let x: Vec<f32> = rand_vec(rows * cols, 11).iter().map(|v| v * 5.0).collect();
    let labels: Vec<i64> = (0..rows as i64).map(|r| (r * 7) % cols as i64).collect();
    let dx = dev.htod(&x).expect("htod");
    let dl = dev.htod(&labels).expect("htod");
    let mut p_ref = vec![0.0f64; rows * cols];
    let mut loss_ref = vec![0.0f64; rows];
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(f64::from(b)));
        let s: f64 = row.iter().map(|&v| (f64::from(v) - m).exp()).sum();
        for c in 0..cols {
            p_ref[r * cols + c] = (f64::from(row[c]) - m).exp() / s;
        }
        loss_ref[r] = m + s.ln() - f64::from(row[labels[r] as usize]);
    }
    let mut y = poisoned(&dev, rows * cols);
    softmax::softmax_f32(&dev, false, rows, cols, &dx.as_view(), &mut y.as_view_mut()).expect("softmax");
    assert!(rel_err(&dev.dtoh(&y.as_view()).expect("dtoh"), &p_ref) < 1e-5);

    let mut loss = poisoned(&dev, rows);
    let mut grad = poisoned(&dev, rows * cols);
    let mut probs = poisoned(&dev, rows * cols);
    let mut mean = poisoned(&dev, 1);
    let out = softmax::XentOutputs {
        loss: &mut loss.as_view_mut(),
        grad: Some((&mut grad.as_view_mut(), 0.5)),
        probs: Some(&mut probs.as_view_mut()),
        mean: Some(&mut mean.as_view_mut()),
    };
    softmax::softmax_xent(&dev, rows, cols, &dx.as_view(), softmax::XentTargets::Classes(&dl.as_view()), out)
        .expect("xent");
    // the mean of the losses, from the launch's last block (17 blocks draw tickets)
    let mean_ref = loss_ref.iter().sum::<f64>() / rows as f64;
    let first_mean = dev.dtoh(&mean.as_view()).expect("dtoh")[0];
    assert!(rel_err(&[first_mean], &[mean_ref]) < 1e-5, "{first_mean} vs {mean_ref}");
    // only the losses and their mean, for `n` rows of one logit
    let mean_only = |n: usize, x: &CudaSlice<f32>, labels: &CudaSlice<i64>| {
        let (mut loss, mut mean) = (poisoned(&dev, n), poisoned(&dev, 1));
        let out = softmax::XentOutputs {
            loss: &mut loss.as_view_mut(),
            grad: None,
            probs: None,
            mean: Some(&mut mean.as_view_mut()),
        };
        let targets = softmax::XentTargets::Classes(&labels.as_view());
        softmax::softmax_xent(&dev, n, x.len() / n, &x.as_view(), targets, out)?;
        Ok::<f32, keel_cuda_kernels::Error>(dev.dtoh(&mean.as_view())?[0])
    };
    // again: the counter was reset, the sum's order is fixed
    assert_eq!(mean_only(rows, &dx, &dl).expect("xent").to_bits(), first_mean.to_bits());
    // more rows than one block's mean is for: refused before any launch
    let big = softmax::XENT_MEAN_MAX_ROWS + 1;
    let (bx, bl) = (dev.htod(&vec![0.0f32; big]).expect("htod"), dev.htod(&vec![0i64; big]).expect("htod"));
    let err = mean_only(big, &bx, &bl);
    assert!(err.is_err_and(|e| e.to_string().contains("loss mean")));
    // the probabilities are softmax_f32's, bit for bit
    assert_eq!(
        dev.dtoh(&probs.as_view()).expect("dtoh").iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        dev.dtoh(&y.as_view()).expect("dtoh").iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    assert!(rel_err(&dev.dtoh(&loss.as_view()).expect("dtoh"), &loss_ref) < 1e-5);
    let grad_ref: Vec<f64> = (0..rows * cols)
        .map(|i| 0.5 * (p_ref[i] - if labels[i / cols] as usize == i % cols { 1.0 } else { 0.0 }))
        .collect();
    assert!(rel_err(&dev.dtoh(&grad.as_view()).expect("dtoh"), &grad_ref) < 1e-5);

    // F16/BF16 logits are read as f32: every output (loss, gradient, probabilities, mean)
    // is that of the f32 kernel on the logits' f32 values, bit for bit, for both target forms
    let t: Vec<f32> = rand_vec(rows * cols, 12).iter().map(|v| v.abs()).collect();
    let dt = dev.htod(&t).expect("htod");
    fn run<T: keel_cuda_kernels::FloatDType>(
        dev: &CudaDevice,
        (rows, cols): (usize, usize),
        x: &CudaSlice<T>,
        targets: softmax::XentTargets<'_, '_>,
    ) -> Vec<Vec<u32>> {
        let outs: Vec<CudaSlice<f32>> = [rows, rows * cols, rows * cols, 1].iter().map(|&n| poisoned(dev, n)).collect();
        let [mut loss, mut grad, mut probs, mut mean] = <[CudaSlice<f32>; 4]>::try_from(outs).expect("four");
        let out = softmax::XentOutputs {
            loss: &mut loss.as_view_mut(),
            grad: Some((&mut grad.as_view_mut(), 0.25)),
            probs: Some(&mut probs.as_view_mut()),
            mean: Some(&mut mean.as_view_mut()),
        };
        softmax::softmax_xent(dev, rows, cols, &x.as_view(), targets, out).expect("xent");
        [loss, grad, probs, mean]
            .iter()
            .map(|b| dev.dtoh(&b.as_view()).expect("dtoh").iter().map(|v| v.to_bits()).collect())
            .collect()
    }
    let halves: Vec<half::bf16> = x.iter().map(|&v| half::bf16::from_f32(v)).collect();
    let widened: Vec<f32> = halves.iter().map(|v| v.to_f32()).collect();
    let f16s: Vec<half::f16> = x.iter().map(|&v| half::f16::from_f32(v)).collect();
    let f16_widened: Vec<f32> = f16s.iter().map(|v| v.to_f32()).collect();
    let (db, dw) = (dev.htod(&halves).expect("htod"), dev.htod(&widened).expect("htod"));
    let (dh, dhw) = (dev.htod(&f16s).expect("htod"), dev.htod(&f16_widened).expect("htod"));
    for targets in [softmax::XentTargets::Classes(&dl.as_view()), softmax::XentTargets::Probs(&dt.as_view())] {
        assert_eq!(run(&dev, (rows, cols), &db, targets), run(&dev, (rows, cols), &dw, targets), "bf16");
        assert_eq!(run(&dev, (rows, cols), &dh, targets), run(&dev, (rows, cols), &dhw, targets), "f16");
    }
}

fn conv_fwd_ref(p: &Conv2d, x: &[f32], w: &[f32]) -> Vec<f64> {
    let (n, h, wd, c, oh, ow, o) = (p.n as usize, p.h, p.w, p.c as usize, p.oh as usize, p.ow as usize, p.o as usize);
    let mut y = vec![0.0f64; n * oh * ow * o];
    for b in 0..n {
        for i in 0..oh {
            for j in 0..ow {
                for f in 0..o {
                    let mut s = 0.0f64;
                    for ki in 0..p.kh as i64 {
                        for kj in 0..p.kw as i64 {
                            let hi = i as i64 * p.sh as i64 - p.pt as i64 + ki * p.dh as i64;
                            let wj = j as i64 * p.sw as i64 - p.pl as i64 + kj * p.dw as i64;
                            if hi < 0 || hi >= h || wj < 0 || wj >= wd {
                                continue;
                            }
                            for ch in 0..c {
                                let xv = x[((b * h as usize + hi as usize) * wd as usize + wj as usize) * c + ch];
                                let wv = w[((ki as usize * p.kw as usize + kj as usize) * c + ch) * o + f];
                                s += f64::from(xv) * f64::from(wv);
                            }
                        }
                    }
                    y[((b * oh + i) * ow + j) * o + f] = s;
                }
            }
        }
    }
    y
}

#[test]
fn conv2d_forward_and_gradients_match_direct_loops() {
    let Some(dev) = device() else { return };
    let cases = [
        Conv2d::new(2, 9, 11, 3, 5, (3, 3), (1, 1), (1, 1), Padding::Same),
        Conv2d::new(3, 13, 10, 8, 12, (3, 2), (2, 1), (1, 2), Padding::Explicit(1, 2, 0, 1)),
        Conv2d::new(1, 7, 7, 4, 4, (5, 5), (2, 2), (1, 1), Padding::Valid),
    ];
    for (ci, p) in cases.into_iter().enumerate() {
        let p = p.expect("geometry");
        let x = rand_vec(p.x_len(), 20 + ci as u64);
        let w = rand_vec(p.w_len(), 30 + ci as u64);
        let gy = rand_vec(p.y_len(), 40 + ci as u64);
        let (dx_, dw_, dgy) = (dev.htod(&x).expect("x"), dev.htod(&w).expect("w"), dev.htod(&gy).expect("gy"));

        let mut y = poisoned(&dev, p.y_len());
        conv::conv2d_forward_simt(
            &dev,
            &p,
            &dx_.as_view(),
            &dw_.as_view(),
            &mut y.as_view_mut(),
            None,
            1.0,
            0.0,
            Activation::None,
        )
        .expect("fwd");
        let want = conv_fwd_ref(&p, &x, &w);
        let err = rel_err(&dev.dtoh(&y.as_view()).expect("dtoh"), &want);
        assert!(err < 1e-5, "conv fwd case {ci}: {err}");

        // Gradients via the identity <conv(x, w), gy> and finite structure: compute the
        // references by differentiating the direct loop (it is linear in x and in w).
        let mut gx_ref = vec![0.0f64; p.x_len()];
        let mut gw_ref = vec![0.0f64; p.w_len()];
        for (xi, g) in gx_ref.iter_mut().enumerate() {
            let mut e = vec![0.0f32; p.x_len()];
            e[xi] = 1.0;
            let col = conv_fwd_ref(&p, &e, &w);
            *g = col.iter().zip(&gy).map(|(a, b)| a * f64::from(*b)).sum();
        }
        for (wi, g) in gw_ref.iter_mut().enumerate() {
            let mut e = vec![0.0f32; p.w_len()];
            e[wi] = 1.0;
            let col = conv_fwd_ref(&p, &x, &e);
            *g = col.iter().zip(&gy).map(|(a, b)| a * f64::from(*b)).sum();
        }
        let mut gx = poisoned(&dev, p.x_len());
        conv::conv2d_backward_input_simt(&dev, &p, &dgy.as_view(), &dw_.as_view(), &mut gx.as_view_mut(), 1.0, 0.0)
            .expect("dgrad");
        let err = rel_err(&dev.dtoh(&gx.as_view()).expect("dtoh"), &gx_ref);
        assert!(err < 1e-5, "conv dgrad case {ci}: {err}");
        let mut gw = poisoned(&dev, p.w_len());
        conv::conv2d_backward_kernel_simt(&dev, &p, &dx_.as_view(), &dgy.as_view(), &mut gw.as_view_mut(), 1.0, 0.0)
            .expect("wgrad");
        let err = rel_err(&dev.dtoh(&gw.as_view()).expect("dtoh"), &gw_ref);
        assert!(err < 1e-5, "conv wgrad case {ci}: {err}");
    }
}

#[test]
fn pooling_forward_backward() {
    let Some(dev) = device() else { return };
    let p = pool::Pool2d::new(2, 7, 6, 3, (3, 3), (2, 2), true).expect("geometry");
    let x = rand_vec(2 * 7 * 6 * 3, 50);
    let dx = dev.htod(&x).expect("x");
    let out_len = (p.n * p.oh * p.ow * p.c) as usize;
    let mut y = poisoned(&dev, out_len);
    let mut idx = dev.htod(&vec![-5i64; out_len]).expect("idx");
    pool::max_pool2d(&dev, &p, &dx.as_view(), &mut y.as_view_mut(), &mut idx.as_view_mut()).expect("maxpool");
    let mut avg = poisoned(&dev, out_len);
    pool::avg_pool2d(&dev, &p, &dx.as_view(), &mut avg.as_view_mut(), false).expect("avgpool");
    let (yv, iv, av) = (
        dev.dtoh(&y.as_view()).expect("y"),
        dev.dtoh(&idx.as_view()).expect("i"),
        dev.dtoh(&avg.as_view()).expect("a"),
    );
    let mut want_max = vec![0.0f64; out_len];
    let mut want_avg = vec![0.0f64; out_len];
    let (h, w, c) = (7i64, 6i64, 3usize);
    for b in 0..2usize {
        for i in 0..p.oh {
            for j in 0..p.ow {
                for ch in 0..c {
                    let o = ((b * p.oh as usize + i as usize) * p.ow as usize + j as usize) * c + ch;
                    let (mut m, mut s, mut cnt) = (f64::NEG_INFINITY, 0.0, 0.0);
                    for ki in 0..3 {
                        for kj in 0..3 {
                            let (hi, wj) = (i * 2 - p.pt as i64 + ki, j * 2 - p.pl as i64 + kj);
                            if hi < 0 || hi >= h || wj < 0 || wj >= w {
                                continue;
                            }
                            let xi = ((b * 7 + hi as usize) * 6 + wj as usize) * c + ch;
                            m = m.max(f64::from(x[xi]));
                            s += f64::from(x[xi]);
                            cnt += 1.0;
                        }
                    }
                    want_max[o] = m;
                    want_avg[o] = s / cnt;
                    assert_eq!(x[iv[o] as usize], yv[o]);
                }
            }
        }
    }
    assert!(rel_err(&yv, &want_max) < 1e-6);
    assert!(rel_err(&av, &want_avg) < 1e-5);
    // Backward: gx sums gy at the argmax positions.
    let gy = rand_vec(out_len, 51);
    let dgy = dev.htod(&gy).expect("gy");
    let mut gx = poisoned(&dev, x.len());
    pool::max_pool2d_backward(&dev, &p, &dgy.as_view(), &idx.as_view(), &mut gx.as_view_mut()).expect("bwd");
    let mut want = vec![0.0f64; x.len()];
    for (o, &i) in iv.iter().enumerate() {
        want[i as usize] += f64::from(gy[o]);
    }
    assert!(rel_err(&dev.dtoh(&gx.as_view()).expect("gx"), &want) < 1e-6);
}

#[test]
fn rng_matches_cpu_reference_bit_for_bit() {
    let Some(dev) = device() else { return };
    let mut out = poisoned(&dev, 1001);
    rng::uniform_f32(&dev, &mut out.as_view_mut(), 42, 3, 5, -2.0, 3.0).expect("uniform");
    let got = dev.dtoh(&out.as_view()).expect("dtoh");
    assert_eq!(got, rng::uniform_cpu(42, 3, 5, 1001, -2.0, 3.0));
    rng::normal_f32(&dev, &mut out.as_view_mut(), 42, 0, 0, 1.0, 2.0).expect("normal");
    let got = dev.dtoh(&out.as_view()).expect("dtoh");
    let want = rng::normal_cpu(42, 0, 0, 1001, 1.0, 2.0);
    let want64: Vec<f64> = want.iter().map(|&v| f64::from(v)).collect();
    assert!(rel_err(&got, &want64) < 1e-6);
}

#[test]
fn elementwise_and_misc() {
    let Some(dev) = device() else { return };
    let prog = Program::new(
        "elementwise_test",
        elementwise::elementwise_source(builtin::UNARY, builtin::BINARY, builtin::UNARY_BACKWARD)
            + &elementwise::binary_unary_source(builtin::BINARY_UNARY),
    );
    let x = rand_vec(1003, 60);
    let y = rand_vec(3, 61);
    let (dx, dy) = (dev.htod(&x).expect("x"), dev.htod(&y).expect("y"));
    let mut out = poisoned(&dev, 1003);
    elementwise::unary(&dev, &prog, "leaky_relu", &dx.as_view(), &mut out.as_view_mut(), 0.1).expect("unary");
    let want: Vec<f64> = x.iter().map(|&v| f64::from(if v > 0.0 { v } else { 0.1 * v })).collect();
    assert!(rel_err(&dev.dtoh(&out.as_view()).expect("o"), &want) < 1e-6);
    // Views one element in (4-byte aligned only): the f32 kernels must leave their float4 path.
    let mut out1 = poisoned(&dev, 1002);
    elementwise::unary(&dev, &prog, "leaky_relu", &dx.slice(1..), &mut out1.as_view_mut(), 0.1).expect("unary");
    assert!(rel_err(&dev.dtoh(&out1.as_view()).expect("o"), &want[1..]) < 1e-6);
    elementwise::binary(&dev, &prog, "add", &dx.slice(1..), &dx.slice(..1002), &mut out1.as_view_mut()).expect("add");
    let want_add: Vec<f64> = (0..1002).map(|i| f64::from(x[i + 1]) + f64::from(x[i])).collect();
    assert!(rel_err(&dev.dtoh(&out1.as_view()).expect("o"), &want_add) < 1e-6);
    // Broadcast add: x viewed as [1003/17.., ] -> use [59, 17] (1003 = 59 * 17) + y[17]? y has 3:
    // use shape [1001/ .. ]: x[0..999] as [333, 3] + y[3] broadcast over rows.
    let layout = Layout::<3>::new(&[333, 3], [&[3, 1], &[0, 1], &[3, 1]]).expect("layout");
    let mut o2 = poisoned(&dev, 999);
    elementwise::binary_strided(&dev, &prog, "add", &dx.as_view(), &dy.as_view(), &mut o2.as_view_mut(), &layout)
        .expect("binary");
    let want: Vec<f64> = (0..999).map(|i| f64::from(x[i]) + f64::from(y[i % 3])).collect();
    assert!(rel_err(&dev.dtoh(&o2.as_view()).expect("o"), &want) < 1e-6);
    // The fused bias add + ReLU, broadcast and contiguous (aligned and one element in).
    let relu = |v: f64| if v > 0.0 { v } else { 0.0 };
    let mut o3 = poisoned(&dev, 999);
    let add_relu = ("add", "relu");
    let (xv, yv) = (dx.as_view(), dy.as_view());
    elementwise::binary_unary_strided(&dev, &prog, add_relu, &xv, &yv, &mut o3.as_view_mut(), &layout, 0.0)
        .expect("binary_unary_strided");
    let want3: Vec<f64> = want.iter().map(|&v| relu(v)).collect();
    assert_eq!(dev.dtoh(&o3.as_view()).expect("o"), want3.iter().map(|&v| v as f32).collect::<Vec<_>>());
    for skip in [0, 1] {
        let mut o4 = poisoned(&dev, 1002);
        let (a, b) = (dx.slice(skip..1002 + skip), dx.slice(..1002));
        elementwise::binary_unary(&dev, &prog, add_relu, &a, &b, &mut o4.as_view_mut(), 0.0).expect("binary_unary");
        let want4: Vec<f32> = (0..1002).map(|i| relu(f64::from(x[i + skip] + x[i])) as f32).collect();
        assert_eq!(dev.dtoh(&o4.as_view()).expect("o"), want4, "binary_unary, views {skip} element(s) in");
    }
    // cast f32 -> bf16 -> f32 equals half's rounding.
    let mut hb = dev.alloc::<half::bf16>(1003).expect("alloc");
    misc::cast(&dev, &dx.as_view(), &mut hb.as_view_mut()).expect("cast");
    let got = dev.dtoh(&hb.as_view()).expect("dtoh");
    let want: Vec<half::bf16> = x.iter().map(|&v| half::bf16::from_f32(v)).collect();
    assert_eq!(got, want);
    misc::fill(&dev, &mut out.as_view_mut(), 2.5f32).expect("fill");
    assert!(dev.dtoh(&out.as_view()).expect("o").iter().all(|&v| v == 2.5));
}

/// The multi-tensor cast gives each tensor the bits of the single cast: f32 to bf16 and f16
/// and back, over tensors of many sizes (empty, one element, several tiles), more than one
/// launch's worth of them; a pair it has no kernel for is an error.
#[test]
fn multi_tensor_cast_is_the_single_cast() {
    let Some(dev) = device() else { return };
    let sizes: Vec<usize> = (0..70).map(|k| [0, 1, 7, 2048, 2049, 5000][k % 6] + k).chain([0]).collect();
    let host: Vec<Vec<f32>> = sizes.iter().enumerate().map(|(k, &n)| rand_vec(n, 1200 + k as u64)).collect();
    // buffers of at least one element (the driver allocates no empty ones), viewed at their length
    let srcs: Vec<CudaSlice<f32>> = host.iter().map(|v| dev.htod(&[&v[..], &[0.0]].concat()).expect("htod")).collect();
    fn round_trip<H: keel_cuda_kernels::DType>(dev: &CudaDevice, srcs: &[CudaSlice<f32>], host: &[Vec<f32>]) {
        let mut mid: Vec<CudaSlice<H>> = host.iter().map(|v| dev.alloc::<H>(v.len() + 1).expect("alloc")).collect();
        let views: Vec<_> = srcs.iter().zip(host).map(|(s, v)| s.slice(..v.len())).collect();
        let mut outs: Vec<_> = mid.iter_mut().zip(host).map(|(m, v)| m.slice_mut(..v.len())).collect();
        misc::cast_multi(dev, &views, &mut outs).expect("cast_multi to half");
        let mut back: Vec<CudaSlice<f32>> = host.iter().map(|v| poisoned(dev, v.len() + 1)).collect();
        let views: Vec<_> = mid.iter().zip(host).map(|(s, v)| s.slice(..v.len())).collect();
        let mut outs: Vec<_> = back.iter_mut().zip(host).map(|(m, v)| m.slice_mut(..v.len())).collect();
        misc::cast_multi(dev, &views, &mut outs).expect("cast_multi to f32");
        for (k, v) in host.iter().enumerate() {
            let n = v.len();
            let mut one = dev.alloc::<H>(n + 1).expect("alloc");
            misc::cast(dev, &srcs[k].slice(..n), &mut one.slice_mut(..n)).expect("cast");
            let mut one_back = poisoned(dev, n + 1);
            misc::cast(dev, &one.slice(..n), &mut one_back.slice_mut(..n)).expect("cast");
            let want = dev.dtoh(&one_back.as_view()).expect("dtoh");
            let got = dev.dtoh(&back[k].as_view()).expect("dtoh");
            // the element past the end stays poisoned in both
            assert!(want.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()), "{} tensor {k}", H::NAME);
        }
    }
    round_trip::<half::bf16>(&dev, &srcs, &host);
    round_trip::<half::f16>(&dev, &srcs, &host);
    let mut out = dev.alloc::<u8>(4).expect("alloc");
    let r = misc::cast_multi(&dev, &[srcs[1].as_view()], &mut [out.as_view_mut()]);
    assert!(r.is_err_and(|e| e.to_string().contains("no multi-tensor cast from f32 to u8")));
}

/// The default memory pool keeps freed memory (a caching allocator), and
/// `release_cached_memory` hands it back.
#[test]
fn memory_pool_caches_freed_memory() {
    use keel_cuda_kernels::cudarc::driver::{result, sys};
    let Some(dev) = device() else { return };
    let mut threshold = 0u64;
    // SAFETY: the device's own default pool; the attribute is a u64.
    unsafe {
        let pool = result::device::get_default_mem_pool(dev.context().cu_device()).expect("pool");
        result::mem_pool::get_attribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        )
        .expect("attribute");
    }
    assert_eq!(threshold, u64::MAX);
    drop(dev.alloc_zeros::<f32>(1 << 16).expect("alloc"));
    dev.release_cached_memory().expect("trim");
    assert_eq!(dev.alloc_zeros::<f32>(4).and_then(|x| dev.dtoh(&x.as_view())).expect("after trim"), vec![0.0; 4]);
}

/// Direct-loop gradients of the convolution: `(d x, d w)` for output gradient `gy`.
fn conv_grads_ref(p: &Conv2d, x: &[f32], w: &[f32], gy: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let (h, wd, c, oh, ow, o) = (p.h as usize, p.w as usize, p.c as usize, p.oh as usize, p.ow as usize, p.o as usize);
    let (mut gx, mut gw) = (vec![0.0f64; p.x_len()], vec![0.0f64; p.w_len()]);
    for b in 0..p.n as usize {
        for i in 0..oh {
            for j in 0..ow {
                for ki in 0..p.kh as usize {
                    for kj in 0..p.kw as usize {
                        let hi = (i * p.sh as usize + ki * p.dh as usize) as i64 - p.pt as i64;
                        let wj = (j * p.sw as usize + kj * p.dw as usize) as i64 - p.pl as i64;
                        if hi < 0 || hi >= h as i64 || wj < 0 || wj >= wd as i64 {
                            continue;
                        }
                        let xo = ((b * h + hi as usize) * wd + wj as usize) * c;
                        let go = ((b * oh + i) * ow + j) * o;
                        let wo = (ki * p.kw as usize + kj) * c * o;
                        for ch in 0..c {
                            for f in 0..o {
                                let g = f64::from(gy[go + f]);
                                gx[xo + ch] += g * f64::from(w[wo + ch * o + f]);
                                gw[wo + ch * o + f] += g * f64::from(x[xo + ch]);
                            }
                        }
                    }
                }
            }
        }
    }
    (gx, gw)
}

/// The F16/BF16 tensor-core convolutions (forward, grad-input, grad-kernel) against direct
/// loops on the same rounded operands: strides, dilation, padding, several k-tiles, and a
/// grad-kernel reduction split across blocks.
#[test]
fn conv2d_tensor_core_matches_direct_loops() {
    let Some(dev) = device() else { return };
    let cases = [
        Conv2d::new(2, 9, 11, 8, 16, (3, 3), (1, 1), (1, 1), Padding::Same),
        Conv2d::new(3, 13, 10, 16, 8, (3, 2), (2, 1), (2, 2), Padding::Explicit(1, 2, 0, 1)),
        Conv2d::new(2, 12, 12, 32, 64, (3, 3), (1, 1), (1, 1), Padding::Valid),
        // grad-kernel k = 4 * 30 * 41 = 4920, split across blocks (on the emulator's 4 SMs at
        // every 616 if the splits were not rounded to whole k-tiles)
        Conv2d::new(4, 30, 41, 8, 8, (3, 3), (1, 1), (1, 1), Padding::Same),
    ];
    for (ci, p) in cases.into_iter().enumerate() {
        let p = p.expect("geometry");
        for bf16 in [true, false] {
            let round = |v: Vec<f32>| -> Vec<f32> {
                v.into_iter()
                    .map(|x| if bf16 { half::bf16::from_f32(x).to_f32() } else { half::f16::from_f32(x).to_f32() })
                    .collect()
            };
            let x = round(rand_vec(p.x_len(), 50 + ci as u64));
            let w = round(rand_vec(p.w_len(), 60 + ci as u64));
            let gy = round(rand_vec(p.y_len(), 70 + ci as u64));
            let y_ref = conv_fwd_ref(&p, &x, &w);
            let (gx_ref, gw_ref) = conv_grads_ref(&p, &x, &w, &gy);
            let (mut y, mut gx, mut gw) =
                (poisoned(&dev, p.y_len()), poisoned(&dev, p.x_len()), poisoned(&dev, p.w_len()));
            macro_rules! run {
                ($t:ty) => {{
                    let up =
                        |v: &[f32]| dev.htod(&v.iter().map(|&a| <$t>::from_f32(a)).collect::<Vec<_>>()).expect("htod");
                    let (dx_, dw_, dgy) = (up(&x), up(&w), up(&gy));
                    let act = Activation::None;
                    conv::conv2d_forward_tc(
                        &dev,
                        &p,
                        &dx_.as_view(),
                        &dw_.as_view(),
                        &mut y.as_view_mut(),
                        None,
                        1.0,
                        0.0,
                        act,
                    )
                    .expect("fwd");
                    conv::conv2d_backward_input_tc(
                        &dev,
                        &p,
                        &dgy.as_view(),
                        &dw_.as_view(),
                        &mut gx.as_view_mut(),
                        1.0,
                        0.0,
                    )
                    .expect("dgrad");
                    conv::conv2d_backward_kernel_tc(
                        &dev,
                        &p,
                        &dx_.as_view(),
                        &dgy.as_view(),
                        &mut gw.as_view_mut(),
                        1.0,
                        0.0,
                    )
                    .expect("wgrad");
                }};
            }
            if bf16 {
                run!(half::bf16)
            } else {
                run!(half::f16)
            }
            let name = if bf16 { "bf16" } else { "f16" };
            for (what, got, want) in [("fwd", &y, &y_ref), ("dgrad", &gx, &gx_ref), ("wgrad", &gw, &gw_ref)] {
                let err = rel_err(&dev.dtoh(&got.as_view()).expect("dtoh"), want);
                assert!(err < 1e-4, "tensor-core conv {what} {name} case {ci}: rel err {err}");
            }
        }
    }
    // what it cannot run is an error, with the reason
    let p = Conv2d::new(1, 5, 5, 3, 8, (3, 3), (1, 1), (1, 1), Padding::Same).expect("geometry");
    let none: &[&keel_cuda_kernels::cudarc::driver::CudaView<'_, half::bf16>] = &[];
    assert!(conv::tc_unsupported(&dev, &p, none).is_some_and(|why| why.contains("multiples of 8")));
    let x = dev.alloc_zeros::<half::bf16>(p.x_len()).expect("x");
    let w = dev.alloc_zeros::<half::bf16>(p.w_len()).expect("w");
    let mut y = dev.alloc_zeros::<f32>(p.y_len()).expect("y");
    let r = conv::conv2d_forward_tc(
        &dev,
        &p,
        &x.as_view(),
        &w.as_view(),
        &mut y.as_view_mut(),
        None,
        1.0,
        0.0,
        Activation::None,
    );
    assert!(r.is_err());
}

/// Threads that use a program for the first time together get one module: a second copy
/// would hold other handles for the same kernels, and a shared-memory attribute raised on
/// one handle would not apply to the other (a launch then fails with CUDA_ERROR_INVALID_VALUE).
#[test]
fn concurrent_first_use_loads_one_module() {
    let Some(dev) = device() else { return };
    let source = format!(
        "{}\nextern \"C\" __global__ void concurrent_probe(float* x) {{ x[threadIdx.x] = 1.0f; }}\n// {:?}",
        keel_cuda_kernels::sources::COMMON,
        std::time::SystemTime::now()
    );
    let program = Program::new("concurrent_probe", source);
    let modules: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| dev.module(&program).expect("module"))).collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert!(modules.iter().all(|m| Arc::ptr_eq(m, &modules[0])), "several modules for one program");
}

/// A 16-bit float type the tensor-core GEMM takes as input and writes as output.
trait Half: gemm::TcInput + gemm::GemmOut + keel_cuda_kernels::FloatDType {
    fn from_f32(v: f32) -> Self;
    fn to_f32(self) -> f32;
    fn bits(self) -> u16;
}
impl Half for half::f16 {
    fn from_f32(v: f32) -> Self {
        half::f16::from_f32(v)
    }
    fn to_f32(self) -> f32 {
        half::f16::to_f32(self)
    }
    fn bits(self) -> u16 {
        self.to_bits()
    }
}
impl Half for half::bf16 {
    fn from_f32(v: f32) -> Self {
        half::bf16::from_f32(v)
    }
    fn to_f32(self) -> f32 {
        half::bf16::to_f32(self)
    }
    fn bits(self) -> u16 {
        self.to_bits()
    }
}

/// A tensor-core GEMM writing F16/BF16 C gives the bits of the same GEMM writing f32 C,
/// rounded once (with beta != 0 reading C in its own type): every kernel, form, tail,
/// batch and epilogue.
fn half_output_is_f32_output_rounded<H: Half>(dev: &CudaDevice, g: &GemmArgs, kernel: TcKernel, seed: u64) {
    let a_len = (g.batch - 1) * g.stride_a + if g.trans_a { g.k * g.lda } else { g.m * g.lda };
    let b_len = (g.batch - 1) * g.stride_b + if g.trans_b { g.n * g.ldb } else { g.k * g.ldb };
    let c_len = (g.batch - 1) * g.stride_c + g.m * g.ldc;
    let half_of = |v: Vec<f32>| v.into_iter().map(H::from_f32).collect::<Vec<H>>();
    let (a, b) = (half_of(rand_vec(a_len, seed)), half_of(rand_vec(b_len, seed + 1)));
    let c0 = half_of(rand_vec(c_len, seed + 2));
    let (da, db) = (dev.htod(&a).expect("a"), dev.htod(&b).expect("b"));
    let bias = dev.htod(&rand_vec(g.n, seed + 3)).expect("bias");
    let bias = bias.as_view();
    let mut c32 = dev.htod(&c0.iter().map(|v| v.to_f32()).collect::<Vec<f32>>()).expect("c");
    let mut ch = dev.htod(&c0).expect("c");
    gemm::gemm_tc(dev, g, &da.as_view(), &db.as_view(), &mut c32.as_view_mut(), Some(Bias::F32(&bias)), kernel)
        .expect("f32 C");
    gemm::gemm_tc(dev, g, &da.as_view(), &db.as_view(), &mut ch.as_view_mut(), Some(Bias::F32(&bias)), kernel)
        .expect("half C");
    let want: Vec<u16> = dev.dtoh(&c32.as_view()).expect("dtoh").into_iter().map(|v| H::from_f32(v).bits()).collect();
    let got: Vec<u16> = dev.dtoh(&ch.as_view()).expect("dtoh").into_iter().map(H::bits).collect();
    if let Some(i) = got.iter().zip(&want).position(|(x, y)| x != y) {
        panic!("{} C, {kernel:?}, gemm {g:?}: element {i} is {:#06x}, want {:#06x}", H::TC_NAME, got[i], want[i]);
    }
}

#[test]
fn tensor_core_half_output_is_the_f32_output_rounded_once() {
    let Some(dev) = device() else { return };
    for (i, g) in gemm_cases().iter().enumerate() {
        half_output_is_f32_output_rounded::<half::f16>(&dev, g, TcKernel::Auto, 900 + i as u64);
        half_output_is_f32_output_rounded::<half::bf16>(&dev, g, TcKernel::Auto, 900 + i as u64);
    }
    for (i, g) in aligned_tc_cases().iter().enumerate() {
        for kernel in [TcKernel::Element, TcKernel::Vec, TcKernel::Pipelined, TcKernel::PipelinedWide] {
            half_output_is_f32_output_rounded::<half::f16>(&dev, g, kernel, 950 + i as u64);
            half_output_is_f32_output_rounded::<half::bf16>(&dev, g, kernel, 950 + i as u64);
        }
    }
}

/// What separate add (and relu) kernels on `H` make of `plain` (a pass's output without bias),
/// as bits: `round(round(c + bias[col]))`, ReLU'd, for the elements of the `batch` `[m, n]`
/// matrices (row stride `ldc`, batch stride `stride_c`); every other element unchanged.
fn add_bias_on_host<H: Half>(
    plain: &[H],
    bias: &[H],
    (m, n, ldc, stride_c, batch): (usize, usize, usize, usize, usize),
    relu: bool,
) -> Vec<u16> {
    let mut out: Vec<u16> = plain.iter().map(|v| v.bits()).collect();
    for z in 0..batch {
        for r in 0..m {
            for c in 0..n {
                let i = z * stride_c + r * ldc + c;
                let mut v = H::from_f32(plain[i].to_f32() + bias[c].to_f32()).to_f32();
                if relu {
                    v = v.max(0.0);
                }
                out[i] = H::from_f32(v).bits();
            }
        }
    }
    out
}

/// Panics unless the bits `got` are `want`.
fn assert_bits<H: Half>(what: &str, got: &[H], want: &[u16]) {
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a.bits() != *b) {
        panic!("{} {what}: element {i} is {:#06x}, want {:#06x}", H::TC_NAME, got[i].bits(), want[i]);
    }
}

/// A tensor-core GEMM with a [`Bias::Rounded`] bias (of C's type) gives the bits of the same
/// GEMM without bias followed by separate add (and relu) kernels on C's type.
fn rounded_bias_is_the_separate_add<H: Half>(dev: &CudaDevice, g: &GemmArgs, kernel: TcKernel, seed: u64) {
    let a_len = (g.batch - 1) * g.stride_a + if g.trans_a { g.k * g.lda } else { g.m * g.lda };
    let b_len = (g.batch - 1) * g.stride_b + if g.trans_b { g.n * g.ldb } else { g.k * g.ldb };
    let c_len = (g.batch - 1) * g.stride_c + g.m * g.ldc;
    let half_of = |v: Vec<f32>| v.into_iter().map(H::from_f32).collect::<Vec<H>>();
    let (a, b, c0) =
        (half_of(rand_vec(a_len, seed)), half_of(rand_vec(b_len, seed + 1)), half_of(rand_vec(c_len, seed + 2)));
    let bias = half_of(rand_vec(g.n, seed + 3));
    let (da, db, dbias) = (dev.htod(&a).expect("a"), dev.htod(&b).expect("b"), dev.htod(&bias).expect("bias"));
    let (mut plain, mut fused) = (dev.htod(&c0).expect("c"), dev.htod(&c0).expect("c"));
    for relu in [false, true] {
        let act = if relu { Activation::Relu } else { Activation::None };
        let bare = GemmArgs { act: Activation::None, ..*g };
        gemm::gemm_tc(dev, &bare, &da.as_view(), &db.as_view(), &mut plain.as_view_mut(), None, kernel).expect("plain");
        let fused_args = GemmArgs { act, ..*g };
        let bias_view = dbias.as_view();
        gemm::gemm_tc(
            dev,
            &fused_args,
            &da.as_view(),
            &db.as_view(),
            &mut fused.as_view_mut(),
            Some(Bias::Rounded(&bias_view)),
            kernel,
        )
        .expect("fused");
        let plain_h = dev.dtoh(&plain.as_view()).expect("dtoh");
        let want = add_bias_on_host(&plain_h, &bias, (g.m, g.n, g.ldc, g.stride_c, g.batch), relu);
        assert_bits(
            &format!("rounded bias, relu {relu}, {kernel:?}, gemm {g:?}"),
            &dev.dtoh(&fused.as_view()).expect("dtoh"),
            &want,
        );
        // the next round reads C again when beta != 0: start both from the same C
        plain = dev.htod(&c0).expect("c");
        fused = dev.htod(&c0).expect("c");
    }
}

#[test]
fn tensor_core_rounded_bias_is_the_separate_add() {
    let Some(dev) = device() else { return };
    for (i, g) in gemm_cases().iter().enumerate() {
        rounded_bias_is_the_separate_add::<half::f16>(&dev, g, TcKernel::Auto, 1100 + i as u64);
        rounded_bias_is_the_separate_add::<half::bf16>(&dev, g, TcKernel::Auto, 1100 + i as u64);
    }
    for (i, g) in aligned_tc_cases().iter().enumerate() {
        for kernel in [TcKernel::Element, TcKernel::Vec, TcKernel::Pipelined, TcKernel::PipelinedWide] {
            rounded_bias_is_the_separate_add::<half::bf16>(&dev, g, kernel, 1150 + i as u64);
        }
    }
}

/// Panics unless `ch` holds the bits of `c32` rounded once to `H`.
fn assert_rounded<H: Half>(dev: &CudaDevice, what: &str, c32: &CudaSlice<f32>, ch: &CudaSlice<H>) {
    let want: Vec<u16> = dev.dtoh(&c32.as_view()).expect("dtoh").into_iter().map(|v| H::from_f32(v).bits()).collect();
    let got: Vec<u16> = dev.dtoh(&ch.as_view()).expect("dtoh").into_iter().map(H::bits).collect();
    if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
        panic!("{} {what}: element {i} is {:#06x}, want {:#06x}", H::TC_NAME, got[i], want[i]);
    }
}

/// The tensor-core convolutions writing F16/BF16 give the bits of the same pass writing
/// f32, rounded once: forward with bias, ReLU, alpha and beta (C read in its own type),
/// grad-input, and grad-kernel in one split and in several (the split-K reduction then
/// rounds).
fn conv_half_output_is_f32_output_rounded<H: Half>(dev: &CudaDevice, p: &Conv2d, seed: u64) {
    let half_of = |v: Vec<f32>| v.into_iter().map(H::from_f32).collect::<Vec<H>>();
    let up = |v: &[H]| dev.htod(v).expect("htod");
    let (x, w, gy) = (
        half_of(rand_vec(p.x_len(), seed)),
        half_of(rand_vec(p.w_len(), seed + 1)),
        half_of(rand_vec(p.y_len(), seed + 2)),
    );
    let (dx_, dw_, dgy) = (up(&x), up(&w), up(&gy));
    let bias = dev.htod(&rand_vec(p.o as usize, seed + 3)).expect("bias");
    let bias = bias.as_view();
    // each pass once into f32 and once into H, both from the same C where beta reads it
    let compare = |what: &str, c32: &CudaSlice<f32>, ch: &CudaSlice<H>| {
        assert_rounded(dev, &format!("tensor-core conv {what} {p:?}"), c32, ch)
    };
    let c0 = half_of(rand_vec(p.y_len(), seed + 4));
    let (mut y32, mut yh) = (dev.htod(&c0.iter().map(|v| v.to_f32()).collect::<Vec<f32>>()).expect("y"), up(&c0));
    let act = Activation::Relu;
    conv::conv2d_forward_tc(
        dev,
        p,
        &dx_.as_view(),
        &dw_.as_view(),
        &mut y32.as_view_mut(),
        Some(Bias::F32(&bias)),
        0.5,
        0.75,
        act,
    )
    .expect("fwd f32");
    conv::conv2d_forward_tc(
        dev,
        p,
        &dx_.as_view(),
        &dw_.as_view(),
        &mut yh.as_view_mut(),
        Some(Bias::F32(&bias)),
        0.5,
        0.75,
        act,
    )
    .expect("fwd half");
    compare("fwd", &y32, &yh);
    // a bias of the output's type (Bias::Rounded): the bits of the pass and a separate add + relu
    let hbias = half_of(rand_vec(p.o as usize, seed + 6));
    let dhbias = up(&hbias);
    let (mut plain, mut fused) = (up(&c0), up(&c0));
    let (x_, w_) = (dx_.as_view(), dw_.as_view());
    conv::conv2d_forward_tc(dev, p, &x_, &w_, &mut plain.as_view_mut(), None, 0.5, 0.75, Activation::None)
        .expect("fwd");
    let hb = dhbias.as_view();
    conv::conv2d_forward_tc(dev, p, &x_, &w_, &mut fused.as_view_mut(), Some(Bias::Rounded(&hb)), 0.5, 0.75, act)
        .expect("fwd");
    let plain = dev.dtoh(&plain.as_view()).expect("dtoh");
    let rows = p.y_len() / p.o as usize;
    let want = add_bias_on_host(&plain, &hbias, (rows, p.o as usize, p.o as usize, 0, 1), true);
    assert_bits(
        &format!("tensor-core conv fwd, rounded bias {p:?}"),
        &dev.dtoh(&fused.as_view()).expect("dtoh"),
        &want,
    );
    let (mut gx32, mut gxh) =
        (dev.alloc_zeros::<f32>(p.x_len()).expect("gx"), dev.alloc_zeros::<H>(p.x_len()).expect("gx"));
    conv::conv2d_backward_input_tc(dev, p, &dgy.as_view(), &dw_.as_view(), &mut gx32.as_view_mut(), 1.0, 0.0)
        .expect("dgrad f32");
    conv::conv2d_backward_input_tc(dev, p, &dgy.as_view(), &dw_.as_view(), &mut gxh.as_view_mut(), 1.0, 0.0)
        .expect("dgrad half");
    compare("dgrad", &gx32, &gxh);
    let c0 = half_of(rand_vec(p.w_len(), seed + 5));
    let (mut gw32, mut gwh) = (dev.htod(&c0.iter().map(|v| v.to_f32()).collect::<Vec<f32>>()).expect("gw"), up(&c0));
    conv::conv2d_backward_kernel_tc(dev, p, &dx_.as_view(), &dgy.as_view(), &mut gw32.as_view_mut(), 1.0, 0.5)
        .expect("wgrad f32");
    conv::conv2d_backward_kernel_tc(dev, p, &dx_.as_view(), &dgy.as_view(), &mut gwh.as_view_mut(), 1.0, 0.5)
        .expect("wgrad half");
    compare("wgrad", &gw32, &gwh);
}

#[test]
fn tensor_core_conv_half_output_is_the_f32_output_rounded_once() {
    let Some(dev) = device() else { return };
    let cases = [
        Conv2d::new(2, 9, 11, 8, 16, (3, 3), (1, 1), (1, 1), Padding::Same),
        Conv2d::new(3, 13, 10, 16, 8, (3, 2), (2, 1), (2, 2), Padding::Explicit(1, 2, 0, 1)),
        // grad-kernel k = 4920: split across blocks, combined by the last block of each tile
        Conv2d::new(4, 30, 41, 8, 8, (3, 3), (1, 1), (1, 1), Padding::Same),
    ];
    for (ci, p) in cases.into_iter().enumerate() {
        let p = p.expect("geometry");
        conv_half_output_is_f32_output_rounded::<half::f16>(&dev, &p, 1000 + ci as u64);
        conv_half_output_is_f32_output_rounded::<half::bf16>(&dev, &p, 1000 + ci as u64);
    }
}

/// The SIMT F16/BF16 convolutions (what runs where the tensor cores cannot: C = 1 or 3, O not
/// a multiple of 8) give the f32 kernels' bits on the widened inputs, rounded once (and
/// exactly, for a grad-kernel written in f32). Forward with bias, ReLU, alpha and beta (C
/// read in its own type), grad-input, and grad-kernel in one split and in several.
fn simt_half_conv_is_the_f32_conv<H: Half>(dev: &CudaDevice, p: &Conv2d, seed: u64) {
    let half_of = |v: Vec<f32>| v.into_iter().map(H::from_f32).collect::<Vec<H>>();
    let up = |v: &[H]| dev.htod(v).expect("htod");
    let wide = |v: &[H]| dev.htod(&v.iter().map(|h| h.to_f32()).collect::<Vec<f32>>()).expect("htod");
    let (x, w, gy) = (
        half_of(rand_vec(p.x_len(), seed)),
        half_of(rand_vec(p.w_len(), seed + 1)),
        half_of(rand_vec(p.y_len(), seed + 2)),
    );
    let (hx, hw, hgy) = (up(&x), up(&w), up(&gy));
    let (hx, hw, hgy) = (hx.as_view(), hw.as_view(), hgy.as_view());
    let (fx, fw, fgy) = (wide(&x), wide(&w), wide(&gy));
    let (fx, fw, fgy) = (fx.as_view(), fw.as_view(), fgy.as_view());
    let bias = dev.htod(&rand_vec(p.o as usize, seed + 3)).expect("bias");
    let bias = Some(bias.as_view());
    let what = |pass: &str| format!("SIMT conv {pass} {p:?}");
    let act = Activation::Relu;

    let c0 = half_of(rand_vec(p.y_len(), seed + 4));
    let (mut want, mut got) = (wide(&c0), up(&c0));
    conv::conv2d_forward_simt(dev, p, &fx, &fw, &mut want.as_view_mut(), bias.as_ref().map(Bias::F32), 0.5, 0.75, act)
        .expect("fwd f32");
    conv::conv2d_forward_simt(dev, p, &hx, &hw, &mut got.as_view_mut(), bias.as_ref().map(Bias::F32), 0.5, 0.75, act)
        .expect("fwd");
    assert_rounded(dev, &what("fwd"), &want, &got);
    // a bias of the output's type (Bias::Rounded): the bits of the pass and a separate add + relu
    let hbias = half_of(rand_vec(p.o as usize, seed + 6));
    let dhbias = up(&hbias);
    let (mut plain, mut fused) = (up(&c0), up(&c0));
    conv::conv2d_forward_simt(dev, p, &hx, &hw, &mut plain.as_view_mut(), None, 0.5, 0.75, Activation::None)
        .expect("fwd");
    let hb = dhbias.as_view();
    conv::conv2d_forward_simt(dev, p, &hx, &hw, &mut fused.as_view_mut(), Some(Bias::Rounded(&hb)), 0.5, 0.75, act)
        .expect("fwd");
    let plain = dev.dtoh(&plain.as_view()).expect("dtoh");
    let rows = p.y_len() / p.o as usize;
    let want = add_bias_on_host(&plain, &hbias, (rows, p.o as usize, p.o as usize, 0, 1), true);
    assert_bits(&what("fwd, rounded bias"), &dev.dtoh(&fused.as_view()).expect("dtoh"), &want);

    let mut want = poisoned(dev, p.x_len());
    let mut got = up(&vec![H::from_f32(f32::NAN); p.x_len()]);
    conv::conv2d_backward_input_simt(dev, p, &fgy, &fw, &mut want.as_view_mut(), 1.0, 0.0).expect("dgrad f32");
    conv::conv2d_backward_input_simt(dev, p, &hgy, &hw, &mut got.as_view_mut(), 1.0, 0.0).expect("dgrad");
    assert_rounded(dev, &what("dgrad"), &want, &got);

    let c0 = half_of(rand_vec(p.w_len(), seed + 5));
    let (mut want, mut got32, mut got) = (wide(&c0), wide(&c0), up(&c0));
    conv::conv2d_backward_kernel_simt(dev, p, &fx, &fgy, &mut want.as_view_mut(), 1.0, 0.5).expect("wgrad f32");
    conv::conv2d_backward_kernel_simt(dev, p, &hx, &hgy, &mut got32.as_view_mut(), 1.0, 0.5).expect("wgrad to f32");
    conv::conv2d_backward_kernel_simt(dev, p, &hx, &hgy, &mut got.as_view_mut(), 1.0, 0.5).expect("wgrad");
    let (a, b) = (dev.dtoh(&want.as_view()).expect("dtoh"), dev.dtoh(&got32.as_view()).expect("dtoh"));
    if let Some(i) = a.iter().zip(&b).position(|(u, v)| u.to_bits() != v.to_bits()) {
        panic!("{} {} (f32 dw): element {i} is {}, want {}", H::TC_NAME, what("wgrad"), b[i], a[i]);
    }
    assert_rounded(dev, &what("wgrad"), &want, &got);
}

#[test]
fn simt_half_conv_is_the_f32_conv_rounded_once() {
    let Some(dev) = device() else { return };
    let cases = [
        // the seed CNN's first layer: one input channel (grad-kernel k = 2704: several splits)
        Conv2d::new(4, 28, 28, 1, 32, (3, 3), (1, 1), (1, 1), Padding::Valid),
        // grad-kernel k = 8 x 8: one split, so an F16/BF16 dw still goes through the reduction
        Conv2d::new(1, 8, 8, 1, 4, (1, 1), (1, 1), (1, 1), Padding::Valid),
        // RGB, stride, dilation, uneven padding, O not a multiple of 4 (element loads in the f32 kernels too)
        Conv2d::new(2, 11, 9, 3, 5, (3, 2), (2, 1), (1, 2), Padding::Explicit(1, 2, 0, 1)),
        // a tensor-core geometry run on the SIMT core (the f32 reference takes its 16-byte loads)
        Conv2d::new(2, 9, 11, 8, 16, (3, 3), (1, 1), (1, 1), Padding::Same),
    ];
    for (ci, p) in cases.into_iter().enumerate() {
        let p = p.expect("geometry");
        simt_half_conv_is_the_f32_conv::<half::f16>(&dev, &p, 1100 + ci as u64);
        simt_half_conv_is_the_f32_conv::<half::bf16>(&dev, &p, 1100 + ci as u64);
    }
}

/// Deterministic xorshift keys in `0..=max`, with long runs of one key (`hot`) among them.
fn rand_keys(n: usize, max: u32, hot: Option<u32>, seed: u64) -> Vec<u32> {
    let mut next = xorshift(seed);
    (0..n)
        .map(|_| {
            let s = next();
            match hot {
                Some(h) if s % 3 == 0 => h,
                _ => ((s >> 16) % (u64::from(max) + 1)) as u32,
            }
        })
        .collect()
}

#[test]
fn argsort_is_a_stable_sort() {
    let Some(dev) = device() else { return };
    // one to four passes; one tile, a ragged last tile, more tiles than the scan's threads
    for (n, max, hot) in [
        (1, 0, None),
        (200, 255, Some(7)),
        (1000, 256, None),
        (70_001, 9_999, Some(1234)),
        (3000, 300_000, None),
        (5000, u32::MAX, Some(u32::MAX)),
    ] {
        let keys = rand_keys(n, max, hot, n as u64);
        let (sorted, pos) = sort::argsort_u32(&dev, dev.htod(&keys).expect("keys"), max).expect("argsort");
        let (sorted, pos) = (dev.dtoh(&sorted.as_view()).expect("keys"), dev.dtoh(&pos.as_view()).expect("pos"));
        let mut want: Vec<(u32, u32)> = keys.iter().enumerate().map(|(i, &k)| (k, i as u32)).collect();
        want.sort_by_key(|&(k, _)| k); // stable: equal keys in position order
        let got: Vec<(u32, u32)> = sorted.into_iter().zip(pos).collect();
        assert!(got == want, "argsort of {n} keys up to {max}: not the stable order");
    }
}

/// index_select's backward in the documented order: per target, the first 256
/// contributions added from 0 in index order, then each further 256 summed on its own and
/// added in order.
fn index_add_in_pieces(g: &[f32], idx: &[i64], s: IndexShape) -> Vec<f32> {
    let mut out = vec![0.0f32; s.outer * s.n_in * s.inner];
    for o in 0..s.outer {
        for k in 0..s.n_in {
            let js: Vec<usize> = (0..s.n_idx).filter(|&j| idx[j] == k as i64).collect();
            for i in 0..s.inner {
                let mut acc = 0.0f32;
                for (c, piece) in js.chunks(256).enumerate() {
                    let sum = piece.iter().fold(0.0f32, |a, &j| a + g[(o * s.n_idx + j) * s.inner + i]);
                    acc = if c == 0 { sum } else { acc + sum };
                }
                out[(o * s.n_in + k) * s.inner + i] = acc;
            }
        }
    }
    out
}

#[test]
fn accumulating_backwards_add_in_a_fixed_order() {
    let Some(dev) = device() else { return };
    // a run of ~700 of one index (three pieces), others short, indices up to 299 (two radix
    // passes), one out of range (skipped)
    let s = IndexShape { outer: 2, n_in: 300, n_idx: 2100, inner: 3 };
    let mut idx: Vec<i64> = rand_keys(s.n_idx, 299, Some(42), 11).into_iter().map(i64::from).collect();
    idx[5] = 300;
    let g = rand_vec(s.outer * s.n_idx * s.inner, 12);
    let want = index_add_in_pieces(&g, &idx, s);
    let (dg, di) = (dev.htod(&g).expect("g"), dev.htod(&idx).expect("idx"));
    for run in 0..2 {
        let mut out = poisoned(&dev, want.len());
        index::index_select_backward(&dev, Accum::F32, s, &dg.as_view(), &di.as_view(), &mut out.as_view_mut())
            .expect("index_add");
        let got = dev.dtoh(&out.as_view()).expect("out");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(bits(&got) == bits(&want), "index_add run {run}: not the pieces' order");
    }
    // gather's backward: every element's own index, one long run of one target per (o, i)
    let gs = IndexShape { outer: 2, n_in: 4, n_idx: 600, inner: 2 };
    let gidx: Vec<i64> =
        (0..gs.outer * gs.n_idx * gs.inner).map(|e| if e % 5 == 0 { 3 } else { (e % 3) as i64 }).collect();
    let gg = rand_vec(gidx.len(), 13);
    let mut want = vec![vec![]; gs.outer * gs.n_in * gs.inner];
    for (e, (&k, &v)) in gidx.iter().zip(&gg).enumerate() {
        let (i, o) = (e % gs.inner, e / (gs.n_idx * gs.inner));
        want[(o * gs.n_in + k as usize) * gs.inner + i].push(v);
    }
    let want: Vec<u32> = want
        .iter()
        .map(|vs| {
            let sums: Vec<f32> = vs.chunks(256).map(|p| p.iter().fold(0.0f32, |a, &v| a + v)).collect();
            sums.iter().skip(1).fold(sums.first().copied().unwrap_or(0.0), |a, &v| a + v).to_bits()
        })
        .collect();
    let (dg, di) = (dev.htod(&gg).expect("g"), dev.htod(&gidx).expect("idx"));
    let mut out = poisoned(&dev, want.len());
    index::gather_backward(&dev, Accum::F32, gs, &dg.as_view(), &di.as_view(), &mut out.as_view_mut())
        .expect("scatter_add");
    let got: Vec<u32> = dev.dtoh(&out.as_view()).expect("out").iter().map(|x| x.to_bits()).collect();
    assert!(got == want, "scatter_add: not the pieces' order");
}
