//! TEXMEX vector files (`.fvecs`, `.bvecs`, `.ivecs`, as used by SIFT1M / BIGANN): layout
//! validation and writers.
//!
//! Every row is a little-endian `i32` dimension `d` followed by `d` components (`f32`,
//! `u8` or `i32`). The whole file must be a whole number of rows of the size implied by
//! the first row, and every row must repeat the first row's dimension.

use std::io::Write;
use std::path::Path;

use super::{Malformed, create_writer, finish_writer};
use crate::error::{Error, Result};

/// Bytes of the per-row dimension header.
pub(crate) const DIM_HEADER: usize = 4;

/// The shape of a TEXMEX file, derived from its first row and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TexmexLayout {
    pub rows: usize,
    pub dim: usize,
    /// Bytes per row, dimension header included.
    pub row_size: usize,
}

/// Checks what can be checked from the file's first bytes (`head`, at least the first
/// four bytes when the file has them) and its total length `file_len`.
pub(crate) fn layout(
    head: &[u8],
    file_len: u64,
    elem_size: usize,
) -> std::result::Result<TexmexLayout, Malformed> {
    let Some(dim_bytes) = head.get(..DIM_HEADER) else {
        return Err(Malformed::new(
            0,
            format!(
                "truncated: the file has {file_len} bytes, less than one 4-byte dimension header"
            ),
        ));
    };
    let dim = i32::from_le_bytes([dim_bytes[0], dim_bytes[1], dim_bytes[2], dim_bytes[3]]);
    if dim <= 0 {
        return Err(Malformed::new(
            0,
            format!("row 0 declares dimension {dim}; a dimension must be positive"),
        ));
    }
    // `dim < 2^31` and `elem_size <= 4`, so this cannot overflow a u64.
    let row_size = DIM_HEADER as u64 + dim as u64 * elem_size as u64;
    let rows = file_len / row_size;
    let trailing = file_len % row_size;
    if trailing != 0 {
        return Err(Malformed::new(
            rows * row_size,
            format!(
                "truncated: {trailing} trailing bytes after {rows} complete rows of \
                 {row_size} bytes (dimension {dim})"
            ),
        ));
    }
    let too_big = || Malformed::new(0, "the file is too large to address on this platform");
    Ok(TexmexLayout {
        rows: usize::try_from(rows).map_err(|_| too_big())?,
        dim: dim as usize,
        row_size: usize::try_from(row_size).map_err(|_| too_big())?,
    })
}

/// Checks that every row of `bytes` (the whole file, `layout` from [`layout`]) declares
/// the same dimension as the first. One strided pass over the dimension headers.
pub(crate) fn check_dimensions(
    bytes: &[u8],
    layout: &TexmexLayout,
) -> std::result::Result<(), Malformed> {
    let Some(first) = bytes.get(..DIM_HEADER) else {
        return Ok(());
    };
    let expected = u32::from_le_bytes([first[0], first[1], first[2], first[3]]);
    let bad_row = bytes
        .chunks_exact(layout.row_size)
        .position(|row| u32::from_le_bytes([row[0], row[1], row[2], row[3]]) != expected);
    match bad_row {
        None => Ok(()),
        Some(r) => {
            let at = r * layout.row_size;
            let declared =
                i32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
            Err(Malformed::new(
                at as u64,
                format!(
                    "row {r} declares dimension {declared}, expected {}",
                    layout.dim
                ),
            ))
        }
    }
}

/// Writes `data` (row-major, `dim` components per row) as a TEXMEX file, each component
/// encoded by `encode`.
fn write_rows<T: Copy, const N: usize>(
    path: &Path,
    data: &[T],
    dim: usize,
    encode: impl Fn(T) -> [u8; N],
) -> Result<()> {
    if dim == 0 || !data.len().is_multiple_of(dim) {
        return Err(Error::InvalidArgument(format!(
            "cannot write {}: {} values do not form rows of dimension {dim}",
            path.display(),
            data.len()
        )));
    }
    let header = i32::try_from(dim).map_err(|_| {
        Error::InvalidArgument(format!(
            "cannot write {}: dimension {dim} does not fit the format's int32 header",
            path.display()
        ))
    })?;
    let mut out = create_writer(path)?;
    let mut row_bytes = Vec::with_capacity(DIM_HEADER + dim * N);
    for row in data.chunks_exact(dim) {
        row_bytes.clear();
        row_bytes.extend_from_slice(&header.to_le_bytes());
        for &v in row {
            row_bytes.extend_from_slice(&encode(v));
        }
        out.write_all(&row_bytes).map_err(|e| Error::io(path, e))?;
    }
    finish_writer(path, out)
}

/// Writes an `.fvecs` file: `data` holds `data.len() / dim` rows of `dim` floats.
///
/// Zero rows give an empty file, which [`super::VectorFile::open`] refuses ("empty file").
pub fn write_fvecs(path: impl AsRef<Path>, data: &[f32], dim: usize) -> Result<()> {
    write_rows(path.as_ref(), data, dim, f32::to_le_bytes)
}

/// Writes a `.bvecs` file: `data` holds `data.len() / dim` rows of `dim` bytes.
pub fn write_bvecs(path: impl AsRef<Path>, data: &[u8], dim: usize) -> Result<()> {
    write_rows(path.as_ref(), data, dim, |b| [b])
}

/// Writes an `.ivecs` file (e.g. ground truth): `data.len() / dim` rows of `dim` ints.
pub fn write_ivecs(path: impl AsRef<Path>, data: &[i32], dim: usize) -> Result<()> {
    write_rows(path.as_ref(), data, dim, i32::to_le_bytes)
}
