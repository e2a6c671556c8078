//! GPU benchmark: keel's own GEMM and convolution kernels beside cuBLAS, and seed-CNN
//! training throughput.
//!
//! `cargo run --release -p keel-examples --features cuda --example gpu_bench -- [--reps 7]
//!  [--sizes 1024,2048,4096,8192] [--steps 40] [--parts gemm,conv,embed,cnn,rnn]`
//!
//! `--parts` picks the sections to run (default: all five).
//!
//! Order: the GEMM rows of the kernels `matmul` runs (`f32`, `tf32`, `bf16`), the
//! convolutions, the training rows, then the GEMM tuning candidates (`f32/2b`, `f32/db`,
//! `bf16/1`, `bf16/w`), so that a candidate failing on its first GPU costs only its own
//! rows; a failed row or section prints a `failed:` line (and JSON) and the rest runs (the
//! exit status is then 1). When the sizes include 4096, the output ends with issue #7's
//! goals, one line each (and JSON): the best f32 kernel against 70% of cuBLAS SGEMM, the
//! best BF16 kernel against 50% of cuBLAS, with "met" or "NOT met".
//!
//! Prints a table and one JSON line per row:
//! * GEMM `C[m,n] = A[m,k] B[k,n]` (row-major, f32 output) for square sizes at F32 (SIMT),
//!   TF32 and BF16 (tensor cores, f32 accumulation; `bf16` is the cp.async-pipelined kernel
//!   that `matmul` picks, `bf16/1` the single-stage one, `bf16/w` the pipelined one on
//!   128x256 block tiles (64x64 per warp, one block per SM); `f32/2b` the SIMT kernel capped at
//!   two blocks per SM, `f32/db` the SIMT kernel with double-buffered shared tiles), beside `cublasGemmEx` on the same
//!   device buffers with the same precision (`CUBLAS_COMPUTE_32F`, `..._FAST_TF32`, BF16
//!   inputs with f32 output), as TFLOP/s and % of cuBLAS, plus the relative norm difference
//!   of the two results (a sanity check, not a test).
//! * The seed CNN's convolutions (NHWC, 3x3, valid, stride 1; Conv2D 32 on [128,28,28,1] and
//!   Conv2D 64 on [128,13,13,32]): forward, grad-input and grad-kernel with keel's f32
//!   implicit-GEMM kernels. The yardstick is cuBLAS SGEMM on the equivalent GEMM of equal
//!   FLOPs (the im2col / col2im it would need is not counted, which flatters cuBLAS). The
//!   second shape (channels in multiples of 8) is also timed on the BF16 tensor-core
//!   convolutions (`bf16` rows, no cuBLAS column).
//! * An Embedding's backward (`index_select_backward`: the deterministic sort of the tokens
//!   and the in-order segment sums, no atomics) beside its forward gather on the same shape
//!   (`embed` rows: 25,600 tokens, a batch of 128 sequences of 200; 64 features into 10,000
//!   rows and 256 into 50,000; each with distinct random tokens and with half the batch one
//!   padding token), with the backward's launches; the ratio backward / forward is the
//!   number to watch (the forward moves the same rows once).
//! * Seed-CNN training images/s at batch 128 (Adam, `fit` on `Device::Cuda(0)`) with the
//!   data on the host (since 2026-12-05 `fit` copies the inputs to the GPU once per call
//!   and gathers the batches there; the targets are gathered on the host and copied per
//!   batch) and resident on the GPU, under the
//!   float32 and the mixed_bfloat16 dtype policies, reading the results after every step
//!   (`steps_per_execution` 1) and once per epoch (`steps_per_execution` = steps), with
//!   the host's waits for the GPU per epoch and the kernel launches per step; then one
//!   epoch per policy with every kernel timed (`cnn_profile`: GPU time per kernel, and
//!   the share of the epoch's wall time spent in kernels).
//!
//! * LSTM and GRU training sequences/s at batch 128 (`rnn` rows: row-sequence MNIST shapes,
//!   28 timesteps of 28 features, LSTM(128) or GRU(128) then Dense(10) softmax, Adam, data
//!   on the GPU, one read-back per epoch), float32 and mixed_bfloat16, with the launches per
//!   step: the layers run as one fused sequence op (per timestep a recurrent GEMM and a
//!   `lstm_cell_fwd_*` / `gru_cell_fwd_*` launch forward, a cell-gradient launch and a GEMM
//!   backward).
//!
//! Times are the median of `--reps` timed samples after two warm-up runs; each sample
//! runs enough back-to-back launches to last about 20 ms and ends with a stream
//! synchronisation. cuBLAS is loaded at run time (`libcublas.so.13` or `.12` on the
//! library path); without it the cuBLAS columns are empty.

use std::error::Error;
use std::ffi::c_void;
use std::time::Instant;

use cudarc::cublas::{result as blas, sys as bsys, CudaBlas};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};
use keel::mixed_precision::DTypePolicy;
use keel::prelude::*;
use keel_cuda_kernels::ops::{conv as kconv, gemm as kgemm, index as kindex};
use keel_cuda_kernels::CudaDevice;
use keel_examples::Args;

type Res<T> = Result<T, Box<dyn Error>>;

fn main() {
    keel_examples::run_main(run)
}

/// Precision (and tensor-core kernel) of one GEMM row.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Prec {
    F32(kgemm::SimtKernel),
    Tf32,
    Bf16(kgemm::TcKernel),
}

impl Prec {
    /// The rows of each size: what `matmul` runs (Auto), plus the tuning candidates beside
    /// them so that one run compares: F32 capped at two blocks per SM, F32 double-buffered,
    /// BF16 single-stage, BF16 pipelined on 128x256 tiles.
    const ROWS: [Prec; 7] = [
        Prec::F32(kgemm::SimtKernel::Auto),
        Prec::F32(kgemm::SimtKernel::TwoBlocksPerSm),
        Prec::F32(kgemm::SimtKernel::DoubleBuffered),
        Prec::Tf32,
        Prec::Bf16(kgemm::TcKernel::Auto),
        Prec::Bf16(kgemm::TcKernel::Vec),
        Prec::Bf16(kgemm::TcKernel::PipelinedWide),
    ];

    /// Whether `matmul` runs this kernel (the rest are tuning candidates).
    fn is_default(self) -> bool {
        matches!(self, Prec::F32(kgemm::SimtKernel::Auto) | Prec::Tf32 | Prec::Bf16(kgemm::TcKernel::Auto))
    }

    fn name(self) -> &'static str {
        match self {
            Prec::F32(kgemm::SimtKernel::TwoBlocksPerSm) => "f32/2b",
            Prec::F32(kgemm::SimtKernel::DoubleBuffered) => "f32/db",
            Prec::F32(_) => "f32",
            Prec::Tf32 => "tf32",
            Prec::Bf16(kgemm::TcKernel::Vec) => "bf16/1",
            Prec::Bf16(kgemm::TcKernel::PipelinedWide) => "bf16/w",
            Prec::Bf16(_) => "bf16",
        }
    }
}

/// The square GEMM size of issue #7's goals.
const GOAL_SIZE: usize = 4096;

/// Issue #7's goals at [`GOAL_SIZE`], from the best kernel of each family: f32 (SIMT) >= 70%
/// of cuBLAS SGEMM, BF16 (tensor cores) >= 50% of cuBLAS. One line each, plus JSON.
fn print_goals(rows: &[(Prec, Row)]) {
    let families: [(&str, f64, fn(Prec) -> bool); 2] =
        [("f32", 70.0, |p| matches!(p, Prec::F32(_))), ("bf16", 50.0, |p| matches!(p, Prec::Bf16(_)))];
    for (family, goal, member) in families {
        let best = rows
            .iter()
            .filter(|(p, _)| member(*p))
            .filter_map(|(p, r)| r.cublas_ms.map(|c| (p.name(), 100.0 * c / r.ours_ms)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((kernel, pct)) => {
                let verdict = if pct >= goal { "met" } else { "NOT met" };
                println!(
                    "goal: {family} GEMM at {GOAL_SIZE} >= {goal}% of cuBLAS: best kernel {kernel} at {pct:.1}%: {verdict}"
                );
                println!(
                    "{}",
                    serde_json::json!({
                        "bench": "goal", "family": family, "size": GOAL_SIZE, "goal_pct_of_cublas": goal,
                        "best_kernel": kernel, "pct_of_cublas": pct, "met": pct >= goal,
                    })
                );
            }
            None => println!("goal: {family} GEMM at {GOAL_SIZE}: not measurable (no cuBLAS)"),
        }
    }
}

/// One result row.
struct Row {
    bench: &'static str,
    shape: String,
    dtype: &'static str,
    flops: f64,
    ours_ms: f64,
    cublas_ms: Option<f64>,
    diff: Option<f64>,
}

impl Row {
    fn tflops(&self, ms: f64) -> f64 {
        self.flops / (ms * 1e-3) / 1e12
    }

    fn print(&self) {
        let ours = self.tflops(self.ours_ms);
        let (cub, pct) = match self.cublas_ms {
            Some(c) => (format!("{:>9.2}", self.tflops(c)), format!("{:>7.1}%", 100.0 * c / self.ours_ms)),
            None => (format!("{:>9}", "-"), format!("{:>8}", "-")),
        };
        let diff = self.diff.map_or_else(|| "-".to_string(), |d| format!("{d:.1e}"));
        println!(
            "{:<10} {:<26} {:<6} {:>9.3} {:>9.2} {} {} {:>9}",
            self.bench, self.shape, self.dtype, self.ours_ms, ours, cub, pct, diff
        );
        println!(
            "{}",
            serde_json::json!({
                "bench": self.bench, "shape": self.shape, "dtype": self.dtype,
                "ours_ms": self.ours_ms, "ours_tflops": ours,
                "cublas_ms": self.cublas_ms, "cublas_tflops": self.cublas_ms.map(|c| self.tflops(c)),
                "pct_of_cublas": self.cublas_ms.map(|c| 100.0 * c / self.ours_ms),
                "rel_diff_vs_cublas": self.diff,
            })
        );
    }
}

fn header() {
    println!(
        "{:<10} {:<26} {:<6} {:>9} {:>9} {:>9} {:>8} {:>9}",
        "bench", "shape", "dtype", "ours ms", "TFLOP/s", "cuBLAS", "%cuBLAS", "rel diff"
    );
}

fn run() -> Res<()> {
    let args = Args::from_env();
    let reps: usize = args.get("reps", 7).max(1);
    let steps: usize = args.get("steps", 40).max(1);
    let sizes: Vec<usize> = match args.get_str("sizes") {
        Some(s) => s.split(',').map(|v| v.trim().parse::<usize>()).collect::<Result<_, _>>()?,
        None => vec![1024, 2048, 4096, 8192],
    };
    let parts: Vec<String> = args
        .get_str("parts")
        .unwrap_or_else(|| "gemm,conv,embed,cnn,rnn".to_string())
        .split(',')
        .map(|p| p.trim().to_string())
        .collect();
    if let Some(bad) = parts.iter().find(|p| !["gemm", "conv", "embed", "cnn", "rnn"].contains(&p.as_str())) {
        return Err(format!("--parts: unknown part `{bad}` (expected a list of gemm, conv, embed, cnn, rnn)").into());
    }
    let part = |name: &str| parts.iter().any(|p| p == name);
    let dev = CudaDevice::get(0)?;
    let (free, total) = dev.mem_info()?;
    println!(
        "device: {} ({}, {} SMs, {:.1} of {:.1} GiB free)",
        dev.name(),
        dev.arch(),
        dev.sm_count(),
        free as f64 / (1u64 << 30) as f64,
        total as f64 / (1u64 << 30) as f64
    );
    // SAFETY: only tries to load the library.
    let blas = if unsafe { bsys::is_culib_present() } {
        Some(CudaBlas::new(dev.stream().clone())?)
    } else {
        println!("cuBLAS not found (libcublas.so.13/.12 not on the library path): the cuBLAS columns stay empty");
        None
    };
    header();
    // What `matmul` runs first, then the convolutions and the training rows, and the tuning
    // candidates last: a candidate that fails on its first GPU (a launch error, or one that
    // leaves the context unusable) then costs only its own rows. A failed row or section is
    // printed (and in JSON) and the rest still runs; the exit status says something failed.
    let (defaults, candidates): (Vec<Prec>, Vec<Prec>) = Prec::ROWS.iter().partition(|p| p.is_default());
    let mut at_goal_size = Vec::new();
    let mut failed = 0usize;
    let gemm_rows = |rows: &[Prec], at_goal_size: &mut Vec<(Prec, Row)>, failed: &mut usize| {
        for &s in sizes.iter().filter(|_| part("gemm")) {
            for &prec in rows {
                match gemm_row(&dev, blas.as_ref(), prec, s, reps) {
                    Ok(row) => {
                        row.print();
                        if s == GOAL_SIZE {
                            at_goal_size.push((prec, row));
                        }
                    }
                    Err(e) => *failed += report_failure(&format!("gemm {} {s}", prec.name()), e.as_ref()),
                }
            }
        }
    };
    gemm_rows(&defaults, &mut at_goal_size, &mut failed);
    let conv_shapes: &[(usize, usize, usize, usize, usize)] =
        if part("conv") { &[(128, 28, 28, 1, 32), (128, 13, 13, 32, 64)] } else { &[] };
    for &(n, h, w, c, o) in conv_shapes {
        let shape = format!("conv [{n},{h},{w},{c}] -> {o}");
        match conv_rows(&dev, blas.as_ref(), (n, h, w, c, o), reps) {
            Ok(rows) => rows.iter().for_each(Row::print),
            Err(e) => failed += report_failure(&shape, e.as_ref()),
        }
        if c % 8 == 0 && o % 8 == 0 {
            match conv_rows_bf16(&dev, (n, h, w, c, o), reps) {
                Ok(rows) => rows.iter().for_each(Row::print),
                Err(e) => failed += report_failure(&format!("{shape} bf16"), e.as_ref()),
            }
        }
    }
    if part("embed") {
        if let Err(e) = embedding_rows(&dev, reps) {
            failed += report_failure("embed", e.as_ref());
        }
    }
    if part("cnn") {
        if let Err(e) = cnn_throughput(steps, reps.min(5)) {
            failed += report_failure("cnn_train", e.as_ref());
        }
    }
    if part("rnn") {
        if let Err(e) = rnn_throughput(steps, reps.min(5)) {
            failed += report_failure("rnn_train", e.as_ref());
        }
    }
    if part("gemm") && !candidates.is_empty() {
        println!("tuning candidates:");
        header();
        gemm_rows(&candidates, &mut at_goal_size, &mut failed);
    }
    if !at_goal_size.is_empty() {
        print_goals(&at_goal_size);
    }
    if failed > 0 {
        return Err(format!("{failed} benchmark row(s) or section(s) failed (see `failed:` above)").into());
    }
    Ok(())
}

/// Prints a failed row or section (a line and JSON) and counts it (returns 1).
fn report_failure(what: &str, e: &dyn Error) -> usize {
    println!("failed: {what}: {e}");
    println!("{}", serde_json::json!({ "bench": "failed", "what": what, "error": e.to_string() }));
    1
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

/// Deterministic uniform values in [-1, 1) (xorshift; fast enough for 8192^2).
fn host_rand(n: usize, seed: u64) -> Vec<f32> {
    let mut next = xorshift(seed);
    (0..n).map(|_| (next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0).collect()
}

/// Median milliseconds per call of `f` (see the module docs).
fn time_ms(dev: &CudaDevice, reps: usize, mut f: impl FnMut() -> Res<()>) -> Res<f64> {
    f()?;
    f()?;
    dev.synchronize()?;
    let t = Instant::now();
    f()?;
    dev.synchronize()?;
    let one = t.elapsed().as_secs_f64();
    let inner = ((0.02 / one.max(1e-7)).ceil() as usize).clamp(1, 1000);
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        for _ in 0..inner {
            f()?;
        }
        dev.synchronize()?;
        samples.push(t.elapsed().as_secs_f64() * 1e3 / inner as f64);
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples[samples.len() / 2])
}

/// Relative norm difference `||a - b|| / ||b||`.
fn rel_diff(a: &[f32], b: &[f32]) -> f64 {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        num += (f64::from(x) - f64::from(y)).powi(2);
        den += f64::from(y).powi(2);
    }
    (num / den.max(1e-300)).sqrt()
}

/// Row-major `C[m,n] = A[m,k] B[k,n]` with cuBLAS (column-major: `C^T = B^T A^T`).
fn cublas_gemm<T>(
    dev: &CudaDevice,
    blas: &CudaBlas,
    (m, n, k): (usize, usize, usize),
    a: &CudaSlice<T>,
    b: &CudaSlice<T>,
    c: &mut CudaSlice<f32>,
    in_type: bsys::cudaDataType,
    compute: bsys::cublasComputeType_t,
) -> Res<()> {
    // the handle was created on keel's device stream, so both run in one order
    let stream = dev.stream();
    let (pa, _ra) = a.device_ptr(stream);
    let (pb, _rb) = b.device_ptr(stream);
    let (pc, _rc) = c.device_ptr_mut(stream);
    let (alpha, beta) = (1.0f32, 0.0f32);
    let i = |v: usize| i32::try_from(v).map_err(|_| format!("GEMM dimension {v} does not fit cuBLAS's int"));
    // SAFETY: the buffers hold [m,k], [k,n] and [m,n] elements of the stated types (checked
    // by the callers' allocation sizes) and stay alive until the stream is synchronised.
    unsafe {
        blas::gemm_ex(
            *blas.handle(),
            bsys::cublasOperation_t::CUBLAS_OP_N,
            bsys::cublasOperation_t::CUBLAS_OP_N,
            i(n)?,
            i(m)?,
            i(k)?,
            &alpha as *const f32 as *const c_void,
            pb as *const c_void,
            in_type,
            i(n)?,
            pa as *const c_void,
            in_type,
            i(k)?,
            &beta as *const f32 as *const c_void,
            pc as *mut c_void,
            bsys::cudaDataType::CUDA_R_32F,
            i(n)?,
            compute,
            bsys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )?;
    }
    Ok(())
}

fn gemm_row(dev: &CudaDevice, blas: Option<&CudaBlas>, prec: Prec, s: usize, reps: usize) -> Res<Row> {
    let (m, n, k) = (s, s, s);
    let a32 = dev.htod(&host_rand(m * k, 1))?;
    let b32 = dev.htod(&host_rand(k * n, 2))?;
    let mut c_ours = dev.alloc_zeros::<f32>(m * n)?;
    let mut c_blas = dev.alloc_zeros::<f32>(m * n)?;
    let args = kgemm::GemmArgs::new(m, n, k);
    let (ours_ms, cublas_ms) = match prec {
        Prec::F32(_) | Prec::Tf32 => {
            let ours = time_ms(dev, reps, || {
                let (av, bv, mut cv) = (a32.as_view(), b32.as_view(), c_ours.as_view_mut());
                match prec {
                    Prec::F32(k) => kgemm::gemm_f32_with(dev, &args, &av, &bv, &mut cv, None, k)?,
                    _ => kgemm::gemm_tf32(dev, &args, &av, &bv, &mut cv, None)?,
                }
                Ok(())
            })?;
            let compute = if prec != Prec::Tf32 {
                bsys::cublasComputeType_t::CUBLAS_COMPUTE_32F
            } else {
                bsys::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32
            };
            let theirs = match blas {
                Some(bl) => Some(time_ms(dev, reps, || {
                    cublas_gemm(dev, bl, (m, n, k), &a32, &b32, &mut c_blas, bsys::cudaDataType::CUDA_R_32F, compute)
                })?),
                None => None,
            };
            (ours, theirs)
        }
        Prec::Bf16(kernel) => {
            let to_bf16 = |v: Vec<f32>| v.into_iter().map(half::bf16::from_f32).collect::<Vec<_>>();
            let a16 = dev.htod(&to_bf16(host_rand(m * k, 1)))?;
            let b16 = dev.htod(&to_bf16(host_rand(k * n, 2)))?;
            let ours = time_ms(dev, reps, || {
                kgemm::gemm_tc(dev, &args, &a16.as_view(), &b16.as_view(), &mut c_ours.as_view_mut(), None, kernel)?;
                Ok(())
            })?;
            let theirs = match blas {
                Some(bl) => Some(time_ms(dev, reps, || {
                    cublas_gemm(
                        dev,
                        bl,
                        (m, n, k),
                        &a16,
                        &b16,
                        &mut c_blas,
                        bsys::cudaDataType::CUDA_R_16BF,
                        bsys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                    )
                })?),
                None => None,
            };
            (ours, theirs)
        }
    };
    let diff = match cublas_ms {
        Some(_) => Some(rel_diff(&dev.dtoh(&c_ours.as_view())?, &dev.dtoh(&c_blas.as_view())?)),
        None => None,
    };
    Ok(Row {
        bench: "gemm",
        shape: format!("{m}x{n}x{k}"),
        dtype: prec.name(),
        flops: 2.0 * (m * n * k) as f64,
        ours_ms,
        cublas_ms,
        diff,
    })
}

/// Forward, grad-input and grad-kernel of a 3x3 valid stride-1 NHWC convolution.
fn conv_rows(
    dev: &CudaDevice,
    blas: Option<&CudaBlas>,
    (n, h, w, c, o): (usize, usize, usize, usize, usize),
    reps: usize,
) -> Res<Vec<Row>> {
    let p = kconv::Conv2d::new(n, h, w, c, o, (3, 3), (1, 1), (1, 1), kconv::Padding::Valid)?;
    let (oh, ow) = (p.oh as usize, p.ow as usize);
    let x = dev.htod(&host_rand(p.x_len(), 3))?;
    let wt = dev.htod(&host_rand(p.w_len(), 4))?;
    let dy = dev.htod(&host_rand(p.y_len(), 5))?;
    let mut y = dev.alloc_zeros::<f32>(p.y_len())?;
    let mut dx = dev.alloc_zeros::<f32>(p.x_len())?;
    let mut dw = dev.alloc_zeros::<f32>(p.w_len())?;
    let (rows, taps) = (n * oh * ow, 9 * c);
    let flops = 2.0 * (rows * taps * o) as f64;
    let shape = format!("[{n},{h},{w},{c}]*3x3x{o}");
    let act = kgemm::Activation::None;
    let fwd = time_ms(dev, reps, || {
        kconv::conv2d_forward_simt(dev, &p, &x.as_view(), &wt.as_view(), &mut y.as_view_mut(), None, 1.0, 0.0, act)?;
        Ok(())
    })?;
    let dgrad = time_ms(dev, reps, || {
        kconv::conv2d_backward_input_simt(dev, &p, &dy.as_view(), &wt.as_view(), &mut dx.as_view_mut(), 1.0, 0.0)?;
        Ok(())
    })?;
    let wgrad = time_ms(dev, reps, || {
        kconv::conv2d_backward_kernel_simt(dev, &p, &x.as_view(), &dy.as_view(), &mut dw.as_view_mut(), 1.0, 0.0)?;
        Ok(())
    })?;
    // the GEMM each pass is (same FLOPs): patches[rows,taps] W[taps,o]; dY[rows,o] W^T[o,taps];
    // patches^T[taps,rows] dY[rows,o]
    let gemms = [(rows, o, taps), (rows, taps, o), (taps, o, rows)];
    let mut out = Vec::new();
    for ((name, ours_ms), (m, nn, k)) in
        [("conv_fwd", fwd), ("conv_dgrad", dgrad), ("conv_wgrad", wgrad)].into_iter().zip(gemms)
    {
        let cublas_ms = match blas {
            Some(bl) => {
                let a = dev.htod(&host_rand(m * k, 6))?;
                let b = dev.htod(&host_rand(k * nn, 7))?;
                let mut cc = dev.alloc_zeros::<f32>(m * nn)?;
                Some(time_ms(dev, reps, || {
                    cublas_gemm(
                        dev,
                        bl,
                        (m, nn, k),
                        &a,
                        &b,
                        &mut cc,
                        bsys::cudaDataType::CUDA_R_32F,
                        bsys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                    )
                })?)
            }
            None => None,
        };
        out.push(Row { bench: name, shape: shape.clone(), dtype: "f32", flops, ours_ms, cublas_ms, diff: None });
    }
    Ok(out)
}

/// An Embedding's forward (`index_select`) and backward (`index_select_backward`) on
/// 25,600 tokens, for two table sizes, with and without half the tokens one padding token.
fn embedding_rows(dev: &CudaDevice, reps: usize) -> Res<()> {
    let tokens = 128 * 200;
    for (dim, vocab) in [(64usize, 10_000usize), (256, 50_000)] {
        for padded in [false, true] {
            let mut next = xorshift(vocab as u64);
            let ids: Vec<i64> = (0..tokens)
                .map(|t| {
                    let r = next();
                    if padded && t % 2 == 0 {
                        0
                    } else {
                        (r % vocab as u64) as i64
                    }
                })
                .collect();
            let s = kindex::IndexShape { outer: 1, n_in: vocab, n_idx: tokens, inner: dim };
            let (table, grad) = (dev.htod(&host_rand(vocab * dim, 6))?, dev.htod(&host_rand(tokens * dim, 7))?);
            let idx = dev.htod(&ids)?;
            let (mut out, mut grad_table) =
                (dev.alloc_zeros::<f32>(tokens * dim)?, dev.alloc_zeros::<f32>(vocab * dim)?);
            let fwd_ms = time_ms(dev, reps, || {
                kindex::index_select(dev, s, &table.as_view(), &idx.as_view(), &mut out.as_view_mut(), None)?;
                Ok(())
            })?;
            let backward = |gt: &mut CudaSlice<f32>| {
                kindex::index_select_backward(
                    dev,
                    kindex::Accum::F32,
                    s,
                    &grad.as_view(),
                    &idx.as_view(),
                    &mut gt.as_view_mut(),
                )
            };
            let before = dev.launches();
            backward(&mut grad_table)?;
            let launches = dev.launches() - before;
            let bwd_ms = time_ms(dev, reps, || Ok(backward(&mut grad_table)?))?;
            let shape = format!("{tokens} tok x{dim} -> {vocab}{}", if padded { ", half pad" } else { "" });
            println!(
                "{:<10} {:<34} fwd {fwd_ms:>8.3} ms  bwd {bwd_ms:>8.3} ms  bwd/fwd {:>6.2}  bwd launches {launches}",
                "embed",
                shape,
                bwd_ms / fwd_ms
            );
            println!(
                "{}",
                serde_json::json!({
                    "bench": "embed", "tokens": tokens, "dim": dim, "vocab": vocab, "half_padding": padded,
                    "fwd_ms": fwd_ms, "bwd_ms": bwd_ms, "bwd_over_fwd": bwd_ms / fwd_ms, "bwd_launches": launches,
                })
            );
        }
    }
    Ok(())
}

/// Seed-CNN training images/s at batch 128 (Adam), data on the host and on the GPU, in
/// float32, mixed_bfloat16 and mixed_float16 (with its loss scaling).
fn cnn_throughput(steps: usize, reps: usize) -> Res<()> {
    const BATCH: usize = 128;
    let gpu = Device::cuda(0)?;
    let samples = BATCH * steps;
    let x = Tensor::rand_uniform(11, 0.0, 1.0, [samples, 28, 28, 1], DType::F32, &Device::Cpu)?;
    let labels: Vec<i64> = (0..samples as i64).map(|i| (i * 7919) % 10).collect();
    let y = Tensor::from_vec(labels, samples)?.one_hot(10, DType::F32)?;
    for policy in DTypePolicy::ALL {
        cnn_throughput_with(policy, &gpu, &x, &y, steps, reps)?;
    }
    Ok(())
}

/// [`cnn_throughput`] for one dtype policy.
fn cnn_throughput_with(
    policy: DTypePolicy,
    gpu: &Device,
    x: &Tensor,
    y: &Tensor,
    steps: usize,
    reps: usize,
) -> Res<()> {
    const BATCH: usize = 128;
    let samples = x.dims()[0];
    let mut model = Sequential::with_seed(0);
    model.set_dtype_policy(policy);
    model.add(Conv2D::new(32, (3, 3)).activation(Activation::Relu).input_shape([28, 28, 1]));
    model.add(MaxPooling2D::new((2, 2)));
    model.add(Conv2D::new(64, (3, 3)).activation(Activation::Relu));
    model.add(MaxPooling2D::new((2, 2)));
    model.add(Flatten::new());
    model.add(Dense::new(128).activation(Activation::Relu));
    model.add(Dense::new(10).activation(Activation::Softmax));
    model.to_device(gpu)?;
    model.compile(Adam::default(), Loss::CategoricalCrossentropy, &[Metric::Accuracy])?;
    let places = [("host", x.clone(), y.clone()), ("device", x.to_device(gpu)?, y.to_device(gpu)?)];
    let per_execution = if steps > 1 { vec![1, steps] } else { vec![1] };
    for ((place, xs, ys), per_execution) in places.iter().flat_map(|p| per_execution.iter().map(move |&n| (p, n))) {
        let fit = || Fit::new().batch_size(BATCH).epochs(1).verbose(0).steps_per_execution(per_execution);
        model.fit(xs, ys, fit())?; // warm-up: kernel compilation, allocator
        let mut secs = Vec::with_capacity(reps);
        let waits = keel::tensor::cuda::host_waits(*gpu);
        let launches = keel::tensor::cuda::launches(*gpu);
        for _ in 0..reps {
            let t = Instant::now();
            model.fit(xs, ys, fit())?;
            secs.push(t.elapsed().as_secs_f64());
        }
        let waits = (keel::tensor::cuda::host_waits(*gpu) - waits) as f64 / reps as f64;
        let launches = (keel::tensor::cuda::launches(*gpu) - launches) as f64 / (reps * steps) as f64;
        secs.sort_by(f64::total_cmp);
        let ips = samples as f64 / secs[secs.len() / 2];
        println!(
            "seed CNN training ({policy}), batch {BATCH}, data on the {place}, steps_per_execution \
             {per_execution}: {ips:.0} images/s ({steps} steps, {waits:.0} host waits per epoch, \
             {launches:.1} launches per step)"
        );
        println!(
            "{}",
            serde_json::json!({
                "bench": "cnn_train", "batch": BATCH, "data": place, "steps": steps,
                "steps_per_execution": per_execution, "host_waits_per_epoch": waits,
                "launches_per_step": launches,
                "images_per_s": ips, "optimizer": "adam", "dtype_policy": policy.name(),
            })
        );
    }
    cnn_profile(&mut model, policy, gpu, &places[0].1, &places[0].2)?;
    Ok(())
}

/// LSTM and GRU training sequences/s at batch 128 on row-sequence MNIST shapes (see the
/// module docs), float32 and mixed_bfloat16, with the kernel launches per step.
fn rnn_throughput(steps: usize, reps: usize) -> Res<()> {
    const BATCH: usize = 128;
    let gpu = Device::cuda(0)?;
    let samples = BATCH * steps;
    let x = Tensor::rand_uniform(12, 0.0, 1.0, [samples, 28, 28], DType::F32, &Device::Cpu)?.to_device(&gpu)?;
    let labels: Vec<i64> = (0..samples as i64).map(|i| (i * 7919) % 10).collect();
    let y = Tensor::from_vec(labels, samples)?.to_device(&gpu)?;
    for (cell, policy) in
        ["LSTM", "GRU"].into_iter().flat_map(|c| [DTypePolicy::Float32, DTypePolicy::MixedBFloat16].map(|p| (c, p)))
    {
        let mut model = Sequential::with_seed(0);
        model.set_dtype_policy(policy);
        if cell == "LSTM" {
            model.add(LSTM::new(128).input_shape([28, 28]));
        } else {
            model.add(GRU::new(128).input_shape([28, 28]));
        }
        model.add(Dense::new(10).activation(Activation::Softmax));
        model.to_device(&gpu)?;
        model.compile(Adam::default(), Loss::SparseCategoricalCrossentropy, &[Metric::Accuracy])?;
        let fit = || Fit::new().batch_size(BATCH).epochs(1).verbose(0).steps_per_execution(steps);
        model.fit(&x, &y, fit())?; // warm-up: kernel compilation, allocator
        let launches = keel::tensor::cuda::launches(gpu);
        let mut secs = Vec::with_capacity(reps);
        for _ in 0..reps {
            let t = Instant::now();
            model.fit(&x, &y, fit())?;
            secs.push(t.elapsed().as_secs_f64());
        }
        let launches = (keel::tensor::cuda::launches(gpu) - launches) as f64 / (reps * steps) as f64;
        secs.sort_by(f64::total_cmp);
        let sps = samples as f64 / secs[secs.len() / 2];
        println!(
            "{cell}(128) training ({policy}), batch {BATCH}, 28 timesteps, data on the device: {sps:.0} sequences/s \
             ({steps} steps, {launches:.1} launches per step)"
        );
        println!(
            "{}",
            serde_json::json!({
                "bench": "rnn_train", "cell": cell, "batch": BATCH, "timesteps": 28, "units": 128, "steps": steps,
                "launches_per_step": launches, "sequences_per_s": sps, "dtype_policy": policy.name(),
            })
        );
    }
    Ok(())
}

/// One more epoch of [`cnn_throughput_with`]'s model (data on the host, one read-back per
/// epoch) with every kernel timed (`keel::tensor::cuda::start_profile`): a table of the
/// kernels by GPU time, and the share of the epoch's wall time the GPU spent in kernels
/// (the rest is launch latency and host time).
fn cnn_profile(model: &mut Sequential, policy: DTypePolicy, gpu: &Device, x: &Tensor, y: &Tensor) -> Res<()> {
    let steps = x.dims()[0].div_ceil(128);
    let fit = Fit::new().batch_size(128).epochs(1).verbose(0).steps_per_execution(steps);
    keel::tensor::cuda::start_profile(*gpu)?;
    let t = Instant::now();
    let fitted = model.fit(x, y, fit);
    let wall_ms = t.elapsed().as_secs_f64() * 1e3;
    let rows = keel::tensor::cuda::finish_profile(*gpu)?;
    fitted?;
    let kernel_ms: f64 = rows.iter().map(|r| r.total_ms).sum();
    println!(
        "seed CNN kernel profile ({policy}), one epoch of {steps} steps: {kernel_ms:.2} ms in kernels of {wall_ms:.2} ms \
         wall ({:.0}%, with two events per launch)",
        100.0 * kernel_ms / wall_ms
    );
    for r in &rows {
        println!(
            "  {:<36} {:>6} launches {:>9.3} ms {:>8.2} us each {:>5.1}%",
            r.kernel,
            r.launches,
            r.total_ms,
            1e3 * r.total_ms / r.launches as f64,
            100.0 * r.total_ms / kernel_ms.max(f64::MIN_POSITIVE)
        );
    }
    let kernels: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::json!({"kernel": r.kernel, "launches": r.launches, "ms": r.total_ms}))
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "bench": "cnn_profile", "dtype_policy": policy.name(), "steps": steps,
            "wall_ms": wall_ms, "kernel_ms": kernel_ms, "kernels": kernels,
        })
    );
    Ok(())
}

/// The three passes of [`conv_rows`] on the BF16 tensor-core convolutions (f32 output), for
/// channels in multiples of 8; no cuBLAS column (compare with the f32 rows above).
fn conv_rows_bf16(
    dev: &CudaDevice,
    (n, h, w, c, o): (usize, usize, usize, usize, usize),
    reps: usize,
) -> Res<Vec<Row>> {
    let p = kconv::Conv2d::new(n, h, w, c, o, (3, 3), (1, 1), (1, 1), kconv::Padding::Valid)?;
    let bf = |len: usize, seed: u64| {
        dev.htod(&host_rand(len, seed).into_iter().map(half::bf16::from_f32).collect::<Vec<_>>())
    };
    let (x, wt, dy) = (bf(p.x_len(), 3)?, bf(p.w_len(), 4)?, bf(p.y_len(), 5)?);
    let mut y = dev.alloc_zeros::<f32>(p.y_len())?;
    let mut dx = dev.alloc_zeros::<f32>(p.x_len())?;
    let mut dw = dev.alloc_zeros::<f32>(p.w_len())?;
    let flops = 2.0 * (n * p.oh as usize * p.ow as usize * 9 * c * o) as f64;
    let act = kgemm::Activation::None;
    let fwd = time_ms(dev, reps, || {
        kconv::conv2d_forward_tc(dev, &p, &x.as_view(), &wt.as_view(), &mut y.as_view_mut(), None, 1.0, 0.0, act)?;
        Ok(())
    })?;
    let dgrad = time_ms(dev, reps, || {
        kconv::conv2d_backward_input_tc(dev, &p, &dy.as_view(), &wt.as_view(), &mut dx.as_view_mut(), 1.0, 0.0)?;
        Ok(())
    })?;
    let wgrad = time_ms(dev, reps, || {
        kconv::conv2d_backward_kernel_tc(dev, &p, &x.as_view(), &dy.as_view(), &mut dw.as_view_mut(), 1.0, 0.0)?;
        Ok(())
    })?;
    let shape = format!("[{n},{h},{w},{c}]*3x3x{o}");
    Ok([("conv_fwd", fwd), ("conv_dgrad", dgrad), ("conv_wgrad", wgrad)]
        .into_iter()
        .map(|(bench, ours_ms)| Row {
            bench,
            shape: shape.clone(),
            dtype: "bf16",
            flops,
            ours_ms,
            cublas_ms: None,
            diff: None,
        })
        .collect())
}
