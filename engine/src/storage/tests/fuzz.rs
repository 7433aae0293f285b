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
