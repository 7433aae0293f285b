//! Deletes files: a per-segment tombstone bitset ([`Tombstones`]), written as a new
//! immutable file each time it changes (the manifest names the one in force) and validated
//! when loaded: magic, version, segment id, row count, crc of the header and of the bits,
//! file length, the stored popcount and zero bits past the last row.

use std::path::Path;

use super::bytes::LeReader;
use super::directory::{Storage, write_file_atomic};
use super::error::{StorageError, StorageResult};

/// Magic at the start of a deletes file.
pub const DELETES_MAGIC: [u8; 8] = *b"VLDB-DEL";
/// The deletes format version this build writes and reads.
pub const DELETES_VERSION: u32 = 1;
/// Size of the header before the bitset words.
pub const DELETES_HEADER_LEN: usize = 48;

/// A file name for the deletes of `segment_id`, unique through the `file_number` counter.
pub fn deletes_file_name(segment_id: u64, file_number: u64) -> String {
    format!("del-{segment_id:016x}-{file_number:016x}.del")
}

/// Which rows of one segment are deleted: one bit per row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tombstones {
    rows: u64,
    words: Vec<u64>,
    deleted: u64,
}

impl Tombstones {
    /// No row deleted, for a segment of `rows` rows.
    pub fn new(rows: u64) -> StorageResult<Tombstones> {
        let words = usize::try_from(rows.div_ceil(64)).map_err(|_| {
            StorageError::InvalidArgument(format!("{rows} rows do not fit in memory"))
        })?;
        Ok(Tombstones {
            rows,
            words: vec![0; words],
            deleted: 0,
        })
    }

    /// Rows covered.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Rows marked deleted.
    pub fn deleted(&self) -> u64 {
        self.deleted
    }

    /// The bitset: bit `r % 64` of word `r / 64` is row `r`.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// True when `row` is deleted (rows past the end are not).
    pub fn contains(&self, row: u64) -> bool {
        row < self.rows && self.words[(row / 64) as usize] & (1 << (row % 64)) != 0
    }

    /// Marks `row` deleted; returns false if it already was. Out-of-range rows are an error.
    pub fn insert(&mut self, row: u64) -> StorageResult<bool> {
        if row >= self.rows {
            return Err(StorageError::InvalidArgument(format!(
                "row {row} out of range for a segment of {} rows",
                self.rows
            )));
        }
        let word = &mut self.words[(row / 64) as usize];
        let bit = 1u64 << (row % 64);
        if *word & bit != 0 {
            return Ok(false);
        }
        *word |= bit;
        self.deleted += 1;
        Ok(true)
    }

    /// Serialises the bitset for segment `segment_id`.
    pub fn encode(&self, segment_id: u64) -> Vec<u8> {
        let mut bits = Vec::with_capacity(self.words.len() * 8);
        for w in &self.words {
            bits.extend_from_slice(&w.to_le_bytes());
        }
        let mut out = Vec::with_capacity(DELETES_HEADER_LEN + bits.len());
        out.extend_from_slice(&DELETES_MAGIC);
        out.extend_from_slice(&DELETES_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&segment_id.to_le_bytes());
        out.extend_from_slice(&self.rows.to_le_bytes());
        out.extend_from_slice(&self.deleted.to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&bits).to_le_bytes());
        let header_crc = crc32fast::hash(&out);
        out.extend_from_slice(&header_crc.to_le_bytes());
        out.extend_from_slice(&bits);
        out
    }

    /// Parses and validates a deletes file; `expected` = `(segment id, rows)` from the
    /// manifest, checked when given. Returns the segment id and the bitset.
    pub fn decode(
        bytes: &[u8],
        path: &Path,
        expected: Option<(u64, u64)>,
    ) -> StorageResult<(u64, Tombstones)> {
        let corrupt = |reason: String| StorageError::corrupt(path, reason);
        let mut r = LeReader::new(bytes, path);
        if r.array::<8>("deletes header")? != DELETES_MAGIC {
            return Err(corrupt("bad magic: not a vladdb deletes file".to_string()));
        }
        let version = r.u32("deletes header")?;
        let reserved = r.u32("deletes header")?;
        let segment_id = r.u64("deletes header")?;
        let rows = r.u64("deletes header")?;
        let deleted = r.u64("deletes header")?;
        let bits_crc = r.u32("deletes header")?;
        let header_crc = r.u32("deletes header")?;
        if crc32fast::hash(&bytes[..DELETES_HEADER_LEN - 4]) != header_crc {
            return Err(corrupt("deletes header checksum mismatch".to_string()));
        }
        if version != DELETES_VERSION {
            return Err(StorageError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                supported: DELETES_VERSION,
            });
        }
        if reserved != 0 {
            return Err(corrupt("reserved header bytes are not zero".to_string()));
        }
        if let Some((want_segment, want_rows)) = expected
            && (want_segment != segment_id || want_rows != rows)
        {
            return Err(corrupt(format!(
                "deletes for segment {segment_id} of {rows} rows, the manifest expects \
                 segment {want_segment} of {want_rows} rows"
            )));
        }
        let words = rows.div_ceil(64);
        if words.checked_mul(8) != Some(r.remaining() as u64) {
            return Err(corrupt(format!(
                "{} bytes of bits for {rows} rows (expected {} bytes)",
                r.remaining(),
                words.saturating_mul(8)
            )));
        }
        let bits = r.bytes(r.remaining(), "deletes bits")?;
        if crc32fast::hash(bits) != bits_crc {
            return Err(corrupt("deletes bits checksum mismatch".to_string()));
        }
        let words: Vec<u64> = bits
            .chunks_exact(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                u64::from_le_bytes(w)
            })
            .collect();
        if rows % 64 != 0
            && let Some(&last) = words.last()
            && last >> (rows % 64) != 0
        {
            return Err(corrupt("bits set past the last row".to_string()));
        }
        let count: u64 = words.iter().map(|w| u64::from(w.count_ones())).sum();
        if count != deleted {
            return Err(corrupt(format!(
                "{count} bits set, the header says {deleted} deleted rows"
            )));
        }
        Ok((
            segment_id,
            Tombstones {
                rows,
                words,
                deleted,
            },
        ))
    }

    /// Writes the bitset as the new immutable file `name` (atomically and durably).
    pub fn write(&self, storage: &dyn Storage, name: &str, segment_id: u64) -> StorageResult<()> {
        write_file_atomic(storage, name, &self.encode(segment_id))
    }

    /// Loads and validates deletes file `name` for segment `segment_id` of `rows` rows.
    pub fn load(
        storage: &dyn Storage,
        name: &str,
        segment_id: u64,
        rows: u64,
    ) -> StorageResult<Tombstones> {
        let bytes = storage.read(name)?;
        let (_, tombstones) =
            Tombstones::decode(&bytes, &storage.path_of(name), Some((segment_id, rows)))?;
        Ok(tombstones)
    }
}
