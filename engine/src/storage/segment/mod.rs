//! Segment containers: immutable files of named, typed, 64-byte aligned sections.
//!
//! ```text
//! header (64 B) | section table (64 B per section) | section 0 | pad | section 1 | ... | footer
//! ```
//! The footer holds one crc32 per section, then a trailer with a crc32 over header, table
//! and crc array, the section count, the file length and a closing magic. The layout is
//! canonical: every offset follows from the section lengths, so the opener recomputes it
//! and rejects any file that differs. `docs/format.md` has the byte-level specification.
//!
//! [`SegmentWriter`] streams sections into a temp file and publishes it atomically;
//! [`Segment`] maps a file, validates its structure before any access and hands out
//! zero-copy typed slices.

mod reader;
mod writer;

pub use reader::{SectionInfo, Segment};
pub use writer::{SegmentWriter, write_segment};

use super::bytes::{ElementKind, Pod};
use super::error::{StorageError, StorageResult};

/// Magic at the start of a segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"VLDB-SEG";
/// Magic at the very end of a segment file.
pub const SEGMENT_END_MAGIC: [u8; 8] = *b"VLDB-END";
/// The segment format version this build writes and reads.
pub const SEGMENT_VERSION: u32 = 1;
/// Size of the header.
pub const HEADER_LEN: u64 = 64;
/// Size of one section-table entry.
pub const TABLE_ENTRY_LEN: u64 = 64;
/// Size of the trailer at the end of the footer.
pub const TRAILER_LEN: u64 = 24;
/// Alignment of every section's first byte (relative to the file start).
pub const SECTION_ALIGN: u64 = 64;
/// Longest section name in bytes.
pub const MAX_NAME_LEN: usize = 32;
/// Most sections a segment may have.
pub const MAX_SECTIONS: u32 = 4096;

/// A section to be written: its name, element type and exact length in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionSpec {
    pub name: String,
    pub kind: ElementKind,
    pub len: u64,
}

impl SectionSpec {
    /// A section of `count` elements of type `T`.
    pub fn of<T: Pod>(name: &str, count: u64) -> SectionSpec {
        SectionSpec {
            name: name.to_string(),
            kind: T::KIND,
            len: count.saturating_mul(T::KIND.size() as u64),
        }
    }
}

/// Checks a section name: 1..=32 bytes of UTF-8 without NUL.
pub(crate) fn check_section_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.contains('\0') {
        return Err(format!(
            "section name {name:?} must be 1 to {MAX_NAME_LEN} bytes without NUL"
        ));
    }
    Ok(())
}

/// Rounds `x` up to a multiple of `align` (a power of two); `None` on overflow.
pub(crate) fn align_up(x: u64, align: u64) -> Option<u64> {
    Some(x.checked_add(align - 1)? & !(align - 1))
}

/// Where everything goes for a given list of section lengths.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Offset of each section.
    pub offsets: Vec<u64>,
    /// Offset of the crc array (the footer).
    pub footer: u64,
    /// Total file length.
    pub file_len: u64,
}

impl Layout {
    /// The canonical layout for sections of `lens` bytes; `None` if it overflows u64.
    pub fn compute(lens: &[u64]) -> Option<Layout> {
        let count = lens.len() as u64;
        let mut pos = HEADER_LEN.checked_add(count.checked_mul(TABLE_ENTRY_LEN)?)?;
        let mut offsets = Vec::with_capacity(lens.len());
        for &len in lens {
            pos = align_up(pos, SECTION_ALIGN)?;
            offsets.push(pos);
            pos = pos.checked_add(len)?;
        }
        let footer = align_up(pos, 8)?;
        let crc_bytes = align_up(count.checked_mul(4)?, 8)?;
        let file_len = footer.checked_add(crc_bytes)?.checked_add(TRAILER_LEN)?;
        Some(Layout {
            offsets,
            footer,
            file_len,
        })
    }
}

/// Checks the specs the writer is given (names, uniqueness, whole elements, count).
pub(crate) fn check_specs(specs: &[SectionSpec]) -> StorageResult<()> {
    if specs.len() > MAX_SECTIONS as usize {
        return Err(StorageError::InvalidArgument(format!(
            "{} sections; at most {MAX_SECTIONS} are allowed",
            specs.len()
        )));
    }
    for (i, spec) in specs.iter().enumerate() {
        check_section_name(&spec.name).map_err(StorageError::InvalidArgument)?;
        if specs[..i].iter().any(|s| s.name == spec.name) {
            return Err(StorageError::InvalidArgument(format!(
                "section {:?} declared twice",
                spec.name
            )));
        }
        if spec.len % spec.kind.size() as u64 != 0 {
            return Err(StorageError::InvalidArgument(format!(
                "section {:?}: {} bytes is not a whole number of {:?} elements",
                spec.name, spec.len, spec.kind
            )));
        }
    }
    Ok(())
}
