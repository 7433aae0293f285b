//! [`Segment`]: an opened segment file. Opening validates the header, the section table,
//! the canonical layout (bounds, alignment, file length) and the header/table/footer crc
//! before any section is touched; [`Segment::verify`] also checks every section's crc.

use std::path::{Path, PathBuf};

use super::super::bytes::{ElementKind, FileBytes, LeReader, Pod, cast_slice};
use super::super::directory::Storage;
use super::super::error::{StorageError, StorageResult};
use super::{
    HEADER_LEN, Layout, MAX_SECTIONS, SEGMENT_END_MAGIC, SEGMENT_MAGIC, SEGMENT_VERSION,
    TABLE_ENTRY_LEN, TRAILER_LEN, check_section_name,
};

/// One section as described by the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionInfo {
    pub name: String,
    pub kind: ElementKind,
    /// Byte offset from the start of the file (a multiple of 64).
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// crc32 of the section's bytes.
    pub crc: u32,
}

impl SectionInfo {
    /// Number of elements.
    pub fn count(&self) -> u64 {
        self.len / self.kind.size() as u64
    }
}

/// An open, structurally validated segment file (usually memory-mapped).
#[derive(Clone, Debug)]
pub struct Segment {
    bytes: FileBytes,
    path: PathBuf,
    tag: u64,
    sections: Vec<SectionInfo>,
}

impl Segment {
    /// Opens segment `name`: checks the length, maps the file, validates its structure and,
    /// when `verify` is true, every section crc.
    pub fn open(storage: &dyn Storage, name: &str, verify: bool) -> StorageResult<Segment> {
        let path = storage.path_of(name);
        let len = storage.file_len(name)?;
        if len < HEADER_LEN + TRAILER_LEN {
            return Err(StorageError::corrupt(
                &path,
                format!("{len} bytes is too short for a segment"),
            ));
        }
        let segment = Segment::from_bytes(storage.map(name)?, path)?;
        if verify {
            segment.verify()?;
        }
        Ok(segment)
    }

    /// Validates the structure of a segment held in `bytes` (`path` names it in errors).
    /// Section crcs are not checked here; see [`Segment::verify`].
    pub fn from_bytes(bytes: FileBytes, path: PathBuf) -> StorageResult<Segment> {
        let (tag, sections) = parse(&bytes, &path)?;
        Ok(Segment {
            bytes,
            path,
            tag,
            sections,
        })
    }

    /// Checks every section's crc32; the first mismatch is an error naming the section.
    /// Also checks that all padding between sections is zero, so that no byte of the file
    /// can change unnoticed.
    pub fn verify(&self) -> StorageResult<()> {
        let mut covered = HEADER_LEN + self.sections.len() as u64 * TABLE_ENTRY_LEN;
        for s in &self.sections {
            let gap = &self.bytes[covered as usize..s.offset as usize];
            if gap.iter().any(|&b| b != 0) {
                return Err(StorageError::corrupt(
                    &self.path,
                    format!("non-zero padding before section {:?}", s.name),
                ));
            }
            covered = s.offset + s.len;
        }
        let footer = covered.next_multiple_of(8) as usize;
        if self.bytes[covered as usize..footer].iter().any(|&b| b != 0) {
            return Err(StorageError::corrupt(
                &self.path,
                "non-zero padding before the footer",
            ));
        }
        for s in &self.sections {
            if crc32fast::hash(self.raw(s)) != s.crc {
                return Err(StorageError::corrupt(
                    &self.path,
                    format!("section {:?} checksum mismatch", s.name),
                ));
            }
        }
        Ok(())
    }

    /// The tag given to the writer.
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Total file length in bytes.
    pub fn file_len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// True when the file is memory-mapped (not copied onto the heap).
    pub fn is_mapped(&self) -> bool {
        self.bytes.is_mapped()
    }

    /// All sections, in file order.
    pub fn sections(&self) -> &[SectionInfo] {
        &self.sections
    }

    /// The section called `name`.
    pub fn section(&self, name: &str) -> Option<&SectionInfo> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The raw bytes of section `name` (an error if there is no such section).
    pub fn bytes_of(&self, name: &str) -> StorageResult<&[u8]> {
        Ok(self.raw(self.require(name)?))
    }

    /// Section `name` as a zero-copy slice of `T`; its declared kind must be `T`'s.
    pub fn typed<T: Pod>(&self, name: &str) -> StorageResult<&[T]> {
        let info = self.require(name)?;
        if info.kind != T::KIND {
            return Err(StorageError::corrupt(
                &self.path,
                format!(
                    "section {name:?} holds {:?}, {:?} was expected",
                    info.kind,
                    T::KIND
                ),
            ));
        }
        cast_slice(self.raw(info), &self.path, name)
    }

    fn require(&self, name: &str) -> StorageResult<&SectionInfo> {
        self.section(name)
            .ok_or_else(|| StorageError::corrupt(&self.path, format!("missing section {name:?}")))
    }

    fn raw(&self, info: &SectionInfo) -> &[u8] {
        // Offsets and lengths were checked against the file length in `parse`.
        let start = info.offset as usize;
        &self.bytes[start..start + info.len as usize]
    }
}

/// Validates header, table, layout and trailer; returns the tag and the sections.
fn parse(bytes: &[u8], path: &Path) -> StorageResult<(u64, Vec<SectionInfo>)> {
    let corrupt = |reason: String| StorageError::corrupt(path, reason);
    let file_len = bytes.len() as u64;
    if file_len < HEADER_LEN + TRAILER_LEN {
        return Err(corrupt(format!(
            "{file_len} bytes is too short for a segment"
        )));
    }
    let mut r = LeReader::new(bytes, path);
    if r.array::<8>("segment header")? != SEGMENT_MAGIC {
        return Err(corrupt("bad magic: not a vladdb segment".to_string()));
    }
    let version = r.u32("segment header")?;
    let count = r.u32("segment header")?;
    let declared_len = r.u64("segment header")?;
    let tag = r.u64("segment header")?;
    let trailer_at = (file_len - TRAILER_LEN) as usize;
    let mut t = LeReader::new(&bytes[trailer_at..], path);
    let meta_crc = t.u32("segment trailer")?;
    let trailer_count = t.u32("segment trailer")?;
    let trailer_len = t.u64("segment trailer")?;
    if t.array::<8>("segment trailer")? != SEGMENT_END_MAGIC {
        return Err(corrupt(
            "bad end magic: truncated or not a vladdb segment".to_string(),
        ));
    }
    if version != SEGMENT_VERSION {
        return Err(StorageError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: SEGMENT_VERSION,
        });
    }
    if declared_len != file_len || trailer_len != file_len {
        return Err(corrupt(format!(
            "file is {file_len} bytes, header says {declared_len}, footer says {trailer_len}"
        )));
    }
    if count != trailer_count || count > MAX_SECTIONS {
        return Err(corrupt(format!(
            "section count {count} (footer: {trailer_count}, limit {MAX_SECTIONS})"
        )));
    }
    if bytes[32..HEADER_LEN as usize].iter().any(|&b| b != 0) {
        return Err(corrupt("reserved header bytes are not zero".to_string()));
    }
    let table_end = HEADER_LEN + count as u64 * TABLE_ENTRY_LEN;
    if table_end > file_len - TRAILER_LEN {
        return Err(corrupt(format!(
            "section table of {count} entries runs past the end"
        )));
    }
    // Read the table entries (offsets checked against the canonical layout below).
    let mut entries = Vec::with_capacity(count as usize);
    let mut r = LeReader::new(&bytes[HEADER_LEN as usize..table_end as usize], path);
    for i in 0..count {
        let raw_name = r.array::<32>("section table")?;
        let kind_code = r.u32("section table")?;
        let reserved = r.u32("section table")?;
        let offset = r.u64("section table")?;
        let len = r.u64("section table")?;
        let reserved2 = r.u64("section table")?;
        let name_len = raw_name.iter().position(|&b| b == 0).unwrap_or(32);
        if raw_name[name_len..].iter().any(|&b| b != 0) || reserved != 0 || reserved2 != 0 {
            return Err(corrupt(format!("section table entry {i} has stray bytes")));
        }
        let name = std::str::from_utf8(&raw_name[..name_len])
            .map_err(|_| corrupt(format!("section {i} name is not UTF-8")))?
            .to_string();
        check_section_name(&name).map_err(|e| corrupt(format!("section {i}: {e}")))?;
        let kind = ElementKind::from_code(kind_code)
            .ok_or_else(|| corrupt(format!("section {name:?} has unknown kind {kind_code}")))?;
        if len % kind.size() as u64 != 0 {
            return Err(corrupt(format!(
                "section {name:?}: {len} bytes is not a whole number of {kind:?}"
            )));
        }
        if entries.iter().any(|(n, ..): &(String, _, _, _)| *n == name) {
            return Err(corrupt(format!("section {name:?} appears twice")));
        }
        entries.push((name, kind, offset, len));
    }
    let lens: Vec<u64> = entries.iter().map(|e| e.3).collect();
    let layout =
        Layout::compute(&lens).ok_or_else(|| corrupt("section lengths overflow".to_string()))?;
    if layout.file_len != file_len {
        return Err(corrupt(format!(
            "section lengths imply a {}-byte file, it has {file_len} bytes",
            layout.file_len
        )));
    }
    for ((name, _, offset, _), expected) in entries.iter().zip(&layout.offsets) {
        if offset != expected {
            return Err(corrupt(format!(
                "section {name:?} at offset {offset}, expected {expected}"
            )));
        }
    }
    // Footer: one crc per section (padded to 8 bytes), then the trailer.
    let crc_bytes = &bytes[layout.footer as usize..trailer_at];
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&bytes[..table_end as usize]);
    hasher.update(crc_bytes);
    if hasher.finalize() != meta_crc {
        return Err(corrupt(
            "header/section table checksum mismatch".to_string(),
        ));
    }
    let mut c = LeReader::new(crc_bytes, path);
    let mut sections = Vec::with_capacity(entries.len());
    for (name, kind, offset, len) in entries {
        let crc = c.u32("section checksums")?;
        sections.push(SectionInfo {
            name,
            kind,
            offset,
            len,
            crc,
        });
    }
    Ok((tag, sections))
}
