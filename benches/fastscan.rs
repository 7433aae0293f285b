//! 4-bit fast-scan kernels: codes per second of `fastscan::scan` over 2^20 codes for
//! m = 16, 32, 64 on every kernel this CPU runs (no candidate at all, and a top-100 that
//! lowers the threshold as it fills), the 8-bit ADC scan over the same number of codes as a
//! baseline, and the cost of quantising 16 float tables (one query's probed lists).

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use std::collections::BinaryHeap;
use std::time::Duration;
use vladdb::codecs::adc::scanner;
use vladdb::codecs::fastscan::{self, QuantizedTables};
use vladdb::codecs::kmeans::SeededRng;

const CODES: usize = 1 << 20;
const TABLES: usize = 16;

fn float_tables(rng: &mut SeededRng, count: usize, m: usize) -> Vec<Vec<f32>> {
    (0..count)
        .map(|_| {
            (0..16 * m)
                .map(|_| (rng.next_f64() * 1000.0) as f32)
                .collect()
        })
        .collect()
}

/// A top-k of u16 sums: the threshold is the k-th smallest once full.
fn top_k_scan(kernel: fastscan::Kernel, table: &[u8], m: usize, packed: &[u8], k: usize) -> usize {
    let mut heap: BinaryHeap<u16> = BinaryHeap::with_capacity(k + 1);
    let result = kernel.scan(table, m, packed, CODES, u16::MAX, |_, sum| {
        heap.push(sum);
        if heap.len() > k {
            heap.pop();
        }
        if heap.len() == k {
            heap.peek().copied().unwrap_or(u16::MAX)
        } else {
            u16::MAX
        }
    });
    result.map(|()| heap.len()).unwrap_or(0)
}

fn bench_scan(c: &mut Criterion) {
    for m in [16usize, 32, 64] {
        let mut rng = SeededRng::new(m as u64);
        let tables = float_tables(&mut rng, 1, m);
        let refs: Vec<&[f32]> = tables.iter().map(Vec::as_slice).collect();
        let quantized = QuantizedTables::quantize(&refs, m).expect("valid tables");
        let table = quantized.table(0);
        let codes: Vec<u8> = (0..CODES * m).map(|_| rng.below(16) as u8).collect();
        let packed = fastscan::pack(&codes, CODES, m).expect("valid codes");

        let mut group = c.benchmark_group(format!("fastscan_scan/m{m}"));
        group.throughput(Throughput::Elements(CODES as u64));
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(3));
        for kernel in fastscan::available() {
            group.bench_function(BenchmarkId::new("no_hits", kernel.name()), |b| {
                b.iter(|| {
                    let mut hits = 0usize;
                    let r = kernel.scan(table, m, black_box(&packed), CODES, 0, |_, s| {
                        hits += 1;
                        s
                    });
                    r.map(|()| hits)
                })
            });
            group.bench_function(BenchmarkId::new("top100", kernel.name()), |b| {
                b.iter(|| top_k_scan(kernel, table, m, black_box(&packed), 100))
            });
        }
        // Baseline: 8-bit ADC (256 centroids per sub-quantizer) on m / 2 bytes per code,
        // i.e. the same code size in bytes as 4-bit codes with m sub-quantizers.
        let m8 = m / 2;
        let lut: Vec<f32> = (0..m8 * 256)
            .map(|_| (rng.next_f64() * 1000.0) as f32)
            .collect();
        let codes8: Vec<u8> = (0..CODES * m8).map(|_| rng.below(256) as u8).collect();
        let mut out = vec![0.0f32; CODES];
        let adc = scanner(m8, 256);
        group.bench_function(BenchmarkId::new("adc8_distances", format!("m{m8}")), |b| {
            b.iter(|| adc.distances(black_box(&lut), black_box(&codes8), &mut out))
        });
        group.finish();
    }
}

/// The kernels' compute speed: 8,192 codes (at most 256 KiB) that stay in the L2 cache.
fn bench_in_cache(c: &mut Criterion) {
    const N: usize = 8192;
    for m in [16usize, 32, 64] {
        let mut rng = SeededRng::new(200 + m as u64);
        let table: Vec<u8> = (0..16 * m).map(|_| rng.below(256) as u8).collect();
        let codes: Vec<u8> = (0..N * m).map(|_| rng.below(16) as u8).collect();
        let packed = fastscan::pack(&codes, N, m).expect("valid codes");
        let mut group = c.benchmark_group(format!("fastscan_in_cache/m{m}"));
        group.throughput(Throughput::Elements(N as u64));
        group.sample_size(20);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        for kernel in fastscan::available().into_iter().skip(1) {
            group.bench_function(BenchmarkId::new("no_hits", kernel.name()), |b| {
                b.iter(|| kernel.scan(&table, m, black_box(&packed), N, 0, |_, s| s))
            });
        }
        group.finish();
    }
}

fn bench_quantize(c: &mut Criterion) {
    let mut group = c.benchmark_group("fastscan_quantize");
    group.throughput(Throughput::Elements(TABLES as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(2));
    for m in [16usize, 32, 64] {
        let mut rng = SeededRng::new(100 + m as u64);
        let tables = float_tables(&mut rng, TABLES, m);
        let refs: Vec<&[f32]> = tables.iter().map(Vec::as_slice).collect();
        group.bench_function(BenchmarkId::new("16_tables", format!("m{m}")), |b| {
            b.iter(|| QuantizedTables::quantize(black_box(&refs), m).map(|q| q.scale))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_scan, bench_in_cache, bench_quantize);
criterion_main!(benches);
