//! The database subcommands: create, train, add, delete, search, stats, compact, verify.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use vladdb::codecs::encode::DescriptorSets;
use vladdb::codecs::index::SearchParams;
use vladdb::db::Database;
use vladdb::sets::SetFiles;
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
    #[arg(long, required_unless_present = "sets", conflicts_with = "sets")]
    pub input: Option<PathBuf>,
    /// Descriptor sets instead of vectors: PREFIX_descriptors.npy, PREFIX_offsets.npy and
    /// optionally PREFIX_names.txt (one image per set; specs starting with VLAD/FV/BOF).
    #[arg(long)]
    pub sets: Option<PathBuf>,
    /// Skip the first N rows (images with --sets).
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Use at most N rows (images with --sets).
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Database directory.
    pub db: PathBuf,
    /// Training vectors (or --sets PREFIX), --offset, --limit.
    #[command(flatten)]
    pub input: InputArgs,
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
    /// Inverted lists probed per query (IVF specs; default 16, or all lists when fewer).
    #[arg(long)]
    pub nprobe: Option<usize>,
    /// Re-rank factor (specs ending in ,RFlat or ,RF16): re-score k × F candidates with the stored vectors.
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
    let spinner = progress::spinner("train");
    let start = Instant::now();
    let what = match Source::open(&a.input)? {
        Source::Vectors(file) => {
            let (offset, count) = input_rows(&a.input, file.rows())?;
            db.train(&file.vectors().slice(offset, count).map_err(err)?)
                .map_err(err)?;
            format!("{count} vectors")
        }
        Source::Sets(files) => {
            let (offset, count) = input_rows(&a.input, files.images())?;
            let sets = sub_sets(&files, offset, count)?;
            let sets = sets.as_sets()?;
            db.train_sets(&sets).map_err(err)?;
            let empty = (0..sets.len()).filter(|&i| sets.count(i) == 0).count();
            if empty > 0 {
                format!(
                    "{count} descriptor sets ({empty} without descriptors left out of the index \
                     training)"
                )
            } else {
                format!("{count} descriptor sets")
            }
        }
    };
    spinner.finish_and_clear();
    println!(
        "trained on {what} in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What a command reads: vectors or descriptor sets.
enum Source {
    Vectors(VectorFile),
    Sets(SetFiles),
}

impl Source {
    fn open(input: &InputArgs) -> CliResult<Source> {
        match (&input.input, &input.sets) {
            (Some(path), None) => Ok(Source::Vectors(VectorFile::open(path).map_err(err)?)),
            (None, Some(prefix)) => Ok(Source::Sets(SetFiles::open(prefix).map_err(err)?)),
            _ => Err("give exactly one of --input FILE and --sets PREFIX".into()),
        }
    }
}

/// Images `offset..offset + count` of `files`: rebased offsets over the same mapping.
struct SubSets<'a> {
    files: &'a SetFiles,
    offsets: Vec<u64>,
    first_row: usize,
}

impl SubSets<'_> {
    fn as_sets(&self) -> CliResult<DescriptorSets<'_>> {
        let all = self.files.descriptor_file().vectors();
        let rows = self.offsets.last().copied().unwrap_or(0) as usize;
        let view = all.slice(self.first_row, rows).map_err(err)?;
        DescriptorSets::new(view, &self.offsets).map_err(err)
    }
}

fn sub_sets(files: &SetFiles, offset: usize, count: usize) -> CliResult<SubSets<'_>> {
    let all = files.sets().map_err(err)?;
    let offsets = all.offsets();
    let first_row = offsets[offset] as usize;
    let rebased: Vec<u64> = offsets[offset..=offset + count]
        .iter()
        .map(|&o| o - first_row as u64)
        .collect();
    Ok(SubSets {
        files,
        offsets: rebased,
        first_row,
    })
}

/// The rows `offset..offset + limit` of a vector file, checked.
fn input_rows(input: &InputArgs, rows: usize) -> CliResult<(usize, usize)> {
    if input.offset > rows {
        let name = input.input.as_ref().or(input.sets.as_ref());
        return Err(format!(
            "--offset {} is past the end of {} ({rows} rows)",
            input.offset,
            name.map_or(String::new(), |p| p.display().to_string()),
        ));
    }
    let count = input.limit.unwrap_or(usize::MAX).min(rows - input.offset);
    Ok((input.offset, count))
}

pub fn add(a: &AddArgs) -> CliResult<()> {
    let db = Database::open(&a.db).map_err(err)?;
    let start = Instant::now();
    // One add call: the whole range is one logged batch, so a crash never leaves part of
    // it visible; the commit then writes it as one segment.
    let spinner = progress::spinner("add");
    let count = match Source::open(&a.input)? {
        Source::Vectors(file) => {
            let (offset, count) = input_rows(&a.input, file.rows())?;
            let names = match &a.names {
                Some(path) => Some(read_names(path, file.rows(), offset, count)?),
                None => None,
            };
            let data = file.vectors().slice(offset, count).map_err(err)?;
            db.add(
                &data,
                &ids_from(a.start_id, offset, count)?,
                names.as_deref(),
            )
            .map_err(err)?;
            count
        }
        Source::Sets(files) => {
            let (offset, count) = input_rows(&a.input, files.images())?;
            let names = match (&a.names, files.names()) {
                (Some(path), _) => Some(read_names(path, files.images(), offset, count)?),
                (None, Some(all)) => Some(all[offset..offset + count].to_vec()),
                (None, None) => None,
            };
            let sub = sub_sets(&files, offset, count)?;
            let empty = db
                .add_sets(
                    &sub.as_sets()?,
                    &ids_from(a.start_id, offset, count)?,
                    names.as_deref(),
                )
                .map_err(err)?;
            if !empty.is_empty() {
                eprintln!(
                    "vladdb: {} images have no descriptors and were not indexed (first: image {})",
                    empty.len(),
                    offset + empty[0]
                );
            }
            count - empty.len()
        }
    };
    db.commit().map_err(err)?;
    spinner.finish_and_clear();
    println!("added {count} in {:.2} s", start.elapsed().as_secs_f64());
    Ok(())
}

/// Ids `start_id + offset .. + count`, refusing overflow.
fn ids_from(start_id: u64, offset: usize, count: usize) -> CliResult<Vec<u64>> {
    let first = start_id
        .checked_add(offset as u64)
        .filter(|f| f.checked_add((count as u64).saturating_sub(1)).is_some())
        .ok_or("--start-id plus the row numbers overflows 64-bit ids")?;
    Ok((0..count as u64).map(|i| first + i).collect())
}

fn read_names(path: &Path, rows: usize, offset: usize, count: usize) -> CliResult<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let lines = text.lines().count();
    if lines != rows {
        return Err(format!(
            "{}: {lines} names for {rows} rows of input (one name per line, one line per row)",
            path.display()
        ));
    }
    Ok(text
        .lines()
        .skip(offset)
        .take(count)
        .map(str::to_string)
        .collect())
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
    let params = SearchParams {
        k: a.k,
        nprobe: a
            .nprobe
            .unwrap_or_else(|| db.nlist().map_or(1, |n| n.min(16))),
        rerank: a.rerank,
    };
    let source = Source::open(&a.input)?;
    let start = Instant::now();
    let (offset, count, results) = match &source {
        Source::Vectors(file) => {
            if file.dim() != db.index_dim() {
                return Err(format!(
                    "queries of dimension {} given, the database holds dimension {}",
                    file.dim(),
                    db.index_dim()
                ));
            }
            let (offset, count) = input_rows(&a.input, file.rows())?;
            let queries = file.vectors().to_f32_vec(offset, count);
            let results = db.search_batch(&queries, &params).map_err(err)?;
            (offset, count, results)
        }
        Source::Sets(files) => {
            let (offset, count) = input_rows(&a.input, files.images())?;
            let sub = sub_sets(files, offset, count)?;
            let sets = sub.as_sets()?;
            let empty = (0..count).filter(|&i| sets.count(i) == 0).count();
            if empty > 0 {
                eprintln!("vladdb: {empty} query images have no descriptors and match nothing");
            }
            let results = db.search_sets(&sets, &params).map_err(err)?;
            (offset, count, results)
        }
    };
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
    let seconds = start.elapsed().as_secs_f64();
    if a.json {
        let out = serde_json::json!({
            "segments_before": r.segments_before,
            "segments_after": r.segments_after,
            "rows_dropped": r.rows_dropped,
            "seconds": seconds,
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "compacted {} segments into {}, dropped {} deleted rows, in {seconds:.2} s",
        r.segments_before, r.segments_after, r.rows_dropped,
    );
    Ok(())
}

pub fn verify(a: &DbArgs) -> CliResult<()> {
    let r = Database::verify(&a.db).map_err(err)?;
    if a.json {
        let out = serde_json::json!({
            "ok": true,
            "files": r.files,
            "segments": r.segments,
            "rows": r.rows,
            "log_records": r.log_records,
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "ok: {} files, {} segments, {} rows, {} log records checked",
        r.files, r.segments, r.rows, r.log_records
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{ids_from, parse_ids};

    #[test]
    fn ids_reach_the_largest_id_and_no_further() {
        assert_eq!(
            ids_from(u64::MAX - 2, 0, 3),
            Ok(vec![u64::MAX - 2, u64::MAX - 1, u64::MAX])
        );
        assert_eq!(
            ids_from(u64::MAX - 3, 1, 3),
            Ok(vec![u64::MAX - 2, u64::MAX - 1, u64::MAX])
        );
        assert!(ids_from(u64::MAX - 2, 0, 4).is_err());
        assert!(ids_from(u64::MAX, 1, 0).is_err());
        assert_eq!(ids_from(u64::MAX, 0, 0), Ok(vec![]));
        assert_eq!(ids_from(7, 2, 2), Ok(vec![9, 10]));
    }

    #[test]
    fn id_lists_and_inclusive_ranges() {
        assert_eq!(parse_ids("1,5,10..20").map(|v| v.len()), Ok(13));
        assert_eq!(parse_ids("3..3"), Ok(vec![3]));
        assert!(parse_ids("5..2").is_err());
        assert!(parse_ids("x").is_err());
        assert!(parse_ids("").is_err());
    }
}
