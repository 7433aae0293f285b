//! Improved Fisher vectors (Perronnin, Sánchez & Mensink 2010): the gradient of an image's
//! log-likelihood under a diagonal GMM with respect to the means and variances, each
//! normalised by the (diagonal, closed-form) Fisher information, then signed power law
//! and L2.
//!
//! For an image with `T` descriptors and posteriors `γ_t(k)`:
//! `G_μ,k = 1/(T√π_k) Σ_t γ_t(k) (x_t − μ_k)/σ_k` and
//! `G_σ,k = 1/(T√(2π_k)) Σ_t γ_t(k) [(x_t − μ_k)²/σ²_k − 1]`, concatenated as
//! `[G_μ,1 … G_μ,K, G_σ,1 … G_σ,K]` (`2·K·dim` components).
//!
//! By default the descriptors are first rotated into their principal axes (a PCA of the
//! training sample without reduction): a diagonal-covariance GMM can only model
//! decorrelated dimensions, and SIFT bins are strongly correlated (Perronnin et al. apply
//! PCA to SIFT for this reason). On clipart-vlad it is worth +0.10 R@1 (docs/encoders.md).

use std::any::Any;

use super::gmm::{DiagGmm, GmmParams, TILE, posteriors};
use super::lcs::{check_rotations, local_rotations};
use super::norm::{l2_normalize, power_law};
use super::sets::root_sift_rows;
use super::simd;
use super::{SetEncoder, check_batch, check_rows};
use crate::error::{CodecError, Result};

/// Options of a Fisher-vector encoder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FisherParams {
    /// Apply RootSIFT to every descriptor first.
    pub root_sift: bool,
    /// Signed power-law exponent, or `None` for none. Default 0.5.
    pub power: Option<f32>,
    /// Rotate the descriptors into the principal axes of the training sample before the
    /// GMM. Default on. On a built encoder it says whether a rotation is present (set by
    /// [`FisherEncoder::train`] and [`FisherEncoder::with_rotation`]).
    pub pca: bool,
}

impl Default for FisherParams {
    fn default() -> Self {
        FisherParams {
            root_sift: true,
            power: Some(0.5),
            pca: true,
        }
    }
}

/// A trained Fisher-vector encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct FisherEncoder {
    /// The generative vocabulary.
    pub gmm: DiagGmm,
    /// Options.
    pub params: FisherParams,
    /// The descriptor rotation (`dim × dim`, row `i` the `i`-th principal axis), empty
    /// when off.
    rotation: Vec<f32>,
}

impl FisherEncoder {
    /// An encoder from stored parts, without a descriptor rotation (`params.pca` is
    /// ignored: add the rotation with [`FisherEncoder::with_rotation`]).
    pub fn from_parts(gmm: DiagGmm, params: FisherParams) -> Result<Self> {
        if let Some(a) = params.power
            && !(a.is_finite() && a > 0.0)
        {
            return Err(CodecError::InvalidParameter(format!(
                "Fisher power-law exponent must be positive, got {a}"
            )));
        }
        Ok(FisherEncoder {
            gmm,
            params: FisherParams {
                pca: false,
                ..params
            },
            rotation: Vec::new(),
        })
    }

    /// Installs a stored descriptor rotation (`dim × dim` finite floats, the rows the
    /// principal axes, as [`FisherEncoder::rotation`] returns).
    pub fn with_rotation(mut self, rotation: Vec<f32>) -> Result<Self> {
        check_rotations(&rotation, 1, self.gmm.dim)?;
        self.rotation = rotation;
        self.params.pca = true;
        Ok(self)
    }

    /// The descriptor rotation (`dim × dim`, row-major), empty when off.
    pub fn rotation(&self) -> &[f32] {
        &self.rotation
    }

    /// Trains the GMM on `sample` (raw descriptors, rows of `dim`, preprocessed in place).
    pub fn train(
        mut sample: Vec<f32>,
        dim: usize,
        k: usize,
        params: FisherParams,
        gmm_params: &GmmParams,
    ) -> Result<Self> {
        check_rows(&sample, dim)?;
        if params.root_sift {
            root_sift_rows(&mut sample, dim);
        }
        if !params.pca {
            let (gmm, _) = DiagGmm::train(&sample, dim, k, gmm_params)?;
            return Self::from_parts(gmm, params);
        }
        let rotation = principal_axes(&sample, dim)?;
        rotate_rows(&rotation, dim, &mut sample);
        let (gmm, _) = DiagGmm::train(&sample, dim, k, gmm_params)?;
        Self::from_parts(gmm, params)?.with_rotation(rotation)
    }
}

impl SetEncoder for FisherEncoder {
    fn spec_token(&self) -> String {
        let mut s = format!("FV{}", self.gmm.k);
        match self.params.power {
            None => s.push_str("_nopow"),
            Some(a) if a != 0.5 => s.push_str(&format!("_pow{a}")),
            Some(_) => {}
        }
        if !self.params.root_sift {
            s.push_str("_noroot");
        }
        if self.rotation.is_empty() {
            s.push_str("_nopca");
        }
        s
    }

    fn dim_in(&self) -> usize {
        self.gmm.dim
    }

    fn dim_out(&self) -> usize {
        2 * self.gmm.k * self.gmm.dim
    }

    fn preprocess(&self, descriptors: &mut [f32]) {
        if self.params.root_sift {
            root_sift_rows(descriptors, self.gmm.dim);
        }
        rotate_rows(&self.rotation, self.gmm.dim, descriptors);
    }

    fn encode_prepared(
        &self,
        descriptors: &[f32],
        bounds: &[usize],
        out: &mut [f32],
    ) -> Result<()> {
        let g = &self.gmm;
        let (dim, k) = (g.dim, g.k);
        let dim_out = self.dim_out();
        let images = check_batch(descriptors, bounds, dim, out, dim_out)?;
        let cache = g.cache();
        let parts = ImageKernel {
            means: &g.means,
            precision: &cache.precision,
            inv_std: &cache.inv_std,
            log_norm: &cache.log_norm,
            weights: &g.weights,
            power: self.params.power,
        };
        let mut gamma = vec![0.0f32; TILE * k];
        for i in 0..images {
            let code = &mut out[i * dim_out..(i + 1) * dim_out];
            let x = &descriptors[bounds[i] * dim..bounds[i + 1] * dim];
            encode_image(cache.level, x, &parts, &mut gamma, code);
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Rotates rows of `dim` in place, `y = R x` (one matrix product); nothing when
/// `rotation` is empty.
fn rotate_rows(rotation: &[f32], dim: usize, rows: &mut [f32]) {
    if rotation.is_empty() || rows.is_empty() {
        return;
    }
    let input = rows.to_vec();
    crate::linalg::matmul_nt(&input, rotation, rows, input.len() / dim, dim, dim);
}

/// The principal axes of `sample`'s rows (`dim × dim`, largest variance first): the
/// eigenvectors of its covariance, accumulated in `f64` (identity for fewer than two rows).
fn principal_axes(sample: &[f32], dim: usize) -> Result<Vec<f32>> {
    let n = sample.len() / dim.max(1);
    let mut mean = vec![0.0f64; dim];
    for row in sample.chunks_exact(dim) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += f64::from(v);
        }
    }
    let mean: Vec<f32> = mean.iter().map(|&m| (m / n.max(1) as f64) as f32).collect();
    // One "word" holding every row: its residual covariance is the sample's covariance.
    local_rotations(sample, &vec![0; n], &mean, dim, false, |_| {})
}

/// What [`encode_image`] reads of the mixture: its parameters and the derived constants.
struct ImageKernel<'a> {
    means: &'a [f32],
    precision: &'a [f32],
    inv_std: &'a [f32],
    log_norm: &'a [f32],
    weights: &'a [f32],
    power: Option<f32>,
}

simd::multiversion! {
    /// One image's Fisher vector (descriptors `x`, already preprocessed) into `code`
    /// (`2·k·dim`, overwritten; zeros for an empty image), compiled for `level`; `gamma`
    /// holds `TILE × k`.
    /// Components with zero responsibility for a descriptor (most of them, see
    /// `gmm::LOG_CUTOFF`) are skipped.
    fn encode_image(x: &[f32], m: &ImageKernel<'_>, gamma: &mut [f32], code: &mut [f32]) {
        let k = m.log_norm.len();
        let dim = m.means.len() / k;
        code.fill(0.0);
        if x.is_empty() {
            return;
        }
        let (g_mu, g_sigma) = code.split_at_mut(k * dim);
        for tile in x.chunks(TILE * dim) {
            posteriors(tile, m.means, m.precision, m.log_norm, gamma);
            for (xt, gt) in tile.chunks_exact(dim).zip(gamma.chunks_exact(k)) {
                for (j, &w) in gt.iter().enumerate() {
                    if w == 0.0 {
                        continue;
                    }
                    let r = j * dim..(j + 1) * dim;
                    let params = m.means[r.clone()].iter().zip(&m.inv_std[r.clone()]);
                    let grads = g_mu[r.clone()].iter_mut().zip(&mut g_sigma[r]);
                    for ((gm, gs), (&xd, (&mu, &is))) in grads.zip(xt.iter().zip(params)) {
                        let z = (xd - mu) * is;
                        *gm += w * z;
                        *gs += w * (z * z - 1.0);
                    }
                }
            }
        }
        let t = (x.len() / dim) as f32;
        for (j, &pi) in m.weights.iter().enumerate() {
            let (a, b) = (1.0 / (t * pi.sqrt()), 1.0 / (t * (2.0 * pi).sqrt()));
            g_mu[j * dim..(j + 1) * dim].iter_mut().for_each(|v| *v *= a);
            g_sigma[j * dim..(j + 1) * dim].iter_mut().for_each(|v| *v *= b);
        }
        if let Some(a) = m.power {
            power_law(code, a);
        }
        l2_normalize(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::simd::Level;
    use crate::kmeans::SeededRng;

    /// The Fisher vector of `x` computed plainly in `f64`: every component's exact
    /// responsibility (no cutoff), gradients, power law, L2.
    fn reference(g: &DiagGmm, x: &[f32], power: Option<f32>) -> Vec<f32> {
        let (k, dim) = (g.k, g.dim);
        let t = (x.len() / dim) as f64;
        let mut code = vec![0.0f64; 2 * k * dim];
        for xt in x.chunks_exact(dim) {
            let logp: Vec<f64> = (0..k)
                .map(|j| {
                    let r = j * dim..(j + 1) * dim;
                    let per_dim = xt.iter().zip(&g.means[r.clone()]).zip(&g.variances[r]);
                    per_dim.fold(f64::from(g.weights[j]).ln(), |s, ((&x, &m), &v)| {
                        let (z, v) = (f64::from(x) - f64::from(m), f64::from(v));
                        s - 0.5 * (z * z / v + v.ln() + (2.0 * std::f64::consts::PI).ln())
                    })
                })
                .collect();
            let best = logp.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = logp.iter().map(|l| (l - best).exp()).sum();
            for j in 0..k {
                let w = (logp[j] - best).exp() / total;
                let pi = f64::from(g.weights[j]);
                for d in 0..dim {
                    let sd = f64::from(g.variances[j * dim + d]).sqrt();
                    let z = (f64::from(xt[d]) - f64::from(g.means[j * dim + d])) / sd;
                    code[j * dim + d] += w * z / (t * pi.sqrt());
                    code[(k + j) * dim + d] += w * (z * z - 1.0) / (t * (2.0 * pi).sqrt());
                }
            }
        }
        if let Some(a) = power {
            code.iter_mut()
                .for_each(|v| *v = v.abs().powf(f64::from(a)).copysign(*v));
        }
        let norm = code.iter().map(|v| v * v).sum::<f64>().sqrt();
        code.iter().map(|v| (v / norm) as f32).collect()
    }

    /// Spread of the means and the test points: `4/√dim`, so that components overlap
    /// enough for several to share each descriptor at every dimension.
    fn spread(dim: usize) -> f32 {
        4.0 / (dim as f32).sqrt()
    }

    fn random_gmm(rng: &mut SeededRng, k: usize, dim: usize) -> DiagGmm {
        let means = (0..k * dim)
            .map(|_| rng.next_f64() as f32 * spread(dim))
            .collect();
        let variances = (0..k * dim)
            .map(|_| 0.5 + rng.next_f64() as f32 * 2.0)
            .collect();
        let mut weights: Vec<f32> = (0..k).map(|_| 0.2 + rng.next_f64() as f32).collect();
        let total: f32 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        DiagGmm::from_parts(weights, means, variances, dim).unwrap()
    }

    #[test]
    fn image_kernel_agrees_with_the_f64_reference_on_every_instruction_set() {
        let mut rng = SeededRng::new(11);
        // Component counts with and without a remainder after quads, dimensions with and
        // without a tail after sixteen lanes, images shorter and longer than a tile.
        for (k, dim, n) in [(7, 37, 5), (64, 128, 70), (4, 16, 33), (1, 3, 1)] {
            let g = random_gmm(&mut rng, k, dim);
            let cache = g.cache();
            let x: Vec<f32> = (0..n * dim)
                .map(|_| rng.next_f64() as f32 * spread(dim))
                .collect();
            for power in [None, Some(0.5)] {
                let want = reference(&g, &x, power);
                let m = ImageKernel {
                    means: &g.means,
                    precision: &cache.precision,
                    inv_std: &cache.inv_std,
                    log_norm: &cache.log_norm,
                    weights: &g.weights,
                    power,
                };
                for level in Level::all() {
                    let mut gamma = vec![0.0f32; TILE * k];
                    let mut code = vec![f32::NAN; 2 * k * dim];
                    encode_image(level, &x, &m, &mut gamma, &mut code);
                    for (i, (a, b)) in code.iter().zip(&want).enumerate() {
                        assert!(
                            (a - b).abs() <= 2e-5,
                            "k {k} dim {dim} n {n} {power:?} {level:?}: [{i}] {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn empty_image_encodes_to_zeros() {
        let mut rng = SeededRng::new(3);
        let g = random_gmm(&mut rng, 5, 8);
        let enc = FisherEncoder::from_parts(g, FisherParams::default()).unwrap();
        let mut out = vec![f32::NAN; enc.dim_out()];
        enc.encode_prepared(&[], &[0, 0], &mut out).unwrap();
        assert!(out.iter().all(|&v| v == 0.0));
    }
}
