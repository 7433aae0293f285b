//! Portable fast-scan kernel: the 32 sums of a block pair by pair, then a scalar threshold
//! mask. Used where no SIMD path exists and as a second opinion in tests.

use super::{BLOCK, block_bytes, report_block, valid_rows};

/// The 32 u16 sums (mod 2^16) of one block. `table` has at least `16 m` bytes and `block`
/// `block_bytes(m)` bytes (checked by the caller); table bytes past `16 m` are ignored.
pub(super) fn block_sums(table: &[u8], m: usize, block: &[u8], out: &mut [u16; BLOCK]) {
    out.fill(0);
    for (j, half_pair) in block.chunks_exact(16).enumerate().take(m) {
        let entries = &table[16 * j..16 * j + 16];
        for (i, &byte) in half_pair.iter().enumerate() {
            let low = entries[usize::from(byte & 0x0f)];
            let high = entries[usize::from(byte >> 4)];
            out[i] = out[i].wrapping_add(u16::from(low));
            out[i + 16] = out[i + 16].wrapping_add(u16::from(high));
        }
    }
}

/// [`super::scan`] on the portable kernel (arguments already validated).
pub(super) fn scan(
    table: &[u8],
    m: usize,
    packed: &[u8],
    n: usize,
    threshold: u16,
    hit: &mut impl FnMut(usize, u16) -> u16,
) {
    let mut threshold = threshold;
    let mut sums = [0u16; BLOCK];
    for (b, block) in packed.chunks_exact(block_bytes(m)).enumerate() {
        block_sums(table, m, block, &mut sums);
        let valid = valid_rows(n, b);
        let mut mask = 0u32;
        for (i, &s) in sums.iter().enumerate() {
            mask |= u32::from(s <= threshold) << i;
        }
        mask &= valid;
        if mask != 0 {
            report_block(mask, valid, &sums, b * BLOCK, &mut threshold, hit);
        }
    }
}
