//! k-means clustering (Lloyd's algorithm) on contiguous `f32` rows, plus the small seeded
//! random number generator every trainer in this crate uses.
//!
//! Training follows the usual large-scale recipe: subsample to at most
//! `max_points_per_centroid × k` points, initialise from `k` distinct random points (or
//! k-means++), then alternate an assignment step (blocked nearest-centroid search across
//! the rayon pool, see [`crate::exact::nearest_l2`]) and an update step (mean of each
//! cluster, computed per centroid so the result does not depend on the thread count).
//! Empty clusters are re-seeded by splitting a large cluster in two. Everything is
//! deterministic for a given seed.

use rayon::prelude::*;

use crate::error::{CodecError, Result};
use crate::exact;

/// SplitMix64: a tiny, fast, seedable generator (not cryptographic). Deterministic across
/// platforms, which is what reproducible training needs.
#[derive(Debug, Clone)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    /// A generator whose whole output is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        SeededRng {
            state: seed ^ 0x853c_49e6_748f_ea9b,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`n > 0`; returns 0 for `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: unbiased enough for sampling training points.
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A standard normal sample (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.next_f64().max(f64::MIN_POSITIVE);
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// The first `count` entries of a uniformly random permutation of `0..n`.
    pub fn sample_indices(&mut self, n: usize, count: usize) -> Vec<usize> {
        let count = count.min(n);
        let mut perm: Vec<usize> = (0..n).collect();
        for i in 0..count {
            let j = i + self.below(n - i);
            perm.swap(i, j);
        }
        perm.truncate(count);
        perm
    }
}

/// How the initial centroids are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KMeansInit {
    /// `k` distinct random training points (what FAISS does; fast for large k).
    RandomPoints,
    /// k-means++ seeding (better starts, O(n·k·d) serial steps: meant for small k).
    PlusPlus,
}

/// Parameters of [`KMeans::train`].
#[derive(Debug, Clone)]
pub struct KMeansParams {
    /// Lloyd iterations (each one assignment + update). Default 25.
    pub iterations: usize,
    /// Seed of every random choice (subsample, init, cluster splits).
    pub seed: u64,
    /// Training points are subsampled to at most this many per centroid. Default 256.
    pub max_points_per_centroid: usize,
    /// Below this many points per centroid a warning is recorded. Default 39.
    pub min_points_per_centroid: usize,
    /// Initialisation method. Default [`KMeansInit::RandomPoints`].
    pub init: KMeansInit,
    /// Print warnings and per-iteration objective to stderr.
    pub verbose: bool,
}

impl Default for KMeansParams {
    fn default() -> Self {
        KMeansParams {
            iterations: 25,
            seed: 1234,
            max_points_per_centroid: 256,
            min_points_per_centroid: 39,
            init: KMeansInit::RandomPoints,
            verbose: false,
        }
    }
}

/// A trained k-means model: `k` centroids of `dim` floats, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    /// `k × dim` centroid coordinates, row-major.
    pub centroids: Vec<f32>,
    /// Dimension of the points and centroids.
    pub dim: usize,
    /// Number of centroids.
    pub k: usize,
    /// Training warnings (e.g. too few points per centroid); empty when all was well.
    pub warnings: Vec<String>,
    /// Sum of squared distances to the nearest centroid after the last assignment step.
    pub objective: f64,
}

fn check_finite(data: &[f32], dim: usize) -> Result<()> {
    if let Some(pos) = data.iter().position(|v| !v.is_finite()) {
        return Err(CodecError::NonFinite {
            row: pos / dim.max(1),
        });
    }
    Ok(())
}

impl KMeans {
    /// Wraps existing centroids (e.g. loaded from disk) as a model.
    pub fn from_centroids(centroids: Vec<f32>, dim: usize) -> Result<KMeans> {
        if dim == 0 || centroids.is_empty() || !centroids.len().is_multiple_of(dim) {
            return Err(CodecError::DimensionMismatch {
                expected: dim,
                got: centroids.len(),
            });
        }
        check_finite(&centroids, dim)?;
        let k = centroids.len() / dim;
        Ok(KMeans {
            centroids,
            dim,
            k,
            warnings: Vec::new(),
            objective: 0.0,
        })
    }

    /// Clusters `data` (contiguous rows of `dim`) into `k` clusters.
    ///
    /// Errors: `dim == 0` or a ragged matrix, `k == 0`, `iterations == 0`, fewer points
    /// than centroids, a NaN or infinite component.
    pub fn train(data: &[f32], dim: usize, k: usize, params: &KMeansParams) -> Result<KMeans> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(CodecError::DimensionMismatch {
                expected: dim,
                got: data.len(),
            });
        }
        if k == 0 {
            return Err(CodecError::InvalidParameter(
                "k-means needs k >= 1 centroids".into(),
            ));
        }
        if k > u32::MAX as usize {
            return Err(CodecError::InvalidParameter(format!(
                "k = {k} is too large"
            )));
        }
        if params.iterations == 0 {
            return Err(CodecError::InvalidParameter(
                "k-means needs at least one iteration".into(),
            ));
        }
        if params.max_points_per_centroid == 0 {
            return Err(CodecError::InvalidParameter(
                "max_points_per_centroid must be at least 1".into(),
            ));
        }
        let n = data.len() / dim;
        if n < k {
            return Err(CodecError::NotEnoughPoints {
                what: format!("k-means with {k} centroids"),
                needed: k,
                got: n,
            });
        }
        check_finite(data, dim)?;

        let mut rng = SeededRng::new(params.seed);
        let mut warnings = Vec::new();
        // Subsample (and shuffle, so that the first k points are a random init).
        let max_n = k.saturating_mul(params.max_points_per_centroid);
        let order = rng.sample_indices(n, max_n.min(n));
        let mut train = Vec::with_capacity(order.len() * dim);
        for &i in &order {
            train.extend_from_slice(&data[i * dim..(i + 1) * dim]);
        }
        let n = order.len();
        if n < k.saturating_mul(params.min_points_per_centroid) {
            warnings.push(format!(
                "k-means: {n} training points for {k} centroids (fewer than {} per centroid); \
                 clusters may be poor",
                params.min_points_per_centroid
            ));
        }

        let mut centroids = match params.init {
            KMeansInit::RandomPoints => train[..k * dim].to_vec(),
            KMeansInit::PlusPlus => plus_plus_init(&train, dim, k, &mut rng)?,
        };

        let mut objective = f64::INFINITY;
        let mut assignment: Vec<(u32, f32)> = Vec::new();
        for iter in 0..params.iterations {
            let new_assignment = exact::nearest_l2(&train, &centroids, dim)?;
            let new_objective: f64 = new_assignment.iter().map(|a| f64::from(a.1)).sum();
            let converged = !assignment.is_empty()
                && new_assignment
                    .iter()
                    .zip(&assignment)
                    .all(|(a, b)| a.0 == b.0);
            assignment = new_assignment;
            objective = new_objective;
            if params.verbose {
                eprintln!("k-means iteration {iter}: objective {objective:.6e}");
            }
            if converged {
                break;
            }
            let splits = update_centroids(&train, dim, k, &assignment, &mut centroids, &mut rng);
            if splits > 0 && params.verbose {
                eprintln!("k-means iteration {iter}: re-seeded {splits} empty clusters");
            }
            if iter + 1 == params.iterations {
                // Report the objective of the final centroids.
                assignment = exact::nearest_l2(&train, &centroids, dim)?;
                objective = assignment.iter().map(|a| f64::from(a.1)).sum();
            }
        }
        if params.verbose {
            for w in &warnings {
                eprintln!("warning: {w}");
            }
        }
        Ok(KMeans {
            centroids,
            dim,
            k,
            warnings,
            objective,
        })
    }

    /// Nearest centroid (index, squared distance) of every row of `data`.
    pub fn assign(&self, data: &[f32]) -> Result<Vec<(u32, f32)>> {
        exact::nearest_l2(data, &self.centroids, self.dim)
    }

    /// Centroid `i` (`i < k`).
    pub fn centroid(&self, i: usize) -> &[f32] {
        &self.centroids[i * self.dim..(i + 1) * self.dim]
    }
}

/// k-means++ seeding: each next centroid is a point drawn with probability proportional
/// to its squared distance to the nearest centroid chosen so far.
fn plus_plus_init(train: &[f32], dim: usize, k: usize, rng: &mut SeededRng) -> Result<Vec<f32>> {
    let n = train.len() / dim;
    let mut centroids = Vec::with_capacity(k * dim);
    let first = rng.below(n);
    centroids.extend_from_slice(&train[first * dim..(first + 1) * dim]);
    let mut best: Vec<f32> = train
        .par_chunks_exact(dim)
        .map(|p| crate::distance::l2_sqr(p, &centroids[..dim]))
        .collect();
    for _ in 1..k {
        let total: f64 = best.iter().map(|&d| f64::from(d)).sum();
        let pick = if total > 0.0 {
            let mut r = rng.next_f64() * total;
            let mut chosen = n - 1;
            for (i, &d) in best.iter().enumerate() {
                r -= f64::from(d);
                if r < 0.0 {
                    chosen = i;
                    break;
                }
            }
            chosen
        } else {
            rng.below(n)
        };
        let c = train[pick * dim..(pick + 1) * dim].to_vec();
        best.par_iter_mut()
            .zip(train.par_chunks_exact(dim))
            .for_each(|(b, p)| {
                let d = crate::distance::l2_sqr(p, &c);
                if d < *b {
                    *b = d;
                }
            });
        centroids.extend_from_slice(&c);
    }
    Ok(centroids)
}

/// The update step: every centroid becomes the mean of its points; empty clusters are
/// re-seeded by splitting a large one. Returns the number of splits.
fn update_centroids(
    train: &[f32],
    dim: usize,
    k: usize,
    assignment: &[(u32, f32)],
    centroids: &mut [f32],
    rng: &mut SeededRng,
) -> usize {
    // Counting sort of point indices by cluster, so each centroid sums its own points.
    let mut counts = vec![0usize; k];
    for a in assignment {
        counts[a.0 as usize] += 1;
    }
    let mut starts = vec![0usize; k + 1];
    for c in 0..k {
        starts[c + 1] = starts[c] + counts[c];
    }
    let mut fill = starts.clone();
    let mut members = vec![0u32; assignment.len()];
    for (i, a) in assignment.iter().enumerate() {
        let c = a.0 as usize;
        members[fill[c]] = i as u32;
        fill[c] += 1;
    }
    centroids
        .par_chunks_exact_mut(dim)
        .enumerate()
        .for_each(|(c, out)| {
            let ids = &members[starts[c]..starts[c + 1]];
            if ids.is_empty() {
                return;
            }
            let mut sum = vec![0.0f64; dim];
            for &i in ids {
                let p = &train[i as usize * dim..(i as usize + 1) * dim];
                for (s, &v) in sum.iter_mut().zip(p) {
                    *s += f64::from(v);
                }
            }
            let inv = 1.0 / ids.len() as f64;
            for (o, s) in out.iter_mut().zip(&sum) {
                *o = (s * inv) as f32;
            }
        });
    split_empty_clusters(dim, &mut counts, centroids, assignment.len(), rng)
}

/// Re-seeds each empty cluster by splitting a cluster chosen with probability
/// proportional to (size − 1): the two halves get the centroid nudged in opposite
/// directions, and the next iteration's assignment separates them.
fn split_empty_clusters(
    dim: usize,
    counts: &mut [usize],
    centroids: &mut [f32],
    n: usize,
    rng: &mut SeededRng,
) -> usize {
    const EPS: f32 = 1.0 / 1024.0;
    let k = counts.len();
    let mut splits = 0;
    for empty in 0..k {
        if counts[empty] != 0 {
            continue;
        }
        let weight: usize = counts.iter().map(|&c| c.saturating_sub(1)).sum();
        if weight == 0 || n <= k {
            break;
        }
        let mut r = rng.below(weight);
        let mut donor = 0;
        for (c, &cnt) in counts.iter().enumerate() {
            let w = cnt.saturating_sub(1);
            if r < w {
                donor = c;
                break;
            }
            r -= w;
        }
        for j in 0..dim {
            let v = centroids[donor * dim + j];
            let sign = if j % 2 == 0 { 1.0 } else { -1.0 };
            centroids[empty * dim + j] = v * (1.0 + sign * EPS);
            centroids[donor * dim + j] = v * (1.0 - sign * EPS);
        }
        counts[empty] = counts[donor] / 2;
        counts[donor] -= counts[empty];
        splits += 1;
    }
    splits
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `clusters` well-separated Gaussian blobs of `per` points in `dim` dimensions.
    pub(crate) fn blobs(clusters: usize, per: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = SeededRng::new(seed);
        let centers: Vec<f32> = (0..clusters * dim)
            .map(|_| (rng.next_f64() * 100.0) as f32)
            .collect();
        let mut out = Vec::with_capacity(clusters * per * dim);
        for i in 0..clusters * per {
            let c = i % clusters;
            for j in 0..dim {
                out.push(centers[c * dim + j] + rng.normal() as f32 * 0.5);
            }
        }
        out
    }

    #[test]
    fn recovers_separated_blobs() {
        let (dim, k) = (8, 10);
        let data = blobs(k, 100, dim, 7);
        let params = KMeansParams {
            init: KMeansInit::PlusPlus,
            ..Default::default()
        };
        let km = KMeans::train(&data, dim, k, &params).unwrap();
        assert_eq!(km.centroids.len(), k * dim);
        // Each blob point is within a few sigma of its centroid: objective ≈ n·dim·0.25.
        let n = data.len() / dim;
        assert!(
            km.objective < n as f64 * dim as f64 * 0.5,
            "objective {}",
            km.objective
        );
        let a = km.assign(&data).unwrap();
        // All points of a blob share a centroid.
        for i in k..n {
            assert_eq!(a[i].0, a[i % k].0);
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        let data = blobs(5, 60, 4, 3);
        let p = KMeansParams::default();
        let a = KMeans::train(&data, 4, 16, &p).unwrap();
        let b = KMeans::train(&data, 4, 16, &p).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn errors_and_warnings() {
        let data = blobs(2, 5, 4, 1);
        assert!(matches!(
            KMeans::train(&data, 4, 11, &KMeansParams::default()),
            Err(CodecError::NotEnoughPoints { .. })
        ));
        assert!(KMeans::train(&data, 4, 0, &KMeansParams::default()).is_err());
        assert!(KMeans::train(&data[..7], 4, 2, &KMeansParams::default()).is_err());
        let mut bad = data.clone();
        bad[5] = f32::NAN;
        assert_eq!(
            KMeans::train(&bad, 4, 2, &KMeansParams::default()),
            Err(CodecError::NonFinite { row: 1 })
        );
        let km = KMeans::train(&data, 4, 2, &KMeansParams::default()).unwrap();
        assert_eq!(km.warnings.len(), 1);
    }

    #[test]
    fn empty_clusters_are_split() {
        // Many duplicate points force empty clusters; training must still give k centroids
        // that are all finite, and more distinct centroids than a single point.
        let mut data = vec![0.0f32; 200 * 2];
        for i in 0..50 {
            data[i * 2] = i as f32;
        }
        let km = KMeans::train(&data, 2, 20, &KMeansParams::default()).unwrap();
        assert!(km.centroids.iter().all(|v| v.is_finite()));
        let mut firsts: Vec<i64> = km
            .centroids
            .chunks(2)
            .map(|c| (c[0] * 1000.0) as i64)
            .collect();
        firsts.sort();
        firsts.dedup();
        assert!(firsts.len() >= 10, "{firsts:?}");
    }

    #[test]
    fn subsamples_to_max_points() {
        let data = blobs(4, 500, 4, 9);
        let p = KMeansParams {
            max_points_per_centroid: 10,
            ..Default::default()
        };
        let km = KMeans::train(&data, 4, 4, &p).unwrap();
        // Objective is over the 40-point subsample only.
        assert!(km.objective < 40.0 * 4.0 * 0.25 * 4.0);
    }
}
