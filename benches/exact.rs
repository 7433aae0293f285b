//! Exact search on generated data: `knn_l2` with a `u8` database and byte-valued queries
//! (the exact integer engine), the same with an f32 database (the f32 micro-kernels),
//! `knn_l2_f32` against 4096 coarse centroids (IVF probing), `nearest_l2` (k-means
//! assignment) and `l2_sqr_matrix`. They run on the global rayon pool: set
//! `RAYON_NUM_THREADS=1` for single-thread numbers.

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use vladdb::codecs::VectorsRef;
use vladdb::codecs::exact::{knn_l2, knn_l2_f32, l2_sqr_matrix, nearest_l2};

const DIM: usize = 128;

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

fn floats(n: usize, seed: u64) -> Vec<f32> {
    bytes(n, seed)
        .into_iter()
        .map(|b| f32::from(b) / 255.0)
        .collect()
}

fn bench_exact(c: &mut Criterion) {
    let (nq, nb, k) = (200, 100_000, 100);
    let base8 = bytes(nb * DIM, 1);
    let base_f: Vec<f32> = base8.iter().map(|&b| f32::from(b)).collect();
    let queries: Vec<f32> = bytes(nq * DIM, 2).into_iter().map(f32::from).collect();
    let view8 = VectorsRef::from_u8(&base8, DIM);
    let view_f = VectorsRef::from_f32(&base_f, DIM);
    let (Ok(view8), Ok(view_f)) = (view8, view_f) else {
        return;
    };

    let mut group = c.benchmark_group("exact");
    group.sample_size(10);
    group.throughput(Throughput::Elements(nq as u64));
    group.bench_function("knn_l2/u8-base/200x100k/k100", |b| {
        b.iter(|| knn_l2(black_box(&queries), &view8, k))
    });
    group.bench_function("knn_l2/f32-base/200x100k/k100", |b| {
        b.iter(|| knn_l2(black_box(&queries), &view_f, k))
    });
    group.bench_function("knn_l2/u8-base/1x100k/k100", |b| {
        b.iter(|| knn_l2(black_box(&queries[..DIM]), &view8, k))
    });

    let centroids = floats(4096 * DIM, 3);
    let points = floats(2000 * DIM, 4);
    group.throughput(Throughput::Elements(2000));
    group.bench_function("knn_l2_f32/2000x4096/k32", |b| {
        b.iter(|| knn_l2_f32(black_box(&points), &centroids, DIM, 32))
    });
    group.bench_function("nearest_l2/2000x4096", |b| {
        b.iter(|| nearest_l2(black_box(&points), &centroids, DIM))
    });
    let mut out = vec![0.0f32; 2000 * 4096];
    group.bench_function("l2_sqr_matrix/2000x4096", |b| {
        b.iter(|| l2_sqr_matrix(black_box(&points), &centroids, DIM, &mut out))
    });
    group.finish();
}

criterion_group!(benches, bench_exact);
criterion_main!(benches);
