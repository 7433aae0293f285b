//! Bad input end to end through the `vladdb` binary: every case exits with status 1, prints
//! exactly one line on stderr (`vladdb: error: ...`), and leaves the database directory byte
//! for byte as it was. Also: a second writer process is refused while another holds the
//! lock, and `verify` names a damaged file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vladdb::vecfile::write_fvecs;

const DIM: usize = 8;

fn vladdb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vladdb"))
        .args(args)
        .output()
        .expect("the vladdb binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = vladdb(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Name → (length, bytes hash) of every file of `dir` (LOCK by name only).
fn fingerprint(dir: &Path) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let e = e.expect("entry");
        let name = e.file_name().to_string_lossy().into_owned();
        // LOCK records the pid of the last process that took it: not database content.
        if name == "LOCK" {
            out.insert(name, (0, 0));
            continue;
        }
        let bytes = std::fs::read(e.path()).expect("read");
        // FNV-1a: enough to notice any change in these small files.
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        out.insert(name, (bytes.len() as u64, hash));
    }
    out
}

/// Runs a command that must fail cleanly and change nothing in `db`.
fn fails(db: &Path, args: &[&str], needle: &str) {
    let before = fingerprint(db);
    let out = vladdb(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}: exit status, stderr {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one line: {stderr}");
    assert!(
        lines[0].starts_with("vladdb: error: "),
        "{args:?}: {stderr}"
    );
    assert!(
        lines[0].to_lowercase().contains(&needle.to_lowercase()),
        "{args:?}: {:?} lacks {needle:?}",
        lines[0]
    );
    assert_eq!(fingerprint(db), before, "{args:?} changed the database");
}

fn rows(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n * DIM)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / 1e5
        })
        .collect()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    db: PathBuf,
}

impl Fixture {
    fn file(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    fn db(&self) -> String {
        self.db.to_string_lossy().into_owned()
    }
}

/// A trained database with 200 rows, and input files good and bad.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    let db = dir.join("db");
    write_fvecs(dir.join("train.fvecs"), &rows(300, 1), DIM).expect("write");
    write_fvecs(dir.join("base.fvecs"), &rows(300, 2), DIM).expect("write");
    let mut nan = rows(10, 3);
    nan[3 * DIM + 2] = f32::NAN;
    write_fvecs(dir.join("nan.fvecs"), &nan, DIM).expect("write");
    let mut inf = rows(10, 4);
    inf[5] = f32::INFINITY;
    write_fvecs(dir.join("inf.fvecs"), &inf, DIM).expect("write");
    write_fvecs(dir.join("dim7.fvecs"), &rows(10, 5)[..70], 7).expect("write");
    // 40 and 160 values: whole numbers of 8-D rows, so only the file's own dimension
    // tells that they do not fit.
    write_fvecs(dir.join("dim4.fvecs"), &rows(10, 6)[..40], 4).expect("write");
    write_fvecs(dir.join("dim16.fvecs"), &rows(20, 7), 16).expect("write");
    let names: Vec<String> = (0..301).map(|i| format!("n{i}")).collect();
    std::fs::write(dir.join("names301.txt"), names.join("\n")).expect("write");
    std::fs::write(dir.join("empty.fvecs"), b"").expect("write");
    std::fs::write(dir.join("torn.fvecs"), [8u8, 0, 0, 0, 1, 2, 3]).expect("write");
    let f = Fixture { _tmp: tmp, dir, db };
    ok(&["create", &f.db(), "--spec", "IVF4,Flat", "--dim", "8"]);
    ok(&["train", &f.db(), "--input", &f.file("train.fvecs")]);
    ok(&[
        "add",
        &f.db(),
        "--input",
        &f.file("base.fvecs"),
        "--limit",
        "200",
    ]);
    f
}

#[test]
fn bad_vectors_and_parameters_exit_1_with_one_line_and_change_nothing() {
    let f = fixture();
    let db = f.db();
    let base = f.file("base.fvecs");
    for (file, needle) in [
        ("nan.fvecs", "finite"),
        ("inf.fvecs", "finite"),
        ("dim7.fvecs", "dimension"),
        ("dim4.fvecs", "dimension 4"),
        ("dim16.fvecs", "dimension 16"),
        ("empty.fvecs", "empty.fvecs"),
        ("torn.fvecs", "torn.fvecs"),
        ("missing.fvecs", "missing.fvecs"),
    ] {
        let input = f.file(file);
        fails(
            &f.db,
            &["add", &db, "--input", &input, "--start-id", "5000"],
            needle,
        );
        fails(
            &f.db,
            &["search", &db, "--input", &input, "-k", "3", "--nprobe", "4"],
            needle,
        );
    }
    fails(
        &f.db,
        &["add", &db, "--input", &base, "--limit", "10"],
        "already present",
    );
    fails(
        &f.db,
        &["add", &db, "--input", &base, "--offset", "400"],
        "past the end",
    );
    fails(
        &f.db,
        &["search", &db, "--input", &base, "-k", "0", "--nprobe", "4"],
        "k must be",
    );
    fails(
        &f.db,
        &["search", &db, "--input", &base, "--nprobe", "0"],
        "nprobe",
    );
    fails(
        &f.db,
        &["search", &db, "--input", &base, "--nprobe", "5"],
        "nprobe",
    );
    fails(
        &f.db,
        &[
            "search", &db, "--input", &base, "--nprobe", "4", "--rerank", "2",
        ],
        "re-rank",
    );
    fails(
        &f.db,
        &[
            "add",
            &db,
            "--input",
            &base,
            "--offset",
            "250",
            "--names",
            &f.file("names301.txt"),
        ],
        "301 names for 300 rows",
    );
    fails(
        &f.db,
        &[
            "bench",
            "--base",
            &base,
            "--query",
            &base,
            "--spec",
            "Flat",
            "--threads",
            "100000",
        ],
        "--threads",
    );
    fails(&f.db, &["delete", &db, "--ids", "9..3"], "empty");
    fails(&f.db, &["delete", &db, "--ids", "x"], "not an id");
    fails(
        &f.db,
        &["train", &db, "--input", &f.file("train.fvecs")],
        "already trained",
    );
    // Usage errors are one line too (clap's first line: it does not name the argument).
    fails(&f.db, &["add", &db], "required");
    // Searches still work and return what is stored.
    let out = ok(&[
        "search", &db, "--input", &base, "--limit", "1", "-k", "1", "--nprobe", "4", "--json",
    ]);
    assert!(out.contains("\"ids\":[0]"), "{out}");
}

#[test]
fn training_with_too_few_points_fails_cleanly() {
    let f = fixture();
    let small = f.dir.join("small");
    let small_s = small.to_string_lossy().into_owned();
    ok(&["create", &small_s, "--spec", "IVF64,Flat", "--dim", "8"]);
    fails(
        &small,
        &[
            "train",
            &small_s,
            "--input",
            &f.file("train.fvecs"),
            "--limit",
            "10",
        ],
        "",
    );
    fails(
        &small,
        &["train", &small_s, "--input", &f.file("nan.fvecs")],
        "",
    );
    fails(
        &small,
        &["add", &small_s, "--input", &f.file("base.fvecs")],
        "not trained",
    );
}

#[test]
fn directories_that_are_not_databases() {
    let f = fixture();
    let empty = f.dir.join("empty_dir");
    std::fs::create_dir(&empty).expect("mkdir");
    let other = f.dir.join("other_dir");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(other.join("a.txt"), b"x").expect("write");
    let base = f.file("base.fvecs");
    for d in [&empty, &other, &f.dir.join("missing_dir")] {
        let s = d.to_string_lossy().into_owned();
        for args in [
            vec!["add", &s, "--input", &base],
            vec!["train", &s, "--input", &base],
            vec!["search", &s, "--input", &base],
            vec!["delete", &s, "--ids", "1"],
            vec!["stats", &s],
            vec!["compact", &s],
            vec!["verify", &s],
        ] {
            fails(d, &args, "not a vladdb database");
        }
        assert_eq!(
            d.exists(),
            !s.ends_with("missing_dir"),
            "a command created {s}"
        );
    }
    fails(
        &other,
        &[
            "create",
            &other.to_string_lossy(),
            "--spec",
            "Flat",
            "--dim",
            "8",
        ],
        "not empty",
    );
    let x = f.dir.join("x").to_string_lossy().into_owned();
    fails(
        &f.dir.join("x"),
        &["create", &x, "--spec", "IVF4,Bogus", "--dim", "8"],
        "",
    );
    fails(
        &f.dir.join("x"),
        &["create", &x, "--spec", "Flat", "--dim", "0"],
        "",
    );
}

#[test]
fn a_second_writer_process_is_refused() {
    let f = fixture();
    let db = f.db();
    let base = f.file("base.fvecs");
    let holder = vladdb::Database::open(&f.db).expect("the test holds the writer lock");
    for args in [
        vec![
            "add", &db, "--input", &base, "--offset", "200", "--limit", "10",
        ],
        vec!["delete", &db, "--ids", "1..5"],
        vec!["compact", &db],
        vec!["train", &db, "--input", &base],
    ] {
        fails(&f.db, &args, "locked");
    }
    // Readers are not blocked by the writer.
    ok(&["stats", &db]);
    ok(&["verify", &db]);
    drop(holder);
    ok(&[
        "add", &db, "--input", &base, "--offset", "200", "--limit", "10",
    ]);
    let stats = ok(&["stats", &db, "--json"]);
    assert!(stats.contains("\"vectors\":210"), "{stats}");
}

#[test]
fn verify_names_a_damaged_file() {
    let f = fixture();
    let db = f.db();
    ok(&["verify", &db]);
    let seg = std::fs::read_dir(&f.db)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("seg-"))
        .expect("a segment");
    let path = f.db.join(&seg);
    let mut bytes = std::fs::read(&path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, &bytes).expect("write");
    fails(&f.db, &["verify", &db], &seg);
    std::fs::write(&path, &bytes[..bytes.len() / 3]).expect("truncate");
    fails(&f.db, &["stats", &db], &seg);
    fails(
        &f.db,
        &["search", &db, "--input", &f.file("base.fvecs")],
        &seg,
    );
}
