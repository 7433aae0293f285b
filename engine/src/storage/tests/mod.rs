//! Tests of the storage layer: round trips, corruption (truncation and byte flips of every
//! file kind), WAL recovery, fault injection and crash simulation, and property tests that
//! feed arbitrary bytes to every parser.

mod deletes;
mod directory;
mod faults;
mod fuzz;
mod manifest;
mod segment;
mod wal;

use super::manifest::{Manifest, Property, SegmentEntry};

/// A manifest with a bit of everything in it.
pub(super) fn sample_manifest(generation: u64) -> Manifest {
    Manifest {
        generation,
        model_file: Some("model-0000000000000001.rkyv".to_string()),
        segments: vec![
            SegmentEntry {
                id: 0,
                file: "seg-0000000000000002.vseg".to_string(),
                rows: 1000,
                deletes_file: Some("del-0000000000000000-0000000000000003.del".to_string()),
                deleted: 10,
            },
            SegmentEntry {
                id: 1,
                file: "seg-0000000000000004.vseg".to_string(),
                rows: 17,
                deletes_file: None,
                deleted: 0,
            },
        ],
        wal_generation: 3,
        next_segment_id: 2,
        next_file_number: 5,
        properties: vec![
            Property {
                key: "dim".to_string(),
                value: "128".to_string(),
            },
            Property {
                key: "spec".to_string(),
                value: "IVF4096,PQ16".to_string(),
            },
        ],
    }
}

/// Deterministic pseudo-random bytes (xorshift), for test data.
pub(super) fn pseudo_random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
