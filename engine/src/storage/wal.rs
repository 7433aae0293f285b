//! The write-ahead log: `wal-<generation>.log` files of checksummed records.
//!
//! A log starts with a 32-byte header (magic, version, generation, crc) and is created
//! under a temp name and renamed into place, so a log with its final name always has a
//! whole header. Records are `[len u32][crc32 u32][payload]` with the crc over the length
//! and the payload; a payload is an [`WalRecord`] (add / delete / commit marker).
//!
//! Recovery ([`read_wal`]) reads records until the first torn or corrupt one and keeps only
//! those up to the last commit marker: what follows it belongs to a call that never returned.
//! [`WalWriter::open_recovered`] truncates the file there before appending again. Rotation:
//! a new generation is started after the write buffer is flushed to a segment; older logs
//! are removed ([`remove_obsolete_wals`]) once the manifest names the new generation.

use std::path::Path;

use super::bytes::LeReader;
use super::directory::{Storage, TEMP_SUFFIX, WritableFile};
use super::error::{StorageError, StorageResult};

/// Magic at the start of a log file.
pub const WAL_MAGIC: [u8; 8] = *b"VLDB-WAL";
/// The log format version this build writes and reads.
pub const WAL_VERSION: u32 = 1;
/// Size of the log header.
pub const WAL_HEADER_LEN: u64 = 32;
/// Size of a record header (length + crc).
pub const RECORD_HEADER_LEN: u64 = 8;
/// Largest record payload accepted (a longer length field means a corrupt record).
pub const MAX_RECORD_LEN: u32 = 16 << 20;

const KIND_ADD: u8 = 1;
const KIND_DELETE: u8 = 2;
const KIND_COMMIT: u8 = 3;

/// Appended bytes buffered before they reach the file.
const BUFFER_LEN: usize = 1 << 20;

/// One logged operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalRecord {
    /// Add (or replace) row `id` with an encoded vector and an optional name.
    Add {
        id: u64,
        vector: Vec<u8>,
        name: Option<String>,
    },
    /// Delete row `id`.
    Delete { id: u64 },
    /// Everything logged before this marker (since the previous one) forms one commit.
    Commit { seq: u64 },
}

impl WalRecord {
    /// Appends the framed record (`len`, `crc`, payload) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> StorageResult<()> {
        let start = out.len();
        out.extend_from_slice(&[0u8; RECORD_HEADER_LEN as usize]);
        match self {
            WalRecord::Add { id, vector, name } => {
                out.push(KIND_ADD);
                out.extend_from_slice(&id.to_le_bytes());
                let vector_len = u32::try_from(vector.len()).map_err(|_| too_long("vector"))?;
                out.extend_from_slice(&vector_len.to_le_bytes());
                out.extend_from_slice(vector);
                match name {
                    None => out.push(0),
                    Some(name) => {
                        out.push(1);
                        let name_len = u32::try_from(name.len()).map_err(|_| too_long("name"))?;
                        out.extend_from_slice(&name_len.to_le_bytes());
                        out.extend_from_slice(name.as_bytes());
                    }
                }
            }
            WalRecord::Delete { id } => {
                out.push(KIND_DELETE);
                out.extend_from_slice(&id.to_le_bytes());
            }
            WalRecord::Commit { seq } => {
                out.push(KIND_COMMIT);
                out.extend_from_slice(&seq.to_le_bytes());
            }
        }
        let payload_len = out.len() - start - RECORD_HEADER_LEN as usize;
        let len = match u32::try_from(payload_len) {
            Ok(len) if len <= MAX_RECORD_LEN => len,
            _ => {
                out.truncate(start);
                return Err(too_long("record"));
            }
        };
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&len.to_le_bytes());
        hasher.update(&out[start + RECORD_HEADER_LEN as usize..]);
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&hasher.finalize().to_le_bytes());
        Ok(())
    }

    /// Parses one record payload (without its frame).
    pub fn decode_payload(payload: &[u8], path: &Path) -> StorageResult<WalRecord> {
        let mut r = LeReader::new(payload, path);
        let record = match r.u8("log record kind")? {
            KIND_ADD => {
                let id = r.u64("add record")?;
                let vector_len = r.u32("add record")? as usize;
                let vector = r.bytes(vector_len, "add record vector")?.to_vec();
                let name = match r.u8("add record")? {
                    0 => None,
                    1 => {
                        let name_len = r.u32("add record")? as usize;
                        let bytes = r.bytes(name_len, "add record name")?;
                        let name = std::str::from_utf8(bytes).map_err(|_| {
                            StorageError::corrupt(path, "add record name is not UTF-8")
                        })?;
                        Some(name.to_string())
                    }
                    flag => {
                        return Err(StorageError::corrupt(
                            path,
                            format!("add record has name flag {flag}"),
                        ));
                    }
                };
                WalRecord::Add { id, vector, name }
            }
            KIND_DELETE => WalRecord::Delete {
                id: r.u64("delete record")?,
            },
            KIND_COMMIT => WalRecord::Commit {
                seq: r.u64("commit record")?,
            },
            kind => {
                return Err(StorageError::corrupt(
                    path,
                    format!("unknown log record kind {kind}"),
                ));
            }
        };
        if r.remaining() != 0 {
            return Err(StorageError::corrupt(
                path,
                format!("{} stray bytes after a log record", r.remaining()),
            ));
        }
        Ok(record)
    }
}

fn too_long(what: &str) -> StorageError {
    StorageError::InvalidArgument(format!("log {what} longer than {MAX_RECORD_LEN} bytes"))
}

/// The file name of log generation `generation`.
pub fn wal_file_name(generation: u64) -> String {
    format!("wal-{generation:016x}.log")
}

/// The generation of a log file name, `None` if `name` is not one.
pub fn parse_wal_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The generations of all log files in `storage`, ascending.
pub fn list_wal_generations(storage: &dyn Storage) -> StorageResult<Vec<u64>> {
    let mut gens: Vec<u64> = storage
        .list()?
        .iter()
        .filter_map(|n| parse_wal_file_name(n))
        .collect();
    gens.sort_unstable();
    Ok(gens)
}

/// Removes every log older than `keep_from` (no longer needed by the manifest), then fsyncs
/// the directory. Returns how many were removed.
pub fn remove_obsolete_wals(storage: &dyn Storage, keep_from: u64) -> StorageResult<usize> {
    let mut removed = 0;
    for generation in list_wal_generations(storage)? {
        if generation < keep_from {
            storage.remove(&wal_file_name(generation))?;
            removed += 1;
        }
    }
    if removed > 0 {
        storage.sync_dir()?;
    }
    Ok(removed)
}

/// How a log ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalTail {
    /// The last record ended exactly at the end of the file.
    Clean,
    /// At `offset` a record is torn or corrupt (`reason`); everything from there is ignored.
    Torn { offset: u64, reason: String },
}

/// What [`read_wal`] found in a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalRecovery {
    pub generation: u64,
    /// Records up to and including the last commit marker, in log order.
    pub records: Vec<WalRecord>,
    /// Offset just after the last commit marker (the header length if there is none).
    pub committed_len: u64,
    /// Offset just after the last whole, valid record.
    pub valid_len: u64,
    /// Length of the file as found.
    pub file_len: u64,
    /// Valid records after the last commit marker (dropped: their call never returned).
    pub uncommitted: usize,
    pub tail: WalTail,
}

/// Parses a whole log held in `bytes`. A damaged header is an error; a damaged record ends
/// the log there (see [`WalTail`]). `expected_generation` is checked when given.
pub fn read_wal(
    bytes: &[u8],
    path: &Path,
    expected_generation: Option<u64>,
) -> StorageResult<WalRecovery> {
    let mut r = LeReader::new(bytes, path);
    if r.array::<8>("log header")? != WAL_MAGIC {
        return Err(StorageError::corrupt(path, "bad magic: not a vladdb log"));
    }
    let version = r.u32("log header")?;
    let reserved = r.u32("log header")?;
    let generation = r.u64("log header")?;
    let reserved2 = r.u32("log header")?;
    let header_crc = r.u32("log header")?;
    if crc32fast::hash(&bytes[..WAL_HEADER_LEN as usize - 4]) != header_crc {
        return Err(StorageError::corrupt(path, "log header checksum mismatch"));
    }
    if version != WAL_VERSION {
        return Err(StorageError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: WAL_VERSION,
        });
    }
    if reserved != 0 || reserved2 != 0 {
        return Err(StorageError::corrupt(
            path,
            "reserved log header bytes are not zero",
        ));
    }
    if let Some(expected) = expected_generation
        && expected != generation
    {
        return Err(StorageError::corrupt(
            path,
            format!("log header says generation {generation}, file name says {expected}"),
        ));
    }
    let mut recovery = WalRecovery {
        generation,
        records: Vec::new(),
        committed_len: WAL_HEADER_LEN,
        valid_len: WAL_HEADER_LEN,
        file_len: bytes.len() as u64,
        uncommitted: 0,
        tail: WalTail::Clean,
    };
    let mut pending = Vec::new();
    while r.remaining() > 0 {
        let offset = r.position() as u64;
        match next_record(&mut r, path) {
            Ok(record) => {
                recovery.valid_len = r.position() as u64;
                let is_commit = matches!(record, WalRecord::Commit { .. });
                pending.push(record);
                if is_commit {
                    recovery.records.append(&mut pending);
                    recovery.committed_len = recovery.valid_len;
                }
            }
            Err(e) => {
                let reason = match e {
                    StorageError::Corrupt { reason, .. } => reason,
                    other => other.to_string(),
                };
                recovery.tail = WalTail::Torn { offset, reason };
                break;
            }
        }
    }
    recovery.uncommitted = pending.len();
    Ok(recovery)
}

fn next_record(r: &mut LeReader<'_>, path: &Path) -> StorageResult<WalRecord> {
    let len = r.u32("record length")?;
    let crc = r.u32("record checksum")?;
    if len == 0 || len > MAX_RECORD_LEN {
        return Err(StorageError::corrupt(path, format!("record length {len}")));
    }
    let payload = r.bytes(len as usize, "record payload")?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(payload);
    if hasher.finalize() != crc {
        return Err(StorageError::corrupt(path, "record checksum mismatch"));
    }
    WalRecord::decode_payload(payload, path)
}

/// Reads log `generation` from `storage` (without changing it).
pub fn read_wal_file(storage: &dyn Storage, generation: u64) -> StorageResult<WalRecovery> {
    let name = wal_file_name(generation);
    let bytes = storage.read(&name)?;
    read_wal(&bytes, &storage.path_of(&name), Some(generation))
}

/// Appends records to one log generation. Any failed write or fsync poisons the writer:
/// every later call returns [`StorageError::Poisoned`] (a failed fsync also poisons the
/// storage handle). Reopen and recover to continue.
#[derive(Debug)]
pub struct WalWriter {
    file: Box<dyn WritableFile>,
    generation: u64,
    buffer: Vec<u8>,
    poisoned: bool,
    path: std::path::PathBuf,
}

impl WalWriter {
    /// Creates log `generation` (it must not exist): header written to a temp file, fsynced,
    /// renamed into place, directory fsynced.
    pub fn create(storage: &dyn Storage, generation: u64) -> StorageResult<WalWriter> {
        let name = wal_file_name(generation);
        if storage.exists(&name)? {
            return Err(StorageError::InvalidArgument(format!(
                "log {name} already exists"
            )));
        }
        let mut header = Vec::with_capacity(WAL_HEADER_LEN as usize);
        header.extend_from_slice(&WAL_MAGIC);
        header.extend_from_slice(&WAL_VERSION.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&generation.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        let crc = crc32fast::hash(&header);
        header.extend_from_slice(&crc.to_le_bytes());
        let temp = format!("{name}{TEMP_SUFFIX}");
        let mut file = storage.create(&temp)?;
        file.write_all(&header)?;
        file.sync()?;
        drop(file);
        storage.rename(&temp, &name)?;
        storage.sync_dir()?;
        let file = storage.open_append(&name, WAL_HEADER_LEN)?;
        Ok(WalWriter::new(storage, file, generation))
    }

    /// Reopens a recovered log for appending: truncates it to its committed length (cutting a
    /// torn or uncommitted tail) and fsyncs that truncation.
    pub fn open_recovered(
        storage: &dyn Storage,
        recovery: &WalRecovery,
    ) -> StorageResult<WalWriter> {
        let name = wal_file_name(recovery.generation);
        let mut file = storage.open_append(&name, recovery.committed_len)?;
        if recovery.committed_len != recovery.file_len {
            file.sync()?;
        }
        Ok(WalWriter::new(storage, file, recovery.generation))
    }

    fn new(storage: &dyn Storage, file: Box<dyn WritableFile>, generation: u64) -> WalWriter {
        WalWriter {
            path: storage.path_of(file.name()),
            file,
            generation,
            buffer: Vec::new(),
            poisoned: false,
        }
    }

    /// The log's generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Bytes in the log including buffered, not yet written records.
    pub fn len(&self) -> u64 {
        self.file.len() + self.buffer.len() as u64
    }

    /// True when the log holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() <= WAL_HEADER_LEN
    }

    /// Appends a record (buffered; durable only after [`WalWriter::sync`]).
    pub fn append(&mut self, record: &WalRecord) -> StorageResult<()> {
        self.check()?;
        record.encode_into(&mut self.buffer)?;
        if self.buffer.len() >= BUFFER_LEN {
            self.write_buffer()?;
        }
        Ok(())
    }

    /// Writes out buffered records and fsyncs: every record appended so far is durable
    /// when this returns `Ok`.
    pub fn sync(&mut self) -> StorageResult<()> {
        self.check()?;
        self.write_buffer()?;
        let result = self.file.sync();
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    fn write_buffer(&mut self) -> StorageResult<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(&self.buffer);
        self.buffer.clear();
        if result.is_err() {
            // The file may hold part of the buffer: nothing more may follow it.
            self.poisoned = true;
        }
        result
    }

    fn check(&self) -> StorageResult<()> {
        if self.poisoned {
            return Err(StorageError::Poisoned {
                path: self.path.clone(),
            });
        }
        Ok(())
    }
}
