//! The database subcommands: create, train, add, delete, search, stats, compact, verify.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use vladdb::codecs::index::SearchParams;
use vladdb::db::Database;
use vladdb::vecfile::VectorFile;

use crate::report::human_bytes;
use crate::{CliResult, err, progress};

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Database directory (created; must not exist or be empty).
    pub db: PathBuf,
    /// Index spec, e.g. `IVF4096,PQ16` (see docs/specs.md).
    #[arg(long)]
    pub spec: String,
    /// Vector dimension.
    #[arg(long)]
    pub dim: usize,
}

#[derive(Args, Debug)]
pub struct InputArgs {
    /// Vector file (.fvecs, .bvecs or .npy).
    #[arg(long)]
    pub input: PathBuf,
    /// Skip the first N rows.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Use at most N rows.
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Database directory.
    pub db: PathBuf,
    /// Training vectors.
    #[arg(long)]
    pub input: PathBuf,
    /// Train on at most the first N rows.
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// Database directory.
    pub db: PathBuf,
    #[command(flatten)]
    pub input: InputArgs,
    /// Id of the first added row (ids are the row number in the file plus this).
    #[arg(long, default_value_t = 0)]
    pub start_id: u64,
    /// A text file with one name per row of --input (e.g. image file names).
    #[arg(long)]
    pub names: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Database directory.
    pub db: PathBuf,
    /// Ids to delete: a comma-separated list of ids and inclusive ranges, e.g. `1,5,10..20`.
    #[arg(long)]
    pub ids: String,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Database directory.
    pub db: PathBuf,
    #[command(flatten)]
    pub input: InputArgs,
    /// Neighbours per query.
    #[arg(short = 'k', long = "k", default_value_t = 10)]
    pub k: usize,
    /// Inverted lists probed per query (IVF specs).
    #[arg(long, default_value_t = 16)]
    pub nprobe: usize,
    /// Re-rank factor (specs ending in ,RFlat): re-score k × F candidates exactly.
    #[arg(long, default_value_t = 0)]
    pub rerank: usize,
    /// One JSON object per query.
    #[arg(long)]
    pub json: bool,
    /// Print the time to open the database and to search on stderr.
    #[arg(long)]
    pub timing: bool,
}

#[derive(Args, Debug)]
pub struct DbArgs {
    /// Database directory.
    pub db: PathBuf,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

pub fn create(a: &CreateArgs) -> CliResult<()> {
    Database::create(&a.db, &a.spec, a.dim).map_err(err)?;
    println!(
        "created {} (spec {}, dimension {})",
        a.db.display(),
        a.spec,
        a.dim
    );
    Ok(())
}

pub fn train(a: &TrainArgs) -> CliResult<()> {
    let db = Database::open(&a.db).map_err(err)?;
    let file = VectorFile::open(&a.input).map_err(err)?;
    let rows = a.limit.unwrap_or(file.rows()).min(file.rows());
    let data = file.vectors().slice(0, rows).map_err(err)?;
    let spinner = progress::spinner("train");
    let start = Instant::now();
    db.train(&data).map_err(err)?;
    spinner.finish_and_clear();
    println!(
        "trained on {rows} vectors in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The rows `offset..offset + limit` of a vector file, checked.
fn input_rows(input: &InputArgs, file: &VectorFile) -> CliResult<(usize, usize)> {
    if input.offset > file.rows() {
        return Err(format!(
            "--offset {} is past the end of {} ({} rows)",
            input.offset,
            input.input.display(),
            file.rows()
        ));
    }
    let count = input
        .limit
        .unwrap_or(usize::MAX)
        .min(file.rows() - input.offset);
    Ok((input.offset, count))
}

pub fn add(a: &AddArgs) -> CliResult<()> {
    let db = Database::open(&a.db).map_err(err)?;
    let file = VectorFile::open(&a.input.input).map_err(err)?;
    let (offset, count) = input_rows(&a.input, &file)?;
    let names = match &a.names {
        Some(path) => Some(read_names(path, offset, count)?),
        None => None,
    };
    let start = Instant::now();
    // One add call: the whole file range is one logged batch, so a crash never leaves
    // part of it visible; the commit then writes it as one segment.
    let spinner = progress::spinner(&format!("add {count}"));
    let data = file.vectors().slice(offset, count).map_err(err)?;
    let first = a.start_id + offset as u64;
    let ids: Vec<u64> = (first..first + count as u64).collect();
    db.add(&data, &ids, names.as_deref()).map_err(err)?;
    db.commit().map_err(err)?;
    spinner.finish_and_clear();
    println!(
        "added {count} vectors in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn read_names(path: &Path, offset: usize, count: usize) -> CliResult<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let names: Vec<String> = text
        .lines()
        .skip(offset)
        .take(count)
        .map(str::to_string)
        .collect();
    if names.len() != count {
        return Err(format!(
            "{}: {} names for {count} vectors (from row {offset})",
            path.display(),
            names.len()
        ));
    }
    Ok(names)
}

/// Parses `1,5,10..20` (ranges inclusive).
pub fn parse_ids(text: &str) -> CliResult<Vec<u64>> {
    let mut ids = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |s: &str| -> CliResult<u64> {
            s.trim()
                .parse::<u64>()
                .map_err(|_| format!("--ids: {s:?} is not an id"))
        };
        match part.split_once("..") {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("--ids: range {part} is empty (start after end)"));
                }
                if b - a >= 100_000_000 {
                    return Err(format!("--ids: range {part} is too large"));
                }
                ids.extend(a..=b);
            }
            None => ids.push(num(part)?),
        }
    }
    if ids.is_empty() {
        return Err("--ids: no ids given".into());
    }
    Ok(ids)
}

pub fn delete(a: &DeleteArgs) -> CliResult<()> {
    let ids = parse_ids(&a.ids)?;
    let db = Database::open(&a.db).map_err(err)?;
    let n = db.delete(&ids).map_err(err)?;
    db.commit().map_err(err)?;
    println!("deleted {n} of {} ids", ids.len());
    Ok(())
}

pub fn search(a: &SearchArgs) -> CliResult<()> {
    let start = Instant::now();
    let db = Database::open_read_only(&a.db).map_err(err)?;
    let open_ms = start.elapsed().as_secs_f64() * 1e3;
    let file = VectorFile::open(&a.input.input).map_err(err)?;
    let (offset, count) = input_rows(&a.input, &file)?;
    let queries = file.vectors().to_f32_vec(offset, count);
    let params = SearchParams {
        k: a.k,
        nprobe: a.nprobe,
        rerank: a.rerank,
    };
    let start = Instant::now();
    let results = db.search_batch(&queries, &params).map_err(err)?;
    if a.timing {
        eprintln!(
            "open {open_ms:.2} ms, search of {count} queries {:.2} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    let mut out = String::new();
    for (i, hits) in results.iter().enumerate() {
        if a.json {
            let ids: Vec<String> = hits.iter().map(|h| h.id.to_string()).collect();
            let dists: Vec<String> = hits.iter().map(|h| json_f32(h.distance)).collect();
            let mut line = format!(
                "{{\"query\":{},\"ids\":[{}],\"distances\":[{}]",
                offset + i,
                ids.join(","),
                dists.join(",")
            );
            if hits.iter().any(|h| h.name.is_some()) {
                let names: Vec<String> = hits
                    .iter()
                    .map(|h| {
                        serde_json::to_string(h.name.as_deref().unwrap_or("")).unwrap_or_default()
                    })
                    .collect();
                line.push_str(&format!(",\"names\":[{}]", names.join(",")));
            }
            line.push('}');
            out.push_str(&line);
        } else {
            let items: Vec<String> = hits
                .iter()
                .map(|h| match &h.name {
                    Some(n) => format!("{} {n} ({:.1})", h.id, h.distance),
                    None => format!("{} ({:.1})", h.id, h.distance),
                })
                .collect();
            out.push_str(&format!("query {}: {}", offset + i, items.join(", ")));
        }
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

fn json_f32(v: f32) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

pub fn stats(a: &DbArgs) -> CliResult<()> {
    let db = Database::open_read_only(&a.db).map_err(err)?;
    let s = db.stats().map_err(err)?;
    if a.json {
        println!("{}", s.to_json());
        return Ok(());
    }
    println!("spec      {}", s.spec);
    println!("dim       {}", s.dim);
    println!("trained   {}", if s.trained { "yes" } else { "no" });
    println!(
        "vectors   {} live ({} in the write buffer)",
        s.vectors, s.buffered
    );
    println!("deleted   {} (not yet compacted away)", s.deleted);
    println!("segments  {}", s.segments);
    println!("on disk   {}", human_bytes(s.bytes));
    if let Some(b) = &s.balance {
        println!(
            "lists     {} ({} empty), sizes {}..{}, mean {:.1}, imbalance {:.3}",
            b.lists, b.empty, b.min, b.max, b.mean, b.imbalance
        );
    }
    Ok(())
}

pub fn compact(a: &DbArgs) -> CliResult<()> {
    let db = Database::open(&a.db).map_err(err)?;
    let start = Instant::now();
    let r = db.compact().map_err(err)?;
    println!(
        "compacted {} segments into {}, dropped {} deleted rows, in {:.2} s",
        r.segments_before,
        r.segments_after,
        r.rows_dropped,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn verify(a: &DbArgs) -> CliResult<()> {
    let r = Database::verify(&a.db).map_err(err)?;
    println!(
        "ok: {} files, {} segments, {} rows, {} log records checked",
        r.files, r.segments, r.rows, r.log_records
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_ids;

    #[test]
    fn id_lists_and_inclusive_ranges() {
        assert_eq!(parse_ids("1,5,10..20").map(|v| v.len()), Ok(13));
        assert_eq!(parse_ids("3..3"), Ok(vec![3]));
        assert!(parse_ids("5..2").is_err());
        assert!(parse_ids("x").is_err());
        assert!(parse_ids("").is_err());
    }
}
