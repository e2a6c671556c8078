//! Criterion benches for the CPU tensor ops that matter: matmul, conv2d at the
//! seed CNN's layer shapes, a large elementwise add, and the exp/tanh-based ops.
//! Run: `cargo bench -p keel-tensor --bench ops`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use keel_tensor::{DType, Device, Padding, Tensor};
use std::hint::black_box;

fn rand(seed: u64, shape: &[usize]) -> Tensor {
    Tensor::rand_uniform(seed, -1.0, 1.0, shape.to_vec(), DType::F32, &Device::Cpu).expect("random tensor")
}

fn matmul(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul_f32");
    for n in [256usize, 512, 1024, 2048] {
        let (a, b) = (rand(1, &[n, n]), rand(2, &[n, n]));
        g.throughput(Throughput::Elements((2 * n * n * n) as u64)); // FLOPs per iteration
        g.sample_size(if n >= 1024 { 10 } else { 20 });
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |bch, _| {
            bch.iter(|| black_box(a.matmul(&b).expect("matmul")))
        });
    }
    g.finish();
}

fn conv2d(c: &mut Criterion) {
    // The seed CNN's two conv layers at batch 32: [32,28,28,1]x[3,3,1,32] and [32,13,13,32]x[3,3,32,64].
    let mut g = c.benchmark_group("conv2d_f32");
    g.sample_size(20);
    for (name, x, k) in [("conv1_b32", [32, 28, 28, 1], [3, 3, 1, 32]), ("conv2_b32", [32, 13, 13, 32], [3, 3, 32, 64])]
    {
        let (xt, kt) = (rand(3, &x), rand(4, &k));
        let (oh, ow) = (x[1] - 2, x[2] - 2);
        g.throughput(Throughput::Elements((2 * x[0] * oh * ow * k[3] * k[0] * k[1] * k[2]) as u64));
        g.bench_function(format!("{name}_fwd"), |b| {
            b.iter(|| black_box(xt.conv2d(&kt, (1, 1), Padding::Valid, (1, 1)).expect("conv2d")))
        });
        let p = keel_tensor::Conv2dParams::new("bench", xt.shape(), kt.shape(), (1, 1), Padding::Valid, (1, 1))
            .expect("params");
        let dy = rand(5, p.out_shape().dims());
        g.bench_function(format!("{name}_grad_input"), |b| {
            b.iter(|| black_box(dy.conv2d_grad_input(&kt, &p).expect("grad")))
        });
        g.bench_function(format!("{name}_grad_kernel"), |b| {
            b.iter(|| black_box(xt.conv2d_grad_kernel(&dy, &p).expect("grad")))
        });
    }
    g.finish();
}

fn elementwise(c: &mut Criterion) {
    let n = 1 << 22;
    let (a, b) = (rand(6, &[n]), rand(7, &[n]));
    let mut g = c.benchmark_group("elementwise_f32");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(20);
    g.bench_function("add_4M", |bch| bch.iter(|| black_box(a.add(&b).expect("add"))));
    // a dropout mask's draw
    g.bench_function("rand_uniform_4M", |bch| {
        bch.iter(|| black_box(Tensor::rand_uniform(8, 0.0, 1.0, [n], DType::F32, &Device::Cpu).expect("rand")))
    });
    g.finish();
}

/// Every conv and pooling op of one seed-CNN training step at batch 128, one bench each.
fn seed_cnn_b128(c: &mut Criterion) {
    let mut g = c.benchmark_group("seed_cnn_b128");
    g.sample_size(20);
    for (name, x, k) in [("conv1", [128, 28, 28, 1], [3, 3, 1, 32]), ("conv2", [128, 13, 13, 32], [3, 3, 32, 64])] {
        let (xt, kt) = (rand(3, &x), rand(4, &k));
        let p = keel_tensor::Conv2dParams::new("bench", xt.shape(), kt.shape(), (1, 1), Padding::Valid, (1, 1))
            .expect("params");
        let dy = rand(5, p.out_shape().dims());
        g.bench_function(format!("{name}_fwd"), |b| {
            b.iter(|| black_box(xt.conv2d(&kt, (1, 1), Padding::Valid, (1, 1)).expect("conv2d")))
        });
        g.bench_function(format!("{name}_grad_input"), |b| {
            b.iter(|| black_box(dy.conv2d_grad_input(&kt, &p).expect("grad")))
        });
        g.bench_function(format!("{name}_grad_kernel"), |b| {
            b.iter(|| black_box(xt.conv2d_grad_kernel(&dy, &p).expect("grad")))
        });
    }
    for (name, x) in [("pool1", [128, 26, 26, 32]), ("pool2", [128, 11, 11, 64])] {
        let xt = rand(6, &x);
        g.bench_function(format!("{name}_fwd"), |b| {
            b.iter(|| black_box(xt.max_pool2d((2, 2), (2, 2), Padding::Valid).expect("pool")))
        });
        let (y, idx) = xt.max_pool2d((2, 2), (2, 2), Padding::Valid).expect("pool");
        let p = keel_tensor::Pool2dParams::new("bench", xt.shape(), (2, 2), (2, 2), Padding::Valid).expect("params");
        let dy = rand(7, y.dims());
        g.bench_function(format!("{name}_grad"), |b| b.iter(|| black_box(dy.max_pool2d_grad(&idx, &p).expect("grad"))));
    }
    // the backward of Conv2D(relu)'s bias + ReLU: one pass, and the two ops it replaces
    for (name, x) in [("conv1", [128, 26, 26, 32]), ("conv2", [128, 11, 11, 64])] {
        let (y, dy) = (rand(17, &x).relu().expect("relu"), rand(18, &x));
        g.bench_function(format!("{name}_relu_bias_grad"), |b| {
            b.iter(|| black_box(y.relu_grad_with_bias_grad(&dy).expect("grad")))
        });
        g.bench_function(format!("{name}_relu_grad_then_sum"), |b| {
            b.iter(|| {
                let gz = y.unary_grad(&dy, keel_tensor::UnaryOp::Relu, 0.0).expect("grad");
                black_box((gz.sum(&[0, 1, 2], false).expect("sum"), gz))
            })
        });
    }
    g.finish();
}

/// The ops built on exp and tanh: the activations, their gradients, softmax and the
/// fused LSTM cell (the shapes of an LSTM(128) step at batch 128, and a large tensor).
fn transcendental(c: &mut Criterion) {
    let mut g = c.benchmark_group("transcendental_f32");
    g.sample_size(20);
    for (name, shape) in [("128x512", [128usize, 512]), ("1024x1024", [1024, 1024])] {
        let x = rand(8, &shape);
        let dy = rand(9, &shape);
        g.throughput(Throughput::Elements((shape[0] * shape[1]) as u64));
        g.bench_function(format!("tanh_{name}"), |b| b.iter(|| black_box(x.tanh().expect("tanh"))));
        g.bench_function(format!("sigmoid_{name}"), |b| b.iter(|| black_box(x.sigmoid().expect("sigmoid"))));
        g.bench_function(format!("exp_{name}"), |b| b.iter(|| black_box(x.exp().expect("exp"))));
        g.bench_function(format!("tanh_grad_{name}"), |b| {
            b.iter(|| black_box(x.unary_grad(&dy, keel_tensor::UnaryOp::Tanh, 0.0).expect("grad")))
        });
        g.bench_function(format!("softmax_{name}"), |b| b.iter(|| black_box(x.softmax(-1).expect("softmax"))));
    }
    let (z, c0) = (rand(10, &[128, 512]), rand(11, &[128, 128]));
    g.throughput(Throughput::Elements(128 * 128));
    g.bench_function("lstm_cell_b128_u128", |b| b.iter(|| black_box(z.lstm_cell(None, &c0).expect("lstm_cell"))));
    let (_, c, gates) = z.lstm_cell(None, &c0).expect("lstm_cell");
    let (dh, dc) = (rand(12, &[128, 128]), rand(13, &[128, 128]));
    g.bench_function("lstm_cell_grad_b128_u128", |b| {
        b.iter(|| black_box(gates.lstm_cell_grad(&c0, &c, &[&dh], Some(&dc)).expect("lstm_cell_grad")))
    });
    let (x, p, h0) = (rand(14, &[128, 384]), rand(15, &[128, 384]), rand(16, &[128, 128]));
    g.bench_function("gru_cell_b128_u128", |b| b.iter(|| black_box(x.gru_cell(&p, &h0).expect("gru_cell"))));
    let (_, gates) = x.gru_cell(&p, &h0).expect("gru_cell");
    g.bench_function("gru_cell_grad_b128_u128", |b| {
        b.iter(|| black_box(gates.gru_cell_grad(&p, &h0, &[&dh]).expect("gru_cell_grad")))
    });
    g.finish();
}

criterion_group!(benches, matmul, conv2d, elementwise, seed_cnn_b128, transcendental);
criterion_main!(benches);
