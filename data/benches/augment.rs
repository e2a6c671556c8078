//! Augmented 28x28x1 images per second with the seed example's generator
//! (rotation_range=10, zoom_range=0.1, width/height_shift_range=0.1).
//!
//! Run: `cargo bench -p keel-data --bench augment` (criterion reports elements/s = images/s).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keel_data::augment::ImageDataGenerator;
use keel_data::datasets::mnist;
use keel_data::BatchSource;
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let ((x, y), _) = mnist::load().expect("embedded MNIST");
    let n = 1024;
    let x = x.narrow(0, 0, n).expect("narrow").unsqueeze(-1).expect("unsqueeze");
    let y = y.narrow(0, 0, n).expect("narrow");
    let gen =
        ImageDataGenerator::new().rotation_range(10.0).zoom_range(0.1).width_shift_range(0.1).height_shift_range(0.1);
    let mut g = c.benchmark_group("augment_mnist_28x28");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(20);
    g.bench_function("augment_batch_1024", |b| {
        let mut epoch = 0;
        b.iter(|| {
            epoch += 1;
            black_box(gen.augment_batch(&x, 1, epoch).expect("augment"))
        })
    });
    let mut flow = gen.flow(&x, &y, 32).expect("flow").seed(1);
    g.bench_function("flow_epoch_bs32_1024", |b| {
        let mut epoch = 0;
        b.iter(|| {
            epoch += 1;
            for batch in flow.batches(epoch) {
                black_box(batch.expect("batch"));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
