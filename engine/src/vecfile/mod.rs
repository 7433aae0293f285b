//! Reading and writing vector files: TEXMEX `.fvecs` / `.bvecs` / `.ivecs` and NumPy
//! `.npy`, memory-mapped read-only so that a file of millions of vectors is scanned in
//! place, never copied into RAM.
//!
//! [`VectorFile::open`] picks the format from the extension, validates the whole layout
//! up front (every TEXMEX row's dimension header, every `.npy` header field, exact data
//! lengths) and then hands out zero-copy [`VectorsRef`] views. Integer files (ground
//! truth, image offsets) are small and are read into memory by [`read_ivecs`],
//! [`read_npy_i64`] and [`read_npy_u64`]. Every malformation is an
//! [`Error::VectorFile`] naming the file and the byte offset; nothing here panics on a
//! file's contents.

mod npy;
mod texmex;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use vladdb_codecs::{ElemType, VectorsRef};

use crate::error::{Error, Result};

pub use npy::{write_npy_f32, write_npy_i64, write_npy_u8, write_npy_u64};
pub use texmex::{write_bvecs, write_fvecs, write_ivecs};

/// A malformation found at a byte offset, before the file's path is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed {
    offset: u64,
    reason: String,
}

impl Malformed {
    fn new(offset: u64, reason: impl Into<String>) -> Malformed {
        Malformed {
            offset,
            reason: reason.into(),
        }
    }

    fn at(self, path: &Path) -> Error {
        Error::vector_file(path, self.offset, self.reason)
    }
}

/// The on-disk format of a vector file, chosen by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TEXMEX, `f32` components.
    Fvecs,
    /// TEXMEX, `u8` components.
    Bvecs,
    /// TEXMEX, `i32` components (ground truth ids, not vectors).
    Ivecs,
    /// NumPy array.
    Npy,
}

impl Format {
    /// The format named by `path`'s extension (case-insensitive).
    pub fn from_path(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("fvecs") => Ok(Format::Fvecs),
            Some("bvecs") => Ok(Format::Bvecs),
            Some("ivecs") => Ok(Format::Ivecs),
            Some("npy") => Ok(Format::Npy),
            other => Err(Error::vector_file(
                path,
                0,
                format!(
                    "unknown vector file extension {}: expected .fvecs, .bvecs, .ivecs or .npy",
                    other.map_or_else(|| "(none)".to_owned(), |e| format!("'.{e}'"))
                ),
            )),
        }
    }
}

/// A memory-mapped, validated file of vectors (`.fvecs`, `.bvecs` or a 2-D `.npy` of
/// `<f4` or `|u1`).
///
/// The mapping is read-only. As with every memory-mapped reader, the file must not be
/// truncated or rewritten by another process while it is open.
#[derive(Debug)]
pub struct VectorFile {
    path: PathBuf,
    mmap: Mmap,
    format: Format,
    rows: usize,
    dim: usize,
    elem: ElemType,
    /// Byte offset of row 0's first component.
    offset: usize,
    /// Bytes from one row's first component to the next's.
    stride: usize,
}

impl VectorFile {
    /// Opens, validates and maps a vector file; the format comes from the extension.
    pub fn open(path: impl AsRef<Path>) -> Result<VectorFile> {
        let path = path.as_ref();
        let format = Format::from_path(path)?;
        let (mmap, rows, dim, elem, offset, stride) = match format {
            Format::Fvecs | Format::Bvecs => {
                let elem = if format == Format::Fvecs {
                    ElemType::F32
                } else {
                    ElemType::U8
                };
                let (layout, mmap) = open_texmex(path, elem.size())?;
                let offset = texmex::DIM_HEADER;
                (mmap, layout.rows, layout.dim, elem, offset, layout.row_size)
            }
            Format::Ivecs => {
                return Err(Error::vector_file(
                    path,
                    0,
                    ".ivecs files hold int32 ids, not vectors; read them with read_ivecs",
                ));
            }
            Format::Npy => {
                let (header, mmap) = open_npy(path, |descr| match descr {
                    "<f4" => Ok(4),
                    "|u1" | "<u1" | ">u1" | "=u1" | "u1" => Ok(1),
                    ">f4" => Err("big-endian float32 ('>f4') is not supported".to_owned()),
                    other => Err(format!(
                        "unsupported dtype '{other}': expected '<f4' (float32) or '|u1' (uint8)"
                    )),
                })?;
                let elem = if header.descr == "<f4" {
                    ElemType::F32
                } else {
                    ElemType::U8
                };
                let [rows, dim] = header.shape[..] else {
                    return Err(Error::vector_file(
                        path,
                        0,
                        format!(
                            "expected a 2-D array (rows, dim), the shape is {:?}",
                            header.shape
                        ),
                    ));
                };
                if dim == 0 {
                    return Err(Error::vector_file(
                        path,
                        0,
                        "the array has dimension 0 (shape (rows, 0))",
                    ));
                }
                let too_big =
                    || Error::vector_file(path, 0, "the array is too large for this platform");
                let rows = usize::try_from(rows).map_err(|_| too_big())?;
                let dim = usize::try_from(dim).map_err(|_| too_big())?;
                let offset = usize::try_from(header.data_offset).map_err(|_| too_big())?;
                (mmap, rows, dim, elem, offset, dim * elem.size())
            }
        };
        // Build the view once here so that `vectors()` only repeats a checked construction.
        VectorsRef::new(&mmap, rows, dim, offset, stride, elem)?;
        Ok(VectorFile {
            path: path.to_path_buf(),
            mmap,
            format,
            rows,
            dim,
            elem,
            offset,
            stride,
        })
    }

    /// A zero-copy, strided view of all the vectors.
    pub fn vectors(&self) -> VectorsRef<'_> {
        // `open` built exactly this view from the same immutable mapping and checked
        // that it succeeds, so this cannot fail.
        VectorsRef::new(
            &self.mmap,
            self.rows,
            self.dim,
            self.offset,
            self.stride,
            self.elem,
        )
        .expect("view validated by VectorFile::open")
    }

    /// Number of vectors.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Components per vector.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Component type.
    pub fn elem(&self) -> ElemType {
        self.elem
    }
    /// True when the file holds no vectors (possible for `.npy`).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }
    /// The file's format.
    pub fn format(&self) -> Format {
        self.format
    }
    /// The path the file was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A dense row-major matrix of `i32` read from an `.ivecs` file (e.g. ground truth ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntMatrix {
    pub rows: usize,
    pub dim: usize,
    /// `rows * dim` values, row after row.
    pub data: Vec<i32>,
}

impl IntMatrix {
    /// Row `i`, or `None` when `i >= rows`.
    pub fn row(&self, i: usize) -> Option<&[i32]> {
        if i >= self.rows {
            return None;
        }
        self.data.get(i * self.dim..(i + 1) * self.dim)
    }

    /// The rows in order.
    pub fn iter_rows(&self) -> impl Iterator<Item = &[i32]> {
        self.data.chunks_exact(self.dim.max(1)).take(self.rows)
    }
}

/// Reads a whole `.ivecs` file (TEXMEX, `i32` components) into memory.
///
/// Paths with another known vector extension (`.fvecs`, `.bvecs`, `.npy`) are refused;
/// any other extension is read as `.ivecs`.
pub fn read_ivecs(path: impl AsRef<Path>) -> Result<IntMatrix> {
    let path = path.as_ref();
    if let Ok(format) = Format::from_path(path)
        && format != Format::Ivecs
    {
        return Err(Error::vector_file(
            path,
            0,
            format!("read_ivecs needs an .ivecs file, this is {format:?}"),
        ));
    }
    let (layout, mmap) = open_texmex(path, 4)?;
    let mut data = Vec::with_capacity(layout.rows * layout.dim);
    for row in mmap.chunks_exact(layout.row_size) {
        data.extend(
            row[texmex::DIM_HEADER..]
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    Ok(IntMatrix {
        rows: layout.rows,
        dim: layout.dim,
        data,
    })
}

/// Reads a 1-D `.npy` array of int64 (`<i8`), e.g. a query-truth file.
pub fn read_npy_i64(path: impl AsRef<Path>) -> Result<Vec<i64>> {
    read_npy_1d(path.as_ref(), "<i8", "int64", i64::from_le_bytes)
}

/// Reads a 1-D `.npy` array of uint64 (`<u8`), e.g. image-set offsets.
pub fn read_npy_u64(path: impl AsRef<Path>) -> Result<Vec<u64>> {
    read_npy_1d(path.as_ref(), "<u8", "uint64", u64::from_le_bytes)
}

fn read_npy_1d<T>(
    path: &Path,
    want: &str,
    name: &str,
    decode: impl Fn([u8; 8]) -> T,
) -> Result<Vec<T>> {
    let (header, mmap) = open_npy(path, |descr| {
        if descr == want {
            Ok(8)
        } else {
            Err(format!(
                "unsupported dtype '{descr}': expected '{want}' ({name})"
            ))
        }
    })?;
    if header.shape.len() != 1 {
        return Err(Error::vector_file(
            path,
            0,
            format!("expected a 1-D array, the shape is {:?}", header.shape),
        ));
    }
    let start = usize::try_from(header.data_offset)
        .map_err(|_| Error::vector_file(path, 0, "the array is too large for this platform"))?;
    let data = mmap.get(start..).unwrap_or_default();
    Ok(data
        .chunks_exact(8)
        .map(|c| decode([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect())
}

/// Opens `path` for reading and returns it with its length; a zero-length file is an error.
fn open_nonempty(path: &Path) -> Result<(File, u64)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len == 0 {
        return Err(Error::vector_file(path, 0, "empty file"));
    }
    Ok((file, len))
}

/// Reads the first `n` bytes of `file` (fewer if the file is shorter).
fn read_head(file: &mut File, path: &Path, n: u64) -> Result<Vec<u8>> {
    let mut head = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| Read::by_ref(file).take(n).read_to_end(&mut head))
        .map_err(|e| Error::io(path, e))?;
    Ok(head)
}

/// Maps the whole (non-empty, already validated) file read-only.
fn map(file: &File, path: &Path, len: u64) -> Result<Mmap> {
    // SAFETY: the mapping is read-only and private to this process. Like every reader of
    // memory-mapped files, we rely on the file not being truncated or modified by another
    // process while it is mapped (documented on `VectorFile`); we never write through it.
    let mmap = unsafe { Mmap::map(file) }.map_err(|e| Error::io(path, e))?;
    if mmap.len() as u64 != len {
        return Err(Error::vector_file(
            path,
            0,
            format!(
                "the file changed size while being opened ({len} then {} bytes)",
                mmap.len()
            ),
        ));
    }
    Ok(mmap)
}

/// Validates and maps a TEXMEX file whose components are `elem_size` bytes.
fn open_texmex(path: &Path, elem_size: usize) -> Result<(texmex::TexmexLayout, Mmap)> {
    let (mut file, len) = open_nonempty(path)?;
    let head = read_head(&mut file, path, texmex::DIM_HEADER as u64)?;
    let layout = texmex::layout(&head, len, elem_size).map_err(|m| m.at(path))?;
    let mmap = map(&file, path, len)?;
    texmex::check_dimensions(&mmap, &layout).map_err(|m| m.at(path))?;
    Ok((layout, mmap))
}

/// Validates and maps an `.npy` file; `itemsize_of` accepts the caller's dtypes.
fn open_npy(
    path: &Path,
    itemsize_of: impl Fn(&str) -> std::result::Result<usize, String>,
) -> Result<(npy::NpyHeader, Mmap)> {
    let (mut file, len) = open_nonempty(path)?;
    let prelude = read_head(&mut file, path, npy::PRELUDE_MAX as u64)?;
    let header_end = npy::header_end(&prelude, len).map_err(|m| m.at(path))?;
    let head = read_head(&mut file, path, header_end)?;
    let header = npy::parse_header(&head, len, itemsize_of).map_err(|m| m.at(path))?;
    let mmap = map(&file, path, len)?;
    Ok((header, mmap))
}

/// Creates `path` for writing, buffered.
fn create_writer(path: &Path) -> Result<BufWriter<File>> {
    File::create(path)
        .map(|f| BufWriter::with_capacity(1 << 16, f))
        .map_err(|e| Error::io(path, e))
}

/// Flushes a writer made by [`create_writer`], reporting errors against `path`. (No
/// fsync: these are export files; durable storage is the segment layer's job.)
fn finish_writer(path: &Path, out: BufWriter<File>) -> Result<()> {
    out.into_inner()
        .map(drop)
        .map_err(|e| Error::io(path, e.into_error()))
}
