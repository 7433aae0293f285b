//! Property tests: arbitrary bytes (and random damage to valid files) fed to every parser
//! must give `Ok` or a typed error, never a panic.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::super::bytes::FileBytes;
use super::super::deletes::Tombstones;
use super::super::manifest::Manifest;
use super::super::segment::{SectionSpec, Segment, write_segment};
use super::super::wal::{WalRecord, WalWriter, read_wal, wal_file_name};
use super::super::{MemStorage, Storage};
use super::sample_manifest;

fn parse_segment(bytes: &[u8]) {
    if let Ok(seg) = Segment::from_bytes(FileBytes::copy_from(bytes), PathBuf::from("s")) {
        let _ = seg.verify();
        for info in seg.sections().to_vec() {
            let _ = seg.typed::<u64>(&info.name);
            let _ = seg.typed::<f32>(&info.name);
            let _ = seg.bytes_of(&info.name);
        }
    }
}

fn parse_all(bytes: &[u8]) {
    let p = Path::new("f");
    let _ = Manifest::decode(bytes, p);
    parse_segment(bytes);
    let _ = read_wal(bytes, p, None);
    let _ = WalRecord::decode_payload(bytes, p);
    let _ = Tombstones::decode(bytes, p, None);
}

/// Valid files of each kind, to mutate.
fn valid_files() -> Vec<Vec<u8>> {
    let storage = MemStorage::new();
    let ids: Vec<u8> = (0..16u64).flat_map(|i| i.to_le_bytes()).collect();
    let codes = vec![3u8; 40];
    write_segment(
        &storage,
        "s.vseg",
        1,
        &[
            (SectionSpec::of::<u64>("ids", 16), ids.as_slice()),
            (SectionSpec::of::<u8>("codes", 40), codes.as_slice()),
        ],
    )
    .unwrap();
    let mut wal = WalWriter::create(&storage, 1).unwrap();
    wal.append(&WalRecord::Add {
        id: 1,
        vector: vec![1; 9],
        name: Some("n".into()),
    })
    .unwrap();
    wal.append(&WalRecord::Commit { seq: 1 }).unwrap();
    wal.sync().unwrap();
    let mut t = Tombstones::new(100).unwrap();
    t.insert(5).unwrap();
    vec![
        sample_manifest(1).encode().unwrap(),
        storage.read("s.vseg").unwrap(),
        storage.read(&wal_file_name(1)).unwrap(),
        t.encode(0),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        parse_all(&bytes);
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_magic_never_panic(
        kind in 0usize..4,
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let magic: &[u8] = [&b"VLDB-MAN"[..], b"VLDB-SEG", b"VLDB-WAL", b"VLDB-DEL"][kind];
        let mut file = magic.to_vec();
        file.extend_from_slice(&bytes);
        parse_all(&file);
    }

    #[test]
    fn damaged_valid_files_never_panic(
        kind in 0usize..4,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<Option<usize>>(),
    ) {
        let mut file = valid_files().swap_remove(kind);
        for (pos, value) in edits {
            let len = file.len();
            file[pos % len] = value;
        }
        if let Some(cut) = cut {
            file.truncate(cut % (file.len() + 1));
        }
        parse_all(&file);
    }
}

fn arb_record() -> impl Strategy<Value = WalRecord> {
    prop_oneof![
        (
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::option::of(".{0,12}")
        )
            .prop_map(|(id, vector, name)| WalRecord::Add { id, vector, name }),
        any::<u64>().prop_map(|id| WalRecord::Delete { id }),
        any::<u64>().prop_map(|seq| WalRecord::Commit { seq }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn wal_records_round_trip(records in proptest::collection::vec(arb_record(), 0..20)) {
        let storage = MemStorage::new();
        let mut wal = WalWriter::create(&storage, 9).unwrap();
        for r in &records {
            wal.append(r).unwrap();
        }
        wal.append(&WalRecord::Commit { seq: u64::MAX }).unwrap();
        wal.sync().unwrap();
        let bytes = storage.read(&wal_file_name(9)).unwrap();
        let recovery = read_wal(&bytes, Path::new("w"), Some(9)).unwrap();
        prop_assert_eq!(&recovery.records[..records.len()], records.as_slice());
        prop_assert_eq!(recovery.committed_len, bytes.len() as u64);
    }

    #[test]
    fn segments_round_trip(sections in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..200), 0..6)
    ) {
        let storage = MemStorage::new();
        let names: Vec<String> = (0..sections.len()).map(|i| format!("s{i}")).collect();
        let input: Vec<(SectionSpec, &[u8])> = sections
            .iter()
            .zip(&names)
            .map(|(bytes, name)| (SectionSpec::of::<u8>(name, bytes.len() as u64), bytes.as_slice()))
            .collect();
        write_segment(&storage, "p.vseg", 3, &input).unwrap();
        let seg = Segment::open(&storage, "p.vseg", true).unwrap();
        for (bytes, name) in sections.iter().zip(&names) {
            prop_assert_eq!(seg.bytes_of(name).unwrap(), bytes.as_slice());
            prop_assert_eq!(seg.section(name).unwrap().offset % 64, 0);
        }
    }

    #[test]
    fn tombstones_round_trip(rows in 0u64..700, marks in proptest::collection::vec(any::<u64>(), 0..50)) {
        let mut t = Tombstones::new(rows).unwrap();
        for m in marks {
            if rows > 0 {
                t.insert(m % rows).unwrap();
            }
        }
        let (segment, back) = Tombstones::decode(&t.encode(4), Path::new("d"), Some((4, rows))).unwrap();
        prop_assert_eq!(segment, 4);
        prop_assert_eq!(back, t);
    }
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Segment>();
    check::<MemStorage>();
    check::<super::super::FsStorage>();
    check::<super::super::DirLock>();
    check::<Tombstones>();
    check::<Manifest>();
}
