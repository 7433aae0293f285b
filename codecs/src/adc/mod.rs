//! Asymmetric distance computation (ADC) scan kernels: the distance of a query to a PQ
//! code is the sum of `m` entries of a look-up table (`lut[sq * ksub + code[sq]]`), and
//! scanning an inverted list is computing that sum for every code and keeping the top k.
//!
//! Distances are computed a block of codes at a time by the fastest kernel available
//! (an unrolled scalar kernel specialised for common `m`; an AVX-512 gather kernel exists
//! but measured slower, see [`scanner`]), then filtered against the current top-k threshold
//! so that codes which cannot enter never touch the heap. [`distances_scalar`] is the
//! reference every kernel is tested against.

pub mod blocked;
pub mod half_terms;
mod kernels;
pub mod tables;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::error::{CodecError, Result};
use crate::topk::TopK;

/// Codes whose distances are computed before the top-k filter runs over them.
const BLOCK: usize = 64;

/// Reference kernel: `out[i] = Σ_sq lut[sq * ksub + codes[i * m + sq]]`, in plain
/// sequential order. Slow and obviously right; every fast kernel must agree with it.
pub fn distances_scalar(lut: &[f32], ksub: usize, m: usize, codes: &[u8], out: &mut [f32]) {
    for (code, o) in codes.chunks_exact(m).zip(out.iter_mut()) {
        let mut s = 0.0f32;
        for (sq, &c) in code.iter().enumerate() {
            s += lut[sq * ksub + usize::from(c)];
        }
        *o = s;
    }
}

/// A distance kernel: `(lut, codes, out)`, for one fixed `(m, ksub)`.
pub type DistanceKernel = fn(&[f32], &[u8], &mut [f32]);

/// Which implementation [`scanner`] picked (for benches and reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelKind {
    /// The generic reference loop.
    Scalar,
    /// Unrolled scalar code specialised for `m`.
    Unrolled,
    /// AVX-512 gathers.
    Avx512Gather,
}

/// A code scanner for one `(m, ksub)` shape, with its kernel chosen once.
#[derive(Clone, Copy)]
pub struct Scanner {
    m: usize,
    ksub: usize,
    kernel: Option<DistanceKernel>,
    kind: KernelKind,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Scanner {{ m: {}, ksub: {}, kind: {:?} }}",
            self.m, self.ksub, self.kind
        )
    }
}

/// The best scanner for `m` sub-quantizers of `ksub` centroids on this CPU.
///
/// Measured (benches/adc.rs, AMD EPYC with AVX-512): the AVX-512 gather kernel is about
/// 2x slower than the unrolled scalar kernel for m = 8, 16 and 32, because a 16-lane
/// gather costs more than sixteen scalar loads there; so the unrolled kernel is picked.
/// The gather kernel stays available ([`gather_scanner`]) for CPUs with fast gathers.
pub fn scanner(m: usize, ksub: usize) -> Scanner {
    portable_scanner(m, ksub)
}

/// The AVX-512 gather scanner, when this CPU supports it and the shape is handled.
pub fn gather_scanner(m: usize, ksub: usize) -> Option<Scanner> {
    #[cfg(target_arch = "x86_64")]
    if let Some(k) = x86::pick(m, ksub) {
        return Some(Scanner {
            m,
            ksub,
            kernel: Some(k),
            kind: KernelKind::Avx512Gather,
        });
    }
    let _ = (m, ksub);
    None
}

/// A scanner that uses the portable kernels only (no SIMD intrinsics).
pub fn portable_scanner(m: usize, ksub: usize) -> Scanner {
    match kernels::unrolled(m, ksub) {
        Some(k) => Scanner {
            m,
            ksub,
            kernel: Some(k),
            kind: KernelKind::Unrolled,
        },
        None => Scanner {
            m,
            ksub,
            kernel: None,
            kind: KernelKind::Scalar,
        },
    }
}

/// The scalar reference scanner.
pub fn reference_scanner(m: usize, ksub: usize) -> Scanner {
    Scanner {
        m,
        ksub,
        kernel: None,
        kind: KernelKind::Scalar,
    }
}

impl Scanner {
    /// Which kernel this scanner runs.
    pub fn kind(&self) -> KernelKind {
        self.kind
    }

    fn check(&self, lut: &[f32], codes: &[u8], n: usize) -> Result<()> {
        if lut.len() != self.m * self.ksub {
            return Err(CodecError::DimensionMismatch {
                expected: self.m * self.ksub,
                got: lut.len(),
            });
        }
        if codes.len() != n * self.m {
            return Err(CodecError::DimensionMismatch {
                expected: n * self.m,
                got: codes.len(),
            });
        }
        if self.ksub < 256 && codes.iter().any(|&c| usize::from(c) >= self.ksub) {
            return Err(CodecError::InvalidParameter(format!(
                "a PQ code is out of range for {} centroids",
                self.ksub
            )));
        }
        Ok(())
    }

    /// Distances of all codes (`out.len()` codes) to the query of `lut`.
    pub fn distances(&self, lut: &[f32], codes: &[u8], out: &mut [f32]) -> Result<()> {
        self.check(lut, codes, out.len())?;
        self.distances_unchecked(lut, codes, out);
        Ok(())
    }

    #[inline]
    fn distances_unchecked(&self, lut: &[f32], codes: &[u8], out: &mut [f32]) {
        match self.kernel {
            Some(k) => k(lut, codes, out),
            None => distances_scalar(lut, self.ksub, self.m, codes, out),
        }
    }

    /// Scans codes (`ids.len()` of them): offers `bias + ADC distance` of each to `top`,
    /// skipping the heap for codes above its threshold.
    pub fn scan(
        &self,
        lut: &[f32],
        codes: &[u8],
        ids: &[u64],
        bias: f32,
        top: &mut TopK,
    ) -> Result<()> {
        self.check(lut, codes, ids.len())?;
        let mut buf = [0.0f32; BLOCK];
        let mut threshold = top.threshold() - bias;
        for (cblock, iblock) in codes.chunks(BLOCK * self.m).zip(ids.chunks(BLOCK)) {
            let out = &mut buf[..iblock.len()];
            self.distances_unchecked(lut, cblock, out);
            // Most blocks have no code that can enter: one branch-free pass decides.
            let block_min = out.iter().fold(f32::INFINITY, |m, &d| m.min(d));
            if block_min > threshold {
                continue;
            }
            for (&d, &id) in out.iter().zip(iblock) {
                if d <= threshold {
                    top.push(id, d + bias);
                    threshold = top.threshold() - bias;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmeans::SeededRng;

    fn random_case(m: usize, ksub: usize, n: usize, seed: u64) -> (Vec<f32>, Vec<u8>) {
        let mut rng = SeededRng::new(seed);
        let lut: Vec<f32> = (0..m * ksub)
            .map(|_| rng.next_f64() as f32 * 10.0)
            .collect();
        let codes: Vec<u8> = (0..n * m).map(|_| rng.below(ksub) as u8).collect();
        (lut, codes)
    }

    #[test]
    fn every_kernel_agrees_with_the_reference() {
        for &m in &[1usize, 4, 8, 12, 16, 20, 32, 64] {
            for &ksub in &[16usize, 256] {
                let n = 203;
                let (lut, codes) = random_case(m, ksub, n, (m * ksub) as u64);
                let mut want = vec![0.0; n];
                distances_scalar(&lut, ksub, m, &codes, &mut want);
                let gather = gather_scanner(m, ksub);
                for s in [scanner(m, ksub), portable_scanner(m, ksub)]
                    .into_iter()
                    .chain(gather)
                {
                    let mut got = vec![0.0; n];
                    s.distances(&lut, &codes, &mut got).unwrap();
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                            "{s:?}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn scan_keeps_the_true_top_k() {
        let (m, ksub, n) = (16, 256, 1000);
        let (lut, codes) = random_case(m, ksub, n, 5);
        let ids: Vec<u64> = (0..n as u64).map(|i| i * 3 + 1).collect();
        let mut want = vec![0.0; n];
        distances_scalar(&lut, ksub, m, &codes, &mut want);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| want[a].total_cmp(&want[b]));
        let mut top = TopK::new(10);
        scanner(m, ksub)
            .scan(&lut, &codes, &ids, 2.5, &mut top)
            .unwrap();
        let got = top.into_sorted();
        assert_eq!(got.len(), 10);
        for (g, &i) in got.iter().zip(&order) {
            assert_eq!(g.id, ids[i]);
            assert!((g.distance - (want[i] + 2.5)).abs() < 1e-3);
        }
    }

    #[test]
    fn a_codes_distance_does_not_depend_on_its_position() {
        // Segments split a list at arbitrary points: the same code must get bit-identical
        // distances wherever it falls (SIMD body or tail), or compaction would reorder ties.
        for &m in &[8usize, 16, 32, 64] {
            let n = 67;
            let (lut, codes) = random_case(m, 256, n, m as u64 + 99);
            let s = scanner(m, 256);
            let mut whole = vec![0.0; n];
            s.distances(&lut, &codes, &mut whole).unwrap();
            for shift in 1..17 {
                let mut part = vec![0.0; n - shift];
                s.distances(&lut, &codes[shift * m..], &mut part).unwrap();
                for (a, b) in part.iter().zip(&whole[shift..]) {
                    assert_eq!(a.to_bits(), b.to_bits(), "m = {m}, shift = {shift}");
                }
            }
        }
    }

    #[test]
    fn shape_errors() {
        let s = scanner(8, 256);
        let mut top = TopK::new(3);
        assert!(s.scan(&[0.0; 100], &[0; 8], &[1], 0.0, &mut top).is_err());
        assert!(s.scan(&[0.0; 2048], &[0; 9], &[1], 0.0, &mut top).is_err());
        let small = scanner(2, 16);
        assert!(
            small
                .scan(&[0.0; 32], &[0, 16], &[1], 0.0, &mut top)
                .is_err()
        );
    }
}
