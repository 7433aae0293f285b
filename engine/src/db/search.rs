//! Query execution over a snapshot: prepare the query once (transform, coarse probe,
//! tables), scan the probed lists of every segment and buffer chunk into one top-k (rows
//! deleted in a part are filtered as they would enter it), optionally re-rank the best
//! `k × rerank` candidates exactly with the stored vectors, and attach names.

use rayon::prelude::*;
use vladdb_codecs::distance::l2_sqr;
use vladdb_codecs::index::{IndexModel, QueryContext, SearchParams};
use vladdb_codecs::{CodecError, TopK};

use super::part::PartView;
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
        let refine = self.spec.refine_flat;
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
        if params.rerank > 0 && !self.spec.refine_flat {
            return Err(Error::InvalidArgument(
                "re-ranking needs stored vectors: use a spec ending in ,RFlat".into(),
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
    let rerank = refine && params.rerank > 0;
    let want = if rerank {
        params.k.saturating_mul(params.rerank)
    } else {
        params.k
    };
    let mut top = TopK::new(want);
    let probes: Vec<u32> = ctx.probes().iter().map(|p| p.0).collect();
    let mut scan = |view: PartView<'_>,
                    excluded: Option<&super::part::Exclusions>,
                    top: &mut TopK|
     -> Result<()> {
        top.set_exclusions(excluded.cloned());
        for (i, &l) in probes.iter().enumerate() {
            if let Some(&next) = probes.get(i + 1) {
                model.prefetch_list(next as usize, view.list(next as usize).0);
            }
            let (codes, ids) = view.list(l as usize);
            if !ids.is_empty() {
                model.scan_list(ctx, l as usize, codes, ids, top)?;
            }
        }
        Ok(())
    };
    for s in &snap.segments {
        scan(s.view(), s.excluded(), &mut top)?;
    }
    for c in &snap.buffer {
        let ex = (!c.deleted.is_empty()).then_some(&c.deleted);
        scan(c.part.view(), ex, &mut top)?;
    }
    top.set_exclusions(None);
    let mut hits: Vec<Hit> = top
        .into_sorted()
        .into_iter()
        .map(|n| Hit {
            id: n.id,
            distance: n.distance,
            name: None,
        })
        .collect();
    if rerank {
        let q = ctx.query().to_vec();
        let dim = model.inner_dim();
        for h in &mut hits {
            if let Some((view, row)) = find_live(snap, h.id)
                && let Some(v) = view.vector(row, dim)
            {
                h.distance = l2_sqr(&q, v);
            }
        }
        hits.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
        hits.truncate(params.k);
    }
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
