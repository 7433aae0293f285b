//! The blocked 8-bit PQ scan (`adc::blocked::scan`: byte-table VBMI pre-filter plus exact
//! re-check) against the row-major scanner (`adc::scanner(16, 256).scan`) on the same
//! codes, m = 16, k = 100, table quantization included in every call:
//! - `n250_cold`: one list of 250 codes into an empty top-100 (every code up to the 100th
//!   is pushed by both, so this is mostly heap work);
//! - `n250_warm`: the same list into a top-100 already filled by 15 other lists, as the
//!   16th probed list of an nprobe = 16 search sees it (the top-k is cloned outside the
//!   timing);
//! - `n1M`: one scan of 1,000,000 codes into an empty top-100.
//!
//! Before the criterion groups, each case is also timed interleaved (rows and blocked
//! alternating, many short rounds, thread CPU time, medians) and the ratio printed, which
//! holds up better than two separate criterion runs on a busy machine.
//!
//! Tables and codes are uniform random (seeded). With `VLADDB_BENCH_SIFT=<dir of
//! debian-sift>` the bench also runs a real IVF1024,PQ16 search (coarse quantizer and
//! residual PQ trained on 50k learn vectors, 200k base vectors, 32 queries, nprobe 16,
//! exact residual tables per list), first asserting that both scans return identical
//! results.

use criterion::{
    BatchSize, BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main,
};
use vladdb::codecs::TopK;
use vladdb::codecs::adc::{blocked, reference_scanner, scanner};
use vladdb::codecs::kmeans::{KMeansParams, SeededRng};

const M: usize = 16;
const K: usize = 100;

struct List {
    codes: Vec<u8>,
    packed: Vec<u8>,
    ids: Vec<u64>,
}

impl List {
    fn new(codes: Vec<u8>, ids: Vec<u64>) -> List {
        let mut packed = Vec::new();
        blocked::pack_into(&codes, ids.len(), M, &mut packed).expect("whole codes");
        List { codes, packed, ids }
    }

    fn random(n: usize, first_id: u64, rng: &mut SeededRng) -> List {
        let codes = (0..n * M).map(|_| rng.below(256) as u8).collect();
        List::new(codes, (first_id..first_id + n as u64).collect())
    }

    fn scan_rows(&self, lut: &[f32], top: &mut TopK) {
        scanner(M, 256)
            .scan(lut, &self.codes, &self.ids, 0.0, top)
            .expect("valid shapes");
    }

    fn scan_blocked(&self, lut: &[f32], top: &mut TopK) {
        blocked::scan(lut, M, &self.packed, self.ids.len(), &self.ids, 0.0, top)
            .expect("valid shapes");
    }
}

/// CPU time of this thread in nanoseconds: unlike wall time it does not count the time
/// other processes on a busy machine hold the core.
#[cfg(target_os = "linux")]
fn thread_cpu_ns() -> u64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, out: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `clock_gettime` from the C library (linked by std on Linux) writes one
    // `struct timespec` (two 64-bit fields on 64-bit Linux) through a valid pointer.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    t.sec as u64 * 1_000_000_000 + t.nsec as u64
}

/// Wall time elsewhere.
#[cfg(not(target_os = "linux"))]
fn thread_cpu_ns() -> u64 {
    use std::sync::OnceLock;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}

/// Median time per call (ns) of `rows` and `blocked`, timed alternately in `rounds` rounds of
/// `reps` calls each, and the median of the per-round ratios rows / blocked. `setup` makes
/// the state each call consumes (outside the timing).
fn interleaved<S>(
    rounds: usize,
    reps: usize,
    mut setup: impl FnMut() -> S,
    mut rows: impl FnMut(&mut S),
    mut blocked: impl FnMut(&mut S),
) -> (f64, f64, f64) {
    let mut time = |f: &mut dyn FnMut(&mut S)| {
        let mut states: Vec<S> = (0..reps).map(|_| setup()).collect();
        let start = thread_cpu_ns();
        for s in &mut states {
            f(s);
        }
        (thread_cpu_ns() - start) as f64 / reps as f64
    };
    let (mut a, mut b, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        let (ta, tb) = if r % 2 == 0 {
            let ta = time(&mut rows);
            (ta, time(&mut blocked))
        } else {
            let tb = time(&mut blocked);
            (time(&mut rows), tb)
        };
        a.push(ta);
        b.push(tb);
        ratio.push(ta / tb);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(&mut a), median(&mut b), median(&mut ratio))
}

fn report(name: &str, (rows, blocked, ratio): (f64, f64, f64)) {
    eprintln!(
        "interleaved {name}: rows {:.3} us, blocked ({}) {:.3} us, rows/blocked {ratio:.2}",
        rows / 1e3,
        blocked::kernel_name(),
        blocked / 1e3
    );
}

fn bench_synthetic(c: &mut Criterion) {
    let mut rng = SeededRng::new(16);
    let lut: Vec<f32> = (0..M * 256)
        .map(|_| rng.next_f64() as f32 * 1000.0)
        .collect();
    let earlier: Vec<List> = (0..15)
        .map(|l| List::random(250, l * 1000, &mut rng))
        .collect();
    let list = List::random(250, 1_000_000, &mut rng);
    let mut warm = TopK::new(K);
    for l in &earlier {
        l.scan_rows(&lut, &mut warm);
    }
    let kernel = blocked::kernel_name();
    report(
        "m16_n250_cold",
        interleaved(
            301,
            200,
            || TopK::new(K),
            |top| list.scan_rows(&lut, top),
            |top| list.scan_blocked(&lut, top),
        ),
    );
    report(
        "m16_n250_warm",
        interleaved(
            301,
            200,
            || warm.clone(),
            |top| list.scan_rows(&lut, top),
            |top| list.scan_blocked(&lut, top),
        ),
    );

    let mut group = c.benchmark_group("adc_blocked/m16_n250_cold");
    group.throughput(Throughput::Elements(250));
    group.bench_function("rows", |b| {
        b.iter(|| {
            let mut top = TopK::new(K);
            list.scan_rows(black_box(&lut), &mut top);
            top.len()
        })
    });
    group.bench_function(BenchmarkId::new("blocked", kernel), |b| {
        b.iter(|| {
            let mut top = TopK::new(K);
            list.scan_blocked(black_box(&lut), &mut top);
            top.len()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("adc_blocked/m16_n250_warm");
    group.throughput(Throughput::Elements(250));
    group.bench_function("rows", |b| {
        b.iter_batched_ref(
            || warm.clone(),
            |top| list.scan_rows(black_box(&lut), top),
            BatchSize::SmallInput,
        )
    });
    group.bench_function(BenchmarkId::new("blocked", kernel), |b| {
        b.iter_batched_ref(
            || warm.clone(),
            |top| list.scan_blocked(black_box(&lut), top),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // The fixed cost of the blocked scan: a threshold just above the smallest possible
    // distance, so the table is quantized and every block filtered, but nothing survives.
    let min_sum: f32 = lut
        .chunks(256)
        .map(|row| row.iter().fold(f32::INFINITY, |a, &b| a.min(b)))
        .sum();
    let mut tight = TopK::new(1);
    tight.push(u64::MAX, min_sum + 1.0);
    report(
        "m16_n250: warm rows vs blocked quantization + filter alone",
        interleaved(
            301,
            200,
            || (warm.clone(), tight.clone()),
            |(warm, _)| list.scan_rows(&lut, warm),
            |(_, tight)| list.scan_blocked(&lut, tight),
        ),
    );
    let big = List::random(1_000_000, 0, &mut rng);
    report(
        "m16_n1M",
        interleaved(
            21,
            1,
            || TopK::new(K),
            |top| big.scan_rows(&lut, top),
            |top| big.scan_blocked(&lut, top),
        ),
    );
    let mut group = c.benchmark_group("adc_blocked/m16_n1M");
    group.throughput(Throughput::Elements(1_000_000));
    group.sample_size(20);
    group.bench_function("rows", |b| {
        b.iter(|| {
            let mut top = TopK::new(K);
            big.scan_rows(black_box(&lut), &mut top);
            top.len()
        })
    });
    group.bench_function(BenchmarkId::new("blocked", kernel), |b| {
        b.iter(|| {
            let mut top = TopK::new(K);
            big.scan_blocked(black_box(&lut), &mut top);
            top.len()
        })
    });
    group.finish();
}

/// `count` vectors (from the first) of a `.bvecs` file, as floats.
fn read_bvecs(path: &std::path::Path, count: usize) -> Vec<f32> {
    let bytes = std::fs::read(path).expect("readable .bvecs");
    let dim = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
    bytes
        .chunks_exact(4 + dim)
        .take(count)
        .flat_map(|v| v[4..].iter().map(|&x| f32::from(x)))
        .collect()
}

/// An IVF1024,PQ16 search over debian-sift: per query, the probed lists and their tables.
struct IvfCase {
    lists: Vec<List>,
    /// Per query: (list, residual table) for each probed list, nearest first.
    probes: Vec<Vec<(usize, Vec<f32>)>>,
}

fn build_ivf_case(dir: &std::path::Path) -> IvfCase {
    use vladdb::codecs::ivf::CoarseQuantizer;
    use vladdb::codecs::pq::ProductQuantizer;
    let dim = 128;
    let (nlist, nprobe) = (1024, 16);
    let learn = read_bvecs(&dir.join("learn.bvecs"), 50_000);
    let base = read_bvecs(&dir.join("base.bvecs"), 200_000);
    let queries = read_bvecs(&dir.join("query.bvecs"), 32);
    let params = KMeansParams {
        iterations: 8,
        ..Default::default()
    };
    let coarse = CoarseQuantizer::train(&learn, dim, nlist, &params).expect("coarse");
    let residuals = |data: &[f32]| -> (Vec<u32>, Vec<f32>) {
        let assign = coarse.assign(data).expect("assign");
        let mut out = data.to_vec();
        for (row, &(l, _)) in out.chunks_exact_mut(dim).zip(&assign) {
            for (x, c) in row.iter_mut().zip(coarse.centroid(l as usize)) {
                *x -= c;
            }
        }
        (assign.iter().map(|a| a.0).collect(), out)
    };
    let mut pq = ProductQuantizer::new(dim, M, 8).expect("shape");
    pq.train(&residuals(&learn).1, &params).expect("pq");
    let (assign, base_residuals) = residuals(&base);
    let codes = pq.encode(&base_residuals).expect("encode");
    let mut per_list: Vec<(Vec<u8>, Vec<u64>)> = vec![(Vec::new(), Vec::new()); nlist];
    for (i, (&l, code)) in assign.iter().zip(codes.chunks_exact(M)).enumerate() {
        per_list[l as usize].0.extend_from_slice(code);
        per_list[l as usize].1.push(i as u64);
    }
    let lists = per_list
        .into_iter()
        .map(|(c, ids)| List::new(c, ids))
        .collect();
    let probes = coarse
        .probe(&queries, nprobe)
        .expect("probe")
        .into_iter()
        .zip(queries.chunks_exact(dim))
        .map(|(probed, q)| {
            probed
                .into_iter()
                .map(|(l, _)| {
                    let r: Vec<f32> = q
                        .iter()
                        .zip(coarse.centroid(l as usize))
                        .map(|(a, b)| a - b)
                        .collect();
                    (l as usize, pq.compute_lut(&r).expect("lut"))
                })
                .collect()
        })
        .collect();
    IvfCase { lists, probes }
}

fn bench_sift(c: &mut Criterion) {
    let Some(dir) = std::env::var_os("VLADDB_BENCH_SIFT") else {
        return;
    };
    let case = build_ivf_case(std::path::Path::new(&dir));
    // 0: the row-major scanner, 1: the blocked scan, 2: the row-major reference scanner
    // (sequential sums, the blocked scan's contract; the unrolled scanner sums in another
    // order, so its distances may differ in the last bits), 3: no scan. Each list's table
    // is first copied into one hot buffer, as a search that has just computed it would
    // hold it (mode 3 times that copy alone).
    let search = |which: u8| -> Vec<Vec<(u64, u32)>> {
        let mut hot = vec![0.0f32; M * 256];
        case.probes
            .iter()
            .map(|probes| {
                let mut top = TopK::new(K);
                for (l, lut) in probes {
                    let list = &case.lists[*l];
                    hot.copy_from_slice(lut);
                    match which {
                        0 => list.scan_rows(&hot, &mut top),
                        1 => list.scan_blocked(&hot, &mut top),
                        2 => reference_scanner(M, 256)
                            .scan(&hot, &list.codes, &list.ids, 0.0, &mut top)
                            .expect("valid shapes"),
                        _ => top.push(0, black_box(hot[0])),
                    }
                }
                let hits = top.into_sorted();
                hits.iter().map(|h| (h.id, h.distance.to_bits())).collect()
            })
            .collect()
    };
    assert_eq!(search(1), search(2), "identical results");
    // Pushes into the top-k (the same for every scan) bound what a faster scan can gain.
    let mut pushes = 0;
    for probes in &case.probes {
        let mut top = TopK::new(K);
        for (l, lut) in probes {
            let list = &case.lists[*l];
            let mut d = vec![0.0f32; list.ids.len()];
            vladdb::codecs::adc::distances_scalar(lut, 256, M, &list.codes, &mut d);
            for (&x, &id) in d.iter().zip(&list.ids) {
                if x <= top.threshold() {
                    top.push(id, x);
                    pushes += 1;
                }
            }
        }
    }
    let queries = case.probes.len();
    let scanned: usize = case
        .probes
        .iter()
        .flatten()
        .map(|(l, _)| case.lists[*l].ids.len())
        .sum();
    eprintln!(
        "sift_ivf1024_pq16_nprobe16: {:.0} codes scanned and {:.0} pushes per query",
        scanned as f64 / queries as f64,
        pushes as f64 / queries as f64
    );
    let (copy, _, _) = interleaved(31, 3, || (), |_| drop(search(3)), |_| drop(search(3)));
    eprintln!(
        "sift_ivf1024_pq16_nprobe16: table copies alone {:.3} us per query",
        copy / 1e3 / queries as f64
    );
    let (rows, blocked, ratio) =
        interleaved(31, 3, || (), |_| drop(search(0)), |_| drop(search(1)));
    report(
        "sift_ivf1024_pq16_nprobe16, per query",
        (rows / queries as f64, blocked / queries as f64, ratio),
    );
    eprintln!(
        "sift_ivf1024_pq16_nprobe16: without the table copies, rows/blocked {:.2}",
        (rows - copy) / (blocked - copy)
    );
    let mut group = c.benchmark_group("adc_blocked/sift_ivf1024_pq16_nprobe16");
    group.throughput(Throughput::Elements(scanned as u64));
    group.bench_function("rows", |b| b.iter(|| search(0).len()));
    group.bench_function(BenchmarkId::new("blocked", blocked::kernel_name()), |b| {
        b.iter(|| search(1).len())
    });
    group.finish();
}

criterion_group!(benches, bench_synthetic, bench_sift);
criterion_main!(benches);
