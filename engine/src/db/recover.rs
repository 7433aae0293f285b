//! Opening a database: load the model and segments the manifest names, replay the
//! committed batches of the write-ahead log into the write buffer, cut a torn log tail,
//! and (when writable) remove files that no manifest names (left by a crash mid-commit).

use std::collections::HashSet;
use std::sync::Arc;

use vladdb_codecs::index::IndexModel;
use vladdb_codecs::spec::RefineSpec;

use super::model_file;
use super::part::{OwnedPart, OwnedVectors};
use super::segment::SegmentHandle;
use super::{BufferChunk, Database, Snapshot};
use crate::error::{Error, Result};
use crate::storage::wal::{list_wal_generations, parse_wal_file_name, read_wal_file};
use crate::storage::{LOCK_FILE, MANIFEST_FILE, WalRecord, WalWriter, remove_temp_files};

impl Database {
    /// Rebuilds the in-memory state from the files. `verify` checks every checksum.
    pub(crate) fn recover(&self, verify: bool) -> Result<()> {
        let mut w = self.writer.lock();
        let manifest = w.manifest.clone();
        let storage = self.storage.clone();
        let (model, encoder): (Option<Arc<IndexModel>>, _) = match &manifest.model_file {
            Some(f) => {
                let (m, e) = model_file::load(storage.as_ref(), f, verify)?;
                (Some(Arc::new(m)), e)
            }
            None => (None, None),
        };
        if let Some(m) = &model {
            let descriptor_dim = encoder.as_ref().map(|e| e.dim_in());
            if m.dim() != self.index_dim
                || encoder.is_some() != self.encoder_spec.is_some()
                || descriptor_dim.is_some_and(|d| d != self.dim)
            {
                return Err(Error::Corrupt {
                    path: storage.path_of(manifest.model_file.as_deref().unwrap_or("model")),
                    reason: format!(
                        "model dimension {} but the database holds {}",
                        m.dim(),
                        self.dim
                    ),
                });
            }
        }
        let mut segments = Vec::with_capacity(manifest.segments.len());
        if !manifest.segments.is_empty() {
            let Some(m) = &model else {
                return Err(Error::Corrupt {
                    path: storage.path_of(MANIFEST_FILE),
                    reason: "segments but no model file".into(),
                });
            };
            for e in &manifest.segments {
                segments.push(Arc::new(SegmentHandle::open(
                    storage.clone(),
                    e.clone(),
                    m.nlist(),
                    m.layout(),
                    m.inner_dim(),
                    verify,
                )?));
            }
        }
        let mut snapshot = Snapshot {
            model: model.clone(),
            encoder,
            segments,
            buffer: Vec::new(),
        };
        // Replay the log, batch by batch (a batch ends with a commit marker).
        let generations: Vec<u64> = list_wal_generations(storage.as_ref())?
            .into_iter()
            .filter(|&g| g >= manifest.wal_generation)
            .collect();
        let mut last = None;
        let mut seq = 0;
        for g in generations {
            let recovery = read_wal_file(storage.as_ref(), g)?;
            let path = storage.path_of(&crate::storage::wal::wal_file_name(g));
            let mut deletes = Vec::new();
            let mut adds: Vec<(u64, Vec<u8>, Option<String>)> = Vec::new();
            for record in &recovery.records {
                match record {
                    WalRecord::Delete { id } => deletes.push(*id),
                    WalRecord::Add { id, vector, name } => {
                        adds.push((*id, vector.clone(), name.clone()))
                    }
                    WalRecord::Commit { seq: s } => {
                        seq = seq.max(*s);
                        let Some(m) = &model else {
                            return Err(Error::Corrupt {
                                path: path.clone(),
                                reason: "logged writes but no model file".into(),
                            });
                        };
                        snapshot = self.apply_deletes(&snapshot, &deletes);
                        if !adds.is_empty() {
                            let part = decode_adds(m, &adds, self.spec.refine, &path)?;
                            snapshot.buffer.push(BufferChunk::new(part));
                        }
                        deletes.clear();
                        adds.clear();
                    }
                }
            }
            last = Some(recovery);
        }
        w.commit_seq = seq;
        if !self.read_only {
            w.wal = Some(match &last {
                Some(r) => WalWriter::open_recovered(storage.as_ref(), r)?,
                None => WalWriter::create(storage.as_ref(), manifest.wal_generation)?,
            });
            remove_temp_files(storage.as_ref())?;
            remove_unreferenced(self, &manifest)?;
        }
        self.publish_snapshot(snapshot);
        Ok(())
    }
}

/// Rebuilds a buffer chunk from logged add records (list, code, optional vector).
fn decode_adds(
    model: &IndexModel,
    adds: &[(u64, Vec<u8>, Option<String>)],
    refine: Option<RefineSpec>,
    path: &std::path::Path,
) -> Result<OwnedPart> {
    let f16 = refine == Some(RefineSpec::F16);
    let refine = refine.is_some();
    let code_size = model.code_size();
    let inner = model.inner_dim();
    let want = 4 + code_size + if refine { inner * 4 } else { 0 };
    let mut lists = Vec::with_capacity(adds.len());
    let mut codes = Vec::with_capacity(adds.len() * code_size);
    let mut vectors = Vec::new();
    let mut ids = Vec::with_capacity(adds.len());
    let with_names = adds.iter().any(|a| a.2.is_some());
    let mut names = Vec::new();
    for (id, payload, name) in adds {
        if payload.len() != want {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                reason: format!(
                    "logged row {id} has {} bytes, expected {want}",
                    payload.len()
                ),
            });
        }
        let list = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
        if list as usize >= model.nlist() {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                reason: format!("logged row {id} names list {list} of {}", model.nlist()),
            });
        }
        lists.push(list);
        codes.extend_from_slice(&payload[4..4 + code_size]);
        if refine {
            vectors.extend(
                payload[4 + code_size..]
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
        }
        ids.push(*id);
        if with_names {
            names.push(name.clone().unwrap_or_default());
        }
    }
    let stored = refine.then(|| OwnedVectors::from_f32(&vectors, f16));
    OwnedPart::from_rows(
        model.nlist(),
        model.layout(),
        &lists,
        &codes,
        &ids,
        stored.as_ref().map(|v| (v, inner)),
        with_names.then_some(names.as_slice()),
    )
    .map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!("logged adds do not fit the model: {e}"),
    })
}

/// Removes database files the manifest does not name: segments, deletes files and models
/// written by a commit that crashed before publishing, and logs older than the manifest's.
fn remove_unreferenced(db: &Database, manifest: &crate::storage::Manifest) -> Result<()> {
    let live: HashSet<&str> = manifest.live_files().into_iter().collect();
    let mut removed = false;
    for name in db.storage.list()? {
        if name == MANIFEST_FILE || name == LOCK_FILE || live.contains(name.as_str()) {
            continue;
        }
        let ours =
            name.starts_with("seg-") || name.starts_with("del-") || name.starts_with("model-");
        let old_log = parse_wal_file_name(&name).is_some_and(|g| g < manifest.wal_generation);
        if ours || old_log {
            db.storage.remove(&name)?;
            removed = true;
        }
    }
    if removed {
        db.storage.sync_dir()?;
    }
    Ok(())
}
