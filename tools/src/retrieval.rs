//! Image retrieval from the command line: `vladdb encode` (descriptor sets → global vectors
//! in a `.npy`) and the retrieval mode of `vladdb bench` (`--learn-sets/--base-sets/
//! --query-sets/--truth`), which reports `r_at_1`, `r_at_10`, `r_at_100` and `map` (one
//! relevant image per query: the rank of its source image), QPS and encode throughput,
//! for exact search over the encoded vectors and for the spec's compressed index.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde::Serialize;
use vladdb::codecs::encode::{
    EncoderSpec, SetEncoder, encode_sets, encode_sets_into, non_empty_codes, parse_encoder,
};
use vladdb::codecs::exact;
use vladdb::codecs::index::{SearchParams, build_index};
use vladdb::codecs::{VectorsRef, spec::IndexSpec};
use vladdb::sets::SetFiles;
use vladdb::vecfile::{read_npy_i64, write_npy_f32};

use crate::bench::BenchArgs;
use crate::{CliResult, err, progress, with_threads};

#[derive(Args, Debug)]
pub struct EncodeArgs {
    /// Descriptor sets to encode (PREFIX_descriptors.npy, PREFIX_offsets.npy).
    #[arg(long)]
    pub sets: PathBuf,
    /// Encoder token, e.g. `VLAD64`, `FV64`, `BOF1024` (see docs/encoders.md).
    #[arg(long)]
    pub spec: String,
    /// Sets to train the encoder on (default: --sets itself).
    #[arg(long)]
    pub learn_sets: Option<PathBuf>,
    /// Output `.npy` (float32, one row per image).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

fn encoder_spec(spec: &str) -> CliResult<(EncoderSpec, Option<IndexSpec>)> {
    let (first, rest) = match spec.split_once(',') {
        Some((a, b)) => (a.trim(), Some(b)),
        None => (spec.trim(), None),
    };
    let enc = parse_encoder(first).map_err(err)?.ok_or_else(|| {
        format!("spec {spec:?} does not start with an encoder (VLAD…, FV…, BOF…)")
    })?;
    let index = match rest {
        Some(r) => Some(IndexSpec::parse(r).map_err(err)?),
        None => None,
    };
    Ok((enc, index))
}

/// Trains the encoder on `learn`; returns it and the training seconds.
fn train_encoder(spec: &EncoderSpec, learn: &SetFiles) -> CliResult<(Box<dyn SetEncoder>, f64)> {
    let start = Instant::now();
    let enc = spec.train(&learn.sets().map_err(err)?, 1).map_err(err)?;
    Ok((enc, start.elapsed().as_secs_f64()))
}

pub fn encode(a: &EncodeArgs) -> CliResult<()> {
    let (spec, index) = encoder_spec(&a.spec)?;
    if index.is_some() {
        return Err("--spec takes only the encoder token here (e.g. VLAD64)".into());
    }
    let sets = SetFiles::open(&a.sets).map_err(err)?;
    let learn = match &a.learn_sets {
        Some(p) => Some(SetFiles::open(p).map_err(err)?),
        None => None,
    };
    let spinner = progress::spinner("encode");
    let (enc, train_s) = with_threads(a.threads, || {
        train_encoder(&spec, learn.as_ref().unwrap_or(&sets))
    })??;
    let start = Instant::now();
    let view = sets.sets().map_err(err)?;
    let (codes, empty) =
        with_threads(a.threads, || encode_sets(enc.as_ref(), &view))?.map_err(err)?;
    let encode_s = start.elapsed().as_secs_f64();
    spinner.finish_and_clear();
    write_npy_f32(&a.output, &codes, sets.images(), enc.dim_out()).map_err(err)?;
    println!(
        "encoded {} images ({} descriptors, {} empty) with {} into {} ({}-D): train {train_s:.2} s, encode {encode_s:.2} s ({:.0} descriptors/s)",
        sets.images(),
        view.total_descriptors(),
        empty.len(),
        enc.spec_token(),
        a.output.display(),
        enc.dim_out(),
        view.total_descriptors() as f64 / encode_s.max(1e-9)
    );
    Ok(())
}

/// One retrieval result row.
#[derive(Debug, Serialize)]
struct RetrievalRow {
    spec: String,
    search: &'static str,
    k: usize,
    nprobe: Option<usize>,
    queries: usize,
    threads: usize,
    r_at_1: f64,
    r_at_10: f64,
    r_at_100: f64,
    map: f64,
    qps: f64,
    bytes_per_image: usize,
    encode_descriptors_per_s: f64,
    encode_cold_descriptors_per_s: f64,
    train_s: f64,
    add_s: f64,
}

/// Rank-based metrics: `ranks[q]` is the 1-based rank of query q's true image (None when
/// not in the returned list).
fn metrics(ranks: &[Option<usize>]) -> (f64, f64, f64, f64) {
    let n = ranks.len().max(1) as f64;
    let within = |r: usize| ranks.iter().filter(|x| x.is_some_and(|v| v <= r)).count() as f64 / n;
    let map = ranks
        .iter()
        .map(|x| x.map_or(0.0, |v| 1.0 / v as f64))
        .sum::<f64>()
        / n;
    (within(1), within(10), within(100), map)
}

fn ranks_of(results: &[Vec<u64>], truth: &[i64]) -> Vec<Option<usize>> {
    results
        .iter()
        .zip(truth)
        .map(|(ids, &t)| ids.iter().position(|&id| id as i64 == t).map(|p| p + 1))
        .collect()
}

pub fn bench(args: &BenchArgs) -> CliResult<()> {
    let threads = if args.threads == 0 {
        rayon::current_num_threads()
    } else {
        args.threads
    };
    let (Some(base_p), Some(query_p), Some(truth_p)) =
        (&args.base_sets, &args.query_sets, &args.truth)
    else {
        return Err("the retrieval benchmark needs --base-sets, --query-sets and --truth".into());
    };
    let base = SetFiles::open(base_p).map_err(err)?;
    let query = SetFiles::open(query_p).map_err(err)?;
    let learn = match &args.learn_sets {
        Some(p) => Some(SetFiles::open(p).map_err(err)?),
        None => None,
    };
    let truth = read_npy_i64(truth_p).map_err(err)?;
    let nq = args.queries.unwrap_or(query.images()).min(query.images());
    if truth.len() != query.images() {
        return Err(format!(
            "{}: {} truths for {} query images (one database index per query)",
            truth_p.display(),
            truth.len(),
            query.images()
        ));
    }
    if let Some(q) = truth
        .iter()
        .position(|&t| usize::try_from(t).map_or(true, |t| t >= base.images()))
    {
        return Err(format!(
            "{}: query {q}'s truth {} is not an image of the database ({} images)",
            truth_p.display(),
            truth[q],
            base.images()
        ));
    }
    let specs = crate::bench::spec_list(args)?;
    for spec_text in &specs {
        let (enc_spec, index_spec) = encoder_spec(spec_text)?;
        let spinner = progress::spinner(&format!("train {enc_spec}"));
        let (enc, enc_train_s) = with_threads(threads, || {
            train_encoder(&enc_spec, learn.as_ref().unwrap_or(&base))
        })??;
        spinner.set_message("encode");
        let base_view = base.sets().map_err(err)?;
        let start = Instant::now();
        let (mut base_codes, _) =
            with_threads(threads, || encode_sets(enc.as_ref(), &base_view))?.map_err(err)?;
        let cold_s = start.elapsed().as_secs_f64();
        // The encoder's throughput: the best of three more passes into the same, now
        // resident, output (the first also pays for faulting in `images × dim_out` fresh
        // floats, which a batch pipeline reusing its buffer does not; best of three as for
        // `qps`). Both are reported.
        let warm_s = with_threads(threads, || -> CliResult<f64> {
            let mut best = f64::INFINITY;
            for _ in 0..3 {
                let start = Instant::now();
                encode_sets_into(enc.as_ref(), &base_view, &mut base_codes).map_err(err)?;
                best = best.min(start.elapsed().as_secs_f64());
            }
            Ok(best)
        })??;
        let descriptors = base_view.total_descriptors() as f64;
        let encode_rate = descriptors / warm_s.max(1e-9);
        let encode_cold_rate = descriptors / cold_s.max(1e-9);
        let query_view = query.sets().map_err(err)?;
        let (query_codes, _) =
            with_threads(threads, || encode_sets(enc.as_ref(), &query_view))?.map_err(err)?;
        let d = enc.dim_out();
        let queries = &query_codes[..nq * d];
        // Images without descriptors are not indexed (their zero vector would be at the
        // same distance from every query), exactly as `vladdb add --sets` does.
        let keep: Vec<usize> = (0..base.images())
            .filter(|&i| base_view.count(i) > 0)
            .collect();
        let kept = non_empty_codes(&base_codes, d, &base_view).map_err(err)?;
        let base_vectors = VectorsRef::from_f32(&kept, d).map_err(err)?;
        spinner.finish_and_clear();
        let mut rows = Vec::new();
        // Exact search over the encoded vectors: the loss from compression is measured
        // against this.
        let start = Instant::now();
        let exact_hits = with_threads(threads, || exact::knn_l2(queries, &base_vectors, args.k))?
            .map_err(err)?;
        let exact_s = start.elapsed().as_secs_f64();
        let ids: Vec<Vec<u64>> = exact_hits
            .into_iter()
            .map(|l| l.into_iter().map(|n| keep[n.id as usize] as u64).collect())
            .collect();
        let (r1, r10, r100, map) = metrics(&ranks_of(&ids, &truth[..nq]));
        rows.push(RetrievalRow {
            spec: enc.spec_token(),
            search: "exact",
            k: args.k,
            nprobe: None,
            queries: nq,
            threads,
            r_at_1: r1,
            r_at_10: r10,
            r_at_100: r100,
            map,
            qps: nq as f64 / exact_s.max(1e-9),
            bytes_per_image: d * 4,
            encode_descriptors_per_s: encode_rate,
            encode_cold_descriptors_per_s: encode_cold_rate,
            train_s: enc_train_s,
            add_s: 0.0,
        });
        if let Some(index_spec) = index_spec {
            let text = index_spec.to_string();
            let mut index = build_index(&text, d).map_err(err)?;
            // Train the index on the encoded learning sets (the database's by default).
            let learn_codes;
            let train_vectors = match &learn {
                Some(l) => {
                    // As `Database::train_sets`: images without descriptors are left out.
                    let lv = l.sets().map_err(err)?;
                    let (codes, empty) =
                        with_threads(threads, || encode_sets(enc.as_ref(), &lv))?.map_err(err)?;
                    learn_codes = if empty.is_empty() {
                        codes
                    } else {
                        non_empty_codes(&codes, d, &lv).map_err(err)?
                    };
                    VectorsRef::from_f32(&learn_codes, d).map_err(err)?
                }
                None => base_vectors,
            };
            let start = Instant::now();
            with_threads(threads, || index.train(&train_vectors))?.map_err(err)?;
            let train_s = enc_train_s + start.elapsed().as_secs_f64();
            let start = Instant::now();
            let all_ids: Vec<u64> = keep.iter().map(|&i| i as u64).collect();
            with_threads(threads, || index.add(&base_vectors, &all_ids))?.map_err(err)?;
            let add_s = start.elapsed().as_secs_f64();
            let probes: Vec<Option<usize>> = match index.nlist() {
                Some(_) => args.nprobe.iter().map(|&p| Some(p)).collect(),
                None => vec![None],
            };
            for nprobe in probes {
                let params = SearchParams {
                    k: args.k,
                    nprobe: nprobe.unwrap_or(1),
                    rerank: if index_spec.stores_vectors() {
                        args.rerank
                    } else {
                        0
                    },
                };
                let runs = args.runs.unwrap_or(3).max(1);
                let mut best = f64::INFINITY;
                let mut ids = Vec::new();
                for _ in 0..runs {
                    let start = Instant::now();
                    ids = with_threads(threads, || index.search(queries, &params))?.map_err(err)?;
                    best = best.min(start.elapsed().as_secs_f64());
                }
                let ids: Vec<Vec<u64>> = ids
                    .into_iter()
                    .map(|l| l.into_iter().map(|n| n.id).collect())
                    .collect();
                let (r1, r10, r100, map) = metrics(&ranks_of(&ids, &truth[..nq]));
                rows.push(RetrievalRow {
                    spec: format!("{},{}", enc.spec_token(), index.spec()),
                    search: "index",
                    k: args.k,
                    nprobe,
                    queries: nq,
                    threads,
                    r_at_1: r1,
                    r_at_10: r10,
                    r_at_100: r100,
                    map,
                    qps: nq as f64 / best.max(1e-9),
                    bytes_per_image: stored_bytes_per_image(&index_spec, d),
                    encode_descriptors_per_s: encode_rate,
                    encode_cold_descriptors_per_s: encode_cold_rate,
                    train_s,
                    add_s,
                });
            }
        }
        print_rows(&rows, args.json);
    }
    Ok(())
}

/// Bytes stored per image by an index spec (codes, not ids or model).
fn stored_bytes_per_image(spec: &IndexSpec, d: usize) -> usize {
    let inner = spec.inner_dim(d);
    let code = match spec.quantizer {
        vladdb::codecs::spec::QuantizerSpec::Flat => inner * 4,
        vladdb::codecs::spec::QuantizerSpec::Pq { m, nbits } => (m * nbits as usize).div_ceil(8),
        vladdb::codecs::spec::QuantizerSpec::FastScan { m } => m.div_ceil(2),
    };
    code + match spec.refine {
        Some(vladdb::codecs::spec::RefineSpec::Flat) => inner * 4,
        Some(vladdb::codecs::spec::RefineSpec::F16) => inner * 2,
        None => 0,
    }
}

fn print_rows(rows: &[RetrievalRow], json: bool) {
    if json {
        for r in rows {
            if let Ok(line) = serde_json::to_string(r) {
                println!("{line}");
            }
        }
        return;
    }
    println!(
        "{:<32} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>10} {:>8} {:>12}",
        "spec", "search", "nprobe", "R@1", "R@10", "R@100", "mAP", "qps", "B/image", "descr/s"
    );
    for r in rows {
        println!(
            "{:<32} {:>6} {:>6} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>10.1} {:>8} {:>12.0}",
            r.spec,
            r.search,
            r.nprobe.map_or("-".into(), |p| p.to_string()),
            r.r_at_1,
            r.r_at_10,
            r.r_at_100,
            r.map,
            r.qps,
            r.bytes_per_image,
            r.encode_descriptors_per_s
        );
    }
}
