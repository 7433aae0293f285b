//! AVX-512 VBMI + VNNI fast-scan kernel. Per 64 code bytes (four sub-quantizers x 32
//! vectors): one `vpermb` transposes the codes so that the four sub-quantizers of a vector
//! sit in adjacent bytes, `vpternlogd` builds 6-bit indices `16 k + code` into the four
//! sub-quantizers' 64 table bytes, two `vpermb` look up 128 terms, and two `vpdpbusd` add
//! each group of four adjacent terms straight into a u32 per vector: 8 instructions where
//! the `vpshufb` kernel needs 11, and no u16 widening tricks. Only reached through
//! [`super::Kernel`], after AVX-512F/BW/VL/VBMI/VNNI were detected.

use super::{BLOCK, block_bytes};
use std::arch::x86_64::*;

/// `vpternlogd` truth table of `(a & b) | c`.
const AND_OR: i32 = 0xEA;

/// Byte `4 i + k` of the transposed codes takes byte `16 k + i` (sub-quantizer `k` of the
/// group, vectors `i` and `16 + i`).
const TRANSPOSE: [u8; 64] = {
    let mut idx = [0u8; 64];
    let mut b = 0;
    while b < 64 {
        idx[b] = (16 * (b % 4) + b / 4) as u8;
        b += 1;
    }
    idx
};

/// Byte `4 i + k` looks up in table lane `k`: index bits 4-5 = `k`.
const LANE_BITS: [u8; 64] = {
    let mut bits = [0u8; 64];
    let mut b = 0;
    while b < 64 {
        bits[b] = ((b % 4) << 4) as u8;
        b += 1;
    }
    bits
};

/// Mask of the low `bytes` bytes of a 64-byte load.
#[inline(always)]
fn byte_mask(bytes: usize) -> u64 {
    if bytes >= 64 {
        u64::MAX
    } else {
        (1u64 << bytes) - 1
    }
}

/// The block's 32 sums in vector order (vectors 0-15, 16-31).
///
/// # Safety
/// AVX-512F/BW/VL/VBMI/VNNI available; `table` has `>= 16 m` bytes and `block`
/// `block_bytes(m)` bytes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni")]
unsafe fn block_vectors(table: &[u8], m: usize, block: &[u8]) -> [__m256i; 2] {
    debug_assert!(table.len() >= 16 * m && block.len() == block_bytes(m));
    // SAFETY: both constants are 64 bytes.
    let (transpose, lane_bits) = unsafe {
        (
            _mm512_loadu_si512(TRANSPOSE.as_ptr().cast()),
            _mm512_loadu_si512(LANE_BITS.as_ptr().cast()),
        )
    };
    let nibble = _mm512_set1_epi8(0x0f);
    let ones = _mm512_set1_epi8(1);
    // Two accumulator pairs (even and odd quads) hide the latency of `vpdpbusd`.
    let mut sums = [_mm512_setzero_si512(); 4];
    let add = |lut: __m512i, codes: __m512i, low_sums: &mut __m512i, high_sums: &mut __m512i| {
        let codes = _mm512_permutexvar_epi8(transpose, codes);
        let low = _mm512_ternarylogic_epi32::<AND_OR>(codes, nibble, lane_bits);
        let high =
            _mm512_ternarylogic_epi32::<AND_OR>(_mm512_srli_epi16::<4>(codes), nibble, lane_bits);
        *low_sums = _mm512_dpbusd_epi32(*low_sums, _mm512_permutexvar_epi8(low, lut), ones);
        *high_sums = _mm512_dpbusd_epi32(*high_sums, _mm512_permutexvar_epi8(high, lut), ones);
    };
    let full_quads = m / 4;
    let (table_ptr, block_ptr) = (table.as_ptr(), block.as_ptr());
    for q in 0..full_quads {
        // SAFETY: quad q < m / 4 reads bytes 64q..64q+64 of the table (<= 16 m) and of the
        // block (<= 16 m <= block_bytes(m)).
        let (lut, codes) = unsafe {
            (
                _mm512_loadu_si512(table_ptr.add(64 * q).cast()),
                _mm512_loadu_si512(block_ptr.add(64 * q).cast()),
            )
        };
        let [low_even, high_even, low_odd, high_odd] = &mut sums;
        if q % 2 == 0 {
            add(lut, codes, low_even, high_even);
        } else {
            add(lut, codes, low_odd, high_odd);
        }
    }
    if !m.is_multiple_of(4) {
        let start = 64 * full_quads;
        // Masked-off bytes are neither read nor able to fault; table lanes past sub-quantizer
        // m - 1 are zero, so padding codes contribute nothing.
        // SAFETY: only the unmasked bytes, all inside the table and the block, are accessed.
        let (lut, codes) = unsafe {
            (
                _mm512_maskz_loadu_epi8(byte_mask(16 * m - start), table_ptr.add(start).cast()),
                _mm512_maskz_loadu_epi8(
                    byte_mask(block_bytes(m) - start),
                    block_ptr.add(start).cast(),
                ),
            )
        };
        let [low_even, high_even, ..] = &mut sums;
        add(lut, codes, low_even, high_even);
    }
    // Each u32 holds one vector's exact sum; keeping the low 16 bits is the u16 sum.
    let low = _mm512_add_epi32(sums[0], sums[2]);
    let high = _mm512_add_epi32(sums[1], sums[3]);
    [_mm512_cvtepi32_epi16(low), _mm512_cvtepi32_epi16(high)]
}

/// Bit `i` set iff sum `i` is `<= threshold`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn threshold_mask(sums: &[__m256i; 2], threshold: u16) -> u32 {
    let limit = _mm256_set1_epi16(threshold as i16);
    let low = _mm256_cmple_epu16_mask(sums[0], limit) as u32;
    let high = _mm256_cmple_epu16_mask(sums[1], limit) as u32;
    low | (high << 16)
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn store(sums: &[__m256i; 2], out: &mut [u16; BLOCK]) {
    // SAFETY: `out` has 32 u16 = 64 bytes, written as two 32-byte halves.
    unsafe {
        _mm256_storeu_si256(out.as_mut_ptr().cast(), sums[0]);
        _mm256_storeu_si256(out.as_mut_ptr().add(16).cast(), sums[1]);
    }
}

super::kernel_entry_points!(
    "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni",
    "AVX-512F/BW/VL/VBMI/VNNI"
);
