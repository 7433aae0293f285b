//! End-to-end tests of the storage engine through its public API: every operation
//! survives a reopen, deleted ids are never returned, compaction keeps results identical,
//! readers run during writes and compaction, and a torn log tail is cut on recovery.

use std::sync::Arc;

use vladdb::codecs::VectorsRef;
use vladdb::codecs::index::SearchParams;
use vladdb::{Database, Error};
use vladdb_tests::{brute_force, clustered};

const DIM: usize = 16;

fn view(data: &[f32]) -> VectorsRef<'_> {
    VectorsRef::from_f32(data, DIM).expect("valid matrix")
}

fn ids(range: std::ops::Range<u64>) -> Vec<u64> {
    range.collect()
}

fn params(k: usize, nprobe: usize) -> SearchParams {
    SearchParams {
        k,
        nprobe,
        rerank: 0,
    }
}

fn search_ids(db: &Database, q: &[f32], p: &SearchParams) -> Vec<Vec<u64>> {
    db.search_batch(q, p)
        .expect("search")
        .into_iter()
        .map(|hits| hits.into_iter().map(|h| h.id).collect())
        .collect()
}

#[test]
fn every_operation_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let data = clustered(3000, DIM, 20, 1);
    let queries = clustered(20, DIM, 20, 2);
    let p = params(10, 8);
    {
        let db = Database::create(&path, "IVF16,Flat", DIM).expect("create");
        drop(db);
    }
    let db = Database::open(&path).expect("reopen after create");
    db.train(&view(&data)).expect("train");
    drop(db);
    let db = Database::open(&path).expect("reopen after train");
    assert!(db.is_trained());
    db.add(&view(&data[..1000 * DIM]), &ids(0..1000), None)
        .expect("add");
    let before_commit = search_ids(&db, &queries, &p);
    drop(db); // not committed: the log must bring the rows back
    let db = Database::open(&path).expect("reopen after add");
    assert_eq!(search_ids(&db, &queries, &p), before_commit);
    db.commit().expect("commit");
    db.add(&view(&data[1000 * DIM..]), &ids(1000..3000), None)
        .expect("add 2");
    db.commit().expect("commit 2");
    drop(db);
    let db = Database::open(&path).expect("reopen after commit");
    let stats = db.stats().expect("stats");
    assert_eq!((stats.vectors, stats.segments), (3000, 2));
    // IVF16,Flat probing all lists is exact.
    let all = params(10, 16);
    let got = search_ids(&db, &queries, &all);
    let all_ids = ids(0..3000);
    for (q, res) in queries.chunks_exact(DIM).zip(&got) {
        assert_eq!(res, &brute_force(&data, &all_ids, DIM, q, 10));
    }
    assert_eq!(db.delete(&ids(0..500)).expect("delete"), 500);
    drop(db);
    let db = Database::open(&path).expect("reopen after delete");
    assert_eq!(db.stats().expect("stats").vectors, 2500);
    db.compact().expect("compact");
    drop(db);
    let db = Database::open(&path).expect("reopen after compact");
    let stats = db.stats().expect("stats");
    assert_eq!((stats.vectors, stats.segments, stats.deleted), (2500, 1, 0));
    let live = &data[500 * DIM..];
    let live_ids = ids(500..3000);
    for (q, res) in queries
        .chunks_exact(DIM)
        .zip(search_ids(&db, &queries, &all))
    {
        assert_eq!(res, brute_force(live, &live_ids, DIM, q, 10));
    }
    Database::verify(&path).expect("verify");
}

#[test]
fn deleted_ids_are_never_returned_and_compaction_keeps_results() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let data = clustered(4000, DIM, 30, 3);
    let queries = clustered(50, DIM, 30, 4);
    let db = Database::create(&path, "IVF32,PQ8", DIM).expect("create");
    db.train(&view(&data)).expect("train");
    for part in 0..4u64 {
        let rows = &data[(part as usize * 1000) * DIM..((part as usize + 1) * 1000) * DIM];
        db.add(&view(rows), &ids(part * 1000..(part + 1) * 1000), None)
            .expect("add");
        db.commit().expect("commit");
    }
    assert_eq!(db.stats().expect("stats").segments, 4);
    let deleted: Vec<u64> = (0..4000).filter(|i| i % 3 == 0).collect();
    db.delete(&deleted).expect("delete");
    let p = params(50, 32);
    let before = search_ids(&db, &queries, &p);
    for res in &before {
        assert_eq!(res.len(), 50);
        assert!(res.iter().all(|id| id % 3 != 0), "a deleted id came back");
    }
    db.commit().expect("commit deletes");
    assert_eq!(search_ids(&db, &queries, &p), before);
    db.compact().expect("compact");
    assert_eq!(db.stats().expect("stats").segments, 1);
    assert_eq!(
        search_ids(&db, &queries, &p),
        before,
        "compaction changed results"
    );
    // Bad input leaves the database as it was.
    assert!(matches!(
        db.add(&view(&data[..DIM]), &[1], None),
        Err(Error::InvalidArgument(_))
    ));
    assert!(
        db.add(&view(&data[..2 * DIM]), &[7_000, 7_000], None)
            .is_err()
    );
    assert!(db.search_batch(&queries, &params(0, 4)).is_err());
    assert!(db.search_batch(&queries, &params(10, 0)).is_err());
    assert!(db.search_batch(&queries, &params(10, 33)).is_err());
    let mut nan = queries[..DIM].to_vec();
    nan[3] = f32::NAN;
    assert!(db.search_batch(&nan, &p).is_err());
    assert!(db.add(&view(&nan), &[9_000], None).is_err());
    assert_eq!(search_ids(&db, &queries, &p), before);
}

#[test]
fn readers_see_consistent_snapshots_during_add_and_compact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let data = clustered(6000, DIM, 30, 5);
    let queries = clustered(8, DIM, 30, 6);
    let db = Arc::new(Database::create(&path, "IVF16,Flat", DIM).expect("create"));
    db.train(&view(&data)).expect("train");
    db.add(&view(&data[..2000 * DIM]), &ids(0..2000), None)
        .expect("add");
    db.commit().expect("commit");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Readers that have finished a search (the writer's work can end before a busy
    // machine schedules them; every reader must have searched before they stop).
    let searched = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (db, stop, queries) = (db.clone(), stop.clone(), queries.clone());
            let searched = searched.clone();
            std::thread::spawn(move || {
                let mut searches = 0;
                while searches == 0 || !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let hits = db.search_batch(&queries, &params(10, 16)).expect("search");
                    for h in hits {
                        // Exhaustive IVF-Flat: always k results, sorted, no duplicates.
                        assert_eq!(h.len(), 10);
                        assert!(h.windows(2).all(|w| w[0].distance <= w[1].distance));
                        let mut seen: Vec<u64> = h.iter().map(|x| x.id).collect();
                        seen.sort_unstable();
                        seen.dedup();
                        assert_eq!(seen.len(), 10);
                    }
                    searches += 1;
                    if searches == 1 {
                        searched.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                searches
            })
        })
        .collect();
    for part in 1..3u64 {
        let rows = &data[(part as usize * 2000) * DIM..((part as usize + 1) * 2000) * DIM];
        db.add(&view(rows), &ids(part * 2000..(part + 1) * 2000), None)
            .expect("add");
        db.commit().expect("commit");
    }
    db.delete(&ids(0..1000)).expect("delete");
    db.compact().expect("compact");
    while searched.load(std::sync::atomic::Ordering::SeqCst) < 3 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for r in readers {
        r.join().expect("a reader saw an inconsistent result");
    }
    let stats = db.stats().expect("stats");
    assert_eq!((stats.vectors, stats.segments), (5000, 1));
}

#[test]
fn torn_log_tail_is_cut_and_committed_batches_survive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let data = clustered(1500, DIM, 10, 7);
    {
        let db = Database::create(&path, "IVF8,Flat", DIM).expect("create");
        db.train(&view(&data)).expect("train");
        db.add(&view(&data[..500 * DIM]), &ids(0..500), None)
            .expect("add 1");
        db.add(&view(&data[500 * DIM..1000 * DIM]), &ids(500..1000), None)
            .expect("add 2");
    }
    let log = std::fs::read_dir(&path)
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "log"))
        .expect("a log file");
    let len = std::fs::metadata(&log).expect("len").len();
    // Tear the second batch: cut a few bytes off the end.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .expect("open log");
    f.set_len(len - 7).expect("truncate");
    drop(f);
    let db = Database::open(&path).expect("recover");
    assert_eq!(
        db.stats().expect("stats").vectors,
        500,
        "only the whole first batch survives"
    );
    db.add(&view(&data[1000 * DIM..]), &ids(1000..1500), None)
        .expect("add after recovery");
    drop(db);
    let db = Database::open(&path).expect("reopen");
    assert_eq!(db.stats().expect("stats").vectors, 1000);
    Database::verify(&path).expect("verify");
}

#[test]
fn a_second_writer_is_refused_and_bad_directories_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let _db = Database::create(&path, "Flat", DIM).expect("create");
    assert!(
        Database::open(&path).is_err(),
        "second writer must be refused"
    );
    assert!(Database::open_read_only(&path).is_ok());
    assert!(Database::open(dir.path().join("nothing")).is_err());
    assert!(
        Database::create(&path, "Flat", DIM).is_err(),
        "create over a database"
    );
    assert!(Database::create(dir.path().join("x"), "IVF0,PQ3", DIM).is_err());
}

#[test]
fn descriptor_set_database_trains_adds_searches_and_reopens() {
    use vladdb::codecs::encode::{DescriptorSets, encode_sets, parse_encoder};
    use vladdb::codecs::kmeans::KMeansParams;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    // 80 images of 12..=31 descriptors each (one image empty), drawn from 40 visual words.
    let words = clustered(40, DIM, 40, 11);
    let mut rng = vladdb_tests::Rng::new(12);
    let mut descriptors = Vec::new();
    let mut offsets = vec![0u64];
    for image in 0..80 {
        let n = if image == 7 {
            0
        } else {
            12 + (rng.next_u64() % 20) as usize
        };
        for _ in 0..n {
            let w = (rng.next_u64() % 40) as usize;
            for d in 0..DIM {
                descriptors.push((words[w * DIM + d] + (rng.unit() - 0.5) * 4.0).max(0.0));
            }
        }
        offsets.push((descriptors.len() / DIM) as u64);
    }
    let sets = DescriptorSets::new(view(&descriptors), &offsets).expect("sets");
    let names: Vec<String> = (0..80).map(|i| format!("image-{i}.png")).collect();
    let p = params(3, 1);
    // `_lcs` also stores per-word rotations in the model file, and FV its descriptor
    // rotation: the reopened database must encode queries exactly as the one that trained.
    let mut plain: Option<Vec<f32>> = None;
    for spec in ["VLAD8,Flat", "VLAD8_lcs,Flat", "FV4_nopca,Flat", "FV4,Flat"] {
        if spec.starts_with("FV4_nopca") {
            plain = None;
        }
        let path = path.join(spec);
        let before;
        {
            let db = Database::create(&path, spec, DIM).expect("create");
            assert!(db.has_encoder());
            assert_eq!(db.index_dim(), 8 * DIM);
            assert!(
                db.train(&view(&descriptors)).is_err(),
                "vectors cannot train an encoder spec"
            );
            db.train_sets(&sets).expect("train on sets");
            db.add_sets(&sets, &ids(0..80), Some(&names))
                .expect("add sets");
            db.commit().expect("commit");
            before = (
                db.encode_sets(&sets).expect("encode"),
                db.search_sets(&sets, &p).expect("search sets"),
            );
        }
        // Everything the encoder learned reached the model file: the database encodes
        // like the encoder trained in memory with the engine's training seed.
        let token = spec.split(',').next().expect("encoder token");
        let direct = parse_encoder(token)
            .expect("parse")
            .expect("an encoder token")
            .train(&sets, KMeansParams::default().seed)
            .expect("train in memory");
        assert_eq!(
            encode_sets(direct.as_ref(), &sets).expect("encode").0,
            before.0,
            "{spec}: the stored encoder differs from the trained one"
        );
        let db = Database::open(&path).expect("reopen");
        let hits = db.search_sets(&sets, &p).expect("search sets");
        assert_eq!(
            db.encode_sets(&sets).expect("encode"),
            before.0,
            "{spec}: encodings changed"
        );
        assert_eq!(hits, before.1, "{spec}: results changed on reopen");
        // Same seed: the rotations make `_lcs` (and FV's descriptor PCA) differ.
        match &plain {
            None => plain = Some(before.0.clone()),
            Some(p) => assert_ne!(p, &before.0, "{spec}: the rotations were lost"),
        }
        for (i, h) in hits.iter().enumerate() {
            if i == 7 {
                assert!(
                    h.is_empty(),
                    "{spec}: an image without descriptors matched {h:?}"
                );
                continue;
            }
            assert_eq!(
                h[0].id, i as u64,
                "{spec}: image {i} should find itself first"
            );
            assert_eq!(h[0].name.as_deref(), Some(names[i].as_str()));
        }
        Database::verify(&path).expect("verify");
    }
}

/// Random images of 12..=31 descriptors drawn around `words` (40 visual words); images
/// listed in `empty` get none. Returns the descriptors and the offsets.
fn image_sets(words: &[f32], images: usize, empty: &[usize], seed: u64) -> (Vec<f32>, Vec<u64>) {
    let mut rng = vladdb_tests::Rng::new(seed);
    let mut descriptors = Vec::new();
    let mut offsets = vec![0u64];
    for image in 0..images {
        let n = 12 + (rng.next_u64() % 20) as usize;
        for _ in 0..n {
            let w = (rng.next_u64() % 40) as usize;
            for d in 0..DIM {
                let x = (words[w * DIM + d] + (rng.unit() - 0.5) * 4.0).max(0.0);
                if !empty.contains(&image) {
                    descriptors.push(x);
                }
            }
        }
        offsets.push((descriptors.len() / DIM) as u64);
    }
    (descriptors, offsets)
}

#[test]
fn images_without_descriptors_take_no_part_in_the_index_training() {
    use vladdb::codecs::encode::DescriptorSets;
    let dir = tempfile::tempdir().expect("tempdir");
    let words = clustered(40, DIM, 40, 31);
    // The same 60 images, once with 30 empty images interleaved and once without them:
    // the encoder sees the same descriptors, so the PCA (and everything after it) must
    // come out the same, and so must every distance.
    let empty: Vec<usize> = (0..90).filter(|i| i % 3 == 1).collect();
    let (with_desc, with_offsets) = image_sets(&words, 90, &empty, 32);
    let with = DescriptorSets::new(view(&with_desc), &with_offsets).expect("sets");
    let kept: Vec<usize> = (0..90).filter(|i| !empty.contains(i)).collect();
    let mut without_offsets = vec![0u64];
    for &i in &kept {
        let n = with_offsets[i + 1] - with_offsets[i];
        without_offsets.push(without_offsets.last().copied().unwrap_or(0) + n);
    }
    let without = DescriptorSets::new(view(&with_desc), &without_offsets).expect("sets");
    let kept_ids: Vec<u64> = kept.iter().map(|&i| i as u64).collect();
    let p = params(5, 1);
    let mut results = Vec::new();
    for (name, sets, image_ids) in [
        ("with", &with, ids(0..90)),
        ("without", &without, kept_ids.clone()),
    ] {
        let db = Database::create(dir.path().join(name), "VLAD8,PCA24,Flat", DIM).expect("create");
        db.train_sets(sets).expect("train on sets");
        db.add_sets(sets, &image_ids, None).expect("add sets");
        db.commit().expect("commit");
        results.push(db.search_sets(&without, &p).expect("search"));
    }
    assert_eq!(results[0].len(), kept.len());
    for (i, (a, b)) in results[0].iter().zip(&results[1]).enumerate() {
        assert_eq!(
            a, b,
            "query image {i}: the empty images changed the trained PCA"
        );
        assert_eq!(a[0].id, kept_ids[i], "query image {i} should find itself");
    }
}

#[test]
fn rerank_with_stored_vectors_gives_exact_distances() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let data = clustered(1000, DIM, 10, 21);
    let queries = clustered(10, DIM, 10, 22);
    let db = Database::create(&path, "IVF4,PQ4,RFlat", DIM).expect("create");
    db.train(&view(&data)).expect("train");
    db.add(&view(&data), &ids(0..1000), None).expect("add");
    db.commit().expect("commit");
    // All lists probed and every row a candidate: re-ranking makes the result exact.
    let p = SearchParams {
        k: 5,
        nprobe: 4,
        rerank: 200,
    };
    let all = ids(0..1000);
    for (q, hits) in queries
        .chunks_exact(DIM)
        .zip(db.search_batch(&queries, &p).expect("search"))
    {
        let got: Vec<u64> = hits.iter().map(|h| h.id).collect();
        assert_eq!(got, brute_force(&data, &all, DIM, q, 5));
    }
    // Without stored vectors a re-rank factor is an error, not silently ignored.
    let plain = Database::create(dir.path().join("plain"), "IVF4,PQ4", DIM).expect("create");
    plain.train(&view(&data)).expect("train");
    assert!(plain.search_batch(&queries, &p).is_err());
}

/// `Flat` has nothing to learn: a new database searches (finding nothing) and takes adds
/// without `train`, and a later `train` is a harmless no-op; specs that learn still
/// refuse both.
#[test]
fn flat_needs_no_training() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let rows = clustered(300, DIM, 5, 21);
    let all_ids = ids(0..300);
    {
        let db = Database::create(&path, "Flat,RFlat", DIM).expect("create");
        let empty = db
            .search_batch(&rows[..2 * DIM], &params(3, 1))
            .expect("search");
        assert_eq!(empty, vec![Vec::new(), Vec::new()]);
        // Before the first add, bad queries get the errors they get after it.
        let mut nan = rows[..DIM].to_vec();
        nan[0] = f32::NAN;
        assert!(db.search(&nan, &params(3, 1)).is_err());
        assert!(db.search(&rows[..DIM], &params(0, 1)).is_err());
        assert!(db.add(&view(&rows[..DIM]), &[0, 1], None).is_err());
        let mut nan = rows[..DIM].to_vec();
        nan[3] = f32::NAN;
        assert!(db.add(&view(&nan), &[0], None).is_err());
        assert!(
            !db.stats().expect("stats").trained,
            "a failed first add changed the database"
        );
        db.add(&view(&rows), &all_ids, None)
            .expect("add without train");
        db.train(&view(&rows[..10 * DIM]))
            .expect("train after add: no-op");
        db.commit().expect("commit");
    }
    let db = Database::open(&path).expect("reopen");
    for q in [0usize, 77, 299] {
        let query = &rows[q * DIM..(q + 1) * DIM];
        let want = brute_force(&rows, &all_ids, DIM, query, 5);
        assert_eq!(search_ids(&db, query, &params(5, 1)), vec![want]);
    }
    Database::verify(&path).expect("verify");
    let learned = Database::create(dir.path().join("ivf"), "IVF4,Flat", DIM).expect("create");
    assert!(learned.add(&view(&rows), &all_ids, None).is_err());
    assert!(learned.search(&rows[..DIM], &params(1, 1)).is_err());
}

/// Adds that fill the buffer to `flush_rows` commit, and then apply the compaction policy
/// exactly as `commit` does (a write-only workload must not pile up segments).
#[test]
fn automatic_flushes_apply_the_compaction_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = vladdb::Options {
        flush_rows: 1,
        max_segments: 2,
        max_deleted_fraction: 0.25,
        ..vladdb::Options::default()
    };
    let db = Database::create_with(dir.path().join("db"), "Flat", DIM, opts).expect("create");
    let rows = clustered(30, DIM, 3, 31);
    for i in 0..30u64 {
        let r = i as usize;
        db.add(&view(&rows[r * DIM..(r + 1) * DIM]), &[i], None)
            .expect("add");
        let segments = db.stats().expect("stats").segments;
        assert!(segments <= 2, "{segments} segments after add {i}");
    }
    assert_eq!(db.stats().expect("stats").vectors, 30);
}

/// A row's name reads the same before and after commits and compactions merge it with
/// rows of other names (an empty name is no name), and huge `k` is not an overflow.
#[test]
fn names_survive_merges_and_huge_k_is_fine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::create(dir.path().join("db"), "Flat,RFlat", DIM).expect("create");
    let rows = clustered(6, DIM, 2, 41);
    let named: Vec<String> = ["a", "", "c"].iter().map(|s| s.to_string()).collect();
    db.add(&view(&rows[..3 * DIM]), &[1, 2, 3], Some(&named))
        .expect("add named");
    db.add(&view(&rows[3 * DIM..]), &[4, 5, 6], None)
        .expect("add unnamed");
    let names = |db: &Database| -> Vec<(u64, Option<String>)> {
        let mut hits = db
            .search(&rows[..DIM], &params(usize::MAX, 1))
            .expect("search with k = usize::MAX");
        hits.sort_by_key(|h| h.id);
        hits.into_iter().map(|h| (h.id, h.name)).collect()
    };
    let before = names(&db);
    assert_eq!(before.len(), 6);
    assert_eq!(before[0].1.as_deref(), Some("a"));
    assert_eq!(before[1].1, None, "an empty name is no name");
    db.commit().expect("commit");
    assert_eq!(names(&db), before);
    db.delete(&[3]).expect("delete");
    db.compact().expect("compact");
    let after = names(&db);
    assert_eq!(after.len(), 5);
    assert!(after.iter().all(|h| before.contains(h)));
    let p = SearchParams {
        k: 3,
        nprobe: 1,
        rerank: usize::MAX,
    };
    assert_eq!(db.search(&rows[..DIM], &p).expect("huge rerank").len(), 3);
}
