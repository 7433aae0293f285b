//! The storage layer's typed error, [`StorageError`].
//!
//! Every message is one line and names the file it is about, so that callers (and the
//! CLI) can print it as it is. The engine's own `Error` maps each variant one to one.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Result alias used across the storage layer.
pub type StorageResult<T> = std::result::Result<T, StorageError>;

/// What can go wrong while reading or writing database files.
#[derive(Debug, Error)]
pub enum StorageError {
    /// An operating-system I/O error (or an injected fault) on `path`.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is damaged: bad magic, checksum, bounds, length or an inconsistent field.
    #[error("{}: corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// A file was written by a newer (or unknown) format version.
    #[error("{}: unsupported format version {found} (this build reads version {supported})", path.display())]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// Another writer holds the directory lock.
    #[error("{}: the database is locked by another writer", path.display())]
    Locked { path: PathBuf },
    /// An earlier fsync failed; the handle refuses every further write until it is reopened.
    #[error("{}: storage is poisoned by an earlier failed fsync; reopen the database", path.display())]
    Poisoned { path: PathBuf },
    /// A file name that is not a plain name inside the database directory.
    #[error("invalid file name {0:?}")]
    InvalidName(String),
    /// A parameter given by the caller is invalid (e.g. a section written with the wrong length).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl StorageError {
    /// A [`StorageError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> StorageError {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`StorageError::Corrupt`] for `path`.
    pub fn corrupt(path: &Path, reason: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// The file this error is about, when it names one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            StorageError::Io { path, .. }
            | StorageError::Corrupt { path, .. }
            | StorageError::UnsupportedVersion { path, .. }
            | StorageError::Locked { path }
            | StorageError::Poisoned { path } => Some(path),
            StorageError::InvalidName(_) | StorageError::InvalidArgument(_) => None,
        }
    }

    /// True for [`StorageError::Corrupt`] and [`StorageError::UnsupportedVersion`].
    pub fn is_corrupt(&self) -> bool {
        matches!(
            self,
            StorageError::Corrupt { .. } | StorageError::UnsupportedVersion { .. }
        )
    }
}
