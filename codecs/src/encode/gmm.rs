//! Gaussian mixture with diagonal covariances, trained by EM: the generative vocabulary of
//! Fisher vectors.
//!
//! Initialisation from k-means (means = centroids, per-cluster variances and weights),
//! a variance floor relative to the data's per-dimension variance, responsibilities in the
//! log domain with log-sum-exp, statistics accumulated in `f64` across the rayon pool.

use rayon::prelude::*;

use super::check_rows;
use super::simd::{self, Level};
use crate::error::{CodecError, Result};
use crate::kmeans::{KMeans, KMeansParams};

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// A component whose log-density is more than this below the best component's gets
/// responsibility zero without evaluating the exponential: `e^-30 ≈ 9e-14`, far below
/// what `f32` resolves next to the best component's share (which is at least `1/k`).
/// In 128-D most components are hundreds of nats away, so this saves nearly every `exp`
/// and lets the Fisher and EM accumulations skip nearly every component.
const LOG_CUTOFF: f32 = 30.0;

/// Training parameters of [`DiagGmm::train`].
#[derive(Debug, Clone)]
pub struct GmmParams {
    /// Maximum EM iterations after the k-means initialisation. Default 20.
    pub iterations: usize,
    /// Variances are floored at `var_floor ×` the data's variance in that dimension
    /// (and at least 1e-9). Default 1e-3.
    pub var_floor: f32,
    /// Stop when the mean log-likelihood improves by less than `tolerance × max(1, |ll|)`.
    /// Default 1e-6.
    pub tolerance: f64,
    /// The k-means run that initialises the mixture.
    pub kmeans: KMeansParams,
}

impl Default for GmmParams {
    fn default() -> Self {
        GmmParams {
            iterations: 20,
            var_floor: 1e-3,
            tolerance: 1e-6,
            kmeans: KMeansParams::default(),
        }
    }
}

/// A `k`-component Gaussian mixture in `dim` dimensions with diagonal covariances.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagGmm {
    /// Dimension.
    pub dim: usize,
    /// Number of components.
    pub k: usize,
    /// Mixture weights (`k`, positive, summing to 1).
    pub weights: Vec<f32>,
    /// `k × dim` means, row-major.
    pub means: Vec<f32>,
    /// `k × dim` variances (diagonal covariances), row-major, positive.
    pub variances: Vec<f32>,
}

/// Per-component constants derived from the parameters for evaluating densities.
pub(crate) struct GmmCache {
    /// `ln π_k − ½ Σ_d ln(2π σ²_kd)`.
    pub(crate) log_norm: Vec<f32>,
    /// `1 / σ²_kd`.
    pub(crate) precision: Vec<f32>,
    /// `1 / σ_kd`.
    pub(crate) inv_std: Vec<f32>,
    /// Instruction set the density kernels run with.
    pub(crate) level: Level,
}

/// `Σ_d (x_d − μ_d)² p_d`, written with eight independent accumulators so it vectorises.
#[inline(always)]
fn weighted_sq_dist(x: &[f32], mu: &[f32], prec: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let whole = x.len() / 8 * 8;
    for ((xa, ma), pa) in x[..whole]
        .chunks_exact(8)
        .zip(mu.chunks_exact(8))
        .zip(prec.chunks_exact(8))
    {
        for l in 0..8 {
            let d = xa[l] - ma[l];
            acc[l] += d * d * pa[l];
        }
    }
    let mut tail = 0.0f32;
    for ((a, m), p) in x[whole..].iter().zip(&mu[whole..]).zip(&prec[whole..]) {
        tail += (a - m) * (a - m) * p;
    }
    acc.iter().sum::<f32>() + tail
}

/// [`weighted_sq_dist`] of `x` to four consecutive components at once (`mu`, `prec`:
/// `4 × dim`): every coordinate of `x` loaded serves four components, and sixteen lanes
/// per component fill an AVX-512 register (two AVX2 ones).
#[inline(always)]
fn weighted_sq_dist4(x: &[f32], mu: &[f32], prec: &[f32]) -> [f32; 4] {
    const L: usize = 16;
    let dim = x.len();
    let whole = dim / L * L;
    let mut acc = [[0.0f32; L]; 4];
    for c in (0..whole).step_by(L) {
        let xa = &x[c..c + L];
        for (q, aq) in acc.iter_mut().enumerate() {
            let ma = &mu[q * dim + c..q * dim + c + L];
            let pa = &prec[q * dim + c..q * dim + c + L];
            for l in 0..L {
                let d = xa[l] - ma[l];
                aq[l] += d * d * pa[l];
            }
        }
    }
    let mut out = [0.0f32; 4];
    for (q, (o, aq)) in out.iter_mut().zip(&acc).enumerate() {
        let r = q * dim + whole..(q + 1) * dim;
        let tail: f32 = x[whole..]
            .iter()
            .zip(&mu[r.clone()])
            .zip(&prec[r])
            .map(|((a, m), p)| (a - m) * (a - m) * p)
            .sum();
        *o = tree_sum16(aq) + tail;
    }
    out
}

/// Sum of sixteen lanes by halving (lane-wise adds of halves, which vectorise) rather
/// than a sequential scalar chain.
#[inline(always)]
fn tree_sum16(a: &[f32; 16]) -> f32 {
    let mut h = [0.0f32; 8];
    for l in 0..8 {
        h[l] = a[l] + a[l + 8];
    }
    let q = [h[0] + h[4], h[1] + h[5], h[2] + h[6], h[3] + h[7]];
    (q[0] + q[2]) + (q[1] + q[3])
}

impl DiagGmm {
    /// A mixture from stored parts; checks shapes and that weights and variances are
    /// positive and finite.
    pub fn from_parts(
        weights: Vec<f32>,
        means: Vec<f32>,
        variances: Vec<f32>,
        dim: usize,
    ) -> Result<Self> {
        let k = check_rows(&means, dim)?;
        if k == 0 || weights.len() != k {
            return Err(CodecError::DimensionMismatch {
                expected: k.max(1),
                got: weights.len(),
            });
        }
        if variances.len() != means.len() {
            return Err(CodecError::DimensionMismatch {
                expected: means.len(),
                got: variances.len(),
            });
        }
        if weights
            .iter()
            .chain(&variances)
            .any(|v| !(v.is_finite() && *v > 0.0))
        {
            return Err(CodecError::InvalidParameter(
                "GMM weights and variances must be positive and finite".into(),
            ));
        }
        Ok(DiagGmm {
            dim,
            k,
            weights,
            means,
            variances,
        })
    }

    pub(crate) fn cache(&self) -> GmmCache {
        let dim = self.dim;
        let precision: Vec<f32> = self.variances.iter().map(|v| 1.0 / v).collect();
        let inv_std = self.variances.iter().map(|v| 1.0 / v.sqrt()).collect();
        let log_norm = (0..self.k)
            .map(|j| {
                let log_det: f64 = self.variances[j * dim..(j + 1) * dim]
                    .iter()
                    .map(|v| f64::from(*v).ln())
                    .sum();
                (f64::from(self.weights[j]).ln() - 0.5 * (dim as f64 * LN_2PI + log_det)) as f32
            })
            .collect();
        GmmCache {
            log_norm,
            precision,
            inv_std,
            level: Level::detect(),
        }
    }

    /// Responsibilities of the points `x` (at most [`TILE`] rows) into `gamma` (`k` per
    /// point); returns the sum of their log-likelihoods `ln Σ_k π_k N(x | μ_k, σ²_k)`.
    pub(crate) fn posteriors_into(&self, cache: &GmmCache, x: &[f32], gamma: &mut [f32]) -> f64 {
        let mut ll = 0.0;
        posteriors_at(
            cache.level,
            x,
            &self.means,
            &cache.precision,
            &cache.log_norm,
            gamma,
            &mut ll,
        );
        ll
    }

    /// Mean log-likelihood per point of `data` (rows of `dim`).
    pub fn log_likelihood(&self, data: &[f32]) -> Result<f64> {
        let n = check_rows(data, self.dim)?;
        if n == 0 {
            return Err(CodecError::NotEnoughPoints {
                what: "GMM log-likelihood".into(),
                needed: 1,
                got: 0,
            });
        }
        let cache = self.cache();
        let total: f64 = data
            .par_chunks(self.dim * 1024)
            .map_init(
                || vec![0.0f32; TILE * self.k],
                |gamma, chunk| {
                    chunk
                        .chunks(TILE * self.dim)
                        .map(|x| self.posteriors_into(&cache, x, gamma))
                        .sum::<f64>()
                },
            )
            .sum();
        Ok(total / n as f64)
    }

    /// Trains a `k`-component mixture on `data` (rows of `dim`): k-means initialisation,
    /// then EM. Returns the mixture and the mean log-likelihood of the data before each
    /// M-step (under the mixture that iteration started from), so `history[0]` is the
    /// k-means initialisation's.
    pub fn train(
        data: &[f32],
        dim: usize,
        k: usize,
        params: &GmmParams,
    ) -> Result<(Self, Vec<f64>)> {
        let n = check_rows(data, dim)?;
        if !(params.var_floor.is_finite() && params.var_floor >= 0.0) {
            return Err(CodecError::InvalidParameter(format!(
                "GMM variance floor must be non-negative, got {}",
                params.var_floor
            )));
        }
        if n < k.max(2) {
            return Err(CodecError::NotEnoughPoints {
                what: format!("a {k}-component GMM"),
                needed: k.max(2),
                got: n,
            });
        }
        let global = data_variance(data, dim);
        let floor: Vec<f32> = global
            .iter()
            .map(|v| (v * params.var_floor).max(1e-9))
            .collect();
        let mut gmm = init_from_kmeans(data, dim, k, &params.kmeans, &global, &floor)?;
        let mut history = Vec::with_capacity(params.iterations + 1);
        for _ in 0..params.iterations {
            let stats = gmm.expectation(data);
            let ll = stats.log_likelihood / n as f64;
            let converged = history
                .last()
                .is_some_and(|prev: &f64| (ll - prev).abs() < params.tolerance * ll.abs().max(1.0));
            history.push(ll);
            if converged {
                break;
            }
            gmm.maximization(&stats, n, &floor);
        }
        history.push(gmm.log_likelihood(data)?);
        Ok((gmm, history))
    }

    /// E-step: sufficient statistics of `data` under the current mixture.
    fn expectation(&self, data: &[f32]) -> Stats {
        let (dim, k) = (self.dim, self.k);
        let cache = self.cache();
        data.par_chunks(dim * 1024)
            .map(|chunk| {
                let mut s = Stats::zero(k, dim);
                let mut gamma = vec![0.0f32; TILE * k];
                expectation_at(
                    cache.level,
                    chunk,
                    &self.means,
                    &cache.precision,
                    &cache.log_norm,
                    &mut gamma,
                    &mut s,
                );
                s
            })
            .reduce(|| Stats::zero(k, dim), Stats::merge)
    }

    /// M-step: new weights, means and (floored) variances from the statistics.
    /// Components that received (almost) no mass keep their mean and variance.
    fn maximization(&mut self, s: &Stats, n: usize, floor: &[f32]) {
        let dim = self.dim;
        for j in 0..self.k {
            let m = s.mass[j];
            self.weights[j] = ((m / n as f64) as f32).max(1e-10);
            if m < 1e-6 {
                continue;
            }
            let r = j * dim..(j + 1) * dim;
            let params = self.means[r.clone()]
                .iter_mut()
                .zip(&mut self.variances[r.clone()]);
            for (((mean, var), (s1, s2)), f) in params
                .zip(s.sum[r.clone()].iter().zip(&s.sum_sq[r]))
                .zip(floor)
            {
                let m1 = s1 / m;
                *mean = m1 as f32;
                *var = ((s2 / m - m1 * m1) as f32).max(*f);
            }
        }
        let total: f32 = self.weights.iter().sum();
        self.weights.iter_mut().for_each(|w| *w /= total);
    }
}

/// EM sufficient statistics.
struct Stats {
    mass: Vec<f64>,
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    log_likelihood: f64,
}

impl Stats {
    fn zero(k: usize, dim: usize) -> Self {
        Stats {
            mass: vec![0.0; k],
            sum: vec![0.0; k * dim],
            sum_sq: vec![0.0; k * dim],
            log_likelihood: 0.0,
        }
    }
    fn merge(mut self, o: Stats) -> Stats {
        let add = |a: &mut Vec<f64>, b: &Vec<f64>| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        add(&mut self.mass, &o.mass);
        add(&mut self.sum, &o.sum);
        add(&mut self.sum_sq, &o.sum_sq);
        self.log_likelihood += o.log_likelihood;
        self
    }
}

/// Points whose responsibilities are computed together: their log-densities are
/// evaluated four components at a time over the whole tile, so each quad's parameters
/// (4 KB in 128-D) are read once per tile from L1 instead of all `2·k·dim` parameters
/// (64 KB for 64 components, more than L1) being streamed from L2 for every point.
pub(crate) const TILE: usize = 32;

/// Responsibilities of the points `x` (rows of `dim`, at most [`TILE`]) into the first
/// rows of `gamma` (`k` per point): log-densities `ln π_j N(x | μ_j, σ²_j)`, then
/// log-sum-exp per point, components more than [`LOG_CUTOFF`] below the point's best set
/// to zero. Returns the sum of the points' log-likelihoods. Inlined into the
/// multiversioned kernels below and into the Fisher encoder's.
#[inline(always)]
pub(crate) fn posteriors(
    x: &[f32],
    means: &[f32],
    precision: &[f32],
    log_norm: &[f32],
    gamma: &mut [f32],
) -> f64 {
    let k = log_norm.len();
    let dim = means.len() / k;
    let gamma = &mut gamma[..x.len() / dim * k];
    let quads = k / 4;
    for q in 0..quads {
        let r = q * 4 * dim..(q + 1) * 4 * dim;
        let (mq, pq) = (&means[r.clone()], &precision[r]);
        let c = &log_norm[q * 4..q * 4 + 4];
        for (xt, gt) in x.chunks_exact(dim).zip(gamma.chunks_exact_mut(k)) {
            let d4 = weighted_sq_dist4(xt, mq, pq);
            for (i, g) in gt[q * 4..q * 4 + 4].iter_mut().enumerate() {
                *g = c[i] - 0.5 * d4[i];
            }
        }
    }
    for j in quads * 4..k {
        let r = j * dim..(j + 1) * dim;
        for (xt, gt) in x.chunks_exact(dim).zip(gamma.chunks_exact_mut(k)) {
            gt[j] =
                log_norm[j] - 0.5 * weighted_sq_dist(xt, &means[r.clone()], &precision[r.clone()]);
        }
    }
    gamma.chunks_exact_mut(k).map(softmax_in_place).sum()
}

/// Log-densities → responsibilities in place (log-sum-exp with [`LOG_CUTOFF`]); returns
/// the log-likelihood `ln Σ_j e^{g_j}`.
#[inline(always)]
fn softmax_in_place(g: &mut [f32]) -> f64 {
    let best = g.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut total = 0.0f64;
    for v in g.iter_mut() {
        let t = *v - best;
        *v = if t > -LOG_CUTOFF { t.exp() } else { 0.0 };
        total += f64::from(*v);
    }
    let inv = (1.0 / total) as f32;
    for v in g.iter_mut() {
        *v *= inv;
    }
    f64::from(best) + total.ln()
}

simd::multiversion! {
    /// [`posteriors`] compiled for `level`; the summed log-likelihood goes to `ll`.
    fn posteriors_at(
        x: &[f32],
        means: &[f32],
        precision: &[f32],
        log_norm: &[f32],
        gamma: &mut [f32],
        ll: &mut f64,
    ) {
        *ll = posteriors(x, means, precision, log_norm, gamma);
    }
}

simd::multiversion! {
    /// Adds the EM statistics of the points of `chunk` to `s` (compiled for `level`);
    /// `gamma` holds `TILE × k`.
    fn expectation_at(
        chunk: &[f32],
        means: &[f32],
        precision: &[f32],
        log_norm: &[f32],
        gamma: &mut [f32],
        s: &mut Stats,
    ) {
        let k = log_norm.len();
        let dim = means.len() / k;
        for tile in chunk.chunks(TILE * dim) {
            s.log_likelihood += posteriors(tile, means, precision, log_norm, gamma);
            for (x, gx) in tile.chunks_exact(dim).zip(gamma.chunks_exact(k)) {
                for (j, &g) in gx.iter().enumerate() {
                    if g == 0.0 {
                        continue;
                    }
                    s.mass[j] += f64::from(g);
                    let r = j * dim..(j + 1) * dim;
                    for ((s1, s2), &v) in s.sum[r.clone()].iter_mut().zip(&mut s.sum_sq[r]).zip(x) {
                        let gv = f64::from(g * v);
                        *s1 += gv;
                        *s2 += gv * f64::from(v);
                    }
                }
            }
        }
    }
}

/// Per-dimension variance of the data.
fn data_variance(data: &[f32], dim: usize) -> Vec<f32> {
    let n = (data.len() / dim) as f64;
    let mut sum = vec![0.0f64; dim];
    let mut sum_sq = vec![0.0f64; dim];
    for x in data.chunks_exact(dim) {
        for d in 0..dim {
            let v = f64::from(x[d]);
            sum[d] += v;
            sum_sq[d] += v * v;
        }
    }
    (0..dim)
        .map(|d| {
            let mean = sum[d] / n;
            (sum_sq[d] / n - mean * mean).max(0.0) as f32
        })
        .collect()
}

/// Means from k-means, variances and weights from the hard clusters it found (a cluster
/// of fewer than two points gets the data's variance).
fn init_from_kmeans(
    data: &[f32],
    dim: usize,
    k: usize,
    params: &KMeansParams,
    global: &[f32],
    floor: &[f32],
) -> Result<DiagGmm> {
    let km = KMeans::train(data, dim, k, params)?;
    let assign = km.assign(data)?;
    let n = assign.len();
    let mut count = vec![0usize; k];
    let mut sum_sq = vec![0.0f64; k * dim];
    for (x, &(a, _)) in data.chunks_exact(dim).zip(&assign) {
        let a = a as usize;
        count[a] += 1;
        let c = &km.centroids[a * dim..(a + 1) * dim];
        for ((s, v), m) in sum_sq[a * dim..(a + 1) * dim].iter_mut().zip(x).zip(c) {
            let d = f64::from(v - m);
            *s += d * d;
        }
    }
    let mut variances = vec![0.0f32; k * dim];
    for j in 0..k {
        for d in 0..dim {
            variances[j * dim + d] = if count[j] > 1 {
                ((sum_sq[j * dim + d] / count[j] as f64) as f32).max(floor[d])
            } else {
                global[d].max(floor[d])
            };
        }
    }
    let weights = count
        .iter()
        .map(|&c| (c.max(1) as f32) / n as f32)
        .collect::<Vec<_>>();
    let total: f32 = weights.iter().sum();
    let weights = weights.into_iter().map(|w| w / total).collect();
    DiagGmm::from_parts(weights, km.centroids, variances, dim)
}
