//! The f32 GEMM-style engine: register-tiled micro-kernels computing an `MR x NR` tile of
//! dot products between query rows and one packed panel, and the block scanner that walks
//! query tiles x panels and hands every tile to a [`TileSink`].
//!
//! Paths: AVX-512 (12 x 32 tile, 24 zmm accumulators), AVX2+FMA (6 x 16 sub-tiles, 12 ymm
//! accumulators) and a portable scalar kernel; [`F32Path::detect`] picks one at run time.

use std::ops::Range;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::panels::{NR, Panels};
#[cfg(target_arch = "x86_64")]
use super::transpose::transpose_16x16;
use crate::vectors::ElemType;

/// Query rows per tile.
pub(crate) const MR: usize = 12;

/// A tile of dot products: `dots[i][j] = <query i, panel row j>`.
pub(crate) type DotTile = [[f32; NR]; MR];

/// Consumer of dot-product tiles (top-k, nearest, full matrix).
pub(crate) trait TileSink {
    /// `dots[i][j]` for tile queries `q0..q0 + m` (indices within the scanned query block)
    /// and the rows of panel `p`; rows `m..` of `dots` are stale and must be ignored.
    fn tile(&mut self, q0: usize, m: usize, p: usize, dots: &DotTile);
}

/// The AVX-512 path needs `avx512f` for the kernels and `bw` + `vl` for the packer.
#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
}

/// Which micro-kernel family runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum F32Path {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl F32Path {
    /// The fastest path this CPU supports.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx512() {
                return F32Path::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return F32Path::Avx2;
            }
        }
        F32Path::Scalar
    }

    /// Every path this CPU supports (for tests and benches).
    #[cfg(test)]
    pub(crate) fn all() -> Vec<Self> {
        let mut v = vec![F32Path::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                v.push(F32Path::Avx2);
            }
            if has_avx512() {
                v.push(F32Path::Avx512);
            }
        }
        v
    }
}

/// Scans every query tile of `queries` (contiguous rows of `dim`) against every panel of
/// `panels`, feeding the dot products to `sink`.
pub(crate) fn scan<S: TileSink>(
    path: F32Path,
    queries: &[f32],
    dim: usize,
    panels: &Panels,
    prange: Range<usize>,
    sink: &mut S,
) {
    match path {
        F32Path::Scalar => scan_scalar(queries, dim, panels, prange, sink),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `F32Path::Avx2` is only produced after detecting avx2 and fma.
        F32Path::Avx2 => unsafe { scan_avx2(queries, dim, panels, prange, sink) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `F32Path::Avx512` is only produced after detecting avx512f/bw/vl.
        F32Path::Avx512 => unsafe { scan_avx512(queries, dim, panels, prange, sink) },
    }
}

fn scan_scalar<S: TileSink>(
    queries: &[f32],
    dim: usize,
    panels: &Panels,
    prange: Range<usize>,
    sink: &mut S,
) {
    let mut dots = [[0.0f32; NR]; MR];
    for (t, qt) in queries.chunks(MR * dim).enumerate() {
        let m = qt.len() / dim;
        for p in prange.clone() {
            let panel = panels.panel(p);
            for row in dots.iter_mut().take(m) {
                *row = [0.0; NR];
            }
            for d in 0..dim {
                let x = &panel[d * NR..][..NR];
                for (i, row) in dots.iter_mut().take(m).enumerate() {
                    let qv = qt[i * dim + d];
                    for (o, &xv) in row.iter_mut().zip(x) {
                        *o += qv * xv;
                    }
                }
            }
            sink.tile(t * MR, m, p, &dots);
        }
    }
}

/// AVX-512 micro-kernel: `M` query rows x 32 panel rows, two zmm accumulators per query.
///
/// # Safety
/// The CPU must support avx512f; `q` must hold `M` rows of `dim` floats and `panel`
/// `dim * NR` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel_avx512<const M: usize>(q: &[f32], dim: usize, panel: &[f32], dots: &mut DotTile) {
    debug_assert!(q.len() >= M * dim && panel.len() >= dim * NR);
    let (qp, xp) = (q.as_ptr(), panel.as_ptr());
    let mut lo = [_mm512_setzero_ps(); M];
    let mut hi = [_mm512_setzero_ps(); M];
    for d in 0..dim {
        // SAFETY: d * NR + 32 <= dim * NR floats of `panel`.
        let (x0, x1) = unsafe {
            (
                _mm512_load_ps(xp.add(d * NR)),
                _mm512_load_ps(xp.add(d * NR + 16)),
            )
        };
        for i in 0..M {
            // SAFETY: i * dim + d < M * dim floats of `q`.
            let qv = _mm512_set1_ps(unsafe { *qp.add(i * dim + d) });
            lo[i] = _mm512_fmadd_ps(qv, x0, lo[i]);
            hi[i] = _mm512_fmadd_ps(qv, x1, hi[i]);
        }
    }
    for i in 0..M {
        // SAFETY: `dots[i]` is 32 writable floats.
        unsafe {
            _mm512_storeu_ps(dots[i].as_mut_ptr(), lo[i]);
            _mm512_storeu_ps(dots[i].as_mut_ptr().add(16), hi[i]);
        }
    }
}

/// # Safety
/// The CPU must support avx512f.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scan_avx512<S: TileSink>(
    queries: &[f32],
    dim: usize,
    panels: &Panels,
    prange: Range<usize>,
    sink: &mut S,
) {
    let mut dots = [[0.0f32; NR]; MR];
    for (t, qt) in queries.chunks(MR * dim).enumerate() {
        let m = qt.len() / dim;
        for p in prange.clone() {
            let x = panels.panel(p);
            // SAFETY: avx512f is enabled here; `qt` holds `m` rows and `x` a whole panel.
            unsafe {
                match m {
                    1 => kernel_avx512::<1>(qt, dim, x, &mut dots),
                    2 => kernel_avx512::<2>(qt, dim, x, &mut dots),
                    3 => kernel_avx512::<3>(qt, dim, x, &mut dots),
                    4 => kernel_avx512::<4>(qt, dim, x, &mut dots),
                    5 => kernel_avx512::<5>(qt, dim, x, &mut dots),
                    6 => kernel_avx512::<6>(qt, dim, x, &mut dots),
                    7 => kernel_avx512::<7>(qt, dim, x, &mut dots),
                    8 => kernel_avx512::<8>(qt, dim, x, &mut dots),
                    9 => kernel_avx512::<9>(qt, dim, x, &mut dots),
                    10 => kernel_avx512::<10>(qt, dim, x, &mut dots),
                    11 => kernel_avx512::<11>(qt, dim, x, &mut dots),
                    _ => kernel_avx512::<12>(qt, dim, x, &mut dots),
                }
            }
            sink.tile(t * MR, m, p, &dots);
        }
    }
}

/// AVX2 micro-kernel: `M` (<= 6) query rows x 16 panel rows starting at column `c0`
/// (0 or 16), two ymm accumulators per query; writes `dots[r0 + i][c0..c0 + 16]`.
///
/// # Safety
/// The CPU must support avx2 and fma; `q` must hold `M` rows of `dim` floats and `panel`
/// `dim * NR` floats; `r0 + M <= MR`, `c0 + 16 <= NR`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2<const M: usize>(
    q: &[f32],
    dim: usize,
    panel: &[f32],
    c0: usize,
    r0: usize,
    dots: &mut DotTile,
) {
    debug_assert!(q.len() >= M * dim && panel.len() >= dim * NR && r0 + M <= MR && c0 + 16 <= NR);
    let (qp, xp) = (q.as_ptr(), panel.as_ptr());
    let mut lo = [_mm256_setzero_ps(); M];
    let mut hi = [_mm256_setzero_ps(); M];
    for d in 0..dim {
        // SAFETY: d * NR + c0 + 16 <= dim * NR floats of `panel`.
        let (x0, x1) = unsafe {
            (
                _mm256_load_ps(xp.add(d * NR + c0)),
                _mm256_load_ps(xp.add(d * NR + c0 + 8)),
            )
        };
        for i in 0..M {
            // SAFETY: i * dim + d < M * dim floats of `q`.
            let qv = unsafe { _mm256_broadcast_ss(&*qp.add(i * dim + d)) };
            lo[i] = _mm256_fmadd_ps(qv, x0, lo[i]);
            hi[i] = _mm256_fmadd_ps(qv, x1, hi[i]);
        }
    }
    for i in 0..M {
        let row = &mut dots[r0 + i][c0..c0 + 16];
        // SAFETY: `row` is 16 writable floats.
        unsafe {
            _mm256_storeu_ps(row.as_mut_ptr(), lo[i]);
            _mm256_storeu_ps(row.as_mut_ptr().add(8), hi[i]);
        }
    }
}

/// # Safety
/// The CPU must support avx2 and fma.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scan_avx2<S: TileSink>(
    queries: &[f32],
    dim: usize,
    panels: &Panels,
    prange: Range<usize>,
    sink: &mut S,
) {
    let mut dots = [[0.0f32; NR]; MR];
    for (t, qt) in queries.chunks(MR * dim).enumerate() {
        let m = qt.len() / dim;
        for p in prange.clone() {
            let x = panels.panel(p);
            for r0 in (0..m).step_by(6) {
                let rows = (m - r0).min(6);
                let q = &qt[r0 * dim..];
                for c0 in [0, 16] {
                    // SAFETY: avx2+fma are enabled here; `q` holds `rows` rows, `x` a
                    // whole panel, r0 + rows <= m <= MR and c0 + 16 <= NR.
                    unsafe {
                        match rows {
                            1 => kernel_avx2::<1>(q, dim, x, c0, r0, &mut dots),
                            2 => kernel_avx2::<2>(q, dim, x, c0, r0, &mut dots),
                            3 => kernel_avx2::<3>(q, dim, x, c0, r0, &mut dots),
                            4 => kernel_avx2::<4>(q, dim, x, c0, r0, &mut dots),
                            5 => kernel_avx2::<5>(q, dim, x, c0, r0, &mut dots),
                            _ => kernel_avx2::<6>(q, dim, x, c0, r0, &mut dots),
                        }
                    }
                }
            }
            sink.tile(t * MR, m, p, &dots);
        }
    }
}

/// Packs 16 consecutive rows (raw bytes of `elem` elements) minus `center` (`dim` floats,
/// or empty for none) into lanes `lane0..lane0 + 16` of an f32 panel and writes their
/// squared norms. Returns `false` (doing nothing) when `path` has no fast packer; the
/// caller then packs in scalar.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_16_rows(
    path: F32Path,
    rows: &[&[u8]; 16],
    elem: ElemType,
    dim: usize,
    center: &[f32],
    panel: &mut [f32],
    lane0: usize,
    norms: &mut [f32; 16],
) -> bool {
    let row_len = dim * elem.size();
    if lane0 + 16 > NR
        || panel.len() < dim * NR
        || rows.iter().any(|r| r.len() < row_len)
        || !(center.is_empty() || center.len() == dim)
    {
        return false;
    }
    match path {
        #[cfg(target_arch = "x86_64")]
        F32Path::Avx512 => {
            // SAFETY: `Avx512` implies avx512f/bw/vl were detected; lengths checked above.
            unsafe { pack_16_rows_avx512(rows, elem, dim, center, panel, lane0, norms) };
            true
        }
        _ => {
            let _ = norms; // only the SIMD packers write it
            false
        }
    }
}

/// # Safety
/// The CPU must support avx512f/bw/vl; every row holds at least `dim` elements of `elem`,
/// `center` is empty or `dim` floats, `panel` at least `dim * NR` floats, and
/// `lane0 + 16 <= NR`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn pack_16_rows_avx512(
    rows: &[&[u8]; 16],
    elem: ElemType,
    dim: usize,
    center: &[f32],
    panel: &mut [f32],
    lane0: usize,
    norms: &mut [f32; 16],
) {
    let out = panel.as_mut_ptr();
    let mut acc = _mm512_setzero_ps();
    for c in 0..dim.div_ceil(16) {
        let take = (dim - 16 * c).min(16);
        let mask: __mmask16 = if take == 16 {
            0xffff
        } else {
            (1u16 << take) - 1
        };
        let mut m = [_mm512_setzero_si512(); 16];
        for (v, row) in m.iter_mut().zip(rows) {
            *v = match elem {
                // SAFETY: elements 16c..16c + take of the row exist; the masked loads
                // read nothing else and need no alignment.
                ElemType::F32 => _mm512_castps_si512(unsafe {
                    _mm512_maskz_loadu_ps(mask, row.as_ptr().add(64 * c).cast())
                }),
                ElemType::U8 => {
                    // SAFETY: as above, for bytes.
                    let b = unsafe { _mm_maskz_loadu_epi8(mask, row.as_ptr().add(16 * c).cast()) };
                    _mm512_castps_si512(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b)))
                }
            };
        }
        transpose_16x16(&mut m);
        for (j, &v) in m.iter().enumerate().take(take) {
            let mut f = _mm512_castsi512_ps(v);
            if let Some(&shift) = center.get(16 * c + j) {
                f = _mm512_sub_ps(f, _mm512_set1_ps(shift));
            }
            // SAFETY: (16c + j) * NR + lane0 + 16 <= dim * NR floats of `panel`.
            unsafe { _mm512_storeu_ps(out.add((16 * c + j) * NR + lane0), f) };
            acc = _mm512_fmadd_ps(f, f, acc);
        }
    }
    // SAFETY: `norms` is 16 writable floats.
    unsafe { _mm512_storeu_ps(norms.as_mut_ptr(), acc) };
}
