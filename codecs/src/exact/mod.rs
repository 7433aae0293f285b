//! Exact (brute-force) k-nearest-neighbour search, the yardstick every index is measured
//! against, plus blocked helpers on contiguous f32 used by k-means, IVF and PQ: nearest
//! centroid ([`nearest_l2`]), small-base k-NN ([`knn_l2_f32`], or [`knn_l2_f32_packed`]
//! with the base packed once) and the full distance matrix ([`l2_sqr_matrix`]).
//!
//! Everything runs like a GEMM: squared distances are `||q||² + ||x||² - 2 q·x`, the dot
//! products come from register-tiled micro-kernels (`gemm_f32`: AVX-512, AVX2+FMA,
//! scalar) over database rows packed block by block into panels (`panels`), and each
//! tile goes to a sink (`sinks`) that checks a per-query threshold before touching a
//! heap. When both sides are bytes (a `u8` database and queries whose components are all
//! integers in `0..=255`, as with SIFT) an exact integer engine (`gemm_u8`, AVX-512
//! VNNI) does the same work four times faster, with bit-exact distances.
//!
//! Work is split across the current rayon pool (callers control threads with
//! `ThreadPool::install`): over query blocks, and also over database chunks when there are
//! fewer query blocks than threads. Large databases are never copied whole: each task packs
//! one cache-sized block at a time.
//!
//! The GEMM form cancels badly for vectors far from the origin or nearly equal (the
//! distance is a small difference of large norms), so the f32 paths subtract a centre (the
//! queries' or centroids' mean, rounded to integers so integer-valued data stays exact)
//! from both sides while packing, and [`knn_l2`] keeps a few extra candidates per query
//! and rescores them with directly computed `‖q − x‖²`: its distances and order are those
//! of the direct computation (tested on offset and near-duplicate data).
//!
//! Rows whose distance is NaN are never reported.

mod few_u8;
mod gemm_f32;
mod gemm_u8;
mod panels;
mod reservoir;
mod sinks;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod transpose;

use std::ops::Range;

use rayon::prelude::*;

pub use self::few_u8::PackedBytes;
use self::gemm_f32::{F32Path, MR};
use self::gemm_u8::{QueriesU8, U8Path};
use self::panels::{MAX_U8_DIM, NR, Panels, PanelsU8};
use self::reservoir::Reservoir;
use self::sinks::{KnnSink, KnnU8Sink, MatrixSink, NearestSink};
use crate::distance;
use crate::error::{CodecError, Result};
use crate::topk::{Neighbor, neighbor_order};
use crate::vectors::{ElemType, VectorsRef};

/// Queries per task in the nearest-centroid and matrix helpers (a multiple of `MR`).
const QUERIES_PER_TASK: usize = 20 * MR;

/// Number of rows of a contiguous matrix, or a dimension error.
fn rows_of(data: &[f32], dim: usize) -> Result<usize> {
    if dim == 0 || !data.len().is_multiple_of(dim) {
        return Err(CodecError::DimensionMismatch {
            expected: dim,
            got: data.len(),
        });
    }
    Ok(data.len() / dim)
}

/// The mean of contiguous rows of `dim` (accumulated in `f64`; zeros for no rows).
pub(crate) fn mean_row(data: &[f32], dim: usize) -> Vec<f32> {
    let mut sum = vec![0.0f64; dim];
    for row in data.chunks_exact(dim) {
        for (s, &v) in sum.iter_mut().zip(row) {
            *s += f64::from(v);
        }
    }
    let n = (data.len() / dim).max(1) as f64;
    sum.iter().map(|s| (s / n) as f32).collect()
}

/// The centre the GEMM paths subtract from both sides: [`mean_row`] rounded to integers,
/// so that it removes any large common offset while integer-valued data (bytes, SIFT)
/// stays integer-valued: its products, distances and ties stay exact.
fn integer_center(data: &[f32], dim: usize) -> Vec<f32> {
    mean_row(data, dim).into_iter().map(f32::round).collect()
}

/// `data`'s rows minus `center`.
fn centered(data: &[f32], center: &[f32]) -> Vec<f32> {
    let mut out = data.to_vec();
    for row in out.chunks_exact_mut(center.len()) {
        for (v, c) in row.iter_mut().zip(center) {
            *v -= c;
        }
    }
    out
}

/// Squared norms of contiguous rows.
fn row_norms(data: &[f32], dim: usize) -> Vec<f32> {
    data.chunks_exact(dim)
        .map(|r| r.iter().map(|v| v * v).sum())
        .collect()
}

/// Exact squared-L2 k-NN of every query (contiguous f32 rows of `base.dim()`) against all
/// rows of `base`; ids are row numbers. Results are sorted nearest first, ties by smaller
/// id; with `k` above the number of rows every row is returned, with `k = 0` none.
pub fn knn_l2(queries: &[f32], base: &VectorsRef<'_>, k: usize) -> Result<Vec<Vec<Neighbor>>> {
    knn_l2_with(
        queries,
        base,
        k,
        F32Path::detect(),
        U8Path::detect(),
        &Plan::DEFAULT,
    )
}

/// Blocking and splitting parameters (tests shrink them to reach every code path).
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// Packed bytes per block a task streams through (fits in L2 next to the queries).
    block_bytes: usize,
    /// Databases whose packed form is at most this large are packed once and shared.
    prepack_max_bytes: usize,
    /// Fewest database rows worth a task of their own.
    min_rows_per_task: usize,
    /// Whether tasks with very few queries may skip packing (see
    /// [`KnnEngine::min_queries_for_packing`]).
    direct: bool,
}

impl Plan {
    const DEFAULT: Plan = Plan {
        block_bytes: 256 << 10,
        prepack_max_bytes: 64 << 20,
        min_rows_per_task: 4096,
        direct: true,
    };
}

/// [`knn_l2`] with explicit kernel paths and plan.
fn knn_l2_with(
    queries: &[f32],
    base: &VectorsRef<'_>,
    k: usize,
    f32_path: F32Path,
    u8_path: Option<U8Path>,
    plan: &Plan,
) -> Result<Vec<Vec<Neighbor>>> {
    let dim = base.dim();
    let nq = rows_of(queries, dim)?;
    if k == 0 || base.is_empty() || nq == 0 {
        return Ok(vec![Vec::new(); nq]);
    }
    if base.elem() == ElemType::U8
        && dim <= MAX_U8_DIM
        && let Some(path) = u8_path
        && let Some(q8) = QueriesU8::convert(queries, dim)
    {
        return Ok(knn_driver(
            &U8Engine { path, q: q8 },
            nq,
            base,
            k,
            plan,
            None,
        ));
    }
    // The GEMM form `‖q‖² + ‖x‖² − 2 q·x` loses the small distances between vectors far
    // from the origin: centring both sides near the queries' mean removes a common
    // offset, and a few extra candidates rescored directly fix the order among near-ties.
    let center = integer_center(queries, dim);
    Ok(knn_f32(queries, base, k, f32_path, center, plan, None))
}

/// The f32 engine's k-NN of `queries` against `base`, both shifted by `center`, with the
/// `k + rescore_margin(k)` GEMM candidates rescored directly. `prepacked` is all of `base`
/// already packed minus `center` by `path`'s packer (see [`PackedF32`]).
fn knn_f32(
    queries: &[f32],
    base: &VectorsRef<'_>,
    k: usize,
    path: F32Path,
    center: Vec<f32>,
    plan: &Plan,
    prepacked: Option<&Panels>,
) -> Vec<Vec<Neighbor>> {
    let dim = base.dim();
    let shifted = centered(queries, &center);
    let engine = F32Engine {
        path,
        qnorms: row_norms(&shifted, dim),
        queries,
        shifted,
        center,
        dim,
    };
    let wide = k.saturating_add(rescore_margin(k));
    let mut found = knn_driver(&engine, queries.len() / dim, base, wide, plan, prepacked);
    found
        .par_iter_mut()
        .zip(queries.par_chunks_exact(dim))
        .for_each(|(list, q)| rescore(list, q, base, k));
    found
}

/// Extra candidates the f32 GEMM keeps per query beyond `k`, rescored exactly: a
/// neighbour whose GEMM distance rounded just past the k-th still makes the cut.
fn rescore_margin(k: usize) -> usize {
    (k / 4).max(8)
}

/// Replaces the distances of `list` by directly computed `‖q − x‖²` (no cancellation),
/// keeps the `k` nearest (ties by smaller id), nearest first; NaN distances are dropped.
fn rescore(list: &mut Vec<Neighbor>, q: &[f32], base: &VectorsRef<'_>, k: usize) {
    let kern = distance::kernels();
    let mut row = Vec::new();
    for n in list.iter_mut() {
        let r = n.id as usize;
        n.distance = match (base.elem(), base.row_f32(r)) {
            (ElemType::U8, _) => (kern.l2_sqr_u8_f32)(base.row_bytes(r), q),
            (ElemType::F32, Some(x)) => (kern.l2_sqr)(x, q),
            (ElemType::F32, None) => {
                row.resize(q.len(), 0.0);
                base.row_f32_into(r, &mut row);
                (kern.l2_sqr)(&row, q)
            }
        };
    }
    list.retain(|n| !n.distance.is_nan());
    list.sort_unstable_by(neighbor_order);
    list.truncate(k);
}

/// Exact squared-L2 k-NN of every query against a contiguous f32 `base` (both rows of
/// `dim`); ids are base row numbers, sorted nearest first, ties by smaller id. Meant for
/// small bases (e.g. coarse centroids) and many queries.
pub fn knn_l2_f32(
    queries: &[f32],
    base: &[f32],
    dim: usize,
    k: usize,
) -> Result<Vec<Vec<Neighbor>>> {
    rows_of(queries, dim)?;
    rows_of(base, dim)?;
    knn_l2(queries, &VectorsRef::from_f32(base, dim)?, k)
}

/// Contiguous f32 rows packed once for repeated [`knn_l2_f32_packed`] calls against the
/// same small base (coarse centroids): [`knn_l2_f32`] packs its base on every call, which
/// at 960-D and 1,024 lists is 4 MB written (and page-faulted) per block of queries.
/// Centred near the rows' own mean, like [`nearest_l2`].
pub struct PackedF32 {
    panels: Panels,
    center: Vec<f32>,
    path: F32Path,
    rows: usize,
    dim: usize,
}

impl std::fmt::Debug for PackedF32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedF32")
            .field("rows", &self.rows)
            .field("dim", &self.dim)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl PackedF32 {
    /// Largest base worth packing whole, in bytes of f32 rows (the limit [`knn_l2_f32`]
    /// applies to its own one-call packing; larger bases stream through cache-sized
    /// blocks instead, and a permanent packed copy would double their memory).
    pub const MAX_BYTES: usize = Plan::DEFAULT.prepack_max_bytes;

    /// Packs `base` (contiguous rows of `dim`) for this CPU's f32 kernel.
    pub fn new(base: &[f32], dim: usize) -> Result<Self> {
        Self::with_path(base, dim, F32Path::detect())
    }

    fn with_path(base: &[f32], dim: usize, path: F32Path) -> Result<Self> {
        let rows = rows_of(base, dim)?;
        let center = integer_center(base, dim);
        let mut panels = Panels::default();
        panels.pack(&VectorsRef::from_f32(base, dim)?, 0..rows, &center, path);
        Ok(PackedF32 {
            panels,
            center,
            path,
            rows,
            dim,
        })
    }
}

/// [`knn_l2_f32`] against a base packed once by [`PackedF32::new`] from the same `base`
/// (checked by shape only: the caller keeps the two together). Same results.
pub fn knn_l2_f32_packed(
    queries: &[f32],
    base: &[f32],
    packed: &PackedF32,
    dim: usize,
    k: usize,
) -> Result<Vec<Vec<Neighbor>>> {
    let nq = rows_of(queries, dim)?;
    let nb = rows_of(base, dim)?;
    if packed.rows != nb || packed.dim != dim {
        return Err(CodecError::InvalidParameter(format!(
            "packed base of {} x {} does not match a base of {nb} x {dim}",
            packed.rows, packed.dim
        )));
    }
    if k == 0 || nb == 0 || nq == 0 {
        return Ok(vec![Vec::new(); nq]);
    }
    Ok(knn_f32(
        queries,
        &VectorsRef::from_f32(base, dim)?,
        k,
        packed.path,
        packed.center.clone(),
        &Plan::DEFAULT,
        Some(&packed.panels),
    ))
}

/// For every point (contiguous rows of `dim`), the index of its nearest centroid and the
/// squared distance to it; ties go to the smaller index. Fails without centroids.
pub fn nearest_l2(points: &[f32], centroids: &[f32], dim: usize) -> Result<Vec<(u32, f32)>> {
    rows_of(points, dim)?;
    let nc = rows_of(centroids, dim)?;
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
    // Centred near the centroids' mean: the ranking is then accurate however far the data
    // lies from the origin.
    let PackedF32 {
        panels,
        center,
        path,
        ..
    } = PackedF32::new(centroids, dim)?;
    let block = block_panels(dim * 4);
    let mut best = vec![(0u32, f32::INFINITY); points.len() / dim];
    best.par_chunks_mut(QUERIES_PER_TASK)
        .zip(points.par_chunks(QUERIES_PER_TASK * dim))
        .for_each(|(best, pts)| {
            let shifted = centered(pts, &center);
            let qnorms = row_norms(&shifted, dim);
            let mut sink = NearestSink {
                qnorms: &qnorms,
                panels: &panels,
                best,
            };
            for prange in panel_blocks(panels.count(), block) {
                gemm_f32::scan(path, &shifted, dim, &panels, prange, &mut sink);
            }
            // The reported distance is computed directly (the GEMM form only ranks).
            let l2 = distance::kernels().l2_sqr;
            for ((c, d), p) in best.iter_mut().zip(pts.chunks_exact(dim)) {
                let c = *c as usize;
                *d = l2(p, &centroids[c * dim..(c + 1) * dim]);
            }
        });
    Ok(best)
}

/// All squared-L2 distances: `out[i * nb + j] = ||queries[i] - base[j]||²`, where `nb` is
/// the number of base rows. `out.len()` must be `nq * nb`.
pub fn l2_sqr_matrix(queries: &[f32], base: &[f32], dim: usize, out: &mut [f32]) -> Result<()> {
    let nq = rows_of(queries, dim)?;
    let nb = rows_of(base, dim)?;
    if out.len() != nq * nb {
        return Err(CodecError::DimensionMismatch {
            expected: nq * nb,
            got: out.len(),
        });
    }
    if nb == 0 || nq == 0 {
        return Ok(());
    }
    let path = F32Path::detect();
    let mut panels = Panels::default();
    panels.pack(&VectorsRef::from_f32(base, dim)?, 0..nb, &[], path);
    let block = block_panels(dim * 4);
    out.par_chunks_mut(QUERIES_PER_TASK * nb)
        .zip(queries.par_chunks(QUERIES_PER_TASK * dim))
        .for_each(|(out, qs)| {
            let qnorms = row_norms(qs, dim);
            let mut sink = MatrixSink {
                qnorms: &qnorms,
                panels: &panels,
                out,
                stride: nb,
                col0: 0,
            };
            for prange in panel_blocks(panels.count(), block) {
                gemm_f32::scan(path, qs, dim, &panels, prange, &mut sink);
            }
        });
    Ok(())
}

/// Panels per cache-sized block for rows of `row_bytes` packed bytes.
fn block_panels(row_bytes: usize) -> usize {
    (Plan::DEFAULT.block_bytes / (NR * row_bytes.max(1))).max(1)
}

/// `0..count` cut into consecutive ranges of `block` panels.
fn panel_blocks(count: usize, block: usize) -> impl Iterator<Item = Range<usize>> {
    (0..count)
        .step_by(block)
        .map(move |s| s..(s + block).min(count))
}

/// `0..n` cut into `parts` near-equal ranges whose boundaries are multiples of `unit`.
fn split(n: usize, parts: usize, unit: usize) -> Vec<Range<usize>> {
    let units = n.div_ceil(unit);
    let parts = parts.clamp(1, units.max(1));
    (0..parts)
        .map(|p| ((units * p / parts) * unit).min(n)..((units * (p + 1) / parts) * unit).min(n))
        .filter(|r| !r.is_empty())
        .collect()
}

/// One way of computing k-NN tiles: packs database rows and scans query ranges.
trait KnnEngine: Sync {
    type Packed: Default + Send + Sync;
    /// Packed bytes per database row.
    fn row_bytes(&self, dim: usize) -> usize;
    /// Packs base rows `rows` into `out`.
    fn pack(&self, base: &VectorsRef<'_>, rows: Range<usize>, out: &mut Self::Packed);
    /// Below this many queries per task, packing costs more than it saves and
    /// [`KnnEngine::scan_direct`] runs instead.
    fn min_queries_for_packing(&self) -> usize;
    /// Distances of queries `qr` to base rows `rows`, one pair at a time (no packing).
    fn scan_direct(
        &self,
        base: &VectorsRef<'_>,
        rows: Range<usize>,
        qr: Range<usize>,
        heaps: &mut [Reservoir],
    );
    /// Scans queries `qr` against panels `prange` of `packed` (whose row 0 has id
    /// `id0`), updating `heaps` / `thresholds` (indexed from `qr.start`).
    fn scan(
        &self,
        packed: &Self::Packed,
        prange: Range<usize>,
        id0: u64,
        qr: Range<usize>,
        heaps: &mut [Reservoir],
        thresholds: &mut [f32],
    );
}

struct F32Engine<'q> {
    path: F32Path,
    /// The queries as given (for direct distances).
    queries: &'q [f32],
    /// The queries minus `center` (for the GEMM), and their squared norms.
    shifted: Vec<f32>,
    qnorms: Vec<f32>,
    /// Subtracted from both sides before the GEMM.
    center: Vec<f32>,
    dim: usize,
}

impl KnnEngine for F32Engine<'_> {
    type Packed = Panels;
    fn min_queries_for_packing(&self) -> usize {
        16
    }
    fn scan_direct(
        &self,
        base: &VectorsRef<'_>,
        rows: Range<usize>,
        qr: Range<usize>,
        heaps: &mut [Reservoir],
    ) {
        let kern = distance::kernels();
        let dim = self.dim;
        let queries = &self.queries[qr.start * dim..qr.end * dim];
        let mut row = vec![0.0f32; dim];
        for r in rows {
            let id = r as u64;
            match base.elem() {
                ElemType::U8 => {
                    let x = base.row_bytes(r);
                    for (q, heap) in queries.chunks_exact(dim).zip(heaps.iter_mut()) {
                        heap.push(id, (kern.l2_sqr_u8_f32)(x, q));
                    }
                }
                ElemType::F32 => {
                    base.row_f32_into(r, &mut row);
                    for (q, heap) in queries.chunks_exact(dim).zip(heaps.iter_mut()) {
                        heap.push(id, (kern.l2_sqr)(&row, q));
                    }
                }
            }
        }
    }
    fn row_bytes(&self, dim: usize) -> usize {
        dim * 4
    }
    fn pack(&self, base: &VectorsRef<'_>, rows: Range<usize>, out: &mut Panels) {
        out.pack(base, rows, &self.center, self.path);
    }
    fn scan(
        &self,
        packed: &Panels,
        prange: Range<usize>,
        id0: u64,
        qr: Range<usize>,
        heaps: &mut [Reservoir],
        thresholds: &mut [f32],
    ) {
        let mut sink = KnnSink {
            qnorms: &self.qnorms[qr.clone()],
            panels: packed,
            id0,
            heaps,
            thresholds,
        };
        let q = &self.shifted[qr.start * self.dim..qr.end * self.dim];
        gemm_f32::scan(self.path, q, self.dim, packed, prange, &mut sink);
    }
}

struct U8Engine {
    path: U8Path,
    q: QueriesU8,
}

impl KnnEngine for U8Engine {
    type Packed = PanelsU8;
    fn min_queries_for_packing(&self) -> usize {
        4
    }
    fn scan_direct(
        &self,
        base: &VectorsRef<'_>,
        rows: Range<usize>,
        qr: Range<usize>,
        heaps: &mut [Reservoir],
    ) {
        let l2 = distance::kernels().l2_sqr_u8;
        let queries: Vec<Vec<u8>> = qr.map(|i| self.q.bytes(i, base.dim())).collect();
        for r in rows {
            let x = base.row_bytes(r);
            for (q, heap) in queries.iter().zip(heaps.iter_mut()) {
                heap.push(r as u64, l2(x, q));
            }
        }
    }
    fn row_bytes(&self, dim: usize) -> usize {
        dim.div_ceil(4) * 4
    }
    fn pack(&self, base: &VectorsRef<'_>, rows: Range<usize>, out: &mut PanelsU8) {
        out.pack(
            rows.len(),
            base.dim(),
            |r| base.row_bytes(rows.start + r),
            self.path,
        );
    }
    fn scan(
        &self,
        packed: &PanelsU8,
        prange: Range<usize>,
        id0: u64,
        qr: Range<usize>,
        heaps: &mut [Reservoir],
        thresholds: &mut [f32],
    ) {
        let mut sink = KnnU8Sink {
            qnorms: &self.q.norms[qr.clone()],
            panels: packed,
            id0,
            heaps,
            thresholds,
        };
        let d4 = self.q.dim4;
        let q = &self.q.shifted[qr.start * d4..qr.end * d4];
        gemm_u8::scan(self.path, q, d4, packed, prange, &mut sink);
    }
}

/// Splits the work into (query range x database range) tasks on the current rayon pool,
/// runs `engine` on each, and merges the per-task top-k lists.
/// `prepacked`, when given, is all of `base` already packed by `engine`'s packer: every
/// task scans it (never the unpacked direct path).
fn knn_driver<E: KnnEngine>(
    engine: &E,
    nq: usize,
    base: &VectorsRef<'_>,
    k: usize,
    plan: &Plan,
    prepacked: Option<&E::Packed>,
) -> Vec<Vec<Neighbor>> {
    let nb = base.rows();
    let row_bytes = engine.row_bytes(base.dim());
    let threads = rayon::current_num_threads().max(1);
    let qparts = split(nq, threads, MR);
    let bparts_wanted = if qparts.len() < threads {
        threads
            .div_ceil(qparts.len())
            .min(nb / plan.min_rows_per_task.max(1))
            .max(1)
    } else {
        1
    };
    let bparts = split(nb, bparts_wanted, NR);
    let block_rows = (plan.block_bytes / (NR * row_bytes.max(1))).max(1) * NR;

    let use_direct = |q: &Range<usize>| {
        prepacked.is_none() && plan.direct && q.len() < engine.min_queries_for_packing()
    };
    let direct = qparts.iter().all(use_direct);
    let packed_here =
        (prepacked.is_none() && !direct && nb.saturating_mul(row_bytes) <= plan.prepack_max_bytes)
            .then(|| {
                let mut packed = E::Packed::default();
                engine.pack(base, 0..nb, &mut packed);
                packed
            });
    let shared = prepacked.or(packed_here.as_ref());

    let tasks: Vec<(usize, usize)> = (0..qparts.len())
        .flat_map(|q| (0..bparts.len()).map(move |b| (q, b)))
        .collect();
    let partial: Vec<Vec<Reservoir>> = tasks
        .par_iter()
        .map(|&(qi, bi)| {
            let qr = qparts[qi].clone();
            let mut heaps: Vec<Reservoir> = qr.clone().map(|_| Reservoir::new(k)).collect();
            let mut thresholds = vec![f32::INFINITY; qr.len()];
            let mut local = E::Packed::default();
            let rows = bparts[bi].clone();
            if use_direct(&qr) {
                engine.scan_direct(base, rows, qr, &mut heaps);
                return heaps;
            }
            for start in rows.clone().step_by(block_rows) {
                let end = (start + block_rows).min(rows.end);
                match shared {
                    // Shared packing: `start` is a multiple of NR (all splits are).
                    Some(packed) => engine.scan(
                        packed,
                        start / NR..end.div_ceil(NR),
                        0,
                        qr.clone(),
                        &mut heaps,
                        &mut thresholds,
                    ),
                    None => {
                        engine.pack(base, start..end, &mut local);
                        engine.scan(
                            &local,
                            0..(end - start).div_ceil(NR),
                            start as u64,
                            qr.clone(),
                            &mut heaps,
                            &mut thresholds,
                        );
                    }
                }
            }
            heaps
        })
        .collect();

    let mut merged: Vec<Vec<Neighbor>> = Vec::with_capacity(nq);
    let mut partial = partial.into_iter();
    for _ in 0..qparts.len() {
        let mut heaps: Vec<Reservoir> = partial.next().unwrap_or_default();
        for _ in 1..bparts.len() {
            for (into, other) in heaps.iter_mut().zip(partial.next().unwrap_or_default()) {
                into.merge(other);
            }
        }
        merged.extend(heaps.into_iter().map(Reservoir::into_sorted));
    }
    merged
}
