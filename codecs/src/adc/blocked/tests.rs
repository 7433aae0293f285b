//! Tests of the blocked layout and scan: round trips, shape errors, bit-identical results
//! against the row-major float scan on adversarial tables, the soundness of the byte
//! threshold, and the SIMD quantization and block filter against their scalar references.

use std::collections::HashSet;
use std::sync::Arc;

use super::quantize::{KSUB, Plan, Quantizer, quantize_scalar};
use super::*;
use crate::adc::reference_scanner;
use crate::kmeans::SeededRng;
use crate::topk::Neighbor;

fn random_codes(n: usize, m: usize, rng: &mut SeededRng) -> Vec<u8> {
    (0..n * m).map(|_| rng.below(256) as u8).collect()
}

fn packed(codes: &[u8], n: usize, m: usize) -> Vec<u8> {
    let mut out = Vec::new();
    pack_into(codes, n, m, &mut out).unwrap();
    out
}

/// Families of tables, including the ones that break naive quantization.
#[derive(Debug, Clone, Copy)]
enum Table {
    Uniform,
    Signed,
    Huge,
    Overflowing,
    AllEqual,
    FewValues,
    LargeOffset,
    Subnormal,
    RowScales,
    WithInfinities,
    WithNaN,
}

const TABLES: [Table; 11] = [
    Table::Uniform,
    Table::Signed,
    Table::Huge,
    Table::Overflowing,
    Table::AllEqual,
    Table::FewValues,
    Table::LargeOffset,
    Table::Subnormal,
    Table::RowScales,
    Table::WithInfinities,
    Table::WithNaN,
];

fn make_lut(kind: Table, m: usize, rng: &mut SeededRng) -> Vec<f32> {
    let mut lut: Vec<f32> = (0..m * KSUB)
        .map(|i| {
            let u = rng.next_f64();
            match kind {
                Table::Uniform | Table::WithInfinities | Table::WithNaN => (u * 1000.0) as f32,
                Table::Signed => ((u - 0.5) * 2000.0) as f32,
                Table::Huge => ((u - 0.3) * 1e36) as f32,
                Table::Overflowing => ((u - 0.5) * 3e38) as f32,
                Table::AllEqual => 3.25,
                Table::FewValues => (rng.below(3) as f32) * 0.5,
                Table::LargeOffset => (1e6 + u * 10.0) as f32,
                Table::Subnormal => (u * 1e-40) as f32,
                Table::RowScales => (u * 10f64.powi((i / KSUB % 5) as i32)) as f32,
            }
        })
        .collect();
    let specials: &[f32] = match kind {
        Table::WithInfinities => &[f32::INFINITY, f32::NEG_INFINITY],
        Table::WithNaN => &[f32::NAN],
        _ => &[],
    };
    for &s in specials {
        for _ in 0..3 {
            let at = rng.below(lut.len());
            lut[at] = s;
        }
    }
    lut
}

fn key(list: &[Neighbor]) -> Vec<(u64, u32)> {
    list.iter().map(|n| (n.id, n.distance.to_bits())).collect()
}

/// A top-k in one of the states a scan can meet: empty, or already full from earlier
/// lists (with ties against this list's distances), with or without exclusions.
fn make_top(k: usize, warm_from: Option<&[f32]>, bias: f32, excluded: &[u64]) -> TopK {
    let mut top = TopK::new(k);
    if let Some(dist) = warm_from {
        for (i, &d) in dist.iter().enumerate().take(k) {
            top.push(1_000_000 + i as u64, d + bias);
        }
    }
    if !excluded.is_empty() {
        top.set_exclusions(Some(Arc::new(
            excluded.iter().copied().collect::<HashSet<_>>(),
        )));
    }
    top
}

/// Runs the blocked scan, its oracle, the portable path and the row-major reference from
/// the same starting top-k and asserts identical results.
fn assert_scans_agree(lut: &[f32], m: usize, codes: &[u8], n: usize, seed: u64) {
    let mut rng = SeededRng::new(seed);
    let ids: Vec<u64> = (0..n as u64).map(|i| i * 7 + 3).collect();
    let blocked = packed(codes, n, m);
    let mut dist = vec![0.0f32; n];
    crate::adc::distances_scalar(lut, KSUB, m, codes, &mut dist);
    let warm_dist: Vec<f32> = (0..n).map(|_| dist[rng.below(n)]).collect();
    for k in [0usize, 1, 10, 100] {
        for warm in [false, true] {
            let bias = [0.0f32, 2.5, -1e3][rng.below(3)];
            let excluded: Vec<u64> = if rng.below(2) == 0 {
                ids.iter().copied().filter(|_| rng.below(4) == 0).collect()
            } else {
                Vec::new()
            };
            let start = make_top(k, warm.then_some(&warm_dist[..]), bias, &excluded);
            let mut want = start.clone();
            reference_scanner(m, KSUB)
                .scan(lut, codes, &ids, bias, &mut want)
                .unwrap();
            let want = key(&want.into_sorted());
            let mut oracle = start.clone();
            scan_reference(lut, m, &blocked, n, &ids, bias, &mut oracle).unwrap();
            let mut fast = start.clone();
            scan(lut, m, &blocked, n, &ids, bias, &mut fast).unwrap();
            let mut portable = start;
            scan_exact_blocks(lut, m, &blocked, &ids, bias, &mut portable, 0);
            let ctx = format!("m {m} n {n} k {k} warm {warm} bias {bias} seed {seed}");
            assert_eq!(key(&oracle.into_sorted()), want, "oracle: {ctx}");
            assert_eq!(key(&fast.into_sorted()), want, "scan: {ctx}");
            assert_eq!(key(&portable.into_sorted()), want, "portable: {ctx}");
        }
    }
}

#[test]
fn pack_unpack_round_trip() {
    let mut rng = SeededRng::new(1);
    for n in [0usize, 1, 63, 64, 65, 300] {
        for m in 1..=64 {
            let codes = random_codes(n, m, &mut rng);
            let mut out = vec![7u8; 3];
            pack_into(&codes, n, m, &mut out).unwrap();
            assert_eq!(out.len(), 3 + packed_len(n, m), "n {n} m {m}");
            assert_eq!(out[..3], [7, 7, 7], "pack_into appends");
            assert_eq!(unpack(&out[3..], n, m).unwrap(), codes, "n {n} m {m}");
        }
    }
}

#[test]
fn layout_matches_the_documented_positions() {
    let (n, m) = (70, 3);
    let codes: Vec<u8> = (0..n * m).map(|i| (i % 251) as u8).collect();
    let p = packed(&codes, n, m);
    assert_eq!(p.len(), 2 * BLOCK * m);
    for i in 0..n {
        for j in 0..m {
            let at = i / BLOCK * BLOCK * m + j * BLOCK + lane_position(i % BLOCK);
            assert_eq!(p[at], codes[i * m + j], "vector {i} sub-quantizer {j}");
        }
    }
    let positions: HashSet<usize> = (0..BLOCK).map(lane_position).collect();
    assert_eq!(positions.len(), BLOCK);
    assert!(positions.iter().all(|&p| p < BLOCK));
    // Padding lanes hold zero codes.
    assert!((n % BLOCK..BLOCK).all(|l| p[BLOCK * m + lane_position(l)] == 0));
}

#[test]
fn bad_shapes_are_errors() {
    let (n, m) = (5, 4);
    let codes = vec![1u8; n * m];
    let mut out = Vec::new();
    assert!(pack_into(&codes[1..], n, m, &mut out).is_err());
    assert!(pack_into(&codes, n, 0, &mut out).is_err());
    assert!(pack_into(&codes, usize::MAX, 2, &mut out).is_err());
    assert!(out.is_empty(), "a failed pack appends nothing");
    let p = packed(&codes, n, m);
    assert!(unpack(&p[1..], n, m).is_err());
    assert!(unpack(&p, n, 0).is_err());
    assert!(unpack(&p, 65, m).is_err());
    let lut = vec![0.5f32; m * KSUB];
    let ids: Vec<u64> = (0..n as u64).collect();
    let mut top = TopK::new(3);
    for f in [scan, scan_reference] {
        assert!(f(&lut, m, &p, n, &ids, 0.0, &mut top).is_ok());
        assert!(f(&lut[1..], m, &p, n, &ids, 0.0, &mut top).is_err());
        assert!(f(&lut, m, &p[1..], n, &ids, 0.0, &mut top).is_err());
        assert!(f(&lut, m, &p, n, &ids[1..], 0.0, &mut top).is_err());
        assert!(f(&lut, m, &p, 65, &ids, 0.0, &mut top).is_err());
        assert!(f(&[], 0, &[], 0, &[], 0.0, &mut top).is_err());
    }
}

#[test]
fn scan_equals_the_row_major_float_scan() {
    let mut seed = 0;
    for kind in TABLES {
        for m in [1usize, 3, 8, 16, 17, 32, 64] {
            for n in [1usize, 63, 64, 65, 250] {
                seed += 1;
                let mut rng = SeededRng::new(seed);
                let lut = make_lut(kind, m, &mut rng);
                let codes = random_codes(n, m, &mut rng);
                assert_scans_agree(&lut, m, &codes, n, seed);
            }
        }
    }
}

#[test]
fn scan_equals_the_row_major_scan_for_large_m() {
    // 80 needs a heap table; 300 exceeds what u16 sums hold and must scan exactly.
    for (m, kind) in [
        (80, Table::Uniform),
        (80, Table::Signed),
        (300, Table::Uniform),
    ] {
        let mut rng = SeededRng::new(m as u64);
        let lut = make_lut(kind, m, &mut rng);
        let codes = random_codes(200, m, &mut rng);
        assert_scans_agree(&lut, m, &codes, 200, m as u64);
    }
}

#[test]
fn a_long_list_keeps_the_true_top_k() {
    let (m, n) = (16, 5000);
    let mut rng = SeededRng::new(77);
    let lut = make_lut(Table::Uniform, m, &mut rng);
    let codes = random_codes(n, m, &mut rng);
    assert_scans_agree(&lut, m, &codes, n, 77);
}

/// Byte sums of every vector of a packed list, from a quantized table (scalar).
fn byte_sums(table: &[u8], m: usize, codes: &[u8]) -> Vec<u32> {
    codes
        .chunks_exact(m)
        .map(|code| {
            code.iter()
                .enumerate()
                .map(|(j, &c)| u32::from(table[j * KSUB + usize::from(c)]))
                .sum()
        })
        .collect()
}

/// Thresholds a scan can meet for these distances: below all, around a few quantiles,
/// above all, and non-finite.
fn thresholds(dist: &[f32]) -> Vec<f32> {
    let mut sorted: Vec<f32> = dist.iter().copied().filter(|d| !d.is_nan()).collect();
    sorted.sort_by(f32::total_cmp);
    let mut t = vec![f32::NAN, f32::NEG_INFINITY, f32::INFINITY, 0.0, -1.0];
    if let (Some(&lo), Some(&hi)) = (sorted.first(), sorted.last()) {
        t.extend([lo, hi, lo - lo.abs() * 0.01 - 1.0, hi * 2.0]);
        t.extend(
            [1, 10, 40, 200]
                .iter()
                .filter_map(|&i| sorted.get(i).copied()),
        );
    }
    t
}

#[test]
fn the_byte_threshold_never_drops_a_vector_that_could_enter() {
    for (seed, kind) in TABLES.into_iter().enumerate() {
        for m in [1usize, 5, 16, 64, 257] {
            let n = 400;
            let mut rng = SeededRng::new(seed as u64 * 1000 + m as u64);
            let lut = make_lut(kind, m, &mut rng);
            let codes = random_codes(n, m, &mut rng);
            let mut dist = vec![0.0f32; n];
            crate::adc::distances_scalar(&lut, KSUB, m, &codes, &mut dist);
            for t in thresholds(&dist) {
                let mut table = vec![0u8; m * KSUB];
                let ctx = format!("{kind:?} m {m} t {t}");
                match quantize_scalar(&lut, m, t, &mut table) {
                    Plan::Filter(q) => {
                        let sums = byte_sums(&table, m, &codes);
                        for (&d, &s) in dist.iter().zip(&sums) {
                            // A code within t may meet any lower threshold down to its own
                            // distance later in the scan.
                            if d <= t {
                                let limit = q.limit(d).map_or(-1, i64::from);
                                assert!(i64::from(s) <= limit, "{ctx}: sum {s} > {limit}");
                            }
                        }
                    }
                    Plan::NothingPasses => {
                        assert!(!dist.iter().any(|&d| d <= t), "{ctx}");
                    }
                    Plan::Exact => assert!(
                        t == f32::INFINITY
                            || matches!(kind, Table::Overflowing | Table::WithInfinities),
                        "{ctx} should filter"
                    ),
                }
            }
        }
    }
}

#[test]
fn the_byte_threshold_is_tight_enough_to_filter() {
    // A filter that lets everything through would also pass the test above.
    let (m, n) = (16, 4000);
    let mut rng = SeededRng::new(9);
    let lut = make_lut(Table::Uniform, m, &mut rng);
    let codes = random_codes(n, m, &mut rng);
    let mut dist = vec![0.0f32; n];
    crate::adc::distances_scalar(&lut, KSUB, m, &codes, &mut dist);
    let mut sorted = dist.clone();
    sorted.sort_by(f32::total_cmp);
    let t = sorted[100];
    let mut table = vec![0u8; m * KSUB];
    let Plan::Filter(q) = quantize_scalar(&lut, m, t, &mut table) else {
        panic!("a finite threshold on a plain table filters");
    };
    let limit = u32::from(q.limit(t).unwrap());
    let passing = byte_sums(&table, m, &codes)
        .iter()
        .filter(|&&s| s <= limit)
        .count();
    assert!((101..=160).contains(&passing), "{passing} of {n} pass");
    assert_eq!(q.limit(f32::NAN), None);
    assert_eq!(q.limit(f32::NEG_INFINITY), None);
    assert_eq!(q.limit(f32::INFINITY), Some(u16::MAX));
}

#[test]
fn plans_for_unusual_tables_and_thresholds() {
    let filters = |p: Plan| matches!(p, Plan::Filter(_));
    assert_eq!(Quantizer::plan(&[], 1.0), Plan::Exact);
    assert_eq!(Quantizer::plan(&[0.0; 300], 1.0), Plan::Exact);
    assert_eq!(Quantizer::plan(&[0.0], f32::INFINITY), Plan::Exact);
    assert_eq!(Quantizer::plan(&[f32::NEG_INFINITY], 1.0), Plan::Exact);
    assert_eq!(Quantizer::plan(&[f32::INFINITY], 1.0), Plan::Exact);
    assert_eq!(Quantizer::plan(&[-3e38, 0.0], 1.0), Plan::Exact);
    assert_eq!(Quantizer::plan(&[0.0], f32::NAN), Plan::NothingPasses);
    assert_eq!(
        Quantizer::plan(&[0.0], f32::NEG_INFINITY),
        Plan::NothingPasses
    );
    assert_eq!(Quantizer::plan(&[1.0, 2.0], 2.5), Plan::NothingPasses);
    assert!(filters(Quantizer::plan(&[1.0, 2.0], 3.0)));
    assert!(filters(Quantizer::plan(&[2.0, 2.0], 1e30)));
    assert!(filters(Quantizer::plan(&[1e-40; 3], 1e-39)));
}

#[cfg(target_arch = "x86_64")]
#[test]
fn simd_quantization_matches_the_scalar_reference() {
    if !vbmi::available() {
        return;
    }
    for (seed, kind) in TABLES.into_iter().enumerate() {
        for m in [1usize, 7, 16, 64, 257] {
            let mut rng = SeededRng::new(seed as u64 + 31 * m as u64);
            let lut = make_lut(kind, m, &mut rng);
            let codes = random_codes(300, m, &mut rng);
            let mut dist = vec![0.0f32; 300];
            crate::adc::distances_scalar(&lut, KSUB, m, &codes, &mut dist);
            for t in thresholds(&dist) {
                let mut want = vec![0u8; m * KSUB];
                let want_plan = quantize_scalar(&lut, m, t, &mut want);
                let mut got = vec![0u8; m * KSUB];
                // SAFETY: `available()` checked; both buffers hold `m * 256` elements.
                let got_plan = unsafe { vbmi::quantize_avx512(&lut, m, t, got.as_mut_ptr()) };
                assert_eq!(got_plan, want_plan, "{kind:?} m {m} t {t}");
                if matches!(want_plan, Plan::Filter(_)) {
                    assert_eq!(got, want, "{kind:?} m {m} t {t}");
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn simd_block_filter_matches_scalar_sums() {
    if !vbmi::available() {
        return;
    }
    for m in [1usize, 2, 16, 33, 64, 257] {
        let mut rng = SeededRng::new(500 + m as u64);
        // Full-range entries stress the u16 wrap-around in the even/odd split.
        let table: Vec<u8> = (0..m * KSUB)
            .map(|i| {
                if i % 3 == 0 {
                    255
                } else {
                    rng.below(256) as u8
                }
            })
            .collect();
        let codes = random_codes(BLOCK, m, &mut rng);
        let block = packed(&codes, BLOCK, m);
        let sums = byte_sums(&table, m, &codes);
        let mut limits: Vec<u16> = sums.iter().map(|&s| s as u16).collect();
        limits.extend([0, 1, u16::MAX, (m * 255) as u16]);
        for limit in limits {
            let want = sums
                .iter()
                .enumerate()
                .filter(|&(_, &s)| s <= u32::from(limit))
                .fold(0u64, |acc, (lane, _)| acc | 1 << lane);
            // SAFETY: `available()` checked; the function asserts the lengths.
            let got = unsafe { vbmi::block_mask_for_tests(&table, m, &block, limit) };
            assert_eq!(got, want, "m {m} limit {limit}");
        }
    }
}
