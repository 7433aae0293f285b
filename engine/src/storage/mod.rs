//! The storage layer: the file-level building blocks a vladdb database directory is made of.
//!
//! - [`Storage`] / [`WritableFile`]: the interface every file access goes through, with a
//!   real implementation ([`FsStorage`]) and a fault-injecting in-memory one ([`MemStorage`]).
//! - [`DirLock`]: the single-writer lock (`LOCK`, an advisory `flock`-style lock).
//! - [`Manifest`]: names the live files; published atomically (`MANIFEST`).
//! - [`segment`]: immutable, memory-mapped segment containers of 64-byte aligned sections.
//! - [`wal`]: the write-ahead log (records with length + crc32, torn tail cut on recovery).
//! - [`deletes`]: per-segment tombstone bitsets, each an immutable file.
//!
//! Byte layouts and the durability protocol are specified in `docs/format.md`.

pub mod bytes;
pub mod deletes;
pub mod directory;
pub mod error;
pub mod fs;
pub mod manifest;
pub mod memory;
pub mod segment;
pub mod wal;

#[cfg(test)]
mod tests;

pub use bytes::{ElementKind, FileBytes, Pod};
pub use deletes::Tombstones;
pub use directory::{
    DirLock, LOCK_FILE, Poison, SharedStorage, Storage, WritableFile, remove_temp_files,
    validate_name, write_file_atomic,
};
pub use error::{StorageError, StorageResult};
pub use fs::FsStorage;
pub use manifest::{MANIFEST_FILE, Manifest, SegmentEntry};
pub use memory::{Fault, MemStorage};
pub use segment::{SectionInfo, SectionSpec, Segment, SegmentWriter, write_segment};
pub use wal::{WalRecord, WalWriter};
