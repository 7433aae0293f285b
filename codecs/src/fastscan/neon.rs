//! NEON fast-scan kernel: `tbl` (`vqtbl1q_u8`) scores one sub-quantizer of 16 vectors per
//! instruction; `uaddw` widens into u16 sums already in vector order. Only reached through
//! [`super::Kernel`], after NEON was detected.

use super::{BLOCK, block_bytes};
use std::arch::aarch64::*;

/// The block's 32 sums in vector order (four registers of eight u16).
///
/// # Safety
/// NEON available; `table` has `>= 16 m` bytes and `block` `block_bytes(m)` bytes.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn block_vectors(table: &[u8], m: usize, block: &[u8]) -> [uint16x8_t; 4] {
    debug_assert!(table.len() >= 16 * m && block.len() == block_bytes(m));
    let mut acc = [vdupq_n_u16(0); 4];
    let (table_ptr, block_ptr) = (table.as_ptr(), block.as_ptr());
    let nibble = vdupq_n_u8(0x0f);
    for j in 0..m {
        // SAFETY: sub-quantizer j < m: table bytes 16j..16j+16 (<= 16 m) and block bytes
        // 16j..16j+16 (<= block_bytes(m)).
        let (lut, codes) = unsafe {
            (
                vld1q_u8(table_ptr.add(16 * j)),
                vld1q_u8(block_ptr.add(16 * j)),
            )
        };
        let low = vqtbl1q_u8(lut, vandq_u8(codes, nibble));
        let high = vqtbl1q_u8(lut, vshrq_n_u8::<4>(codes));
        acc[0] = vaddw_u8(acc[0], vget_low_u8(low));
        acc[1] = vaddw_high_u8(acc[1], low);
        acc[2] = vaddw_u8(acc[2], vget_low_u8(high));
        acc[3] = vaddw_high_u8(acc[3], high);
    }
    acc
}

/// Bit `i` set iff sum `i` is `<= threshold`.
#[inline]
#[target_feature(enable = "neon")]
fn threshold_mask(sums: &[uint16x8_t; 4], threshold: u16) -> u32 {
    const WEIGHTS: [u16; 8] = [1, 2, 4, 8, 16, 32, 64, 128];
    // SAFETY: WEIGHTS has eight u16.
    let weights = unsafe { vld1q_u16(WEIGHTS.as_ptr()) };
    let limit = vdupq_n_u16(threshold);
    let mut mask = 0u32;
    for (k, &s) in sums.iter().enumerate() {
        let bits = vaddvq_u16(vandq_u16(vcleq_u16(s, limit), weights));
        mask |= u32::from(bits) << (8 * k);
    }
    mask
}

#[inline]
#[target_feature(enable = "neon")]
fn store(sums: &[uint16x8_t; 4], out: &mut [u16; BLOCK]) {
    for (k, &s) in sums.iter().enumerate() {
        // SAFETY: `out` has 32 u16; chunk k covers u16 8k..8k+8.
        unsafe { vst1q_u16(out.as_mut_ptr().add(8 * k), s) };
    }
}

super::kernel_entry_points!("neon", "NEON");
