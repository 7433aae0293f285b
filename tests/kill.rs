//! Kill test: a child process (this test binary re-executed in "child mode") adds, deletes,
//! commits and compacts through the library in a loop, announcing each operation before it
//! starts (`B ...`) and after it returned `Ok` (`A ...`) on stdout; the parent SIGKILLs it at a
//! random moment, then checks the directory against an oracle of acknowledged operations:
//! every acknowledged add present, every acknowledged delete gone, the one in-flight
//! operation applied entirely or not at all, `Database::verify` clean, searches exact.
//!
//! CI runs 25 kills; `VLADDB_KILL_ITERATIONS=1000 cargo test -p vladdb-tests --test kill
//! -- --nocapture` is the long run (see docs/reliability.md).

#[path = "support.rs"]
mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{exhaustive, live_ids, vector_of, vectors_of, view};
use vladdb::{Database, Options};
use vladdb_tests::Rng;

const DIM: usize = 8;
const NLIST: usize = 4;
const SPEC: &str = "IVF4,Flat";
const CHILD_DIR: &str = "VLADDB_KILL_CHILD_DIR";
const CHILD_SEED: &str = "VLADDB_KILL_CHILD_SEED";
const CHILD_NEXT_ID: &str = "VLADDB_KILL_CHILD_NEXT_ID";

fn child_options() -> Options {
    Options {
        flush_rows: 150,
        max_segments: 3,
        max_deleted_fraction: 0.2,
        ..Options::default()
    }
}

fn say(line: &str) {
    // Straight to the stdout handle (not the test harness's capture), one flushed line.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The child's workload; only runs when the parent set the environment.
#[test]
fn kill_child_workload() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let seed: u64 = std::env::var(CHILD_SEED).map_or(1, |s| s.parse().unwrap_or(1));
    let mut next: u64 = std::env::var(CHILD_NEXT_ID).map_or(0, |s| s.parse().unwrap_or(0));
    let mut rng = Rng::new(seed);
    let db = Database::open_with(&dir, child_options()).expect("child open");
    say("OPEN");
    for _ in 0..60 {
        let live = db.stats().expect("stats").vectors;
        let roll = rng.next_u64() % 10;
        if roll < 5 && live < 3000 {
            let n = 1 + rng.next_u64() % 80;
            let ids: Vec<u64> = (next..next + n).collect();
            let data = vectors_of(&ids, DIM);
            say(&format!("B add {next} {n}"));
            db.add(&view(&data, DIM), &ids, None).expect("add");
            say(&format!("A add {next} {n}"));
            next += n;
        } else if roll < 8 && next > 0 {
            let start = rng.next_u64() % next;
            let len = 1 + rng.next_u64() % if live >= 3000 { 400 } else { 40 };
            say(&format!("B del {start} {len}"));
            let ids: Vec<u64> = (start..start + len).collect();
            db.delete(&ids).expect("delete");
            say(&format!("A del {start} {len}"));
        } else if roll < 9 {
            say("B commit");
            db.commit().expect("commit");
            say("A commit");
        } else {
            say("B compact");
            db.compact().expect("compact");
            say("A compact");
        }
    }
    say("DONE");
}

/// What the parent knows: acknowledged live ids and the next fresh id.
struct Oracle {
    live: BTreeSet<u64>,
    next_id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Add(u64, u64),
    Del(u64, u64),
    Other,
}

fn parse(line: &str) -> Option<(bool, Op)> {
    let mut words = line.split_whitespace();
    let done = match words.next()? {
        "A" => true,
        "B" => false,
        _ => return None,
    };
    let kind = words.next()?;
    let mut num = || words.next().and_then(|w| w.parse::<u64>().ok());
    let op = match kind {
        "add" => Op::Add(num()?, num()?),
        "del" => Op::Del(num()?, num()?),
        _ => Op::Other,
    };
    Some((done, op))
}

impl Oracle {
    fn apply(&mut self, op: Op) {
        match op {
            Op::Add(a, n) => self.live.extend(a..a + n),
            Op::Del(a, n) => {
                for id in a..a + n {
                    self.live.remove(&id);
                }
            }
            Op::Other => {}
        }
    }

    fn with(&self, op: Op) -> BTreeSet<u64> {
        let mut o = Oracle {
            live: self.live.clone(),
            next_id: self.next_id,
        };
        o.apply(op);
        o.live
    }
}

/// Counters of one kill run.
#[derive(Default, Debug)]
struct Tally {
    kills: usize,
    in_flight: usize,
    in_flight_applied: usize,
    during_open: usize,
    completed: usize,
}

fn spawn_child(dir: &Path, seed: u64, next: u64) -> std::process::Child {
    Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            "--exact",
            "kill_child_workload",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .env(CHILD_SEED, seed.to_string())
        .env(CHILD_NEXT_ID, next.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child")
}

fn check_database(dir: &Path, oracle: &mut Oracle, in_flight: Option<Op>, tally: &mut Tally) {
    if let Err(e) = Database::verify(dir) {
        panic!("verify after a kill: {e}");
    }
    let db = Database::open_read_only(dir).expect("open after a kill");
    let got = live_ids(&db, NLIST);
    match in_flight {
        Some(op @ (Op::Add(..) | Op::Del(..))) if got != oracle.live => {
            assert_eq!(
                got,
                oracle.with(op),
                "after a kill during {op:?}: neither the state before nor after it"
            );
            oracle.apply(op);
            tally.in_flight_applied += 1;
        }
        _ => assert_eq!(got, oracle.live, "acknowledged state lost"),
    }
    // Searches work and are exact: a stored vector finds its own id at distance 0.
    for &id in got.iter().step_by((got.len() / 5).max(1)) {
        let hits = db
            .search(&vector_of(id, DIM), &exhaustive(1, NLIST))
            .expect("search");
        assert_eq!(hits.first().map(|h| h.id), Some(id));
        assert_eq!(hits[0].distance, 0.0);
    }
}

fn kill_loop(kills_wanted: usize, seed: u64) -> Tally {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir: PathBuf = tmp.path().join("db");
    {
        let db = Database::create_with(&dir, SPEC, DIM, child_options()).expect("create");
        let train: Vec<u64> = (1_000_000..1_000_256).collect();
        db.train(&view(&vectors_of(&train, DIM), DIM))
            .expect("train");
    }
    let mut oracle = Oracle {
        live: BTreeSet::new(),
        next_id: 0,
    };
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    let mut run = 0u64;
    while tally.kills < kills_wanted {
        run += 1;
        let mut child = spawn_child(&dir, seed.wrapping_mul(1000) + run, oracle.next_id);
        let stdout = child.stdout.take().expect("child stdout");
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        // Kill somewhere in the child's life: from before it opened to its last operations.
        let delay = Duration::from_micros(rng.next_u64() % 120_000);
        std::thread::sleep(delay);
        let killed = matches!(child.try_wait(), Ok(None));
        let _ = child.kill();
        let status = child.wait().expect("wait for the child");
        let lines = reader.join().expect("reader thread");
        let finished = lines.iter().any(|l| l.ends_with("DONE"));
        if killed && !finished {
            tally.kills += 1;
        } else {
            assert!(status.success() || finished, "child failed: {lines:?}");
            tally.completed += 1;
        }
        // libtest prints "test name ... " before the first line of the child.
        if !lines.iter().any(|l| l.ends_with("OPEN")) {
            tally.during_open += 1;
        }
        let mut pending: Option<Op> = None;
        for line in &lines {
            let Some((done, op)) = parse(line) else {
                continue;
            };
            if let Op::Add(a, n) = op {
                oracle.next_id = oracle.next_id.max(a + n);
            }
            if done {
                oracle.apply(op);
                pending = None;
            } else {
                pending = Some(op);
            }
        }
        if pending.is_some() {
            tally.in_flight += 1;
        }
        check_database(&dir, &mut oracle, pending, &mut tally);
    }
    tally
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_write() {
    if std::env::var(CHILD_DIR).is_ok() {
        return;
    }
    let kills: usize = std::env::var("VLADDB_KILL_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    let seed: u64 = std::env::var("VLADDB_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let tally = kill_loop(kills, seed);
    eprintln!("kill test: {tally:?}");
    assert!(tally.kills >= kills);
    // The random delays must actually hit operations in flight, or the test proves little.
    if kills >= 20 {
        assert!(tally.in_flight > 0, "no kill landed during an operation");
    }
}
