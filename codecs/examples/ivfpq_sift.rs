//! Measures an in-memory index on a TEXMEX dataset (SIFT1M layout: `base.bvecs`,
//! `learn.bvecs`, `query.bvecs`, `groundtruth.ivecs`) until the `vladdb bench` CLI covers
//! every spec: train on learn, add base, search the first NQ queries at each nprobe
//! (best of 3), print one JSON line per operating point.
//!
//! usage: ivfpq_sift DIR SPEC NPROBES THREADS NQ K   (NPROBES comma-separated, e.g. 1,16)

use std::time::Instant;

use vladdb_codecs::VectorsRef;
use vladdb_codecs::index::{SearchParams, TrainOptions, build_index_with};

/// Reads a TEXMEX file (`.bvecs` u8 or `.ivecs` i32): every row is an i32 dimension
/// followed by the components. Returns the dimension and the concatenated raw components.
fn read_vecs(path: &str, elem: usize) -> Result<(usize, Vec<u8>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    if bytes.len() < 4 {
        return Err(format!("{path}: too short"));
    }
    let dim = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let row = 4 + dim * elem;
    if dim == 0 || bytes.len() % row != 0 {
        return Err(format!("{path}: not a TEXMEX file of dimension {dim}"));
    }
    let mut out = Vec::with_capacity(bytes.len() / row * dim * elem);
    for r in bytes.chunks_exact(row) {
        out.extend_from_slice(&r[4..]);
    }
    Ok((dim, out))
}

/// CPU time (user + system) of this process so far, in seconds, from /proc (Linux);
/// 0 elsewhere. On a shared machine this is steadier than wall time.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let Some(rest) = stat.rsplit(')').next() else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        return Err("usage: ivfpq_sift DIR SPEC NPROBES THREADS NQ K".into());
    }
    let (dir, spec) = (&args[1], &args[2]);
    let nprobes: Vec<usize> = args[3]
        .split(',')
        .map(|s| s.parse().map_err(|e| format!("nprobe {s}: {e}")))
        .collect::<Result<_, _>>()?;
    let threads: usize = args[4].parse().map_err(|e| format!("threads: {e}"))?;
    let nq: usize = args[5].parse().map_err(|e| format!("nq: {e}"))?;
    let k: usize = args[6].parse().map_err(|e| format!("k: {e}"))?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| e.to_string())?;

    let (dim, learn) = read_vecs(&format!("{dir}/learn.bvecs"), 1)?;
    let (_, base) = read_vecs(&format!("{dir}/base.bvecs"), 1)?;
    let (_, query) = read_vecs(&format!("{dir}/query.bvecs"), 1)?;
    let (gt_dim, gt_raw) = read_vecs(&format!("{dir}/groundtruth.ivecs"), 4)?;
    let nq = nq.min(query.len() / dim);
    let queries: Vec<f32> = query[..nq * dim].iter().map(|&b| f32::from(b)).collect();
    let truth: Vec<u64> = (0..nq)
        .map(|i| {
            let o = i * gt_dim * 4;
            u64::from(u32::from_le_bytes([
                gt_raw[o],
                gt_raw[o + 1],
                gt_raw[o + 2],
                gt_raw[o + 3],
            ]))
        })
        .collect();

    pool.install(|| -> Result<(), String> {
        // VLADDB_TABLE_BUDGET=bytes caps the IVF-PQ precomputed tables (0 = off).
        let mut opts = TrainOptions::default();
        if let Some(b) = std::env::var("VLADDB_TABLE_BUDGET").ok().and_then(|v| v.parse().ok()) {
            opts.precomputed_table_budget = b;
        }
        let mut index = build_index_with(spec, dim, opts).map_err(|e| e.to_string())?;
        let (t, c0) = (Instant::now(), cpu_seconds());
        if !index.is_trained() {
            index.train(&VectorsRef::from_u8(&learn, dim).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        }
        let train_s = t.elapsed().as_secs_f64();
        let (t, c1) = (Instant::now(), cpu_seconds());
        let ids: Vec<u64> = (0..(base.len() / dim) as u64).collect();
        index.add(&VectorsRef::from_u8(&base, dim).map_err(|e| e.to_string())?, &ids).map_err(|e| e.to_string())?;
        let add_s = t.elapsed().as_secs_f64();
        let (train_cpu_s, add_cpu_s) = (c1 - c0, cpu_seconds() - c1);
        // For profiling: VLADDB_SEARCH_REPS=n repeats each search n times (default 3).
        let reps: usize =
            std::env::var("VLADDB_SEARCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
        eprintln!("searching");
        for &nprobe in &nprobes {
            let params = SearchParams { k, nprobe, rerank: 0 };
            let mut best = f64::INFINITY;
            let mut best_cpu = f64::INFINITY;
            let mut res = Vec::new();
            for _ in 0..reps.max(1) {
                let (t, c) = (Instant::now(), cpu_seconds());
                res = index.search(&queries, &params).map_err(|e| e.to_string())?;
                best = best.min(t.elapsed().as_secs_f64());
                best_cpu = best_cpu.min(cpu_seconds() - c);
            }
            let recall = |r: usize| {
                res.iter().zip(&truth).filter(|(row, t)| row.iter().take(r).any(|n| n.id == **t)).count() as f64
                    / nq as f64
            };
            println!(
                "{{\"engine\": \"vladdb\", \"spec\": \"{}\", \"nprobe\": {nprobe}, \"k\": {k}, \"queries\": {nq}, \
                 \"threads\": {threads}, \"qps\": {:.1}, \"cpu_qps\": {:.1}, \"recall_1_at_1\": {:.4}, \"recall_1_at_10\": {:.4}, \
                 \"recall_1_at_100\": {:.4}, \"train_s\": {train_s:.2}, \"add_s\": {add_s:.2}, \"train_cpu_s\": {train_cpu_s:.2}, \"add_cpu_s\": {add_cpu_s:.2}, \"bytes\": {}}}",
                index.spec(),
                nq as f64 / best,
                nq as f64 / best_cpu,
                recall(1),
                recall(10),
                recall(100),
                index.bytes()
            );
        }
        Ok(())
    })
}
