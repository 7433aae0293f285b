//! Quantisation of float distance tables to the u8 tables the fast-scan kernels read, with
//! one scale shared by every table of a query so that their u16 sums stay comparable.
//!
//! For table `t`, sub-quantizer `j`, let `min[t][j]` be its smallest entry. Then
//! `offset[t] = Σ_j min[t][j]` and each entry becomes `q = round((T - min[t][j]) * scale)`,
//! with `scale = max_entry / max_span` where `max_span` is the largest
//! `max_c T[t][j][c] - min[t][j]` over all tables and sub-quantizers and
//! `max_entry = min(255, 65535 / m_pad)`.
//!
//! Error bound: every `q / scale` is within `0.5 / scale` of `T - min`, so for any codes
//! `|float_sum - (offset + u16_sum / scale)| <= m * 0.5 / scale` (plus the f32 rounding of the
//! caller's float sum and of `to_float`). Overflow: every `q <= max_entry`, so a sum of `m`
//! entries is at most `m_pad * max_entry <= 65535`.

use super::{block_bytes, padded_m};
use crate::error::{CodecError, Result};

/// u8 tables (`16 * padded_m(m)` bytes each, padding entries 0) sharing one scale, plus the
/// float offset of each. See the module docs for the construction and the error bound.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedTables {
    /// Quantised units per float unit: `float ≈ offset + u16_sum / scale`.
    pub scale: f32,
    /// Per table, the float value of a u16 sum of 0.
    pub offsets: Vec<f32>,
    m: usize,
    data: Vec<u8>,
}

impl QuantizedTables {
    /// Quantises `tables` (each `16 m` floats, entry `16 j + c` = term of centroid `c` of
    /// sub-quantizer `j`) with one shared scale. Errors on `m == 0`, a table of the wrong
    /// length, or a non-finite entry or span.
    pub fn quantize(tables: &[&[f32]], m: usize) -> Result<Self> {
        if m == 0 {
            return Err(CodecError::InvalidParameter(
                "fast-scan tables need at least one sub-quantizer (m >= 1)".into(),
            ));
        }
        let len = m.checked_mul(16).ok_or_else(|| {
            CodecError::InvalidParameter(format!("m = {m} sub-quantizers is too large"))
        })?;
        for (t, table) in tables.iter().enumerate() {
            if table.len() != len {
                return Err(CodecError::DimensionMismatch {
                    expected: len,
                    got: table.len(),
                });
            }
            if table.iter().any(|x| !x.is_finite()) {
                return Err(CodecError::InvalidParameter(format!(
                    "distance table {t} has a non-finite entry"
                )));
            }
        }
        let max_entry = Self::max_entry_for(m);
        let mut max_span = 0.0f64;
        for table in tables {
            for row in table.chunks_exact(16) {
                let (lo, hi) = min_max(row);
                max_span = max_span.max(f64::from(hi) - f64::from(lo));
            }
        }
        if !max_span.is_finite() {
            return Err(CodecError::InvalidParameter(
                "distance table entries span more than f64 can hold".into(),
            ));
        }
        let scale = if max_span > 0.0 {
            // A span so small that the scale overflows f32 still meets the bound with
            // f32::MAX: every residual is then below 0.5 / f32::MAX.
            (f64::from(max_entry) / max_span).min(f64::from(f32::MAX)) as f32
        } else {
            1.0
        };
        let stride = block_bytes(m);
        let mut data = vec![0u8; stride * tables.len()];
        let mut offsets = Vec::with_capacity(tables.len());
        for (table, out) in tables.iter().zip(data.chunks_exact_mut(stride)) {
            let mut offset = 0.0f64;
            for (row, out_row) in table.chunks_exact(16).zip(out.chunks_exact_mut(16)) {
                let (lo, _) = min_max(row);
                offset += f64::from(lo);
                for (&x, q) in row.iter().zip(out_row.iter_mut()) {
                    let level = ((f64::from(x) - f64::from(lo)) * f64::from(scale)).round();
                    *q = level.clamp(0.0, f64::from(max_entry)) as u8;
                }
            }
            offsets.push(offset as f32);
        }
        Ok(QuantizedTables {
            scale,
            offsets,
            m,
            data,
        })
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

    /// Float value of a u16 sum of table `t`: `offset[t] + sum / scale` (NaN if `t` is out of
    /// range). Non-decreasing in `sum`.
    pub fn to_float(&self, t: usize, sum: u16) -> f32 {
        match self.offsets.get(t) {
            Some(&offset) => offset + f32::from(sum) / self.scale,
            None => f32::NAN,
        }
    }

    /// The largest u16 sum whose [`Self::to_float`] is `<= threshold`: `u16::MAX` when every
    /// sum passes (e.g. `+inf`), `None` when none does (`-inf`, NaN, below the offset, or `t`
    /// out of range). Exact with respect to `to_float` (binary search on it).
    pub fn threshold_u16(&self, t: usize, threshold: f32) -> Option<u16> {
        let passes = |s: u16| self.to_float(t, s) <= threshold;
        if t >= self.len() || !passes(0) {
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

fn min_max(row: &[f32]) -> (f32, f32) {
    row.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}
