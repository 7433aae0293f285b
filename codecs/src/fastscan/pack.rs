//! Conversion between one-byte-per-code rows and the fast-scan block layout described in
//! the module docs of [`crate::fastscan`].

use super::{BLOCK, block_bytes, packed_len, padded_m};
use crate::error::{CodecError, Result};

/// Packs `n` rows of `m` 4-bit codes (`codes`: `n * m` bytes, row-major, each `< 16`) into
/// the block layout. Errors on `m == 0`, a wrong `codes` length or a code `>= 16`.
pub fn pack(codes: &[u8], n: usize, m: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    pack_into(codes, n, m, &mut out)?;
    Ok(out)
}

/// [`pack`], appending `packed_len(n, m)` bytes to `out`. On error `out` is unchanged.
pub fn pack_into(codes: &[u8], n: usize, m: usize, out: &mut Vec<u8>) -> Result<()> {
    check_m(m)?;
    let expected = n.checked_mul(m).ok_or_else(|| too_large(n, m))?;
    if codes.len() != expected {
        return Err(CodecError::DimensionMismatch {
            expected,
            got: codes.len(),
        });
    }
    if let Some(pos) = codes.iter().position(|&c| c >= 16) {
        return Err(CodecError::InvalidParameter(format!(
            "4-bit code {} of vector {} (sub-quantizer {}) is not below 16",
            codes[pos],
            pos / m,
            pos % m
        )));
    }
    let total = packed_len(n, m);
    if total == usize::MAX {
        return Err(too_large(n, m));
    }
    let start = out.len();
    out.resize(start + total, 0);
    let dst = &mut out[start..];
    let block_len = block_bytes(m);
    for (row, code_row) in codes.chunks_exact(m).enumerate() {
        let block = row / BLOCK;
        let in_block = row % BLOCK;
        let (half, i) = (in_block / 16, in_block % 16);
        let base = block * block_len + i;
        for (j, &code) in code_row.iter().enumerate() {
            // Pair p = j / 2 at 32 p, sub-quantizer parity j % 2 selects the 16-byte half.
            dst[base + 16 * j] |= code << (4 * half);
        }
    }
    Ok(())
}

/// Inverse of [`pack`]: the `n * m` codes (one per byte) of a packed buffer of
/// `packed_len(n, m)` bytes. Errors on `m == 0` or a wrong buffer length.
pub fn unpack(packed: &[u8], n: usize, m: usize) -> Result<Vec<u8>> {
    check_m(m)?;
    let expected = packed_len(n, m);
    if packed.len() != expected || expected == usize::MAX {
        return Err(CodecError::DimensionMismatch {
            expected,
            got: packed.len(),
        });
    }
    let mut codes = Vec::with_capacity(n * m);
    for i in 0..n {
        codes.extend((0..m).map(|j| code_at(packed, m, i, j)));
    }
    Ok(codes)
}

/// The code of sub-quantizer `j` of vector `i`, straight from the layout formula
/// (`byte b * 16 m_pad + 32 p + 16 s + i', nibble h` for `i = 32 b + 16 h + i'`,
/// `j = 2 p + s`). Callers guarantee `i` is inside the buffer and `j < m`.
pub(super) fn code_at(packed: &[u8], m: usize, i: usize, j: usize) -> u8 {
    let (block, in_block) = (i / BLOCK, i % BLOCK);
    let (half, lane) = (in_block / 16, in_block % 16);
    let (pair, parity) = (j / 2, j % 2);
    let byte = packed[block * 16 * padded_m(m) + 32 * pair + 16 * parity + lane];
    (byte >> (4 * half)) & 0x0f
}

fn check_m(m: usize) -> Result<()> {
    if m == 0 {
        return Err(CodecError::InvalidParameter(
            "4-bit codes need at least one sub-quantizer (m >= 1)".into(),
        ));
    }
    Ok(())
}

fn too_large(n: usize, m: usize) -> CodecError {
    CodecError::InvalidParameter(format!("{n} vectors of {m} codes do not fit in memory"))
}
