//! Packing of database rows into cache-friendly, 64-byte-aligned "panels" of [`NR`] rows,
//! the layout the micro-kernels stream through.
//!
//! - f32 panels: `[dim][NR]` floats, i.e. element `d` of the panel's `NR` rows sits in one
//!   contiguous run of `NR` floats (two AVX-512 registers, four AVX2 registers).
//! - u8 panels: `[ceil(dim / 4)][NR][4]` bytes, i.e. each row's bytes `4g..4g + 4` sit in
//!   one 32-bit lane, the operand layout of `vpdpbusd`; dimensions are zero-padded to a
//!   multiple of four.
//!
//! Padding rows (past the last real row of the final panel) are zero and marked invalid
//! by [`Panels::rows`]; sinks never report them.

use std::ops::Range;

use super::gemm_f32::{self, F32Path};
use super::gemm_u8::{self, U8Path};
use crate::vectors::VectorsRef;

/// Rows per panel (the micro-kernels' tile width).
pub(crate) const NR: usize = 32;

/// One 64-byte cache line; a `Vec` of these is a 64-byte-aligned buffer.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// A growable, zero-initialised, 64-byte-aligned byte buffer.
#[derive(Default)]
pub(crate) struct AlignedBuf {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedBuf {
    /// Resizes to `bytes` bytes (content unspecified but initialised).
    fn resize(&mut self, bytes: usize) {
        self.lines.resize(bytes.div_ceil(64), Line([0; 64]));
        self.len = bytes;
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `lines` holds at least `len` initialised bytes (`Line` is plain bytes
        // with no padding), borrowed for the lifetime of `&self`.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<u8>(), self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, with a unique borrow.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<u8>(), self.len) }
    }

    fn f32s(&self) -> &[f32] {
        // SAFETY: the buffer is 64-byte aligned and every bit pattern is a valid f32;
        // `len / 4` floats lie within the initialised bytes.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<f32>(), self.len / 4) }
    }

    fn f32s_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `f32s`, with a unique borrow.
        unsafe {
            std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f32>(), self.len / 4)
        }
    }
}

/// A block of database rows packed as f32 panels, with their squared norms.
#[derive(Default)]
pub(crate) struct Panels {
    buf: AlignedBuf,
    /// Squared norm of every (padded) row; `+inf` for padding rows.
    norms: Vec<f32>,
    rows: usize,
    dim: usize,
    row: Vec<f32>,
}

impl Panels {
    /// Packs rows `rows` of `base` (converted to f32) minus `center` (`dim` floats, or
    /// empty for none; the norms are those of the centred rows). Full groups of 16 rows go
    /// through `path`'s fast packer when it has one.
    pub(crate) fn pack(
        &mut self,
        base: &VectorsRef<'_>,
        rows: Range<usize>,
        center: &[f32],
        path: F32Path,
    ) {
        let count = rows.len();
        let dim = base.dim();
        let panels = count.div_ceil(NR);
        self.rows = count;
        self.dim = dim;
        self.buf.resize(panels * NR * dim * 4);
        self.norms.clear();
        self.norms.resize(panels * NR, f32::INFINITY);
        self.row.resize(dim, 0.0);
        let data = self.buf.f32s_mut();
        for r0 in (0..panels * NR).step_by(16) {
            let panel = &mut data[(r0 / NR) * NR * dim..][..NR * dim];
            if r0 + 16 <= count {
                let group: [&[u8]; 16] =
                    std::array::from_fn(|i| base.row_bytes(rows.start + r0 + i));
                let mut norms = [0.0f32; 16];
                if gemm_f32::pack_16_rows(
                    path,
                    &group,
                    base.elem(),
                    dim,
                    center,
                    panel,
                    r0 % NR,
                    &mut norms,
                ) {
                    self.norms[r0..r0 + 16].copy_from_slice(&norms);
                    continue;
                }
            }
            for r in r0..r0 + 16 {
                let lane = r % NR;
                if r < count {
                    base.row_f32_into(rows.start + r, &mut self.row);
                    for (v, c) in self.row.iter_mut().zip(center) {
                        *v -= c;
                    }
                    let mut norm = 0.0f32;
                    for (d, &v) in self.row.iter().enumerate() {
                        panel[d * NR + lane] = v;
                        norm += v * v;
                    }
                    self.norms[r] = norm;
                } else {
                    for d in 0..dim {
                        panel[d * NR + lane] = 0.0;
                    }
                }
            }
        }
    }

    /// Number of real (unpadded) rows.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }
    /// Number of panels.
    pub(crate) fn count(&self) -> usize {
        self.rows.div_ceil(NR)
    }
    /// Panel `p` (`dim * NR` floats, 64-byte aligned).
    pub(crate) fn panel(&self, p: usize) -> &[f32] {
        &self.buf.f32s()[p * NR * self.dim..][..NR * self.dim]
    }
    /// Squared norms of panel `p`'s rows (`+inf` for padding).
    pub(crate) fn norms(&self, p: usize) -> &[f32; NR] {
        let s = &self.norms[p * NR..][..NR];
        s.try_into().unwrap_or(&[f32::INFINITY; NR])
    }
}

/// Bias of padding rows: large (never a near neighbour) yet far from `i32` overflow when
/// combined with any query's terms (dimension <= [`MAX_U8_DIM`]).
pub(crate) const PAD_BIAS: i32 = 1 << 30;

/// Largest dimension the integer path accepts: every intermediate stays within `i32`.
pub(crate) const MAX_U8_DIM: usize = 4096;

/// Packs one row (`src`, empty for a padding row) into lane `lane` of `panel`; returns
/// its bias `||x||² - 256 * sum(x)` (`None` for a padding row).
fn pack_row_scalar(src: &[u8], dim4: usize, panel: &mut [u8], lane: usize) -> Option<i32> {
    let full = src.len() / 4;
    for (g, group) in src.chunks_exact(4).enumerate() {
        panel[g * NR * 4 + lane * 4..][..4].copy_from_slice(group);
    }
    for g in full..dim4 / 4 {
        let dst = &mut panel[g * NR * 4 + lane * 4..][..4];
        for (b, o) in dst.iter_mut().enumerate() {
            *o = src.get(4 * g + b).copied().unwrap_or(0);
        }
    }
    if src.is_empty() {
        return None;
    }
    let (mut sq, mut sum) = (0i32, 0i32);
    for &v in src {
        sq += i32::from(v) * i32::from(v);
        sum += i32::from(v);
    }
    Some(sq - 256 * sum)
}

/// A block of `u8` database rows packed for the integer kernels, with per-row constants.
#[derive(Default)]
pub(crate) struct PanelsU8 {
    buf: AlignedBuf,
    /// Per row: `||x||² - 256 * sum(x)` (the query-independent part of the distance when
    /// the query is stored shifted by -128); [`PAD_BIAS`] for padding rows.
    bias: Vec<i32>,
    rows: usize,
    dim4: usize,
}

impl PanelsU8 {
    /// Packs `rows` rows of `dim` bytes; `row(r)` returns row `r` (`dim` bytes). Full
    /// groups of 16 rows go through `path`'s fast packer when it has one.
    pub(crate) fn pack<'a>(
        &mut self,
        rows: usize,
        dim: usize,
        row: impl Fn(usize) -> &'a [u8],
        path: U8Path,
    ) {
        let panels = rows.div_ceil(NR);
        let dim4 = dim.div_ceil(4) * 4;
        self.rows = rows;
        self.dim4 = dim4;
        self.buf.resize(panels * NR * dim4);
        self.bias.clear();
        self.bias.resize(panels * NR, PAD_BIAS);
        let data = self.buf.bytes_mut();
        for r0 in (0..panels * NR).step_by(16) {
            let panel = &mut data[(r0 / NR) * NR * dim4..][..NR * dim4];
            let lane0 = r0 % NR;
            if r0 + 16 <= rows {
                let group: [&[u8]; 16] = std::array::from_fn(|i| row(r0 + i));
                let mut bias = [0i32; 16];
                if gemm_u8::pack_16_rows(path, &group, dim, panel, lane0, &mut bias) {
                    self.bias[r0..r0 + 16].copy_from_slice(&bias);
                    continue;
                }
            }
            for r in r0..r0 + 16 {
                let src: &[u8] = if r < rows { row(r) } else { &[] };
                self.bias[r] = pack_row_scalar(src, dim4, panel, r % NR).unwrap_or(PAD_BIAS);
            }
        }
    }

    /// Number of real (unpadded) rows.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }
    /// Dimension padded to a multiple of four.
    pub(crate) fn dim4(&self) -> usize {
        self.dim4
    }
    /// Panel `p` (`dim4 * NR` bytes, 64-byte aligned).
    pub(crate) fn panel(&self, p: usize) -> &[u8] {
        &self.buf.bytes()[p * NR * self.dim4..][..NR * self.dim4]
    }
    /// Per-row bias of panel `p` (see the field doc).
    pub(crate) fn bias(&self, p: usize) -> &[i32; NR] {
        let s = &self.bias[p * NR..][..NR];
        s.try_into().unwrap_or(&[PAD_BIAS; NR])
    }
}
