//! Recall regression on the bundled real sample (`data/sample`, cut from debian-sift):
//! exact search must match the ground truth exactly, and IVF-PQ built through the engine
//! (fixed seeds) must keep its measured recall. A drop below these floors is a bug.

use std::path::PathBuf;

use vladdb::Database;
use vladdb::codecs::exact;
use vladdb::codecs::index::SearchParams;
use vladdb::vecfile::{VectorFile, read_ivecs};

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../data/sample")
        .join(name)
}

/// Fraction of queries whose true nearest neighbour is in the first `r` results.
fn recall_1_at(results: &[Vec<u64>], truth: &[Vec<u64>], r: usize) -> f64 {
    let hits = results
        .iter()
        .zip(truth)
        .filter(|(res, t)| res.iter().take(r).any(|id| Some(id) == t.first()))
        .count();
    hits as f64 / results.len() as f64
}

fn load() -> (VectorFile, VectorFile, Vec<f32>, Vec<Vec<u64>>) {
    let base = VectorFile::open(sample("base.bvecs")).expect("sample base");
    let learn = VectorFile::open(sample("learn.bvecs")).expect("sample learn");
    let query = VectorFile::open(sample("query.bvecs")).expect("sample queries");
    let queries = query.vectors().to_f32_vec(0, query.rows());
    let gt = read_ivecs(sample("groundtruth.ivecs")).expect("sample truth");
    let truth = gt
        .iter_rows()
        .map(|row| row.iter().map(|&i| i as u64).collect())
        .collect();
    (base, learn, queries, truth)
}

#[test]
fn exact_search_reproduces_the_ground_truth() {
    let (base, _, queries, truth) = load();
    let got = exact::knn_l2(&queries, &base.vectors(), 100).expect("exact search");
    for (q, (res, t)) in got.iter().zip(&truth).enumerate() {
        let ids: Vec<u64> = res.iter().map(|n| n.id).collect();
        assert_eq!(ids[0], t[0], "query {q}: nearest neighbour differs");
        let overlap = ids.iter().filter(|id| t.contains(id)).count();
        assert!(
            overlap >= 99,
            "query {q}: only {overlap} of the true top-100"
        );
    }
}

#[test]
fn ivf_pq_through_the_engine_keeps_its_recall() {
    let (base, learn, queries, truth) = load();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::create(dir.path().join("db"), "IVF64,PQ16", 128).expect("create");
    db.train(&learn.vectors()).expect("train");
    let ids: Vec<u64> = (0..base.rows() as u64).collect();
    db.add(&base.vectors(), &ids, None).expect("add");
    db.commit().expect("commit");
    let search = |nprobe: usize| -> Vec<Vec<u64>> {
        db.search_batch(
            &queries,
            &SearchParams {
                k: 100,
                nprobe,
                rerank: 0,
            },
        )
        .expect("search")
        .into_iter()
        .map(|hits| hits.into_iter().map(|h| h.id).collect())
        .collect()
    };
    let r1 = search(1);
    let r16 = search(16);
    let (a, b, c) = (
        recall_1_at(&r1, &truth, 10),
        recall_1_at(&r16, &truth, 10),
        recall_1_at(&r16, &truth, 100),
    );
    eprintln!(
        "IVF64,PQ16 on the sample: 1-recall@10 nprobe 1 = {a:.3}, nprobe 16 = {b:.3}; 1-recall@100 nprobe 16 = {c:.3}"
    );
    // Floors: measured 0.970 and 0.995 when this test was written (fixed seeds), minus 0.03.
    assert!(
        b >= FLOOR_R10_NPROBE16,
        "1-recall@10 at nprobe 16 fell to {b:.3}"
    );
    assert!(
        c >= FLOOR_R100_NPROBE16,
        "1-recall@100 at nprobe 16 fell to {c:.3}"
    );
    assert!(b > a, "probing more lists must not lose recall");
}

const FLOOR_R10_NPROBE16: f64 = 0.94;
const FLOOR_R100_NPROBE16: f64 = 0.965;
