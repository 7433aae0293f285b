//! A query's table term in half precision, for batches whose queries' terms are read many
//! times from outside the core's caches (shared list passes, `index::ListPass`).
//!
//! A term `t` (e.g. `−2⟨q, y⟩` over all sub-centroids) is stored as IEEE half values of
//! `t / s`, with `s` a power of two chosen so that the largest `|t| / s` is about `2^14`:
//! no value overflows the half range, and because `s` is a power of two the relative
//! rounding error is the half format's own (at most `2^-11` of the value, plus `2^-25 s`
//! for values far below the largest). [`add_scaled`] rebuilds a table as
//! `out = a + s · f32(h)` with F16C (AVX2) or AVX-512 conversions, picked at run time, and
//! a scalar reference they are tested against; [`encode`] converts with the same rounding
//! (to nearest, ties to even) on every path.

use crate::half::{f16_to_f32, f32_to_f16};

/// Half-precision values of `values / scale`, and `scale` (a power of two).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HalfTerm {
    pub bits: Vec<u16>,
    pub scale: f32,
}

/// The power of two `s` with `max_abs / s` in `[2^13, 2^14)`, or 1 for zero or
/// non-finite input (non-finite values are then stored as such).
fn scale_for(max_abs: f32) -> f32 {
    if !max_abs.is_finite() || max_abs == 0.0 {
        return 1.0;
    }
    let e = max_abs.log2().floor() as i32 - 13;
    2f32.powi(e.clamp(-126, 127))
}

/// Stores `values` (scaled, see the module doc) into `out`, reusing its buffer.
pub fn encode(values: &[f32], out: &mut HalfTerm) {
    out.bits.resize(values.len(), 0);
    out.scale = encode_slice(values, &mut out.bits);
}

/// [`encode`] into `out` (the first `values.len()` entries); returns the scale.
pub fn encode_slice(values: &[f32], out: &mut [u16]) -> f32 {
    let max_abs = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = scale_for(max_abs);
    let inv = 1.0 / scale; // exact: a power of two
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F detected just above.
        unsafe { x86::encode_avx512(values, inv, out) };
        return scale;
    }
    for (o, &v) in out.iter_mut().zip(values) {
        *o = f32_to_f16(v * inv);
    }
    scale
}

/// `out[i] = a[i] + term.scale · f32(term.bits[i])` over the shortest of the three.
pub fn add_scaled(a: &[f32], term: &HalfTerm, out: &mut [f32]) {
    add_scaled_bits(a, &term.bits, term.scale, out);
}

/// [`add_scaled`] with the half values and their scale given apart.
pub fn add_scaled_bits(a: &[f32], bits: &[u16], scale: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F detected just above.
            unsafe { x86::add_avx512(a, bits, scale, out) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            // SAFETY: AVX2 and F16C detected just above.
            unsafe { x86::add_f16c(a, bits, scale, out) };
            return;
        }
    }
    add_scaled_bits_reference(a, bits, scale, out);
}

/// Scalar reference of [`add_scaled_bits`].
fn add_scaled_bits_reference(a: &[f32], bits: &[u16], scale: f32, out: &mut [f32]) {
    for ((o, &x), &h) in out.iter_mut().zip(a).zip(bits) {
        *o = x + scale * f16_to_f32(h);
    }
}

/// Scalar reference of [`add_scaled`].
pub fn add_scaled_reference(a: &[f32], term: &HalfTerm, out: &mut [f32]) {
    add_scaled_bits_reference(a, &term.bits, term.scale, out);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn encode_avx512(values: &[f32], inv: f32, out: &mut [u16]) {
        let n = values.len().min(out.len());
        let s = _mm512_set1_ps(inv);
        let mut i = 0;
        while i + 16 <= n {
            // SAFETY: elements `i..i + 16` lie inside both slices (`i + 16 <= n`).
            unsafe {
                let v = _mm512_mul_ps(_mm512_loadu_ps(values.as_ptr().add(i)), s);
                let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
                _mm256_storeu_si256(out.as_mut_ptr().add(i).cast(), h);
            }
            i += 16;
        }
        for (o, &v) in out[i..n].iter_mut().zip(&values[i..n]) {
            *o = super::f32_to_f16(v * inv);
        }
    }

    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn add_avx512(a: &[f32], b: &[u16], scale: f32, out: &mut [f32]) {
        let n = a.len().min(b.len()).min(out.len());
        let s = _mm512_set1_ps(scale);
        let mut i = 0;
        while i + 16 <= n {
            // SAFETY: elements `i..i + 16` lie inside all three slices (`i + 16 <= n`).
            unsafe {
                let h = _mm512_cvtph_ps(_mm256_loadu_si256(b.as_ptr().add(i).cast()));
                let x = _mm512_loadu_ps(a.as_ptr().add(i));
                _mm512_storeu_ps(out.as_mut_ptr().add(i), _mm512_fmadd_ps(h, s, x));
            }
            i += 16;
        }
        tail(a, b, scale, out, i, n);
    }

    /// # Safety
    /// AVX2 and F16C must be available.
    #[target_feature(enable = "avx2,f16c,fma")]
    pub(super) unsafe fn add_f16c(a: &[f32], b: &[u16], scale: f32, out: &mut [f32]) {
        let n = a.len().min(b.len()).min(out.len());
        let s = _mm256_set1_ps(scale);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: elements `i..i + 8` lie inside all three slices (`i + 8 <= n`).
            unsafe {
                let h = _mm256_cvtph_ps(_mm_loadu_si128(b.as_ptr().add(i).cast()));
                let x = _mm256_loadu_ps(a.as_ptr().add(i));
                _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_fmadd_ps(h, s, x));
            }
            i += 8;
        }
        tail(a, b, scale, out, i, n);
    }

    /// The elements `from..n` in scalar (the product `scale · h` is exact, so this
    /// matches the fused multiply-add of the vector loops).
    fn tail(a: &[f32], b: &[u16], scale: f32, out: &mut [f32], from: usize, n: usize) {
        for i in from..n {
            out[i] = a[i] + scale * super::f16_to_f32(b[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64, spread: f32) -> Vec<f32> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * spread
            })
            .collect()
    }

    #[test]
    fn encoding_matches_the_scalar_conversion_and_bounds_the_error() {
        for (n, spread) in [(0, 1.0), (5, 1e-3), (33, 3e5), (4096, 2e4), (100, 7.0)] {
            let v = values(n, n as u64 + 1, spread);
            let mut term = HalfTerm::default();
            encode(&v, &mut term);
            let max_abs = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            for (&x, &h) in v.iter().zip(&term.bits) {
                // Same bits as the portable conversion (round to nearest even).
                assert_eq!(h, f32_to_f16(x / term.scale), "{x}");
                let back = term.scale * f16_to_f32(h);
                assert!(
                    (back - x).abs() <= max_abs * 2f32.powi(-10),
                    "{x} -> {back}"
                );
            }
        }
    }

    #[test]
    fn scaled_sums_agree_with_the_reference() {
        for n in [0, 1, 7, 8, 15, 16, 17, 100, 4096] {
            let a = values(n, 3, 1e4);
            let mut term = HalfTerm::default();
            encode(&values(n, 4, 9e4), &mut term);
            let (mut got, mut want) = (vec![0.0; n], vec![0.0; n]);
            add_scaled(&a, &term, &mut got);
            add_scaled_reference(&a, &term, &mut want);
            assert_eq!(got, want, "n = {n}");
        }
    }

    #[test]
    fn extreme_scales_stay_finite() {
        assert_eq!(scale_for(0.0), 1.0);
        assert_eq!(scale_for(f32::INFINITY), 1.0);
        let mut term = HalfTerm::default();
        encode(&[1e30, -3e29, 0.0], &mut term);
        assert!(term.bits.iter().all(|&h| f16_to_f32(h).is_finite()));
        encode(&[1e-30, 5e-31], &mut term);
        assert!(term.bits.iter().all(|&h| f16_to_f32(h) != 0.0));
    }
}
