//! Exact (brute-force) k-nearest-neighbour search: the yardstick every index is measured
//! against, plus blocked helpers on contiguous f32 (nearest centroid, small-base k-NN,
//! full distance matrix) used by k-means, IVF and PQ.
//!
//! (First version: correct but simple; the blocked GEMM-style version is being added
//! behind the same signatures.)

use rayon::prelude::*;

use crate::distance::l2_sqr;
use crate::error::{CodecError, Result};
use crate::topk::{Neighbor, TopK};
use crate::vectors::VectorsRef;

fn check_matrix(data: &[f32], dim: usize) -> Result<usize> {
    if dim == 0 || data.len() % dim != 0 {
        return Err(CodecError::DimensionMismatch {
            expected: dim,
            got: data.len(),
        });
    }
    Ok(data.len() / dim)
}

/// Exact squared-L2 k-NN of every query (contiguous f32 rows of `base.dim()`) against all
/// rows of `base`; ids are row numbers. Results are sorted nearest first, ties by id.
pub fn knn_l2(queries: &[f32], base: &VectorsRef<'_>, k: usize) -> Result<Vec<Vec<Neighbor>>> {
    let dim = base.dim();
    check_matrix(queries, dim)?;
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

/// For every point (contiguous rows of `dim`), the index of its nearest centroid and the
/// squared distance to it; ties go to the smaller index. Fails if there are no centroids.
pub fn nearest_l2(points: &[f32], centroids: &[f32], dim: usize) -> Result<Vec<(u32, f32)>> {
    check_matrix(points, dim)?;
    let nc = check_matrix(centroids, dim)?;
    if nc == 0 {
        return Err(CodecError::InvalidParameter(
            "nearest_l2 needs at least one centroid".into(),
        ));
    }
    if nc > u32::MAX as usize {
        return Err(CodecError::InvalidParameter(
            "too many centroids for u32 ids".into(),
        ));
    }
    Ok(points
        .par_chunks_exact(dim)
        .map(|p| {
            let mut best = (0u32, f32::INFINITY);
            for (j, c) in centroids.chunks_exact(dim).enumerate() {
                let d = l2_sqr(p, c);
                if d < best.1 {
                    best = (j as u32, d);
                }
            }
            best
        })
        .collect())
}

/// Exact squared-L2 k-NN of every query against a contiguous f32 `base` (both rows of
/// `dim`); ids are base row numbers, sorted nearest first, ties by id.
pub fn knn_l2_f32(
    queries: &[f32],
    base: &[f32],
    dim: usize,
    k: usize,
) -> Result<Vec<Vec<Neighbor>>> {
    check_matrix(queries, dim)?;
    check_matrix(base, dim)?;
    Ok(queries
        .par_chunks_exact(dim)
        .map(|q| {
            let mut top = TopK::new(k);
            for (j, x) in base.chunks_exact(dim).enumerate() {
                top.push(j as u64, l2_sqr(q, x));
            }
            top.into_sorted()
        })
        .collect())
}

/// All squared-L2 distances: `out[i * nb + j] = ||queries[i] - base[j]||²`, where `nb` is
/// the number of base rows. `out.len()` must be `nq * nb`.
pub fn l2_sqr_matrix(queries: &[f32], base: &[f32], dim: usize, out: &mut [f32]) -> Result<()> {
    let nq = check_matrix(queries, dim)?;
    let nb = check_matrix(base, dim)?;
    if out.len() != nq * nb {
        return Err(CodecError::DimensionMismatch {
            expected: nq * nb,
            got: out.len(),
        });
    }
    if nb == 0 {
        return Ok(());
    }
    out.par_chunks_exact_mut(nb)
        .zip(queries.par_chunks_exact(dim))
        .for_each(|(row, q)| {
            for (o, x) in row.iter_mut().zip(base.chunks_exact(dim)) {
                *o = l2_sqr(q, x);
            }
        });
    Ok(())
}
