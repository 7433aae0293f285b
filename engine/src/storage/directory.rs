//! The storage interface every database file goes through: [`Storage`] (a flat database
//! directory), [`WritableFile`] (a file being written), [`DirLock`] (the single-writer lock),
//! the shared fsync-failure [`Poison`] flag and [`write_file_atomic`], the
//! write-fsync-rename-fsync-directory publication used for every small file.
//!
//! Two implementations exist: [`super::FsStorage`] (the real file system) and
//! [`super::MemStorage`] (an in-memory disk with fault injection and crash simulation).

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::bytes::FileBytes;
use super::error::{StorageError, StorageResult};

/// Name of the lock file inside a database directory.
pub const LOCK_FILE: &str = "LOCK";

/// Suffix of temporary files; a file with it is never live and is removed at open.
pub const TEMP_SUFFIX: &str = ".tmp";

/// A flat directory of database files. Names are plain file names (see [`validate_name`]).
///
/// Durability model: data written to a file is durable after [`WritableFile::sync`]; a
/// created, renamed or removed name is durable after [`Storage::sync_dir`]. A failed fsync
/// (of a file or of the directory) *poisons* the handle: every later mutating call returns
/// [`StorageError::Poisoned`] (reads keep working). The failure is never retried and never
/// ignored; reopening the database recovers to its last durable state.
pub trait Storage: Debug + Send + Sync {
    /// The directory, used to name files in errors.
    fn root(&self) -> &Path;
    /// Creates `name` (truncating any existing file) for writing from the start.
    fn create(&self, name: &str) -> StorageResult<Box<dyn WritableFile>>;
    /// Opens an existing `name`, truncates it to `len` bytes and positions writes there.
    fn open_append(&self, name: &str, len: u64) -> StorageResult<Box<dyn WritableFile>>;
    /// Reads all of `name` into memory.
    fn read(&self, name: &str) -> StorageResult<Vec<u8>>;
    /// Maps `name` read-only (an empty file gives empty bytes). Only for immutable files.
    fn map(&self, name: &str) -> StorageResult<FileBytes>;
    /// Length of `name` in bytes.
    fn file_len(&self, name: &str) -> StorageResult<u64>;
    /// True when `name` exists.
    fn exists(&self, name: &str) -> StorageResult<bool>;
    /// Atomically renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &str, to: &str) -> StorageResult<()>;
    /// Removes `name`.
    fn remove(&self, name: &str) -> StorageResult<()>;
    /// The names of all files in the directory, sorted.
    fn list(&self) -> StorageResult<Vec<String>>;
    /// Makes created, renamed and removed names durable (fsync of the directory).
    fn sync_dir(&self) -> StorageResult<()>;
    /// Takes the exclusive writer lock; fails with [`StorageError::Locked`] when another
    /// writer holds it. The lock is held until the returned guard is dropped.
    fn lock(&self) -> StorageResult<DirLock>;
    /// The shared poison flag of this handle.
    fn poison(&self) -> &Poison;

    /// The full path of `name`, for error messages.
    fn path_of(&self, name: &str) -> PathBuf {
        self.root().join(name)
    }
}

/// A file being written sequentially.
pub trait WritableFile: Debug + Send {
    /// Appends all of `buf`.
    fn write_all(&mut self, buf: &[u8]) -> StorageResult<()>;
    /// Makes everything written so far durable (fsync). A failure poisons the storage.
    fn sync(&mut self) -> StorageResult<()>;
    /// Bytes in the file (including what was written through this handle).
    fn len(&self) -> u64;
    /// The file's name, for error messages.
    fn name(&self) -> &str;
    /// True when the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The "an fsync failed" flag shared by a storage handle and every file it opened.
#[derive(Debug, Default)]
pub struct Poison {
    poisoned: AtomicBool,
    root: PathBuf,
}

impl Poison {
    pub fn new(root: PathBuf) -> Poison {
        Poison {
            poisoned: AtomicBool::new(false),
            root,
        }
    }

    /// Marks the storage as poisoned (after a failed fsync).
    pub fn set(&self) {
        self.poisoned.store(true, Ordering::SeqCst);
    }

    /// True after a failed fsync.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }

    /// `Err(Poisoned)` once poisoned; called before every mutating operation.
    pub fn check(&self) -> StorageResult<()> {
        if self.is_poisoned() {
            Err(StorageError::Poisoned {
                path: self.root.clone(),
            })
        } else {
            Ok(())
        }
    }
}

/// Guard of the exclusive writer lock; dropping it releases the lock.
pub struct DirLock {
    _release: Box<dyn Send + Sync>,
}

impl DirLock {
    /// Wraps whatever releases the lock when dropped (an open locked file, a flag guard, ...).
    pub fn new(release: Box<dyn Send + Sync>) -> DirLock {
        DirLock { _release: release }
    }
}

impl Debug for DirLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirLock")
    }
}

/// Checks that `name` is a plain file name: non-empty, at most 255 bytes, ASCII letters,
/// digits, `-`, `_` and `.`, not starting with `.`. Everything the engine writes has such a
/// name, so a manifest naming anything else is corrupt.
pub fn validate_name(name: &str) -> StorageResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(StorageError::InvalidName(name.to_string()))
    }
}

/// Publishes `bytes` as `name` atomically and durably: writes `name.tmp`, fsyncs it, renames
/// it over `name` and fsyncs the directory. After an error `name` is either absent or still
/// holds its previous content (a stale `name.tmp` may remain; [`remove_temp_files`] cleans up).
pub fn write_file_atomic(storage: &dyn Storage, name: &str, bytes: &[u8]) -> StorageResult<()> {
    validate_name(name)?;
    let temp = format!("{name}{TEMP_SUFFIX}");
    let mut file = storage.create(&temp)?;
    file.write_all(bytes)?;
    file.sync()?;
    drop(file);
    storage.rename(&temp, name)?;
    storage.sync_dir()
}

/// Removes every `*.tmp` file left by an interrupted write; returns how many were removed.
pub fn remove_temp_files(storage: &dyn Storage) -> StorageResult<usize> {
    let mut removed = 0;
    for name in storage.list()? {
        if name.ends_with(TEMP_SUFFIX) {
            storage.remove(&name)?;
            removed += 1;
        }
    }
    if removed > 0 {
        storage.sync_dir()?;
    }
    Ok(removed)
}

/// A shareable storage handle.
pub type SharedStorage = Arc<dyn Storage>;
