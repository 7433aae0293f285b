//! The database: a directory holding a manifest, a model file, immutable memory-mapped
//! segments with their deletes files, and a write-ahead log; the public API users link
//! against (`create`, `open`, `train`, `add`, `delete`, `upsert`, `commit`, `search`,
//! `compact`, `stats`, `verify`).
//!
//! Concurrency: every query takes a [`Snapshot`] (an `Arc` of the live parts) and never
//! holds a lock while it scans; writers serialise on one mutex and publish a new snapshot
//! when they are done, so readers never block writers or compaction.
//!
//! Durability (see `docs/architecture.md`): `add`, `delete` and `upsert` return after
//! their records and a commit marker are fsynced to the log; `commit` (and the automatic
//! flush) writes the buffered rows to a new segment and publishes a new manifest.

mod encoder_store;
mod model_file;
mod part;
mod recover;
mod search;
mod segment;
mod stats;
mod write;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use vladdb_codecs::encode::{EncoderSpec, SetEncoder, parse_encoder};
use vladdb_codecs::error::CodecError;
use vladdb_codecs::index::IndexModel;
use vladdb_codecs::spec::IndexSpec;

use crate::error::{Error, Result};
use crate::storage::{DirLock, FsStorage, MANIFEST_FILE, Manifest, SharedStorage, WalWriter};

pub use part::{OwnedPart, PartView};
pub use search::Hit;
pub use segment::SegmentHandle;
pub use stats::{ListBalance, Stats, VerifyReport};

/// Tuning knobs of an open database.
#[derive(Debug, Clone)]
pub struct Options {
    /// Buffered rows that trigger an automatic flush to a new segment.
    pub flush_rows: usize,
    /// Compact automatically after a commit when there are more segments than this.
    pub max_segments: usize,
    /// Compact automatically after a commit when more than this fraction of the stored
    /// rows is deleted.
    pub max_deleted_fraction: f64,
    /// Largest precomputed IVF-PQ table, in bytes, built at training time.
    pub precomputed_table_budget: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            flush_rows: 1 << 20,
            max_segments: 16,
            max_deleted_fraction: 0.25,
            precomputed_table_budget: 256 << 20,
        }
    }
}

/// What a query sees: the model and the live parts at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub(crate) model: Option<Arc<IndexModel>>,
    /// The trained local-descriptor encoder, for specs that start with one.
    pub(crate) encoder: Option<Arc<dyn SetEncoder>>,
    pub(crate) segments: Vec<Arc<SegmentHandle>>,
    pub(crate) buffer: Vec<BufferChunk>,
}

/// One add's rows, waiting in memory (and in the log) for the next commit.
#[derive(Debug, Clone)]
pub struct BufferChunk {
    pub(crate) part: Arc<OwnedPart>,
    /// Ids of this chunk deleted since it was added.
    pub(crate) deleted: Arc<HashSet<u64>>,
    /// The same rows by row number (what the re-rank scan pushes instead of ids).
    pub(crate) deleted_rows: Arc<HashSet<u64>>,
}

impl BufferChunk {
    /// A chunk of freshly added rows, none deleted.
    pub(crate) fn new(part: OwnedPart) -> Self {
        BufferChunk {
            part: Arc::new(part),
            deleted: Arc::default(),
            deleted_rows: Arc::default(),
        }
    }
}

/// The writer's state, guarded by one mutex.
#[derive(Debug)]
pub(crate) struct Writer {
    pub manifest: Manifest,
    pub wal: Option<WalWriter>,
    pub commit_seq: u64,
}

/// An open vladdb database.
#[derive(Debug)]
pub struct Database {
    storage: SharedStorage,
    path: PathBuf,
    /// The index part of the spec (after any encoder stage).
    spec: IndexSpec,
    /// The encoder stage at the front of the spec, if any (`VLAD64`, `FV64`, `BOF1024`).
    encoder_spec: Option<EncoderSpec>,
    spec_text: String,
    /// The dimension users give: of local descriptors with an encoder, else of vectors.
    dim: usize,
    /// The dimension of the vectors the index stores (the encoder's output, or `dim`).
    index_dim: usize,
    options: Options,
    read_only: bool,
    state: RwLock<Arc<Snapshot>>,
    writer: Mutex<Writer>,
    _lock: Option<DirLock>,
}

/// Manifest property keys.
const PROP_DIM: &str = "dim";
const PROP_SPEC: &str = "spec";

impl Database {
    /// True when re-ranking vectors are stored in half precision (`RF16`).
    pub(crate) fn vectors_f16(&self) -> bool {
        self.spec.refine == Some(vladdb_codecs::spec::RefineSpec::F16)
    }

    /// Creates a new, empty database at `path` (a new or empty directory) for vectors of
    /// `dim` with index `spec`. The directory is locked for writing.
    pub fn create(path: impl AsRef<Path>, spec: &str, dim: usize) -> Result<Database> {
        Self::create_with(path, spec, dim, Options::default())
    }

    /// [`Database::create`] with explicit options.
    pub fn create_with(
        path: impl AsRef<Path>,
        spec: &str,
        dim: usize,
        options: Options,
    ) -> Result<Database> {
        let path = path.as_ref();
        FullSpec::parse(spec, dim)?;
        if path.exists() {
            let entries = std::fs::read_dir(path)
                .map_err(|e| Error::io(path, e))?
                .count();
            if entries > 0 {
                return Err(Error::InvalidArgument(format!(
                    "{}: the directory is not empty; create a database in a new directory",
                    path.display()
                )));
            }
        }
        let storage: SharedStorage = Arc::new(FsStorage::create_dir(path)?);
        Self::create_in(storage, path, spec, dim, options)
    }

    /// Creates a database on any [`Storage`](crate::storage::Storage) (used by the fault-injection tests).
    pub fn create_in(
        storage: SharedStorage,
        path: &Path,
        spec: &str,
        dim: usize,
        options: Options,
    ) -> Result<Database> {
        let full = FullSpec::parse(spec, dim)?;
        if storage.exists(MANIFEST_FILE)? {
            return Err(Error::InvalidArgument(format!(
                "{}: already a vladdb database",
                path.display()
            )));
        }
        let lock = storage.lock()?;
        let mut manifest = Manifest {
            generation: 0,
            wal_generation: 1,
            next_segment_id: 1,
            next_file_number: 1,
            ..Manifest::default()
        };
        manifest.set_property(PROP_DIM, &dim.to_string());
        manifest.set_property(PROP_SPEC, &full.text);
        let wal = WalWriter::create(storage.as_ref(), 1)?;
        manifest.generation = 1;
        manifest.publish(storage.as_ref())?;
        Ok(Database {
            storage,
            path: path.to_path_buf(),
            spec_text: full.text,
            spec: full.index,
            encoder_spec: full.encoder,
            dim,
            index_dim: full.index_dim,
            options,
            read_only: false,
            state: RwLock::new(Arc::new(Snapshot::default())),
            writer: Mutex::new(Writer {
                manifest,
                wal: Some(wal),
                commit_seq: 0,
            }),
            _lock: Some(lock),
        })
    }

    /// Opens an existing database for reading and writing (takes the writer lock, replays
    /// the log, removes files no manifest names).
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        Self::open_with(path, Options::default())
    }

    /// [`Database::open`] with explicit options.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Database> {
        let path = path.as_ref();
        let storage: SharedStorage = Arc::new(open_storage(path)?);
        Self::open_in(storage, path, options, false)
    }

    /// Opens an existing database for reading only: no lock, nothing written; searches see
    /// the last published manifest plus the committed records of the log.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Database> {
        let path = path.as_ref();
        let storage: SharedStorage = Arc::new(open_storage(path)?);
        Self::open_in(storage, path, Options::default(), true)
    }

    /// Opens a database on any [`Storage`](crate::storage::Storage).
    pub fn open_in(
        storage: SharedStorage,
        path: &Path,
        options: Options,
        read_only: bool,
    ) -> Result<Database> {
        if read_only {
            Self::open_consistent(storage, path, options, false)
        } else {
            Self::open_impl(storage, path, options, false, false)
        }
    }

    /// A read-only open takes no lock, so a writer in another process may publish a new
    /// manifest and remove the files (segments, logs) of the old one while it loads: the
    /// open would fail on a vanished file, or miss the rows of a log removed after they
    /// were flushed to a segment it does not know. Retry until no manifest was published
    /// during the load (the generation is the same before and after) and no file vanished.
    pub(crate) fn open_consistent(
        storage: SharedStorage,
        path: &Path,
        options: Options,
        verify: bool,
    ) -> Result<Database> {
        const ATTEMPTS: u64 = 50;
        let generation = |s: &SharedStorage| Manifest::load(s.as_ref()).ok().map(|m| m.generation);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let before = generation(&storage);
            let result = Self::open_impl(storage.clone(), path, options.clone(), true, verify);
            let stable = before == generation(&storage);
            let vanished = matches!(&result, Err(e) if is_not_found(e));
            if (stable && !vanished) || attempt >= ATTEMPTS {
                return result;
            }
            std::thread::sleep(std::time::Duration::from_millis(attempt.min(10)));
        }
    }

    /// Opens; `verify` checks every checksum of every file while loading.
    pub(crate) fn open_impl(
        storage: SharedStorage,
        path: &Path,
        options: Options,
        read_only: bool,
        verify: bool,
    ) -> Result<Database> {
        if !storage.exists(MANIFEST_FILE)? {
            return Err(Error::InvalidArgument(format!(
                "{}: not a vladdb database (no {MANIFEST_FILE})",
                path.display()
            )));
        }
        let lock = if read_only {
            None
        } else {
            Some(storage.lock()?)
        };
        let manifest = Manifest::load(storage.as_ref())?;
        let manifest_path = storage.path_of(MANIFEST_FILE);
        let corrupt = |reason: String| Error::Corrupt {
            path: manifest_path.clone(),
            reason,
        };
        let dim: usize = manifest
            .property(PROP_DIM)
            .and_then(|d| d.parse().ok())
            .filter(|&d| d > 0)
            .ok_or_else(|| corrupt("no valid dimension property".into()))?;
        let spec_text = manifest
            .property(PROP_SPEC)
            .ok_or_else(|| corrupt("no index spec property".into()))?
            .to_string();
        let full = FullSpec::parse(&spec_text, dim).map_err(|e| corrupt(e.to_string()))?;
        let db = Database {
            storage,
            path: path.to_path_buf(),
            spec: full.index,
            encoder_spec: full.encoder,
            spec_text: full.text,
            dim,
            index_dim: full.index_dim,
            options,
            read_only,
            state: RwLock::new(Arc::new(Snapshot::default())),
            writer: Mutex::new(Writer {
                manifest,
                wal: None,
                commit_seq: 0,
            }),
            _lock: lock,
        };
        db.recover(verify)?;
        Ok(db)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The dimension the database was created with: of the local descriptors for a spec
    /// with an encoder stage, else of the vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The dimension of the vectors `add` and `search` take (the encoder's output for a
    /// descriptor-set database).
    pub fn index_dim(&self) -> usize {
        self.index_dim
    }

    /// Number of inverted lists, for IVF specs.
    pub fn nlist(&self) -> Option<usize> {
        self.spec.ivf
    }

    /// True when the spec starts with an encoder stage (`VLAD…`, `FV…`, `BOF…`).
    pub fn has_encoder(&self) -> bool {
        self.encoder_spec.is_some()
    }

    /// The index spec (canonical form).
    pub fn spec(&self) -> &str {
        &self.spec_text
    }

    /// True once `train` has run.
    pub fn is_trained(&self) -> bool {
        self.snapshot().model.is_some()
    }

    /// The current snapshot (cheap: an `Arc` clone).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.state.read().clone()
    }

    /// The options in force.
    pub fn options(&self) -> &Options {
        &self.options
    }

    fn check_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::InvalidArgument(format!(
                "{}: opened read-only",
                self.path.display()
            )));
        }
        Ok(())
    }

    fn publish_snapshot(&self, snapshot: Snapshot) {
        *self.state.write() = Arc::new(snapshot);
    }
}

/// A spec split into its optional encoder stage and its index part, checked against the
/// input dimension.
struct FullSpec {
    encoder: Option<EncoderSpec>,
    index: IndexSpec,
    index_dim: usize,
    /// The canonical spec text.
    text: String,
}

/// Largest input or index dimension: 2²⁰ (a 4 MiB vector), well above any descriptor or
/// global image vector (`VLAD1024` on 128-D SIFT is 131,072), low enough that a typo in
/// `--dim` fails at `create` rather than at the first allocation.
const MAX_DIM: usize = 1 << 20;

impl FullSpec {
    fn parse(spec: &str, dim: usize) -> Result<FullSpec> {
        if dim == 0 || dim > MAX_DIM {
            return Err(Error::InvalidArgument(format!(
                "the dimension must be between 1 and {MAX_DIM}, got {dim}"
            )));
        }
        let (first, rest) = match spec.split_once(',') {
            Some((a, b)) => (a.trim(), Some(b)),
            None => (spec.trim(), None),
        };
        let (encoder, index_text) = match parse_encoder(first)? {
            Some(e) => (Some(e), rest.unwrap_or("Flat")),
            None => (None, spec),
        };
        // Errors quote the whole spec, not just the part after the encoder token.
        let index = IndexSpec::parse(index_text).map_err(|e| match e {
            CodecError::Spec { reason, .. } => CodecError::Spec {
                spec: vladdb_codecs::spec::clip(spec),
                reason,
            },
            e => e,
        })?;
        let index_dim = encoder.as_ref().map_or(dim, |e| e.dim_out(dim));
        if index_dim > MAX_DIM {
            return Err(Error::InvalidArgument(format!(
                "the encoder's vectors would have {index_dim} dimensions, more than {MAX_DIM}"
            )));
        }
        vladdb_codecs::index::validate_spec(&index, index_dim)?;
        let text = match &encoder {
            Some(e) => format!("{e},{index}"),
            None => index.to_string(),
        };
        Ok(FullSpec {
            encoder,
            index,
            index_dim,
            text,
        })
    }
}

/// True when `e` is a file that does not exist (a file removed under a reader).
fn is_not_found(e: &Error) -> bool {
    let io = match e {
        Error::Io { source, .. } => source,
        Error::Storage(crate::storage::StorageError::Io { source, .. }) => source,
        _ => return false,
    };
    io.kind() == std::io::ErrorKind::NotFound
}

fn open_storage(path: &Path) -> Result<FsStorage> {
    if !path.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{}: not a vladdb database (no such directory)",
            path.display()
        )));
    }
    Ok(FsStorage::open(path)?)
}
