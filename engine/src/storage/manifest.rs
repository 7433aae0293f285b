//! The manifest (`MANIFEST`): the one file that says which files are live — the model file,
//! the segments (with row counts and deletes files), the WAL generation to replay from, the
//! id counters and free-form properties (dimension, index spec, ...).
//!
//! Layout (see `docs/format.md`): a 32-byte header (magic, format version, payload length,
//! payload crc32, header crc32) followed by an rkyv-archived [`Manifest`]. It is published
//! with [`write_file_atomic`] (temp file, fsync, rename over `MANIFEST`, fsync directory), so
//! a reader sees either the old or the new manifest, never a mix.

use std::collections::HashSet;
use std::path::Path;

use rkyv::rancor;
use rkyv::util::AlignedVec;

use super::bytes::LeReader;
use super::directory::{LOCK_FILE, Storage, validate_name, write_file_atomic};
use super::error::{StorageError, StorageResult};

/// The manifest's file name.
pub const MANIFEST_FILE: &str = "MANIFEST";
/// Magic at the start of a manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"VLDB-MAN";
/// The manifest format version this build writes and reads.
pub const MANIFEST_VERSION: u32 = 1;
/// Size of the manifest header.
pub const MANIFEST_HEADER_LEN: usize = 32;
/// Upper bound on a manifest's payload, to reject absurd lengths before allocating.
pub const MANIFEST_MAX_PAYLOAD: u64 = 64 << 20;

/// One live segment.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SegmentEntry {
    /// Unique, never reused segment id.
    pub id: u64,
    /// The segment container file.
    pub file: String,
    /// Rows stored in the segment (deleted ones included).
    pub rows: u64,
    /// The deletes file (tombstone bitset) in force, if any row is deleted.
    pub deletes_file: Option<String>,
    /// Rows marked deleted in `deletes_file`.
    pub deleted: u64,
}

/// A key/value string pair stored in the manifest (e.g. `dim` = `128`).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
}

/// The set of live files and counters of a database.
#[derive(
    rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, Default, PartialEq, Eq,
)]
pub struct Manifest {
    /// Incremented by every publication.
    pub generation: u64,
    /// The model file (trained parameters), once trained.
    pub model_file: Option<String>,
    /// Live segments, oldest first.
    pub segments: Vec<SegmentEntry>,
    /// Replay WAL files of this generation and later at open; older ones are obsolete.
    pub wal_generation: u64,
    /// The id the next segment gets (greater than every live segment id).
    pub next_segment_id: u64,
    /// Counter for unique file numbers (segment, deletes, model files are never renamed
    /// over a live name: each new file gets a fresh number).
    pub next_file_number: u64,
    /// Free-form settings (dimension, index spec, ...), keys unique.
    pub properties: Vec<Property>,
}

impl Manifest {
    /// The value of property `key`.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
    }

    /// Sets property `key` to `value` (replacing any previous value).
    pub fn set_property(&mut self, key: &str, value: &str) {
        match self.properties.iter_mut().find(|p| p.key == key) {
            Some(p) => p.value = value.to_string(),
            None => self.properties.push(Property {
                key: key.to_string(),
                value: value.to_string(),
            }),
        }
    }

    /// Every file this manifest keeps alive (model, segments, deletes files).
    pub fn live_files(&self) -> Vec<&str> {
        let mut files: Vec<&str> = self.model_file.iter().map(String::as_str).collect();
        for s in &self.segments {
            files.push(&s.file);
            files.extend(s.deletes_file.as_deref());
        }
        files
    }

    /// Checks the invariants: plain, distinct file names (not `MANIFEST`/`LOCK`), distinct
    /// segment ids below `next_segment_id`, `deleted <= rows`, a deletes file whenever a row
    /// is deleted, distinct property keys. `path` names the file in the error.
    pub fn validate(&self, path: &Path) -> StorageResult<()> {
        let bad = |reason: String| Err(StorageError::corrupt(path, reason));
        let mut names = HashSet::new();
        for name in self.live_files() {
            if validate_name(name).is_err() || name == MANIFEST_FILE || name == LOCK_FILE {
                return bad(format!("invalid file name {name:?}"));
            }
            if !names.insert(name) {
                return bad(format!("file {name:?} is named twice"));
            }
        }
        let mut ids = HashSet::new();
        for s in &self.segments {
            if !ids.insert(s.id) {
                return bad(format!("segment id {} appears twice", s.id));
            }
            if s.id >= self.next_segment_id {
                return bad(format!(
                    "segment id {} is not below next_segment_id {}",
                    s.id, self.next_segment_id
                ));
            }
            if s.deleted > s.rows {
                return bad(format!(
                    "segment {} has {} deleted of {} rows",
                    s.id, s.deleted, s.rows
                ));
            }
            if s.deleted > 0 && s.deletes_file.is_none() {
                return bad(format!("segment {} has deletes but no deletes file", s.id));
            }
        }
        let mut keys = HashSet::new();
        for p in &self.properties {
            if !keys.insert(p.key.as_str()) {
                return bad(format!("property {:?} appears twice", p.key));
            }
        }
        Ok(())
    }

    /// Serialises the manifest (header + rkyv payload). Fails if the manifest is invalid.
    pub fn encode(&self) -> StorageResult<Vec<u8>> {
        self.validate(Path::new(MANIFEST_FILE))
            .map_err(|e| StorageError::InvalidArgument(e.to_string()))?;
        let payload = rkyv::to_bytes::<rancor::Error>(self)
            .map_err(|e| StorageError::InvalidArgument(format!("manifest encoding: {e}")))?;
        let mut out = Vec::with_capacity(MANIFEST_HEADER_LEN + payload.len());
        out.extend_from_slice(&MANIFEST_MAGIC);
        out.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        let header_crc = crc32fast::hash(&out);
        out.extend_from_slice(&header_crc.to_le_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Parses and validates a manifest; every problem is a typed error naming `path`.
    pub fn decode(bytes: &[u8], path: &Path) -> StorageResult<Manifest> {
        let mut r = LeReader::new(bytes, path);
        let magic = r.array::<8>("manifest header")?;
        if magic != MANIFEST_MAGIC {
            return Err(StorageError::corrupt(
                path,
                "bad magic: not a vladdb manifest",
            ));
        }
        let version = r.u32("manifest header")?;
        let flags = r.u32("manifest header")?;
        let payload_len = r.u64("manifest header")?;
        let payload_crc = r.u32("manifest header")?;
        let header_crc = r.u32("manifest header")?;
        if crc32fast::hash(&bytes[..MANIFEST_HEADER_LEN - 4]) != header_crc {
            return Err(StorageError::corrupt(
                path,
                "manifest header checksum mismatch",
            ));
        }
        if version != MANIFEST_VERSION {
            return Err(StorageError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                supported: MANIFEST_VERSION,
            });
        }
        if flags != 0 {
            return Err(StorageError::corrupt(
                path,
                format!("unknown flags {flags:#x}"),
            ));
        }
        if payload_len > MANIFEST_MAX_PAYLOAD || payload_len != r.remaining() as u64 {
            return Err(StorageError::corrupt(
                path,
                format!(
                    "payload length {payload_len} does not match the {} bytes after the header",
                    r.remaining()
                ),
            ));
        }
        let payload = r.bytes(r.remaining(), "manifest payload")?;
        if crc32fast::hash(payload) != payload_crc {
            return Err(StorageError::corrupt(
                path,
                "manifest payload checksum mismatch",
            ));
        }
        // rkyv needs its buffer aligned (the root object sits at the end of it): copy the
        // small payload into an aligned buffer, then validate it once with bytecheck.
        let mut aligned = AlignedVec::<16>::with_capacity(payload.len());
        aligned.extend_from_slice(payload);
        let manifest = rkyv::from_bytes::<Manifest, rancor::Error>(&aligned)
            .map_err(|e| StorageError::corrupt(path, format!("invalid manifest payload: {e}")))?;
        manifest.validate(path)?;
        Ok(manifest)
    }

    /// Publishes the manifest atomically and durably as `MANIFEST` (see module docs). If it
    /// fails, the previous `MANIFEST` stays in force (unless the failure was the final
    /// directory fsync, after which the storage is poisoned and either may be found).
    pub fn publish(&self, storage: &dyn Storage) -> StorageResult<()> {
        let bytes = self.encode()?;
        write_file_atomic(storage, MANIFEST_FILE, &bytes)
    }

    /// Reads and validates `MANIFEST`.
    pub fn load(storage: &dyn Storage) -> StorageResult<Manifest> {
        let bytes = storage.read(MANIFEST_FILE)?;
        Manifest::decode(&bytes, &storage.path_of(MANIFEST_FILE))
    }
}
