//! IEEE 754 half precision (binary16) for stored re-ranking vectors (`RF16`): conversions
//! (the `half` crate's: round to nearest even, subnormals, infinities, NaN) and the squared L2
//! distance between an `f32` query and a stored half-precision vector, with F16C /
//! AVX-512 kernels picked at run time and a scalar reference they are tested against.

use std::sync::OnceLock;

/// Converts `f32` to the nearest half-precision value (ties to even); values beyond the
/// half range become infinities, NaN stays NaN (the `half` crate's conversion).
pub fn f32_to_f16(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// Converts a half-precision value to `f32` (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

/// Squared L2 distance between `q` and the half-precision vector `v` (same length),
/// scalar reference.
pub fn l2_sqr_f16_reference(q: &[f32], v: &[u16]) -> f32 {
    q.iter()
        .zip(v)
        .map(|(&a, &b)| {
            let d = a - f16_to_f32(b);
            d * d
        })
        .sum()
}

type Kernel = fn(&[f32], &[u16]) -> f32;

fn pick() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return x86::l2_avx512_entry;
        }
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            return x86::l2_f16c_entry;
        }
    }
    l2_sqr_f16_reference
}

/// Squared L2 distance between `q` and the half-precision vector `v`, on the fastest
/// kernel this CPU has. Only the common prefix of the two slices is used.
pub fn l2_sqr_f16(q: &[f32], v: &[u16]) -> f32 {
    static KERNEL: OnceLock<Kernel> = OnceLock::new();
    let n = q.len().min(v.len());
    KERNEL.get_or_init(pick)(&q[..n], &v[..n])
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    pub fn l2_avx512_entry(q: &[f32], v: &[u16]) -> f32 {
        // SAFETY: only installed by `pick` after detecting AVX-512F.
        unsafe { l2_avx512(q, v) }
    }

    pub fn l2_f16c_entry(q: &[f32], v: &[u16]) -> f32 {
        // SAFETY: only installed by `pick` after detecting AVX2, FMA and F16C.
        unsafe { l2_f16c(q, v) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn l2_avx512(q: &[f32], v: &[u16]) -> f32 {
        let n = q.len().min(v.len());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut i = 0;
        // SAFETY: every load reads 16 (or 32) elements at offset `i` with `i + 16 <= n`
        // (resp. `i + 32 <= n`), inside both slices; unaligned loads are used.
        unsafe {
            while i + 32 <= n {
                let h0 = _mm256_loadu_si256(v.as_ptr().add(i) as *const __m256i);
                let h1 = _mm256_loadu_si256(v.as_ptr().add(i + 16) as *const __m256i);
                let d0 = _mm512_sub_ps(_mm512_loadu_ps(q.as_ptr().add(i)), _mm512_cvtph_ps(h0));
                let d1 =
                    _mm512_sub_ps(_mm512_loadu_ps(q.as_ptr().add(i + 16)), _mm512_cvtph_ps(h1));
                acc0 = _mm512_fmadd_ps(d0, d0, acc0);
                acc1 = _mm512_fmadd_ps(d1, d1, acc1);
                i += 32;
            }
            while i + 16 <= n {
                let h = _mm256_loadu_si256(v.as_ptr().add(i) as *const __m256i);
                let d = _mm512_sub_ps(_mm512_loadu_ps(q.as_ptr().add(i)), _mm512_cvtph_ps(h));
                acc0 = _mm512_fmadd_ps(d, d, acc0);
                i += 16;
            }
        }
        let mut sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
        sum += super::l2_sqr_f16_reference(&q[i..n], &v[i..n]);
        sum
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn l2_f16c(q: &[f32], v: &[u16]) -> f32 {
        let n = q.len().min(v.len());
        let mut acc = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY: every load reads 8 elements at offset `i` with `i + 8 <= n`, inside
        // both slices; unaligned loads are used.
        unsafe {
            while i + 8 <= n {
                let h = _mm_loadu_si128(v.as_ptr().add(i) as *const __m128i);
                let d = _mm256_sub_ps(_mm256_loadu_ps(q.as_ptr().add(i)), _mm256_cvtph_ps(h));
                acc = _mm256_fmadd_ps(d, d, acc);
                i += 8;
            }
        }
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds exactly 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
        lanes.iter().sum::<f32>() + super::l2_sqr_f16_reference(&q[i..n], &v[i..n])
    }

    #[cfg(test)]
    pub fn kernels() -> Vec<(&'static str, super::Kernel)> {
        let mut out: Vec<(&'static str, super::Kernel)> = Vec::new();
        if std::arch::is_x86_feature_detected!("avx512f") {
            out.push(("avx512", l2_avx512_entry));
        }
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            out.push(("f16c", l2_f16c_entry));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_half_round_trips() {
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            if f.is_nan() {
                assert!(f16_to_f32(f32_to_f16(f)).is_nan());
            } else {
                assert_eq!(f32_to_f16(f), h, "{h:#06x} -> {f}");
            }
        }
    }

    #[test]
    fn conversion_rounds_to_nearest_even() {
        assert_eq!(f32_to_f16(1.0), 0x3c00);
        assert_eq!(f32_to_f16(-2.0), 0xc000);
        assert_eq!(f32_to_f16(65504.0), 0x7bff);
        assert_eq!(f32_to_f16(65520.0), 0x7c00); // rounds up to infinity
        assert_eq!(f32_to_f16(1e-8), 0); // underflows to zero
        assert_eq!(f32_to_f16(f32::INFINITY), 0x7c00);
        // 1 + 2^-11 is exactly between 1 and the next half: ties to even (1.0).
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00);
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        // Every f32 goes to one of its two neighbouring halves, the nearer one.
        let mut x = 1.234e-7f32;
        while x < 65504.0 {
            let h = f32_to_f16(x);
            let err = (f16_to_f32(h) - x).abs();
            for n in [h.wrapping_sub(1), h.wrapping_add(1)] {
                let other = f16_to_f32(n);
                if other.is_finite() {
                    assert!(err <= (other - x).abs(), "{x}");
                }
            }
            x *= 1.0137;
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn kernels_agree_with_the_reference() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) * 200.0 - 100.0
        };
        for n in [0, 1, 7, 8, 15, 16, 31, 32, 33, 100, 128, 131] {
            let q: Vec<f32> = (0..n).map(|_| next()).collect();
            let v: Vec<u16> = (0..n).map(|_| f32_to_f16(next())).collect();
            let want = l2_sqr_f16_reference(&q, &v);
            for (name, k) in x86::kernels() {
                let got = k(&q, &v);
                assert!(
                    (got - want).abs() <= 1e-4 * want.max(1.0),
                    "{name} n={n}: {got} vs {want}"
                );
            }
            assert!((l2_sqr_f16(&q, &v) - want).abs() <= 1e-4 * want.max(1.0));
        }
    }
}
