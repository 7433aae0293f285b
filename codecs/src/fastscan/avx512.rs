//! AVX-512BW fast-scan kernel: one 512-bit `vpshufb` scores two sub-quantizer pairs (64 code
//! bytes, four sub-quantizers x 16 vectors) against their 64 contiguous table bytes; the
//! tail (an odd pair, an odd `m`) uses zero-masked loads. Only reached through
//! [`super::Kernel`], after AVX-512F/BW/VL were detected.
//!
//! Widening to u16 works as in the AVX2 kernel (`even = all - (odd << 8)`); threshold
//! compares use `vpcmpuw` into a mask register.

use super::{BLOCK, block_bytes};
use std::arch::x86_64::*;

/// Running u16 sums of one block; lane `k` of each register holds sub-quantizer `4q + k`.
struct Accumulators {
    low_all: __m512i,
    low_odd: __m512i,
    high_all: __m512i,
    high_odd: __m512i,
}

impl Accumulators {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn new() -> Self {
        let zero = _mm512_setzero_si512();
        Accumulators {
            low_all: zero,
            low_odd: zero,
            high_all: zero,
            high_odd: zero,
        }
    }

    /// Adds the look-ups of two sub-quantizer pairs.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn add_quad(&mut self, lut: __m512i, codes: __m512i) {
        let nibble = _mm512_set1_epi8(0x0f);
        let low = _mm512_and_si512(codes, nibble);
        let high = _mm512_and_si512(_mm512_srli_epi16::<4>(codes), nibble);
        let low_terms = _mm512_shuffle_epi8(lut, low);
        let high_terms = _mm512_shuffle_epi8(lut, high);
        self.low_all = _mm512_add_epi16(self.low_all, low_terms);
        self.low_odd = _mm512_add_epi16(self.low_odd, _mm512_srli_epi16::<8>(low_terms));
        self.high_all = _mm512_add_epi16(self.high_all, high_terms);
        self.high_odd = _mm512_add_epi16(self.high_odd, _mm512_srli_epi16::<8>(high_terms));
    }

    /// The 32 sums in vector order: vectors 0-15 and 16-31.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn finish(&self) -> [__m256i; 2] {
        let fold = |x: __m512i| {
            let half =
                _mm256_add_epi16(_mm512_castsi512_si256(x), _mm512_extracti64x4_epi64::<1>(x));
            _mm_add_epi16(
                _mm256_castsi256_si128(half),
                _mm256_extracti128_si256::<1>(half),
            )
        };
        let (low_all, low_odd) = (fold(self.low_all), fold(self.low_odd));
        let (high_all, high_odd) = (fold(self.high_all), fold(self.high_odd));
        let low_even = _mm_sub_epi16(low_all, _mm_slli_epi16::<8>(low_odd));
        let high_even = _mm_sub_epi16(high_all, _mm_slli_epi16::<8>(high_odd));
        [
            _mm256_set_m128i(
                _mm_unpackhi_epi16(low_even, low_odd),
                _mm_unpacklo_epi16(low_even, low_odd),
            ),
            _mm256_set_m128i(
                _mm_unpackhi_epi16(high_even, high_odd),
                _mm_unpacklo_epi16(high_even, high_odd),
            ),
        ]
    }
}

/// Mask of the low `bytes` bytes of a 64-byte load.
#[inline(always)]
fn byte_mask(bytes: usize) -> u64 {
    if bytes >= 64 {
        u64::MAX
    } else {
        (1u64 << bytes) - 1
    }
}

/// The block's 32 sums, in vector order.
///
/// # Safety
/// AVX-512F/BW/VL available; `table` has `>= 16 m` bytes and `block` `block_bytes(m)` bytes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn block_vectors(table: &[u8], m: usize, block: &[u8]) -> [__m256i; 2] {
    debug_assert!(table.len() >= 16 * m && block.len() == block_bytes(m));
    let mut acc = Accumulators::new();
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
        acc.add_quad(lut, codes);
    }
    if !m.is_multiple_of(4) {
        let start = 64 * full_quads;
        // Masked-off bytes are neither read nor able to fault; table lanes past sub-quantizer
        // m - 1 are zero, so padding codes contribute nothing.
        let table_mask = byte_mask(16 * m - start);
        let code_mask = byte_mask(block_bytes(m) - start);
        // SAFETY: only the unmasked bytes, all inside the table and the block, are accessed.
        let (lut, codes) = unsafe {
            (
                _mm512_maskz_loadu_epi8(table_mask, table_ptr.add(start).cast()),
                _mm512_maskz_loadu_epi8(code_mask, block_ptr.add(start).cast()),
            )
        };
        acc.add_quad(lut, codes);
    }
    acc.finish()
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

super::kernel_entry_points!("avx512f,avx512bw,avx512vl", "AVX-512F/BW/VL");
