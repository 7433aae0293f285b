//! In-memory vector indexes built from spec strings (`Flat`, `PQ16`, `IVF4096,PQ16`, …)
//! and the [`VectorIndex`] trait the bench harness and the engine program against.
//!
//! An index is split into the trained [`IndexModel`] (immutable after training: PCA,
//! coarse quantizer, vector quantizer, with `encode` / `prepare_query` / `scan_list`) and
//! the inverted-list storage (here [`MemoryIndex`]: one `Vec` of codes and ids per list).
//! Search parameters travel with each call ([`SearchParams`]), never as index state, so
//! concurrent searches with different parameters are safe.

mod layout;
mod memory;
mod model;
mod order;
mod pass;
mod pre;
mod stored;

pub use layout::ListLayout;
pub use memory::MemoryIndex;
pub use model::{
    DEFAULT_COARSE_ITERATIONS, IndexModel, Quantizer, QueryContext, TrainOptions, validate_spec,
};
pub use pass::ListPass;
pub use pre::PreTransform;
pub use stored::{StoredModel, StoredParts};

use crate::error::Result;
use crate::spec::IndexSpec;
use crate::topk::Neighbor;
use crate::vectors::VectorsRef;

/// Per-call search parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchParams {
    /// Neighbours to return per query (≥ 1).
    pub k: usize,
    /// Inverted lists probed per query (1..=nlist; ignored by exhaustive indexes).
    pub nprobe: usize,
    /// Re-ranking factor: with a refine stage (`,RFlat`), fetch `k · rerank` candidates
    /// and re-score them exactly. 0 = off.
    pub rerank: usize,
}

impl Default for SearchParams {
    fn default() -> Self {
        SearchParams {
            k: 10,
            nprobe: 1,
            rerank: 0,
        }
    }
}

/// A searchable vector index.
pub trait VectorIndex: Send + Sync {
    /// The canonical spec string.
    fn spec(&self) -> String;
    /// Input dimension.
    fn dim(&self) -> usize;
    /// True once trained (a `Flat` index needs no training and is always trained).
    fn is_trained(&self) -> bool;
    /// Trains the model on `data`.
    fn train(&mut self, data: &VectorsRef<'_>) -> Result<()>;
    /// Adds vectors with caller-chosen ids (`ids.len() == data.rows()`).
    fn add(&mut self, data: &VectorsRef<'_>, ids: &[u64]) -> Result<()>;
    /// queries: contiguous f32 rows; parallel across the current rayon pool.
    fn search(&self, queries: &[f32], params: &SearchParams) -> Result<Vec<Vec<Neighbor>>>;
    /// Number of stored vectors.
    fn len(&self) -> usize;
    /// True when nothing is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of inverted lists; `None` when not IVF.
    fn nlist(&self) -> Option<usize>;
    /// Bytes of codes + ids + model parameters.
    fn bytes(&self) -> usize;
}

/// Builds an empty in-memory index for `spec` over vectors of `dim` (default training
/// options). Errors on a bad spec or a spec that does not fit `dim`.
pub fn build_index(spec: &str, dim: usize) -> Result<Box<dyn VectorIndex>> {
    build_index_with(spec, dim, TrainOptions::default())
}

/// [`build_index`] with explicit training options.
pub fn build_index_with(
    spec: &str,
    dim: usize,
    opts: TrainOptions,
) -> Result<Box<dyn VectorIndex>> {
    let parsed = IndexSpec::parse(spec)?;
    Ok(Box::new(MemoryIndex::new(parsed, dim, opts)?))
}

#[cfg(test)]
mod tests;
