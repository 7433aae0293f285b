//! The AVX-512 VBMI scan: table quantization with AVX-512F/BW and the byte-table block
//! filter (`vpermi2b` look-ups, `u16` sums, one compare per 32 vectors), followed by the
//! exact float re-check of the survivors (see the parent module).

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

use super::quantize::{KSUB, MAX_QUANTIZED_M, Plan, Quantizer};
use super::{BLOCK, exact_block, offer_lanes, scan_exact_blocks, valid_lanes};
use crate::topk::TopK;

/// True when this CPU runs the kernel (AVX-512F, BW and VBMI).
pub(super) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vbmi")
}

/// Fewer vectors than this left to scan once the top-k is full are scanned exactly: for
/// m = 16 the quantization costs about 0.35 us (the fixed cost measured by
/// `benches/adc_blocked.rs`), as much as scanning about 90 vectors with float look-ups.
const MIN_FILTERED: usize = 128;

/// Quantized tables of up to this many sub-quantizers live on the stack.
const STACK_M: usize = 64;

/// [`super::scan`] with shapes already validated (`packed.len() == packed_len(n, m)`,
/// `lut.len() == m * 256`, `ids.len() == n`); filters only where [`available`] is true.
pub(super) fn scan(
    lut: &[f32],
    m: usize,
    packed: &[u8],
    n: usize,
    ids: &[u64],
    bias: f32,
    top: &mut TopK,
) {
    let mut threshold = top.threshold() - bias;
    let mut blocks = packed.chunks_exact(BLOCK * m).zip(ids.chunks(BLOCK));
    let mut first_block = 0;
    // Until the top-k is full every vector is offered: nothing to filter yet, and no
    // table to quantize if the whole call ends before.
    while threshold == f32::INFINITY {
        let Some((block, block_ids)) = blocks.next() else {
            return;
        };
        exact_block(lut, block, block_ids, bias, &mut threshold, top);
        first_block += 1;
    }
    let remaining = n.saturating_sub(first_block * BLOCK);
    if remaining == 0 {
        return;
    }
    // Too few vectors left for the quantization to pay, or no kernel (the caller checks
    // `available()` too; checking here keeps this safe function sound on its own).
    if m > MAX_QUANTIZED_M || remaining < MIN_FILTERED || !available() {
        scan_exact_blocks(lut, m, packed, ids, bias, top, first_block);
        return;
    }
    let mut stack = [MaybeUninit::<u8>::uninit(); STACK_M * KSUB];
    let mut heap;
    let table: &mut [MaybeUninit<u8>] = if m <= STACK_M {
        &mut stack[..m * KSUB]
    } else {
        heap = vec![MaybeUninit::<u8>::uninit(); m * KSUB];
        &mut heap
    };
    // SAFETY: `available()` confirmed AVX-512F/BW at run time; `lut` has `m * 256`
    // entries and `table` room for `m * 256` bytes.
    let plan = unsafe { quantize_avx512(lut, m, threshold, table.as_mut_ptr().cast()) };
    let quantizer = match plan {
        Plan::Filter(quantizer) => quantizer,
        Plan::NothingPasses => return,
        Plan::Exact => {
            scan_exact_blocks(lut, m, packed, ids, bias, top, first_block);
            return;
        }
    };
    // SAFETY: `quantize_avx512` returned `Plan::Filter`, so it wrote all `m * 256` bytes.
    let table: &[u8] = unsafe { std::slice::from_raw_parts(table.as_ptr().cast(), m * KSUB) };
    let pass = Pass {
        lut,
        m,
        table,
        quantizer,
        bias,
    };
    // SAFETY: `available()` confirmed AVX-512F/BW/VBMI; `table` holds `m * 256` bytes and
    // `packed` whole blocks of `64 * m` bytes.
    unsafe {
        match m {
            8 => filter_blocks::<8>(&pass, packed, ids, top, first_block),
            16 => filter_blocks::<16>(&pass, packed, ids, top, first_block),
            32 => filter_blocks::<32>(&pass, packed, ids, top, first_block),
            _ => filter_blocks::<0>(&pass, packed, ids, top, first_block),
        }
    }
}

/// What one filtered pass over the blocks needs besides the codes.
struct Pass<'a> {
    lut: &'a [f32],
    m: usize,
    /// The quantized table, `m * 256` bytes.
    table: &'a [u8],
    quantizer: Quantizer,
    bias: f32,
}

/// Filters blocks `first_block..` with the byte table and re-checks survivors exactly.
/// `M` is `pass.m` when non-zero (a compile-time count unrolls the sub-quantizer loop).
///
/// # Safety
/// The CPU must support AVX-512F, BW and VBMI; `pass.table.len() == pass.m * 256` and
/// `packed` must consist of whole `64 * pass.m`-byte blocks.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn filter_blocks<const M: usize>(
    pass: &Pass<'_>,
    packed: &[u8],
    ids: &[u64],
    top: &mut TopK,
    first_block: usize,
) {
    let m = if M == 0 { pass.m } else { M };
    let mut threshold = top.threshold() - pass.bias;
    let mut limit = pass.quantizer.limit(threshold);
    let blocks = packed.chunks_exact(BLOCK * m).zip(ids.chunks(BLOCK));
    for (block, block_ids) in blocks.skip(first_block) {
        // The threshold never rises, so once nothing can pass nothing ever will.
        let Some(lim) = limit else {
            return;
        };
        // SAFETY: the caller guarantees the CPU features and the table size; `block` is
        // one whole block of `64 * m` bytes.
        let below = unsafe { block_mask(pass.table.as_ptr(), m, block.as_ptr(), lim) };
        let lanes = below & valid_lanes(block_ids.len());
        if lanes != 0
            && offer_lanes(
                pass.lut,
                block,
                block_ids,
                lanes,
                pass.bias,
                &mut threshold,
                top,
            )
        {
            limit = pass.quantizer.limit(threshold);
        }
    }
}

/// Bit set of the lanes of one block whose byte sum `Σ_j table[j * 256 + code_j]` is at
/// most `limit`.
///
/// # Safety
/// The CPU must support AVX-512F, BW and VBMI (the function is only inlined into callers
/// that enable them); `table` must point to `m * 256` readable bytes and `block` to
/// `64 * m` (with `m <= 257`, so that the `u16` sums cannot overflow).
#[inline(always)]
unsafe fn block_mask(table: *const u8, m: usize, block: *const u8, limit: u16) -> u64 {
    // SAFETY: every read is inside the ranges the caller guarantees (row `j` of the block
    // is bytes `64 j .. 64 j + 64`, row `j` of the table bytes `256 j .. 256 j + 256`).
    unsafe {
        // `all` sums each whole 16-bit lane (even byte + 256 * odd byte, wrapping); `odd`
        // sums the odd bytes alone. The even sums are recovered at the end.
        let mut all = _mm512_setzero_si512();
        let mut odd = _mm512_setzero_si512();
        for j in 0..m {
            let codes = _mm512_loadu_si512(block.add(j * BLOCK).cast());
            let t = table.add(j * KSUB);
            let t0 = _mm512_loadu_si512(t.cast());
            let t1 = _mm512_loadu_si512(t.add(64).cast());
            let t2 = _mm512_loadu_si512(t.add(128).cast());
            let t3 = _mm512_loadu_si512(t.add(192).cast());
            // Bits 0..7 of each code pick one of 128 bytes; bit 7 picks the half.
            let low = _mm512_permutex2var_epi8(t0, codes, t1);
            let high = _mm512_permutex2var_epi8(t2, codes, t3);
            let entries = _mm512_mask_blend_epi8(_mm512_movepi8_mask(codes), low, high);
            all = _mm512_add_epi16(all, entries);
            odd = _mm512_add_epi16(odd, _mm512_srli_epi16::<8>(entries));
        }
        // even = all - 256 * odd (mod 2^16), exact because the true even sum is < 2^16.
        let even = _mm512_sub_epi16(all, _mm512_slli_epi16::<8>(odd));
        let limit = _mm512_set1_epi16(limit as i16);
        let first_half = _mm512_cmple_epu16_mask(even, limit);
        let second_half = _mm512_cmple_epu16_mask(odd, limit);
        u64::from(first_half) | (u64::from(second_half) << 32)
    }
}

/// Block sums of one block computed by [`block_mask`]'s instructions, for tests: the
/// lanes whose sum is at most `limit`.
///
/// # Safety
/// As [`block_mask`].
#[cfg(test)]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub(super) unsafe fn block_mask_for_tests(table: &[u8], m: usize, block: &[u8], limit: u16) -> u64 {
    assert!(table.len() == m * KSUB && block.len() == m * BLOCK && m <= MAX_QUANTIZED_M);
    // SAFETY: lengths asserted above; features guaranteed by the caller.
    unsafe { block_mask(table.as_ptr(), m, block.as_ptr(), limit) }
}

/// The plan for `lut` (`m * 256` floats) against threshold `t`, with exactly the
/// arithmetic of [`super::quantize::quantize_scalar`]; when it is [`Plan::Filter`],
/// `table` (`m * 256` bytes) holds the quantized table.
///
/// # Safety
/// The CPU must support AVX-512F and BW; `lut.len() >= m * 256` and `table` must be valid
/// for `m * 256` byte writes.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn quantize_avx512(lut: &[f32], m: usize, t: f32, table: *mut u8) -> Plan {
    if m == 0 || m > MAX_QUANTIZED_M || lut.len() < m * KSUB {
        return Plan::Exact;
    }
    let mut mins = [0.0f32; MAX_QUANTIZED_M];
    // SAFETY: row `j < m` is floats `256 j .. 256 j + 256` of `lut` (length checked); the
    // table writes are bytes `256 j .. 256 j + 256` of `table` (caller's guarantee).
    unsafe {
        for (j, min_j) in mins.iter_mut().enumerate().take(m) {
            let row = lut.as_ptr().add(j * KSUB);
            // min returns its second operand when either is NaN: with the running minimum
            // second and seeded with infinity, NaN entries are skipped, as in the scalar
            // fold. Four running minima keep the dependency chains short.
            let mut lo = [_mm512_set1_ps(f32::INFINITY); 4];
            for i in 0..KSUB / 64 {
                for (a, lo_a) in lo.iter_mut().enumerate() {
                    let x = _mm512_loadu_ps(row.add(64 * i + 16 * a));
                    *lo_a = _mm512_min_ps(x, *lo_a);
                }
            }
            let lo01 = _mm512_min_ps(lo[0], lo[1]);
            let lo23 = _mm512_min_ps(lo[2], lo[3]);
            *min_j = _mm512_reduce_min_ps(_mm512_min_ps(lo01, lo23));
        }
        let quantizer = match Quantizer::plan(&mins[..m], t) {
            Plan::Filter(quantizer) => quantizer,
            other => return other,
        };
        let scale = _mm512_set1_ps(quantizer.scale);
        // packus works per 128-bit lane; this puts the 32-bit groups back in entry order.
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        for (j, &min_j) in mins.iter().enumerate().take(m) {
            let row = lut.as_ptr().add(j * KSUB);
            let out = table.add(j * KSUB);
            let neg_offset = _mm512_set1_ps(-quantizer.offset(min_j));
            for g in 0..KSUB / 64 {
                let base = row.add(64 * g);
                let mut q = [_mm512_setzero_si512(); 4];
                for (i, qi) in q.iter_mut().enumerate() {
                    let x = _mm512_loadu_ps(base.add(16 * i));
                    *qi = _mm512_cvttps_epi32(_mm512_fmadd_ps(x, scale, neg_offset));
                }
                // Signed saturation to i16, then unsigned to u8: clamps to 0..=255, with
                // i32::MIN (NaN, too large) to 0. (Unsigned 16-bit saturation would turn
                // large values into words that the byte pack reads as negative.)
                let words01 = _mm512_packs_epi32(q[0], q[1]);
                let words23 = _mm512_packs_epi32(q[2], q[3]);
                let bytes = _mm512_packus_epi16(words01, words23);
                _mm512_storeu_si512(
                    out.add(64 * g).cast(),
                    _mm512_permutexvar_epi32(order, bytes),
                );
            }
        }
        Plan::Filter(quantizer)
    }
}
