//! Model-based and concurrency tests.
//!
//! 1. A proptest state machine: random sequences of add / upsert / delete / commit /
//!    compact / reopen (process kill or power loss of a simulated disk) / search against an
//!    in-memory reference map. `IVF4,Flat` probing every list is exact, so every search is
//!    compared with brute force over the reference, and every error is predicted.
//! 2. A stress test: reader threads search while a writer adds, deletes, commits and
//!    compacts; every result must be a correct top-k of a state the writer published
//!    between the moment the search started and the moment it returned.
//!
//! `PROPTEST_CASES=N` sets the number of sequences (default 40); `VLADDB_STRESS_OPS=N` the
//! writer operations of the stress test (default 300).

#[path = "support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use support::{exhaustive, vector_of, view};
use vladdb::storage::{MemStorage, SharedStorage};
use vladdb::{Database, Error, Options};
use vladdb_tests::Rng;

const DIM: usize = 8;
const NLIST: usize = 4;
const SPEC: &str = "IVF4,Flat";

fn options() -> Options {
    Options {
        flush_rows: 24,
        max_segments: 3,
        max_deleted_fraction: 0.3,
        ..Options::default()
    }
}

/// The vector of `id` at `version` (upserts bump the version).
fn versioned(id: u64, version: u64) -> Vec<f32> {
    vector_of(id ^ (version << 32), DIM)
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Checks that `hits` is a correct top-`k` of `state` (id → vector) for `q`, tolerating
/// float rounding at near ties.
fn check_top_k(
    hits: &[(u64, f32)],
    state: &BTreeMap<u64, Vec<f32>>,
    q: &[f32],
    k: usize,
) -> Result<(), String> {
    if hits.len() != k.min(state.len()) {
        return Err(format!(
            "{} hits, expected {}",
            hits.len(),
            k.min(state.len())
        ));
    }
    let mut seen = BTreeSet::new();
    let mut last = f32::NEG_INFINITY;
    for &(id, d) in hits {
        let v = state.get(&id).ok_or(format!("id {id} is not live"))?;
        let want = l2(q, v);
        if (d - want).abs() > 1e-3 * (1.0 + want) {
            return Err(format!("id {id}: distance {d}, expected {want}"));
        }
        if !seen.insert(id) || d < last - 1e-3 * (1.0 + last.abs()) {
            return Err("duplicate id or unsorted results".into());
        }
        last = last.max(d);
    }
    if hits.len() == k {
        let bound = last - 1e-3 * (1.0 + last);
        if let Some((id, _)) = state
            .iter()
            .find(|(id, v)| !seen.contains(id) && l2(q, v) < bound)
        {
            return Err(format!("id {id} is closer than the k-th hit but missing"));
        }
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Op {
    Add(Vec<u64>),
    Upsert(Vec<u64>),
    Delete(Vec<u64>),
    Commit,
    Compact,
    Kill,
    PowerLoss,
    Search(u64),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let ids = proptest::collection::vec(0u64..80, 1..12);
    prop_oneof![
        4 => ids.clone().prop_map(Op::Add),
        2 => ids.clone().prop_map(Op::Upsert),
        2 => ids.prop_map(Op::Delete),
        1 => Just(Op::Commit),
        1 => Just(Op::Compact),
        1 => Just(Op::Kill),
        1 => Just(Op::PowerLoss),
        3 => (0u64..1000).prop_map(Op::Search),
    ]
}

fn open(s: &MemStorage) -> Database {
    let shared: SharedStorage = Arc::new(s.clone());
    Database::open_in(shared, Path::new("mem"), options(), false).expect("reopen")
}

fn has_duplicates(ids: &[u64]) -> bool {
    ids.iter().collect::<BTreeSet<_>>().len() != ids.len()
}

fn run_sequence(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut storage = MemStorage::new();
    let shared: SharedStorage = Arc::new(storage.clone());
    let mut db =
        Database::create_in(shared, Path::new("mem"), SPEC, DIM, options()).expect("create");
    let train: Vec<f32> = (0..200u64)
        .flat_map(|i| vector_of(5_000_000 + i, DIM))
        .collect();
    db.train(&view(&train, DIM)).expect("train");
    let mut reference: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
    let mut version = 0u64;
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Add(ids) | Op::Upsert(ids) => {
                version += 1;
                let data: Vec<f32> = ids.iter().flat_map(|&id| versioned(id, version)).collect();
                let upsert = matches!(op, Op::Upsert(_));
                let result = if upsert {
                    db.upsert(&view(&data, DIM), ids, None)
                } else {
                    db.add(&view(&data, DIM), ids, None)
                };
                let should_fail = has_duplicates(ids)
                    || (!upsert && ids.iter().any(|id| reference.contains_key(id)));
                match result {
                    Ok(()) => {
                        prop_assert!(!should_fail, "step {step}: {op:?} accepted");
                        for &id in ids {
                            reference.insert(id, versioned(id, version));
                        }
                    }
                    Err(e) => {
                        prop_assert!(should_fail, "step {step}: {op:?} failed: {e}");
                        prop_assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
                    }
                }
            }
            Op::Delete(ids) => {
                let present: BTreeSet<u64> = ids
                    .iter()
                    .copied()
                    .filter(|id| reference.contains_key(id))
                    .collect();
                let n = db.delete(ids).expect("delete");
                prop_assert_eq!(n, present.len(), "step {}: delete count", step);
                for id in present {
                    reference.remove(&id);
                }
            }
            Op::Commit => db.commit().expect("commit"),
            Op::Compact => {
                db.compact().expect("compact");
            }
            Op::Kill | Op::PowerLoss => {
                drop(db);
                storage = if matches!(op, Op::Kill) {
                    storage.crash_process()
                } else {
                    storage.crash_power_loss()
                };
                db = open(&storage);
            }
            Op::Search(seed) => {
                let q = vector_of(9_000_000 + seed, DIM);
                for k in [1, 7] {
                    let hits: Vec<(u64, f32)> = db
                        .search(&q, &exhaustive(k, NLIST))
                        .expect("search")
                        .into_iter()
                        .map(|h| (h.id, h.distance))
                        .collect();
                    if let Err(e) = check_top_k(&hits, &reference, &q, k) {
                        return Err(TestCaseError::fail(format!(
                            "step {step}: search k={k}: {e}"
                        )));
                    }
                }
            }
        }
        // The live count always matches the reference.
        prop_assert_eq!(
            db.stats().expect("stats").vectors,
            reference.len() as u64,
            "step {}",
            step
        );
    }
    // And everything survives a final power loss.
    drop(db);
    let db = open(&storage.crash_power_loss());
    prop_assert_eq!(
        support::live_ids(&db, NLIST),
        reference.keys().copied().collect::<BTreeSet<_>>()
    );
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn random_operation_sequences_match_the_reference(
        ops in proptest::collection::vec(op_strategy(), 1..60)
    ) {
        run_sequence(&ops)?;
    }
}

/// The published states of the stress writer: `states[v]` is the live set after op `v`.
type States = Arc<Mutex<Vec<Arc<BTreeSet<u64>>>>>;

#[test]
fn readers_see_consistent_snapshots_during_writes_and_compaction() {
    let ops: usize = std::env::var("VLADDB_STRESS_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("db");
    let opts = Options {
        flush_rows: 64,
        max_segments: 4,
        max_deleted_fraction: 0.2,
        ..Options::default()
    };
    let db = Arc::new(Database::create_with(&path, SPEC, DIM, opts).expect("create"));
    let train: Vec<f32> = (0..200u64)
        .flat_map(|i| vector_of(5_000_000 + i, DIM))
        .collect();
    db.train(&view(&train, DIM)).expect("train");
    let states: States = Arc::new(Mutex::new(vec![Arc::new(BTreeSet::new())]));
    let stop = Arc::new(AtomicBool::new(false));
    let checked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let readers: Vec<_> = (0..3)
        .map(|r| {
            let (db, states, stop, checked) =
                (db.clone(), states.clone(), stop.clone(), checked.clone());
            std::thread::spawn(move || {
                let mut rng = Rng::new(100 + r);
                while !stop.load(Ordering::SeqCst) {
                    let q = vector_of(9_000_000 + rng.next_u64() % 10_000, DIM);
                    // The newest entry may be announced but not yet published: start one
                    // earlier, at the last state that was certainly visible.
                    let first = states.lock().expect("states").len().saturating_sub(2);
                    let hits: Vec<(u64, f32)> = db
                        .search(&q, &exhaustive(5, NLIST))
                        .expect("search during writes")
                        .into_iter()
                        .map(|h| (h.id, h.distance))
                        .collect();
                    let candidates: Vec<Arc<BTreeSet<u64>>> =
                        states.lock().expect("states")[first..].to_vec();
                    let ok = candidates.iter().any(|s| {
                        let state: BTreeMap<u64, Vec<f32>> =
                            s.iter().map(|&id| (id, vector_of(id, DIM))).collect();
                        check_top_k(&hits, &state, &q, 5).is_ok()
                    });
                    assert!(
                        ok,
                        "a result matches none of the {} states it could have seen",
                        candidates.len()
                    );
                    checked.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let mut rng = Rng::new(9);
    let mut live: BTreeSet<u64> = BTreeSet::new();
    let mut next = 0u64;
    for _ in 0..ops {
        let roll = rng.next_u64() % 10;
        // Announce the state the op will publish *before* running it, so that a reader that
        // sees it mid-op finds it among the candidates.
        let mut after = live.clone();
        let op: Box<dyn FnOnce()> = if roll < 6 {
            let n = 1 + rng.next_u64() % 40;
            let ids: Vec<u64> = (next..next + n).collect();
            next += n;
            after.extend(ids.iter().copied());
            let db = db.clone();
            Box::new(move || {
                let data: Vec<f32> = ids.iter().flat_map(|&id| vector_of(id, DIM)).collect();
                db.add(&view(&data, DIM), &ids, None).expect("add");
            })
        } else if roll < 8 && next > 0 {
            let start = rng.next_u64() % next;
            let ids: Vec<u64> = (start..start + 1 + rng.next_u64() % 30).collect();
            for id in &ids {
                after.remove(id);
            }
            let db = db.clone();
            Box::new(move || {
                db.delete(&ids).expect("delete");
            })
        } else if roll < 9 {
            let db = db.clone();
            Box::new(move || db.commit().expect("commit"))
        } else {
            let db = db.clone();
            Box::new(move || {
                db.compact().expect("compact");
            })
        };
        states.lock().expect("states").push(Arc::new(after.clone()));
        op();
        // Re-publish the same state as the newest: it is now the only one visible.
        states.lock().expect("states").push(Arc::new(after.clone()));
        live = after;
    }
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().expect("reader thread");
    }
    let n = checked.load(Ordering::SeqCst);
    eprintln!("stress: {ops} writer ops, {n} reader searches checked");
    assert!(n > 0);
    let got = support::live_ids(&db, NLIST);
    assert_eq!(got, live);
}

/// A read-only open (what `vladdb search` and `stats` do) while another handle writes,
/// commits and compacts the same directory: every open must succeed and see at least
/// every add acknowledged before it started (adds only, so the live count only grows).
#[test]
fn read_only_opens_during_commits_and_compactions_see_acknowledged_rows() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("db");
    let opts = Options {
        flush_rows: 1 << 20,
        max_segments: 2,
        ..Options::default()
    };
    let db = Database::create_with(&path, SPEC, DIM, opts).expect("create");
    let train: Vec<f32> = (0..200u64)
        .flat_map(|i| vector_of(5_000_000 + i, DIM))
        .collect();
    db.train(&view(&train, DIM)).expect("train");
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (path, acked, stop) = (path.clone(), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut opens = 0;
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let floor = acked.load(Ordering::SeqCst);
                match Database::open_read_only(&path) {
                    Ok(r) => {
                        let n = r.stats().expect("stats").vectors;
                        if n < floor {
                            failures.push(format!("saw {n} rows, {floor} acknowledged"));
                        }
                    }
                    Err(e) => failures.push(e.to_string()),
                }
                opens += 1;
            }
            (opens, failures)
        })
    };
    let mut next = 0u64;
    for round in 0..150 {
        let ids: Vec<u64> = (next..next + 20).collect();
        next += 20;
        let data: Vec<f32> = ids.iter().flat_map(|&id| vector_of(id, DIM)).collect();
        db.add(&view(&data, DIM), &ids, None).expect("add");
        acked.store(next, Ordering::SeqCst);
        db.commit().expect("commit");
        if round % 5 == 4 {
            db.compact().expect("compact");
        }
    }
    stop.store(true, Ordering::SeqCst);
    let (opens, failures) = reader.join().expect("reader");
    eprintln!(
        "read-only opens during writes: {opens}, failures: {}",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {opens} read-only opens failed or lost rows, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}
