//! Manifest: round trip, publication, validation, and every truncation and byte flip.

use std::path::Path;

use super::super::manifest::{MANIFEST_FILE, MANIFEST_HEADER_LEN, Manifest};
use super::super::{MemStorage, Storage, StorageError};
use super::sample_manifest;

fn decode(bytes: &[u8]) -> Result<Manifest, StorageError> {
    Manifest::decode(bytes, Path::new("db/MANIFEST"))
}

#[test]
fn round_trip_and_publish() {
    let m = sample_manifest(4);
    assert_eq!(decode(&m.encode().unwrap()).unwrap(), m);
    assert_eq!(
        decode(&Manifest::default().encode().unwrap()).unwrap(),
        Manifest::default()
    );
    let storage = MemStorage::new();
    m.publish(&storage).unwrap();
    assert_eq!(Manifest::load(&storage).unwrap(), m);
    assert_eq!(storage.list().unwrap(), [MANIFEST_FILE]);
    assert_eq!(m.property("dim"), Some("128"));
    assert_eq!(m.live_files().len(), 4);
}

#[test]
fn properties_replace_in_place() {
    let mut m = Manifest::default();
    m.set_property("dim", "64");
    m.set_property("dim", "128");
    assert_eq!(m.properties.len(), 1);
    assert_eq!(m.property("dim"), Some("128"));
    assert_eq!(m.property("spec"), None);
}

#[test]
fn missing_manifest_is_an_io_error_naming_it() {
    let err = Manifest::load(&MemStorage::new()).unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }));
    assert!(err.to_string().contains("MANIFEST"), "{err}");
}

#[test]
fn every_truncation_is_a_corrupt_error() {
    let bytes = sample_manifest(1).encode().unwrap();
    for len in 0..bytes.len() {
        let err = decode(&bytes[..len]).unwrap_err();
        assert!(err.is_corrupt(), "len {len}: {err}");
        assert!(err.to_string().starts_with("db/MANIFEST: "), "{err}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(decode(&longer).unwrap_err().is_corrupt());
}

#[test]
fn every_byte_flip_is_detected() {
    let bytes = sample_manifest(1).encode().unwrap();
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[i] ^= mask;
            let err = decode(&bad).unwrap_err();
            assert!(err.is_corrupt(), "byte {i} mask {mask:#x}: {err}");
        }
    }
}

#[test]
fn newer_version_is_reported_as_such() {
    let mut bytes = sample_manifest(1).encode().unwrap();
    bytes[8] = 2;
    let crc = crc32fast::hash(&bytes[..MANIFEST_HEADER_LEN - 4]);
    bytes[MANIFEST_HEADER_LEN - 4..MANIFEST_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    assert!(matches!(
        decode(&bytes),
        Err(StorageError::UnsupportedVersion {
            found: 2,
            supported: 1,
            ..
        })
    ));
}

#[test]
fn invariants_are_checked() {
    let mut cases = Vec::new();
    let mut m = sample_manifest(1);
    m.segments[1].id = 0;
    cases.push((m, "appears twice"));
    let mut m = sample_manifest(1);
    m.next_segment_id = 1;
    cases.push((m, "next_segment_id"));
    let mut m = sample_manifest(1);
    m.segments[1].deleted = 18;
    cases.push((m, "deleted of"));
    let mut m = sample_manifest(1);
    m.segments[0].deletes_file = None;
    cases.push((m, "no deletes file"));
    let mut m = sample_manifest(1);
    m.segments[1].file = m.segments[0].file.clone();
    cases.push((m, "named twice"));
    let mut m = sample_manifest(1);
    m.model_file = Some("../etc/passwd".into());
    cases.push((m, "invalid file name"));
    let mut m = sample_manifest(1);
    m.segments[0].file = "MANIFEST".into();
    cases.push((m, "invalid file name"));
    let mut m = sample_manifest(1);
    m.properties.push(m.properties[0].clone());
    cases.push((m, "property"));
    for (m, needle) in cases {
        let err = m.validate(Path::new("M")).unwrap_err();
        assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        assert!(matches!(m.encode(), Err(StorageError::InvalidArgument(_))));
    }
}
