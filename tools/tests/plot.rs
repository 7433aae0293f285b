//! Recall–QPS plots end to end through the `vladdb` binary: `vladdb plot` on hand-written
//! JSON lines (vladdb's and FAISS's formats), `vladdb bench --plot --compare` on tiny
//! generated data, the SVG's structure (balanced tags, one polyline per series, legend), the
//! log QPS axis, and one-line errors for bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vladdb::vecfile::write_fvecs;

fn vladdb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vladdb"))
        .args(args)
        .output()
        .expect("the vladdb binary runs")
}

fn ok(args: &[&str]) {
    let out = vladdb(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command that must fail with exit status 1 and one `vladdb: error:` line naming
/// `needle`.
fn fails(args: &[&str], needle: &str) {
    let out = vladdb(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one line: {stderr}");
    assert!(lines[0].starts_with("vladdb: error: "), "{stderr}");
    assert!(
        lines[0].contains(needle),
        "{args:?}: {:?} lacks {needle:?}",
        lines[0]
    );
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// vladdb's own lines: two specs, rows not in recall order, one k.
const VLADDB_LINES: &str = r#"
{"spec":"IVF1024,PQ16x8","nprobe":4,"k":100,"queries":1000,"threads":1,"recall_1_at_1":0.3,"recall_1_at_10":0.62,"recall_1_at_100":0.7,"recall_10_at_10":0.41,"qps":9000.0,"rerank":0,"storage":"disk"}
{"spec":"IVF1024,PQ16x8","nprobe":1,"k":100,"queries":1000,"threads":1,"recall_1_at_1":0.2,"recall_1_at_10":0.41,"recall_1_at_100":0.45,"recall_10_at_10":0.3,"qps":31000.0,"rerank":0,"storage":"disk"}
{"spec":"IVF1024,PQ16x8","nprobe":16,"k":100,"queries":1000,"threads":1,"recall_1_at_1":0.35,"recall_1_at_10":0.74,"recall_1_at_100":0.9,"recall_10_at_10":0.45,"qps":2600.0,"rerank":0,"storage":"disk"}
{"spec":"IVF256,Flat","nprobe":1,"k":100,"queries":1000,"threads":1,"recall_1_at_1":0.5,"recall_1_at_10":0.55,"recall_1_at_100":0.55,"recall_10_at_10":0.52,"qps":700.0,"rerank":0,"storage":"disk"}
{"spec":"IVF256,Flat","nprobe":8,"k":100,"queries":1000,"threads":1,"recall_1_at_1":0.9,"recall_1_at_10":0.95,"recall_1_at_100":0.95,"recall_10_at_10":0.93,"qps":95.0,"rerank":0,"storage":"disk"}
"#;

/// `faiss_ann.py`: a metadata line, then `index` and `1@10` keys.
const FAISS_ANN_LINES: &str = r#"{"set": "/work/shared/data/debian-sift", "nb": 1000000, "nq": 10000, "threads": 1, "faiss": "1.9.0"}
{"index": "IVF1024,PQ16", "nprobe": 1, "train_s": 3.1, "add_s": 9.0, "bytes": 17000000, "qps": 21000.5, "1@1": 0.2, "1@10": 0.4, "1@100": 0.45, "10@10": 0.29}
{"index": "IVF1024,PQ16", "nprobe": 8, "train_s": 3.1, "add_s": 9.0, "bytes": 17000000, "qps": 4100.0, "1@1": 0.33, "1@10": 0.7, "1@100": 0.85, "10@10": 0.44}
"#;

/// `faiss_point.py`: vladdb's key names.
const FAISS_POINT_LINES: &str = r#"{"spec": "IVF1024,PQ16", "nprobe": 16, "k": 100, "queries": 1000, "threads": 1, "qps": 2300.0, "recall_1_at_1": 0.34, "recall_1_at_10": 0.73, "recall_1_at_100": 0.9, "recall_10_at_10": 0.45}"#;

struct Files {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Files {
    fn new() -> Files {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        for (name, text) in [
            ("vladdb.jsonl", VLADDB_LINES),
            ("faiss_ann.jsonl", FAISS_ANN_LINES),
            ("faiss_point.jsonl", FAISS_POINT_LINES),
        ] {
            std::fs::write(dir.join(name), text).expect("write");
        }
        Files { _tmp: tmp, dir }
    }

    fn path(&self, name: &str) -> String {
        path_str(&self.dir.join(name))
    }

    fn write(&self, name: &str, text: &str) -> String {
        std::fs::write(self.dir.join(name), text).expect("write");
        self.path(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).expect("the SVG was written")
    }
}

/// One start or empty-element tag: its name and its raw text.
struct Tag {
    name: String,
    text: String,
}

/// Checks the document is well formed as far as tags go (every start tag closed in order,
/// one `<svg>` root, no stray `<` or `>` in text) and returns its start and empty tags.
fn parse_tags(svg: &str) -> Vec<Tag> {
    let mut stack: Vec<String> = Vec::new();
    let mut tags = Vec::new();
    let mut rest = svg.trim();
    assert!(rest.starts_with("<svg "), "root is not <svg>");
    let mut roots = 0;
    while let Some(open) = rest.find('<') {
        assert!(!rest[..open].contains('>'), "stray '>' in text");
        let close = rest[open..].find('>').expect("unterminated tag") + open;
        let inner = &rest[open + 1..close];
        assert!(!inner.contains('<'), "'<' inside a tag: {inner}");
        if let Some(name) = inner.strip_prefix('/') {
            let top = stack.pop().expect("closing tag without a start tag");
            assert_eq!(top, name.trim(), "tags closed out of order");
        } else {
            let name: String = inner
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '/')
                .collect();
            if stack.is_empty() {
                roots += 1;
            }
            if !inner.ends_with('/') {
                stack.push(name.clone());
            }
            tags.push(Tag {
                name,
                text: inner.to_string(),
            });
        }
        rest = &rest[close + 1..];
    }
    assert!(!rest.contains('>'), "stray '>' after the last tag");
    assert!(stack.is_empty(), "unclosed tags: {stack:?}");
    assert_eq!(roots, 1, "more than one root element");
    tags
}

fn attr(tag: &Tag, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = tag.text.find(&key)? + key.len();
    let end = tag.text[start..].find('"')? + start;
    Some(tag.text[start..end].to_string())
}

fn num(tag: &Tag, name: &str) -> f64 {
    attr(tag, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {name} in <{}>", tag.text))
}

/// The text right after the start tag `<text ... data-value="value"...>`.
fn text_of<'a>(svg: &'a str, tag: &Tag) -> &'a str {
    let start = svg.find(&tag.text).expect("tag in document") + tag.text.len() + 1;
    let end = svg[start..].find('<').expect("text ends") + start;
    &svg[start..end]
}

/// The (x, y) pairs of a polyline.
fn polyline_points(tag: &Tag) -> Vec<(f64, f64)> {
    attr(tag, "points")
        .expect("points")
        .split_whitespace()
        .map(|pair| {
            let (x, y) = pair.split_once(',').expect("x,y");
            (x.parse().expect("x"), y.parse().expect("y"))
        })
        .collect()
}

#[test]
fn plot_draws_one_dashed_polyline_per_overlaid_series_with_a_legend() {
    let f = Files::new();
    let out = f.path("out.svg");
    ok(&[
        "plot",
        "--input",
        &f.path("vladdb.jsonl"),
        "--compare",
        &f.path("faiss_ann.jsonl"),
        "--compare",
        &f.path("faiss_point.jsonl"),
        "--compare-label",
        "FAISS ann",
        "-o",
        &out,
    ]);
    let svg = f.read("out.svg");
    let tags = parse_tags(&svg);
    let polylines: Vec<&Tag> = tags.iter().filter(|t| t.name == "polyline").collect();
    assert_eq!(polylines.len(), 4, "one polyline per series");
    let dashed = polylines
        .iter()
        .filter(|t| attr(t, "stroke-dasharray").is_some())
        .count();
    assert_eq!(dashed, 2, "the two --compare series are dashed");
    for label in [
        "vladdb: IVF1024,PQ16x8",
        "vladdb: IVF256,Flat",
        "FAISS ann: IVF1024,PQ16",
        "faiss_point: IVF1024,PQ16",
    ] {
        assert!(
            svg.contains(&format!(">{label}</text>")),
            "legend lacks {label}"
        );
    }
    // Points ordered by recall along each polyline; one marker per row.
    for line in &polylines {
        let xs: Vec<f64> = polyline_points(line).iter().map(|p| p.0).collect();
        assert!(xs.windows(2).all(|w| w[0] <= w[1]), "not by recall: {xs:?}");
    }
    let counts: Vec<usize> = polylines.iter().map(|l| polyline_points(l).len()).collect();
    assert_eq!(counts, [3, 2, 2, 1]);
    let markers = tags
        .iter()
        .filter(|t| attr(t, "class").as_deref() == Some("point"))
        .count();
    assert_eq!(markers, 8);
    // Few series: every point is annotated with its nprobe.
    let mut nprobes: Vec<&str> = tags
        .iter()
        .filter(|t| attr(t, "class").as_deref() == Some("nprobe"))
        .map(|t| text_of(&svg, t))
        .collect();
    nprobes.sort_unstable();
    assert_eq!(nprobes, ["1", "1", "1", "16", "16", "4", "8", "8"]);
    // Same spec, same colour across sources (PQ16x8 is PQ16).
    let colours: Vec<String> = polylines
        .iter()
        .map(|t| attr(t, "stroke").expect("stroke"))
        .collect();
    assert_eq!(colours[0], colours[2]);
    assert_eq!(colours[0], colours[3]);
    assert_ne!(colours[0], colours[1]);
    // The title names the data set (from faiss_ann's metadata line) and k.
    let title = tags
        .iter()
        .find(|t| attr(t, "class").as_deref() == Some("title"))
        .expect("title");
    let title = text_of(&svg, title);
    assert!(title.contains("debian-sift"), "{title}");
    assert!(title.contains("k = 100"), "{title}");
    // Queries and threads per source; faiss_ann's come from its metadata line.
    let subtitle = tags
        .iter()
        .find(|t| attr(t, "class").as_deref() == Some("subtitle"))
        .expect("subtitle");
    assert_eq!(
        text_of(&svg, subtitle),
        "vladdb: 1,000 queries, 1 thread; FAISS ann: 10,000 queries, 1 thread; \
         faiss_point: 1,000 queries, 1 thread"
    );
}

#[test]
fn log_axis_ticks_and_markers_sit_at_log_positions() {
    let f = Files::new();
    let out = f.path("log.svg");
    ok(&[
        "plot",
        "--input",
        &f.path("vladdb.jsonl"),
        "--dataset",
        "tiny",
        "-o",
        &out,
    ]);
    let svg = f.read("log.svg");
    let tags = parse_tags(&svg);
    let ticks: Vec<(f64, f64, &str)> = tags
        .iter()
        .filter(|t| attr(t, "class").as_deref() == Some("ytick"))
        .map(|t| (num(t, "data-value"), num(t, "y"), text_of(&svg, t)))
        .collect();
    // QPS 95..31,000 spans 50..50k: 1-2-5 labels, 10 of them.
    let values: Vec<f64> = ticks.iter().map(|t| t.0).collect();
    assert_eq!(
        values,
        [50.0, 100.0, 200.0, 500.0, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4]
    );
    let texts: Vec<&str> = ticks.iter().map(|t| t.2).collect();
    assert_eq!(
        texts,
        [
            "50", "100", "200", "500", "1k", "2k", "5k", "10k", "20k", "50k"
        ]
    );
    // y is linear in log10(value), decreasing upwards: fit on the ends, check the rest.
    let (first, last) = (ticks[0], ticks[ticks.len() - 1]);
    let slope = (last.1 - first.1) / (last.0.log10() - first.0.log10());
    assert!(slope < 0.0);
    let y_of = |qps: f64| first.1 + slope * (qps.log10() - first.0.log10());
    for (value, y, _) in &ticks {
        assert!((y_of(*value) - y).abs() < 0.02, "tick {value} at {y}");
    }
    // Every marker (circle: source 0) at the log position of its QPS.
    let mut markers = 0;
    for t in tags.iter().filter(|t| t.name == "circle") {
        if attr(t, "class").as_deref() != Some("point") {
            continue;
        }
        let (qps, cy) = (num(t, "data-qps"), num(t, "cy"));
        assert!((y_of(qps) - cy).abs() < 0.06, "qps {qps} at {cy}");
        markers += 1;
    }
    assert_eq!(markers, 5);
    // The x axis is linear in recall.
    let xticks: Vec<(f64, f64)> = tags
        .iter()
        .filter(|t| attr(t, "class").as_deref() == Some("xtick"))
        .map(|t| (num(t, "data-value"), num(t, "x")))
        .collect();
    assert!(xticks.len() >= 4);
    let dx = xticks[1].1 - xticks[0].1;
    let dv = xticks[1].0 - xticks[0].0;
    for w in xticks.windows(2) {
        assert!(((w[1].1 - w[0].1) - dx).abs() < 0.11);
        assert!(((w[1].0 - w[0].0) - dv).abs() < 1e-9);
    }
    // A single input is drawn without a prefix.
    assert!(svg.contains(">IVF256,Flat</text>"));
}

#[test]
fn the_metric_picks_the_recall_column() {
    let f = Files::new();
    let out = f.path("ten.svg");
    ok(&[
        "plot",
        "--input",
        &f.path("vladdb.jsonl"),
        "--compare",
        &f.path("faiss_ann.jsonl"),
        "--metric",
        "recall_10_at_10",
        "-o",
        &out,
    ]);
    let svg = f.read("ten.svg");
    let tags = parse_tags(&svg);
    let mut recalls: Vec<f64> = tags
        .iter()
        .filter(|t| attr(t, "class").as_deref() == Some("point"))
        .map(|t| num(t, "data-recall"))
        .collect();
    recalls.sort_by(f64::total_cmp);
    assert_eq!(recalls, [0.29, 0.3, 0.41, 0.44, 0.45, 0.52, 0.93]);
    assert!(svg.contains(">10-recall@10</text>"));
}

#[test]
fn bad_input_is_one_line_and_exit_1() {
    let f = Files::new();
    let out = f.path("bad.svg");
    let missing = f.path("missing.jsonl");
    fails(&["plot", "--input", &missing, "-o", &out], "cannot read");
    let not_json = f.write(
        "not_json.jsonl",
        "{\"spec\":\"A\",\"qps\":1,\"recall_1_at_10\":0.5}\nqps=3\n",
    );
    fails(
        &["plot", "--input", &not_json, "-o", &out],
        "not_json.jsonl:2: not a JSON line",
    );
    let no_qps = f.write("no_qps.jsonl", "{\"spec\":\"A\",\"recall_1_at_10\":0.5}\n");
    fails(
        &["plot", "--input", &no_qps, "-o", &out],
        "no_qps.jsonl:1: missing key \"qps\"",
    );
    let no_recall = f.write("no_recall.jsonl", "{\"spec\":\"A\",\"qps\":5}\n");
    fails(
        &["plot", "--input", &no_recall, "-o", &out],
        "missing key \"recall_1_at_10\"",
    );
    let empty = f.write("empty.jsonl", "\n\n");
    fails(
        &["plot", "--input", &empty, "-o", &out],
        "holds no result lines",
    );
    let nulls = f.write(
        "nulls.jsonl",
        "{\"spec\":\"A\",\"k\":1,\"qps\":5,\"recall_1_at_10\":null}\n",
    );
    fails(
        &["plot", "--input", &nulls, "-o", &out],
        "no points to plot",
    );
    fails(
        &[
            "plot",
            "--input",
            &f.path("vladdb.jsonl"),
            "--compare",
            &not_json,
            "-o",
            &out,
        ],
        "not a JSON line",
    );
    fails(
        &[
            "plot",
            "--input",
            &f.path("vladdb.jsonl"),
            "-o",
            &f.path("no/such/dir/x.svg"),
        ],
        "not a directory",
    );
    fails(
        &[
            "plot",
            "--input",
            &f.path("vladdb.jsonl"),
            "--metric",
            "qps",
            "-o",
            &out,
        ],
        "qps",
    );
    assert!(!f.dir.join("bad.svg").exists(), "no plot written on errors");
}

/// Deterministic rows in [0, 1) for small test sets.
fn rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n * dim)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

#[test]
fn bench_plots_its_rows_and_the_overlays() {
    let f = Files::new();
    let set = f.dir.join("tiny-set");
    std::fs::create_dir(&set).expect("mkdir");
    write_fvecs(set.join("base.fvecs"), &rows(400, 8, 1), 8).expect("write");
    write_fvecs(set.join("query.fvecs"), &rows(20, 8, 2), 8).expect("write");
    let (base, query) = (
        path_str(&set.join("base.fvecs")),
        path_str(&set.join("query.fvecs")),
    );
    let out = f.path("bench.svg");
    let bench = |extra: &[&str]| {
        let mut args = vec![
            "bench",
            "--base",
            &base,
            "--query",
            &query,
            "--spec",
            "Flat;IVF4,Flat",
            "--nprobe",
            "1,2,4",
            "-k",
            "10",
            "--threads",
            "1",
            "--runs",
            "1",
            "--json",
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<String>>()
    };
    let args = bench(&["--plot", &out, "--compare", &f.path("faiss_point.jsonl")]);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let svg = f.read("bench.svg");
    let tags = parse_tags(&svg);
    let polylines: Vec<&Tag> = tags.iter().filter(|t| t.name == "polyline").collect();
    assert_eq!(polylines.len(), 3, "Flat, IVF4,Flat and the overlay");
    let points: Vec<usize> = polylines.iter().map(|l| polyline_points(l).len()).collect();
    assert_eq!(points, [1, 3, 1]);
    assert!(svg.contains(">vladdb: Flat</text>"));
    assert!(svg.contains(">faiss_point: IVF1024,PQ16</text>"));
    let title = tags
        .iter()
        .find(|t| attr(t, "class").as_deref() == Some("title"))
        .expect("title");
    let title = text_of(&svg, title);
    assert!(
        title.contains("tiny-set") && title.contains("k = 10, 100"),
        "{title}"
    );
    // Exact search finds every true neighbour.
    let flat = tags
        .iter()
        .find(|t| attr(t, "class").as_deref() == Some("point"))
        .expect("a point");
    assert_eq!(num(flat, "data-recall"), 1.0);

    // A bad --compare file fails before the benchmark runs, and nothing is written.
    let bad = f.write("bad.jsonl", "[]\n");
    let out2 = f.path("bench2.svg");
    let args = bench(&["--plot", &out2, "--compare", &bad]);
    fails(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "bad.jsonl:1: not a JSON object",
    );
    assert!(!f.dir.join("bench2.svg").exists());
    // A recall the run cannot measure is refused up front.
    let out3 = f.path("bench3.svg");
    fails(
        &[
            "bench", "--base", &base, "--query", &query, "--spec", "Flat", "-k", "5", "--plot",
            &out3,
        ],
        "needs -k 10",
    );
    // --compare needs --plot.
    let args = bench(&["--compare", &bad]);
    fails(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "--plot",
    );
}
