//! Results to plot: reading JSON lines (`vladdb bench --json`, FAISS's `faiss_point.py`, which
//! uses the same keys, and `faiss_ann.py`, which names the spec `index` and the recalls `1@10`,
//! `10@10`, after a metadata line), and grouping the rows into the plotted series.

use std::io::Read;
use std::path::Path;

use serde_json::{Map, Value};

use super::Metric;
use crate::CliResult;

/// One measured operating point, as read from a result line.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub spec: String,
    pub nprobe: Option<u64>,
    pub qps: f64,
    /// The plotted recall; `None` when the run did not measure it (k smaller than R).
    pub recall: Option<f64>,
    pub k: Option<u64>,
    pub rerank: Option<u64>,
    pub storage: Option<String>,
    pub queries: Option<u64>,
    pub threads: Option<u64>,
}

/// What one line of a result file holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Row(Row),
    /// A header line (`faiss_ann.py` prints the data set, query count, threads and library
    /// version first); it fills in what the following rows leave out.
    Meta {
        dataset: Option<String>,
        queries: Option<u64>,
        threads: Option<u64>,
    },
}

/// The rows of one origin: this bench run, or one result file.
#[derive(Debug, Clone)]
pub struct Source {
    /// Legend prefix (`faiss: IVF1024,PQ16`); `None` draws the bare spec.
    pub prefix: Option<String>,
    /// Overlaid results are drawn dashed.
    pub dashed: bool,
    pub rows: Vec<Row>,
    /// The data set named by a metadata line, if any.
    pub dataset: Option<String>,
}

impl Source {
    /// Reads a JSON-lines file (`-` for standard input). Errors name the file and line.
    pub fn read(
        path: &Path,
        prefix: Option<String>,
        dashed: bool,
        metric: Metric,
    ) -> CliResult<Source> {
        let name = path.display().to_string();
        let text = if name == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            text
        } else {
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {name}: {e}"))?
        };
        let mut source = Source {
            prefix,
            dashed,
            rows: Vec::new(),
            dataset: None,
        };
        let (mut queries, mut threads) = (None, None);
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line)
                .map_err(|e| format!("{name}:{}: not a JSON line ({e})", number + 1))?;
            match parse_line(&value, metric).map_err(|e| format!("{name}:{}: {e}", number + 1))? {
                Line::Row(mut row) => {
                    row.threads = row.threads.or(threads);
                    // faiss_ann.py searches Flat with its first 1,000 queries only.
                    if !row.spec.eq_ignore_ascii_case("flat") {
                        row.queries = row.queries.or(queries);
                    }
                    source.rows.push(row);
                }
                Line::Meta {
                    dataset,
                    queries: nq,
                    threads: t,
                } => {
                    source.dataset = source.dataset.or(dataset);
                    (queries, threads) = (nq, t);
                }
            }
        }
        if source.rows.is_empty() {
            return Err(format!("{name} holds no result lines"));
        }
        Ok(source)
    }
}

/// Interprets one JSON value as a result row or a metadata line.
pub fn parse_line(value: &Value, metric: Metric) -> Result<Line, String> {
    let Value::Object(object) = value else {
        return Err("not a JSON object".into());
    };
    let spec_key = ["spec", "index"]
        .into_iter()
        .find(|k| object.contains_key(*k));
    if spec_key.is_none()
        && !object.contains_key("qps")
        && (object.contains_key("set") || object.contains_key("faiss"))
    {
        let dataset = object.get("set").and_then(Value::as_str).map(dataset_name);
        return Ok(Line::Meta {
            dataset,
            queries: whole(object, "nq")?,
            threads: whole(object, "threads")?,
        });
    }
    let Some(spec_key) = spec_key else {
        return Err("missing key \"spec\"".into());
    };
    let spec = match &object[spec_key] {
        Value::String(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => return Err(format!("\"{spec_key}\" is not a non-empty string")),
    };
    let qps = match object.get("qps") {
        None => return Err("missing key \"qps\"".into()),
        Some(v) => match v.as_f64() {
            Some(q) if q.is_finite() && q > 0.0 => q,
            _ => return Err(format!("\"qps\" must be a positive number, not {v}")),
        },
    };
    let recall_key = [metric.key(), metric.faiss_key()]
        .into_iter()
        .find(|k| object.contains_key(*k))
        .ok_or_else(|| format!("missing key \"{}\"", metric.key()))?;
    let recall = match &object[recall_key] {
        Value::Null => None,
        v => match v.as_f64() {
            Some(r) if (0.0..=1.0).contains(&r) => Some(r),
            _ => {
                return Err(format!(
                    "\"{recall_key}\" must be a recall in [0, 1], not {v}"
                ));
            }
        },
    };
    Ok(Line::Row(Row {
        spec,
        nprobe: whole(object, "nprobe")?,
        qps,
        recall,
        k: whole(object, "k")?,
        rerank: whole(object, "rerank")?,
        storage: object
            .get("storage")
            .and_then(Value::as_str)
            .map(str::to_string),
        queries: whole(object, "queries")?,
        threads: whole(object, "threads")?,
    }))
}

/// An optional whole-number field: absent or null is `None`, anything else must be a
/// non-negative integer.
fn whole(object: &Map<String, Value>, key: &str) -> Result<Option<u64>, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("\"{key}\" must be a whole number, not {v}")),
    }
}

/// The data set's name from a path: the directory for generic file names (`debian-sift`
/// for `.../debian-sift/base.bvecs`), else the file stem.
pub fn dataset_name(path: &str) -> String {
    let path = Path::new(path.trim_end_matches('/'));
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let generic = path.extension().is_some()
        && ["base", "query", "learn", "train"]
            .iter()
            .any(|g| stem.eq_ignore_ascii_case(g));
    if generic && let Some(dir) = path.parent().and_then(Path::file_name) {
        return dir.to_string_lossy().into_owned();
    }
    if stem.is_empty() {
        path.display().to_string()
    } else {
        stem
    }
}

/// The colour key of a series name: `PQ16x8` and `PQ16` are the same spec (8 bits per
/// code is the default), so vladdb's and FAISS's series of one spec share a colour.
fn colour_key(name: &str) -> String {
    name.split(',')
        .map(|part| {
            match part
                .strip_prefix("PQ")
                .and_then(|rest| rest.strip_suffix("x8"))
            {
                Some(m) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) => {
                    format!("PQ{m}")
                }
                _ => part.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// One plotted point.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub recall: f64,
    pub qps: f64,
    pub nprobe: Option<u64>,
}

/// One polyline: the points of one spec from one source, ordered by recall.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text, with the source's prefix.
    pub label: String,
    /// Series of the same spec (from different sources) share a colour.
    pub color_key: String,
    /// Index of the source, which picks the marker shape.
    pub source: usize,
    pub dashed: bool,
    pub points: Vec<Point>,
}

/// What separates rows of one spec within a source; named in the legend only where the
/// plot holds more than one value of it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupKey {
    spec: String,
    rerank: Option<u64>,
    storage: Option<String>,
    k: Option<u64>,
}

/// Groups rows into series (one per source and spec, in order of first appearance), skipping
/// rows without the plotted recall. Errors when nothing is left to plot.
pub fn build_series(sources: &[Source]) -> CliResult<Vec<Series>> {
    // A field is named in a label only when rows of that series' spec disagree on it
    // (unknown values, as in FAISS's lines, do not count).
    let varies = |spec: &str, field: fn(&Row) -> Option<String>| {
        let mut values: Vec<String> = sources
            .iter()
            .flat_map(|s| s.rows.iter())
            .filter(|r| r.recall.is_some() && colour_key(&r.spec) == colour_key(spec))
            .filter_map(field)
            .collect();
        values.sort();
        values.dedup();
        values.len() > 1
    };

    let mut series: Vec<(usize, GroupKey, Series)> = Vec::new();
    for (index, source) in sources.iter().enumerate() {
        for row in &source.rows {
            let Some(recall) = row.recall else { continue };
            let key = GroupKey {
                spec: row.spec.clone(),
                rerank: row.rerank,
                storage: row.storage.clone(),
                k: row.k,
            };
            let point = Point {
                recall,
                qps: row.qps,
                nprobe: row.nprobe,
            };
            if let Some((_, _, s)) = series.iter_mut().find(|(i, k, _)| *i == index && *k == key) {
                s.points.push(point);
                continue;
            }
            let mut name = key.spec.clone();
            if varies(&key.spec, |r| r.rerank.map(|v| v.to_string()))
                && let Some(f) = key.rerank.filter(|&f| f > 0)
            {
                name.push_str(&format!(" rerank {f}"));
            }
            if varies(&key.spec, |r| r.storage.clone())
                && let Some(storage) = &key.storage
            {
                name.push_str(&format!(" [{storage}]"));
            }
            if varies(&key.spec, |r| r.k.map(|v| v.to_string()))
                && let Some(k) = key.k
            {
                name.push_str(&format!(" k={k}"));
            }
            let label = match &source.prefix {
                Some(prefix) => format!("{prefix}: {name}"),
                None => name.clone(),
            };
            let new = Series {
                label,
                color_key: colour_key(&name),
                source: index,
                dashed: source.dashed,
                points: vec![point],
            };
            series.push((index, key, new));
        }
    }
    if series.is_empty() {
        return Err("no points to plot: no result line has a value for the plotted recall".into());
    }
    Ok(series
        .into_iter()
        .map(|(_, _, mut s)| {
            s.points.sort_by(|a, b| {
                a.recall
                    .total_cmp(&b.recall)
                    .then(a.qps.total_cmp(&b.qps).reverse())
            });
            s
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(value: Value) -> Row {
        match parse_line(&value, Metric::Recall1At10) {
            Ok(Line::Row(row)) => row,
            other => panic!("not a row: {other:?}"),
        }
    }

    #[test]
    fn reads_vladdb_and_faiss_keys() {
        let ours = row(
            json!({"spec": "IVF1024,PQ16", "nprobe": 4, "k": 100, "qps": 5000.0,
            "recall_1_at_10": 0.5, "recall_10_at_10": 0.4, "rerank": 0, "storage": "disk"}),
        );
        assert_eq!(ours.spec, "IVF1024,PQ16");
        assert_eq!(
            (ours.nprobe, ours.recall, ours.qps),
            (Some(4), Some(0.5), 5000.0)
        );
        let ann = row(json!({"index": "IVF1024,PQ16", "nprobe": 8, "qps": 900.5, "1@10": 0.61}));
        assert_eq!(
            (ann.spec.as_str(), ann.recall, ann.k),
            ("IVF1024,PQ16", Some(0.61), None)
        );
        let meta = parse_line(
            &json!({"set": "/data/debian-sift", "nb": 10, "faiss": "1.9"}),
            Metric::Recall1At10,
        );
        assert_eq!(
            meta,
            Ok(Line::Meta {
                dataset: Some("debian-sift".into()),
                queries: None,
                threads: None,
            })
        );
        let ten = parse_line(
            &json!({"index": "PQ16", "nprobe": null, "qps": 1.0, "10@10": 0.25}),
            Metric::Recall10At10,
        );
        assert!(matches!(ten, Ok(Line::Row(Row { recall: Some(r), .. })) if r == 0.25));
    }

    #[test]
    fn bad_rows_are_errors() {
        let metric = Metric::Recall1At10;
        let cases = [
            (json!([1, 2]), "not a JSON object"),
            (
                json!({"qps": 1.0, "recall_1_at_10": 0.5}),
                "missing key \"spec\"",
            ),
            (
                json!({"spec": "PQ8", "recall_1_at_10": 0.5}),
                "missing key \"qps\"",
            ),
            (
                json!({"spec": "PQ8", "qps": 3.0}),
                "missing key \"recall_1_at_10\"",
            ),
            (
                json!({"spec": "PQ8", "qps": 0.0, "recall_1_at_10": 0.5}),
                "positive",
            ),
            (
                json!({"spec": "PQ8", "qps": 1.0, "recall_1_at_10": 1.5}),
                "[0, 1]",
            ),
            (
                json!({"spec": "PQ8", "qps": 1.0, "recall_1_at_10": 0.5, "nprobe": -1}),
                "whole",
            ),
            (
                json!({"spec": "", "qps": 1.0, "recall_1_at_10": 0.5}),
                "non-empty",
            ),
        ];
        for (value, needle) in cases {
            match parse_line(&value, metric) {
                Err(e) => assert!(e.contains(needle), "{value}: {e} lacks {needle}"),
                Ok(line) => panic!("{value} parsed as {line:?}"),
            }
        }
    }

    #[test]
    fn series_group_by_source_and_spec_and_sort_by_recall() {
        let mk = |spec: &str, nprobe: u64, recall: f64, qps: f64| Row {
            spec: spec.into(),
            nprobe: Some(nprobe),
            qps,
            recall: Some(recall),
            k: Some(100),
            rerank: Some(0),
            storage: Some("disk".into()),
            queries: None,
            threads: None,
        };
        let ours = Source {
            prefix: None,
            dashed: false,
            rows: vec![
                mk("A", 16, 0.9, 100.0),
                mk("A", 1, 0.3, 1000.0),
                mk("B", 1, 0.2, 50.0),
                Row {
                    recall: None,
                    ..mk("C", 1, 0.0, 1.0)
                },
            ],
            dataset: None,
        };
        let theirs = Source {
            prefix: Some("faiss".into()),
            dashed: true,
            rows: vec![Row {
                k: None,
                rerank: None,
                storage: None,
                ..mk("A", 4, 0.5, 400.0)
            }],
            dataset: None,
        };
        let series = build_series(&[ours, theirs]).expect("series");
        let labels: Vec<&str> = series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["A", "B", "faiss: A"]);
        let recalls: Vec<f64> = series[0].points.iter().map(|p| p.recall).collect();
        assert_eq!(recalls, [0.3, 0.9]);
        assert_eq!(series[2].color_key, series[0].color_key);
        assert_eq!(colour_key("IVF1024,PQ16x8"), "IVF1024,PQ16");
        assert_eq!(
            colour_key("IVF4096,PQ32x4fs,RFlat"),
            "IVF4096,PQ32x4fs,RFlat"
        );
        assert!(series[2].dashed && !series[0].dashed);
    }

    #[test]
    fn varying_fields_are_named() {
        let base = Row {
            spec: "S".into(),
            nprobe: None,
            qps: 10.0,
            recall: Some(0.5),
            k: Some(10),
            rerank: Some(0),
            storage: Some("disk".into()),
            queries: None,
            threads: None,
        };
        let rows = vec![
            base.clone(),
            Row {
                storage: Some("memory".into()),
                rerank: Some(8),
                ..base.clone()
            },
            Row {
                spec: "Flat".into(),
                storage: Some("file".into()),
                ..base.clone()
            },
        ];
        let source = Source {
            prefix: None,
            dashed: false,
            rows,
            dataset: None,
        };
        let series = build_series(&[source]).expect("series");
        let labels: Vec<&str> = series.iter().map(|s| s.label.as_str()).collect();
        // Storage differs between the two S series only: Flat is named plainly.
        assert_eq!(labels, ["S [disk]", "S rerank 8 [memory]", "Flat"]);
        let empty = Source {
            prefix: None,
            dashed: false,
            rows: vec![Row {
                recall: None,
                ..base
            }],
            dataset: None,
        };
        assert!(build_series(&[empty]).is_err());
    }

    #[test]
    fn dataset_names() {
        assert_eq!(
            dataset_name("/w/data/debian-sift/base.bvecs"),
            "debian-sift"
        );
        assert_eq!(dataset_name("/w/data/debian-sift"), "debian-sift");
        assert_eq!(dataset_name("/w/data/gist1m.fvecs"), "gist1m");
    }
}
