//! [`SegmentWriter`]: streams declared sections into `<name>.tmp`, then writes the footer,
//! fsyncs, renames the file into place and fsyncs the directory.

use super::super::bytes::{Pod, as_bytes};
use super::super::directory::{Storage, TEMP_SUFFIX, WritableFile, validate_name};
use super::super::error::{StorageError, StorageResult};
use super::{
    HEADER_LEN, Layout, SEGMENT_END_MAGIC, SEGMENT_MAGIC, SEGMENT_VERSION, SectionSpec, check_specs,
};

/// Bytes buffered before a write reaches the file.
const BUFFER_LEN: usize = 1 << 20;

/// Writes one segment file. Declare every section (name, type, exact length) up front, then
/// [`append`](SegmentWriter::append) their contents in declaration order (a section is closed
/// as soon as it is full), then [`finish`](SegmentWriter::finish). Dropping the writer
/// before `finish` leaves only a `.tmp` file, which is never live.
pub struct SegmentWriter<'a> {
    storage: &'a dyn Storage,
    name: String,
    file: Box<dyn WritableFile>,
    specs: Vec<SectionSpec>,
    layout: Layout,
    /// Header + table bytes, kept for the footer's crc.
    meta: Vec<u8>,
    crcs: Vec<u32>,
    current: usize,
    written_in_current: u64,
    hasher: crc32fast::Hasher,
    position: u64,
    buffer: Vec<u8>,
}

impl std::fmt::Debug for SegmentWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentWriter")
            .field("name", &self.name)
            .field("current", &self.current)
            .finish()
    }
}

impl<'a> SegmentWriter<'a> {
    /// Starts writing segment `name` with the given `tag` (a free u64 for the engine, e.g.
    /// the segment id) and sections.
    pub fn create(
        storage: &'a dyn Storage,
        name: &str,
        tag: u64,
        specs: Vec<SectionSpec>,
    ) -> StorageResult<SegmentWriter<'a>> {
        validate_name(name)?;
        check_specs(&specs)?;
        let lens: Vec<u64> = specs.iter().map(|s| s.len).collect();
        let layout = Layout::compute(&lens).ok_or_else(|| {
            StorageError::InvalidArgument("segment sections too large".to_string())
        })?;
        let mut meta = Vec::with_capacity(HEADER_LEN as usize + 64 * specs.len());
        meta.extend_from_slice(&SEGMENT_MAGIC);
        meta.extend_from_slice(&SEGMENT_VERSION.to_le_bytes());
        meta.extend_from_slice(&(specs.len() as u32).to_le_bytes());
        meta.extend_from_slice(&layout.file_len.to_le_bytes());
        meta.extend_from_slice(&tag.to_le_bytes());
        meta.resize(HEADER_LEN as usize, 0);
        for (spec, &offset) in specs.iter().zip(&layout.offsets) {
            let mut name_field = [0u8; 32];
            name_field[..spec.name.len()].copy_from_slice(spec.name.as_bytes());
            meta.extend_from_slice(&name_field);
            meta.extend_from_slice(&spec.kind.code().to_le_bytes());
            meta.extend_from_slice(&0u32.to_le_bytes());
            meta.extend_from_slice(&offset.to_le_bytes());
            meta.extend_from_slice(&spec.len.to_le_bytes());
            meta.extend_from_slice(&0u64.to_le_bytes());
        }
        let file = storage.create(&format!("{name}{TEMP_SUFFIX}"))?;
        let mut writer = SegmentWriter {
            storage,
            name: name.to_string(),
            file,
            crcs: Vec::with_capacity(specs.len()),
            specs,
            layout,
            meta: Vec::new(),
            current: 0,
            written_in_current: 0,
            hasher: crc32fast::Hasher::new(),
            position: 0,
            buffer: Vec::with_capacity(BUFFER_LEN),
        };
        writer.put(&meta)?;
        writer.meta = meta;
        writer.close_full_sections()?;
        Ok(writer)
    }

    /// Appends elements to the current section; `T` must match its declared kind and the
    /// data must not run past its declared length.
    pub fn append<T: Pod>(&mut self, values: &[T]) -> StorageResult<()> {
        if let Some(spec) = self.specs.get(self.current)
            && spec.kind != T::KIND
        {
            return Err(StorageError::InvalidArgument(format!(
                "section {:?} holds {:?}, not {:?}",
                spec.name,
                spec.kind,
                T::KIND
            )));
        }
        self.append_raw(as_bytes(values))
    }

    /// Appends raw bytes to the current section whatever its element kind (the caller is
    /// responsible for their encoding: little-endian elements).
    pub fn append_raw(&mut self, bytes: &[u8]) -> StorageResult<()> {
        if bytes.is_empty() {
            // Nothing to write (zero-length sections are closed automatically).
            return Ok(());
        }
        let Some(spec) = self.specs.get(self.current) else {
            return Err(StorageError::InvalidArgument(format!(
                "{}: all declared sections are already written",
                self.name
            )));
        };
        if self.written_in_current + bytes.len() as u64 > spec.len {
            return Err(StorageError::InvalidArgument(format!(
                "section {:?}: {} more bytes would exceed its declared {} bytes",
                spec.name,
                bytes.len(),
                spec.len
            )));
        }
        self.hasher.update(bytes);
        self.written_in_current += bytes.len() as u64;
        self.put(bytes)?;
        self.close_full_sections()
    }

    /// The name of the section the next `append` goes to (`None` when all are written).
    pub fn current_section(&self) -> Option<&str> {
        self.specs.get(self.current).map(|s| s.name.as_str())
    }

    /// Writes the footer, fsyncs, renames the file into place and fsyncs the directory.
    pub fn finish(mut self) -> StorageResult<()> {
        if let Some(spec) = self.specs.get(self.current) {
            return Err(StorageError::InvalidArgument(format!(
                "section {:?} has {} of its {} bytes",
                spec.name, self.written_in_current, spec.len
            )));
        }
        self.pad_to(self.layout.footer)?;
        let mut footer = Vec::new();
        for crc in &self.crcs {
            footer.extend_from_slice(&crc.to_le_bytes());
        }
        footer.resize(footer.len().next_multiple_of(8), 0);
        let mut meta_hasher = crc32fast::Hasher::new();
        meta_hasher.update(&self.meta);
        meta_hasher.update(&footer);
        footer.extend_from_slice(&meta_hasher.finalize().to_le_bytes());
        footer.extend_from_slice(&(self.specs.len() as u32).to_le_bytes());
        footer.extend_from_slice(&self.layout.file_len.to_le_bytes());
        footer.extend_from_slice(&SEGMENT_END_MAGIC);
        self.put(&footer)?;
        self.flush()?;
        if self.position != self.layout.file_len {
            return Err(StorageError::InvalidArgument(
                "segment length differs from its layout".to_string(),
            ));
        }
        self.file.sync()?;
        let temp = self.file.name().to_string();
        self.storage.rename(&temp, &self.name)?;
        self.storage.sync_dir()
    }

    /// Closes every section that is complete (zero-length ones included) and pads up to
    /// the next section's offset.
    fn close_full_sections(&mut self) -> StorageResult<()> {
        while let Some(spec) = self.specs.get(self.current) {
            if self.written_in_current < spec.len {
                if self.written_in_current == 0 {
                    self.pad_to(self.layout.offsets[self.current])?;
                }
                return Ok(());
            }
            if spec.len == 0 {
                self.pad_to(self.layout.offsets[self.current])?;
            }
            let hasher = std::mem::take(&mut self.hasher);
            self.crcs.push(hasher.finalize());
            self.current += 1;
            self.written_in_current = 0;
        }
        Ok(())
    }

    fn pad_to(&mut self, offset: u64) -> StorageResult<()> {
        if offset < self.position {
            return Err(StorageError::InvalidArgument(
                "segment writer position past the next offset".to_string(),
            ));
        }
        let zeros = [0u8; 64];
        while self.position < offset {
            let n = (offset - self.position).min(64) as usize;
            self.put(&zeros[..n])?;
        }
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> StorageResult<()> {
        self.position += bytes.len() as u64;
        if self.buffer.len() + bytes.len() > BUFFER_LEN {
            self.flush()?;
        }
        if bytes.len() >= BUFFER_LEN {
            return self.file.write_all(bytes);
        }
        self.buffer.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> StorageResult<()> {
        if !self.buffer.is_empty() {
            self.file.write_all(&self.buffer)?;
            self.buffer.clear();
        }
        Ok(())
    }
}

/// Writes a whole segment from in-memory sections (each `(spec, bytes)`; the bytes must be
/// exactly `spec.len` long, little-endian elements of `spec.kind`).
pub fn write_segment(
    storage: &dyn Storage,
    name: &str,
    tag: u64,
    sections: &[(SectionSpec, &[u8])],
) -> StorageResult<()> {
    for (spec, bytes) in sections {
        if spec.len != bytes.len() as u64 {
            return Err(StorageError::InvalidArgument(format!(
                "section {:?}: {} bytes given, {} declared",
                spec.name,
                bytes.len(),
                spec.len
            )));
        }
    }
    let specs: Vec<SectionSpec> = sections.iter().map(|(s, _)| s.clone()).collect();
    let mut writer = SegmentWriter::create(storage, name, tag, specs)?;
    for (_, bytes) in sections {
        writer.append_raw(bytes)?;
    }
    writer.finish()
}
