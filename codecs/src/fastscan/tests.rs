//! Fast-scan tests on small generated data (fixed seeds): layout and round trips, every
//! kernel against the scalar oracle (exact u16 sums), scan semantics with threshold updates,
//! the quantisation error bound, overflow limits and argument errors.

use super::*;
use crate::kmeans::SeededRng;

fn random_codes(rng: &mut SeededRng, n: usize, m: usize) -> Vec<u8> {
    (0..n * m).map(|_| rng.below(16) as u8).collect()
}

/// A u8 table where about a quarter of the entries are 255 (the worst case for overflow).
fn random_table(rng: &mut SeededRng, m: usize) -> Vec<u8> {
    (0..16 * m)
        .map(|_| {
            if rng.below(4) == 0 {
                255
            } else {
                rng.below(256) as u8
            }
        })
        .collect()
}

/// Exact sum (u32) of row `i` of `codes` against `table`.
fn exact_sum(table: &[u8], codes: &[u8], m: usize, i: usize) -> u32 {
    (0..m)
        .map(|j| u32::from(table[16 * j + usize::from(codes[i * m + j])]))
        .sum()
}

/// Every `(row, sum)` a scan reports, with a callback that sets the threshold to `next`.
fn collect(
    run: impl FnOnce(&mut dyn FnMut(usize, u16) -> u16) -> Result<()>,
    mut next: impl FnMut(usize, u16) -> u16,
) -> Vec<(usize, u16)> {
    let mut hits = Vec::new();
    let mut callback = |i: usize, s: u16| {
        hits.push((i, s));
        next(i, s)
    };
    run(&mut callback).unwrap();
    hits
}

#[test]
fn pack_unpack_round_trip() {
    let mut rng = SeededRng::new(1);
    for m in [1usize, 2, 3, 5, 8, 16, 17, 33, 64] {
        for n in [0usize, 1, 31, 32, 33, 100] {
            let codes = random_codes(&mut rng, n, m);
            let packed = pack(&codes, n, m).unwrap();
            assert_eq!(packed.len(), packed_len(n, m));
            assert_eq!(packed.len(), n.div_ceil(32) * 16 * (m + m % 2));
            assert_eq!(unpack(&packed, n, m).unwrap(), codes, "n={n} m={m}");
            // Padding rows and the padding sub-quantizer hold code 0.
            let rows = n.div_ceil(32) * 32;
            for i in 0..rows {
                for j in 0..padded_m(m) {
                    if i >= n || j >= m {
                        assert_eq!(pack::code_at(&packed, padded_m(m), i, j), 0);
                    }
                }
            }
        }
    }
}

#[test]
fn layout_matches_documented_formula() {
    let (n, m) = (70usize, 5usize);
    let mut rng = SeededRng::new(2);
    let codes = random_codes(&mut rng, n, m);
    let mut out = vec![0xAAu8; 3];
    pack_into(&codes, n, m, &mut out).unwrap();
    assert_eq!(&out[..3], &[0xAA; 3], "pack_into appends");
    let packed = &out[3..];
    let m_pad = 6;
    for v in 0..n {
        let (b, h, i) = (v / 32, (v % 32) / 16, v % 16);
        for j in 0..m {
            let (p, s) = (j / 2, j % 2);
            let byte = packed[b * 16 * m_pad + 32 * p + 16 * s + i];
            assert_eq!((byte >> (4 * h)) & 15, codes[v * m + j], "v={v} j={j}");
        }
    }
}

#[test]
fn pack_and_unpack_reject_bad_arguments() {
    assert!(pack(&[1, 2, 3], 1, 3).is_ok());
    assert!(pack(&[1, 2, 16], 1, 3).is_err());
    assert!(pack(&[1, 2], 1, 3).is_err());
    assert!(pack(&[], 0, 0).is_err());
    assert!(pack(&[0; 4], usize::MAX / 2, 4).is_err());
    let mut out = vec![7u8];
    assert!(pack_into(&[200], 1, 1, &mut out).is_err());
    assert_eq!(out, vec![7], "failed pack_into leaves the output alone");
    let packed = pack(&[0; 6], 2, 3).unwrap();
    assert!(unpack(&packed, 2, 3).is_ok());
    assert!(unpack(&packed[1..], 2, 3).is_err());
    assert!(unpack(&packed, 2, 0).is_err());
    assert!(unpack(&packed, 33, 3).is_err());
}

#[test]
fn scalar_module_matches_exact_sums() {
    let mut rng = SeededRng::new(3);
    for m in [1usize, 2, 3, 4, 7, 16, 31, 64] {
        let n = 32;
        let codes = random_codes(&mut rng, n, m);
        let table = random_table(&mut rng, m);
        let packed = pack(&codes, n, m).unwrap();
        let mut sums = [0u16; BLOCK];
        Kernel::Scalar
            .block_sums(&table, m, &packed, &mut sums)
            .unwrap();
        for (i, &s) in sums.iter().enumerate() {
            assert_eq!(u32::from(s), exact_sum(&table, &codes, m, i), "m={m} i={i}");
        }
    }
}

#[test]
fn every_kernel_block_sums_match_scalar_exactly() {
    let mut rng = SeededRng::new(4);
    let kernels = available();
    for m in 1usize..=64 {
        let n = 64;
        let codes = random_codes(&mut rng, n, m);
        let table = random_table(&mut rng, m);
        let mut padded_table = table.clone();
        // A table of 16 * m_pad bytes whose padding entries are garbage must be ignored.
        padded_table.resize(block_bytes(m), 0x77);
        let packed = pack(&codes, n, m).unwrap();
        for block in packed.chunks_exact(block_bytes(m)) {
            let mut expected = [0u16; BLOCK];
            Kernel::Scalar
                .block_sums(&table, m, block, &mut expected)
                .unwrap();
            for &kernel in &kernels {
                for t in [&table, &padded_table] {
                    let mut got = [0u16; BLOCK];
                    kernel.block_sums(t, m, block, &mut got).unwrap();
                    assert_eq!(got, expected, "{} m={m}", kernel.name());
                }
            }
        }
    }
}

#[test]
fn scan_reports_exactly_the_rows_under_a_fixed_threshold() {
    let mut rng = SeededRng::new(5);
    for (m, n) in [
        (1usize, 5usize),
        (3, 33),
        (8, 100),
        (16, 257),
        (32, 64),
        (64, 95),
    ] {
        let codes = random_codes(&mut rng, n, m);
        let table = random_table(&mut rng, m);
        let packed = pack(&codes, n, m).unwrap();
        let sums: Vec<u16> = (0..n)
            .map(|i| exact_sum(&table, &codes, m, i) as u16)
            .collect();
        let mut sorted = sums.clone();
        sorted.sort_unstable();
        for threshold in [0, sorted[n / 3], sorted[n - 1], u16::MAX] {
            let expected: Vec<(usize, u16)> = (0..n)
                .filter(|&i| sums[i] <= threshold)
                .map(|i| (i, sums[i]))
                .collect();
            let reference = collect(
                |h| scan_reference(&table, m, &packed, n, threshold, h),
                |_, _| threshold,
            );
            assert_eq!(reference, expected);
            for kernel in available() {
                let got = collect(
                    |h| kernel.scan(&table, m, &packed, n, threshold, h),
                    |_, _| threshold,
                );
                assert_eq!(got, expected, "{} m={m} n={n} t={threshold}", kernel.name());
            }
        }
    }
}

#[test]
fn scan_honours_threshold_updates_like_the_oracle() {
    let mut rng = SeededRng::new(6);
    for (m, n) in [(4usize, 300usize), (16, 1000), (17, 500), (64, 200)] {
        let codes = random_codes(&mut rng, n, m);
        let table = random_table(&mut rng, m);
        let packed = pack(&codes, n, m).unwrap();
        // A top-5 (lowering threshold) and an erratic callback that also raises it.
        let top5 = || {
            let mut best: Vec<u16> = Vec::new();
            move |_: usize, s: u16| {
                best.push(s);
                best.sort_unstable();
                best.truncate(5);
                if best.len() == 5 { best[4] } else { u16::MAX }
            }
        };
        let erratic = || {
            let mut state = 12345u64;
            move |i: usize, s: u16| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(i as u64);
                if state >> 62 == 0 {
                    u16::MAX
                } else {
                    s.saturating_sub((state >> 40) as u16 % 64)
                }
            }
        };
        let expected_top = collect(
            |h| scan_reference(&table, m, &packed, n, u16::MAX, h),
            top5(),
        );
        let expected_erratic = collect(
            |h| scan_reference(&table, m, &packed, n, u16::MAX, h),
            erratic(),
        );
        assert!(expected_top.len() >= 5 && expected_top.len() < n);
        for kernel in available() {
            let got = collect(|h| kernel.scan(&table, m, &packed, n, u16::MAX, h), top5());
            assert_eq!(got, expected_top, "{} m={m}", kernel.name());
            let got = collect(
                |h| kernel.scan(&table, m, &packed, n, u16::MAX, h),
                erratic(),
            );
            assert_eq!(got, expected_erratic, "{} m={m}", kernel.name());
        }
        let dispatched = collect(|h| scan(&table, m, &packed, n, u16::MAX, h), top5());
        assert_eq!(dispatched, expected_top);
    }
}

#[test]
fn padding_rows_are_never_reported() {
    // Padding codes are 0; make code 0 the cheapest so padding rows would pass.
    let m = 6;
    let mut table = vec![200u8; 16 * m];
    for j in 0..m {
        table[16 * j] = 0;
    }
    for n in [1usize, 31, 33, 63] {
        let codes = vec![5u8; n * m];
        let packed = pack(&codes, n, m).unwrap();
        for kernel in available() {
            let got = collect(
                |h| kernel.scan(&table, m, &packed, n, u16::MAX, h),
                |_, _| u16::MAX,
            );
            assert_eq!(got.len(), n, "{}", kernel.name());
            assert!(got.iter().all(|&(i, s)| i < n && s == 1200));
        }
    }
}

#[test]
fn sums_at_the_overflow_limit_are_exact() {
    let mut rng = SeededRng::new(7);
    // m = 257 with all-255 tables reaches exactly 65535; m = 300 uses max_entry 218.
    for (m, entry) in [
        (64usize, 255u8),
        (257, 255),
        (300, QuantizedTables::max_entry_for(300)),
    ] {
        assert!(u32::from(entry) * padded_m(m) as u32 <= 65535 || m == 257);
        let n = 40;
        let codes = random_codes(&mut rng, n, m);
        let table = vec![entry; 16 * m];
        let packed = pack(&codes, n, m).unwrap();
        for kernel in available() {
            let got = collect(
                |h| kernel.scan(&table, m, &packed, n, u16::MAX, h),
                |_, _| u16::MAX,
            );
            assert_eq!(got.len(), n);
            for (i, s) in got {
                assert_eq!(
                    u32::from(s),
                    exact_sum(&table, &codes, m, i),
                    "{}",
                    kernel.name()
                );
            }
        }
    }
    // Beyond 257 a table that could overflow is rejected, not silently wrapped.
    let m = 258;
    let packed = pack(&vec![0u8; m], 1, m).unwrap();
    assert!(scan(&vec![255u8; 16 * m], m, &packed, 1, u16::MAX, |_, s| s).is_err());
    assert!(scan(&vec![254u8; 16 * m], m, &packed, 1, u16::MAX, |_, s| s).is_ok());
}

#[test]
fn scan_rejects_bad_arguments() {
    let (m, n) = (5usize, 40usize);
    let packed = pack(&vec![1u8; n * m], n, m).unwrap();
    let table = vec![1u8; 16 * m];
    for kernel in available() {
        assert!(kernel.scan(&table, m, &packed, n, 9, |_, s| s).is_ok());
        assert!(
            kernel
                .scan(&table[1..], m, &packed, n, 9, |_, s| s)
                .is_err()
        );
        assert!(
            kernel
                .scan(&table, m, &packed[..packed.len() - 1], n, 9, |_, s| s)
                .is_err()
        );
        assert!(
            kernel
                .scan(&table, m, &packed, n + 30, 9, |_, s| s)
                .is_err()
        );
        assert!(kernel.scan(&table, 0, &packed, n, 9, |_, s| s).is_err());
        let mut out = [0u16; BLOCK];
        assert!(
            kernel
                .block_sums(&table, m, &packed[..10], &mut out)
                .is_err()
        );
        assert!(
            kernel
                .block_sums(&table[..16], m, &packed[..96], &mut out)
                .is_err()
        );
    }
    assert!(scan_reference(&table, m, &packed[1..], n, 9, |_, s| s).is_err());
    assert!(available().contains(&best_kernel()));
    assert_eq!(kernel_name(), best_kernel().name());
}

/// Float tables with sub-quantizer ranges that differ between tables (as between IVF lists).
fn float_tables(rng: &mut SeededRng, count: usize, m: usize) -> Vec<Vec<f32>> {
    (0..count)
        .map(|t| {
            let base = 100.0 * t as f64 - 50.0;
            (0..16 * m)
                .map(|_| (base + rng.next_f64() * (1.0 + t as f64) * 37.0) as f32)
                .collect()
        })
        .collect()
}

#[test]
fn quantization_error_is_within_the_documented_bound() {
    let mut rng = SeededRng::new(8);
    for m in [1usize, 7, 16, 32, 64, 300] {
        let tables = float_tables(&mut rng, 4, m);
        let refs: Vec<&[f32]> = tables.iter().map(Vec::as_slice).collect();
        let q = QuantizedTables::quantize(&refs, m).unwrap();
        assert_eq!(q.len(), 4);
        let max_entry = QuantizedTables::max_entry_for(m);
        let top = (0..4)
            .flat_map(|t| q.table(t).iter().copied())
            .max()
            .unwrap();
        assert_eq!(
            top, max_entry,
            "the widest sub-quantizer uses the full range"
        );
        // The documented bound: m * (0.5 + 2^-14) / scale (the 2^-14 is f32 level rounding).
        let bound = m as f64 * (0.5 + 1.0 / 16384.0) / f64::from(q.scale);
        let n = 50;
        let codes = random_codes(&mut rng, n, m);
        let packed = pack(&codes, n, m).unwrap();
        for (t, float_table) in tables.iter().enumerate() {
            assert_eq!(q.table(t).len(), 16 * padded_m(m));
            assert!(q.table(t)[16 * m..].iter().all(|&x| x == 0));
            let got = collect(
                |h| scan(q.table(t), m, &packed, n, u16::MAX, h),
                |_, _| u16::MAX,
            );
            assert_eq!(got.len(), n);
            for (i, sum) in got {
                let float_sum: f64 = (0..m)
                    .map(|j| f64::from(float_table[16 * j + usize::from(codes[i * m + j])]))
                    .sum();
                let approx = f64::from(q.to_float(t, sum));
                let slack = 1e-6 * float_sum.abs().max(1.0);
                assert!(
                    (approx - float_sum).abs() <= bound + slack,
                    "m={m} t={t} i={i}: {approx} vs {float_sum} (bound {bound})"
                );
            }
        }
    }
}

#[test]
fn quantize_paths_agree_bit_for_bit() {
    let mut rng = SeededRng::new(10);
    for m in [1usize, 3, 11, 16, 32, 64] {
        let tables = float_tables(&mut rng, 5, m);
        let refs: Vec<&[f32]> = tables.iter().map(Vec::as_slice).collect();
        let portable = QuantizedTables::quantize_on(&refs, m, false).unwrap();
        let simd = QuantizedTables::quantize_on(&refs, m, true).unwrap();
        assert_eq!(portable, simd, "m={m}");
        assert_eq!(QuantizedTables::quantize(&refs, m).unwrap(), portable);
        // Each row's minimum quantises to 0 (it is the row's own offset term).
        for t in 0..5 {
            for row in portable.table(t)[..16 * m].chunks_exact(16) {
                assert_eq!(row.iter().min(), Some(&0));
            }
        }
    }
}

#[test]
fn quantize_edge_cases() {
    assert!(QuantizedTables::quantize(&[&[0.0; 16]], 0).is_err());
    assert!(QuantizedTables::quantize(&[&[0.0; 15]], 1).is_err());
    let mut nan = [1.0f32; 16];
    nan[3] = f32::NAN;
    let mut wide_nan = vec![1.0f32; 16 * 11];
    for avx2 in [false, true] {
        assert!(QuantizedTables::quantize_on(&[&[0.0; 16], &nan], 1, avx2).is_err());
        // A NaN inside an 8-row group and inside the leftover rows.
        for pos in [37, 16 * 9 + 5] {
            wide_nan[pos] = f32::NAN;
            assert!(QuantizedTables::quantize_on(&[&wide_nan], 11, avx2).is_err());
            wide_nan[pos] = f32::INFINITY;
            assert!(QuantizedTables::quantize_on(&[&wide_nan], 11, avx2).is_err());
            wide_nan[pos] = 1.0;
        }
        assert!(QuantizedTables::quantize_on(&[&wide_nan], 11, avx2).is_ok());
    }
    let mut inf = [1.0f32; 16];
    inf[3] = f32::INFINITY;
    for avx2 in [false, true] {
        assert!(QuantizedTables::quantize_on(&[&inf], 1, avx2).is_err());
        inf[3] = f32::NEG_INFINITY;
        assert!(QuantizedTables::quantize_on(&[&inf], 1, avx2).is_err());
        inf[3] = f32::INFINITY;
    }
    let wide = [
        f32::MAX,
        -f32::MAX,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
    ];
    let q = QuantizedTables::quantize(&[&wide], 1).unwrap();
    assert!(q.scale.is_finite() && q.scale > 0.0);
    // Constant tables: everything quantises to 0 and the offset carries the value.
    let q = QuantizedTables::quantize(&[&[2.5; 32]], 2).unwrap();
    assert!(q.table(0).iter().all(|&x| x == 0));
    assert_eq!(q.to_float(0, 0), 5.0);
    let empty = QuantizedTables::quantize(&[], 4).unwrap();
    assert!(empty.is_empty() && empty.table(0).is_empty());
    assert!(empty.to_float(0, 1).is_nan());
    assert_eq!(empty.threshold_u16(0, 1.0), None);
}

#[test]
fn threshold_u16_is_the_exact_inverse_of_to_float() {
    let mut rng = SeededRng::new(9);
    let tables = float_tables(&mut rng, 3, 16);
    let refs: Vec<&[f32]> = tables.iter().map(Vec::as_slice).collect();
    let q = QuantizedTables::quantize(&refs, 16).unwrap();
    for t in 0..3 {
        let lowest = q.to_float(t, 0);
        let highest = q.to_float(t, u16::MAX);
        assert_eq!(q.threshold_u16(t, f32::INFINITY), Some(u16::MAX));
        assert_eq!(q.threshold_u16(t, highest), Some(u16::MAX));
        assert_eq!(q.threshold_u16(t, f32::NEG_INFINITY), None);
        assert_eq!(q.threshold_u16(t, f32::NAN), None);
        assert_eq!(q.threshold_u16(t, lowest - 1.0), None);
        assert_eq!(q.threshold_u16(t, lowest), Some(0));
        for _ in 0..200 {
            let x = lowest + (highest - lowest) * rng.next_f64() as f32;
            let s = q.threshold_u16(t, x).unwrap();
            assert!(q.to_float(t, s) <= x);
            assert!(s == u16::MAX || q.to_float(t, s + 1) > x);
        }
    }
}
