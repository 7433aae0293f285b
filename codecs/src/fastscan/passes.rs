//! The two loops of table quantisation (per-row minima and spans, then the u8 levels): a
//! portable version (the reference) and an AVX2 version (rows in register pairs; minima
//! and maxima of eight rows at a time by a transposing reduction), chosen by the caller
//! after run-time detection. Both perform the same IEEE
//! operations on every entry, so their outputs are identical (tested).

/// Adds then removes `1.5 * 2^23`: for `0 <= x < 2^22` the low mantissa bits of `x + ROUND`
/// hold `x` rounded to the nearest integer (ties to even), with no libm call.
const ROUND: f32 = 12_582_912.0;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Writes each 16-entry row's minimum into `mins` (row order, `mins.len()` rows) and returns
/// the largest `max - min` over all rows, or `None` if any entry is NaN or infinite.
pub(super) fn row_minima(tables: &[&[f32]], mins: &mut [f32], avx2: bool) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: callers pass `avx2 = true` only after detecting AVX2.
        return unsafe { row_minima_avx2(tables, mins) };
    }
    let _ = avx2;
    row_minima_body(tables, mins)
}

/// Fills `data` (one `stride`-byte table per float table) with
/// `round(min((T - min) * scale, max_entry))` per entry; bytes past `16 m` stay as they are.
pub(super) fn levels(
    tables: &[&[f32]],
    mins: &[f32],
    scale: f32,
    max_entry: u8,
    stride: usize,
    data: &mut [u8],
    avx2: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: callers pass `avx2 = true` only after detecting AVX2.
        unsafe { levels_avx2(tables, mins, scale, max_entry, stride, data) };
        return;
    }
    let _ = avx2;
    levels_body(tables, mins, scale, max_entry, stride, data);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn row_minima_avx2(tables: &[&[f32]], mins: &mut [f32]) -> Option<f64> {
    let min = |a, b| _mm256_min_ps(a, b);
    let max = |a, b| _mm256_max_ps(a, b);
    // Sum of every `x - x`: 0 while all entries are finite, NaN (sticky) after an inf or NaN.
    let mut poison = _mm256_setzero_ps();
    let mut spans = [_mm256_setzero_pd(); 2];
    let mut max_span = 0.0f64;
    let mut slot = 0;
    for table in tables {
        let (rows, _) = table.as_chunks::<16>();
        let (groups, rest) = rows.as_chunks::<8>();
        // Eight rows at a time: vertical min/max per row, then one transposing reduction
        // leaves row r's minimum (maximum) in lane r.
        for group in groups {
            let mut quads_low = [_mm256_setzero_ps(); 2];
            let mut quads_high = [_mm256_setzero_ps(); 2];
            for (quad, rows) in group.as_chunks::<4>().0.iter().enumerate() {
                let mut pairs_low = [_mm256_setzero_ps(); 2];
                let mut pairs_high = [_mm256_setzero_ps(); 2];
                for (pair, rows) in rows.as_chunks::<2>().0.iter().enumerate() {
                    let mut low = [_mm256_setzero_ps(); 2];
                    let mut high = [_mm256_setzero_ps(); 2];
                    for (r, row) in rows.iter().enumerate() {
                        // SAFETY: a row is 16 floats: two 8-float loads.
                        let (a, b) = unsafe {
                            (
                                _mm256_loadu_ps(row.as_ptr()),
                                _mm256_loadu_ps(row.as_ptr().add(8)),
                            )
                        };
                        let check = _mm256_add_ps(_mm256_sub_ps(a, a), _mm256_sub_ps(b, b));
                        poison = _mm256_add_ps(poison, check);
                        low[r] = _mm256_min_ps(a, b);
                        high[r] = _mm256_max_ps(a, b);
                    }
                    pairs_low[pair] = reduce_pair(low[0], low[1], min);
                    pairs_high[pair] = reduce_pair(high[0], high[1], max);
                }
                quads_low[quad] = reduce_quad(pairs_low[0], pairs_low[1], min);
                quads_high[quad] = reduce_quad(pairs_high[0], pairs_high[1], max);
            }
            let low = reduce_halves(quads_low[0], quads_low[1], min);
            let high = reduce_halves(quads_high[0], quads_high[1], max);
            if let Some(out) = mins.get_mut(slot..slot + 8) {
                // SAFETY: `out` is 8 floats.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr(), low) };
            }
            slot += 8;
            // Spans in f64: max - min of finite floats can overflow f32.
            let halves = [
                (_mm256_castps256_ps128(low), _mm256_castps256_ps128(high)),
                (
                    _mm256_extractf128_ps::<1>(low),
                    _mm256_extractf128_ps::<1>(high),
                ),
            ];
            for (span, (lo, hi)) in spans.iter_mut().zip(halves) {
                let width = _mm256_sub_pd(_mm256_cvtps_pd(hi), _mm256_cvtps_pd(lo));
                *span = _mm256_max_pd(*span, width);
            }
        }
        for row in rest {
            // SAFETY: a row is 16 floats: two 8-float loads.
            let (a, b) = unsafe {
                (
                    _mm256_loadu_ps(row.as_ptr()),
                    _mm256_loadu_ps(row.as_ptr().add(8)),
                )
            };
            poison = _mm256_add_ps(
                poison,
                _mm256_add_ps(_mm256_sub_ps(a, a), _mm256_sub_ps(b, b)),
            );
            let lo = horizontal_min(_mm256_min_ps(a, b));
            let hi = horizontal_max(_mm256_max_ps(a, b));
            if let Some(out) = mins.get_mut(slot) {
                *out = lo;
            }
            slot += 1;
            max_span = max_span.max(f64::from(hi) - f64::from(lo));
        }
    }
    let mut lanes = [0.0f64; 8];
    // SAFETY: `lanes` holds two 4-double vectors.
    unsafe {
        _mm256_storeu_pd(lanes.as_mut_ptr(), spans[0]);
        _mm256_storeu_pd(lanes.as_mut_ptr().add(4), spans[1]);
    }
    let max_span = lanes.iter().fold(max_span, |m, &x| m.max(x));
    let finite = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_UNORD_Q>(poison, poison)) == 0;
    finite.then_some(max_span)
}

// A transposing reduction of eight rows' partial vectors (row r ends in lane r), in three
// stages so that few registers are live: pairs, quads, then the 128-bit halves.

/// Per 128-bit half: `[r0, r1, r0, r1]` partials of rows `a`, `b`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
fn reduce_pair(a: __m256, b: __m256, op: impl Fn(__m256, __m256) -> __m256) -> __m256 {
    op(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b))
}

/// Per 128-bit half: `[r0, r1, r2, r3]` partials from two pair results.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
fn reduce_quad(a: __m256, b: __m256, op: impl Fn(__m256, __m256) -> __m256) -> __m256 {
    op(
        _mm256_shuffle_ps::<0x44>(a, b),
        _mm256_shuffle_ps::<0xEE>(a, b),
    )
}

/// Lanes `r0..r7` from two quad results (rows 0-3 and 4-7).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
fn reduce_halves(a: __m256, b: __m256, op: impl Fn(__m256, __m256) -> __m256) -> __m256 {
    op(
        _mm256_permute2f128_ps::<0x20>(a, b),
        _mm256_permute2f128_ps::<0x31>(a, b),
    )
}

#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
fn horizontal_min(x: __m256) -> f32 {
    let x = _mm_min_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
    let x = _mm_min_ps(x, _mm_movehl_ps(x, x));
    let x = _mm_min_ss(x, _mm_shuffle_ps::<0b01>(x, x));
    _mm_cvtss_f32(x)
}

#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
fn horizontal_max(x: __m256) -> f32 {
    let x = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
    let x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    let x = _mm_max_ss(x, _mm_shuffle_ps::<0b01>(x, x));
    _mm_cvtss_f32(x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn levels_avx2(
    tables: &[&[f32]],
    mins: &[f32],
    scale: f32,
    max_entry: u8,
    stride: usize,
    data: &mut [u8],
) {
    let scale = _mm256_set1_ps(scale);
    let max_level = _mm256_set1_ps(f32::from(max_entry));
    let round = _mm256_set1_ps(ROUND);
    let low_byte = _mm256_set1_epi32(0xff);
    // After the two packs, dwords 0 and 4 hold entries 0-3 / 4-7, dwords 1 and 5 entries
    // 8-11 / 12-15.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let level = |x: __m256, lo: __m256| {
        // Same operations as the portable loop: (x - lo) * scale, capped, + ROUND.
        let l = _mm256_mul_ps(_mm256_sub_ps(x, lo), scale);
        let l = _mm256_min_ps(l, max_level);
        _mm256_and_si256(_mm256_castps_si256(_mm256_add_ps(l, round)), low_byte)
    };
    let mut row_mins = mins.iter();
    for (table, out) in tables.iter().zip(data.chunks_exact_mut(stride)) {
        let (rows, _) = table.as_chunks::<16>();
        let (out_rows, _) = out.as_chunks_mut::<16>();
        for ((row, out_row), &lo) in rows.iter().zip(out_rows.iter_mut()).zip(&mut row_mins) {
            let lo = _mm256_set1_ps(lo);
            // SAFETY: a row is 16 floats: two 8-float loads.
            let (a, b) = unsafe {
                (
                    _mm256_loadu_ps(row.as_ptr()),
                    _mm256_loadu_ps(row.as_ptr().add(8)),
                )
            };
            let words = _mm256_packus_epi32(level(a, lo), level(b, lo));
            let bytes = _mm256_packus_epi16(words, words);
            let bytes = _mm256_permutevar8x32_epi32(bytes, order);
            // SAFETY: the output row is 16 bytes.
            unsafe { _mm_storeu_si128(out_row.as_mut_ptr().cast(), _mm256_castsi256_si128(bytes)) };
        }
    }
}

#[inline(always)]
fn row_minima_body(tables: &[&[f32]], mins: &mut [f32]) -> Option<f64> {
    let mut finite = true;
    let mut max_span = 0.0f64;
    let mut out = mins.iter_mut();
    for table in tables {
        let (rows, _) = table.as_chunks::<16>();
        for row in rows {
            finite &= row.iter().fold(true, |ok, x| ok & x.is_finite());
            let (lo, hi) = min_max16(row);
            if let Some(slot) = out.next() {
                *slot = lo;
            }
            max_span = max_span.max(f64::from(hi) - f64::from(lo));
        }
    }
    finite.then_some(max_span)
}

/// Minimum and maximum of 16 finite floats by a pairwise tree (vectorises).
#[inline(always)]
fn min_max16(row: &[f32; 16]) -> (f32, f32) {
    let mut lo = [0.0f32; 8];
    let mut hi = [0.0f32; 8];
    for i in 0..8 {
        let (a, b) = (row[i], row[i + 8]);
        lo[i] = if b < a { b } else { a };
        hi[i] = if b > a { b } else { a };
    }
    for width in [4, 2, 1] {
        for i in 0..width {
            lo[i] = if lo[i + width] < lo[i] {
                lo[i + width]
            } else {
                lo[i]
            };
            hi[i] = if hi[i + width] > hi[i] {
                hi[i + width]
            } else {
                hi[i]
            };
        }
    }
    (lo[0], hi[0])
}

#[inline(always)]
fn levels_body(
    tables: &[&[f32]],
    mins: &[f32],
    scale: f32,
    max_entry: u8,
    stride: usize,
    data: &mut [u8],
) {
    let max_level = f32::from(max_entry);
    let mut row_mins = mins.iter();
    for (table, out) in tables.iter().zip(data.chunks_exact_mut(stride)) {
        let (rows, _) = table.as_chunks::<16>();
        let (out_rows, _) = out.as_chunks_mut::<16>();
        for ((row, out_row), &lo) in rows.iter().zip(out_rows.iter_mut()).zip(&mut row_mins) {
            for (&x, q) in row.iter().zip(out_row.iter_mut()) {
                // x >= lo, so the level is >= 0; +inf (huge spans) clamps to the maximum.
                let level = (x - lo) * scale;
                let level = if level > max_level { max_level } else { level };
                *q = (level + ROUND).to_bits() as u8;
            }
        }
    }
}
