//! Blocked 8-bit PQ codes and their exact ADC scan with a byte-table pre-filter.
//!
//! **Layout.** Codes of `m` bytes (8-bit sub-codes, 256 centroids per sub-quantizer) are
//! stored in blocks of [`BLOCK`] = 64 vectors: block `b` holds `64 * m` bytes, one 64-byte
//! row per sub-quantizer `j`, and inside row `j` the byte at position [`lane_position`]`(l)`
//! is sub-code `j` of vector `64 * b + l`. Positions interleave the two halves of the block
//! (vector `l < 32` at `2l`, vector `32 + l` at `2l + 1`) so that the SIMD kernel's even and
//! odd 16-bit accumulators hold vectors `0..32` and `32..64` in order. The last block is
//! padded with zero codes; padding is never scanned.
//!
//! **Scan.** [`scan`] returns exactly what the row-major float scan
//! (`adc::reference_scanner(m, 256).scan`) returns: the same pushes into the [`TopK`], with
//! the same float distances, summed in the same order as [`super::distances_scalar`]. While
//! the top-k is not full every vector is pushed, so blocks are scored with float look-ups.
//! Once it has a finite threshold (and at least 128 vectors remain), the float table is
//! quantized to bytes against that threshold (`quantize.rs`), and with AVX-512 VBMI each
//! block's 64 byte entries per sub-quantizer come from two `vpermi2b` look-ups and a
//! blend, accumulated in `u16`. Those sums are lower bounds of the float distances (within
//! a proven slack), so comparing them with the threshold converted to bytes only drops
//! vectors that cannot enter; every surviving vector gets its exact float distance before
//! it is offered, and the byte threshold follows the top-k as it tightens. Without VBMI,
//! or for tables that cannot be quantized safely (a `-inf` entry, minima near `f32::MAX`),
//! the scan does float look-ups on the blocked layout with a per-block minimum test.
//!
//! **Measured** (`benches/adc_blocked.rs`, AMD EPYC with AVX-512 VBMI, busy machine,
//! interleaved thread-CPU-time medians, m = 16, k = 100, against `adc::scanner(16, 256)`):
//! a 250-code list into a full top-100 (the 16th list of an nprobe = 16 search) 1.7-1.8x
//! faster, of which the table quantization and block filter take 0.41-0.44 us; an empty
//! top-100 (every code until the 100th is pushed either way) 0.95x; 1M codes 3.3-6.6x; a
//! real IVF1024,PQ16 search on debian-sift (nprobe 16, ~4,100 codes and ~290 top-k pushes
//! per query, results identical to the reference) 1.2-1.3x per query, where the pushes and
//! the first (unfiltered) list dominate.

mod quantize;
#[cfg(target_arch = "x86_64")]
mod vbmi;

#[cfg(test)]
mod tests;

use crate::error::{CodecError, Result};
use crate::topk::TopK;
use quantize::KSUB;

/// Vectors per block: one 512-bit register of bytes per sub-quantizer.
pub const BLOCK: usize = 64;

/// Bytes that `n` codes of `m` sub-quantizers take when packed: whole blocks.
pub fn packed_len(n: usize, m: usize) -> usize {
    n.div_ceil(BLOCK).saturating_mul(BLOCK).saturating_mul(m)
}

/// Byte position of vector `lane` (`< 64`) inside each 64-byte row of its block.
#[inline]
pub fn lane_position(lane: usize) -> usize {
    if lane < BLOCK / 2 {
        2 * lane
    } else {
        2 * (lane - BLOCK / 2) + 1
    }
}

fn check_m(m: usize) -> Result<()> {
    if m == 0 {
        return Err(CodecError::InvalidParameter(
            "blocked PQ codes need at least one sub-quantizer (m = 0)".into(),
        ));
    }
    Ok(())
}

fn check_packed(packed: &[u8], n: usize, m: usize) -> Result<()> {
    check_m(m)?;
    let expected = packed_len(n, m);
    if packed.len() != expected {
        return Err(CodecError::DimensionMismatch {
            expected,
            got: packed.len(),
        });
    }
    Ok(())
}

/// Appends the blocked form of `n` row-major codes (`codes.len() == n * m`) to `out`.
pub fn pack_into(codes: &[u8], n: usize, m: usize, out: &mut Vec<u8>) -> Result<()> {
    check_m(m)?;
    let expected = n.checked_mul(m).ok_or_else(|| {
        CodecError::InvalidParameter(format!("{n} codes of {m} bytes overflow memory"))
    })?;
    if codes.len() != expected {
        return Err(CodecError::DimensionMismatch {
            expected,
            got: codes.len(),
        });
    }
    out.reserve(packed_len(n, m));
    for chunk in codes.chunks(BLOCK * m) {
        let start = out.len();
        out.resize(start + BLOCK * m, 0);
        let block = &mut out[start..];
        for (lane, code) in chunk.chunks_exact(m).enumerate() {
            let pos = lane_position(lane);
            for (row, &c) in block.chunks_exact_mut(BLOCK).zip(code) {
                row[pos] = c;
            }
        }
    }
    Ok(())
}

/// The row-major codes (`n * m` bytes) of `n` packed vectors.
pub fn unpack(packed: &[u8], n: usize, m: usize) -> Result<Vec<u8>> {
    check_packed(packed, n, m)?;
    let mut codes = vec![0u8; n * m];
    for (chunk, block) in codes
        .chunks_mut(BLOCK * m)
        .zip(packed.chunks_exact(BLOCK * m))
    {
        for (lane, code) in chunk.chunks_exact_mut(m).enumerate() {
            let pos = lane_position(lane);
            for (row, c) in block.chunks_exact(BLOCK).zip(code.iter_mut()) {
                *c = row[pos];
            }
        }
    }
    Ok(codes)
}

fn check_scan(lut: &[f32], m: usize, packed: &[u8], n: usize, ids: &[u64]) -> Result<()> {
    check_packed(packed, n, m)?;
    if lut.len() != m * KSUB {
        return Err(CodecError::DimensionMismatch {
            expected: m * KSUB,
            got: lut.len(),
        });
    }
    if ids.len() != n {
        return Err(CodecError::DimensionMismatch {
            expected: n,
            got: ids.len(),
        });
    }
    Ok(())
}

/// Scans `n` packed vectors with the float table `lut` (`m * 256` entries, entry
/// `[j * 256 + c]`), adding `bias` to every distance and offering `ids[i]` for vector `i`
/// to `top` whenever its exact float distance `bias + Σ_j lut[j * 256 + code_j]` (summed
/// in the order of [`super::distances_scalar`]) is within `top`'s threshold: the same
/// pushes, with the same values, as the row-major float scan makes.
pub fn scan(
    lut: &[f32],
    m: usize,
    packed: &[u8],
    n: usize,
    ids: &[u64],
    bias: f32,
    top: &mut TopK,
) -> Result<()> {
    check_scan(lut, m, packed, n, ids)?;
    #[cfg(target_arch = "x86_64")]
    if vbmi::available() {
        vbmi::scan(lut, m, packed, n, ids, bias, top);
        return Ok(());
    }
    scan_exact_blocks(lut, m, packed, ids, bias, top, 0);
    Ok(())
}

/// Scalar oracle for [`scan`]: every vector's distance with plain float look-ups, in
/// order, offered like the row-major scan does.
pub fn scan_reference(
    lut: &[f32],
    m: usize,
    packed: &[u8],
    n: usize,
    ids: &[u64],
    bias: f32,
    top: &mut TopK,
) -> Result<()> {
    check_scan(lut, m, packed, n, ids)?;
    let mut threshold = top.threshold() - bias;
    for (i, &id) in ids.iter().enumerate() {
        let block = &packed[i / BLOCK * BLOCK * m..][..BLOCK * m];
        let d = exact_distance(lut, block, lane_position(i % BLOCK));
        if d <= threshold {
            top.push(id, d + bias);
            threshold = top.threshold() - bias;
        }
    }
    Ok(())
}

/// Name of the kernel [`scan`] uses on this CPU.
pub fn kernel_name() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if vbmi::available() {
        return "avx512-vbmi";
    }
    "portable"
}

/// The float distance of the vector at byte position `pos` of `block` (`64 * m` bytes):
/// `Σ_j lut[j * 256 + block[j * 64 + pos]]`, summed from `0.0` in order of `j`.
#[inline]
fn exact_distance(lut: &[f32], block: &[u8], pos: usize) -> f32 {
    let mut s = 0.0f32;
    for (row, codes) in lut.chunks_exact(KSUB).zip(block.chunks_exact(BLOCK)) {
        s += row[usize::from(codes[pos])];
    }
    s
}

/// Offers the vectors of `lanes` (a bit set of lanes, lowest first) of one block to `top`
/// when their exact distance is within `threshold`, which it keeps current. Returns true if
/// anything was pushed.
#[cfg(target_arch = "x86_64")]
#[inline]
fn offer_lanes(
    lut: &[f32],
    block: &[u8],
    ids: &[u64],
    mut lanes: u64,
    bias: f32,
    threshold: &mut f32,
    top: &mut TopK,
) -> bool {
    let mut pushed = false;
    while lanes != 0 {
        let lane = lanes.trailing_zeros() as usize;
        lanes &= lanes - 1;
        let d = exact_distance(lut, block, lane_position(lane));
        if d <= *threshold
            && let Some(&id) = ids.get(lane)
        {
            top.push(id, d + bias);
            *threshold = top.threshold() - bias;
            pushed = true;
        }
    }
    pushed
}

/// Bit set of the first `count` lanes of a block.
#[cfg(target_arch = "x86_64")]
#[inline]
fn valid_lanes(count: usize) -> u64 {
    if count >= BLOCK {
        u64::MAX
    } else {
        (1u64 << count) - 1
    }
}

/// Portable exact scan from block `first_block` on, one [`exact_block`] at a time.
fn scan_exact_blocks(
    lut: &[f32],
    m: usize,
    packed: &[u8],
    ids: &[u64],
    bias: f32,
    top: &mut TopK,
    first_block: usize,
) {
    let mut threshold = top.threshold() - bias;
    let blocks = packed.chunks_exact(BLOCK * m).zip(ids.chunks(BLOCK));
    for (block, block_ids) in blocks.skip(first_block) {
        exact_block(lut, block, block_ids, bias, &mut threshold, top);
    }
}

/// The float distances of the 64 vectors of `block`, by byte position, each summed from
/// `0.0` in order of `j` like [`exact_distance`]. Eight positions at a time, so one 8-byte
/// load brings eight codes and eight independent sums hide the look-up latency.
#[inline]
fn block_distances(lut: &[f32], block: &[u8]) -> [f32; BLOCK] {
    let mut dist = [0.0f32; BLOCK];
    for (group, out) in dist.chunks_exact_mut(8).enumerate() {
        let mut acc = [0.0f32; 8];
        for (row, codes) in lut.chunks_exact(KSUB).zip(block.chunks_exact(BLOCK)) {
            let (Ok(row), Some(Ok(bytes))) = (
                <&[f32; KSUB]>::try_from(row),
                codes.get(8 * group..8 * group + 8).map(<[u8; 8]>::try_from),
            ) else {
                continue; // unreachable: rows have 256 entries and codes 64 bytes
            };
            for (a, &c) in acc.iter_mut().zip(&bytes) {
                *a += row[usize::from(c)];
            }
        }
        out.copy_from_slice(&acc);
    }
    dist
}

/// One block with float look-ups on the blocked layout (same summation order as
/// [`exact_distance`]): the 64 distances, one minimum test, then the lanes in order, each
/// offered when within `threshold` (kept current, like the row-major scan does).
#[inline]
fn exact_block(
    lut: &[f32],
    block: &[u8],
    block_ids: &[u64],
    bias: f32,
    threshold: &mut f32,
    top: &mut TopK,
) {
    let dist = block_distances(lut, block);
    // Most blocks have no vector that can enter: one branch-free pass decides.
    let block_min = (0..block_ids.len())
        .map(|lane| dist[lane_position(lane)])
        .fold(f32::INFINITY, f32::min);
    if block_min.partial_cmp(threshold).is_none_or(|o| o.is_gt()) {
        return;
    }
    for (lane, &id) in block_ids.iter().enumerate() {
        let d = dist[lane_position(lane)];
        if d <= *threshold {
            top.push(id, d + bias);
            *threshold = top.threshold() - bias;
        }
    }
}
