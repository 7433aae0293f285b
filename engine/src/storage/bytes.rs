//! Read-only file contents ([`FileBytes`]: a memory map or a 64-byte aligned heap buffer),
//! zero-copy typed views of them ([`Pod`], [`cast_slice`]) and a bounds-checked
//! little-endian reader ([`LeReader`]) used by every parser in the storage layer.

use std::fmt;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;

use super::error::{StorageError, StorageResult};

/// One 64-byte aligned block of a heap buffer.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Block([u8; 64]);

/// A heap buffer whose first byte is 64-byte aligned, like a page-aligned mapping.
struct AlignedBuf {
    blocks: Vec<Block>,
    len: usize,
}

impl AlignedBuf {
    fn from_slice(data: &[u8]) -> AlignedBuf {
        let mut blocks = vec![Block([0; 64]); data.len().div_ceil(64)];
        for (block, chunk) in blocks.iter_mut().zip(data.chunks(64)) {
            block.0[..chunk.len()].copy_from_slice(chunk);
        }
        AlignedBuf {
            blocks,
            len: data.len(),
        }
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: `blocks` is a contiguous allocation of `blocks.len() * 64` initialised
        // bytes (Block is repr(C) around [u8; 64], so it has no padding) and
        // `len <= blocks.len() * 64` by construction; the borrow ties the slice to `self`.
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr().cast::<u8>(), self.len) }
    }
}

enum Repr {
    Empty,
    Map(Mmap),
    Heap(AlignedBuf),
}

/// The immutable contents of a file: cheap to clone (an `Arc`), dereferences to `&[u8]`,
/// and always starts at a 64-byte aligned address (a page for a mapping), so sections at
/// 64-byte aligned offsets can be viewed as `&[u64]`, `&[f32]`, ... without copying.
#[derive(Clone)]
pub struct FileBytes {
    repr: Arc<Repr>,
}

impl FileBytes {
    /// Wraps a read-only memory map. The caller must only map files that are never modified
    /// or truncated while mapped (the storage layer's files are immutable once published).
    pub fn from_mmap(map: Mmap) -> FileBytes {
        FileBytes {
            repr: Arc::new(Repr::Map(map)),
        }
    }

    /// Copies `data` into a 64-byte aligned heap buffer.
    pub fn copy_from(data: &[u8]) -> FileBytes {
        let repr = if data.is_empty() {
            Repr::Empty
        } else {
            Repr::Heap(AlignedBuf::from_slice(data))
        };
        FileBytes {
            repr: Arc::new(repr),
        }
    }

    /// True when the bytes come from a memory map (not copied onto the heap).
    pub fn is_mapped(&self) -> bool {
        matches!(*self.repr, Repr::Map(_))
    }
}

impl Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &*self.repr {
            Repr::Empty => &[],
            Repr::Map(map) => map,
            Repr::Heap(buf) => buf.as_slice(),
        }
    }
}

impl fmt::Debug for FileBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileBytes")
            .field("len", &self.len())
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

mod sealed {
    pub trait Sealed {}
}

/// Plain element types that may be viewed in place inside a file: every bit pattern is a
/// valid value, there is no padding, and the on-disk order is little-endian.
pub trait Pod: sealed::Sealed + Copy + 'static {
    /// The element kind recorded in a segment's section table for this type.
    const KIND: ElementKind;
}

macro_rules! impl_pod {
    ($($t:ty => $kind:ident),*) => {$(
        impl sealed::Sealed for $t {}
        impl Pod for $t {
            const KIND: ElementKind = ElementKind::$kind;
        }
    )*};
}
impl_pod!(u8 => U8, u16 => U16, u32 => U32, u64 => U64, i32 => I32, f32 => F32);

/// The element type of a segment section, stored as a `u32` code in the section table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElementKind {
    U8,
    U16,
    U32,
    U64,
    I32,
    F32,
}

impl ElementKind {
    /// The code stored on disk.
    pub fn code(self) -> u32 {
        match self {
            ElementKind::U8 => 1,
            ElementKind::U16 => 2,
            ElementKind::U32 => 3,
            ElementKind::U64 => 4,
            ElementKind::I32 => 5,
            ElementKind::F32 => 6,
        }
    }

    /// The kind for an on-disk code, `None` for an unknown code.
    pub fn from_code(code: u32) -> Option<ElementKind> {
        Some(match code {
            1 => ElementKind::U8,
            2 => ElementKind::U16,
            3 => ElementKind::U32,
            4 => ElementKind::U64,
            5 => ElementKind::I32,
            6 => ElementKind::F32,
            _ => return None,
        })
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            ElementKind::U8 => 1,
            ElementKind::U16 => 2,
            ElementKind::U32 | ElementKind::I32 | ElementKind::F32 => 4,
            ElementKind::U64 => 8,
        }
    }
}

/// Views `bytes` as a slice of `T` without copying. Fails (never panics) when the length is
/// not a multiple of the element size, the start is misaligned for `T`, or the host is not
/// little-endian (the on-disk order).
pub fn cast_slice<'a, T: Pod>(bytes: &'a [u8], path: &Path, what: &str) -> StorageResult<&'a [T]> {
    let size = std::mem::size_of::<T>();
    if !cfg!(target_endian = "little") {
        return Err(StorageError::InvalidArgument(format!(
            "{}: {what}: zero-copy access needs a little-endian host",
            path.display()
        )));
    }
    if !bytes.len().is_multiple_of(size) {
        return Err(StorageError::corrupt(
            path,
            format!(
                "{what}: {} bytes is not a whole number of {size}-byte elements",
                bytes.len()
            ),
        ));
    }
    if !(bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(StorageError::corrupt(
            path,
            format!("{what}: data is not aligned for {size}-byte elements"),
        ));
    }
    // SAFETY: `T: Pod` is a sealed set of primitive types for which every bit pattern is
    // valid and which have no padding; the pointer is non-null (it comes from a slice),
    // aligned for `T` (checked above) and `bytes.len() / size` elements cover exactly the
    // initialised bytes of `bytes` (length checked above); the result borrows `bytes`, so it
    // cannot outlive the underlying buffer, which is never written while borrowed.
    Ok(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), bytes.len() / size) })
}

/// Views a slice of `T` as its raw (little-endian on the supported hosts) bytes.
pub fn as_bytes<T: Pod>(values: &[T]) -> &[u8] {
    // SAFETY: `T: Pod` has no padding and no invalid bit patterns, so every byte of the
    // slice is initialised; `u8` has alignment 1; the length is the slice's size in bytes,
    // and the result borrows `values`.
    unsafe {
        std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values))
    }
}

/// A bounds-checked little-endian reader over a byte slice. Every read that would run past
/// the end returns [`StorageError::Corrupt`] naming `path` and `what` was being read.
pub struct LeReader<'a> {
    data: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> LeReader<'a> {
    pub fn new(data: &'a [u8], path: &'a Path) -> LeReader<'a> {
        LeReader { data, pos: 0, path }
    }

    /// Current offset from the start of the slice.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left after the current position.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize, what: &str) -> StorageResult<&'a [u8]> {
        if n > self.remaining() {
            return Err(StorageError::corrupt(
                self.path,
                format!(
                    "truncated {what}: needs {n} bytes at offset {}, {} left",
                    self.pos,
                    self.remaining()
                ),
            ));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn array<const N: usize>(&mut self, what: &str) -> StorageResult<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, what)?);
        Ok(out)
    }

    pub fn u8(&mut self, what: &str) -> StorageResult<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn u32(&mut self, what: &str) -> StorageResult<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub fn u64(&mut self, what: &str) -> StorageResult<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
}
