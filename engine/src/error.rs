//! The engine's typed error: every fallible function in `vladdb` returns [`enum@Error`].
//!
//! Messages are one line and name the file (and, for malformed vector files, the byte
//! offset) so that the CLI can print them as they are.

use std::path::PathBuf;

use thiserror::Error;
use vladdb_codecs::CodecError;

/// Result alias used across the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the engine.
#[derive(Debug, Error)]
pub enum Error {
    /// An operating-system I/O error on `path`.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A vector file (`.fvecs`, `.bvecs`, `.ivecs`, `.npy`) is malformed or unsupported.
    #[error("{}: {reason} (at byte {offset})", path.display())]
    VectorFile {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// An error from the math layer.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A storage file is damaged (bad checksum, inconsistent header, ...).
    #[error("{}: corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// An error from the storage layer (I/O, corruption, lock, poisoned writer, ...).
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// A parameter given by the caller is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`Error::VectorFile`] for `path` at byte `offset`.
    pub fn vector_file(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Error {
        Error::VectorFile {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_and_name_the_file() {
        let e = Error::vector_file("/tmp/x.fvecs", 132, "truncated: 3 trailing bytes");
        assert_eq!(
            e.to_string(),
            "/tmp/x.fvecs: truncated: 3 trailing bytes (at byte 132)"
        );
        let e = Error::io(
            "/nope/a.bvecs",
            std::io::Error::new(std::io::ErrorKind::NotFound, "not found"),
        );
        assert_eq!(e.to_string(), "/nope/a.bvecs: not found");
        let e = Error::Corrupt {
            path: "seg.vdb".into(),
            reason: "bad checksum".into(),
        };
        assert_eq!(e.to_string(), "seg.vdb: corrupt: bad checksum");
        let e: Error = CodecError::NotTrained.into();
        assert_eq!(e.to_string(), "the index is not trained");
        for e in [e, Error::InvalidArgument("k = 0".into())] {
            assert!(!e.to_string().contains('\n'));
        }
    }
}
