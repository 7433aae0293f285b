//! Measurement tool: exact k-NN (`codecs::exact::knn_l2`) on a TEXMEX SIFT set, reported
//! as QPS and recalls against `groundtruth.ivecs`, in the key names of
//! `/work/shared/bench/faiss_point.py` so the two lines can be compared directly.
//!
//! usage: flat_sift DIR [NQ=1000] [K=100] [THREADS=1] [REPS=1] [--f32]
//!
//! With REPS > 1 the search is repeated and the best time is reported (the machine is
//! shared and noisy).
//!
//! The base `.bvecs` is read into memory once and viewed in place as a strided `u8`
//! matrix. `--f32` converts the base to an f32 matrix first (in this tool only) to time
//! the f32 micro-kernels instead of the exact integer engine.

use std::error::Error;
use std::time::Instant;

use vladdb_codecs::exact::knn_l2;
use vladdb_codecs::{ElemType, VectorsRef};

/// Reads a TEXMEX file: returns (bytes, rows, dim) where each row is a 4-byte dimension
/// followed by `dim` elements of `elem_size` bytes.
fn read_vecs(path: &str, elem_size: usize) -> Result<(Vec<u8>, usize, usize), Box<dyn Error>> {
    let bytes = std::fs::read(path)?;
    let head: [u8; 4] = bytes.get(..4).ok_or("empty file")?.try_into()?;
    let dim = u32::from_le_bytes(head) as usize;
    let stride = 4 + dim * elem_size;
    if bytes.len() % stride != 0 {
        return Err(format!("{path}: size is not a multiple of the row size").into());
    }
    let rows = bytes.len() / stride;
    Ok((bytes, rows, dim))
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let positional: Vec<&String> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let use_f32 = args.iter().any(|a| a == "--f32");
    let dir = positional
        .first()
        .ok_or("usage: flat_sift DIR [NQ] [K] [THREADS] [REPS] [--f32]")?;
    let nq: usize = positional.get(1).map_or(Ok(1000), |s| s.parse())?;
    let k: usize = positional.get(2).map_or(Ok(100), |s| s.parse())?;
    let threads: usize = positional.get(3).map_or(Ok(1), |s| s.parse())?;
    let reps: usize = positional.get(4).map_or(Ok(1), |s| s.parse())?;

    let (base_bytes, nb, dim) = read_vecs(&format!("{dir}/base.bvecs"), 1)?;
    let base = VectorsRef::new(&base_bytes, nb, dim, 4, 4 + dim, ElemType::U8)?;
    let (qbytes, qrows, qdim) = read_vecs(&format!("{dir}/query.bvecs"), 1)?;
    if qdim != dim {
        return Err("query and base dimensions differ".into());
    }
    let nq = nq.min(qrows);
    let queries = VectorsRef::new(&qbytes, qrows, dim, 4, 4 + dim, ElemType::U8)?.to_f32_vec(0, nq);
    let (gt_bytes, gt_rows, gt_k) = read_vecs(&format!("{dir}/groundtruth.ivecs"), 4)?;
    let gt: Vec<Vec<u64>> = (0..gt_rows.min(nq))
        .map(|r| {
            let row = &gt_bytes[r * (4 + 4 * gt_k) + 4..][..4 * gt_k];
            row.chunks_exact(4)
                .map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        })
        .collect();

    let base_f32;
    let view = if use_f32 {
        base_f32 = base.to_f32_vec(0, nb);
        VectorsRef::from_f32(&base_f32, dim)?
    } else {
        base
    };

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let mut secs = f64::INFINITY;
    let mut results = Vec::new();
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        results = pool.install(|| knn_l2(&queries, &view, k))?;
        secs = secs.min(start.elapsed().as_secs_f64());
    }

    let recall_1 = |r: usize| {
        let hits = results
            .iter()
            .zip(&gt)
            .filter(|(res, g)| res.iter().take(r).any(|n| n.id == g[0]))
            .count();
        hits as f64 / gt.len().max(1) as f64
    };
    let recall_10_10 = results
        .iter()
        .zip(&gt)
        .map(|(res, g)| {
            let got: Vec<u64> = res.iter().take(10).map(|n| n.id).collect();
            g.iter().take(10).filter(|id| got.contains(id)).count() as f64 / 10.0
        })
        .sum::<f64>()
        / gt.len().max(1) as f64;
    let same_lists = results
        .iter()
        .zip(&gt)
        .filter(|(res, g)| res.iter().map(|n| n.id).eq(g.iter().take(k).copied()))
        .count();
    println!(
        "{{\"spec\": \"vladdb-exact{}\", \"k\": {k}, \"queries\": {nq}, \"threads\": {threads}, \
         \"qps\": {:.1}, \"recall_1_at_1\": {}, \"recall_1_at_10\": {}, \"recall_1_at_100\": {}, \
         \"recall_10_at_10\": {}, \"identical_lists\": {same_lists}}}",
        if use_f32 { "-f32" } else { "" },
        nq as f64 / secs,
        recall_1(1),
        recall_1(10),
        recall_1(100),
        recall_10_10
    );
    Ok(())
}
