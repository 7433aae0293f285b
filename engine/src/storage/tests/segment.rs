//! Segment containers: round trips (memory and real mmap), typed zero-copy access, writer
//! misuse, and every truncation and byte flip of a small segment.

use std::path::PathBuf;

use super::super::bytes::{ElementKind, FileBytes};
use super::super::segment::{SectionSpec, Segment, SegmentWriter, write_segment};
use super::super::{FsStorage, MemStorage, Storage, StorageError};
use super::pseudo_random_bytes;

struct Sample {
    offsets: Vec<u64>,
    codes: Vec<u8>,
    ids: Vec<u64>,
    vectors: Vec<f32>,
}

fn sample() -> Sample {
    let rows = 37usize;
    Sample {
        offsets: vec![0, 10, 10, 37],
        codes: pseudo_random_bytes(1, rows * 8),
        ids: (0..rows as u64).map(|i| 1000 + 3 * i).collect(),
        vectors: (0..rows * 5).map(|i| i as f32 * 0.5 - 7.0).collect(),
    }
}

/// Writes the sample through the streaming writer (in uneven pieces).
fn write_sample(storage: &dyn Storage, name: &str) -> Sample {
    let s = sample();
    let specs = vec![
        SectionSpec::of::<u64>("list_offsets", s.offsets.len() as u64),
        SectionSpec::of::<u8>("codes", s.codes.len() as u64),
        SectionSpec::of::<u64>("ids", s.ids.len() as u64),
        SectionSpec::of::<u8>("empty", 0),
        SectionSpec::of::<f32>("vectors", s.vectors.len() as u64),
    ];
    let mut w = SegmentWriter::create(storage, name, 42, specs).unwrap();
    assert_eq!(w.current_section(), Some("list_offsets"));
    w.append(&s.offsets).unwrap();
    w.append(&s.codes[..5]).unwrap();
    w.append(&s.codes[5..]).unwrap();
    w.append(&s.ids).unwrap();
    assert_eq!(w.current_section(), Some("vectors"));
    w.append(&s.vectors[..1]).unwrap();
    w.append(&s.vectors[1..]).unwrap();
    assert_eq!(w.current_section(), None);
    w.finish().unwrap();
    s
}

fn check_sample(seg: &Segment, s: &Sample) {
    assert_eq!(seg.tag(), 42);
    assert_eq!(
        seg.typed::<u64>("list_offsets").unwrap(),
        s.offsets.as_slice()
    );
    assert_eq!(seg.typed::<u8>("codes").unwrap(), s.codes.as_slice());
    assert_eq!(seg.typed::<u64>("ids").unwrap(), s.ids.as_slice());
    assert_eq!(seg.typed::<f32>("vectors").unwrap(), s.vectors.as_slice());
    assert!(seg.typed::<u8>("empty").unwrap().is_empty());
    for info in seg.sections() {
        assert_eq!(info.offset % 64, 0, "{}", info.name);
    }
    assert_eq!(seg.section("ids").unwrap().count(), 37);
    assert_eq!(seg.section("vectors").unwrap().kind, ElementKind::F32);
    // Wrong type or missing section: typed errors.
    assert!(seg.typed::<u32>("ids").unwrap_err().is_corrupt());
    assert!(
        seg.typed::<u8>("nope")
            .unwrap_err()
            .to_string()
            .contains("missing")
    );
    seg.verify().unwrap();
}

#[test]
fn round_trip_in_memory() {
    let storage = MemStorage::new();
    let s = write_sample(&storage, "seg.vseg");
    let seg = Segment::open(&storage, "seg.vseg", true).unwrap();
    check_sample(&seg, &s);
    assert_eq!(storage.list().unwrap(), ["seg.vseg"]);
}

#[test]
fn round_trip_memory_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::create_dir(dir.path()).unwrap();
    let s = write_sample(&storage, "seg.vseg");
    let seg = Segment::open(&storage, "seg.vseg", true).unwrap();
    assert!(seg.is_mapped());
    check_sample(&seg, &s);
    // The mapping stays valid after the file is unlinked (as after a compaction).
    storage.remove("seg.vseg").unwrap();
    check_sample(&seg, &s);
}

#[test]
fn write_segment_and_no_sections() {
    let storage = MemStorage::new();
    write_segment(&storage, "none.vseg", 0, &[]).unwrap();
    let seg = Segment::open(&storage, "none.vseg", true).unwrap();
    assert!(seg.sections().is_empty());
    let ids: Vec<u8> = 5u64.to_le_bytes().to_vec();
    write_segment(
        &storage,
        "one.vseg",
        1,
        &[(SectionSpec::of::<u64>("ids", 1), ids.as_slice())],
    )
    .unwrap();
    let seg = Segment::open(&storage, "one.vseg", false).unwrap();
    assert_eq!(seg.typed::<u64>("ids").unwrap(), [5]);
}

#[test]
fn writer_misuse_is_an_error() {
    let storage = MemStorage::new();
    let spec = |n: &str| SectionSpec::of::<u64>(n, 2);
    let bad_specs = [
        vec![spec("a"), spec("a")],
        vec![spec("")],
        vec![spec(&"x".repeat(33))],
        vec![SectionSpec {
            name: "odd".into(),
            kind: ElementKind::U64,
            len: 12,
        }],
    ];
    for specs in bad_specs {
        assert!(matches!(
            SegmentWriter::create(&storage, "s.vseg", 0, specs),
            Err(StorageError::InvalidArgument(_))
        ));
    }
    let mut w = SegmentWriter::create(&storage, "s.vseg", 0, vec![spec("a")]).unwrap();
    assert!(w.append(&[1u32, 2, 3, 4]).is_err(), "wrong element type");
    assert!(w.append(&[1u64, 2, 3]).is_err(), "too long");
    w.append(&[1u64]).unwrap();
    assert!(w.finish().is_err(), "incomplete");
    assert!(!storage.exists("s.vseg").unwrap(), "never published");
    let mut w = SegmentWriter::create(&storage, "s.vseg", 0, vec![spec("a")]).unwrap();
    w.append(&[1u64, 2]).unwrap();
    assert!(w.append(&[3u64]).is_err(), "past the last section");
    w.finish().unwrap();
    assert!(matches!(
        write_segment(&storage, "t.vseg", 0, &[(spec("a"), &[0u8; 3][..])]),
        Err(StorageError::InvalidArgument(_))
    ));
}

fn open_bytes(bytes: &[u8]) -> Result<Segment, StorageError> {
    let seg = Segment::from_bytes(FileBytes::copy_from(bytes), PathBuf::from("db/seg.vseg"))?;
    seg.verify()?;
    Ok(seg)
}

#[test]
fn every_truncation_is_an_error() {
    let storage = MemStorage::new();
    write_sample(&storage, "seg.vseg");
    let bytes = storage.read("seg.vseg").unwrap();
    for len in 0..bytes.len() {
        let err = open_bytes(&bytes[..len]).unwrap_err();
        assert!(err.is_corrupt(), "len {len}: {err}");
        assert!(err.to_string().starts_with("db/seg.vseg: corrupt"), "{err}");
    }
    // Through the storage too (length checked before mapping).
    storage.create("cut.vseg").unwrap();
    for len in [0usize, 10, 87, 500, bytes.len() - 1] {
        storage
            .set_contents("cut.vseg", bytes[..len].to_vec())
            .unwrap();
        let err = Segment::open(&storage, "cut.vseg", false).unwrap_err();
        assert!(
            err.is_corrupt() && err.to_string().contains("cut.vseg"),
            "{err}"
        );
    }
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 8]);
    assert!(open_bytes(&longer).unwrap_err().is_corrupt());
}

#[test]
fn every_byte_flip_is_detected_by_open_or_verify() {
    let storage = MemStorage::new();
    let s = write_sample(&storage, "seg.vseg");
    let bytes = storage.read("seg.vseg").unwrap();
    check_sample(&open_bytes(&bytes).unwrap(), &s);
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80] {
            let mut bad = bytes.clone();
            bad[i] ^= mask;
            let err = open_bytes(&bad).unwrap_err();
            assert!(err.is_corrupt(), "byte {i} mask {mask:#x}: {err}");
        }
    }
}

#[test]
fn structure_is_checked_without_verify() {
    // Header / table / footer damage is caught by the open itself (no section crc needed).
    let storage = MemStorage::new();
    write_sample(&storage, "seg.vseg");
    let bytes = storage.read("seg.vseg").unwrap();
    let structural = (0..64 + 5 * 64).chain(bytes.len() - 48..bytes.len());
    for i in structural {
        let mut bad = bytes.clone();
        bad[i] ^= 0x10;
        let result = Segment::from_bytes(FileBytes::copy_from(&bad), PathBuf::from("s"));
        assert!(result.is_err(), "byte {i}");
    }
}

#[test]
fn large_random_sections_round_trip() {
    // More than the writer's 1 MiB buffer, in pieces of awkward sizes.
    let storage = MemStorage::new();
    let data = pseudo_random_bytes(5, 3 << 20);
    let specs = vec![
        SectionSpec::of::<u8>("a", 100),
        SectionSpec::of::<u8>("big", data.len() as u64),
    ];
    let mut w = SegmentWriter::create(&storage, "big.vseg", 0, specs).unwrap();
    w.append(&data[..100]).unwrap();
    for chunk in data.chunks(777_777) {
        w.append(chunk).unwrap();
    }
    w.finish().unwrap();
    let seg = Segment::open(&storage, "big.vseg", true).unwrap();
    assert_eq!(seg.bytes_of("a").unwrap(), &data[..100]);
    assert_eq!(seg.bytes_of("big").unwrap(), data.as_slice());
}

#[test]
fn truncated_file_on_disk_is_an_error_not_a_sigbus() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::create_dir(dir.path()).unwrap();
    write_sample(&storage, "seg.vseg");
    let full = std::fs::read(dir.path().join("seg.vseg")).unwrap();
    for len in [0, 1, 64, 100, 4096.min(full.len() - 1), full.len() - 1] {
        std::fs::write(dir.path().join("cut.vseg"), &full[..len]).unwrap();
        let err = Segment::open(&storage, "cut.vseg", true).unwrap_err();
        assert!(err.is_corrupt(), "len {len}: {err}");
        assert!(err.to_string().contains("cut.vseg"), "{err}");
    }
}

#[test]
fn write_segment_with_empty_sections_anywhere() {
    // Regression (found by the round-trip proptest): an empty last section made
    // `write_segment` fail because empty sections are closed automatically.
    let storage = MemStorage::new();
    let data = [1u8, 2, 3];
    let empty: &[u8] = &[];
    let sections = [
        (SectionSpec::of::<u8>("e0", 0), empty),
        (SectionSpec::of::<u8>("d", 3), &data[..]),
        (SectionSpec::of::<u8>("e1", 0), empty),
        (SectionSpec::of::<u8>("e2", 0), empty),
    ];
    write_segment(&storage, "e.vseg", 0, &sections).unwrap();
    let seg = Segment::open(&storage, "e.vseg", true).unwrap();
    assert_eq!(seg.bytes_of("d").unwrap(), data);
    assert!(seg.bytes_of("e2").unwrap().is_empty());
}
