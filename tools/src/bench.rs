//! `vladdb bench`: the harness that measures every index spec against exact search.
//!
//! Recall is computed against the ground truth file (`--gt`) or, without one, against the
//! exact top-k computed here (timed and reported). QPS is the best of `--runs` timed passes
//! over the first `--queries` queries, all in one batch on `--threads` threads.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use vladdb::codecs::exact;
use vladdb::vecfile::{VectorFile, read_ivecs};

use crate::bench_index::bench_index;
use crate::metrics::recalls;
use crate::plot;
use crate::report::{BenchRow, print_rows};
use crate::{CliResult, err, with_threads};

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Database vectors (.fvecs, .bvecs or .npy).
    #[arg(
        long,
        required_unless_present = "base_sets",
        conflicts_with = "base_sets"
    )]
    pub base: Option<PathBuf>,
    /// Query vectors (same dimension as --base).
    #[arg(
        long,
        required_unless_present = "base_sets",
        conflicts_with = "base_sets"
    )]
    pub query: Option<PathBuf>,
    /// Training vectors (default: train on --base).
    #[arg(long, conflicts_with = "base_sets")]
    pub learn: Option<PathBuf>,
    /// Exact nearest neighbours (.ivecs, nearest first); computed here if missing.
    #[arg(long, conflicts_with = "base_sets")]
    pub gt: Option<PathBuf>,
    /// Use only the first N queries.
    #[arg(long)]
    pub queries: Option<usize>,
    /// Index spec, e.g. `Flat` or `IVF4096,PQ16`; repeat the flag (or separate with `;`) for several.
    #[arg(long, required = true)]
    pub spec: Vec<String>,
    /// Lists probed per query for IVF specs, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub nprobe: Vec<usize>,
    /// Neighbours returned per query.
    #[arg(short = 'k', long = "k", default_value_t = 100)]
    pub k: usize,
    /// Search threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Re-rank factor for specs that store vectors (`,RFlat` or `,RF16`): re-score k × F candidates.
    #[arg(long, default_value_t = 0)]
    pub rerank: usize,
    /// Timed passes per operating point; the best is reported (default: 1 for Flat, 3 otherwise).
    #[arg(long)]
    pub runs: Option<usize>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Build the index in memory instead of through the engine (a database in a
    /// temporary directory, reopened before searching).
    #[arg(long)]
    pub memory: bool,
    /// Retrieval benchmark: descriptor sets to train the encoder and index on (PREFIX of
    /// PREFIX_descriptors.npy / PREFIX_offsets.npy).
    #[arg(long, requires = "base_sets")]
    pub learn_sets: Option<PathBuf>,
    /// Retrieval benchmark: the database images' descriptor sets.
    #[arg(long, requires_all = ["query_sets", "truth"])]
    pub base_sets: Option<PathBuf>,
    /// Retrieval benchmark: the query images' descriptor sets.
    #[arg(long)]
    pub query_sets: Option<PathBuf>,
    /// Retrieval benchmark: int64 .npy with the database index of each query's true image.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Plot options: --plot, --plot-metric, --compare, --compare-label.
    #[command(flatten)]
    pub plotting: plot::BenchPlotArgs,
}

/// The truth the harness scores against: per query, ids nearest first.
pub type Truth = Vec<Vec<u64>>;

pub fn run(args: &BenchArgs) -> CliResult<()> {
    if args.k == 0 {
        return Err("-k must be at least 1".into());
    }
    if args.runs == Some(0) {
        return Err("--runs must be at least 1".into());
    }
    spec_list(args)?;
    if args.base_sets.is_some() {
        if args.plotting.plot.is_some() {
            return Err("--plot draws ANN benchmarks, not the retrieval benchmark".into());
        }
        return crate::retrieval::bench(args);
    }
    // Bad plot options and --compare files fail before the long part.
    let plotting = &args.plotting;
    let compare = match &plotting.plot {
        Some(path) => {
            plot::check_output(path)?;
            if args.k < plotting.plot_metric.min_k() {
                return Err(format!(
                    "--plot-metric {} needs -k {} or more",
                    plotting.plot_metric.key(),
                    plotting.plot_metric.min_k()
                ));
            }
            plot::read_compare(
                &plotting.compare,
                &plotting.compare_label,
                plotting.plot_metric,
            )?
        }
        None => Vec::new(),
    };
    let (Some(base_path), Some(query_path)) = (&args.base, &args.query) else {
        return Err("give --base and --query (or the --*-sets options)".into());
    };
    let base = VectorFile::open(base_path).map_err(err)?;
    let query = VectorFile::open(query_path).map_err(err)?;
    if base.dim() != query.dim() {
        return Err(format!(
            "{} has dimension {} but {} has dimension {}",
            query_path.display(),
            query.dim(),
            base_path.display(),
            base.dim()
        ));
    }
    let learn = match &args.learn {
        Some(path) => Some(VectorFile::open(path).map_err(err)?),
        None => None,
    };
    if let Some(learn) = &learn
        && learn.dim() != base.dim()
    {
        return Err(format!(
            "{} has dimension {} but {} has dimension {}",
            learn.path().display(),
            learn.dim(),
            base_path.display(),
            base.dim()
        ));
    }
    let nq = args.queries.unwrap_or(query.rows()).min(query.rows());
    if nq == 0 {
        return Err(format!("{} holds no queries", query_path.display()));
    }
    let queries = query.vectors().to_f32_vec(0, nq);
    let threads = if args.threads == 0 {
        rayon::current_num_threads()
    } else {
        args.threads
    };

    let truth = match &args.gt {
        Some(path) => load_truth(path, nq, base.rows())?,
        None => {
            let start = Instant::now();
            let exact = with_threads(threads, || exact::knn_l2(&queries, &base.vectors(), 100))?
                .map_err(err)?;
            eprintln!(
                "vladdb: no --gt given: computed the exact top-100 of {nq} queries in {:.2} s",
                start.elapsed().as_secs_f64()
            );
            exact
                .into_iter()
                .map(|list| list.into_iter().map(|n| n.id).collect())
                .collect()
        }
    };

    let specs = spec_list(args)?;
    let mut rows = Vec::new();
    for spec in &specs {
        let spec_rows = if spec.eq_ignore_ascii_case("flat") {
            bench_flat(args, &base, &queries, &truth, threads)?
        } else {
            let train = learn.as_ref().unwrap_or(&base);
            bench_index(args, spec, &base, train, &queries, &truth, threads)?
        };
        if args.json {
            print_rows(&spec_rows, true);
        }
        rows.extend(spec_rows);
    }
    if !args.json {
        print_rows(&rows, false);
    }
    if let Some(path) = &plotting.plot {
        let dataset = plot::data::dataset_name(&base_path.display().to_string());
        plot::write_bench_plot(path, &rows, compare, &dataset, plotting.plot_metric)?;
    }
    Ok(())
}

/// The specs of `--spec` (repeated and/or separated by `;`); at least one.
pub fn spec_list(args: &BenchArgs) -> CliResult<Vec<String>> {
    let specs: Vec<String> = args
        .spec
        .iter()
        .flat_map(|s| s.split(';'))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if specs.is_empty() {
        return Err("--spec names no index spec".into());
    }
    Ok(specs)
}

/// Exact search straight over the (memory-mapped) base file.
fn bench_flat(
    args: &BenchArgs,
    base: &VectorFile,
    queries: &[f32],
    truth: &Truth,
    threads: usize,
) -> CliResult<Vec<BenchRow>> {
    let runs = args.runs.unwrap_or(1).max(1);
    let vectors = base.vectors();
    let mut best = f64::INFINITY;
    let mut results = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        results =
            with_threads(threads, || exact::knn_l2(queries, &vectors, args.k))?.map_err(err)?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    let ids: Vec<Vec<u64>> = results
        .into_iter()
        .map(|list| list.into_iter().map(|n| n.id).collect())
        .collect();
    let nq = ids.len();
    let r = recalls(&ids, truth, args.k);
    Ok(vec![BenchRow {
        spec: "Flat".into(),
        nprobe: None,
        k: args.k,
        queries: nq,
        threads,
        recall_1_at_1: r.r1_at_1,
        recall_1_at_10: r.r1_at_10,
        recall_1_at_100: r.r1_at_100,
        recall_10_at_10: r.r10_at_10,
        qps: nq as f64 / best,
        train_s: 0.0,
        add_s: 0.0,
        bytes: (base.rows() * base.dim() * base.elem().size()) as u64,
        rerank: 0,
        vectors: base.rows(),
        open_ms: None,
        storage: "file".into(),
    }])
}

/// Reads the first `nq` rows of an `.ivecs` ground-truth file (negative entries are
/// padding and skipped; an id that is not a row of the base, `base_rows`, is an error).
fn load_truth(path: &PathBuf, nq: usize, base_rows: usize) -> CliResult<Truth> {
    let gt = read_ivecs(path).map_err(err)?;
    if gt.rows < nq {
        return Err(format!(
            "{} has {} rows of ground truth, fewer than the {nq} queries",
            path.display(),
            gt.rows
        ));
    }
    let width = gt.dim.max(1);
    if let Some(at) = gt.data[..nq * width]
        .iter()
        .position(|&id| usize::try_from(id).is_ok_and(|id| id >= base_rows))
    {
        return Err(format!(
            "{}: query {} lists id {}, but the base has {base_rows} rows",
            path.display(),
            at / width,
            gt.data[at]
        ));
    }
    Ok(gt
        .data
        .chunks_exact(width)
        .take(nq)
        .map(|row| {
            row.iter()
                .filter(|&&id| id >= 0)
                .map(|&id| id as u64)
                .collect()
        })
        .collect())
}
