//! Gaussian mixture with diagonal covariances, trained by EM: the generative vocabulary of
//! Fisher vectors.
//!
//! Initialisation from k-means (means = centroids, per-cluster variances and weights),
//! a variance floor relative to the data's per-dimension variance, responsibilities in the
//! log domain with log-sum-exp, statistics accumulated in `f64` across the rayon pool.

use rayon::prelude::*;

use super::check_rows;
use crate::error::{CodecError, Result};
use crate::kmeans::{KMeans, KMeansParams};

const LN_2PI: f64 = 1.837_877_066_409_345_5;

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
    log_norm: Vec<f32>,
    /// `1 / σ²_kd`.
    pub(crate) precision: Vec<f32>,
    /// `1 / σ_kd`.
    pub(crate) inv_std: Vec<f32>,
}

/// `Σ_d (x_d − μ_d)² p_d`, written with eight independent accumulators so it vectorises.
#[inline]
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
        }
    }

    /// Posteriors (responsibilities) of one point into `gamma` (`k` entries); returns the
    /// point's log-likelihood `ln Σ_k π_k N(x | μ_k, σ²_k)`.
    pub(crate) fn posterior_into(&self, cache: &GmmCache, x: &[f32], gamma: &mut [f32]) -> f64 {
        let dim = self.dim;
        let mut best = f32::NEG_INFINITY;
        for (j, g) in gamma.iter_mut().enumerate() {
            let r = j * dim..(j + 1) * dim;
            *g = cache.log_norm[j]
                - 0.5 * weighted_sq_dist(x, &self.means[r.clone()], &cache.precision[r]);
            best = best.max(*g);
        }
        let mut total = 0.0f64;
        for g in gamma.iter_mut() {
            *g = (*g - best).exp();
            total += f64::from(*g);
        }
        let inv = (1.0 / total) as f32;
        for g in gamma.iter_mut() {
            *g *= inv;
        }
        f64::from(best) + total.ln()
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
                || vec![0.0f32; self.k],
                |gamma, chunk| {
                    chunk
                        .chunks_exact(self.dim)
                        .map(|x| self.posterior_into(&cache, x, gamma))
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
                let mut gamma = vec![0.0f32; k];
                for x in chunk.chunks_exact(dim) {
                    s.log_likelihood += self.posterior_into(&cache, x, &mut gamma);
                    for (j, &g) in gamma.iter().enumerate() {
                        if g == 0.0 {
                            continue;
                        }
                        s.mass[j] += f64::from(g);
                        let r = j * dim..(j + 1) * dim;
                        for ((s1, s2), &v) in
                            s.sum[r.clone()].iter_mut().zip(&mut s.sum_sq[r]).zip(x)
                        {
                            let gv = f64::from(g * v);
                            *s1 += gv;
                            *s2 += gv * f64::from(v);
                        }
                    }
                }
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
