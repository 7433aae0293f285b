//! Corruption: a real database directory holds every kind of file (MANIFEST, model,
//! segments with names and stored vectors, a deletes file, a log with committed batches);
//! each file is truncated at many points and has bytes flipped across all its sections.
//! After each damage, `Database::verify` and `Database::open` must either return a typed
//! corruption error naming the file, or (for damage nothing depends on) give exactly the
//! pristine results. Never a panic, never a silently wrong answer from a verified database.
//! A damaged log may legitimately lose its tail (a torn record ends the log): the
//! recovered state must then be the state after some prefix of the logged batches.

#[path = "support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use support::{live_ids, vector_of, vectors_of, view};
use vladdb::{Database, Error, Options};

const DIM: usize = 8;
const NLIST: usize = 4;
const SPEC: &str = "IVF4,PQ2x4,RFlat";

/// Builds the database; returns the live-id states after each logged batch (the last is
/// the final state; earlier ones are what a damaged log may fall back to).
fn build(dir: &Path) -> Vec<BTreeSet<u64>> {
    let opts = Options {
        max_segments: 100,
        max_deleted_fraction: 0.99,
        ..Options::default()
    };
    let db = Database::create_with(dir, SPEC, DIM, opts).expect("create");
    let train: Vec<u64> = (1_000_000..1_000_400).collect();
    db.train(&view(&vectors_of(&train, DIM), DIM))
        .expect("train");
    let add = |ids: std::ops::Range<u64>, named: bool| {
        let ids: Vec<u64> = ids.collect();
        let names: Vec<String> = ids.iter().map(|i| format!("img-{i}.jpg")).collect();
        db.add(
            &view(&vectors_of(&ids, DIM), DIM),
            &ids,
            named.then_some(names.as_slice()),
        )
        .expect("add");
    };
    add(0..300, true);
    db.commit().expect("commit");
    add(300..500, false);
    db.commit().expect("commit");
    db.delete(&(0..40).collect::<Vec<u64>>()).expect("delete");
    db.commit().expect("commit: writes the deletes file");
    // Logged, not committed to a segment: three batches in the log.
    let mut states = Vec::new();
    let mut live: BTreeSet<u64> = (40..500).collect();
    states.push(live.clone());
    add(500..530, false);
    live.extend(500..530);
    states.push(live.clone());
    db.delete(&[45, 310, 505]).expect("delete");
    for id in [45, 310, 505] {
        live.remove(&id);
    }
    states.push(live.clone());
    add(530..560, true);
    live.extend(530..560);
    states.push(live.clone());
    states
}

fn read_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            let e = e.expect("entry");
            let bytes = std::fs::read(e.path()).expect("read");
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect()
}

/// Puts back the damaged file (opening read-only and verifying write nothing else; the
/// directory listing is checked to prove it).
fn restore(dir: &Path, pristine: &BTreeMap<String, Vec<u8>>, damaged: &str) {
    std::fs::write(dir.join(damaged), &pristine[damaged]).expect("restore file");
    let names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.len(),
        pristine.len(),
        "a read-only open changed the directory: {names:?}"
    );
}

fn is_corruption(e: &Error) -> bool {
    match e {
        Error::Corrupt { .. } => true,
        Error::Storage(s) => s.is_corrupt(),
        _ => false,
    }
}

/// Search results used to detect silently wrong answers.
fn answers(db: &Database, probe_ids: &[u64]) -> Vec<Vec<(u64, u32, Option<String>)>> {
    probe_ids
        .iter()
        .map(|&id| {
            let p = vladdb::codecs::index::SearchParams {
                k: 5,
                nprobe: NLIST,
                rerank: 2,
            };
            db.search(&vector_of(id, DIM), &p)
                .expect("search")
                .into_iter()
                .map(|h| (h.id, h.distance.to_bits(), h.name))
                .collect()
        })
        .collect()
}

struct Checker<'a> {
    dir: &'a Path,
    states: &'a [BTreeSet<u64>],
    pristine_answers: Vec<Vec<(u64, u32, Option<String>)>>,
    probes: Vec<u64>,
    tried: usize,
    failures: Vec<String>,
}

impl Checker<'_> {
    /// Checks the damaged directory; `what` describes the damage.
    fn check(&mut self, file: &str, what: &str) {
        self.tried += 1;
        let is_log = file.starts_with("wal-");
        let outcome = catch_unwind(AssertUnwindSafe(|| self.judge(file, is_log)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(problem)) => self.failures.push(format!("{file} {what}: {problem}")),
            Err(_) => self.failures.push(format!("{file} {what}: PANIC")),
        }
    }

    fn judge(&self, file: &str, is_log: bool) -> Result<(), String> {
        let named = |e: &Error| -> Result<(), String> {
            if !is_corruption(e) {
                return Err(format!("not a corruption error: {e:?}"));
            }
            if !e.to_string().contains(file) {
                return Err(format!("error does not name the file: {e}"));
            }
            Ok(())
        };
        // Open (without full checks) must not panic; an error must be typed and named.
        let opened = Database::open_read_only(self.dir);
        if let Err(e) = &opened {
            named(e)?;
        }
        match Database::verify(self.dir) {
            Err(e) => named(&e),
            Ok(_) => {
                // verify found nothing wrong: the database must answer exactly as before.
                let db = opened.map_err(|e| format!("verify ok but open failed: {e}"))?;
                let got = live_ids(&db, NLIST);
                let last = self.states.last().cloned().unwrap_or_default();
                if is_log {
                    if !self.states.contains(&got) {
                        return Err(format!(
                            "log damage gave a state no prefix had ({} ids)",
                            got.len()
                        ));
                    }
                    return Ok(());
                }
                if got != last {
                    return Err(format!(
                        "verify ok but {} live ids instead of {}",
                        got.len(),
                        last.len()
                    ));
                }
                if answers(&db, &self.probes) != self.pristine_answers {
                    return Err("verify ok but search results changed".into());
                }
                Ok(())
            }
        }
    }
}

/// Offsets to flip in a file of `len` bytes: every byte of the first 160 (headers, section
/// tables) and of the last 64 (footers), then an even stride through the rest so that
/// every section gets hits; `dense` flips every byte (`VLADDB_CORRUPTION_DENSE=1`).
fn flip_offsets(len: usize, dense: bool) -> Vec<usize> {
    if dense {
        return (0..len).collect();
    }
    let mut out: BTreeSet<usize> = (0..len.min(160)).collect();
    out.extend(len.saturating_sub(64)..len);
    let stride = (len / 150).max(1);
    out.extend((0..len).step_by(stride));
    out.into_iter().collect()
}

fn truncation_points(len: usize) -> Vec<usize> {
    let mut out: BTreeSet<usize> = [0, 1, 4, 8, 16, 31, 32, 63, 64, 65, 127, 128, 200, 256]
        .into_iter()
        .filter(|&p| p < len)
        .collect();
    for f in 1..16 {
        out.insert(len * f / 16);
    }
    out.extend([
        len.saturating_sub(64),
        len.saturating_sub(8),
        len.saturating_sub(1),
    ]);
    out.retain(|&p| p < len);
    out.into_iter().collect()
}

#[test]
fn every_file_truncated_or_flipped_is_caught() {
    let dense = std::env::var("VLADDB_CORRUPTION_DENSE").is_ok();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("db");
    let states = build(&dir);
    let pristine = read_dir(&dir);
    let kinds = ["MANIFEST", "model-", "seg-", "del-", "wal-"];
    for k in kinds {
        assert!(
            pristine.keys().any(|n| n.starts_with(k)),
            "the test database lacks a {k} file: {:?}",
            pristine.keys().collect::<Vec<_>>()
        );
    }
    let probes: Vec<u64> = vec![41, 77, 299, 300, 450, 499, 510, 545];
    let pristine_answers = {
        let db = Database::open_read_only(&dir).expect("open pristine");
        assert_eq!(live_ids(&db, NLIST), *states.last().expect("states"));
        answers(&db, &probes)
    };
    Database::verify(&dir).expect("pristine verifies");
    let mut checker = Checker {
        dir: &dir,
        states: &states,
        pristine_answers,
        probes,
        tried: 0,
        failures: Vec::new(),
    };
    let mut per_file = Vec::new();
    for (name, bytes) in &pristine {
        if name == "LOCK" {
            continue;
        }
        let before = checker.tried;
        for cut in truncation_points(bytes.len()) {
            std::fs::write(dir.join(name), &bytes[..cut]).expect("truncate");
            checker.check(name, &format!("truncated to {cut}"));
            restore(&dir, &pristine, name);
        }
        let small = bytes.len() <= 1024;
        for off in flip_offsets(bytes.len(), dense || small) {
            let mut damaged = bytes.clone();
            damaged[off] ^= 0x5A;
            std::fs::write(dir.join(name), &damaged).expect("flip");
            checker.check(name, &format!("byte {off} flipped"));
            restore(&dir, &pristine, name);
        }
        per_file.push(format!("{name}: {}", checker.tried - before));
    }
    eprintln!(
        "corruption: {} damaged copies tried ({}), {} failures",
        checker.tried,
        per_file.join(", "),
        checker.failures.len()
    );
    assert!(
        checker.failures.is_empty(),
        "{} of {} damaged files mishandled, first ones:\n{}",
        checker.failures.len(),
        checker.tried,
        checker
            .failures
            .iter()
            .take(25)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Compaction rewrites every row into a new segment with fresh checksums, so it must
/// refuse a damaged source segment (with the same typed error `verify` gives) instead of
/// laundering the damage into a file that verifies. Flips bytes across each segment file;
/// wherever `verify` notices, a writable open + `compact` must fail and the directory must
/// still fail `verify` afterwards.
#[test]
fn compaction_refuses_damaged_segments() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("db");
    build(&dir);
    let pristine = read_dir(&dir);
    let put_back = || {
        for e in std::fs::read_dir(&dir).expect("read_dir") {
            std::fs::remove_file(e.expect("entry").path()).expect("remove");
        }
        for (name, bytes) in &pristine {
            std::fs::write(dir.join(name), bytes).expect("restore");
        }
    };
    let mut refused = 0;
    for (name, bytes) in pristine.iter().filter(|(n, _)| n.starts_with("seg-")) {
        let stride = (bytes.len() / 60).max(1);
        for off in (0..bytes.len()).step_by(stride) {
            let mut damaged = bytes.clone();
            damaged[off] ^= 0x5A;
            std::fs::write(dir.join(name), &damaged).expect("flip");
            if Database::verify(&dir).is_ok() {
                put_back();
                continue;
            }
            if let Ok(db) = Database::open(&dir) {
                match db.compact() {
                    Ok(r) => panic!("{name} byte {off}: compaction of a damaged segment: {r:?}"),
                    Err(e) => assert!(is_corruption(&e), "{name} byte {off}: {e:?}"),
                }
                drop(db);
                assert!(
                    Database::verify(&dir).is_err(),
                    "{name} byte {off}: the damage no longer shows after compaction"
                );
                refused += 1;
            }
            put_back();
        }
    }
    assert!(
        refused > 20,
        "only {refused} damaged segments reached compaction"
    );
}

mod parser_props {
    //! Property tests (run in CI, where the fuzzers of `fuzz/` are not): arbitrary spec
    //! strings, and arbitrary or mutated bytes in place of a model file or any other file
    //! of a database on a simulated disk: `Ok` or a typed error, never a panic.

    use std::path::Path;
    use std::sync::{Arc, OnceLock};

    use proptest::prelude::*;
    use vladdb::codecs::index::{SearchParams, validate_spec};
    use vladdb::codecs::spec::IndexSpec;
    use vladdb::storage::{MemStorage, SharedStorage, Storage};
    use vladdb::{Database, Options};

    use super::DIM;
    use super::support::{vector_of, vectors_of, view};

    fn files() -> &'static Vec<(String, Vec<u8>)> {
        static FILES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
        FILES.get_or_init(|| {
            let s = MemStorage::new();
            let shared: SharedStorage = Arc::new(s.clone());
            let db = Database::create_in(
                shared,
                Path::new("mem"),
                "PCA6,IVF4,PQ2x4,RFlat",
                DIM,
                Options::default(),
            )
            .expect("create");
            let train: Vec<u64> = (1_000_000..1_000_300).collect();
            db.train(&view(&vectors_of(&train, DIM), DIM))
                .expect("train");
            let ids: Vec<u64> = (0..50).collect();
            let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
            db.add(&view(&vectors_of(&ids, DIM), DIM), &ids, Some(&names))
                .expect("add");
            db.commit().expect("commit");
            db.delete(&[3, 4]).expect("delete");
            db.commit().expect("commit");
            let ids: Vec<u64> = (50..70).collect();
            db.add(&view(&vectors_of(&ids, DIM), DIM), &ids, None)
                .expect("add");
            drop(db);
            let s = s.crash_process();
            s.list()
                .expect("list")
                .into_iter()
                .filter(|n| n != "LOCK")
                .map(|n| {
                    let b = s.read(&n).expect("read");
                    (n, b)
                })
                .collect()
        })
    }

    /// Rebuilds the database with file `which` replaced by `bytes`, opens and searches it.
    fn open_damaged(which: usize, bytes: Vec<u8>) {
        let files = files();
        let s = MemStorage::new();
        for (name, content) in files {
            let mut f = s.create(name).expect("create");
            f.write_all(content).expect("write");
            f.sync().expect("sync");
        }
        s.sync_dir().expect("sync_dir");
        s.set_contents(&files[which % files.len()].0, bytes)
            .expect("replace");
        let shared: SharedStorage = Arc::new(s);
        if let Ok(db) = Database::open_in(shared, Path::new("mem"), Options::default(), true) {
            let _ = db.stats();
            let p = SearchParams {
                k: 5,
                nprobe: 4,
                rerank: 2,
            };
            let _ = db.search(&vector_of(7, DIM), &p);
        }
    }

    fn model_index() -> usize {
        files()
            .iter()
            .position(|(n, _)| n.starts_with("model-"))
            .expect("model file")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn spec_strings_never_panic(text in "[A-Za-z0-9,x_ ]{0,24}", dim in 1usize..300) {
            if let Ok(spec) = IndexSpec::parse(&text) {
                let _ = validate_spec(&spec, dim);
                let canonical = spec.to_string();
                let again = IndexSpec::parse(&canonical);
                prop_assert!(again.is_ok(), "canonical {canonical:?} of {text:?} does not parse");
                prop_assert_eq!(again.map(|s| s.to_string()).ok(), Some(canonical));
            }
        }

        #[test]
        fn arbitrary_bytes_as_spec_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = IndexSpec::parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn mutated_model_files_never_panic(
            flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..6),
            cut in proptest::option::of(any::<usize>()),
        ) {
            let mut bytes = files()[model_index()].1.clone();
            for (at, x) in flips {
                let i = at % bytes.len();
                bytes[i] ^= x;
            }
            if let Some(c) = cut {
                bytes.truncate(c % (bytes.len() + 1));
            }
            open_damaged(model_index(), bytes);
        }

        #[test]
        fn arbitrary_bytes_in_place_of_any_file_never_panic(
            which in any::<usize>(),
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            open_damaged(which, bytes);
        }
    }
}
