//! Bad input through the library: NaN / infinite components, wrong dimensions, empty and
//! malformed vector files, k = 0, nprobe out of range, duplicate or already present ids,
//! too few training points, directories that are not databases, a second writer. Each is a
//! typed error with a one-line message, and leaves the database directory byte for byte as
//! it was (names, lengths and checksums of every file compared before and after).

#[path = "support.rs"]
mod support;

use std::path::{Path, PathBuf};

use support::{exhaustive, fingerprint, vectors_of, view};
use vladdb::codecs::index::SearchParams;
use vladdb::codecs::{CodecError, VectorsRef};
use vladdb::storage::StorageError;
use vladdb::vecfile::VectorFile;
use vladdb::{Database, Error};

const DIM: usize = 8;
const NLIST: usize = 4;

/// A trained database with rows 0..200 in a segment and 200..250 in the log.
fn ready(dir: &Path) -> PathBuf {
    let path = dir.join("db");
    let db = Database::create(&path, "IVF4,Flat", DIM).expect("create");
    let train: Vec<u64> = (1_000_000..1_000_200).collect();
    db.train(&view(&vectors_of(&train, DIM), DIM))
        .expect("train");
    let ids: Vec<u64> = (0..200).collect();
    db.add(&view(&vectors_of(&ids, DIM), DIM), &ids, None)
        .expect("add");
    db.commit().expect("commit");
    let ids: Vec<u64> = (200..250).collect();
    db.add(&view(&vectors_of(&ids, DIM), DIM), &ids, None)
        .expect("add");
    drop(db);
    // One open/close cycle so that the fingerprint is of a settled directory.
    drop(Database::open(&path).expect("open"));
    path
}

fn one_line(e: &Error) {
    let msg = e.to_string();
    assert!(
        !msg.is_empty() && !msg.contains('\n'),
        "not one line: {msg:?}"
    );
}

/// Runs `bad` on an open database and checks: it fails with an error `expected` accepts,
/// and the directory is exactly as before (also after reopening).
fn rejects(
    path: &Path,
    what: &str,
    expected: fn(&Error) -> bool,
    bad: impl Fn(&Database) -> Result<(), Error>,
) {
    let before = fingerprint(path);
    let db = Database::open(path).expect("open");
    let live_before = support::live_ids(&db, NLIST);
    let err = match bad(&db) {
        Ok(()) => panic!("{what}: accepted"),
        Err(e) => e,
    };
    assert!(expected(&err), "{what}: unexpected error {err:?}");
    one_line(&err);
    assert_eq!(
        support::live_ids(&db, NLIST),
        live_before,
        "{what}: state changed"
    );
    drop(db);
    assert_eq!(fingerprint(path), before, "{what}: the directory changed");
    let db = Database::open_read_only(path).expect("reopen");
    assert_eq!(
        support::live_ids(&db, NLIST),
        live_before,
        "{what}: state changed after reopen"
    );
}

fn invalid(e: &Error) -> bool {
    matches!(e, Error::InvalidArgument(_))
}

fn non_finite(e: &Error) -> bool {
    matches!(e, Error::Codec(CodecError::NonFinite { .. }))
}

fn codec_or_invalid(e: &Error) -> bool {
    matches!(e, Error::Codec(_) | Error::InvalidArgument(_))
}

#[test]
fn bad_vectors_are_rejected_and_change_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = ready(tmp.path());
    for (what, value) in [
        ("NaN", f32::NAN),
        ("+inf", f32::INFINITY),
        ("-inf", f32::NEG_INFINITY),
    ] {
        rejects(&path, what, non_finite, |db| {
            let ids: Vec<u64> = (1000..1010).collect();
            let mut data = vectors_of(&ids, DIM);
            data[5 * DIM + 3] = value;
            db.add(&view(&data, DIM), &ids, None)
        });
        rejects(&path, what, non_finite, |db| {
            let ids: Vec<u64> = (0..3).collect();
            let mut data = vectors_of(&ids, DIM);
            data[DIM] = value;
            db.upsert(&view(&data, DIM), &ids, None)
        });
        rejects(&path, "non-finite query", non_finite, |db| {
            let mut q = vectors_of(&[7], DIM);
            q[0] = value;
            db.search(&q, &exhaustive(3, NLIST)).map(|_| ())
        });
    }
    rejects(&path, "wrong dimension", invalid, |db| {
        let data = vec![1.0f32; 7 * 4];
        db.add(
            &VectorsRef::from_f32(&data, 7).expect("matrix"),
            &[1000, 1001, 1002, 1003],
            None,
        )
    });
    rejects(&path, "wrong query dimension", invalid, |db| {
        db.search(&[1.0; DIM + 1], &exhaustive(3, NLIST))
            .map(|_| ())
    });
    rejects(&path, "ids count", invalid, |db| {
        db.add(&view(&vectors_of(&[1000, 1001], DIM), DIM), &[1000], None)
    });
    rejects(&path, "names count", invalid, |db| {
        let names = vec!["a".to_string()];
        db.add(
            &view(&vectors_of(&[1000, 1001], DIM), DIM),
            &[1000, 1001],
            Some(&names),
        )
    });
}

#[test]
fn bad_ids_are_rejected_and_change_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = ready(tmp.path());
    rejects(&path, "duplicate ids in one add", invalid, |db| {
        let ids = [1000, 1001, 1000];
        db.add(&view(&vectors_of(&ids, DIM), DIM), &ids, None)
    });
    rejects(&path, "duplicate ids in one upsert", invalid, |db| {
        let ids = [5, 5];
        db.upsert(&view(&vectors_of(&ids, DIM), DIM), &ids, None)
    });
    rejects(&path, "id already in a segment", invalid, |db| {
        let ids = [1000, 17];
        db.add(&view(&vectors_of(&ids, DIM), DIM), &ids, None)
    });
    rejects(&path, "id already in the log", invalid, |db| {
        let ids = [1000, 222];
        db.add(&view(&vectors_of(&ids, DIM), DIM), &ids, None)
    });
}

#[test]
fn bad_search_parameters_are_rejected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = ready(tmp.path());
    let q = vectors_of(&[3], DIM);
    for (what, p) in [
        (
            "k = 0",
            SearchParams {
                k: 0,
                nprobe: 2,
                rerank: 0,
            },
        ),
        (
            "nprobe = 0",
            SearchParams {
                k: 3,
                nprobe: 0,
                rerank: 0,
            },
        ),
        (
            "nprobe > nlist",
            SearchParams {
                k: 3,
                nprobe: NLIST + 1,
                rerank: 0,
            },
        ),
        (
            "rerank without vectors",
            SearchParams {
                k: 3,
                nprobe: 2,
                rerank: 4,
            },
        ),
    ] {
        rejects(&path, what, invalid, |db| db.search(&q, &p).map(|_| ()));
        rejects(&path, what, invalid, |db| {
            db.search_batch(&q, &p).map(|_| ())
        });
    }
}

#[test]
fn training_problems_are_rejected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Fewer points than centroids.
    let path = tmp.path().join("small");
    drop(Database::create(&path, "IVF64,Flat", DIM).expect("create"));
    rejects(&path, "10 points for 64 lists", codec_or_invalid, |db| {
        let ids: Vec<u64> = (0..10).collect();
        db.train(&view(&vectors_of(&ids, DIM), DIM))
    });
    rejects(&path, "PQ with too few points", codec_or_invalid, |db| {
        let ids: Vec<u64> = (0..0).collect();
        db.train(&view(&vectors_of(&ids, DIM), DIM))
    });
    rejects(&path, "NaN in training data", codec_or_invalid, |db| {
        let ids: Vec<u64> = (0..500).collect();
        let mut data = vectors_of(&ids, DIM);
        data[100] = f32::NAN;
        db.train(&view(&data, DIM))
    });
    rejects(&path, "add before train", invalid, |db| {
        db.add(&view(&vectors_of(&[1], DIM), DIM), &[1], None)
    });
    rejects(&path, "search before train", invalid, |db| {
        db.search(&vectors_of(&[1], DIM), &exhaustive(1, NLIST))
            .map(|_| ())
    });
    // Training twice.
    let path = ready(tmp.path());
    rejects(&path, "train twice", invalid, |db| {
        let ids: Vec<u64> = (0..300).collect();
        db.train(&view(&vectors_of(&ids, DIM), DIM))
    });
}

#[test]
fn not_a_database_and_a_second_writer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // An empty directory, a directory of other files, a plain file, a missing path.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(other.join("notes.txt"), b"hello").expect("write");
    let file = tmp.path().join("file");
    std::fs::write(&file, b"not a directory").expect("write");
    let missing = tmp.path().join("missing");
    for p in [&empty, &other, &file, &missing] {
        let before = if p.is_dir() {
            Some(fingerprint(p))
        } else {
            None
        };
        for result in [
            Database::open(p).map(|_| ()),
            Database::open_read_only(p).map(|_| ()),
            Database::verify(p).map(|_| ()),
        ] {
            let e = result.expect_err("not a database");
            one_line(&e);
            assert!(e.to_string().contains(&*p.to_string_lossy()), "{e}");
        }
        if let Some(before) = before {
            assert_eq!(
                fingerprint(p),
                before,
                "opening created files in {}",
                p.display()
            );
        }
        assert_eq!(p.exists(), p != &missing, "opening created {}", p.display());
    }
    // create refuses a non-empty directory, bad specs and dimension 0.
    assert!(matches!(
        Database::create(&other, "Flat", DIM),
        Err(Error::InvalidArgument(_))
    ));
    assert!(Database::create(tmp.path().join("x1"), "IVF0,Flat", DIM).is_err());
    assert!(Database::create(tmp.path().join("x2"), "nonsense", DIM).is_err());
    assert!(Database::create(tmp.path().join("x3"), "Flat", 0).is_err());
    assert!(Database::create(tmp.path().join("x3"), "Flat", (1 << 20) + 1).is_err());
    assert!(Database::create(tmp.path().join("x3"), "VLAD65536", 128).is_err());
    assert!(!tmp.path().join("x3").exists());
    assert!(Database::create(tmp.path().join("x4"), "PQ3", DIM).is_err());
    // An error after the encoder token quotes the whole spec.
    let twice = Database::create(tmp.path().join("x5"), "VLAD8,VLAD8,Flat", DIM)
        .expect_err("two encoder stages");
    assert!(
        twice.to_string().contains("\"VLAD8,VLAD8,Flat\"")
            && twice.to_string().contains("first stage"),
        "{twice}"
    );
    // A second writer is refused while the first holds the lock; readers are fine.
    let path = ready(tmp.path());
    let before = fingerprint(&path);
    let first = Database::open(&path).expect("first writer");
    let second = Database::open(&path).expect_err("second writer");
    assert!(
        matches!(second, Error::Storage(StorageError::Locked { .. })),
        "{second:?}"
    );
    one_line(&second);
    assert!(Database::open_read_only(&path).is_ok());
    drop(first);
    assert_eq!(fingerprint(&path), before);
    drop(Database::open(&path).expect("the lock is released on drop"));
}

#[test]
fn empty_and_malformed_vector_files_are_typed_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.fvecs", Vec::new()),
        ("short.fvecs", vec![8, 0, 0, 0, 1, 2]),
        ("zero_dim.fvecs", vec![0, 0, 0, 0]),
        ("negative_dim.bvecs", (-3i32).to_le_bytes().to_vec()),
        ("huge_dim.fvecs", i32::MAX.to_le_bytes().to_vec()),
        ("bad.npy", b"\x93NUMPY\x01\x00garbage".to_vec()),
        ("empty.npy", Vec::new()),
        ("unknown.txt", b"1 2 3".to_vec()),
    ];
    for (name, bytes) in cases {
        let p = tmp.path().join(name);
        std::fs::write(&p, &bytes).expect("write");
        match VectorFile::open(&p) {
            // An empty file may open as zero rows; it must then hold none.
            Ok(f) => assert!(f.is_empty(), "{name}: {} rows from garbage", f.rows()),
            Err(e) => {
                one_line(&e);
                assert!(e.to_string().contains(name), "{name}: {e}");
            }
        }
    }
}
