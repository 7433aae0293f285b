//! A borrowed, possibly strided view of a matrix of vectors, whatever their element type.
//!
//! Vector files put rows at a fixed stride (TEXMEX files prefix every row with its
//! dimension; `.npy` rows are contiguous), and their elements are `f32` or `u8`. The
//! engine memory-maps such files and hands a [`VectorsRef`] to the math here, which reads
//! rows (converting to `f32`) without ever copying the whole matrix.

use crate::error::{CodecError, Result};

/// Element type of the stored vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    /// Little-endian IEEE-754 single precision.
    F32,
    /// Unsigned bytes (e.g. SIFT descriptors), converted exactly to `f32`.
    U8,
}

impl ElemType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            ElemType::F32 => 4,
            ElemType::U8 => 1,
        }
    }
}

/// `rows` vectors of `dim` elements; row `i` starts at byte `offset + i * stride`.
#[derive(Debug, Clone, Copy)]
pub struct VectorsRef<'a> {
    bytes: &'a [u8],
    rows: usize,
    dim: usize,
    offset: usize,
    stride: usize,
    elem: ElemType,
}

impl<'a> VectorsRef<'a> {
    /// A checked view: fails if the last row would end past `bytes`.
    pub fn new(
        bytes: &'a [u8],
        rows: usize,
        dim: usize,
        offset: usize,
        stride: usize,
        elem: ElemType,
    ) -> Result<Self> {
        let row_bytes = dim
            .checked_mul(elem.size())
            .ok_or_else(|| CodecError::InvalidParameter("dimension overflows".into()))?;
        if rows > 0 {
            if stride < row_bytes {
                return Err(CodecError::InvalidParameter(format!(
                    "row stride {stride} is smaller than a row ({row_bytes} bytes)"
                )));
            }
            let end = (rows - 1)
                .checked_mul(stride)
                .and_then(|v| v.checked_add(offset))
                .and_then(|v| v.checked_add(row_bytes))
                .ok_or_else(|| CodecError::InvalidParameter("matrix size overflows".into()))?;
            if end > bytes.len() {
                return Err(CodecError::InvalidParameter(format!(
                    "{rows} rows of {row_bytes} bytes need {end} bytes, the buffer has {}",
                    bytes.len()
                )));
            }
        }
        Ok(VectorsRef {
            bytes,
            rows,
            dim,
            offset,
            stride,
            elem,
        })
    }

    /// A contiguous `f32` matrix viewed through this type.
    pub fn from_f32(data: &'a [f32], dim: usize) -> Result<Self> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(CodecError::DimensionMismatch {
                expected: dim,
                got: data.len(),
            });
        }
        // SAFETY: f32 has no invalid bit patterns and u8 has alignment 1, so viewing the
        // same memory as bytes for the same lifetime is sound.
        let bytes = unsafe {
            std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), std::mem::size_of_val(data))
        };
        Self::new(bytes, data.len() / dim, dim, 0, dim * 4, ElemType::F32)
    }

    /// A contiguous `u8` matrix.
    pub fn from_u8(data: &'a [u8], dim: usize) -> Result<Self> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(CodecError::DimensionMismatch {
                expected: dim,
                got: data.len(),
            });
        }
        Self::new(data, data.len() / dim, dim, 0, dim, ElemType::U8)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Elements per row.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Element type.
    pub fn elem(&self) -> ElemType {
        self.elem
    }
    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The raw bytes of row `i` (`dim * elem.size()` bytes). Panics if `i >= rows`.
    pub fn row_bytes(&self, i: usize) -> &'a [u8] {
        assert!(i < self.rows, "row {i} out of range ({} rows)", self.rows);
        let start = self.offset + i * self.stride;
        &self.bytes[start..start + self.dim * self.elem.size()]
    }

    /// Row `i` as `f32`s in place, without a copy, when the elements are little-endian
    /// `f32` at a 4-byte-aligned address (a memory-mapped `.fvecs` or `.npy` body, a
    /// [`VectorsRef::from_f32`] view); `None` otherwise (use
    /// [`VectorsRef::row_f32_into`]). Panics if `i >= rows`.
    pub fn row_f32(&self, i: usize) -> Option<&'a [f32]> {
        let raw = self.row_bytes(i);
        if self.elem != ElemType::F32
            || cfg!(target_endian = "big")
            || !(raw.as_ptr() as usize).is_multiple_of(std::mem::align_of::<f32>())
        {
            return None;
        }
        // SAFETY: the `dim * 4` bytes of the row lie within `self.bytes` (checked by
        // `row_bytes`), the address is aligned for `f32`, every bit pattern is a valid
        // `f32` (little-endian, as the files store them) and the borrow keeps the bytes'
        // lifetime.
        Some(unsafe { std::slice::from_raw_parts(raw.as_ptr().cast::<f32>(), self.dim) })
    }

    /// Converts row `i` to `f32` into `out` (`out.len() == dim`).
    pub fn row_f32_into(&self, i: usize, out: &mut [f32]) {
        let raw = self.row_bytes(i);
        match self.elem {
            ElemType::U8 => {
                for (o, &b) in out.iter_mut().zip(raw) {
                    *o = f32::from(b);
                }
            }
            ElemType::F32 => {
                for (o, c) in out.iter_mut().zip(raw.chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
        }
    }

    /// Converts rows `start..start + count` to a contiguous `f32` block in `out`
    /// (`out.len() >= count * dim`).
    pub fn rows_f32_into(&self, start: usize, count: usize, out: &mut [f32]) {
        for r in 0..count {
            self.row_f32_into(start + r, &mut out[r * self.dim..(r + 1) * self.dim]);
        }
    }

    /// Rows `start..start + count` as a new contiguous `f32` matrix.
    pub fn to_f32_vec(&self, start: usize, count: usize) -> Vec<f32> {
        let mut out = vec![0.0; count * self.dim];
        self.rows_f32_into(start, count, &mut out);
        out
    }

    /// A sub-view of rows `start..start + count`.
    pub fn slice(&self, start: usize, count: usize) -> Result<Self> {
        if start.checked_add(count).is_none_or(|e| e > self.rows) {
            return Err(CodecError::InvalidParameter(format!(
                "rows {start}..{} out of range ({} rows)",
                start.saturating_add(count),
                self.rows
            )));
        }
        Ok(VectorsRef {
            bytes: self.bytes,
            rows: count,
            dim: self.dim,
            offset: self.offset + start * self.stride,
            stride: self.stride,
            elem: self.elem,
        })
    }
}

/// True when `v` is an integer in `0..=255` (a byte stored as a float). A truncating cast
/// instead of `f32::fract`, which is a libm call on x86-64 without SSE4.1 in the baseline.
#[inline]
pub fn is_byte(v: f32) -> bool {
    (0.0..=255.0).contains(&v) && f32::from(v as u8) == v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_borrowed_in_place_only_when_aligned_f32() {
        let data = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let view = VectorsRef::from_f32(&data, 3).unwrap();
        assert_eq!(view.row_f32(1), Some(&data[3..6]));
        // The same floats one byte off alignment: copied, never borrowed.
        let mut bytes = vec![0u8];
        bytes.extend(data.iter().flat_map(|v| v.to_le_bytes()));
        let shifted = VectorsRef::new(&bytes, 2, 3, 1, 12, ElemType::F32).unwrap();
        assert_eq!(shifted.row_f32(1), None);
        let mut row = [0.0f32; 3];
        shifted.row_f32_into(1, &mut row);
        assert_eq!(row, [4.0, 5.0, 6.0]);
        let bytes = VectorsRef::from_u8(&[1, 2, 3, 4], 2).unwrap();
        assert_eq!(bytes.row_f32(0), None);
    }
}
