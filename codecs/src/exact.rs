//! Exact (brute-force) k-nearest-neighbour search: the yardstick every index is measured
//! against.
//!
//! (Skeleton: a correct but slow implementation; the blocked GEMM-style version is being
//! added behind the same signatures.)

use crate::distance::l2_sqr;
use crate::error::{CodecError, Result};
use crate::topk::{Neighbor, TopK};
use crate::vectors::VectorsRef;

/// Exact squared-L2 k-NN of every query (contiguous f32 rows of `base.dim()`) against all
/// rows of `base`; ids are row numbers. Results are sorted nearest first, ties by id.
pub fn knn_l2(queries: &[f32], base: &VectorsRef<'_>, k: usize) -> Result<Vec<Vec<Neighbor>>> {
    let dim = base.dim();
    if dim == 0 || queries.len() % dim != 0 {
        return Err(CodecError::DimensionMismatch { expected: dim, got: queries.len() });
    }
    let mut row = vec![0.0f32; dim];
    let mut heaps: Vec<TopK> = (0..queries.len() / dim).map(|_| TopK::new(k)).collect();
    for i in 0..base.rows() {
        base.row_f32_into(i, &mut row);
        for (q, h) in queries.chunks_exact(dim).zip(heaps.iter_mut()) {
            h.push(i as u64, l2_sqr(q, &row));
        }
    }
    Ok(heaps.into_iter().map(TopK::into_sorted).collect())
}
