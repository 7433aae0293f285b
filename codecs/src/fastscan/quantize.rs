//! Quantisation of float distance tables to the u8 tables the fast-scan kernels read, with
//! one scale shared by every table of a query so that their u16 sums stay comparable.
//!
//! For table `t`, sub-quantizer `j`, let `min[t][j]` be its smallest entry. Then
//! `offset[t] = Σ_j min[t][j]` and each entry becomes `q = round((T - min[t][j]) * scale)`,
//! with `scale = max_entry / max_span` where `max_span` is the largest
//! `max_c T[t][j][c] - min[t][j]` over all tables and sub-quantizers and
//! `max_entry = min(255, 65535 / m_pad)`.
//!
//! Error bound: every `q / scale` is within `0.5 / scale` of `T - min` (rounding to the
//! nearest level), so for any codes `|float_sum - (offset + u16_sum / scale)| <= m * 0.5 / scale`.
//! The levels are computed in f32: `(T - min) * scale` carries a relative rounding error of at
//! most 2^-23 on a value `<= 255`, so the bound actually proven (and tested) is
//! `m * (0.5 + 2^-14) / scale`, plus the f32 rounding of the offset and of the caller's own
//! float sum. Overflow: every `q <= max_entry`, so a sum of `m` entries is at most
//! `m_pad * max_entry <= 65535`.
//!
//! The two passes (per-row min/max, then levels) are plain loops compiled twice, portable and
//! with AVX2 enabled (picked at run time); both give bit-identical tables (tested).

use super::{block_bytes, padded_m, passes};
use crate::error::{CodecError, Result};

/// u8 tables (`16 * padded_m(m)` bytes each, padding entries 0) sharing one scale, plus the
/// float offset of each. See the module docs for the construction and the error bound.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct QuantizedTables {
    /// Quantised units per float unit: `float ≈ offset + u16_sum / scale`.
    pub scale: f32,
    /// `1 / scale` (a multiply per converted sum instead of a division).
    inv_scale: f32,
    /// Per table, the float value of a u16 sum of 0.
    pub offsets: Vec<f32>,
    m: usize,
    data: Vec<u8>,
    /// Scratch: the per-row minima.
    mins: Vec<f32>,
}

impl QuantizedTables {
    /// Quantises `tables` (each `16 m` floats, entry `16 j + c` = term of centroid `c` of
    /// sub-quantizer `j`) with one shared scale. Errors on `m == 0`, a table of the wrong
    /// length, or a non-finite entry or span.
    pub fn quantize(tables: &[&[f32]], m: usize) -> Result<Self> {
        Self::quantize_on(tables, m, use_avx2())
    }

    /// [`Self::quantize`] into `self`, reusing its buffers (one query after another).
    /// On error `self` holds no tables.
    pub fn requantize(&mut self, tables: &[&[f32]], m: usize) -> Result<()> {
        self.quantize_into(tables, m, use_avx2())
    }

    /// [`Self::quantize`] on the portable (`avx2 = false`) or AVX2 compilation of the passes;
    /// `avx2 = true` on a CPU without AVX2 falls back to portable.
    pub(super) fn quantize_on(tables: &[&[f32]], m: usize, avx2: bool) -> Result<Self> {
        let mut out = QuantizedTables::default();
        out.quantize_into(tables, m, avx2)?;
        Ok(out)
    }

    fn quantize_into(&mut self, tables: &[&[f32]], m: usize, avx2: bool) -> Result<()> {
        self.offsets.clear();
        self.data.clear();
        let avx2 = avx2 && use_avx2();
        if m == 0 {
            return Err(CodecError::InvalidParameter(
                "fast-scan tables need at least one sub-quantizer (m >= 1)".into(),
            ));
        }
        let len = m.checked_mul(16).ok_or_else(|| {
            CodecError::InvalidParameter(format!("m = {m} sub-quantizers is too large"))
        })?;
        if let Some(table) = tables.iter().find(|table| table.len() != len) {
            return Err(CodecError::DimensionMismatch {
                expected: len,
                got: table.len(),
            });
        }
        let max_entry = Self::max_entry_for(m);
        let mut mins = std::mem::take(&mut self.mins);
        mins.clear();
        mins.resize(tables.len() * m, 0.0);
        let max_span = passes::row_minima(tables, &mut mins, avx2).ok_or_else(|| {
            CodecError::InvalidParameter("a distance table has a non-finite entry".into())
        })?;
        let scale = if max_span > 0.0 {
            // A span so small that the scale overflows f32 still meets the bound with
            // f32::MAX: every residual is then below 0.5 / f32::MAX.
            (f64::from(max_entry) / max_span).min(f64::from(f32::MAX)) as f32
        } else {
            1.0
        };
        // Padding entries (bytes past `16 m` of a table) must read 0.
        self.data.resize(block_bytes(m) * tables.len(), 0);
        passes::levels(
            tables,
            &mins,
            scale,
            max_entry,
            block_bytes(m),
            &mut self.data,
            avx2,
        );
        self.offsets.extend(
            mins.chunks_exact(m)
                .map(|row_mins| sum_f64(row_mins) as f32),
        );
        self.scale = scale;
        self.inv_scale = 1.0 / scale;
        self.m = m;
        self.mins = mins;
        Ok(())
    }

    /// The largest u8 entry for `m` sub-quantizers: `min(255, 65535 / padded_m(m))`.
    pub fn max_entry_for(m: usize) -> u8 {
        (65535 / padded_m(m).max(1)).min(255) as u8
    }

    /// Number of tables.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether there are no tables.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Sub-quantizers per table.
    pub fn m(&self) -> usize {
        self.m
    }

    /// The u8 table `t` (`16 * padded_m(m)` bytes); empty if `t` is out of range, which
    /// [`super::scan`] then rejects.
    pub fn table(&self, t: usize) -> &[u8] {
        let stride = block_bytes(self.m);
        self.data
            .get(t.saturating_mul(stride)..t.saturating_add(1).saturating_mul(stride))
            .unwrap_or(&[])
    }

    /// Float value of a u16 sum of table `t`: `offset[t] + sum · (1 / scale)` (NaN if `t` is
    /// out of range). Non-decreasing in `sum`.
    #[inline]
    pub fn to_float(&self, t: usize, sum: u16) -> f32 {
        match self.offsets.get(t) {
            Some(&offset) => offset + f32::from(sum) * self.inv_scale,
            None => f32::NAN,
        }
    }

    /// The largest u16 sum whose [`Self::to_float`] is `<= threshold`: `u16::MAX` when every
    /// sum passes (e.g. `+inf`), `None` when none does (`-inf`, NaN, below the offset, or `t`
    /// out of range). Exact with respect to `to_float`: the arithmetic inverse is confirmed
    /// on both sides, with a binary search on `to_float` as the fallback.
    pub fn threshold_u16(&self, t: usize, threshold: f32) -> Option<u16> {
        let offset = *self.offsets.get(t)?;
        let passes = |s: u16| self.to_float(t, s) <= threshold;
        // Fast path: the arithmetic inverse, confirmed against `to_float` on both sides.
        let estimate = (threshold - offset) * self.scale;
        if estimate >= 0.0 {
            let guess = estimate.min(f32::from(u16::MAX)) as u16;
            if passes(guess) && (guess == u16::MAX || !passes(guess + 1)) {
                return Some(guess);
            }
        }
        // Slow path (rounding at the edges, NaN, -inf): binary search on `to_float`.
        if !passes(0) {
            return None;
        }
        if passes(u16::MAX) {
            return Some(u16::MAX);
        }
        // Invariant: passes(lo) and !passes(hi).
        let (mut lo, mut hi) = (0u16, u16::MAX);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if passes(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(lo)
    }
}

/// Sum in f64 with four independent accumulators (short dependency chains).
fn sum_f64(values: &[f32]) -> f64 {
    let mut acc = [0.0f64; 4];
    for chunk in values.chunks(4) {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a += f64::from(x);
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// Whether the AVX2 compilation of the passes can run here.
fn use_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
