//! The inverted-file (IVF) coarse quantizer: `nlist` k-means centroids partition the
//! space, every vector lives in the list of its nearest centroid, and a query probes its
//! `nprobe` nearest lists. Also the FAISS-style precomputed tables for IVF-PQ.
//!
//! With residual PQ, the squared distance from query `q` to a vector stored in list `l`
//! as centroid `c` plus PQ reconstruction `r = (r_1 … r_m)` splits into
//! `‖q − c‖² + Σ_sq (‖r_sq‖² + 2⟨c_sq, r_sq⟩) − 2 Σ_sq ⟨q_sq, r_sq⟩`. The middle term is
//! query-independent: [`PrecomputedTables`] stores it per (list, sub-quantizer, code),
//! so a probed list costs one table add instead of a full table build.

use rayon::prelude::*;
use std::sync::Arc;

use crate::error::{CodecError, Result};
use crate::exact;
use crate::kmeans::{KMeans, KMeansParams};
use crate::pq::ProductQuantizer;

/// Per query, the probed lists with their squared coarse distances, nearest first.
pub type Probes = Vec<Vec<(u32, f32)>>;

/// The coarse quantizer of an IVF index.
#[derive(Debug, Clone, PartialEq)]
pub struct CoarseQuantizer {
    /// The `nlist` centroids. Treat as read-only once built: the byte-rounded and packed
    /// copies below are derived from them (build a new quantizer with
    /// [`CoarseQuantizer::from_centroids`] to change them).
    pub kmeans: KMeans,
    /// The centroids rounded to bytes, when every coordinate lies in `0..=255` (SIFT-like
    /// data): queries that are bytes too are first ranked with the exact integer engine.
    bytes: Option<ByteCentroids>,
    /// The centroids packed for the f32 kernel, on the first f32 probe of at least
    /// `PACK_MIN_QUERIES` queries (up to [`exact::PackedF32::MAX_BYTES`] of centroids;
    /// larger sets are packed per call).
    packed: LazyPacked,
}

/// Fewest queries in a probe call that build the packed centroids (see `probe_f32`).
const PACK_MIN_QUERIES: usize = 16;

/// The centroids packed once for [`exact::knn_l2_f32_packed`] (derived from `kmeans`, so
/// it takes no part in equality; a clone shares it).
#[derive(Debug, Clone, Default)]
struct LazyPacked(std::sync::OnceLock<Arc<exact::PackedF32>>);

impl PartialEq for LazyPacked {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Centroids rounded to the nearest byte, with the largest rounding distance `‖c − ĉ‖`,
/// and (on CPUs with AVX-512 VNNI) packed once for the fused few-nearest kernel.
#[derive(Debug, Clone)]
struct ByteCentroids {
    data: Vec<u8>,
    max_error: f32,
    packed: Option<Arc<exact::PackedBytes>>,
}

impl PartialEq for ByteCentroids {
    /// The packed copy is derived from `data`.
    fn eq(&self, other: &Self) -> bool {
        self.data == other.data && self.max_error.to_bits() == other.max_error.to_bits()
    }
}

impl ByteCentroids {
    fn of(km: &KMeans) -> Option<Self> {
        let dim = km.dim;
        if dim == 0 || km.centroids.iter().any(|v| !(-0.5..255.5).contains(v)) {
            return None;
        }
        let data: Vec<u8> = km.centroids.iter().map(|v| v.round() as u8).collect();
        let max_error = km
            .centroids
            .chunks_exact(dim)
            .zip(data.chunks_exact(dim))
            .map(|(c, b)| {
                c.iter()
                    .zip(b)
                    .map(|(x, &y)| (x - f32::from(y)) * (x - f32::from(y)))
                    .sum::<f32>()
                    .sqrt()
            })
            .fold(0.0f32, f32::max);
        let packed = exact::PackedBytes::new(&data, dim).map(Arc::new);
        Some(ByteCentroids {
            data,
            max_error,
            packed,
        })
    }
}

/// True when every value is an integer in `0..=255` (the exact integer engine applies).
fn all_bytes(values: &[f32]) -> bool {
    values.iter().all(|&v| crate::vectors::is_byte(v))
}

impl CoarseQuantizer {
    /// Trains `nlist` lists on `data` (contiguous rows of `dim`). Errors when `nlist` is
    /// zero or larger than the number of training points.
    pub fn train(data: &[f32], dim: usize, nlist: usize, params: &KMeansParams) -> Result<Self> {
        if nlist == 0 {
            return Err(CodecError::InvalidParameter("IVF needs nlist >= 1".into()));
        }
        let n = data.len() / dim.max(1);
        if nlist > n {
            return Err(CodecError::NotEnoughPoints {
                what: format!("IVF with {nlist} lists"),
                needed: nlist,
                got: n,
            });
        }
        Ok(Self::new(KMeans::train(data, dim, nlist, params)?))
    }

    /// Wraps existing centroids (`nlist × dim`).
    pub fn from_centroids(centroids: Vec<f32>, dim: usize) -> Result<Self> {
        Ok(Self::new(KMeans::from_centroids(centroids, dim)?))
    }

    fn new(kmeans: KMeans) -> Self {
        CoarseQuantizer {
            bytes: ByteCentroids::of(&kmeans),
            kmeans,
            packed: LazyPacked::default(),
        }
    }

    /// Number of lists.
    pub fn nlist(&self) -> usize {
        self.kmeans.k
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.kmeans.dim
    }

    /// Centroid of list `l`.
    pub fn centroid(&self, l: usize) -> &[f32] {
        self.kmeans.centroid(l)
    }

    /// The list (and squared distance to its centroid) of every row of `data`.
    pub fn assign(&self, data: &[f32]) -> Result<Vec<(u32, f32)>> {
        self.kmeans.assign(data)
    }

    /// The `nprobe` nearest lists of every query (contiguous rows), nearest first, each
    /// with its squared coarse distance. Errors on `nprobe` of 0 or above `nlist`.
    pub fn probe(&self, queries: &[f32], nprobe: usize) -> Result<Probes> {
        let dim = self.dim();
        let nlist = self.nlist();
        if nprobe == 0 || nprobe > nlist {
            return Err(CodecError::InvalidParameter(format!(
                "nprobe = {nprobe} is out of range (1..={nlist})"
            )));
        }
        if !queries.len().is_multiple_of(dim) {
            return Err(CodecError::DimensionMismatch {
                expected: dim,
                got: queries.len(),
            });
        }
        if let Some(bytes) = &self.bytes
            && nlist > 2 * nprobe
            && all_bytes(queries)
        {
            return self.probe_bytes(bytes, queries, nprobe);
        }
        self.probe_f32(queries, nprobe)
    }

    /// Fused f32 distance + top-nprobe selection (no nq × nlist matrix).
    fn probe_f32(&self, queries: &[f32], nprobe: usize) -> Result<Probes> {
        let (centroids, dim) = (&self.kmeans.centroids, self.dim());
        // Packing costs a pass over the centroids: a batch of a few queries (one search
        // in a fresh process) reads them directly instead; later batches reuse the copy.
        let packed = match self.packed.0.get() {
            Some(p) => Some(p),
            None if queries.len() / dim >= PACK_MIN_QUERIES
                && centroids.len() * 4 <= exact::PackedF32::MAX_BYTES =>
            {
                let p = Arc::new(exact::PackedF32::new(centroids, dim)?);
                Some(self.packed.0.get_or_init(|| p))
            }
            None => None,
        };
        let res = match packed {
            Some(packed) => exact::knn_l2_f32_packed(queries, centroids, packed, dim, nprobe)?,
            None => exact::knn_l2_f32(queries, centroids, dim, nprobe)?,
        };
        Ok(res
            .into_iter()
            .map(|row| row.into_iter().map(|n| (n.id as u32, n.distance)).collect())
            .collect())
    }

    /// Byte queries: rank the rounded centroids with the exact integer engine (about four
    /// times the f32 throughput), then re-score candidates exactly in f32, nearest rounded
    /// distance first, until no later candidate can be nearer than the `nprobe`-th: every
    /// centroid `c` is at least `(‖q − ĉ‖ − max‖c − ĉ‖)²` away, and candidates come in
    /// increasing `‖q − ĉ‖`. Queries whose `2 · nprobe + 9` candidates do not separate
    /// fall back to the f32 ranking, so the probed lists are always the true nearest ones.
    fn probe_bytes(&self, bytes: &ByteCentroids, queries: &[f32], nprobe: usize) -> Result<Probes> {
        let dim = self.dim();
        let nlist = self.nlist();
        let shortlist = (2 * nprobe + 9).min(nlist);
        let approx: Vec<Vec<(u32, f32)>> = match bytes
            .packed
            .as_ref()
            .and_then(|p| p.knn(queries, shortlist))
        {
            Some(approx) => approx,
            None => {
                let base = crate::vectors::VectorsRef::from_u8(&bytes.data, dim)?;
                exact::knn_l2(queries, &base, shortlist)?
                    .into_iter()
                    .map(|row| row.into_iter().map(|n| (n.id as u32, n.distance)).collect())
                    .collect()
            }
        };
        let mut out = Vec::with_capacity(approx.len());
        let mut fallback = Vec::new();
        for (qi, (q, cands)) in queries.chunks_exact(dim).zip(approx).enumerate() {
            // The rows re-scored first are scattered over the centroid table: start
            // loading them together.
            for &(l, _) in cands.iter().take(nprobe + 4) {
                prefetch_slice(self.centroid(l as usize));
            }
            let mut exact: Vec<(u32, f32)> = Vec::with_capacity(nprobe + 1);
            let mut separated = cands.len() == nlist;
            for &(l, rounded) in &cands {
                if exact.len() == nprobe {
                    let worst = exact[nprobe - 1].1;
                    let gap = rounded.max(0.0).sqrt() - bytes.max_error;
                    // A relative margin covers the f32 rounding of both distance sums.
                    if gap > 0.0 && gap * gap > worst * (1.0 + 1e-4) + 1e-3 {
                        separated = true;
                        break;
                    }
                }
                let dis = crate::distance::l2_sqr(q, self.centroid(l as usize));
                let at = exact.partition_point(|e| e.1 < dis || (e.1 == dis && e.0 < l));
                if at < nprobe {
                    exact.insert(at, (l, dis));
                    exact.truncate(nprobe);
                }
            }
            if !separated || exact.len() < nprobe {
                fallback.push(qi);
            }
            out.push(exact);
        }
        if !fallback.is_empty() {
            let rows: Vec<f32> = fallback
                .iter()
                .flat_map(|&qi| queries[qi * dim..(qi + 1) * dim].iter().copied())
                .collect();
            for (qi, probes) in fallback.into_iter().zip(self.probe_f32(&rows, nprobe)?) {
                out[qi] = probes;
            }
        }
        Ok(out)
    }
}

/// The `n` smallest entries of `row` as (index, value), ascending (ties by index; NaN
/// never selected). Keeps a sorted buffer; chunks of 16 whose minimum cannot enter are
/// skipped with one (vectorised) pass.
pub fn smallest(row: &[f32], n: usize) -> Vec<(u32, f32)> {
    let n = n.min(row.len());
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(n + 1);
    if n == 0 {
        return best;
    }
    let mut worst = f32::INFINITY;
    let offer = |i: usize, d: f32, best: &mut Vec<(u32, f32)>, worst: &mut f32| {
        if d.is_nan() || (best.len() == n && d >= *worst) {
            return;
        }
        let pos = best.partition_point(|b| b.1 <= d);
        best.insert(pos, (i as u32, d));
        if best.len() > n {
            best.pop();
        }
        if best.len() == n {
            *worst = best[n - 1].1;
        }
    };
    let mut chunks = row.chunks_exact(16);
    let mut base = 0;
    for chunk in &mut chunks {
        let min = chunk.iter().fold(f32::INFINITY, |m, &v| m.min(v));
        if min < worst || best.len() < n {
            for (j, &d) in chunk.iter().enumerate() {
                offer(base + j, d, &mut best, &mut worst);
            }
        }
        base += 16;
    }
    for (j, &d) in chunks.remainder().iter().enumerate() {
        offer(base + j, d, &mut best, &mut worst);
    }
    best
}

/// Issues a cache prefetch for every 64-byte line of `data` (x86-64 only; elsewhere a
/// no-op).
pub fn prefetch_slice<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = data.as_ptr().cast::<i8>();
        let bytes = std::mem::size_of_val(data);
        let mut off = 0;
        while off < bytes {
            // SAFETY: prefetch is only a hint and never faults; the address is inside
            // `data` (off < its byte length). SSE is part of the x86-64 baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.add(off)) };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// Floats owned elsewhere (e.g. a section of a memory-mapped model file), shared.
pub type SharedFloats = std::sync::Arc<dyn AsRef<[f32]> + Send + Sync>;

/// Where the precomputed tables live: built on the heap at training time, or served from
/// a shared buffer (the engine maps them from the model file instead of rebuilding them).
#[derive(Clone)]
enum TableData {
    Owned(Vec<f32>),
    Shared(SharedFloats),
}

impl TableData {
    fn as_slice(&self) -> &[f32] {
        match self {
            TableData::Owned(v) => v,
            TableData::Shared(s) => s.as_ref().as_ref(),
        }
    }
}

/// The query-independent IVF-PQ term of the list with centroid `centroid`: `‖y‖² + 2⟨c, y⟩`
/// for every sub-centroid `y` (LUT layout; `norms` = [`ProductQuantizer::centroid_norms`]).
/// What [`PrecomputedTables`] stores per list and a shared list pass builds on the fly.
pub fn list_term_into(
    pq: &ProductQuantizer,
    centroid: &[f32],
    norms: &[f32],
    out: &mut [f32],
) -> Result<()> {
    pq.compute_ip_lut_into(centroid, 2.0, out)?;
    for (v, n) in out.iter_mut().zip(norms) {
        *v += n;
    }
    Ok(())
}

/// Query-independent IVF-PQ terms `‖r‖² + 2⟨c, r⟩` per (list, sub-quantizer, code).
#[derive(Clone)]
pub struct PrecomputedTables {
    lut_len: usize,
    table: TableData,
    /// The tables in half precision, one power-of-two scale per list (see
    /// `adc::half_terms`), built on first use by [`PrecomputedTables::half_list`].
    half: Arc<std::sync::OnceLock<HalfTables>>,
}

/// [`PrecomputedTables`] in scaled half precision.
struct HalfTables {
    bits: Vec<u16>,
    scales: Vec<f32>,
}

impl std::fmt::Debug for PrecomputedTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrecomputedTables")
            .field("lut_len", &self.lut_len)
            .field("floats", &self.table.as_slice().len())
            .finish()
    }
}

impl PartialEq for PrecomputedTables {
    fn eq(&self, other: &Self) -> bool {
        self.lut_len == other.lut_len && self.table.as_slice() == other.table.as_slice()
    }
}

impl PrecomputedTables {
    /// Tables held in a shared buffer of `nlist × lut_len` floats (validated).
    pub fn from_shared(data: SharedFloats, lut_len: usize, nlist: usize) -> Result<Self> {
        let len = data.as_ref().as_ref().len();
        if lut_len == 0 || Some(len) != nlist.checked_mul(lut_len) {
            return Err(CodecError::DimensionMismatch {
                expected: nlist.saturating_mul(lut_len),
                got: len,
            });
        }
        Ok(PrecomputedTables {
            lut_len,
            table: TableData::Shared(data),
            half: Arc::default(),
        })
    }

    /// All tables, list after list.
    pub fn as_slice(&self) -> &[f32] {
        self.table.as_slice()
    }

    /// Floats per list (`m × ksub`).
    pub fn lut_len(&self) -> usize {
        self.lut_len
    }

    /// Bytes the tables take for `nlist` lists and this quantizer.
    pub fn bytes_needed(nlist: usize, pq: &ProductQuantizer) -> usize {
        nlist.saturating_mul(pq.lut_len()).saturating_mul(4)
    }

    /// Builds the tables (parallel over lists).
    pub fn build(coarse: &CoarseQuantizer, pq: &ProductQuantizer) -> Result<Self> {
        if coarse.dim() != pq.dim {
            return Err(CodecError::DimensionMismatch {
                expected: pq.dim,
                got: coarse.dim(),
            });
        }
        let lut_len = pq.lut_len();
        let norms = pq.centroid_norms();
        let mut table = vec![0.0f32; coarse.nlist() * lut_len];
        let results: Vec<Result<()>> = table
            .par_chunks_mut(lut_len)
            .enumerate()
            .map(|(l, t)| list_term_into(pq, coarse.centroid(l), &norms, t))
            .collect();
        results.into_iter().collect::<Result<()>>()?;
        Ok(PrecomputedTables {
            lut_len,
            table: TableData::Owned(table),
            half: Arc::default(),
        })
    }

    /// The table of list `l` (`m × ksub`).
    pub fn list(&self, l: usize) -> &[f32] {
        &self.table.as_slice()[l * self.lut_len..(l + 1) * self.lut_len]
    }

    /// Asks the CPU to start loading the table of list `l` into cache (a hint; no effect
    /// on results). Issued for the next probed list while the current one is scanned, so
    /// the table read overlaps the scan instead of stalling on memory.
    pub fn prefetch(&self, l: usize) {
        if l * self.lut_len >= self.table.as_slice().len() {
            return;
        }
        prefetch_slice(self.list(l));
    }

    /// The table of list `l` in scaled half precision: `(bits, scale)` with every entry
    /// `scale · f32(bits[i])` within `2^-11` of the list's largest entry (see
    /// `adc::half_terms`). Built for all lists on first use (half the bytes to read per
    /// probed list; fast scan quantizes its tables to bytes anyway).
    pub fn half_list(&self, l: usize) -> (&[u16], f32) {
        let half = self.half.get_or_init(|| {
            let data = self.table.as_slice();
            let mut bits = vec![0u16; data.len()];
            let scales = data
                .chunks_exact(self.lut_len)
                .zip(bits.chunks_exact_mut(self.lut_len))
                .map(|(list, out)| crate::adc::half_terms::encode_slice(list, out))
                .collect();
            HalfTables { bits, scales }
        });
        match half.bits.get(l * self.lut_len..(l + 1) * self.lut_len) {
            Some(bits) => (bits, half.scales[l]),
            None => (&[], 1.0),
        }
    }

    /// Starts loading the half-precision table of list `l` (a hint).
    pub fn prefetch_half(&self, l: usize) {
        if let Some(half) = self.half.get()
            && let Some(bits) = half.bits.get(l * self.lut_len..(l + 1) * self.lut_len)
        {
            prefetch_slice(bits);
        }
    }

    /// Memory used, in bytes.
    pub fn bytes(&self) -> usize {
        self.table.as_slice().len() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::l2_sqr;
    use crate::kmeans::tests::blobs;

    #[test]
    fn half_tables_stay_within_their_bound() {
        let data = blobs(2_000, 8, 4, 5);
        let cq = CoarseQuantizer::train(&data, 8, 6, &KMeansParams::default()).unwrap();
        let mut pq = ProductQuantizer::new(8, 4, 4).unwrap();
        pq.train(&data, &KMeansParams::default()).unwrap();
        let tables = PrecomputedTables::build(&cq, &pq).unwrap();
        for l in 0..6 {
            let exact = tables.list(l);
            let (bits, scale) = tables.half_list(l);
            assert_eq!(bits.len(), exact.len());
            let max_abs = exact.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (&x, &h) in exact.iter().zip(bits) {
                let back = scale * crate::half::f16_to_f32(h);
                assert!(
                    (back - x).abs() <= max_abs * 2f32.powi(-10),
                    "{x} vs {back}"
                );
            }
        }
        assert_eq!(tables.half_list(6), (&[][..], 1.0));
    }

    #[test]
    fn smallest_is_sorted_and_exact() {
        let row = [5.0, 1.0, 3.0, 1.0, 0.5, 9.0, 2.0];
        assert_eq!(smallest(&row, 3), vec![(4, 0.5), (1, 1.0), (3, 1.0)]);
        assert_eq!(smallest(&row, 10).len(), 7);
        assert!(smallest(&row, 0).is_empty());
        // Longer rows exercise the chunk skipping: compare with a full sort.
        let mut rng = crate::kmeans::SeededRng::new(3);
        let long: Vec<f32> = (0..1000).map(|_| rng.below(500) as f32).collect();
        let mut all: Vec<(u32, f32)> = long
            .iter()
            .enumerate()
            .map(|(i, &d)| (i as u32, d))
            .collect();
        all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        all.truncate(37);
        assert_eq!(smallest(&long, 37), all);
    }

    #[test]
    fn probe_matches_brute_force_and_validates() {
        let data = blobs(8, 50, 6, 2);
        let cq = CoarseQuantizer::train(&data, 6, 16, &KMeansParams::default()).unwrap();
        let check = |q: &[f32]| {
            let probes = cq.probe(q, 4).unwrap();
            assert_eq!(probes.len(), q.len() / 6);
            for (i, p) in probes.iter().enumerate() {
                let mut all: Vec<(u32, f32)> = (0..16)
                    .map(|l| (l as u32, l2_sqr(&q[i * 6..(i + 1) * 6], cq.centroid(l))))
                    .collect();
                all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                assert_eq!(p.len(), 4);
                for (a, b) in p.iter().zip(&all) {
                    assert_eq!(a.0, b.0);
                    assert!((a.1 - b.1).abs() <= 1e-2 * b.1.max(1.0));
                }
            }
        };
        // A few queries read the centroids directly, a batch packs them once, and later
        // small calls reuse the packed copy: the same lists every time.
        check(&data[6 * 100..6 * 103]);
        assert!(cq.packed.0.get().is_none());
        let q = &data[..6 * 70];
        check(q);
        assert!(cq.packed.0.get().is_some());
        check(&data[6 * 100..6 * 103]);
        assert!(cq.probe(q, 0).is_err());
        assert!(cq.probe(q, 17).is_err());
        assert!(CoarseQuantizer::train(&data[..60], 6, 11, &KMeansParams::default()).is_err());
    }

    #[test]
    fn precomputed_terms_give_exact_residual_distances() {
        let dim = 8;
        let data = blobs(10, 60, dim, 4);
        let cq = CoarseQuantizer::train(&data, dim, 4, &KMeansParams::default()).unwrap();
        let assign = cq.assign(&data).unwrap();
        let mut resid = data.clone();
        for (r, a) in resid.chunks_exact_mut(dim).zip(&assign) {
            for (v, c) in r.iter_mut().zip(cq.centroid(a.0 as usize)) {
                *v -= c;
            }
        }
        let mut pq = ProductQuantizer::new(dim, 4, 5).unwrap();
        pq.train(&resid, &KMeansParams::default()).unwrap();
        let tables = PrecomputedTables::build(&cq, &pq).unwrap();
        let codes = pq.encode(&resid).unwrap();
        let q = &data[3 * dim..4 * dim];
        let mut qlut = vec![0.0; pq.lut_len()];
        pq.compute_ip_lut_into(q, -2.0, &mut qlut).unwrap();
        for i in 0..20 {
            let l = assign[i].0 as usize;
            let coarse = l2_sqr(q, cq.centroid(l));
            let code = &codes[i * 4..(i + 1) * 4];
            let t = tables.list(l);
            let adc: f32 = coarse
                + code
                    .iter()
                    .enumerate()
                    .map(|(s, &c)| t[s * 32 + c as usize] + qlut[s * 32 + c as usize])
                    .sum::<f32>();
            let mut recon = pq.decode(code).unwrap();
            for (v, c) in recon.iter_mut().zip(cq.centroid(l)) {
                *v += c;
            }
            let want = l2_sqr(q, &recon);
            assert!(
                (adc - want).abs() <= 1e-2 * want.max(1.0),
                "{adc} vs {want}"
            );
        }
    }

    #[test]
    fn byte_queries_probe_the_same_lists_as_f32() {
        // Byte-valued data (SIFT-like): centroids are in 0..=255, so byte queries take the
        // integer pre-pass; it must find the same nearest lists as the f32 ranking.
        let mut rng = crate::kmeans::SeededRng::new(5);
        let dim = 24;
        let data: Vec<f32> = (0..4000 * dim).map(|_| rng.below(256) as f32).collect();
        let cq = CoarseQuantizer::train(&data, dim, 64, &KMeansParams::default()).unwrap();
        assert!(cq.bytes.is_some());
        let queries: Vec<f32> = (0..300 * dim).map(|_| rng.below(256) as f32).collect();
        for nprobe in [1, 4, 16, 31] {
            let fast = cq.probe(&queries, nprobe).unwrap();
            let slow = cq.probe_f32(&queries, nprobe).unwrap();
            for (a, b) in fast.iter().zip(&slow) {
                // The same lists; the order of near-ties may differ (the f32 engine
                // computes ‖q‖² + ‖c‖² − 2⟨q, c⟩, the re-scoring Σ (q − c)²).
                let mut ids_a: Vec<u32> = a.iter().map(|p| p.0).collect();
                let mut ids_b: Vec<u32> = b.iter().map(|p| p.0).collect();
                ids_a.sort_unstable();
                ids_b.sort_unstable();
                assert_eq!(ids_a, ids_b, "nprobe {nprobe}");
                assert!(a.windows(2).all(|w| w[0].1 <= w[1].1));
                for (x, y) in a.iter().zip(b) {
                    assert!((x.1 - y.1).abs() <= 1e-3 * y.1.max(1.0));
                }
            }
        }
        // Non-byte queries and non-byte centroids take the f32 path.
        let halves: Vec<f32> = queries.iter().map(|v| v + 0.5).collect();
        assert_eq!(
            cq.probe(&halves, 4).unwrap(),
            cq.probe_f32(&halves, 4).unwrap()
        );
        let shifted: Vec<f32> = data.iter().map(|v| v - 300.0).collect();
        let neg = CoarseQuantizer::train(&shifted, dim, 16, &KMeansParams::default()).unwrap();
        assert!(neg.bytes.is_none());
    }
}
