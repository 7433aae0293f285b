//! End-to-end tests of the fast-scan layout (`PQ<m>x4fs`), half-precision re-ranking
//! (`RF16`) and `L2norm` through the engine: blocked codes survive buffer flushes,
//! reopen, deletes and compaction; fast-scan distances track the float ADC ones; re-ranking
//! with stored vectors makes results exact.

use vladdb::Database;
use vladdb::codecs::VectorsRef;
use vladdb::codecs::index::SearchParams;
use vladdb_tests::{brute_force, clustered};

const DIM: usize = 16;

fn view(data: &[f32]) -> VectorsRef<'_> {
    VectorsRef::from_f32(data, DIM).expect("valid matrix")
}

fn params(k: usize, nprobe: usize, rerank: usize) -> SearchParams {
    SearchParams { k, nprobe, rerank }
}

fn search(db: &Database, q: &[f32], p: &SearchParams) -> Vec<Vec<(u64, f32)>> {
    db.search_batch(q, p)
        .expect("search")
        .into_iter()
        .map(|hits| hits.into_iter().map(|h| (h.id, h.distance)).collect())
        .collect()
}

fn ids_of(results: &[Vec<(u64, f32)>]) -> Vec<Vec<u64>> {
    results
        .iter()
        .map(|r| r.iter().map(|h| h.0).collect())
        .collect()
}

#[test]
fn fast_scan_survives_flush_reopen_delete_and_compaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let data = clustered(3000, DIM, 12, 41);
    let queries = clustered(20, DIM, 12, 42);
    let p = params(10, 8, 0);
    let before;
    {
        let db = Database::create(&path, "IVF8,PQ8x4fs", DIM).expect("create");
        db.train(&view(&data)).expect("train");
        // Three adds of uneven size: blocks end mid-list in every part.
        for (lo, hi) in [(0, 1000), (1000, 1037), (1037, 3000)] {
            let ids: Vec<u64> = (lo as u64..hi as u64).collect();
            db.add(&view(&data[lo * DIM..hi * DIM]), &ids, None)
                .expect("add");
            if hi != 3000 {
                db.commit().expect("commit");
            }
        }
        // Unflushed rows (buffer) and flushed ones (segments) answer alike.
        before = search(&db, &queries, &p);
        db.commit().expect("commit");
        assert_eq!(search(&db, &queries, &p), before);
    }
    let db = Database::open(&path).expect("reopen");
    assert_eq!(search(&db, &queries, &p), before);
    let deleted: Vec<u64> = (0..3000).step_by(3).collect();
    db.delete(&deleted).expect("delete");
    let after_delete = search(&db, &queries, &p);
    for r in &after_delete {
        assert!(r.iter().all(|h| h.0 % 3 != 0), "a deleted id came back");
        assert_eq!(r.len(), 10);
    }
    db.commit().expect("commit");
    db.compact().expect("compact");
    assert_eq!(db.stats().expect("stats").segments, 1);
    assert_eq!(search(&db, &queries, &p), after_delete);
    Database::verify(&path).expect("verify");
}

#[test]
fn fast_scan_distances_track_float_adc() {
    // Same seeds and the same 4-bit codebooks: `PQ8x4` scores codes with float tables,
    // `PQ8x4fs` with u8 tables; their top lists must nearly agree.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = clustered(4000, DIM, 16, 51);
    let queries = clustered(50, DIM, 16, 52);
    let all: Vec<u64> = (0..4000).collect();
    let mut results = Vec::new();
    for spec in ["IVF4,PQ8x4", "IVF4,PQ8x4fs", "PQ8x4", "PQ8x4fs"] {
        let db = Database::create(dir.path().join(spec), spec, DIM).expect("create");
        db.train(&view(&data)).expect("train");
        db.add(&view(&data), &all, None).expect("add");
        results.push(search(&db, &queries, &params(20, 4, 0)));
    }
    for pair in results.chunks_exact(2) {
        let (float, fast) = (&pair[0], &pair[1]);
        let mut common = 0;
        for (a, b) in float.iter().zip(fast) {
            common += a.iter().filter(|h| b.iter().any(|g| g.0 == h.0)).count();
            // The quantized distance of the best hit is close to the float one.
            let (fa, fb) = (a[0].1, b[0].1);
            assert!(
                (fa - fb).abs() <= 0.05 * fa.abs().max(1.0),
                "best distance {fb} (fast scan) vs {fa} (float)"
            );
        }
        let overlap = common as f64 / (20.0 * queries.len() as f64 / DIM as f64);
        assert!(overlap >= 0.85, "top-20 overlap {overlap}");
    }
}

#[test]
fn rerank_with_f32_and_f16_vectors_is_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = clustered(2000, DIM, 10, 61);
    let queries = clustered(20, DIM, 10, 62);
    let all: Vec<u64> = (0..2000).collect();
    for spec in ["IVF4,PQ8x4fs,RFlat", "IVF4,PQ8x4fs,RF16", "IVF4,PQ4,RF16"] {
        let path = dir.path().join(spec);
        {
            let db = Database::create(&path, spec, DIM).expect("create");
            db.train(&view(&data)).expect("train");
            db.add(&view(&data[..1000 * DIM]), &all[..1000], None)
                .expect("add");
            db.commit().expect("commit");
            db.add(&view(&data[1000 * DIM..]), &all[1000..], None)
                .expect("add");
            db.delete(&[5, 1500]).expect("delete");
        }
        let db = Database::open(&path).expect("reopen");
        let live: Vec<u64> = all
            .iter()
            .copied()
            .filter(|&i| i != 5 && i != 1500)
            .collect();
        let live_rows: Vec<f32> = live
            .iter()
            .flat_map(|&i| data[i as usize * DIM..(i as usize + 1) * DIM].to_vec())
            .collect();
        // Every list probed, every row a candidate: re-ranking makes the top-5 exact.
        let got = search(&db, &queries, &params(5, 4, 400));
        let mut agree = 0;
        for (q, hits) in queries.chunks_exact(DIM).zip(&got) {
            let want = brute_force(&live_rows, &live, DIM, q, 5);
            let ids: Vec<u64> = hits.iter().map(|h| h.0).collect();
            agree += usize::from(ids == want);
            for &(id, dist) in hits {
                let row = &data[id as usize * DIM..(id as usize + 1) * DIM];
                let exact: f32 = row.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum();
                let tol = if spec.ends_with("RF16") { 2e-2 } else { 1e-4 };
                assert!(
                    (dist - exact).abs() <= tol * exact.max(1.0),
                    "{spec}: {dist} vs exact {exact}"
                );
            }
        }
        // Half precision may swap near-ties; f32 may not.
        let need = if spec.ends_with("RF16") { 18 } else { 20 };
        assert!(agree >= need, "{spec}: {agree}/20 queries exact");
        db.compact().expect("compact");
        assert_eq!(
            ids_of(&search(&db, &queries, &params(5, 4, 400))),
            ids_of(&got)
        );
    }
}

#[test]
fn l2norm_stage_normalizes_vectors_and_queries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = clustered(1000, DIM, 8, 71);
    let all: Vec<u64> = (0..1000).collect();
    for spec in ["L2norm,IVF4,Flat", "PCAR8,L2norm,IVF4,Flat"] {
        let db = Database::create(dir.path().join(spec), spec, DIM).expect("create");
        db.train(&view(&data)).expect("train");
        db.add(&view(&data), &all, None).expect("add");
        for i in [0usize, 17, 999] {
            // Without PCA a scaled vector has the same direction (L2norm makes search
            // scale-invariant); with PCA (which centres) use the vector itself.
            let scale = if spec.starts_with("PCA") { 1.0 } else { 3.0 };
            let q: Vec<f32> = data[i * DIM..(i + 1) * DIM]
                .iter()
                .map(|v| v * scale)
                .collect();
            let hits = db.search(&q, &params(50, 4, 0)).expect("search");
            assert_eq!(hits[0].id, i as u64, "{spec}");
            assert!(hits[0].distance < 1e-4, "{spec}: {}", hits[0].distance);
            // No squared distance between unit vectors exceeds 4.
            assert!(hits.iter().all(|h| h.distance <= 4.0 + 1e-4), "{spec}");
        }
    }
}

#[test]
fn batched_search_equals_one_query_at_a_time() {
    // Exhaustive indexes are one long list, scanned in chunks by groups of queries; IVF
    // lists are shared by queries of a group, and a batch of IVF queries is searched in
    // the locality order of their nearest lists (IVF64: lists in 2 groups). Either way
    // each query's answer must be what it gets alone, in the order asked.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = clustered(40_000, DIM, 30, 81);
    let queries = clustered(70, DIM, 30, 82);
    let all: Vec<u64> = (0..40_000).collect();
    for (spec, rerank) in [
        ("PQ8x4fs", 0),
        ("PQ4", 0),
        ("IVF4,PQ8x4fs,RFlat", 3),
        ("IVF64,PQ8x4fs", 0),
        ("IVF64,PQ8x4fs,RFlat", 3),
    ] {
        let db = Database::create(dir.path().join(spec), spec, DIM).expect("create");
        db.train(&view(&data[..10_000 * DIM])).expect("train");
        db.add(&view(&data[..25_000 * DIM]), &all[..25_000], None)
            .expect("add");
        db.commit().expect("commit");
        db.add(&view(&data[25_000 * DIM..]), &all[25_000..], None)
            .expect("add");
        db.delete(&[3, 30_000]).expect("delete");
        let p = params(10, 2, rerank);
        let batched = search(&db, &queries, &p);
        for (q, want) in queries.chunks_exact(DIM).zip(&batched) {
            assert_eq!(&search(&db, q, &p)[0], want, "{spec}");
            assert!(want.iter().all(|h| h.0 != 3 && h.0 != 30_000));
        }
    }
}

#[test]
fn shared_list_passes_match_one_query_at_a_time() {
    // IVF with 8-bit PQ and no stored tables: a batch whose queries share lists builds
    // each list's query-independent table term once (`ListPass`) and keeps each query's
    // own term in scaled half precision (at most 2^-11 of its largest entry off); a lone
    // query builds its residual tables directly in f32. Distances agree to about 1e-4
    // relative here, ids except at near-ties; also on data shifted far from the origin,
    // where the split's terms would grow with the offset and cancel if it were not taken
    // about the centroids' mean.
    for offset in [0.0f32, 1_000.0] {
        shared_passes_agree(offset);
    }
}

fn shared_passes_agree(offset: f32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let shift = |v: Vec<f32>| -> Vec<f32> { v.into_iter().map(|x| x + offset).collect() };
    let data = shift(clustered(20_000, DIM, 30, 91));
    let queries = shift(clustered(300, DIM, 30, 92));
    let all: Vec<u64> = (0..20_000).collect();
    let db = Database::create(dir.path().join("db"), "IVF8,PQ4", DIM).expect("create");
    db.train(&view(&data[..8_000 * DIM])).expect("train");
    // Two parts (a segment and a buffer chunk), each with a deleted row.
    db.add(&view(&data[..15_000 * DIM]), &all[..15_000], None)
        .expect("add");
    db.commit().expect("commit");
    db.add(&view(&data[15_000 * DIM..]), &all[15_000..], None)
        .expect("add");
    db.delete(&[5, 17, 16_000]).expect("delete");
    let p = params(10, 3, 0);
    let batched = search(&db, &queries, &p);
    let mut same = 0;
    for (q, got) in queries.chunks_exact(DIM).zip(&batched) {
        let alone = &search(&db, q, &p)[0];
        assert_eq!(got.len(), alone.len());
        for (a, b) in got.iter().zip(alone) {
            assert!(
                (a.1 - b.1).abs() <= 1e-3 * b.1.max(1.0),
                "offset {offset}: {a:?} vs {b:?}"
            );
        }
        assert!(got.iter().all(|h| ![5, 17, 16_000].contains(&h.0)));
        same += got
            .iter()
            .filter(|h| alone.iter().any(|a| a.0 == h.0))
            .count();
    }
    assert!(
        same >= 2_950,
        "offset {offset}: only {same} of 3,000 ids agree"
    );
}
