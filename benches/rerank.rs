//! Re-ranking through the engine: a fast-scan IVF index with stored vectors (`RFlat`,
//! `RF16`) on generated clustered data, searched with re-rank factors 0 (codes only), 2
//! and 8, so the cost of reading and re-scoring `k × factor` stored vectors per query is
//! visible as a ratio against the plain scan in the same run.

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use vladdb::Database;
use vladdb::codecs::VectorsRef;
use vladdb::codecs::index::SearchParams;
use vladdb::codecs::kmeans::SeededRng;

const DIM: usize = 64;
const ROWS: usize = 100_000;
const QUERIES: usize = 256;

fn clustered(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = SeededRng::new(seed);
    let centres: Vec<f32> = (0..64 * DIM)
        .map(|_| rng.next_f64() as f32 * 100.0)
        .collect();
    let mut out = Vec::with_capacity(n * DIM);
    for _ in 0..n {
        let c = rng.below(64);
        out.extend((0..DIM).map(|d| centres[c * DIM + d] + (rng.next_f64() as f32 - 0.5) * 20.0));
    }
    out
}

fn bench_rerank(c: &mut Criterion) {
    let data = clustered(ROWS, 1);
    let queries = clustered(QUERIES, 2);
    let ids: Vec<u64> = (0..ROWS as u64).collect();
    let dir = std::env::temp_dir().join(format!("vladdb-bench-rerank-{}", std::process::id()));
    for spec in ["IVF256,PQ32x4fs,RFlat", "IVF256,PQ32x4fs,RF16"] {
        let path = dir.join(spec.replace(',', "_"));
        let _ = std::fs::remove_dir_all(&path);
        let db = Database::create(&path, spec, DIM).expect("create");
        let view = VectorsRef::from_f32(&data, DIM).expect("matrix");
        db.train(&view).expect("train");
        db.add(&view, &ids, None).expect("add");
        db.commit().expect("commit");
        let mut group = c.benchmark_group(format!("rerank/{spec}"));
        group.throughput(Throughput::Elements(QUERIES as u64));
        group.sample_size(10);
        for factor in [0usize, 2, 8] {
            let params = SearchParams {
                k: 100,
                nprobe: 16,
                rerank: factor,
            };
            group.bench_function(BenchmarkId::new("factor", factor), |b| {
                b.iter(|| {
                    db.search_batch(black_box(&queries), &params)
                        .expect("search")
                })
            });
        }
        group.finish();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench_rerank);
criterion_main!(benches);
