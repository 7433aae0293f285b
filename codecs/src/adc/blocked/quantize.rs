//! Per-call quantization of a float ADC table to one byte per entry, and the conversion of
//! a float threshold into a threshold on sums of those bytes that never rejects a vector
//! whose exact float distance could pass.
//!
//! Row `j` (sub-quantizer `j`) is mapped with its own offset and a scale `s` shared by all
//! rows: `q_j(c) = sat(trunc(fma(lut[j][c], s, -fl(min_j * s))))`, each step an `f32`
//! operation exactly as the SIMD kernel does it, so the scalar and vector tables are
//! bit-identical (`trunc` of NaN or of values from `2^31` up gives `i32::MIN`, as
//! `vcvttps2dq` does, which saturates to 0).
//!
//! **Scale.** Only codes with `D = Σ_j (lut[j][c_j] - min_j) <= B = t - Σ_j min_j` (plus
//! slack) can pass the threshold `t`, so no entry above `B` matters and resolution is
//! spent below it: `s = 255 * spread / B` (see [`spread`]). Entries above `B / spread`
//! saturate at 255, which only lowers the byte sums, so the bound below still holds. The threshold only falls during a scan, so the scale chosen at the first finite
//! threshold stays valid; limits are recomputed from it.
//!
//! **Bound.** With `u = 2^-24` and `γ = (m - 1) u`: a code with exact (sequential `f32`)
//! distance `d <= t` has real sum `S <= t + γ Σ_j |x_j|` and `|x_j| <= |min_j| + (x_j -
//! min_j)`, so `D <= (t - Σ min + γ Σ|min|) / (1 - γ)`. Each byte obeys `q_j <= ((x_j -
//! min_j) s + u |min_j| s)(1 + u)` plus an absolute `2^-149` from underflow, so
//! `Q <= s (1 + u) / (1 - γ) (t - Σ min + (γ + u) Σ|min|) + m 2^-149`. [`Quantizer::limit`]
//! evaluates this with every factor rounded up generously. Partial sums cannot overflow to
//! `-inf` because `Σ|min|` is bounded; a code whose sum overflows to `+inf` never passes a
//! finite threshold, whatever its bytes. NaN entries are skipped by the minima; a code that
//! uses one has distance NaN and is never offered, whatever its byte sum.

// Only the x86-64 kernel filters with byte tables; elsewhere this serves the tests.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

/// Number of centroids per sub-quantizer (8-bit codes).
pub(super) const KSUB: usize = 256;

/// Largest byte entry. With `m <= MAX_QUANTIZED_M` the byte sums fit a `u16`.
pub(super) const MAX_ENTRY: usize = 255;

/// Largest `m` whose byte sums cannot overflow a `u16` (`257 * 255 = 65535`).
pub(super) const MAX_QUANTIZED_M: usize = u16::MAX as usize / MAX_ENTRY;

/// Largest `Σ_j |min_j|` for which no partial float sum of a passing code can overflow.
const MAX_ABS_SUM: f64 = f32::MAX as f64 / 4.0;

/// How many entries of a passing code may use the full byte range: the scale maps
/// `B / SPREAD` to 255, where `B` is the threshold's budget above `Σ_j min_j`. Larger
/// spreads resolve small entries finer but saturate more of the large ones; on
/// IVF1024,PQ16 tables of debian-sift (benches/adc_blocked.rs), `m / 8` re-checked the
/// fewest codes (`m / 4`: +2%, `m / 16`: +7%, `m / 2`: 2.3x, `m`: 20x).
fn spread(m: usize) -> f64 {
    (m as f64 / 8.0).max(1.0)
}

/// What a scan does with a table, given the per-row minima and the current threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Plan {
    /// Filter with byte sums using these parameters.
    Filter(Quantizer),
    /// No code of this table can be within the threshold: nothing will be offered.
    NothingPasses,
    /// Quantization is unsafe or useless (an infinite or huge minimum, `m` too large, an
    /// infinite threshold): scan with exact float look-ups.
    Exact,
}

/// The per-call parameters shared by every row of a quantized table, and the threshold
/// conversion derived from them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Quantizer {
    /// The shared multiplier `s`.
    pub(super) scale: f32,
    /// `Σ_j min_j`, in `f64`.
    sum_min: f64,
    /// Slack in distance units: `(γ + u) Σ|min|`, the `f64` error of `sum_min`, doubled.
    margin: f64,
    /// Slack factor `(1 + u) / (1 - γ)`, rounded up generously.
    factor: f64,
}

impl Quantizer {
    /// The plan for a table with per-row minima `mins` (NaN entries skipped) scanned
    /// against threshold `t` (the current top-k threshold minus the bias).
    pub(super) fn plan(mins: &[f32], t: f32) -> Plan {
        let m = mins.len();
        if m == 0 || m > MAX_QUANTIZED_M || t == f32::INFINITY {
            return Plan::Exact;
        }
        let sum_min: f64 = mins.iter().map(|&v| f64::from(v)).sum();
        let abs_min: f64 = mins.iter().map(|&v| f64::from(v).abs()).sum();
        // Infinite minima (a row of +inf or with -inf) and NaN sums fail here too.
        if abs_min.is_nan() || abs_min > MAX_ABS_SUM {
            return Plan::Exact;
        }
        let margin = abs_min * (m as f64 + 4.0) * 2f64.powi(-23) + m as f64 * 2f64.powi(-125);
        let factor = 1.0 + (m as f64 + 8.0) * 2f64.powi(-22);
        let budget = f64::from(t) - sum_min + margin;
        if budget.is_nan() || budget < 0.0 {
            return Plan::NothingPasses;
        }
        let scale = if budget > 0.0 {
            (MAX_ENTRY as f64 * spread(m) / budget).clamp(2f64.powi(-120), 2f64.powi(120))
        } else {
            2f64.powi(120)
        };
        Plan::Filter(Quantizer {
            scale: scale as f32,
            sum_min,
            margin,
            factor,
        })
    }

    /// The offset subtracted (after scaling) from row `j`'s entries: `fl(min_j * s)`.
    #[inline]
    pub(super) fn offset(&self, min: f32) -> f32 {
        min * self.scale
    }

    /// The largest byte sum that a vector with exact distance `d <= t` can have, or `None`
    /// when no vector of this table can have `d <= t` (then nothing can enter the top-k).
    pub(super) fn limit(&self, t: f32) -> Option<u16> {
        let bound = f64::from(t) - self.sum_min + self.margin;
        if bound.is_nan() || bound < 0.0 {
            return None;
        }
        // The + 1 absorbs underflowed products (m 2^-149) and the f64 roundings here.
        let limit = (bound * f64::from(self.scale) * self.factor).floor() + 1.0;
        Some(if limit >= f64::from(u16::MAX) {
            u16::MAX
        } else {
            limit as u16
        })
    }
}

/// One table entry's byte, computed exactly as the SIMD kernel does (one fused
/// multiply-add, `vcvttps2dq` truncation, saturation to `0..=255`).
#[cfg(test)]
pub(super) fn quantize_entry(value: f32, scale: f32, offset: f32) -> u8 {
    let y = value.mul_add(scale, -offset);
    // vcvttps2dq gives i32::MIN for NaN and out-of-range values; packing saturates to 0.
    if y < 2_147_483_648.0 {
        (y as i32).clamp(0, MAX_ENTRY as i32) as u8
    } else {
        0
    }
}

/// Scalar reference: the plan for `lut` (`m * 256` floats) against threshold `t`, and
/// when it is [`Plan::Filter`], `table` (`m * 256` bytes) filled.
#[cfg(test)]
pub(super) fn quantize_scalar(lut: &[f32], m: usize, t: f32, table: &mut [u8]) -> Plan {
    if lut.len() != m * KSUB || table.len() != m * KSUB {
        return Plan::Exact;
    }
    // `f32::min` skips NaN, like the SIMD reduction seeded with infinity.
    let mins: Vec<f32> = lut
        .chunks_exact(KSUB)
        .map(|row| row.iter().fold(f32::INFINITY, |a, &v| v.min(a)))
        .collect();
    let plan = Quantizer::plan(&mins, t);
    if let Plan::Filter(quantizer) = plan {
        for ((row, out), &min) in lut
            .chunks_exact(KSUB)
            .zip(table.chunks_exact_mut(KSUB))
            .zip(&mins)
        {
            let offset = quantizer.offset(min);
            for (&v, o) in row.iter().zip(out.iter_mut()) {
                *o = quantize_entry(v, quantizer.scale, offset);
            }
        }
    }
    plan
}
