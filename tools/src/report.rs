//! Output of the harness: one JSON object per line (`--json`) or an aligned table.

use serde::Serialize;

/// One (spec, nprobe) operating point. Field names are the harness's public contract.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub spec: String,
    pub nprobe: Option<usize>,
    pub k: usize,
    pub queries: usize,
    pub threads: usize,
    pub recall_1_at_1: Option<f64>,
    pub recall_1_at_10: Option<f64>,
    pub recall_1_at_100: Option<f64>,
    pub recall_10_at_10: Option<f64>,
    pub qps: f64,
    pub train_s: f64,
    pub add_s: f64,
    pub bytes: u64,
    /// Re-rank factor used (0 = none).
    pub rerank: usize,
    /// Vectors in the index.
    pub vectors: usize,
    /// Time to open the built database (engine builds only).
    pub open_ms: Option<f64>,
    /// Where the index lived: `disk` (the engine), `memory`, or `file` (exact search
    /// straight over the vector file).
    pub storage: String,
}

/// Prints rows as JSON lines or as a table (with a header).
pub fn print_rows(rows: &[BenchRow], json: bool) {
    if json {
        for row in rows {
            match serde_json::to_string(row) {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("vladdb: cannot format a result row: {e}"),
            }
        }
        return;
    }
    let header = [
        "spec", "nprobe", "R1@1", "R1@10", "R1@100", "R10@10", "qps", "train_s", "add_s", "bytes",
    ];
    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|r| {
            [
                r.spec.clone(),
                r.nprobe.map_or("-".into(), |p| p.to_string()),
                fmt_recall(r.recall_1_at_1),
                fmt_recall(r.recall_1_at_10),
                fmt_recall(r.recall_1_at_100),
                fmt_recall(r.recall_10_at_10),
                format!("{:.1}", r.qps),
                format!("{:.2}", r.train_s),
                format!("{:.2}", r.add_s),
                human_bytes(r.bytes),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let line = |items: Vec<&str>| {
        items
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    println!("{}", line(header.to_vec()));
    for row in &cells {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
}

fn fmt_recall(r: Option<f64>) -> String {
    r.map_or("-".into(), |v| format!("{v:.4}"))
}

/// Bytes in binary units (KiB, MiB, GiB).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
