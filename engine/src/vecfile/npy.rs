//! NumPy `.npy` files: header parsing (format versions 1.0, 2.0 and 3.0) and writers.
//!
//! A file is the magic `\x93NUMPY`, a major and minor version byte, the header length
//! (`u16` in 1.0, `u32` in 2.0/3.0, little-endian), then a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 128), }` padded with spaces
//! and a newline, then the raw array data. Only what vladdb reads is accepted: the dict
//! must hold exactly `descr`, `fortran_order` and `shape`, Fortran order is refused, and
//! the data must be exactly `product(shape) * itemsize` bytes.

use std::io::Write;
use std::path::Path;

use super::{Malformed, create_writer, finish_writer};
use crate::error::{Error, Result};

/// The file magic.
pub(crate) const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Bytes needed to know the header length (magic, version, a `u32` length).
pub(crate) const PRELUDE_MAX: usize = 12;
/// Refuse headers longer than this (real ones are under a hundred bytes).
const HEADER_LIMIT: u64 = 1 << 20;
/// Nesting limit for the header's tuples and lists.
const DEPTH_LIMIT: usize = 8;

/// A parsed and checked `.npy` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NpyHeader {
    /// The dtype string, e.g. `<f4`.
    pub descr: String,
    /// The array shape (C order).
    pub shape: Vec<u64>,
    /// Byte offset of the array data.
    pub data_offset: u64,
}

/// From the first bytes of a file (up to [`PRELUDE_MAX`]), the byte offset where the
/// array data starts, i.e. how much of the file the header occupies.
pub(crate) fn header_end(head: &[u8], file_len: u64) -> std::result::Result<u64, Malformed> {
    if head.len() < 6 || &head[..6] != MAGIC {
        let shown = head.get(..6.min(head.len())).unwrap_or_default();
        if shown.len() < 6 && MAGIC.starts_with(shown) {
            return Err(Malformed::new(0, truncated_header(file_len)));
        }
        return Err(Malformed::new(
            0,
            "not an npy file: bad magic (expected \\x93NUMPY)",
        ));
    }
    let (Some(&major), Some(&minor)) = (head.get(6), head.get(7)) else {
        return Err(Malformed::new(6, truncated_header(file_len)));
    };
    let (len_bytes, header_len) = match (major, minor) {
        (1, 0) => {
            let Some(b) = head.get(8..10) else {
                return Err(Malformed::new(8, truncated_header(file_len)));
            };
            (2u64, u64::from(u16::from_le_bytes([b[0], b[1]])))
        }
        (2, 0) | (3, 0) => {
            let Some(b) = head.get(8..12) else {
                return Err(Malformed::new(8, truncated_header(file_len)));
            };
            (
                4u64,
                u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            )
        }
        _ => {
            return Err(Malformed::new(
                6,
                format!(
                    "unsupported npy format version {major}.{minor} (expected 1.0, 2.0 or 3.0)"
                ),
            ));
        }
    };
    if header_len > HEADER_LIMIT {
        return Err(Malformed::new(
            8,
            format!("header length {header_len} is implausibly large (limit {HEADER_LIMIT})"),
        ));
    }
    let end = 8 + len_bytes + header_len;
    if end > file_len {
        return Err(Malformed::new(
            8,
            format!(
                "truncated: header length {header_len} runs past the end of the file ({file_len} bytes)"
            ),
        ));
    }
    Ok(end)
}

fn truncated_header(file_len: u64) -> String {
    format!("truncated: the file has {file_len} bytes, less than an npy header")
}

/// Parses the header in `head` (the file's first `header_end` bytes) and checks the data
/// length against `file_len` for elements of `itemsize` bytes given by `itemsize_of`
/// (which refuses unsupported dtypes).
pub(crate) fn parse_header(
    head: &[u8],
    file_len: u64,
    itemsize_of: impl Fn(&str) -> std::result::Result<usize, String>,
) -> std::result::Result<NpyHeader, Malformed> {
    let data_offset = header_end(head, file_len)?;
    let text_start: usize = if head[6] == 1 { 10 } else { 12 };
    let Some(raw) = usize::try_from(data_offset)
        .ok()
        .and_then(|end| head.get(text_start..end))
    else {
        return Err(Malformed::new(8, truncated_header(file_len)));
    };
    let text = std::str::from_utf8(raw).map_err(|e| {
        Malformed::new(
            text_start as u64 + e.valid_up_to() as u64,
            "header is not valid text",
        )
    })?;
    let mut parser = Parser {
        text,
        pos: 0,
        base: text_start as u64,
    };
    let fields = parser.dict()?;
    let (descr, fortran_order, shape) = fields.into_header(text_start as u64)?;
    if fortran_order {
        return Err(Malformed::new(
            text_start as u64,
            "Fortran-order (column-major) arrays are not supported; save with C order",
        ));
    }
    let itemsize =
        itemsize_of(&descr).map_err(|reason| Malformed::new(text_start as u64, reason))?;
    let need = shape
        .iter()
        .try_fold(itemsize as u64, |acc, &n| acc.checked_mul(n))
        .ok_or_else(|| Malformed::new(text_start as u64, format!("shape {shape:?} overflows")))?;
    let have = file_len - data_offset;
    if have < need {
        return Err(Malformed::new(
            file_len,
            format!(
                "truncated: shape {shape:?} of {descr} needs {need} data bytes from byte \
                 {data_offset}, the file has {have}"
            ),
        ));
    }
    if have > need {
        return Err(Malformed::new(
            data_offset + need,
            format!("{} trailing bytes after the array data", have - need),
        ));
    }
    Ok(NpyHeader {
        descr,
        shape,
        data_offset,
    })
}

/// A value in the header dict.
#[derive(Debug)]
enum Value {
    Str(String),
    Bool(bool),
    Int(u64),
    None,
    Tuple(Vec<Value>),
    /// A list (only seen as a structured dtype's `descr`, which is refused).
    List,
}

/// The header dict's entries.
struct Fields(Vec<(String, Value, u64)>);

impl Fields {
    /// Extracts `(descr, fortran_order, shape)`, refusing missing or unknown keys.
    fn into_header(self, at: u64) -> std::result::Result<(String, bool, Vec<u64>), Malformed> {
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        for (key, value, pos) in self.0 {
            let slot_taken = match key.as_str() {
                "descr" => match value {
                    Value::Str(s) => descr.replace(s).is_some(),
                    Value::List => {
                        return Err(Malformed::new(pos, "structured dtypes are not supported"));
                    }
                    _ => return Err(Malformed::new(pos, "'descr' must be a string")),
                },
                "fortran_order" => match value {
                    Value::Bool(b) => fortran.replace(b).is_some(),
                    _ => return Err(Malformed::new(pos, "'fortran_order' must be True or False")),
                },
                "shape" => match value {
                    Value::Tuple(items) => {
                        let mut dims = Vec::with_capacity(items.len());
                        for item in items {
                            match item {
                                Value::Int(n) => dims.push(n),
                                _ => {
                                    return Err(Malformed::new(
                                        pos,
                                        "'shape' must be a tuple of non-negative integers",
                                    ));
                                }
                            }
                        }
                        shape.replace(dims).is_some()
                    }
                    _ => return Err(Malformed::new(pos, "'shape' must be a tuple")),
                },
                other => {
                    return Err(Malformed::new(
                        pos,
                        format!("unexpected header key {other:?}"),
                    ));
                }
            };
            if slot_taken {
                return Err(Malformed::new(
                    pos,
                    format!("header key {key:?} appears twice"),
                ));
            }
        }
        match (descr, fortran, shape) {
            (Some(d), Some(f), Some(s)) => Ok((d, f, s)),
            _ => Err(Malformed::new(
                at,
                "header must contain 'descr', 'fortran_order' and 'shape'",
            )),
        }
    }
}

/// A recursive-descent parser for the Python literal subset numpy writes.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
    /// File offset of `text[0]`, for error offsets.
    base: u64,
}

impl Parser<'_> {
    fn error(&self, reason: impl Into<String>) -> Malformed {
        Malformed::new(
            self.base + self.pos as u64,
            format!("bad npy header: {}", reason.into()),
        )
    }

    fn skip_ws(&mut self) {
        let rest = &self.text[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.text[self.pos..].chars().next()
    }

    fn expect(&mut self, c: char) -> std::result::Result<(), Malformed> {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            Ok(())
        } else {
            Err(self.error(format!("expected {c:?}")))
        }
    }

    fn dict(&mut self) -> std::result::Result<Fields, Malformed> {
        self.expect('{')?;
        let mut fields = Vec::new();
        loop {
            if self.peek() == Some('}') {
                self.pos += 1;
                break;
            }
            let pos = self.base + self.pos as u64;
            let Value::Str(key) = self.value(0)? else {
                return Err(self.error("dict keys must be strings"));
            };
            self.expect(':')?;
            let value = self.value(0)?;
            fields.push((key, value, pos));
            match self.peek() {
                Some(',') => self.pos += 1,
                Some('}') => {}
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
        if self.peek().is_some() {
            return Err(self.error("unexpected text after the dict"));
        }
        Ok(Fields(fields))
    }

    fn value(&mut self, depth: usize) -> std::result::Result<Value, Malformed> {
        if depth > DEPTH_LIMIT {
            return Err(self.error("nested too deeply"));
        }
        match self.peek() {
            Some(q @ ('\'' | '"')) => {
                let start = self.pos + 1;
                let Some(len) = self.text[start..].find(q) else {
                    return Err(self.error("unterminated string"));
                };
                let s = &self.text[start..start + len];
                if s.contains('\\') {
                    return Err(self.error("escape sequences are not supported"));
                }
                self.pos = start + len + 1;
                Ok(Value::Str(s.to_owned()))
            }
            Some(open @ ('(' | '[')) => {
                let close = if open == '(' { ')' } else { ']' };
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        break;
                    }
                    items.push(self.value(depth + 1)?);
                    match self.peek() {
                        Some(',') => self.pos += 1,
                        Some(c) if c == close => {}
                        _ => return Err(self.error(format!("expected ',' or {close:?}"))),
                    }
                }
                Ok(if open == '(' {
                    Value::Tuple(items)
                } else {
                    Value::List
                })
            }
            Some(c) if c.is_ascii_digit() => {
                let rest = &self.text[self.pos..];
                let len = rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len());
                let n: u64 = rest[..len]
                    .parse()
                    .map_err(|_| self.error("integer out of range"))?;
                self.pos += len;
                // Python 2 era files write long integers as `3L`.
                if self.text[self.pos..].starts_with('L') {
                    self.pos += 1;
                }
                Ok(Value::Int(n))
            }
            Some(_) => {
                let rest = &self.text[self.pos..];
                for (word, value) in [
                    ("True", Value::Bool(true)),
                    ("False", Value::Bool(false)),
                    ("None", Value::None),
                ] {
                    if rest.starts_with(word) {
                        self.pos += word.len();
                        return Ok(value);
                    }
                }
                Err(self.error("unexpected token"))
            }
            None => Err(self.error("unexpected end of header")),
        }
    }
}

/// Writes a version 1.0 `.npy` file of dtype `descr` and `shape`; `body` writes the data.
fn write_npy(
    path: &Path,
    descr: &str,
    shape: &[usize],
    body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let shape_text = match shape {
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Pad with spaces so that the data starts on a 64-byte boundary, newline last.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let header_len = u16::try_from(header.len()).map_err(|_| {
        Error::InvalidArgument(format!(
            "cannot write {}: npy header too long",
            path.display()
        ))
    })?;
    let mut out = create_writer(path)?;
    let write = |out: &mut dyn Write| -> std::io::Result<()> {
        out.write_all(MAGIC)?;
        out.write_all(&[1, 0])?;
        out.write_all(&header_len.to_le_bytes())?;
        out.write_all(header.as_bytes())?;
        body(out)
    };
    write(&mut out).map_err(|e| Error::io(path, e))?;
    finish_writer(path, out)
}

/// Writes `values` little-endian, converting a block at a time.
fn write_le<T: Copy, const N: usize>(
    out: &mut dyn Write,
    values: &[T],
    encode: impl Fn(T) -> [u8; N],
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(8192 * N);
    for block in values.chunks(8192) {
        buf.clear();
        for &v in block {
            buf.extend_from_slice(&encode(v));
        }
        out.write_all(&buf)?;
    }
    Ok(())
}

fn check_matrix(path: &Path, len: usize, rows: usize, dim: usize) -> Result<()> {
    if rows.checked_mul(dim) != Some(len) {
        return Err(Error::InvalidArgument(format!(
            "cannot write {}: {len} values do not form a {rows} x {dim} matrix",
            path.display()
        )));
    }
    Ok(())
}

/// Writes a 2-D float32 (`<f4`) `.npy` file of `rows` × `dim`, C order.
pub fn write_npy_f32(path: impl AsRef<Path>, data: &[f32], rows: usize, dim: usize) -> Result<()> {
    let path = path.as_ref();
    check_matrix(path, data.len(), rows, dim)?;
    write_npy(path, "<f4", &[rows, dim], |out| {
        write_le(out, data, f32::to_le_bytes)
    })
}

/// Writes a 2-D uint8 (`|u1`) `.npy` file of `rows` × `dim`, C order.
pub fn write_npy_u8(path: impl AsRef<Path>, data: &[u8], rows: usize, dim: usize) -> Result<()> {
    let path = path.as_ref();
    check_matrix(path, data.len(), rows, dim)?;
    write_npy(path, "|u1", &[rows, dim], |out| out.write_all(data))
}

/// Writes a 1-D int64 (`<i8`) `.npy` file.
pub fn write_npy_i64(path: impl AsRef<Path>, data: &[i64]) -> Result<()> {
    write_npy(path.as_ref(), "<i8", &[data.len()], |out| {
        write_le(out, data, i64::to_le_bytes)
    })
}

/// Writes a 1-D uint64 (`<u8`) `.npy` file.
pub fn write_npy_u64(path: impl AsRef<Path>, data: &[u64]) -> Result<()> {
    write_npy(path.as_ref(), "<u8", &[data.len()], |out| {
        write_le(out, data, u64::to_le_bytes)
    })
}
