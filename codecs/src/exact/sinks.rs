//! What to do with each tile of dot products: keep the k nearest (with a threshold check
//! before touching the heap), keep the single nearest, or write the full distance matrix.
//!
//! Distances are rebuilt as `||q||² + ||x||² - 2 q·x` (clamped at zero for f32, where
//! rounding can make it slightly negative; exact for the integer path). The per-tile work
//! is written as plain loops over `NR` lanes so that, inlined into the SIMD scanners, it
//! compiles to vector compares; the rare heap insertions are out of line.

use super::gemm_f32::{DotTile, TileSink};
use super::gemm_u8::{IntTile, IntTileSink};
use super::panels::{NR, Panels, PanelsU8};
use super::reservoir::Reservoir;

/// Rebuilds the `NR` squared distances of one query from its dot products.
#[inline(always)]
fn distances(qnorm: f32, xnorms: &[f32; NR], dots: &[f32; NR]) -> [f32; NR] {
    let mut d = [0.0f32; NR];
    for j in 0..NR {
        d[j] = qnorm + xnorms[j] - 2.0 * dots[j];
    }
    d
}

/// Bit `j` set when `d[j] <= bound` (a vector compare into a mask register).
#[inline(always)]
fn le_mask<T: PartialOrd + Copy>(d: &[T; NR], bound: T) -> u32 {
    let mut mask = 0u32;
    for (j, &v) in d.iter().enumerate() {
        mask |= u32::from(v <= bound) << j;
    }
    mask
}

/// Bits of the real (non-padding) rows of panel `p` when the block has `rows` rows.
#[inline(always)]
fn valid_mask(rows: usize, p: usize) -> u32 {
    let valid = rows.saturating_sub(p * NR).min(NR);
    if valid == NR {
        u32::MAX
    } else {
        (1u32 << valid) - 1
    }
}

/// Top-k over f32 tiles. Query indices are relative to the scanned query block.
pub(crate) struct KnnSink<'a> {
    pub(crate) qnorms: &'a [f32],
    pub(crate) panels: &'a Panels,
    /// Id of the packed block's first row.
    pub(crate) id0: u64,
    pub(crate) heaps: &'a mut [Reservoir],
    /// `heaps[i].threshold()`, cached contiguously.
    pub(crate) thresholds: &'a mut [f32],
}

impl KnnSink<'_> {
    #[inline(never)]
    fn push_hits(&mut self, qi: usize, p: usize, d: &[f32; NR], mut mask: u32) {
        let heap = &mut self.heaps[qi];
        while mask != 0 {
            let j = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            heap.push(self.id0 + (p * NR + j) as u64, d[j].max(0.0));
        }
        self.thresholds[qi] = heap.threshold();
    }
}

impl TileSink for KnnSink<'_> {
    #[inline(always)]
    fn tile(&mut self, q0: usize, m: usize, p: usize, dots: &DotTile) {
        let xnorms = self.panels.norms(p);
        let valid = valid_mask(self.panels.rows(), p);
        for (i, row) in dots.iter().enumerate().take(m) {
            let qi = q0 + i;
            let d = distances(self.qnorms[qi], xnorms, row);
            let mask = le_mask(&d, self.thresholds[qi]) & valid;
            if mask != 0 {
                self.push_hits(qi, p, &d, mask);
            }
        }
    }
}

/// Nearest row (smallest index among ties) over f32 tiles.
pub(crate) struct NearestSink<'a> {
    pub(crate) qnorms: &'a [f32],
    pub(crate) panels: &'a Panels,
    /// `(row, squared distance)` per query, initialised to `(0, +inf)`.
    pub(crate) best: &'a mut [(u32, f32)],
}

impl TileSink for NearestSink<'_> {
    #[inline(always)]
    fn tile(&mut self, q0: usize, m: usize, p: usize, dots: &DotTile) {
        let xnorms = self.panels.norms(p);
        let valid = valid_mask(self.panels.rows(), p);
        for (i, row) in dots.iter().enumerate().take(m) {
            let qi = q0 + i;
            let d = distances(self.qnorms[qi], xnorms, row);
            let mut mask = le_mask(&d, self.best[qi].1) & valid;
            // `<=` admits ties with the current best; only a strictly smaller distance
            // replaces it, so ties keep the smaller index (panels arrive in order).
            let best = &mut self.best[qi];
            while mask != 0 {
                let j = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                if d[j] < best.1 {
                    *best = ((p * NR + j) as u32, d[j]);
                }
            }
        }
    }
}

/// Full distance matrix over f32 tiles: `out[i * stride + col0 + row]`.
pub(crate) struct MatrixSink<'a> {
    pub(crate) qnorms: &'a [f32],
    pub(crate) panels: &'a Panels,
    pub(crate) out: &'a mut [f32],
    pub(crate) stride: usize,
    pub(crate) col0: usize,
}

impl TileSink for MatrixSink<'_> {
    #[inline(always)]
    fn tile(&mut self, q0: usize, m: usize, p: usize, dots: &DotTile) {
        let xnorms = self.panels.norms(p);
        let valid = (self.panels.rows() - p * NR).min(NR);
        for (i, row) in dots.iter().enumerate().take(m) {
            let d = distances(self.qnorms[q0 + i], xnorms, row);
            let start = (q0 + i) * self.stride + self.col0 + p * NR;
            for (o, &v) in self.out[start..start + valid].iter_mut().zip(&d) {
                *o = v.max(0.0);
            }
        }
    }
}

/// Top-k over exact integer tiles (see `gemm_u8` for the shifted formulation).
pub(crate) struct KnnU8Sink<'a> {
    pub(crate) qnorms: &'a [i32],
    pub(crate) panels: &'a PanelsU8,
    pub(crate) id0: u64,
    pub(crate) heaps: &'a mut [Reservoir],
    pub(crate) thresholds: &'a mut [f32],
}

/// An integer bound equivalent to `dist <= threshold` for integer distances.
#[inline(always)]
fn int_bound(threshold: f32) -> i32 {
    if threshold >= i32::MAX as f32 {
        i32::MAX
    } else {
        threshold.floor() as i32
    }
}

impl KnnU8Sink<'_> {
    #[inline(never)]
    fn push_hits(&mut self, qi: usize, p: usize, d: &[i32; NR], mut mask: u32) {
        let heap = &mut self.heaps[qi];
        while mask != 0 {
            let j = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            heap.push(self.id0 + (p * NR + j) as u64, d[j] as f32);
        }
        self.thresholds[qi] = heap.threshold();
    }
}

impl IntTileSink for KnnU8Sink<'_> {
    #[inline(always)]
    fn tile(&mut self, q0: usize, m: usize, p: usize, dots: &IntTile) {
        let bias = self.panels.bias(p);
        let valid = valid_mask(self.panels.rows(), p);
        for (i, row) in dots.iter().enumerate().take(m) {
            let qi = q0 + i;
            let qnorm = self.qnorms[qi];
            let mut d = [0i32; NR];
            for j in 0..NR {
                d[j] = qnorm
                    .wrapping_add(bias[j])
                    .wrapping_sub(row[j].wrapping_mul(2));
            }
            let mask = le_mask(&d, int_bound(self.thresholds[qi])) & valid;
            if mask != 0 {
                self.push_hits(qi, p, &d, mask);
            }
        }
    }
}
