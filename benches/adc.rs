//! ADC scan kernels and look-up table construction for PQ codes (M = 8, 16, 32 bytes,
//! 8-bit sub-codes): every kernel this CPU runs (reference loop, unrolled portable,
//! AVX-512 gathers) over 1,024 codes, the full scan into a top-100 heap, and the per-query
//! (`compute_lut`, inner-product table) and per-list (precomputed-table add) table work.

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use vladdb::codecs::TopK;
use vladdb::codecs::adc::{gather_scanner, portable_scanner, reference_scanner, scanner};
use vladdb::codecs::kmeans::{KMeansParams, SeededRng};
use vladdb::codecs::pq::ProductQuantizer;

const CODES: usize = 1024;

fn random_lut_and_codes(m: usize, n: usize, seed: u64) -> (Vec<f32>, Vec<u8>, Vec<u64>) {
    let mut rng = SeededRng::new(seed);
    let lut: Vec<f32> = (0..m * 256)
        .map(|_| rng.next_f64() as f32 * 1000.0)
        .collect();
    let codes: Vec<u8> = (0..n * m).map(|_| rng.below(256) as u8).collect();
    let ids: Vec<u64> = (0..n as u64).collect();
    (lut, codes, ids)
}

fn bench_distances(c: &mut Criterion) {
    for m in [8usize, 16, 32] {
        let (lut, codes, ids) = random_lut_and_codes(m, CODES, m as u64);
        let mut out = vec![0.0f32; CODES];
        let mut group = c.benchmark_group(format!("adc_distances/m{m}"));
        group.throughput(Throughput::Elements(CODES as u64));
        let mut kernels = vec![
            ("reference", reference_scanner(m, 256)),
            ("portable", portable_scanner(m, 256)),
            ("best", scanner(m, 256)),
        ];
        kernels.extend(gather_scanner(m, 256).map(|s| ("gather", s)));
        for (name, s) in kernels {
            group.bench_function(BenchmarkId::new(name, format!("{:?}", s.kind())), |b| {
                b.iter(|| s.distances(black_box(&lut), black_box(&codes), &mut out))
            });
        }
        group.finish();
        let mut group = c.benchmark_group(format!("adc_scan_top100/m{m}"));
        group.throughput(Throughput::Elements(CODES as u64));
        for (name, s) in [
            ("portable", portable_scanner(m, 256)),
            ("best", scanner(m, 256)),
        ] {
            group.bench_function(name, |b| {
                b.iter(|| {
                    let mut top = TopK::new(100);
                    s.scan(black_box(&lut), black_box(&codes), &ids, 0.0, &mut top)
                        .map(|_| top.len())
                })
            });
        }
        group.finish();
    }
}

fn bench_luts(c: &mut Criterion) {
    let dim = 128;
    let mut rng = SeededRng::new(7);
    let train: Vec<f32> = (0..4096 * dim)
        .map(|_| rng.next_f64() as f32 * 255.0)
        .collect();
    let mut group = c.benchmark_group("lut");
    for m in [8usize, 16, 32] {
        let mut pq = ProductQuantizer::new(dim, m, 8).expect("valid shape");
        let params = KMeansParams {
            iterations: 2,
            ..Default::default()
        };
        pq.train(&train, &params).expect("enough points");
        let query = &train[..dim];
        let mut lut = vec![0.0f32; pq.lut_len()];
        group.bench_function(BenchmarkId::new("l2_table", m), |b| {
            b.iter(|| pq.compute_lut_into(black_box(query), &mut lut))
        });
        group.bench_function(BenchmarkId::new("ip_table", m), |b| {
            b.iter(|| pq.compute_ip_lut_into(black_box(query), -2.0, &mut lut))
        });
        let precomputed = vec![1.0f32; pq.lut_len()];
        let mut out = vec![0.0f32; pq.lut_len()];
        group.bench_function(BenchmarkId::new("precomputed_add", m), |b| {
            b.iter(|| {
                for ((o, &t), &q) in out.iter_mut().zip(black_box(&precomputed)).zip(&lut) {
                    *o = t + q;
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_distances, bench_luts);
criterion_main!(benches);
