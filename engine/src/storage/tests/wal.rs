//! Write-ahead log: record round trips, commit grouping, torn tails at every length,
//! byte flips, recovery + append, rotation.

use std::path::Path;

use super::super::wal::{
    WAL_HEADER_LEN, WalRecord, WalRecovery, WalTail, WalWriter, list_wal_generations,
    parse_wal_file_name, read_wal, read_wal_file, remove_obsolete_wals, wal_file_name,
};
use super::super::{MemStorage, Storage, StorageError};

fn batches() -> Vec<Vec<WalRecord>> {
    vec![
        vec![
            WalRecord::Add {
                id: 1,
                vector: vec![1, 2, 3, 4],
                name: Some("img/001.jpg".into()),
            },
            WalRecord::Add {
                id: u64::MAX,
                vector: vec![],
                name: None,
            },
            WalRecord::Commit { seq: 1 },
        ],
        vec![WalRecord::Delete { id: 1 }, WalRecord::Commit { seq: 2 }],
        vec![
            WalRecord::Add {
                id: 7,
                vector: (0..=255).collect(),
                name: Some(String::new()),
            },
            WalRecord::Commit { seq: 3 },
        ],
    ]
}

/// A log holding `batches()`; returns it with the byte offset after each record.
fn sample_log(storage: &MemStorage) -> (Vec<u8>, Vec<u64>) {
    let mut wal = WalWriter::create(storage, 5).unwrap();
    assert!(wal.is_empty());
    let mut ends = Vec::new();
    for batch in batches() {
        for record in &batch {
            wal.append(record).unwrap();
            ends.push(wal.len());
        }
        wal.sync().unwrap();
    }
    (storage.read(&wal_file_name(5)).unwrap(), ends)
}

fn read(bytes: &[u8]) -> Result<WalRecovery, StorageError> {
    read_wal(bytes, Path::new("db/wal.log"), None)
}

#[test]
fn round_trip() {
    let storage = MemStorage::new();
    let (bytes, ends) = sample_log(&storage);
    let r = read_wal_file(&storage, 5).unwrap();
    assert_eq!(r.records, batches().concat());
    assert_eq!(
        (r.generation, r.tail.clone(), r.uncommitted),
        (5, WalTail::Clean, 0)
    );
    assert_eq!(r.committed_len, bytes.len() as u64);
    assert_eq!(*ends.last().unwrap(), bytes.len() as u64);
    // The file name's generation must match the header's.
    let err = read_wal(&bytes, Path::new("x"), Some(6)).unwrap_err();
    assert!(err.is_corrupt());
}

#[test]
fn every_truncation_keeps_exactly_the_whole_commits_before_it() {
    let storage = MemStorage::new();
    let (bytes, ends) = sample_log(&storage);
    let all = batches().concat();
    for len in 0..bytes.len() {
        let result = read(&bytes[..len]);
        if (len as u64) < WAL_HEADER_LEN {
            assert!(result.unwrap_err().is_corrupt(), "len {len}");
            continue;
        }
        let r = result.unwrap();
        let whole = ends.iter().filter(|&&e| e <= len as u64).count();
        let committed = all[..whole]
            .iter()
            .rposition(|rec| matches!(rec, WalRecord::Commit { .. }))
            .map_or(0, |i| i + 1);
        assert_eq!(r.records, &all[..committed], "len {len}");
        assert_eq!(r.uncommitted, whole - committed, "len {len}");
        let is_boundary = len as u64 == WAL_HEADER_LEN || ends.contains(&(len as u64));
        assert_eq!(r.tail == WalTail::Clean, is_boundary, "len {len}");
    }
}

#[test]
fn a_flipped_byte_ends_the_log_at_or_before_its_record() {
    let storage = MemStorage::new();
    let (bytes, ends) = sample_log(&storage);
    let all = batches().concat();
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x04;
        match read(&bad) {
            Err(err) => {
                assert!(i < WAL_HEADER_LEN as usize, "byte {i}: {err}");
                assert!(err.is_corrupt());
            }
            Ok(r) => {
                assert!(i >= WAL_HEADER_LEN as usize, "header flip {i} undetected");
                // The damaged record and everything after it are dropped.
                let damaged = ends.iter().position(|&e| e > i as u64).unwrap();
                assert!(r.records.len() <= damaged, "byte {i}");
                assert_eq!(r.records, &all[..r.records.len()]);
                assert!(matches!(r.tail, WalTail::Torn { offset, .. } if offset <= i as u64));
            }
        }
    }
}

#[test]
fn recovery_truncates_the_tail_and_appends_after_it() {
    let storage = MemStorage::new();
    let mut wal = WalWriter::create(&storage, 1).unwrap();
    wal.append(&WalRecord::Delete { id: 3 }).unwrap();
    wal.append(&WalRecord::Commit { seq: 1 }).unwrap();
    // An uncommitted record (its call never returned) and a torn half record.
    wal.append(&WalRecord::Delete { id: 4 }).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let mut bytes = storage.read(&wal_file_name(1)).unwrap();
    bytes.extend_from_slice(&[9, 0, 0, 0, 1, 2]);
    storage.set_contents(&wal_file_name(1), bytes).unwrap();

    let storage = storage.crash_process();
    let r = read_wal_file(&storage, 1).unwrap();
    assert_eq!(r.records.len(), 2);
    assert_eq!(r.uncommitted, 1);
    assert!(matches!(r.tail, WalTail::Torn { .. }));
    let mut wal = WalWriter::open_recovered(&storage, &r).unwrap();
    assert_eq!(
        storage.file_len(&wal_file_name(1)).unwrap(),
        r.committed_len
    );
    wal.append(&WalRecord::Delete { id: 5 }).unwrap();
    wal.append(&WalRecord::Commit { seq: 2 }).unwrap();
    wal.sync().unwrap();
    let r = read_wal_file(&storage.crash_power_loss(), 1).unwrap();
    assert_eq!(
        r.records,
        [
            WalRecord::Delete { id: 3 },
            WalRecord::Commit { seq: 1 },
            WalRecord::Delete { id: 5 },
            WalRecord::Commit { seq: 2 },
        ]
    );
    assert_eq!(r.tail, WalTail::Clean);
}

#[test]
fn rotation_lists_and_removes_old_generations() {
    let storage = MemStorage::new();
    for generation in [3u64, 1, 2] {
        WalWriter::create(&storage, generation).unwrap();
    }
    assert!(
        WalWriter::create(&storage, 2).is_err(),
        "existing generation"
    );
    storage.create("wal-zz.log").unwrap();
    assert_eq!(list_wal_generations(&storage).unwrap(), [1, 2, 3]);
    assert_eq!(remove_obsolete_wals(&storage, 3).unwrap(), 2);
    assert_eq!(list_wal_generations(&storage).unwrap(), [3]);
    assert_eq!(parse_wal_file_name(&wal_file_name(0xabc)), Some(0xabc));
    for bad in [
        "wal-1.log",
        "wal-000000000000000g.log",
        "x-0000000000000001.log",
    ] {
        assert_eq!(parse_wal_file_name(bad), None);
    }
    // Removal is durable.
    let after = storage.crash_power_loss();
    assert_eq!(list_wal_generations(&after).unwrap(), [3]);
}

#[test]
fn oversized_and_bad_records() {
    let mut out = Vec::new();
    let huge = WalRecord::Add {
        id: 1,
        vector: vec![0; 17 << 20],
        name: None,
    };
    assert!(matches!(
        huge.encode_into(&mut out),
        Err(StorageError::InvalidArgument(_))
    ));
    assert!(out.is_empty(), "a failed encode leaves nothing behind");
    let p = Path::new("w");
    for payload in [
        &[][..],
        &[0],
        &[4, 0],
        &[2, 1, 2],
        &[3; 10],
        &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
    ] {
        assert!(
            WalRecord::decode_payload(payload, p)
                .unwrap_err()
                .is_corrupt(),
            "{payload:?}"
        );
    }
    // A name that is not UTF-8.
    let mut payload = vec![1];
    payload.extend_from_slice(&1u64.to_le_bytes());
    payload.extend_from_slice(&0u32.to_le_bytes());
    payload.push(1);
    payload.extend_from_slice(&2u32.to_le_bytes());
    payload.extend_from_slice(&[0xff, 0xfe]);
    assert!(
        WalRecord::decode_payload(&payload, p)
            .unwrap_err()
            .to_string()
            .contains("UTF-8")
    );
}
