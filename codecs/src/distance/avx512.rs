//! AVX-512 kernels (x86-64, `avx512f` + `avx512bw` + `avx512vl`). Only reachable through the dispatch
//! table, which installs them after `is_x86_feature_detected!` succeeds. Tails use masked
//! loads, so there is no scalar remainder loop.
//!
//! For f32 vectors shorter than [`SHORT`] the 256-bit kernels are faster on the machines
//! measured (Zen 4: unaligned 64-byte loads split cache lines on every load, and short
//! loops cannot amortise it), so those calls go to [`super::avx2`].

/// Below this length the f32 kernels delegate to the AVX2 ones (measured at d = 128).
const SHORT: usize = 256;

use std::arch::x86_64::*;

/// Mask selecting the first `n` (< 16) lanes.
#[inline(always)]
fn tail_mask16(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn l2_sqr(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    if n < SHORT {
        return super::avx2::l2_sqr(a, b);
    }
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (u, acc) in acc.iter_mut().enumerate() {
            // SAFETY: i + 16u + 16 <= i + 64 <= n, within both slices.
            let (x, y) = unsafe {
                (
                    _mm512_loadu_ps(pa.add(i + 16 * u)),
                    _mm512_loadu_ps(pb.add(i + 16 * u)),
                )
            };
            let d = _mm512_sub_ps(x, y);
            *acc = _mm512_fmadd_ps(d, d, *acc);
        }
        i += 64;
    }
    while i + 16 <= n {
        // SAFETY: i + 16 <= n.
        let (x, y) = unsafe { (_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i))) };
        let d = _mm512_sub_ps(x, y);
        acc[0] = _mm512_fmadd_ps(d, d, acc[0]);
        i += 16;
    }
    if i < n {
        let m = tail_mask16(n - i);
        // SAFETY: masked-off lanes are not read; lanes i..n are within both slices.
        let (x, y) = unsafe {
            (
                _mm512_maskz_loadu_ps(m, pa.add(i)),
                _mm512_maskz_loadu_ps(m, pb.add(i)),
            )
        };
        let d = _mm512_sub_ps(x, y);
        acc[1] = _mm512_fmadd_ps(d, d, acc[1]);
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(sum)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn inner_product(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    if n < SHORT {
        return super::avx2::inner_product(a, b);
    }
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (u, acc) in acc.iter_mut().enumerate() {
            // SAFETY: i + 16u + 16 <= i + 64 <= n, within both slices.
            let (x, y) = unsafe {
                (
                    _mm512_loadu_ps(pa.add(i + 16 * u)),
                    _mm512_loadu_ps(pb.add(i + 16 * u)),
                )
            };
            *acc = _mm512_fmadd_ps(x, y, *acc);
        }
        i += 64;
    }
    while i + 16 <= n {
        // SAFETY: i + 16 <= n.
        let (x, y) = unsafe { (_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i))) };
        acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
        i += 16;
    }
    if i < n {
        let m = tail_mask16(n - i);
        // SAFETY: masked-off lanes are not read; lanes i..n are within both slices.
        let (x, y) = unsafe {
            (
                _mm512_maskz_loadu_ps(m, pa.add(i)),
                _mm512_maskz_loadu_ps(m, pb.add(i)),
            )
        };
        acc[1] = _mm512_fmadd_ps(x, y, acc[1]);
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(sum)
}

/// Loads `count` (<= 16) bytes at `p` (the rest zero) and widens them to `f32` lanes.
///
/// # Safety
/// `p` must be valid for reading `count` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn load_u8_ps(p: *const u8, count: usize) -> __m512 {
    let m = tail_mask16(count.min(15)) | if count >= 16 { 0xffff } else { 0 };
    // SAFETY: only the first `count` bytes are read (masked load).
    let bytes = unsafe { _mm_maskz_loadu_epi8(m, p.cast()) };
    _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn l2_sqr_u8_f32(a: &[u8], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 2];
    let mut i = 0;
    while i + 32 <= n {
        for (u, acc) in acc.iter_mut().enumerate() {
            // SAFETY: i + 16u + 16 <= i + 32 <= n, within both slices.
            let (x, y) = unsafe {
                (
                    load_u8_ps(pa.add(i + 16 * u), 16),
                    _mm512_loadu_ps(pb.add(i + 16 * u)),
                )
            };
            let d = _mm512_sub_ps(x, y);
            *acc = _mm512_fmadd_ps(d, d, *acc);
        }
        i += 32;
    }
    while i < n {
        let count = (n - i).min(16);
        let m = tail_mask16(count.min(15)) | if count == 16 { 0xffff } else { 0 };
        // SAFETY: exactly lanes i..i+count (within both slices) are read.
        let (x, y) = unsafe {
            (
                load_u8_ps(pa.add(i), count),
                _mm512_maskz_loadu_ps(m, pb.add(i)),
            )
        };
        let d = _mm512_sub_ps(x, y);
        acc[1] = _mm512_fmadd_ps(d, d, acc[1]);
        i += count;
    }
    _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn inner_product_u8_f32(a: &[u8], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 2];
    let mut i = 0;
    while i + 32 <= n {
        for (u, acc) in acc.iter_mut().enumerate() {
            // SAFETY: i + 16u + 16 <= i + 32 <= n, within both slices.
            let (x, y) = unsafe {
                (
                    load_u8_ps(pa.add(i + 16 * u), 16),
                    _mm512_loadu_ps(pb.add(i + 16 * u)),
                )
            };
            *acc = _mm512_fmadd_ps(x, y, *acc);
        }
        i += 32;
    }
    while i < n {
        let count = (n - i).min(16);
        let m = tail_mask16(count.min(15)) | if count == 16 { 0xffff } else { 0 };
        // SAFETY: exactly lanes i..i+count (within both slices) are read.
        let (x, y) = unsafe {
            (
                load_u8_ps(pa.add(i), count),
                _mm512_maskz_loadu_ps(m, pb.add(i)),
            )
        };
        acc[1] = _mm512_fmadd_ps(x, y, acc[1]);
        i += count;
    }
    _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]))
}

/// Bytes per `i32`-lane flush: each of the 16 lanes gains at most 2 * 255^2 per 32 bytes,
/// so 2^16 bytes stay far below `i32::MAX`.
const U8_FLUSH: usize = 1 << 16;

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn l2_sqr_u8(a: &[u8], b: &[u8]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut total: u64 = 0;
    let mut i = 0;
    while i < n {
        let end = (i + U8_FLUSH).min(n);
        let mut acc = _mm512_setzero_si512();
        while i < end {
            let count = (end - i).min(32);
            let m: __mmask32 = if count == 32 {
                u32::MAX
            } else {
                (1u32 << count) - 1
            };
            // SAFETY: exactly bytes i..i+count (within both slices) are read.
            let (x, y) = unsafe {
                (
                    _mm256_maskz_loadu_epi8(m, pa.add(i).cast()),
                    _mm256_maskz_loadu_epi8(m, pb.add(i).cast()),
                )
            };
            let d = _mm512_sub_epi16(_mm512_cvtepu8_epi16(x), _mm512_cvtepu8_epi16(y));
            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(d, d));
            i += count;
        }
        total += _mm512_reduce_add_epi32(acc) as u32 as u64;
    }
    total as f32
}
