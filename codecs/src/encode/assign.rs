//! Nearest-visual-word assignment for the encoders: a kernel specialised for a small
//! vocabulary (tens to thousands of words) and many short descriptors.
//!
//! The words are stored transposed (`dim × k_padded`) with their half squared norms, and
//! each descriptor `x` picks `argmin_k (‖c_k‖²/2 − x·c_k)` (the `‖x‖²` term is common to
//! all words). The SIMD kernels keep 4 descriptors × 64 words (AVX-512) or 3 × 32 (AVX2)
//! of dot products in registers, so every word coordinate loaded serves several
//! descriptors and every descriptor coordinate serves many words; this runs about 1.5×
//! faster than the general blocked GEMM of [`crate::exact::nearest_l2`] for the VLAD64
//! shape (4096 × 64 × 128), and the encoders are dominated by it.
//!
//! Ties go to the smaller word index. [`assign_scalar`] is the reference the SIMD paths
//! are tested against (they may differ from it only where two words are within rounding
//! of each other).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Words are padded (with `+∞` half norms, never chosen) to a multiple of this.
const PAD: usize = 16;

/// Which kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AssignPath {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl AssignPath {
    /// The fastest path this CPU supports.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return AssignPath::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return AssignPath::Avx2;
            }
        }
        AssignPath::Scalar
    }

    /// Every path this CPU supports.
    #[cfg(test)]
    pub(crate) fn all() -> Vec<Self> {
        let mut v = vec![AssignPath::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                v.push(AssignPath::Avx2);
            }
            if is_x86_feature_detected!("avx512f") {
                v.push(AssignPath::Avx512);
            }
        }
        v
    }
}

/// A vocabulary laid out for assignment.
#[derive(Debug, Clone)]
pub(crate) struct Assigner {
    dim: usize,
    k: usize,
    /// `k` rounded up to a multiple of [`PAD`].
    kp: usize,
    /// `dim × kp`: `ct[d * kp + j]` is coordinate `d` of word `j` (0 for padding words).
    ct: Vec<f32>,
    /// `kp` half squared norms; `+∞` for padding words.
    half_norms: Vec<f32>,
    path: AssignPath,
}

impl Assigner {
    /// Lays out `centroids` (`k × dim`, row-major, `k ≥ 1`, `dim ≥ 1`; the encoders
    /// validate this) for the fastest path of this CPU.
    pub(crate) fn new(centroids: &[f32], dim: usize) -> Self {
        Self::with_path(centroids, dim, AssignPath::detect())
    }

    pub(crate) fn with_path(centroids: &[f32], dim: usize, path: AssignPath) -> Self {
        let k = centroids.len() / dim;
        let kp = k.div_ceil(PAD) * PAD;
        let mut ct = vec![0.0f32; dim * kp];
        let mut half_norms = vec![f32::INFINITY; kp];
        for (j, row) in centroids.chunks_exact(dim).enumerate() {
            half_norms[j] = 0.5 * row.iter().map(|v| v * v).sum::<f32>();
            for (d, &v) in row.iter().enumerate() {
                ct[d * kp + j] = v;
            }
        }
        Assigner {
            dim,
            k,
            kp,
            ct,
            half_norms,
            path,
        }
    }

    /// Nearest word of every row of `x` (`out.len()` rows of `dim`) into `out`.
    pub(crate) fn assign(&self, x: &[f32], out: &mut [u32]) {
        debug_assert_eq!(x.len(), out.len() * self.dim);
        match self.path {
            AssignPath::Scalar => assign_scalar(self, x, out),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Avx512` is only chosen when `avx512f` was detected at run time.
            AssignPath::Avx512 => unsafe { avx512::assign(self, x, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Avx2` is only chosen when `avx2` and `fma` were detected.
            AssignPath::Avx2 => unsafe { avx2::assign(self, x, out) },
        }
    }
}

/// The scalar reference: for each row, the first word minimising `‖c‖²/2 − x·c`.
pub(crate) fn assign_scalar(a: &Assigner, x: &[f32], out: &mut [u32]) {
    let mut dots = vec![0.0f32; a.kp];
    for (row, o) in x.chunks_exact(a.dim).zip(out.iter_mut()) {
        dots.fill(0.0);
        for (&v, col) in row.iter().zip(a.ct.chunks_exact(a.kp)) {
            for (acc, &c) in dots.iter_mut().zip(col) {
                *acc += v * c;
            }
        }
        let mut best = (0u32, f32::INFINITY);
        for (j, (&h, &dot)) in a.half_norms[..a.k].iter().zip(&dots).enumerate() {
            let s = h - dot;
            if s < best.1 {
                best = (j as u32, s);
            }
        }
        *o = best.0;
    }
}

/// Picks, among lanes holding `(score, index)` candidates, the smallest score, ties to the
/// smaller index.
#[cfg(target_arch = "x86_64")]
fn reduce_lanes(scores: &[f32], idx: &[i32]) -> u32 {
    let mut best = (scores[0], idx[0]);
    for (&s, &i) in scores.iter().zip(idx).skip(1) {
        if s < best.0 || (s == best.0 && i < best.1) {
            best = (s, i);
        }
    }
    best.1 as u32
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::*;

    /// Descriptors per register block.
    const R: usize = 4;

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::incompatible_msrv)] // AVX-512 intrinsics: stable since 1.89 (toolchain 1.95)
    pub(super) unsafe fn assign(a: &Assigner, x: &[f32], out: &mut [u32]) {
        let dim = a.dim;
        let n = out.len();
        let mut tail = vec![0.0f32; R * dim];
        for b in (0..n).step_by(R) {
            let m = R.min(n - b);
            let rows: &[f32] = if m == R {
                &x[b * dim..(b + R) * dim]
            } else {
                tail[..m * dim].copy_from_slice(&x[b * dim..(b + m) * dim]);
                tail[m * dim..].fill(0.0);
                &tail
            };
            let mut res = [0u32; R];
            // SAFETY: avx512f is enabled for this function; `rows` holds R rows of `dim`.
            unsafe { block(a, rows, &mut res) };
            out[b..b + m].copy_from_slice(&res[..m]);
        }
    }

    /// Nearest words of `R` rows, over all word groups of up to 64.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::incompatible_msrv)]
    unsafe fn block(a: &Assigner, rows: &[f32], res: &mut [u32; R]) {
        let mut best = [_mm512_set1_ps(f32::INFINITY); R];
        let mut bidx = [_mm512_setzero_si512(); R];
        let mut g = 0;
        while g < a.kp {
            let tiles = ((a.kp - g) / 16).min(4);
            // SAFETY (all four): tiles * 16 words from g are inside the padded layout.
            unsafe {
                match tiles {
                    4 => group::<4>(a, rows, g, &mut best, &mut bidx),
                    3 => group::<3>(a, rows, g, &mut best, &mut bidx),
                    2 => group::<2>(a, rows, g, &mut best, &mut bidx),
                    _ => group::<1>(a, rows, g, &mut best, &mut bidx),
                }
            }
            g += tiles * 16;
        }
        let mut s = [0.0f32; 16];
        let mut i = [0i32; 16];
        for r in 0..R {
            // SAFETY: both arrays hold 16 lanes.
            unsafe {
                _mm512_storeu_ps(s.as_mut_ptr(), best[r]);
                _mm512_storeu_si512(i.as_mut_ptr().cast(), bidx[r]);
            }
            res[r] = reduce_lanes(&s, &i);
        }
    }

    /// Dot products of the `R` rows with words `g..g + 16 T`, folded into the running
    /// per-lane minima.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::incompatible_msrv)]
    #[allow(clippy::needless_range_loop)] // `t` indexes both accumulators and words
    unsafe fn group<const T: usize>(
        a: &Assigner,
        rows: &[f32],
        g: usize,
        best: &mut [__m512; R],
        bidx: &mut [__m512i; R],
    ) {
        let dim = a.dim;
        let mut acc = [[_mm512_setzero_ps(); T]; R];
        for d in 0..dim {
            let col = &a.ct[d * a.kp + g..d * a.kp + g + 16 * T];
            let mut c = [_mm512_setzero_ps(); T];
            for (t, ct) in c.iter_mut().enumerate() {
                // SAFETY: `col` holds 16 T floats.
                *ct = unsafe { _mm512_loadu_ps(col.as_ptr().add(16 * t)) };
            }
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_ps(rows[r * dim + d]);
                for t in 0..T {
                    acc_r[t] = _mm512_fmadd_ps(xv, c[t], acc_r[t]);
                }
            }
        }
        let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        for t in 0..T {
            let w = g + 16 * t;
            // SAFETY: half_norms has kp >= w + 16 entries.
            let h = unsafe { _mm512_loadu_ps(a.half_norms.as_ptr().add(w)) };
            let idx = _mm512_add_epi32(lane, _mm512_set1_epi32(w as i32));
            for r in 0..R {
                let s = _mm512_sub_ps(h, acc[r][t]);
                let m = _mm512_cmp_ps_mask(s, best[r], _CMP_LT_OQ);
                best[r] = _mm512_mask_blend_ps(m, best[r], s);
                bidx[r] = _mm512_mask_blend_epi32(m, bidx[r], idx);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;

    /// Descriptors per register block.
    const R: usize = 3;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn assign(a: &Assigner, x: &[f32], out: &mut [u32]) {
        let dim = a.dim;
        let n = out.len();
        let mut tail = vec![0.0f32; R * dim];
        for b in (0..n).step_by(R) {
            let m = R.min(n - b);
            let rows: &[f32] = if m == R {
                &x[b * dim..(b + R) * dim]
            } else {
                tail[..m * dim].copy_from_slice(&x[b * dim..(b + m) * dim]);
                tail[m * dim..].fill(0.0);
                &tail
            };
            let mut res = [0u32; R];
            // SAFETY: avx2 and fma are enabled for this function; `rows` holds R rows.
            unsafe { block(a, rows, &mut res) };
            out[b..b + m].copy_from_slice(&res[..m]);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn block(a: &Assigner, rows: &[f32], res: &mut [u32; R]) {
        let mut best = [_mm256_set1_ps(f32::INFINITY); R];
        let mut bidx = [_mm256_setzero_si256(); R];
        let mut g = 0;
        while g < a.kp {
            let tiles = ((a.kp - g) / 8).min(4);
            // SAFETY (all four): tiles * 8 words from g are inside the padded layout.
            unsafe {
                match tiles {
                    4 => group::<4>(a, rows, g, &mut best, &mut bidx),
                    3 => group::<3>(a, rows, g, &mut best, &mut bidx),
                    2 => group::<2>(a, rows, g, &mut best, &mut bidx),
                    _ => group::<1>(a, rows, g, &mut best, &mut bidx),
                }
            }
            g += tiles * 8;
        }
        let mut s = [0.0f32; 8];
        let mut i = [0i32; 8];
        for r in 0..R {
            // SAFETY: both arrays hold 8 lanes.
            unsafe {
                _mm256_storeu_ps(s.as_mut_ptr(), best[r]);
                _mm256_storeu_si256(i.as_mut_ptr().cast(), bidx[r]);
            }
            res[r] = reduce_lanes(&s, &i);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::needless_range_loop)] // `t` indexes both accumulators and words
    unsafe fn group<const T: usize>(
        a: &Assigner,
        rows: &[f32],
        g: usize,
        best: &mut [__m256; R],
        bidx: &mut [__m256i; R],
    ) {
        let dim = a.dim;
        let mut acc = [[_mm256_setzero_ps(); T]; R];
        for d in 0..dim {
            let col = &a.ct[d * a.kp + g..d * a.kp + g + 8 * T];
            let mut c = [_mm256_setzero_ps(); T];
            for (t, ct) in c.iter_mut().enumerate() {
                // SAFETY: `col` holds 8 T floats.
                *ct = unsafe { _mm256_loadu_ps(col.as_ptr().add(8 * t)) };
            }
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let xv = _mm256_set1_ps(rows[r * dim + d]);
                for t in 0..T {
                    acc_r[t] = _mm256_fmadd_ps(xv, c[t], acc_r[t]);
                }
            }
        }
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        for t in 0..T {
            let w = g + 8 * t;
            // SAFETY: half_norms has kp >= w + 8 entries.
            let h = unsafe { _mm256_loadu_ps(a.half_norms.as_ptr().add(w)) };
            let idx = _mm256_add_epi32(lane, _mm256_set1_epi32(w as i32));
            for r in 0..R {
                let s = _mm256_sub_ps(h, acc[r][t]);
                let m = _mm256_cmp_ps::<_CMP_LT_OQ>(s, best[r]);
                best[r] = _mm256_blendv_ps(best[r], s, m);
                bidx[r] = _mm256_castps_si256(_mm256_blendv_ps(
                    _mm256_castsi256_ps(bidx[r]),
                    _mm256_castsi256_ps(idx),
                    m,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmeans::SeededRng;

    fn exact_sq(x: &[f32], c: &[f32]) -> f32 {
        x.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum()
    }

    #[test]
    fn simd_paths_agree_with_scalar_reference() {
        let mut rng = SeededRng::new(3);
        for &(k, dim, n) in &[
            (64, 128, 37),
            (1, 3, 5),
            (5, 8, 11),
            (17, 16, 9),
            (100, 20, 50),
            (130, 7, 13),
        ] {
            let c: Vec<f32> = (0..k * dim).map(|_| rng.next_f64() as f32).collect();
            let x: Vec<f32> = (0..n * dim).map(|_| rng.next_f64() as f32).collect();
            let reference = Assigner::with_path(&c, dim, AssignPath::Scalar);
            let mut want = vec![0u32; n];
            assign_scalar(&reference, &x, &mut want);
            // The reference is the true nearest word.
            for (row, &w) in x.chunks_exact(dim).zip(&want) {
                let best = c
                    .chunks_exact(dim)
                    .map(|cj| exact_sq(row, cj))
                    .fold(f32::INFINITY, f32::min);
                assert!(exact_sq(row, &c[w as usize * dim..][..dim]) <= best + 1e-4);
            }
            for path in AssignPath::all() {
                let mut got = vec![u32::MAX; n];
                Assigner::with_path(&c, dim, path).assign(&x, &mut got);
                for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                    if g != w {
                        let row = &x[i * dim..(i + 1) * dim];
                        let (dg, dw) = (
                            exact_sq(row, &c[g as usize * dim..][..dim]),
                            exact_sq(row, &c[w as usize * dim..][..dim]),
                        );
                        assert!(
                            (dg - dw).abs() <= 1e-4,
                            "{path:?} k={k} dim={dim} row {i}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn ties_go_to_the_smaller_index() {
        // Words 0 and 2 coincide; a descriptor on them must pick 0, on every path.
        let c = [1.0f32, 1.0, 5.0, 5.0, 1.0, 1.0];
        for path in AssignPath::all() {
            let mut out = [9u32; 2];
            Assigner::with_path(&c, 2, path).assign(&[1.0, 1.0, 5.0, 5.0], &mut out);
            assert_eq!(out, [0, 1], "{path:?}");
        }
    }
}
