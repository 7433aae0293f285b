//! Helpers shared by the reliability tests (kill, faults, corruption, bad input, model
//! based): the deterministic vector of an id, reading every live id back out of a database,
//! and a fingerprint of a directory (names, sizes and checksums) to prove "left as it was".

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use vladdb::Database;
use vladdb::codecs::VectorsRef;
use vladdb::codecs::index::SearchParams;
use vladdb_tests::Rng;

/// The vector stored under `id` (a pure function of the id, so an oracle needs only ids).
pub fn vector_of(id: u64, dim: usize) -> Vec<f32> {
    let mut rng = Rng::new(id.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xA5A5);
    (0..dim).map(|_| rng.unit() * 100.0).collect()
}

/// The vectors of `ids`, row-major.
pub fn vectors_of(ids: &[u64], dim: usize) -> Vec<f32> {
    ids.iter().flat_map(|&id| vector_of(id, dim)).collect()
}

/// A matrix view of `data`.
pub fn view(data: &[f32], dim: usize) -> VectorsRef<'_> {
    VectorsRef::from_f32(data, dim).expect("valid test matrix")
}

/// Search parameters that probe every list (exact for `IVFn,Flat` and `Flat`).
pub fn exhaustive(k: usize, nlist: usize) -> SearchParams {
    SearchParams {
        k,
        nprobe: nlist,
        rerank: 0,
    }
}

/// Every live id of `db`, read back through search (k = everything, all lists probed),
/// cross-checked against `stats().vectors`.
pub fn live_ids(db: &Database, nlist: usize) -> BTreeSet<u64> {
    let stats = db.stats().expect("stats");
    if !stats.trained || stats.vectors == 0 {
        return BTreeSet::new();
    }
    let q = vec![0.0f32; db.dim()];
    let k = stats.vectors as usize + 1;
    let hits = db.search(&q, &exhaustive(k, nlist)).expect("search");
    let ids: BTreeSet<u64> = hits.iter().map(|h| h.id).collect();
    assert_eq!(ids.len(), hits.len(), "an id returned twice");
    assert_eq!(
        ids.len() as u64,
        stats.vectors,
        "search and stats disagree on the live rows"
    );
    ids
}

/// Name → (length, crc32) of every file in `dir` (the directory's exact state).
pub fn fingerprint(dir: &Path) -> BTreeMap<String, (u64, u32)> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("dir entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path()).expect("read file");
        out.insert(name, (bytes.len() as u64, crc32(&bytes)));
    }
    out
}

/// Plain crc32 (IEEE), bitwise: the tests crate has no crc dependency.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
