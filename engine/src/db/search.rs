//! Query execution over a snapshot: prepare the query once (transform, coarse probe,
//! tables), scan the probed lists of every segment and buffer chunk into one top-k (rows
//! deleted in a part are filtered as they would enter it), optionally re-rank the best
//! `k × rerank` candidates exactly with the stored vectors, and attach names.

use rayon::prelude::*;
use vladdb_codecs::index::{IndexModel, ListPass, QueryContext, SearchParams};
use vladdb_codecs::ivf::Probes;
use vladdb_codecs::{CodecError, TopK};

use super::part::{Exclusions, PartView};
use super::{Database, Snapshot};
use crate::error::{Error, Result};

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The caller's id.
    pub id: u64,
    /// Squared L2 distance (after the spec's PCA, if any; estimated from the codes unless
    /// re-ranked, then exact); never negative.
    pub distance: f32,
    /// The stored name, when the row has one (an empty name counts as none, so a row's
    /// name reads the same before and after a commit merges it with named rows).
    pub name: Option<String>,
}

impl Database {
    /// The `params.k` nearest stored vectors of one query.
    pub fn search(&self, query: &[f32], params: &SearchParams) -> Result<Vec<Hit>> {
        let mut out = self.search_batch(query, params)?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Searches many queries (contiguous rows of `dim`) on one snapshot, in parallel on
    /// the current rayon pool.
    pub fn search_batch(&self, queries: &[f32], params: &SearchParams) -> Result<Vec<Vec<Hit>>> {
        let snap = self.snapshot();
        let Some(model) = snap.model.clone() else {
            if self.trains_trivially() {
                // Nothing added yet (the first add installs the model): valid queries
                // find nothing; invalid ones get the errors they get later.
                self.check_search(queries, params, &self.trivial_model()?)?;
                return Ok(vec![Vec::new(); queries.len() / self.index_dim]);
            }
            return Err(Error::InvalidArgument(
                "the database is not trained: run train first".into(),
            ));
        };
        self.check_search(queries, params, &model)?;
        let nq = queries.len() / self.index_dim;
        if nq == 0 {
            return Ok(Vec::new());
        }
        let nprobe = params.nprobe.clamp(1, model.nlist());
        let (max_block, group) = if model.shares_list_terms() {
            (SHARED_BLOCK, SHARED_BLOCK)
        } else if self.spec.ivf.is_some() {
            // Queries scanned one by one (their lists rarely coincide): a group's contexts
            // are prepared together, so keep their tables (about 2.5 KB per probed list
            // for fast scan) within the caches.
            (QUERY_BLOCK, (GROUP_PROBES / nprobe).clamp(1, GROUP))
        } else {
            (QUERY_BLOCK, GROUP)
        };
        let block_rows = (nq / (4 * rayon::current_num_threads())).clamp(8, max_block);
        let inner = model.inner_dim();
        let refine = self.spec.stores_vectors();
        // Searches transformed queries (rows of `inner`) with their probed lists.
        let search_rows = |xq: &[f32], probes: &mut [Vec<(u32, f32)>]| -> Result<Vec<Vec<Hit>>> {
            // Query contexts (tables, tens of KB each) and top-k collectors are the worker
            // thread's, reused by every group and block it searches: fresh ones cost a page
            // fault per few queries.
            let (mut ctxs, mut tops) = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
            let mut out = Vec::with_capacity(probes.len());
            let mut first = 0;
            // Sub-batches share each pass over a list (see `search_group`).
            while first < xq.len() / inner {
                let count = (xq.len() / inner - first).min(group);
                ctxs.resize_with(count, QueryContext::default);
                for (ctx, qi) in ctxs.iter_mut().zip(first..first + count) {
                    let p = probes.get_mut(qi).map(std::mem::take).unwrap_or_default();
                    model.reset_context(ctx, &xq[qi * inner..(qi + 1) * inner], p)?;
                }
                out.extend(search_group(
                    &snap, &model, &mut ctxs, &mut tops, params, refine,
                )?);
                first += count;
            }
            SCRATCH.with(|s| *s.borrow_mut() = (ctxs, tops));
            Ok(out)
        };
        // Inverted-file queries: in the order of their nearest list.
        if nq > block_rows
            && let Some(rank) = model.list_rank()
        {
            return search_in_list_order(&model, rank, queries, nprobe, block_rows, &search_rows);
        }
        // Blocks of queries: the coarse quantizer runs once per block as one blocked
        // matrix product; a query context (tables, scratch) is reused within a block.
        let blocks: Vec<Result<Vec<Vec<Hit>>>> = queries
            .par_chunks(block_rows * self.index_dim)
            .map(|block| {
                let (xq, mut probes) = model.transform_and_probe(block, nprobe)?;
                search_rows(&xq, &mut probes)
            })
            .collect();
        let mut results = Vec::with_capacity(nq);
        for b in blocks {
            results.extend(b?);
        }
        Ok(results)
    }

    /// Encodes each image's descriptor set and searches with it (descriptor-set
    /// databases: specs starting with `VLAD`, `FV` or `BOF`). An image without
    /// descriptors matches nothing: its result list is empty (its all-zero code would be
    /// equally far from every image, as `add_sets` does not index such images either).
    pub fn search_sets(
        &self,
        sets: &vladdb_codecs::encode::DescriptorSets<'_>,
        params: &SearchParams,
    ) -> Result<Vec<Vec<Hit>>> {
        let encoded = self.encode_sets(sets)?;
        let d = self.index_dim;
        let searched: Vec<usize> = (0..sets.len()).filter(|&i| sets.count(i) > 0).collect();
        if searched.len() == sets.len() {
            return self.search_batch(&encoded, params);
        }
        let mut queries = Vec::with_capacity(searched.len() * d);
        for &i in &searched {
            queries.extend_from_slice(&encoded[i * d..(i + 1) * d]);
        }
        let found = self.search_batch(&queries, params)?;
        let mut out = vec![Vec::new(); sets.len()];
        for (i, hits) in searched.into_iter().zip(found) {
            out[i] = hits;
        }
        Ok(out)
    }

    fn check_search(
        &self,
        queries: &[f32],
        params: &SearchParams,
        model: &IndexModel,
    ) -> Result<()> {
        if !queries.len().is_multiple_of(self.index_dim) {
            return Err(Error::InvalidArgument(format!(
                "{} query values are not a whole number of {}-dimensional queries (the database's dimension)",
                queries.len(),
                self.index_dim
            )));
        }
        if params.k == 0 {
            return Err(Error::InvalidArgument("k must be at least 1".into()));
        }
        if self.spec.ivf.is_some() && (params.nprobe == 0 || params.nprobe > model.nlist()) {
            return Err(Error::InvalidArgument(format!(
                "nprobe must be between 1 and {} (the number of lists), got {}",
                model.nlist(),
                params.nprobe
            )));
        }
        if params.rerank > 0 && !self.spec.stores_vectors() {
            return Err(Error::InvalidArgument(
                "re-ranking needs stored vectors: use a spec ending in ,RFlat or ,RF16".into(),
            ));
        }
        if let Some(p) = queries.iter().position(|v| !v.is_finite()) {
            return Err(CodecError::NonFinite {
                row: p / self.index_dim,
            }
            .into());
        }
        Ok(())
    }
}

thread_local! {
    /// Each search thread's reusable query contexts and top-k collectors.
    static SCRATCH: std::cell::RefCell<(Vec<QueryContext>, Vec<TopK>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Searches transformed queries (rows of the model's inner dimension) with their probed
/// lists, returning each one's hits.
type SearchRows<'a> = dyn Fn(&[f32], &mut [Vec<(u32, f32)>]) -> Result<Vec<Vec<Hit>>> + Sync + 'a;

/// A batch of inverted-file queries searched in the [`IndexModel::list_rank`] order of
/// their nearest list rather than as given: queries near each other probe mostly the same
/// lists, so consecutive queries find those lists' codes, ids, stored vectors and tables
/// still in the caches, and a group sharing list passes (IVF-PQ) shares more of them
/// (debian-sift, paired runs: `IVF4096,PQ32x4fs` nprobe 16 1.35× with query-by-query
/// scans of short lists, re-rank 8 1.27×, `IVF4096,PQ16` nprobe 16 ~1.1×). Each query's
/// own search (its lists, nearest first, its top k) is unchanged, and so are its hits;
/// they are returned in the input order.
fn search_in_list_order(
    model: &IndexModel,
    rank: &[u32],
    queries: &[f32],
    nprobe: usize,
    block_rows: usize,
    search_rows: &SearchRows<'_>,
) -> Result<Vec<Vec<Hit>>> {
    let (dim, inner) = (model.dim(), model.inner_dim());
    let mut probed: Vec<(Vec<f32>, Probes)> = queries
        .par_chunks(block_rows * dim)
        .map(|block| model.transform_and_probe(block, nprobe))
        .collect::<std::result::Result<_, _>>()?;
    let nq = queries.len() / dim;
    // Query q is row q % block_rows of block q / block_rows.
    let first_list = |q: usize| {
        probed[q / block_rows].1[q % block_rows]
            .first()
            .map(|p| p.0)
    };
    let mut order: Vec<usize> = (0..nq).collect();
    order.sort_by_key(|&q| (first_list(q).and_then(|l| rank.get(l as usize)), q));
    // Each block of that order gathers its own queries and probes (no whole-batch copy:
    // at 960-D a batch of 20,000 queries would be two more 77 MB buffers to fault in).
    let mut sorted_probes: Probes = Vec::with_capacity(nq);
    for &q in &order {
        sorted_probes.push(std::mem::take(
            &mut probed[q / block_rows].1[q % block_rows],
        ));
    }
    let probed = &probed;
    let found: Vec<Result<Vec<Vec<Hit>>>> = order
        .par_chunks(block_rows)
        .zip(sorted_probes.par_chunks_mut(block_rows))
        .map(|(qs, p)| {
            let mut x = Vec::with_capacity(qs.len() * inner);
            for &q in qs {
                let r = q % block_rows;
                x.extend_from_slice(&probed[q / block_rows].0[r * inner..(r + 1) * inner]);
            }
            search_rows(&x, p)
        })
        .collect();
    let mut results: Vec<Vec<Hit>> = vec![Vec::new(); order.len()];
    let mut positions = order.iter();
    for hits in found {
        for (h, &q) in hits?.into_iter().zip(positions.by_ref()) {
            results[q] = h;
        }
    }
    Ok(results)
}

/// Queries searched together (their coarse distances in one blocked product).
const QUERY_BLOCK: usize = 256;

/// Queries whose scans are interleaved list by list: a list (or a chunk of a long list)
/// probed by several of them is read from memory once for all.
const GROUP: usize = 32;

/// Probed lists per group when an inverted-file index is scanned query by query.
const GROUP_PROBES: usize = 256;

/// Queries per block and group when the model shares list terms between the queries
/// that scan a list (IVF-PQ, see `ListPass`): the larger the group, the more queries per
/// list share the term.
const SHARED_BLOCK: usize = 1024;

/// Without shared list passes, groups scan list-major only when their probed lists hold
/// more than this many rows on average (an exhaustive index is one list of every row).
const LIST_MAJOR_MIN_ROWS: usize = 2_048;

/// Long lists (an exhaustive index is one list) are scanned in chunks of this many rows,
/// each chunk by every query of the group before the next, so that it stays in cache.
/// A multiple of every layout's block size.
const CHUNK_ROWS: usize = 16_384;

/// Scans every part for a group of prepared queries (each `ctx` holds a transformed
/// query and its probed lists) and returns their hits. `tops` are the caller's reusable
/// collectors (reset here, one per query).
fn search_group(
    snap: &Snapshot,
    model: &IndexModel,
    ctxs: &mut [QueryContext],
    tops: &mut Vec<TopK>,
    params: &SearchParams,
    refine: bool,
) -> Result<Vec<Vec<Hit>>> {
    let want = if refine && params.rerank > 0 {
        params.k.saturating_mul(params.rerank)
    } else {
        params.k
    };
    tops.resize_with(ctxs.len(), || TopK::new(want));
    let tops = &mut tops[..ctxs.len()];
    let mut results = if refine && params.rerank > 0 {
        search_reranked(snap, model, ctxs, tops, params)?
    } else {
        tops.iter_mut().for_each(|t| t.reset(want));
        for s in &snap.segments {
            for t in tops.iter_mut() {
                t.set_exclusions(s.excluded().cloned());
            }
            scan_part(model, ctxs, s.view(), tops, false)?;
        }
        for c in &snap.buffer {
            let excluded = (!c.deleted.is_empty()).then(|| c.deleted.clone());
            for t in tops.iter_mut() {
                t.set_exclusions(excluded.clone());
            }
            scan_part(model, ctxs, c.part.view(), tops, false)?;
        }
        tops.iter_mut()
            .map(|top| {
                top.set_exclusions(None);
                top.sorted()
                    .iter()
                    .map(|n| Hit {
                        id: n.id,
                        // ADC's estimate sums precomputed terms and can round below
                        // zero; a squared distance cannot be negative (the order was
                        // settled before).
                        distance: n.distance.max(0.0),
                        name: None,
                    })
                    .collect()
            })
            .collect()
    };
    let has_names = snap.segments.iter().any(|s| s.view().names.is_some())
        || snap.buffer.iter().any(|c| c.part.names.is_some());
    if has_names {
        for h in results.iter_mut().flatten() {
            if let Some((view, row)) = find_live(snap, h.id) {
                h.name = view.name(row).map(str::to_string);
            }
        }
    }
    Ok(results)
}

/// Scans one part for a group of queries, list-major: the (list, query) pairs of the
/// group's probes are visited in list order, long lists chunk by chunk, so each piece of
/// codes is read once for every query that probes it. With `rows`, candidates are pushed
/// as row numbers of the part (for re-ranking) instead of ids.
fn scan_part(
    model: &IndexModel,
    ctxs: &mut [QueryContext],
    view: PartView<'_>,
    tops: &mut [TopK],
    rows: bool,
) -> Result<()> {
    // (list, query) pairs in query order, each query's lists nearest first.
    let by_query: Vec<(u32, u32)> = ctxs
        .iter()
        .enumerate()
        .flat_map(|(q, ctx)| ctx.probes().iter().map(move |p| (p.0, q as u32)))
        .collect();
    let mut pairs = by_query.clone();
    pairs.sort_unstable();
    // List-major order (and shared list passes) pay once a list is scanned by more than
    // one query on average, and, without shared passes, only for long lists: short ones
    // stay in cache from one query to the next anyway (a batch visits its queries in the
    // order of their nearest lists, see `search_in_list_order`), and query by query each
    // query scans its lists nearest first, which keeps its top-k threshold tight.
    // (debian-sift IVF4096,PQ32x4fs, nprobe 16, lists of ~250 rows: 1.3x the QPS of
    // list-major order for the same hits.)
    let distinct: Vec<usize> = pairs
        .chunk_by(|a, b| a.0 == b.0)
        .map(|run| run[0].0 as usize)
        .collect();
    let long_lists = || {
        let rows: usize = distinct.iter().map(|&l| view.list(l).1.len()).sum();
        rows > LIST_MAJOR_MIN_ROWS * distinct.len()
    };
    if 2 * pairs.len() < 3 * distinct.len() || !(model.shares_list_terms() || long_lists()) {
        return scan_part_by_query(model, ctxs, &by_query, view, tops, rows);
    }
    let mut pass = model.shares_list_terms().then(ListPass::default);
    let layout = model.layout();
    let mut locators: Vec<u64> = Vec::new();
    let mut start = 0;
    while start < pairs.len() {
        let l = pairs[start].0 as usize;
        let end = start + pairs[start..].partition_point(|p| p.0 as usize == l);
        if let Some(next) = pairs.get(end) {
            model.prefetch_list(next.0 as usize, view.list(next.0 as usize).0);
        }
        let (codes, ids) = view.list(l);
        let n = ids.len();
        let mut lo = 0;
        while lo < n {
            let hi = (lo + CHUNK_ROWS).min(n);
            let bytes_lo = layout.list_bytes(lo);
            let chunk_codes = &codes[bytes_lo..bytes_lo + layout.list_bytes(hi - lo)];
            let first = view.list_offsets[l] + lo as u64;
            let chunk_ids = candidate_keys(&ids[lo..hi], first, rows, &mut locators);
            if let Some(pass) = pass.as_mut() {
                model.begin_list_pass(pass, l)?;
            }
            for &(_, q) in &pairs[start..end] {
                let q = q as usize;
                match pass.as_mut() {
                    Some(pass) => model.scan_list_in_pass(
                        &mut ctxs[q],
                        pass,
                        l,
                        chunk_codes,
                        chunk_ids,
                        &mut tops[q],
                    )?,
                    None => {
                        model.scan_list(&mut ctxs[q], l, chunk_codes, chunk_ids, &mut tops[q])?
                    }
                }
            }
            lo = hi;
        }
        start = end;
    }
    Ok(())
}

/// What a scan pushes for the rows of `ids` (which start at row `first` of the part): the
/// ids, or with `rows` the row numbers themselves (written to `locators`).
fn candidate_keys<'a>(
    ids: &'a [u64],
    first: u64,
    rows: bool,
    locators: &'a mut Vec<u64>,
) -> &'a [u64] {
    if rows {
        locators.clear();
        locators.extend(first..first + ids.len() as u64);
        locators
    } else {
        ids
    }
}

/// [`scan_part`] in `order` (query by query, each query's lists nearest first), for groups whose
/// queries rarely share a list: list-major order then buys no reuse, while nearest-first
/// fills each top-k with good candidates early, so that its farther lists pass fewer
/// codes to it.
fn scan_part_by_query(
    model: &IndexModel,
    ctxs: &mut [QueryContext],
    order: &[(u32, u32)],
    view: PartView<'_>,
    tops: &mut [TopK],
    rows: bool,
) -> Result<()> {
    let mut locators: Vec<u64> = Vec::new();
    for (i, &(l, q)) in order.iter().enumerate() {
        let (l, q) = (l as usize, q as usize);
        if let Some(&(next, _)) = order.get(i + 1) {
            let next = next as usize;
            let (next_codes, next_ids) = view.list(next);
            model.prefetch_list(next, next_codes);
            if !rows {
                // Codes that pass the scan read their ids.
                vladdb_codecs::ivf::prefetch_slice(&next_ids[..next_ids.len().min(64)]);
            }
        }
        let (codes, ids) = view.list(l);
        let ids = candidate_keys(ids, view.list_offsets[l], rows, &mut locators);
        model.scan_list(&mut ctxs[q], l, codes, ids, &mut tops[q])?;
    }
    Ok(())
}

/// The re-rank path: each part's best `k × rerank` candidates by code distance, kept as
/// (part, row) so that no id lookup is needed, the global best of those re-scored with
/// the stored vectors in memory order, then the best `k` by exact distance.
fn search_reranked(
    snap: &Snapshot,
    model: &IndexModel,
    ctxs: &mut [QueryContext],
    tops: &mut [TopK],
    params: &SearchParams,
) -> Result<Vec<Vec<Hit>>> {
    let want = params.k.saturating_mul(params.rerank);
    let mut views: Vec<PartView<'_>> = Vec::with_capacity(snap.segments.len() + snap.buffer.len());
    // (code distance, id, part, row). With several parts the id breaks ties when the
    // parts' candidates are merged; with one part it is looked up only for the winners
    // (a random read per candidate otherwise).
    let several = snap.segments.len() + snap.buffer.len() > 1;
    let mut candidates: Vec<Vec<(f32, u64, usize, usize)>> = vec![Vec::new(); ctxs.len()];
    let mut scan = |view: PartView<'_>,
                    excluded: Option<Exclusions>,
                    p: usize,
                    ctxs: &mut [QueryContext]|
     -> Result<()> {
        for t in tops.iter_mut() {
            t.reset(want);
            t.set_exclusions(excluded.clone());
        }
        scan_part(model, ctxs, view, tops, true)?;
        for (top, out) in tops.iter_mut().zip(&mut candidates) {
            for n in top.best() {
                let row = n.id as usize;
                let id = if several { view.ids[row] } else { 0 };
                out.push((n.distance, id, p, row));
            }
        }
        Ok(())
    };
    for s in &snap.segments {
        views.push(s.view());
        scan(s.view(), s.excluded_rows().cloned(), views.len() - 1, ctxs)?;
    }
    for c in &snap.buffer {
        let view = c.part.view();
        let excluded = (!c.deleted_rows.is_empty()).then(|| c.deleted_rows.clone());
        views.push(view);
        scan(view, excluded, views.len() - 1, ctxs)?;
    }
    let mut results = Vec::with_capacity(ctxs.len());
    let order = |a: &Hit, b: &Hit| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id));
    for (mut cands, ctx) in candidates.into_iter().zip(ctxs.iter()) {
        if views.len() > 1 && cands.len() > want {
            // Several parts: the global best `want` by code distance.
            cands.select_nth_unstable_by(want - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            cands.truncate(want);
        }
        // Re-score with the rows a few candidates ahead already on their way into the
        // cache. (Sorting the candidates by row first bought no locality, since a few
        // hundred rows out of a million are far apart anyway, and cost 13% of the search.)
        let q = ctx.query();
        const AHEAD: usize = 16;
        for c in cands.iter().take(AHEAD) {
            views[c.2].prefetch_vector(c.3, q.len());
        }
        let mut scored: Vec<(f32, usize)> = Vec::with_capacity(cands.len());
        for (i, &(approx, _, p, row)) in cands.iter().enumerate() {
            if let Some(next) = cands.get(i + AHEAD) {
                views[next.2].prefetch_vector(next.3, q.len());
            }
            scored.push((views[p].rerank_distance(row, q).unwrap_or(approx), i));
        }
        if scored.len() > params.k {
            // Everything at or below the k-th exact distance: ties there are settled by
            // id below, so only these candidates need their ids.
            let kth = scored
                .select_nth_unstable_by(params.k - 1, |a, b| a.0.total_cmp(&b.0))
                .1
                .0;
            scored.retain(|s| s.0.total_cmp(&kth).is_le());
        }
        let mut hits: Vec<Hit> = scored
            .iter()
            .map(|&(distance, i)| {
                let (_, id, p, row) = cands[i];
                Hit {
                    id: if several { id } else { views[p].ids[row] },
                    distance,
                    name: None,
                }
            })
            .collect();
        hits.sort_unstable_by(order);
        hits.truncate(params.k);
        results.push(hits);
    }
    Ok(results)
}

/// The part and row holding live `id` (newest first).
fn find_live(snap: &Snapshot, id: u64) -> Option<(PartView<'_>, usize)> {
    for c in snap.buffer.iter().rev() {
        if c.deleted.contains(&id) {
            continue;
        }
        let v = c.part.view();
        if let Some(row) = v.find_row(id) {
            return Some((v, row));
        }
    }
    for s in snap.segments.iter().rev() {
        let v = s.view();
        if let Some(row) = v.find_row(id)
            && row < v.rows()
            && !s.is_deleted(row)
        {
            return Some((v, row));
        }
    }
    None
}
