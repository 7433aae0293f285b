//! Segment files as the database uses them: which sections a segment has, writing an
//! [`OwnedPart`] to a new immutable file, and [`SegmentHandle`], an open, validated,
//! memory-mapped segment with its tombstones.
//!
//! Sections (all little-endian, 64-byte aligned, crc32 each; container layout in
//! `docs/format.md`): `list_offsets` u64 [nlist + 1], `codes` u8 [rows × code_size],
//! `ids` u64 [rows], `sorted_ids` u64 [rows], `sorted_rows` u64 [rows], and optionally
//! `vectors` f32 [rows × dim] (`,RFlat`) or `vectors_f16` u16 [rows × dim] (`,RF16`),
//! `name_offsets` u64 [rows + 1] + `names` u8. The codes section holds every list's codes
//! in the model's [`ListLayout`] (row codes, or fast-scan blocks), list after list; the
//! byte offset of each list is derived from `list_offsets` at open.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use vladdb_codecs::index::ListLayout;

use super::part::{Exclusions, OwnedPart, OwnedVectors, PartView, StoredVectors};
use crate::error::{Error, Result};
use crate::storage::{
    SectionSpec, Segment, SegmentEntry, SharedStorage, Storage, Tombstones, write_segment,
};

/// Writes `part` as the new segment file `name` (tag = segment id), durably.
pub fn write_part(
    storage: &dyn Storage,
    name: &str,
    segment_id: u64,
    part: &OwnedPart,
) -> Result<()> {
    let rows = part.ids.len() as u64;
    let mut sections: Vec<(SectionSpec, &[u8])> = vec![
        (
            SectionSpec::of::<u64>("list_offsets", part.list_offsets.len() as u64),
            bytes_of(&part.list_offsets),
        ),
        (
            SectionSpec::of::<u8>("codes", part.codes.len() as u64),
            &part.codes,
        ),
        (SectionSpec::of::<u64>("ids", rows), bytes_of(&part.ids)),
        (
            SectionSpec::of::<u64>("sorted_ids", rows),
            bytes_of(&part.sorted_ids),
        ),
        (
            SectionSpec::of::<u64>("sorted_rows", rows),
            bytes_of(&part.sorted_rows),
        ),
    ];
    match &part.vectors {
        Some(OwnedVectors::F32(v)) => sections.push((
            SectionSpec::of::<f32>("vectors", v.len() as u64),
            bytes_of(v),
        )),
        Some(OwnedVectors::F16(v)) => sections.push((
            SectionSpec::of::<u16>("vectors_f16", v.len() as u64),
            bytes_of(v),
        )),
        None => {}
    }
    if let (Some(offsets), Some(names)) = (&part.name_offsets, &part.names) {
        sections.push((
            SectionSpec::of::<u64>("name_offsets", offsets.len() as u64),
            bytes_of(offsets),
        ));
        sections.push((SectionSpec::of::<u8>("names", names.len() as u64), names));
    }
    write_segment(storage, name, segment_id, &sections)?;
    Ok(())
}

fn bytes_of<T: crate::storage::Pod>(values: &[T]) -> &[u8] {
    crate::storage::bytes::as_bytes(values)
}

/// An open segment: the mapped file, its validated shape, and the rows deleted from it.
#[derive(Debug)]
pub struct SegmentHandle {
    pub entry: SegmentEntry,
    segment: Segment,
    layout: ListLayout,
    /// Byte offset of every list's codes (derived from the list offsets).
    code_offsets: Vec<u64>,
    tombstones: Option<Tombstones>,
    excluded: Option<Exclusions>,
    /// The deleted rows as a set (the re-rank scan pushes rows, not ids).
    excluded_rows: Option<Exclusions>,
    storage: SharedStorage,
    /// Set when a compaction replaced this segment: the file goes when the last snapshot
    /// holding it is dropped.
    obsolete: AtomicBool,
}

impl SegmentHandle {
    /// Opens segment `entry` and checks every structural invariant that costs O(nlist):
    /// section presence and types, lengths consistent with the row count and the model,
    /// list offsets monotone and ending at the row count. With `verify`, also every crc and
    /// the O(rows) invariants (sorted id index, names).
    pub fn open(
        storage: SharedStorage,
        entry: SegmentEntry,
        nlist: usize,
        layout: ListLayout,
        dim: usize,
        verify: bool,
    ) -> Result<SegmentHandle> {
        let segment = Segment::open(storage.as_ref(), &entry.file, verify)?;
        let path = segment.path().to_path_buf();
        let corrupt = |reason: String| Error::Corrupt {
            path: path.clone(),
            reason,
        };
        if segment.tag() != entry.id {
            return Err(corrupt(format!(
                "segment id {} in the file, {} in the manifest",
                segment.tag(),
                entry.id
            )));
        }
        let rows = entry.rows as usize;
        let offsets = segment.typed::<u64>("list_offsets")?;
        if offsets.len() != nlist + 1 {
            return Err(corrupt(format!(
                "{} list offsets for {nlist} lists",
                offsets.len()
            )));
        }
        if offsets.first() != Some(&0)
            || offsets.windows(2).any(|w| w[0] > w[1])
            || offsets.last() != Some(&(rows as u64))
        {
            return Err(corrupt(
                "list offsets are not a partition of the rows".into(),
            ));
        }
        let expect = |name: &str, got: usize, want: usize| -> Result<()> {
            if got != want {
                return Err(corrupt(format!(
                    "section {name} has {got} elements, expected {want}"
                )));
            }
            Ok(())
        };
        let code_offsets = layout.byte_offsets(offsets);
        expect(
            "codes",
            segment.typed::<u8>("codes")?.len(),
            code_offsets.last().copied().unwrap_or(0) as usize,
        )?;
        expect("ids", segment.typed::<u64>("ids")?.len(), rows)?;
        expect(
            "sorted_ids",
            segment.typed::<u64>("sorted_ids")?.len(),
            rows,
        )?;
        expect(
            "sorted_rows",
            segment.typed::<u64>("sorted_rows")?.len(),
            rows,
        )?;
        if segment.section("vectors").is_some() {
            expect(
                "vectors",
                segment.typed::<f32>("vectors")?.len(),
                rows * dim,
            )?;
        }
        if segment.section("vectors_f16").is_some() {
            expect(
                "vectors_f16",
                segment.typed::<u16>("vectors_f16")?.len(),
                rows * dim,
            )?;
        }
        match (segment.section("name_offsets"), segment.section("names")) {
            (None, None) => {}
            (Some(_), Some(_)) => {
                let no = segment.typed::<u64>("name_offsets")?;
                expect("name_offsets", no.len(), rows + 1)?;
                let total = segment.typed::<u8>("names")?.len() as u64;
                if no.first() != Some(&0) || no.last() != Some(&total) {
                    return Err(corrupt("name offsets do not span the names section".into()));
                }
            }
            _ => {
                return Err(corrupt(
                    "names without name offsets (or the reverse)".into(),
                ));
            }
        }
        let mut handle = SegmentHandle {
            entry,
            segment,
            layout,
            code_offsets,
            tombstones: None,
            excluded: None,
            excluded_rows: None,
            storage: storage.clone(),
            obsolete: AtomicBool::new(false),
        };
        if verify {
            handle.verify_rows()?;
        }
        if let Some(file) = handle.entry.deletes_file.clone() {
            let t = Tombstones::load(storage.as_ref(), &file, handle.entry.id, handle.entry.rows)?;
            if t.deleted() != handle.entry.deleted {
                return Err(Error::Corrupt {
                    path: storage.path_of(&file),
                    reason: format!(
                        "{} rows deleted in the file, {} in the manifest",
                        t.deleted(),
                        handle.entry.deleted
                    ),
                });
            }
            handle.set_tombstones(t);
        }
        Ok(handle)
    }

    /// The O(rows) checks of `verify`: the id index is a sorted permutation of the ids,
    /// names are UTF-8 with monotone offsets.
    fn verify_rows(&self) -> Result<()> {
        let v = self.view();
        let corrupt = |reason: &str| Error::Corrupt {
            path: self.segment.path().to_path_buf(),
            reason: reason.to_string(),
        };
        if v.sorted_ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err(corrupt("sorted_ids is not strictly increasing"));
        }
        let mut seen = vec![false; v.rows()];
        for (&id, &row) in v.sorted_ids.iter().zip(v.sorted_rows) {
            let row = row as usize;
            if row >= v.rows() || seen[row] || v.ids[row] != id {
                return Err(corrupt("sorted_rows does not index the ids"));
            }
            seen[row] = true;
        }
        if let (Some(no), Some(names)) = (v.name_offsets, v.names)
            && (no.windows(2).any(|w| w[0] > w[1]) || std::str::from_utf8(names).is_err())
        {
            return Err(corrupt("names are not valid UTF-8 with monotone offsets"));
        }
        Ok(())
    }

    /// Checks every section crc (the segment container's verify).
    pub fn verify_checksums(&self) -> Result<()> {
        self.segment.verify()?;
        self.verify_rows()
    }

    /// The zero-copy view of the mapped arrays.
    pub fn view(&self) -> PartView<'_> {
        let s = &self.segment;
        let vectors = match s.typed::<f32>("vectors") {
            Ok(v) => Some(StoredVectors::F32(v)),
            Err(_) => s.typed::<u16>("vectors_f16").ok().map(StoredVectors::F16),
        };
        PartView {
            list_offsets: s.typed::<u64>("list_offsets").unwrap_or_default(),
            code_offsets: &self.code_offsets,
            codes: s.typed::<u8>("codes").unwrap_or_default(),
            ids: s.typed::<u64>("ids").unwrap_or_default(),
            sorted_ids: s.typed::<u64>("sorted_ids").unwrap_or_default(),
            sorted_rows: s.typed::<u64>("sorted_rows").unwrap_or_default(),
            vectors,
            name_offsets: s.typed::<u64>("name_offsets").ok(),
            names: s.typed::<u8>("names").ok(),
            layout: self.layout,
        }
    }

    /// Rows deleted from this segment, if any.
    pub fn tombstones(&self) -> Option<&Tombstones> {
        self.tombstones.as_ref()
    }

    /// Ids of deleted rows (for the scan filter).
    pub fn excluded(&self) -> Option<&Exclusions> {
        self.excluded.as_ref()
    }

    /// Row numbers of deleted rows (for the re-rank scan).
    pub fn excluded_rows(&self) -> Option<&Exclusions> {
        self.excluded_rows.as_ref()
    }

    /// True when `row` is deleted.
    pub fn is_deleted(&self, row: usize) -> bool {
        self.tombstones
            .as_ref()
            .is_some_and(|t| t.contains(row as u64))
    }

    /// Live rows.
    pub fn live_rows(&self) -> u64 {
        self.entry.rows - self.tombstones.as_ref().map_or(0, |t| t.deleted())
    }

    /// Installs a tombstone set (and derives the excluded-id set from it).
    pub fn set_tombstones(&mut self, t: Tombstones) {
        let ids = self.view().ids;
        let rows: HashSet<u64> = (0..ids.len() as u64)
            .filter(|&row| t.contains(row))
            .collect();
        let excluded: HashSet<u64> = rows.iter().map(|&row| ids[row as usize]).collect();
        self.excluded = (!excluded.is_empty()).then(|| Arc::new(excluded));
        self.excluded_rows = (!rows.is_empty()).then(|| Arc::new(rows));
        self.tombstones = Some(t);
    }

    /// A copy of this handle sharing the mapping, with other tombstones (deletes are
    /// copy-on-write: snapshots keep the handle they started with).
    pub fn with_tombstones(&self, entry: SegmentEntry, t: Tombstones) -> SegmentHandle {
        let mut h = SegmentHandle {
            entry,
            segment: self.segment.clone(),
            layout: self.layout,
            code_offsets: self.code_offsets.clone(),
            tombstones: None,
            excluded: None,
            excluded_rows: None,
            storage: self.storage.clone(),
            obsolete: AtomicBool::new(false),
        };
        h.set_tombstones(t);
        h
    }

    /// Bytes of the segment file.
    pub fn file_len(&self) -> u64 {
        self.segment.file_len()
    }

    /// Marks the file for removal once no snapshot holds this handle.
    pub fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::SeqCst);
    }
}

impl Drop for SegmentHandle {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::SeqCst) {
            // Best effort: a leftover file is not live (the manifest no longer names it)
            // and is removed by the next open's clean-up.
            let _ = self.storage.remove(&self.entry.file);
            if let Some(d) = &self.entry.deletes_file {
                let _ = self.storage.remove(d);
            }
        }
    }
}
