//! The exact integer engine for `u8` queries against a `u8` database (e.g. SIFT): dot
//! products `sum((q - 128) * x)` in `i32`, computed with AVX-512 VNNI `vpdpbusd` (64 byte
//! multiply-adds per instruction, four times the f32 FMA rate), and a scalar reference.
//!
//! Why the shift: `vpdpbusd` multiplies unsigned bytes by signed bytes. Database bytes are
//! the unsigned operand; queries are stored as `q - 128` (fits `i8`) and the distance is
//! rebuilt exactly as `||q||² + (||x||² - 256 * sum(x)) - 2 * sum((q - 128) * x)`, with the
//! middle term precomputed per row ([`PanelsU8::bias`]). Everything is exact in `i32`
//! for dimensions up to [`super::panels::MAX_U8_DIM`].

use std::ops::Range;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::gemm_f32::MR;
use super::panels::{NR, PanelsU8};
#[cfg(target_arch = "x86_64")]
use super::transpose::transpose_16x16;

/// A tile of shifted dot products: `dots[i][j] = sum((q_i - 128) * x_j)`.
pub(crate) type IntTile = [[i32; NR]; MR];

/// Consumer of integer tiles.
pub(crate) trait IntTileSink {
    /// `dots[i][j]` for tile queries `q0..q0 + m` and the rows of panel `p`; rows `m..`
    /// of `dots` are stale and must be ignored.
    fn tile(&mut self, q0: usize, m: usize, p: usize, dots: &IntTile);
}

/// Which integer kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum U8Path {
    /// Portable reference (slower than the f32 SIMD path; used by tests).
    #[cfg_attr(not(test), allow(dead_code))]
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Vnni,
}

impl U8Path {
    /// The VNNI path, if this CPU has AVX-512 VNNI (the only case where the integer path
    /// beats the f32 one).
    pub(crate) fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni")
            {
                return Some(U8Path::Vnni);
            }
        }
        None
    }
}

/// Queries converted for the integer path: rows of `dim4` signed bytes `q - 128` (zero
/// padded) and their squared norms.
pub(crate) struct QueriesU8 {
    pub(crate) shifted: Vec<i8>,
    pub(crate) norms: Vec<i32>,
    pub(crate) dim4: usize,
}

impl QueriesU8 {
    /// `Some` when every component is an integer in `0..=255` (so the integer path is
    /// exact), `None` otherwise.
    pub(crate) fn convert(queries: &[f32], dim: usize) -> Option<Self> {
        let dim4 = dim.div_ceil(4) * 4;
        let rows = queries.len() / dim;
        let mut shifted = vec![0i8; rows * dim4];
        let mut norms = vec![0i32; rows];
        for (r, q) in queries.chunks_exact(dim).enumerate() {
            let mut norm = 0i32;
            for (d, &v) in q.iter().enumerate() {
                if !crate::vectors::is_byte(v) {
                    return None;
                }
                let b = v as i32;
                norm += b * b;
                shifted[r * dim4 + d] = (b - 128) as i8;
            }
            norms[r] = norm;
        }
        Some(QueriesU8 {
            shifted,
            norms,
            dim4,
        })
    }

    /// Query `i` back as its original `dim` bytes.
    pub(crate) fn bytes(&self, i: usize, dim: usize) -> Vec<u8> {
        self.shifted[i * self.dim4..][..dim]
            .iter()
            .map(|&b| (i32::from(b) + 128) as u8)
            .collect()
    }
}

/// Scans every query tile of `queries` (rows of `dim4` shifted bytes, a block of a
/// [`QueriesU8`]) against every panel, feeding the integer tiles to `sink`.
pub(crate) fn scan<S: IntTileSink>(
    path: U8Path,
    queries: &[i8],
    dim4: usize,
    panels: &PanelsU8,
    prange: Range<usize>,
    sink: &mut S,
) {
    debug_assert_eq!(dim4, panels.dim4());
    match path {
        U8Path::Scalar => scan_scalar(queries, dim4, panels, prange, sink),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `U8Path::Vnni` is only produced after detecting avx512f/bw/vnni.
        U8Path::Vnni => unsafe { scan_vnni(queries, dim4, panels, prange, sink) },
    }
}

#[cfg_attr(not(test), allow(dead_code))]
fn scan_scalar<S: IntTileSink>(
    queries: &[i8],
    dim4: usize,
    panels: &PanelsU8,
    prange: Range<usize>,
    sink: &mut S,
) {
    let mut dots = [[0i32; NR]; MR];
    for (t, qt) in queries.chunks(MR * dim4).enumerate() {
        let m = qt.len() / dim4;
        for p in prange.clone() {
            let panel = panels.panel(p);
            for (i, row) in dots.iter_mut().take(m).enumerate() {
                let q = &qt[i * dim4..][..dim4];
                for (j, out) in row.iter_mut().enumerate() {
                    let mut acc = 0i32;
                    for g in 0..dim4 / 4 {
                        let x = &panel[g * NR * 4 + j * 4..][..4];
                        for b in 0..4 {
                            acc += i32::from(x[b]) * i32::from(q[4 * g + b]);
                        }
                    }
                    *out = acc;
                }
            }
            sink.tile(t * MR, m, p, &dots);
        }
    }
}

/// The dot products of `M` shifted query rows (`q`, rows of `dim4` bytes) with the 32 rows
/// of one panel, as `(lo, hi)`: `[__m512i; M]` each, lanes = panel rows 0–15 and 16–31.
/// A macro so that it expands inside each caller's `#[target_feature]` function.
///
/// Callers guarantee (SAFETY): avx512f/bw/vnni enabled, `q.len() >= M * dim4`, `panel` is
/// `dim4 * NR` bytes and 64-byte aligned.
macro_rules! vnni_dots {
    ($m:ident, $q:expr, $dim4:expr, $panel:expr) => {{
        let (qp, xp) = ($q.as_ptr(), $panel.as_ptr());
        let mut lo = [_mm512_setzero_si512(); $m];
        let mut hi = [_mm512_setzero_si512(); $m];
        for g in 0..$dim4 / 4 {
            // SAFETY: g * 128 + 128 <= dim4 * NR bytes of the panel, which is 64-byte
            // aligned (the caller's contract).
            let (x0, x1) = unsafe {
                (
                    _mm512_load_si512(xp.add(g * NR * 4).cast()),
                    _mm512_load_si512(xp.add(g * NR * 4 + 64).cast()),
                )
            };
            for i in 0..$m {
                // SAFETY: bytes i * dim4 + 4g .. + 4 lie within the `M * dim4` of `q`.
                let word = unsafe { qp.add(i * $dim4 + 4 * g).cast::<i32>().read_unaligned() };
                let qv = _mm512_set1_epi32(word);
                lo[i] = _mm512_dpbusd_epi32(lo[i], x0, qv);
                hi[i] = _mm512_dpbusd_epi32(hi[i], x1, qv);
            }
        }
        (lo, hi)
    }};
}
#[cfg(target_arch = "x86_64")]
pub(crate) use vnni_dots;

/// VNNI micro-kernel: `M` query rows x 32 panel rows, two zmm accumulators per query.
///
/// # Safety
/// The CPU must support avx512f/bw/vnni; `q` must hold `M` rows of `dim4` bytes and
/// `panel` `dim4 * NR` bytes, 64-byte aligned.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn kernel_vnni<const M: usize>(q: &[i8], dim4: usize, panel: &[u8], dots: &mut IntTile) {
    debug_assert!(q.len() >= M * dim4 && panel.len() >= dim4 * NR);
    let (lo, hi) = vnni_dots!(M, q, dim4, panel);
    for i in 0..M {
        // SAFETY: `dots[i]` is 32 writable i32s.
        unsafe {
            _mm512_storeu_si512(dots[i].as_mut_ptr().cast(), lo[i]);
            _mm512_storeu_si512(dots[i].as_mut_ptr().add(16).cast(), hi[i]);
        }
    }
}

/// # Safety
/// The CPU must support avx512f/bw/vnni.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn scan_vnni<S: IntTileSink>(
    queries: &[i8],
    dim4: usize,
    panels: &PanelsU8,
    prange: Range<usize>,
    sink: &mut S,
) {
    let mut dots = [[0i32; NR]; MR];
    for (t, qt) in queries.chunks(MR * dim4).enumerate() {
        let m = qt.len() / dim4;
        for p in prange.clone() {
            let x = panels.panel(p);
            // SAFETY: the features are enabled here; `qt` holds `m` rows, `x` a panel.
            unsafe {
                match m {
                    1 => kernel_vnni::<1>(qt, dim4, x, &mut dots),
                    2 => kernel_vnni::<2>(qt, dim4, x, &mut dots),
                    3 => kernel_vnni::<3>(qt, dim4, x, &mut dots),
                    4 => kernel_vnni::<4>(qt, dim4, x, &mut dots),
                    5 => kernel_vnni::<5>(qt, dim4, x, &mut dots),
                    6 => kernel_vnni::<6>(qt, dim4, x, &mut dots),
                    7 => kernel_vnni::<7>(qt, dim4, x, &mut dots),
                    8 => kernel_vnni::<8>(qt, dim4, x, &mut dots),
                    9 => kernel_vnni::<9>(qt, dim4, x, &mut dots),
                    10 => kernel_vnni::<10>(qt, dim4, x, &mut dots),
                    11 => kernel_vnni::<11>(qt, dim4, x, &mut dots),
                    _ => kernel_vnni::<12>(qt, dim4, x, &mut dots),
                }
            }
            sink.tile(t * MR, m, p, &dots);
        }
    }
}

/// Packs 16 consecutive rows into lanes `lane0..lane0 + 16` of a panel (layout in
/// [`super::panels`]) and writes their biases `||x||² - 256 * sum(x)`. Returns `false`
/// (and does nothing) when `path` has no fast packer; the caller then packs in scalar.
pub(crate) fn pack_16_rows(
    path: U8Path,
    rows: &[&[u8]; 16],
    dim: usize,
    panel: &mut [u8],
    lane0: usize,
    bias: &mut [i32; 16],
) -> bool {
    let dim4 = dim.div_ceil(4) * 4;
    if lane0 + 16 > NR || panel.len() < dim4 * NR || rows.iter().any(|r| r.len() < dim) {
        return false;
    }
    match path {
        U8Path::Scalar => {
            let _ = bias; // only the SIMD packer writes it
            false
        }
        #[cfg(target_arch = "x86_64")]
        U8Path::Vnni => {
            // SAFETY: `Vnni` implies the features were detected; lengths checked above.
            unsafe { pack_16_rows_vnni(rows, dim, panel, lane0, bias) };
            true
        }
    }
}

/// # Safety
/// The CPU must support avx512f/bw/vnni; every row holds at least `dim` bytes, `panel`
/// at least `ceil(dim / 4) * 4 * NR` bytes, and `lane0 + 16 <= NR`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn pack_16_rows_vnni(
    rows: &[&[u8]; 16],
    dim: usize,
    panel: &mut [u8],
    lane0: usize,
    bias: &mut [i32; 16],
) {
    let groups = dim.div_ceil(4);
    let flip = _mm512_set1_epi8(-128);
    let ones = _mm512_set1_epi8(1);
    let mut sq = _mm512_setzero_si512();
    let mut sum = _mm512_setzero_si512();
    let out = panel.as_mut_ptr();
    for c in 0..dim.div_ceil(64) {
        let take = (dim - 64 * c).min(64);
        let mask: __mmask64 = if take == 64 {
            u64::MAX
        } else {
            (1u64 << take) - 1
        };
        let mut m = [_mm512_setzero_si512(); 16];
        for (v, row) in m.iter_mut().zip(rows) {
            // SAFETY: bytes 64c..64c + take of `row` exist (`row.len() >= dim`); the
            // masked load reads nothing else.
            *v = unsafe { _mm512_maskz_loadu_epi8(mask, row.as_ptr().add(64 * c).cast()) };
        }
        transpose_16x16(&mut m);
        for (j, &v) in m.iter().enumerate().take(groups - 16 * c) {
            let g = 16 * c + j;
            // SAFETY: g < groups, so bytes g * NR * 4 + lane0 * 4 .. + 64 lie within the
            // panel's `groups * 4 * NR` bytes.
            unsafe { _mm512_storeu_si512(out.add(g * NR * 4 + lane0 * 4).cast(), v) };
            sq = _mm512_dpbusd_epi32(sq, v, _mm512_xor_si512(v, flip));
            sum = _mm512_dpbusd_epi32(sum, v, ones);
        }
    }
    // sum(x (x - 128)) - 128 sum(x) = ||x||² - 256 sum(x)
    let b = _mm512_sub_epi32(sq, _mm512_slli_epi32::<7>(sum));
    // SAFETY: `bias` is 16 writable i32s.
    unsafe { _mm512_storeu_si512(bias.as_mut_ptr().cast(), b) };
}
