//! [`ListLayout`]: how the codes of one inverted list are laid out in memory and in
//! segment files. Plain row-major codes (`code_size` bytes per vector, one after the
//! other) or blocks of vectors transposed for in-register table look-ups (4-bit fast
//! scan). The model picks the layout from the spec alone, never from the CPU, so a file
//! written on one machine reads the same on every other.

use std::borrow::Cow;

use crate::adc::blocked;
use crate::error::{CodecError, Result};
use crate::fastscan;

/// The byte layout of a list's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListLayout {
    /// `code_size` bytes per vector, vectors in list order.
    Rows {
        /// Bytes per vector.
        code_size: usize,
    },
    /// 4-bit codes of `m` sub-quantizers in blocks of [`fastscan::BLOCK`] vectors (layout
    /// in `docs/format.md`); the last block is padded with zero codes.
    FastScan {
        /// Sub-quantizers per vector.
        m: usize,
    },
    /// 8-bit PQ codes of `m` sub-quantizers in blocks of [`blocked::BLOCK`] vectors, one
    /// 64-byte row per sub-quantizer (layout in `docs/format.md`), scanned with byte-table
    /// shuffles and an exact float re-check.
    Blocked8 {
        /// Sub-quantizers per vector.
        m: usize,
    },
}

impl ListLayout {
    /// Bytes of one vector's code in row form (what `encode` produces and the write-ahead
    /// log stores).
    pub fn code_size(&self) -> usize {
        match *self {
            ListLayout::Rows { code_size } => code_size,
            ListLayout::FastScan { m } | ListLayout::Blocked8 { m } => m,
        }
    }

    /// Bytes that a list of `n` vectors occupies in this layout.
    pub fn list_bytes(&self, n: usize) -> usize {
        match *self {
            ListLayout::Rows { code_size } => n * code_size,
            ListLayout::FastScan { m } => fastscan::packed_len(n, m),
            ListLayout::Blocked8 { m } => blocked::packed_len(n, m),
        }
    }

    /// True when the layout is plain rows (lists can be concatenated byte-wise).
    pub fn is_rows(&self) -> bool {
        matches!(self, ListLayout::Rows { .. })
    }

    /// Appends the codes of `n` vectors (`n × code_size` bytes in row form) to `out` in
    /// this layout.
    pub fn pack_into(&self, row_codes: &[u8], n: usize, out: &mut Vec<u8>) -> Result<()> {
        if row_codes.len() != n * self.code_size() {
            return Err(CodecError::DimensionMismatch {
                expected: n * self.code_size(),
                got: row_codes.len(),
            });
        }
        match *self {
            ListLayout::Rows { .. } => {
                out.extend_from_slice(row_codes);
                Ok(())
            }
            ListLayout::FastScan { m } => fastscan::pack_into(row_codes, n, m, out),
            ListLayout::Blocked8 { m } => blocked::pack_into(row_codes, n, m, out),
        }
    }

    /// The row form of a list of `n` vectors stored in this layout (borrowed when the
    /// layout already is rows).
    pub fn unpack<'a>(&self, bytes: &'a [u8], n: usize) -> Result<Cow<'a, [u8]>> {
        if bytes.len() != self.list_bytes(n) {
            return Err(CodecError::DimensionMismatch {
                expected: self.list_bytes(n),
                got: bytes.len(),
            });
        }
        match *self {
            ListLayout::Rows { .. } => Ok(Cow::Borrowed(bytes)),
            ListLayout::FastScan { m } => fastscan::unpack(bytes, n, m).map(Cow::Owned),
            ListLayout::Blocked8 { m } => blocked::unpack(bytes, n, m).map(Cow::Owned),
        }
    }

    /// Byte offsets of every list given the row offsets of the lists (`nlist + 1`
    /// non-decreasing values): `nlist + 1` values, the last one the total length.
    pub fn byte_offsets(&self, row_offsets: &[u64]) -> Vec<u64> {
        let mut out = Vec::with_capacity(row_offsets.len());
        let mut total = 0u64;
        out.push(0);
        for w in row_offsets.windows(2) {
            let n = w[1].saturating_sub(w[0]) as usize;
            total += self.list_bytes(n) as u64;
            out.push(total);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_offsets() {
        let l = ListLayout::Rows { code_size: 3 };
        let codes: Vec<u8> = (0..12).collect();
        let mut out = Vec::new();
        l.pack_into(&codes, 4, &mut out).unwrap();
        assert_eq!(out, codes);
        assert_eq!(&*l.unpack(&out, 4).unwrap(), &codes[..]);
        assert_eq!(l.byte_offsets(&[0, 1, 1, 4]), vec![0, 3, 3, 12]);
        assert!(l.pack_into(&codes, 5, &mut out).is_err());
    }

    #[test]
    fn fast_scan_round_trip_and_offsets() {
        let l = ListLayout::FastScan { m: 5 };
        let n = 45;
        let codes: Vec<u8> = (0..n * 5).map(|i| (i * 7 % 16) as u8).collect();
        let mut out = vec![9u8];
        l.pack_into(&codes, n, &mut out).unwrap();
        assert_eq!(out.len(), 1 + l.list_bytes(n));
        assert_eq!(&*l.unpack(&out[1..], n).unwrap(), &codes[..]);
        let offs = l.byte_offsets(&[0, 0, 33, 45]);
        assert_eq!(offs[1], 0);
        assert_eq!(offs[2], l.list_bytes(33) as u64);
        assert_eq!(offs[3], (l.list_bytes(33) + l.list_bytes(12)) as u64);
        assert!(l.unpack(&out, n).is_err());
        assert!(l.pack_into(&[16; 5], 1, &mut out).is_err());
    }

    #[test]
    fn blocked8_round_trip_and_offsets() {
        let l = ListLayout::Blocked8 { m: 3 };
        let n = 70;
        let codes: Vec<u8> = (0..n * 3).map(|i| (i * 37 % 256) as u8).collect();
        let mut out = Vec::new();
        l.pack_into(&codes, n, &mut out).unwrap();
        assert_eq!(out.len(), l.list_bytes(n));
        assert_eq!(l.list_bytes(n), 128 * 3);
        assert_eq!(&*l.unpack(&out, n).unwrap(), &codes[..]);
        assert_eq!(l.byte_offsets(&[0, 64, 70]), vec![0, 192, 384]);
    }
}
