//! Per-call quantization of a float ADC table to one byte per entry, and the conversion of
//! a float threshold into a threshold on sums of those bytes that never rejects a vector
//! whose exact float distance could pass.
//!
//! Row `j` (sub-quantizer `j`) is mapped with its own offset and a scale shared by all rows:
//! `q_j(c) = trunc(fl(fl(lut[j][c] - min_j) * scale))`, each step an `f32` operation exactly
//! as the SIMD kernel does it, so the scalar and vector tables are bit-identical. Both
//! roundings are at most one half-ulp, so `q_j(c) <= (lut[j][c] - min_j) * scale * (1 + u)^2`
//! with `u = 2^-24` (plus an absolute `2^-149` when the product underflows), i.e. the byte sum
//! `Q` of a code is a lower bound of `(Σ_j lut[j][c_j] - Σ_j min_j) * scale` up to those
//! factors. The exact distance `d` is a sequential `f32` sum of `m` terms, which differs from
//! the real sum by at most `(m - 1) * u * Σ_j |lut[j][c_j]|`. [`Quantizer::limit`] adds both
//! slacks (with room to spare) so that `d <= t` implies `Q <= limit(t)`.

/// Number of centroids per sub-quantizer (8-bit codes).
pub(super) const KSUB: usize = 256;

/// Largest byte entry. With `m <= MAX_QUANTIZED_M` the byte sums fit a `u16`.
pub(super) const MAX_ENTRY: usize = 255;

/// Largest `m` whose byte sums cannot overflow a `u16` (`257 * 255 = 65535`).
pub(super) const MAX_QUANTIZED_M: usize = u16::MAX as usize / MAX_ENTRY;

/// Largest absolute sum of table entries for which no partial float sum can overflow.
const MAX_ABS_SUM: f64 = f32::MAX as f64 / 4.0;

/// The per-call parameters shared by every row of a quantized table, and the threshold
/// conversion derived from them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Quantizer {
    /// The shared multiplier applied to `lut[j][c] - min_j`.
    pub(super) scale: f32,
    /// `Σ_j min_j`, in `f64`.
    sum_min: f64,
    /// Bound on everything the byte sum cannot see: float summation error of the exact
    /// distance and of `sum_min`.
    margin: f64,
}

impl Quantizer {
    /// Parameters from the per-row minima and maxima, or `None` when the table cannot be
    /// quantized safely (a non-finite entry, or sums large enough to overflow `f32`);
    /// callers then scan with exact float look-ups only.
    pub(super) fn from_ranges(mins: &[f32], maxs: &[f32]) -> Option<Quantizer> {
        let m = mins.len();
        if m == 0 || m != maxs.len() || m > MAX_QUANTIZED_M {
            return None;
        }
        let mut sum_min = 0.0f64;
        let mut abs_sum = 0.0f64;
        let mut range = 0.0f64;
        for (&lo, &hi) in mins.iter().zip(maxs) {
            if lo.is_nan() || hi.is_nan() {
                return None;
            }
            let (lo, hi) = (f64::from(lo), f64::from(hi));
            sum_min += lo;
            abs_sum += lo.abs().max(hi.abs());
            range = range.max(hi - lo);
        }
        // Written so that NaN fails the test.
        if !(abs_sum <= MAX_ABS_SUM) || !(range >= 0.0) {
            return None;
        }
        let scale = if range > 0.0 {
            (MAX_ENTRY as f64 / range).clamp(2f64.powi(-120), 2f64.powi(120)) as f32
        } else {
            1.0
        };
        // Sequential f32 summation of m terms errs by at most (m - 1) u Σ|x|; the f64 sum of
        // the minima by far less. Twice (m + 2) u covers both, and the absolute term covers
        // subnormal results.
        let margin = abs_sum * (m as f64 + 2.0) * 2f64.powi(-23) + m as f64 * 2f64.powi(-125);
        Some(Quantizer {
            scale,
            sum_min,
            margin,
        })
    }

    /// The largest byte sum that a vector with exact distance `d <= t` can have, or `None`
    /// when no vector of this table can have `d <= t` (then nothing can enter the top-k).
    pub(super) fn limit(&self, t: f32) -> Option<u16> {
        if t.is_nan() {
            return None;
        }
        let bound = f64::from(t) - self.sum_min + self.margin;
        if !(bound >= 0.0) {
            return None;
        }
        // (1 + u)^2 from the two f32 roundings and the f64 rounding here are far below the
        // 2^-20 factor; the + 1 absorbs underflowed products.
        let limit = (bound * f64::from(self.scale) * (1.0 + 2f64.powi(-20))).floor() + 1.0;
        Some(if limit >= f64::from(u16::MAX) {
            u16::MAX
        } else {
            limit as u16
        })
    }
}

/// One table entry's byte, computed exactly as the SIMD kernels do (`f32` subtract, `f32`
/// multiply, truncation, saturation to `0..=255`; NaN becomes 0).
#[inline]
pub(super) fn quantize_entry(value: f32, min: f32, scale: f32) -> u8 {
    let y = (value - min) * scale;
    // `as` saturates and maps NaN to 0, like the packing instructions.
    (y as i32).clamp(0, MAX_ENTRY as i32) as u8
}

/// Scalar reference: fills `table` (`m * 256` bytes) from `lut` and returns the parameters,
/// or `None` when the table cannot be quantized (see [`Quantizer::from_ranges`]).
pub(super) fn quantize_scalar(lut: &[f32], m: usize, table: &mut [u8]) -> Option<Quantizer> {
    if lut.len() != m * KSUB || table.len() != m * KSUB || lut.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mins: Vec<f32> = lut
        .chunks_exact(KSUB)
        .map(|row| row.iter().fold(f32::INFINITY, |a, &v| a.min(v)))
        .collect();
    let maxs: Vec<f32> = lut
        .chunks_exact(KSUB)
        .map(|row| row.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v)))
        .collect();
    let quantizer = Quantizer::from_ranges(&mins, &maxs)?;
    for ((row, out), &min) in lut
        .chunks_exact(KSUB)
        .zip(table.chunks_exact_mut(KSUB))
        .zip(&mins)
    {
        for (&v, o) in row.iter().zip(out.iter_mut()) {
            *o = quantize_entry(v, min, quantizer.scale);
        }
    }
    Some(quantizer)
}
