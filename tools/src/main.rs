//! The `vladdb` command-line tool: database commands, the benchmark harness and the demo.
//!
//! Every error is printed as one line on stderr and the process exits with status 1.

mod bench;
mod bench_index;
mod db_cmds;
mod demo;
mod metrics;
mod plot;
mod progress;
mod report;
mod retrieval;

/// The tool's allocator. A search returns every query's hits (about 4 KB each at k = 100)
/// and keeps them; with glibc's per-thread arenas each growth of a worker's heap was a
/// system call and a page fault, 10% of an `IVF4096,PQ32x4fs` search (measured in
/// docs/benchmarks.md). Library users keep whatever allocator their program has.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// An error for the CLI: one human-readable line.
pub type CliResult<T> = Result<T, String>;

#[derive(Parser)]
#[command(
    name = "vladdb",
    version,
    about = "vladdb: an embedded vector database engine for image retrieval",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure recall and speed of index specs against exact search on a TEXMEX/npy set.
    Bench(Box<bench::BenchArgs>),
    /// The one-command tour: build and search an index on the bundled sample.
    Demo(demo::DemoArgs),
    /// Create a new, empty database directory for an index spec and dimension.
    Create(db_cmds::CreateArgs),
    /// Train the database's model (PCA, coarse quantizer, PQ codebooks) on a vector file.
    Train(db_cmds::TrainArgs),
    /// Add vectors from a file (ids = row number + --start-id); commits at the end.
    Add(db_cmds::AddArgs),
    /// Delete ids (e.g. `--ids 1,5,10..20`, ranges inclusive); commits at the end.
    Delete(db_cmds::DeleteArgs),
    /// Search the database with the vectors of a file.
    Search(db_cmds::SearchArgs),
    /// Counts, sizes and list balance of a database.
    Stats(db_cmds::DbArgs),
    /// Merge all segments into one, dropping deleted rows.
    Compact(db_cmds::DbArgs),
    /// Check every checksum and invariant; exit 1 naming the first problem.
    Verify(db_cmds::DbArgs),
    /// Encode descriptor sets into global vectors (VLAD, Fisher, BoF) written to a .npy.
    Encode(retrieval::EncodeArgs),
    /// Draw a recall–QPS plot (SVG) from saved `bench --json` results (and FAISS's).
    Plot(plot::PlotArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors: print them as clap formats them.
            if !e.use_stderr() {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // A usage error: one line, like every other error (the message and its
            // details, without clap's usage block).
            let rendered = e.render().to_string();
            let message: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let text = message.join(" ");
            let text = text.trim_start_matches("error: ");
            eprintln!("vladdb: error: {} (see --help)", one_line(text));
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        Command::Bench(args) => bench::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Create(a) => db_cmds::create(&a),
        Command::Train(a) => db_cmds::train(&a),
        Command::Add(a) => db_cmds::add(&a),
        Command::Delete(a) => db_cmds::delete(&a),
        Command::Search(a) => db_cmds::search(&a),
        Command::Stats(a) => db_cmds::stats(&a),
        Command::Compact(a) => db_cmds::compact(&a),
        Command::Verify(a) => db_cmds::verify(&a),
        Command::Encode(a) => retrieval::encode(&a),
        Command::Plot(a) => plot::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("vladdb: error: {}", one_line(&message));
            ExitCode::from(1)
        }
    }
}

/// Folds a message onto one line (errors may carry newlines from lower layers).
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Turns any displayable error into the CLI's one-line error.
pub fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// The bundled sample directory (`data/sample` in the source tree).
pub fn default_sample_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("data")
        .join("sample")
}

/// Upper bound on `--threads`: far beyond any machine's cores, low enough that a typo
/// cannot start tens of thousands of threads (each with its own scratch buffers).
const MAX_THREADS: usize = 1024;

/// Runs `f` on a rayon pool of `threads` threads (0 = all cores). Pools are made once per
/// size and reused, so timed sections never include thread start-up.
pub fn with_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> CliResult<T> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    if threads > MAX_THREADS {
        return Err(format!(
            "--threads {threads} is more than {MAX_THREADS}; use 0 for one thread per core"
        ));
    }
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let pool = {
        let mut pools = POOLS
            .get_or_init(Mutex::default)
            .lock()
            .map_err(|_| "thread pool registry poisoned".to_string())?;
        match pools.get(&threads) {
            Some(p) => p.clone(),
            None => {
                let p = Arc::new(
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .map_err(|e| format!("cannot start {threads} threads: {e}"))?,
                );
                pools.insert(threads, p.clone());
                p
            }
        }
    };
    Ok(pool.install(f))
}
