//! AVX2 fast-scan kernel: one `vpshufb` scores one sub-quantizer pair (32 code bytes, two
//! sub-quantizers x 16 vectors) against the pair's 32 contiguous table bytes. Only reached
//! through [`super::Kernel`], after `is_x86_feature_detected!("avx2")`.
//!
//! Sums are widened to u16 without unpacking: each shuffle result is added once as sixteen
//! u16 lanes (even byte + 256 x odd byte, mod 2^16) and once shifted right by 8 (odd bytes
//! alone); at the end `even = all - (odd << 8)`, exact because every true sum fits in u16.

use super::{BLOCK, block_bytes};
use std::arch::x86_64::*;

/// Running u16 sums of one block: `all` / `odd` for the low nibbles (vectors 0-15) and the
/// high nibbles (vectors 16-31), each 256-bit register holding sub-quantizer `2p` in its low
/// lane and `2p + 1` in its high lane.
struct Accumulators {
    low_all: __m256i,
    low_odd: __m256i,
    high_all: __m256i,
    high_odd: __m256i,
}

impl Accumulators {
    #[inline]
    #[target_feature(enable = "avx2")]
    fn new() -> Self {
        let zero = _mm256_setzero_si256();
        Accumulators {
            low_all: zero,
            low_odd: zero,
            high_all: zero,
            high_odd: zero,
        }
    }

    /// Adds the look-ups of one sub-quantizer pair.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn add_pair(&mut self, lut: __m256i, codes: __m256i) {
        let nibble = _mm256_set1_epi8(0x0f);
        let low = _mm256_and_si256(codes, nibble);
        let high = _mm256_and_si256(_mm256_srli_epi16::<4>(codes), nibble);
        let low_terms = _mm256_shuffle_epi8(lut, low);
        let high_terms = _mm256_shuffle_epi8(lut, high);
        self.low_all = _mm256_add_epi16(self.low_all, low_terms);
        self.low_odd = _mm256_add_epi16(self.low_odd, _mm256_srli_epi16::<8>(low_terms));
        self.high_all = _mm256_add_epi16(self.high_all, high_terms);
        self.high_odd = _mm256_add_epi16(self.high_odd, _mm256_srli_epi16::<8>(high_terms));
    }

    /// The 32 sums in vector order, as four registers of eight u16.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn finish(&self) -> [__m128i; 4] {
        let fold =
            |x: __m256i| _mm_add_epi16(_mm256_castsi256_si128(x), _mm256_extracti128_si256::<1>(x));
        let (low_all, low_odd) = (fold(self.low_all), fold(self.low_odd));
        let (high_all, high_odd) = (fold(self.high_all), fold(self.high_odd));
        let low_even = _mm_sub_epi16(low_all, _mm_slli_epi16::<8>(low_odd));
        let high_even = _mm_sub_epi16(high_all, _mm_slli_epi16::<8>(high_odd));
        [
            _mm_unpacklo_epi16(low_even, low_odd),
            _mm_unpackhi_epi16(low_even, low_odd),
            _mm_unpacklo_epi16(high_even, high_odd),
            _mm_unpackhi_epi16(high_even, high_odd),
        ]
    }
}

/// The block's 32 sums, in vector order.
///
/// # Safety
/// AVX2 available; `table` has `>= 16 m` bytes and `block` `block_bytes(m)` bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn block_vectors(table: &[u8], m: usize, block: &[u8]) -> [__m128i; 4] {
    debug_assert!(table.len() >= 16 * m && block.len() == block_bytes(m));
    let mut acc = Accumulators::new();
    let (table, block) = (table.as_ptr(), block.as_ptr());
    for p in 0..m / 2 {
        // SAFETY: pair p < m / 2 reads bytes 32p..32p+32 of the table (< 16 m) and of the
        // block (< block_bytes(m)).
        let (lut, codes) = unsafe {
            (
                _mm256_loadu_si256(table.add(32 * p).cast()),
                _mm256_loadu_si256(block.add(32 * p).cast()),
            )
        };
        acc.add_pair(lut, codes);
    }
    if m % 2 == 1 {
        let p = m / 2;
        // SAFETY: the last table row is bytes 16(m-1)..16m = 32p..32p+16; the padded pair
        // is the block's last 32 bytes. The padding sub-quantizer's table lane is zero.
        let (lut, codes) = unsafe {
            (
                _mm256_zextsi128_si256(_mm_loadu_si128(table.add(32 * p).cast())),
                _mm256_loadu_si256(block.add(32 * p).cast()),
            )
        };
        acc.add_pair(lut, codes);
    }
    acc.finish()
}

/// Bit `i` set iff sum `i` is `<= threshold`.
#[inline]
#[target_feature(enable = "avx2")]
fn threshold_mask(sums: &[__m128i; 4], threshold: u16) -> u32 {
    let limit = _mm_set1_epi16(threshold as i16);
    let le = |s: __m128i| _mm_cmpeq_epi16(_mm_min_epu16(s, limit), s);
    let low = _mm_movemask_epi8(_mm_packs_epi16(le(sums[0]), le(sums[1]))) as u32;
    let high = _mm_movemask_epi8(_mm_packs_epi16(le(sums[2]), le(sums[3]))) as u32;
    low | (high << 16)
}

#[inline]
#[target_feature(enable = "avx2")]
fn store(sums: &[__m128i; 4], out: &mut [u16; BLOCK]) {
    for (k, s) in sums.iter().enumerate() {
        // SAFETY: `out` has 32 u16; chunk k covers u16 8k..8k+8 (16 bytes).
        unsafe { _mm_storeu_si128(out.as_mut_ptr().add(8 * k).cast(), *s) };
    }
}

super::kernel_entry_points!("avx2", "AVX2");
