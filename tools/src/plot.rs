//! Recall–QPS plots, as ann-benchmarks draws them: `vladdb bench --plot` after a run, and
//! `vladdb plot` to re-draw saved JSON-lines results. Both read rows the same way
//! ([`data`]), group them into series and write a hand-written SVG ([`svg`]).

mod axis;
pub mod data;
mod svg;

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use crate::CliResult;
use crate::report::BenchRow;
use data::{Line, Source, build_series, parse_line};

/// The recall on the x axis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Metric {
    /// Fraction of queries whose true nearest neighbour is in the first 10 results.
    #[default]
    #[value(name = "recall_1_at_10")]
    Recall1At10,
    /// Mean overlap of the first 10 results with the true top 10.
    #[value(name = "recall_10_at_10")]
    Recall10At10,
    /// Fraction of queries whose first result is the true nearest neighbour.
    #[value(name = "recall_1_at_1")]
    Recall1At1,
    /// Fraction of queries whose true nearest neighbour is in the first 100 results.
    #[value(name = "recall_1_at_100")]
    Recall1At100,
}

impl Metric {
    /// The key in `vladdb bench --json` lines.
    pub fn key(self) -> &'static str {
        match self {
            Metric::Recall1At10 => "recall_1_at_10",
            Metric::Recall10At10 => "recall_10_at_10",
            Metric::Recall1At1 => "recall_1_at_1",
            Metric::Recall1At100 => "recall_1_at_100",
        }
    }

    /// The key in `faiss_ann.py` lines.
    pub fn faiss_key(self) -> &'static str {
        match self {
            Metric::Recall1At10 => "1@10",
            Metric::Recall10At10 => "10@10",
            Metric::Recall1At1 => "1@1",
            Metric::Recall1At100 => "1@100",
        }
    }

    /// The shortest result list (k) that measures this recall.
    pub fn min_k(self) -> usize {
        match self {
            Metric::Recall1At1 => 1,
            Metric::Recall1At10 | Metric::Recall10At10 => 10,
            Metric::Recall1At100 => 100,
        }
    }

    /// The axis label.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Recall1At10 => "1-recall@10",
            Metric::Recall10At10 => "10-recall@10",
            Metric::Recall1At1 => "1-recall@1",
            Metric::Recall1At100 => "1-recall@100",
        }
    }
}

/// The plot options of `vladdb bench`.
#[derive(Args, Debug, Clone, Default)]
pub struct BenchPlotArgs {
    /// Write a recall–QPS plot (SVG) of every spec and nprobe measured.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Recall on the plot's x axis.
    #[arg(long, value_enum, default_value = "recall_1_at_10")]
    pub plot_metric: Metric,
    /// Results to overlay on the plot, dashed and prefixed (file stem or --compare-label):
    /// JSON lines from `bench --json` or FAISS's `faiss_ann.py` / `faiss_point.py`;
    /// repeatable.
    #[arg(long, requires = "plot")]
    pub compare: Vec<PathBuf>,
    /// Legend prefix of each --compare file in order (default: the file stem).
    #[arg(long, requires = "compare")]
    pub compare_label: Vec<String>,
}

/// `vladdb plot`: draw saved results.
#[derive(Args, Debug, Clone)]
pub struct PlotArgs {
    /// Results in JSON lines (`vladdb bench --json`, or FAISS's `faiss_ann.py` /
    /// `faiss_point.py`); repeatable, drawn solid. `-` reads standard input.
    #[arg(long, required = true)]
    pub input: Vec<PathBuf>,
    /// Legend prefix of each --input in order (default: the file stem when there are
    /// several sources, none for a single input).
    #[arg(long)]
    pub label: Vec<String>,
    /// Results to overlay, drawn dashed and prefixed (file stem or --compare-label);
    /// repeatable.
    #[arg(long)]
    pub compare: Vec<PathBuf>,
    /// Legend prefix of each --compare file in order (default: the file stem).
    #[arg(long)]
    pub compare_label: Vec<String>,
    /// The SVG file to write.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Recall on the x axis.
    #[arg(
        long,
        alias = "plot-metric",
        value_enum,
        default_value = "recall_1_at_10"
    )]
    pub metric: Metric,
    /// Data set named in the title (default: from a FAISS metadata line, else the first
    /// input's file stem).
    #[arg(long)]
    pub dataset: Option<String>,
    /// The whole title, replacing the default.
    #[arg(long)]
    pub title: Option<String>,
}

/// `vladdb plot`.
pub fn run(args: &PlotArgs) -> CliResult<()> {
    check_output(&args.output)?;
    if args.label.len() > args.input.len() {
        return Err(format!(
            "{} --label values for {} --input files",
            args.label.len(),
            args.input.len()
        ));
    }
    let several = args.input.len() + args.compare.len() > 1;
    let mut sources = Vec::new();
    for (i, path) in args.input.iter().enumerate() {
        let prefix = label_for(path, args.label.get(i), several, "--label")?;
        sources.push(Source::read(path, prefix, false, args.metric)?);
    }
    sources.extend(read_compare(
        &args.compare,
        &args.compare_label,
        args.metric,
    )?);
    let dataset = args
        .dataset
        .clone()
        .or_else(|| sources.iter().find_map(|s| s.dataset.clone()))
        .or_else(|| {
            let first = args.input.first()?;
            Some(data::dataset_name(&first.display().to_string()))
        })
        .unwrap_or_else(|| "results".to_string());
    write_plot(
        &args.output,
        &sources,
        &dataset,
        args.metric,
        args.title.as_deref(),
    )
}

/// Reads the `--compare` files (dashed, prefixed by label or file stem). Run before a
/// benchmark so bad files fail before the long part.
pub fn read_compare(
    paths: &[PathBuf],
    labels: &[String],
    metric: Metric,
) -> CliResult<Vec<Source>> {
    if labels.len() > paths.len() {
        return Err(format!(
            "{} --compare-label values for {} --compare files",
            labels.len(),
            paths.len()
        ));
    }
    paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let prefix = label_for(path, labels.get(i), true, "--compare-label")?;
            Source::read(path, prefix, true, metric)
        })
        .collect()
}

/// `vladdb bench --plot`: the run's rows (solid; prefixed `vladdb` when overlaid) and the
/// `--compare` sources, written to `output`.
pub fn write_bench_plot(
    output: &Path,
    rows: &[BenchRow],
    compare: Vec<Source>,
    dataset: &str,
    metric: Metric,
) -> CliResult<()> {
    let mut ours = Source {
        prefix: (!compare.is_empty()).then(|| "vladdb".to_string()),
        dashed: false,
        rows: Vec::new(),
        dataset: None,
    };
    for row in rows {
        let value = serde_json::to_value(row).map_err(|e| format!("cannot read a row: {e}"))?;
        if let Line::Row(row) = parse_line(&value, metric)? {
            ours.rows.push(row);
        }
    }
    let mut sources = vec![ours];
    sources.extend(compare);
    write_plot(output, &sources, dataset, metric, None)
}

/// Checks before any work that the plot can be written where asked.
pub fn check_output(output: &Path) -> CliResult<()> {
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if output.is_dir() {
        return Err(format!("{} is a directory", output.display()));
    }
    if !parent.is_dir() {
        return Err(format!(
            "cannot write {}: {} is not a directory",
            output.display(),
            parent.display()
        ));
    }
    Ok(())
}

/// The legend prefix of a file: the given label, else (when `prefixed`) the file stem.
fn label_for(
    path: &Path,
    label: Option<&String>,
    prefixed: bool,
    flag: &str,
) -> CliResult<Option<String>> {
    if let Some(label) = label {
        if label.trim().is_empty() {
            return Err(format!("{flag} values must not be empty"));
        }
        return Ok(Some(label.trim().to_string()));
    }
    if !prefixed {
        return Ok(None);
    }
    Ok(Some(match path.file_stem() {
        Some(stem) if path.as_os_str() != "-" => stem.to_string_lossy().into_owned(),
        _ => "stdin".to_string(),
    }))
}

/// Groups the sources into series, draws them and writes the SVG.
fn write_plot(
    output: &Path,
    sources: &[Source],
    dataset: &str,
    metric: Metric,
    title: Option<&str>,
) -> CliResult<()> {
    let series = build_series(sources)?;
    let all_rows = || sources.iter().flat_map(|s| s.rows.iter());
    let mut ks: Vec<u64> = all_rows().filter_map(|r| r.k).collect();
    ks.sort_unstable();
    ks.dedup();
    let k_text = match ks.as_slice() {
        [] => String::new(),
        ks => format!(
            ", k = {}",
            ks.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        ),
    };
    let default_title = format!("{dataset}: {} vs. QPS{k_text}", metric.label());
    let subtitle = subtitle(sources);
    let labels = svg::Labels {
        title: title.unwrap_or(&default_title),
        subtitle: subtitle.as_deref(),
        x_axis: metric.label(),
        y_axis: "queries per second (log scale)",
    };
    let document = svg::render(&series, &labels);
    std::fs::write(output, document)
        .map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    eprintln!(
        "vladdb: wrote {} ({} series, {} points)",
        output.display(),
        series.len(),
        series.iter().map(|s| s.points.len()).sum::<usize>()
    );
    Ok(())
}

/// Queries and threads of each source where its rows agree (`1,000 queries, 1 thread`),
/// said once when every source agrees.
fn subtitle(sources: &[Source]) -> Option<String> {
    let mut parts: Vec<(Option<&str>, String)> = Vec::new();
    for source in sources {
        let same = |field: fn(&data::Row) -> Option<u64>| {
            let mut values = source.rows.iter().map(field);
            let first = values.next().flatten()?;
            values.all(|v| v == Some(first)).then_some(first)
        };
        let mut words = Vec::new();
        if let Some(q) = same(|r| r.queries) {
            words.push(format!("{} queries", thousands(q)));
        }
        if let Some(t) = same(|r| r.threads) {
            words.push(format!("{t} thread{}", if t == 1 { "" } else { "s" }));
        }
        if !words.is_empty() {
            parts.push((source.prefix.as_deref(), words.join(", ")));
        }
    }
    let first = parts.first()?;
    if parts.len() == sources.len() && parts.iter().all(|p| p.1 == first.1) {
        return Some(first.1.clone());
    }
    let parts: Vec<String> = parts
        .iter()
        .map(|(prefix, words)| match prefix {
            Some(prefix) => format!("{prefix}: {words}"),
            None => words.clone(),
        })
        .collect();
    Some(parts.join("; "))
}

/// `12345` as `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
