//! Deletes files: bitset operations, round trip, validation, truncation and byte flips.

use std::path::Path;

use super::super::deletes::{Tombstones, deletes_file_name};
use super::super::{MemStorage, StorageError};

fn sample(rows: u64) -> Tombstones {
    let mut t = Tombstones::new(rows).unwrap();
    for row in (0..rows).filter(|r| r % 7 == 3 || *r == rows - 1) {
        assert!(t.insert(row).unwrap());
    }
    t
}

fn decode(bytes: &[u8]) -> Result<(u64, Tombstones), StorageError> {
    Tombstones::decode(bytes, Path::new("db/x.del"), None)
}

#[test]
fn bitset_operations() {
    let mut t = Tombstones::new(130).unwrap();
    assert_eq!((t.rows(), t.deleted(), t.words().len()), (130, 0, 3));
    assert!(t.insert(129).unwrap());
    assert!(!t.insert(129).unwrap());
    assert!(t.insert(0).unwrap());
    assert!(t.contains(0) && t.contains(129) && !t.contains(1) && !t.contains(500));
    assert_eq!(t.deleted(), 2);
    assert!(matches!(
        t.insert(130),
        Err(StorageError::InvalidArgument(_))
    ));
    let empty = Tombstones::new(0).unwrap();
    assert!(!empty.contains(0));
}

#[test]
fn round_trip_through_storage() {
    let storage = MemStorage::new();
    for rows in [0u64, 1, 63, 64, 65, 1000] {
        let t = if rows == 0 {
            Tombstones::new(0).unwrap()
        } else {
            sample(rows)
        };
        let name = deletes_file_name(9, rows);
        t.write(&storage, &name, 9).unwrap();
        assert_eq!(Tombstones::load(&storage, &name, 9, rows).unwrap(), t);
        // The manifest's expectations are checked.
        let err = Tombstones::load(&storage, &name, 8, rows).unwrap_err();
        assert!(err.is_corrupt() && err.to_string().contains(&name), "{err}");
        assert!(Tombstones::load(&storage, &name, 9, rows + 1).is_err());
    }
}

#[test]
fn every_truncation_and_byte_flip_is_detected() {
    let bytes = sample(200).encode(3);
    assert_eq!(decode(&bytes).unwrap(), (3, sample(200)));
    for len in 0..bytes.len() {
        assert!(decode(&bytes[..len]).unwrap_err().is_corrupt(), "len {len}");
    }
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x40, 0xff] {
            let mut bad = bytes.clone();
            bad[i] ^= mask;
            assert!(decode(&bad).unwrap_err().is_corrupt(), "byte {i}");
        }
    }
}

#[test]
fn inconsistent_bits_are_rejected_even_with_valid_checksums() {
    // Rebuild files whose checksums are right but whose content lies.
    let reseal = |mut bytes: Vec<u8>| {
        let bits_crc = crc32fast::hash(&bytes[48..]);
        bytes[40..44].copy_from_slice(&bits_crc.to_le_bytes());
        let header_crc = crc32fast::hash(&bytes[..44]);
        bytes[44..48].copy_from_slice(&header_crc.to_le_bytes());
        bytes
    };
    let good = sample(70).encode(1);
    // A bit past the last row (row 70 of 70).
    let mut past_end = good.clone();
    past_end[48 + 8] |= 1 << 6;
    let err = decode(&reseal(past_end)).unwrap_err();
    assert!(err.to_string().contains("past the last row"), "{err}");
    // A popcount that disagrees with the header.
    let mut wrong_count = good.clone();
    wrong_count[48] ^= 1;
    let err = decode(&reseal(wrong_count)).unwrap_err();
    assert!(err.to_string().contains("bits set"), "{err}");
}
