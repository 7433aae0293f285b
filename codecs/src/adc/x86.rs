//! x86-64 ADC kernels: AVX-512 gathers, sixteen codes at a time. For each group of four
//! sub-quantizers one 32-bit gather fetches the four code bytes of all sixteen codes, and
//! four table gathers (one per byte) add the look-ups into sixteen running sums.
//! Picked only when the CPU reports AVX-512F at run time.
//!
//! The AVX-512 intrinsics are stable since Rust 1.89 (the toolchain here is 1.95); the
//! workspace `rust-version` still says 1.85, hence the lint exception below.
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use super::DistanceKernel;

/// The AVX-512 kernel for `(m, ksub)`, if this CPU has AVX-512F and the shape is handled.
pub(super) fn pick(m: usize, ksub: usize) -> Option<DistanceKernel> {
    if ksub != 256 || !std::arch::is_x86_feature_detected!("avx512f") {
        return None;
    }
    Some(match m {
        8 => gather_entry::<8>,
        16 => gather_entry::<16>,
        32 => gather_entry::<32>,
        64 => gather_entry::<64>,
        _ => return None,
    })
}

/// Safe entry point stored in the dispatch table.
fn gather_entry<const M: usize>(lut: &[f32], codes: &[u8], out: &mut [f32]) {
    let n = out.len();
    if lut.len() < M * 256 || codes.len() < n * M {
        // Shapes are validated by the caller; never read out of bounds regardless.
        super::distances_scalar(lut, 256, M, codes, out);
        return;
    }
    // SAFETY: `pick` hands this function out only after `is_x86_feature_detected!`
    // confirmed AVX-512F, and the lengths were checked just above.
    unsafe { gather_avx512::<M>(lut, codes, out) }
}

#[target_feature(enable = "avx512f")]
fn gather_avx512<const M: usize>(lut: &[f32], codes: &[u8], out: &mut [f32]) {
    let n = out.len();
    // SAFETY: the caller checked `lut.len() >= M * 256` and `codes.len() >= n * M`; the
    // comments on each read below show why every access stays inside those bounds.
    unsafe { gather_blocks::<M>(lut, codes, out) };
    let full = n / 16 * 16;
    super::distances_scalar(lut, 256, M, &codes[full * M..n * M], &mut out[full..]);
}

/// The 16-code blocks of [`gather_avx512`]; leaves the tail (`n % 16` codes) untouched.
#[target_feature(enable = "avx512f")]
unsafe fn gather_blocks<const M: usize>(lut: &[f32], codes: &[u8], out: &mut [f32]) {
    // SAFETY: see the read comments; the caller guarantees the slice lengths.
    unsafe {
        let n = out.len();
        let full = n / 16 * 16;
        let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let code_offsets = _mm512_mullo_epi32(lane, _mm512_set1_epi32(M as i32));
        let byte_mask = _mm512_set1_epi32(0xff);
        let mut i = 0;
        while i < full {
            let block = codes.as_ptr().add(i * M);
            let mut acc0 = _mm512_setzero_ps();
            let mut acc1 = _mm512_setzero_ps();
            let mut g = 0;
            while g < M {
                // SAFETY (reads): code j of this block spans bytes j*M .. j*M+M, and g+3 < M,
                // so every 4-byte read at j*M + g stays inside `codes` (i + 16 <= n).
                let offs = _mm512_add_epi32(code_offsets, _mm512_set1_epi32(g as i32));
                let bytes = _mm512_i32gather_epi32::<1>(offs, block.cast());
                let t = lut.as_ptr().add(g * 256);
                // Byte b of each lane indexes table row g + b (256 floats further each).
                let i0 = _mm512_and_si512(bytes, byte_mask);
                let i1 = _mm512_add_epi32(
                    _mm512_and_si512(_mm512_srli_epi32::<8>(bytes), byte_mask),
                    _mm512_set1_epi32(256),
                );
                let i2 = _mm512_add_epi32(
                    _mm512_and_si512(_mm512_srli_epi32::<16>(bytes), byte_mask),
                    _mm512_set1_epi32(512),
                );
                let i3 = _mm512_add_epi32(_mm512_srli_epi32::<24>(bytes), _mm512_set1_epi32(768));
                // SAFETY (reads): every index is < 1024 and rows g..g+4 lie inside `lut`.
                acc0 = _mm512_add_ps(acc0, _mm512_i32gather_ps::<4>(i0, t));
                acc1 = _mm512_add_ps(acc1, _mm512_i32gather_ps::<4>(i1, t));
                acc0 = _mm512_add_ps(acc0, _mm512_i32gather_ps::<4>(i2, t));
                acc1 = _mm512_add_ps(acc1, _mm512_i32gather_ps::<4>(i3, t));
                g += 4;
            }
            _mm512_storeu_ps(out.as_mut_ptr().add(i), _mm512_add_ps(acc0, acc1));
            i += 16;
        }
    }
}
