//! Query execution over a snapshot: prepare the query once (transform, coarse probe,
//! tables), scan the probed lists of every segment and buffer chunk into one top-k (rows
//! deleted in a part are filtered as they would enter it), optionally re-rank the best
//! `k × rerank` candidates exactly with the stored vectors, and attach names.

use std::collections::HashSet;
use std::sync::Arc;

use rayon::prelude::*;
use vladdb_codecs::index::{IndexModel, QueryContext, SearchParams};
use vladdb_codecs::{CodecError, TopK};

use super::part::{Exclusions, PartView};
use super::{Database, Snapshot};
use crate::error::{Error, Result};

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The caller's id.
    pub id: u64,
    /// Squared L2 distance (after the spec's PCA, if any; exact after re-ranking).
    pub distance: f32,
    /// The stored name, when the row has one.
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
            return Err(Error::InvalidArgument(
                "the database is not trained: run train first".into(),
            ));
        };
        self.check_search(queries, params, &model)?;
        let nq = queries.len() / self.index_dim;
        if nq == 0 {
            return Ok(Vec::new());
        }
        // Blocks of queries: the coarse quantizer runs once per block as one blocked
        // matrix product; a query context (tables, scratch) is reused within a block.
        let block_rows = (nq / (4 * rayon::current_num_threads())).clamp(8, QUERY_BLOCK);
        let nprobe = params.nprobe.clamp(1, model.nlist());
        let inner = model.inner_dim();
        let refine = self.spec.stores_vectors();
        let blocks: Vec<Result<Vec<Vec<Hit>>>> = queries
            .par_chunks(block_rows * self.index_dim)
            .map(|block| {
                let (xq, probes) = model.transform_and_probe(block, nprobe)?;
                let mut ctx = QueryContext::default();
                let mut out = Vec::with_capacity(probes.len());
                for (qi, p) in probes.into_iter().enumerate() {
                    model.reset_context(&mut ctx, &xq[qi * inner..(qi + 1) * inner], p)?;
                    out.push(search_one(&snap, &model, &mut ctx, params, refine)?);
                }
                Ok(out)
            })
            .collect();
        let mut results = Vec::with_capacity(nq);
        for b in blocks {
            results.extend(b?);
        }
        Ok(results)
    }

    /// Encodes each image's descriptor set and searches with it (descriptor-set
    /// databases: specs starting with `VLAD`, `FV` or `BOF`).
    pub fn search_sets(
        &self,
        sets: &vladdb_codecs::encode::DescriptorSets<'_>,
        params: &SearchParams,
    ) -> Result<Vec<Vec<Hit>>> {
        let encoded = self.encode_sets(sets)?;
        self.search_batch(&encoded, params)
    }

    fn check_search(
        &self,
        queries: &[f32],
        params: &SearchParams,
        model: &IndexModel,
    ) -> Result<()> {
        if !queries.len().is_multiple_of(self.index_dim) {
            return Err(Error::InvalidArgument(format!(
                "queries of dimension {} expected ({} values given)",
                self.index_dim,
                queries.len()
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

/// Queries searched together (their coarse distances in one blocked product).
const QUERY_BLOCK: usize = 256;

/// Scans every part for one prepared query (`ctx` holds the transformed query and its
/// probed lists).
fn search_one(
    snap: &Snapshot,
    model: &IndexModel,
    ctx: &mut QueryContext,
    params: &SearchParams,
    refine: bool,
) -> Result<Vec<Hit>> {
    let mut hits = if refine && params.rerank > 0 {
        search_reranked(snap, model, ctx, params)?
    } else {
        let mut top = TopK::new(params.k);
        for s in &snap.segments {
            top.set_exclusions(s.excluded().cloned());
            scan_part(model, ctx, s.view(), &mut top, None)?;
        }
        for c in &snap.buffer {
            top.set_exclusions((!c.deleted.is_empty()).then(|| c.deleted.clone()));
            scan_part(model, ctx, c.part.view(), &mut top, None)?;
        }
        top.set_exclusions(None);
        top.into_sorted()
            .into_iter()
            .map(|n| Hit {
                id: n.id,
                distance: n.distance,
                name: None,
            })
            .collect()
    };
    let has_names = snap.segments.iter().any(|s| s.view().names.is_some())
        || snap.buffer.iter().any(|c| c.part.names.is_some());
    if has_names {
        for h in &mut hits {
            if let Some((view, row)) = find_live(snap, h.id) {
                h.name = view.name(row).map(str::to_string);
            }
        }
    }
    Ok(hits)
}

/// Scans the probed lists of one part into `top`. With `rows`, the candidates pushed
/// are row numbers of the part (for re-ranking) instead of ids; `rows` is scratch.
fn scan_part(
    model: &IndexModel,
    ctx: &mut QueryContext,
    view: PartView<'_>,
    top: &mut TopK,
    mut rows: Option<&mut Vec<u64>>,
) -> Result<()> {
    let probes = ctx.probes().len();
    for i in 0..probes {
        let l = ctx.probes()[i].0 as usize;
        if let Some(next) = ctx.probes().get(i + 1) {
            model.prefetch_list(next.0 as usize, view.list(next.0 as usize).0);
        }
        let (codes, ids) = view.list(l);
        if ids.is_empty() {
            continue;
        }
        match rows.as_deref_mut() {
            Some(rows) => {
                let start = view.list_offsets[l];
                rows.clear();
                rows.extend(start..start + ids.len() as u64);
                model.scan_list(ctx, l, codes, rows, top)?;
            }
            None => model.scan_list(ctx, l, codes, ids, top)?,
        }
    }
    Ok(())
}

/// The re-rank path: each part's best `k × rerank` candidates by code distance, kept as
/// (part, row) so that no id lookup is needed, the global best of those re-scored with
/// the stored vectors in memory order, then the best `k` by exact distance.
fn search_reranked(
    snap: &Snapshot,
    model: &IndexModel,
    ctx: &mut QueryContext,
    params: &SearchParams,
) -> Result<Vec<Hit>> {
    let want = params.k.saturating_mul(params.rerank);
    let mut views: Vec<PartView<'_>> = Vec::with_capacity(snap.segments.len() + snap.buffer.len());
    let mut candidates: Vec<(f32, u64, usize, usize)> = Vec::new();
    let mut rows = Vec::new();
    let mut scan = |view: PartView<'_>, excluded: Option<Exclusions>, p: usize| -> Result<()> {
        let mut top = TopK::new(want);
        top.set_exclusions(excluded);
        scan_part(model, ctx, view, &mut top, Some(&mut rows))?;
        top.set_exclusions(None);
        for n in top.into_sorted() {
            let row = n.id as usize;
            candidates.push((n.distance, view.ids[row], p, row));
        }
        Ok(())
    };
    for s in &snap.segments {
        views.push(s.view());
        scan(s.view(), s.excluded_rows().cloned(), views.len() - 1)?;
    }
    for c in &snap.buffer {
        let view = c.part.view();
        let excluded = (!c.deleted.is_empty()).then(|| {
            Arc::new(
                c.deleted
                    .iter()
                    .filter_map(|&id| view.find_row(id).map(|r| r as u64))
                    .collect::<HashSet<u64>>(),
            )
        });
        views.push(view);
        scan(view, excluded, views.len() - 1)?;
    }
    candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    candidates.truncate(want);
    // Re-score in (part, row) order: the stored vectors are read front to back.
    candidates.sort_unstable_by_key(|c| (c.2, c.3));
    let q = ctx.query();
    let mut hits: Vec<Hit> = candidates
        .iter()
        .map(|&(approx, id, p, row)| Hit {
            id,
            distance: views[p].rerank_distance(row, q).unwrap_or(approx),
            name: None,
        })
        .collect();
    hits.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
    hits.truncate(params.k);
    Ok(hits)
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
