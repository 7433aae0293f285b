//! Image-retrieval measurement of the local-descriptor encoders on a descriptor-set folder
//! (e.g. `../shared/data/clipart-vlad`): train an encoder on the database descriptors,
//! encode database and queries, optionally PCA (+ L2) and PQ, search exhaustively, and
//! report R@1, R@10, R@100, mAP (mean reciprocal rank of the one relevant image) and the
//! encoding throughput on one thread.
//!
//! usage: cargo run --release -p vladdb-codecs --example retrieval_clipart -- DIR \
//!        [--seed N] [--pca-train N] [--repeat N] PIPELINE...
//! where a PIPELINE is an encoder token optionally followed by `,PCA[W][R]<d>` and
//! `,PQ<m>` or `,Flat`, e.g. `VLAD64`, `VLAD64,PCAW128,PQ16`, `VLAD64,PCAWR256,PQ16`,
//! `FV64`, `BOF1024`. `--repeat N` times the one-thread encoding N times and keeps the
//! best. Output: a markdown table on stdout, one JSON line per pipeline on
//! stderr.
//!
//! It reads `.npy` files with a tiny parser of its own: this is a measurement tool, the
//! engine owns real file input.

use std::collections::HashMap;
use std::time::Instant;

use vladdb_codecs::adc;
use vladdb_codecs::encode::{
    DescriptorSets, SetEncoder, encode_sets, encode_sets_into, parse_encoder,
};
use vladdb_codecs::exact;
use vladdb_codecs::kmeans::KMeansParams;
use vladdb_codecs::pca::{Pca, PcaOptions};
use vladdb_codecs::pq::ProductQuantizer;
use vladdb_codecs::spec::{IndexSpec, QuantizerSpec};
use vladdb_codecs::vectors::VectorsRef;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// A loaded `.npy` array: element type code, shape, raw little-endian data.
struct Npy {
    descr: String,
    shape: Vec<usize>,
    data: Vec<u8>,
}

fn read_npy(path: &str) -> AnyResult<Npy> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(format!("{path}: not an .npy file").into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        _ => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len])?;
    let field = |key: &str| -> AnyResult<&str> {
        let at = header
            .find(key)
            .ok_or_else(|| format!("{path}: no {key} in header"))?;
        Ok(header[at + key.len()..].trim_start_matches([':', ' ', '\'']))
    };
    let descr: String = field("'descr'")?
        .chars()
        .take_while(|&c| c != '\'')
        .collect();
    if field("'fortran_order'")?.starts_with("True") {
        return Err(format!("{path}: Fortran order is not supported").into());
    }
    let shape_text = field("'shape'")?;
    let close = shape_text.find(')').ok_or("bad shape")?;
    let shape = shape_text[1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse::<usize>)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Npy {
        descr,
        shape,
        data: bytes[start + header_len..].to_vec(),
    })
}

fn npy_u64(n: &Npy) -> AnyResult<Vec<u64>> {
    match n.descr.as_str() {
        "<u8" | "<i8" => Ok(n
            .data
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect()),
        d => Err(format!("expected 64-bit integers, got {d}").into()),
    }
}

/// Descriptor matrix + offsets of one prefix, owned.
struct LoadedSets {
    descr: Npy,
    offsets: Vec<u64>,
}

impl LoadedSets {
    fn load(dir: &str, prefix: &str) -> AnyResult<Self> {
        let descr = read_npy(&format!("{dir}/{prefix}_descriptors.npy"))?;
        let offsets = npy_u64(&read_npy(&format!("{dir}/{prefix}_offsets.npy"))?)?;
        Ok(LoadedSets { descr, offsets })
    }
    fn sets(&self) -> AnyResult<DescriptorSets<'_>> {
        let dim = *self.descr.shape.get(1).ok_or("descriptors must be 2-D")?;
        let v = match self.descr.descr.as_str() {
            "|u1" => VectorsRef::from_u8(&self.descr.data, dim)?,
            "<f4" => VectorsRef::new(
                &self.descr.data,
                self.descr.shape[0],
                dim,
                0,
                dim * 4,
                vladdb_codecs::ElemType::F32,
            )?,
            d => return Err(format!("unsupported descriptor type {d}").into()),
        };
        Ok(DescriptorSets::new(v, &self.offsets)?)
    }
}

/// On-CPU time of the calling thread (Linux `schedstat`), or NaN where unavailable.
fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |ns| ns / 1e9)
}

struct Metrics {
    r1: f64,
    r10: f64,
    r100: f64,
    map: f64,
}

/// Scores result lists (ids, nearest first) against the one true image per query.
fn score(results: &[Vec<u64>], truth: &[u64]) -> Metrics {
    let n = truth.len() as f64;
    let ranks: Vec<Option<usize>> = results
        .iter()
        .zip(truth)
        .map(|(r, &t)| r.iter().position(|&id| id == t))
        .collect();
    let within = |k: usize| ranks.iter().filter(|r| r.is_some_and(|p| p < k)).count() as f64 / n;
    let map = ranks
        .iter()
        .map(|r| r.map_or(0.0, |p| 1.0 / (p as f64 + 1.0)))
        .sum::<f64>()
        / n;
    Metrics {
        r1: within(1),
        r10: within(10),
        r100: within(100),
        map,
    }
}

fn l2_normalize_rows(data: &mut [f32], dim: usize) {
    for row in data.chunks_exact_mut(dim) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|x| *x /= norm);
        }
    }
}

/// One trained encoder with its encoded database and queries.
struct Encoded {
    encoder: Box<dyn SetEncoder>,
    /// Codes of the database images that have descriptors (empty images encode to zero
    /// vectors, which under L2 would sit at distance 1 from every unit query, closer than
    /// most true matches: they are left out of the search, as an engine should).
    db: Vec<f32>,
    /// Image id of each row of `db`.
    db_ids: Vec<u64>,
    queries: Vec<f32>,
    train_s: f64,
    descriptors_per_s_1t: f64,
    descriptors_per_cpu_s: f64,
    encode_s: f64,
    empty_db: usize,
    empty_queries: usize,
}

fn encode_with(
    token: &str,
    db: &DescriptorSets<'_>,
    q: &DescriptorSets<'_>,
    seed: u64,
    repeat: usize,
) -> AnyResult<Encoded> {
    let spec = parse_encoder(token)?.ok_or_else(|| format!("{token:?} is not an encoder token"))?;
    let t = Instant::now();
    let encoder = spec.train(db, seed)?;
    let train_s = t.elapsed().as_secs_f64();
    // Throughput on one thread: the whole database (u8 -> f32, RootSIFT, encoding) into
    // a reused output buffer (a warm-up run first faults its pages in), best of `repeat`
    // runs by wall clock and by the thread's on-CPU time (the machine is shared).
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let mut codes_1t = vec![0.0f32; db.len() * encoder.dim_out()];
    one.install(|| encode_sets_into(encoder.as_ref(), db, &mut codes_1t))?;
    let (mut best_wall, mut best_cpu) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..repeat.max(1) {
        let (wall, cpu) = one.install(|| -> vladdb_codecs::Result<(f64, f64)> {
            let (t, c) = (Instant::now(), thread_cpu_seconds());
            encode_sets_into(encoder.as_ref(), db, &mut codes_1t)?;
            Ok((t.elapsed().as_secs_f64(), thread_cpu_seconds() - c))
        })?;
        best_wall = best_wall.min(wall);
        best_cpu = best_cpu.min(cpu);
    }
    let descriptors_per_s_1t = db.total_descriptors() as f64 / best_wall;
    let descriptors_per_cpu_s = db.total_descriptors() as f64 / best_cpu;
    let t = Instant::now();
    let (codes, empty_db) = encode_sets(encoder.as_ref(), db)?;
    let (queries, empty_q) = encode_sets(encoder.as_ref(), q)?;
    let encode_s = t.elapsed().as_secs_f64();
    if codes != codes_1t {
        return Err("encoding depends on the thread count".into());
    }
    let d = encoder.dim_out();
    let db_ids: Vec<u64> = (0..db.len())
        .filter(|i| empty_db.binary_search(i).is_err())
        .map(|i| i as u64)
        .collect();
    let codes: Vec<f32> = db_ids
        .iter()
        .flat_map(|&i| &codes[i as usize * d..(i as usize + 1) * d])
        .copied()
        .collect();
    Ok(Encoded {
        encoder,
        db: codes,
        db_ids,
        queries,
        train_s,
        descriptors_per_s_1t,
        descriptors_per_cpu_s,
        encode_s,
        empty_db: empty_db.len(),
        empty_queries: empty_q.len(),
    })
}

/// Runs the stages after the encoder and returns (result lists, bytes per image, qps).
fn search(
    enc: &Encoded,
    rest: Option<&str>,
    seed: u64,
    pca_train: usize,
) -> AnyResult<(Vec<Vec<u64>>, usize, f64)> {
    let dim = enc.encoder.dim_out();
    let k = 100;
    let stages = match rest {
        Some(r) => Some(IndexSpec::parse(r)?),
        None => None,
    };
    let (db, queries, dim) = match stages.as_ref().and_then(|s| s.pca) {
        Some(p) => {
            let opts = PcaOptions {
                d_out: p.d_out,
                eigen_power: if p.whiten { -0.5 } else { 0.0 },
                random_rotation: p.rotate,
                seed,
            };
            let n_db = enc.db.len() / dim;
            let take = pca_train.min(n_db);
            let t = Instant::now();
            let pca = Pca::fit(&enc.db[..take * dim], dim, &opts)?;
            eprintln!(
                "  PCA {dim} -> {} fitted on {take} vectors in {:.1}s",
                p.d_out,
                t.elapsed().as_secs_f64()
            );
            let mut db = pca.apply(&enc.db)?;
            let mut q = pca.apply(&enc.queries)?;
            l2_normalize_rows(&mut db, p.d_out);
            l2_normalize_rows(&mut q, p.d_out);
            (db, q, p.d_out)
        }
        None => (enc.db.clone(), enc.queries.clone(), dim),
    };
    let nq = queries.len() / dim;
    let quantizer = stages.map_or(QuantizerSpec::Flat, |s| s.quantizer);
    match quantizer {
        QuantizerSpec::Flat => {
            let t = Instant::now();
            let res = exact::knn_l2_f32(&queries, &db, dim, k)?;
            let qps = nq as f64 / t.elapsed().as_secs_f64();
            let ids = res
                .into_iter()
                .map(|r| r.into_iter().map(|n| enc.db_ids[n.id as usize]).collect())
                .collect();
            Ok((ids, dim * 4, qps))
        }
        QuantizerSpec::Pq { m, nbits } => {
            let mut pq = ProductQuantizer::new(dim, m, nbits)?;
            let params = KMeansParams {
                seed,
                ..KMeansParams::default()
            };
            pq.train(&db, &params)?;
            let codes = pq.encode(&db)?;
            let scanner = adc::scanner(m, pq.ksub);
            let n_db = db.len() / dim;
            let t = Instant::now();
            let mut dist = vec![0.0f32; n_db];
            let mut res = Vec::with_capacity(nq);
            for q in queries.chunks_exact(dim) {
                let lut = pq.compute_lut(q)?;
                scanner.distances(&lut, &codes, &mut dist)?;
                let mut order: Vec<u64> = (0..n_db as u64).collect();
                order.sort_by(|&a, &b| {
                    dist[a as usize]
                        .total_cmp(&dist[b as usize])
                        .then(a.cmp(&b))
                });
                order.truncate(k);
                res.push(order.into_iter().map(|i| enc.db_ids[i as usize]).collect());
            }
            let qps = nq as f64 / t.elapsed().as_secs_f64();
            Ok((res, m * nbits as usize / 8, qps))
        }
        QuantizerSpec::FastScan { .. } => {
            Err("this study scores 8-bit PQ only: measure fast scan with `vladdb bench`".into())
        }
    }
}

fn main() -> AnyResult<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or(
        "usage: retrieval_clipart DIR [--seed N] [--pca-train N] [--repeat N] PIPELINE...",
    )?;
    let mut seed = 1u64;
    let mut pca_train = usize::MAX;
    let mut repeat = 1usize;
    let mut pipelines = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seed" => seed = args.next().ok_or("--seed N")?.parse()?,
            "--pca-train" => pca_train = args.next().ok_or("--pca-train N")?.parse()?,
            "--repeat" => repeat = args.next().ok_or("--repeat N")?.parse()?,
            _ => pipelines.push(a),
        }
    }
    if pipelines.is_empty() {
        pipelines = vec!["VLAD64".into()];
    }
    let t = Instant::now();
    let db = LoadedSets::load(&dir, "db")?;
    let q = LoadedSets::load(&dir, "query")?;
    let truth = npy_u64(&read_npy(&format!("{dir}/query_truth.npy"))?)?;
    let (db_sets, q_sets) = (db.sets()?, q.sets()?);
    eprintln!(
        "loaded {} db images ({} descriptors), {} queries in {:.1}s; {} threads",
        db_sets.len(),
        db_sets.total_descriptors(),
        q_sets.len(),
        t.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );
    println!(
        "| pipeline | bytes/image | R@1 | R@10 | R@100 | mAP | encode desc/s, 1 thread (wall / on-CPU) | train s | QPS |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut cache: HashMap<String, Encoded> = HashMap::new();
    for p in &pipelines {
        let (token, rest) = match p.split_once(',') {
            Some((t, r)) => (t, Some(r)),
            None => (p.as_str(), None),
        };
        if !cache.contains_key(token) {
            eprintln!("training + encoding {token} ...");
            let enc = encode_with(token, &db_sets, &q_sets, seed, repeat)?;
            eprintln!(
                "  {token}: train {:.1}s, encode db+queries {:.2}s, {:.0} descriptors/s on 1 thread, empty db {} / queries {}",
                enc.train_s,
                enc.encode_s,
                enc.descriptors_per_s_1t,
                enc.empty_db,
                enc.empty_queries
            );
            cache.insert(token.to_string(), enc);
        }
        let enc = &cache[token];
        let (results, bytes, qps) = search(enc, rest, seed, pca_train)?;
        let m = score(&results, &truth);
        println!(
            "| {p} | {bytes} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2}M / {:.2}M | {:.1} | {:.0} |",
            m.r1,
            m.r10,
            m.r100,
            m.map,
            enc.descriptors_per_s_1t / 1e6,
            enc.descriptors_per_cpu_s / 1e6,
            enc.train_s,
            qps
        );
        eprintln!(
            "{{\"pipeline\":\"{p}\",\"encoder\":\"{}\",\"bytes\":{bytes},\"r_at_1\":{:.4},\"r_at_10\":{:.4},\"r_at_100\":{:.4},\"map\":{:.4},\"encode_desc_per_s_1t\":{:.0},\"encode_desc_per_cpu_s\":{:.0},\"train_s\":{:.2},\"qps\":{:.1}}}",
            enc.encoder.spec_token(),
            m.r1,
            m.r10,
            m.r100,
            m.map,
            enc.descriptors_per_s_1t,
            enc.descriptors_per_cpu_s,
            enc.train_s,
            qps
        );
    }
    Ok(())
}
