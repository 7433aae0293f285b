//! The few nearest rows of a small, fixed byte matrix for byte queries: the IVF coarse
//! quantizer of SIFT-like data, ranked once per query (4,096 centroids × 128 bytes is the
//! largest single cost of a fast-scan query).
//!
//! [`PackedBytes`] packs the rows into VNNI panels once, when it is built, instead of on
//! every call. The micro-kernel keeps a tile of queries' dot products in registers, writes
//! each query's distances to all rows into a buffer, and keeps, in registers, the minimum
//! of every *group* of 32 rows (lane `j` of 16 consecutive panels). Selection then needs
//! no heap and almost no branches: if `T` is the k-th smallest group minimum, at least
//! `k` rows lie at or below `T` (one per group), so the k nearest are among the rows
//! `<= T`, which a vector compare finds; with rows in an order unrelated to the query,
//! only a little more than `k` of them pass.
//!
//! Distances are exact integers: with queries stored as `q - 128` (see `gemm_u8`),
//! `‖x‖² - 2 q·x = bias(x) - 2 Σ (q - 128) x`, and `‖q‖²` is added at the end.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::gemm_u8::vnni_dots;
use super::gemm_u8::{QueriesU8, U8Path};
use super::panels::{MAX_U8_DIM, NR, PanelsU8};

/// Queries whose dot products a kernel call keeps in registers (2 accumulators each).
const TILE: usize = 8;

/// Rows of `u8` packed once for the fused VNNI few-nearest kernel.
pub struct PackedBytes {
    panels: PanelsU8,
    dim: usize,
}

impl std::fmt::Debug for PackedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedBytes")
            .field("rows", &self.panels.rows())
            .field("dim", &self.dim)
            .finish()
    }
}

impl PackedBytes {
    /// Packs `data` (rows of `dim` bytes). `None` when this CPU has no AVX-512 VNNI, the
    /// dimension is 0 or above the integer engine's limit, or `data` is not whole rows:
    /// callers then use the general engine ([`super::knn_l2`]).
    pub fn new(data: &[u8], dim: usize) -> Option<Self> {
        let path = U8Path::detect()?;
        if dim == 0 || dim > MAX_U8_DIM || !data.len().is_multiple_of(dim) {
            return None;
        }
        let rows = data.len() / dim;
        if rows == 0 || rows > u32::MAX as usize {
            return None;
        }
        let mut panels = PanelsU8::default();
        panels.pack(rows, dim, |r| &data[r * dim..(r + 1) * dim], path);
        Some(PackedBytes { panels, dim })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.panels.rows()
    }

    /// The `k` nearest rows of every query (contiguous rows of `dim` floats) as
    /// `(row, squared L2)`, nearest first, ties by the smaller row. `None` when some
    /// query component is not an integer in `0..=255` (the integer path would not be
    /// exact) or the query length is not a multiple of the dimension.
    pub fn knn(&self, queries: &[f32], k: usize) -> Option<Vec<Vec<(u32, f32)>>> {
        if !queries.len().is_multiple_of(self.dim) {
            return None;
        }
        let q8 = QueriesU8::convert(queries, self.dim)?;
        let nq = q8.norms.len();
        let k = k.min(self.rows());
        if k == 0 {
            return Some(vec![Vec::new(); nq]);
        }
        let d4 = q8.dim4;
        let tiles: Vec<usize> = (0..nq).step_by(TILE).collect();
        let per_tile: Vec<Vec<Vec<(u32, f32)>>> = tiles
            .par_iter()
            .map(|&q0| {
                // The thread's buffers, reused across calls (hundreds of KB each).
                SCRATCH.with(|scratch| {
                    let scratch = &mut *scratch.borrow_mut();
                    let m = TILE.min(nq - q0);
                    let q = &q8.shifted[q0 * d4..(q0 + m) * d4];
                    distances(q, m, d4, &self.panels, scratch);
                    (0..m)
                        .map(|i| scratch.select(i, self.rows(), k, q8.norms[q0 + i]))
                        .collect()
                })
            })
            .collect();
        Some(per_tile.into_iter().flatten().collect())
    }
}

/// Panels per row group: a group is lane `j` (of 16) of this many consecutive panels, i.e.
/// `2 * GROUP_PANELS` rows.
const GROUP_PANELS: usize = 16;

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Per-tile buffers, reused across tiles and calls (one per thread).
#[derive(Default)]
struct Scratch {
    /// `dist[i * stride + r]`: query `i`'s distance term to row `r` (padded rows included).
    dist: Vec<i32>,
    /// `mins[i * gstride + 16 * b + j]`: minimum over group `(b, j)`.
    mins: Vec<i32>,
    stride: usize,
    gstride: usize,
    keys: Vec<u64>,
    group_mins: Vec<i32>,
}

/// Orders by distance (signed), then row.
#[inline(always)]
fn key(distance: i32, row: u32) -> u64 {
    (u64::from((distance as u32) ^ 0x8000_0000) << 32) | u64::from(row)
}

#[inline(always)]
fn key_distance(key: u64) -> i32 {
    ((key >> 32) as u32 ^ 0x8000_0000) as i32
}

impl Scratch {
    fn resize(&mut self, m: usize, panels: usize) {
        self.stride = panels * NR;
        self.gstride = panels.div_ceil(GROUP_PANELS) * 16;
        self.dist.resize(m * self.stride, 0);
        self.mins.resize(m * self.gstride, 0);
    }

    /// The `k` nearest of query `i` of the tile (`rows` real rows, `k >= 1`), nearest
    /// first, ties by the smaller row, with `qnorm` added back.
    fn select(&mut self, i: usize, rows: usize, k: usize, qnorm: i32) -> Vec<(u32, f32)> {
        let dist = &self.dist[i * self.stride..][..rows];
        let mins = &self.mins[i * self.gstride..][..self.gstride];
        // Any bound with k groups at or below it has k rows at or below it. Groups made
        // only of padding rows hold `PAD_BIAS`, above every real distance.
        let bound = if mins.len() > k {
            self.group_mins.clear();
            self.group_mins.extend_from_slice(mins);
            *self.group_mins.select_nth_unstable(k - 1).1
        } else {
            i32::MAX
        };
        self.keys.clear();
        collect_at_most(dist, bound, &mut self.keys);
        if self.keys.len() > k {
            self.keys.select_nth_unstable(k - 1);
            self.keys.truncate(k);
        }
        self.keys.sort_unstable();
        self.keys
            .iter()
            .map(|&key| (key as u32, (key_distance(key) + qnorm) as f32))
            .collect()
    }
}

/// Appends the key of every entry of `dist` that is `<= bound`, in row order.
fn collect_at_most(dist: &[i32], bound: i32, keys: &mut Vec<u64>) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: only called through a `PackedBytes`, which exists only after AVX-512
    // (avx512f/bw/vnni) was detected.
    unsafe {
        collect_at_most_avx512(dist, bound, keys)
    }
    #[cfg(not(target_arch = "x86_64"))]
    for (r, &d) in dist.iter().enumerate() {
        if d <= bound {
            keys.push(key(d, r as u32));
        }
    }
}

/// [`collect_at_most`] with one vector compare per 16 entries.
///
/// # Safety
/// The CPU must support avx512f.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn collect_at_most_avx512(dist: &[i32], bound: i32, keys: &mut Vec<u64>) {
    let b = _mm512_set1_epi32(bound);
    let (chunks, rest) = dist.as_chunks::<16>();
    for (c, chunk) in chunks.iter().enumerate() {
        // SAFETY: `chunk` is 16 readable i32s.
        let v = unsafe { _mm512_loadu_si512(chunk.as_ptr().cast()) };
        let mut mask = _mm512_cmple_epi32_mask(v, b);
        while mask != 0 {
            let j = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            keys.push(key(chunk[j], (c * 16 + j) as u32));
        }
    }
    let base = chunks.len() * 16;
    for (j, &d) in rest.iter().enumerate() {
        if d <= bound {
            keys.push(key(d, (base + j) as u32));
        }
    }
}

/// Fills `scratch` with the distance terms and group minima of the `m <= TILE` queries
/// of `q` (their shifted rows) against every panel.
fn distances(q: &[i8], m: usize, dim4: usize, panels: &PanelsU8, scratch: &mut Scratch) {
    let count = panels.rows().div_ceil(NR);
    scratch.resize(m, count);
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: a `PackedBytes` exists only after `U8Path::detect` found
        // avx512f/bw/vnni; `q` holds `m` rows of `dim4` bytes and `scratch` was sized for
        // `m` queries and `count` panels.
        unsafe {
            match m {
                1 => distances_vnni::<1>(q, dim4, panels, scratch),
                2 => distances_vnni::<2>(q, dim4, panels, scratch),
                3 => distances_vnni::<3>(q, dim4, panels, scratch),
                4 => distances_vnni::<4>(q, dim4, panels, scratch),
                5 => distances_vnni::<5>(q, dim4, panels, scratch),
                6 => distances_vnni::<6>(q, dim4, panels, scratch),
                7 => distances_vnni::<7>(q, dim4, panels, scratch),
                _ => distances_vnni::<TILE>(q, dim4, panels, scratch),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // Never reached: `PackedBytes::new` needs the x86-64 VNNI path.
        let _ = (q, dim4, panels);
    }
}

/// `M` queries against every panel: dot products in registers, then distance terms to
/// `scratch.dist` and running group minima flushed to `scratch.mins` every
/// [`GROUP_PANELS`] panels.
///
/// # Safety
/// The CPU must support avx512f/bw/vnni; `q` holds `M` rows of `dim4` bytes, `panels`
/// was packed with the same `dim4`, and `scratch` is sized for `M` queries and all panels.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn distances_vnni<const M: usize>(
    q: &[i8],
    dim4: usize,
    panels: &PanelsU8,
    scratch: &mut Scratch,
) {
    let count = panels.rows().div_ceil(NR);
    debug_assert!(q.len() >= M * dim4 && panels.dim4() == dim4);
    debug_assert!(scratch.dist.len() >= M * scratch.stride && scratch.stride >= count * NR);
    let (stride, gstride) = (scratch.stride, scratch.gstride);
    let dist = scratch.dist.as_mut_ptr();
    let mins_out = scratch.mins.as_mut_ptr();
    let mut mins = [_mm512_set1_epi32(i32::MAX); M];
    for p in 0..count {
        let (lo, hi) = vnni_dots!(M, q, dim4, panels.panel(p));
        let bias = panels.bias(p);
        // SAFETY: `bias` is 32 i32s.
        let (bias_lo, bias_hi) = unsafe {
            (
                _mm512_loadu_si512(bias.as_ptr().cast()),
                _mm512_loadu_si512(bias.as_ptr().add(16).cast()),
            )
        };
        let flush = (p + 1) % GROUP_PANELS == 0 || p + 1 == count;
        for i in 0..M {
            let d_lo = _mm512_sub_epi32(bias_lo, _mm512_add_epi32(lo[i], lo[i]));
            let d_hi = _mm512_sub_epi32(bias_hi, _mm512_add_epi32(hi[i], hi[i]));
            mins[i] = _mm512_min_epi32(mins[i], _mm512_min_epi32(d_lo, d_hi));
            // SAFETY: row `i` of `dist` has `stride >= count * NR` entries; panel `p`
            // writes entries `p * NR .. p * NR + 32`. Group block `p / GROUP_PANELS`
            // writes 16 of the `gstride` minima of row `i`.
            unsafe {
                let out = dist.add(i * stride + p * NR);
                _mm512_storeu_si512(out.cast(), d_lo);
                _mm512_storeu_si512(out.add(16).cast(), d_hi);
                if flush {
                    let at = mins_out.add(i * gstride + (p / GROUP_PANELS) * 16);
                    _mm512_storeu_si512(at.cast(), mins[i]);
                    mins[i] = _mm512_set1_epi32(i32::MAX);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, dim: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n * dim)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // Few distinct values, so equal distances (ties) occur.
                ((x >> 60) * 17) as u8
            })
            .collect()
    }

    fn brute(data: &[u8], dim: usize, q: &[f32], k: usize) -> Vec<(u32, f32)> {
        let mut all: Vec<(u32, i64)> = data
            .chunks_exact(dim)
            .enumerate()
            .map(|(r, x)| {
                let d = x
                    .iter()
                    .zip(q)
                    .map(|(&a, &b)| (i64::from(a) - b as i64).pow(2))
                    .sum();
                (r as u32, d)
            })
            .collect();
        all.sort_by_key(|&(r, d)| (d, r));
        all.truncate(k);
        all.into_iter().map(|(r, d)| (r, d as f32)).collect()
    }

    #[test]
    fn matches_brute_force_with_ties_padding_and_odd_dims() {
        for (n, dim, nq, k) in [
            (100, 13, 11, 7),
            (64, 128, 9, 40),
            (33, 4, 17, 33),
            (5, 3, 2, 9),
        ] {
            let data = rows(n, dim, n as u64);
            let Some(packed) = PackedBytes::new(&data, dim) else {
                return; // no VNNI on this CPU: the general engine serves instead
            };
            let queries: Vec<f32> = rows(nq, dim, 99).iter().map(|&b| f32::from(b)).collect();
            let got = packed.knn(&queries, k).expect("byte queries");
            for (qi, q) in queries.chunks_exact(dim).enumerate() {
                assert_eq!(got[qi], brute(&data, dim, q, k), "n {n} dim {dim} q {qi}");
            }
        }
    }

    #[test]
    fn rejects_non_byte_queries() {
        let data = rows(40, 8, 1);
        if let Some(packed) = PackedBytes::new(&data, 8) {
            assert!(packed.knn(&[0.5; 8], 3).is_none());
            assert!(packed.knn(&[300.0; 8], 3).is_none());
            assert!(packed.knn(&[1.0; 7], 3).is_none());
            assert_eq!(packed.knn(&[1.0; 8], 0), Some(vec![Vec::new()]));
        }
    }
}
