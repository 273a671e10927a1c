//! criterion benches: f32 and int8 GEMM on a few shapes of the peer list, every runnable
//! kernel forced in turn (so a kernel's regressions show up on its own line).
//! `cargo bench --bench sgemm [-- <filter>]`. For the full table with % of peak, use
//! `cargo run --release --example bench`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edgemm::{Context, Kernel, KernelKind, MatMut, MatRef};

const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("sq64", 64, 64, 64),
    ("sq256", 256, 256, 256),
    ("sq1024", 1024, 1024, 1024),
    ("gemv_1x1000x1024", 1, 1000, 1024),
    ("conv_3136x64x576", 3136, 64, 576),
    ("fc_49x1024x1024", 49, 1024, 1024),
];

fn gemm(c: &mut Criterion) {
    for info in edgemm::kernels().filter(|k| k.runnable) {
        let kernel = Kernel::by_name(info.name).unwrap();
        let mut group = c.benchmark_group(info.name);
        group.sample_size(20);
        for &(label, m, n, k) in SHAPES {
            group.throughput(Throughput::Elements((2 * m * n * k) as u64));
            match info.kind {
                KernelKind::F32 => {
                    let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.1 - 0.6).collect();
                    let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect();
                    let mut out = vec![0f32; m * n];
                    group.bench_function(BenchmarkId::from_parameter(label), |bench| {
                        bench.iter(|| {
                            edgemm::sgemm(
                                1.0,
                                MatRef::row_major(&a, m, k).unwrap(),
                                MatRef::row_major(&b, k, n).unwrap(),
                                0.0,
                                MatMut::row_major(&mut out, m, n).unwrap(),
                                Context::new().kernel(kernel),
                            )
                            .unwrap()
                        })
                    });
                }
                KernelKind::Int8 => {
                    let a: Vec<u8> = (0..m * k).map(|i| (i % 251) as u8).collect();
                    let b: Vec<i8> = (0..k * n).map(|i| (i % 255) as i8).collect();
                    let mut out = vec![0i32; m * n];
                    group.bench_function(BenchmarkId::from_parameter(label), |bench| {
                        bench.iter(|| {
                            edgemm::qgemm(
                                MatRef::row_major(&a, m, k).unwrap(),
                                0,
                                MatRef::row_major(&b, k, n).unwrap(),
                                0,
                                MatMut::row_major(&mut out, m, n).unwrap(),
                                Context::new().kernel(kernel),
                            )
                            .unwrap()
                        })
                    });
                }
            }
        }
        group.finish();
    }
}

criterion_group!(benches, gemm);
criterion_main!(benches);
