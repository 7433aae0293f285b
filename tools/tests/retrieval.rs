//! End-to-end test of the retrieval benchmark (`vladdb bench --base-sets ...`) and
//! `vladdb encode` on small generated descriptor sets with empty images.

use std::path::Path;
use std::process::Command;

use vladdb::vecfile::{write_npy_i64, write_npy_u8, write_npy_u64};

/// Deterministic descriptors: `images` images of 10..=19 descriptors (16-D, u8) around 16
/// random words; images in `empty` have none. Returns the descriptors and the offsets.
fn sets(images: usize, empty: &[usize]) -> (Vec<u8>, Vec<u64>) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let words: Vec<u8> = (0..16 * 16).map(|_| (next() % 200) as u8).collect();
    let mut descriptors = Vec::new();
    let mut offsets = vec![0u64];
    for image in 0..images {
        let n = 10 + (next() % 10) as usize;
        for _ in 0..n {
            let w = (next() % 16) as usize;
            for d in 0..16 {
                let v = words[w * 16 + d] as u64 + next() % 40;
                if !empty.contains(&image) {
                    descriptors.push(v.min(255) as u8);
                }
            }
        }
        offsets.push((descriptors.len() / 16) as u64);
    }
    (descriptors, offsets)
}

fn write_sets(dir: &Path, prefix: &str, descriptors: &[u8], offsets: &[u64]) -> String {
    let p = dir.join(prefix);
    let d = dir.join(format!("{prefix}_descriptors.npy"));
    write_npy_u8(&d, descriptors, descriptors.len() / 16, 16).expect("write descriptors");
    write_npy_u64(dir.join(format!("{prefix}_offsets.npy")), offsets).expect("write offsets");
    p.to_string_lossy().into_owned()
}

#[test]
fn retrieval_bench_finds_copies_first_and_skips_empty_images() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db_desc, db_offsets) = sets(40, &[5, 17]);
    let db = write_sets(dir.path(), "db", &db_desc, &db_offsets);
    // Queries: exact copies of database images 0..=10 (image 5, empty, included: it
    // matches nothing and counts as a miss).
    let q_end = db_offsets[11] as usize * 16;
    let query = write_sets(dir.path(), "query", &db_desc[..q_end], &db_offsets[..12]);
    let truth: Vec<i64> = (0..11).collect();
    let truth_path = dir.path().join("truth.npy");
    write_npy_i64(&truth_path, &truth).expect("write truth");
    // Learning sets: the database's descriptors with empty images interleaved.
    let mut learn_offsets = Vec::new();
    for (i, &o) in db_offsets.iter().enumerate() {
        learn_offsets.push(o);
        if i % 4 == 0 && i + 1 < db_offsets.len() {
            learn_offsets.push(o);
        }
    }
    let learn = write_sets(dir.path(), "learn", &db_desc, &learn_offsets);
    let out = Command::new(env!("CARGO_BIN_EXE_vladdb"))
        .args([
            "bench",
            "--spec",
            "VLAD4;VLAD4,PCA16,Flat;VLAD4_soft100_rn_lcs,PCAW16,L2norm,PQ4x4",
            "--base-sets",
            &db,
            "--query-sets",
            &query,
            "--learn-sets",
            &learn,
            "--truth",
            &truth_path.to_string_lossy(),
            "-k",
            "10",
            "--threads",
            "1",
            "--json",
        ])
        .output()
        .expect("the vladdb binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON row"))
        .collect();
    let specs: Vec<&str> = rows.iter().filter_map(|r| r["spec"].as_str()).collect();
    assert!(rows.len() >= 4, "rows: {specs:?}");
    for row in &rows {
        let spec = row["spec"].as_str().unwrap_or("?");
        // Ten of the eleven queries are copies of a stored image; the empty one misses.
        let r1 = row["r_at_1"].as_f64().unwrap_or(-1.0);
        let at10 = row["r_at_10"].as_f64().unwrap_or(-1.0);
        if spec.contains("PQ") {
            assert!(at10 >= 9.0 / 11.0, "{spec}: R@10 {at10}");
        } else {
            assert!((r1 - 10.0 / 11.0).abs() < 1e-9, "{spec}: R@1 {r1}");
        }
        assert!(row["map"].as_f64().unwrap_or(-1.0) <= r1.max(at10) + 1e-9);
        assert!(row["encode_descriptors_per_s"].as_f64().unwrap_or(0.0) > 0.0);
        assert!(row["qps"].as_f64().unwrap_or(0.0) > 0.0);
    }
    // `vladdb encode` writes one row per image, empty images as zeros.
    let npy = dir.path().join("codes.npy");
    let out = Command::new(env!("CARGO_BIN_EXE_vladdb"))
        .args(["encode", "--sets", &db, "--spec", "VLAD4", "-o"])
        .arg(&npy)
        .output()
        .expect("the vladdb binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&npy).expect("codes written");
    assert!(bytes.starts_with(b"\x93NUMPY"));
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..10 + header_len]);
    assert!(header.contains("(40, 64)"), "{header}");
}
