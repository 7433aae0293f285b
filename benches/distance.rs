//! Distance kernels, every path this CPU supports (scalar, AVX2, AVX-512 / NEON), at
//! d = 128 (SIFT) and d = 960 (GIST): one query against 256 rows, so the numbers include
//! streaming rows from L1/L2 as a scan does.

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use vladdb::codecs::distance::available;

const ROWS: usize = 256;

/// Deterministic pseudo-random bytes (xorshift64*).
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

fn bench_kernels(c: &mut Criterion) {
    for dim in [128usize, 960] {
        let base8 = bytes(ROWS * dim, 1);
        let query8 = bytes(dim, 2);
        let base: Vec<f32> = base8.iter().map(|&b| f32::from(b) * 0.5).collect();
        let query: Vec<f32> = query8.iter().map(|&b| f32::from(b) * 0.5).collect();
        let mut group = c.benchmark_group(format!("distance/d{dim}"));
        group.throughput(Throughput::Elements(ROWS as u64));
        for (name, k) in available() {
            group.bench_function(BenchmarkId::new("l2_sqr", name), |b| {
                b.iter(|| {
                    base.chunks_exact(dim)
                        .map(|x| (k.l2_sqr)(black_box(&query), x))
                        .sum::<f32>()
                })
            });
            group.bench_function(BenchmarkId::new("inner_product", name), |b| {
                b.iter(|| {
                    base.chunks_exact(dim)
                        .map(|x| (k.inner_product)(black_box(&query), x))
                        .sum::<f32>()
                })
            });
            group.bench_function(BenchmarkId::new("l2_sqr_u8_f32", name), |b| {
                b.iter(|| {
                    base8
                        .chunks_exact(dim)
                        .map(|x| (k.l2_sqr_u8_f32)(x, black_box(&query)))
                        .sum::<f32>()
                })
            });
            group.bench_function(BenchmarkId::new("inner_product_u8_f32", name), |b| {
                b.iter(|| {
                    base8
                        .chunks_exact(dim)
                        .map(|x| (k.inner_product_u8_f32)(x, black_box(&query)))
                        .sum::<f32>()
                })
            });
            group.bench_function(BenchmarkId::new("l2_sqr_u8", name), |b| {
                b.iter(|| {
                    base8
                        .chunks_exact(dim)
                        .map(|x| (k.l2_sqr_u8)(x, black_box(&query8)))
                        .sum::<f32>()
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_kernels);
criterion_main!(benches);
