//! Building and timing one index spec for `vladdb bench`: through the engine (a database
//! in a temporary directory, closed and reopened before searching, so the searches run on
//! memory-mapped segments exactly as a user's would) or in memory (`--memory`).

use std::path::PathBuf;
use std::time::Instant;

use vladdb::codecs::index::{SearchParams, VectorIndex, build_index};
use vladdb::codecs::spec::IndexSpec;
use vladdb::vecfile::VectorFile;
use vladdb::{Database, Options};

use crate::bench::{BenchArgs, Truth};
use crate::metrics::recalls;
use crate::report::BenchRow;
use crate::{CliResult, err, progress, with_threads};

/// A built index, ready to search.
enum Built {
    Memory(Box<dyn VectorIndex>),
    /// The database and the temporary directory it lives in (removed on drop).
    Disk {
        db: Box<Database>,
        _dir: TempDir,
    },
}

impl Built {
    fn search(&self, queries: &[f32], params: &SearchParams) -> CliResult<Vec<Vec<u64>>> {
        Ok(match self {
            Built::Memory(index) => index
                .search(queries, params)
                .map_err(err)?
                .into_iter()
                .map(|l| l.into_iter().map(|n| n.id).collect())
                .collect(),
            Built::Disk { db, .. } => db
                .search_batch(queries, params)
                .map_err(err)?
                .into_iter()
                .map(|l| l.into_iter().map(|h| h.id).collect())
                .collect(),
        })
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> CliResult<TempDir> {
        let base = std::env::temp_dir();
        for n in 0..1000 {
            let p = base.join(format!("vladdb-bench-{}-{n}", std::process::id()));
            if std::fs::create_dir(&p).is_ok() {
                return Ok(TempDir(p));
            }
        }
        Err(format!(
            "cannot create a temporary directory in {}",
            base.display()
        ))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Builds `spec` (train on `train`, add all of `base` with row numbers as ids), then
/// times the search at every `--nprobe` (once for specs without an inverted file).
pub fn bench_index(
    args: &BenchArgs,
    spec: &str,
    base: &VectorFile,
    train: &VectorFile,
    queries: &[f32],
    truth: &Truth,
    threads: usize,
) -> CliResult<Vec<BenchRow>> {
    let parsed = IndexSpec::parse(spec).map_err(err)?;
    let rerank = if parsed.stores_vectors() {
        args.rerank
    } else {
        0
    };
    let all = base.vectors();
    let ids: Vec<u64> = (0..all.rows() as u64).collect();
    let spinner = progress::spinner(&format!("train {spec}"));
    let (built, train_s, add_s, bytes, open_ms, canonical, nlist) = if args.memory {
        let mut index = build_index(spec, base.dim()).map_err(err)?;
        let start = Instant::now();
        with_threads(threads, || index.train(&train.vectors()))?.map_err(err)?;
        let train_s = start.elapsed().as_secs_f64();
        spinner.set_message(format!("add {spec}"));
        let start = Instant::now();
        with_threads(threads, || index.add(&all, &ids))?.map_err(err)?;
        let add_s = start.elapsed().as_secs_f64();
        let (bytes, canonical, nlist) = (index.bytes() as u64, index.spec(), index.nlist());
        (
            Built::Memory(index),
            train_s,
            add_s,
            bytes,
            None,
            canonical,
            nlist,
        )
    } else {
        let dir = TempDir::new()?;
        let path = dir.0.join("db");
        let options = Options {
            flush_rows: usize::MAX,
            ..Options::default()
        };
        let db = Database::create_with(&path, spec, base.dim(), options.clone()).map_err(err)?;
        let start = Instant::now();
        with_threads(threads, || db.train(&train.vectors()))?.map_err(err)?;
        let train_s = start.elapsed().as_secs_f64();
        spinner.set_message(format!("add {spec}"));
        let start = Instant::now();
        with_threads(threads, || {
            db.add(&all, &ids, None).and_then(|()| db.commit())
        })?
        .map_err(err)?;
        let add_s = start.elapsed().as_secs_f64();
        drop(db);
        // Best of five opens: the open time users see on a warm page cache.
        let mut open_ms = f64::INFINITY;
        let mut reopened = None;
        for _ in 0..5 {
            // Release the previous handle (and its writer lock) before opening again.
            drop(reopened.take());
            let start = Instant::now();
            let db = Database::open_with(&path, options.clone()).map_err(err)?;
            open_ms = open_ms.min(start.elapsed().as_secs_f64() * 1e3);
            reopened = Some(db);
        }
        let db = reopened.ok_or("the database did not open")?;
        let stats = db.stats().map_err(err)?;
        let nlist = parsed.ivf;
        (
            Built::Disk {
                db: Box::new(db),
                _dir: dir,
            },
            train_s,
            add_s,
            stats.bytes,
            Some(open_ms),
            stats.spec,
            nlist,
        )
    };
    spinner.finish_and_clear();

    let probes: Vec<Option<usize>> = match nlist {
        Some(_) => args.nprobe.iter().map(|&p| Some(p)).collect(),
        None => vec![None],
    };
    let runs = args.runs.unwrap_or(3).max(1);
    let mut out = Vec::new();
    for nprobe in probes {
        let params = SearchParams {
            k: args.k,
            nprobe: nprobe.unwrap_or(1),
            rerank,
        };
        let mut best = f64::INFINITY;
        let mut ids = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            ids = with_threads(threads, || built.search(queries, &params))??;
            best = best.min(start.elapsed().as_secs_f64());
        }
        let r = recalls(&ids, truth, args.k);
        out.push(BenchRow {
            spec: canonical.clone(),
            nprobe,
            k: args.k,
            queries: ids.len(),
            threads,
            recall_1_at_1: r.r1_at_1,
            recall_1_at_10: r.r1_at_10,
            recall_1_at_100: r.r1_at_100,
            recall_10_at_10: r.r10_at_10,
            qps: ids.len() as f64 / best,
            train_s,
            add_s,
            bytes,
            rerank,
            vectors: all.rows(),
            open_ms,
            storage: if args.memory { "memory" } else { "disk" }.into(),
        });
    }
    Ok(out)
}
