//! `stats` (what is stored, how big, how balanced the lists are) and `verify` (every
//! checksum and invariant of every live file, the first problem named).

use std::path::Path;
use std::sync::Arc;

use serde_like::JsonObject;

use super::{Database, Options};
use crate::error::Result;
use crate::storage::wal::{list_wal_generations, read_wal_file};
use crate::storage::{FsStorage, MANIFEST_FILE, SharedStorage};

mod serde_like {
    /// A tiny JSON object writer (the engine has no serde dependency).
    pub struct JsonObject(pub Vec<(String, String)>);
    impl JsonObject {
        pub fn render(&self) -> String {
            let body: Vec<String> = self.0.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", body.join(","))
        }
    }
}

/// Sizes of the inverted lists (live rows per list).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListBalance {
    pub lists: usize,
    pub empty: usize,
    pub min: u64,
    pub max: u64,
    pub mean: f64,
    /// FAISS's imbalance factor: `nlist · Σ size² / (Σ size)²` (1.0 = perfectly even).
    pub imbalance: f64,
}

/// What `vladdb stats` reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub vectors: u64,
    pub deleted: u64,
    pub segments: usize,
    pub buffered: u64,
    pub bytes: u64,
    pub dim: usize,
    pub spec: String,
    pub trained: bool,
    pub balance: Option<ListBalance>,
}

impl Stats {
    /// One JSON object.
    pub fn to_json(&self) -> String {
        let mut f = vec![
            ("vectors".into(), self.vectors.to_string()),
            ("deleted".into(), self.deleted.to_string()),
            ("segments".into(), self.segments.to_string()),
            ("buffered".into(), self.buffered.to_string()),
            ("bytes".into(), self.bytes.to_string()),
            ("dim".into(), self.dim.to_string()),
            ("spec".into(), format!("{:?}", self.spec)),
            ("trained".into(), self.trained.to_string()),
        ];
        if let Some(b) = &self.balance {
            f.push(("lists".into(), b.lists.to_string()));
            f.push(("empty_lists".into(), b.empty.to_string()));
            f.push(("list_min".into(), b.min.to_string()));
            f.push(("list_max".into(), b.max.to_string()));
            f.push(("list_mean".into(), format!("{:.3}", b.mean)));
            f.push(("imbalance".into(), format!("{:.4}", b.imbalance)));
        }
        JsonObject(f).render()
    }
}

/// What `verify` checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub files: usize,
    pub segments: usize,
    pub rows: u64,
    pub log_records: usize,
}

impl Database {
    /// Counts and sizes of the current snapshot.
    pub fn stats(&self) -> Result<Stats> {
        let snap = self.snapshot();
        let mut stats = Stats {
            segments: snap.segments.len(),
            dim: self.dim,
            spec: self.spec_text.clone(),
            trained: snap.model.is_some(),
            ..Stats::default()
        };
        let nlist = snap.model.as_ref().map_or(0, |m| m.nlist());
        let mut sizes = vec![0u64; nlist];
        for s in &snap.segments {
            let v = s.view();
            stats.vectors += s.live_rows();
            stats.deleted += s.entry.deleted;
            for (l, size) in sizes.iter_mut().enumerate() {
                let (start, end) = (v.list_offsets[l] as usize, v.list_offsets[l + 1] as usize);
                *size += match s.tombstones() {
                    Some(t) => (start..end).filter(|&r| !t.contains(r as u64)).count() as u64,
                    None => (end - start) as u64,
                };
            }
        }
        for c in &snap.buffer {
            let v = c.part.view();
            let live = (v.rows() - c.deleted.len()) as u64;
            stats.vectors += live;
            stats.buffered += live;
            for (l, size) in sizes.iter_mut().enumerate() {
                let (_, ids) = v.list(l);
                *size += ids.iter().filter(|id| !c.deleted.contains(id)).count() as u64;
            }
        }
        for name in self.storage.list()? {
            stats.bytes += self.storage.file_len(&name).unwrap_or(0);
        }
        if nlist > 1 {
            let total: u64 = sizes.iter().sum();
            let sq: f64 = sizes.iter().map(|&s| (s as f64) * (s as f64)).sum();
            stats.balance = Some(ListBalance {
                lists: nlist,
                empty: sizes.iter().filter(|&&s| s == 0).count(),
                min: sizes.iter().copied().min().unwrap_or(0),
                max: sizes.iter().copied().max().unwrap_or(0),
                mean: total as f64 / nlist as f64,
                imbalance: if total == 0 {
                    0.0
                } else {
                    nlist as f64 * sq / (total as f64 * total as f64)
                },
            });
        }
        Ok(stats)
    }

    /// Checks every checksum and invariant of the database at `path` without changing it:
    /// the manifest, the model file, every segment (all section crcs, list offsets, the id
    /// index), every deletes file, and the logs. Errors name the first bad file.
    pub fn verify(path: impl AsRef<Path>) -> Result<VerifyReport> {
        let path = path.as_ref();
        if !path.join(MANIFEST_FILE).exists() {
            return Err(crate::error::Error::InvalidArgument(format!(
                "{}: not a vladdb database (no {MANIFEST_FILE})",
                path.display()
            )));
        }
        let storage: SharedStorage = Arc::new(FsStorage::open(path)?);
        let db = Database::open_in_checked(storage.clone(), path)?;
        let snap = db.snapshot();
        for s in &snap.segments {
            s.verify_checksums()?;
        }
        let mut log_records = 0;
        let wal_generation = db.writer.lock().manifest.wal_generation;
        for g in list_wal_generations(storage.as_ref())? {
            if g >= wal_generation {
                log_records += read_wal_file(storage.as_ref(), g)?.records.len();
            }
        }
        let manifest = db.writer.lock().manifest.clone();
        Ok(VerifyReport {
            files: manifest.live_files().len() + 1,
            segments: snap.segments.len(),
            rows: snap.segments.iter().map(|s| s.entry.rows).sum(),
            log_records,
        })
    }

    /// Opens read-only with every checksum verified while loading.
    fn open_in_checked(storage: SharedStorage, path: &Path) -> Result<Database> {
        Database::open_consistent(storage, path, Options::default(), true)
    }
}
