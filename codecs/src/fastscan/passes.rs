//! The two loops of table quantisation (per-row minima and spans, then the u8 levels),
//! written once as plain Rust and compiled twice: portable, and with AVX2 enabled for
//! CPUs that have it (chosen by the caller after run-time detection). Both compilations
//! perform the same IEEE operations in the same order, so their outputs are identical.

/// Adds then removes `1.5 * 2^23`: for `0 <= x < 2^22` the low mantissa bits of `x + ROUND`
/// hold `x` rounded to the nearest integer (ties to even), with no libm call.
const ROUND: f32 = 12_582_912.0;

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
    row_minima_body(tables, mins)
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
    levels_body(tables, mins, scale, max_entry, stride, data);
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
