//! [`MemoryIndex`]: an [`IndexModel`] plus inverted lists held in heap vectors (one
//! `Vec` of codes and one of ids per list; fast-scan lists also keep their codes packed
//! in blocks, re-packed after each add), and optionally the original vectors for exact
//! re-ranking (`,RFlat`; `,RF16` is also kept in `f32` here: the on-disk engine is what
//! stores half precision). The vectors are stored per list in the list's order, and a
//! re-ranked search collects candidates by (list, row), so the vectors it re-scores lie
//! in the few lists it probed rather than scattered over the whole store.

use rayon::prelude::*;

use super::model::{IndexModel, Quantizer, QueryContext, TrainOptions, validate_spec};
use super::{SearchParams, VectorIndex};
use crate::distance::l2_sqr;
use crate::error::{CodecError, Result};
use crate::spec::{IndexSpec, QuantizerSpec};
use crate::topk::{Neighbor, TopK};
use crate::vectors::VectorsRef;

/// Most queries prepared together (they share one coarse distance computation).
const QUERY_BLOCK: usize = 256;

/// One inverted list.
#[derive(Debug, Clone, Default)]
struct InvertedList {
    /// Row-form codes.
    codes: Vec<u8>,
    /// The codes in the model's layout when it is not rows.
    packed: Vec<u8>,
    ids: Vec<u64>,
    /// With a refine stage: the original vectors (rows of `dim`, in list order) and the
    /// candidate handles `list << 32 | row` a re-ranked scan collects instead of ids.
    vectors: Vec<f32>,
    handles: Vec<u64>,
}

/// An in-memory index.
#[derive(Debug, Clone)]
pub struct MemoryIndex {
    spec: IndexSpec,
    dim: usize,
    opts: TrainOptions,
    model: Option<IndexModel>,
    lists: Vec<InvertedList>,
    len: usize,
}

impl MemoryIndex {
    /// An empty index. `Flat` (no PCA, no IVF) is trained from the start.
    pub fn new(spec: IndexSpec, dim: usize, opts: TrainOptions) -> Result<Self> {
        validate_spec(&spec, dim)?;
        let mut index = MemoryIndex {
            spec,
            dim,
            opts,
            model: None,
            lists: Vec::new(),
            len: 0,
        };
        if index.spec.pca.is_none()
            && index.spec.ivf.is_none()
            && index.spec.quantizer == QuantizerSpec::Flat
        {
            let model = IndexModel::from_parts(&index.spec, dim, None, None, Quantizer::Flat, 0)?;
            index.set_model(model);
        }
        Ok(index)
    }

    fn set_model(&mut self, model: IndexModel) {
        self.lists = vec![InvertedList::default(); model.nlist()];
        self.model = Some(model);
    }

    /// The trained model, if any.
    pub fn model(&self) -> Option<&IndexModel> {
        self.model.as_ref()
    }

    /// Sizes of the inverted lists.
    pub fn list_sizes(&self) -> Vec<usize> {
        self.lists.iter().map(|l| l.ids.len()).collect()
    }

    fn validate_search(&self, queries: &[f32], params: &SearchParams) -> Result<&IndexModel> {
        let model = self.model.as_ref().ok_or(CodecError::NotTrained)?;
        if params.k == 0 {
            return Err(CodecError::InvalidParameter("k must be at least 1".into()));
        }
        if let Some(nlist) = self.spec.ivf
            && (params.nprobe == 0 || params.nprobe > nlist)
        {
            return Err(CodecError::InvalidParameter(format!(
                "nprobe = {} is out of range (1..={nlist})",
                params.nprobe
            )));
        }
        if params.rerank > 0 && !self.spec.stores_vectors() {
            return Err(CodecError::InvalidParameter(format!(
                "rerank = {} needs a refine stage (append ,RFlat to the spec {:?})",
                params.rerank,
                self.spec.to_string()
            )));
        }
        if !queries.len().is_multiple_of(self.dim) {
            return Err(CodecError::DimensionMismatch {
                expected: self.dim,
                got: queries.len(),
            });
        }
        if let Some(p) = queries.iter().position(|v| !v.is_finite()) {
            return Err(CodecError::NonFinite { row: p / self.dim });
        }
        Ok(model)
    }

    /// Exhaustive `Flat`: blocked exact search over the single list.
    fn search_flat(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Neighbor>>> {
        let list = &self.lists[0];
        let base = super::model::bytes_as_f32(&list.codes);
        let mut res = crate::exact::knn_l2_f32(queries, &base, self.dim, k)?;
        for row in &mut res {
            for nb in row.iter_mut() {
                nb.id = list.ids[nb.id as usize];
            }
            row.sort_by(crate::topk::neighbor_order);
        }
        Ok(res)
    }

    /// Exact distances of the candidates (collected as handles, see [`InvertedList`]),
    /// the `k` nearest by id.
    fn rerank(&self, query: &[f32], candidates: Vec<Neighbor>, k: usize) -> Vec<Neighbor> {
        let mut top = TopK::new(k);
        for c in candidates {
            let (l, row) = ((c.id >> 32) as usize, (c.id & 0xffff_ffff) as usize);
            let list = &self.lists[l];
            let x = &list.vectors[row * self.dim..(row + 1) * self.dim];
            top.push(list.ids[row], l2_sqr(query, x));
        }
        top.into_sorted()
    }
}

impl VectorIndex for MemoryIndex {
    fn spec(&self) -> String {
        self.spec.to_string()
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn is_trained(&self) -> bool {
        self.model.is_some()
    }

    fn train(&mut self, data: &VectorsRef<'_>) -> Result<()> {
        if self.len > 0 {
            return Err(CodecError::InvalidParameter(
                "cannot retrain an index that holds vectors".into(),
            ));
        }
        let model = IndexModel::train(&self.spec, self.dim, data, &self.opts)?;
        self.set_model(model);
        Ok(())
    }

    fn add(&mut self, data: &VectorsRef<'_>, ids: &[u64]) -> Result<()> {
        let model = self.model.as_ref().ok_or(CodecError::NotTrained)?;
        if ids.len() != data.rows() {
            return Err(CodecError::InvalidParameter(format!(
                "{} ids for {} vectors",
                ids.len(),
                data.rows()
            )));
        }
        let (list_of, codes) = model.encode(data)?;
        let cs = model.code_size();
        let layout = model.layout();
        let refine = self.spec.stores_vectors();
        if refine
            && self
                .lists
                .iter()
                .any(|l| l.ids.len() + data.rows() > 1 << 32)
        {
            return Err(CodecError::InvalidParameter(
                "an inverted list of a re-ranked index holds at most 2^32 vectors".into(),
            ));
        }
        let mut touched = vec![false; self.lists.len()];
        let mut row = vec![0.0f32; self.dim];
        for (i, (&l, &id)) in list_of.iter().zip(ids).enumerate() {
            let list = &mut self.lists[l as usize];
            list.codes.extend_from_slice(&codes[i * cs..(i + 1) * cs]);
            if refine {
                list.handles
                    .push((u64::from(l) << 32) | list.ids.len() as u64);
                data.row_f32_into(i, &mut row);
                list.vectors.extend_from_slice(&row);
            }
            list.ids.push(id);
            touched[l as usize] = true;
        }
        if !layout.is_rows() {
            for (list, _) in self.lists.iter_mut().zip(&touched).filter(|p| *p.1) {
                list.packed.clear();
                layout.pack_into(&list.codes, list.ids.len(), &mut list.packed)?;
            }
        }
        self.len += ids.len();
        Ok(())
    }

    fn search(&self, queries: &[f32], params: &SearchParams) -> Result<Vec<Vec<Neighbor>>> {
        let model = self.validate_search(queries, params)?;
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        let exhaustive_flat = self.spec.pca.is_none()
            && self.spec.ivf.is_none()
            && self.spec.quantizer == QuantizerSpec::Flat;
        if exhaustive_flat && !self.spec.stores_vectors() {
            return self.search_flat(queries, params.k);
        }
        let fetch = if params.rerank > 0 {
            params.k.saturating_mul(params.rerank)
        } else {
            params.k
        };
        let nq = queries.len() / self.dim;
        // Large blocks amortise the coarse distance computation; small batches still
        // spread over the pool.
        let block_rows = (nq / (4 * rayon::current_num_threads())).clamp(8, QUERY_BLOCK);
        let d = model.inner_dim();
        let blocks: Vec<Result<Vec<Vec<Neighbor>>>> = queries
            .par_chunks(block_rows * self.dim)
            .map(|block| {
                let (xq, probes) = model.transform_and_probe(block, params.nprobe)?;
                let mut ctx = QueryContext::default();
                let mut out = Vec::with_capacity(probes.len());
                for (qi, p) in probes.into_iter().enumerate() {
                    model.reset_context(&mut ctx, &xq[qi * d..(qi + 1) * d], p)?;
                    let mut top = TopK::new(fetch);
                    let rows = model.layout().is_rows();
                    fn codes_of(list: &InvertedList, rows: bool) -> &[u8] {
                        if rows { &list.codes } else { &list.packed }
                    }
                    for pi in 0..ctx.probes().len() {
                        let l = ctx.probes()[pi].0 as usize;
                        if let Some(next) = ctx.probes().get(pi + 1) {
                            let next = next.0 as usize;
                            model.prefetch_list(next, codes_of(&self.lists[next], rows));
                        }
                        let list = &self.lists[l];
                        let ids = if params.rerank > 0 {
                            &list.handles
                        } else {
                            &list.ids
                        };
                        model.scan_list(&mut ctx, l, codes_of(list, rows), ids, &mut top)?;
                    }
                    let found = top.into_sorted();
                    out.push(if params.rerank > 0 {
                        let q = &block[qi * self.dim..(qi + 1) * self.dim];
                        self.rerank(q, found, params.k)
                    } else {
                        found
                    });
                }
                Ok(out)
            })
            .collect();
        let mut results = Vec::with_capacity(queries.len() / self.dim);
        for b in blocks {
            results.extend(b?);
        }
        Ok(results)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn nlist(&self) -> Option<usize> {
        self.spec.ivf
    }

    fn bytes(&self) -> usize {
        let lists: usize = self
            .lists
            .iter()
            .map(|l| {
                let codes = if l.packed.is_empty() {
                    l.codes.len()
                } else {
                    l.packed.len()
                };
                codes + l.ids.len() * 8 + l.vectors.len() * 4 + l.handles.len() * 8
            })
            .sum();
        lists + self.model.as_ref().map_or(0, IndexModel::bytes)
    }
}
