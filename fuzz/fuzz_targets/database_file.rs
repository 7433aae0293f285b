//! Fuzz target: a small valid database on a simulated disk with one of its files (chosen by
//! the first input byte: MANIFEST, model, segment, deletes file, log) replaced by the rest
//! of the input; then open, stats and an exhaustive search. Must never panic: every damage
//! is either an error or a database that answers.
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use vladdb::codecs::VectorsRef;
use vladdb::codecs::index::SearchParams;
use vladdb::storage::{MemStorage, SharedStorage, Storage};
use vladdb::{Database, Options};

const DIM: usize = 8;

fn vector(i: u64) -> Vec<f32> {
    (0..DIM as u64).map(|d| ((i * 31 + d * 17) % 97) as f32).collect()
}

/// The pristine files of the database, built once.
fn pristine() -> &'static Vec<(String, Vec<u8>)> {
    static FILES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let s = MemStorage::new();
        let shared: SharedStorage = Arc::new(s.clone());
        let db = Database::create_in(shared, Path::new("mem"), "IVF4,PQ2x4,RFlat", DIM, Options::default())
            .expect("create");
        let train: Vec<f32> = (0..300).flat_map(vector).collect();
        db.train(&VectorsRef::from_f32(&train, DIM).expect("m")).expect("train");
        let add = |ids: Vec<u64>| {
            let data: Vec<f32> = ids.iter().flat_map(|&i| vector(i + 1000)).collect();
            let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
            db.add(&VectorsRef::from_f32(&data, DIM).expect("m"), &ids, Some(&names)).expect("add");
        };
        add((0..60).collect());
        db.commit().expect("commit");
        db.delete(&[1, 2, 3]).expect("delete");
        db.commit().expect("commit");
        add((60..80).collect());
        drop(db);
        let s = s.crash_process();
        s.list()
            .expect("list")
            .into_iter()
            .filter(|n| n != "LOCK")
            .map(|n| {
                let bytes = s.read(&n).expect("read");
                (n, bytes)
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let files = pristine();
    let s = MemStorage::new();
    for (name, content) in files {
        let mut f = s.create(name).expect("create");
        f.write_all(content).expect("write");
        f.sync().expect("sync");
    }
    s.sync_dir().expect("sync_dir");
    let target = &files[which as usize % files.len()].0;
    s.set_contents(target, bytes.to_vec()).expect("replace");
    let shared: SharedStorage = Arc::new(s.clone());
    if let Ok(db) = Database::open_in(shared, Path::new("mem"), Options::default(), true) {
        let _ = db.stats();
        let p = SearchParams { k: 10, nprobe: 4, rerank: 2 };
        let _ = db.search(&vector(1005), &p);
    }
});
