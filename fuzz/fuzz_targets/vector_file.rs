//! Fuzz target: vector files (`.fvecs`, `.bvecs`, `.ivecs`, `.npy`, chosen by the first input
//! byte) written to a temporary file and opened; every row is read. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vladdb::vecfile::{VectorFile, read_ivecs};

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let ext = ["fvecs", "bvecs", "ivecs", "npy"][which as usize % 4];
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let path = dir.path().join(format!("f.{ext}"));
    if std::fs::write(&path, bytes).is_err() {
        return;
    }
    if ext == "ivecs" {
        if let Ok(m) = read_ivecs(&path) {
            for r in m.iter_rows() {
                std::hint::black_box(r);
            }
        }
    } else if let Ok(f) = VectorFile::open(&path) {
        let v = f.vectors();
        let mut row = vec![0f32; f.dim()];
        for i in 0..f.rows() {
            v.row_f32_into(i, &mut row);
        }
    }
});
