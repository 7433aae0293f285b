//! The write path: train, add, delete, upsert, commit (flush the buffer to a segment and
//! materialise deletes), and compaction (merge segments, drop deleted rows, no re-encoding).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use vladdb_codecs::VectorsRef;
use vladdb_codecs::encode::{DescriptorSets, SetEncoder, encode_sets, non_empty_codes};
use vladdb_codecs::index::{IndexModel, Quantizer, TrainOptions};
use vladdb_codecs::spec::QuantizerSpec;

use super::model_file;
use super::part::{OwnedPart, OwnedVectors, PartView, merge_parts};
use super::segment::{SegmentHandle, write_part};
use super::{BufferChunk, Database, Snapshot, Writer};
use crate::error::{Error, Result};
use crate::storage::{SegmentEntry, Tombstones, WalRecord, WalWriter, deletes};

/// What `compact` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactReport {
    pub segments_before: usize,
    pub segments_after: usize,
    pub rows_dropped: u64,
}

impl Database {
    /// Trains the model on `data` (global vectors of the index dimension) and stores it.
    /// Fails if already trained, or if the spec starts with an encoder (use
    /// [`Database::train_sets`]).
    pub fn train(&self, data: &VectorsRef<'_>) -> Result<()> {
        self.check_writable()?;
        if self.encoder_spec.is_some() {
            return Err(Error::InvalidArgument(format!(
                "spec {} encodes descriptor sets: train it on sets (train_sets / --sets)",
                self.spec_text
            )));
        }
        let mut w = self.writer.lock();
        if self.trains_trivially() && w.manifest.model_file.is_some() {
            // `Flat` has nothing to learn: training after the first add is a no-op.
            return self.check_dim(data.dim());
        }
        self.check_untrained(&w)?;
        self.check_dim(data.dim())?;
        let model = IndexModel::train(&self.spec, self.index_dim, data, &self.train_options())?;
        self.install_model(&mut w, &model, None)
    }

    /// True for specs with nothing to learn (`Flat`, optionally `L2norm` and a refine
    /// stage; no encoder, PCA or IVF): they need no `train`, as with FAISS's flat index.
    pub(crate) fn trains_trivially(&self) -> bool {
        self.encoder_spec.is_none()
            && self.spec.pca.is_none()
            && self.spec.ivf.is_none()
            && self.spec.quantizer == QuantizerSpec::Flat
    }

    /// The model of a [`Self::trains_trivially`] spec, installed by the first add.
    pub(crate) fn trivial_model(&self) -> Result<IndexModel> {
        Ok(IndexModel::from_parts(
            &self.spec,
            self.index_dim,
            None,
            None,
            Quantizer::Flat,
            0,
        )?)
    }

    /// Trains the encoder (vocabulary, GMM, idf) on local-descriptor sets, encodes them,
    /// trains the index model on the encoded vectors, and stores both. Images without
    /// descriptors take no part in the index model's training (they are never indexed).
    pub fn train_sets(&self, sets: &DescriptorSets<'_>) -> Result<()> {
        self.check_writable()?;
        let Some(enc_spec) = &self.encoder_spec else {
            return Err(Error::InvalidArgument(format!(
                "spec {} has no encoder stage (e.g. VLAD64,...): train it on vectors",
                self.spec_text
            )));
        };
        let mut w = self.writer.lock();
        self.check_untrained(&w)?;
        if sets.dim() != self.dim {
            return Err(Error::InvalidArgument(format!(
                "descriptors of dimension {} given, the database takes {}",
                sets.dim(),
                self.dim
            )));
        }
        let opts = self.train_options();
        let encoder = enc_spec.train(sets, opts.kmeans.seed)?;
        let (encoded, empty) = encode_sets(encoder.as_ref(), sets)?;
        // Images without descriptors are never indexed (see `add_sets`), so their
        // placeholder codes stay out of the PCA, coarse quantizer and PQ training too.
        let encoded = if empty.is_empty() {
            encoded
        } else {
            non_empty_codes(&encoded, self.index_dim, sets)?
        };
        let vectors = VectorsRef::from_f32(&encoded, self.index_dim)?;
        let model = IndexModel::train(&self.spec, self.index_dim, &vectors, &opts)?;
        self.install_model(&mut w, &model, Some(encoder.as_ref()))
    }

    fn train_options(&self) -> TrainOptions {
        TrainOptions {
            precomputed_table_budget: self.options.precomputed_table_budget,
            ..TrainOptions::default()
        }
    }

    fn check_untrained(&self, w: &Writer) -> Result<()> {
        if w.manifest.model_file.is_some() {
            return Err(Error::InvalidArgument(
                "the database is already trained".into(),
            ));
        }
        Ok(())
    }

    /// Writes the model file, publishes it in the manifest, and serves it (reloaded from
    /// the file, so what is served is exactly what is stored).
    fn install_model(
        &self,
        w: &mut Writer,
        model: &IndexModel,
        encoder: Option<&dyn SetEncoder>,
    ) -> Result<()> {
        let name = format!("model-{:06}.vdbm", w.manifest.next_file_number);
        model_file::save(self.storage.as_ref(), &name, model, encoder)?;
        let mut manifest = w.manifest.clone();
        manifest.next_file_number += 1;
        manifest.model_file = Some(name.clone());
        manifest.generation += 1;
        if let Err(e) = manifest.publish(self.storage.as_ref()) {
            if !self.storage.poison().is_poisoned() {
                let _ = self.storage.remove(&name);
            }
            return Err(e.into());
        }
        w.manifest = manifest;
        let (stored, encoder) = model_file::load(self.storage.as_ref(), &name, false)?;
        let old = self.snapshot();
        self.publish_snapshot(Snapshot {
            model: Some(Arc::new(stored)),
            encoder,
            segments: old.segments.clone(),
            buffer: old.buffer.clone(),
        });
        Ok(())
    }

    /// Encodes descriptor sets (one image each) with the trained encoder and adds the
    /// global vectors under `ids` (one per image), with optional names.
    ///
    /// Images without descriptors are not stored (their all-zero vector would sit at the
    /// same distance from every query and crowd out true matches); their positions are
    /// returned so callers can report them.
    pub fn add_sets(
        &self,
        sets: &DescriptorSets<'_>,
        ids: &[u64],
        names: Option<&[String]>,
    ) -> Result<Vec<usize>> {
        if ids.len() != sets.len() {
            return Err(Error::InvalidArgument(format!(
                "{} ids for {} images",
                ids.len(),
                sets.len()
            )));
        }
        if names.is_some_and(|n| n.len() != sets.len()) {
            return Err(Error::InvalidArgument(
                "one name per image is needed".into(),
            ));
        }
        let encoded = self.encode_sets(sets)?;
        let empty: Vec<usize> = (0..sets.len()).filter(|&i| sets.count(i) == 0).collect();
        if empty.is_empty() {
            self.add(&VectorsRef::from_f32(&encoded, self.index_dim)?, ids, names)?;
            return Ok(empty);
        }
        let keep: Vec<usize> = (0..sets.len()).filter(|&i| sets.count(i) > 0).collect();
        let d = self.index_dim;
        let vectors = non_empty_codes(&encoded, d, sets)?;
        let kept_ids: Vec<u64> = keep.iter().map(|&i| ids[i]).collect();
        let kept_names: Option<Vec<String>> =
            names.map(|n| keep.iter().map(|&i| n[i].clone()).collect());
        self.add(
            &VectorsRef::from_f32(&vectors, d)?,
            &kept_ids,
            kept_names.as_deref(),
        )?;
        Ok(empty)
    }

    /// The global vectors of descriptor sets (row-major, one per image), as the database's
    /// trained encoder makes them.
    pub fn encode_sets(&self, sets: &DescriptorSets<'_>) -> Result<Vec<f32>> {
        let snap = self.snapshot();
        let Some(encoder) = &snap.encoder else {
            return Err(Error::InvalidArgument(if self.encoder_spec.is_some() {
                "the database is not trained: run train first".into()
            } else {
                format!("spec {} has no encoder stage", self.spec_text)
            }));
        };
        if sets.dim() != self.dim {
            return Err(Error::InvalidArgument(format!(
                "descriptors of dimension {} given, the database takes {}",
                sets.dim(),
                self.dim
            )));
        }
        Ok(encode_sets(encoder.as_ref(), sets)?.0)
    }

    /// Adds vectors with caller-given ids (and optional names). Fails, storing nothing, if
    /// an id repeats within the call or is already present, or on bad input. Durable when it
    /// returns.
    pub fn add(&self, data: &VectorsRef<'_>, ids: &[u64], names: Option<&[String]>) -> Result<()> {
        self.write_rows(data, ids, names, false)
    }

    /// Like [`Database::add`], but ids already present are replaced.
    pub fn upsert(
        &self,
        data: &VectorsRef<'_>,
        ids: &[u64],
        names: Option<&[String]>,
    ) -> Result<()> {
        self.write_rows(data, ids, names, true)
    }

    fn write_rows(
        &self,
        data: &VectorsRef<'_>,
        ids: &[u64],
        names: Option<&[String]>,
        replace: bool,
    ) -> Result<()> {
        self.check_writable()?;
        let mut w = self.writer.lock();
        let mut snap = self.snapshot();
        // A `Flat` database gets its (empty) model with its first rows, installed only
        // once they have passed every check below.
        let first_model = match &snap.model {
            None if self.trains_trivially() => Some(Arc::new(self.trivial_model()?)),
            _ => None,
        };
        let model = match &first_model {
            Some(m) => m.clone(),
            None => snap.model.clone().ok_or_else(|| {
                Error::InvalidArgument("the database is not trained: run train first".into())
            })?,
        };
        self.check_dim(data.dim())?;
        if ids.len() != data.rows() {
            return Err(Error::InvalidArgument(format!(
                "{} ids for {} vectors",
                ids.len(),
                data.rows()
            )));
        }
        if let Some(n) = names
            && n.len() != ids.len()
        {
            return Err(Error::InvalidArgument(format!(
                "{} names for {} vectors",
                n.len(),
                ids.len()
            )));
        }
        if data.rows() == 0 {
            return Ok(());
        }
        let mut seen = HashSet::with_capacity(ids.len());
        for &id in ids {
            if !seen.insert(id) {
                return Err(Error::InvalidArgument(format!(
                    "id {id} appears twice in one add"
                )));
            }
        }
        let existing: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|&id| locate(&snap, id).is_some())
            .collect();
        if !replace && let Some(id) = existing.first() {
            return Err(Error::InvalidArgument(format!(
                "id {id} is already present ({} of the ids are); use upsert to replace",
                existing.len()
            )));
        }
        // Encode first: every error about the data happens before anything is logged.
        let (lists, codes) = model.encode(data)?;
        let refine = if self.spec.stores_vectors() {
            let all = data.to_f32_vec(0, data.rows());
            Some(model.transform(&all)?)
        } else {
            None
        };
        let code_size = model.code_size();
        let inner = model.inner_dim();
        let mut records = Vec::with_capacity(existing.len() + ids.len());
        records.extend(existing.iter().map(|&id| WalRecord::Delete { id }));
        for (row, &id) in ids.iter().enumerate() {
            let mut payload =
                Vec::with_capacity(4 + code_size + refine.as_ref().map_or(0, |_| inner * 4));
            payload.extend_from_slice(&lists[row].to_le_bytes());
            payload.extend_from_slice(&codes[row * code_size..(row + 1) * code_size]);
            if let Some(v) = &refine {
                for x in &v[row * inner..(row + 1) * inner] {
                    payload.extend_from_slice(&x.to_le_bytes());
                }
            }
            records.push(WalRecord::Add {
                id,
                vector: payload,
                name: names.map(|n| n[row].clone()),
            });
        }
        if let Some(m) = &first_model {
            self.install_model(&mut w, m, None)?;
            snap = self.snapshot();
        }
        self.log(&mut w, &records)?;
        let mut snapshot = self.apply_deletes(&snap, &existing);
        let stored = refine
            .as_deref()
            .map(|v| OwnedVectors::from_f32(v, self.vectors_f16()));
        let part = OwnedPart::from_rows(
            model.nlist(),
            model.layout(),
            &lists,
            &codes,
            ids,
            stored.as_ref().map(|v| (v, inner)),
            names,
        )?;
        snapshot.buffer.push(BufferChunk::new(part));
        let buffered: usize = snapshot.buffer.iter().map(|c| c.part.ids.len()).sum();
        self.publish_snapshot(snapshot);
        if buffered >= self.options.flush_rows {
            self.commit_then_policy(&mut w)?;
        }
        Ok(())
    }

    /// Deletes ids; returns how many were present. Durable when it returns.
    pub fn delete(&self, ids: &[u64]) -> Result<usize> {
        self.check_writable()?;
        let mut w = self.writer.lock();
        let snap = self.snapshot();
        let mut unique: Vec<u64> = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let present: Vec<u64> = unique
            .into_iter()
            .filter(|&id| locate(&snap, id).is_some())
            .collect();
        if present.is_empty() {
            return Ok(0);
        }
        let records: Vec<WalRecord> = present.iter().map(|&id| WalRecord::Delete { id }).collect();
        self.log(&mut w, &records)?;
        let snapshot = self.apply_deletes(&snap, &present);
        self.publish_snapshot(snapshot);
        Ok(present.len())
    }

    /// Appends records and a commit marker to the log and fsyncs it.
    fn log(&self, w: &mut Writer, records: &[WalRecord]) -> Result<()> {
        let wal = w
            .wal
            .as_mut()
            .ok_or_else(|| Error::InvalidArgument("the log is not open".into()))?;
        for r in records {
            wal.append(r)?;
        }
        w.commit_seq += 1;
        wal.append(&WalRecord::Commit { seq: w.commit_seq })?;
        wal.sync()?;
        Ok(())
    }

    /// A new snapshot in which `ids` (all present) are deleted: buffer rows through the
    /// buffer's excluded set, segment rows through new tombstones (copy-on-write).
    pub(crate) fn apply_deletes(&self, snap: &Snapshot, ids: &[u64]) -> Snapshot {
        let mut buffer = snap.buffer.clone();
        let mut per_segment: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut per_chunk: HashMap<usize, Vec<u64>> = HashMap::new();
        for &id in ids {
            match locate(snap, id) {
                Some(Location::Buffer(c)) => per_chunk.entry(c).or_default().push(id),
                Some(Location::Segment(s, row)) => per_segment.entry(s).or_default().push(row),
                None => {}
            }
        }
        // Copy-on-write once per chunk, not once per id.
        for (c, ids) in per_chunk {
            let chunk = &mut buffer[c];
            let view = chunk.part.view();
            let mut deleted: HashSet<u64> = (*chunk.deleted).clone();
            let mut rows: HashSet<u64> = (*chunk.deleted_rows).clone();
            for id in ids {
                deleted.insert(id);
                if let Some(row) = view.find_row(id) {
                    rows.insert(row as u64);
                }
            }
            chunk.deleted = Arc::new(deleted);
            chunk.deleted_rows = Arc::new(rows);
        }
        let mut segments = snap.segments.clone();
        for (s, rows) in per_segment {
            let handle = &snap.segments[s];
            let mut t = match handle.tombstones() {
                Some(t) => t.clone(),
                None => match Tombstones::new(handle.entry.rows) {
                    Ok(t) => t,
                    Err(_) => continue,
                },
            };
            for row in rows {
                let _ = t.insert(row as u64);
            }
            let mut entry = handle.entry.clone();
            entry.deleted = t.deleted();
            segments[s] = Arc::new(handle.with_tombstones(entry, t));
        }
        Snapshot {
            model: snap.model.clone(),
            encoder: snap.encoder.clone(),
            segments,
            buffer,
        }
    }

    /// Flushes buffered rows to a new segment, writes new deletes files, publishes the
    /// manifest and starts a new log. Then applies the compaction policy; if that
    /// compaction finds a damaged segment, the commit is already durable and the
    /// corruption error is returned.
    pub fn commit(&self) -> Result<()> {
        self.check_writable()?;
        let mut w = self.writer.lock();
        self.commit_then_policy(&mut w)
    }

    /// [`Database::commit`] under the writer lock (also what an add that fills the
    /// buffer to `flush_rows` does).
    fn commit_then_policy(&self, w: &mut Writer) -> Result<()> {
        self.commit_locked(w)?;
        if self.policy_wants_compaction() {
            self.compact_locked(w)?;
        }
        Ok(())
    }

    pub(crate) fn commit_locked(&self, w: &mut Writer) -> Result<()> {
        let snap = self.snapshot();
        let dirty: Vec<usize> = snap
            .segments
            .iter()
            .enumerate()
            .filter(|(_, h)| {
                w.manifest
                    .segments
                    .iter()
                    .find(|e| e.id == h.entry.id)
                    .is_none_or(|e| e.deleted != h.entry.deleted)
            })
            .map(|(i, _)| i)
            .collect();
        if snap.buffer.is_empty() && dirty.is_empty() {
            return Ok(());
        }
        let model = match &snap.model {
            Some(m) => m.clone(),
            None => return Ok(()),
        };
        let mut manifest = w.manifest.clone();
        let mut new_files: Vec<String> = Vec::new();
        let mut replaced_deletes: Vec<String> = Vec::new();
        let result = (|| -> Result<Vec<Arc<SegmentHandle>>> {
            let mut segments = snap.segments.clone();
            for &i in &dirty {
                let h = &snap.segments[i];
                let Some(t) = h.tombstones() else { continue };
                let name = deletes::deletes_file_name(h.entry.id, manifest.next_file_number);
                manifest.next_file_number += 1;
                t.write(self.storage.as_ref(), &name, h.entry.id)?;
                new_files.push(name.clone());
                if let Some(e) = manifest.segments.iter_mut().find(|e| e.id == h.entry.id) {
                    if let Some(old) = e.deletes_file.replace(name) {
                        replaced_deletes.push(old);
                    }
                    e.deleted = t.deleted();
                }
            }
            let live_rows: usize = snap
                .buffer
                .iter()
                .map(|c| c.part.ids.len() - c.deleted.len())
                .sum();
            if live_rows > 0 {
                let views: Vec<PartView<'_>> = snap.buffer.iter().map(|c| c.part.view()).collect();
                let part = merge_parts(
                    &views,
                    model.nlist(),
                    model.layout(),
                    model.inner_dim(),
                    self.vectors_f16(),
                    &|p, row| snap.buffer[p].deleted.contains(&views[p].ids[row]),
                )?;
                let id = manifest.next_segment_id;
                let name = format!("seg-{:06}.vseg", manifest.next_file_number);
                manifest.next_segment_id += 1;
                manifest.next_file_number += 1;
                write_part(self.storage.as_ref(), &name, id, &part)?;
                new_files.push(name.clone());
                manifest.segments.push(SegmentEntry {
                    id,
                    file: name,
                    rows: part.ids.len() as u64,
                    deletes_file: None,
                    deleted: 0,
                });
            }
            // The next log goes past both the manifest's generation and the active log's:
            // after a crash between creating a log and publishing the manifest naming it,
            // the recovered writer appends to that newer log. A file already at the next
            // generation can only be the empty log of a commit that failed before
            // publishing (never appended to): replace it.
            let active = w.wal.as_ref().map_or(0, |l| l.generation());
            let next_wal = manifest.wal_generation.max(active) + 1;
            let next_name = crate::storage::wal::wal_file_name(next_wal);
            if self.storage.exists(&next_name)? {
                self.storage.remove(&next_name)?;
            }
            let new_wal = WalWriter::create(self.storage.as_ref(), next_wal)?;
            manifest.wal_generation = next_wal;
            manifest.generation += 1;
            manifest.publish(self.storage.as_ref())?;
            w.wal = Some(new_wal);
            // Re-open the segment list from the published manifest (new one mapped).
            let mut handles = Vec::with_capacity(manifest.segments.len());
            for e in &manifest.segments {
                match segments.iter().position(|h| h.entry.id == e.id) {
                    Some(p) => handles.push(segments.swap_remove(p)),
                    None => handles.push(Arc::new(SegmentHandle::open(
                        self.storage.clone(),
                        e.clone(),
                        model.nlist(),
                        model.layout(),
                        model.inner_dim(),
                        false,
                    )?)),
                }
            }
            Ok(handles)
        })();
        match result {
            Ok(handles) => {
                w.manifest = manifest;
                for name in replaced_deletes {
                    let _ = self.storage.remove(&name);
                }
                let _ = crate::storage::wal::remove_obsolete_wals(
                    self.storage.as_ref(),
                    w.manifest.wal_generation,
                );
                // Entries in the handles may carry stale manifest fields; refresh them.
                let handles = handles
                    .into_iter()
                    .map(|h| refresh_entry(h, &w.manifest.segments))
                    .collect();
                self.publish_snapshot(Snapshot {
                    model: snap.model.clone(),
                    encoder: snap.encoder.clone(),
                    segments: handles,
                    buffer: Vec::new(),
                });
                Ok(())
            }
            Err(e) => {
                if !self.storage.poison().is_poisoned() {
                    for f in &new_files {
                        let _ = self.storage.remove(f);
                    }
                }
                Err(e)
            }
        }
    }

    /// Merges every segment into one, dropping deleted rows (codes are copied, never
    /// re-encoded), and swaps it in atomically; searches go on meanwhile. Every section
    /// checksum of the merged segments is checked first: a damaged segment is a
    /// corruption error (as from [`Database::verify`]) and no merged segment is written.
    pub fn compact(&self) -> Result<CompactReport> {
        self.check_writable()?;
        let mut w = self.writer.lock();
        self.commit_locked(&mut w)?;
        self.compact_locked(&mut w)
    }

    fn policy_wants_compaction(&self) -> bool {
        let snap = self.snapshot();
        let rows: u64 = snap.segments.iter().map(|s| s.entry.rows).sum();
        let deleted: u64 = snap.segments.iter().map(|s| s.entry.deleted).sum();
        snap.segments.len() > self.options.max_segments
            || (rows > 0 && deleted as f64 > self.options.max_deleted_fraction * rows as f64)
    }

    fn compact_locked(&self, w: &mut Writer) -> Result<CompactReport> {
        let snap = self.snapshot();
        let before = snap.segments.len();
        let dropped: u64 = snap.segments.iter().map(|s| s.entry.deleted).sum();
        if before == 0 || (before == 1 && dropped == 0) {
            return Ok(CompactReport {
                segments_before: before,
                segments_after: before,
                rows_dropped: 0,
            });
        }
        let Some(model) = snap.model.clone() else {
            return Ok(CompactReport::default());
        };
        // Compaction copies every row into a new segment with fresh checksums, so damage
        // in a source segment would become undetectable: check every section first (the
        // merge reads all of them anyway).
        for s in &snap.segments {
            s.verify_checksums()?;
        }
        let views: Vec<PartView<'_>> = snap.segments.iter().map(|s| s.view()).collect();
        let part = merge_parts(
            &views,
            model.nlist(),
            model.layout(),
            model.inner_dim(),
            self.vectors_f16(),
            &|p, row| snap.segments[p].is_deleted(row),
        )?;
        let mut manifest = w.manifest.clone();
        let mut new_segments = Vec::new();
        let mut new_file = None;
        if !part.ids.is_empty() {
            let id = manifest.next_segment_id;
            let name = format!("seg-{:06}.vseg", manifest.next_file_number);
            manifest.next_segment_id += 1;
            manifest.next_file_number += 1;
            write_part(self.storage.as_ref(), &name, id, &part)?;
            new_file = Some(name.clone());
            new_segments.push(SegmentEntry {
                id,
                file: name,
                rows: part.ids.len() as u64,
                deletes_file: None,
                deleted: 0,
            });
        }
        manifest.segments = new_segments;
        manifest.generation += 1;
        if let Err(e) = manifest.publish(self.storage.as_ref()) {
            if let (Some(f), false) = (&new_file, self.storage.poison().is_poisoned()) {
                let _ = self.storage.remove(f);
            }
            return Err(e.into());
        }
        let mut handles = Vec::new();
        for e in &manifest.segments {
            handles.push(Arc::new(SegmentHandle::open(
                self.storage.clone(),
                e.clone(),
                model.nlist(),
                model.layout(),
                model.inner_dim(),
                false,
            )?));
        }
        w.manifest = manifest;
        for old in &snap.segments {
            old.mark_obsolete();
        }
        let after = handles.len();
        self.publish_snapshot(Snapshot {
            model: snap.model.clone(),
            encoder: snap.encoder.clone(),
            segments: handles,
            buffer: snap.buffer.clone(),
        });
        Ok(CompactReport {
            segments_before: before,
            segments_after: after,
            rows_dropped: dropped,
        })
    }

    pub(crate) fn check_dim(&self, got: usize) -> Result<()> {
        if got != self.index_dim {
            return Err(Error::InvalidArgument(format!(
                "vectors of dimension {got} given, the database holds dimension {}",
                self.index_dim
            )));
        }
        Ok(())
    }
}

/// Where a live id is.
pub(crate) enum Location {
    /// In buffer chunk `c`.
    Buffer(usize),
    Segment(usize, usize),
}

/// Finds the live row of `id` (the newest part first).
pub(crate) fn locate(snap: &Snapshot, id: u64) -> Option<Location> {
    for (c, chunk) in snap.buffer.iter().enumerate().rev() {
        if !chunk.deleted.contains(&id) && chunk.part.view().find_row(id).is_some() {
            return Some(Location::Buffer(c));
        }
    }
    for (s, h) in snap.segments.iter().enumerate().rev() {
        if let Some(row) = h.view().find_row(id)
            && row < h.entry.rows as usize
            && !h.is_deleted(row)
        {
            return Some(Location::Segment(s, row));
        }
    }
    None
}

fn refresh_entry(h: Arc<SegmentHandle>, entries: &[SegmentEntry]) -> Arc<SegmentHandle> {
    match entries.iter().find(|e| e.id == h.entry.id) {
        Some(e) if *e != h.entry => match h.tombstones() {
            Some(t) => Arc::new(h.with_tombstones(e.clone(), t.clone())),
            None => h,
        },
        _ => h,
    }
}
